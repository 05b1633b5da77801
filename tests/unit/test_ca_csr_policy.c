/*
 * Unit tests for the CSR policy of issue 13 item 1: RSA only with
 * e=65537 and 2048 to 4096 bits; proofs of possession signed with SHA-256
 * or stronger (RSASSA-PSS included, whose absent parameters mean SHA-1).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "testutil.h"

static EVP_PKEY *
rsa(int bits, unsigned long e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *be = BN_new();
	EVP_PKEY *k = NULL;

	assert_non_null(ctx);
	assert_int_equal(BN_set_word(be, e), 1);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, be), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	BN_free(be);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

/* DER CSR signed with md, or with RSASSA-PSS over pss_md when pss. */
static uint8_t *
csr(EVP_PKEY *k, const EVP_MD *md, int pss, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	uint8_t *out;
	int l;

	assert_non_null(req);
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_int_equal(EVP_DigestSignInit_ex(mctx, &pctx,
			     EVP_MD_get0_name(md), NULL, NULL, k, NULL),
	    1);
	if (pss)
		assert_int_equal(
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING),
		    1);
	assert_true(X509_REQ_sign_ctx(req, mctx) > 0);
	assert_true((l = i2d_X509_REQ(req, &der)) > 0);
	assert_non_null(out = malloc((size_t)l));
	memcpy(out, der, (size_t)l);
	*len = (size_t)l;
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	X509_REQ_free(req);
	return out;
}

static int
check(EVP_PKEY *k, const EVP_MD *md, int pss)
{
	size_t len;
	uint8_t *c = csr(k, md, pss, &len);
	int r = rf_ca_csr_check(c, len, RF_PROFILE_CLIENT, NULL);

	free(c);
	return r;
}

static void
test_rsa_exponents_and_sizes(void **state)
{
	EVP_PKEY *k;

	(void)state;
	k = rsa(2048, 3);
	assert_int_equal(check(k, EVP_sha256(), 0), RF_ERR_KEY_DISALLOWED);
	assert_string_equal(rf_err_msg(RF_ERR_KEY_DISALLOWED),
	    "CSR RSA key has public exponent 3: only 65537 is allowed; "
	    "generate the key with e=65537");
	EVP_PKEY_free(k);
	k = rsa(2048, 65539);
	assert_int_equal(check(k, EVP_sha256(), 0), RF_ERR_KEY_DISALLOWED);
	EVP_PKEY_free(k);
	k = rsa(1024, 65537);
	assert_int_equal(check(k, EVP_sha256(), 0), RF_ERR_KEY_DISALLOWED);
	EVP_PKEY_free(k);
	k = rsa(4096, 65537);
	assert_int_equal(check(k, EVP_sha256(), 0), 0);
	EVP_PKEY_free(k);
}

static void
test_digests(void **state)
{
	EVP_PKEY *k = rsa(2048, 65537), *ec = EVP_EC_gen("P-256");

	(void)state;
	assert_non_null(ec);
	assert_int_equal(check(k, EVP_sha1(), 0), RF_ERR_CSR_SIGNATURE);
	assert_string_equal(rf_err_msg(RF_ERR_CSR_SIGNATURE),
	    "CSR is signed with SHA1: sign it with SHA-256 or stronger "
	    "(openssl req -sha256)");
	assert_int_equal(check(k, EVP_sha224(), 0), RF_ERR_CSR_SIGNATURE);
	assert_int_equal(check(k, EVP_sha384(), 0), 0);
	assert_int_equal(check(k, EVP_sha512(), 0), 0);
	/* RSASSA-PSS: the digest in its parameters decides. */
	assert_int_equal(check(k, EVP_sha256(), 1), 0);
	assert_int_equal(check(k, EVP_sha1(), 1), RF_ERR_CSR_SIGNATURE);
	/* ECDSA likewise. */
	assert_int_equal(check(ec, EVP_sha1(), 0), RF_ERR_CSR_SIGNATURE);
	assert_int_equal(check(ec, EVP_sha256(), 0), 0);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsa_exponents_and_sizes),
	    cmocka_unit_test(test_digests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
