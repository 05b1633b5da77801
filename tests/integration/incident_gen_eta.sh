#!/usr/bin/env bash
# Issue 14: contain's ETA while it generates the keys the pool lacks is
# the sum over algorithms of each one's keys left at that algorithm's own
# rate (RSA keygen about 0.2-0.4 s a key in SoftHSM, EC about 2 ms), not
# the keys left at the phase's mixed rate: with 60 EC keys and 4 RSA-2048
# keys to make, it said "unknown" at the start and, after the EC keys,
# a few milliseconds for the RSA keys that take a second or more. Each
# progress line of the phase (contain --json) must count at least 0.1 s
# for each RSA key it has not made yet.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" gen-eta
h=$RINGFENCE_HOME
NEC=60
NRSA=4

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" $NEC 0 >/dev/null
"$RF_BINARY_DIR/rf-populate" $NRSA 0 r rsa-2048 >/dev/null
id=$(rf incident open --scope all --reason "eta" 2>/dev/null)
rf --json incident contain "$id" >"$h/c.json" 2>"$h/progress" ||
	fail "contain: $(tail -3 "$h/progress")"
python3 - "$h/progress" $NEC $NRSA <<'PY' || fail "the ETA of 'generate keys the pool lacks': $(grep 'pool lacks' "$h/progress")"
import json, sys
nec, nrsa = int(sys.argv[2]), int(sys.argv[3])
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
gen = [o for o in lines if o.get("phase") == "generate keys the pool lacks"]
assert gen, "no progress line of the phase"
assert gen[0]["done"] == 0 and gen[0]["total"] == nec + nrsa, gen[0]
for o in gen:
    # Keys are made by algorithm, EC first: RSA keys left is what the
    # count has not reached of them.
    rsa_left = min(nrsa, o["total"] - o["done"])
    if rsa_left > 0:
        assert o["eta_s"] >= 0.1 * rsa_left, (o, rsa_left)
        assert o["eta_s"] < 120, o
print("eta lines:", [(o["done"], o["eta_s"]) for o in gen])
PY
echo "incident gen eta: OK"
