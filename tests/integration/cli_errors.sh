#!/usr/bin/env bash
# The CLI refuses what it cannot do well with one line that says what to
# do next, a non-zero exit, and nothing changed in the store: connection
# add on an existing connection, issue to an --out it cannot write, tenant
# add of a connector's reserved name, incident close before the
# connections are done, incident open with a --since it cannot read, of
# an unknown tenant, or on a scope whose incident is contained, incident
# contain or close of an incident that does not exist, or whose run lock
# is a symbolic link.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" clierr
db=$RINGFENCE_HOME/ringfence.db
err=$RINGFENCE_HOME/err
out=$RINGFENCE_HOME/out
q() { sqlite3 -cmd ".timeout 10000" "$db" "$1"; }
# What a refusal must leave alone: connections, certificates, tenants,
# incidents and their progress records.
snapshot() {
	q "SELECT tenant, name, rp, serial, previous FROM conns ORDER BY id"
	q "SELECT serial, revoked FROM certs ORDER BY serial"
	q "SELECT name FROM tenants ORDER BY name"
	q "SELECT id, state, since FROM incidents ORDER BY id"
	q "SELECT * FROM progress ORDER BY 1"
}
# refused WHAT ARGS...: rf ARGS exits non-zero with one line on stderr
# ($err) and the store as it was.
refused() {
	local what=$1 before
	shift
	before=$(snapshot)
	if rf "$@" >"$out" 2>"$err"; then fail "$what: accepted: $(cat "$out")"; fi
	[ "$(wc -l <"$err")" = 1 ] || fail "$what: not one line: $(cat "$err")"
	[ "$(snapshot)" = "$before" ] || fail "$what: the store changed"
}
says() { grep -qF -- "$2" "$err" || fail "$1: $(cat "$err")"; }
# usage WHAT ARGS...: as refused, and a usage error: exit 2, its line
# free of control characters, no audit leaf written.
usage() {
	local what=$1 before leaves rc=0
	shift
	before=$(snapshot)
	leaves=$(q "SELECT count(*) FROM audit_leaf")
	rf "$@" >"$out" 2>"$err" || rc=$?
	[ "$rc" = 2 ] || fail "$what: exit $rc, not 2: $(cat "$err")"
	[ "$(wc -l <"$err")" = 1 ] || fail "$what: not one line: $(cat "$err")"
	! grep -q '[[:cntrl:]]' "$err" || fail "$what: a control character in: $(cat -v "$err")"
	[ "$(snapshot)" = "$before" ] || fail "$what: the store changed"
	[ "$(q "SELECT count(*) FROM audit_leaf")" = "$leaves" ] || fail "$what: an audit leaf was written"
}

rf init 2>/dev/null
for t in acme contoso globex; do rf tenant add "$t" >/dev/null; done
cd "$RINGFENCE_HOME"

# 1. connection add makes a new connection, and never changes the relying
# party of one that exists: an entra connection stays pinned.
rf connection add acme api --rp pinned >"$out" || fail "connection add (new)"
grep -qF "connection acme/api (pinned)" "$out" || fail "connection add (new): $(cat "$out")"
[ "$(q "SELECT rp FROM conns WHERE tenant = 'acme' AND name = 'api'")" = pinned ] ||
	fail "connection add made no pinned connection"
rf connector entra acme/m365 --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 \
	--client-id 00000003-0000-4000-8000-0000000000aa >/dev/null
refused "connection add (other kind)" connection add acme m365 --rp ocsp
says "connection add (other kind)" "connection acme/m365 exists (relying party pinned): not changed to ocsp"
[ "$(q "SELECT rp FROM conns WHERE tenant = 'acme' AND name = 'm365'")" = pinned ] ||
	fail "connection add changed the relying party"
before=$(snapshot)
rf connection add acme m365 --rp pinned >"$out" 2>"$err" || fail "connection add (same kind): $(cat "$err")"
grep -qF "connection acme/m365 exists (relying party pinned): nothing changed" "$out" ||
	fail "connection add (same kind): $(cat "$out")"
[ "$(snapshot)" = "$before" ] || fail "connection add (same kind) changed the store"
rf issue --tenant acme --connection m365 --profile client --keygen rsa-2048 >/dev/null 2>&1
refused "connection add (default kind)" connection add acme m365
says "connection add (default kind)" "see 'ringfence connection list --tenant acme'"

# 2. issue with an --out it cannot write issues nothing: the connection
# keeps its credential.
rf issue --tenant contoso --profile client --keygen ec-p256 >/dev/null 2>&1
certs=$(rf cert list)
conns=$(rf connection list --json)
refused "issue --out missing folder" issue --tenant contoso --profile client --keygen ec-p256 \
	--out "$RINGFENCE_HOME/nonexistent/x.pem"
