#!/usr/bin/env bash
# keyd_split.sh: the custody process and the user split (as root, as CI
# runs it). Throwaway users stand for ringfence-keyd and ringfence: keyd
# runs as the custody user; the token folder and the PIN are that user's
# alone (0700 / 0600) and keyd refuses to start when they are not; a
# process of the server user cannot read them, and asking keyd directly
# (rf-keyd_client) for a certificate signature, an OCSP `good` for a
# revoked serial (also once the store's revocation is cleared behind keyd's
# back: its ledger), a raw digest with a CA key (also once the store says
# the key is serve's TLS key) or a connector binding for keyd's ledger is
# refused, as is a `good` valid until 2050 (longer than any validity),
# each refusal an audit leaf. An OCSP `good` for a certificate that is
# good, valid a day, is signed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-split
client="$RF_BINARY_DIR/rf-keyd_client"
work=$(mktemp -d /tmp/rf-keyd-split.XXXXXX)
chmod 755 "$work"

# Unique names, removed on exit with the state folder and its keyd.
split_cleanup() { rm -rf "$work"; }
extra_cleanup=split_cleanup
. "$here/lib/users.sh"
as_server() { setpriv --reuid "$su" --regid "$grp" --clear-groups -- "$@"; }
leaves() {
	sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" \
		"SELECT count(*) FROM audit_leaf WHERE type = '$1'"
}

# init as root, then the state as scripts/run.sh leaves it: the custody
# user owns the state and its token and PIN; the server user's group may
# enter the state folder.
rf init >/dev/null 2>&1 || fail "init"
custody=$RINGFENCE_HOME-custody
chown -R "$ku:$grp" "$RINGFENCE_HOME" "$custody"
chmod 750 "$RINGFENCE_HOME"
chmod 700 "$RINGFENCE_HOME/tokens" "$custody"
chmod 600 "$custody/token.pin"

# A PIN file others may read: keyd refuses to start, naming path and chmod.
chmod 640 "$custody/token.pin"
if rf keyd --idle 5 2>"$work/err"; then fail "keyd started with a 0640 PIN file"; fi
grep -q "token.pin.*chmod 600" "$work/err" || fail "PIN mode message: $(cat "$work/err")"
chmod 600 "$custody/token.pin"

"$RINGFENCE" keyd 2>"$work/keyd.log" &
kpid=$!
for _ in $(seq 200); do
	rf keyd status >/dev/null 2>&1 && break
	sleep 0.05
done
rf keyd status >"$work/status" || fail "keyd did not start: $(cat "$work/keyd.log")"
grep -q "running as custody user '$ku'" "$work/keyd.log" || fail "no user split: $(cat "$work/keyd.log")"
[ "$(ps -o user= -p "$kpid" | tr -d ' ')" = "$ku" ] || fail "keyd runs as $(ps -o user= -p "$kpid")"
[ "$(stat -c %U:%a "$RINGFENCE_HOME/tokens")" = "$ku:700" ] || fail "tokens/: $(stat -c %U:%a "$RINGFENCE_HOME/tokens")"
[ "$(stat -c %U:%a "$custody/token.pin")" = "$ku:600" ] || fail "PIN: $(stat -c %U:%a "$custody/token.pin")"
[ "$(stat -c %U:%a "$custody")" = "$ku:700" ] || fail "custody folder mode"
[ ! -e "$RINGFENCE_HOME/token.pin" ] && [ ! -e "$RINGFENCE_HOME/token.so-pin" ] ||
	fail "a PIN file in the state folder"

# Root is admin: a certificate to revoke and one to keep, keys to name.
rf tenant add acme >/dev/null
rf issue --tenant acme --profile client --keygen ec-p256 --out "$work/r.pem" >"$work/meta"
revoked=$(sed -n 's/^serial: //p' "$work/meta")
rf issue --tenant acme --profile client --keygen ec-p256 --out "$work/g.pem" >"$work/meta"
good=$(sed -n 's/^serial: //p' "$work/meta")
rf revoke "$revoked" --reason keyCompromise >/dev/null
rf cert ca issuing >"$work/issuing.pem"
chmod 644 "$work/issuing.pem"
rf keys list --json >"$work/keys.json"
issuing=$(jq -r 'select(.purpose == "issuing") | .id' "$work/keys.json")
ocsp=$(jq -r 'select(.purpose == "ocsp") | .id' "$work/keys.json")
[ -n "$issuing" ] && [ -n "$ocsp" ] || fail "no issuing/OCSP key in keys list"

# The server user cannot read the token folder or the PIN.
as_server ls "$RINGFENCE_HOME/tokens" >/dev/null 2>&1 && fail "server user lists tokens/"
as_server cat "$custody/token.pin" >/dev/null 2>&1 && fail "server user reads the PIN"

# What a compromised serve asks: refused (exit 3), each an audit leaf.
before=$(leaves refused)
set +e
as_server "$client" sign "$issuing" cert 2>"$work/e1"; rc1=$?
as_server "$client" ocsp-good "$ocsp" "$work/issuing.pem" "$revoked" 2>"$work/e2"; rc2=$?
as_server "$client" digest "$issuing" tls 2>"$work/e3"; rc3=$?
as_server "$client" ocsp-good "$ocsp" "$work/issuing.pem" "$good" 2>"$work/e4"; rc4=$?
as_server "$client" note-bind sync acme m365 2>"$work/e5"; rc5=$?
# A good answer that lasts until 2050 would outlive the next revocation.
as_server "$client" ocsp-good-long "$ocsp" "$work/issuing.pem" "$good" 2>"$work/e10"; rc10=$?
set -e
[ $rc10 = 3 ] || fail "OCSP good valid until 2050: rc $rc10 $(cat "$work/e10")"
grep -q "nextUpdate missing or more than 30 days" "$work/e10" || fail "OCSP lifetime refusal reason: $(cat "$work/e10")"
# A binding for keyd's connector policy comes from an administrator only.
[ $rc5 = 3 ] || fail "a binding noted by the server user: rc $rc5 $(cat "$work/e5")"
grep -q '^b sync acme m365$' "$custody/revoked.ledger" &&
	fail "the server user's binding is in keyd's ledger"
