/*
 * evp.c: a token key as an EVP_PKEY, for OpenSSL's libssl.
 *
 * A TLS server signs its handshake with its private key: CertificateVerify
 * in TLS 1.3 (RFC 8446 section 4.4.3), the ServerKeyExchange parameters in
 * TLS 1.2 (RFC 8422 section 5.4). libssl makes that signature with the
 * EVP_PKEY it was given. The one made here is an EC_KEY holding only the
 * public point, with an EC_KEY_METHOD whose sign callback takes the digest
 * libssl computed and hands it to rf_keys_sign_digest(): the audit leaf is
 * durable before the token signs, the signature is verified with the
 * public key before it is returned, and no private key material exists
 * outside the token.
 *
 * Why the deprecated EC_KEY_METHOD API: OpenSSL 3.0 calls an EVP_PKEY
 * whose EC_KEY has a method other than its own "foreign" and runs its
 * operations through the legacy code path, which calls the method's sign
 * callback (OpenSSH's ssh-pkcs11.c relies on the same). The provider
 * alternative (OSSL_PROVIDER_add_builtin with a keymgmt and a signature
 * implementation) would be several hundred lines for the same callback.
 * This file alone suppresses the deprecation warnings.
 *
 * Inside an OpenSSL ASYNC job (libssl with SSL_MODE_ASYNC) the signature
 * is handed to the runner serve sets (rf_keys_evp_set_runner) and the job
 * pauses until it is made: the thread running libssl goes on with its
 * other connections instead of waiting for keyd's append and signature.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/async.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "keys/keys.h"

/* What an EC_KEY of ours signs with; owned by the EC_KEY's ex_data. */
struct bridge {
	struct rf_keys *keys; /* borrowed */
	struct rf_key *key;   /* own copy */
	char *what, *ref;     /* for the audit leaf, or NULL */
	char *actor, *source;
	struct rf_actor who; /* points at actor and source */
};

static pthread_once_t bridge_once = PTHREAD_ONCE_INIT;
static EC_KEY_METHOD *bridge_meth; /* process lifetime */
static int bridge_idx = -1;
/* Where signatures inside an ASYNC job go (rf_keys_evp_set_runner). */
static _Atomic(rf_keys_evp_runner) evp_run;
static void *_Atomic evp_run_arg;
/* The key of our fd in an ASYNC_WAIT_CTX. */
static const char evp_wait_key;

/*
 * One signature made on the runner's thread for a paused job. Two
 * references: the job's and the runner's; the last one closes efd.
 */
struct offload {
	atomic_int refs;
	atomic_int done;
	int efd;
	struct bridge *b;	       /* borrowed: its SSL outlives the job */
	const struct rf_sign_req *req; /* on the paused job's stack */
	struct rf_sig s;
	int r;
	char msg[256]; /* the error's message, made on the runner's thread */
};

static void
bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	rf_key_free(b->key);
	free(b->what);
	free(b->ref);
	free(b->actor);
	free(b->source);
	free(b);
}

/* CRYPTO_EX_free: called for every EC_KEY freed, ours or not. */
static void
bridge_ex_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	bridge_free(ptr);
}

void
rf_keys_evp_set_runner(rf_keys_evp_runner run, void *arg)
{
	atomic_store(&evp_run_arg, arg);
	atomic_store(&evp_run, run);
}

