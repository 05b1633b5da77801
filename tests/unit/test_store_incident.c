/* Unit tests for the store's connection and incident tables
 * (store_incident.h), with real SQLite files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "store_fx.h"
#include "store/store_incident.h"

static void
add_cert(struct fx *f, const char *serial, const char *tenant, const char *key,
    const char *issuer)
{
	struct rf_cert_rec c;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "%s", issuer);
	snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
	snprintf(c.key_id, sizeof(c.key_id), "%s", key);
	c.reason = -1;
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
}

struct conns {
	char name[8][64];
	char key[8][65];
	size_t n;
};

static int
collect_conn(
    void *arg, const struct rf_conn_rec *c, const struct rf_cert_rec *cur)
{
	struct conns *v = arg;

	assert_true(v->n < 8);
	assert_string_equal(c->serial, cur->serial);
	assert_string_equal(c->tenant, cur->tenant);
	snprintf(v->name[v->n], sizeof(v->name[0]), "%s", c->name);
	snprintf(v->key[v->n], sizeof(v->key[0]), "%s", cur->key_id);
	v->n++;
	return 0;
}

static void
test_conns(void **state)
{
	struct fx *f = *state;
	struct rf_conn_rec c;
	struct rf_conn_filter flt;
	struct conns v;
	int64_t id, id2;

	add_cert(f, "01", "acme", "k1", "issuing");
	add_cert(f, "02", "acme", "k2", "issuing");
	add_cert(f, "03", "beta", "k3", "other");
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, NULL, 100, &id), 0);
	assert_true(id > 0);
	assert_int_equal(rf_store_conn_get(f->st, "acme", "sync", &c), 0);
	assert_string_equal(c.rp, "ocsp");
	assert_string_equal(c.serial, "");
	assert_int_equal(c.created, 100);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", "pinned", "01", 200, &id2),
	    0);
	assert_int_equal(id2, id);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, "02", 300, NULL), 0);
	/* Same serial again: previous is not overwritten. */
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, "02", 300, NULL), 0);
	assert_int_equal(rf_store_conn_get(f->st, "acme", "sync", &c), 0);
	assert_string_equal(c.rp, "pinned");
	assert_string_equal(c.serial, "02");
	assert_string_equal(c.previous, "01");
	assert_int_equal(c.created, 100);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "x", "bogus", NULL, 1, NULL),
	    RF_ERR_ARG);
	assert_int_equal(
	    rf_store_conn_get(f->st, "acme", "nope", &c), RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_conn_set(f->st, "beta", "api", NULL, "03", 1, NULL), 0);
	assert_int_equal(
	    rf_store_conn_set(f->st, "beta", "idle", NULL, NULL, 1, NULL), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, NULL, collect_conn, &v), 0);
	assert_int_equal(v.n, 2); /* "idle" has no credential */
	assert_string_equal(v.name[0], "sync");
	assert_string_equal(v.name[1], "api");
	memset(&flt, 0, sizeof(flt));
	flt.issuer = "issuing";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.key[0], "k2");
	memset(&flt, 0, sizeof(flt));
	flt.key_id = "k1"; /* only the previous credential has k1 */
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 0);
	flt.key_id = NULL;
	flt.tenant = "beta";
	flt.name = "api";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 1);
}

static int
count_inc(void *arg, const struct rf_incident_rec *inc)
{
	(void)inc;
	(*(int *)arg)++;
	return 0;
}

