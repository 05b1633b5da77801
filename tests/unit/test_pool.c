/*
 * test_pool: the standby key pool (src/pool): refill, take, the checks
 * made before a taken key is used, the status and the default target.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>

#include "keys_fx.h"

#include "pool/pool.h"
#include "store/store_pool.h"

struct leaf_count {
	const char *type;
	const char *needle; /* in the leaf data, or NULL */
	size_t n;
};

static int
count_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct leaf_count *c = arg;

	if (strcmp(l->type, c->type) != 0)
		return 0;
	if (c->needle != NULL &&
	    memmem(l->data, l->len, c->needle, strlen(c->needle)) == NULL)
		return 0;
	c->n++;
	return 0;
}

/* Leaves of type whose data contains needle (NULL: any). */
static size_t
leaves_of(struct fx *fx, const char *type, const char *needle)
{
	struct leaf_count c = {type, needle, 0};

	assert_int_equal(
	    rf_store_leaf_foreach(fx->st, 0, leaves(fx), count_leaf, &c), 0);
	return c.n;
}

static void
fill(struct fx *fx, enum rf_key_alg alg, size_t n)
{
	struct rf_pool_fill_report rep;

	assert_int_equal(rf_pool_refill(fx->keys, fx->st, alg, INT64_MAX, n,
			     NULL, &who, &rep),
	    0);
	assert_int_equal(rep.made, n);
}

static void
test_refill_records_and_audits(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_status ps;
	struct rf_pool_fill_report rep;
	struct rf_key_rec kr;
	struct rf_pool_counts pc;
	volatile sig_atomic_t stop = 0;

	/* To a target: 10 free keys, made in batches, each audited. */
	assert_int_equal(rf_pool_refill(fx->keys, fx->st, RF_KEY_EC_P256, 10, 0,
			     &stop, &who, &rep),
	    0);
	assert_int_equal(rep.made, 10);
	assert_int_equal(rep.free, 10);
	assert_int_equal(leaves_of(fx, "keygen", "ec-p256 pool"), 10);
	assert_int_equal(rf_store_pool_count(fx->st, "ec-p256", &pc), 0);
	assert_int_equal(pc.free, 10);
	/* At the target, a refill makes nothing. */
	assert_int_equal(rf_pool_refill(fx->keys, fx->st, RF_KEY_EC_P256, 10, 0,
			     &stop, &who, &rep),
	    0);
	assert_int_equal(rep.made, 0);
	/* A stop request is honoured before the next batch. */
	stop = 1;
	assert_int_equal(rf_pool_refill(fx->keys, fx->st, RF_KEY_EC_P256, 50, 0,
			     &stop, &who, &rep),
	    0);
	assert_int_equal(rep.made, 0);
	/* The rate of the first run is what status reports. */
	assert_int_equal(
	    rf_pool_status(&fx->cfg, fx->st, RF_KEY_EC_P256, &ps), 0);
	assert_int_equal(ps.free, 10);
	assert_true(ps.rate > 0);
	/* Every pool key is recorded with purpose pool and is in the token. */
	assert_int_equal(rf_store_key_by_purpose(fx->st, "pool", &kr), 0);
	assert_string_equal(kr.alg, "ec-p256");
	assert_int_equal(rf_keys_load(fx->keys, kr.id, &fx->key), 0);
}

