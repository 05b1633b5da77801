#!/usr/bin/env bash
# One source cannot take every connection serve holds (conns_per_source,
# docs/serve.md "Limits"): serve holds as many connections as it has file
# descriptors, and one address that opened them all (each dropped after
# 10 s idle, and opened again) kept every relying party out. With
# conns_per_source = 20: 20 idle connections from 127.0.0.2 are held, the
# 21st is closed at once, while 127.0.0.3 is still served; once those 20
# close, 127.0.0.2 is served again.
# serve listens on 127.0.0.1 only (the other addresses are its loopback's
# sources), is bounded by --duration and stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" conns-per-source
. "$here/lib/connector.sh" serve_conns_per_source
export RINGFENCE_CONNS_PER_SOURCE=20
if RINGFENCE_CONNS_PER_SOURCE=-1 rf tenant list >/dev/null 2>err; then
	fail "conns_per_source=-1 was accepted"
fi
rf init >/dev/null
serve_up 60
python3 - "$port" <<'PY' || fail "connections per source"
import socket, sys, time
port = int(sys.argv[1])
def conn(src):
    return socket.create_connection(("127.0.0.1", port), 5, (src, 0))
def served(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    s.settimeout(5)
    try:
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
held = [conn("127.0.0.2") for _ in range(20)]
time.sleep(0.3)  # accepted by now
extra = conn("127.0.0.2")
assert not served(extra), "the 21st connection of one source was served"
other = conn("127.0.0.3")
assert served(other), "another source was not served"
assert served(held[0]), "a held connection of the first source was not served"
for s in held:
    s.close()
time.sleep(0.3)
again = conn("127.0.0.2")
assert served(again), "the first source was not served once its connections closed"
PY
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
echo "serve_conns_per_source: ok"
