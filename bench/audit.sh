#!/usr/bin/env bash
# Audit benchmark (issue 4): durable appends/s, verify time on 1,000,000
# leaves, and the record's cost per issued certificate.
# usage: bench/audit.sh BUILD_DIR [N_VERIFY] [ISSUE_CERTS_PER_S]
set -euo pipefail
build=$(cd "${1:?usage: audit.sh BUILD_DIR [N] [ISSUE_RATE]}" && pwd)
off=${RF_BENCH_AUDIT_OFF_BUILD:-$build-audit-off}
n=${2:-1000000}
issue_rate=${3:-}
export RINGFENCE_HOME=$(mktemp -d /tmp/rf-bench-audit.XXXXXX)
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

# The record on and off: the same issuance benchmark, 2,000 CSRs in batches
# of 500, alternating so that drift on this shared machine hits both.
[ -x "$off/bench_issue" ] || {
	echo "audit.sh: $off/bench_issue not built (cmake -DRF_BENCH_AUDIT_OFF=ON; make bench builds it)" >&2
	exit 1
}
rate() { "$1/bench_issue" 2000 500 norate | awk '$1 == "issue_per_sec" {print $2}'; }
on_rates=() off_rates=()
for i in 1 2 3; do
	on_rates+=("$(rate "$build")")
	off_rates+=("$(rate "$off")")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
awk -v on="$(median "${on_rates[@]}")" -v off="$(median "${off_rates[@]}")" \
	-v ons="${on_rates[*]}" -v offs="${off_rates[*]}" 'BEGIN {
	printf "%-44s %14.1f %14s\n", "issuance, record on, certs/s (median of 3)", on, ""
	printf "%-44s %14.1f %14s\n", "issuance, record off, certs/s (median of 3)", off, ""
	printf "%-44s %13.1f%% %14s\n", "record cost = 1 - on/off, measured", 100 * (1 - on / off), "<= 10%"
	printf "  runs on: %s; off: %s\n", ons, offs
}'
