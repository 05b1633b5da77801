#!/usr/bin/env bash
# Visibility (issue 14 item 5): N issuances and N revocations against a
# running `ringfence serve`; right after each command returns, one OCSP
# query for its serial. Prints the share of first answers that are right
# (good after issue, revoked after revoke) and the lag p50/p99 from the
# command's return to the first right answer.
# usage: bench/visibility.sh BUILD_DIR [N]   (RINGFENCE_HOME: a temp folder)
# Exit status 1 when a first answer was wrong.
set -euo pipefail
build=${1:?usage: bench/visibility.sh BUILD_DIR [N]}
n=${2:-1000}
rfbin=$(cd "$build" && pwd)/ringfence
home=$(mktemp -d "${TMPDIR:-/tmp}/rf-vis.XXXXXX")
server=""
cleanup() {
	rc=$?
	# What serve said, when the run failed.
	[ "$rc" = 0 ] || [ ! -s "$home/serve.log" ] || { echo "serve.log:"; tail -20 "$home/serve.log"; } >&2
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	# The custody process the commands started, by its pid file.
	"$rfbin" keyd stop >/dev/null 2>&1 || true
	rm -rf "$home" "$home-custody"
}
trap cleanup EXIT
export RINGFENCE_HOME=$home
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
unset RINGFENCE_NOW || true
"$rfbin" init >/dev/null 2>&1
"$rfbin" tenant add acme >/dev/null
"$rfbin" cert ca issuing >"$home/issuing.pem"
# A port below the ephemeral range (where other connections' source
# ports are not), and another one if serve finds it taken anyway.
lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
for _ in 1 2 3 4 5; do
	port=$((10000 + RANDOM % (lo - 10000)))
	"$rfbin" serve --port "$port" --duration 3600 2>"$home/serve.log" &
	server=$!
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
		kill -0 "$server" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$server" 2>/dev/null && break
	wait "$server" 2>/dev/null || true
	server=""
done
[ -n "$server" ] && [ -S "$home/serve.sock" ] || { echo "serve.sock missing"; exit 1; }
# The loop in Python: each command as a process, then OCSP over one
# keep-alive HTTP connection, so that the lag is the server's, not a
# client's start-up.
python3 - "$rfbin" "$home/issuing.pem" "$port" "$n" <<'PY'
import hashlib, http.client, subprocess, sys, time
rfbin, issuer_pem, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b

def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body

def read(b, i):
    tag, l = b[i], b[i + 1]
    i += 2
    if l & 0x80:
        k = l & 0x7f
        l = int.from_bytes(b[i:i + k], "big")
        i += k
    return tag, i, i + l  # tag, content start, end

# Issuer name and key hashes (RFC 6960 4.1.1), from the CA certificate.
der = subprocess.run(["openssl", "x509", "-in", issuer_pem, "-outform", "DER"],
                     capture_output=True, check=True).stdout
_, c, _ = read(der, 0)          # Certificate
_, t, tend = read(der, c)       # TBSCertificate
i = t
fields = []
while i < tend:
    tag, s0, e0 = read(der, i)
    fields.append((tag, i, s0, e0))
    i = e0
off = 1 if fields[0][0] == 0xa0 else 0
subj = fields[off + 4]
spki = fields[off + 5]
name_hash = hashlib.sha1(der[subj[1]:subj[3]]).digest()
_, a0, a1 = read(der, spki[2])             # algorithm
_, k0, k1 = read(der, a1)                  # BIT STRING
key_hash = hashlib.sha1(der[k0 + 1:k1]).digest()
sha1 = tlv(0x30, tlv(0x06, bytes.fromhex("2b0e03021a")) + b"\x05\x00")

def request(serial_hex):
    v = int(serial_hex, 16)
    sb = v.to_bytes((v.bit_length() + 8) // 8, "big")
    certid = tlv(0x30, sha1 + tlv(0x04, name_hash) + tlv(0x04, key_hash) + tlv(0x02, sb))
    return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, certid))))

def ask(serial_hex):
    conn.request("POST", "/ocsp", request(serial_hex), {"Content-Type": "application/ocsp-request"})
    return conn.getresponse().read()

def status(serial_hex):
    # serve closes a keep-alive connection idle for 10 s (a slow command
    # under a loaded test machine): ask again once on a new one, as any
    # client does. A serve that is gone fails the new connection.
    try:
        b = ask(serial_hex)
    except (ConnectionError, http.client.HTTPException) as e:
        print("visibility: serve closed the connection (%s): asking on a new one"
              % e.__class__.__name__, file=sys.stderr)
        conn.close()
        b = ask(serial_hex)
    _, i, _ = read(b, 0)
    _, s0, s1 = read(b, i)
    if b[s0] != 0:
        return "status%d" % b[s0]      # 6: unauthorized
    # responseBytes [0] { type, OCTET STRING { BasicOCSPResponse } }
    _, r0, _ = read(b, s1)
    _, q0, _ = read(b, r0)             # SEQUENCE
    _, o0, o1 = read(b, q0)            # responseType OID
    _, x0, _ = read(b, o1)             # OCTET STRING
    _, y0, _ = read(b, x0)             # BasicOCSPResponse
    _, d0, d1 = read(b, y0)            # tbsResponseData
    i = d0
    if b[i] == 0xa0:
        i = read(b, i)[2]              # version
    i = read(b, i)[2]                  # responderID
    i = read(b, i)[2]                  # producedAt
    _, l0, _ = read(b, i)              # responses
    _, g0, _ = read(b, l0)             # SingleResponse
    st = read(b, g0)[2]                # after certID
    return {0x80: "good", 0xa1: "revoked", 0x82: "unknown"}.get(b[st], "?")

conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

def probe(serial, want):
    t0 = time.monotonic()
    first = None
    while True:
        st = status(serial)
        if first is None:
            first = st
        if st == want:
            return first == want, (time.monotonic() - t0) * 1000, first
        if time.monotonic() - t0 > 10:
            return False, 10000.0, first

res = {"issue": [], "revoke": []}
serials = []
for _ in range(n):
    out = subprocess.run([rfbin, "issue", "--tenant", "acme", "--profile", "client",
                          "--keygen", "ec-p256", "--out", "/dev/null"],
                         capture_output=True, text=True, check=True)
    s = [l.split(": ", 1)[1] for l in (out.stdout + out.stderr).splitlines() if l.startswith("serial: ")][0]
    res["issue"].append(probe(s, "good"))
    serials.append(s)
for s in serials:
    subprocess.run([rfbin, "revoke", s, "--reason", "keyCompromise"], capture_output=True, check=True)
    res["revoke"].append(probe(s, "revoked"))
bad = 0
for kind, r in res.items():
    lags = sorted(x[1] for x in r)
    right = sum(1 for x in r if x[0])
    wrong = [x[2] for x in r if not x[0]]
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    print("visibility %-6s n=%d first answer right: %d/%d (%.1f%%)  lag p50 %.1f ms  p99 %.1f ms%s"
          % (kind, len(r), right, len(r), 100.0 * right / len(r), p(0.5), p(0.99),
             ("  wrong first answers: %s" % sorted(set(wrong))) if wrong else ""))
    bad += len(r) - right
sys.exit(1 if bad else 0)
PY
