#!/usr/bin/env bash
# keyd_fuzz.sh: the live custody socket under malformed, truncated and
# oversized frames (rf-keyd_client fuzz, 400 frames, each on a connection
# of its own): keyd stays up and answers, nothing is signed, and the
# refusals it records stay within their budget (60 leaves a minute of one
# caller, then one summary leaf), so a flood cannot grow the record
# without bound.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-fuzz
db=$RINGFENCE_HOME/ringfence.db
q() { sqlite3 -cmd ".timeout 10000" "$db" "$1"; }

rf init >/dev/null 2>&1 || fail "init"
rf keyd status >/dev/null 2>&1 && fail "a keyd runs before any command"
rf keys list >/dev/null || fail "keys list (starting keyd on demand)"
pid=$(cat "$RINGFENCE_HOME/keyd.pid")
signs=$(q "SELECT count(*) FROM audit_leaf WHERE type = 'sign'")
leaves=$(q "SELECT count(*) FROM audit_leaf")

"$RF_BINARY_DIR/rf-keyd_client" fuzz 400 "${RANDOM}" || fail "keyd stopped answering"
kill -0 "$pid" || fail "keyd died"
rf keyd status | grep -q "refused" || fail "status"
[ "$(q "SELECT count(*) FROM audit_leaf WHERE type = 'sign'")" = "$signs" ] || fail "something was signed"
added=$(($(q "SELECT count(*) FROM audit_leaf") - leaves))
refused=$(rf keyd status --json | jq .refused)
[ "$refused" -ge 100 ] || fail "only $refused refusals counted"
# At most two minutes' worth (the run may straddle a minute) and a summary.
[ "$added" -le 122 ] || fail "$added leaves for $refused refusals: not bounded"
[ "$added" -ge 1 ] || fail "no refusal recorded"
rf audit verify >/dev/null 2>&1 || fail "audit verify"
echo "keyd_fuzz: ok ($refused refusals, $added leaves)"
