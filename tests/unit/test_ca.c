/*
 * test_ca.c: the certificate authority against a real SoftHSM token and a
 * real SQLite store: hierarchy, tenants, issuance per profile and key type,
 * every refused CSR (and that nothing is stored for it), key reuse across
 * tenants, and serials. Certificates are checked with OpenSSL's verifier.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "store/store.h"
#include "testutil.h"

struct fx {
	char *home;
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
};

static struct fx F;

static int
setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	F.home = tu_home();
	tu_token(F.home, &F.cfg);
	F.who.actor = "test";
	F.who.source = "unit";
	assert_int_equal(rf_store_open(F.cfg.db_path, 1, &F.st), 0);
	assert_int_equal(rf_audit_open(F.st, &F.audit), 0);
	assert_int_equal(rf_keys_open(&F.cfg, F.audit, &F.keys), 0);
	assert_int_equal(rf_ca_init(&F.cfg, F.st, F.keys, &F.who), 0);
	assert_int_equal(rf_ca_open(&F.cfg, F.st, F.keys, &F.ca), 0);
	rf_ca_set_audit(F.ca, F.audit);
	assert_int_equal(rf_ca_tenant_add(F.ca, "acme", &F.who), 0);
	assert_int_equal(rf_ca_tenant_add(F.ca, "globex", &F.who), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	rf_ca_free(F.ca);
	rf_keys_free(F.keys);
	rf_audit_free(F.audit);
	rf_store_free(F.st);
	tu_home_remove(F.home);
	return 0;
}

/* ---------------------------------------------------------------- */

static int
count_one(void *arg, const struct rf_cert_rec *c)
{
	(void)c;
	(*(size_t *)arg)++;
	return 0;
}

static size_t
cert_count(void)
{
	struct rf_cert_filter f;
	size_t n = 0;

	memset(&f, 0, sizeof(f));
	assert_int_equal(rf_store_cert_foreach(F.st, &f, count_one, &n), 0);
	return n;
}

static X509 *
parse(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	assert_non_null(x);
	assert_ptr_equal(p, der + len);
	return x;
}

/* OpenSSL's chain verification: root trusted, issuing untrusted. */
static void
verify_chain(X509 *leaf, int purpose)
{
	X509_STORE *s = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();

	assert_int_equal(X509_STORE_add_cert(s, rf_ca_cert(F.ca, "root")), 1);
	assert_true(sk_X509_push(untrusted,
			rf_ca_cert(F.ca, rf_ca_issuer_name(F.ca))) > 0);
	assert_int_equal(X509_STORE_CTX_init(ctx, s, leaf, untrusted), 1);
	if (purpose != 0)
		X509_STORE_CTX_set_purpose(ctx, purpose);
	if (X509_verify_cert(ctx) != 1)
		fail_msg("verify: %s",
		    X509_verify_cert_error_string(
			X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(s);
}

/* A PKCS#10 request from a throwaway software key (the connector's). */
static uint8_t *
make_csr(EVP_PKEY *k, const char *bc, const char *eku, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	unsigned char *der = NULL;
	uint8_t *out;
	int l;

	assert_non_null(req);
	assert_int_equal(X509_REQ_set_version(req, 0), 1);
	assert_int_equal(
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
		MBSTRING_ASC, (const unsigned char *)"evil", -1, -1, 0),
	    1);
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	if (bc != NULL)
		sk_X509_EXTENSION_push(exts,
		    X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, bc));
	if (eku != NULL)
		sk_X509_EXTENSION_push(exts,
		    X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, eku));
	if (sk_X509_EXTENSION_num(exts) > 0)
		assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
	assert_true(X509_REQ_sign(req, k,
			EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519
			    ? NULL
			    : EVP_sha256()) > 0);
	assert_true((l = i2d_X509_REQ(req, &der)) > 0);
	assert_non_null(out = malloc((size_t)l + 1));
	memcpy(out, der, (size_t)l);
	*len = (size_t)l;
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return out;
}

static int
issue1(const char *tenant, enum rf_profile p, const uint8_t *csr, size_t csrlen,
    enum rf_key_alg keygen, const char *dns, struct rf_issued *out)
{
	struct rf_issue_req req;

	memset(&req, 0, sizeof(req));
	req.tenant = tenant;
	req.profile = p;
	req.csr = csr;
	req.csrlen = csrlen;
	req.keygen = keygen;
	req.dns = dns;
	return rf_ca_issue(F.ca, &req, 1, &F.who, out);
}

static int
has_ext(X509 *x, int nid, int crit)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	if (i < 0)
		return 0;
	return crit < 0 ||
	    X509_EXTENSION_get_critical(X509_get_ext(x, i)) == crit;
}

static void
check_common(X509 *x, const struct rf_issued *is, const char *tenant,
    const char *profile)
{
	char buf[256], hex[41];
	uint8_t md[SHA256_DIGEST_LENGTH];
	char b64[64];
	X509_NAME *n = X509_get_subject_name(x);
	const ASN1_OCTET_STRING *aki, *ski;
	BASIC_CONSTRAINTS *bc;
	AUTHORITY_INFO_ACCESS *aia;
	CRL_DIST_POINTS *dps;
	struct rf_cert_rec rec;

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_true(
	    X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, tenant);
	assert_true(X509_NAME_get_text_by_NID(
			n, NID_organizationalUnitName, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, profile);
	assert_true(X509_NAME_get_text_by_NID(
			n, NID_organizationName, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "ringfence");
	assert_int_equal(X509_NAME_entry_count(n), 3);
	/* basicConstraints critical CA:FALSE */
	assert_true(has_ext(x, NID_basic_constraints, 1));
	assert_non_null(
	    bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL));
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(has_ext(x, NID_key_usage, 1));
	/* SKI / AKI keyid = issuing SKI */
	assert_non_null(ski = X509_get0_subject_key_id(x));
	assert_non_null(aki = X509_get0_authority_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki,
			     X509_get0_subject_key_id(
				 rf_ca_cert(F.ca, rf_ca_issuer_name(F.ca)))),
	    0);
	/* CRL DP and AIA URLs */
	assert_non_null(
	    dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL));
	assert_int_equal(sk_DIST_POINT_num(dps), 1);
	CRL_DIST_POINTS_free(dps);
	assert_non_null(aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL));
	assert_int_equal(sk_ACCESS_DESCRIPTION_num(aia), 2);
	assert_int_equal(
	    OBJ_obj2nid(sk_ACCESS_DESCRIPTION_value(aia, 0)->method),
	    NID_ad_OCSP);
	assert_int_equal(
	    OBJ_obj2nid(sk_ACCESS_DESCRIPTION_value(aia, 1)->method),
	    NID_ad_ca_issuers);
	AUTHORITY_INFO_ACCESS_free(aia);
	/* serial string, thumbprints, record */
	assert_int_equal(rf_ca_serial_str(X509_get0_serialNumber(x), hex), 0);
	assert_string_equal(hex, is->serial);
	SHA256(is->der, is->derlen, md);
	rf_b64url(md, sizeof(md), b64);
	assert_string_equal(b64, is->x5t256);
	assert_int_equal(strlen(is->x5t), 27);
	assert_non_null(strstr(is->chain_pem, "-----BEGIN CERTIFICATE-----"));
	assert_int_equal(rf_store_cert_get(F.st, is->serial, &rec), 0);
	assert_string_equal(rec.tenant, tenant);
	assert_string_equal(rec.profile, profile);
	assert_string_equal(rec.key_id, is->key_id);
	assert_string_equal(rec.x5t, is->x5t);
	assert_int_equal(rec.derlen, is->derlen);
	assert_memory_equal(rec.der, is->der, is->derlen);
	rf_cert_rec_clear(&rec);
	/* The chain PEM holds three certificates, the leaf first. */
	{
		BIO *b = BIO_new_mem_buf(is->chain_pem, -1);
		X509 *c;
		int k = 0;

		while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
			if (k == 0)
				assert_int_equal(X509_cmp(c, x), 0);
			X509_free(c);
			k++;
		}
		assert_int_equal(k, 3);
		BIO_free(b);
	}
}

