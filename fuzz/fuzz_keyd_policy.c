/*
 * fuzz_keyd_policy.c: keyd's policy for the server class (policy.c) on
 * arbitrary requests. A server's messages are untrusted: serve parses
 * bytes from anyone, and keyd must not sign for a serve taken over. The
 * first byte of an input picks what is asked (bits 0-2: ocsp, crl, sth,
 * tls, assertion, cert, an unknown kind, none), with which key (bits 3-5),
 * whether a tenant is named (bit 6) and whether it is a raw digest (bit
 * 7); the rest is the message (a ResponseData, TBSCertList, tree head,
 * digest or TBSCertificate). Connector renewals are decided by a stand-in
 * for cmd_keyd.c's check that the connector is active (it accepts), so
 * that the policy's own checks of the certificate are what is fuzzed.
 *
 * The store is made once, in a temporary folder: the issuing CA (the
 * certificate below, public only: no private key here), its key and an
 * OCSP, audit, TLS and connection key, a disabled OCSP key, certificate
 * 2A01 (good) and 2A02 (revoked, keyCompromise). Invariants, checked
 * apart from the policy's own code:
 *   - no assertion, unknown kind or raw digest other than a TLS digest
 *     with serve's TLS key is ever allowed (no assertion policy is set);
 *   - an allowed certificate is signed with the issuing key, for the
 *     tenant named;
 *   - an allowed OCSP request is signed with the OCSP key and says
 *     revoked for 2A02, and names no other serial than 2A01 and 2A02;
 *   - an allowed CRL is signed with the issuing key and lists 2A02;
 *   - none starts more than 5 minutes past keyd's clock (thisUpdate,
 *     notBefore), and none lasts more than 30 days, the largest validity
 *     setting;
 *   - an allowed tree head is signed with the audit key.
 * The corpus in fuzz/corpus/keyd_policy (made with openssl ca and
 * openssl ocsp against this CA, their TBS parts cut out) is replayed by
 * ctest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "common/config.h"
#include "keys/keyd.h"
#include "keys/policy.h"
#include "fuzz_fx.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* CN=issuing, O=ringfence (EC P-256): made with openssl req -x509. */
static const uint8_t ca_der[] = {0x30, 0x82, 0x01, 0x7f, 0x30, 0x82, 0x01, 0x24,
    0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x02, 0x10, 0x00, 0x30, 0x0a, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30, 0x26, 0x31,
    0x12, 0x30, 0x10, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x09, 0x72, 0x69,
    0x6e, 0x67, 0x66, 0x65, 0x6e, 0x63, 0x65, 0x31, 0x10, 0x30, 0x0e, 0x06,
    0x03, 0x55, 0x04, 0x03, 0x0c, 0x07, 0x69, 0x73, 0x73, 0x75, 0x69, 0x6e,
    0x67, 0x30, 0x1e, 0x17, 0x0d, 0x32, 0x36, 0x31, 0x32, 0x30, 0x36, 0x30,
    0x39, 0x35, 0x37, 0x31, 0x34, 0x5a, 0x17, 0x0d, 0x33, 0x36, 0x31, 0x32,
    0x30, 0x33, 0x30, 0x39, 0x35, 0x37, 0x31, 0x34, 0x5a, 0x30, 0x26, 0x31,
    0x12, 0x30, 0x10, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x09, 0x72, 0x69,
    0x6e, 0x67, 0x66, 0x65, 0x6e, 0x63, 0x65, 0x31, 0x10, 0x30, 0x0e, 0x06,
    0x03, 0x55, 0x04, 0x03, 0x0c, 0x07, 0x69, 0x73, 0x73, 0x75, 0x69, 0x6e,
    0x67, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    0x03, 0x42, 0x00, 0x04, 0xc4, 0x05, 0x85, 0x0a, 0x07, 0xb9, 0x7c, 0xba,
    0xbd, 0x73, 0x37, 0xfa, 0x83, 0x96, 0x9e, 0xca, 0xe7, 0x5d, 0xdb, 0x6b,
    0x35, 0x61, 0xdf, 0xe2, 0xc1, 0xc8, 0x94, 0xf6, 0x64, 0x54, 0x21, 0x6b,
    0x87, 0x9a, 0x40, 0x55, 0xe4, 0xb1, 0x30, 0xfa, 0xd5, 0xdf, 0xe3, 0x50,
    0xe1, 0xa8, 0xdf, 0xfd, 0x80, 0xab, 0x83, 0x69, 0x34, 0x02, 0x84, 0x97,
    0xe1, 0x75, 0x5e, 0x45, 0xc8, 0xac, 0xb1, 0x93, 0xa3, 0x42, 0x30, 0x40,
    0x30, 0x0f, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x05,
    0x30, 0x03, 0x01, 0x01, 0xff, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f,
    0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x01, 0x06, 0x30, 0x1d, 0x06,
    0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14, 0xbd, 0x2e, 0x42, 0x74,
    0x8f, 0x03, 0x40, 0x3b, 0x75, 0xa3, 0xa7, 0x33, 0xa9, 0x83, 0xc6, 0x41,
    0xb0, 0x7b, 0x40, 0xdf, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x04, 0x03, 0x02, 0x03, 0x49, 0x00, 0x30, 0x46, 0x02, 0x21, 0x00,
    0xdb, 0xee, 0x2a, 0xf5, 0x23, 0x5c, 0xab, 0x27, 0x06, 0x3d, 0x4e, 0xd4,
    0x60, 0x87, 0xb1, 0x69, 0xbf, 0x1a, 0x24, 0x35, 0x1a, 0x28, 0xe4, 0xb0,
    0xa6, 0x76, 0xcf, 0x8e, 0xb6, 0x6b, 0x02, 0x2a, 0x02, 0x21, 0x00, 0x80,
    0x2e, 0x85, 0x79, 0x55, 0xa7, 0xf1, 0x95, 0x90, 0x4b, 0xbd, 0x82, 0xb4,
    0xa1, 0xdc, 0x46, 0x92, 0x6c, 0x46, 0xb1, 0x4c, 0xee, 0xc0, 0x0b, 0x98,
    0xb2, 0xfc, 0x68, 0x76, 0xe8, 0xa0, 0x9f};

