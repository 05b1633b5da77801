/*
 * decide.c: whether a connector's assertion is signed. A pure decision
 * over the store (and the limits): the custody process calls it before it
 * signs for a connector-class caller, the API calls it today.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"
#include "store/store.h"
#include "store/store_incident.h"

const char *
rf_refusal_code(enum rf_refusal why)
{
	switch (why) {
	case RF_REFUSE_NONE:
		return "ok";
	case RF_REFUSE_UNKNOWN:
		return "unknown_connector";
	case RF_REFUSE_REVOKED:
		return "revoked";
	case RF_REFUSE_NOT_BOUND:
		return "not_bound";
	case RF_REFUSE_NOT_ENTRA:
		return "not_registered";
	case RF_REFUSE_NO_CRED:
		return "no_credential";
	case RF_REFUSE_INCIDENT:
		return "under_incident";
	case RF_REFUSE_RATE:
		return "rate_limited";
	case RF_REFUSE_BAD_MESSAGE:
		return "bad_message";
	case RF_REFUSE_KEY:
		return "wrong_key";
	}
	return "refused";
}

int
rf_refusal_status(enum rf_refusal why)
{
	switch (why) {
	case RF_REFUSE_NONE:
		return 200;
	case RF_REFUSE_UNKNOWN:
	case RF_REFUSE_REVOKED:
		return 401;
	case RF_REFUSE_NOT_ENTRA:
		return 404;
	case RF_REFUSE_NO_CRED:
		return 409;
	case RF_REFUSE_INCIDENT:
		return 423;
	case RF_REFUSE_RATE:
		return 429;
	case RF_REFUSE_NOT_BOUND:
	case RF_REFUSE_BAD_MESSAGE:
	case RF_REFUSE_KEY:
		return 403;
	}
	return 403;
}

static int
refuse(struct rf_connector_verdict *v, enum rf_refusal why, const char *msg)
{
	v->why = why;
	snprintf(v->detail, sizeof(v->detail), "%.199s", msg);
	return 0;
}

/* The connector of a certificate, which must be valid at now. */
static int
who_asks(struct rf_store *st, const struct rf_connector_req *q,
    struct rf_connector_verdict *v)
{
	struct rf_connector_rec c;
	struct rf_cert_rec cr;
	char msg[200];
	int r, bad;

	if (q->cert_serial == NULL || *q->cert_serial == '\0')
		return refuse(v, RF_REFUSE_UNKNOWN,
		    "a connector's TLS client certificate is required");
	r = rf_store_connector_by_cert(st, q->cert_serial, v->connector);
	if (r == RF_ERR_NOT_FOUND)
		return refuse(v, RF_REFUSE_UNKNOWN,
		    "this client certificate is not a connector's");
	if (r != 0)
		return r;
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(st, q->cert_serial, &cr)) != 0)
		return r == RF_ERR_NOT_FOUND
		    ? refuse(v, RF_REFUSE_UNKNOWN, "unknown certificate")
		    : r;
	bad = cr.revoked;
	if (!bad && (q->now < cr.not_before || q->now > cr.not_after))
		bad = 2;
	if (strcmp(cr.profile, "connector") != 0)
		bad = 3;
	rf_cert_rec_clear(&cr);
	if (bad == 3)
		return refuse(v, RF_REFUSE_UNKNOWN,
		    "this client certificate is not of the connector profile");
	/* The connector before its certificate: each says what to do, and
	 * a revoked connector's certificates are revoked too. */
	if ((r = rf_store_connector_get(st, v->connector, &c)) != 0)
		return r;
	if (strcmp(c.state, "active") != 0)
		return refuse(v, RF_REFUSE_REVOKED,
		    "this connector is revoked, for good: the operator adds a "
		    "connector under another name");
	if (bad == 1) {
		snprintf(msg, sizeof(msg),
		    "this connector certificate is revoked: the connector "
		    "needs a new key ('ringfence connector enroll %.64s --csr "
		    "FILE' on the ringfence host)",
		    v->connector);
		return refuse(v, RF_REFUSE_REVOKED, msg);
	}
	if (bad == 2)
		return refuse(v, RF_REFUSE_REVOKED,
		    "this connector certificate is expired: renew it");
	return 0;
}

/* The connection's current credential: unrevoked, its key key_id. */
static int
credential(struct rf_store *st, const struct rf_connector_req *q,
    struct rf_connector_verdict *v)
{
	struct rf_conn_rec cn;
	struct rf_cert_rec cr;
	int r, bad;

