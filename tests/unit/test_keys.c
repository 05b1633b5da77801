/*
 * Key custody against a real SoftHSM2 token and a real SQLite record:
 * generation of the four algorithms, custody attributes, audit before
 * signing, failures named by their setting, disable, destroy, session
 * loss and threaded batches. Signatures are checked with OpenSSL, not
 * with the code under test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "store/store.h"
#include "keys_fx.h"

/* Independent verification: OpenSSL EVP with the key's public half. */
static int
ossl_verify(EVP_PKEY *pub, enum rf_key_alg alg, enum rf_sig_scheme scheme,
    const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;
	int ok;

	assert_non_null(m);
	assert_int_equal(
	    EVP_DigestVerifyInit(m, &p,
		alg == RF_KEY_EC_P384 ? EVP_sha384() : EVP_sha256(), NULL, pub),
	    1);
	if (scheme == RF_SIG_RSA_PSS) {
		assert_int_equal(
		    EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(p, 32), 1);
	}
	ok = EVP_DigestVerify(m, sig, siglen, msg, len);
	EVP_MD_CTX_free(m);
	return ok;
}

/*
 * Verify through the AlgorithmIdentifier: OpenSSL's ASN1_item_verify reads
 * the algorithm (and the PSS parameters) from it, as X.509 verifiers do.
 */
static int
algor_verify(struct rf_key *key, enum rf_sig_scheme scheme, X509_NAME *name,
    const struct rf_sig *sig)
{
	ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
	X509_ALGOR *alg = NULL;
	int ok;

	assert_non_null(bs);
	assert_int_equal(rf_key_sigalg(key, scheme, &alg), 0);
	assert_int_equal(ASN1_BIT_STRING_set(bs, sig->sig, (int)sig->len), 1);
	ok = ASN1_item_verify(
	    ASN1_ITEM_rptr(X509_NAME), alg, bs, name, rf_key_public(key));
	X509_ALGOR_free(alg);
	ASN1_BIT_STRING_free(bs);
	return ok;
}

static void
gen_sign_verify(struct fx *fx, enum rf_key_alg alg)
{
	enum rf_sig_scheme scheme;
	int sc, nsc = alg == RF_KEY_RSA_2048 || alg == RF_KEY_RSA_3072 ? 2 : 1;
	struct rf_key *key = NULL, *again = NULL;
	struct rf_sign_req req[2];
	struct rf_sig sig[2];
	X509_NAME *name = X509_NAME_new();
	struct rf_verifier *vf = NULL;
	uint8_t *der = NULL, dig[2][EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char id[65];
	int len, i;

	assert_int_equal(
	    rf_keys_generate(fx->keys, alg, "test-key", "acme", &who, &key), 0);
	assert_int_equal(rf_key_alg(key), alg);
	/* The id is the SPKI hash, and loading by it finds the same key. */
	assert_int_equal(rf_keys_pub_id(rf_key_public(key), id), 0);
	assert_string_equal(id, rf_key_id(key));
	assert_int_equal(rf_keys_load(fx->keys, rf_key_id(key), &again), 0);
	assert_int_equal(
	    EVP_PKEY_eq(rf_key_public(key), rf_key_public(again)), 1);
	assert_int_equal(rf_key_alg(again), alg);
	assert_int_equal(EVP_PKEY_get_bits(rf_key_public(key)),
	    alg == RF_KEY_EC_P256	 ? 256
		: alg == RF_KEY_EC_P384	 ? 384
		: alg == RF_KEY_RSA_2048 ? 2048
					 : 3072);

	assert_non_null(name);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
			     (const unsigned char *)"tenant-7", -1, -1, 0),
	    1);
	assert_true((len = i2d_X509_NAME(name, &der)) > 0);
	/* RSA keys sign with PKCS#1 v1.5 and with PSS. */
	for (sc = 0; sc < nsc; sc++) {
		scheme = sc == 0 ? RF_SIG_DEFAULT : RF_SIG_RSA_PSS;
		memset(req, 0, sizeof(req));
		for (i = 0; i < 2; i++) {
			req[i].msg = der;
			req[i].msglen = (size_t)len;
			req[i].scheme = scheme;
			req[i].what = "cert";
			req[i].ref = "01";
			req[i].tenant = "acme";
		}
		req[1].msglen = (size_t)len - 1; /* a different message */
		assert_int_equal(
		    rf_keys_sign(fx->keys, again, req, 2, &who, sig), 0);
		for (i = 0; i < 2; i++) {
			assert_non_null(sig[i].sig);
			assert_int_equal(ossl_verify(rf_key_public(key), alg,
					     scheme, req[i].msg, req[i].msglen,
					     sig[i].sig, sig[i].len),
			    1);
		}
		assert_int_equal(algor_verify(key, scheme, name, &sig[0]), 1);
		/* A signature over one message does not verify for the other.
		 */
		assert_int_not_equal(
		    ossl_verify(rf_key_public(key), alg, scheme, req[1].msg,
			req[1].msglen, sig[0].sig, sig[0].len),
		    1);
		/* The batch verifier (over the digests the leaves name) agrees:
		 * each signature holds for its own digest and scheme only. */
		assert_int_equal(
		    rf_keys_verifier_new(rf_key_public(key), alg, &vf), 0);
		for (i = 0; i < 2; i++) {
			assert_int_equal(
			    EVP_Digest(req[i].msg, req[i].msglen, dig[i], &dlen,
				rf_key_alg_md(alg), NULL),
			    1);
			assert_int_equal(
			    rf_keys_verifier_check(vf, scheme, dig[i], dlen,
				sig[i].sig, sig[i].len),
			    0);
		}
		assert_int_equal(rf_keys_verifier_check(vf, scheme, dig[1],
				     dlen, sig[0].sig, sig[0].len),
		    RF_ERR_SIGNATURE_INVALID);
		if (nsc >
		    1) /* PKCS#1 v1.5 and PSS do not pass for each other */
			assert_int_not_equal(
			    rf_keys_verifier_check(vf,
				sc == 0 ? RF_SIG_RSA_PSS : RF_SIG_DEFAULT,
				dig[0], dlen, sig[0].sig, sig[0].len),
			    0);
		/* Every single-bit flip of the signature is rejected. */
		for (i = 0; i < (int)sig[0].len * 8; i += 7) {
			sig[0].sig[i / 8] ^= (uint8_t)(1u << (i % 8));
			assert_int_not_equal(
			    ossl_verify(rf_key_public(key), alg, scheme,
				req[0].msg, req[0].msglen, sig[0].sig,
				sig[0].len),
			    1);
			assert_int_not_equal(
			    rf_keys_verify(rf_key_public(key), alg, scheme,
				req[0].msg, req[0].msglen, sig[0].sig,
				sig[0].len),
			    0);
			assert_int_not_equal(
			    rf_keys_verifier_check(vf, scheme, dig[0], dlen,
				sig[0].sig, sig[0].len),
			    0);
			sig[0].sig[i / 8] ^= (uint8_t)(1u << (i % 8));
		}
		rf_keys_verifier_free(vf);
		vf = NULL;
		rf_sig_clear(&sig[0]);
		rf_sig_clear(&sig[1]);
	}
	OPENSSL_free(der);
	X509_NAME_free(name);
	rf_key_free(again);
	rf_key_free(key);
}

