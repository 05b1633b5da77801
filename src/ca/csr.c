/*
 * csr.c: checks on untrusted PKCS#10 certification requests (RFC 2986).
 *
 * Only the public key of a CSR is used; its subject is ignored (the CA names
 * the subject from tenant and profile) and its requested extensions are
 * only screened: a request for CA:TRUE or for an extended key usage the
 * profile does not grant is refused rather than silently dropped.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/rf.h"
#include "keys/keys.h"

static const char allowed_keys[] =
    "allowed keys are EC P-256, EC P-384 and RSA of 2048 to 4096 bits "
    "with e=65537";

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 4096

/* PEM input: one "CERTIFICATE REQUEST" block and nothing but space after. */
static int
csr_unpem(const uint8_t *in, size_t len, uint8_t **der, long *derlen)
{
	BIO *bio = NULL;
	char *name = NULL, *hdr = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	char rest[64];
	int n, i, r = RF_ERR_CSR_MALFORMED;

	*der = NULL;
	*derlen = 0;
	if ((bio = BIO_new_mem_buf(in, (int)len)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if (PEM_read_bio(bio, &name, &hdr, &data, &dlen) != 1) {
		ERR_clear_error();
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR is not valid PEM: expected a BEGIN/END "
		    "CERTIFICATE REQUEST block");
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0) {
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "PEM block is \"%.40s\", expected CERTIFICATE REQUEST",
		    name);
		goto out;
	}
	if (hdr != NULL && *hdr != '\0') {
		r = rf_err_set(
		    RF_ERR_CSR_MALFORMED, "CSR PEM has headers: remove them");
		goto out;
	}
	while ((n = BIO_read(bio, rest, sizeof(rest))) > 0) {
		for (i = 0; i < n; i++) {
			if (!isspace((unsigned char)rest[i])) {
				r = rf_err_set(RF_ERR_CSR_MALFORMED,
				    "CSR has data after the PEM block");
				goto out;
			}
		}
	}
	*der = data; /* owned by the caller (OPENSSL_free) */
	*derlen = dlen;
	data = NULL;
	r = 0;
out:
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(data);
	BIO_free(bio);
	return r;
}

/*
 * SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
 *                                     subjectPublicKey BIT STRING }
 * Written as: 30 L | DER of alg | 03 L(1+pklen) 00 pk
 * (RFC 5480 2.1.1: id-ecPublicKey with a namedCurve; RFC 3279 2.3.1:
 * rsaEncryption with NULL parameters).
 */
static int
spki_build(int pknid, int curve, const unsigned char *pk, int pklen,
    uint8_t **out, size_t *outlen)
{
	X509_ALGOR *alg = NULL;
	unsigned char *algder = NULL;
	uint8_t *buf = NULL, *p;
	size_t bits, content, total;
	int al = 0, ok;

	*out = NULL;
	*outlen = 0;
	if ((alg = X509_ALGOR_new()) == NULL)
		return RF_ERR_ALLOC;
	ok = pknid == NID_X9_62_id_ecPublicKey
	    ? X509_ALGOR_set0(
		  alg, OBJ_nid2obj(pknid), V_ASN1_OBJECT, OBJ_nid2obj(curve))
	    : X509_ALGOR_set0(alg, OBJ_nid2obj(pknid), V_ASN1_NULL, NULL);
	if (ok != 1 || (al = i2d_X509_ALGOR(alg, &algder)) <= 0) {
		X509_ALGOR_free(alg);
		return RF_ERR_INTERNAL;
	}
	bits = 1 + (size_t)pklen;
	content = (size_t)al + rf_ca_der_hdr_len(bits) + bits;
	total = rf_ca_der_hdr_len(content) + content;
	if ((buf = malloc(total)) != NULL) {
		p = rf_ca_der_put_hdr(buf, 0x30, content);
		memcpy(p, algder, (size_t)al);
		p = rf_ca_der_put_hdr(p + al, 0x03, bits);
		*p++ = 0x00;
		memcpy(p, pk, (size_t)pklen);
		*out = buf; /* owned by the caller */
		*outlen = total;
	}
	OPENSSL_free(algder);
	X509_ALGOR_free(alg);
	return buf != NULL ? 0 : RF_ERR_ALLOC;
}

/*
 * RFC 2986 4.1, decoded by OpenSSL's ASN.1 engine from these templates
 * rather than by d2i_X509_REQ. The difference is the public key: X509_REQ
 * hands it to OpenSSL 3.0's decoder framework, which costs about 100 us a
 * request (more than the signature check) and serializes threads on its
 * method store. Here the key stays bytes until the allow-list has passed,
 * and is then built from its parameters with EVP_PKEY_fromdata. The signed
 * bytes are kept as received (ASN1_SEQUENCE_enc) for the signature check.
 */
