#!/usr/bin/env bash
# audit_clock.sh: a clock stepped back a day never makes the record fail.
# A tree head signed "yesterday" keeps the last head's time, a
# "clock-clamped" leaf records both readings, and `audit verify` passes.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" audit-clock
unset RINGFENCE_NOW || true
cd "$RINGFENCE_HOME"

rf init >/dev/null 2>init.err || { cat init.err >&2; fail "ringfence init"; }
now=$(date +%s)
rf audit sth --json >sth1.json || fail "audit sth"
t1=$(jq -r .time sth1.json)
[ "$t1" -ge "$now" ] || fail "first tree head time $t1 before $now"

back=$((now - 86400))
RINGFENCE_NOW=$back rf audit sth --json >sth2.json || fail "audit sth, clock a day back"
t2=$(jq -r .time sth2.json)
[ "$t2" = "$t1" ] || fail "tree head time went back: $t2 after $t1"
[ "$(jq -r .size sth2.json)" -gt "$(jq -r .size sth1.json)" ] ||
	fail "second tree head does not cover more leaves"

rf audit verify >verify.out 2>&1 || fail "audit verify after the clock stepped back: $(cat verify.out)"
grep -q "2 tree heads verified" verify.out || fail "verify output: $(cat verify.out)"
RINGFENCE_NOW=$back rf audit verify >/dev/null 2>&1 || fail "audit verify under the stepped-back clock"

rf audit search --json >search.out 2>/dev/null || fail "audit search"
leaf=$(jq -c 'select(.event.type == "clock-clamped") | .event' search.out)
[ -n "$leaf" ] || fail "no clock-clamped leaf"
echo "$leaf" | grep -q "clock read $back" || fail "clamp leaf lacks the clock reading: $leaf"
[ "$(echo "$leaf" | jq -r .ref)" = "$t1" ] || fail "clamp leaf lacks the last head's time: $leaf"
echo "audit_clock: ok"
