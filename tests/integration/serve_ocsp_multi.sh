#!/usr/bin/env bash
# OCSP requests naming several certificates, up to the documented 16
# (docs/ocsp.md), are answered by serve with one response signed on
# demand, checked by openssl ocsp: 8 and 16 serials (SHA-1 CertIDs), 16
# with SHA-512 CertIDs, one of them revoked, each SingleResponse's status
# as the store says; the response verifies against the root. The audit
# leaf of each such signature names every serial it covers, in the
# request's order. 17 CertIDs are malformedRequest. A signature keyd
# refuses (the store changed behind serve's back) is internalError and a
# line in serve's log saying why. The server listens on 127.0.0.1 only and
# is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" ocsp-multi
. "$here/lib/serve.sh"
unset RINGFENCE_PORT RINGFENCE_TLS_PORT RINGFENCE_NOW || true
h=$RINGFENCE_HOME
cd "$h"
q() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }

rf init >/dev/null 2>&1 || fail "init"
rf tenant add acme >/dev/null
serials=()
for i in $(seq 17); do
	rf issue --tenant acme --connection "c$i" --profile client \
		--keygen ec-p256 --out "c$i.pem" >"meta$i" 2>&1 ||
		fail "issue $i: $(cat "meta$i")"
	s=$(sed -n 's/^serial: //p' "meta$i")
	[ -n "$s" ] || fail "no serial for certificate $i"
	serials+=("$s")
done
revoked=${serials[2]}
rf revoke "$revoked" --reason keyCompromise >/dev/null
rf cert ca root >root.pem
rf cert ca issuing >issuing.pem

start_serve --duration 120
url="http://127.0.0.1:$port/ocsp"
for _ in $(seq 50); do
	openssl ocsp -issuer issuing.pem -serial "0x$revoked" -no_nonce \
		-url "$url" -CAfile root.pem 2>&1 | grep -q ': revoked' && break
	sleep 0.1
done

# ask N [HASH]: the first N serials in one request, answer in ask.out.
ask() {
	local n=$1 md=${2:--sha1} args=() i
	for i in $(seq 0 $((n - 1))); do
		args+=(-serial "0x${serials[$i]}")
	done
	openssl ocsp -issuer issuing.pem "$md" "${args[@]}" -no_nonce \
		-url "$url" -CAfile root.pem >ask.out 2>&1 || true
}
# check N [HASH]: every one of the first N serials has its status.
check() {
	local n=$1 i want got
	ask "$@"
	grep -q 'Response verify OK' ask.out ||
		fail "$n serials ${2:-}: $(head -5 ask.out); serve: $(tail -5 serve.log)"
	for i in $(seq 0 $((n - 1))); do
		want=good
		[ "${serials[$i]}" != "$revoked" ] || want=revoked
		got=$(sed -n "s/^0x${serials[$i]}: //p" ask.out)
		[ "$got" = "$want" ] ||
			fail "$n serials ${2:-}: serial $((i + 1)) is '$got', not $want: $(cat ask.out)"
	done
	[ "$(grep -c '^0x' ask.out)" = "$n" ] ||
		fail "$n serials ${2:-}: $(grep -c '^0x' ask.out) statuses"
	grep -q 'Reason: keyCompromise' ask.out || fail "no revocation reason"
}
# The audit leaf of the last on-demand signature names the first N serials.
leaf_names() {
	local n=$1 want=on-demand i sep=" " ref
	for i in $(seq 0 $((n - 1))); do
		want="$want$sep${serials[$i]}"
		sep=,
	done
	ref=$(q "SELECT json_extract(CAST(data AS TEXT), '\$.ref') FROM
		audit_leaf WHERE type = 'sign' AND
		json_extract(CAST(data AS TEXT), '\$.what') = 'ocsp' AND
		json_extract(CAST(data AS TEXT), '\$.ref') LIKE 'on-demand%'
		ORDER BY idx DESC LIMIT 1")
	[ "$ref" = "$want" ] || fail "$n serials: the leaf's ref is '$ref', not '$want'"
}

check 8
leaf_names 8
check 16
leaf_names 16
check 16 -sha512
leaf_names 16
grep -q 'OCSP on-demand' serve.log && fail "serve logged a failure: $(cat serve.log)"

# 17 CertIDs: malformedRequest, as documented.
ask 17
grep -qi 'malformedrequest' ask.out || fail "17 serials: $(head -3 ask.out)"

# The store says revoked behind serve's back: serve signs good, keyd
# refuses, the client gets internalError and serve's log says why.
q "UPDATE certs SET revoked = 1, revoked_at = strftime('%s', 'now'),
	reason = 1 WHERE serial = '${serials[0]}'"
ask 8
grep -qi 'internalerror' ask.out || fail "refused signature: $(head -3 ask.out)"
# Logged before the answer is sent.
grep -q 'OCSP on-demand signing of 8 CertIDs failed.*good for a revoked certificate' serve.log ||
	fail "no line in serve's log for the failure: $(cat serve.log)"
grep "OCSP on-demand" serve.log
echo "serve_ocsp_multi: ok"
