#!/usr/bin/env bash
# A server already running when an incident rotates the issuing CA answers
# for the replacement certificates without a restart: `openssl ocsp` gets
# "good" for a new serial (not "unauthorized") and "revoked" for the old
# one, and the new issuing CA is served at /ca/<name>.pem.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" rotation
h=$RINGFENCE_HOME

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 12
. "$(dirname "$0")/lib/ports.sh"
serve_late "$h/serve.log" --duration 120 || fail "server did not start"

id=$(rf incident open --scope issuer:issuing --reason "issuing key exposed" 2>/dev/null | head -1)
rf incident contain "$id" >/dev/null
rf incident report "$id" --out "$h/report" >/dev/null
read -r old new issuer < <(python3 - "$h/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["connections_detail"][0]
print(c["old_serial"], c["new_serial"], r["new_issuer"])
PY
)
[ -n "$issuer" ] && [ "$issuer" != issuing ] || fail "no new issuing CA"
rf cert ca root >"$h/root.pem"
rf cert ca issuing --replaced >"$h/old-issuer.pem"
rf cert ca "$issuer" >"$h/new-issuer.pem"
rf cert show "$old" >"$h/old.pem"
rf cert show "$new" >"$h/new.pem"
cat "$h/root.pem" "$h/old-issuer.pem" "$h/new-issuer.pem" >"$h/trust.pem"

# The server notices a change within a second or so; allow it five.
ok=0
for _ in $(seq 50); do
	openssl ocsp -issuer "$h/new-issuer.pem" -cert "$h/new.pem" \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/trust.pem" \
		>"$h/o2" 2>&1 || true
	if grep -q ': good' "$h/o2"; then
		ok=1
		break
	fi
	sleep 0.1
done
[ $ok = 1 ] || { cat "$h/o2"; fail "new $new under $issuer not answered by the running server"; }
grep -q 'Response verify OK' "$h/o2" || fail "new $new: response does not verify"
openssl ocsp -issuer "$h/old-issuer.pem" -cert "$h/old.pem" \
	-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/trust.pem" >"$h/o1" 2>&1 || true
grep -q ': revoked' "$h/o1" || { cat "$h/o1"; fail "old $old not revoked"; }
curl -sf "http://127.0.0.1:$port/ca/$issuer.pem" -o "$h/served.pem" ||
	fail "/ca/$issuer.pem not served"
cmp -s "$h/served.pem" "$h/new-issuer.pem" || fail "/ca/$issuer.pem differs from the store"
# The new issuing key was made by keyd as an issuing CA's (its label): keyd
# signs that CA's CRL for serve (class server), which verifies.
key=$(rf --json keys list | jq -r 'select(.purpose == "issuing" and .state == "active") | .id')
[ "$(printf '%s\n' "$key" | wc -l)" = 1 ] && [ -n "$key" ] || fail "active issuing keys: '$key'"
RF_KEYD_CLIENT_SERVER=1 "$RF_BINARY_DIR/rf-keyd_client" crl-empty "$key" "$h/new-issuer.pem" \
	2>"$h/crl.err" || fail "keyd refused serve a CRL of $issuer: $(cat "$h/crl.err")"
kill "$server"
wait "$server" 2>/dev/null || true
server=""
echo "running server answered good for $new under $issuer and revoked for $old"
