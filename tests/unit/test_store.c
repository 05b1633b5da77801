/* Unit tests for the store: open, migrations, transactions, meta, keys,
 * audit leaves and tree heads, with real SQLite files. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store_fx.h"

static void
test_open_missing(void **state)
{
	struct fx *f = *state;
	struct rf_store *st = NULL;
	char p[1100];

	snprintf(p, sizeof(p), "%s/nothing.db", f->home);
	rf_err_clear();
	assert_int_equal(rf_store_open(p, 0, &st), RF_ERR_NOT_INITIALISED);
	assert_null(st);
	assert_non_null(strstr(rf_err_msg(RF_ERR_NOT_INITIALISED), p));
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_NOT_INITIALISED), "ringfence init"));
	assert_int_equal(access(p, F_OK), -1);
}

static void
test_open_pragmas(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;

	assert_int_equal(
	    rf_store_schema_version(f->st), rf_store_latest_schema_version());
	assert_true(rf_store_latest_schema_version() >= 2);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
	    rf_store_latest_schema_version());
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* A connector's assertion asks whether an open incident has its
 * connection: by index, not by reading every incident item ever made. */
static void
test_incident_items_indexed(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *s = NULL;
	char plan[1024] = "";
	int rc;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
		"EXPLAIN QUERY PLAN SELECT i.id FROM incident_items it JOIN "
		"incidents i ON i.id = it.incident WHERE it.tenant = 'a' AND "
		"it.name = 'b' AND i.state = 'open' AND it.state = 'affected' "
		"LIMIT 1",
		-1, &s, NULL),
	    SQLITE_OK);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan),
		    "%s\n", (const char *)sqlite3_column_text(s, 3));
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(s);
	sqlite3_close(db);
	assert_non_null(strstr(plan, "incident_items_name"));
	assert_null(strstr(plan, "SCAN it"));
}

static void
test_migrate_old(void **state)
{
	struct fx *f = *state;
	struct rf_store *st = NULL;
	char p[1100], v[32];

	snprintf(p, sizeof(p), "%s/old.db", f->home);
	assert_int_equal(rf_store_open_version(p, 1, 1, &st), 0);
	assert_int_equal(rf_store_schema_version(st), 1);
	assert_int_equal(rf_store_meta_set(st, "k", "kept"), 0);
	rf_store_free(st);
	assert_int_equal(raw_int(p, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(p,
			     "SELECT count(*) FROM sqlite_master WHERE "
			     "name = 'incidents'"),
	    0);
	/* Reopening migrates to the latest and keeps the data. */
	assert_int_equal(rf_store_open(p, 0, &st), 0);
	assert_int_equal(
	    rf_store_schema_version(st), rf_store_latest_schema_version());
	assert_int_equal(rf_store_meta_get(st, "k", v, sizeof(v)), 0);
	assert_string_equal(v, "kept");
	rf_store_free(st);
	assert_int_equal(raw_int(p,
			     "SELECT count(*) FROM sqlite_master WHERE "
			     "name = 'incidents'"),
	    1);
}

static void
test_refuse_newer(void **state)
{
	struct fx *f = *state;
	struct rf_store *st = NULL;
	char sql[64];

	rf_store_free(f->st);
	f->st = NULL;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    rf_store_latest_schema_version() + 1);
	raw_sql(f->path, sql);
	rf_err_clear();
	assert_int_equal(rf_store_open(f->path, 0, &st), RF_ERR_STORE);
	assert_null(st);
	assert_non_null(strstr(rf_err_msg(RF_ERR_STORE), "newer"));
	assert_non_null(strstr(rf_err_msg(RF_ERR_STORE), "upgrade"));
}

static void
test_meta(void **state)
{
	struct fx *f = *state;
	char v[16];

	assert_int_equal(
	    rf_store_meta_get(f->st, "x", v, sizeof(v)), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_meta_set(f->st, "x", "1"), 0);
	assert_int_equal(rf_store_meta_set(f->st, "x", "two"), 0);
	assert_int_equal(rf_store_meta_get(f->st, "x", v, sizeof(v)), 0);
	assert_string_equal(v, "two");
	assert_int_equal(
	    rf_store_meta_set(f->st, "y", "0123456789abcdefXYZ"), 0);
	assert_int_equal(
	    rf_store_meta_get(f->st, "y", v, sizeof(v)), RF_ERR_TOO_LARGE);
	/* Durable: visible to a fresh connection. */
	rf_store_free(f->st);
	assert_int_equal(rf_store_open(f->path, 0, &f->st), 0);
	assert_int_equal(rf_store_meta_get(f->st, "x", v, sizeof(v)), 0);
	assert_string_equal(v, "two");
}

