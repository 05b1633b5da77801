#!/usr/bin/env bash
# Incident benchmark: contain N tenants (one connection each) with
# scope=issuer on the SoftHSM token. Wall time from the start of `incident
# contain` until every new certificate is committed and OCSP is updated
# (the command returns only then), against the floor: the signatures it
# made (counted in the audit record) at the token's raw rate measured in the
# same run. Contain then destroys the old keys, a phase of its own that
# bench/contain.sh times against the token's bare loop: it is timed here
# too up to 10,000 tenants; above, contain is stopped by its PID when it
# begins (an hour at 36,000 here; a rerun would resume it), and the state
# folder is thrown away.
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
. "$(dirname "$0")/contain_stop.sh"

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
prog=$RINGFENCE_HOME/progress.txt
stop=-1
[ "$n" -le 10000 ] || stop=0
t0=$(date +%s.%N)
contain_stopped "$id" "$prog" "$stop"
t2=$(date +%s.%N)
sleep 0.2 # the stamping filter drains
# Contained when the destruction began (its first progress line).
t1=$(awk '/"phase":"destroy old keys"/ { print $1; exit }' "$prog")
t1=${t1:-$t2}
sigs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'sign'")
kgs=$(sqlite3 "$db" "SELECT count(*) FROM audit_leaf WHERE idx >= $before AND type = 'keygen'")
destroy=-1
[ "$contain_killed" = 1 ] || destroy=$(echo "$t2 - $t1" | bc)
awk -v n="$n" -v where="$where" -v wall="$(echo "$t1 - $t0" | bc)" -v sigs="$sigs" -v rate="$rate" \
	-v kgs="$kgs" -v kgrate="$kgrate" -v destroy="$destroy" 'BEGIN {
	floor = sigs / rate
	kfloor = kgs / kgrate
	printf "\nincident contain, scope=issuer, %d tenants (one connection each), SoftHSM (token folder on %s), 2 cores\n", n, where
	printf "%-40s %12s\n", "measure", "value"
	printf "%-40s %12.2f\n", "wall time until contained, s", wall
	if (destroy >= 0)
		printf "%-40s %12.2f\n", "then old keys destroyed, s", destroy
	else
		printf "%-40s %12s\n", "then old keys destroyed, s", "not run"
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
