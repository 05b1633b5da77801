#!/usr/bin/env bash
# serve starts keyd again when it is gone (docs/serve.md, "Keys: the
# custody process"). keyd exits by itself when a token folder goes
# missing, or is killed; serve kept answering from memory but signed
# nothing (no new OCSP answer, TLS handshake or assertion) until the next
# command happened to start keyd. Now:
#  - keyd killed (kill -9) while serve runs: within a few seconds serve
#    has started a new one, as a command would, and answers an assertion
#    and an on-demand OCSP request (both need a signature) again; its log
#    says the attempt once;
#  - a keyd that cannot start (its token folder readable by others) is
#    tried again after 2, then 4 s (keyd_restart = 4: at most 4 s apart),
#    each attempt and why it failed said once, never a busy loop; once
#    the folder is right again, the next attempt brings keyd back;
#  - a keyd stopped with 'ringfence keyd stop' is left stopped (said
#    once) until a command starts it;
#  - with keyd_restart = 0 (a supervisor restarts keyd) serve does not.
# serve listens on 127.0.0.1 only, is bounded by --duration and stopped by
# its PID; keyd by the PID in keyd.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-restart
. "$here/lib/connector.sh" serve_keyd_restart
export RINGFENCE_CONN_RATE=0 RINGFENCE_CONNECTOR_RATE=0

acme_m365
rf issue --tenant acme --profile client --keygen ec-p256 --out c.pem >meta
serial=$(sed -n 's/^serial: //p' meta)
rf cert ca issuing >issuing.pem
ask() { # -> the HTTP status of an assertion over a new connection
	rm -f resp.json
	curl -s -m 10 -o resp.json -w '%{http_code}' --cert sync.pem \
		--key sync.key --cacert root.pem -H 'Content-Type: application/json' \
		--data-binary '{"connection":"acme/m365"}' "$url/v1/assertions" || true
}
# A SHA-256 CertID has no pre-signed answer: signed on demand by keyd.
ondemand() {
	openssl ocsp -sha256 -issuer issuing.pem -serial "0x$serial" \
		-url "http://127.0.0.1:$port/ocsp" -no_nonce -noverify 2>&1 |
		grep -q "0x$serial: good"
}

signs_within_10s() { # an on-demand OCSP answer within 10 s
	for _ in $(seq 100); do
		ondemand && return 0
		sleep 0.1
	done
	return 1
}

RINGFENCE_KEYD_RESTART=4 serve_up 120
[ "$(ask)" = 200 ] || fail "an assertion before the kill: $(cat resp.json)"
ondemand || fail "on-demand OCSP before the kill"
t0=$(date +%s%N)
keyd_kill9
old=$kpid
back=0
for _ in $(seq 150); do
	if [ "$(ask)" = 200 ] && ondemand; then
		back=1
		break
	fi
	sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ $back = 1 ] || fail "serve signs nothing $ms ms after keyd was killed: $(cat resp.json 2>/dev/null)"
[ $ms -lt 10000 ] || fail "serve took $ms ms to sign again"
new=$(cat "$RINGFENCE_HOME/keyd.pid")
[ "$new" != "$old" ] && kill -0 "$new" || fail "no new keyd ($old, $new)"
[ "$(ps -o ppid= -p "$new" | tr -d ' ')" != "$server" ] || fail "the new keyd is serve's child"
grep -q "keyd is gone: starting it again (attempt 1)" "$log" || fail "no attempt in serve's log"
# serve's maintenance thread says keyd is back on its tick after the start
# returned, a moment after the new keyd answers: wait for it.
wait_for 5 grep -q "keyd started again (attempt 1)" "$log" || fail "serve's log does not say keyd is back"

# A keyd that cannot start: attempts 1 s, then 2, 4, 4 s apart.
chmod 755 "$RINGFENCE_HOME/tokens"
keyd_kill9
sleep 9
tries=$(grep -c "keyd is gone: starting it again" "$log")
failed=$(grep -c "keyd did not start (attempt [0-9]*): .*readable by others.*; the next attempt in [0-9]* s" "$log")
[ "$tries" -ge 3 ] && [ "$tries" -le 5 ] ||
	fail "$tries attempts in 9 s with keyd unable to start (1 + 3 or 4 expected)"
[ "$failed" -eq $((tries - 1)) ] || [ "$failed" -eq $((tries - 2)) ] ||
	fail "$failed failures said for $tries attempts"
chmod 700 "$RINGFENCE_HOME/tokens"
signs_within_10s || fail "keyd did not come back once its token folder was right"
# Stopped on purpose ('ringfence keyd stop'): left stopped, said once;
# the next command starts it, and a kill after that is restarted again.
rf keyd stop >/dev/null || fail "keyd stop"
[ -e "$RINGFENCE_HOME/keyd.stopped" ] || fail "keyd stop left no keyd.stopped"
sleep 4
if rf keyd status >/dev/null 2>&1; then fail "serve started a keyd stopped with 'keyd stop'"; fi
[ "$(grep -c "keyd was stopped with 'ringfence keyd stop': not started again" "$log")" = 1 ] ||
	fail "serve did not say once that keyd was stopped on purpose: $(grep 'keyd ' "$log")"
rf tenant add later >/dev/null || fail "a command after keyd stop"
[ ! -e "$RINGFENCE_HOME/keyd.stopped" ] || fail "a started keyd left keyd.stopped"
keyd_kill9
signs_within_10s || fail "keyd killed after a command restarted it was not started again"
grep "keyd " "$log" | sed "s/^ringfence serve: /  /"
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""

# keyd_restart = 0: keyd stays gone.
export RINGFENCE_KEYD_RESTART=0
serve_up 60
keyd_kill9
sleep 3
if ondemand; then fail "on-demand OCSP signed with keyd_restart = 0"; fi
if rf keyd status >/dev/null 2>&1; then fail "serve started keyd with keyd_restart = 0"; fi
if grep -q "starting it again" "$log"; then fail "serve tried with keyd_restart = 0"; fi
kill -TERM "$server"
wait "$server" || fail "serve exited non-zero"
server=""
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "serve_keyd_restart: ok (signing again $ms ms after the kill)"
