/*
 * Unit tests for the connector module: GUIDs, the JWT signing input and
 * its check (every byte flipped is refused), the API request parser
 * (data-driven cases), token buckets, the decision over a real store, and
 * each anomaly detector.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "connector/connector.h"
#include "keys/ledger.h"
#include "store/store.h"
#include "store/store_incident.h"
#include "store_fx.h"

#define TID "72F988BF-86f1-41af-91ab-2d7cd011db47"
#define CID "00000003-0000-4000-8000-0000000000aa"
#define NOW 1796368000

static void
reg_fill(struct rf_entra_rec *reg, const char *alg)
{
	memset(reg, 0, sizeof(*reg));
	snprintf(reg->tenant, sizeof(reg->tenant), "acme");
	snprintf(reg->conn, sizeof(reg->conn), "m365");
	assert_int_equal(
	    rf_connector_guid(TID, "tenant id", reg->tenant_id), 0);
	assert_int_equal(
	    rf_connector_guid(CID, "client id", reg->client_id), 0);
	snprintf(reg->key_alg, sizeof(reg->key_alg), "rsa-2048");
	snprintf(reg->jwt_alg, sizeof(reg->jwt_alg), "%s", alg);
}

static void
test_guid(void **state)
{
	static const char *bad[] = {"", "72f988bf86f141af91ab2d7cd011db47",
	    "72f988bf-86f1-41af-91ab-2d7cd011db4",
	    "72f988bf-86f1-41af-91ab_"
	    "2d7cd011db47",
	    "g2f988bf-86f1-41af-91ab-2d7cd011db47",
	    "72f988bf-86f1-41af-91ab-2d7cd011db47 ", NULL};
	char out[37];
	size_t i;

	(void)state;
	assert_int_equal(rf_connector_guid(TID, "tenant id", out), 0);
	assert_string_equal(out, "72f988bf-86f1-41af-91ab-2d7cd011db47");
	for (i = 0; bad[i] != NULL; i++) {
		assert_int_equal(
		    rf_connector_guid(bad[i], "tenant id", out), RF_ERR_ARG);
		assert_non_null(strstr(rf_err_msg(RF_ERR_ARG), "not a GUID"));
	}
	assert_int_equal(rf_jwt_guid(out), 0);
	assert_int_equal(out[14], '4');
	assert_non_null(strchr("89ab", out[19]));
	/* Of given bytes: version and variant set, the rest as given
	 * (python3 -c 'import uuid; print(uuid.UUID(bytes=bytes(range(240,
	 * 256)), version=4))'). */
	{
		uint8_t b[16];
		char g[37];

		for (i = 0; i < 16; i++)
			b[i] = (uint8_t)(240 + i);
		rf_jwt_guid_of(b, out);
		assert_string_equal(
		    out, "f0f1f2f3-f4f5-46f7-b8f9-fafbfcfdfeff");
		assert_int_equal(rf_connector_guid(out, "jti", g), 0);
	}
}

static void
test_jwt(void **state)
{
	struct rf_entra_rec reg;
	enum rf_sig_scheme sch;
	char jti[37], got[40], *msg = NULL, *m2;
	size_t i, len;
	int bit;

	(void)state;
	reg_fill(&reg, "PS256");
	assert_int_equal(rf_jwt_guid(jti), 0);
	assert_int_equal(rf_jwt_build(&reg, "X5T", jti, NOW, 600, &msg), 0);
	len = strlen(msg);
	assert_int_equal(
	    rf_jwt_check(&reg, "X5T", (uint8_t *)msg, len, NOW, 600, got), 0);
	assert_string_equal(got, jti);
	/* Another credential, registration or time: refused. */
	assert_int_not_equal(
	    rf_jwt_check(&reg, "OTHER", (uint8_t *)msg, len, NOW, 600, got), 0);
	assert_int_not_equal(rf_jwt_check(&reg, "X5T", (uint8_t *)msg, len,
				 NOW + 3600, 600, got),
	    0);
	reg.client_id[0] = '1';
	assert_int_not_equal(
	    rf_jwt_check(&reg, "X5T", (uint8_t *)msg, len, NOW, 600, got), 0);
	reg_fill(&reg, "RS256");
	assert_int_not_equal(
	    rf_jwt_check(&reg, "X5T", (uint8_t *)msg, len, NOW, 600, got), 0);
	reg_fill(&reg, "PS256");
	/* Every single-bit change of the message is refused. */
	m2 = strdup(msg);
	assert_non_null(m2);
	for (i = 0; i < len; i++)
		for (bit = 0; bit < 8; bit++) {
			m2[i] = (char)(msg[i] ^ (1 << bit));
			if (rf_jwt_check(&reg, "X5T", (uint8_t *)m2, len, NOW,
				600, got) == 0)
				/* Only another random jti may pass. */
				if (strcmp(got, jti) == 0)
					fail_msg("flip of bit %d at %zu "
						 "accepted: %s",
					    bit, i, m2);
			m2[i] = msg[i];
		}
	/* Truncated or extended: refused. */
	for (i = 0; i < len; i++)
		assert_int_not_equal(
		    rf_jwt_check(&reg, "X5T", (uint8_t *)msg, i, NOW, 600, got),
		    0);
	free(m2);
	free(msg);
	assert_int_equal(
	    rf_jwt_build(&reg, "X5T", jti, NOW, 601, &msg), RF_ERR_ARG);
	assert_int_equal(rf_jwt_scheme("PS256", &sch), 0);
	assert_int_equal(sch, RF_SIG_RSA_PSS);
	assert_int_equal(rf_jwt_scheme("RS256", &sch), 0);
	assert_int_equal(sch, RF_SIG_DEFAULT);
	assert_int_equal(rf_jwt_scheme("ES256", &sch), RF_ERR_ARG);
	assert_int_equal(rf_jwt_scheme("none", &sch), RF_ERR_ARG);
}

