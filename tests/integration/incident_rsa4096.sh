#!/usr/bin/env bash
# Issue 14: a replacement keeps the old credential's key algorithm and
# size, for a credential from a connector's CSR too. An RSA-4096 CSR
# credential was replaced by an RSA-3072 key (the largest the pool and the
# token made). Now rsa-4096 is a key algorithm like the others: the pool
# status counts the connection under it, `keys pool fill --alg rsa-4096`
# makes one, contain takes it for one connection and generates the key
# the pool lacks for the other, saying so in its pool note, and both new
# certificates hold RSA keys of 4096 bits (openssl x509 -text). Two
# RSA-4096 keys only: SoftHSM takes seconds for each.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" rsa4096
h=$RINGFENCE_HOME
db=$h/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
cert_text() { q "SELECT hex(der) FROM certs WHERE serial = '$1'" | xxd -r -p | openssl x509 -inform der -noout -text; }

rf init 2>/dev/null
rf tenant add acme >/dev/null
for c in m365 mail; do
	openssl req -new -newkey rsa:4096 -nodes -keyout "$h/$c.key" \
		-subj "/CN=$c" -out "$h/$c.csr" 2>/dev/null
	rf issue --tenant acme --connection $c --profile client --csr "$h/$c.csr" \
		>/dev/null 2>"$h/err" || fail "issue acme/$c from an RSA-4096 CSR: $(cat "$h/err")"
done
rf keys pool status --json >"$h/st.json" || fail "pool status"
python3 - "$h/st.json" <<'PY' || fail "pool status does not count the connections as rsa-4096: $(cat "$h/st.json")"
import json, sys
st = {o["alg"]: o for o in map(json.loads, open(sys.argv[1]))}
assert st["rsa-4096"]["connections"] == 2, st
assert st["rsa-3072"]["connections"] == 0, st
PY
rf keys pool fill --alg rsa-4096 --count 1 >/dev/null 2>"$h/err" || fail "pool fill --alg rsa-4096: $(cat "$h/err")"
[ "$(q "SELECT count(*) FROM pool WHERE alg = 'rsa-4096' AND state = 'free'")" = 1 ] ||
	fail "no free rsa-4096 pool key"

id=$(rf incident open --scope tenant:acme --reason "rsa-4096" 2>/dev/null)
rf incident contain "$id" >"$h/c.out" 2>"$h/err" || fail "contain: $(cat "$h/err")"
grep -q "standby pool has 1 of 2 rsa-4096 keys needed: 1 will be generated" "$h/c.out" ||
	fail "contain's pool note: $(cat "$h/c.out")"
[ "$(q "SELECT count(*) FROM pool WHERE alg = 'rsa-4096' AND state = 'taken'")" = 1 ] ||
	fail "contain did not take the rsa-4096 pool key"
for c in m365 mail; do
	s=$(q "SELECT serial FROM conns WHERE tenant = 'acme' AND name = '$c'")
	[ "$(q "SELECT state FROM incident_items WHERE incident = $id AND name = '$c'")" = contained ] ||
		fail "acme/$c not contained"
	cert_text "$s" >"$h/x.txt"
	grep -q rsaEncryption "$h/x.txt" && grep -q "Public-Key: (4096 bit)" "$h/x.txt" ||
		fail "acme/$c's new key is not RSA 4096: $(grep -A1 'Public Key Algorithm' "$h/x.txt")"
	[ "$(q "SELECT k.alg FROM certs c JOIN keys k ON k.id = c.key_id WHERE c.serial = '$s'")" = rsa-4096 ] ||
		fail "acme/$c's new key is not recorded rsa-4096"
done
rf keys list >/dev/null 2>"$h/err" || fail "keys list: $(cat "$h/err")"
rf audit verify >/dev/null
echo "incident rsa-4096: OK"
