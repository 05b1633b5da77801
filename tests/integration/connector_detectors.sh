#!/usr/bin/env bash
# Every anomaly detector of docs/connectors.md tripped through the real API,
# as an operator would see it: assertions asked of `serve` over mutual TLS
# (ringfence assert, and curl where the source address matters), each alert
# read back from `alerts list --json` with its kind, connection and
# connector, and each raised once for what it is about. The detectors that
# need history (an earlier hour, a week of use) get it as that time would
# have left it: serve stopped, the baselines' rows in the store aged (the
# connector_seen table, docs/connectors.md), serve started again. The server listens on 127.0.0.1 only (curl also binds 127.0.1.1,
# another /24 of the loopback), is bounded by --duration and stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" connector
. "$here/lib/connector.sh" connector_detectors

# Limits lifted (the detectors, not the buckets, are under test), and a
# surge of 10 assertions a minute.
export RINGFENCE_CONN_RATE=0 RINGFENCE_CONNECTOR_RATE=0 \
	RINGFENCE_SURGE_PER_MINUTE=10
rf init >/dev/null
for t in t1 t2 t3 t4 t5 t6 t7; do
	rf tenant add "$t" >/dev/null
	rf connector entra "$t/m365" --tenant-id "$TID" --client-id "$CID" >/dev/null
	entra_cred "$t/m365" "cred-$t"
done
connector_ec sync t1/m365 t2/m365 t3/m365 t4/m365 t5/m365 t6/m365 t7/m365
connector_ec other t1/m365

stop_serve() {
	kill -TERM "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
}
# as CONNECTOR TENANT/CONN [ARGS...]: one assertion, which must be made.
as() {
	local c=$1 conn=$2
	shift 2
	rf assert --connection "$conn" --cert "$c.pem" --key "$c.key" \
		--ca root.pem --url "$url" "$@" >jwt.txt 2>err ||
		fail "$c asking for $conn: $(cat err)"
}
# alerts KIND: the ids of the alerts of KIND, one a line, once recorded
# (serve's recorder writes them after the answer: up to 10 s).
alerts() {
	rf --json alerts list >alerts.json
	jq -r --arg k "$1" '.[] | select(.kind == $k) | .id' alerts.json
}
wait_alert() { # KIND ID: ID is the only alert of KIND, within 10 s
	local got
	for _ in $(seq 50); do
		got=$(alerts "$1")
		[ "$got" = "$2" ] && return 0
		sleep 0.2
	done
	fail "$1: expected the one alert $2, got '$(echo $got)' ($(cat alerts.json))"
}
alerts_of() { # KIND: the ids of KIND once there is one (within 10 s)
	local g
	for _ in $(seq 50); do
		g=$(alerts "$1")
		[ -n "$g" ] && { echo "$g"; return 0; }
		sleep 0.2
	done
}
no_alert() { # KIND: none of KIND (after the recorder's batch)
	sleep 0.5
	[ -z "$(alerts "$1")" ] || fail "unexpected $1 alert: $(cat alerts.json)"
}

serve_up 120

# First use of t1/m365 by sync from 127.0.0.1: no detector, whatever it
# sees first is its baseline.
as sync t1/m365
for k in new_connector new_network; do no_alert "$k"; done

# new_connector: another bound connector on the same connection; the
# same event again raises nothing new.
as other t1/m365
wait_alert new_connector "new_connector:t1/m365|other"
as other t1/m365
sleep 0.5
count_is() { [ "$(alerts "$1" | wc -l)" -eq "$2" ] || fail "$1: expected $2 alerts: $(cat alerts.json)"; }
count_is new_connector 1

# new_network: the same connection asked from another /24 (curl bound to
# 127.0.1.1, the documented request without a proof: connector_proof is
# optional by default).
curl -s --interface 127.0.1.1 --cert sync.pem --key sync.key \
	--cacert root.pem -H 'Content-Type: application/json' \
	-d '{"connection":"t1/m365"}' "$url/v1/assertions" >curl.json
jq -e .assertion curl.json >/dev/null || fail "curl from 127.0.1.1: $(cat curl.json)"
wait_alert new_network "new_network:t1/m365|127.0.1.0/24"

# retired_credential: the connector names a credential that is not the
# connection's current one (t2's, not t1's); the assertion is still made,
# with the current credential. The current one named raises nothing.
x5t_t2=$(jq -r '.["x5t#S256"]' cred-t2.json)
x5t_t1=$(jq -r '.["x5t#S256"]' cred-t1.json)
[ -n "$x5t_t2" ] && [ "$x5t_t2" != null ] || fail "issue --json gave no x5t#S256: $(cat cred-t2.json)"
as sync t1/m365 --x5t "$x5t_t2"
$rp "$(cat jwt.txt)" "$TID" "$CID" seen cred-t1.pem >/dev/null ||
	fail "the assertion after a retired credential does not verify with t1's"
got=$(alerts_of retired_credential)
[[ $got == "retired_credential:t1/m365|$x5t_t2:"* ]] ||
	fail "retired_credential: '$got' ($(cat alerts.json))"
as sync t1/m365 --x5t "$x5t_t1"
sleep 0.5
count_is retired_credential 1