static void
test_parse(void **state)
{
	static const struct {
		const char *body;
		int r;
		const char *tenant, *conn;
	} cases[] = {
	    {"{\"connection\":\"acme/m365\"}", 0, "acme", "m365"},
	    {"{\"connection\":\"a.b/c_d-1\",\"x5t#S256\":\"ab-_\"}", 0, "a.b",
		"c_d-1"},
	    {"{\"connection\":\"../m365\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/..\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/m365/x\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"/m365\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/m 365\"}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/m365\\u0000\"}", RF_ERR_MALFORMED, NULL,
		NULL},
	    {"{\"connection\":\"acme/m365\",\"aud\":\"x\"}", RF_ERR_MALFORMED,
		NULL, NULL},
	    {"{\"connection\":\"a/b\",\"connection\":\"a/c\"}",
		RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/m365\",\"x5t#S256\":\"a/b\"}",
		RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":7}", RF_ERR_MALFORMED, NULL, NULL},
	    {"[]", RF_ERR_MALFORMED, NULL, NULL},
	    {"{}", RF_ERR_MALFORMED, NULL, NULL},
	    {"{\"connection\":\"acme/m365\"} x", RF_ERR_MALFORMED, NULL, NULL},
	    {"", RF_ERR_MALFORMED, NULL, NULL},
	};
	static const struct {
		const char *proof;
		int r;
	} proofs[] = {
	    {"\"1700000000.0123456789abcdef.AAAA\"", 0},
	    {"\"1700000000.0123456789abcdef0123456789abcdef.a-_Z\"", 0},
	    {"\"abc\"", RF_ERR_MALFORMED},
	    {"7", RF_ERR_MALFORMED},
	    {"\"1700000000.short.AAAA\"", RF_ERR_MALFORMED},
	    {"\"-1.0123456789abcdef.AAAA\"", RF_ERR_MALFORMED},
	    {"\"1700000000.0123456789abcdef.AA=A\"", RF_ERR_MALFORMED},
	    {"\"1700000000.0123456789abcdef.\"", RF_ERR_MALFORMED},
	    {"\"1700000000.0123456789abcde!.AAAA\"", RF_ERR_MALFORMED},
	    {"\".0123456789abcdef.AAAA\"", RF_ERR_MALFORMED},
	    {"\"1700000000.0123456789abcdef.A\"", RF_ERR_MALFORMED},
	};
	struct rf_assert_ask ask;
	char *big, *csr, proof[RF_PROOF_MAX + 1];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r =
		    rf_connector_parse_assert((const uint8_t *)cases[i].body,
			strlen(cases[i].body), &ask);

		if (r != cases[i].r)
			fail_msg("case %zu (%s): %d", i, cases[i].body, r);
		if (r == 0) {
			assert_string_equal(ask.tenant, cases[i].tenant);
			assert_string_equal(ask.conn, cases[i].conn);
		}
	}
	/* The body is JSON: the message names the member given twice. */
	assert_int_equal(rf_connector_parse_assert(
			     (const uint8_t *)"{\"connection\":\"a/b\","
					      "\"connection\":\"a/c\"}",
			     39, &ask),
	    RF_ERR_MALFORMED);
	assert_string_equal(rf_err_msg(RF_ERR_MALFORMED),
	    "duplicate member \"connection\" in the request body: give each "
	    "member once");
	big = calloc(1, RF_CONNECTOR_BODY_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', RF_CONNECTOR_BODY_MAX + 1);
	assert_int_equal(rf_connector_parse_assert(
			     (uint8_t *)big, RF_CONNECTOR_BODY_MAX + 1, &ask),
	    RF_ERR_TOO_LARGE);
	assert_string_equal(rf_err_msg(RF_ERR_TOO_LARGE),
	    "request body of 8193 bytes: at most 8192 bytes");
	free(big);
	assert_int_equal(
	    rf_connector_parse_renew(
		(const uint8_t *)"{\"csr\":\"PEM\"}", 13, &csr, &n, proof),
	    0);
	assert_string_equal(csr, "PEM");
	assert_string_equal(proof, "");
	free(csr);
	assert_int_equal(
	    rf_connector_parse_renew((const uint8_t *)"{\"csr\":\"x\","
						      "\"days\":90}",
		22, &csr, &n, proof),
	    RF_ERR_MALFORMED);
	/* The proof's syntax is checked here, its signature by keyd. */
	for (i = 0; i < sizeof(proofs) / sizeof(proofs[0]); i++) {
		char body[256];
		int r;

		snprintf(body, sizeof(body),
		    "{\"connection\":\"acme/m365\",\"proof\":%s}",
		    proofs[i].proof);
		r = rf_connector_parse_assert(
		    (const uint8_t *)body, strlen(body), &ask);
		if (r != proofs[i].r)
			fail_msg("proof %zu (%s): %d", i, proofs[i].proof, r);
		snprintf(body, sizeof(body), "{\"csr\":\"x\",\"proof\":%s}",
		    proofs[i].proof);
		csr = NULL;
		if (rf_connector_parse_renew((const uint8_t *)body,
			strlen(body), &csr, &n, proof) != proofs[i].r)
			fail_msg("renew proof %zu (%s)", i, proofs[i].proof);
		free(csr);
	}
}

/* A proof made by rf_proof_make parses, and verifies over the documented
 * bytes with the key's public half (what keyd checks, and what `openssl
 * dgst -sha256 -sign` makes). */
static void
test_proof_make(void **state)
{
	static const char *const algs[] = {"EC", "RSA", "ED25519"};
	struct rf_proof pf;
	char out[RF_PROOF_MAX + 1], msg[512], want[600];
	EVP_MD_CTX *ctx;
	EVP_PKEY *k;
	size_t i;
	int ml;

	(void)state;
	for (i = 0; i < 3; i++) {
		k = i == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
		    : i == 1
		    ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
		    : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		assert_non_null(k);
		assert_int_equal(rf_proof_make(k, "assert", "acme/m365",
				     1700000000, out, sizeof(out)),
		    0);
		assert_int_equal(rf_proof_parse(out, strlen(out), &pf), 0);
		assert_true(pf.time == 1700000000);
		assert_int_equal(strlen(pf.nonce), 32);
		ml = rf_proof_message(
		    "assert", "acme/m365", pf.time, pf.nonce, msg, sizeof(msg));
		snprintf(want, sizeof(want),
		    "ringfence-proof-v1\nassert\nacme/m365\n1700000000\n%s\n",
		    pf.nonce);
		assert_int_equal(ml, (int)strlen(want));
		assert_string_equal(msg, want);
		ctx = EVP_MD_CTX_new();
		if (EVP_DigestVerifyInit(ctx, NULL,
			i == 2 ? NULL : EVP_sha256(), NULL, k) != 1 ||
		    EVP_DigestVerify(ctx, pf.sig, pf.siglen,
			(const uint8_t *)msg, (size_t)ml) != 1)
			fail_msg("%s proof does not verify", algs[i]);
		/* Another subject: not the bytes signed. */
		ml = rf_proof_message("assert", "acme/other", pf.time, pf.nonce,
		    msg, sizeof(msg));
		assert_int_equal(EVP_DigestVerifyInit(ctx, NULL,
				     i == 2 ? NULL : EVP_sha256(), NULL, k),
		    1);
		assert_int_not_equal(EVP_DigestVerify(ctx, pf.sig, pf.siglen,
					 (const uint8_t *)msg, (size_t)ml),
		    1);
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(k);
	}
}

static void
test_limits(void **state)
{
	struct rf_limits *l;
	struct rf_config cfg;
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	int i, ra;

	(void)state;
	assert_int_equal(rf_limits_new(&l), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(rf_limits_take(l, "c:a", 4, 3, 1000, &ra), 0);
	assert_int_equal(
	    rf_limits_take(l, "c:a", 4, 3, 1000, &ra), RF_ERR_STATE);
	/* 4 an hour: one token every 900 s. */
	assert_int_equal(ra, 900);
	assert_int_equal(rf_limits_take(l, "c:b", 4, 3, 1000, &ra), 0);
	assert_int_equal(
	    rf_limits_take(l, "c:a", 4, 3, 1000 + 899000, &ra), RF_ERR_STATE);
	assert_int_equal(ra, 1);
	assert_int_equal(rf_limits_take(l, "c:a", 4, 3, 1000 + 901000, &ra), 0);
	/* Rate 0: no limit. */
	for (i = 0; i < 100; i++)
		assert_int_equal(rf_limits_take(l, "c:z", 0, 1, 0, &ra), 0);
	rf_limits_free(l);
	rf_limits_free(NULL);

	/* Both buckets or neither: a request the connector's bucket refuses
	 * spends none of the connection's. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.conn_rate = 4;
	cfg.conn_burst = 3;
	cfg.connector_rate = 1;
	cfg.connector_burst = 1;
	memset(&q, 0, sizeof(q));
	q.tenant = "acme";
	q.conn = "m365";
	q.now = 1000;
	memset(&v, 0, sizeof(v));
	snprintf(v.connector, sizeof(v.connector), "sync");
	assert_int_equal(rf_limits_new(&l), 0);
	assert_int_equal(rf_connector_limits_take(&cfg, l, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NONE);
	for (i = 0; i < 3; i++) {
		assert_int_equal(rf_connector_limits_take(&cfg, l, &q, &v), 0);
		assert_int_equal(v.why, RF_REFUSE_RATE);
		assert_non_null(strstr(v.detail, "connector's"));
		v.why = RF_REFUSE_NONE;
	}
	assert_int_equal(
	    rf_limits_take(l, "c:acme/m365", 4, 3, 1000000, &ra), 0);
	assert_int_equal(
	    rf_limits_take(l, "c:acme/m365", 4, 3, 1000000, &ra), 0);
	assert_int_equal(
	    rf_limits_take(l, "c:acme/m365", 4, 3, 1000000, &ra), RF_ERR_STATE);
	rf_limits_free(l);
}

/* A connection acme/m365 with credential "c1" (key k1), connector sync
 * with certificate "s1", bound. */
static void
world(struct fx *f)
{
	struct rf_cert_rec c;
	struct rf_entra_rec reg;
	static const char *const certs[][4] = {
	    {"c1", "acme", "k1", "assertion"},
	    {"s1", "connector.sync", "ks", "connector"},
	    {"s2", "connector.sync", "ks2", "client"}};
	size_t i;

	for (i = 0; i < 3; i++) {
		memset(&c, 0, sizeof(c));
		snprintf(c.serial, sizeof(c.serial), "%s", certs[i][0]);
		snprintf(c.issuer, sizeof(c.issuer), "issuing");
		snprintf(c.tenant, sizeof(c.tenant), "%s", certs[i][1]);
		snprintf(c.key_id, sizeof(c.key_id), "%s", certs[i][2]);
		snprintf(c.profile, sizeof(c.profile), "%s", certs[i][3]);
		snprintf(c.x5t256, sizeof(c.x5t256), "X-%s", certs[i][0]);
		c.not_before = NOW - 60;
		c.not_after = NOW + 86400;
		c.reason = -1;
		assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	}
	assert_int_equal(rf_store_tenant_add(f->st, "acme", NOW), 0);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "m365", "pinned", "c1", NOW, NULL),
	    0);
	reg_fill(&reg, "PS256");
	assert_int_equal(rf_store_entra_put(f->st, &reg), 0);
	assert_int_equal(rf_store_connector_add(f->st, "sync", NOW), 0);
	assert_int_equal(
	    rf_store_connector_cert_add(f->st, "s1", "sync", NOW), 0);
	/* A client-profile certificate recorded as the connector's. */
	assert_int_equal(
	    rf_store_connector_cert_add(f->st, "s2", "sync", NOW), 0);
	assert_int_equal(
	    rf_store_binding_add(f->st, "sync", "acme", "m365", NOW), 0);
}