says "issue --out missing folder" "nothing was issued"
mkdir chains
refused "issue --out folder" issue --tenant contoso --profile client --keygen ec-p256 --out chains
says "issue --out folder" "nothing was issued"
mkdir csrs
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout web.key \
	-subj /CN=contoso -out csrs/web.pem 2>/dev/null
touch afile
refused "issue --csr-dir --out file" issue --tenant contoso --profile client --csr-dir csrs --out afile
says "issue --csr-dir --out file" "nothing was issued"
refused "issue --csr-dir --out missing parent" issue --tenant contoso --profile client --csr-dir csrs \
	--out "$RINGFENCE_HOME/nonexistent/chains"
[ "$(rf cert list)" = "$certs" ] || fail "cert list changed after refused issues"
[ "$(rf connection list --json)" = "$conns" ] || fail "connection list changed after refused issues"
# A writable --out still gets the chain.
rf issue --tenant contoso --profile client --keygen ec-p256 --out chains/c.pem >/dev/null
openssl x509 -in chains/c.pem -noout || fail "issue --out wrote no certificate"
rf issue --tenant contoso --profile client --csr-dir csrs --out chains >/dev/null 2>&1
openssl x509 -in chains/web.pem -noout || fail "issue --csr-dir wrote no chain"

# 3. connector.NAME tenants are the connectors': tenant add refuses them,
# tenant list leaves them out (its rows under its header line).
refused "tenant add connector." tenant add connector.evil
says "tenant add connector." "reserved for connectors"
rf connector add sync >/dev/null
[ "$(q "SELECT count(*) FROM tenants WHERE name = 'connector.sync'")" = 1 ] ||
	fail "connector add made no tenant (test premise)"
[ "$(rf tenant list | awk 'NR > 1 {print $1}' | tr '\n' ' ')" = "acme contoso globex " ] ||
	fail "tenant list: $(rf tenant list)"
rf tenant list --json | python3 -c 'import json,sys
names = [t["name"] for t in json.load(sys.stdin)]
assert names == ["acme", "contoso", "globex"], names' || fail "tenant list --json"

# 4. A refused close leaves no close progress, and says what to do next for
# the state the connections are in.
refused "open (unknown tenant)" incident open --scope tenant:nosuch --reason "cli errors"
says "open (unknown tenant)" "unknown tenant nosuch: see 'ringfence tenant list'"
id=$(rf incident open --scope connection:contoso/default --reason "cli errors" 2>/dev/null)
refused "close (affected)" incident close "$id"
says "close (affected)" "still affected (no new credential yet): run 'ringfence incident contain $id' first"
refused "confirm (both)" incident confirm "$id" --tenant contoso --all
says "confirm (both)" "confirm takes --tenant T or --all, not both"
refused "package (both)" incident package "$id" --tenant contoso --all --out "$RINGFENCE_HOME/pkg"
says "package (both)" "package takes --tenant T or --all, not both"
refused "open (open)" incident open --scope connection:contoso/default --reason again
says "open (open)" "incident $id is already open on scope connection:contoso/default: contain it ('ringfence incident contain $id')"
status_no_close() {
	rf incident status "$id" >"$out" || fail "status: $(cat "$out")"
	! grep -Eq '^  close[: ]' "$out" || fail "$1: status shows close progress: $(cat "$out")"
	rf incident status "$id" --json | python3 -c 'import json,sys
s = json.load(sys.stdin)
assert "close_progress" not in s, s["close_progress"]' || fail "$1: status --json shows close progress"
}
status_no_close "close (affected)"
# With --json, its last progress line says it failed, not finished.
if rf --json incident close "$id" >/dev/null 2>"$err"; then
	fail "close --json (affected): accepted"
fi
grep '^{"progress"' "$err" | tail -1 | grep -q '"finished":false,"failed":true}$' ||
	fail "close --json (affected): last progress line: $(cat "$err")"
! grep -q '"finished":true' "$err" || fail "close --json (affected) says finished: $(cat "$err")"
status_no_close "close --json (affected)"
rf incident contain "$id" >/dev/null
# A scope has one incident until it closes: a second open says the one
# there is contained (not "open"), and to close it first.
refused "open (contained)" incident open --scope connection:contoso/default --reason again
says "open (contained)" "incident $id on scope connection:contoso/default is contained, not closed"
says "open (contained)" "close it first ('ringfence incident confirm $id --all', or with --waive, then 'ringfence incident close $id')"
refused "close (contained)" incident close "$id"
says "close (contained)" "contained but not yet re-established: once a tenant uses its new credential, run 'ringfence incident confirm $id --tenant T'"
status_no_close "close (contained)"
rf incident confirm "$id" --tenant contoso >/dev/null
rf incident close "$id" >/dev/null
rf incident status "$id" --json | python3 -c 'import json,sys
p = json.load(sys.stdin)["close_progress"]
assert p["finished"] and p["phase"], p' || fail "a close that ran shows no finished progress"
# A contain killed before the incident closed (its progress left
# unfinished by a process that is gone): status does not tell a closed
# incident's reader to resume it.
q "UPDATE progress SET finished = 0, pid = 2147483646 WHERE task = 'incident $id contain'"
rf incident status "$id" >"$out"
grep -q "contain interrupted" "$out" && ! grep -q "run 'ringfence incident contain" "$out" &&
	grep -q "the incident is closed since: nothing to resume" "$out" ||
	fail "status of a closed incident with an interrupted contain: $(cat "$out")"
