#!/usr/bin/env bash
# `ringfence serve` seen by independent clients: curl, openssl x509/crl/ocsp
# and GnuTLS ocsptool. Health, CA certificates, OCSP by POST and GET (raw
# and percent-encoded base64 holding '/', '+', '='), malformed and oversize
# requests, wrong methods, a client that connects and says nothing, and a
# revocation visible over OCSP in under a second and in the served CRL.
# The server listens on 127.0.0.1 only, is bounded by --duration and is
# stopped by its PID.
set -euo pipefail
: "${RINGFENCE:?RINGFENCE must name the built binary}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rf-serve-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	"$RINGFENCE" keyd stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
export RINGFENCE_HOME="$tmp/home"
unset RINGFENCE_PIN RINGFENCE_NOW RINGFENCE_MODULE RINGFENCE_TOKEN \
	RINGFENCE_LISTEN RINGFENCE_PORT || true
cd "$tmp"

fail() {
	echo "serve_basic: FAIL: $*" >&2
	[ -f "$tmp/serve.log" ] && sed 's/^/  serve: /' "$tmp/serve.log" >&2
	exit 1
}
now() { date +%s.%N; }

"$RINGFENCE" init >/dev/null
"$RINGFENCE" tenant add acme >/dev/null
"$RINGFENCE" issue --tenant acme --profile client --keygen ec-p256 \
	--out chain.pem >meta
serial=$(sed -n 's/^serial: //p' meta)
[ -n "$serial" ] || fail "no serial in the issue output"
openssl x509 -in chain.pem -out cert.pem

# Usage errors and the loopback rule, before anything listens.
set +e
"$RINGFENCE" serve --port nope 2>/dev/null
rc1=$?
RINGFENCE_LISTEN=0.0.0.0 "$RINGFENCE" serve --port 0 --duration 1 2>err
rc2=$?
set -e
[ "$rc1" -eq 2 ] || fail "bad --port: exit $rc1"
[ "$rc2" -eq 1 ] || fail "non-loopback listen from settings: exit $rc2"
grep -q 'not a loopback address' err || fail "loopback message: $(cat err)"

# --duration stops it cleanly by itself (port 0: any free port).
t0=$(now)
timeout 20 "$RINGFENCE" serve --port 0 --duration 1 2>dur.log ||
	fail "serve --duration 1: exit $? ($(cat dur.log))"
grep -q 'serving http://127.0.0.1:[0-9]' dur.log || fail "start line: $(cat dur.log)"
awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a < 10) }' ||
	fail "serve --duration 1 took too long"

# Start on a free port (retry if another process takes it first).
for attempt in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$RINGFENCE" serve --port "$port" --duration 60 --threads 2 \
		2>"$tmp/serve.log" &
	pid=$!
	up=0
	for _ in $(seq 100); do
		if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz"; then
			up=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[ $up = 1 ] && break
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
done
[ -n "$pid" ] || fail "server did not come up"
url="http://127.0.0.1:$port"
grep -q "ringfence: serving http://127.0.0.1:$port (healthz, ca, crl, ocsp)" \
	serve.log || fail "start line: $(cat serve.log)"

# A second server on the same port is refused.
set +e
timeout 20 "$RINGFENCE" serve --port "$port" --duration 1 2>dup.log
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "second server on port $port: exit $rc"
grep -q 'cannot listen' dup.log || fail "second server: $(cat dup.log)"

# healthz and CA certificates.
[ "$(curl -sf "$url/healthz")" = ok ] || fail "healthz"
curl -sf -o root.pem "$url/ca/root.pem"
openssl x509 -in root.pem -noout || fail "root.pem does not parse"
curl -sf -o issuing.der "$url/ca/issuing.der"
openssl x509 -inform DER -in issuing.der -out issuing.pem ||
	fail "issuing.der does not parse"
openssl verify -CAfile root.pem issuing.pem >/dev/null ||
	fail "issuing CA does not verify against the served root"
