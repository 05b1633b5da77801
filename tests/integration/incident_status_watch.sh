#!/usr/bin/env bash
# Issue 14 item 3 in the slow case a responder watches: contain of entra
# connections with an empty standby pool generates RSA keys in the token.
# While it does, `incident status` from another terminal answers at once
# (it read the store only, but opened keyd, busy generating, and waited
# for the whole phase), and contain's progress moves during generation
# (one part of up to 500 keys showed 0/N until the end).
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
rf --json incident contain "$id" >contain.out 2>prog.jsonl &
cp=$!
# Wait for the generation phase (the pool is empty: refill is off).
for _ in $(seq 1200); do
	grep -q '"phase":"generate keys the pool lacks"' prog.jsonl && break
	kill -0 "$cp" 2>/dev/null || break
	sleep 0.1
done
grep -q '"phase":"generate keys the pool lacks"' prog.jsonl ||
	fail "no generation phase: $(cat prog.jsonl)"
timeout 120 "$RINGFENCE" --json incident status "$id" >st.json ||
	fail "status failed while contain ran"
running=0
kill -0 "$cp" 2>/dev/null && running=1
wait "$cp" || fail "contain failed: $(tail -3 prog.jsonl)"
[ $running -eq 1 ] ||
	fail "incident status answered only after contain had finished"
python3 - st.json prog.jsonl $N <<'PY' || fail "status/progress: $(cat st.json; tail -5 prog.jsonl)"
import json, sys
st = json.load(open(sys.argv[1]))
p = st["contain_progress"]
assert not p["finished"], p
n = int(sys.argv[3])
gen = [json.loads(l) for l in open(sys.argv[2])
       if '"generate keys the pool lacks"' in l]
# Progress moved during generation: some line between 0 and all.
assert any(0 < g["done"] < n for g in gen), gen
assert gen[-1]["done"] == n, gen[-1]
PY
echo "incident_status_watch: ok"