/* 2A02's revocation: 2026-12-06 09:57:14 UTC, keyCompromise. The
 * corpus was signed at 09:57:23 with 7 days to nextUpdate; keyd's clock
 * is held a minute later, so that its answers stay what they were. */
#define REVOKED_AT 1796551034
#define NOW 1796551100
#define NKEYS 8
enum { K_OCSP, K_ISSUING, K_AUDIT, K_TLS, K_CONN, K_OFF, K_NONE, K_OCSP2 };

static struct {
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_kpolicy *policy;
	char keys[NKEYS][65];
} fx;

/* At exit, before the store closes (fuzz_fx.h). */
static void
fx_done(void)
{
	rf_kpolicy_free(fx.policy);
	rf_audit_free(fx.audit);
}

static void
key(int k, const char *purpose, const char *state)
{
	struct rf_key_rec kr;

	memset(&kr, 0, sizeof(kr));
	snprintf(kr.id, sizeof(kr.id), "%s", fx.keys[k]);
	snprintf(kr.alg, sizeof(kr.alg), "ec-p256");
	snprintf(kr.purpose, sizeof(kr.purpose), "%s", purpose);
	snprintf(kr.state, sizeof(kr.state), "%s", state);
	if (k == K_CONN)
		snprintf(kr.tenant, sizeof(kr.tenant), "t1");
	kr.created = 1;
	if (rf_store_key_add(fx.st, &kr) != 0)
		abort();
}

static void
cert(const char *serial, const char *tenant, int revoked)
{
	struct rf_cert_rec c;
	int ch = 0;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "issuing");
	snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
	snprintf(c.profile, sizeof(c.profile), "client");
	snprintf(c.key_id, sizeof(c.key_id), "%064d", revoked + 1);
	c.not_before = 1;
	c.not_after = 2112000000; /* 2036 */
	c.issued = 1;
	c.reason = -1;
	if (rf_store_cert_add(fx.st, &c) != 0 ||
	    (revoked &&
		rf_store_cert_revoke(fx.st, serial, REVOKED_AT, 1, &ch) != 0))
		abort();
}

/* cmd_keyd.c's part of a renewal's decision: the connector is active. */
static int
renewal_ok(void *arg, struct rf_store *st, struct rf_ledger *ledger,
    int64_t gen, const char *key_id, const struct rf_sign_req *req)
{
	(void)arg;
	(void)st;
	(void)ledger;
	(void)gen;
	(void)key_id;
	(void)req;
	return 0;
}

