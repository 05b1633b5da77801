/*
 * sign.c: the signing pipeline. Audit before signature: every request's
 * leaf is durable before the token signs it; large batches are split over
 * threads and pipelined (leaves appended in chunks while earlier chunks
 * sign); nothing leaves before it verifies with the public key.
 */

#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"
#include "keys/keys_int.h"
#include "keys/token_int.h"
#include "store/store.h"

#ifdef RF_TEST_HOOKS
void
rf_keys_test_drop_at_sign(struct rf_keys *keys)
{
	pthread_mutex_lock(&keys->lock);
	keys->test_drop_at_sign = 1;
	pthread_mutex_unlock(&keys->lock);
}

/* Tests only: lose the sessions between the audit append and signing. */
static void
test_drop_if_armed(struct rf_keys *keys)
{
	int armed;

	pthread_mutex_lock(&keys->lock);
	armed = keys->test_drop_at_sign;
	keys->test_drop_at_sign = 0;
	pthread_mutex_unlock(&keys->lock);
	if (armed)
		(void)!rf_keys_test_drop_sessions(keys);
}
#else
/* Production: no hook in the signing path. */
#define test_drop_if_armed(keys) ((void)(keys))
#endif

/*
 * Signing
 */

#define DIGEST_MAX 48 /* SHA-384 */

struct sign_feed;

/* One thread's share of a batch. */
struct sign_job {
	struct rf_keys *keys;
	const struct rf_key *key;
	const struct rf_sign_req *reqs; /* NULL when measuring */
	const uint8_t (*dig)[DIGEST_MAX];
	size_t diglen;
	struct rf_sig *sigs;	/* NULL when measuring */
	int prehashed;		/* reqs[i].msg is the digest dig[i] */
	size_t from, to;	/* without a feed */
	struct sign_feed *feed; /* or: blocks claimed from it */
	size_t set;		/* a group's job: its set (rf_sign_plan) */
	int r;
	char msg[MSG_MAX];
};

/*
 * Sign item i in session s with the private key h. ECDSA: the token signs
 * the digest made here (SoftHSM has no CKM_ECDSA_SHA256) and returns r || s,
 * encoded here as DER. RSA: the token hashes (CKM_SHA256_RSA_PKCS, or
 * CKM_SHA256_RSA_PKCS_PSS with RFC 4055 parameters). *r gets our errors.
 */
static CK_RV
sign_one(struct sign_job *job, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    size_t i, int *r)
{
	CK_FUNCTION_LIST_PTR f = job->keys->f;
	const struct rf_sign_req *req = job->reqs ? &job->reqs[i] : NULL;
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	uint8_t raw[RAW_SIG_MAX], *in;
	CK_ULONG inlen, len = sizeof(raw);
	struct rf_sig *out = job->sigs ? &job->sigs[i] : NULL;
	CK_RV rv;

	*r = 0;
	if (job->key->alg == RF_KEY_EC_P256 ||
	    job->key->alg == RF_KEY_EC_P384) {
		in = (uint8_t *)job->dig[req ? i : 0];
		inlen = job->diglen;
	} else {
		mech.mechanism = CKM_SHA256_RSA_PKCS;
		if (req != NULL && req->scheme == RF_SIG_RSA_PSS) {
			mech.mechanism = CKM_SHA256_RSA_PKCS_PSS;
			mech.pParameter = &pss;
			mech.ulParameterLen = sizeof(pss);
		}
		in = req ? (uint8_t *)req->msg : (uint8_t *)job->dig[0];
		inlen = req ? req->msglen : job->diglen;
	}
	if (in == NULL)
		in = raw; /* empty message: any valid pointer */
	if ((rv = f->C_SignInit(s, &mech, h)) != CKR_OK)
		return rv;
	if ((rv = f->C_Sign(s, in, inlen, raw, &len)) != CKR_OK)
		return rv;
	if (out == NULL)
		return CKR_OK; /* measuring: discarded */
	if (mech.mechanism == CKM_ECDSA) {
		*r = rf_keys_ecdsa_raw_to_der(raw, len, &out->sig, &out->len);
		return CKR_OK;
	}
	if ((out->sig = malloc(len)) == NULL) {
		*r = RF_ERR_ALLOC;
		return CKR_OK;
	}
	memcpy(out->sig, raw, len);
	out->len = len;
	return CKR_OK;
}

/* Our error for a CK_RV from signing. */
static int
sign_err(const struct rf_key *key, CK_RV rv)
{
	if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
		return rf_err_set(RF_ERR_KEY_DISABLED,
		    "key %s is disabled (CKA_SIGN is false)", key->id);
	if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "key %s is no longer in the token", key->id);
	return keys_token_err("C_Sign", rv);
}

