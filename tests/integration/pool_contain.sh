#!/usr/bin/env bash
# Issue 14 items 1-2: contain and issue --keygen take their keys from the
# standby pool. Checked after every stage: no key serves two certificates,
# every taken pool key has exactly one "take" leaf saying where it went,
# and each new credential keeps its connection's key algorithm (RSA stays
# RSA, read back by openssl from the certificate itself).
# Stages: pool half full (EC and RSA), kill -9 while contain takes pool
# keys then the rerun, two contains of one incident at once while
# `issue --keygen` runs, and an empty pool.
set -euo pipefail
N=${RF_POOL_TENANTS:-100}
NRSA=6
. "$(dirname "$0")/lib/state.sh" pool
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 20000" "$db" "$1"; }

# A rerun of contain with --json: stdout is one JSON object (counts, times,
# phases, rounded: lib/rounded.py); notes and progress go to stderr.
contain_json_rerun() {
	rf --json incident contain "$id" >"$RINGFENCE_HOME/rerun.json" 2>/dev/null
	python3 - "$RINGFENCE_HOME/rerun.json" "$id" <<'PY' || fail "contain --json: $(cat "$RINGFENCE_HOME/rerun.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["incident"] == int(sys.argv[2]), o
assert o["contain_s"] >= 0 and o["destroy_s"] >= 0, o
assert isinstance(o["contain_phases"], list), o
names = [p["phase"] for p in o["contain_phases"]]
assert "destroy old keys" in names and "record contained" in names, names
assert isinstance(o["pool_notes"], list), o
PY
	python3 "$(dirname "$0")/lib/rounded.py" "$RINGFENCE_HOME/rerun.json" || fail "contain --json: $(cat "$RINGFENCE_HOME/rerun.json")"
}
check_pool() { # $1: stage name
	local bad
	bad=$(q "SELECT count(*) FROM (SELECT key_id FROM certs GROUP BY key_id HAVING count(*) > 1)")
	[ "$bad" = 0 ] || fail "$1: $bad keys serve more than one certificate"
	bad=$(q "SELECT count(*) FROM pool p WHERE state != 'free' AND (SELECT count(*) FROM audit_leaf a WHERE a.type = 'pool' AND a.key_id = p.key_id AND instr(a.data, '\"what\":\"take\"') > 0) != 1")
	[ "$bad" = 0 ] || fail "$1: $bad taken pool keys without exactly one take leaf"
	bad=$(q "SELECT count(*) FROM pool WHERE state = 'free' AND key_id IN (SELECT key_id FROM certs)")
	[ "$bad" = 0 ] || fail "$1: $bad free pool keys serve a certificate"
	# A pool key's certificate belongs to the tenant the leaf names.
	bad=$(q "SELECT count(*) FROM pool p JOIN certs c ON c.key_id = p.key_id WHERE p.taken_by NOT LIKE c.tenant || '/%'")
	[ "$bad" = 0 ] || fail "$1: $bad pool keys serve another tenant than they were taken for"
	# Every connection's current credential keeps its old key's algorithm.
	bad=$(q "SELECT count(*) FROM incident_items i JOIN certs c ON c.serial = i.new_serial JOIN keys o ON o.id = i.old_key JOIN keys k ON k.id = c.key_id WHERE o.alg != k.alg")
	[ "$bad" = 0 ] || fail "$1: $bad replacements changed the key algorithm"
}

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 0 >/dev/null
# RSA connections (as Entra needs): they must stay RSA.
for i in $(seq 1 $NRSA); do
	t=$(printf 't%06d' "$i")
	rf issue --tenant "$t" --connection entra --profile client --keygen rsa-2048 >/dev/null 2>&1
done

# Connectors' own RSA-2048 keys (CSRs, not in the token): their
# replacements are RSA-2048 keys of the token, which the pool gives or
# contain generates, and its note counts them as such (not as ec-p256, the
# algorithm of no key of theirs).
NCSR=2
for i in $(seq 1 $NCSR); do
	t=$(printf 't%06d' "$i")
	openssl req -new -newkey rsa:2048 -nodes -keyout "$RINGFENCE_HOME/csr$i.key" \
		-subj "/CN=csr$i" -out "$RINGFENCE_HOME/csr$i.pem" 2>/dev/null
	rf issue --tenant "$t" --connection byok --profile client --csr "$RINGFENCE_HOME/csr$i.pem" >/dev/null 2>&1
done
NRSA_ALL=$((NRSA + NCSR))

