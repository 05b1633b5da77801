# Sourced after lib/state.sh by tests that run the user split as root:
# throwaway users standing for ringfence-keyd ($ku) and ringfence ($su), in
# a throwaway group ($grp), removed on exit with the state folder (and
# whatever the test puts in $extra_cleanup, a command).
# usage: . lib/users.sh
[ "$(id -u)" = 0 ] || fail "$(basename "$0") runs as root (CI does)"
tag=$$
ku=rfk$tag su=rfs$tag grp=rfg$tag
extra_cleanup=${extra_cleanup:-true}
# Tests running at once (ctest -j) take /etc/passwd's lock in turn: a
# command that finds it taken is tried again.
retry() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		"$@" 2>/dev/null && return 0
		sleep 0.$((RANDOM % 9 + 1))
	done
	"$@"
}
retry groupadd --system "$grp"
retry useradd --system -M -s /usr/sbin/nologin -g "$grp" "$ku"
retry useradd --system -M -s /usr/sbin/nologin -g "$grp" "$su"
users_cleanup() {
	cleanup
	userdel "$ku" 2>/dev/null || true
	userdel "$su" 2>/dev/null || true
	groupdel "$grp" 2>/dev/null || true
	$extra_cleanup
}
trap users_cleanup EXIT
export RINGFENCE_CUSTODY_USER=$ku RINGFENCE_SERVER_USER=$su
