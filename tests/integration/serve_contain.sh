#!/usr/bin/env bash
# Containment serves what it issues (issue 13 item 7): with a server
# running, an issuer-scope incident is contained; right after contain
# returns, the CRL at the distribution point printed in a replacement
# certificate is served, verifies with `openssl crl -CAfile` against the
# new issuing CA, and `openssl ocsp` answers "good" for the replacement.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" contain
h=$RINGFENCE_HOME

# The distribution point in certificates names this server's port.
. "$(dirname "$0")/lib/ports.sh"
port=$(lateport) # below the ephemeral range: no other connection's port
export RINGFENCE_PORT=$port
rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 6
"$RINGFENCE" serve --duration 120 2>"$h/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || fail "server did not start"

id=$(rf incident open --scope issuer:issuing --reason "issuing key exposed" 2>/dev/null | head -1)
rf incident contain "$id" >/dev/null
# At once: the new issuing CA's CRL (contain names it issuing-inc<id>),
# within a few hundred ms for the running server's maintenance tick
# (100 ms) and its reload, no restart. The distribution point of a
# replacement certificate is checked to be this URL below.
t0=$(date +%s.%N)
ok=0
for _ in $(seq 20); do
	if curl -sf "http://127.0.0.1:$port/crl/issuing-inc$id.crl" -o "$h/first.crl"; then
		ok=1
		break
	fi
	sleep 0.1
done
t1=$(date +%s.%N)
[ $ok = 1 ] || fail "the CRL of issuing-inc$id is not served right after contain"
rf incident report "$id" --out "$h/report" >/dev/null
read -r new issuer < <(python3 - "$h/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(r["connections_detail"][0]["new_serial"], r["new_issuer"])
PY
)
[ -n "$issuer" ] && [ "$issuer" != issuing ] || fail "no new issuing CA"
rf cert show "$new" >"$h/new.pem"
rf cert ca root >"$h/root.pem"
rf cert ca "$issuer" >"$h/issuer.pem"
cat "$h/root.pem" "$h/issuer.pem" >"$h/trust.pem"

# The distribution point, as a relying party reads it.
dp=$(openssl x509 -in "$h/new.pem" -noout -ext crlDistributionPoints |
	sed -n 's/^ *URI://p' | head -1)
[ "$dp" = "http://127.0.0.1:$port/crl/$issuer.crl" ] ||
	fail "distribution point '$dp' is not this server's CRL of $issuer"
curl -sf "$dp" -o "$h/new.crl" || fail "$dp not served by the running server: $(curl -s "$dp")"
out=$(openssl crl -inform DER -in "$h/new.crl" -CAfile "$h/trust.pem" -noout 2>&1) ||
	fail "CRL of $issuer does not verify: $out"
echo "$out" | grep -q 'verify OK' || fail "CRL of $issuer: $out"
openssl crl -inform DER -in "$h/new.crl" -noout -issuer |
	grep -q "$(openssl x509 -in "$h/issuer.pem" -noout -subject | sed 's/^subject=//')" ||
	fail "CRL at $dp is not issued by $issuer"

# OCSP for the replacement certificate, from the same running server.
openssl ocsp -issuer "$h/issuer.pem" -cert "$h/new.pem" \
	-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/trust.pem" >"$h/o" 2>&1 || true
grep -q ': good' "$h/o" || { cat "$h/o"; fail "replacement $new under $issuer not answered good"; }
grep -q 'Response verify OK' "$h/o" || fail "OCSP response for $new does not verify"
kill "$server"
wait "$server" 2>/dev/null || true
server=""
echo "serve_contain: $dp served $(echo "$t1 - $t0" | bc) s after contain returned; OCSP good for $new"
