/*
 * request.c: decoding OCSP requests, pure functions without state.
 *
 *   rf_ocsp_request_parse   DER OCSPRequest -> CertIDs (RFC 6960 4.1.1)
 *   rf_ocsp_get_decode      GET path -> DER (RFC 6960 A.1, RFC 5019 5)
 *   rf_ocsp_error_response  the unsigned error OCSPResponse (RFC 6960 4.2.1)
 *
 * Both decoders take untrusted input and are fuzzed (fuzz/fuzz_ocsp_*.c).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/ocsp.h>

#include "ocsp/ocsp.h"

/*
 * RFC 6960 4.2.1: OCSPResponse ::= SEQUENCE { responseStatus
 * OCSPResponseStatus, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }.
 * "If the value of responseStatus is one of the error conditions, the
 * responseBytes field is not set":
 *   30 03 0A 01 <status>
 */
void
rf_ocsp_error_response(
    enum rf_ocsp_resp_status status, uint8_t out[RF_OCSP_ERROR_LEN])
{
	out[0] = 0x30;
	out[1] = 0x03;
	out[2] = 0x0a;
	out[3] = 0x01;
	out[4] = (uint8_t)status;
}

static enum rf_ocsp_hash
hash_from_nid(int nid, size_t *len)
{
	switch (nid) {
	case NID_sha1:
		*len = 20;
		return RF_OCSP_HASH_SHA1;
	case NID_sha256:
		*len = 32;
		return RF_OCSP_HASH_SHA256;
	case NID_sha384:
		*len = 48;
		return RF_OCSP_HASH_SHA384;
	case NID_sha512:
		*len = 64;
		return RF_OCSP_HASH_SHA512;
	default:
		*len = 0;
		return RF_OCSP_HASH_OTHER;
	}
}

/*
 * The serial as the store writes it: lowercase hex of the INTEGER's value
 * without leading zeros. OpenSSL keeps the magnitude, big-endian, in the
 * string's data and the sign in its type. Serials of ours are positive and
 * at most 20 bytes (RFC 5280 4.1.2.2); anything else gets "".
 */
static void
serial_str(const ASN1_INTEGER *ai, char out[41])
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *d = ASN1_STRING_get0_data(ai);
	int dl = ASN1_STRING_length(ai), i;
	size_t o = 0;

	out[0] = '\0';
	if (ASN1_STRING_type(ai) != V_ASN1_INTEGER || dl < 0 || dl > 20)
		return;
	for (i = 0; i < dl && d[i] == 0; i++)
		;
	if (i == dl) {
		strcpy(out, "0");
		return;
	}
	if ((d[i] >> 4) != 0)
		out[o++] = hexd[d[i] >> 4];
	out[o++] = hexd[d[i] & 0x0f];
	for (i++; i < dl; i++) {
		out[o++] = hexd[d[i] >> 4];
		out[o++] = hexd[d[i] & 0x0f];
	}
	out[o] = '\0';
}

/*
 * RFC 6960 4.1.1:
 *   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest,
 *       optionalSignature [0] EXPLICIT Signature OPTIONAL }
 *   TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
 *       requestorName [1] EXPLICIT GeneralName OPTIONAL,
 *       requestList SEQUENCE OF Request,
 *       requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 *   Request ::= SEQUENCE { reqCert CertID,
 *       singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 *   CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier,
 *       issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING,
 *       serialNumber CertificateSerialNumber }
 * A signature on the request is not checked (RFC 5019 2.1: clients do not
 * sign, responders need not verify).
 */
