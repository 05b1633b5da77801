#!/usr/bin/env bash
# A connection an open incident has not contained yet gets no credential
# from elsewhere, and one that has one anyway does not stall contain for
# every other connection (an adversarial test: one `issue` under an open
# incident made every contain fail, all connections left revoked with
# nothing issued, and the way out mentioned nowhere).
# - issue (--keygen, --csr, --csr-dir) for such a connection is refused:
#   one line naming the incident and what to do, exit 1, nothing written;
#   a connection outside the incident is issued to as before;
# - a connection whose current credential is not the one the incident
#   recorded (the state an older ringfence's issue left, made here by
#   moving a certificate of the tenant onto the connection in the store)
#   is left alone: contain contains every other connection, and its error
#   names the connection and the way out (waive it), not a rerun; once it
#   is waived, contain finishes;
# - the same met inside the issuance (the credential changed between
#   contain's check and its batch, at the test seam incident-reissue)
#   costs the batch that one connection: the others are contained and the
#   key reserved for it is destroyed.
set -euo pipefail
N=${RF_ELSEWHERE_TENANTS:-40}
. "$(dirname "$0")/lib/state.sh" elsewhere
h=$RINGFENCE_HOME
db=$h/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
# What a refused issue must leave as it was.
snap() {
	q "SELECT (SELECT count(*) FROM certs) || ' ' ||
		(SELECT count(*) FROM certs WHERE revoked = 1) || ' ' ||
		(SELECT count(*) FROM keys) || ' ' ||
		(SELECT count(*) FROM pool WHERE state = 'free') || ' ' ||
		(SELECT group_concat(serial || '/' || previous) FROM conns)"
}
# Move certificate of TENANT/FROM onto TENANT/TO as its current credential
# (its current one becoming the previous), FROM's row gone: what an issue
# that did not check for the incident did to TO.
move_onto() { # TENANT FROM TO
	q "UPDATE conns SET previous = serial, serial = (SELECT serial FROM conns
		WHERE tenant = '$1' AND name = '$2') WHERE tenant = '$1' AND name = '$3';
	   DELETE FROM conns WHERE tenant = '$1' AND name = '$2'"
}
state_of() { q "SELECT state FROM incident_items WHERE incident = $1 AND tenant = '$2' AND name = '$3'"; }

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 0 >/dev/null
rf tenant add race >/dev/null
for c in c1 c2 c3 c4 c5; do
	rf issue --tenant race --connection $c --profile client --keygen ec-p256 >/dev/null 2>&1
done
rf keys pool fill >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$h/ec.key" \
	-subj /CN=ec -out "$h/ec.csr" 2>/dev/null
id=$(rf incident open --scope all --reason "vendor breach" 2>/dev/null)

# 1. issue for a connection the incident has not contained: refused.
mkdir "$h/dir"
cp "$h/ec.csr" "$h/dir/mail.pem"
before=$(snap)
for how in keygen csr csr-dir; do
	case $how in
	keygen) args=(--connection mail --keygen ec-p256) ;;
	csr) args=(--connection mail --csr "$h/ec.csr") ;;
	csr-dir) args=(--csr-dir "$h/dir" --out "$h/outdir") ;;
	esac
	rc=0
	rf issue --tenant t000020 --profile client "${args[@]}" >"$h/out" 2>"$h/err" || rc=$?
	[ "$rc" = 1 ] || fail "issue --$how for a connection of open incident $id: exit $rc: $(cat "$h/err")"
	[ "$(wc -l <"$h/err")" = 1 ] || fail "issue --$how: not one line: $(cat "$h/err")"
	grep -q "t000020/mail" "$h/err" && grep -q "incident $id" "$h/err" &&
		grep -q "'ringfence incident contain $id'" "$h/err" ||
		fail "issue --$how: the refusal does not name the connection, the incident and what to do: $(cat "$h/err")"
	[ "$(snap)" = "$before" ] || fail "the refused issue --$how changed the store"
	[ ! -e "$h/outdir/mail.pem" ] || fail "the refused issue --csr-dir wrote a chain"
done
# A connection outside the incident (new since it opened) is issued to.
rf issue --tenant t000030 --connection side --profile client --keygen ec-p256 >/dev/null 2>"$h/err" ||
	fail "issue for a connection outside the incident: $(cat "$h/err")"
rf issue --tenant t000031 --connection side --profile client --keygen ec-p256 >/dev/null 2>&1

# 2. Credentials from elsewhere: t000030/mail and t000031/mail.
x30=$(q "SELECT serial FROM conns WHERE tenant = 't000030' AND name = 'side'")
x31=$(q "SELECT serial FROM conns WHERE tenant = 't000031' AND name = 'side'")
move_onto t000030 side mail
move_onto t000031 side mail
rc=0
rf incident contain "$id" >"$h/out" 2>"$h/err" || rc=$?
[ "$rc" = 1 ] || fail "contain with credentials from elsewhere: exit $rc: $(cat "$h/err")"
last=$(tail -1 "$h/err")
for want in "t000030/mail" "$x30" "t000031/mail" \
	"'ringfence incident confirm $id --tenant t000030 --connection mail --waive'"; do
	grep -qF -- "$want" <<<"$last" || fail "contain's error lacks \"$want\": $last"
done
! grep -q "again to resume" "$h/err" || fail "contain's error says to rerun it: $last"
total=$(q "SELECT count(*) FROM incident_items WHERE incident = $id")
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = $((total - 2)) ] ||
	fail "contain did not contain the other connections: $(q "SELECT state, count(*) FROM incident_items WHERE incident = $id GROUP BY state")"
