/*
 * policy.c: the custody process decides itself what it signs (policy.h).
 * For the server class it parses every message it is asked to sign and
 * compares it with the store, so that a compromised serve can get no
 * certificate, no OCSP `good` for a revoked serial and no signature with
 * a key that is not one of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "keys/keyd.h"
#include "keys/ledger.h"
#include "keys/policy.h"
#include "store/store_connector.h"

#define KEYS_KEPT 16 /* keys whose purpose is kept (kpolicy.keys) */

struct rf_kpolicy {
	struct rf_store *st;
	struct rf_audit *audit;
	int tls_rate;	    /* TLS signatures a second */
	int64_t tls_second; /* the second tls_used counts */
	int tls_used;
	rf_kpolicy_assertion_fn assertion; /* connectors (cmd_keyd.c) */
	void *assertion_arg;
	rf_kpolicy_assertion_fn cert; /* connector renewals (cmd_keyd.c) */
	void *cert_arg;
	int connector_days;
	struct rf_ledger *ledger; /* revocations keyd has seen (ledger.h) */
	/* Active keys' purposes, while the connector generation (which
	 * moves with every change of a key's row) is kgen. */
	int64_t kgen;
	size_t nkeys, knext;
	struct {
		char id[65];
		char purpose[16];
	} keys[KEYS_KEPT];
};

void
rf_kpolicy_set_cert(struct rf_kpolicy *p, rf_kpolicy_assertion_fn fn, void *arg)
{
	p->cert = fn;
	p->cert_arg = arg;
}

void
rf_kpolicy_set_assertion(
    struct rf_kpolicy *p, rf_kpolicy_assertion_fn fn, void *arg)
{
	p->assertion = fn;
	p->assertion_arg = arg;
}

