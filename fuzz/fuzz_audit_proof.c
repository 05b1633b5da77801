/*
 * Fuzz the Merkle proof verifiers with untrusted proofs: the input is
 * uint64 index/size1, uint64 size, a 32-byte leaf or first root, a 32-byte
 * root, then proof values (a trailing partial value is dropped). Sizes are
 * reduced so that small trees are reached. A proof that verifies must also
 * verify when regenerated from nothing but its own claim: the inclusion
 * verifier never accepts an index outside the tree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t(*proof)[RF_HASH_LEN] = NULL;
	uint64_t a, b;
	size_t plen;

	if (size < 16 + 2 * RF_HASH_LEN)
		return 0;
	a = get_u64(data);
	b = get_u64(data + 8);
	if (data[0] & 0x80) { /* small sizes most of the time */
		a &= 0xff;
		b &= 0xff;
	}
	plen = (size - 16 - 2 * RF_HASH_LEN) / RF_HASH_LEN;
	if (plen > 0) {
		if ((proof = malloc(plen * RF_HASH_LEN)) == NULL)
			return 0;
		memcpy(proof, data + 16 + 2 * RF_HASH_LEN, plen * RF_HASH_LEN);
	}
	if (rf_merkle_verify_inclusion(
		a, b, data + 16, proof, plen, data + 16 + RF_HASH_LEN) == 0 &&
	    a >= b)
		abort();
	if (rf_merkle_verify_consistency(
		a, b, data + 16, data + 16 + RF_HASH_LEN, proof, plen) == 0 &&
	    (a > b || a == 0))
		abort();
	free(proof);
	return 0;
}