/*
 * A pipelined batch's feed (sign_pipelined): the leaves of items
 * [0, durable) are in the record; signing threads claim blocks from next.
 */
struct sign_feed {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next, durable, n;
	int stop; /* a failure somewhere: claim nothing more */
};

/*
 * The next block of items with durable leaves, waiting for the appender
 * while there are none yet; 0 when nothing is left to sign.
 */
static int
feed_claim(struct sign_feed *fd, size_t *from, size_t *to)
{
	int ok;

	pthread_mutex_lock(&fd->mu);
	while (!fd->stop && fd->next == fd->durable && fd->durable < fd->n)
		pthread_cond_wait(&fd->cv, &fd->mu);
	if ((ok = !fd->stop && fd->next < fd->durable)) {
		*from = fd->next;
		*to = fd->durable - *from < SIGN_BLOCK ? fd->durable
						       : *from + SIGN_BLOCK;
		fd->next = *to;
	}
	pthread_mutex_unlock(&fd->mu);
	return ok;
}

/* Items [0, durable) may be signed now; or, with stop, none any more. */
static void
feed_set(struct sign_feed *fd, size_t durable, int stop)
{
	pthread_mutex_lock(&fd->mu);
	if (durable > fd->durable)
		fd->durable = durable;
	fd->stop |= stop;
	pthread_cond_broadcast(&fd->cv);
	pthread_mutex_unlock(&fd->mu);
}

/* A signing thread's session and the key's handle in it. */
struct sign_sess {
	CK_SESSION_HANDLE s; /* CK_INVALID_HANDLE: none (not to be put back) */
	CK_OBJECT_HANDLE h;  /* CK_INVALID_HANDLE: not looked up yet */
	CK_RV rv;	     /* the last token return value */
	int retried;	     /* a lost session was reopened once already */
	int cached;	     /* h is the key's remembered handle */
	int uncached;	     /* which proved stale: search from now on */
};

/*
 * Sign items [i, to) in ss's session. A lost session is reopened once per
 * thread and signing resumes from the item that failed.
 */
static int
sign_range(struct sign_job *job, struct sign_sess *ss, size_t i, size_t to)
{
	struct rf_keys *keys = job->keys;
	int r = 0;

	for (;;) {
		ss->rv = CKR_OK;
		/* The handle key_check found, while its generation lasts. */
		ss->cached = 0;
		if (ss->h == CK_INVALID_HANDLE && !ss->uncached &&
		    job->key->checked &&
		    job->key->hgen == keys_module_gen(keys)) {
			ss->h = job->key->h;
			ss->cached = 1;
		}
		if (ss->h == CK_INVALID_HANDLE) {
			ss->rv =
			    keys_find_object(keys->f, ss->s, CKO_PRIVATE_KEY,
				job->key->tid, job->key->tidlen, &ss->h);
			if (ss->rv == CKR_OK && ss->h == CK_INVALID_HANDLE)
				return sign_err(
				    job->key, CKR_KEY_HANDLE_INVALID);
		}
		while (ss->rv == CKR_OK && r == 0 && i < to)
			if ((ss->rv = sign_one(job, ss->s, ss->h, i, &r)) ==
				CKR_OK &&
			    r == 0)
				i++;
		if (ss->rv == CKR_OK)
			return r;
		/* A remembered handle ends with the login (SoftHSM forgets
		 * private objects' handles when the last session closes):
		 * search for the object once before saying it is gone. */
		if (ss->cached &&
		    (ss->rv == CKR_KEY_HANDLE_INVALID ||
			ss->rv == CKR_OBJECT_HANDLE_INVALID)) {
			ss->uncached = 1;
			ss->h = CK_INVALID_HANDLE;
			continue;
		}
		if (!keys_session_lost(ss->rv) || ss->retried)
			return sign_err(job->key, ss->rv);
		/* Reopen and retry once, from the item that failed. */
		ss->retried = 1;
		ss->h = CK_INVALID_HANDLE;
		r = keys_session_recover(keys, ss->s, ss->rv);
		ss->s = CK_INVALID_HANDLE;
		if (r != 0 ||
		    (r = keys_session_get(keys, job->key->sh, &ss->s)) != 0) {
			ss->s = CK_INVALID_HANDLE;
			return r;
		}
	}
}

/*
 * Nothing leaves before it verifies with the public key: over the digest
 * of its message that the audit leaf names, one verifier for the range.
 */
