/*
 * incident.c: open, contain, package, track and close an incident.
 *
 * Containment order, each step restartable (docs/incident.md):
 *   1. issuer scope: a new issuing CA (named issuing-inc<ID>) becomes the
 *      active issuer; the name is derived from the incident, so a rerun
 *      finds it instead of making a second one;
 *   2. every old credential in scope is revoked with keyCompromise (rf_revoke
 *      semantics: durable, OCSP re-signed, CRL regenerated; idempotent);
 *   3. every old key held in the token is disabled (CKA_SIGN false);
 *   4. every connection still "affected" gets a new key in the token and a
 *      new certificate; the connection's state, its new serial and the
 *      certificate commit in ONE transaction (rf_ca_issue_ex's hook), so a
 *      rerun never issues twice and never skips a connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "pool/pool.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "store/store_incident.h"

/*
 * Certificates a reissue batch commits at once (keyd signs the next batch
 * meanwhile): the store pages a commit writes grow slower than the batch
 * (at 36,000 connections, 200 ms for 500 certificates, 600 for 2,000).
 */
#define CONTAIN_BATCH 2000
/*
 * Keys the pool lacks are made in parts of about a second at most, so that
 * progress (and `incident status`) moves while the token works: SoftHSM
 * makes an RSA-2048 key in about 0.2-0.4 s of a core.
 */
#define CONTAIN_GEN_PART_RSA 4
/*
 * Old keys destroyed in one keyd request. Each request of keys another
 * keyd made searches every token once (keys_find_all), so parts are
 * large; SoftHSM's own cost (it rereads a token's folder after each file
 * it removes) is minutes at 36,000 keys, and the parts let it be watched.
 */
#define DESTROY_PART 2048

/*
 * Add the time since *t to the report's phase name (a phase run in parts
 * adds up), and restart *t.
 */
static void
phase_add(struct rf_contain_report *rep, const char *name, double s)
{
	size_t i;

	for (i = 0; i < rep->nphase && strcmp(rep->phase[i].name, name) != 0;
	     i++)
		;
	if (i == RF_CONTAIN_PHASES)
		return;
	if (i == rep->nphase) {
		rep->phase[i].name = name;
		rep->nphase++;
	}
	rep->phase[i].s += s;
}

static void
phase_time(struct rf_contain_report *rep, const char *name, double *t)
{
	double now = rf_mono_s();

	phase_add(rep, name, now - *t);
	*t = now;
}

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

/* One audit leaf for an incident step. */
static int
audit_step(const struct rf_incident_ctx *c, int64_t id, const char *what,
    const char *tenant, const char *ref, const char *detail)
{
	struct rf_audit_event ev;
	char idbuf[32];

	snprintf(idbuf, sizeof(idbuf), "incident-%lld", (long long)id);
	memset(&ev, 0, sizeof(ev));
	ev.type = "incident";
	ev.what = what;
	ev.tenant = tenant;
	ev.ref = ref != NULL ? ref : idbuf;
	ev.detail = detail;
	ev.actor = c->who != NULL ? c->who->actor : NULL;
	ev.source = c->who != NULL ? c->who->source : NULL;
	return rf_audit_append(c->audit, &ev, 1, NULL);
}

static int event(const struct rf_incident_ctx *c, int64_t id, const char *kind,
    const char *fmt, ...) RF_PRINTF(4, 5);

/* A timeline entry (store) and its audit leaf, in the caller's order. */
static int
event(const struct rf_incident_ctx *c, int64_t id, const char *kind,
    const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if ((r = rf_store_incident_event_add(
		 c->st, id, rf_now(), kind, detail)) != 0)
		return r;
	return audit_step(c, id, kind, NULL, NULL, detail);
}

struct event_find {
	const char *kind;
	int found;
};

static int
event_match(void *arg, const struct rf_event_rec *e)
{
	struct event_find *f = arg;

	if (strcmp(e->kind, f->kind) == 0)
		f->found = 1;
	return 0;
}

/* *found = 1 if the incident's timeline has an event of this kind. */
static int
has_event(
    const struct rf_incident_ctx *c, int64_t id, const char *kind, int *found)
{
	struct event_find f = {kind, 0};
	int r;

	*found = 0;
	if ((r = rf_store_incident_event_foreach(c->st, id, event_match, &f)) !=
	    0)
		return r;
	*found = f.found;
	return 0;
}

void
rf_incident_task(int64_t id, const char *cmd, char out[96])
{
	snprintf(out, 96, "incident %lld %s", (long long)id, cmd);
}

int
rf_incident_progress_sink(void *arg, const struct rf_progress_state *s)
{
	struct rf_progress_rec p;

	memset(&p, 0, sizeof(p));
	snprintf(p.task, sizeof(p.task), "%s", s->task);
	snprintf(p.phase, sizeof(p.phase), "%s", s->phase);
	p.done = s->done;
	p.total = s->total;
	p.started_ms = s->started_ms;
	p.updated_ms = s->updated_ms;
	p.pid = (int64_t)getpid();
	p.finished = s->finished;
	return rf_store_progress_put(arg, &p);
}

/* ---- Scope ---- */

struct scope {
	struct rf_conn_filter f;
	char kind[16];
	char value[160];
	char tenant[128], name[64];
};

static int
scope_parse(const struct rf_incident_ctx *c, const char *text, struct scope *s)
{
	const char *colon, *slash;
	struct rf_tenant t;
	struct rf_ca_rec ca;
	int r;

	memset(s, 0, sizeof(*s));
	if (strcmp(text, "all") == 0) {
		snprintf(s->kind, sizeof(s->kind), "all");
		return 0;
	}
	if ((colon = strchr(text, ':')) == NULL ||
	    (size_t)(colon - text) >= sizeof(s->kind) ||
	    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(s->value))
		goto bad;
	memcpy(s->kind, text, (size_t)(colon - text));
	snprintf(s->value, sizeof(s->value), "%s", colon + 1);
	if (strcmp(s->kind, "tenant") == 0) {
		if ((r = rf_store_tenant_get(c->st, s->value, &t)) != 0)
			return r == RF_ERR_NOT_FOUND
			    ? rf_err_set(RF_ERR_NOT_FOUND, "unknown tenant %s",
				  s->value)
			    : r;
		s->f.tenant = s->value;
	} else if (strcmp(s->kind, "connection") == 0) {
		if ((slash = strchr(s->value, '/')) == NULL ||
		    slash == s->value || slash[1] == '\0' ||
		    (size_t)(slash - s->value) >= sizeof(s->tenant) ||
		    strlen(slash + 1) >= sizeof(s->name))
			return rf_err_set(RF_ERR_ARG,
			    "connection scope is connection:TENANT/NAME, not "
			    "'%s'",
			    text);
		memcpy(s->tenant, s->value, (size_t)(slash - s->value));
		snprintf(s->name, sizeof(s->name), "%s", slash + 1);
		s->f.tenant = s->tenant;
		s->f.name = s->name;
	} else if (strcmp(s->kind, "key") == 0) {
		if (strlen(s->value) != 64 ||
		    strspn(s->value, "0123456789abcdef") != 64)
			return rf_err_set(RF_ERR_ARG,
			    "key scope is key:ID with the 64 lowercase hex "
			    "digits of the key id");
		s->f.key_id = s->value;
	} else if (strcmp(s->kind, "issuer") == 0) {
		memset(&ca, 0, sizeof(ca));
		if ((r = rf_store_ca_get(c->st, s->value, &ca)) != 0)
			return r == RF_ERR_NOT_FOUND
			    ? rf_err_set(RF_ERR_NOT_FOUND, "unknown issuer %s",
				  s->value)
			    : r;
		rf_ca_rec_clear(&ca);
		s->f.issuer = s->value;
	} else {
		goto bad;
	}
	return 0;
bad:
	return rf_err_set(RF_ERR_ARG,
	    "unknown scope '%s': use tenant:T, connection:T/NAME, key:ID, "
	    "issuer:CA or all",
	    text);
}

/* ---- Open ---- */

static int collect_item(void *arg, const struct rf_item_rec *it);

