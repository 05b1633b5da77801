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

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "incident/incident.h"
#include "pool/pool.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "store/store_incident.h"

#define CONTAIN_BATCH 500

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

struct open_acc {
	const struct rf_incident_ctx *c;
	int64_t id;
	size_t n;
	int64_t since;
	uint64_t signatures;
	char (*keys)[65];
	size_t nkeys, capkeys;
};

static int
count_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct open_acc *a = arg;

	if (l->type != NULL && strcmp(l->type, "sign") == 0)
		a->signatures++;
	return 0;
}

static int
open_item(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	struct open_acc *a = arg;
	struct rf_item_rec it;
	int r;

	memset(&it, 0, sizeof(it));
	it.incident = a->id;
	it.conn = conn->id;
	snprintf(it.tenant, sizeof(it.tenant), "%s", conn->tenant);
	snprintf(it.name, sizeof(it.name), "%s", conn->name);
	snprintf(it.rp, sizeof(it.rp), "%s", conn->rp);
	snprintf(it.old_serial, sizeof(it.old_serial), "%s", cur->serial);
	snprintf(it.old_key, sizeof(it.old_key), "%s", cur->key_id);
	snprintf(it.state, sizeof(it.state), "affected");
	it.updated = rf_now();
	if ((r = rf_store_item_add(a->c->st, &it)) != 0)
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
	int r = RF_ERR_INTERNAL, in_tx = 0;

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

	if ((r = rf_store_begin(c->st)) != 0)
		return r;
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
	if (acc.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "scope %s matches no connection with a credential",
		    scope_text);
		goto out;
	}
	/*
	 * Blast radius in the record: the signatures of the key in scope
	 * (issuer scope: the issuing key; key scope: that key; otherwise
	 * the connection keys, counted by tenant).
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
		r = rf_store_leaf_search(
		    c->st, NULL, s.f.tenant, since, 0, 0, count_leaf, &acc);
	}
	if (r != 0)
		goto out;
	inc.id = acc.id;
	inc.signatures = acc.signatures;
	if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
	    (r = event(c, inc.id, "open",
		 "scope %s: %zu connections, %llu signatures in the record; "
		 "reason: %s",
		 scope_text, acc.n, (unsigned long long)acc.signatures,
		 reason)) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	*id = inc.id;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	return r;
}

/* ---- Contain ---- */

struct item_vec {
	struct rf_item_rec *v;
	size_t n, cap;
};

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

static int
load_items(const struct rf_incident_ctx *c, int64_t id, const char *tenant,
    const char *state, struct item_vec *iv)
{
	memset(iv, 0, sizeof(*iv));
	return rf_store_item_foreach(
	    c->st, id, tenant, state, collect_item, iv);
}

static int
load_incident(
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
 * A connection's previous credential that is still valid is in scope too:
 * for a tenant, connection or all scope (the connection is compromised,
 * whatever key it used before), and for an issuer scope when the same
 * issuer signed it. A key scope reaches other certificates of the key
 * through keyCompromise. *serial is "" when there is none to revoke.
 */
static int
previous_in_scope(const struct rf_incident_ctx *c, const char *scope,
    const struct rf_item_rec *it, char serial[41])
{
	struct rf_conn_rec conn;
	struct rf_cert_rec cr;
	int r;

	serial[0] = '\0';
	if (strncmp(scope, "key:", 4) == 0)
		return 0;
	if ((r = rf_store_conn_get(c->st, it->tenant, it->name, &conn)) != 0)
		return r == RF_ERR_NOT_FOUND ? (rf_err_clear(), 0) : r;
	if (conn.previous[0] == '\0' ||
	    strcmp(conn.previous, it->old_serial) == 0)
		return 0; /* none, or this incident's own reissue */
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(c->st, conn.previous, &cr)) != 0)
		return r == RF_ERR_NOT_FOUND ? (rf_err_clear(), 0) : r;
	if (!cr.revoked && cr.not_after > rf_now() &&
	    (strncmp(scope, "issuer:", 7) != 0 ||
		strcmp(cr.issuer, scope + 7) == 0))
		snprintf(serial, 41, "%s", conn.previous);
	rf_cert_rec_clear(&cr);
	return 0;
}

