#!/usr/bin/env bash
# An entra connection's key is RSA on every path that gives it one (Entra
# ID accepts only RSA keys; an adversarial test found two that did not):
# - issue --csr-dir refuses an EC CSR for an entra connection as issue
#   --csr does: one line naming the connection, exit 1, nothing issued,
#   no chain written; an RSA CSR is issued;
# - contain replaces an entra connection's credential with an RSA key of
#   the registration's algorithm even when the credential it replaces is
#   EC (the state --csr-dir left before it checked, made here by
#   registering a connection with an EC credential in the store), and
#   its pool note and the pool's target count that key as RSA.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" entra-alg
h=$RINGFENCE_HOME
db=$h/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
TID=72f988bf-86f1-41af-91ab-2d7cd011db47
CID=00000003-0000-4000-8000-0000000000aa
cert_text() { q "SELECT hex(der) FROM certs WHERE serial = '$1'" | xxd -r -p | openssl x509 -inform der -noout -text; }

rf init 2>/dev/null
rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$h/ec.key" \
	-subj /CN=ec -out "$h/ec.csr" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout "$h/rsa.key" \
	-subj /CN=rsa -out "$h/rsa.csr" 2>/dev/null

# 1. The single path refuses an EC CSR (as it did), and so does the batch.
rf issue --tenant acme --connection m365 --profile assertion --csr "$h/ec.csr" \
	>/dev/null 2>"$h/err" && fail "issue --csr gave an entra connection an EC key"
grep -q "needs an RSA key" "$h/err" || fail "issue --csr refusal: $(cat "$h/err")"
mkdir "$h/dir"
cp "$h/ec.csr" "$h/dir/m365.pem"
certs=$(q "SELECT count(*) FROM certs")
rc=0
rf issue --tenant acme --profile assertion --csr-dir "$h/dir" --out "$h/out" >"$h/o" 2>"$h/err" || rc=$?
[ "$rc" = 1 ] || fail "issue --csr-dir gave an entra connection an EC key: exit $rc: $(cat "$h/o" "$h/err")"
[ "$(wc -l <"$h/err")" = 1 ] || fail "issue --csr-dir refusal is not one line: $(cat "$h/err")"
grep -q "connection acme/m365 is an entra connection: the CSR needs an RSA key" "$h/err" ||
	fail "issue --csr-dir refusal: $(cat "$h/err")"
[ "$(q "SELECT count(*) FROM certs")" = "$certs" ] || fail "the refused --csr-dir issued"
[ ! -e "$h/out/m365.pem" ] || fail "the refused --csr-dir wrote a chain"
cp "$h/rsa.csr" "$h/dir/m365.pem"
rf issue --tenant acme --profile assertion --csr-dir "$h/dir" --out "$h/out" >/dev/null 2>"$h/err" ||
	fail "issue --csr-dir with an RSA CSR: $(cat "$h/err")"
openssl x509 -in "$h/out/m365.pem" -noout -text | grep -q rsaEncryption || fail "acme/m365 is not RSA"

# 2. An entra connection whose credential is EC, a CSR's key: contain
# gives it an RSA key, and counts it as one beforehand.
rf issue --tenant acme --connection legacy --profile assertion --csr "$h/ec.csr" >/dev/null 2>&1
q "INSERT INTO conn_entra (tenant, conn, tenant_id, client_id, key_alg, jwt_alg, created)
	SELECT tenant, 'legacy', tenant_id, client_id, key_alg, jwt_alg, created
	FROM conn_entra WHERE tenant = 'acme' AND conn = 'm365'"
rf keys pool status --json >"$h/st.json"
python3 - "$h/st.json" <<'PY' || fail "pool status: $(cat "$h/st.json")"
import json, sys
st = {o["alg"]: o for o in map(json.loads, open(sys.argv[1]))}
assert st["rsa-2048"]["connections"] == 2, st["rsa-2048"]
assert st["ec-p256"]["connections"] == 0, st["ec-p256"]
PY
id=$(rf incident open --scope tenant:acme --reason "entra" 2>/dev/null)
rf incident contain "$id" >"$h/c.out" 2>"$h/err" || fail "contain: $(cat "$h/err")"
grep -q "standby pool has 0 of 2 rsa-2048 keys needed" "$h/c.out" ||
	fail "contain's pool note does not count acme/legacy as RSA: $(cat "$h/c.out")"
grep -q "ec-p256" "$h/c.out" && fail "contain's pool note counts an EC key: $(cat "$h/c.out")"
for c in legacy m365; do
	s=$(q "SELECT serial FROM conns WHERE tenant = 'acme' AND name = '$c'")
	cert_text "$s" | grep -q rsaEncryption || fail "contain gave entra connection acme/$c a key that is not RSA"
	cert_text "$s" | grep -q "Public-Key: (2048 bit)" || fail "acme/$c: not RSA-2048"
done
echo "issue entra alg: OK"
