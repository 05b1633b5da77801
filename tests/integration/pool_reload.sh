#!/usr/bin/env bash
# Issue 14: keyd keeps the object handles of the keys it makes and loses
# them when it stops (an on-demand keyd exits after keyd_idle). The next
# keyd finds the free pool keys' handles again in the background, so that
# contain after a restart takes its pool keys without reading every object
# of a token. keyd logs both: when the handles are found again, and each
# time keys were loaded by reading a whole token.
set -euo pipefail
N=${RF_POOL_TENANTS:-60}
. "$(dirname "$0")/lib/state.sh" pool-reload
db=$RINGFENCE_HOME/ringfence.db
log=$RINGFENCE_HOME/keyd.log
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 0 >/dev/null
rf keys pool fill --alg ec-p256 --count "$N" >/dev/null
[ "$(q "SELECT count(*) FROM pool WHERE state = 'free'")" = "$N" ] || fail "the pool was not filled"

# keyd's count of whole-token reads, as it last logged it (0: none yet).
reads() { sed -n 's/.*keys: \([0-9]*\) whole-token reads.*/\1/p' "$log" | tail -1 | grep . || echo 0; }
# The keyd that made the keys stops; the next command starts another
# (keys list loads keys other processes made: whole-token reads, logged).
rf keyd stop >/dev/null
stop_keyd
: >"$log"
rf keys list >/dev/null
# It finds the handles again in the background, within seconds.
for i in $(seq 100); do
	grep -q "handles of .* free keys found again" "$log" 2>/dev/null && break
	sleep 0.2
done
grep -q "standby pool: handles of $N of $N free keys found again" "$log" ||
	fail "keyd did not find the pool keys' handles again: $(tail -3 "$log")"
sleep 1.5
before=$(reads)

id=$(rf incident open --scope all --reason reload)
rf incident contain "$id" >"$RINGFENCE_HOME/out"
grep -q "$N new keys from the standby pool, 0 generated" "$RINGFENCE_HOME/out" ||
	fail "contain did not take its keys from the pool: $(cat "$RINGFENCE_HOME/out")"
# keyd logs a changed count on its next background step (a second).
sleep 2.5
[ "$(reads)" = "$before" ] ||
	fail "contain after a keyd restart read whole tokens: $before before, $(reads) after"

# The check can fail: without the reload (a test hook), the pool keys
# the next keyd takes are loaded by reading the tokens, and keyd says so.
rf keys pool fill --alg ec-p256 --count 4 >/dev/null
id2=$(rf incident open --scope tenant:t000001 --reason control)
rf keyd stop >/dev/null
stop_keyd
: >"$log"
RINGFENCE_TEST_POOL_NO_RELOAD=1 rf incident contain "$id2" >/dev/null
sleep 2.5
[ "$(reads)" -gt 0 ] ||
	fail "keyd did not report a whole-token read without the handles: $(tail -3 "$log")"
echo "ok"
