#!/usr/bin/env bash
# Issue 14: contain's "elsewhere" error and event name the connections it
# leaves alone, and tenant and connection names are up to 64 and 63
# characters. The error is one line of at most 511 bytes and the event's
# detail at most 511: with long names both say how many connections there
# are and name the first few that fit, whole, never a name cut in the
# middle; the error keeps its way out (the confirm --waive command of the
# first one and the contain that finishes). Before, the error was cut at
# 512 bytes, way out included, and the event ended in half a name.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" elsewhere-names
h=$RINGFENCE_HOME
db=$h/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }
# TENANT FROM TO: FROM's credential becomes TO's current one (elsewhere).
move_onto() {
	q "UPDATE conns SET previous = serial, serial = (SELECT serial FROM conns
		WHERE tenant = '$1' AND name = '$2') WHERE tenant = '$1' AND name = '$3';
	   DELETE FROM conns WHERE tenant = '$1' AND name = '$2'"
}
pad() { # PREFIX LEN: PREFIX padded with x to LEN characters
	local s=$1
	while [ ${#s} -lt "$2" ]; do s=${s}x; done
	printf '%s' "$s"
}
# Every name that starts with the tenants' or connections' prefix in $1
# is one of the whole names.
whole_names() {
	local got
	for got in $(grep -oE '(tenant-[0-9]x*|conn-[0-9]x*)' <<<"$1"); do
		case $got in
		tenant-*) [ ${#got} = 64 ] || return 1 ;;
		conn-*) [ ${#got} = 63 ] || return 1 ;;
		esac
	done
}

# A credential from a CSR of a key of its own (a key label, made from
# tenant/connection, is at most 64 characters: such names get no --keygen).
csr_issue() { # TENANT CONNECTION
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$h/k.pem" -subj /CN=x -out "$h/r.csr" 2>/dev/null
	rf issue --tenant "$1" --connection "$2" --profile client --csr "$h/r.csr" \
		>/dev/null 2>"$h/ierr" || fail "issue $1/$2: $(cat "$h/ierr")"
}

# ID WANT...: contain ID fails with one line, not cut (rf_err_set cuts at
# 511 bytes: a message that long was cut), holding every WANT and no name
# in part.
contain_refused() {
	local id=$1 rc=0 last len want
	shift
	rf incident contain "$id" >"$h/out" 2>"$h/err" || rc=$?
	[ "$rc" = 1 ] || fail "contain $id: exit $rc: $(cat "$h/err")"
	last=$(tail -1 "$h/err")
	last=${last#ringfence: }
	len=$(printf '%s' "$last" | wc -c)
	[ "$len" -lt 511 ] || fail "contain $id: the error is $len bytes: cut"
	for want in "$@"; do
		grep -qF -- "$want" <<<"$last" || fail "the error ($len bytes) lacks \"$want\": $last"
	done
	whole_names "$last" || fail "the error cuts a name: $last"
}

rf init 2>/dev/null
N=5
for i in $(seq $N); do
	t=$(pad "tenant-$i" 64)
	rf tenant add "$t" >/dev/null
	csr_issue "$t" "$(pad "conn-$i" 63)"
	csr_issue "$t" side
done
# Contain's new keys for the others come from the pool (no label).
rf keys pool fill --alg ec-p256 --count $((2 * N)) >/dev/null
t1=$(pad "tenant-1" 64)
c1=$(pad "conn-1" 63)
# Incident id has tenant 1, incident id2 every other tenant.
id=$(rf incident open --scope "tenant:$t1" --reason "long names" 2>/dev/null)
id2=$(rf incident open --scope all --reason "long names, the rest" 2>/dev/null)

# 1. One connection with a credential from elsewhere, the longest names.
csr_issue "$t1" spare
s1=$(q "SELECT serial FROM conns WHERE tenant = '$t1' AND name = 'spare'")
move_onto "$t1" spare "$c1"
contain_refused "$id" "$t1/$c1" "$s1" \
	"'ringfence incident confirm $id --tenant $t1 --connection $c1 --waive'" \
	"'ringfence incident contain $id'"

# 2. Every other tenant's connection: four, names of 64 and 63.
for i in $(seq 2 $N); do
	t=$(pad "tenant-$i" 64)
	c=$(pad "conn-$i" 63)
	csr_issue "$t" spare
	move_onto "$t" spare "$c"
done
t2=$(pad "tenant-2" 64)
c2=$(pad "conn-2" 63)
contain_refused "$id2" "$((N - 1)) connections" \
	"'ringfence incident confirm $id2 --tenant $t2 --connection $c2 --waive'" \
	"'ringfence incident contain $id2'" "'ringfence incident status $id2'"
ev=$(q "SELECT detail FROM incident_events WHERE incident = $id2 AND kind = 'elsewhere' ORDER BY id DESC LIMIT 1")
len=$(printf '%s' "$ev" | wc -c)
[ "$len" -lt 511 ] || fail "the event is $len bytes: cut"
grep -qF "$((N - 1)) connections" <<<"$ev" && grep -qF "$t2/$c2" <<<"$ev" ||
	fail "the event does not count and name them: $ev"
grep -qE "and [0-9]+ more" <<<"$ev" || fail "the event does not say how many it leaves out: $ev"
whole_names "$ev" || fail "the event cuts a name: $ev"
echo "incident elsewhere names: OK"
