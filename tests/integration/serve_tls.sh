#!/usr/bin/env bash
# `ringfence serve --tls-port` seen by independent TLS clients: openssl
# s_client, curl and GnuTLS gnutls-cli. The server certificate chains to
# the served root with the SAN 127.0.0.1 and localhost; /healthz and the CA
# routes answer over HTTPS; TLS 1.1 and a TLS 1.2 suite without forward
# secrecy are refused; every handshake signature (and only those) is an
# audit leaf of the TLS key, also with handshakes on both workers at once;
# the record still verifies; the TLS key is sealed in the token and no new
# file under the state folder holds a private key; a restart keeps the key.
# The server listens on 127.0.0.1 only, is bounded by --duration and is
# stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" serve-tls
unset RINGFENCE_PIN RINGFENCE_NOW RINGFENCE_MODULE RINGFENCE_TOKEN \
	RINGFENCE_LISTEN RINGFENCE_PORT RINGFENCE_TLS_PORT \
	RINGFENCE_TLS_NAMES || true
export RINGFENCE_TOKENS=2
export LC_ALL=C # sort and join agree on the order
tmp="$RINGFENCE_HOME/.test" # not part of the state
mkdir "$tmp"
log="$tmp/serve.log"
fail() {
	echo "serve_tls: FAIL: $*" >&2
	[ -f "$log" ] && sed 's/^/  serve: /' "$log" >&2
	exit 1
}
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rf init >/dev/null
# Every file of the state after init, with its checksum: what serve adds
# or changes is checked for private keys below.
snap() {
	(cd "$RINGFENCE_HOME" && find . -path ./.test -prune -o -type f \
		-exec sha256sum {} + | sort -k2)
}
snap >"$tmp/before"

# Start with TLS on a free port (retry if another process takes it).
start() {
	for _ in 1 2 3 4 5; do
		port=$(freeport)
		tport=$(freeport)
		[ "$port" != "$tport" ] || continue
		"$RINGFENCE" serve --port "$port" --tls-port "$tport" --duration 90 \
			--threads 2 2>"$log" &
		server=$!
		for _ in $(seq 100); do
			if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz"; then
				return 0
			fi
			kill -0 "$server" 2>/dev/null || break
			sleep 0.1
		done
		kill -TERM "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	fail "server did not come up"
}
stop() {
	kill -TERM "$server"
	wait "$server" || fail "serve exited non-zero after SIGTERM"
	server=""
}
start
grep -q "serving https://127.0.0.1:$tport (the same routes; TLS key [0-9a-f]\{64\})" \
	"$log" || fail "no https start line"
