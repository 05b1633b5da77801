/*
 * The audit record over the real SQLite store: appending (canonical bytes,
 * hashes checked with sha256sum), threads, proofs from the store, offline
 * verification against tampering done with the sqlite3 shell, tree heads
 * signed with a real key (OpenSSL here; the token path is in
 * test_audit_sth.c), checkpoints, export and search.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "testutil.h"

#include "audit/audit.h"
#include "store/store.h"

/* The store's schema, for tampering with the sqlite3 shell. */
#define LEAF_TABLE "audit_leaf"
#define LEAF_INDEX "idx"
#define LEAF_DATA "data"
#define LEAF_HASH "hash"
#define STH_TABLE "audit_sth"

struct fx {
	char *home;
	char db[1100];
	struct rf_store *st;
	struct rf_audit *a;
};

static void
fx_open(struct fx *f)
{
	assert_int_equal(rf_store_open(f->db, 1, &f->st), 0);
	assert_int_equal(rf_audit_open(f->st, &f->a), 0);
}

static void
fx_close(struct fx *f)
{
	rf_audit_free(f->a);
	f->a = NULL;
	rf_store_free(f->st);
	f->st = NULL;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->home = tu_home();
	snprintf(f->db, sizeof(f->db), "%s/ringfence.db", f->home);
	fx_open(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

static void
append_n(struct rf_audit *a, size_t n, const char *tenant, int64_t t0)
{
	struct rf_audit_event ev;
	char ref[32];
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&ev, 0, sizeof(ev));
		snprintf(ref, sizeof(ref), "%zu", i);
		ev.type = "sign";
		ev.what = "cert";
		ev.key_id = i % 2 ? "k-odd" : "k-even";
		ev.tenant = tenant;
		ev.ref = ref;
		ev.time = t0 + (int64_t)i;
		assert_int_equal(rf_audit_append(a, &ev, 1, NULL), 0);
	}
}

struct collect {
	char data[8][512];
	uint8_t hash[8][RF_HASH_LEN];
	size_t n;
};

static int
collect_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct collect *c = arg;

	if (c->n < 8) {
		snprintf(c->data[c->n], sizeof(c->data[0]), "%.*s", (int)l->len,
		    (const char *)l->data);
		memcpy(c->hash[c->n], l->hash, RF_HASH_LEN);
	}
	c->n++;
	return 0;
}

static void
test_append(void **state)
{
	struct fx *f = *state;
	struct rf_audit_event ev[2];
	struct collect c;
	char hex[2 * RF_HASH_LEN + 1], path[1200];
	uint64_t first = 99, n;
	FILE *fp;

	memset(ev, 0, sizeof(ev));
	ev[0].type = "sign";
	ev[0].what = "cert";
	ev[0].key_id = "3f1c";
	ev[0].tenant = "acme";
	ev[0].time = 1700000000;
	ev[1].type = "tenant";
	ev[1].tenant = "caf\xc3\xa9";
	ev[1].detail = "quote \" backslash \\ newline \n";
	ev[1].time = 1700000001;
	assert_int_equal(rf_audit_append(f->a, ev, 2, &first), 0);
	assert_int_equal(first, 0);
	assert_int_equal(rf_audit_append(f->a, ev, 1, &first), 0);
	assert_int_equal(first, 2);
	assert_int_equal(rf_audit_size(f->a, &n), 0);
	assert_int_equal(n, 3);

	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_store_leaf_foreach(f->st, 0, 3, collect_fn, &c), 0);
	assert_int_equal(c.n, 3);
	/* The documented example (docs/audit-format.md), byte for byte. */
	assert_string_equal(c.data[0],
	    "{\"key_id\":\"3f1c\",\"tenant\":\"acme\",\"time\":1700000000,"
	    "\"type\":\"sign\",\"v\":1,\"what\":\"cert\"}");
	assert_string_equal(c.data[1],
	    "{\"detail\":\"quote \\\" backslash \\\\ newline \\n\","
	    "\"tenant\":\"caf\\u00E9\",\"time\":1700000001,"
	    "\"type\":\"tenant\",\"v\":1}");
	/* The stored hash is what sha256sum computes over 0x00 || data. */
	rf_hex(c.hash[0], RF_HASH_LEN, hex);
	assert_string_equal(hex,
	    "c3df8bc4d5542cdc3faff56ed2d1092610ca09a7676"
	    "fccdf03188b1af273398b");
	snprintf(path, sizeof(path), "%s/leaf1", f->home);
	assert_non_null(fp = fopen(path, "wb"));
	fputc(0, fp);
	fputs(c.data[1], fp);
	fclose(fp);
	rf_hex(c.hash[1], RF_HASH_LEN, hex);
	assert_int_equal(tu_sh("test \"$(sha256sum < '%s' | cut -c1-64)\" = "
			       "%s",
			     path, hex),
	    0);
}

