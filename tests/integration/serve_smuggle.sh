#!/usr/bin/env bash
# Request smuggling (issue 13 item 10): both listeners read requests with
# the same reader and limits, so each smuggling form gets 400 and a closed
# connection on plain HTTP and on HTTPS alike: two different
# Content-Lengths, Content-Length with Transfer-Encoding, Transfer-Encoding
# "xchunked", chunk data followed by other bytes than CRLF, and "Host : x".
# A well-formed chunked request still works on both (tests/unit/
# http_wire.py smuggle). The server listens on 127.0.0.1, is bounded by
# --duration and is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" smuggle
export RINGFENCE_TOKENS=2
h=$RINGFENCE_HOME
wire="$here/../unit/http_wire.py"
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rf init >/dev/null 2>&1
for _ in 1 2 3 4 5; do
	port=$(freeport)
	tport=$(freeport)
	[ "$port" != "$tport" ] || continue
	"$RINGFENCE" serve --port "$port" --tls-port "$tport" --duration 60 \
		2>"$h/serve.log" &
	server=$!
	for _ in $(seq 100); do
		curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
done
[ -n "$server" ] || fail "server did not start: $(cat "$h/serve.log")"
rf cert ca root >"$h/root.pem"

python3 "$wire" "$port" smuggle || fail "plain listener"
python3 "$wire" "$tport" smuggle "$h/root.pem" || fail "TLS listener"
# And curl's view of the TLS listener: one normal request still works.
[ "$(curl -sf --cacert "$h/root.pem" "https://127.0.0.1:$tport/healthz")" = ok ] ||
	fail "HTTPS healthz"
kill "$server"
wait "$server" 2>/dev/null || true
server=""
echo "serve_smuggle: every smuggling form refused with 400 on both listeners"