/* ---------------------------------------------------------------- */

static void
test_init(void **state)
{
	X509 *root = rf_ca_cert(F.ca, "root"),
	     *iss = rf_ca_cert(F.ca, "issuing"),
	     *ocsp = rf_ca_cert(F.ca, "ocsp");
	struct rf_store *st2;
	struct rf_ca *ca2 = NULL;
	struct rf_key_rec kr;
	char path[1200];
	EXTENDED_KEY_USAGE *eku;
	static const char *purposes[] = {"root", "issuing", "ocsp", "audit"};
	size_t i;

	(void)state;
	assert_non_null(root);
	assert_non_null(iss);
	assert_non_null(ocsp);
	assert_null(rf_ca_cert(F.ca, "nope"));
	for (i = 0; i < 4; i++) {
		assert_non_null(rf_ca_key(F.ca, purposes[i]));
		assert_int_equal(
		    rf_store_key_by_purpose(F.st, purposes[i], &kr), 0);
		assert_string_equal(
		    kr.id, rf_key_id(rf_ca_key(F.ca, purposes[i])));
	}
	/* Root: self-signed CA; issuing: pathlen 0; both keyCertSign. */
	assert_int_equal(X509_verify(root, X509_get0_pubkey(root)), 1);
	assert_int_equal(X509_verify(iss, X509_get0_pubkey(root)), 1);
	assert_int_equal(X509_verify(ocsp, X509_get0_pubkey(iss)), 1);
	assert_int_equal(X509_check_ca(root), 1);
	assert_int_equal(X509_check_ca(iss), 1);
	assert_int_equal(X509_check_ca(ocsp), 0);
	assert_true(X509_get_key_usage(root) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(root) & KU_CRL_SIGN);
	assert_int_equal(X509_get_pathlen(iss), 0);
	assert_true(has_ext(root, NID_basic_constraints, 1));
	assert_true(has_ext(iss, NID_crl_distribution_points, 0));
	assert_true(has_ext(iss, NID_authority_key_identifier, 0));
	assert_non_null(X509_get0_subject_key_id(root));
	/* OCSP signer: id-kp-OCSPSigning only, and ocsp-nocheck. */
	assert_non_null(
	    eku = X509_get_ext_d2i(ocsp, NID_ext_key_usage, NULL, NULL));
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(
	    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_OCSP_sign);
	EXTENDED_KEY_USAGE_free(eku);
	assert_true(has_ext(ocsp, NID_id_pkix_OCSP_noCheck, 0));
	assert_true(has_ext(ocsp, NID_key_usage, 1));
	verify_chain(ocsp, X509_PURPOSE_OCSP_HELPER);
	/* Twice is refused; an uninitialised store cannot be opened. */
	assert_int_equal(rf_ca_init(&F.cfg, F.st, F.keys, &F.who),
	    RF_ERR_ALREADY_INITIALISED);
	snprintf(path, sizeof(path), "%s/other.db", F.home);
	assert_int_equal(rf_store_open(path, 1, &st2), 0);
	assert_int_equal(
	    rf_ca_open(&F.cfg, st2, F.keys, &ca2), RF_ERR_NOT_INITIALISED);
	assert_null(ca2);
	rf_store_free(st2);
}

static void
test_tenants(void **state)
{
	char long_name[80];
	struct rf_tenant t;

	(void)state;
	assert_int_equal(rf_ca_tenant_add(F.ca, "acme", &F.who), RF_ERR_EXISTS);
	assert_string_equal(
	    rf_err_msg(RF_ERR_EXISTS), "tenant acme already exists");
	assert_int_equal(rf_ca_tenant_add(F.ca, "", &F.who), RF_ERR_ARG);
	assert_int_equal(rf_ca_tenant_add(F.ca, "a b", &F.who), RF_ERR_ARG);
	assert_int_equal(rf_ca_tenant_add(F.ca, "x/y", &F.who), RF_ERR_ARG);
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	assert_int_equal(rf_ca_tenant_add(F.ca, long_name, &F.who), RF_ERR_ARG);
	assert_int_equal(
	    rf_store_tenant_get(F.st, long_name, &t), RF_ERR_NOT_FOUND);
	long_name[64] = '\0';
	assert_int_equal(rf_ca_tenant_add(F.ca, long_name, &F.who), 0);
	assert_int_equal(rf_ca_tenant_add(F.ca, "Tenant-1.eu_west", &F.who), 0);
	assert_int_equal(rf_store_tenant_get(F.st, "Tenant-1.eu_west", &t), 0);
}

