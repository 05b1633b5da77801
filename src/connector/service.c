/*
 * service.c: the connector API behind serve's TLS listener. Decisions and
 * records use one store connection of the service's own, under its lock;
 * signing (rf_keys_sign, thread-safe) runs outside it. This file holds the
 * service's life (new, free, the webhook thread) and the assertion path,
 * from decision to answer; recorder.c writes each answer's records after
 * it, renew.c renews a connector's own certificate (service_int.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "connector/connector.h"
#include "connector/service_int.h"
#include "store/store.h"

/* Refusals recorded one by one in a minute, and of one certificate; the
 * rest are counted in one leaf (audit.h, rf_leaf_quota), as keyd counts
 * its own. */
#define REFUSALS_PER_MIN 120
#define REFUSALS_PER_CERT 60

void
rf_api_answer_clear(struct rf_api_answer *a)
{
	if (a == NULL)
		return;
	free(a->body);
	memset(a, 0, sizeof(*a));
}

void
rf_api_answer_error(
    struct rf_api_answer *a, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:s,s:s}", "error", code, "message", msg);

	a->status = status;
	a->body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

static void *
webhook_main(void *arg)
{
	struct rf_connector_svc *svc = arg;
	struct rf_store *st = NULL;
	struct timespec ts;
	size_t sent;
	int stop = 0;

	(void)pthread_setname_np(pthread_self(), "rf-webhook");
	if (rf_store_open(svc->cfg->db_path, 0, &st) != 0)
		return NULL;
	while (!stop) {
		if (rf_connector_webhook_pass(
			st, svc->cfg->alert_webhook, rf_now(), &sent) != 0)
			rf_err_clear();
		pthread_mutex_lock(&svc->wh_lock);
		if (!svc->wh_stop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 500 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(
			    &svc->wh_cond, &svc->wh_lock, &ts);
		}
		stop = svc->wh_stop;
		pthread_mutex_unlock(&svc->wh_lock);
	}
	rf_store_free(st);
	return NULL;
}

int
rf_connector_svc_new(const struct rf_config *cfg, struct rf_keys *keys,
    struct rf_connector_svc **out)
{
	struct rf_connector_svc *svc;
	int r;

	*out = NULL;
	if ((svc = calloc(1, sizeof(*svc))) == NULL)
		return RF_ERR_ALLOC;
	svc->cfg = cfg;
	svc->keys = keys;
	svc->rndoff = sizeof(svc->rnd); /* drawn at the first assertion */
	rf_leaf_quota_init(&svc->refusals, REFUSALS_PER_MIN, REFUSALS_PER_CERT);
	pthread_mutex_init(&svc->lock, NULL);
	pthread_mutex_init(&svc->qlock, NULL);
	pthread_cond_init(&svc->qcond, NULL);
	pthread_cond_init(&svc->qspace, NULL);
	pthread_mutex_init(&svc->wh_lock, NULL);
	pthread_cond_init(&svc->wh_cond, NULL);
	if ((r = rf_store_open(cfg->db_path, 0, &svc->st)) != 0 ||
	    (r = rf_store_unmap(svc->st)) != 0 ||
	    (r = rf_audit_open(svc->st, &svc->audit)) != 0 ||
	    (r = rf_limits_new(&svc->limits)) != 0 ||
	    (r = rf_connector_cache_new(&svc->cache)) != 0 ||
	    (r = rf_store_open(cfg->db_path, 0, &svc->rst)) != 0 ||
	    (r = rf_store_unmap(svc->rst)) != 0 ||
	    (r = rf_audit_open(svc->rst, &svc->raudit)) != 0 ||
	    (r = rf_seen_new(svc->rst, &svc->seen)) != 0) {
		rf_connector_svc_free(svc);
		return r;
	}
	if ((svc->q = malloc(sizeof(*svc->q) * QUEUE_MAX)) == NULL) {
		rf_connector_svc_free(svc);
		return RF_ERR_ALLOC;
	}
	if (pthread_create(&svc->rec, NULL, svc_recorder_main, svc) != 0) {
		rf_connector_svc_free(svc);
		return rf_err_set(
		    RF_ERR_INTERNAL, "cannot start the assertion recorder");
	}
	svc->rec_running = 1;
	if (cfg->alert_webhook[0] != '\0') {
		if (pthread_create(&svc->wh, NULL, webhook_main, svc) != 0) {
			rf_connector_svc_free(svc);
			return rf_err_set(
			    RF_ERR_INTERNAL, "cannot start the webhook thread");
		}
		svc->wh_running = 1;
	}
	*out = svc;
	return 0;
}

