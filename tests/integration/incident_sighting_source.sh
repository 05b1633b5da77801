#!/usr/bin/env bash
# Issue 13 item 6: an anonymous OCSP query for a serial under an incident
# is recorded as a sighting with its source address (the accepted socket's
# peer, IPv4 and IPv6), shown by `incident status` (text and --json), and a
# query for the old serial after re-establishment adds a leaf whose source
# names that address. A flood of them is counted, within a budget of
# leaves, and holds nothing (the close goes through).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" sighting
w=$RINGFENCE_HOME

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 3 3 >/dev/null
id=$(rf incident open --scope issuer:issuing --reason "sighting test" 2>/dev/null | head -1)
rf incident contain "$id" >/dev/null
rf incident report "$id" --out "$w/report" >/dev/null
read -r tenant old new < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["connections_detail"][0]
print(c["tenant"], c["old_serial"], c["new_serial"])' "$w/report.json")
rf cert show "$old" >"$w/old.pem"
rf cert show "$new" >"$w/new.pem"
rf cert ca issuing --replaced >"$w/old-issuer.pem"
rf cert ca "$(python3 -c "import json; print(json.load(open('$w/report.json'))['new_issuer'])")" \
	>"$w/new-issuer.pem"

freeport() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
# serve_on ADDR: serve listening on ADDR ($server, $port, $url its /ocsp).
serve_on() {
	port=$(freeport "$1")
	url="http://$1:$port/ocsp"
	case $1 in *:*) url="http://[$1]:$port/ocsp" ;; esac
	"$RINGFENCE" serve --listen "$1" --port "$port" --duration 60 \
		2>>"$w/serve.log" &
	server=$!
	for _ in $(seq 100); do
		curl -sf -m 2 -o /dev/null "${url%/ocsp}/healthz" && break
		sleep 0.1
	done
}
# serve_off: stopped; its last evidence pass, once its workers have
# stopped, hands the store what they noted.
serve_off() {
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=""
}
# serve on ADDR, one OCSP query for CERT (issued by ISSUER).
query() {
	local addr=$1 cert=$2 issuer=$3
	serve_on "$addr"
	openssl ocsp -issuer "$issuer" -cert "$cert" -url "$url" -no_nonce \
		-noverify >"$w/o" 2>&1 || { cat "$w/o" "$w/serve.log"; fail "OCSP on $addr"; }
	grep -qE ': (good|revoked)' "$w/o" || fail "OCSP on $addr: $(cat "$w/o")"
	serve_off
}

query 127.0.0.1 "$w/old.pem" "$w/old-issuer.pem"
query ::1 "$w/new.pem" "$w/new-issuer.pem"

rf incident status "$id" >"$w/status.txt"
grep -q "old serial $old from 127.0.0.1:" "$w/status.txt" ||
	fail "status does not show the IPv4 source: $(cat "$w/status.txt")"
grep -q "new serial $new from ::1:" "$w/status.txt" ||
	fail "status does not show the IPv6 source: $(cat "$w/status.txt")"
# Times for people: ISO 8601 UTC, not Unix seconds.
grep -Eq "old serial $old from 127.0.0.1: [0-9]+ quer(y|ies), last at 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z" "$w/status.txt" ||
	fail "status does not show the sighting's time in ISO 8601: $(cat "$w/status.txt")"
rf incident status "$id" --json >"$w/status.json"
python3 - "$w/status.json" "$old" "$new" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
got = {(g["serial"], g["credential"], g["source"]) for g in s["sighting_list"]}
want = {(sys.argv[2], "old", "127.0.0.1"), (sys.argv[3], "new", "::1")}
assert got == want, ("sightings", got, want)
assert s["sightings"] == 2 and s["reestablished"] == 0, s
PY