static void
test_issue_keygen(void **state)
{
	static const struct {
		enum rf_profile p;
		const char *name;
		enum rf_key_alg alg;
		const char *dns;
		int purpose;
	} cases[] = {
	    {RF_PROFILE_CLIENT, "client", RF_KEY_EC_P256, NULL,
		X509_PURPOSE_SSL_CLIENT},
	    {RF_PROFILE_SERVER, "server", RF_KEY_EC_P384, "api.acme.example",
		X509_PURPOSE_SSL_SERVER},
	    {RF_PROFILE_ASSERTION, "assertion", RF_KEY_EC_P256, NULL, 0},
	    {RF_PROFILE_SERVER, "server", RF_KEY_RSA_2048, "*.acme.example",
		X509_PURPOSE_SSL_SERVER},
	};
	struct rf_issued is;
	struct rf_key_rec kr;
	X509 *x;
	uint32_t ku;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(issue1("acme", cases[i].p, NULL, 0,
				     cases[i].alg, cases[i].dns, &is),
		    0);
		x = parse(is.der, is.derlen);
		check_common(x, &is, "acme", cases[i].name);
		verify_chain(x, cases[i].purpose);
		ku = X509_get_key_usage(x);
		assert_true(ku & KU_DIGITAL_SIGNATURE);
		assert_false(ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
		if (cases[i].p == RF_PROFILE_SERVER &&
		    cases[i].alg == RF_KEY_RSA_2048)
			assert_true(ku & KU_KEY_ENCIPHERMENT);
		else
			assert_false(ku & KU_KEY_ENCIPHERMENT);
		if (cases[i].p == RF_PROFILE_CLIENT)
			assert_int_equal(
			    X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
		else if (cases[i].p == RF_PROFILE_SERVER) {
			assert_int_equal(
			    X509_get_extended_key_usage(x), XKU_SSL_SERVER);
			assert_int_equal(
			    X509_check_host(x, "api.acme.example", 0, 0, NULL),
			    1);
		} else
			assert_false(has_ext(x, NID_ext_key_usage, -1));
		/* The key lives in the token and is recorded. */
		assert_int_equal(rf_store_key_get(F.st, is.key_id, &kr), 0);
		assert_string_equal(kr.purpose, "connection");
		assert_string_equal(kr.tenant, "acme");
		X509_free(x);
		rf_issued_clear(&is);
	}
	/* Server without a DNS name; client with one. */
	assert_int_equal(issue1("acme", RF_PROFILE_SERVER, NULL, 0,
			     RF_KEY_EC_P256, NULL, &is),
	    RF_ERR_ARG);
	assert_int_equal(issue1("acme", RF_PROFILE_CLIENT, NULL, 0,
			     RF_KEY_EC_P256, "a.example", &is),
	    RF_ERR_ARG);
	assert_int_equal(issue1("acme", RF_PROFILE_SERVER, NULL, 0,
			     RF_KEY_EC_P256, "bad name,DNS:x", &is),
	    RF_ERR_ARG);
}

static void
test_issue_csr(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-384");
	struct rf_issued is;
	uint8_t *der;
	size_t len;
	char *pem;
	BIO *b;
	BUF_MEM *bm;
	X509 *x;
	X509_REQ *req;
	const uint8_t *p;
	char id[65];

	(void)state;
	assert_non_null(k);
	/* DER, with a requested clientAuth (the profile's own) and CA:FALSE. */
	der = make_csr(k, "CA:FALSE", "clientAuth", &len);
	assert_int_equal(issue1("globex", RF_PROFILE_CLIENT, der, len,
			     RF_KEY_NONE, NULL, &is),
	    0);
	x = parse(is.der, is.derlen);
	check_common(x, &is, "globex", "client"); /* CSR subject ignored */
	verify_chain(x, X509_PURPOSE_SSL_CLIENT);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
	assert_int_equal(rf_keys_pub_id(k, id), 0);
	assert_string_equal(id, is.key_id);
	X509_free(x);
	rf_issued_clear(&is);
	/* PEM of the same request, for the same tenant: allowed again. */
	p = der;
	assert_non_null(req = d2i_X509_REQ(NULL, &p, (long)len));
	assert_non_null(b = BIO_new(BIO_s_mem()));
	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	BIO_get_mem_ptr(b, &bm);
	pem = (char *)bm->data;
	assert_int_equal(
	    issue1("globex", RF_PROFILE_CLIENT, (const uint8_t *)pem,
		bm->length, RF_KEY_NONE, NULL, &is),
	    0);
	rf_issued_clear(&is);
	BIO_free(b);
	X509_REQ_free(req);
	free(der);
	EVP_PKEY_free(k);
}

/* The connector profile: clientAuth only, connector_days, its subject. */
static void
test_issue_connector(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct rf_issue_req req;
	struct rf_issued is;
	EXTENDED_KEY_USAGE *eku;
	uint8_t *der;
	size_t len;
	int days, secs;
	X509 *x;

	(void)state;
	assert_non_null(k);
	assert_int_equal(rf_ca_tenant_add(F.ca, "connector.sync", &F.who), 0);
	der = make_csr(k, "CA:FALSE", "clientAuth", &len);
	assert_int_equal(issue1("connector.sync", RF_PROFILE_CONNECTOR, der,
			     len, RF_KEY_NONE, NULL, &is),
	    0);
	x = parse(is.der, is.derlen);
	check_common(x, &is, "connector.sync", "connector");
	verify_chain(x, X509_PURPOSE_SSL_CLIENT);
	assert_non_null(
	    eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL));
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(
	    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	/* connector_days (7 by default) plus the 5 minutes' backdate. */
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
			     X509_get0_notAfter(x)),
	    1);
	assert_int_equal(days, 7);
	assert_int_equal(secs, 300);
	X509_free(x);
	rf_issued_clear(&is);
	/* Longer than connector_days: refused. */
	memset(&req, 0, sizeof(req));
	req.tenant = "connector.sync";
	req.profile = RF_PROFILE_CONNECTOR;
	req.csr = der;
	req.csrlen = len;
	req.days = 8;
	assert_int_equal(rf_ca_issue(F.ca, &req, 1, &F.who, &is), RF_ERR_ARG);
	assert_non_null(strstr(rf_err_msg(RF_ERR_ARG), "connector_days"));
	rf_err_clear();
	free(der);
	/* A CSR asking for serverAuth: refused for this profile. */
	der = make_csr(k, "CA:FALSE", "serverAuth", &len);
	assert_int_equal(issue1("connector.sync", RF_PROFILE_CONNECTOR, der,
			     len, RF_KEY_NONE, NULL, &is),
	    RF_ERR_CSR_REQUEST);
	rf_err_clear();
	free(der);
	EVP_PKEY_free(k);
}

struct bad {
	const char *what;
	int code;
	enum rf_profile profile;
	uint8_t *csr;
	size_t len;
};