void
rf_connector_svc_free(struct rf_connector_svc *svc)
{
	if (svc == NULL)
		return;
	/* The recorder first: it drains what is queued. */
	if (svc->rec_running) {
		pthread_mutex_lock(&svc->qlock);
		svc->qstop = 1;
		pthread_cond_broadcast(&svc->qcond);
		pthread_mutex_unlock(&svc->qlock);
		pthread_join(svc->rec, NULL);
	}
	if (svc->wh_running) {
		pthread_mutex_lock(&svc->wh_lock);
		svc->wh_stop = 1;
		pthread_cond_signal(&svc->wh_cond);
		pthread_mutex_unlock(&svc->wh_lock);
		pthread_join(svc->wh, NULL);
	}
	for (size_t i = 0; i < KCACHE; i++)
		rf_key_free(svc->kcache[i]);
	rf_ca_free(svc->ca);
	rf_limits_free(svc->limits);
	rf_connector_cache_free(svc->cache);
	rf_audit_free(svc->audit);
	rf_store_free(svc->st);
	rf_seen_free(svc->seen);
	rf_audit_free(svc->raudit);
	rf_store_free(svc->rst);
	free(svc->q);
	OPENSSL_cleanse(svc->rnd, sizeof(svc->rnd));
	pthread_cond_destroy(&svc->qcond);
	pthread_cond_destroy(&svc->qspace);
	pthread_mutex_destroy(&svc->qlock);
	pthread_cond_destroy(&svc->wh_cond);
	pthread_mutex_destroy(&svc->wh_lock);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}

/* A copy of key id for this request (rf_key_free it) if it is loaded
 * already, else *out NULL; under svc->lock. */
static int
key_cached(struct rf_connector_svc *svc, const char *id, struct rf_key **out)
{
	size_t i;

	*out = NULL;
	for (i = 0; i < KCACHE; i++)
		if (svc->kcache[i] != NULL &&
		    strcmp(rf_key_id(svc->kcache[i]), id) == 0)
			return rf_key_dup(svc->kcache[i], out);
	return 0;
}

/* Key id loaded from keyd (a wait: not under svc->lock), kept, and a copy
 * of it for this request. */
static int
key_load(struct rf_connector_svc *svc, const char *id, struct rf_key **out)
{
	struct rf_key *k = NULL;
	int r;

	*out = NULL;
	if ((r = rf_keys_load(svc->keys, id, &k)) != 0)
		return r;
	pthread_mutex_lock(&svc->lock);
	/* Another request may have loaded it meanwhile: kept once. */
	if ((r = key_cached(svc, id, out)) == 0 && *out == NULL &&
	    (r = rf_key_dup(k, out)) == 0) {
		rf_key_free(svc->kcache[svc->knext]);
		svc->kcache[svc->knext] = k;
		svc->knext = (svc->knext + 1) % KCACHE;
		k = NULL;
	}
	pthread_mutex_unlock(&svc->lock);
	rf_key_free(k);
	return r;
}

/* 16 random bytes for a jti into b; under svc->lock. */
static int
jti_bytes(struct rf_connector_svc *svc, uint8_t b[16])
{
	if (svc->rndoff + 16 > sizeof(svc->rnd)) {
		if (RAND_bytes(svc->rnd, sizeof(svc->rnd)) != 1)
			return rf_err_set(
			    RF_ERR_INTERNAL, "no random bytes for a jti");
		svc->rndoff = 0;
	}
	memcpy(b, svc->rnd + svc->rndoff, 16);
	OPENSSL_cleanse(svc->rnd + svc->rndoff, 16);
	svc->rndoff += 16;
	return 0;
}

