#!/usr/bin/env bash
# keyd_kill.sh: kill -9 of the custody process.
# 1. In the middle of a 1,000-certificate batch (rf-populate through keyd)
#    with serve running: the batch fails with one line naming the custody
#    process; every certificate in the store has its "sign" leaf; the
#    record verifies; serve stays up and answers OCSP from memory; the
#    batch runs again once keyd is back.
# 2. 50 kills at random moments, starts included: every token and every
#    key is still there, each token.object non-empty.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-kill
db=$RINGFENCE_HOME/ringfence.db
work=$RINGFENCE_HOME/.test
mkdir "$work"
q() { sqlite3 -cmd ".timeout 10000" "$db" "$1"; }
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
kpid=""
# Start keyd (or find the one a command started on demand): kpid.
start_keyd() {
	"$RINGFENCE" keyd >>"$work/keyd.log" 2>&1 &
	for _ in $(seq 300); do
		if rf keyd status >/dev/null 2>&1; then
			kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
			return 0
		fi
		sleep 0.05
	done
	fail "keyd did not start: $(tail -3 "$work/keyd.log")"
}
# Certificates without their signature leaf (what "cert", ref = serial).
unrecorded() {
	q "SELECT count(*) FROM certs WHERE serial NOT IN (SELECT
		json_extract(CAST(data AS TEXT), '\$.ref') FROM audit_leaf
		WHERE type = 'sign' AND
		json_extract(CAST(data AS TEXT), '\$.what') = 'cert')"
}

rf init >/dev/null 2>&1 || fail "init"
rf tenant add acme >/dev/null
start_keyd
rf issue --tenant acme --profile client --keygen ec-p256 --out "$work/c.pem" >"$work/meta"
serial=$(sed -n 's/^serial: //p' "$work/meta")
rf cert ca issuing >"$work/issuing.pem"

port=$(freeport)
# What serve does while keyd is away: it must not start keyd again itself
# (keyd_restart, serve_keyd_restart.sh).
RINGFENCE_KEYD_RESTART=0 "$RINGFENCE" serve --port "$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done
ocsp_ok() {
	openssl ocsp -issuer "$work/issuing.pem" -serial "0x$serial" \
		-url "http://127.0.0.1:$port/ocsp" -CAfile "$work/issuing.pem" \
		-no_nonce -noverify 2>/dev/null | grep -q "0x$serial: good"
}
ocsp_ok || fail "OCSP before the kill: $(cat "$work/serve.log")"
health() { curl -s -m 2 -o "$work/health.txt" -w '%{http_code}' "http://127.0.0.1:$port/healthz"; }
[ "$(health)" = 200 ] || fail "healthz with keyd up: $(cat "$work/health.txt")"

# 1. The batch, killed once a hundred certificates are in.
base=$(q "SELECT count(*) FROM certs")
"$RF_BINARY_DIR/rf-populate" 1000 0 b custody 2>"$work/pop.err" &
pop=$!
for _ in $(seq 1200); do
	[ "$(q "SELECT count(*) FROM certs")" -ge $((base + 100)) ] && break
	kill -0 "$pop" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$kpid" || fail "keyd ended by itself: $(tail -5 "$work/keyd.log")"
kill -9 "$kpid"
wait "$kpid" 2>/dev/null || true
if wait "$pop"; then fail "the batch finished although keyd was killed"; fi
grep -q "custody process" "$work/pop.err" || fail "batch error: $(cat "$work/pop.err")"
made=$(($(q "SELECT count(*) FROM certs") - base))
[ "$made" -lt 1000 ] || fail "the kill came after the batch"
[ "$(unrecorded)" = 0 ] || fail "$(unrecorded) certificates without their leaf"
kill -0 "$server" || fail "serve ended with keyd"
ocsp_ok || fail "serve does not answer OCSP while keyd is down"
# A health check sees that nothing new can be signed, and says why.
sleep 0.3
[ "$(health)" = 503 ] || fail "healthz with keyd down: $(cat "$work/health.txt")"
grep -q "^keyd down: OCSP and CRLs are answered from memory" "$work/health.txt" ||
	fail "healthz body with keyd down: $(cat "$work/health.txt")"
# A SHA-256 CertID has no pre-signed answer: RFC 6960's tryLater, not an
# internal error, while the custody process is away.
openssl ocsp -sha256 -issuer "$work/issuing.pem" -serial "0x$serial" \
	-url "http://127.0.0.1:$port/ocsp" -no_nonce -noverify >"$work/later.txt" 2>&1 || true
grep -qi "trylater" "$work/later.txt" || fail "on-demand OCSP with keyd down: $(cat "$work/later.txt")"

start_keyd
rf audit verify >/dev/null 2>"$work/verify.err" || fail "audit verify: $(cat "$work/verify.err")"
"$RF_BINARY_DIR/rf-populate" 1000 0 c custody 2>"$work/pop2.err" ||
	fail "the batch again: $(cat "$work/pop2.err")"
[ "$(q "SELECT count(*) FROM certs WHERE tenant LIKE 'c%'")" = 1000 ] || fail "second batch count"
[ "$(unrecorded)" = 0 ] || fail "certificates without their leaf after the rerun"
ocsp_ok || fail "OCSP after keyd came back"
[ "$(health)" = 200 ] || fail "healthz after keyd came back: $(cat "$work/health.txt")"
kill -0 "$server" || fail "serve ended"

# 2. Fifty kills, some during start (login to the tokens), some later.
rf keys list --json | jq -r .id | sort >"$work/keys.before"
ntok=$(ls "$RINGFENCE_HOME/tokens" | wc -l)
kill -9 "$kpid"
wait "$kpid" 2>/dev/null || true
for i in $(seq 50); do
	"$RINGFENCE" keyd >>"$work/keyd.log" 2>&1 &
	k=$!
	sleep "0.$(printf '%03d' $((RANDOM % 600)))"
	kill -9 "$k" 2>/dev/null || true
	wait "$k" 2>/dev/null || true
done
start_keyd
[ "$(ls "$RINGFENCE_HOME/tokens" | wc -l)" = "$ntok" ] || fail "a token folder went away"
empty=$(find "$RINGFENCE_HOME/tokens" -name token.object -size 0 | wc -l)
[ "$empty" = 0 ] || fail "$empty empty token.object files"
rf keys list --json | jq -r .id | sort >"$work/keys.after"
cmp -s "$work/keys.before" "$work/keys.after" || fail "keys changed: $(diff "$work/keys.before" "$work/keys.after" | head -5)"
rf audit verify >/dev/null 2>&1 || fail "audit verify after the kills"
echo "keyd_kill: ok ($made of 1000 made before the kill)"
