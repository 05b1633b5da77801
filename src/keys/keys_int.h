/*
 * keys_int.h: inside src/keys only. The seam between the token code
 * (keys.c, token.c, session.c, object.c, sign.c, admin.c, keygen.c,
 * retire.c; token_int.h) and the custody client (client.c): in a process
 * that uses the custody process, each public rf_keys_* function of the
 * token code forwards to the rf_kc_* stub of the same name at its top.
 */
#ifndef RF_KEYS_KEYS_INT_H
#define RF_KEYS_KEYS_INT_H

#include <sched.h>

#include "keys/keys.h"

struct rf_kc; /* a connection to keyd (client.c) */

/* keys.c: a handle whose operations all go to kc (owned by it). */
int rf_keys_new_client(
    const struct rf_config *cfg, struct rf_kc *kc, struct rf_keys **out) RF_WUR;
/* The client of keys, or NULL for a token opened in this process. */
struct rf_kc *rf_keys_kc(const struct rf_keys *keys);
/* keys.c: a key known by its public half only (as keyd described it). */
int rf_key_new_public(enum rf_key_alg alg, const uint8_t *spki, size_t len,
    struct rf_key **out) RF_WUR;

/* An EC key's SPKI in its fixed form (alg.c): length, 0 if not. */
#define RF_EC_SPKI_MAX 128
size_t rf_keys_ec_spki(EVP_PKEY *pub, uint8_t buf[RF_EC_SPKI_MAX]);

/*
 * alg.c: the SPKI of an EC key of alg as i2d_PUBKEY writes it (named
 * curve, uncompressed point) is the *prelen bytes *pre, then the point of
 * *pointlen bytes. 0 when alg is not EC.
 */
int rf_keys_ec_spki_form(
    enum rf_key_alg alg, const uint8_t **pre, size_t *prelen, size_t *pointlen);

/* client.c: true when rf_keys_open must open a client (rf_keys_custody_use). */
int rf_kc_enabled(void);
int rf_kc_open(const struct rf_config *cfg, struct rf_keys **out) RF_WUR;
void rf_kc_free(struct rf_kc *kc);
int rf_kc_generate_many(struct rf_kc *kc, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, struct rf_key **out) RF_WUR;
int rf_kc_load(struct rf_kc *kc, const char *id, struct rf_key **out) RF_WUR;
int rf_kc_load_many(struct rf_kc *kc, const char *const *ids, size_t n,
    struct rf_key **out) RF_WUR;
int rf_kc_sign(struct rf_kc *kc, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int digest,
    const struct rf_actor *who, struct rf_sig *sigs) RF_WUR;
/* As rf_kc_sign, and rec->fn is called once keyd's leaves for it are
 * durable, before it signs (rec NULL: not asked). */
int rf_kc_sign_told(struct rf_kc *kc, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int digest,
    const struct rf_actor *who, struct rf_sig *sigs,
    const struct rf_recorded *rec) RF_WUR;
int rf_kc_disable_many(struct rf_kc *kc, const char *const *ids, size_t n,
    int destroy, const struct rf_actor *who, size_t *done) RF_WUR;
int rf_kc_list(struct rf_kc *kc,
    int (*fn)(void *arg, const struct rf_key_info *ki), void *arg) RF_WUR;
int rf_kc_custody(struct rf_kc *kc, const char *id, int v[4]) RF_WUR;
int rf_kc_session(struct rf_kc *kc, const char *serial, const char *pub,
    const uint8_t *proof, size_t prooflen, struct rf_keys_session *out);
int rf_kc_note(struct rf_kc *kc, int what, const char *connector,
    const char *tenant, const char *conn) RF_WUR;
int rf_kc_note_items(struct rf_kc *kc, int affected,
    const struct rf_knote_item *v, size_t n, uint8_t *changed) RF_WUR;
int rf_kc_measure_rate(struct rf_kc *kc, struct rf_key *key, size_t n,
    int threads, double *per_sec) RF_WUR;

/* token.c: wipe the PIN the handle keeps once logged in (keyd): a later
 * login, after a device error, reads pin_file again, and without one
 * fails and says so. */
void rf_keys_forget_pin(struct rf_keys *keys);
/* Log in to every token now (keyd, before it forgets a PIN that came
 * from the environment: nothing could log in to a token later). */
int rf_keys_login_all(struct rf_keys *keys) RF_WUR;

/* keyd: the ledger (ledger.h) in which this handle keeps the keys it
 * disables or destroys, before the store's state changes, and which its
 * signing path consults beside the store; borrowed. */
struct rf_ledger;
void rf_keys_set_ledger(struct rf_keys *keys, struct rf_ledger *ledger);

/* sign.c: check once that the token lets key sign, and remember its
 * object for signing (keyd primes the keys it keeps, whose copies then
 * sign without a token search). */
int rf_keys_check(struct rf_keys *keys, struct rf_key *key) RF_WUR;

/* keygen.c: rf_keys_generate_many with the token's work (the pairs made)
 * at prio, a caller's scheduling policy and nice value (keyd: its
 * caller's, so that a low-priority caller's keys take only idle cores),
 * on a thread of its own when that is lower than normal; the store and the
 * record are written at the calling thread's priority. NULL: as
 * rf_keys_generate_many. */
struct keys_prio {
	int policy; /* SCHED_OTHER, SCHED_BATCH or SCHED_IDLE */
	int nice;   /* -20 to 19 */
};
/* 1 if prio is below normal: its pairs are made on a thread of their own
 * at that priority (NULL: normal). */
static inline int
keys_prio_low(const struct keys_prio *prio)
{
	return prio != NULL &&
	    (prio->policy == SCHED_IDLE || prio->policy == SCHED_BATCH ||
		prio->nice > 0);
}
int keys_generate_at(struct rf_keys *keys, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, const struct keys_prio *prio,
    struct rf_key **out) RF_WUR;

/* keyd_handlers.c: decode a request frame as keyd would, acting on nothing
 * (fuzzing). */
int rf_keyd_decode(const uint8_t *frame, size_t len) RF_WUR;

#endif
