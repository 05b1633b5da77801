/* Helpers shared by the cmocka unit tests. */
#ifndef RF_TESTUTIL_H
#define RF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "common/config.h"

/*
 * A fresh state folder under $TMPDIR (mkdtemp); sets RINGFENCE_HOME and
 * clears other RINGFENCE_* settings. Free with tu_home_remove.
 */
char *tu_home(void);
void tu_home_remove(char *home);

/*
 * Initialise a SoftHSM2 token labelled "ringfence" in home (its own
 * softhsm2.conf and token folder, via softhsm2-util), write the PIN to
 * <home>-custody/token.pin (the default pin_file), and load cfg for that
 * home.
 */
void tu_token(const char *home, struct rf_config *cfg);

/* A self-signed certificate for pk (CN cn, valid for an hour), signed
 * with pk; caller frees. */
X509 *tu_self_signed(EVP_PKEY *pk, const char *cn);

/*
 * Connect client c and server s over a new memory BIO pair and run their
 * TLS handshake: 1 when both ends completed it, 0 when one failed.
 */
int tu_handshake(SSL *c, SSL *s);

/* A peer's address from IPv4 or IPv6 text ("192.0.2.1", "2001:db8::1"),
 * port 0. */
struct sockaddr_storage tu_addr(const char *a);

/* Run a shell command; returns its exit status. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