int
rf_kpolicy_new(const struct rf_config *cfg, struct rf_store *st,
    struct rf_audit *audit, struct rf_kpolicy **out)
{
	struct rf_kpolicy *p;
	char path[RF_PATH_MAX + 32];
	int r;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return RF_ERR_ALLOC;
	p->st = st;
	p->audit = audit;
	p->tls_rate = cfg->keyd_tls_rate > 0 ? cfg->keyd_tls_rate : 200;
	p->connector_days = cfg->connector_days;
	/* In the custody folder: keyd's user's alone, like the PIN (a state
	 * whose PIN comes from the environment may not have made it yet). */
	if (mkdir(cfg->custody_dir, 0700) != 0 && errno != EEXIST) {
		free(p);
		return rf_err_set(RF_ERR_IO, "custody folder %s: %s",
		    cfg->custody_dir, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/revoked.ledger", cfg->custody_dir);
	if ((r = rf_ledger_open(path, &p->ledger)) != 0) {
		free(p);
		return r;
	}
	/* Up to date from the start (the first request reads it again). */
	if (rf_ledger_follow(p->ledger, st) != 0)
		rf_err_clear();
	*out = p; /* the caller's */
	return 0;
}

struct rf_ledger *
rf_kpolicy_ledger(struct rf_kpolicy *p)
{
	return p->ledger;
}

void
rf_kpolicy_free(struct rf_kpolicy *p)
{
	if (p == NULL)
		return;
	rf_ledger_free(p->ledger);
	free(p);
}

static int
refuse(const char *why, const char *what)
{
	return rf_err_set(RF_ERR_REFUSED,
	    "custody refused %s for class "
	    "server: %s",
	    what ? what : "a signature", why);
}

/*
 * The key's purpose in the store ("ocsp", "audit", "tls", ...), from what
 * was read while the connector generation was gen (-1: read it now).
 */
static int
key_purpose(struct rf_kpolicy *p, int64_t gen, const char *id, char purpose[16])
{
	struct rf_key_rec kr;
	size_t i;

	purpose[0] = '\0';
	if (gen < 0 || gen != p->kgen) {
		p->nkeys = p->knext = 0;
		p->kgen = gen;
	}
	for (i = 0; gen >= 0 && i < p->nkeys; i++)
		if (strcmp(p->keys[i].id, id) == 0) {
			snprintf(purpose, 16, "%s", p->keys[i].purpose);
			return 0;
		}
	if (rf_store_key_get(p->st, id, &kr) != 0)
		return RF_ERR_NOT_FOUND;
	if (strcmp(kr.state, "active") != 0)
		return RF_ERR_KEY_DISABLED;
	snprintf(purpose, 16, "%s", kr.purpose);
	if (gen >= 0 && strlen(id) < sizeof(p->keys[0].id)) {
		i = p->nkeys < KEYS_KEPT ? p->nkeys++ : p->knext++ % KEYS_KEPT;
		snprintf(p->keys[i].id, sizeof(p->keys[i].id), "%s", id);
		snprintf(p->keys[i].purpose, 16, "%s", purpose);
	}
	return 0;
}

/*
 * A TBS structure (ResponseData, TBSCertList) wrapped as the signed
 * structure around it, with a placeholder algorithm and an empty
 * signature, so that OpenSSL's decoders read it:
 *   SEQUENCE { tbs, AlgorithmIdentifier { ecdsa-with-SHA256 }, BIT STRING }
 */
static uint8_t *
wrap_tbs(const uint8_t *tbs, size_t len, size_t *outlen)
{
	static const uint8_t tail[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
	    0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x01, 0x00};
	size_t content = len + sizeof(tail), hl;
	uint8_t *o;

	if (len > 16 * 1024 * 1024)
		return NULL;
	hl = content < 128 ? 2 : content < 256 ? 3 : content < 65536 ? 4 : 5;
	if ((o = malloc(hl + content)) == NULL)
		return NULL;
	o[0] = 0x30;
	if (hl == 2) {
		o[1] = (uint8_t)content;
	} else {
		o[1] = (uint8_t)(0x80 | (hl - 2));
		for (size_t i = 0; i < hl - 2; i++)
			o[hl - 1 - i] = (uint8_t)(content >> (8 * i));
	}
	memcpy(o + hl, tbs, len);
	memcpy(o + hl + len, tail, sizeof(tail));
	*outlen = hl + content;
	return o;
}

/*
 * Dates a server's OCSP response or CRL may carry: a thisUpdate no later
 * than FRESH_SKEW seconds past keyd's clock, and a nextUpdate after it by
 * at most the largest validity the settings allow (RF_VALIDITY_MAX, and a
 * minute: not keyd's own setting, which a command that started keyd may
 * have overridden in its environment). Otherwise a serve taken over could
 * have a good answer or a CRL signed that lasts for years, or that starts
 * next month, and outlive every revocation made meanwhile. An earlier
 * thisUpdate only ends the answer sooner: it is not refused, so that a
 * serve whose clock is behind keyd's still has its answers signed.
 */
#define FRESH_SKEW 300
#define FRESH_WHY                                                              \
	"thisUpdate after now, or nextUpdate missing or more than 30 days "    \
	"after it"
static int
fresh(const ASN1_TIME *this_update, const ASN1_TIME *next_update)
{
	int64_t t = rf_ca_asn1_secs(this_update),
		n = rf_ca_asn1_secs(next_update);

	return t >= 0 && n >= 0 && t <= rf_now() + FRESH_SKEW && n > t &&
	    n - t <= RF_VALIDITY_MAX + 60;
}

/* The SHA-1/SHA-2 hash of a CA certificate's public key, by name. */
static int
issuer_key_hash(struct rf_kpolicy *p, const char *name, const EVP_MD *md,
    uint8_t *out, unsigned *len)
{
	struct rf_ca_rec ca;
	const unsigned char *d;
	X509 *x = NULL;
	int r = RF_ERR_NOT_FOUND;

	memset(&ca, 0, sizeof(ca));
	if (rf_store_ca_get(p->st, name, &ca) != 0)
		return r;
	d = ca.der;
	if ((x = d2i_X509(NULL, &d, (long)ca.derlen)) != NULL &&
	    X509_pubkey_digest(x, md, out, len) == 1)
		r = 0;
	X509_free(x);
	rf_ca_rec_clear(&ca);
	return r;
}

/*
 * RFC 6960 4.2.1: each SingleResponse must name a certificate of the
 * store, by its issuer's key hash and serial, with the store's status:
 * good only if not revoked; revoked with the store's time and reason.
 */
static int
check_single(struct rf_kpolicy *p, OCSP_SINGLERESP *one)
{
	const OCSP_CERTID *cid = OCSP_SINGLERESP_get0_id(one);
	ASN1_OCTET_STRING *kh = NULL;
	ASN1_OBJECT *mdoid = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_GENERALIZEDTIME *rt = NULL, *tu = NULL, *nu = NULL;
	struct rf_cert_rec c;
	uint8_t hash[EVP_MAX_MD_SIZE];
	unsigned hl = 0;
	const EVP_MD *md;
	char ser[41];
	int st, reason = -1, r;

	memset(&c, 0, sizeof(c));
	if (cid == NULL ||
	    OCSP_id_get0_info(NULL, &mdoid, &kh, &serial, (OCSP_CERTID *)cid) !=
		1 ||
	    (md = EVP_get_digestbyobj(mdoid)) == NULL ||
	    rf_ca_serial_str(serial, ser) != 0)
		return refuse("a CertID does not parse", "ocsp");
	if (rf_store_cert_get(p->st, ser, &c) != 0)
		return refuse("a serial the store does not hold", "ocsp");
	r = 0;
	if (issuer_key_hash(p, c.issuer, md, hash, &hl) != 0 || kh == NULL ||
	    (unsigned)kh->length != hl || memcmp(kh->data, hash, hl) != 0)
		r = refuse(
		    "issuerKeyHash is not the certificate's issuer's", "ocsp");
	st = OCSP_single_get0_status(one, &reason, &rt, &tu, &nu);
	if (r == 0 && !fresh(tu, nu))
		r = refuse(FRESH_WHY, "ocsp");
	else if (r == 0 && st == V_OCSP_CERTSTATUS_GOOD && c.revoked)
		r = refuse("good for a revoked certificate", "ocsp");
	else if (r == 0 && st == V_OCSP_CERTSTATUS_GOOD &&
	    rf_ledger_has(p->ledger, ser))
		r = refuse("good for a certificate revoked in keyd's ledger "
			   "(the store no longer says so)",
		    "ocsp");
	else if (r == 0 && st == V_OCSP_CERTSTATUS_REVOKED &&
	    (!c.revoked || rf_ca_asn1_secs(rt) != c.revoked_at ||
		(reason == OCSP_REVOKED_STATUS_NOSTATUS ? -1 : reason) !=
		    (c.reason == OCSP_REVOKED_STATUS_NOSTATUS ? -1 : c.reason)))
		r = refuse("revoked with another time or reason than the "
			   "store's",
		    "ocsp");
	else if (r == 0 && st != V_OCSP_CERTSTATUS_GOOD &&
	    st != V_OCSP_CERTSTATUS_REVOKED)
		r = refuse("a status other than good or revoked", "ocsp");
	rf_cert_rec_clear(&c);
	return r;
}

static int
check_ocsp(
    struct rf_kpolicy *p, const char *purpose, const uint8_t *msg, size_t len)
{
	const unsigned char *d;
	OCSP_BASICRESP *br = NULL;
	uint8_t *w = NULL;
	size_t wl = 0;
	int64_t t;
	int i, n, r = 0;

	if (strcmp(purpose, "ocsp") != 0)
		return refuse(
		    "the key is not an OCSP signer of the store", "ocsp");
	if ((w = wrap_tbs(msg, len, &wl)) == NULL)
		return refuse("ResponseData too large", "ocsp");
	d = w;
	if ((br = d2i_OCSP_BASICRESP(NULL, &d, (long)wl)) == NULL ||
	    d != w + wl) {
		r = refuse("ResponseData does not parse", "ocsp");
		goto out;
	}
	t = rf_ca_asn1_secs(OCSP_resp_get0_produced_at(br));
	if (t < 0 || t > rf_now() + FRESH_SKEW) {
		r = refuse("producedAt after now", "ocsp");
		goto out;
	}
	if ((n = OCSP_resp_count(br)) <= 0) {
		r = refuse("ResponseData holds no response", "ocsp");
		goto out;
	}
	for (i = 0; i < n && r == 0; i++)
		r = check_single(p, OCSP_resp_get0(br, i));
out:
	OCSP_BASICRESP_free(br);
	free(w);
	return r;
}

/* Revoked, unexpired certificates of one issuer, as the CRL must list. */
struct crl_cmp {
	X509_CRL *crl;
	int64_t this_update;
	int n, bad;
};

/* The CRL's entry for serial (hex), or NULL when it lists none. */
static X509_REVOKED *
crl_entry(X509_CRL *crl, const char *serial)
{
	X509_REVOKED *rv = NULL;
	ASN1_INTEGER *ai = NULL;
	BIGNUM *bn = NULL;

	if (BN_hex2bn(&bn, serial) == 0 ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_CRL_get0_by_serial(crl, &rv, ai) != 1)
		rv = NULL;
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rv;
}

static int
crl_cmp_one(void *arg, const struct rf_cert_rec *c)
{
	struct crl_cmp *k = arg;
	X509_REVOKED *rv;

	if (!c->revoked)
		return 0;
	k->n++;
	if ((rv = crl_entry(k->crl, c->serial)) == NULL ||
	    rf_ca_asn1_secs(X509_REVOKED_get0_revocationDate(rv)) !=
		c->revoked_at)
		k->bad = 1;
	return k->bad;
}

/* 0 if the CRL lists serial (hex), else 1. */
static int
crl_listed(void *arg, const char *serial)
{
	return crl_entry(arg, serial) == NULL;
}

/*
 * RFC 5280 5.1.2: the TBSCertList's issuer must be a CA of the store whose
 * key is the one signing, and its revokedCertificates exactly the store's
 * revoked, unexpired certificates of that CA.
 */
static int
check_crl(struct rf_kpolicy *p, const char *key_id, const char *purpose,
    const uint8_t *msg, size_t len)
{
	struct rf_ca_rec *cas = NULL;
	struct rf_cert_filter f;
	struct crl_cmp k;
	const unsigned char *d;
	X509 *x = NULL;
	uint8_t *w = NULL;
	size_t wl = 0, nca = 0, i;
	const char *issuer = NULL;
	int listed, r = 0;

	memset(&k, 0, sizeof(k));
	if (strcmp(purpose, "root") != 0 && strcmp(purpose, "issuing") != 0)
		return refuse("a CRL with a key that is not a CA's", "crl");
	if ((w = wrap_tbs(msg, len, &wl)) == NULL)
		return refuse("TBSCertList too large", "crl");
	d = w;
	if ((k.crl = d2i_X509_CRL(NULL, &d, (long)wl)) == NULL || d != w + wl) {
		r = refuse("TBSCertList does not parse", "crl");
		goto out;
	}
	if (rf_store_ca_list(p->st, &cas, &nca) != 0) {
		r = refuse("the store's CAs cannot be read", "crl");
		goto out;
	}
	for (i = 0; i < nca && issuer == NULL; i++) {
		d = cas[i].der;
		x = d2i_X509(NULL, &d, (long)cas[i].derlen);
		if (x != NULL && strcmp(cas[i].key_id, key_id) == 0 &&
		    X509_NAME_cmp(X509_get_subject_name(x),
			X509_CRL_get_issuer(k.crl)) == 0)
			issuer = cas[i].name;
		X509_free(x);
	}
	if (issuer == NULL) {
		r = refuse("the CRL's issuer is not a CA of the store with "
			   "this key",
		    "crl");
		goto out;
	}
	if (!fresh(X509_CRL_get0_lastUpdate(k.crl),
		X509_CRL_get0_nextUpdate(k.crl))) {
		r = refuse(FRESH_WHY, "crl");
		goto out;
	}
	k.this_update = rf_ca_asn1_secs(X509_CRL_get0_lastUpdate(k.crl));
	memset(&f, 0, sizeof(f));
	f.issuer = issuer;
	f.only_revoked = 1;
	f.unexpired_at = k.this_update;
	/* An absent revokedCertificates is an empty list. */
	listed = X509_CRL_get_REVOKED(k.crl) == NULL
	    ? 0
	    : sk_X509_REVOKED_num(X509_CRL_get_REVOKED(k.crl));
	if (rf_store_cert_foreach(p->st, &f, crl_cmp_one, &k) != 0 || k.bad ||
	    k.n != listed)
		r = refuse(
		    "its entries are not the store's revocations", "crl");
	else if (rf_ledger_foreach(
		     p->ledger, issuer, k.this_update, crl_listed, k.crl) != 0)
		r = refuse("it leaves out a certificate revoked in keyd's "
			   "ledger (the store no longer says so)",
		    "crl");
out:
	rf_ca_rec_free_all(cas, nca);
	X509_CRL_free(k.crl);
	free(w);
	return r;
}

/*
 * Tree heads (docs/audit-format.md): with the audit key only, of a size
 * the record has, with the record's root at that size, dated within
 * STH_SKEW seconds of now.
 */
#define STH_SKEW 300
/* The root at size < head, from O(log n) stored nodes (not every leaf). */
static int
past_root(
    struct rf_audit *a, uint64_t size, uint64_t head, uint8_t root[RF_HASH_LEN])
{
	uint8_t now[RF_HASH_LEN], (*proof)[RF_HASH_LEN] = NULL;
	size_t plen = 0;
	int r;

	if (size == 0)
		return rf_audit_root(a, 0, root);
	r = rf_audit_prove_consistency(a, size, head, root, now, &proof, &plen);
	free(proof);
	return r;
}

static int
check_sth(
    struct rf_kpolicy *p, const char *purpose, const uint8_t *msg, size_t len)
{
	uint8_t want[RF_STH_TBS_LEN], root[RF_HASH_LEN];
	uint64_t size = 0, head = 0;
	int64_t t = 0;

	if (strcmp(purpose, "audit") != 0)
		return refuse("the key is not the audit key", "sth");
	if (rf_audit_sth_tbs_parse(msg, len, &size, &t, root) != 0)
		return refuse("not a tree head", "sth");
	if (t < rf_now() - STH_SKEW || t > rf_now() + STH_SKEW)
		return refuse("a tree head dated away from now", "sth");
	if (rf_audit_head(p->audit, &head, root) != 0 || size > head ||
	    (size < head && past_root(p->audit, size, head, root) != 0))
		return refuse("a tree larger than the record", "sth");
	rf_audit_sth_tbs(size, t, root, want);
	if (memcmp(want, msg, RF_STH_TBS_LEN) != 0)
		return refuse("a root that is not the record's", "sth");
	return 0;
}

/*
 * Every tree head keyd signs, for any class, extends the largest it signed
 * with that key (its ledger, ledger.h): the record proves the two
 * consistent (RFC 9162) from its stored nodes, and the proof is checked
 * against the root keyd kept, not the store's. So a record rewritten or
 * cut short in the store is never signed again, whoever asks; a larger
 * head is kept, durably, before the signature is made.
 */
static int
check_sth_history(struct rf_kpolicy *p, int cls, const char *key_id,
    const uint8_t *msg, size_t len)
{
	uint8_t r0[RF_HASH_LEN], a[RF_HASH_LEN], b[RF_HASH_LEN];
	uint8_t root[RF_HASH_LEN], (*proof)[RF_HASH_LEN] = NULL;
	uint64_t s0 = 0, size = 0, lo, hi;
	int64_t t;
	size_t plen = 0;
	int r = 0;

	if (rf_audit_sth_tbs_parse(msg, len, &size, &t, root) != 0)
		return 0; /* not a tree head (check_sth refuses a server's) */
	if (rf_ledger_sth_last(p->ledger, key_id, &s0, r0)) {
		lo = size < s0 ? size : s0;
		hi = size < s0 ? s0 : size;
		if (size == s0)
			r = memcmp(root, r0, RF_HASH_LEN) == 0 ? 0
							       : RF_ERR_PROOF;
		else if (lo > 0) {
			r = rf_audit_prove_consistency(
			    p->audit, lo, hi, a, b, &proof, &plen);
			if (r == 0)
				r = rf_merkle_verify_consistency(lo, hi,
				    lo == size ? root : r0,
				    lo == size ? r0 : root,
				    (const uint8_t(*)[RF_HASH_LEN])proof, plen);
			free(proof);
		}
		if (r != 0)
			return rf_err_set(RF_ERR_REFUSED,
			    "custody refused sth for class %s: the record does "
			    "not extend the tree head keyd signed at size "
			    "%" PRIu64 " (its ledger): leaves were rewritten "
			    "or lost in the store ('ringfence audit verify' "
			    "says where)",
			    rf_kclass_name(cls), s0);
	}
	if ((r = rf_ledger_sth_keep(p->ledger, key_id, size, root)) != 0)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused sth for class %s: keyd's ledger cannot "
		    "keep the tree head: %s",
		    rf_kclass_name(cls), rf_err_msg(r));
	return 0;
}

/* Each tree head among reqs, as check_sth_history. */
static int
check_sth_all(struct rf_kpolicy *p, int cls, const char *key_id, int digest,
    const struct rf_sign_req *reqs, size_t n)
{
	size_t i;
	int r;

	for (i = 0; i < n && !digest; i++)
		if (reqs[i].what != NULL && strcmp(reqs[i].what, "sth") == 0 &&
		    (r = check_sth_history(
			 p, cls, key_id, reqs[i].msg, reqs[i].msglen)) != 0)
			return r;
	return 0;
}

static int
check_tls(
    struct rf_kpolicy *p, const char *key_id, const char *purpose, size_t n)
{
	int64_t now = rf_now();

