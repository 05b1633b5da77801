/*
 * revoke.c: revoking certificates, and making the revocation visible to
 * OCSP and CRL clients before returning.
 *
 * Order of a revocation:
 *   1. select the certificates (serial | tenant | key; with keyCompromise
 *      every certificate of the same public keys, in any tenant and under
 *      any exponent or encoding: the same key identity);
 *   2. one store transaction: rf_store_cert_revoke for each, the CRL of
 *      each affected issuer marked due, one "revoke" audit leaf per
 *      changed certificate; commit (durable);
 *   3. re-sign the OCSP responses of every selected serial;
 *   4. regenerate the CRL of every affected issuer that is due.
 * Steps 3 and 4 repeat on a second run of the same command, so a crash
 * after 2 is repaired by running it again (see docs/revocation.md).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "ocsp/ocsp.h"
#include "common/progress.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "store/store_incident.h"

/* Upper bound on one revocation: far above any tenant's certificates. */
#define REVOKE_MAX (4u * 1024 * 1024)
/* OCSP responses signed per request while progress is shown. */
#define OCSP_PART 1000

struct target {
	char serial[41];
	char issuer[64];
	char tenant[128];
	char key_id[65];
	int changed;
};

struct targets {
	struct target *v;
	size_t n, cap;
};

