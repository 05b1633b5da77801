/*
 * audit.h: the tamper-evident record. The only module that appends to it.
 *
 * An append-only Merkle log hashed as in RFC 9162 section 2.1:
 *   leaf hash = SHA-256(0x00 || leaf data)
 *   node hash = SHA-256(0x01 || left || right)
 * Leaf data is a canonical encoding of one event (docs/audit-format.md).
 * Signed tree heads (size, root, time) are signed by the audit key in the
 * token. Leaves and tree heads live in the store.
 */
#ifndef RF_AUDIT_AUDIT_H
#define RF_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/rf.h"
#include "store/store.h"

struct rf_audit;
struct rf_store;
struct rf_keys;
struct rf_key;
struct rf_actor;

/* One event. Strings may be NULL (omitted from the encoding). */
struct rf_audit_event {
	const char *type;   /* "keygen", "sign", "issue", "revoke", "tenant",
			       "init", "login-failed", "serve-start", ... */
	const char *key_id; /* key involved */
	const char *tenant;
	const char *what;   /* for "sign": cert, crl, ocsp, sth, assertion */
	const char *ref;    /* serial, CRL number, tree size, ... */
	const char *digest; /* hex digest signed, for "sign" */
	const char *actor;
	const char *source;
	const char *detail; /* free text */
	int64_t time;	    /* 0: rf_now() */
};

int rf_audit_open(struct rf_store *store, struct rf_audit **out) RF_WUR;
void rf_audit_free(struct rf_audit *audit);

/*
 * Append n events as consecutive leaves in one transaction, durable when
 * this returns 0. *first receives the index of the first (may be NULL).
 */
int rf_audit_append(struct rf_audit *audit, const struct rf_audit_event *evs,
    size_t n, uint64_t *first) RF_WUR;

/*
 * A minute's budget of refusal leaves (quota.c). keyd and the connector
 * API record each refusal, and a refused request costs its sender
 * nothing: unbudgeted, a flood of them would grow the record without
 * bound. At most per_min a minute are recorded one by one, and at most
 * per_who of one caller (0: no such share), so that one caller's flood
 * leaves the others' refusals recorded; the rest are counted, for one
 * leaf written once the minute is over that names the callers counted
 * most. Not locked: one thread's. A copy of the struct is a snapshot, to
 * put back when the transaction holding its leaves rolls back.
 */
#define RF_LEAF_QUOTA_TOP 4  /* callers named in a count's leaf */
#define RF_LEAF_QUOTA_WHO 32 /* callers with counts of their own */
struct rf_leaf_quota_who {
	char who[64];
	unsigned leaves, counted; /* both 0: a free entry */
};
struct rf_leaf_quota {
	int64_t minute; /* only moves forward */
	unsigned per_min, per_who, leaves, quiet;
	const char *what; /* what it counts, plural: "refusals" */
	struct rf_leaf_quota_who seen[RF_LEAF_QUOTA_WHO];
};
void rf_leaf_quota_init(
    struct rf_leaf_quota *q, unsigned per_min, unsigned per_who);
/* What q counts, for its count's leaf (a static string; "refusals"). */
void rf_leaf_quota_what(struct rf_leaf_quota *q, const char *what);
/*
 * Call first for each refusal: when a minute after q's has come (or
 * force, and refusals are counted), 1 with the count's leaf detail in
 * out ("N more refusals in the minute from TIME, not recorded one by one
 * ...") for the caller to write, and a new budget; 0 when there is
 * nothing to write. cap must be above 0.
 */
int rf_leaf_quota_roll(
    struct rf_leaf_quota *q, int64_t now, int force, char *out, size_t cap);
/* 1 if rf_leaf_quota_roll(q, now, 0, ...) has a count to write. */
int rf_leaf_quota_due(const struct rf_leaf_quota *q, int64_t now);
/* 1: record this refusal of who (may be NULL) as a leaf; 0: counted. */
int rf_leaf_quota_take(struct rf_leaf_quota *q, const char *who);
/* Count a refusal of who without a leaf: one whose leaf was lost. */
void rf_leaf_quota_count(struct rf_leaf_quota *q, const char *who);

