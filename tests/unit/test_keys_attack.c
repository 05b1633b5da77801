/*
 * test_keys_attack.c: the review's re-enable attack, played with the PIN
 * straight against the PKCS#11 module (not through src/keys): a key made
 * by ringfence can be neither modified (CKA_SIGN turned back on, CKA_ID
 * renamed) nor copied to a session object, and once destroyed nothing of
 * it is left to find.
 */
#include <string.h>

#include "keys_fx.h"
#include "p11_fx.h"

static CK_BBOOL
p11_bool(struct p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL b = CK_TRUE;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};

	assert_int_equal(p->f->C_GetAttributeValue(p->s, h, &a, 1), CKR_OK);
	return b;
}

static void
test_reenable_attack(void **state)
{
	struct fx *fx = *state;
	struct rf_key_rec kr;
	struct p11 p;
	CK_OBJECT_HANDLE h, hpub, copy = CK_INVALID_HANDLE;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE sign = {CKA_SIGN, &yes, sizeof(yes)};
	CK_ATTRIBUTE session = {CKA_TOKEN, &no, sizeof(no)};
	uint8_t tid[32], other[16];
	CK_ATTRIBUTE rename = {CKA_ID, other, sizeof(other)};
	struct rf_sign_req req = {(const uint8_t *)"m", 1, RF_SIG_DEFAULT,
	    "cert", "1", NULL, NULL, NULL, NULL, 0};
	struct rf_sig sig;
	size_t len = 0;
	CK_RV rv;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "victim",
			     "acme", &who, &fx->key),
	    0);
	/* The store maps the key id to a random CKA_ID of 16 bytes. */
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(fx->key), &kr), 0);
	assert_int_equal(strlen(kr.token_id), 32);
	assert_int_equal(rf_unhex(kr.token_id, tid, sizeof(tid), &len), 0);
	assert_string_equal(kr.token, fx->cfg.token);
	/* Announced as "generating" by its CKA_ID before the token made it;
	 * that row became the key's own. */
	assert_string_equal(kr.state, "generated");
	assert_int_equal(tu_sh("test \"$(sqlite3 '%s' \"SELECT count(*) FROM "
			       "keys WHERE state = 'generating'\")\" = 0",
			     fx->cfg.db_path),
	    0);

	/* An incident disables it: the store refuses it from then on. */
	assert_int_equal(
	    rf_keys_disable(fx->keys, rf_key_id(fx->key), &who), 0);
	assert_int_equal(rf_keys_sign(fx->keys, fx->key, &req, 1, &who, &sig),
	    RF_ERR_KEY_DISABLED);

	p11_open(&fx->cfg, &p);
	assert_int_equal(p11_find(&p, CKO_PRIVATE_KEY, tid, len, &h), 1);
	assert_int_equal(p11_find(&p, CKO_PUBLIC_KEY, tid, len, &hpub), 1);
	assert_int_equal(p11_bool(&p, h, CKA_MODIFIABLE), CK_FALSE);
	assert_int_equal(p11_bool(&p, h, CKA_COPYABLE), CK_FALSE);
	assert_int_equal(p11_bool(&p, h, CKA_SIGN_RECOVER), CK_FALSE);
	assert_int_equal(p11_bool(&p, hpub, CKA_MODIFIABLE), CK_FALSE);

	/* With the PIN: CKA_SIGN cannot be set, CKA_ID not renamed. */
	rv = p.f->C_SetAttributeValue(p.s, h, &sign, 1);
	assert_int_not_equal(rv, CKR_OK);
	memset(other, 0x41, sizeof(other));
	rv = p.f->C_SetAttributeValue(p.s, h, &rename, 1);
	assert_int_not_equal(rv, CKR_OK);
	rv = p.f->C_SetAttributeValue(p.s, hpub, &rename, 1);
	assert_int_not_equal(rv, CKR_OK);
	/* Nor copied to a session object. */
	rv = p.f->C_CopyObject(p.s, h, &session, 1, &copy);
	assert_int_not_equal(rv, CKR_OK);
	assert_int_equal(copy, CK_INVALID_HANDLE);
	rv = p.f->C_CopyObject(p.s, h, NULL, 0, &copy);
	assert_int_not_equal(rv, CKR_OK);

	/* Taken out of service: destroyed, nothing left to find. */
	assert_int_equal(
	    rf_keys_destroy(fx->keys, rf_key_id(fx->key), &who), 0);
	assert_int_equal(p11_find(&p, CKO_PRIVATE_KEY, tid, len, &h), 0);
	assert_int_equal(p11_find(&p, CKO_PUBLIC_KEY, tid, len, &h), 0);
	assert_int_equal(rf_store_key_get(fx->st, rf_key_id(fx->key), &kr), 0);
	assert_string_equal(kr.state, "destroyed");
	p11_close(&p);
}

struct types {
	char t[4][24];
	size_t n;
};

static int
leaf_type(void *arg, const struct rf_leaf_rec *l)
{
	struct types *ty = arg;

	if (ty->n < 4)
		snprintf(ty->t[ty->n], sizeof(ty->t[0]), "%s", l->type);
	ty->n++;
	return 0;
}

/* The intent is on record before the act, the result after it. */
static void
test_destroy_leaves(void **state)
{
	struct fx *fx = *state;
	struct types ty;
	char id[65];

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "gone",
			     NULL, &who, &fx->key),
	    0);
	snprintf(id, sizeof(id), "%s", rf_key_id(fx->key));
	assert_int_equal(leaves(fx), 1);
	assert_int_equal(rf_keys_destroy(fx->keys, id, &who), 0);
	assert_int_equal(leaves(fx), 3);
	memset(&ty, 0, sizeof(ty));
	assert_int_equal(
	    rf_store_leaf_search(fx->st, id, NULL, 0, 0, 0, leaf_type, &ty), 0);
	assert_int_equal(ty.n, 3);
	assert_string_equal(ty.t[0], "keygen");
	assert_string_equal(ty.t[1], "destroy-intent");
	assert_string_equal(ty.t[2], "destroy");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_reenable_attack, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destroy_leaves, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
