/*
 * ca.c: the certificate authority: hierarchy set-up (rf_ca_init), loading
 * (rf_ca_open), tenants and issuance.
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
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "common/keyident.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "ocsp/ocsp.h"
#include "pool/pool.h"
#include "store/store.h"

/* Clock-skew allowance: notBefore is this many seconds before issuance. */
#define CA_BACKDATE 300
#define CA_SERIAL_BYTES 16
#define CA_SERIAL_TIME 6 /* of them the time in ms, first (serial_new) */
#define CA_SERIAL_TRIES 4
#define DAY 86400
#define MAX_EXTS 10
#define CSR_THREADS 2 /* threads checking the CSRs of a large batch */
#define CSR_THREAD_MIN 32

enum { CA_ROOT, CA_ISSUING, CA_OCSP, CA_AUDIT, CA_NKEYS };
#define CA_NCERTS 3
static const char *const ca_names[CA_NKEYS] = {
    "root", "issuing", "ocsp", "audit"};

/* A DER blob; p from OpenSSL's i2d (OPENSSL_free) or malloc as noted. */
struct blob {
	uint8_t *p;
	size_t len;
};

/* Profile extensions, in the order they appear after SKI and AKI. */
enum {
	EXT_BC,
	EXT_KU_SIG,
	EXT_KU_SIG_ENC,
	EXT_EKU_CLIENT,
	EXT_EKU_SERVER,
	EXT_CRLDP,
	EXT_AIA,
	EXT_N
};

/* A CA certificate loaded from the store, and its key when held. */
struct ca_entry {
	char name[64];
	char parent[64];
	X509 *x;
	struct rf_key *key; /* NULL if the token no longer holds it */
	int active;
	int64_t not_before;
};

#define CA_MAX 32

struct rf_ca {
	struct rf_config cfg;
	struct rf_store *st;	/* borrowed */
	struct rf_keys *keys;	/* borrowed */
	struct rf_audit *audit; /* borrowed, or own_audit */
	struct rf_audit *own_audit;
	struct ca_entry ent[CA_MAX];
	size_t nent;
	int iss; /* index of the active issuing CA in ent */
	struct rf_key *audit_key;

	/* Precomputed from the active issuing CA (ca_precompute). */
	X509_ALGOR *sigalg; /* of the issuing key */
	struct blob alg;    /* DER of sigalg */
	struct blob issuer; /* DER of the issuing CA's subject */
	uint8_t aki[33];    /* AKI extension DER (issuing SKI) */
	struct blob ext[EXT_N];
	char *chain_tail; /* issuing + root PEM */
	size_t chain_tail_len;
	int64_t issuing_not_after;
	struct rf_ocsp_signer *ocsp_signer; /* for the active issuer */
	int presign_late;		    /* rf_ca_presign_after_commit */
};

/* ------------------------------------------------------------------ */
/* Profiles and names                                                 */

int
rf_profile_parse(const char *name, enum rf_profile *p)
{
	*p = RF_PROFILE_NONE;
	if (name == NULL)
		return rf_err_set(RF_ERR_ARG, "missing profile");
	if (strcmp(name, "client") == 0)
		*p = RF_PROFILE_CLIENT;
	else if (strcmp(name, "server") == 0)
		*p = RF_PROFILE_SERVER;
	else if (strcmp(name, "assertion") == 0)
		*p = RF_PROFILE_ASSERTION;
	else
		return rf_err_set(RF_ERR_ARG,
		    "unknown profile \"%.32s\": use "
		    "client, server or assertion",
		    name);
	return 0;
}

const char *
rf_profile_name(enum rf_profile p)
{
	switch (p) {
	case RF_PROFILE_CLIENT:
		return "client";
	case RF_PROFILE_SERVER:
		return "server";
	case RF_PROFILE_ASSERTION:
		return "assertion";
	case RF_PROFILE_CONNECTOR:
		return "connector";
	default:
		return "none";
	}
}

/*
 * Tenant and connection names become file and folder names (incident
 * packages, reports): no "/", NUL or control character, and no leading
 * dot, so that no name is "." or "..", or hidden.
 */
int
rf_ca_conn_name_check(const char *name)
{
	if (name != NULL && strlen(name) > RF_CONN_NAME_MAX)
		return rf_err_set(RF_ERR_ARG,
		    "connection name of %zu characters: a connection name is "
		    "1-%d characters of A-Z a-z 0-9 . _ -",
		    strlen(name), RF_CONN_NAME_MAX);
	return rf_ca_tenant_name_check(name);
}

int
rf_ca_tenant_name_check(const char *name)
{
	size_t i, len;

	/* Not hidden, not "." or "..": names become folder names. */
	if (name == NULL || (len = strlen(name)) == 0 || len > 64 ||
	    name[0] == '.')
		goto bad;
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_' && name[i] != '-')
			goto bad;
	}
	if (name[0] == '.')
		return rf_err_set(RF_ERR_ARG,
		    "invalid name \"%s\": a tenant or connection name may "
		    "not start with a dot; use 1-64 characters of A-Z a-z 0-9 "
		    ". _ - starting with a letter, digit, _ or -",
		    name);
	return 0;
bad:
	/* Only a name of printable characters is quoted back. */
	for (i = 0; name != NULL && name[i] != '\0' && i < 80; i++)
		if (!isprint((unsigned char)name[i]))
			break;
	return rf_err_set(RF_ERR_ARG,
	    "invalid name \"%.*s%s\": a tenant or connection name is 1-64 "
	    "characters of A-Z a-z 0-9 . _ -, not starting with a dot",
	    (int)i, name == NULL ? "" : name,
	    name != NULL && name[i] != '\0' ? "..." : "");
}

/*
 * RFC 1035 2.3.1 / RFC 5280 4.2.1.6: a dNSName is a preferred-syntax name;
 * a leading "*." wildcard label is accepted (RFC 6125 6.4.3).
 */
static int
dns_name_check(const char *dns)
{
	size_t len, lab = 0, i;
	const char *p;

	if (dns == NULL || (len = strlen(dns)) == 0 || len > 253)
		goto bad;
	p = dns;
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	if (*p == '\0')
		goto bad;
	for (i = 0; p[i] != '\0'; i++) {
		if (p[i] == '.') {
			if (lab == 0 || p[i - 1] == '-')
				goto bad;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)p[i]) && p[i] != '-')
			goto bad;
		if (lab == 0 && p[i] == '-')
			goto bad;
		if (++lab > 63)
			goto bad;
	}
	if (lab == 0 || p[i - 1] == '-')
		goto bad;
	return 0;
bad:
	return rf_err_set(RF_ERR_ARG,
	    "invalid DNS name \"%.80s\": use "
	    "letters, digits, '-' and '.' labels",
	    dns == NULL ? "" : dns);
}

/* X.501 name from (type, value) pairs, most significant first. */
static X509_NAME *
name_make(const char *o, const char *ou, const char *cn)
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
static int
serial_new(ASN1_INTEGER **out, char hex[41])
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

/* ------------------------------------------------------------------ */
/* Building and signing                                               */

static void
blob_clear(struct blob *b)
{
	OPENSSL_free(b->p);
	b->p = NULL;
	b->len = 0;
}

/* The result of an i2d into a blob (whose p was NULL): 0 or an error. */
static int
blob_set(struct blob *b, int len)
{
	if (len <= 0) {
		blob_clear(b);
		return RF_ERR_INTERNAL;
	}
	b->len = (size_t)len;
	return 0;
}
#define BLOB_I2D(fn, obj, b) blob_set((b), fn((obj), &(b)->p))

static int
ext_blob(int nid, const char *value, struct blob *b)
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
static int
ski_ext(const uint8_t *spki, size_t len, uint8_t keyid[20], uint8_t ext[31])
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
static void
aki_ext(const uint8_t keyid[20], uint8_t ext[33])
{
	static const uint8_t head[13] = {0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d,
	    0x23, 0x04, 0x18, 0x30, 0x16, 0x80, 0x14};

	memcpy(ext, head, sizeof(head));
	memcpy(ext + sizeof(head), keyid, 20);
}

struct tbs_in {
	struct blob serial, alg, issuer, subject, spki; /* borrowed */
	int64_t nb, na;
	struct blob exts[MAX_EXTS]; /* borrowed, in order */
	size_t nexts;
};

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
static int
tbs_der(const struct tbs_in *in, uint8_t **tbs, size_t *tbslen)
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

/* The digest of a signature AlgorithmIdentifier (ECDSA / RSA PKCS#1). */
static const EVP_MD *
alg_md(const X509_ALGOR *alg)
{
	const ASN1_OBJECT *oid;
	int mdnid = NID_undef, pknid = NID_undef;

	X509_ALGOR_get0(&oid, NULL, NULL, alg);
	if (OBJ_find_sigid_algs(OBJ_obj2nid(oid), &mdnid, &pknid) != 1)
		return NULL;
	return EVP_get_digestbynid(mdnid);
}

/*
 * Wrap a signature around a TBS. keys has verified the signature over the
 * TBS with the issuer's public key before releasing it. With `full` (the
 * CA certificates, and the first certificate of every batch), the result
 * is also checked as a relying party would: it parses as one X.509
 * certificate with nothing after it, and X509_verify() returns 1, which
 * also proves the AlgorithmIdentifier written matches the signature.
 */
