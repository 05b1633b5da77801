/*
 * Signed tree heads through the real keys module and a fresh SoftHSM
 * token: rf_audit_sth signs with the "audit" key, the signature appends
 * its own leaf, verification is offline, a corrupted signature is
 * rejected, and the periodic policy signs only when something is new.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "audit/audit.h"
#include "keys/keys.h"
#include "store/store.h"

struct fx {
	char *home;
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *a;
	struct rf_keys *keys;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rf_key *key = NULL;
	struct rf_key_rec kr;

	assert_non_null(f);
	f->home = tu_home();
	tu_token(f->home, &f->cfg);
	assert_int_equal(rf_store_open(f->cfg.db_path, 1, &f->st), 0);
	assert_int_equal(rf_audit_open(f->st, &f->a), 0);
	assert_int_equal(rf_keys_open(&f->cfg, f->a, &f->keys), 0);
	assert_int_equal(rf_keys_generate(f->keys, RF_KEY_EC_P256, "audit",
			     NULL, NULL, &key),
	    0);
	memset(&kr, 0, sizeof(kr));
	snprintf(kr.id, sizeof(kr.id), "%s", rf_key_id(key));
	snprintf(kr.alg, sizeof(kr.alg), "ec-p256");
	snprintf(kr.purpose, sizeof(kr.purpose), "audit");
	snprintf(kr.state, sizeof(kr.state), "active");
	kr.created = rf_now();
	assert_int_equal(rf_store_key_add(f->st, &kr), 0);
	rf_key_free(key);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rf_keys_free(f->keys);
	rf_audit_free(f->a);
	rf_store_free(f->st);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

static void
test_sth_sign_verify(void **state)
{
	struct fx *f = *state;
	struct rf_actor who = {"tester", "unit"};
	struct rf_audit_sth_head h, latest;
	struct rf_audit_report rep;
	struct rf_audit_event ev;
	uint8_t root[RF_HASH_LEN];
	uint64_t n0, n1;
	char sql[1200];

	memset(&ev, 0, sizeof(ev));
	ev.type = "tenant";
	ev.tenant = "acme";
	assert_int_equal(rf_audit_append(f->a, &ev, 1, NULL), 0);
	assert_int_equal(rf_audit_size(f->a, &n0), 0);
	assert_int_equal(rf_audit_sth(f->a, f->keys, &who, &h), 0);
	/* The STH covers the leaves before its own signature leaf. */
	assert_int_equal(h.size, n0);
	assert_int_equal(rf_audit_size(f->a, &n1), 0);
	assert_int_equal(n1, n0 + 1);
	assert_int_equal(rf_audit_root(f->a, n0, root), 0);
	assert_memory_equal(root, h.root, RF_HASH_LEN);
	assert_int_equal(rf_audit_sth_latest(f->a, &latest), 0);
	assert_int_equal(latest.size, h.size);
	assert_int_equal(latest.siglen, h.siglen);
	assert_memory_equal(latest.sig, h.sig, h.siglen);
	/* The signature leaf says what it signed. */
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.sths, 1);
	assert_int_equal(rep.leaves, n1);

	/* A corrupted signature is rejected (its last byte changed,
	 * whatever it was: one in 256 ends in zero). */
	snprintf(sql, sizeof(sql),
	    "sqlite3 '%s' \"UPDATE audit_sth SET sig = "
	    "CAST(substr(sig, 1, length(sig) - 1) || "
	    "CASE WHEN substr(sig, -1) = X'00' THEN X'01' ELSE X'00' END "
	    "AS BLOB)\"",
	    f->cfg.db_path);
	assert_int_equal(tu_sh("%s", sql), 0);
	assert_int_equal(
	    rf_audit_verify(f->a, NULL, &rep), RF_ERR_AUDIT_TAMPERED);
	assert_non_null(strstr(rep.problem, "invalid signature"));
}