static void
test_incidents(void **state)
{
	struct fx *f = *state;
	struct rf_incident_rec inc, got, dup;
	int n = 0;

	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "issuer:issuing");
	snprintf(inc.reason, sizeof(inc.reason), "key exposed");
	inc.opened = 10;
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	assert_true(inc.id > 0);
	assert_string_equal(inc.state, "open");
	dup = inc;
	dup.id = 0;
	assert_int_equal(rf_store_incident_add(f->st, &dup), RF_ERR_EXISTS);
	assert_int_equal(dup.id, inc.id);

	inc.contained = 20;
	inc.since = 5;
	inc.signatures = 42;
	snprintf(inc.state, sizeof(inc.state), "contained");
	snprintf(inc.new_issuer, sizeof(inc.new_issuer), "issuing-inc1");
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	assert_int_equal(rf_store_incident_get(f->st, inc.id, &got), 0);
	assert_string_equal(got.state, "contained");
	assert_string_equal(got.reason, "key exposed");
	assert_string_equal(got.new_issuer, "issuing-inc1");
	assert_int_equal(got.contained, 20);
	assert_int_equal(got.since, 5);
	assert_int_equal(got.signatures, 42);
	assert_int_equal(
	    rf_store_incident_get(f->st, 999, &got), RF_ERR_NOT_FOUND);
	got.id = 999;
	assert_int_equal(
	    rf_store_incident_update(f->st, &got), RF_ERR_NOT_FOUND);

	/* Closed: the same scope may be opened again. */
	snprintf(inc.state, sizeof(inc.state), "closed");
	inc.closed = 30;
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	dup.id = 0;
	assert_int_equal(rf_store_incident_add(f->st, &dup), 0);
	assert_true(dup.id > inc.id);
	assert_int_equal(rf_store_incident_foreach(f->st, count_inc, &n), 0);
	assert_int_equal(n, 2);
}

struct items {
	char name[8][64];
	size_t n;
};

static int
collect_item(void *arg, const struct rf_item_rec *it)
{
	struct items *v = arg;

	assert_true(v->n < 8);
	snprintf(v->name[v->n], sizeof(v->name[0]), "%s", it->name);
	v->n++;
	return 0;
}

struct events {
	char kind[8][32];
	size_t n;
};

static int
collect_event(void *arg, const struct rf_event_rec *e)
{
	struct events *v = arg;

	assert_true(v->n < 8);
	snprintf(v->kind[v->n], sizeof(v->kind[0]), "%s", e->kind);
	v->n++;
	return 0;
}

static void
mkitem(struct rf_item_rec *it, int64_t inc, int64_t conn, const char *tenant,
    const char *name, const char *old)
{
	memset(it, 0, sizeof(*it));
	it->incident = inc;
	it->conn = conn;
	snprintf(it->tenant, sizeof(it->tenant), "%s", tenant);
	snprintf(it->name, sizeof(it->name), "%s", name);
	snprintf(it->rp, sizeof(it->rp), "ocsp");
	snprintf(it->old_serial, sizeof(it->old_serial), "%s", old);
	snprintf(it->old_key, sizeof(it->old_key), "key-%s", old);
	snprintf(it->state, sizeof(it->state), "affected");
	it->updated = 1;
}

