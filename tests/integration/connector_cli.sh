#!/usr/bin/env bash
# `ringfence connector ...` as docs/connectors.md walks through it, and
# what it refuses: each refusal is one line saying what to do, exits 1 and
# changes nothing (connector list, cert list, connection list, the
# registration). A connector is added with its first certificate or not at
# all: a bad CSR (missing, RSA-1024, a key file, a compromised key) or an
# --out that cannot be written leaves no connector, so the same add with
# a good CSR works; an existing connector's error names 'connector
# enroll'. An entra registration refuses a connection whose credential is
# EC, says what a re-registration changed and does not ask for a
# credential the connection has; bind says what it bound; show, list
# and alerts list print times as cert list does, in text and --json;
# alerts list names each alert's id and says when there are none; usage
# errors give the subcommand's usage and what is missing; a key another
# connector holds is named by that connector; a second revoke says so;
# assert's usage and key errors say what to fix. No server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector-cli
. "$here/lib/connector.sh" connector_cli
CID2=00000003-0000-4000-8000-0000000000bb

# refused PATTERN CMD...: CMD exits 1 with one line on stderr that
# matches PATTERN (grep -E).
refused() {
	local pat=$1 rc=0
	shift
	"$@" >out 2>err || rc=$?
	[ $rc -eq 1 ] || fail "$*: exit $rc, not 1: $(cat err)"
	[ "$(wc -l <err)" -eq 1 ] || fail "$*: not one line: $(cat err)"
	grep -Eq -- "$pat" err || fail "$*: $(cat err)"
}
# snap FILE: what a refusal must leave as it was.
snap() {
	{
		rf connector list
		rf cert list
		rf connection list
		rf --json tenant list
		sqlite3 "$RINGFENCE_HOME/ringfence.db" \
			"SELECT * FROM conn_entra ORDER BY tenant, conn"
	} >"$1"
}
# unchanged FILE WHAT: the state is still the one snap FILE saw.
unchanged() {
	snap now.txt
	cmp -s "$1" now.txt || fail "$2 changed: $(diff "$1" now.txt)"
}
csr() { # NAME [openssl -newkey argument]: NAME.key and NAME.csr
	openssl req -new -newkey "${2:-ec}" ${3:+-pkeyopt "$3"} -nodes \
		-keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
}

rf init >/dev/null
rf tenant add acme >/dev/null
csr sync ec ec_paramgen_curve:P-256
csr other ec ec_paramgen_curve:P-256
csr weak rsa:1024
# A key revoked for keyCompromise, as a connector's CSR.
csr lost ec ec_paramgen_curve:P-256
rf issue --tenant acme --profile client --csr lost.csr --out lost.pem >/dev/null
rf revoke "$(openssl x509 -in lost.pem -noout -serial | cut -d= -f2 | tr A-F a-f)" \
	--reason keyCompromise >/dev/null

# A failed add leaves no connector (and no certificate or tenant).
snap before.txt
refused "cannot read missing.csr" rf connector add sync --csr missing.csr
refused "^ringfence: CSR weak.csr: .*RSA-1024" rf connector add sync --csr weak.csr
refused "^ringfence: CSR sync.key: " rf connector add sync --csr sync.key
refused "^ringfence: CSR lost.csr: public key is compromised" \
	rf connector add sync --csr lost.csr
# An --out that cannot be written: checked before anything is issued.
refused "^ringfence: --out $tmp/no/such/x.pem: .*: nothing was issued" \
	rf connector add sync --csr sync.csr --out "$tmp/no/such/x.pem"
mkdir folder
refused "^ringfence: --out folder: a folder: give a file name in it" \
	rf connector add sync --csr sync.csr --out folder
unchanged before.txt "a failed connector add"
# The same add with a good CSR and --out then works.
rf connector add sync --csr sync.csr --out sync.pem >out ||
	fail "add after the failed ones: $(cat out)"
grep -q "^connector sync: certificate [0-9a-f]*, valid 7 days$" out ||
	fail "add: $(cat out)"
