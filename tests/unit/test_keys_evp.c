/*
 * The EVP_PKEY bridge (src/keys/evp.c) against a real SoftHSM2 token and a
 * real SQLite record: a signature made through the EVP_PKEY verifies with
 * the public key (OpenSSL, not the code under test) and leaves one "sign"
 * leaf with the digest signed; with the record unwritable nothing is
 * signed; real TLS 1.3 and 1.2 handshakes over memory BIOs sign through
 * it, also from several threads at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/keys_int.h"
#include "store/store.h"
#include "keys_fx.h"

/* The fixture, with an EC P-256 key in fx->key. */
static int
setup_key(void **state)
{
	struct fx *fx;

	setup(state);
	fx = *state;
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "tls", NULL,
			     &who, &fx->key),
	    0);
	return 0;
}

/* The data of the last leaf, NUL-terminated, into buf. */
struct last {
	char buf[2048];
};

static int
last_cb(void *arg, const struct rf_leaf_rec *l)
{
	struct last *la = arg;

	assert_true(l->len < sizeof(la->buf));
	memcpy(la->buf, l->data, l->len);
	la->buf[l->len] = '\0';
	return 0;
}

static void
last_leaf(struct fx *fx, struct last *la)
{
	uint64_t n = leaves(fx);

	la->buf[0] = '\0';
	assert_int_equal(
	    rf_store_leaf_foreach(fx->st, n - 1, n, last_cb, la), 0);
}

static void
test_sign_verifies(void **state)
{
	struct fx *fx = *state;
	static const uint8_t msg[] = "handshake transcript";
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *m;
	uint8_t sig[128], dig[32];
	char hex[65];
	size_t siglen = sizeof(sig);
	struct last la;
	uint64_t before;

	assert_int_equal(rf_keys_evp_pkey(fx->keys, fx->key, "tls",
			     "127.0.0.1:4433", &who, &pk),
	    0);
	/* The same public key as the token's. */
	assert_int_equal(EVP_PKEY_eq(pk, rf_key_public(fx->key)), 1);
	before = leaves(fx);
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(
	    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(
	    EVP_DigestSign(m, sig, &siglen, msg, sizeof(msg) - 1), 1);
	EVP_MD_CTX_free(m);
	/* OpenSSL verifies it with the token's public key. */
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL,
			     rf_key_public(fx->key)),
	    1);
	assert_int_equal(
	    EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg) - 1), 1);
	EVP_MD_CTX_free(m);
	/* One leaf, naming the digest that was signed. */
	assert_int_equal(leaves(fx), before + 1);
	last_leaf(fx, &la);
	SHA256(msg, sizeof(msg) - 1, dig);
	rf_hex(dig, sizeof(dig), hex);
	assert_non_null(strstr(la.buf, "\"type\":\"sign\""));
	assert_non_null(strstr(la.buf, "\"what\":\"tls\""));
	assert_non_null(strstr(la.buf, "\"ref\":\"127.0.0.1:4433\""));
	assert_non_null(strstr(la.buf, hex));
	assert_non_null(strstr(la.buf, rf_key_id(fx->key)));
	/* A flipped bit does not verify: the check above can fail. */
	sig[siglen - 1] ^= 1;
	assert_int_not_equal(rf_keys_verify_digest(rf_key_public(fx->key), dig,
				 sizeof(dig), sig, siglen),
	    0);
	EVP_PKEY_free(pk);
}

static void
test_digest_checks(void **state)
{
	struct fx *fx = *state;
	struct rf_key *rsa = NULL;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	EVP_PKEY *pk = NULL;
	uint8_t dig[48];
	uint64_t before = leaves(fx);

	/* A digest of the wrong size for the key is refused, unaudited. */
	memset(dig, 7, sizeof(dig));
	memset(&req, 0, sizeof(req));
	req.msg = dig;
	req.msglen = 48;
	req.what = "tls";
	assert_int_equal(
	    rf_keys_sign_digest(fx->keys, fx->key, &req, 1, &who, &sig),
	    RF_ERR_ARG);
	assert_null(sig.sig);
	assert_int_equal(leaves(fx), before);
	/* The right size signs, and the signature verifies on the digest. */
	req.msglen = 32;
	assert_int_equal(
	    rf_keys_sign_digest(fx->keys, fx->key, &req, 1, &who, &sig), 0);
	assert_int_equal(rf_keys_verify_digest(
			     rf_key_public(fx->key), dig, 32, sig.sig, sig.len),
	    0);
	assert_int_equal(leaves(fx), before + 1);
	rf_sig_clear(&sig);
	/* RSA keys are not bridged. */
	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "r", NULL, &who, &rsa),
	    0);
	assert_int_equal(
	    rf_keys_evp_pkey(fx->keys, rsa, "tls", NULL, &who, &pk),
	    RF_ERR_KEY_DISALLOWED);
	assert_null(pk);
	assert_int_equal(
	    rf_keys_sign_digest(fx->keys, rsa, &req, 1, &who, &sig),
	    RF_ERR_ARG);
	rf_key_free(rsa);
}

