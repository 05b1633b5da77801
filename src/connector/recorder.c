/*
 * recorder.c: what serve's connector API writes after the answer
 * (service.c queues it): each assertion's row, its detectors, alerts and
 * re-establishment evidence, and each refusal's audit leaf, a minute's
 * budget of them one by one and the rest counted in one leaf. One thread
 * with a store connection of its own, a batch in one transaction.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "connector/connector.h"
#include "connector/service_int.h"
#include "store/store.h"
#include "store/store_incident.h"

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

/* The address without its port ("127.0.0.1:5000" -> "127.0.0.1",
 * "[2001:db8::5]:5000" -> "2001:db8::5"; src/http/api.c api_peer). */
static void
source_addr(const char *source, char out[64])
{
	const char *s = source != NULL ? source : "", *c;

	if (s[0] == '[' && (c = strchr(s, ']')) != NULL) {
		snprintf(out, 64, "%.*s", (int)(c - s - 1), s + 1);
		return;
	}
	snprintf(out, 64, "%s", s);
	if ((c = strrchr(out, ':')) != NULL && strchr(out, ':') == c)
		out[c - out] = '\0';
}

void
svc_enqueue(struct rf_connector_svc *svc, const struct pending *p)
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

/* The count of a minute's refusals not recorded one by one, once a later
 * minute has come (force: now, as serve stops). */
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

/* Whom a refusal's budget counts it under: its client certificate. */
static const char *
refusal_who(const struct pending *p, char who[64])
{
	snprintf(who, 64, "certificate %.40s", p->serial);
	return who;
}

/*
 * A refusal's leaf (and alert), in the recorder's transaction; past the
 * minute's budget, counted instead: a refused request costs its sender
 * nothing, and a revoked connector certificate is refused forever. Its
 * transaction has rolled the budget's minute (record_batch, record_alone).
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

	if (!rf_leaf_quota_take(&svc->refusals, refusal_who(p, addr)))
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

/* One item in a transaction of its own. */
static int
record_alone(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, const struct pending *p)
{
	int r;

	if ((r = rf_store_begin(st)) != 0)
		return r;
	/* A minute's count first, as a batch writes it (record_batch). */
	if ((r = refusals_roll(svc, audit, rf_now(), 0)) == 0 &&
	    (r = record_one(svc, st, audit, p)) == 0)
		r = rf_seen_flush(svc->seen);
	if (r == 0)
		r = rf_store_commit(st);
	else
		rf_store_rollback(st);
	if (r == 0)
		reest_learn(svc, p, 1);
	rf_seen_drop(svc->seen);
	return r;
}

/*
 * Write one batch in one transaction, the baselines its detectors changed
 * once each at the end (rf_seen_flush); item by item if that fails. The
 * refusal budget changes with the leaves it counts: put back when they
 * roll back, and a refusal whose leaf could not be written is counted.
 */
static void
record_batch(struct rf_connector_svc *svc, struct rf_store *st,
    struct rf_audit *audit, const struct pending *q, size_t n)
{
	struct rf_leaf_quota before = svc->refusals;
	char who[64];
	size_t i;
	int r = 0;

	if (rf_store_begin(st) == 0) {
		/* A minute's count, once it is over, traffic or not: once a
		 * transaction, before its refusals take the new budget. */
		r = refusals_roll(svc, audit, rf_now(), 0);
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
		svc->refusals = before;
	}
	for (i = 0; i < n; i++) {
		before = svc->refusals;
		/* A batch of one was this item: not tried again. */
		r = n > 1 ? record_alone(svc, st, audit, &q[i]) : -1;
		if (r != 0 && q[i].refusal) {
			svc->refusals = before;
			rf_leaf_quota_count(
			    &svc->refusals, refusal_who(&q[i], who));
		}
	}
	rf_err_clear();
}

/* The count of refusals not recorded one by one, in a transaction of its
 * own: once its minute is over, or now (force). Kept for the next try if
 * it cannot be written. */
static void
refusals_flush(struct rf_connector_svc *svc, int force)
{
	struct rf_leaf_quota before = svc->refusals;

	if (!(force ? svc->refusals.quiet > 0
		    : rf_leaf_quota_due(&svc->refusals, rf_now())))
		return;
	if (rf_store_begin(svc->rst) == 0) {
		if (refusals_roll(svc, svc->raudit, rf_now(), force) == 0) {
			if (rf_store_commit(svc->rst) == 0)
				return;
		} else
			rf_store_rollback(svc->rst);
	}
	svc->refusals = before;
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

void *
svc_recorder_main(void *arg)
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
