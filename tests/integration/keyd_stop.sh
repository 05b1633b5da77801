#!/usr/bin/env bash
# keyd_stop.sh: keyd.pid after a kill -9. A serve started without a keyd
# starts one on demand; it is no child of serve (killed, it stayed a zombie
# under serve, in `ps` as "<defunct>", and kill(pid, 0) still found it, so
# `ringfence keyd stop` waited 10 s and said it "did not stop"). Now: after
# kill -9 nothing of keyd is left under serve, `keyd stop` says at once
# that none runs, a keyd.pid naming a process that is not a keyd (its
# number reused) gets that process no signal, and a keyd started as
# `ringfence --json keyd` is still stopped; a keyd started on demand is
# named ringfence in ps; a second keyd started by hand
# on a terminal is refused in one line (it was two: the log's and the
# error's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-stop
. "$here/lib/serve.sh"
rf init >/dev/null 2>&1 || fail "init"
# A keyd killed stays gone: serve does not start it again here
# (keyd_restart, serve_keyd_restart.sh).
export RINGFENCE_KEYD_RESTART=0
rf keyd stop >/dev/null 2>&1 || true
if rf keyd status >/dev/null 2>&1; then fail "keyd still runs"; fi
start_serve
kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
rf keyd status >/dev/null || fail "serve did not start keyd"
[ "$(ps -o ppid= -p "$kpid" | tr -d ' ')" != "$server" ] || fail "keyd is serve's child"
# Started on demand, it is in `ps -C ringfence` under its own name (it was
# "exe": it ran /proc/self/exe).
[ "$(cat "/proc/$kpid/comm")" = ringfence ] || fail "on-demand keyd's process name: $(cat "/proc/$kpid/comm")"
ps -o pid= -C ringfence | grep -qw "$kpid" || fail "ps -C ringfence does not list the on-demand keyd"
kill -9 "$kpid"
for _ in $(seq 50); do
	[ "$(ps -o stat= -p "$kpid" 2>/dev/null | cut -c1)" = Z ] && continue
	kill -0 "$kpid" 2>/dev/null || break
	sleep 0.1
done
[ -z "$(ps -o pid= --ppid "$server" | tr -d ' ')" ] || fail "serve keeps a child: $(ps -o pid,stat,cmd --ppid "$server")"
t0=$(date +%s%N)
rf keyd stop 2>"$RINGFENCE_HOME/stop.err" || fail "keyd stop after the kill: $(cat "$RINGFENCE_HOME/stop.err")"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "no custody process runs" "$RINGFENCE_HOME/stop.err" || fail "keyd stop: $(cat "$RINGFENCE_HOME/stop.err")"
[ $ms -lt 5000 ] || fail "keyd stop took $ms ms for a keyd that is gone"
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/ca/issuing.pem" || fail "serve stopped answering"

# keyd.pid naming a process that is not a keyd: left alone.
sleep 60 &
other=$!
echo "$other" >"$RINGFENCE_HOME/keyd.pid"
rf keyd stop 2>"$RINGFENCE_HOME/stop2.err" || fail "keyd stop with a reused pid: $(cat "$RINGFENCE_HOME/stop2.err")"
kill -0 "$other" 2>/dev/null || fail "keyd stop signalled a process that is not keyd"
kill "$other"
wait "$other" 2>/dev/null || true
rm -f "$RINGFENCE_HOME/keyd.pid"

# A keyd started with a global option before the command is still one.
"$RINGFENCE" --json keyd --idle 0 2>"$RINGFENCE_HOME/keyd2.log" &
k2=$!
for _ in $(seq 100); do
	rf keyd status >/dev/null 2>&1 && break
	sleep 0.1
done
# A second keyd, by hand on a terminal: refused in one line.
# (script runs $SHELL -c: /bin/sh, so that no shell start-up hook of the
# host writes lines of its own into the output.)
SHELL=/bin/sh script -qec "$RINGFENCE keyd --idle 0" /dev/null >"$RINGFENCE_HOME/second.out" 2>&1 &&
	fail "a second keyd started"
# ringfence's lines only: a host's shell hooks may write their own there.
[ "$(grep -c "^ringfence" "$RINGFENCE_HOME/second.out")" = 1 ] && grep -q "already runs" "$RINGFENCE_HOME/second.out" ||
	fail "a second keyd on a terminal: $(cat "$RINGFENCE_HOME/second.out")"
rf keyd stop 2>"$RINGFENCE_HOME/stop3.err" || fail "keyd stop: $(cat "$RINGFENCE_HOME/stop3.err")"
grep -q "stopped keyd $k2" "$RINGFENCE_HOME/stop3.err" || fail "keyd stop did not stop 'ringfence --json keyd': $(cat "$RINGFENCE_HOME/stop3.err")"
wait "$k2" 2>/dev/null || true
# A command that starts keyd while the state folder's lock is still held
# (a keyd starting, or stopping): it waits, and starts one once the lock
# is free, instead of failing "already runs".
# The holder says when it has the lock (a file), then keeps it 3 s: a
# command's keyd that took it first would hold it for its life, and the
# holder would wait that long; a probe of the lock would take it itself.
rm -f "$RINGFENCE_HOME/held"
flock "$RINGFENCE_HOME/keyd.lock" sh -c 'touch "$1"; sleep 3' sh "$RINGFENCE_HOME/held" &
holder=$!
wait_for 5 test -e "$RINGFENCE_HOME/held" || fail "flock did not take keyd's lock"
rf keys list >/dev/null 2>"$RINGFENCE_HOME/held.err" ||
	fail "a command while keyd's lock was held: $(cat "$RINGFENCE_HOME/held.err")"
wait "$holder"
rf keyd status >/dev/null 2>&1 || fail "no keyd after the lock was let go"
echo "keyd_stop: ok"
