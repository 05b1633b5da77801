/*
 * test_keys_tokmeta.c: verified copies of SoftHSM's token.object. Open
 * saves a copy of each token's file; a file left empty or cut short (a
 * process killed while SoftHSM rewrote it at login) is put back from its
 * copy before C_Initialize, with a "token-restored" leaf; a copy that
 * does not verify is never used. The copies also say which token's folder
 * is missing, and a key its token does not show while its folder is
 * missing is not recorded destroyed.
 */
#include <stdio.h>
#include <string.h>

#include "keys_fx.h"

#include "keys/tokmeta.h"

/* The single token folder of the fixture (tu_token makes one). */
static void
token_folder(struct fx *fx, char *out, size_t cap)
{
	FILE *p;
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "ls -d '%s'/tokens/*/ | head -1", fx->home);
	assert_non_null(p = popen(cmd, "r"));
	assert_non_null(fgets(out, (int)cap, p));
	pclose(p);
	out[strcspn(out, "\n")] = '\0';
}

static size_t
restored_leaves(struct fx *fx)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd),
	    "test \"$(sqlite3 '%s' \"SELECT count(*) FROM audit_leaf WHERE "
	    "type = 'token-restored'\")\" = 1",
	    fx->cfg.db_path);
	return tu_sh("%s", cmd) == 0 ? 1 : 0;
}

static void
test_parse(void **state)
{
	static const uint8_t junk[16] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff};
	char label[33], serial[17];

	(void)state;
	assert_int_equal(
	    rf_keys_tokmeta_parse(junk, 0, label, serial), RF_ERR_MALFORMED);
	assert_int_equal(rf_keys_tokmeta_parse(junk, 8, label, serial),
	    RF_ERR_MALFORMED); /* a generation, no label */
	assert_int_equal(
	    rf_keys_tokmeta_parse(junk, 16, label, serial), RF_ERR_MALFORMED);
}

static void
test_copy_and_restore(void **state)
{
	struct fx *fx = *state;
	char dir[1100], obj[1200], copy[1300], label[33], serial[17];
	const char *uuid;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t n;

	/* Open saved a verified copy, 0600 in a 0700 folder. */
	token_folder(fx, dir, sizeof(dir));
	dir[strlen(dir) - 1] = '\0'; /* ls -d ends it with / */
	uuid = strrchr(dir, '/') + 1;
	snprintf(obj, sizeof(obj), "%s/token.object", dir);
	snprintf(copy, sizeof(copy), "%s/token-meta/%s.object", fx->home, uuid);
	assert_int_equal(rf_read_file(copy, 65536, &buf, &len), 0);
	assert_int_equal(rf_keys_tokmeta_parse(buf, len, label, serial), 0);
	assert_string_equal(label, "ringfence");
	assert_true(strlen(serial) > 0);
	free(buf);
	assert_int_equal(tu_sh("test \"$(stat -c %%a '%s/token-meta')\" = 700 "
			       "&& test \"$(stat -c %%a '%s')\" = 600",
			     fx->home, copy),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "k", NULL,
			     &who, &fx->key),
	    0);

	/* Killed while SoftHSM rewrote it: empty. Open puts it back. */
	rf_keys_free(fx->keys);
	fx->keys = NULL;
	assert_int_equal(tu_sh(": >'%s'", obj), 0);
	n = leaves(fx);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	assert_int_equal(tu_sh("test -s '%s'", obj), 0);
	assert_int_equal(leaves(fx), n + 1);
	assert_int_equal(restored_leaves(fx), 1);
	{
		struct rf_key *again = NULL;

		assert_int_equal(
		    rf_keys_load(fx->keys, rf_key_id(fx->key), &again), 0);
		rf_key_free(again);
	}

	/* Cut short, and a copy that does not verify (another store's
	 * label): not used, so the token is missing, and says so. */
	rf_keys_free(fx->keys);
	fx->keys = NULL;
	assert_int_equal(tu_sh("cp '%s' '%s.good' && head -c 100 '%s.good' "
			       ">'%s' && sed -i 's/ringfence/otherstor/' '%s'",
			     obj, obj, obj, obj, copy),
	    0);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys),
	    RF_ERR_TOKEN_NOT_FOUND);
	assert_null(fx->keys);
	assert_int_equal(tu_sh("test $(stat -c %%s '%s') = 100", obj), 0);
	/* The right file back: the token opens again. */
	assert_int_equal(tu_sh("cp '%s.good' '%s'", obj, obj), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
}