static int
verify_range(const struct sign_job *job, size_t from, size_t to)
{
	struct rf_verifier *v = NULL;
	size_t i;
	int r;

	if ((r = rf_keys_verifier_new(job->key->pub, job->key->alg, &v)) != 0)
		return r;
	for (i = from; i < to; i++) {
		r = rf_keys_verifier_check(v,
		    job->prehashed ? RF_SIG_DEFAULT : job->reqs[i].scheme,
		    job->dig[i], job->diglen, job->sigs[i].sig,
		    job->sigs[i].len);
		if (r == RF_ERR_SIGNATURE_INVALID) {
			r = rf_err_set(r,
			    "token produced an invalid "
			    "signature; nothing was released");
			break;
		}
		if (r != 0) {
			r = rf_err_set(RF_ERR_INTERNAL,
			    "OpenSSL could not verify the token's "
			    "signature; nothing was released");
			break;
		}
	}
	rf_keys_verifier_free(v);
	return r;
}

/* Sign and verify [from, to). */
static int
sign_verify(struct sign_job *job, struct sign_sess *ss, size_t from, size_t to)
{
	int r;

	if ((r = sign_range(job, ss, from, to)) != 0 || job->sigs == NULL)
		return r;
	return verify_range(job, from, to);
}

/* One signing thread: the job's range, or blocks claimed from its feed. */
static void *
sign_worker(void *varg)
{
	struct sign_job *job = varg;
	struct sign_sess ss = {
	    .s = CK_INVALID_HANDLE, .h = CK_INVALID_HANDLE, .rv = CKR_OK};
	size_t from, to;
	int r;

	/* The module is in use for the whole share (see module_rw). */
	if ((r = keys_rdlock(job->keys)) != 0) {
		job->r = r;
		snprintf(job->msg, sizeof(job->msg), "%s", rf_err_msg(r));
		if (job->feed != NULL)
			feed_set(job->feed, 0, 1);
		return NULL;
	}
	if ((r = keys_session_get(job->keys, job->key->sh, &ss.s)) != 0)
		ss.s = CK_INVALID_HANDLE;
	else if (job->feed == NULL)
		r = sign_verify(job, &ss, job->from, job->to);
	else
		while (r == 0 && feed_claim(job->feed, &from, &to))
			r = sign_verify(job, &ss, from, to);
	if (ss.s != CK_INVALID_HANDLE) {
		if (keys_session_lost(ss.rv))
			job->keys->f->C_CloseSession(ss.s);
		else
			keys_session_put(job->keys, job->key->sh, ss.s);
	}
	keys_unlock();
	job->r = r;
	if (r != 0) {
		snprintf(job->msg, sizeof(job->msg), "%s", rf_err_msg(r));
		if (job->feed != NULL)
			feed_set(job->feed, 0, 1); /* the others stop too */
	}
	return NULL;
}

static void
jobs_range(void *arg, size_t from, size_t to)
{
	struct sign_job *jobs = arg;

	for (; from < to; from++)
		sign_worker(&jobs[from]);
}

/* Run jobs[0..njobs) on as many threads; errors land in the jobs. */
static void
run_jobs(struct sign_job *jobs, int njobs)
{
	rf_parallel((size_t)njobs, njobs, jobs_range, jobs);
}

/* The first error of the jobs, re-attached in this thread. */
static int
jobs_result(const struct sign_job *jobs, int njobs)
{
	int i;

	for (i = 0; i < njobs; i++)
		if (jobs[i].r != 0)
			return rf_err_set(jobs[i].r, "%s", jobs[i].msg);
	return 0;
}

void
rf_sig_clear(struct rf_sig *sig)
{
	if (sig == NULL)
		return;
	free(sig->sig);
	sig->sig = NULL;
	sig->len = 0;
}

/*
 * The end of the chunk of a pipelined batch that starts at from; *size is
 * its planned length, doubled (up to PIPE_MAX) for the next chunk. A
 * remainder shorter than two chunks is taken whole.
 */
static size_t
chunk_end(size_t from, size_t *size, size_t n)
{
	size_t end = n - from < 2 * *size ? n : from + *size;

	if (*size < PIPE_MAX)
		*size *= 2;
	return end;
}

/* A pipelined batch: item 0 of rf_parallel appends, items 1.. sign. */
struct pipe {
	struct rf_keys *keys;
	const struct rf_audit_event *evs;
	struct sign_feed feed;
	size_t size; /* of the next chunk */
	struct sign_job jobs[SIGN_THREADS];
	int r; /* the appender's error, with its message */
	char msg[512];
};

/*
 * Append the chunks in order, each made signable once durable. The test
 * hook acts between the first append and the first signature.
 */
