/*
 * Fuzz the audit leaf decoder (rf_audit_leaf_check): arbitrary leaf data,
 * with and without search columns taken from the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_leaf_rec l;
	uint8_t *copy;

	/* A copy of exactly size bytes: reads past it are caught. */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	memset(&l, 0, sizeof(l));
	l.data = copy;
	l.len = size;
	/* A leaf that checks must re-encode to itself: nothing to add. */
	if (rf_audit_leaf_check(&l) == 0 && size == 0)
		abort();
	l.type = "sign";
	l.key_id = "k";
	l.tenant = "t";
	l.time = 1;
	if (rf_audit_leaf_check(&l) == 0 && size == 0)
		abort();
	free(copy);
	return 0;
}
