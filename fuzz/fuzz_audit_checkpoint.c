/* Fuzz the audit checkpoint file parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t root[RF_HASH_LEN], *copy;
	uint64_t n;

	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	/* A parsed checkpoint is at least its fixed text. */
	if (rf_audit_checkpoint_parse(copy, size, &n, root) == 0 && size < 100)
		abort();
	free(copy);
	return 0;
}
