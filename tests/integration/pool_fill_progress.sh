#!/usr/bin/env bash
# Issue 14 item 3 for `keys pool fill` (minutes for RSA keys): with --json
# it writes JSON progress lines on stderr (counts, rate, ETA: the first when
# it starts, the last when it ends, done = total = the keys made), and its
# result on stdout; on a terminal (script -q) a progress line with the
# count, the rate and an ETA. An ETA not known yet (the first line: no
# rate) is null, as `keys pool status --json` says it, not -1.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" pool_fill_progress
cd "$RINGFENCE_HOME"
rf init >/dev/null 2>&1
rf --json keys pool fill --alg ec-p256 --count 24 >fill.out 2>fill.err ||
	fail "fill: $(cat fill.err)"
python3 - fill.err fill.out <<'PY' || fail "progress lines: $(cat fill.err)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) >= 2, lines
for l in lines:
    for k in ("progress", "phase", "done", "total", "rate", "eta_s", "finished"):
        assert k in l, (k, l)
    assert l["progress"] == "pool fill ec-p256", l
    assert l["total"] == 24, l
assert lines[0]["done"] == 0 and not lines[0]["finished"], lines[0]
assert lines[0]["eta_s"] is None, lines[0]
for l in lines:
    assert l["eta_s"] is None or l["eta_s"] >= 0, l
assert lines[-1]["done"] == 24 and lines[-1]["finished"], lines[-1]
out = json.loads(open(sys.argv[2]).read())
assert out["made"] == 24, out
PY
# On a terminal: one line updated in place, with counts and a rate.
SHELL=/bin/sh script -q -e -c "$RINGFENCE keys pool fill --alg ec-p256 --count 8" /dev/null \
	>tty.out 2>&1 || fail "fill on a tty: $(cat tty.out)"
grep -a -q "pool fill ec-p256.* 8/8" tty.out ||
	fail "no progress line on a terminal: $(cat -v tty.out)"
# `keys list` reads the token, then the store: keys made in between (a
# refill's; here while it is held there, test builds) are no disagreement.
RINGFENCE_TEST_PAUSE_AT=keys-list-token-read RINGFENCE_TEST_PAUSE_MS=20000 \
	RINGFENCE_TEST_PAUSE_UNTIL="$PWD/go" rf keys list >list.out 2>list.err &
lp=$!
for _ in $(seq 400); do
	grep -q "test pause at keys-list-token-read" list.err && break
	sleep 0.05
done
grep -q "test pause at keys-list-token-read" list.err ||
	fail "keys list did not reach its pause: $(cat list.err)"
rf keys pool fill --alg ec-p256 --count 2 >/dev/null 2>&1 ||
	fail "pool fill beside keys list"
touch go
wait "$lp" || fail "keys list with keys made between its reads: $(grep -v '^[0-9a-f]\{64\} ' list.out | head -3; cat list.err)"
echo "pool_fill_progress: ok"
