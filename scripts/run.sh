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
# keyd started from a subshell that exits at once: it is no child of this
# shell, which becomes serve below, so a keyd that dies is reaped instead
# of staying a zombie under serve.
keyd_start() {
	("$bin" keyd --idle 0 >>"$RINGFENCE_HOME/keyd.log" 2>&1 &)
	for _ in $(seq 200); do
		"$bin" keyd status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}
"$bin" keyd status >/dev/null 2>&1 || keyd_start || true
"$bin" keyd status
# keyd's keeper, for as long as serve runs (this shell's pid, once exec
# makes it serve): a keyd that is gone (killed, or exited because its
# token folder went missing; not one stopped with 'ringfence keyd stop')
# is started again as a command would start it,
# 1 s after it is found gone, then 2, 4, ... s, at most 30 s apart, each
# attempt a line in keyd.log. Run as root, it starts keyd as its own user
# (serve, as ringfence, cannot). Detached like keyd, so that it is no
# child of serve either.
serve_pid=$$
# keyd's pid file names a live keyd (a number reused by another process
# after a kill -9 is not one), or keyd was stopped on purpose ('ringfence
# keyd stop' leaves keyd.stopped: the next command starts it).
keyd_alive() {
	local pid
	[ -e "$RINGFENCE_HOME/keyd.stopped" ] && return 0
	pid=$(cat "$RINGFENCE_HOME/keyd.pid" 2>/dev/null) && [ -n "$pid" ] &&
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ringfence ]
}
keeper() {
	local pause=1 next
	while sleep 1 && kill -0 "$serve_pid" 2>/dev/null; do
		if keyd_alive; then
			pause=1
			continue
		fi
		# Gone: wait out the pause (serve may stop meanwhile), then
		# start it unless something else did.
		sleep $((pause - 1))
		kill -0 "$serve_pid" 2>/dev/null || break
		keyd_alive && continue
		next=$((pause * 2 > 30 ? 30 : pause * 2))
		if keyd_start; then
			echo "run.sh: $(date -u +%FT%TZ) keyd was gone: started again" >>"$RINGFENCE_HOME/keyd.log"
			pause=1
		else
			echo "run.sh: $(date -u +%FT%TZ) keyd was gone and did not start (above); next try in $next s" >>"$RINGFENCE_HOME/keyd.log"
			pause=$next
		fi
	done
}
(keeper </dev/null >/dev/null 2>&1 &)
exec "$bin" serve
