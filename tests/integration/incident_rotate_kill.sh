#!/usr/bin/env bash
# Issue 14: an issuer-scope contain killed while it rotates the issuing CA
# (the new CA key made, the root's signature over its certificate made,
# nothing committed) leaves no issuing key behind: the rerun destroys the
# killed run's key, each step with its leaf, and makes the one it commits.
# Before, the killed run's key stayed in the token for ever, recorded
# `generated` and known to keyd's ledger as an issuing key, beside a
# root-signed CA certificate for it that no CRL could name; the rerun made
# a second one. kill -9 at a named moment: test builds only
# (RINGFENCE_TEST_KILL_AT).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" rotate-kill
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 4 0 >/dev/null
id=$(rf incident open --scope issuer:issuing --reason "rotate kill" 2>/dev/null)
if RINGFENCE_TEST_KILL_AT=ca-rotate-signed "$RINGFENCE" incident contain "$id" \
	>/dev/null 2>&1; then
	fail "contain was not killed at ca-rotate-signed"
fi
orphan=$(q "SELECT id FROM keys WHERE label = 'ringfence ca issuing-inc$id'")
[ "$(echo "$orphan" | grep -c .)" -eq 1 ] ||
	fail "the killed run left '$orphan' as its CA key"
[ "$(q "SELECT state FROM keys WHERE id = '$orphan'")" = generated ] ||
	fail "the killed run's CA key is $(q "SELECT state FROM keys WHERE id = '$orphan'")"
rf incident contain "$id" >out 2>err || fail "the rerun: $(cat err)"
[ "$(q "SELECT state FROM keys WHERE id = '$orphan'")" = destroyed ] ||
	fail "the killed run's CA key is $(q "SELECT state FROM keys WHERE id = '$orphan'") after the rerun"
[ "$(q "SELECT count(*) FROM audit_leaf WHERE key_id = '$orphan' AND type = 'destroy'")" -ge 1 ] ||
	fail "no destroy leaf for the killed run's CA key"
# One issuing key for the new CA, the one its certificate names.
new=$(q "SELECT key_id FROM cas WHERE name = 'issuing-inc$id'")
[ -n "$new" ] && [ "$new" != "$orphan" ] || fail "the new CA's key: '$new'"
[ "$(q "SELECT count(*) FROM keys WHERE label = 'ringfence ca issuing-inc$id' AND state != 'destroyed'")" -eq 1 ] ||
	fail "more than one live key for the new CA: $(q "SELECT id, state FROM keys WHERE label = 'ringfence ca issuing-inc$id'")"
rf keys list >list.txt 2>err || fail "keys list: $(cat err) $(cat list.txt)"
! grep "$orphan" list.txt | grep -qv destroyed ||
	fail "the killed run's CA key is still listed: $(grep "$orphan" list.txt)"
# The store's word is not enough to destroy a CA's key: a row saying the
# root key was left by a killed rotation (as serve's user could write it)
# stops the rotation, and the root key stays.
rf incident confirm "$id" --all >/dev/null
rf incident close "$id" >/dev/null || fail "close"
id2=$(rf incident open --scope "issuer:issuing-inc$id" --reason "forged leftover" 2>/dev/null)
root=$(q "SELECT key_id FROM cas WHERE name = 'root'")
q "UPDATE keys SET made_for = 'rotate-issuing-inc$id2', state = 'generated' WHERE id = '$root'"
if rf incident contain "$id2" >out 2>err; then fail "contain destroyed a CA key on the store's word"; fi
grep -q "the store was changed behind ringfence's back" err ||
	fail "the forged leftover: $(cat err)"
q "UPDATE keys SET made_for = '', state = 'active' WHERE id = '$root'"
rf incident contain "$id2" >out 2>err || fail "contain after the store was mended: $(cat err)"
[ "$(q "SELECT state FROM keys WHERE id = '$root'")" = active ] || fail "the root key is not active"
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "incident rotate kill: the killed run's CA key destroyed by the rerun"