openssl x509 -in sync.pem -noout -subject | grep -q "CN *= *connector.sync" ||
	fail "sync.pem: $(openssl x509 -in sync.pem -noout -subject)"
rf connector list | grep -q "^sync  *active$" || fail "connector list: $(rf connector list)"

# An existing connector: the error says how to give it a certificate.
snap before.txt
refused "^ringfence: connector sync exists: give it a certificate with 'ringfence connector enroll sync --csr FILE'" \
	rf connector add sync --csr other.csr --out other.pem
refused "^ringfence: connector sync exists: " rf connector add sync
# enroll checks --out first too.
refused "^ringfence: --out $tmp/no/such/x.pem: .*: nothing was issued" \
	rf connector enroll sync --csr other.csr --out "$tmp/no/such/x.pem"
unchanged before.txt "a refused add of an existing connector"
[ ! -e other.pem ] || fail "other.pem written by a refused add"
rf connector enroll sync --csr other.csr --out other.pem >/dev/null ||
	fail "enroll of an existing connector"

# A key another connector holds: the error names that connector, not the
# tenant its certificates are issued under.
snap before.txt
refused "^ringfence: CSR sync.csr: this key is already connector sync's \(certificate [0-9a-f]+\); make a new key for each connector$" \
	rf connector add j2 --csr sync.csr
unchanged before.txt "an add with another connector's key"

# A name too long is not echoed cut: the error states the limit.
long=$(printf 'a%.0s' $(seq 70))
snap before.txt
refused "^ringfence: connector name of 70 characters: use 1-48 characters" \
	rf connector add "$long"
grep -q "aaaaaaaaaaaaaaaa" err && fail "the long name is echoed: $(cat err)"
unchanged before.txt "a refused long name"

# show prints not after as cert list does (ISO 8601 UTC).
serial=$(openssl x509 -in sync.pem -noout -serial | cut -d= -f2 | tr A-F a-f |
	sed 's/^0*//')
na=$(rf cert list | awk -v s="$serial" '$1 == s { print $4 }')
[ -n "$na" ] || fail "cert list has no $serial: $(rf cert list)"
rf connector show sync >show.txt
grep -Eq "^  certificate $serial valid \(not after [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\)$" show.txt &&
	grep -q "(not after $na)" show.txt ||
	fail "connector show (cert list says $na): $(cat show.txt)"
# --json gives the same times, not Unix seconds (cert list --json too).
rf --json connector show sync >show.json
rf --json cert list >certs.json
python3 - show.json certs.json "$serial" "$na" <<'PY' || fail "connector show --json: $(cat show.json)"
import json, sys
show, certs, serial, na = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
mine = [c for c in show["certificates"] if c["serial"] == serial]
assert len(mine) == 1 and mine[0]["not_after"] == na, show
assert [c["not_after"] for c in certs if c["serial"].lstrip("0") == serial] == [na], certs
PY
rf --json connector list >list.json
python3 - list.json <<'PY' || fail "connector list --json: $(cat list.json)"
import json, re, sys
l = json.load(open(sys.argv[1]))
assert l and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["created"]) for c in l), l
PY

# entra refuses a connection whose current credential is EC, and changes
# nothing (the connection keeps its relying party; no registration).
rf issue --tenant acme --connection ecc --profile assertion \
	--keygen ec-p256 >/dev/null 2>&1
snap before.txt
refused "^ringfence: connection acme/ecc: its credential [0-9a-f]+ has an ec-p256 key and Entra ID accepts only RSA keys: first issue it an RSA credential with 'ringfence issue --tenant acme --connection ecc --profile assertion --keygen rsa-2048', then register it$" \
	rf connector entra acme/ecc --tenant-id "$TID" --client-id "$CID"
unchanged before.txt "a refused entra registration"
# A credential issued from a CSR (no key record) is named the same way.
csr ecx ec ec_paramgen_curve:P-256
rf issue --tenant acme --connection ecx --profile assertion --csr ecx.csr \
	>/dev/null 2>&1
refused "^ringfence: connection acme/ecx: its credential [0-9a-f]+ has an ec-p256 key and Entra ID accepts only RSA keys" \
	rf connector entra acme/ecx --tenant-id "$TID" --client-id "$CID"
