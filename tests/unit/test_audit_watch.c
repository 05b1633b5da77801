/*
 * audit watch's checks (watch.c) against a fake server: the served tree
 * head and consistency proof are built here from leaf hashes and signed
 * with OpenSSL keys (the audit key and an attacker's). Each way a record
 * can be broken is named, the watcher's state does not move on failure,
 * and malformed answers are refused.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "testutil.h"

#include "audit/audit.h"

#define NLEAVES 40

struct key {
	EVP_PKEY *pk;
	uint8_t spki[200];
	size_t spkilen;
	char id[65];
};

struct server {
	char sth[4096];
	char cons[8192];
	int fail_fetch;
	int fetches;
	char last_path[128];
};

static uint8_t L[NLEAVES][RF_HASH_LEN];

static void
key_new(struct key *k)
{
	uint8_t *p = k->spki;
	uint8_t dig[32];
	int len;

	k->pk = EVP_EC_gen("P-256");
	assert_non_null(k->pk);
	len = i2d_PUBKEY(k->pk, NULL);
	assert_true(len > 0 && (size_t)len <= sizeof(k->spki));
	assert_int_equal(i2d_PUBKEY(k->pk, &p), len);
	k->spkilen = (size_t)len;
	assert_int_equal(
	    EVP_Digest(k->spki, k->spkilen, dig, NULL, EVP_sha256(), NULL), 1);
	rf_hex(dig, sizeof(dig), k->id);
}

static void
hex(const uint8_t *b, size_t n, char *out)
{
	rf_hex(b, n, out);
}

/* The /audit/sth answer for the tree of `size` leaves of L. */
static void
serve_sth(struct server *s, uint64_t size, int64_t time,
    const struct key *signer, const struct key *claimed,
    const struct key *spki_of)
{
	uint8_t root[RF_HASH_LEN], tbs[RF_STH_TBS_LEN], sig[256];
	char rh[65], sh[513], ph[401];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_int_equal(
	    rf_merkle_root((const uint8_t(*)[RF_HASH_LEN])L, size, root), 0);
	rf_audit_sth_tbs(size, time, root, tbs);
	assert_non_null(ctx);
	assert_int_equal(
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, signer->pk), 1);
	assert_int_equal(
	    EVP_DigestSign(ctx, sig, &siglen, tbs, sizeof(tbs)), 1);
	EVP_MD_CTX_free(ctx);
	hex(root, RF_HASH_LEN, rh);
	hex(sig, siglen, sh);
	hex(spki_of->spki, spki_of->spkilen, ph);
	snprintf(s->sth, sizeof(s->sth),
	    "{\"key_id\":\"%s\",\"root_hash\":\"%s\",\"signature\":\"%s\","
	    "\"spki\":\"%s\",\"timestamp\":%" PRId64 ",\"tree_size\":%" PRIu64
	    "}",
	    claimed->id, rh, sh, ph, time, size);
}

/* The /audit/consistency answer from m to n. */
static void
serve_cons(struct server *s, uint64_t m, uint64_t n, int corrupt)
{
	uint8_t(*p)[RF_HASH_LEN] = NULL;
	size_t plen = 0, i, off;
	char h[65];

	assert_int_equal(rf_merkle_consistency_proof(
			     (const uint8_t(*)[RF_HASH_LEN])L, n, m, &p, &plen),
	    0);
	if (corrupt && plen > 0)
		p[0][5] ^= 0x40;
	off = (size_t)snprintf(s->cons, sizeof(s->cons),
	    "{\"first\":%" PRIu64 ",\"second\":%" PRIu64 ",\"consistency\":[",
	    m, n);
	for (i = 0; i < plen; i++) {
		hex(p[i], RF_HASH_LEN, h);
		off += (size_t)snprintf(s->cons + off, sizeof(s->cons) - off,
		    "%s\"%s\"", i ? "," : "", h);
	}
	snprintf(s->cons + off, sizeof(s->cons) - off, "]}");
	free(p);
}

static int
fake_fetch(void *arg, const char *path, uint8_t **body, size_t *len)
{
	struct server *s = arg;
	const char *b;

	s->fetches++;
	snprintf(s->last_path, sizeof(s->last_path), "%s", path);
	if (s->fail_fetch)
		return rf_err_set(RF_ERR_IO, "cannot fetch %s: refused", path);
	b = strcmp(path, "/audit/sth") == 0 ? s->sth : s->cons;
	*len = strlen(b);
	*body = malloc(*len);
	assert_non_null(*body);
	memcpy(*body, b, *len);
	return 0;
}

static void
fill_leaves(void)
{
	char d[32];
	size_t i;

	for (i = 0; i < NLEAVES; i++) {
		snprintf(d, sizeof(d), "leaf %zu", i);
		rf_merkle_leaf_hash((const uint8_t *)d, strlen(d), L[i]);
	}
}