static int
cert_finish(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
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

/* base_url goes into extension strings: refuse what would break them. */
static int
base_url_check(const char *url)
{
	size_t i;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		goto bad;
	for (i = 0; url[i] != '\0'; i++)
		if (url[i] == ',' || isspace((unsigned char)url[i]) ||
		    !isprint((unsigned char)url[i]))
			goto bad;
	return 0;
bad:
	return rf_err_set(RF_ERR_CONFIG,
	    "base_url \"%.100s\" must be an "
	    "http(s) URL without commas or spaces",
	    url);
}

/* SPKI DER of a key held in the token (via its public half). */
static int
key_spki(struct rf_key *key, struct blob *b)
{
	return rf_keys_spki_der(rf_key_public(key), &b->p, &b->len);
}

/* ------------------------------------------------------------------ */
/* rf_ca_init                                                         */

struct init_cert {
	ASN1_INTEGER *serial;
	char hex[41];
	struct blob serial_der, name, spki, alg;
	X509_ALGOR *sigalg; /* of the signing key */
	uint8_t keyid[20], ski[31];
	uint8_t *tbs, *der; /* malloc'd */
	size_t tbslen, derlen;
	int64_t nb, na;
};

static void
init_cert_clear(struct init_cert *c)
{
	ASN1_INTEGER_free(c->serial);
	blob_clear(&c->serial_der);
	blob_clear(&c->name);
	blob_clear(&c->spki);
	blob_clear(&c->alg);
	X509_ALGOR_free(c->sigalg);
	free(c->tbs);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

/* The store record of a key made for the CA, active from now. */
static void
key_rec_set(struct rf_key_rec *kr, const struct rf_key *key,
    const char *purpose, int64_t now)
{
	memset(kr, 0, sizeof(*kr));
	snprintf(kr->id, sizeof(kr->id), "%s", rf_key_id(key));
	snprintf(
	    kr->alg, sizeof(kr->alg), "%s", rf_key_alg_name(rf_key_alg(key)));
	snprintf(kr->purpose, sizeof(kr->purpose), "%s", purpose);
	snprintf(kr->state, sizeof(kr->state), "active");
	kr->created = now;
}

/* The store record of a CA certificate made by init_sign (der borrowed). */
static void
ca_rec_set(struct rf_ca_rec *cr, const char *name, const struct rf_key *key,
    const char *parent, const struct init_cert *c)
{
	memset(cr, 0, sizeof(*cr));
	snprintf(cr->name, sizeof(cr->name), "%s", name);
	snprintf(cr->key_id, sizeof(cr->key_id), "%s", rf_key_id(key));
	snprintf(cr->parent, sizeof(cr->parent), "%s", parent);
	snprintf(cr->serial, sizeof(cr->serial), "%s", c->hex);
	cr->not_before = c->nb;
	cr->not_after = c->na;
	cr->active = 1;
	cr->der = c->der;
	cr->derlen = c->derlen;
}

/* Build, sign (one audited signature) and check one CA certificate. */
static int
init_sign(struct rf_keys *keys, struct rf_key *signer, struct init_cert *c,
    const struct init_cert *issuer, struct blob *exts, size_t nexts,
    const struct rf_actor *who)
{
	struct tbs_in in;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	uint8_t aki[33];
	size_t i;
	int r;

	memset(&in, 0, sizeof(in));
	in.serial = c->serial_der;
	in.alg = c->alg;
	in.issuer = issuer->name;
	in.subject = c->name;
	in.spki = c->spki;
	in.nb = c->nb;
	in.na = c->na;
	in.exts[in.nexts++] = (struct blob){c->ski, sizeof(c->ski)};
	if (issuer != c) { /* RFC 5280 4.2.1.1: optional when self-signed */
		aki_ext(issuer->keyid, aki);
		in.exts[in.nexts++] = (struct blob){aki, sizeof(aki)};
	}
	for (i = 0; i < nexts; i++)
		in.exts[in.nexts++] = exts[i];
	if ((r = tbs_der(&in, &c->tbs, &c->tbslen)) != 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.msg = c->tbs;
	req.msglen = c->tbslen;
	req.scheme = RF_SIG_DEFAULT;
	req.what = "cert";
	req.ref = c->hex;
	if ((r = rf_keys_sign(keys, signer, &req, 1, who, &sig)) != 0)
		return r;
	r = cert_finish(c->tbs, c->tbslen, c->sigalg, &sig,
	    rf_key_public(signer), 1, &c->der, &c->derlen);
	rf_sig_clear(&sig);
	return r;
}

int
rf_ca_init(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who)
{
	return rf_ca_init_ex(cfg, st, keys, who, NULL, NULL);
}

int
rf_ca_init_ex(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who, rf_ca_keys_hook hook,
    void *arg)
{
	static const char *const labels[CA_NKEYS] = {"ringfence root",
	    "ringfence issuing", "ringfence ocsp", "ringfence audit"};
	static const char *const cns[CA_NCERTS] = {"ringfence root CA",
	    "ringfence issuing CA", "ringfence OCSP signer"};
	/* The signer of each certificate: root, root, issuing. */
	static const int signer[CA_NCERTS] = {CA_ROOT, CA_ROOT, CA_ISSUING};
	struct rf_key *key[CA_NKEYS] = {NULL};
	struct init_cert c[CA_NCERTS];
	struct blob ext[4];
	struct rf_audit *audit = NULL;
	X509_NAME *name = NULL;
	size_t i;
	struct rf_key_rec kr;
	struct rf_ca_rec cr;
	struct rf_audit_event ev;
	enum rf_key_alg alg;
	char val[16], url[512], detail[256];
	int64_t now = rf_now();
	int r = RF_ERR_INTERNAL, in_tx = 0;

	memset(c, 0, sizeof(c));
	memset(ext, 0, sizeof(ext));
	if ((r = rf_store_meta_get(st, "initialised", val, sizeof(val))) == 0)
		return rf_err_set(RF_ERR_ALREADY_INITIALISED,
		    "ringfence is already initialised in %s", cfg->home);
	if (r != RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	if ((r = rf_key_alg_parse(cfg->ca_alg, &alg)) != 0 ||
	    (r = base_url_check(cfg->base_url)) != 0)
		return r;
	if ((r = rf_audit_open(st, &audit)) != 0)
		goto out;
	for (i = 0; i < CA_NKEYS; i++)
		if ((r = rf_keys_generate(
			 keys, alg, labels[i], NULL, who, &key[i])) != 0)
			goto out;
	for (i = 0; i < CA_NCERTS; i++) {
		if ((r = serial_new(&c[i].serial, c[i].hex)) != 0)
			goto out;
		if ((name = name_make("ringfence", NULL, cns[i])) == NULL ||
		    BLOB_I2D(i2d_X509_NAME, name, &c[i].name) != 0 ||
		    BLOB_I2D(i2d_ASN1_INTEGER, c[i].serial, &c[i].serial_der) !=
			0) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		X509_NAME_free(name);
		name = NULL;
		if ((r = key_spki(key[i], &c[i].spki)) != 0 ||
		    (r = ski_ext(c[i].spki.p, c[i].spki.len, c[i].keyid,
			 c[i].ski)) != 0 ||
		    (r = rf_key_sigalg(
			 key[signer[i]], RF_SIG_DEFAULT, &c[i].sigalg)) != 0)
			goto out;
		if (BLOB_I2D(i2d_X509_ALGOR, c[i].sigalg, &c[i].alg) != 0) {
			r = RF_ERR_INTERNAL;
			goto out;
		}
		c[i].nb = now - CA_BACKDATE;
	}
	c[CA_ROOT].na = now + (int64_t)cfg->root_days * DAY;
	c[CA_ISSUING].na = now + (int64_t)cfg->issuing_days * DAY;
	c[CA_OCSP].na = now + (int64_t)cfg->ocsp_signer_days * DAY;
	/* A certificate never outlives its issuer. */
	if (c[CA_ISSUING].na > c[CA_ROOT].na)
		c[CA_ISSUING].na = c[CA_ROOT].na;
	if (c[CA_OCSP].na > c[CA_ISSUING].na)
		c[CA_OCSP].na = c[CA_ISSUING].na;

	/*
	 * Root, self-signed. RFC 5280 4.2.1.9: basicConstraints critical
	 * cA TRUE; 4.2.1.3: keyUsage critical keyCertSign, cRLSign; 4.2.1.2
	 * SKI. The AKI may be omitted in a self-signed certificate (4.2.1.1).
	 */
	if ((r = ext_blob(
		 NID_basic_constraints, "critical,CA:TRUE", &ext[0])) != 0 ||
	    (r = ext_blob(NID_key_usage, "critical,keyCertSign,cRLSign",
		 &ext[1])) != 0 ||
	    (r = init_sign(keys, key[CA_ROOT], &c[CA_ROOT], &c[CA_ROOT], ext, 2,
		 who)) != 0)
		goto out;

	/*
	 * Issuing intermediate, signed by the root: cA TRUE with
	 * pathLenConstraint 0 (it issues only end-entity certificates), KU
	 * keyCertSign + cRLSign, SKI, AKI, and the root's CRL DP (4.2.1.13).
	 */
	snprintf(url, sizeof(url), "URI:%s/crl/root.crl", cfg->base_url);
	blob_clear(&ext[0]);
	if ((r = ext_blob(NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
		 &ext[0])) != 0 ||
	    (r = ext_blob(NID_crl_distribution_points, url, &ext[2])) != 0 ||
	    (r = init_sign(keys, key[CA_ROOT], &c[CA_ISSUING], &c[CA_ROOT], ext,
		 3, who)) != 0)
		goto out;

	/*
	 * Delegated OCSP signer, issued by the issuing CA. RFC 6960 4.2.2.2:
	 * EKU id-kp-OCSPSigning; 4.2.2.2.1: id-pkix-ocsp-nocheck (its own
	 * status is not checked, so keep it short-lived); KU critical
	 * digitalSignature; cA FALSE.
	 */
	for (i = 0; i < 4; i++)
		blob_clear(&ext[i]);
	if ((r = ext_blob(
		 NID_basic_constraints, "critical,CA:FALSE", &ext[0])) != 0 ||
	    (r = ext_blob(
		 NID_key_usage, "critical,digitalSignature", &ext[1])) != 0 ||
	    (r = ext_blob(NID_ext_key_usage, "OCSPSigning", &ext[2])) != 0 ||
	    (r = ext_blob(NID_id_pkix_OCSP_noCheck, "yes", &ext[3])) != 0 ||
	    (r = init_sign(keys, key[CA_ISSUING], &c[CA_OCSP], &c[CA_ISSUING],
		 ext, 4, who)) != 0)
		goto out;

	if (hook != NULL) {
		const char *ids[CA_NKEYS];

		for (i = 0; i < CA_NKEYS; i++)
			ids[i] = rf_key_id(key[i]);
		if ((r = hook(arg, ids, ca_names, CA_NKEYS)) != 0)
			goto out;
	}
	/* Records, the audit event and the "initialised" mark commit as one. */
	if ((r = rf_store_begin(st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < CA_NKEYS; i++) {
		key_rec_set(&kr, key[i], ca_names[i], now);
		if ((r = rf_store_key_add(st, &kr)) != 0)
			goto out;
	}
	for (i = 0; i < CA_NCERTS; i++) {
		ca_rec_set(&cr, ca_names[i], key[i],
		    i == CA_ROOT ? "" : ca_names[signer[i]], &c[i]);
		if ((r = rf_store_ca_add(st, &cr)) != 0)
			goto out;
	}
	memset(&ev, 0, sizeof(ev));
	snprintf(detail, sizeof(detail), "alg %s root %s issuing %s ocsp %s",
	    rf_key_alg_name(alg), c[CA_ROOT].hex, c[CA_ISSUING].hex,
	    c[CA_OCSP].hex);
	ev.type = "init";
	ev.key_id = rf_key_id(key[CA_ROOT]);
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	ev.detail = detail;
	if ((r = rf_audit_append(audit, &ev, 1, NULL)) != 0 ||
	    (r = rf_store_meta_set(st, "initialised", "1")) != 0)
		goto out;
	r = rf_store_commit(st);
	in_tx = 0;
	if (r == 0)
		rf_test_point("init-ca-committed");
out:
	if (in_tx)
		rf_store_rollback(st);
	X509_NAME_free(name);
	for (i = 0; i < CA_NCERTS; i++)
		init_cert_clear(&c[i]);
	for (i = 0; i < 4; i++)
		blob_clear(&ext[i]);
	for (i = 0; i < CA_NKEYS; i++)
		rf_key_free(key[i]);
	rf_audit_free(audit);
	return r;
}

/* ------------------------------------------------------------------ */
/* rf_ca_open                                                         */

static void
ca_precompute_clear(struct rf_ca *ca)
{
	int i;

	X509_ALGOR_free(ca->sigalg);
	ca->sigalg = NULL;
	blob_clear(&ca->alg);
	blob_clear(&ca->issuer);
	for (i = 0; i < EXT_N; i++)
		blob_clear(&ca->ext[i]);
	free(ca->chain_tail);
	ca->chain_tail = NULL;
	ca->chain_tail_len = 0;
}

static struct ca_entry *
ca_find(struct rf_ca *ca, const char *name)
{
	size_t i;

	for (i = 0; ca != NULL && name != NULL && i < ca->nent; i++)
		if (strcmp(ca->ent[i].name, name) == 0)
			return &ca->ent[i];
	return NULL;
}

/* Everything issuance needs from the active issuing CA, computed once. */
static int
ca_precompute(struct rf_ca *ca)
{
	const struct rf_config *cfg = &ca->cfg;
	struct ca_entry *iss = &ca->ent[ca->iss], *root;
	const ASN1_OCTET_STRING *ski;
	X509 *chain[2];
	uint8_t *der = NULL;
	char url[700];
	size_t off = 0;
	struct tm tm;
	int i, l, r = RF_ERR_INTERNAL;

	ca_precompute_clear(ca);
	if ((root = ca_find(ca, iss->parent)) == NULL)
		return rf_err_set(RF_ERR_NOT_FOUND,
		    "issuer \"%s\" of CA %s "
		    "is not in the store",
		    iss->parent, iss->name);
	if (iss->key == NULL)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the key of issuing CA "
		    "%s is not in the token",
		    iss->name);
	if ((r = rf_key_sigalg(iss->key, RF_SIG_DEFAULT, &ca->sigalg)) != 0)
		return r;
	if (alg_md(ca->sigalg) == NULL ||
	    BLOB_I2D(i2d_X509_ALGOR, ca->sigalg, &ca->alg) != 0 ||
	    BLOB_I2D(
		i2d_X509_NAME, X509_get_subject_name(iss->x), &ca->issuer) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "cannot encode the issuing "
		    "CA's name and algorithm");
	if ((ski = X509_get0_subject_key_id(iss->x)) == NULL ||
	    ASN1_STRING_length(ski) != 20)
		return rf_err_set(RF_ERR_MALFORMED,
		    "issuing CA certificate "
		    "has no 20-byte SKI");
	aki_ext(ASN1_STRING_get0_data(ski), ca->aki);
	/* RFC 5280 4.2.1.9, 4.2.1.3, 4.2.1.12, 4.2.1.13, 4.2.2.1. */
	if ((r = ext_blob(NID_basic_constraints, "critical,CA:FALSE",
		 &ca->ext[EXT_BC])) != 0 ||
	    (r = ext_blob(NID_key_usage, "critical,digitalSignature",
		 &ca->ext[EXT_KU_SIG])) != 0 ||
	    (r = ext_blob(NID_key_usage,
		 "critical,digitalSignature,keyEncipherment",
		 &ca->ext[EXT_KU_SIG_ENC])) != 0 ||
	    (r = ext_blob(NID_ext_key_usage, "clientAuth",
		 &ca->ext[EXT_EKU_CLIENT])) != 0 ||
	    (r = ext_blob(NID_ext_key_usage, "serverAuth",
		 &ca->ext[EXT_EKU_SERVER])) != 0)
		return r;
	snprintf(
	    url, sizeof(url), "URI:%s/crl/%s.crl", cfg->base_url, iss->name);
	if ((r = ext_blob(
		 NID_crl_distribution_points, url, &ca->ext[EXT_CRLDP])) != 0)
		return r;
	snprintf(url, sizeof(url),
	    "OCSP;URI:%s/ocsp,caIssuers;URI:%s/ca/%s.der", cfg->base_url,
	    cfg->base_url, iss->name);
	if ((r = ext_blob(NID_info_access, url, &ca->ext[EXT_AIA])) != 0)
		return r;
	/* The chain tail: issuing CA then root, in PEM. */
	chain[0] = iss->x;
	chain[1] = root->x;
	for (i = 0; i < 2; i++) {
		if ((l = i2d_X509(chain[i], NULL)) <= 0)
			return RF_ERR_INTERNAL;
		ca->chain_tail_len += rf_ca_pem_len((size_t)l);
	}
	if ((ca->chain_tail = malloc(ca->chain_tail_len + 1)) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < 2; i++) {
		der = NULL;
		if ((l = i2d_X509(chain[i], &der)) <= 0)
			return RF_ERR_INTERNAL;
		off += rf_ca_pem_write(der, (size_t)l, ca->chain_tail + off);
		OPENSSL_free(der);
	}
	ca->chain_tail_len = off;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(iss->x), &tm) != 1)
		return RF_ERR_INTERNAL;
	ca->issuing_not_after = (int64_t)timegm(&tm);
	return 0;
}

/* Add a CA record to ca->ent: its certificate and (if held) its key. */
static int
ca_entry_add(struct rf_ca *ca, const struct rf_ca_rec *rec)
{
	struct ca_entry *e;
	const uint8_t *p = rec->der;
	int r;

	if (ca->nent >= CA_MAX)
		return rf_err_set(
		    RF_ERR_STATE, "more than %d CA certificates", CA_MAX);
	e = &ca->ent[ca->nent];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", rec->name);
	snprintf(e->parent, sizeof(e->parent), "%s", rec->parent);
	e->active = rec->active;
	e->not_before = rec->not_before;
	if ((e->x = d2i_X509(NULL, &p, (long)rec->derlen)) == NULL ||
	    p != rec->der + rec->derlen) {
		X509_free(e->x);
		e->x = NULL;
		return rf_err_set(RF_ERR_MALFORMED,
		    "stored CA certificate "
		    "\"%s\" does not parse",
		    rec->name);
	}
	/* A rotated-out CA may have had its key destroyed: keep its cert. */
	if ((r = rf_keys_load(ca->keys, rec->key_id, &e->key)) != 0) {
		if (r != RF_ERR_KEY_NOT_FOUND) {
			X509_free(e->x);
			e->x = NULL;
			return r;
		}
		rf_err_clear();
		e->key = NULL;
	}
	ca->nent++;
	return 0;
}

/*
 * The active issuing CA: a CA whose parent is "root", active, the latest
 * notBefore (a rotation makes a newer one); else "issuing".
 */
static int
ca_pick_issuer(struct rf_ca *ca)
{
	size_t i;
	int best = -1;

	for (i = 0; i < ca->nent; i++) {
		const struct ca_entry *e = &ca->ent[i];

		if (!e->active || strcmp(e->parent, "root") != 0)
			continue;
		if (best < 0 || e->not_before >= ca->ent[best].not_before)
			best = (int)i;
	}
	if (best < 0) {
		const struct ca_entry *e = ca_find(ca, "issuing");

		if (e == NULL)
			return rf_err_set(RF_ERR_NOT_FOUND,
			    "no issuing CA in "
			    "the store");
		best = (int)(e - ca->ent);
	}
	ca->iss = best;
	return 0;
}

int
rf_ca_open(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca **out)
{
	struct rf_ca *ca = NULL;
	struct rf_ca_rec *recs = NULL;
	struct rf_key_rec kr;
	char val[16];
	size_t n = 0, i;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if ((r = rf_store_meta_get(st, "initialised", val, sizeof(val))) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(RF_ERR_NOT_INITIALISED,
			    "ringfence is not initialised in %s: run "
			    "'ringfence init'",
			    cfg->home);
		return r;
	}
	if ((r = base_url_check(cfg->base_url)) != 0)
		return r;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return RF_ERR_ALLOC;
	ca->cfg = *cfg;
	ca->st = st;
	ca->keys = keys;
	if ((r = rf_store_ca_list(st, &recs, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		if ((r = ca_entry_add(ca, &recs[i])) != 0)
			goto out;
	if (ca_find(ca, "root") == NULL) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "CA certificate \"root\" "
		    "missing from the store");
		goto out;
	}
	if ((r = rf_store_key_by_purpose(st, "audit", &kr)) != 0 ||
	    (r = rf_keys_load(keys, kr.id, &ca->audit_key)) != 0)
		goto out;
	if ((r = ca_pick_issuer(ca)) != 0 || (r = ca_precompute(ca)) != 0 ||
	    (r = rf_audit_open(st, &ca->own_audit)) != 0)
		goto out;
	ca->audit = ca->own_audit;
	*out = ca; /* owned by the caller */
	ca = NULL;
	r = 0;
out:
	ERR_clear_error();
	rf_ca_rec_free_all(recs, n);
	rf_ca_free(ca);
	return r;
}

void
rf_ca_presign_after_commit(struct rf_ca *ca)
{
	ca->presign_late = 1;
}

void
rf_ca_set_audit(struct rf_ca *ca, struct rf_audit *audit)
{
	if (ca == NULL || audit == NULL)
		return;
	ca->audit = audit;
}

void
rf_ca_free(struct rf_ca *ca)
{
	size_t i;

	if (ca == NULL)
		return;
	rf_ocsp_signer_free(ca->ocsp_signer);
	for (i = 0; i < ca->nent; i++) {
		X509_free(ca->ent[i].x);
		rf_key_free(ca->ent[i].key);
	}
	rf_key_free(ca->audit_key);
	ca_precompute_clear(ca);
	rf_audit_free(ca->own_audit);
	rf_freezero(ca, sizeof(*ca)); /* cfg holds the PIN */
}

X509 *
rf_ca_cert(struct rf_ca *ca, const char *name)
{
	struct ca_entry *e = ca_find(ca, name);

	return e != NULL ? e->x : NULL;
}

struct rf_key *
rf_ca_key(struct rf_ca *ca, const char *name)
{
	struct ca_entry *e;

	if (ca != NULL && name != NULL && strcmp(name, "audit") == 0)
		return ca->audit_key;
	e = ca_find(ca, name);
	return e != NULL ? e->key : NULL;
}

const char *
rf_ca_issuer_name(struct rf_ca *ca)
{
	return ca != NULL ? ca->ent[ca->iss].name : NULL;
}

/*
 * Replace an issuing CA: a new key in the token and a certificate signed
 * by the root (like the one made by rf_ca_init), recorded active while the
 * old one is marked inactive, in one transaction with a "rotate" audit
 * event. New certificates are issued by the new CA from then on; the old
 * CA stays loaded by name for its CRL.
 */
int
rf_ca_rotate(struct rf_ca *ca, const char *old, const char *newname,
    const struct rf_actor *who)
{
	struct rf_ca_rec rec;
	struct rf_key_rec kr;
	struct rf_audit_event ev;
	struct init_cert root, c, o;
	struct rf_ca_rec orec;
	struct ca_entry *oce;
	struct blob ext[3], oext[4];
	X509_NAME *oname = NULL;
	char ocn[96], oname_s[64];
	struct ca_entry *re, *oe;
	struct rf_key *key = NULL;
	X509_NAME *name = NULL;
	const ASN1_OCTET_STRING *rski;
	enum rf_key_alg alg;
	char cn[80], url[600], label[96], detail[200];
	int64_t now = rf_now();
	size_t i;
	int r, in_tx = 0, prev_iss = ca->iss;

	memset(&rec, 0, sizeof(rec));
	memset(&root, 0, sizeof(root));
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	memset(&orec, 0, sizeof(orec));
	memset(ext, 0, sizeof(ext));
	memset(oext, 0, sizeof(oext));
	for (i = 0; newname[i] != '\0'; i++)
		if (!isalnum((unsigned char)newname[i]) && newname[i] != '-' &&
		    newname[i] != '_')
			break;
	if (i == 0 || i > 48 || newname[i] != '\0')
		return rf_err_set(RF_ERR_ARG,
		    "invalid CA name \"%.60s\": use "
		    "1-48 of A-Z a-z 0-9 - _",
		    newname);
	if (ca_find(ca, newname) != NULL ||
	    (r = rf_store_ca_get(ca->st, newname, &rec)) == 0) {
		rf_ca_rec_clear(&rec);
		return rf_err_set(
		    RF_ERR_EXISTS, "CA %s already exists", newname);
	}
	if (r != RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	if ((oe = ca_find(ca, old)) == NULL || strcmp(oe->parent, "root") != 0)
		return rf_err_set(
		    RF_ERR_NOT_FOUND, "no issuing CA named %.60s", old);
	if ((re = ca_find(ca, "root")) == NULL || re->key == NULL)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the root key is not in "
		    "the token");
	if (ca->nent + 2 > CA_MAX)
		return rf_err_set(RF_ERR_STATE, "too many CA certificates");
	if ((r = rf_key_alg_parse(ca->cfg.ca_alg, &alg)) != 0)
		return r;
	snprintf(label, sizeof(label), RF_KEY_LABEL_CA_PREFIX "%s", newname);
	snprintf(cn, sizeof(cn), "ringfence %s", newname);
	if ((r = rf_keys_generate(ca->keys, alg, label, NULL, who, &key)) != 0)
		goto out;
	/* The issuer side: the root's name and key identifier. */
	if ((rski = X509_get0_subject_key_id(re->x)) == NULL ||
	    ASN1_STRING_length(rski) != 20 ||
	    BLOB_I2D(i2d_X509_NAME, X509_get_subject_name(re->x), &root.name) !=
		0) {
		r = rf_err_set(RF_ERR_MALFORMED, "root certificate unusable");
		goto out;
	}
	memcpy(root.keyid, ASN1_STRING_get0_data(rski), 20);
	if ((r = serial_new(&c.serial, c.hex)) != 0)
		goto out;
	if ((name = name_make("ringfence", NULL, cn)) == NULL ||
	    BLOB_I2D(i2d_X509_NAME, name, &c.name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, c.serial, &c.serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = key_spki(key, &c.spki)) != 0 ||
	    (r = ski_ext(c.spki.p, c.spki.len, c.keyid, c.ski)) != 0 ||
	    (r = rf_key_sigalg(re->key, RF_SIG_DEFAULT, &c.sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, c.sigalg, &c.alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	c.nb = now - CA_BACKDATE;
	c.na = now + (int64_t)ca->cfg.issuing_days * DAY;
	{
		struct tm tm;

		if (ASN1_TIME_to_tm(X509_get0_notAfter(re->x), &tm) == 1 &&
		    (int64_t)timegm(&tm) < c.na)
			c.na = (int64_t)timegm(&tm);
	}
	/* RFC 5280 4.2.1.9, 4.2.1.3, 4.2.1.13: as the first issuing CA. */
	snprintf(url, sizeof(url), "URI:%s/crl/root.crl", ca->cfg.base_url);
	if ((r = ext_blob(NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
		 &ext[0])) != 0 ||
	    (r = ext_blob(NID_key_usage, "critical,keyCertSign,cRLSign",
		 &ext[1])) != 0 ||
	    (r = ext_blob(NID_crl_distribution_points, url, &ext[2])) != 0 ||
	    (r = init_sign(ca->keys, re->key, &c, &root, ext, 3, who)) != 0)
		goto out;

	/*
	 * RFC 6960 4.2.2.2: a delegated responder must be certified by the
	 * CA whose certificates it answers for. The OCSP key was not
	 * compromised with the issuing key, so it gets a new certificate
	 * from the new CA ("ocsp-<new>"), with the extensions of the first.
	 */
	if ((oce = ca_find(ca, "ocsp")) == NULL || oce->key == NULL) {
		r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the OCSP signing key is not in the token");
		goto out;
	}
	snprintf(ocn, sizeof(ocn), "ringfence OCSP signer %s", newname);
	snprintf(oname_s, sizeof(oname_s), "ocsp-%s", newname);
	if ((r = serial_new(&o.serial, o.hex)) != 0)
		goto out;
	if ((oname = name_make("ringfence", NULL, ocn)) == NULL ||
	    BLOB_I2D(i2d_X509_NAME, oname, &o.name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, o.serial, &o.serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = key_spki(oce->key, &o.spki)) != 0 ||
	    (r = ski_ext(o.spki.p, o.spki.len, o.keyid, o.ski)) != 0 ||
	    (r = rf_key_sigalg(key, RF_SIG_DEFAULT, &o.sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, o.sigalg, &o.alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	o.nb = now - CA_BACKDATE;
	o.na = now + (int64_t)ca->cfg.ocsp_signer_days * DAY;
	if (o.na > c.na)
		o.na = c.na;
	if ((r = ext_blob(
		 NID_basic_constraints, "critical,CA:FALSE", &oext[0])) != 0 ||
	    (r = ext_blob(
		 NID_key_usage, "critical,digitalSignature", &oext[1])) != 0 ||
	    (r = ext_blob(NID_ext_key_usage, "OCSPSigning", &oext[2])) != 0 ||
	    (r = ext_blob(NID_id_pkix_OCSP_noCheck, "yes", &oext[3])) != 0 ||
	    (r = init_sign(ca->keys, key, &o, &c, oext, 4, who)) != 0)
		goto out;
	ca_rec_set(&orec, oname_s, oce->key, newname, &o);

	if ((r = rf_store_begin(ca->st)) != 0)
		goto out;
	in_tx = 1;
	key_rec_set(&kr, key, "issuing", now);
	ca_rec_set(&rec, newname, key, "root", &c);
	memset(&ev, 0, sizeof(ev));
	snprintf(
	    detail, sizeof(detail), "issuing CA %s replaces %s", newname, old);
	ev.type = "rotate";
	ev.key_id = rf_key_id(key);
	ev.ref = c.hex;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	ev.detail = detail;
	if ((r = rf_store_key_add(ca->st, &kr)) != 0 ||
	    (r = rf_store_ca_add(ca->st, &rec)) != 0 ||
	    (r = rf_store_ca_add(ca->st, &orec)) != 0 ||
	    (r = rf_store_ca_set_active(ca->st, old, 0)) != 0 ||
	    (r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	rec.der = NULL; /* borrowed from c */
	if ((r = rf_store_commit(ca->st)) != 0)
		goto out;
	in_tx = 0;
	/* In memory: the new CA becomes the issuer. */
	rec.der = c.der;
	if ((r = ca_entry_add(ca, &rec)) != 0)
		goto out;
	rec.der = NULL;
	if ((r = ca_entry_add(ca, &orec)) != 0)
		goto out;
	oe = ca_find(ca, old);
	oe->active = 0;
	ca->iss = (int)(ca_find(ca, newname) - ca->ent);
	if ((r = ca_precompute(ca)) != 0) {
		ca->iss = prev_iss; /* stored; the next open picks it up */
		goto out;
	}
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	rec.der = NULL;
	orec.der = NULL; /* borrowed from o */
	X509_NAME_free(name);
	X509_NAME_free(oname);
	init_cert_clear(&c);
	init_cert_clear(&o);
	init_cert_clear(&root);
	for (i = 0; i < 3; i++)
		blob_clear(&ext[i]);
	for (i = 0; i < 4; i++)
		blob_clear(&oext[i]);
	rf_key_free(key);
	return r;
}

/* ------------------------------------------------------------------ */
/* Tenants                                                            */

int
rf_ca_tenant_add(struct rf_ca *ca, const char *name, const struct rf_actor *who)
{
	struct rf_audit_event ev;
	int r, in_tx = 0;

	if ((r = rf_ca_tenant_name_check(name)) != 0)
		return r;
	if ((r = rf_store_begin(ca->st)) != 0)
		return r;
	in_tx = 1;
	if ((r = rf_store_tenant_add(ca->st, name, rf_now())) != 0) {
		if (r == RF_ERR_EXISTS)
			r = rf_err_set(
			    RF_ERR_EXISTS, "tenant %s already exists", name);
		goto out;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = "tenant";
	ev.tenant = name;
	ev.detail = "add";
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	if ((r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	return r;
}

/* ------------------------------------------------------------------ */
/* The TLS server certificate of serve                                */

static struct rf_ocsp_signer *ca_ocsp_signer(struct rf_ca *ca);

static int
is_ip(const char *name)
{
	uint8_t b[16];

	return inet_pton(AF_INET, name, b) == 1 ||
	    inet_pton(AF_INET6, name, b) == 1;
}

/* RFC 5280 4.2.1.6 subjectAltName: "IP:a,DNS:b,..." for names. */
static int
tls_san(const char *const *names, size_t n, char *out, size_t outlen)
{
	size_t off = 0, i;
	int w, r;

	if (n == 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "the TLS certificate needs a name: set tls_names");
	for (i = 0; i < n; i++) {
		if (!is_ip(names[i]) && (r = dns_name_check(names[i])) != 0)
			return r;
		w = snprintf(out + off, outlen - off, "%s%s:%s",
		    i > 0 ? "," : "", is_ip(names[i]) ? "IP" : "DNS", names[i]);
		if (w < 0 || (size_t)w >= outlen - off)
			return rf_err_set(RF_ERR_CONFIG,
			    "too many TLS names: check tls_names");
		off += (size_t)w;
	}
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

static int64_t
x509_time(const ASN1_TIME *t)
{
	int64_t s = rf_ca_asn1_secs(t);

	return s < 0 ? 0 : s;
}

/*
 * The stored certificate still serves: issued by the active issuing CA,
 * its key in the token and active, a third of its validity left, and
 * every name in its SAN (RFC 6125 matching, as a client does it).
 */
static int
tls_usable(struct rf_ca *ca, const struct ca_entry *e, const char *const *names,
    size_t n, int64_t now)
{
	struct rf_key_rec kr;
	struct rf_cert_rec cr;
	char serial[41];
	int64_t nb, na;
	size_t i;
	int revoked;

	if (e == NULL || e->key == NULL ||
	    strcmp(e->parent, ca->ent[ca->iss].name) != 0)
		return 0;
	if (rf_store_key_get(ca->st, rf_key_id(e->key), &kr) != 0) {
		rf_err_clear();
		return 0;
	}
	/* Revoked, or made before it was a certificate of its CA (with no
	 * CRL DP or OCSP URL): replaced. */
	if (rf_ca_serial_str(X509_get0_serialNumber(e->x), serial) != 0 ||
	    rf_store_cert_get(ca->st, serial, &cr) != 0) {
		rf_err_clear();
		return 0;
	}
	revoked = cr.revoked;
	rf_cert_rec_clear(&cr);
	if (revoked)
		return 0;
	nb = x509_time(X509_get0_notBefore(e->x));
	na = x509_time(X509_get0_notAfter(e->x));
	if (strcmp(kr.state, "active") != 0 || na - now <= (na - nb) / 3)
		return 0;
	for (i = 0; i < n; i++)
		if ((is_ip(names[i])
			    ? X509_check_ip_asc(e->x, names[i], 0)
			    : X509_check_host(e->x, names[i], 0,
				  X509_CHECK_FLAG_NO_WILDCARDS, NULL)) != 1)
			return 0;
	return 1;
}

/*
 * A new key (EC P-256, first token) and its certificate, from the active
 * issuing CA: the server profile (cA FALSE, KU digitalSignature, EKU
 * serverAuth, SAN) with the CRL DP and AIA (OCSP, caIssuers) of every
 * certificate of that CA, so that it can be revoked like any other.
 */
static int
tls_make(struct rf_ca *ca, const char *san, const struct rf_actor *who,
    struct rf_key **keyp, struct init_cert *c)
{
	struct ca_entry *iss = &ca->ent[ca->iss];
	struct init_cert ic;
	struct blob own[1], ext[6];
	X509_NAME *name = NULL;
	int64_t now = rf_now();
	int r;

	memset(own, 0, sizeof(own));
	if ((r = rf_keys_generate(ca->keys, RF_KEY_EC_P256, RF_KEY_LABEL_TLS,
		 NULL, who, keyp)) != 0)
		return r;
	if ((r = serial_new(&c->serial, c->hex)) != 0)
		goto out;
	if ((name = name_make("ringfence", "server", "ringfence serve")) ==
		NULL ||
	    BLOB_I2D(i2d_X509_NAME, name, &c->name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, c->serial, &c->serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = key_spki(*keyp, &c->spki)) != 0 ||
	    (r = ski_ext(c->spki.p, c->spki.len, c->keyid, c->ski)) != 0 ||
	    (r = rf_key_sigalg(iss->key, RF_SIG_DEFAULT, &c->sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, c->sigalg, &c->alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	c->nb = now - CA_BACKDATE;
	c->na = now + (int64_t)ca->cfg.cert_days * DAY;
	if (c->na > ca->issuing_not_after)
		c->na = ca->issuing_not_after;
	if ((r = ext_blob(NID_subject_alt_name, san, &own[0])) != 0)
		goto out;
	ext[0] = ca->ext[EXT_BC]; /* borrowed */
	ext[1] = ca->ext[EXT_KU_SIG];
	ext[2] = ca->ext[EXT_EKU_SERVER];
	ext[3] = own[0];
	ext[4] = ca->ext[EXT_CRLDP];
	ext[5] = ca->ext[EXT_AIA];
	/* The issuer, as init_sign reads it: its name and key id. */
	memset(&ic, 0, sizeof(ic));
	ic.name = ca->issuer; /* borrowed, never cleared */
	memcpy(ic.keyid, ca->aki + sizeof(ca->aki) - 20, 20);
	r = init_sign(ca->keys, iss->key, c, &ic, ext, 6, who);
out:
	X509_NAME_free(name);
	blob_clear(&own[0]);
	return r;
}

/*
 * Record the new key and certificate with an audit event: as the service
 * certificate "tls" that serve loads, and as a certificate of its issuing
 * CA (no tenant, profile "server"), which revoke, the CRL and OCSP know.
 */
static int
tls_commit(struct rf_ca *ca, struct rf_key *key, const struct init_cert *c,
    const char *san, const struct rf_actor *who)
{
	struct rf_key_rec kr;
	struct rf_ca_rec cr;
	struct rf_cert_rec cert;
	struct rf_audit_event ev;
	char detail[1100];
	int r, in_tx = 0;

	if ((r = rf_store_begin(ca->st)) != 0)
		return r;
	in_tx = 1;
	key_rec_set(&kr, key, "tls", rf_now());
	ca_rec_set(&cr, "tls", key, ca->ent[ca->iss].name, c);
	memset(&ev, 0, sizeof(ev));
	ev.type = "issue";
	ev.key_id = rf_key_id(key);
	ev.ref = c->hex;
	snprintf(detail, sizeof(detail), "tls %s", san);
	ev.detail = detail;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	memset(&cert, 0, sizeof(cert));
	snprintf(cert.serial, sizeof(cert.serial), "%s", c->hex);
	snprintf(cert.issuer, sizeof(cert.issuer), "%s", ca->ent[ca->iss].name);
	snprintf(cert.profile, sizeof(cert.profile), "server");
	snprintf(cert.key_id, sizeof(cert.key_id), "%s", rf_key_id(key));
	snprintf(cert.subject, sizeof(cert.subject),
	    "CN=ringfence serve,OU=server,O=ringfence");
	rf_ca_thumbprints(c->der, c->derlen, cert.x5t, cert.x5t256);
	cert.not_before = c->nb;
	cert.not_after = c->na;
	cert.issued = rf_now();
	cert.reason = -1;
	cert.der = c->der; /* borrowed */
	cert.derlen = c->derlen;
	if ((r = rf_store_key_add(ca->st, &kr)) != 0 ||
	    (r = rf_store_ca_put(ca->st, &cr)) != 0 ||
	    (r = rf_store_cert_add(ca->st, &cert)) != 0 ||
	    (r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	return r;
}

int
rf_ca_tls_ensure(struct rf_ca *ca, const char *const *names, size_t n,
    const struct rf_actor *who, int *made)
{
	struct ca_entry *e = ca_find(ca, "tls");
	struct init_cert c;
	struct rf_key *key = NULL;
	const uint8_t *p;
	char san[1024], old[65] = "";
	X509 *x = NULL;
	int r;

	*made = 0;
	if ((r = tls_san(names, n, san, sizeof(san))) != 0)
		return r;
	if (tls_usable(ca, e, names, n, rf_now()))
		return 0;
	if (e == NULL && ca->nent >= CA_MAX)
		return rf_err_set(
		    RF_ERR_STATE, "more than %d CA certificates", CA_MAX);
	memset(&c, 0, sizeof(c));
	if ((r = tls_make(ca, san, who, &key, &c)) != 0 ||
	    (r = tls_commit(ca, key, &c, san, who)) != 0)
		goto out;
	/* Its OCSP response, as after any issuance (best effort: the
	 * server's refresh signs what is missing). */
	if (ca_ocsp_signer(ca) != NULL) {
		struct rf_ocsp_status st;

		memset(&st, 0, sizeof(st));
		st.serial = c.hex;
		st.reason = -1;
		if (rf_ocsp_presign(ca->ocsp_signer, &st, 1, who) != 0)
			rf_err_clear();
	}
	p = c.der;
	if ((x = d2i_X509(NULL, &p, (long)c.derlen)) == NULL) {
		r = rf_err_set(
		    RF_ERR_INTERNAL, "TLS certificate does not parse");
		goto out;
	}
	if (e == NULL) {
		e = &ca->ent[ca->nent++];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "tls");
	} else if (e->key != NULL) {
		snprintf(old, sizeof(old), "%s", rf_key_id(e->key));
	}
	X509_free(e->x);
	rf_key_free(e->key);
	e->x = x; /* both now the entry's */
	e->key = key;
	x = NULL;
	key = NULL;
	snprintf(e->parent, sizeof(e->parent), "%s", ca->ent[ca->iss].name);
	e->active = 1;
	e->not_before = c.nb;
	/* The replaced key signs nothing more (best effort: it is unused). */
	if (old[0] != '\0' &&
	    (rf_keys_disable(ca->keys, old, who) != 0 ||
		rf_store_key_set_state(ca->st, old, "disabled") != 0))
		rf_err_clear();
	*made = 1;
	r = 0;
out:
	if (key != NULL) /* made but not recorded: remove it */
		(void)!rf_keys_destroy(ca->keys, rf_key_id(key), who);
	rf_key_free(key);
	X509_free(x);
	init_cert_clear(&c);
	return r;
}

/* The names of a TLS certificate's subjectAltName, as tls_san takes them. */
#define TLS_RENEW_NAMES 16
static int
tls_names_of(X509 *x, char names[][256], size_t *n)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *g;
	int i, len;

	*n = 0;
	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) ==
	    NULL)
		return rf_err_set(
		    RF_ERR_STATE, "serve's HTTPS certificate names nothing");
	for (i = 0; i < sk_GENERAL_NAME_num(gens) && *n < TLS_RENEW_NAMES;
	     i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		len = g->type == GEN_DNS || g->type == GEN_IPADD
		    ? ASN1_STRING_length(g->d.ia5)
		    : -1;
		if (g->type == GEN_DNS && len > 0 && len < 256) {
			memcpy(names[*n], ASN1_STRING_get0_data(g->d.ia5),
			    (size_t)len);
			names[(*n)++][len] = '\0';
		} else if (g->type == GEN_IPADD && (len == 4 || len == 16) &&
		    inet_ntop(len == 4 ? AF_INET : AF_INET6,
			ASN1_STRING_get0_data(g->d.ip), names[*n],
			256) != NULL) {
			(*n)++;
		}
	}
	GENERAL_NAMES_free(gens);
	return *n > 0 ? 0
		      : rf_err_set(RF_ERR_STATE,
			    "serve's HTTPS certificate names nothing");
}

int
rf_ca_tls_renew(struct rf_ca *ca, const struct rf_actor *who, int *made)
{
	struct ca_entry *e = ca_find(ca, "tls");
	char names[TLS_RENEW_NAMES][256];
	const char *ptr[TLS_RENEW_NAMES];
	size_t n = 0, i;
	int r;

	*made = 0;
	if (e == NULL || e->x == NULL)
		return 0; /* serve never ran: it makes one when it starts */
	if ((r = tls_names_of(e->x, names, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		ptr[i] = names[i];
	return rf_ca_tls_ensure(ca, ptr, n, who, made);
}

/* ------------------------------------------------------------------ */
/* Issuance                                                           */

struct issue_item {
	const struct rf_issue_req *req;
	struct rf_key *genkey; /* keygen: the new key in the token */
	int given;	       /* genkey is a copy of req->key */
	int pooled;	       /* genkey came from the standby pool */
	int rsa;	       /* the key is RSA (server KU) */
	struct blob spki;      /* canonical SPKI DER (malloc'd if CSR) */
	int spki_malloc;
	uint8_t ski[31];
	char key_id[65];
	char ident[RF_KEY_IDENT_LEN + 1]; /* common/keyident.h */
	char subject[256];
	struct blob name; /* subject DER */
	ASN1_INTEGER *serial;
	struct blob serial_der;
	struct blob san;
	char hex[41];
	int64_t nb, na;
	uint8_t *tbs; /* malloc'd */
	size_t tbslen;
	uint8_t *der; /* malloc'd */
	size_t derlen;
	char x5t[32], x5t256[48]; /* of der, made once by issue_commit */
	int dirty;		  /* needs a (new) serial, TBS and signature */
	int same_csr; /* the CSR (and profile) of the request before */
	int defer; /* its proof of possession is checked while it is signed */
	int csr_r; /* the CSR check, made before the item's own checks */
	char csr_msg[256];
	struct rf_csr *csr; /* checked but for its proof of possession */
};

static void
item_clear(struct issue_item *it)
{
	rf_key_free(it->genkey);
	rf_csr_free(it->csr);
	if (it->spki_malloc)
		free(it->spki.p);
	else
		blob_clear(&it->spki);
	blob_clear(&it->name);
	ASN1_INTEGER_free(it->serial);
	blob_clear(&it->serial_der);
	blob_clear(&it->san);
	free(it->tbs);
	free(it->der);
	memset(it, 0, sizeof(*it));
}

/*
 * OCSP pre-signing is wired by the ocsp module: issuance signs the
 * responses with its certificates (issue_sign) and stores them in its
 * transaction. No signer, or a signing failure, fails no issuance (the
 * responder signs what it lacks when it refreshes).
 */
static struct rf_ocsp_signer *
ca_ocsp_signer(struct rf_ca *ca)
{
	struct ca_entry *iss = &ca->ent[ca->iss], *oe;
	char oname[64];

	if (ca->ocsp_signer != NULL &&
	    strcmp(rf_ocsp_signer_issuer(ca->ocsp_signer), iss->name) != 0) {
		rf_ocsp_signer_free(ca->ocsp_signer); /* the issuer rotated */
		ca->ocsp_signer = NULL;
	}
	if (ca->ocsp_signer == NULL) {
		rf_ca_ocsp_name(iss->name, oname);
		if ((oe = ca_find(ca, oname)) == NULL || oe->key == NULL ||
		    rf_ocsp_signer_new(&ca->cfg, ca->st, ca->keys, oe->key,
			oe->x, iss->x, iss->name, &ca->ocsp_signer) != 0) {
			rf_err_clear();
			return NULL;
		}
	}
	return ca->ocsp_signer;
}

/*
 * The OCSP responses of a batch's certificates ("good"), prepared to be
 * signed with them. NULL (nothing to sign) without an OCSP signer or when
 * preparing fails: the server signs what it lacks when it refreshes.
 */
static struct rf_ocsp_presigned *
issue_ocsp_prepare(struct rf_ca *ca, const struct issue_item *items, size_t n)
{
	struct rf_ocsp_presigned *pre = NULL;
	struct rf_ocsp_status *sts;
	size_t i;

	if (ca->presign_late || ca_ocsp_signer(ca) == NULL)
		return NULL;
	if ((sts = calloc(n, sizeof(*sts))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		sts[i].serial = items[i].hex;
		sts[i].reason = -1;
	}
	if (rf_ocsp_presign_prepare(ca->ocsp_signer, sts, n, &pre) != 0)
		rf_err_clear();
	free(sts);
	return pre;
}

void
rf_ca_ocsp_name(const char *issuer, char out[64])
{
	if (strcmp(issuer, "issuing") == 0)
		snprintf(out, 64, "ocsp");
	else
		snprintf(out, 64, "ocsp-%.58s", issuer);
}

/* Key id: hex SHA-256 of the SPKI DER, as keys names keys. */
static void
spki_id(const struct blob *spki, char id[65])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(spki->p, spki->len, md);
	rf_hex(md, sizeof(md), id);
}

/* Pass 1: arguments, tenant, CSR. Nothing is created here. */
static int
issue_check(
    struct rf_ca *ca, struct issue_item *it, const struct issue_item *prev)
{
	const char *prev_tenant = prev != NULL ? prev->req->tenant : NULL;
	const struct rf_issue_req *q = it->req;
	struct rf_tenant t;
	int r;

	if (q->profile != RF_PROFILE_CLIENT &&
	    q->profile != RF_PROFILE_SERVER &&
	    q->profile != RF_PROFILE_ASSERTION &&
	    q->profile != RF_PROFILE_CONNECTOR)
		return rf_err_set(RF_ERR_ARG,
		    "unknown profile: use client, "
		    "server or assertion");
	/* A connector's certificate is short-lived (connector_days). */
	if (q->profile == RF_PROFILE_CONNECTOR &&
	    q->days > ca->cfg.connector_days)
		return rf_err_set(RF_ERR_ARG,
		    "a connector certificate is valid at most connector_days "
		    "(%d), not %d days",
		    ca->cfg.connector_days, q->days);
	if ((r = rf_ca_tenant_name_check(q->tenant)) != 0)
		return r;
	/* A batch is usually for one tenant: look it up once. */
	if (prev_tenant == NULL || strcmp(prev_tenant, q->tenant) != 0) {
		if ((r = rf_store_tenant_get(ca->st, q->tenant, &t)) != 0) {
			if (r == RF_ERR_NOT_FOUND)
				r = rf_err_set(RF_ERR_NOT_FOUND,
				    "unknown tenant %s: add it with "
				    "'ringfence tenant add %s'",
				    q->tenant, q->tenant);
			return r;
		}
	}
	if (q->profile == RF_PROFILE_SERVER) {
		if (q->dns == NULL)
			return rf_err_set(RF_ERR_ARG,
			    "the server profile needs "
			    "a DNS name (--dns)");
		if ((r = dns_name_check(q->dns)) != 0)
			return r;
	} else if (q->dns != NULL)
		return rf_err_set(RF_ERR_ARG,
		    "a DNS name applies to the server "
		    "profile only");
	if (q->days < 0 || q->days > 3650)
		return rf_err_set(
		    RF_ERR_ARG, "validity of %d days: use 1-3650", q->days);
	if (q->key != NULL) {
		if (q->csr != NULL || q->keygen != RF_KEY_NONE)
			return rf_err_set(RF_ERR_ARG,
			    "give one of a CSR, a key algorithm to generate "
			    "or a key");
		return 0;
	}
	if ((q->csr == NULL) == (q->keygen == RF_KEY_NONE))
		return rf_err_set(RF_ERR_ARG,
		    "give either a CSR or a key "
		    "algorithm to generate");
	if (q->csr == NULL) {
		if (q->keygen < RF_KEY_EC_P256 || q->keygen > RF_KEY_RSA_3072)
			return rf_err_set(RF_ERR_ARG, "unknown key algorithm");
		return 0;
	}
	/* The same CSR as the previous request (and profile): checked. */
	if (it->same_csr && prev != NULL) {
		if ((it->spki.p = malloc(prev->spki.len)) == NULL)
			return RF_ERR_ALLOC;
		memcpy(it->spki.p, prev->spki.p, prev->spki.len);
		it->spki.len = prev->spki.len;
		it->spki_malloc = 1;
		it->rsa = prev->rsa;
		memcpy(it->ski, prev->ski, sizeof(it->ski));
		memcpy(it->key_id, prev->key_id, sizeof(it->key_id));
		memcpy(it->ident, prev->ident, sizeof(it->ident));
		return 0;
	}
	/* Checked by issue_csrs(); its error is reported in request order. */
	if (it->csr_r != 0)
		return rf_err_set(it->csr_r, "%s", it->csr_msg);
	if (it->spki.p == NULL)
		return rf_err_set(RF_ERR_INTERNAL, "CSR was not checked");
	return 0;
}

/*
 * One CSR: its allow-list and extensions, then key id and SKI; its
 * signature too unless the batch proves it while the token signs
 * (it->csr is then kept for proofs_start).
 */
static void
issue_csr(struct issue_item *it, int defer)
{
	const struct rf_issue_req *q = it->req;
	int r;

	if ((r = rf_ca_csr_open(q->csr, q->csrlen, q->profile, &it->csr,
		 &it->spki.p, &it->spki.len)) == 0) {
		it->spki_malloc = 1;
		it->rsa = EVP_PKEY_get_base_id(rf_ca_csr_key(it->csr)) ==
		    EVP_PKEY_RSA;
		spki_id(&it->spki, it->key_id);
		if ((r = ski_ext(it->spki.p, it->spki.len, (uint8_t[20]){0},
			 it->ski)) == 0)
			r = rf_key_ident_spki(
			    it->spki.p, it->spki.len, it->ident);
	}
	if (r == 0 && !defer)
		r = rf_ca_csr_prove(it->csr);
	if (r != 0 || !defer) {
		rf_csr_free(it->csr);
		it->csr = NULL;
	}
	if ((it->csr_r = r) != 0)
		snprintf(it->csr_msg, sizeof(it->csr_msg), "%s", rf_err_msg(r));
	rf_err_clear();
}

static void
issue_csr_range(void *arg, size_t from, size_t to)
{
	struct issue_item *items = arg;
	size_t i;

	for (i = from; i < to; i++)
		if (items[i].req->csr != NULL && !items[i].same_csr)
			issue_csr(&items[i], items[i].defer);
}

/*
 * The CSRs of a batch are checked up front, on two threads when there are
 * many. A request repeating the CSR of the one before it (same bytes and
 * profile) is not checked again: issue_check copies the result. The
 * proofs of possession of a large batch (a signature verification each)
 * are left to proofs_start, while the token signs.
 */
static void
issue_csrs(struct issue_item *items, size_t n)
{
	const struct rf_issue_req *q, *p;
	size_t i, m = 0;

	for (i = 0; i < n; i++) {
		q = items[i].req;
		p = i > 0 ? items[i - 1].req : NULL;
		if (q->csr != NULL && p != NULL && p->csr != NULL &&
		    p->csrlen == q->csrlen && p->profile == q->profile &&
		    (p->csr == q->csr ||
			memcmp(p->csr, q->csr, q->csrlen) == 0))
			items[i].same_csr = 1;
		else if (q->csr != NULL)
			m++;
	}
	for (i = 0; i < n; i++)
		items[i].defer = m >= CSR_THREAD_MIN;
	rf_parallel(
	    n, m >= CSR_THREAD_MIN ? CSR_THREADS : 1, issue_csr_range, items);
}

/*
 * The proofs of possession left by issue_csrs, checked on a thread of
 * their own while the batch is signed (the token's signatures, through
 * keyd, take the other core): a certificate is released only once its
 * request's proof holds, and a batch with one that fails stores nothing.
 */
struct proofs {
	struct issue_item *items;
	size_t n;
	pthread_t tid;
	int running;
};

static void *
proofs_main(void *arg)
{
	struct proofs *pf = arg;
	struct issue_item *it;
	size_t i;

	for (i = 0; i < pf->n; i++) {
		it = &pf->items[i];
		if (it->csr == NULL)
			continue;
		if ((it->csr_r = rf_ca_csr_prove(it->csr)) != 0)
			snprintf(it->csr_msg, sizeof(it->csr_msg), "%s",
			    rf_err_msg(it->csr_r));
		rf_err_clear();
		rf_csr_free(it->csr);
		it->csr = NULL;
	}
	return NULL;
}

static void
proofs_start(struct proofs *pf, struct issue_item *items, size_t n)
{
	size_t i;

	pf->items = items;
	pf->n = n;
	pf->running = 0;
	for (i = 0; i < n && items[i].csr == NULL; i++)
		;
	if (i < n && pthread_create(&pf->tid, NULL, proofs_main, pf) == 0)
		pf->running = 1;
	else if (i < n)
		(void)proofs_main(pf); /* no thread: here, first */
}

static void
proofs_wait(struct proofs *pf)
{
	if (pf->running) {
		pthread_join(pf->tid, NULL);
		pf->running = 0;
	}
}

/* Wait for the proofs; the first that failed, in request order. */
static int
proofs_finish(struct proofs *pf)
{
	size_t i;

	proofs_wait(pf);
	for (i = 0; pf->items != NULL && i < pf->n; i++)
		if (pf->items[i].csr_r != 0)
			return rf_err_set(pf->items[i].csr_r, "request %zu: %s",
			    i + 1, pf->items[i].csr_msg);
	return 0;
}

/* RFC 5280 4.1.2.6: the subject names the tenant and profile. */
static int
issue_subject(struct issue_item *it)
{
	const char *prof = rf_profile_name(it->req->profile);
	X509_NAME *n;
	int r;

	if ((n = name_make("ringfence", prof, it->req->tenant)) == NULL)
		return RF_ERR_ALLOC;
	r = BLOB_I2D(i2d_X509_NAME, n, &it->name);
	X509_NAME_free(n);
	if (r != 0)
		return r;
	snprintf(it->subject, sizeof(it->subject), "CN=%s,OU=%s,O=ringfence",
	    it->req->tenant, prof);
	if (it->req->profile == RF_PROFILE_SERVER) {
		char val[300];

		snprintf(val, sizeof(val), "DNS:%s", it->req->dns);
		return ext_blob(NID_subject_alt_name, val, &it->san);
	}
	return 0;
}

/*
 * Extensions, in order: SKI, AKI, basicConstraints, keyUsage, EKU, SAN,
 * CRL DP, AIA (RFC 5280 4.2.1.x; profiles in docs/ca.md).
 */
static int
issue_tbs(struct rf_ca *ca, struct issue_item *it, int64_t now)
{
	const struct rf_issue_req *q = it->req;
	struct tbs_in in;
	int days = q->days > 0			 ? q->days
	    : q->profile == RF_PROFILE_CONNECTOR ? ca->cfg.connector_days
						 : ca->cfg.cert_days,
	    r;

	ASN1_INTEGER_free(it->serial);
	it->serial = NULL;
	blob_clear(&it->serial_der);
	free(it->tbs);
	it->tbs = NULL;
	if ((r = serial_new(&it->serial, it->hex)) != 0 ||
	    (r = BLOB_I2D(i2d_ASN1_INTEGER, it->serial, &it->serial_der)) != 0)
		return r;
	/* A small backdate absorbs relying parties' clock skew. */
	it->nb = now - CA_BACKDATE;
	it->na = now + (int64_t)days * DAY;
	if (it->na > ca->issuing_not_after)
		it->na = ca->issuing_not_after;
	memset(&in, 0, sizeof(in));
	in.serial = it->serial_der;
	in.alg = ca->alg;
	in.issuer = ca->issuer;
	in.subject = it->name;
	in.spki = it->spki;
	in.nb = it->nb;
	in.na = it->na;
	in.exts[in.nexts++] = (struct blob){it->ski, sizeof(it->ski)};
	in.exts[in.nexts++] = (struct blob){ca->aki, sizeof(ca->aki)};
	in.exts[in.nexts++] = ca->ext[EXT_BC];
	switch (q->profile) {
	case RF_PROFILE_CLIENT:
	case RF_PROFILE_CONNECTOR:
		in.exts[in.nexts++] = ca->ext[EXT_KU_SIG];
		in.exts[in.nexts++] = ca->ext[EXT_EKU_CLIENT];
		break;
	case RF_PROFILE_SERVER:
		/* RSA key exchange (TLS 1.2) needs keyEncipherment. */
		in.exts[in.nexts++] =
		    ca->ext[it->rsa ? EXT_KU_SIG_ENC : EXT_KU_SIG];
		in.exts[in.nexts++] = ca->ext[EXT_EKU_SERVER];
		in.exts[in.nexts++] = it->san;
		break;
	default:
		in.exts[in.nexts++] = ca->ext[EXT_KU_SIG];
		break;
	}
	in.exts[in.nexts++] = ca->ext[EXT_CRLDP];
	in.exts[in.nexts++] = ca->ext[EXT_AIA];
	return tbs_der(&in, &it->tbs, &it->tbslen);
}

/*
 * keyd's word that a batch's requests are recorded (struct rf_recorded):
 * the requests sent, those keyd has recorded, and the signing finished
 * (after which nothing more is said).
 */
struct told {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int want, got, done;
};

static void
told_one(void *arg)
{
	struct told *t = arg;

	pthread_mutex_lock(&t->mu);
	t->got++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void
told_set(struct told *t, int *field, int v)
{
	pthread_mutex_lock(&t->mu);
	*field = v;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* Until every request is recorded, or the signing is over. */
static void
told_wait(struct told *t)
{
	pthread_mutex_lock(&t->mu);
	while (!t->done && (t->want == 0 || t->got < t->want))
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

/*
 * Sign every dirty item, and the OCSP response of every item, in one
 * rf_keys_sign_group: in this process one durable audit append before the
 * token signs any of them (through keyd, one request per key; with t,
 * each recorded whole and said to be through t). Then the certificates are
 * assembled and *pre holds the signed responses, NULL when they could not
 * be made (that alone fails nothing: the server signs what it lacks when
 * it refreshes).
 */
static int
issue_sign(struct rf_ca *ca, struct issue_item *items, size_t n,
    const struct rf_actor *who, struct told *t, struct rf_ocsp_presigned **pre)
{
	struct rf_recorded rec = {told_one, t};
	struct rf_sign_set sets[2];
	struct rf_ocsp_presigned *op = NULL;
	struct rf_sign_req *reqs = NULL;
	struct rf_sig *sigs = NULL, *osigs = NULL;
	size_t *idx = NULL, m = 0, on = 0, nsets = 0, i;
	int r = RF_ERR_INTERNAL;

	*pre = NULL;
	memset(sets, 0, sizeof(sets));
	if ((reqs = calloc(n, sizeof(*reqs))) == NULL ||
	    (sigs = calloc(n, sizeof(*sigs))) == NULL ||
	    (osigs = calloc(n, sizeof(*osigs))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!items[i].dirty)
			continue;
		reqs[m].msg = items[i].tbs;
		reqs[m].msglen = items[i].tbslen;
		reqs[m].scheme = RF_SIG_DEFAULT;
		reqs[m].what = "cert";
		reqs[m].ref = items[i].hex;
		reqs[m].tenant = items[i].req->tenant;
		reqs[m].on_behalf = items[i].req->on_behalf;
		reqs[m].proof = items[i].req->proof;
		reqs[m].prooflen = items[i].req->prooflen;
		idx[m++] = i;
	}
	if (m > 0) {
		sets[nsets].key = ca->ent[ca->iss].key;
		sets[nsets].reqs = reqs;
		sets[nsets].n = m;
		sets[nsets].who = who;
		sets[nsets++].sigs = sigs;
	}
	if ((op = issue_ocsp_prepare(ca, items, n)) != NULL) {
		sets[nsets].key = rf_ocsp_signer_key(ca->ocsp_signer);
		sets[nsets].reqs = rf_ocsp_presigned_reqs(op, &on);
		sets[nsets].n = on;
		sets[nsets].who = who;
		sets[nsets++].sigs = osigs;
	}
	/* Asked only where a caller waits for it (rf_ca_issue_pipelined). */
	if (t != NULL) {
		for (i = 0; i < nsets; i++)
			sets[i].recorded = &rec;
		told_set(t, &t->want, (int)nsets);
	}
	if (nsets > 0)
		rf_keys_sign_group(ca->keys, sets, nsets);
	if (m > 0 && sets[0].r != 0) {
		r = rf_err_set(sets[0].r, "%s", sets[0].msg);
		goto out;
	}
	if (op != NULL) {
		if (sets[nsets - 1].r == 0 &&
		    rf_ocsp_presign_finish(op, osigs) == 0) {
			*pre = op;
			op = NULL;
		}
		rf_err_clear();
	}
	for (i = 0; i < m; i++) {
		struct issue_item *it = &items[idx[i]];

		free(it->der);
		it->der = NULL;
		/* The first of the batch is also parsed as a relying party. */
		if ((r = cert_finish(it->tbs, it->tbslen, ca->sigalg, &sigs[i],
			 rf_key_public(ca->ent[ca->iss].key), i == 0, &it->der,
			 &it->derlen)) != 0)
			goto out;
		it->dirty = 0;
	}
	r = 0;
out:
	for (i = 0; sigs != NULL && osigs != NULL && i < n; i++) {
		rf_sig_clear(&sigs[i]);
		rf_sig_clear(&osigs[i]);
	}
	if (r != 0) {
		rf_ocsp_presigned_free(*pre);
		*pre = NULL;
	}
	rf_ocsp_presigned_free(op);
	free(sigs);
	free(osigs);
	free(reqs);
	free(idx);
	return r;
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

/*
 * Store every item in one transaction. A serial collision marks that item
 * dirty and returns RF_ERR_EXISTS with everything rolled back.
 */
static int
issue_commit(struct rf_ca *ca, struct issue_item *items, size_t n,
    const struct rf_actor *who, int64_t now, rf_ca_issue_hook hook, void *arg,
    const struct rf_ocsp_presigned *pre)
{
	struct rf_audit_event *evs = NULL;
	struct rf_key_rec kr;
	struct rf_cert_rec cr;
	size_t i;
	int r = RF_ERR_INTERNAL, in_tx = 0;

	if ((evs = calloc(n, sizeof(*evs))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = rf_store_begin(ca->st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < n; i++) {
		struct issue_item *it = &items[i];
		const struct rf_issue_req *q = it->req;

		if (it->given) {
			/* Recorded by the caller before use: now in use. */
			if ((r = rf_store_key_set_state(
				 ca->st, it->key_id, "active")) != 0)
				goto out;
		} else if (it->genkey != NULL && !it->pooled) {
			/* A pool key's record became this connection's when
			 * taken. */
			memset(&kr, 0, sizeof(kr));
			snprintf(kr.id, sizeof(kr.id), "%s", it->key_id);
			snprintf(kr.alg, sizeof(kr.alg), "%s",
			    rf_key_alg_name(q->keygen));
			snprintf(kr.purpose, sizeof(kr.purpose), "connection");
			snprintf(kr.tenant, sizeof(kr.tenant), "%s", q->tenant);
			snprintf(kr.state, sizeof(kr.state), "active");
			kr.created = now;
			if ((r = rf_store_key_add(ca->st, &kr)) != 0)
				goto out;
		}
		memset(&cr, 0, sizeof(cr));
		snprintf(cr.serial, sizeof(cr.serial), "%s", it->hex);
		snprintf(
		    cr.issuer, sizeof(cr.issuer), "%s", ca->ent[ca->iss].name);
		snprintf(cr.tenant, sizeof(cr.tenant), "%s", q->tenant);
		snprintf(cr.profile, sizeof(cr.profile), "%s",
		    rf_profile_name(q->profile));
		snprintf(cr.key_id, sizeof(cr.key_id), "%s", it->key_id);
		snprintf(cr.key_ident, sizeof(cr.key_ident), "%s", it->ident);
		snprintf(cr.conn, sizeof(cr.conn), "%s",
		    q->connection != NULL ? q->connection : "");
		snprintf(cr.subject, sizeof(cr.subject), "%s", it->subject);
		rf_ca_thumbprints(it->der, it->derlen, it->x5t, it->x5t256);
		memcpy(cr.x5t, it->x5t, sizeof(cr.x5t));
		memcpy(cr.x5t256, it->x5t256, sizeof(cr.x5t256));
		cr.not_before = it->nb;
		cr.not_after = it->na;
		cr.issued = now;
		cr.reason = -1;
		cr.der = it->der;
		cr.derlen = it->derlen;
		if ((r = rf_store_cert_add(ca->st, &cr)) != 0) {
			if (r == RF_ERR_EXISTS)
				it->dirty = 1;
			goto out;
		}
		if (hook != NULL &&
		    (r = hook(arg, i, it->hex, it->key_id)) != 0)
			goto out;
		evs[i].type = "issue";
		evs[i].key_id = it->key_id;
		evs[i].tenant = q->tenant;
		evs[i].detail = rf_profile_name(q->profile);
		evs[i].ref = it->hex;
		evs[i].actor = who != NULL ? who->actor : NULL;
		evs[i].source = who != NULL ? who->source : NULL;
		evs[i].time = now;
	}
	/* The responses say "good" of what commits here, with it. */
	if (pre != NULL && (r = rf_ocsp_presigned_store(pre)) != 0)
		goto out;
	/* The "issue" leaves commit with the records they describe. */
	if ((r = rf_audit_append(ca->audit, evs, n, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	free(evs);
	return r;
}

static int
issue_output(struct rf_ca *ca, struct issue_item *it, struct rf_issued *o)
{
	size_t l;

	snprintf(o->serial, sizeof(o->serial), "%s", it->hex);
	snprintf(o->key_id, sizeof(o->key_id), "%s", it->key_id);
	o->pooled = it->pooled;
	memcpy(o->x5t, it->x5t, sizeof(o->x5t));
	memcpy(o->x5t256, it->x5t256, sizeof(o->x5t256));
	l = rf_ca_pem_len(it->derlen);
	if ((o->chain_pem = malloc(l + ca->chain_tail_len + 1)) == NULL)
		return RF_ERR_ALLOC;
	l = rf_ca_pem_write(it->der, it->derlen, o->chain_pem);
	memcpy(o->chain_pem + l, ca->chain_tail, ca->chain_tail_len);
	o->chain_pem[l + ca->chain_tail_len] = '\0';
	o->der = it->der; /* moved to the caller */
	o->derlen = it->derlen;
	it->der = NULL;
	return 0;
}

/*
 * The keys of the --keygen requests, with their SPKI, SKI and id: taken
 * from the standby pool (pool.h: moved to "taken" with their audit leaves
 * in one transaction, then loaded and checked), and those the pool could
 * not give made in the token in one batch (one durable audit commit).
 */
static int
issue_keygen(struct rf_ca *ca, const struct rf_issue_req *reqs,
    struct issue_item *items, size_t n, const struct rf_actor *who)
{
	struct rf_pool_want *want = NULL;
	struct rf_keygen *kg = NULL;
	struct rf_key **keys = NULL, **made = NULL;
	char(*label)[200] = NULL, (*by)[200] = NULL;
	size_t *pos = NULL, *gpos = NULL;
	size_t i, j, k = 0, g = 0, taken = 0;
	int r = RF_ERR_INTERNAL;

	if ((want = calloc(n, sizeof(*want))) == NULL ||
	    (kg = calloc(n, sizeof(*kg))) == NULL ||
	    (keys = calloc(n, sizeof(*keys))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (label = calloc(n, sizeof(*label))) == NULL ||
	    (by = calloc(n, sizeof(*by))) == NULL ||
	    (pos = calloc(n, sizeof(*pos))) == NULL ||
	    (gpos = calloc(n, sizeof(*gpos))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (reqs[i].csr != NULL || reqs[i].key != NULL)
			continue;
		snprintf(label[k], sizeof(label[k]), "%s/%s", reqs[i].tenant,
		    rf_profile_name(reqs[i].profile));
		snprintf(by[k], sizeof(by[k]), "%s/%s", reqs[i].tenant,
		    reqs[i].connection != NULL
			? reqs[i].connection
			: rf_profile_name(reqs[i].profile));
		want[k].alg = reqs[i].keygen;
		want[k].tenant = reqs[i].tenant;
		want[k].taken_by = by[k];
		want[k].ref = reqs[i].ref != NULL ? reqs[i].ref : "issuance";
		pos[k++] = i;
	}
	/* The caller's own keys (recorded by it before use): copies. */
	for (i = 0; i < n; i++) {
		if (reqs[i].csr != NULL || reqs[i].key == NULL)
			continue;
		if ((r = rf_key_dup(reqs[i].key, &items[i].genkey)) != 0)
			goto out;
		items[i].given = 1;
	}
	if (k == 0) {
		r = 0;
		goto rsa;
	}
	if ((r = rf_pool_take(
		 ca->keys, ca->audit, want, k, who, keys, &taken)) != 0)
		goto out;
	/* Owned by the items from here: a failure destroys them unused. */
	for (j = 0; j < k; j++) {
		items[pos[j]].genkey = keys[j];
		items[pos[j]].pooled = keys[j] != NULL;
		if (keys[j] == NULL) {
			kg[g].alg = want[j].alg;
			kg[g].label = label[j];
			kg[g].tenant = want[j].tenant;
			gpos[g++] = pos[j];
		}
	}
	if (g > 0) {
		if ((r = rf_keys_generate_many(ca->keys, kg, g, who, made)) !=
		    0)
			goto out;
		for (j = 0; j < g; j++)
			items[gpos[j]].genkey = made[j]; /* freed with it */
	}
rsa:
	for (i = 0; i < n; i++) {
		struct issue_item *it = &items[i];
		enum rf_key_alg alg;

		if (it->genkey == NULL)
			continue;
		alg = rf_key_alg(it->genkey);
		it->rsa = alg == RF_KEY_RSA_2048 || alg == RF_KEY_RSA_3072;
		if ((r = key_spki(it->genkey, &it->spki)) != 0 ||
		    (r = ski_ext(it->spki.p, it->spki.len, (uint8_t[20]){0},
			 it->ski)) != 0 ||
		    (r = rf_key_ident_spki(
			 it->spki.p, it->spki.len, it->ident)) != 0)
			goto out;
		spki_id(&it->spki, it->key_id);
		if (strcmp(it->key_id, rf_key_id(it->genkey)) != 0) {
			r = rf_err_set(RF_ERR_INTERNAL,
			    "key id of the new key disagrees with keys");
			goto out;
		}
	}
	r = 0;
out:
	free(want);
	free(label);
	free(by);
	free(keys);
	free(made);
	free(kg);
	free(pos);
	free(gpos);
	return r;
}

/* Destroy the keys made for an issuance that did not commit. */
static void
issue_unkeygen(struct rf_ca *ca, struct issue_item *items, size_t n,
    const struct rf_actor *who)
{
	const char **ids;
	size_t i, k = 0, done;

	if ((ids = calloc(n, sizeof(*ids))) == NULL)
		return; /* unused keys stay: they sign nothing */
	for (i = 0; i < n; i++)
		if (items[i].genkey != NULL && !items[i].given)
			ids[k++] = rf_key_id(items[i].genkey);
	if (k > 8) /* one pass over the token */
		(void)!rf_keys_destroy_many(ca->keys, ids, k, who, &done);
	else
		for (i = 0; i < k; i++)
			(void)!rf_keys_destroy(ca->keys, ids[i], who);
	/* A pool key is taken once: its record says it is gone. */
	for (i = 0; i < n; i++)
		if (items[i].pooled && items[i].genkey != NULL)
			(void)!rf_store_key_set_state(
			    ca->st, rf_key_id(items[i].genkey), "destroyed");
	free(ids);
}

/* Two requests for one tenant connection (no connection: any of it). */
static int
same_conn(const struct rf_issue_req *a, const struct rf_issue_req *b)
{
	const char *x = a->connection != NULL ? a->connection : "";
	const char *y = b->connection != NULL ? b->connection : "";

	return strcmp(a->tenant, b->tenant) == 0 &&
	    (*x == '\0' || *y == '\0' || strcmp(x, y) == 0);
}

int
rf_ca_issue(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out)
{
	return rf_ca_issue_ex(ca, reqs, n, who, out, NULL, NULL);
}

/*
 * One batch of an issuance: prepared (checks, keys) and committed on the
 * caller's thread, signed on the caller's or, in a pipeline, on a thread
 * of its own while the batch before it commits (batch_sign touches no
 * store: its signatures go through keys; the OCSP signer is made before).
 */
struct issue_batch {
	struct rf_ca *ca;
	const struct rf_issue_req *reqs;
	const struct rf_actor *who;
	struct issue_item *items;
	size_t n;
	int64_t now;
	struct proofs pf;
	struct rf_ocsp_presigned *pre;
	int committed;
	struct rf_err_held sign; /* batch_sign's result, and its message */
	struct told told;	 /* keyd has recorded its requests */
	pthread_t tid;
	int running;
};

/* The batch of reqs, its CSRs parsed; batch_end frees it. */
static int
batch_begin(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct issue_batch *b)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->told.mu, NULL);
	pthread_cond_init(&b->told.cv, NULL);
	b->ca = ca;
	b->reqs = reqs;
	b->who = who;
	b->n = n;
	b->now = rf_now();
	if ((b->items = calloc(n, sizeof(*b->items))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++)
		b->items[i].req = &reqs[i];
	issue_csrs(b->items, n);
	return 0;
}

/* Every check of the requests, before any key is made. */
static int
batch_check(struct issue_batch *b)
{
	struct rf_ca *ca = b->ca;
	const struct rf_issue_req *reqs = b->reqs;
	size_t i, j, n = b->n;
	int r;

	for (i = 0; i < n; i++) {
		struct issue_item *items = b->items;

		if ((r = issue_check(
			 ca, &items[i], i > 0 ? &items[i - 1] : NULL)) != 0)
			return r;
		if (items[i].spki.p == NULL)
			continue;
		if (i > 0 && strcmp(items[i - 1].ident, items[i].ident) == 0 &&
		    same_conn(&reqs[i - 1], &reqs[i]))
			continue; /* checked with the previous request */
		/*
		 * One key, one tenant connection, never a compromised key: an
		 * early answer from the store (the claim in issue_commit's
		 * transaction is what holds under concurrency), and in the
		 * batch.
		 */
		if ((r = rf_store_key_admit(ca->st, items[i].ident,
			 reqs[i].tenant, reqs[i].connection)) != 0)
			return r;
		for (j = 0; j < i; j++) {
			if (items[j].spki.p != NULL &&
			    strcmp(items[j].ident, items[i].ident) == 0 &&
			    !same_conn(&reqs[j], &reqs[i]))
				return rf_err_set(RF_ERR_KEY_REUSED,
				    "public key is requested for tenant %s "
				    "and tenant %s in one batch: a key serves "
				    "one tenant connection",
				    reqs[j].tenant, reqs[i].tenant);
		}
	}
	return 0;
}

/* Checks, keys, subjects: everything before the TBS and signatures. */
static int
batch_prepare(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct issue_batch *b)
{
	size_t i;
	int r;

	if ((r = batch_begin(ca, reqs, n, who, b)) != 0 ||
	    (r = batch_check(b)) != 0)
		return r;
	/* Keys generated in the token only once every request is valid. */
	if ((r = issue_keygen(ca, reqs, b->items, n, who)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if ((r = issue_subject(&b->items[i])) != 0)
			return r;
		b->items[i].dirty = 1;
	}
	/* Made here, where the store may be used, not on a signing thread. */
	(void)ca_ocsp_signer(ca);
	proofs_start(&b->pf, b->items, n);
	return 0;
}

/*
 * New serials and TBS for the dirty items, their signatures, the proofs;
 * t (NULL: none) hears when keyd has recorded them.
 */
static int
batch_sign(struct issue_batch *b, struct told *t)
{
	size_t i;
	int r;

	rf_ocsp_presigned_free(b->pre);
	b->pre = NULL;
	for (i = 0; i < b->n; i++)
		if (b->items[i].dirty &&
		    (r = issue_tbs(b->ca, &b->items[i], b->now)) != 0)
			return r;
	if ((r = issue_sign(b->ca, b->items, b->n, b->who, t, &b->pre)) != 0)
		return r;
	if ((r = proofs_finish(&b->pf)) != 0) {
		rf_ocsp_presigned_free(b->pre);
		b->pre = NULL;
	}
	return r;
}

/* rf_ca_presign_after_commit: the batch's OCSP responses, best effort
 * (the server signs what it lacks when asked). */
static void
presign_committed(struct issue_batch *b)
{
	struct rf_ocsp_status *sts;
	size_t i;

	if (ca_ocsp_signer(b->ca) == NULL ||
	    (sts = calloc(b->n, sizeof(*sts))) == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		sts[i].serial = b->items[i].hex;
		sts[i].reason = -1;
	}
	if (rf_ocsp_presign(b->ca->ocsp_signer, sts, b->n, b->who) != 0)
		rf_err_clear();
	free(sts);
}

/* The store transaction; a serial collision re-signs and tries again. */
static int
batch_commit(struct issue_batch *b, rf_ca_issue_hook hook, void *arg)
{
	int r, tries;

	for (tries = 0;; tries++) {
		r = issue_commit(
		    b->ca, b->items, b->n, b->who, b->now, hook, arg, b->pre);
		rf_ocsp_presigned_free(b->pre);
		b->pre = NULL;
		if (r != RF_ERR_EXISTS || tries + 1 >= CA_SERIAL_TRIES)
			break;
		rf_err_clear(); /* a serial collision: new serial, re-sign */
		if ((r = batch_sign(b, NULL)) != 0)
			break;
	}
	if (r == 0)
		b->committed = 1;
	if (r == 0 && b->ca->presign_late)
		presign_committed(b);
	return r;
}

/*
 * The outputs of a committed batch (out may be NULL: none wanted), or,
 * after r != 0, the keys it made removed; everything freed. Returns r.
 */
static int
batch_end(struct issue_batch *b, struct rf_issued *out, int r)
{
	char msg[512];
	size_t i;

	proofs_wait(&b->pf);
	rf_ocsp_presigned_free(b->pre);
	b->pre = NULL;
	for (i = 0; r == 0 && out != NULL && i < b->n; i++)
		r = issue_output(b->ca, &b->items[i], &out[i]);
	if (r != 0) {
		for (i = 0; out != NULL && i < b->n; i++)
			rf_issued_clear(&out[i]);
		/* Keys made for a failed issuance serve nothing: remove
		 * them. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		if (!b->committed && b->items != NULL)
			issue_unkeygen(b->ca, b->items, b->n, b->who);
		rf_err_set(r, "%s", msg);
	}
	for (i = 0; b->items != NULL && i < b->n; i++)
		item_clear(&b->items[i]);
	free(b->items);
	b->items = NULL;
	pthread_cond_destroy(&b->told.cv);
	pthread_mutex_destroy(&b->told.mu);
	return r;
}

int
rf_ca_issue_check(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n)
{
	struct issue_batch b;
	int r;

	if (ca == NULL || reqs == NULL || n == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	if ((r = batch_begin(ca, reqs, n, NULL, &b)) == 0)
		r = batch_check(&b);
	return batch_end(&b, NULL, r);
}

int
rf_ca_issue_ex(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out, rf_ca_issue_hook hook,
    void *arg)
{
	struct issue_batch b;
	int r;

	if (out != NULL)
		memset(out, 0, n * sizeof(*out));
	if (ca == NULL || reqs == NULL || out == NULL || n == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	if ((r = batch_prepare(ca, reqs, n, who, &b)) == 0 &&
	    (r = batch_sign(&b, NULL)) == 0)
		r = batch_commit(&b, hook, arg);
	return batch_end(&b, out, r);
}

static void *
batch_sign_main(void *arg)
{
	struct issue_batch *b = arg;

	rf_err_keep(&b->sign, batch_sign(b, &b->told));
	told_set(&b->told, &b->told.done, 1);
	return NULL;
}

/*
 * Sign b on a thread of its own, or here: without a thread, or when the
 * token is in this process (its signatures append to the audit record in
 * the store the caller is about to use).
 */
static void
batch_sign_start(struct issue_batch *b)
{
	if (rf_keys_remote(b->ca->keys) &&
	    pthread_create(&b->tid, NULL, batch_sign_main, b) == 0)
		b->running = 1;
	else
		(void)batch_sign_main(b);
}

/* Wait for batch_sign_start: its result, its message set here. */
static int
batch_sign_wait(struct issue_batch *b)
{
	if (b->running) {
		pthread_join(b->tid, NULL);
		b->running = 0;
	}
	return rf_err_kept(&b->sign);
}

/* The hook of a pipeline's batch, with i counted from the first request. */
struct hook_shift {
	rf_ca_issue_hook hook;
	void *arg;
	size_t from;
};

static int
hook_shifted(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct hook_shift *h = arg;

	return h->hook(h->arg, h->from + i, serial, key_id);
}

int
rf_ca_issue_pipelined(struct rf_ca *ca, const struct rf_issue_req *reqs,
    size_t n, size_t per, const struct rf_actor *who, rf_ca_issue_hook hook,
    void *arg, rf_ca_batch_done done, void *done_arg)
{
	struct issue_batch bt[2];
	struct hook_shift hs[2];
	char msg[512] = "";
	size_t from = 0, k, cur = 0, prev = 1;
	int r = 0, r2, have_prev = 0, started;

	if (ca == NULL || reqs == NULL || n == 0 || per == 0)
		return rf_err_set(RF_ERR_ARG, "nothing to issue");
	memset(bt, 0, sizeof(bt));
	for (;;) {
		k = n - from < per ? n - from : per;
		started = 0;
		/* The next batch: prepared here, signed on its thread ... */
		if (k > 0 && r == 0) {
			if ((r2 = batch_prepare(
				 ca, &reqs[from], k, who, &bt[cur])) != 0)
				r2 = batch_end(&bt[cur], NULL, r2);
			else {
				hs[cur].hook = hook;
				hs[cur].arg = arg;
				hs[cur].from = from;
				batch_sign_start(&bt[cur]);
				started = 1;
			}
			if (r2 != 0) {
				r = r2;
				snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
			}
		}
		/*
		 * ... while the one before commits, once keyd has recorded
		 * this one: its appends and this commit share the store's
		 * write lock, and keyd waiting for the commit would leave
		 * the token idle.
		 */
		if (have_prev) {
			if (started)
				told_wait(&bt[cur].told);
			r2 = batch_commit(&bt[prev],
			    hook != NULL ? hook_shifted : NULL, &hs[prev]);
			r2 = batch_end(&bt[prev], NULL, r2);
			have_prev = 0;
			if (r2 == 0 && done != NULL)
				done(done_arg, hs[prev].from, bt[prev].n);
			if (r2 != 0 && r == 0) {
				r = r2;
				snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
			}
		}
		if (!started)
			break;
		if ((r2 = batch_sign_wait(&bt[cur])) != 0 && r == 0) {
			r = r2;
			snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		}
		if (r != 0) {
			(void)batch_end(&bt[cur], NULL, r);
			break;
		}
		have_prev = 1;
		prev = cur;
		cur = 1 - cur;
		from += k;
	}
	if (r != 0)
		return rf_err_set(r, "%s", msg);
	return 0;
}

void
rf_issued_clear(struct rf_issued *is)
{
	if (is == NULL)
		return;
	free(is->der);
	free(is->chain_pem);
	memset(is, 0, sizeof(*is));
}