# Doing what it says works, and asks for no credential: it has one.
rf issue --tenant acme --connection ecc --profile assertion \
	--keygen rsa-2048 >/dev/null 2>&1
rf connector entra acme/ecc --tenant-id "$TID" --client-id "$CID" >out ||
	fail "entra after an RSA credential: $(cat out)"
grep -q "issue its credential" out && fail "entra asks for a credential it has: $(cat out)"
grep -q "its credential [0-9a-f]* must be registered on application $CID" out ||
	fail "entra with a credential: $(cat out)"

# A new registration without a credential says how to issue one; a changed
# one says what changed, old -> new, and that the credential must be
# registered on the new application; the same one changes nothing.
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >out
grep -q "kind entra, rsa-2048 keys, PS256 assertions; issue its credential with 'ringfence issue --tenant acme --connection m365" out ||
	fail "entra: $(cat out)"
entra_cred acme/m365 cred
cred=$(openssl x509 -in cred.pem -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')
leaves=$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf")
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID2" >out
grep -q "^connection acme/m365: registration changed: client id $CID -> $CID2; its credential $cred must be registered on application $CID2" out ||
	fail "re-registration: $(cat out)"
grep -q "issue its credential" out && fail "re-registration asks for a credential it has: $(cat out)"
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" \
	"SELECT client_id FROM conn_entra WHERE tenant = 'acme' AND conn = 'm365'")" = "$CID2" ] ||
	fail "the client id did not change"
snap before.txt
rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID2" >out
grep -q "^connection acme/m365: already registered (tenant id $TID, client id $CID2); nothing changed$" out ||
	fail "the same registration again: $(cat out)"
unchanged before.txt "the same registration again"
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf")" -eq $((leaves + 1)) ] ||
	fail "audit leaves: $leaves before, $(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf") after one change"

# A connection that does not exist (docs/connectors.md's example once bound
# one its flow never registered): named in one line, with how to register
# it, and nothing is bound, the registered one beside it either.
rc=0
rf connector bind sync acme/m365 globex/m365 >out 2>err || rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] &&
	grep -qF "no connection globex/m365: register it with 'ringfence connector entra globex/m365" err ||
	fail "bind to a connection that does not exist: rc $rc: $(cat err)"
rf --json connector show sync | grep -q '"bindings": *\[\]' ||
	fail "a refused bind bound something: $(rf --json connector show sync)"
# Nor does custody's ledger note the registered one: every connection is
# checked before any is noted.
if grep -q "^b sync acme m365$" "$RINGFENCE_HOME-custody/revoked.ledger"; then
	fail "a refused bind noted acme/m365 in custody's ledger"
fi
# bind counts what it bound.
rf connector bind sync acme/m365 >out
grep -q "^connector sync bound to 1 more connection$" out || fail "bind: $(cat out)"
grep -q "^b sync acme m365$" "$RINGFENCE_HOME-custody/revoked.ledger" ||
	fail "bind did not note acme/m365 in custody's ledger"
rf connector bind sync acme/m365 >out
grep -q "^connector sync: already bound to acme/m365; nothing changed$" out ||
	fail "bind again: $(cat out)"
rf connector bind sync acme/m365 acme/ecc acme/ecc >out
grep -q "^connector sync bound to 1 more connection (already bound to acme/m365)$" out ||
	fail "bind one more: $(cat out)"
rf --json connector show sync | grep -q '"bindings": *\["acme/ecc", *"acme/m365"\]' ||
	fail "bindings: $(rf --json connector show sync)"

# A usage error gives its hint once.
rc=0
rf connector bind sync >out 2>err || rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] &&
	[ "$(grep -o "see 'ringfence connector --help'" err | wc -l)" -eq 1 ] &&
	grep -qF "usage: ringfence connector bind NAME TENANT/CONNECTION...: missing TENANT/CONNECTION" err ||
	fail "bind without a connection: rc $rc: $(cat err)"
