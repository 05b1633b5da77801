#!/usr/bin/env bash
# What an anonymous flood can make the token sign, against its budget
# (issue 11 item 2): TLS handshakes without a ticket and SHA-256-CertID
# OCSP requests, as fast as a client goes, from one source and then from
# 16 (127.0.0.x: each its own /32), for RF_BENCH_SECONDS (default 20)
# each, with the default budgets. Counted from the audit record: the
# signatures per second forced, beside the budget; the day's bytes limit
# is lifted here so that the rates are what is measured, and the bytes a
# day at the forced rate are printed beside anon_audit_bytes_day.
#
# usage: bench/anon.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: anon.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
wire="$here/../tests/unit/http_wire.py"
secs=${RF_BENCH_SECONDS:-20}
export RINGFENCE_HOME=$(mktemp -d /tmp/rf-bench-anon.XXXXXX)
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$RINGFENCE_HOME"' EXIT
export RINGFENCE_TOKENS=2
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
rf() { "$build/ringfence" "$@"; }
# The default budgets, read back from a fresh configuration.
day_default=$((64 * 1024 * 1024))
tls_rate=${RINGFENCE_TLS_HANDSHAKE_RATE:-50}
tls_src=${RINGFENCE_TLS_HANDSHAKE_SOURCE_RATE:-20}
ocsp_rate=${RINGFENCE_OCSP_ONDEMAND_RATE:-50}
ocsp_src=${RINGFENCE_OCSP_ONDEMAND_SOURCE_RATE:-10}
export RINGFENCE_ANON_AUDIT_BYTES_DAY=2000000000

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 \
	--out "$RINGFENCE_HOME/chain.pem" >/dev/null
w=$RINGFENCE_HOME
openssl x509 -in "$w/chain.pem" -out "$w/cert.pem"
rf cert ca root >"$w/root.pem"
rf cert ca issuing >"$w/issuing.pem"
openssl ocsp -issuer "$w/issuing.pem" -cert "$w/cert.pem" -no_nonce \
	-reqout "$w/req1.der" >/dev/null 2>&1
openssl ocsp -sha256 -issuer "$w/issuing.pem" -cert "$w/cert.pem" -no_nonce \
	-reqout "$w/req256.der" >/dev/null 2>&1
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(freeport)
tport=$(freeport)
"$build/ringfence" serve --port "$port" --tls-port "$tport" \
	--duration $((2 * secs + 120)) 2>"$w/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done

anon() {
	rf audit export 2>/dev/null | python3 -c '
import json, sys
t = o = b = 0
for line in sys.stdin:
    x = json.loads(line)
    if x.get("kind") != "leaf":
        continue
    d = bytes.fromhex(x["data_hex"])
    e = json.loads(d)
    if e.get("type") != "sign":
        continue
    if e.get("what") == "tls":
        t += 1; b += len(d)
    elif e.get("what") == "ocsp" and e.get("ref", "").startswith("on-demand"):
        o += 1; b += len(d)
print(t, o, b)'
}

printf '%-34s %12s %12s %12s %14s\n' "anonymous flood ($secs s)" "forced sig/s" \
	"budget/s" "refused/s" "bytes/day"
for nsrc in 1 16; do
	srcs=127.0.0.1
	for i in $(seq 2 "$nsrc"); do srcs="$srcs,127.0.0.$((i + 1))"; done
	read -r t0 o0 b0 < <(anon)
	stats=$(RF_WIRE_SOURCES=$srcs python3 "$wire" "$port" flood "$tport" \
		"$w/root.pem" "$secs" "$w/req256.der" "$w/req1.der")
	read -r t1 o1 b1 < <(anon)
	python3 - "$stats" "$nsrc" "$secs" $((t1 - t0)) $((o1 - o0)) $((b1 - b0)) \
		"$tls_rate" "$tls_src" "$ocsp_rate" "$ocsp_src" "$day_default" <<'PY'
import json, sys
st = json.loads(sys.argv[1])
n, secs, t, o, b = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
tr, ts, orate, osrc, day = (int(x) for x in sys.argv[7:12])
tb = min(tr, ts * n)
ob = min(orate, osrc * n)
print("%-34s %12.1f %12d %12.1f %14s" % ("TLS handshakes, %d source%s" % (n, "s" if n > 1 else ""),
      t / secs, tb, st["tls_refused"] / secs, ""))
print("%-34s %12.1f %12d %12.1f %14s" % ("on-demand OCSP, %d source%s" % (n, "s" if n > 1 else ""),
      o / secs, ob, (st["ocsp_presigned"] + st["ocsp_trylater"]) / secs, ""))
print("%-34s %12s %12s %12s %14d" % ("  record growth at that rate", "", "", "",
      int(b / secs * 86400)))
print("%-34s %12s %12s %12s %14d" % ("  anon_audit_bytes_day (default)", "", "", "", day))
print("%-34s %12s %12s %12s %14s" % ("  relying party OCSP p99 (ms)", "", "", "", st["rp_p99_ms"]))
PY
done