static void
test_append_rejects(void **state)
{
	struct fx *f = *state;
	struct rf_audit_event ev[2];
	uint64_t n;

	memset(ev, 0, sizeof(ev));
	ev[0].type = "sign";
	ev[1].type = "sign";
	ev[1].tenant = "bad \xff utf-8";
	/* One bad event: nothing of the batch is appended. */
	assert_int_equal(rf_audit_append(f->a, ev, 2, NULL), RF_ERR_ARG);
	ev[1].tenant = NULL;
	ev[1].type = NULL;
	assert_int_equal(rf_audit_append(f->a, ev, 2, NULL), RF_ERR_ARG);
	assert_int_equal(rf_audit_size(f->a, &n), 0);
	assert_int_equal(n, 0);
}

static void *
thread_fn(void *arg)
{
	struct rf_audit *a = arg;
	struct rf_audit_event ev[2];
	int i;

	memset(ev, 0, sizeof(ev));
	ev[0].type = "sign";
	ev[1].type = "sign";
	ev[0].what = "assertion";
	ev[1].what = "assertion";
	for (i = 0; i < 50; i++)
		if (rf_audit_append(a, ev, 2, NULL) != 0)
			return (void *)1;
	return NULL;
}

static void
test_threads(void **state)
{
	struct fx *f = *state;
	struct rf_audit_report rep;
	pthread_t t[2];
	void *ret;
	uint64_t n;
	int i;

	for (i = 0; i < 2; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, thread_fn, f->a), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(rf_audit_size(f->a, &n), 0);
	assert_int_equal(n, 200);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.leaves, 200);
}

static void
test_store_proofs(void **state)
{
	struct fx *f = *state;
	uint8_t leaf[RF_HASH_LEN], root[RF_HASH_LEN], r1[RF_HASH_LEN],
	    r2[RF_HASH_LEN], head[RF_HASH_LEN];
	uint8_t(*proof)[RF_HASH_LEN];
	uint64_t i, s, size;
	size_t plen;

	append_n(f->a, 21, "acme", 1000);
	assert_int_equal(rf_audit_head(f->a, &size, head), 0);
	assert_int_equal(size, 21);
	assert_int_equal(rf_audit_root(f->a, 21, root), 0);
	assert_memory_equal(root, head, RF_HASH_LEN);
	for (s = 1; s <= 21; s++)
		for (i = 0; i < s; i++) {
			assert_int_equal(rf_audit_prove_inclusion(f->a, i, s,
					     leaf, root, &proof, &plen),
			    0);
			assert_int_equal(
			    rf_merkle_verify_inclusion(i, s, leaf,
				(const uint8_t(*)[32])proof, plen, root),
			    0);
			free(proof);
		}
	for (s = 1; s <= 21; s++) {
		assert_int_equal(rf_audit_prove_consistency(
				     f->a, s, 21, r1, r2, &proof, &plen),
		    0);
		assert_memory_equal(r2, head, RF_HASH_LEN);
		assert_int_equal(rf_merkle_verify_consistency(s, 21, r1, r2,
				     (const uint8_t(*)[32])proof, plen),
		    0);
		free(proof);
	}
	/* Size 0 means the current size; out of range is an error. */
	assert_int_equal(
	    rf_audit_prove_inclusion(f->a, 20, 0, leaf, root, &proof, &plen),
	    0);
	assert_memory_equal(root, head, RF_HASH_LEN);
	free(proof);
	assert_int_equal(
	    rf_audit_prove_inclusion(f->a, 21, 21, leaf, root, &proof, &plen),
	    RF_ERR_ARG);
	assert_int_equal(
	    rf_audit_prove_consistency(f->a, 3, 22, r1, r2, &proof, &plen),
	    RF_ERR_ARG);
	/* The cached head follows new leaves. */
	append_n(f->a, 3, "acme", 2000);
	assert_int_equal(rf_audit_head(f->a, &size, head), 0);
	assert_int_equal(size, 24);
	assert_int_equal(rf_audit_root(f->a, 24, root), 0);
	assert_memory_equal(root, head, RF_HASH_LEN);
}

/* A P-256 key standing in for the token's audit key (verification only
 * needs its public half). */
struct signer {
	EVP_PKEY *pkey;
	char id[65];
	uint8_t spki[200];
	size_t spkilen;
};

