#!/usr/bin/env bash
# keys_init_refuse.sh: `init` never destroys keys it did not make. With the
# store moved away, or RINGFENCE_DB_PATH pointing at another file, init over
# a token folder holding keys is refused with one line naming both paths,
# and every key is still there (pkcs11-tool counts the objects; `keys list`
# finds no disagreement once the store is back). `init --new` moves the old
# state aside instead of deleting it, and the old PIN into the custody
# folder, never beside the old tokens; init over an initialised state
# names init --new, not removing the folder.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" keys-init-refuse
MODULE=/usr/lib/softhsm/libsofthsm2.so
cd "$RINGFENCE_HOME"
unset RINGFENCE_PIN RINGFENCE_DB_PATH || true

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "init"; }
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 >/dev/null 2>issue.err ||
	{ cat issue.err >&2; fail "issue --keygen"; }

# Private key objects in every token, as pkcs11-tool sees them.
count_keys() {
	local conf=$1 pin=$2 n=0 slot
	for slot in $(SOFTHSM2_CONF=$conf pkcs11-tool --module "$MODULE" \
		--list-token-slots 2>/dev/null |
		awk '/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { id = $3; gsub(/[():]/, "", id) }
		/token label *: *ringfence/ { print id }'); do
		n=$((n + $(SOFTHSM2_CONF=$conf pkcs11-tool --module "$MODULE" \
			--login --pin "$pin" --slot "$slot" --list-objects \
			--type privkey 2>/dev/null | grep -c "^Private Key Object" || true)))
	done
	echo "$n"
}
pin=$(cat "$RINGFENCE_HOME-custody/token.pin")
before=$(count_keys "$RINGFENCE_HOME/softhsm2.conf" "$pin")
[ "$before" -eq 5 ] || fail "expected 5 keys after init and issue, found $before"
rf keys list >list.txt 2>list.err || { cat list.err >&2; fail "keys list disagrees after init"; }

# The store moved away: refused, one line naming the token folder and the
# store's path, nothing changed.
mv ringfence.db moved.db
[ ! -e ringfence.db-wal ] || mv ringfence.db-wal moved.db-wal
[ ! -e ringfence.db-shm ] || mv ringfence.db-shm moved.db-shm
if rf init >out.txt 2>err.txt; then fail "init over a token holding keys, store missing, succeeded"; fi
[ "$(wc -l <err.txt)" -eq 1 ] || { cat err.txt >&2; fail "refusal is not one line"; }
grep -qF "$RINGFENCE_HOME/tokens" err.txt || fail "refusal does not name the token folder: $(cat err.txt)"
grep -qF "$RINGFENCE_HOME/ringfence.db" err.txt || fail "refusal does not name the store: $(cat err.txt)"
grep -q -- "--new" err.txt || fail "refusal does not say how to start over"
[ ! -e ringfence.db ] || fail "refused init left a store behind"
[ "$(count_keys "$RINGFENCE_HOME/softhsm2.conf" "$pin")" -eq "$before" ] ||
	fail "keys lost by a refused init"

# RINGFENCE_DB_PATH pointing at another (missing) file: refused the same way.
if RINGFENCE_DB_PATH=$RINGFENCE_HOME/other.db rf init >/dev/null 2>err2.txt; then
	fail "init with RINGFENCE_DB_PATH elsewhere succeeded"
fi
grep -qF "$RINGFENCE_HOME/other.db" err2.txt || fail "refusal does not name RINGFENCE_DB_PATH: $(cat err2.txt)"
[ ! -e other.db ] || fail "refused init created the other store"
[ "$(count_keys "$RINGFENCE_HOME/softhsm2.conf" "$pin")" -eq "$before" ] ||
	fail "keys lost by init with RINGFENCE_DB_PATH elsewhere"

# The store back: nothing disagrees, the root still signs.
mv moved.db ringfence.db
[ ! -e moved.db-wal ] || mv moved.db-wal ringfence.db-wal
[ ! -e moved.db-shm ] || mv moved.db-shm ringfence.db-shm
rf keys list >list2.txt 2>list2.err || { cat list2.err list2.txt >&2; fail "keys list disagrees with the store back"; }
[ "$(wc -l <list2.txt)" -eq 6 ] || fail "keys list shows $(($(wc -l <list2.txt) - 1)) keys, not 5"
rf crl --regenerate >/dev/null 2>crl.err || { cat crl.err >&2; fail "signing with the store back"; }

# Over an initialised state: refused, and the way out it names is the one
# that keeps the keys (init --new), never removing the folder.
rf init >/dev/null 2>again.err && fail "init over an initialised state succeeded"
[ "$(wc -l <again.err)" -eq 1 ] || { cat again.err >&2; fail "init's refusal is not one line"; }
grep -q "init --new" again.err || fail "init's refusal does not name init --new: $(cat again.err)"
grep -qi "remove the folder" again.err && fail "init's refusal says to remove the folder (and its keys)"

# init --new: the old state moved aside, nothing deleted, a new state made.
# keyd's record of connector proofs seen goes with the old ledger (stand-ins:
# the record's entries are 16 bytes each).
printf 'proof-seen-0-old' >"$RINGFENCE_HOME-custody/proofs.0"
printf 'proof-seen-1-old' >"$RINGFENCE_HOME-custody/proofs.1"
rf init --new >/dev/null 2>new.err || { cat new.err >&2; fail "init --new"; }
for i in 0 1; do
	moved=$(ls -d "$RINGFENCE_HOME-custody"/old-*/proofs.$i 2>/dev/null | head -1)
	[ -n "$moved" ] && [ "$(cat "$moved")" = "proof-seen-$i-old" ] ||
		fail "init --new did not move keyd's proofs.$i aside"
	! grep -qs old "$RINGFENCE_HOME-custody/proofs.$i" ||
		fail "the new state kept the old proofs.$i"
done
old=$(ls -d old-* | head -1)
[ -n "$old" ] && [ -d "$old/tokens" ] || fail "init --new did not move the tokens aside"
for f in ringfence.db softhsm2.conf; do
	[ -e "$old/$f" ] || fail "init --new did not move $f aside"
done
grep -q "moved the old state to" new.err || fail "init --new does not say where the old state went"
# The old PIN goes aside in the custody folder, never beside the old
# tokens: no file of the state folder holds it (a copy of the folder
# cannot open the old tokens either).
grep -rqF "$pin" "$RINGFENCE_HOME" && fail "init --new put the old PIN in the state folder: $(grep -rlF "$pin" "$RINGFENCE_HOME")"
oldpin=$(ls -d "$RINGFENCE_HOME-custody"/old-*/token.pin 2>/dev/null | head -1)
[ -n "$oldpin" ] && [ "$(cat "$oldpin")" = "$pin" ] || fail "init --new did not keep the old PIN in the custody folder"
[ "$(stat -c %a "$(dirname "$oldpin")")" = 700 ] && [ "$(stat -c %a "$oldpin")" = 600 ] ||
	fail "the old PIN's folder or file is open to others: $(stat -c %a "$(dirname "$oldpin")" "$oldpin")"
grep -q "moved the old PIN to $RINGFENCE_HOME-custody/old-" new.err || fail "init --new does not say where the old PIN went: $(cat new.err)"
[ "$(cat "$RINGFENCE_HOME-custody/token.pin")" != "$pin" ] || fail "the new state kept the old PIN"
sed -i "s#$RINGFENCE_HOME/tokens#$RINGFENCE_HOME/$old/tokens#" "$old/softhsm2.conf"
[ "$(count_keys "$RINGFENCE_HOME/$old/softhsm2.conf" "$pin")" -eq "$before" ] ||
	fail "init --new lost keys of the old state"
rf keys list >list3.txt 2>list3.err || { cat list3.err >&2; fail "keys list of the new state"; }
[ "$(wc -l <list3.txt)" -eq 5 ] || fail "the new state has $(($(wc -l <list3.txt) - 1)) keys, not 4"
rf init 2>/dev/null && fail "init over an initialised state succeeded"
rf init --frob >/dev/null 2>&1 && fail "init accepted an unknown option"
echo "ok: init refused over a token with keys; --new moved $before keys aside"
