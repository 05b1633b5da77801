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

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/rf.h"

static const char allowed_keys[] =
    "allowed keys are EC P-256, EC P-384, RSA 2048 and RSA 3072";

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
 * The allow-list: EC P-256 / P-384 (named curves, uncompressed points),
 * RSA 2048 / 3072. *spki receives the canonical SubjectPublicKeyInfo, so
 * that one key has one encoding (and one key id) whatever the CSR used.
 */
static int
csr_key_check(X509_REQ *req, EVP_PKEY **pkey, uint8_t **spki, size_t *spkilen)
{
	X509_PUBKEY *xpk;
	ASN1_OBJECT *oid = NULL;
	const unsigned char *pk = NULL;
	char txt[80] = "?", group[64];
	int bits, nid, pklen = 0;

	*pkey = NULL;
	if ((xpk = X509_REQ_get_X509_PUBKEY(req)) == NULL ||
	    X509_PUBKEY_get0_param(&oid, &pk, &pklen, NULL, xpk) != 1 ||
	    pk == NULL || pklen <= 0)
		return rf_err_set(
		    RF_ERR_CSR_MALFORMED, "CSR has no public key");
	if (OBJ_obj2txt(txt, sizeof(txt), oid, 0) <= 0)
		snprintf(txt, sizeof(txt), "?");
	if ((*pkey = X509_REQ_get_pubkey(req)) == NULL) {
		ERR_clear_error();
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key type %s is not supported: %s", txt, allowed_keys);
	}
	switch (EVP_PKEY_get_base_id(*pkey)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(*pkey,
			OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
			NULL) != 1) {
			ERR_clear_error();
			return rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "CSR key is EC with explicit curve parameters: %s",
			    allowed_keys);
		}
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
			return rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "CSR key is EC on curve %s: %s", group,
			    allowed_keys);
		/* SEC 1 2.3.3: 04 || X || Y. */
		if (pklen != (nid == NID_secp384r1 ? 97 : 65) || pk[0] != 0x04)
			return rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "CSR key is a compressed EC point: send it "
			    "uncompressed (RFC 5480 2.2)");
		return spki == NULL ? 0
				    : spki_build(NID_X9_62_id_ecPublicKey, nid,
					  pk, pklen, spki, spkilen);
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(*pkey);
		if (bits != 2048 && bits != 3072)
			return rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "CSR key is RSA-%d: %s", bits, allowed_keys);
		return spki == NULL ? 0
				    : spki_build(NID_rsaEncryption, NID_undef,
					  pk, pklen, spki, spkilen);
	default:
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "CSR key type %s is not allowed: %s", txt, allowed_keys);
	}
}

/*
 * RFC 2986 section 4.1 / RFC 2985 5.4.2: requested extensions arrive as an
 * extensionRequest attribute. RFC 5280 4.2.1.9 (cA) and 4.2.1.12 (EKU).
 */
static int
csr_ext_check(X509_REQ *req, enum rf_profile profile)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext;
	BASIC_CONSTRAINTS *bc = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	char txt[80];
	int i, j, nid, want, r = RF_ERR_INTERNAL;

	want = profile == RF_PROFILE_CLIENT ? NID_client_auth
	    : profile == RF_PROFILE_SERVER  ? NID_server_auth
					    : NID_undef;
	exts = X509_REQ_get_extensions(req);
	if (exts == NULL) {
		ERR_clear_error();
		if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0)
			return rf_err_set(RF_ERR_CSR_MALFORMED,
			    "CSR extensionRequest attribute is malformed");
		return 0;
	}
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

int
rf_ca_csr_parse(const uint8_t *csr, size_t len, enum rf_profile profile,
    EVP_PKEY **pub, uint8_t **spkiout, size_t *spkilenout)
{
	uint8_t *pemder = NULL, *spki = NULL;
	const uint8_t *der = csr, *p;
	long derlen = (long)len;
	size_t i, spkilen = 0;
	X509_REQ *req = NULL;
	EVP_PKEY *pkey = NULL;
	int r = RF_ERR_INTERNAL, v;

	if (pub != NULL)
		*pub = NULL;
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
	for (i = 0; i < len && isspace(csr[i]); i++)
		;
	if (len - i >= 11 && memcmp(csr + i, "-----BEGIN ", 11) == 0) {
		if ((r = csr_unpem(csr, len, &pemder, &derlen)) != 0)
			goto out;
		der = pemder;
	}
	p = der;
	if ((req = d2i_X509_REQ(NULL, &p, derlen)) == NULL) {
		r = rf_err_set(
		    RF_ERR_CSR_MALFORMED, "CSR is not a DER PKCS#10 request");
		goto out;
	}
	if (p != der + derlen) {
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "CSR has %ld trailing bytes after the request",
		    (long)(der + derlen - p));
		goto out;
	}
	if ((r = csr_key_check(
		 req, &pkey, spkiout != NULL ? &spki : NULL, &spkilen)) != 0)
		goto out;
	/* RFC 2986 section 3: proof of possession of the private key. */
	if ((v = X509_REQ_verify(req, pkey)) != 1) {
		r = rf_err_set(RF_ERR_CSR_SIGNATURE,
		    "CSR signature does not verify with its own public key "
		    "(%s)",
		    v == 0 ? "invalid signature" : "verify error");
		goto out;
	}
	if ((r = csr_ext_check(req, profile)) != 0)
		goto out;
	if (pub != NULL) {
		*pub = pkey; /* owned by the caller */
		pkey = NULL;
	}
	if (spkiout != NULL) {
		*spkiout = spki; /* owned by the caller */
		*spkilenout = spkilen;
		spki = NULL;
	}
	r = 0;
out:
	ERR_clear_error();
	free(spki);
	EVP_PKEY_free(pkey);
	X509_REQ_free(req);
	OPENSSL_free(pemder);
	return r;
}
