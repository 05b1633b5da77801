# Sourced by bench/contain.sh and bench/incident.sh, with build and
# RINGFENCE_HOME set. contain_stopped ID PROG STOP: runs `ringfence --json
# incident contain ID`, its result in $RINGFENCE_HOME/contain.json and its
# progress lines in PROG, each stamped with the time it came (by
# $stamp_stop, which the callers use too, with STOP -1). Once the phase
# "destroy old keys" has counted STOP pairs (0: as soon as it begins; -1:
# never), the command is stopped by its PID, as an operator would stop it
# (a rerun resumes), and so is keyd, by its pid file, which would go on with the part it was
# given: the state folder is thrown away after. Sets contain_killed to 1
# when it stopped them; otherwise the command ended by itself, and a
# failure of it fails the caller. The caller waits a moment for the last
# stamped lines before it reads PROG.
# The stamping filter of contain_stopped watches for STOP itself, so that
# nothing polls the progress file while contain runs (a loop of awk and
# sleep every 50 ms took about a tenth of the 2 cores contain is bound by).
stamp_stop='import json, os, signal, sys, time
stop, home, hit = int(sys.argv[1]), sys.argv[2], False
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.time(), line))
    sys.stdout.flush()
    if hit or stop < 0:
        continue
    try:
        o = json.loads(line)
        hit = o["phase"] == "destroy old keys" and int(o["done"]) >= stop
    except (ValueError, TypeError, KeyError):
        continue
    if hit:
        # The mark first: the shell may see contain end before the kills
        # return.
        open(os.path.join(home, "contain.killed"), "w").close()
        for f in ("contain.pid", "keyd.pid"):
            try:
                os.kill(int(open(os.path.join(home, f)).read()), signal.SIGKILL)
            except (OSError, ValueError):
                pass'
contain_stopped() {
	local id=$1 prog=$2 stop=$3 cpid crc=0
	rm -f "$RINGFENCE_HOME/contain.killed" "$RINGFENCE_HOME/contain.pid"
	# The binary itself in the background (bash writes its own PID, then
	# becomes the command), so that $! is its PID and contain.pid is there
	# before contain runs; the filter stops it by that PID once STOP pairs
	# are destroyed.
	bash -c 'echo $$ >"$1/contain.pid"; shift; exec "$@"' _ "$RINGFENCE_HOME" \
		"$build/ringfence" --json incident contain "$id" \
		>"$RINGFENCE_HOME/contain.json" 2> >(python3 -u -c "$stamp_stop" "$stop" "$RINGFENCE_HOME" >"$prog") &
	cpid=$!
	{ wait "$cpid"; } 2>/dev/null || crc=$?
	contain_killed=0
	[ ! -e "$RINGFENCE_HOME/contain.killed" ] || contain_killed=1
	if [ "$contain_killed" = 0 ] && [ "$crc" != 0 ]; then
		echo "${0##*/}: incident contain failed (exit $crc)" >&2
		exit 1
	fi
}
