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
