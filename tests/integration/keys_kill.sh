#!/usr/bin/env bash
# keys_kill.sh: kill -9 can destroy no token and no key. 200 CLI commands
# (keys list, issue --keygen, revoke), each killed at a random moment:
# SoftHSM rewrites a token's token.object at every login (truncate, then
# write), and a command killed then leaves it empty or cut short; keys puts
# it back from its verified copy at the next start. Afterwards every token
# is there, `keys list` finds no disagreement between the store and the
# tokens, and the root and issuing keys sign (openssl verifies).
#
# The moment is 0 to 300 ms after the start on a release build; a build
# with sanitizers on a loaded machine takes far longer to reach the token,
# so the window is the time one `keys list` takes here (300 ms to 1 s).
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" keys-kill
cd "$RINGFENCE_HOME"
unset RINGFENCE_PIN || true
KILLS=${RF_KILLS:-200}

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "init"; }
rf tenant add acme >/dev/null
serials=()
# Four connections, so that none of these four is superseded (a third
# credential of one connection revokes the first and destroys its key:
# the issues killed below do that to connection "default").
for i in 1 2 3 4; do
	s=$(rf issue --tenant acme --connection "c$i" --profile client \
		--keygen ec-p256 2>&1 >/dev/null |
		awk '/^serial:/ { print $2 }')
	[ -n "$s" ] || fail "issue $i"
	serials+=("$s")
done
ntok=$(ls -d tokens/*/ | wc -l)
[ "$ntok" -ge 1 ] || fail "no token folders"

# The window of random moments (ms), from one timed `keys list`.
t0=$(date +%s%N)
rf keys list >/dev/null 2>&1 || fail "keys list before the kills"
win=$((($(date +%s%N) - t0) / 1000000))
[ "$win" -ge 300 ] || win=300
[ "$win" -le 1000 ] || win=1000
torn_seen=0
for ((k = 0; k < KILLS; k++)); do
	case $((RANDOM % 3)) in
	0) set -- keys list ;;
	1) set -- issue --tenant acme --profile client --keygen ec-p256 ;;
	2) set -- revoke "${serials[$((RANDOM % ${#serials[@]}))]}" --reason superseded ;;
	esac
	"$RINGFENCE" "$@" >/dev/null 2>&1 &
	pid=$!
	ms=$((RANDOM % (win + 1)))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# How often a kill left a torn token.object behind (for the log).
	for f in tokens/*/token.object; do
		if [ ! -s "$f" ]; then
			torn_seen=$((torn_seen + 1))
			break
		fi
	done
done

# Every token is there and its file whole again once keys has started.
rf keys list >list.txt 2>list.err ||
	{ cat list.err list.txt >&2; fail "keys list after $KILLS kills: $(tail -1 list.err)"; }
[ "$(ls -d tokens/*/ | wc -l)" -eq "$ntok" ] || fail "token folders: $(ls -d tokens/*/ | wc -l), not $ntok"
for f in tokens/*/token.object; do
	[ -s "$f" ] || fail "$f still empty after keys started"
done
export SOFTHSM2_CONF=$RINGFENCE_HOME/softhsm2.conf
nlab=$(pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --list-token-slots 2>/dev/null |
	grep -cE "token label *: *ringfence(\.[0-9]+)? *$" || true)
unset SOFTHSM2_CONF
[ "$nlab" -eq "$ntok" ] || fail "pkcs11-tool sees $nlab ringfence tokens, not $ntok"
for p in root issuing ocsp audit; do
	grep -qE "^[0-9a-f]{64} +ec-p256 +$p " list.txt || fail "the $p key is missing: $(cat list.txt)"
done
# The four certificates' keys, and every key issue recorded before a kill.
[ "$(grep -c " connection " list.txt)" -ge 4 ] || fail "tenant keys missing"
if grep -q "^disagreement" list.txt; then cat list.txt >&2; fail "disagreement"; fi
grep -q " unrecorded " list.txt && fail "a key the store does not know: $(grep unrecorded list.txt)"

# A torn file for sure, whatever the kills above hit: the first token's
# (without it nothing opens) and another's, emptied as a kill leaves them,
# with the custody process stopped (it reads the files when it starts).
rf keyd stop 2>/dev/null || fail "keyd stop"
first=$(grep -laF "$(printf '%-32s' ringfence)" tokens/*/token.object | head -1)
other=$(ls tokens/*/token.object | grep -vF "$first" | head -1)
: >"$first"
head -c 100 "$other" >"$other.cut" && mv "$other.cut" "$other"
rf keys list >list2.txt 2>list2.err ||
	{ cat list2.err >&2; fail "keys list with two torn token.object files"; }
[ -s "$first" ] && [ "$(stat -c %s "$other")" -gt 100 ] ||
	fail "torn token.object files not restored"
[ "$(wc -l <list2.txt)" -eq "$(wc -l <list.txt)" ] || fail "keys missing after the restore"
[ "$(sqlite3 -cmd ".timeout 10000" ringfence.db \
	"SELECT count(*) FROM audit_leaf WHERE type = 'token-restored'")" -ge 2 ] ||
	fail "no token-restored leaves"

# The root signs (its CRL), and so does the issuing CA (a certificate).
rf cert ca root >root.pem 2>/dev/null || fail "cert ca root"
rf cert ca issuing >issuing.pem 2>/dev/null || fail "cert ca issuing"
rf crl --issuer root --regenerate --out root.crl 2>crl.err || { cat crl.err >&2; fail "root CRL after the kills"; }
openssl crl -inform DER -in root.crl -CAfile root.pem -noout 2>&1 | grep -q "verify OK" ||
	fail "root CRL does not verify"
rf issue --tenant acme --profile client --keygen ec-p256 >final.txt 2>final.err ||
	{ cat final.err >&2; fail "issue after the kills"; }
rf audit verify >/dev/null 2>verify.err || { cat verify.err >&2; fail "audit verify after the kills"; }
echo "ok: $KILLS kills in 0-$win ms ($torn_seen left a torn token.object), $ntok tokens, $(($(wc -l <list.txt) - 1)) keys, no disagreement"
