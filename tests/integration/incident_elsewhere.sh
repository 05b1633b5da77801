#!/usr/bin/env bash
# A connection an open incident has not contained yet gets no credential
# from elsewhere (an adversarial test: one `issue` under an open incident
# made every contain fail, all connections left revoked with nothing
# issued).
# - issue (--keygen, --csr, --csr-dir) for such a connection is refused:
#   one line naming the incident and what to do, exit 1, nothing written;
#   a connection outside the incident is issued to as before.
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

rf keys list >/dev/null 2>"$h/err" || fail "keys list: $(cat "$h/err")"
rf audit verify >/dev/null
echo "incident elsewhere: OK"