static void
test_ec_p256(void **state)
{
	gen_sign_verify(*state, RF_KEY_EC_P256);
}

static void
test_ec_p384(void **state)
{
	gen_sign_verify(*state, RF_KEY_EC_P384);
}

static void
test_rsa_2048(void **state)
{
	gen_sign_verify(*state, RF_KEY_RSA_2048);
}

static void
test_rsa_3072(void **state)
{
	gen_sign_verify(*state, RF_KEY_RSA_3072);
}

static void
test_custody(void **state)
{
	struct fx *fx = *state;
	enum rf_key_alg algs[] = {RF_KEY_EC_P256, RF_KEY_RSA_2048};
	struct rf_key *key;
	int s, e, as, ne;
	size_t i;

	for (i = 0; i < 2; i++) {
		assert_int_equal(rf_keys_generate(fx->keys, algs[i], "custody",
				     NULL, &who, &key),
		    0);
		s = e = as = ne = -1;
		assert_int_equal(
		    rf_keys_custody(fx->keys, rf_key_id(key), &s, &e, &as, &ne),
		    0);
		assert_int_equal(s, 1);
		assert_int_equal(e, 0);
		assert_int_equal(as, 1);
		assert_int_equal(ne, 1);
		rf_key_free(key);
	}
	assert_int_equal(rf_keys_custody(fx->keys,
			     "00000000000000000000000000000000"
			     "00000000000000000000000000000000",
			     &s, &e, &as, &ne),
	    RF_ERR_KEY_NOT_FOUND);
}

struct leaf_check {
	const char *key_id;
	char digests[3][65];
	size_t seen;
};

static int
check_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct leaf_check *c = arg;
	char *data = calloc(1, l->len + 1);

	assert_non_null(data);
	memcpy(data, l->data, l->len);
	assert_string_equal(l->type, "sign");
	assert_non_null(l->key_id);
	assert_string_equal(l->key_id, c->key_id);
	assert_non_null(strstr(data, c->digests[c->seen]));
	assert_non_null(strstr(data, "\"what\":\"crl\""));
	free(data);
	c->seen++;
	return 0;
}

static void
test_audit_before_sign(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key;
	struct rf_sign_req req[3];
	struct rf_sig sig[3];
	struct leaf_check c;
	const char *msgs[3] = {"one", "two", "three"};
	uint8_t md[32];
	uint64_t before;
	size_t i;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "crl", NULL, &who, &key),
	    0);
	memset(req, 0, sizeof(req));
	memset(&c, 0, sizeof(c));
	c.key_id = rf_key_id(key);
	for (i = 0; i < 3; i++) {
		req[i].msg = (const uint8_t *)msgs[i];
		req[i].msglen = strlen(msgs[i]);
		req[i].what = "crl";
		req[i].ref = "7";
		assert_int_equal(EVP_Digest(msgs[i], strlen(msgs[i]), md, NULL,
				     EVP_sha256(), NULL),
		    1);
		rf_hex(md, sizeof(md), c.digests[i]);
	}
	before = leaves(fx);
	assert_int_equal(rf_keys_sign(fx->keys, key, req, 3, &who, sig), 0);
	assert_int_equal(leaves(fx), before + 3);
	assert_int_equal(
	    rf_store_leaf_foreach(fx->st, before, before + 3, check_leaf, &c),
	    0);
	assert_int_equal(c.seen, 3);
	for (i = 0; i < 3; i++)
		rf_sig_clear(&sig[i]);
	rf_key_free(key);
}

/*
 * A leaf appended inside an open transaction of the record's connection is
 * durable only at the caller's commit, after the signature: refused, with
 * no leaf and no signature.
 */
static void
test_sign_inside_transaction(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	uint64_t before;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "crl", NULL, &who, &key),
	    0);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	req.what = "crl";
	before = leaves(fx);
	assert_int_equal(rf_store_begin(fx->st), 0);
	assert_int_equal(
	    rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), RF_ERR_INTERNAL);
	assert_non_null(strstr(rf_err_msg(RF_ERR_INTERNAL), "transaction"));
	assert_null(sig.sig);
	rf_store_rollback(fx->st);
	assert_int_equal(leaves(fx), before);
	/* Outside it, the same request signs. */
	assert_int_equal(rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), 0);
	assert_non_null(sig.sig);
	assert_int_equal(leaves(fx), before + 1);
	rf_sig_clear(&sig);
	rf_key_free(key);
}

static void
test_audit_failure_no_signature(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key;
	struct rf_sign_req req[2];
	struct rf_sig sig[2];
	char *big;
	uint64_t before;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "k", NULL, &who, &key),
	    0);
	/* A reference too large for a leaf: the record refuses it. */
	assert_non_null(big = malloc(RF_AUDIT_LEAF_MAX + 16));
	memset(big, 'a', RF_AUDIT_LEAF_MAX + 15);
	big[RF_AUDIT_LEAF_MAX + 15] = '\0';
	memset(req, 0, sizeof(req));
	req[0].msg = req[1].msg = (const uint8_t *)"tbs";
	req[0].msglen = req[1].msglen = 3;
	req[0].what = req[1].what = "cert";
	req[1].ref = big;
	sig[0].sig = (uint8_t *)"junk"; /* must come back NULL */
	before = leaves(fx);
	assert_int_equal(
	    rf_keys_sign(fx->keys, key, req, 2, &who, sig), RF_ERR_AUDIT);
	assert_null(sig[0].sig);
	assert_null(sig[1].sig);
	assert_non_null(strstr(rf_err_msg(RF_ERR_AUDIT), "nothing was signed"));
	assert_int_equal(leaves(fx), before); /* all or nothing */
	/* A tenant that is not UTF-8 is refused as well. */
	req[1].ref = NULL;
	req[1].tenant = "\xff\xfe";
	assert_int_equal(
	    rf_keys_sign(fx->keys, key, req, 2, &who, sig), RF_ERR_AUDIT);
	assert_null(sig[0].sig);
	assert_int_equal(leaves(fx), before);
	free(big);
	rf_key_free(key);
}

/* keys list of known keys: each listed once, with its label and alg. */
struct listed {
	char (*ids)[65];
	const struct rf_keygen *kg; /* the first nkg of ids */
	size_t n, nkg, seen;
};

static int
listed_key(void *arg, const struct rf_key_info *ki)
{
	struct listed *l = arg;
	size_t i;

	for (i = 0; i < l->n && strcmp(l->ids[i], ki->id) != 0; i++)
		;
	assert_true(i < l->n);
	assert_int_equal(ki->can_sign, 1);
	assert_int_equal(strlen(ki->token_id), 2 * 16);
	if (i < l->nkg) {
		assert_string_equal(ki->label, l->kg[i].label);
		assert_int_equal(ki->alg, l->kg[i].alg);
	} else {
		assert_string_equal(ki->label, "one");
	}
	assert_int_equal(ki->sensitive, 1);
	assert_int_equal(ki->extractable, 0);
	l->seen++;
	return 0;
}

