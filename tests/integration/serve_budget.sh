#!/usr/bin/env bash
# Budgets of what an unauthenticated peer can make the token do (issue 11
# item 2). One client floods for RF_FLOOD_SECONDS (default 20; the issue's
# own run is 60) with TLS handshakes and SHA-256-CertID OCSP requests while
# another (127.0.0.2) asks OCSP as a relying party does. Checked from the
# audit record: the handshake and on-demand OCSP signatures stay within
# their per-source budgets, the bytes those leaves add stay within
# anon_audit_bytes_day, both floods were refused past them (handshakes
# failed; OCSP answered pre-signed), and the relying party got every answer (its p99 is
# printed). Before the flood, a returning client resumes with its session
# ticket five times and costs one signature in all; after it, a restarted
# server still counts the day's bytes. The server listens on
# 127.0.0.1, is bounded by --duration and is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" budget
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
export RINGFENCE_TOKENS=2
secs=${RF_FLOOD_SECONDS:-20}
# Small budgets, so that a short run shows each bound at work.
export RINGFENCE_TLS_HANDSHAKE_RATE=10 RINGFENCE_TLS_HANDSHAKE_SOURCE_RATE=4
export RINGFENCE_OCSP_ONDEMAND_RATE=10 RINGFENCE_OCSP_ONDEMAND_SOURCE_RATE=4
export RINGFENCE_ANON_AUDIT_BYTES_DAY=$((secs * 1800))
h=$RINGFENCE_HOME
wire="$here/../unit/http_wire.py"
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 --out "$h/chain.pem" >"$h/meta"
openssl x509 -in "$h/chain.pem" -out "$h/cert.pem"
rf cert ca root >"$h/root.pem"
rf cert ca issuing >"$h/issuing.pem"
openssl ocsp -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
	-reqout "$h/req1.der" >/dev/null 2>&1
openssl ocsp -sha256 -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
	-reqout "$h/req256.der" >/dev/null 2>&1

for _ in 1 2 3 4 5; do
	port=$(freeport)
	tport=$(freeport)
	[ "$port" != "$tport" ] || continue
	"$RINGFENCE" serve --port "$port" --tls-port "$tport" \
		--duration $((secs + 90)) 2>"$h/serve.log" &
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
# The relying party's pre-signed answer exists before the flood.
for _ in $(seq 50); do
	openssl ocsp -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/root.pem" 2>&1 |
		grep -q ': good' && break
	sleep 0.1
done

# Anonymous signatures in the record: count and leaf bytes, per kind.
anon() {
	rf audit export 2>/dev/null | python3 -c '
import json, sys
n = {"tls": [0, 0], "ocsp": [0, 0]}
for line in sys.stdin:
    o = json.loads(line)
    if o.get("kind") != "leaf":
        continue
    d = bytes.fromhex(o["data_hex"])
    e = json.loads(d)
    if e.get("type") != "sign":
        continue
    if e.get("what") == "tls":
        k = "tls"
    elif e.get("what") == "ocsp" and e.get("ref", "").startswith("on-demand"):
        k = "ocsp"
    else:
        continue
    n[k][0] += 1
    n[k][1] += len(d)
print(n["tls"][0], n["ocsp"][0], n["tls"][1] + n["ocsp"][1])'
}

# Session resumption: six connections, one signature.
read -r t0 o0 b0 < <(anon)
python3 "$wire" "$tport" resume "$h/root.pem" 5 || fail "session resumption"
read -r t1 o1 b1 < <(anon)
[ $((t1 - t0)) -eq 1 ] || fail "1 full handshake + 5 resumed made $((t1 - t0)) TLS signatures"

# The flood.
stats=$(python3 "$wire" "$port" flood "$tport" "$h/root.pem" "$secs" \
	"$h/req256.der" "$h/req1.der") || fail "flood client: $stats"
read -r t2 o2 b2 < <(anon)
echo "serve_budget: flood $secs s: $stats"
echo "serve_budget: signed $((t2 - t1)) handshakes, $((o2 - o1)) OCSP on demand, $((b2 - b0)) leaf bytes today (limit $RINGFENCE_ANON_AUDIT_BYTES_DAY)"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$stats" "$1"; }
# Per source: 4/s and a burst of 4 (one second's worth), for each kind.
max=$(python3 -c "import math; print(math.ceil(4 * $secs) + 4 + 4)")
[ $((t2 - t1)) -le "$max" ] || fail "$((t2 - t1)) handshake signatures > budget $max"
[ $((o2 - o1)) -le "$max" ] || fail "$((o2 - o1)) on-demand OCSP signatures > budget $max"
[ "$((b2 - b0))" -le "$RINGFENCE_ANON_AUDIT_BYTES_DAY" ] ||
	fail "anonymous leaves added $((b2 - b0)) bytes > $RINGFENCE_ANON_AUDIT_BYTES_DAY"
[ "$(field tls_refused)" -gt 0 ] || fail "no handshake was refused"
# Past the budget: the pre-signed answer (the request names one
# certificate), never a signature.
[ "$(field ocsp_presigned)" -gt 0 ] || fail "no on-demand OCSP request was refused"
[ "$(field ocsp_other)" -eq 0 ] ||
	fail "on-demand OCSP answers other than signed or tryLater: $stats; serve: $(tail -5 "$h/serve.log")"
[ "$(field ocsp_signed)" -eq $((o2 - o1)) ] ||
	fail "$(field ocsp_signed) signed answers but $((o2 - o1)) leaves"
[ "$(field rp_bad)" -eq 0 ] || fail "the other client got $(field rp_bad) failed OCSP answers"
[ "$(field rp_ok)" -gt 0 ] || fail "the other client got no OCSP answer"
# Past the bytes of the day, nobody anonymous gets a full handshake.
if [ "$((b2 - b0 + 600))" -gt "$RINGFENCE_ANON_AUDIT_BYTES_DAY" ]; then
	curl -sf --cacert "$h/root.pem" "https://127.0.0.1:$tport/healthz" >/dev/null 2>&1 &&
		fail "a full handshake past the day's bytes"
fi
# Plain OCSP (pre-signed) is unaffected.
openssl ocsp -issuer "$h/issuing.pem" -cert "$h/cert.pem" -no_nonce \
	-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/root.pem" 2>&1 | grep -q ': good' ||
	fail "pre-signed OCSP after the flood"
kill "$server"
wait "$server" 2>/dev/null || true
server=""
# A restarted server counts the day's bytes from the record: past them, it
# grants no full handshake either.
if [ "$((b2 - b0 + 600))" -gt "$RINGFENCE_ANON_AUDIT_BYTES_DAY" ]; then
	"$RINGFENCE" serve --port "$port" --tls-port "$tport" --duration 60 \
		2>>"$h/serve.log" &
	server=$!
	for _ in $(seq 100); do
		curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
		sleep 0.1
	done
	for _ in 1 2 3; do
		curl -sf --cacert "$h/root.pem" "https://127.0.0.1:$tport/healthz" >/dev/null 2>&1 &&
			fail "a restarted server granted a full handshake past the day's bytes"
	done
	read -r t3 o3 b3 < <(anon)
	[ "$b3" -eq "$b2" ] || fail "after a restart anonymous leaves added $((b3 - b2)) bytes past the day's"
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=""
fi
rf audit verify >/dev/null || fail "audit verify"
echo "serve_budget: relying party p99 $(field rp_p99_ms) ms"
