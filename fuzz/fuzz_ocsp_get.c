/*
 * fuzz_ocsp_get.c: the OCSP GET path decoder (rf_ocsp_get_decode) on
 * arbitrary bytes, and what it decodes through rf_ocsp_request_parse. The
 * corpus in fuzz/corpus/ocsp_get holds base64 requests with '/', '+', '=',
 * "//", percent-escapes, missing padding, base64url, and broken ones.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ocsp/ocsp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_ocsp_request q;
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	r = rf_ocsp_get_decode((const char *)data, size, &der, &len);
	if (r == 0) {
		/* base64 never grows: 3 bytes out per 4 characters in. */
		if (der == NULL || len == 0 || len > size / 4 * 3 + 2)
			__builtin_trap();
		if (rf_ocsp_request_parse(der, len, &q) == 0 &&
		    (q.n == 0 || q.n > RF_OCSP_MAX_IDS))
			__builtin_trap();
	} else if (der != NULL || len != 0 ||
	    (r != RF_ERR_MALFORMED && r != RF_ERR_TOO_LARGE &&
		r != RF_ERR_ALLOC))
		__builtin_trap();
	free(der);
	return 0;
}