/* A failed step names what broke and leaves the state as it was. */
static void
expect_broken(struct rf_audit_watch *w, struct server *s, const char *what)
{
	struct rf_audit_watch before = *w;

	assert_int_equal(
	    rf_audit_watch_step(w, fake_fetch, s), RF_ERR_AUDIT_TAMPERED);
	if (strncmp(w->problem, what, strlen(what)) != 0) {
		fprintf(stderr, "problem '%s', expected '%s...'\n", w->problem,
		    what);
		fail();
	}
	assert_int_equal(w->size, before.size);
	assert_memory_equal(w->root, before.root, RF_HASH_LEN);
	assert_string_equal(w->key_id, before.key_id);
}

static void
test_watch(void **state)
{
	struct rf_audit_watch w;
	struct server s;
	struct key audit, evil;
	uint8_t root[RF_HASH_LEN];

	(void)state;
	fill_leaves();
	key_new(&audit);
	key_new(&evil);
	memset(&s, 0, sizeof(s));
	memset(&w, 0, sizeof(w));

	/* First run without a pin: the served key is trusted and kept. */
	serve_sth(&s, 10, 1000, &audit, &audit, &audit);
	assert_int_equal(rf_audit_watch_step(&w, fake_fetch, &s), 0);
	assert_int_equal(s.fetches, 1);
	assert_true(w.have);
	assert_int_equal(w.size, 10);
	assert_string_equal(w.key_id, audit.id);
	assert_int_equal(
	    rf_merkle_root((const uint8_t(*)[RF_HASH_LEN])L, 10, root), 0);
	assert_memory_equal(w.root, root, RF_HASH_LEN);

	/* Honest growth: a consistency proof from 10 to 27. */
	serve_sth(&s, 27, 1060, &audit, &audit, &audit);
	serve_cons(&s, 10, 27, 0);
	assert_int_equal(rf_audit_watch_step(&w, fake_fetch, &s), 0);
	assert_string_equal(s.last_path, "/audit/consistency?old=10&new=27");
	assert_int_equal(w.size, 27);
	assert_int_equal(w.prev_size, 10);
	assert_int_equal(w.grew, 17);
	/* Nothing new: the same head again. */
	assert_int_equal(rf_audit_watch_step(&w, fake_fetch, &s), 0);
	assert_int_equal(w.size, 27);

	/* Re-signed by another key, under its own id. */
	serve_sth(&s, 30, 1100, &evil, &evil, &evil);
	serve_cons(&s, 27, 30, 0);
	expect_broken(&w, &s, "key id: the tree head at size 30 is signed by");
	/* The pinned id, another key behind it. */
	serve_sth(&s, 30, 1100, &evil, &audit, &evil);
	expect_broken(&w, &s, "key id: the served public key is not");
	/* The pinned id and key, a signature by another key. */
	serve_sth(&s, 30, 1100, &evil, &audit, &audit);
	expect_broken(&w, &s, "signature: the tree head at size 30");
	/* Smaller than the checkpoint. */
	serve_sth(&s, 20, 1100, &audit, &audit, &audit);
	expect_broken(&w, &s, "size went back: the served tree head has 20");
	/* The same size, another root: leaf 3 rewritten. */
	L[3][0] ^= 1;
	serve_sth(&s, 27, 1100, &audit, &audit, &audit);
	expect_broken(&w, &s, "consistency: the tree head at size 27");
	/* Larger, but not an extension of the checkpoint. */
	serve_sth(&s, 35, 1100, &audit, &audit, &audit);
	serve_cons(&s, 27, 35, 0);
	expect_broken(&w, &s, "consistency: the record at size 35");
	L[3][0] ^= 1;
	/* A proof with a flipped bit, or for other sizes. */
	serve_sth(&s, 35, 1100, &audit, &audit, &audit);
	serve_cons(&s, 27, 35, 1);
	expect_broken(&w, &s, "consistency: the record at size 35");
	serve_cons(&s, 26, 35, 0);
	expect_broken(&w, &s, "consistency: the record at size 35");
	/* And then the honest answer goes through. */
	serve_cons(&s, 27, 35, 0);
	assert_int_equal(rf_audit_watch_step(&w, fake_fetch, &s), 0);
	assert_int_equal(w.size, 35);

	/* A fetch error is passed on, the state kept. */
	s.fail_fetch = 1;
	assert_int_equal(rf_audit_watch_step(&w, fake_fetch, &s), RF_ERR_IO);
	assert_int_equal(w.size, 35);
	EVP_PKEY_free(audit.pk);
	EVP_PKEY_free(evil.pk);
}

