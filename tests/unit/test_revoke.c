/*
 * Revocation and CRLs against a real SoftHSM token, a real SQLite store
 * and the real CA; CRLs are read back with OpenSSL (d2i_X509_CRL,
 * X509_CRL_verify) and the openssl command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "testutil.h"

#define DAY 86400

struct fx {
	char *home;
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
};

static void
fx_open(struct fx *fx, int create)
{
	assert_int_equal(rf_store_open(fx->cfg.db_path, create, &fx->st), 0);
	assert_int_equal(rf_audit_open(fx->st, &fx->audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	if (create)
		assert_int_equal(
		    rf_ca_init(&fx->cfg, fx->st, fx->keys, &fx->who), 0);
	assert_int_equal(rf_ca_open(&fx->cfg, fx->st, fx->keys, &fx->ca), 0);
	rf_ca_set_audit(fx->ca, fx->audit);
}

static void
fx_close(struct fx *fx)
{
	rf_ca_free(fx->ca);
	rf_keys_free(fx->keys);
	rf_audit_free(fx->audit);
	rf_store_free(fx->st);
	fx->ca = NULL;
	fx->keys = NULL;
	fx->audit = NULL;
	fx->st = NULL;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	rf_clock_set(0);
	fx->who.actor = "test";
	fx->who.source = "unit";
	fx->home = tu_home();
	tu_token(fx->home, &fx->cfg);
	fx_open(fx, 1);
	assert_int_equal(rf_ca_tenant_add(fx->ca, "alpha", &fx->who), 0);
	assert_int_equal(rf_ca_tenant_add(fx->ca, "beta", &fx->who), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	rf_clock_set(0);
	fx_close(fx);
	tu_home_remove(fx->home);
	free(fx);
	return 0;
}

static void
issue(struct fx *fx, const char *tenant, const uint8_t *csr, size_t csrlen,
    int days, struct rf_issued *out)
{
	struct rf_issue_req req = {0};

	req.tenant = tenant;
	req.profile = RF_PROFILE_CLIENT;
	req.csr = csr;
	req.csrlen = csrlen;
	req.keygen = csr == NULL ? RF_KEY_EC_P256 : RF_KEY_NONE;
	req.days = days;
	memset(out, 0, sizeof(*out));
	assert_int_equal(rf_ca_issue(fx->ca, &req, 1, &fx->who, out), 0);
}

/* A PKCS#10 request (DER) for a software key; *key receives the key. */
static void
make_csr(EVP_PKEY **key, uint8_t **der, int *len)
{
	X509_REQ *rq;

	assert_non_null(*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	assert_non_null(rq = X509_REQ_new());
	assert_int_equal(
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(rq), "CN",
		MBSTRING_ASC, (const unsigned char *)"csr", -1, -1, 0),
	    1);
	assert_int_equal(X509_REQ_set_pubkey(rq, *key), 1);
	assert_true(X509_REQ_sign(rq, *key, EVP_sha256()) > 0);
	*der = NULL;
	assert_true((*len = i2d_X509_REQ(rq, der)) > 0);
	X509_REQ_free(rq);
}

static void
get(struct fx *fx, const char *serial, struct rf_cert_rec *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(rf_store_cert_get(fx->st, serial, c), 0);
}

static int
is_revoked(struct fx *fx, const char *serial)
{
	struct rf_cert_rec c;
	int v;

	get(fx, serial, &c);
	v = c.revoked;
	rf_cert_rec_clear(&c);
	return v;
}

static size_t
do_revoke(struct fx *fx, const char *serial, const char *tenant,
    const char *key_id, int reason, int expect)
{
	struct rf_revoke_req req = {0};
	size_t n = 12345;

	req.serial = serial;
	req.tenant = tenant;
	req.key_id = key_id;
	req.reason = reason;
	assert_int_equal(rf_revoke(&fx->cfg, fx->st, fx->keys, fx->ca,
			     fx->audit, &req, &fx->who, &n),
	    expect);
	return n;
}

