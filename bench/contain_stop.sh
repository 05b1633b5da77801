# Sourced by bench/contain.sh and bench/incident.sh, with build and
# RINGFENCE_HOME set. contain_stopped ID PROG STOP: runs `ringfence --json
# incident contain ID`, its result in $RINGFENCE_HOME/contain.json and its
# progress lines in PROG, each stamped with the time it came (by $stamp,
# which the callers use too). Once the phase "destroy old keys" has
# counted STOP pairs (0: as soon as it begins; -1: never), the command is
# stopped by its PID, as an operator would stop it (a rerun resumes), and
# so is keyd, by its pid file, which would go on with the part it was
# given: the state folder is thrown away after. Sets contain_killed to 1
# when it stopped them; otherwise the command ended by itself, and a
# failure of it fails the caller. The caller waits a moment for the last
# stamped lines before it reads PROG.
stamp='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.time(), line))
    sys.stdout.flush()'
contain_stopped() {
	local id=$1 prog=$2 stop=$3 cpid crc=0
	# The binary itself in the background, so that $! is its PID.
	"$build/ringfence" --json incident contain "$id" \
		>"$RINGFENCE_HOME/contain.json" 2> >(python3 -u -c "$stamp" >"$prog") &
	cpid=$!
	contain_killed=0
	while kill -0 "$cpid" 2>/dev/null; do
		if [ "$stop" -ge 0 ] && awk -v s="$stop" '/"phase":"destroy old keys"/ && match($0, /"done":[0-9]+/) && substr($0, RSTART + 7, RLENGTH - 7) + 0 >= s { f = 1 } END { exit !f }' "$prog" 2>/dev/null; then
			kill -9 "$cpid"
			kill -9 "$(cat "$RINGFENCE_HOME/keyd.pid")" 2>/dev/null || true
			contain_killed=1
			break
		fi
		sleep 0.05
	done
	{ wait "$cpid"; } 2>/dev/null || crc=$?
	if [ "$contain_killed" = 0 ] && [ "$crc" != 0 ]; then
		echo "${0##*/}: incident contain failed (exit $crc)" >&2
		exit 1
	fi
}