curl -sf -o issuing2.pem "$url/ca/issuing.pem"
curl -sf -I "$url/ca/root.der" | grep -qi '^Content-Type: application/pkix-cert' ||
	fail "HEAD /ca/root.der"
cmp <(openssl x509 -in issuing2.pem -outform DER) issuing.der ||
	fail "issuing .pem and .der differ"
# The certificate's caIssuers URL names the served DER.
openssl x509 -in cert.pem -noout -text | grep -q 'CA Issuers - URI:.*/ca/issuing.der' ||
	fail "certificate has no caIssuers /ca/issuing.der"

# OCSP status of CERT (file) by POST with openssl: prints the status line.
ocsp_post() {
	openssl ocsp -issuer issuing.pem -cert "$1" -url "$url/ocsp" \
		-CAfile root.pem -no_nonce 2>&1
}
# The certificate may have been issued before its response was signed:
# the server signs what is missing on its first pass.
good=0
for _ in $(seq 50); do
	if ocsp_post cert.pem | grep -q '^cert.pem: good'; then
		good=1
		break
	fi
	sleep 0.1
done
[ $good = 1 ] || fail "OCSP POST: $(ocsp_post cert.pem)"
ocsp_post cert.pem | grep -q 'Response verify OK' || fail "OCSP verify"

# RFC 5019 6.2 headers.
openssl ocsp -issuer issuing.pem -cert cert.pem -no_nonce -reqout req.der \
	>/dev/null 2>&1
curl -s -D hdr -o resp.der -H 'Content-Type: application/ocsp-request' \
	--data-binary @req.der "$url/ocsp"
grep -qi '^Content-Type: application/ocsp-response' hdr || fail "ctype"
grep -qiE '^Cache-Control: max-age=[0-9]+, public, no-transform, must-revalidate' hdr ||
	fail "Cache-Control: $(grep -i cache-control hdr)"
grep -qi '^Last-Modified: ' hdr || fail "no Last-Modified"
grep -qi '^Expires: ' hdr || fail "no Expires"
grep -qi '^ETag: "' hdr || fail "no ETag"