static void
signer_new(struct fx *f, struct signer *s, const char *purpose)
{
	struct rf_key_rec kr;
	unsigned char *der = NULL;
	uint8_t dig[32];
	char name[96], hex[401];
	int len;

	assert_non_null(s->pkey = EVP_EC_gen("P-256"));
	assert_true((len = i2d_PUBKEY(s->pkey, &der)) > 0);
	assert_true((size_t)len <= sizeof(s->spki));
	memcpy(s->spki, der, (size_t)len);
	s->spkilen = (size_t)len;
	OPENSSL_free(der);
	assert_int_equal(
	    EVP_Digest(s->spki, s->spkilen, dig, NULL, EVP_sha256(), NULL), 1);
	rf_hex(dig, sizeof(dig), s->id);
	memset(&kr, 0, sizeof(kr));
	snprintf(kr.id, sizeof(kr.id), "%s", s->id);
	snprintf(kr.alg, sizeof(kr.alg), "ec-p256");
	snprintf(kr.purpose, sizeof(kr.purpose), "%s", purpose);
	snprintf(kr.state, sizeof(kr.state), "active");
	kr.created = 1;
	assert_int_equal(rf_store_key_add(f->st, &kr), 0);
	snprintf(name, sizeof(name), "audit.spki.%s", s->id);
	rf_hex(s->spki, s->spkilen, hex);
	assert_int_equal(rf_store_meta_set(f->st, name, hex), 0);
}

/* Sign and store a tree head (size, time, root); corrupt: flip a bit. */
static void
sth_add(struct fx *f, struct signer *s, uint64_t size, int64_t t,
    const uint8_t root[RF_HASH_LEN], int corrupt)
{
	struct rf_audit_sth_head h;
	struct rf_sth_rec rec;
	uint8_t tbs[RF_STH_TBS_LEN];
	EVP_MD_CTX *ctx;
	size_t siglen = RF_STH_SIG_MAX;

	memset(&h, 0, sizeof(h));
	rf_audit_sth_tbs(size, t, root, tbs);
	assert_non_null(ctx = EVP_MD_CTX_new());
	assert_int_equal(
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->pkey), 1);
	assert_int_equal(
	    EVP_DigestSign(ctx, h.sig, &siglen, tbs, sizeof(tbs)), 1);
	EVP_MD_CTX_free(ctx);
	if (corrupt)
		h.sig[siglen - 3] ^= 0x10;
	memset(&rec, 0, sizeof(rec));
	rec.size = size;
	rec.time = t;
	memcpy(rec.root, root, RF_HASH_LEN);
	snprintf(rec.key_id, sizeof(rec.key_id), "%s", s->id);
	rec.sig = h.sig;
	rec.siglen = siglen;
	assert_int_equal(rf_store_sth_add(f->st, &rec), 0);
	/* The same signature through rf_audit_sth_verify. */
	h.size = size;
	h.time = t;
	memcpy(h.root, root, RF_HASH_LEN);
	snprintf(h.key_id, sizeof(h.key_id), "%s", s->id);
	h.siglen = siglen;
	assert_int_equal(rf_audit_sth_verify(&h, s->spki, s->spkilen),
	    corrupt ? RF_ERR_SIGNATURE_INVALID : 0);
}

static void
expect_tampered(struct fx *f, uint64_t index, const char *words)
{
	struct rf_audit_report rep;

	assert_int_equal(
	    rf_audit_verify(f->a, NULL, &rep), RF_ERR_AUDIT_TAMPERED);
	if (strstr(rep.problem, words) == NULL) {
		fprintf(stderr, "problem: %s (want: %s)\n", rep.problem, words);
		fail();
	}
	assert_int_equal(rep.index, index);
	assert_non_null(strstr(rf_err_msg(RF_ERR_AUDIT_TAMPERED), words));
}

static void
sql(struct fx *f, const char *stmt)
{
	assert_int_equal(tu_sh("sqlite3 '%s' \"%s\"", f->db, stmt), 0);
}

