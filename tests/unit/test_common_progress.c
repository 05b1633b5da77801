/* Unit tests for the progress helper (common/progress.h): what the sink
 * receives, the rate and ETA, the JSON lines, the ETA text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/progress.h"

struct seen {
	int calls;
	char phase[32];
	uint64_t done, total;
	double eta;
	int finished;
};

static int
sink(void *arg, const struct rf_progress_state *s)
{
	struct seen *v = arg;

	v->calls++;
	snprintf(v->phase, sizeof(v->phase), "%s", s->phase);
	v->done = s->done;
	v->total = s->total;
	v->eta = s->eta_s;
	v->finished = s->finished;
	assert_string_equal(s->task, "incident 7 contain");
	assert_true(s->updated_ms >= s->started_ms);
	return 0;
}

/* A quiet progress whose numbers go to v. */
static struct rf_progress *
sunk(struct seen *v)
{
	struct rf_progress *p = NULL;

	memset(v, 0, sizeof(*v));
	assert_int_equal(
	    rf_progress_new("incident 7 contain", RF_PROGRESS_QUIET, &p), 0);
	rf_progress_sink(p, sink, v);
	return p;
}

static void
test_sink(void **state)
{
	struct seen v;
	struct rf_progress *p = sunk(&v);

	(void)state;
	/* A phase is written at once, whatever the throttle. */
	rf_progress_phase(p, "reissue", 1000);
	assert_int_equal(v.calls, 1);
	assert_string_equal(v.phase, "reissue");
	assert_int_equal(v.total, 1000);
	assert_int_equal(v.done, 0);
	assert_true(v.eta < 0); /* no rate yet: unknown */
	/* Within the throttle: counted, not written. */
	rf_progress_add(p, 10);
	assert_int_equal(v.calls, 1);
	usleep((RF_PROGRESS_PERSIST_MS + 50) * 1000);
	rf_progress_add(p, 490);
	assert_int_equal(v.calls, 2);
	assert_int_equal(v.done, 500);
	assert_true(v.eta > 0); /* half done: about as long again */
	/* The last count, within the throttle: written at once (what
	 * follows it may take long). */
	rf_progress_add(p, 500);
	assert_int_equal(v.calls, 3);
	assert_int_equal(v.done, 1000);
	rf_progress_finish(p);
	assert_int_equal(v.finished, 1);
	assert_int_equal(v.done, 1000);
	assert_true(v.eta == 0);
	rf_progress_free(p);
	rf_progress_free(NULL);
	/* NULL: nothing, no crash (commands without progress). */
	rf_progress_phase(NULL, "x", 1);
	rf_progress_add(NULL, 1);
	rf_progress_finish(NULL);
}

/* A phase whose steps differ in cost: the caller's estimate, counting down. */
static void
test_caller_eta(void **state)
{
	struct seen v;
	struct rf_progress *p = sunk(&v);

	(void)state;
	rf_progress_phase_eta(p, "generate keys the pool lacks", 64, 10.0);
	assert_true(v.eta > 9.5 && v.eta <= 10.0);
	usleep((RF_PROGRESS_PERSIST_MS + 50) * 1000);
	/* 60 EC keys made fast: the 4 RSA keys left are most of it. */
	rf_progress_add_eta(p, 60, 1.6);
	assert_int_equal(v.done, 60);
	assert_true(v.eta > 1.0 && v.eta <= 1.6);
	rf_progress_add_eta(p, 4, 0);
	rf_progress_finish(p);
	assert_true(v.eta == 0);
	/* A new phase without one goes back to the rate: unknown at 0. */
	rf_progress_phase(p, "reissue", 10);
	assert_true(v.eta < 0);
	rf_progress_free(p);
}

static void
test_json_lines(void **state)
{
	struct rf_progress *p = NULL;
	char path[] = "/tmp/rf-progress-XXXXXX", line[512];
	int fd, saved, n = 0, finished = 0, unknown = 0;
	FILE *f;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	assert_int_equal(
	    rf_progress_new("revoke tenant", RF_PROGRESS_JSON, &p), 0);
	rf_progress_phase(p, "revoke and publish", 3);
	rf_progress_add(p, 3);
	rf_progress_finish(p);
	rf_progress_free(p);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fd);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		assert_non_null(
		    strstr(line, "{\"progress\":\"revoke tenant\""));
		assert_non_null(strstr(line, "\"total\":3"));
		if (strstr(line, "\"finished\":true") != NULL) {
			finished = 1;
			assert_non_null(strstr(line, "\"done\":3"));
		}
		/* An ETA not known yet (no rate at 0 of 3) is null, as
		 * `keys pool status --json` says it, not -1. */
		if (n == 0)
			assert_non_null(strstr(line, "\"eta_s\":null,"));
		unknown += strstr(line, "\"eta_s\":null") != NULL;
		assert_null(strstr(line, "\"eta_s\":-"));
		n++;
	}
	fclose(f);
	unlink(path);
	assert_true(n >= 2);
	assert_int_equal(finished, 1);
	assert_int_equal(unknown, 1); /* the finished line's is 0 */
}

static void
test_eta_text(void **state)
{
	char s[32];

	(void)state;
	rf_progress_eta_str(-1, s);
	assert_string_equal(s, "?");
	rf_progress_eta_str(3.25, s);
	assert_string_equal(s, "3.2 s");
	rf_progress_eta_str(125, s);
	assert_string_equal(s, "2 min 05 s");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sink),
	    cmocka_unit_test(test_caller_eta),
	    cmocka_unit_test(test_json_lines),
	    cmocka_unit_test(test_eta_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