static void
test_bad_csrs(void **state)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa1024 = EVP_RSA_gen(1024),
		 *k1 = EVP_EC_gen("secp256k1"), *p521 = EVP_EC_gen("P-521"),
		 *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
		 *comp = EVP_EC_gen("P-256");
	struct bad cases[20];
	struct rf_issued is;
	uint8_t *good, *b;
	size_t glen, n = 0, i, before;
	uint64_t leaves0, leaves1;

	(void)state;
	assert_non_null(ec);
	assert_non_null(rsa1024);
	assert_non_null(k1);
	assert_non_null(p521);
	assert_non_null(ed);
	good = make_csr(ec, NULL, NULL, &glen);

	cases[n] = (struct bad){"garbage", RF_ERR_CSR_MALFORMED,
	    RF_PROFILE_CLIENT, (uint8_t *)strdup("hello, world"), 12};
	n++;
	b = malloc(glen);
	memcpy(b, good, glen - 10);
	cases[n++] = (struct bad){
	    "truncated", RF_ERR_CSR_MALFORMED, RF_PROFILE_CLIENT, b, glen - 10};
	b = malloc(glen + 1);
	memcpy(b, good, glen);
	b[glen] = 0;
	cases[n++] = (struct bad){"trailing byte", RF_ERR_CSR_MALFORMED,
	    RF_PROFILE_CLIENT, b, glen + 1};
	b = calloc(1, RF_CSR_MAX + 1);
	memcpy(b, good, glen);
	cases[n++] = (struct bad){"oversized", RF_ERR_TOO_LARGE,
	    RF_PROFILE_CLIENT, b, RF_CSR_MAX + 1};
	b = malloc(glen);
	memcpy(b, good, glen);
	b[glen - 5] ^= 0x01; /* inside the signature's last INTEGER */
	cases[n++] = (struct bad){
	    "bad signature", RF_ERR_CSR_SIGNATURE, RF_PROFILE_CLIENT, b, glen};
	b = make_csr(rsa1024, NULL, NULL, &cases[n].len);
	cases[n] = (struct bad){"RSA-1024", RF_ERR_KEY_DISALLOWED,
	    RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(k1, NULL, NULL, &cases[n].len);
	cases[n] = (struct bad){"secp256k1", RF_ERR_KEY_DISALLOWED,
	    RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(p521, NULL, NULL, &cases[n].len);
	cases[n] = (struct bad){
	    "P-521", RF_ERR_KEY_DISALLOWED, RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(ed, NULL, NULL, &cases[n].len);
	cases[n] = (struct bad){"Ed25519", RF_ERR_KEY_DISALLOWED,
	    RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	assert_int_equal(
	    EVP_PKEY_set_utf8_string_param(
		comp, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
	    1);
	b = make_csr(comp, NULL, NULL, &cases[n].len);
	assert_true(cases[n].len + 28 < glen); /* 33-byte point, not 65 */
	cases[n] = (struct bad){"compressed point", RF_ERR_KEY_DISALLOWED,
	    RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(ec, "critical,CA:TRUE", NULL, &cases[n].len);
	cases[n] = (struct bad){
	    "CA:TRUE", RF_ERR_CSR_REQUEST, RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(ec, NULL, "clientAuth,codeSigning", &cases[n].len);
	cases[n] = (struct bad){"codeSigning", RF_ERR_CSR_REQUEST,
	    RF_PROFILE_CLIENT, b, cases[n].len};
	n++;
	b = make_csr(ec, NULL, "clientAuth", &cases[n].len);
	cases[n] = (struct bad){"clientAuth on assertion", RF_ERR_CSR_REQUEST,
	    RF_PROFILE_ASSERTION, b, cases[n].len};
	n++;
	/* A point that is not on P-256: refused before its signature. */
	b = malloc(glen);
	memcpy(b, good, glen);
	for (i = 0; i + 4 < glen; i++)
		if (memcmp(b + i, "\x03\x42\x00\x04", 4) == 0)
			break;
	assert_true(i + 4 + 64 <= glen);
	b[i + 4 + 10] ^= 0x01;
	cases[n++] = (struct bad){"point off the curve", RF_ERR_CSR_MALFORMED,
	    RF_PROFILE_CLIENT, b, glen};
	b = (uint8_t *)strdup("-----BEGIN CERTIFICATE-----\nAAAA\n"
			      "-----END CERTIFICATE-----\n");
	cases[n] = (struct bad){"PEM label", RF_ERR_CSR_MALFORMED,
	    RF_PROFILE_CLIENT, b, strlen((char *)b)};
	n++;

	before = cert_count();
	assert_int_equal(rf_store_leaf_count(F.st, &leaves0), 0);
	for (i = 0; i < n; i++) {
		int r = issue1("acme", cases[i].profile, cases[i].csr,
		    cases[i].len, RF_KEY_NONE, NULL, &is);

		if (r != cases[i].code)
			fail_msg("%s: got %d (%s), want %d", cases[i].what, r,
			    rf_err_msg(r), cases[i].code);
		assert_null(is.der);
		assert_null(is.chain_pem);
		assert_int_equal(cert_count(), before);
		/* The code is the one from the standalone check too. */
		assert_int_equal(rf_ca_csr_check(cases[i].csr, cases[i].len,
				     cases[i].profile, NULL),
		    cases[i].code);
		free(cases[i].csr);
	}
	/* Bytes that are no request: the message says both forms and how to
	 * make one (PEM is read too, so "not DER" would mislead). */
	assert_int_equal(rf_ca_csr_check((const uint8_t *)"root:x:0:0", 10,
			     RF_PROFILE_CLIENT, NULL),
	    RF_ERR_CSR_MALFORMED);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_CSR_MALFORMED), "(PEM or DER)"));
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_CSR_MALFORMED), "openssl req -new"));
	/* The key type found is named. */
	b = make_csr(rsa1024, NULL, NULL, &glen);
	assert_int_equal(rf_ca_csr_check(b, glen, RF_PROFILE_CLIENT, NULL),
	    RF_ERR_KEY_DISALLOWED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_KEY_DISALLOWED), "RSA-1024"));
	free(b);
	/* Unknown tenant: refused, nothing signed or stored. */
	assert_int_equal(issue1("initech", RF_PROFILE_CLIENT, good, glen,
			     RF_KEY_NONE, NULL, &is),
	    RF_ERR_NOT_FOUND);
	assert_string_equal(rf_err_msg(RF_ERR_NOT_FOUND),
	    "unknown tenant initech: add it with 'ringfence tenant add "
	    "initech'");
	assert_int_equal(cert_count(), before);
	/* Nothing was signed for any refused request. */
	assert_int_equal(rf_store_leaf_count(F.st, &leaves1), 0);
	assert_true(leaves1 == leaves0);
	free(good);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(p521);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(comp);
}

/* A request signed with the given digest (and PSS padding for RSA). */
static uint8_t *
make_csr_md(EVP_PKEY *k, const EVP_MD *md, int pss, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	unsigned char *der = NULL;
	uint8_t *out;
	int l;

	assert_non_null(req);
	assert_non_null(mc);
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_int_equal(EVP_DigestSignInit(mc, &pc, md, NULL, k), 1);
	if (pss)
		assert_int_equal(
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
	assert_true(X509_REQ_sign_ctx(req, mc) > 0);
	assert_true((l = i2d_X509_REQ(req, &der)) > 0);
	assert_non_null(out = malloc((size_t)l));
	memcpy(out, der, (size_t)l);
	*len = (size_t)l;
	OPENSSL_free(der);
	EVP_MD_CTX_free(mc);
	X509_REQ_free(req);
	return out;
}

/*
 * Every allowed key and signature kind is accepted, and the canonical SPKI
 * the CA keeps is the one OpenSSL's own encoder writes for that key.
 */
static void
test_csr_kinds(void **state)
{
	struct {
		const char *what;
		EVP_PKEY *k;
		const EVP_MD *md;
		int pss;
	} c[] = {
	    {"P-256/SHA-256", EVP_EC_gen("P-256"), EVP_sha256(), 0},
	    {"P-384/SHA-384", EVP_EC_gen("P-384"), EVP_sha384(), 0},
	    {"RSA-2048/SHA-256", EVP_RSA_gen(2048), EVP_sha256(), 0},
	    {"RSA-3072/PSS", EVP_RSA_gen(3072), EVP_sha256(), 1},
	};
	EVP_PKEY *pub;
	unsigned char *want;
	uint8_t *csr, *spki;
	size_t i, len, spkilen;
	int wl, r;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		assert_non_null(c[i].k);
		csr = make_csr_md(c[i].k, c[i].md, c[i].pss, &len);
		pub = NULL;
		if ((r = rf_ca_csr_parse(csr, len, RF_PROFILE_CLIENT, &pub,
			 &spki, &spkilen)) != 0)
			fail_msg("%s: %s", c[i].what, rf_err_msg(r));
		assert_non_null(pub);
		assert_int_equal(EVP_PKEY_eq(pub, c[i].k), 1);
		want = NULL;
		assert_true((wl = i2d_PUBKEY(c[i].k, &want)) > 0);
		assert_int_equal(spkilen, (size_t)wl);
		assert_memory_equal(spki, want, spkilen);
		/* A flipped signature bit is caught for every kind. */
		csr[len - 3] ^= 0x04;
		assert_int_equal(
		    rf_ca_csr_check(csr, len, RF_PROFILE_CLIENT, NULL),
		    RF_ERR_CSR_SIGNATURE);
		OPENSSL_free(want);
		free(spki);
		free(csr);
		EVP_PKEY_free(pub);
		EVP_PKEY_free(c[i].k);
	}
}

