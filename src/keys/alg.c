/*
 * alg.c: the OpenSSL side of key custody. Algorithm names, public keys
 * rebuilt from token attributes, ECDSA signature encoding, signature
 * AlgorithmIdentifiers, verification and key ids. Nothing here touches the
 * token.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "keys/keys.h"
#include "keys/keys_int.h"

static const struct {
	enum rf_key_alg alg;
	const char *name;
} alg_names[] = {
    {RF_KEY_EC_P256, "ec-p256"},
    {RF_KEY_EC_P384, "ec-p384"},
    {RF_KEY_RSA_2048, "rsa-2048"},
    {RF_KEY_RSA_3072, "rsa-3072"},
    {RF_KEY_RSA_4096, "rsa-4096"},
};

int
rf_key_alg_parse(const char *name, enum rf_key_alg *alg)
{
	size_t i;

	*alg = RF_KEY_NONE;
	for (i = 0;
	     name != NULL && i < sizeof(alg_names) / sizeof(alg_names[0]);
	     i++) {
		if (strcmp(alg_names[i].name, name) == 0) {
			*alg = alg_names[i].alg;
			return 0;
		}
	}
	return rf_err_set(RF_ERR_ARG,
	    "unknown key algorithm '%s': use ec-p256, ec-p384, "
	    "rsa-2048, rsa-3072 or rsa-4096",
	    name == NULL ? "" : name);
}

const char *
rf_key_alg_name(enum rf_key_alg alg)
{
	size_t i;

	for (i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (alg_names[i].alg == alg)
			return alg_names[i].name;
	return "none";
}

int
rf_key_alg_rsa(enum rf_key_alg alg)
{
	return alg == RF_KEY_RSA_2048 || alg == RF_KEY_RSA_3072 ||
	    alg == RF_KEY_RSA_4096;
}

enum rf_key_alg
rf_key_alg_of_pub(const EVP_PKEY *pub)
{
	char curve[64];
	int bits;

	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		bits = EVP_PKEY_get_bits(pub);
		return bits > 3072 ? RF_KEY_RSA_4096
		    : bits > 2048  ? RF_KEY_RSA_3072
				   : RF_KEY_RSA_2048;
	}
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC &&
	    EVP_PKEY_get_group_name(pub, curve, sizeof(curve), NULL) == 1 &&
	    strcmp(curve, SN_secp384r1) == 0)
		return RF_KEY_EC_P384;
	return RF_KEY_EC_P256;
}

int
rf_key_alg_of_cert(const uint8_t *der, size_t len, enum rf_key_alg *alg)
{
	const uint8_t *p = der;
	EVP_PKEY *pub;
	X509 *x = NULL;

	*alg = RF_KEY_NONE;
	if (der == NULL || len == 0 || len > 1024 * 1024 ||
	    (x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len ||
	    (pub = X509_get0_pubkey(x)) == NULL) {
		X509_free(x);
		ERR_clear_error();
		return rf_err_set(
		    RF_ERR_MALFORMED, "certificate is not DER X.509");
	}
	*alg = rf_key_alg_of_pub(pub);
	X509_free(x);
	return 0;
}

const EVP_MD *
rf_key_alg_md(enum rf_key_alg alg)
{
	return alg == RF_KEY_EC_P384 ? EVP_sha384() : EVP_sha256();
}

/* Bytes of one coordinate (and of r or s) for an EC algorithm, else 0. */
static size_t
ec_field_len(enum rf_key_alg alg)
{
	switch (alg) {
	case RF_KEY_EC_P256:
		return 32;
	case RF_KEY_EC_P384:
		return 48;
	default:
		return 0;
	}
}

/*
 * RFC 5480 section 2.2: ECPoint ::= OCTET STRING, the uncompressed form
 * 0x04 || X || Y. PKCS#11 v2.40 has CKA_EC_POINT hold the DER encoding of
 * that OCTET STRING (SoftHSM does); some modules return the bare point.
 */
