#!/usr/bin/env bash
# serve_environ.sh: RINGFENCE_PIN leaves the environment of serve (issue 11:
# "RINGFENCE_PIN removed from its environment"). serve started with the PIN
# in its environment hands it to the keyd it starts, then wipes the whole
# entry: /proc/PID/environ (the block the kernel shows, which unsetenv
# alone leaves as it was) holds neither the PIN's bytes nor the name
# RINGFENCE_PIN, and the rest of the environment is still there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" serve-environ
work=$RINGFENCE_HOME/.test
mkdir "$work"
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rf init >/dev/null 2>&1 || fail "init"
pin=$(custody_pin)
[ ${#pin} -ge 32 ] || fail "no PIN in the custody folder"

# The check finds an entry where there is one.
RINGFENCE_PIN=$pin sleep 60 &
control=$!
sleep 0.2
grep -qa RINGFENCE_PIN "/proc/$control/environ" || fail "the check does not see RINGFENCE_PIN"
kill "$control"

port=$(freeport)
RINGFENCE_PIN=$pin RF_ENV_MARK=still-here "$RINGFENCE" serve --port "$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" || fail "serve: $(cat "$work/serve.log")"
grep -qa RINGFENCE_PIN "/proc/$server/environ" &&
	fail "serve's /proc/PID/environ still names RINGFENCE_PIN"
grep -qaF "$pin" "/proc/$server/environ" && fail "serve's environment holds the PIN"
grep -qa "RF_ENV_MARK=still-here" "/proc/$server/environ" ||
	fail "serve's other environment entries were damaged"
echo "serve_environ: ok"