#define RF_HASH_LEN 32

/* RFC 9162 hashing; pure functions, no state. */
void rf_merkle_leaf_hash(
    const uint8_t *data, size_t len, uint8_t out[RF_HASH_LEN]);
void rf_merkle_node_hash(const uint8_t left[RF_HASH_LEN],
    const uint8_t right[RF_HASH_LEN], uint8_t out[RF_HASH_LEN]);
/* Root of n leaf hashes (n may be 0: SHA-256 of the empty string). */
int rf_merkle_root(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n,
    uint8_t out[RF_HASH_LEN]) RF_WUR;
/* 0 if the proof verifies, RF_ERR_PROOF otherwise. */
int rf_merkle_verify_inclusion(uint64_t index, uint64_t size,
    const uint8_t leaf[RF_HASH_LEN], const uint8_t (*proof)[RF_HASH_LEN],
    size_t plen, const uint8_t root[RF_HASH_LEN]) RF_WUR;
int rf_merkle_verify_consistency(uint64_t size1, uint64_t size2,
    const uint8_t root1[RF_HASH_LEN], const uint8_t root2[RF_HASH_LEN],
    const uint8_t (*proof)[RF_HASH_LEN], size_t plen) RF_WUR;

/* Further API (tree heads, proofs, verify, export, search) below. */

/* The format version written in every leaf ("v"). */
#define RF_AUDIT_FORMAT 1
/* Largest leaf data accepted (encoding and decoding). */
#define RF_AUDIT_LEAF_MAX 65536

/*
 * The canonical leaf data of one event (docs/audit-format.md): JSON with
 * sorted keys, no whitespace, ASCII only. *out is malloc'd; caller frees.
 * RF_ERR_ARG if a field is not UTF-8 or the event has no type.
 */
int rf_audit_encode(const struct rf_audit_event *ev, int64_t now, uint8_t **out,
    size_t *len) RF_WUR;
/*
 * Check that leaf data is canonical (it re-encodes to the same bytes) and
 * of a known version, and that the record's search columns (type, time,
 * key_id, tenant) match it. RF_ERR_MALFORMED otherwise.
 */
int rf_audit_leaf_check(const struct rf_leaf_rec *l) RF_WUR;

/*
 * Proof generation over an array of n leaf hashes (the tree of size n).
 * *proof is malloc'd (NULL when *plen is 0); caller frees.
 * RFC 9162 2.1.3.1 PATH(m, D[n]): index < n.
 * RFC 9162 2.1.4.1 PROOF(m, D[n]): 0 < size1 <= n (empty when size1 == n).
 */
int rf_merkle_inclusion_proof(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n,
    uint64_t index, uint8_t (**proof)[RF_HASH_LEN], size_t *plen) RF_WUR;
int rf_merkle_consistency_proof(const uint8_t (*leaves)[RF_HASH_LEN],
    uint64_t n, uint64_t size1, uint8_t (**proof)[RF_HASH_LEN],
    size_t *plen) RF_WUR;

/*
 * Roots and proofs from the hashes of complete subtrees (tree.c): fn puts
 * in out the hash of the 2^level leaves starting at index << level, or
 * returns an error. O(log n) calls per root or proof; the results equal
 * those of the functions above over all n leaves.
 */
typedef int (*rf_merkle_subtree_fn)(
    void *arg, unsigned level, uint64_t index, uint8_t out[RF_HASH_LEN]);
/* MTH(D[lo:hi]), lo < hi. */
int rf_merkle_range_root(rf_merkle_subtree_fn fn, void *arg, uint64_t lo,
    uint64_t hi, uint8_t out[RF_HASH_LEN]) RF_WUR;
