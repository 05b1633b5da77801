/* Fuzz the SoftHSM token metadata parser (verified copies, tokmeta.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char label[33], serial[17];
	uint8_t *copy;

	if ((copy = calloc(1, size > 0 ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	/* A stream that parses holds a generation, a 32-byte label and a
	 * 16-byte serial, each with its 16 bytes of type and kind. */
	if (rf_keys_tokmeta_parse(copy, size, label, serial) == 0 &&
	    (size < 8 + 2 * 24 + 32 + 16 || strlen(label) > 32 ||
		strlen(serial) > 16))
		abort();
	free(copy);
	return 0;
}
