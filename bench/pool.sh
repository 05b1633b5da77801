#!/usr/bin/env bash
# Pool refill benchmark (issue 14): the rate at which `ringfence keys pool
# fill` adds keys to the standby pool (rf_keys_generate_many with the
# custody attributes, the public key read back, the id set, the keygen
# leaves appended, the store rows committed; run at SCHED_IDLE / nice 19)
# against a bare PKCS#11 loop of C_GenerateKeyPair with the same
# attributes (bench_keygen_bare) in the same state. Target: >= 0.8x.
#
# The refiller runs at the lowest priority (on a machine busy with other
# work it gets only idle cycles and its rate falls, by design), so the bare
# loop runs at the same priority (chrt --idle, nice 19): the ratio is the
# refiller's own overhead.
#
# usage: bench/pool.sh BUILD_DIR [N_EC] [N_RSA]
set -euo pipefail
build=$(cd "${1:?usage: pool.sh BUILD_DIR [N_EC] [N_RSA]}" && pwd)
nec=${2:-2000}
nrsa=${3:-40}
export RINGFENCE_HOME=$(mktemp -d /var/tmp/rf-bench-pool.XXXXXX)
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
tokdir=$(mktemp -d /dev/shm/rf-bench-tokens.XXXXXX)
cleanup() { rm -rf "$RINGFENCE_HOME" "$tokdir"; }
trap cleanup EXIT
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$tokdir" >"$RINGFENCE_HOME/softhsm2.conf"
"$build/ringfence" init >/dev/null 2>&1

printf '\npool refill against a bare PKCS#11 key-generation loop, SoftHSM (token folder on tmpfs)\n'
printf '%-10s %8s %14s %14s %8s\n' alg keys "bare, keys/s" "pool, keys/s" ratio
row() { # alg n
	local bare pool
	bare=$(chrt --idle 0 nice -n 19 "$build/bench_keygen_bare" "$1" "$2")
	pool=$("$build/ringfence" --json keys pool fill --alg "$1" --count "$2" |
		python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print("%.1f" % (o["made"] / o["seconds"]))')
	awk -v a="$1" -v n="$2" -v b="$bare" -v p="$pool" \
		'BEGIN { printf "%-10s %8d %14.1f %14.1f %7.2fx\n", a, n, b, p, p / b }'
}
row ec-p256 "$nec"
row ec-p384 "$nec"
row rsa-2048 "$nrsa"
echo "target: pool >= 0.8x bare"