/* MTH(D[0:n]), n may be 0. */
int rf_merkle_tree_root(rf_merkle_subtree_fn fn, void *arg, uint64_t n,
    uint8_t out[RF_HASH_LEN]) RF_WUR;
int rf_merkle_inclusion_proof_by(rf_merkle_subtree_fn fn, void *arg, uint64_t n,
    uint64_t index, uint8_t (**proof)[RF_HASH_LEN], size_t *plen) RF_WUR;
int rf_merkle_consistency_proof_by(rf_merkle_subtree_fn fn, void *arg,
    uint64_t n, uint64_t size1, uint8_t (**proof)[RF_HASH_LEN],
    size_t *plen) RF_WUR;

/*
 * Incremental root: add leaf hashes in order, read the root of the tree of
 * the leaves added so far at any point. O(log n) space.
 */
struct rf_merkle_acc {
	uint64_t n;
	unsigned top;
	uint8_t stack[64][RF_HASH_LEN];
};
void rf_merkle_acc_init(struct rf_merkle_acc *acc);
void rf_merkle_acc_add(
    struct rf_merkle_acc *acc, const uint8_t leaf[RF_HASH_LEN]);
void rf_merkle_acc_root(
    const struct rf_merkle_acc *acc, uint8_t out[RF_HASH_LEN]);

/*
 * The store handle is not thread-safe: every function here that reaches it
 * holds the audit handle's (recursive) lock. Code that uses the same store
 * handle from several threads must hold it too.
 */
void rf_audit_lock(struct rf_audit *audit);
void rf_audit_unlock(struct rf_audit *audit);
/* The store the record lives in (borrowed). */
struct rf_store *rf_audit_store(struct rf_audit *audit);
/* Current size and root (cached, extended with new leaves). */
int rf_audit_head(
    struct rf_audit *audit, uint64_t *size, uint8_t root[RF_HASH_LEN]) RF_WUR;
/* Number of leaves in the record. */
int rf_audit_size(struct rf_audit *audit, uint64_t *n) RF_WUR;
/*
 * Leaf hashes [0, size) recomputed from the stored leaf data; *out is
 * malloc'd. RF_ERR_AUDIT_TAMPERED if stored data and hash disagree or the
 * indexes are not dense; RF_ERR_ARG if size exceeds the record.
 */
int rf_audit_leaf_hashes(
    struct rf_audit *audit, uint64_t size, uint8_t (**out)[RF_HASH_LEN]) RF_WUR;
/* Root of the record at size (size <= number of leaves). */
int rf_audit_root(
    struct rf_audit *audit, uint64_t size, uint8_t root[RF_HASH_LEN]) RF_WUR;
/*
 * Proofs from the record. size 0 means the current size. leaf / root /
 * root1 / root2 receive what the proof is checked against.
 */
