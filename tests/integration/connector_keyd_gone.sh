#!/usr/bin/env bash
# Assertions on connections kept alive while keyd goes away and comes back
# (issues 11 and 12). serve's workers ask keyd for an assertion's signature
# on keyd connections of their own (http/api.c) and wait for the answer as
# one more event. This checks what that must keep true:
#  - many assertions at once, over several kept-alive connections, are all
#    answered and verify (each worker's keyd connections in turn);
#  - kill -9 of keyd: the next assertion on a live connection is answered
#    at once with a JSON error (no hang, nothing signed), serve stays up
#    and answers OCSP from memory;
#  - keyd started again: the same connections get assertions again, which
#    verify, without a new TLS handshake.
# serve listens on 127.0.0.1 only, is bounded by --duration and stopped by
# its PID; keyd by the PID in keyd.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-gone
. "$here/lib/connector.sh" connector_keyd_gone
export RINGFENCE_CONN_RATE=0 RINGFENCE_CONNECTOR_RATE=0
# keyd stays gone until the test starts it (serve would start it again:
# serve_keyd_restart.sh).
export RINGFENCE_KEYD_RESTART=0

rf init >/dev/null
rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
entra_cred acme/m365 cred
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout c.key -out c.csr -subj /CN=sync 2>/dev/null
rf connector add sync --csr c.csr --out c.pem >/dev/null
rf connector bind sync acme/m365 >/dev/null
serve_up 180
sigs() {
	sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" \
		"SELECT count(*) FROM audit_leaf WHERE type = 'sign' AND
		 json_extract(CAST(data AS TEXT), '\$.what') = 'assertion'"
}

# The client: N connections kept alive, driven by commands on stdin
# ("ask K": K rounds of one assertion on every connection at once; each
# line out: "round status assertion-or-error"). Each request has 20 s.
mkfifo cmd
: >client.out # appended to: the steps below empty it
python3 - "$tport" 6 >>client.out 2>client.err <<'PY' &
import http.client, json, ssl, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile="root.pem")
ctx.check_hostname = False
ctx.load_cert_chain("c.pem", "c.key")
conns = [http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
         for _ in range(n)]
body = json.dumps({"connection": "acme/m365"})
def one(c, out, i):
    try:
        c.request("POST", "/v1/assertions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        d = json.loads(r.read())
        out[i] = "%d %s" % (r.status, d.get("assertion") or d.get("error"))
    except Exception as e:
        out[i] = "0 %s" % type(e).__name__
for line in open("cmd"):
    k = int(line.split()[1])
    for rnd in range(k):
        out = [None] * n
        ts = [threading.Thread(target=one, args=(c, out, i)) for i, c in enumerate(conns)]
        for t in ts: t.start()
        for t in ts: t.join()
        for o in out: print(rnd, o, flush=True)
    print("done", flush=True)
PY
client=$!
exec 3>cmd
# ask K: K rounds on every connection, then the lines they printed.
ask() {
	local before
	before=$(grep -c '^done' client.out || true)
	echo "ask $1" >&3
	for _ in $(seq 600); do
		[ "$(grep -c '^done' client.out || true)" -gt "$before" ] && return 0
		sleep 0.05
	done
	fail "the client did not finish: $(tail -3 client.out) $(cat client.err)"
}

# 1. Many at once: every answer 200, each assertion verifies.
ask 5
[ "$(grep -c '^[0-9]* 200 ' client.out)" -eq 30 ] ||
	fail "assertions at once: $(grep -v ' 200 ' client.out | head -3)"
# (awk picks them: a "| head" ends the pipeline early, and pipefail would
# take the writer's SIGPIPE for a failure)
for jwt in $(awk '$2 == 200 && n++ < 6 { print $3 }' client.out); do
	$rp "$jwt" "$TID" "$CID" seen cred.pem >/dev/null ||
		fail "relying party refused an assertion"
done
n0=$(sigs)
: >client.out

# 2. keyd killed: answered at once with a JSON error, nothing signed, serve up.
keyd_kill9
t0=$(date +%s%N)
ask 1
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt 5000 ] ||
	fail "answers took $(((t1 - t0) / 1000000)) ms with keyd gone"
[ "$(grep -c '^0 5[0-9][0-9] internal$' client.out)" -eq 6 ] ||
	fail "with keyd gone: $(cat client.out)"
kill -0 "$server" || fail "serve exited when keyd went away"
# serve answers, and its health check says keyd is down.
[ "$(curl -s -m 5 -o health.txt -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 503 ] &&
	grep -q "^keyd down" health.txt || fail "serve does not answer with keyd gone: $(cat health.txt)"
curl -sf -m 5 -o crl.der "http://127.0.0.1:$port/crl/issuing.crl" ||
	fail "serve does not answer its CRL with keyd gone"
# A new connector connection cannot be signed for: ringfence assert says
# the server failed, not that the connector's files are wrong.
if rf assert --connection acme/m365 --cert c.pem --key c.key --ca root.pem \
	--url "$url" >/dev/null 2>err; then
	fail "an assertion with keyd gone"
fi
[ "$(wc -l <err)" -eq 1 ] && grep -q "the server could not complete the handshake" err ||
	fail "assert with keyd gone: $(cat err)"
: >client.out

# 3. keyd back: the same connections get verifying assertions again.
"$RINGFENCE" keyd >keyd.log 2>&1 3>&- &
for _ in $(seq 300); do
	rf keyd status >/dev/null 2>&1 && break
	sleep 0.05
done
rf keyd status >/dev/null 2>&1 || fail "keyd did not start: $(cat keyd.log)"
ask 3
[ "$(grep -c '^[0-9]* 200 ' client.out)" -eq 18 ] ||
	fail "with keyd back: $(grep -v ' 200 ' client.out | head -3)"
jwt=$(awk '$1 == 2 && $2 == 200 { print $3; exit }' client.out)
$rp "$jwt" "$TID" "$CID" seen cred.pem >/dev/null ||
	fail "relying party refused an assertion after keyd came back"
[ $(($(sigs) - n0)) -eq 18 ] || fail "signatures: $(($(sigs) - n0)), not 18"
exec 3>&-
wait "$client" || fail "client: $(cat client.err)"

kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_keyd_gone: ok"