static void
test_sths(void **state)
{
	struct fx *f = *state;
	struct rf_audit_report rep;
	struct signer s, other;
	uint8_t root[RF_HASH_LEN];

	append_n(f->a, 10, "acme", 1000);
	signer_new(f, &s, "audit");
	assert_int_equal(rf_audit_root(f->a, 4, root), 0);
	sth_add(f, &s, 4, 5000, root, 0);
	assert_int_equal(rf_audit_root(f->a, 10, root), 0);
	sth_add(f, &s, 10, 5001, root, 0);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.leaves, 10);
	assert_int_equal(rep.sths, 2);
	assert_string_equal(rep.problem, "");

	/* A later tree head of a smaller size: the tree shrank. */
	assert_int_equal(rf_audit_root(f->a, 7, root), 0);
	sth_add(f, &s, 7, 5002, root, 0);
	expect_tampered(f, UINT64_MAX, "shrinks the tree");
	sql(f, "DELETE FROM " STH_TABLE " WHERE size = 7");
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);

	/* A bad signature. */
	assert_int_equal(rf_audit_root(f->a, 10, root), 0);
	sth_add(f, &s, 10, 5003, root, 1);
	expect_tampered(f, UINT64_MAX, "invalid signature");
	sql(f, "DELETE FROM " STH_TABLE " WHERE time = 5003");

	/* A root that is not the root of the leaves. */
	root[0] ^= 1;
	sth_add(f, &s, 10, 5004, root, 0);
	expect_tampered(
	    f, UINT64_MAX, "tree head at size 10 (time 5004) does not match");
	sql(f, "DELETE FROM " STH_TABLE " WHERE time = 5004");

	/* Signed by a key that is not the audit key. */
	signer_new(f, &other, "issuing");
	assert_int_equal(rf_audit_root(f->a, 10, root), 0);
	sth_add(f, &other, 10, 5005, root, 0);
	expect_tampered(f, UINT64_MAX, "not an audit key");
	sql(f, "DELETE FROM " STH_TABLE " WHERE time = 5005");
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);

	/* Leaf data and stored hash both rewritten, consistently: the tree
	 * head names the range. */
	{
		static const char d[] =
		    "{\"key_id\":\"k-even\",\"ref\":\"66\",\"tenant\":"
		    "\"acme\",\"time\":1006,\"type\":\"sign\",\"v\":1,"
		    "\"what\":\"cert\"}";
		char stmt[1024], dhex[512], hhex[65];
		uint8_t h[RF_HASH_LEN];

		rf_merkle_leaf_hash((const uint8_t *)d, strlen(d), h);
		rf_hex((const uint8_t *)d, strlen(d), dhex);
		rf_hex(h, RF_HASH_LEN, hhex);
		snprintf(stmt, sizeof(stmt),
		    "UPDATE " LEAF_TABLE " SET " LEAF_DATA
		    " = X'%s', " LEAF_HASH " = X'%s' WHERE " LEAF_INDEX " = 6",
		    dhex, hhex);
		sql(f, stmt);
		expect_tampered(f, 4, "tree head at size 10 does not match");
		/* Whole rows reordered: hashes still match their data, the
		 * tree head names the range. */
		sql(f,
		    "UPDATE " LEAF_TABLE " SET " LEAF_INDEX
		    " = -1 WHERE " LEAF_INDEX " = 6; UPDATE " LEAF_TABLE
		    " SET " LEAF_INDEX " = 6 WHERE " LEAF_INDEX
		    " = 8; UPDATE " LEAF_TABLE " SET " LEAF_INDEX
		    " = 8 WHERE " LEAF_INDEX " = -1");
		expect_tampered(f, 4, "modified or reordered");
		/* With only the data changed, the leaf itself is named. */
		sql(f,
		    "UPDATE " LEAF_TABLE " SET " LEAF_HASH
		    " = zeroblob(32) WHERE " LEAF_INDEX " = 6");
		expect_tampered(f, 6, "leaf 6 modified");
	}
	EVP_PKEY_free(s.pkey);
	EVP_PKEY_free(other.pkey);
}

static void
test_tamper(void **state)
{
	struct fx *f = *state;
	struct rf_audit_report rep;
	char base[1200], cmd[1400];

	append_n(f->a, 12, "acme", 1000);
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.leaves, 12);
	fx_close(f);
	snprintf(base, sizeof(base), "%s/base.db", f->home);
	assert_int_equal(tu_sh("cp '%s' '%s'", f->db, base), 0);

	static const struct {
		const char *sql;
		uint64_t index;
		const char *words;
	} cases[] = {
	    {"UPDATE " LEAF_TABLE " SET " LEAF_DATA
	     " = CAST(replace(CAST(" LEAF_DATA
	     " AS TEXT), 'k-odd', 'k-bad') AS BLOB) WHERE " LEAF_INDEX " = 5",
		5, "leaf 5 modified"},
	    {"DELETE FROM " LEAF_TABLE " WHERE " LEAF_INDEX " = 7", 7,
		"leaf 7 missing"},
	    {"UPDATE " LEAF_TABLE " SET " LEAF_DATA " = (SELECT " LEAF_DATA
	     " FROM " LEAF_TABLE " WHERE " LEAF_INDEX " = 9) WHERE " LEAF_INDEX
	     " = 3",
		3, "leaf 3 modified"},
	    {"DELETE FROM " LEAF_TABLE " WHERE " LEAF_INDEX " >= 10", 10,
		"leaf 10 missing"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(tu_sh("cp '%s' '%s' && rm -f '%s-wal' "
				       "'%s-shm'",
				     base, f->db, f->db, f->db),
		    0);
		if (cases[i].index == 10) {
			/* Truncation is only visible against a tree head
			 * or a checkpoint: use the checkpoint. */
			fx_open(f);
			snprintf(cmd, sizeof(cmd), "%s/cp", f->home);
			assert_int_equal(rf_audit_verify(f->a, cmd, &rep), 0);
			assert_int_equal(rep.checkpoint_new, 1);
			fx_close(f);
		}
		assert_int_equal(
		    tu_sh("sqlite3 '%s' \"%s\"", f->db, cases[i].sql), 0);
		fx_open(f);
		if (cases[i].index == 10) {
			snprintf(cmd, sizeof(cmd), "%s/cp", f->home);
			assert_int_equal(rf_audit_verify(f->a, cmd, &rep),
			    RF_ERR_AUDIT_TAMPERED);
			assert_non_null(strstr(rep.problem, cases[i].words));
			assert_int_equal(rep.index, cases[i].index);
		} else
			expect_tampered(f, cases[i].index, cases[i].words);
		fx_close(f);
	}
	fx_open(f);
}

