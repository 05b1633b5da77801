/*
 * Merkle proof generation against verification: every generated proof
 * verifies, and every mutation of one (a flipped bit in any value, a value
 * removed or added, a wrong size or index, a wrong root) is rejected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "audit/audit.h"

#define MAXN 33

static uint8_t leaves[MAXN][RF_HASH_LEN];

static void
make_leaves(void)
{
	uint8_t data[8];
	size_t i;

	for (i = 0; i < MAXN; i++) {
		memset(data, (int)i, sizeof(data));
		rf_merkle_leaf_hash(data, i % sizeof(data), leaves[i]);
	}
}

#define L ((const uint8_t(*)[RF_HASH_LEN])leaves)
#define P(p) ((const uint8_t(*)[RF_HASH_LEN])(p))

static void
check_inclusion_mutations(uint64_t i, uint64_t n, const uint8_t *root,
    uint8_t (*proof)[RF_HASH_LEN], size_t plen)
{
	uint8_t(*big)[RF_HASH_LEN], bad[RF_HASH_LEN];
	size_t j;
	int bit;

	/* Every bit of every proof value matters (a sample of bits). */
	for (j = 0; j < plen; j++)
		for (bit = 0; bit < 256; bit += 37) {
			proof[j][bit / 8] ^= (uint8_t)(1 << (bit % 8));
			assert_int_equal(rf_merkle_verify_inclusion(i, n,
					     leaves[i], P(proof), plen, root),
			    RF_ERR_PROOF);
			proof[j][bit / 8] ^= (uint8_t)(1 << (bit % 8));
		}
	/* Truncated. */
	if (plen > 0)
		assert_int_equal(rf_merkle_verify_inclusion(
				     i, n, leaves[i], P(proof), plen - 1, root),
		    RF_ERR_PROOF);
	/* Trailing value (the root, or a leaf). */
	assert_non_null(big = calloc(plen + 1, RF_HASH_LEN));
	if (plen > 0)
		memcpy(big, proof, plen * RF_HASH_LEN);
	memcpy(big[plen], root, RF_HASH_LEN);
	assert_int_equal(
	    rf_merkle_verify_inclusion(i, n, leaves[i], P(big), plen + 1, root),
	    RF_ERR_PROOF);
	/* Preceding value. */
	memcpy(big[0], leaves[0], RF_HASH_LEN);
	if (plen > 0)
		memcpy(big[1], proof, plen * RF_HASH_LEN);
	assert_int_equal(
	    rf_merkle_verify_inclusion(i, n, leaves[i], P(big), plen + 1, root),
	    RF_ERR_PROOF);
	free(big);
	/* Wrong sizes and indexes. */
	if (i + 1 < n)
		assert_int_equal(rf_merkle_verify_inclusion(
				     i + 1, n, leaves[i], P(proof), plen, root),
		    RF_ERR_PROOF);
	assert_int_equal(
	    rf_merkle_verify_inclusion(n, n, leaves[i], P(proof), plen, root),
	    RF_ERR_PROOF);
	assert_int_equal(rf_merkle_verify_inclusion(
			     i, 2 * n, leaves[i], P(proof), plen, root),
	    RF_ERR_PROOF);
	/* Wrong leaf, wrong root. */
	memcpy(bad, leaves[i], RF_HASH_LEN);
	bad[31] ^= 1;
	assert_int_equal(
	    rf_merkle_verify_inclusion(i, n, bad, P(proof), plen, root),
	    RF_ERR_PROOF);
	memcpy(bad, root, RF_HASH_LEN);
	bad[0] ^= 0x80;
	assert_int_equal(
	    rf_merkle_verify_inclusion(i, n, leaves[i], P(proof), plen, bad),
	    RF_ERR_PROOF);
}

static void
test_inclusion(void **state)
{
	uint8_t root[RF_HASH_LEN];
	uint8_t(*proof)[RF_HASH_LEN];
	uint64_t n, i;
	size_t plen;

	(void)state;
	make_leaves();
	for (n = 1; n <= MAXN; n++) {
		assert_int_equal(rf_merkle_root(L, n, root), 0);
		for (i = 0; i < n; i++) {
			assert_int_equal(
			    rf_merkle_inclusion_proof(L, n, i, &proof, &plen),
			    0);
			assert_int_equal(rf_merkle_verify_inclusion(i, n,
					     leaves[i], P(proof), plen, root),
			    0);
			check_inclusion_mutations(i, n, root, proof, plen);
			free(proof);
		}
		assert_int_equal(
		    rf_merkle_inclusion_proof(L, n, n, &proof, &plen),
		    RF_ERR_ARG);
	}
}