	if ((r = rf_store_conn_get(st, q->tenant, q->conn, &cn)) != 0)
		return r == RF_ERR_NOT_FOUND
		    ? refuse(v, RF_REFUSE_NOT_ENTRA, "no such connection")
		    : r;
	if (cn.serial[0] == '\0') {
		char msg[256];

		/* Names are at most 64 bytes: the line fits the detail. */
		snprintf(msg, sizeof(msg),
		    "no credential yet: issue one with 'ringfence issue "
		    "--tenant %.64s --connection %.64s --profile assertion "
		    "--keygen rsa-2048'",
		    q->tenant, q->conn);
		return refuse(v, RF_REFUSE_NO_CRED, msg);
	}
	memset(&cr, 0, sizeof(cr));
	if ((r = rf_store_cert_get(st, cn.serial, &cr)) != 0)
		return r;
	snprintf(v->cred_serial, sizeof(v->cred_serial), "%s", cn.serial);
	snprintf(v->x5t256, sizeof(v->x5t256), "%s", cr.x5t256);
	snprintf(v->key_id, sizeof(v->key_id), "%s", cr.key_id);
	bad = cr.revoked || q->now > cr.not_after;
	r = q->key_id != NULL && strcmp(cr.key_id, q->key_id) != 0;
	rf_cert_rec_clear(&cr);
	if (bad)
		return refuse(v, RF_REFUSE_NO_CRED,
		    "the connection's credential is revoked or expired");
	if (r)
		return refuse(v, RF_REFUSE_KEY,
		    "the key is not the connection's current key");
	return 0;
}

/*
 * The facts of requests that passed, while the store's connector
 * generation is gen (rf_connector_decide_cached): a request asked again
 * costs one counter read instead of the facts' join.
 */
#define CACHE_N 64

struct cache_entry {
	char serial[41], tenant[128], conn[64];
	struct rf_connector_facts f;
};

struct rf_connector_cache {
	int64_t gen;
	size_t n, next;
	struct cache_entry e[CACHE_N];
};

int
rf_connector_cache_new(struct rf_connector_cache **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return RF_ERR_ALLOC;
	(*out)->gen = -1;
	return 0;
}

void
rf_connector_cache_free(struct rf_connector_cache *c)
{
	free(c);
}

static struct cache_entry *
cache_find(struct rf_connector_cache *c, const struct rf_connector_req *q)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->e[i].serial, q->cert_serial) == 0 &&
		    strcmp(c->e[i].tenant, q->tenant) == 0 &&
		    strcmp(c->e[i].conn, q->conn) == 0)
			return &c->e[i];
	return NULL;
}

static void
cache_put(struct rf_connector_cache *c, const struct rf_connector_req *q,
    const struct rf_connector_facts *f)
{
	struct cache_entry *e;

	/* Longer keys than the entry holds are not kept (nor asked). */
	if (strlen(q->cert_serial) >= sizeof(e->serial) ||
	    strlen(q->tenant) >= sizeof(e->tenant) ||
	    strlen(q->conn) >= sizeof(e->conn))
		return;
	if (c->n < CACHE_N) {
		e = &c->e[c->n++];
	} else {
		e = &c->e[c->next];
		c->next = (c->next + 1) % CACHE_N;
	}
	snprintf(e->serial, sizeof(e->serial), "%s", q->cert_serial);
	snprintf(e->tenant, sizeof(e->tenant), "%s", q->tenant);
	snprintf(e->conn, sizeof(e->conn), "%s", q->conn);
	e->f = *f;
}

/* 1 if every check before the message and the limits passes on f. */
static int
facts_ok(const struct rf_connector_facts *f, const struct rf_connector_req *q,
    enum rf_sig_scheme *scheme)
{
	return f->cert_known && strcmp(f->cert_profile, "connector") == 0 &&
	    !f->cert_revoked && q->now >= f->cert_nb && q->now <= f->cert_na &&
	    strcmp(f->state, "active") == 0 && f->bound && f->registered &&
	    rf_jwt_scheme(f->reg.jwt_alg, scheme) == 0 && f->incident == 0 &&
	    f->conn_known && f->cred_serial[0] != '\0' && f->cred_known &&
	    !f->cred_revoked && q->now <= f->cred_na &&
	    (q->key_id == NULL || strcmp(f->cred_key_id, q->key_id) == 0);
}

/*
 * The common case in one query (or none, from c): every check before the
 * message and the limits passes on the facts. 1 with v and reg filled
 * then; 0 when a check fails or the facts are not there: the single
 * queries say which.
 */
static int
facts_pass(struct rf_connector_cache *c, struct rf_store *st,
    const struct rf_connector_req *q, struct rf_connector_verdict *v,
    struct rf_entra_rec *reg, int *err)
{
	struct rf_connector_facts got;
	const struct rf_connector_facts *f = &got;
	struct cache_entry *e = NULL;

	*err = 0;
	if (q->cert_serial == NULL || *q->cert_serial == '\0' ||
	    q->tenant == NULL || q->conn == NULL)
		return 0;
	if (c != NULL && (e = cache_find(c, q)) != NULL)
		f = &e->f;
	else if ((*err = rf_store_connector_facts(
		      st, q->cert_serial, q->tenant, q->conn, &got)) != 0) {
		if (*err == RF_ERR_NOT_FOUND) {
			rf_err_clear();
			*err = 0;
		}
		return 0;
	}
	if (!facts_ok(f, q, &v->scheme)) {
		rf_err_clear();
		return 0;
	}
	if (c != NULL && e == NULL)
		cache_put(c, q, f);
	snprintf(v->connector, sizeof(v->connector), "%s", f->connector);
	snprintf(v->cred_serial, sizeof(v->cred_serial), "%s", f->cred_serial);
	snprintf(v->x5t256, sizeof(v->x5t256), "%s", f->cred_x5t256);
	snprintf(v->key_id, sizeof(v->key_id), "%s", f->cred_key_id);
	*reg = f->reg;
	return 1;
}

