/*
 * pool.h: the standby key pool. Key pairs made in the token ahead of need,
 * so that mass rotation (incident contain) costs signatures, not key
 * generation.
 *
 * A pool key is made like every other key (rf_keys_generate_many: same
 * token attributes, a "keygen" leaf whose detail names the label "pool"),
 * then recorded in the store (store_pool.h) as free. Taking a key moves it
 * free -> taken in one store transaction together with its audit leaf
 * (type "pool", what "take": which connection, which incident or
 * issuance), so two takers never get the same key and no key leaves the
 * pool without a leaf saying where it went. A key is taken once and never
 * returned. Before use, the taken keys are loaded from the token
 * (rf_keys_load_many: one pass over each token for the batch, checking as
 * rf_keys_load does that each id is the SHA-256 of the public key the
 * token holds) and their algorithm checked against the store's record.
 *
 * The pool has a target size per algorithm (settings pool_<alg>, default:
 * every connection whose replacement key is of that algorithm, plus
 * pool_margin percent: rf_pool_conn_alg of its current certificate's key,
 * a token key or a CSR's, as contain makes them). rf_pool_refill tops it up; it
 * is meant to run in a thread of its own (the custody process) at the lowest
 * priority, with its own store handle.
 */
#ifndef RF_POOL_POOL_H
#define RF_POOL_POOL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_store;
struct rf_audit;
struct rf_progress;

/* The pool of one algorithm. */
struct rf_pool_status {
	enum rf_key_alg alg;
	int64_t free;	  /* keys ready to take */
	int64_t taken;	  /* keys given out, ever */
	int64_t rejected; /* keys that failed the check when taken */
	int64_t conns;	  /* connections whose next key is of alg */
	int64_t target;	  /* the setting, or conns plus the margin */
	double rate;	  /* keys a second the last refill made; 0: unknown */
	double refill_s;  /* seconds to refill to target at rate; -1: unknown */
};

/* Status of alg's pool from the store and the settings. */
int rf_pool_status(const struct rf_config *cfg, struct rf_store *st,
    enum rf_key_alg alg, struct rf_pool_status *out) RF_WUR;

/*
 * Put the calling thread at the lowest priority: SCHED_IDLE (it runs only
 * when a core is otherwise idle) and nice 19. Linux applies both to the
 * calling thread only. Failure is RF_ERR_INTERNAL with the reason.
 */
int rf_pool_lower_priority(void) RF_WUR;

struct rf_pool_fill_report {
	size_t made;	/* keys added to the pool */
	double seconds; /* wall time spent making and recording them */
	int64_t free;	/* free keys after the run */
};

/*
 * Add keys of alg to the pool in batches until it holds target free keys,
 * max keys were made (0: no limit), or *stop becomes non-zero (checked
 * between batches; stop may be NULL). Each batch is made by
 * rf_keys_generate_many with label "pool" and recorded in one store
 * transaction; if recording fails its keys are destroyed. The rate of the
 * run is recorded for rf_pool_status (meta pool_rate.<alg>).
 */
int rf_pool_refill(struct rf_keys *keys, struct rf_store *st,
    enum rf_key_alg alg, int64_t target, size_t max,
    const volatile sig_atomic_t *stop, const struct rf_actor *who,
    struct rf_pool_fill_report *rep) RF_WUR;
/* The same, moving prog (NULL: none) through phase "make keys", its total
 * the keys this run will make. */
int rf_pool_refill_progress(struct rf_keys *keys, struct rf_store *st,
    enum rf_key_alg alg, int64_t target, size_t max,
    const volatile sig_atomic_t *stop, const struct rf_actor *who,
    struct rf_progress *prog, struct rf_pool_fill_report *rep) RF_WUR;

/* One key wanted from the pool. */
struct rf_pool_want {
	enum rf_key_alg alg;
	const char *tenant;   /* the connection's tenant */
	const char *taken_by; /* "tenant/connection" (or tenant/profile) */
	const char *ref;      /* "incident-7", "issuance" */
};

/*
 * Take keys for want[0..n) in one store transaction (the store is
 * rf_audit_store(audit)): out[i] receives the loaded, checked key, or NULL
 * when the pool had no free key of that algorithm or the key failed the
 * check (it is then "rejected", with a leaf saying why, and destroyed in
 * the token by custody's tenant-only destroy): the caller generates those.
 * *taken receives how many out[] are set. A rejected key is recorded
 * "destroying" with its rejection, in one transaction, before the destroy;
 * one whose destroy fails (or whose process is killed before it) stays
 * so, signing nothing, and the take goes on: the next take for the same
 * ref (first thing it does: rf_pool_rejected_finish) or the incident's
 * close destroys it. On error (a rejection or a take that cannot be
 * recorded) no out[] is set; keys already moved to "taken" stay so, each
 * with its leaf.
 */
