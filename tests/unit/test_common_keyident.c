/*
 * Unit tests for common/keyident.h: one key, one identity, whatever its
 * exponent or encoding (issue 13 item 1).
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/keyident.h"
#include "testutil.h"

/* A public RSA key (n, e) as SubjectPublicKeyInfo DER; caller frees. */
static uint8_t *
rsa_spki(const BIGNUM *n, unsigned long e, int *len)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM *p = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *be = BN_new();
	uint8_t *der = NULL;

	assert_non_null(b);
	assert_non_null(ctx);
	assert_int_equal(BN_set_word(be, e), 1);
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n), 1);
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be), 1);
	assert_non_null(p = OSSL_PARAM_BLD_to_param(b));
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, p), 1);
	assert_true((*len = i2d_PUBKEY(k, &der)) > 0);
	EVP_PKEY_free(k);
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(ctx);
	BN_free(be);
	return der;
}

static void
test_rsa_twins(void **state)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	BIGNUM *n = NULL;
	uint8_t *a, *b, *nb, md[SHA256_DIGEST_LENGTH];
	char ia[RF_KEY_IDENT_LEN + 1], ib[RF_KEY_IDENT_LEN + 1],
	    want[RF_KEY_IDENT_LEN + 1];
	int la, lb, nl;
	X509 *x;
	uint8_t *xder = NULL;
	int xl;

	(void)state;
	assert_non_null(k);
	assert_int_equal(
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	a = rsa_spki(n, 65537, &la);
	b = rsa_spki(n, 65539, &lb);
	assert_true(la != lb || memcmp(a, b, (size_t)la) != 0);
	assert_int_equal(rf_key_ident_spki(a, (size_t)la, ia), 0);
	assert_int_equal(rf_key_ident_spki(b, (size_t)lb, ib), 0);
	/* Same modulus: one identity, the SHA-256 of the modulus. */
	assert_string_equal(ia, ib);
	nl = BN_num_bytes(n);
	assert_non_null(nb = malloc((size_t)nl));
	BN_bn2bin(n, nb);
	SHA256(nb, (size_t)nl, md);
	rf_hex(md, sizeof(md), want);
	assert_string_equal(ia, want);
	/* The certificate form agrees with the SPKI form. */
	assert_non_null(x = tu_self_signed(k, "twin"));
	assert_true((xl = i2d_X509(x, &xder)) > 0);
	assert_int_equal(rf_key_ident_cert(xder, (size_t)xl, ib), 0);
	assert_string_equal(ia, ib);
	/* Trailing bytes and truncation are refused. */
	assert_int_equal(
	    rf_key_ident_spki(a, (size_t)la - 1, ib), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_key_ident_cert(xder, (size_t)xl - 1, ib), RF_ERR_MALFORMED);
	OPENSSL_free(xder);
	X509_free(x);
	free(nb);
	OPENSSL_free(a);
	OPENSSL_free(b);
	BN_free(n);
	EVP_PKEY_free(k);
}

static void
test_ec(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	uint8_t *der = NULL, pt[65], md[SHA256_DIGEST_LENGTH];
	char id[RF_KEY_IDENT_LEN + 1], id2[RF_KEY_IDENT_LEN + 1],
	    want[RF_KEY_IDENT_LEN + 1];
	size_t ptlen = 0;
	int l;

	(void)state;
	assert_non_null(k);
	assert_non_null(k2);
	assert_true((l = i2d_PUBKEY(k, &der)) > 0);
	assert_int_equal(rf_key_ident_spki(der, (size_t)l, id), 0);
	assert_int_equal(
	    EVP_PKEY_get_octet_string_param(
		k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &ptlen),
	    1);
	assert_int_equal(ptlen, 65);
	SHA256(pt, ptlen, md);
	rf_hex(md, sizeof(md), want);
	assert_string_equal(id, want);
	OPENSSL_free(der);
	der = NULL;
	assert_true((l = i2d_PUBKEY(k2, &der)) > 0);
	assert_int_equal(rf_key_ident_spki(der, (size_t)l, id2), 0);
	assert_string_not_equal(id, id2);
	/* Garbage is not a key. */
	assert_int_equal(rf_key_ident_spki((const uint8_t *)"\x30\x00", 2, id),
	    RF_ERR_MALFORMED);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsa_twins),
	    cmocka_unit_test(test_ec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
