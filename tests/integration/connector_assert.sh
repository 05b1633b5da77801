#!/usr/bin/env bash
# Connectors and tenant-bound client assertions (docs/connectors.md), end
# to end: entra connections with RSA keys, a connector enrolled from a CSR,
# assertions from `ringfence assert` and curl over mutual TLS, each
# verified by an independent relying party (PyJWT + cryptography, by
# x5t#S256 among registered certificates, PS256 and RS256); refusals (no
# client certificate, another CA, expired, revoked, not bound, under
# incident, past the rate, bad requests) with their codes and audit
# leaves; containment switching the next assertion to the new credential
# while the old one is refused; alerts; the webhook; reconcile. The server
# listens on 127.0.0.1 only, is bounded by --duration and stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector
. "$here/lib/connector.sh" connector_assert

rf init >/dev/null
rf tenant add acme >/dev/null
rf tenant add globex >/dev/null

# Registration: GUIDs only, one-line errors.
if rf connector entra acme/m365 --tenant-id not-a-guid --client-id "$CID" 2>err; then
	fail "a bad tenant id was accepted"
fi
[ "$(wc -l <err)" -eq 1 ] && grep -q "not a GUID" err || fail "bad GUID message: $(cat err)"
# Settings Entra cannot use are refused when read, by any command.
for kv in ENTRA_KEY_ALG=ec-p256 ENTRA_KEY_ALG=rsa-1024 ENTRA_JWT_ALG=ES256; do
	if env "RINGFENCE_$kv" "$RINGFENCE" tenant list >/dev/null 2>err; then
		fail "setting $kv was accepted"
	fi
	[ "$(wc -l <err)" -eq 1 ] && grep -q "must be .* or .*, not '${kv#*=}'" err ||
		fail "setting $kv: $(cat err)"
done
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
rf connector entra acme/rate --tenant-id "$TID" --client-id "$CID" >/dev/null
RINGFENCE_ENTRA_JWT_ALG=RS256 rf connector entra globex/m365 \
	--tenant-id "$TID" --client-id "$CID" >/dev/null

# An entra connection gets an RSA key, never EC.
if rf issue --tenant acme --connection m365 --profile assertion \
	--keygen ec-p256 >/dev/null 2>err; then
	fail "an EC key was issued for an entra connection"
fi
grep -q "entra connection: use --keygen rsa-2048" err || fail "EC refusal: $(cat err)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ec.key -out ec.csr -subj /CN=ec 2>/dev/null
if rf issue --tenant acme --connection m365 --profile assertion \
	--csr ec.csr >/dev/null 2>err; then
	fail "an EC CSR was issued for an entra connection"
fi
grep -q "needs an RSA key" err || fail "EC CSR refusal: $(cat err)"
for c in acme/m365 acme/rate globex/m365; do
	entra_cred "$c" "cred-${c/\//-}"
	openssl x509 -in "cred-${c/\//-}.pem" -noout -text >cred.txt
	grep -q "rsaEncryption" cred.txt ||
		fail "$c credential is not RSA"
done

# A connector: key and CSR on its host, certificate from ringfence.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync.key -out sync.csr -subj /CN=sync 2>/dev/null
rf connector add sync --csr sync.csr --out sync.pem >/dev/null
rf connector bind sync acme/m365 acme/rate >/dev/null
rf --json connector show sync >show.json
grep -q '"bindings":\["acme/m365","acme/rate"\]' show.json ||
	fail "connector show: $(rf --json connector show sync)"
na=$(openssl x509 -in sync.pem -noout -enddate | cut -d= -f2)
days=$(( ($(date -d "$na" +%s) - $(date +%s) + 3600) / 86400 ))
[ "$days" -eq 7 ] || fail "connector certificate valid $days days, not 7"
# A second connector, bound to globex only.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout arch.key -out arch.csr -subj /CN=arch 2>/dev/null
rf connector add arch --csr arch.csr --out arch.pem >/dev/null
rf connector bind arch globex/m365 >/dev/null
# An expired connector certificate (issued 30 days ago, valid 7).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout old.key -out old.csr -subj /CN=old 2>/dev/null
RINGFENCE_NOW=$(( $(date +%s) - 30 * 86400 )) rf connector add old \
	--csr old.csr --out old.pem >/dev/null
