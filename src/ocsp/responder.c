/*
 * responder.c: serving pre-signed OCSP responses from memory.
 *
 * A chained hash table maps (issuer, serial) to an entry holding the
 * pre-signed DER, its times, ETag and the status it states. Requests take
 * the read lock, look up, copy the DER and let go; the one reloading thread
 * builds new entries outside the lock and takes the write lock only to link
 * them in. An entry replaced is freed after the write lock is released: no
 * reader can hold it then, since readers copy under the read lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "ocsp/ocsp.h"
#include "store/store.h"

#define NHASH 4 /* SHA-1, SHA-256, SHA-384, SHA-512 */
#define MAX_ISSUERS 64

struct issuer {
	char name[64];
	X509 *cert;
	/* issuerNameHash and issuerKeyHash per hash algorithm. */
	struct {
		enum rf_ocsp_hash hash;
		size_t len;
		uint8_t name[64], key[64];
	} ids[NHASH];
};

struct entry {
	struct entry *next;
	uint32_t hv;
	unsigned issuer;
	char serial[41];
	int64_t this_update, next_update;
	int revoked;
	int64_t revoked_at;
	int reason;
	char etag[40];
	size_t len;
	uint8_t der[];
};

struct rf_ocsp_responder {
	struct rf_store *st; /* borrowed; reload thread only */
	pthread_rwlock_t lock;
	struct entry **buckets; /* under lock */
	size_t nbuckets, count;
	struct issuer issuers[MAX_ISSUERS];
	unsigned nissuers;
	/* Reload state (reload thread only). */
	int loaded;
	int64_t seq; /* rf_store_ocsp_seq at the last reload */
	/* On-demand signing, serialised by sign_lock: the "issuing" CA's
	 * signer, and those of issuers a rotation added. */
	pthread_mutex_t sign_lock;
	struct rf_ocsp_signer *signer;
	struct rf_ocsp_signer *more[MAX_ISSUERS];
	size_t nmore;
	double tokens;
	int64_t last_refill;
};

/* FNV-1a over the issuer index and the serial string. */
static uint32_t
entry_hash(unsigned issuer, const char *serial)
{
	uint32_t h = 2166136261u ^ issuer;

	h *= 16777619u;
	for (; *serial != '\0'; serial++) {
		h ^= (uint8_t)*serial;
		h *= 16777619u;
	}
	return h;
}

int
rf_ocsp_responder_new(struct rf_store *st, struct rf_ocsp_responder **out)
{
	struct rf_ocsp_responder *r;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return RF_ERR_ALLOC;
	r->nbuckets = 1024;
	if ((r->buckets = calloc(r->nbuckets, sizeof(*r->buckets))) == NULL) {
		free(r);
		return RF_ERR_ALLOC;
	}
	if (pthread_rwlock_init(&r->lock, NULL) != 0) {
		free(r->buckets);
		free(r);
		return RF_ERR_INTERNAL;
	}
	if (pthread_mutex_init(&r->sign_lock, NULL) != 0) {
		pthread_rwlock_destroy(&r->lock);
		free(r->buckets);
		free(r);
		return RF_ERR_INTERNAL;
	}
	r->st = st;
	r->tokens = RF_OCSP_ONDEMAND_RATE;
	*out = r;
	return 0;
}