typedef struct {
	X509_ALGOR *alg;
	ASN1_BIT_STRING *key;
} CSR_SPKI;

typedef struct {
	ASN1_ENCODING enc;
	ASN1_INTEGER *version;
	X509_NAME *subject;
	CSR_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) * attrs;
} CSR_INFO;

typedef struct {
	CSR_INFO *info;
	X509_ALGOR *sigalg;
	ASN1_BIT_STRING *sig;
} CSR;

/* RFC 8017 A.1.1 */
typedef struct {
	ASN1_INTEGER *n;
	ASN1_INTEGER *e;
} CSR_RSA_PUB;

/* OpenSSL's template macros read best as tables. */
/* clang-format off */
ASN1_SEQUENCE(CSR_SPKI) = {
	ASN1_SIMPLE(CSR_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(CSR_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_SPKI)

ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
	ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(CSR_INFO, subject, X509_NAME),
	ASN1_SIMPLE(CSR_INFO, spki, CSR_SPKI),
	/* Optional, as for OpenSSL: some requesters omit an empty set. */
	ASN1_IMP_SET_OF_OPT(CSR_INFO, attrs, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR) = {
	ASN1_SIMPLE(CSR, info, CSR_INFO),
	ASN1_SIMPLE(CSR, sigalg, X509_ALGOR),
	ASN1_SIMPLE(CSR, sig, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR)

ASN1_SEQUENCE(CSR_RSA_PUB) = {
	ASN1_SIMPLE(CSR_RSA_PUB, n, ASN1_INTEGER),
	ASN1_SIMPLE(CSR_RSA_PUB, e, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(CSR_RSA_PUB)

/* An EC public key on a named curve (RFC 5480 2.1.1), as an EVP_PKEY. */
static int
ec_key(const X509_ALGOR *alg, const unsigned char *pk, int pklen,
    EVP_PKEY **pkey, int *curve)
/* clang-format on */
{
	const ASN1_OBJECT *param = NULL;
	const void *pval = NULL;
	char name[80];
	int ptype = V_ASN1_UNDEF, r;

	X509_ALGOR_get0(NULL, &ptype, &pval, alg);
	if (ptype == V_ASN1_SEQUENCE)
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key is EC with explicit curve parameters: %s",
		    allowed_keys);
	if (ptype != V_ASN1_OBJECT)
		return rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR EC key names no curve (RFC 5480 2.1.1)");
	param = pval;
	*curve = OBJ_obj2nid(param);
	if (*curve != NID_X9_62_prime256v1 && *curve != NID_secp384r1) {
		if (OBJ_obj2txt(name, sizeof(name), param, 0) <= 0)
			snprintf(name, sizeof(name), "?");
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key is EC on curve %s: %s", name, allowed_keys);
	}
	/* SEC 1 2.3.3: 04 || X || Y. */
	if (pklen != (*curve == NID_secp384r1 ? 97 : 65) || pk[0] != 0x04)
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key is a compressed EC point: send it "
		    "uncompressed (RFC 5480 2.2)");
	/* The import checks that the point is on the curve. */
	if ((r = rf_keys_ec_import(
		 *curve == NID_secp384r1 ? RF_KEY_EC_P384 : RF_KEY_EC_P256, pk,
		 (size_t)pklen, pkey)) == RF_ERR_MALFORMED)
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR public key is not a point on %s", OBJ_nid2sn(*curve));
	return r;
}

/* An RSA public key (RFC 3279 2.3.1), as an EVP_PKEY. */
static int
rsa_key(
    const X509_ALGOR *alg, const unsigned char *pk, int pklen, EVP_PKEY **pkey)
{
	const unsigned char *p = pk;
	CSR_RSA_PUB *rp = NULL;
	BIGNUM *n = NULL, *e = NULL;
	int ptype = V_ASN1_UNDEF, bits, r = RF_ERR_INTERNAL;

	X509_ALGOR_get0(NULL, &ptype, NULL, alg);
	if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
		return rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR RSA key has algorithm parameters: they must be NULL");
	rp = (CSR_RSA_PUB *)ASN1_item_d2i(
	    NULL, &p, pklen, ASN1_ITEM_rptr(CSR_RSA_PUB));
	if (rp == NULL || p != pk + pklen ||
	    (n = ASN1_INTEGER_to_BN(rp->n, NULL)) == NULL ||
	    (e = ASN1_INTEGER_to_BN(rp->e, NULL)) == NULL ||
	    BN_is_negative(n) || BN_is_negative(e) || !BN_is_odd(e) ||
	    BN_is_one(e)) {
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR RSA public key is not a valid RSAPublicKey");
		goto out;
	}
	if ((bits = BN_num_bits(n)) < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
		r = rf_err_set(RF_ERR_KEY_DISALLOWED, "CSR key is RSA-%d: %s",
		    bits, allowed_keys);
		goto out;
	}
	/* One exponent: a small e (3) invites the attacks on unpadded or
	 * badly padded RSA, and a modulus with another e is the same key
	 * under a different name (common/keyident.h). */
	if (!BN_is_word(e, RSA_F4)) {
		char *dec = BN_bn2dec(e);

		r = rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR RSA key has public exponent %.40s: only 65537 is "
		    "allowed; generate the key with e=65537",
		    dec != NULL ? dec : "?");
		OPENSSL_free(dec);
		goto out;
	}
	if ((r = rf_keys_rsa_import(n, e, pkey)) == RF_ERR_MALFORMED)
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR RSA public key is rejected by OpenSSL");
out:
	BN_free(n);
	BN_free(e);
	ASN1_item_free((ASN1_VALUE *)rp, ASN1_ITEM_rptr(CSR_RSA_PUB));
	return r;
}

/*
 * The allow-list: EC P-256 / P-384 (named curves, uncompressed points),
 * RSA of 2048 to 4096 bits. *spki receives the canonical SubjectPublicKeyInfo,
 * so that one key has one encoding (and one key id) whatever the CSR used.
 */
static int
csr_key_check(
    const CSR_SPKI *ks, EVP_PKEY **pkey, uint8_t **spki, size_t *spkilen)
{
	const ASN1_OBJECT *oid = NULL;
	const unsigned char *pk = ASN1_STRING_get0_data(ks->key);
	int pklen = ASN1_STRING_length(ks->key), nid, curve = NID_undef, r;
	char txt[80] = "?";

	*pkey = NULL;
	X509_ALGOR_get0(&oid, NULL, NULL, ks->alg);
	if (pk == NULL || pklen <= 0)
		return rf_err_set(
		    RF_ERR_CSR_MALFORMED, "CSR has no public key");
	switch (nid = OBJ_obj2nid(oid)) {
	case NID_X9_62_id_ecPublicKey:
		r = ec_key(ks->alg, pk, pklen, pkey, &curve);
		break;
	case NID_rsaEncryption:
		r = rsa_key(ks->alg, pk, pklen, pkey);
		break;
	default:
		if (OBJ_obj2txt(txt, sizeof(txt), oid, 0) <= 0)
			snprintf(txt, sizeof(txt), "?");
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key type %s is not allowed: %s", txt, allowed_keys);
	}
	if (r != 0 || spki == NULL)
		return r;
	return spki_build(nid, curve, pk, pklen, spki, spkilen);
}

/*
 * The proof of possession's digest: SHA-256 or stronger (SHA-1 collisions
 * are practical; RFC 9155 deprecates it for TLS signatures). For
 * RSASSA-PSS the digest is in the parameters (RFC 4055 3.1), SHA-1 when
 * absent.
 */
static int
csr_sigalg_check(const X509_ALGOR *sigalg)
{
	const ASN1_OBJECT *oid = NULL;
	const void *pval = NULL;
	RSA_PSS_PARAMS *pss = NULL;
	int ptype = V_ASN1_UNDEF, nid, md = NID_undef, pk = NID_undef;
	char txt[80];

	X509_ALGOR_get0(&oid, &ptype, &pval, sigalg);
	nid = OBJ_obj2nid(oid);
	if (nid == NID_rsassaPss) {
		md = NID_sha1;
		if (ptype == V_ASN1_SEQUENCE &&
		    (pss = ASN1_item_unpack(
			 pval, ASN1_ITEM_rptr(RSA_PSS_PARAMS))) == NULL) {
			ERR_clear_error();
			return rf_err_set(RF_ERR_CSR_MALFORMED,
			    "CSR RSASSA-PSS parameters are malformed");
		}
		if (pss != NULL && pss->hashAlgorithm != NULL)
			md = OBJ_obj2nid(pss->hashAlgorithm->algorithm);
		RSA_PSS_PARAMS_free(pss);
	} else if (OBJ_find_sigid_algs(nid, &md, &pk) != 1) {
		md = NID_undef;
	}
	if (md == NID_sha256 || md == NID_sha384 || md == NID_sha512)
		return 0;
	if (md != NID_undef)
		snprintf(txt, sizeof(txt), "%s", OBJ_nid2sn(md));
	else if (OBJ_obj2txt(txt, sizeof(txt), oid, 0) <= 0)
		snprintf(txt, sizeof(txt), "?");
	return rf_err_set(RF_ERR_CSR_SIGNATURE,
	    "CSR is signed with %s: sign it with SHA-256 or stronger "
	    "(openssl req -sha256)",
	    txt);
}

/*
 * RFC 2985 5.4.2: requested extensions arrive in one extensionRequest
 * attribute (or Microsoft's older OID for it) whose one value is the
 * SEQUENCE OF Extension. *exts is NULL when there is none.
 */
static int
csr_extensions(
    const STACK_OF(X509_ATTRIBUTE) * attrs, STACK_OF(X509_EXTENSION) * *exts)
{
	static const int nids[] = {NID_ext_req, NID_ms_ext_req};
	const X509_ATTRIBUTE *at = NULL;
	const ASN1_TYPE *v;
	const unsigned char *p;
	size_t k;
	int i, len;

	*exts = NULL;
	for (k = 0; k < sizeof(nids) / sizeof(nids[0]); k++) {
		if ((i = X509at_get_attr_by_NID(attrs, nids[k], -1)) < 0)
			continue;
		if (at != NULL ||
		    X509at_get_attr_by_NID(attrs, nids[k], i) >= 0)
			return rf_err_set(RF_ERR_CSR_MALFORMED,
			    "CSR has more than one extensionRequest "
			    "attribute");
		at = X509at_get_attr(attrs, i);
	}
	if (at == NULL)
		return 0;
	if (X509_ATTRIBUTE_count(at) != 1 ||
	    (v = X509_ATTRIBUTE_get0_type((X509_ATTRIBUTE *)at, 0)) == NULL ||
	    v->type != V_ASN1_SEQUENCE)
		goto bad;
	p = ASN1_STRING_get0_data(v->value.sequence);
	len = ASN1_STRING_length(v->value.sequence);
	*exts = (STACK_OF(X509_EXTENSION) *)ASN1_item_d2i(
	    NULL, &p, len, ASN1_ITEM_rptr(X509_EXTENSIONS));
	if (*exts != NULL &&
	    p == ASN1_STRING_get0_data(v->value.sequence) + len)
		return 0;
	sk_X509_EXTENSION_pop_free(*exts, X509_EXTENSION_free);
	*exts = NULL;
bad:
	ERR_clear_error();
	return rf_err_set(RF_ERR_CSR_MALFORMED,
	    "CSR extensionRequest attribute is malformed");
}

/*
 * RFC 5280 4.2.1.9 (cA) and 4.2.1.12 (EKU): screened, never copied.
 */
static int
csr_ext_check(const STACK_OF(X509_ATTRIBUTE) * attrs, enum rf_profile profile)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext;
	BASIC_CONSTRAINTS *bc = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	char txt[80];
	int i, j, nid, want, r = RF_ERR_INTERNAL;

	want = profile == RF_PROFILE_CLIENT || profile == RF_PROFILE_CONNECTOR
	    ? NID_client_auth
	    : profile == RF_PROFILE_SERVER ? NID_server_auth
					   : NID_undef;
	if ((r = csr_extensions(attrs, &exts)) != 0 || exts == NULL)
		return r;
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		ext = sk_X509_EXTENSION_value(exts, i);
		nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (nid == NID_basic_constraints) {
			if ((bc = X509V3_EXT_d2i(ext)) == NULL) {
				r = rf_err_set(RF_ERR_CSR_MALFORMED,
				    "CSR basicConstraints is malformed");
				goto out;
			}
			if (bc->ca) {
				r = rf_err_set(RF_ERR_CSR_REQUEST,
				    "CSR requests CA:TRUE: a connection "
				    "certificate is never a CA");
				goto out;
			}
			BASIC_CONSTRAINTS_free(bc);
			bc = NULL;
		} else if (nid == NID_ext_key_usage) {
			if ((eku = X509V3_EXT_d2i(ext)) == NULL) {
				r = rf_err_set(RF_ERR_CSR_MALFORMED,
				    "CSR extendedKeyUsage is malformed");
				goto out;
			}
			for (j = 0; j < sk_ASN1_OBJECT_num(eku); j++) {
				ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, j);

				if (want != NID_undef && OBJ_obj2nid(o) == want)
					continue;
				if (OBJ_obj2txt(txt, sizeof(txt), o, 0) <= 0)
					snprintf(txt, sizeof(txt), "?");
				r = rf_err_set(RF_ERR_CSR_REQUEST,
				    "CSR requests extended key usage %s, which "
				    "the %s profile does not grant",
				    txt, rf_profile_name(profile));
				goto out;
			}
			EXTENDED_KEY_USAGE_free(eku);
			eku = NULL;
		}
	}
	r = 0;
