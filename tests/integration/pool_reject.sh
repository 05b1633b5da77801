#!/usr/bin/env bash
# pool_reject.sh: a pool key that fails its check when taken is rejected,
# and it must never sign: it is destroyed in the token through the custody
# destroy, with its destroy-intent and destroy leaves, and recorded
# destroyed only once the token no longer holds it. A destroy that cannot
# be done says so and leaves the key `destroying`, never `destroyed` with
# its objects in the token.
#   1. The store's algorithm of a free pool key disagrees with the token
#      (rsa-2048 in the token, ec-p256 in the store): contain rejects it,
#      destroys it, and goes on with a key it makes.
#   2. The public key object of a free pool key is gone (deleted with
#      pkcs11-tool): its private key object cannot be checked against the
#      key's id, so it is not destroyed; contain fails saying so, the key
#      stays `destroying`, and the rerun goes on without it.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" pool-reject
h=$RINGFENCE_HOME
MODULE=/usr/lib/softhsm/libsofthsm2.so
q() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }
leaves() { # $1 type, $2 key id[, $3 text in the leaf]
	q "SELECT count(*) FROM audit_leaf WHERE type = '$1' AND key_id = '$2' AND instr(data, '${3:-}') > 0"
}

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf issue --tenant acme --connection c1 --profile client --keygen ec-p256 >/dev/null 2>&1 || fail "issue acme/c1"

# 1. The algorithm the store records for a free pool key is not the token's.
rf keys pool fill --alg rsa-2048 --count 1 >/dev/null
k=$(q "SELECT key_id FROM pool WHERE state = 'free' AND alg = 'rsa-2048'")
[ -n "$k" ] || fail "no free rsa-2048 pool key"
q "UPDATE pool SET alg = 'ec-p256', made = 0 WHERE key_id = '$k'"
id=$(rf incident open --scope tenant:acme --reason "pool algorithm" 2>/dev/null)
rf incident contain "$id" >"$h/c.out" 2>"$h/c.err" || fail "contain: $(cat "$h/c.err")"
[ "$(q "SELECT state FROM pool WHERE key_id = '$k'")" = rejected ] || fail "the pool key was not rejected"
[ "$(leaves pool "$k" '"what":"reject"')" = 1 ] || fail "no reject leaf"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroyed ] ||
	fail "the rejected key is recorded $(q "SELECT state FROM keys WHERE id = '$k'")"
[ "$(leaves destroy-intent "$k")" = 1 ] || fail "the rejected key has $(leaves destroy-intent "$k") destroy-intent leaves"
[ "$(leaves destroy "$k" 'destroyed in the token')" = 1 ] ||
	fail "the rejected key has no 'destroyed in the token' leaf: $(q "SELECT data FROM audit_leaf WHERE key_id = '$k'")"
rf keys list >"$h/kl.txt" 2>&1 || fail "keys list after the reject: $(grep -i disagree "$h/kl.txt")"
grep -q "$k" "$h/kl.txt" && fail "the token still holds the rejected key"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = 1 ] ||
	fail "the connection was not contained"

# 2. A free pool key's public key object is gone.
rf tenant add beta >/dev/null
rf issue --tenant beta --connection c1 --profile client --keygen ec-p256 >/dev/null 2>&1 || fail "issue beta/c1"
rf keys pool fill --alg ec-p256 --count 1 >/dev/null
read -r k tok tid < <(q "SELECT p.key_id, k.token, k.token_id FROM pool p JOIN keys k ON k.id = p.key_id
	WHERE p.state = 'free' AND p.alg = 'ec-p256'" | tr '|' ' ')
[ -n "$tid" ] || fail "no free ec-p256 pool key"
stop_keyd
export SOFTHSM2_CONF=$h/softhsm2.conf
slot=$(pkcs11-tool --module "$MODULE" --list-token-slots 2>/dev/null |
	awk -v L="$tok" '/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { id = $3; gsub(/[():]/, "", id) }
	/^ *token label *:/ { sub(/^ *token label *: */, ""); sub(/ *$/, ""); if ($0 == L) print id }')
[ -n "$slot" ] || fail "no slot for token $tok"
pkcs11-tool --module "$MODULE" --login --pin "$(custody_pin)" --slot "$slot" \
	--delete-object --type pubkey --id "$tid" >/dev/null 2>&1 || fail "pkcs11-tool could not delete the public key object"
unset SOFTHSM2_CONF
id=$(rf incident open --scope tenant:beta --reason "pool public key gone" 2>/dev/null)
if rf incident contain "$id" >"$h/c.out" 2>"$h/c.err"; then
	fail "contain went on as if the unpaired pool key were destroyed: $(cat "$h/c.out")"
fi
grep -q "pool key $k was rejected" "$h/c.err" && grep -q "no public key to check it against" "$h/c.err" ||
	fail "contain's error does not say the rejected key was not destroyed: $(cat "$h/c.err")"
[ "$(q "SELECT state FROM pool WHERE key_id = '$k'")" = rejected ] || fail "the unpaired pool key was not rejected"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroying ] ||
	fail "the unpaired pool key is recorded $(q "SELECT state FROM keys WHERE id = '$k'"), not destroying"
[ "$(leaves destroy "$k")" = 0 ] || fail "a destroy leaf for the unpaired pool key"
rf incident contain "$id" >"$h/c.out" 2>"$h/c.err" || fail "the rerun: $(cat "$h/c.err")"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = 1 ] ||
	fail "the rerun did not contain the connection"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroying ] || fail "the rerun changed the unpaired key's record"

rf audit verify >/dev/null
echo "pool reject: OK"