static void
test_items_events(void **state)
{
	struct fx *f = *state;
	struct rf_incident_rec inc;
	struct rf_item_rec it, got;
	struct items v;
	struct events ev;
	int is_new;

	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "tenant:acme");
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	mkitem(&it, inc.id, 2, "beta", "b", "0b");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	assert_int_equal(rf_store_item_add(f->st, &it), RF_ERR_EXISTS);
	mkitem(&it, inc.id, 1, "acme", "z", "0a");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	mkitem(&it, inc.id, 3, "acme", "a", "0c");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);

	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_item_foreach(f->st, inc.id, NULL, NULL, collect_item, &v),
	    0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.name[0], "a");
	assert_string_equal(v.name[1], "z");
	assert_string_equal(v.name[2], "b");

	snprintf(it.new_serial, sizeof(it.new_serial), "1c");
	snprintf(it.state, sizeof(it.state), "contained");
	snprintf(it.evidence, sizeof(it.evidence), "ocsp fetch");
	it.updated = 9;
	assert_int_equal(rf_store_item_update(f->st, &it), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(rf_store_item_foreach(f->st, inc.id, "acme",
			     "contained", collect_item, &v),
	    0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.name[0], "a");
	it.conn = 77;
	assert_int_equal(rf_store_item_update(f->st, &it), RF_ERR_NOT_FOUND);
	/* A move only from the state named: the second one finds it gone. */
	mkitem(&it, inc.id, 2, "beta", "b", "0b");
	snprintf(it.new_serial, sizeof(it.new_serial), "2b");
	snprintf(it.state, sizeof(it.state), "contained");
	assert_int_equal(rf_store_item_move(f->st, &it, "affected"), 0);
	snprintf(it.new_serial, sizeof(it.new_serial), "3b");
	assert_int_equal(
	    rf_store_item_move(f->st, &it, "affected"), RF_ERR_STATE);
	assert_int_equal(
	    rf_store_item_by_serial(f->st, "2b", &got, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(rf_store_item_by_serial(f->st, "3b", &got, &is_new),
	    RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_item_by_serial(f->st, "0c", &got, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_string_equal(got.name, "a");
	assert_string_equal(got.new_serial, "1c");
	assert_string_equal(got.evidence, "ocsp fetch");
	assert_int_equal(got.updated, 9);
	assert_int_equal(
	    rf_store_item_by_serial(f->st, "1c", &got, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(rf_store_item_by_serial(f->st, "ff", &got, &is_new),
	    RF_ERR_NOT_FOUND);
	/* Closed incidents do not match. */
	snprintf(inc.state, sizeof(inc.state), "closed");
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	assert_int_equal(rf_store_item_by_serial(f->st, "1c", &got, &is_new),
	    RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id, 1, "opened", "x"), 0);
	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id, 2, "contained", NULL),
	    0);
	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id + 1000, 2, "x", "y"),
	    RF_ERR_ARG); /* no such incident */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(
	    rf_store_incident_event_foreach(f->st, inc.id, collect_event, &ev),
	    0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.kind[0], "opened");
	assert_string_equal(ev.kind[1], "contained");
}

/* An incident with one item for connection conn, in state. */
static int64_t
open_with_item(struct fx *f, const char *scope, int64_t conn, const char *state)
{
	struct rf_incident_rec inc;
	struct rf_item_rec it;

	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "%s", scope);
	snprintf(inc.reason, sizeof(inc.reason), "test");
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	memset(&it, 0, sizeof(it));
	it.incident = inc.id;
	it.conn = conn;
	snprintf(it.tenant, sizeof(it.tenant), "acme");
	snprintf(it.name, sizeof(it.name), "c%lld", (long long)conn);
	snprintf(it.rp, sizeof(it.rp), "pinned");
	snprintf(it.old_serial, sizeof(it.old_serial), "%llx",
	    (unsigned long long)(0xa0 + conn));
	snprintf(
	    it.prev_serial, sizeof(it.prev_serial), "0%lld", (long long)conn);
	snprintf(it.new_serial, sizeof(it.new_serial), "%s",
	    strcmp(state, "affected") == 0 ? "" : "b1");
	snprintf(it.state, sizeof(it.state), "%s", state);
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	return inc.id;
}

static int
find_item(void *arg, const struct rf_item_rec *it)
{
	*(struct rf_item_rec *)arg = *it;
	return 0;
}

