/*
 * crl.c: CRL generation (RFC 5280 section 5).
 *
 * The TBSCertList is written directly in DER into growing buffers, so that
 * a CRL with a million entries costs a few copies of its bytes and no
 * per-entry OpenSSL object. OpenSSL encodes only the issuer Name and the
 * AlgorithmIdentifier; keys signs; rf_ca_assemble wraps the signature.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "revoke/revoke.h"
#include "store/store.h"

/* rf_ca_assemble() takes TBS structures up to this size. */
#define CA_ASSEMBLE_MAX (16u * 1024 * 1024)
/* A CRL larger than this is refused (about 10 million entries). */
#define CRL_MAX (1024u * 1024 * 1024)

/* --- A growing DER buffer. --- */

struct dbuf {
	uint8_t *p;
	size_t len, cap;
};

static int
dbuf_reserve(struct dbuf *b, size_t n)
{
	uint8_t *np;
	size_t cap;

	if (n <= b->cap - b->len)
		return 0;
	if (n > CRL_MAX || b->len > CRL_MAX - n)
		return rf_err_set(
		    RF_ERR_TOO_LARGE, "CRL larger than %u bytes", CRL_MAX);
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	if ((np = realloc(b->p, cap)) == NULL)
		return RF_ERR_ALLOC;
	b->p = np;
	b->cap = cap;
	return 0;
}