	if (strcmp(purpose, "tls") != 0)
		return refuse(
		    "a digest with a key other than serve's TLS key", "tls");
	if (!rf_ledger_is_tls_key(p->ledger, key_id))
		return refuse("a digest with a key keyd did not make for "
			      "serve's TLS (its store purpose says tls: the "
			      "store was changed behind keyd's back)",
		    "tls");
	if (now != p->tls_second) {
		p->tls_second = now;
		p->tls_used = 0;
	}
	if (n > (size_t)(p->tls_rate - p->tls_used))
		return refuse(
		    "past its TLS budget (keyd_tls_rate a second)", "tls");
	p->tls_used += (int)n;
	return 0;
}

static int
check_assertion(struct rf_kpolicy *p, int64_t gen, const char *purpose,
    const char *key_id, const struct rf_sign_req *req)
{
	if (strcmp(purpose, "connection") != 0)
		return refuse("an assertion with a key that is not a tenant "
			      "connection's",
		    "assertion");
	if (p->assertion == NULL)
		return refuse(
		    "no connector policy in this custody process", "assertion");
	return p->assertion(
	    p->assertion_arg, p->st, p->ledger, gen, key_id, req);
}

int
rf_kpolicy_connector_subject(const X509_NAME *name, const char *tenant)
{
	static const int nids[3] = {
	    NID_organizationName, NID_organizationalUnitName, NID_commonName};
	const char *want[3] = {"ringfence", "connector", tenant};
	const ASN1_STRING *v;
	int i;

	if (name == NULL || X509_NAME_entry_count(name) != 3)
		return 0;
	for (i = 0; i < 3; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);

		if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) != nids[i] ||
		    (v = X509_NAME_ENTRY_get_data(e)) == NULL ||
		    (size_t)ASN1_STRING_length(v) != strlen(want[i]) ||
		    memcmp(ASN1_STRING_get0_data(v), want[i],
			strlen(want[i])) != 0)
			return 0;
	}
	return 1;
}