# Bad input: one line, exit 2, nothing made.
if rf keys pool fill --alg ec-p999 2>"$RINGFENCE_HOME/err"; then fail "bad --alg accepted"; fi
grep -q "alg must be" "$RINGFENCE_HOME/err" || fail "bad --alg message: $(cat "$RINGFENCE_HOME/err")"
if rf keys pool fill --count 3 2>/dev/null; then fail "--count without --alg accepted"; fi
[ "$(q "SELECT count(*) FROM pool")" = 0 ] || fail "bad input made pool keys"

# Status: the default target is every connection plus 10 %, the CSR
# connections counted by their own keys' algorithm (RSA-2048).
rf keys pool status --json >"$RINGFENCE_HOME/st.json"
python3 - "$RINGFENCE_HOME/st.json" "$N" "$NRSA_ALL" <<'PY'
import json, sys
st = {o["alg"]: o for o in map(json.loads, open(sys.argv[1]))}
n, nrsa = int(sys.argv[2]), int(sys.argv[3])
assert st["ec-p256"]["connections"] == n, st["ec-p256"]
assert st["ec-p256"]["target"] == n + (n * 10 + 99) // 100, st["ec-p256"]
assert st["rsa-2048"]["connections"] == nrsa and st["rsa-2048"]["free"] == 0, st
# No refill has measured a rate yet: unknown, null rather than a number.
assert st["rsa-2048"]["rate"] is None and st["rsa-2048"]["refill_seconds"] is None, st
PY
# With background refill off, status says who refills (its REFILL column
# is the time a fill would take, not a promise).
RINGFENCE_POOL_REFILL=0 rf keys pool status >"$RINGFENCE_HOME/st.txt"
grep -q "^background refill is off (setting pool_refill = 0): 'ringfence keys pool fill' refills$" "$RINGFENCE_HOME/st.txt" ||
	fail "status with refill off: $(cat "$RINGFENCE_HOME/st.txt")"
RINGFENCE_POOL_REFILL=0 rf keys pool status --json | python3 -c "
import json, sys
st = [json.loads(l) for l in sys.stdin]
assert len(st) == 5 and all(o['background_refill'] is False for o in st), st" ||
	fail "status --json with refill off does not say so"

# Stage 1: the pool half full, for EC and for RSA.
rf keys pool fill --alg ec-p256 --count $((N / 2)) >/dev/null
rf keys pool fill --alg rsa-2048 --count $((NRSA / 2)) >/dev/null
[ "$(q "SELECT count(*) FROM pool WHERE state = 'free'")" = $((N / 2 + NRSA / 2)) ] || fail "fill did not make the keys asked"
[ "$(q "SELECT count(*) FROM audit_leaf WHERE type = 'keygen' AND instr(data, ' pool\"') > 0")" = $((N / 2 + NRSA / 2)) ] ||
	fail "pool keys without their keygen leaf"
id=$(rf incident open --scope all --reason "pool half full")
rf incident contain "$id" >"$RINGFENCE_HOME/err"
grep -q "standby pool has $((N / 2)) of $N ec-p256 keys needed: $((N - N / 2)) will be generated" "$RINGFENCE_HOME/err" ||
	fail "contain did not say the EC pool was short: $(cat "$RINGFENCE_HOME/err")"
grep -q "standby pool has $((NRSA / 2)) of $NRSA_ALL rsa-2048 keys needed: $((NRSA_ALL - NRSA / 2)) will be generated" "$RINGFENCE_HOME/err" ||
	fail "contain did not say the RSA pool was short: $(cat "$RINGFENCE_HOME/err")"
grep -q "$((N / 2 + NRSA / 2)) new keys from the standby pool" "$RINGFENCE_HOME/err" ||
	fail "contain did not use every pool key: $(cat "$RINGFENCE_HOME/err")"
[ "$(q "SELECT count(*) FROM pool WHERE state = 'free'")" = 0 ] || fail "pool keys left after a short pool"
check_pool "half full"
# The RSA connections' new certificates hold RSA keys (openssl reads them).
for s in $(q "SELECT c.serial FROM incident_items i JOIN certs c ON c.serial = i.new_serial WHERE i.incident = $id AND i.name = 'entra'"); do
	q "SELECT hex(der) FROM certs WHERE serial = '$s'" | xxd -r -p >"$RINGFENCE_HOME/c.der"
	openssl x509 -inform DER -in "$RINGFENCE_HOME/c.der" -noout -text | grep -q "rsaEncryption" ||
		fail "entra connection's new certificate $s is not RSA"
	openssl x509 -inform DER -in "$RINGFENCE_HOME/c.der" -noout -text | grep -q "(2048 bit)" ||
		fail "entra connection's new certificate $s is not RSA-2048"