int
rf_keys_ec_point_decode(enum rf_key_alg alg, const uint8_t *in, size_t len,
    const uint8_t **point, size_t *pointlen)
{
	size_t fl = ec_field_len(alg), want = 1 + 2 * fl, hdr;

	*point = NULL;
	*pointlen = 0;
	if (fl == 0)
		return rf_err_set(RF_ERR_ARG, "not an EC key algorithm");
	/* DER OCTET STRING: 0x04, short (< 128) or 0x81 long form length. */
	hdr = want < 128 ? 2 : 3;
	if (len == hdr + want && in[0] == 0x04 &&
	    ((hdr == 2 && in[1] == want) ||
		(hdr == 3 && in[1] == 0x81 && in[2] == want)) &&
	    in[hdr] == 0x04) {
		*point = in + hdr;
		*pointlen = want;
		return 0;
	}
	if (len == want && in[0] == 0x04) {
		*point = in;
		*pointlen = want;
		return 0;
	}
	return rf_err_set(RF_ERR_MALFORMED,
	    "token returned a malformed CKA_EC_POINT (%zu bytes)", len);
}

/* OpenSSL's public-key checks made (rf_keys_pub_checks). */
static _Atomic unsigned long full_checks;

unsigned long
rf_keys_pub_checks(void)
{
	return atomic_load(&full_checks);
}

/*
 * Check a freshly built public key (point on the curve, RSA sanity). On
 * P-256 and P-384 (cofactor 1) every point of the curve but infinity has
 * the group's prime order, so the quick check (on the curve, not at
 * infinity: SP 800-56A 5.6.2.3.4) is the full one without its scalar
 * multiplication by the order.
 */
static int
pub_check(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	atomic_fetch_add(&full_checks, 1);
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL)
		return RF_ERR_ALLOC;
	ok = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC
	    ? EVP_PKEY_public_check_quick(ctx)
	    : EVP_PKEY_public_check(ctx);
	EVP_PKEY_CTX_free(ctx);
	if (ok != 1)
		return rf_err_set(RF_ERR_MALFORMED,
		    "public key from the token fails its check");
	return 0;
}

/* An EVP_PKEY of type `type` from its public parameters. */
static int
pub_fromdata(const char *type, OSSL_PARAM *params, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx;
	int r = 0;

	*out = NULL;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL)
		return RF_ERR_ALLOC;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
		r = rf_err_set(RF_ERR_MALFORMED,
		    "OpenSSL rejects the %s public key", type);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/*
 * The domain parameters of P-256 and P-384 as EVP_PKEYs, made once: an EC
 * public key is their copy with its point set. OpenSSL builds the group
 * anew for every EVP_PKEY_fromdata() by name (about 20 us, four times the
 * copy); the point is checked on the curve either way.
 */
static EVP_PKEY *ec_params[2];
static pthread_once_t ec_params_once = PTHREAD_ONCE_INIT;

static void
ec_params_make(void)
{
	static const char *const groups[2] = {"P-256", "P-384"};
	OSSL_PARAM params[2];
	EVP_PKEY_CTX *ctx;
	int i;

	for (i = 0; i < 2; i++) {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_PKEY_PARAM_GROUP_NAME, (char *)groups[i], 0);
		params[1] = OSSL_PARAM_construct_end();
		if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) !=
			NULL &&
		    (EVP_PKEY_fromdata_init(ctx) != 1 ||
			EVP_PKEY_fromdata(ctx, &ec_params[i],
			    EVP_PKEY_KEY_PARAMETERS, params) != 1))
			ec_params[i] = NULL; /* fromdata, by name, each time */
		EVP_PKEY_CTX_free(ctx);
	}
}

int
rf_keys_ec_import(
    enum rf_key_alg alg, const uint8_t *point, size_t len, EVP_PKEY **out)
{
	const char *group = alg == RF_KEY_EC_P384 ? "P-384" : "P-256";
	OSSL_PARAM params[3];
	EVP_PKEY *tmpl;

	*out = NULL;
	if (ec_field_len(alg) == 0 || len != 1 + 2 * ec_field_len(alg))
		return rf_err_set(
		    RF_ERR_MALFORMED, "bad EC point length %zu", len);
	(void)pthread_once(&ec_params_once, ec_params_make);
	if ((tmpl = ec_params[alg == RF_KEY_EC_P384]) != NULL) {
		if ((*out = EVP_PKEY_dup(tmpl)) == NULL)
			return RF_ERR_ALLOC;
		if (EVP_PKEY_set1_encoded_public_key(*out, point, len) != 1) {
			EVP_PKEY_free(*out);
			*out = NULL;
			return rf_err_set(RF_ERR_MALFORMED,
			    "OpenSSL rejects the EC public key");
		}
		return 0;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len);
	params[2] = OSSL_PARAM_construct_end();
	return pub_fromdata("EC", params, out);
}