static void
test_reserve_and_overlap(void **state)
{
	struct fx *f = *state;
	struct rf_item_rec it;
	int64_t a, b, other = -1;

	a = open_with_item(f, "all", 7, "affected");
	/* The item keeps the previous credential recorded at open. */
	assert_int_equal(
	    rf_store_item_foreach(f->st, a, NULL, NULL, find_item, &it), 0);
	assert_string_equal(it.prev_serial, "07");
	assert_string_equal(it.new_key, "");
	/* A key is reserved once; a second run over "" loses. */
	assert_int_equal(rf_store_item_reserve_key(f->st, a, 7, "", "k1"), 0);
	assert_int_equal(
	    rf_store_item_reserve_key(f->st, a, 7, "", "k2"), RF_ERR_EXISTS);
	/* Replacing a reservation needs the one read. */
	assert_int_equal(rf_store_item_reserve_key(f->st, a, 7, "k1", "k3"), 0);
	assert_int_equal(
	    rf_store_item_foreach(f->st, a, NULL, NULL, find_item, &it), 0);
	assert_string_equal(it.new_key, "k3");
	/* Connection 7 is in incident a, not yet contained. */
	assert_int_equal(rf_store_item_other_open(f->st, 7, 999, &other), 0);
	assert_int_equal(other, a);
	assert_int_equal(
	    rf_store_item_other_open(f->st, 7, a, &other), RF_ERR_NOT_FOUND);
	assert_int_equal(
	    rf_store_item_other_open(f->st, 8, 999, &other), RF_ERR_NOT_FOUND);
	/* Once contained, a later incident may build on it. */
	snprintf(it.state, sizeof(it.state), "contained");
	assert_int_equal(rf_store_item_update(f->st, &it), 0);
	assert_int_equal(
	    rf_store_item_other_open(f->st, 7, 999, &other), RF_ERR_NOT_FOUND);
	/* No reservation once the item has moved. */
	assert_int_equal(
	    rf_store_item_reserve_key(f->st, a, 7, "k3", "k4"), RF_ERR_EXISTS);
	b = open_with_item(f, "tenant:acme", 9, "contained");
	assert_true(b > a);
}

static int
count_sighting(void *arg, const struct rf_sighting_rec *g)
{
	size_t *n = arg;

	assert_true(g->count >= 1);
	(*n)++;
	return 0;
}