static int
count_key(void *arg, const struct rf_key_info *ki)
{
	size_t *n = arg;

	assert_int_equal(strlen(ki->id), 64);
	assert_int_equal(ki->sensitive, 1);
	assert_int_equal(ki->extractable, 0);
	assert_int_equal(ki->never_extractable, 1);
	assert_int_not_equal(ki->alg, RF_KEY_NONE);
	(*n)++;
	return 0;
}

static void
test_audit_readonly_no_signature(void **state)
{
	struct fx *fx = *state;
	struct rf_store *ro = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_key *key = NULL, *rokey = NULL;
	struct rf_sign_req req;
	struct rf_sig sig;
	char uri[1200];
	uint64_t before;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "ro", NULL, &who, &key),
	    0);
	/* A record that cannot be written: a read-only connection. */
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", fx->cfg.db_path);
	assert_int_equal(rf_store_open(uri, 0, &ro), 0);
	assert_int_equal(rf_audit_open(ro, &audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, audit, &keys), 0);
	assert_int_equal(rf_keys_load(keys, rf_key_id(key), &rokey), 0);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	req.what = "cert";
	before = leaves(fx);
	assert_int_equal(
	    rf_keys_sign(keys, rokey, &req, 1, &who, &sig), RF_ERR_AUDIT);
	assert_null(sig.sig);
	assert_int_equal(leaves(fx), before);
	/* Keys made without their record are destroyed, all of them. */
	{
		struct rf_keygen kg[3] = {{RF_KEY_EC_P256, "g1", "t", NULL},
		    {RF_KEY_RSA_2048, "g2", "t", NULL},
		    {RF_KEY_EC_P384, "g3", NULL, NULL}};
		struct rf_key *got[3] = {NULL, NULL, NULL};
		size_t n0 = 0, n1 = 0;

		assert_int_equal(rf_keys_list(fx->keys, count_key, &n0), 0);
		/* The store learns each new key's random CKA_ID before the
		 * token makes it: a read-only store stops it there. */
		assert_int_equal(rf_keys_generate_many(keys, kg, 3, &who, got),
		    RF_ERR_STORE_READONLY);
		assert_non_null(strstr(
		    rf_err_msg(RF_ERR_STORE_READONLY), "nothing was made"));
		assert_null(got[0]);
		assert_null(got[2]);
		assert_int_equal(rf_keys_list(fx->keys, count_key, &n1), 0);
		assert_int_equal(n1, n0);
		assert_int_equal(leaves(fx), before);
	}
	/* The same key signs through a writable record. */
	assert_int_equal(rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), 0);
	assert_non_null(sig.sig);
	assert_int_equal(leaves(fx), before + 1);
	rf_sig_clear(&sig);
	rf_key_free(rokey);
	rf_key_free(key);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(ro);
}

static void
test_wrong_pin(void **state)
{
	struct fx *fx = *state;
	struct rf_config cfg = fx->cfg;
	struct rf_keys *k = (struct rf_keys *)1;
	uint64_t before = leaves(fx);

	/*
	 * PKCS#11 logins are per process: close the fixture's sessions so
	 * that the login is really attempted.
	 */
	rf_keys_free(fx->keys);
	fx->keys = NULL;
	snprintf(cfg.pin, sizeof(cfg.pin), "4321");
	assert_int_equal(rf_keys_open(&cfg, fx->audit, &k), RF_ERR_TOKEN_PIN);
	assert_null(k);
	assert_non_null(strstr(rf_err_msg(RF_ERR_TOKEN_PIN), "RINGFENCE_PIN"));
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_TOKEN_PIN), "CKR_PIN_INCORRECT"));
	/* ...and the failed login is on the record. */
	assert_int_equal(leaves(fx), before + 1);
	/* The right PIN still works afterwards. */
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
}

static void
test_bad_settings(void **state)
{
	struct fx *fx = *state;
	struct rf_config cfg = fx->cfg;
	struct rf_keys *k = NULL;

	snprintf(
	    cfg.module, sizeof(cfg.module), "%s/no-such-module.so", fx->home);
	assert_int_equal(
	    rf_keys_open(&cfg, fx->audit, &k), RF_ERR_TOKEN_MODULE);
	assert_null(k);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_TOKEN_MODULE), "RINGFENCE_MODULE"));
	assert_non_null(strstr(rf_err_msg(RF_ERR_TOKEN_MODULE), cfg.module));

	cfg = fx->cfg;
	snprintf(cfg.token, sizeof(cfg.token), "no-such-token");
	assert_int_equal(
	    rf_keys_open(&cfg, fx->audit, &k), RF_ERR_TOKEN_NOT_FOUND);
	assert_null(k);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_TOKEN_NOT_FOUND), "RINGFENCE_TOKEN"));
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_TOKEN_NOT_FOUND), "no-such-token"));
}

static void
test_disable(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key;
	struct rf_sign_req req;
	struct rf_sig sig;
	uint64_t before;
	int s, e, as, ne;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P384, "d", NULL, &who, &key),
	    0);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"m";
	req.msglen = 1;
	req.what = "cert";
	assert_int_equal(rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), 0);
	rf_sig_clear(&sig);
	before = leaves(fx);
	assert_int_equal(rf_keys_disable(fx->keys, rf_key_id(key), &who), 0);
	assert_int_equal(leaves(fx), before + 1); /* key-disable */
	assert_int_equal(rf_keys_sign(fx->keys, key, &req, 1, &who, &sig),
	    RF_ERR_KEY_DISABLED);
	assert_null(sig.sig);
	assert_int_equal(leaves(fx), before + 1); /* no sign leaf */
	/* Still in custody, just unable to sign: the store refuses it. */
	assert_int_equal(
	    rf_keys_custody(fx->keys, rf_key_id(key), &s, &e, &as, &ne), 0);
	assert_int_equal(s, 1);
	assert_int_equal(e, 0);
	{
		struct rf_key_rec kr;
		struct rf_keys *other = NULL;
		struct rf_key *again = NULL;

		assert_int_equal(
		    rf_store_key_get(fx->st, rf_key_id(key), &kr), 0);
		assert_string_equal(kr.state, "disabled");
		/* Another handle, loading the key afresh, is refused too. */
		assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &other), 0);
		assert_int_equal(
		    rf_keys_load(other, rf_key_id(key), &again), 0);
		assert_int_equal(
		    rf_keys_sign(other, again, &req, 1, &who, &sig),
		    RF_ERR_KEY_DISABLED);
		assert_int_equal(leaves(fx), before + 1);
		rf_key_free(again);
		rf_keys_free(other);
	}
	rf_key_free(key);
}