static void
fx_init(void)
{
	struct rf_config cfg;
	struct rf_ca_rec ca;
	const uint8_t *p = ca_der;
	uint8_t h[32];
	unsigned hl = 0, i;
	X509 *x;
	int k;

	rf_clock_set(NOW);
	fx.st = fuzz_fx_store("policy", fx_done);
	if (rf_audit_open(fx.st, &fx.audit) != 0 ||
	    (x = d2i_X509(NULL, &p, (long)sizeof(ca_der))) == NULL ||
	    X509_pubkey_digest(x, EVP_sha256(), h, &hl) != 1 || hl != 32)
		abort();
	X509_free(x);
	for (k = 0; k < NKEYS; k++)
		snprintf(fx.keys[k], sizeof(fx.keys[k]), "%064x", k + 10);
	for (i = 0; i < 32; i++)
		snprintf(fx.keys[K_ISSUING] + 2 * i, 3, "%02x", h[i]);
	snprintf(
	    fx.keys[K_OCSP2], sizeof(fx.keys[K_OCSP2]), "%s", fx.keys[K_OCSP]);
	memset(&ca, 0, sizeof(ca));
	snprintf(ca.name, sizeof(ca.name), "issuing");
	snprintf(ca.key_id, sizeof(ca.key_id), "%s", fx.keys[K_ISSUING]);
	snprintf(ca.serial, sizeof(ca.serial), "1000");
	ca.not_before = 1;
	ca.not_after = 2112000000;
	ca.active = 1;
	ca.der = (uint8_t *)ca_der;
	ca.derlen = sizeof(ca_der);
	if (rf_store_ca_add(fx.st, &ca) != 0)
		abort();
	key(K_OCSP, "ocsp", "active");
	key(K_ISSUING, "issuing", "active");
	key(K_AUDIT, "audit", "active");
	key(K_TLS, "tls", "active");
	key(K_CONN, "connection", "active");
	key(K_OFF, "ocsp", "disabled");
	cert("2a01", "t1", 0);
	cert("2a02", "t2", 1);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.custody_dir, sizeof(cfg.custody_dir), "%s/custody",
	    fuzz_fx_dir);
	cfg.connector_days = 7;
	cfg.keyd_tls_rate = 1000000000; /* the clock stands still */
	if (rf_kpolicy_new(&cfg, fx.st, fx.audit, &fx.policy) != 0)
		abort();
	rf_kpolicy_set_cert(fx.policy, renewal_ok, NULL);
}

/* The message as the signed structure around it, as a relying party
 * would read it (an empty signature: only the TBS part matters here). */
static uint8_t *
wrapped(const uint8_t *m, size_t len, size_t *outlen)
{
	static const uint8_t tail[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
	    0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x01, 0x00};
	size_t n = len + sizeof(tail), hl = 2, i;
	uint8_t *o;

	for (i = n; n >= 128 && i > 0; i >>= 8)
		hl++;
	if ((o = malloc(hl + n)) == NULL)
		abort();
	o[0] = 0x30;
	o[1] = hl == 2 ? (uint8_t)n : (uint8_t)(0x80 | (hl - 2));
	for (i = 2; i < hl; i++)
		o[i] = (uint8_t)(n >> (8 * (hl - 1 - i)));
	memcpy(o + hl, m, len);
	memcpy(o + hl + len, tail, sizeof(tail));
	*outlen = hl + n;
	return o;
}

/* thisUpdate at most 5 minutes past keyd's clock, nextUpdate at most the
 * largest validity setting (and a minute) after it. */
static void
dates_ok(const ASN1_TIME *tu, const ASN1_TIME *nu)
{
	ASN1_TIME *hi = ASN1_TIME_set(NULL, NOW + 300);
	int d = 0, s = 0;

	if (hi == NULL || tu == NULL || nu == NULL ||
	    ASN1_TIME_compare(tu, hi) > 0 ||
	    ASN1_TIME_diff(&d, &s, tu, nu) != 1 ||
	    (int64_t)d * 86400 + s > RF_VALIDITY_MAX + 60 ||
	    (d == 0 && s <= 0) || d < 0 || s < 0)
		abort();
	ASN1_TIME_free(hi);
}

