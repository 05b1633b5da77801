#!/usr/bin/env bash
# Revocation seen by independent consumers: openssl verify -crl_check
# passes before `ringfence revoke` and fails with "certificate revoked"
# right after it (no separate CRL step), openssl crl shows the reason and
# the CRL number, and the number increases on regeneration.
set -euo pipefail
: "${RINGFENCE:?RINGFENCE must name the built binary}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rf-revoke-crl-XXXXXX")
# Stop the keyd the commands started (by its pid file), then remove.
trap '"$RINGFENCE" keyd stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
export RINGFENCE_HOME="$tmp/home"
unset RINGFENCE_PIN RINGFENCE_NOW RINGFENCE_MODULE RINGFENCE_TOKEN || true

fail() {
	echo "revoke_crl: FAIL: $*" >&2
	exit 1
}

crlnum() { # the CRL number of a DER CRL, as a decimal
	local hex
	hex=$(openssl crl -inform DER -in "$1" -noout -crlnumber |
		sed 's/^crlNumber=//; s/^0x//')
	echo $((16#$hex))
}

"$RINGFENCE" init >/dev/null
"$RINGFENCE" tenant add acme >/dev/null
"$RINGFENCE" tenant add other >/dev/null
"$RINGFENCE" issue --tenant acme --profile client --keygen ec-p256 \
	--out "$tmp/chain.pem" >"$tmp/meta"
serial=$(sed -n 's/^serial: //p' "$tmp/meta")
[ -n "$serial" ] || fail "no serial in the issue output"
"$RINGFENCE" issue --tenant other --profile client --keygen ec-p256 \
	--out "$tmp/other.pem" >/dev/null
"$RINGFENCE" cert ca root >"$tmp/root.pem"
"$RINGFENCE" cert ca issuing >"$tmp/issuing.pem"
openssl x509 -in "$tmp/chain.pem" -out "$tmp/cert.pem"
openssl x509 -in "$tmp/other.pem" -out "$tmp/othercert.pem"

# Before: the leaf passes with its CRL; the whole chain with both CRLs.
"$RINGFENCE" crl --out "$tmp/crl1.der"
"$RINGFENCE" crl --issuer root --out "$tmp/root.der"
openssl crl -inform DER -in "$tmp/crl1.der" -out "$tmp/crl1.pem"
openssl crl -inform DER -in "$tmp/root.der" -out "$tmp/root-crl.pem"
verify() { # verify CRLFILE CERT [extra flags]
	local crl=$1 cert=$2
	shift 2
	openssl verify -crl_check "$@" -CRLfile "$crl" -CAfile "$tmp/root.pem" \
		-untrusted "$tmp/issuing.pem" "$cert" 2>&1
}
verify "$tmp/crl1.pem" "$tmp/cert.pem" | grep -q ': OK$' ||
	fail "verify before revocation: $(verify "$tmp/crl1.pem" "$tmp/cert.pem" || true)"
cat "$tmp/crl1.pem" "$tmp/root-crl.pem" >"$tmp/all1.pem"
out=$(verify "$tmp/all1.pem" "$tmp/cert.pem" -crl_check_all || true)
echo "$out" | grep -q ': OK$' || fail "chain verify with both CRLs: $out"
# The CRL is signed by the issuing CA and names it.
openssl crl -inform DER -in "$tmp/crl1.der" -noout -CAfile "$tmp/issuing.pem" \
	2>&1 | grep -q 'verify OK' || fail "CRL signature does not verify"
n1=$(crlnum "$tmp/crl1.der")

# Usage and lookup errors.
set +e
"$RINGFENCE" revoke 0abc1234 --reason keyCompromise 2>"$tmp/err"
rc=$?
"$RINGFENCE" revoke "$serial" --reason removeFromCRL 2>/dev/null
rc2=$?
"$RINGFENCE" revoke "$serial" --reason stolen 2>/dev/null
rc3=$?
"$RINGFENCE" revoke 2>/dev/null
rc4=$?
set -e
[ "$rc" -eq 1 ] || fail "unknown serial: exit $rc"
grep -q 'no certificate with serial abc1234' "$tmp/err" ||
	fail "unknown serial message: $(cat "$tmp/err")"
[ "$rc2" -eq 2 ] || fail "removeFromCRL accepted (exit $rc2)"
[ "$rc3" -eq 2 ] || fail "unknown reason accepted (exit $rc3)"
[ "$rc4" -eq 2 ] || fail "revoke without a target: exit $rc4"

# Revoke: visible as soon as the command returns.
out=$("$RINGFENCE" revoke "$serial" --reason keyCompromise)
[ "$out" = "revoked 1 certificate(s)" ] || fail "revoke said: $out"
"$RINGFENCE" crl --out "$tmp/crl2.der"
n2=$(crlnum "$tmp/crl2.der")
[ "$n2" -gt "$n1" ] || fail "CRL number $n2 after revocation, was $n1"
openssl crl -inform DER -in "$tmp/crl2.der" -out "$tmp/crl2.pem"
out=$(verify "$tmp/crl2.pem" "$tmp/cert.pem" || true)
echo "$out" | grep -q 'certificate revoked' ||
	fail "verify after revocation: $out"
out=$(verify "$tmp/crl2.pem" "$tmp/othercert.pem" || true)
echo "$out" | grep -q ': OK$' || fail "other tenant's certificate: $out"
text=$(openssl crl -inform DER -in "$tmp/crl2.der" -noout -text)
echo "$text" | grep -q 'Key Compromise' || fail "no reason in the CRL"
echo "$text" | grep -q 'X509v3 CRL Number' || fail "no CRL number"
echo "$text" | grep -q 'X509v3 Authority Key Identifier' || fail "no AKI"
echo "$text" | grep -qi "Serial Number: 0*${serial}\$" ||
	fail "serial $serial not listed: $text"

# The command wrote the CRL itself: `crl` reads it without a new number.
"$RINGFENCE" crl --out "$tmp/crl3.der"
[ "$(crlnum "$tmp/crl3.der")" -eq "$n2" ] || fail "crl regenerated needlessly"

# Again: nothing changes.
out=$("$RINGFENCE" revoke "$serial" --reason superseded)
[ "$out" = "already revoked" ] || fail "second revoke said: $out"

# Regeneration increases the number; stdout works when not a terminal.
"$RINGFENCE" crl --regenerate >"$tmp/crl4.der"
n4=$(crlnum "$tmp/crl4.der")
[ "$n4" -gt "$n2" ] || fail "CRL number $n4 after regeneration, was $n2"
openssl crl -inform DER -in "$tmp/crl4.der" -noout -text | grep -q 'Key Compromise' ||
	fail "regenerated CRL lost the entry"

# A tenant: every certificate of it.
out=$("$RINGFENCE" revoke --tenant other --reason cessationOfOperation)
[ "$out" = "revoked 1 certificate(s)" ] || fail "tenant revoke said: $out"
"$RINGFENCE" crl --out "$tmp/crl5.der"
openssl crl -inform DER -in "$tmp/crl5.der" -out "$tmp/crl5.pem"
out=$(verify "$tmp/crl5.pem" "$tmp/othercert.pem" || true)
echo "$out" | grep -q 'certificate revoked' || fail "tenant revoke not in CRL: $out"

# Four writers regenerating at once: CRL numbers taken n, n+1 may be
# stored in the other order; the loser makes a new CRL instead of failing.
for w in 1 2 3 4; do
	(for i in $(seq 10); do
		"$RINGFENCE" crl --regenerate --out "$tmp/race$w.der" 2>>"$tmp/race.err" ||
			echo "writer $w run $i failed" >>"$tmp/race.err"
	done) &
done
wait
[ ! -s "$tmp/race.err" ] || { cat "$tmp/race.err" >&2; fail "concurrent CRL generation failed"; }
"$RINGFENCE" crl --out "$tmp/crl6.der"
n6=$(crlnum "$tmp/crl6.der")
[ "$n6" -ge $((n4 + 40)) ] || fail "CRL number $n6 after 40 regenerations from $n4"

# DER never goes to a terminal (script(1) gives the command a pty).
if command -v script >/dev/null; then
	set +e
	script -qec "'$RINGFENCE' crl" /dev/null >/dev/null 2>&1
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "crl wrote DER to a terminal (exit $rc)"
fi

echo "revoke_crl: ok"
