/*
 * der.c: the few DER byte layouts the CA writes itself: the outer
 * SEQUENCE of a signed structure, the AlgorithmIdentifier inside a TBS,
 * and PEM armour. Everything else is encoded by OpenSSL.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/rf.h"

/* Largest TBS we sign: far above any certificate or CRL we build. */
#define DER_MAX (16u * 1024 * 1024)

/* Bytes needed for a definite length (X.690 8.1.3). */
static size_t
der_len_size(size_t n)
{
	size_t k = 0;

	if (n < 0x80)
		return 1;
	for (; n != 0; n >>= 8)
		k++;
	return 1 + k;
}

static uint8_t *
der_put_len(uint8_t *p, size_t n)
{
	size_t k = der_len_size(n), i;

	if (k == 1) {
		*p++ = (uint8_t)n;
		return p;
	}
	*p++ = (uint8_t)(0x80 | (k - 1));
	for (i = k - 1; i > 0; i--)
		*p++ = (uint8_t)(n >> (8 * (i - 1)));
	return p;
}

/*
 * Read one TLV header at p (len bytes available): single-byte tag, definite
 * length of at most 4 length octets, minimal (X.690 10.1, DER). The content
 * must fit in len.
 */
int
rf_ca_der_hdr(
    const uint8_t *p, size_t len, uint8_t *tag, size_t *hdrlen, size_t *clen)
{
	size_t n = 0, i, k;

	if (len < 2 || (p[0] & 0x1f) == 0x1f)
		return RF_ERR_MALFORMED;
	*tag = p[0];
	if (p[1] < 0x80) {
		n = p[1];
		*hdrlen = 2;
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > 4 || len < 2 + k || p[2] == 0)
			return RF_ERR_MALFORMED;
		for (i = 0; i < k; i++)
			n = (n << 8) | p[2 + i];
		if (n < 0x80)
			return RF_ERR_MALFORMED;
		*hdrlen = 2 + k;
	}
	if (n > len - *hdrlen)
		return RF_ERR_MALFORMED;
	*clen = n;
	return 0;
}

size_t
rf_ca_der_hdr_len(size_t clen)
{
	return 1 + der_len_size(clen);
}

uint8_t *
rf_ca_der_put_hdr(uint8_t *p, uint8_t tag, size_t clen)
{
	*p++ = tag;
	return der_put_len(p, clen);
}

/*
 * RFC 5280 4.1 and 5.1: a certificate and a CRL are
 *
 *   SEQUENCE {
 *     tbs                 TBSCertificate | TBSCertList,
 *     signatureAlgorithm  AlgorithmIdentifier,
 *     signatureValue      BIT STRING }
 *
 * Byte layout written here:
 *
 *   30 L(A+B+C)
 *     A: tbs, copied as is (30 ...)
 *     B: DER of alg         (30 ...)
 *     C: 03 L(1+siglen) 00 sig   (00: no unused bits)
 */
