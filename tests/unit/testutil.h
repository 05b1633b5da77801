/* Helpers shared by the cmocka unit tests. */
#ifndef RF_TESTUTIL_H
#define RF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
 * home/token.pin, and load cfg for that home.
 */
void tu_token(const char *home, struct rf_config *cfg);

/* Run a shell command; returns its exit status. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
