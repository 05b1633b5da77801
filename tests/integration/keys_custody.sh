#!/usr/bin/env bash
# keys_custody.sh: key custody seen from outside ringfence. After `init`
# (and a tenant key generated in the token), OpenSC's pkcs11-tool lists the
# token's private keys: every one must be sensitive and never extractable.
# No file of the state folder outside the token's own folder may hold a
# private key. `ringfence keys list` must agree, and bad token settings
# must fail naming the setting to fix.
set -euo pipefail

RINGFENCE=${RINGFENCE:?path of the ringfence binary}
MODULE=/usr/lib/softhsm/libsofthsm2.so

work=$(mktemp -d "${TMPDIR:-/tmp}/rf-keys-custody-XXXXXX")
# Stop the keyd the commands started (by its pid file), then remove.
trap '"$RINGFENCE" keyd stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
# The counts below are of the keys this test makes: keyd's background
# refill of the standby pool (its own test: pool_refill) is off.
export RINGFENCE_POOL_REFILL=0
export RINGFENCE_HOME=$work/home
unset RINGFENCE_PIN RINGFENCE_MODULE RINGFENCE_TOKEN RINGFENCE_NOW || true
cd "$work"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

rf() {
	"$RINGFENCE" "$@"
}

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "ringfence init"; }
[ -s "$RINGFENCE_HOME-custody/token.pin" ] || fail "init wrote no token.pin"
[ -s "$RINGFENCE_HOME/softhsm2.conf" ] || fail "init wrote no softhsm2.conf"

# A tenant connection key generated inside the token.
rf tenant add acme >/dev/null 2>tenant.err ||
	{ cat tenant.err >&2; fail "tenant add"; }
rf issue --tenant acme --profile client --keygen ec-p384 >/dev/null \
	2>issue.err || { cat issue.err >&2; fail "issue --keygen"; }

# The token as an independent PKCS#11 client sees it: the key store is the
# token labelled ringfence and its siblings ringfence.1, ringfence.2, ...
export SOFTHSM2_CONF=$RINGFENCE_HOME/softhsm2.conf
pkcs11-tool --module "$MODULE" --list-token-slots >slots.txt 2>slots.err ||
	{ cat slots.err >&2; fail "pkcs11-tool --list-token-slots"; }
# "SLOT-ID LABEL" per token of the store. pkcs11-tool --token-label matches
# a prefix ("ringfence" would pick "ringfence.14"), so slots go by id.
awk '/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { id = $3; gsub(/[():]/, "", id) }
	/^ *token label *:/ { sub(/^ *token label *: */, ""); sub(/ *$/, "");
		if ($0 ~ /^ringfence(\.[0-9]+)?$/) print id, $0 }' slots.txt >labels.txt
[ "$(wc -l <labels.txt)" -ge 1 ] || { cat slots.txt >&2; fail "no ringfence token"; }
: >objects.txt
while read -r slot label; do
	pkcs11-tool --module "$MODULE" --login \
		--pin "$(cat "$RINGFENCE_HOME-custody/token.pin")" --slot "$slot" \
		--list-objects --type privkey >one.txt 2>objects.err ||
		{ cat objects.err >&2; fail "pkcs11-tool --list-objects on $label"; }
	cat one.txt >>objects.txt
	if [ -z "${idslot:-}" ] && grep -q "^Private Key Object" one.txt; then
		idslot=$slot
		id=$(awk '/^Private Key Object/ { p = 1 } p && /^[ \t]*ID:/ { print $2; exit }' one.txt)
	fi
done <labels.txt
nkeys=$(grep -c "^Private Key Object" objects.txt || true)
[ "$nkeys" -ge 5 ] || {
	cat objects.txt >&2
	fail "expected root, issuing, OCSP, audit and tenant keys, pkcs11-tool lists $nkeys"
}
# Each key's Access line: sensitive, never extractable, never plain
# "extractable".
awk '
	/^Private Key Object/ { if (n && !ok) bad = 1; n++; ok = 0; next }
	/^[ \t]*Access:/ {
		line = $0
		sub(/^[ \t]*Access:[ \t]*/, "", line)
		split(line, f, /, */)
		s = 0; ne = 0; ex = 0
		for (i in f) {
			if (f[i] == "sensitive") s = 1
			if (f[i] == "never extractable") ne = 1
			if (f[i] == "extractable") ex = 1
		}
		ok = s && ne && !ex
	}
	END { if (n && !ok) bad = 1; exit bad }
' objects.txt || { cat objects.txt >&2; fail "a private key is not sealed"; }
[ "$(grep -c "Access:" objects.txt)" -eq "$nkeys" ] ||
	fail "pkcs11-tool printed no Access line for some key"

# The key material itself cannot be read out.
[ -n "${id:-}" ] || fail "no key id in the listing"
if pkcs11-tool --module "$MODULE" --login \
	--pin "$(cat "$RINGFENCE_HOME-custody/token.pin")" --slot "$idslot" \
	--read-object --type privkey --id "$id" -o key.out \
	>/dev/null 2>&1 && [ -s key.out ]; then
	fail "pkcs11-tool read private key $id out of the token"
fi

# No private key anywhere in the state folder but the token's own files.
if grep -rl -e "PRIVATE KEY" --exclude-dir=tokens "$RINGFENCE_HOME" \
	>leaked.txt; then
	cat leaked.txt >&2
	fail "a file outside tokens/ holds a private key"
fi
unset SOFTHSM2_CONF

