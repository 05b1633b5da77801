#!/usr/bin/env bash
# A store changed after keyd's checks cannot aim a destroy at another key
# (issue 11, time of check to time of use). keyd checks the ids of a
# supersession's destroy (issue_supersede.sh, section 5: the token object
# the store names must have the id's public key), then destroys what the
# store names. Here the store is changed in between: keyd is held after
# its checks (test builds: RINGFENCE_TEST_PAUSE_AT=keyd-destroy-checked),
# and the superseded key's record is pointed at the issuing key's token
# object (its CKA_ID and token) while it waits. The destroy checks each
# object's public key against the id just before destroying it: the
# issuance stands, the destroy is refused with one line saying what the
# object's public key hashes to, the issuing key is active and signs, the
# superseded key is not recorded as destroyed (its objects stay), and the
# audit record verifies.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" destroy-race
h=$RINGFENCE_HOME
db() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }
keystate() { db "SELECT state FROM keys WHERE id = '$1'"; }
# Held until the test says go (the file), at most a minute: a loaded
# machine cannot make the window close before the store is changed.
PAUSE_MS=60000
go=$h/pause.go
paused() { grep -c "test pause at keyd-destroy-checked" "$h/keyd.log" 2>/dev/null || true; }

rf init >/dev/null
rf tenant add globex >/dev/null
# keyd again, started on demand by the next command with the pause in its
# environment (it runs this binary, whose environment it inherits).
rf keyd stop >/dev/null 2>&1 || true
for i in 1 2; do
	RINGFENCE_TEST_PAUSE_AT=keyd-destroy-checked RINGFENCE_TEST_PAUSE_MS=$PAUSE_MS \
		RINGFENCE_TEST_PAUSE_UNTIL=$go \
		rf issue --tenant globex --connection web --profile client \
		--keygen ec-p256 --out "$h/v$i.pem" >"$h/v$i.txt" 2>"$h/v$i.err" ||
		fail "issue $i: $(cat "$h/v$i.err")"
done
kpid=$(cat "$h/keyd.pid")
tr '\0' '\n' <"/proc/$kpid/environ" | grep -qx "RINGFENCE_TEST_PAUSE_AT=keyd-destroy-checked" ||
	fail "keyd ($kpid) was not started with the pause in its environment"
vk1=$(sed -n 's/^key: //p' "$h/v1.txt")
iss=$(db "SELECT id FROM keys WHERE purpose = 'issuing'")
[ -n "$vk1" ] && [ -n "$iss" ] || fail "no key for the first credential, or no issuing key"
saved=$(db "SELECT token_id || ' ' || token FROM keys WHERE id = '$vk1'")

# The third issue supersedes the first and asks keyd to destroy its key.
# Once keyd says it is held after its checks, the record is changed, and
# then keyd is let go.
before=$(paused)
rf issue --tenant globex --connection web --profile client --keygen ec-p256 \
	--out "$h/v3.pem" >"$h/v3.txt" 2>"$h/v3.err" &
ipid=$!
for _ in $(seq 200); do # 20 s at most
	[ "$(paused)" -gt "$before" ] && break
	kill -0 "$ipid" 2>/dev/null || break
	sleep 0.1
done
[ "$(paused)" -gt "$before" ] || {
	wait "$ipid" || true
	fail "keyd did not pause after its checks: $(cat "$h/v3.err"; tail -n 3 "$h/keyd.log")"
}
db "UPDATE keys SET token_id = (SELECT token_id FROM keys WHERE id = '$iss'),
	token = (SELECT token FROM keys WHERE id = '$iss') WHERE id = '$vk1'"
# Changed inside the window, else the test proves nothing: after the pause
# the destroy first records the key "destroying" and its intent leaf.
[ "$(keystate "$vk1")" = active ] &&
	[ "$(db "SELECT count(*) FROM audit_leaf WHERE type = 'destroy-intent' AND key_id = '$vk1'")" = 0 ] ||
	fail "the store was changed after keyd's pause ended: nothing was tested"
: >"$go" # keyd goes on (and passes every later pause at once)
wait "$ipid" || fail "the third issue failed: $(cat "$h/v3.err")"
# What the refusal points to: keys list names the changed record.
rf keys list >"$h/kl0.txt" 2>&1 || true
grep -q "disagreement: token-id key $vk1" "$h/kl0.txt" ||
	fail "keys list does not name the changed record: $(cat "$h/kl0.txt")"
db "UPDATE keys SET token_id = '${saved%% *}', token = '${saved#* }' WHERE id = '$vk1'"

# The issuance stands.
s3=$(sed -n 's/^serial: //p' "$h/v3.txt")
[ -n "$s3" ] && [ -s "$h/v3.pem" ] || fail "no third credential: $(cat "$h/v3.err")"
# The issuing key is untouched: active, and it signs.
[ "$(keystate "$iss")" = active ] || fail "the issuing key is $(keystate "$iss")"
rf issue --tenant globex --connection web2 --profile client --keygen ec-p256 \
	>/dev/null 2>"$h/after.err" ||
	fail "the issuing key $iss no longer signs: $(cat "$h/after.err"); the third issue said: $(cat "$h/v3.err")"
# The destroy was refused, one line naming the id and what the object's
# public key hashes to (a cut line keeps at least the hash's start).
grep -q "destroying the superseded keys failed: key $vk1 in the token has a public key hashing to ${iss:0:32}" "$h/v3.err" ||
	fail "the redirected destroy: $(cat "$h/v3.err")"