static void
test_decide(void **state)
{
	struct fx *f = *state;
	struct rf_config cfg;
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	struct rf_entra_rec reg;
	struct rf_limits *l;
	char *msg = NULL;
	int changed;

	world(f);
	memset(&cfg, 0, sizeof(cfg));
	cfg.conn_rate = 4;
	cfg.conn_burst = 1;
	cfg.assertion_lifetime = 600;
	memset(&q, 0, sizeof(q));
	q.cert_serial = "s1";
	q.tenant = "acme";
	q.conn = "m365";
	q.now = NOW;
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NONE);
	assert_string_equal(v.connector, "sync");
	assert_string_equal(v.cred_serial, "c1");
	assert_string_equal(v.key_id, "k1");
	assert_int_equal(v.scheme, RF_SIG_RSA_PSS);
	/* The exact message, the right key: sign; then the bucket is empty. */
	reg_fill(&reg, "PS256");
	assert_int_equal(
	    rf_jwt_build(&reg, "X-c1", "0f8fad5b-d9cb-469f-a165-70867728950e",
		NOW, 600, &msg),
	    0);
	q.msg = (const uint8_t *)msg;
	q.msglen = strlen(msg);
	q.key_id = "k1";
	assert_int_equal(rf_limits_new(&l), 0);
	assert_int_equal(rf_connector_decide(&cfg, f->st, l, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NONE);
	assert_string_equal(v.jti, "0f8fad5b-d9cb-469f-a165-70867728950e");
	assert_int_equal(rf_connector_decide(&cfg, f->st, l, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_RATE);
	assert_int_equal(rf_refusal_status(v.why), 429);
	assert_true(v.retry_after > 0);
	rf_limits_free(l);
	/* Another key, another message: refused. */
	q.key_id = "k2";
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_KEY);
	q.key_id = "k1";
	q.msglen--;
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_BAD_MESSAGE);
	q.msglen++;
	/* Not bound, unknown certificate, expired. */
	q.conn = "other";
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NOT_BOUND);
	assert_string_equal(rf_refusal_code(v.why), "not_bound");
	q.conn = "m365";
	q.cert_serial = "c1";
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_UNKNOWN);
	/* Only the connector profile authenticates a connector. */
	q.cert_serial = "s2";
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_UNKNOWN);
	assert_non_null(strstr(v.detail, "connector profile"));
	q.cert_serial = "s1";
	q.now = NOW + 2 * 86400;
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_REVOKED);
	q.now = NOW;
	/* The connection's credential revoked: no credential. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "c1", NOW, 1, &changed), 0);
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NO_CRED);
	/* The connector's certificate revoked. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "s1", NOW, 1, &changed), 0);
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_REVOKED);
	assert_int_equal(rf_refusal_status(v.why), 401);
	free(msg);
}

/* acme/m365 (credential c1, key k1) affected by incident id. */
static void
affect(struct rf_store *st, int64_t id)
{
	struct rf_item_rec it;
	struct rf_conn_rec cn;

	assert_int_equal(rf_store_conn_get(st, "acme", "m365", &cn), 0);
	memset(&it, 0, sizeof(it));
	it.incident = id;
	it.conn = cn.id;
	snprintf(it.tenant, sizeof(it.tenant), "acme");
	snprintf(it.name, sizeof(it.name), "m365");
	snprintf(it.rp, sizeof(it.rp), "pinned");
	snprintf(it.old_serial, sizeof(it.old_serial), "c1");
	snprintf(it.old_key, sizeof(it.old_key), "k1");
	snprintf(it.state, sizeof(it.state), "affected");
	assert_int_equal(rf_store_item_add(st, &it), 0);
}

static void
test_incident(void **state)
{
	struct fx *f = *state;
	struct rf_config cfg;
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	struct rf_incident_rec inc;

	world(f);
	memset(&cfg, 0, sizeof(cfg));
	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "connection:acme/m365");
	snprintf(inc.state, sizeof(inc.state), "open");
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	affect(f->st, inc.id);
	memset(&q, 0, sizeof(q));
	q.cert_serial = "s1";
	q.tenant = "acme";
	q.conn = "m365";
	q.now = NOW;
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_INCIDENT);
	assert_int_equal(rf_refusal_status(v.why), 423);
	assert_string_equal(rf_refusal_code(v.why), "under_incident");
	/* Contained: assertions again (with the new credential). */
	snprintf(inc.state, sizeof(inc.state), "contained");
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	assert_int_equal(rf_connector_decide(&cfg, f->st, NULL, &q, &v), 0);
	assert_int_equal(v.why, RF_REFUSE_NONE);
}

/*
 * Decisions on kept facts are the store's: each change another connection
 * commits to what they rest on (revocation, binding, incident, a new
 * credential, the connector's state) is seen by the next request, while
 * what the API writes per assertion (its row, the baselines) keeps them.
 */
