/*
 * The fixture of the keys unit tests: a fresh state folder with a SoftHSM2
 * token, a store and its audit record, and keys opened on them. Included
 * by test_keys*.c.
 */
#ifndef RF_KEYS_FX_H
#define RF_KEYS_FX_H

#include <stdlib.h>

#include "testutil.h"

#include "audit/audit.h"
#include "keys/keys.h"
#include "store/store.h"

struct fx {
	char *home;
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_key *key; /* a test's own; freed by teardown */
};

static const struct rf_actor who = {"tester", "unit"};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->home = tu_home();
	tu_token(fx->home, &fx->cfg);
	assert_int_equal(rf_store_open(fx->cfg.db_path, 1, &fx->st), 0);
	assert_int_equal(rf_audit_open(fx->st, &fx->audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	rf_key_free(fx->key);
	rf_keys_free(fx->keys);
	rf_audit_free(fx->audit);
	rf_store_free(fx->st);
	tu_home_remove(fx->home);
	free(fx);
	return 0;
}

/* Leaves in the record. */
static uint64_t
leaves(struct fx *fx)
{
	uint64_t n = 0;

	assert_int_equal(rf_store_leaf_count(fx->st, &n), 0);
	return n;
}

#endif
