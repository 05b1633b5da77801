#!/usr/bin/env bash
# Connector proof of possession (docs/connectors.md, "The proof"): the
# connector signs a fresh, single-use proof with its TLS client key, serve
# relays it, keyd checks it against the client certificate. With
# connector_proof = required: `ringfence assert` (EC and RSA connector
# keys) gets an assertion the independent relying party (PyJWT) verifies;
# curl without a proof gets 401 proof_required; a proof made with the
# documented openssl commands gets 200, once (the replay is refused); stale,
# future, tampered, foreign-key, other-connection and other-purpose proofs
# get 401 bad_proof; malformed ones 400 bad_request; renewal needs a proof
# over the new key's SubjectPublicKeyInfo; nothing is signed for a refused
# request; keyd refuses a renewal asked without a proof as a serve taken
# over would ask it. keyd required behind a serve left optional still
# refuses a request without a proof. With connector_proof optional, a
# request without a proof is served as before and a bad proof is refused.
# The server listens on 127.0.0.1 only, is bounded by --duration and
# stopped by PID; keyd is stopped by its PID (keyd.pid).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-proof
. "$here/lib/connector.sh" connector_proof
client="$RF_BINARY_DIR/rf-keyd_client"
unset RINGFENCE_CONNECTOR_PROOF || true
# Room in the buckets for every request below (refusals included), in
# serve and in keyd, whatever order the checks take.
export RINGFENCE_CONN_BURST=100 RINGFENCE_CONNECTOR_RENEWALS=50

# The setting: optional or required, anything else refused when read.
rf init >/dev/null
if RINGFENCE_CONNECTOR_PROOF=maybe rf tenant list >/dev/null 2>err; then
	fail "connector_proof=maybe was accepted"
fi
[ "$(wc -l <err)" -eq 1 ] && grep -q "not 'maybe'" err ||
	fail "connector_proof=maybe: $(cat err)"
conf=$RINGFENCE_HOME/ringfence.conf
echo 'connector_proof = sometimes' >"$conf"
if rf tenant list >/dev/null 2>err; then
	fail "connector_proof = sometimes in ringfence.conf was accepted"
fi
grep -q "ringfence.conf" err && grep -q "connector_proof" err ||
	fail "connector_proof = sometimes: $(cat err)"
for v in optional required; do
	echo "connector_proof = $v" >"$conf"
	rf tenant list >/dev/null 2>err || fail "connector_proof = $v refused: $(cat err)"
done
rm -f "$conf"

rf tenant add acme >/dev/null
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
rf connector entra acme/other --tenant-id "$TID" --client-id "$CID" >/dev/null
entra_cred acme/m365 cred
entra_cred acme/other cred-other
# Two connectors bound to both connections: an EC key and an RSA key (a
# proof is ECDSA or RSA PKCS#1 v1.5, as openssl dgst -sign makes it; the
# RSA connector needs serve's TLS port to take RSA client signatures).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync.key -out sync.csr -subj /CN=sync 2>/dev/null
rf connector add sync --csr sync.csr --out sync.pem >/dev/null
rf connector bind sync acme/m365 acme/other >/dev/null
openssl req -new -newkey rsa:2048 -nodes \
	-keyout arch.key -out arch.csr -subj /CN=arch 2>/dev/null
rf connector add arch --csr arch.csr --out arch.pem >/dev/null
rf connector bind arch acme/m365 acme/other >/dev/null
# A key that is no connector's.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out stranger.key 2>/dev/null

