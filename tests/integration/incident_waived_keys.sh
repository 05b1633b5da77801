#!/usr/bin/env bash
# Issue 14: the keys a contain killed after it recorded them ("reserved"
# on their connections, taken from the pool) and that no connection got,
# because its tenants were waived before the rerun, are destroyed by close,
# each through the custody destroy with its leaves, and counted. Before,
# close left them reserved and alive in the token (270 of them after one
# kill in a walkthrough). kill -9 at a named moment: test builds only
# (RINGFENCE_TEST_KILL_AT).
set -euo pipefail
N=12
. "$(dirname "$0")/lib/state.sh" waived-keys
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 0 >/dev/null
rf keys pool fill --alg ec-p256 --count "$N" >/dev/null
id=$(rf incident open --scope all --reason "waived keys" 2>/dev/null)
if RINGFENCE_TEST_KILL_AT=incident-keys-recorded "$RINGFENCE" incident contain "$id" \
	>/dev/null 2>&1; then
	fail "contain was not killed at incident-keys-recorded"
fi
reserved=$(q "SELECT count(*) FROM keys WHERE state = 'reserved'")
[ "$reserved" -eq "$N" ] || fail "$reserved keys reserved by the killed contain, not $N"
ids=$(q "SELECT id FROM keys WHERE state = 'reserved' ORDER BY id")
# Every tenant waived: the rerun has nothing to issue, close is next.
rf incident confirm "$id" --all --waive >/dev/null
rf incident contain "$id" >/dev/null 2>&1 || fail "the rerun after the waiver"
rf --json incident close "$id" >close.json 2>err || fail "close: $(cat err)"
python3 - close.json "$N" <<'PY' || fail "close --json: $(cat close.json)"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["state"] == "closed" and o["unused_keys_destroyed"] == int(sys.argv[2]), o
PY
left=$(q "SELECT count(*) FROM keys WHERE state = 'reserved'")
[ "$left" -eq 0 ] || fail "$left reserved keys left after close"
for k in $ids; do
	[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroyed ] ||
		fail "key $k is $(q "SELECT state FROM keys WHERE id = '$k'") after close"
	[ "$(q "SELECT count(*) FROM audit_leaf WHERE key_id = '$k' AND type = 'destroy'")" -ge 1 ] ||
		fail "key $k has no destroy leaf"
done
# The token agrees: nothing the store calls destroyed is still there.
rf keys list >list.txt 2>err || fail "keys list: $(cat err) $(cat list.txt)"
for k in $ids; do
	! grep -q "$k" list.txt || grep "$k" list.txt | grep -q destroyed ||
		fail "key $k still listed: $(grep "$k" list.txt)"
done
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "incident waived keys: $N reserved keys destroyed by close"