void
rf_ocsp_responder_free(struct rf_ocsp_responder *r)
{
	struct entry *e, *next;
	size_t i;
	unsigned k;

	if (r == NULL)
		return;
	for (i = 0; i < r->nbuckets; i++)
		for (e = r->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	for (k = 0; k < r->nissuers; k++)
		X509_free(r->issuers[k].cert);
	free(r->buckets);
	pthread_rwlock_destroy(&r->lock);
	pthread_mutex_destroy(&r->sign_lock);
	free(r);
}

int
rf_ocsp_responder_add_issuer(
    struct rf_ocsp_responder *r, const char *name, X509 *issuer)
{
	static const enum rf_ocsp_hash hs[NHASH] = {RF_OCSP_HASH_SHA1,
	    RF_OCSP_HASH_SHA256, RF_OCSP_HASH_SHA384, RF_OCSP_HASH_SHA512};
	const ASN1_BIT_STRING *key;
	struct issuer *is;
	uint8_t *nder = NULL;
	int nlen, i;
	unsigned k;

	if (r == NULL || name == NULL || *name == '\0' || issuer == NULL ||
	    strlen(name) >= sizeof(is->name))
		return rf_err_set(RF_ERR_ARG, "OCSP responder: bad issuer");
	for (k = 0; k < r->nissuers; k++)
		if (strcmp(r->issuers[k].name, name) == 0)
			return rf_err_set(RF_ERR_EXISTS,
			    "OCSP responder: issuer %s added twice", name);
	if (r->nissuers == MAX_ISSUERS)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "OCSP responder: more than %d issuers", MAX_ISSUERS);
	is = &r->issuers[r->nissuers];
	memset(is, 0, sizeof(*is));
	/*
	 * RFC 6960 4.1.1: issuerNameHash is the hash of the issuer's
	 * distinguished name (the DER of the issuing certificate's subject);
	 * issuerKeyHash the hash of its public key, the value of the BIT
	 * STRING subjectPublicKey, excluding tag, length and unused bits.
	 */
	if ((nlen = i2d_X509_NAME(X509_get_subject_name(issuer), &nder)) <= 0 ||
	    (key = X509_get0_pubkey_bitstr(issuer)) == NULL) {
		OPENSSL_free(nder);
		return rf_err_set(RF_ERR_ARG,
		    "OCSP responder: issuer %s has "
		    "no subject or key",
		    name);
	}
	for (i = 0; i < NHASH; i++) {
		const EVP_MD *md = hs[i] == RF_OCSP_HASH_SHA1 ? EVP_sha1()
		    : hs[i] == RF_OCSP_HASH_SHA256	      ? EVP_sha256()
		    : hs[i] == RF_OCSP_HASH_SHA384	      ? EVP_sha384()
							      : EVP_sha512();
		unsigned int l1 = 0, l2 = 0;

		is->ids[i].hash = hs[i];
		if (EVP_Digest(nder, (size_t)nlen, is->ids[i].name, &l1, md,
			NULL) != 1 ||
		    EVP_Digest(ASN1_STRING_get0_data(key),
			(size_t)ASN1_STRING_length(key), is->ids[i].key, &l2,
			md, NULL) != 1 ||
		    l1 != l2) {
			OPENSSL_free(nder);
			return rf_err_set(RF_ERR_INTERNAL,
			    "OCSP responder: hashing issuer %s failed", name);
		}
		is->ids[i].len = l1;
	}
	OPENSSL_free(nder);
	if (X509_up_ref(issuer) != 1)
		return RF_ERR_INTERNAL;
	is->cert = issuer;
	snprintf(is->name, sizeof(is->name), "%s", name);
	/*
	 * Published whole: serving threads read issuers[0..nissuers) without
	 * the lock. Responses of this issuer may already be stored (a
	 * rotation made while serving): the next reload reads every row.
	 */
	__atomic_store_n(&r->nissuers, r->nissuers + 1, __ATOMIC_RELEASE);
	r->loaded = 0;
	return 0;
}

void
rf_ocsp_responder_set_signer(
    struct rf_ocsp_responder *r, struct rf_ocsp_signer *s)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->sign_lock);
	r->signer = s;
	pthread_mutex_unlock(&r->sign_lock);
}

int
rf_ocsp_responder_add_signer(
    struct rf_ocsp_responder *r, struct rf_ocsp_signer *s)
{
	int r2 = 0;

	pthread_mutex_lock(&r->sign_lock);
	if (r->nmore == MAX_ISSUERS)
		r2 = rf_err_set(RF_ERR_TOO_LARGE,
		    "at most %d issuers are signed for on demand", MAX_ISSUERS);
	else
		r->more[r->nmore++] = s;
	pthread_mutex_unlock(&r->sign_lock);
	return r2;
}