static void
test_decide_cached(void **state)
{
	struct fx *f = *state;
	struct rf_config cfg;
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	struct rf_connector_cache *c;
	struct rf_entra_rec reg;
	struct rf_assertion_rec ar;
	struct rf_incident_rec inc;
	struct rf_cert_rec cr;
	struct rf_store *other;
	int64_t g0, g1;
	int changed;

	world(f);
	assert_int_equal(rf_store_open(f->path, 0, &other), 0);
	memset(&cfg, 0, sizeof(cfg));
	memset(&q, 0, sizeof(q));
	q.cert_serial = "s1";
	q.tenant = "acme";
	q.conn = "m365";
	q.now = NOW;
	assert_int_equal(rf_connector_cache_new(&c), 0);
#define DECIDE(want)                                                           \
	do {                                                                   \
		assert_int_equal(rf_connector_decide_cached(                   \
				     c, -1, &cfg, f->st, NULL, &q, &v, &reg),  \
		    0);                                                        \
		assert_int_equal(v.why, want);                                 \
	} while (0)
	DECIDE(RF_REFUSE_NONE);
	assert_string_equal(reg.jwt_alg, "PS256");
	assert_string_equal(v.key_id, "k1");
	/* What the API writes per assertion does not move the generation. */
	assert_int_equal(rf_store_connector_gen(f->st, &g0), 0);
	memset(&ar, 0, sizeof(ar));
	snprintf(
	    ar.jti, sizeof(ar.jti), "0f8fad5b-d9cb-469f-a165-70867728950e");
	snprintf(ar.tenant, sizeof(ar.tenant), "acme");
	snprintf(ar.conn, sizeof(ar.conn), "m365");
	ar.time = NOW;
	assert_int_equal(rf_store_assertion_add(other, &ar), 0);
	assert_int_equal(
	    rf_store_seen_bump(other, "net", "acme/m365|10.0.0", 1, NOW, NULL),
	    0);
	assert_int_equal(rf_store_connector_gen(f->st, &g1), 0);
	assert_true(g1 == g0);
	/* Kept facts still go through the time-bound checks. */
	q.now = NOW + 2 * 86400;
	DECIDE(RF_REFUSE_REVOKED);
	q.now = NOW;
	DECIDE(RF_REFUSE_NONE);
	q.key_id = "k2";
	DECIDE(RF_REFUSE_KEY);
	q.key_id = NULL;
	/* Unbound by another process (no command unbinds yet), bound again. */
	raw_sql(f->path, "DELETE FROM connector_bindings");
	DECIDE(RF_REFUSE_NOT_BOUND);
	assert_int_equal(
	    rf_store_binding_add(other, "sync", "acme", "m365", NOW), 0);
	DECIDE(RF_REFUSE_NONE);
	/* The connector revoked, then active again. */
	assert_int_equal(
	    rf_store_connector_set_state(other, "sync", "revoked"), 0);
	DECIDE(RF_REFUSE_REVOKED);
	assert_int_equal(
	    rf_store_connector_set_state(other, "sync", "active"), 0);
	DECIDE(RF_REFUSE_NONE);
	/* An open incident affecting the connection. */
	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "connection:acme/m365");
	snprintf(inc.state, sizeof(inc.state), "open");
	assert_int_equal(rf_store_incident_add(other, &inc), 0);
	DECIDE(RF_REFUSE_NONE); /* no item affected yet */
	affect(other, inc.id);
	DECIDE(RF_REFUSE_INCIDENT);
	/* Contained: a new credential with a new key for the connection. */
	memset(&cr, 0, sizeof(cr));
	snprintf(cr.serial, sizeof(cr.serial), "c2");
	snprintf(cr.issuer, sizeof(cr.issuer), "issuing");
	snprintf(cr.tenant, sizeof(cr.tenant), "acme");
	snprintf(cr.key_id, sizeof(cr.key_id), "k2");
	snprintf(cr.profile, sizeof(cr.profile), "assertion");
	snprintf(cr.x5t256, sizeof(cr.x5t256), "X-c2");
	cr.not_before = NOW - 60;
	cr.not_after = NOW + 86400;
	cr.reason = -1;
	assert_int_equal(rf_store_cert_add(other, &cr), 0);
	assert_int_equal(
	    rf_store_conn_set(other, "acme", "m365", "pinned", "c2", NOW, NULL),
	    0);
	snprintf(inc.state, sizeof(inc.state), "contained");
	assert_int_equal(rf_store_incident_update(other, &inc), 0);
	DECIDE(RF_REFUSE_NONE);
	assert_string_equal(v.key_id, "k2");
	assert_string_equal(v.x5t256, "X-c2");
	q.key_id = "k1";
	DECIDE(RF_REFUSE_KEY);
	q.key_id = "k2";
	DECIDE(RF_REFUSE_NONE);
	/* The new credential revoked; the connector's certificate revoked. */
	assert_int_equal(
	    rf_store_cert_revoke(other, "c2", NOW, 1, &changed), 0);
	DECIDE(RF_REFUSE_NO_CRED);
	assert_int_equal(
	    rf_store_cert_revoke(other, "s1", NOW, 1, &changed), 0);
	DECIDE(RF_REFUSE_REVOKED);
#undef DECIDE
	rf_connector_cache_free(c);
	rf_connector_cache_free(NULL);
	rf_store_free(other);
}

struct nest {
	struct rf_store *st;
	int outer, inner;
};

static int
count_inner(void *arg, const struct rf_connector_rec *c)
{
	(void)c;
	((struct nest *)arg)->inner++;
	return 0;
}

/* The same query again inside its own foreach. */
static int
count_outer(void *arg, const struct rf_connector_rec *c)
{
	struct nest *n = arg;

	(void)c;
	n->outer++;
	return rf_store_connector_foreach(n->st, count_inner, n);
}