int
rf_ca_assemble(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    const uint8_t *sig, size_t siglen, uint8_t **der, size_t *derlen)
{
	uint8_t *algder = NULL, *buf = NULL, *p;
	size_t hl, cl, bitlen, content, total;
	uint8_t tag;
	int alglen, r = RF_ERR_INTERNAL;

	*der = NULL;
	*derlen = 0;
	if (tbs == NULL || alg == NULL || sig == NULL || siglen == 0 ||
	    tbslen > DER_MAX || siglen > DER_MAX)
		return rf_err_set(RF_ERR_ARG,
		    "assemble: missing or oversized "
		    "TBS or signature");
	if (rf_ca_der_hdr(tbs, tbslen, &tag, &hl, &cl) != 0 || tag != 0x30 ||
	    hl + cl != tbslen)
		return rf_err_set(RF_ERR_ARG,
		    "assemble: the TBS is not one "
		    "DER SEQUENCE");
	if ((alglen = i2d_X509_ALGOR(alg, &algder)) <= 0) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "assemble: cannot encode the "
		    "signature algorithm");
		goto out;
	}
	bitlen = 1 + siglen;
	content = tbslen + (size_t)alglen + 1 + der_len_size(bitlen) + bitlen;
	total = 1 + der_len_size(content) + content;
	if ((buf = malloc(total)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p = buf;
	*p++ = 0x30;
	p = der_put_len(p, content);
	memcpy(p, tbs, tbslen);
	p += tbslen;
	memcpy(p, algder, (size_t)alglen);
	p += alglen;
	*p++ = 0x03;
	p = der_put_len(p, bitlen);
	*p++ = 0x00;
	memcpy(p, sig, siglen);
	p += siglen;
	if ((size_t)(p - buf) != total) {
		r = rf_err_set(RF_ERR_INTERNAL, "assemble: length mismatch");
		goto out;
	}
	*der = buf; /* owned by the caller */
	*derlen = total;
	buf = NULL;
	r = 0;
out:
	free(buf);
	OPENSSL_free(algder);
	return r;
}

/*
 * Replace the signature AlgorithmIdentifier inside a TBS structure.
 *
 * RFC 5280 4.1.2.3 / 5.1.2.2: the `signature` field of TBSCertificate and
 * TBSCertList MUST hold the same algorithm identifier as the outer
 * signatureAlgorithm. It is the first universal SEQUENCE child of the TBS:
 *
 *   TBSCertificate ::= SEQUENCE {
 *     version [0] EXPLICIT (a0 ..), serialNumber INTEGER (02 ..),
 *     signature AlgorithmIdentifier (30 ..), issuer ... }
 *   TBSCertList ::= SEQUENCE {
 *     version INTEGER OPTIONAL (02 ..),
 *     signature AlgorithmIdentifier (30 ..), issuer ... }
 *
 * Output: 30 L(before + alg + after) before alg after.
 */
int
rf_ca_tbs_set_sigalg(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    uint8_t **out, size_t *outlen)
{
	uint8_t *algder = NULL, *buf = NULL, *p;
	const uint8_t *c, *end;
	size_t hl, cl, ehl, ecl, before, after, content, total;
	uint8_t tag;
	int alglen, r = RF_ERR_INTERNAL, i;

	*out = NULL;
	*outlen = 0;
	if (tbslen > DER_MAX ||
	    rf_ca_der_hdr(tbs, tbslen, &tag, &hl, &cl) != 0 || tag != 0x30 ||
	    hl + cl != tbslen)
		return rf_err_set(RF_ERR_ARG, "TBS is not one DER SEQUENCE");
	c = tbs + hl;
	end = tbs + tbslen;
	/* At most three children precede the algorithm (version, serial). */
	for (i = 0; i < 3; i++) {
		if (rf_ca_der_hdr(c, (size_t)(end - c), &tag, &ehl, &ecl) != 0)
			return rf_err_set(RF_ERR_ARG, "TBS child malformed");
		if (tag == 0x30)
			break;
		c += ehl + ecl;
	}
	if (tag != 0x30)
		return rf_err_set(RF_ERR_ARG, "TBS has no AlgorithmIdentifier");
	before = (size_t)(c - (tbs + hl));
	after = (size_t)(end - (c + ehl + ecl));
	if ((alglen = i2d_X509_ALGOR(alg, &algder)) <= 0) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "cannot encode the signature "
		    "algorithm");
		goto out;
	}
	content = before + (size_t)alglen + after;
	total = 1 + der_len_size(content) + content;
	if ((buf = malloc(total)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p = buf;
	*p++ = 0x30;
	p = der_put_len(p, content);
	memcpy(p, tbs + hl, before);
	p += before;
	memcpy(p, algder, (size_t)alglen);
	p += alglen;
	memcpy(p, c + ehl + ecl, after);
	*out = buf; /* owned by the caller */
	*outlen = total;
	buf = NULL;
	r = 0;
out:
	free(buf);
	OPENSSL_free(algder);
	return r;
}

/*
 * RFC 7468 section 2: "-----BEGIN CERTIFICATE-----", base64 lines of 64
 * characters, "-----END CERTIFICATE-----", each line ending in LF.
 */
size_t
rf_ca_pem_len(size_t derlen)
{
	size_t b64 = 4 * ((derlen + 2) / 3);

	return 28 + b64 + (b64 + 63) / 64 + 26;
}

size_t
rf_ca_pem_write(const uint8_t *der, size_t derlen, char *out)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
	static const char end[] = "-----END CERTIFICATE-----\n";
	char *p = out;
	size_t off, n;

	memcpy(p, begin, sizeof(begin) - 1);
	p += sizeof(begin) - 1;
	for (off = 0; off < derlen; off += 48) {
		n = derlen - off < 48 ? derlen - off : 48;
		p += EVP_EncodeBlock((unsigned char *)p, der + off, (int)n);
		*p++ = '\n';
	}
	memcpy(p, end, sizeof(end) - 1);
	p += sizeof(end) - 1;
	*p = '\0';
	return (size_t)(p - out);
}