static int
sum_count(void *arg, const struct rf_sighting_rec *g)
{
	*(size_t *)arg += (size_t)g->count;
	return 0;
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
test_sightings(void **state)
{
	struct fx *f = *state;
	struct rf_sighting_rec g;
	struct rf_item_rec it;
	size_t total, unacked, n = 0, moved;
	int64_t a;
	int fresh;

	a = open_with_item(f, "all", 3, "contained");
	memset(&g, 0, sizeof(g));
	g.incident = a;
	g.conn = 3;
	g.count = 1;
	snprintf(g.serial, sizeof(g.serial), "a3");
	snprintf(g.source, sizeof(g.source), "192.0.2.1");
	g.first = g.last = 100;
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(fresh, 0); /* before re-establishment: no leaf */
	g.last = 110; /* the same source again: counted, one row */
	g.count = 5;  /* five queries in one pass */
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(
	    rf_store_sighting_counts(f->st, a, &total, &unacked), 0);
	assert_int_equal(total, 1);
	assert_int_equal(unacked, 0);
	n = 0;
	assert_int_equal(
	    rf_store_sighting_foreach(f->st, a, 0, sum_count, &n), 0);
	assert_int_equal(n, 6);
	/* After re-establishment: unacknowledged, and fresh (a leaf) the
	 * first time only. */
	g.after_reestablished = 1;
	g.last = 120;
	g.count = 1;
	snprintf(g.source, sizeof(g.source), "198.51.100.7");
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(fresh, 1);
	g.last = 121;
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(fresh, 0);
	/* The first source's row turns after: fresh once too. */
	snprintf(g.source, sizeof(g.source), "192.0.2.1");
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(fresh, 1);
	assert_int_equal(
	    rf_store_sighting_counts(f->st, a, &total, &unacked), 0);
	assert_int_equal(total, 2);
	assert_int_equal(unacked, 2);
	n = 0;
	assert_int_equal(
	    rf_store_sighting_foreach(f->st, a, 0, count_sighting, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rf_store_sighting_ack(f->st, a, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(
	    rf_store_sighting_counts(f->st, a, &total, &unacked), 0);
	assert_int_equal(unacked, 0);
	/* The same source after the ack: counted, stays acked, no leaf. */
	g.last = 130;
	assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	assert_int_equal(fresh, 0);
	assert_int_equal(
	    rf_store_sighting_counts(f->st, a, &total, &unacked), 0);
	assert_int_equal(unacked, 0);
	/* The connector's use of the new credential re-establishes. */
	assert_int_equal(rf_store_item_reestablish_by_connector(
			     f->st, "b1", "connector-7", 140, &moved),
	    0);
	assert_int_equal(moved, 1);
	assert_int_equal(
	    rf_store_item_foreach(f->st, a, NULL, NULL, find_item, &it), 0);
	assert_string_equal(it.state, "reestablished");
	assert_non_null(strstr(it.evidence, "connector-7"));
	assert_int_equal(rf_store_item_reestablish_by_connector(
			     f->st, "b1", "connector-7", 150, &moved),
	    0);
	assert_int_equal(moved, 0);
}

/*
 * The cap: rows beyond RF_SIGHTINGS_MAX go when trimmed, the ones nobody
 * needs to look at first (acknowledged or before re-establishment), then
 * the oldest; and adding at the cap costs what adding below it does (an
 * add ran a count and a sort of every row: 13 ms each at 100,000 rows, a
 * pass of 4,096 held the store's write lock for most of a minute).
 */
static void
test_sightings_cap(void **state)
{
	struct fx *f = *state;
	struct rf_sighting_rec g;
	size_t total, unacked, i;
	int64_t a;
	double t0;
	int fresh;

	a = open_with_item(f, "all", 3, "reestablished");
	memset(&g, 0, sizeof(g));
	g.incident = a;
	g.conn = 3;
	g.count = 1;
	snprintf(g.serial, sizeof(g.serial), "a3");
	assert_int_equal(rf_store_begin(f->st), 0);
	/* Five unacknowledged after re-establishment, oldest of all. */
	g.after_reestablished = 1;
	for (i = 0; i < 5; i++) {
		snprintf(g.source, sizeof(g.source), "203.0.113.%zu", i);
		g.first = g.last = (int64_t)i;
		assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	}
	g.after_reestablished = 0;
	for (i = 0; i < RF_SIGHTINGS_MAX; i++) {
		snprintf(g.source, sizeof(g.source), "10.%zu.%zu.%zu", i >> 16,
		    (i >> 8) & 255, i & 255);
		g.first = g.last = 1000 + (int64_t)i;
		assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	}
	assert_int_equal(rf_store_commit(f->st), 0);
	t0 = now_s();
	assert_int_equal(rf_store_begin(f->st), 0);
	for (i = 0; i < 3000; i++) {
		snprintf(g.source, sizeof(g.source), "2001:db8::%zx", i);
		g.first = g.last = 200000 + (int64_t)i;
		assert_int_equal(rf_store_sighting_add(f->st, &g, &fresh), 0);
	}
	assert_int_equal(rf_store_sighting_trim(f->st), 0);
	assert_int_equal(rf_store_commit(f->st), 0);
	assert_true(now_s() - t0 < 10.0);
	assert_int_equal(
	    rf_store_sighting_counts(f->st, a, &total, &unacked), 0);
	assert_int_equal(total, RF_SIGHTINGS_MAX);
	assert_int_equal(unacked, 5); /* the oldest, kept */
}

static void
test_progress(void **state)
{
	struct fx *f = *state;
	struct rf_progress_rec p, got;

	assert_int_equal(
	    rf_store_progress_get(f->st, "incident 1 contain", &got),
	    RF_ERR_NOT_FOUND);
	memset(&p, 0, sizeof(p));
	snprintf(p.task, sizeof(p.task), "incident 1 contain");
	snprintf(p.phase, sizeof(p.phase), "reissue");
	p.done = 500;
	p.total = 3600;
	p.started_ms = 1000;
	p.updated_ms = 2000;
	p.pid = 42;
	assert_int_equal(rf_store_progress_put(f->st, &p), 0);
	p.done = 1000;
	p.finished = 1;
	assert_int_equal(rf_store_progress_put(f->st, &p), 0);
	assert_int_equal(
	    rf_store_progress_get(f->st, "incident 1 contain", &got), 0);
	assert_string_equal(got.phase, "reissue");
	assert_int_equal(got.done, 1000);
	assert_int_equal(got.total, 3600);
	assert_int_equal(got.pid, 42);
	assert_int_equal(got.finished, 1);
	assert_int_equal(rf_store_wrote(f->st), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_conns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incidents, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_items_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_reserve_and_overlap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sightings, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sightings_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