static void
pipe_append(struct pipe *p)
{
	struct sign_feed *fd = &p->feed;
	char doing[128];
	size_t from = 0, to;
	int stop;

	while (from < fd->n) {
		pthread_mutex_lock(&fd->mu);
		stop = fd->stop;
		pthread_mutex_unlock(&fd->mu);
		if (stop)
			return; /* a signing thread failed: the call fails */
		to = chunk_end(from, &p->size, fd->n);
		if (from == 0)
			snprintf(doing, sizeof(doing), "nothing was signed");
		else
			snprintf(doing, sizeof(doing),
			    "nothing was released (requests 0 to %zu have "
			    "leaves; signatures made for them were "
			    "discarded)",
			    from - 1);
		if ((p->r = keys_audit_append(
			 p->keys, p->evs + from, to - from, doing)) != 0) {
			/* Errors are per thread: kept, re-set by the caller. */
			snprintf(
			    p->msg, sizeof(p->msg), "%s", rf_err_msg(p->r));
			feed_set(fd, 0, 1);
			return;
		}
		if (from == 0)
			test_drop_if_armed(p->keys);
		feed_set(fd, to, 0);
		from = to;
	}
}

static void
pipe_range(void *arg, size_t from, size_t to)
{
	struct pipe *p = arg;

	for (; from < to; from++)
		if (from == 0)
			pipe_append(p);
		else
			sign_worker(&p->jobs[from - 1]);
}

/*
 * A large batch, pipelined. The leaves go to the record in chunks of
 * PIPE_FIRST, then twice as many, up to PIPE_MAX, in request order (the
 * chunks of concurrent callers may interleave in the record). The calling
 * thread (item 0 of rf_parallel: the record's connection stays in the
 * caller's thread) appends them one after the other while SIGN_THREADS
 * threads sign, in blocks of SIGN_BLOCK, the items whose leaves are
 * already durable: the signing threads start and take their sessions
 * during the first append, and the record's encoding and fsync overlap
 * the token's work instead of idling a core. No item is signed before its
 * own chunk's append returned 0. Any failure stops the rest and fails the
 * call (an append's error first); leaves appended by then stay, for
 * signatures that are discarded (sign_many clears them all).
 */
static int
sign_pipelined(struct rf_keys *keys, const struct sign_job *proto,
    const struct rf_audit_event *evs, size_t n)
{
	struct pipe *p;
	int i, r = RF_ERR_INTERNAL;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	if (pthread_mutex_init(&p->feed.mu, NULL) != 0) {
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "cannot make a mutex");
	}
	if (pthread_cond_init(&p->feed.cv, NULL) != 0) {
		pthread_mutex_destroy(&p->feed.mu);
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "cannot make a condition");
	}
	p->keys = keys;
	p->evs = evs;
	p->size = PIPE_FIRST;
	p->feed.n = n;
	for (i = 0; i < SIGN_THREADS; i++) {
		p->jobs[i] = *proto;
		p->jobs[i].feed = &p->feed;
	}
	rf_parallel(1 + SIGN_THREADS, 1 + SIGN_THREADS, pipe_range, p);
	if (p->r != 0)
		r = rf_err_set(p->r, "%s", p->msg);
	else
		r = jobs_result(p->jobs, SIGN_THREADS);
	pthread_cond_destroy(&p->feed.cv);
	pthread_mutex_destroy(&p->feed.mu);
	free(p);
	return r;
}

/*
 * What signing needs before the record (sign_many, rf_keys_sign_group):
 * the requests checked against the key, the key usable (a disabled or
 * missing key produces no audit leaves), each message's digest and leaf.
 * With prehashed, reqs[i].msg is the digest itself (EC keys only).
 */
struct sign_prep {
	uint8_t (*dig)[DIGEST_MAX];
	char (*hex)[2 * DIGEST_MAX + 1];
	struct rf_audit_event *evs;
	unsigned int dlen;
};

static void
sign_prep_free(struct sign_prep *p)
{
	free(p->evs);
	free(p->hex);
	free(p->dig);
	memset(p, 0, sizeof(*p));
}

/*
 * The token holds key's private object with CKA_SIGN true. Checked once
 * per key and module generation: the object cannot change (it is made
 * unmodifiable) and its handle is remembered for signing (sign_range);
 * a destroyed object then fails at C_SignInit, as a missing one does.
 */
static int
key_check(struct rf_keys *keys, struct rf_key *key)
{
	struct custody_arg c;
	unsigned long gen;
	int r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	gen = keys_module_gen(keys);
	keys_unlock();
	if (key->checked && key->hgen == gen)
		return 0;
	if ((r = keys_custody(
		 keys, key->id, key->tid, key->tidlen, key->sh, -1, &c)) != 0)
		return r;
	if (!c.v[4])
		return sign_err(key, CKR_KEY_FUNCTION_NOT_PERMITTED);
	if ((r = keys_rdlock(keys)) != 0)
		return r;
	/* A handle found before a re-initialisation is not kept. */
	key->checked = keys_module_gen(keys) == gen;
	keys_unlock();
	key->h = c.h;
	key->hgen = gen;
	return 0;
}

