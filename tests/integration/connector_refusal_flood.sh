#!/usr/bin/env bash
# A flood of refused API requests cannot grow the audit record without
# bound (issue 11 item 2, issue 12 item 4). Anyone with a client
# certificate of ringfence's CA (a connector certificate revoked after a
# theft, a connector asking for a connection it is not bound to) is
# refused, and every refusal was a leaf: 300 refusals, 300 leaves. Now at
# most 120 refusals a minute are recorded one by one, and 60 of one
# certificate, so that one flood leaves the other connectors' refusals
# recorded; the rest are counted, and the count is written in one leaf
# when the minute is over or serve stops. The refusals stay answered, and
# the bound connector is served meanwhile. The server listens on 127.0.0.1
# only, is bounded by --duration and stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-refusal-flood
. "$here/lib/connector.sh" connector_refusal_flood
N=300

rf init >/dev/null 2>&1
rf tenant add acme >/dev/null
rf tenant add globex >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
rf connector entra globex/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
entra_cred acme/m365 cred-acme
entra_cred globex/m365 cred-globex
for c in sync arch; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$c.key" -out "$c.csr" -subj "/CN=$c" 2>/dev/null
	rf connector add "$c" --csr "$c.csr" --out "$c.pem" >/dev/null
done
rf connector bind sync acme/m365 >/dev/null
rf connector bind arch globex/m365 >/dev/null

db() { sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" "$1"; }
refusals() { # the leaves of the API's refusals, and their details
	db "SELECT json_extract(CAST(data AS TEXT), '\$.detail') FROM audit_leaf
	    WHERE type = 'refuse' ORDER BY idx"
}
serve_up 120

# arch asks for acme/m365, which it is not bound to, N times on one
# keep-alive connection: every answer is 403 not_bound.
python3 - "$tport" "$N" >flood.out <<'PY' || fail "flood client: $(cat flood.out)"
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile="root.pem")
ctx.load_cert_chain("arch.pem", "arch.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                    server_hostname="localhost")
body = b'{"connection":"acme/m365"}'
req = (b"POST /v1/assertions HTTP/1.1\r\nHost: t\r\n"
       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
       % (len(body), body))
buf, codes = b"", {}
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("closed")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    code = lines[0].split(" ")[1]
    cl = [int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length:")][0]
    while len(buf) < cl:
        buf += s.recv(65536)
    body_, buf = buf[:cl], buf[cl:]
    k = code + (" not_bound" if b'"not_bound"' in body_ else "")
    codes[k] = codes.get(k, 0) + 1
print(" ".join("%s=%d" % kv for kv in sorted(codes.items())))
PY
[ "$(cat flood.out)" = "403 not_bound=$N" ] ||
	fail "the refused requests were not all answered 403 not_bound: $(cat flood.out)"

# The bound connector is served meanwhile.
code=$(curl -s -o ok.json -w '%{http_code}' --cert sync.pem --key sync.key \
	--cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")
[ "$code" = 200 ] && grep -q '"assertion"' ok.json ||
	fail "the bound connector was not served beside the flood: $code $(cat ok.json)"

# Another connector's refusal, right after the flood, is recorded one by
# one: the flood spent its certificate's share, not the minute's.
code=$(curl -s -o no.json -w '%{http_code}' --cert sync.pem --key sync.key \
	--cacert root.pem -d '{"connection":"globex/m365"}' "$url/v1/assertions")
[ "$code" = 403 ] && grep -q '"not_bound"' no.json ||
	fail "sync asking for globex/m365: $code $(cat no.json)"

# The recorder writes after the answers, in the order they were queued:
# once sync's refusal (queued before its answer, after every one of
# arch's) has its leaf, arch's are all written.
for _ in $(seq 200); do
	refusals | grep -q "^not_bound: connection globex/m365 connector sync " && break
	sleep 0.1
done
one=$(refusals | grep -c "^not_bound: connection acme/m365 connector arch " || true)
# 60 of one certificate a minute; the flood may straddle a minute's end
# (two minutes' worth and the first minute's count).
[ "$one" -ge 60 ] && [ "$one" -le 120 ] ||
	fail "$one of arch's refusals recorded one by one during a flood of $N (at most 60 a minute)"
refusals | grep -q "^not_bound: connection globex/m365 connector sync " ||
	fail "sync's refusal was not recorded (in 20 s) beside arch's flood: $(refusals | tail -3)"

# serve stops: the count of those not recorded one by one is written.
kill -TERM "$server"
wait "$server" || fail "serve did not stop cleanly"
refusals >leaves.txt
counted=$(sed -n 's/^\([0-9]*\) more refusals in the minute from [-0-9T:Z]*, not recorded one by one.*/\1/p' leaves.txt |
	awk '{ s += $1 } END { print s + 0 }')
one=$(grep -c "^not_bound: " leaves.txt || true)
[ $((one + counted)) -eq $((N + 1)) ] ||
	fail "$one refusals recorded and $counted counted, not $((N + 1)): $(tail -3 leaves.txt)"
grep "not recorded one by one" leaves.txt |
	grep -q "(at most 120 a minute are, 60 of one): certificate [0-9a-f]* [0-9]*" ||
	fail "the count does not name the certificate that was refused: $(grep 'not recorded' leaves.txt)"
[ "$(wc -l <leaves.txt)" -le 124 ] || fail "$(wc -l <leaves.txt) refusal leaves for $((N + 1)) refusals"
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_refusal_flood: ok ($one recorded, $counted counted)"
