#!/usr/bin/env bash
# contain's phase "take new keys" counts the connections it takes keys for
# (it said 0/0 whatever it took): its total is the connections still
# affected, and its count moves as their keys are found reserved by an
# earlier run, adopted from a killed one or taken from the standby pool.
# Those the pool lacks are counted by the next phase, "generate keys the
# pool lacks". `incident status` in another terminal shows the same counts
# while contain is held after the take (test seam incident-keys-taken).
#   1. The pool has every key: N of N taken, in the JSON lines and status.
#   2. Half the keys: N/2 of N taken, then N/2 generated.
#   3. A run killed after it recorded its keys: the rerun finds all N
#      reserved.
#   4. No pool, a run killed after it made its keys and before it recorded
#      them, one connection waived meanwhile: the rerun destroys the key
#      made for it (a phase of its own), then "take new keys" goes on and
#      counts the N - 1 it adopts; no line counts past its total.
set -euo pipefail
N=8
. "$(dirname "$0")/lib/state.sh" take-progress
h=$RINGFENCE_HOME

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" $N 0 >/dev/null

# check_lines FILE TAKEN [GENERATED]: the JSON progress lines of a contain.
check_lines() {
	python3 - "$1" $N "$2" "${3:-0}" <<'PY' || fail "progress lines: $(cat "$1")"
import json, sys
n, taken, made = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
take = [l for l in lines if l["phase"] == "take new keys"]
assert take, "no line of the phase"
for l in take:
    assert l["total"] == n and 0 <= l["done"] <= taken, l
assert take[0]["done"] == 0, take[0]
assert take[-1]["done"] == taken, take[-1]
gen = [l for l in lines if l["phase"] == "generate keys the pool lacks"]
if made:
    assert gen and gen[0]["total"] == made and gen[-1]["done"] == made, gen
else:
    assert not gen, gen
PY
}

# 1. Every key from the pool; status, asked while contain is held after
# the take, shows the phase with its count.
rf keys pool fill --alg ec-p256 --count $N >/dev/null 2>&1
id=$(rf incident open --scope all --reason "take 1" 2>/dev/null)
RINGFENCE_TEST_PAUSE_AT=incident-keys-taken RINGFENCE_TEST_PAUSE_MS=120000 \
	RINGFENCE_TEST_PAUSE_UNTIL="$h/go" \
	"$RINGFENCE" --json incident contain "$id" >"$h/out" 2>"$h/err" &
pid=$!
await_pause incident-keys-taken "$h/err" "$pid"
rf incident status "$id" --json >"$h/st.json" || fail "status while contain ran"
rf incident status "$id" >"$h/st.txt" || fail "status while contain ran"
touch "$h/go"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "contain: exit $rc: $(tail -3 "$h/err")"
python3 - "$h/st.json" $N <<'PY' || fail "status --json while keys were taken: $(cat "$h/st.json")"
import json, sys
n = int(sys.argv[2])
p = json.load(open(sys.argv[1]))["contain_progress"]
assert p["phase"] == "take new keys" and p["done"] == p["total"] == n, p
assert p["running"] and not p["finished"], p
PY
grep -q "contain running (pid $pid): take new keys $N/$N" "$h/st.txt" ||
	fail "status while keys were taken: $(cat "$h/st.txt")"
check_lines "$h/err" $N
rf incident confirm "$id" --all >/dev/null
rf incident close "$id" >/dev/null

# 2. The pool has half: the take counts those, generation the rest.
rf keys pool fill --alg ec-p256 --count $((N / 2)) >/dev/null 2>&1
id=$(rf incident open --scope all --reason "take 2" 2>/dev/null)
rf --json incident contain "$id" >"$h/out" 2>"$h/err" || fail "contain: $(tail -3 "$h/err")"
check_lines "$h/err" $((N / 2)) $((N / 2))
rf incident confirm "$id" --all >/dev/null
rf incident close "$id" >/dev/null

# 3. Killed once every key is recorded on its connection: the rerun takes
# them back, reserved, and generates none.
rf keys pool fill --alg ec-p256 --count $N >/dev/null 2>&1
id=$(rf incident open --scope all --reason "take 3" 2>/dev/null)
rc=0
(RINGFENCE_TEST_KILL_AT=incident-keys-recorded exec "$RINGFENCE" incident contain "$id" >/dev/null 2>&1) 2>/dev/null || rc=$?
[ "$rc" = 137 ] || fail "contain was not killed at the seam (exit $rc)"
rf --json incident contain "$id" >"$h/out" 2>"$h/err" || fail "rerun: $(tail -3 "$h/err")"
check_lines "$h/err" $N
python3 -c 'import json, sys
o = json.load(open(sys.argv[1]))
assert o["reserved"] == int(sys.argv[2]), o' "$h/out" $N || fail "rerun: $(cat "$h/out")"
rf incident confirm "$id" --all >/dev/null
rf incident close "$id" >/dev/null

# 4. Keys made, not recorded, one connection waived before the rerun.
id=$(rf incident open --scope all --reason "take 4" 2>/dev/null)
rc=0
(RINGFENCE_TEST_KILL_AT=incident-keys-taken exec "$RINGFENCE" incident contain "$id" >/dev/null 2>&1) 2>/dev/null || rc=$?
[ "$rc" = 137 ] || fail "contain was not killed at the seam (exit $rc)"
w=$(sqlite3 "$h/ringfence.db" "SELECT tenant FROM incident_items WHERE incident = $id ORDER BY tenant LIMIT 1")
wn=$(sqlite3 "$h/ringfence.db" "SELECT name FROM incident_items WHERE incident = $id AND tenant = '$w'")
rf incident confirm "$id" --tenant "$w" --connection "$wn" --waive >/dev/null
rf --json incident contain "$id" >"$h/out" 2>"$h/err" || fail "rerun: $(tail -3 "$h/err")"
python3 - "$h/err" $((N - 1)) <<'PY' || fail "rerun's progress lines: $(cat "$h/err")"
import json, sys
left = int(sys.argv[2])
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for l in lines:
    assert 0 <= l["done"] <= l["total"] or l["total"] == 0, l
phases = [l["phase"] for l in lines]
assert "destroy unused keys" in phases, phases
after = phases[phases.index("destroy unused keys"):]
take = [l for l in lines[len(phases) - len(after):] if l["phase"] == "take new keys"]
assert take and take[-1]["total"] == left and take[-1]["done"] == left, take
PY
echo "incident take progress: OK"