int
rf_keys_check(struct rf_keys *keys, struct rf_key *key)
{
	if (keys == NULL || key == NULL || keys->kc != NULL)
		return rf_err_set(RF_ERR_ARG, "no key to check");
	return key_check(keys, key);
}

/*
 * Check, digest and describe a set of requests for one key. usable_known:
 * the store's word on the key (keys_key_usable) was already taken for
 * this group, by another set of the same key.
 */
static int
sign_prepare(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int prehashed,
    const struct rf_actor *who, struct rf_sig *sigs, int usable_known,
    struct sign_prep *p)
{
	const EVP_MD *md;
	unsigned int dlen = 0;
	int r;
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; sigs != NULL && i < n; i++)
		sigs[i].sig = NULL, sigs[i].len = 0;
	if (keys == NULL || key == NULL || reqs == NULL || sigs == NULL ||
	    n == 0 || n > 1000000)
		return rf_err_set(RF_ERR_ARG, "bad signing request");
	for (i = 0; i < n; i++) {
		if (reqs[i].msg == NULL && reqs[i].msglen != 0)
			return rf_err_set(RF_ERR_ARG, "no message to sign");
		if (reqs[i].scheme == RF_SIG_RSA_PSS &&
		    !rf_key_alg_rsa(key->alg))
			return rf_err_set(RF_ERR_ARG,
			    "RSA-PSS asked of %s key %s",
			    rf_key_alg_name(key->alg), key->id);
		if (reqs[i].scheme != RF_SIG_DEFAULT &&
		    reqs[i].scheme != RF_SIG_RSA_PSS)
			return rf_err_set(RF_ERR_ARG,
			    "unknown signature "
			    "scheme");
		if (prehashed &&
		    ((key->alg != RF_KEY_EC_P256 &&
			 key->alg != RF_KEY_EC_P384) ||
			reqs[i].msglen !=
			    (size_t)EVP_MD_get_size(rf_key_alg_md(key->alg))))
			return rf_err_set(RF_ERR_ARG,
			    "a digest to sign must be the %s of an EC key, "
			    "not %zu bytes for %s key %s",
			    EVP_MD_get0_name(rf_key_alg_md(key->alg)),
			    reqs[i].msglen, rf_key_alg_name(key->alg), key->id);
	}
	/* A disabled or missing key produces no audit leaves. */
	if ((!usable_known && (r = keys_key_usable(keys, key)) != 0) ||
	    (r = key_check(keys, key)) != 0)
		return r;
	md = rf_key_alg_md(key->alg);
	if ((p->dig = calloc(n, sizeof(*p->dig))) == NULL ||
	    (p->hex = calloc(n, sizeof(*p->hex))) == NULL ||
	    (p->evs = calloc(n, sizeof(*p->evs))) == NULL) {
		sign_prep_free(p);
		return RF_ERR_ALLOC;
	}
	for (i = 0; i < n; i++) {
		if (prehashed) {
			dlen = (unsigned int)reqs[i].msglen;
			memcpy(p->dig[i], reqs[i].msg, dlen);
		} else if (EVP_Digest(
			       reqs[i].msg ? reqs[i].msg : (const uint8_t *)"",
			       reqs[i].msglen, p->dig[i], &dlen, md,
			       NULL) != 1) {
			sign_prep_free(p);
			return rf_err_set(RF_ERR_INTERNAL, "cannot hash");
		}
		rf_hex(p->dig[i], dlen, p->hex[i]);
		p->evs[i].type = "sign";
		p->evs[i].key_id = key->id;
		p->evs[i].tenant = reqs[i].tenant;
		p->evs[i].what = reqs[i].what;
		p->evs[i].ref = reqs[i].ref;
		p->evs[i].digest = p->hex[i];
		p->evs[i].actor = who ? who->actor : NULL;
		p->evs[i].source = who ? who->source : NULL;
	}
	p->dlen = dlen;
	return 0;
}

/*
 * rf_keys_sign and rf_keys_sign_digest: with prehashed, reqs[i].msg is the
 * digest itself (EC keys only), audited, signed and verified as such.
 */
static int
sign_many(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int prehashed,
    const struct rf_actor *who, struct rf_sig *sigs)
{
	struct sign_job job;
	struct sign_prep p;
	int r;
	size_t i;

	if (n == 0)
		return 0;
	if ((r = sign_prepare(
		 keys, key, reqs, n, prehashed, who, sigs, 0, &p)) != 0)
		return r;
	memset(&job, 0, sizeof(job));
	job.keys = keys;
	job.key = key;
	job.reqs = reqs;
	job.dig = p.dig;
	job.diglen = p.dlen;
	job.sigs = sigs;
	job.prehashed = prehashed;
	if (n >= THREAD_MIN) {
		r = sign_pipelined(keys, &job, p.evs, n);
		goto out;
	}
	/* The record first: one durable group commit, or nothing is signed. */
	if ((r = keys_audit_append(keys, p.evs, n, "nothing was signed")) != 0)
		goto out;
	test_drop_if_armed(keys);
	job.from = 0;
	job.to = n;
	run_jobs(&job, 1);
	r = jobs_result(&job, 1);
out:
	if (r != 0)
		for (i = 0; i < n; i++)
			rf_sig_clear(&sigs[i]);
	sign_prep_free(&p);
	return r;
}