/* What a connector's assertion is decided on, read in one query. */
static void
test_facts(void **state)
{
	struct fx *f = *state;
	struct rf_connector_facts fa;
	struct rf_connector_rec c;
	int64_t n;
	int changed;

	world(f);
	assert_int_equal(
	    rf_store_connector_facts(f->st, "s1", "acme", "m365", &fa), 0);
	assert_string_equal(fa.connector, "sync");
	assert_string_equal(fa.state, "active");
	assert_true(fa.cert_known && !fa.cert_revoked);
	assert_string_equal(fa.cert_profile, "connector");
	assert_true(fa.cert_nb == NOW - 60 && fa.cert_na == NOW + 86400);
	assert_true(fa.bound && fa.registered && fa.conn_known);
	assert_string_equal(fa.reg.jwt_alg, "PS256");
	assert_string_equal(fa.reg.client_id, CID);
	assert_string_equal(fa.cred_serial, "c1");
	assert_true(fa.cred_known && !fa.cred_revoked);
	assert_string_equal(fa.cred_key_id, "k1");
	assert_string_equal(fa.cred_x5t256, "X-c1");
	assert_int_equal(fa.incident, 0);
	/* Another connection: not bound, not registered, unknown. */
	assert_int_equal(
	    rf_store_connector_facts(f->st, "s1", "acme", "other", &fa), 0);
	assert_true(!fa.bound && !fa.registered && !fa.conn_known);
	assert_string_equal(fa.cred_serial, "");
	/* Not a connector's certificate. */
	assert_int_equal(
	    rf_store_connector_facts(f->st, "c1", "acme", "m365", &fa),
	    RF_ERR_NOT_FOUND);
	rf_err_clear();
	/* Revocations and state are read as they are now, not as cached. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "c1", NOW, 1, &changed), 0);
	assert_int_equal(
	    rf_store_connector_set_state(f->st, "sync", "revoked"), 0);
	assert_int_equal(
	    rf_store_connector_facts(f->st, "s1", "acme", "m365", &fa), 0);
	assert_true(fa.cred_revoked);
	assert_string_equal(fa.state, "revoked");
	/* A cached statement handed out again reads afresh. */
	assert_int_equal(rf_store_connector_get(f->st, "sync", &c), 0);
	assert_string_equal(c.state, "revoked");
	assert_int_equal(
	    rf_store_connector_set_state(f->st, "sync", "active"), 0);
	assert_int_equal(rf_store_connector_get(f->st, "sync", &c), 0);
	assert_string_equal(c.state, "active");
	/* A statement in use (a foreach) is not handed out again. */
	{
		struct nest nn = {f->st, 0, 0};

		assert_int_equal(
		    rf_store_connector_add(f->st, "other", NOW), 0);
		assert_int_equal(
		    rf_store_connector_foreach(f->st, count_outer, &nn), 0);
		assert_int_equal(nn.outer, 2);
		assert_int_equal(nn.inner, 4);
	}
	/* Counting by prefix: the range bounds, '%' and '_' literal. */
	assert_int_equal(
	    rf_store_seen_bump(f->st, "fan", "a|x", 1, NOW, NULL), 0);
	assert_int_equal(
	    rf_store_seen_bump(f->st, "fan", "a|y", 1, NOW, NULL), 0);
	assert_int_equal(
	    rf_store_seen_bump(f->st, "fan", "a}", 1, NOW, NULL), 0);
	assert_int_equal(
	    rf_store_seen_bump(f->st, "fan", "a%|z", 1, NOW, NULL), 0);
	assert_int_equal(
	    rf_store_seen_bump(f->st, "fan", "ab|z", 1, NOW, NULL), 0);
	assert_int_equal(rf_store_seen_count(f->st, "fan", "a|", NOW, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rf_store_seen_count(f->st, "fan", "a%|", NOW, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rf_store_seen_count(f->st, "fan", "a_|", NOW, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    rf_store_seen_count(f->st, "fan", "a|", NOW + 1, &n), 0);
	assert_int_equal(n, 0);
}

/* An event of connection m365, whose current credential is X-c1. */
static void
event(struct rf_connector_event *ev, const char *connector, const char *tenant,
    const char *src, const char *asked, int64_t now)
{
	memset(ev, 0, sizeof(*ev));
	ev->tenant = tenant;
	ev->conn = "m365";
	ev->connector = connector;
	ev->source = src;
	ev->asked_x5t256 = asked;
	ev->cred_x5t256 = "X-c1";
	ev->now = now;
}

/* Run the detectors on one event; the kinds raised, space-separated.
 * With held set, on its baselines (written at rf_seen_flush). */
static struct rf_seen *held;

static void
detect(struct fx *f, const struct rf_config *cfg, const char *connector,
    const char *tenant, const char *src, const char *asked, int64_t now,
    char kinds[256])
{
	struct rf_connector_event ev;
	struct rf_alert_rec a[RF_ALERTS_MAX];
	size_t n, i;

	event(&ev, connector, tenant, src, asked, now);
	if (held != NULL)
		assert_int_equal(
		    rf_connector_detect_in(cfg, held, &ev, a, &n), 0);
	else
		assert_int_equal(
		    rf_connector_detect(cfg, f->st, &ev, a, &n), 0);
	kinds[0] = '\0';
	for (i = 0; i < n; i++) {
		strcat(kinds, a[i].kind);
		strcat(kinds, " ");
		assert_true(a[i].uid[0] != '\0');
		assert_true(a[i].detail[0] != '\0');
	}
}

static void
detectors_run(struct fx *f)
{
	struct rf_config cfg;
	char k[256], t[16];
	int64_t now = NOW - NOW % 3600; /* the start of an hour */
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.surge_per_minute = 1000;
	/* First use: nothing is new against an empty history. */
	detect(f, &cfg, "sync", "acme", "10.0.0.5", "", now, k);
	assert_string_equal(k, "");
	detect(f, &cfg, "sync", "acme", "10.0.0.9", "X-c1", now + 1, k);
	assert_string_equal(k, "");
	/* Another connector; another /24; then the same /24 again. */
	detect(f, &cfg, "arch", "acme", "10.0.0.5", "", now + 2, k);
	assert_string_equal(k, "new_connector ");
	detect(f, &cfg, "sync", "acme", "10.0.1.5", "", now + 3, k);
	assert_string_equal(k, "new_network ");
	detect(f, &cfg, "sync", "acme", "10.0.1.77", "", now + 4, k);
	assert_string_equal(k, "");
	detect(f, &cfg, "sync", "acme", "2001:db8:1:2::5", "", now + 5, k);
	assert_string_equal(k, "new_network ");
	detect(f, &cfg, "sync", "acme", "2001:db8:1:2:ffff::1", "", now + 6, k);
	assert_string_equal(k, "");
	/* A retired credential named. */
	detect(f, &cfg, "sync", "acme", "10.0.0.5", "X-old", now + 7, k);
	assert_string_equal(k, "retired_credential ");
	/* Hourly rate: the first hour had 8; the next hour alerts at
	 * 2 x 8 + 3 = 19, once. */
	for (i = 1; i <= 25; i++) {
		detect(
		    f, &cfg, "sync", "acme", "10.0.0.5", "", now + 3600 + i, k);
		if (i == 19)
			assert_string_equal(k, "rate_above_baseline ");
		else
			assert_string_equal(k, "");
	}
	/* Hour of the week: unused hours alert only after a week. */
	detect(f, &cfg, "sync", "acme", "10.0.0.5", "", now + 5 * 3600, k);
	assert_string_equal(k, "");
	detect(f, &cfg, "sync", "acme", "10.0.0.5", "",
	    now + 7 * 86400 + 9 * 3600, k);
	assert_string_equal(k, "new_hour_of_week ");
	/* Fan-out: sync over many tenants within 10 minutes. */
	now += 30 * 86400;
	for (i = 0; i < 12; i++) {
		snprintf(t, sizeof(t), "t%d", i);
		detect(f, &cfg, "sync", t, "10.0.0.5", "", now + i, k);
		if (i >= 5) /* 6 tenants > 5 and > 2 x 1 */
			assert_non_null(strstr(k, "fanout"));
		else
			assert_null(strstr(k, "fanout"));
	}
	/* A global surge: one alert at the threshold. */
	cfg.surge_per_minute = 5;
	now += 86400;
	for (i = 0; i < 8; i++) {
		detect(f, &cfg, "sync", "acme", "10.0.0.5", "", now + i, k);
		if (i == 4)
			assert_non_null(strstr(k, "global_surge"));
		else
			assert_null(strstr(k, "global_surge"));
	}
}

static void
test_detectors(void **state)
{
	detectors_run(*state);
}

/*
 * The hourly baseline is the busiest earlier hour, not only the hour just
 * before: a connection used in hours with gaps between them (a daily job)
 * still alerts when an hour passes twice its busiest plus 3.
 */
static void
test_rate_baseline_gap(void **state)
{
	struct rf_config cfg;
	char k[256];
	int64_t now = NOW - NOW % 3600;
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.surge_per_minute = 1000;
	/* The first hour has no earlier hour: no alert however many. */
	for (i = 0; i < 8; i++) {
		detect(
		    *state, &cfg, "daily", "gap", "10.0.0.5", "", now + i, k);
		assert_string_equal(k, "");
	}
	/* Three hours later (nothing in between): the alert at 2 x 8 + 3. */
	for (i = 1; i <= 20; i++) {
		detect(*state, &cfg, "daily", "gap", "10.0.0.5", "",
		    now + 3 * 3600 + i, k);
		if (i == 19)
			assert_string_equal(k, "rate_above_baseline ");
		else
			assert_string_equal(k, "");
	}
}

/*
 * An IPv4-mapped IPv6 source (::ffff:a.b.c.d, as a dual-stack socket
 * reports an IPv4 peer) is its IPv4 address: its network is its /24, the
 * same as the address seen as IPv4, and another /24 is a new network.
 */
static void
test_detect_v4mapped(void **state)
{
	struct rf_config cfg;
	struct rf_connector_event ev;
	struct rf_alert_rec a[RF_ALERTS_MAX];
	char k[256];
	int64_t now = NOW - NOW % 3600;
	size_t n;

	memset(&cfg, 0, sizeof(cfg));
	cfg.surge_per_minute = 1000;
	detect(*state, &cfg, "sync", "acme", "::ffff:10.1.2.3", "", now, k);
	assert_string_equal(k, "");
	/* The same client, seen as IPv4, and the same /24 mapped. */
	detect(*state, &cfg, "sync", "acme", "10.1.2.3", "", now + 1, k);
	assert_string_equal(k, "");
	detect(
	    *state, &cfg, "sync", "acme", "::ffff:10.1.2.77", "", now + 2, k);
	assert_string_equal(k, "");
	/* Another /24, mapped: a new network, named as IPv4. */
	event(&ev, "sync", "acme", "::ffff:192.0.2.9", "", now + 3);
	assert_int_equal(
	    rf_connector_detect(&cfg, ((struct fx *)*state)->st, &ev, a, &n),
	    0);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].uid, "new_network:acme/m365|192.0.2.0/24");
	detect(*state, &cfg, "sync", "acme", "192.0.2.10", "", now + 4, k);
	assert_string_equal(k, "");
	/* IPv6 proper keeps its /64. */
	detect(*state, &cfg, "sync", "acme", "2001:db8::1", "", now + 5, k);
	assert_string_equal(k, "new_network ");
}

/*
 * The details of alerts about time say it as a reader does: the hour of the
 * week as a day and UTC hours, and the rate alert fires when the count
 * reaches its threshold (2 x 1 + 3 = 5), as docs/connectors.md says.
 */
static void
test_detect_details(void **state)
{
	struct rf_config cfg;
	struct rf_connector_event ev;
	struct rf_alert_rec a[RF_ALERTS_MAX];
	int64_t mon = 1796601600; /* Monday 2026-12-07 00:00 UTC */
	char k[256];
	size_t n;
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.surge_per_minute = 1000;
	/* One use on Monday 11:00, then Monday 12:00 a week later and more. */
	detect(
	    *state, &cfg, "sync", "acme", "10.0.0.5", "", mon + 11 * 3600, k);
	for (i = 0; i < 5; i++) {
		event(&ev, "sync", "acme", "10.0.0.5", "",
		    mon + 7 * 86400 + 12 * 3600 + i);
		assert_int_equal(rf_connector_detect(&cfg,
				     ((struct fx *)*state)->st, &ev, a, &n),
		    0);
		assert_int_equal(n, i == 0 || i == 4 ? 1 : 0);
		if (i == 0) {
			assert_string_equal(a[0].kind, "new_hour_of_week");
			assert_string_equal(a[0].detail,
			    "the connection is used in an hour of the week "
			    "(Monday 12:00-13:00 UTC) never used in its "
			    "history");
		} else if (i == 4) {
			assert_string_equal(a[0].kind, "rate_above_baseline");
			assert_string_equal(a[0].detail,
			    "the connection's assertions this hour reached "
			    "twice "
			    "its busiest hour (1) plus 3");
		}
	}
}

/* Every baseline row, in order, as one string (malloc'd). */
static char *
seen_dump(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *out;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
			     "SELECT group_concat(kind || ' ' || k || ' ' || "
			     "first || ' ' || last || ' ' || count, '\n') FROM "
			     "(SELECT * FROM connector_seen ORDER BY kind, k)",
			     -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_non_null(sqlite3_column_text(s, 0));
	out = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return out;
}

/*
 * The same events with their baselines held in memory and written once at
 * the end (as the API's recorder does a batch at a time): the same alerts
 * at the same events, and the same rows once written.
 */
static void
test_detectors_held(void **state)
{
	struct fx *f = *state;
	struct fx g = *f;
	char *a, *b;

	detectors_run(f);
	snprintf(g.path, sizeof(g.path), "%s/held.db", f->home);
	assert_int_equal(rf_store_open(g.path, 1, &g.st), 0);
	assert_int_equal(rf_seen_new(g.st, &held), 0);
	detectors_run(&g);
	assert_int_equal(rf_seen_flush(held), 0);
	rf_seen_free(held);
	held = NULL;
	rf_store_free(g.st);
	a = seen_dump(f->path);
	b = seen_dump(g.path);
	assert_true(strlen(a) > 100);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

/* Fan-out over 12 tenants in one second: each count is the same question
 * of the store, which a held batch asks once and corrects by its changed
 * rows. The alerts must come at the same events, directly or held. */
static void
fanout_same_second(struct fx *f, char kinds[12][256])
{
	struct rf_config cfg;
	char t[16];
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.surge_per_minute = 1000;
	for (i = 0; i < 12; i++) {
		snprintf(t, sizeof(t), "t%d", i);
		detect(f, &cfg, "sync", t, "10.0.0.5", "", NOW, kinds[i]);
	}
}

static void
test_fanout_held(void **state)
{
	struct fx *f = *state;
	struct fx g = *f;
	char direct[12][256], batch[12][256], *a, *b;
	int i;

	fanout_same_second(f, direct);
	snprintf(g.path, sizeof(g.path), "%s/fan.db", f->home);
	assert_int_equal(rf_store_open(g.path, 1, &g.st), 0);
	assert_int_equal(rf_seen_new(g.st, &held), 0);
	fanout_same_second(&g, batch);
	assert_int_equal(rf_seen_flush(held), 0);
	rf_seen_free(held);
	held = NULL;
	rf_store_free(g.st);
	for (i = 0; i < 12; i++) {
		assert_string_equal(direct[i], batch[i]);
		/* 6 tenants > 5 and > 2 x 0 from the sixth on. */
		if (i >= 5)
			assert_non_null(strstr(direct[i], "fanout"));
		else
			assert_null(strstr(direct[i], "fanout"));
	}
	a = seen_dump(f->path);
	b = seen_dump(g.path);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void
test_alerts(void **state)
{
	struct fx *f = *state;
	struct rf_alert_rec a, q[4];
	size_t n;
	int added;
	char *j;

	memset(&a, 0, sizeof(a));
	snprintf(a.uid, sizeof(a.uid), "new_network:acme/m365|10.0.1.0/24");
	a.time = NOW;
	snprintf(a.kind, sizeof(a.kind), "new_network");
	snprintf(a.tenant, sizeof(a.tenant), "acme");
	snprintf(a.conn, sizeof(a.conn), "m365");
	snprintf(a.connector, sizeof(a.connector), "sync");
	snprintf(a.detail, sizeof(a.detail), "x");
	assert_int_equal(rf_store_alert_add(f->st, &a, &added), 0);
	assert_int_equal(added, 1);
	assert_int_equal(rf_store_alert_add(f->st, &a, &added), 0);
	assert_int_equal(added, 0);
	assert_int_equal(rf_store_alert_due(f->st, NOW, q, 4, &n), 0);
	assert_int_equal(n, 1);
	/* The receiver is down: backoff, then due again. */
	assert_int_equal(rf_store_alert_mark(f->st, q[0].id, 0, 1, NOW + 2), 0);
	assert_int_equal(rf_store_alert_due(f->st, NOW + 1, q, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(rf_store_alert_due(f->st, NOW + 2, q, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rf_store_alert_mark(f->st, q[0].id, 1, 2, 0), 0);
	assert_int_equal(rf_store_alert_due(f->st, NOW + 100, q, 4, &n), 0);
	assert_int_equal(n, 0);
	j = rf_connector_alert_json(&a);
	assert_non_null(j);
	assert_non_null(
	    strstr(j, "\"id\":\"new_network:acme/m365|10.0.1.0/24\""));
	free(j);
}

/* An EC P-256 key. */
static EVP_PKEY *
ec_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

/* A certificate of pub signed by ca: serial, subject (O, OU, CN; NULL O
 * and OU: CN only), clientAuth when eku, valid from NOW - 60 for a day. */
static X509 *
cert_of(EVP_PKEY *pub, EVP_PKEY *ca, X509 *cax, long serial, const char *cn,
    int connector, int eku)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	if (connector) {
		X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
		    (const unsigned char *)"ringfence", -1, -1, 0);
		X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC,
		    (const unsigned char *)"connector", -1, -1, 0);
	}
	X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, cax != NULL ? X509_get_subject_name(cax) : n);
	X509_NAME_free(n);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(NOW - 60));
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(NOW + 86400));
	X509_set_pubkey(x, pub);
	if (eku) {
		ext = X509V3_EXT_conf_nid(
		    NULL, NULL, NID_ext_key_usage, "clientAuth");
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, ca, EVP_sha256()) > 0);
	return x;
}

