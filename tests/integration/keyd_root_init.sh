#!/usr/bin/env bash
# keyd_root_init.sh: `ringfence init` by hand as root on a machine where
# the custody user exists (make run made it), then the README's commands,
# without make run. init gives the state to the custody user itself, as
# scripts/run.sh does (before, the keyd the next command started ran as
# that user and could not open the store root had made: every command
# failed with "cannot reach ringfence.db: Permission denied"): tokens/,
# softhsm2.conf, the custody folder and the PIN the custody user's alone,
# the state folder and the store its group's too; init says so in one
# line. Then issue works through a keyd running as the custody user, and
# serve, dropped to the server user, answers OCSP for the certificate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-root-init
. "$here/lib/users.sh"
. "$here/lib/serve.sh"
work=$(mktemp -d /tmp/rf-root-init.XXXXXX)
chmod 755 "$work"
extra_cleanup="rm -rf $work"
custody=$RINGFENCE_HOME-custody

rf init >/dev/null 2>"$work/init.err" || fail "init: $(cat "$work/init.err")"
grep -q "owner:  '$ku' (group '$grp')" "$work/init.err" || fail "init does not say who owns the state: $(cat "$work/init.err")"
st() { stat -c %U:%G:%a "$1"; }
[ "$(st "$RINGFENCE_HOME")" = "$ku:$grp:770" ] || fail "state folder: $(st "$RINGFENCE_HOME")"
[ "$(st "$RINGFENCE_HOME/ringfence.db")" = "$ku:$grp:660" ] || fail "store: $(st "$RINGFENCE_HOME/ringfence.db")"
[ "$(st "$RINGFENCE_HOME/tokens")" = "$ku:$grp:700" ] || fail "tokens/: $(st "$RINGFENCE_HOME/tokens")"
[ "$(st "$RINGFENCE_HOME/softhsm2.conf")" = "$ku:$grp:600" ] || fail "softhsm2.conf: $(st "$RINGFENCE_HOME/softhsm2.conf")"
[ "$(st "$custody")" = "$ku:$grp:700" ] || fail "custody folder: $(st "$custody")"
[ "$(st "$custody/token.pin")" = "$ku:$grp:600" ] || fail "PIN: $(st "$custody/token.pin")"
[ -z "$(find "$RINGFENCE_HOME" "$custody" ! -user "$ku")" ] || fail "not the custody user's: $(find "$RINGFENCE_HOME" "$custody" ! -user "$ku" | head -3)"

rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 --out "$work/c.pem" >"$work/meta" 2>"$work/issue.err" ||
	fail "issue after init as root: $(cat "$work/issue.err")"
serial=$(sed -n 's/^serial: //p' "$work/meta")
kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
[ "$(ps -o user:32= -p "$kpid" | tr -d ' ')" = "$ku" ] || fail "keyd runs as $(ps -o user:32= -p "$kpid")"
rf keyd status | grep -q "($ku, user split on)" || fail "keyd status: $(rf keyd status)"

start_serve
grep -q "running as '$su'" "$RINGFENCE_HOME/serve.log" || fail "serve did not drop to $su: $(cat "$RINGFENCE_HOME/serve.log")"
rf cert ca issuing >"$work/issuing.pem"
openssl ocsp -issuer "$work/issuing.pem" -serial "0x$serial" -url "http://127.0.0.1:$port/ocsp" \
	-CAfile "$work/issuing.pem" -no_nonce -noverify 2>/dev/null | grep -q "0x$serial: good" ||
	fail "OCSP from serve as $su: $(cat "$RINGFENCE_HOME/serve.log")"
echo "keyd_root_init: ok"