static void
test_maybe_sth(void **state)
{
	struct fx *f = *state;
	struct rf_audit_event ev;
	struct rf_audit_report rep;
	int made = -1;

	/* The keygen leaf of setup and no STH yet: the first one is due. */
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 0, 0, &made), 0);
	assert_int_equal(made, 1);
	/* Only the STH's own leaf is new: not due, even at interval 0. */
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 0, 0, &made), 0);
	assert_int_equal(made, 0);
	memset(&ev, 0, sizeof(ev));
	ev.type = "tenant";
	assert_int_equal(rf_audit_append(f->a, &ev, 1, NULL), 0);
	/* New leaf but the interval has not passed, leaf trigger off. */
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 3600, 0, &made), 0);
	assert_int_equal(made, 0);
	/* The leaf trigger: 2 leaves since the last STH. */
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 3600, 2, &made), 0);
	assert_int_equal(made, 1);
	/* The interval trigger. */
	assert_int_equal(rf_audit_append(f->a, &ev, 1, NULL), 0);
	rf_clock_set(rf_now() + 7200);
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 3600, 0, &made), 0);
	rf_clock_set(0);
	assert_int_equal(made, 1);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.sths, 3);
}

struct clamp_find {
	int found;
	char data[1024];
};

static int
clamp_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct clamp_find *c = arg;

	if (strcmp(l->type, "clock-clamped") == 0 && l->len < sizeof(c->data)) {
		c->found++;
		memcpy(c->data, l->data, l->len);
		c->data[l->len] = '\0';
	}
	return 0;
}

/* A clock stepped back a day: the new head keeps the last head's time, a
 * leaf records both readings, and the record still verifies. */
static void
test_sth_clock_back(void **state)
{
	struct fx *f = *state;
	struct rf_audit_sth_head h1, h2, h3;
	struct rf_audit_event ev;
	struct rf_audit_report rep;
	struct rf_audit_query q;
	struct clamp_find c;
	char want[64];
	int64_t t0 = 1800000000;
	int made = -1;

	rf_clock_set(t0);
	assert_int_equal(rf_audit_sth(f->a, f->keys, NULL, &h1), 0);
	assert_int_equal(h1.time, t0);
	memset(&ev, 0, sizeof(ev));
	ev.type = "tenant";
	assert_int_equal(rf_audit_append(f->a, &ev, 1, NULL), 0);
	rf_clock_set(t0 - 86400);
	assert_int_equal(rf_audit_sth(f->a, f->keys, NULL, &h2), 0);
	assert_int_equal(h2.time, t0);
	assert_true(h2.size > h1.size);
	/* The automatic path too: leaves trigger while the clock is behind,
	 * and the interval trigger does not fire on a negative difference. */
	assert_int_equal(rf_audit_append(f->a, &ev, 1, NULL), 0);
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 3600, 0, &made), 0);
	assert_int_equal(made, 0);
	assert_int_equal(rf_audit_maybe_sth(f->a, f->keys, 3600, 1, &made), 0);
	assert_int_equal(made, 1);
	assert_int_equal(rf_audit_sth_latest(f->a, &h3), 0);
	assert_int_equal(h3.time, t0);
	rf_clock_set(0);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.sths, 3);
	memset(&q, 0, sizeof(q));
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, &q, clamp_fn, &c), 0);
	assert_int_equal(c.found, 2);
	snprintf(want, sizeof(want), "clock read %" PRId64, t0 - 86400);
	assert_non_null(strstr(c.data, want));
	snprintf(want, sizeof(want), "\"ref\":\"%" PRId64 "\"", t0);
	assert_non_null(strstr(c.data, want));
}

struct signer_arg {
	struct fx *f;
	int fails;
	int rounds; /* 0: 20 */
};

