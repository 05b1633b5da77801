#!/usr/bin/env bash
# serve_make_run.sh: what `make run` does as root (scripts/run.sh), walked as
# issue 11's reviewer does: init, keyd as the custody user, serve as the
# server user on its port. Throwaway users and group stand for
# ringfence-keyd, ringfence and the group ringfence. Checked: the owners
# and modes of the state (tokens/ 0700, custody folder 0700, PIN 0600, all
# the custody user's), no PIN file in the state folder, the two processes
# under their users, neither dumpable (its /proc files root's), `keyd
# status` naming uid and tokens; then keyd killed (kill -9): it is no
# child of serve (left a zombie in `ps` under serve before), serve keeps
# answering, and make run's keeper brings keyd back as the custody user
# before any command runs.
# Then the same as a user who is not root (a laptop): no user split, said
# in one line by serve and by keyd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" serve-make-run
. "$here/lib/users.sh"
src=$(cd "$here/../.." && pwd)
export RINGFENCE_GROUP=$grp
# A free port below the ephemeral range: make run binds it only after init
# and the user set-up (seconds), and a port of that range could meanwhile
# be any other test's connection's.
. "$here/lib/ports.sh"
export RINGFENCE_PORT=$(lateport)
custody=$RINGFENCE_HOME-custody
rmdir "$RINGFENCE_HOME" # run.sh makes it, as make run does on first use
out=$(mktemp /tmp/rf-make-run.XXXXXX)
chmod 644 "$out"
# run.sh ends in `exec ringfence serve`: its pid is serve's.
bash "$src/scripts/run.sh" "$RINGFENCE" >"$out" 2>&1 &
server=$!
for _ in $(seq 300); do
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$RINGFENCE_PORT/healthz" && break
	sleep 0.1
done
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$RINGFENCE_PORT/healthz" || fail "make run: $(cat "$out")"
grep -q "keyd: running, pid [0-9]*, uid $(id -u "$ku") ($ku, user split on)" "$out" || fail "keyd status in make run: $(cat "$out")"
grep -q "tokens: *'ringfence' and 31 more" "$out" || fail "keyd status names no tokens: $(cat "$out")"
grep -q "SO PIN (shown once, not kept" "$out" || fail "init did not say the SO PIN is not kept"
grep -q "running as '$su'" "$out" || fail "serve did not drop to $su: $(cat "$out")"

# Owners and modes.
st() { stat -c %U:%a "$1"; }
[ "$(st "$RINGFENCE_HOME/tokens")" = "$ku:700" ] || fail "tokens/: $(st "$RINGFENCE_HOME/tokens")"
[ "$(st "$custody")" = "$ku:700" ] || fail "custody folder: $(st "$custody")"
[ "$(st "$custody/token.pin")" = "$ku:600" ] || fail "PIN file: $(st "$custody/token.pin")"
for f in token.pin token.so-pin; do
	[ ! -e "$RINGFENCE_HOME/$f" ] || fail "$f in the state folder"
done
pin=$(cat "$custody/token.pin")
grep -rqF "$pin" "$RINGFENCE_HOME" "$out" && fail "the PIN is in the state folder or make run's output"

# Two processes, two users, neither dumpable.
kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
[ "$(ps -o user:32= -p "$kpid" | tr -d ' ')" = "$ku" ] || fail "keyd runs as $(ps -o user:32= -p "$kpid")"
[ "$(ps -o user:32= -p "$server" | tr -d ' ')" = "$su" ] || fail "serve runs as $(ps -o user:32= -p "$server")"
for p in "$kpid" "$server"; do
	[ "$(stat -c %U "/proc/$p/environ")" = root ] || fail "process $p is dumpable"
	grep -Eq "^Max core file size +0 +0" "/proc/$p/limits" || fail "core files on for $p"
done

# The same, as a user checks it: scripts/custody-check.sh, every line ok.
RINGFENCE_CUSTODY_DIR=$custody bash "$src/scripts/custody-check.sh" "$RINGFENCE_HOME" >"$out.c" 2>&1 ||
	{ cat "$out.c" >&2; fail "custody-check.sh after make run"; }
[ "$(grep -c '^ok ' "$out.c")" -ge 16 ] || { cat "$out.c" >&2; fail "custody-check.sh checked too little"; }
# ... and it finds a PIN put back in the state folder.
mkdir -p "$RINGFENCE_HOME/old-x" && cp "$custody/token.pin" "$RINGFENCE_HOME/old-x/token.pin"
if bash "$src/scripts/custody-check.sh" "$RINGFENCE_HOME" >"$out.c" 2>&1; then
	fail "custody-check.sh passed a PIN file in the state folder"
