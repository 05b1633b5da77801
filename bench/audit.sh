#!/usr/bin/env bash
# Audit benchmark (issue 4): durable appends/s, verify time on 1,000,000
# leaves, and the record's cost per issued certificate.
# usage: bench/audit.sh BUILD_DIR [N_VERIFY] [ISSUE_CERTS_PER_S]
set -euo pipefail
build=$(cd "${1:?usage: audit.sh BUILD_DIR [N] [ISSUE_RATE]}" && pwd)
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
		printf "%-44s %13.1f%% %14s\n", "record share of issuance time", share, "<= 10%"
	}'
fi
