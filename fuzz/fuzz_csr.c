/*
 * fuzz_csr.c: the CSR checks (rf_ca_csr_check) on arbitrary bytes, for each
 * profile. The corpus in fuzz/corpus/csr holds valid and refused requests
 * (DER and PEM) and is replayed by ctest.
 *
 * The CA decodes requests with its own ASN.1 templates (src/ca/csr.c), so
 * every DER request it accepts must also parse and verify as an X509_REQ,
 * with the same public key: a request OpenSSL would refuse is never issued.
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
agrees_with_x509_req(const uint8_t *data, size_t size, EVP_PKEY *pub)
{
	const unsigned char *p = data;
	X509_REQ *req;

	if (size == 0 || data[0] != 0x30)
		return; /* PEM: its DER is checked on its own run */
	req = d2i_X509_REQ(NULL, &p, (long)size);
	if (req == NULL || p != data + size ||
	    X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1 ||
	    EVP_PKEY_eq(pub, X509_REQ_get0_pubkey(req)) != 1)
		__builtin_trap();
	X509_REQ_free(req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum rf_profile profiles[] = {
	    RF_PROFILE_CLIENT, RF_PROFILE_SERVER, RF_PROFILE_ASSERTION};
	EVP_PKEY *pub;
	size_t i;

	for (i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		pub = NULL;
		if (rf_ca_csr_check(data, size, profiles[i], &pub) == 0) {
			if (pub == NULL)
				__builtin_trap(); /* success returns the key */
			agrees_with_x509_req(data, size, pub);
		}
		EVP_PKEY_free(pub);
	}
	return 0;
}
