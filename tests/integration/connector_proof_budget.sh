#!/usr/bin/env bash
# keyd takes a token from a connector's buckets only for a request it would
# sign: one whose proof of possession it has checked. A serve taken over
# makes up requests for a bound connector's certificate (it relays the
# connector's, so it knows the serial); with connector_proof required keyd
# refuses them, and before this they spent the connection's and the
# connector's tokens first, so that the connector itself was then refused
# as rate_limited. Here serve's path runs in rf-keyd_client (class server,
# its own buckets fresh each run, as a serve that skips them): eight
# requests with no proof, a stranger's proof and the other connector's,
# each refused as bad_proof with nothing signed, then the connector's own
# proof gets its assertion from keyd, whose buckets hold three. A proof
# keyd accepted is refused after keyd restarts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-proof-budget
. "$here/lib/connector.sh" connector_proof_budget
client="$RF_BINARY_DIR/rf-keyd_client"
# keyd starts with the first command below and keeps these settings.
export RINGFENCE_CONNECTOR_PROOF=required RINGFENCE_CONN_BURST=3 \
	RINGFENCE_CONN_RATE=1 RINGFENCE_CONNECTOR_BURST=3 \
	RINGFENCE_CONNECTOR_RATE=1

acme_m365
serial=$(openssl x509 -in sync.pem -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')
grep -q "connector_proof required" "$RINGFENCE_HOME/keyd.log" ||
	fail "keyd did not start with connector_proof required: $(cat "$RINGFENCE_HOME/keyd.log")"

# mkproof KEY: a proof for acme/m365 made as docs/connectors.md says.
mkproof() {
	local t n sig
	t=$(date +%s)
	n=$(openssl rand -hex 16)
	sig=$(printf 'ringfence-proof-v1\nassert\nacme/m365\n%s\n%s\n' "$t" "$n" |
		openssl dgst -sha256 -sign "$1" | basenc --base64url -w0 | tr -d =)
	printf '%s.%s.%s\n' "$t" "$n" "$sig"
}
# signed: assertion signatures in the audit record (each leaf is durable
# before keyd signs).
signed() {
	rf audit search --json | python3 -c 'import json,sys
n = 0
for l in sys.stdin:
    e = json.loads(l)["event"]
    if e.get("type") == "sign" and e.get("what") == "assertion":
        n += 1
print(n)'
}

# Eight made-up requests, more than either bucket holds.
for i in 1 2 3 4 5 6 7 8; do
	case $((i % 3)) in
	0) body='{"connection":"acme/m365"}' ;;
	1) body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof stranger.key)\"}" ;;
	2) body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof other.key)\"}" ;;
	esac
	# Without a proof, as a serve set to optional relays it: keyd, set
	# to required, refuses it.
	rc=0
	RINGFENCE_CONNECTOR_PROOF=$([ $((i % 3)) -eq 0 ] && echo optional || echo required) \
		"$client" server-assert "$serial" "$body" >out 2>err || rc=$?
	[ "$rc" -eq 3 ] || fail "made-up request $i: exit $rc: $(cat out err)"
	grep -q '^401 ' out && grep -q 'bad_proof' out ||
		fail "made-up request $i was not refused as bad_proof: $(cat out)"
done
[ "$(signed)" -eq 0 ] || fail "$(signed) assertions signed for made-up requests"

# The connector's own request: keyd's buckets are untouched.
body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof sync.key)\"}"
"$client" server-assert "$serial" "$body" >out 2>err ||
	fail "the connector's own request after eight made-up ones: $(cat out err)"
grep -q '^200 ' out || fail "no assertion: $(cat out)"
jwt=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read().split(" ",1)[1])["assertion"])' <out)
$rp "$jwt" "$TID" "$CID" seen cred.pem >/dev/null ||
	fail "the relying party refused the assertion"

# keyd killed and started again: the proof it accepted, still within the
# 120 s window, is refused as used before (keyd keeps the proofs it
# accepts in its folder; before, a restart forgot them and it was accepted
# a second time).
keyd_kill9
rf keys list >/dev/null
[ "$(cat "$RINGFENCE_HOME/keyd.pid")" != "$kpid" ] || fail "keyd was not started again"
rc=0
"$client" server-assert "$serial" "$body" >out 2>err || rc=$?
[ "$rc" -eq 3 ] && grep -q '^401 .*bad_proof.*used before' out ||
	fail "the proof accepted before keyd's restart, sent again: exit $rc: $(cat out)"

# keyd's buckets, new with it, hold three: the third proof after this one
# is refused by keyd, as serve answers a connector past its rate (429
# rate_limited), which shows a refused proof spent none of them.
body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof sync.key)\"}"
"$client" server-assert "$serial" "$body" >out 2>err ||
	fail "the connector's own request after keyd's restart: $(cat out err)"
for i in 2 3; do
	body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof sync.key)\"}"
	"$client" server-assert "$serial" "$body" >out 2>err ||
		fail "the connector's request $i: $(cat out err)"
done
body="{\"connection\":\"acme/m365\",\"proof\":\"$(mkproof sync.key)\"}"
rc=0
"$client" server-assert "$serial" "$body" >out 2>err || rc=$?
[ "$rc" -eq 3 ] && grep -q '^429 .*"rate_limited"' out ||
	fail "a fourth request within the burst of three was not rate_limited: exit $rc: $(cat out)"
# keyd's wait, passed on: a token an hour (conn_rate 1) is minutes away.
ra=$(sed -n 's/^Retry-After: //p' out)
[ -n "$ra" ] && [ "$ra" -gt 60 ] && [ "$ra" -le 3600 ] ||
	fail "Retry-After of keyd's rate_limited: '$ra'"
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_proof_budget: ok"
