# Sourced by bench/assert.sh and bench/assert_profile.sh, with rf (the
# ringfence binary) and state_name set: a state folder of the run's own
# (tmpfs when there is one; keyd runs without the user split, and goes with
# the folder at exit, as does $server), one tenant with one Entra
# connection and its RSA-2048 credential ($key), a connector "bench"
# enrolled from c.csr (c.pem, c.key) and bound to it, and the standby pool
# filled: keyd's background refill would otherwise make the connection's 2
# RSA-2048 pool keys during the measurements, on the same 2 cores.
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
export RINGFENCE_HOME=$(mktemp -d "$base/$state_name.XXXXXX")
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
server=""
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	"$rf" keyd stop >/dev/null 2>&1 || true
	rm -rf "$RINGFENCE_HOME" "$RINGFENCE_HOME-custody"
}
trap cleanup EXIT
unset RINGFENCE_NOW RINGFENCE_PIN || true
export RINGFENCE_TOKENS=2 RINGFENCE_CONN_RATE=0 RINGFENCE_CONNECTOR_RATE=0
cd "$RINGFENCE_HOME"
"$rf" init >/dev/null 2>&1
"$rf" tenant add acme >/dev/null
"$rf" connector entra acme/m365 --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 \
	--client-id 00000003-0000-4000-8000-0000000000aa >/dev/null
key=$("$rf" --json issue --tenant acme --connection m365 --profile assertion \
	--keygen rsa-2048 | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout c.key -out c.csr -subj /CN=bench 2>/dev/null
"$rf" connector add bench --csr c.csr --out c.pem >/dev/null
"$rf" connector bind bench acme/m365 >/dev/null
"$rf" keys pool fill >/dev/null

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