/*
 * Tell the custody process's ledger (docs/keys.md, "What the policy
 * trusts") that items of v (those in state only, or all) are affected, or
 * no longer: keyd signs no assertion for a connection its ledger says
 * affected, whatever the store says. Affected before the store commits
 * them; no longer affected once nothing old can sign (contain) or the
 * operator waived them, before the store says so. sel (NULL: all) picks
 * items of v; changed (NULL, or n flags) says which notes moved an item's
 * state, so that an open that fails undoes only its own.
 */
static int
note_items(const struct rf_incident_ctx *c, int affected,
    const struct rf_item_rec *v, size_t n, const char *only, const uint8_t *sel,
    uint8_t *changed)
{
	struct rf_knote_item *k;
	uint8_t *kch;
	size_t *at, i, m = 0;
	int r;

	if (changed != NULL)
		memset(changed, 0, n);
	if (n == 0 || c->keys == NULL)
		return 0;
	k = calloc(n, sizeof(*k));
	kch = calloc(n, 1);
	at = calloc(n, sizeof(*at));
	if (k == NULL || kch == NULL || at == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((only != NULL && strcmp(v[i].state, only) != 0) ||
		    (sel != NULL && !sel[i]))
			continue;
		k[m].tenant = v[i].tenant;
		k[m].conn = v[i].name;
		k[m].key = v[i].old_key;
		at[m++] = i;
	}
	r = rf_keys_note_items(c->keys, affected, k, m, kch);
	for (i = 0; changed != NULL && i < m; i++)
		changed[at[i]] = kch[i];
out:
	free(k);
	free(kch);
	free(at);
	return r;
}

struct open_acc {
	const struct rf_incident_ctx *c;
	int64_t id;
	size_t n;
	size_t skipped; /* connections left to another open incident */
	int64_t other;	/* the first such incident */
	int64_t since;
	uint64_t signatures;
	/* The items' keys, sorted: when set, only their signatures count
	 * (a tenant's leaves also hold the issuing CA's, for its
	 * certificates). */
	char (*keys)[65];
	size_t nkeys, capkeys;
	int only_keys;
	const char *scope;    /* as given, for previous_in_scope */
	struct item_vec cand; /* noted to keyd's ledger before the store */
	uint8_t *moved;	      /* per candidate: the note changed its state */
};

/* "TENANT CONN KEY" of an item, for the candidates' order. */
static void
item_name(const struct rf_item_rec *it, char out[260])
{
	snprintf(
	    out, 260, "%.127s %.63s %.64s", it->tenant, it->name, it->old_key);
}

static int
cand_cmp(const void *a, const void *b)
{
	char x[260], y[260];

	item_name(a, x);
	item_name(b, y);
	return strcmp(x, y);
}

/*
 * The item conn would be in this incident, with the credential it has now
 * (cur); *other: the incident that holds it uncontained (0: none). A
 * connection belongs to at most one incident that has not contained it
 * yet: two incidents issuing for one connection would leave it two valid
 * credentials. One that another incident has contained joins with its new
 * credential: this incident builds on that one's result.
 */
static int
item_of(const struct open_acc *a, const struct rf_conn_rec *conn,
    const struct rf_cert_rec *cur, struct rf_item_rec *it, int64_t *other)
{
	int r;

	if ((r = rf_store_item_other_open(a->c->st, conn->id, a->id, other)) !=
	    RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	*other = 0;
	memset(it, 0, sizeof(*it));
	it->incident = a->id;
	it->conn = conn->id;
	snprintf(it->tenant, sizeof(it->tenant), "%s", conn->tenant);
	snprintf(it->name, sizeof(it->name), "%s", conn->name);
	snprintf(it->rp, sizeof(it->rp), "%s", conn->rp);
	snprintf(it->old_serial, sizeof(it->old_serial), "%s", cur->serial);
	snprintf(it->old_key, sizeof(it->old_key), "%s", cur->key_id);
	/* Recorded now: after the reissue the connection forgets it. */
	if (strcmp(conn->previous, cur->serial) != 0)
		snprintf(it->prev_serial, sizeof(it->prev_serial), "%s",
		    conn->previous);
	snprintf(it->state, sizeof(it->state), "affected");
	it->updated = rf_now();
	return 0;
}

/*
 * Before the open's transaction (a->id is 0 yet): the connections of the
 * scope that no other incident holds uncontained, with the key each
 * credential has now. They are told to keyd's ledger first, outside any
 * store transaction (keyd writes the record, and a transaction held while
 * waiting for keyd would hold keyd up); open_item then admits only these.
 */
static int
open_candidate(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	struct open_acc *a = arg;
	struct rf_item_rec it;
	int64_t other;
	int r;

	if (!rf_knote_item_ok(conn->tenant, conn->name, cur->key_id))
		return 0; /* not a name ringfence makes (open_item skips it) */
	if ((r = item_of(a, conn, cur, &it, &other)) != 0 || other != 0)
		return r;
	return collect_item(&a->cand, &it);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
count_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct open_acc *a = arg;

	if (l->type == NULL || strcmp(l->type, "sign") != 0)
		return 0;
	if (a->only_keys &&
	    (l->key_id == NULL || a->nkeys == 0 ||
		bsearch(l->key_id, a->keys, a->nkeys, sizeof(a->keys[0]),
		    key_cmp) == NULL))
		return 0;
	a->signatures++;
	return 0;
}

/* An item's key, for count_leaf. */
static int
keep_key(struct open_acc *a, const char *key_id)
{
	if (a->nkeys == a->capkeys) {
		size_t cap = a->capkeys ? 2 * a->capkeys : 64;
		char(*k)[65] = reallocarray(a->keys, cap, sizeof(*k));

		if (k == NULL)
			return RF_ERR_ALLOC;
		a->keys = k;
		a->capkeys = cap;
	}
	snprintf(a->keys[a->nkeys++], sizeof(a->keys[0]), "%s", key_id);
	return 0;
}

static int previous_in_scope(const struct rf_incident_ctx *c, const char *scope,
    const struct rf_item_rec *it, char serial[41], char key[65]);

static int
open_item(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	struct open_acc *a = arg;
	struct rf_item_rec it;
	char prev[41], pkey[65];
	int64_t other;
	int r;

	if ((r = item_of(a, conn, cur, &it, &other)) != 0)
		return r;
	if (other != 0) {
		if (a->skipped++ == 0)
			a->other = other;
		return 0;
	}
	if (a->c->keys != NULL &&
	    !rf_knote_item_ok(it.tenant, it.name, it.old_key))
		return 0; /* a row no ringfence command writes */
	if (a->c->keys != NULL &&
	    (a->cand.n == 0 ||
		bsearch(&it, a->cand.v, a->cand.n, sizeof(it), cand_cmp) ==
		    NULL))
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s got a new credential while the incident "
		    "opened: run 'ringfence incident open' again",
		    it.tenant, it.name);
	/* The keys contain takes out of service: the credential's, and a
	 * still-valid previous credential's. */
	if ((r = rf_store_item_add(a->c->st, &it)) != 0 ||
	    (r = keep_key(a, it.old_key)) != 0 ||
	    (r = previous_in_scope(a->c, a->scope, &it, prev, pkey)) != 0 ||
	    (pkey[0] != '\0' && (r = keep_key(a, pkey)) != 0))
		return r;
	a->n++;
	return 0;
}

