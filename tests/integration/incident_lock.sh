#!/usr/bin/env bash
# The run lock of an incident (incident-ID.lock in the state folder) is
# removed once the incident is closed (every closed incident left its
# file): by the close that closes it, and by a later contain or close of
# the closed incident (refused), each while it holds the lock. A file
# removed that way cannot give two runs the lock: a run that opened the
# old file before it was removed, and locks it after, finds the path gone
# or another file there and takes the lock again (test seam
# incident-lock-opened holds it between its open and its lock).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" incident-lock
h=$RINGFENCE_HOME
lock() { echo "$h/incident-$1.lock"; }

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 2 0 >/dev/null

# 1. Kept while the incident is open or contained (the next run uses
# it), gone once it is closed.
a=$(rf incident open --scope tenant:t000001 --reason "lock 1" 2>/dev/null)
rf incident contain "$a" >/dev/null
[ -f "$(lock "$a")" ] || fail "contain made no lock file"
rf incident confirm "$a" --all >/dev/null
rf incident close "$a" >/dev/null || fail "close"
[ ! -e "$(lock "$a")" ] || fail "the lock file of closed incident $a is left"
# 2. A contain or close of the closed incident is refused, and leaves
# no file either.
for sub in contain close; do
	if rf incident "$sub" "$a" >/dev/null 2>"$h/err"; then fail "$sub of a closed incident: accepted"; fi
	grep -q "closed" "$h/err" || fail "$sub of a closed incident: $(cat "$h/err")"
	[ ! -e "$(lock "$a")" ] || fail "$sub of closed incident $a left its lock file"
done
# A file left by a close killed after its commit: the next run removes it.
touch "$(lock "$a")"
if rf incident close "$a" >/dev/null 2>&1; then fail "close of a closed incident: accepted"; fi
[ ! -e "$(lock "$a")" ] || fail "a run of closed incident $a left the file it found"

# 3. Run B opens the lock file and is held before it locks it. Meanwhile
# run A (here python, as rf_incident_run_unlock does it) locks it,
# removes it and ends; run C makes a new file and holds its lock. B then
# gets the lock of the removed file: it must not run beside C.
b=$(rf incident open --scope tenant:t000002 --reason "lock 2" 2>/dev/null)
rf incident contain "$b" >/dev/null # the file exists, as A's run left it
rm -f "$h/go" "$h/held"
RINGFENCE_TEST_PAUSE_AT=incident-lock-opened RINGFENCE_TEST_PAUSE_MS=120000 \
	RINGFENCE_TEST_PAUSE_UNTIL="$h/go" \
	"$RINGFENCE" incident contain "$b" >"$h/out" 2>"$h/err" &
pid=$!
await_pause incident-lock-opened "$h/err" "$pid"
python3 - "$(lock "$b")" "$h/held" <<'PY' &
import fcntl, os, sys, time
path, held = sys.argv[1], sys.argv[2]
# A: locks the file B opened, removes it, ends.
fd = os.open(path, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.unlink(path)
os.close(fd)
# C: a new file at the path, locked, held for a while.
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
open(held, "w").close()
time.sleep(60)
PY
holder=$!
for _ in $(seq 200); do
	[ -e "$h/held" ] && break
	sleep 0.05
done
[ -e "$h/held" ] || fail "the stand-in runs never held the lock"
touch "$h/go"
rc=0
wait "$pid" || rc=$?
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ "$rc" = 1 ] || fail "a run that locked a removed lock file ran beside the holder of the new one (exit $rc): $(cat "$h/err")"
grep -q "is being contained or closed by another run right now" "$h/err" ||
	fail "refusal: $(cat "$h/err")"
# Once C is gone, a run takes the lock as before.
rf incident contain "$b" >/dev/null 2>"$h/err" || fail "contain after the holder ended: $(cat "$h/err")"
echo "incident lock: OK"