int
rf_kpolicy_client_only(X509 *x)
{
	EXTENDED_KEY_USAGE *eku =
	    X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	int ok = X509_check_ca(x) == 0 && eku != NULL &&
	    sk_ASN1_OBJECT_num(eku) == 1 &&
	    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)) == NID_client_auth;

	EXTENDED_KEY_USAGE_free(eku);
	return ok;
}

int
rf_kpolicy_cert_key_id(const uint8_t *tbs, size_t len, char id[65])
{
	const unsigned char *q;
	uint8_t *w;
	size_t wl;
	X509 *x = NULL;
	int r;

	if ((w = wrap_tbs(tbs, len, &wl)) == NULL)
		return RF_ERR_ALLOC;
	q = w;
	if ((x = d2i_X509(NULL, &q, (long)wl)) == NULL || q != w + wl)
		r = rf_err_set(RF_ERR_MALFORMED,
		    "a certificate that does not "
		    "parse");
	else
		r = rf_keys_pub_id(X509_get0_pubkey(x), id);
	X509_free(x);
	free(w);
	return r;
}

/*
 * A connector's own TLS client certificate renewed through the API: the
 * issuing key, an end entity for clientAuth only with the connector
 * profile's subject naming its tenant, valid at most connector_days (an
 * hour of slack), for an active connector (p->cert).
 */
