#!/usr/bin/env python3
"""Wire-level checks of `ringfence serve`'s plain listener, for test_http.

usage: http_wire.py PORT pipeline PATH COUNT
       http_wire.py PORT idle SECONDS
       http_wire.py PORT continue
       http_wire.py PORT http10
       http_wire.py PORT smuggle [CAFILE]   (CAFILE: over TLS, verified)
       http_wire.py TLSPORT resume CAFILE N
       http_wire.py PORT flood TLSPORT CAFILE SECONDS REQ256 REQ1
       http_wire.py PORT proofs CLIENTS SECONDS REQ1 PATH
       http_wire.py PORT audit_pipeline
       http_wire.py PORT rp SECONDS REQ1 [SOURCE]  (a relying party, timed)

Each mode exits 0 when the server behaved, or prints one line saying what
was wrong and exits 1.
"""
import socket
import ssl
import sys
import time


def fail(msg):
    print("http_wire: " + msg)
    sys.exit(1)


TLS_CA = None  # a CA file: connect() speaks TLS, verifying the server


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TLS_CA is not None:
        ctx = ssl.create_default_context(cafile=TLS_CA)
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    return s


class Reader:
    """Responses read off a socket, one at a time."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            if not self.fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        code = int(lines[0].split(" ")[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = 0
        if code >= 200 and code not in (204, 304):
            if "content-length" not in hdrs:
                fail("a %d response without Content-Length" % code)
            n = int(hdrs["content-length"])
        while len(self.buf) < n:
            if not self.fill():
                fail("connection closed inside a body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return code, hdrs, body

    def closed(self):
        try:
            return not self.fill() and self.buf == b""
        except (ConnectionResetError, ssl.SSLError):
            return True


# Request-smuggling forms (RFC 9112 6.1, 6.3, 7.1, 5.1): each must get 400
# and a closed connection; the request hidden after it is never answered.
SMUGGLE = [
    ("two different Content-Lengths",
     b"POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
     b"Content-Length: 40\r\n\r\nabcGET /healthz HTTP/1.1\r\n\r\n"),
    ("Content-Length and Transfer-Encoding",
     b"POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     b"GET /healthz HTTP/1.1\r\n\r\n"),
    ("Transfer-Encoding xchunked",
     b"POST /ocsp HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n"
     b"\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"),
    ("chunk data not followed by CRLF",
     b"POST /ocsp HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n3\r\nabcXY0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"),
    ("whitespace before a header colon",
     b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"
     b"GET /healthz HTTP/1.1\r\n\r\n"),
]


def smuggle(port):
    for name, raw in SMUGGLE:
        s = connect(port)
        r = Reader(s)
        s.sendall(raw)
        got = r.response()
        if got is None or got[0] != 400:
            fail("%s: %s, not 400" % (name, "no answer" if got is None
                                        else got[0]))
        if got[1].get("connection", "").lower() != "close":
            fail("%s: 400 without Connection: close" % name)
        if not r.closed():
            fail("%s: the connection stayed open (the request after it "
                 "would be answered)" % name)
        s.close()
    # The well-formed chunked form still works on the same listener.
    s = connect(port)
    r = Reader(s)
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
              b"chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\n\r\n")
    got = r.response()
    if got is None or got[0] != 200:
        fail("well-formed chunked POST: %s" % (got and got[0]))
    got = r.response()
    if got is None or got[2] != b"ok\n":
        fail("request after a well-formed chunked POST not answered")


def pipeline(port, path, count):
    """count GETs of path and a closing /healthz in one write; the client
    reads nothing for a while, so the server's writes block."""
    s = connect(port)
    req = ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()
    s.sendall(req * count +
              b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    time.sleep(0.5)
    r = Reader(s)
    first = None
    for i in range(count):
        got = r.response()
        if got is None:
            fail("closed after %d of %d responses" % (i, count))
        code, hdrs, body = got
        if code != 200:
            fail("response %d: status %d" % (i, code))
        if first is None:
            first = body
            if len(body) <= 16384:
                fail("body of %d bytes: too small to test" % len(body))
        elif body != first:
            fail("response %d differs from the first" % i)
    got = r.response()
    if got is None or got[0] != 200 or got[2] != b"ok\n":
        fail("no healthz answer after the pipeline")
    if got[1].get("connection", "").lower() != "close":
        fail("the last answer does not say Connection: close")
    if not r.closed():
        fail("the connection stayed open after Connection: close")


def idle(port, secs):
    """A request left unfinished, and a connection that says nothing, are
    closed after about secs seconds."""
    for what in (b"GET /healthz HTTP/1.1\r\nHo", b""):
        s = connect(port)
        if what:
            s.sendall(what)
        t0 = time.monotonic()
        s.settimeout(secs + 5)
        r = Reader(s)
        try:
            if not r.closed():
                fail("an answer to a request never finished")
        except socket.timeout:
            fail("not closed within %d s" % (secs + 5))
        dt = time.monotonic() - t0
        if dt < secs - 0.5:
            fail("closed after %.1f s, before the %d s timeout" % (dt, secs))


def expect_continue(port):
    s = connect(port)
    body = b"\x30\x03\x02\x01\x00"
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: t\r\n"
              b"Content-Type: application/ocsp-request\r\n"
              b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    r = Reader(s)
    got = r.response()
    if got is None or got[0] != 100:
        fail("no 100 Continue before the body")
    s.sendall(body)
    got = r.response()
    if got is None or got[0] != 200:
        fail("no 200 after the body")
    if got[1].get("content-type") != "application/ocsp-response":
        fail("not an OCSP response")
    # malformedRequest: OCSPResponse { responseStatus 1 }
    if got[2] != b"\x30\x03\x0a\x01\x01":
        fail("not malformedRequest: %s" % got[2].hex())


def http10(port):
    s = connect(port)
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = Reader(s)
    got = r.response()
    if got is None or got[2] != b"ok\n":
        fail("HTTP/1.0: no answer")
    if not r.closed():
        fail("HTTP/1.0 without keep-alive: connection left open")
    s = connect(port)
    r = Reader(s)
    for i in range(2):
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        got = r.response()
        if got is None or got[2] != b"ok\n":
            fail("HTTP/1.0 keep-alive: no answer %d" % i)
        if got[1].get("connection", "").lower() != "keep-alive":
            fail("HTTP/1.0 keep-alive: not said back")


def tls_get(port, ctx, session=None):
    """One HTTPS GET /healthz; the TLS socket's session and reuse flag."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    got = Reader(s).response()
    if got is None or got[2] != b"ok\n":
        fail("HTTPS healthz: no answer")
    sess, reused = s.session, s.session_reused
    s.close()
    return sess, reused


def resume(port, cafile, n):
    """A client returning with its session ticket resumes, n times."""
    ctx = ssl.create_default_context(cafile=cafile)
    sess, _ = tls_get(port, ctx)
    for i in range(n):
        sess2, reused = tls_get(port, ctx, sess)
        if not reused:
            fail("connection %d with a ticket was a full handshake" % i)
        sess = sess2 or sess


def ocsp_status(body):
    """OCSPResponse responseStatus (RFC 6960 4.2.1), or -1."""
    i = 1
    if len(body) < 5 or body[0] != 0x30:
        return -1
    i += 1 + (body[1] & 0x7f if body[1] & 0x80 else 0)
    if body[i:i + 2] != b"\x0a\x01":
        return -1
    return body[i + 2]


def ocsp_post(s, r, der):
    """The answer's responseStatus; 100 for a successful pre-signed one
    (it has an ETag; one signed on demand has none)."""
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Type: "
              b"application/ocsp-request\r\nContent-Length: %d\r\n\r\n"
              % len(der) + der)
    got = r.response()
    if got is None or got[0] != 200:
        return -1
    v = ocsp_status(got[2])
    return 100 if v == 0 and "etag" in got[1] else v


def flood(port, tport, cafile, secs, req256, req1):
    """From 127.0.0.1: TLS handshakes and SHA-256-CertID OCSP requests as
    fast as they go for secs; from 127.0.0.2, meanwhile, a relying party's
    SHA-1 OCSP requests, timed. Prints one JSON line of counts."""
    import json
    import threading
    der256 = open(req256, "rb").read()
    der1 = open(req1, "rb").read()
    end = time.monotonic() + secs
    st = {"tls_ok": 0, "tls_refused": 0, "ocsp_signed": 0,
          "ocsp_presigned": 0, "ocsp_trylater": 0, "ocsp_other": 0,
          "rp_ok": 0, "rp_bad": 0}
    lat = []
    lock = threading.Lock()

    def bump(k):
        with lock:
            st[k] += 1

    others = {}

    def bump_other(v):
        with lock:
            others[str(v)] = others.get(str(v), 0) + 1

    # RF_WIRE_SOURCES="127.0.0.1,127.0.0.3": the flood's source addresses,
    # in turn (the bench floods from many sources to reach the global
    # budget).
    import os
    srcs = os.environ.get("RF_WIRE_SOURCES", "127.0.0.1").split(",")
    turn = [0]

    def source():
        with lock:
            turn[0] += 1
            return srcs[turn[0] % len(srcs)]

    def tls_loop():
        ctx = ssl.create_default_context(cafile=cafile)
        while time.monotonic() < end:
            try:
                raw = socket.create_connection(("127.0.0.1", tport),
                                               timeout=10,
                                               source_address=(source(), 0))
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                s.close()
                bump("tls_ok")
            except (ssl.SSLError, OSError):
                bump("tls_refused")

    def ocsp_loop():
        while time.monotonic() < end:
            s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                         source_address=(source(), 0))
            r = Reader(s)
            for _ in range(20):  # 20 requests a connection, then another
                v = ocsp_post(s, r, der256)
                k = ("ocsp_signed" if v == 0 else
                     "ocsp_presigned" if v == 100 else
                     "ocsp_trylater" if v == 3 else "ocsp_other")
                bump(k)
                if k == "ocsp_other":  # which: -1 no HTTP 200, else status
                    bump_other(v)
                if v < 0 or time.monotonic() >= end:
                    break
            s.close()

    def rp_loop():
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        r = Reader(s)
        while time.monotonic() < end:
            t0 = time.monotonic()
            v = ocsp_post(s, r, der1)
            lat.append(time.monotonic() - t0)
            bump("rp_ok" if v == 100 else "rp_bad")
            time.sleep(0.02)

    th = [threading.Thread(target=f) for f in
          (tls_loop, tls_loop, ocsp_loop, ocsp_loop, rp_loop)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    lat.sort()
    st["rp_p99_ms"] = round(1000 * lat[int(len(lat) * 0.99) - 1], 2) \
        if lat else -1
    if others:
        st["ocsp_other_kinds"] = others
    print(json.dumps(st))


def proofs(port, clients, secs, req1, path):
    """clients connections ask PATH (an /audit route) back to back for
    secs while one relying party asks OCSP (pre-signed) every 10 ms. Prints
    one JSON line: answers by status, Retry-After on every 503, OCSP
    answers and their p99."""
    import json
    import threading
    der1 = open(req1, "rb").read()
    end = time.monotonic() + secs
    st = {"proof_200": 0, "proof_503": 0, "proof_other": 0,
          "busy_without_retry_after": 0, "ocsp_ok": 0, "ocsp_bad": 0}
    lat = []
    lock = threading.Lock()
    others = {}  # what each other answer was: a status, or "closed"

    def bump(k, why=None):
        with lock:
            st[k] += 1
            if why is not None:
                others[why] = others.get(why, 0) + 1

    def proof_loop():
        s = connect(port)
        r = Reader(s)
        while time.monotonic() < end:
            s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                       % path).encode())
            got = r.response()
            if got is None:
                bump("proof_other", "closed")
                s = connect(port)
                r = Reader(s)
                continue
            if got[0] == 503:
                bump("proof_503")
                if got[1].get("retry-after") is None:
                    bump("busy_without_retry_after")
            elif got[0] == 200:
                bump("proof_200")
            else:
                bump("proof_other", str(got[0]))

    def rp_loop():
        got, bad = timed_ocsp(port, der1, end)
        lat.extend(got)
        with lock:
            st["ocsp_ok"] += len(got) - bad
            st["ocsp_bad"] += bad

    th = [threading.Thread(target=proof_loop) for _ in range(clients)]
    th.append(threading.Thread(target=rp_loop))
    for t in th:
        t.start()
    for t in th:
        t.join()
    lat.sort()
    st["ocsp_p99_ms"] = round(1000 * lat[int(len(lat) * 0.99) - 1], 2) \
        if lat else -1
    if others:
        st["proof_other_kinds"] = others
    print(json.dumps(st))


def timed_ocsp(port, der1, end, source=None):
    """A relying party on one connection until end (from source, an
    address of this host, if given): the pre-signed OCSP request der1
    every 10 ms, each timed. Returns (latencies, bad)."""
    def rp_connect():
        if source is None:
            return connect(port)
        c = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(source, 0))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c
    lat = []
    bad = 0
    s = rp_connect()
    r = Reader(s)
    while time.monotonic() < end:
        t0 = time.monotonic()
        v = ocsp_post(s, r, der1)
        lat.append(time.monotonic() - t0)
        if v != 100:
            bad += 1
            if v < 0:
                s = rp_connect()
                r = Reader(s)
        time.sleep(0.01)
    return lat, bad


def rp(port, secs, req1, source=None):
    """One relying party (timed_ocsp) for secs. Prints one JSON line:
    answers, bad answers and the latency's p50, p99 and maximum in ms. Its
    own process, so that no load generator shares its interpreter."""
    import json
    lat, bad = timed_ocsp(port, open(req1, "rb").read(),
                          time.monotonic() + secs, source)
    lat.sort()

    def q(f):
        return round(1000 * lat[max(0, int(len(lat) * f) - 1)], 2) \
            if lat else -1
    print(json.dumps({"ocsp": len(lat), "ocsp_bad": bad, "p50_ms": q(0.5),
                      "p99_ms": q(0.99), "max_ms": q(1.0)}))


def audit_pipeline(port):
    """Pool and worker answers pipelined on one connection, in one write:
    they come back in the order asked."""
    s = connect(port)
    s.sendall(b"GET /audit/proof?leaf=3 HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /audit/consistency?old=2&new=10 HTTP/1.1\r\nHost: t\r\n"
              b"\r\nHEAD /audit/sth HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close"
              b"\r\n\r\n")
    r = Reader(s)
    want = [b'"audit_path"', b"ok\n", b'"consistency"', None, b"ok\n"]
    for i, w in enumerate(want):
        if w is None:  # HEAD: a head with Content-Length, no body
            while b"\r\n\r\n" not in r.buf:
                if not r.fill():
                    fail("answer %d missing" % i)
            head, r.buf = r.buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200") or \
                    b"Content-Length:" not in head:
                fail("HEAD /audit/sth: %r" % head[:40])
            continue
        got = r.response()
        if got is None or got[0] != 200 or w not in got[2]:
            fail("answer %d out of order or wrong: %r" %
                 (i, got and got[2][:40]))
    if not r.closed():
        fail("the connection stayed open after Connection: close")


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "pipeline":
        pipeline(port, sys.argv[3], int(sys.argv[4]))
    elif mode == "idle":
        idle(port, int(sys.argv[3]))
    elif mode == "continue":
        expect_continue(port)
    elif mode == "http10":
        http10(port)
    elif mode == "resume":
        resume(port, sys.argv[3], int(sys.argv[4]))
    elif mode == "flood":
        flood(port, int(sys.argv[3]), sys.argv[4], float(sys.argv[5]),
              sys.argv[6], sys.argv[7])
    elif mode == "proofs":
        proofs(port, int(sys.argv[3]), float(sys.argv[4]), sys.argv[5],
               sys.argv[6])
    elif mode == "audit_pipeline":
        audit_pipeline(port)
    elif mode == "rp":
        rp(port, float(sys.argv[3]), sys.argv[4],
           sys.argv[5] if len(sys.argv) > 5 else None)
    elif mode == "smuggle":
        global TLS_CA
        TLS_CA = sys.argv[3] if len(sys.argv) > 3 else None
        smuggle(port)
    else:
        fail("unknown mode " + mode)


main()