rf connector bind old acme/m365 >/dev/null
# A client certificate from another CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout other.key -out other.pem -subj /CN=other -days 2 2>/dev/null

# An entra registration over an EC credential, as a store written before
# registrations checked the key, or edited, holds: the API answers
# no_credential, saying why, and keyd is not asked (Entra ID accepts only
# RSA keys).
rf issue --tenant acme --connection legacy --profile client \
	--keygen ec-p256 --out legacy.pem >/dev/null
sqlite3 "$RINGFENCE_HOME/ringfence.db" "INSERT INTO conn_entra (tenant, conn, tenant_id, client_id, key_alg, jwt_alg, created) VALUES ('acme', 'legacy', '$TID', '$CID', 'rsa-2048', 'PS256', 0)"
rf connector bind sync acme/legacy >/dev/null

# Serve, with a small bucket on acme/rate's... connections (burst 4) and
# the webhook pointing at a receiver that is not up yet.
hport=$(lateport)
export RINGFENCE_CONN_BURST=4 RINGFENCE_CONNECTOR_RENEWALS=2 RINGFENCE_ALERT_WEBHOOK="http://127.0.0.1:$hport/hook"
serve_up 240 "$hport"

# 1. ringfence assert: verified independently, PS256, by x5t#S256.
jwt=$(rf assert --connection acme/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url") || fail "assert refused"
$rp "$jwt" "$TID" "$CID" seen cred-acme-m365.pem cred-globex-m365.pem \
	>rp.out || fail "relying party refused a fresh assertion"
grep -q " PS256$" rp.out || fail "not PS256: $(cat rp.out)"
# The same assertion twice: the relying party refuses the replayed jti.
if $rp "$jwt" "$TID" "$CID" seen cred-acme-m365.pem 2>/dev/null; then
	fail "a replayed jti was accepted"
fi
# A tampered claim does not verify.
bad=$(python3 - "$jwt" <<'PY'
import base64, json, sys
h, c, s = sys.argv[1].split(".")
cl = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
cl["aud"] = "https://login.microsoftonline.com/other/oauth2/v2.0/token"
print(h + "." + base64.urlsafe_b64encode(json.dumps(cl).encode()).rstrip(b"=").decode() + "." + s)
PY
)
if $rp "$bad" other "$CID" seen2 cred-acme-m365.pem 2>/dev/null; then
	fail "a tampered assertion verified"
fi

# 2. curl, the documented way; RS256 for globex's registration.
curl -s --cert arch.pem --key arch.key --cacert root.pem \
	-H 'Content-Type: application/json' -d '{"connection":"globex/m365"}' \
	"$url/v1/assertions" >curl.json
jwt2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["assertion"])' curl.json) ||
	fail "curl: $(cat curl.json)"
$rp "$jwt2" "$TID" "$CID" seen cred-acme-m365.pem cred-globex-m365.pem \
	>rp.out || fail "relying party refused the RS256 assertion"
grep -q " RS256$" rp.out || fail "not RS256: $(cat rp.out)"
grep -q '"x5t#S256"' curl.json && grep -q '"jti"' curl.json &&
	grep -q '"expires"' curl.json || fail "answer fields: $(cat curl.json)"

# 3. Refusals: status and code, nothing signed.
code() { # curl ARGS... -> "STATUS CODE"
	curl -s -o resp.json -w '%{http_code}' "$@" || true
	printf ' %s\n' "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' resp.json 2>/dev/null || echo -)"
}
leaves() { rf audit search --json >audit.jsonl; }
# Records after the answer are written by serve's recorder within moments:
# each is waited for up to 10 s (wait_for, lib/state.sh).
has_leaf() { leaves; grep "$@" audit.jsonl >/dev/null; }
has_status() { rf --json incident status "$1" >status.json; grep -q '"reestablished":1' status.json; }
has_alerts() {
	rf --json alerts list >alerts.json
	for k in "$@"; do grep -q "\"kind\":\"$k\"" alerts.json || return 1; done
}
sigs() { leaves; grep -c '"type":"sign","v":1,"what":"assertion"' audit.jsonl || true; }
before=$(sigs)
# No client certificate: 401.
[ "$(code --cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")" = "401 client_certificate_required" ] ||
	fail "no client certificate: $(cat resp.json)"