/* The answer to a refusal, and its record queued. */
static void
refused(struct rf_connector_svc *svc, const struct rf_assert_ask *ask,
    const char *serial, const char *source,
    const struct rf_connector_verdict *v, struct rf_api_answer *a)
{
	struct pending p;

	memset(&p, 0, sizeof(p));
	p.refusal = 1;
	p.ask = *ask;
	snprintf(p.serial, sizeof(p.serial), "%s", serial);
	snprintf(
	    p.source, sizeof(p.source), "%s", source != NULL ? source : "");
	p.v = *v;
	p.now = rf_now();
	svc_enqueue(svc, &p);
	rf_api_answer_error(
	    a, rf_refusal_status(v->why), rf_refusal_code(v->why), v->detail);
	if (v->why == RF_REFUSE_RATE)
		a->retry_after = v->retry_after;
}

/* 1 if s needs no JSON escape: base64url, '.', a GUID, an alg name. */
static int
json_plain(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
			(*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
			*s == '.'))
			return 0;
	return 1;
}

/*
 * The answer's body, written as json_dumps(JSON_COMPACT) writes it (same
 * members, same order) without building a JSON tree per assertion; NULL
 * when a value would need escaping (then the caller builds it).
 */
static char *
answer_ok(const char *jws, int64_t exp, const char *jti, const char *x5t256,
    const char *alg)
{
	size_t n;
	char *b;

	if (!json_plain(jws) || !json_plain(jti) || !json_plain(x5t256) ||
	    !json_plain(alg))
		return NULL;
	n = strlen(jws) + strlen(jti) + strlen(x5t256) + strlen(alg) + 96;
	if ((b = malloc(n)) == NULL)
		return NULL;
	snprintf(b, n,
	    "{\"assertion\":\"%s\",\"expires\":%lld,\"jti\":\"%s\","
	    "\"x5t#S256\":\"%s\",\"alg\":\"%s\"}",
	    jws, (long long)exp, jti, x5t256, alg);
	return b;
}

/*
 * An assertion between its decision and its signature: what the request
 * to keyd points at, and what the answer needs afterwards.
 */
struct rf_assert_pending {
	struct rf_assert_ask ask;
	struct rf_connector_verdict v;
	struct rf_entra_rec reg;
	struct rf_sign_req sr;
	struct rf_actor who;
	struct rf_key *key;
	char *msg;
	char serial[41], source[64];
	char actor[160], src[300];
	int64_t now;
	int proof_taken; /* a token of its certificate's proof bucket */
};

static void
pending_free(struct rf_assert_pending *p)
{
	if (p == NULL)
		return;
	rf_key_free(p->key);
	free(p->msg);
	free(p);
}

/* What keyd's refusal r (cmd_keyd.c) says, from its code in the message. */
enum keyd_refusal { KEYD_NOT_REFUSED, KEYD_BAD_PROOF, KEYD_RATE, KEYD_OTHER };

static enum keyd_refusal
keyd_refusal(int r)
{
	const char *m = rf_err_msg(r);

	if (r != RF_ERR_REFUSED)
		return KEYD_NOT_REFUSED;
	if (strstr(m, ": bad_proof: ") != NULL)
		return KEYD_BAD_PROOF;
	if (strstr(m, ": rate_limited: ") != NULL)
		return KEYD_RATE;
	return KEYD_OTHER;
}

/*
 * The refusal keyd's message m names by its code ("...: under_incident:
 * ..."; cmd_keyd.c, refused), or RF_REFUSE_NONE when it names none: keyd
 * decides again what serve decided, and between the two a connection may
 * have gone under an incident or a binding gone.
 */
static enum rf_refusal
keyd_refusal_why(const char *m)
{
	char pat[48];
	int why;

	for (why = RF_REFUSE_UNKNOWN; why <= RF_REFUSE_KEY; why++) {
		snprintf(pat, sizeof(pat),
		    ": %s: ", rf_refusal_code((enum rf_refusal)why));
		if (strstr(m, pat) != NULL)
			return (enum rf_refusal)why;
	}
	return RF_REFUSE_NONE;
}

