#!/usr/bin/env bash
# Issue 5: containment interrupted with kill -9 resumes where it stopped,
# never issues twice and never skips a tenant; a token that refuses (wrong
# PIN) stops it cleanly with a message, and it resumes afterwards.
set -euo pipefail
N=${RF_RESUME_TENANTS:-600}
. "$(dirname "$0")/lib/state.sh" resume
db=$RINGFENCE_HOME/ringfence.db

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" "$N" 0
# t000002 renews its credential before the incident: the one before is
# still valid, and an incident on its connection must revoke it too.
rf issue --tenant t000002 --connection mail --profile client --keygen ec-p256 >/dev/null 2>&1
prev=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT previous FROM conns WHERE tenant = 't000002' AND name = 'mail'")
[ -n "$prev" ] || fail "no previous credential for t000002"
id=$(rf incident open --scope all --reason "resume test" 2>/dev/null)

# A wrong PIN: nothing happens, one line says what to fix. The PIN is
# keyd's: stop the running one so that the command starts one with it.
stop_keyd
if RINGFENCE_PIN=wrong rf incident contain "$id" 2>"$RINGFENCE_HOME/err"; then
	fail "contain ran with a wrong PIN"
fi
grep -q 'PIN' "$RINGFENCE_HOME/err" || fail "wrong PIN message: $(cat "$RINGFENCE_HOME/err")"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE state != 'affected'")" = 0 ] ||
	fail "a refused contain changed state"

# Kill -9 part-way through the reissue. The binary itself goes in the
# background (not the rf function, whose subshell would take the kill and
# leave the contain running alongside the resume below).
"$RINGFENCE" incident contain "$id" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
	done_n=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE state = 'contained'" 2>/dev/null || echo 0)
	[ "${done_n:-0}" -gt 0 ] && break
	sleep 0.05
done
# Another terminal sees the same numbers while contain runs; the kill
# comes at once, not after that command (contain may be done by then).
rf incident status "$id" --json >"$RINGFENCE_HOME/running.json" &
spid=$!
kill -0 "$pid" 2>/dev/null && running=1 || running=0
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
wait "$spid" || fail "incident status failed while contain ran"
done_n=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE state = 'contained'")
echo "killed with $done_n of $N contained"
[ "$done_n" -lt "$N" ] || echo "note: contain finished before the kill"

python3 - "$RINGFENCE_HOME/running.json" "$running" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
p = s.get("contain_progress")
assert p is not None, ("status shows no progress of the running contain", s)
assert p["total"] > 0, p
if sys.argv[2] == "1":  # the contain was still running when asked
    assert p["finished"] is False, p
assert p["phase"] in ("reissue", "destroy old keys"), p
# An ETA not known yet (no count) is null.
assert p["eta_s"] is None or p["eta_s"] >= 0, p
eta = "?" if p["eta_s"] is None else "%.1f s" % p["eta_s"]
print("status while contain ran: %s %d/%d, %.0f/s, ETA %s" % (p["phase"], p["done"], p["total"], p["rate"], eta))
PY
rf incident contain "$id" >"$RINGFENCE_HOME/rerun.out"
# The rerun says what it did, and what the incident has in all.
if [ "$done_n" -gt 0 ] && [ "$done_n" -lt "$N" ]; then
	grep -q "by this run$" "$RINGFENCE_HOME/rerun.out" &&
		grep -q "^in all: $N of $N connections have their new credential, 0 are waived" "$RINGFENCE_HOME/rerun.out" ||
		fail "the rerun's totals: $(cat "$RINGFENCE_HOME/rerun.out")"
fi
# Every connection: exactly one new certificate, none skipped.
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE state = 'contained' AND new_serial != ''")" = "$N" ] ||
	fail "not every connection contained"
dups=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM (SELECT tenant FROM certs WHERE tenant != 't000002' GROUP BY tenant HAVING count(*) != 2)")
[ "$dups" = 0 ] || fail "$dups tenants do not have exactly old + one new certificate"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM certs WHERE revoked = 0")" = "$N" ] ||
	fail "unrevoked certificates are not exactly the new ones"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT revoked FROM certs WHERE serial = '$prev'")" = 1 ] ||
	fail "the previous, still valid credential of t000002 was not revoked"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM certs WHERE tenant = 't000002'")" = 3 ] ||
	fail "t000002: not previous + old + one new certificate"
# Two contains of one incident at once: never two new credentials for a
# connection (the second is refused by the run lock before it takes or
# makes anything, and says to let the first finish).
id2=$(rf incident open --scope tenant:t000003 --reason "concurrent test" 2>/dev/null)
before=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM certs WHERE tenant = 't000003'")
"$RINGFENCE" incident contain "$id2" >/dev/null 2>"$RINGFENCE_HOME/c1" &
p1=$!
"$RINGFENCE" incident contain "$id2" >/dev/null 2>"$RINGFENCE_HOME/c2" &
p2=$!
lock="another run right now: let it finish"
wait "$p1" || grep -q "$lock" "$RINGFENCE_HOME/c1" || fail "contain 1: $(cat "$RINGFENCE_HOME/c1")"
wait "$p2" || grep -q "$lock" "$RINGFENCE_HOME/c2" || fail "contain 2: $(cat "$RINGFENCE_HOME/c2")"
rf incident contain "$id2" >/dev/null
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM certs WHERE tenant = 't000003'")" = $((before + 1)) ] ||
	fail "concurrent contains gave t000003 more than one new credential"