"$client" note-bind sync acme m365 || fail "an administrator's binding refused"
grep -q '^b sync acme m365$' "$custody/revoked.ledger" ||
	fail "an administrator's binding is not in keyd's ledger"
[ $rc1 = 3 ] || fail "certificate signature for the server user: rc $rc1 $(cat "$work/e1")"
[ $rc2 = 3 ] || fail "OCSP good for a revoked serial: rc $rc2 $(cat "$work/e2")"
grep -q "good for a revoked" "$work/e2" || fail "OCSP refusal reason: $(cat "$work/e2")"
[ $rc3 = 3 ] || fail "raw digest with the issuing key: rc $rc3 $(cat "$work/e3")"
[ $rc4 = 0 ] || fail "OCSP good for a good serial refused: $(cat "$work/e4")"
after=$(leaves refused)
[ $((after - before)) -ge 5 ] || fail "refusals recorded: $((after - before)), want 5"
sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT data FROM audit_leaf WHERE type = 'refused'" |
	grep -q "uid $(id -u "$su")" || fail "refusal leaf does not name the caller's uid"
# The CLI as the server user: keys list refused in one line, no half table.
set +e
as_server "$RINGFENCE" keys list >"$work/kl.out" 2>"$work/kl.err"
rc8=$?
set -e
[ $rc8 = 1 ] && [ ! -s "$work/kl.out" ] && [ "$(wc -l <"$work/kl.err")" = 1 ] &&
	grep -q "not for class server" "$work/kl.err" ||
	fail "keys list as the server user: rc $rc8, out '$(cat "$work/kl.out")', err '$(cat "$work/kl.err")'"
after=$(leaves refused)
# The operator finds them with the CLI: audit search --type refused, every
# line a refusal, --limit counting refusals only.
rf audit search --type refused --json >"$work/refused.json" 2>/dev/null
[ "$(wc -l <"$work/refused.json")" -eq "$after" ] ||
	fail "audit search --type refused: $(wc -l <"$work/refused.json") lines, $after refusals"
[ "$(jq -r .event.type "$work/refused.json" | sort -u)" = refused ] || fail "audit search --type refused lists other types"
grep -q "uid $(id -u "$su")" "$work/refused.json" || fail "audit search --type refused does not name the caller"
[ "$(rf audit search --type refused --limit 2 2>/dev/null | wc -l)" -eq 2 ] || fail "audit search --type refused --limit 2"

# A serve that can also write the store clears the revocation there: keyd
# has it in its ledger (custody folder, its user's alone) and still refuses.
[ "$(stat -c %U:%a "$custody/revoked.ledger")" = "$ku:600" ] ||
	fail "ledger: $(stat -c %U:%a "$custody/revoked.ledger")"
sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" \
	"UPDATE certs SET revoked = 0, revoked_at = 0, reason = -1 WHERE serial = '$revoked'"
set +e
as_server "$client" ocsp-good "$ocsp" "$work/issuing.pem" "$revoked" 2>"$work/e6"
rc6=$?
set -e
[ $rc6 = 3 ] || fail "OCSP good once the store's revocation was cleared: rc $rc6 $(cat "$work/e6")"
grep -q "revoked in keyd's ledger" "$work/e6" || fail "ledger refusal reason: $(cat "$work/e6")"
# Nor a CRL of the issuing CA without it (the store now lists nothing).
set +e
as_server "$client" crl-empty "$issuing" "$work/issuing.pem" 2>"$work/e7"
rc7=$?
set -e
[ $rc7 = 3 ] || fail "a CRL leaving out the revocation: rc $rc7 $(cat "$work/e7")"
grep -q "revoked in keyd's ledger" "$work/e7" || fail "CRL refusal reason: $(cat "$work/e7")"

# ... nor a handshake digest with the issuing CA key once the store says
# its purpose is "tls": keyd signs digests only with a TLS key it made
# itself (its ledger), so serve's user cannot turn a CA key into a signer
# of anything.
sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" \
	"UPDATE keys SET purpose = 'tls' WHERE id = '$issuing'"
set +e
as_server "$client" digest "$issuing" tls 2>"$work/e9"
rc9=$?
set -e
sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" \
	"UPDATE keys SET purpose = 'issuing' WHERE id = '$issuing'"
[ $rc9 = 3 ] || fail "a digest with the CA key once the store said tls: rc $rc9 $(cat "$work/e9")"
grep -q "keyd made this key as the issuing key, and the store now says tls" "$work/e9" ||
	fail "TLS refusal reason: $(cat "$work/e9")"

# Someone of no class (nobody, let through the folder): refused at hello,
# recorded.
chmod 751 "$RINGFENCE_HOME"
before=$(leaves refused)
set +e
setpriv --reuid nobody --regid nogroup --clear-groups -- "$client" sign "$issuing" cert 2>"$work/e5"
rc5=$?
set -e
chmod 750 "$RINGFENCE_HOME"
[ $rc5 = 3 ] || fail "a caller of no class was not refused: rc $rc5 $(cat "$work/e5")"
[ "$(leaves refused)" -gt "$before" ] || fail "no leaf for the caller of no class"
rf audit verify >/dev/null 2>&1 || fail "audit verify after refusals"
kill "$kpid"
wait "$kpid" 2>/dev/null || true
echo "keyd_split: ok"
