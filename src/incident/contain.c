/*
 * contain.c: containment, the old credentials and keys of an incident
 * taken out of service: the compromised issuing CA replaced, the old
 * credentials revoked and published, their keys disabled, then
 * destroyed. reissue.c gives the connections their successors (step 4);
 * close (track.c) destroys what contain has not.
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
 *   5. the old keys are destroyed in the token, a phase of its own after
 *      "contained" is recorded (close destroys them when contain has not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "ca/ca.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "store/store_incident.h"

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

void
rf_incident_phase_time(
    struct rf_contain_report *rep, const char *name, double *t)
{
	double now = rf_mono_s();

	phase_add(rep, name, now - *t);
	*t = now;
}

struct event_find {
	const char *kind, *until;
	int found;
	size_t count;
};

static int
event_match(void *arg, const struct rf_event_rec *e)
{
	struct event_find *f = arg;

	if (strcmp(e->kind, f->kind) == 0) {
		f->found = 1;
		/* The count it names: its detail begins with it. */
		if (sscanf(e->detail, "%zu", &f->count) != 1)
			f->count = 0;
	} else if (f->until != NULL && strcmp(e->kind, f->until) == 0) {
		f->found = 0;
	}
	return 0;
}

/*
 * *found = 1 if the incident's timeline has an event of this kind, with
 * no event of kind until (NULL: none) after the last one; *count (may be
 * NULL) receives the number its detail begins with.
 */