static void
test_transactions(void **state)
{
	struct fx *f = *state;
	struct rf_store *other = NULL;
	char v[16];

	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_begin(f->st), RF_ERR_STATE);
	assert_int_equal(rf_store_meta_set(f->st, "a", "1"), 0);
	rf_store_rollback(f->st);
	assert_int_equal(
	    rf_store_meta_get(f->st, "a", v, sizeof(v)), RF_ERR_NOT_FOUND);

	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "a", "2"), 0);
	assert_int_equal(rf_store_meta_set(f->st, "b", "3"), 0);
	/* Another connection cannot write while we hold the lock. */
	assert_int_equal(rf_store_open(f->path, 0, &other), 0);
	assert_int_equal(
	    rf_store_meta_get(other, "a", v, sizeof(v)), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_commit(f->st), 0);
	assert_int_equal(rf_store_commit(f->st), RF_ERR_STATE);
	assert_int_equal(rf_store_meta_get(other, "a", v, sizeof(v)), 0);
	assert_string_equal(v, "2");
	assert_int_equal(rf_store_meta_get(other, "b", v, sizeof(v)), 0);
	rf_store_free(other);
}

/*
 * A bulk transaction's writes open no savepoint: one that fails leaves the
 * transaction unusable, and its commit writes nothing. An ordinary
 * transaction goes on past a failed write (its savepoint undid it).
 */
static void
test_bulk_transactions(void **state)
{
	struct fx *f = *state;
	char v[16];

	assert_int_equal(rf_store_begin_bulk(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "a", "1"), 0);
	assert_int_equal(rf_store_meta_set(f->st, "b", "2"), 0);
	assert_int_equal(rf_store_commit(f->st), 0);
	assert_int_equal(rf_store_meta_get(f->st, "b", v, sizeof(v)), 0);
	assert_string_equal(v, "2");

	assert_int_equal(rf_store_begin_bulk(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "a", "3"), 0);
	assert_int_equal(rf_store_key_set_state(f->st, "nosuch", "disabled"),
	    RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_meta_set(f->st, "b", "4"), 0);
	assert_int_equal(rf_store_commit(f->st), RF_ERR_STORE);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_STORE), "nothing was written"));
	assert_int_equal(rf_store_in_transaction(f->st), 0);
	assert_int_equal(rf_store_meta_get(f->st, "a", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	assert_int_equal(rf_store_meta_get(f->st, "b", v, sizeof(v)), 0);
	assert_string_equal(v, "2");

	/* The next transaction, bulk or not, starts clean. */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "a", "5"), 0);
	assert_int_equal(rf_store_key_set_state(f->st, "nosuch", "disabled"),
	    RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_commit(f->st), 0);
	assert_int_equal(rf_store_meta_get(f->st, "a", v, sizeof(v)), 0);
	assert_string_equal(v, "5");
}

static void
test_busy(void **state)
{
	struct fx *f = *state;
	struct rf_store *other = NULL;

	assert_int_equal(rf_store_open(f->path, 0, &other), 0);
	assert_int_equal(rf_store_begin(f->st), 0);
	/* Waits the busy timeout, then gives up. */
	assert_int_equal(rf_store_meta_set(other, "z", "1"), RF_ERR_STORE_BUSY);
	rf_store_rollback(f->st);
	assert_int_equal(rf_store_meta_set(other, "z", "1"), 0);
	rf_store_free(other);
}

/* A writer holding the lock for a while, on a connection of its own. */
struct holder {
	const char *path;
	int begun;	  /* its transaction is open */
	double committed; /* rf_mono_s() once it has committed (0: failed) */
};

static void *
hold_lock(void *arg)
{
	struct holder *h = arg;
	struct rf_store *st = NULL;

	if (rf_store_open(h->path, 0, &st) == 0 && rf_store_begin(st) == 0 &&
	    rf_store_meta_set(st, "held", "1") == 0) {
		__atomic_store_n(&h->begun, 1, __ATOMIC_RELEASE);
		usleep(235 * 1000);
		if (rf_store_commit(st) == 0)
			h->committed = rf_mono_s();
	}
	__atomic_store_n(&h->begun, 1, __ATOMIC_RELEASE);
	rf_store_free(st);
	return NULL;
}

