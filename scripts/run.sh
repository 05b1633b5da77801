#!/usr/bin/env bash
# make run: initialise the state folder on first run, start the custody
# process (keyd), then serve.
#
# As root, the process split is also a user split (docs/keys.md): keyd runs
# as ringfence-keyd, which alone may read the token folder and the PIN
# (beside the state folder, in $RINGFENCE_HOME-custody); serve binds its
# ports, then runs as ringfence. Both are system users without a login,
# in the group ringfence, which may use the store. RINGFENCE_CUSTODY_USER,
# RINGFENCE_SERVER_USER and RINGFENCE_GROUP name others; RINGFENCE_PORT
# (and the other settings, docs/config.md) apply to serve.
set -euo pipefail
bin=${1:?usage: run.sh path/to/ringfence}
export RINGFENCE_HOME=${RINGFENCE_HOME:-$PWD/var}
custody=${RINGFENCE_CUSTODY_DIR:-$RINGFENCE_HOME-custody}
keyd_user=${RINGFENCE_CUSTODY_USER:-ringfence-keyd}
serve_user=${RINGFENCE_SERVER_USER:-ringfence}
group=${RINGFENCE_GROUP:-ringfence}
root=0
[ "$(id -u)" = 0 ] && root=1

if [ $root = 1 ]; then
	getent group "$group" >/dev/null || groupadd --system "$group"
	for u in "$keyd_user" "$serve_user"; do
		id "$u" >/dev/null 2>&1 ||
			useradd --system -M -d /nonexistent -s /usr/sbin/nologin \
				-g "$group" "$u"
	done
fi
if [ ! -f "$RINGFENCE_HOME/ringfence.db" ]; then
	"$bin" init
fi
if [ $root = 1 ]; then
	# The state: keyd's, the group may use the store; the token folder,
	# softhsm2.conf and the PIN: keyd's alone.
	chown -R "$keyd_user:$group" "$RINGFENCE_HOME" "$custody"
	chmod 770 "$RINGFENCE_HOME"
	find "$RINGFENCE_HOME" -maxdepth 1 -name 'ringfence.db*' -exec chmod 660 {} +
	chmod 700 "$RINGFENCE_HOME/tokens" "$custody"
	chmod 600 "$custody/token.pin" "$RINGFENCE_HOME/softhsm2.conf" 2>/dev/null || true
	umask 007
fi
"$bin" keyd status >/dev/null 2>&1 || {
	# Started from a subshell that exits at once: keyd is no child of
	# this shell, which becomes serve below, so a keyd that dies is
	# reaped instead of staying a zombie under serve.
	("$bin" keyd --idle 0 >>"$RINGFENCE_HOME/keyd.log" 2>&1 &)
	for _ in $(seq 200); do
		"$bin" keyd status >/dev/null 2>&1 && break
		sleep 0.05
	done
}
"$bin" keyd status
exec "$bin" serve
