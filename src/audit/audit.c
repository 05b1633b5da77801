/*
 * audit.c: appending events to the record (encoded by leaf.c) and reading
 * the tree back (roots, proofs, search).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"

#include "audit/audit_int.h"

int
rf_audit_open(struct rf_store *store, struct rf_audit **out)
{
	struct rf_audit *a;
	pthread_mutexattr_t attr;
	int r;

	*out = NULL;
	if (store == NULL)
		return rf_err_set(RF_ERR_ARG, "audit needs an open store");
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutexattr_init(&attr) != 0)
		goto fail;
	if (pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) != 0 ||
	    pthread_mutex_init(&a->mu, &attr) != 0) {
		pthread_mutexattr_destroy(&attr);
		goto fail;
	}
	pthread_mutexattr_destroy(&attr);
	a->st = store; /* borrowed */
	/*
	 * Appends through this store keep the tree's interior nodes; those
	 * of a record written before (or without) them are filled in once.
	 * A read-only store is served from the nodes it has and its leaves.
	 */
	rf_store_set_node_hash(store, rf_merkle_node_hash);
	if ((r = rf_store_node_fill(store)) != 0 &&
	    r != RF_ERR_STORE_READONLY) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		return r;
	}
	rf_err_clear();
	*out = a;
	return 0;
fail:
	free(a);
	return RF_ERR_INTERNAL;
}

/*
 * The store handle is not thread-safe (one SQLite connection, no mutex):
 * every call that reaches it through this audit handle holds this lock.
 */
void
rf_audit_lock(struct rf_audit *a)
{
	if (pthread_mutex_lock(&a->mu) != 0)
		abort(); /* only on a corrupted mutex */
}

void
rf_audit_unlock(struct rf_audit *a)
{
	pthread_mutex_unlock(&a->mu);
}

void
rf_audit_free(struct rf_audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->mu);
	free(a);
}

#ifdef RF_BENCH_AUDIT_OFF
/*
 * The record-off build, which exists only so that bench/audit.sh can
 * measure what the record costs issuance: nothing is encoded, hashed or
 * stored. CMake's RF_BENCH_AUDIT_OFF is for bench_issue alone; cli/main.c
 * refuses to compile with it, so no ringfence binary runs without the record.
 */
static int
append_nothing(struct rf_audit *a, size_t n, uint64_t *first)
{
	rf_audit_lock(a);
	if (first != NULL)
		*first = a->nothing;
	a->nothing += n;
	rf_audit_unlock(a);
	return 0;
}
#endif

/*
 * Append n events as leaves: encode each, hash it (RFC 9162 2.1.1), and
 * hand all n to the store in one transaction. Serialised by a mutex so
 * that signing threads sharing this handle do not interleave.
 */