/*
 * A writer that waits for the lock has it within a few milliseconds of the
 * other's commit. SQLite's own timeout handler sleeps up to 100 ms between
 * tries: behind a hold of 235 ms it tries again at 328 ms, about 90 ms
 * late. The fastest of three hand-offs, each timed when the lock is had.
 */
static void
test_busy_handoff(void **state)
{
	struct fx *f = *state;
	struct holder h;
	pthread_t t;
	double start, got, best = 1.0, waited = 1.0;
	int i, r;

	for (i = 0; i < 3; i++) {
		memset(&h, 0, sizeof(h));
		h.path = f->path;
		assert_int_equal(pthread_create(&t, NULL, hold_lock, &h), 0);
		while (!__atomic_load_n(&h.begun, __ATOMIC_ACQUIRE))
			usleep(1000);
		start = rf_mono_s();
		r = rf_store_begin(f->st);
		got = rf_mono_s();
		if (r == 0)
			r = rf_store_commit(f->st);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(r, 0);
		assert_true(h.committed > 0);
		if (got - h.committed < best)
			best = got - h.committed;
		if (got - start < waited)
			waited = got - start;
	}
	assert_true(waited > 0.15); /* it did wait for the holder */
	assert_true(best < 0.04);
}

static void
test_change_counter(void **state)
{
	struct fx *f = *state;
	struct rf_store *other = NULL;
	int64_t a, b, c;

	assert_int_equal(rf_store_open(f->path, 0, &other), 0);
	assert_int_equal(rf_store_change_counter(f->st, &a), 0);
	assert_int_equal(rf_store_change_counter(f->st, &b), 0);
	assert_true(a == b);
	assert_int_equal(rf_store_meta_set(other, "c", "1"), 0);
	assert_int_equal(rf_store_change_counter(f->st, &b), 0);
	assert_true(b != a);
	assert_int_equal(rf_store_meta_set(f->st, "c", "2"), 0);
	assert_int_equal(rf_store_change_counter(f->st, &c), 0);
	assert_true(c != b);
	rf_store_free(other);
}

static void
mkkey(struct rf_key_rec *k, const char *id, const char *purpose,
    const char *state, int64_t created)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->id, sizeof(k->id), "%s", id);
	snprintf(k->alg, sizeof(k->alg), "ec-p256");
	snprintf(k->purpose, sizeof(k->purpose), "%s", purpose);
	snprintf(k->state, sizeof(k->state), "%s", state);
	k->created = created;
}

static void
test_keys(void **state)
{
	struct fx *f = *state;
	struct rf_key_rec k, g;

	mkkey(&k, "aa01", "audit", "active", 100);
	assert_int_equal(rf_store_key_add(f->st, &k), 0);
	assert_int_equal(rf_store_key_add(f->st, &k), RF_ERR_EXISTS);
	mkkey(&k, "aa02", "audit", "active", 200);
	snprintf(k.tenant, sizeof(k.tenant), "acme");
	assert_int_equal(rf_store_key_add(f->st, &k), 0);
	mkkey(&k, "bb01", "issuing", "disabled", 300);
	assert_int_equal(rf_store_key_add(f->st, &k), 0);

	assert_int_equal(rf_store_key_get(f->st, "aa02", &g), 0);
	assert_string_equal(g.alg, "ec-p256");
	assert_string_equal(g.purpose, "audit");
	assert_string_equal(g.tenant, "acme");
	assert_string_equal(g.state, "active");
	assert_int_equal(g.created, 200);
	assert_int_equal(rf_store_key_get(f->st, "zz", &g), RF_ERR_NOT_FOUND);

	/* Newest active key of the purpose. */
	assert_int_equal(rf_store_key_by_purpose(f->st, "audit", &g), 0);
	assert_string_equal(g.id, "aa02");
	assert_int_equal(rf_store_key_set_state(f->st, "aa02", "disabled"), 0);
	assert_int_equal(rf_store_key_by_purpose(f->st, "audit", &g), 0);
	assert_string_equal(g.id, "aa01");
	assert_int_equal(
	    rf_store_key_by_purpose(f->st, "issuing", &g), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_key_set_state(f->st, "bb01", "active"), 0);
	assert_int_equal(rf_store_key_by_purpose(f->st, "issuing", &g), 0);
	assert_string_equal(g.id, "bb01");
	assert_int_equal(
	    rf_store_key_set_state(f->st, "nope", "active"), RF_ERR_NOT_FOUND);
}