static void
test_destroy(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key, *again = NULL;
	struct rf_sign_req req;
	struct rf_sig sig;
	char id[65];
	uint64_t before;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "x",
			     "acme", &who, &key),
	    0);
	snprintf(id, sizeof(id), "%s", rf_key_id(key));
	before = leaves(fx);
	assert_int_equal(rf_keys_destroy(fx->keys, id, &who), 0);
	assert_int_equal(leaves(fx), before + 2); /* destroy-intent, destroy */
	assert_int_equal(
	    rf_keys_load(fx->keys, id, &again), RF_ERR_KEY_NOT_FOUND);
	assert_null(again);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"m";
	req.msglen = 1;
	/* The store says destroyed: refused before the token is asked. */
	assert_int_equal(rf_keys_sign(fx->keys, key, &req, 1, &who, &sig),
	    RF_ERR_KEY_DISABLED);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_KEY_DISABLED), "destroyed in the store"));
	assert_null(sig.sig);
	assert_int_equal(leaves(fx), before + 2);
	assert_int_equal(
	    rf_keys_destroy(fx->keys, id, &who), RF_ERR_KEY_NOT_FOUND);
	assert_int_equal(rf_keys_load(fx->keys, "zz", &again), RF_ERR_ARG);
	rf_key_free(key);
}

#ifdef RF_TEST_HOOKS /* the hooks exist in test builds only */
static void
test_session_loss(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key, *again = NULL;
	struct rf_sign_req req;
	struct rf_sig sig;
	int round;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "s", NULL, &who, &key),
	    0);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"after the reset";
	req.msglen = strlen((const char *)req.msg);
	for (round = 0; round < 3; round++) {
		assert_int_equal(rf_keys_test_drop_sessions(fx->keys), 0);
		assert_int_equal(
		    rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), 0);
		assert_int_equal(
		    ossl_verify(rf_key_public(key), RF_KEY_EC_P256,
			RF_SIG_DEFAULT, req.msg, req.msglen, sig.sig, sig.len),
		    1);
		rf_sig_clear(&sig);
		/* Lost after the audit append, in the middle of signing. */
		rf_keys_test_drop_at_sign(fx->keys);
		assert_int_equal(
		    rf_keys_sign(fx->keys, key, &req, 1, &who, &sig), 0);
		assert_int_equal(
		    ossl_verify(rf_key_public(key), RF_KEY_EC_P256,
			RF_SIG_DEFAULT, req.msg, req.msglen, sig.sig, sig.len),
		    1);
		rf_sig_clear(&sig);
	}
	assert_int_equal(rf_keys_test_drop_sessions(fx->keys), 0);
	assert_int_equal(rf_keys_load(fx->keys, rf_key_id(key), &again), 0);
	rf_key_free(again);
	rf_key_free(key);
}
#endif

/* Sign n messages and check each; exact: check the leaf count too (only
 * when no other thread signs). */
static void
sign_batch(struct fx *fx, struct rf_key *key, size_t n, int exact)
{
	struct rf_sign_req *req = calloc(n, sizeof(*req));
	struct rf_sig *sig = calloc(n, sizeof(*sig));
	char(*msg)[32] = calloc(n, sizeof(*msg));
	uint64_t before = exact ? leaves(fx) : 0;
	size_t i;

	assert_non_null(req);
	assert_non_null(sig);
	assert_non_null(msg);
	for (i = 0; i < n; i++) {
		snprintf(msg[i], sizeof(msg[i]), "response %zu", i);
		req[i].msg = (const uint8_t *)msg[i];
		req[i].msglen = strlen(msg[i]);
		req[i].what = "ocsp";
	}
	assert_int_equal(rf_keys_sign(fx->keys, key, req, n, &who, sig), 0);
	if (exact)
		assert_int_equal(leaves(fx), before + n);
	for (i = 0; i < n; i++)
		assert_int_equal(
		    ossl_verify(rf_key_public(key), rf_key_alg(key),
			RF_SIG_DEFAULT, req[i].msg, req[i].msglen, sig[i].sig,
			sig[i].len),
		    1);
	for (i = 0; i < n; i++)
		rf_sig_clear(&sig[i]);
	free(msg);
	free(sig);
	free(req);
}

static void
test_batch_threads(void **state)
{
	struct fx *fx = *state;
	struct rf_key *key;
	double rate = 0;
	uint64_t before;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "b", NULL, &who, &key),
	    0);
	sign_batch(fx, key, 200, 1);
#ifdef RF_TEST_HOOKS
	/* Lost sessions in the middle of threaded work recover too. */
	assert_int_equal(rf_keys_test_drop_sessions(fx->keys), 0);
	sign_batch(fx, key, 200, 1);
	rf_keys_test_drop_at_sign(fx->keys); /* both threads lose theirs */
	sign_batch(fx, key, 200, 1);
	rf_keys_test_drop_at_sign(fx->keys);
#endif
	sign_batch(fx, key, 3, 1); /* and the single-thread path */
	before = leaves(fx);
	assert_int_equal(rf_keys_measure_rate(fx->keys, key, 200, 2, &rate), 0);
	assert_true(rate > 0);
	assert_int_equal(leaves(fx), before + 1); /* one "measure" leaf */
	/* A message's rate (an assertion's PSS signature) is RSA only. */
	assert_int_equal(rf_keys_measure_rate_msg(
			     fx->keys, key, 20, 2, RF_SIG_RSA_PSS, 492, &rate),
	    RF_ERR_ARG);
	assert_true(rate == 0);
	assert_int_equal(leaves(fx), before + 1);
	rf_key_free(key);
	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "m", NULL, &who, &key),
	    0);
	before = leaves(fx);
	assert_int_equal(rf_keys_measure_rate_msg(
			     fx->keys, key, 20, 2, RF_SIG_RSA_PSS, 492, &rate),
	    0);
	assert_true(rate > 0);
	assert_int_equal(leaves(fx), before + 1);
	rf_key_free(key);
}

/*
 * Large batches are pipelined (docs/keys.md): the leaves go to the record
 * in chunks while earlier chunks are signed. The leaves are still one per
 * request, in request order, each with the digest of its own request.
 */
struct order_check {
	const char *key_id;
	char (*digests)[65]; /* of the requests, in order */
	size_t seen;
};

static int
check_order(void *arg, const struct rf_leaf_rec *l)
{
	struct order_check *c = arg;
	char *data = calloc(1, l->len + 1);
	char want[80];

	assert_non_null(data);
	memcpy(data, l->data, l->len);
	assert_string_equal(l->type, "sign");
	assert_non_null(l->key_id);
	assert_string_equal(l->key_id, c->key_id);
	snprintf(want, sizeof(want), "\"digest\":\"%s\"", c->digests[c->seen]);
	assert_non_null(strstr(data, want));
	free(data);
	c->seen++;
	return 0;
}

/* n requests "request <i>" for key, with the hex SHA-256 of each. */
static void
pipe_reqs(
    size_t n, struct rf_sign_req **req, char (**msg)[32], char (**digests)[65])
{
	uint8_t md[32];
	size_t i;

	assert_non_null(*req = calloc(n, sizeof(**req)));
	assert_non_null(*msg = calloc(n, sizeof(**msg)));
	assert_non_null(*digests = calloc(n, sizeof(**digests)));
	for (i = 0; i < n; i++) {
		snprintf((*msg)[i], sizeof((*msg)[i]), "request %zu", i);
		(*req)[i].msg = (const uint8_t *)(*msg)[i];
		(*req)[i].msglen = strlen((*msg)[i]);
		(*req)[i].what = "cert";
		assert_int_equal(EVP_Digest((*msg)[i], strlen((*msg)[i]), md,
				     NULL, EVP_sha256(), NULL),
		    1);
		rf_hex(md, sizeof(md), (*digests)[i]);
	}
}

