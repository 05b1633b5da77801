#!/usr/bin/env bash
# A connector added while serve runs (docs/connectors.md): serve starts
# before any connector exists; its TLS port asks every client for a
# certificate without requiring one, so plain HTTPS (healthz, the CA
# routes) works without one and the API answers 401; then a connector is
# added, enrolled and bound, and gets an assertion, verified by the
# independent relying party (PyJWT), without a restart. Its certificate
# is of the CA's connector profile (O=ringfence, OU=connector,
# CN=connector.NAME, clientAuth only, connector_days), also when renewed
# through the API; keyd signs a connector certificate for serve only with
# that profile's subject. The server listens on 127.0.0.1 only, is bounded
# by --duration and stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-late
. "$here/lib/connector.sh" connector_late
client="$RF_BINARY_DIR/rf-keyd_client"

rf init >/dev/null
rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
entra_cred acme/m365 cred

# Serve, before any connector exists.
serve_up 120

# The TLS port asks for a client certificate (a CertificateRequest in the
# handshake) and works without one: healthz and the CA routes.
openssl s_client -connect "127.0.0.1:$tport" -CAfile root.pem \
	</dev/null >hs.txt 2>&1 || true
grep -q "^Acceptable client certificate CA names" hs.txt ||
	fail "no CertificateRequest: $(cat hs.txt)"
curl -sf --cacert root.pem -o /dev/null "$url/healthz" ||
	fail "https healthz without a client certificate"
curl -sf --cacert root.pem -o issuing.pem "$url/ca/issuing.pem" ||
	fail "https CA route without a client certificate"
code=$(curl -s --cacert root.pem -o resp.json -w '%{http_code}' \
	-d '{"connection":"acme/m365"}' "$url/v1/assertions")
[ "$code" = 401 ] && grep -q client_certificate_required resp.json ||
	fail "no client certificate: $code $(cat resp.json)"

# Now the first connector, while serve runs: no restart.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync.key -out sync.csr -subj /CN=whatever 2>/dev/null
rf connector add sync --csr sync.csr --out sync.pem >/dev/null
rf connector bind sync acme/m365 >/dev/null
jwt=$(rf assert --connection acme/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url") || fail "no assertion for a connector added while serving"
$rp "$jwt" "$TID" "$CID" seen cred.pem >/dev/null ||
	fail "the relying party refused the assertion"

# The connector profile, as openssl reads it.
profile_ok() { # PEM
	openssl x509 -in "$1" -noout -subject -ext extendedKeyUsage \
		-startdate -enddate >x.txt
	grep -q "^subject=O *= *ringfence, OU *= *connector, CN *= *connector.sync$" x.txt ||
		fail "$1 subject: $(cat x.txt)"
	[ "$(grep -A1 'Extended Key Usage' x.txt | tail -1 | tr -d ' ')" = "TLSWebClientAuthentication" ] ||
		fail "$1 EKU: $(cat x.txt)"
	nb=$(date -d "$(sed -n 's/^notBefore=//p' x.txt)" +%s)
	na=$(date -d "$(sed -n 's/^notAfter=//p' x.txt)" +%s)
	[ $((na - nb)) -eq $((7 * 86400 + 300)) ] ||
		fail "$1 valid $((na - nb)) s, not connector_days (7) and the backdate"
}
profile_ok sync.pem
rf --json cert show "$(openssl x509 -in sync.pem -noout -serial | cut -d= -f2 | tr A-F a-f)" >show.json
grep -q '"profile": *"connector"' show.json || fail "stored profile: $(cat show.json)"

# Renewal through the API: the connector profile again, and it works.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync2.key -out sync2.csr -subj /CN=sync 2>/dev/null
python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' sync2.csr >renew.json
curl -s --cert sync.pem --key sync.key --cacert root.pem \
	--data-binary @renew.json "$url/v1/connector/renew" >renewed.json
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pem"])' renewed.json >sync2.pem ||
	fail "renew: $(cat renewed.json)"
profile_ok sync2.pem
rf assert --connection acme/m365 --cert sync2.pem --key sync2.key \
	--ca root.pem --url "$url" >/dev/null || fail "the renewed certificate got no assertion"

# A client-profile certificate of the connector's tenant is no connector's:
# keyd does not sign it for serve (class server), and the API refuses it.
rf issue --tenant connector.sync --profile client --days 7 --csr sync2.csr \
	--out client.pem >/dev/null
issuing=$(rf --json keys list | python3 -c 'import json,sys
for l in sys.stdin:
    k = json.loads(l)
    if k["purpose"] == "issuing": print(k["id"])')
[ -n "$issuing" ] || fail "no issuing key in keys list"
rc1=0 rc2=0
"$client" server-cert "$issuing" connector.sync client.pem 2>e1 || rc1=$?
"$client" server-cert "$issuing" connector.sync sync2.pem 2>e2 || rc2=$?
[ $rc1 -eq 3 ] && grep -q "subject is not the connector profile" e1 ||
	fail "keyd signed a client-profile certificate for serve: $rc1 $(cat e1)"
[ $rc2 -eq 0 ] || fail "keyd refused the connector profile: $rc2 $(cat e2)"

kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_late: ok"