static void
test_watch_malformed(void **state)
{
	static const char *bad_sth[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"tree_size\":1}",
	    "not json",
	    /* trailing bytes after the object */
	    "{\"key_id\":\"00\"} x",
	};
	static const char *bad_cons[] = {
	    "{\"first\":1,\"second\":2}",
	    "{\"first\":1,\"second\":2,\"consistency\":[\"zz\"]}",
	    "{\"first\":-1,\"second\":2,\"consistency\":[]}",
	    "{\"first\":1,\"second\":2,\"consistency\":[1]}",
	};
	struct rf_audit_sth_head h;
	struct server s;
	struct key audit;
	struct rf_audit_watch w;
	uint8_t spki[512], (*p)[RF_HASH_LEN];
	uint64_t a, b;
	size_t i, n, plen;
	char *up;

	(void)state;
	fill_leaves();
	key_new(&audit);
	for (i = 0; i < sizeof(bad_sth) / sizeof(bad_sth[0]); i++)
		assert_int_equal(
		    rf_audit_watch_sth_parse((const uint8_t *)bad_sth[i],
			strlen(bad_sth[i]), &h, spki, sizeof(spki), &n),
		    RF_ERR_MALFORMED);
	for (i = 0; i < sizeof(bad_cons) / sizeof(bad_cons[0]); i++)
		assert_int_equal(rf_audit_watch_consistency_parse(
				     (const uint8_t *)bad_cons[i],
				     strlen(bad_cons[i]), &a, &b, &p, &plen),
		    RF_ERR_MALFORMED);
	/* A good answer parses; upper-case hex or trailing bytes do not. */
	memset(&s, 0, sizeof(s));
	serve_sth(&s, 5, 1, &audit, &audit, &audit);
	assert_int_equal(rf_audit_watch_sth_parse((const uint8_t *)s.sth,
			     strlen(s.sth), &h, spki, sizeof(spki), &n),
	    0);
	assert_int_equal(h.size, 5);
	assert_string_equal(h.key_id, audit.id);
	up = strstr(s.sth, "\"root_hash\":\"") + 13;
	*up = (char)(*up >= 'a' ? *up - 'a' + 'A' : 'A');
	assert_int_equal(rf_audit_watch_sth_parse((const uint8_t *)s.sth,
			     strlen(s.sth), &h, spki, sizeof(spki), &n),
	    RF_ERR_MALFORMED);
	serve_sth(&s, 5, 1, &audit, &audit, &audit);
	strcat(s.sth, "{}");
	memset(&w, 0, sizeof(w));
	assert_int_equal(
	    rf_audit_watch_step(&w, fake_fetch, &s), RF_ERR_MALFORMED);
	assert_false(w.have);
	EVP_PKEY_free(audit.pk);
}

/* The checkpoint's optional key line: written, read back, strict. */
static void
test_checkpoint_key(void **state)
{
	static const char *bad[] = {
	    "key 3f\n",
	    "key "
	    "3F1C0C3B6B2D8D0A4C0E6B1E7C1D1B8E0F5A2C3D4E5F60718293A4B5C6D7E8F9"
	    "\n",
	    "key "
	    "3f1c0c3b6b2d8d0a4c0e6b1e7c1d1b8e0f5a2c3d4e5f60718293a4b5c6d7e8f9",
	    "key "
	    "3f1c0c3b6b2d8d0a4c0e6b1e7c1d1b8e0f5a2c3d4e5f60718293a4b5c6d7e8f9\n"
	    "x",
	    "kex "
	    "3f1c0c3b6b2d8d0a4c0e6b1e7c1d1b8e0f5a2c3d4e5f60718293a4b5c6d7e8f9"
	    "\n",
	};
	const char *id =
	    "3f1c0c3b6b2d8d0a4c0e6b1e7c1d1b8e0f5a2c3d4e5f60718293a4b5c6d7e8f9";
	char *home = tu_home(), path[1100], key[65], txt[400];
	uint8_t root[RF_HASH_LEN], got[RF_HASH_LEN], *buf = NULL;
	uint64_t size = 0;
	size_t len = 0, i;

	(void)state;
	memset(root, 0xab, sizeof(root));
	snprintf(path, sizeof(path), "%s/cp", home);
	assert_int_equal(rf_audit_checkpoint_write(path, 12, root, id), 0);
	assert_int_equal(rf_read_file(path, 4096, &buf, &len), 0);
	assert_int_equal(
	    rf_audit_checkpoint_parse_key(buf, len, &size, got, key), 0);
	assert_int_equal(size, 12);
	assert_memory_equal(got, root, RF_HASH_LEN);
	assert_string_equal(key, id);
	free(buf);
	assert_int_equal(rf_audit_checkpoint_write(path, 3, root, NULL), 0);
	assert_int_equal(rf_read_file(path, 4096, &buf, &len), 0);
	assert_int_equal(
	    rf_audit_checkpoint_parse_key(buf, len, &size, got, key), 0);
	assert_string_equal(key, "");
	free(buf);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(txt, sizeof(txt),
		    "ringfence-audit-checkpoint v1\nsize 3\nroot "
		    "abababababababababababababababababababababababababababab"
		    "abababab\n%s",
		    bad[i]);
		assert_int_equal(rf_audit_checkpoint_parse_key((uint8_t *)txt,
				     strlen(txt), &size, got, key),
		    RF_ERR_MALFORMED);
	}
	tu_home_remove(home);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watch),
	    cmocka_unit_test(test_watch_malformed),
	    cmocka_unit_test(test_checkpoint_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