# fanout: sync reaches t2..t7 within minutes (7 tenants in this window:
# more than 5, and more than twice any earlier window, of which it has
# none). One alert for the window, however many tenants follow.
for t in t2 t3 t4 t5 t6 t7; do as sync "$t/m365"; done
got=$(alerts_of fanout)
[[ $got == "fanout:sync:"* ]] && [ "$(echo "$got" | wc -l)" -eq 1 ] ||
	fail "fanout: '$got' ($(cat alerts.json))"
# The other connector, on one tenant, fans out over nothing.
[ "$(jq '[.[] | select(.kind == "fanout" and .connector == "other")] | length' alerts.json)" -eq 0 ] ||
	fail "fanout for a connector on one tenant: $(cat alerts.json)"

# global_surge: 12 assertions across tenants within one minute of the
# clock, past surge_per_minute (10): one alert, for the hour. They start
# by the minute's 30th second, so that they fall in it even at 2.5 s
# each (a loaded machine, the sanitizer build); the steps before may
# have raised it already, which is the same one alert.
while [ "$(date +%S | sed 's/^0//')" -gt 30 ]; do sleep 1; done
for i in $(seq 12); do as sync "t$((i % 5 + 3))/m365"; done
got=$(alerts_of global_surge)
[[ $got == "global_surge:"* ]] && [ "$(echo "$got" | wc -l)" -eq 1 ] ||
	fail "global_surge: '$got' ($(cat alerts.json))"

# under_incident: refused (423), recorded, alerted.
rf incident open --scope tenant:t7 --reason "connector host stolen" >/dev/null
if rf assert --connection t7/m365 --cert sync.pem --key sync.key \
	--ca root.pem --url "$url" >/dev/null 2>err; then
	fail "an assertion was made for a connection under an open incident"
fi
grep -q "423 under_incident" err || fail "under incident: $(cat err)"
got=$(alerts_of under_incident)
[[ $got == "under_incident:t7/m365:"* ]] || fail "under_incident: '$got' ($(cat alerts.json))"
stop_serve

# History, as time would have left it (serve stopped):
#  - t2 was used once, in the hour before this one (its hour row and the
#    last hour it was used in moved back an hour);
#  - t1's first use was 8 days ago, and the hours of the week it was used
#    in are 5 hours later in the week than this one.
sq() { sqlite3 "$RINGFENCE_HOME/ringfence.db" "$@"; }
sq "UPDATE connector_seen SET k = 't2/m365|' || (CAST(substr(k, 9) AS INTEGER) - 1) WHERE kind = 'hour' AND k LIKE 't2/m365|%';
UPDATE connector_seen SET count = count - 1 WHERE kind = 'lasth' AND k = 't2/m365';
UPDATE connector_seen SET first = first - 8 * 86400 WHERE kind = 'conn' AND k = 't1/m365';
UPDATE connector_seen SET k = 't1/m365|' || ((CAST(substr(k, 9) AS INTEGER) + 5) % 168) WHERE kind = 'how' AND k LIKE 't1/m365|%';"
[ "$(sq "SELECT count FROM connector_seen WHERE kind = 'hour' AND k LIKE 't2/m365|%'")" = 1 ] ||
	fail "t2's hour rows: $(sq "SELECT * FROM connector_seen WHERE k LIKE 't2/m365%'")"
serve_up 120

# rate_above_baseline: its busiest earlier hour had 1, so this hour's
# fifth assertion (2 x 1 + 3) raises it, not the fourth.
for i in 1 2 3 4; do as sync t2/m365; done
no_alert rate_above_baseline
as sync t2/m365
got=$(alerts_of rate_above_baseline)
[[ $got == "rate_above_baseline:t2/m365:"* ]] ||
	fail "rate_above_baseline: '$got' ($(cat alerts.json))"

# new_hour_of_week: t1, with a week of history, used in an hour of the
# week it never was; t3, with less than a week, raises none.
as sync t3/m365
as sync t1/m365
got=$(alerts_of new_hour_of_week)
[[ $got == "new_hour_of_week:t1/m365|"* ]] && [ "$(echo "$got" | wc -l)" -eq 1 ] ||
	fail "new_hour_of_week: '$got' ($(cat alerts.json))"
stop_serve

# One alert of each of the eight kinds, each naming its connection and
# connector where it has them, and each an audit leaf.
rf --json alerts list >alerts.json
kinds=$(jq -r '[.[].kind] | sort | join(" ")' alerts.json)
[ "$kinds" = "fanout global_surge new_connector new_hour_of_week new_network rate_above_baseline retired_credential under_incident" ] ||
	fail "alert kinds: $kinds"
jq -e 'all(.[]; .kind == "global_surge" or .kind == "fanout" or (.connection | length > 0))' alerts.json >/dev/null ||
	fail "an alert without its connection: $(cat alerts.json)"
jq -e 'all(.[]; .kind == "global_surge" or (.connector | length > 0))' alerts.json >/dev/null ||
	fail "an alert without its connector: $(cat alerts.json)"
rf audit search --json >audit.jsonl
[ "$(grep -c '"type":"alert"' audit.jsonl)" -eq 8 ] ||
	fail "alert leaves: $(grep -c '"type":"alert"' audit.jsonl) for 8 alerts"
echo "connector_detectors: ok"