/* With the record unwritable, the EVP_PKEY signs nothing. */
static void
test_no_audit_no_signature(void **state)
{
	struct fx *fx = *state;
	struct rf_store *ro = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *m;
	uint8_t sig[128];
	size_t siglen = sizeof(sig);
	char uri[1200], err[256];
	uint64_t before;

	snprintf(uri, sizeof(uri), "file:%s?mode=ro", fx->cfg.db_path);
	assert_int_equal(rf_store_open(uri, 0, &ro), 0);
	assert_int_equal(rf_audit_open(ro, &audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, audit, &keys), 0);
	assert_int_equal(
	    rf_keys_evp_pkey(keys, fx->key, "tls", "x", &who, &pk), 0);
	before = leaves(fx);
	ERR_clear_error();
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(
	    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, pk), 1);
	assert_true(
	    EVP_DigestSign(m, sig, &siglen, (const uint8_t *)"abc", 3) <= 0);
	EVP_MD_CTX_free(m);
	/* The reason reaches OpenSSL's error queue. */
	ERR_error_string_n(ERR_peek_error(), err, sizeof(err));
	assert_true(ERR_peek_error() != 0);
	ERR_clear_error();
	assert_int_equal(leaves(fx), before);
	EVP_PKEY_free(pk);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(ro);
}

struct tls_fx {
	SSL_CTX *sctx, *cctx;
};

static void
tls_setup(struct fx *fx, struct tls_fx *t)
{
	EVP_PKEY *pk = NULL;
	X509 *x;

	assert_int_equal(
	    rf_keys_evp_pkey(fx->keys, fx->key, "tls", "test", &who, &pk), 0);
	x = tu_self_signed(pk, "localhost"); /* signed through the bridge */
	assert_non_null(t->sctx = SSL_CTX_new(TLS_server_method()));
	assert_int_equal(
	    SSL_CTX_set_min_proto_version(t->sctx, TLS1_2_VERSION), 1);
	assert_int_equal(
	    SSL_CTX_set_cipher_list(t->sctx, "ECDHE-ECDSA-AES128-GCM-SHA256"),
	    1);
	/* The bridge signs digests of the key's own size. */
	assert_int_equal(SSL_CTX_set1_sigalgs_list(t->sctx, "ECDSA+SHA256"), 1);
	assert_int_equal(SSL_CTX_use_certificate(t->sctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(t->sctx, pk), 1);
	assert_int_equal(SSL_CTX_check_private_key(t->sctx), 1);
	assert_non_null(t->cctx = SSL_CTX_new(TLS_client_method()));
	assert_int_equal(
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(t->cctx), x), 1);
	SSL_CTX_set_verify(t->cctx, SSL_VERIFY_PEER, NULL);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void
tls_free(struct tls_fx *t)
{
	SSL_CTX_free(t->sctx);
	SSL_CTX_free(t->cctx);
}

/* One handshake over memory BIOs; 1 if both ends completed it. */
static int
handshake(const struct tls_fx *t, int maxv)
{
	SSL *c, *s;
	int ok;

	assert_non_null(c = SSL_new(t->cctx));
	assert_non_null(s = SSL_new(t->sctx));
	SSL_set_max_proto_version(c, maxv);
	ok = tu_handshake(c, s) && SSL_get_verify_result(c) == X509_V_OK &&
	    SSL_version(s) == maxv;
	SSL_free(c);
	SSL_free(s);
	ERR_clear_error();
	return ok;
}

static void
test_tls_handshakes(void **state)
{
	struct fx *fx = *state;
	struct tls_fx t;
	uint64_t before;

	tls_setup(fx, &t);
	before = leaves(fx);
	/* TLS 1.3 CertificateVerify, TLS 1.2 ServerKeyExchange: a leaf each. */
	assert_int_equal(handshake(&t, TLS1_3_VERSION), 1);
	assert_int_equal(leaves(fx), before + 1);
	assert_int_equal(handshake(&t, TLS1_2_VERSION), 1);
	assert_int_equal(leaves(fx), before + 2);
	/* A disabled key: the handshake fails, and leaves no record. */
	assert_int_equal(
	    rf_keys_disable(fx->keys, rf_key_id(fx->key), &who), 0);
	before = leaves(fx);
	assert_int_equal(handshake(&t, TLS1_3_VERSION), 0);
	assert_int_equal(leaves(fx), before);
	tls_free(&t);
}

#define HS_THREADS 4
#define HS_EACH 10

static void *
hs_thread(void *arg)
{
	const struct tls_fx *t = arg;
	intptr_t ok = 0;
	int i;

	for (i = 0; i < HS_EACH; i++)
		ok +=
		    handshake(t, i % 2 ? TLS1_2_VERSION : TLS1_3_VERSION) == 1;
	return (void *)ok;
}

/* One rf_keys shared by handshakes on several threads (serve's workers). */
static void
test_tls_threads(void **state)
{
	struct fx *fx = *state;
	pthread_t th[HS_THREADS];
	struct tls_fx t;
	uint64_t before;
	void *ok;
	int i;

	tls_setup(fx, &t);
	before = leaves(fx);
	for (i = 0; i < HS_THREADS; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, hs_thread, &t), 0);
	for (i = 0; i < HS_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], &ok), 0);
		assert_int_equal((intptr_t)ok, HS_EACH);
	}
	assert_int_equal(leaves(fx), before + HS_THREADS * HS_EACH);
	tls_free(&t);
}