static void
test_batch_pipelined(void **state)
{
	struct fx *fx = *state;
	/* The threshold, odd sizes, and enough for the largest chunks. */
	static const size_t sizes[] = {64, 65, 97, 700, 1300};
	struct order_check c;
	struct rf_sign_req *req;
	struct rf_sig *sig;
	char(*msg)[32];
	uint64_t before;
	size_t k, i, n;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "p", NULL,
			     &who, &fx->key),
	    0);
	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		n = sizes[k];
		pipe_reqs(n, &req, &msg, &c.digests);
		assert_non_null(sig = calloc(n, sizeof(*sig)));
		before = leaves(fx);
		assert_int_equal(
		    rf_keys_sign(fx->keys, fx->key, req, n, &who, sig), 0);
		assert_int_equal(leaves(fx), before + n);
		c.key_id = rf_key_id(fx->key);
		c.seen = 0;
		assert_int_equal(rf_store_leaf_foreach(fx->st, before,
				     before + n, check_order, &c),
		    0);
		assert_int_equal(c.seen, n);
		for (i = 0; i < n; i++) {
			assert_int_equal(
			    ossl_verify(rf_key_public(fx->key), RF_KEY_EC_P256,
				RF_SIG_DEFAULT, req[i].msg, req[i].msglen,
				sig[i].sig, sig[i].len),
			    1);
			rf_sig_clear(&sig[i]);
		}
		free(sig);
		free(c.digests);
		free(msg);
		free(req);
	}
}

/*
 * An append that fails part-way through a pipelined batch (a reference
 * too large for a leaf, in a late chunk) fails the whole call with no
 * signature released; the leaves of the chunks before it stay, in order,
 * for signatures that never left. In the first chunk it fails as a small
 * batch does: no leaf, "nothing was signed". Inside an open transaction
 * of the record's connection, a large batch is refused too.
 */
static void
test_batch_pipelined_failure(void **state)
{
	struct fx *fx = *state;
	struct order_check c;
	struct rf_sign_req *req;
	struct rf_sig *sig;
	char(*msg)[32];
	char *big;
	uint64_t before, got;
	size_t n = 700, i;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "f", NULL,
			     &who, &fx->key),
	    0);
	assert_non_null(big = malloc(RF_AUDIT_LEAF_MAX + 16));
	memset(big, 'a', RF_AUDIT_LEAF_MAX + 15);
	big[RF_AUDIT_LEAF_MAX + 15] = '\0';
	pipe_reqs(n, &req, &msg, &c.digests);
	assert_non_null(sig = calloc(n, sizeof(*sig)));

	req[650].ref = big;
	sig[0].sig = sig[n - 1].sig = (uint8_t *)"junk"; /* come back NULL */
	before = leaves(fx);
	assert_int_equal(
	    rf_keys_sign(fx->keys, fx->key, req, n, &who, sig), RF_ERR_AUDIT);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_AUDIT), "nothing was released"));
	for (i = 0; i < n; i++)
		assert_null(sig[i].sig);
	got = leaves(fx) - before;
	assert_true(got > 0 && got < 650);
	c.key_id = rf_key_id(fx->key);
	c.seen = 0;
	assert_int_equal(rf_store_leaf_foreach(
			     fx->st, before, before + got, check_order, &c),
	    0);
	assert_int_equal(c.seen, got);

	req[650].ref = NULL;
	req[3].ref = big;
	before = leaves(fx);
	assert_int_equal(
	    rf_keys_sign(fx->keys, fx->key, req, n, &who, sig), RF_ERR_AUDIT);
	assert_non_null(strstr(rf_err_msg(RF_ERR_AUDIT), "nothing was signed"));
	for (i = 0; i < n; i++)
		assert_null(sig[i].sig);
	assert_int_equal(leaves(fx), before);

	req[3].ref = NULL;
	assert_int_equal(rf_store_begin(fx->st), 0);
	assert_int_equal(rf_keys_sign(fx->keys, fx->key, req, n, &who, sig),
	    RF_ERR_INTERNAL);
	assert_non_null(strstr(rf_err_msg(RF_ERR_INTERNAL), "transaction"));
	rf_store_rollback(fx->st);
	for (i = 0; i < n; i++)
		assert_null(sig[i].sig);
	assert_int_equal(leaves(fx), before);
	free(sig);
	free(c.digests);
	free(msg);
	free(req);
	free(big);
}

struct conc {
	struct fx *fx;
	struct rf_key *key;
};

static void *
conc_thread(void *arg)
{
	struct conc *c = arg;
	int i;

	for (i = 0; i < 3; i++)
		sign_batch(c->fx, c->key, 70, 0);
	return NULL;
}

static void
test_concurrent_callers(void **state)
{
	struct fx *fx = *state;
	struct conc c;
	pthread_t t[3];
	uint64_t before;
	int i;

	c.fx = fx;
	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "c", NULL, &who, &c.key),
	    0);
	before = leaves(fx);
	for (i = 0; i < 3; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, conc_thread, &c), 0);
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(leaves(fx), before + 3 * 3 * 70);
	rf_key_free(c.key);
}

static void
test_list(void **state)
{
	struct fx *fx = *state;
	struct rf_key *k1, *k2;
	size_t n = 0;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "l1", NULL, &who, &k1),
	    0);
	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "l2", NULL, &who, &k2),
	    0);
	assert_int_equal(rf_keys_list(fx->keys, count_key, &n), 0);
	assert_int_equal(n, 2);
	rf_key_free(k1);
	rf_key_free(k2);
}

/* Each of the store's token folders holds at least min key objects. */
static void
assert_spread(const char *home, int ntokens, int min)
{
	assert_int_equal(
	    tu_sh("test $(ls -d '%s'/tokens/*/ | wc -l) = %d", home, ntokens),
	    0);
	assert_int_equal(tu_sh("for d in '%s'/tokens/*/; do "
			       "n=$(ls \"$d\" | grep -c '\\.object$'); "
			       "test $((n - 1)) -ge %d || exit 1; done",
			     home, min),
	    0);
}

/* No key is left in any of the three tokens (a token.object each); all
 * closed, the state folder removed. */
static void
close_emptied(char *home, struct rf_keys *keys, struct rf_audit *audit,
    struct rf_store *st)
{
	assert_int_equal(tu_sh("test $(find '%s'/tokens -name '*.object' | "
			       "wc -l) = 3",
			     home),
	    0);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	tu_home_remove(home);
}

