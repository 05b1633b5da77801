/*
 * rf_keys_sign_group, as keyd uses it for the requests of many callers at
 * once: every set's leaves in one run of the record, in set order, before
 * any signature; each set signed with its own key and verified here with
 * OpenSSL; a set that cannot be signed fails alone, without leaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "keys_fx.h"

#define SETS 5
#define BIG 40 /* more than one signing job */

static int
ossl_verify(EVP_PKEY *pub, int digest, enum rf_sig_scheme scheme,
    const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *m;
	EVP_PKEY_CTX *p = NULL;
	int ok;

	if (digest) {
		assert_non_null(p = EVP_PKEY_CTX_new(pub, NULL));
		assert_int_equal(EVP_PKEY_verify_init(p), 1);
		ok = EVP_PKEY_verify(p, sig, siglen, msg, len);
		EVP_PKEY_CTX_free(p);
		return ok;
	}
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(
	    EVP_DigestVerifyInit(m, &p, EVP_sha256(), NULL, pub), 1);
	if (scheme == RF_SIG_RSA_PSS) {
		assert_int_equal(
		    EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(p, 32), 1);
	}
	ok = EVP_DigestVerify(m, sig, siglen, msg, len);
	EVP_MD_CTX_free(m);
	return ok;
}

/* The leaves of the group, in order: whose key, which message. */
struct order {
	const char *key_id[BIG + 8];
	const char *ref[BIG + 8];
	size_t seen;
};

static int
check_order(void *arg, const struct rf_leaf_rec *l)
{
	struct order *o = arg;

	assert_string_equal(l->type, "sign");
	assert_non_null(l->key_id);
	assert_string_equal(l->key_id, o->key_id[o->seen]);
	assert_non_null(
	    memmem(l->data, l->len, o->ref[o->seen], strlen(o->ref[o->seen])));
	o->seen++;
	return 0;
}

static void
test_group(void **state)
{
	struct fx *fx = *state;
	struct rf_key *ec, *rsa, *off;
	struct rf_sign_set sets[SETS];
	struct rf_sign_req reqs[SETS][BIG];
	struct rf_sig sigs[SETS][BIG];
	const int nreq[SETS] = {3, 2, 1, 1, BIG};
	char refs[SETS][BIG][48];
	uint8_t msg[SETS][BIG][64], dig[32];
	struct order o;
	uint64_t before;
	size_t i, k, expect = 0;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "g-ec", NULL, &who, &ec),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "g-rsa",
			     NULL, &who, &rsa),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "g-off",
			     NULL, &who, &off),
	    0);
	assert_int_equal(rf_keys_disable(fx->keys, rf_key_id(off), &who), 0);
	memset(sets, 0, sizeof(sets));
	memset(reqs, 0, sizeof(reqs));
	memset(&o, 0, sizeof(o));
	for (i = 0; i < SETS; i++) {
		/* 0: EC, 1: RSA-PSS, 2: an EC digest, 3: the disabled key,
		 * 4: EC again, in several jobs. */
		sets[i].key = i == 1 ? rsa : i == 3 ? off : ec;
		sets[i].digest = i == 2;
		sets[i].reqs = reqs[i];
		sets[i].n = (size_t)nreq[i];
		sets[i].who = &who;
		sets[i].sigs = sigs[i];
		for (k = 0; k < sets[i].n; k++) {
			snprintf((char *)msg[i][k], sizeof(msg[i][k]),
			    "set %zu msg %zu", i, k);
			snprintf(
			    refs[i][k], sizeof(refs[i][k]), "g%zu.%zu", i, k);
			reqs[i][k].what = "cert";
			reqs[i][k].ref = refs[i][k];
			reqs[i][k].scheme =
			    i == 1 ? RF_SIG_RSA_PSS : RF_SIG_DEFAULT;
			reqs[i][k].msg = msg[i][k];
			reqs[i][k].msglen = strlen((const char *)msg[i][k]);
			if (i == 2) {
				assert_int_equal(
				    EVP_Digest(msg[i][k], reqs[i][k].msglen,
					dig, NULL, EVP_sha256(), NULL),
				    1);
				reqs[i][k].msg = dig;
				reqs[i][k].msglen = sizeof(dig);
			}
			if (i != 3) {
				o.key_id[expect] = rf_key_id(sets[i].key);
				o.ref[expect] = refs[i][k];
				expect++;
			}
		}
	}
	before = leaves(fx);
	rf_keys_sign_group(fx->keys, sets, SETS);

	/* The disabled key's set failed alone, with no leaf and no
	 * signature. */
	assert_int_equal(sets[3].r, RF_ERR_KEY_DISABLED);
	assert_non_null(strstr(sets[3].msg, "disabled"));
	assert_null(sigs[3][0].sig);
	/* Every other set: signed, and each signature verifies. */
	for (i = 0; i < SETS; i++) {
		if (i == 3)
			continue;
		assert_int_equal(sets[i].r, 0);
		for (k = 0; k < sets[i].n; k++) {
			assert_non_null(sigs[i][k].sig);
			assert_int_equal(ossl_verify(rf_key_public(sets[i].key),
					     i == 2, reqs[i][k].scheme,
					     reqs[i][k].msg, reqs[i][k].msglen,
					     sigs[i][k].sig, sigs[i][k].len),
			    1);
			rf_sig_clear(&sigs[i][k]);
		}
	}
	/* Their leaves: one run, in set order, nothing else. */
	assert_int_equal(leaves(fx), before + expect);
	assert_int_equal(rf_store_leaf_foreach(
			     fx->st, before, before + expect, check_order, &o),
	    0);
	assert_int_equal(o.seen, expect);
	rf_key_free(ec);
	rf_key_free(rsa);
	rf_key_free(off);
}