int
rf_keys_rsa_import(const BIGNUM *n, const BIGNUM *e, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	int r = RF_ERR_ALLOC;

	*out = NULL;
	if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
		r = pub_fromdata("RSA", params, out);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

static int
ec_pub(enum rf_key_alg alg, const uint8_t *point, size_t len, int full,
    EVP_PKEY **out)
{
	EVP_PKEY *pkey = NULL;
	int r;

	*out = NULL;
	if (ec_field_len(alg) == 0 || len != 1 + 2 * ec_field_len(alg))
		return rf_err_set(
		    RF_ERR_MALFORMED, "bad EC point length %zu", len);
	if ((r = rf_keys_ec_import(alg, point, len, &pkey)) == RF_ERR_MALFORMED)
		rf_err_set(r, "token returned an EC point OpenSSL rejects");
	if (r != 0 || (full && (r = pub_check(pkey)) != 0)) {
		EVP_PKEY_free(pkey);
		return r;
	}
	*out = pkey; /* owned by the caller */
	return 0;
}

int
rf_keys_ec_pub(
    enum rf_key_alg alg, const uint8_t *point, size_t len, EVP_PKEY **out)
{
	return ec_pub(alg, point, len, 1, out);
}

int
rf_keys_ec_pub_known(
    enum rf_key_alg alg, const uint8_t *point, size_t len, EVP_PKEY **out)
{
	return ec_pub(alg, point, len, 0, out);
}

static int
rsa_pub(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen, int full,
    enum rf_key_alg *alg, EVP_PKEY **out)
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int r = RF_ERR_INTERNAL, bits;

	*out = NULL;
	*alg = RF_KEY_NONE;
	if (nlen == 0 || nlen > 1024 || elen == 0 || elen > 8)
		return rf_err_set(
		    RF_ERR_MALFORMED, "token returned an RSA key of bad size");
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	bits = BN_num_bits(bn);
	if (bits != 2048 && bits != 3072 && bits != 4096) {
		r = rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "RSA key of %d bits: only 2048, 3072 and 4096 are "
		    "used",
		    bits);
		goto out;
	}
	/* What the full check would refuse first, checked always: every key
	 * is made with exponent 65537 (gen_op), and a modulus is odd. */
	if (!BN_is_word(be, RSA_F4) || !BN_is_odd(bn)) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "token returned an RSA key with an even modulus or an "
		    "exponent other than 65537");
		goto out;
	}
	if ((r = rf_keys_rsa_import(bn, be, &pkey)) == RF_ERR_MALFORMED)
		rf_err_set(r, "token returned an RSA key OpenSSL rejects");
	if (r != 0 || (full && (r = pub_check(pkey)) != 0))
		goto out;
	*alg = bits == 2048 ? RF_KEY_RSA_2048
	    : bits == 3072  ? RF_KEY_RSA_3072
			    : RF_KEY_RSA_4096;
	*out = pkey; /* owned by the caller */
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	BN_free(bn);
	BN_free(be);
	return r;
}

int
rf_keys_rsa_pub(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
    enum rf_key_alg *alg, EVP_PKEY **out)
{
	return rsa_pub(n, nlen, e, elen, 1, alg, out);
}

int
rf_keys_rsa_pub_known(const uint8_t *n, size_t nlen, const uint8_t *e,
    size_t elen, enum rf_key_alg *alg, EVP_PKEY **out)
{
	return rsa_pub(n, nlen, e, elen, 0, alg, out);
}

/*
 * RFC 5480 section 2.2.3 / RFC 3279 section 2.2.3:
 *   ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
 * PKCS#11 CKM_ECDSA returns r || s, each the length of the field.
 */
