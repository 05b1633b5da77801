#!/usr/bin/env bash
# Issue 14 item 3 in the slow case a responder watches: contain of entra
# connections with an empty standby pool generates RSA keys in the token.
# While it does, `incident status` from another terminal answers at once
# (it read the store only, but opened keyd, busy generating, and waited
# for the whole phase), and contain's progress moves during generation
# (one part of up to 500 keys showed 0/N until the end). Killed with -9,
# status says it was interrupted and how to resume; the rerun finishes.
# status --json lists every straggler, where the text shows 20. Each
# phase's last count is among the JSON progress lines.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" incident_status_watch
cd "$RINGFENCE_HOME"
N=24
rf init >/dev/null 2>&1
for i in $(seq -w 1 $N); do
	rf tenant add "w$i" >/dev/null
	rf connector entra "w$i/m365" --client-id 00000003-0000-4000-8000-0000000000aa \
		--tenant-id "72f988bf-86f1-41af-91ab-2d7cd011d0$i" >/dev/null
	rf issue --tenant "w$i" --connection m365 --profile assertion \
		--keygen rsa-2048 >/dev/null 2>&1
done
id=$(rf incident open --scope all --reason watch 2>/dev/null)
"$RINGFENCE" --json incident contain "$id" >contain.out 2>prog.jsonl &
cp=$!
# Wait for the generation phase (the pool is empty: refill is off).
for _ in $(seq 1200); do
	grep -q '"phase":"generate keys the pool lacks"' prog.jsonl && break
	kill -0 "$cp" 2>/dev/null || break
	sleep 0.1
done
grep -q '"phase":"generate keys the pool lacks"' prog.jsonl ||
	fail "no generation phase: $(cat prog.jsonl)"
# A phase's last count is shown before the next begins (the revocation of
# N was seen at 0 of N only: its count came within the print throttle).
python3 - prog.jsonl $N <<'PY' || fail "progress lines: $(cat prog.jsonl)"
import json, sys
n = int(sys.argv[2])
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert any(l["phase"] == "revoke and publish" and l["done"] == l["total"] == n
           for l in lines), lines
PY
timeout 120 "$RINGFENCE" --json incident status "$id" >st.json ||
	fail "status failed while contain ran"
kill -0 "$cp" 2>/dev/null ||
	fail "incident status answered only after contain had finished"
python3 - st.json <<'PY' || fail "status while running: $(cat st.json)"
import json, sys
p = json.load(open(sys.argv[1]))["contain_progress"]
assert not p["finished"] and p["running"], p
PY
# Its rate and ETA read 60.8, not 60.798000000000002.
python3 "$(dirname "$0")/lib/rounded.py" st.json || fail "status while running: $(cat st.json)"
# Progress moves during generation: a line between 0 and all.
for _ in $(seq 1200); do
	python3 - prog.jsonl $N <<'PY' && break
import json, sys
n = int(sys.argv[2])
gen = [json.loads(l) for l in open(sys.argv[1])
       if '"generate keys the pool lacks"' in l]
sys.exit(0 if any(0 < g["done"] < n for g in gen) else 1)
PY
	kill -0 "$cp" 2>/dev/null || fail "no progress during generation: $(cat prog.jsonl)"
	sleep 0.1
done
# kill -9 mid-way: status says it was interrupted and how to resume, not
# "running" for a process that is gone; the rerun finishes.
kill -9 "$cp"
wait "$cp" 2>/dev/null || true
rf incident status "$id" >st.txt
grep -q "contain interrupted (pid $cp is gone).*ringfence incident contain $id" st.txt ||
	fail "status after kill -9: $(cat st.txt)"
grep -q "ago" st.txt && ! grep -q "as of -" st.txt || fail "status age: $(cat st.txt)"
rf --json incident status "$id" | python3 -c '
import json, sys
p = json.load(sys.stdin)["contain_progress"]
assert not p["running"] and not p["finished"], p' || fail "json after kill -9"
rf incident contain "$id" >rerun.out 2>&1 || fail "rerun: $(cat rerun.out)"
grep -q "incident $id contained: $N connections" rerun.out || fail "rerun: $(cat rerun.out)"
# Every connection is a straggler now (contained, not re-established):
# the text shows 20 and says where the rest are; status --json lists
# them all, the same rows.
rf incident status "$id" >st.txt
grep -q "and $((N - 20)) more (--json, or 'incident report')" st.txt || fail "status stragglers: $(cat st.txt)"
rf --json incident status "$id" >st.json
python3 - st.json st.txt $N <<'PY' || fail "status --json stragglers: $(cat st.json)"
import json, sys
g = json.load(open(sys.argv[1]))["stragglers"]
assert len(g) == int(sys.argv[3]), len(g)
text = [l.split() for l in open(sys.argv[2]) if l.startswith("  w")]
assert len(text) == 20, text
for t, j in zip(text, g):
    assert t[:6] == [j["tenant"], j["connection"], j["relying_party"], j["state"],
                     j["old_serial"], "->"] and t[6] == j["new_serial"], (t, j)
PY
echo "incident_status_watch: ok"
