/*
 * track.c: an incident after containment (contain.c, reissue.c) until it
 * closes. The connections' states; re-establishment confirmed or waived
 * per tenant; OCSP queries for old credentials recorded as evidence and
 * acknowledged; the status, the list of connections and the report; and
 * the close, which destroys the old keys contain has not
 * (rf_incident_retire_keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit/audit.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "store/store.h"
#include "store/store_incident.h"

static const char *const state_names[RF_ITEM_NSTATES] = {
    "affected", "contained", "reestablished", "closed", "waived"};

const char *
rf_item_state_name(enum rf_item_state s)
{
	return (unsigned)s < RF_ITEM_NSTATES ? state_names[s] : "unknown";
}

static int
state_index(const char *name)
{
	int i;

	for (i = 0; i < RF_ITEM_NSTATES; i++)
		if (strcmp(state_names[i], name) == 0)
			return i;
	return -1;
}

/* ---- Tracking ---- */

int
rf_incident_confirm(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *conn, int waive, size_t *nmoved)
{
	struct rf_incident_rec inc;
	struct item_vec iv = {0};
	size_t i, k, moved = 0;
	int r, in_tx = 0;

	*nmoved = 0;
	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(
		    RF_ERR_STATE, "incident %lld is closed", (long long)id);
	if ((r = rf_incident_load_items(c, id, tenant, NULL, &iv)) != 0)
		goto out;
	for (i = k = 0; conn != NULL && i < iv.n; i++)
		if (strcmp(iv.v[i].name, conn) == 0)
			iv.v[k++] = iv.v[i];
	if (conn != NULL)
		iv.n = k;
	if (iv.n == 0 && conn != NULL) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "connection %s/%s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", conn, (long long)id);
		goto out;
	}
	if (iv.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "tenant %s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", (long long)id);
		goto out;
	}
	/* Waived while affected: keyd's ledger lets it sign for them again
	 * (their old credential stays), before the store says so. */
	if (waive &&
	    (r = rf_incident_note_items(
		 c, 0, iv.v, iv.n, "affected", NULL, NULL)) != 0)
		goto out;
	if ((r = rf_store_begin(c->st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < iv.n; i++) {
		struct rf_item_rec *it = &iv.v[i];

		if (strcmp(it->state, "reestablished") == 0 ||
		    strcmp(it->state, "closed") == 0 ||
		    strcmp(it->state, "waived") == 0)
			continue; /* already done */
		if (!waive && strcmp(it->state, "affected") == 0) {
			r = rf_err_set(RF_ERR_STATE,
			    "connection %s/%s is not contained yet: run "
			    "'ringfence incident contain %lld' first (or, "
			    "when contain leaves it alone, waive it: "
			    "--waive)",
			    it->tenant, it->name, (long long)id);
			goto out;
		}
		snprintf(it->state, sizeof(it->state), "%s",
		    waive ? "waived" : "reestablished");
		snprintf(it->evidence, sizeof(it->evidence), "%s by %s",
		    waive ? "waived" : "confirmed",
		    c->who != NULL && c->who->actor != NULL ? c->who->actor
							    : "operator");
		it->updated = rf_now();
		if ((r = rf_store_item_update(c->st, it)) != 0)
			goto out;
		moved++;
	}
	if ((r = rf_incident_event(c, id, waive ? "waive" : "confirm",
		 "tenant %s%s%s: %zu connections %s",
		 tenant != NULL ? tenant : "(all)",
		 conn != NULL ? " connection " : "", conn != NULL ? conn : "",
		 moved, waive ? "waived" : "re-established")) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	*nmoved = moved;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	free(iv.v);
	return r;
}

int
rf_incident_evidence(const struct rf_incident_ctx *c, const char *serial,
    const char *source, int64_t t, int64_t count, struct rf_leaf_quota *quota,
    int *matched)
{
	struct rf_sighting_rec g;
	struct rf_item_rec it;
	struct rf_audit_event ev;
	char who[96];
	int r, is_new = 0, fresh;

	*matched = 0;
	memset(&it, 0, sizeof(it));
	if ((r = rf_store_item_by_serial(c->st, serial, &it, &is_new)) != 0) {
		if (r == RF_ERR_NOT_FOUND) {
			rf_err_clear();
			return 0;
		}
		return r;
	}
	*matched = 1;
	memset(&g, 0, sizeof(g));
	g.incident = it.incident;
	g.conn = it.conn;
	snprintf(g.serial, sizeof(g.serial), "%s", serial);
	g.is_new = is_new;
	snprintf(g.source, sizeof(g.source), "%s",
	    source != NULL && *source != '\0' ? source : "unknown");
	g.first = g.last = t;
	g.count = count;
	/* Something still presents the old credential after the switch. */
	g.after_reestablished = !is_new &&
	    (strcmp(it.state, "reestablished") == 0 ||
		strcmp(it.state, "closed") == 0);
	if ((r = rf_store_sighting_add(c->st, &g, &fresh)) != 0 || !fresh)
		return r;
	/* The leaf names the real actor: an anonymous OCSP client. Anyone
	 * can ask, from as many addresses as it has: a budget a minute. */
	snprintf(who, sizeof(who), "ocsp %s", g.source);
	if (quota != NULL && !rf_leaf_quota_take(quota, who))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.type = "incident";
	ev.what = "sighting";
	ev.tenant = it.tenant;
	ev.ref = serial;
	ev.detail = "OCSP query for the revoked old credential after "
		    "re-establishment";
	ev.actor = "anonymous OCSP client";
	ev.source = who;
	return rf_audit_append(c->audit, &ev, 1, NULL);
}

int
rf_incident_ack(const struct rf_incident_ctx *c, int64_t id, size_t *n)
{
	struct rf_incident_rec inc;
	int r, in_tx = 0;

	*n = 0;
	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if ((r = rf_store_begin(c->st)) != 0)
		return r;
	in_tx = 1;
	if ((r = rf_store_sighting_ack(c->st, id, n)) != 0 ||
	    (r = rf_incident_event(c, id, "ack",
		 "%zu sightings of old credentials after re-establishment "
		 "acknowledged",
		 *n)) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	return r;
}

static int
count_item(void *arg, const struct rf_item_rec *it)
{
	struct rf_incident_status *s = arg;
	int i = state_index(it->state);

	if (i >= 0)
		s->counts[i]++;
	s->total++;
	return 0;
}

int
rf_incident_status(
    const struct rf_incident_ctx *c, int64_t id, struct rf_incident_status *out)
{
	struct rf_incident_rec inc;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	out->id = inc.id;
	snprintf(out->scope, sizeof(out->scope), "%s", inc.scope);
	snprintf(out->reason, sizeof(out->reason), "%s", inc.reason);
	snprintf(out->state, sizeof(out->state), "%s", inc.state);
	snprintf(
	    out->new_issuer, sizeof(out->new_issuer), "%s", inc.new_issuer);
	out->opened = inc.opened;
	out->contained = inc.contained;
	out->closed = inc.closed;
	out->signatures = inc.signatures;
	if ((r = rf_store_sighting_counts(
		 c->st, id, &out->sightings, &out->unacked)) != 0)
		return r;
	return rf_store_item_foreach(c->st, id, NULL, NULL, count_item, out);
}

struct foreach_adapter {
	int stragglers_only;
	int (*fn)(void *arg, const struct rf_incident_conn *ic);
	void *arg;
};

static int
adapt_item(void *arg, const struct rf_item_rec *it)
{
	struct foreach_adapter *a = arg;
	struct rf_incident_conn ic;

	if (a->stragglers_only &&
	    (strcmp(it->state, "reestablished") == 0 ||
		strcmp(it->state, "closed") == 0 ||
		strcmp(it->state, "waived") == 0))
		return 0;
	memset(&ic, 0, sizeof(ic));
	snprintf(ic.tenant, sizeof(ic.tenant), "%s", it->tenant);
	snprintf(ic.name, sizeof(ic.name), "%s", it->name);
	snprintf(ic.rp, sizeof(ic.rp), "%s", it->rp);
	snprintf(ic.state, sizeof(ic.state), "%s", it->state);
	snprintf(ic.old_serial, sizeof(ic.old_serial), "%s", it->old_serial);
	snprintf(ic.new_serial, sizeof(ic.new_serial), "%s", it->new_serial);
	snprintf(ic.evidence, sizeof(ic.evidence), "%s", it->evidence);
	ic.updated = it->updated;
	return a->fn(a->arg, &ic);
}

int
rf_incident_foreach(const struct rf_incident_ctx *c, int64_t id,
    int stragglers_only,
    int (*fn)(void *arg, const struct rf_incident_conn *ic), void *arg)
{
	struct rf_incident_rec inc;
	struct foreach_adapter a = {stragglers_only, fn, arg};
	int r;

	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	return rf_store_item_foreach(c->st, id, NULL, NULL, adapt_item, &a);
}

/* ---- Report ---- */

struct report_acc {
	FILE *md;
	json_t *arr;
};

/* A time for people: "2026-12-04 07:36:12 UTC", "-" for none. */
static void
report_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, 32, "-");
}

static int
report_event(void *arg, const struct rf_event_rec *e)
{
	struct report_acc *a = arg;

	char when[32];

	report_time(e->time, when);
	if (a->md != NULL)
		fprintf(a->md, "| %s | %s | %s |\n", when, e->kind, e->detail);
	if (json_array_append_new(a->arr,
		json_pack("{s:I, s:s, s:s}", "time", (json_int_t)e->time,
		    "kind", e->kind, "detail", e->detail)) != 0)
		return RF_ERR_ALLOC;
	return 0;
}

static int
report_item(void *arg, const struct rf_incident_conn *ic)
{
	struct report_acc *a = arg;

	char when[32];

	report_time(ic->updated, when);
	if (a->md != NULL)
		fprintf(a->md, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
		    ic->tenant, ic->name, ic->rp, ic->state, ic->old_serial,
		    ic->new_serial[0] ? ic->new_serial : "-",
		    ic->evidence[0] ? ic->evidence : "-", when);
	if (json_array_append_new(a->arr,
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "tenant",
		    ic->tenant, "connection", ic->name, "relying_party", ic->rp,
		    "state", ic->state, "old_serial", ic->old_serial,
		    "new_serial", ic->new_serial, "evidence", ic->evidence,
		    "updated", (json_int_t)ic->updated)) != 0)
		return RF_ERR_ALLOC;
	return 0;
}