int
rf_keys_sign(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs)
{
	if (keys != NULL && keys->kc != NULL)
		return rf_kc_sign(keys->kc, key, reqs, n, 0, who, sigs);
	return sign_many(keys, key, reqs, n, 0, who, sigs);
}

int
rf_keys_sign_digest(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs)
{
	if (keys != NULL && keys->kc != NULL)
		return rf_kc_sign(keys->kc, key, reqs, n, 1, who, sigs);
	return sign_many(keys, key, reqs, n, 1, who, sigs);
}

/*
 * Grouped requests (rf_keys_sign_group, keyd): every set is checked and
 * its leaves made as sign_many does, the leaves of all of them go to the
 * record in one append (rf_keys_group_record), then the signing threads
 * take the sets in jobs of GROUP_JOB requests (rf_keys_group_sign). A set
 * that fails, before or after, fails alone.
 */
#define GROUP_JOB 16

struct rf_sign_plan {
	struct rf_sign_set *sets;
	size_t n;
	struct sign_prep *prep; /* one per set */
	size_t *first_job;	/* one per set: its jobs are consecutive */
	unsigned *left;		/* one per set: its jobs still to finish */
	struct sign_job *jobs;
	size_t njobs;
	void (*done)(
	    void *, struct rf_sign_set *); /* rf_keys_group_sign_each */
	void *done_arg;
};

static void
set_fail(struct rf_sign_set *set, int r)
{
	size_t i;

	set->r = r;
	snprintf(set->msg, sizeof(set->msg), "%s", rf_err_msg(r));
	for (i = 0; set->sigs != NULL && i < set->n; i++)
		rf_sig_clear(&set->sigs[i]);
}

static void
plan_free(struct rf_sign_plan *pl)
{
	size_t i;

	if (pl == NULL)
		return;
	for (i = 0; pl->prep != NULL && i < pl->n; i++)
		sign_prep_free(&pl->prep[i]);
	free(pl->prep);
	free(pl->first_job);
	free(pl->left);
	free(pl->jobs);
	free(pl);
}

/* The sets that have not failed fail with r. */
static void
sets_fail(struct rf_sign_set *sets, size_t n, int r)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (sets[i].r == 0)
			set_fail(&sets[i], r);
}

/* One job per GROUP_JOB requests of each set that is still to sign. */
static void
plan_jobs(struct rf_keys *keys, struct rf_sign_plan *pl)
{
	struct rf_sign_set *set;
	struct sign_job *job;
	size_t i, from;

	for (i = 0; i < pl->n; i++) {
		set = &pl->sets[i];
		pl->first_job[i] = pl->njobs;
		if (set->r != 0)
			continue;
		for (from = 0; from < set->n; from += GROUP_JOB) {
			job = &pl->jobs[pl->njobs++];
			job->keys = keys;
			job->key = set->key;
			job->reqs = set->reqs;
			job->dig = pl->prep[i].dig;
			job->diglen = pl->prep[i].dlen;
			job->sigs = set->sigs;
			job->prehashed = set->digest;
			job->from = from;
			job->to = from + GROUP_JOB < set->n ? from + GROUP_JOB
							    : set->n;
			job->set = i;
			pl->left[i]++;
		}
	}
}