static void
test_take_once_with_leaves(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_want w[3] = {
	    {RF_KEY_EC_P256, "acme", "acme/mail", "incident-1"},
	    {RF_KEY_EC_P256, "beta", "beta/mail", "incident-1"},
	    {RF_KEY_EC_P256, "gamma", "gamma/mail", "incident-1"},
	};
	struct rf_key *out[3], *again[1];
	struct rf_pool_rec pr;
	struct rf_key_rec kr;
	size_t taken, i;

	fill(fx, RF_KEY_EC_P256, 2);
	assert_int_equal(
	    rf_pool_take(fx->keys, fx->audit, w, 3, &who, out, &taken), 0);
	/* Two free keys for three takers: the third must generate. */
	assert_int_equal(taken, 2);
	assert_non_null(out[0]);
	assert_non_null(out[1]);
	assert_null(out[2]);
	assert_string_not_equal(rf_key_id(out[0]), rf_key_id(out[1]));
	assert_int_equal(leaves_of(fx, "pool", "\"take\""), 2);
	assert_int_equal(leaves_of(fx, "pool", "beta/mail"), 1);
	assert_int_equal(rf_store_pool_get(fx->st, rf_key_id(out[1]), &pr), 0);
	assert_string_equal(pr.state, "taken");
	assert_string_equal(pr.taken_by, "beta/mail");
	assert_string_equal(pr.ref, "incident-1");
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(out[1]), &kr), 0);
	assert_string_equal(kr.purpose, "connection");
	assert_string_equal(kr.tenant, "beta");
	/* Taken keys are never given again: the pool is empty now. */
	assert_int_equal(
	    rf_pool_take(fx->keys, fx->audit, w, 1, &who, again, &taken), 0);
	assert_int_equal(taken, 0);
	assert_null(again[0]);
	for (i = 0; i < 3; i++)
		rf_key_free(out[i]);
}

static void
test_take_by_algorithm(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_want w[2] = {
	    {RF_KEY_EC_P384, "acme", "acme/a", "issuance"},
	    {RF_KEY_EC_P256, "acme", "acme/b", "issuance"},
	};
	struct rf_key *out[2];
	size_t taken;

	fill(fx, RF_KEY_EC_P256, 1);
	fill(fx, RF_KEY_EC_P384, 1);
	assert_int_equal(
	    rf_pool_take(fx->keys, fx->audit, w, 2, &who, out, &taken), 0);
	assert_int_equal(taken, 2);
	assert_int_equal(rf_key_alg(out[0]), RF_KEY_EC_P384);
	assert_int_equal(rf_key_alg(out[1]), RF_KEY_EC_P256);
	rf_key_free(out[0]);
	rf_key_free(out[1]);
}

/*
 * More wants than one part of the take (pool.c TAKE_PART, 2,000): each
 * part is its own transaction, and a want in a later part gets its key,
 * at its own index, with its leaf.
 */
#define PARTS_WANTS 2001

/* PARTS_WANTS wants of P-256 keys for acme/mail, by ref. */
static struct rf_pool_want *
parts_wants(const char *ref)
{
	struct rf_pool_want *w = calloc(PARTS_WANTS, sizeof(*w));
	size_t i;

	assert_non_null(w);
	for (i = 0; i < PARTS_WANTS; i++) {
		w[i].alg = RF_KEY_EC_P256;
		w[i].tenant = "acme";
		w[i].taken_by = "acme/mail";
		w[i].ref = ref;
	}
	return w;
}

static void
test_take_in_parts(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_want *w = parts_wants("incident-7");
	struct rf_key **out = calloc(PARTS_WANTS, sizeof(*out));
	struct rf_pool_rec pr;
	size_t taken, i;

	assert_non_null(out);
	/* The last want, alone in the second part, is the only P-384. */
	w[PARTS_WANTS - 1].alg = RF_KEY_EC_P384;
	w[PARTS_WANTS - 1].taken_by = "acme/last";
	fill(fx, RF_KEY_EC_P256, 2);
	fill(fx, RF_KEY_EC_P384, 1);
	assert_int_equal(rf_pool_take(fx->keys, fx->audit, w, PARTS_WANTS, &who,
			     out, &taken),
	    0);
	assert_int_equal(taken, 3);
	assert_non_null(out[0]);
	assert_non_null(out[1]);
	for (i = 2; i < PARTS_WANTS - 1; i++)
		assert_null(out[i]);
	assert_non_null(out[PARTS_WANTS - 1]);
	assert_int_equal(rf_key_alg(out[PARTS_WANTS - 1]), RF_KEY_EC_P384);
	assert_int_equal(
	    rf_store_pool_get(fx->st, rf_key_id(out[PARTS_WANTS - 1]), &pr), 0);
	assert_string_equal(pr.state, "taken");
	assert_string_equal(pr.taken_by, "acme/last");
	assert_int_equal(leaves_of(fx, "pool", "\"take\""), 3);
	assert_int_equal(leaves_of(fx, "pool", "acme/last"), 1);
	for (i = 0; i < PARTS_WANTS; i++)
		rf_key_free(out[i]);
	free(out);
	free(w);
}

