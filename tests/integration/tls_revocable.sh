#!/usr/bin/env bash
# Issue 13 item 8: the HTTPS certificate of `serve` is a certificate of its
# issuing CA like any other. It carries a CRL distribution point and an
# OCSP URL; `ringfence revoke` revokes it; `openssl crl` finds it in the
# CRL, `openssl verify -crl_check` rejects it and `openssl ocsp` hears
# "revoked" from the running server; the next start replaces it; an
# issuer-scope contain replaces it in the running server. The
# server listens on 127.0.0.1 only, is bounded by --duration and is stopped
# by its PID.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" tls-revocable
unset RINGFENCE_PIN RINGFENCE_NOW RINGFENCE_MODULE RINGFENCE_TOKEN \
	RINGFENCE_LISTEN RINGFENCE_PORT RINGFENCE_TLS_PORT \
	RINGFENCE_TLS_NAMES || true
h="$RINGFENCE_HOME/.test"
mkdir "$h"
log="$h/serve.log"
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start() {
	for _ in 1 2 3 4 5; do
		port=$(freeport)
		tport=$(freeport)
		[ "$port" != "$tport" ] || continue
		"$RINGFENCE" serve --port "$port" --tls-port "$tport" \
			--duration 120 --threads 2 2>"$log" &
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
served_cert() { # the certificate the HTTPS listener presents, as PEM
	openssl s_client -connect "127.0.0.1:$tport" -servername localhost \
		</dev/null 2>/dev/null | openssl x509 -out "$1"
}

rf init >/dev/null
start
served_cert "$h/tls.pem"
rf cert ca root >"$h/root.pem"
rf cert ca issuing >"$h/issuing.pem"
cat "$h/root.pem" "$h/issuing.pem" >"$h/trust.pem"
openssl x509 -in "$h/tls.pem" -noout -ocsp_uri | grep -q '/ocsp$' ||
	fail "the HTTPS certificate has no OCSP URL"
openssl x509 -in "$h/tls.pem" -noout -ext crlDistributionPoints |
	grep -q 'URI:.*/crl/issuing.crl' ||
	fail "the HTTPS certificate has no CRL distribution point"
hex=$(openssl x509 -in "$h/tls.pem" -noout -serial | sed 's/^serial=//')
serial=$(echo "$hex" | tr 'A-F' 'a-f' | sed 's/^0*//')
rf cert show "$serial" >/dev/null || fail "serial $serial is not in the certificate table"
ocsp() {
	openssl ocsp -issuer "$h/issuing.pem" -cert "$h/tls.pem" \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/trust.pem" 2>&1 || true
}
ocsp | grep -q 'tls.pem: good' || fail "OCSP before revoke: $(ocsp)"

rf revoke "$serial" --reason keyCompromise >/dev/null
# The running server answers "revoked" within a few seconds.
ok=0
for _ in $(seq 50); do
	if ocsp | grep -q 'tls.pem: revoked'; then
		ok=1
		break
	fi
	sleep 0.1
done
[ "$ok" -eq 1 ] || fail "OCSP after revoke: $(ocsp)"
rf crl --out "$h/crl.der"
openssl crl -inform DER -in "$h/crl.der" -noout -text |
	grep -qi "Serial Number: 0*$hex" || fail "the CRL does not list $hex"
openssl crl -inform DER -in "$h/crl.der" -out "$h/crl.pem"
out=$(openssl verify -crl_check -CRLfile "$h/crl.pem" -CAfile "$h/root.pem" \
	-untrusted "$h/issuing.pem" "$h/tls.pem" 2>&1 || true)
echo "$out" | grep -q 'certificate revoked' || fail "verify: $out"

# The next start replaces the revoked certificate.
stop
start
served_cert "$h/tls2.pem"
hex2=$(openssl x509 -in "$h/tls2.pem" -noout -serial | sed 's/^serial=//')
[ "$hex2" != "$hex" ] || fail "the revoked HTTPS certificate is still served"
stop

# Incidents cover it (issue 13 item 8): contain of an issuer scope, while
# serve runs, revokes the HTTPS certificate that CA issued and replaces it
# with one of the new issuing CA, which the running server presents to the
# next client within seconds, without a restart.
serial2=$(echo "$hex2" | tr 'A-F' 'a-f' | sed 's/^0*//')
rf tenant add acme >/dev/null
rf issue --tenant acme --connection app --profile client --keygen ec-p256 >/dev/null 2>&1
start
inc=$(rf incident open --scope issuer:issuing --reason "issuing key exposed" 2>/dev/null)
out=$(rf incident contain "$inc")
echo "$out" | grep -q "HTTPS certificate $serial2 .* revoked, and replaced by one of issuing-inc$inc" ||
	fail "contain does not say the HTTPS certificate is revoked and replaced: $out"
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT revoked || '/' || reason FROM certs WHERE serial = '$serial2'")" = "1/2" ] ||
	fail "the HTTPS certificate is not revoked with cACompromise"
