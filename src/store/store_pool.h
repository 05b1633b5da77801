/*
 * store_pool.h: the store's record of the standby key pool (part of
 * store.h's interface, in its own header like store_incident.h). Same
 * conventions as store.h.
 *
 * A pool key is a key pair generated in the token ahead of need. Its row
 * goes from "free" to "taken" exactly once, in one transaction that also
 * names who took it (a connection or an issuance) and moves the key's
 * record (table keys) from purpose "pool" to purpose "connection" of the
 * taker's tenant. A key whose token copy fails the check at take time
 * becomes "rejected". Nothing returns a key to "free".
 */
#ifndef RF_STORE_STORE_POOL_H
#define RF_STORE_STORE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/rf.h"

struct rf_store;

struct rf_pool_rec {
	char key_id[65];
	char alg[16];	    /* "ec-p256", ... */
	char state[16];	    /* "free", "taken", "rejected" */
	char taken_by[200]; /* "tenant/connection", "" while free */
	char ref[64];	    /* "incident-7", "issuance", ... */
	int64_t made, taken;
};

/*
 * Record n new pool keys (state free) and their key records (purpose
 * "pool"), in one transaction (or the caller's).
 */
int rf_store_pool_add(struct rf_store *st, const char (*ids)[65], size_t n,
    const char *alg, int64_t now) RF_WUR;

/* One taker for rf_store_pool_take. */
struct rf_pool_taker {
	const char *tenant;   /* the key record's new tenant */
	const char *taken_by; /* "tenant/connection" */
	const char *ref;      /* incident or issuance */
};

/*
 * Take up to n free keys of alg, oldest first, for takers[0..n): each
 * moves free -> taken (a row another connection took in the meantime is
 * not taken twice: the update is conditional on "free"). ids[i] receives
 * the key of takers[i], for i < *got; the rest had no free key. Must run
 * inside the caller's rf_store_begin transaction, so that the audit
 * leaves saying where the keys went commit with the move.
 */
int rf_store_pool_take(struct rf_store *st, const char *alg,
    const struct rf_pool_taker *takers, size_t n, int64_t now, char (*ids)[65],
    size_t *got) RF_WUR;

/* Set a pool key's state ("rejected"); RF_ERR_NOT_FOUND if absent. */
int rf_store_pool_set_state(
    struct rf_store *st, const char *key_id, const char *state) RF_WUR;

int rf_store_pool_get(
    struct rf_store *st, const char *key_id, struct rf_pool_rec *out) RF_WUR;

/* Keys of alg in each state. */
struct rf_pool_counts {
	int64_t free, taken, rejected;
	int64_t oldest_free; /* made time of the oldest free key, 0 if none */
};
int rf_store_pool_count(
    struct rf_store *st, const char *alg, struct rf_pool_counts *out) RF_WUR;

/*
 * Connections with a current credential, grouped for counting by the key
 * they will be given (pool.c, rf_pool_conn_alg): fn gets n connections
 * whose certificate's key has the record alg, or (alg NULL: a key from a
 * CSR, which has none) one connection and its certificate der, and the
 * algorithm the connection requires (its entra registration's key_alg,
 * NULL for none).
 */
int rf_store_pool_conn_keys(struct rf_store *st,
    int (*fn)(void *arg, const char *alg, const uint8_t *der, size_t derlen,
	const char *required, int64_t n),
    void *arg) RF_WUR;

/*
 * Pool keys taken for ref (an incident's "incident-N") that nothing uses
 * yet: still active and in no certificate, as a run killed between the
 * take and recording them on its connections leaves them. fn gets each
 * key's id, taken_by (the connection, "tenant/name") and algorithm; a
 * non-zero return stops and is returned.
 */
int rf_store_pool_taken_unused(struct rf_store *st, const char *ref,
    int (*fn)(void *arg, const char *id, const char *taken_by, const char *alg),
    void *arg) RF_WUR;

/*
 * Pool keys rejected when taken for ref whose key
 * record is not "destroyed" yet: a take killed between the rejection and
 * the destroy, or a destroy that failed, left them. fn as above.
 */
int rf_store_pool_rejected_live(struct rf_store *st, const char *ref,
    int (*fn)(void *arg, const char *id, const char *taken_by, const char *alg),
    void *arg) RF_WUR;

/* Calls fn for every pool row (alg NULL: every alg) in made order. */
int rf_store_pool_foreach(struct rf_store *st, const char *alg,
    int (*fn)(void *arg, const struct rf_pool_rec *p), void *arg) RF_WUR;

#endif