/*
 * Step 2: revoke every old credential, and every still-valid previous one
 * in scope (idempotent).
 */
static int
contain_revoke(const struct rf_incident_ctx *c, int64_t id, const char *scope,
    const struct item_vec *iv, struct rf_contain_report *rep)
{
	const char **serials = NULL;
	char(*prev)[41] = NULL;
	size_t i, n = 0, nprev = 0, changed = 0;
	int r = RF_ERR_INTERNAL;

	if (iv->n == 0)
		return 0;
	if ((serials = calloc(2 * iv->n, sizeof(*serials))) == NULL ||
	    (prev = calloc(iv->n, sizeof(*prev))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < iv->n; i++) {
		serials[n++] = iv->v[i].old_serial;
		if ((r = previous_in_scope(c, scope, &iv->v[i], prev[i])) != 0)
			goto out;
		if (prev[i][0] != '\0') {
			serials[n++] = prev[i];
			nprev++;
		}
	}
	if ((r = rf_revoke_serials(c->cfg, c->st, c->keys, c->ca, c->audit,
		 serials, n, RF_CRL_REASON_KEY_COMPROMISE, c->who, &changed)) !=
	    0)
		goto out;
	rep->revoked = changed;
	r = 0;
	if (changed > 0)
		r = event(c, id, "revoke",
		    "%zu credentials revoked (keyCompromise; %zu of them "
		    "previous credentials still valid); OCSP and CRL updated",
		    changed, nprev);
out:
	free(prev);
	free(serials);
	return r;
}

/*
 * The keys of ids[0..n) that the store records as held in the token and not
 * in state `skip`; a connector's own key (CSR issuance) is not ours.
 */
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

/* Step 3: disable every old key held in the token, in one pass. */
static int
contain_disable(const struct rf_incident_ctx *c, int64_t id,
    const struct rf_incident_rec *inc, const struct item_vec *iv,
    struct rf_contain_report *rep)
{
	struct rf_ca_rec ca;
	const char **ids = NULL, **mine = NULL;
	size_t i, n = 0, nmine = 0, done = 0;
	int r;

	memset(&ca, 0, sizeof(ca));
	if ((ids = calloc(iv->n + 1, sizeof(*ids))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < iv->n; i++)
		ids[n++] = iv->v[i].old_key;
	if (strncmp(inc->scope, "issuer:", 7) == 0) {
		if ((r = rf_store_ca_get(c->st, inc->scope + 7, &ca)) != 0)
			goto out;
		ids[n++] = ca.key_id;
	}
	if ((r = token_keys(c, ids, n, "disabled", &mine, &nmine)) != 0 ||
	    (r = rf_keys_disable_many(c->keys, mine, nmine, c->who, &done)) !=
		0 ||
	    (r = set_key_states(c, mine, nmine, "disabled")) != 0)
		goto out;
	rep->disabled = nmine;
	if (nmine > 0)
		r = event(
		    c, id, "disable", "%zu keys disabled in the token", nmine);
out:
	rf_ca_rec_clear(&ca);
	free(ids);
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
	return rf_store_conn_set(
	    h->c->st, it->tenant, it->name, NULL, serial, it->updated, NULL);
}

static int
contain_issue(const struct rf_incident_ctx *c, int64_t id,
    const struct item_vec *iv, struct rf_contain_report *rep)
{
	struct rf_issue_req *reqs = NULL;
	struct rf_issued *out = NULL;
	struct rf_cert_rec old;
	struct rf_key_rec kr;
	struct issue_hook hook;
	struct rf_pool_plan plan[4];
	enum rf_key_alg alg;
	char ref[32], note[256];
	size_t i, j, b, np;
	int r = 0;

	/* New keys come from the standby pool; say what it lacks. */
	snprintf(ref, sizeof(ref), "incident-%lld", (long long)id);
	if (iv->n > 0 &&
	    (r = rf_pool_plan_incident(c->cfg, c->st, id, plan, &np)) != 0)
		return r;
	for (j = 0; iv->n > 0 && j < np; j++) {
		if (plan[j].generate == 0)
			continue;
		rf_pool_plan_text(&plan[j], note, sizeof(note));
		if ((r = event(c, id, "pool", "%s", note)) != 0)
			return r;
	}
	if ((reqs = calloc(CONTAIN_BATCH, sizeof(*reqs))) == NULL ||
	    (out = calloc(CONTAIN_BATCH, sizeof(*out))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < iv->n; i += b) {
		b = iv->n - i < CONTAIN_BATCH ? iv->n - i : CONTAIN_BATCH;
		memset(reqs, 0, b * sizeof(*reqs));
		for (j = 0; j < b; j++) {
			const struct rf_item_rec *it = &iv->v[i + j];
			enum rf_profile prof = RF_PROFILE_CLIENT;

			memset(&old, 0, sizeof(old));
			if ((r = rf_store_cert_get(
				 c->st, it->old_serial, &old)) != 0)
				goto out;
			if (rf_profile_parse(old.profile, &prof) != 0)
				prof = RF_PROFILE_CLIENT;
			rf_cert_rec_clear(&old);
			alg = RF_KEY_EC_P256;
			if (rf_store_key_get(c->st, it->old_key, &kr) == 0 &&
			    rf_key_alg_parse(kr.alg, &alg) != 0)
				alg = RF_KEY_EC_P256;
			rf_err_clear();
			reqs[j].tenant = it->tenant;
			reqs[j].profile = prof;
			reqs[j].keygen = alg;
			reqs[j].conn = it->name;
			reqs[j].ref = ref;
			/* server profile: the name lives in the tenant */
			reqs[j].dns =
			    prof == RF_PROFILE_SERVER ? it->tenant : NULL;
		}
		hook.c = c;
		hook.items = &iv->v[i];
		if ((r = rf_ca_issue_ex(c->ca, reqs, b, c->who, out,
			 issued_in_tx, &hook)) != 0)
			goto out;
		for (j = 0; j < b; j++) {
			rep->pooled += out[j].pooled != 0;
			rf_issued_clear(&out[j]);
		}
		rep->issued += b;
	}
	if (rep->issued > 0)
		r = event(c, id, "reissue",
		    "%zu certificates issued with new keys in the token: %zu "
		    "from the standby pool, %zu generated",
		    rep->issued, rep->pooled, rep->issued - rep->pooled);
out:
	free(reqs);
	free(out);
	return r;
}

int
rf_incident_contain(
    const struct rf_incident_ctx *c, int64_t id, struct rf_contain_report *rep)
{
	struct rf_incident_rec inc;
	struct item_vec all = {0}, todo = {0};
	char newname[64];
	int r;

	memset(rep, 0, sizeof(*rep));
	if ((r = load_incident(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld is closed: nothing to contain",
		    (long long)id);
	if ((r = load_items(c, id, NULL, NULL, &all)) != 0)
		goto out;
	rep->total = all.n;

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
		    (r = contain_revoke_ca(c, id, inc.scope + 7)) != 0)
			goto out;
	}
	/* 2, 3. Revoke and disable: idempotent, so always over all. */
	if ((r = contain_revoke(c, id, inc.scope, &all, rep)) != 0 ||
	    (r = contain_disable(c, id, &inc, &all, rep)) != 0)
		goto out;
	/* 4. New credentials for connections still affected. */
	if ((r = load_items(c, id, NULL, "affected", &todo)) != 0 ||
	    (r = contain_issue(c, id, &todo, rep)) != 0)
		goto out;
	if (strcmp(inc.state, "open") == 0) {
		snprintf(inc.state, sizeof(inc.state), "contained");
		inc.contained = rf_now();
		if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
		    (r = event(c, id, "contained", "%zu connections contained",
			 all.n)) != 0)
			goto out;
	}
	r = 0;
out:
	if (r != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_err_set(r,
		    "%s (so far: %zu revoked, %zu keys disabled, %zu "
		    "reissued of %zu; run contain again to resume)",
		    msg, rep->revoked, rep->disabled, rep->issued, rep->total);
	}
	free(all.v);
	free(todo.v);
	return r;
}

/* ---- Packages ---- */

static int
mkdir_p(const char *path)
{
	char buf[2048], *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return rf_err_set(RF_ERR_ARG, "path too long: %s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return rf_err_set(RF_ERR_IO, "cannot create %s: %s",
			    buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
	return 0;
}

static int
put_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[2300];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return rf_write_file(path, data, len, 0644);
}

/* Upper-case hex SHA-1 of the DER: Graph's customKeyIdentifier form. */
static void
sha1_hex_upper(const uint8_t *der, size_t len, char out[41])
{
	uint8_t md[20];
	size_t i;

	EVP_Digest(der, len, md, NULL, EVP_sha1(), NULL);
	rf_hex(md, sizeof(md), out);
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] >= 'a' && out[i] <= 'f')
			out[i] = (char)(out[i] - 32);
}

