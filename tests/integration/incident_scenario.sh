#!/usr/bin/env bash
# Issue 5 scenario: 3,600 tenants (the number in the incident), a compromised
# issuing key. Open an incident, contain it, check with `openssl ocsp` that
# old certificates are revoked and their replacements good, confirm tenants,
# check the counts, close, and verify the audit record.
set -euo pipefail
N=${RF_SCENARIO_TENANTS:-3600}
. "$(dirname "$0")/lib/state.sh" incident

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 3
[ "$(rf connection list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$N" ] ||
	fail "populate did not make $N connections"

# Bad input first: each gets a clear one-line error and a non-zero exit.
for bad in "nonsense" "tenant:nobody" "issuer:nope" "key:xyz" "connection:t000001"; do
	if rf incident open --scope "$bad" --reason test 2>"$RINGFENCE_HOME/err"; then
		fail "scope $bad accepted"
	fi
	[ "$(wc -l <"$RINGFENCE_HOME/err")" = 1 ] || fail "scope $bad: not one line"
done

id=$(rf incident open --scope issuer:issuing --reason "issuing key exposed" 2>/dev/null | head -1)
[ "$id" -gt 0 ] || fail "no incident id"
rf incident open --scope issuer:issuing --reason again 2>/dev/null &&
	fail "a second incident on the same scope was accepted"
rf incident confirm "$id" --tenant t000001 2>/dev/null &&
	fail "confirm before contain was accepted"

t0=$(date +%s.%N)
rf incident contain "$id"
t1=$(date +%s.%N)
echo "contained $N tenants in $(echo "$t1 - $t0" | bc) s"
# Containment again: resumes, issues nothing new.
rf incident contain "$id" | grep -q ' 0 new credentials' ||
	fail "a second contain issued again"

rf incident report "$id" --out "$RINGFENCE_HOME/report" >/dev/null
python3 - "$RINGFENCE_HOME/report.json" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
assert r["connections"] == n, r["connections"]
assert r["counts"]["contained"] == n, r["counts"]
assert r["new_issuer"], "no new issuer"
for c in r["connections_detail"]:
    assert c["new_serial"] and c["new_serial"] != c["old_serial"], c
PY

# The compromised issuing CA itself is revoked (cACompromise) in the root's
# CRL: openssl sees it, and rejects the CA's certificate checking it.
rf cert ca root >"$RINGFENCE_HOME/root.pem"
rf cert ca issuing --replaced >"$RINGFENCE_HOME/old-issuer.pem"
rf crl --issuer root --out "$RINGFENCE_HOME/root.crl"
openssl crl -inform DER -in "$RINGFENCE_HOME/root.crl" -out "$RINGFENCE_HOME/root-crl.pem"
openssl crl -in "$RINGFENCE_HOME/root-crl.pem" -noout -text >"$RINGFENCE_HOME/root-crl.txt"
iss_serial=$(openssl x509 -in "$RINGFENCE_HOME/old-issuer.pem" -noout -serial | cut -d= -f2)
grep -q "Serial Number: $iss_serial" "$RINGFENCE_HOME/root-crl.txt" ||
	fail "old issuing CA $iss_serial not in the root CRL"
grep -q "CA Compromise" "$RINGFENCE_HOME/root-crl.txt" || fail "root CRL reason"
if openssl verify -crl_check -CRLfile "$RINGFENCE_HOME/root-crl.pem" \
	-CAfile "$RINGFENCE_HOME/root.pem" "$RINGFENCE_HOME/old-issuer.pem" \
	>"$RINGFENCE_HOME/v.txt" 2>&1; then
	fail "the old issuing CA still verifies against the root CRL"
fi
grep -q "certificate revoked" "$RINGFENCE_HOME/v.txt" || fail "verify: $(cat "$RINGFENCE_HOME/v.txt")"
echo "root CRL: old issuing CA $iss_serial revoked; openssl verify: $(grep -m1 error "$RINGFENCE_HOME/v.txt")"

