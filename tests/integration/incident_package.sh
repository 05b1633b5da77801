#!/usr/bin/env bash
# Issue 14 item 8 and issue 13 item 9: re-establishment packages and the
# report. The Graph body carries the certificate's dates; the README warns
# that PATCH replaces the whole keyCredentials collection, names the tenant
# and comes with the CA certificates (verified by openssl); a tenant folder
# merges the tenant's pinned connections; report.md shows dates. Packages
# are written under directory descriptors: a name of dots and a planted
# symbolic link cannot lead outside the output folder. The README says what
# became of the old key: destroyed in the token, or (a CSR credential)
# the connector's own, which the connector must stop using.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" package
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 10000" "$db" "$1"; }

rf init 2>/dev/null
for bad in .. . .hidden; do
	if rf tenant add "$bad" 2>"$RINGFENCE_HOME/err"; then fail "tenant '$bad' accepted"; fi
	grep -q "not starting with a dot" "$RINGFENCE_HOME/err" || fail "tenant '$bad': $(cat "$RINGFENCE_HOME/err")"
done
for t in acme beta; do
	rf tenant add "$t" >/dev/null
	rf connection add "$t" api --rp pinned >/dev/null
	rf connection add "$t" sync --rp pinned >/dev/null
	rf connection add "$t" web --rp ocsp >/dev/null
	for c in api sync; do rf issue --tenant "$t" --connection "$c" --profile client --keygen rsa-2048 >/dev/null 2>&1; done
	rf issue --tenant "$t" --connection web --profile client --keygen ec-p256 >/dev/null 2>&1
done
# Credentials from the connector's own key (a CSR): acme/own (ocsp) and
# gamma/api (pinned). contain cannot disable or destroy a key it does not
# hold, and their new key is in the token.
rf tenant add gamma >/dev/null
rf connection add gamma api --rp pinned >/dev/null
for c in acme/own gamma/api; do
	openssl req -new -newkey rsa:2048 -nodes -keyout "$RINGFENCE_HOME/own.key" -subj /CN=own \
		-out "$RINGFENCE_HOME/own.csr" 2>/dev/null
	rf issue --tenant "${c%/*}" --connection "${c#*/}" --profile client --csr "$RINGFENCE_HOME/own.csr" >/dev/null 2>&1 ||
		fail "issue from a CSR for $c"
done
id=$(rf incident open --scope all --reason "package test" 2>/dev/null)
# Before contain: refused in one line, and no folder left behind.
if rf incident package "$id" --all --out "$RINGFENCE_HOME/early" 2>"$RINGFENCE_HOME/err"; then
	fail "package before contain was not refused"
fi
grep -q "no new credential yet: run 'ringfence incident contain $id' first" "$RINGFENCE_HOME/err" ||
	fail "package before contain: $(cat "$RINGFENCE_HOME/err")"
[ ! -e "$RINGFENCE_HOME/early" ] || fail "a refused package left $(find "$RINGFENCE_HOME/early")"
rf incident contain "$id" >/dev/null

out=$RINGFENCE_HOME/out/pkg
rf incident package "$id" --tenant acme --out "$out" >/dev/null
p=$out/acme/api
for f in certificate.pem certificate.der ca-chain.pem README.txt thumbprints.txt graph-keyCredentials.json; do
	[ -s "$p/$f" ] || fail "package lacks $f"
done
[ ! -e "$out/acme/web/graph-keyCredentials.json" ] || fail "an OCSP connection got a Graph body"
openssl verify -CAfile "$p/ca-chain.pem" "$p/certificate.pem" >/dev/null || fail "ca-chain.pem does not verify the new certificate"
grep -q "REPLACES THE WHOLE keyCredentials" "$p/README.txt" || fail "README does not warn that PATCH replaces the collection"
grep -q "^tenant: *acme" "$p/README.txt" || fail "README does not name the tenant"
grep -q "graph-keyCredentials-tenant.json" "$p/README.txt" || fail "README does not point at the merged body"
ls -a "$p" | grep -q '\.tmp$' && fail "a temporary file was left"
# What became of each old key, and what to do about it: a key of the
# token is destroyed; a connector's own key is not (nothing here held
# it), the connector must stop using it, and the new key, in the token,
# is not installed in the connector.
rf incident package "$id" --tenant gamma --out "$out" >/dev/null
for c in acme/api acme/web; do
	grep -q "Its key, held in ringfence's token, is destroyed" "$out/$c/README.txt" ||
		fail "$c README does not say its token key is destroyed: $(cat "$out/$c/README.txt")"
	! grep -q "connector's own" "$out/$c/README.txt" || fail "$c README calls a token key the connector's"
