#!/usr/bin/env bash
# Anonymous handshakes that spend the day's bytes (anon_audit_bytes_day)
# do not lock connectors out (issue 12; docs/serve.md, "Budgets"). A TLS
# server signs before it sees the client's certificate, so a flood from
# anywhere spent the bytes every full handshake needs, and no connector
# could make a new one until the day rolled. Now a source a connector was
# served from is known for a week (from serve's memory, and at start from
# the store's assertions): past the day's bytes its handshakes spend a
# reserve of a quarter more, which nobody else can.
#  - a connector is served once (127.0.0.1: its source becomes known);
#  - anonymous handshakes from 127.0.0.2 until they are refused;
#  - an anonymous handshake from 127.0.0.3 is refused, the connector's new
#    full handshake (no ticket) is served;
#  - serve restarted: the same, from the record and the store alone.
# serve listens on 127.0.0.1 only, is bounded by --duration and stopped by
# its PID; keyd by the PID in keyd.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" budget-connectors
. "$here/lib/connector.sh" serve_budget_connectors
# A day of ~40 handshakes' leaves; rates that do not slow the flood.
export RINGFENCE_ANON_AUDIT_BYTES_DAY=12000 RINGFENCE_TLS_HANDSHAKE_RATE=1000 \
	RINGFENCE_TLS_HANDSHAKE_SOURCE_RATE=1000

acme_m365
ask() { # -> the HTTP status of an assertion over a new connection ("000":
	# the handshake failed)
	curl -s -o resp.json -w '%{http_code}' --cert sync.pem --key sync.key \
		--cacert root.pem -H 'Content-Type: application/json' \
		--data-binary '{"connection":"acme/m365"}' "$url/v1/assertions" || true
}
# anon FROM N: up to N anonymous full handshakes from address FROM; prints
# how many completed before the first refusal (N: none refused).
anon() {
	python3 - "$tport" "$1" "$2" <<'PY'
import socket, ssl, sys
port, src, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile="root.pem")
ctx.check_hostname = False
ok = 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), 10, (src, 0))
    try:
        t = ctx.wrap_socket(s)
        t.close()
        ok += 1
    except (ssl.SSLError, OSError):
        s.close()
        break
print(ok)
PY
}
serve_up 120
[ "$(ask)" = 200 ] || fail "the connector's first assertion: $(cat resp.json)"
n=$(anon 127.0.0.2 400)
[ "$n" -lt 400 ] || fail "400 anonymous handshakes were all signed: the day's bytes did not hold"
[ "$(anon 127.0.0.3 1)" = 0 ] || fail "an anonymous handshake after the day's bytes was signed"
[ "$(ask)" = 200 ] || fail "the connector's new handshake after an anonymous flood: $(ask)"
# (A TERM drains serve's recorder: the assertions' rows, their sources,
# are in the store once it has exited.)
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM assertions WHERE source = '127.0.0.1'")" -ge 1 ] ||
	fail "no assertion from 127.0.0.1 in the store"

# Restarted: the day's bytes from the record, the connector's source from
# the store's assertions.
serve_up 120
[ "$(anon 127.0.0.3 1)" = 0 ] || fail "after a restart, an anonymous handshake was signed"
[ "$(ask)" = 200 ] || fail "after a restart, the connector's new handshake: $(cat resp.json 2>/dev/null)"
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "serve_budget_connectors: ok"