/* A store of three tokens: keys go to each in turn and are found in any. */
static void
test_init_token(void **state)
{
	char *home = tu_home();
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_key *key[7], *again;
	struct rf_keygen kg[6];
	struct rf_sig sig;
	struct rf_sign_req req = {(const uint8_t *)"m", 1, RF_SIG_DEFAULT,
	    "test", "1", NULL, NULL, NULL, NULL, 0};
	char ids[7][65], path[1200];
	struct listed l;
	const char *idp[7];
	size_t i, n = 0, done = 0;

	(void)state;
	assert_int_equal(rf_config_load(&cfg), 0);
	snprintf(cfg.pin, sizeof(cfg.pin), "246810");
	assert_int_equal(rf_keys_init_token(&cfg, "13579135", cfg.pin, 3), 0);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", home);
	assert_int_equal(
	    tu_sh("grep -q 'tokendir = %s/tokens' %s", home, path), 0);
	assert_int_equal(
	    rf_keys_init_token(&cfg, "13579135", cfg.pin, 3), RF_ERR_EXISTS);
	assert_int_equal(rf_store_open(cfg.db_path, 1, &st), 0);
	assert_int_equal(rf_audit_open(st, &audit), 0);
	assert_int_equal(rf_keys_open(&cfg, audit, &keys), 0);
	/* A batch is spread over the tokens; a single key goes to the first. */
	memset(kg, 0, sizeof(kg));
	for (i = 0; i < 6; i++) {
		kg[i].alg = i % 2 ? RF_KEY_RSA_2048 : RF_KEY_EC_P256;
		kg[i].label = "s";
	}
	assert_int_equal(rf_keys_generate_many(keys, kg, 6, &who, key), 0);
	assert_int_equal(
	    rf_keys_generate(keys, RF_KEY_EC_P256, "one", NULL, &who, &key[6]),
	    0);
	for (i = 0; i < 7; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s", rf_key_id(key[i]));
		idp[i] = ids[i];
		rf_key_free(key[i]);
	}
	assert_spread(home, 3, 2 * 2);
	rf_keys_free(keys);

	/* A new process finds, lists and signs with keys of every token. */
	assert_int_equal(rf_keys_open(&cfg, audit, &keys), 0);
	assert_int_equal(rf_keys_list(keys, count_key, &n), 0);
	assert_int_equal(n, 7);
	/* Each key by its id, label and algorithm, read in one pass over
	 * each token's public keys. */
	memset(&l, 0, sizeof(l));
	l.ids = ids;
	l.kg = kg;
	l.n = 7;
	l.nkg = 6;
	assert_int_equal(rf_keys_list(keys, listed_key, &l), 0);
	assert_int_equal(l.seen, 7);
	for (i = 0; i < 7; i++) {
		assert_int_equal(rf_keys_load(keys, ids[i], &again), 0);
		assert_int_equal(
		    rf_keys_sign(keys, again, &req, 1, &who, &sig), 0);
		rf_sig_clear(&sig);
		rf_key_free(again);
	}
	/* One destroyed by id, then the rest at once, wherever they are. */
	assert_int_equal(rf_keys_destroy(keys, ids[5], &who), 0);
	assert_int_equal(
	    rf_keys_load(keys, ids[5], &again), RF_ERR_KEY_NOT_FOUND);
	/* Many at once, one pass per token: the destroyed one is NULL,
	 * every other one is the key of its id, with its algorithm. */
	assert_int_equal(rf_keys_load_many(keys, idp, 7, key), 0);
	for (i = 0; i < 7; i++) {
		if (i == 5) {
			assert_null(key[i]);
			continue;
		}
		assert_non_null(key[i]);
		assert_string_equal(rf_key_id(key[i]), ids[i]);
		assert_int_equal(rf_key_alg(key[i]),
		    i == 6 || i % 2 == 0 ? RF_KEY_EC_P256 : RF_KEY_RSA_2048);
		rf_key_free(key[i]);
	}
	assert_int_equal(rf_keys_destroy_many(keys, idp, 7, &who, &done), 0);
	assert_int_equal(done, 6);
	for (i = 0; i < 7; i++)
		assert_int_equal(
		    rf_keys_load(keys, ids[i], &again), RF_ERR_KEY_NOT_FOUND);
	assert_spread(home, 3, 0);
	close_emptied(home, keys, audit, st);
}

/*
 * The label of a tenant's key (rf_keys_tenant_label): "tenant/name" up to
 * 64 characters, else 47 of them, "~" and 16 hex digits of the pair's
 * SHA-256 (expected values from Python's hashlib, not from the code).
 */
static void
test_tenant_label(void **state)
{
	static const char t64[] =
	    "long-tenant-0000000000000000000000000000000000000000000000000007";
	static const struct {
		const char *tenant, *name, *want;
	} cases[] = {
	    {"acme", "mail", "acme/mail"},
	    /* 64 characters: its own label. */
	    {"tttttttttttttttttttttttttttttt",
		"ccccccccccccccccccccccccccccccccc",
		"tttttttttttttttttttttttttttttt/"
		"ccccccccccccccccccccccccccccccccc"},
	    /* 65: shortened. */
	    {"tttttttttttttttttttttttttttttt",
		"cccccccccccccccccccccccccccccccccc",
		"tttttttttttttttttttttttttttttt/cccccccccccccccc~"
		"c003b278e0db76a4"},
	    {t64, "client",
		"long-tenant-00000000000000000000000000000000000~"
		"00f03c65ad93a38d"},
	    /* 64 + 63 characters, differing in the last only. */
	    {t64,
		"long-connection-"
		"00000000000000000000000000000000000000000000001",
		"long-tenant-00000000000000000000000000000000000~"
		"4023bff83dbc44ee"},
	    {t64,
		"long-connection-"
		"00000000000000000000000000000000000000000000002",
		"long-tenant-00000000000000000000000000000000000~"
		"c57f0c5084626ea2"},
	};
	char out[RF_KEY_LABEL_MAX + 1];
	size_t i;

	(void)state;
	assert_int_equal(strlen(t64), 64);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    rf_keys_tenant_label(cases[i].tenant, cases[i].name, out),
		    0);
		assert_string_equal(out, cases[i].want);
	}
	assert_int_equal(rf_keys_tenant_label(NULL, "mail", out), RF_ERR_ARG);
	assert_string_equal(out, "");
}