static void
test_key_reused(void **state)
{
	EVP_PKEY *k = EVP_RSA_gen(2048), *k2 = EVP_EC_gen("P-256");
	struct rf_issue_req reqs[2];
	struct rf_issued is, out[2];
	uint8_t *csr, *csr2;
	size_t len, len2, before;

	(void)state;
	assert_non_null(k);
	assert_non_null(k2);
	csr = make_csr(k, NULL, NULL, &len);
	assert_int_equal(issue1("acme", RF_PROFILE_ASSERTION, csr, len,
			     RF_KEY_NONE, NULL, &is),
	    0);
	rf_issued_clear(&is);
	before = cert_count();
	assert_int_equal(issue1("globex", RF_PROFILE_ASSERTION, csr, len,
			     RF_KEY_NONE, NULL, &is),
	    RF_ERR_KEY_REUSED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_KEY_REUSED),
	    "public key already serves tenant acme connection -"));
	assert_int_equal(cert_count(), before);
	/* Within one batch: refused as a whole. */
	csr2 = make_csr(k2, NULL, NULL, &len2);
	memset(reqs, 0, sizeof(reqs));
	reqs[0].tenant = "acme";
	reqs[0].profile = RF_PROFILE_CLIENT;
	reqs[0].csr = csr2;
	reqs[0].csrlen = len2;
	reqs[1] = reqs[0];
	reqs[1].tenant = "globex";
	assert_int_equal(
	    rf_ca_issue(F.ca, reqs, 2, &F.who, out), RF_ERR_KEY_REUSED);
	assert_int_equal(cert_count(), before);
	/* A bad second request stops the first too. */
	reqs[1].tenant = "acme";
	reqs[1].profile = RF_PROFILE_SERVER; /* no DNS name */
	assert_int_equal(rf_ca_issue(F.ca, reqs, 2, &F.who, out), RF_ERR_ARG);
	assert_null(out[0].der);
	assert_int_equal(cert_count(), before);
	/* Both for the same tenant: fine, one transaction. */
	reqs[1].profile = RF_PROFILE_ASSERTION;
	assert_int_equal(rf_ca_issue(F.ca, reqs, 2, &F.who, out), 0);
	assert_int_equal(cert_count(), before + 2);
	assert_string_equal(out[0].key_id, out[1].key_id);
	assert_string_not_equal(out[0].serial, out[1].serial);
	rf_issued_clear(&out[0]);
	rf_issued_clear(&out[1]);
	free(csr);
	free(csr2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/*
 * A batch large enough for its CSRs to be checked on two threads still
 * reports the first bad request in request order, and stores nothing.
 */
static void
test_batch_csr_errors(void **state)
{
	enum { N = 48 };
	struct rf_issue_req reqs[N];
	struct rf_issued out[N];
	uint8_t *csr[N];
	size_t len[N], i, before;

	(void)state;
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < N; i++) {
		EVP_PKEY *k = EVP_EC_gen("P-256");

		assert_non_null(k);
		csr[i] = make_csr(k, NULL, NULL, &len[i]);
		EVP_PKEY_free(k);
		reqs[i].tenant = "acme";
		reqs[i].profile = RF_PROFILE_CLIENT;
		reqs[i].csr = csr[i];
		reqs[i].csrlen = len[i];
	}
	before = cert_count();
	csr[37][len[37] - 5] ^= 0x01; /* a bad signature late in the batch */
	reqs[20].tenant = "initech";  /* an unknown tenant before it */
	assert_int_equal(
	    rf_ca_issue(F.ca, reqs, N, &F.who, out), RF_ERR_NOT_FOUND);
	assert_int_equal(cert_count(), before);
	reqs[20].tenant = "acme";
	/* Its proof is checked while the batch is signed: nothing of the
	 * batch is stored, and the error names the request. */
	assert_int_equal(
	    rf_ca_issue(F.ca, reqs, N, &F.who, out), RF_ERR_CSR_SIGNATURE);
	assert_non_null(strstr(rf_err_msg(RF_ERR_CSR_SIGNATURE), "request 38"));
	assert_int_equal(cert_count(), before);
	csr[37][len[37] - 5] ^= 0x01;
	assert_int_equal(rf_ca_issue(F.ca, reqs, N, &F.who, out), 0);
	assert_int_equal(cert_count(), before + N);
	for (i = 0; i < N; i++) {
		assert_non_null(out[i].der);
		/* Each certificate carries its own request's key. */
		if (i > 0)
			assert_string_not_equal(
			    out[i].key_id, out[i - 1].key_id);
		rf_issued_clear(&out[i]);
		free(csr[i]);
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_serials(void **state)
{
	enum { N = 1000, BATCH = 100 };
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct rf_issue_req reqs[BATCH];
	struct rf_issued *out = calloc(BATCH, sizeof(*out));
	char **serials = calloc(N, sizeof(char *));
	uint8_t *csr;
	size_t len, i, j, before;
	int max_bits = 0, bits;
	BIGNUM *bn, *lo, *hi;
	uint64_t t0, t1, ms;
	struct timespec ts;
	X509 *x;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	assert_non_null(out);
	assert_non_null(serials);
	csr = make_csr(k, NULL, NULL, &len);
	before = cert_count();
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < BATCH; i++) {
		reqs[i].tenant = "globex";
		reqs[i].profile = RF_PROFILE_ASSERTION;
		reqs[i].csr = csr;
		reqs[i].csrlen = len;
	}
	for (i = 0; i < N; i += BATCH) {
		assert_int_equal(
		    rf_ca_issue(F.ca, reqs, BATCH, &F.who, out), 0);
		for (j = 0; j < BATCH; j++) {
			x = parse(out[j].der, out[j].derlen);
			assert_non_null(bn = ASN1_INTEGER_to_BN(
					    X509_get0_serialNumber(x), NULL));
			assert_false(BN_is_negative(bn));
			assert_false(BN_is_zero(bn));
			assert_true(BN_num_bits(bn) <= 128);
			/* 80 random bits after the time in ms */
			assert_non_null(lo = BN_dup(bn));
			assert_int_equal(BN_mask_bits(lo, 80), 1);
			bits = BN_num_bits(lo);
			if (bits > max_bits)
				max_bits = bits;
			BN_free(lo);
			assert_non_null(hi = BN_new());
			assert_int_equal(BN_rshift(hi, bn, 80), 1);
			ms = BN_get_word(hi);
			BN_free(hi);
			clock_gettime(CLOCK_REALTIME, &ts);
			t1 = (uint64_t)ts.tv_sec * 1000 +
			    (uint64_t)ts.tv_nsec / 1000000;
			/* a second of slack: the clock may be stepped */
			assert_true(ms + 1000 >= t0 && ms <= t1 + 1000);
			/* canonical: lowercase, no leading zero */
			assert_true(out[j].serial[0] != '0');
			assert_int_equal(
			    strspn(out[j].serial, "0123456789abcdef"),
			    strlen(out[j].serial));
			assert_int_equal(strlen(out[j].serial),
			    (size_t)(BN_num_bits(bn) + 3) / 4);
			serials[i + j] = strdup(out[j].serial);
			BN_free(bn);
			X509_free(x);
			rf_issued_clear(&out[j]);
		}
	}
	/* 1,000 draws of 80 random bits: the top one set in some */
	assert_int_equal(max_bits, 80);
	{
		/* 128 bits with the top one set (a 17-octet INTEGER) */
		static const uint8_t top[16] = {
		    0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f};
		ASN1_INTEGER *ai;
		char hex[41];

		assert_non_null(bn = BN_bin2bn(top, sizeof(top), NULL));
		assert_non_null(ai = BN_to_ASN1_INTEGER(bn, NULL));
		assert_int_equal(rf_ca_serial_str(ai, hex), 0);
		assert_string_equal(hex, "8000000000000000000000000000000f");
		ASN1_INTEGER_free(ai);
		BN_free(bn);
	}
	qsort(serials, N, sizeof(char *), cmp_str);
	for (i = 1; i < N; i++)
		assert_string_not_equal(serials[i - 1], serials[i]);
	assert_int_equal(cert_count(), before + N);
	for (i = 0; i < N; i++)
		free(serials[i]);
	free(serials);
	free(out);
	free(csr);
	EVP_PKEY_free(k);
}

static void
test_der_helpers(void **state)
{
	static const uint8_t notseq[] = {0x02, 0x01, 0x01};
	static const uint8_t trailing[] = {0x30, 0x03, 0x02, 0x01, 0x01, 0x00};
	X509_ALGOR *alg = X509_ALGOR_new();
	uint8_t sig[4] = {1, 2, 3, 4}, *der = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(
	    X509_ALGOR_set0(
		alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL),
	    1);
	assert_int_equal(
	    rf_ca_assemble(notseq, sizeof(notseq), alg, sig, 4, &der, &len),
	    RF_ERR_ARG);
	assert_int_equal(
	    rf_ca_assemble(trailing, sizeof(trailing), alg, sig, 4, &der, &len),
	    RF_ERR_ARG);
	assert_null(der);
	/* SEQUENCE { INTEGER 1 } has no AlgorithmIdentifier to replace. */
	assert_int_equal(
	    rf_ca_tbs_set_sigalg(trailing, 5, alg, &der, &len), RF_ERR_ARG);
	/* 30 05 | 02 01 01 | 30 00 -> the algorithm replaces 30 00. */
	{
		static const uint8_t tbs[] = {
		    0x30, 0x05, 0x02, 0x01, 0x01, 0x30, 0x00};
		static const uint8_t want[] = {0x30, 0x0f, 0x02, 0x01, 0x01,
		    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
		    0x03, 0x02};

		assert_int_equal(
		    rf_ca_tbs_set_sigalg(tbs, sizeof(tbs), alg, &der, &len), 0);
		assert_int_equal(len, sizeof(want));
		assert_memory_equal(der, want, sizeof(want));
		free(der);
	}
	X509_ALGOR_free(alg);
}

static int
hook_count(void *arg, size_t i, const char *serial, const char *key_id)
{
	size_t *n = arg;

	assert_int_equal(i, *n);
	assert_non_null(serial);
	assert_int_equal(strlen(key_id), 64);
	(*n)++;
	return 0;
}

/* Fails for request *arg (NULL: request 1). */
static int
hook_fail(void *arg, size_t i, const char *serial, const char *key_id)
{
	size_t at = arg != NULL ? *(const size_t *)arg : 1;

	(void)serial;
	(void)key_id;
	return i == at ? rf_err_set(RF_ERR_STATE, "hook says no") : 0;
}

static void
test_issue_hook(void **state)
{
	struct rf_issue_req reqs[3];
	struct rf_issued out[3];
	size_t calls = 0, before, i;

	(void)state;
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 3; i++) {
		reqs[i].tenant = "acme";
		reqs[i].profile = RF_PROFILE_ASSERTION;
		reqs[i].keygen = RF_KEY_EC_P256;
	}
	before = cert_count();
	assert_int_equal(
	    rf_ca_issue_ex(F.ca, reqs, 3, &F.who, out, hook_fail, NULL),
	    RF_ERR_STATE);
	assert_null(out[0].der);
	assert_int_equal(cert_count(), before);
	assert_int_equal(
	    rf_ca_issue_ex(F.ca, reqs, 3, &F.who, out, hook_count, &calls), 0);
	assert_int_equal(calls, 3);
	assert_int_equal(cert_count(), before + 3);
	for (i = 0; i < 3; i++)
		rf_issued_clear(&out[i]);
}

