#!/usr/bin/env bash
# /audit runs off the OCSP workers (issue 13 item 5, serving part): twelve
# clients ask inclusion proofs back to back while a relying party asks
# OCSP; every OCSP answer arrives (its p99 is printed), proofs are answered
# by the audit pool, and past audit_max_concurrent the answer is 503 with
# Retry-After at once. The server listens on 127.0.0.1, is bounded by
# --duration and is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" audit-pool
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
export RINGFENCE_TOKENS=2
export RINGFENCE_AUDIT_THREADS=1 RINGFENCE_AUDIT_MAX_CONCURRENT=2
h=$RINGFENCE_HOME
wire="$here/../unit/http_wire.py"

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 --out "$h/chain.pem" >/dev/null
"$RF_BINARY_DIR/rf-populate" 50
openssl x509 -in "$h/chain.pem" -out "$h/cert.pem"
rf cert ca root >"$h/root.pem"
rf cert ca issuing >"$h/issuing.pem"
openssl ocsp -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
	-reqout "$h/req1.der" >/dev/null 2>&1

for _ in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$RINGFENCE" serve --port "$port" --duration 90 2>"$h/serve.log" &
	server=$!
	for _ in $(seq 100); do
		curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
done
[ -n "$server" ] || fail "server did not start: $(cat "$h/serve.log")"
for _ in $(seq 50); do
	openssl ocsp -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/root.pem" 2>&1 |
		grep -q ': good' && break
	sleep 0.1
done
# The proof route answers (a JSON proof) before the load.
curl -sf "http://127.0.0.1:$port/audit/proof?leaf=3" | grep -q '"audit_path"' ||
	fail "/audit/proof: $(curl -s "http://127.0.0.1:$port/audit/proof?leaf=3")"

# Pipelined on one connection, pool and worker answers keep their order.
python3 "$wire" "$port" audit_pipeline || fail "pipelined /audit and /healthz"

stats=$(python3 "$wire" "$port" proofs 12 6 "$h/req1.der" "/audit/proof?leaf=3") ||
	fail "proof client: $stats"
echo "serve_audit_pool: $stats"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$stats" "$1"; }
[ "$(field ocsp_bad)" -eq 0 ] || fail "$(field ocsp_bad) OCSP answers failed beside the proofs"
[ "$(field ocsp_ok)" -gt 100 ] || fail "only $(field ocsp_ok) OCSP answers in 6 s beside the proofs"
[ "$(field proof_200)" -gt 0 ] || fail "no proof answered"
[ "$(field proof_503)" -gt 0 ] || fail "twelve clients never passed a cap of 2"
[ "$(field busy_without_retry_after)" -eq 0 ] || fail "503 without Retry-After"
[ "$(field proof_other)" -eq 0 ] ||
	fail "proof answers other than 200 and 503: $(field proof_other_kinds)"
# The pool keeps serving once the load is gone.
curl -sf "http://127.0.0.1:$port/audit/consistency?old=2&new=10" | grep -q '"consistency"' ||
	fail "/audit/consistency after the load"
kill "$server"
wait "$server" 2>/dev/null || true
server=""
echo "serve_audit_pool: OCSP p99 $(field ocsp_p99_ms) ms beside 12 proof clients"