static int
missing(struct fx *fx, struct rf_tokmeta_folder *m)
{
	char tdir[1100];
	int n = -1;

	assert_int_equal(rf_tokmeta_missing(&fx->cfg, tdir, sizeof(tdir), m,
			     RF_TOKMETA_MAX, &n),
	    0);
	return n;
}

static void
test_folder_missing(void **state)
{
	struct fx *fx = *state;
	struct rf_tokmeta_folder m[RF_TOKMETA_MAX];
	struct rf_key_rec kr;
	char dir[1100], renamed[1200], away[1200];
	const char *uuid;

	token_folder(fx, dir, sizeof(dir));
	dir[strlen(dir) - 1] = '\0'; /* ls -d ends it with / */
	uuid = strrchr(dir, '/') + 1;
	snprintf(renamed, sizeof(renamed), "%s.renamed", dir);
	snprintf(away, sizeof(away), "%s/away", fx->home);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "k", NULL,
			     &who, &fx->key),
	    0);
	assert_int_equal(missing(fx, m), 0);
	/* Another folder name in the token folder: the token is there. */
	assert_int_equal(rename(dir, renamed), 0);
	assert_int_equal(missing(fx, m), 0);
	/* Moved out of it: missing, named by its copy. */
	assert_int_equal(rename(renamed, away), 0);
	assert_int_equal(missing(fx, m), 1);
	assert_string_equal(m[0].label, "ringfence");
	assert_string_equal(m[0].uuid, uuid);

	/* The token shows nothing now: the key is not recorded destroyed,
	 * and signs nothing ("destroying"). */
	assert_int_equal(rf_keys_destroy(fx->keys, rf_key_id(fx->key), &who),
	    RF_ERR_TOKEN_NOT_FOUND);
	assert_non_null(strstr(rf_err_msg(RF_ERR_TOKEN_NOT_FOUND),
	    "put the token back, then run the same command again"));
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(fx->key), &kr), 0);
	assert_string_equal(kr.state, "destroying");
	/* Back, but SoftHSM, having found the folder gone, shows the token
	 * empty for the rest of the process's life: still not destroyed. */
	assert_int_equal(rename(away, dir), 0);
	assert_int_equal(missing(fx, m), 0);
	assert_int_equal(rf_keys_destroy(fx->keys, rf_key_id(fx->key), &who),
	    RF_ERR_TOKEN_NOT_FOUND);
	assert_non_null(
	    strstr(rf_err_msg(RF_ERR_TOKEN_NOT_FOUND), "does not answer"));
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(fx->key), &kr), 0);
	assert_string_equal(kr.state, "destroying");
	/* The token read again (as the next keyd does): destroyed in it. */
	rf_keys_free(fx->keys);
	fx->keys = NULL;
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	assert_int_equal(
	    rf_keys_destroy(fx->keys, rf_key_id(fx->key), &who), 0);
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(fx->key), &kr), 0);
	assert_string_equal(kr.state, "destroyed");
	assert_int_equal(tu_sh("test \"$(sqlite3 '%s' \"SELECT count(*) FROM "
			       "audit_leaf WHERE type = 'destroy' AND "
			       "instr(data, 'destroyed in the token') > 0\")\" "
			       "= 1",
			     fx->cfg.db_path),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test_setup_teardown(
		test_copy_and_restore, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_folder_missing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
