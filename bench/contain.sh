#!/usr/bin/env bash
# Containment with a full standby pool (issue 14): N tenants with one
# connection each, their keys of ALG; the pool is filled with N keys of
# ALG first, then `incident contain` (scope all: every credential revoked,
# OCSP re-signed, one CRL, a new certificate and its OCSP response per
# connection, each new key taken from the pool). Wall time against the
# signature floor: the signatures contain made (audit record) divided by
# the token's raw signing rate measured in the same run (bench_rate,
# rf_keys_measure_rate). Targets: <= 2x the floor and, at 36,000, <= 15 s.
# Beside it, the floor of signatures that may be released: each also
# verified with its public key before release (bench_rate verify).
# Contain's own time runs until the incident is contained (every
# connection's successor committed and published, the old keys disabled);
# the destruction of the old keys after it is a phase of its own, and
# close (after every connection is waived) is timed separately: each
# <= 60 s at 36,000.
#
# At 36,000 the destruction alone takes over an hour here (SoftHSM rereads
# a token's folder for every file it removes, stop 22's note), so above
# 10,000 tenants it is timed on a sample: contain runs until it has
# destroyed RF_BENCH_DESTROY_SAMPLE pairs (default 2048, one of its
# parts), is stopped there by its PID as an operator would stop it (a
# rerun resumes), and the bare loop destroys as many pairs on the same
# tokens. Close needs every old key gone first, so it is not timed then.
# RF_BENCH_DESTROY_SAMPLE=0 times the whole destruction and close at any N.
#
# ALG rsa-2048 (Entra connections) is opt-in: SoftHSM makes an RSA-2048
# pair in about 0.4 s of one core, so the estate and the pool at 3,600
# take about 25 minutes. The CA's signatures are EC either way, so
# contain's time should not depend on ALG.
#
# usage: bench/contain.sh BUILD_DIR [N] [ALG] [tmpfs|disk]
set -euo pipefail
build=$(cd "${1:?usage: contain.sh BUILD_DIR [N] [ALG] [tmpfs|disk]}" && pwd)
n=${2:-36000}
alg=${3:-ec-p256}
where=${4:-tmpfs}
export RINGFENCE_HOME=$(mktemp -d /var/tmp/rf-bench-contain.XXXXXX)
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
# The pool is filled by the bench itself, once: keyd's background refill
# (pool_refill) would make keys during the timed contain.
export RINGFENCE_POOL_REFILL=0
tokdir=""
# keyd is stopped by its pid file (never by name), then its state goes.
cleanup() { "$build/ringfence" keyd stop >/dev/null 2>&1 || true; rm -rf "$RINGFENCE_HOME" "$RINGFENCE_HOME-custody" ${tokdir:+"$tokdir"}; }
trap cleanup EXIT
rf() { "$build/ringfence" "$@"; }
. "$(dirname "$0")/contain_stop.sh"
if [ "$where" = tmpfs ]; then
	tokdir=$(mktemp -d /dev/shm/rf-bench-tokens.XXXXXX)
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
		"$tokdir" >"$RINGFENCE_HOME/softhsm2.conf"
