/*
 * service.c: the connector API behind serve's TLS listener. Decisions and
 * records use one store connection of the service's own, under its lock;
 * signing (rf_keys_sign, thread-safe) runs outside it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "connector/connector.h"
#include "store/store.h"
#include "store/store_incident.h"

#define KCACHE 64
#define QUEUE_MAX 65536
/* The recorder gathers for RECORD_WAIT_MS after the first of a batch (or
 * until RECORD_BATCH wait): one transaction, one durable commit and one
 * write of each baseline and page for many assertions. Records follow the
 * answers anyway: the wait is no assertion's. 10 ms, not 50: a longer
 * batch holds the store's one write lock longer, and keyd's audit append
 * (the leaf before each signature) waits behind it (bench/assert.sh, 16
 * clients, back to back: 1,550 assertions/s with 10 ms, 1,222-1,374 with
 * 50). */
#define RECORD_BATCH 512
#define RECORD_WAIT_MS 10
/* While refusals are counted, how often the recorder looks whether their
 * minute is over. */
#define ROLL_WAIT_MS 5000
/* Random bytes drawn at once for this many jti (RAND_bytes per assertion
 * was 4 % of serve's CPU). */
#define JTI_BATCH 64
/* Refusals recorded one by one in a minute; the rest are counted in one
 * leaf (audit.h, rf_leaf_quota), as keyd counts its own. */
#define REFUSALS_PER_MIN 60
/* Credentials whose first assertion is recorded (conn_reestablished has
 * their row), most recent first: the recorder skips the insert for them. */
#define REEST_N 32

/*
 * What the recorder writes after the answer: an assertion made (its row,
 * the detectors, alerts, re-establishment evidence) or a refusal (its
 * audit leaf naming connection, connector, source and jti; for an
 * incident, an alert). Recording never delays a signature.
 */
struct pending {
	int refusal;
	struct rf_assert_ask ask;
	char serial[41];
	char source[64];
	struct rf_connector_verdict v;
	int64_t now, exp;
};

static void *recorder_main(void *arg);

