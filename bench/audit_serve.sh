#!/usr/bin/env bash
# OCSP beside audit proofs (issue 13 item 5): one relying party asks a
# pre-signed OCSP answer every 10 ms, first alone, then while 50 clients
# (wrk, 50 connections) fetch inclusion and consistency proofs of random
# leaves of an N-leaf record (default 1,000,000) back to back. /audit/*
# runs on its own pool with a cap (audit_threads, audit_max_concurrent):
# past the cap the worker answers 503 at once. Prints the relying party's
# p50/p99 in both phases (target: p99 <= 5 ms under the load), and the
# proofs answered per second, and refused, in the same run.
#
# The record is the state's own, grown by bench_audit_proofs through the
# real append path (it prints its direct proof times on the way).
# usage: bench/audit_serve.sh BUILD_DIR [N] [SECONDS]
set -euo pipefail
build=$(cd "${1:?usage: audit_serve.sh BUILD_DIR [N] [SECONDS]}" && pwd)
n=${2:-1000000}
secs=${3:-${RF_BENCH_SECONDS:-20}}
clients=${RF_BENCH_CLIENTS:-50}
here=$(cd "$(dirname "$0")" && pwd)
wire="$here/../tests/unit/http_wire.py"
# The tests' state folder (fresh, keyd without the user split, removed with
# its server and keyd on exit).
export RINGFENCE=$build/ringfence RF_BINARY_DIR=$build
. "$here/../tests/integration/lib/state.sh" bench-audit-serve
export RINGFENCE_TOKENS=2
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
w=$RINGFENCE_HOME

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 \
	--out "$w/chain.pem" >/dev/null
openssl x509 -in "$w/chain.pem" -out "$w/cert.pem"
rf cert ca root >"$w/root.pem"
rf cert ca issuing >"$w/issuing.pem"
openssl ocsp -issuer "$w/issuing.pem" -cert "$w/cert.pem" -no_nonce \
	-reqout "$w/req1.der" >/dev/null 2>&1
echo "audit_serve: growing the record to $n leaves ..." >&2
"$build/bench_audit_proofs" "$n" >"$w/direct.txt"
size=$n # init's few leaves are below 1,000: the record is grown to n

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/ringfence" serve --port "$port" --duration $((2 * secs + 120)) \
	2>"$w/serve.log" &
server=$!
for _ in $(seq 200); do
	openssl ocsp -issuer "$w/issuing.pem" -cert "$w/cert.pem" -no_nonce \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$w/root.pem" 2>&1 |
		grep -q ': good' && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$port/audit/proof?leaf=$((size - 1))" | grep -q '"audit_path"' ||
	fail "audit_serve: /audit/proof does not answer: $(cat "$w/serve.log")"

alone=$(python3 "$wire" "$port" rp "$secs" "$w/req1.der")
python3 "$wire" "$port" rp "$secs" "$w/req1.der" >"$w/loaded.json" &
rp=$!
nice -n "${RF_BENCH_LOAD_NICE:-0}" wrk -t2 -c"$clients" -d"${secs}s" --timeout 10s -s "$here/audit_proofs_load.lua" \
	"http://127.0.0.1:$port" -- "$size" >"$w/wrk.txt" 2>&1
wait "$rp"
loaded=$(cat "$w/loaded.json")
load=$(uptime | sed 's/.*load average: //')

printf '\nOCSP (pre-signed, one relying party every 10 ms) beside %d proof clients, record of %d leaves, %d s each\n' \
	"$clients" "$size" "$secs"
awk '$1 == "proofs" && $2 == '"$n"' {
	printf "direct proofs at this size: inclusion %.3f ms, consistency %.3f ms\n", $3 / 1000, $4 / 1000
}' "$w/direct.txt"
python3 - "$alone" "$loaded" "$(grep '^proofs ' "$w/wrk.txt")" "$secs" "$load" <<'PY'
import json, sys
a, l = json.loads(sys.argv[1]), json.loads(sys.argv[2])
_, ok, busy, other, p50, p99 = sys.argv[3].split()
secs = float(sys.argv[4])
print("%-32s %8s %8s %8s %8s %8s" % ("", "answers", "bad", "p50 ms", "p99 ms", "max ms"))
for name, x in (("OCSP alone", a), ("OCSP beside the proofs", l)):
    print("%-32s %8d %8d %8.2f %8.2f %8.2f" % (name, x["ocsp"], x["ocsp_bad"],
          x["p50_ms"], x["p99_ms"], x["max_ms"]))
print("p99 beside / alone: %.2fx; target p99 <= 5 ms: %s" % (
    l["p99_ms"] / a["p99_ms"] if a["p99_ms"] > 0 else 0,
    "met" if 0 <= l["p99_ms"] <= 5 else "MISSED"))
print("proofs: %.0f/s answered, %.0f/s refused (503, past the cap), %s other;"
      " wrk latency p50 %s ms, p99 %s ms (answers and refusals)" % (
          int(ok) / secs, int(busy) / secs, other, p50, p99))
print("load average at the end: %s" % sys.argv[5])
PY