int
rf_incident_open(const struct rf_incident_ctx *c, const char *scope_text,
    const char *reason, int64_t since, int64_t *id)
{
	struct rf_incident_rec inc;
	struct open_acc acc;
	struct scope s;
	int r = RF_ERR_INTERNAL, in_tx = 0, noted = 0;

	*id = 0;
	if (reason == NULL || *reason == '\0')
		return rf_err_set(
		    RF_ERR_ARG, "an incident needs --reason TEXT");
	if ((r = scope_parse(c, scope_text, &s)) != 0)
		return r;
	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "%s", scope_text);
	snprintf(inc.reason, sizeof(inc.reason), "%s", reason);
	snprintf(inc.state, sizeof(inc.state), "open");
	inc.opened = rf_now();
	inc.since = since;
	memset(&acc, 0, sizeof(acc));
	acc.c = c;
	acc.since = since;
	acc.scope = scope_text;

	/* keyd's ledger first: from here keyd signs nothing for them. */
	if (c->keys != NULL) {
		if ((r = rf_store_conn_foreach(
			 c->st, &s.f, open_candidate, &acc)) != 0)
			goto out;
		if (acc.cand.n > 1)
			qsort(acc.cand.v, acc.cand.n, sizeof(*acc.cand.v),
			    cand_cmp);
		if ((acc.moved = calloc(acc.cand.n + 1, 1)) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		/* Undone on failure, all of them if the note itself failed
		 * (some may have been kept unanswered). */
		noted = 2;
		if ((r = note_items(c, 1, acc.cand.v, acc.cand.n, NULL, NULL,
			 acc.moved)) != 0)
			goto out;
		noted = 1;
	}
	if ((r = rf_store_begin(c->st)) != 0)
		goto out;
	in_tx = 1;
	if ((r = rf_store_incident_add(c->st, &inc)) != 0) {
		if (r == RF_ERR_EXISTS)
			r = rf_err_set(RF_ERR_EXISTS,
			    "incident %lld is already open on scope %s: "
			    "contain or close it first",
			    (long long)inc.id, scope_text);
		goto out;
	}
	acc.id = inc.id;
	if ((r = rf_store_conn_foreach(c->st, &s.f, open_item, &acc)) != 0)
		goto out;
	if (acc.n == 0 && acc.skipped > 0) {
		r = rf_err_set(RF_ERR_STATE,
		    "every connection of scope %s is already in incident "
		    "%lld, which has not contained it yet: run 'ringfence "
		    "incident contain %lld' first, then open this one to build "
		    "on its result",
		    scope_text, (long long)acc.other, (long long)acc.other);
		goto out;
	}
	if (acc.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "scope %s matches no connection with a credential",
		    scope_text);
		goto out;
	}
	/*
	 * Blast radius in the record: the signatures of the key in scope
	 * (issuer scope: the issuing key; key scope: that key; otherwise
	 * the connection keys in scope, found by tenant).
	 */
	if (strcmp(s.kind, "issuer") == 0) {
		struct rf_ca_rec ca;

		memset(&ca, 0, sizeof(ca));
		if ((r = rf_store_ca_get(c->st, s.value, &ca)) != 0)
			goto out;
		r = rf_store_leaf_search(
		    c->st, ca.key_id, NULL, since, 0, 0, count_leaf, &acc);
		rf_ca_rec_clear(&ca);
	} else if (strcmp(s.kind, "key") == 0) {
		r = rf_store_leaf_search(
		    c->st, s.value, NULL, since, 0, 0, count_leaf, &acc);
	} else {
		qsort(acc.keys, acc.nkeys, sizeof(acc.keys[0]), key_cmp);
		acc.only_keys = 1;
		r = rf_store_leaf_search(
		    c->st, NULL, s.f.tenant, since, 0, 0, count_leaf, &acc);
	}
	if (r != 0)
		goto out;
	inc.id = acc.id;
	inc.signatures = acc.signatures;
	if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
	    (r = event(c, inc.id, "open",
		 "scope %s: %zu connections, %llu signatures in the record%s; "
		 "reason: %s",
		 scope_text, acc.n, (unsigned long long)acc.signatures,
		 acc.skipped > 0 ? " (others left to an incident that has not "
				   "contained them yet)"
				 : "",
		 reason)) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	noted = 0;
	*id = inc.id;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	/* Not opened: the ledger need not refuse them (best effort; refused
	 * rather than trusted if this fails too). The open's error stays. */
	if (noted) {
		struct rf_err_held held;

		rf_err_keep(&held, r);
		if (note_items(c, 0, acc.cand.v, acc.cand.n, NULL,
			noted == 1 ? acc.moved : NULL, NULL) != 0)
			rf_err_clear();
		r = rf_err_kept(&held);
	}
	free(acc.cand.v);
	free(acc.moved);
	free(acc.keys);
	return r;
}

/* ---- Contain ---- */

static int
collect_item(void *arg, const struct rf_item_rec *it)
{
	struct item_vec *iv = arg;
	struct rf_item_rec *nv;
	size_t cap;

	if (iv->n == iv->cap) {
		cap = iv->cap ? iv->cap * 2 : 64;
		if ((nv = reallocarray(iv->v, cap, sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		iv->v = nv;
		iv->cap = cap;
	}
	iv->v[iv->n++] = *it;
	return 0;
}

int
rf_incident_load_items(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *state, struct item_vec *iv)
{
	memset(iv, 0, sizeof(*iv));
	return rf_store_item_foreach(
	    c->st, id, tenant, state, collect_item, iv);
}

int
rf_incident_load(
    const struct rf_incident_ctx *c, int64_t id, struct rf_incident_rec *inc)
{
	int r;

	if ((r = rf_store_incident_get(c->st, id, inc)) == RF_ERR_NOT_FOUND)
		return rf_err_set(r,
		    "no incident %lld: see 'ringfence incident list'",
		    (long long)id);
	return r;
}

/*
 * Step 1b, issuer scope: the compromised issuing CA's own certificate is
 * revoked (cACompromise) in the root's CRL, the one its CRL distribution
 * point names, so that nothing it signed validates where revocation is
 * checked, including certificates made with its key outside ringfence. The
 * CA certificate joins the certificate table (issuer root, no tenant,
 * profile "ca") and is revoked like any other. Idempotent.
 */
static int
contain_revoke_ca(const struct rf_incident_ctx *c, int64_t id, const char *name)
{
	struct rf_ca_rec ca;
	struct rf_cert_rec cr;
	const uint8_t *p;
	const char *serial[1];
	X509 *x = NULL;
	size_t changed = 0;
	int r;

	memset(&ca, 0, sizeof(ca));
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_ca_get(c->st, name, &ca)) != 0)
		return r;
	if (strcmp(ca.parent, "root") != 0) {
		r = 0; /* not issued by our root: nothing of ours to revoke */
		goto out;
	}
	if ((r = rf_store_cert_get(c->st, ca.serial, &cr)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		memset(&cr, 0, sizeof(cr));
		p = ca.der;
		if ((x = d2i_X509(NULL, &p, (long)ca.derlen)) == NULL) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "stored certificate of CA %s does not parse", name);
			goto out;
		}
		snprintf(cr.serial, sizeof(cr.serial), "%s", ca.serial);
		snprintf(cr.issuer, sizeof(cr.issuer), "root");
		snprintf(cr.profile, sizeof(cr.profile), "ca");
		snprintf(cr.key_id, sizeof(cr.key_id), "%s", ca.key_id);
		X509_NAME_oneline(
		    X509_get_subject_name(x), cr.subject, sizeof(cr.subject));
		rf_ca_thumbprints(ca.der, ca.derlen, cr.x5t, cr.x5t256);
		cr.not_before = ca.not_before;
		cr.not_after = ca.not_after;
		cr.issued = ca.not_before;
		cr.reason = -1;
		cr.der = ca.der;
		cr.derlen = ca.derlen;
		r = rf_store_cert_add(c->st, &cr);
		cr.der = NULL; /* borrowed from ca */
		if (r != 0)
			goto out;
	} else if (r != 0) {
		goto out;
	}
	serial[0] = ca.serial;
	if ((r = rf_revoke_serials(c->cfg, c->st, c->keys, c->ca, c->audit,
		 serial, 1, RF_CRL_REASON_CA_COMPROMISE, c->who, &changed)) !=
	    0)
		goto out;
	if (changed > 0)
		r = event(c, id, "revoke-ca",
		    "issuing CA %s (serial %s) revoked (cACompromise) in the "
		    "root CRL",
		    name, ca.serial);
out:
	X509_free(x);
	rf_cert_rec_clear(&cr);
	rf_ca_rec_clear(&ca);
	return r;
}

/*
 * Step 1c, issuer scope: serve's HTTPS certificate (CA record "tls", in the
 * certificate table like any other) is revoked (cACompromise) when the
 * compromised CA issued it, and a new one (a new key, the same names) is
 * issued by the new issuing CA, which a running serve takes within a
 * second; serial receives the revoked one, "" when there was none.
 * Idempotent.
 */