grep -q "destroyed 1 superseded key" "$h/v3.err" && fail "the third issue says it destroyed a key"
# Nothing of the superseded key was destroyed, nor recorded as destroyed:
# the token still holds it (keys list finds no disagreement).
[ "$(keystate "$vk1")" != destroyed ] || fail "the superseded key is recorded as destroyed"
rf keys list --json >"$h/keys.json" 2>"$h/kl.err" || fail "keys list: $(cat "$h/kl.err")"
grep -q "\"$vk1\"" "$h/keys.json" || fail "the superseded key's objects were destroyed"
grep -q "\"$iss\"" "$h/keys.json" || fail "the issuing key is not in the token"
# The record repaired (above), `keys finish` destroys it: the intent was
# recorded, the act not done. The issuing key is untouched again, and a CA
# key the store calls "destroying" is named, not destroyed.
# A live tenant key the store alone calls destroying (keyd's ledger never
# retired it) is left too: serve's user cannot have the administrator
# destroy it.
[ "$(keystate "$vk1")" = destroying ] || fail "the superseded key is $(keystate "$vk1"), not destroying"
live=$(db "SELECT key_id FROM certs WHERE serial = '$s3'")
[ "$(keystate "$live")" = active ] || fail "the third credential's key $live is $(keystate "$live")"
db "UPDATE keys SET state = 'destroying' WHERE id IN ('$iss', '$live')"
rc=0
rf keys finish >"$h/fin.out" 2>"$h/fin.err" || rc=$?
db "UPDATE keys SET state = 'active' WHERE id IN ('$iss', '$live')"
[ "$rc" -eq 1 ] || fail "keys finish with a CA key left destroying: exit $rc: $(cat "$h/fin.out" "$h/fin.err")"
grep -q "^1 of 1 tenant keys left being destroyed are destroyed now (0 were no longer in the token); 2 left" "$h/fin.out" ||
	fail "keys finish: $(cat "$h/fin.out" "$h/fin.err")"
grep -q "key $iss (issuing) is being destroyed: it is not a tenant connection's key" "$h/fin.err" ||
	fail "keys finish did not name the issuing key: $(cat "$h/fin.err")"
grep -q "key $live: the store says it is being destroyed, keyd's ledger never took it out of service" "$h/fin.err" ||
	fail "keys finish did not name the live key: $(cat "$h/fin.err")"
[ "$(keystate "$vk1")" = destroyed ] || fail "after keys finish the superseded key is $(keystate "$vk1")"
rf keys list --json >"$h/keys.json" 2>"$h/kl.err" || fail "keys list after finish: $(cat "$h/kl.err")"
grep -q "\"$vk1\"" "$h/keys.json" && fail "keys finish left the superseded key in the token"
grep -q "\"$iss\"" "$h/keys.json" || fail "keys finish destroyed the issuing key"
grep -q "\"$live\"" "$h/keys.json" || fail "keys finish destroyed a live tenant key"
rf issue --tenant globex --connection web3 --profile client --keygen ec-p256 \
	>/dev/null 2>"$h/after2.err" || fail "the issuing key no longer signs after keys finish: $(cat "$h/after2.err")"
rf keys finish >"$h/fin2.out" || fail "keys finish with nothing to finish failed"
grep -q "^0 of 0 " "$h/fin2.out" || fail "keys finish, nothing left: $(cat "$h/fin2.out")"

# An incident's destruction of old keys does not stop at a key it must
# leave: with one old key's record pointed at the issuing key's object,
# contain destroys every other old key, leaves that one whole, fails
# naming it and the counts, and finishes once the record is repaired.
id=$(rf incident open --scope tenant:globex --reason "destroy race" 2>/dev/null | head -1)
old2=$(db "SELECT old_key FROM incident_items WHERE incident = $id AND tenant = 'globex' AND name = 'web2'")
[ -n "$old2" ] || fail "no old key for globex/web2 in incident $id"
saved=$(db "SELECT token_id || ' ' || token FROM keys WHERE id = '$old2'")
db "UPDATE keys SET token_id = (SELECT token_id FROM keys WHERE id = '$iss'),
	token = (SELECT token FROM keys WHERE id = '$iss') WHERE id = '$old2'"
rc=0
rf incident contain "$id" >"$h/c1.out" 2>"$h/c1.err" || rc=$?
[ "$rc" -ne 0 ] || fail "contain with a redirected old key succeeded: $(cat "$h/c1.out")"
grep -q "key $old2 in the token has a public key hashing to" "$h/c1.err" &&
	grep -q "old keys destroyed; parts holding" "$h/c1.err" ||
	fail "contain's failure: $(cat "$h/c1.err")"
others=$(db "SELECT count(*) FROM incident_items i JOIN keys k ON k.id = i.old_key WHERE i.incident = $id AND k.id != '$old2' AND k.state != 'destroyed'")
[ "$others" = 0 ] || fail "$others other old keys were not destroyed"
[ "$(keystate "$old2")" != destroyed ] || fail "the redirected old key is recorded destroyed"
[ "$(keystate "$iss")" = active ] || fail "the issuing key is $(keystate "$iss") after contain"
db "UPDATE keys SET token_id = '${saved%% *}', token = '${saved#* }' WHERE id = '$old2'"
rf incident contain "$id" >"$h/c2.out" 2>"$h/c2.err" || fail "contain after the repair: $(cat "$h/c2.err")"
[ "$(keystate "$old2")" = destroyed ] || fail "after the rerun the old key is $(keystate "$old2")"
rf keys list --json >"$h/keys.json" 2>"$h/kl.err" || fail "keys list after contain: $(cat "$h/kl.err")"
grep -q "\"$old2\"" "$h/keys.json" && fail "the rerun left the old key in the token"
grep -q "\"$iss\"" "$h/keys.json" || fail "contain destroyed the issuing key"
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "keyd_destroy_race: ok"
