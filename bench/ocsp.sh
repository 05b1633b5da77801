#!/usr/bin/env bash
# OCSP benchmark: ringfence beside `openssl ocsp -multi 2`, cfssl ocspserve
# and nginx serving one pre-signed response file, in the same run, over the
# same certificate set (N issued, 10% revoked). Each server and its wrk load
# run inside their own private network namespace (unshare -n), on 127.0.0.1.
#
# usage: bench/ocsp.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: ocsp.sh BUILD_DIR [N]}" && pwd)
n=${2:-100000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/rf-bench-ocsp.XXXXXX)
# serve starts keyd on demand, in a session of its own: it is stopped by
# its pid file (never by name) before its state goes.
cleanup() {
	RINGFENCE_HOME=$work/state "$build/ringfence" keyd stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
duration=${RF_BENCH_SECONDS:-10}
port=18080

echo "ocsp: preparing $n certificates (10% revoked) in $work ..." >&2
t0=$(date +%s.%N)
RINGFENCE_HOME=$work/state "$build/bench_ocsp_setup" "$work" "$n" >&2
# A state folder of this run's own: keyd runs without the user split.
export RINGFENCE_CUSTODY_USER=rf-none-keyd RINGFENCE_SERVER_USER=rf-none-serve
t1=$(date +%s.%N)
printf 'ocsp: set-up took %.1f s\n' "$(echo "$t1 - $t0" | bc)" >&2

# A throwaway software responder key for the openssl peer only (openssl ocsp
# cannot use a key in the token); it lives in the temp folder and is deleted.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/peer-resp.key" -out "$work/peer-resp.pem" -days 2 \
	-subj /CN=peer-responder 2>/dev/null

# nginx's workers run as nobody and the work folder is mode 0700: the file
# it serves lives in a folder they can read, or every answer is an error.
mkdir -p "$work/www"
cp "$work/one.der" "$work/www/one.der"
chmod 711 "$work"
chmod 755 "$work/www"
chmod 644 "$work/www/one.der"

# nginx with 2 workers and with 1: ringfence is held to the faster.
for nw in 1 2; do
cat >"$work/nginx$nw.conf" <<NGINX
worker_processes $nw;
pid $work/nginx$nw.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $work/nginx-body;
	server {
		listen 127.0.0.1:$port;
		location = /ocsp {
			root $work/www;
			default_type application/ocsp-response;
			try_files /one.der =404;
			error_page 405 =200 /one.der;
		}
		location = /one.der { root $work/www; internal;
			default_type application/ocsp-response; }
	}
}
NGINX
done

# run NAME CMD...: start CMD in a private network namespace, wait until a
# real OCSP request is answered, load it with wrk, stop it by its PID.
run() {
	local name=$1
	shift
	unshare -n bash -s "$name" "$work" "$port" "$duration" "$here" "$@" <<'NS'
set -u
name=$1 work=$2 port=$3 duration=$4 here=$5
shift 5
ip link set lo up
# Each server gets its own process group, stopped as one below. openssl
# ocsp -multi makes its own (setpgid), which fails, and it exits at once,
# when it is already a session leader: so not under setsid.
if [ "$name" = openssl ]; then
	"$@" >"$work/$name.log" 2>&1 &
else
	setsid "$@" >"$work/$name.log" 2>&1 &
fi
pid=$!
ok=0
for _ in $(seq 600); do
	if curl -s -o /dev/null -m 2 --data-binary @"$work/probe.der" \
		-H 'Content-Type: application/ocsp-request' \
		"http://127.0.0.1:$port/ocsp"; then ok=1; break; fi
	sleep 0.1
done
if [ $ok = 1 ]; then
	wrk -t2 -c50 -d"${duration}s" --latency -s "$here/ocsp_post.lua" \
		"http://127.0.0.1:$port/ocsp" -- "$work/requests.hex" \
		>"$work/$name.wrk" 2>&1
else
	echo "server did not answer" >"$work/$name.wrk"
fi
kill -TERM -- "-$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
NS
}

# ringfence with one worker thread: on these 2 cores wrk's two threads
# take about one core, and a second worker only contends with them (the
# row "ringfence-2" shows it; docs/bench.md has the measurements).
threads=${RF_BENCH_OCSP_THREADS:-1}
export RINGFENCE_HOME=$work/state
run ringfence "$build/ringfence" serve --port "$port" --threads "$threads" \
	--duration $((duration + 30))
run ringfence-2 "$build/ringfence" serve --port "$port" --threads 2 \
	--duration $((duration + 30))
run openssl openssl ocsp -index "$work/index.txt" -CA "$work/issuing.pem" \
	-rsigner "$work/peer-resp.pem" -rkey "$work/peer-resp.key" \
	-port "$port" -multi 2 -nmin 60
run cfssl cfssl ocspserve -address 127.0.0.1 -port "$port" \
	-responses "$work/responses.b64" -loglevel 5
run nginx nginx -p "$work" -c "$work/nginx2.conf" -g 'daemon off;'
run nginx-1 nginx -p "$work" -c "$work/nginx1.conf" -g 'daemon off;'

# A run with any non-2xx answer measured an error path, not the server:
# it gets no rate.
rate() {
	grep -q 'Non-2xx' "$work/$1.wrk" && return 0
	awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk"
}
p99() {
	awk '$1 == "99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
		printf "%.2f", v}' "$work/$1.wrk"
}

rf=$(rate ringfence)
printf '\nOCSP: wrk -t2 -c50 -d%ss POST, %s certificates (10%% revoked), 2 cores\n' \
	"$duration" "$n"
printf 'ringfence: --threads %s; ringfence-2: --threads 2; nginx: 2 workers; nginx-1: 1\n' \
	"$threads"
printf '%-22s %12s %10s %16s\n' server 'responses/s' 'p99 ms' 'ringfence ratio'
for s in ringfence ringfence-2 openssl cfssl nginx nginx-1; do
	r=$(rate $s)
	if [ -z "$r" ]; then
		why=$(grep -m1 'Non-2xx' "$work/$s.wrk" ||
			head -c 120 "$work/$s.wrk" | tr '\n' ' ')
		printf '%-22s %12s %10s %16s   (%s)\n' "$s" - - - "$why"
		continue
	fi
	ratio=$(awk -v a="${rf:-0}" -v b="$r" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
	printf '%-22s %12s %10s %16s\n' "$s" "$r" "$(p99 $s)" "$ratio"
done
best=$(printf '%s\n%s\n' "$(rate nginx)" "$(rate nginx-1)" | sort -g | tail -1)
awk -v a="${rf:-0}" -v b="${best:-0}" 'BEGIN { if (b > 0)
	printf "ringfence / the faster nginx: %.2fx\n", a / b }'
echo "targets: >= 3x openssl, >= 3x cfssl, >= 1.0x nginx (the faster), p99 <= 5 ms"