static int
contain_replace_tls(const struct rf_incident_ctx *c, int64_t id,
    const char *name, char serial[41])
{
	struct rf_ca_rec tls;
	const char *s[1];
	size_t changed = 0;
	int r, made = 0;

	serial[0] = '\0';
	memset(&tls, 0, sizeof(tls));
	if ((r = rf_store_ca_get(c->st, "tls", &tls)) == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0; /* serve never ran: nothing to revoke */
	}
	if (r != 0)
		return r;
	if (strcmp(tls.parent, name) != 0)
		goto out;
	s[0] = tls.serial;
	if ((r = rf_revoke_serials(c->cfg, c->st, c->keys, c->ca, c->audit, s,
		 1, RF_CRL_REASON_CA_COMPROMISE, c->who, &changed)) != 0)
		goto out;
	snprintf(serial, 41, "%s", tls.serial);
	if (changed > 0 &&
	    (r = event(c, id, "revoke-tls",
		 "serve's HTTPS certificate %s, issued by %s, revoked "
		 "(cACompromise)",
		 tls.serial, name)) != 0)
		goto out;
	if ((r = rf_ca_tls_renew(c->ca, c->who, &made)) == 0 && made)
		r = event(c, id, "renew-tls",
		    "serve's HTTPS certificate %s replaced by one of %s",
		    tls.serial, rf_ca_issuer_name(c->ca));
out:
	rf_ca_rec_clear(&tls);
	return r;
}

/*
 * A connection's previous credential (recorded when the incident opened) is
 * in scope too: for a tenant, connection or all scope (the connection is
 * compromised, whatever key it used before), and for an issuer scope when
 * the same issuer signed it. A key scope reaches other certificates of the
 * key through keyCompromise. Revoked or not: a rerun must publish (re-sign
 * OCSP for) what an interrupted run committed. *serial is "" when there is
 * none; *key (may be NULL) receives its key id.
 */
static int
previous_in_scope(const struct rf_incident_ctx *c, const char *scope,
    const struct rf_item_rec *it, char serial[41], char key[65])
{
	struct rf_cert_rec cr;
	int r;

	serial[0] = '\0';
	if (key != NULL)
		key[0] = '\0';
	if (strncmp(scope, "key:", 4) == 0 || it->prev_serial[0] == '\0' ||
	    strcmp(it->prev_serial, it->old_serial) == 0 ||
	    strcmp(it->prev_serial, it->new_serial) == 0)
		return 0;
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(c->st, it->prev_serial, &cr)) != 0)
		return r == RF_ERR_NOT_FOUND ? (rf_err_clear(), 0) : r;
	if (cr.not_after > rf_now() &&
	    (strncmp(scope, "issuer:", 7) != 0 ||
		strcmp(cr.issuer, scope + 7) == 0)) {
		snprintf(serial, 41, "%s", it->prev_serial);
		if (key != NULL)
			snprintf(key, 65, "%s", cr.key_id);
	}
	rf_cert_rec_clear(&cr);
	return 0;
}

/*
 * Step 2: revoke every old credential, and every still-valid previous one
 * in scope (idempotent).
 */
/*
 * The revocation of an incident's credentials (and their previous ones
 * in scope), in two halves: contain_revoke_begin commits it and starts
 * the OCSP responses' signatures; contain_revoke_end, once the new keys
 * are taken, stores them and the CRLs and records "published". Until
 * then a rerun revokes (nothing changes) and publishes again.
 */
struct contain_rev {
	const char **serials;
	char (*prev)[41];
	size_t n, nprev, changed;
	struct rf_revoke_pub *pub;
	int pending; /* begun, not yet published */
	/* The old keys are disabled once it is published (an issuing CA's
	 * own keys sign its CRL and OCSP responses until then). */
	const struct rf_incident_rec *inc;
	const struct item_vec *all;
	int disabled;
};

static void
contain_rev_clear(struct contain_rev *rv)
{
	rf_revoke_pub_free(rv->pub);
	free(rv->prev);
	free(rv->serials);
	memset(rv, 0, sizeof(*rv));
}

static int
contain_revoke_begin(const struct rf_incident_ctx *c, const char *scope,
    const struct item_vec *iv, struct rf_contain_report *rep,
    struct contain_rev *rv)
{
	struct rf_revoke_times tm;
	size_t i;
	double t0 = rf_mono_s();
	int r;

	memset(rv, 0, sizeof(*rv));
	if (iv->n == 0)
		return 0;
	if ((rv->serials = calloc(2 * iv->n, sizeof(*rv->serials))) == NULL ||
	    (rv->prev = calloc(iv->n, sizeof(*rv->prev))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < iv->n; i++) {
		rv->serials[rv->n++] = iv->v[i].old_serial;
		if ((r = previous_in_scope(
			 c, scope, &iv->v[i], rv->prev[i], NULL)) != 0)
			return r;
		if (rv->prev[i][0] != '\0') {
			rv->serials[rv->n++] = rv->prev[i];
			rv->nprev++;
		}
	}
	/*
	 * Committed revocations are counted even when publishing them
	 * fails afterwards, so that the error says how many are committed;
	 * the rerun publishes them (every serial is re-signed, revoked or
	 * not, until the "published" event is recorded).
	 */
	phase_time(rep, "revoke: previous credentials", &t0);
	r = rf_revoke_serials_begin(c->cfg, c->st, c->keys, c->ca, c->audit,
	    rv->serials, rv->n, RF_CRL_REASON_KEY_COMPROMISE, c->who,
	    &rv->changed, &tm, &rv->pub);
	rep->revoked = rv->changed;
	phase_add(rep, "revoke: commit", tm.commit_s);
	phase_add(rep, "revoke: prepare OCSP", rf_mono_s() - t0 - tm.commit_s);
	if (r == 0)
		rv->pending = 1;
	return r;
}

static int
contain_revoke_end(const struct rf_incident_ctx *c, int64_t id,
    struct rf_contain_report *rep, struct contain_rev *rv)
{
	struct rf_revoke_times tm;
	struct rf_revoke_pub *pub = rv->pub;
	size_t i;
	double t0;
	int r;