# openssl ocsp against the server: sample old (revoked) and new (good).
. "$(dirname "$0")/lib/ports.sh"
serve_late "$RINGFENCE_HOME/serve.log" --duration 120 || fail "serve did not come up"
rf cert ca root >"$RINGFENCE_HOME/root.pem"
python3 - "$RINGFENCE_HOME/report.json" >"$RINGFENCE_HOME/sample" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["connections_detail"]
for c in d[:: max(1, len(d) // 5)][:5]:
    print(c["tenant"], c["old_serial"], c["new_serial"])
PY
while read -r tenant old new; do
	rf cert show "$old" >"$RINGFENCE_HOME/old.pem"
	rf cert show "$new" >"$RINGFENCE_HOME/new.pem"
	rf cert ca issuing --replaced >"$RINGFENCE_HOME/old-issuer.pem"
	rf cert ca "$(python3 -c "import json; print(json.load(open('$RINGFENCE_HOME/report.json'))['new_issuer'])")" \
		>"$RINGFENCE_HOME/new-issuer.pem"
	cat "$RINGFENCE_HOME/root.pem" "$RINGFENCE_HOME/old-issuer.pem" \
		"$RINGFENCE_HOME/new-issuer.pem" >"$RINGFENCE_HOME/trust.pem"
	openssl ocsp -issuer "$RINGFENCE_HOME/old-issuer.pem" -cert "$RINGFENCE_HOME/old.pem" \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$RINGFENCE_HOME/trust.pem" \
		>"$RINGFENCE_HOME/o1" 2>&1 || true
	grep -q ': revoked' "$RINGFENCE_HOME/o1" || { cat "$RINGFENCE_HOME/o1"; fail "old $old of $tenant not revoked"; }
	grep -q 'Reason: keyCompromise' "$RINGFENCE_HOME/o1" || fail "old $old: reason"
	openssl ocsp -issuer "$RINGFENCE_HOME/new-issuer.pem" -cert "$RINGFENCE_HOME/new.pem" \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$RINGFENCE_HOME/trust.pem" \
		>"$RINGFENCE_HOME/o2" 2>&1 || true
	grep -q ': good' "$RINGFENCE_HOME/o2" || { cat "$RINGFENCE_HOME/o2"; fail "new $new of $tenant not good"; }
	grep -q 'Response verify OK' "$RINGFENCE_HOME/o2" || fail "new $new: response does not verify"
done <"$RINGFENCE_HOME/sample"
# The server records OCSP queries for the incident's serials as sightings
# (the last of them as it stops); an anonymous query is not proof of use,
# so nothing is re-established.
kill "$server"
wait "$server" 2>/dev/null || true
server=""

# Packages: one tenant, with a pinned relying party (t000001 is pinned).
rf incident package "$id" --tenant t000001 --out "$RINGFENCE_HOME/pkg" >/dev/null
p=$RINGFENCE_HOME/pkg/t000001/mail
for f in certificate.pem certificate.der README.txt thumbprints.txt graph-keyCredentials.json; do
	[ -s "$p/$f" ] || fail "package lacks $f"
done
openssl x509 -in "$p/certificate.pem" -noout || fail "package certificate unreadable"
python3 -c "import json; k=json.load(open('$p/graph-keyCredentials.json'))['keyCredentials']; assert len(k)==1 and k[0]['type']=='AsymmetricX509Cert'"

rf incident status "$id" --json >"$RINGFENCE_HOME/status0.json"
python3 - "$RINGFENCE_HOME/status0.json" "$RINGFENCE_HOME/sample" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
n = len(open(sys.argv[2]).read().split("\n")) - 1
assert s["reestablished"] == 0, ("an anonymous OCSP query re-established a connection", s, n)
assert s["sightings"] == 2 * n, ("OCSP queries were not recorded as sightings", s, n)
PY
# Confirm ten tenants.
for i in $(seq 11 20); do rf incident confirm "$id" --tenant "$(printf 't%06d' "$i")" >/dev/null; done
rf incident confirm "$id" --tenant nobody 2>/dev/null && fail "confirm outside scope accepted"
rf incident status "$id" --json >"$RINGFENCE_HOME/status.json"
python3 - "$RINGFENCE_HOME/status.json" "$N" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert s["reestablished"] >= 10, s
assert s["reestablished"] + s["contained"] == n, s
assert s["affected"] == 0, s
PY
rf incident close "$id" 2>/dev/null && fail "closed with stragglers"
rf incident confirm "$id" --all --waive >/dev/null
rf incident close "$id"
rf incident contain "$id" 2>/dev/null && fail "contained a closed incident"
rf audit verify
echo "incident scenario: $N tenants OK"