int rf_pool_take(struct rf_keys *keys, struct rf_audit *audit,
    const struct rf_pool_want *want, size_t n, const struct rf_actor *who,
    struct rf_key **out, size_t *taken) RF_WUR;

/* Pools: one per key algorithm (ec-p256 to rsa-4096). */
#define RF_POOL_ALGS (RF_KEY_ALGS - 1)

/*
 * Destroy the pool keys rejected when taken for ref that are not destroyed
 * yet (rf_store_pool_rejected_live), in one custody tenant-only destroy;
 * *destroyed receives how many, on success.
 */
int rf_pool_rejected_finish(struct rf_keys *keys, struct rf_audit *audit,
    const char *ref, const struct rf_actor *who, size_t *destroyed) RF_WUR;

/*
 * What the pool gives for need keys of alg (rf_incident_pool_plan counts
 * them per algorithm for an incident). Keys the pool lacks are generated;
 * gen_s estimates how long, from the last refill's rate (or a typical
 * SoftHSM rate when none was measured, rate_measured 0).
 */
struct rf_pool_plan {
	enum rf_key_alg alg;
	int64_t need;	   /* connections to contain */
	int64_t from_pool; /* keys the pool has for them */
	int64_t generate;  /* keys contain must make */
	double rate;	   /* keys a second, for the estimate */
	int rate_measured;
	double gen_s; /* generate / rate */
};
/*
 * Keys a second the token makes of alg, for an estimate: the last
 * refill's rate (*measured 1), or a typical SoftHSM rate when none was
 * measured (RSA-2048 about 5, EC P-256 about 300).
 */
int rf_pool_gen_rate(struct rf_store *st, enum rf_key_alg alg, double *rate,
    int *measured) RF_WUR;
int rf_pool_plan_for(const struct rf_config *cfg, struct rf_store *st,
    enum rf_key_alg alg, int64_t need, struct rf_pool_plan *p) RF_WUR;
/* One line for the operator: "the standby pool has 40 of 100 rsa-2048
 * keys: 60 will be generated in the token, about 24 s at 2.5 keys/s". */
void rf_pool_plan_text(const struct rf_pool_plan *p, char *buf, size_t len);

/*
 * The custody process's own refill (keyd's background hook, keyd.h): keyd
 * calls rf_pool_bg_step only after a turn of its loop with no request, so
 * the refill never runs while a signature waits. Each step makes a few keys
 * (about 50 ms of SoftHSM work for EC, one key for RSA) of the first
 * algorithm whose pool is below its target, recorded as rf_pool_refill
 * records them, and returns 1 while more are needed, 0 when every pool is
 * full, pool_refill is 0, or a failure pauses it (reported through log,
 * tried again after a minute). Targets are read again at most every 10 s
 * when the pools are full. The rate over the keys made is recorded for
 * `keys pool status`.
 */
/*
 * First, once per process: the handles of the free pool keys are found
 * again, one token a step (rf_keys_remember), so that a keyd that
 * restarted takes pool keys without reading every object of each token;
 * log says when it is done. Each step also logs when keys were loaded by
 * reading a whole token (rf_keys_full_reads) since the last step.
 */
struct rf_pool_bg;
int rf_pool_bg_new(const struct rf_config *cfg,
    void (*log)(void *arg, const char *line), void *log_arg,
    struct rf_pool_bg **out) RF_WUR;
void rf_pool_bg_free(struct rf_pool_bg *bg);
int rf_pool_bg_step(
    struct rf_pool_bg *bg, struct rf_keys *keys, struct rf_store *st);

/*
 * The algorithm of the key that replaces a connection's credential: that
 * of the key it has (have), unless the connection requires another
 * (required, rf_connector_conn_alg: an entra connection's RSA) that have
 * does not meet. Contain makes its keys so, and the pool's default target
 * counts connections so.
 */
enum rf_key_alg rf_pool_conn_alg(
    enum rf_key_alg have, enum rf_key_alg required);

/* The target size of alg's pool: the setting, or conns plus the margin. */
int64_t rf_pool_default_target(
    const struct rf_config *cfg, enum rf_key_alg alg, int64_t conns);

#endif