/* x into the store as certificate serial of tenant, issuer "issuing". */
static void
cert_put(struct fx *f, X509 *x, const char *serial, const char *tenant)
{
	struct rf_cert_rec c;
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);

	assert_true(len > 0);
	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "issuing");
	snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
	snprintf(c.profile, sizeof(c.profile), "connector");
	assert_int_equal(rf_keys_pub_id(X509_get0_pubkey(x), c.key_id), 0);
	c.not_before = NOW - 60;
	c.not_after = NOW + 86400;
	c.reason = -1;
	c.der = der;
	c.derlen = (size_t)len;
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	OPENSSL_free(der);
}

/* 0 accepted, 1 refused (why says so). */
static int
check(struct rf_proof_guard *g, struct fx *f, struct rf_ledger *l,
    const char *serial, const char *proof, int64_t now, char *why)
{
	return rf_proof_check(g, f->st, l, serial, "connector.sync", "assert",
	    "acme/m365", (const uint8_t *)proof, strlen(proof), now, why, 320);
}

/* Open a proof session for certificate 1234 (key ck) at now: *ps. */
static void
session_open(struct rf_proof_guard *g, struct fx *f, struct rf_ledger *l,
    EVP_PKEY *ck, int64_t now, struct rf_proof_session *ps)
{
	struct rf_proof_opened op;
	char pub[RF_PROOF_B64_32 + 1], ask[RF_PROOF_MAX + 1], why[320];
	EVP_PKEY *eph = NULL;

	assert_int_equal(
	    rf_proof_session_ask(ck, now, &eph, pub, ask, sizeof(ask)), 0);
	assert_int_equal(
	    rf_proof_session_open(g, f->st, l, "1234", pub,
		(const uint8_t *)ask, strlen(ask), now, &op, why, sizeof(why)),
	    0);
	assert_int_equal(rf_proof_session_take(eph, pub, op.sid, op.pub,
			     op.confirm, op.expires, ps),
	    0);
	EVP_PKEY_free(eph);
}

