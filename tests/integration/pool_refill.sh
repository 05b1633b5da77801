#!/usr/bin/env bash
# Issue 14 item 1: the custody process (keyd) refills the standby pool by
# itself, between requests, when it is below its target (setting
# pool_refill, on by default): every pool key has its keygen leaf with the
# label "pool" and keyd as the actor, `keys pool status` shows the fill
# rate and the time to refill, signing requests are answered while it
# refills, and pool_refill=0 makes nothing.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" refill
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
st() { # alg field
	rf keys pool status --json | python3 -c "
import json, sys
for l in sys.stdin:
    o = json.loads(l)
    if o['alg'] == sys.argv[1]:
        print(o[sys.argv[2]])" "$1" "$2"
}

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 10 0 >/dev/null
target=$(st ec-p256 target)
[ "$target" = 11 ] || fail "ec-p256 target is $target, not 10 connections + 10%"

# Off: a keyd running for a while makes no pool key.
stop_keyd
"$RINGFENCE" keyd --idle 0 >/dev/null 2>&1 &
for _ in $(seq 100); do rf keyd status >/dev/null 2>&1 && break; sleep 0.1; done
sleep 3
[ "$(st ec-p256 free)" = 0 ] || fail "pool_refill=0, yet keyd made pool keys"
stop_keyd

# On: keyd fills the pool to its target by itself.
export RINGFENCE_POOL_REFILL=1
"$RINGFENCE" keyd --idle 0 >/dev/null 2>&1 &
for _ in $(seq 100); do rf keyd status >/dev/null 2>&1 && break; sleep 0.1; done
# A signature while it refills (a certificate issued through keyd).
t0=$(date +%s%N)
rf issue --tenant t000001 --connection extra --profile client --keygen ec-p256 >/dev/null 2>&1 ||
	fail "issue failed while keyd refilled the pool"
t1=$(date +%s%N)
echo "issue while refilling: $(((t1 - t0) / 1000000)) ms"
for _ in $(seq 600); do
	[ "$(st ec-p256 free)" -ge "$(st ec-p256 target)" ] && break
	sleep 0.1
done
free=$(st ec-p256 free)
target=$(st ec-p256 target)
[ "$free" -ge "$target" ] || fail "keyd did not refill the pool: $free of $target"
# It stops at the target (a step never makes more than the pool lacks).
sleep 2
[ "$(st ec-p256 free)" = "$target" ] || fail "keyd made more than the target: $(st ec-p256 free) of $target"
[ "$(st ec-p384 free)" = 0 ] || fail "keyd made ec-p384 keys no connection needs"
rate=$(st ec-p256 rate)
python3 -c "import sys; assert float(sys.argv[1]) > 0, sys.argv[1]" "$rate" ||
	fail "keys pool status shows no fill rate ($rate)"
[ "$(st ec-p256 refill_seconds)" = 0.0 ] || fail "a full pool does not show refill time 0"
rf keys pool status >"$RINGFENCE_HOME/st.txt"
grep -qE '^ec-p256 .* full$' "$RINGFENCE_HOME/st.txt" || fail "status does not say the pool is full"
if grep -q "refill is off" "$RINGFENCE_HOME/st.txt"; then fail "status says refill is off while keyd refills"; fi
[ "$(st ec-p256 background_refill)" = True ] || fail "status --json does not say keyd refills"
# Every pool key was made by keyd with its keygen leaf.
leaves=$(q "SELECT count(*) FROM audit_leaf WHERE type = 'keygen' AND key_id IN (SELECT key_id FROM pool) AND instr(data, '\"actor\":\"keyd\"') > 0 AND instr(data, 'pool') > 0")
[ "$leaves" = "$(q "SELECT count(*) FROM pool")" ] || fail "$leaves keygen leaves by keyd for $(q "SELECT count(*) FROM pool") pool keys"
echo "keyd refilled $free ec-p256 keys at $rate keys/s"