struct rf_sign_plan *
rf_keys_group_record(struct rf_keys *keys, struct rf_sign_set *sets, size_t n)
{
	struct rf_sign_plan *pl = NULL;
	struct rf_audit_event *evs = NULL;
	size_t i, j, nev = 0, njobs = 0;
	int r = RF_ERR_ALLOC;

	if (n == 0)
		return NULL;
	if (keys == NULL || keys->kc != NULL) {
		sets_fail(sets, n,
		    rf_err_set(RF_ERR_ARG, "a group is signed by keyd only"));
		return NULL;
	}
	if ((pl = calloc(1, sizeof(*pl))) == NULL ||
	    (pl->prep = calloc(n, sizeof(*pl->prep))) == NULL ||
	    (pl->first_job = calloc(n, sizeof(*pl->first_job))) == NULL ||
	    (pl->left = calloc(n, sizeof(*pl->left))) == NULL)
		goto fail;
	pl->sets = sets;
	pl->n = n;
	for (i = 0; i < n; i++) {
		if (sets[i].r != 0)
			continue;
		/* The store is asked once a group for each key (requests
		 * that change keys never run beside a group: keyd drains). */
		for (j = 0; j < i; j++)
			if (sets[j].r == 0 &&
			    strcmp(sets[j].key->id, sets[i].key->id) == 0)
				break;
		if ((r = sign_prepare(keys, sets[i].key, sets[i].reqs,
			 sets[i].n, sets[i].digest, sets[i].who, sets[i].sigs,
			 j < i, &pl->prep[i])) != 0) {
			set_fail(&sets[i], r);
			continue;
		}
		nev += sets[i].n;
		njobs += (sets[i].n + GROUP_JOB - 1) / GROUP_JOB;
	}
	if (nev == 0) {
		plan_free(pl);
		return NULL;
	}
	r = RF_ERR_ALLOC;
	if ((evs = calloc(nev, sizeof(*evs))) == NULL ||
	    (pl->jobs = calloc(njobs, sizeof(*pl->jobs))) == NULL)
		goto fail;
	for (i = 0, nev = 0; i < n; i++) {
		if (sets[i].r != 0)
			continue;
		memcpy(evs + nev, pl->prep[i].evs, sets[i].n * sizeof(*evs));
		nev += sets[i].n;
	}
	plan_jobs(keys, pl);
	/* The record first: one durable append for every caller. */
	if ((r = keys_audit_append(keys, evs, nev, "nothing was signed")) != 0)
		goto fail;
	free(evs);
	test_drop_if_armed(keys);
	return pl;
fail:
	sets_fail(sets, n, r);
	free(evs);
	plan_free(pl);
	return NULL;
}

/* Set i's jobs are done: its result, then the caller's callback. */
static void
plan_set_done(struct rf_sign_plan *pl, size_t i)
{
	struct rf_sign_set *set = &pl->sets[i];
	size_t j, end;

	end = pl->first_job[i] + (set->n + GROUP_JOB - 1) / GROUP_JOB;
	for (j = pl->first_job[i]; j < end; j++)
		if (pl->jobs[j].r != 0) {
			set_fail(set,
			    rf_err_set(pl->jobs[j].r, "%s", pl->jobs[j].msg));
			break;
		}
	if (pl->done != NULL)
		pl->done(pl->done_arg, set);
}

/* A signing thread's share of the plan's jobs; the last job of a set
 * settles it, in whichever thread ran that job. */
static void
plan_range(void *arg, size_t from, size_t to)
{
	struct rf_sign_plan *pl = arg;
	struct sign_job *job;

	for (; from < to; from++) {
		job = &pl->jobs[from];
		sign_worker(job);
		if (__atomic_sub_fetch(
			&pl->left[job->set], 1, __ATOMIC_ACQ_REL) == 0)
			plan_set_done(pl, job->set);
	}
}

void
rf_keys_group_sign_each(struct rf_sign_plan *pl, struct rf_crew *crew,
    void (*done)(void *arg, struct rf_sign_set *set), void *arg)
{
	if (pl == NULL)
		return;
	pl->done = done;
	pl->done_arg = arg;
	if (crew != NULL)
		rf_crew_run(crew, pl->njobs, plan_range, pl);
	else
		rf_parallel(pl->njobs, SIGN_THREADS, plan_range, pl);
	plan_free(pl);
}

int
rf_keys_sign_threads(void)
{
	return SIGN_THREADS;
}

void
rf_keys_group_sign(struct rf_sign_plan *pl)
{
	rf_keys_group_sign_each(pl, NULL, NULL, NULL);
}

/* Each set on its own, as rf_keys_sign or rf_keys_sign_digest would. */
struct alone {
	struct rf_keys *keys;
	struct rf_sign_set *sets;
};

static void
alone_range(void *arg, size_t from, size_t to)
{
	struct alone *a = arg;
	struct rf_sign_set *set;
	int r;

	for (; from < to; from++) {
		set = &a->sets[from];
		if (set->r != 0)
			continue;
		if (a->keys != NULL && a->keys->kc != NULL)
			r = rf_kc_sign_told(a->keys->kc, set->key, set->reqs,
			    set->n, set->digest, set->who, set->sigs,
			    set->recorded);
		else
			r = set->digest
			    ? rf_keys_sign_digest(a->keys, set->key, set->reqs,
				  set->n, set->who, set->sigs)
			    : rf_keys_sign(a->keys, set->key, set->reqs, set->n,
				  set->who, set->sigs);
		if (r != 0)
			set_fail(set, r);
	}
}

