#!/usr/bin/env bash
# Issue 14 item 5 / issue 13 item 6: a change is visible when the command
# returns. 200 issuances and 200 revocations against a running serve: the
# first OCSP answer after each command returns is right (good after issue,
# revoked after revoke), all of them (bench/visibility.sh, run small).
# Then: no server, no wait; the OCSP max-age stays short.
set -euo pipefail
N=${RF_VISIBILITY_N:-200}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bash "$here/../../bench/visibility.sh" "$(dirname "$RINGFENCE")" "$N" | tee "$out" ||
	{ echo "FAIL: a first OCSP answer after a command returned was wrong" >&2; exit 1; }
[ "$(grep -c "first answer right: $N/$N" "$out")" = 2 ] || { echo "FAIL: not all $N right" >&2; exit 1; }

. "$here/lib/state.sh" visibility
rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
# No server: the command does not wait for one (a stale socket included).
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])" "$RINGFENCE_HOME/serve.sock"
t0=$(date +%s%3N)
rf issue --tenant acme --profile client --keygen ec-p256 --out /dev/null >/dev/null 2>"$RINGFENCE_HOME/err"
[ $(($(date +%s%3N) - t0)) -lt 5000 ] || fail "issue waited for a server that is gone"
! grep -q "did not confirm" "$RINGFENCE_HOME/err" || fail "a stale socket was taken for a server"
rm -f "$RINGFENCE_HOME/serve.sock"
# RFC 5019 6.2 freshness, capped: a `good` is not cacheable for days.
rf cert ca issuing >"$RINGFENCE_HOME/issuing.pem"
s=$(rf issue --tenant acme --profile client --keygen ec-p256 --out /dev/null 2>&1 | sed -n 's/^serial: //p')
. "$here/lib/ports.sh"
serve_late "$RINGFENCE_HOME/serve.log" --duration 60 || fail "serve did not come up"
[ -S "$RINGFENCE_HOME/serve.sock" ] || fail "serve does not listen on serve.sock"
openssl ocsp -issuer "$RINGFENCE_HOME/issuing.pem" -serial "0x$s" -reqout "$RINGFENCE_HOME/req.der" -no_nonce >/dev/null 2>&1 || true
curl -s -D "$RINGFENCE_HOME/hdr" -o /dev/null --data-binary @"$RINGFENCE_HOME/req.der" \
	-H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$port/ocsp"
age=$(sed -n 's/^Cache-Control: max-age=\([0-9]*\).*/\1/Ip' "$RINGFENCE_HOME/hdr" | tr -d '\r')
[ -n "$age" ] && [ "$age" -le 60 ] || fail "OCSP max-age '$age' is longer than a minute"
kill "$server"; wait "$server" 2>/dev/null || true; server=""
[ ! -e "$RINGFENCE_HOME/serve.sock" ] || fail "serve left serve.sock behind"
echo "incident visibility: OK"
