#!/usr/bin/env bash
# keys_token_folder.sh: a token whose own folder is missing (tokens/<uuid>
# moved away, the other tokens and the token folder itself still there)
# shows no key, and that must not get its keys recorded destroyed. A
# destroy that meets such a key leaves it `destroying` (it signs nothing),
# without a `destroy` leaf, and fails with one line saying what to do; the
# rerun destroys it in the token. Three times, one tenant each (an
# incident stays open until closed):
#   acme   the folder moved while keyd runs (SoftHSM shows the token empty);
#   gamma  moved and put back while keyd runs, which read the token
#          meanwhile (SoftHSM shows it empty for the rest of its life);
#   beta   moved before keyd starts (SoftHSM leaves that token out, and
#          every token after it).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" token-folder
h=$RINGFENCE_HOME
q() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }
aside=$h/aside
mkdir "$aside"

# The folder of token $1 (its token.object names it, padded with spaces).
folder_of() {
	local f
	f=$(grep -l -a -F "$1 " "$h"/tokens/*/token.object | head -n 1)
	[ -n "$f" ] || fail "no folder for token $1"
	dirname "$f"
}
# A token holding a key of tenant $1 and no CA or pool key.
token_of_tenant() {
	q "SELECT token FROM keys WHERE tenant = '$1' AND state = 'active'
		AND token NOT IN (SELECT token FROM keys WHERE purpose != 'connection'
			OR id IN (SELECT key_id FROM pool))
		ORDER BY token LIMIT 1"
}
active_in() { # $1 token, $2 tenant
	q "SELECT count(*) FROM keys WHERE token = '$1' AND tenant = '$2' AND state = 'active'"
}
destroyed_in() {
	q "SELECT count(*) FROM keys WHERE token = '$1' AND tenant = '$2' AND state = 'destroyed'"
}
# Destroy leaves of those keys (with $3 in them).
leaves_in() {
	q "SELECT count(*) FROM audit_leaf WHERE type = 'destroy' AND instr(data, '${3:-}') > 0
		AND key_id IN (SELECT id FROM keys WHERE token = '$1' AND tenant = '$2')"
}
keyd_runs() {
	[ -s "$h/keyd.pid" ] && kill -0 "$(cat "$h/keyd.pid")" 2>/dev/null || fail "$1: keyd is not running"
}
# A contain that must fail in one line, naming the token and what to do,
# and leave the keys of the token not destroyed, with no destroy leaf.
contain_refused() { # $1 incident, $2 token, $3 tenant, $4 stage, $5 what to do
	if rf incident contain "$1" >"$h/c.out" 2>"$h/c.err"; then
		fail "$4: contain exited 0: $(cat "$h/c.out" "$h/c.err")"
	fi
	grep -q "$5" "$h/c.err" || fail "$4: contain's error does not say '$5': $(cat "$h/c.err")"
	grep -q "token $2" "$h/c.err" || fail "$4: contain's error does not name token $2: $(cat "$h/c.err")"
	[ "$(wc -l <"$h/c.err")" = 1 ] || fail "$4: not one line: $(cat "$h/c.err")"
	[ "$(destroyed_in "$2" "$3")" = 0 ] ||
		fail "$4: $(destroyed_in "$2" "$3") keys of token $2 recorded destroyed, which it did not show"
	[ "$(leaves_in "$2" "$3")" = 0 ] || fail "$4: destroy leaves for keys of token $2"
}
# The rerun destroys the n keys of the token, each with its leaf.
contain_again() { # $1 incident, $2 token, $3 tenant, $4 n, $5 stage
	rf incident contain "$1" >"$h/c.out" 2>"$h/c.err" || fail "$5: the rerun: $(cat "$h/c.err")"
	[ "$(destroyed_in "$2" "$3")" = "$4" ] || fail "$5: the rerun did not destroy the keys of token $2"
	[ "$(leaves_in "$2" "$3" 'destroyed in the token')" = "$4" ] ||
		fail "$5: not one 'destroyed in the token' leaf per key of token $2"
	rf keys list >"$h/kl.txt" 2>&1 || fail "$5: keys list: $(grep -i disagree "$h/kl.txt")"
}

rf init >/dev/null 2>&1
for t in acme gamma beta; do
	rf tenant add "$t" >/dev/null
	for i in 1 2 3 4 5 6; do
		rf issue --tenant "$t" --connection "c$i" --profile client --keygen ec-p256 >/dev/null 2>&1 ||
			fail "issue $t/c$i"
	done
done

# acme: the folder goes under a running keyd.
tok=$(token_of_tenant acme)
[ -n "$tok" ] || fail "no token holding acme's keys and no CA or pool key"
dir=$(folder_of "$tok")
n=$(active_in "$tok" acme)
keyd_runs acme
mv "$dir" "$aside/"
id=$(rf incident open --scope tenant:acme --reason "folder gone" 2>/dev/null) || fail "acme: incident open"
contain_refused "$id" "$tok" acme "keyd running" "put the token back, then run the same command again"
# They sign nothing meanwhile: the intent is recorded.
[ "$(q "SELECT count(*) FROM keys WHERE token = '$tok' AND tenant = 'acme' AND state = 'destroying'")" = "$n" ] ||
	fail "keyd running: the keys of token $tok are not 'destroying': $(q "SELECT state FROM keys WHERE token = '$tok'")"
mv "$aside/$(basename "$dir")" "$h/tokens/"
contain_again "$id" "$tok" acme "$n" "keyd running"

# gamma: the folder goes and comes back under a running keyd that read
# the token meanwhile.
tok=$(token_of_tenant gamma)
[ -n "$tok" ] || fail "no token holding gamma's keys and no CA or pool key"
dir=$(folder_of "$tok")
n=$(active_in "$tok" gamma)
keyd_runs gamma
mv "$dir" "$aside/"
rf keys list >/dev/null 2>&1 || true
mv "$aside/$(basename "$dir")" "$h/tokens/"
id=$(rf incident open --scope tenant:gamma --reason "folder gone and back" 2>/dev/null) || fail "gamma: incident open"
contain_refused "$id" "$tok" gamma "folder back" "does not answer.*run the same command again"
contain_again "$id" "$tok" gamma "$n" "folder back"

# beta: keyd starts with the folder gone.
tok=$(token_of_tenant beta)
[ -n "$tok" ] || fail "no token holding beta's keys and no CA or pool key"
dir=$(folder_of "$tok")
n=$(active_in "$tok" beta)
stop_keyd
mv "$dir" "$aside/"
id=$(rf incident open --scope tenant:beta --reason "folder gone before keyd" 2>/dev/null) || fail "beta: incident open"
contain_refused "$id" "$tok" beta "keyd started after" "put the token back, then run the same command again"
mv "$aside/$(basename "$dir")" "$h/tokens/"
contain_again "$id" "$tok" beta "$n" "keyd started after"

rf audit verify >/dev/null
echo "keys token folder: OK"
