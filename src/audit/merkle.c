/*
 * merkle.c: RFC 9162 section 2.1 Merkle tree hashing, proof generation and
 * proof verification. Pure functions: no state, no store.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit/audit.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void
sha256_parts(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    const uint8_t *c, size_t clen, uint8_t out[RF_HASH_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int len = 0;

	/*
	 * The digest is fetched once (kept for the life of the process):
	 * EVP_sha256() would look it up in the provider store on every call,
	 * under a lock, which cost more than hashing a leaf. Allocation
	 * failure of a digest context is not recoverable here; abort rather
	 * than return a hash that is not one.
	 */
	if (pthread_once(&sha256_once, sha256_fetch) != 0 || sha256_md == NULL)
		abort();
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, alen) != 1 ||
	    (blen > 0 && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    (clen > 0 && EVP_DigestUpdate(ctx, c, clen) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != RF_HASH_LEN)
		abort();
	EVP_MD_CTX_free(ctx);
}

/* RFC 9162 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0)). */
void
rf_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[RF_HASH_LEN])
{
	static const uint8_t zero = 0x00;

	sha256_parts(&zero, 1, data, len, NULL, 0, out);
}

/* RFC 9162 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
void
rf_merkle_node_hash(const uint8_t left[RF_HASH_LEN],
    const uint8_t right[RF_HASH_LEN], uint8_t out[RF_HASH_LEN])
{
	static const uint8_t one = 0x01;

	sha256_parts(&one, 1, left, RF_HASH_LEN, right, RF_HASH_LEN, out);
}

/* Largest power of two strictly smaller than n (n >= 2). */
static uint64_t
split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

void
rf_merkle_acc_init(struct rf_merkle_acc *acc)
{
	memset(acc, 0, sizeof(*acc));
}

/*
 * The stack holds the roots of the complete subtrees that make up the tree
 * so far, largest (leftmost) first: one per set bit of n.
 */
void
rf_merkle_acc_add(struct rf_merkle_acc *acc, const uint8_t leaf[RF_HASH_LEN])
{
	uint8_t h[RF_HASH_LEN];
	uint64_t k = acc->n;

	memcpy(h, leaf, RF_HASH_LEN);
	while (k & 1) {
		acc->top--;
		rf_merkle_node_hash(acc->stack[acc->top], h, h);
		k >>= 1;
	}
	memcpy(acc->stack[acc->top], h, RF_HASH_LEN);
	acc->top++;
	acc->n++;
}

/* RFC 9162 2.1.1: the empty tree hashes to SHA-256 of the empty string. */
void
rf_merkle_acc_root(const struct rf_merkle_acc *acc, uint8_t out[RF_HASH_LEN])
{
	uint8_t r[RF_HASH_LEN];
	unsigned i;

	if (acc->top == 0) {
		sha256_parts(NULL, 0, NULL, 0, NULL, 0, out);
		return;
	}
	memcpy(r, acc->stack[acc->top - 1], RF_HASH_LEN);
	for (i = acc->top - 1; i > 0; i--)
		rf_merkle_node_hash(acc->stack[i - 1], r, r);
	memcpy(out, r, RF_HASH_LEN);
}

/* MTH(D[lo:hi]) over leaf hashes, hi > lo. */
static void
subtree_hash(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t lo, uint64_t hi,
    uint8_t out[RF_HASH_LEN])
{
	struct rf_merkle_acc acc;
	uint64_t i;

	rf_merkle_acc_init(&acc);
	for (i = lo; i < hi; i++)
		rf_merkle_acc_add(&acc, leaves[i]);
	rf_merkle_acc_root(&acc, out);
}

int
rf_merkle_root(
    const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n, uint8_t out[RF_HASH_LEN])
{
	struct rf_merkle_acc acc;

	if (n > 0 && leaves == NULL)
		return RF_ERR_ARG;
	rf_merkle_acc_init(&acc);
	if (n == 0) {
		rf_merkle_acc_root(&acc, out);
		return 0;
	}
	subtree_hash(leaves, 0, n, out);
	return 0;
}

/* A proof has at most 64 levels (plus one for a consistency seed). */
#define PROOF_MAX 66

/*
 * RFC 9162 2.1.3.1:
 *   PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])   for m < k
 *   PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k
 * Walked top-down; the siblings are collected then reversed, so the proof
 * lists them leaf first.
 */