static void
mkleaf(struct rf_leaf_rec *l, int64_t t, const char *key, const char *tenant,
    uint8_t tag)
{
	static uint8_t data[256][4];

	memset(l, 0, sizeof(*l));
	l->time = t;
	l->type = "sign";
	l->key_id = key;
	l->tenant = tenant;
	data[tag][0] = tag;
	l->data = data[tag];
	l->len = sizeof(data[tag]);
	memset(l->hash, tag, sizeof(l->hash));
}

struct collect {
	uint64_t idx[64];
	int64_t time[64];
	size_t n;
	int stop_at;
};

static int
collect_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct collect *c = arg;

	assert_true(c->n < 64);
	c->idx[c->n] = l->index;
	c->time[c->n] = l->time;
	assert_int_equal(l->len, 4);
	assert_int_equal(l->data[0], l->hash[0]);
	assert_int_equal(l->hash[31], l->hash[0]);
	assert_string_equal(l->type, "sign");
	c->n++;
	if (c->stop_at != 0 && (int)c->n == c->stop_at)
		return 42;
	return 0;
}

static void
test_leaves(void **state)
{
	struct fx *f = *state;
	struct rf_leaf_rec l[5];
	struct collect c;
	uint64_t first = 99, n;
	size_t i;

	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 0);
	for (i = 0; i < 3; i++)
		mkleaf(&l[i], 1000 + (int64_t)i, "k1", "t1", (uint8_t)i);
	assert_int_equal(rf_store_leaf_append(f->st, l, 3, &first), 0);
	assert_int_equal(first, 0);
	assert_int_equal(l[2].index, 2);
	mkleaf(&l[0], 500, "k2", NULL, 7);
	mkleaf(&l[1], 2000, NULL, "t2", 8);
	assert_int_equal(rf_store_leaf_append(f->st, l, 2, &first), 0);
	assert_int_equal(first, 3);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 5);

	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    rf_store_leaf_foreach(f->st, 1, 4, collect_leaf, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.idx[0], 1);
	assert_int_equal(c.idx[2], 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    rf_store_leaf_foreach(f->st, 0, UINT64_MAX, collect_leaf, &c), 0);
	assert_int_equal(c.n, 5);
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(
	    rf_store_leaf_foreach(f->st, 0, 5, collect_leaf, &c), 42);

	/* Search: by key, tenant, time range, limit; time order. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    rf_store_leaf_search(f->st, "k1", NULL, 0, 0, 0, collect_leaf, &c),
	    0);
	assert_int_equal(c.n, 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    rf_store_leaf_search(f->st, NULL, "t2", 0, 0, 0, collect_leaf, &c),
	    0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.idx[0], 4);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    rf_store_leaf_search(f->st, NULL, NULL, 0, 0, 0, collect_leaf, &c),
	    0);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.idx[0], 3); /* time 500 first */
	assert_int_equal(c.idx[4], 4);
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_store_leaf_search(f->st, "k1", "t1", 1001, 1002, 0,
			     collect_leaf, &c),
	    0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.time[0], 1001);
	assert_int_equal(c.time[1], 1002);
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_store_leaf_search(
			     f->st, NULL, NULL, 1000, 0, 2, collect_leaf, &c),
	    0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.idx[0], 0);
}

static size_t
search(struct fx *f, const char *key, const char *tenant, int64_t since,
    int64_t until, size_t limit, struct collect *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(rf_store_leaf_search(f->st, key, tenant, since, until,
			     limit, collect_leaf, c),
	    0);
	return c->n;
}

/*
 * A key's leaves are found whatever tenant each names (none, empty, or
 * several), in time order, within a window and a limit: the search walks
 * the (tenant, key_id, time) index tenant by tenant (migration 12).
 */
static void
test_leaf_search_key(void **state)
{
	static const char *const tenants[] = {"b", NULL, "a", "", "zz", "a"};
	struct fx *f = *state;
	struct rf_leaf_rec l[8];
	struct collect c;
	uint64_t first;
	size_t i;

	/* kx at times 106, 105, ..., 101 under the tenants above. */
	for (i = 0; i < 6; i++)
		mkleaf(&l[i], 106 - (int64_t)i, "kx", tenants[i], (uint8_t)i);
	mkleaf(&l[6], 103, "ky", "a", 9);
	mkleaf(&l[7], 100, "ky", NULL, 10);
	assert_int_equal(rf_store_leaf_append(f->st, l, 8, &first), 0);

	assert_int_equal(search(f, "kx", NULL, 0, 0, 0, &c), 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(c.time[i], 101 + (int64_t)i);
		assert_int_equal(c.idx[i], 5 - i);
	}
	assert_int_equal(search(f, "kx", NULL, 102, 104, 0, &c), 3);
	assert_int_equal(c.time[0], 102);
	assert_int_equal(c.time[2], 104);
	assert_int_equal(search(f, "kx", NULL, 0, 0, 2, &c), 2);
	assert_int_equal(c.time[1], 102);
	assert_int_equal(search(f, "kx", "a", 0, 0, 0, &c), 2);
	assert_int_equal(c.time[0], 101);
	assert_int_equal(c.time[1], 104);
	assert_int_equal(search(f, NULL, "a", 0, 0, 0, &c), 3);
	assert_int_equal(c.time[1], 103);
	assert_int_equal(search(f, "kz", NULL, 0, 0, 0, &c), 0);
}

