#!/usr/bin/env bash
# CRL generation: ringfence (rf_crl_generate) against `openssl ca -gencrl`
# on the same revoked entries. Called by bench/run.sh with the build folder.
# RF_BENCH_CRL_SIZES overrides the sizes (default "100000 1000000").
set -euo pipefail
build=${1:-build-bench}
bin="$build/bench_crl"
if [ ! -x "$bin" ]; then
	echo "crl.sh: $bin not built (cmake --build $build)" >&2
	exit 1
fi
echo "== CRL generation (revoked entries; best of 3, openssl ca once above 200k)"
# shellcheck disable=SC2086
"$bin" ${RF_BENCH_CRL_SIZES:-100000 1000000}