/* The current CRL of issuer, parsed; *number receives its number. */
static X509_CRL *
load_crl(struct fx *fx, const char *issuer, uint64_t *number)
{
	uint8_t *der = NULL;
	const uint8_t *p;
	size_t len = 0;
	int64_t tu, nu;
	X509_CRL *crl;

	assert_int_equal(
	    rf_store_crl_get(fx->st, issuer, number, &tu, &nu, &der, &len), 0);
	p = der;
	assert_non_null(crl = d2i_X509_CRL(NULL, &p, (long)len));
	assert_ptr_equal(p, der + len); /* no trailing bytes */
	assert_int_equal(nu - tu, fx->cfg.crl_validity);
	free(der);
	return crl;
}

/* The reason of serial in crl: -2 if absent, -1 if no reason entry. */
static int
crl_reason(X509_CRL *crl, const char *serial)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	X509_REVOKED *rev;
	ASN1_ENUMERATED *e;
	BIGNUM *bn;
	char *hex, s[41];
	int i, crit, v = -2;

	for (i = 0; i < sk_X509_REVOKED_num(revs); i++) {
		rev = sk_X509_REVOKED_value(revs, i);
		assert_non_null(bn = ASN1_INTEGER_to_BN(
				    X509_REVOKED_get0_serialNumber(rev), NULL));
		assert_non_null(hex = BN_bn2hex(bn));
		assert_int_equal(rf_revoke_serial_norm(hex, s), 0);
		OPENSSL_free(hex);
		BN_free(bn);
		if (strcmp(s, serial) != 0)
			continue;
		e = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
		v = e == NULL ? -1 : (int)ASN1_ENUMERATED_get(e);
		ASN1_ENUMERATED_free(e);
	}
	return v;
}

static uint64_t
crl_number_ext(X509_CRL *crl)
{
	ASN1_INTEGER *n;
	uint64_t v = 0;

	assert_non_null(
	    n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL));
	assert_int_equal(ASN1_INTEGER_get_uint64(&v, n), 1);
	ASN1_INTEGER_free(n);
	return v;
}

struct ocsp_find {
	const char *serial;
	int status, reason;
	int64_t revtime;
};

