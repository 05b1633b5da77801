#!/usr/bin/env bash
# Incident benchmark: contain N tenants (one connection each) with
# scope=issuer on the SoftHSM token. Wall time from the start of `incident
# contain` until every new certificate is committed and OCSP is updated
# (the command returns only then), against the floor: the signatures it
# made (counted in the audit record) at the token's raw rate measured in the
# same run.
#
# usage: bench/incident.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: incident.sh BUILD_DIR [N]}" && pwd)
n=${2:-36000}
export RINGFENCE_HOME=$(mktemp -d /tmp/rf-bench-incident.XXXXXX)
trap 'rm -rf "$RINGFENCE_HOME"' EXIT
rf() { "$build/ringfence" "$@"; }

rf init 2>/dev/null
echo "incident: populating $n tenants ..." >&2
"$build/rf-populate" "$n" 0 >&2
id=$(rf incident open --scope issuer:issuing --reason bench 2>/dev/null | head -1)
db=$RINGFENCE_HOME/ringfence.db
before=$(sqlite3 "$db" 'SELECT count(*) FROM audit_leaf')
t0=$(date +%s.%N)
rf incident contain "$id" >&2
t1=$(date +%s.%N)
sigs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'sign'")
rate=$("$build/bench_rate" 20000)
awk -v n="$n" -v wall="$(echo "$t1 - $t0" | bc)" -v sigs="$sigs" -v rate="$rate" 'BEGIN {
	floor = sigs / rate
	printf "\nincident contain, scope=issuer, %d tenants (one connection each), SoftHSM, 2 cores\n", n
	printf "%-40s %12s\n", "measure", "value"
	printf "%-40s %12.2f\n", "wall time, s", wall
	printf "%-40s %12d\n", "signatures made (audit record)", sigs
	printf "%-40s %12.0f\n", "token raw rate, signatures/s (2 threads)", rate
	printf "%-40s %12.2f\n", "floor = signatures / rate, s", floor
	printf "%-40s %12.2fx\n", "wall / floor", wall / floor
	print "targets: wall <= 2x floor and <= 15 s"
}'