int
rf_ocsp_request_parse(
    const uint8_t *der, size_t len, struct rf_ocsp_request *out)
{
	OCSP_REQUEST *req = NULL;
	const unsigned char *p = der;
	int i, cnt, r = RF_ERR_MALFORMED;

	memset(out, 0, sizeof(*out));
	if (der == NULL || len == 0)
		return rf_err_set(RF_ERR_MALFORMED, "empty OCSP request");
	if (len > RF_OCSP_MAX_REQUEST)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "OCSP request of %zu bytes exceeds %d", len,
		    RF_OCSP_MAX_REQUEST);
	if ((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL) {
		r = rf_err_set(RF_ERR_MALFORMED, "OCSP request is not DER");
		goto out;
	}
	if (p != der + len) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "OCSP request has %zu trailing bytes",
		    len - (size_t)(p - der));
		goto out;
	}
	cnt = OCSP_request_onereq_count(req);
	if (cnt <= 0 || cnt > RF_OCSP_MAX_IDS) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "OCSP request names %d certificates (1 to %d allowed)", cnt,
		    RF_OCSP_MAX_IDS);
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		struct rf_ocsp_certid *id = &out->ids[i];
		OCSP_ONEREQ *one = OCSP_request_onereq_get0(req, i);
		OCSP_CERTID *cid = one ? OCSP_onereq_get0_id(one) : NULL;
		ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
		ASN1_OBJECT *md = NULL;
		ASN1_INTEGER *serial = NULL;
		size_t want;
		int nl, kl;

		if (cid == NULL ||
		    OCSP_id_get0_info(&nh, &md, &kh, &serial, cid) != 1 ||
		    nh == NULL || kh == NULL || md == NULL || serial == NULL) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "OCSP request CertID %d incomplete", i);
			goto out;
		}
		id->hash = hash_from_nid(OBJ_obj2nid(md), &want);
		nl = ASN1_STRING_length(nh);
		kl = ASN1_STRING_length(kh);
		if (nl != kl || nl <= 0 || nl > 64 ||
		    (want != 0 && (size_t)nl != want)) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "OCSP request CertID %d: hash lengths %d/%d do "
			    "not fit its algorithm",
			    i, nl, kl);
			goto out;
		}
		id->hash_len = (size_t)nl;
		memcpy(id->name_hash, ASN1_STRING_get0_data(nh), (size_t)nl);
		memcpy(id->key_hash, ASN1_STRING_get0_data(kh), (size_t)kl);
		serial_str(serial, id->serial);
	}
	out->n = (size_t)cnt;
	out->has_nonce =
	    OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) >= 0;
	r = 0;
out:
	OCSP_REQUEST_free(req);
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Standard (RFC 4648 4) and URL-safe (5) alphabets; -1 elsewhere. */
static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * RFC 6960 A.1: "GET {url}/{url-encoding of base-64 encoding of the DER
 * encoding of the OCSPRequest}". Step 1 undoes the URL encoding (%XX; a
 * space, which some clients and proxies make of '+', is taken as '+');
 * step 2 decodes base64. '/' is an ordinary base64 character here, so
 * "//" decodes like any other pair: the caller must hand over the path
 * exactly as received, without merging slashes.
 */
int
rf_ocsp_get_decode(const char *path, size_t pathlen, uint8_t **der, size_t *len)
{
	char *txt = NULL;
	uint8_t *buf = NULL;
	size_t i, tl = 0, pad = 0, o = 0;
	uint32_t acc = 0;
	int bits = 0, r = RF_ERR_MALFORMED;

	*der = NULL;
	*len = 0;
	if (path == NULL || pathlen == 0)
		return rf_err_set(RF_ERR_MALFORMED, "empty OCSP GET request");
	if (pathlen > RF_OCSP_MAX_REQUEST)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "OCSP GET path of %zu bytes exceeds %d", pathlen,
		    RF_OCSP_MAX_REQUEST);
	if ((txt = malloc(pathlen)) == NULL)
		return RF_ERR_ALLOC;
	/* Step 1: percent-decoding. */
	for (i = 0; i < pathlen; i++) {
		int c = (unsigned char)path[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= pathlen) {
				r = rf_err_set(RF_ERR_MALFORMED,
				    "OCSP GET path: truncated %% escape");
				goto out;
			}
			hi = hexval((unsigned char)path[i + 1]);
			lo = hexval((unsigned char)path[i + 2]);
			if (hi < 0 || lo < 0) {
				r = rf_err_set(RF_ERR_MALFORMED,
				    "OCSP GET path: bad %% escape");
				goto out;
			}
			c = hi << 4 | lo;
			i += 2;
		} else if (c == ' ')
			c = '+';
		txt[tl++] = (char)c;
	}
	/* Step 2: base64, '=' padding optional but only at the end. */
	while (tl > 0 && txt[tl - 1] == '=' && pad < 2) {
		tl--;
		pad++;
	}
	if (tl == 0 || tl % 4 == 1 || (pad != 0 && (tl + pad) % 4 != 0)) {
		r = rf_err_set(
		    RF_ERR_MALFORMED, "OCSP GET path: base64 of a bad length");
		goto out;
	}
	if ((buf = malloc(tl / 4 * 3 + 3)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < tl; i++) {
		int v = b64val((unsigned char)txt[i]);

		if (v < 0) {
			r = rf_err_set(RF_ERR_MALFORMED,
			    "OCSP GET path: not base64 at offset %zu", i);
			goto out;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* RFC 4648 3.5: the pad bits of the last group are zero. */
	if ((acc & ((1u << bits) - 1)) != 0) {
		r = rf_err_set(
		    RF_ERR_MALFORMED, "OCSP GET path: non-canonical base64");
		goto out;
	}
	*der = buf;
	*len = o;
	buf = NULL; /* now owned by the caller */
	r = 0;
out:
	free(txt);
	free(buf);
	return r;
}
