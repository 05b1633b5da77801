# Sourced by the connector tests after lib/state.sh: their working folder
# ($tmp, the current directory), the relying party ($rp, PyJWT), the
# registration's ids, and serve_up. usage: . lib/connector.sh NAME
unset RINGFENCE_PIN RINGFENCE_NOW RINGFENCE_MODULE RINGFENCE_TOKEN \
	RINGFENCE_LISTEN RINGFENCE_PORT RINGFENCE_TLS_PORT || true
export RINGFENCE_TOKENS=2
cname=$1
tmp="$RINGFENCE_HOME/.test"
mkdir "$tmp"
log="$tmp/serve.log"
rp="/usr/bin/python3 $here/lib/jwt_rp.py"
TID=72f988bf-86f1-41af-91ab-2d7cd011db47
CID=00000003-0000-4000-8000-0000000000aa
fail() {
	echo "$cname: FAIL: $*" >&2
	[ -f "$log" ] && sed 's/^/  serve: /' "$log" >&2
	exit 1
}
# A command that fails outside an `|| fail` (set -e) says where.
trap 'echo "$cname: FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
. "$here/lib/ports.sh"
# serve_up SECONDS [PORT-TO-AVOID [LISTEN]]: serve on free ports of
# 127.0.0.1 (or of the loopback address LISTEN: ::1, ::ffff:127.0.0.1) for
# at most SECONDS ($server, $port, $tport; root.pem; $url the TLS port).
serve_up() {
	local up avoid=${2:-0} host=${3:-127.0.0.1}
	[[ $host == *:* ]] && host="[$host]"
	for _ in 1 2 3 4 5; do
		port=$(freeport)
		tport=$(freeport)
		[ "$port" != "$tport" ] && [ "$port" != "$avoid" ] &&
			[ "$tport" != "$avoid" ] || continue
		"$RINGFENCE" serve ${3:+--listen "$3"} --port "$port" \
			--tls-port "$tport" --duration "$1" --threads 2 2>"$log" &
		server=$!
		up=0
		for _ in $(seq 100); do
			if curl -sf -m 2 -o /dev/null "http://$host:$port/healthz"; then
				up=1
				break
			fi
			kill -0 "$server" 2>/dev/null || break
			sleep 0.1
		done
		[ $up -eq 1 ] && break
		kill -TERM "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	[ -n "$server" ] || fail "server did not come up"
	curl -sf -o root.pem "http://$host:$port/ca/root.pem"
	url="https://$host:$tport"
}
cd "$tmp"
# entra_cred TENANT/CONN NAME: the connection's RSA-2048 credential issued
# in the token (NAME.json, its certificate alone in NAME.pem).
entra_cred() {
	rf --json issue --tenant "${1%/*}" --connection "${1#*/}" \
		--profile assertion --keygen rsa-2048 >"$2.json"
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pem"].split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----")' \
		"$2.json" >"$2.pem"
}
# acme_m365: a fresh state with tenant acme and its entra connection m365
# (cred.pem its RSA credential), connectors sync and other bound to it,
# and stranger.key, a key that is no connector's.
acme_m365() {
	rf init >/dev/null
	rf tenant add acme >/dev/null
	rf connector entra acme/m365 --tenant-id "$TID" --client-id "$CID" >/dev/null
	entra_cred acme/m365 cred
	connector_ec sync acme/m365
	connector_ec other acme/m365
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out stranger.key 2>/dev/null
}
# connector_ec NAME TENANT/CONN...: a connector with an EC P-256 key made
# here (NAME.key, NAME.csr; its certificate NAME.pem), bound to the
# connections.
connector_ec() {
	local c=$1
	shift
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$c.key" -out "$c.csr" -subj "/CN=$c" 2>/dev/null
	rf connector add "$c" --csr "$c.csr" --out "$c.pem" >/dev/null
	rf connector bind "$c" "$@" >/dev/null
}
# keyd_kill9: keyd killed by the PID in keyd.pid ($kpid), waited for.
keyd_kill9() {
	kpid=$(cat "$RINGFENCE_HOME/keyd.pid")
	kill -9 "$kpid"
	for _ in $(seq 100); do
		kill -0 "$kpid" 2>/dev/null || break
		sleep 0.05
	done
}
