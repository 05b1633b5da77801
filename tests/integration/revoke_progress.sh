#!/usr/bin/env bash
# Issue 14 item 3: `revoke --tenant` shows progress while it runs, not only
# a start and an end: with --json, one line per phase (commit, the OCSP
# re-signing counted per response, the CRLs) and a last finished line.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" revprog
rf init 2>/dev/null
rf tenant add acme >/dev/null
for c in a b c; do
	rf issue --tenant acme --connection "$c" --profile client --keygen ec-p256 >/dev/null 2>&1
done
rf --json revoke --tenant acme --reason keyCompromise 2>"$RINGFENCE_HOME/progress" >"$RINGFENCE_HOME/out"
grep -q 'revoked 3 certificate' "$RINGFENCE_HOME/out" || fail "not 3 revoked: $(cat "$RINGFENCE_HOME/out")"
python3 - "$RINGFENCE_HOME/progress" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
phases = [l["phase"] for l in lines]
for p in ("select and commit", "re-sign OCSP responses", "regenerate CRLs"):
    assert p in phases, (p, phases)
assert phases.index("select and commit") < phases.index("re-sign OCSP responses") < phases.index("regenerate CRLs"), phases
ocsp = [l for l in lines if l["phase"] == "re-sign OCSP responses"]
assert ocsp[0]["total"] == 3, ocsp
assert max(l["done"] for l in ocsp) == 3 or lines[-1]["phase"] == "regenerate CRLs", ocsp
assert lines[-1]["finished"] is True, lines[-1]
assert all(l["progress"] == "revoke tenant" for l in lines), lines
print("phases:", " -> ".join(dict.fromkeys(phases)))
PY