int
rf_incident_report(
    const struct rf_incident_ctx *c, int64_t id, FILE *md, FILE *jf)
{
	struct rf_incident_status s;
	struct report_acc a = {md, NULL};
	json_t *root = NULL, *timeline = NULL, *conns = NULL, *counts = NULL;
	int r, i;

	if ((r = rf_incident_status(c, id, &s)) != 0)
		return r;
	if ((timeline = json_array()) == NULL ||
	    (conns = json_array()) == NULL ||
	    (counts = json_object()) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < RF_ITEM_NSTATES; i++)
		json_object_set_new(counts, state_names[i],
		    json_integer((json_int_t)s.counts[i]));
	if (md != NULL) {
		char t_open[32], t_cont[32], t_close[32];

		report_time(s.opened, t_open);
		report_time(s.contained, t_cont);
		report_time(s.closed, t_close);
		fprintf(md,
		    "# Incident %lld\n\n"
		    "- scope: `%s`\n- reason: %s\n- state: %s\n"
		    "- opened: %s\n- contained: %s\n- closed: %s\n"
		    "- new issuer: %s\n\n"
		    "## Blast radius\n\n"
		    "- connections in scope: %zu\n"
		    "- signatures by the keys in scope: %llu. This counts the "
		    "`sign` leaves of the audit record made by the keys in "
		    "scope (the issuing CA key for an issuer scope, the key "
		    "for "
		    "a key scope, otherwise the keys of the connections in "
		    "scope) since the "
		    "incident's `--since` time (all time if none): every "
		    "signature ringfence's token made with them. It does not "
		    "cover signatures made with a copy of a key outside the "
		    "token, nor by a connector's own key (CSR credentials), "
		    "which ringfence never holds.\n"
		    "- OCSP sightings: %zu (%zu of old credentials after "
		    "re-establishment not yet acknowledged)\n\n"
		    "## What pinned tenants must do\n\n"
		    "A pinned relying party (Microsoft Entra ID application "
		    "credentials) checks no revocation: until the old "
		    "certificate is removed there, a stolen key still works. "
		    "Each pinned tenant must register the new certificate and "
		    "remove the old one, with the package's "
		    "`graph-keyCredentials.json` (a PATCH that replaces the "
		    "application's whole keyCredentials collection; "
		    "`graph-keyCredentials-tenant.json` when several "
		    "connections share one application), then confirm. Only "
		    "`incident confirm` or the connector's use of the new "
		    "credential marks them re-established.\n\n"
		    "| state | connections |\n| --- | --- |\n",
		    (long long)s.id, s.scope, s.reason, s.state, t_open, t_cont,
		    t_close, s.new_issuer[0] ? s.new_issuer : "-", s.total,
		    (unsigned long long)s.signatures, s.sightings, s.unacked);
		for (i = 0; i < RF_ITEM_NSTATES; i++)
			fprintf(
			    md, "| %s | %zu |\n", state_names[i], s.counts[i]);
		fprintf(md,
		    "\n## Timeline and actions\n\n"
		    "| time | step | detail |\n| --- | --- | --- |\n");
	}
	a.arr = timeline;
	if ((r = rf_store_incident_event_foreach(
		 c->st, id, report_event, &a)) != 0)
		goto out;
	if (md != NULL)
		fprintf(md,
		    "\n## Connections\n\n"
		    "| tenant | connection | relying party | state | "
		    "old serial | new serial | evidence | updated |\n"
		    "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
	a.arr = conns;
	if ((r = rf_incident_foreach(c, id, 0, report_item, &a)) != 0)
		goto out;
	if (jf != NULL) {
		root = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, "
				 "s:I, s:I, s:O, s:O, s:O}",
		    "id", (json_int_t)s.id, "scope", s.scope, "reason",
		    s.reason, "state", s.state, "opened", (json_int_t)s.opened,
		    "contained", (json_int_t)s.contained, "closed",
		    (json_int_t)s.closed, "new_issuer", s.new_issuer,
		    "connections", (json_int_t)s.total, "signatures",
		    (json_int_t)s.signatures, "counts", counts, "timeline",
		    timeline, "connections_detail", conns);
		if (root == NULL ||
		    json_dumpf(root, jf, JSON_INDENT(2) | JSON_SORT_KEYS) !=
			0) {
			r = RF_ERR_IO;
			goto out;
		}
		fputc('\n', jf);
	}
	r = 0;
out:
	json_decref(root);
	json_decref(timeline);
	json_decref(conns);
	json_decref(counts);
	return r;
}