static int
package_one(const struct rf_incident_ctx *c, const struct rf_item_rec *it,
    const char *dir)
{
	struct rf_cert_rec nc, oc;
	char cdir[2100], old_tp[41], new_tp[41], *pem = NULL, *b64 = NULL;
	char *readme = NULL, *graph = NULL;
	json_t *body = NULL;
	int r;

	memset(&nc, 0, sizeof(nc));
	memset(&oc, 0, sizeof(oc));
	if (it->new_serial[0] == '\0')
		return rf_err_set(RF_ERR_STATE,
		    "tenant %s has no new credential yet: run 'ringfence "
		    "incident contain %lld' first",
		    it->tenant, (long long)it->incident);
	if ((r = rf_store_cert_get(c->st, it->new_serial, &nc)) != 0 ||
	    (r = rf_store_cert_get(c->st, it->old_serial, &oc)) != 0)
		goto out;
	snprintf(cdir, sizeof(cdir), "%s/%s/%s", dir, it->tenant, it->name);
	if ((r = mkdir_p(cdir)) != 0)
		goto out;
	if ((pem = malloc(rf_ca_pem_len(nc.derlen) + 1)) == NULL ||
	    (b64 = malloc(4 * ((nc.derlen + 2) / 3) + 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	rf_ca_pem_write(nc.der, nc.derlen, pem);
	EVP_EncodeBlock((unsigned char *)b64, nc.der, (int)nc.derlen);
	sha1_hex_upper(oc.der, oc.derlen, old_tp);
	sha1_hex_upper(nc.der, nc.derlen, new_tp);
	if ((r = put_file(cdir, "certificate.pem", pem, strlen(pem))) != 0 ||
	    (r = put_file(cdir, "certificate.der", nc.der, nc.derlen)) != 0)
		goto out;
	if (asprintf(&readme,
		"ringfence re-establishment package\n"
		"tenant:      %s\nconnection:  %s\nrelying party: %s\n\n"
		"Your connection's credential was replaced because of "
		"incident %lld.\n"
		"The old certificate (serial %s) is revoked "
		"(keyCompromise).\n\n"
		"new certificate: certificate.pem / certificate.der\n"
		"  serial:    %s\n  x5t:       %s\n  x5t#S256:  %s\n"
		"  SHA-1 thumbprint: %s\n\n"
		"old certificate to remove:\n"
		"  x5t:       %s\n  SHA-1 thumbprint: %s\n\n"
		"What to do:\n%s",
		it->tenant, it->name, it->rp, (long long)it->incident,
		oc.serial, nc.serial, nc.x5t, nc.x5t256, new_tp, oc.x5t, old_tp,
		strcmp(it->rp, "pinned") == 0
		    ? "  1. In your identity provider, replace the old "
		      "certificate with the new one:\n"
		      "     for Microsoft Entra ID, PATCH the application with "
		      "graph-keyCredentials.json\n"
		      "     (it lists only the new certificate, which removes "
		      "the old one).\n"
		      "  2. Remove the old thumbprint wherever else it is "
		      "registered.\n"
		      "  3. Tell your vendor contact the connection works "
		      "again.\n"
		    : "  1. Nothing to remove: your relying party checks "
		      "revocation (OCSP/CRL)\n"
		      "     and already rejects the old certificate.\n"
		      "  2. Trust the new certificate's chain if it changed "
		      "(issuer below).\n") < 0) {
		readme = NULL;
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = put_file(cdir, "README.txt", readme, strlen(readme))) != 0)
		goto out;
	if (asprintf(&graph, "x5t: %s\nx5t#S256: %s\nold x5t: %s\n", nc.x5t,
		nc.x5t256, oc.x5t) < 0) {
		graph = NULL;
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = put_file(cdir, "thumbprints.txt", graph, strlen(graph))) != 0)
		goto out;
	free(graph);
	graph = NULL;
	if (strcmp(it->rp, "pinned") == 0) {
		/*
		 * Microsoft Graph: PATCH /applications/{id} with
		 * keyCredentials replaces the whole collection, so the body
		 * lists the new certificate only.
		 */
		body = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}",
		    "keyCredentials", "type", "AsymmetricX509Cert", "usage",
		    "Verify", "key", b64, "displayName",
		    "ringfence replacement", "customKeyIdentifier", new_tp);
		if (body == NULL ||
		    (graph = json_dumps(
			 body, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		if ((r = put_file(cdir, "graph-keyCredentials.json", graph,
			 strlen(graph))) != 0)
			goto out;
	}
	r = 0;
out:
	json_decref(body);
	free(graph);
	free(readme);
	free(pem);
	free(b64);
	rf_cert_rec_clear(&nc);
	rf_cert_rec_clear(&oc);
	return r;
}

int
rf_incident_package(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *dir, size_t *written)
{
	struct rf_incident_rec inc;
	struct item_vec iv = {0};
	size_t i;
	int r;

	*written = 0;
	if ((r = load_incident(c, id, &inc)) != 0 ||
	    (r = load_items(c, id, tenant, NULL, &iv)) != 0)
		goto out;
	if (iv.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "tenant %s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", (long long)id);
		goto out;
	}
	for (i = 0; i < iv.n; i++) {
		if (strcmp(iv.v[i].state, "waived") == 0)
			continue;
		if ((r = package_one(c, &iv.v[i], dir)) != 0)
			goto out;
		(*written)++;
	}
	r = 0;
out:
	free(iv.v);
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

	if ((r = load_incident(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(
		    RF_ERR_STATE, "incident %lld is closed", (long long)id);
	if ((r = load_items(c, id, tenant, NULL, &iv)) != 0)
		goto out;
	if (iv.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "tenant %s is not in the scope of incident %lld",
		    tenant != NULL ? tenant : "(any)", (long long)id);
		goto out;
	}
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
    int64_t t, int *matched)
{
	struct rf_item_rec it;
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
	if (is_new && strcmp(it.state, "contained") == 0) {
		/* The relying party checks the new credential: in use. */
		snprintf(it.state, sizeof(it.state), "reestablished");
		snprintf(it.evidence, sizeof(it.evidence),
		    "OCSP query for new serial at %lld", (long long)t);
		it.updated = t;
		if ((r = rf_store_item_update(c->st, &it)) != 0)
			return r;
		return audit_step(c, it.incident, "evidence", it.tenant, serial,
		    "OCSP query for the new credential");
	}
	if (!is_new && strcmp(it.state, "affected") != 0) {
		/* Something still presents the revoked credential. */
		snprintf(it.evidence, sizeof(it.evidence),
		    "OCSP query for revoked old serial at %lld", (long long)t);
		it.updated = t;
		return rf_store_item_update(c->st, &it);
	}
	return 0;
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
	if ((r = load_incident(c, id, &inc)) != 0)
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

	if ((r = load_incident(c, id, &inc)) != 0)
		return r;
	return rf_store_item_foreach(c->st, id, NULL, NULL, adapt_item, &a);
}

/* ---- Report ---- */

struct report_acc {
	FILE *md;
	json_t *arr;
};

static int
report_event(void *arg, const struct rf_event_rec *e)
{
	struct report_acc *a = arg;

	if (a->md != NULL)
		fprintf(a->md, "| %lld | %s | %s |\n", (long long)e->time,
		    e->kind, e->detail);
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

	if (a->md != NULL)
		fprintf(a->md, "| %s | %s | %s | %s | %s | %s | %s |\n",
		    ic->tenant, ic->name, ic->rp, ic->state, ic->old_serial,
		    ic->new_serial[0] ? ic->new_serial : "-",
		    ic->evidence[0] ? ic->evidence : "-");
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
		fprintf(md,
		    "# Incident %lld\n\n"
		    "- scope: `%s`\n- reason: %s\n- state: %s\n"
		    "- opened: %lld\n- contained: %lld\n- closed: %lld\n"
		    "- new issuer: %s\n\n"
		    "## Blast radius\n\n"
		    "- connections in scope: %zu\n"
		    "- signatures by the keys in scope (audit record): %llu\n\n"
		    "| state | connections |\n| --- | --- |\n",
		    (long long)s.id, s.scope, s.reason, s.state,
		    (long long)s.opened, (long long)s.contained,
		    (long long)s.closed, s.new_issuer[0] ? s.new_issuer : "-",
		    s.total, (unsigned long long)s.signatures);
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
		    "old serial | new serial | evidence |\n"
		    "| --- | --- | --- | --- | --- | --- | --- |\n");
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
	const char **ids = NULL, **mine = NULL;
	size_t i, open_n, destroyed = 0, nmine = 0;
	int r;

	if ((r = load_incident(c, id, &inc)) != 0)
		return r;
	if (strcmp(inc.state, "closed") == 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld is already closed", (long long)id);
	if ((r = rf_incident_status(c, id, &s)) != 0)
		return r;
	open_n = s.counts[RF_ITEM_AFFECTED] + s.counts[RF_ITEM_CONTAINED];
	if (open_n > 0)
		return rf_err_set(RF_ERR_STATE,
		    "incident %lld has %zu connections not yet re-established: "
		    "confirm or waive them first ('ringfence incident status "
		    "%lld')",
		    (long long)id, open_n, (long long)id);
	if ((r = load_items(c, id, NULL, NULL, &iv)) != 0)
		goto out;
	/* Destroy the old keys held in the token, then close. */
	if ((ids = calloc(iv.n + 1, sizeof(*ids))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < iv.n; i++)
		ids[i] = iv.v[i].old_key;
	if ((r = token_keys(c, ids, iv.n, "destroyed", &mine, &nmine)) != 0 ||
	    (r = rf_keys_destroy_many(
		 c->keys, mine, nmine, c->who, &destroyed)) != 0 ||
	    (r = set_key_states(c, mine, nmine, "destroyed")) != 0)
		goto out;
	destroyed = nmine;
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
		 "closed; %zu old keys destroyed in the token", destroyed)) !=
		0 ||
	    (r = rf_store_commit(c->st)) != 0) {
		rf_store_rollback(c->st);
		goto out;
	}
	r = 0;
out:
	free(ids);
	free(mine);
	free(iv.v);
	return r;
}
