#!/usr/bin/env bash
# keyd_ledger_cas.sh: keyd signs for serve (class server) with a CA key
# only as what its ledger says the key is (docs/keys.md, "What the policy
# trusts"). A ledger kept across `init --new` (the PIN from the
# environment: nothing in the custody folder to move aside) already took
# the old state's CA keys; the new state's are written into it by init
# before its store names them (even an init killed right after its commit
# leaves none out), so serve's CRLs of the new issuing CA are signed, not
# refused as keys the store renamed. And a CRL with the OCSP signer's key is refused. With the
# PIN from the environment keyd logs in to every token before it forgets
# the PIN: `keys list` and issuance reach all 32 tokens (before, the first
# token other than the first failed with "no token PIN").
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" keyd-ledger-cas
client="$RF_BINARY_DIR/rf-keyd_client"
cd "$RINGFENCE_HOME"
export RINGFENCE_PIN=1234567890abcdef
ledger=$RINGFENCE_HOME-custody/revoked.ledger
key_of() { rf --json keys list | jq -r "select(.purpose == \"$1\" and .state == \"active\") | .id"; }
server_crl() { RF_KEYD_CLIENT_SERVER=1 "$client" crl-empty "$1" issuing.pem 2>"$2"; }

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "init"; }
rf tenant add acme >/dev/null
# (One connection each: a third credential of one connection would revoke
# the first, and the empty CRLs below say nothing is revoked.)
for i in 1 2 3 4 5 6 7 8; do
	rf issue --tenant acme --connection "c$i" --profile client \
		--keygen ec-p256 >/dev/null 2>issue.err ||
		fail "issue with the PIN from the environment: $(cat issue.err)"
done
[ "$(rf --json keys list 2>list.err | wc -l)" = 12 ] || fail "keys list: $(cat list.err)"
rf cert ca issuing >issuing.pem
old=$(key_of issuing)
server_crl "$old" crl1.err || fail "serve's CRL of the first state: $(cat crl1.err)"
grep -qx "s 3" "$ledger" || fail "the ledger did not take the store's CA keys: $(cat "$ledger")"

# init --new, killed right after its commit: the ledger learnt the new CA
# keys before the store named them (it was written after the commit, so a
# kill in between left serve's CRLs refused for good).
rf keyd stop >/dev/null
rc=0
RINGFENCE_TEST_KILL_AT=init-ca-committed rf init --new >/dev/null 2>new.err || rc=$?
[ $rc = 137 ] || fail "init --new was not killed after its commit (rc $rc): $(cat new.err)"
[ -e "$ledger" ] || fail "the ledger went aside (this test needs it kept)"
rf cert ca issuing >issuing.pem
new=$(key_of issuing)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "no new issuing key after init --new"
grep -q "^m $new issuing$" "$ledger" || fail "init did not write the new issuing key into the ledger"
server_crl "$new" crl2.err || fail "serve's CRL of the new state refused: $(cat crl2.err)"

# The OCSP signer's key signs no CRL for serve, whatever the CA rows say.
rc=0
server_crl "$(key_of ocsp)" crl3.err || rc=$?
[ $rc = 3 ] && grep -q "a CRL with a key that is not a CA's" crl3.err ||
	fail "a CRL with the OCSP key: rc $rc $(cat crl3.err)"
rf audit verify >/dev/null 2>verify.err || fail "audit verify: $(cat verify.err)"
echo "keyd_ledger_cas: ok"