fi
db=$RINGFENCE_HOME/ringfence.db
rf init 2>/dev/null
echo "contain: populating $n tenants ($alg keys) ..." >&2
"$build/rf-populate" "$n" 0 t "$alg" >&2
echo "contain: filling the pool with $n $alg keys ..." >&2
fill=$(rf --json keys pool fill --alg "$alg" --count "$n" |
	python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print("%.2f %.1f" % (o["seconds"], o["made"] / o["seconds"]))')
# RF_BENCH_RESTART=1: keyd stops after the fill and another starts (as an
# on-demand keyd does after keyd_idle); contain runs once it has found the
# pool keys' handles again (its log says so), as it would at 3 a.m.
if [ "${RF_BENCH_RESTART:-0}" = 1 ]; then
	rf keyd stop >/dev/null
	r0=$(date +%s.%N)
	rf keys list >/dev/null
	for _ in $(seq 600); do
		grep -q "free keys found again" "$RINGFENCE_HOME/keyd.log" 2>/dev/null && break
		sleep 0.1
	done
	echo "contain: keyd restarted; $(grep -o 'handles of .* found again in the token in [0-9.]* s' "$RINGFENCE_HOME/keyd.log" | tail -1) ($(echo "$(date +%s.%N) - $r0" | bc) s after the restart)" >&2
fi
id=$(rf incident open --scope all --reason bench 2>/dev/null | head -1)
rate=$("$build/bench_rate" 20000)
# What keys does with each signature before it releases it: verify it
# with the public key (OpenSSL, on 2 threads).
vrate=$("$build/bench_rate" verify 20000)
before=$(sqlite3 "$db" 'SELECT count(*) FROM audit_leaf')
# RF_BENCH_PERF=DIR: perf record -g of keyd and of the contain command.
perfpid=""
if [ -n "${RF_BENCH_PERF:-}" ]; then
	mkdir -p "$RF_BENCH_PERF"
	perf record -k realtime --call-graph dwarf,16384 -F 500 -o "$RF_BENCH_PERF/keyd.data" -p "$(cat "$RINGFENCE_HOME/keyd.pid")" 2>/dev/null &
	perfpid=$!
	sleep 1
fi
perf_cli() { if [ -n "${RF_BENCH_PERF:-}" ]; then perf record -k realtime --call-graph dwarf,16384 -F 500 -o "$RF_BENCH_PERF/cli.data" "$@"; else "$@"; fi; }
t0=$(date +%s.%N)
# --json: progress as JSON lines on stderr, stamped with the time each
# line came ($stamp_stop, bench/contain_stop.sh), so the report shows where
# contain's time goes.
prog=$RINGFENCE_HOME/progress.txt
sample=${RF_BENCH_DESTROY_SAMPLE:-}
if [ -z "$sample" ]; then
	sample=0
	[ "$n" -le 10000 ] || sample=2048
fi
if [ "$sample" = 0 ]; then
	out=$(perf_cli "$build/ringfence" --json incident contain "$id" 2> >(python3 -u -c "$stamp_stop" -1 "$RINGFENCE_HOME" >"$prog"))
else
	# Until SAMPLE old keys are destroyed: then stopped. perf_cli is not
	# used here, so that the PID stopped is the command's own.
	contain_stopped "$id" "$prog" "$sample"
	out=""
	if [ "$contain_killed" = 0 ]; then
		# The whole destruction came within the sample.
		out=$(cat "$RINGFENCE_HOME/contain.json")
		sample=0
	fi
fi
t1=$(date +%s.%N)
if [ -n "$perfpid" ]; then kill -INT "$perfpid" 2>/dev/null || true; wait "$perfpid" || true; fi
sleep 0.2 # the stamping filter drains
# The phases' wall-clock stamps beside the profiles (recorded with -k
# realtime): `perf report --time START,END` shows one phase.
if [ -n "${RF_BENCH_PERF:-}" ]; then
	{ echo "$t0 start"; cat "$prog"; echo "$t1 end"; } >"$RF_BENCH_PERF/stamps.txt"
fi
[ -z "$out" ] || echo "$out" >&2
# Each phase: its first progress line to the next phase's first line,
# printed on stderr. On stdout, for a sample: contained when the
# destruction began, and the sample from then to the line that counted it.
from_prog=$(python3 - "$prog" "$t0" "$t1" "$sample" <<'PY'
import json, sys
rows, t0, t1 = [], float(sys.argv[2]), float(sys.argv[3])
start, end, done = None, None, 0
for line in open(sys.argv[1]):
    t, _, js = line.partition(" ")
    try:
        o = json.loads(js)
    except ValueError:
        continue
    if not rows or rows[-1][1] != o["phase"]:
        rows.append([float(t), o["phase"], o["total"]])
    if o["phase"] == "destroy old keys":
        if start is None:
            start = float(t)
        if o["done"] > done:
            end, done = float(t), o["done"]
err = sys.stderr
print("contain phases (s from the start of the command):", file=err)
for i, (t, ph, tot) in enumerate(rows):
    stop = rows[i + 1][0] if i + 1 < len(rows) else t1
    print("  %-32s %8.2f s  (n=%s)" % (ph, stop - t, tot), file=err)
print("  %-32s %8.2f s" % ("before the first phase", rows[0][0] - t0 if rows else 0), file=err)
if sys.argv[4] != "0":
    if done == 0:
        sys.exit("contain.sh: no old key was destroyed before contain was stopped")
    print(start - t0, end - start, done)
PY
)
if [ "$sample" = 0 ]; then
	# Contain's own account of its phases (the --json result's
	# contain_phases).
	echo "$out" | python3 -c '
import json, sys
ph = json.load(sys.stdin)["contain_phases"]
print("contain phases, as contain timed them:")
for p in ph:
    print("  %-40s %8.3f s" % (p["phase"], p["s"]))
' >&2
	# Until contained, and the destruction of the old keys after it.
	phases=$(echo "$out" | python3 -c 'import json, sys; o = json.load(sys.stdin); print(o["contain_s"], o["destroy_s"], o["destroyed"])')
	# Close: every connection waived (the relying parties are not
	# reachable here), then close, which checks what is left and ends
	# the incident.
	rf incident confirm "$id" --all --waive >/dev/null
	c0=$(date +%s.%N)
	rf incident close "$id" >/dev/null
	c1=$(date +%s.%N)
	closes=$(echo "$c1 - $c0" | bc)
else
	phases=$from_prog
	closes=-1
fi
# The token's own destruction floor in the same state: as many pairs as
# contain destroyed, made over the 32 tokens next to contain's N new keys
# and destroyed by a bare PKCS#11 loop (bench_keygen_bare ... destroy).
# RF_BENCH_DESTROY_FLOOR=0 skips it (it makes that many keys first).
dfloor=0
nd=$(echo "$phases" | cut -d' ' -f3)
if [ "${RF_BENCH_DESTROY_FLOOR:-1}" != 0 ] && [ "$nd" -gt 0 ]; then
	echo "contain: the bare destruction floor: making $nd $alg keys ..." >&2
	dfloor=$("$build/bench_keygen_bare" "$alg" "$nd" destroy)
fi
sigs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'sign'")
kgs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'keygen'")
takes=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'pool'")
awk -v n="$n" -v alg="$alg" -v where="$where" -v wall="$(echo "$t1 - $t0" | bc)" -v sigs="$sigs" \
	-v rate="$rate" -v vrate="$vrate" -v kgs="$kgs" -v takes="$takes" -v fill="$fill" -v phases="$phases" \
	-v dfloor="$dfloor" -v closes="$closes" -v sampled="$sample" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
	split(fill, f, " ")
	split(phases, ph, " ")
	floor = sigs / rate
	printf "\nincident contain, scope=all, %d tenants, %s keys from the standby pool, SoftHSM (token folder on %s), 2 cores\n", n, alg, where
	printf "%-44s %12s\n", "measure", "value"
	printf "%-44s %12.1f\n", "pool fill, s", f[1]
	printf "%-44s %12.1f\n", "pool fill rate, keys/s (SCHED_IDLE)", f[2]
	printf "%-44s %12.2f\n", "contain command wall time, s", wall
	printf "%-44s %12.2f\n", "  of which until contained, s", ph[1]
	if (sampled > 0) {
		printf "%-44s %12.2f\n", "  then old keys destroyed, sample, s", ph[2]
		printf "%-44s %12d\n", "  pairs destroyed in the sample", ph[3]
		printf "%-44s %12.0f\n", "  whole destruction at that rate, s", n * ph[2] / ph[3]
	} else
		printf "%-44s %12.2f\n", "  of which old keys destroyed after, s", ph[2]
	if (dfloor > 0 && ph[3] > 0) {
		printf "%-44s %12.2f\n", "  bare PKCS#11 destroy loop, as many, s", ph[3] / dfloor
		printf "%-44s %12.2fx\n", "  destruction / bare loop", ph[2] / (ph[3] / dfloor)
	}
	if (closes >= 0)
		printf "%-44s %12.2f\n", "incident close, s", closes
	else
		printf "%-44s %12s\n", "incident close, s", "not run"
	printf "%-44s %12d\n", "pool keys taken (audit record)", takes
	printf "%-44s %12d\n", "key pairs generated during contain", kgs
	printf "%-44s %12d\n", "signatures made (audit record)", sigs
	printf "%-44s %12.0f\n", "token raw rate, signatures/s (2 threads)", rate
	printf "%-44s %12.2f\n", "floor = signatures / rate, s", floor
	printf "%-44s %12.2fx\n", "until contained / floor", ph[1] / floor
	printf "%-44s %12.0f\n", "signature verifications/s (2 threads)", vrate
	printf "%-44s %12.2f\n", "floor of released signatures (+ verify), s", floor + sigs / vrate
	printf "%-44s %12.2fx\n", "until contained / that floor", ph[1] / (floor + sigs / vrate)
	if (closes >= 0)
		printf "%-44s %12.2fx\n", "command wall / floor", wall / floor
	printf "%-44s %12s\n", "load average (1 min) at the end", load
	print "targets: contained <= 2x floor and, at 36,000 tenants, <= 15 s;"
	print "destruction and close each <= 60 s at 36,000 tenants"
	if (closes < 0)
		print "close was not run: it needs every old key destroyed first (RF_BENCH_DESTROY_SAMPLE=0)"
}'
