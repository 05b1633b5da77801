/* Unit tests for kept threads (rf.h: rf_crew_new, rf_crew_run): every
 * index of every round is run once, on the crew's threads, by the same
 * threads round after round, and a run waits for all of its ranges. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rf.h"

#define MAXN 64

struct tally {
	int hits[MAXN];	   /* runs of each index */
	pthread_t who[16]; /* threads seen */
	int nwho;
	pthread_mutex_t mu;
};

static void
count(void *arg, size_t from, size_t to)
{
	struct tally *t = arg;
	pthread_t me = pthread_self();
	int i, known = 0;

	usleep(2000); /* the run must wait for slow ranges */
	pthread_mutex_lock(&t->mu);
	for (; from < to; from++)
		t->hits[from]++;
	for (i = 0; i < t->nwho; i++)
		known |= pthread_equal(t->who[i], me);
	if (!known && t->nwho < 16)
		t->who[t->nwho++] = me;
	pthread_mutex_unlock(&t->mu);
}

static void
test_rounds(void **state)
{
	static const size_t ns[] = {0, 1, 2, 3, 7, 16, 63};
	struct rf_crew *c = NULL;
	struct tally t;
	size_t k, i;
	int round;

	(void)state;
	memset(&t, 0, sizeof(t));
	pthread_mutex_init(&t.mu, NULL);
	assert_int_equal(rf_crew_new(3, "rf-test", &c), 0);
	assert_non_null(c);
	for (round = 0; round < 20; round++)
		for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
			memset(t.hits, 0, sizeof(t.hits));
			rf_crew_run(c, ns[k], count, &t);
			/* Returned only when every range ran, each once. */
			for (i = 0; i < MAXN; i++)
				assert_int_equal(t.hits[i], i < ns[k] ? 1 : 0);
		}
	/* Kept threads: the caller and the 2 workers, not one per round. */
	assert_true(t.nwho >= 2);
	assert_true(t.nwho <= 3);
	rf_crew_free(c);
	rf_crew_free(NULL);
	pthread_mutex_destroy(&t.mu);
}

static void
test_one_thread(void **state)
{
	struct rf_crew *c = NULL;
	struct tally t;
	size_t i;

	(void)state;
	memset(&t, 0, sizeof(t));
	pthread_mutex_init(&t.mu, NULL);
	assert_int_equal(rf_crew_new(1, "rf-test", &c), 0);
	rf_crew_run(c, 10, count, &t);
	for (i = 0; i < 10; i++)
		assert_int_equal(t.hits[i], 1);
	assert_int_equal(t.nwho, 1);
	assert_true(pthread_equal(t.who[0], pthread_self()));
	rf_crew_free(c);
	pthread_mutex_destroy(&t.mu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rounds),
	    cmocka_unit_test(test_one_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
