/*
 * signer.c: building and signing OCSP responses for one issuer with the
 * delegated OCSP key, and storing the pre-signed ones.
 *
 * OpenSSL builds the pieces (CertID, SingleResponse, ResponderID); the
 * signature comes from rf_keys_sign (audited, verified); the signed
 * structures are assembled here, byte by byte, as laid out below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "ocsp/ocsp.h"
#include "store/store.h"

struct rf_ocsp_signer {
	struct rf_store *st;  /* borrowed */
	struct rf_keys *keys; /* borrowed */
	struct rf_key *key;   /* borrowed */
	X509 *cert;	      /* borrowed: delegated signer */
	X509 *issuer;	      /* borrowed */
	char issuer_name[64];
	int validity;	 /* seconds, cfg->ocsp_validity */
	uint8_t *respid; /* ResponderID DER (byKey) */
	size_t respidlen;
	X509_ALGOR *sigalg;
	uint8_t *sigalg_der;
	size_t sigalg_len;
	uint8_t *cert_der; /* the signer certificate */
	size_t cert_len;
};

/* A growing DER buffer. */
struct dbuf {
	uint8_t *p;
	size_t len, cap;
};

static int
db_put(struct dbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->len + n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return RF_ERR_ALLOC;
		b->p = np;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

/* Identifier octet and definite length (X.690 8.1.2, 8.1.3). */
static int
db_hdr(struct dbuf *b, uint8_t tag, size_t n)
{
	uint8_t h[6];
	size_t hl = 0;

	if (n > 0xffffff)
		return RF_ERR_TOO_LARGE;
	h[hl++] = tag;
	if (n < 0x80)
		h[hl++] = (uint8_t)n;
	else if (n <= 0xff) {
		h[hl++] = 0x81;
		h[hl++] = (uint8_t)n;
	} else if (n <= 0xffff) {
		h[hl++] = 0x82;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = 0x83;
		h[hl++] = (uint8_t)(n >> 16);
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	}
	return db_put(b, h, hl);
}

static size_t
hdr_len(size_t n)
{
	return n < 0x80 ? 2 : n <= 0xff ? 3 : n <= 0xffff ? 4 : 5;
}

static void
db_free(struct dbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

const char *
rf_ocsp_signer_issuer(const struct rf_ocsp_signer *s)
{
	return s->issuer_name;
}

void
rf_ocsp_signer_free(struct rf_ocsp_signer *s)
{
	if (s == NULL)
		return;
	free(s->respid);
	X509_ALGOR_free(s->sigalg);
	free(s->sigalg_der);
	free(s->cert_der);
	free(s);
}

/* i2d into a malloc'd buffer. */
#define I2D_ALLOC(fn, obj, outp, outlen)                                       \
	do {                                                                   \
		int l_ = fn(obj, NULL);                                        \
		unsigned char *q_;                                             \
		*(outp) = NULL;                                                \
		if (l_ > 0 && (*(outp) = malloc((size_t)l_)) != NULL) {        \
			q_ = *(outp);                                          \
			if (fn(obj, &q_) != l_) {                              \
				free(*(outp));                                 \
				*(outp) = NULL;                                \
			}                                                      \
		}                                                              \
		*(outlen) = *(outp) ? (size_t)l_ : 0;                          \
	} while (0)

int
rf_ocsp_signer_new(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_key *signer_key, X509 *signer_cert,
    X509 *issuer_cert, const char *issuer_name, struct rf_ocsp_signer **out)
{
	struct rf_ocsp_signer *s = NULL;
	OCSP_RESPID *rid = NULL;
	EVP_PKEY *pub;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (cfg == NULL || st == NULL || keys == NULL || signer_key == NULL ||
	    signer_cert == NULL || issuer_cert == NULL || issuer_name == NULL ||
	    *issuer_name == '\0' ||
	    strlen(issuer_name) >= sizeof(s->issuer_name))
		return rf_err_set(RF_ERR_ARG, "OCSP signer: missing argument");
	if (cfg->ocsp_validity <= 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "ocsp_validity must be a positive number of seconds");
	/* The key must be the certificate's. */
	pub = rf_key_public(signer_key);
	if (pub == NULL || EVP_PKEY_eq(X509_get0_pubkey(signer_cert), pub) != 1)
		return rf_err_set(RF_ERR_ARG,
		    "OCSP signer certificate does "
		    "not match key %s",
		    rf_key_id(signer_key));
	/*
	 * RFC 6960 4.2.2.2: a delegated responder's certificate is issued
	 * by the CA itself and carries id-kp-OCSPSigning.
	 */
	if (X509_cmp(signer_cert, issuer_cert) != 0) {
		if (X509_check_issued(issuer_cert, signer_cert) != X509_V_OK)
			return rf_err_set(RF_ERR_ARG,
			    "OCSP signer certificate "
			    "is not issued by the %s CA",
			    issuer_name);
		if ((X509_get_extended_key_usage(signer_cert) &
			XKU_OCSP_SIGN) == 0 ||
		    (X509_get_extension_flags(signer_cert) & EXFLAG_XKUSAGE) ==
			0)
			return rf_err_set(RF_ERR_ARG,
			    "OCSP signer certificate "
			    "lacks id-kp-OCSPSigning");
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return RF_ERR_ALLOC;
	s->st = st;
	s->keys = keys;
	s->key = signer_key;
	s->cert = signer_cert;
	s->issuer = issuer_cert;
	s->validity = cfg->ocsp_validity;
	snprintf(s->issuer_name, sizeof(s->issuer_name), "%s", issuer_name);
	/*
	 * RFC 6960 4.2.1: ResponderID byKey [2] KeyHash, "the SHA-1 hash of
	 * the responder's public key" (the BIT STRING value, excluding tag,
	 * length and unused bits); RFC 5019 2.2.3 prefers it.
	 */
	if ((rid = OCSP_RESPID_new()) == NULL ||
	    OCSP_RESPID_set_by_key(rid, signer_cert) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "OCSP ResponderID failed");
		goto out;
	}
	I2D_ALLOC(i2d_OCSP_RESPID, rid, &s->respid, &s->respidlen);
	if (s->respid == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = rf_key_sigalg(signer_key, RF_SIG_DEFAULT, &s->sigalg)) != 0)
		goto out;
	I2D_ALLOC(i2d_X509_ALGOR, s->sigalg, &s->sigalg_der, &s->sigalg_len);
	I2D_ALLOC(i2d_X509, signer_cert, &s->cert_der, &s->cert_len);
	if (s->sigalg_der == NULL || s->cert_der == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	*out = s;
	s = NULL; /* now owned by the caller */
	r = 0;
out:
	OCSP_RESPID_free(rid);
	rf_ocsp_signer_free(s);
	return r;
}

/* Canonical serial: 1-40 lowercase hex digits, no leading zero. */
static int
serial_check(const char *serial)
{
	size_t i, n;

	if (serial == NULL || (n = strlen(serial)) == 0 || n > 40 ||
	    (serial[0] == '0' && n > 1))
		return RF_ERR_ARG;
	for (i = 0; i < n; i++)
		if (!((serial[i] >= '0' && serial[i] <= '9') ||
			(serial[i] >= 'a' && serial[i] <= 'f')))
			return RF_ERR_ARG;
	return 0;
}

static const EVP_MD *
hash_md(enum rf_ocsp_hash h)
{
	switch (h) {
	case RF_OCSP_HASH_SHA1:
		return EVP_sha1();
	case RF_OCSP_HASH_SHA256:
		return EVP_sha256();
	case RF_OCSP_HASH_SHA384:
		return EVP_sha384();
	case RF_OCSP_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/*
 * RFC 6960 4.1.1 CertID for serial under this issuer, hashed with md:
 * issuerNameHash over the DER of the issuer's subject, issuerKeyHash over
 * the value of its subjectPublicKey BIT STRING.
 */
static OCSP_CERTID *
certid_new(struct rf_ocsp_signer *s, const EVP_MD *md, const char *serial)
{
	ASN1_INTEGER *ai = NULL;
	OCSP_CERTID *cid = NULL;
	BIGNUM *bn = NULL;

	if (BN_hex2bn(&bn, serial) == (int)strlen(serial) &&
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL)
		cid = OCSP_cert_id_new(md, X509_get_subject_name(s->issuer),
		    X509_get0_pubkey_bitstr(s->issuer), ai);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return cid;
}

/*
 * RFC 6960 4.2.1:
 *   SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus,
 *       thisUpdate GeneralizedTime,
 *       nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL,
 *       singleExtensions [1] EXPLICIT Extensions OPTIONAL }
 *   CertStatus ::= CHOICE { good [0] IMPLICIT NULL,
 *       revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT UnknownInfo }
 *   RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime,
 *       revocationReason [0] EXPLICIT CRLReason OPTIONAL }
 * Built by OpenSSL on a scratch BasicOCSPResponse, appended to b as DER.
 */
static int
single_put(struct rf_ocsp_signer *s, OCSP_BASICRESP *scratch, OCSP_CERTID *cid,
    const struct rf_ocsp_status *st, int64_t now, struct dbuf *b)
{
	ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL, *rt = NULL;
	OCSP_SINGLERESP *one;
	uint8_t *der = NULL;
	size_t dl = 0;
	int r = RF_ERR_INTERNAL;

	/* RFC 5280 5.3.1: 7 is unused; removeFromCRL (8) is for delta CRLs. */
	if (st->revoked &&
	    (st->reason < -1 || st->reason > 10 || st->reason == 7 ||
		st->reason == 8)) {
		r = rf_err_set(RF_ERR_ARG, "serial %s: CRLReason %d invalid",
		    st->serial, st->reason);
		goto out;
	}
	if ((tu = ASN1_GENERALIZEDTIME_set(NULL, (time_t)now)) == NULL ||
	    (nu = ASN1_GENERALIZEDTIME_set(
		 NULL, (time_t)(now + s->validity))) == NULL ||
	    (st->revoked &&
		(rt = ASN1_GENERALIZEDTIME_set(NULL, (time_t)st->revoked_at)) ==
		    NULL)) {
		r = rf_err_set(RF_ERR_INTERNAL, "OCSP time out of range");
		goto out;
	}
	one = OCSP_basic_add1_status(scratch, cid,
	    st->revoked ? V_OCSP_CERTSTATUS_REVOKED : V_OCSP_CERTSTATUS_GOOD,
	    st->revoked ? st->reason : OCSP_REVOKED_STATUS_NOSTATUS, rt, tu,
	    nu);
	if (one == NULL) {
		r = rf_err_set(RF_ERR_INTERNAL, "OCSP SingleResponse failed");
		goto out;
	}
	I2D_ALLOC(i2d_OCSP_SINGLERESP, one, &der, &dl);
	if (der == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	r = db_put(b, der, dl);
out:
	free(der);
	ASN1_GENERALIZEDTIME_free(tu);
	ASN1_GENERALIZEDTIME_free(nu);
	ASN1_GENERALIZEDTIME_free(rt);
	return r;
}

/*
 * RFC 6960 4.2.1:
 *   ResponseData ::= SEQUENCE {
 *       version [0] EXPLICIT Version DEFAULT v1,   -- omitted (v1)
 *       responderID ResponderID,                   -- byKey
 *       producedAt GeneralizedTime,
 *       responses SEQUENCE OF SingleResponse,
 *       responseExtensions [1] EXPLICIT Extensions OPTIONAL } -- none
 * Bytes:
 *   30 L
 *     A2 16 04 14 <SHA-1 of the signer's key, 20 bytes>
 *     18 0F YYYYMMDDHHMMSSZ
 *     30 L <SingleResponse>...
 */
static int
tbs_build(struct rf_ocsp_signer *s, const struct dbuf *singles, int64_t now,
    struct dbuf *tbs)
{
	char when[16];
	struct tm tm;
	time_t t = (time_t)now;
	size_t inner;
	int r;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y%m%d%H%M%SZ", &tm) != 15)
		return rf_err_set(RF_ERR_INTERNAL, "OCSP producedAt failed");
	inner = s->respidlen + 2 + 15 + hdr_len(singles->len) + singles->len;
	if ((r = db_hdr(tbs, 0x30, inner)) != 0 ||
	    (r = db_put(tbs, s->respid, s->respidlen)) != 0 ||
	    (r = db_hdr(tbs, 0x18, 15)) != 0 ||
	    (r = db_put(tbs, when, 15)) != 0 ||
	    (r = db_hdr(tbs, 0x30, singles->len)) != 0 ||
	    (r = db_put(tbs, singles->p, singles->len)) != 0)
		return r;
	return 0;
}

/* id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1 (RFC 6960 4.2.1). */
static const uint8_t oid_ocsp_basic[] = {
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};

/*
 * RFC 6960 4.2.1:
 *   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
 *       responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
 *   ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER,
 *       response OCTET STRING }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
 *       signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
 *       certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 * Bytes:
 *   30 L                                  OCSPResponse
 *     0A 01 00                              successful
 *     A0 L                                  [0] EXPLICIT
 *       30 L                                  ResponseBytes
 *         06 09 2B 06 01 05 05 07 30 01 01      id-pkix-ocsp-basic
 *         04 L                                  OCTET STRING
 *           30 L                                  BasicOCSPResponse
 *             <ResponseData>                        tbsResponseData
 *             <AlgorithmIdentifier>                 rf_key_sigalg
 *             03 L 00 <signature>                   no unused bits
 *             A0 L 30 L <signer certificate>        certs
 */
static int
response_assemble(struct rf_ocsp_signer *s, const struct dbuf *tbs,
    const struct rf_sig *sig, struct dbuf *out)
{
	size_t certs_in = hdr_len(s->cert_len) + s->cert_len;
	size_t basic_in = tbs->len + s->sigalg_len + hdr_len(sig->len + 1) +
	    sig->len + 1 + hdr_len(certs_in) + certs_in;
	size_t basic = hdr_len(basic_in) + basic_in;
	size_t rb_in = sizeof(oid_ocsp_basic) + hdr_len(basic) + basic;
	size_t rb = hdr_len(rb_in) + rb_in;
	size_t top_in = 3 + hdr_len(rb) + rb;
	static const uint8_t zero = 0, ok[] = {0x0a, 0x01, 0x00};
	int r;

	if ((r = db_hdr(out, 0x30, top_in)) != 0 ||
	    (r = db_put(out, ok, sizeof(ok))) != 0 ||
	    (r = db_hdr(out, 0xa0, rb)) != 0 ||
	    (r = db_hdr(out, 0x30, rb_in)) != 0 ||
	    (r = db_put(out, oid_ocsp_basic, sizeof(oid_ocsp_basic))) != 0 ||
	    (r = db_hdr(out, 0x04, basic)) != 0 ||
	    (r = db_hdr(out, 0x30, basic_in)) != 0 ||
	    (r = db_put(out, tbs->p, tbs->len)) != 0 ||
	    (r = db_put(out, s->sigalg_der, s->sigalg_len)) != 0 ||
	    (r = db_hdr(out, 0x03, sig->len + 1)) != 0 ||
	    (r = db_put(out, &zero, 1)) != 0 ||
	    (r = db_put(out, sig->sig, sig->len)) != 0 ||
	    (r = db_hdr(out, 0xa0, certs_in)) != 0 ||
	    (r = db_hdr(out, 0x30, s->cert_len)) != 0 ||
	    (r = db_put(out, s->cert_der, s->cert_len)) != 0)
		return r;
	/* What we publish must parse, entirely, as an OCSPResponse. */
	{
		const unsigned char *p = out->p;
		OCSP_RESPONSE *resp =
		    d2i_OCSP_RESPONSE(NULL, &p, (long)out->len);
		int good = resp != NULL && p == out->p + out->len;

		OCSP_RESPONSE_free(resp);
		if (!good)
			return rf_err_set(RF_ERR_INTERNAL,
			    "assembled OCSP response does not parse");
	}
	if (out->len > RF_OCSP_MAX_RESPONSE)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "OCSP response of %zu bytes exceeds %d", out->len,
		    RF_OCSP_MAX_RESPONSE);
	return 0;
}

/*
 * *current = 1 when the store still holds the status st was signed with
 * (or has no certificate of that serial), 0 when it has changed.
 */
static int
status_current(
    struct rf_store *store, const struct rf_ocsp_status *st, int *current)
{
	struct rf_cert_rec c;
	int r;

	*current = 1;
	memset(&c, 0, sizeof(c));
	if ((r = rf_store_cert_get(store, st->serial, &c)) != 0) {
		if (r != RF_ERR_NOT_FOUND)
			return r;
		rf_err_clear();
		return 0;
	}
	if (c.revoked != st->revoked ||
	    (st->revoked && c.reason != st->reason &&
		!(st->reason == -1 && c.reason <= 0)))
		*current = 0;
	rf_cert_rec_clear(&c);
	return 0;
}

/* Responses being pre-signed: their TBS, sign requests and results. */
struct rf_ocsp_presigned {
	struct rf_ocsp_signer *s;
	int64_t now;
	size_t n;
	struct rf_ocsp_status *sts; /* serials copied into serial[] */
	char (*serial)[41];
	struct dbuf *tbs, *resp;
	struct rf_sign_req *reqs;
	int done; /* rf_ocsp_presign_finish assembled every response */
};

void
rf_ocsp_presigned_free(struct rf_ocsp_presigned *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n && p->tbs != NULL && p->resp != NULL; i++) {
		db_free(&p->tbs[i]);
		db_free(&p->resp[i]);
	}
	free(p->sts);
	free(p->serial);
	free(p->tbs);
	free(p->resp);
	free(p->reqs);
	free(p);
}

/* The TBS of n responses with thisUpdate = now, and their sign requests. */
static int
prepare_at(struct rf_ocsp_signer *s, const struct rf_ocsp_status *sts, size_t n,
    int64_t now, struct rf_ocsp_presigned **out)
{
	struct rf_ocsp_presigned *p = NULL;
	struct dbuf singles = {0};
	OCSP_BASICRESP *scratch = NULL;
	OCSP_CERTID *cid = NULL;
	size_t i;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (s == NULL || sts == NULL || n == 0)
		return rf_err_set(RF_ERR_ARG, "OCSP presign: no statuses");
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->sts = calloc(n, sizeof(*p->sts))) == NULL ||
	    (p->serial = calloc(n, sizeof(*p->serial))) == NULL ||
	    (p->tbs = calloc(n, sizeof(*p->tbs))) == NULL ||
	    (p->resp = calloc(n, sizeof(*p->resp))) == NULL ||
	    (p->reqs = calloc(n, sizeof(*p->reqs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p->s = s;
	p->now = now;
	p->n = n;
	for (i = 0; i < n; i++) {
		if (serial_check(sts[i].serial) != 0) {
			r = rf_err_set(RF_ERR_ARG,
			    "OCSP presign: serial '%s' "
			    "is not lowercase hex without leading zeros",
			    sts[i].serial ? sts[i].serial : "(null)");
			goto out;
		}
		snprintf(
		    p->serial[i], sizeof(p->serial[i]), "%s", sts[i].serial);
		p->sts[i] = sts[i];
		p->sts[i].serial = p->serial[i];
		OCSP_BASICRESP_free(scratch);
		singles.len = 0;
		if ((scratch = OCSP_BASICRESP_new()) == NULL ||
		    (cid = certid_new(s, EVP_sha1(), sts[i].serial)) == NULL) {
			r = rf_err_set(RF_ERR_INTERNAL, "OCSP CertID failed");
			goto out;
		}
		if ((r = single_put(s, scratch, cid, &sts[i], now, &singles)) !=
			0 ||
		    (r = tbs_build(s, &singles, now, &p->tbs[i])) != 0)
			goto out;
		OCSP_CERTID_free(cid);
		cid = NULL;
		p->reqs[i].msg = p->tbs[i].p;
		p->reqs[i].msglen = p->tbs[i].len;
		p->reqs[i].scheme = RF_SIG_DEFAULT;
		p->reqs[i].what = "ocsp";
		p->reqs[i].ref = p->serial[i];
		p->reqs[i].tenant = NULL;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	db_free(&singles);
	OCSP_CERTID_free(cid);
	OCSP_BASICRESP_free(scratch);
	rf_ocsp_presigned_free(p);
	return r;
}

int
rf_ocsp_presign_prepare(struct rf_ocsp_signer *s,
    const struct rf_ocsp_status *sts, size_t n, struct rf_ocsp_presigned **out)
{
	return prepare_at(s, sts, n, rf_now(), out);
}

const struct rf_sign_req *
rf_ocsp_presigned_reqs(const struct rf_ocsp_presigned *p, size_t *n)
{
	*n = p->n;
	return p->reqs;
}

struct rf_key *
rf_ocsp_signer_key(const struct rf_ocsp_signer *s)
{
	return s->key;
}

int
rf_ocsp_presign_finish(struct rf_ocsp_presigned *p, const struct rf_sig *sigs)
{
	size_t i;
	int r;

	for (i = 0; i < p->n; i++)
		if ((r = response_assemble(
			 p->s, &p->tbs[i], &sigs[i], &p->resp[i])) != 0)
			return r;
	p->done = 1;
	return 0;
}

/*
 * Store the responses in the caller's transaction. With check, a status
 * read before signing may have changed since (a revocation committed
 * while a refresh was signing): then the writer of the new status
 * publishes its own response, and this one, stale, must not replace it.
 */
static int
presigned_put(const struct rf_ocsp_presigned *p, int check)
{
	struct rf_ocsp_rec rec;
	size_t i;
	int r, current = 1;

	if (!p->done)
		return rf_err_set(RF_ERR_STATE, "OCSP responses not signed");
	for (i = 0; i < p->n; i++) {
		if (check &&
		    (r = status_current(p->s->st, &p->sts[i], &current)) != 0)
			return r;
		if (!current)
			continue;
		memset(&rec, 0, sizeof(rec));
		snprintf(rec.serial, sizeof(rec.serial), "%s", p->serial[i]);
		snprintf(
		    rec.issuer, sizeof(rec.issuer), "%s", p->s->issuer_name);
		rec.this_update = p->now;
		rec.next_update = p->now + p->s->validity;
		rec.der = p->resp[i].p;
		rec.len = p->resp[i].len;
		if ((r = rf_store_ocsp_put(p->s->st, &rec)) != 0)
			return r;
	}
	return 0;
}

int
rf_ocsp_presigned_store(const struct rf_ocsp_presigned *p)
{
	return presigned_put(p, 0);
}

int
rf_ocsp_presigned_store_current(const struct rf_ocsp_presigned *p)
{
	return presigned_put(p, 1);
}

/* Sign and store n responses with thisUpdate = now. */
static int
presign_at(struct rf_ocsp_signer *s, const struct rf_ocsp_status *sts, size_t n,
    int64_t now, const struct rf_actor *who)
{
	struct rf_ocsp_presigned *p = NULL;
	struct rf_sig *sigs = NULL;
	size_t i;
	int r, in_tx = 0;

	if (n == 0)
		return 0;
	if ((r = prepare_at(s, sts, n, now, &p)) != 0)
		return r;
	if ((sigs = calloc(n, sizeof(*sigs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = rf_keys_sign(s->keys, s->key, p->reqs, n, who, sigs)) != 0 ||
	    (r = rf_ocsp_presign_finish(p, sigs)) != 0)
		goto out;
	/* Publish all or nothing. */
	if ((r = rf_store_begin(s->st)) != 0)
		goto out;
	in_tx = 1;
	if ((r = presigned_put(p, 1)) != 0 || (r = rf_store_commit(s->st)) != 0)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(s->st);
	for (i = 0; sigs != NULL && i < n; i++)
		rf_sig_clear(&sigs[i]);
	free(sigs);
	rf_ocsp_presigned_free(p);
	return r;
}

int
rf_ocsp_presign(struct rf_ocsp_signer *s, const struct rf_ocsp_status *sts,
    size_t n, const struct rf_actor *who)
{
	if (s == NULL)
		return rf_err_set(RF_ERR_ARG, "OCSP presign: no signer");
	return presign_at(s, sts, n, rf_now(), who);
}

_Static_assert(RF_OCSP_REF_MAX <= RF_KEYS_REF_MAX,
    "an on-demand ref naming every serial fits a signature's leaf");

void
rf_ocsp_ondemand_ref(
    const struct rf_ocsp_certid *ids, size_t n, char out[RF_OCSP_REF_MAX])
{
	size_t i, len;

	len = (size_t)snprintf(out, RF_OCSP_REF_MAX, "on-demand");
	for (i = 0; i < n && i < RF_OCSP_MAX_IDS; i++)
		len += (size_t)snprintf(out + len, RF_OCSP_REF_MAX - len,
		    "%c%s", i == 0 ? ' ' : ',', ids[i].serial);
}

int
rf_ocsp_sign_now(struct rf_ocsp_signer *s, const struct rf_ocsp_certid *ids,
    const struct rf_ocsp_status *sts, size_t n, int64_t now,
    const struct rf_actor *who, uint8_t *out, size_t outmax, size_t *outlen)
{
	struct dbuf singles = {0}, tbs = {0}, resp = {0};
	OCSP_BASICRESP *scratch = NULL;
	OCSP_CERTID *cid = NULL;
	struct rf_sign_req req = {0};
	struct rf_sig sig = {0};
	char ref[RF_OCSP_REF_MAX];
	size_t i;
	int r = RF_ERR_INTERNAL;

	*outlen = 0;
	if (s == NULL || ids == NULL || sts == NULL || n == 0 ||
	    n > RF_OCSP_MAX_IDS || out == NULL)
		return rf_err_set(RF_ERR_ARG, "OCSP sign: bad arguments");
	if ((scratch = OCSP_BASICRESP_new()) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++) {
		const EVP_MD *md = hash_md(ids[i].hash);
		ASN1_OCTET_STRING *nh = NULL, *kh = NULL;

		if (md == NULL || serial_check(ids[i].serial) != 0 ||
		    sts[i].serial == NULL ||
		    strcmp(sts[i].serial, ids[i].serial) != 0) {
			r = rf_err_set(RF_ERR_ARG,
			    "OCSP sign: CertID %zu "
			    "unsupported",
			    i);
			goto out;
		}
		if ((cid = certid_new(s, md, ids[i].serial)) == NULL ||
		    OCSP_id_get0_info(&nh, NULL, &kh, NULL, cid) != 1) {
			r = rf_err_set(RF_ERR_INTERNAL, "OCSP CertID failed");
			goto out;
		}
		/* The CertID we answer must be the one asked about. */
		if ((size_t)ASN1_STRING_length(nh) != ids[i].hash_len ||
		    (size_t)ASN1_STRING_length(kh) != ids[i].hash_len ||
		    memcmp(ASN1_STRING_get0_data(nh), ids[i].name_hash,
			ids[i].hash_len) != 0 ||
		    memcmp(ASN1_STRING_get0_data(kh), ids[i].key_hash,
			ids[i].hash_len) != 0) {
			r = rf_err_set(RF_ERR_ARG,
			    "OCSP sign: CertID %zu is "
			    "not for issuer %s",
			    i, s->issuer_name);
			goto out;
		}
		if ((r = single_put(s, scratch, cid, &sts[i], now, &singles)) !=
		    0)
			goto out;
		OCSP_CERTID_free(cid);
		cid = NULL;
	}
	if ((r = tbs_build(s, &singles, now, &tbs)) != 0)
		goto out;
	rf_ocsp_ondemand_ref(ids, n, ref);
	req.msg = tbs.p;
	req.msglen = tbs.len;
	req.scheme = RF_SIG_DEFAULT;
	req.what = "ocsp";
	req.ref = ref;
	if ((r = rf_keys_sign(s->keys, s->key, &req, 1, who, &sig)) != 0 ||
	    (r = response_assemble(s, &tbs, &sig, &resp)) != 0)
		goto out;
	if (resp.len > outmax) {
		r = rf_err_set(RF_ERR_TOO_LARGE, "OCSP response too large");
		goto out;
	}
	memcpy(out, resp.p, resp.len);
	*outlen = resp.len;
	r = 0;
out:
	OCSP_CERTID_free(cid);
	OCSP_BASICRESP_free(scratch);
	rf_sig_clear(&sig);
	db_free(&singles);
	db_free(&tbs);
	db_free(&resp);
	return r;
}

/* ---- Refresh ---- */

struct have {
	char serial[41];
	int64_t this_update;
};

struct refresh {
	struct rf_ocsp_signer *s;
	int64_t now;
	struct have *have; /* stored responses of this issuer */
	size_t nhave, caphave;
	struct rf_ocsp_status *due;
	char (*serials)[41];
	size_t ndue, capdue;
	int err;
};

static int
have_cmp(const void *a, const void *b)
{
	return strcmp(
	    ((const struct have *)a)->serial, ((const struct have *)b)->serial);
}

static int
collect_have(void *arg, const struct rf_ocsp_rec *o)
{
	struct refresh *rf = arg;

	if (strcmp(o->issuer, rf->s->issuer_name) != 0)
		return 0;
	if (rf->nhave == rf->caphave) {
		size_t cap = rf->caphave ? rf->caphave * 2 : 1024;
		struct have *nh = reallocarray(rf->have, cap, sizeof(*nh));

		if (nh == NULL) {
			rf->err = RF_ERR_ALLOC;
			return 1;
		}
		rf->have = nh;
		rf->caphave = cap;
	}
	snprintf(rf->have[rf->nhave].serial, sizeof(rf->have->serial), "%s",
	    o->serial);
	rf->have[rf->nhave].this_update = o->this_update;
	rf->nhave++;
	return 0;
}

static int
collect_due(void *arg, const struct rf_cert_rec *c)
{
	struct refresh *rf = arg;
	struct have key, *h;

	snprintf(key.serial, sizeof(key.serial), "%s", c->serial);
	h = rf->nhave
	    ? bsearch(&key, rf->have, rf->nhave, sizeof(*rf->have), have_cmp)
	    : NULL;
	/* Fresh: less than half its validity has passed. */
	if (h != NULL && rf->now - h->this_update < rf->s->validity / 2)
		return 0;
	if (rf->ndue == rf->capdue) {
		size_t cap = rf->capdue ? rf->capdue * 2 : 256;
		struct rf_ocsp_status *nd =
		    reallocarray(rf->due, cap, sizeof(*nd));
		char(*ns)[41];

		if (nd == NULL) {
			rf->err = RF_ERR_ALLOC;
			return 1;
		}
		rf->due = nd;
		if ((ns = reallocarray(rf->serials, cap, sizeof(*ns))) ==
		    NULL) {
			rf->err = RF_ERR_ALLOC;
			return 1;
		}
		rf->serials = ns;
		rf->capdue = cap;
	}
	snprintf(
	    rf->serials[rf->ndue], sizeof(rf->serials[0]), "%s", c->serial);
	rf->due[rf->ndue].revoked = c->revoked;
	rf->due[rf->ndue].revoked_at = c->revoked_at;
	rf->due[rf->ndue].reason = c->reason;
	rf->ndue++;
	return 0;
}

int
rf_ocsp_refresh_due(struct rf_ocsp_signer *s, int64_t now,
    const struct rf_actor *who, size_t *count)
{
	struct refresh rf = {0};
	struct rf_cert_filter f = {0};
	size_t i, done = 0;
	int64_t t0 = rf_now();
	int r = RF_ERR_INTERNAL;

	if (count != NULL)
		*count = 0;
	if (s == NULL)
		return rf_err_set(RF_ERR_ARG, "OCSP refresh: no signer");
	rf.s = s;
	rf.now = now;
	/* Both lists are read completely before anything is written. */
	if ((r = rf_store_ocsp_foreach(s->st, 0, collect_have, &rf)) != 0 &&
	    rf.err == 0)
		goto out;
	if (rf.err != 0) {
		r = rf.err;
		goto out;
	}
	if (rf.nhave > 0)
		qsort(rf.have, rf.nhave, sizeof(*rf.have), have_cmp);
	f.issuer = s->issuer_name;
	f.unexpired_at = now;
	if ((r = rf_store_cert_foreach(s->st, &f, collect_due, &rf)) != 0 &&
	    rf.err == 0)
		goto out;
	if (rf.err != 0) {
		r = rf.err;
		goto out;
	}
	for (i = 0; i < rf.ndue; i++)
		rf.due[i].serial = rf.serials[i];
	for (i = 0; i < rf.ndue; i += RF_OCSP_REFRESH_BATCH) {
		size_t m = rf.ndue - i;

		if (m > RF_OCSP_REFRESH_BATCH)
			m = RF_OCSP_REFRESH_BATCH;
		/* Each batch dated when it is signed (a pass over many
		 * certificates lasts long), so that each answer has its
		 * whole validity from its signature. */
		if ((r = presign_at(
			 s, rf.due + i, m, now + (rf_now() - t0), who)) != 0)
			goto out;
		done += m;
	}
	r = 0;
out:
	if (count != NULL)
		*count = done;
	free(rf.have);
	free(rf.due);
	free(rf.serials);
	return r;
}
