#!/usr/bin/env bash
# The standby pool's default target counts every connection by the
# algorithm of the key contain will give it: its current certificate's
# key, a token key or a connector's own from a CSR (which has no key
# record). An adversarial test found a "full" pool that left out the CSR
# connections, so that contain still generated RSA keys: 10 entra
# connections and 4 with RSA-2048 CSR credentials gave "rsa-2048
# connections 10 target 11", then "has 11 of 14 rsa-2048 keys needed: 3
# will be generated".
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" pool-target
h=$RINGFENCE_HOME
TID=72f988bf-86f1-41af-91ab-2d7cd011db47
CID=00000003-0000-4000-8000-0000000000aa
NE=10 NC=4 NP=2

rf init 2>/dev/null
rf tenant add acme >/dev/null
for i in $(seq 1 $NE); do
	rf connector entra "acme/e$i" --tenant-id "$TID" --client-id "$CID" >/dev/null
	rf issue --tenant acme --connection "e$i" --profile assertion --keygen rsa-2048 >/dev/null 2>&1
done
for i in $(seq 1 $NC); do
	openssl req -new -newkey rsa:2048 -nodes -keyout "$h/k$i.pem" -subj "/CN=csr$i" \
		-out "$h/r$i.csr" 2>/dev/null
	rf issue --tenant acme --connection "csr$i" --profile client --csr "$h/r$i.csr" >/dev/null 2>&1
done
# And P-384 connections from a CSR: counted under their curve.
for i in $(seq 1 $NP); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$h/p$i.pem" \
		-subj "/CN=p$i" -out "$h/p$i.csr" 2>/dev/null
	rf issue --tenant acme --connection "p384-$i" --profile client --csr "$h/p$i.csr" >/dev/null 2>&1
done

rf keys pool fill >/dev/null 2>&1
rf keys pool status --json >"$h/st.json"
python3 - "$h/st.json" $((NE + NC)) $NP <<'PY' || fail "pool status: $(cat "$h/st.json")"
import json, sys
st = {o["alg"]: o for o in map(json.loads, open(sys.argv[1]))}
rsa, p384 = int(sys.argv[2]), int(sys.argv[3])
want = lambda n: n + (n * 10 + 99) // 100
assert st["rsa-2048"]["connections"] == rsa, st["rsa-2048"]
assert st["rsa-2048"]["target"] == want(rsa), st["rsa-2048"]
assert st["rsa-2048"]["free"] == want(rsa), st["rsa-2048"]
assert st["ec-p384"]["connections"] == p384, st["ec-p384"]
assert st["ec-p384"]["free"] == want(p384), st["ec-p384"]
assert st["ec-p256"]["connections"] == 0, st["ec-p256"]
PY
# A full pool: contain generates nothing.
id=$(rf incident open --scope tenant:acme --reason "full pool" 2>/dev/null)
rf --json incident contain "$id" >"$h/c.json" 2>"$h/err" || fail "contain: $(cat "$h/err")"
grep -q "will be generated" "$h/err" && fail "contain with a full pool generates keys: $(cat "$h/err")"
python3 - "$h/c.json" $((NE + NC + NP)) <<'PY' || fail "contain counts: $(cat "$h/c.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["pooled"] == int(sys.argv[2]) and o["generated"] == 0, o
PY
echo "pool target: OK"
