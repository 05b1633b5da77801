#!/usr/bin/env bash
# Issue 14: a tenant waived while contain runs is left waived, and the
# rest of the run goes on with the keys it has: nothing is made twice.
# Before, the waiver failed contain's batch ("being contained by another
# run"), its keys were destroyed, and the rerun made them all again.
#   1. Waived while contain takes and makes the new keys (test seam
#      RINGFENCE_TEST_PAUSE_AT=incident-keys-taken, before they are
#      recorded on the connections).
#   2. Waived after they are recorded, before the certificates are issued
#      (seam incident-reissue).
# Either way: contain exits 0, the waived connection keeps its credential
# and is `waived`, every other one is contained, each connection of the
# incident had one key taken or made for it, the waived one's key is
# destroyed, with its leaves, and no key is left reserved.
set -euo pipefail
N=6
. "$(dirname "$0")/lib/state.sh" waive-during
h=$RINGFENCE_HOME
db=$h/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
state_of() { q "SELECT state FROM incident_items WHERE incident = $1 AND tenant = '$2'"; }
# Keys taken from the pool or generated for incident $1.
keys_for() {
	q "SELECT (SELECT count(*) FROM pool WHERE ref = 'incident-$1') +
		(SELECT count(*) FROM keys WHERE made_for = 'incident-$1')"
}

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" $N 0 >/dev/null

waive_at() { # SEAM TENANT: contain held at SEAM while TENANT is waived
	local seam=$1 tenant=$2 id pid rc=0 old key
	rm -f "$h/go"
	# Half the keys from the pool, half made.
	rf keys pool fill --alg ec-p256 --count $((N / 2)) >/dev/null
	id=$(rf incident open --scope all --reason "waive at $seam" 2>/dev/null)
	old=$(q "SELECT serial FROM conns WHERE tenant = '$tenant'")
	RINGFENCE_TEST_PAUSE_AT=$seam RINGFENCE_TEST_PAUSE_MS=120000 \
		RINGFENCE_TEST_PAUSE_UNTIL="$h/go" \
		"$RINGFENCE" incident contain "$id" >"$h/out" 2>"$h/err" &
	pid=$!
	await_pause "$seam" "$h/err" "$pid"
	rf incident confirm "$id" --tenant "$tenant" --waive >/dev/null || fail "waiving $tenant"
	touch "$h/go"
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "$seam: contain with $tenant waived meanwhile: exit $rc: $(cat "$h/err")"
	[ "$(state_of "$id" "$tenant")" = waived ] || fail "$seam: $tenant is $(state_of "$id" "$tenant")"
	[ "$(q "SELECT serial FROM conns WHERE tenant = '$tenant'")" = "$old" ] ||
		fail "$seam: the waived $tenant lost its credential"
	[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained'")" = $((N - 1)) ] ||
		fail "$seam: not every other connection is contained: $(q "SELECT state, count(*) FROM incident_items WHERE incident = $id GROUP BY state")"
	[ "$(q "SELECT state FROM incidents WHERE id = $id")" = contained ] || fail "$seam: incident $id not contained"
	[ "$(keys_for "$id")" = $N ] || fail "$seam: $(keys_for "$id") keys taken or made for $N connections"
	key=$(q "SELECT id FROM keys WHERE made_for = 'incident-$id' AND label = '$tenant/mail'
		UNION SELECT key_id FROM pool WHERE ref = 'incident-$id' AND taken_by = '$tenant/mail'")
	[ -n "$key" ] || fail "$seam: no key was taken or made for $tenant"
	[ "$(q "SELECT state FROM keys WHERE id = '$key'")" = destroyed ] ||
		fail "$seam: the key for the waived $tenant is $(q "SELECT state FROM keys WHERE id = '$key'")"
	[ "$(q "SELECT count(*) FROM audit_leaf WHERE key_id = '$key' AND type = 'destroy'")" = 1 ] ||
		fail "$seam: the key for the waived $tenant has no destroy leaf"
	[ "$(q "SELECT count(*) FROM keys WHERE state = 'reserved'")" = 0 ] || fail "$seam: keys left reserved"
	q "SELECT detail FROM incident_events WHERE incident = $id AND kind = 'waived-meanwhile'" | grep -q "^1 connections waived" ||
		fail "$seam: no waived-meanwhile event"
	rf incident confirm "$id" --all >/dev/null
	rf incident close "$id" >/dev/null 2>"$h/err" || fail "$seam: close: $(cat "$h/err")"
}
waive_at incident-keys-taken t000002
waive_at incident-reissue t000003
rf keys list >/dev/null 2>"$h/err" || fail "keys list: $(cat "$h/err")"
rf audit verify >/dev/null
echo "incident waive during contain: OK"
