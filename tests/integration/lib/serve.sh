# Sourced by integration tests after lib/state.sh: start_serve [ARGS...]
# starts `ringfence serve` on free 127.0.0.1 ports ($port plain, $tport
# TLS) with ARGS, waits for /healthz, and sets $server to its PID (the
# state's cleanup stops it). Fresh ports again, up to five times, if it
# does not come up; its stderr is in $RINGFENCE_HOME/serve.log.
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start_serve() {
	local try
	for try in 1 2 3 4 5; do
		port=$(freeport)
		tport=$(freeport)
		[ "$port" != "$tport" ] || continue
		"$RINGFENCE" serve --port "$port" --tls-port "$tport" "$@" \
			2>"$RINGFENCE_HOME/serve.log" &
		server=$!
		for _ in $(seq 100); do
			curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
			kill -0 "$server" 2>/dev/null || break
			sleep 0.1
		done
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	fail "server did not start: $(cat "$RINGFENCE_HOME/serve.log")"
}