done

# Stage 2: kill -9 while contain takes pool keys; the rerun finishes.
rf keys pool fill --alg ec-p256 --count $((N + NRSA)) >/dev/null
rf keys pool fill --alg rsa-2048 --count $NRSA_ALL >/dev/null
# (An incident stays open until closed: each stage uses its own scope, here
# the issuing CA, whose rotation makes the next stage's scope.)
id=$(rf incident open --scope issuer:issuing --reason "pool kill")
# Killed after it took every key from the pool and before it recorded them
# on its connections (test builds: RINGFENCE_TEST_KILL_AT): the rerun uses
# those keys, and takes and makes none.
if RINGFENCE_TEST_KILL_AT=incident-keys-taken "$RINGFENCE" incident contain "$id" >/dev/null 2>&1; then
	fail "contain was not stopped at incident-keys-taken"
fi
took=$(q "SELECT count(*) FROM pool WHERE ref = 'incident-$id'")
[ "$took" = $((N + NRSA_ALL)) ] || fail "the killed run took $took pool keys, not $((N + NRSA_ALL))"
check_pool "killed after the take"
rf --json incident contain "$id" >"$RINGFENCE_HOME/rerun.json" 2>/dev/null ||
	fail "the rerun after the take: $(cat "$RINGFENCE_HOME/rerun.json")"
[ "$(q "SELECT count(*) FROM pool WHERE ref = 'incident-$id'")" = "$took" ] ||
	fail "the rerun took pool keys again instead of those its killed run took"
python3 - "$RINGFENCE_HOME/rerun.json" $((N + NRSA_ALL)) <<'PY' || fail "rerun counts: $(cat "$RINGFENCE_HOME/rerun.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["pooled"] == int(sys.argv[2]) and o["generated"] == 0 and o["reserved"] == 0, o
PY
check_pool "rerun after the take"
# Then killed while it takes pool keys, on another scope; the rerun
# finishes.
rf keys pool fill --alg ec-p256 --count $((N + NRSA)) >/dev/null
rf keys pool fill --alg rsa-2048 --count $NRSA_ALL >/dev/null
id=$(rf incident open --scope "issuer:issuing-inc$id" --reason "pool kill 2")
taken0=$(q "SELECT count(*) FROM pool WHERE state = 'taken'")
"$RINGFENCE" incident contain "$id" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1200); do
	t=$(q "SELECT count(*) FROM pool WHERE state = 'taken'" 2>/dev/null || echo 0)
	[ "${t:-0}" -gt "$taken0" ] && break
	sleep 0.02
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
echo "killed after $(($(q "SELECT count(*) FROM pool WHERE state = 'taken'") - taken0)) pool keys taken, $(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained'") contained"
check_pool "killed"
contain_json_rerun
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = $((N + NRSA_ALL)) ] ||
	fail "the rerun after kill -9 did not contain every connection"
check_pool "rerun"
# The keys the killed run took serve the rerun: none is left taken and
# unused (they were left so, and the rerun took as many again).
orphans=$(q "SELECT count(*) FROM pool WHERE state = 'taken' AND ref = 'incident-$id' AND key_id NOT IN (SELECT key_id FROM certs)")
[ "$orphans" = 0 ] ||
	fail "$orphans pool keys the killed run took were left unused by the rerun"

# Stage 3: two contains of one incident at once, while issue --keygen
# takes from the same pool: the second is refused before it takes any key
# (the run lock), and takes nothing from the pool.
rf keys pool fill --alg ec-p256 --count $((N + 20)) >/dev/null
rf keys pool fill --alg rsa-2048 --count $NRSA_ALL >/dev/null
id=$(rf incident open --scope "issuer:issuing-inc$id" --reason "pool race")
"$RINGFENCE" incident contain "$id" >/dev/null 2>"$RINGFENCE_HOME/c1" &
p1=$!
"$RINGFENCE" incident contain "$id" >/dev/null 2>"$RINGFENCE_HOME/c2" &
p2=$!
# A store busy with contain's batch is an error that says to retry.
for i in $(seq 1 10); do
	for try in 1 2 3 4 5; do
		rf issue --tenant "t$(printf '%06d' $((N - i + 1)))" --connection side --profile client \
			--keygen ec-p256 >/dev/null 2>"$RINGFENCE_HOME/ie" && break
		grep -q "busy" "$RINGFENCE_HOME/ie" || fail "issue --keygen beside contain: $(cat "$RINGFENCE_HOME/ie")"
		[ "$try" -lt 5 ] || fail "issue --keygen beside contain: busy 5 times"
	done
