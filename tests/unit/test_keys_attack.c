/*
 * test_keys_attack.c: the review's re-enable attack, played with the PIN
 * straight against the PKCS#11 module (not through src/keys): a key made
 * by ringfence can be neither modified (CKA_SIGN turned back on, CKA_ID
 * renamed) nor copied to a session object, and once destroyed nothing of
 * it is left to find. A store that names another key's objects cannot
 * make a destroy take them (issue 11).
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

/* Key id's record names CKA_ID tid_hex (a store writer's change). */
static void
set_token_id(struct fx *fx, const char *id, const char *tid_hex)
{
	assert_int_equal(tu_sh("sqlite3 -cmd '.timeout 10000' '%s' \"UPDATE "
			       "keys SET token_id = '%s' WHERE id = '%s'\"",
			     fx->cfg.db_path, tid_hex, id),
	    0);
}

/* Two new keys, an EC one (*a) and one of alg2 (fx->key); their ids. */
static void
two_keys(struct fx *fx, enum rf_key_alg alg2, struct rf_key **a, char ida[65],
    char idb[65])
{
	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "a", NULL, &who, a), 0);
	assert_int_equal(
	    rf_keys_generate(fx->keys, alg2, "b", "acme", &who, &fx->key), 0);
	snprintf(ida, 65, "%s", rf_key_id(*a));
	snprintf(idb, 65, "%s", rf_key_id(fx->key));
}

static void
assert_state(struct fx *fx, const char *id, const char *state)
{
	struct rf_key_rec kr;

	assert_int_equal(rf_store_key_get(fx->st, id, &kr), 0);
	assert_string_equal(kr.state, state);
}

/* Key id's record given back its token id tid: its destroy finishes. */
static void
repaired_destroy(struct fx *fx, const char *id, const char *tid)
{
	const char *idp[1] = {id};
	size_t done = 0;

	set_token_id(fx, id, tid);
	assert_int_equal(
	    rf_keys_destroy_many(fx->keys, idp, 1, &who, &done), 0);
	assert_int_equal(done, 1);
	assert_state(fx, id, "destroyed");
}

/*
 * Issue 11: a store changed after keyd's checks would aim a destroy at
 * another key. Key b's record is pointed at key a's objects; each destroy
 * checks the public key of the object it is about to destroy against the
 * id: by the handles kept from generation (the first), by a search over
 * the token (the kept handles are dropped after it), one key alone
 * (rf_keys_destroy). Each destroys nothing of either key, says what the
 * object's public key hashes to, and leaves b's record short of
 * destroyed. With the record put back, the destroy finishes.
 */
static void
test_destroy_redirected(void **state)
{
	struct fx *fx = *state;
	struct rf_key *a = NULL, *again = NULL;
	struct rf_key_rec ka, kb;
	char ida[65], idb[65], want[256];
	const char *idp[1] = {idb};
	size_t done = 0;
	int pass, r;

	two_keys(fx, RF_KEY_EC_P256, &a, ida, idb);
	assert_int_equal(rf_store_key_get(fx->st, ida, &ka), 0);
	assert_int_equal(rf_store_key_get(fx->st, idb, &kb), 0);
	set_token_id(fx, idb, ka.token_id);
	snprintf(want, sizeof(want),
	    "key %s in the token has a public key hashing to %s", idb, ida);
	for (pass = 0; pass < 3; pass++) {
		r = pass == 2
		    ? rf_keys_destroy(fx->keys, idb, &who)
		    : rf_keys_destroy_many(fx->keys, idp, 1, &who, &done);
		assert_int_equal(r, RF_ERR_TOKEN);
		assert_non_null(strstr(rf_err_msg(r), want));
		assert_non_null(
		    strstr(rf_err_msg(r), "nothing of it was destroyed"));
		/* a is whole (it loads); b is not recorded destroyed. */
		assert_int_equal(rf_keys_load(fx->keys, ida, &again), 0);
		rf_key_free(again);
		assert_state(fx, ida, "generated");
		assert_state(fx, idb, "destroying");
	}
	/* The record put back: b's own objects are checked and go. */
	repaired_destroy(fx, idb, kb.token_id);
	assert_int_equal(
	    rf_keys_load(fx->keys, idb, &again), RF_ERR_KEY_NOT_FOUND);
	assert_int_equal(rf_keys_load(fx->keys, ida, &again), 0);
	rf_key_free(again);
	rf_key_free(a);
}

