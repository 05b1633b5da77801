#!/usr/bin/env bash
# Audit proofs benchmark (issue 13 item 5): inclusion and consistency
# proofs, roots included, from the stored subtree hashes as the record
# grows to N leaves (default 10,000,000, built through the real append path
# in group commits of 10,000: a few minutes). Mean of 1,000 of each per
# size; the rows show the O(log n) scaling.
# usage: [RF_BENCH_KEEP=DIR] bench/audit_proofs.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: audit_proofs.sh BUILD_DIR [N]}" && pwd)
n=${2:-10000000}
# RF_BENCH_KEEP=DIR: the record lives in DIR and is kept, so that a later
# run measures it again instead of building it (sizes below the kept
# record's are then tree sizes inside it).
if [ -n "${RF_BENCH_KEEP:-}" ]; then
	mkdir -p "$RF_BENCH_KEEP"
	export RINGFENCE_HOME=$(cd "$RF_BENCH_KEEP" && pwd)
else
	export RINGFENCE_HOME=$(mktemp -d /tmp/rf-bench-proofs.XXXXXX)
	trap 'rm -rf "$RINGFENCE_HOME"' EXIT
fi
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
out=$("$build/bench_audit_proofs" "$n")
printf '\naudit proofs from stored subtree hashes (mean of 1,000 each)\n'
printf '%-14s %16s %16s %10s\n' leaves "inclusion, ms" "consistency, ms" target
echo "$out" | awk '$1 == "proofs" {
	printf "%-14d %16.3f %16.3f %10s\n", $2, $3 / 1000, $4 / 1000, "<= 1"
}'
echo "$out" | awk '$1 == "append_rate" {
	printf "(record built at %d appends/s)\n", $2
}'