/*
 * Proof sessions (rf_proof_session_*): opened with one signed proof for
 * the connector's X25519 key, each proof of the session is an HMAC that
 * keyd accepts once, for an assertion of that certificate only, while the
 * session is open; serve, which relays the keys, cannot make one.
 */
static void
proof_sessions(struct rf_proof_guard *g, struct fx *f, struct rf_ledger *l,
    EVP_PKEY *ck, struct rf_proof_session *ps)
{
	struct rf_proof_opened op;
	struct rf_proof_session bad, other;
	char pub[RF_PROOF_B64_32 + 1], ask[RF_PROOF_MAX + 1], why[320];
	char p[RF_PROOF_MAX + 1], p2[RF_PROOF_MAX + 1], p3[RF_PROOF_MAX + 1];
	EVP_PKEY *eph = NULL;
	struct rf_proof_guard *g2 = NULL;
	char c;
	int i;

	assert_int_equal(
	    rf_proof_session_ask(ck, NOW + 11, &eph, pub, ask, sizeof(ask)), 0);
	/* The ask's proof is for its key: another key is refused. */
	assert_int_equal(rf_proof_session_open(g, f->st, l, "1234",
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     (const uint8_t *)ask, strlen(ask), NOW + 11, &op,
			     why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "does not verify"));
	assert_int_equal(rf_proof_session_open(g, f->st, l, "1234", "short",
			     (const uint8_t *)ask, strlen(ask), NOW + 11, &op,
			     why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "X25519"));
	assert_int_equal(rf_proof_session_open(g, f->st, l, "1234", pub,
			     (const uint8_t *)ask, strlen(ask), NOW + 11, &op,
			     why, sizeof(why)),
	    0);
	assert_int_equal(strlen(op.sid), RF_PROOF_SID_LEN);
	assert_int_equal(op.expires, NOW + 11 + RF_PROOF_SESSION_TTL);
	/* Its ask once only. */
	assert_int_equal(rf_proof_session_open(g, f->st, l, "1234", pub,
			     (const uint8_t *)ask, strlen(ask), NOW + 11, &op,
			     why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "used before"));
	/* An answer serve changed (keyd's key, here): its confirmation does
	 * not hold. */
	EVP_PKEY_free(eph);
	assert_int_equal(
	    rf_proof_session_ask(ck, NOW + 11, &eph, pub, ask, sizeof(ask)), 0);
	assert_int_equal(rf_proof_session_open(g, f->st, l, "1234", pub,
			     (const uint8_t *)ask, strlen(ask), NOW + 11, &op,
			     why, sizeof(why)),
	    0);
	c = op.pub[1];
	op.pub[1] = c == 'A' ? 'B' : 'A';
	assert_int_equal(rf_proof_session_take(eph, pub, op.sid, op.pub,
			     op.confirm, op.expires, &bad),
	    RF_ERR_REFUSED);
	op.pub[1] = c;
	assert_int_equal(rf_proof_session_take(eph, pub, op.sid, op.pub,
			     op.confirm, op.expires, ps),
	    0);
	EVP_PKEY_free(eph);
	rf_err_clear();

	/* Each proof once, in any order within the window. */
	assert_int_equal(rf_proof_make_session(
			     ps, "assert", "acme/m365", NOW + 12, p, sizeof(p)),
	    0);
	assert_int_equal(rf_proof_make_session(ps, "assert", "acme/m365",
			     NOW + 12, p2, sizeof(p2)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 12, why), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 12, why), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 13, why), 1);
	assert_non_null(strstr(why, "used before"));
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 13, why), 1);
	/* Far behind the newest: refused, though never used. */
	assert_int_equal(rf_proof_make_session(
			     ps, "assert", "acme/m365", NOW + 14, p, sizeof(p)),
	    0);
	for (i = 0; i < 1100; i++)
		assert_int_equal(rf_proof_make_session(ps, "assert",
				     "acme/m365", NOW + 14, p2, sizeof(p2)),
		    0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 14, why), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 14, why), 1);
	assert_non_null(strstr(why, "behind"));

	/* Another subject, another purpose, another certificate, a MAC
	 * changed, the time out of the window: refused. */
	assert_int_equal(rf_proof_make_session(ps, "assert", "acme/other",
			     NOW + 15, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 15, why), 1);
	assert_non_null(strstr(why, "does not verify"));
	assert_int_equal(
	    rf_proof_make_session(ps, "renew", "abcd", NOW + 15, p, sizeof(p)),
	    0);
	assert_int_equal(rf_proof_check(g, f->st, l, "1234", "connector.sync",
			     "renew", "abcd", (const uint8_t *)p, strlen(p),
			     NOW + 15, why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "for assertions only"));
	assert_int_equal(rf_proof_make_session(
			     ps, "assert", "acme/m365", NOW + 15, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "99", p, NOW + 15, why), 1);
	assert_non_null(strstr(why, "not open for certificate 99"));
	memcpy(p3, p, sizeof(p3));
	c = p3[strlen(p3) - RF_PROOF_SID_LEN - 3];
	p3[strlen(p3) - RF_PROOF_SID_LEN - 3] = c == 'A' ? 'B' : 'A';
	assert_int_equal(check(g, f, l, "1234", p3, NOW + 15, why), 1);
	assert_non_null(strstr(why, "does not verify"));
	assert_int_equal(rf_proof_make_session(ps, "assert", "acme/m365",
			     NOW - RF_PROOF_SKEW, p3, sizeof(p3)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p3, NOW + 15, why), 1);
	assert_non_null(strstr(why, "from keyd's clock"));
	/* The CN check of a signed proof holds for a session's too. */
	assert_int_equal(rf_proof_check(g, f->st, l, "1234", "connector.other",
			     "assert", "acme/m365", (const uint8_t *)p,
			     strlen(p), NOW + 15, why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "not connector.other's"));
	assert_int_equal(check(g, f, l, "1234", p, NOW + 15, why), 0);

	/* Another keyd (a restart) knows no session; nor does this one
	 * once the session has ended. */
	assert_int_equal(rf_proof_guard_new(&g2), 0);
	assert_int_equal(rf_proof_make_session(
			     ps, "assert", "acme/m365", NOW + 16, p, sizeof(p)),
	    0);
	assert_int_equal(check(g2, f, l, "1234", p, NOW + 16, why), 1);
	assert_non_null(strstr(why, RF_PROOF_SESSION_UNKNOWN ": "));
	rf_proof_guard_free(g2);
	assert_int_equal(rf_proof_make_session(ps, "assert", "acme/m365",
			     NOW + 11 + RF_PROOF_SESSION_TTL, p3, sizeof(p3)),
	    0);
	assert_int_equal(
	    check(g, f, l, "1234", p3, NOW + 11 + RF_PROOF_SESSION_TTL, why),
	    1);
	assert_non_null(strstr(why, "not open"));

	/* RF_PROOF_SESSIONS_CERT per certificate: 1234 has two (the first
	 * opened, never taken, and ps); 16 more end both, those closest to
	 * their end. */
	for (i = 0; i < RF_PROOF_SESSIONS_CERT; i++)
		session_open(g, f, l, ck, NOW + 20 + i, &other);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 40, why), 1);
	assert_non_null(strstr(why, "not open"));
	assert_int_equal(rf_proof_make_session(&other, "assert", "acme/m365",
			     NOW + 40, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 40, why), 0);
	*ps = other;
}

