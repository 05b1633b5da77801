#!/usr/bin/env bash
# custody-check.sh [STATE_FOLDER]: checks a running state from outside,
# as issue 11's reviewer does after `make run` (docs/keys.md, "Process
# split"): owners and modes of the token folder, the custody folder and
# the PIN; no PIN file in the state folder; keyd and serve under their two
# users, keyd no child of serve; neither dumpable nor making core files;
# RINGFENCE_PIN and the PIN's bytes in neither's environment; the server
# user unable to read the token folder or the PIN. One line per check,
# "ok" or "FAIL", and exit 1 if any failed. Run as root (it reads the other
# processes' /proc files and becomes the server user to try the reads).
# The users and the custody folder are the settings' (RINGFENCE_CUSTODY_USER,
# RINGFENCE_SERVER_USER, RINGFENCE_CUSTODY_DIR), as for make run.
set -uo pipefail
home=$(cd "${1:-${RINGFENCE_HOME:-$PWD/var}}" && pwd) || exit 2
custody=${RINGFENCE_CUSTODY_DIR:-$home-custody}
ku=${RINGFENCE_CUSTODY_USER:-ringfence-keyd}
su=${RINGFENCE_SERVER_USER:-ringfence}
[ "$(id -u)" = 0 ] || { echo "custody-check.sh: run it as root" >&2; exit 2; }
bad=0
check() {
	local what=$1
	shift
	if "$@"; then echo "ok    $what"; else
		echo "FAIL  $what"
		bad=1
	fi
}
is() { [ "$(stat -c %U:%a "$1" 2>/dev/null)" = "$2" ]; }
# The process bound to a socket of the state folder (ss names it).
sock_pid() {
	ss -xapn 2>/dev/null | awk -v p="$home/$1" '$5 == p' |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}
user_of() { ps -o user:32= -p "$1" 2>/dev/null | tr -d ' '; }
no_dump() {
	# A process that is not dumpable has its /proc files owned by root.
	[ "$(user_of "$1")" != root ] && [ "$(stat -c %U "/proc/$1/environ")" = root ]
}
no_core() { grep -Eq '^Max core file size +0 +0' "/proc/$1/limits"; }
no_pin_env() {
	! grep -qa 'RINGFENCE_PIN' "/proc/$1/environ" &&
		{ [ -z "$pin" ] || ! grep -qaF "$pin" "/proc/$1/environ"; }
}
cannot_read() {
	local g
	g=$(id -g "$su" 2>/dev/null) || return 1
	! setpriv --reuid "$su" --regid "$g" --clear-groups -- cat "$1" >/dev/null 2>&1 &&
		! setpriv --reuid "$su" --regid "$g" --clear-groups -- ls "$2" >/dev/null 2>&1
}
pin=$(cat "$custody/token.pin" 2>/dev/null || true)

check "tokens/ is $ku's alone (0700)" is "$home/tokens" "$ku:700"
check "custody folder $custody is $ku's alone (0700)" is "$custody" "$ku:700"
check "the PIN file is $ku's alone (0600)" is "$custody/token.pin" "$ku:600"
check "no PIN file in the state folder" \
	test -z "$(find "$home" \( -name token.pin -o -name token.so-pin \) -print -quit)"
kpid=$(sock_pid keyd.sock)
spid=$(sock_pid serve.sock)
check "keyd runs (keyd.sock: pid ${kpid:-none})" test -n "$kpid"
check "serve runs (serve.sock: pid ${spid:-none})" test -n "$spid"
if [ -n "$kpid" ]; then
	check "keyd runs as $ku ($(user_of "$kpid"))" test "$(user_of "$kpid")" = "$ku"
	check "keyd is not dumpable" no_dump "$kpid"
	check "keyd makes no core files" no_core "$kpid"
	check "keyd's environment holds no RINGFENCE_PIN and no PIN" no_pin_env "$kpid"
fi
if [ -n "$spid" ]; then
	check "serve runs as $su ($(user_of "$spid"))" test "$(user_of "$spid")" = "$su"
	check "serve is not dumpable" no_dump "$spid"
	check "serve makes no core files" no_core "$spid"
	check "serve's environment holds no RINGFENCE_PIN and no PIN" no_pin_env "$spid"
fi
if [ -n "$kpid" ] && [ -n "$spid" ]; then
	check "keyd is no child of serve" test "$(ps -o ppid= -p "$kpid" | tr -d ' ')" != "$spid"
fi
check "$su cannot read the PIN or list tokens/" cannot_read "$custody/token.pin" "$home/tokens"
exit $bad
