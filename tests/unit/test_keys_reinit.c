/*
 * test_keys_reinit.c: one owner of the module. While one handle of the
 * process re-initialises the module after a device error, every other use
 * of the module in the process waits (module_rw); afterwards the other
 * handles notice the new generation and go on with fresh sessions. Under
 * ASan a signature racing C_Finalize inside SoftHSM would be a
 * use-after-free; here every signature of the busy handle succeeds.
 */
#include <pthread.h>

#include "keys_fx.h"

struct busy {
	struct rf_keys *keys;
	struct rf_key *key;
	volatile int stop;
	int signed_ok, failed;
	char msg[256];
};

static void *
sign_loop(void *arg)
{
	struct busy *b = arg;
	struct rf_sign_req req = {(const uint8_t *)"tbs", 3, RF_SIG_DEFAULT,
	    "test", "1", NULL, NULL, NULL, NULL, 0};
	struct rf_sig sig;
	int r;

	while (!b->stop) {
		if ((r = rf_keys_sign(b->keys, b->key, &req, 1, &who, &sig)) !=
		    0) {
			if (b->failed++ == 0)
				snprintf(b->msg, sizeof(b->msg), "%s",
				    rf_err_msg(r));
			continue;
		}
		b->signed_ok++;
		rf_sig_clear(&sig);
	}
	return NULL;
}

static void
test_reinit_pauses_others(void **state)
{
	struct fx *fx = *state;
	struct rf_keys *other = NULL;
	struct rf_store *st2 = NULL;
	struct rf_audit *audit2 = NULL;
	struct rf_key *k2 = NULL;
	struct busy b;
	pthread_t t;
	struct rf_sign_req req = {(const uint8_t *)"m", 1, RF_SIG_DEFAULT,
	    "test", "2", NULL, NULL, NULL, NULL, 0};
	struct rf_sig sig;
	int i;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "busy",
			     NULL, &who, &fx->key),
	    0);
	/* A second handle of the same process, with its own record handle
	 * (as serve gives each of its users). */
	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &st2), 0);
	assert_int_equal(rf_audit_open(st2, &audit2), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, audit2, &other), 0);
	assert_int_equal(rf_keys_load(other, rf_key_id(fx->key), &k2), 0);

	memset(&b, 0, sizeof(b));
	b.keys = fx->keys;
	b.key = fx->key;
	assert_int_equal(pthread_create(&t, NULL, sign_loop, &b), 0);
	for (i = 0; i < 20; i++) {
		assert_int_equal(rf_keys_test_device_error(other), 0);
		/* The recovering handle signs right after. */
		assert_int_equal(
		    rf_keys_sign(other, k2, &req, 1, &who, &sig), 0);
		rf_sig_clear(&sig);
	}
	b.stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
	if (b.failed != 0)
		fail_msg("%d of %d signatures of the busy handle failed: %s",
		    b.failed, b.failed + b.signed_ok, b.msg);
	assert_true(b.signed_ok > 0);
	/* And the busy handle, its sessions of an older generation dropped,
	 * goes on. */
	assert_int_equal(
	    rf_keys_sign(fx->keys, fx->key, &req, 1, &who, &sig), 0);
	rf_sig_clear(&sig);
	assert_true(leaves(fx) >= (uint64_t)b.signed_ok + 21);
	rf_key_free(k2);
	rf_keys_free(other);
	rf_audit_free(audit2);
	rf_store_free(st2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_reinit_pauses_others, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