static void
test_leaves_in_txn(void **state)
{
	struct fx *f = *state;
	struct rf_leaf_rec l[2];
	uint64_t first, n;

	mkleaf(&l[0], 1, "k", NULL, 1);
	mkleaf(&l[1], 2, "k", NULL, 2);
	assert_int_equal(rf_store_leaf_append(f->st, l, 1, &first), 0);
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_leaf_append(f->st, l, 2, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(rf_store_leaf_append(f->st, l, 1, &first), 0);
	assert_int_equal(first, 3);
	rf_store_rollback(f->st);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_leaf_append(f->st, l, 2, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(rf_store_commit(f->st), 0);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 3);
	/* Bad input writes nothing. */
	l[1].type = NULL;
	assert_int_equal(rf_store_leaf_append(f->st, l, 2, &first), RF_ERR_ARG);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 3);
}

/* Two connections (as two processes would) interleave batches: indexes
 * stay dense and consecutive within each batch. */
static void
test_leaves_two_connections(void **state)
{
	struct fx *f = *state;
	struct rf_store *b = NULL;
	struct rf_leaf_rec l[10];
	uint64_t first, n, expect = 0;
	int i, j;

	assert_int_equal(rf_store_open(f->path, 0, &b), 0);
	for (i = 0; i < 10; i++) {
		struct rf_store *w = i % 2 ? b : f->st;
		size_t cnt = (size_t)(i % 3) + 1;

		for (j = 0; j < (int)cnt; j++)
			mkleaf(&l[j], i, "k", NULL, (uint8_t)i);
		assert_int_equal(rf_store_leaf_append(w, l, cnt, &first), 0);
		assert_int_equal(first, expect);
		for (j = 0; j < (int)cnt; j++)
			assert_int_equal(l[j].index, expect + (uint64_t)j);
		expect += cnt;
	}
	assert_int_equal(rf_store_leaf_count(b, &n), 0);
	assert_int_equal(n, expect);
	assert_int_equal(
	    raw_int(f->path, "SELECT max(idx) + 1 - count(*) FROM audit_leaf"),
	    0);
	rf_store_free(b);
}

struct sths {
	uint64_t size[8];
	int64_t time[8];
	size_t n;
};

static int
collect_sth(void *arg, const struct rf_sth_rec *s)
{
	struct sths *c = arg;

	assert_true(c->n < 8);
	c->size[c->n] = s->size;
	c->time[c->n] = s->time;
	assert_int_equal(s->root[0], (uint8_t)s->size);
	assert_string_equal(s->key_id, "aa01");
	assert_int_equal(s->siglen, 3);
	assert_memory_equal(s->sig, "sig", 3);
	c->n++;
	return 0;
}

static void
test_sth(void **state)
{
	struct fx *f = *state;
	struct rf_sth_rec s;
	struct sths c;
	const uint64_t sizes[] = {5, 2, 5, 9};
	const int64_t times[] = {30, 10, 20, 40};
	size_t i;

	for (i = 0; i < 4; i++) {
		memset(&s, 0, sizeof(s));
		s.size = sizes[i];
		s.time = times[i];
		memset(s.root, (int)sizes[i], sizeof(s.root));
		snprintf(s.key_id, sizeof(s.key_id), "aa01");
		s.sig = (const uint8_t *)"sig";
		s.siglen = 3;
		assert_int_equal(rf_store_sth_add(f->st, &s), 0);
	}
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_store_sth_foreach(f->st, collect_sth, &c), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.size[0], 2);
	assert_int_equal(c.size[1], 5);
	assert_int_equal(c.time[1], 20);
	assert_int_equal(c.time[2], 30);
	assert_int_equal(c.size[3], 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_pragmas, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_incident_items_indexed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_old, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_newer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bulk_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_handoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_counter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leaves, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaf_search_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaves_in_txn, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaves_two_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sth, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
