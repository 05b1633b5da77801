#!/usr/bin/env bash
# pool_reject.sh: a pool key that fails its check when taken is rejected,
# and it must never sign: it is destroyed in the token through the custody
# destroy, with its destroy-intent and destroy leaves, and recorded
# destroyed only once the token no longer holds it. Its record says
# "destroying" in the rejection's own transaction, so that nothing can
# leave it rejected and alive without a later run finishing it. A destroy
# that cannot be done leaves the key `destroying`, never `destroyed` with
# its objects in the token, and the take goes on without it.
#   1. The store's algorithm of a free pool key disagrees with the token
#      (rsa-2048 in the token, ec-p256 in the store): contain rejects it,
#      destroys it, and goes on with a key it makes.
#   2. The public key object of one of two free pool keys is gone (deleted
#      with pkcs11-tool): its private key object cannot be checked against
#      the key's id, so it is not destroyed; contain goes on (issue 14:
#      it failed the whole take, and the other key of the take stayed
#      `taken` and unused), the key stays `destroying` with a leaf saying
#      why, the other pool key serves its connection, and close, which
#      destroys what the incident left, says it cannot.
#   3. Contain killed between the rejection and the destroy (test seam
#      pool-rejected; issue 14: the rejection committed alone, and the key
#      stayed active in the token for good): the key is `destroying`, and
#      the rerun destroys it before it takes keys.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" pool-reject
h=$RINGFENCE_HOME
MODULE=/usr/lib/softhsm/libsofthsm2.so
q() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }
leaves() { # $1 type, $2 key id[, $3 text in the leaf]
	q "SELECT count(*) FROM audit_leaf WHERE type = '$1' AND key_id = '$2' AND instr(data, '${3:-}') > 0"
}

# Tenant $1 with one EC connection, and a free pool key that the store
# calls ec-p256 while the token holds an RSA-2048 key: its id on stdout.
mislabelled() {
	local k
	rf tenant add "$1" >/dev/null
	rf issue --tenant "$1" --connection c1 --profile client --keygen ec-p256 >/dev/null 2>&1 ||
		fail "issue $1/c1"
	rf keys pool fill --alg rsa-2048 --count 1 >/dev/null
	k=$(q "SELECT key_id FROM pool WHERE state = 'free' AND alg = 'rsa-2048'")
	[ -n "$k" ] || fail "no free rsa-2048 pool key"
	q "UPDATE pool SET alg = 'ec-p256', made = 0 WHERE key_id = '$k'"
	echo "$k"
}

rf init >/dev/null 2>&1

# 1. The algorithm the store records for a free pool key is not the token's.
k=$(mislabelled acme)
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

# 2. One of two free pool keys has lost its public key object.
rf tenant add beta >/dev/null
for c in c1 c2; do
	rf issue --tenant beta --connection $c --profile client --keygen ec-p256 >/dev/null 2>&1 || fail "issue beta/$c"
done
rf keys pool fill --alg ec-p256 --count 2 >/dev/null
read -r k tok tid < <(q "SELECT p.key_id, k.token, k.token_id FROM pool p JOIN keys k ON k.id = p.key_id
	WHERE p.state = 'free' AND p.alg = 'ec-p256' ORDER BY p.made, p.key_id LIMIT 1" | tr '|' ' ')
other=$(q "SELECT key_id FROM pool WHERE state = 'free' AND alg = 'ec-p256' AND key_id != '$k'")
[ -n "$tid" ] && [ -n "$other" ] || fail "no two free ec-p256 pool keys"
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
rf incident contain "$id" >"$h/c.out" 2>"$h/c.err" ||
	fail "contain failed over a rejected key it could not destroy: $(cat "$h/c.err")"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = 2 ] ||
	fail "contain did not contain both connections"
[ "$(q "SELECT state FROM pool WHERE key_id = '$k'")" = rejected ] || fail "the unpaired pool key was not rejected"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroying ] ||
	fail "the unpaired pool key is recorded $(q "SELECT state FROM keys WHERE id = '$k'"), not destroying"
[ "$(leaves destroy "$k")" = 0 ] || fail "a destroy leaf for the unpaired pool key"
[ "$(leaves pool "$k" '"what":"destroy-pending"')" = 1 ] || fail "no destroy-pending leaf for the unpaired pool key"
[ "$(leaves pool "$k" 'no public key to check it against')" = 1 ] ||
	fail "the destroy-pending leaf does not say why: $(q "SELECT data FROM audit_leaf WHERE type = 'pool' AND key_id = '$k'")"
[ "$(q "SELECT state FROM pool WHERE key_id = '$other'")" = taken ] &&
	[ "$(q "SELECT count(*) FROM certs WHERE key_id = '$other'")" = 1 ] ||
	fail "the other pool key of the take serves no connection"
[ "$(q "SELECT count(*) FROM pool p JOIN keys k ON k.id = p.key_id WHERE p.state = 'taken'
	AND k.state = 'active' AND NOT EXISTS (SELECT 1 FROM certs c WHERE c.key_id = p.key_id)")" = 0 ] ||
	fail "keys of the take left taken and unused"
rf incident confirm "$id" --all >/dev/null
rf incident close "$id" >"$h/c.out" 2>"$h/c.err" && fail "close went on as if the unpaired key were destroyed"
grep -q "$k" "$h/c.err" || fail "close's error does not name the key: $(cat "$h/c.err")"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroying ] || fail "close changed the unpaired key's record"

# 3. Killed between the rejection and the destroy.
k=$(mislabelled gamma)
id=$(rf incident open --scope tenant:gamma --reason "killed reject" 2>/dev/null)
if RINGFENCE_TEST_KILL_AT=pool-rejected "$RINGFENCE" incident contain "$id" >/dev/null 2>&1; then
	fail "contain was not killed at pool-rejected"
fi
[ "$(q "SELECT state FROM pool WHERE key_id = '$k'")" = rejected ] || fail "the killed contain did not reject the key"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroying ] ||
	fail "the rejected key is $(q "SELECT state FROM keys WHERE id = '$k'") after the kill, not destroying"
rf keys list >"$h/kl.txt" 2>&1 || true
grep -q "$k" "$h/kl.txt" || fail "the token no longer holds the rejected key before the rerun"
rf incident contain "$id" >"$h/c.out" 2>"$h/c.err" || fail "the rerun: $(cat "$h/c.err")"
[ "$(q "SELECT state FROM keys WHERE id = '$k'")" = destroyed ] ||
	fail "the rerun left the rejected key $(q "SELECT state FROM keys WHERE id = '$k'")"
[ "$(leaves destroy "$k" 'destroyed in the token')" = 1 ] || fail "the rejected key has no 'destroyed in the token' leaf"
rf keys list >"$h/kl.txt" 2>&1 || true
grep -q "$k" "$h/kl.txt" && fail "the token still holds the rejected key after the rerun"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = 1 ] ||
	fail "the rerun did not contain gamma/c1"

rf audit verify >/dev/null
echo "pool reject: OK"
