#!/usr/bin/env bash
# keyd_kill_issue.sh: the issue's kill, with the CLI a new user has: a
# 1,000-certificate batch (`ringfence issue --csr-dir`, one connection per
# CSR file) while keyd is killed (kill -9) once a hundred certificates are
# in. Whatever moment the kill hits: a failing command says so in one line
# (what broke, how many were issued, run it again); every certificate in the
# store has its "sign" leaf; the record verifies; the same command run again
# issues the rest, skipping (and listing) what was issued before, until
# every CSR has exactly one certificate and its chain file. Also the batch
# mode's bad input: a CSR file whose name is no connection name, a folder
# without CSRs, a bad CSR among good ones (refused, naming it, before
# anything is issued), --csr-dir without --out or with --connection.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-kill-issue
work=$RINGFENCE_HOME/.test
mkdir -p "$work/csr" "$work/bad"
N=${RF_KILL_ISSUE_N:-1000}
q() { sqlite3 -cmd ".timeout 10000" "$RINGFENCE_HOME/ringfence.db" "$1"; }
unrecorded() {
	q "SELECT count(*) FROM certs WHERE serial NOT IN (SELECT
		json_extract(CAST(data AS TEXT), '\$.ref') FROM audit_leaf
		WHERE type = 'sign' AND
		json_extract(CAST(data AS TEXT), '\$.what') = 'cert')"
}
# N EC P-256 CSRs, c0001.pem ... (python3-cryptography, scripts/deps.sh).
python3 - "$work/csr" "$N" <<'PY'
import sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
d, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    k = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c%04d" % i)])).sign(k, hashes.SHA256())
    with open("%s/c%04d.pem" % (d, i), "wb") as f:
        f.write(csr.public_bytes(serialization.Encoding.PEM))
PY
[ "$(ls "$work/csr" | wc -l)" -eq "$N" ] || fail "CSRs not made"

rf init >/dev/null 2>&1 || fail "init"
rf tenant add acme >/dev/null
base=$(q "SELECT count(*) FROM certs")

# Bad input: usage (exit 2) or one line naming what to fix (exit 1).
set +e
rf issue --tenant acme --profile client --csr-dir "$work/csr" 2>"$work/u1"; u1=$?
rf issue --tenant acme --profile client --csr-dir "$work/csr" --out "$work/out" --connection x 2>"$work/u2"; u2=$?
cp "$work/csr/c0001.pem" "$work/bad/no good.pem"
rf issue --tenant acme --profile client --csr-dir "$work/bad" --out "$work/bo" 2>"$work/u3"; u3=$?
rm "$work/bad/no good.pem"
rf issue --tenant acme --profile client --csr-dir "$work/bad" --out "$work/bo" 2>"$work/u4"; u4=$?
# A bad CSR among good ones: refused before anything is issued, by name.
cp "$work/csr/c0001.pem" "$work/csr/c0002.pem" "$work/bad/"
echo "not a CSR" >"$work/bad/zz.pem"
rf issue --tenant acme --profile client --csr-dir "$work/bad" --out "$work/bo" 2>"$work/u5"; u5=$?
rm -f "$work/bad/"*
set -e
[ $u1 = 2 ] && grep -q -- "--csr-dir needs --out" "$work/u1" || fail "--csr-dir without --out: $u1 $(cat "$work/u1")"
[ $u2 = 2 ] && grep -q -- "leave out --connection" "$work/u2" || fail "--csr-dir with --connection: $u2 $(cat "$work/u2")"
[ $u3 = 1 ] && [ "$(wc -l <"$work/u3")" = 1 ] && grep -q "no good.pem: its name" "$work/u3" ||
	fail "a CSR file named no connection: $u3 $(cat "$work/u3")"
[ $u4 = 1 ] && grep -q "no CSR files" "$work/u4" || fail "an empty CSR folder: $u4 $(cat "$work/u4")"
[ $u5 = 1 ] && [ "$(wc -l <"$work/u5")" = 1 ] && grep -q "CSR for connection zz in .*nothing was issued" "$work/u5" ||
	fail "a bad CSR in the folder: $u5 $(cat "$work/u5")"