/* n leaves in commits of up to 1000. */
static void
append_many(struct rf_audit *a, size_t n)
{
	static struct rf_audit_event ev[1000];
	size_t i, b;

	for (i = 0; i < 1000; i++) {
		ev[i].type = "sign";
		ev[i].key_id = "k";
		ev[i].tenant = "t";
		ev[i].time = 1700000000 + (int64_t)i;
	}
	for (; n > 0; n -= b) {
		b = n < 1000 ? n : 1000;
		assert_int_equal(rf_audit_append(a, ev, b, NULL), 0);
	}
}

/*
 * The verify walk hands leaves to its hashing thread in batches of 2048:
 * problems beyond the first batches are found and named as in the first.
 */
static void
test_tamper_batches(void **state)
{
	static const char noncanon[] =
	    "{\"time\":1, \"type\":\"sign\",\"v\":1}";
	struct fx *f = *state;
	struct rf_audit_report rep;
	struct rf_leaf_rec bad;
	char base[1200], cp[1200];
	size_t i;

	static const struct {
		const char *sql;
		uint64_t index;
		const char *words;
	} cases[] = {
	    {"DELETE FROM " LEAF_TABLE " WHERE " LEAF_INDEX " = 2100", 2100,
		"leaf 2100 missing"},
	    {"UPDATE " LEAF_TABLE " SET " LEAF_HASH " = X'00' WHERE " LEAF_INDEX
	     " = 4097",
		4097, "leaf 4097 modified (its stored hash is malformed)"},
	    {"UPDATE " LEAF_TABLE " SET time = 1 WHERE " LEAF_INDEX " = 5000",
		5000,
		"leaf 5000 modified (not a canonical event or its columns"},
	    /* Two whole rows swapped: only the checkpoint's root sees it. */
	    {"CREATE TEMP TABLE t AS SELECT * FROM " LEAF_TABLE
	     " WHERE " LEAF_INDEX " IN (5000, 5001); UPDATE " LEAF_TABLE
	     " SET (time, type, key_id, "
	     "tenant, data, hash) = (SELECT time, type, key_id, tenant, data, "
	     "hash FROM t WHERE t.idx = 10001 - " LEAF_TABLE "." LEAF_INDEX
	     ") WHERE " LEAF_INDEX " IN (5000, 5001)",
		UINT64_MAX, "does not extend the checkpoint"},
	};

	append_many(f->a, 6000);
	snprintf(cp, sizeof(cp), "%s/cp", f->home);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), 0);
	assert_int_equal(rep.leaves, 6000);
	assert_int_equal(rep.checkpoint_new, 1);
	fx_close(f);
	snprintf(base, sizeof(base), "%s/base.db", f->home);
	assert_int_equal(tu_sh("cp '%s' '%s'", f->db, base), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(tu_sh("cp '%s' '%s' && rm -f '%s-wal' "
				       "'%s-shm'",
				     base, f->db, f->db, f->db),
		    0);
		assert_int_equal(
		    tu_sh("sqlite3 '%s' \"%s\"", f->db, cases[i].sql), 0);
		fx_open(f);
		assert_int_equal(
		    rf_audit_verify(f->a, cp, &rep), RF_ERR_AUDIT_TAMPERED);
		if (strstr(rep.problem, cases[i].words) == NULL) {
			fprintf(stderr, "problem: %s (want: %s)\n", rep.problem,
			    cases[i].words);
			fail();
		}
		assert_int_equal(rep.index, cases[i].index);
		fx_close(f);
	}
	/* A leaf whose hash matches but whose bytes are not canonical. */
	assert_int_equal(tu_sh("cp '%s' '%s' && rm -f '%s-wal' '%s-shm'", base,
			     f->db, f->db, f->db),
	    0);
	fx_open(f);
	memset(&bad, 0, sizeof(bad));
	bad.data = (const uint8_t *)noncanon;
	bad.len = strlen(noncanon);
	bad.type = "sign";
	bad.time = 1;
	rf_merkle_leaf_hash(bad.data, bad.len, bad.hash);
	assert_int_equal(rf_store_leaf_append(f->st, &bad, 1, NULL), 0);
	append_many(f->a, 100);
	expect_tampered(f, 6000, "leaf 6000 modified (not a canonical event");
}

