#!/usr/bin/env bash
# Issue 14 item 8 for an `entra` connection, as a customer admin reads it:
# the re-establishment package's README names the customer's Entra
# directory (tenant) id and the application (client) id the admin looks
# the application up by (not only ringfence's tenant name), the new
# credential is RSA-2048 and verifies against the package's CA chain with
# openssl, and contain's short-pool estimate for one RSA key is not
# "about 0 s".
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" package_entra
TID=72f988bf-86f1-41af-91ab-2d7cd011db47
CID=00000003-0000-4000-8000-0000000000aa
cd "$RINGFENCE_HOME"

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
rf issue --tenant acme --connection m365 --profile assertion \
	--keygen rsa-2048 >/dev/null
# Two more of acme's connections: one registered with the same
# application, one with another: each application's body merges its own.
CID2=00000003-0000-4000-8000-0000000000bb
rf connector entra acme/ews --tenant-id "$TID" --client-id "$CID" >/dev/null
rf connector entra acme/other --tenant-id "$TID" --client-id "$CID2" >/dev/null
for c in ews other; do
	rf issue --tenant acme --connection "$c" --profile assertion \
		--keygen rsa-2048 >/dev/null
done
id=$(rf incident open --scope tenant:acme --reason "package entra" 2>/dev/null)
rf incident contain "$id" >contain.out 2>&1 || fail "contain: $(cat contain.out)"
# The pool is empty (refill off): the keys are generated, with an estimate.
grep -q "3 will be generated in the token, about [0-9]*\.[0-9] s" contain.out ||
	fail "short-pool estimate: $(grep 'will be generated' contain.out)"
rf incident package "$id" --tenant acme --out pkg >/dev/null
p=pkg/acme/m365
grep -q "^Entra tenant id: *$TID" "$p/README.txt" ||
	fail "README does not name the Entra tenant id: $(head -8 "$p/README.txt")"
grep -q "^application (client) id: *$CID" "$p/README.txt" ||
	fail "README does not name the application id: $(head -8 "$p/README.txt")"
grep -q "^tenant: *acme" "$p/README.txt" || fail "README does not name the tenant"
grep -q "REPLACES THE WHOLE keyCredentials" "$p/README.txt" ||
	fail "README does not warn about PATCH"
# Graph's URL names the application by its client id (alternate key
# appId), not by an {id} an admin would fill with the client id.
grep -qF "PATCH https://graph.microsoft.com/v1.0/applications(appId='$CID')" "$p/README.txt" &&
	grep -qF "PATCH https://graph.microsoft.com/v1.0/servicePrincipals(appId='$CID')" "$p/README.txt" ||
	fail "README does not give Graph's URL by client id: $(grep -n PATCH "$p/README.txt")"
! grep -qF "{id}" "$p/README.txt" || fail "README of an entra connection still says {id}"
# The merged body of the application, named by its client id in the
# README: m365 and ews, not other (another application, whose PATCH it
# would have replaced).
grep -qF "use ../graph-keyCredentials-app-$CID.json instead" "$p/README.txt" ||
	fail "README does not name its application's merged body: $(grep -n 'use \.\.' "$p/README.txt")"
python3 - pkg/acme "$CID" "$CID2" <<'PY' || fail "merged bodies"
import json, os, sys
t, a, b = sys.argv[1:]
def names(cid):
    k = json.load(open(os.path.join(t, "graph-keyCredentials-app-%s.json" % cid)))["keyCredentials"]
    return sorted(c["displayName"].split()[1] for c in k)
assert names(a) == ["acme/ews", "acme/m365"], names(a)
assert names(b) == ["acme/other"], names(b)
assert not os.path.exists(os.path.join(t, "graph-keyCredentials-tenant.json")), "a tenant-wide body mixing applications"
PY
openssl x509 -in "$p/certificate.pem" -noout -text >cert.txt
grep -q "Public-Key: (2048 bit)" cert.txt && grep -q rsaEncryption cert.txt ||
	fail "the new entra credential is not RSA-2048"
openssl verify -CAfile "$p/ca-chain.pem" "$p/certificate.pem" >/dev/null ||
	fail "the new credential does not verify against ca-chain.pem"
echo "package_entra: ok"