out:
	BASIC_CONSTRAINTS_free(bc);
	EXTENDED_KEY_USAGE_free(eku);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return r;
}

int
rf_ca_csr_check(
    const uint8_t *csr, size_t len, enum rf_profile profile, EVP_PKEY **pub)
{
	return rf_ca_csr_parse(csr, len, profile, pub, NULL, NULL);
}

/* A CSR that passed every check but its proof of possession. */
struct rf_csr {
	CSR *req;
	EVP_PKEY *pkey; /* the request's key */
};

void
rf_csr_free(struct rf_csr *c)
{
	if (c == NULL)
		return;
	ASN1_item_free((ASN1_VALUE *)c->req, ASN1_ITEM_rptr(CSR));
	EVP_PKEY_free(c->pkey);
	free(c);
}

int
rf_ca_csr_open(const uint8_t *csr, size_t len, enum rf_profile profile,
    struct rf_csr **out, uint8_t **spkiout, size_t *spkilenout)
{
	uint8_t *pemder = NULL, *spki = NULL;
	const uint8_t *der = csr, *p;
	long derlen = (long)len;
	size_t i, spkilen = 0;
	struct rf_csr *c = NULL;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (spkiout != NULL) {
		*spkiout = NULL;
		*spkilenout = 0;
	}
	/* Bound the size before parsing anything. */
	if (len > RF_CSR_MAX)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "CSR is %zu bytes: the limit is %d", len, RF_CSR_MAX);
	if (csr == NULL || len == 0)
		return rf_err_set(RF_ERR_CSR_MALFORMED, "CSR is empty");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < len && isspace(csr[i]); i++)
		;
	if (len - i >= 11 && memcmp(csr + i, "-----BEGIN ", 11) == 0) {
		if ((r = csr_unpem(csr, len, &pemder, &derlen)) != 0)
			goto out;
		der = pemder;
	}
	p = der;
	if ((c->req = (CSR *)ASN1_item_d2i(
		 NULL, &p, derlen, ASN1_ITEM_rptr(CSR))) == NULL) {
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR is not a PKCS#10 request (PEM or DER): make one with "
		    "'openssl req -new'");
		goto out;
	}
	if (p != der + derlen) {
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR has %ld trailing bytes after the request",
		    (long)(der + derlen - p));
		goto out;
	}
	if ((r = csr_key_check(c->req->info->spki, &c->pkey,
		 spkiout != NULL ? &spki : NULL, &spkilen)) != 0 ||
	    (r = csr_sigalg_check(c->req->sigalg)) != 0 ||
	    (r = csr_ext_check(c->req->info->attrs, profile)) != 0)
		goto out;
	*out = c; /* owned by the caller */
	c = NULL;
	if (spkiout != NULL) {
		*spkiout = spki; /* owned by the caller */
		*spkilenout = spkilen;
		spki = NULL;
	}
	r = 0;