static void
dbuf_free(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Append tag, length and content; b must have room (see tlv_size). */
static size_t
tlv_size(size_t n)
{
	return rf_ca_der_hdr_len(n) + n; /* X.690 8.1.3, minimal */
}

static int
dbuf_tlv(struct dbuf *b, uint8_t tag, const uint8_t *c, size_t n)
{
	uint8_t *p;
	int r;

	if ((r = dbuf_reserve(b, tlv_size(n))) != 0)
		return r;
	p = b->p + b->len;
	p = rf_ca_der_put_hdr(p, tag, n);
	if (n > 0)
		memcpy(p, c, n);
	b->len += tlv_size(n);
	return 0;
}

static int
dbuf_put(struct dbuf *b, const uint8_t *c, size_t n)
{
	int r;

	if ((r = dbuf_reserve(b, n)) != 0)
		return r;
	memcpy(b->p + b->len, c, n);
	b->len += n;
	return 0;
}

/*
 * RFC 5280 5.1.2.4 (and 5.1.2.5, 5.1.2.6): "CRL issuers MUST encode
 * thisUpdate as UTCTime for dates through the year 2049. CRL issuers MUST
 * encode thisUpdate as GeneralizedTime for dates in the year 2050 or
 * later." Both in UTC ("Z"), with seconds, no fractions (4.1.2.5.1/2).
 *
 *   UTCTime:         17 0d YYMMDDHHMMSSZ
 *   GeneralizedTime: 18 0f YYYYMMDDHHMMSSZ
 *
 * Writes the whole TLV into out (17 bytes at most) and returns its length.
 * cache keeps the date part of the previous call: entries revoked on the
 * same day share it.
 */
struct time_cache {
	int64_t day; /* t / 86400 of the cached date, or INT64_MIN */
	int year, mon, mday;
};

static uint8_t *
put2(uint8_t *p, int v)
{
	*p++ = (uint8_t)('0' + v / 10 % 10);
	*p++ = (uint8_t)('0' + v % 10);
	return p;
}

static size_t
der_time(int64_t t, struct time_cache *tc, uint8_t *out)
{
	int64_t day, sec;
	struct tm tm;
	time_t tt;
	uint8_t *p = out + 2;

	if (t < 0)
		t = 0;
	day = t / 86400;
	sec = t % 86400;
	if (tc->day != day) {
		tt = (time_t)t;
		if (gmtime_r(&tt, &tm) == NULL)
			memset(&tm, 0, sizeof(tm));
		tc->day = day;
		tc->year = tm.tm_year + 1900;
		tc->mon = tm.tm_mon + 1;
		tc->mday = tm.tm_mday;
	}
	if (tc->year >= 1950 && tc->year <= 2049) {
		out[0] = 0x17;
		out[1] = 13;
	} else {
		out[0] = 0x18;
		out[1] = 15;
		p = put2(p, tc->year / 100);
	}
	p = put2(p, tc->year % 100);
	p = put2(p, tc->mon);
	p = put2(p, tc->mday);
	p = put2(p, (int)(sec / 3600));
	p = put2(p, (int)(sec / 60 % 60));
	p = put2(p, (int)(sec % 60));
	*p++ = 'Z';
	return (size_t)(p - out);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/*
 * A serial string of the store (lowercase hex of the value) as the content
 * octets of a DER INTEGER: minimal, with a leading 00 when the top bit is
 * set (X.690 8.3.2), at most 21 octets (RFC 5280 4.1.2.2: 20 octets).
 */
static int
serial_der(const char *hex, uint8_t out[21], size_t *outlen)
{
	uint8_t v[21];
	size_t n = strlen(hex), i, k = 0, start;
	int hi, lo;

	if (n == 0 || n > 40)
		return RF_ERR_MALFORMED;
	for (i = 0; i < n; i++) {
		char c = hex[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			(c >= 'A' && c <= 'F')))
			return RF_ERR_MALFORMED;
	}
	v[k++] = 0; /* room for the sign octet */
	i = 0;
	if (n % 2 == 1) {
		v[k++] = (uint8_t)hexval(hex[0]);
		i = 1;
	}
	for (; i < n; i += 2) {
		hi = hexval(hex[i]);
		lo = hexval(hex[i + 1]);
		v[k++] = (uint8_t)(hi << 4 | lo);
	}
	/* Skip leading zero octets, keep one if the next has its top bit. */
	start = 1;
	while (start < k - 1 && v[start] == 0 && (v[start + 1] & 0x80) == 0)
		start++;
	if (v[start] & 0x80)
		start--;
	*outlen = k - start;
	memcpy(out, v + start, *outlen);
	return 0;
}

/*
 * One revokedCertificates entry (RFC 5280 5.1.2.6, 5.3.1):
 *
 *   30 L                                  SEQUENCE, L < 128 always
 *     02 Ls <serial>                      userCertificate INTEGER
 *     17 0d <UTCTime> | 18 0f <GenTime>   revocationDate
 *     30 0c                               crlEntryExtensions (only when
 *       30 0a                               the reason is 1..10)
 *         06 03 55 1d 15                  id-ce-cRLReasons
 *         04 03 0a 01 RR                  OCTET STRING { ENUMERATED }
 *
 * "the reason code CRL entry extension SHOULD be absent instead of using
 * the unspecified (0) reasonCode value" (5.3.1), so 0 and -1 write none.
 */
struct crl_gen {
	struct dbuf entries;
	struct time_cache tc;
	size_t count;
	int bad_serial;
};

static int
crl_add_entry(void *arg, const struct rf_cert_rec *c)
{
	static const uint8_t reason_ext[] = {0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03,
	    0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01};
	struct crl_gen *g = arg;
	uint8_t ser[21], tm[20], *p;
	size_t serlen, tmlen, content;
	int r;

	if (!c->revoked)
		return 0;
	if (serial_der(c->serial, ser, &serlen) != 0) {
		g->bad_serial = 1;
		return rf_err_set(RF_ERR_STORE,
		    "certificate record with malformed serial "
		    "'%.40s'",
		    c->serial);
	}
	tmlen = der_time(c->revoked_at, &g->tc, tm);
	content = 2 + serlen + tmlen;
	if (c->reason > 0 && c->reason <= 10)
		content += sizeof(reason_ext) + 1;
	if ((r = dbuf_reserve(&g->entries, 2 + content)) != 0)
		return r;
	p = g->entries.p + g->entries.len;
	*p++ = 0x30;
	*p++ = (uint8_t)content;
	*p++ = 0x02;
	*p++ = (uint8_t)serlen;
	memcpy(p, ser, serlen);
	p += serlen;
	memcpy(p, tm, tmlen);
	p += tmlen;
	if (c->reason > 0 && c->reason <= 10) {
		memcpy(p, reason_ext, sizeof(reason_ext));
		p += sizeof(reason_ext);
		*p++ = (uint8_t)c->reason;
	}
	g->entries.len = (size_t)(p - g->entries.p);
	g->count++;
	return 0;
}

/* X.690 8.3: the content octets of a non-negative INTEGER. */
static size_t
uint_der(uint64_t v, uint8_t out[9])
{
	uint8_t tmp[9];
	size_t k = 0, i;

	do {
		tmp[k++] = (uint8_t)(v & 0xff);
		v >>= 8;
	} while (v != 0);
	if (tmp[k - 1] & 0x80)
		tmp[k++] = 0;
	for (i = 0; i < k; i++)
		out[i] = tmp[k - 1 - i];
	return k;
}

/*
 * crlExtensions (RFC 5280 5.1.2.7, 5.2.1, 5.2.3):
 *
 *   a0 L                                  [0] EXPLICIT
 *     30 L                                Extensions
 *       30 L 06 03 55 1d 23               authorityKeyIdentifier
 *            04 L 30 L 80 L <keyid>       { keyIdentifier [0] }
 *       30 L 06 03 55 1d 14               cRLNumber (non-critical)
 *            04 L 02 L <number>
 */
static int
crl_extensions(X509 *issuer, uint64_t number, struct dbuf *out)
{
	static const uint8_t oid_aki[] = {0x06, 0x03, 0x55, 0x1d, 0x23};
	static const uint8_t oid_num[] = {0x06, 0x03, 0x55, 0x1d, 0x14};
	const ASN1_OCTET_STRING *ski;
	uint8_t keyid[EVP_MAX_MD_SIZE], num[9];
	unsigned int kidlen = 0;
	size_t numlen;
	struct dbuf a = {0}, b = {0}, c = {0}, exts = {0};
	int r = RF_ERR_INTERNAL;

	/*
	 * RFC 5280 5.2.1: the keyIdentifier is the issuer's subject key
	 * identifier; when the certificate has none, method (1) of 4.2.1.2:
	 * SHA-1 of the subjectPublicKey BIT STRING value.
	 */
	if ((ski = X509_get0_subject_key_id(issuer)) != NULL &&
	    ASN1_STRING_length(ski) > 0 &&
	    ASN1_STRING_length(ski) <= (int)sizeof(keyid)) {
		kidlen = (unsigned int)ASN1_STRING_length(ski);
		memcpy(keyid, ASN1_STRING_get0_data(ski), kidlen);
	} else if (X509_pubkey_digest(issuer, EVP_sha1(), keyid, &kidlen) !=
	    1) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "cannot compute the CRL "
		    "issuer's key identifier");
		goto out;
	}
	/* AKI */
	if ((r = dbuf_tlv(&a, 0x80, keyid, kidlen)) != 0 ||
	    (r = dbuf_tlv(&b, 0x30, a.p, a.len)) != 0)
		goto out;
	a.len = 0;
	if ((r = dbuf_tlv(&a, 0x04, b.p, b.len)) != 0)
		goto out;
	b.len = 0;
	if ((r = dbuf_put(&b, oid_aki, sizeof(oid_aki))) != 0 ||
	    (r = dbuf_put(&b, a.p, a.len)) != 0 ||
	    (r = dbuf_tlv(&exts, 0x30, b.p, b.len)) != 0)
		goto out;
	/* cRLNumber */
	numlen = uint_der(number, num);
	a.len = b.len = 0;
	if ((r = dbuf_tlv(&a, 0x02, num, numlen)) != 0 ||
	    (r = dbuf_tlv(&b, 0x04, a.p, a.len)) != 0)
		goto out;
	a.len = 0;
	if ((r = dbuf_put(&a, oid_num, sizeof(oid_num))) != 0 ||
	    (r = dbuf_put(&a, b.p, b.len)) != 0 ||
	    (r = dbuf_tlv(&exts, 0x30, a.p, a.len)) != 0)
		goto out;
	if ((r = dbuf_tlv(&c, 0x30, exts.p, exts.len)) != 0 ||
	    (r = dbuf_tlv(out, 0xa0, c.p, c.len)) != 0)
		goto out;
	r = 0;
