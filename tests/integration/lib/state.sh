# Sourced by integration tests: a fresh state folder (on /dev/shm when it
# is there: thousands of SoftHSM object files), removed on exit with the
# server the test started, if any ($server, stopped by its PID).
# usage: . lib/state.sh NAME
: "${RINGFENCE:?}" "${RF_BINARY_DIR:?}"
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
export RINGFENCE_HOME=$(mktemp -d "$base/rf-${1:-test}.XXXXXX")
server=""
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$RINGFENCE_HOME"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
rf() { "$RINGFENCE" "$@"; }
