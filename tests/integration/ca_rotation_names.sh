#!/usr/bin/env bash
# After an issuer rotation (incident contain of issuer:issuing), the names
# people use for the CA give the one in use: `cert ca issuing` and serve's
# /ca/issuing.pem are the new issuing CA, `cert ca ocsp` its OCSP signer,
# and a certificate issued since chains through them with openssl verify.
# The replaced CA is still obtainable by name (`cert ca issuing
# --replaced`, and serve's /ca/issuing.der, the caIssuers URL of the
# certificates it issued), and an unknown name is refused with the names
# that exist. The server listens on 127.0.0.1 only and is stopped by its
# PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" ca-rotation
. "$here/lib/serve.sh"
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
h=$RINGFENCE_HOME
cd "$h"

rf init >/dev/null 2>&1 || fail "init"
rf tenant add acme >/dev/null
rf issue --tenant acme --connection app --profile client --keygen ec-p256 \
	--out old.pem >/dev/null 2>&1
rf cert ca root >root.pem
rf cert ca issuing >before.pem
inc=$(rf incident open --scope issuer:issuing --reason x 2>/dev/null)
rf incident contain "$inc" >/dev/null 2>&1 || fail "contain $inc"
rf issue --tenant acme --connection web --profile client --keygen ec-p256 \
	--out new.pem >/dev/null 2>&1
openssl x509 -in new.pem -noout -issuer | grep -q "issuing-inc$inc" ||
	fail "new certificate's issuer: $(openssl x509 -in new.pem -noout -issuer)"

# The CLI: issuing and ocsp are the CA in use and its signer.
rf cert ca issuing >issuing.pem 2>note || fail "cert ca issuing: $(cat note)"
openssl verify -CAfile root.pem -untrusted issuing.pem new.pem >v.out 2>&1 ||
	fail "cert ca issuing does not chain the new certificate: $(cat v.out)"
grep -q "issuing-inc$inc" note || fail "no note naming the successor: $(cat note)"
[ "$(wc -l <note)" = 1 ] || fail "more than one line on stderr: $(cat note)"
rf cert ca ocsp >ocsp.pem 2>/dev/null
openssl verify -CAfile root.pem -untrusted issuing.pem ocsp.pem >v.out 2>&1 ||
	fail "cert ca ocsp is not certified by the issuing CA in use: $(cat v.out)"
rf cert ca "issuing-inc$inc" >named.pem
cmp -s issuing.pem named.pem || fail "cert ca issuing is not issuing-inc$inc"

# The replaced CA, by its name: the one that issued the old certificate.
rf cert ca issuing --replaced >replaced.pem 2>note || fail "--replaced: $(cat note)"
cmp -s replaced.pem before.pem || fail "cert ca issuing --replaced is not the old CA"
[ ! -s note ] || fail "--replaced wrote to stderr: $(cat note)"
openssl x509 -in replaced.pem -noout -subject | grep -q 'CN = ringfence issuing CA' ||
	fail "replaced: $(openssl x509 -in replaced.pem -noout -subject)"
openssl verify -CAfile root.pem -untrusted replaced.pem old.pem >/dev/null 2>&1 ||
	fail "the replaced CA does not chain the old certificate"
rf cert ca ocsp --replaced >oldocsp.pem 2>/dev/null
openssl verify -CAfile root.pem -untrusted replaced.pem oldocsp.pem >/dev/null 2>&1 ||
	fail "cert ca ocsp --replaced is not the old signer"

# An unknown name: refused, naming those there are.
if rf cert ca nope >/dev/null 2>err; then fail "cert ca nope succeeded"; fi
grep -q "issuing-inc$inc" err && grep -q "root" err ||
	fail "unknown name: $(cat err)"
rf cert ca --help | grep -q -- '--replaced' || fail "usage: $(rf cert ca --help)"

# serve: /ca/issuing.pem is the CA in use; /ca/issuing.der, the caIssuers
# URL of the old certificates, stays the CA that issued them.
start_serve --duration 60
url="http://127.0.0.1:$port"
curl -sf -o served.pem "$url/ca/issuing.pem" || fail "GET /ca/issuing.pem"
openssl verify -CAfile root.pem -untrusted served.pem new.pem >v.out 2>&1 ||
	fail "/ca/issuing.pem does not chain the new certificate: $(cat v.out)"
curl -sf -o socsp.pem "$url/ca/ocsp.pem" || fail "GET /ca/ocsp.pem"
cmp -s socsp.pem ocsp.pem || fail "/ca/ocsp.pem is not cert ca ocsp"
openssl x509 -in old.pem -noout -text | grep -q 'CA Issuers - URI:.*/ca/issuing.der' ||
	fail "old certificate's caIssuers"
curl -sf -o aia.der "$url/ca/issuing.der" || fail "GET /ca/issuing.der"
cmp -s <(openssl x509 -in before.pem -outform DER) aia.der ||
	fail "/ca/issuing.der is not the CA that issued the certificates naming it"
curl -sf -o snamed.pem "$url/ca/issuing-inc$inc.pem" || fail "GET /ca/issuing-inc$inc.pem"
cmp -s snamed.pem named.pem || fail "/ca/issuing-inc$inc.pem"
# OCSP for the new CA's certificates, signed on demand as for the first
# CA's: a SHA-256 CertID and a request of two certificates (tryLater
# before: the on-demand signer was the first CA's only). The old
# certificate stays revoked, SHA-256 too.
new2=$(rf --json cert list --tenant acme | jq -r '.[] | select(.status == "valid") | .serial' | head -2)
[ "$(echo "$new2" | wc -l)" = 2 ] || fail "acme's valid certificates: $new2"
args=()
for s in $new2; do args+=(-serial "0x$s"); done
for md in -sha1 -sha256; do
	openssl ocsp $md -issuer served.pem "${args[@]}" -url "http://127.0.0.1:$port/ocsp" \
		-CAfile root.pem -verify_other served.pem >o.out 2>&1 ||
		fail "OCSP ($md) for the new CA's certificates: $(cat o.out)"
	[ "$(grep -c ': good$' o.out)" = 2 ] || fail "OCSP ($md) for the new CA's certificates: $(cat o.out)"
	grep -q "Response verify OK" o.out || fail "OCSP ($md) response does not verify: $(cat o.out)"
done
olds=$(openssl x509 -in old.pem -noout -serial | cut -d= -f2)
openssl ocsp -sha256 -issuer before.pem -serial "0x$olds" -url "http://127.0.0.1:$port/ocsp" \
	-noverify >o.out 2>&1
grep -qi ": revoked$" o.out || fail "OCSP (SHA-256) for the old certificate: $(cat o.out)"
echo "ca_rotation_names: ok"
