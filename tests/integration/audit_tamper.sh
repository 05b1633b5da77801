#!/usr/bin/env bash
# audit_tamper.sh: the audit record of a real `ringfence init`, its tree
# heads, proofs and export, checked with sha256sum; then the database is
# edited with the sqlite3 shell (a leaf's data changed, a row deleted, two
# rows' data swapped, the table truncated, a tree head's signature
# corrupted, a checkpoint no longer extended) and each time
# `ringfence audit verify` must exit 1 naming the index.
set -euo pipefail

RINGFENCE=${RINGFENCE:?path of the ringfence binary}

# The store's schema (src/store).
LEAVES=audit_leaf
IDX=idx
DATA=data
STHS=audit_sth

work=$(mktemp -d "${TMPDIR:-/tmp}/rf-audit-tamper-XXXXXX")
# Stop the keyd the commands started (by its pid file), then remove.
trap '"$RINGFENCE" keyd stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
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

db=$RINGFENCE_HOME/ringfence.db

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "ringfence init"; }

# Usage errors exit 2, help exits 0.
rf audit --help >/dev/null || fail "audit --help"
set +e
rf audit frobnicate 2>/dev/null
[ $? -eq 2 ] || fail "unknown subcommand must exit 2"
rf audit prove 2>/dev/null
[ $? -eq 2 ] || fail "prove without --leaf must exit 2"
set -e

# Two tree heads: the second covers the first one's signature leaf.
rf audit sth >sth1.out || fail "audit sth"
rf audit sth >sth2.out || fail "audit sth (second)"
grep -q "^tree head: size [0-9]*" sth2.out || fail "audit sth output"
n=$(sqlite3 "$db" "SELECT count(*) FROM $LEAVES")
[ "$n" -ge 6 ] || fail "expected init and the tree heads to leave >= 6 leaves, got $n"

rf audit verify >verify.out || fail "audit verify of an untouched record"
grep -q "^audit: $n leaves, 2 tree heads verified$" verify.out ||
	fail "verify output: $(cat verify.out)"

# Proofs are printed only after they verify; check one by hand as well.
rf audit prove --leaf 0 >prove.out || fail "audit prove"
grep -q "^root " prove.out || fail "prove output"
rf audit prove --leaf "$((n - 1))" --size "$n" >/dev/null || fail "prove last"
rf audit consistency 1 "$n" >cons.out || fail "audit consistency"
set +e
rf audit prove --leaf "$n" 2>err.txt
[ $? -eq 1 ] || fail "a leaf beyond the tree must exit 1"
set -e
[ "$(wc -l <err.txt)" -eq 1 ] || fail "errors are one line"

# Export, and leaf 0's hash recomputed with sha256sum as the doc shows.
rf audit export --out export.jsonl || fail "audit export"
[ "$(wc -l <export.jsonl)" -eq $((n + 1 + 2)) ] || fail "export line count"
line=$(grep -m1 '"index":0,' export.jsonl)
hex=$(printf '%s' "$line" | sed 's/.*"data_hex":"\([0-9a-f]*\)".*/\1/')
want=$(printf '%s' "$line" | sed 's/.*"hash":"\([0-9a-f]*\)".*/\1/')
got=$( (printf '00'; printf '%s' "$hex") | xxd -r -p | sha256sum | cut -c1-64)
[ "$got" = "$want" ] || fail "leaf 0 hash: sha256sum $got, export $want"
# The leaf's stored hash is that of its data.
dbhash=$(sqlite3 "$db" "SELECT lower(hex(hash)) FROM $LEAVES WHERE $IDX = 0")
[ "$dbhash" = "$got" ] || fail "stored hash of leaf 0"