int
rf_audit_append(struct rf_audit *a, const struct rf_audit_event *evs, size_t n,
    uint64_t *first)
{
	struct rf_leaf_rec *recs = NULL;
	uint8_t **bufs = NULL;
	char why[512];
	uint64_t f = 0;
	int64_t now = rf_now();
	size_t i, len;
	int r = RF_ERR_INTERNAL, locked = 0;

	if (first != NULL)
		*first = 0;
	if (a == NULL || (n > 0 && evs == NULL))
		return rf_err_set(RF_ERR_ARG, "audit append without events");
	if (n == 0)
		return 0;
#ifdef RF_BENCH_AUDIT_OFF
	return append_nothing(a, n, first);
#endif
	if ((recs = calloc(n, sizeof(*recs))) == NULL ||
	    (bufs = calloc(n, sizeof(*bufs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = rf_audit_encode(&evs[i], now, &bufs[i], &len)) != 0)
			goto out;
		recs[i].time = evs[i].time != 0 ? evs[i].time : now;
		recs[i].type = evs[i].type;
		recs[i].key_id = evs[i].key_id;
		recs[i].tenant = evs[i].tenant;
		recs[i].data = bufs[i];
		recs[i].len = len;
		rf_merkle_leaf_hash(bufs[i], len, recs[i].hash);
	}
	/* Encoded and hashed above without the lock; appended under it. */
	rf_audit_lock(a);
	locked = 1;
	if ((r = rf_store_leaf_append(a->st, recs, n, &f)) != 0) {
		/* Copy the store's detail: rf_err_set reuses its buffer. */
		snprintf(why, sizeof(why), "%s", rf_err_msg(r));
		r = rf_err_set(RF_ERR_AUDIT,
		    "audit record could not be appended: %s", why);
		goto out;
	}
	if (first != NULL)
		*first = f;
	r = 0;
out:
	if (locked)
		rf_audit_unlock(a);
	if (bufs != NULL)
		for (i = 0; i < n; i++)
			free(bufs[i]);
	free(bufs);
	free(recs);
	return r;
}

struct rf_store *
rf_audit_store(struct rf_audit *a)
{
	return a->st;
}

/*
 * Seconds on this process's monotonic clock since it first saw the tree
 * head (size, time) as the latest: how long ago it was signed when the wall
 * clock reads earlier than its time. Called with the lock held.
 */
int64_t
audit_seen_for(struct rf_audit *a, uint64_t size, int64_t time)
{
	struct timespec ts;
	int64_t mono;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = (int64_t)ts.tv_sec;
	if (!a->seen_set || a->seen_size != size || a->seen_time != time) {
		a->seen_set = 1;
		a->seen_size = size;
		a->seen_time = time;
		a->seen_mono = mono;
	}
	return mono - a->seen_mono;
}

/*
 * Subtree hashes for one root or proof computation (rf_merkle_subtree_fn):
 * stored nodes, each read once (the root and the path share most of
 * them), and the one block of 2^RF_STORE_NODE_LEVEL leaves below the
 * stored levels that a proof reaches into, read in one query.
 */
#define MEMO_MAX 192
#define BLOCK (1u << RF_STORE_NODE_LEVEL)

struct tree_ctx {
	struct rf_store *st;
	uint64_t block_lo; /* leaves [block_lo, block_lo + block_n) */
	size_t block_n;
	int block_ok;
	uint8_t block[BLOCK][RF_HASH_LEN];
	size_t nmemo;
	struct {
		unsigned level;
		uint64_t index;
		uint8_t hash[RF_HASH_LEN];
	} memo[MEMO_MAX];
};

static int
tree_missing(uint64_t lo, uint64_t hi)
{
	return rf_err_set(RF_ERR_AUDIT_TAMPERED,
	    "audit: leaves [%" PRIu64 ", %" PRIu64
	    ") are missing: run 'ringfence audit verify'",
	    lo, hi);
}

/* Below the stored levels: from the block's leaf hashes. */
static int
tree_low(struct tree_ctx *c, unsigned level, uint64_t index,
    uint8_t out[RF_HASH_LEN])
{
	uint8_t h[BLOCK][RF_HASH_LEN];
	uint64_t lo = index << level, blo = lo & ~(uint64_t)(BLOCK - 1);
	size_t cnt = (size_t)1 << level, off, i;
	int r;

	if (!c->block_ok || c->block_lo != blo) {
		if ((r = rf_store_leaf_hashes(
			 c->st, blo, BLOCK, c->block, &c->block_n)) != 0)
			return r;
		c->block_lo = blo;
		c->block_ok = 1;
	}
	off = (size_t)(lo - blo);
	if (off + cnt > c->block_n)
		return tree_missing(lo, lo + cnt);
	memcpy(h, c->block[off], cnt * RF_HASH_LEN);
	for (; cnt > 1; cnt /= 2)
		for (i = 0; i < cnt / 2; i++)
			rf_merkle_node_hash(h[2 * i], h[2 * i + 1], h[i]);
	memcpy(out, h[0], RF_HASH_LEN);
	return 0;
}

static int
tree_subtree(
    void *arg, unsigned level, uint64_t index, uint8_t out[RF_HASH_LEN])
{
	struct tree_ctx *c = arg;
	size_t i;
	int r;

	if (level < RF_STORE_NODE_LEVEL)
		return tree_low(c, level, index, out);
	for (i = 0; i < c->nmemo; i++)
		if (c->memo[i].level == level && c->memo[i].index == index) {
			memcpy(out, c->memo[i].hash, RF_HASH_LEN);
			return 0;
		}
	r = rf_store_subtree_hash(c->st, level, index, out);
	if (r == RF_ERR_NOT_FOUND)
		return tree_missing(index << level, (index + 1) << level);
	if (r != 0)
		return r;
	if (c->nmemo < MEMO_MAX) {
		c->memo[c->nmemo].level = level;
		c->memo[c->nmemo].index = index;
		memcpy(c->memo[c->nmemo++].hash, out, RF_HASH_LEN);
	}
	return 0;
}

static struct tree_ctx *
tree_ctx_new(struct rf_store *st)
{
	struct tree_ctx *c = calloc(1, sizeof(*c));

	if (c != NULL)
		c->st = st;
	return c;
}

/*
 * The current size and root, from the stored interior nodes: O(log n)
 * rows. (rf_audit_verify recomputes everything from the leaf data.)
 */
static int
head_unlocked(struct rf_audit *a, uint64_t *size, uint8_t root[RF_HASH_LEN])
{
	struct tree_ctx *c;
	uint64_t n;
	int r;

	if ((c = tree_ctx_new(a->st)) == NULL)
		return RF_ERR_ALLOC;
	if ((r = rf_store_leaf_count(a->st, &n)) == 0 &&
	    (r = rf_merkle_tree_root(tree_subtree, c, n, root)) == 0)
		*size = n;
	free(c);
	return r;
}

static int
size_unlocked(struct rf_audit *a, uint64_t *n)
{
	return rf_store_leaf_count(a->st, n);
}

struct hash_walk {
	uint8_t (*hashes)[RF_HASH_LEN];
	uint64_t next;
	int bad;
	uint64_t bad_index;
	const char *why;
};

static int
hash_walk_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct hash_walk *w = arg;
	uint8_t h[RF_HASH_LEN];

	if (l->index != w->next) {
		w->bad = 1;
		w->bad_index = w->next;
		w->why = "missing";
		return 1;
	}
	rf_merkle_leaf_hash(l->data, l->len, h);
	if (memcmp(h, l->hash, RF_HASH_LEN) != 0) {
		w->bad = 1;
		w->bad_index = l->index;
		w->why = "modified";
		return 1;
	}
	memcpy(w->hashes[w->next], h, RF_HASH_LEN);
	w->next++;
	return 0;
}

