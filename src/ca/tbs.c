/*
 * tbs.c: composing a certificate, for the CA certificates (ca.c), serve's
 * TLS certificate (tls.c) and issuance (issue.c): names, serials, times,
 * extensions, the TBSCertificate DER, and the signed certificate made
 * from it and checked.
 *
 * Certificates are never signed by OpenSSL. The TBSCertificate DER is
 * composed here from pieces OpenSSL encodes (names, INTEGERs, extensions,
 * the AlgorithmIdentifier of the signing key from rf_key_sigalg), goes to
 * rf_keys_sign() (audited, in the token) and rf_ca_assemble() wraps the
 * signature around it. Composing the DER avoids two problems of OpenSSL
 * 3.0's X509 setters: there is no setter for the TBS `signature` field, and
 * every X509_set_pubkey / d2i_X509 goes through the provider encoder and
 * decoder (over 100 us each), which would dominate issuance.
 *
 * Verification: every certificate's signature is verified over its TBS
 * with the issuer's public key (EVP_DigestVerify) before it is stored; the
 * CA certificates and the first certificate of every batch are also parsed
 * back as a relying party would (d2i_X509, nothing trailing, X509_verify).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/rf.h"
#include "keys/keys.h"

#define CA_SERIAL_BYTES 16
#define CA_SERIAL_TIME 6 /* of them the time in ms, first (ca_serial_new) */