static int
check_cert(struct rf_kpolicy *p, int64_t gen, const char *purpose,
    const char *key_id, const struct rf_sign_req *req)
{
	const unsigned char *q;
	uint8_t *w = NULL;
	size_t wl;
	X509 *x = NULL;
	int64_t nb, na;
	int r;

	if (strcmp(purpose, "issuing") != 0)
		return refuse("a certificate from a key that is not an issuing "
			      "CA's",
		    "cert");
	if (p->cert == NULL || req->tenant == NULL)
		return refuse(
		    "a certificate that is not a connector's renewal", "cert");
	if ((w = wrap_tbs(req->msg, req->msglen, &wl)) == NULL)
		return RF_ERR_ALLOC;
	q = w;
	if ((x = d2i_X509(NULL, &q, (long)wl)) == NULL || q != w + wl) {
		r = refuse("a certificate that does not parse", "cert");
		goto out;
	}
	if (!rf_kpolicy_client_only(x)) {
		r = refuse("a certificate that is not a client-authentication "
			   "end entity",
		    "cert");
		goto out;
	}
	if (!rf_kpolicy_connector_subject(
		X509_get_subject_name(x), req->tenant)) {
		r = refuse("a certificate whose subject is not the connector "
			   "profile's (O=ringfence, OU=connector, CN=its "
			   "tenant)",
		    "cert");
		goto out;
	}
	nb = rf_ca_asn1_secs(X509_get0_notBefore(x));
	na = rf_ca_asn1_secs(X509_get0_notAfter(x));
	if (nb < 0 || na < 0 || nb > rf_now() + FRESH_SKEW) {
		r = refuse(
		    "a certificate whose notBefore is after now", "cert");
		goto out;
	}
	if (na - nb > (int64_t)p->connector_days * 86400 + 3600) {
		r = refuse(
		    "a certificate valid longer than connector_days", "cert");
		goto out;
	}
	r = p->cert(p->cert_arg, p->st, p->ledger, gen, key_id, req);
out:
	X509_free(x);
	free(w);
	return r;
}