size_t
rf_ocsp_responder_count(struct rf_ocsp_responder *r)
{
	size_t n;

	if (r == NULL)
		return 0;
	pthread_rwlock_rdlock(&r->lock);
	n = r->count;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

static int
issuer_by_name(
    const struct rf_ocsp_responder *r, const char *name, unsigned *idx)
{
	unsigned k;

	unsigned n = __atomic_load_n(&r->nissuers, __ATOMIC_ACQUIRE);

	for (k = 0; k < n; k++)
		if (strcmp(r->issuers[k].name, name) == 0) {
			*idx = k;
			return 0;
		}
	return RF_ERR_NOT_FOUND;
}

/* The on-demand signer of issuer index is (NULL: none); under sign_lock. */
static struct rf_ocsp_signer *
signer_for(struct rf_ocsp_responder *r, unsigned is)
{
	const char *name = r->issuers[is].name; /* unique (add_issuer) */
	size_t i;

	if (r->signer != NULL &&
	    strcmp(rf_ocsp_signer_issuer(r->signer), name) == 0)
		return r->signer;
	for (i = 0; i < r->nmore; i++)
		if (strcmp(rf_ocsp_signer_issuer(r->more[i]), name) == 0)
			return r->more[i];
	return NULL;
}

/* The issuer a CertID names, by its name and key hashes. */
static int
issuer_by_id(const struct rf_ocsp_responder *r, const struct rf_ocsp_certid *id,
    unsigned *idx)
{
	unsigned k, n = __atomic_load_n(&r->nissuers, __ATOMIC_ACQUIRE);
	int i;

	if (id->hash == RF_OCSP_HASH_OTHER)
		return RF_ERR_NOT_FOUND;
	for (k = 0; k < n; k++)
		for (i = 0; i < NHASH; i++) {
			const struct issuer *is = &r->issuers[k];

			if (is->ids[i].hash == id->hash &&
			    is->ids[i].len == id->hash_len &&
			    memcmp(is->ids[i].name, id->name_hash,
				id->hash_len) == 0 &&
			    memcmp(is->ids[i].key, id->key_hash,
				id->hash_len) == 0) {
				*idx = k;
				return 0;
			}
		}
	return RF_ERR_NOT_FOUND;
}

/* Under the lock (either kind). */
static struct entry *
lookup(const struct rf_ocsp_responder *r, unsigned issuer, const char *serial,
    uint32_t hv)
{
	struct entry *e;

	for (e = r->buckets[hv & (r->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hv == hv && e->issuer == issuer &&
		    strcmp(e->serial, serial) == 0)
			return e;
	return NULL;
}

static int64_t
gt_to_time(const ASN1_GENERALIZEDTIME *t, int *ok)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		*ok = 0;
		return 0;
	}
	return (int64_t)timegm(&tm);
}

/*
 * The status a stored response states, for on-demand answers: it must be
 * a successful basic response with one SingleResponse.
 */
static int
entry_status(struct entry *e)
{
	const unsigned char *p = e->der;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_SINGLERESP *one;
	ASN1_GENERALIZEDTIME *rt = NULL;
	int st, reason = -1, ok = 1, r = RF_ERR_MALFORMED;

	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, (long)e->len)) == NULL ||
	    p != e->der + e->len ||
	    OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (bs = OCSP_response_get1_basic(resp)) == NULL ||
	    OCSP_resp_count(bs) != 1 || (one = OCSP_resp_get0(bs, 0)) == NULL)
		goto out;
	st = OCSP_single_get0_status(one, &reason, &rt, NULL, NULL);
	if (st == V_OCSP_CERTSTATUS_GOOD) {
		e->revoked = 0;
		e->revoked_at = 0;
		e->reason = -1;
	} else if (st == V_OCSP_CERTSTATUS_REVOKED) {
		e->revoked = 1;
		e->revoked_at = gt_to_time(rt, &ok);
		e->reason = reason;
		if (!ok)
			goto out;
	} else
		goto out;
	r = 0;
out:
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return r;
}

/* Double the buckets; under the write lock. */
static void
grow(struct rf_ocsp_responder *r)
{
	size_t n = r->nbuckets * 2, i;
	struct entry **nb, *e, *next;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < r->nbuckets; i++)
		for (e = r->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hv & (n - 1)];
			nb[e->hv & (n - 1)] = e;
		}
	free(r->buckets);
	r->buckets = nb;
	r->nbuckets = n;
}