/* Holds the store's write lock from a connection of its own once the
 * first part of a take is committed (its leaves are there), for longer
 * than the store's busy timeout. */
struct locker {
	struct fx *fx;
	int r;
};

static void *
locker_main(void *arg)
{
	struct locker *l = arg;
	struct rf_store *st = NULL;
	int i;

	l->r = -1;
	if (rf_store_open(l->fx->cfg.db_path, 0, &st) != 0)
		return NULL;
	for (i = 0; i < 400; i++) {
		struct leaf_count c = {"pool", "\"take\"", 0};
		uint64_t n = 0;

		if (rf_store_leaf_count(st, &n) == 0 &&
		    rf_store_leaf_foreach(st, 0, n, count_leaf, &c) == 0 &&
		    c.n >= 3)
			break;
		usleep(10000);
	}
	if (i < 400 && rf_store_begin(st) == 0) {
		l->r = 0;
		sleep(7); /* beyond the store's busy timeout (5 s) */
		rf_store_rollback(st);
	}
	rf_store_free(st);
	return NULL;
}

/*
 * A take whose second part fails (the store stays locked past its busy
 * timeout): the keys the first part took, committed with their leaves,
 * are rejected, each with a leaf, not left "taken" by no one.
 */
static void
test_take_part_fails(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_want *w = parts_wants("incident-8");
	struct rf_key **out = calloc(PARTS_WANTS, sizeof(*out));
	struct rf_pool_counts pc;
	struct locker l = {fx, -1};
	pthread_t tid;
	size_t taken = 99, i;

	assert_non_null(out);
	fill(fx, RF_KEY_EC_P256, 3);
	setenv("RINGFENCE_TEST_PAUSE_AT", "pool-take-part", 1);
	setenv("RINGFENCE_TEST_PAUSE_MS", "1500", 1);
	assert_int_equal(pthread_create(&tid, NULL, locker_main, &l), 0);
	assert_int_not_equal(rf_pool_take(fx->keys, fx->audit, w, PARTS_WANTS,
				 &who, out, &taken),
	    0);
	unsetenv("RINGFENCE_TEST_PAUSE_AT");
	unsetenv("RINGFENCE_TEST_PAUSE_MS");
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(l.r, 0);
	assert_int_equal(taken, 0);
	for (i = 0; i < PARTS_WANTS; i++)
		assert_null(out[i]);
	/* The first part took all three; each is rejected, with a leaf. */
	assert_int_equal(leaves_of(fx, "pool", "\"take\""), 3);
	assert_int_equal(leaves_of(fx, "pool", "failed in a later part"), 3);
	assert_int_equal(rf_store_pool_count(fx->st, "ec-p256", &pc), 0);
	assert_int_equal(pc.free, 0);
	assert_int_equal(pc.taken, 0);
	assert_int_equal(pc.rejected, 3);
	free(out);
	free(w);
}

static void
test_take_rejects_missing_key(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_want w = {RF_KEY_EC_P256, "acme", "acme/mail", "x"};
	struct rf_key_rec kr;
	struct rf_pool_rec pr;
	struct rf_key *out;
	size_t taken;

	fill(fx, RF_KEY_EC_P256, 1);
	assert_int_equal(rf_store_key_by_purpose(fx->st, "pool", &kr), 0);
	/* The token lost the key the store holds as free. */
	assert_int_equal(rf_keys_destroy(fx->keys, kr.id, &who), 0);
	assert_int_equal(
	    rf_pool_take(fx->keys, fx->audit, &w, 1, &who, &out, &taken), 0);
	assert_int_equal(taken, 0);
	assert_null(out);
	assert_int_equal(rf_store_pool_get(fx->st, kr.id, &pr), 0);
	assert_string_equal(pr.state, "rejected");
	assert_int_equal(leaves_of(fx, "pool", "\"reject\""), 1);
}

