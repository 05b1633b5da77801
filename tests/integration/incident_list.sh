#!/usr/bin/env bash
# `incident list` prints a header line first, as `keys list` and `keys pool
# status` do (it printed the rows alone), each column under its name; with
# --json, an array of the incidents and no header.
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" incident-list
h=$RINGFENCE_HOME

rf init 2>/dev/null
"$RF_BINARY_DIR/rf-populate" 2 0 >/dev/null
# No incident yet: the header alone.
rf incident list >"$h/list" || fail "list: $(cat "$h/list")"
[ "$(wc -l <"$h/list")" = 1 ] && head -1 "$h/list" | grep -Eq '^ID +STATE +SCOPE +REASON$' ||
	fail "list with no incident: $(cat "$h/list")"
a=$(rf incident open --scope tenant:t000001 --reason "first one" 2>/dev/null)
b=$(rf incident open --scope connection:t000002/mail --reason "second" 2>/dev/null)
rf incident list >"$h/list" || fail "list: $(cat "$h/list")"
python3 - "$h/list" "$a" "$b" <<'PY' || fail "list: $(cat "$h/list")"
import sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
head = lines[0]
assert head.split() == ["ID", "STATE", "SCOPE", "REASON"], head
rows = {l.split()[0]: l for l in lines[1:]}
assert set(rows) == {sys.argv[2], sys.argv[3]}, rows
# Each value starts where its column's name does.
for row, scope, reason in ((rows[sys.argv[2]], "tenant:t000001", "first one"),
                           (rows[sys.argv[3]], "connection:t000002/mail", "second")):
    assert row.index("open") == head.index("STATE"), (head, row)
    assert row.index(scope) == head.index("SCOPE"), (head, row)
    assert row.index(reason) == head.index("REASON"), (head, row)
PY
rf incident list --json >"$h/list.json" || fail "list --json"
python3 - "$h/list.json" <<'PY' || fail "list --json: $(cat "$h/list.json")"
import json, sys
v = json.load(open(sys.argv[1]))
assert [i["reason"] for i in v] == ["first one", "second"], v
PY
echo "incident list: OK"
