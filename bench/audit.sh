#!/usr/bin/env bash
# Audit benchmark (issue 4): durable appends/s, verify time on 1,000,000
# leaves, and the record's cost to issuance, measured: bench_issue with the
# record on (BUILD_DIR) and off (the build made with CMake
# -DRF_BENCH_AUDIT_OFF=ON, default BUILD_DIR-audit-off, as make bench does;
# see docs/bench.md). With an issuance rate as third argument it also
# prints the share computed from the append microbenchmark, as a
# cross-check.
# usage: bench/audit.sh BUILD_DIR [N_VERIFY] [ISSUE_CERTS_PER_S]
set -euo pipefail
build=$(cd "${1:?usage: audit.sh BUILD_DIR [N] [ISSUE_RATE]}" && pwd)
off=${RF_BENCH_AUDIT_OFF_BUILD:-$build-audit-off}
n=${2:-1000000}
issue_rate=${3:-}
export RINGFENCE_HOME=$(mktemp -d /tmp/rf-bench-audit.XXXXXX)
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
trap 'rm -rf "$RINGFENCE_HOME"' EXIT
out=$("$build/bench_audit" "$n")
get() { echo "$out" | awk -v k="$1" '$1 == k {print $2}'; }
printf '\naudit record, SQLite WAL synchronous=FULL, group commit of 1,000\n'
printf '%-44s %14s %14s\n' measure value target
printf '%-44s %14s %14s\n' "durable appends/s" "$(get append_rate)" ">= 100000"
printf '%-44s %14s %14s\n' "verify $(get verify_leaves) leaves, s" "$(get verify_seconds)" "<= 2"
if [ -n "$issue_rate" ]; then
	awk -v us="$(get audit_us_per_cert)" -v ir="$issue_rate" 'BEGIN {
		share = us * ir / 1e6 * 100
		printf "%-44s %13.1f%% %14s\n", "record share, computed (us/leaf x rate)", share, "<= 10%"
	}'
fi

# The record on and off: the same issuance benchmark, 4,000 CSRs in batches
# of 500, nine pairs of runs (RF_BENCH_AUDIT_PAIRS), each pair back to back
# so that drift on this shared machine hits both halves; the cost is the
# median of the pairs' 1 - on/off. Single pairs range over about +-10
# points here: five pairs left the median swinging by several.
[ -x "$off/bench_issue" ] || {
	echo "audit.sh: $off/bench_issue not built (cmake -DRF_BENCH_AUDIT_OFF=ON; make bench builds it)" >&2
	exit 1
}
rate() { "$1/bench_issue" 4000 500 norate | awk '$1 == "issue_per_sec" {print $2}'; }
pairs=""
pairs_n=${RF_BENCH_AUDIT_PAIRS:-9}
for i in $(seq "$pairs_n"); do
	pairs="$pairs $(rate "$build"):$(rate "$off")"
done
echo "$pairs" | tr ' ' '\n' | awk -F: 'NF == 2 {
	n++; on[n] = $1; off[n] = $2; cost[n] = 100 * (1 - $1 / $2)
	runs = runs sprintf(" %.0f/%.0f", $1, $2)
}
function median(a, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return a[int((n + 1) / 2)]
}
END {
	printf "%-44s %14.1f %14s\n", sprintf("issuance, record on, certs/s (median of %d)", n), median(on, n), ""
	printf "%-44s %14.1f %14s\n", sprintf("issuance, record off, certs/s (median of %d)", n), median(off, n), ""
	printf "%-44s %13.1f%% %14s\n", sprintf("record cost, 1 - on/off, median of %d pairs", n), median(cost, n), "<= 10%"
	printf "  pairs on/off:%s\n", runs
}'
