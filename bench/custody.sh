#!/usr/bin/env bash
# Issuance through the custody process against in-process issuance, same
# run: bench_issue of this build with RF_BENCH_KEYD (every signature asks
# keyd over its socket, as every command does) against bench_issue of the
# commit before the process split (RF_BENCH_BASE, default 1324ccb), built
# here from this repository's history. Pairs alternate; the median of the
# pairs' ratios is printed. Target (issue 11): >= 0.9x, two token
# signatures per certificate. A third row: the same certificates issued by
# two processes at once through one keyd (RF_BENCH_CALLERS=2), whose
# requests keyd groups into one audit append. A fourth: one process
# through keyd on contain's reissue path (rf_ca_issue_pipelined,
# RF_BENCH_PIPELINE), which signs a batch while the one before commits.
#
# usage: bench/custody.sh BUILD_DIR
# RF_BENCH_ISSUE_N (default 2000), RF_BENCH_PAIRS (default 3).
set -euo pipefail
build=$(cd "${1:?usage: custody.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
base=${RF_BENCH_BASE:-1324ccb}
n=${RF_BENCH_ISSUE_N:-2000}
pairs=${RF_BENCH_PAIRS:-3}
for b in bench_issue ringfence; do
	[ -x "$build/$b" ] || { echo "custody.sh: $build/$b not built" >&2; exit 1; }
done
work=$(mktemp -d /tmp/rf-bench-custody.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "custody: building bench_issue at $base (in-process keys) ..." >&2
mkdir "$work/src"
git -C "$src" archive "$base" | tar -x -C "$work/src"
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" -j "$(nproc)" --target bench_issue >/dev/null

val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
ratios=()
two=()
pipe=()
for i in $(seq "$pairs"); do
	echo "custody: pair $i of $pairs ($n certificates each) ..." >&2
	"$work/build/bench_issue" "$n" 500 norate >"$work/base.$i"
	sync
	RF_BENCH_KEYD="$build/ringfence" "$build/bench_issue" "$n" 500 norate \
		>"$work/keyd.$i"
	sync
	RF_BENCH_CALLERS=2 RF_BENCH_KEYD="$build/ringfence" "$build/bench_issue" \
		"$n" 250 norate >"$work/two.$i"
	sync
	RF_BENCH_PIPELINE=1 RF_BENCH_KEYD="$build/ringfence" "$build/bench_issue" \
		"$n" 500 norate >"$work/pipe.$i"
	sync
	b=$(val issue_per_sec "$work/base.$i")
	k=$(val issue_per_sec "$work/keyd.$i")
	t=$(val issue_per_sec "$work/two.$i")
	pp=$(val issue_per_sec "$work/pipe.$i")
	spc=$(val sigs_per_cert "$work/keyd.$i")
	ratios+=("$(awk -v k="$k" -v b="$b" 'BEGIN { printf "%.3f", k / b }')")
	two+=("$(awk -v k="$t" -v b="$b" 'BEGIN { printf "%.3f", k / b }')")
	pipe+=("$(awk -v k="$pp" -v b="$b" 'BEGIN { printf "%.3f", k / b }')")
	printf '%-44s %10.1f certs/s\n' "pair $i: in-process ($base)" "$b"
	printf '%-44s %10.1f certs/s  (%.2fx, %s signatures a certificate)\n' \
		"pair $i: through keyd" "$k" "${ratios[-1]}" "$spc"
	printf '%-44s %10.1f certs/s  (%.2fx)\n' \
		"pair $i: two callers through one keyd" "$t" "${two[-1]}"
	printf '%-44s %10.1f certs/s  (%.2fx)\n' \
		"pair $i: one caller, pipelined (contain's)" "$pp" "${pipe[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '\nIssuance through the custody process: median %.2fx in-process (target >= 0.9x)\n' "$(median "${ratios[@]}")"
printf 'Two callers through one keyd together: median %.2fx one in-process caller\n' "$(median "${two[@]}")"
printf 'One caller through keyd, batches pipelined: median %.2fx in-process\n' "$(median "${pipe[@]}")"