void
rf_keys_sign_group(struct rf_keys *keys, struct rf_sign_set *sets, size_t n)
{
	struct alone a = {keys, sets};

	if (n == 1) {
		alone_range(&a, 0, 1); /* sign_many's path */
		return;
	}
	if (keys != NULL && keys->kc != NULL) {
		/* Through keyd: every set a request of its own, all sent at
		 * once (a connection each), so that keyd records them in one
		 * append and signs one while it records the next. */
		rf_parallel(n, n < 16 ? (int)n : 16, alone_range, &a);
		return;
	}
	rf_keys_group_sign(rf_keys_group_record(keys, sets, n));
}

/*
 * n discarded signatures on `threads` sessions: of a fixed digest with the
 * key's default mechanism (reqs NULL), or one per reqs[i], all the same.
 */
static int
measure(struct rf_keys *keys, struct rf_key *key, size_t n, int threads,
    const struct rf_sign_req *reqs, double *per_sec)
{
	struct sign_job jobs[16];
	struct rf_audit_event ev;
	uint8_t dig[1][DIGEST_MAX];
	char detail[128];
	struct timespec t0, t1;
	double secs;
	int i, r;

	*per_sec = 0;
	if (n == 0 || threads < 1 || threads > 16)
		return rf_err_set(RF_ERR_ARG,
		    "measure 1 or more signatures "
		    "on 1 to 16 threads");
	memset(dig, 0x5a, sizeof(dig));
	/* Even discarded signatures are key uses: one leaf says how many. */
	if (reqs == NULL)
		snprintf(detail, sizeof(detail),
		    "%zu signatures of a fixed digest on %d threads, "
		    "discarded",
		    n, threads);
	else
		snprintf(detail, sizeof(detail),
		    "%zu %s signatures of a fixed %zu-byte message on %d "
		    "threads, discarded",
		    n, reqs[0].scheme == RF_SIG_RSA_PSS ? "RSA-PSS" : "RSA",
		    reqs[0].msglen, threads);
	memset(&ev, 0, sizeof(ev));
	ev.type = "measure";
	ev.key_id = key->id;
	ev.actor = keys->cfg.actor[0] ? keys->cfg.actor : NULL;
	ev.detail = detail;
	if ((r = keys_audit_append(keys, &ev, 1, "nothing was signed")) != 0)
		return r;
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < threads; i++) {
		jobs[i].keys = keys;
		jobs[i].key = key;
		jobs[i].reqs = reqs;
		jobs[i].dig = (const uint8_t(*)[DIGEST_MAX])dig;
		jobs[i].diglen = EVP_MD_get_size(rf_key_alg_md(key->alg));
		jobs[i].from = n * (size_t)i / (size_t)threads;
		jobs[i].to = n * (size_t)(i + 1) / (size_t)threads;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_jobs(jobs, threads);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if ((r = jobs_result(jobs, threads)) != 0)
		return r;
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	*per_sec = secs > 0 ? (double)n / secs : 0;
	return 0;
}

int
rf_keys_measure_rate(struct rf_keys *keys, struct rf_key *key, size_t n,
    int threads, double *per_sec)
{
	if (keys->kc != NULL)
		return rf_kc_measure_rate(keys->kc, key, n, threads, per_sec);
	return measure(keys, key, n, threads, NULL, per_sec);
}

int
rf_keys_measure_rate_msg(struct rf_keys *keys, struct rf_key *key, size_t n,
    int threads, enum rf_sig_scheme scheme, size_t msglen, double *per_sec)
{
	struct rf_sign_req *reqs;
	uint8_t *msg;
	size_t i;
	int r;

	*per_sec = 0;
	if (keys->kc != NULL || !rf_key_alg_rsa(key->alg))
		return rf_err_set(RF_ERR_ARG,
		    "a message's signing rate is measured with an RSA key "
		    "in the token's own process");
	if (scheme != RF_SIG_DEFAULT && scheme != RF_SIG_RSA_PSS)
		return rf_err_set(
		    RF_ERR_ARG, "measure RSA-PSS or PKCS#1 v1.5 signatures");
	if (n == 0 || n > 1000000 || msglen == 0 || msglen > 65536)
		return rf_err_set(RF_ERR_ARG,
		    "measure 1 to 1000000 signatures of 1 to 65536 bytes");
	reqs = calloc(n, sizeof(*reqs));
	msg = malloc(msglen);
	if (reqs == NULL || msg == NULL) {
		free(reqs);
		free(msg);
		return RF_ERR_ALLOC;
	}
	memset(msg, 0x5a, msglen);
	for (i = 0; i < n; i++) {
		reqs[i].msg = msg;
		reqs[i].msglen = msglen;
		reqs[i].scheme = scheme;
		reqs[i].what = "measure";
	}
	r = measure(keys, key, n, threads, reqs, per_sec);
	free(reqs);
	free(msg);
	return r;
}