/* A set whose key the token no longer holds fails; the others do not. */
static void
test_group_missing_key(void **state)
{
	struct fx *fx = *state;
	struct rf_key *a, *gone;
	struct rf_sign_set sets[2];
	struct rf_sign_req req;
	struct rf_sig sig[2];
	uint64_t before;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "m-a", NULL, &who, &a),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "m-gone",
			     NULL, &who, &gone),
	    0);
	assert_int_equal(rf_keys_destroy(fx->keys, rf_key_id(gone), &who), 0);
	memset(&req, 0, sizeof(req));
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	req.what = "cert";
	memset(sets, 0, sizeof(sets));
	sets[0].key = gone;
	sets[1].key = a;
	sets[0].reqs = sets[1].reqs = &req;
	sets[0].n = sets[1].n = 1;
	sets[0].who = sets[1].who = &who;
	sets[0].sigs = &sig[0];
	sets[1].sigs = &sig[1];
	before = leaves(fx);
	rf_keys_sign_group(fx->keys, sets, 2);
	assert_int_not_equal(sets[0].r, 0);
	assert_true(sets[0].msg[0] != '\0');
	assert_null(sig[0].sig);
	assert_int_equal(sets[1].r, 0);
	assert_int_equal(ossl_verify(rf_key_public(a), 0, RF_SIG_DEFAULT,
			     req.msg, req.msglen, sig[1].sig, sig[1].len),
	    1);
	assert_int_equal(leaves(fx), before + 1);
	rf_sig_clear(&sig[1]);
	rf_key_free(a);
	rf_key_free(gone);
}

/* What rf_keys_group_sign_each told of each set, when it did. */
struct each {
	struct rf_sign_set *sets;
	int calls[3];
	int complete[3]; /* every signature there when the set was passed */
};

static void
each_done(void *arg, struct rf_sign_set *set)
{
	struct each *e = arg;
	size_t i = (size_t)(set - e->sets), k;
	int all = set->r == 0;

	for (k = 0; k < set->n; k++)
		all = all && set->sigs[k].sig != NULL;
	__atomic_add_fetch(&e->calls[i], 1, __ATOMIC_SEQ_CST);
	e->complete[i] = all;
}

/*
 * Recorded, then signed set by set: each set the plan signs is passed to
 * the callback once, with all of its signatures (one set needs several
 * signing jobs); a set refused when recorded (a disabled key) is not.
 */
static void
test_group_each(void **state)
{
	struct fx *fx = *state;
	struct rf_key *ec, *off;
	struct rf_sign_set sets[3];
	struct rf_sign_req reqs[BIG];
	struct rf_sig sigs[3][BIG];
	struct rf_sign_plan *pl;
	struct each e;
	size_t i, k;

	assert_int_equal(
	    rf_keys_generate(fx->keys, RF_KEY_EC_P256, "e-ec", NULL, &who, &ec),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "e-off",
			     NULL, &who, &off),
	    0);
	assert_int_equal(rf_keys_disable(fx->keys, rf_key_id(off), &who), 0);
	memset(reqs, 0, sizeof(reqs));
	for (k = 0; k < BIG; k++) {
		reqs[k].msg = (const uint8_t *)"tbs";
		reqs[k].msglen = 3;
		reqs[k].what = "cert";
	}
	memset(sets, 0, sizeof(sets));
	memset(sigs, 0, sizeof(sigs));
	memset(&e, 0, sizeof(e));
	e.sets = sets;
	for (i = 0; i < 3; i++) {
		sets[i].key = i == 1 ? off : ec;
		sets[i].reqs = reqs;
		sets[i].n = i == 2 ? BIG : 1;
		sets[i].who = &who;
		sets[i].sigs = sigs[i];
	}
	assert_non_null(pl = rf_keys_group_record(fx->keys, sets, 3));
	assert_int_equal(sets[1].r, RF_ERR_KEY_DISABLED);
	rf_keys_group_sign_each(pl, NULL, each_done, &e);
	assert_int_equal(e.calls[0], 1);
	assert_int_equal(e.calls[1], 0);
	assert_int_equal(e.calls[2], 1);
	assert_true(e.complete[0]);
	assert_true(e.complete[2]);
	for (i = 0; i < 3; i += 2)
		for (k = 0; k < sets[i].n; k++) {
			assert_int_equal(
			    ossl_verify(rf_key_public(ec), 0, RF_SIG_DEFAULT,
				reqs[k].msg, reqs[k].msglen, sigs[i][k].sig,
				sigs[i][k].len),
			    1);
			rf_sig_clear(&sigs[i][k]);
		}
	rf_key_free(ec);
	rf_key_free(off);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_group_missing_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_each, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
