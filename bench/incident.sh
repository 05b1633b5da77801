#!/usr/bin/env bash
# Incident benchmark: contain N tenants (one connection each) with
# scope=issuer on the SoftHSM token. Wall time from the start of `incident
# contain` until every new certificate is committed and OCSP is updated
# (the command returns only then), against the floor: the signatures it
# made (counted in the audit record) at the token's raw rate measured in the
# same run.
#
# The store (SQLite, fsync per commit) is always on disk. SoftHSM's file
# object store rewrites an object file a few dozen times per key (open,
# ftruncate, write), which ext4 flushes on close; with "tmpfs" the token
# folder is put on /dev/shm instead, standing in for an HSM whose key store
# is not a file system. Both are printed by `make bench`.
#
# usage: bench/incident.sh BUILD_DIR [N] [disk|tmpfs]
set -euo pipefail
build=$(cd "${1:?usage: incident.sh BUILD_DIR [N] [disk|tmpfs]}" && pwd)
n=${2:-36000}
where=${3:-tmpfs}
export RINGFENCE_HOME=$(mktemp -d /var/tmp/rf-bench-incident.XXXXXX)
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
tokdir=""
# keyd (started on demand) is stopped by its pid file, then its state goes.
cleanup() {
	"$build/ringfence" keyd stop >/dev/null 2>&1 || true
	rm -rf "$RINGFENCE_HOME" "$RINGFENCE_HOME-custody" ${tokdir:+"$tokdir"}
}
trap cleanup EXIT
rf() { "$build/ringfence" "$@"; }

if [ "$where" = tmpfs ]; then
	tokdir=$(mktemp -d /dev/shm/rf-bench-tokens.XXXXXX)
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
		"$tokdir" >"$RINGFENCE_HOME/softhsm2.conf"
fi
rf init 2>/dev/null
echo "incident: populating $n tenants ..." >&2
"$build/rf-populate" "$n" 0 >&2
id=$(rf incident open --scope issuer:issuing --reason bench 2>/dev/null | head -1)
db=$RINGFENCE_HOME/ringfence.db
# The token's raw rate, before containment disables the issuing key, and the
# rate at which it makes key pairs the way contain does (2,000 of them,
# left in the token: the state is thrown away). Both before `before` is
# read below, so that their audit leaves are not counted as contain's.
rate=$("$build/bench_rate" 20000)
kgrate=$("$build/bench_rate" keygen 2000)
before=$(sqlite3 "$db" 'SELECT count(*) FROM audit_leaf')
t0=$(date +%s.%N)
rf incident contain "$id" >&2
t1=$(date +%s.%N)
sigs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'sign'")
kgs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'keygen'")
awk -v n="$n" -v where="$where" -v wall="$(echo "$t1 - $t0" | bc)" -v sigs="$sigs" -v rate="$rate" \
	-v kgs="$kgs" -v kgrate="$kgrate" 'BEGIN {
	floor = sigs / rate
	kfloor = kgs / kgrate
	printf "\nincident contain, scope=issuer, %d tenants (one connection each), SoftHSM (token folder on %s), 2 cores\n", n, where
	printf "%-40s %12s\n", "measure", "value"
	printf "%-40s %12.2f\n", "wall time, s", wall
	printf "%-40s %12d\n", "signatures made (audit record)", sigs
	printf "%-40s %12.0f\n", "token raw rate, signatures/s (2 threads)", rate
	printf "%-40s %12.2f\n", "floor = signatures / rate, s", floor
	printf "%-40s %12.2fx\n", "wall / floor", wall / floor
	printf "%-40s %12d\n", "key pairs made (audit record)", kgs
	printf "%-40s %12.0f\n", "token keygen rate, pairs/s (as contain)", kgrate
	printf "%-40s %12.2f\n", "key pairs / keygen rate, s", kfloor
	printf "%-40s %12.2fx\n", "wall / (floor + key pairs / rate)", wall / (floor + kfloor)
	print "targets: wall <= 2x floor and <= 15 s (the floor counts signatures only)"
}'