	if (!rv->pending)
		return 0;
	rv->pending = 0;
	rv->pub = NULL;
	r = rf_revoke_publish(pub, &tm);
	phase_add(rep, "revoke: re-sign OCSP", tm.ocsp_s);
	phase_add(rep, "revoke: CRLs", tm.crl_s);
	t0 = rf_mono_s();
	if (r != 0)
		return r;
	/* Their keys are on the compromised-key list from the revocation's
	 * own transaction; name this incident on each entry (docs/ca.md). */
	if ((r = rf_store_begin(c->st)) != 0)
		return r;
	for (i = 0; i < rv->n && r == 0; i++)
		if ((r = rf_store_key_compromised_add(c->st, rv->serials[i], id,
			 rf_now())) == RF_ERR_NOT_FOUND) {
			rf_err_clear();
			r = 0;
		}
	if (r == 0)
		r = rf_store_commit(c->st);
	else
		rf_store_rollback(c->st);
	phase_time(rep, "revoke: compromised-key list", &t0);
	if (r != 0)
		return r;
	return event(c, id, "published",
	    "%zu credentials revoked now, %zu in scope in all "
	    "(keyCompromise; %zu of them previous credentials); OCSP "
	    "responses re-signed and CRLs regenerated for all of them",
	    rv->changed, rv->n, rv->nprev);
}

static int
token_keys(const struct rf_incident_ctx *c, const char *const *ids, size_t n,
    const char *skip, const char ***out, size_t *nout)
{
	struct rf_key_rec kr;
	const char **v;
	size_t i;
	int r;

	*out = NULL;
	*nout = 0;
	if ((v = calloc(n > 0 ? n : 1, sizeof(*v))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++) {
		if ((r = rf_store_key_get(c->st, ids[i], &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			continue;
		}
		if (r != 0) {
			free(v);
			return r;
		}
		if (strcmp(kr.state, skip) == 0 ||
		    strcmp(kr.state, "destroyed") == 0)
			continue;
		v[(*nout)++] = ids[i];
	}
	*out = v;
	return 0;
}

/* Record the new state of keys in one transaction. */
static int
set_key_states(const struct rf_incident_ctx *c, const char *const *ids,
    size_t n, const char *state)
{
	size_t i;
	int r;

	if (n == 0)
		return 0;
	if ((r = rf_store_begin(c->st)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if ((r = rf_store_key_set_state(c->st, ids[i], state)) != 0) {
			rf_store_rollback(c->st);
			return r;
		}
	}
	return rf_store_commit(c->st);
}

/*
 * The keys an incident takes out of service: every old credential's key,
 * every previous credential's key in scope, and for an issuer scope the
 * compromised issuing CA's key. ids points into iv and into kv, which the
 * caller frees (with ids).
 */
struct old_keys {
	const char **ids;
	char (*kv)[65];
	size_t n;
};

static void
old_keys_clear(struct old_keys *ok)
{
	free(ok->ids);
	free(ok->kv);
	memset(ok, 0, sizeof(*ok));
}

static int
old_keys_get(const struct rf_incident_ctx *c, const struct rf_incident_rec *inc,
    const struct item_vec *iv, struct old_keys *ok)
{
	struct rf_ca_rec ca;
	char serial[41];
	size_t i, k = 0;
	int r = RF_ERR_INTERNAL;

	memset(ok, 0, sizeof(*ok));
	memset(&ca, 0, sizeof(ca));
	if ((ok->ids = calloc(2 * iv->n + 1, sizeof(*ok->ids))) == NULL ||
	    (ok->kv = calloc(iv->n + 1, sizeof(*ok->kv))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < iv->n; i++) {
		ok->ids[ok->n++] = iv->v[i].old_key;
		if ((r = previous_in_scope(
			 c, inc->scope, &iv->v[i], serial, ok->kv[k])) != 0)
			goto out;
		if (ok->kv[k][0] != '\0' &&
		    strcmp(ok->kv[k], iv->v[i].old_key) != 0)
			ok->ids[ok->n++] = ok->kv[k++];
	}
	if (strncmp(inc->scope, "issuer:", 7) == 0) {
		if ((r = rf_store_ca_get(c->st, inc->scope + 7, &ca)) != 0)
			goto out;
		snprintf(ok->kv[k], sizeof(ok->kv[k]), "%s", ca.key_id);
		ok->ids[ok->n++] = ok->kv[k++];
	}
	r = 0;
out:
	rf_ca_rec_clear(&ca);
	if (r != 0)
		old_keys_clear(ok);
	return r;
}

/* Step 3: disable every old key held in the token, in one pass. */
static int
contain_disable(const struct rf_incident_ctx *c, int64_t id,
    const struct rf_incident_rec *inc, const struct item_vec *iv,
    struct rf_contain_report *rep)
{
	struct old_keys ok;
	const char **mine = NULL;
	size_t nmine = 0, done = 0;
	int r;

	if ((r = old_keys_get(c, inc, iv, &ok)) != 0)
		return r;
	if ((r = token_keys(c, ok.ids, ok.n, "disabled", &mine, &nmine)) != 0 ||
	    (r = rf_keys_disable_many(c->keys, mine, nmine, c->who, &done)) !=
		0 ||
	    (r = set_key_states(c, mine, nmine, "disabled")) != 0)
		goto out;
	rep->disabled = nmine;
	if (nmine > 0)
		r = event(
		    c, id, "disable", "%zu keys disabled in the token", nmine);
out:
	old_keys_clear(&ok);
	free(mine);
	return r;
}

/*
 * Take the old keys out of service for good: destroy them in the token,
 * once every successor is committed (a new credential for every
 * connection, the new issuing CA). The intent is an event and a leaf
 * before the act, the result one after it; a run killed in between
 * repeats the act, which skips keys already gone.
 */
/*
 * Steps 2 and 3 finished, once: the revocation published (its OCSP
 * responses were signed meanwhile), then the old keys disabled.
 */
static int
contain_publish_disable(const struct rf_incident_ctx *c, int64_t id,
    struct contain_rev *rv, struct rf_contain_report *rep)
{
	double t;
	int r;

	if (rv->disabled)
		return 0;
	if ((r = contain_revoke_end(c, id, rep, rv)) != 0)
		return r;
	t = rf_mono_s();
	rf_progress_phase(c->progress, "disable old keys", 0);
	if ((r = contain_disable(c, id, rv->inc, rv->all, rep)) != 0)
		return r;
	phase_time(rep, "disable old keys", &t);
	rv->disabled = 1;
	return 0;
}

static int
retire_keys(const struct rf_incident_ctx *c, int64_t id,
    const struct rf_incident_rec *inc, const struct item_vec *iv,
    size_t *destroyed)
{
	struct old_keys ok;
	const char **mine = NULL;
	struct rf_err_held first;
	size_t nmine = 0, done = 0, failed = 0, part, i, k;
	int r;

	*destroyed = 0;
	if ((r = old_keys_get(c, inc, iv, &ok)) != 0)
		return r;
	if ((r = token_keys(c, ok.ids, ok.n, "destroyed", &mine, &nmine)) != 0)
		goto out;
	if (nmine == 0) {
		r = 0;
		goto out;
	}
	/* A phase with its count: status shows what is left to destroy. */
	rf_progress_phase(c->progress, "destroy old keys", nmine);
	if ((r = event(c, id, "destroy-intent",
		 "%zu old keys to destroy in the token: their successors are "
		 "committed",
		 nmine)) != 0)
		goto out;
	rf_test_point("incident-destroy");
	/*
	 * In parts, each recorded when done: progress moves (SoftHSM takes
	 * minutes for 36,000), and a rerun after a kill has less to do. A
	 * part that fails (a key whose token object is not the store's says
	 * so, and is left whole) does not stop the others: every key that
	 * can go goes, then the first failure is the result.
	 */
	memset(&first, 0, sizeof(first));
	for (i = 0; i < nmine; i += k) {
		k = nmine - i < DESTROY_PART ? nmine - i : DESTROY_PART;
		part = 0;
		if ((r = rf_keys_destroy_many(
			 c->keys, &mine[i], k, c->who, &part)) == 0)
			r = set_key_states(c, &mine[i], k, "destroyed");
		if (r != 0) {
			if (first.r == 0)
				rf_err_keep(&first, r);
			else
				rf_err_clear();
			failed += k;
		}
		done += part;
		rf_progress_add(c->progress, k);
	}
	if (first.r != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", first.msg);
		r = rf_err_set(first.r,
		    "%s (%zu of %zu old keys destroyed; parts holding %zu "
		    "keys failed: see 'ringfence keys list', then run this "
		    "again)",
		    msg, nmine - failed, nmine, failed);
		goto out;
	}
	*destroyed = nmine;
	r = event(c, id, "destroyed",
	    "%zu old keys destroyed in the token (%zu found there)", nmine,
	    done);
out:
	old_keys_clear(&ok);
	free(mine);
	return r;
}

/* Inside the issuance transaction: the connection moves with its cert. */
struct issue_hook {
	const struct rf_incident_ctx *c;
	struct rf_item_rec *items;
};

static int
issued_in_tx(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct issue_hook *h = arg;
	struct rf_item_rec *it = &h->items[i];
	struct rf_conn_rec conn;
	int r;

	(void)key_id;
	snprintf(it->new_serial, sizeof(it->new_serial), "%s", serial);
	snprintf(it->state, sizeof(it->state), "contained");
	it->updated = rf_now();
	/*
	 * In the issuing transaction, and only from "affected": if another
	 * contain of the same incident got there first, this batch rolls
	 * back (its keys are destroyed) rather than give the connection a
	 * second credential.
	 */
	r = rf_store_item_move(h->c->st, it, "affected");
	if (r == RF_ERR_STATE)
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s of incident %lld was contained by "
		    "another run at the same time: run contain again to "
		    "resume",
		    it->tenant, it->name, (long long)it->incident);
	if (r != 0)
		return r;
	/* The connection still has the credential this incident replaces. */
	if ((r = rf_store_conn_get(h->c->st, it->tenant, it->name, &conn)) != 0)
		return r;
	if (strcmp(conn.serial, it->old_serial) != 0)
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s got credential %s from elsewhere while "
		    "incident %lld contained it: see 'ringfence incident list'",
		    it->tenant, it->name, conn.serial, (long long)it->incident);
	return rf_store_conn_set(
	    h->c->st, it->tenant, it->name, NULL, serial, it->updated, NULL);
}

/* After each committed batch of the reissue: the count and progress. */
struct issue_done {
	const struct rf_incident_ctx *c;
	struct rf_contain_report *rep;
};

static void
issue_done(void *arg, size_t from, size_t k)
{
	struct issue_done *d = arg;

	(void)from;
	d->rep->issued += k;
	if (d->c->progress != NULL)
		rf_progress_add(d->c->progress, k);
}

/*
 * What the replacement of the old credential keeps: its profile, its key
 * algorithm and size (read from the certificate, so that a connector's own
 * RSA-2048 key from a CSR is replaced by an RSA-2048 key: Entra ID takes
 * RSA only), and its subjectAltName DNS name.
 */
struct shape {
	enum rf_profile profile;
	enum rf_key_alg alg;
	char dns[256]; /* "" none */
};

static int
credential_shape(
    const struct rf_incident_ctx *c, const char *serial, struct shape *sh)
{
	struct rf_cert_rec old;
	struct rf_key_rec kr;
	GENERAL_NAMES *gens = NULL;
	const uint8_t *p;
	X509 *x = NULL;
	EVP_PKEY *pub;
	char curve[64];
	int r, i;

	memset(sh, 0, sizeof(*sh));
	memset(&old, 0, sizeof(old));
	if ((r = rf_store_cert_get(c->st, serial, &old)) != 0)
		return r;
	if (rf_profile_parse(old.profile, &sh->profile) != 0) {
		rf_err_clear();
		sh->profile = RF_PROFILE_CLIENT;
	}
	/*
	 * A key made in the token has a record naming its algorithm, under
	 * the SHA-256 of the SPKI the certificate holds: no need to decode
	 * the certificate (OpenSSL decodes its public key too, 0.2 ms) unless
	 * a server certificate's name is wanted, or the key is not ours.
	 */
	memset(&kr, 0, sizeof(kr));
	if (sh->profile != RF_PROFILE_SERVER &&
	    rf_store_key_get(c->st, old.key_id, &kr) == 0 &&
	    rf_key_alg_parse(kr.alg, &sh->alg) == 0) {
		r = 0;
		goto out;
	}
	rf_err_clear();
	p = old.der;
	if (old.der == NULL ||
	    (x = d2i_X509(NULL, &p, (long)old.derlen)) == NULL ||
	    (pub = X509_get0_pubkey(x)) == NULL) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "stored certificate %s does not parse", serial);
		goto out;
	}
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		sh->alg = EVP_PKEY_get_bits(pub) > 2048 ? RF_KEY_RSA_3072
							: RF_KEY_RSA_2048;
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC &&
	    EVP_PKEY_get_group_name(pub, curve, sizeof(curve), NULL) == 1) {
		sh->alg = strcmp(curve, "secp384r1") == 0 ? RF_KEY_EC_P384
							  : RF_KEY_EC_P256;
	} else {
		sh->alg = RF_KEY_EC_P256;
	}
	if (sh->profile == RF_PROFILE_SERVER &&
	    (gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) !=
		NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
			const ASN1_STRING *d;

			if (g->type != GEN_DNS)
				continue;
			d = g->d.dNSName;
			if ((size_t)ASN1_STRING_length(d) < sizeof(sh->dns)) {
				memcpy(sh->dns, ASN1_STRING_get0_data(d),
				    (size_t)ASN1_STRING_length(d));
				sh->dns[ASN1_STRING_length(d)] = '\0';
			}
			break;
		}
	}
	r = 0;
out:
	GENERAL_NAMES_free(gens);
	X509_free(x);
	rf_cert_rec_clear(&old);
	return r;
}