/*
 * The store's purpose of a key must be what keyd made it as (its ledger):
 * a serve that can write the store could otherwise call the root key
 * "issuing" and have it sign a connector certificate, or an issuing key a
 * tenant's "connection" and have it sign assertions.
 */
static int
check_role(struct rf_kpolicy *p, const char *key_id, const char *purpose,
    const char *what)
{
	const char *role;
	char why[200];

	/* Taken at keyd's start; if the store could not be read then, now. */
	if (!rf_ledger_cas_taken(p->ledger) &&
	    rf_ledger_follow(p->ledger, p->st) != 0) {
		rf_err_clear();
		return refuse("keyd's ledger cannot take the store's CA keys "
			      "(the store cannot be read)",
		    what);
	}
	role = rf_ledger_key_role(p->ledger, key_id);
	if (role != NULL && strcmp(role, purpose) != 0) {
		snprintf(why, sizeof(why),
		    "keyd made this key as the %s key, and the store now "
		    "says %s (the store was changed behind keyd's back)",
		    role, purpose);
		return refuse(why, what);
	}
	if (role == NULL && rf_ledger_kept_purpose(purpose)) {
		snprintf(why, sizeof(why),
		    "the store says this key is the %s key, and keyd did not "
		    "make it as one (the store was changed behind keyd's back)",
		    purpose);
		return refuse(why, what);
	}
	return 0;
}