# Another CA, expired: refused at the TLS layer.
if curl -s --cert other.pem --key other.key --cacert root.pem \
	-d '{"connection":"acme/m365"}' "$url/v1/assertions" -o resp.json; then
	fail "a certificate from another CA got an answer: $(cat resp.json)"
fi
if rf assert --connection acme/m365 --cert old.pem --key old.key \
	--ca root.pem --url "$url" 2>err; then
	fail "an expired connector certificate got an assertion"
fi
grep -q "is the connector certificate valid" err ||
	fail "expired: $(cat err)"
# impostor NAME DNS HOST: a tenant's server certificate for DNS (globex's,
# from a CSR made here) served by openssl s_server on 127.0.0.1 for one
# connection; `ringfence assert --url https://HOST:PORT` to it must fail
# before it sends anything (its error in err, the server's side in
# NAME.out).
impostor() {
	local eport epid
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
	rf issue --tenant globex --profile server --dns "$2" --csr "$1.csr" \
		--out "$1.pem" >/dev/null 2>&1
	eport=$(freeport)
	timeout 30 openssl s_server -accept "127.0.0.1:$eport" -cert "$1.pem" \
		-cert_chain "$1.pem" -key "$1.key" -naccept 1 -www >"$1.out" \
		2>&1 </dev/null &
	epid=$!
	for _ in $(seq 100); do
		grep -q ACCEPT "$1.out" && break
		sleep 0.1
	done
	if rf assert --connection acme/m365 --cert sync.pem --key sync.key \
		--ca root.pem --url "https://$3:$eport" 2>err >/dev/null; then
		fail "assert sent its request to a server certificate for $2 at $3"
	fi
	# Its one connection ends it: wait (bounded) for what it says.
	for _ in $(seq 50); do
		kill -0 "$epid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$epid" 2>/dev/null || true
	wait "$epid" 2>/dev/null || true
}
# A server certificate of ringfence's CA that names another host
# (evil.example) on 127.0.0.1: assert refuses it in the handshake (hostname
# mismatch) and sends it nothing, not even the proof: the client ends the
# handshake itself, with an alert.
impostor evil evil.example 127.0.0.1
grep -q "hostname mismatch.*does not name 127.0.0.1" err ||
	fail "impostor server: $(cat err)"
grep -q "alert bad certificate" evil.out ||
	fail "impostor server's side: $(cat evil.out)"
# A tenant's server certificate for localhost, a name serve's certificate
# has too: the name matches, and assert still refuses it before it sends
# anything, as not serve's own certificate.
impostor evil2 localhost localhost
grep -q "not serve's (CN=globex, OU=server" err ||
	fail "tenant's certificate for localhost: $(cat err)"
# A file that is not there is named as such.
if rf assert --connection acme/m365 --cert nosuch.pem --key sync.key \
	--ca root.pem --url "$url" 2>err; then
	fail "assert with no certificate file succeeded"
fi
grep -q -- "--cert nosuch.pem: No such file or directory" err ||
	fail "missing --cert file: $(cat err)"
# Not bound: arch asks for acme/m365.
[ "$(code --cert arch.pem --key arch.key --cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")" = "403 not_bound" ] ||
	fail "not bound: $(cat resp.json)"
# An EC credential on an entra registration: 409, not an internal error.
[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d '{"connection":"acme/legacy"}' "$url/v1/assertions")" = "409 no_credential" ] ||
	fail "EC credential of an entra connection: $(cat resp.json)"
grep -q "ec-p256 key and Entra ID accepts only RSA" resp.json ||
	fail "EC credential message: $(cat resp.json)"
# Bad requests.
for b in '{"connection":"acme/m365","scope":"x"}' '{"connection":"../etc/passwd"}' \
	'{"connection":"acme/.."}' 'not json' '["acme/m365"]' '{"connection":"acme/m365","connection":"acme/rate"}'; do
	[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d "$b" "$url/v1/assertions")" = "400 bad_request" ] ||
		fail "bad request '$b': $(cat resp.json)"
