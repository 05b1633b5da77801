/*
 * The TLS policy: only TLS 1.3 or TLS 1.2 ECDHE + AEAD suites are offered,
 * and handshakes that would need anything else fail. The handshakes run
 * over memory BIOs against a throwaway software key (a test fixture; no
 * ringfence key is involved).
 */
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "testutil.h"

#include "http/http.h"

static void
test_offered_suites(void **state)
{
	STACK_OF(SSL_CIPHER) * sk;
	const SSL_CIPHER *c;
	SSL_CTX *ctx = NULL;
	int i, n13 = 0, n12 = 0, kx;

	(void)state;
	assert_int_equal(rf_http_tls_ctx(1, &ctx), 0);
	assert_non_null(ctx);
	assert_true(SSL_CTX_get_min_proto_version(ctx) >= TLS1_2_VERSION);
	assert_non_null(sk = SSL_CTX_get_ciphers(ctx));
	assert_true(sk_SSL_CIPHER_num(sk) > 0);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		c = sk_SSL_CIPHER_value(sk, i);
		kx = SSL_CIPHER_get_kx_nid(c);
		/* Every suite AEAD; ECDHE, or TLS 1.3 (always (EC)DHE). */
		assert_true(SSL_CIPHER_is_aead(c));
		if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0) {
			assert_int_equal(kx, NID_kx_any);
			n13++;
		} else {
			assert_int_equal(kx, NID_kx_ecdhe);
			assert_non_null(
			    strstr(SSL_CIPHER_get_name(c), "ECDHE"));
			assert_true(
			    strstr(SSL_CIPHER_get_name(c), "GCM") != NULL ||
			    strstr(SSL_CIPHER_get_name(c), "CHACHA20") != NULL);
			n12++;
		}
	}
	assert_int_equal(n13, 3);
	assert_int_equal(n12, 6);
	assert_int_equal(rf_http_tls_check(ctx), 0);
	SSL_CTX_free(ctx);
}

/* The checker itself rejects what the policy forbids. */
static void
test_check_rejects(void **state)
{
	SSL_CTX *ctx;

	(void)state;
	assert_non_null(ctx = SSL_CTX_new(TLS_server_method()));
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(ctx, "AES128-GCM-SHA256"), 1);
	assert_int_equal(rf_http_tls_check(ctx), RF_ERR_CONFIG);
	assert_int_equal(
	    SSL_CTX_set_cipher_list(ctx, "ECDHE-RSA-AES128-SHA"), 1);
	assert_int_equal(rf_http_tls_check(ctx), RF_ERR_CONFIG);
	assert_int_equal(
	    SSL_CTX_set_cipher_list(ctx, "ECDHE-RSA-AES128-GCM-SHA256"), 1);
	assert_int_equal(rf_http_tls_check(ctx), 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
	assert_int_equal(rf_http_tls_check(ctx), RF_ERR_CONFIG);
	SSL_CTX_free(ctx);
}

static SSL_CTX *
server_ctx(void)
{
	EVP_PKEY *pk;
	X509 *x;
	SSL_CTX *ctx = NULL;

	assert_int_equal(rf_http_tls_ctx(1, &ctx), 0);
	assert_non_null(pk = EVP_EC_gen("P-256"));
	x = tu_self_signed(pk, "tls-test");
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pk), 1);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ctx;
}

/*
 * Handshake a client configured by (maxv, list12) with the policy server
 * over memory BIOs. Returns 1 on success and the suite name in name.
 */
static int
handshake(SSL_CTX *sctx, int maxv, const char *list12, char *name, size_t nl)
{
	SSL_CTX *cctx;
	SSL *c, *s;
	int ok;

	assert_non_null(cctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_security_level(cctx, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, maxv), 1);
	if (list12 != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, list12), 1);
	assert_non_null(c = SSL_new(cctx));
	assert_non_null(s = SSL_new(sctx));
	ok = tu_handshake(c, s);
	if (ok)
		snprintf(name, nl, "%s %s", SSL_get_version(s),
		    SSL_CIPHER_get_name(SSL_get_current_cipher(s)));
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	ERR_clear_error();
	return ok;
}

static void
test_handshakes(void **state)
{
	SSL_CTX *sctx = server_ctx();
	char name[128] = "";

	(void)state;
	/* Default client: TLS 1.3. */
	assert_int_equal(
	    handshake(sctx, TLS1_3_VERSION, NULL, name, sizeof(name)), 1);
	assert_non_null(strstr(name, "TLSv1.3"));
	/* TLS 1.2 client with a broad list: an ECDHE AEAD suite. */
	assert_int_equal(handshake(sctx, TLS1_2_VERSION, "ALL:@SECLEVEL=0",
			     name, sizeof(name)),
	    1);
	assert_non_null(strstr(name, "TLSv1.2 ECDHE-ECDSA-"));
	assert_true(
	    strstr(name, "GCM") != NULL || strstr(name, "CHACHA20") != NULL);
	/* No forward secrecy, CBC, or an old protocol: refused. */
	assert_int_equal(handshake(sctx, TLS1_2_VERSION, "AES128-GCM-SHA256",
			     name, sizeof(name)),
	    0);
	assert_int_equal(handshake(sctx, TLS1_2_VERSION,
			     "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",
			     name, sizeof(name)),
	    0);
	assert_int_equal(handshake(sctx, TLS1_1_VERSION, "ALL:@SECLEVEL=0",
			     name, sizeof(name)),
	    0);
	SSL_CTX_free(sctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_offered_suites),
	    cmocka_unit_test(test_check_rejects),
	    cmocka_unit_test(test_handshakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
