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
. "$here/lib/serve.sh"
rf init >/dev/null 2>&1 || fail "init"
pin=$(custody_pin)
[ ${#pin} -ge 32 ] || fail "no PIN in the custody folder"

# The check finds an entry where there is one.
RINGFENCE_PIN=$pin sleep 60 &
control=$!
# /proc/PID/environ is the block of the last exec: the forked shell's,
# without RINGFENCE_PIN, until it has become sleep (5 s at most).
is_sleep() { [ "$(cat "/proc/$control/comm" 2>/dev/null)" = sleep ]; }
wait_for 5 is_sleep || true
grep -qa RINGFENCE_PIN "/proc/$control/environ" || fail "the check does not see RINGFENCE_PIN"
kill "$control"

export RINGFENCE_PIN=$pin RF_ENV_MARK=still-here
start_serve
unset RINGFENCE_PIN
grep -qa RINGFENCE_PIN "/proc/$server/environ" &&
	fail "serve's /proc/PID/environ still names RINGFENCE_PIN"
grep -qaF "$pin" "/proc/$server/environ" && fail "serve's environment holds the PIN"
grep -qa "RF_ENV_MARK=still-here" "/proc/$server/environ" ||
	fail "serve's other environment entries were damaged"
# The keyd serve started was handed the PIN the same way.
kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
grep -qa RINGFENCE_PIN "/proc/$kpid/environ" &&
	fail "keyd's /proc/PID/environ still names RINGFENCE_PIN"
grep -qaF "$pin" "/proc/$kpid/environ" && fail "keyd's environment holds the PIN"
echo "serve_environ: ok"