rf cert ca "issuing-inc$inc" >"$h/newiss.pem"
ok=0
for _ in $(seq 50); do
	served_cert "$h/tls3.pem" 2>/dev/null || true
	hex3=$(openssl x509 -in "$h/tls3.pem" -noout -serial 2>/dev/null | sed 's/^serial=//')
	if [ -n "$hex3" ] && [ "$hex3" != "$hex2" ]; then
		ok=1
		break
	fi
	sleep 0.1
done
[ "$ok" -eq 1 ] || fail "the running server still presents the revoked certificate $hex2"
openssl verify -CAfile "$h/root.pem" -untrusted "$h/newiss.pem" "$h/tls3.pem" >/dev/null ||
	fail "the new HTTPS certificate does not verify under the new issuing CA"
# A client that trusts only the root verifies the whole handshake: the
# server sends the new issuing CA with it.
openssl s_client -connect "127.0.0.1:$tport" -servername localhost \
	-CAfile "$h/root.pem" -verify_return_error </dev/null >"$h/sc.txt" 2>&1 ||
	fail "a client trusting the root refuses the renewed server: $(tail -3 "$h/sc.txt")"
grep -q "TLS certificate .* replaced by" "$log" ||
	fail "serve did not log the replacement: $(tail -3 "$log")"
stop
# The next start keeps the renewed certificate.
start
served_cert "$h/tls4.pem"
stop
[ "$(openssl x509 -in "$h/tls4.pem" -noout -serial)" = "serial=$hex3" ] ||
	fail "the next start replaced the renewed certificate again"
# A start with other names (tls_names) replaces the certificate: the one
# it replaces is revoked as superseded (reason 4), not left valid with its
# key disabled, and OCSP says so.
RINGFENCE_TLS_NAMES=ringfence.example start
served_cert "$h/tls5.pem"
hex5=$(openssl x509 -in "$h/tls5.pem" -noout -serial | sed 's/^serial=//')
[ "$hex5" != "$hex3" ] || fail "new names did not replace the HTTPS certificate"
openssl x509 -in "$h/tls5.pem" -noout -ext subjectAltName | grep -q "DNS:ringfence.example" ||
	fail "the new HTTPS certificate does not name ringfence.example"
serial3=$(echo "$hex3" | tr 'A-F' 'a-f' | sed 's/^0*//')
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT revoked || '/' || reason FROM certs WHERE serial = '$serial3'")" = "1/4" ] ||
	fail "the replaced HTTPS certificate $serial3 is not revoked as superseded: $(rf cert show "$serial3" 2>&1 | head -5)"
openssl ocsp -issuer "$h/newiss.pem" -cert "$h/tls4.pem" \
	-url "http://127.0.0.1:$port/ocsp" -CAfile "$h/root.pem" \
	-verify_other "$h/newiss.pem" >"$h/ocsp5.txt" 2>&1 || true
grep -q "tls4.pem: revoked" "$h/ocsp5.txt" ||
	fail "OCSP for the replaced HTTPS certificate: $(cat "$h/ocsp5.txt")"
grep -q "replaced HTTPS certificate .* revoked (superseded)" "$log" ||
	fail "serve did not log the revocation: $(tail -3 "$log")"
stop
# Two serves on one state folder with other names: the second one's
# certificate keeps the names of the one it replaces, so that the first
# serve, which takes it within seconds, still matches its own clients.
served_as() { # PORT NAME OUT: the certificate, verified for NAME
	openssl s_client -connect "127.0.0.1:$1" -servername "$2" \
		-CAfile "$h/root.pem" -verify_hostname "$2" -verify_return_error \
		</dev/null 2>"$3.err" | openssl x509 -out "$3"
}
RINGFENCE_TLS_NAMES=a.example start
a_server=$server a_tport=$tport
served_as "$a_tport" a.example "$h/a1.pem" ||
	fail "the first serve's certificate does not verify for a.example: $(tail -2 "$h/a1.pem.err")"
log="$h/serve-b.log"
RINGFENCE_TLS_NAMES=b.example start
served_as "$tport" b.example "$h/b1.pem" ||
	fail "the second serve's certificate does not verify for b.example: $(tail -2 "$h/b1.pem.err")"
b_hex=$(openssl x509 -in "$h/b1.pem" -noout -serial)
openssl x509 -in "$h/b1.pem" -noout -ext subjectAltName | grep -q "DNS:a.example" ||
	fail "the second serve's certificate dropped the first's name: $(openssl x509 -in "$h/b1.pem" -noout -ext subjectAltName)"
ok=0
for _ in $(seq 100); do
	if served_as "$a_tport" a.example "$h/a2.pem" &&
		[ "$(openssl x509 -in "$h/a2.pem" -noout -serial)" = "$b_hex" ]; then
		ok=1
		break
	fi
	sleep 0.1
done
[ "$ok" -eq 1 ] ||
	fail "the first serve does not present a certificate for a.example after the second started: $(tail -2 "$h/a2.pem.err")"
stop
server=$a_server
stop
echo "tls_revocable: OK"