static int
leaf_hashes_unlocked(
    struct rf_audit *a, uint64_t size, uint8_t (**out)[RF_HASH_LEN])
{
	struct hash_walk w;
	uint64_t n;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	memset(&w, 0, sizeof(w));
	if ((r = rf_store_leaf_count(a->st, &n)) != 0)
		goto out;
	if (size > n) {
		r = rf_err_set(RF_ERR_ARG,
		    "tree size %" PRIu64 " is beyond the %" PRIu64
		    " leaves in the record",
		    size, n);
		goto out;
	}
	if ((w.hashes = calloc(size > 0 ? size : 1, RF_HASH_LEN)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = rf_store_leaf_foreach(a->st, 0, size, hash_walk_fn, &w)) < 0)
		goto out;
	if (w.bad || w.next != size) {
		if (!w.bad) {
			w.bad_index = w.next;
			w.why = "missing";
		}
		r = rf_err_set(RF_ERR_AUDIT_TAMPERED,
		    "audit: leaf %" PRIu64 " %s: run 'ringfence audit verify'",
		    w.bad_index, w.why);
		goto out;
	}
	*out = w.hashes; /* owned by the caller */
	w.hashes = NULL;
	r = 0;
out:
	free(w.hashes);
	return r;
}

static int
root_unlocked(struct rf_audit *a, uint64_t size, uint8_t root[RF_HASH_LEN])
{
	uint8_t(*h)[RF_HASH_LEN] = NULL;
	int r;

	if ((r = rf_audit_leaf_hashes(a, size, &h)) == 0)
		r = rf_merkle_root(
		    (const uint8_t(*)[RF_HASH_LEN])h, size, root);
	free(h);
	return r;
}

/* size 0 means the current size. */
static int
resolve_size(struct rf_audit *a, uint64_t *size)
{
	uint64_t n;
	int r;

	if ((r = rf_store_leaf_count(a->st, &n)) != 0)
		return r;
	if (*size == 0)
		*size = n;
	if (*size > n)
		return rf_err_set(RF_ERR_ARG,
		    "tree size %" PRIu64 " is beyond the %" PRIu64
		    " leaves in the record",
		    *size, n);
	return 0;
}