[ "$(q "SELECT count(*) FROM certs")" = "$base" ] || fail "bad input issued certificates"

# The batch, and keyd killed once a hundred certificates are in.
rf keyd status >/dev/null 2>&1 || rf keys list >/dev/null
"$RINGFENCE" issue --tenant acme --profile client --csr-dir "$work/csr" --out "$work/out" \
	>"$work/run1" 2>"$work/err1" &
batch=$!
killed=0
for _ in $(seq 600); do
	if [ "$(q "SELECT count(*) FROM certs")" -ge $((base + 100)) ]; then
		kill -9 "$(cat "$RINGFENCE_HOME/keyd.pid")" 2>/dev/null && killed=1
		break
	fi
	kill -0 "$batch" 2>/dev/null || break
	sleep 0.02
done
set +e
wait "$batch"
rc=$?
set -e
[ $killed = 1 ] || fail "keyd was not killed during the batch (rc $rc)"
if [ $rc != 0 ]; then
	[ "$(wc -l <"$work/err1")" = 1 ] || { cat "$work/err1" >&2; fail "the killed batch's error is not one line"; }
	grep -q "certificates were issued before it" "$work/err1" &&
		grep -q "the same command skips them" "$work/err1" ||
		fail "the killed batch does not say what to do: $(cat "$work/err1")"
	echo "keyd_kill_issue: the batch failed as keyd died: $(cat "$work/err1")"
else
	# The kill fell between two requests: the next one started keyd again.
	echo "keyd_kill_issue: the kill fell between requests; the batch went on with a new keyd"
fi
[ "$(unrecorded)" = 0 ] || fail "$(unrecorded) certificates without their signature leaf"
rf audit verify >/dev/null 2>"$work/verify" || fail "audit verify: $(cat "$work/verify")"
first=$(($(q "SELECT count(*) FROM certs") - base))

# The same command again: the rest issued, what was issued listed as before.
rf issue --tenant acme --profile client --csr-dir "$work/csr" --out "$work/out" --json \
	>"$work/run2" 2>"$work/err2" || fail "the batch run again: $(cat "$work/err2")"
[ "$(wc -l <"$work/run2")" = "$N" ] || fail "the rerun listed $(wc -l <"$work/run2") certificates, not $N"
[ "$(jq -r 'select(.issued_before) | .serial' "$work/run2" | wc -l)" = "$first" ] ||
	fail "the rerun did not list the $first certificates issued before"
[ "$(q "SELECT count(*) FROM certs")" = $((base + N)) ] ||
	fail "$(($(q "SELECT count(*) FROM certs") - base)) certificates for $N CSRs"
[ "$(q "SELECT count(DISTINCT key_id) FROM certs WHERE tenant = 'acme'")" = "$N" ] ||
	fail "a CSR's key has more than one certificate"
[ "$(ls "$work/out" | wc -l)" = "$N" ] || fail "$(ls "$work/out" | wc -l) chain files for $N CSRs"
[ "$(unrecorded)" = 0 ] || fail "$(unrecorded) certificates without their signature leaf after the rerun"
# A chain file is the certificate, its CA and the root, and verifies.
rf cert ca root >"$work/root.pem"
rf cert ca issuing >"$work/issuing.pem"
openssl verify -CAfile "$work/root.pem" -untrusted "$work/issuing.pem" "$work/out/c0001.pem" "$work/out/c$(printf %04d "$N").pem" >/dev/null ||
	fail "chain files do not verify"
s1=$(jq -r 'select(.connection == "c0001") | .serial' "$work/run2")
[ "$(openssl x509 -in "$work/out/c0001.pem" -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')" = "$s1" ] ||
	fail "c0001.pem is not the certificate listed for c0001"
rf audit verify >/dev/null 2>"$work/verify" || fail "audit verify after the rerun: $(cat "$work/verify")"
echo "keyd_kill_issue: ok ($first issued before the rerun)"