void
svc_answer_fail(struct rf_api_answer *a, int r)
{
	/* keyd's refusal of a connector's proof (cmd_keyd.c) is the
	 * caller's to fix: a new proof, made with its own key. */
	enum keyd_refusal k = keyd_refusal(r);
	const char *m = rf_err_msg(r), *p;
	enum rf_refusal why;
	int retry = 1;

	if (k == KEYD_BAD_PROOF)
		rf_api_answer_error(a, 401, "bad_proof", m);
	/* keyd's own buckets, which a restart of serve does not refill:
	 * the connector waits as it would for serve's. */
	else if (k == KEYD_RATE) {
		if ((p = strrchr(m, '(')) == NULL ||
		    sscanf(p, RF_RETRY_AFTER_FMT, &retry) != 1)
			retry = 1;
		rf_api_answer_error(a, 429, "rate_limited", m);
		a->retry_after = retry > 0 ? retry : 1;
	} else if (k == KEYD_OTHER &&
	    (why = keyd_refusal_why(m)) != RF_REFUSE_NONE)
		rf_api_answer_error(
		    a, rf_refusal_status(why), rf_refusal_code(why), m);
	else if (k == KEYD_OTHER)
		rf_api_answer_error(a, 403, "refused", m);
	else
		rf_api_answer_error(a, 500, "internal", m);
}

/*
 * 1 when a is answered: connector_proof is required and the request
 * carries no proof, or its proof's time is too far from the clock. keyd
 * refuses both anyway; this says so before a rate or renewal token is
 * spent on it (a connector host whose clock is off would spend its day's
 * renewals on refusals).
 */
int
svc_proof_missing(const struct rf_connector_svc *svc, const char *proof,
    struct rf_api_answer *a)
{
	struct rf_proof pf;
	char msg[200];
	int64_t now;

	if (proof[0] == '\0') {
		if (strcmp(svc->cfg->connector_proof, "required") != 0)
			return 0;
		rf_api_answer_error(a, 401, "proof_required",
		    "connector_proof is required here: send \"proof\", "
		    "signed with the connector's key (ringfence assert does; "
		    "docs/connectors.md)");
		return 1;
	}
	now = rf_now();
	if (rf_proof_parse(proof, strlen(proof), &pf) != 0 ||
	    (pf.time >= now - RF_PROOF_SKEW &&
		pf.time <= now + RF_PROOF_SKEW)) {
		rf_err_clear(); /* parsed when the body was */
		return 0;
	}
	snprintf(msg, sizeof(msg),
	    "the proof's time is %lld s from the server's clock (at most "
	    "%d): set the connector host's clock, and make a new one",
	    (long long)(pf.time - now), RF_PROOF_SKEW);
	rf_api_answer_error(a, 401, "bad_proof", msg);
	return 1;
}

/*
 * Proofs have a bucket per client certificate ("p:" its serial), sized as
 * a connector's assertions are: a request with a proof takes a token from
 * it, and gets it back unless keyd finds the proof bad. A request whose
 * proof is bad gives its rate tokens back (tokens_back: nothing was signed
 * for it), so this bucket is what bounds how often a certificate can make
 * keyd check a proof that does not hold.
 */
void
svc_proof_key(const char *serial, char key[64])
{
	snprintf(key, 64, "p:%.60s", serial);
}

int
svc_proof_token(struct rf_connector_svc *svc, const char *serial, int64_t now,
    int *retry_after)
{
	char key[64];

	svc_proof_key(serial, key);
	return rf_limits_take(svc->limits, key, svc->cfg->connector_rate,
	    svc->cfg->connector_burst, (uint64_t)now * 1000, retry_after);
}

void
svc_proof_token_back(struct rf_connector_svc *svc, const char *serial)
{
	char key[64];

	svc_proof_key(serial, key);
	rf_limits_give(svc->limits, key, svc->cfg->connector_burst);
}

int
svc_bad_proof(int r)
{
	return keyd_refusal(r) == KEYD_BAD_PROOF;
}

static int
proof_take(struct rf_connector_svc *svc, struct rf_assert_pending *p)
{
	int r;

	if (p->ask.proof[0] == '\0')
		return 0;
	if ((r = svc_proof_token(svc, p->serial, p->now, &p->v.retry_after)) ==
	    0)
		p->proof_taken = 1;
	return r;
}

