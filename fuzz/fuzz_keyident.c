/*
 * fuzz_keyident.c: key identities (common/keyident.h) of arbitrary bytes,
 * as a SubjectPublicKeyInfo and as a certificate. The corpus in
 * fuzz/corpus/keyident holds RSA and EC keys, a certificate and garbage,
 * and is replayed by ctest.
 *
 * Whatever the walker accepts as an RSA key that OpenSSL also decodes
 * must have the identity SHA-256(modulus) of OpenSSL's reading: two
 * readings of one key never give two identities.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/keyident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
agrees_with_openssl(const uint8_t *data, size_t size, const char *id)
{
	const unsigned char *p = data;
	uint8_t nb[1024], md[SHA256_DIGEST_LENGTH];
	char want[RF_KEY_IDENT_LEN + 1];
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)size);
	BIGNUM *n = NULL;
	int l;

	if (k != NULL && p == data + size &&
	    EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
	    (l = BN_num_bytes(n)) > 0 && l <= (int)sizeof(nb)) {
		BN_bn2bin(n, nb);
		SHA256(nb, (size_t)l, md);
		rf_hex(md, sizeof(md), want);
		if (strcmp(want, id) != 0)
			__builtin_trap();
	}
	BN_free(n);
	EVP_PKEY_free(k);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[RF_KEY_IDENT_LEN + 1];

	if (rf_key_ident_spki(data, size, id) == 0) {
		if (strlen(id) != RF_KEY_IDENT_LEN)
			__builtin_trap();
		agrees_with_openssl(data, size, id);
	}
	if (rf_key_ident_cert(data, size, id) == 0 &&
	    strlen(id) != RF_KEY_IDENT_LEN)
		__builtin_trap();
	rf_err_clear();
	return 0;
}