out:
	dbuf_free(&a);
	dbuf_free(&b);
	dbuf_free(&c);
	dbuf_free(&exts);
	return r;
}

/*
 * RFC 5280 5.1.2:
 *
 *   TBSCertList ::= SEQUENCE {
 *        version                 Version OPTIONAL, -- v2: INTEGER 1
 *        signature               AlgorithmIdentifier,
 *        issuer                  Name,
 *        thisUpdate              Time,
 *        nextUpdate              Time OPTIONAL,
 *        revokedCertificates     SEQUENCE OF SEQUENCE {...} OPTIONAL,
 *        crlExtensions           [0] EXPLICIT Extensions OPTIONAL }
 *
 * Byte layout:
 *
 *   30 L
 *     02 01 01                 version v2 (5.1.2.1: MUST with extensions)
 *     30 ..                    signature = the outer algorithm (5.1.2.2)
 *     30 ..                    issuer = the CA certificate's subject
 *     17|18 ..                 thisUpdate
 *     17|18 ..                 nextUpdate (5.1.2.5: MUST be included)
 *     30 L <entries>           only when there is at least one (5.1.2.6:
 *                              "the revoked certificates list MUST be
 *                              absent" when empty)
 *     a0 ..                    crlExtensions
 */
static int
crl_tbs(X509 *issuer, const X509_ALGOR *alg, int64_t this_update,
    int64_t next_update, uint64_t number, const struct dbuf *entries,
    uint8_t **out, size_t *outlen)
{
	static const uint8_t version[] = {0x02, 0x01, 0x01};
	struct dbuf head = {0}, exts = {0};
	struct time_cache tc = {INT64_MIN, 0, 0, 0};
	uint8_t *algder = NULL, *name = NULL, tm[20], *buf = NULL, *p;
	int alglen, namelen, r = RF_ERR_INTERNAL;
	size_t tmlen, content, total;

	*out = NULL;
	*outlen = 0;
	if ((alglen = i2d_X509_ALGOR(alg, &algder)) <= 0 ||
	    (namelen = i2d_X509_NAME(X509_get_subject_name(issuer), &name)) <=
		0) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "cannot encode the CRL "
		    "algorithm or issuer name");
		goto out;
	}
	if ((r = dbuf_put(&head, version, sizeof(version))) != 0 ||
	    (r = dbuf_put(&head, algder, (size_t)alglen)) != 0 ||
	    (r = dbuf_put(&head, name, (size_t)namelen)) != 0)
		goto out;
	tmlen = der_time(this_update, &tc, tm);
	if ((r = dbuf_put(&head, tm, tmlen)) != 0)
		goto out;
	tmlen = der_time(next_update, &tc, tm);
	if ((r = dbuf_put(&head, tm, tmlen)) != 0 ||
	    (r = crl_extensions(issuer, number, &exts)) != 0)
		goto out;
	content = head.len + exts.len;
	if (entries->len > 0)
		content += tlv_size(entries->len);
	total = tlv_size(content);
	if (total > CRL_MAX) {
		r = rf_err_set(
		    RF_ERR_TOO_LARGE, "CRL larger than %u bytes", CRL_MAX);
		goto out;
	}
	if ((buf = malloc(total)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p = buf;
	p = rf_ca_der_put_hdr(p, 0x30, content);
	memcpy(p, head.p, head.len);
	p += head.len;
	if (entries->len > 0) {
		p = rf_ca_der_put_hdr(p, 0x30, entries->len);
		memcpy(p, entries->p, entries->len);
		p += entries->len;
	}
	memcpy(p, exts.p, exts.len);
	p += exts.len;
	if ((size_t)(p - buf) != total) {
		r = rf_err_set(RF_ERR_INTERNAL, "CRL length mismatch");
		goto out;
	}
	*out = buf; /* owned by the caller */
	*outlen = total;
	buf = NULL;
	r = 0;
out:
	free(buf);
	OPENSSL_free(algder);
	OPENSSL_free(name);
	dbuf_free(&head);
	dbuf_free(&exts);
	return r;
}

/*
 * RFC 5280 5.1: CertificateList ::= SEQUENCE { tbsCertList,
 * signatureAlgorithm, signatureValue BIT STRING }. rf_ca_assemble() writes
 * it up to CA_ASSEMBLE_MAX; beyond that (about 300,000 entries) the same
 * layout is written here:
 *
 *   30 L  <tbs>  <alg>  03 L(1+siglen) 00 <sig>
 */
static int
crl_assemble(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    const struct rf_sig *sig, uint8_t **der, size_t *derlen)
{
	uint8_t *algder = NULL, *buf = NULL, *p;
	size_t content, total;
	int alglen, r = RF_ERR_INTERNAL;

	*der = NULL;
	*derlen = 0;
	if (tbslen <= CA_ASSEMBLE_MAX)
		return rf_ca_assemble(
		    tbs, tbslen, alg, sig->sig, sig->len, der, derlen);
	if ((alglen = i2d_X509_ALGOR(alg, &algder)) <= 0) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "cannot encode the CRL "
		    "signature algorithm");
		goto out;
	}
	content = tbslen + (size_t)alglen + tlv_size(1 + sig->len);
	total = tlv_size(content);
	if ((buf = malloc(total)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	p = buf;
	p = rf_ca_der_put_hdr(p, 0x30, content);
	memcpy(p, tbs, tbslen);
	p += tbslen;
	memcpy(p, algder, (size_t)alglen);
	p += alglen;
	p = rf_ca_der_put_hdr(p, 0x03, 1 + sig->len);
	*p++ = 0x00; /* no unused bits */
	memcpy(p, sig->sig, sig->len);
	*der = buf; /* owned by the caller */
	*derlen = total;
	buf = NULL;
	r = 0;
out:
	free(buf);
	OPENSSL_free(algder);
	return r;
}

/* --- Freshness bookkeeping, in the store's meta table. --- */

static int
meta_i64(struct rf_store *st, const char *key, int64_t *v)
{
	char val[32], *end;
	int r;

	*v = 0;
	if ((r = rf_store_meta_get(st, key, val, sizeof(val))) != 0)
		return r;
	*v = strtoll(val, &end, 10);
	if (*end != '\0')
		return rf_err_set(RF_ERR_STORE, "meta %s is not a number", key);
	return 0;
}

static int
crl_meta_get(
    struct rf_store *st, const char *issuer, const char *what, int64_t *v)
{
	char key[128];
	int r;

	snprintf(key, sizeof(key), "crl.%s.%s", issuer, what);
	if ((r = meta_i64(st, key, v)) == RF_ERR_NOT_FOUND) {
		*v = 0;
		rf_err_clear();
		return RF_ERR_NOT_FOUND;
	}
	return r;
}

static int
crl_meta_set(
    struct rf_store *st, const char *issuer, const char *what, int64_t v)
{
	char key[128], val[32];

	snprintf(key, sizeof(key), "crl.%s.%s", issuer, what);
	snprintf(val, sizeof(val), "%" PRId64, v);
	return rf_store_meta_set(st, key, val);
}

int
rf_crl_mark_revoked(struct rf_store *st, const char *issuer)
{
	int64_t gen = 0;
	int r;

	if ((r = crl_meta_get(st, issuer, "revoked", &gen)) != 0 &&
	    r != RF_ERR_NOT_FOUND)
		return r;
	return crl_meta_set(st, issuer, "revoked", gen + 1);
}

static int64_t
crl_validity(const struct rf_config *cfg)
{
	return cfg->crl_validity > 0 ? cfg->crl_validity : 7 * 86400;
}

/*
 * One attempt; *superseded is set when another writer stored a CRL with a
 * higher number between our taking a number and storing ours.
 */
static int
crl_generate_once(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who, uint64_t *number, int *superseded)
{
	struct crl_gen g = {0};
	struct rf_cert_filter f = {0};
	struct rf_sign_req req = {0};
	struct rf_sig sig = {0};
	X509_ALGOR *alg = NULL;
	X509 *cert;
	struct rf_key *key;
	uint8_t *tbs = NULL, *der = NULL;
	size_t tbslen = 0, derlen = 0;
	int64_t now, next, gen = 0;
	uint64_t num = 0;
	char ref[32];
	int r = RF_ERR_INTERNAL, in_tx = 0;

	if (number != NULL)
		*number = 0;
	g.tc.day = INT64_MIN;
	if (issuer == NULL || strlen(issuer) >= 64)
		return rf_err_set(RF_ERR_ARG, "CRL: missing or long CA name");
	if ((cert = rf_ca_cert(ca, issuer)) == NULL ||
	    (key = rf_ca_key(ca, issuer)) == NULL)
		return rf_err_set(RF_ERR_NOT_FOUND,
		    "no CA named '%s' (use issuing or root)", issuer);
	now = rf_now();
	next = now + crl_validity(cfg);

	/* Revocations committed after this read make the CRL due again. */
	if ((r = crl_meta_get(st, issuer, "revoked", &gen)) != 0 &&
	    r != RF_ERR_NOT_FOUND)
		goto out;

	/* 5.1.2.6: every revoked, unexpired certificate of this issuer. */
	f.issuer = issuer;
	f.only_revoked = 1;
	f.unexpired_at = now;
	if ((r = rf_store_cert_foreach(st, &f, crl_add_entry, &g)) != 0)
		goto out;

	/* 5.2.3: "monotonically increasing sequence number". */
	if ((r = rf_store_crl_next_number(st, issuer, &num)) != 0)
		goto out;
	if ((r = rf_key_sigalg(key, RF_SIG_DEFAULT, &alg)) != 0 ||
	    (r = crl_tbs(
		 cert, alg, now, next, num, &g.entries, &tbs, &tbslen)) != 0)
		goto out;
	dbuf_free(&g.entries);

	snprintf(ref, sizeof(ref), "%" PRIu64, num);
	req.msg = tbs;
	req.msglen = tbslen;
	req.scheme = RF_SIG_DEFAULT;
	req.what = "crl";
	req.ref = ref;
	if ((r = rf_keys_sign(keys, key, &req, 1, who, &sig)) != 0 ||
	    (r = crl_assemble(tbs, tbslen, alg, &sig, &der, &derlen)) != 0)
		goto out;

	/* The CRL and its freshness bookkeeping commit together. */
	if ((r = rf_store_begin(st)) != 0)
		goto out;
	in_tx = 1;
	if ((r = rf_store_crl_put(st, issuer, num, now, next, der, derlen)) !=
	    0) {
		*superseded = r == RF_ERR_STATE;
		goto out;
	}
	if ((r = crl_meta_set(st, issuer, "made", gen)) != 0 ||
	    (r = crl_meta_set(st, issuer, "this", now)) != 0 ||
	    (r = crl_meta_set(st, issuer, "next", next)) != 0 ||
	    (r = rf_store_commit(st)) != 0)
		goto out;
	in_tx = 0;
	if (number != NULL)
		*number = num;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(st);
	dbuf_free(&g.entries);
	free(tbs);
	free(der);
	rf_sig_clear(&sig);
	X509_ALGOR_free(alg);
	return r;
}

/*
 * Two writers (the server's CRL pass and a revoke command) may take CRL
 * numbers n and n+1 and store them in the other order; the store refuses
 * the lower one. The loser generates again: a new number and a fresh read
 * of the revocations, so that its own revocation is in the stored CRL.
 */
int
rf_crl_generate_n(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who, uint64_t *number)
{
	int attempt, superseded, r;

	for (attempt = 0;; attempt++) {
		superseded = 0;
		r = crl_generate_once(
		    cfg, st, keys, ca, issuer, who, number, &superseded);
		if (r == 0 || !superseded || attempt == 4)
			return r;
		rf_err_clear();
	}
}

int
rf_crl_generate(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who)
{
	return rf_crl_generate_n(cfg, st, keys, ca, issuer, who, NULL);
}

int
rf_crl_due(const struct rf_config *cfg, struct rf_store *st, const char *issuer,
    int *due)
{
	int64_t now = rf_now(), made = 0, revoked = 0, this_update = 0,
		next_update = 0, left;
	int r;

	(void)cfg;
	*due = 1;
	if (issuer == NULL || strlen(issuer) >= 64)
		return rf_err_set(RF_ERR_ARG, "CRL: missing or long CA name");
	if ((r = crl_meta_get(st, issuer, "this", &this_update)) != 0 ||
	    (r = crl_meta_get(st, issuer, "next", &next_update)) != 0 ||
	    (r = crl_meta_get(st, issuer, "made", &made)) != 0)
		return r == RF_ERR_NOT_FOUND ? 0 : r; /* none yet: due */
	if ((r = crl_meta_get(st, issuer, "revoked", &revoked)) != 0 &&
	    r != RF_ERR_NOT_FOUND)
		return r;
	left = next_update - now;
	if (revoked != made || now - this_update >= RF_CRL_MAX_AGE ||
	    now < this_update || left <= (next_update - this_update) / 4)
		*due = 1;
	else
		*due = 0;
	return 0;
}

int
rf_crl_refresh(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who, int *regenerated)
{
	int due = 0, r;

	if (regenerated != NULL)
		*regenerated = 0;
	if ((r = rf_crl_due(cfg, st, issuer, &due)) != 0)
		return r;
	if (!due)
		return 0;
	if ((r = rf_crl_generate(cfg, st, keys, ca, issuer, who)) != 0)
		return r;
	if (regenerated != NULL)
		*regenerated = 1;
	return 0;
}