static void
proof_give(struct rf_connector_svc *svc, struct rf_assert_pending *p)
{
	if (!p->proof_taken)
		return;
	svc_proof_token_back(svc, p->serial);
	p->proof_taken = 0;
}

/*
 * Nothing is signed for p: the rate tokens its decision took go back, and
 * its proof's token unless the proof was found bad.
 */
static void
tokens_back(
    struct rf_connector_svc *svc, struct rf_assert_pending *p, int bad_proof)
{
	rf_connector_limits_give(
	    svc->cfg, svc->limits, p->ask.tenant, p->ask.conn, p->v.connector);
	if (!bad_proof)
		proof_give(svc, p);
}

/*
 * Entra ID accepts only RSA keys: a registered connection whose current
 * credential has another key (issued before the registration) gets
 * no_credential, recorded as every refusal is, not an internal error
 * from keyd. 1 when p is answered so (and freed).
 */
static int
key_unfit(struct rf_connector_svc *svc, struct rf_assert_pending *p,
    struct rf_api_answer *a)
{
	enum rf_key_alg alg = rf_key_alg(p->key);

	if (rf_key_alg_rsa(alg))
		return 0;
	tokens_back(svc, p, 0);
	p->v.why = RF_REFUSE_NO_CRED;
	snprintf(p->v.detail, sizeof(p->v.detail),
	    "the connection's credential has an %s key and Entra ID accepts "
	    "only RSA: issue it an RSA one ('ringfence issue ... --keygen "
	    "rsa-2048')",
	    rf_key_alg_name(alg));
	refused(svc, &p->ask, p->serial, p->source, &p->v, a);
	pending_free(p);
	return 1;
}

int
svc_who_asks(struct rf_connector_svc *svc, const char *cert_serial, int64_t now,
    struct rf_connector_verdict *v, struct rf_api_answer *a)
{
	struct rf_connector_req q;
	int r;

	memset(&q, 0, sizeof(q));
	memset(v, 0, sizeof(*v));
	q.cert_serial = cert_serial;
	q.now = now;
	/* Only who_asks matters here: decide() stops at the binding. */
	if ((r = rf_connector_decide(svc->cfg, svc->st, NULL, &q, v)) != 0)
		return r;
	if (v->why != RF_REFUSE_UNKNOWN && v->why != RF_REFUSE_REVOKED)
		return 0;
	rf_api_answer_error(
	    a, rf_refusal_status(v->why), rf_refusal_code(v->why), v->detail);
	return 1;
}

/*
 * A request without the proof required (a answers it so): if its
 * certificate is not a connector's, or is revoked, that is the answer,
 * recorded as every such refusal is. Not when the lock is another's and
 * nowait: the proof's answer then.
 */
static void
proof_missing_who(struct rf_connector_svc *svc, struct rf_assert_pending *p,
    int nowait, struct rf_api_answer *a)
{
	struct rf_api_answer b;
	int r;

	if (!nowait)
		pthread_mutex_lock(&svc->lock);
	else if (pthread_mutex_trylock(&svc->lock) != 0)
		return;
	memset(&b, 0, sizeof(b));
	r = svc_who_asks(svc, p->serial, p->now, &p->v, &b);
	pthread_mutex_unlock(&svc->lock);
	rf_api_answer_clear(&b);
	if (r != 1) {
		rf_err_clear();
		return;
	}
	rf_api_answer_clear(a);
	refused(svc, &p->ask, p->serial, p->source, &p->v, a);
}

int
rf_connector_svc_assert_begin(struct rf_connector_svc *svc,
    const char *cert_serial, const char *source, const uint8_t *body,
    size_t len, int nowait, struct rf_api_answer *a,
    struct rf_assert_pending **out)
{
	struct rf_assert_pending *p;
	struct rf_connector_req q;
	uint8_t rnd[16];
	char jti[37];
	int r;

