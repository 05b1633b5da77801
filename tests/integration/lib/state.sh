# Sourced by integration tests: a fresh state folder (on /dev/shm when it
# is there: thousands of SoftHSM object files) and its custody folder
# ($RINGFENCE_HOME-custody, the PIN), removed on exit with the server the
# test started, if any ($server, stopped by its PID), and the state
# folder's custody process (keyd, stopped by the PID in keyd.pid).
# usage: . lib/state.sh NAME
: "${RINGFENCE:?}" "${RF_BINARY_DIR:?}"
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
export RINGFENCE_HOME=$(mktemp -d "$base/rf-${1:-test}.XXXXXX")
server=""
# Run without the user split unless a test sets its own users: the machine
# may have the real ones (make run creates them) owning nothing here.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
# keyd's background refill of the standby pool (pool_refill) would make
# keys while a test counts them: off, except in tests that check it.
export RINGFENCE_POOL_REFILL=0
# Under set -e a failing command in the trap would end it before the rm:
# wait returns the server's status (143 after SIGTERM), so nothing here
# may fail.
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	stop_keyd
	rm -rf "$RINGFENCE_HOME" "$RINGFENCE_HOME-custody"
}
# Stop this state folder's keyd by its PID (never by name: other tests run
# their own), waiting up to 10 s for it to go.
stop_keyd() {
	local pid i
	pid=$(cat "$RINGFENCE_HOME/keyd.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}
custody_pin() { cat "$RINGFENCE_HOME-custody/token.pin"; }
# SEAM ERRFILE PID: wait (up to a minute) until process PID, run with
# RINGFENCE_TEST_PAUSE_AT=SEAM and its stderr to ERRFILE, is held there.
await_pause() {
	for _ in $(seq 1200); do
		grep -q "test pause at $1" "$2" && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.05
	done
	grep -q "test pause at $1" "$2" || fail "never held at the test seam $1: $(cat "$2")"
}
# wait_for SECONDS CMD...: CMD again every 0.1 s until it succeeds, for
# at most SECONDS; its last status. For what another process does a
# moment after the event a test saw.
wait_for() {
	local n=$(($1 * 10))
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
rf() { "$RINGFENCE" "$@"; }