/* X.501 name from (type, value) pairs, most significant first. */
X509_NAME *
ca_name_make(const char *o, const char *ou, const char *cn)
{
	X509_NAME *n;

	if ((n = X509_NAME_new()) == NULL)
		return NULL;
	if ((o != NULL &&
		X509_NAME_add_entry_by_NID(n, NID_organizationName,
		    MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0) != 1) ||
	    (ou != NULL &&
		X509_NAME_add_entry_by_NID(n, NID_organizationalUnitName,
		    MBSTRING_UTF8, (const unsigned char *)ou, -1, -1,
		    0) != 1) ||
	    (cn != NULL &&
		X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
		    (const unsigned char *)cn, -1, -1, 0) != 1)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

int
rf_ca_serial_str(const ASN1_INTEGER *serial, char out[41])
{
	BIGNUM *bn = NULL;
	char *hex = NULL, *p;
	size_t i;
	int r = RF_ERR_INTERNAL;

	out[0] = '\0';
	if (serial == NULL || (bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL)
		return rf_err_set(RF_ERR_MALFORMED, "serial is not an INTEGER");
	if (BN_is_negative(bn)) {
		r = rf_err_set(RF_ERR_MALFORMED, "serial is negative");
		goto out;
	}
	if ((hex = BN_bn2hex(bn)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/* BN_bn2hex prints whole bytes: drop leading zero digits. */
	for (p = hex; p[0] == '0' && p[1] != '\0'; p++)
		;
	if (strlen(p) > 40) {
		r = rf_err_set(
		    RF_ERR_MALFORMED, "serial longer than 20 octets");
		goto out;
	}
	for (i = 0; p[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[i] = '\0';
	r = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

/*
 * RFC 5280 4.1.2.2: a positive INTEGER of at most 20 octets; CA/Browser
 * Forum BR 7.1 asks for at least 64 bits from a CSPRNG. 128 bits read as
 * an unsigned number (so positive), never zero: the time in milliseconds
 * (48 bits), then 80 random bits. The time first, so that the store's
 * indexes by serial (certificates, OCSP responses, connections, incident
 * items) grow at one end. With 128 random bits each certificate of a
 * batch landed on a page of its own in each of them: at 36,000
 * connections, contain's reissue rewrote most of every such index at
 * each batch's commit.
 */
int
ca_serial_new(ASN1_INTEGER **out, char hex[41])
{
	uint8_t b[CA_SERIAL_BYTES];
	BIGNUM *bn = NULL;
	struct timespec ts;
	uint64_t ms;
	int i, r = RF_ERR_INTERNAL;

	*out = NULL;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		memset(&ts, 0, sizeof(ts)); /* random bits alone */
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (i = CA_SERIAL_TIME - 1; i >= 0; i--, ms >>= 8)
		b[i] = (uint8_t)ms;
	do {
		if (RAND_bytes(b + CA_SERIAL_TIME,
			(int)(sizeof(b) - CA_SERIAL_TIME)) != 1) {
			r = rf_err_set(RF_ERR_INTERNAL,
			    "random generator "
			    "failed: no serial");
			goto out;
		}
		BN_free(bn);
		if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
	} while (BN_is_zero(bn));
	if ((*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = rf_ca_serial_str(*out, hex)) != 0) {
		ASN1_INTEGER_free(*out);
		*out = NULL;
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(b, sizeof(b));
	BN_free(bn);
	return r;
}

void
ca_blob_clear(struct blob *b)
{
	OPENSSL_free(b->p);
	b->p = NULL;
	b->len = 0;
}

/* The result of an i2d into a blob (whose p was NULL): 0 or an error. */
int
ca_blob_set(struct blob *b, int len)
{
	if (len <= 0) {
		ca_blob_clear(b);
		return RF_ERR_INTERNAL;
	}
	b->len = (size_t)len;
	return 0;
}

int
ca_ext_blob(int nid, const char *value, struct blob *b)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
	int r;

	b->p = NULL;
	b->len = 0;
	if (e == NULL) {
		ERR_clear_error();
		return rf_err_set(RF_ERR_INTERNAL, "cannot encode extension %s",
		    OBJ_nid2sn(nid));
	}
	r = BLOB_I2D(i2d_X509_EXTENSION, e, b);
	X509_EXTENSION_free(e);
	return r;
}

/*
 * RFC 5280 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for dates through 2049,
 * GeneralizedTime (YYYYMMDDHHMMSSZ) from 2050; seconds, always Zulu.
 *   17 0d <13 chars>   or   18 0f <15 chars>
 */
static int
der_time(int64_t t, uint8_t out[17], size_t *len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char s[20];
	int y;

	if (gmtime_r(&tt, &tm) == NULL || (y = tm.tm_year + 1900) < 1950 ||
	    y > 9999)
		return rf_err_set(
		    RF_ERR_ARG, "time %lld out of range", (long long)t);
	if (strftime(s, sizeof(s), y < 2050 ? "%y%m%d%H%M%SZ" : "%Y%m%d%H%M%SZ",
		&tm) == 0)
		return RF_ERR_INTERNAL;
	*len = strlen(s);
	out[0] = y < 2050 ? 0x17 : 0x18;
	out[1] = (uint8_t)*len;
	memcpy(out + 2, s, *len);
	*len += 2;
	return 0;
}

int64_t
rf_ca_asn1_secs(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	return (int64_t)timegm(&tm);
}

/* The subjectPublicKey bits of a SubjectPublicKeyInfo DER. */
static int
spki_bits(const uint8_t *spki, size_t len, const uint8_t **pk, size_t *pklen)
{
	size_t hl, cl, ahl, acl, bhl, bcl;
	uint8_t tag;
	const uint8_t *c;

	if (rf_ca_der_hdr(spki, len, &tag, &hl, &cl) != 0 || tag != 0x30 ||
	    hl + cl != len)
		return RF_ERR_MALFORMED;
	c = spki + hl;
	if (rf_ca_der_hdr(c, cl, &tag, &ahl, &acl) != 0 || tag != 0x30 ||
	    rf_ca_der_hdr(c + ahl + acl, cl - ahl - acl, &tag, &bhl, &bcl) !=
		0 ||
	    tag != 0x03 || ahl + acl + bhl + bcl != cl || bcl < 2 ||
	    c[ahl + acl + bhl] != 0)
		return RF_ERR_MALFORMED;
	*pk = c + ahl + acl + bhl + 1;
	*pklen = bcl - 1;
	return 0;
}

/*
 * RFC 5280 4.2.1.2 method (1): the key identifier is the SHA-1 of the
 * subjectPublicKey BIT STRING value. Extension DER (31 bytes):
 *   30 1d  06 03 55 1d 0e  04 16  04 14 <20-byte keyid>
 */
int
ca_ski_ext(const uint8_t *spki, size_t len, uint8_t keyid[20], uint8_t ext[31])
{
	static const uint8_t head[11] = {
	    0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14};
	const uint8_t *pk;
	size_t pklen;

	if (spki_bits(spki, len, &pk, &pklen) != 0)
		return rf_err_set(RF_ERR_MALFORMED, "public key malformed");
	SHA1(pk, pklen, keyid);
	memcpy(ext, head, sizeof(head));
	memcpy(ext + sizeof(head), keyid, 20);
	return 0;
}

/*
 * RFC 5280 4.2.1.1: AuthorityKeyIdentifier with keyIdentifier [0] only,
 * the issuer's SKI. Extension DER (33 bytes):
 *   30 1f  06 03 55 1d 23  04 18  30 16 80 14 <20-byte keyid>
 */
void
ca_aki_ext(const uint8_t keyid[20], uint8_t ext[33])
{
	static const uint8_t head[13] = {0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d,
	    0x23, 0x04, 0x18, 0x30, 0x16, 0x80, 0x14};

	memcpy(ext, head, sizeof(head));
	memcpy(ext + sizeof(head), keyid, 20);
}

/*
 * RFC 5280 4.1:
 *   TBSCertificate ::= SEQUENCE {
 *     version         [0] EXPLICIT INTEGER 2 (v3)   a0 03 02 01 02
 *     serialNumber    INTEGER                       02 ..
 *     signature       AlgorithmIdentifier           30 ..
 *     issuer          Name                          30 ..
 *     validity        SEQUENCE { notBefore, notAfter }  30 L t1 t2
 *     subject         Name                          30 ..
 *     subjectPublicKeyInfo                          30 ..
 *     extensions      [3] EXPLICIT SEQUENCE OF Extension  a3 L 30 L ..
 *   }
 * (no issuerUniqueID / subjectUniqueID: 4.1.2.8 says CAs MUST NOT.)
 * *tbs is malloc'd.
 */
int
ca_tbs_der(const struct tbs_in *in, uint8_t **tbs, size_t *tbslen)
{
	static const uint8_t version[5] = {0xa0, 0x03, 0x02, 0x01, 0x02};
	uint8_t nb[17], na[17], *buf, *p;
	size_t nbl, nal, vl, el = 0, esl, etl, content, total, i;
	int r;

	*tbs = NULL;
	*tbslen = 0;
	if ((r = der_time(in->nb, nb, &nbl)) != 0 ||
	    (r = der_time(in->na, na, &nal)) != 0)
		return r;
	vl = nbl + nal;
	for (i = 0; i < in->nexts; i++)
		el += in->exts[i].len;
	esl = rf_ca_der_hdr_len(el) + el;
	etl = rf_ca_der_hdr_len(esl) + esl;
	content = sizeof(version) + in->serial.len + in->alg.len +
	    in->issuer.len + rf_ca_der_hdr_len(vl) + vl + in->subject.len +
	    in->spki.len + etl;
	total = rf_ca_der_hdr_len(content) + content;
	if ((buf = malloc(total)) == NULL)
		return RF_ERR_ALLOC;
	p = rf_ca_der_put_hdr(buf, 0x30, content);
	memcpy(p, version, sizeof(version));
	p += sizeof(version);
#define PUT(b)                                                                 \
	do {                                                                   \
		memcpy(p, (b).p, (b).len);                                     \
		p += (b).len;                                                  \
	} while (0)
	PUT(in->serial);
	PUT(in->alg);
	PUT(in->issuer);
	p = rf_ca_der_put_hdr(p, 0x30, vl);
	memcpy(p, nb, nbl);
	memcpy(p + nbl, na, nal);
	p += vl;
	PUT(in->subject);
	PUT(in->spki);
	p = rf_ca_der_put_hdr(p, 0xa3, esl);
	p = rf_ca_der_put_hdr(p, 0x30, el);
	for (i = 0; i < in->nexts; i++)
		PUT(in->exts[i]);
#undef PUT
	if ((size_t)(p - buf) != total) {
		free(buf);
		return rf_err_set(RF_ERR_INTERNAL, "TBS length mismatch");
	}
	*tbs = buf; /* owned by the caller */
	*tbslen = total;
	return 0;
}

/*
 * Wrap a signature around a TBS. keys has verified the signature over the
 * TBS with the issuer's public key before releasing it. With `full` (the
 * CA certificates, and the first certificate of every batch), the result
 * is also checked as a relying party would: it parses as one X.509
 * certificate with nothing after it, and X509_verify() returns 1, which
 * also proves the AlgorithmIdentifier written matches the signature.
 */
int
ca_cert_finish(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    const struct rf_sig *sig, EVP_PKEY *issuer_pub, int full, uint8_t **der,
    size_t *derlen)
{
	const uint8_t *p;
	X509 *x = NULL;
	int v, r;

	if ((r = rf_ca_assemble(
		 tbs, tbslen, alg, sig->sig, sig->len, der, derlen)) != 0 ||
	    !full)
		return r;
	p = *der;
	if ((x = d2i_X509(NULL, &p, (long)*derlen)) == NULL ||
	    p != *der + *derlen)
		r = rf_err_set(
		    RF_ERR_INTERNAL, "assembled certificate does not parse");
	else if ((v = X509_verify(x, issuer_pub)) != 1)
		r = rf_err_set(RF_ERR_SIGNATURE_INVALID,
		    "assembled certificate does not verify with the issuer "
		    "key (X509_verify %d)",
		    v);
	ERR_clear_error();
	X509_free(x);
	if (r != 0) {
		free(*der);
		*der = NULL;
		*derlen = 0;
	}
	return r;
}

/* SPKI DER of a key held in the token (via its public half). */
int
ca_key_spki(struct rf_key *key, struct blob *b)
{
	return rf_keys_spki_der(rf_key_public(key), &b->p, &b->len);
}

void
rf_ca_thumbprints(const uint8_t *der, size_t len, char x5t[32], char x5t256[48])
{
	uint8_t md1[SHA_DIGEST_LENGTH], md2[SHA256_DIGEST_LENGTH];

	/* RFC 7515 4.1.7 and 4.1.8: base64url of the DER's digest. */
	SHA1(der, len, md1);
	SHA256(der, len, md2);
	rf_b64url(md1, sizeof(md1), x5t);
	rf_b64url(md2, sizeof(md2), x5t256);
}