int
rf_kpolicy_sign(struct rf_kpolicy *p, int cls, const char *key_id, int digest,
    const struct rf_sign_req *reqs, size_t n)
{
	char purpose[16];
	const char *what;
	int64_t gen;
	size_t i;
	int r;

	/* Revocations are published (OCSP, CRL) as soon as they commit: keyd
	 * reads the record's new revoke leaves then, before deciding. */
	what = n > 0 && reqs[0].what ? reqs[0].what : "";
	if (!digest &&
	    (strcmp(what, "ocsp") == 0 || strcmp(what, "crl") == 0) &&
	    (r = rf_ledger_follow(p->ledger, p->st)) != 0) {
		if (cls != RF_KCLASS_ADMIN)
			return refuse("keyd's revocation ledger cannot be "
				      "updated",
			    what);
		rf_err_clear(); /* an administrator's signature waits for
				   nothing: the next request reads them */
	}
	if (cls == RF_KCLASS_ADMIN)
		return check_sth_all(p, cls, key_id, digest, reqs, n);
	if (cls != RF_KCLASS_SERVER)
		return refuse("caller has no class", NULL);
	/* The generation before anything it vouches for is read. */
	if (rf_store_connector_gen(p->st, &gen) != 0) {
		rf_err_clear();
		gen = -1;
	}
	if ((r = key_purpose(p, gen, key_id, purpose)) != 0)
		return refuse(r == RF_ERR_KEY_DISABLED
			? "the key is not active in the store"
			: "a key the store does not know",
		    reqs[0].what);
	if ((r = check_role(p, key_id, purpose, reqs[0].what)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		what = reqs[i].what ? reqs[i].what : "";
		if (!digest && strcmp(what, "ocsp") == 0)
			r = check_ocsp(p, purpose, reqs[i].msg, reqs[i].msglen);
		else if (!digest && strcmp(what, "crl") == 0)
			r = check_crl(
			    p, key_id, purpose, reqs[i].msg, reqs[i].msglen);
		else if (!digest && strcmp(what, "sth") == 0)
			r = check_sth(p, purpose, reqs[i].msg, reqs[i].msglen);
		else if (digest && strcmp(what, "tls") == 0)
			r = check_tls(p, key_id, purpose, 1);
		else if (!digest && strcmp(what, "assertion") == 0)
			r = check_assertion(p, gen, purpose, key_id, &reqs[i]);
		else if (!digest && strcmp(what, "cert") == 0)
			r = check_cert(p, gen, purpose, key_id, &reqs[i]);
		else
			r = refuse(digest ? "a raw digest signature"
					  : "this kind of signature",
			    what[0] ? what : NULL);
		if (r != 0)
			return r;
	}
	return check_sth_all(p, cls, key_id, digest, reqs, n);
}