struct rf_connector_svc {
	const struct rf_config *cfg;
	struct rf_keys *keys; /* borrowed */
	pthread_mutex_t lock;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_ca *ca; /* for renewals, opened on first use */
	struct rf_limits *limits;
	struct rf_connector_cache *cache; /* decisions' facts (under lock) */
	/* Connection keys loaded from the token, by id (under lock): a
	 * load reads and checks the public key, which costs more than the
	 * signature for RSA. Only the current key of a connection is asked
	 * for; a key disabled by an incident fails in the token. */
	struct rf_key *kcache[KCACHE];
	size_t knext;
	/* The next jti's random bytes (under lock): rnd[rndoff..) unused,
	 * each taken wiped. */
	uint8_t rnd[16 * JTI_BATCH];
	size_t rndoff;
	/* The recorder: a queue, its thread and store connection. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond, qspace;
	struct pending *q;
	size_t nq;
	int qstop, rec_running;
	pthread_t rec;
	struct rf_store *rst;
	struct rf_audit *raudit;
	struct rf_seen *seen; /* the recorder's baselines, a batch at a time */
	struct rf_leaf_quota refusals; /* the recorder's */
	/* The recorder's: (tenant, conn, serial) known in conn_reestablished,
	 * whose rows nothing deletes; added once their batch commits. */
	struct reest_key {
		char tenant[128], conn[64], serial[41];
	} reest[REEST_N];
	size_t nreest;
	/* Webhook delivery: its own thread and store connection. */
	pthread_t wh;
	int wh_running, wh_stop;
	pthread_mutex_t wh_lock;
	pthread_cond_t wh_cond;
};

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
	rf_leaf_quota_init(&svc->refusals, REFUSALS_PER_MIN);
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
	if (pthread_create(&svc->rec, NULL, recorder_main, svc) != 0) {
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

/* The address without its port ("127.0.0.1:5000" -> "127.0.0.1"). */
static void
source_addr(const char *source, char out[64])
{
	const char *c;

	snprintf(out, 64, "%s", source != NULL ? source : "");
	if ((c = strrchr(out, ':')) != NULL && strchr(out, ':') == c)
		out[c - out] = '\0';
}

static void
enqueue(struct rf_connector_svc *svc, const struct pending *p)
{
	pthread_mutex_lock(&svc->qlock);
	while (svc->nq >= QUEUE_MAX && !svc->qstop)
		pthread_cond_wait(&svc->qspace, &svc->qlock);
	if (svc->nq < QUEUE_MAX)
		svc->q[svc->nq++] = *p;
	/* The recorder sleeps until the first, gathers until a batch. */
	if (svc->nq == 1 || svc->nq == RECORD_BATCH)
		pthread_cond_signal(&svc->qcond);
	pthread_mutex_unlock(&svc->qlock);
}

/* The count of the refusals of the minute before not recorded one by
 * one, once that minute is over (force: now, as serve stops). */
static int
refusals_roll(struct rf_connector_svc *svc, struct rf_audit *audit, int64_t now,
    int force)
{
	struct rf_audit_event ev;
	char detail[512];

	if (!rf_leaf_quota_roll(
		&svc->refusals, now, force, detail, sizeof(detail)))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.type = "refuse";
	ev.what = "assertion";
	ev.source = "serve";
	ev.detail = detail;
	ev.time = now;
	return rf_audit_append(audit, &ev, 1, NULL);
}

/*
 * A refusal's leaf (and alert), in the recorder's transaction; past the
 * minute's budget, counted instead: a refused request costs its sender
 * nothing, and a revoked connector certificate is refused forever.
 */
static int
refusal_record(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, struct rf_seen *seen, const struct pending *p)
{
	const struct rf_connector_verdict *v = &p->v;
	struct rf_audit_event ev;
	struct rf_connector_event de;
	struct rf_alert_rec al[RF_ALERTS_MAX];
	char detail[768], addr[64];
	size_t n = 0;
	int r;

	if ((r = refusals_roll(svc, audit, p->now, 0)) != 0)
		return r;
	snprintf(addr, sizeof(addr), "certificate %.40s", p->serial);
	if (!rf_leaf_quota_take(&svc->refusals, addr))
		goto alert;
	snprintf(detail, sizeof(detail),
	    "%s: connection %s/%s connector %s (certificate %.40s) source "
	    "%.64s jti %s: %s",
	    rf_refusal_code(v->why), p->ask.tenant, p->ask.conn,
	    v->connector[0] ? v->connector : "-", p->serial,
	    p->source[0] ? p->source : "-", v->jti[0] ? v->jti : "-",
	    v->detail);
	memset(&ev, 0, sizeof(ev));
	ev.type = "refuse";
	ev.tenant = p->ask.tenant;
	ev.what = "assertion";
	ev.ref = v->jti[0] ? v->jti : NULL;
	ev.actor = p->serial;
	ev.source = p->source;
	ev.detail = detail;
	ev.time = p->now;
	if ((r = rf_audit_append(audit, &ev, 1, NULL)) != 0)
		return r;
alert: /* one alert a connection an hour (detect.c) */
	if (v->why != RF_REFUSE_INCIDENT || !svc->cfg->detectors)
		return 0;
	source_addr(p->source, addr);
	memset(&de, 0, sizeof(de));
	de.tenant = p->ask.tenant;
	de.conn = p->ask.conn;
	de.connector = v->connector;
	de.source = addr;
	de.now = p->now;
	de.refused_incident = 1;
	if ((r = rf_connector_detect_in(svc->cfg, seen, &de, al, &n)) != 0)
		return r;
	return rf_connector_alerts_raise(st, audit, al, n);
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
	enqueue(svc, &p);
	rf_api_answer_error(
	    a, rf_refusal_status(v->why), rf_refusal_code(v->why), v->detail);
	if (v->why == RF_REFUSE_RATE)
		a->retry_after = v->retry_after;
}

/* 1 if the first assertion with p's credential is recorded already. */
static int
reest_known(const struct rf_connector_svc *svc, const struct pending *p)
{
	const struct reest_key *k;
	size_t i;

	for (i = 0; i < svc->nreest; i++) {
		k = &svc->reest[i];
		if (strcmp(k->serial, p->v.cred_serial) == 0 &&
		    strcmp(k->conn, p->ask.conn) == 0 &&
		    strcmp(k->tenant, p->ask.tenant) == 0)
			return 1;
	}
	return 0;
}

/* After q[0..n) committed: their credentials' rows are there. */
static void
reest_learn(struct rf_connector_svc *svc, const struct pending *q, size_t n)
{
	struct reest_key *k;
	size_t i;

	for (i = 0; i < n; i++) {
		if (q[i].refusal || q[i].v.cred_serial[0] == '\0' ||
		    reest_known(svc, &q[i]) ||
		    strlen(q[i].ask.tenant) >= sizeof(k->tenant) ||
		    strlen(q[i].ask.conn) >= sizeof(k->conn) ||
		    strlen(q[i].v.cred_serial) >= sizeof(k->serial))
			continue;
		/* The newest first, the oldest forgotten. */
		if (svc->nreest < REEST_N)
			svc->nreest++;
		memmove(&svc->reest[1], &svc->reest[0],
		    (svc->nreest - 1) * sizeof(svc->reest[0]));
		k = &svc->reest[0];
		memcpy(k->tenant, q[i].ask.tenant, strlen(q[i].ask.tenant) + 1);
		memcpy(k->conn, q[i].ask.conn, strlen(q[i].ask.conn) + 1);
		memcpy(k->serial, q[i].v.cred_serial,
		    strlen(q[i].v.cred_serial) + 1);
	}
}

/* After signing: the assertion's record, detectors, alerts, evidence. */
static int
record(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, struct rf_seen *seen, const struct pending *p)
{
	const struct rf_assert_ask *ask = &p->ask;
	const struct rf_connector_verdict *v = &p->v;
	const char *serial = p->serial, *source = p->source;
	int64_t now = p->now, exp = p->exp;
	struct rf_assertion_rec ar;
	struct rf_connector_event de;
	struct rf_alert_rec al[RF_ALERTS_MAX];
	struct rf_audit_event ev;
	char addr[64], detail[256];
	size_t n = 0, moved;
	int r, added;

	source_addr(source, addr);
	memset(&ar, 0, sizeof(ar));
	snprintf(ar.jti, sizeof(ar.jti), "%s", v->jti);
	ar.time = now;
	ar.exp = exp;
	snprintf(ar.tenant, sizeof(ar.tenant), "%s", ask->tenant);
	snprintf(ar.conn, sizeof(ar.conn), "%s", ask->conn);
	snprintf(ar.connector, sizeof(ar.connector), "%s", v->connector);
	snprintf(
	    ar.connector_serial, sizeof(ar.connector_serial), "%s", serial);
	snprintf(ar.cert_serial, sizeof(ar.cert_serial), "%s", v->cred_serial);
	snprintf(ar.key_id, sizeof(ar.key_id), "%s", v->key_id);
	snprintf(ar.x5t256, sizeof(ar.x5t256), "%s", v->x5t256);
	snprintf(ar.source, sizeof(ar.source), "%s", addr);
	if ((r = rf_store_assertion_add(st, &ar)) != 0)
		goto out;
	if (svc->cfg->detectors) {
		memset(&de, 0, sizeof(de));
		de.tenant = ask->tenant;
		de.conn = ask->conn;
		de.connector = v->connector;
		de.cert_serial = serial;
		de.source = addr;
		de.asked_x5t256 = ask->x5t256;
		de.cred_x5t256 = v->x5t256;
		de.jti = v->jti;
		de.now = now;
		if ((r = rf_connector_detect_in(svc->cfg, seen, &de, al, &n)) !=
			0 ||
		    (r = rf_connector_alerts_raise(st, audit, al, n)) != 0)
			goto out;
	}
	/* The first assertion with a credential: after containment, the
	 * evidence that the connection works again, by this connector (the
	 * incident module moves its items). Known already: nothing to add. */
	if (reest_known(svc, p))
		return 0;
	if ((r = rf_store_reestablished_add(st, ask->tenant, ask->conn,
		 v->cred_serial, v->connector, now, &added)) != 0)
		goto out;
	if (added) {
		if ((r = rf_store_item_reestablish_by_connector(
			 st, v->cred_serial, v->connector, now, &moved)) != 0)
			goto out;
		if (moved > 0) {
			snprintf(detail, sizeof(detail),
			    "first assertion with the new credential, by "
			    "connector %s",
			    v->connector);
			memset(&ev, 0, sizeof(ev));
			ev.type = "evidence";
			ev.tenant = ask->tenant;
			ev.ref = v->cred_serial;
			ev.actor = v->connector;
			ev.detail = detail;
			if ((r = rf_audit_append(audit, &ev, 1, NULL)) != 0)
				goto out;
		}
	}
	return 0;
out:
	return r;
}

static int
record_one(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, const struct pending *p)
{
	return p->refusal ? refusal_record(svc, st, audit, svc->seen, p)
			  : record(svc, st, audit, svc->seen, p);
}

/*
 * Write one batch in one transaction, the baselines its detectors changed
 * once each at the end (rf_seen_flush); item by item if that fails.
 */
static void
record_batch(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, const struct pending *q, size_t n)
{
	size_t i;
	int r = 0;

	if (rf_store_begin(st) == 0) {
		for (i = 0; i < n && r == 0; i++)
			r = record_one(svc, st, audit, &q[i]);
		if (r == 0)
			r = rf_seen_flush(svc->seen);
		if (r == 0 && rf_store_commit(st) == 0) {
			reest_learn(svc, q, n);
			return;
		}
		rf_seen_drop(svc->seen);
		if (r != 0)
			rf_store_rollback(st);
	}
	for (i = 0; i < n && n > 1; i++) {
		if (rf_store_begin(st) != 0)
			break;
		if ((r = record_one(svc, st, audit, &q[i])) == 0)
			r = rf_seen_flush(svc->seen);
		if (r == 0)
			r = rf_store_commit(st);
		else
			rf_store_rollback(st);
		if (r == 0)
			reest_learn(svc, &q[i], 1);
		rf_seen_drop(svc->seen);
	}
	rf_err_clear();
}

/* The count of refusals not recorded one by one, in a transaction of its
 * own: once its minute is over, or now (force). */
static void
refusals_flush(struct rf_connector_svc *svc, int force)
{
	if (svc->refusals.quiet == 0 || rf_store_begin(svc->rst) != 0) {
		rf_err_clear();
		return;
	}
	if (refusals_roll(svc, svc->raudit, rf_now(), force) != 0 ||
	    rf_store_commit(svc->rst) != 0)
		rf_store_rollback(svc->rst);
	rf_err_clear();
}

/* ts: ms from now, for pthread_cond_timedwait. */
static void
deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *
recorder_main(void *arg)
{
	struct rf_connector_svc *svc = arg;
	struct pending *batch;
	struct timespec ts;
	size_t n;

	(void)pthread_setname_np(pthread_self(), "rf-recorder");
	if ((batch = malloc(sizeof(*batch) * QUEUE_MAX)) == NULL)
		return NULL;
	for (;;) {
		pthread_mutex_lock(&svc->qlock);
		while (svc->nq == 0 && !svc->qstop) {
			if (svc->refusals.quiet == 0) {
				pthread_cond_wait(&svc->qcond, &svc->qlock);
				continue;
			}
			/* A count is written once its minute is over, whether
			 * another refusal comes or not. */
			deadline_in(&ts, ROLL_WAIT_MS);
			if (pthread_cond_timedwait(
				&svc->qcond, &svc->qlock, &ts) != 0 &&
			    svc->nq == 0 && !svc->qstop) {
				pthread_mutex_unlock(&svc->qlock);
				refusals_flush(svc, 0);
				pthread_mutex_lock(&svc->qlock);
			}
		}
		deadline_in(&ts, RECORD_WAIT_MS);
		while (svc->nq < RECORD_BATCH && !svc->qstop &&
		    pthread_cond_timedwait(&svc->qcond, &svc->qlock, &ts) == 0)
			;
		if (svc->nq == 0 && svc->qstop) {
			pthread_mutex_unlock(&svc->qlock);
			break;
		}
		n = svc->nq;
		memcpy(batch, svc->q, n * sizeof(*batch));
		svc->nq = 0;
		pthread_cond_broadcast(&svc->qspace);
		pthread_mutex_unlock(&svc->qlock);
		record_batch(svc, svc->rst, svc->raudit, batch, n);
	}
	refusals_flush(svc, 1); /* serve stops: the count now */
	free(batch);
	return NULL;
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

static void
answer_fail(struct rf_api_answer *a, int r)
{
	/* keyd's refusal of a connector's proof (cmd_keyd.c) is the
	 * caller's to fix: a new proof, made with its own key. */
	const char *m = rf_err_msg(r), *p;
	int retry = 1;

	if (r == RF_ERR_REFUSED && strstr(m, ": bad_proof: "))
		rf_api_answer_error(a, 401, "bad_proof", m);
	/* keyd's own buckets, which a restart of serve does not refill:
	 * the connector waits as it would for serve's. */
	else if (r == RF_ERR_REFUSED && strstr(m, ": rate_limited: ")) {
		if ((p = strrchr(m, '(')) == NULL ||
		    sscanf(p, RF_RETRY_AFTER_FMT, &retry) != 1)
			retry = 1;
		rf_api_answer_error(a, 429, "rate_limited", m);
		a->retry_after = retry > 0 ? retry : 1;
	} else if (r == RF_ERR_REFUSED)
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
static int
proof_missing(const struct rf_connector_svc *svc, const char *proof,
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

	if (alg == RF_KEY_RSA_2048 || alg == RF_KEY_RSA_3072)
		return 0;
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
		answer_fail(a, rf_err_set(RF_ERR_ALLOC, "out of memory"));
		return 0;
	}
	p->now = rf_now();
	if ((r = rf_connector_parse_assert(body, len, &p->ask)) != 0) {
		rf_api_answer_error(a, r == RF_ERR_TOO_LARGE ? 413 : 400,
		    "bad_request", rf_err_msg(r));
		pending_free(p);
		return 0;
	}
	if (proof_missing(svc, p->ask.proof, a)) {
		pending_free(p);
		return 0;
	}
	snprintf(p->serial, sizeof(p->serial), "%s", cert_serial);
	snprintf(
	    p->source, sizeof(p->source), "%s", source != NULL ? source : "");
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
	if ((r = key_cached(svc, p->v.key_id, &p->key)) != 0 ||
	    (r = jti_bytes(svc, rnd)) != 0)
		goto fail;
	pthread_mutex_unlock(&svc->lock);
	if (p->key != NULL && key_unfit(svc, p, a))
		return 0;
	/* The message needs nothing of the lock's. */
	rf_jwt_guid_of(rnd, jti);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if ((r = rf_jwt_build(&p->reg, p->v.x5t256, jti, p->now,
		 svc->cfg->assertion_lifetime, &p->msg)) != 0) {
		answer_fail(a, r);
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
	answer_fail(a, r);
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
	if (r != 0 ||
	    (r = rf_jwt_join(p->msg, sig->sig, sig->len, &jws)) != 0) {
		answer_fail(a, r);
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
	enqueue(svc, &pend);
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

struct renew_link {
	struct rf_store *st;
	const char *name;
};

static int
renew_hook(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct renew_link *l = arg;

	(void)i;
	(void)key_id;
	return rf_store_connector_cert_add(l->st, serial, l->name, rf_now());
}

/*
 * Each renewal is a certificate more that the connector's key can use
 * until it expires: a few a day (connector_renewals), not one a request.
 * 1 when a is answered: the day's are used up (429), or the bucket could
 * not be kept. The buckets are serve's memory: a restart refills them.
 */
static int
renewals_used(struct rf_connector_svc *svc, const char *connector, int64_t now,
    struct rf_api_answer *a)
{
	int r, retry;

	if ((r = rf_limits_renewal(
		 svc->limits, svc->cfg, connector, now, &retry)) == 0)
		return 0;
	if (r != RF_ERR_STATE) {
		answer_fail(a, r);
		return 1;
	}
	rf_err_clear();
	rf_api_answer_error(a, 429, "rate_limited",
	    "the connector's renewals a day (connector_renewals) are used up");
	a->retry_after = retry;
	return 1;
}

void
rf_connector_svc_renew(struct rf_connector_svc *svc, const char *cert_serial,
    const char *source, const uint8_t *body, size_t len,
    struct rf_api_answer *a)
{
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	struct rf_issue_req req;
	struct rf_issued is;
	struct renew_link link;
	struct rf_actor who;
	char *csr = NULL, tenant[128], actor[160], proof[RF_PROOF_MAX + 1];
	size_t csrlen;
	json_t *j;
	int r;

	memset(a, 0, sizeof(*a));
	memset(&is, 0, sizeof(is));
	rf_err_clear();
	if (cert_serial == NULL || *cert_serial == '\0') {
		rf_api_answer_error(a, 401, "client_certificate_required",
		    "present a connector's TLS client certificate");
		return;
	}
	if ((r = rf_connector_parse_renew(body, len, &csr, &csrlen, proof)) !=
	    0) {
		rf_api_answer_error(a, r == RF_ERR_TOO_LARGE ? 413 : 400,
		    "bad_request", rf_err_msg(r));
		return;
	}
	if (proof_missing(svc, proof, a)) {
		free(csr);
		return;
	}
	pthread_mutex_lock(&svc->lock);
	memset(&q, 0, sizeof(q));
	q.cert_serial = cert_serial;
	q.now = rf_now();
	memset(&v, 0, sizeof(v));
	/* Only who_asks matters here: decide() stops at the binding. */
	if ((r = rf_connector_decide(svc->cfg, svc->st, NULL, &q, &v)) != 0)
		goto fail;
	if (v.why == RF_REFUSE_UNKNOWN || v.why == RF_REFUSE_REVOKED) {
		rf_api_answer_error(a, rf_refusal_status(v.why),
		    rf_refusal_code(v.why), v.detail);
		goto out;
	}
	if (svc->ca == NULL) {
		if ((r = rf_ca_open(svc->cfg, svc->st, svc->keys, &svc->ca)) !=
		    0)
			goto fail;
		rf_ca_set_audit(svc->ca, svc->audit);
		/* keyd signs OCSP for serve only of what the store holds. */
		rf_ca_presign_after_commit(svc->ca);
	}
	rf_connector_tenant(v.connector, tenant);
	memset(&req, 0, sizeof(req));
	req.tenant = tenant;
	req.profile = RF_PROFILE_CONNECTOR;
	req.csr = (const uint8_t *)csr;
	req.csrlen = csrlen;
	req.days = svc->cfg->connector_days;
	/* keyd checks the proof: this connector's key, for this new key. */
	req.on_behalf = cert_serial;
	if (proof[0] != '\0') {
		req.proof = (const uint8_t *)proof;
		req.prooflen = strlen(proof);
	}
	link.st = svc->st;
	link.name = v.connector;
	snprintf(actor, sizeof(actor), "connector %s (certificate %s)",
	    v.connector, cert_serial);
	who.actor = actor;
	who.source = source;
	/* A request issuance refuses costs no renewal (its 400 below). */
	r = rf_ca_issue_check(svc->ca, &req, 1);
	if (r == 0 && renewals_used(svc, v.connector, q.now, a))
		goto out;
	if (r != 0 ||
	    (r = rf_ca_issue_ex(
		 svc->ca, &req, 1, &who, &is, renew_hook, &link)) != 0) {
		int st = r == RF_ERR_CSR_MALFORMED ||
			r == RF_ERR_CSR_SIGNATURE ||
			r == RF_ERR_KEY_DISALLOWED || r == RF_ERR_CSR_REQUEST ||
			r == RF_ERR_TOO_LARGE || r == RF_ERR_KEY_REUSED
		    ? 400
		    : 500;

		if (r == RF_ERR_REFUSED)
			answer_fail(a, r);
		else
			rf_api_answer_error(a, st,
			    st == 400 ? "bad_request" : "internal",
			    rf_err_msg(r));
		goto out;
	}
	j = json_pack("{s:s,s:s,s:I}", "serial", is.serial, "pem", is.chain_pem,
	    "days", (json_int_t)svc->cfg->connector_days);
	a->status = 200;
	a->body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	goto out;
fail:
	answer_fail(a, r);
out:
	pthread_mutex_unlock(&svc->lock);
	rf_issued_clear(&is);
	free(csr);
}