static void
offload_unref(struct offload *o)
{
	if (atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	rf_sig_clear(&o->s);
	close(o->efd);
	free(o);
}

/* On the runner's thread: the signature, then wake the paused job. */
static void
offload_run(void *arg, int cancelled)
{
	struct offload *o = arg;
	uint64_t one = 1;

	if (cancelled)
		o->r = rf_err_set(RF_ERR_STATE, "the server is stopping");
	else
		o->r = rf_keys_sign_digest(
		    o->b->keys, o->b->key, o->req, 1, &o->b->who, &o->s);
	if (o->r != 0)
		snprintf(o->msg, sizeof(o->msg), "%s", rf_err_msg(o->r));
	rf_err_clear();
	atomic_store(&o->done, 1);
	(void)!write(o->efd, &one, sizeof(one));
	offload_unref(o);
}

/*
 * Inside job: the signature on the runner's thread while the job pauses
 * (its wait fd turns readable when it is made). msg: the error's text.
 */
static int
sign_offloaded(struct bridge *b, const struct rf_sign_req *req, ASYNC_JOB *job,
    rf_keys_evp_runner run, struct rf_sig *out, char *msg, size_t msglen)
{
	ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(job);
	struct pollfd pfd;
	struct offload *o;
	int r;

	if (wctx == NULL || (o = calloc(1, sizeof(*o))) == NULL) {
		snprintf(msg, msglen, "out of memory");
		return RF_ERR_ALLOC;
	}
	atomic_init(&o->refs, 2);
	atomic_init(&o->done, 0);
	o->b = b;
	o->req = req;
	if ((o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    ASYNC_WAIT_CTX_set_wait_fd(
		wctx, &evp_wait_key, o->efd, NULL, NULL) != 1) {
		if (o->efd >= 0)
			close(o->efd);
		free(o);
		snprintf(msg, msglen, "cannot wait for the signature");
		return RF_ERR_INTERNAL;
	}
	if (run(offload_run, o, atomic_load(&evp_run_arg)) != 0) {
		(void)ASYNC_WAIT_CTX_clear_fd(wctx, &evp_wait_key);
		close(o->efd);
		free(o);
		snprintf(msg, msglen, "too many signatures wait: retry");
		return RF_ERR_STATE;
	}
	while (!atomic_load(&o->done))
		if (ASYNC_pause_job() != 1) {
			/* Cannot pause: wait here (not expected). */
			pfd.fd = o->efd;
			pfd.events = POLLIN;
			(void)poll(&pfd, 1, 100);
		}
	(void)ASYNC_WAIT_CTX_clear_fd(wctx, &evp_wait_key);
	r = o->r;
	*out = o->s;
	memset(&o->s, 0, sizeof(o->s));
	snprintf(msg, msglen, "%s", o->msg);
	offload_unref(o);
	return r;
}

/*
 * EC_KEY_METHOD sign: ECDSA_sign() and so the legacy EVP_PKEY_sign() of a
 * foreign EC key land here with the digest. sig has room for
 * ECDSA_size(ec) bytes; the result is the DER ECDSA-Sig-Value. kinv and r
 * (precomputed per-signature secrets) cannot apply to a token key.
 */
static int
bridge_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
    unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *rp, EC_KEY *ec)
{
	struct bridge *b = EC_KEY_get_ex_data(ec, bridge_idx);
	struct rf_sign_req req;
	struct rf_sig s = {NULL, 0};
	rf_keys_evp_runner run;
	ASYNC_JOB *job;
	char msg[256];
	int r, max = ECDSA_size(ec);

	(void)type;
	*siglen = 0;
	if (b == NULL || kinv != NULL || rp != NULL || dlen <= 0 || max <= 0) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
		    "ringfence: this EC key signs only through keys");
		return 0;
	}
	memset(&req, 0, sizeof(req));
	req.msg = dgst;
	req.msglen = (size_t)dlen;
	req.scheme = RF_SIG_DEFAULT;
	req.what = b->what;
	req.ref = b->ref;
	job = ASYNC_get_current_job();
	run = job != NULL ? atomic_load(&evp_run) : NULL;
	if (run != NULL)
		r = sign_offloaded(b, &req, job, run, &s, msg, sizeof(msg));
	else if ((r = rf_keys_sign_digest(
		      b->keys, b->key, &req, 1, &b->who, &s)) != 0)
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
	if (r != 0) {
		/* Into libssl's error queue: the handshake fails with it. */
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
		    "ringfence keys: %s", msg);
		return 0;
	}
	if (s.len > (size_t)max) {
		rf_sig_clear(&s);
		ERR_raise_data(ERR_LIB_USER, ERR_R_INTERNAL_ERROR,
		    "ringfence keys: signature longer than ECDSA_size");
		return 0;
	}
	memcpy(sig, s.sig, s.len);
	*siglen = (unsigned int)s.len;
	rf_sig_clear(&s);
	return 1;
}