done
# Each says what is wrong with it.
for b in '{"connection":5}|must be a string' '{"connection":null}|must be a string' \
	'{}|missing' "{\"connection\":\"acme/$(printf 'x%.0s' $(seq 65))\"}|at most 64 characters" \
	'{"connection":"acme/m365","connection":"acme/rate"}|duplicate member \"connection\" in the request body'; do
	[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d "${b%%|*}" "$url/v1/assertions")" = "400 bad_request" ] &&
		grep -qF "${b#*|}" resp.json || fail "bad request '${b%%|*}': $(cat resp.json)"
done
python3 -c 'print("{\"connection\":\"acme/m365\",\"x5t#S256\":\"" + "A"*9000 + "\"}")' >big.json
[ "$(code --cert sync.pem --key sync.key --cacert root.pem --data-binary @big.json "$url/v1/assertions")" = "413 bad_request" ] ||
	fail "oversized: $(cat resp.json)"
grep -q "at most 8192 bytes" resp.json || fail "oversized message: $(cat resp.json)"
# too_large CONNECTOR FILE LIMIT: FILE, sent whole and chunked, is a 413
# in the API's JSON whose message says at most LIMIT bytes.
too_large() {
	local te
	for te in "" "Transfer-Encoding: chunked"; do
		[ "$(code --cert "$1.pem" --key "$1.key" --cacert root.pem ${te:+-H "$te"} --data-binary "@$2" "$url/v1/assertions")" = "413 bad_request" ] &&
			grep -q "at most $3 bytes" resp.json ||
			fail "$2 ${te:+($te) }not refused as over $3 bytes: $(cat resp.json)"
	done
}
# Past the server's own body limit (64 KiB), told before the body is read:
# still the API's JSON, as is a chunked body past it. Both say the API's
# limit, as a body over it alone does.
python3 -c 'print("{\"connection\":\"acme/m365\",\"x5t#S256\":\"" + "A"*70000 + "\"}")' >huge.json
too_large sync huge.json 8192
# Another method: 405 in JSON, with the methods the route takes.
curl -s -D hdr.txt -o resp.json --cert sync.pem --key sync.key --cacert root.pem "$url/v1/assertions" || true
head -1 hdr.txt | grep -q " 405" && grep -qi '^Allow: POST' hdr.txt &&
	grep -q '"method_not_allowed"' resp.json || fail "GET /v1/assertions: $(cat hdr.txt resp.json)"
# Past the rate: acme/rate allows a burst of 4.
for i in 1 2 3 4; do
	rf assert --connection acme/rate --cert sync.pem --key sync.key \
		--ca root.pem --url "$url" >/dev/null || fail "assertion $i of the burst refused"
done
curl -s -D hdr -o resp.json --cert sync.pem --key sync.key --cacert root.pem \
	-d '{"connection":"acme/rate"}' "$url/v1/assertions"
grep -q "^HTTP/1.1 429" hdr && grep -qi "^Retry-After: [0-9]" hdr &&
	grep -q '"rate_limited"' resp.json || fail "rate: $(cat hdr resp.json)"
# ringfence assert says when to retry (the Retry-After a connector needs).
if rf assert --connection acme/rate --cert sync.pem --key sync.key \
	--ca root.pem --url "$url" >/dev/null 2>err; then
	fail "assert past the rate succeeded"
fi
grep -q "429 rate_limited.*: retry after [0-9][0-9]* s" err ||
	fail "assert's rate refusal does not say when to retry: $(cat err)"
[ "$(sigs)" -eq $((before + 4)) ] || fail "refusals signed something ($(sigs) vs $before + 4)"
# (keys are sorted: the detail comes before the type)
wait_for 10 has_leaf -q 'not_bound: connection acme/m365 connector arch (certificate [0-9a-f]*) source 127.0.0.1:[0-9]* jti -.*"type":"refuse"' ||
	fail "no refusal leaf for not_bound"