# Helpers.
# mkproof PURPOSE SUBJECT KEY [TIME [NONCE]]: TIME.NONCE.SIG made exactly
# as docs/connectors.md tells a connector to (printf, openssl, basenc).
mkproof() {
	local t=${4:-$(date +%s)} n=${5:-$(openssl rand -hex 16)} sig
	sig=$(printf 'ringfence-proof-v1\n%s\n%s\n%s\n%s\n' "$1" "$2" "$t" "$n" |
		openssl dgst -sha256 -sign "$3" | basenc --base64url -w0 | tr -d =)
	printf '%s.%s.%s\n' "$t" "$n" "$sig"
}
# spki CSR: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of the
# CSR's public key, as documented.
spki() {
	openssl req -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
		sha256sum | cut -c1-64
}
code() { # curl ARGS... -> "STATUS CODE" (the answer in resp.json)
	curl -s -o resp.json -w '%{http_code}' "$@" || true
	printf ' %s\n' "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' resp.json 2>/dev/null || echo -)"
}
# ask CONNECTOR BODY: POST /v1/assertions with CONNECTOR's certificate.
ask() {
	code --cert "$1.pem" --key "$1.key" --cacert root.pem \
		-H 'Content-Type: application/json' --data-binary "$2" \
		"$url/v1/assertions"
}
# body CONNECTION [PROOF]: the request, with a proof member if given.
body() {
	if [ $# -gt 1 ]; then
		printf '{"connection":"%s","proof":"%s"}' "$1" "$2"
	else
		printf '{"connection":"%s"}' "$1"
	fi
}
# renew CONNECTOR CSR [PROOF]: POST /v1/connector/renew (the body built
# with jq as documented).
renew() {
	if [ $# -gt 2 ]; then
		jq -n --rawfile csr "$2" --arg proof "$3" '{csr: $csr, proof: $proof}'
	else
		jq -n --rawfile csr "$2" '{csr: $csr}'
	fi >renew.json
	code --cert "$1.pem" --key "$1.key" --cacert root.pem \
		-H 'Content-Type: application/json' --data-binary @renew.json \
		"$url/v1/connector/renew"
}
# verified: resp.json holds an assertion the relying party verifies.
verified() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["assertion"])' \
		resp.json >jwt.txt 2>/dev/null || return 1
	$rp "$(cat jwt.txt)" "$TID" "$CID" seen cred.pem cred-other.pem >/dev/null
}
# signed WHAT: signatures of that kind in the audit record (an assertion's
# or a certificate's leaf is durable before keyd signs).
signed() {
	rf audit search --json | python3 -c 'import json,sys
n = 0
for l in sys.stdin:
    e = json.loads(l)["event"]
    if e.get("type") == "sign" and e.get("what") == sys.argv[1]:
        n += 1
print(n)' "$1"
}
stop_serve() {
	kill -TERM "$server"
	wait "$server" || fail "serve exited non-zero"
	server=""
}
# The helper's proof verifies with openssl against the certificate's key
# (so that a refusal below is the server's, not a broken helper's).
p=$(mkproof assert acme/m365 sync.key)
t=${p%%.*} rest=${p#*.}
printf 'ringfence-proof-v1\nassert\nacme/m365\n%s\n%s\n' "$t" "${rest%%.*}" >msg.bin
python3 - "$p" <<'PY' >sig.bin
import base64, sys
s = sys.argv[1].split(".")[2]
sys.stdout.buffer.write(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
PY
openssl x509 -in sync.pem -noout -pubkey >sync.pub
openssl dgst -sha256 -verify sync.pub -signature sig.bin msg.bin >/dev/null ||
	fail "the test's own proof does not verify with openssl"

# 1. Required. keyd reads the setting when it starts: the keyd the setup
# commands started runs without it, so it is stopped, and serve starts
# one with the setting in its environment.
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"
if rf keyd status >/dev/null 2>&1; then fail "keyd still runs"; fi
export RINGFENCE_CONNECTOR_PROOF=required
serve_up 300
# keyd says which setting it took, whoever started it.
tail -n 20 "$RINGFENCE_HOME/keyd.log" | grep -q "listening on .*connector_proof required" ||
	fail "keyd.log does not say connector_proof required: $(tail -n 3 "$RINGFENCE_HOME/keyd.log")"
rf keyd status >/dev/null || fail "serve did not start keyd"
a0=$(signed assertion)
ok=0 # assertions signed since a0

# 2. ringfence assert makes its proof itself (EC and RSA keys).
jwt=$(rf assert --connection acme/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url") || fail "assert (EC key) refused"
$rp "$jwt" "$TID" "$CID" seen cred.pem >/dev/null ||
	fail "relying party refused the assertion of ringfence assert"
jwt=$(rf assert --connection acme/other --cert arch.pem --key arch.key \
	--ca root.pem --url "$url") || fail "assert (RSA key) refused"
$rp "$jwt" "$TID" "$CID" seen cred-other.pem >/dev/null ||
	fail "relying party refused the assertion of ringfence assert (RSA key)"
ok=$((ok + 2))

# 3. No proof: 401 proof_required, nothing signed.
[ "$(ask sync "$(body acme/m365)")" = "401 proof_required" ] ||
	fail "no proof while required: $(cat resp.json)"
[ "$(signed assertion)" -eq $((a0 + ok)) ] || fail "a request without a proof was signed"

# 4. The documented proof: 200 and an assertion that verifies. The RSA
# connector's proof (PKCS#1 v1.5) with the shortest nonce (16 characters);
# a proof 60 s old is still fresh.
good=$(mkproof assert acme/m365 sync.key)
[ "$(ask sync "$(body acme/m365 "$good")")" = "200 " ] ||
	fail "the documented proof: $(cat resp.json)"
verified || fail "the assertion for a proof does not verify: $(cat resp.json)"
[ "$(ask arch "$(body acme/m365 "$(mkproof assert acme/m365 arch.key "" "$(openssl rand -hex 8)")")")" = "200 " ] ||
	fail "an RSA connector's proof: $(cat resp.json)"
verified || fail "the RSA connector's assertion does not verify: $(cat resp.json)"
[ "$(ask sync "$(body acme/m365 "$(mkproof assert acme/m365 sync.key $(($(date +%s) - 60)))")")" = "200 " ] ||
	fail "a proof 60 s old: $(cat resp.json)"
ok=$((ok + 3))
[ "$(signed assertion)" -eq $((a0 + ok)) ] ||
	fail "$(signed assertion) assertion signatures, not $((a0 + ok))"

# 5.-8. Proofs that do not hold: 401 bad_proof, each.
badproof() { # CONNECTOR BODY WHAT
	[ "$(ask "$1" "$2")" = "401 bad_proof" ] || fail "$3: $(cat resp.json)"
}
# Used once already.
badproof sync "$(body acme/m365 "$good")" "a replayed proof"
grep -qi "used" resp.json || fail "the replay's message does not say it was used: $(cat resp.json)"
# Stale, and from the future.
badproof sync "$(body acme/m365 "$(mkproof assert acme/m365 sync.key $(($(date +%s) - 600)))")" \
	"a proof 600 s old"
badproof sync "$(body acme/m365 "$(mkproof assert acme/m365 sync.key $(($(date +%s) + 600)))")" \
	"a proof 600 s ahead"
# Signed by a key that is not the connector's: a stranger's, and another
# connector's (bound to the same connection).
badproof sync "$(body acme/m365 "$(mkproof assert acme/m365 stranger.key)")" \
	"a proof signed by another key"
badproof sync "$(body acme/m365 "$(mkproof assert acme/m365 arch.key)")" \
	"a proof signed by another connector's key"
# Tampered after signing: another nonce, another time.
p=$(mkproof assert acme/m365 sync.key)
t=${p%%.*} rest=${p#*.}
badproof sync "$(body acme/m365 "$t.$(openssl rand -hex 16).${rest#*.}")" \
	"a proof with its nonce changed"
badproof sync "$(body acme/m365 "$((t - 1)).$rest")" "a proof with its time changed"
# For another connection the connector is bound to, and for a renewal.
badproof sync "$(body acme/m365 "$(mkproof assert acme/other sync.key)")" \
	"a proof for acme/other sent for acme/m365"
badproof sync "$(body acme/m365 "$(mkproof renew acme/m365 sync.key)")" \
	"a renewal proof sent for an assertion"

# 9. Malformed: 400 bad_request.
n16=$(openssl rand -hex 8)
sig=${good##*.}
now=$(date +%s)
for pr in abc "" "$now.$n16" "$now.$n16.$sig.x" "now.$n16.$sig" \
	"$now.${n16:1}.$sig" "$now.$n16$n16$n16$n16${n16:0:1}.$sig" \
	"$now.${n16:1}/.$sig" "$now.$n16.${sig:1}+"; do
	[ "$(ask sync "$(body acme/m365 "$pr")")" = "400 bad_request" ] ||
		fail "malformed proof '$pr': $(cat resp.json)"
done
for b in '{"connection":"acme/m365","proof":5}' '{"connection":"acme/m365","proof":null}' \
	"{\"connection\":\"acme/m365\",\"proof\":\"$good\",\"proof\":\"$good\"}"; do
	[ "$(ask sync "$b")" = "400 bad_request" ] || fail "bad request '$b': $(cat resp.json)"
done
[ "$(signed assertion)" -eq $((a0 + ok)) ] ||
	fail "refused requests were signed ($(signed assertion), not $((a0 + ok)))"

# 10. Renewal: the proof's subject is the new key's SubjectPublicKeyInfo.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync2.key -out sync2.csr -subj /CN=sync 2>/dev/null
c0=$(signed cert)
[ "$(renew sync sync2.csr)" = "401 proof_required" ] ||
	fail "renewal without a proof while required: $(cat resp.json)"
[ "$(renew sync sync2.csr "$(mkproof renew "$(spki sync.csr)" sync.key)")" = "401 bad_proof" ] ||
	fail "renewal with a proof over another key: $(cat resp.json)"
[ "$(renew sync sync2.csr "$(mkproof assert "$(spki sync2.csr)" sync.key)")" = "401 bad_proof" ] ||
	fail "renewal with an assertion's proof: $(cat resp.json)"
[ "$(renew sync sync2.csr "$(mkproof renew "$(spki sync2.csr)" stranger.key)")" = "401 bad_proof" ] ||
	fail "renewal with a proof by another key: $(cat resp.json)"
[ "$(renew sync sync2.csr "not.a.proof")" = "400 bad_request" ] ||
	fail "renewal with a malformed proof: $(cat resp.json)"
[ "$(signed cert)" -eq "$c0" ] || fail "a refused renewal was signed"
rgood=$(mkproof renew "$(spki sync2.csr)" sync.key)
[ "$(renew sync sync2.csr "$rgood")" = "200 " ] ||
	fail "renewal with the documented proof: $(cat resp.json)"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pem"])' resp.json >sync2.pem ||
	fail "renewal answer: $(cat resp.json)"
grep -q "BEGIN CERTIFICATE" sync2.pem || fail "no PEM in the renewal: $(cat resp.json)"
[ "$(openssl x509 -in sync2.pem -noout -pubkey)" = "$(openssl pkey -in sync2.key -pubout)" ] ||
	fail "the renewed certificate is not of the new key"
[ "$(renew sync sync2.csr "$rgood")" = "401 bad_proof" ] ||
	fail "a replayed renewal proof: $(cat resp.json)"
[ "$(signed cert)" -eq $((c0 + 1)) ] || fail "$(signed cert) certificate signatures, not $((c0 + 1))"
# The renewed certificate proves with its own key.
rf assert --connection acme/m365 --cert sync2.pem --key sync2.key \
	--ca root.pem --url "$url" >/dev/null || fail "assert with the renewed certificate"
ok=$((ok + 1))
# `ringfence assert --renew` makes the renewal's proof itself, with the
# current key, over the CSR's key; the replay cache does not mind a new one.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
	-keyout sync4.key -out sync4.csr -subj /CN=sync 2>/dev/null
rf assert --renew sync4.csr --cert sync2.pem --key sync2.key --ca root.pem \
	--url "$url" >sync4.pem 2>err || fail "assert --renew: $(cat err)"
[ "$(openssl x509 -in sync4.pem -noout -pubkey)" = "$(openssl pkey -in sync4.key -pubout)" ] ||
	fail "assert --renew: the certificate is not of the new key"
openssl verify -CAfile root.pem -untrusted sync4.pem sync4.pem >/dev/null ||
	fail "assert --renew: the chain does not verify"
rf assert --connection acme/m365 --cert sync4.pem --key sync4.key \
	--ca root.pem --url "$url" >/dev/null || fail "assert with the certificate of assert --renew"
# With the wrong current key: the TLS key and the proof's key differ from
# the certificate's, refused and nothing signed.
c1=$(signed cert)
if rf assert --renew sync4.csr --cert sync2.pem --key stranger.key \
	--ca root.pem --url "$url" >/dev/null 2>err; then
	fail "assert --renew with another key succeeded"
fi
[ "$(wc -l <err)" -eq 1 ] || fail "assert --renew with another key: $(cat err)"
[ "$(signed cert)" -eq "$c1" ] || fail "a refused assert --renew was signed"
# A serve taken over asks keyd for a connector certificate without the
# connector's proof: keyd refuses it.
issuing=$(rf --json keys list | python3 -c 'import json,sys
for l in sys.stdin:
    k = json.loads(l)
    if k["purpose"] == "issuing": print(k["id"])')
[ -n "$issuing" ] || fail "no issuing key in keys list"
rc=0
"$client" server-cert "$issuing" connector.sync sync.pem 2>e1 || rc=$?
[ $rc -eq 3 ] && grep -q "bad_proof: it carries no proof of possession, and connector_proof is required" e1 ||
	fail "keyd signed a connector certificate without a proof: $rc $(cat e1)"
stop_serve
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"

# 11a. keyd required behind a serve left optional (as a serve taken over
# would leave it): keyd still refuses a request without a proof.
unset RINGFENCE_CONNECTOR_PROOF
RINGFENCE_CONNECTOR_PROOF=required rf keys list >/dev/null
rf keyd status >/dev/null || fail "keys list did not start keyd"
serve_up 120
a1=$(signed assertion)
[ "$(ask sync "$(body acme/m365)")" = "401 bad_proof" ] ||
	fail "keyd (required) behind a serve (optional), no proof: $(cat resp.json)"
[ "$(signed assertion)" -eq "$a1" ] || fail "keyd (required) signed a request without a proof"
rf assert --connection acme/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url" >/dev/null || fail "assert with keyd required, serve optional"
stop_serve
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"

# 11b. Optional (the default), serve and keyd: no proof is served as
# before; a proof, when sent, must hold.
serve_up 120
[ "$(ask sync "$(body acme/m365)")" = "200 " ] ||
	fail "no proof while optional: $(cat resp.json)"
verified || fail "the assertion without a proof does not verify: $(cat resp.json)"
[ "$(ask sync "$(body acme/m365 "$(mkproof assert acme/m365 stranger.key)")")" = "401 bad_proof" ] ||
	fail "a bad proof while optional: $(cat resp.json)"
[ "$(ask sync "$(body acme/m365 "$(mkproof assert acme/m365 sync.key $(($(date +%s) - 600)))")")" = "401 bad_proof" ] ||
	fail "a stale proof while optional: $(cat resp.json)"
[ "$(ask sync "$(body acme/m365 abc)")" = "400 bad_request" ] ||
	fail "a malformed proof while optional: $(cat resp.json)"
# The longest nonce (64 characters).
[ "$(ask sync "$(body acme/m365 "$(mkproof assert acme/m365 sync.key "" "$(openssl rand -hex 32)")")")" = "200 " ] ||
	fail "a proof with a 64-character nonce while optional: $(cat resp.json)"
verified || fail "the assertion for a proof (optional) does not verify: $(cat resp.json)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout sync3.key -out sync3.csr -subj /CN=sync 2>/dev/null
[ "$(renew sync sync3.csr)" = "200 " ] ||
	fail "renewal without a proof while optional: $(cat resp.json)"
[ "$(renew sync sync3.csr "$(mkproof renew "$(spki sync2.csr)" sync.key)")" = "401 bad_proof" ] ||
	fail "renewal with a proof over another key while optional: $(cat resp.json)"
stop_serve

# 12. Requests keyd refuses spend none of serve's tokens either: five bad
# proofs on a connection whose bucket holds 3 are each 401 bad_proof (not
# 429), and the connector's own 3 requests after them are served. Bad
# proofs have a bucket of their own, per certificate, as large as a
# connector's (6 here): the sixth is still 401, the seventh 429 before keyd
# is asked, on any connection.
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"
RINGFENCE_CONN_BURST=3 RINGFENCE_CONNECTOR_BURST=6 RINGFENCE_CONNECTOR_RATE=1 \
	serve_up 120
for i in 1 2 3 4 5; do
	[ "$(ask sync "$(body acme/m365 "$(mkproof assert acme/m365 stranger.key)")")" = "401 bad_proof" ] ||
		fail "bad proof $i of 5 on a bucket of 3: $(cat resp.json)"
done
for i in 1 2 3; do
	rf assert --connection acme/m365 --cert sync.pem --key sync.key \
		--ca root.pem --url "$url" >/dev/null 2>err ||
		fail "the connector's request $i of 3 after five refused: $(cat err)"
done
# (On acme/other, whose bucket is full: acme/m365's is spent now.)
[ "$(ask sync "$(body acme/other "$(mkproof assert acme/other stranger.key)")")" = "401 bad_proof" ] ||
	fail "the sixth bad proof (bucket of 6): $(cat resp.json)"
[ "$(ask sync "$(body acme/other "$(mkproof assert acme/other stranger.key)")")" = "429 rate_limited" ] ||
	fail "the seventh bad proof (bucket of 6): $(cat resp.json)"
grep -q "too many proofs that do not hold" resp.json ||
	fail "the seventh bad proof's message: $(cat resp.json)"
stop_serve

# 13. A renewal that signs nothing spends no renewal: of 2 a day, three
# renewals with a bad proof (each 401 bad_proof) and two while keyd is
# gone (each an error) leave both, for the two valid renewals after them;
# a third valid one is then 429. Bad renewal proofs spend the proof
# bucket, as bad assertion proofs do.
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"
export RINGFENCE_CONNECTOR_RENEWALS=2
rf keys list >/dev/null
serve_up 120
for i in 1 2 3; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "arch-r$i.key" -out "arch-r$i.csr" -subj /CN=arch 2>/dev/null
done
for i in 1 2 3; do
	[ "$(renew arch arch-r1.csr "$(mkproof renew "$(spki arch-r1.csr)" stranger.key)")" = "401 bad_proof" ] ||
		fail "renewal $i with a bad proof: $(cat resp.json)"
done
# Another connector's key: refused without naming whose it is (the
# operator's to know), and free.
[ "$(renew arch sync.csr "$(mkproof renew "$(spki sync.csr)" arch.key)")" = "400 bad_request" ] ||
	fail "renewal with another connector's key: $(cat resp.json)"
! grep -q "sync" resp.json || fail "the refusal names the key's connector: $(cat resp.json)"
# keyd killed under a connection whose handshake is done: two valid
# renewals on it are answered with an error.
jq -n --rawfile csr arch-r1.csr --arg proof "$(mkproof renew "$(spki arch-r1.csr)" arch.key)" \
	'{csr: $csr, proof: $proof}' >renew.json
got=$(python3 - "$tport" "$(cat "$RINGFENCE_HOME/keyd.pid")" <<'PY'
import http.client, os, signal, ssl, sys
ctx = ssl.create_default_context(cafile="root.pem")
ctx.check_hostname = False
ctx.load_cert_chain("arch.pem", "arch.key")
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
c.connect()
os.kill(int(sys.argv[2]), signal.SIGKILL)
body = open("renew.json").read()
for _ in range(2):
    c.request("POST", "/v1/connector/renew", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    print(r.status, end=" ")
PY
)
case $got in "5"??" 5"??" ") ;; *) fail "two renewals while keyd is gone: '$got'" ;; esac
rf keys list >/dev/null
[ "$(renew arch arch-r1.csr "$(mkproof renew "$(spki arch-r1.csr)" arch.key)")" = "200 " ] ||
	fail "the first valid renewal after five that signed nothing: $(cat resp.json)"
[ "$(renew arch arch-r2.csr "$(mkproof renew "$(spki arch-r2.csr)" arch.key)")" = "200 " ] ||
	fail "the second valid renewal: $(cat resp.json)"
[ "$(renew arch arch-r3.csr "$(mkproof renew "$(spki arch-r3.csr)" arch.key)")" = "429 rate_limited" ] ||
	fail "a third renewal of 2 a day: $(cat resp.json)"
stop_serve
unset RINGFENCE_CONNECTOR_RENEWALS

# 14. A revoked connector's request without a proof, proofs required: it
# is refused as revoked, and recorded as every refusal is (it was
# answered proof_required, and nothing was recorded).
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout gone.key -out gone.csr -subj /CN=gone 2>/dev/null
rf connector add gone --csr gone.csr --out gone.pem >/dev/null
rf connector bind gone acme/m365 >/dev/null
rf connector revoke gone >/dev/null
gserial=$(openssl x509 -in gone.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
export RINGFENCE_CONNECTOR_PROOF=required
serve_up 120
[ "$(ask gone "$(body acme/m365)")" = "401 revoked" ] ||
	fail "a revoked connector without a proof: $(cat resp.json)"
stop_serve
rf audit search --json | python3 -c 'import json, sys
s = sys.argv[1].lstrip("0")
ok = any(e["event"].get("type") == "refuse" and e["event"].get("actor", "").lstrip("0") == s
         for e in map(json.loads, sys.stdin))
sys.exit(0 if ok else 1)' "$gserial" || fail "no refusal leaf for the revoked connector"
unset RINGFENCE_CONNECTOR_PROOF
rf keyd stop >/dev/null 2>&1 || fail "keyd stop"

rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_proof: ok"