rc=0
rf connector show sync extra >out 2>err || rc=$?
[ $rc -eq 2 ] && grep -qF "usage: ringfence connector show NAME: unexpected argument 'extra'" err ||
	fail "show with two names: rc $rc: $(cat err)"

# Revoking a connector again says it was revoked already, and changes
# nothing.
csr gone ec ec_paramgen_curve:P-256
rf connector add gone --csr gone.csr --out gone.pem >/dev/null
rf connector revoke gone >out
grep -qx "connector gone revoked (1 certificate)" out || fail "revoke: $(cat out)"
leaves=$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf")
snap before.txt
rf connector revoke gone >out || fail "revoke again: $(cat out)"
grep -qx "connector gone is already revoked, and so are its certificates; nothing changed" out ||
	fail "revoke again: $(cat out)"
unchanged before.txt "a second revoke"
[ "$(sqlite3 "$RINGFENCE_HOME/ringfence.db" "SELECT count(*) FROM audit_leaf")" -eq "$leaves" ] ||
	fail "a second revoke added audit leaves"
# A revoked connector is revoked for good: binding it or enrolling a key
# for it says to add a connector under another name, and changes nothing.
for cmd in "bind gone acme/m365" "enroll gone --csr gone.csr --out gone2.pem"; do
	refused "^ringfence: connector gone is revoked, for good: add a connector under another name \(ringfence connector add NAME --csr FILE\)$" \
		rf connector $cmd
done
unchanged before.txt "bind or enroll of a revoked connector"

# assert: an http:// --url is a usage error (exit 2, one line); a key
# that is not the certificate's says so. No server is reached.
rc=0
rf assert --connection acme/m365 --cert sync.pem --key sync.key --ca sync.pem \
	--url http://127.0.0.1:1 >out 2>err || rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] && grep -q "use https://HOST:PORT" err ||
	fail "assert --url http://: rc $rc: $(cat err)"
openssl genrsa -out rsa.key 2048 2>/dev/null
for k in other.key rsa.key; do
	refused "^ringfence: --key $k does not match the certificate in --cert sync.pem" \
		rf assert --connection acme/m365 --cert sync.pem --key "$k" \
		--ca sync.pem --url https://127.0.0.1:1
done

# alerts list: with none it says so (--json stays an empty array); each
# alert's line names its id, which webhook receivers deduplicate on.
rf alerts list >out || fail "alerts list with none: $(cat out)"
[ "$(cat out)" = "no alerts: the connector detectors have raised none" ] ||
	fail "alerts list with none: '$(cat out)'"
[ "$(rf --json alerts list)" = "[]" ] || fail "alerts list --json with none: $(rf --json alerts list)"
uid='new_network:acme/m365|10.0.1.0/24'
detail='source network 10.0.1.0/24 was never seen for this connection'
sqlite3 "$RINGFENCE_HOME/ringfence.db" "INSERT INTO alerts (uid, time, kind,
	tenant, conn, connector, detail) VALUES ('$uid', 1796368600,
	'new_network', 'acme', 'm365', 'sync', '$detail')"
rf alerts list >out
at=$(date -u -d @1796368600 +%Y-%m-%dT%H:%M:%SZ)
grep -qxF "$at $uid acme/m365 connector sync: $detail" out ||
	fail "alerts list: $(cat out)"
# --json: the time as the text gives it (the webhook's payload keeps
# Unix seconds).
rf --json alerts list >alerts.json
python3 - alerts.json "$uid" "$at" <<'PY' || fail "alerts list --json: $(cat alerts.json)"
import json, sys
a = json.load(open(sys.argv[1]))
assert len(a) == 1 and a[0]["id"] == sys.argv[2] and a[0]["time"] == sys.argv[3], a
assert a[0]["delivered"] is False and a[0]["kind"] == "new_network", a
PY

# serve's help and the command list name the connector API's routes.
for h in "serve --help" help; do
	rf $h >help.txt
	grep -q "POST /v1/assertions" help.txt && grep -q "POST /v1/connector/renew" help.txt ||
		fail "ringfence $h does not name the connector API: $(cat help.txt)"
done

rf audit verify >/dev/null || fail "the audit record does not verify"
echo "connector_cli: ok"
