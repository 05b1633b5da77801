/*
 * tokmeta.h: verified copies of SoftHSM's token metadata files. Private to
 * src/keys (token.c calls it around C_Initialize and after login).
 *
 * SoftHSM keeps each token in tokens/<uuid>/ and its label, serial, flags
 * and PIN blobs in tokens/<uuid>/token.object, which it rewrites on every
 * login (truncate, then write). A process killed in between leaves the
 * file empty or cut short, and the token (with every key in it) unusable.
 * ringfence keeps a copy of each token's file, verified, in
 * $RINGFENCE_HOME/token-meta/<uuid>.object, and puts it back before
 * C_Initialize when it finds the file torn.
 */
#ifndef RF_KEYS_TOKMETA_H
#define RF_KEYS_TOKMETA_H

#include "common/config.h"
#include "common/rf.h"

#define RF_TOKMETA_MAX 64 /* tokens looked at */

/* A token whose metadata file was put back from its copy. */
struct rf_tokmeta_restored {
	char uuid[64];
	char label[33];
};

/*
 * Before C_Initialize (SoftHSM with cfg->softhsm_conf only): every token
 * folder whose token.object is empty or does not parse, and whose copy
 * verifies (parses, label of this key store), gets its copy back (temp
 * file, fsync, rename, fsync of the folder), under the file's lock.
 * out[0..*n) names them, for the audit record. A torn file without a copy
 * is left as it is (SoftHSM then leaves the token out).
 */
int rf_tokmeta_restore(const struct rf_config *cfg,
    struct rf_tokmeta_restored *out, int max, int *n) RF_WUR;

/*
 * After a login: save a copy of each token folder's token.object that
 * parses, belongs to this key store and whose serial is one a token of
 * the module reports (known(arg, label, serial) is 1), when it differs
 * from the copy (the generation counter aside). Token-meta folder 0700,
 * files 0600.
 */
int rf_tokmeta_save(const struct rf_config *cfg,
    int (*known)(void *arg, const char *label, const char *serial),
    void *arg) RF_WUR;

/* A token of this key store and its folder, tokendir/<uuid>. */
struct rf_tokmeta_folder {
	char uuid[64];
	char label[33];
};

/*
 * The tokens of this key store whose folder is missing. Each verified copy
 * (token-meta/<uuid>.object) names a token's label and its folder; a
 * token is missing when no folder of tokendir (written to tdir, cap bytes)
 * holds a readable token.object of that label: its own, or another (a
 * folder renamed). out[0..*n) receive them. *n is 0 when cfg names no
 * token folder (a module by path: nothing to tell).
 */
int rf_tokmeta_missing(const struct rf_config *cfg, char *tdir, size_t cap,
    struct rf_tokmeta_folder *out, int max, int *n) RF_WUR;

#endif