# The token goes away part-way through (its folder moved, as a removed
# token): contain stops with one line that says how far it got, and once
# the token is back, contain resumes; still one new credential each. An
# issuer-scope incident, so that the rotation resumes too.
id3=$(rf incident open --scope issuer:issuing --reason "token removed" 2>/dev/null)
n3=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE incident = $id3")
[ "$n3" -gt 0 ] || fail "issuer incident has no connections"
disabled0=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM keys WHERE state = 'disabled'")
"$RINGFENCE" incident contain "$id3" >/dev/null 2>"$RINGFENCE_HOME/c3" &
pid=$!
# Once this incident's keys are disabled, the reissue is next.
for _ in $(seq 1200); do
	d=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM keys WHERE state = 'disabled'" 2>/dev/null || echo 0)
	[ "${d:-0}" -ge $((disabled0 + n3)) ] && break
	sleep 0.05
done
mv "$RINGFENCE_HOME/tokens" "$RINGFENCE_HOME/tokens.away"
if wait "$pid"; then
	mv "$RINGFENCE_HOME/tokens.away" "$RINGFENCE_HOME/tokens"
	fail "contain finished with the token gone"
fi
mv "$RINGFENCE_HOME/tokens.away" "$RINGFENCE_HOME/tokens"
[ "$(wc -l <"$RINGFENCE_HOME/c3")" = 1 ] || fail "token removed: not one line: $(cat "$RINGFENCE_HOME/c3")"
grep -q "so far: .* reissued of $n3; run 'ringfence incident contain $id3' again to resume" "$RINGFENCE_HOME/c3" ||
	fail "token removed: does not say how far: $(cat "$RINGFENCE_HOME/c3")"
echo "token removed: $(cat "$RINGFENCE_HOME/c3")"
# A key the stopped contain disabled is out of service by keyd's ledger,
# not by the store alone: set back to active behind keyd's back (keyd
# started again since), keys list names it, and it stays refused.
kid=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT id FROM keys WHERE state = 'disabled' AND purpose = 'connection' LIMIT 1")
[ -n "$kid" ] || fail "no disabled connection key after the stopped contain"
sqlite3 -cmd ".timeout 10000" "$db" "UPDATE keys SET state = 'active' WHERE id = '$kid'"
if rf keys list --json >"$RINGFENCE_HOME/ledger.json" 2>"$RINGFENCE_HOME/err"; then
	fail "keys list found no disagreement with a disabled key set back to active"
fi
python3 - "$RINGFENCE_HOME/ledger.json" "$kid" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
d = [r for r in rows if r.get("disagreement") == "ledger"]
assert [r["id"] for r in d] == [sys.argv[2]], d
assert "behind keyd's back" in d[0]["detail"], d
PY
sqlite3 -cmd ".timeout 10000" "$db" "UPDATE keys SET state = 'disabled' WHERE id = '$kid'"
rf incident contain "$id3" >/dev/null
new3=$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT new_issuer FROM incidents WHERE id = $id3")
[ -n "$new3" ] && [ "$new3" != issuing ] || fail "no new issuing CA after resume"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM incident_items WHERE incident = $id3 AND state = 'contained' AND new_serial != ''")" = "$n3" ] ||
	fail "token removed: not every connection contained after resume"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM (SELECT tenant FROM certs WHERE issuer = '$new3' GROUP BY tenant HAVING count(*) != 1)")" = 0 ] ||
	fail "token removed: a tenant has more than one certificate from $new3"
[ "$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT count(*) FROM certs WHERE issuer = '$new3'")" = "$n3" ] ||
	fail "token removed: certificates from $new3 are not one per connection"
# Keys the failed batch made but could not destroy (the token was gone)
# stay in the token, known to the store as interrupted or generated (keys
# list finds no disagreement): none of them has a certificate.
rf keys list --json >"$RINGFENCE_HOME/keys.json"
python3 - "$RINGFENCE_HOME/keys.json" "$db" <<'PY'
import json, sqlite3, sys
keys = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
db = sqlite3.connect(sys.argv[2])
assert not [k for k in keys if "disagreement" in k], "store and token disagree"
orphans = [k["id"] for k in keys
           if k.get("state") in ("unrecorded", "interrupted", "generated")]
for kid in orphans:
    n = db.execute("SELECT count(*) FROM certs WHERE key_id = ?", (kid,)).fetchone()[0]
    assert n == 0, "key %s left by the failed batch has a certificate" % kid
print("keys left unrecorded by the failed batch: %d" % len(orphans))
PY
rf audit verify >/dev/null
echo "incident resume: OK"