static void
test_checkpoint(void **state)
{
	struct fx *f = *state;
	struct rf_audit_report rep;
	uint8_t root[RF_HASH_LEN], rd[RF_HASH_LEN];
	char cp[1200], hex[65];
	uint8_t *buf;
	size_t len;
	uint64_t size;

	snprintf(cp, sizeof(cp), "%s/checkpoint", f->home);
	/* The empty tree verifies, and can be checkpointed. */
	assert_int_equal(rf_audit_verify(f->a, NULL, &rep), 0);
	assert_int_equal(rep.leaves, 0);
	append_n(f->a, 5, "acme", 1000);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), 0);
	assert_int_equal(rep.checkpoint_new, 1);
	assert_int_equal(rf_read_file(cp, 4096, &buf, &len), 0);
	assert_int_equal(rf_audit_checkpoint_parse(buf, len, &size, rd), 0);
	free(buf);
	assert_int_equal(size, 5);
	assert_int_equal(rf_audit_root(f->a, 5, root), 0);
	assert_memory_equal(root, rd, RF_HASH_LEN);
	/* Growing is fine; the file is not rewritten. */
	append_n(f->a, 3, "acme", 2000);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), 0);
	assert_int_equal(rep.checkpoint_new, 0);
	/* A checkpoint the record does not extend. */
	rd[3] ^= 1;
	rf_hex(rd, RF_HASH_LEN, hex);
	assert_int_equal(tu_sh("printf 'ringfence-audit-checkpoint v1\\nsize "
			       "5\\nroot %s\\n' > '%s'",
			     hex, cp),
	    0);
	assert_int_equal(
	    rf_audit_verify(f->a, cp, &rep), RF_ERR_AUDIT_TAMPERED);
	assert_non_null(strstr(rep.problem, "does not extend the checkpoint"));
	/* A checkpoint beyond the record (it was truncated). */
	assert_int_equal(tu_sh("printf 'ringfence-audit-checkpoint v1\\nsize "
			       "9\\nroot %s\\n' > '%s'",
			     hex, cp),
	    0);
	assert_int_equal(
	    rf_audit_verify(f->a, cp, &rep), RF_ERR_AUDIT_TAMPERED);
	assert_int_equal(rep.index, 8);
	/* Malformed checkpoints are an error, not a pass. */
	assert_int_equal(tu_sh("printf 'ringfence-audit-checkpoint v1\\nsize "
			       "05\\nroot %s\\n' > '%s'",
			     hex, cp),
	    0);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), RF_ERR_MALFORMED);
	assert_int_equal(tu_sh("printf 'ringfence-audit-checkpoint v1\\nsize "
			       "5\\nroot %s\\nx' > '%s'",
			     hex, cp),
	    0);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), RF_ERR_MALFORMED);
	/* audit checkpoint rewrites it for the current tree. */
	assert_int_equal(rf_audit_checkpoint(f->a, cp, &rep), 0);
	assert_int_equal(rf_audit_verify(f->a, cp, &rep), 0);
	assert_int_equal(rep.leaves, 8);
}

static void
test_export(void **state)
{
	struct fx *f = *state;
	struct signer s;
	uint8_t root[RF_HASH_LEN];
	char path[1200];
	FILE *fp;

	append_n(f->a, 6, "acme", 1000);
	signer_new(f, &s, "audit");
	assert_int_equal(rf_audit_root(f->a, 6, root), 0);
	sth_add(f, &s, 6, 7000, root, 0);
	snprintf(path, sizeof(path), "%s/export.jsonl", f->home);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(rf_audit_export(f->a, fp), 0);
	fclose(fp);
	/* An independent check with python3 + openssl: every leaf hash, the
	 * root at the STH size and the STH signature. */
	assert_int_equal(
	    tu_sh("cd '%s' && python3 - export.jsonl <<'EOF'\n"
		  "import json, hashlib, subprocess, sys\n"
		  "lines = [json.loads(l) for l in open(sys.argv[1])]\n"
		  "hdr, leaves = lines[0], [l for l in lines if l.get('kind') "
		  "== 'leaf']\n"
		  "sths = [l for l in lines if l.get('kind') == 'sth']\n"
		  "assert hdr['leaves'] == len(leaves) == 6 and "
		  "len(sths) == 1\n"
		  "H = lambda b: hashlib.sha256(b).digest()\n"
		  "hs = []\n"
		  "for i, l in enumerate(leaves):\n"
		  "    assert l['index'] == i\n"
		  "    h = H(b'\\x00' + bytes.fromhex(l['data_hex']))\n"
		  "    assert h.hex() == l['hash']\n"
		  "    hs.append(h)\n"
		  "def mth(d):\n"
		  "    if len(d) == 1: return d[0]\n"
		  "    k = 1\n"
		  "    while k * 2 < len(d): k *= 2\n"
		  "    return H(b'\\x01' + mth(d[:k]) + mth(d[k:]))\n"
		  "s = sths[0]\n"
		  "assert mth(hs[:s['size']]).hex() == s['root']\n"
		  "tbs = b'ringfence-sth-v1\\x00' + s['size'].to_bytes(8, "
		  "'big') + s['time'].to_bytes(8, 'big') + "
		  "bytes.fromhex(s['root'])\n"
		  "open('tbs', 'wb').write(tbs)\n"
		  "open('sig', 'wb').write(bytes.fromhex(s['sig']))\n"
		  "open('pub.der', 'wb').write(bytes.fromhex(s['spki']))\n"
		  "subprocess.run(['openssl', 'pkey', '-pubin', '-inform', "
		  "'DER', '-in', 'pub.der', '-out', 'pub.pem'], check=True)\n"
		  "subprocess.run(['openssl', 'dgst', '-sha256', '-verify', "
		  "'pub.pem', '-signature', 'sig', 'tbs'], check=True, "
		  "stdout=subprocess.DEVNULL)\n"
		  "EOF",
		f->home),
	    0);
	EVP_PKEY_free(s.pkey);
}