# At 0 of N there is no rate: the ETA is unknown, null in status --json (as
# in keys pool status --json and the progress lines), not -1.
q "UPDATE progress SET done = 0, total = 5 WHERE task = 'incident $id contain'"
rf incident status "$id" --json | python3 -c 'import json,sys
p = json.load(sys.stdin)["contain_progress"]
assert p["done"] == 0 and p["eta_s"] is None, p' || fail "status --json: an unknown ETA is not null"
# The run lock (incident-ID.lock in the state folder): none is made for an
# incident that does not exist, and a symbolic link in its place is
# refused, naming it, not followed.
for sub in contain close; do
	refused "$sub (no incident)" incident "$sub" 99999
	says "$sub (no incident)" "no incident 99999: see 'ringfence incident list'"
	[ ! -e "$RINGFENCE_HOME/incident-99999.lock" ] || fail "$sub 99999 left a lock file"
done
id=$(rf incident open --scope connection:contoso/default --reason "lock link" 2>/dev/null)
ln -s "$RINGFENCE_HOME/elsewhere" "$RINGFENCE_HOME/incident-$id.lock"
refused "contain (lock link)" incident contain "$id"
says "contain (lock link)" "$RINGFENCE_HOME/incident-$id.lock is a symbolic link, not incident $id's run lock"
[ ! -e "$RINGFENCE_HOME/elsewhere" ] || fail "contain followed the link at its lock"
rm "$RINGFENCE_HOME/incident-$id.lock"
rf incident contain "$id" >/dev/null
# Another run holds the lock: with --json, the refusal still ends with a
# failed progress line before its one-line error (it wrote none).
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
time.sleep(30)' "$RINGFENCE_HOME/incident-$id.lock" &
holder=$!
for _ in $(seq 100); do
	rf incident contain "$id" >/dev/null 2>&1 || break
	sleep 0.1
done
if rf --json incident contain "$id" >"$out" 2>"$err"; then fail "contain under another's lock: accepted"; fi
kill "$holder"
wait "$holder" 2>/dev/null || true
grep -q '"failed":true' "$err" || fail "contain --json under another's lock: no failed line: $(cat "$err")"
says "contain --json (locked)" "being contained or closed by another run"
# An ID past what the store holds, or negative, is a usage error in one
# line (not "no incident 9223372036854775807", nor getopt's line too).
for bad in 99999999999999999999 -1; do
	rc=0
	rf incident contain "$bad" >"$out" 2>"$err" || rc=$?
	[ "$rc" -eq 2 ] && [ "$(wc -l <"$err")" = 1 ] ||
		fail "contain '$bad': exit $rc: $(cat "$err")"
	says "contain '$bad'" "positive number"
done
# --reason is printed by status, list and the report as it is: one line
# of text, no control character that could forge their lines. One that
# is not is a usage error (exit 2, as a bad --scope; it was 1), refused
# before anything is opened.
for bad in $'line1\nincident 99: closed' $'x\e[2J' $'tab\there' $'a\x01b'; do
	usage "open (reason with a control character)" incident open \
		--scope connection:contoso/default --reason "$bad"
	says "open (reason with a control character)" "--reason is one line of text"
done
# A C1 control (CSI, U+009B) too; bytes that are not UTF-8 are not text.
usage "open (reason with a C1 control)" incident open \
	--scope connection:contoso/default --reason $'x\xc2\x9b2J'
says "open (reason with a C1 control)" "--reason is one line of text"
for bad in $'x\x9b2J' $'caf\xc3' $'\xed\xa0\x80'; do
	usage "open (reason not UTF-8)" incident open \
		--scope connection:contoso/default --reason "$bad"
	says "open (reason not UTF-8)" "--reason is not UTF-8 text"
done
usage "open (reason too long)" incident open \
	--scope connection:contoso/default --reason "$(printf 'r%.0s' $(seq 256))"