static void *
sign_thread(void *arg)
{
	struct signer_arg *sa = arg;
	struct rf_key_rec kr;
	struct rf_key *key = NULL;
	struct rf_sign_req req;
	struct rf_sig sig;
	static const uint8_t msg[] = "assertion";
	int i, r;

	/* The store handle is shared: use it under the audit lock. */
	rf_audit_lock(sa->f->a);
	i = rf_store_key_by_purpose(sa->f->st, "audit", &kr);
	rf_audit_unlock(sa->f->a);
	if (i != 0 || rf_keys_load(sa->f->keys, kr.id, &key) != 0) {
		sa->fails++;
		return NULL;
	}
	memset(&req, 0, sizeof(req));
	req.msg = msg;
	req.msglen = sizeof(msg);
	req.what = "assertion";
	for (i = 0; i < (sa->rounds > 0 ? sa->rounds : 20); i++) {
		if ((r = rf_keys_sign(sa->f->keys, key, &req, 1, NULL, &sig)) !=
		    0) {
			fprintf(stderr, "signing: %s\n", rf_err_msg(r));
			sa->fails++;
		} else
			rf_sig_clear(&sig);
	}
	rf_key_free(key);
	return NULL;
}

/*
 * Tree heads signed while another thread signs through keys: no deadlock
 * (keys appends under its lock, then ours; rf_audit_sth never holds ours
 * while it signs), and every leaf and head verifies.
 */
static void
test_sth_concurrent(void **state)
{
	struct fx *f = *state;
	struct signer_arg sa = {f, 0, 0};
	struct rf_audit_report rep;
	pthread_t t;
	int i, r, fails;

	assert_int_equal(pthread_create(&t, NULL, sign_thread, &sa), 0);
	/* Joined before any assertion: a failure must not free what the
	 * signing thread still uses. */
	for (i = 0, fails = 0; i < 10; i++)
		if ((r = rf_audit_sth(f->a, f->keys, NULL, NULL)) != 0) {
			fprintf(stderr, "tree head: %s\n", rf_err_msg(r));
			fails++;
		}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(fails, 0);
	assert_int_equal(sa.fails, 0);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.sths, 10);
}

/* Opens a store transaction under the audit lock and holds it 300 ms. */
static void *
hold_thread(void *arg)
{
	struct fx *f = arg;
	struct rf_store *st = rf_audit_store(f->a);
	int r;

	rf_audit_lock(f->a);
	if ((r = rf_store_begin(st)) == 0) {
		usleep(300 * 1000);
		r = rf_store_commit(st);
	}
	rf_audit_unlock(f->a);
	return r == 0 ? NULL : (void *)1;
}

/*
 * Another thread's open transaction on the shared store is not this
 * thread's: signing waits for it, then signs. keys once asked the
 * connection without the lock and refused ("inside an open store
 * transaction"). The signature pauses before its append (a test seam)
 * while the other thread opens its transaction.
 */
static void
test_sign_beside_transaction(void **state)
{
	struct fx *f = *state;
	struct signer_arg sa = {f, 0, 0};
	pthread_t signer, holder;
	void *held = NULL;

	setenv("RINGFENCE_TEST_PAUSE_AT", "keys-append", 1);
	setenv("RINGFENCE_TEST_PAUSE_MS", "200", 1);
	sa.rounds = 1;
	assert_int_equal(pthread_create(&signer, NULL, sign_thread, &sa), 0);
	usleep(50 * 1000); /* the signer is in its pause */
	assert_int_equal(pthread_create(&holder, NULL, hold_thread, f), 0);
	assert_int_equal(pthread_join(signer, NULL), 0);
	assert_int_equal(pthread_join(holder, &held), 0);
	unsetenv("RINGFENCE_TEST_PAUSE_AT");
	unsetenv("RINGFENCE_TEST_PAUSE_MS");
	assert_null(held);
	assert_int_equal(sa.fails, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_sth_sign_verify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maybe_sth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sth_clock_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sth_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sign_beside_transaction, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