int
rf_connector_decide(const struct rf_config *cfg, struct rf_store *st,
    struct rf_limits *limits, const struct rf_connector_req *q,
    struct rf_connector_verdict *v)
{
	return rf_connector_decide_cached(
	    NULL, -1, cfg, st, limits, q, v, NULL);
}

int
rf_connector_decide_cached(struct rf_connector_cache *c, int64_t gen,
    const struct rf_config *cfg, struct rf_store *st, struct rf_limits *limits,
    const struct rf_connector_req *q, struct rf_connector_verdict *v,
    struct rf_entra_rec *regout)
{
	struct rf_entra_rec reg;
	char key[256];
	int r, open;

	memset(v, 0, sizeof(*v));
	/* The generation first: facts read after it are at least as new. */
	if (c != NULL && gen < 0 && rf_store_connector_gen(st, &gen) != 0) {
		rf_err_clear();
		gen = -1;
	}
	if (c != NULL && (gen < 0 || gen != c->gen)) {
		c->n = c->next = 0;
		c->gen = gen;
	}
	if (facts_pass(gen >= 0 ? c : NULL, st, q, v, &reg, &r))
		goto checked;
	if (r != 0)
		return r;
	memset(v, 0, sizeof(*v));
	if ((r = who_asks(st, q, v)) != 0 || v->why != RF_REFUSE_NONE)
		return r;
	r = rf_store_binding_get(st, v->connector, q->tenant, q->conn);
	if (r == RF_ERR_NOT_FOUND)
		return refuse(v, RF_REFUSE_NOT_BOUND,
		    "this connector is not bound to the connection");
	if (r != 0)
		return r;
	if ((r = rf_store_entra_get(st, q->tenant, q->conn, &reg)) ==
	    RF_ERR_NOT_FOUND)
		return refuse(v, RF_REFUSE_NOT_ENTRA,
		    "the connection is not registered as kind entra");
	if (r != 0)
		return r;
	if ((r = rf_jwt_scheme(reg.jwt_alg, &v->scheme)) != 0)
		return r;
	if ((r = rf_store_conn_under_incident(
		 st, q->tenant, q->conn, &open, &v->incident)) != 0)
		return r;
	if (open)
		return refuse(v, RF_REFUSE_INCIDENT,
		    "the connection is under an open incident: nothing is "
		    "signed for it until it is contained");
	if ((r = credential(st, q, v)) != 0 || v->why != RF_REFUSE_NONE)
		return r;
checked:
	if (regout != NULL)
		*regout = reg;
	if (q->msg != NULL &&
	    rf_jwt_check(&reg, v->x5t256, q->msg, q->msglen, q->now,
		cfg->assertion_lifetime, v->jti) != 0) {
		snprintf(key, sizeof(key),
		    "the message is not the assertion "
		    "the registration implies: %s",
		    rf_err_msg(RF_ERR_MALFORMED));
		return refuse(v, RF_REFUSE_BAD_MESSAGE, key);
	}
	return rf_connector_limits_take(cfg, limits, q, v);
}

/* The buckets of a request: its connection's, and its connector's. */
static void
limits_keys(const char *tenant, const char *conn, const char *connector,
    char key[256], char ckey[256])
{
	snprintf(key, 256, "c:%s/%s", tenant, conn);
	snprintf(ckey, 256, "k:%s", connector);
}

int
rf_connector_limits_take(const struct rf_config *cfg, struct rf_limits *limits,
    const struct rf_connector_req *q, struct rf_connector_verdict *v)
{
	char key[256], ckey[256];
	uint64_t ms = (uint64_t)q->now * 1000;
	int r;

	if (limits == NULL)
		return 0;
	limits_keys(q->tenant, q->conn, v->connector, key, ckey);
	if ((r = rf_limits_take(limits, key, cfg->conn_rate, cfg->conn_burst,
		 ms, &v->retry_after)) == RF_ERR_STATE)
		return refuse(v, RF_REFUSE_RATE,
		    "the connection's assertion rate is exceeded");
	if (r != 0)
		return r;
	if ((r = rf_limits_take(limits, ckey, cfg->connector_rate,
		 cfg->connector_burst, ms, &v->retry_after)) == 0)
		return 0;
	/* Refused: the connection's token goes back, unspent. */
	rf_limits_give(limits, key, cfg->conn_burst);
	if (r == RF_ERR_STATE)
		return refuse(v, RF_REFUSE_RATE,
		    "the connector's assertion rate is exceeded");
	return r;
}

void
rf_connector_limits_give(const struct rf_config *cfg, struct rf_limits *limits,
    const char *tenant, const char *conn, const char *connector)
{
	char key[256], ckey[256];

	if (limits == NULL)
		return;
	limits_keys(tenant, conn, connector, key, ckey);
	rf_limits_give(limits, key, cfg->conn_burst);
	rf_limits_give(limits, ckey, cfg->connector_burst);
}