grep -q "TLS certificate issued" "$log" || fail "no certificate issued on first start"
key=$(sed -n 's/.*TLS key \([0-9a-f]\{64\}\)).*/\1/p' "$log")
[ ${#key} -eq 64 ] || fail "TLS key id: '$key'"

cd "$tmp"
curl -sf -o root.pem "http://127.0.0.1:$port/ca/root.pem"
curl -sf -o issuing.pem "http://127.0.0.1:$port/ca/issuing.pem"

# Leaves of the TLS key's handshake signatures so far.
tls_sigs() {
	rf audit search --key "$key" 2>/dev/null | grep -c '"type":"sign","v":1,"what":"tls"' || true
}
n0=$(tls_sigs)
[ "$n0" -eq 0 ] || fail "TLS signatures before any handshake: $n0"

# TLS 1.3 with openssl: the chain verifies against the root alone.
sclient() {
	timeout 10 openssl s_client -connect "127.0.0.1:$tport" \
		-servername localhost "$@" </dev/null 2>&1
}
out=$(sclient -CAfile root.pem -verify_return_error -tls1_3 -showcerts) ||
	fail "s_client -tls1_3: $out"
grep -q 'Verify return code: 0 (ok)' <<<"$out" || fail "chain: $out"
grep -q 'TLSv1.3' <<<"$out" || fail "not TLS 1.3: $out"
# The server sends its certificate and the issuing CA's.
awk '/BEGIN CERT/,/END CERT/' <<<"$out" >chain.pem
[ "$(grep -c 'BEGIN CERT' chain.pem)" -eq 2 ] || fail "chain of $(grep -c 'BEGIN CERT' chain.pem)"
openssl x509 -in chain.pem -out tls.pem
openssl verify -CAfile root.pem -untrusted issuing.pem -purpose sslserver \
	-verify_ip 127.0.0.1 tls.pem >/dev/null || fail "openssl verify tls.pem"
openssl verify -CAfile root.pem -untrusted issuing.pem -purpose sslserver \
	-verify_hostname localhost tls.pem >/dev/null || fail "verify localhost"
if openssl verify -CAfile root.pem -untrusted issuing.pem \
	-verify_hostname example.com tls.pem >/dev/null 2>&1; then
	fail "tls.pem verifies for example.com"
fi
# Its public key is the TLS key's (the key id is the SPKI's SHA-256).
spki=$(openssl x509 -in tls.pem -pubkey -noout | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)
[ "$spki" = "$key" ] || fail "certificate key $spki is not the TLS key $key"
openssl x509 -in tls.pem -noout -text >tls.txt
grep -q 'TLS Web Server Authentication' tls.txt || fail "no serverAuth EKU"
grep -q 'CA:FALSE' tls.txt || fail "no CA:FALSE"
cmp <(curl -sf "http://127.0.0.1:$port/ca/tls.pem") tls.pem ||
	fail "/ca/tls.pem is not the certificate served"

# HTTPS: openssl, curl, GnuTLS, TLS 1.3 and TLS 1.2 (ECDHE-ECDSA).
resp=$(printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
	timeout 10 openssl s_client -quiet -connect "127.0.0.1:$tport" \
		-CAfile root.pem -verify_return_error 2>/dev/null) ||
	fail "s_client GET /healthz"
grep -q '^HTTP/1.1 200' <<<"$resp" || fail "s_client GET status: $resp"
[ "$(tail -n1 <<<"$resp")" = ok ] || fail "s_client GET body: $resp"
[ "$(curl -sf --cacert root.pem "https://localhost:$tport/healthz")" = ok ] ||
	fail "curl https://localhost"
[ "$(curl -sf --cacert root.pem --tlsv1.2 --tls-max 1.2 \
	"https://127.0.0.1:$tport/healthz")" = ok ] || fail "curl TLS 1.2"
curl -sf --cacert root.pem -o root2.pem "https://127.0.0.1:$tport/ca/root.pem" ||
	fail "curl /ca/root.pem over TLS"
cmp root.pem root2.pem || fail "root over TLS differs"
out=$(timeout 10 gnutls-cli --x509cafile=root.pem -p "$tport" localhost \
	</dev/null 2>&1) || fail "gnutls-cli: $out"
grep -q 'Handshake was completed' <<<"$out" || fail "gnutls-cli: $out"
grep -q 'TLS1.3' <<<"$out" || fail "gnutls-cli not TLS 1.3: $out"
out=$(timeout 10 gnutls-cli --x509cafile=root.pem -p "$tport" localhost \
	--priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2' </dev/null 2>&1) ||
	fail "gnutls-cli TLS 1.2: $out"
grep -qE '\(TLS1\.2-X\.509\)-\(ECDHE-[A-Z0-9]+\)-\(ECDSA-SHA256\)-\((AES-[0-9]+-GCM|CHACHA20-POLY1305)\)' <<<"$out" ||
	fail "gnutls-cli TLS 1.2: $out"
ok=7 # s_client 2, curl 3, gnutls-cli 2: each a full handshake

# Refused: TLS 1.1, and TLS 1.2 without forward secrecy (RSA key
# transport), or CBC; refused handshakes sign nothing.
for args in "-tls1_1" "-tls1_2 -cipher AES128-GCM-SHA256" \
	"-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA" \
	"-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256"; do
	# shellcheck disable=SC2086
	if out=$(sclient -CAfile root.pem $args); then
		fail "s_client $args connected: $out"
	fi
	grep -qE 'alert (protocol version|handshake failure)|no protocols available|no ciphers available' <<<"$out" ||
		fail "s_client $args: not a TLS refusal: $out"
done
if timeout 10 gnutls-cli --x509cafile=root.pem -p "$tport" localhost \
	--priority 'NORMAL:-KX-ALL:+RSA:-VERS-ALL:+VERS-TLS1.2' </dev/null >/dev/null 2>&1; then
	fail "gnutls-cli with RSA key transport connected"
fi
n1=$(tls_sigs)
[ "$n1" -eq $((n0 + ok)) ] ||
	fail "$ok handshakes made $((n1 - n0)) TLS signature leaves"

# Both workers at once: one leaf per handshake, none lost. The source's
# handshake budget (tls_handshake_source_rate, 20 a second, at most a
# second's worth) is full again first: on a fast machine the handshakes
# above can take most of it within the last second.
sleep 1.1
for i in $(seq 16); do
	curl -sf --cacert root.pem -o "par$i" "https://127.0.0.1:$tport/healthz" &
done
wait_ok=1
for j in $(jobs -p); do
	[ "$j" = "$server" ] && continue
	wait "$j" || wait_ok=0
done
[ $wait_ok = 1 ] || fail "a parallel HTTPS request failed"
for i in $(seq 16); do [ "$(cat "par$i")" = ok ] || fail "parallel $i"; done
n2=$(tls_sigs)
[ "$n2" -eq $((n1 + 16)) ] || fail "16 parallel handshakes made $((n2 - n1)) leaves"
# Each names the peer it answered and the digest it signed.
rf audit search --key "$key" | grep '"what":"tls"' | tail -n1 |
	grep -qE '"digest":"[0-9a-f]{64}".*"ref":"127\.0\.0\.1:[0-9]+","source":"serve tls"' ||
	fail "leaf fields: $(rf audit search --key "$key" | tail -n1)"
# Plain HTTP is unchanged alongside.
[ "$(curl -sf "http://127.0.0.1:$port/healthz")" = ok ] || fail "plain healthz"
stop

# A restart keeps the certificate and its key.
cp "$log" "$tmp/first.log"
start
grep -q "TLS key $key" "$log" || fail "restart changed the TLS key: $(cat "$log")"
if grep -q "TLS certificate issued" "$log"; then
	fail "restart issued a new certificate"
fi
out=$(sclient -CAfile root.pem -verify_return_error) || fail "after restart: $out"
stop
cd "$RINGFENCE_HOME"

rf audit verify >/dev/null || fail "audit verify"

# Custody: the TLS key is sealed in the token; nothing serve wrote or
# changed under the state folder (the database, the token's own object
# files) is a PEM or DER private key.
rf keys list | grep -E "^$key +ec-p256 +tls .* active +sealed" >/dev/null ||
	fail "TLS key not sealed: $(rf keys list | grep "$key")"
snap >"$tmp/after"
changed=$(join -1 2 -2 2 -a 2 -o 2.2,1.1,2.1 "$tmp/before" "$tmp/after" |
	awk '$2 != $3 { print $1 }')
[ -n "$changed" ] || fail "serve changed no file (the test is not looking)"
for f in $changed; do
	if grep -aq 'PRIVATE KEY' "$f"; then
		fail "$f holds a PEM private key"
	fi
	for form in DER PEM; do
		if openssl pkey -inform "$form" -in "$f" -noout 2>/dev/null; then
			fail "$f parses as a $form private key"
		fi
	done
done
echo "serve_tls: ok ($((n2 - n0)) handshake signatures audited;" \
	"$(wc -w <<<"$changed") new or changed state files hold no private key)"