# ringfence's own view agrees, and ids are SPKI hashes of 64 hex digits.
rf keys list >list.txt 2>list.err || { cat list.err >&2; fail "keys list"; }
[ "$(($(wc -l <list.txt) - 1))" -eq "$nkeys" ] ||
	fail "keys list shows $(($(wc -l <list.txt) - 1)) keys, token has $nkeys"
if tail -n +2 list.txt | grep -v " sealed "; then
	fail "keys list shows a key not sealed"
fi
rf keys list --json >list.json || fail "keys list --json"
[ "$(wc -l <list.json)" -eq "$nkeys" ] || fail "keys list --json count"
jq -e -s 'all(.[]; .sensitive and (.extractable | not)
	and .never_extractable and .always_sensitive
	and (.id | test("^[0-9a-f]{64}$")))' list.json >/dev/null ||
	fail "keys list --json shows a key not sealed"
jq -e -s 'map(.purpose) | index("root") != null' list.json >/dev/null ||
	fail "keys list --json does not name the root key's purpose"
jq -e -s 'map(select(.tenant == "acme" and .alg == "ec-p384")) | length == 1' \
	list.json >/dev/null || fail "keys list --json does not show acme's key"
# The CKA_ID pkcs11-tool shows is the token id ringfence lists.
jq -r ".token_id" list.json | grep -qix "$id" ||
	fail "pkcs11-tool id $id not in keys list"

# Help and usage.
rf keys --help | grep -q "keys list" || fail "keys --help"
set +e
rf keys frobnicate >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown keys subcommand must exit 2"

# Bad token settings fail with exit 1 and name the setting to fix. They are
# keyd's settings: each command starts its own keyd, which fails.
rf keyd stop >/dev/null 2>&1
RINGFENCE_PIN=00000000 rf keys list >/dev/null 2>pin.err
[ $? -eq 1 ] || fail "wrong PIN must exit 1"
grep -q "RINGFENCE_PIN" pin.err || fail "wrong PIN error: $(cat pin.err)"
RINGFENCE_MODULE=$work/none.so rf keys list >/dev/null 2>mod.err
[ $? -eq 1 ] || fail "missing module must exit 1"
grep -q "RINGFENCE_MODULE" mod.err || fail "module error: $(cat mod.err)"
RINGFENCE_TOKEN=elsewhere rf keys list >/dev/null 2>tok.err
[ $? -eq 1 ] || fail "unknown token must exit 1"
grep -q "RINGFENCE_TOKEN" tok.err || fail "token error: $(cat tok.err)"
set -e

# SoftHSM rewrites a token's token.object on every login, and a process
# that initialises the module at that moment loses the token for its life.
# Stand-in: empty a token's token.object and put it back 50 ms later; keys
# must initialise the module again and find every token: the first one
# (without it nothing opens), and one holding a tenant's key (without it
# the key would be missing).
token_dir() { # the SoftHSM folder of the token labelled $1
	local want d
	want=$(printf '%-32s' "$1")
	for d in "$RINGFENCE_HOME"/tokens/*/; do
		if grep -qaF "$want" "$d/token.object"; then
			echo "$d"
			return 0
		fi
	done
	return 1
}
tear() { # token.object of token $1 empty for 50 ms while $2... runs
	local dir=$1 restore
	shift
	cp "$dir/token.object" "$work/token.object"
	: >"$dir/token.object"
	(sleep 0.05 && cp "$work/token.object" "$dir/token.object") &
	restore=$!
	"$@" || { wait "$restore"; return 1; }
	wait "$restore"
}
tok0=$(token_dir ringfence) || fail "cannot find the first token's folder"
tear "$tok0" rf keys list >/dev/null 2>torn.err ||
	fail "the first token, its file being rewritten, was taken for missing: $(cat torn.err)"
# A tenant key outside the first token: keys made by issuance start at a
# random token, so of four tenants' keys one is elsewhere but 1 in 32^4.
for t in acme2 acme3 acme4; do
	rf tenant add "$t" >/dev/null
	rf issue --tenant "$t" --profile client --keygen ec-p256 >/dev/null
done
rf keys list --json >list2.json
far="" farlabel=""
for kid in $(jq -r 'select(.tenant != "") | .id' list2.json); do
	tid=$(jq -r --arg k "$kid" 'select(.id == $k) | .token_id' list2.json)
	while read -r slot label; do
		[ "$label" != ringfence ] || continue
		SOFTHSM2_CONF=$RINGFENCE_HOME/softhsm2.conf pkcs11-tool \
			--module "$MODULE" --login \
			--pin "$(cat "$RINGFENCE_HOME-custody/token.pin")" --slot "$slot" \
			--list-objects --type privkey </dev/null >one.txt 2>p11.err ||
			fail "pkcs11-tool --list-objects on $label: $(cat p11.err)"
		if grep -qi "ID: *$tid" one.txt; then
			far=$kid farlabel=$label
			break 2
		fi
	done <labels.txt
done
[ -n "$far" ] || fail "no tenant key outside the first token"
dir=$(token_dir "$farlabel") || fail "cannot find token $farlabel's folder"
tear "$dir" rf keys list --json >torn.json 2>torn.err ||
	fail "keys list with $farlabel's file being rewritten: $(cat torn.err)"
jq -r .id torn.json | grep -qx "$far" ||
	fail "key $far in $farlabel missing while its token's file was rewritten"

echo "keys_custody: $nkeys keys, all sensitive and never extractable"
