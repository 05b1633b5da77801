# Ports for test servers (sourced).
# A free port below the ephemeral range, for a receiver that starts late:
# connecting again and again to a port of that range where nothing listens
# can connect a socket to itself (same source and destination port), which
# then holds the port.
lateport() {
	python3 -c 'import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(100):
    p = random.randrange(10000, lo)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}
# serve_late LOG ARGS...: serve on a port from lateport, with ARGS, its
# stderr in LOG; another port if it does not come up there (taken after
# all), five times at most. Sets $port and $server; 1 if it never came up.
serve_late() {
	local log=$1 try
	shift
	for try in 1 2 3 4 5; do
		port=$(lateport)
		"$RINGFENCE" serve --port "$port" "$@" 2>"$log" &
		server=$!
		for _ in $(seq 200); do
			curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
			kill -0 "$server" 2>/dev/null || break
			sleep 0.05
		done
		kill -TERM "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	return 1
}