# After re-establishment, the old serial again: a sighting to look at,
# and a leaf naming the anonymous client by its address.
rf incident confirm "$id" --tenant "$tenant" >/dev/null
query 127.0.0.1 "$w/old.pem" "$w/old-issuer.pem"
rf incident status "$id" --json >"$w/status2.json"
python3 - "$w/status2.json" "$old" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
g = [g for g in s["sighting_list"] if g["serial"] == sys.argv[2]]
assert len(g) == 1 and g[0]["source"] == "127.0.0.1" and g[0]["count"] == 2, g
assert g[0]["after_reestablished"] and not g[0]["acked"], g
assert s["sightings_unacked"] == 1, s
PY
rf audit export | python3 -c '
import json, sys
for line in sys.stdin:
    x = json.loads(line)
    if x.get("kind") != "leaf":
        continue
    e = json.loads(bytes.fromhex(x["data_hex"]))
    if e.get("what") == "sighting":
        assert e.get("source") == "ocsp 127.0.0.1", e
        assert e.get("ref") == sys.argv[1], e
        sys.exit(0)
sys.exit("no sighting leaf in the record")' "$old"
# A flood of anonymous queries for the old serial, 2,000 from one client
# over one connection and one each from 100 more addresses: counted in
# the rows, a leaf for the first of each source only within the budget (60
# a minute, 10 of one source), and nothing that holds close. Before, each
# query was a leaf (2,100 more), and a query after 'incident ack' kept
# the incident from closing, for whoever sent it.
leaves() {
	rf audit export | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    x = json.loads(line)
    if x.get("kind") == "leaf" and json.loads(bytes.fromhex(x["data_hex"])).get("what") == "sighting":
        n += 1
print(n)'
}
l0=$(leaves)
rf incident ack "$id" >/dev/null
serve_on 127.0.0.1
openssl ocsp -issuer "$w/old-issuer.pem" -cert "$w/old.pem" -no_nonce \
	-reqout "$w/old.der" >/dev/null 2>&1
m0=$(date -u +%Y%m%d%H%M)
python3 - "$port" "$w/old.der" <<'PY' || fail "the flood of OCSP queries"
import http.client, socket, sys
port, req = int(sys.argv[1]), open(sys.argv[2], "rb").read()
hdr = {"Content-Type": "application/ocsp-request"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for _ in range(2000):
    c.request("POST", "/ocsp", req, hdr)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
for i in range(100):
    s = socket.create_connection(("127.0.0.1", port), 10, ("127.0.1.%d" % (i + 1), 0))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.sock = s
    c.request("POST", "/ocsp", req, hdr)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    c.close()
PY
serve_off
m1=$(date -u +%Y%m%d%H%M)
l1=$(leaves)
# 60 in one minute; across a minute's end, a budget each (at most the
# 100 first queries, and a count leaf).
if [ "$m0" = "$m1" ]; then
	[ $((l1 - l0)) -eq 60 ] ||
		fail "the flood added $((l1 - l0)) sighting leaves, not the budget's 60"
else
	[ $((l1 - l0)) -ge 60 ] && [ $((l1 - l0)) -le 101 ] ||
		fail "the flood added $((l1 - l0)) sighting leaves (across a minute's end)"
fi
rf incident status "$id" --json >"$w/status3.json"
python3 - "$w/status3.json" "$old" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
# The 100 new sources, unacknowledged; the flood counted in its own row.
assert s["sightings_unacked"] == 100 and s["sightings"] == 102, s
g = [x for x in s["sighting_list"] if x["serial"] == sys.argv[2] and x["source"] == "127.0.0.1"]
assert not g or g[0]["count"] >= 2002, g
PY
# Close goes through whatever anonymous clients sent, and says what
# nobody acknowledged.
for t in $(python3 -c 'import json, sys
print(" ".join(sorted({c["tenant"] for c in json.load(open(sys.argv[1]))["connections_detail"]})))' "$w/report.json"); do
	rf incident confirm "$id" --tenant "$t" >/dev/null
done
rf incident close "$id" >"$w/close.txt" 2>&1 || fail "close: $(cat "$w/close.txt")"
grep -q "closed; 100 OCSP queries for old credentials after re-establishment were never acknowledged" "$w/close.txt" ||
	fail "close: $(cat "$w/close.txt")"
rf audit verify >/dev/null
echo "sighting sources: IPv4 and IPv6 recorded and shown; a flood is counted"