int
rf_keys_ecdsa_raw_to_der(
    const uint8_t *raw, size_t rawlen, uint8_t **der, size_t *derlen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	uint8_t *buf = NULL, *p;
	int len, r = RF_ERR_INTERNAL;

	*der = NULL;
	*derlen = 0;
	if (rawlen == 0 || rawlen % 2 != 0 || rawlen > 132)
		return rf_err_set(RF_ERR_MALFORMED,
		    "ECDSA signature of %zu bytes from the token", rawlen);
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(raw, (int)(rawlen / 2), NULL)) == NULL ||
	    (bs = BN_bin2bn(raw + rawlen / 2, (int)(rawlen / 2), NULL)) ==
		NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if (BN_is_zero(br) || BN_is_zero(bs)) {
		r = rf_err_set(
		    RF_ERR_MALFORMED, "ECDSA signature with r or s zero");
		goto out;
	}
	if (ECDSA_SIG_set0(es, br, bs) != 1)
		goto out;
	br = bs = NULL; /* owned by es */
	if ((len = i2d_ECDSA_SIG(es, NULL)) <= 0)
		goto out;
	if ((buf = malloc((size_t)len)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p = buf;
	if (i2d_ECDSA_SIG(es, &p) != len)
		goto out;
	*der = buf; /* owned by the caller */
	*derlen = (size_t)len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	return r;
}

/* Set up a verify context for our scheme on an EVP_PKEY_CTX. */
static int
set_pss(EVP_PKEY_CTX *pctx)
{
	/* RFC 4055 section 3.1: SHA-256, MGF1 with SHA-256, salt 32. */
	if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return RF_ERR_INTERNAL;
	return 0;
}

/* OpenSSL's verify result: 1 valid, 0 invalid, anything else a library
 * error. */
static int
verify_result(int ok)
{
	if (ok == 1)
		return 0;
	return ok == 0 ? RF_ERR_SIGNATURE_INVALID : RF_ERR_INTERNAL;
}

int
rf_keys_verify(EVP_PKEY *pub, enum rf_key_alg alg, enum rf_sig_scheme scheme,
    const uint8_t *msg, size_t msglen, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	int r = RF_ERR_INTERNAL;

	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return RF_ERR_ALLOC;
	if (EVP_DigestVerifyInit(mctx, &pctx, rf_key_alg_md(alg), NULL, pub) !=
	    1)
		goto out;
	if (scheme == RF_SIG_RSA_PSS && (r = set_pss(pctx)) != 0)
		goto out;
	r = verify_result(EVP_DigestVerify(mctx, sig, siglen, msg, msglen));
out:
	EVP_MD_CTX_free(mctx); /* frees pctx */
	return r;
}

int
rf_keys_verify_digest(EVP_PKEY *pub, const uint8_t *dig, size_t diglen,
    const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *pctx = NULL;
	int r = RF_ERR_INTERNAL;

	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL)) == NULL)
		return RF_ERR_ALLOC;
	if (EVP_PKEY_verify_init(pctx) != 1)
		goto out;
	r = verify_result(EVP_PKEY_verify(pctx, sig, siglen, dig, diglen));
out:
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/*
 * A verifier: one EVP_PKEY_CTX per scheme, made on first use and kept for
 * a whole batch. Each check verifies the signature over the digest that
 * sign.c made of the message (the one the audit leaf names), so nothing
 * is hashed twice and no digest is fetched per signature.
 */
struct rf_verifier {
	EVP_PKEY *pub;
	enum rf_key_alg alg;
	EVP_PKEY_CTX *ctx[2]; /* RF_SIG_DEFAULT, RF_SIG_RSA_PSS */
};

int
rf_keys_verifier_new(
    EVP_PKEY *pub, enum rf_key_alg alg, struct rf_verifier **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return RF_ERR_ALLOC;
	(*out)->pub = pub;
	(*out)->alg = alg;
	return 0;
}

void
rf_keys_verifier_free(struct rf_verifier *v)
{
	if (v == NULL)
		return;
	EVP_PKEY_CTX_free(v->ctx[0]);
	EVP_PKEY_CTX_free(v->ctx[1]);
	free(v);
}

static int
verifier_ctx(struct rf_verifier *v, int pss, EVP_PKEY_CTX **out)
{
	EVP_PKEY_CTX *c;
	int rsa = rf_key_alg_rsa(v->alg);

	if ((*out = v->ctx[pss]) != NULL)
		return 0;
	if ((c = EVP_PKEY_CTX_new_from_pkey(NULL, v->pub, NULL)) == NULL)
		return RF_ERR_ALLOC;
	if (EVP_PKEY_verify_init(c) != 1 ||
	    (rsa &&
		(EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) <= 0 ||
		    (pss ? set_pss(c)
			 : EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <=
				0)))) {
		EVP_PKEY_CTX_free(c);
		return RF_ERR_INTERNAL;
	}
	*out = v->ctx[pss] = c;
	return 0;
}

