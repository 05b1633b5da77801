/* Unit tests for the store's failure paths (read-only database, full
 * database) and a timing check of batched leaf appends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "testutil.h"

#include "store/store.h"

struct fx {
	char *home;
	char path[1024];
	struct rf_store *st;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->home = tu_home();
	snprintf(f->path, sizeof(f->path), "%s/state.db", f->home);
	assert_int_equal(rf_store_open(f->path, 1, &f->st), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rf_store_free(f->st);
	tu_sh("chmod -R u+w '%s'", f->home);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

static void
mkleaf(struct rf_leaf_rec *l, int64_t t, const uint8_t *data, size_t len)
{
	memset(l, 0, sizeof(*l));
	l->time = t;
	l->type = "sign";
	l->key_id = "k";
	l->tenant = "t";
	l->data = data;
	l->len = len;
	memset(l->hash, 0xab, sizeof(l->hash));
}

/*
 * Tests run as root, where file modes do not stop writes: the read-only
 * case opens the database through a SQLite URI with mode=ro, which is what
 * a read-only file or volume gives an ordinary user.
 */
static void
test_readonly(void **state)
{
	struct fx *f = *state;
	struct rf_store *ro = NULL;
	struct rf_leaf_rec l;
	char uri[1100], v[16];
	uint64_t n, first;
	const char *msg;

	assert_int_equal(rf_store_meta_set(f->st, "a", "1"), 0);
	rf_store_free(f->st);
	f->st = NULL;
	assert_int_equal(chmod(f->path, 0444), 0);
	assert_int_equal(chmod(f->home, 0555), 0);
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", f->path);
	assert_int_equal(rf_store_open(uri, 0, &ro), 0);
	assert_int_equal(rf_store_meta_get(ro, "a", v, sizeof(v)), 0);
	assert_string_equal(v, "1");

	rf_err_clear();
	assert_int_equal(
	    rf_store_meta_set(ro, "a", "2"), RF_ERR_STORE_READONLY);
	msg = rf_err_msg(RF_ERR_STORE_READONLY);
	assert_non_null(strstr(msg, f->path));
	assert_non_null(strstr(msg, "writable"));
	mkleaf(&l, 1, (const uint8_t *)"x", 1);
	assert_int_equal(
	    rf_store_leaf_append(ro, &l, 1, &first), RF_ERR_STORE_READONLY);
	assert_int_equal(rf_store_begin(ro), RF_ERR_STORE_READONLY);
	rf_store_free(ro);

	/* Nothing was written. */
	assert_int_equal(chmod(f->home, 0700), 0);
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(rf_store_open(f->path, 0, &f->st), 0);
	assert_int_equal(rf_store_meta_get(f->st, "a", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 0);
}

/* A missing folder cannot be created into: an actionable error. */
static void
test_cantopen(void **state)
{
	struct fx *f = *state;
	struct rf_store *st = NULL;
	char p[1100];
	int r;

	snprintf(p, sizeof(p), "%s/no/such/dir/state.db", f->home);
	rf_err_clear();
	r = rf_store_open(p, 1, &st);
	assert_int_equal(r, RF_ERR_STORE_READONLY);
	assert_null(st);
	assert_non_null(strstr(rf_err_msg(r), p));
}

static void
test_full(void **state)
{
	struct fx *f = *state;
	static uint8_t big[4096];
	struct rf_leaf_rec l[64];
	uint64_t n, first;
	size_t i;
	char v[16];

	for (i = 0; i < 64; i++)
		mkleaf(&l[i], (int64_t)i, big, sizeof(big));
	assert_int_equal(rf_store_leaf_append(f->st, l, 2, &first), 0);
	/* Cap the file just above its current size. */
	assert_int_equal(rf_store_test_set_max_pages(f->st, 40), 0);
	rf_err_clear();
	assert_int_equal(
	    rf_store_leaf_append(f->st, l, 64, &first), RF_ERR_STORE_FULL);
	assert_non_null(strstr(rf_err_msg(RF_ERR_STORE_FULL), "disk space"));
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 2);

	/* Inside the caller's transaction: the whole transaction is gone. */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "in", "txn"), 0);
	assert_int_equal(
	    rf_store_leaf_append(f->st, l, 64, &first), RF_ERR_STORE_FULL);
	rf_store_rollback(f->st);
	assert_int_equal(
	    rf_store_meta_get(f->st, "in", v, sizeof(v)), RF_ERR_NOT_FOUND);
	/* A commit after the failure does not pretend to succeed. */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_meta_set(f->st, "in", "txn"), 0);
	assert_int_equal(
	    rf_store_leaf_append(f->st, l, 64, &first), RF_ERR_STORE_FULL);
	/* Later writes must not commit on their own. */
	assert_int_not_equal(rf_store_meta_set(f->st, "after", "x"), 0);
	assert_int_not_equal(rf_store_commit(f->st), 0);
	assert_int_equal(
	    rf_store_meta_get(f->st, "after", v, sizeof(v)), RF_ERR_NOT_FOUND);
	assert_int_equal(
	    rf_store_meta_get(f->st, "in", v, sizeof(v)), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 2);

	/* Room again: appends resume at the next dense index. */
	assert_int_equal(rf_store_test_set_max_pages(f->st, 1 << 30), 0);
	assert_int_equal(rf_store_leaf_append(f->st, l, 3, &first), 0);
	assert_int_equal(first, 2);
	rf_store_free(f->st);
	assert_int_equal(rf_store_open(f->path, 0, &f->st), 0);
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 5);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
count_leaf(void *arg, const struct rf_leaf_rec *l)
{
	(void)l;
	(*(size_t *)arg)++;
	return 0;
}

/* Timing only: prints the rate, asserts correctness, not speed. */
static void
test_append_rate(void **state)
{
	struct fx *f = *state;
	enum { BATCH = 1000, BATCHES = 100 };
	static struct rf_leaf_rec l[BATCH];
	static const char *keys[] = {"ka", "kb", "kc", "kd"};
	uint8_t data[64];
	uint64_t first, n;
	size_t i, b, found = 0;
	double t0, t1, t2;

	memset(data, 0x5a, sizeof(data));
	t0 = now_s();
	for (b = 0; b < BATCHES; b++) {
		for (i = 0; i < BATCH; i++) {
			mkleaf(&l[i], (int64_t)(b * BATCH + i), data,
			    sizeof(data));
			l[i].key_id = keys[i % 4];
		}
		assert_int_equal(
		    rf_store_leaf_append(f->st, l, BATCH, &first), 0);
		assert_int_equal(first, b * BATCH);
	}
	t1 = now_s();
	assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, BATCH * BATCHES);
	assert_int_equal(rf_store_leaf_search(f->st, "kc", NULL, 50000, 50999,
			     0, count_leaf, &found),
	    0);
	t2 = now_s();
	assert_int_equal(found, 250);
	print_message("store: appended %d leaves in %.2f s (%.0f leaves/s); "
		      "search %.4f s\n",
	    BATCH * BATCHES, t1 - t0, (double)(BATCH * BATCHES) / (t1 - t0),
	    t2 - t1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cantopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_append_rate, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