static void
test_helpers(void **state)
{
	enum rf_key_alg alg;
	uint8_t raw[64], *der = NULL, pt[67];
	EVP_PKEY *pk = NULL;
	const uint8_t *p;
	size_t len, plen;

	(void)state;
	assert_int_equal(rf_key_alg_parse("ec-p384", &alg), 0);
	assert_int_equal(alg, RF_KEY_EC_P384);
	assert_string_equal(rf_key_alg_name(RF_KEY_RSA_3072), "rsa-3072");
	assert_int_equal(rf_key_alg_parse("rsa-4096", &alg), 0);
	assert_int_equal(alg, RF_KEY_RSA_4096);
	assert_int_equal(rf_key_alg_rsa(RF_KEY_RSA_4096), 1);
	assert_int_equal(rf_key_alg_rsa(RF_KEY_EC_P384), 0);
	assert_int_equal(rf_key_alg_parse("ec-p521", &alg), RF_ERR_ARG);
	/* r and s with leading zero bytes and a high bit: minimal DER. */
	memset(raw, 0, sizeof(raw));
	raw[31] = 0x01;
	raw[32] = 0x80;
	assert_int_equal(rf_keys_ecdsa_raw_to_der(raw, 64, &der, &len), 0);
	assert_int_equal(len, 2 + 3 + 2 + 33);
	assert_int_equal(der[0], 0x30);
	assert_int_equal(der[2], 0x02);
	assert_int_equal(der[3], 0x01);
	assert_int_equal(der[4], 0x01);
	assert_int_equal(der[5], 0x02);
	assert_int_equal(der[6], 0x21);
	assert_int_equal(der[7], 0x00);
	free(der);
	assert_int_not_equal(rf_keys_ecdsa_raw_to_der(raw, 63, &der, &len), 0);
	memset(raw, 0, sizeof(raw));
	assert_int_not_equal(rf_keys_ecdsa_raw_to_der(raw, 64, &der, &len), 0);
	/* CKA_EC_POINT: wrapped, bare, and wrong. */
	pt[0] = 0x04;
	pt[1] = 65;
	pt[2] = 0x04;
	memset(pt + 3, 7, 64);
	assert_int_equal(
	    rf_keys_ec_point_decode(RF_KEY_EC_P256, pt, 67, &p, &plen), 0);
	assert_ptr_equal(p, pt + 2);
	assert_int_equal(plen, 65);
	assert_int_equal(
	    rf_keys_ec_point_decode(RF_KEY_EC_P256, pt + 2, 65, &p, &plen), 0);
	assert_int_equal(
	    rf_keys_ec_point_decode(RF_KEY_EC_P256, pt, 66, &p, &plen),
	    RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_keys_ec_point_decode(RF_KEY_EC_P384, pt, 67, &p, &plen),
	    RF_ERR_MALFORMED);
	/* A point not on the curve is refused. */
	assert_int_equal(
	    rf_keys_ec_pub(RF_KEY_EC_P256, pt + 2, 65, &pk), RF_ERR_MALFORMED);
	assert_null(pk);
}

/*
 * A token of 3 shards and n keys made by one handle (every fourth, or
 * third when p384 is 3, EC P-384); ids[] receives their ids, idp[] points
 * at them.
 */
static void
made_fx(struct rf_config *cfg, struct rf_store **st, struct rf_audit **audit,
    struct rf_keys **keys, struct rf_keygen *kg, size_t n, size_t p384,
    char (*ids)[65], const char **idp)
{
	struct rf_key *key[8];
	size_t i;

	assert_true(n <= 8);
	assert_int_equal(rf_config_load(cfg), 0);
	snprintf(cfg->pin, sizeof(cfg->pin), "246810");
	assert_int_equal(rf_keys_init_token(cfg, "13579135", cfg->pin, 3), 0);
	assert_int_equal(rf_store_open(cfg->db_path, 1, st), 0);
	assert_int_equal(rf_audit_open(*st, audit), 0);
	assert_int_equal(rf_keys_open(cfg, *audit, keys), 0);
	memset(kg, 0, n * sizeof(*kg));
	for (i = 0; i < n; i++) {
		kg[i].alg =
		    i % p384 == p384 - 1 ? RF_KEY_EC_P384 : RF_KEY_EC_P256;
		kg[i].label = "m";
	}
	assert_int_equal(rf_keys_generate_many(*keys, kg, n, &who, key), 0);
	for (i = 0; i < n; i++) {
		snprintf(ids[i], 65, "%s", rf_key_id(key[i]));
		idp[i] = ids[i];
		rf_key_free(key[i]);
	}
}

/*
 * OpenSSL's full check of a public key runs once, when the token makes the
 * key (3 ms for RSA-2048: contain taking 36,000 pool keys must not run it
 * again); a key loaded again, even by a process that did not make it, is
 * imported and its id compared with the one recorded then.
 */
static void
test_checked_once(void **state)
{
	char *home = tu_home();
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_key *key[3], *rk = NULL;
	struct rf_keygen kg[2];
	char ids[3][65];
	const char *idp[3];
	unsigned long checks;
	size_t i, n;

	(void)state;
	made_fx(&cfg, &st, &audit, &keys, kg, 2, 2, ids, idp);
	checks = rf_keys_pub_checks();
	assert_int_equal(
	    rf_keys_generate(keys, RF_KEY_RSA_2048, "r", NULL, &who, &rk), 0);
	assert_int_equal(rf_keys_pub_checks(), checks + 1);
	snprintf(ids[2], sizeof(ids[2]), "%s", rf_key_id(rk));
	idp[2] = ids[2];
	rf_key_free(rk);
	/* Another process (a restarted keyd): handles and memory gone. */
	rf_keys_free(keys);
	assert_int_equal(rf_keys_open(&cfg, audit, &keys), 0);
	checks = rf_keys_pub_checks();
	assert_int_equal(rf_keys_load_many(keys, idp, 3, key), 0);
	for (i = 0; i < 3; i++) {
		assert_non_null(key[i]);
		assert_string_equal(rf_key_id(key[i]), ids[i]);
		rf_key_free(key[i]);
	}
	assert_int_equal(rf_keys_load(keys, ids[2], &rk), 0);
	assert_int_equal(rf_key_alg(rk), RF_KEY_RSA_2048);
	rf_key_free(rk);
	assert_int_equal(rf_keys_pub_checks(), checks);
	assert_int_equal(rf_keys_destroy_many(keys, idp, 3, &who, &n), 0);
	assert_int_equal(n, 3);
	close_emptied(home, keys, audit, st);
}

/*
 * What a key is made for is on its first store row, with its label (a
 * contain rerun finds by it the keys a killed run made: reissue.c); one
 * too long or with other characters is refused before anything is made.
 */
static void
test_made_for(void **state)
{
	char *home = tu_home();
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_keygen kg[2];
	struct rf_key_rec kr;
	struct rf_key *key[2] = {NULL, NULL};
	char ids[2][65], longer[RF_KEY_MADE_FOR_MAX + 2];
	const char *idp[2];
	size_t n, n0 = 0, n1 = 0;

	(void)state;
	made_fx(&cfg, &st, &audit, &keys, kg, 1, 2, ids, idp);
	/* Without one: ''. */
	assert_int_equal(rf_store_key_get(st, ids[0], &kr), 0);
	assert_string_equal(kr.made_for, "");
	assert_string_equal(kr.label, "m");
	kg[0].label = "acme/mail";
	kg[0].tenant = "acme";
	kg[0].made_for = "incident-7";
	assert_int_equal(rf_keys_generate_many(keys, kg, 1, &who, key), 0);
	snprintf(ids[1], sizeof(ids[1]), "%s", rf_key_id(key[0]));
	idp[1] = ids[1];
	rf_key_free(key[0]);
	assert_int_equal(rf_store_key_get(st, ids[1], &kr), 0);
	assert_string_equal(kr.state, "generated");
	assert_string_equal(kr.made_for, "incident-7");
	assert_string_equal(kr.label, "acme/mail");
	/* Recording its purpose keeps what it was made for. */
	snprintf(kr.purpose, sizeof(kr.purpose), "connection");
	snprintf(kr.state, sizeof(kr.state), "reserved");
	assert_int_equal(rf_store_key_add(st, &kr), 0);
	assert_int_equal(rf_store_key_get(st, ids[1], &kr), 0);
	assert_string_equal(kr.made_for, "incident-7");
	/* Bad ones: one line, nothing made. */
	assert_int_equal(rf_keys_list(keys, count_key, &n0), 0);
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	kg[1] = kg[0];
	kg[1].made_for = longer;
	assert_int_equal(
	    rf_keys_generate_many(keys, kg, 2, &who, key), RF_ERR_ARG);
	assert_non_null(strstr(rf_err_msg(RF_ERR_ARG), "made for"));
	kg[1].made_for = "incident 7; DROP";
	assert_int_equal(
	    rf_keys_generate_many(keys, kg, 2, &who, key), RF_ERR_ARG);
	assert_null(key[0]);
	assert_int_equal(rf_keys_list(keys, count_key, &n1), 0);
	assert_int_equal(n1, n0);
	assert_int_equal(rf_keys_destroy_many(keys, idp, 2, &who, &n), 0);
	assert_int_equal(n, 2);
	close_emptied(home, keys, audit, st);
}

