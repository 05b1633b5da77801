/*
 * tls.c: the TLS policy of ringfence's HTTPS endpoints.
 *
 * TLS 1.3 (RFC 8446: every suite is AEAD with (EC)DHE), or TLS 1.2 with
 * ECDHE key exchange and an AEAD suite only (RFC 5289 AES-GCM, RFC 7905
 * ChaCha20-Poly1305). A recorded session must not be decryptable with a
 * key stolen later, so no RSA key transport and no static (EC)DH suite is
 * ever offered; CBC suites are left out too.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/http.h"

static const char tls12_suites[] = "ECDHE-ECDSA-AES128-GCM-SHA256:"
				   "ECDHE-RSA-AES128-GCM-SHA256:"
				   "ECDHE-ECDSA-AES256-GCM-SHA384:"
				   "ECDHE-RSA-AES256-GCM-SHA384:"
				   "ECDHE-ECDSA-CHACHA20-POLY1305:"
				   "ECDHE-RSA-CHACHA20-POLY1305";
static const char tls13_suites[] = "TLS_AES_128_GCM_SHA256:"
				   "TLS_AES_256_GCM_SHA384:"
				   "TLS_CHACHA20_POLY1305_SHA256";

int
rf_http_tls_ctx(int server, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		r = rf_err_set(RF_ERR_ALLOC, "TLS: SSL_CTX_new failed");
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, tls12_suites) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, tls13_suites) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "TLS: OpenSSL refused the ringfence TLS policy");
		goto out;
	}
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
		SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	if ((r = rf_http_tls_check(ctx)) != 0)
		goto out;
	*out = ctx; /* now the caller's */
	ctx = NULL;
	r = 0;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
rf_http_tls_check(SSL_CTX *ctx)
{
	STACK_OF(SSL_CIPHER) * sk;
	const SSL_CIPHER *c;
	long minv;
	int i, kx;

	if (ctx == NULL)
		return RF_ERR_ARG;
	minv = SSL_CTX_get_min_proto_version(ctx);
	/* 0 means "the lowest the library supports": not acceptable. */
	if (minv == 0 || minv < TLS1_2_VERSION)
		return rf_err_set(
		    RF_ERR_CONFIG, "TLS: minimum protocol below TLS 1.2");
	if ((sk = SSL_CTX_get_ciphers(ctx)) == NULL ||
	    sk_SSL_CIPHER_num(sk) <= 0)
		return rf_err_set(RF_ERR_CONFIG, "TLS: no cipher suites");
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		c = sk_SSL_CIPHER_value(sk, i);
		kx = SSL_CIPHER_get_kx_nid(c);
		if (!SSL_CIPHER_is_aead(c))
			return rf_err_set(RF_ERR_CONFIG,
			    "TLS: suite %s is not AEAD",
			    SSL_CIPHER_get_name(c));
		/* TLS 1.3 suites carry no key exchange (NID_kx_any). */
		if (kx != NID_kx_ecdhe && kx != NID_kx_any)
			return rf_err_set(RF_ERR_CONFIG,
			    "TLS: suite %s is not ECDHE (no forward secrecy)",
			    SSL_CIPHER_get_name(c));
		if (kx == NID_kx_any &&
		    strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") != 0)
			return rf_err_set(RF_ERR_CONFIG,
			    "TLS: suite %s has no key exchange",
			    SSL_CIPHER_get_name(c));
	}
	return 0;
}