struct count {
	size_t n;
	int64_t min, max;
};

static int
count_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct count *c = arg;

	if (c->n == 0 || l->time < c->min)
		c->min = l->time;
	if (c->n == 0 || l->time > c->max)
		c->max = l->time;
	c->n++;
	return 0;
}

static void
test_search(void **state)
{
	struct fx *f = *state;
	struct rf_audit_query q;
	struct count c;

	append_n(f->a, 10, "acme", 1000);
	append_n(f->a, 6, "globex", 2000);
	memset(&q, 0, sizeof(q));
	q.tenant = "globex";
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, &q, count_fn, &c), 0);
	assert_int_equal(c.n, 6);
	q.key_id = "k-odd";
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, &q, count_fn, &c), 0);
	assert_int_equal(c.n, 3);
	memset(&q, 0, sizeof(q));
	q.since = 1003;
	q.until = 1006;
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, &q, count_fn, &c), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.min, 1003);
	assert_int_equal(c.max, 1006);
	q.limit = 2;
	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, &q, count_fn, &c), 0);
	assert_int_equal(c.n, 2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A search and its wall time; bounded well under a second. */
static size_t
timed_search(struct fx *f, const struct rf_audit_query *q, double *secs)
{
	struct count c;
	double t0 = now_s();

	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_audit_search(f->a, q, count_fn, &c), 0);
	*secs = now_s() - t0;
	return c.n;
}

/*
 * 1,000,000 leaves (bulk-loaded with the sqlite3 shell: only the search
 * columns matter here): searches by key, tenant and time stay well under
 * one second.
 */
static void
test_search_million(void **state)
{
	struct fx *f = *state;
	struct rf_audit_query q;
	double secs;
	uint64_t n;

	fx_close(f);
	assert_int_equal(
	    tu_sh("sqlite3 '%s' \"PRAGMA journal_mode=OFF; PRAGMA "
		  "synchronous=OFF; PRAGMA cache_size=-100000; "
		  "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 "
		  "FROM c WHERE i < 999999) INSERT INTO " LEAF_TABLE
		  " (idx, time, type, key_id, tenant, data, hash) SELECT i, "
		  "1700000000 + i, 'sign', 'key' || (i %% 1000), 'tenant' || "
		  "(i %% 5000), CAST('{}' AS BLOB), zeroblob(32) FROM c\" "
		  ">/dev/null",
		f->db),
	    0);
	fx_open(f);
	assert_int_equal(rf_audit_size(f->a, &n), 0);
	assert_int_equal(n, 1000000);
	memset(&q, 0, sizeof(q));
	q.tenant = "tenant42";
	assert_int_equal(timed_search(f, &q, &secs), 200);
	printf("search tenant: %.3f s\n", secs);
	assert_true(secs < 0.25);
	memset(&q, 0, sizeof(q));
	q.key_id = "key7";
	assert_int_equal(timed_search(f, &q, &secs), 1000);
	printf("search key: %.3f s\n", secs);
	assert_true(secs < 0.25);
	memset(&q, 0, sizeof(q));
	q.since = 1700500000;
	q.until = 1700500999;
	assert_int_equal(timed_search(f, &q, &secs), 1000);
	printf("search time range: %.3f s\n", secs);
	assert_true(secs < 0.25);
	q.key_id = "key7";
	assert_int_equal(timed_search(f, &q, &secs), 1);
	assert_true(secs < 0.25);
	memset(&q, 0, sizeof(q));
	q.tenant = "tenant42";
	q.since = 1700900000;
	assert_int_equal(timed_search(f, &q, &secs), 20);
	assert_true(secs < 0.25);
}

/* The refusal budget: per_min leaves a minute (per_who of one caller),
 * then a count naming the callers counted most, written once a later
 * minute comes or when forced. */
