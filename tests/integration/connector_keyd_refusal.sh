#!/usr/bin/env bash
# A request serve's own check passes and keyd refuses gets keyd's reason
# with its documented code and status, recorded and alerted as serve's
# own refusals are (issue 12). The window: `incident open` has told keyd's
# ledger (keyd refuses the connection from then on) and not yet committed
# the incident to the store (serve's check still passes); the test holds
# it there (RINGFENCE_TEST_PAUSE_AT=incident-ledger-noted) and asks.
# Before, the connector got 403 "refused", a code the API does not
# document, and serve recorded and alerted nothing.
# serve listens on 127.0.0.1 only, is bounded by --duration and stopped by
# its PID; keyd by the PID in keyd.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-refusal
. "$here/lib/connector.sh" connector_keyd_refusal
export RINGFENCE_CONN_RATE=0 RINGFENCE_CONNECTOR_RATE=0

acme_m365
serve_up 120
ask() { # -> "STATUS CODE" (the answer in resp.json)
	curl -s -o resp.json -w '%{http_code}' --cert sync.pem --key sync.key \
		--cacert root.pem -H 'Content-Type: application/json' \
		--data-binary '{"connection":"acme/m365"}' "$url/v1/assertions" || true
	printf ' %s\n' "$(jq -r '.error // ""' resp.json 2>/dev/null || echo -)"
}
[ "$(ask)" = "200 " ] || fail "the first assertion: $(cat resp.json)"

# Held after keyd's ledger was told, before the store commit.
RINGFENCE_TEST_PAUSE_AT=incident-ledger-noted RINGFENCE_TEST_PAUSE_MS=60000 \
	RINGFENCE_TEST_PAUSE_UNTIL="$tmp/go" \
	rf incident open --scope connection:acme/m365 --reason "keyd first" \
	>open.out 2>open.err &
opener=$!
for _ in $(seq 600); do
	grep -q "test pause at incident-ledger-noted" open.err && break
	kill -0 "$opener" 2>/dev/null || fail "incident open ended: $(cat open.err)"
	sleep 0.05
done
grep -q "test pause at incident-ledger-noted" open.err ||
	fail "incident open never reached the pause: $(cat open.err)"
# serve's store says no incident; keyd's ledger says one.
got=$(ask)
touch "$tmp/go"
wait "$opener" || fail "incident open: $(cat open.err)"
[ "$got" = "423 under_incident" ] ||
	fail "keyd's refusal was answered '$got': $(cat resp.json)"
grep -q "ledger" resp.json || fail "the answer does not give keyd's reason: $(cat resp.json)"
# Recorded and alerted as serve's own refusal is (the recorder writes in
# batches: give it a moment).
for _ in $(seq 100); do
	rf --json alerts list | jq -e 'any(.[]; .kind == "under_incident")' \
		>/dev/null 2>&1 && break
	sleep 0.1
done
rf --json alerts list | jq -e 'any(.[]; .kind == "under_incident")' >/dev/null ||
	fail "no under_incident alert for keyd's refusal: $(rf alerts list)"
# Once the store has it, serve refuses by itself, as before.
[ "$(ask)" = "423 under_incident" ] || fail "after the open: $(cat resp.json)"
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_keyd_refusal: ok"
