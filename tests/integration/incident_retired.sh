#!/usr/bin/env bash
# A connection whose credential the operator retired before the incident
# (revoked as cessationOfOperation, superseded, affiliationChanged,
# privilegeWithdrawn or certificateHold) is not in service: contain takes
# its key out of service like every other in scope, but gives it no new
# credential (it brought such connections back, valid, which the operator
# had retired). Its item is waived from the open, saying why. A
# credential revoked for a compromise before the incident (keyCompromise,
# or no reason) is replaced, as the responder who revoked it first wants.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/state.sh" retired

rf init >/dev/null 2>&1
key_of() { rf --json cert show "$1" | jq -r .key; }
cred() { # TENANT -> the serial of a new client credential of TENANT/app
	rf tenant add "$1" >/dev/null
	rf --json issue --tenant "$1" --connection app --profile client \
		--keygen ec-p256 | jq -r .serial
}
s_live=$(cred live)
s_ceased=$(cred ceased)
s_super=$(cred super)
s_kc=$(cred kc)
s_none=$(cred none)
rf revoke "$s_ceased" --reason cessationOfOperation >/dev/null
rf revoke "$s_super" --reason superseded >/dev/null
rf revoke "$s_kc" --reason keyCompromise >/dev/null
rf revoke "$s_none" >/dev/null
k_ceased=$(key_of "$s_ceased")
[ -n "$k_ceased" ] && [ "$k_ceased" != null ] || fail "cert show gives no key: $(rf --json cert show "$s_ceased")"

id=$(rf incident open --scope all --reason "vendor breach" 2>"$RINGFENCE_HOME/open.err") ||
	fail "open: $(cat "$RINGFENCE_HOME/open.err")"
rf --json incident status "$id" >"$RINGFENCE_HOME/st.json"
[ "$(jq .waived "$RINGFENCE_HOME/st.json")" = 2 ] ||
	fail "the two retired connections are not waived at open: $(cat "$RINGFENCE_HOME/st.json")"
rf incident contain "$id" >"$RINGFENCE_HOME/contain.out" 2>"$RINGFENCE_HOME/contain.err" ||
	fail "contain: $(cat "$RINGFENCE_HOME/contain.err")"
valid() { rf --json cert list --tenant "$1" | jq '[.[] | select(.status == "valid")] | length'; }
for t in ceased super; do
	[ "$(valid "$t")" = 0 ] || fail "contain gave retired $t a new credential: $(rf cert list --tenant "$t")"
done
for t in live kc none; do
	[ "$(valid "$t")" = 1 ] || fail "$t has $(valid "$t") valid credentials after contain"
done
# The retired credential's key is out of service all the same.
if rf --json keys list | jq -se --arg k "$k_ceased" 'any(.[]; .id == $k and .can_sign)' >/dev/null; then
	fail "the retired credential's key can still sign"
fi
# Status and the record say why they were left alone; close needs only
# the others confirmed.
rf incident status "$id" >"$RINGFENCE_HOME/st.txt"
grep -q "waived 2" "$RINGFENCE_HOME/st.txt" || fail "status: $(cat "$RINGFENCE_HOME/st.txt")"
grep -q "contained: 5 connections; .* 3 new credentials, .* by this run$" "$RINGFENCE_HOME/contain.out" &&
	grep -q "^in all: 3 of 5 connections have their new credential, 2 are waived" "$RINGFENCE_HOME/contain.out" ||
	fail "contain said: $(cat "$RINGFENCE_HOME/contain.out")"
rf audit search --json >"$RINGFENCE_HOME/audit.jsonl"
grep -q "5 connections (2 of them with a credential retired before the incident" "$RINGFENCE_HOME/audit.jsonl" ||
	fail "the open event does not say two were retired"
for t in live kc none; do rf incident confirm "$id" --tenant "$t" >/dev/null; done
# Again: done already, and it says so rather than "re-established".
[ "$(rf incident confirm "$id" --tenant live)" = "tenant live: every connection already re-established, waived or closed; nothing changed" ] ||
	fail "a repeated confirm: $(rf incident confirm "$id" --tenant live)"
[ "$(rf incident confirm "$id" --tenant ceased --connection app --waive)" = "connection ceased/app: already re-established, waived or closed; nothing changed" ] ||
	fail "waiving a connection waived at open: $(rf incident confirm "$id" --tenant ceased --connection app --waive)"
rf incident close "$id" >/dev/null 2>"$RINGFENCE_HOME/close.err" ||
	fail "close: $(cat "$RINGFENCE_HOME/close.err")"
echo "incident_retired: ok"