struct batches {
	size_t from[8], k[8], n;
};

static void
batch_done(void *arg, size_t from, size_t k)
{
	struct batches *b = arg;

	assert_true(b->n < 8);
	b->from[b->n] = from;
	b->k[b->n++] = k;
}

/* n requests of tenant acme for assertion certificates with new keys. */
static void
keygen_reqs(struct rf_issue_req *reqs, size_t n)
{
	size_t i;

	memset(reqs, 0, n * sizeof(*reqs));
	for (i = 0; i < n; i++) {
		reqs[i].tenant = "acme";
		reqs[i].profile = RF_PROFILE_ASSERTION;
		reqs[i].keygen = RF_KEY_EC_P256;
	}
}

/*
 * A pipelined issuance commits its batches in order, each with the hook
 * called for its requests counted from the first; a batch that fails
 * (here the second, in its hook; then the third, in its checks) stores
 * nothing, nor does any after it, and the batches before it stay
 * committed.
 */
static void
test_issue_pipelined(void **state)
{
	struct rf_issue_req reqs[7];
	struct batches b;
	size_t calls = 0, before, at = 4;

	(void)state;
	keygen_reqs(reqs, 7);
	before = cert_count();
	memset(&b, 0, sizeof(b));
	assert_int_equal(rf_ca_issue_pipelined(F.ca, reqs, 7, 3, 3, &F.who,
			     hook_count, &calls, batch_done, &b),
	    0);
	assert_int_equal(calls, 7);
	assert_int_equal(cert_count(), before + 7);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.from[0], 0);
	assert_int_equal(b.k[0], 3);
	assert_int_equal(b.from[1], 3);
	assert_int_equal(b.k[1], 3);
	assert_int_equal(b.from[2], 6);
	assert_int_equal(b.k[2], 1);

	memset(&b, 0, sizeof(b));
	assert_int_equal(rf_ca_issue_pipelined(F.ca, reqs, 7, 3, 3, &F.who,
			     hook_fail, &at, batch_done, &b),
	    RF_ERR_STATE);
	assert_non_null(strstr(rf_err_msg(RF_ERR_STATE), "hook says no"));
	assert_int_equal(b.n, 1);
	assert_int_equal(cert_count(), before + 7 + 3);

	/* A batch that fails its checks (prepared while the one before it
	 * is signed): the batches before it still commit, it does not. */
	memset(&b, 0, sizeof(b));
	reqs[6].tenant = "nosuch";
	assert_int_not_equal(rf_ca_issue_pipelined(F.ca, reqs, 7, 3, 3, &F.who,
				 NULL, NULL, batch_done, &b),
	    0);
	assert_non_null(strstr(rf_err_msg(RF_ERR_NOT_FOUND), "nosuch"));
	assert_int_equal(b.n, 2);
	assert_int_equal(cert_count(), before + 7 + 3 + 6);
	assert_int_equal(rf_ca_issue_pipelined(F.ca, reqs, 0, 3, 3, &F.who,
			     NULL, NULL, NULL, NULL),
	    RF_ERR_ARG);
}

/*
 * With min below per, the first batch has min requests and the last ones
 * halve down to min, leaving no sliver: 20 in batches of at most 8, min
 * 2, commit as 2, 8, 5, 3, 2, every one with its certificates.
 */
static void
test_issue_pipelined_taper(void **state)
{
	static const size_t want[] = {2, 8, 5, 3, 2};
	struct rf_issue_req reqs[20];
	struct batches b;
	size_t calls = 0, before, i, from = 0;

	(void)state;
	keygen_reqs(reqs, 20);
	before = cert_count();
	memset(&b, 0, sizeof(b));
	assert_int_equal(rf_ca_issue_pipelined(F.ca, reqs, 20, 8, 2, &F.who,
			     hook_count, &calls, batch_done, &b),
	    0);
	assert_int_equal(calls, 20);
	assert_int_equal(cert_count(), before + 20);
	assert_int_equal(b.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < b.n; i++) {
		assert_int_equal(b.from[i], from);
		assert_int_equal(b.k[i], want[i]);
		from += want[i];
	}
}

