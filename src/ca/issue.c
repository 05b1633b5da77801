/*
 * issue.c: issuance (rf_ca_issue, rf_ca_issue_ex, rf_ca_issue_check,
 * rf_ca_issue_pipelined). A batch of requests is checked (check.c), its
 * keys are taken from the standby pool or made in the token, its TBSs
 * composed (tbs.c) and signed in one group with their OCSP responses,
 * then stored with their audit leaves in one transaction. In a pipeline a
 * batch is signed on a thread of its own while the one before commits.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/keyident.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "ocsp/ocsp.h"
#include "pool/pool.h"
#include "store/store.h"

#define CA_SERIAL_TRIES 4

static void
item_clear(struct issue_item *it)
{
	rf_key_free(it->genkey);
	rf_csr_free(it->csr);
	if (it->spki_malloc)
		free(it->spki.p);
	else
		ca_blob_clear(&it->spki);
	ca_blob_clear(&it->name);
	ASN1_INTEGER_free(it->serial);
	ca_blob_clear(&it->serial_der);
	ca_blob_clear(&it->san);
	free(it->tbs);
	free(it->der);
	memset(it, 0, sizeof(*it));
}

/*
 * OCSP pre-signing is wired by the ocsp module: issuance signs the
 * responses with its certificates (issue_sign) and stores them in its
 * transaction. No signer, or a signing failure, fails no issuance (the
 * responder signs what it lacks when it refreshes).
 */
struct rf_ocsp_signer *
ca_ocsp_signer(struct rf_ca *ca)
{
	struct ca_entry *iss = &ca->ent[ca->iss], *oe;
	char oname[64];

	if (ca->ocsp_signer != NULL &&
	    strcmp(rf_ocsp_signer_issuer(ca->ocsp_signer), iss->name) != 0) {
		rf_ocsp_signer_free(ca->ocsp_signer); /* the issuer rotated */
		ca->ocsp_signer = NULL;
	}
	if (ca->ocsp_signer == NULL) {
		rf_ca_ocsp_name(iss->name, oname);
		if ((oe = ca_find(ca, oname)) == NULL || oe->key == NULL ||
		    rf_ocsp_signer_new(&ca->cfg, ca->st, ca->keys, oe->key,
			oe->x, iss->x, iss->name, &ca->ocsp_signer) != 0) {
			rf_err_clear();
			return NULL;
		}
	}
	return ca->ocsp_signer;
}

/*
 * The OCSP responses of a batch's certificates ("good"), prepared to be
 * signed with them by os, the signer batch_prepare found (on the signing
 * thread, which must not make one: that reads the store). NULL (nothing to
 * sign) without an OCSP signer or when preparing fails: the server signs
 * what it lacks when it refreshes.
 */