struct reload {
	struct rf_ocsp_responder *r;
	size_t changed;
	int err;
};

static int
reload_one(void *arg, const struct rf_ocsp_rec *o)
{
	struct reload *rl = arg;
	struct rf_ocsp_responder *r = rl->r;
	struct entry *old, *e, **pp;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned issuer;
	uint32_t hv;

	if (issuer_by_name(r, o->issuer, &issuer) != 0 || o->der == NULL ||
	    o->len == 0 || o->len > RF_OCSP_MAX_RESPONSE ||
	    strlen(o->serial) >= sizeof(e->serial))
		return 0; /* not served here */
	hv = entry_hash(issuer, o->serial);
	/* This thread is the only writer: reading without the lock is safe. */
	old = lookup(r, issuer, o->serial, hv);
	if (old != NULL && old->this_update == o->this_update &&
	    old->len == o->len && memcmp(old->der, o->der, o->len) == 0)
		return 0;
	if ((e = calloc(1, sizeof(*e) + o->len)) == NULL) {
		rl->err = RF_ERR_ALLOC;
		return 1;
	}
	e->hv = hv;
	e->issuer = issuer;
	snprintf(e->serial, sizeof(e->serial), "%s", o->serial);
	e->this_update = o->this_update;
	e->next_update = o->next_update;
	e->len = o->len;
	memcpy(e->der, o->der, o->len);
	if (entry_status(e) != 0 ||
	    EVP_Digest(e->der, e->len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		free(e); /* a response we cannot read is not served */
		return 0;
	}
	rf_hex(md, 16, e->etag);

	pthread_rwlock_wrlock(&r->lock);
	for (pp = &r->buckets[hv & (r->nbuckets - 1)]; *pp != NULL;
	     pp = &(*pp)->next)
		if (*pp == old)
			break;
	if (old != NULL && *pp == old) {
		e->next = old->next;
		*pp = e;
	} else {
		old = NULL;
		e->next = r->buckets[hv & (r->nbuckets - 1)];
		r->buckets[hv & (r->nbuckets - 1)] = e;
		if (++r->count > r->nbuckets)
			grow(r);
	}
	pthread_rwlock_unlock(&r->lock);
	free(old);
	rl->changed++;
	return 0;
}

int
rf_ocsp_responder_reload(struct rf_ocsp_responder *r)
{
	struct reload rl = {0};
	int64_t seq = 0;
	int ret;

	if (r == NULL || r->st == NULL)
		return rf_err_set(RF_ERR_ARG, "OCSP responder: no store");
	/*
	 * Every stored response carries a change sequence that only grows;
	 * load the rows above the sequence seen last time. The sequence is
	 * read first: a row committed in between is loaded now and again
	 * next time (then skipped as unchanged), never missed.
	 */
	if ((ret = rf_store_ocsp_seq(r->st, &seq)) != 0)
		return ret;
	if (r->loaded && seq == r->seq)
		return 0;
	rl.r = r;
	ret = rf_store_ocsp_foreach(
	    r->st, r->loaded ? r->seq : 0, reload_one, &rl);
	if (rl.err != 0)
		return rl.err;
	if (ret != 0)
		return ret;
	r->loaded = 1;
	r->seq = seq;
	return 0;
}

static void
answer_status(struct rf_ocsp_answer *ans, enum rf_ocsp_resp_status st)
{
	ans->http_status = 200;
	ans->status = st;
	rf_ocsp_error_response(st, ans->der);
	ans->len = RF_OCSP_ERROR_LEN;
	ans->this_update = ans->next_update = 0;
	ans->etag[0] = '\0';
}

/* Copy a found entry; under the read lock. */
static void
answer_entry(struct rf_ocsp_answer *ans, const struct entry *e)
{
	ans->http_status = 200;
	ans->status = RF_OCSP_SUCCESSFUL;
	memcpy(ans->der, e->der, e->len);
	ans->len = e->len;
	ans->this_update = e->this_update;
	ans->next_update = e->next_update;
	memcpy(ans->etag, e->etag, sizeof(ans->etag));
}

/*
 * Several CertIDs, or CertIDs hashed with other than SHA-1: one response
 * signed now, if every certificate is known, a signer for their issuer is
 * set, and the token bucket (RF_OCSP_ONDEMAND_RATE per second, as many in
 * a burst) has a token.
 */
static void
respond_ondemand(struct rf_ocsp_responder *r, const struct rf_ocsp_request *q,
    int64_t now, rf_ocsp_gate_fn gate, void *gate_arg, unsigned flags,
    struct rf_ocsp_answer *ans)
{
	const struct entry *one = NULL;
	struct rf_ocsp_status sts[RF_OCSP_MAX_IDS];
	char serials[RF_OCSP_MAX_IDS][41];
	struct rf_actor who = {"ocsp-responder", "ocsp on-demand"};
	unsigned issuers[RF_OCSP_MAX_IDS];
	struct rf_ocsp_signer *signer;
	size_t i, len = 0;
	int rc;

	/* Known issuer and serial for each, else unauthorized. */
	pthread_rwlock_rdlock(&r->lock);
	for (i = 0; i < q->n; i++) {
		const struct rf_ocsp_certid *id = &q->ids[i];
		struct entry *e;

		if (issuer_by_id(r, id, &issuers[i]) != 0 ||
		    id->serial[0] == '\0' ||
		    (e = lookup(r, issuers[i], id->serial,
			 entry_hash(issuers[i], id->serial))) == NULL) {
			pthread_rwlock_unlock(&r->lock);
			answer_status(ans, RF_OCSP_UNAUTHORIZED);
			return;
		}
		snprintf(serials[i], sizeof(serials[i]), "%s", e->serial);
		if (q->n == 1 && e->next_update > now)
			one = e;
		sts[i].serial = serials[i];
		sts[i].revoked = e->revoked;
		sts[i].revoked_at = e->revoked_at;
		sts[i].reason = e->reason;
	}
	/*
	 * The caller's budget (serve: per source and global): past it, the
	 * pre-signed response when the request names one certificate, or
	 * tryLater; nothing is signed.
	 */
	if (gate != NULL && !gate(gate_arg, q)) {
		if (one != NULL)
			answer_entry(ans, one);
		else
			answer_status(ans, RF_OCSP_TRY_LATER);
		pthread_rwlock_unlock(&r->lock);
		return;
	}
	pthread_rwlock_unlock(&r->lock);
	if (flags & RF_OCSP_DEFER) {
		/* Signed elsewhere: the caller asks again, without the gate. */
		ans->http_status = 200;
		ans->status = RF_OCSP_SUCCESSFUL;
		ans->len = 0;
		ans->this_update = ans->next_update = 0;
		ans->etag[0] = '\0';
		ans->deferred = 1;
		return;
	}

	pthread_mutex_lock(&r->sign_lock);
	/* One response, one signer: every CertID of one issuer. */
	signer = q->n > 0 ? signer_for(r, issuers[0]) : NULL;
	for (i = 0; signer != NULL && i < q->n; i++)
		if (issuers[i] != issuers[0])
			signer = NULL;
	if (signer == NULL) {
		pthread_mutex_unlock(&r->sign_lock);
		answer_status(ans, RF_OCSP_TRY_LATER);
		return;
	}
	/* Token bucket, refilled by the elapsed seconds. */
	if (now > r->last_refill) {
		r->tokens +=
		    (double)(now - r->last_refill) * RF_OCSP_ONDEMAND_RATE;
		if (r->tokens > RF_OCSP_ONDEMAND_RATE)
			r->tokens = RF_OCSP_ONDEMAND_RATE;
		r->last_refill = now;
	}
	if (r->tokens < 1.0) {
		pthread_mutex_unlock(&r->sign_lock);
		answer_status(ans, RF_OCSP_TRY_LATER);
		return;
	}
	r->tokens -= 1.0;
	if ((rc = rf_ocsp_sign_now(signer, q->ids, sts, q->n, now, &who,
		 ans->der, sizeof(ans->der), &len)) != 0) {
		pthread_mutex_unlock(&r->sign_lock);
		/* The custody process away (killed, restarting) is RFC 6960's
		 * tryLater: the client may ask again; anything else is ours,
		 * and the caller logs why. */
		if (rc == RF_ERR_CUSTODY) {
			answer_status(ans, RF_OCSP_TRY_LATER);
			return;
		}
		answer_status(ans, RF_OCSP_INTERNAL_ERROR);
		snprintf(ans->why, sizeof(ans->why),
		    "signing of %zu CertID%s failed: %s", q->n,
		    q->n == 1 ? "" : "s", rf_err_msg(rc));
		return;
	}
	pthread_mutex_unlock(&r->sign_lock);
	ans->http_status = 200;
	ans->status = RF_OCSP_SUCCESSFUL;
	ans->len = len;
	/*
	 * RFC 5019 6.2 caching is for the pre-signed responses; one signed
	 * for this request is not for caching: no times, no ETag.
	 */
	ans->this_update = ans->next_update = 0;
	ans->etag[0] = '\0';
}

int
rf_ocsp_respond(struct rf_ocsp_responder *r, const uint8_t *req, size_t len,
    int64_t now, struct rf_ocsp_answer *ans)
{
	return rf_ocsp_respond_gated(r, req, len, now, NULL, NULL, ans);
}

int
rf_ocsp_respond_gated(struct rf_ocsp_responder *r, const uint8_t *req,
    size_t len, int64_t now, rf_ocsp_gate_fn gate, void *gate_arg,
    struct rf_ocsp_answer *ans)
{
	return rf_ocsp_respond_ex(r, req, len, now, gate, gate_arg, 0, ans);
}

int
rf_ocsp_respond_ex(struct rf_ocsp_responder *r, const uint8_t *req, size_t len,
    int64_t now, rf_ocsp_gate_fn gate, void *gate_arg, unsigned flags,
    struct rf_ocsp_answer *ans)
{
	struct rf_ocsp_request q;
	const struct rf_ocsp_certid *id;
	struct entry *e;
	unsigned issuer;

	if (r == NULL || ans == NULL)
		return rf_err_set(RF_ERR_ARG, "OCSP respond: NULL");
	ans->deferred = 0;
	ans->why[0] = '\0';
	/* RFC 6960 4.2.1 malformedRequest: "Illegal confirmation request". */
	if (rf_ocsp_request_parse(req, len, &q) != 0) {
		answer_status(ans, RF_OCSP_MALFORMED_REQUEST);
		return 0;
	}
	/*
	 * RFC 5019 2.1.1: one CertID, SHA-1. A nonce is ignored: the
	 * pre-signed response is served without one (RFC 5019 2.1.1,
	 * RFC 6960 4.4.1 "Nonce" is optional for the responder).
	 */
	if (q.n != 1 || q.ids[0].hash != RF_OCSP_HASH_SHA1) {
		respond_ondemand(r, &q, now, gate, gate_arg, flags, ans);
		return 0;
	}
	id = &q.ids[0];
	/*
	 * RFC 6960 2.3 / RFC 5019 2.2.3: unauthorized when the responder
	 * cannot answer authoritatively: unknown issuer, or a serial we hold
	 * no response for. Never "good" for a serial not issued.
	 */
	if (issuer_by_id(r, id, &issuer) != 0 || id->serial[0] == '\0') {
		answer_status(ans, RF_OCSP_UNAUTHORIZED);
		return 0;
	}
	pthread_rwlock_rdlock(&r->lock);
	e = lookup(r, issuer, id->serial, entry_hash(issuer, id->serial));
	if (e == NULL) {
		pthread_rwlock_unlock(&r->lock);
		answer_status(ans, RF_OCSP_UNAUTHORIZED);
		return 0;
	}
	/* An expired response is not served: the refresh is late. */
	if (e->next_update <= now) {
		pthread_rwlock_unlock(&r->lock);
		answer_status(ans, RF_OCSP_TRY_LATER);
		return 0;
	}
	answer_entry(ans, e);
	pthread_rwlock_unlock(&r->lock);
	return 0;
}