fi
grep -q "^FAIL  no PIN file in the state folder" "$out.c" || { cat "$out.c" >&2; fail "custody-check.sh: wrong failure"; }
rm -rf "$RINGFENCE_HOME/old-x" "$out.c"

# keyd killed: not serve's child (a zombie under serve otherwise), serve
# answers on, and the next command starts keyd again as its user.
ppid=$(ps -o ppid= -p "$kpid" | tr -d ' ')
[ "$ppid" != "$server" ] || fail "keyd is a child of serve: killed, it stays a zombie under it"
kill -9 "$kpid"
for _ in $(seq 50); do
	kill -0 "$kpid" 2>/dev/null || break
	sleep 0.1
done
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$RINGFENCE_PORT/ca/issuing.pem" || fail "serve stopped answering without keyd"
# make run's keeper starts keyd again, as its user, with no command run:
# serve (as $su) could not, and on-demand OCSP, handshakes and assertions
# need it.
kpid2=""
for _ in $(seq 100); do
	kpid2=$(cat "$RINGFENCE_HOME/keyd.pid" 2>/dev/null) || kpid2=""
	[ -n "$kpid2" ] && [ "$kpid2" != "$kpid" ] && kill -0 "$kpid2" 2>/dev/null && break
	kpid2=""
	sleep 0.1
done
[ -n "$kpid2" ] || fail "keyd did not come back without a command: $(tail -5 "$RINGFENCE_HOME/keyd.log")"
[ "$(ps -o user:32= -p "$kpid2" | tr -d ' ')" = "$ku" ] || fail "keyd came back as $(ps -o user:32= -p "$kpid2")"
# The keeper writes its line once keyd answers, a moment after keyd's pid
# file names the new keyd: wait for it.
wait_for 5 grep -q "^run.sh: .* keyd was gone: started again$" "$RINGFENCE_HOME/keyd.log" ||
	fail "the keeper said nothing in keyd.log: $(tail -5 "$RINGFENCE_HOME/keyd.log")"
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 >/dev/null 2>"$out.e" || fail "issue after the kill: $(cat "$out.e")"
[ "$(cat "$RINGFENCE_HOME/keyd.pid")" = "$kpid2" ] || fail "the command started another keyd"
# Stopped on purpose, keyd stays stopped: the keeper leaves it.
rf keyd stop >/dev/null || fail "keyd stop under make run"
sleep 3
if rf keyd status >/dev/null 2>&1; then fail "make run's keeper started a keyd stopped with 'keyd stop'"; fi

# A laptop: the same commands by a user who is not root. The process split
# runs without the user split, and serve and keyd each say so in one line.
kill "$server"
wait "$server" 2>/dev/null || true
server=""
rf keyd stop >/dev/null 2>&1 || true
lap=$(mktemp -d /tmp/rf-laptop.XXXXXX)
chown "$su:$grp" "$lap"
as_user() {
	setpriv --reuid "$su" --regid "$grp" --clear-groups -- env RINGFENCE_HOME="$lap/var" "$@"
}
as_user "$RINGFENCE" init >/dev/null 2>&1 || { rm -rf "$lap" "$lap/var-custody"; fail "init as $su"; }
as_user "$RINGFENCE" serve --port 0 --duration 2 2>"$out.l" || true
as_user "$RINGFENCE" keyd status >"$out.s" 2>&1 || true
as_user "$RINGFENCE" keyd stop >/dev/null 2>&1 || true
grep -q "ringfence serve: running as uid $(id -u "$su"), not root: process split on (keys in keyd), user split off" "$out.l" ||
	{ cat "$out.l" >&2; rm -rf "$lap"; fail "serve as a user does not say the user split is off"; }
grep -q "not root: process split on, user split off" "$lap/var/keyd.log" ||
	{ rm -rf "$lap"; fail "keyd as a user does not say the user split is off"; }
grep -q "uid $(id -u "$su") ($su, user split off)" "$out.s" || { rm -rf "$lap"; fail "keyd status as a user: $(cat "$out.s")"; }
rm -rf "$lap" "$out" "$out.e" "$out.l" "$out.s"
echo "serve_make_run: ok"