static void
test_store_take_needs_transaction(void **state)
{
	struct fx *fx = *state;
	struct rf_pool_taker t = {"acme", "acme/mail", "x"};
	char ids[1][65];
	size_t got = 7;

	assert_int_equal(
	    rf_store_pool_take(fx->st, "ec-p256", &t, 1, rf_now(), ids, &got),
	    RF_ERR_STATE);
	assert_int_equal(got, 0);
}

static void
test_default_target(void **state)
{
	struct fx *fx = *state;
	struct rf_config cfg = fx->cfg;

	cfg.pool_margin = 10;
	cfg.pool_rsa_2048 = -1;
	assert_int_equal(rf_pool_default_target(&cfg, RF_KEY_RSA_2048, 0), 0);
	assert_int_equal(rf_pool_default_target(&cfg, RF_KEY_RSA_2048, 1), 2);
	assert_int_equal(
	    rf_pool_default_target(&cfg, RF_KEY_RSA_2048, 36000), 39600);
	cfg.pool_rsa_2048 = 5;
	assert_int_equal(
	    rf_pool_default_target(&cfg, RF_KEY_RSA_2048, 36000), 5);
}

/* The key that replaces a connection's: its own algorithm, unless the
 * connection requires another (an entra connection's RSA) it lacks. */
static void
test_conn_alg(void **state)
{
	static const struct {
		enum rf_key_alg have, required, want;
	} cases[] = {
	    {RF_KEY_EC_P256, RF_KEY_NONE, RF_KEY_EC_P256},
	    {RF_KEY_EC_P384, RF_KEY_NONE, RF_KEY_EC_P384},
	    {RF_KEY_RSA_3072, RF_KEY_NONE, RF_KEY_RSA_3072},
	    {RF_KEY_EC_P256, RF_KEY_RSA_2048, RF_KEY_RSA_2048},
	    {RF_KEY_EC_P384, RF_KEY_RSA_3072, RF_KEY_RSA_3072},
	    {RF_KEY_RSA_2048, RF_KEY_RSA_2048, RF_KEY_RSA_2048},
	    /* Entra ID takes any RSA key of 2048 bits or more. */
	    {RF_KEY_RSA_3072, RF_KEY_RSA_2048, RF_KEY_RSA_3072},
	    {RF_KEY_RSA_2048, RF_KEY_RSA_3072, RF_KEY_RSA_2048},
	    {RF_KEY_RSA_4096, RF_KEY_RSA_2048, RF_KEY_RSA_4096},
	    {RF_KEY_RSA_4096, RF_KEY_NONE, RF_KEY_RSA_4096},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    rf_pool_conn_alg(cases[i].have, cases[i].required),
		    cases[i].want);
}

static void *
lower_thread(void *arg)
{
	int *res = arg;

	res[0] = rf_pool_lower_priority();
	res[1] = sched_getscheduler(0);
	res[2] = getpriority(PRIO_PROCESS, 0);
	return NULL;
}

static void
test_lower_priority_thread_only(void **state)
{
	pthread_t t;
	int res[3] = {-1, -1, -1};
	int before = getpriority(PRIO_PROCESS, 0);

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, lower_thread, res), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], SCHED_IDLE);
	assert_int_equal(res[2], 19);
	/* The calling thread alone: this one keeps its priority. */
	assert_int_equal(getpriority(PRIO_PROCESS, 0), before);
	assert_int_not_equal(sched_getscheduler(0), SCHED_IDLE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_take_in_parts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_take_part_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refill_records_and_audits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_take_once_with_leaves, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_take_by_algorithm, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_take_rejects_missing_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_store_take_needs_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_default_target, setup, teardown),
	    cmocka_unit_test(test_conn_alg),
	    cmocka_unit_test(test_lower_priority_thread_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