static int
has_event(const struct rf_incident_ctx *c, int64_t id, const char *kind,
    const char *until, int *found, size_t *count)
{
	struct event_find f = {kind, until, 0, 0};
	int r;

	*found = 0;
	if ((r = rf_store_incident_event_foreach(c->st, id, event_match, &f)) !=
	    0)
		return r;
	*found = f.found;
	if (count != NULL)
		*count = f.found ? f.count : 0;
	return 0;
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
		r = rf_incident_event(c, id, "revoke-ca",
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
	    (r = rf_incident_event(c, id, "revoke-tls",
		 "serve's HTTPS certificate %s, issued by %s, revoked "
		 "(cACompromise)",
		 tls.serial, name)) != 0)
		goto out;
	if ((r = rf_ca_tls_renew(c->ca, c->who, &made)) == 0 && made)
		r = rf_incident_event(c, id, "renew-tls",
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
int
rf_incident_previous_in_scope(const struct rf_incident_ctx *c,
    const char *scope, const struct rf_item_rec *it, char serial[41],
    char key[65])
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
		if ((r = rf_incident_previous_in_scope(
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
	rf_incident_phase_time(rep, "revoke: previous credentials", &t0);
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
	rf_incident_phase_time(rep, "revoke: compromised-key list", &t0);
	if (r != 0)
		return r;
	return rf_incident_event(c, id, "published",
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
	int r, own;

	*out = NULL;
	*nout = 0;
	if ((v = calloc(n > 0 ? n : 1, sizeof(*v))) == NULL)
		return RF_ERR_ALLOC;
	/* One read of the store for all of them, not one each. */
	if ((r = rf_store_read_begin(c->st, &own)) != 0) {
		free(v);
		return r;
	}
	for (i = 0; i < n; i++) {
		if ((r = rf_store_key_get(c->st, ids[i], &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			r = 0;
			continue;
		}
		if (r != 0)
			break;
		if (strcmp(kr.state, skip) == 0 ||
		    strcmp(kr.state, "destroyed") == 0)
			continue;
		v[(*nout)++] = ids[i];
	}
	rf_store_read_end(c->st, own);
	if (r != 0) {
		free(v);
		*nout = 0;
		return r;
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
		if ((r = rf_incident_previous_in_scope(
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
	/*
	 * A rerun that finds none left asks the custody process nothing. The
	 * custody process records the keys' new state itself, in the store,
	 * with a leaf for each.
	 */
	if ((r = token_keys(c, ok.ids, ok.n, "disabled", &mine, &nmine)) != 0 ||
	    nmine == 0)
		goto out;
	rf_progress_phase(c->progress, "disable old keys", nmine);
	if ((r = rf_keys_disable_many(c->keys, mine, nmine, c->who, &done)) !=
	    0)
		goto out;
	rf_progress_add(c->progress, nmine);
	rep->disabled = nmine;
	r = rf_incident_event(
	    c, id, "disable", "%zu keys disabled in the token", nmine);
out:
	old_keys_clear(&ok);
	free(mine);
	return r;
}

/*
 * Steps 2 and 3 finished, once: the revocation published (its OCSP
 * responses were signed meanwhile), then the old keys disabled.
 */
int
rf_incident_contain_publish_disable(const struct rf_incident_ctx *c, int64_t id,
    struct contain_rev *rv, struct rf_contain_report *rep)
{
	double t;
	int r;

	if (rv->disabled)
		return 0;
	if ((r = contain_revoke_end(c, id, rep, rv)) != 0)
		return r;
	t = rf_mono_s();
	/* Its phase, with how many keys, begins in contain_disable. */
	if ((r = contain_disable(c, id, rv->inc, rv->all, rep)) != 0)
		return r;
	rf_incident_phase_time(rep, "disable old keys", &t);
	rv->disabled = 1;
	return 0;
}

/*
 * Take the old keys out of service for good: destroy them in the token,
 * once every successor is committed (a new credential for every
 * connection, the new issuing CA). The intent is an event and a leaf
 * before the act, the result one after it; a run killed in between
 * repeats the act, which skips keys already gone. Such a rerun (contain
 * or close) keeps the intent it finds without a result: the keys it named
 * that are gone by now (the killed run's custody request went on without
 * it) count as destroyed, and the result names the intent's count.
 */
int
rf_incident_retire_keys(const struct rf_incident_ctx *c, int64_t id,
    const struct rf_incident_rec *inc, const struct item_vec *iv,
    size_t *destroyed)
{
	struct old_keys ok;
	const char **mine = NULL;
	struct rf_err_held first;
	size_t nmine = 0, done = 0, failed = 0, part, i, k;
	size_t named = 0, gone;
	int r, pending = 0;

	*destroyed = 0;
	if ((r = old_keys_get(c, inc, iv, &ok)) != 0)
		return r;
	if ((r = token_keys(c, ok.ids, ok.n, "destroyed", &mine, &nmine)) !=
		0 ||
	    (r = has_event(
		 c, id, "destroy-intent", "destroyed", &pending, &named)) != 0)
		goto out;
	if (!pending || named < nmine) {
		if (nmine == 0) {
			r = 0;
			goto out;
		}
		named = nmine;
		if ((r = rf_incident_event(c, id, "destroy-intent",
			 "%zu old keys to destroy in the token: their "
			 "successors are committed",
			 nmine)) != 0)
			goto out;
	}
	gone = named - nmine;
	/* A phase with its count: status shows what is left to destroy. */
	rf_progress_phase(c->progress, "destroy old keys", named);
	rf_progress_add(c->progress, gone);
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
		    msg, named - failed, named, failed);
		goto out;
	}
	*destroyed = named;
	if (gone == 0)
		r = rf_incident_event(c, id, "destroyed",
		    "%zu old keys destroyed in the token (%zu found there)",
		    named, done);
	else
		r = rf_incident_event(c, id, "destroyed",
		    "%zu old keys destroyed in the token: %zu now (%zu found "
		    "there), %zu found already destroyed, by the run that "
		    "recorded the intent and stopped before its result",
		    named, nmine, done, gone);
out:
	old_keys_clear(&ok);
	free(mine);
	return r;
}

/*
 * The connections of av as "TENANT/NAME SERIAL", whole and in order,
 * separated by ", ", as many as fit in buf (cap bytes, its NUL included,
 * at least 32) with room for what follows them: ", and N more", or "N not
 * named here" when not even the first fits. Names are up to 64
 * characters: a line of 512 bytes holds two or three.
 */
static void
aside_names(const struct aside_vec *av, char *buf, size_t cap)
{
	char more[48];
	size_t i, len = 0, need;
	int w;

	buf[0] = '\0';
	for (i = 0; i < av->n; i++) {
		w = snprintf(NULL, 0, "%s%s/%s %s", i > 0 ? ", " : "",
		    av->v[i].it.tenant, av->v[i].it.name, av->v[i].serial);
		need = i + 1 < av->n ? (size_t)snprintf(more, sizeof(more),
					   ", and %zu more", av->n - i - 1)
				     : 0;
		if (w < 0 || len + (size_t)w + need >= cap)
			break;
		snprintf(buf + len, cap - len, "%s%s/%s %s", i > 0 ? ", " : "",
		    av->v[i].it.tenant, av->v[i].it.name, av->v[i].serial);
		len += (size_t)w;
	}
	if (i < av->n)
		snprintf(buf + len, cap - len,
		    i > 0 ? ", and %zu more" : "%zu not named here", av->n - i);
}

/*
 * head, av's names (as many as fit) and tail, in one line of out (512
 * bytes, rf_err_set's and an event's): the tail, which holds the way
 * out, whole; the names take what is left.
 */
static void
aside_line(const struct aside_vec *av, const char *head, const char *tail,
    char out[512])
{
	char names[512];
	size_t room = 512 - strlen(head) - strlen(tail);

	aside_names(av, names, room < sizeof(names) ? room : sizeof(names));
	snprintf(out, 512, "%s%s%s", head, names, tail);
}

/*
 * Connections left alone (av): every other one is contained. How many,
 * and the first names that fit, go into the timeline (an "elsewhere"
 * event), and the way out into the error, which does not ask for a plain
 * rerun: it would leave them alone again. Waived, a connection keeps the
 * credential it has (the operator may revoke it, and issue anew, once
 * the connection is no longer affected); contain then records the
 * incident contained. Each is one line of at most 511 bytes that names
 * no connection in part: a tenant name is up to 64 characters and a
 * connection's up to 63, so only the first few fit.
 */
static int
aside_fail(
    const struct rf_incident_ctx *c, int64_t id, const struct aside_vec *av)
{
	const struct rf_item_rec *it = &av->v[0].it;
	char head[160], tail[400], line[512];
	int r;

	snprintf(head, sizeof(head),
	    "%zu connections left affected: their credential was given them "
	    "elsewhere after the incident opened, not by contain: ",
	    av->n);
	aside_line(av, head, "", line);
	if ((r = rf_incident_event(c, id, "elsewhere", "%s", line)) != 0)
		return r;
	if (av->n == 1) {
		snprintf(head, sizeof(head), "connection ");
		snprintf(tail, sizeof(tail),
		    ": credential issued elsewhere after incident %lld "
		    "opened; contain left it alone. Keep it: 'ringfence "
		    "incident confirm %lld --tenant %s --connection %s "
		    "--waive', then 'ringfence incident contain %lld'",
		    (long long)id, (long long)id, it->tenant, it->name,
		    (long long)id);
	} else {
		snprintf(head, sizeof(head),
		    "%zu connections have credentials issued elsewhere after "
		    "incident %lld opened (",
		    av->n, (long long)id);
		snprintf(tail, sizeof(tail),
		    "); contain left them alone. Keep them: waive each, as "
		    "'ringfence incident confirm %lld --tenant %s --connection "
		    "%s --waive' ('ringfence incident status %lld' lists "
		    "them), "
		    "then 'ringfence incident contain %lld'",
		    (long long)id, it->tenant, it->name, (long long)id,
		    (long long)id);
	}
	aside_line(av, head, tail, line);
	return rf_err_set(RF_ERR_STATE, "%s", line);
}

int
rf_incident_contain(
    const struct rf_incident_ctx *c, int64_t id, struct rf_contain_report *rep)
{
	struct rf_incident_rec inc;
	struct item_vec all = {0}, todo = {0};
	struct aside_vec aside = {0};
	struct contain_rev rv = {0};
	char newname[64];
	double t0, t;
	int r, published = 0, resume = 1;

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
	rf_incident_phase_time(rep, "load the incident", &t);

	/* 1. A new issuing CA when the issuer itself is compromised. */
	if (strncmp(inc.scope, "issuer:", 7) == 0) {
		snprintf(
		    newname, sizeof(newname), "issuing-inc%lld", (long long)id);
		r = rf_ca_rotate(c->ca, inc.scope + 7, newname, c->who);
		if (r == 0) {
			rep->rotated = 1;
			if ((r = rf_incident_event(c, id, "rotate",
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
		rf_incident_phase_time(rep, "rotate the issuing CA", &t);
	}
	/*
	 * 2, 3. Revoke and disable: idempotent. Revocation is repeated
	 * over all until a run has published it (OCSP and CRL), so that a
	 * run killed between the commit and the re-signing is finished.
	 */
	rf_progress_phase(c->progress, "revoke and publish", all.n);
	if ((r = has_event(c, id, "published", NULL, &published, NULL)) != 0 ||
	    (!published &&
		(r = contain_revoke_begin(c, inc.scope, &all, rep, &rv)) != 0))
		goto out;
	rf_progress_add(c->progress, all.n);
	rv.inc = &inc;
	rv.all = &all;
	t = rf_mono_s();
	/* 4. New credentials for connections still affected, but those
	 * that got one elsewhere. */
	if ((r = rf_incident_load_items(c, id, NULL, "affected", &todo)) != 0 ||
	    (r = rf_incident_set_aside(c, id, &todo, &aside)) != 0)
		goto out;
	rf_incident_phase_time(rep, "load the incident", &t);
	/* A key for each connection left to contain (contain_keys counts). */
	rf_progress_phase(c->progress, "take new keys", todo.n);
	if ((r = rf_incident_contain_issue(c, id, &todo, &rv, rep, &aside)) !=
		0 ||
	    (r = rf_incident_contain_publish_disable(c, id, &rv, rep)) != 0)
		goto out;
	/* Not contained while a connection is left alone; nor are the old
	 * keys destroyed, which a waive of it lets the next run do. */
	if (aside.n > 0) {
		r = aside_fail(c, id, &aside);
		resume = 0;
		goto out;
	}
	t = rf_mono_s();
	/* Every connection has its successor, published: contained. */
	if (strcmp(inc.state, "open") == 0) {
		snprintf(inc.state, sizeof(inc.state), "contained");
		inc.contained = rf_now();
		if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
		    (r = rf_incident_event(c, id, "contained",
			 "%zu connections contained", all.n)) != 0)
			goto out;
	}
	rf_incident_phase_time(rep, "record contained", &t);
	rep->contain_s = rf_mono_s() - t0;
	/*
	 * 5. The old keys go for good, as a phase of its own: they are
	 * disabled (no longer sign) since step 3, so the destruction,
	 * which costs the token's per-object file work rather than
	 * signatures, is not on the path to "contained". A run killed
	 * here is finished by running contain (or close) again.
	 */
	t0 = rf_mono_s();
	if ((r = rf_incident_retire_keys(c, id, &inc, &all, &rep->destroyed)) !=
	    0)
		goto out;
	rep->destroy_s = rf_mono_s() - t0;
	phase_add(rep, "destroy old keys", rep->destroy_s);
	r = 0;
out:
	if (r != 0 && resume) {
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
	free(aside.v);
	return r;
}
