#!/usr/bin/env bash
# Issuance: ringfence (rf_ca_issue from CSRs, token-held CA key) against
# `openssl ca -batch` (software CA key in a throwaway folder), in the same
# run, and ringfence against the token's own signing rate (the ceiling:
# raw signatures/s over signatures per certificate) and against the floor
# of a certificate that may be released: the same signatures, each also
# verified with the public key, and the CSR's proof of possession checked.
#
# usage: bench/issue.sh BUILD_DIR
# RF_BENCH_ISSUE_N (default 2000) and RF_BENCH_OPENSSL_N (default 1000).
set -euo pipefail
build=$(cd "${1:?usage: issue.sh BUILD_DIR}" && pwd)
n_rf=${RF_BENCH_ISSUE_N:-2000}
n_ossl=${RF_BENCH_OPENSSL_N:-1000}
bin="$build/bench_issue"
[ -x "$bin" ] || { echo "issue.sh: $bin not built (cmake --build $build)" >&2; exit 1; }
work=$(mktemp -d /tmp/rf-bench-issue.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

echo "issue: ringfence, $n_rf CSRs in batches of 500 ..." >&2
"$bin" "$n_rf" 500 >"$work/rf.txt"
val() { awk -v k="$1" '$1 == k { print $2 }' "${2:-$work/rf.txt}"; }
# The same through the custody process, as every command issues.
echo "issue: ringfence through keyd, $n_rf CSRs in batches of 500 ..." >&2
RF_BENCH_KEYD="$build/ringfence" "$bin" "$n_rf" 500 norate >"$work/keyd.txt" 2>/dev/null

# A throwaway software CA for the openssl peer (deleted with $work).
echo "issue: openssl ca, making $n_ossl CSRs ..." >&2
cd "$work"
mkdir -p newcerts csr
: >index.txt
echo 1000 >serial
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
cat >ca.cnf <<CNF
[ ca ]
default_ca = bench
[ bench ]
dir = $work
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
serial = \$dir/serial
default_md = sha256
default_days = 30
policy = policy_anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ policy_anything ]
commonName = supplied
organizationName = optional
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
for i in $(seq "$n_ossl"); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout /dev/null -subj "/CN=t$i" -out "csr/$i.pem" 2>/dev/null
done
echo "issue: openssl ca -batch -infiles ($n_ossl) ..." >&2
t0=$(now)
openssl ca -config ca.cnf -batch -notext -out out.pem -infiles csr/*.pem \
	2>ca.err || { cat ca.err >&2; exit 1; }
t1=$(now)
issued=$(find newcerts -name '*.pem' | wc -l)
[ "$issued" -eq "$n_ossl" ] || { echo "issue.sh: openssl ca issued $issued of $n_ossl" >&2; exit 1; }
ossl=$(awk -v n="$n_ossl" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')

rf=$(val issue_per_sec)
rfk=$(val issue_per_sec "$work/keyd.txt")
r1=$(val token_rate_1)
r2=$(val token_rate_2)
spc=$(val sigs_per_cert)
v2=$(val verify_rate_2)
p2=$(val prove_rate_2)
awk -v rf="$rf" -v rfk="$rfk" -v os="$ossl" -v r1="$r1" -v r2="$r2" -v spc="$spc" \
	-v v2="$v2" -v p2="$p2" -v nrf="$n_rf" -v nos="$n_ossl" 'BEGIN {
	raw = (r1 > r2) ? r1 : r2
	ceil = raw / spc
	printf "\nIssuance (CSR -> signed, stored certificate), same run, same host\n"
	printf "%-44s %12s\n", "", "certs/s"
	printf "%-44s %12.1f\n", "ringfence rf_ca_issue (" nrf " CSRs, batch 500)", rf
	printf "%-44s %12.1f\n", "openssl ca -batch -infiles (" nos " CSRs)", os
	printf "%-44s %11.1fx   (target >= 10x)\n", "ratio ringfence / openssl ca", rf / os
	printf "%-44s %12.1f\n", "token raw signatures/s, 1 thread", r1
	printf "%-44s %12.1f\n", "token raw signatures/s, 2 threads", r2
	printf "%-44s %12d\n", "signatures per certificate (used)", spc
	printf "%-44s %12.1f\n", "token ceiling (best raw / sigs per cert)", ceil
	printf "%-44s %11.0f%%   (target >= 60%%)\n", "ringfence share of the ceiling", 100 * rf / ceil
	printf "%-44s %12.1f\n", "ringfence through keyd (as commands issue)", rfk
	printf "%-44s %11.0f%%\n", "  its share of the ceiling", 100 * rfk / ceil
	# The floor of a certificate that may be released: its token
	# signatures, each verified with the public key before release, and
	# the CSR proof of possession; every rate on two threads, this run.
	fl = 1 / (spc / r2 + spc / v2 + 1 / p2)
	printf "\nFloor of a released certificate (2 threads each, this run)\n"
	printf "%-44s %12.1f\n", "signature verifications/s (EC P-256)", v2
	printf "%-44s %12.1f\n", "CSR proofs of possession checked/s", p2
	printf "%-44s %12.1f\n", "floor: sign + verify x sigs, + 1 proof", fl
	printf "%-44s %11.0f%%\n", "  the floor as a share of the ceiling", 100 * fl / ceil
	printf "%-44s %11.0f%%   (within 2x: >= 50%%)\n", "ringfence share of the floor", 100 * rf / fl
	printf "%-44s %11.0f%%\n", "  through keyd", 100 * rfk / fl
}'