/* The stored OCSP response of one serial (NULL when none), a copy. */
struct find_ocsp {
	const char *serial;
	OCSP_RESPONSE *resp;
	size_t n;
};

static int
find_ocsp(void *arg, const struct rf_ocsp_rec *o)
{
	struct find_ocsp *fo = arg;
	const uint8_t *p = o->der;

	fo->n++;
	if (fo->serial != NULL && strcmp(o->serial, fo->serial) == 0)
		fo->resp = d2i_OCSP_RESPONSE(NULL, &p, (long)o->len);
	return 0;
}

/*
 * Each certificate commits with its OCSP response ("good", signed by the
 * delegated OCSP signer, checked here with OpenSSL's OCSP verifier); an
 * issuance that does not commit leaves no response.
 */
static void
test_issue_ocsp(void **state)
{
	struct rf_issue_req reqs[3];
	struct rf_issued out[3];
	struct find_ocsp fo;
	X509 *iss = rf_ca_cert(F.ca, rf_ca_issuer_name(F.ca));
	X509_STORE *xs = X509_STORE_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	OCSP_BASICRESP *basic;
	OCSP_CERTID *id;
	size_t i, before;
	int status;
	X509 *x;

	(void)state;
	assert_non_null(xs);
	assert_non_null(chain);
	assert_int_equal(X509_STORE_add_cert(xs, rf_ca_cert(F.ca, "root")), 1);
	assert_true(sk_X509_push(chain, iss) > 0);
	assert_true(sk_X509_push(chain, rf_ca_cert(F.ca, "ocsp")) > 0);
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 3; i++) {
		reqs[i].tenant = "globex";
		reqs[i].profile = RF_PROFILE_CLIENT;
		reqs[i].keygen = RF_KEY_EC_P256;
	}
	memset(&fo, 0, sizeof(fo));
	assert_int_equal(rf_store_ocsp_foreach(F.st, 0, find_ocsp, &fo), 0);
	before = fo.n;
	assert_int_equal(
	    rf_ca_issue_ex(F.ca, reqs, 3, &F.who, out, hook_fail, NULL),
	    RF_ERR_STATE);
	memset(&fo, 0, sizeof(fo));
	assert_int_equal(rf_store_ocsp_foreach(F.st, 0, find_ocsp, &fo), 0);
	assert_int_equal(fo.n, before);
	assert_int_equal(rf_ca_issue(F.ca, reqs, 3, &F.who, out), 0);
	for (i = 0; i < 3; i++) {
		memset(&fo, 0, sizeof(fo));
		fo.serial = out[i].serial;
		assert_int_equal(
		    rf_store_ocsp_foreach(F.st, 0, find_ocsp, &fo), 0);
		assert_int_equal(fo.n, before + 3);
		assert_non_null(fo.resp);
		assert_int_equal(OCSP_response_status(fo.resp),
		    OCSP_RESPONSE_STATUS_SUCCESSFUL);
		assert_non_null(basic = OCSP_response_get1_basic(fo.resp));
		assert_int_equal(OCSP_basic_verify(basic, chain, xs, 0), 1);
		x = parse(out[i].der, out[i].derlen);
		assert_non_null(id = OCSP_cert_to_id(NULL, x, iss));
		assert_int_equal(OCSP_resp_find_status(basic, id, &status, NULL,
				     NULL, NULL, NULL),
		    1);
		assert_int_equal(status, V_OCSP_CERTSTATUS_GOOD);
		OCSP_CERTID_free(id);
		X509_free(x);
		OCSP_BASICRESP_free(basic);
		OCSP_RESPONSE_free(fo.resp);
		rf_issued_clear(&out[i]);
	}
	sk_X509_free(chain);
	X509_STORE_free(xs);
}

/* Last: rotation changes the issuer for everything after it. */
static void
test_rotate(void **state)
{
	X509 *old = rf_ca_cert(F.ca, "issuing"), *nw, *x;
	struct rf_ca *ca2 = NULL;
	struct rf_ca_rec rec;
	struct rf_cert_rec cr;
	struct rf_issued is;

	(void)state;
	assert_string_equal(rf_ca_issuer_name(F.ca), "issuing");
	assert_int_equal(
	    rf_ca_rotate(F.ca, "nope", "issuing-2", &F.who), RF_ERR_NOT_FOUND);
	assert_int_equal(
	    rf_ca_rotate(F.ca, "issuing", "bad name", &F.who), RF_ERR_ARG);
	assert_int_equal(rf_ca_rotate(F.ca, "issuing", "issuing-2", &F.who), 0);
	assert_int_equal(
	    rf_ca_rotate(F.ca, "issuing", "issuing-2", &F.who), RF_ERR_EXISTS);
	assert_string_equal(rf_ca_issuer_name(F.ca), "issuing-2");
	assert_non_null(nw = rf_ca_cert(F.ca, "issuing-2"));
	assert_ptr_equal(rf_ca_cert(F.ca, "issuing"), old); /* kept for CRLs */
	assert_int_not_equal(X509_cmp(old, nw), 0);
	assert_int_equal(X509_get_pathlen(nw), 0);
	assert_int_equal(rf_store_ca_get(F.st, "issuing", &rec), 0);
	assert_int_equal(rec.active, 0);
	rf_ca_rec_clear(&rec);
	assert_int_equal(rf_store_ca_get(F.st, "issuing-2", &rec), 0);
	assert_int_equal(rec.active, 1);
	assert_string_equal(rec.parent, "root");
	rf_ca_rec_clear(&rec);
	/* New certificates come from the new CA and chain to the root. */
	assert_int_equal(issue1("acme", RF_PROFILE_CLIENT, NULL, 0,
			     RF_KEY_EC_P256, NULL, &is),
	    0);
	x = parse(is.der, is.derlen);
	check_common(x, &is, "acme", "client");
	verify_chain(x, X509_PURPOSE_SSL_CLIENT);
	assert_int_equal(X509_check_issued(nw, x), X509_V_OK);
	assert_int_equal(rf_store_cert_get(F.st, is.serial, &cr), 0);
	assert_string_equal(cr.issuer, "issuing-2");
	rf_cert_rec_clear(&cr);
	X509_free(x);
	rf_issued_clear(&is);
	/* A fresh open picks the active issuer. */
	assert_int_equal(rf_ca_open(&F.cfg, F.st, F.keys, &ca2), 0);
	assert_string_equal(rf_ca_issuer_name(ca2), "issuing-2");
	rf_ca_free(ca2);
}

/* ---------------------------------------------------------------- */
/* serve's TLS certificate                                          */

/* The "tls" certificate of ca: issued by issuer, for names, its key. */
static void
tls_check(struct rf_ca *ca, const char *issuer, const char *ip, const char *dns,
    char id[65])
{
	X509 *x = rf_ca_cert(ca, "tls");
	struct rf_key *k = rf_ca_key(ca, "tls");
	struct rf_key_rec kr;
	char spki_id[65];

	assert_non_null(x);
	assert_non_null(k);
	assert_int_equal(
	    X509_verify(x, X509_get0_pubkey(rf_ca_cert(ca, issuer))), 1);
	assert_int_equal(X509_check_ip_asc(x, ip, 0), 1);
	assert_int_equal(X509_check_host(x, dns, 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "example.com", 0, 0, NULL), 0);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(rf_keys_pub_id(X509_get0_pubkey(x), spki_id), 0);
	assert_string_equal(spki_id, rf_key_id(k));
	assert_int_equal(rf_store_key_get(F.st, rf_key_id(k), &kr), 0);
	assert_string_equal(kr.purpose, "tls");
	assert_string_equal(kr.state, "active");
	snprintf(id, 65, "%s", rf_key_id(k));
}