static int
ocsp_find_cb(void *arg, const struct rf_ocsp_rec *o)
{
	struct ocsp_find *f = arg;
	const uint8_t *p = o->der;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs;
	ASN1_GENERALIZEDTIME *rev = NULL;
	struct tm tm;

	if (strcmp(o->serial, f->serial) != 0)
		return 0;
	assert_non_null(resp = d2i_OCSP_RESPONSE(NULL, &p, (long)o->len));
	assert_int_equal(
	    OCSP_response_status(resp), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	assert_non_null(bs = OCSP_response_get1_basic(resp));
	assert_int_equal(OCSP_resp_count(bs), 1);
	f->reason = -1;
	f->status = OCSP_single_get0_status(
	    OCSP_resp_get0(bs, 0), &f->reason, &rev, NULL, NULL);
	if (rev != NULL) {
		assert_int_equal(ASN1_TIME_to_tm(rev, &tm), 1);
		f->revtime = (int64_t)timegm(&tm);
	}
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return 0;
}

/* The stored OCSP status of serial (V_OCSP_CERTSTATUS_*); -1 if none. */
static int
ocsp_status(struct fx *fx, const char *serial, int *reason, int64_t *at)
{
	struct ocsp_find f = {serial, -1, -1, 0};

	assert_int_equal(rf_store_ocsp_foreach(fx->st, 0, ocsp_find_cb, &f), 0);
	*reason = f.reason;
	*at = f.revtime;
	return f.status;
}

struct leaf_count {
	const char *serial;
	size_t n;
};

static int
leaf_count_cb(void *arg, const struct rf_leaf_rec *l)
{
	struct leaf_count *c = arg;
	char needle[64];

	snprintf(needle, sizeof(needle), "\"%s\"", c->serial);
	if (l->type != NULL && strcmp(l->type, "revoke") == 0 &&
	    memmem(l->data, l->len, needle, strlen(needle)) != NULL)
		c->n++;
	return 0;
}

/* Audit leaves of type "revoke" naming serial. */
static size_t
revoke_leaves(struct fx *fx, const char *serial)
{
	struct leaf_count c = {serial, 0};
	uint64_t n;

	assert_int_equal(rf_store_leaf_count(fx->st, &n), 0);
	assert_int_equal(
	    rf_store_leaf_foreach(fx->st, 0, n, leaf_count_cb, &c), 0);
	return c.n;
}

static void
test_reason_parse(void **state)
{
	static const char *names[] = {"unspecified", "keyCompromise",
	    "cACompromise", "affiliationChanged", "superseded",
	    "cessationOfOperation", "certificateHold", NULL, "removeFromCRL",
	    "privilegeWithdrawn", "aACompromise"};
	int i, r;

	(void)state;
	for (i = 0; i <= 10; i++) {
		if (names[i] == NULL)
			continue;
		assert_int_equal(rf_crl_reason_parse(names[i], &r), 0);
		assert_int_equal(r, i);
		assert_string_equal(rf_crl_reason_name(i), names[i]);
	}
	assert_int_equal(rf_crl_reason_parse("KEYCOMPROMISE", &r), 0);
	assert_int_equal(r, 1);
	assert_int_equal(rf_crl_reason_parse("4", &r), 0);
	assert_int_equal(r, 4);
	assert_int_equal(rf_crl_reason_parse("7", &r), RF_ERR_ARG);
	assert_int_equal(rf_crl_reason_parse("11", &r), RF_ERR_ARG);
	assert_int_equal(rf_crl_reason_parse("stolen", &r), RF_ERR_ARG);
	assert_int_equal(rf_crl_reason_parse("", &r), RF_ERR_ARG);
	assert_int_equal(rf_crl_reason_parse("1x", &r), RF_ERR_ARG);
	assert_null(rf_crl_reason_name(7));
	assert_string_equal(rf_crl_reason_name(-1), "none");
}

static void
test_serial_norm(void **state)
{
	char s[41];

	(void)state;
	assert_int_equal(rf_revoke_serial_norm("00AB:cd", s), 0);
	assert_string_equal(s, "abcd");
	assert_int_equal(rf_revoke_serial_norm("0x0f", s), 0);
	assert_string_equal(s, "f");
	assert_int_equal(rf_revoke_serial_norm("000", s), 0);
	assert_string_equal(s, "0");
	assert_int_equal(rf_revoke_serial_norm("", s), RF_ERR_ARG);
	assert_int_equal(rf_revoke_serial_norm("12g4", s), RF_ERR_ARG);
	assert_int_equal(rf_revoke_serial_norm(
			     "11112222333344445555666677778888999900001", s),
	    RF_ERR_ARG);
}

/* Serial: exactly that certificate; idempotence; reason only raised. */
static void
test_revoke_serial(void **state)
{
	struct fx *fx = *state;
	struct rf_issued a, b;
	struct rf_cert_rec c;
	int64_t t0 = rf_now(), at;
	char upper[41];
	size_t i;
	int reason;

	issue(fx, "alpha", NULL, 0, 0, &a);
	issue(fx, "alpha", NULL, 0, 0, &b);
	do_revoke(fx, "abcdef0123", NULL, NULL, -1, RF_ERR_NOT_FOUND);
	assert_non_null(strstr(rf_err_msg(RF_ERR_NOT_FOUND),
	    "no certificate with serial abcdef0123"));
	do_revoke(fx, a.serial, NULL, NULL, RF_CRL_REASON_REMOVE_FROM_CRL,
	    RF_ERR_ARG);
	assert_false(is_revoked(fx, a.serial));

	rf_clock_set(t0);
	/* Upper case with leading zeros names the same certificate. */
	for (i = 0; a.serial[i] != '\0'; i++)
		upper[i] =
		    (char)(a.serial[i] >= 'a' ? a.serial[i] - 32 : a.serial[i]);
	upper[i] = '\0';
	{
		char padded[48];

		snprintf(padded, sizeof(padded), "00%s", upper);
		assert_int_equal(do_revoke(fx, padded, NULL, NULL,
				     RF_CRL_REASON_SUPERSEDED, 0),
		    1);
	}
	get(fx, a.serial, &c);
	assert_int_equal(c.revoked, 1);
	assert_int_equal(c.revoked_at, t0);
	assert_int_equal(c.reason, RF_CRL_REASON_SUPERSEDED);
	rf_cert_rec_clear(&c);
	assert_false(is_revoked(fx, b.serial));
	/* Published to OCSP and audited before rf_revoke returned. */
	assert_int_equal(
	    ocsp_status(fx, a.serial, &reason, &at), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, RF_CRL_REASON_SUPERSEDED);
	assert_int_equal(at, t0);
	assert_int_equal(revoke_leaves(fx, a.serial), 1);
	assert_int_equal(revoke_leaves(fx, b.serial), 0);

	/* Again, later: nothing changes, the first date is kept. */
	rf_clock_set(t0 + 100);
	assert_int_equal(
	    do_revoke(fx, a.serial, NULL, NULL, RF_CRL_REASON_SUPERSEDED, 0),
	    0);
	/* Raised to keyCompromise: changes, date kept. */
	assert_int_equal(do_revoke(fx, a.serial, NULL, NULL,
			     RF_CRL_REASON_KEY_COMPROMISE, 0),
	    1);
	/* Not lowered. */
	assert_int_equal(do_revoke(fx, a.serial, NULL, NULL,
			     RF_CRL_REASON_CESSATION_OF_OPERATION, 0),
	    0);
	get(fx, a.serial, &c);
	assert_int_equal(c.revoked_at, t0);
	assert_int_equal(c.reason, RF_CRL_REASON_KEY_COMPROMISE);
	rf_cert_rec_clear(&c);
	assert_false(is_revoked(fx, b.serial));
	assert_int_equal(
	    ocsp_status(fx, a.serial, &reason, &at), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, RF_CRL_REASON_KEY_COMPROMISE);
	assert_int_equal(at, t0);			  /* the first date */
	assert_int_equal(revoke_leaves(fx, a.serial), 2); /* two changes */
	rf_clock_set(0);
	rf_issued_clear(&a);
	rf_issued_clear(&b);
}

/* Tenant: every certificate of that tenant and no other. */
static void
test_revoke_tenant(void **state)
{
	struct fx *fx = *state;
	struct rf_issued a1, a2, b1;
	X509_CRL *crl;
	uint64_t num;

	assert_int_equal(rf_ca_tenant_add(fx->ca, "gamma", &fx->who), 0);
	assert_int_equal(rf_ca_tenant_add(fx->ca, "delta", &fx->who), 0);
	issue(fx, "gamma", NULL, 0, 0, &a1);
	issue(fx, "gamma", NULL, 0, 0, &a2);
	issue(fx, "delta", NULL, 0, 0, &b1);
	do_revoke(fx, NULL, "nosuch", NULL, -1, RF_ERR_NOT_FOUND);
	do_revoke(
	    fx, NULL, "gamma", NULL, RF_CRL_REASON_AFFILIATION_CHANGED, 0);
	assert_true(is_revoked(fx, a1.serial));
	assert_true(is_revoked(fx, a2.serial));
	assert_false(is_revoked(fx, b1.serial));
	assert_int_equal(do_revoke(fx, NULL, "gamma", NULL, -1, 0), 0);
	/* Published before returning: the CRL lists both. */
	crl = load_crl(fx, "issuing", &num);
	assert_int_equal(
	    crl_reason(crl, a1.serial), RF_CRL_REASON_AFFILIATION_CHANGED);
	assert_int_equal(
	    crl_reason(crl, a2.serial), RF_CRL_REASON_AFFILIATION_CHANGED);
	assert_int_equal(crl_reason(crl, b1.serial), -2);
	X509_CRL_free(crl);
	rf_issued_clear(&a1);
	rf_issued_clear(&a2);
	rf_issued_clear(&b1);
}

/* Several serials in one transaction; one unknown: nothing changes. */
static void
test_revoke_serials(void **state)
{
	struct fx *fx = *state;
	struct rf_issued a, b;
	const char *list[3];
	size_t n = 99;

	issue(fx, "alpha", NULL, 0, 0, &a);
	issue(fx, "alpha", NULL, 0, 0, &b);
	list[0] = a.serial;
	list[1] = "7777777777";
	assert_int_equal(
	    rf_revoke_serials(&fx->cfg, fx->st, fx->keys, fx->ca, fx->audit,
		list, 2, RF_CRL_REASON_KEY_COMPROMISE, &fx->who, &n),
	    RF_ERR_NOT_FOUND);
	assert_false(is_revoked(fx, a.serial));
	list[1] = b.serial;
	list[2] = a.serial; /* a duplicate counts once */
	assert_int_equal(
	    rf_revoke_serials(&fx->cfg, fx->st, fx->keys, fx->ca, fx->audit,
		list, 3, RF_CRL_REASON_KEY_COMPROMISE, &fx->who, &n),
	    0);
	assert_int_equal(n, 2);
	assert_true(is_revoked(fx, a.serial));
	assert_true(is_revoked(fx, b.serial));
	rf_issued_clear(&a);
	rf_issued_clear(&b);
}

/* After the issuer rotates, revoking its certificates updates OCSP too. */
static void
test_revoke_rotated_issuer(void **state)
{
	struct fx *fx = *state;
	struct rf_issued a;
	const char *list[1];
	int64_t at;
	int reason;
	size_t n = 0;

	assert_int_equal(
	    rf_ca_rotate(fx->ca, "issuing", "issuing-r1", &fx->who), 0);
	issue(fx, "alpha", NULL, 0, 0, &a);
	assert_int_equal(
	    ocsp_status(fx, a.serial, &reason, &at), V_OCSP_CERTSTATUS_GOOD);
	list[0] = a.serial;
	assert_int_equal(
	    rf_revoke_serials(&fx->cfg, fx->st, fx->keys, fx->ca, fx->audit,
		list, 1, RF_CRL_REASON_KEY_COMPROMISE, &fx->who, &n),
	    0);
	assert_int_equal(n, 1);
	assert_int_equal(
	    ocsp_status(fx, a.serial, &reason, &at), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, RF_CRL_REASON_KEY_COMPROMISE);
	rf_issued_clear(&a);
}

static void
test_revoke_key(void **state)
{
	struct fx *fx = *state;
	struct rf_issued k1, k2, k3, other, byid1, byid2;
	struct rf_cert_rec fake = {0};
	EVP_PKEY *key = NULL, *key2 = NULL;
	uint8_t *csr = NULL, *csr2 = NULL, dummy[4] = {0x30, 0x02, 0x05, 0x00};
	int len, len2;

	assert_int_equal(rf_ca_tenant_add(fx->ca, "eps", &fx->who), 0);
	assert_int_equal(rf_ca_tenant_add(fx->ca, "zeta", &fx->who), 0);
	make_csr(&key, &csr, &len);
	issue(fx, "eps", csr, (size_t)len, 0, &k1);
	issue(fx, "eps", csr, (size_t)len, 0, &k2);
	issue(fx, "eps", NULL, 0, 0, &other);
	assert_string_equal(k1.key_id, k2.key_id);

	/*
	 * The CA refuses one key in two tenants, so plant a record of that
	 * key under another tenant directly in the store: the keyCompromise
	 * expansion must find it (the query does not filter by tenant).
	 */
	get(fx, k1.serial, &fake);
	snprintf(fake.serial, sizeof(fake.serial), "7e57%s", "0001");
	snprintf(fake.tenant, sizeof(fake.tenant), "zeta");
	free(fake.der);
	fake.der = dummy;
	fake.derlen = sizeof(dummy);
	assert_int_equal(rf_store_cert_add(fx->st, &fake), 0);
	fake.der = NULL;
	issue(fx, "eps", NULL, 0, 0, &k3);

	assert_int_equal(do_revoke(fx, k1.serial, NULL, NULL,
			     RF_CRL_REASON_KEY_COMPROMISE, 0),
	    3);
	assert_true(is_revoked(fx, k1.serial));
	assert_true(is_revoked(fx, k2.serial));
	assert_true(is_revoked(fx, "7e570001"));
	assert_false(is_revoked(fx, other.serial));
	assert_false(is_revoked(fx, k3.serial));

	/* A serial revoked for another reason does not spread. */
	make_csr(&key2, &csr2, &len2);
	issue(fx, "zeta", csr2, (size_t)len2, 0, &byid1);
	issue(fx, "zeta", csr2, (size_t)len2, 0, &byid2);
	assert_int_equal(do_revoke(fx, byid1.serial, NULL, NULL,
			     RF_CRL_REASON_SUPERSEDED, 0),
	    1);
	assert_false(is_revoked(fx, byid2.serial));
	/* By key id: all certificates of that key. */
	do_revoke(fx, NULL, NULL, "00", -1, RF_ERR_ARG);
	do_revoke(fx, NULL, NULL,
	    "0000000000000000000000000000000000000000000000000000000000"
	    "000000",
	    -1, RF_ERR_NOT_FOUND);
	assert_int_equal(do_revoke(fx, NULL, NULL, byid1.key_id,
			     RF_CRL_REASON_PRIVILEGE_WITHDRAWN, 0),
	    1);
	assert_true(is_revoked(fx, byid2.serial));
	assert_false(is_revoked(fx, k3.serial));

	/* Many certificates of one key: the expansion grows the set. */
	{
		struct rf_issue_req reqs[20];
		struct rf_issued many[20];
		EVP_PKEY *key3 = NULL;
		uint8_t *csr3 = NULL;
		int len3, i;

		make_csr(&key3, &csr3, &len3);
		memset(reqs, 0, sizeof(reqs));
		for (i = 0; i < 20; i++) {
			reqs[i].tenant = "eps";
			reqs[i].profile = RF_PROFILE_CLIENT;
			reqs[i].csr = csr3;
			reqs[i].csrlen = (size_t)len3;
		}
		memset(many, 0, sizeof(many));
		assert_int_equal(
		    rf_ca_issue(fx->ca, reqs, 20, &fx->who, many), 0);
		assert_int_equal(do_revoke(fx, many[7].serial, NULL, NULL,
				     RF_CRL_REASON_KEY_COMPROMISE, 0),
		    20);
		for (i = 0; i < 20; i++) {
			assert_true(is_revoked(fx, many[i].serial));
			rf_issued_clear(&many[i]);
		}
		assert_false(is_revoked(fx, k3.serial));
		EVP_PKEY_free(key3);
		OPENSSL_free(csr3);
	}

	rf_cert_rec_clear(&fake);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
	OPENSSL_free(csr);
	OPENSSL_free(csr2);
	rf_issued_clear(&k1);
	rf_issued_clear(&k2);
	rf_issued_clear(&k3);
	rf_issued_clear(&other);
	rf_issued_clear(&byid1);
	rf_issued_clear(&byid2);
}

/*
 * The CRL: v2, signed by the issuing key, AKI = the issuing SKI, reason
 * codes, expired entries gone, unexpired ones kept.
 */
static void
test_crl_contents(void **state)
{
	struct fx *fx = *state;
	struct rf_issued shortc, longc, unspec, none;
	X509_CRL *crl;
	X509 *issuing;
	AUTHORITY_KEYID *akid;
	const ASN1_OCTET_STRING *ski;
	uint64_t n1, n2;
	int64_t t0 = rf_now();
	uint8_t *der = NULL;
	size_t len;
	int64_t tu, nu;
	char path[1200];
	int due;

	assert_int_equal(rf_ca_tenant_add(fx->ca, "eta", &fx->who), 0);
	rf_clock_set(t0);
	issue(fx, "eta", NULL, 0, 1, &shortc);
	issue(fx, "eta", NULL, 0, 30, &longc);
	issue(fx, "eta", NULL, 0, 30, &unspec);
	issue(fx, "eta", NULL, 0, 30, &none);
	do_revoke(
	    fx, shortc.serial, NULL, NULL, RF_CRL_REASON_KEY_COMPROMISE, 0);
	do_revoke(fx, longc.serial, NULL, NULL, RF_CRL_REASON_CA_COMPROMISE, 0);
	do_revoke(fx, unspec.serial, NULL, NULL, RF_CRL_REASON_UNSPECIFIED, 0);
	do_revoke(fx, none.serial, NULL, NULL, RF_CRL_REASON_NONE, 0);

	/* Each revocation regenerated the CRL: all four are listed. */
	assert_int_equal(rf_crl_due(&fx->cfg, fx->st, "issuing", &due), 0);
	assert_int_equal(due, 0);
	crl = load_crl(fx, "issuing", &n1);
	assert_int_equal(crl_number_ext(crl), n1);
	assert_int_equal(
	    crl_reason(crl, shortc.serial), RF_CRL_REASON_KEY_COMPROMISE);
	assert_int_equal(
	    crl_reason(crl, longc.serial), RF_CRL_REASON_CA_COMPROMISE);
	assert_int_equal(crl_reason(crl, unspec.serial), -1);
	assert_int_equal(crl_reason(crl, none.serial), -1);
	X509_CRL_free(crl);

	/* Two days later the one-day certificate has expired: it leaves. */
	rf_clock_set(t0 + 2 * DAY);
	assert_int_equal(rf_crl_due(&fx->cfg, fx->st, "issuing", &due), 0);
	assert_int_equal(due, 1); /* a day old */
	assert_int_equal(rf_crl_generate(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "issuing", &fx->who),
	    0);
	crl = load_crl(fx, "issuing", &n2);
	assert_true(n2 > n1);
	assert_int_equal(crl_reason(crl, shortc.serial), -2);
	assert_int_equal(
	    crl_reason(crl, longc.serial), RF_CRL_REASON_CA_COMPROMISE);
	assert_int_equal(X509_CRL_get_version(crl), 1); /* v2 */
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl),
			     (time_t)(t0 + 2 * DAY)),
	    0);
	issuing = rf_ca_cert(fx->ca, "issuing");
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl),
			     X509_get_subject_name(issuing)),
	    0);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(issuing)), 1);
	/* Not by another key. */
	assert_int_not_equal(
	    X509_CRL_verify(crl, X509_get0_pubkey(rf_ca_cert(fx->ca, "root"))),
	    1);
	assert_non_null(akid = X509_CRL_get_ext_d2i(
			    crl, NID_authority_key_identifier, NULL, NULL));
	assert_non_null(ski = X509_get0_subject_key_id(issuing));
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, ski), 0);
	AUTHORITY_KEYID_free(akid);
	X509_CRL_free(crl);

	/* An independent consumer agrees. */
	assert_int_equal(
	    rf_store_crl_get(fx->st, "issuing", &n2, &tu, &nu, &der, &len), 0);
	snprintf(path, sizeof(path), "%s/crl.der", fx->home);
	assert_int_equal(rf_write_file(path, der, len, 0600), 0);
	free(der);
	assert_int_equal(
	    tu_sh("openssl crl -inform DER -in '%s' -noout -text | grep -q "
		  "'CA Compromise'",
		path),
	    0);

	/* A marked revocation makes it due; regenerating clears that. */
	assert_int_equal(rf_store_begin(fx->st), 0);
	assert_int_equal(rf_crl_mark_revoked(fx->st, "issuing"), 0);
	assert_int_equal(rf_store_commit(fx->st), 0);
	assert_int_equal(rf_crl_due(&fx->cfg, fx->st, "issuing", &due), 0);
	assert_int_equal(due, 1);
	assert_int_equal(rf_crl_refresh(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "issuing", &fx->who, &due),
	    0);
	assert_int_equal(due, 1);
	assert_int_equal(rf_crl_due(&fx->cfg, fx->st, "issuing", &due), 0);
	assert_int_equal(due, 0);

	rf_clock_set(0);
	rf_issued_clear(&shortc);
	rf_issued_clear(&longc);
	rf_issued_clear(&unspec);
	rf_issued_clear(&none);
}

