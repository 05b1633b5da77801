#!/usr/bin/env bash
# Issue 13 item 6: an anonymous OCSP query for a serial under an incident
# is recorded as a sighting with its source address (the accepted socket's
# peer, IPv4 and IPv6), shown by `incident status` (text and --json), and a
# query for the old serial after re-establishment adds a leaf whose source
# names that address.
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
rf cert ca issuing >"$w/old-issuer.pem"
rf cert ca "$(python3 -c "import json; print(json.load(open('$w/report.json'))['new_issuer'])")" \
	>"$w/new-issuer.pem"

freeport() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
# serve on ADDR, one OCSP query for CERT (issued by ISSUER), stopped after
# the maintenance thread's evidence pass (once a second).
query() {
	local addr=$1 cert=$2 issuer=$3 port url
	port=$(freeport "$addr")
	url="http://$addr:$port/ocsp"
	case $addr in *:*) url="http://[$addr]:$port/ocsp" ;; esac
	"$RINGFENCE" serve --listen "$addr" --port "$port" --duration 60 \
		2>>"$w/serve.log" &
	server=$!
	for _ in $(seq 100); do
		curl -sf -m 2 -o /dev/null "${url%/ocsp}/healthz" && break
		sleep 0.1
	done
	openssl ocsp -issuer "$issuer" -cert "$cert" -url "$url" -no_nonce \
		-noverify >"$w/o" 2>&1 || { cat "$w/o" "$w/serve.log"; fail "OCSP on $addr"; }
	grep -qE ': (good|revoked)' "$w/o" || fail "OCSP on $addr: $(cat "$w/o")"
	sleep 2.5
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=""
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

# After re-establishment, the old serial again: a sighting that holds
# close, and a leaf naming the anonymous client by its address.
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
rf audit verify >/dev/null
echo "sighting sources: IPv4 and IPv6 recorded and shown"
