#!/usr/bin/env bash
# Connector proof sessions (docs/connectors.md, "Proof sessions"): the
# connector's side made with openssl alone, as the doc tells it. A
# connector opens a session with one signed proof for an X25519 key;
# keyd's answer is confirmed; each assertion's proof is then an HMAC of
# the session, accepted once, with connector_proof required. A replayed
# count, a MAC made with another key, a session proof for a renewal, a
# session of another connector, a session opened with a proof signed by
# a stranger's key or for another key, and a session after keyd restarts
# are refused (401 bad_proof); a malformed key is a 400. Every assertion
# verifies with an independent relying party. serve listens on 127.0.0.1
# only, bounded by --duration, and is stopped by its PID; keyd by the PID
# in keyd.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-session
. "$here/lib/connector.sh" connector_session
export RINGFENCE_CONN_BURST=100 RINGFENCE_CONNECTOR_PROOF=required

acme_m365
serve_up 120

b64url() { basenc --base64url -w0 | tr -d =; }
hex() { od -An -v -tx1 | tr -d ' \n'; }
unb64url() { # base64url without padding -> bytes
	local s
	s=$(cat)
	while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
	printf '%s' "$s" | basenc --base64url -d
}
# mkproof PURPOSE SUBJECT KEY: a signed proof, as the doc makes it.
mkproof() {
	local t n sig
	t=$(date +%s) n=$(openssl rand -hex 16)
	sig=$(printf 'ringfence-proof-v1\n%s\n%s\n%s\n%s\n' "$1" "$2" "$t" "$n" |
		openssl dgst -sha256 -sign "$3" | b64url)
	printf '%s.%s.%s\n' "$t" "$n" "$sig"
}
code() { # curl ARGS... -> "STATUS CODE" (the answer in resp.json)
	curl -s -o resp.json -w '%{http_code}' "$@" || true
	printf ' %s\n' "$(jq -r '.error // ""' resp.json 2>/dev/null || echo -)"
}
post() { # CONNECTOR PATH BODY
	code --cert "$1.pem" --key "$1.key" --cacert root.pem \
		-H 'Content-Type: application/json' --data-binary "$3" "$url$2"
}
# open CONNECTOR [SIGNING-KEY [KEY-NAMED]]: a session: an X25519 key
# (eph.pem, its raw public key in base64url), the signed proof for it,
# POST /v1/connector/session; on 200, keyd's key, the shared secret, the
# session key and the confirmation checked ($sid, $skey hex).
open_session() {
	local signer=${2:-$1.key} pub named kpub shared conf want
	openssl genpkey -algorithm X25519 -out eph.pem 2>/dev/null
	pub=$(openssl pkey -in eph.pem -pubout -outform DER | tail -c 32 | b64url)
	named=${3:-$pub}
	st=$(post "$1" /v1/connector/session \
		"{\"key\":\"$pub\",\"proof\":\"$(mkproof session "$named" "$signer")\"}")
	[ "$st" = "200 " ] || return 0
	sid=$(jq -r .session resp.json)
	kpub=$(jq -r .key resp.json)
	# keyd's key as a SubjectPublicKeyInfo: the X25519 prefix, then it.
	{ printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x6e\x03\x21\x00'; printf '%s' "$kpub" | unb64url; } |
		openssl pkey -pubin -inform DER -out keyd.pem
	shared=$(openssl pkeyutl -derive -inkey eph.pem -peerkey keyd.pem | hex)
	skey=$(printf 'ringfence-session-v1\n%s\n%s\n%s\n' "$pub" "$kpub" "$sid" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$shared" -binary | hex)
	want=$(printf 'ringfence-session-confirm-v1\n%s\n' "$sid" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$skey" -binary | b64url)
	conf=$(jq -r .confirm resp.json)
	[ "$conf" = "$want" ] || fail "the session's confirmation does not hold: $conf, not $want"
}
# sproof PURPOSE SUBJECT COUNT [HEXKEY [SID]]: a proof of the session.
sproof() {
	local t n mac
	t=$(date +%s) n=$(printf '%016d' "$3")
	mac=$(printf 'ringfence-proof-v1\n%s\n%s\n%s\n%s\n' "$1" "$2" "$t" "$n" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:${4:-$skey}" -binary | b64url)
	printf '%s.%s.%s.%s\n' "$t" "$n" "$mac" "${5:-$sid}"
}
assert_with() { # CONNECTOR PROOF
	post "$1" /v1/assertions "{\"connection\":\"acme/m365\",\"proof\":\"$2\"}"
}
stop_serve() {
	kill -TERM "$server"
	wait "$server" || fail "serve exited non-zero"
	server=""
}
verified() {
	jq -r .assertion resp.json >jwt.txt
	$rp "$(cat jwt.txt)" "$TID" "$CID" seen cred.pem >/dev/null
}

open_session sync
[ "$st" = "200 " ] || fail "opening a session: $st $(cat resp.json)"
[ "$(jq -r .expires resp.json)" -gt "$(date +%s)" ] || fail "the session has ended already"
sync_sid=$sid sync_key=$skey
# Three assertions, the counts out of order; each verifies.
for c in 2 1 3; do
	st=$(assert_with sync "$(sproof assert acme/m365 $c)")
	[ "$st" = "200 " ] || fail "assertion with session count $c: $st $(cat resp.json)"
	verified || fail "the assertion of count $c does not verify"
done
# Each count once: a replayed proof, and a new one of a used count.
p=$(sproof assert acme/m365 4)
[ "$(assert_with sync "$p")" = "200 " ] || fail "count 4: $(cat resp.json)"
st=$(assert_with sync "$p")
[ "$st" = "401 bad_proof" ] || fail "a replayed session proof: $st"
grep -q "used before" resp.json || fail "the replay's message: $(cat resp.json)"
st=$(assert_with sync "$(sproof assert acme/m365 2)")
[ "$st" = "401 bad_proof" ] || fail "a used count, made again: $st"
# A MAC of another key; another connection's subject.
st=$(assert_with sync "$(sproof assert acme/m365 9 "$(openssl rand -hex 32)")")
[ "$st" = "401 bad_proof" ] || fail "a MAC of another key: $st"
grep -q "does not verify" resp.json || fail "another key's message: $(cat resp.json)"
st=$(assert_with sync "$(sproof assert acme/other 10)")
[ "$st" = "401 bad_proof" ] || fail "a session proof for another connection: $st"
# Another connector cannot use sync's session (its TLS certificate is
# not the session's).
st=$(assert_with other "$(sproof assert acme/m365 11)")
[ "$st" = "401 bad_proof" ] || fail "another connector with sync's session: $st"
grep -q "not open for certificate" resp.json || fail "another connector's message: $(cat resp.json)"
# A renewal needs a signed proof, not a session's.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout new.key -out new.csr -subj /CN=sync 2>/dev/null
jq -n --rawfile csr new.csr --arg proof "$(sproof renew x 12)" \
	'{csr: $csr, proof: $proof}' >renew.json
st=$(post sync /v1/connector/renew @renew.json)
[ "$st" = "401 bad_proof" ] || fail "a renewal with a session proof: $st $(cat resp.json)"
grep -q "for assertions only" resp.json || fail "the renewal's message: $(cat resp.json)"
# Whole: it was cut at keyd's 255 characters before it said what to do.
grep -q "with the connector's key" resp.json || fail "the renewal's message is cut: $(cat resp.json)"

# Opening: a proof signed by a key that is not the certificate's, a proof
# for another X25519 key, a key that is not one.
open_session sync stranger.key
[ "$st" = "401 bad_proof" ] || fail "a session asked with a stranger's proof: $st"
open_session sync sync.key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
[ "$st" = "401 bad_proof" ] || fail "a session asked with a proof for another key: $st"
st=$(post sync /v1/connector/session \
	"{\"key\":\"short\",\"proof\":\"$(mkproof session short sync.key)\"}")
[ "$st" = "400 bad_request" ] || fail "a session with a malformed key: $st"
st=$(post sync /v1/connector/session '{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}')
[ "$st" = "400 bad_request" ] || fail "a session without a proof: $st"
# Nothing was signed for any refusal: the audit record has the four
# assertions made and no more.
n=$(rf audit search --json | jq -s '[.[] | select(.event.type == "sign" and .event.what == "assertion")] | length')
[ "$n" = 4 ] || fail "$n assertions signed, not 4"

# ringfence assert --session FILE: the first call opens a session, the
# next ones prove with it; callers at once take different counts; the
# file is the caller's alone.
cli() { # FILE: one assertion with the session kept in FILE
	rf assert --connection acme/m365 --cert sync.pem --key sync.key \
		--ca root.pem --url "$url" --session "$1" --json
}
for i in 1 2 3; do
	cli s.json >resp.json 2>err || fail "ringfence assert --session, call $i: $(cat err)"
	verified || fail "ringfence assert --session, call $i: the assertion does not verify"
done
[ "$(stat -c %a s.json)" = 600 ] || fail "the session file is mode $(stat -c %a s.json), not 600"
[ "$(jq .count s.json)" = 3 ] || fail "the session file's count is $(jq .count s.json), not 3"
s1=$(jq -r .session s.json)
pids=()
for i in 1 2 3 4; do
	cli s.json >"par$i.json" 2>"par$i.err" &
	pids+=($!)
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fail "ringfence assert --session at once, call $i: $(cat "par$i.err")"
done
[ "$(jq -r .session s.json)" = "$s1" ] || fail "a call opened a new session while one was open"
[ "$(jq .count s.json)" = 7 ] || fail "after 7 calls the count is $(jq .count s.json)"
cp s.json s644.json
chmod 644 s644.json
if cli s644.json >/dev/null 2>err; then
	fail "a session file others can read was used"
fi
grep -q "chmod 600" err || fail "the session file's mode: $(cat err)"
# A path that is not a session file (a mistyped --session sync.key) is
# refused and left as it was; so is a second name of the session file.
cp sync.key notours.key
chmod 600 notours.key
if cli notours.key >/dev/null 2>err; then
	fail "a file that is not a session file was used"
fi
grep -q "not a session file" err || fail "the other file's message: $(cat err)"
cmp -s sync.key notours.key || fail "ringfence assert changed a file that was not its session file"
ln s.json s-link.json
if cli s-link.json >/dev/null 2>err; then
	fail "a session file with two names was used"
fi
rm s-link.json
if rf assert --renew new.csr --cert sync.pem --key sync.key --ca root.pem \
	--url "$url" --session s.json >/dev/null 2>err; then
	fail "--renew took --session"
fi
n=$(rf audit search --json | jq -s '[.[] | select(.event.type == "sign" and .event.what == "assertion")] | length')
[ "$n" = 11 ] || fail "$n assertions signed, not 11"

# keyd restarts: the session is gone; a new one works, and ringfence
# assert opens one by itself.
stop_serve
stop_keyd
serve_up 120
cli s.json >resp.json 2>err || fail "ringfence assert --session after keyd restarted: $(cat err)"
verified || fail "the assertion after keyd restarted does not verify"
[ "$(jq -r .session s.json)" != "$s1" ] || fail "ringfence assert kept a session keyd no longer knows"
st=$(assert_with sync "$(sproof assert acme/m365 13 "$sync_key" "$sync_sid")")
[ "$st" = "401 bad_proof" ] || fail "a session of the keyd before: $st"
grep -q "session_unknown: .*open a new one" resp.json || fail "the lost session's message: $(cat resp.json)"
open_session sync
[ "$st" = "200 " ] || fail "opening a session after keyd restarted: $st $(cat resp.json)"
st=$(assert_with sync "$(sproof assert acme/m365 1)")
[ "$st" = "200 " ] || fail "the new session's assertion: $st $(cat resp.json)"
verified || fail "the new session's assertion does not verify"
stop_serve
echo "connector_session: OK"
