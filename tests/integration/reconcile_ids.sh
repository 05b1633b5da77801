#!/usr/bin/env bash
# Issue 12 item 8, as a responder reads the result: every unexplained
# sign-in names Entra's own sign-in id (to find it in the admin center)
# and the tenant, in text and in --json; an IPv4-mapped source address is
# its IPv4 one; a sign-in missing a field is named by its place (from 1)
# and id; an export that is not JSON gets an error that says what to
# export.
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

# An assertion asked from 127.0.0.1 explains a sign-in from
# "::ffff:127.0.0.1" (Entra may log an IPv4 source so): the same address,
# IPv4-mapped. A mapped address of another network stays unexplained.
db=$RINGFENCE_HOME/ringfence.db
serial=$(openssl x509 -in m365.pem -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')
x5t256=$(sqlite3 "$db" "SELECT x5t256 FROM certs WHERE serial = '$serial'")
[ -n "$x5t256" ] || fail "no certificate $serial in the store"
t=$(date -u +%s)
sqlite3 "$db" "INSERT INTO assertions (jti, time, exp, tenant, conn, connector,
	connector_serial, cert_serial, key_id, x5t256, source) VALUES
	('0f8fad5b-d9cb-469f-a165-70867728950e', $((t - 60)), $((t + 540)),
	'acme', 'm365', 'sync', '', '$serial', '', '$x5t256', '127.0.0.1')"
cat >mapped.json <<JSON
[{"id":"5f1c0a2e-0000-4000-8000-00000000a002","createdDateTime":"$now",
  "ipAddress":"::ffff:127.0.0.1","servicePrincipalCredentialThumbprint":"$tp"},
 {"id":"5f1c0a2e-0000-4000-8000-00000000a003","createdDateTime":"$now",
  "ipAddress":"::ffff:203.0.113.7","servicePrincipalCredentialThumbprint":"$tp"}]
JSON
if rf audit reconcile --signins mapped.json >rec.out 2>rec.err; then
	fail "reconcile explained a sign-in from another network"
fi
[ "$(wc -l <rec.out)" -eq 1 ] &&
	grep -q "::ffff:203.0.113.7 sign-in 5f1c0a2e-0000-4000-8000-00000000a003 .*unknown source" rec.out ||
	fail "IPv4-mapped sources: $(cat rec.out)"

# A sign-in of ours without a field the reader needs: one line naming it
# by its place in the export, counted from 1, and by its id.
cat >partial.json <<JSON
[{"id":"other","createdDateTime":"$now","ipAddress":"203.0.113.7",
  "servicePrincipalCredentialThumbprint":"0000000000000000000000000000000000000000"},
 {"id":"5f1c0a2e-0000-4000-8000-00000000a004","createdDateTime":"$now",
  "servicePrincipalCredentialThumbprint":"$tp"},
 {"createdDateTime":"yesterday","ipAddress":"127.0.0.1",
  "servicePrincipalCredentialThumbprint":"$tp"}]
JSON
if rf audit reconcile --signins partial.json 2>err; then fail "a sign-in without ipAddress accepted"; fi
[ "$(wc -l <err)" -eq 1 ] &&
	grep -q "^ringfence: sign-in 2 (id 5f1c0a2e-0000-4000-8000-00000000a004): no ipAddress; " err ||
	fail "sign-in without ipAddress: $(cat err)"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); del s[1]; json.dump(s, open(sys.argv[1], "w"))' partial.json
if rf audit reconcile --signins partial.json 2>err; then fail "a sign-in with a bad time accepted"; fi
[ "$(wc -l <err)" -eq 1 ] &&
	grep -q "^ringfence: sign-in 2: createdDateTime is not RFC 3339 UTC; " err ||
	fail "sign-in with a bad time: $(cat err)"

# audit --help names reconcile and its flags; its own help, the fields.
rf audit --help | grep -q "ringfence audit reconcile --signins FILE \[--json\]" ||
	fail "audit --help does not name reconcile"
rf audit reconcile --help >help.txt
for f in servicePrincipalCredentialThumbprint ipAddress createdDateTime id; do
	grep -qw "$f" help.txt || fail "reconcile --help does not name $f: $(cat help.txt)"
done

echo 'not json' >bad.json
if rf audit reconcile --signins bad.json 2>err; then fail "not-JSON export accepted"; fi
[ "$(wc -l <err)" -eq 1 ] && grep -q "export the sign-ins as JSON" err ||
	fail "not-JSON message: $(cat err)"
echo "reconcile_ids: ok"
