/*
 * tree.c: RFC 9162 roots and proofs from the hashes of complete subtrees,
 * so that a proof reads O(log n) stored nodes instead of every leaf.
 *
 * A complete subtree is 2^level leaves starting at leaf index << level.
 * In the RFC's recursion, MTH(D[lo:hi]) splits at the largest power of two
 * k < hi - lo; every left part D[lo:lo+k] is such an aligned subtree (lo is
 * a multiple of k), and the right parts shrink along the right edge. So a
 * root costs at most one lookup per level, and so does each proof.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

/* Largest power of two strictly smaller than n (n >= 2). */
static uint64_t
split_below(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* log2(n) if n is a power of two and lo a multiple of it, else -1. */
static int
aligned_level(uint64_t lo, uint64_t n)
{
	int level = 0;

	if (n == 0 || (n & (n - 1)) != 0 || (lo & (n - 1)) != 0)
		return -1;
	while ((UINT64_C(1) << level) < n)
		level++;
	return level;
}

/*
 * MTH(D[lo:hi]), hi > lo: the right edge walked top-down, the aligned left
 * parts looked up, then folded bottom-up.
 */
int
rf_merkle_range_root(rf_merkle_subtree_fn fn, void *arg, uint64_t lo,
    uint64_t hi, uint8_t out[RF_HASH_LEN])
{
	uint8_t left[64][RF_HASH_LEN], h[RF_HASH_LEN];
	size_t nleft = 0;
	uint64_t k;
	int level, r;

	if (hi <= lo)
		return rf_err_set(RF_ERR_ARG, "empty leaf range");
	while ((level = aligned_level(lo, hi - lo)) < 0) {
		k = split_below(hi - lo);
		if ((r = fn(arg, (unsigned)aligned_level(lo, k), lo / k,
			 left[nleft++])) != 0)
			return r;
		lo += k;
	}
	if ((r = fn(arg, (unsigned)level, lo >> level, h)) != 0)
		return r;
	while (nleft > 0)
		rf_merkle_node_hash(left[--nleft], h, h);
	memcpy(out, h, RF_HASH_LEN);
	return 0;
}

/* The root of the tree of size n (n may be 0). */
int
rf_merkle_tree_root(
    rf_merkle_subtree_fn fn, void *arg, uint64_t n, uint8_t out[RF_HASH_LEN])
{
	struct rf_merkle_acc empty;

	if (n == 0) {
		rf_merkle_acc_init(&empty);
		rf_merkle_acc_root(&empty, out);
		return 0;
	}
	return rf_merkle_range_root(fn, arg, 0, n, out);
}

/* Siblings were collected top-down: the proof lists them leaf first. */
static int
proof_out(uint8_t (*path)[RF_HASH_LEN], size_t len,
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	uint8_t(*p)[RF_HASH_LEN] = NULL;
	size_t i;

	if (len > 0) {
		if ((p = calloc(len, RF_HASH_LEN)) == NULL)
			return RF_ERR_ALLOC;
		for (i = 0; i < len; i++)
			memcpy(p[i], path[len - 1 - i], RF_HASH_LEN);
	}
	*proof = p; /* owned by the caller */
	*plen = len;
	return 0;
}

/*
 * RFC 9162 2.1.3.1:
 *   PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])     for m < k
 *   PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k
 */
int
rf_merkle_inclusion_proof_by(rf_merkle_subtree_fn fn, void *arg, uint64_t n,
    uint64_t index, uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	uint8_t path[64][RF_HASH_LEN];
	uint64_t lo = 0, hi = n, k;
	size_t len = 0;
	int r;

	*proof = NULL;
	*plen = 0;
	if (index >= n)
		return rf_err_set(RF_ERR_ARG,
		    "leaf %llu is not in a tree of size %llu",
		    (unsigned long long)index, (unsigned long long)n);
	while (hi - lo > 1) {
		k = split_below(hi - lo);
		if (index < lo + k) {
			r = rf_merkle_range_root(
			    fn, arg, lo + k, hi, path[len++]);
			hi = lo + k;
		} else {
			r = rf_merkle_range_root(
			    fn, arg, lo, lo + k, path[len++]);
			lo += k;
		}
		if (r != 0)
			return r;
	}
	return proof_out(path, len, proof, plen);
}

/*
 * RFC 9162 2.1.4.1:
 *   PROOF(m, D[n]) = SUBPROOF(m, D[n], true)
 *   SUBPROOF(m, D[m], true) = {}
 *   SUBPROOF(m, D[m], false) = {MTH(D[m])}
 *   m <= k: SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
 *   m > k:  SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) :
 *                                  MTH(D[0:k])
 */
int
rf_merkle_consistency_proof_by(rf_merkle_subtree_fn fn, void *arg, uint64_t n,
    uint64_t size1, uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	uint8_t path[66][RF_HASH_LEN];
	uint64_t lo = 0, hi = n, m = size1, k;
	size_t len = 0;
	int b = 1, r = 0;

	*proof = NULL;
	*plen = 0;
	if (size1 == 0 || size1 > n)
		return rf_err_set(RF_ERR_ARG,
		    "no consistency proof from size %llu to %llu",
		    (unsigned long long)size1, (unsigned long long)n);
	for (;;) {
		if (m == hi - lo) {
			if (!b)
				r = rf_merkle_range_root(
				    fn, arg, lo, hi, path[len++]);
			break;
		}
		k = split_below(hi - lo);
		if (m <= k) {
			r = rf_merkle_range_root(
			    fn, arg, lo + k, hi, path[len++]);
			hi = lo + k;
		} else {
			r = rf_merkle_range_root(
			    fn, arg, lo, lo + k, path[len++]);
			lo += k;
			m -= k;
			b = 0;
		}
		if (r != 0)
			return r;
	}
	if (r != 0)
		return r;
	return proof_out(path, len, proof, plen);
}