# Each tree head's signature, checked by openssl over the documented bytes.
jq -c 'select(.kind == "sth")' export.jsonl >sths.jsonl
[ "$(wc -l <sths.jsonl)" -eq 2 ] || fail "export has 2 tree heads"
while read -r sth; do
	size=$(jq -r .size <<<"$sth")
	time=$(jq -r .time <<<"$sth")
	{
		printf 'ringfence-sth-v1\000'
		printf '%016x%016x' "$size" "$time" | xxd -r -p
		jq -r .root <<<"$sth" | xxd -r -p
	} >tbs
	[ "$(wc -c <tbs)" -eq 65 ] || fail "tree head bytes"
	jq -r .spki <<<"$sth" | xxd -r -p |
		openssl pkey -pubin -inform DER -out pub.pem ||
		fail "tree head key is not a SubjectPublicKeyInfo"
	jq -r .sig <<<"$sth" | xxd -r -p >sig
	openssl dgst -sha256 -verify pub.pem -signature sig tbs >/dev/null ||
		fail "openssl rejects the tree head at size $size"
	# A changed byte of what was signed must fail.
	printf '%016x' "$((size + 1))" | xxd -r -p | dd of=tbs bs=1 seek=17 conv=notrunc 2>/dev/null
	if openssl dgst -sha256 -verify pub.pem -signature sig tbs >/dev/null 2>&1; then
		fail "openssl accepts a tree head with a changed size"
	fi
done <sths.jsonl

rf audit search --json >search.out || fail "audit search"
[ "$(wc -l <search.out)" -eq "$n" ] || fail "search finds every leaf"

# A checkpoint outside the state folder.
rf audit checkpoint "$work/cp" >/dev/null || fail "audit checkpoint"
grep -q "^size $n$" "$work/cp" || fail "checkpoint content"

# Tampering. Each case starts from a clean copy.
sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
cp "$db" base.db

expect_tampered() { # description, pattern, [verify args]
	local desc=$1 pat=$2
	shift 2
	set +e
	rf audit verify "$@" >out.txt 2>err.txt
	local rc=$?
	set -e
	[ $rc -eq 1 ] || fail "$desc: verify exited $rc: $(cat out.txt err.txt)"
	[ "$(wc -l <err.txt)" -eq 1 ] || fail "$desc: not one line: $(cat err.txt)"
	grep -q "$pat" err.txt || fail "$desc: '$(cat err.txt)' does not say '$pat'"
}

restore() {
	rm -f "$db-wal" "$db-shm"
	cp base.db "$db"
}

restore
sqlite3 "$db" "UPDATE $LEAVES SET $DATA = CAST(replace(CAST($DATA AS TEXT), '\"v\":1', '\"v\":1 ') AS BLOB) WHERE $IDX = 2"
expect_tampered "changed leaf" "leaf 2 modified"

restore
sqlite3 "$db" "DELETE FROM $LEAVES WHERE $IDX = 3"
expect_tampered "deleted row" "leaf 3 missing"

restore
sqlite3 "$db" "UPDATE $LEAVES SET $DATA = CASE $IDX WHEN 1 THEN (SELECT $DATA FROM $LEAVES WHERE $IDX = 4) ELSE (SELECT $DATA FROM $LEAVES WHERE $IDX = 1) END WHERE $IDX IN (1, 4)"
expect_tampered "swapped rows" "leaf 1 modified"

restore
sqlite3 "$db" "DELETE FROM $LEAVES WHERE $IDX >= 4"
expect_tampered "truncated table" "leaf 4 missing"

restore
sqlite3 "$db" "DELETE FROM $LEAVES"
expect_tampered "emptied table" "leaf 0 missing"

restore
sqlite3 "$db" "UPDATE $STHS SET sig = CAST(zeroblob(70) AS BLOB) WHERE size = (SELECT max(size) FROM $STHS)"
expect_tampered "tree head signature" "invalid signature"

# A checkpoint the record no longer extends: leaves dropped after it was
# taken, and no tree head left to notice.
restore
sqlite3 "$db" "DELETE FROM $STHS; DELETE FROM $LEAVES WHERE $IDX >= $((n - 1))"
expect_tampered "checkpoint" "leaf $((n - 1)) missing" --checkpoint "$work/cp"

# The untouched copy still verifies, against the checkpoint too.
restore
rf audit verify --checkpoint "$work/cp" >/dev/null || fail "clean copy"
echo "audit_tamper: ok ($n leaves)"