static void
test_consistency(void **state)
{
	uint8_t r1[RF_HASH_LEN], r2[RF_HASH_LEN], bad[RF_HASH_LEN];
	uint8_t(*proof)[RF_HASH_LEN], (*big)[RF_HASH_LEN];
	uint64_t m, n;
	size_t plen, j;
	int bit;

	(void)state;
	make_leaves();
	for (n = 1; n <= MAXN; n++) {
		assert_int_equal(rf_merkle_root(L, n, r2), 0);
		for (m = 1; m <= n; m++) {
			assert_int_equal(rf_merkle_root(L, m, r1), 0);
			assert_int_equal(
			    rf_merkle_consistency_proof(L, n, m, &proof, &plen),
			    0);
			assert_int_equal(rf_merkle_verify_consistency(
					     m, n, r1, r2, P(proof), plen),
			    0);
			for (j = 0; j < plen; j++)
				for (bit = 0; bit < 256; bit += 53) {
					proof[j][bit / 8] ^=
					    (uint8_t)(1 << (bit % 8));
					assert_int_equal(
					    rf_merkle_verify_consistency(
						m, n, r1, r2, P(proof), plen),
					    RF_ERR_PROOF);
					proof[j][bit / 8] ^=
					    (uint8_t)(1 << (bit % 8));
				}
			if (plen > 0)
				assert_int_equal(
				    rf_merkle_verify_consistency(
					m, n, r1, r2, P(proof), plen - 1),
				    RF_ERR_PROOF);
			assert_non_null(big = calloc(plen + 1, RF_HASH_LEN));
			if (plen > 0)
				memcpy(big, proof, plen * RF_HASH_LEN);
			memcpy(big[plen], r2, RF_HASH_LEN);
			assert_int_equal(rf_merkle_verify_consistency(
					     m, n, r1, r2, P(big), plen + 1),
			    RF_ERR_PROOF);
			free(big);
			/* Wrong sizes, swapped or altered roots. */
			if (m < n) {
				assert_int_equal(rf_merkle_verify_consistency(
						     m + 1 < n ? m + 1 : 0, n,
						     r1, r2, P(proof), plen),
				    RF_ERR_PROOF);
				assert_int_equal(rf_merkle_verify_consistency(n,
						     m, r2, r1, P(proof), plen),
				    RF_ERR_PROOF);
				assert_int_equal(rf_merkle_verify_consistency(m,
						     n, r2, r1, P(proof), plen),
				    RF_ERR_PROOF);
			}
			memcpy(bad, r1, RF_HASH_LEN);
			bad[5] ^= 4;
			assert_int_equal(rf_merkle_verify_consistency(
					     m, n, bad, r2, P(proof), plen),
			    RF_ERR_PROOF);
			memcpy(bad, r2, RF_HASH_LEN);
			bad[7] ^= 4;
			assert_int_equal(rf_merkle_verify_consistency(
					     m, n, r1, bad, P(proof), plen),
			    RF_ERR_PROOF);
			free(proof);
		}
	}
	/* From the empty tree, or backwards: no proof. */
	assert_int_equal(
	    rf_merkle_consistency_proof(L, 4, 0, &proof, &plen), RF_ERR_ARG);
	assert_int_equal(
	    rf_merkle_consistency_proof(L, 4, 5, &proof, &plen), RF_ERR_ARG);
}

/* RFC 9162 2.1.5 example: the tree of 7 leaves d0..d6. */
static void
test_rfc_example(void **state)
{
	uint8_t(*proof)[RF_HASH_LEN];
	uint8_t l[RF_HASH_LEN], g[RF_HASH_LEN];
	size_t plen;

	(void)state;
	make_leaves();
	/* The audit path for d0 is [b, h, l]. */
	assert_int_equal(rf_merkle_inclusion_proof(L, 7, 0, &proof, &plen), 0);
	assert_int_equal(plen, 3);
	assert_memory_equal(proof[0], leaves[1], RF_HASH_LEN);
	assert_int_equal(rf_merkle_root(L + 4, 3, l), 0);
	assert_memory_equal(proof[2], l, RF_HASH_LEN);
	free(proof);
	/* Consistency 3 -> 7 is [c, d, g, l]; 4 -> 7 is [l]. */
	assert_int_equal(
	    rf_merkle_consistency_proof(L, 7, 3, &proof, &plen), 0);
	assert_int_equal(plen, 4);
	assert_memory_equal(proof[0], leaves[2], RF_HASH_LEN);
	assert_memory_equal(proof[1], leaves[3], RF_HASH_LEN);
	assert_int_equal(rf_merkle_root(L, 2, g), 0);
	assert_memory_equal(proof[2], g, RF_HASH_LEN);
	assert_memory_equal(proof[3], l, RF_HASH_LEN);
	free(proof);
	assert_int_equal(
	    rf_merkle_consistency_proof(L, 7, 4, &proof, &plen), 0);
	assert_int_equal(plen, 1);
	assert_memory_equal(proof[0], l, RF_HASH_LEN);
	free(proof);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inclusion),
	    cmocka_unit_test(test_consistency),
	    cmocka_unit_test(test_rfc_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