# GET: find a request whose base64 holds '/', '+' and '=' (the nonce
# varies it; a SHA-1 CertID gets the pre-signed response, a SHA-2 one a
# response signed on demand, which also changes the length modulo 3).
found= found_md=
for _ in $(seq 100); do
	for md in -sha1 -sha256 -sha512; do
		openssl ocsp -issuer issuing.pem $md -cert cert.pem -nonce \
			-reqout getreq.der >/dev/null 2>&1
		b=$(openssl base64 -A -in getreq.der)
		case $b in *=*) ;; *) continue ;; esac
		case $b in */*) ;; *) continue ;; esac
		case $b in *+*) found=$b found_md=$md ;; *) continue ;; esac
		break 2
	done
done
[ -n "$found" ] || fail "no request with '/', '+' and '=' in 300 tries"
check_get() { # check_get PATH-SUFFIX
	local code
	code=$(curl -s -o get.der -w '%{http_code}' "$url/ocsp/$1")
	[ "$code" = 200 ] || fail "GET /ocsp/$1: HTTP $code"
	openssl ocsp -respin get.der -issuer issuing.pem "$found_md" \
		-cert cert.pem -CAfile root.pem -verify_other issuing.pem \
		2>&1 | grep -q '^cert.pem: good' ||
		fail "GET /ocsp/$1: $(openssl ocsp -respin get.der -resp_text 2>&1 | head -5)"
}
check_get "$found"
check_get "$(printf %s "$found" | sed 's,/,%2F,g; s,+,%2B,g; s,=,%3D,g')"
# A doubled slash in the base64 must survive too: splice one in at a '/'.
case $found in
*//*) check_get "$found" ;;
esac

# GnuTLS ocsptool agrees.
ocsptool --ask="$url/ocsp" --load-cert cert.pem --load-issuer issuing.pem \
	--load-trust issuing.pem >ocsptool.out 2>&1 ||
	fail "ocsptool: $(cat ocsptool.out)"
grep -q 'Certificate Status: good' ocsptool.out ||
	fail "ocsptool: $(cat ocsptool.out)"
grep -q 'Verifying OCSP Response: Success' ocsptool.out ||
	fail "ocsptool verify: $(cat ocsptool.out)"

# Malformed POST -> malformedRequest; oversize -> 413; PUT -> 405.
curl -s -o bad.der -H 'Content-Type: application/ocsp-request' \
	--data-binary 'this is not DER' "$url/ocsp"
out=$(openssl ocsp -respin bad.der -resp_text 2>&1 || true)
echo "$out" | grep -qi 'malformedrequest' || fail "malformed POST: $out"
head -c 70000 /dev/zero >big
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @big \
	-H 'Content-Type: application/ocsp-request' "$url/ocsp")
[ "$code" = 413 ] || fail "oversize POST: HTTP $code"
code=$(curl -s -D hdr -o /dev/null -w '%{http_code}' -X PUT --data x "$url/ocsp")
[ "$code" = 405 ] || fail "PUT: HTTP $code"
grep -qi '^Allow: POST' hdr || fail "405 without Allow"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/no/such/thing")
[ "$code" = 404 ] || fail "unknown path: HTTP $code"

# Connect and close without a byte; then half a request line.
exec 3<>"/dev/tcp/127.0.0.1/$port"
exec 3>&-
python3 -c "import socket; s=socket.create_connection(('127.0.0.1', $port)); s.send(b'GET /heal'); s.close()"
[ "$(curl -sf -m 2 "$url/healthz")" = ok ] || fail "healthz after bare connects"

# The CRL before: no revoked serial.
curl -sf -o crl1.der "$url/crl/issuing.crl" || fail "GET /crl/issuing.crl"
openssl crl -inform DER -in crl1.der -noout -CAfile issuing.pem 2>&1 |
	grep -q 'verify OK' || fail "served CRL does not verify"

# Revoke: visible over OCSP in under a second from the command's return.
"$RINGFENCE" revoke "$serial" --reason keyCompromise >/dev/null
t0=$(now)
seen=
while :; do
	if ocsp_post cert.pem >ocsp.out && grep -q '^cert.pem: revoked' ocsp.out; then
		seen=$(now)
		break
	fi
	awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 3) }' && break
	sleep 0.05
done
[ -n "$seen" ] || fail "not revoked over OCSP after 3 s: $(cat ocsp.out)"
dt=$(awk -v a="$t0" -v b="$seen" 'BEGIN { printf "%.3f", b - a }')
echo "serve_basic: revoked visible over OCSP after ${dt} s"
awk -v d="$dt" 'BEGIN { exit !(d < 1.0) }' || fail "revocation took ${dt} s (>= 1 s)"
grep -q 'Reason: keyCompromise' ocsp.out || fail "no keyCompromise reason"

listed=0
for _ in $(seq 30); do
	curl -sf -o crl2.der "$url/crl/issuing.crl"
	if openssl crl -inform DER -in crl2.der -noout -text |
		grep -qi "Serial Number: 0*$serial\$"; then
		listed=1
		break
	fi
	sleep 0.1
done
[ $listed = 1 ] || fail "served CRL does not list $serial"

# Clean stop on SIGTERM, with serve-start and serve-stop in the record.
kill -TERM "$pid"
wait "$pid" || fail "serve exited non-zero after SIGTERM"
pid=
"$RINGFENCE" audit search --json 2>/dev/null | grep -q 'serve-stop' ||
	"$RINGFENCE" audit export 2>/dev/null | grep -q 'serve-stop' ||
	fail "no serve-stop event in the audit record"
echo "serve_basic: ok"
