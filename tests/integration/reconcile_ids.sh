#!/usr/bin/env bash
# Issue 12 item 8, as a responder reads the result: every unexplained
# sign-in names Entra's own sign-in id (to find it in the admin center)
# and the tenant, in text and in --json; an export that is not JSON gets
# an error that says what to export.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" reconcile_ids
cd "$RINGFENCE_HOME"
rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 \
	--client-id 00000003-0000-4000-8000-0000000000aa >/dev/null
rf issue --tenant acme --connection m365 --profile assertion \
	--keygen rsa-2048 --out m365.pem >/dev/null
tp=$(openssl x509 -in m365.pem -noout -fingerprint -sha1 | cut -d= -f2 | tr -d :)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >signins.json <<JSON
{"value":[{"id":"5f1c0a2e-0000-4000-8000-00000000a001","createdDateTime":"$now",
 "ipAddress":"203.0.113.7","servicePrincipalCredentialThumbprint":"$tp"}]}
JSON
# No assertion was ever made: the sign-in is unexplained.
if rf audit reconcile --signins signins.json >rec.out 2>rec.err; then
	fail "reconcile explained a sign-in no assertion made"
fi
grep -q "sign-in 5f1c0a2e-0000-4000-8000-00000000a001 .*tenant acme" rec.out ||
	fail "text output does not name the sign-in id: $(cat rec.out)"
if rf --json audit reconcile --signins signins.json >rec.json 2>rec.err; then
	fail "reconcile --json explained it"
fi
python3 - rec.json <<'PY' || fail "json output: $(cat rec.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 1, r
assert r[0]["id"] == "5f1c0a2e-0000-4000-8000-00000000a001", r
assert r[0]["tenant"] == "acme", r
PY
echo 'not json' >bad.json
if rf audit reconcile --signins bad.json 2>err; then fail "not-JSON export accepted"; fi
[ "$(wc -l <err)" -eq 1 ] && grep -q "export the sign-ins as JSON" err ||
	fail "not-JSON message: $(cat err)"
echo "reconcile_ids: ok"
