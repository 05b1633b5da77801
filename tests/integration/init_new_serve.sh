#!/usr/bin/env bash
# init_new_serve.sh: `init --new` while serve runs on the state is refused
# in one line that says to stop serve first, and nothing moves: the store,
# the tokens and the custody PIN stay, and serve still answers from them.
# A serve.sock bound by a process that never answers is refused too, saying
# why. Once serve is stopped (by its PID), init --new moves the old state
# aside and makes a new one. serve listens on 127.0.0.1 only, bounded in time.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" init-new-serve
. "$(dirname "$0")/lib/serve.sh"
cd "$RINGFENCE_HOME"
unset RINGFENCE_PIN RINGFENCE_DB_PATH || true

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "init"; }
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 --out c.pem >/dev/null

start_serve --duration 120 --threads 2
curl -sf -m 5 -o root.pem "http://127.0.0.1:$port/ca/root.pem" || fail "serve does not serve its root"

# Refused while serve runs: one line, naming serve and how to go on.
sum=$(sha256sum ringfence.db | cut -d' ' -f1)
pin=$(custody_pin)
set +e
rf init --new >out.txt 2>err.txt
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "init --new succeeded while serve runs"
[ "$(wc -l <err.txt)" -eq 1 ] || { cat err.txt >&2; fail "the refusal is not one line"; }
grep -q "serve is running" err.txt || fail "the refusal does not say serve runs: $(cat err.txt)"
grep -q "stop it first" err.txt || fail "the refusal does not say what to do: $(cat err.txt)"
ls -d old-* >/dev/null 2>&1 && fail "a refused init --new moved the state aside"
[ -d tokens ] || fail "a refused init --new moved the tokens"
[ "$(custody_pin)" = "$pin" ] || fail "a refused init --new changed the custody PIN"
[ "$(sha256sum ringfence.db | cut -d' ' -f1)" = "$sum" ] ||
	fail "a refused init --new changed the store"
# serve still answers from the state it had (the root it served before).
curl -sf -m 5 -o root2.pem "http://127.0.0.1:$port/ca/root.pem" ||
	fail "serve stopped answering after the refused init --new"
cmp -s root.pem root2.pem || fail "serve's root changed after the refused init --new"

# Stopped by its PID. A process bound to serve.sock that never answers
# (a serve hung, or not serve at all) is refused too, with the reason.
kill -TERM "$server"
wait "$server" 2>/dev/null || true
server=""
rm -f serve.sock
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
time.sleep(60)' "$RINGFENCE_HOME/serve.sock" &
mute=$!
for _ in $(seq 50); do [ -S serve.sock ] && break; sleep 0.1; done
set +e
rf init --new >out3.txt 2>err3.txt
rc=$?
set -e
kill "$mute" 2>/dev/null || true
wait "$mute" 2>/dev/null || true
rm -f serve.sock
[ "$rc" -ne 0 ] || fail "init --new succeeded beside a serve.sock that does not answer"
[ "$(wc -l <err3.txt)" -eq 1 ] || { cat err3.txt >&2; fail "the refusal is not one line"; }
grep -q "cannot tell whether serve runs" err3.txt || fail "the refusal does not say why: $(cat err3.txt)"
ls -d old-* >/dev/null 2>&1 && fail "a refused init --new moved the state aside"
# Then init --new goes ahead, the old state kept aside.
rf init --new >out2.txt 2>err2.txt || { cat err2.txt >&2; fail "init --new after serve stopped"; }
old=$(ls -d old-* | head -1)
[ -n "$old" ] && [ -f "$old/ringfence.db" ] || fail "init --new did not keep the old store aside"
rf crl --regenerate >/dev/null 2>crl.err ||
	{ cat crl.err >&2; fail "the new state does not sign"; }
echo "init_new_serve: ok"
