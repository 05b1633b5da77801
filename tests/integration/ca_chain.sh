#!/usr/bin/env bash
# ca_chain.sh: certificates issued by the built binary, checked by tools
# nobody here wrote: `openssl verify`, `openssl x509 -text` and GnuTLS
# `certtool --verify-chain`. Then every kind of bad CSR must exit 1 with one
# line on stderr and store nothing.
set -euo pipefail

RINGFENCE=${RINGFENCE:?path of the ringfence binary}
SRC=${RF_SOURCE_DIR:?source folder}
CORPUS=$SRC/fuzz/corpus/csr

work=$(mktemp -d "${TMPDIR:-/tmp}/rf-ca-chain-XXXXXX")
# Stop the keyd the commands started (by its pid file), then remove.
trap '"$RINGFENCE" keyd stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
export RINGFENCE_HOME=$work/home
unset RINGFENCE_PIN RINGFENCE_MODULE RINGFENCE_TOKEN RINGFENCE_NOW || true
cd "$work"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

rf() {
	"$RINGFENCE" "$@"
}

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "ringfence init"; }
rf cert ca root >root.pem || fail "cert ca root"
rf cert ca issuing >issuing.pem || fail "cert ca issuing"
rf cert ca ocsp >ocsp.pem || fail "cert ca ocsp"
cat issuing.pem root.pem >cas.pem

# The hierarchy itself.
openssl verify -CAfile root.pem issuing.pem >/dev/null ||
	fail "issuing CA does not verify against the root"
openssl verify -CAfile root.pem -untrusted issuing.pem ocsp.pem >/dev/null ||
	fail "OCSP signer does not verify"
openssl x509 -in root.pem -noout -text >root.txt
grep -q "CA:TRUE" root.txt || fail "root is not CA:TRUE"
grep -q "Certificate Sign, CRL Sign" root.txt || fail "root key usage"
openssl x509 -in issuing.pem -noout -text >issuing.txt
grep -q "CA:TRUE, pathlen:0" issuing.txt || fail "issuing pathlen"
grep -q "crl/root.crl" issuing.txt || fail "issuing CRL DP"
openssl x509 -in ocsp.pem -noout -text >ocsp.txt
grep -q "OCSP Signing" ocsp.txt || fail "OCSP signer EKU"
grep -q "OCSP No Check" ocsp.txt || fail "OCSP signer nocheck"

rf tenant add acme >/dev/null || fail "tenant add"
rf tenant add globex >/dev/null || fail "tenant add globex"
out=$(rf tenant add acme 2>&1) && fail "duplicate tenant accepted"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "duplicate: not one line"
grep -q "already exists" <<<"$out" || fail "duplicate: message: $out"
set +e
rf tenant add 'bad name' 2>/dev/null
[ $? -eq 1 ] || fail "bad tenant name not refused with 1"
rf issue --tenant acme 2>/dev/null
[ $? -eq 2 ] || fail "missing --profile is not a usage error"
set -e

# Issue for each profile and each algorithm, key generated in the token.
n=0
for alg in ec-p256 ec-p384 rsa-2048 rsa-3072; do
	for profile in client server assertion; do
		dns=()
		[ "$profile" = server ] && dns=(--dns "api.acme.example")
		rf issue --tenant acme --profile "$profile" --keygen "$alg" \
			"${dns[@]}" --out "chain-$alg-$profile.pem" \
			>"meta-$alg-$profile.txt" ||
			fail "issue $alg $profile"
		n=$((n + 1))
		chain=chain-$alg-$profile.pem
		openssl x509 -in "$chain" -out "leaf.pem"
		openssl verify -CAfile root.pem -untrusted issuing.pem \
			leaf.pem >/dev/null || fail "openssl verify $alg $profile"
		certtool --verify-chain --infile "$chain" >certtool.txt 2>&1 ||
			{ cat certtool.txt >&2; fail "certtool $alg $profile"; }
		openssl x509 -in leaf.pem -noout -text >leaf.txt
		for want in "X509v3 Key Usage: critical" "Digital Signature" \
			"CA:FALSE" "X509v3 Subject Key Identifier" \
			"X509v3 Authority Key Identifier" \
			"X509v3 CRL Distribution Points" "crl/issuing.crl" \
			"OCSP - URI" "CA Issuers - URI" \
			"Subject: O = ringfence, OU = $profile, CN = acme"; do
			grep -qF "$want" leaf.txt ||
				fail "$alg $profile: no \"$want\""
		done
		case $profile in
		client)
			grep -q "TLS Web Client Authentication" leaf.txt ||
				fail "client EKU"
			openssl verify -purpose sslclient -CAfile root.pem \
				-untrusted issuing.pem leaf.pem >/dev/null ||
				fail "sslclient purpose"
			;;
		server)
			grep -q "TLS Web Server Authentication" leaf.txt ||
				fail "server EKU"
			grep -q "DNS:api.acme.example" leaf.txt || fail "SAN"
			openssl verify -purpose sslserver -CAfile root.pem \
				-untrusted issuing.pem leaf.pem >/dev/null ||
				fail "sslserver purpose"
			;;
		assertion)
			grep -q "Extended Key Usage" leaf.txt &&
				fail "assertion has an EKU"
			;;
		esac
		# The metadata: serial matches the certificate.
		serial=$(sed -n 's/^serial: //p' "meta-$alg-$profile.txt")
		want=$(openssl x509 -in leaf.pem -noout -serial |
			sed 's/^serial=//' | tr 'A-F' 'a-f' | sed 's/^0*//')
		[ "$serial" = "$want" ] || fail "serial $serial != $want"
		grep -q '^x5t#S256: ' "meta-$alg-$profile.txt" || fail "x5t#S256"
		rf cert show "$serial" | grep -q "^tenant: acme" ||
			fail "cert show $serial"
	done