/*
 * Key b's record made to name no object at all (a CKA_ID no object has):
 * the destroy finds b under its own CKA_ID by its public key and leaves
 * it, rather than record "destroyed, not in the token" while its objects
 * stay (the review's finding), in a batch and alone. With the record put
 * back it goes.
 */
static void
test_destroy_lost(void **state)
{
	struct fx *fx = *state;
	struct rf_key *a = NULL;
	struct rf_key_rec kb;
	char ida[65], idb[65], want[256];
	const char *idp[1] = {idb};
	size_t done = 0;
	int r;

	two_keys(fx, RF_KEY_EC_P256, &a, ida, idb);
	assert_int_equal(rf_store_key_get(fx->st, idb, &kb), 0);
	/* The handles kept from the generation go with a first refusal. */
	set_token_id(fx, idb, "00112233445566778899aabbccddeeff");
	snprintf(want, sizeof(want),
	    "key %s is in the token under a CKA_ID that is not the store's",
	    idb);
	r = rf_keys_destroy_many(fx->keys, idp, 1, &who, &done);
	assert_int_equal(r, RF_ERR_TOKEN);
	assert_non_null(strstr(rf_err_msg(r), want));
	assert_state(fx, idb, "destroying");
	/* One key alone (rf_keys_destroy) is looked for the same way. */
	r = rf_keys_destroy(fx->keys, idb, &who);
	assert_int_equal(r, RF_ERR_TOKEN);
	assert_non_null(strstr(rf_err_msg(r), want));
	assert_state(fx, idb, "destroying");
	repaired_destroy(fx, idb, kb.token_id);
	rf_key_free(a);
}

/* The objects of key id in the token: private and public (0 or 1 each). */
static void
key_objects(struct fx *fx, struct p11 *p, const char *id, CK_ULONG *npriv,
    CK_OBJECT_HANDLE *hpriv, CK_ULONG *npub, CK_OBJECT_HANDLE *hpub)
{
	struct rf_key_rec kr;
	uint8_t tid[32];
	size_t len = 0;

	assert_int_equal(rf_store_key_get(fx->st, id, &kr), 0);
	assert_int_equal(rf_unhex(kr.token_id, tid, sizeof(tid), &len), 0);
	*npriv = p11_find(p, CKO_PRIVATE_KEY, tid, len, hpriv);
	*npub = p11_find(p, CKO_PUBLIC_KEY, tid, len, hpub);
}

/*
 * A private key object without its public key cannot be checked: it is
 * left, and the destroy says so. A public key object alone (a destroy
 * killed between its two objects: the private one goes first) is checked
 * and destroyed.
 */
static void
test_destroy_unpaired(void **state)
{
	struct fx *fx = *state;
	struct rf_key *c = NULL;
	struct p11 p;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_ULONG npriv, npub;
	char idc[65], idd[65];
	const char *idp[2] = {idc, idd};
	size_t done = 0;
	int r;

	two_keys(fx, RF_KEY_RSA_2048, &c, idc, idd);
	p11_open(&fx->cfg, &p);
	key_objects(fx, &p, idc, &npriv, &hpriv, &npub, &hpub);
	assert_int_equal(npub, 1);
	assert_int_equal(p.f->C_DestroyObject(p.s, hpub), CKR_OK);
	key_objects(fx, &p, idd, &npriv, &hpriv, &npub, &hpub);
	assert_int_equal(npriv, 1);
	assert_int_equal(p.f->C_DestroyObject(p.s, hpriv), CKR_OK);

	r = rf_keys_destroy_many(fx->keys, idp, 2, &who, &done);
	assert_int_equal(r, RF_ERR_TOKEN);
	assert_non_null(strstr(rf_err_msg(r), idc));
	assert_non_null(strstr(rf_err_msg(r), "no public key to check it"));
	key_objects(fx, &p, idc, &npriv, &hpriv, &npub, &hpub);
	assert_int_equal(npriv, 1);
	assert_state(fx, idc, "destroying");
	key_objects(fx, &p, idd, &npriv, &hpriv, &npub, &hpub);
	assert_int_equal(npriv + npub, 0);
	assert_state(fx, idd, "destroyed");
	/* One key alone: the same. */
	r = rf_keys_destroy(fx->keys, idc, &who);
	assert_int_equal(r, RF_ERR_TOKEN);
	assert_non_null(strstr(rf_err_msg(r), "no public key to check it"));
	key_objects(fx, &p, idc, &npriv, &hpriv, &npub, &hpub);
	assert_int_equal(npriv, 1);
	p11_close(&p);
	rf_key_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_reenable_attack, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destroy_leaves, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destroy_redirected, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destroy_unpaired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destroy_lost, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