# 4. Incident: refused while open (also once the store is cleared behind
# keyd's back), then contained: the next assertion names the new
# credential, which verifies; the old one is refused.
old_x5t=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["x5t#S256"])' cred-acme-m365.json)
id=$(rf incident open --scope connection:acme/m365 --reason "test" 2>open.err | grep -o '[0-9]\+' | head -1)
# Its blast radius counts the connection key's signatures (the
# assertions), not the issuing CA's signatures of the tenant's
# certificates, which the tenant's leaves hold too.
want=$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf
	WHERE type = 'sign' AND key_id = (SELECT old_key FROM incident_items WHERE incident = $id)")
[ "$want" -gt 0 ] || fail "no signature by the connection key in the record"
grep -Eq ": 1 connection, $want signatures? by the keys in scope" open.err ||
	fail "incident open counts other keys' signatures (want $want): $(cat open.err)"
[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")" = "423 under_incident" ] ||
	fail "under incident: $(cat resp.json)"
# The incident cleared in the store behind keyd's back (as serve's user
# can): serve's checks pass, keyd's ledger still says under incident.
sqlite3 "$RINGFENCE_HOME/ringfence.db" "UPDATE incident_items SET state = 'contained' WHERE incident = $id"
[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")" != "200 " ] ||
	fail "an assertion once the incident was cleared in the store"
grep -q "under an open incident in keyd's ledger" resp.json ||
	fail "incident cleared behind keyd's back: $(cat resp.json)"