/*
 * keyd's check of a connector's proof (rf_proof_check), on a store with an
 * issuing CA keyd's ledger knows and a connector certificate it signed:
 * the window of RF_PROOF_SKEW each way, each proof once (also once the
 * replay cache's generation has turned), the certificate's key, CN,
 * subject, EKU and issuer, and the ledger's retirement of the issuer.
 */
static void
test_proof_check(void **state)
{
	struct fx *f = *state;
	struct rf_proof_guard *g = NULL;
	struct rf_ledger *l = NULL;
	struct rf_ca_rec ca;
	EVP_PKEY *cak = ec_key(), *ck = ec_key(), *other = ec_key();
	X509 *cax, *cx, *bad;
	unsigned char *der = NULL;
	char p[RF_PROOF_MAX + 1], p2[RF_PROOF_MAX + 1], why[320], path[1100];
	char caid[65];
	const char *ids[1];
	static const uint8_t want[1] = {1};
	struct rf_proof_session ps;
	int len;

	(void)state;
	cax = cert_of(cak, cak, NULL, 1, "issuing", 0, 0);
	assert_int_equal(rf_keys_pub_id(cak, caid), 0);
	memset(&ca, 0, sizeof(ca));
	snprintf(ca.name, sizeof(ca.name), "issuing");
	snprintf(ca.key_id, sizeof(ca.key_id), "%s", caid);
	snprintf(ca.serial, sizeof(ca.serial), "1");
	ca.active = 1;
	ca.not_before = NOW - 60;
	ca.not_after = NOW + 86400;
	assert_true((len = i2d_X509(cax, &der)) > 0);
	ca.der = der;
	ca.derlen = (size_t)len;
	assert_int_equal(rf_store_ca_add(f->st, &ca), 0);
	OPENSSL_free(der);
	cx = cert_of(ck, cak, cax, 0x1234, "connector.sync", 1, 1);
	cert_put(f, cx, "1234", "connector.sync");
	/* Signed by the CA, CN right, but not the connector profile's
	 * subject (CN only). */
	bad = cert_of(ck, cak, cax, 0x99, "connector.sync", 0, 1);
	cert_put(f, bad, "99", "connector.sync");
	snprintf(path, sizeof(path), "%s/ledger", f->home);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_proof_guard_new(&g), 0);

	/* keyd's ledger does not know the issuer: refused. */
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW, p, sizeof(p)), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 1);
	assert_non_null(strstr(why, "not an issuing key keyd made"));
	assert_int_equal(rf_ledger_ca_key(l, caid, "issuing"), 0);
	/* A fresh guard: the refused one's certificate was not kept. */
	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 1, why), 1);
	assert_non_null(strstr(why, "used before"));

	/* The window: RF_PROOF_SKEW each way, no more. */
	assert_int_equal(rf_proof_make(ck, "assert", "acme/m365",
			     NOW - RF_PROOF_SKEW, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 0);
	assert_int_equal(rf_proof_make(ck, "assert", "acme/m365",
			     NOW - RF_PROOF_SKEW - 1, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 1);
	assert_non_null(strstr(why, "from keyd's clock"));
	assert_int_equal(rf_proof_make(ck, "assert", "acme/m365",
			     NOW + RF_PROOF_SKEW + 1, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 1);
	assert_int_equal(rf_proof_make(ck, "assert", "acme/m365",
			     NOW + RF_PROOF_SKEW, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 0);

	/* Once, across the cache's turn: accepted at NOW + 200, asked again
	 * at NOW + 241 (the generation turned at NOW + 240) and NOW + 300. */
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 200, p2, sizeof(p2)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 200, why), 0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 241, why), 1);
	assert_non_null(strstr(why, "used before"));
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 300, why), 1);
	assert_non_null(strstr(why, "used before"));

	/* Another key, another subject, another connector, another
	 * certificate's subject: refused. */
	assert_int_equal(
	    rf_proof_make(other, "assert", "acme/m365", NOW, p, sizeof(p)), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 1);
	assert_non_null(strstr(why, "does not verify"));
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/other", NOW, p, sizeof(p)), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW, why), 1);
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW, p, sizeof(p)), 0);
	assert_int_equal(rf_proof_check(g, f->st, l, "1234", "connector.other",
			     "assert", "acme/m365", (const uint8_t *)p,
			     strlen(p), NOW, why, sizeof(why)),
	    1);
	assert_non_null(strstr(why, "not connector.other's"));
	assert_int_equal(check(g, f, l, "99", p, NOW, why), 1);
	assert_non_null(strstr(why, "not a connector's client certificate"));
	assert_int_equal(check(g, f, l, "777", p, NOW, why), 1);
	/* Past the certificate's notAfter. */
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 90000, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 90000, why), 1);
	assert_non_null(strstr(why, "not valid now"));

	/* Kept across a restart (rf_proof_guard_keep): a proof accepted by
	 * one guard is refused by the next one that keeps the same folder,
	 * and so is one the second accepted, after a third start. */
	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	assert_int_equal(rf_proof_guard_keep(g, f->home), 0);
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 4, p, sizeof(p)), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 4, why), 0);
	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	assert_int_equal(rf_proof_guard_keep(g, f->home), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 6, why), 1);
	assert_non_null(strstr(why, "used before"));
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 7, p2, sizeof(p2)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 7, why), 0);
	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	assert_int_equal(rf_proof_guard_keep(g, f->home), 0);
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 8, why), 1);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 8, why), 1);
	/* Still refused at the end of its window, ... */
	assert_int_equal(check(g, f, l, "1234", p2, NOW + 120, why), 1);
	/* ... and a folder it cannot write is an error, not an acceptance. */
	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	assert_int_equal(rf_proof_guard_keep(g, "/nonexistent-rf-folder"), 0);
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 9, p, sizeof(p)), 0);
	assert_true(check(g, f, l, "1234", p, NOW + 9, why) < 0);
	rf_err_clear();

	rf_proof_guard_free(g);
	assert_int_equal(rf_proof_guard_new(&g), 0);
	proof_sessions(g, f, l, ck, &ps);

	/* Its issuing key taken out of service in keyd's ledger: refused,
	 * although the certificate was verified and kept before; and so is
	 * a proof of the session opened for it. */
	assert_int_equal(
	    rf_proof_make(ck, "assert", "acme/m365", NOW + 10, p, sizeof(p)),
	    0);
	ids[0] = caid;
	assert_int_equal(rf_ledger_retire_keys(l, ids, want, 1), 0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 10, why), 1);
	assert_non_null(strstr(why, "out of service"));
	assert_int_equal(rf_proof_make_session(&ps, "assert", "acme/m365",
			     NOW + 30, p, sizeof(p)),
	    0);
	assert_int_equal(check(g, f, l, "1234", p, NOW + 30, why), 1);
	assert_non_null(strstr(why, "out of service"));

	rf_proof_guard_free(g);
	rf_ledger_free(l);
	X509_free(cax);
	X509_free(cx);
	X509_free(bad);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_guid),
	    cmocka_unit_test(test_jwt),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_proof_make),
	    cmocka_unit_test_setup_teardown(test_decide, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_proof_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incident, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_decide_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_facts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_detectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_detect_v4mapped, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_detect_details, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_rate_baseline_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_detectors_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fanout_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alerts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