static int
targets_add(struct targets *t, const struct rf_cert_rec *c)
{
	struct target *nv;
	size_t cap;

	if (t->n == t->cap) {
		if (t->cap >= REVOKE_MAX)
			return rf_err_set(RF_ERR_TOO_LARGE,
			    "more than %u certificates selected", REVOKE_MAX);
		cap = t->cap ? t->cap * 2 : 16;
		if ((nv = reallocarray(t->v, cap, sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		t->v = nv;
		t->cap = cap;
	}
	memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
	snprintf(t->v[t->n].serial, sizeof(t->v[t->n].serial), "%s", c->serial);
	snprintf(t->v[t->n].issuer, sizeof(t->v[t->n].issuer), "%s", c->issuer);
	snprintf(t->v[t->n].tenant, sizeof(t->v[t->n].tenant), "%s", c->tenant);
	snprintf(t->v[t->n].key_id, sizeof(t->v[t->n].key_id), "%s", c->key_id);
	t->n++;
	return 0;
}

static int
targets_add_cb(void *arg, const struct rf_cert_rec *c)
{
	return targets_add(arg, c);
}

static int
target_cmp(const void *a, const void *b)
{
	return strcmp(((const struct target *)a)->serial,
	    ((const struct target *)b)->serial);
}

/* Sort by serial and drop duplicates. */
static void
targets_unique(struct targets *t)
{
	size_t i, k = 0;

	if (t->n == 0)
		return;
	qsort(t->v, t->n, sizeof(*t->v), target_cmp);
	for (i = 1; i < t->n; i++)
		if (strcmp(t->v[i].serial, t->v[k].serial) != 0)
			t->v[++k] = t->v[i];
	t->n = k + 1;
}

static int
key_id_check(const char *id)
{
	size_t i;

	if (strlen(id) != 64)
		return RF_ERR_ARG;
	for (i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)id[i]))
			return RF_ERR_ARG;
	return 0;
}

/*
 * RFC 5280 5.3.1: keyCompromise means the private key may be known to
 * someone else, so every certificate that carries the same public key is
 * as compromised as the one named, whatever its tenant. The filter names
 * only the key: the query is tenant-agnostic.
 */
static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
add_same_keys(struct rf_store *st, struct targets *t)
{
	struct rf_cert_filter f = {0};
	char(*ids)[65] = NULL;
	size_t i, n = t->n;
	int r = 0;

	if (n == 0)
		return 0;
	/* A copy: the foreach below appends to t->v (and may move it). */
	if ((ids = calloc(n, sizeof(*ids))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++)
		memcpy(ids[i], t->v[i].key_id, sizeof(ids[i]));
	qsort(ids, n, sizeof(*ids), id_cmp);
	for (i = 0; i < n; i++) {
		if (ids[i][0] == '\0' ||
		    (i > 0 && strcmp(ids[i], ids[i - 1]) == 0))
			continue;
		f.same_key = ids[i]; /* any encoding or exponent of it */
		if ((r = rf_store_cert_foreach(st, &f, targets_add_cb, t)) != 0)
			break;
	}
	free(ids);
	return r;
}

static int
add_serial(struct rf_store *st, const char *in, struct targets *t)
{
	struct rf_cert_rec c = {0};
	char serial[41];
	int r;

	if ((r = rf_revoke_serial_norm(in, serial)) != 0)
		return r;
	if ((r = rf_store_cert_get(st, serial, &c)) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			return rf_err_set(
			    r, "no certificate with serial %s", serial);
		return r;
	}
	r = targets_add(t, &c);
	rf_cert_rec_clear(&c);
	return r;
}

/* What to revoke: a request, or (serials != NULL) a list of serials. */
struct selection {
	const struct rf_revoke_req *req;
	const char **serials;
	size_t nserials;
};

static int
select_targets(
    struct rf_store *st, const struct selection *sel, struct targets *t)
{
	const struct rf_revoke_req *req = sel->req;
	struct rf_cert_filter f = {0};
	struct rf_tenant tn;
	char id[65];
	size_t i;
	int r;

	if (sel->serials != NULL) {
		for (i = 0; i < sel->nserials; i++)
			if ((r = add_serial(st, sel->serials[i], t)) != 0)
				return r;
	} else if (req->serial != NULL) {
		if ((r = add_serial(st, req->serial, t)) != 0)
			return r;
	} else if (req->tenant != NULL) {
		if ((r = rf_store_tenant_get(st, req->tenant, &tn)) != 0) {
			if (r == RF_ERR_NOT_FOUND)
				return rf_err_set(
				    r, "no tenant named '%s'", req->tenant);
			return r;
		}
		f.tenant = req->tenant;
		if ((r = rf_store_cert_foreach(st, &f, targets_add_cb, t)) != 0)
			return r;
	} else {
		if (key_id_check(req->key_id) != 0)
			return rf_err_set(RF_ERR_ARG,
			    "key id '%s' is not 64 hex digits "
			    "(SHA-256 of the public key)",
			    req->key_id);
		for (i = 0; i < 64; i++)
			id[i] = (char)tolower((unsigned char)req->key_id[i]);
		id[64] = '\0';
		f.key_id = id;
		if ((r = rf_store_cert_foreach(st, &f, targets_add_cb, t)) != 0)
			return r;
		if (t->n == 0)
			return rf_err_set(
			    RF_ERR_NOT_FOUND, "no certificate with key %s", id);
	}
	if (req->reason == RF_CRL_REASON_KEY_COMPROMISE &&
	    (r = add_same_keys(st, t)) != 0)
		return r;
	targets_unique(t);
	return 0;
}

/*
 * Steps 1 and 2 in one transaction (BEGIN IMMEDIATE): no certificate of a
 * compromised key can be issued between the selection and the commit.
 */
static int
revoke_commit(struct rf_store *st, struct rf_audit *audit,
    const struct selection *sel, struct targets *t, const struct rf_actor *who,
    size_t *changed)
{
	struct rf_audit_event *evs = NULL;
	char detail[64];
	const char *marked[8];
	size_t i, j, n = 0, nmarked = 0;
	int r = RF_ERR_INTERNAL, in_tx = 0, ch, dup;
	int64_t now = rf_now();
	int reason = sel->req->reason;

	*changed = 0;
	snprintf(
	    detail, sizeof(detail), "reason %s", rf_crl_reason_name(reason));
	if ((r = rf_store_begin_bulk(st)) != 0)
		goto out;
	in_tx = 1;
	if ((r = select_targets(st, sel, t)) != 0)
		goto out;
	if (t->n > 0 && (evs = calloc(t->n, sizeof(*evs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < t->n; i++) {
		ch = 0;
		if ((r = rf_store_cert_revoke(
			 st, t->v[i].serial, now, reason, &ch)) != 0)
			goto out;
		t->v[i].changed = ch;
		if (!ch)
			continue;
		for (dup = 0, j = 0; j < nmarked && !dup; j++)
			dup = strcmp(marked[j], t->v[i].issuer) == 0;
		if (!dup) {
			if ((r = rf_crl_mark_revoked(st, t->v[i].issuer)) != 0)
				goto out;
			if (nmarked < sizeof(marked) / sizeof(marked[0]))
				marked[nmarked++] = t->v[i].issuer;
		}
		evs[n].type = "revoke";
		evs[n].key_id = t->v[i].key_id;
		evs[n].tenant = t->v[i].tenant[0] ? t->v[i].tenant : NULL;
		evs[n].ref = t->v[i].serial;
		evs[n].actor = who ? who->actor : NULL;
		evs[n].source = who ? who->source : NULL;
		evs[n].detail = detail;
		evs[n].time = now;
		n++;
	}
	if (n > 0 && (r = rf_audit_append(audit, evs, n, NULL)) != 0)
		goto out;
	if ((r = rf_store_commit(st)) != 0)
		goto out;
	in_tx = 0;
	*changed = n;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(st);
	free(evs);
	return r;
}

/* Whether target i is the first of its issuer: each issuer once. */
static int
first_of_issuer(const struct targets *t, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (strcmp(t->v[j].issuer, t->v[i].issuer) == 0)
			return 0;
	return 1;
}

/*
 * Step 3, in three parts: the responses of each issuer prepared from the
 * committed statuses (the store), signed (keys only: this part may run on
 * a thread of its own while the caller goes on), then assembled and stored
 * in one transaction. Each issuer among the targets that has a delegated
 * signer (RFC 6960 4.2.2.2: "ocsp" for "issuing", "ocsp-<name>" for an
 * issuing CA made by rotation) has its part; issuers without one (the
 * root) rely on their CRL.
 */
struct pub_issuer {
	struct rf_ocsp_signer *s;
	struct rf_ocsp_presigned *p;
	struct rf_sig *sigs;
	size_t n;
};

struct rf_revoke_pub {
	const struct rf_config *cfg;
	struct rf_store *st;
	struct rf_keys *keys;
	struct rf_ca *ca;
	const struct rf_actor *who;
	struct targets t;
	struct pub_issuer *iss;
	size_t niss;
	struct rf_err_held sign; /* the signing's result and message */
	pthread_t tid;
	int running;
	double t_ocsp; /* seconds of step 3 on the caller's thread */
};

void
rf_revoke_pub_free(struct rf_revoke_pub *pub)
{
	size_t i, j;

	if (pub == NULL)
		return;
	if (pub->running)
		pthread_join(pub->tid, NULL);
	for (i = 0; i < pub->niss; i++) {
		for (j = 0; pub->iss[i].sigs != NULL && j < pub->iss[i].n; j++)
			rf_sig_clear(&pub->iss[i].sigs[j]);
		free(pub->iss[i].sigs);
		rf_ocsp_presigned_free(pub->iss[i].p);
		rf_ocsp_signer_free(pub->iss[i].s);
	}
	free(pub->iss);
	free(pub->t.v);
	free(pub);
}

/* The responses of issuer's targets, as committed, to be signed. */
static int
pub_prepare_issuer(
    struct rf_revoke_pub *pub, const char *issuer, struct pub_issuer *pi)
{
	const struct targets *t = &pub->t;
	struct rf_ocsp_status *stv = NULL;
	struct rf_cert_rec c = {0};
	struct rf_key *okey;
	X509 *ocert, *icert;
	char oname[64];
	size_t i, n = 0;
	int r = RF_ERR_INTERNAL;

	rf_ca_ocsp_name(issuer, oname);
	if ((okey = rf_ca_key(pub->ca, oname)) == NULL ||
	    (ocert = rf_ca_cert(pub->ca, oname)) == NULL ||
	    (icert = rf_ca_cert(pub->ca, issuer)) == NULL)
		return 0; /* no responder: the CRL speaks for it */
	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i].issuer, issuer) == 0)
			n++;
	if ((stv = calloc(n, sizeof(*stv))) == NULL ||
	    (pi->sigs = calloc(n, sizeof(*pi->sigs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (n = 0, i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].issuer, issuer) != 0)
			continue;
		/* The status as committed (the first date may be older). */
		if ((r = rf_store_cert_get(pub->st, t->v[i].serial, &c)) != 0)
			goto out;
		stv[n].serial = t->v[i].serial;
		stv[n].revoked = c.revoked;
		stv[n].revoked_at = c.revoked_at;
		stv[n].reason = c.reason;
		rf_cert_rec_clear(&c);
		n++;
	}
	pi->n = n;
	if ((r = rf_ocsp_signer_new(pub->cfg, pub->st, pub->keys, okey, ocert,
		 icert, issuer, &pi->s)) != 0 ||
	    (r = rf_ocsp_presign_prepare(pi->s, stv, n, &pi->p)) != 0)
		goto out;
	r = 0;
out:
	rf_cert_rec_clear(&c);
	free(stv);
	return r;
}

static int
pub_prepare(struct rf_revoke_pub *pub)
{
	size_t i;
	int r;

	if (pub->t.n > 0 &&
	    (pub->iss = calloc(pub->t.n, sizeof(*pub->iss))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < pub->t.n; i++) {
		if (!first_of_issuer(&pub->t, i))
			continue;
		r = pub_prepare_issuer(
		    pub, pub->t.v[i].issuer, &pub->iss[pub->niss++]);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The signatures, in parts, so that progress (NULL: none) moves while
 * thousands are signed. Touches no store. */
static int
pub_sign(struct rf_revoke_pub *pub, struct rf_progress *progress)
{
	const struct rf_sign_req *reqs;
	size_t i, j, b, n;
	int r;

	for (i = 0; i < pub->niss; i++) {
		if (pub->iss[i].p == NULL)
			continue;
		reqs = rf_ocsp_presigned_reqs(pub->iss[i].p, &n);
		for (j = 0; j < n; j += b) {
			b = n - j < OCSP_PART ? n - j : OCSP_PART;
			if ((r = rf_keys_sign(pub->keys,
				 rf_ocsp_signer_key(pub->iss[i].s), &reqs[j], b,
				 pub->who, &pub->iss[i].sigs[j])) != 0)
				return r;
			rf_progress_add(progress, b);
		}
	}
	return 0;
}

static void *
pub_sign_main(void *arg)
{
	struct rf_revoke_pub *pub = arg;

	rf_err_keep(&pub->sign, pub_sign(pub, NULL));
	return NULL;
}

/* The responses assembled and stored (all or nothing), unless a newer
 * status was committed meanwhile (its writer publishes it). */
static int
pub_store(struct rf_revoke_pub *pub)
{
	size_t i;
	int r, in_tx = 0;

	for (i = 0; i < pub->niss; i++)
		if (pub->iss[i].p != NULL &&
		    (r = rf_ocsp_presign_finish(
			 pub->iss[i].p, pub->iss[i].sigs)) != 0)
			return r;
	if ((r = rf_store_begin_bulk(pub->st)) != 0)
		return r;
	in_tx = 1;
	for (i = 0; i < pub->niss; i++)
		if (pub->iss[i].p != NULL &&
		    (r = rf_ocsp_presigned_store_current(pub->iss[i].p)) != 0)
			goto out;
	if ((r = rf_store_commit(pub->st)) != 0)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(pub->st);
	return r;
}

/* Step 4: the CRL of every issuer among the targets, when due. */
static int
revoke_crls(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const struct targets *t,
    const struct rf_actor *who)
{
	size_t i;
	int r;

	for (i = 0; i < t->n; i++)
		if (first_of_issuer(t, i) &&
		    (r = rf_crl_refresh(
			 cfg, st, keys, ca, t->v[i].issuer, who, NULL)) != 0)
			return r;
	return 0;
}

static int
reason_check(int reason)
{
	/* RFC 5280 5.3.1: removeFromCRL is only for delta CRLs. */
	if (reason == RF_CRL_REASON_REMOVE_FROM_CRL)
		return rf_err_set(RF_ERR_ARG,
		    "removeFromCRL is not a revocation reason "
		    "(a revocation cannot be undone)");
	if (reason < RF_CRL_REASON_NONE ||
	    reason > RF_CRL_REASON_AA_COMPROMISE || reason == 7)
		return rf_err_set(
		    RF_ERR_ARG, "invalid revocation reason %d", reason);
	return 0;
}

/* The error of a step after the commit: a rerun publishes. */
static int
publish_failed(int r)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
	return rf_err_set(r,
	    "revocation committed, but publishing it failed (%s): run the "
	    "same command again",
	    msg);
}

/*
 * Steps 1 and 2, then step 3 prepared; with thread, its signatures are
 * started on a thread of their own. *out is the publication to finish
 * with publish_end (NULL after an error).
 */
static int
revoke_begin(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const struct selection *sel, const struct rf_actor *who, size_t *revoked,
    struct rf_revoke_times *tm, int thread, struct rf_revoke_pub **out)
{
	struct rf_progress *p = sel->req->progress;
	struct rf_revoke_pub *pub;
	size_t changed = 0;
	double t0 = rf_mono_s(), t1;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	*revoked = 0;
	memset(tm, 0, sizeof(*tm));
	if (audit == NULL)
		return rf_err_set(RF_ERR_ARG, "revoke: no audit record");
	if ((r = reason_check(sel->req->reason)) != 0)
		return r;
	if ((pub = calloc(1, sizeof(*pub))) == NULL)
		return RF_ERR_ALLOC;
	pub->cfg = cfg;
	pub->st = st;
	pub->keys = keys;
	pub->ca = ca;
	pub->who = who;
	rf_progress_phase(p, "select and commit", 0);
	if ((r = revoke_commit(st, audit, sel, &pub->t, who, &changed)) != 0) {
		rf_revoke_pub_free(pub);
		return r;
	}
	*revoked = changed;
	t1 = rf_mono_s();
	tm->commit_s = t1 - t0;
	rf_test_point("revoke-committed");
	/* Committed: from here an error asks for a retry, which repairs. */
	rf_progress_phase(p, "re-sign OCSP responses", pub->t.n);
	if ((r = pub_prepare(pub)) != 0) {
		rf_revoke_pub_free(pub);
		return publish_failed(r);
	}
	/* A token in this process appends to this store: no thread. */
	if (thread && rf_keys_remote(keys) &&
	    pthread_create(&pub->tid, NULL, pub_sign_main, pub) == 0)
		pub->running = 1;
	else
		rf_err_keep(&pub->sign, pub_sign(pub, thread ? NULL : p));
	pub->t_ocsp = rf_mono_s() - t1;
	*out = pub;
	return 0;
}

/* Step 3's signatures awaited and stored, then step 4; pub is freed. */
static int
publish_end(struct rf_revoke_pub *pub, struct rf_progress *p,
    struct rf_revoke_times *tm)
{
	double t0 = rf_mono_s();
	int r;

	if (pub->running) {
		pthread_join(pub->tid, NULL);
		pub->running = 0;
	}
	if ((r = rf_err_kept(&pub->sign)) == 0 && (r = pub_store(pub)) == 0)
		rf_progress_phase(p, "regenerate CRLs", 0);
	tm->ocsp_s = pub->t_ocsp + rf_mono_s() - t0;
	t0 = rf_mono_s();
	if (r == 0)
		r = revoke_crls(
		    pub->cfg, pub->st, pub->keys, pub->ca, &pub->t, pub->who);
	tm->crl_s = rf_mono_s() - t0;
	rf_revoke_pub_free(pub);
	return r != 0 ? publish_failed(r) : 0;
}

static int
revoke_run(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const struct selection *sel, const struct rf_actor *who, size_t *revoked,
    struct rf_revoke_times *tm)
{
	struct rf_revoke_times unused;
	struct rf_revoke_pub *pub = NULL;
	int r;

	if (tm == NULL)
		tm = &unused;
	if ((r = revoke_begin(cfg, st, keys, ca, audit, sel, who, revoked, tm,
		 0, &pub)) != 0)
		return r;
	return publish_end(pub, sel->req->progress, tm);
}

int
rf_revoke(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const struct rf_revoke_req *req, const struct rf_actor *who,
    size_t *revoked)
{
	struct selection sel = {0};

	*revoked = 0;
	if (req == NULL)
		return rf_err_set(RF_ERR_ARG, "revoke: missing request");
	if ((req->serial != NULL) + (req->tenant != NULL) +
		(req->key_id != NULL) !=
	    1)
		return rf_err_set(RF_ERR_ARG,
		    "revoke: name exactly one of a serial, a tenant or a "
		    "key");
	sel.req = req;
	return revoke_run(cfg, st, keys, ca, audit, &sel, who, revoked, NULL);
}

int
rf_revoke_serials(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked)
{
	return rf_revoke_serials_timed(
	    cfg, st, keys, ca, audit, serials, n, reason, who, revoked, NULL);
}

int
rf_revoke_previous_of(struct rf_store *st, const char *tenant, const char *conn,
    char serial[41], int *live)
{
	struct rf_conn_rec cn;
	struct rf_cert_rec cr;
	int r;

	serial[0] = '\0';
	*live = 0;
	if ((r = rf_store_conn_get(st, tenant, conn, &cn)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0;
	}
	if (r != 0 || cn.serial[0] == '\0' || cn.previous[0] == '\0' ||
	    strcmp(cn.serial, cn.previous) == 0)
		return r;
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(st, cn.previous, &cr)) == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0;
	}
	if (r != 0)
		return r;
	if (cr.not_after >= rf_now()) {
		snprintf(serial, 41, "%s", cn.previous);
		*live = !cr.revoked;
	}
	rf_cert_rec_clear(&cr);
	return 0;
}

int
rf_revoke_superseded(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char *tenant, const char *const *conns, size_t n,
    const struct rf_actor *who, size_t *revoked, char (*superseded)[41])
{
	const char **serials = NULL;
	char(*prev)[41] = NULL;
	size_t *at = NULL, i, j, k = 0, done = 0;
	int r = 0, live, own;

	if (revoked != NULL)
		*revoked = 0;
	if (n == 0)
		return 0;
	if ((serials = calloc(n, sizeof(*serials))) == NULL ||
	    (prev = calloc(n, sizeof(*prev))) == NULL ||
	    (at = calloc(n, sizeof(*at))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/*
	 * An unexpired previous credential revoked already is asked again:
	 * the revocation is idempotent, and publishes what a run stopped
	 * after the commit did not (revoke.h), so running the same issue
	 * again finishes it.
	 */
	/* One read snapshot for the lookups (a --csr-dir has thousands). */
	if ((r = rf_store_read_begin(st, &own)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++)
		if ((r = rf_revoke_previous_of(
			 st, tenant, conns[i], prev[k], &live)) == 0 &&
		    prev[k][0] != '\0') {
			serials[k] = prev[k];
			at[k++] = i;
		}
	rf_store_read_end(st, own);
	if (r == 0 && k > 0)
		r = rf_revoke_serials(cfg, st, keys, ca, audit, serials, k,
		    RF_CRL_REASON_SUPERSEDED, who, &done);
	if (r == 0 && revoked != NULL)
		*revoked = done;
	/* One slot per connection, as conns: a caller that committed the
	 * first m retires the first m. */
	if (r == 0 && superseded != NULL)
		for (i = 0, j = 0; i < n; i++)
			snprintf(superseded[i], 41, "%s",
			    j < k && at[j] == i ? prev[j++] : "");
out:
	free(serials);
	free(prev);
	free(at);
	return r;
}

static int
count_live(void *arg, const struct rf_cert_rec *c)
{
	if (!c->revoked)
		(*(size_t *)arg)++;
	return 0;
}

/* 1 if serial's key is a token key to destroy: the store records it, not
 * destroyed, a tenant connection's, and no live certificate has it. */
static int
key_to_retire(
    struct rf_store *st, const char *tenant, const char *serial, char id[65])
{
	struct rf_cert_filter f;
	struct rf_cert_rec cr;
	struct rf_key_rec kr;
	size_t live = 0;
	int r, other;

	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(st, serial, &cr)) != 0)
		return r == RF_ERR_NOT_FOUND ? (rf_err_clear(), 0) : r;
	snprintf(id, 65, "%s", cr.key_id);
	other = strcmp(cr.tenant, tenant) != 0; /* not this tenant's: kept */
	rf_cert_rec_clear(&cr);
	if (other)
		return 0;
	if ((r = rf_store_key_get(st, id, &kr)) != 0)
		return r == RF_ERR_NOT_FOUND ? (rf_err_clear(), 0) : r;
	if (strcmp(kr.purpose, "connection") != 0 ||
	    strcmp(kr.tenant, tenant) != 0 ||
	    strcmp(kr.state, "destroyed") == 0)
		return 0;
	memset(&f, 0, sizeof(f));
	f.key_id = id;
	f.unexpired_at = rf_now();
	if ((r = rf_store_cert_foreach(st, &f, count_live, &live)) != 0)
		return r;
	return live == 0;
}

int
rf_revoke_retire_keys(struct rf_store *st, struct rf_keys *keys,
    const char *tenant, const char (*serials)[41], size_t n,
    const struct rf_actor *who, size_t *destroyed)
{
	const char **ids = NULL;
	char(*buf)[65] = NULL;
	size_t i, k = 0;
	int r = 0;

	*destroyed = 0;
	if (n == 0)
		return 0;
	if ((ids = calloc(n, sizeof(*ids))) == NULL ||
	    (buf = calloc(n, sizeof(*buf))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n && r >= 0; i++)
		if (serials[i][0] != '\0' &&
		    (r = key_to_retire(st, tenant, serials[i], buf[k])) == 1)
			ids[k] = buf[k], k++;
	if (r >= 0 && k > 0)
		r = rf_keys_destroy_tenant_many(keys, ids, k, who, destroyed);
	else if (r > 0)
		r = 0;
out:
	free(ids);
	free(buf);
	return r;
}

/* A list of serials revoked, its publication begun (with thread: its
 * signatures on a thread of their own). */
static int
serials_begin(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked, struct rf_revoke_times *t, int thread,
    struct rf_revoke_pub **pub)
{
	struct rf_revoke_req req = {0};
	struct selection sel = {0};

	*pub = NULL;
	*revoked = 0;
	memset(t, 0, sizeof(*t));
	if (serials == NULL || n == 0)
		return 0;
	req.reason = reason;
	sel.req = &req;
	sel.serials = serials;
	sel.nserials = n;
	return revoke_begin(
	    cfg, st, keys, ca, audit, &sel, who, revoked, t, thread, pub);
}

int
rf_revoke_serials_timed(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked, struct rf_revoke_times *t)
{
	struct rf_revoke_times unused;
	struct rf_revoke_pub *pub = NULL;
	int r;

	if (t == NULL)
		t = &unused;
	if ((r = serials_begin(cfg, st, keys, ca, audit, serials, n, reason,
		 who, revoked, t, 0, &pub)) != 0 ||
	    pub == NULL)
		return r;
	return publish_end(pub, NULL, t);
}

int
rf_revoke_serials_begin(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked, struct rf_revoke_times *t, struct rf_revoke_pub **pub)
{
	struct rf_revoke_times unused;

	return serials_begin(cfg, st, keys, ca, audit, serials, n, reason, who,
	    revoked, t != NULL ? t : &unused, 1, pub);
}

int
rf_revoke_publish(struct rf_revoke_pub *pub, struct rf_revoke_times *t)
{
	struct rf_revoke_times unused;

	if (t == NULL)
		t = &unused;
	if (pub == NULL)
		return 0;
	return publish_end(pub, NULL, t);
}
