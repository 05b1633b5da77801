#!/usr/bin/env bash
# bench/assert.sh BUILD_DIR [SECONDS] [RAW_N] [CLIENTS]: the connector API
# (issue 12).
#  - assertions per second over mutual-TLS keep-alive connections, one row
#    per client count in CLIENTS (comma-separated, default 4,16), each
#    against the token's raw RSA-2048 PSS signing rate with the same
#    connection key, over a message as long as an assertion's signing
#    input, measured right before and right after that row's phase and
#    averaged (target >= 70 %);
#  - p50 / p99 latency at half the assertion rate measured with the first
#    client count (target p99 <= 10 ms);
#  - the rate with every detector off, first client count, to price the
#    alerting path (target: on >= 0.9 x off): on and off alternate twice,
#    each phase as long and after the same warm-up, and the ratio is of
#    their sums, so that the machine's drift does not fall on one side;
#  - where the CPU goes per assertion at full load (keyd's RSA signature,
#    keyd's other work, serve, the load client, idle of the 2 cores), from
#    each process's CPU time over the run: the floor of the design; and
#    the share that CPU implies with both cores for these processes alone
#    (RSA CPU of the raw loop / keyd + serve + client CPU per assertion),
#    to read when other processes take the cores.
#  - every request carries a proof of possession: a MAC of one proof
#    session per load process (RF_BENCH_PROOF, default session), and one
#    more row at the last client count with a signature per proof
#    (signed, as ringfence assert makes them), against the last raw rate.
# Limits are lifted (conn_rate 0, connector_rate 0): the bench measures
# signing, not the buckets. Listens on 127.0.0.1 only; stopped by PID.
# BUILD_DIR must be a Release build (make bench: build-bench): a debug or
# sanitizer build prices the instrumentation, not the design.
set -euo pipefail
build=$(cd "${1:?usage: bench/assert.sh BUILD_DIR [SECONDS] [RAW_N] [CLIENTS]}" && pwd)
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)
if [ "$btype" != Release ] && [ -z "${RF_BENCH_ANY_BUILD:-}" ]; then
	echo "bench/assert.sh: $build is a '${btype:-unknown}' build: use a Release build (make bench builds build-bench)" >&2
	exit 2
fi
secs=${2:-10}
rawn=${3:-2000}
clients=${4:-4,16}
case "$clients" in
*[!0-9,]* | "" | ,* | *,)
	echo "bench/assert.sh: CLIENTS is a comma-separated list of client counts (e.g. 4,16), not '$clients'" >&2
	exit 2
	;;