static int
prove_inclusion_unlocked(struct rf_audit *a, uint64_t index, uint64_t size,
    uint8_t leaf[RF_HASH_LEN], uint8_t root[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	struct tree_ctx *c = NULL;
	int r = RF_ERR_INTERNAL;

	*proof = NULL;
	*plen = 0;
	if ((r = resolve_size(a, &size)) != 0)
		goto out;
	if (index >= size) {
		r = rf_err_set(RF_ERR_ARG,
		    "leaf %" PRIu64 " is not in a tree of size %" PRIu64, index,
		    size);
		goto out;
	}
	if ((c = tree_ctx_new(a->st)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/* O(log n) stored nodes: the leaf, the root, the audit path. */
	if ((r = tree_subtree(c, 0, index, leaf)) != 0 ||
	    (r = rf_merkle_tree_root(tree_subtree, c, size, root)) != 0 ||
	    (r = rf_merkle_inclusion_proof_by(
		 tree_subtree, c, size, index, proof, plen)) != 0)
		goto out;
	r = 0;
out:
	free(c);
	return r;
}

static int
prove_consistency_unlocked(struct rf_audit *a, uint64_t size1, uint64_t size2,
    uint8_t root1[RF_HASH_LEN], uint8_t root2[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	struct tree_ctx *c = NULL;
	int r = RF_ERR_INTERNAL;

	*proof = NULL;
	*plen = 0;
	if ((r = resolve_size(a, &size2)) != 0)
		goto out;
	if (size1 == 0 || size1 > size2) {
		r = rf_err_set(RF_ERR_ARG,
		    "no consistency proof from size %" PRIu64 " to %" PRIu64
		    ": need 0 < OLD <= NEW",
		    size1, size2);
		goto out;
	}
	if ((c = tree_ctx_new(a->st)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = rf_merkle_tree_root(tree_subtree, c, size1, root1)) != 0 ||
	    (r = rf_merkle_tree_root(tree_subtree, c, size2, root2)) != 0 ||
	    (r = rf_merkle_consistency_proof_by(
		 tree_subtree, c, size2, size1, proof, plen)) != 0)
		goto out;
	r = 0;
out:
	free(c);
	return r;
}

static int
search_unlocked(struct rf_audit *a, const struct rf_audit_query *q,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	int r;

	if (q == NULL || fn == NULL)
		return RF_ERR_ARG;
	r = rf_store_leaf_search(
	    a->st, q->key_id, q->tenant, q->since, q->until, q->limit, fn, arg);
	return r;
}

/* Public entry points: the store handle is not thread-safe, so every use
 * of it through this audit handle is serialised (recursive lock). */
int
rf_audit_head(struct rf_audit *a, uint64_t *size, uint8_t root[RF_HASH_LEN])
{
	int r, own;

	rf_audit_lock(a);
	if ((r = rf_store_read_begin(a->st, &own)) == 0) {
		r = head_unlocked(a, size, root);
		rf_store_read_end(a->st, own);
	}
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_size(struct rf_audit *a, uint64_t *n)
{
	int r;

	rf_audit_lock(a);
	r = size_unlocked(a, n);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_leaf_hashes(
    struct rf_audit *a, uint64_t size, uint8_t (**out)[RF_HASH_LEN])
{
	int r;

	rf_audit_lock(a);
	r = leaf_hashes_unlocked(a, size, out);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_root(struct rf_audit *a, uint64_t size, uint8_t root[RF_HASH_LEN])
{
	int r;

	rf_audit_lock(a);
	r = root_unlocked(a, size, root);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_prove_inclusion(struct rf_audit *a, uint64_t index, uint64_t size,
    uint8_t leaf[RF_HASH_LEN], uint8_t root[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	int r, own;

	*proof = NULL;
	*plen = 0;
	rf_audit_lock(a);
	/* The size, the root and the path from one snapshot of the record. */
	if ((r = rf_store_read_begin(a->st, &own)) == 0) {
		r = prove_inclusion_unlocked(
		    a, index, size, leaf, root, proof, plen);
		rf_store_read_end(a->st, own);
	}
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_prove_consistency(struct rf_audit *a, uint64_t size1, uint64_t size2,
    uint8_t root1[RF_HASH_LEN], uint8_t root2[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	int r, own;

	*proof = NULL;
	*plen = 0;
	rf_audit_lock(a);
	if ((r = rf_store_read_begin(a->st, &own)) == 0) {
		r = prove_consistency_unlocked(
		    a, size1, size2, root1, root2, proof, plen);
		rf_store_read_end(a->st, own);
	}
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_search(struct rf_audit *a, const struct rf_audit_query *q,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	int r;

	rf_audit_lock(a);
	r = search_unlocked(a, q, fn, arg);
	rf_audit_unlock(a);
	return r;
}