done
rc1=0
rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
lock="is being contained or closed by another run right now"
{ [ $rc1 = 0 ] && [ $rc2 != 0 ] && grep -q "$lock" "$RINGFENCE_HOME/c2"; } ||
	{ [ $rc2 = 0 ] && [ $rc1 != 0 ] && grep -q "$lock" "$RINGFENCE_HOME/c1"; } ||
	fail "two contains at once: not one refused by the run lock and one finished: $rc1 $(cat "$RINGFENCE_HOME/c1") / $rc2 $(cat "$RINGFENCE_HOME/c2")"
[ "$(q "SELECT count(*) FROM pool WHERE ref = 'incident-$id' AND (state != 'taken' OR key_id NOT IN (SELECT key_id FROM certs))")" = 0 ] ||
	fail "a contain refused by the lock took or spoilt pool keys"
contain_json_rerun
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = $((N + NRSA_ALL)) ] ||
	fail "concurrent contains did not contain every connection"
[ "$(q "SELECT count(*) FROM pool WHERE ref = 'issuance' AND state = 'taken'")" = 10 ] ||
	fail "issue --keygen did not take its keys from the pool"
check_pool "concurrent"

# Stage 4: the RSA pool empty (stage 3 asked for more than it held):
# contain makes the keys and says so. t000001 has two RSA connections,
# entra and byok (whose key, a CSR's at first, is the token's since stage
# 1).
[ "$(q "SELECT count(*) FROM pool WHERE alg = 'rsa-2048' AND state = 'free'")" = 0 ] || fail "RSA pool not empty"
id=$(rf incident open --scope tenant:t000001 --reason "pool empty")
rf incident contain "$id" >"$RINGFENCE_HOME/err"
grep -q "standby pool has 0 of 2 rsa-2048 keys needed: 2 will be generated" "$RINGFENCE_HOME/err" ||
	fail "empty RSA pool not reported: $(cat "$RINGFENCE_HOME/err")"
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained'")" = \
	"$(q "SELECT count(*) FROM incident_items WHERE incident = $id")" ] || fail "contain with an empty pool did not finish"
check_pool "empty"
# The token holds exactly the keys the store says are in service (active:
# CA, connection and pool keys), and keys list finds no disagreement.
check_token() { # $1: stage name
	local n
	rf keys list --json >"$RINGFENCE_HOME/keys.json" ||
		fail "$1: keys list: $(grep disagreement "$RINGFENCE_HOME/keys.json" | head -3)"
	n=$(grep -vc disagreement "$RINGFENCE_HOME/keys.json" || true)
	[ "$n" = "$(q "SELECT count(*) FROM keys WHERE state = 'active'")" ] ||
		fail "$1: the token holds $n keys, the store has $(q "SELECT count(*) FROM keys WHERE state = 'active'") active: $(q "SELECT state, count(*) FROM keys GROUP BY state")"
}

# Stage 5: the pool lacks every key (EC P-384: never filled here, target
# 0), so contain generates them, and is killed before it records them on
# its connections. The rerun uses them: each was made for the incident,
# which keyd wrote on the key's own record. None is left `generated` in
# the token, used by nothing, and no connection gets two.
export RINGFENCE_POOL_EC_P384=0
NK=20
rf tenant add kill >/dev/null
for i in $(seq -w 1 $NK); do
	rf issue --tenant kill --connection "c$i" --profile client --keygen ec-p384 >/dev/null 2>&1 ||
		fail "issue kill/c$i"
done
[ "$(q "SELECT count(*) FROM pool WHERE alg = 'ec-p384'")" = 0 ] || fail "the P-384 pool is not empty"
id=$(rf incident open --scope tenant:kill --reason "generated, then killed")
if RINGFENCE_TEST_KILL_AT=incident-keys-taken "$RINGFENCE" incident contain "$id" >/dev/null 2>&1; then
	fail "contain was not stopped at incident-keys-taken"
fi
left=$(q "SELECT count(*) FROM keys WHERE state = 'generated'")
[ "$left" -ge $NK ] || fail "the killed run left $left generated keys, not $NK or more"
# keys list --json names what each was made for, and its connection.
rf keys list --json | python3 -c '
import json, sys
inc, left = sys.argv[1], int(sys.argv[2])
made = [k for k in map(json.loads, sys.stdin) if k["state"] == "generated"]
assert len(made) == left, (len(made), left)
for k in made:
    assert k["made_for"] == "incident-" + inc, k
    assert k["made_for_connection"].startswith("kill/c"), k