int
rf_keys_verifier_check(struct rf_verifier *v, enum rf_sig_scheme scheme,
    const uint8_t *dig, size_t diglen, const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *c;
	int r;

	if ((r = verifier_ctx(v, scheme == RF_SIG_RSA_PSS, &c)) != 0)
		return r;
	return verify_result(EVP_PKEY_verify(c, sig, siglen, dig, diglen));
}

/* RFC 4055 section 3.1 RSASSA-PSS-params with SHA-256, MGF1-SHA-256,
 * saltLength 32, trailerField 1 (default, omitted). */
static int
pss_algor(X509_ALGOR *alg)
{
	RSA_PSS_PARAMS *pss = NULL;
	X509_ALGOR *mgfhash = NULL;
	ASN1_STRING *mgfparam = NULL, *params = NULL;
	int r = RF_ERR_ALLOC;

	if ((pss = RSA_PSS_PARAMS_new()) == NULL ||
	    (pss->hashAlgorithm = X509_ALGOR_new()) == NULL ||
	    (pss->maskGenAlgorithm = X509_ALGOR_new()) == NULL ||
	    (pss->saltLength = ASN1_INTEGER_new()) == NULL ||
	    (mgfhash = X509_ALGOR_new()) == NULL)
		goto out;
	/* RFC 4055 section 2.1: SHA-2 parameters absent is preferred. */
	if (X509_ALGOR_set0(pss->hashAlgorithm, OBJ_nid2obj(NID_sha256),
		V_ASN1_UNDEF, NULL) != 1 ||
	    X509_ALGOR_set0(
		mgfhash, OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL) != 1 ||
	    ASN1_INTEGER_set(pss->saltLength, 32) != 1 ||
	    ASN1_item_pack(mgfhash, ASN1_ITEM_rptr(X509_ALGOR), &mgfparam) ==
		NULL)
		goto out;
	if (X509_ALGOR_set0(pss->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1),
		V_ASN1_SEQUENCE, mgfparam) != 1)
		goto out;
	mgfparam = NULL; /* owned by pss */
	if (ASN1_item_pack(pss, ASN1_ITEM_rptr(RSA_PSS_PARAMS), &params) ==
	    NULL)
		goto out;
	if (X509_ALGOR_set0(
		alg, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, params) != 1)
		goto out;
	params = NULL; /* owned by alg */
	r = 0;
out:
	ASN1_STRING_free(params);
	ASN1_STRING_free(mgfparam);
	X509_ALGOR_free(mgfhash);
	RSA_PSS_PARAMS_free(pss);
	return r;
}

int
rf_key_sigalg(
    const struct rf_key *key, enum rf_sig_scheme scheme, X509_ALGOR **out)
{
	enum rf_key_alg alg = rf_key_alg(key);
	X509_ALGOR *a = NULL;
	int r = RF_ERR_INTERNAL, ok;

	*out = NULL;
	if ((a = X509_ALGOR_new()) == NULL)
		return RF_ERR_ALLOC;
	switch (alg) {
	case RF_KEY_EC_P256:
	case RF_KEY_EC_P384:
		/* RFC 5758 section 3.2: parameters MUST be absent. */
		if (scheme != RF_SIG_DEFAULT) {
			r = rf_err_set(RF_ERR_ARG, "RSA-PSS with an EC key");
			goto out;
		}
		ok = X509_ALGOR_set0(a,
		    OBJ_nid2obj(alg == RF_KEY_EC_P256 ? NID_ecdsa_with_SHA256
						      : NID_ecdsa_with_SHA384),
		    V_ASN1_UNDEF, NULL);
		if (ok != 1)
			goto out;
		break;
	case RF_KEY_RSA_2048:
	case RF_KEY_RSA_3072:
	case RF_KEY_RSA_4096:
		if (scheme == RF_SIG_RSA_PSS) {
			if ((r = pss_algor(a)) != 0)
				goto out;
			break;
		}
		/* RFC 4055 section 5: parameters MUST be NULL. */
		if (X509_ALGOR_set0(a, OBJ_nid2obj(NID_sha256WithRSAEncryption),
			V_ASN1_NULL, NULL) != 1)
			goto out;
		break;
	default:
		r = rf_err_set(RF_ERR_ARG, "key of unknown algorithm");
		goto out;
	}
	*out = a; /* owned by the caller */
	a = NULL;
	r = 0;
out:
	X509_ALGOR_free(a);
	return r;
}

