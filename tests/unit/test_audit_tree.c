/*
 * Proofs from the stored interior nodes of the audit tree (issue 13 item
 * 5) equal the proofs computed from every leaf hash with rf_merkle_*, for
 * many sizes: appends in many transactions of many sizes, inside a
 * caller's transaction that commits or rolls back, and a record written
 * before the nodes existed (filled in once at rf_audit_open).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "testutil.h"

#include "audit/audit.h"
#include "store/store.h"

struct fx {
	char *home;
	char db[1100];
	struct rf_store *st;
	struct rf_audit *a;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->home = tu_home();
	snprintf(f->db, sizeof(f->db), "%s/ringfence.db", f->home);
	*state = f;
	return 0;
}

static void
fx_open(struct fx *f)
{
	assert_int_equal(rf_store_open(f->db, 1, &f->st), 0);
	assert_int_equal(rf_audit_open(f->st, &f->a), 0);
}

static void
fx_close(struct fx *f)
{
	rf_audit_free(f->a);
	f->a = NULL;
	rf_store_free(f->st);
	f->st = NULL;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

static void
append(struct rf_audit *a, size_t n)
{
	struct rf_audit_event ev[64];
	char ref[64][24];
	size_t i;

	assert_true(n <= 64);
	for (i = 0; i < n; i++) {
		memset(&ev[i], 0, sizeof(ev[i]));
		snprintf(ref[i], sizeof(ref[i]), "%d", rand());
		ev[i].type = "sign";
		ev[i].ref = ref[i];
		ev[i].time = 1700000000;
	}
	assert_int_equal(rf_audit_append(a, ev, n, NULL), 0);
}

/* Leaves appended straight to the store (no node hash: no nodes). */
static void
append_raw(struct rf_store *st, size_t n)
{
	struct rf_leaf_rec l;
	char data[64];
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&l, 0, sizeof(l));
		snprintf(data, sizeof(data),
		    "{\"ref\":\"%d\",\"time\":1,\"type\":\"sign\",\"v\":1}",
		    rand());
		l.time = 1;
		l.type = "sign";
		l.data = (const uint8_t *)data;
		l.len = strlen(data);
		rf_merkle_leaf_hash(l.data, l.len, l.hash);
		assert_int_equal(rf_store_leaf_append(st, &l, 1, NULL), 0);
	}
}

/* Every root and proof of the tree of size s, against all leaf hashes. */
static void
check_size(struct rf_audit *a, const uint8_t (*L)[RF_HASH_LEN], uint64_t s,
    int every_index)
{
	uint8_t leaf[RF_HASH_LEN], root[RF_HASH_LEN], want[RF_HASH_LEN];
	uint8_t r1[RF_HASH_LEN], w1[RF_HASH_LEN];
	uint8_t(*p)[RF_HASH_LEN], (*q)[RF_HASH_LEN];
	uint64_t idx[6] = {0, 1, s / 3, s / 2, s - 2, s - 1}, i, k, m;
	size_t plen, qlen;

	assert_int_equal(rf_merkle_root(L, s, want), 0);
	for (k = 0; k < (every_index ? s : 6); k++) {
		i = every_index ? k : idx[k];
		if (i >= s)
			continue;
		assert_int_equal(
		    rf_audit_prove_inclusion(a, i, s, leaf, root, &p, &plen),
		    0);
		assert_memory_equal(root, want, RF_HASH_LEN);
		assert_memory_equal(leaf, L[i], RF_HASH_LEN);
		assert_int_equal(
		    rf_merkle_inclusion_proof(L, s, i, &q, &qlen), 0);
		assert_int_equal(plen, qlen);
		if (plen > 0)
			assert_memory_equal(p, q, plen * RF_HASH_LEN);
		assert_int_equal(
		    rf_merkle_verify_inclusion(i, s, leaf,
			(const uint8_t(*)[RF_HASH_LEN])p, plen, root),
		    0);
		free(p);
		free(q);
	}
	for (k = 0; k < (every_index ? s : 6); k++) {
		m = every_index ? k + 1 : idx[k] + 1;
		if (m > s)
			continue;
		assert_int_equal(
		    rf_audit_prove_consistency(a, m, s, r1, root, &p, &plen),
		    0);
		assert_int_equal(rf_merkle_root(L, m, w1), 0);
		assert_memory_equal(r1, w1, RF_HASH_LEN);
		assert_memory_equal(root, want, RF_HASH_LEN);
		assert_int_equal(
		    rf_merkle_consistency_proof(L, s, m, &q, &qlen), 0);
		assert_int_equal(plen, qlen);
		if (plen > 0)
			assert_memory_equal(p, q, plen * RF_HASH_LEN);
		free(p);
		free(q);
	}
}

