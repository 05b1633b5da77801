#!/usr/bin/env bash
# `tenant list` and `connection list` print a header line first, as
# `incident list` and `keys list` do (they printed the rows alone), each
# value starting where its column's name does; with no row, the header
# alone; with --json, no header. The --json of tenant list, connection
# list and incident list is one line of compact JSON, as every command's
# (connection list and incident list printed ", " and ": ").
set -euo pipefail
. "$(dirname "$0")/lib/state.sh" cli-lists
h=$RINGFENCE_HOME

# check_columns FILE NAMES ROWS: FILE is a header of the column NAMES
# (space-separated), then ROWS rows (a JSON list of lists of values): each
# value starts where its column's name does.
check_columns() {
	python3 - "$@" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
names, rows = sys.argv[2].split(), json.loads(sys.argv[3])
assert len(lines) == 1 + len(rows), lines
head = lines[0]
assert head.split() == names, head
for line, values in zip(lines[1:], rows):
    at = 0
    for name, value in zip(names, values):
        at = line.index(value, at)
        assert at == head.index(name), (name, head, line)
PY
}

rf init 2>/dev/null
rf tenant list >"$h/t.txt" || fail "tenant list: $(cat "$h/t.txt")"
check_columns "$h/t.txt" "NAME CREATED" '[]' || fail "tenant list, no tenant: $(cat "$h/t.txt")"
rf connection list >"$h/c.txt" || fail "connection list: $(cat "$h/c.txt")"
check_columns "$h/c.txt" "TENANT NAME RP SERIAL" '[]' ||
	fail "connection list, no connection: $(cat "$h/c.txt")"

rf tenant add acme >/dev/null
rf tenant add globex >/dev/null
# (connection list lists the connections that have a credential.)
rf connection add acme api --rp pinned >/dev/null
for c in acme/api globex/mail; do
	rf issue --tenant "${c%/*}" --connection "${c#*/}" --profile client \
		--keygen ec-p256 >/dev/null 2>"$h/err" || fail "issue $c: $(cat "$h/err")"
done
serials=$(rf connection list --json | python3 -c 'import json, sys
print(" ".join(c["serial"] for c in json.load(sys.stdin)))')
read -r s1 s2 <<<"$serials"
# A connector's tenant stays out of tenant list.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$h/sync.key" -out "$h/sync.csr" -subj /CN=sync 2>/dev/null
rf connector add sync --csr "$h/sync.csr" >/dev/null 2>"$h/err" || fail "connector add: $(cat "$h/err")"

rf connector list >"$h/k.txt" || fail "connector list: $(cat "$h/k.txt")"
check_columns "$h/k.txt" "NAME STATE" '[["sync", "active"]]' || fail "connector list: $(cat "$h/k.txt")"

rf tenant list >"$h/t.txt" || fail "tenant list: $(cat "$h/t.txt")"
created=$(rf tenant list --json | python3 -c 'import json, sys
print(" ".join(t["created"] for t in json.load(sys.stdin)))')
read -r c1 c2 <<<"$created"
check_columns "$h/t.txt" "NAME CREATED" "[[\"acme\", \"$c1\"], [\"globex\", \"$c2\"]]" ||
	fail "tenant list: $(cat "$h/t.txt")"
rf connection list >"$h/c.txt" || fail "connection list: $(cat "$h/c.txt")"
check_columns "$h/c.txt" "TENANT NAME RP SERIAL" \
	"[[\"acme\", \"api\", \"pinned\", \"$s1\"], [\"globex\", \"mail\", \"ocsp\", \"$s2\"]]" ||
	fail "connection list: $(cat "$h/c.txt")"
rf connection list --tenant globex >"$h/c.txt" || fail "connection list --tenant: $(cat "$h/c.txt")"
check_columns "$h/c.txt" "TENANT NAME RP SERIAL" "[[\"globex\", \"mail\", \"ocsp\", \"$s2\"]]" ||
	fail "connection list --tenant globex: $(cat "$h/c.txt")"

# --json: the array alone, no header.
rf tenant list --json | python3 -c 'import json, sys
v = json.load(sys.stdin)
assert [t["name"] for t in v] == ["acme", "globex"], v' || fail "tenant list --json"
rf connection list --json | python3 -c 'import json, sys
v = json.load(sys.stdin)
assert [(c["tenant"], c["name"]) for c in v] == [("acme", "api"), ("globex", "mail")], v' ||
	fail "connection list --json"
# compact FILE: FILE is one line of JSON with no space between its
# tokens.
compact() {
	python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n") and text.count("\n") == 1, text
line = text[:-1]
assert line == json.dumps(json.loads(line), separators=(",", ":")), line
PY
}
rf incident open --scope connection:acme/api --reason "lists" >/dev/null 2>"$h/err" ||
	fail "incident open: $(cat "$h/err")"
for what in tenant connection incident; do
	rf "$what" list --json >"$h/l.json" || fail "$what list --json: $(cat "$h/l.json")"
	compact "$h/l.json" || fail "$what list --json is not compact: $(cat "$h/l.json")"
done
# connector list and show, alerts list: compact with sorted keys too.
for cmd in "connector list" "connector show sync" "alerts list"; do
	rf --json $cmd >"$h/l.json" || fail "$cmd --json: $(cat "$h/l.json")"
	compact "$h/l.json" || fail "$cmd --json is not compact: $(cat "$h/l.json")"
	python3 -c 'import json, sys
s = open(sys.argv[1]).read()
assert s[:-1] == json.dumps(json.loads(s), separators=(",", ":"), sort_keys=True), s' "$h/l.json" ||
		fail "$cmd --json: keys not sorted: $(cat "$h/l.json")"
done
# incident status --json too (it printed ", " and ": "): one line, no
# blank outside its strings (its reals are not Python's to re-dump).
rf incident status 1 --json >"$h/s.json" || fail "incident status --json: $(cat "$h/s.json")"
python3 - "$h/s.json" <<'PY' || fail "incident status --json is not compact: $(cat "$h/s.json")"
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n") and text.count("\n") == 1, text
json.loads(text)
inside = esc = False
for ch in text[:-1]:
    if inside:
        esc, inside = (not esc and ch == "\\"), (inside if esc or ch != '"' else False)
    elif ch == '"':
        inside = True
    else:
        assert not ch.isspace(), text
PY
echo "cli lists: OK"
