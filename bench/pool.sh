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
# keyd is stopped by its pid file (never by name), then its state goes.
cleanup() { "$build/ringfence" keyd stop >/dev/null 2>&1 || true; rm -rf "$RINGFENCE_HOME" "$RINGFENCE_HOME-custody" "$tokdir"; }
trap cleanup EXIT
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$tokdir" >"$RINGFENCE_HOME/softhsm2.conf"
"$build/ringfence" init >/dev/null 2>&1

# keyd's CPU seconds so far (utime + stime of /proc/PID/stat).
keyd_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' \
		"/proc/$(cat "$RINGFENCE_HOME/keyd.pid")/stat"
}
# One timed run: "keys/s-wall keys/s-cpu". On a shared machine the wall
# rate of an idle-priority loop is whatever the others leave it; the CPU
# rate (keys per CPU second of every process doing the work: the bare
# loop; the fill command and keyd) is the overhead itself.
bare_run() { # alg n
	local tf out
	tf=$(mktemp)
	out=$(/usr/bin/time -f '%U %S' -o "$tf" chrt --idle 0 nice -n 19 "$build/bench_keygen_bare" "$1" "$2")
	awk -v n="$2" -v w="$out" '{ print w, n / ($1 + $2) }' "$tf"
	rm -f "$tf"
}
pool_run() { # alg n
	local tf k0 k1 out
	tf=$(mktemp)
	# keyd must run to be measured: a command that needs keys starts it.
	[ -f "$RINGFENCE_HOME/keyd.pid" ] && kill -0 "$(cat "$RINGFENCE_HOME/keyd.pid")" 2>/dev/null ||
		{ "$build/ringfence" keys list >/dev/null 2>&1 || true; }
	k0=$(keyd_cpu)
	out=$(/usr/bin/time -f '%U %S' -o "$tf" "$build/ringfence" --json keys pool fill --alg "$1" --count "$2" |
		python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print("%.1f" % (o["made"] / o["seconds"]))')
	k1=$(keyd_cpu)
	awk -v n="$2" -v w="$out" -v k="$(echo "$k1 - $k0" | bc)" '{ print w, n / ($1 + $2 + k) }' "$tf"
	rm -f "$tf"
}
best() { # "w c" "w c": the better of two runs, each measure
	echo "$1 $2" | awk '{ print ($1 > $3 ? $1 : $3), ($2 > $4 ? $2 : $4) }'
}

printf '\npool refill against a bare PKCS#11 key-generation loop, SoftHSM (token folder on tmpfs)\n'
printf 'each run twice, alternating, the better kept; load %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %6s %12s %12s %7s %12s %12s %7s\n' alg keys "bare wall/s" "pool wall/s" ratio "bare /cpu-s" "pool /cpu-s" ratio
row() { # alg n
	local b1 p1 b2 p2 b p
	b1=$(bare_run "$1" "$2")
	p1=$(pool_run "$1" "$2")
	b2=$(bare_run "$1" "$2")
	p2=$(pool_run "$1" "$2")
	b=$(best "$b1" "$b2")
	p=$(best "$p1" "$p2")
	echo "$1 $2 $b $p" | awk '{ printf "%-10s %6d %12.1f %12.1f %6.2fx %12.1f %12.1f %6.2fx\n", $1, $2, $3, $5, $5 / $3, $4, $6, $6 / $4 }'
}
row ec-p256 "$nec"
row ec-p384 "$nec"
row rsa-2048 "$nrsa"
echo "target: pool >= 0.8x bare (the CPU ratio is the refiller's own overhead)"