says "open (reason too long)" "--reason is at most 255 bytes, not 256"
usage "open (empty reason)" incident open --scope connection:contoso/default --reason ""
says "open (empty reason)" "an incident needs --reason TEXT"
# Any usage error repeats what was typed in one line without control
# bytes (cli_usage): an extra argument, an unknown subcommand or option.
usage "incident list (an extra argument with an escape)" incident list $'x\e[2J'
usage "connection (an unknown subcommand over two lines)" connection $'bogus\nincident 1: closed'
usage "revoke (an unknown option with a C1 control)" revoke $'--x\xc2\x9b2J'
usage "incident (a subcommand 600 bytes long)" incident "$(printf 'z%.0s' $(seq 600))"
# Every incident command takes --reason, and refuses a bad one alike:
# contain does nothing at all.
inc=$(rf incident open --scope connection:acme/m365 --reason "bad reasons" 2>/dev/null)
usage "contain (reason with a control character)" incident contain "$inc" --reason $'a\nb'
says "contain (reason with a control character)" "--reason is one line of text"
[ "$(q "SELECT state FROM incident_items WHERE incident = $inc")" = affected ] ||
	fail "contain with a bad --reason contained"
# revoke's --reason is a reason's name: one with a control character is
# a usage error too, in one line that does not print it as it is.
for bad in $'keyCompromise\nsuperseded' $'key\x01Compromise' $'x\e[2J'; do
	usage "revoke (reason with a control character)" revoke --tenant acme --reason "$bad"
	says "revoke (reason with a control character)" "unknown revocation reason"
done

# 5. --since is Unix seconds, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD (as audit
# search takes times), nothing else.
for c in m365 api; do
	rf issue --tenant globex --connection "$c" --profile client --keygen ec-p256 >/dev/null 2>&1
done
for bad in yesterday 2026-13-01T00:00:00Z 12abc "" "2026-12-06 " " 1700000000" 99999999999; do
	refused "--since '$bad'" incident open --scope connection:globex/m365 --reason x --since "$bad"
	says "--since '$bad'" "Unix seconds"
done
id=$(rf incident open --scope connection:globex/m365 --reason x --since 2026-01-02T03:04:05Z 2>/dev/null)
[ "$(q "SELECT since FROM incidents WHERE id = $id")" = 1767323045 ] || fail "--since ISO 8601 not stored"
# (globex/m365 is in the incident above: this one has globex/api.)
id=$(rf incident open --scope tenant:globex --reason x --since 1700000000 2>/dev/null)
[ "$(q "SELECT since FROM incidents WHERE id = $id")" = 1700000000 ] || fail "--since seconds not stored"
rf incident --help | grep -q "YYYY-MM-DDTHH:MM:SSZ" || fail "incident --help does not name the --since formats"
# A scope not written as one is a usage error too (exit 2, as a bad
# --since; it was 1), in one line naming the scopes there are; a tenant
# or issuer the store does not have is the store's word: a failure, 1.
for bad in bogus:x bogus tenant: connection:acme key:xyz "issuer:" $'bogus\nx' $'connection:a\nb'; do
	before=$(snapshot)
	rc=0
	rf incident open --scope "$bad" --reason x >"$out" 2>"$err" || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <"$err")" = 1 ] || fail "--scope '$bad': exit $rc: $(cat "$err")"
	[ "$(snapshot)" = "$before" ] || fail "--scope '$bad': the store changed"
	case $bad in
	connection:*) says "--scope '$bad'" "connection scope is connection:TENANT/NAME" ;;
	key:*) says "--scope '$bad'" "key scope is key:ID with the 64 lowercase hex digits" ;;
	*$'\n'*) says "--scope with a newline" "unknown scope 'bogus?x'" ;;
	*) says "--scope '$bad'" "unknown scope '$bad': use tenant:T, connection:T/NAME, key:ID, issuer:CA or all" ;;
	esac
done
for bad in tenant:nosuch issuer:nosuch; do
	rc=0
	rf incident open --scope "$bad" --reason x >"$out" 2>"$err" || rc=$?
	[ "$rc" = 1 ] || fail "--scope '$bad': exit $rc: $(cat "$err")"
done
# 64-character connection names: the store and the API hold 63. Each way
# of naming one says so in one line, and nothing is written (before, the
# store's "value too long (over 63 bytes)" named no value).
n64=$(printf 'c%.0s' $(seq 64))
refused "connection add (64)" connection add acme "$n64"
says "connection add (64)" "connection name of 64 characters: a connection name is 1-63"
refused "issue --connection (64)" issue --tenant acme --connection "$n64" --profile client --keygen ec-p256
says "issue --connection (64)" "1-63"
refused "connector entra (64)" connector entra "acme/$n64" --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 \
	--client-id 00000003-0000-4000-8000-0000000000aa
says "connector entra (64)" "CONNECTION 1-63"
rf connection add acme "${n64:1}" >/dev/null || fail "a 63-character connection name was refused"
echo "cli errors: OK"