	*out = NULL;
	memset(a, 0, sizeof(*a));
	rf_err_clear();
	if (cert_serial == NULL || *cert_serial == '\0') {
		rf_api_answer_error(a, 401, "client_certificate_required",
		    "present a connector's TLS client certificate");
		return 0;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		svc_answer_fail(a, rf_err_set(RF_ERR_ALLOC, "out of memory"));
		return 0;
	}
	p->now = rf_now();
	if ((r = rf_connector_parse_assert(body, len, &p->ask)) != 0) {
		rf_api_answer_error(a, r == RF_ERR_TOO_LARGE ? 413 : 400,
		    "bad_request", rf_err_msg(r));
		pending_free(p);
		return 0;
	}
	snprintf(p->serial, sizeof(p->serial), "%s", cert_serial);
	snprintf(
	    p->source, sizeof(p->source), "%s", source != NULL ? source : "");
	if (svc_proof_missing(svc, p->ask.proof, a)) {
		proof_missing_who(svc, p, nowait, a);
		pending_free(p);
		return 0;
	}
	memset(&q, 0, sizeof(q));
	q.cert_serial = cert_serial;
	q.tenant = p->ask.tenant;
	q.conn = p->ask.conn;
	q.now = p->now;
	if (!nowait)
		pthread_mutex_lock(&svc->lock);
	else if (pthread_mutex_trylock(&svc->lock) != 0) {
		/* Held (a renewal signs under it): the pool's, undecided. */
		pending_free(p);
		return 1;
	}
	/* The decision and this service's limits, then the message the
	 * registration implies. The custody process decides again on exactly
	 * that message (keyd's policy): checking here what was just built
	 * would add nothing. */
	if ((r = rf_connector_decide_cached(svc->cache, -1, svc->cfg, svc->st,
		 svc->limits, &q, &p->v, &p->reg)) != 0)
		goto fail;
	if (p->v.why != RF_REFUSE_NONE) {
		refused(svc, &p->ask, cert_serial, source, &p->v, a);
		pthread_mutex_unlock(&svc->lock);
		pending_free(p);
		return 0;
	}
	/* A key not loaded yet is loaded from keyd, a wait: finish's. */
	if ((r = proof_take(svc, p)) == RF_ERR_STATE) {
		tokens_back(svc, p, 0);
		p->v.why = RF_REFUSE_RATE;
		snprintf(p->v.detail, sizeof(p->v.detail),
		    "this certificate's requests carried too many proofs that "
		    "do not hold");
		refused(svc, &p->ask, cert_serial, source, &p->v, a);
		pthread_mutex_unlock(&svc->lock);
		pending_free(p);
		return 0;
	}
	if (r != 0 || (r = key_cached(svc, p->v.key_id, &p->key)) != 0 ||
	    (r = jti_bytes(svc, rnd)) != 0) {
		tokens_back(svc, p, 0);
		goto fail;
	}
	pthread_mutex_unlock(&svc->lock);
	if (p->key != NULL && key_unfit(svc, p, a))
		return 0;
	/* The message needs nothing of the lock's. */
	rf_jwt_guid_of(rnd, jti);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if ((r = rf_jwt_build(&p->reg, p->v.x5t256, jti, p->now,
		 svc->cfg->assertion_lifetime, &p->msg)) != 0) {
		tokens_back(svc, p, 0);
		svc_answer_fail(a, r);
		pending_free(p);
		return 0;
	}
	snprintf(p->v.jti, sizeof(p->v.jti), "%s", jti);

	/* The signature: its audit leaf (what assertion, ref jti) names the
	 * connector's certificate, the connection and the source. */
	snprintf(p->actor, sizeof(p->actor), "connector %s (certificate %s)",
	    p->v.connector, p->serial);
	snprintf(p->src, sizeof(p->src), "https %.64s connection %s/%s",
	    source != NULL ? source : "-", p->ask.tenant, p->ask.conn);
	p->who.actor = p->actor;
	p->who.source = p->src;
	p->sr.msg = (const uint8_t *)p->msg;
	p->sr.msglen = strlen(p->msg);
	p->sr.scheme = p->v.scheme;
	p->sr.what = "assertion";
	p->sr.ref = p->v.jti;
	p->sr.tenant = p->ask.tenant;
	/* The custody process decides again on these (keyd's policy). */
	p->sr.conn = p->ask.conn;
	p->sr.on_behalf = p->serial;
	if (p->ask.proof[0] != '\0') {
		p->sr.proof = (const uint8_t *)p->ask.proof;
		p->sr.prooflen = strlen(p->ask.proof);
	}
	*out = p;
	return 0;
fail:
	pthread_mutex_unlock(&svc->lock);
	svc_answer_fail(a, r);
	pending_free(p);
	return 0;
}