/* The whole record at its current size n, and some smaller sizes. */
static void
check_all(struct rf_audit *a)
{
	uint8_t(*L)[RF_HASH_LEN] = NULL, head[RF_HASH_LEN], want[RF_HASH_LEN];
	uint64_t n, s, size;

	assert_int_equal(rf_audit_size(a, &n), 0);
	assert_int_equal(rf_audit_leaf_hashes(a, n, &L), 0);
	assert_int_equal(rf_audit_head(a, &size, head), 0);
	assert_int_equal(size, n);
	assert_int_equal(
	    rf_merkle_root((const uint8_t(*)[RF_HASH_LEN])L, n, want), 0);
	assert_memory_equal(head, want, RF_HASH_LEN);
	for (s = 1; s <= n; s++)
		check_size(a, (const uint8_t(*)[RF_HASH_LEN])L, s, s <= 40);
	free(L);
}

/* Number of stored nodes, and the number a complete fill would have. */
static void
count_nodes(struct fx *f, uint64_t *have, uint64_t *want)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	uint64_t n;
	unsigned k;

	assert_int_equal(rf_audit_size(f->a, &n), 0);
	*want = 0;
	for (k = RF_STORE_NODE_LEVEL; k < 64; k++)
		*want += n >> k;
	assert_int_equal(
	    sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
			     "SELECT count(*) FROM audit_node", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	*have = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void
test_tree_appends(void **state)
{
	struct fx *f = *state;
	uint64_t have, want;
	size_t i;

	srand(7);
	fx_open(f);
	/* 1, 2, 3, ... leaves per transaction: batches straddle every
	 * subtree boundary. */
	for (i = 1; i <= 24; i++)
		append(f->a, i);
	check_all(f->a);
	count_nodes(f, &have, &want);
	assert_int_equal(have, want);
	/* Another handle (another process's view) appends on top. */
	fx_close(f);
	fx_open(f);
	for (i = 0; i < 40; i++)
		append(f->a, 1 + (size_t)rand() % 17);
	check_all(f->a);
	count_nodes(f, &have, &want);
	assert_int_equal(have, want);
}

static void
test_tree_caller_txn(void **state)
{
	struct fx *f = *state;
	uint64_t have, want, n0, n;

	srand(11);
	fx_open(f);
	append(f->a, 13);
	/* Appended then rolled back: no leaf, no node stays. */
	assert_int_equal(rf_audit_size(f->a, &n0), 0);
	assert_int_equal(rf_store_begin(f->st), 0);
	append(f->a, 9);
	append(f->a, 30);
	rf_store_rollback(f->st);
	assert_int_equal(rf_audit_size(f->a, &n), 0);
	assert_int_equal(n, n0);
	append(f->a, 5);
	/* Committed: several appends in one transaction. */
	assert_int_equal(rf_store_begin(f->st), 0);
	append(f->a, 7);
	append(f->a, 33);
	append(f->a, 2);
	assert_int_equal(rf_store_commit(f->st), 0);
	append(f->a, 64);
	check_all(f->a);
	count_nodes(f, &have, &want);
	assert_int_equal(have, want);
}

static void
test_tree_fill(void **state)
{
	struct fx *f = *state;
	uint64_t have, want;

	srand(13);
	/* A record of the schema before the nodes (migration 2). */
	assert_int_equal(rf_store_open_version(f->db, 1, 2, &f->st), 0);
	append_raw(f->st, 150);
	rf_store_free(f->st);
	f->st = NULL;
	/* Migrated and filled once at open. */
	fx_open(f);
	count_nodes(f, &have, &want);
	assert_int_equal(have, want);
	assert_true(want > 0);
	check_all(f->a);
	append(f->a, 20);
	fx_close(f);
	/* Appends without the node hash leave a gap; the next open fills it,
	 * and proofs are right in between (computed from the leaves). */
	assert_int_equal(rf_store_open(f->db, 0, &f->st), 0);
	append_raw(f->st, 77);
	rf_store_free(f->st);
	f->st = NULL;
	fx_open(f);
	count_nodes(f, &have, &want);
	assert_int_equal(have, want);
	check_all(f->a);
}

/* A missing node is computed from below; a missing leaf is an error. */
static void
test_tree_damage(void **state)
{
	struct fx *f = *state;
	uint8_t leaf[RF_HASH_LEN], root[RF_HASH_LEN];
	uint8_t(*p)[RF_HASH_LEN];
	size_t plen;

	srand(17);
	fx_open(f);
	append(f->a, 64);
	append(f->a, 40);
	assert_int_equal(tu_sh("sqlite3 '%s' \"DELETE FROM audit_node WHERE "
			       "level = 5 AND idx = 1\"",
			     f->db),
	    0);
	check_all(f->a);
	assert_int_equal(tu_sh("sqlite3 '%s' \"DELETE FROM audit_leaf WHERE "
			       "idx = 100\"",
			     f->db),
	    0);
	assert_int_equal(
	    rf_audit_prove_inclusion(f->a, 3, 103, leaf, root, &p, &plen),
	    RF_ERR_AUDIT_TAMPERED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tree_appends, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_tree_caller_txn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tree_fill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tree_damage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
