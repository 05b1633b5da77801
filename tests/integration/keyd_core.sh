#!/usr/bin/env bash
# keyd_core.sh: the memory of serve and of the custody process holds no
# PIN. serve starts keyd, which reads the PIN file of the custody folder
# (the sanitizer runtime keeps its own copy of the environment, so the
# test build cannot show RINGFENCE_PIN wiped); then every readable mapping of
# each process is read from /proc/PID/mem, as gcore would dump it, and
# searched for the PIN's bytes. (gcore itself cannot be used on the
# sanitizer build: it writes AddressSanitizer's terabyte shadow.) A
# process that does keep the PIN is found by the same search, and both
# processes run with core files off.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" keyd-core
work=$RINGFENCE_HOME/.test
mkdir "$work"
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# holds PID BYTES: exit 0 if the process's memory holds BYTES.
holds() {
	python3 - "$1" "$2" <<'PY'
import re, sys
pid, needle = sys.argv[1], sys.argv[2].encode()
found = False
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if "r" not in f[1] or hi - lo > (1 << 31) or (len(f) > 5 and f[5] == "[vvar]"):
            continue
        try:
            mem.seek(lo)
            if needle in mem.read(hi - lo):
                found = True
                break
        except OSError:
            pass
sys.exit(0 if found else 1)
PY
}

rf init >/dev/null 2>&1 || fail "init"
pin=$(custody_pin)
[ ${#pin} -ge 32 ] || fail "no PIN in the custody folder"
port=$(freeport)
"$RINGFENCE" serve --port "$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" || fail "serve: $(cat "$work/serve.log")"
kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
# Without the custody user (state.sh), status says the user split is off.
rf keyd status | grep -q "uid 0 (root, user split off)" || fail "keyd status: $(rf keyd status)"

# The search finds a PIN where there is one.
RINGFENCE_PIN=$pin sleep 60 &
control=$!
sleep 0.2
holds "$control" "$pin" || fail "the memory search does not find a PIN in an environment"
kill "$control"

holds "$server" "$pin" && fail "serve's memory holds the PIN"
holds "$kpid" "$pin" && fail "keyd's memory holds the PIN"
for p in "$server" "$kpid"; do
	grep -Eq "^Max core file size +0 +0" "/proc/$p/limits" || fail "core files on for $p"
done
echo "keyd_core: ok"
