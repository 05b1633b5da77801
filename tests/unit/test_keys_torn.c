/*
 * test_keys_torn.c: a key generation the token does not finish leaves
 * nothing the store does not know of. The token's folder goes away part
 * way through a batch (as the incident_resume test's removed token did):
 * every key object left in the token has a row in the store. And an object
 * a torn write left without a CKA_ID is destroyed by the sweep keyd runs
 * at start, on the record, in the embedded store only.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keys_fx.h"
#include "p11_fx.h"

struct away {
	const char *home;
	size_t at; /* move the folder once this many keys are made */
	int moved;
};

static void
move_tokens(void *arg, size_t made)
{
	struct away *a = arg;
	char from[1100], to[1100];

	if (made != a->at || a->moved)
		return;
	snprintf(from, sizeof(from), "%s/tokens", a->home);
	snprintf(to, sizeof(to), "%s/tokens.away", a->home);
	assert_int_equal(rename(from, to), 0);
	a->moved = 1;
}

struct objs {
	char tid[64][65];
	size_t n;
};

static int
collect(void *arg, const struct rf_key_info *ki)
{
	struct objs *o = arg;

	if (o->n < 64)
		snprintf(o->tid[o->n++], sizeof(o->tid[0]), "%s", ki->token_id);
	return 0;
}

static void
test_keygen_token_gone(void **state)
{
	struct fx *fx = *state;
	struct rf_keygen reqs[8];
	struct rf_key *out[8];
	struct away a = {fx->home, 3, 0};
	struct rf_key_rec *recs = NULL;
	struct objs o;
	char from[1100], to[1100];
	size_t i, j, nrecs = 0;

	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 8; i++) {
		reqs[i].alg = RF_KEY_EC_P256;
		reqs[i].label = "torn-batch";
		reqs[i].tenant = NULL;
	}
	rf_keys_test_after_keygen(fx->keys, move_tokens, &a);
	assert_int_not_equal(
	    rf_keys_generate_many(fx->keys, reqs, 8, &who, out), 0);
	assert_true(a.moved);
	rf_keys_free(fx->keys);
	fx->keys = NULL;
	snprintf(from, sizeof(from), "%s/tokens.away", fx->home);
	snprintf(to, sizeof(to), "%s/tokens", fx->home);
	assert_int_equal(rename(from, to), 0);

	/* The token as it is now: every key object in it is known. */
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(rf_keys_list(fx->keys, collect, &o), 0);
	assert_int_equal(rf_store_key_list(fx->st, &recs, &nrecs), 0);
	for (i = 0; i < o.n; i++) {
		for (j = 0; j < nrecs; j++)
			if (strcasecmp(recs[j].token_id, o.tid[i]) == 0)
				break;
		if (j == nrecs)
			break;
	}
	free(recs);
	if (i < o.n)
		fail_msg(
		    "key object with CKA_ID %s: the store has no row for it",
		    o.tid[i]);
}

/* A private key object with no CKA_ID, as a torn write leaves one. */
static void
make_torn(struct p11 *p)
{
	static const uint8_t p256[] = {
	    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	uint8_t value[32];
	CK_ATTRIBUTE t[6] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
	    {CKA_VALUE, value, sizeof(value)},
	};
	CK_OBJECT_HANDLE h;

	memset(value, 0, sizeof(value));
	value[31] = 7;
	assert_int_equal(p->f->C_CreateObject(p->s, t, 6, &h), CKR_OK);
}

static CK_ULONG
torn_count(struct p11 *p)
{
	CK_OBJECT_HANDLE h;

	return p11_find(p, CKO_PRIVATE_KEY, (const uint8_t *)"", 0, &h);
}

struct types {
	size_t n;
};

static int
sweep_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct types *ty = arg;

	if (strcmp(l->type, "sweep") == 0)
		ty->n++;
	return 0;
}

/* A "generating" row, as a generation writes before asking the token. */
static void
note_generating(struct fx *fx, const char *tid_hex)
{
	struct rf_key_rec kr;

	memset(&kr, 0, sizeof(kr));
	snprintf(kr.id, sizeof(kr.id), "pending-%s", tid_hex);
	snprintf(kr.alg, sizeof(kr.alg), "ec-p256");
	snprintf(kr.purpose, sizeof(kr.purpose), "-");
	snprintf(kr.state, sizeof(kr.state), "generating");
	snprintf(kr.token_id, sizeof(kr.token_id), "%s", tid_hex);
	snprintf(kr.token, sizeof(kr.token), "%.32s", fx->cfg.token);
	kr.created = 1;
	assert_int_equal(rf_store_key_note_many(fx->st, &kr, 1), 0);
}

