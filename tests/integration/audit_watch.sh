#!/usr/bin/env bash
# audit_watch.sh: the record checked from outside the host. The audit key
# id printed by `init` is pinned; `audit watch` fetches the served tree
# head and a consistency proof from its checkpoint and verifies both
# offline. An honest record advances the checkpoint; tree heads re-signed
# with an attacker's key (made here with openssl), a rewritten record
# re-signed with the genuine key, and a truncated one are each caught, by
# `audit verify --audit-key-id` and by `audit watch`, with one line naming
# what broke, and leave the checkpoint as it was. The server listens on
# 127.0.0.1 only, is bounded by --duration and is stopped by its PID.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" audit-watch
unset RINGFENCE_NOW RINGFENCE_LISTEN RINGFENCE_PORT || true
work=$RINGFENCE_HOME/watcher # "another machine": nothing shared but HTTP
mkdir -p "$work"
db=$RINGFENCE_HOME/ringfence.db
cp=$work/checkpoint

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "ringfence init"; }
id=$(sed -n 's/^  audit key id: \([0-9a-f]\{64\}\)$/\1/p' init.err)
[ -n "$id" ] || fail "init does not print the audit key id: $(cat init.err)"
[ "$id" = "$(sqlite3 "$db" "SELECT id FROM keys WHERE purpose = 'audit'")" ] ||
	fail "printed audit key id is not the store's"

for attempt in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# keyd is stopped below to take its ledger away while it is down:
	# serve must not start it again meanwhile (keyd_restart).
	RINGFENCE_KEYD_RESTART=0 "$RINGFENCE" serve --port "$port" \
		--duration 120 --threads 2 2>"$RINGFENCE_HOME/serve.log" &
	server=$!
	up=0
	for _ in $(seq 100); do
		if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/audit/sth"; then
			up=1
			break
		fi
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	[ $up = 1 ] && break
	kill -TERM "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
done
[ -n "$server" ] || fail "server did not come up with a tree head: $(cat "$RINGFENCE_HOME/serve.log")"
url="http://127.0.0.1:$port"

# Usage: URL and --checkpoint are needed, a key id is 64 hex digits.
set +e
rf audit watch "$url" 2>/dev/null; rc1=$?
rf audit watch "$url" --checkpoint "$cp" --audit-key-id 1234 2>/dev/null; rc2=$?
rf audit watch "ftp://127.0.0.1/" --checkpoint "$cp" 2>/dev/null; rc3=$?
rf audit watch "http://127.0.0.1:1" --checkpoint "$cp" 2>unreach.err; rc4=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$rc3" -eq 2 ] || fail "usage errors: $rc1 $rc2 $rc3"
[ "$rc4" -eq 1 ] && [ "$(wc -l <unreach.err)" -eq 1 ] || fail "unreachable server: exit $rc4: $(cat unreach.err)"
[ ! -e "$cp" ] || fail "a failed watch wrote the checkpoint"

# Honest record: the first run starts the checkpoint, pinned to the key.
rf audit watch "$url" --checkpoint "$cp" --audit-key-id "$id" >w1.out ||
	fail "first watch: $(cat w1.out)"
grep -q "checkpoint $cp started" w1.out || fail "first watch output: $(cat w1.out)"
grep -qx "key $id" "$cp" || fail "checkpoint does not pin the key: $(cat "$cp")"
size1=$(sed -n 's/^size //p' "$cp")
rf tenant add acme >/dev/null
rf tenant add beta >/dev/null
rf audit sth >/dev/null
rf audit watch "$url" --checkpoint "$cp" >w2.out || fail "second watch: $(cat w2.out)"
size2=$(sed -n 's/^size //p' "$cp")
[ "$size2" -gt "$size1" ] || fail "checkpoint did not advance: $size1 -> $size2"
grep -q "leaves since the checkpoint at size $size1" w2.out || fail "watch output: $(cat w2.out)"
rf audit watch "$url" --checkpoint "$cp" >/dev/null || fail "watch with nothing new"
rf audit verify --audit-key-id "$id" >/dev/null || fail "verify --audit-key-id of an honest record"
rf audit verify --checkpoint "$cp" >/dev/null || fail "verify against the watcher's checkpoint"
cp "$cp" cp.honest

# Forged: every tree head re-signed with an attacker's key, whose public
# key and key id the attacker also writes into the store.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out evil.pem 2>/dev/null
openssl pkey -in evil.pem -pubout -outform DER -out evil.spki
evil_spki=$(xxd -p evil.spki | tr -d '\n')
evil_id=$(sha256sum evil.spki | cut -d' ' -f1)
sqlite3 "$db" "CREATE TABLE sth_saved AS SELECT * FROM audit_sth;
	CREATE TABLE meta_saved AS SELECT * FROM meta;"