done

# A CSR from the connector's own key (PEM, then DER), PEM chain on stdout.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout conn.key -subj "/CN=ignored" -out conn.csr 2>/dev/null
rf issue --tenant globex --profile client --csr conn.csr >csr-chain.pem \
	2>csr-meta.txt || fail "issue from a CSR"
n=$((n + 1))
openssl verify -CAfile root.pem -untrusted issuing.pem csr-chain.pem \
	>/dev/null || fail "verify CSR certificate"
openssl x509 -in csr-chain.pem -noout -subject | grep -q "CN = globex" ||
	fail "CSR subject not replaced"
[ "$(openssl x509 -in csr-chain.pem -noout -pubkey | openssl md5)" = \
	"$(openssl pkey -in conn.key -pubout | openssl md5)" ] ||
	fail "certificate key is not the CSR key"
grep -q '^serial: ' csr-meta.txt || fail "metadata not on stderr"
rf issue --tenant globex --profile assertion --json \
	--csr "$CORPUS/valid-rsa-2048.der" >csr.json || fail "issue DER CSR"
n=$((n + 1))
python3 -c 'import json,sys; j=json.load(open(sys.argv[1]));
assert j["serial"] and j["x5t"] and j["x5t#S256"] and j["key"]
assert j["pem"].count("BEGIN CERTIFICATE") == 3' csr.json ||
	fail "issue --json"

count() {
	rf cert list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
[ "$(count)" -eq "$n" ] || fail "cert list count $(count) != $n"

# Refused requests: exit 1, one line on stderr, nothing stored.
big=$work/big.der
head -c 70000 /dev/zero >"$big"
for csr in "$CORPUS"/refused-* "$big"; do
	set +e
	rf issue --tenant acme --profile client --csr "$csr" >out.txt 2>err.txt
	st=$?
	set -e
	[ $st -eq 1 ] || fail "$(basename "$csr"): exit $st, want 1"
	[ "$(wc -l <err.txt)" -eq 1 ] || fail "$(basename "$csr"): stderr not one line"
	[ ! -s out.txt ] || fail "$(basename "$csr"): printed output"
done
# The same key for another tenant, and an unknown tenant.
set +e
rf issue --tenant acme --profile client --csr conn.csr >/dev/null 2>err.txt
[ $? -eq 1 ] || fail "key reuse across tenants accepted"
grep -q "already serves tenant globex" err.txt || fail "key reuse message"
rf issue --tenant initech --profile client --keygen ec-p256 >/dev/null 2>err.txt
[ $? -eq 1 ] || fail "unknown tenant accepted"
grep -q "tenant add initech" err.txt || fail "unknown tenant message"
set -e
[ "$(count)" -eq "$n" ] || fail "a refused request stored a certificate"

rf tenant list --json | python3 -c 'import json,sys; names=[t["name"] for t in json.load(sys.stdin)]; assert names == ["acme", "globex"], names' ||
	fail "tenant list"
rf tenant show acme --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert len(j["certificates"]) == 12' ||
	fail "tenant show"
echo "ca_chain: $n certificates verified"