/*
 * Keys this handle made are found and destroyed by the object handles kept
 * from their generation; a key destroyed behind its back (by another
 * handle) is not taken for present, and destroying keys it no longer has
 * handles for still finds them by a search.
 */
static void
test_made_handles(void **state)
{
	char *home = tu_home();
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL, *other = NULL;
	struct rf_key *key[8], *again;
	struct rf_keygen kg[8];
	char ids[8][65];
	const char *idp[8];
	size_t i, done = 0;

	(void)state;
	made_fx(&cfg, &st, &audit, &keys, kg, 8, 4, ids, idp);
	/* Another handle destroys key 2: this one's handles of it are void. */
	assert_int_equal(rf_keys_open(&cfg, audit, &other), 0);
	assert_int_equal(rf_keys_destroy(other, ids[2], &who), 0);
	rf_keys_free(other);
	/* This handle destroys key 5 (its kept handles go with it). */
	assert_int_equal(rf_keys_destroy(keys, ids[5], &who), 0);
	assert_int_equal(rf_keys_load_many(keys, idp, 8, key), 0);
	for (i = 0; i < 8; i++) {
		if (i == 2 || i == 5) {
			assert_null(key[i]);
			continue;
		}
		assert_non_null(key[i]);
		assert_string_equal(rf_key_id(key[i]), ids[i]);
		assert_int_equal(rf_key_alg(key[i]), kg[i].alg);
		rf_key_free(key[i]);
	}
	/* The six left, destroyed by their handles: each found once. */
	assert_int_equal(rf_keys_destroy_many(keys, idp, 8, &who, &done), 0);
	assert_int_equal(done, 6);
	assert_int_equal(rf_keys_load_many(keys, idp, 8, key), 0);
	for (i = 0; i < 8; i++) {
		assert_null(key[i]);
		assert_int_equal(
		    rf_keys_load(keys, ids[i], &again), RF_ERR_KEY_NOT_FOUND);
	}
	close_emptied(home, keys, audit, st);
}

/*
 * A process that restarts loses the kept handles of the keys it made
 * (issue 14: keyd after keyd_idle). rf_keys_remember finds them again, one
 * pass per token, so that loading them reads no whole token any more
 * (rf_keys_full_reads counts those reads), and their public keys with
 * them, so that loading them reads no public key either (contain taking
 * 36,000 pool keys: rf_keys_pub_reads).
 */
static void
test_remember_handles(void **state)
{
	char *home = tu_home();
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_key *key[6];
	struct rf_keygen kg[6];
	char ids[6][65];
	const char *idp[6];
	unsigned long reads, pubs;
	size_t i, kept, total = 0;
	int t;

	(void)state;
	made_fx(&cfg, &st, &audit, &keys, kg, 6, 3, ids, idp);
	/* Kept by the handle that made them, public keys too: no
	 * whole-token read, and no public key read again. */
	reads = rf_keys_full_reads();
	pubs = rf_keys_pub_reads();
	assert_int_equal(rf_keys_load_many(keys, idp, 6, key), 0);
	for (i = 0; i < 6; i++) {
		assert_non_null(key[i]);
		assert_string_equal(rf_key_id(key[i]), ids[i]);
		assert_int_equal(rf_key_alg(key[i]), kg[i].alg);
		rf_key_free(key[i]);
	}
	assert_int_equal(rf_keys_full_reads(), reads);
	assert_int_equal(rf_keys_pub_reads(), pubs);
	/* "Restart": the module is finalised, its handles void. */
	rf_keys_free(keys);
	assert_int_equal(rf_keys_open(&cfg, audit, &keys), 0);
	pubs = rf_keys_pub_reads();
	assert_int_equal(rf_keys_load_many(keys, idp, 6, key), 0);
	for (i = 0; i < 6; i++) {
		assert_non_null(key[i]);
		rf_key_free(key[i]);
	}
	assert_true(rf_keys_full_reads() > reads);
	assert_true(rf_keys_pub_reads() >= pubs + 6);
	rf_keys_free(keys);
	assert_int_equal(rf_keys_open(&cfg, audit, &keys), 0);
	/* Found again, token by token: every pair, and loading reads no
	 * whole token; the keys are the same. */
	assert_true(rf_keys_token_count(keys) >= 1);
	for (t = 0; t < rf_keys_token_count(keys); t++) {
		assert_int_equal(rf_keys_remember(keys, idp, 6, t, &kept), 0);
		total += kept;
	}
	assert_int_equal(total, 6);
	assert_int_equal(rf_keys_remember(keys, idp, 6, 99, &kept), 0);
	assert_int_equal(kept, 0);
	reads = rf_keys_full_reads();
	pubs = rf_keys_pub_reads();
	assert_int_equal(rf_keys_load_many(keys, idp, 6, key), 0);
	for (i = 0; i < 6; i++) {
		assert_non_null(key[i]);
		assert_string_equal(rf_key_id(key[i]), ids[i]);
		assert_int_equal(rf_key_alg(key[i]), kg[i].alg);
		rf_key_free(key[i]);
	}
	assert_int_equal(rf_keys_full_reads(), reads);
	assert_int_equal(rf_keys_pub_reads(), pubs);
	/* A key destroyed behind the kept handles is not found. */
	assert_int_equal(rf_keys_destroy(keys, ids[1], &who), 0);
	assert_int_equal(rf_keys_load_many(keys, idp, 6, key), 0);
	assert_null(key[1]);
	for (i = 0; i < 6; i++)
		rf_key_free(key[i]);
	assert_int_equal(rf_keys_destroy_many(keys, idp, 6, &who, &kept), 0);
	close_emptied(home, keys, audit, st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_helpers),
	    cmocka_unit_test(test_tenant_label),
	    cmocka_unit_test_setup_teardown(test_ec_p256, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ec_p384, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rsa_2048, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rsa_3072, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_custody, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_audit_before_sign, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sign_inside_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_audit_failure_no_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_audit_readonly_no_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_pin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
#ifdef RF_TEST_HOOKS
	    cmocka_unit_test_setup_teardown(test_session_loss, setup, teardown),
#endif
	    cmocka_unit_test_setup_teardown(
		test_batch_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_batch_pipelined, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_batch_pipelined_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_concurrent_callers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test(test_init_token),
	    cmocka_unit_test(test_made_handles),
	    cmocka_unit_test(test_made_for),
	    cmocka_unit_test(test_remember_handles),
	    cmocka_unit_test(test_checked_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