sqlite3 "$RINGFENCE_HOME/ringfence.db" "UPDATE incident_items SET state = 'affected' WHERE incident = $id"
rf incident contain "$id" >/dev/null
new_serial=$(rf --json connection list --tenant acme | python3 -c 'import json,sys; print([c for c in json.load(sys.stdin) if c["name"]=="m365"][0]["serial"])')
rf --json cert show "$new_serial" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pem"])' >new.pem
jwt3=$(rf assert --connection acme/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url" --x5t "$old_x5t") || fail "assert after contain refused"
if $rp "$jwt3" "$TID" "$CID" seen cred-acme-m365.pem 2>/dev/null; then
	fail "the old credential verified an assertion after containment"
fi
$rp "$jwt3" "$TID" "$CID" seen new.pem >/dev/null || fail "the new credential does not verify"
wait_for 10 has_status "$id" ||
	fail "no re-establishment evidence: $(rf --json incident status "$id")"
wait_for 10 has_leaf -q "first assertion with the new credential, by connector sync" ||
	fail "no evidence leaf"
# Recorded by the incident module's own function (one place, one wording).
rf incident report "$id" --out report >/dev/null
grep -q 'new credential used by connector sync' report.json ||
	fail "evidence not recorded by the incident module: $(cat report.json)"

# 5. Alerts: under incident, retired credential, a new connector.
rf connector bind arch acme/m365 >/dev/null
curl -s -o /dev/null --cert arch.pem --key arch.key --cacert root.pem \
	-d '{"connection":"acme/m365"}' "$url/v1/assertions"
wait_for 10 has_alerts under_incident retired_credential new_connector ||
	fail "alerts: $(cat alerts.json)"
has_leaf -q '"type":"alert"' || fail "alerts are not audit leaves"

# 6. The webhook receiver comes up late: every alert arrives (ids).
sleep 2
python3 "$here/lib/hook_rx.py" "$hport" hook.log &
rx=$!
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' alerts.json)
for _ in $(seq 150); do
	[ -f hook.log ] && [ "$(sort -u hook.log | wc -l)" -ge "$n" ] && break
	sleep 0.2
done
kill "$rx"; wait "$rx" 2>/dev/null || true
python3 - alerts.json hook.log <<'PY' || fail "webhook lost alerts"
import json, sys
ids = {a["id"] for a in json.load(open(sys.argv[1]))}
got = set(open(sys.argv[2]).read().split())
missing = ids - got
if missing:
    print("missing:", missing, file=sys.stderr)
    sys.exit(1)
PY

# 7. Revoked connector: 401 revoked.
rf connector revoke arch >/dev/null
[ "$(code --cert arch.pem --key arch.key --cacert root.pem -d '{"connection":"globex/m365"}' "$url/v1/assertions")" = "401 revoked" ] &&
	grep -q "this connector is revoked, for good: the operator adds a connector under another name" resp.json ||
	fail "revoked connector: $(cat resp.json)"

# 7b. The store changed behind keyd's back, as serve's user can (it writes
# the store): a binding keyd never made, and the revoked connector made
# active again with its certificate unrevoked. serve's own checks read the
# store and pass; keyd's ledger, which only an administrator changes
# through keyd, refuses both, and nothing is signed.
db=$RINGFENCE_HOME/ringfence.db
n0=$(sigs)
sqlite3 "$db" "INSERT INTO connector_bindings (connector, tenant, conn, created) VALUES ('sync', 'globex', 'm365', 0)"
if rf assert --connection globex/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url" >forged.jwt 2>err; then
	fail "an assertion for a binding written behind keyd's back: $(cat forged.jwt)"
fi
grep -q "never bound to it through keyd" err ||
	fail "forged binding: $(cat err)"
sqlite3 "$db" "CREATE TABLE t_saved AS SELECT serial, revoked, revoked_at FROM certs WHERE serial IN (SELECT serial FROM connector_certs WHERE connector = 'arch'); UPDATE connectors SET state = 'active' WHERE name = 'arch'; UPDATE certs SET revoked = 0, revoked_at = 0 WHERE serial IN (SELECT serial FROM t_saved)"
[ "$(code --cert arch.pem --key arch.key --cacert root.pem -d '{"connection":"globex/m365"}' "$url/v1/assertions")" != "200 " ] ||
	fail "a revoked connector made active in the store got an assertion"
grep -q "revoked in keyd's ledger" resp.json ||
	fail "connector made active behind keyd's back: $(cat resp.json)"
[ "$(sigs)" = "$n0" ] || fail "keyd signed for a store changed behind its back"
sqlite3 "$db" "DELETE FROM connector_bindings WHERE connector = 'sync' AND tenant = 'globex'; UPDATE connectors SET state = 'revoked' WHERE name = 'arch'; UPDATE certs SET revoked = (SELECT revoked FROM t_saved s WHERE s.serial = certs.serial), revoked_at = (SELECT revoked_at FROM t_saved s WHERE s.serial = certs.serial) WHERE serial IN (SELECT serial FROM t_saved); DROP TABLE t_saved"

# 8. Renewal with the current certificate.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync2.key -out sync2.csr -subj /CN=sync 2>/dev/null
python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' sync2.csr >renew.json
refused() { rf --json keyd status | python3 -c 'import json,sys; print(json.load(sys.stdin)["refused"])'; }
r0=$(refused)
curl -s --cert sync.pem --key sync.key --cacert root.pem \
	--data-binary @renew.json "$url/v1/connector/renew" >renewed.json
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pem"])' renewed.json >sync2.pem ||
	fail "renew: $(cat renewed.json)"
# Its OCSP response was signed once it was committed (keyd signs serve's
# only for what the store holds: nothing refused), and answers at once.
[ "$(refused)" = "$r0" ] || fail "keyd refused something of the renewal ($(refused) vs $r0)"
awk '/BEGIN/{n++} n==1' sync2.pem >leaf2.pem
awk '/BEGIN/{n++} n==2' sync2.pem >iss2.pem
openssl ocsp -issuer iss2.pem -cert leaf2.pem -url "http://127.0.0.1:$port/ocsp" \
	-noverify >ocsp2.txt 2>&1 && grep -q "^leaf2.pem: good" ocsp2.txt ||
	fail "OCSP of the renewed certificate: $(cat ocsp2.txt)"
rf assert --connection acme/rate --cert sync2.pem --key sync2.key --ca root.pem \
	--url "$url" >/dev/null 2>err || grep -q "rate_limited" err || fail "renewed certificate: $(cat err)"
[ "$(code --cert arch.pem --key arch.key --cacert root.pem --data-binary @renew.json "$url/v1/connector/renew")" = "401 revoked" ] ||
	fail "a revoked connector renewed: $(cat resp.json)"
# Renewals are a few a day (connector_renewals = 2 here): the third is
# refused, saying when to come back; one issuance refuses (a bad CSR)
# costs none.
echo '{"csr":"not a CSR"}' >badcsr.json
[ "$(code --cert sync2.pem --key sync2.key --cacert root.pem --data-binary @badcsr.json "$url/v1/connector/renew")" = "400 bad_request" ] ||
	fail "renewal with a bad CSR: $(cat resp.json)"
[ "$(code --cert sync2.pem --key sync2.key --cacert root.pem --data-binary @renew.json "$url/v1/connector/renew")" = "200 " ] ||
	fail "second renewal: $(cat resp.json)"
curl -s -D hdr -o resp.json --cert sync2.pem --key sync2.key --cacert root.pem \
	--data-binary @renew.json "$url/v1/connector/renew"
grep -q "^HTTP/1.1 429" hdr && grep -qi "^Retry-After: [0-9]" hdr &&
	grep -q '"rate_limited"' resp.json && grep -q 'connector_renewals' resp.json ||
	fail "third renewal in a day: $(cat hdr resp.json)"

# 9. Reconcile: explained sign-ins (the new credential now, the old one
# within an assertion signed before containment), and three that are not;
# a credential that is not ringfence's is not ours to explain.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
late=$(date -u -d '-3 hours' +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
newtp=$(openssl x509 -in new.pem -noout -fingerprint -sha1 | cut -d= -f2 | tr -d :)
oldtp=$(openssl x509 -in cred-acme-m365.pem -noout -fingerprint -sha1 | cut -d= -f2 | tr -d :)
cat >signins.json <<JSON
{"value": [
 {"createdDateTime": "$now", "ipAddress": "127.0.0.1", "servicePrincipalCredentialThumbprint": "$newtp", "appId": "$CID"},
 {"createdDateTime": "$now", "ipAddress": "203.0.113.9", "servicePrincipalCredentialThumbprint": "$newtp", "appId": "$CID"},
 {"createdDateTime": "$late", "ipAddress": "127.0.0.1", "servicePrincipalCredentialThumbprint": "$newtp", "appId": "$CID"},
 {"createdDateTime": "$now", "ipAddress": "127.0.0.1", "servicePrincipalCredentialThumbprint": "$oldtp", "appId": "$CID"},
 {"createdDateTime": "$later", "ipAddress": "127.0.0.1", "servicePrincipalCredentialThumbprint": "$oldtp", "appId": "$CID"},
 {"createdDateTime": "$now", "ipAddress": "127.0.0.1", "servicePrincipalCredentialThumbprint": "0000000000000000000000000000000000000000", "appId": "$CID"}
]}
JSON
if rf audit reconcile --signins signins.json >rec.out 2>rec.err; then
	fail "reconcile found nothing unexplained"
fi
[ "$(wc -l <rec.out)" -eq 3 ] || fail "reconcile: $(cat rec.out)"
grep -q "203.0.113.9 .*unknown source" rec.out || fail "reconcile source: $(cat rec.out)"
grep -q "$late .*no assertion" rec.out || fail "reconcile time: $(cat rec.out)"
grep -q "$later .*retired credential" rec.out || fail "reconcile retired: $(cat rec.out)"

kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""

# 10. A server body limit (max_request) below the API's 8 KiB: a body over
# it is refused by the HTTP layer, and the message names that limit, the
# one that applied, told before the body is read and chunked alike.
RINGFENCE_MAX_REQUEST=2048 serve_up 60
python3 -c 'print("{\"connection\":\"acme/m365\",\"x5t#S256\":\"" + "A"*3000 + "\"}")' >mid.json
too_large sync2 mid.json 2048
# A revoked certificate of an active connector: the message says what the
# connector needs (a new key, enrolled on the ringfence host).
rf revoke "$(openssl x509 -in sync.pem -noout -serial | cut -d= -f2)" \
	--reason keyCompromise >/dev/null
[ "$(code --cert sync.pem --key sync.key --cacert root.pem -d '{"connection":"acme/m365"}' "$url/v1/assertions")" = "401 revoked" ] &&
	grep -qF "this connector certificate is revoked: the connector needs a new key ('ringfence connector enroll sync --csr FILE' on the ringfence host)" resp.json ||
	fail "revoked certificate of an active connector: $(cat resp.json)"
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_assert: ok"