done
grep -q "Install the new certificate in the connector" "$out/acme/web/README.txt" || fail "acme/web README lost its install step"
for c in acme/own gamma/api; do
	r=$out/$c/README.txt
	grep -q "Its key is your connector's own" "$r" && grep -q "connector must stop using the old key" "$r" &&
		grep -q "new key is not in this package and not on the connector" "$r" ||
		fail "$c README does not say the connector's own old key must go: $(cat "$r")"
	! grep -q "token, is destroyed\|Install the new certificate" "$r" ||
		fail "$c README says its old key is destroyed or to install the certificate in the connector: $(cat "$r")"
	# Not entra: what uses the certificate may need its own key again,
	# from a new CSR.
	grep -q "make a new key" "$r" && grep -q "ringfence issue --csr" "$r" ||
		fail "$c README does not say how to get a certificate for a key of its own: $(cat "$r")"
done
grep -q "REPLACES THE WHOLE keyCredentials" "$out/gamma/api/README.txt" || fail "gamma/api README lost the pinned steps"
python3 - "$p" "$out/acme" <<'PY'
import base64, json, subprocess, sys, datetime
p, t = sys.argv[1], sys.argv[2]
k = json.load(open(p + "/graph-keyCredentials.json"))["keyCredentials"]
assert len(k) == 1 and k[0]["type"] == "AsymmetricX509Cert" and k[0]["usage"] == "Verify", k
der = open(p + "/certificate.der", "rb").read()
assert base64.b64decode(k[0]["key"]) == der, "key is not the new certificate"
def date(flag):
    s = subprocess.run(["openssl", "x509", "-in", p + "/certificate.pem", "-noout", flag],
                       capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()
    return datetime.datetime.strptime(s, "%b %d %H:%M:%S %Y %Z").strftime("%Y-%m-%dT%H:%M:%SZ")
assert k[0]["startDateTime"] == date("-startdate"), (k[0]["startDateTime"], date("-startdate"))
assert k[0]["endDateTime"] == date("-enddate"), (k[0]["endDateTime"], date("-enddate"))
m = json.load(open(t + "/graph-keyCredentials-tenant.json"))["keyCredentials"]
assert len(m) == 2, "the tenant body does not merge its two pinned connections"
PY

# A planted symbolic link where a tenant folder goes: not followed.
mkdir -p "$RINGFENCE_HOME/elsewhere"
ln -s "$RINGFENCE_HOME/elsewhere" "$out/beta"
if rf incident package "$id" --tenant beta --out "$out" 2>"$RINGFENCE_HOME/err"; then
	fail "package followed a symbolic link"
fi
[ -z "$(ls -A "$RINGFENCE_HOME/elsewhere")" ] || fail "package wrote through a symbolic link"
rm "$out/beta"
# A name of dots from an older store: refused, nothing outside the folder.
q "UPDATE incident_items SET tenant = '..' WHERE tenant = 'beta'"
before=$(ls -A "$RINGFENCE_HOME/out")
if rf incident package "$id" --all --out "$out" 2>"$RINGFENCE_HOME/err"; then
	fail "a tenant named .. was packaged"
fi
grep -q "cannot be a folder name" "$RINGFENCE_HOME/err" || fail "'..' message: $(cat "$RINGFENCE_HOME/err")"
[ "$(ls -A "$RINGFENCE_HOME/out")" = "$before" ] || fail "package wrote outside its folder"
[ ! -e "$RINGFENCE_HOME/out/api" ] && [ ! -e "$RINGFENCE_HOME/api" ] || fail "a '..' tenant escaped"
q "UPDATE incident_items SET tenant = 'beta' WHERE tenant = '..'"

# The report shows dates and says what the count covers and pinned must do.
rf incident report "$id" --out "$RINGFENCE_HOME/report" >/dev/null
grep -Eq -- '- opened: 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC' "$RINGFENCE_HOME/report.md" || fail "report times are not dates"
grep -q "What pinned tenants must do" "$RINGFENCE_HOME/report.md" || fail "report does not say what pinned tenants must do"
grep -q "It does not cover" "$RINGFENCE_HOME/report.md" || fail "report does not say what the signature count covers"
echo "incident package: OK"