void
rf_connector_assert_request(const struct rf_assert_pending *p,
    const struct rf_key **key, const struct rf_sign_req **sr,
    const struct rf_actor **who)
{
	*key = p->key;
	*sr = &p->sr;
	*who = &p->who;
}

void
rf_connector_svc_assert_end(struct rf_connector_svc *svc,
    struct rf_assert_pending *p, int r, const struct rf_sig *sig,
    struct rf_api_answer *a)
{
	struct pending pend;
	char *jws = NULL;
	int64_t exp;
	json_t *j;

	memset(a, 0, sizeof(*a));
	/* Nothing signed: keyd refused it, or it failed. Its rate tokens go
	 * back unless keyd's own buckets refused it (the client waits as it
	 * would for serve's); its proof's token unless the proof is bad. */
	if (r == 0 || keyd_refusal(r) == KEYD_RATE)
		proof_give(svc, p);
	else
		tokens_back(svc, p, keyd_refusal(r) == KEYD_BAD_PROOF);
	/* A refusal of keyd's own with a code (the connection went under an
	 * incident since serve decided, say): answered, recorded and alerted
	 * as serve's own refusal of it would be. */
	if (keyd_refusal(r) == KEYD_OTHER &&
	    (p->v.why = keyd_refusal_why(rf_err_msg(r))) != RF_REFUSE_NONE) {
		snprintf(p->v.detail, sizeof(p->v.detail), "%s", rf_err_msg(r));
		refused(svc, &p->ask, p->serial, p->source, &p->v, a);
		pending_free(p);
		return;
	}
	if (r != 0 ||
	    (r = rf_jwt_join(p->msg, sig->sig, sig->len, &jws)) != 0) {
		svc_answer_fail(a, r);
		pending_free(p);
		return;
	}
	exp = p->now + svc->cfg->assertion_lifetime;
	/* Its leaf is durable already (keyd); the rest is queued. */
	memset(&pend, 0, sizeof(pend));
	pend.ask = p->ask;
	memcpy(pend.serial, p->serial, sizeof(pend.serial));
	memcpy(pend.source, p->source, sizeof(pend.source));
	pend.v = p->v;
	pend.now = p->now;
	pend.exp = exp;
	svc_enqueue(svc, &pend);
	a->status = 200;
	if ((a->body = answer_ok(
		 jws, exp, p->v.jti, p->v.x5t256, p->reg.jwt_alg)) == NULL) {
		j = json_pack("{s:s,s:I,s:s,s:s,s:s}", "assertion", jws,
		    "expires", (json_int_t)exp, "jti", p->v.jti, "x5t#S256",
		    p->v.x5t256, "alg", p->reg.jwt_alg);
		a->body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
	}
	free(jws);
	pending_free(p);
}

void
rf_connector_svc_assert_finish(struct rf_connector_svc *svc,
    struct rf_assert_pending *p, struct rf_api_answer *a)
{
	struct rf_sig sig = {NULL, 0};
	int r = 0;

	memset(a, 0, sizeof(*a)); /* a refusal sets only what it says */
	if (p->key == NULL) {
		if ((r = key_load(svc, p->v.key_id, &p->key)) == 0 &&
		    key_unfit(svc, p, a))
			return;
	}
	if (r == 0)
		r = rf_keys_sign(svc->keys, p->key, &p->sr, 1, &p->who, &sig);
	rf_connector_svc_assert_end(svc, p, r, &sig, a);
	rf_sig_clear(&sig);
}

void
rf_connector_assert_pending_free(struct rf_assert_pending *p)
{
	pending_free(p);
}

void
rf_connector_svc_assert(struct rf_connector_svc *svc, const char *cert_serial,
    const char *source, const uint8_t *body, size_t len,
    struct rf_api_answer *a)
{
	struct rf_assert_pending *p;

	(void)rf_connector_svc_assert_begin(
	    svc, cert_serial, source, body, len, 0, a, &p);
	if (p != NULL)
		rf_connector_svc_assert_finish(svc, p, a);
}
