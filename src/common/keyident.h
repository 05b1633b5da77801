/*
 * keyident.h: the identity of a public key, the same whatever its
 * encoding or its other parameters: hex SHA-256 of the RSA modulus
 * (the unsigned big-endian magnitude, no leading zero), or of the EC
 * point in uncompressed form (SEC 1 2.3.3: 04 || X || Y).
 *
 * Two RSA keys with one modulus and different exponents (e=65537 and
 * e=65539) share an identity: whoever holds one private key can derive
 * the other, so they are one key for custody purposes.
 */
#ifndef RF_COMMON_KEYIDENT_H
#define RF_COMMON_KEYIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/rf.h"

#define RF_KEY_IDENT_LEN 64 /* hex characters, without the NUL */

/* From a SubjectPublicKeyInfo DER (RFC 5280 4.1.2.7). RF_ERR_MALFORMED
 * if it is not an RSA key or an uncompressed EC point. */
int rf_key_ident_spki(
    const uint8_t *spki, size_t len, char out[RF_KEY_IDENT_LEN + 1]) RF_WUR;
/* From a certificate DER: the identity of its subject public key. */
int rf_key_ident_cert(
    const uint8_t *der, size_t len, char out[RF_KEY_IDENT_LEN + 1]) RF_WUR;

#endif
