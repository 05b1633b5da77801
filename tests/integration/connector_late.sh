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
# that profile's subject. An assertion's source is its address, an
# IPv4-mapped one as IPv4. The server listens on 127.0.0.1 (at the end on
# ::ffff:127.0.0.1 and ::1) only, is bounded by --duration and stopped by
# PID.
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

# A serve that can write the store renames keys' purposes: the root key
# "issuing", to have it sign a connector certificate; the issuing key a
# tenant's "connection", to have it sign an assertion. keyd signs with a
# key only as what it made it (its ledger), and says so.
root=$(rf --json keys list | python3 -c 'import json,sys
for l in sys.stdin:
    k = json.loads(l)
    if k["purpose"] == "root": print(k["id"])')
db() { sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" "$1"; }
db "UPDATE keys SET purpose = 'issuing' WHERE id = '$root'"
db "UPDATE keys SET purpose = 'connection', tenant = 'acme' WHERE id = '$issuing'"
# keys list names both, and exits 1.
rcl=0
rf keys list >kl.out 2>&1 || rcl=$?
[ $rcl = 1 ] && grep -q "disagreement: role key $root .*keyd made it as the root key (its ledger), the store says issuing" kl.out &&
	grep -q "disagreement: role key $issuing .*keyd made it as the issuing key (its ledger), the store says connection" kl.out ||
	fail "keys list does not name the renamed keys: rc $rcl $(grep disagreement kl.out)"
rc3=0 rc4=0 rc5=0
"$client" server-cert "$root" connector.sync sync2.pem 2>e3 || rc3=$?
"$client" server-sign "$issuing" assertion 2>e4 || rc4=$?
"$client" server-sign "$root" crl 2>e5 || rc5=$?
db "UPDATE keys SET purpose = 'root' WHERE id = '$root'"
db "UPDATE keys SET purpose = 'issuing', tenant = '' WHERE id = '$issuing'"
[ $rc3 -eq 3 ] && grep -q "keyd made this key as the root key, and the store now says issuing" e3 ||
	fail "the root key signed a connector certificate once the store said issuing: $rc3 $(cat e3)"
[ $rc4 -eq 3 ] && grep -q "keyd made this key as the issuing key, and the store now says connection" e4 ||
	fail "the issuing key signed an assertion once the store said connection: $rc4 $(cat e4)"
[ $rc5 -eq 3 ] && grep -q "as the root key" e5 || fail "a CRL with the renamed root key: $rc5 $(cat e5)"
# A tenant's key the store calls the OCSP signer's: keyd did not make it one.
tkey=$(rf --json keys list | python3 -c 'import json,sys
for l in sys.stdin:
    k = json.loads(l)
    if k["purpose"] == "connection" and k["state"] == "active": print(k["id"]); break')
[ -n "$tkey" ] || fail "no tenant key in keys list"
db "UPDATE keys SET purpose = 'ocsp' WHERE id = '$tkey'"
rc6=0
"$client" server-sign "$tkey" ocsp 2>e6 || rc6=$?
db "UPDATE keys SET purpose = 'connection' WHERE id = '$tkey'"
[ $rc6 -eq 3 ] && grep -q "the store says this key is the ocsp key, and keyd did not make it as one" e6 ||
	fail "a tenant key signed OCSP once the store said ocsp: $rc6 $(cat e6)"
rf keys list >kl2.out 2>&1 || fail "keys list once the store is put back: $(grep disagreement kl2.out)"

# keyd counts a connector's renewals itself (connector_renewals, 4 a day):
# one through the API and one asked above, two more, then serve (or what
# has taken it over) is refused, and the refusal is recorded.
for i in 3 4; do
	"$client" server-cert "$issuing" connector.sync sync2.pem 2>e7 ||
		fail "keyd refused renewal $i of 4: $(cat e7)"
done
rc7=0
"$client" server-cert "$issuing" connector.sync sync2.pem 2>e7 || rc7=$?
[ $rc7 -eq 3 ] && grep -q "connector sync has had its renewals for the day (connector_renewals 4" e7 ||
	fail "keyd signed a fifth renewal in a day: $rc7 $(cat e7)"
rf audit search --json | grep -q "has had its renewals for the day" ||
	fail "keyd's refusal of the fifth renewal has no leaf"

kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""

# The source of an assertion is its address without its port, an
# IPv4-mapped one (a dual-stack socket's IPv4 peer) as its IPv4 address:
# the same connector from 127.0.0.1, seen as ::ffff:127.0.0.1, is the
# network it was, and each new connection from ::1 (a new port) is not a
# new network after the first. Two assertions on each, a new connection
# each (the recorder writes them by the time serve has stopped).
for listen in ::ffff:127.0.0.1 ::1; do
	serve_up 60 0 "$listen"
	for i in 1 2; do
		rf assert --connection acme/m365 --cert sync2.pem --key sync2.key \
			--ca root.pem --url "$url" >/dev/null ||
			fail "assertion $i over $listen refused"
	done
	kill -TERM "$server"
	wait "$server" || fail "serve on $listen exited non-zero"
	server=""
done
[ "$(db "SELECT group_concat(source, ' ') FROM (SELECT DISTINCT source FROM assertions ORDER BY source)")" = "127.0.0.1 ::1" ] ||
	fail "assertion sources: $(db "SELECT source FROM assertions")"
rf --json alerts list >alerts.json
python3 - alerts.json <<'PY' || fail "new_network alerts: $(cat alerts.json)"
import json, sys
nets = [a["id"] for a in json.load(open(sys.argv[1])) if a["kind"] == "new_network"]
sys.exit(0 if nets == ["new_network:acme/m365|::/64"] else 1)
PY
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_late: ok"
