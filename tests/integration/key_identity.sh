#!/usr/bin/env bash
# Issue 13 items 1, 2 and 9 as the review reproduced them: one key for one
# tenant connection under 50 concurrent issuances, the e=65539 twin, e=3, a
# SHA-1 proof of possession, a compromised key coming back, `issue` into a
# full disk, and names made of dots.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" key-identity
tmp=$RINGFENCE_HOME/t
mkdir -p "$tmp"

rf init >/dev/null
rf tenant add acme >/dev/null
rf tenant add globex >/dev/null
"$RF_BINARY_DIR/rf-csrs" "$tmp"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout /dev/null -subj /CN=x -out "$tmp/ec.csr" 2>/dev/null

# 1. 50 concurrent issuances of one CSR, for two tenants and 50
# connections: the key is claimed once, in the issuing transaction.
pids=()
for i in $(seq 1 50); do
	t=acme
	[ $((i % 2)) -eq 0 ] && t=globex
	rf issue --tenant "$t" --connection "c$i" --profile client \
		--csr "$tmp/ec.csr" >"$tmp/out.$i" 2>"$tmp/err.$i" &
	pids+=($!)
done
ok=0
w=0
for i in $(seq 1 50); do
	if wait "${pids[$((i - 1))]}"; then
		ok=$((ok + 1))
		w=$i
	elif ! grep -q 'public key already serves tenant\|claimed by another tenant connection' \
		"$tmp/err.$i"; then
		fail "issue $i failed for another reason: $(cat "$tmp/err.$i")"
	fi
done
[ "$ok" -eq 1 ] || fail "$ok of 50 concurrent issuances of one key succeeded"
n=$(rf --json cert list 2>/dev/null | grep -c . || true)
[ "$n" -eq 1 ] || fail "$n certificates stored for one key"
# The same connection renews with its key; another connection may not.
wt=acme
[ $((w % 2)) -eq 0 ] && wt=globex
rf issue --tenant "$wt" --connection "c$w" --profile client \
	--csr "$tmp/ec.csr" >/dev/null || fail "renewal of connection c$w refused"
if rf issue --tenant "$wt" --connection other --profile client \
	--csr "$tmp/ec.csr" >/dev/null 2>"$tmp/err"; then
	fail "one key issued for a second connection of $wt"
fi
grep -q "serves tenant $wt connection c$w" "$tmp/err" ||
	fail "second connection: $(cat "$tmp/err")"

# 2. The e=65539 twin of a certified modulus, e=3, a SHA-1 proof.
rf issue --tenant acme --connection twin --profile client \
	--csr "$tmp/twin65537.csr" >/dev/null || fail "e=65537 twin refused"
refused() { # refused FILE TENANT PATTERN
	if rf issue --tenant "$2" --connection x --profile client --csr "$1" \
		>/dev/null 2>"$tmp/err"; then
		fail "$1 was issued"
	fi
	[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$1: not one line: $(cat "$tmp/err")"
	grep -q "$3" "$tmp/err" || fail "$1: $(cat "$tmp/err")"
}
refused "$tmp/twin65539.csr" globex 'public exponent 65539: only 65537'
refused "$tmp/e3.csr" globex 'public exponent 3: only 65537'
refused "$tmp/sha1.csr" globex 'signed with SHA1: sign it with SHA-256'
rf issue --tenant globex --connection sha --profile client \
	--csr "$tmp/sha256.csr" >/dev/null || fail "SHA-256 proof refused"

# 3. A key revoked for keyCompromise never comes back, in any tenant.
rf issue --tenant acme --connection mail --profile client \
	--csr "$tmp/sha256.csr" >/dev/null 2>&1 && fail "key reused across tenants"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
	-keyout /dev/null -subj /CN=y -out "$tmp/lost.csr" 2>/dev/null
serial=$(rf --json issue --tenant acme --connection lost --profile client \
	--csr "$tmp/lost.csr" | sed -n 's/.*"serial": *"\([0-9a-f]*\)".*/\1/p')
[ -n "$serial" ] || fail "no serial"
rf revoke "$serial" --reason keyCompromise >/dev/null
refused "$tmp/lost.csr" acme "certificate $serial of tenant acme was revoked for keyCompromise at 20"
rf keys compromised | grep -q "$serial" || fail "keys compromised lacks $serial"
rf --json keys compromised | grep -q "\"serial\":\"$serial\"" ||
	fail "keys compromised --json lacks $serial"

# 4. Output: a full disk under `issue > file` fails with one clear line.
if [ -w /dev/full ]; then
	if rf issue --tenant acme --connection full --profile client \
		--keygen ec-p256 >/dev/full 2>"$tmp/err"; then
		fail "issue > /dev/full exited 0"
	fi
	grep -q 'cannot write the output (No space left on device)' "$tmp/err" ||
		fail "issue > /dev/full: $(cat "$tmp/err")"
fi

# 5. Names of dots, or starting with a dot, or with a slash: refused.
for bad in .. . .hidden 'a/b' '...'; do
	if rf tenant add "$bad" >/dev/null 2>"$tmp/err"; then
		fail "tenant '$bad' was created"
	fi
	[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "tenant '$bad': $(cat "$tmp/err")"
	if rf issue --tenant acme --connection "$bad" --profile client \
		--keygen ec-p256 >/dev/null 2>"$tmp/err"; then
		fail "connection '$bad' was created"
	fi
done
echo "key_identity: OK"