int
rf_merkle_inclusion_proof(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n,
    uint64_t index, uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	uint8_t path[PROOF_MAX][RF_HASH_LEN];
	uint8_t(*p)[RF_HASH_LEN] = NULL;
	uint64_t lo = 0, hi = n, m = index, k;
	size_t len = 0, i;

	*proof = NULL;
	*plen = 0;
	if (leaves == NULL || index >= n)
		return rf_err_set(RF_ERR_ARG,
		    "leaf %llu is not in a tree of size %llu",
		    (unsigned long long)index, (unsigned long long)n);
	while (hi - lo > 1) {
		k = split_point(hi - lo);
		if (m < k) {
			subtree_hash(leaves, lo + k, hi, path[len++]);
			hi = lo + k;
		} else {
			subtree_hash(leaves, lo, lo + k, path[len++]);
			lo += k;
			m -= k;
		}
	}
	if (len > 0) {
		if ((p = calloc(len, RF_HASH_LEN)) == NULL)
			return RF_ERR_ALLOC;
		for (i = 0; i < len; i++)
			memcpy(p[i], path[len - 1 - i], RF_HASH_LEN);
	}
	*proof = p;
	*plen = len;
	return 0;
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
rf_merkle_consistency_proof(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n,
    uint64_t size1, uint8_t (**proof)[RF_HASH_LEN], size_t *plen)
{
	uint8_t path[PROOF_MAX][RF_HASH_LEN];
	uint8_t(*p)[RF_HASH_LEN] = NULL;
	uint64_t lo = 0, hi = n, m = size1, k;
	size_t len = 0, i;
	int b = 1;

	*proof = NULL;
	*plen = 0;
	if (leaves == NULL || size1 == 0 || size1 > n)
		return rf_err_set(RF_ERR_ARG,
		    "no consistency proof from size %llu to %llu",
		    (unsigned long long)size1, (unsigned long long)n);
	for (;;) {
		if (m == hi - lo) {
			if (!b)
				subtree_hash(leaves, lo, hi, path[len++]);
			break;
		}
		k = split_point(hi - lo);
		if (m <= k) {
			subtree_hash(leaves, lo + k, hi, path[len++]);
			hi = lo + k;
		} else {
			subtree_hash(leaves, lo, lo + k, path[len++]);
			lo += k;
			m -= k;
			b = 0;
		}
	}
	if (len > 0) {
		if ((p = calloc(len, RF_HASH_LEN)) == NULL)
			return RF_ERR_ALLOC;
		for (i = 0; i < len; i++)
			memcpy(p[i], path[len - 1 - i], RF_HASH_LEN);
	}
	*proof = p;
	*plen = len;
	return 0;
}

static int
hash_eq(const uint8_t a[RF_HASH_LEN], const uint8_t b[RF_HASH_LEN])
{
	return CRYPTO_memcmp(a, b, RF_HASH_LEN) == 0;
}

/*
 * RFC 9162 2.1.3.2: verifying an inclusion proof.
 *   1. If leaf_index >= tree_size, fail.
 *   2. fn = leaf_index, sn = tree_size - 1.
 *   3. r = hash.
 *   4. For each p in inclusion_path:
 *      a. If sn is 0, fail.
 *      b. If LSB(fn) is set or fn == sn: r = HASH(0x01 || p || r); then if
 *         LSB(fn) is not set, right-shift fn and sn equally until LSB(fn)
 *         is set or fn is 0. Otherwise r = HASH(0x01 || r || p).
 *      c. Right-shift fn and sn once.
 *   5. Succeed if sn is 0 and r equals root_hash.
 */
int
rf_merkle_verify_inclusion(uint64_t index, uint64_t size,
    const uint8_t leaf[RF_HASH_LEN], const uint8_t (*proof)[RF_HASH_LEN],
    size_t plen, const uint8_t root[RF_HASH_LEN])
{
	uint8_t r[RF_HASH_LEN];
	uint64_t fn, sn;
	size_t i;

	if (index >= size || (plen > 0 && proof == NULL))
		return RF_ERR_PROOF;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf, RF_HASH_LEN);
	for (i = 0; i < plen; i++) {
		if (sn == 0)
			return RF_ERR_PROOF;
		if ((fn & 1) || fn == sn) {
			rf_merkle_node_hash(proof[i], r, r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else
			rf_merkle_node_hash(r, proof[i], r);
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || !hash_eq(r, root))
		return RF_ERR_PROOF;
	return 0;
}

/*
 * RFC 9162 2.1.4.2: verifying a consistency proof between first_size and
 * second_size. Sizes equal: the proof must be empty and the roots equal. A
 * proof from the empty tree proves nothing and is rejected.
 *   1. If consistency_path is empty, fail.
 *   2. If first_size is an exact power of 2, prepend first_hash.
 *   3. fn = first_size - 1, sn = second_size - 1.
 *   4. If LSB(fn) is set, right-shift fn and sn equally until it is not.
 *   5. fr = sr = the first value of consistency_path.
 *   6. For each subsequent value c:
 *      a. If sn is 0, fail.
 *      b. If LSB(fn) is set or fn == sn: fr = HASH(0x01 || c || fr),
 *         sr = HASH(0x01 || c || sr); then if LSB(fn) is not set,
 *         right-shift fn and sn equally until LSB(fn) is set or fn is 0.
 *         Otherwise sr = HASH(0x01 || sr || c).
 *      c. Right-shift fn and sn once.
 *   7. Succeed if fr == first_hash, sr == second_hash and sn == 0.
 */
int
rf_merkle_verify_consistency(uint64_t size1, uint64_t size2,
    const uint8_t root1[RF_HASH_LEN], const uint8_t root2[RF_HASH_LEN],
    const uint8_t (*proof)[RF_HASH_LEN], size_t plen)
{
	uint8_t fr[RF_HASH_LEN], sr[RF_HASH_LEN];
	const uint8_t *c;
	uint64_t fn, sn;
	size_t i, start;

	if (size1 > size2 || size1 == 0 || (plen > 0 && proof == NULL))
		return RF_ERR_PROOF;
	if (size1 == size2) {
		if (plen != 0 || !hash_eq(root1, root2))
			return RF_ERR_PROOF;
		return 0;
	}
	if (plen == 0 || plen > PROOF_MAX)
		return RF_ERR_PROOF;
	/* Step 2: the seed is first_hash itself, or the first proof value. */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, RF_HASH_LEN);
		start = 0;
	} else {
		memcpy(fr, proof[0], RF_HASH_LEN);
		start = 1;
	}
	memcpy(sr, fr, RF_HASH_LEN);
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (i = start; i < plen; i++) {
		c = proof[i];
		if (sn == 0)
			return RF_ERR_PROOF;
		if ((fn & 1) || fn == sn) {
			rf_merkle_node_hash(c, fr, fr);
			rf_merkle_node_hash(c, sr, sr);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else
			rf_merkle_node_hash(sr, c, sr);
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || !hash_eq(fr, root1) || !hash_eq(sr, root2))
		return RF_ERR_PROOF;
	return 0;
}