/* ---- Close ---- */

int
rf_incident_close(const struct rf_incident_ctx *c, int64_t id, size_t *unused,
    size_t *unacked)
{
	struct rf_incident_rec inc;
	struct rf_incident_status s;
	struct item_vec iv = {0};
	char msg[512], left[80], swept[120], seen[160];
	size_t i, open_n, destroyed = 0;
	int r;

	*unused = *unacked = 0;
	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld is already closed", (long long)id);
	if ((r = rf_incident_status(c, id, &s)) != 0)
		return r;
	*unacked = s.unacked;
	/* Each refusal names the next step of the connections it counts. */
	if ((open_n = s.counts[RF_ITEM_AFFECTED]) > 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld has %zu connection%s still affected (no "
		    "new credential yet): run 'ringfence incident contain "
		    "%lld' first (or waive a tenant: 'ringfence incident "
		    "confirm %lld --tenant T --waive')",
		    (long long)id, open_n, open_n == 1 ? "" : "s",
		    (long long)id, (long long)id);
	if ((open_n = s.counts[RF_ITEM_CONTAINED]) > 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld has %zu connection%s contained but not yet "
		    "re-established: once a tenant uses its new credential, "
		    "run 'ringfence incident confirm %lld --tenant T' (or add "
		    "--waive); 'ringfence incident status %lld' lists them",
		    (long long)id, open_n, open_n == 1 ? "" : "s",
		    (long long)id, (long long)id);
	if ((r = rf_incident_load_items(c, id, NULL, NULL, &iv)) != 0)
		goto out;
	/* Destroy what contain has not (old keys, previous, CA), then close. */
	if ((r = rf_incident_retire_keys(c, id, &inc, &iv, &destroyed)) != 0)
		goto out;
	if (destroyed > 0)
		snprintf(left, sizeof(left),
		    "%zu old keys destroyed in the token first", destroyed);
	else
		snprintf(left, sizeof(left),
		    "no old key was left to destroy in the token");
	/* Then the new keys no connection got (a killed contain's). */
	if ((r = rf_incident_unused_keys_destroy(c, id, unused)) != 0)
		goto out;
	swept[0] = '\0';
	if (*unused > 0)
		snprintf(swept, sizeof(swept),
		    "; %zu keys taken or generated for the incident and never "
		    "used destroyed",
		    *unused);
	seen[0] = '\0';
	if (*unacked > 0)
		snprintf(seen, sizeof(seen),
		    "; %zu OCSP sightings of old credentials after "
		    "re-establishment never acknowledged ('incident status' "
		    "lists the newest)",
		    *unacked);
	rf_progress_phase(c->progress, "close connections", iv.n);
	if ((r = rf_store_begin(c->st)) != 0)
		goto out;
	for (i = 0; i < iv.n; i++) {
		if (strcmp(iv.v[i].state, "waived") == 0)
			continue;
		snprintf(iv.v[i].state, sizeof(iv.v[i].state), "closed");
		iv.v[i].updated = rf_now();
		if ((r = rf_store_item_update(c->st, &iv.v[i])) != 0)
			break;
	}
	snprintf(inc.state, sizeof(inc.state), "closed");
	inc.closed = rf_now();
	if (r != 0 || (r = rf_store_incident_update(c->st, &inc)) != 0 ||
	    (r = rf_incident_event(
		 c, id, "close", "closed; %s%s%s", left, swept, seen)) != 0 ||
	    (r = rf_store_commit(c->st)) != 0) {
		rf_store_rollback(c->st);
		goto out;
	}
	rf_progress_add(c->progress, iv.n);
	r = 0;
out:
	if (r != 0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_err_set(r,
		    "%s (incident %lld is not closed; run 'ringfence incident "
		    "close %lld' again once that is fixed)",
		    msg, (long long)id, (long long)id);
	}
	free(iv.v);
	return r;
}