static int
has_row(struct fx *fx, const char *id)
{
	struct rf_key_rec kr;
	int r = rf_store_key_get(fx->st, id, &kr);

	rf_err_clear();
	return r == 0;
}

static void
test_sweep_torn(void **state)
{
	struct fx *fx = *state;
	struct rf_key *k = NULL;
	struct p11 p;
	struct types ty;
	struct rf_key_rec kr;
	CK_OBJECT_HANDLE h;
	uint8_t tid[64];
	size_t swept = 9, tidlen = 0;
	uint64_t before;
	char id[65];

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "kept",
			     NULL, &who, &fx->key),
	    0);
	snprintf(id, sizeof(id), "%s", rf_key_id(fx->key));
	p11_open(&fx->cfg, &p);
	make_torn(&p);
	assert_int_equal(torn_count(&p), 1);
	assert_int_equal(rf_store_meta_set(fx->st, "key_tokens", "1"), 0);

	/* No generation was interrupted (no "generating" row): no token is
	 * read, nothing is touched. */
	before = leaves(fx);
	assert_int_equal(rf_keys_sweep_torn(fx->keys, &who, &swept), 0);
	assert_int_equal(swept, 0);
	assert_int_equal(torn_count(&p), 1);

	/* One was: its token is swept, and its row, with nothing left behind
	 * it, goes. */
	note_generating(fx, "00112233445566778899aabbccddeeff");
	assert_int_equal(rf_keys_sweep_torn(fx->keys, &who, &swept), 0);
	assert_int_equal(swept, 1);
	assert_int_equal(torn_count(&p), 0);
	assert_false(has_row(fx, "pending-00112233445566778899aabbccddeeff"));
	assert_int_equal(leaves(fx), before + 1);
	memset(&ty, 0, sizeof(ty));
	assert_int_equal(
	    rf_store_leaf_search(fx->st, NULL, NULL, 0, 0, 0, sweep_leaf, &ty),
	    0);
	assert_int_equal(ty.n, 1);
	/* The real key is untouched. */
	assert_int_equal(rf_keys_load(fx->keys, id, &k), 0);
	rf_key_free(k);
	/* Nothing more to sweep: no leaf. */
	assert_int_equal(rf_keys_sweep_torn(fx->keys, &who, &swept), 0);
	assert_int_equal(swept, 0);
	assert_int_equal(leaves(fx), before + 1);

	/* The store is not keyd's alone (serve's user writes it): a row that
	 * names a real key's CKA_ID as "generating", its own row gone, makes
	 * the sweep destroy nothing of that key. */
	assert_int_equal(rf_store_key_get(fx->st, id, &kr), 0);
	assert_int_equal(rf_unhex(kr.token_id, tid, sizeof(tid), &tidlen), 0);
	assert_int_equal(tu_sh("sqlite3 '%s' \"UPDATE keys SET id = "
			       "'pending-' || token_id, state = 'generating' "
			       "WHERE id = '%s'\"",
			     fx->cfg.db_path, id),
	    0);
	assert_int_equal(rf_keys_sweep_torn(fx->keys, &who, &swept), 0);
	assert_int_equal(swept, 0);
	assert_int_equal(p11_find(&p, CKO_PRIVATE_KEY, tid, tidlen, &h), 1);
	assert_int_equal(p11_find(&p, CKO_PUBLIC_KEY, tid, tidlen, &h), 1);

	/* Not the embedded store (no key_tokens): a module by path may hold
	 * other applications' objects; nothing is touched. */
	make_torn(&p);
	note_generating(fx, "ffeeddccbbaa99887766554433221100");
	assert_int_equal(tu_sh("sqlite3 '%s' \"DELETE FROM meta WHERE key = "
			       "'key_tokens'\"",
			     fx->cfg.db_path),
	    0);
	assert_int_equal(rf_keys_sweep_torn(fx->keys, &who, &swept), 0);
	assert_int_equal(swept, 0);
	assert_int_equal(torn_count(&p), 1);
	assert_true(has_row(fx, "pending-ffeeddccbbaa99887766554433221100"));
	assert_int_equal(leaves(fx), before + 1);
	p11_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_keygen_token_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep_torn, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
