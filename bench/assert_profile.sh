#!/usr/bin/env bash
# bench/assert_profile.sh BUILD_DIR OUT_DIR [SECONDS] [CLIENTS] [DETECTORS]:
# where serve's and keyd's CPU goes per assertion (issue 12). Sets up a
# connection and connector as bench/assert.sh does, drives CLIENTS
# keep-alive mTLS clients for SECONDS and records `perf record -g` on
# serve and on keyd meanwhile (OUT_DIR/serve.data, OUT_DIR/keyd.data),
# with each process's CPU ticks and the assertions made (OUT_DIR/run.txt).
# Read with: perf report -i OUT_DIR/serve.data --no-children --sort sym
# RF_PERF=0: no perf, only the CPU ms per assertion (perf inflates them);
# RF_PERF=stat: perf stat counts per assertion (context switches, store
# syscalls), steadier than CPU time on a shared machine; RF_PERF_OPTS: perf
# record options instead of -g (e.g. "--call-graph dwarf,16384 -F 499").
# Listens on 127.0.0.1 only; stops what it started by PID.
set -euo pipefail
build=$(cd "${1:?usage: bench/assert_profile.sh BUILD_DIR OUT_DIR [SECONDS] [CLIENTS] [DETECTORS]}" && pwd)
mkdir -p "${2:?OUT_DIR}"
out=$(cd "$2" && pwd)
secs=${3:-10}
clients=${4:-16}
det=${5:-1}
rf="$build/ringfence"
ba="$build/bench_assert"
state_name=rf-prof-assert
. "$(dirname "$0")/assert_state.sh"
port=$(freeport)
tport=$(freeport)
RINGFENCE_DETECTORS=$det "$rf" serve --port "$port" --tls-port "$tport" \
	--duration 600 --threads 2 2>serve.log &
server=$!
for _ in $(seq 300); do
	curl -sf -m 2 -o root.pem "http://127.0.0.1:$port/ca/root.pem" && break
	sleep 0.1
done
"$ba" load "127.0.0.1:$tport" c.pem c.key root.pem acme/m365 2 "$clients" >/dev/null
ticks() {
	local f
	f=$(cat "/proc/$1/stat")
	f=${f##*) }
	set -- $f
	echo $((${12} + ${13}))
}
kp=$(cat "$RINGFENCE_HOME/keyd.pid")
threads() { # PID -> "tid:name:ticks" of each live thread; main thread "main"
	local t f n
	for t in /proc/$1/task/*; do
		f=$(cat "$t/stat" 2>/dev/null) || continue
		n=${f#*(}
		n=${n%%)*}
		[ "${t##*/}" != "$1" ] || n=main
		f=${f##*) }
		set -- $f "$1"
		echo "${t##*/}:$n:$((${12} + ${13}))"
	done
}
kt0=$(threads "$kp")
st0=$(threads "$server")
k0=$(ticks "$kp")
s0=$(ticks "$server")
ev=task-clock,context-switches,syscalls:sys_enter_fcntl,syscalls:sys_enter_pread64,syscalls:sys_enter_pwrite64,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait
if [ "${RF_PERF:-1}" = stat ]; then
	# Counts per assertion: steadier than CPU time on a loaded machine.
	perf stat -x, -e "$ev" -o "$out/serve.stat" -p "$server" -- sleep "$secs" &
	p1=$!
	perf stat -x, -e "$ev" -o "$out/keyd.stat" -p "$kp" -- sleep "$secs" &
	p2=$!
elif [ "${RF_PERF:-1}" != 0 ]; then
	perf record ${RF_PERF_OPTS:--g} -o "$out/serve.data" -p "$server" -- sleep "$secs" 2>/dev/null &
	p1=$!
	perf record ${RF_PERF_OPTS:--g} -o "$out/keyd.data" -p "$kp" -- sleep "$secs" 2>/dev/null &
	p2=$!
fi
res=$("$ba" load "127.0.0.1:$tport" c.pem c.key root.pem acme/m365 "$secs" "$clients")
[ "${RF_PERF:-1}" = 0 ] || wait "$p1" "$p2" || true
k1=$(ticks "$kp")
s1=$(ticks "$server")
kt1=$(threads "$kp")
st1=$(threads "$server")
read -r rate p50 p99 err cc <<<"$res"
python3 - "$rate" "$secs" "$((k1 - k0))" "$((s1 - s0))" "$(getconf CLK_TCK)" "$cc" "$(cut -d' ' -f1-3 /proc/loadavg)" "$p99" "$err" "$kt0" "$kt1" "$st0" "$st1" <<'PY' | tee "$out/run.txt"
import sys
rate, secs, kt, st, hz, cc = map(float, sys.argv[1:7])
made = rate * secs
print("load %s; %.0f assertions/s, p99 %s ms, errors %s" % (sys.argv[7], rate, sys.argv[8], sys.argv[9]))
print("CPU ms per assertion: keyd %.3f, serve %.3f, client %.3f" % (1000 * kt / hz / made, 1000 * st / hz / made, 1000 * cc / made))
def groups(a, b, total):
    t0 = {l.split(":")[0]: l.split(":") for l in a.split()}
    g = {}
    for l in b.split():
        tid, name, t = l.split(":")
        d = int(t) - (int(t0[tid][2]) if tid in t0 else 0)
        g[name] = g.get(name, 0) + d
    g["(threads gone)"] = total - sum(g.values())
    return ", ".join("%s %.3f" % (k, 1000 * v / hz / made) for k, v in sorted(g.items(), key=lambda x: -x[1]))
if made > 0:
    print("  keyd by thread:  " + groups(sys.argv[10], sys.argv[11], kt))
    print("  serve by thread: " + groups(sys.argv[12], sys.argv[13], st))
PY
if [ "${RF_PERF:-1}" = stat ]; then
	for p in serve keyd; do
		awk -F, -v n="$(python3 -c "print($rate * $secs)")" -v p="$p" \
			'$1 ~ /^[0-9.]+$/ { e = $3; sub("syscalls:sys_enter_", "", e); printf "%s%s %.2f", (c++ ? ", " : "  " p " per assertion: "), e, $1 / n } END { print "" }' "$out/$p.stat"
	done | tee -a "$out/run.txt"
fi