static struct rf_ocsp_presigned *
issue_ocsp_prepare(struct rf_ca *ca, struct rf_ocsp_signer *os,
    const struct issue_item *items, size_t n)
{
	struct rf_ocsp_presigned *pre = NULL;
	struct rf_ocsp_status *sts;
	size_t i;

	if (ca->presign_late || os == NULL)
		return NULL;
	if ((sts = calloc(n, sizeof(*sts))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		sts[i].serial = items[i].hex;
		sts[i].reason = -1;
	}
	if (rf_ocsp_presign_prepare(os, sts, n, &pre) != 0)
		rf_err_clear();
	free(sts);
	return pre;
}

void
rf_ca_ocsp_name(const char *issuer, char out[64])
{
	if (strcmp(issuer, "issuing") == 0)
		snprintf(out, 64, "ocsp");
	else
		snprintf(out, 64, "ocsp-%.58s", issuer);
}

/* RFC 5280 4.1.2.6: the subject names the tenant and profile. */
static int
issue_subject(struct issue_item *it)
{
	const char *prof = rf_profile_name(it->req->profile);
	X509_NAME *n;
	int r;

	if ((n = ca_name_make("ringfence", prof, it->req->tenant)) == NULL)
		return RF_ERR_ALLOC;
	r = BLOB_I2D(i2d_X509_NAME, n, &it->name);
	X509_NAME_free(n);
	if (r != 0)
		return r;
	snprintf(it->subject, sizeof(it->subject), "CN=%s,OU=%s,O=ringfence",
	    it->req->tenant, prof);
	if (it->req->profile == RF_PROFILE_SERVER) {
		char val[300];

		snprintf(val, sizeof(val), "DNS:%s", it->req->dns);
		return ca_ext_blob(NID_subject_alt_name, val, &it->san);
	}
	return 0;
}

/*
 * Extensions, in order: SKI, AKI, basicConstraints, keyUsage, EKU, SAN,
 * CRL DP, AIA (RFC 5280 4.2.1.x; profiles in docs/ca.md).
 */
static int
issue_tbs(struct rf_ca *ca, struct issue_item *it, int64_t now)
{
	const struct rf_issue_req *q = it->req;
	struct tbs_in in;
	int days = q->days > 0			 ? q->days
	    : q->profile == RF_PROFILE_CONNECTOR ? ca->cfg.connector_days
						 : ca->cfg.cert_days,
	    r;

	ASN1_INTEGER_free(it->serial);
	it->serial = NULL;
	ca_blob_clear(&it->serial_der);
	free(it->tbs);
	it->tbs = NULL;
	if ((r = ca_serial_new(&it->serial, it->hex)) != 0 ||
	    (r = BLOB_I2D(i2d_ASN1_INTEGER, it->serial, &it->serial_der)) != 0)
		return r;
	/* A small backdate absorbs relying parties' clock skew. */
	it->nb = now - CA_BACKDATE;
	it->na = now + (int64_t)days * DAY;
	if (it->na > ca->issuing_not_after)
		it->na = ca->issuing_not_after;
	memset(&in, 0, sizeof(in));
	in.serial = it->serial_der;
	in.alg = ca->alg;
	in.issuer = ca->issuer;
	in.subject = it->name;
	in.spki = it->spki;
	in.nb = it->nb;
	in.na = it->na;
	in.exts[in.nexts++] = (struct blob){it->ski, sizeof(it->ski)};
	in.exts[in.nexts++] = (struct blob){ca->aki, sizeof(ca->aki)};
	in.exts[in.nexts++] = ca->ext[EXT_BC];
	switch (q->profile) {
	case RF_PROFILE_CLIENT:
	case RF_PROFILE_CONNECTOR:
		in.exts[in.nexts++] = ca->ext[EXT_KU_SIG];
		in.exts[in.nexts++] = ca->ext[EXT_EKU_CLIENT];
		break;
	case RF_PROFILE_SERVER:
		/* RSA key exchange (TLS 1.2) needs keyEncipherment. */
		in.exts[in.nexts++] =
		    ca->ext[it->rsa ? EXT_KU_SIG_ENC : EXT_KU_SIG];
		in.exts[in.nexts++] = ca->ext[EXT_EKU_SERVER];
		in.exts[in.nexts++] = it->san;
		break;
	default:
		in.exts[in.nexts++] = ca->ext[EXT_KU_SIG];
		break;
	}
	in.exts[in.nexts++] = ca->ext[EXT_CRLDP];
	in.exts[in.nexts++] = ca->ext[EXT_AIA];
	return ca_tbs_der(&in, &it->tbs, &it->tbslen);
}

/*
 * keyd's word that a batch's requests are recorded (struct rf_recorded):
 * the requests sent, those keyd has recorded, and the signing finished
 * (after which nothing more is said).
 */
struct told {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int want, got, done;
};

static void
told_one(void *arg)
{
	struct told *t = arg;

	pthread_mutex_lock(&t->mu);
	t->got++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void
told_set(struct told *t, int *field, int v)
{
	pthread_mutex_lock(&t->mu);
	*field = v;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* Until every request is recorded, or the signing is over. */
static void
told_wait(struct told *t)
{
	pthread_mutex_lock(&t->mu);
	while (!t->done && (t->want == 0 || t->got < t->want))
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

/*
 * Sign every dirty item, and the OCSP response of every item (by os), in one
 * rf_keys_sign_group: in this process one durable audit append before the
 * token signs any of them (through keyd, one request per key; with t,
 * each recorded whole and said to be through t). Then the certificates are
 * assembled and *pre holds the signed responses, NULL when they could not
 * be made (that alone fails nothing: the server signs what it lacks when
 * it refreshes).
 */
static int
issue_sign(struct rf_ca *ca, struct rf_ocsp_signer *os,
    struct issue_item *items, size_t n, const struct rf_actor *who,
    struct told *t, struct rf_ocsp_presigned **pre)
{
	struct rf_recorded rec = {told_one, t};
	struct rf_sign_set sets[2];
	struct rf_ocsp_presigned *op = NULL;
	struct rf_sign_req *reqs = NULL;
	struct rf_sig *sigs = NULL, *osigs = NULL;
	size_t *idx = NULL, m = 0, on = 0, nsets = 0, i;
	int r = RF_ERR_INTERNAL;

	*pre = NULL;
	memset(sets, 0, sizeof(sets));
	if ((reqs = calloc(n, sizeof(*reqs))) == NULL ||
	    (sigs = calloc(n, sizeof(*sigs))) == NULL ||
	    (osigs = calloc(n, sizeof(*osigs))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!items[i].dirty)
			continue;
		reqs[m].msg = items[i].tbs;
		reqs[m].msglen = items[i].tbslen;
		reqs[m].scheme = RF_SIG_DEFAULT;
		reqs[m].what = "cert";
		reqs[m].ref = items[i].hex;
		reqs[m].tenant = items[i].req->tenant;
		reqs[m].on_behalf = items[i].req->on_behalf;
		reqs[m].proof = items[i].req->proof;
		reqs[m].prooflen = items[i].req->prooflen;
		idx[m++] = i;
	}
	if (m > 0) {
		sets[nsets].key = ca->ent[ca->iss].key;
		sets[nsets].reqs = reqs;
		sets[nsets].n = m;
		sets[nsets].who = who;
		sets[nsets++].sigs = sigs;
	}
	if ((op = issue_ocsp_prepare(ca, os, items, n)) != NULL) {
		sets[nsets].key = rf_ocsp_signer_key(os);
		sets[nsets].reqs = rf_ocsp_presigned_reqs(op, &on);
		sets[nsets].n = on;
		sets[nsets].who = who;
		sets[nsets++].sigs = osigs;
	}
	/* Asked only where a caller waits for it (rf_ca_issue_pipelined). */
	if (t != NULL) {
		for (i = 0; i < nsets; i++)
			sets[i].recorded = &rec;
		told_set(t, &t->want, (int)nsets);
	}
	if (nsets > 0)
		rf_keys_sign_group(ca->keys, sets, nsets);
	if (m > 0 && sets[0].r != 0) {
		r = rf_err_set(sets[0].r, "%s", sets[0].msg);
		goto out;
	}
	if (op != NULL) {
		if (sets[nsets - 1].r == 0 &&
		    rf_ocsp_presign_finish(op, osigs) == 0) {
			*pre = op;
			op = NULL;
		}
		rf_err_clear();
	}
	for (i = 0; i < m; i++) {
		struct issue_item *it = &items[idx[i]];

		free(it->der);
		it->der = NULL;
		/* The first of the batch is also parsed as a relying party. */
		if ((r = ca_cert_finish(it->tbs, it->tbslen, ca->sigalg,
			 &sigs[i], rf_key_public(ca->ent[ca->iss].key), i == 0,
			 &it->der, &it->derlen)) != 0)
			goto out;
		it->dirty = 0;
	}
	r = 0;
out:
	for (i = 0; sigs != NULL && osigs != NULL && i < n; i++) {
		rf_sig_clear(&sigs[i]);
		rf_sig_clear(&osigs[i]);
	}
	if (r != 0) {
		rf_ocsp_presigned_free(*pre);
		*pre = NULL;
	}
	rf_ocsp_presigned_free(op);
	free(sigs);
	free(osigs);
	free(reqs);
	free(idx);
	return r;
}

/*
 * Store every item in one transaction. A serial collision marks that item
 * dirty and returns RF_ERR_EXISTS with everything rolled back.
 */
static int
issue_commit(struct rf_ca *ca, struct issue_item *items, size_t n,
    const struct rf_actor *who, int64_t now, rf_ca_issue_hook hook, void *arg,
    const struct rf_ocsp_presigned *pre)
{
	struct rf_audit_event *evs = NULL;
	struct rf_key_rec kr;
	struct rf_cert_rec cr;
	size_t i;
	int r = RF_ERR_INTERNAL, in_tx = 0;

	if ((evs = calloc(n, sizeof(*evs))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = rf_store_begin_bulk(ca->st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < n; i++) {
		struct issue_item *it = &items[i];
		const struct rf_issue_req *q = it->req;

		if (it->given) {
			/* Recorded by the caller before use: now in use. */
			if ((r = rf_store_key_set_state(
				 ca->st, it->key_id, "active")) != 0)
				goto out;
		} else if (it->genkey != NULL && !it->pooled) {
			/* A pool key's record became this connection's when
			 * taken. */
			memset(&kr, 0, sizeof(kr));
			snprintf(kr.id, sizeof(kr.id), "%s", it->key_id);
			snprintf(kr.alg, sizeof(kr.alg), "%s",
			    rf_key_alg_name(q->keygen));
			snprintf(kr.purpose, sizeof(kr.purpose), "connection");
			snprintf(kr.tenant, sizeof(kr.tenant), "%s", q->tenant);
			snprintf(kr.state, sizeof(kr.state), "active");
			kr.created = now;
			if ((r = rf_store_key_add(ca->st, &kr)) != 0)
				goto out;
		}
		memset(&cr, 0, sizeof(cr));
		snprintf(cr.serial, sizeof(cr.serial), "%s", it->hex);
		snprintf(
		    cr.issuer, sizeof(cr.issuer), "%s", ca->ent[ca->iss].name);
		snprintf(cr.tenant, sizeof(cr.tenant), "%s", q->tenant);
		snprintf(cr.profile, sizeof(cr.profile), "%s",
		    rf_profile_name(q->profile));
		snprintf(cr.key_id, sizeof(cr.key_id), "%s", it->key_id);
		snprintf(cr.key_ident, sizeof(cr.key_ident), "%s", it->ident);
		snprintf(cr.conn, sizeof(cr.conn), "%s",
		    q->connection != NULL ? q->connection : "");
		snprintf(cr.subject, sizeof(cr.subject), "%s", it->subject);
		rf_ca_thumbprints(it->der, it->derlen, it->x5t, it->x5t256);
		memcpy(cr.x5t, it->x5t, sizeof(cr.x5t));
		memcpy(cr.x5t256, it->x5t256, sizeof(cr.x5t256));
		cr.not_before = it->nb;
		cr.not_after = it->na;
		cr.issued = now;
		cr.reason = -1;
		cr.der = it->der;
		cr.derlen = it->derlen;
		if ((r = rf_store_cert_add(ca->st, &cr)) != 0) {
			if (r == RF_ERR_EXISTS)
				it->dirty = 1;
			goto out;
		}
		if (hook != NULL &&
		    (r = hook(arg, i, it->hex, it->key_id)) != 0)
			goto out;
		evs[i].type = "issue";
		evs[i].key_id = it->key_id;
		evs[i].tenant = q->tenant;
		evs[i].detail = rf_profile_name(q->profile);
		evs[i].ref = it->hex;
		evs[i].actor = who != NULL ? who->actor : NULL;
		evs[i].source = who != NULL ? who->source : NULL;
		evs[i].time = now;
	}
	/* The responses say "good" of what commits here, with it. */
	if (pre != NULL && (r = rf_ocsp_presigned_store(pre)) != 0)
		goto out;
	/* The "issue" leaves commit with the records they describe. */
	if ((r = rf_audit_append(ca->audit, evs, n, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	free(evs);
	return r;
}

static int
issue_output(struct rf_ca *ca, struct issue_item *it, struct rf_issued *o)
{
	size_t l;

	snprintf(o->serial, sizeof(o->serial), "%s", it->hex);
	snprintf(o->key_id, sizeof(o->key_id), "%s", it->key_id);
	o->pooled = it->pooled;
	memcpy(o->x5t, it->x5t, sizeof(o->x5t));
	memcpy(o->x5t256, it->x5t256, sizeof(o->x5t256));
	l = rf_ca_pem_len(it->derlen);
	if ((o->chain_pem = malloc(l + ca->chain_tail_len + 1)) == NULL)
		return RF_ERR_ALLOC;
	l = rf_ca_pem_write(it->der, it->derlen, o->chain_pem);
	memcpy(o->chain_pem + l, ca->chain_tail, ca->chain_tail_len);
	o->chain_pem[l + ca->chain_tail_len] = '\0';
	o->der = it->der; /* moved to the caller */
	o->derlen = it->derlen;
	it->der = NULL;
	return 0;
}

/*
 * The keys of the --keygen requests, with their SPKI, SKI and id: taken
 * from the standby pool (pool.h: moved to "taken" with their audit leaves
 * in one transaction, then loaded and checked), and those the pool could
 * not give made in the token in one batch (one durable audit commit).
 */
static int
issue_keygen(struct rf_ca *ca, const struct rf_issue_req *reqs,
    struct issue_item *items, size_t n, const struct rf_actor *who)
{
	struct rf_pool_want *want = NULL;
	struct rf_keygen *kg = NULL;
	struct rf_key **keys = NULL, **made = NULL;
	char(*label)[RF_KEY_LABEL_MAX + 1] = NULL, (*by)[200] = NULL;
	size_t *pos = NULL, *gpos = NULL;
	size_t i, j, k = 0, g = 0, taken = 0;
	int r = RF_ERR_INTERNAL;

	if ((want = calloc(n, sizeof(*want))) == NULL ||
	    (kg = calloc(n, sizeof(*kg))) == NULL ||
	    (keys = calloc(n, sizeof(*keys))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (label = calloc(n, sizeof(*label))) == NULL ||
	    (by = calloc(n, sizeof(*by))) == NULL ||
	    (pos = calloc(n, sizeof(*pos))) == NULL ||
	    (gpos = calloc(n, sizeof(*gpos))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (reqs[i].csr != NULL || reqs[i].key != NULL)
			continue;
		if ((r = rf_keys_tenant_label(reqs[i].tenant,
			 rf_profile_name(reqs[i].profile), label[k])) != 0)
			goto out;
		snprintf(by[k], sizeof(by[k]), "%s/%s", reqs[i].tenant,
		    reqs[i].connection != NULL
			? reqs[i].connection
			: rf_profile_name(reqs[i].profile));
		want[k].alg = reqs[i].keygen;
		want[k].tenant = reqs[i].tenant;
		want[k].taken_by = by[k];
		want[k].ref = reqs[i].ref != NULL ? reqs[i].ref : "issuance";
		pos[k++] = i;
	}
	/* The caller's own keys (recorded by it before use): copies. */
	for (i = 0; i < n; i++) {
		if (reqs[i].csr != NULL || reqs[i].key == NULL)
			continue;
		if ((r = rf_key_dup(reqs[i].key, &items[i].genkey)) != 0)
			goto out;
		items[i].given = 1;
	}
	if (k == 0) {
		r = 0;
		goto rsa;
	}
	if ((r = rf_pool_take(
		 ca->keys, ca->audit, want, k, who, keys, &taken)) != 0)
		goto out;
	/* Owned by the items from here: a failure destroys them unused. */
	for (j = 0; j < k; j++) {
		items[pos[j]].genkey = keys[j];
		items[pos[j]].pooled = keys[j] != NULL;
		if (keys[j] == NULL) {
			kg[g].alg = want[j].alg;
			kg[g].label = label[j];
			kg[g].tenant = want[j].tenant;
			gpos[g++] = pos[j];
		}
	}
	if (g > 0) {
		if ((r = rf_keys_generate_many(ca->keys, kg, g, who, made)) !=
		    0)
			goto out;
		for (j = 0; j < g; j++)
			items[gpos[j]].genkey = made[j]; /* freed with it */
	}
rsa:
	for (i = 0; i < n; i++) {
		struct issue_item *it = &items[i];
		enum rf_key_alg alg;

		if (it->genkey == NULL)
			continue;
		alg = rf_key_alg(it->genkey);
		it->rsa = rf_key_alg_rsa(alg);
		if ((r = ca_key_spki(it->genkey, &it->spki)) != 0 ||
		    (r = ca_ski_ext(it->spki.p, it->spki.len, (uint8_t[20]){0},
			 it->ski)) != 0 ||
		    (r = rf_key_ident_spki(
			 it->spki.p, it->spki.len, it->ident)) != 0)
			goto out;
		ca_spki_id(&it->spki, it->key_id);
		if (strcmp(it->key_id, rf_key_id(it->genkey)) != 0) {
			r = rf_err_set(RF_ERR_INTERNAL,
			    "key id of the new key disagrees with keys");
			goto out;
		}
	}
	r = 0;
out:
	free(want);
	free(label);
	free(by);
	free(keys);
	free(made);
	free(kg);
	free(pos);
	free(gpos);
	return r;
}

/* Destroy the keys made for an issuance that did not commit. */
static void
issue_unkeygen(struct rf_ca *ca, struct issue_item *items, size_t n,
    const struct rf_actor *who)
{
	const char **ids;
	size_t i, k = 0, done;

	if ((ids = calloc(n, sizeof(*ids))) == NULL)
		return; /* unused keys stay: they sign nothing */
	for (i = 0; i < n; i++)
		if (items[i].genkey != NULL && !items[i].given)
			ids[k++] = rf_key_id(items[i].genkey);
	/* Made or taken for a tenant connection, some by the store's word
	 * (the pool's rows): tenant keys only. */
	if (k > 0)
		(void)!rf_keys_destroy_tenant_many(
		    ca->keys, ids, k, who, &done);
	/* A pool key is taken once: its record says it is gone. */
	for (i = 0; i < n; i++)
		if (items[i].pooled && items[i].genkey != NULL)
			(void)!rf_store_key_set_state(
			    ca->st, rf_key_id(items[i].genkey), "destroyed");
	free(ids);
}

/* Two requests for one tenant connection (no connection: any of it). */
static int
same_conn(const struct rf_issue_req *a, const struct rf_issue_req *b)
{
	const char *x = a->connection != NULL ? a->connection : "";
	const char *y = b->connection != NULL ? b->connection : "";

	return strcmp(a->tenant, b->tenant) == 0 &&
	    (*x == '\0' || *y == '\0' || strcmp(x, y) == 0);
}

int
rf_ca_issue(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out)
{
	return rf_ca_issue_ex(ca, reqs, n, who, out, NULL, NULL);
}

/*
 * One batch of an issuance: prepared (checks, keys) and committed on the
 * caller's thread, signed on the caller's or, in a pipeline, on a thread
 * of its own while the batch before it commits (batch_sign touches no
 * store: its signatures go through keys; the OCSP signer is made before).
 */
struct issue_batch {
	struct rf_ca *ca;
	const struct rf_issue_req *reqs;
	const struct rf_actor *who;
	struct issue_item *items;
	size_t n;
	int64_t now;
	struct proofs pf;
	struct rf_ocsp_presigned *pre;
	struct rf_ocsp_signer *osigner; /* the CA's, at batch_prepare */
	int committed;
	struct rf_err_held sign; /* batch_sign's result, and its message */
	struct told told;	 /* keyd has recorded its requests */
	pthread_t tid;
	int running;
};

/* The batch of reqs, its CSRs parsed; batch_end frees it. */
static int
batch_begin(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct issue_batch *b)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->told.mu, NULL);
	pthread_cond_init(&b->told.cv, NULL);
	b->ca = ca;
	b->reqs = reqs;
	b->who = who;
	b->n = n;
	b->now = rf_now();
	if ((b->items = calloc(n, sizeof(*b->items))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++)
		b->items[i].req = &reqs[i];
	ca_issue_csrs(b->items, n);
	return 0;
}

/* Every check of the requests, before any key is made. */
static int
batch_check(struct issue_batch *b)
{
	struct rf_ca *ca = b->ca;
	const struct rf_issue_req *reqs = b->reqs;
	size_t i, j, n = b->n;
	int r;

	for (i = 0; i < n; i++) {
		struct issue_item *items = b->items;

		if ((r = ca_issue_check(
			 ca, &items[i], i > 0 ? &items[i - 1] : NULL)) != 0)
			return r;
		if (items[i].spki.p == NULL)
			continue;
		if (i > 0 && strcmp(items[i - 1].ident, items[i].ident) == 0 &&
		    same_conn(&reqs[i - 1], &reqs[i]))
			continue; /* checked with the previous request */
		/*
		 * One key, one tenant connection, never a compromised key: an
		 * early answer from the store (the claim in issue_commit's
		 * transaction is what holds under concurrency), and in the
		 * batch.
		 */
		if ((r = rf_store_key_admit(ca->st, items[i].ident,
			 reqs[i].tenant, reqs[i].connection)) != 0)
			return r;
		for (j = 0; j < i; j++) {
			if (items[j].spki.p != NULL &&
			    strcmp(items[j].ident, items[i].ident) == 0 &&
			    !same_conn(&reqs[j], &reqs[i]))
				return rf_err_set(RF_ERR_KEY_REUSED,
				    "public key is requested for tenant %s "
				    "and tenant %s in one batch: a key serves "
				    "one tenant connection",
				    reqs[j].tenant, reqs[i].tenant);
		}
	}
	return 0;
}

/* Checks, keys, subjects: everything before the TBS and signatures. */
static int
batch_prepare(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct issue_batch *b)
{
	size_t i;
	int r;

	if ((r = batch_begin(ca, reqs, n, who, b)) != 0 ||
	    (r = batch_check(b)) != 0)
		return r;
	/* Keys generated in the token only once every request is valid. */
	if ((r = issue_keygen(ca, reqs, b->items, n, who)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if ((r = issue_subject(&b->items[i])) != 0)
			return r;
		b->items[i].dirty = 1;
	}
	/* Made here, where the store may be used, not on a signing thread. */
	b->osigner = ca_ocsp_signer(ca);
	ca_proofs_start(&b->pf, b->items, n);
	return 0;
}

/*
 * New serials and TBS for the dirty items, their signatures, the proofs;
 * t (NULL: none) hears when keyd has recorded them.
 */
static int
batch_sign(struct issue_batch *b, struct told *t)
{
	size_t i;
	int r;

	rf_ocsp_presigned_free(b->pre);
	b->pre = NULL;
	for (i = 0; i < b->n; i++)
		if (b->items[i].dirty &&
		    (r = issue_tbs(b->ca, &b->items[i], b->now)) != 0)
			return r;
	if ((r = issue_sign(
		 b->ca, b->osigner, b->items, b->n, b->who, t, &b->pre)) != 0)
		return r;
	if ((r = ca_proofs_finish(&b->pf)) != 0) {
		rf_ocsp_presigned_free(b->pre);
		b->pre = NULL;
	}
	return r;
}

/* rf_ca_presign_after_commit: the batch's OCSP responses, best effort
 * (the server signs what it lacks when asked). */
static void
presign_committed(struct issue_batch *b)
{
	struct rf_ocsp_status *sts;
	size_t i;

	if (ca_ocsp_signer(b->ca) == NULL ||
	    (sts = calloc(b->n, sizeof(*sts))) == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		sts[i].serial = b->items[i].hex;
		sts[i].reason = -1;
	}
	if (rf_ocsp_presign(b->ca->ocsp_signer, sts, b->n, b->who) != 0)
		rf_err_clear();
	free(sts);
}

/* The store transaction; a serial collision re-signs and tries again. */
static int
batch_commit(struct issue_batch *b, rf_ca_issue_hook hook, void *arg)
{
	int r, tries;

	for (tries = 0;; tries++) {
		r = issue_commit(
		    b->ca, b->items, b->n, b->who, b->now, hook, arg, b->pre);
		rf_ocsp_presigned_free(b->pre);
		b->pre = NULL;
		if (r != RF_ERR_EXISTS || tries + 1 >= CA_SERIAL_TRIES)
			break;
		rf_err_clear(); /* a serial collision: new serial, re-sign */
		if ((r = batch_sign(b, NULL)) != 0)
			break;
	}
	if (r == 0)
		b->committed = 1;
	if (r == 0 && b->ca->presign_late)
		presign_committed(b);
	return r;
}

/*
 * The outputs of a committed batch (out may be NULL: none wanted), or,
 * after r != 0, the keys it made removed; everything freed. Returns r.
 */
static int
batch_end(struct issue_batch *b, struct rf_issued *out, int r)
{
	char msg[512];
	size_t i;

	ca_proofs_wait(&b->pf);
	rf_ocsp_presigned_free(b->pre);
	b->pre = NULL;
	for (i = 0; r == 0 && out != NULL && i < b->n; i++)
		r = issue_output(b->ca, &b->items[i], &out[i]);
	if (r != 0) {
		for (i = 0; out != NULL && i < b->n; i++)
			rf_issued_clear(&out[i]);
		/* Keys made for a failed issuance serve nothing: remove
		 * them. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		if (!b->committed && b->items != NULL)
			issue_unkeygen(b->ca, b->items, b->n, b->who);
		rf_err_set(r, "%s", msg);
	}
	for (i = 0; b->items != NULL && i < b->n; i++)
		item_clear(&b->items[i]);
	free(b->items);
	b->items = NULL;
	pthread_cond_destroy(&b->told.cv);
	pthread_mutex_destroy(&b->told.mu);
	return r;
}

int
rf_ca_issue_check(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n)
{
	struct issue_batch b;
	int r;

	if (ca == NULL || reqs == NULL || n == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	if ((r = batch_begin(ca, reqs, n, NULL, &b)) == 0)
		r = batch_check(&b);
	return batch_end(&b, NULL, r);
}

int
rf_ca_issue_ex(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out, rf_ca_issue_hook hook,
    void *arg)
{
	struct issue_batch b;
	int r;

	if (out != NULL)
		memset(out, 0, n * sizeof(*out));
	if (ca == NULL || reqs == NULL || out == NULL || n == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	if ((r = batch_prepare(ca, reqs, n, who, &b)) == 0 &&
	    (r = batch_sign(&b, NULL)) == 0)
		r = batch_commit(&b, hook, arg);
	return batch_end(&b, out, r);
}

static void *
batch_sign_main(void *arg)
{
	struct issue_batch *b = arg;

	rf_err_keep(&b->sign, batch_sign(b, &b->told));
	told_set(&b->told, &b->told.done, 1);
	return NULL;
}

/*
 * Sign b on a thread of its own, or here: without a thread, or when the
 * token is in this process (its signatures append to the audit record in
 * the store the caller is about to use).
 */
static void
batch_sign_start(struct issue_batch *b)
{
	if (rf_keys_remote(b->ca->keys) &&
	    pthread_create(&b->tid, NULL, batch_sign_main, b) == 0)
		b->running = 1;
	else
		(void)batch_sign_main(b);
}

/* Wait for batch_sign_start: its result, its message set here. */
static int
batch_sign_wait(struct issue_batch *b)
{
	if (b->running) {
		pthread_join(b->tid, NULL);
		b->running = 0;
	}
	return rf_err_kept(&b->sign);
}

/* The hook of a pipeline's batch, with i counted from the first request. */
struct hook_shift {
	rf_ca_issue_hook hook;
	void *arg;
	size_t from;
};

static int
hook_shifted(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct hook_shift *h = arg;

	return h->hook(h->arg, h->from + i, serial, key_id);
}

/*
 * The size of the next batch, left requests to go: the first is small, so
 * that the token starts early; then per; then, over the last 2 per, halves
 * down to min, so that the last commit, which no signature overlaps, is
 * small, while each batch's signatures still take about as long as the
 * commit of the one before.
 */
static size_t
pipe_batch(size_t left, size_t per, size_t min, int first)
{
	size_t k;

	if (first)
		return left < min ? left : min;
	if (left > 2 * per)
		return per;
	if (left <= per && left < 2 * min)
		return left; /* no sliver after it */
	k = (left + 1) / 2;  /* the smaller half last */
	return k < min ? min : k > per ? per : k;
}

/*
 * The next batch of requests from *from (pipe_batch) prepared in b, its
 * hook shifted there; *from moves past it. 1 if b holds a batch to sign, 0
 * when none is left, after a failure (*r != 0), or when preparing fails (*r
 * and msg say why; b ended).
 */
static int
pipe_prepare(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    size_t per, size_t min, const struct rf_actor *who, rf_ca_issue_hook hook,
    void *arg, size_t *from, struct issue_batch *b, struct hook_shift *hs,
    int *r, char *msg, size_t msglen)
{
	size_t k = pipe_batch(n - *from, per, min, *from == 0);
	int r2;

	if (k == 0 || *r != 0)
		return 0;
	if ((r2 = batch_prepare(ca, &reqs[*from], k, who, b)) != 0) {
		*r = batch_end(b, NULL, r2);
		snprintf(msg, msglen, "%s", rf_err_msg(*r));
		return 0;
	}
	hs->hook = hook;
	hs->arg = arg;
	hs->from = *from;
	*from += k;
	return 1;
}

int
rf_ca_issue_pipelined(struct rf_ca *ca, const struct rf_issue_req *reqs,
    size_t n, size_t per, size_t min, const struct rf_actor *who,
    rf_ca_issue_hook hook, void *arg, rf_ca_batch_done done, void *done_arg)
{
	struct issue_batch bt[2];
	struct hook_shift hs[2];
	char msg[512] = "", pmsg[512] = "";
	size_t from = 0, cur = 0, prev = 1;
	int r = 0, rp = 0, r2, have_prev = 0, have_cur, have_next = 0;

	if (ca == NULL || reqs == NULL || n == 0 || per == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	if (min == 0 || min > per)
		min = per;
	memset(bt, 0, sizeof(bt));
	/* A batch that fails to prepare (rp) ends the pipeline after the
	 * batches before it commit. */
	have_cur = pipe_prepare(ca, reqs, n, per, min, who, hook, arg, &from,
	    &bt[cur], &hs[cur], &rp, pmsg, sizeof(pmsg));
	for (;;) {
		/* A batch is signed on its thread ... */
		if (have_cur)
			batch_sign_start(&bt[cur]);
		/*
		 * ... while the one before commits, once keyd has recorded
		 * this one: its appends and this commit share the store's
		 * write lock, and keyd waiting for the commit would leave
		 * the token idle.
		 */
		if (have_prev) {
			if (have_cur)
				told_wait(&bt[cur].told);
			r2 = batch_commit(&bt[prev],
			    hook != NULL ? hook_shifted : NULL, &hs[prev]);
			r2 = batch_end(&bt[prev], NULL, r2);
			have_prev = 0;
			if (r2 == 0 && done != NULL)
				done(done_arg, hs[prev].from, bt[prev].n);
			if (r2 != 0 && r == 0) {
				r = r2;
				snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
			}
		}
		if (!have_cur)
			break;
		/* ... and the next one prepared meanwhile, in the slot the
		 * committed one left, so that the token waits for neither. */
		have_next = r == 0 &&
		    pipe_prepare(ca, reqs, n, per, min, who, hook, arg, &from,
			&bt[prev], &hs[prev], &rp, pmsg, sizeof(pmsg));
		if ((r2 = batch_sign_wait(&bt[cur])) != 0 && r == 0) {
			r = r2;
			snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		}
		if (r != 0) {
			(void)batch_end(&bt[cur], NULL, r);
			if (have_next)
				(void)batch_end(&bt[prev], NULL, r);
			break;
		}
		have_prev = 1;
		prev = cur;
		cur = 1 - cur;
		have_cur = have_next;
	}
	if (r == 0 && rp != 0) {
		r = rp;
		snprintf(msg, sizeof(msg), "%s", pmsg);
	}
	if (r != 0)
		return rf_err_set(r, "%s", msg);
	return 0;
}

void
rf_issued_clear(struct rf_issued *is)
{
	if (is == NULL)
		return;
	free(is->der);
	free(is->chain_pem);
	memset(is, 0, sizeof(*is));
}