sqlite3 -separator ' ' "$db" "SELECT id, size, time, hex(root) FROM audit_sth" |
	while read -r rowid size time root; do
		{
			printf 'ringfence-sth-v1\000'
			printf '%016x%016x%s' "$size" "$time" "$root" | xxd -r -p
		} >tbs
		openssl dgst -sha256 -sign evil.pem -out sig tbs
		sqlite3 "$db" "UPDATE audit_sth SET key_id = '$evil_id',
			sig = X'$(xxd -p sig | tr -d '\n')' WHERE id = $rowid"
	done
sqlite3 "$db" "INSERT INTO meta VALUES ('audit.spki.$evil_id', '$evil_spki');
	INSERT INTO keys (id, alg, purpose, state, created)
	VALUES ('$evil_id', 'ec-p256', 'audit', 'active', 0);"
# Without a pin the store vouches for the forgery (the reason for pinning).
rf audit verify >/dev/null 2>&1 || fail "forged record: the unpinned verify was expected to trust the store"
set +e
rf audit verify --audit-key-id "$id" >forged.out 2>&1; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "forged record passed verify --audit-key-id"
grep -q "signed by $evil_id, not the pinned audit key $id" forged.out || fail "verify message: $(cat forged.out)"
set +e
rf audit watch "$url" --checkpoint "$cp" >watch.out 2>watch.err; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "forged record passed audit watch"
[ "$(wc -l <watch.err)" -eq 1 ] || fail "watch error is not one line: $(cat watch.err)"
grep -q "key id: .* signed by $evil_id, not the pinned audit key $id" watch.err ||
	fail "watch message: $(cat watch.err)"
cmp -s "$cp" cp.honest || fail "a failed watch changed the checkpoint"
# The right key id with the attacker's public key behind it.
sqlite3 "$db" "UPDATE audit_sth SET key_id = '$id';
	UPDATE meta SET val = '$evil_spki' WHERE key = 'audit.spki.$id';"
set +e
rf audit watch "$url" --checkpoint "$cp" 2>watch.err; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "key id: the served public key is not audit key $id" watch.err ||
	fail "attacker's key under the pinned id: exit $rc: $(cat watch.err)"
# A signature that does not verify with the genuine key.
sqlite3 "$db" "DELETE FROM meta; INSERT INTO meta SELECT * FROM meta_saved;"
set +e
rf audit watch "$url" --checkpoint "$cp" 2>watch.err; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "signature: the tree head at size [0-9]* does not verify with audit key $id" watch.err ||
	fail "bad signature: exit $rc: $(cat watch.err)"
sqlite3 "$db" "DELETE FROM audit_sth; INSERT INTO audit_sth SELECT * FROM sth_saved;
	DELETE FROM keys WHERE id = '$evil_id';"
rf audit watch "$url" --checkpoint "$cp" >/dev/null || fail "restored record"

# Rewritten below the checkpoint. keyd signs no tree head of it, whoever
# asks: its ledger keeps the largest head it signed, and the record does
# not extend it. An insider who also takes keyd's ledger away (root: the
# custody folder and the token) re-signs it with the genuine key; then the
# watcher's consistency proof cannot be made.
sqlite3 "$db" "UPDATE audit_leaf SET data = CAST(replace(CAST(data AS TEXT),
	'\"type\"', '\"note\":\"x\",\"type\"') AS BLOB) WHERE idx = 1;"
new=$( (printf '\000'; sqlite3 "$db" "SELECT CAST(data AS TEXT) FROM audit_leaf WHERE idx = 1" | tr -d '\n') | sha256sum | cut -d' ' -f1)
sqlite3 "$db" "UPDATE audit_leaf SET hash = X'$new' WHERE idx = 1; DELETE FROM audit_node;"
set +e
rf audit sth >sth.out 2>&1; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "does not extend the tree head keyd signed" sth.out ||
	fail "keyd re-signed the rewritten record: exit $rc: $(cat sth.out)"
forget_heads() {
	stop_keyd
	rm -f "$RINGFENCE_HOME-custody/revoked.ledger"
}
forget_heads
rf audit sth >/dev/null || fail "re-signing the rewritten record"
set +e
rf audit watch "$url" --checkpoint "$cp" 2>watch.err; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "consistency: the record at size [0-9]* does not extend the checkpoint at size" watch.err ||
	fail "rewritten record: exit $rc: $(cat watch.err)"
cmp -s "$cp" cp.honest || fail "a failed watch changed the checkpoint"

# Truncated below the checkpoint and re-signed: the size went back.
sqlite3 "$db" "DELETE FROM audit_leaf WHERE idx >= 3; DELETE FROM audit_node;
	DELETE FROM audit_sth;"
set +e
rf audit sth >sth.out 2>&1; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "does not extend the tree head keyd signed" sth.out ||
	fail "keyd re-signed the truncated record: exit $rc: $(cat sth.out)"
forget_heads
rf audit sth >/dev/null || fail "re-signing the truncated record"
set +e
rf audit watch "$url" --checkpoint "$cp" 2>watch.err; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "size went back: the served tree head has [0-9]* leaves, the checkpoint $size2" watch.err ||
	fail "truncated record: exit $rc: $(cat watch.err)"
cmp -s "$cp" cp.honest || fail "a failed watch changed the checkpoint"
echo "audit_watch: ok"
