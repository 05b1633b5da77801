# Sourced after lib/state.sh by tests that run the user split as root:
# throwaway users standing for ringfence-keyd ($ku) and ringfence ($su), in
# a throwaway group ($grp), removed on exit with the state folder (and
# whatever the test puts in $extra_cleanup, a command).
# usage: . lib/users.sh
[ "$(id -u)" = 0 ] || fail "$(basename "$0") runs as root (CI does)"
tag=$$
ku=rfk$tag su=rfs$tag grp=rfg$tag
extra_cleanup=${extra_cleanup:-true}
groupadd --system "$grp"
useradd --system -M -s /usr/sbin/nologin -g "$grp" "$ku"
useradd --system -M -s /usr/sbin/nologin -g "$grp" "$su"
users_cleanup() {
	cleanup
	userdel "$ku" 2>/dev/null || true
	userdel "$su" 2>/dev/null || true
	groupdel "$grp" 2>/dev/null || true
	$extra_cleanup
}
trap users_cleanup EXIT
export RINGFENCE_CUSTODY_USER=$ku RINGFENCE_SERVER_USER=$su