/* The root CRL: empty list (absent), signed by the root. */
static void
test_crl_root_empty(void **state)
{
	struct fx *fx = *state;
	X509_CRL *crl;
	uint64_t n;

	assert_int_equal(rf_crl_generate(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "root", &fx->who),
	    0);
	crl = load_crl(fx, "root", &n);
	assert_null(X509_CRL_get_REVOKED(crl));
	assert_int_equal(
	    X509_CRL_verify(crl, X509_get0_pubkey(rf_ca_cert(fx->ca, "root"))),
	    1);
	X509_CRL_free(crl);
	assert_int_equal(rf_crl_generate(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "nosuch", &fx->who),
	    RF_ERR_NOT_FOUND);
}

/* CRL numbers never go backwards, across a close and reopen. */
static void
test_crl_number_reopen(void **state)
{
	struct fx *fx = *state;
	uint64_t n1 = 0, n2 = 0, n3 = 0;

	assert_int_equal(rf_crl_generate_n(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "issuing", &fx->who, &n1),
	    0);
	assert_int_equal(rf_crl_generate_n(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "issuing", &fx->who, &n2),
	    0);
	assert_true(n2 > n1);
	fx_close(fx);
	fx_open(fx, 0);
	assert_int_equal(rf_crl_generate_n(&fx->cfg, fx->st, fx->keys, fx->ca,
			     "issuing", &fx->who, &n3),
	    0);
	assert_true(n3 > n2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reason_parse),
	    cmocka_unit_test(test_serial_norm),
	    cmocka_unit_test_setup_teardown(
		test_revoke_serial, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_revoke_tenant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revoke_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_revoke_serials, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_revoke_rotated_issuer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crl_contents, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_crl_root_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_crl_number_reopen, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