out:
	ERR_clear_error();
	free(spki);
	rf_csr_free(c);
	OPENSSL_free(pemder);
	return r;
}

const EVP_PKEY *
rf_ca_csr_key(const struct rf_csr *c)
{
	return c->pkey;
}

/* RFC 2986 section 3: proof of possession of the private key. */
int
rf_ca_csr_prove(const struct rf_csr *c)
{
	int v;

	v = ASN1_item_verify(ASN1_ITEM_rptr(CSR_INFO), c->req->sigalg,
	    c->req->sig, c->req->info, c->pkey);
	ERR_clear_error();
	if (v != 1)
		return rf_err_set(RF_ERR_CSR_SIGNATURE,
		    "CSR signature does not verify with its own public key "
		    "(%s)",
		    v == 0 ? "invalid signature" : "verify error");
	return 0;
}

int
rf_ca_csr_parse(const uint8_t *csr, size_t len, enum rf_profile profile,
    EVP_PKEY **pub, uint8_t **spki, size_t *spkilen)
{
	struct rf_csr *c = NULL;
	int r;

	if (pub != NULL)
		*pub = NULL;
	if ((r = rf_ca_csr_open(csr, len, profile, &c, spki, spkilen)) != 0)
		return r;
	if ((r = rf_ca_csr_prove(c)) != 0) {
		if (spki != NULL) {
			free(*spki);
			*spki = NULL;
			*spkilen = 0;
		}
	} else if (pub != NULL) {
		*pub = c->pkey; /* owned by the caller */
		c->pkey = NULL;
	}
	rf_csr_free(c);
	return r;
}