' "$id" "$left" || fail "keys list --json does not say what the generated keys were made for"
rf incident contain "$id" >"$RINGFENCE_HOME/err" || fail "the rerun after the keys were made: $(cat "$RINGFENCE_HOME/err")"
# Its note counts the keys made for it as there: nothing to generate.
if grep -q "will be generated" "$RINGFENCE_HOME/err"; then
	fail "the rerun's note counts the killed run's keys as missing: $(cat "$RINGFENCE_HOME/err")"
fi
[ "$(q "SELECT count(*) FROM incident_items WHERE incident = $id AND state = 'contained' AND new_serial != ''")" = $NK ] ||
	fail "the rerun did not contain every connection"
[ "$(q "SELECT count(*) FROM certs WHERE tenant = 'kill' AND revoked = 0")" = $NK ] ||
	fail "kill: valid certificates are not one per connection"
[ "$(q "SELECT count(*) FROM certs WHERE tenant = 'kill'")" = $((2 * NK)) ] ||
	fail "kill: not old + one new certificate per connection"
left=$(q "SELECT count(*) FROM keys WHERE state = 'generated'")
[ "$left" = 0 ] || fail "$left keys left generated, used by nothing, after the rerun"
check_token "rerun after generated keys"
check_pool "rerun after generated keys"
# They were the killed run's keys, made for this incident.
[ "$(q "SELECT count(*) FROM incident_items i JOIN certs c ON c.serial = i.new_serial JOIN keys k ON k.id = c.key_id WHERE i.incident = $id AND k.made_for = 'incident-$id' AND k.label = i.tenant || '/' || i.name")" = $NK ] ||
	fail "the new credentials' keys are not those made for incident $id, by label"

# Stage 6: a contain killed before it recorded its keys, whose rerun
# cannot use them (the tenant was waived meanwhile: no connection is left
# to contain). Close destroys them in the token, each with its leaves:
# the pool keys taken for the incident and the key generated for it, and
# says how many.
rf tenant add gone >/dev/null
for i in 1 2 3; do
	rf issue --tenant gone --connection "c$i" --profile client --keygen ec-p384 >/dev/null 2>&1 ||
		fail "issue gone/c$i"
done
rf keys pool fill --alg ec-p384 --count 2 >/dev/null
id=$(rf incident open --scope tenant:gone --reason "waived after a kill")
if RINGFENCE_TEST_KILL_AT=incident-keys-taken "$RINGFENCE" incident contain "$id" >/dev/null 2>&1; then
	fail "contain was not stopped at incident-keys-taken"
fi
unused="SELECT p.key_id FROM pool p JOIN keys k ON k.id = p.key_id WHERE p.ref = 'incident-$id' AND k.state = 'active' AND p.key_id NOT IN (SELECT key_id FROM certs) UNION SELECT id FROM keys WHERE state = 'generated'"
[ "$(q "SELECT count(*) FROM ($unused)")" = 3 ] || fail "the killed run did not leave 2 pool keys and 1 generated key: $(q "$unused")"
ids=$(q "SELECT group_concat(quote(key_id)) FROM ($unused)")
rf incident confirm "$id" --tenant gone --waive >/dev/null
rf incident contain "$id" >/dev/null 2>&1 || fail "the rerun with nothing left to contain"
rf --json incident close "$id" >"$RINGFENCE_HOME/close.json" 2>/dev/null || fail "close: $(cat "$RINGFENCE_HOME/close.json")"
[ "$(q "SELECT count(*) FROM ($unused)")" = 0 ] || fail "close left keys taken or generated for incident $id: $(q "$unused")"
python3 -c "
import json, sys
o = json.load(open(sys.argv[1]))
assert o['state'] == 'closed' and o['unused_keys_destroyed'] == 3, o" "$RINGFENCE_HOME/close.json" ||
	fail "close --json does not say 3 unused keys destroyed: $(cat "$RINGFENCE_HOME/close.json")"
[ "$(q "SELECT count(*) FROM keys WHERE id IN ($ids) AND state = 'destroyed'")" = 3 ] ||
	fail "the unused keys are not recorded destroyed"
[ "$(q "SELECT count(*) FROM audit_leaf WHERE key_id IN ($ids) AND type = 'destroy'")" = 3 ] ||
	fail "the unused keys have not one destroy leaf each"
q "SELECT detail FROM incident_events WHERE incident = $id AND kind = 'close'" |
	grep -q "; 3 keys taken or generated for the incident and never used destroyed$" ||
	fail "the close event does not say so: $(q "SELECT detail FROM incident_events WHERE incident = $id AND kind = 'close'")"
check_token "close after a kill"

rf keys pool status >/dev/null
rf audit verify >/dev/null
echo "pool contain: OK"
