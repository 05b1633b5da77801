# Sourced by integration tests: a fresh state folder (on /dev/shm when it
# is there: thousands of SoftHSM object files), removed on exit with the
# server the test started, if any ($server, stopped by its PID).
# usage: . lib/state.sh NAME
: "${RINGFENCE:?}" "${RF_BINARY_DIR:?}"
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
export RINGFENCE_HOME=$(mktemp -d "$base/rf-${1:-test}.XXXXXX")
server=""
# Under set -e a failing command in the trap would end it before the rm:
# wait returns the server's status (143 after SIGTERM), so nothing here
# may fail.
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$RINGFENCE_HOME"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
rf() { "$RINGFENCE" "$@"; }
