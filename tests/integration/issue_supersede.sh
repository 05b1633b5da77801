#!/usr/bin/env bash
# A connection keeps two valid credentials, its current one and the one
# before it: issuing a third revokes the oldest (superseded) and publishes
# it before anything is issued, so that no valid credential is left that
# no connection names. An incident replaces what the connections name; a
# credential pushed out of them stayed valid through contain (a review
# found a third credential of globex/m365 valid, its key active, after
# the incident that contained the connection).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" supersede
h=$RINGFENCE_HOME
status() { # SERIAL -> valid | revoked
	rf cert list --json | python3 -c '
import json, sys
print(next(c["status"] for c in json.load(sys.stdin) if c["serial"] == sys.argv[1]))' "$1"
}
serial() { sed -n 's/^serial: //p' "$1"; }
valid() { # TENANT -> number of valid certificates
	rf cert list --json | python3 -c '
import json, sys
print(sum(1 for c in json.load(sys.stdin) if c["tenant"] == sys.argv[1] and c["status"] == "valid"))' "$1"
}

rf init >/dev/null
rf tenant add globex >/dev/null

# 1. Two credentials: both valid (the rollover). The third revokes the first.
for i in 1 2; do
	rf issue --tenant globex --connection m365 --profile client \
		--keygen ec-p256 --out "$h/c$i.pem" >"$h/c$i.txt"
done
s1=$(serial "$h/c1.txt") s2=$(serial "$h/c2.txt")
[ "$(status "$s1")" = valid ] && [ "$(status "$s2")" = valid ] ||
	fail "a connection's previous credential was revoked by the next"
rf issue --tenant globex --connection m365 --profile client \
	--keygen ec-p256 --out "$h/c3.pem" >"$h/c3.txt" 2>"$h/c3.err"
s3=$(serial "$h/c3.txt")
grep -q "revoked 1 previous credential (superseded)" "$h/c3.err" ||
	fail "the third issue did not say what it revoked: $(cat "$h/c3.err")"
[ "$(status "$s1")" = revoked ] || fail "the first credential is still valid after the third"
[ "$(status "$s2")" = valid ] && [ "$(status "$s3")" = valid ] ||
	fail "the current and previous credentials are not both valid"
# Its key, made in the token for it, is destroyed once the third is
# committed (issue 11: a key a rotation takes out of service does not stay
# in the token): the store says destroyed, the record has the intent and
# the act, keys list finds no disagreement, and the key cannot sign.
k1=$(sed -n 's/^key: //p' "$h/c1.txt") k2=$(sed -n 's/^key: //p' "$h/c2.txt")
grep -q "destroyed 1 superseded key in the token" "$h/c3.err" ||
	fail "the third issue did not destroy the first key: $(cat "$h/c3.err")"
keystate() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "SELECT state FROM keys WHERE id = '$1'"; }
[ "$(keystate "$k1")" = destroyed ] || fail "the superseded key is $(keystate "$k1"), not destroyed"
[ "$(keystate "$k2")" = active ] || fail "the previous credential's key is $(keystate "$k2")"
rf keys list >/dev/null 2>"$h/kl.err" || fail "keys list after the supersession: $(cat "$h/kl.err")"
rf audit search --json >"$h/audit.jsonl"
grep -q "\"destroy-intent\".*$k1\|$k1.*\"destroy-intent\"" "$h/audit.jsonl" &&
	grep -q "\"destroy\".*$k1\|$k1.*\"destroy\"" "$h/audit.jsonl" ||
	fail "the record lacks the destroy intent or act of $k1"
"$RF_BINARY_DIR/rf-keyd_client" sign "$k1" cert 2>/dev/null &&
	fail "the superseded key still signs"
# Published: the issuing CA's CRL lists it, reason superseded (openssl).
rf crl --issuer issuing --out "$h/issuing.crl" >/dev/null
openssl crl -inform DER -in "$h/issuing.crl" -noout -text >"$h/crl.txt"
grep -A4 "Serial Number: 0*$(echo "$s1" | tr a-f A-F)" "$h/crl.txt" |
	grep -q "Superseded" || fail "the CRL does not list $s1 as superseded: $(cat "$h/crl.txt")"
# A failed issue (an --out it cannot write) revokes nothing.
if rf issue --tenant globex --connection m365 --profile client \
	--keygen ec-p256 --out /nonexistent/x.pem 2>/dev/null; then
	fail "an issue to an --out it cannot write succeeded"
fi
[ "$(status "$s2")" = valid ] || fail "a failed issue revoked the previous credential"
# Nor does one whose CSR issuance refuses (checked before anything is
# revoked): one line, the one of the refusal.
echo "not a CSR" >"$h/bad.csr"
if rf issue --tenant globex --connection m365 --profile client \
	--csr "$h/bad.csr" 2>"$h/bad.err"; then
	fail "a bad CSR was issued"
fi
[ "$(wc -l <"$h/bad.err")" = 1 ] || fail "bad CSR: not one line: $(cat "$h/bad.err")"
[ "$(status "$s2")" = valid ] || fail "a refused CSR revoked the previous credential"

