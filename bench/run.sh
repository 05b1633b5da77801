#!/usr/bin/env bash
# make bench: every benchmark, each printing its own table. Never part of
# make test. usage: bench/run.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: bench/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp /tmp/rf-bench-run.XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
for b in issue custody crl ocsp audit audit_proofs audit_serve incident anon assert visibility pool contain; do
	[ -f "$here/$b.sh" ] || continue
	echo "== bench/$b.sh"
	# What the previous benchmark left to write back is not this one's.
	sync
	args=("$build")
	# The record's share of issuance time needs this run's issuance rate.
	if [ "$b" = audit ] && [ -n "${issue_rate:-}" ]; then
		args+=(1000000 "$issue_rate")
	fi
	if ! bash "$here/$b.sh" "${args[@]}" | tee "$out"; then
		echo "bench/$b.sh failed" >&2
		rc=1
	fi
	if [ "$b" = issue ]; then
		issue_rate=$(awk '/^ringfence rf_ca_issue/ { print $NF }' "$out")
	fi
	echo
done
# The incident benchmark again with the token folder on disk too, at the
# scenario's 3,600 tenants: SoftHSM's file writes on ext4 dominate there.
echo "== bench/incident.sh (token folder on disk, 3,600 tenants)"
sync
bash "$here/incident.sh" "$build" 3600 disk || rc=1
exit $rc