/* The number of names in x's subjectAltName. */
static int
tls_san_count(X509 *x)
{
	GENERAL_NAMES *gens;
	int n;

	assert_non_null(
	    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL));
	n = sk_GENERAL_NAME_num(gens);
	GENERAL_NAMES_free(gens);
	return n;
}

/*
 * Issue 13 item 8: the HTTPS certificate is a certificate of its issuing
 * CA like any other: CRL DP and OCSP URL, a record in certs; once
 * revoked, the next ensure replaces it.
 */
static void
tls_revocable(struct fx *f)
{
	const char *names[] = {"127.0.0.2", "localhost"};
	X509 *x = rf_ca_cert(f->ca, "tls");
	STACK_OF(OPENSSL_STRING) * ocsp;
	STACK_OF(DIST_POINT) * dp;
	struct rf_cert_rec cr;
	char serial[41], serial2[41];
	int made = -1;

	assert_non_null(x);
	assert_non_null(ocsp = X509_get1_ocsp(x));
	assert_int_equal(sk_OPENSSL_STRING_num(ocsp), 1);
	assert_non_null(strstr(sk_OPENSSL_STRING_value(ocsp, 0), "/ocsp"));
	X509_email_free(ocsp);
	assert_non_null(
	    dp = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL));
	assert_int_equal(sk_DIST_POINT_num(dp), 1);
	sk_DIST_POINT_pop_free(dp, DIST_POINT_free);
	assert_int_equal(
	    rf_ca_serial_str(X509_get0_serialNumber(x), serial), 0);
	assert_int_equal(rf_store_cert_get(f->st, serial, &cr), 0);
	assert_string_equal(cr.issuer, "issuing");
	assert_string_equal(cr.profile, "server");
	assert_string_equal(cr.tenant, "");
	assert_int_equal(cr.revoked, 0);
	rf_cert_rec_clear(&cr);
	assert_int_equal(
	    rf_store_cert_revoke(f->st, serial, rf_now(), 1, NULL), 0);
	assert_int_equal(rf_ca_tls_ensure(f->ca, names, 2, &f->who, &made), 0);
	assert_int_equal(made, 1);
	x = rf_ca_cert(f->ca, "tls");
	assert_int_equal(
	    rf_ca_serial_str(X509_get0_serialNumber(x), serial2), 0);
	assert_string_not_equal(serial, serial2);
	/* A revoked certificate's other names are not carried over. */
	assert_int_equal(tls_san_count(x), 2);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 0);
}

static void
test_tls_cert(void **state)
{
	const char *names[] = {"127.0.0.1", "localhost"};
	const char *moved[] = {"127.0.0.2", "localhost"};
	const char *more[] = {"files.example.net", "LOCALHOST"};
	const char *bad[] = {"not a name"};
	struct rf_ca *ca2 = NULL;
	struct rf_key_rec kr;
	char id1[65], id2[65];
	int made = -1;

	(void)state;
	assert_int_equal(rf_ca_tls_ensure(F.ca, names, 2, &F.who, &made), 0);
	assert_int_equal(made, 1);
	tls_check(F.ca, "issuing", "127.0.0.1", "localhost", id1);
	/* Kept while it serves, here and in a fresh open of the store. */
	assert_int_equal(rf_ca_tls_ensure(F.ca, names, 2, &F.who, &made), 0);
	assert_int_equal(made, 0);
	assert_int_equal(rf_ca_open(&F.cfg, F.st, F.keys, &ca2), 0);
	assert_int_equal(rf_ca_tls_ensure(ca2, names, 2, &F.who, &made), 0);
	assert_int_equal(made, 0);
	tls_check(ca2, "issuing", "127.0.0.1", "localhost", id2);
	assert_string_equal(id1, id2);
	rf_ca_free(ca2);
	/* Another address: a new key and certificate; the old key is off.
	 * The old address stays in it: another serve on this state folder
	 * may listen there, and takes the new certificate. */
	assert_int_equal(rf_ca_tls_ensure(F.ca, moved, 2, &F.who, &made), 0);
	assert_int_equal(made, 1);
	tls_check(F.ca, "issuing", "127.0.0.2", "localhost", id2);
	assert_string_not_equal(id1, id2);
	assert_int_equal(rf_store_key_get(F.st, id1, &kr), 0);
	assert_string_equal(kr.state, "disabled");
	assert_int_equal(
	    X509_check_ip_asc(rf_ca_cert(F.ca, "tls"), "127.0.0.1", 0), 1);
	/* Each serve's names in turn: kept, nothing new made. */
	assert_int_equal(rf_ca_tls_ensure(F.ca, names, 2, &F.who, &made), 0);
	assert_int_equal(made, 0);
	assert_int_equal(rf_ca_tls_ensure(F.ca, moved, 2, &F.who, &made), 0);
	assert_int_equal(made, 0);
	/* A third DNS name: all three kept, the case of one ignored. */
	assert_int_equal(rf_ca_tls_ensure(F.ca, more, 2, &F.who, &made), 0);
	assert_int_equal(made, 1);
	tls_check(F.ca, "issuing", "127.0.0.1", "files.example.net", id2);
	assert_int_equal(
	    X509_check_ip_asc(rf_ca_cert(F.ca, "tls"), "127.0.0.2", 0), 1);
	assert_int_equal(
	    X509_check_host(rf_ca_cert(F.ca, "tls"), "localhost", 0, 0, NULL),
	    1);
	assert_int_equal(tls_san_count(rf_ca_cert(F.ca, "tls")), 4);
	/* A name that is neither an address nor a DNS name. */
	assert_int_equal(
	    rf_ca_tls_ensure(F.ca, bad, 1, &F.who, &made), RF_ERR_ARG);
	assert_int_equal(made, 0);
	tls_revocable(&F);
}

/* After a rotation, the certificate is reissued by the new issuing CA. */
static void
test_tls_after_rotate(void **state)
{
	const char *names[] = {"127.0.0.2", "localhost"};
	char id[65];
	int made = -1;

	(void)state;
	assert_string_equal(rf_ca_issuer_name(F.ca), "issuing-2");
	assert_int_equal(rf_ca_tls_ensure(F.ca, names, 2, &F.who, &made), 0);
	assert_int_equal(made, 1);
	tls_check(F.ca, "issuing-2", "127.0.0.2", "localhost", id);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_tenants),
	    cmocka_unit_test(test_issue_connector),
	    cmocka_unit_test(test_issue_keygen),
	    cmocka_unit_test(test_issue_csr),
	    cmocka_unit_test(test_bad_csrs),
	    cmocka_unit_test(test_csr_kinds),
	    cmocka_unit_test(test_key_reused),
	    cmocka_unit_test(test_batch_csr_errors),
	    cmocka_unit_test(test_serials),
	    cmocka_unit_test(test_der_helpers),
	    cmocka_unit_test(test_issue_hook),
	    cmocka_unit_test(test_issue_pipelined),
	    cmocka_unit_test(test_issue_pipelined_taper),
	    cmocka_unit_test(test_issue_ocsp),
	    cmocka_unit_test(test_tls_cert),
	    cmocka_unit_test(test_rotate),
	    cmocka_unit_test(test_tls_after_rotate),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