/* An allowed ResponseData: 2A02 revoked, no serial but ours, fresh. */
static void
ocsp_allowed(const uint8_t *m, size_t len)
{
	const uint8_t *p;
	uint8_t *w;
	size_t wl;
	OCSP_BASICRESP *br;
	ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL;
	ASN1_INTEGER *ser = NULL;
	long v;
	int i, st;

	w = wrapped(m, len, &wl);
	p = w;
	if ((br = d2i_OCSP_BASICRESP(NULL, &p, (long)wl)) == NULL)
		abort();
	for (i = 0; i < OCSP_resp_count(br); i++) {
		OCSP_SINGLERESP *one = OCSP_resp_get0(br, i);

		if (OCSP_id_get0_info(NULL, NULL, NULL, &ser,
			(OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one)) != 1)
			abort();
		v = ASN1_INTEGER_get(ser);
		st = OCSP_single_get0_status(one, NULL, NULL, &tu, &nu);
		dates_ok(tu, nu);
		if ((v != 0x2A01 && v != 0x2A02) ||
		    (v == 0x2A02 && st != V_OCSP_CERTSTATUS_REVOKED))
			abort();
	}
	OCSP_BASICRESP_free(br);
	free(w);
}

/* An allowed TBSCertList is fresh and lists 2A02 (unexpired). */
static void
crl_allowed(const uint8_t *m, size_t len)
{
	const uint8_t *p;
	uint8_t *w;
	size_t wl;
	X509_CRL *crl;
	X509_REVOKED *rv = NULL;
	ASN1_INTEGER *ser;

	w = wrapped(m, len, &wl);
	p = w;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)wl)) == NULL ||
	    (ser = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set(ser, 0x2A02) != 1)
		abort();
	dates_ok(X509_CRL_get0_lastUpdate(crl), X509_CRL_get0_nextUpdate(crl));
	if (X509_CRL_get0_by_serial(crl, &rv, ser) != 1)
		abort();
	ASN1_INTEGER_free(ser);
	X509_CRL_free(crl);
	free(w);
}

/* An allowed TBSCertificate starts at most 5 minutes past keyd's clock. */
static void
cert_allowed(const uint8_t *m, size_t len)
{
	const uint8_t *p;
	uint8_t *w;
	size_t wl;
	X509 *x;
	ASN1_TIME *hi = ASN1_TIME_set(NULL, NOW + 300);

	w = wrapped(m, len, &wl);
	p = w;
	if ((x = d2i_X509(NULL, &p, (long)wl)) == NULL || hi == NULL ||
	    ASN1_TIME_compare(X509_get0_notBefore(x), hi) > 0)
		abort();
	ASN1_TIME_free(hi);
	X509_free(x);
	free(w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const whats[8] = {
	    "ocsp", "crl", "sth", "tls", "assertion", "cert", "bytes", NULL};
	struct rf_sign_req req;
	int w, k, digest;

	if (fx.st == NULL)
		fx_init();
	if (size < 1)
		return 0;
	w = data[0] & 7;
	k = (data[0] >> 3) & 7;
	digest = (data[0] & 0x80) != 0;
	memset(&req, 0, sizeof(req));
	req.what = whats[w];
	req.msg = data + 1;
	req.msglen = size - 1;
	req.tenant = data[0] & 0x40 ? "t1" : NULL;
	req.ref = "fuzz";
	if (rf_kpolicy_sign(fx.policy, RF_KCLASS_SERVER, fx.keys[k], digest,
		&req, 1) != 0) {
		rf_err_clear();
		return 0;
	}
	/* Allowed: only what the server class may have, with its key. */
	if (digest != (w == 3))
		abort();
	switch (w) {
	case 0:
		if (k != K_OCSP && k != K_OCSP2)
			abort();
		ocsp_allowed(req.msg, req.msglen);
		break;
	case 1:
		if (k != K_ISSUING)
			abort();
		crl_allowed(req.msg, req.msglen);
		break;
	case 2:
		if (k != K_AUDIT)
			abort();
		break;
	case 3:
		if (k != K_TLS)
			abort();
		break;
	case 5:
		if (k != K_ISSUING || req.tenant == NULL)
			abort();
		cert_allowed(req.msg, req.msglen);
		break;
	default:
		abort();
	}
	return 0;
}
