/*
 * fuzz_csr.c: the CSR checks (rf_ca_csr_check) on arbitrary bytes, for each
 * profile. The corpus in fuzz/corpus/csr holds valid and refused requests
 * (DER and PEM) and is replayed by ctest.
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum rf_profile profiles[] = {
	    RF_PROFILE_CLIENT, RF_PROFILE_SERVER, RF_PROFILE_ASSERTION};
	EVP_PKEY *pub;
	size_t i;

	for (i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		pub = NULL;
		if (rf_ca_csr_check(data, size, profiles[i], &pub) == 0 &&
		    pub == NULL)
			__builtin_trap(); /* success must return the key */
		EVP_PKEY_free(pub);
	}
	return 0;
}