[ "$(state_of "$id" t000030 mail)" = affected ] && [ "$(state_of "$id" t000031 mail)" = affected ] ||
	fail "the connections from elsewhere are not left affected"
[ "$(q "SELECT serial FROM conns WHERE tenant = 't000030' AND name = 'mail'")" = "$x30" ] ||
	fail "contain replaced the credential from elsewhere"
[ "$(q "SELECT revoked FROM certs WHERE serial = '$x30'")" = 0 ] || fail "contain revoked the credential from elsewhere"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'affected' AND new_key != ''")" = 0 ] ||
	fail "contain reserved keys for the connections it leaves alone"
# The rerun says the same, and changes nothing.
before=$(snap)
rf incident contain "$id" >/dev/null 2>"$h/err2" && fail "the rerun passed over the credentials from elsewhere"
[ "$(tail -1 "$h/err2")" = "$last" ] || fail "the rerun says another thing: $(tail -1 "$h/err2")"
[ "$(snap)" = "$before" ] || fail "the rerun changed the store"
# Still under the incident: issue is refused there too.
rf issue --tenant t000030 --connection mail --profile client --keygen ec-p256 >/dev/null 2>"$h/err" &&
	fail "issue for a connection left affected"
grep -q "incident $id" "$h/err" || fail "issue refusal: $(cat "$h/err")"

# The way out: waived (one connection, then a whole tenant), contain ends.
rf incident confirm "$id" --tenant t000030 --connection mail --waive >/dev/null ||
	fail "waiving one connection"
[ "$(state_of "$id" t000030 mail)" = waived ] || fail "t000030/mail not waived"
[ "$(state_of "$id" t000030 side)" = "" ] || fail "a connection outside the incident joined it"
rf incident confirm "$id" --tenant t000031 --waive >/dev/null
rf incident contain "$id" >"$h/out" 2>"$h/err" || fail "contain after the waive: $(cat "$h/err")"
[ "$(q "SELECT state FROM incidents WHERE id = $id")" = contained ] || fail "incident $id not contained"
[ "$(q "SELECT revoked FROM certs WHERE serial = '$x30'")" = 0 ] || fail "the kept credential was revoked"
rf issue --tenant t000020 --connection mail --profile client --keygen ec-p256 >/dev/null 2>"$h/err" ||
	fail "issue for a contained connection: $(cat "$h/err")"
rf issue --tenant t000030 --connection mail --profile client --keygen ec-p256 >/dev/null 2>"$h/err" ||
	fail "issue for a waived connection: $(cat "$h/err")"

# 3. The same inside the issuance: race/c3 changes while contain is held
# after its check (test builds: RINGFENCE_TEST_PAUSE_AT=incident-reissue).
id2=$(rf incident open --scope tenant:race --reason "race" 2>/dev/null)
rf issue --tenant race --connection scratch --profile client --keygen ec-p256 >/dev/null 2>&1
x=$(q "SELECT serial FROM conns WHERE tenant = 'race' AND name = 'scratch'")
RINGFENCE_TEST_PAUSE_AT=incident-reissue RINGFENCE_TEST_PAUSE_MS=120000 \
	RINGFENCE_TEST_PAUSE_UNTIL="$h/go" \
	"$RINGFENCE" incident contain "$id2" >"$h/out" 2>"$h/err" &
pid=$!
await_pause incident-reissue "$h/err" "$pid"
reserved=$(q "SELECT new_key FROM incident_items WHERE incident = $id2 AND name = 'c3'")
[ -n "$reserved" ] || fail "no key reserved for race/c3 before the issuance"
move_onto race scratch c3
touch "$h/go"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 1 ] || fail "contain that met a credential from elsewhere in its batch: exit $rc: $(cat "$h/err")"
last=$(tail -1 "$h/err")
grep -qF "race/c3" <<<"$last" && grep -qF "$x" <<<"$last" &&
	grep -qF "'ringfence incident confirm $id2 --tenant race --connection c3 --waive'" <<<"$last" ||
	fail "contain's error does not name race/c3 and the way out: $last"
! grep -q "again to resume" "$h/err" || fail "contain's error says to rerun it: $last"
for c in c1 c2 c4 c5; do
	[ "$(state_of "$id2" race $c)" = contained ] || fail "race/$c not contained: $(state_of "$id2" race $c)"
done
[ "$(state_of "$id2" race c3)" = affected ] || fail "race/c3 is $(state_of "$id2" race c3)"
[ "$(q "SELECT serial FROM conns WHERE tenant = 'race' AND name = 'c3'")" = "$x" ] ||
	fail "contain replaced race/c3's credential from elsewhere"
[ "$(q "SELECT state FROM keys WHERE id = '$reserved'")" = destroyed ] ||
	fail "the key reserved for race/c3 is $(q "SELECT state FROM keys WHERE id = '$reserved'"), not destroyed"
rf incident confirm "$id2" --tenant race --connection c3 --waive >/dev/null
rf incident contain "$id2" >/dev/null 2>"$h/err" || fail "contain after the waive: $(cat "$h/err")"
[ "$(q "SELECT state FROM incidents WHERE id = $id2")" = contained ] || fail "incident $id2 not contained"
rf keys list >/dev/null 2>"$h/err" || fail "keys list: $(cat "$h/err")"
rf audit verify >/dev/null
echo "incident elsewhere: OK"