static void
test_leaf_quota(void **state)
{
	struct rf_leaf_quota q, snap;
	char out[512], who[16];
	int i;

	(void)state;
	rf_leaf_quota_init(&q, 3, 0);
	assert_int_equal(rf_leaf_quota_roll(&q, 600, 0, out, sizeof(out)), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 0);
	assert_int_equal(rf_leaf_quota_take(&q, NULL), 0);
	/* The same minute: nothing yet. */
	assert_int_equal(rf_leaf_quota_due(&q, 659), 0);
	assert_int_equal(rf_leaf_quota_roll(&q, 659, 0, out, sizeof(out)), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 8"), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 9"), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 9"), 0);
	/* An earlier minute (a clock stepped back) is not a new one. */
	assert_int_equal(rf_leaf_quota_roll(&q, 540, 0, out, sizeof(out)), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 0);
	/* The next: the count, largest first, then a new budget. */
	assert_int_equal(rf_leaf_quota_due(&q, 660), 1);
	assert_int_equal(rf_leaf_quota_roll(&q, 660, 0, out, sizeof(out)), 1);
	assert_string_equal(out,
	    "9 more refusals in the minute from 1970-01-01T00:10:00Z, not "
	    "recorded one by one (at most 3 a minute are): uid 7 5, uid 9 2, "
	    "uid 8 1, others 1");
	assert_int_equal(rf_leaf_quota_roll(&q, 780, 0, out, sizeof(out)), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 1);
	/* Forced (a stop): only when something is counted. */
	assert_int_equal(rf_leaf_quota_roll(&q, 781, 1, out, sizeof(out)), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 1);
	assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 1);
	/* A snapshot puts back what a rolled-back transaction counted. */
	snap = q;
	for (i = 0; i < 6; i++) {
		snprintf(who, sizeof(who), "uid %d", i);
		assert_int_equal(rf_leaf_quota_take(&q, who), 0);
	}
	rf_leaf_quota_count(&q, "uid 5");
	assert_int_equal(q.quiet, 7);
	q = snap;
	assert_int_equal(q.quiet, 0);
	for (i = 0; i < 6; i++) {
		snprintf(who, sizeof(who), "uid %d", i);
		assert_int_equal(rf_leaf_quota_take(&q, who), 0);
	}
	rf_leaf_quota_count(&q, "uid 5");
	assert_int_equal(rf_leaf_quota_roll(&q, 781, 1, out, sizeof(out)), 1);
	assert_string_equal(out,
	    "7 more refusals in the minute from 1970-01-01T00:13:00Z, not "
	    "recorded one by one (at most 3 a minute are): uid 5 2, uid 0 1, "
	    "uid 1 1, uid 2 1, others 2");
	/* A cut-short buffer stays a string; no buffer, nothing written. */
	assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), 1);
	for (i = 0; i < 5; i++)
		assert_int_equal(rf_leaf_quota_take(&q, "uid 7"), i < 2);
	assert_int_equal(rf_leaf_quota_roll(&q, 900, 0, out, 0), 0);
	assert_int_equal(rf_leaf_quota_roll(&q, 900, 0, out, 20), 1);
	assert_int_equal(strlen(out), 19);

	/* Two of one caller: a flood from one leaves the others recorded. */
	rf_leaf_quota_init(&q, 5, 2);
	assert_int_equal(rf_leaf_quota_roll(&q, 1200, 0, out, sizeof(out)), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "certificate aa"), 1);
	assert_int_equal(rf_leaf_quota_take(&q, "certificate aa"), 1);
	for (i = 0; i < 7; i++)
		assert_int_equal(rf_leaf_quota_take(&q, "certificate aa"), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "certificate bb"), 1);
	assert_int_equal(rf_leaf_quota_take(&q, "certificate cc"), 1);
	assert_int_equal(rf_leaf_quota_take(&q, NULL), 1);
	/* The minute's five are taken: now everyone is counted. */
	assert_int_equal(rf_leaf_quota_take(&q, "certificate dd"), 0);
	assert_int_equal(rf_leaf_quota_roll(&q, 1260, 0, out, sizeof(out)), 1);
	assert_string_equal(out,
	    "8 more refusals in the minute from 1970-01-01T00:20:00Z, not "
	    "recorded one by one (at most 5 a minute are, 2 of one): "
	    "certificate aa 7, certificate dd 1");
	/* A new minute: each caller's share again. */
	assert_int_equal(rf_leaf_quota_take(&q, "certificate aa"), 1);
	/* Past RF_LEAF_QUOTA_WHO callers, only the minute's budget counts;
	 * a name is kept cut to 63 bytes, and still found. */
	rf_leaf_quota_init(&q, 100, 1);
	assert_int_equal(rf_leaf_quota_roll(&q, 0, 0, out, sizeof(out)), 0);
	for (i = 0; i < RF_LEAF_QUOTA_WHO - 1; i++) {
		snprintf(who, sizeof(who), "c %d", i);
		assert_int_equal(rf_leaf_quota_take(&q, who), 1);
		assert_int_equal(rf_leaf_quota_take(&q, who), 0);
	}
	memset(out, 'x', 80);
	out[80] = '\0';
	assert_int_equal(rf_leaf_quota_take(&q, out), 1);
	assert_int_equal(rf_leaf_quota_take(&q, out), 0);
	assert_int_equal(rf_leaf_quota_take(&q, "c x"), 1);
	assert_int_equal(rf_leaf_quota_take(&q, "c x"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_append_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_proofs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_tamper_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_search, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_search_million, setup, teardown),
	    cmocka_unit_test(test_leaf_quota),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