/*
 * RSA public keys rebuilt from token attributes: checked once (the check
 * is remembered by modulus and exponent), and a modulus that fails the
 * check still fails after a key that passed, also one differing in a bit.
 */
static void
test_rsa_pub_checked(void **state)
{
	uint8_t n[256], e[8];
	BIGNUM *bn = NULL, *be = NULL;
	EVP_PKEY *gen, *pub = NULL;
	enum rf_key_alg alg;
	int i;

	(void)state;
	assert_non_null(gen = EVP_RSA_gen(2048));
	assert_int_equal(EVP_PKEY_get_bn_param(gen, "n", &bn), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(gen, "e", &be), 1);
	assert_int_equal(BN_bn2binpad(bn, n, sizeof(n)), (int)sizeof(n));
	assert_int_equal(BN_num_bytes(be), 3);
	assert_int_equal(BN_bn2bin(be, e), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(
		    rf_keys_rsa_pub(n, sizeof(n), e, 3, &alg, &pub), 0);
		assert_int_equal(alg, RF_KEY_RSA_2048);
		assert_int_equal(EVP_PKEY_eq(pub, gen), 1);
		EVP_PKEY_free(pub);
		pub = NULL;
	}
	/* An even modulus is no RSA modulus. */
	n[sizeof(n) - 1] &= 0xfe;
	assert_int_equal(
	    rf_keys_rsa_pub(n, sizeof(n), e, 3, &alg, &pub), RF_ERR_MALFORMED);
	assert_null(pub);
	assert_int_equal(alg, RF_KEY_NONE);
	rf_err_clear();
	BN_free(bn);
	BN_free(be);
	EVP_PKEY_free(gen);
}

/*
 * A key's id is the SHA-256 of its SPKI as i2d_PUBKEY writes it; EC keys
 * are hashed from their point without the encoder: the same id, and a
 * compressed point (another SPKI) still hashes as encoded.
 */
static void
test_pub_id_as_encoded(void **state)
{
	const char *curves[] = {"P-256", "P-384", NULL};
	uint8_t *der, md[SHA256_DIGEST_LENGTH], spki[RF_EC_SPKI_MAX];
	char want[65], got[65];
	EVP_PKEY *k[4];
	size_t i, j, n;
	int len;

	(void)state;
	k[0] = EVP_EC_gen(curves[0]);
	k[1] = EVP_EC_gen(curves[1]);
	k[2] = EVP_EC_gen(curves[0]);
	k[3] = EVP_RSA_gen(2048);
	for (i = 0; i < 4; i++)
		assert_non_null(k[i]);
	assert_int_equal(
	    EVP_PKEY_set_utf8_string_param(k[2], "point-format", "compressed"),
	    1);
	for (i = 0; i < 4; i++) {
		der = NULL;
		assert_true((len = i2d_PUBKEY(k[i], &der)) > 0);
		SHA256(der, (size_t)len, md);
		/* The SPKI keyd sends: the same bytes, or none (encoded the
		 * general way) for a compressed point or RSA. */
		n = rf_keys_ec_spki(k[i], spki);
		if (i == 0 || i == 1) {
			assert_int_equal(n, (size_t)len);
			assert_memory_equal(spki, der, n);
		} else
			assert_int_equal(n, 0);
		OPENSSL_free(der);
		for (j = 0; j < sizeof(md); j++)
			snprintf(want + 2 * j, 3, "%02x", md[j]);
		assert_int_equal(rf_keys_pub_id(k[i], got), 0);
		assert_string_equal(got, want);
		EVP_PKEY_free(k[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsa_pub_checked),
	    cmocka_unit_test(test_pub_id_as_encoded),
	    cmocka_unit_test_setup_teardown(
		test_sign_verifies, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(
		test_digest_checks, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(
		test_no_audit_no_signature, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(
		test_tls_handshakes, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(
		test_tls_threads, setup_key, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
