/*
 * csrs DIR: the CSRs of the issue 13 reproductions, written as PEM into
 * DIR (their private keys stay in this process and are dropped):
 *   twin65537.csr, twin65539.csr  one RSA-2048 modulus, two exponents
 *                                 (the second private exponent computed
 *                                 from p and q)
 *   e3.csr                        RSA-2048 with e=3
 *   sha1.csr                      RSA-2048, e=65537, signed with SHA-1
 *   sha256.csr                    the same key as sha1.csr, SHA-256
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static void
die(const char *what)
{
	fprintf(stderr, "csrs: %s failed\n", what);
	exit(1);
}

static void
write_csr(const char *dir, const char *name, EVP_PKEY *k, const EVP_MD *md)
{
	X509_REQ *req = X509_REQ_new();
	char path[4096];
	FILE *f;

	if (req == NULL || X509_REQ_set_version(req, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
		MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 || X509_REQ_sign(req, k, md) <= 0)
		die("making a CSR");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL || PEM_write_X509_REQ(f, req) != 1 ||
	    fclose(f) != 0)
		die(path);
	X509_REQ_free(req);
}

static EVP_PKEY *
rsa_gen(unsigned e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *k = NULL;
	BIGNUM *be = BN_new();

	if (ctx == NULL || be == NULL || BN_set_word(be, e) != 1 ||
	    EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) != 1 ||
	    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, be) != 1 ||
	    EVP_PKEY_keygen(ctx, &k) != 1)
		die("RSA key generation");
	BN_free(be);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

/*
 * The twin of k: same n, e = 65539, d = e^-1 mod lcm(p-1, q-1) and the
 * CRT values from it (RFC 8017 3.2). NULL when 65539 divides lambda.
 */
static EVP_PKEY *
rsa_twin(EVP_PKEY *k)
{
	BIGNUM *n = NULL, *p = NULL, *q = NULL, *e = BN_new(), *p1 = BN_new(),
	       *q1 = BN_new(), *g = BN_new(), *lam = BN_new(), *d = BN_new(),
	       *dp = BN_new(), *dq = BN_new(), *qi = BN_new();
	BN_CTX *bc = BN_CTX_new();
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *t = NULL;

	if (bc == NULL || b == NULL || ctx == NULL || qi == NULL ||
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) != 1 ||
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_FACTOR2, &q) != 1 ||
	    BN_set_word(e, 65539) != 1 || BN_sub(p1, p, BN_value_one()) != 1 ||
	    BN_sub(q1, q, BN_value_one()) != 1 || BN_gcd(g, p1, q1, bc) != 1 ||
	    BN_mul(lam, p1, q1, bc) != 1 || BN_div(lam, NULL, lam, g, bc) != 1)
		die("reading the RSA key");
	if (BN_mod_inverse(d, e, lam, bc) == NULL)
		goto out; /* not coprime: the caller tries another key */
	if (BN_mod(dp, d, p1, bc) != 1 || BN_mod(dq, d, q1, bc) != 1 ||
	    BN_mod_inverse(qi, q, p, bc) == NULL ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_D, d) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR1, p) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR2, q) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi) !=
		1 ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &t, EVP_PKEY_KEYPAIR, params) != 1)
		die("building the twin key");
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(ctx);
	BN_CTX_free(bc);
	BN_free(n);
	BN_clear_free(p);
	BN_clear_free(q);
	BN_free(e);
	BN_clear_free(p1);
	BN_clear_free(q1);
	BN_free(g);
	BN_clear_free(lam);
	BN_clear_free(d);
	BN_clear_free(dp);
	BN_clear_free(dq);
	BN_clear_free(qi);
	return t;
}

int
main(int argc, char **argv)
{
	EVP_PKEY *k = NULL, *t = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: csrs DIR\n");
		return 2;
	}
	while (t == NULL) {
		EVP_PKEY_free(k);
		k = rsa_gen(65537);
		t = rsa_twin(k);
	}
	write_csr(argv[1], "twin65537.csr", k, EVP_sha256());
	write_csr(argv[1], "twin65539.csr", t, EVP_sha256());
	EVP_PKEY_free(t);
	EVP_PKEY_free(k);
	k = rsa_gen(3);
	write_csr(argv[1], "e3.csr", k, EVP_sha256());
	EVP_PKEY_free(k);
	k = rsa_gen(65537);
	write_csr(argv[1], "sha1.csr", k, EVP_sha1());
	write_csr(argv[1], "sha256.csr", k, EVP_sha256());
	EVP_PKEY_free(k);
	return 0;
}