/*
 * RFC 5480 section 2: the SPKI of a named-curve EC key, as i2d_PUBKEY
 * writes it, is these bytes and then the uncompressed point (04 X Y):
 * SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING (0 unused
 * bits) }.
 */
static const uint8_t spki_p256[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
static const uint8_t spki_p384[] = {0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00};

int
rf_keys_ec_spki_form(
    enum rf_key_alg alg, const uint8_t **pre, size_t *prelen, size_t *pointlen)
{
	if (alg == RF_KEY_EC_P256) {
		*pre = spki_p256;
		*prelen = sizeof(spki_p256);
		*pointlen = 65;
		return 1;
	}
	if (alg == RF_KEY_EC_P384) {
		*pre = spki_p384;
		*prelen = sizeof(spki_p384);
		*pointlen = 97;
		return 1;
	}
	return 0;
}

/*
 * An EC key's SPKI DER built from its point, without OpenSSL's encoder
 * search (i2d_PUBKEY: a tenth of a millisecond, for every key made,
 * loaded or sent): its length in buf, or 0 when the key does not have the
 * fixed form (named P-256 or P-384, uncompressed point) and must be
 * encoded the general way.
 */
size_t
rf_keys_ec_spki(EVP_PKEY *pub, uint8_t buf[RF_EC_SPKI_MAX])
{
	char group[32], enc[32];
	const uint8_t *pre;
	size_t prelen, want, plen = 0;
	enum rf_key_alg alg;

	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME,
		group, sizeof(group), NULL) != 1 ||
	    EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_EC_ENCODING,
		enc, sizeof(enc), NULL) != 1 ||
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
		return 0;
	if (strcmp(group, SN_X9_62_prime256v1) == 0)
		alg = RF_KEY_EC_P256;
	else if (strcmp(group, SN_secp384r1) == 0)
		alg = RF_KEY_EC_P384;
	else
		return 0;
	if (!rf_keys_ec_spki_form(alg, &pre, &prelen, &want) ||
	    EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY,
		buf + prelen, RF_EC_SPKI_MAX - prelen, &plen) != 1 ||
	    plen != want || buf[prelen] != 0x04)
		return 0;
	memcpy(buf, pre, prelen);
	return prelen + plen;
}

/* The SHA-256 of an EC key's SPKI in its fixed form: 1, or 0 as above. */
static int
ec_spki_hash(EVP_PKEY *pub, uint8_t md[SHA256_DIGEST_LENGTH])
{
	uint8_t buf[RF_EC_SPKI_MAX];
	size_t n;

	if ((n = rf_keys_ec_spki(pub, buf)) == 0)
		return 0;
	SHA256(buf, n, md);
	return 1;
}

int
rf_keys_spki_der(EVP_PKEY *pub, uint8_t **der, size_t *len)
{
	uint8_t buf[RF_EC_SPKI_MAX], *p = NULL;
	size_t n;
	int l;

	*der = NULL;
	*len = 0;
	if (pub == NULL)
		return rf_err_set(RF_ERR_ARG, "no public key");
	if ((n = rf_keys_ec_spki(pub, buf)) > 0) {
		if ((p = OPENSSL_malloc(n)) == NULL)
			return RF_ERR_ALLOC;
		memcpy(p, buf, n);
		*der = p;
		*len = n;
		return 0;
	}
	if ((l = i2d_PUBKEY(pub, &p)) <= 0) {
		ERR_clear_error();
		return rf_err_set(
		    RF_ERR_INTERNAL, "cannot encode the public key");
	}
	*der = p;
	*len = (size_t)l;
	return 0;
}

int
rf_keys_pub_id(EVP_PKEY *pub, char id[65])
{
	uint8_t *der = NULL, md[SHA256_DIGEST_LENGTH];
	int len;

	id[0] = '\0';
	if (pub == NULL)
		return rf_err_set(RF_ERR_ARG, "no public key");
	if (ec_spki_hash(pub, md)) {
		rf_hex(md, sizeof(md), id);
		return 0;
	}
	if ((len = i2d_PUBKEY(pub, &der)) <= 0)
		return rf_err_set(
		    RF_ERR_INTERNAL, "cannot encode the public key");
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	rf_hex(md, sizeof(md), id);
	return 0;
}