int rf_audit_prove_inclusion(struct rf_audit *audit, uint64_t index,
    uint64_t size, uint8_t leaf[RF_HASH_LEN], uint8_t root[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen) RF_WUR;
int rf_audit_prove_consistency(struct rf_audit *audit, uint64_t size1,
    uint64_t size2, uint8_t root1[RF_HASH_LEN], uint8_t root2[RF_HASH_LEN],
    uint8_t (**proof)[RF_HASH_LEN], size_t *plen) RF_WUR;

/* A signed tree head. */
#define RF_STH_SIG_MAX 512
struct rf_audit_sth_head {
	uint64_t size;
	int64_t time;
	uint8_t root[RF_HASH_LEN];
	char key_id[65];
	uint8_t sig[RF_STH_SIG_MAX];
	size_t siglen;
};
/*
 * The bytes an STH signature covers (docs/audit-format.md):
 *   "ringfence-sth-v1" 0x00 || uint64 size || int64 time || root[32]
 * integers big-endian; RF_STH_TBS_LEN bytes into out.
 */
#define RF_STH_TBS_LEN (17 + 8 + 8 + RF_HASH_LEN)
void rf_audit_sth_tbs(uint64_t size, int64_t time,
    const uint8_t root[RF_HASH_LEN], uint8_t out[RF_STH_TBS_LEN]);
/* Its fields back; RF_ERR_MALFORMED if tbs is not RF_STH_TBS_LEN bytes
 * that start with the context. */
int rf_audit_sth_tbs_parse(const uint8_t *tbs, size_t len, uint64_t *size,
    int64_t *time, uint8_t root[RF_HASH_LEN]) RF_WUR;
/*
 * Sign a tree head of the current record with the active "audit" key and
 * store it (and the key's SubjectPublicKeyInfo, in meta "audit.spki.<id>",
 * for offline verification). The signature appends its own leaf after the
 * size signed. out may be NULL.
 */
int rf_audit_sth(struct rf_audit *audit, struct rf_keys *keys,
    const struct rf_actor *who, struct rf_audit_sth_head *out) RF_WUR;
/*
 * Tree heads take the audit key from get (a copy the caller frees with
 * rf_key_free) instead of loading it from the token each time: keyd's
 * kept keys, since a search of a token of thousands of keys costs a
 * SoftHSM file store a quarter of a second. get is called by whichever
 * thread signs the tree head; NULL loads again.
 */
void rf_audit_key_source(struct rf_audit *audit,
    int (*get)(void *arg, const char *id, struct rf_key **out), void *arg);
/*
 * Sign a tree head if leaves other than the last STH's own signature leaf
 * were added since the last one and either interval_s seconds passed or
 * `leaves` leaves were added (0 disables that trigger). *made (may be NULL)
 * is 1 when one was signed.
 */
int rf_audit_maybe_sth(struct rf_audit *audit, struct rf_keys *keys,
    int64_t interval_s, uint64_t leaves, int *made) RF_WUR;
/*
 * Check an STH signature with a DER SubjectPublicKeyInfo whose SHA-256 must
 * be h->key_id: 0, RF_ERR_SIGNATURE_INVALID, or RF_ERR_MALFORMED.
 */
int rf_audit_sth_verify(const struct rf_audit_sth_head *h, const uint8_t *spki,
    size_t spkilen) RF_WUR;
/* The key id of a public key: hex SHA-256 of its DER SPKI. */
int rf_audit_key_id_of(const uint8_t *spki, size_t spkilen, char id[65]) RF_WUR;
/* The latest STH (largest size, then latest time); RF_ERR_NOT_FOUND. */
int rf_audit_sth_latest(
    struct rf_audit *audit, struct rf_audit_sth_head *out) RF_WUR;

/* Outcome of rf_audit_verify. */
struct rf_audit_report {
	uint64_t leaves;    /* leaves checked */
	uint64_t sths;	    /* tree heads checked */
	uint64_t index;	    /* leaf named by the problem, or UINT64_MAX */
	char problem[256];  /* "" when the record verified */
	int checkpoint_new; /* 1: the checkpoint file was written */
};
/*
 * Verify the whole record offline: every leaf hash recomputed from its data
 * and canonical, indexes dense, the root at every STH size, every STH
 * signature (with the SPKI kept in meta, which must hash to the key id of a
 * key with purpose "audit"), STH sizes never shrinking, and, when
 * checkpoint_path is given, that the record extends the checkpoint (written
 * when the file does not exist). 0 when it verified; RF_ERR_AUDIT_TAMPERED
 * with rep->problem and rep->index set otherwise; other errors for I/O.
 */
int rf_audit_verify(struct rf_audit *audit, const char *checkpoint_path,
    struct rf_audit_report *rep) RF_WUR;
/*
 * rf_audit_verify, and every tree head must be signed by audit_key_id
 * (64 hex: SHA-256 of the key's SubjectPublicKeyInfo), the id printed by
 * `ringfence init` and kept off this host. Without it (NULL), the key id a
 * checkpoint file pins, if any; else the store's keys table is trusted.
 */
int rf_audit_verify_key(struct rf_audit *audit, const char *checkpoint_path,
    const char *audit_key_id, struct rf_audit_report *rep) RF_WUR;
/* The audit key's SPKI (DER, hex) kept in the store for key_id. */
int rf_audit_key_spki_hex(
    struct rf_audit *audit, const char *key_id, char *hex, size_t max) RF_WUR;
/* Verify, then write (replace) the checkpoint file for the current tree. */
int rf_audit_checkpoint(struct rf_audit *audit, const char *path,
    struct rf_audit_report *rep) RF_WUR;
/*
 * Checkpoint file: "ringfence-audit-checkpoint v1\nsize N\nroot HEX\n",
 * optionally followed by "key KEYID\n" (the pinned audit key; key_id ""
 * when absent).
 */
int rf_audit_checkpoint_parse(const uint8_t *buf, size_t len, uint64_t *size,
    uint8_t root[RF_HASH_LEN]) RF_WUR;
int rf_audit_checkpoint_parse_key(const uint8_t *buf, size_t len,
    uint64_t *size, uint8_t root[RF_HASH_LEN], char key_id[65]) RF_WUR;
/* Write one atomically (temporary file, fsync, rename); key_id may be NULL. */
int rf_audit_checkpoint_write(const char *path, uint64_t size,
    const uint8_t root[RF_HASH_LEN], const char *key_id) RF_WUR;

/*
 * Watching a served record from another machine (watch.c). The state is
 * the checkpoint the watcher keeps: its size and root, and the pinned
 * audit key id ("" to trust the first one served).
 */
struct rf_audit_watch {
	int have; /* a checkpoint exists */
	uint64_t size;
	uint8_t root[RF_HASH_LEN];
	char key_id[65];
	/* Set by a successful step: */
	int64_t time;	    /* the new tree head's time */
	uint64_t prev_size; /* the checkpoint's size before */
	uint64_t grew;	    /* leaves added since the checkpoint */
	char problem[256];  /* what broke, when RF_ERR_AUDIT_TAMPERED */
};
/*
 * GET path (e.g. "/audit/sth") from the server: *body malloc'd, at most
 * 65536 bytes, only for a 200 answer; one-line error otherwise.
 */
typedef int (*rf_audit_fetch_fn)(
    void *arg, const char *path, uint8_t **body, size_t *len);
/*
 * Fetch the served tree head and, when it is larger than the checkpoint, a
 * consistency proof from it; verify both offline (pinned key id, signature,
 * size never going back, RFC 9162 consistency) and advance w to the new
 * head. RF_ERR_AUDIT_TAMPERED with w->problem naming what broke ("key id:
 * ...", "signature: ...", "size went back: ...", "consistency: ..."),
 * RF_ERR_MALFORMED for an answer that is not what a ringfence server
 * sends, or the fetch's error.
 */
int rf_audit_watch_step(
    struct rf_audit_watch *w, rf_audit_fetch_fn fetch, void *arg) RF_WUR;
/* The parsers of the two answers (docs/audit-format.md), for fuzzing. */
int rf_audit_watch_sth_parse(const uint8_t *buf, size_t len,
    struct rf_audit_sth_head *h, uint8_t *spki, size_t spkimax,
    size_t *spkilen) RF_WUR;
int rf_audit_watch_consistency_parse(const uint8_t *buf, size_t len,
    uint64_t *first, uint64_t *second, uint8_t (**proof)[RF_HASH_LEN],
    size_t *plen) RF_WUR;

/* Leaves and STHs as JSON lines (docs/audit-format.md). */
int rf_audit_export(struct rf_audit *audit, FILE *f) RF_WUR;

/* Search; NULL / 0 fields do not filter. fn's non-zero return stops. */
struct rf_audit_query {
	const char *key_id;
	const char *tenant;
	int64_t since, until;
	size_t limit; /* 0: no limit */
};
int rf_audit_search(struct rf_audit *audit, const struct rf_audit_query *q,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg) RF_WUR;

#endif