esac
IFS=, read -r -a counts <<<"$clients"
first=${counts[0]}
rf="$build/ringfence"
ba="$build/bench_assert"
state_name=rf-bench-assert
. "$(dirname "$0")/assert_state.sh"
start() { # detectors: 1 or 0; fresh ports again if serve does not come up
	_start "$@"
	# The same warm state for every phase: connections, keys and the
	# decisions' facts loaded, the record's pages in memory.
	"$ba" load "127.0.0.1:$tport" c.pem c.key root.pem acme/m365 2 \
		"$first" >/dev/null
}
_start() {
	local try
	for try in 1 2 3 4 5; do
		port=$(freeport)
		tport=$(freeport)
		[ "$port" != "$tport" ] || continue
		RINGFENCE_DETECTORS=$1 "$rf" serve --port "$port" \
			--tls-port "$tport" --duration 600 --threads 2 2>serve.log &
		server=$!
		for _ in $(seq 300); do
			kill -0 "$server" 2>/dev/null || break
			if curl -sf -m 2 -o root.pem "http://127.0.0.1:$port/ca/root.pem"; then
				return 0
			fi
			sleep 0.1
		done
		kill -TERM "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	echo "bench/assert.sh: serve did not come up:" >&2
	cat serve.log >&2
	exit 1
}
stop() {
	kill -TERM "$server"
	wait "$server" || true
	server=""
}
ticks() { # PID -> its CPU time so far (user + system), clock ticks
	local f
	f=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	f=${f##*) } # the fields after "pid (comm) ": utime is the 12th
	set -- $f
	echo $((${12} + ${13}))
}
keyd_pid() { cat "$RINGFENCE_HOME/keyd.pid"; }
# THREADS [RATE] -> "rate p50 p99 errors client_cpu_s keyd_ticks serve_ticks"
load() {
	local kp k0 s0 out
	kp=$(keyd_pid)
	k0=$(ticks "$kp")
	s0=$(ticks "$server")
	out=$("$ba" load "127.0.0.1:$tport" c.pem c.key root.pem acme/m365 \
		"$secs" "$@")
	echo "$out $(($(ticks "$kp") - k0)) $(($(ticks "$server") - s0))"
}
raw() { # -> "signatures/s cpu_s" (bench_assert opens the token itself)
	"$ba" raw "$key" "$rawn" "$msglen"
}

# The raw loop signs as an assertion is signed: RSA-PSS (PS256, the
# default) over a message as long as a real assertion's signing input
# (its header and claims), read from one.
_start 1
msglen=$(curl -sSf --cert c.pem --key c.key --cacert root.pem \
	-H 'Content-Type: application/json' -d '{"connection":"acme/m365"}' \
	"https://127.0.0.1:$tport/v1/assertions" | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a["alg"] == "PS256", a["alg"]
print(len(a["assertion"].rsplit(".", 1)[0]))') || {
	echo "bench/assert.sh: could not get an assertion to measure its length" >&2
	exit 1
}
stop
# Each row's share is of the raw rate measured right before and right
# after its own phase (serve up and idle), averaged: the machine's load
# drifts during a run, and a benchmark run just before this one can
# leave it slow at the start.
# One row's "after" is the next row's "before".
start 1
rows=()
err_on=0
read -r rb rbt < <(raw)
for n in "${counts[@]}"; do
	read -r r p50x p99x e cc kt st < <(load "$n")
	read -r ra rat < <(raw)
	rows+=("$n:$r:$p99x:$cc:$kt:$st:$rb:$ra:$rbt:$rat")
	rb=$ra rbt=$rat
	err_on=$((err_on + e))
	[ "$n" != "$first" ] || on=$r
done
# Signed proofs, the last client count, against the raw rate just taken.
read -r signed _ _ e _ < <(RF_BENCH_PROOF=signed load "${counts[-1]}")
err_on=$((err_on + e))
# "p99 at half that load": half the assertion rate just measured.
read -r half p50 p99 err_half _ < <(load "$first" $(( ${on%.*} / 2 )))
stop
start 0
read -r off1 _ _ err_off _ < <(load "$first")
stop
# On and off again, in the other order's place: their sums are compared.
start 1
read -r on2 _ _ e _ < <(load "$first")
err_on=$((err_on + e))
stop
start 0
read -r off2 _ _ e _ < <(load "$first")
err_off=$((err_off + e))
stop

python3 - "$on" "$p50" "$p99" "$half" "$off1 $off2" "$err_on" "$err_off" \
	"$btype" "$(cut -d' ' -f1-3 /proc/loadavg)" "$first" \
	"${rows[*]}" "$secs" "$rawn" "$(getconf CLK_TCK)" \
	"$(nproc)" "$on2" "$msglen" "$signed ${counts[-1]}" \
	"${RF_BENCH_PROOF:-session}" <<'PY'
import sys
on, p50, p99, half = map(float, sys.argv[1:5])
off1, off2 = map(float, sys.argv[5].split())
e1, e2 = map(float, sys.argv[6:8])
first = sys.argv[10]
secs, rawn = map(float, sys.argv[12:14])
hz, cores = map(float, sys.argv[14:16])
rows = [row.split(":") for row in sys.argv[11].split()]
# Every raw measurement once: the first row's "before", each row's "after".
raws = [float(rows[0][6])] + [float(row[7]) for row in rows]
print("build %s, load average %s (ratios are of this run)" % (sys.argv[8], sys.argv[9]))
print("proofs: %s (RF_BENCH_PROOF)" % sys.argv[19])
print("%-52s %10s" % ("measure", "value"))
print("%-52s %10.0f  (%.0f to %.0f)" % ("token raw RSA-2048 PSS signatures/s (2 sessions)", sum(raws) / len(raws), min(raws), max(raws)))
print("  (of a %s-byte message, an assertion's signing input; measured" % sys.argv[17])
print("  right before and after each row's phase, and each row's share")
print("  is of the mean of those two)")
for n, r, q, cc, kt, st, rb, ra, rbt, rat in rows:
    r = float(r)
    raw = (float(rb) + float(ra)) / 2
    # CPU ms of one raw signature, from the same two raw runs.
    rsa = 1000.0 * (float(rbt) + float(rat)) / (2 * rawn)
    print("%-52s %10.0f" % ("assertions/s, %s clients, mTLS keep-alive, detectors on" % n, r))
    print("%-52s %9.0f%%  (target >= 70%%; raw %s before, %s after)" % ("  share of the raw rate", 100 * r / raw, rb, ra))
    print("%-52s %10.2f" % ("  p99 latency at that rate, ms", float(q)))
    if r <= 0:
        continue
    made = r * secs
    keyd = 1000.0 * float(kt) / hz / made
    serve = 1000.0 * float(st) / hz / made
    client = 1000.0 * float(cc) / made
    idle = 1000.0 * cores * secs / made - keyd - serve - client
    print("  CPU ms per assertion (%d cores: %.3f ms each at this rate):" % (cores, 1000.0 * cores / r))
    print("    keyd %.3f (RSA %.3f as in the raw loop, the rest %.3f), serve %.3f,"
          % (keyd, rsa, keyd - rsa, serve))
    print("    load client %.3f, idle or other processes %.3f" % (client, idle))
    # What the share would be with both cores for these processes alone:
    # the raw loop is CPU-bound on 2 sessions, so raw/s = cores / rsa and,
    # CPU-bound too, assertions/s = cores / (keyd + serve + client). Read
    # it when other processes take the cores (idle above is large).
    print("  CPU-bound share (RSA / keyd + serve + client CPU): %.0f%%"
          % (100 * rsa / (keyd + serve + client)))
sgn, sn = sys.argv[18].split()
sgn = float(sgn)
print("%-52s %10.0f" % ("assertions/s, %s clients, a signed proof each" % sn, sgn))
print("%-52s %9.0f%%  (of the last raw measure, %s)" % ("  share of the raw rate", 100 * sgn / float(rows[-1][7]), rows[-1][7]))
print("%-52s %10.0f" % ("assertions/s offered (%s clients): half the %s-client rate" % (first, first), on / 2))
print("%-52s %10.0f" % ("  answered", half))
print("%-52s %10.2f" % ("  p50 latency, ms", p50))
print("%-52s %10.2f  (target <= 10)" % ("  p99 latency, ms", p99))
on2 = float(sys.argv[16])
print("%-52s %10.0f  (%.0f, %.0f)" % ("assertions/s, %s clients, detectors on, again" % first, on2, on, on2))
print("%-52s %10.0f  (%.0f, %.0f)" % ("assertions/s, %s clients, detectors off" % first, (off1 + off2) / 2, off1, off2))
print("%-52s %10.2f  (target >= 0.9)" % ("  on / off (sums of both)", (on + on2) / (off1 + off2) if off1 + off2 else 0))
print("%-52s %10.0f" % ("request errors", e1 + e2))
PY