# 2. --csr-dir: each file's connection the same way, in one revocation.
mkdir "$h/csrs"
for round in 1 2 3; do
	rm -f "$h"/csrs/*
	for c in a b; do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout "$h/$c$round.key" -out "$h/csrs/$c.csr" \
			-subj "/CN=$c" 2>/dev/null
	done
	rf issue --tenant globex --profile client --csr-dir "$h/csrs" \
		--out "$h/out$round" >/dev/null 2>"$h/dir$round.err" ||
		fail "issue --csr-dir, round $round: $(cat "$h/dir$round.err")"
done
grep -q "revoked 2 previous credentials (superseded)" "$h/dir3.err" ||
	fail "the third --csr-dir did not revoke the two oldest: $(cat "$h/dir3.err")"
# Two files for one connection (a.csr and a.pem): refused before anything
# is revoked or issued.
cp "$h/csrs/a.csr" "$h/csrs/a.pem"
before=$(rf cert list --json)
if rf issue --tenant globex --profile client --csr-dir "$h/csrs" \
	--out "$h/outdup" >/dev/null 2>"$h/dup.err"; then
	fail "a --csr-dir naming one connection twice was issued"
fi
grep -q "two CSR files for connection a" "$h/dup.err" ||
	fail "duplicate connection in --csr-dir: $(cat "$h/dup.err")"
[ "$(rf cert list --json)" = "$before" ] || fail "a refused --csr-dir changed certificates"
rm "$h/csrs/a.pem"
# Three connections of globex, two valid credentials each.
[ "$(valid globex)" = 6 ] || fail "globex has $(valid globex) valid certificates, not 6"

# 3. An incident on the connection leaves none of its old credentials
# valid: only its new one.
id=$(rf incident open --scope connection:globex/m365 --reason test | head -1)
rf incident contain "$id" >/dev/null 2>&1 || fail "contain failed"
[ "$(status "$s2")" = revoked ] && [ "$(status "$s3")" = revoked ] ||
	fail "contain left an old credential of globex/m365 valid"
[ "$(valid globex)" = 5 ] ||
	fail "after contain globex has $(valid globex) valid certificates, not 5 (m365's new one, a and b's two each)"

# 4. A store serve's user changed cannot make issue destroy a CA key: the
# oldest credential of globex/web is made to name the issuing key, which
# the store now calls a connection's. keyd destroys tenant keys only (its
# ledger says what it made as a CA key): the issuance stands, one line says
# the destroy was refused, and the issuing key still signs.
for i in 1 2; do
	rf issue --tenant globex --connection web --profile client \
		--keygen ec-p256 --out "$h/w$i.pem" >"$h/w$i.txt" 2>/dev/null
done
w1=$(serial "$h/w1.txt") wk1=$(sed -n 's/^key: //p' "$h/w1.txt")
[ -n "$w1" ] && [ -n "$wk1" ] || fail "no serial or key for web's first credential"
iss=$(sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "SELECT id FROM keys WHERE purpose = 'issuing'")
[ -n "$iss" ] || fail "no issuing key in the store"
db() { sqlite3 -cmd ".timeout 10000" "$h/ringfence.db" "$1"; }
db "UPDATE certs SET key_id = '$iss' WHERE serial = '$w1'"
db "UPDATE keys SET purpose = 'connection', tenant = 'globex' WHERE id = '$iss'"
rf issue --tenant globex --connection web --profile client --keygen ec-p256 \
	--out "$h/w3.pem" >"$h/w3.txt" 2>"$h/w3.err" || fail "the third issue of web failed: $(cat "$h/w3.err")"
db "UPDATE keys SET purpose = 'issuing', tenant = '' WHERE id = '$iss'"
db "UPDATE certs SET key_id = '$wk1' WHERE serial = '$w1'"
grep -q "destroying the superseded keys failed: custody refused to destroy key $iss: keyd made it as the issuing key" "$h/w3.err" ||
	fail "the tampered supersession: $(cat "$h/w3.err")"
[ "$(keystate "$iss")" = active ] || fail "the issuing key is $(keystate "$iss")"
rf issue --tenant globex --connection web2 --profile client --keygen ec-p256 >/dev/null 2>&1 ||
	fail "the issuing key no longer signs"
# 5. Nor by pointing the superseded key's record at the issuing key's
# token object (its CKA_ID): keyd loads the object the record names and
# finds a public key that is not the id's, and destroys nothing.
for i in 1 2; do
	rf issue --tenant globex --connection web3 --profile client \
		--keygen ec-p256 --out "$h/v$i.pem" >"$h/v$i.txt" 2>/dev/null
done
vk1=$(sed -n 's/^key: //p' "$h/v1.txt")
[ -n "$vk1" ] || fail "no key for web3's first credential"
saved=$(db "SELECT token_id || ' ' || token FROM keys WHERE id = '$vk1'")
db "UPDATE keys SET token_id = (SELECT token_id FROM keys WHERE id = '$iss'),
	token = (SELECT token FROM keys WHERE id = '$iss') WHERE id = '$vk1'"
rf issue --tenant globex --connection web3 --profile client --keygen ec-p256 \
	--out "$h/v3.pem" >"$h/v3.txt" 2>"$h/v3.err" || fail "the third issue of web3 failed: $(cat "$h/v3.err")"
db "UPDATE keys SET token_id = '${saved%% *}', token = '${saved#* }' WHERE id = '$vk1'"
grep -q "destroying the superseded keys failed: custody refused to destroy key $vk1: .*public key hashing to ${iss:0:32}" "$h/v3.err" ||
	fail "the redirected supersession: $(cat "$h/v3.err")"
[ "$(keystate "$iss")" = active ] || fail "the issuing key is $(keystate "$iss")"
rf issue --tenant globex --connection web4 --profile client --keygen ec-p256 >/dev/null 2>&1 ||
	fail "the issuing key no longer signs after the redirected supersession"
rf audit verify >/dev/null || fail "the audit record does not verify"
echo "issue_supersede: ok"
