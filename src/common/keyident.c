/*
 * keyident.c: public key identities (keyident.h). The key stays bytes:
 * nothing here builds an EVP_PKEY, so the cost is a small DER walk and
 * one SHA-256.
 */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/keyident.h"

typedef struct {
	X509_ALGOR *alg;
	ASN1_BIT_STRING *key;
} KI_SPKI;

/* RFC 8017 A.1.1 RSAPublicKey */
typedef struct {
	ASN1_INTEGER *n;
	ASN1_INTEGER *e;
} KI_RSA;

/* clang-format off */
ASN1_SEQUENCE(KI_SPKI) = {
	ASN1_SIMPLE(KI_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(KI_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(KI_SPKI)

ASN1_SEQUENCE(KI_RSA) = {
	ASN1_SIMPLE(KI_RSA, n, ASN1_INTEGER),
	ASN1_SIMPLE(KI_RSA, e, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(KI_RSA)
    /* clang-format on */

    static void ident_hash(
	const uint8_t *p, size_t len, char out[RF_KEY_IDENT_LEN + 1])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(p, len, md);
	rf_hex(md, sizeof(md), out);
}

/* The identity from the algorithm OID and the subjectPublicKey bits. */
static int
ident_from(const ASN1_OBJECT *oid, const uint8_t *pk, int pklen,
    char out[RF_KEY_IDENT_LEN + 1])
{
	const uint8_t *p = pk, *n;
	KI_RSA *rsa = NULL;
	int nlen, r = RF_ERR_MALFORMED;

	if (pk == NULL || pklen <= 0)
		return rf_err_set(RF_ERR_MALFORMED, "public key is empty");
	switch (OBJ_obj2nid(oid)) {
	case NID_rsaEncryption:
		rsa = (KI_RSA *)ASN1_item_d2i(
		    NULL, &p, pklen, ASN1_ITEM_rptr(KI_RSA));
		if (rsa == NULL || p != pk + pklen ||
		    ASN1_STRING_type(rsa->n) != V_ASN1_INTEGER ||
		    (n = ASN1_STRING_get0_data(rsa->n)) == NULL ||
		    (nlen = ASN1_STRING_length(rsa->n)) <= 0) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "RSA public key is not a valid RSAPublicKey");
			break;
		}
		/* OpenSSL keeps the magnitude without sign padding. */
		while (nlen > 1 && *n == 0) {
			n++;
			nlen--;
		}
		ident_hash(n, (size_t)nlen, out);
		r = 0;
		break;
	case NID_X9_62_id_ecPublicKey:
		if (pk[0] != 0x04 || pklen % 2 != 1) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "EC public key is not an uncompressed point");
			break;
		}
		ident_hash(pk, (size_t)pklen, out);
		r = 0;
		break;
	default:
		r = rf_err_set(RF_ERR_MALFORMED,
		    "public key is neither RSA nor EC: it has no identity");
		break;
	}
	ASN1_item_free((ASN1_VALUE *)rsa, ASN1_ITEM_rptr(KI_RSA));
	ERR_clear_error();
	return r;
}

int
rf_key_ident_spki(
    const uint8_t *spki, size_t len, char out[RF_KEY_IDENT_LEN + 1])
{
	const uint8_t *p = spki;
	const ASN1_OBJECT *oid = NULL;
	KI_SPKI *k = NULL;
	int r;

	*out = '\0';
	if (spki == NULL || len == 0 || len > 64 * 1024)
		return rf_err_set(RF_ERR_MALFORMED, "no public key");
	k = (KI_SPKI *)ASN1_item_d2i(
	    NULL, &p, (long)len, ASN1_ITEM_rptr(KI_SPKI));
	if (k == NULL || p != spki + len) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "public key is not a DER SubjectPublicKeyInfo");
		goto out;
	}
	X509_ALGOR_get0(&oid, NULL, NULL, k->alg);
	r = ident_from(oid, ASN1_STRING_get0_data(k->key),
	    ASN1_STRING_length(k->key), out);
out:
	ASN1_item_free((ASN1_VALUE *)k, ASN1_ITEM_rptr(KI_SPKI));
	ERR_clear_error();
	return r;
}

int
rf_key_ident_cert(
    const uint8_t *der, size_t len, char out[RF_KEY_IDENT_LEN + 1])
{
	const uint8_t *p = der;
	const unsigned char *pk = NULL;
	ASN1_OBJECT *oid = NULL;
	X509 *x = NULL;
	int pklen = 0, r;

	*out = '\0';
	if (der == NULL || len == 0 || len > 1024 * 1024)
		return rf_err_set(RF_ERR_MALFORMED, "no certificate");
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len ||
	    X509_PUBKEY_get0_param(
		&oid, &pk, &pklen, NULL, X509_get_X509_PUBKEY(x)) != 1) {
		r = rf_err_set(
		    RF_ERR_MALFORMED, "certificate is not DER X.509");
		goto out;
	}
	r = ident_from(oid, pk, pklen, out);
out:
	X509_free(x);
	ERR_clear_error();
	return r;
}