/*
 * THE place where contain gets new connection keys: n key pairs made in
 * the token (the standby pool, when there is one, replaces this call).
 * All or nothing; out[] receives them.
 */
static int
contain_keys_make(const struct rf_incident_ctx *c, const struct rf_keygen *kg,
    const struct rf_item_rec *items, const size_t *idx, size_t n,
    struct rf_key **out, int *pooled)
{
	struct rf_pool_want *want = NULL;
	struct rf_keygen *rest = NULL;
	struct rf_key **made = NULL;
	size_t *at = NULL, i, b, m = 0, taken = 0;
	char(*ref)[32] = NULL;
	int r = RF_ERR_ALLOC;

	if ((want = calloc(n, sizeof(*want))) == NULL ||
	    (rest = calloc(n, sizeof(*rest))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (at = calloc(n, sizeof(*at))) == NULL ||
	    (ref = calloc(n, sizeof(*ref))) == NULL)
		goto out;
	/* The standby pool first: keys made before the incident (pool.h). */
	for (i = 0; i < n; i++) {
		snprintf(ref[i], sizeof(ref[i]), "incident-%lld",
		    (long long)items[idx[i]].incident);
		want[i].alg = kg[i].alg;
		want[i].tenant = kg[i].tenant;
		want[i].taken_by = kg[i].label;
		want[i].ref = ref[i];
	}
	if ((r = rf_pool_take(
		 c->keys, c->audit, want, n, c->who, out, &taken)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		pooled[i] = out[i] != NULL;
		if (out[i] == NULL) {
			rest[m] = kg[i];
			at[m++] = i;
		}
	}
	/* What the pool lacked is made now, in parts, with progress. */
	if (m > 0)
		rf_progress_phase(
		    c->progress, "generate keys the pool lacks", m);
	for (i = 0; i < m; i += b) {
		size_t cap = rest[i].alg == RF_KEY_RSA_2048 ||
			rest[i].alg == RF_KEY_RSA_3072
		    ? CONTAIN_GEN_PART_RSA
		    : CONTAIN_BATCH;

		b = m - i < cap ? m - i : cap;
		if ((r = rf_keys_generate_many(
			 c->keys, &rest[i], b, c->who, &made[i])) != 0)
			break;
		rf_progress_add(c->progress, b);
	}
	if (r != 0) {
		char msg[512];
		const char **ids = calloc(m, sizeof(*ids));
		size_t k, done;

		/* Never recorded for a connection: remove what was made. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		for (k = 0; ids != NULL && k < i; k++)
			ids[k] = rf_key_id(made[k]);
		if (ids != NULL && i > 0)
			(void)!rf_keys_destroy_many(
			    c->keys, ids, i, c->who, &done);
		free(ids);
		for (k = 0; k < i; k++)
			rf_key_free(made[k]);
		for (k = 0; k < n; k++) {
			rf_key_free(out[k]);
			out[k] = NULL;
		}
		rf_err_set(r, "%s", msg);
		goto out;
	}
	for (i = 0; i < m; i++)
		out[at[i]] = made[i]; /* now the caller's */
	r = 0;
out:
	free(want);
	free(rest);
	free(made);
	free(at);
	free(ref);
	return r;
}

/*
 * keys[i] receives the key an earlier run reserved for items[i] (its record
 * "reserved", the token holding it), else NULL; the token is searched
 * once for all of them (rf_keys_load_many).
 */
static int
reserved_load(const struct rf_incident_ctx *c, struct rf_item_rec *items,
    size_t n, struct rf_key **keys)
{
	struct rf_key_rec kr;
	struct rf_key **got = NULL;
	const char **ids = NULL;
	size_t *at = NULL, i, k = 0;
	int r = RF_ERR_ALLOC;

	for (i = 0; i < n; i++)
		keys[i] = NULL;
	if ((ids = calloc(n ? n : 1, sizeof(*ids))) == NULL ||
	    (at = calloc(n ? n : 1, sizeof(*at))) == NULL ||
	    (got = calloc(n ? n : 1, sizeof(*got))) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		if (items[i].new_key[0] == '\0')
			continue;
		if ((r = rf_store_key_get(c->st, items[i].new_key, &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			continue;
		}
		if (r != 0)
			goto out;
		if (strcmp(kr.state, "reserved") != 0)
			continue;
		ids[k] = items[i].new_key;
		at[k++] = i;
	}
	if ((r = rf_keys_load_many(c->keys, ids, k, got)) != 0)
		goto out;
	for (i = 0; i < k; i++)
		keys[at[i]] = got[i]; /* NULL: gone, a new key is made */
	r = 0;
out:
	free(ids);
	free(at);
	free(got);
	return r;
}

/*
 * Keys for a batch, recorded before they are used: an item whose earlier
 * run reserved a key (state "reserved", still in the token) gets it back;
 * the others get new keys, each recorded in the store ("reserved",
 * purpose connection) and on its item in one transaction, before any
 * certificate names it. A run killed after that leaves keys the store
 * knows (the rerun uses them), never `unrecorded` ones.
 */
static int
contain_keys(const struct rf_incident_ctx *c, struct rf_item_rec *items,
    const struct shape *shapes, size_t n, struct rf_key **keys,
    struct rf_contain_report *rep)
{
	struct rf_keygen *kg = NULL;
	struct rf_key **made = NULL;
	struct rf_key_rec kr;
	size_t *idx = NULL, i, k = 0;
	int *pooled = NULL;
	char(*label)[200] = NULL;
	double t = rf_mono_s();
	int r = RF_ERR_INTERNAL, in_tx = 0;

	if ((kg = calloc(n, sizeof(*kg))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL ||
	    (label = calloc(n, sizeof(*label))) == NULL ||
	    (pooled = calloc(n, sizeof(*pooled))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/* Keys reserved by an earlier run: loaded in one pass (pool.h). */
	if ((r = reserved_load(c, items, n, keys)) != 0)
		goto out;
	phase_time(rep, "keys reserved earlier", &t);
	for (i = 0; i < n; i++) {
		struct rf_item_rec *it = &items[i];

		if (keys[i] != NULL)
			continue; /* reserved by an earlier run */
		snprintf(
		    label[k], sizeof(label[k]), "%s/%s", it->tenant, it->name);
		kg[k].alg = shapes[i].alg;
		kg[k].label = label[k];
		kg[k].tenant = it->tenant;
		idx[k++] = i;
	}
	if (k == 0) {
		r = 0;
		goto out;
	}
	if ((r = contain_keys_make(c, kg, items, idx, k, made, pooled)) != 0)
		goto out;
	phase_time(rep, "take pool keys (and make missing)", &t);
	if ((r = rf_store_begin(c->st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < k; i++) {
		struct rf_item_rec *it = &items[idx[i]];

		memset(&kr, 0, sizeof(kr));
		snprintf(kr.id, sizeof(kr.id), "%s", rf_key_id(made[i]));
		snprintf(
		    kr.alg, sizeof(kr.alg), "%s", rf_key_alg_name(kg[i].alg));
		snprintf(kr.purpose, sizeof(kr.purpose), "connection");
		snprintf(kr.tenant, sizeof(kr.tenant), "%s", it->tenant);
		snprintf(kr.state, sizeof(kr.state), "reserved");
		kr.created = rf_now();
		/* A pool key has its record (now this connection's, pool.c). */
		if ((r = pooled[i]
			    ? rf_store_key_set_state(c->st, kr.id, "reserved")
			    : rf_store_key_add(c->st, &kr)) != 0)
			goto out;
		/* Only over what this run read: another run may be here. */
		if ((r = rf_store_item_reserve_key(c->st, it->incident,
			 it->conn, it->new_key, kr.id)) != 0) {
			if (r == RF_ERR_EXISTS)
				r = rf_err_set(RF_ERR_STATE,
				    "connection %s/%s of incident %lld is "
				    "being contained by another run at the "
				    "same time: run contain again to resume",
				    it->tenant, it->name,
				    (long long)it->incident);
			goto out;
		}
		snprintf(it->new_key, sizeof(it->new_key), "%s", kr.id);
	}
	if ((r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	for (i = 0; i < k; i++) {
		keys[idx[i]] = made[i]; /* now the caller's */
		made[i] = NULL;
		rep->pooled += pooled[i] != 0;
	}
	phase_time(rep, "record new keys on items", &t);
	r = 0;
out:
	if (in_tx) {
		const char **ids = calloc(k, sizeof(*ids));
		char msg[512];
		size_t done;

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_store_rollback(c->st);
		/* Never recorded, never used: remove them again. */
		for (i = 0; ids != NULL && i < k; i++)
			ids[i] = rf_key_id(made[i]);
		if (ids != NULL)
			(void)!rf_keys_destroy_many(
			    c->keys, ids, k, c->who, &done);
		free(ids);
		rf_err_set(r, "%s", msg);
	}
	for (i = 0; made != NULL && i < n; i++)
		rf_key_free(made[i]);
	free(label);
	free(idx);
	free(made);
	free(kg);
	free(pooled);
	return r;
}

/*
 * Step 4. Every connection's new key is taken (or reserved, or made) and
 * recorded for all connections at once, so that the token is searched
 * once for the whole incident, not once per key or per batch (a
 * file-backed token such as SoftHSM reads every object of a token on
 * each search); the certificates are then issued in batches.
 */
static int
contain_issue(const struct rf_incident_ctx *c, int64_t id,
    const struct item_vec *iv, struct contain_rev *rv,
    struct rf_contain_report *rep)
{
	struct rf_issue_req *reqs = NULL;
	struct rf_key **keys = NULL;
	struct shape *shapes = NULL;
	struct issue_hook hook;
	struct issue_done done;
	struct rf_pool_plan plan[4];
	char note[256];
	size_t i, j, np;
	double t = rf_mono_s();
	int r = 0;

	if (iv->n == 0)
		return 0;
	/* New keys come from the standby pool; say what it lacks. */
	if ((r = rf_pool_plan_incident(c->cfg, c->st, id, plan, &np)) != 0)
		return r;
	for (j = 0; j < np; j++) {
		if (plan[j].generate == 0)
			continue;
		rf_pool_plan_text(&plan[j], note, sizeof(note));
		if ((r = event(c, id, "pool", "%s", note)) != 0)
			return r;
	}
	if ((reqs = calloc(iv->n, sizeof(*reqs))) == NULL ||
	    (keys = calloc(iv->n, sizeof(*keys))) == NULL ||
	    (shapes = calloc(iv->n, sizeof(*shapes))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	phase_time(rep, "plan the pool", &t);
	for (i = 0; i < iv->n; i++)
		if ((r = credential_shape(
			 c, iv->v[i].old_serial, &shapes[i])) != 0)
			goto out;
	phase_time(rep, "read old credentials' shapes", &t);
	if ((r = contain_keys(c, iv->v, shapes, iv->n, keys, rep)) != 0)
		goto out;
	rf_test_point("incident-keys-recorded");
	/* The revocation published and the old keys out of service before
	 * any successor is issued. */
	if ((r = contain_publish_disable(c, id, rv, rep)) != 0 ||
	    (r = note_items(c, 0, iv->v, iv->n, NULL, NULL, NULL)) != 0)
		goto out;
	t = rf_mono_s();
	rf_progress_phase(c->progress, "reissue", iv->n);
	for (i = 0; i < iv->n; i++) {
		const struct shape *sh = &shapes[i];

		reqs[i].tenant = iv->v[i].tenant;
		reqs[i].profile = sh->profile;
		reqs[i].key = keys[i];
		reqs[i].dns = sh->profile == RF_PROFILE_SERVER
		    ? (sh->dns[0] != '\0' ? sh->dns : iv->v[i].tenant)
		    : NULL;
	}
	/* Each batch commits on its own, the next one's signatures made
	 * while it does (rf_ca_issue_pipelined). */
	hook.c = c;
	hook.items = iv->v;
	done.c = c;
	done.rep = rep;
	r = rf_ca_issue_pipelined(c->ca, reqs, iv->n, CONTAIN_BATCH, c->who,
	    issued_in_tx, &hook, issue_done, &done);
	phase_time(rep, "issue (rf_ca_issue_ex)", &t);
	if (r != 0)
		goto out;
	if (rep->issued > 0)
		r = event(c, id, "reissue",
		    "%zu certificates issued with new keys in the token: %zu "
		    "from the standby pool, %zu generated",
		    rep->issued, rep->pooled, rep->issued - rep->pooled);
out:
	for (j = 0; keys != NULL && j < iv->n; j++)
		rf_key_free(keys[j]);
	free(keys);
	free(shapes);
	free(reqs);
	return r;
}

int
rf_incident_contain(
    const struct rf_incident_ctx *c, int64_t id, struct rf_contain_report *rep)
{
	struct rf_incident_rec inc;
	struct item_vec all = {0}, todo = {0};
	struct contain_rev rv = {0};
	char newname[64];
	double t0, t;
	int r, published = 0;

	memset(rep, 0, sizeof(*rep));
	t0 = t = rf_mono_s();
	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld is closed: nothing to contain",
		    (long long)id);
	if ((r = rf_incident_load_items(c, id, NULL, NULL, &all)) != 0)
		goto out;
	rep->total = all.n;
	phase_time(rep, "load the incident", &t);

	/* 1. A new issuing CA when the issuer itself is compromised. */
	if (strncmp(inc.scope, "issuer:", 7) == 0) {
		snprintf(
		    newname, sizeof(newname), "issuing-inc%lld", (long long)id);
		r = rf_ca_rotate(c->ca, inc.scope + 7, newname, c->who);
		if (r == 0) {
			rep->rotated = 1;
			if ((r = event(c, id, "rotate",
				 "new issuing CA %s replaces %s", newname,
				 inc.scope + 7)) != 0)
				goto out;
		} else if (r == RF_ERR_EXISTS) {
			rf_err_clear(); /* made by an earlier run */
		} else {
			goto out;
		}
		snprintf(inc.new_issuer, sizeof(inc.new_issuer), "%s", newname);
		snprintf(
		    rep->new_issuer, sizeof(rep->new_issuer), "%s", newname);
		if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
		    (r = contain_revoke_ca(c, id, inc.scope + 7)) != 0 ||
		    (r = contain_replace_tls(
			 c, id, inc.scope + 7, rep->tls_revoked)) != 0)
			goto out;
		phase_time(rep, "rotate the issuing CA", &t);
	}
	/*
	 * 2, 3. Revoke and disable: idempotent. Revocation is repeated
	 * over all until a run has published it (OCSP and CRL), so that a
	 * run killed between the commit and the re-signing is finished.
	 */
	rf_progress_phase(c->progress, "revoke and publish", all.n);
	if ((r = has_event(c, id, "published", &published)) != 0 ||
	    (!published &&
		(r = contain_revoke_begin(c, inc.scope, &all, rep, &rv)) != 0))
		goto out;
	rf_progress_add(c->progress, all.n);
	rv.inc = &inc;
	rv.all = &all;
	t = rf_mono_s();
	/* 4. New credentials for connections still affected. */
	if ((r = rf_incident_load_items(c, id, NULL, "affected", &todo)) != 0)
		goto out;
	phase_time(rep, "load the incident", &t);
	rf_progress_phase(c->progress, "take new keys", 0);
	if ((r = contain_issue(c, id, &todo, &rv, rep)) != 0 ||
	    (r = contain_publish_disable(c, id, &rv, rep)) != 0)
		goto out;
	t = rf_mono_s();
	/* Every connection has its successor, published: contained. */
	if (strcmp(inc.state, "open") == 0) {
		snprintf(inc.state, sizeof(inc.state), "contained");
		inc.contained = rf_now();
		if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
		    (r = event(c, id, "contained", "%zu connections contained",
			 all.n)) != 0)
			goto out;
	}
	phase_time(rep, "record contained", &t);
	rep->contain_s = rf_mono_s() - t0;
	/*
	 * 5. The old keys go for good, as a phase of its own: they are
	 * disabled (no longer sign) since step 3, so the destruction,
	 * which costs the token's per-object file work rather than
	 * signatures, is not on the path to "contained". A run killed
	 * here is finished by running contain (or close) again.
	 */
	t0 = rf_mono_s();
	if ((r = retire_keys(c, id, &inc, &all, &rep->destroyed)) != 0)
		goto out;
	rep->destroy_s = rf_mono_s() - t0;
	phase_add(rep, "destroy old keys", rep->destroy_s);
	r = 0;
out:
	if (r != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_err_set(r,
		    "%s (so far: %zu revoked and committed, %zu keys "
		    "disabled, %zu reissued of %zu; run 'ringfence incident "
		    "contain %lld' again to resume)",
		    msg, rep->revoked, rep->disabled, rep->issued, rep->total,
		    (long long)id);
	}
	contain_rev_clear(&rv); /* unpublished: the rerun publishes */
	free(all.v);
	free(todo.v);
	return r;
}

/* ---- Tracking ---- */

int
rf_incident_confirm(
    const struct rf_incident_ctx *c, int64_t id, const char *tenant, int waive)
{
	struct rf_incident_rec inc;
	struct item_vec iv = {0};
	size_t i, moved = 0;
	int r, in_tx = 0;

	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(
		    RF_ERR_STATE, "incident %lld is closed", (long long)id);
	if ((r = rf_incident_load_items(c, id, tenant, NULL, &iv)) != 0)
		goto out;
	if (iv.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "tenant %s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", (long long)id);
		goto out;
	}
	/* Waived while affected: keyd's ledger lets it sign for them again
	 * (their old credential stays), before the store says so. */
	if (waive &&
	    (r = note_items(c, 0, iv.v, iv.n, "affected", NULL, NULL)) != 0)
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
			    "tenant %s is not contained yet: run 'ringfence "
			    "incident contain %lld' first",
			    it->tenant, (long long)id);
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
	if ((r = event(c, id, waive ? "waive" : "confirm",
		 "tenant %s: %zu connections %s",
		 tenant != NULL ? tenant : "(all)", moved,
		 waive ? "waived" : "re-established")) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	free(iv.v);
	return r;
}

int
rf_incident_evidence(const struct rf_incident_ctx *c, const char *serial,
    const char *source, int64_t t, int *matched)
{
	struct rf_sighting_rec g;
	struct rf_item_rec it;
	struct rf_audit_event ev;
	char idbuf[32], who[96];
	int r, is_new = 0;

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
	/* Something still presents the old credential after the switch. */
	g.after_reestablished = !is_new &&
	    (strcmp(it.state, "reestablished") == 0 ||
		strcmp(it.state, "closed") == 0);
	if ((r = rf_store_sighting_add(c->st, &g)) != 0 ||
	    !g.after_reestablished)
		return r;
	/* The leaf names the real actor: an anonymous OCSP client. */
	snprintf(idbuf, sizeof(idbuf), "incident-%lld", (long long)it.incident);
	snprintf(who, sizeof(who), "ocsp %s", g.source);
	memset(&ev, 0, sizeof(ev));
	ev.type = "incident";
	ev.what = "sighting";
	ev.tenant = it.tenant;
	ev.ref = serial;
	ev.detail = "OCSP query for the revoked old credential after "
		    "re-establishment";
	ev.actor = "anonymous OCSP client";
	ev.source = who;
	(void)idbuf;
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
	    (r = event(c, id, "ack",
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
rf_incident_close(const struct rf_incident_ctx *c, int64_t id)
{
	struct rf_incident_rec inc;
	struct rf_incident_status s;
	struct item_vec iv = {0};
	char msg[512];
	size_t i, open_n, destroyed = 0;
	int r;

	if ((r = rf_incident_load(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld is already closed", (long long)id);
	if ((r = rf_incident_status(c, id, &s)) != 0)
		return r;
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
	if (s.unacked > 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld: %zu queries for old credentials arrived "
		    "after their connection was re-established; look at them "
		    "('ringfence incident status %lld') and acknowledge them "
		    "with 'ringfence incident ack %lld' first",
		    (long long)id, s.unacked, (long long)id, (long long)id);
	if ((r = rf_incident_load_items(c, id, NULL, NULL, &iv)) != 0)
		goto out;
	/* Destroy what contain has not (old keys, previous, CA), then close. */
	if ((r = retire_keys(c, id, &inc, &iv, &destroyed)) != 0)
		goto out;
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
	    (r = event(c, id, "close",
		 "closed; %zu old keys destroyed in the token now",
		 destroyed)) != 0 ||
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