/* EC_KEY_METHOD sign_sig (ECDSA_do_sign): the same, as an ECDSA_SIG. */
static ECDSA_SIG *
bridge_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *rp, EC_KEY *ec)
{
	unsigned char der[256];
	const unsigned char *p = der;
	unsigned int len = 0;
	ECDSA_SIG *es;

	if (ECDSA_size(ec) > (int)sizeof(der) ||
	    bridge_sign(0, dgst, dlen, der, &len, kinv, rp, ec) != 1)
		return NULL;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ECDSA_SIG_free(es);
		return NULL;
	}
	return es;
}

static void
bridge_init(void)
{
	EC_KEY_METHOD *m;

	if ((m = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) == NULL)
		return;
	/* No sign_setup: there is no secret here to precompute with. */
	EC_KEY_METHOD_set_sign(m, bridge_sign, NULL, bridge_sign_sig);
	bridge_idx =
	    EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, bridge_ex_free);
	if (bridge_idx < 0) {
		EC_KEY_METHOD_free(m);
		return;
	}
	bridge_meth = m;
}

static int
strdup_opt(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	return (*out = strdup(s)) == NULL ? RF_ERR_ALLOC : 0;
}

int
rf_keys_evp_pkey(struct rf_keys *keys, const struct rf_key *key,
    const char *what, const char *ref, const struct rf_actor *who,
    EVP_PKEY **out)
{
	uint8_t pt[1 + 2 * 66]; /* uncompressed point, P-521 at most */
	size_t ptlen = 0;
	struct bridge *b = NULL;
	EC_KEY *ec = NULL;
	EVP_PKEY *pk = NULL;
	int nid, r = RF_ERR_INTERNAL;

	*out = NULL;
	if (keys == NULL || key == NULL)
		return rf_err_set(RF_ERR_ARG, "rf_keys_evp_pkey: no key");
	switch (rf_key_alg(key)) {
	case RF_KEY_EC_P256:
		nid = NID_X9_62_prime256v1;
		break;
	case RF_KEY_EC_P384:
		nid = NID_secp384r1;
		break;
	default:
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "key %s is %s: only EC keys sign for OpenSSL through keys",
		    rf_key_id(key), rf_key_alg_name(rf_key_alg(key)));
	}
	pthread_once(&bridge_once, bridge_init);
	if (bridge_meth == NULL)
		return rf_err_set(
		    RF_ERR_INTERNAL, "cannot make an EC_KEY_METHOD");
	if (EVP_PKEY_get_octet_string_param(rf_key_public(key),
		OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "cannot read the public point");
		goto out;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	b->keys = keys;
	if ((r = rf_key_dup(key, &b->key)) != 0 ||
	    (r = strdup_opt(what, &b->what)) != 0 ||
	    (r = strdup_opt(ref, &b->ref)) != 0 ||
	    (r = strdup_opt(who ? who->actor : NULL, &b->actor)) != 0 ||
	    (r = strdup_opt(who ? who->source : NULL, &b->source)) != 0)
		goto out;
	b->who.actor = b->actor;
	b->who.source = b->source;
	/* The method first: EVP_PKEY_assign then marks the key foreign. */
	if ((ec = EC_KEY_new_by_curve_name(nid)) == NULL ||
	    EC_KEY_set_method(ec, bridge_meth) != 1 ||
	    EC_KEY_oct2key(ec, pt, ptlen, NULL) != 1 ||
	    EC_KEY_set_ex_data(ec, bridge_idx, b) != 1)
		goto fail;
	b = NULL; /* now ec's: freed with it (bridge_ex_free) */
	if ((pk = EVP_PKEY_new()) == NULL ||
	    EVP_PKEY_assign_EC_KEY(pk, ec) != 1)
		goto fail;
	ec = NULL; /* now pk's */
	*out = pk; /* the caller's */
	pk = NULL;
	r = 0;
	goto out;
fail:
	r = rf_err_set(RF_ERR_INTERNAL, "cannot build an EC key for OpenSSL");
out:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	EC_KEY_free(ec);
	bridge_free(b);
	return r;
}
