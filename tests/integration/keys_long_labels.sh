#!/usr/bin/env bash
# A key label (CKA_LABEL) is 1-64 characters, but a tenant name may have
# 64 and a connection name 63, and the label of a tenant's key is the
# pair "tenant/name" (issue --keygen: tenant/profile; contain:
# tenant/connection). Before, `issue --keygen` and a contain that had to
# generate a key (no standby pool) failed for such names ("a key label of
# 1 to 64 characters is needed"). A pair longer than 64 now gets the label
# of its first 47 characters, "~" and the first 16 hex digits of the
# SHA-256 of the whole pair; a shorter pair stays its own label.
#   1. issue --keygen for a 64-character tenant's 63-character connection:
#      the token's key has the shortened label; openssl verifies the
#      certificate. A short pair keeps its plain label.
#   2. contain with an empty pool generates the connection's key, with the
#      shortened label of tenant/connection, and the new certificate
#      verifies.
#   3. contain killed (kill -9) after it made the keys of two such
#      connections, whose labels differ only in their hash, and before it
#      recorded them: the rerun gives each connection the key made for it
#      (found by tenant and label), destroys none and makes none.
# keys list --json names the connection each key contain made was made
# for (made_for_connection): "tenant/connection", not the shortened
# label it showed before, both for the keys a killed run left unrecorded
# and once they are in use.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" long-labels
h=$RINGFENCE_HOME
q() { sqlite3 -cmd ".timeout 20000" "$h/ringfence.db" "$1"; }
# The label of the pair $1/$2, computed here as keys.h describes it.
label_of() {
	local pair="$1/$2"
	if [ ${#pair} -le 64 ]; then
		printf '%s\n' "$pair"
	else
		printf '%s~%s\n' "${pair:0:47}" \
			"$(printf '%s' "$pair" | sha256sum | cut -c1-16)"
	fi
}
# The token's label of key $1, as keys list reads it from the token.
token_label() {
	rf keys list --json | python3 -c '
import json, sys
print(next(k["label"] for k in map(json.loads, sys.stdin) if k.get("id") == sys.argv[1]))' "$1"
}
# keys list --json's made_for_connection of key $1 ("" when none).
made_for_conn() {
	rf keys list --json | python3 -c '
import json, sys
print(next(k.get("made_for_connection", "") for k in map(json.loads, sys.stdin) if k.get("id") == sys.argv[1]))' "$1"
}
# openssl verifies the certificate of serial $1 against the CA chain.
verify_serial() {
	rf cert show "$1" | sed -n '/BEGIN/,/END/p' >"$h/leaf.pem"
	openssl verify -CAfile "$h/root.pem" -untrusted "$h/issuing.pem" \
		"$h/leaf.pem" >"$h/v.out" 2>&1 ||
		fail "openssl verify of $1: $(cat "$h/v.out")"
}
# Incident $1's connection $2/$3 is contained with a key whose token label
# is that of the pair, made for the incident; its certificate verifies.
check_contained() {
	local serial key
	[ "$(q "SELECT state FROM incident_items WHERE incident = $1 AND tenant = '$2' AND name = '$3'")" = contained ] ||
		fail "incident $1: $2/$3 is not contained"
	serial=$(q "SELECT new_serial FROM incident_items WHERE incident = $1 AND tenant = '$2' AND name = '$3'")
	key=$(q "SELECT key_id FROM certs WHERE serial = '$serial'")
	[ "$(q "SELECT made_for FROM keys WHERE id = '$key'")" = "incident-$1" ] ||
		fail "incident $1: $2/$3's new key was not made for it"
	[ "$(token_label "$key")" = "$(label_of "$2" "$3")" ] ||
		fail "incident $1: $2/$3's new key is labelled '$(token_label "$key")', not '$(label_of "$2" "$3")'"
	[ "$(made_for_conn "$key")" = "$2/$3" ] ||
		fail "incident $1: keys list --json says $2/$3's new key was made for '$(made_for_conn "$key")'"
	verify_serial "$serial"
}

T=$(printf 'long-tenant-%052d' 7)
C1=$(printf 'long-connection-%046d1' 0)
C2=$(printf 'long-connection-%046d2' 0)
[ ${#T} = 64 ] && [ ${#C1} = 63 ] || fail "test names of ${#T} and ${#C1} characters"
rf init >/dev/null 2>&1 || fail "init"
rf cert ca root >"$h/root.pem"
rf cert ca issuing >"$h/issuing.pem"
rf tenant add "$T" >/dev/null
rf tenant add acme >/dev/null

# 1. issue --keygen: the shortened label, and a plain one for a short pair.
rf issue --tenant "$T" --connection "$C1" --profile client --keygen ec-p256 \
	--out "$h/c1.pem" >"$h/i1.txt" 2>"$h/err" || fail "issue --keygen for $T/$C1: $(cat "$h/err")"
key=$(sed -n 's/^key: //p' "$h/i1.txt")
want=$(label_of "$T" client)
[ ${#want} = 64 ] || fail "the shortened label has ${#want} characters"
[ "$(token_label "$key")" = "$want" ] ||
	fail "issue --keygen's key is labelled '$(token_label "$key")', not '$want'"
verify_serial "$(sed -n 's/^serial: //p' "$h/i1.txt")"
rf issue --tenant "$T" --connection "$C2" --profile client --keygen ec-p256 \
	>/dev/null 2>"$h/err" || fail "issue --keygen for $T/$C2: $(cat "$h/err")"
rf issue --tenant acme --connection app --profile client --keygen ec-p256 \
	--out "$h/c2.pem" >"$h/i2.txt" 2>"$h/err" || fail "issue --keygen for acme/app: $(cat "$h/err")"
[ "$(token_label "$(sed -n 's/^key: //p' "$h/i2.txt")")" = acme/client ] ||
	fail "a short pair's label changed: $(token_label "$(sed -n 's/^key: //p' "$h/i2.txt")")"

# 2. contain with the pool empty: the key is generated.
[ "$(q "SELECT count(*) FROM pool")" = 0 ] || fail "the standby pool is not empty"
id=$(rf incident open --scope "connection:$T/$C1" --reason "long names" 2>/dev/null)
rf incident contain "$id" >/dev/null 2>"$h/err" || fail "contain $id: $(cat "$h/err")"
check_contained "$id" "$T" "$C1"

# 3. Killed after it made both keys, before it recorded them; the rerun
# uses them.
id=$(rf incident open --scope "tenant:$T" --reason "long names, killed" 2>/dev/null)
if RINGFENCE_TEST_KILL_AT=incident-keys-taken "$RINGFENCE" incident contain "$id" >/dev/null 2>"$h/err"; then
	fail "contain was not stopped at incident-keys-taken"
fi
made=$(q "SELECT id FROM keys WHERE made_for = 'incident-$id' AND state = 'generated' ORDER BY id")
[ "$(echo "$made" | grep -c .)" = 2 ] ||
	fail "the killed run left $(echo "$made" | grep -c .) generated keys, not 2: $(cat "$h/err")"
# Not recorded on their connections yet: keys list --json still names
# each one's connection, one key each.
for k in $made; do made_for_conn "$k"; done | sort >"$h/made_for"
printf '%s\n' "$T/$C1" "$T/$C2" | sort | cmp -s - "$h/made_for" ||
	fail "keys list --json says the killed run's keys were made for: $(cat "$h/made_for")"
rf incident contain "$id" >/dev/null 2>"$h/err" || fail "the rerun of $id: $(cat "$h/err")"
check_contained "$id" "$T" "$C1"
check_contained "$id" "$T" "$C2"
[ "$(q "SELECT key_id FROM certs c JOIN incident_items i ON i.new_serial = c.serial WHERE i.incident = $id ORDER BY key_id")" = "$made" ] ||
	fail "the rerun did not use the keys its killed run made"
[ "$(q "SELECT count(*) FROM keys WHERE made_for = 'incident-$id'")" = 2 ] ||
	fail "the rerun made keys again"
[ "$(q "SELECT count(*) FROM incident_events WHERE incident = $id AND kind = 'destroy-unused'")" = 0 ] ||
	fail "the rerun destroyed keys its killed run made"
rf keys list >/dev/null 2>"$h/err" || fail "keys list: $(cat "$h/err")"
rf audit verify >/dev/null
echo "keys long labels: OK"
