#!/usr/bin/env bash
# Contain with a standby pool too short for its connections: the keys it
# lacks are made in the token (RSA-2048 for Entra: about 0.4 s each in
# SoftHSM, minutes for thousands), and the revocation it committed is
# published (OCSP re-signed, CRLs regenerated) before it makes them, not
# after: a running server answers `revoked` for every old credential while
# the keys are made, and for good if contain is killed meanwhile (a rerun
# finishes the rest). Checked with openssl ocsp against serve and openssl
# crl on the CRL serve publishes. serve listens on 127.0.0.1 only and is
# stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" publish-first
. "$here/lib/serve.sh"
TID=72f988bf-86f1-41af-91ab-2d7cd011db47
CID=00000003-0000-4000-8000-0000000000aa

rf init >/dev/null 2>&1
serials=()
for t in t1 t2 t3; do
	rf tenant add "$t" >/dev/null
	rf connector entra "$t/m365" --tenant-id "$TID" --client-id "$CID" >/dev/null
	s=$(rf --json issue --tenant "$t" --connection m365 --profile assertion \
		--keygen rsa-2048 | jq -r .serial)
	[ -n "$s" ] || fail "no serial for $t"
	serials+=("$s")
done
[ "$(rf --json keys pool status | jq -s '[.[] | select(.alg == "rsa-2048")][0].free')" = 0 ] ||
	fail "the RSA pool is not empty: $(rf keys pool status)"
start_serve --duration 120
curl -sf -o issuing.pem "http://127.0.0.1:$port/ca/issuing.pem"
mv issuing.pem "$RINGFENCE_HOME/issuing.pem"
ocsp() { # SERIAL -> good, revoked, ...
	openssl ocsp -issuer "$RINGFENCE_HOME/issuing.pem" -serial "0x$1" \
		-url "http://127.0.0.1:$port/ocsp" -noverify 2>/dev/null |
		sed -n "s/^0x$1: *//p"
}
for s in "${serials[@]}"; do
	[ "$(ocsp "$s")" = good ] || fail "before the incident, $s is $(ocsp "$s")"
done

# Contain, killed once it has made the keys the pool lacks (before it
# records them on the connections).
id=$(rf incident open --scope all --reason "connector fleet breach" 2>/dev/null)
rc=0
(RINGFENCE_TEST_KILL_AT=incident-keys-taken exec "$RINGFENCE" incident contain "$id" \
	>/dev/null 2>"$RINGFENCE_HOME/contain.err") 2>/dev/null || rc=$?
[ "$rc" = 137 ] || fail "contain was not killed at the seam (exit $rc): $(cat "$RINGFENCE_HOME/contain.err")"
for s in "${serials[@]}"; do
	[ "$(ocsp "$s")" = revoked ] ||
		fail "contain killed while it made keys: OCSP says $(ocsp "$s") for revoked $s"
done
curl -sf -o "$RINGFENCE_HOME/issuing.crl" "http://127.0.0.1:$port/crl/issuing.crl"
openssl crl -inform DER -in "$RINGFENCE_HOME/issuing.crl" -noout -text >"$RINGFENCE_HOME/crl.txt"
for s in "${serials[@]}"; do
	grep -qi "Serial Number: 0*$s\$" "$RINGFENCE_HOME/crl.txt" ||
		fail "the CRL does not list $s while contain made keys"
done

# The rerun finishes: every connection has a new RSA credential, good in
# OCSP, and the old ones stay revoked.
rf incident contain "$id" >/dev/null 2>&1 || fail "the rerun of contain failed"
for t in t1 t2 t3; do
	n=$(rf --json cert list --tenant "$t" | jq -r '[.[] | select(.status == "valid")] | length')
	[ "$n" = 1 ] || fail "$t has $n valid credentials after the rerun"
	s=$(rf --json cert list --tenant "$t" | jq -r '.[] | select(.status == "valid") | .serial')
	[ "$(ocsp "$s")" = good ] || fail "$t's new credential $s is $(ocsp "$s")"
done
for s in "${serials[@]}"; do
	[ "$(ocsp "$s")" = revoked ] || fail "after the rerun, $s is $(ocsp "$s")"
done
echo "incident_publish_first: ok"
