/*
 * token_int.h: inside src/keys only, the files that use the token in this
 * process (keys.c, token.c, session.c, object.c, sign.c, admin.c,
 * keygen.c, retire.c): the handle, a key, and the functions they share.
 * token.c owns the module and tokens; session.c the sessions in them;
 * object.c the objects in a token.
 */
#ifndef RF_KEYS_TOKEN_INT_H
#define RF_KEYS_TOKEN_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"

#define LABEL_LEN 32	/* CK_TOKEN_INFO label, space padded */
#define ID_LEN 32	/* a key's id: SHA-256 of the SPKI */
#define TID_LEN 16	/* a new key's CKA_ID: random, set at generation */
#define TID_MAX 32	/* CKA_ID: TID_LEN, or ID_LEN for keys made before */
#define POOL_MAX 4	/* idle sessions kept open */
#define THREAD_MIN 64	/* batches this large are split over threads */
#define SIGN_THREADS 2	/* threads for a large batch */
#define PIPE_FIRST 32	/* a large batch's first chunk of leaves */
#define PIPE_MAX 256	/* and its largest (sign_pipelined) */
#define SIGN_BLOCK 8	/* items a signing thread takes at a time */
#define RAW_SIG_MAX 512 /* RSA-4096 at most */
#define ATTR_MAX 1024	/* largest public attribute read back */
#define PIN_MAX 256
#define MSG_MAX 256
#define SHARD_MAX 64 /* tokens of one key store: label, label.1, ... */

struct shard {
	char label[LABEL_LEN + 1];
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE idle[POOL_MAX];
	size_t nidle;
};

/*
 * The objects of a key pair this process made or found (the made set in
 * object.c, one per loaded module, shared by every handle of the process):
 * its CKA_ID, the slot of its token and its object handles, valid in
 * module generation gen. A long-lived process (keyd) finds such a key
 * again without a search over the token, each handle checked by one
 * attribute read; its background thread's handle fills the set too.
 */
struct made_obj {
	uint8_t tid[TID_LEN];
	int use; /* -1: a free slot; -2: a key gone (a tombstone); 1: a key */
	CK_SLOT_ID slot;
	CK_OBJECT_HANDLE pub, priv;
	unsigned long gen;
	EVP_PKEY *pk; /* its public key as read from the token, or NULL */
	enum rf_key_alg alg;
};

struct made_set {
	pthread_mutex_t lock;
	struct made_obj *v; /* open addressing, cap a power of two */
	size_t cap, used;   /* used: live entries and tombstones */
};

/* One loaded module, shared by every rf_keys of this process using it
 * (token.c keeps the list; object.c uses its made set). */
struct module {
	struct module *next;
	char path[RF_PATH_MAX];
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	int refs;	   /* open users; finalised when it drops to 0 */
	int initialised;   /* C_Initialize done by us */
	unsigned long gen; /* C_Initialize calls so far */
	/* Tokens whose metadata file was put back before C_Initialize, not
	 * yet in an audit record (rf_keys_open appends them). */
	struct rf_tokmeta_restored restored[RF_TOKMETA_MAX];
	int nrestored;
	struct made_set made; /* key pairs made or found, by CKA_ID */
};

struct rf_keys {
	struct rf_config cfg;	/* copy; wiped on free (holds the PIN) */
	struct rf_audit *audit; /* borrowed */
	struct module *mod;
	CK_FUNCTION_LIST_PTR f;
	pthread_mutex_t lock; /* slots, idle sessions, next */
	struct shard sh[SHARD_MAX];
	int nsh;
	unsigned int next; /* token for the next new key */
#ifdef RF_TEST_HOOKS
	int test_drop_at_sign; /* tests: drop sessions after the append */
	/* tests: called after each key a batch made, with how many so far */
	void (*test_after_keygen)(void *arg, size_t made);
	void *test_after_keygen_arg;
#endif
	unsigned long gen;	  /* module generation of slots and sessions */
	struct rf_kc *kc;	  /* custody client: every call goes to keyd */
	struct rf_ledger *ledger; /* keyd: keys it took out of service */
};

struct rf_key {
	char id[65];
	uint8_t idbin[ID_LEN];
	uint8_t tid[TID_MAX]; /* its CKA_ID in the token */
	size_t tidlen;
	enum rf_key_alg alg;
	EVP_PKEY *pub;
	int sh; /* the token holding it */
	/* Checked once (keys_key_checked): CKA_SIGN true on the private key
	 * object h, in module generation hgen. Key objects are made
	 * unmodifiable, so the check holds while the handle does. */
	CK_OBJECT_HANDLE h;
	unsigned long hgen;
	int checked;
};

/*
 * Where a key is in the token: its CKA_ID and the token holding it, from
 * the store's record; for keys made before random CKA_IDs (or never
 * recorded) the CKA_ID is the SPKI hash and any token may hold it.
 */
struct where {
	uint8_t tid[TID_MAX];
	size_t tidlen;
	int sh;			   /* the recorded token, or -1 */
	int recorded;		   /* the store has a row for the key */
	char state[16];		   /* its state there */
	char token[LABEL_LEN + 1]; /* the recorded token's label, or "" */
};

/* DER OIDs of the curves (RFC 5480 section 2.1.1.1), CKA_EC_PARAMS. */
extern const uint8_t keys_oid_p256[10];
extern const uint8_t keys_oid_p384[7];

/* An operation run in a session (keys_with_session): a CK_RV; errors of ours
 * go in its arg. */
typedef CK_RV (*session_op)(
    struct rf_keys *keys, CK_SESSION_HANDLE s, void *arg);

/* The custody attributes of one key (keys_custody(), admin.c). */
struct custody_arg {
	const uint8_t *id; /* CKA_ID */
	size_t idlen;
	int found;
	int v[5]; /* sensitive, extractable, always s., never e., sign */
	CK_OBJECT_HANDLE h; /* the private key object found */
};

/* token.c */
/* The module's lock: every use holds it for reading (token.c says when). */
extern pthread_rwlock_t keys_module_rw;
/* An RF_ERR_TOKEN with the PKCS#11 function and return value named. */
int keys_token_err(const char *fn, CK_RV rv);
/* Take keys_module_rw for reading, for a use of the module by keys. */
int keys_rdlock(struct rf_keys *keys) RF_WUR;
/* The module's generation (under keys_rdlock): handles of an older one
 * are void. */
unsigned long keys_module_gen(const struct rf_keys *keys);
void keys_unlock(void);
/* After a device error in generation seen: initialise m again, once. */
int keys_module_reinit(
    struct module *m, const struct rf_config *cfg, unsigned long seen) RF_WUR;
/* Find the store's tokens (again); the caller holds keys->lock. */
int keys_find_shards(struct rf_keys *keys) RF_WUR;
/*
 * 0 if the module answers for token sh (C_GetTokenInfo), else
 * RF_ERR_TOKEN_NOT_FOUND saying so, to run the same command again, and why
 * (what was not done), in parentheses. SoftHSM, once it found a token's
 * folder gone, fails so for the rest of the process's life, and shows no
 * object of it meanwhile, even with the folder back.
 */
int keys_token_answers(struct rf_keys *keys, int sh, const char *why) RF_WUR;

/* session.c */
/* Return values after which the session is gone and is reopened. */
int keys_session_lost(CK_RV rv);
/* Run op in a session with token sh, once more after recovering a lost
 * session; *rvp receives the final CK_RV. */
int keys_with_session(
    struct rf_keys *keys, int sh, session_op op, void *arg, CK_RV *rvp) RF_WUR;
/* An idle session with token sh from the pool, or a new one. */
int keys_session_get(
    struct rf_keys *keys, int sh, CK_SESSION_HANDLE *out) RF_WUR;
/* Return a session to the pool (or close it if the pool is full). */
void keys_session_put(struct rf_keys *keys, int sh, CK_SESSION_HANDLE s);
/*
 * After rv said the session s is gone (the caller holds keys_module_rw for
 * reading): drop it and every idle session (they died with it); after a
 * device error re-initialise the library, with the read lock let go for
 * that while (taken again before returning, also on error); and find the
 * tokens again (their slots may have changed).
 */
int keys_session_recover(
    struct rf_keys *keys, CK_SESSION_HANDLE s, CK_RV rv) RF_WUR;
/* A fresh logged-in read/write session with the token in slot. */
int keys_session_open(
    struct rf_keys *keys, CK_SLOT_ID slot, CK_SESSION_HANDLE *out) RF_WUR;
/* The pause before try attempt + 1 after a torn token.object. */
void keys_backoff(int attempt);
/* Close every idle session; the caller holds keys->lock. */
void keys_drop_idle(struct rf_keys *keys);

/* object.c */
/* Every object matching t[0..nt) (nt 0: every object), in a new array *hs
 * of *n handles. */
CK_RV keys_find_matching(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_ATTRIBUTE *t, CK_ULONG nt, CK_OBJECT_HANDLE **hs, size_t *n);
/* Every object of class cls, in a new array *hs of *n handles. */
CK_RV keys_find_all(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE **hs, size_t *n);
/* The object of class cls with CKA_ID id; *h is CK_INVALID_HANDLE if none. */
CK_RV keys_find_object(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_CLASS cls, const uint8_t *id, size_t idlen, CK_OBJECT_HANDLE *h);
/* Read one CK_BBOOL attribute; absent reads as false. */
CK_RV keys_get_bool(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, int *v);
/* Read a variable-length attribute into buf (at most cap bytes). */
CK_RV keys_get_bytes(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, uint8_t *buf, size_t cap,
    size_t *len);
/*
 * Rebuild the public key of the public key object h: its algorithm and an
 * EVP_PKEY. *r receives our error when the CK_RV is CKR_OK but the key is
 * not usable. `full`: OpenSSL's full check, for a key just made; a key
 * read again is imported only (rf_keys_rsa_pub_known), and its caller
 * compares its id with the one recorded when it was made.
 */
CK_RV keys_read_public(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, int full, enum rf_key_alg *alg, EVP_PKEY **pub, int *r);
/*
 * keys_read_public (a key read again) of a kept handle h, with
 * keys_object_is's check in the same attribute read (an EC key: one read
 * in all): *is is 1 if h is the public key object with CKA_ID tid; if
 * not, nothing was read.
 */
CK_RV keys_read_public_of(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, const uint8_t *tid, size_t tidlen, int *is,
    enum rf_key_alg *alg, EVP_PKEY **pub, int *r);
/*
 * Key pairs made or found by this process (a CKA_ID of TID_LEN bytes):
 * remember their object handles in token sh for module generation gen
 * (best effort: a full set forgets nothing it has and takes no more); find
 * them again (1, or 0 when not known for sh's slot and gen); forget them
 * once destroyed. The set is the module's: every handle of the process
 * sees what another one put.
 *
 * The pair's public key pk (of alg), when the caller has it from a read of
 * the token, is kept too (a reference): key objects are unmodifiable, so
 * it stays what the token holds until the pair is destroyed, and a key
 * taken again (a pool key, by contain) is then read from memory. *pk, when
 * pk is not NULL, receives a reference to it or NULL.
 */
void keys_made_put(struct rf_keys *keys, int sh, const uint8_t *tid,
    CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv, unsigned long gen,
    EVP_PKEY *pk, enum rf_key_alg alg);
int keys_made_get(struct rf_keys *keys, int sh, const uint8_t *tid,
    size_t tidlen, unsigned long gen, CK_OBJECT_HANDLE *pub,
    CK_OBJECT_HANDLE *priv, EVP_PKEY **pk, enum rf_key_alg *alg);
void keys_made_drop(struct rf_keys *keys, const uint8_t *tid, size_t tidlen);
/* Forget every entry of m (a new module generation); the memory stays. */
void keys_made_clear(struct made_set *m);
/* 1 if object h of session s has class cls and CKA_ID tid (one read). */
int keys_object_is(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls, const uint8_t *tid, size_t tidlen);

/* keys.c */
/*
 * Append events under the keys' audit lock, durably: RF_ERR_AUDIT on
 * failure. Inside a transaction of the record's store connection the
 * leaves would be durable only at the caller's commit, after the token
 * acted: a caller's bug, refused (RF_ERR_INTERNAL) rather than trusted.
 */
int keys_audit_append(struct rf_keys *keys, const struct rf_audit_event *evs,
    size_t n, const char *doing) RF_WUR;
/*
 * Where key id is: its CKA_ID and token as the store records them (an
 * indexed lookup, so that finding a key never needs a pass over every
 * object); for a key made before random CKA_IDs, or not recorded, the
 * SPKI hash.
 */
int keys_key_where(
    struct rf_keys *keys, const char *id, struct where *w) RF_WUR;
/* The store of the audit record, used under the audit lock. */
struct rf_store *keys_store(struct rf_keys *keys);
void keys_store_lock(struct rf_keys *keys);
void keys_store_unlock(struct rf_keys *keys);
int keys_in_transaction(struct rf_keys *keys);
/* keys.c: the index of the token labelled label, or -1. */
int keys_shard_index(struct rf_keys *keys, const char *label);
/* The 32 bytes of a key id given as 64 hex digits. */
int keys_parse_id(const char *id, uint8_t out[ID_LEN]) RF_WUR;
/*
 * Run op on token first (the one the store records for the key; -1 for
 * none), then on each other token of the store in turn, until it reports,
 * through *found, that the key it looks for is there; *sh receives that
 * token. Stops at the first CK_RV other than CKR_OK (in *rvp). *found
 * stays 0 when no token holds the key.
 */
int keys_with_key_token(struct rf_keys *keys, session_op op, void *arg,
    const int *found, int first, int *sh, CK_RV *rvp) RF_WUR;
/* RF_ERR_KEY_DISABLED if the store says key signs nothing. */
int keys_key_usable(struct rf_keys *keys, const struct rf_key *key) RF_WUR;

/* admin.c */
/*
 * Custody attributes of key id (CKA_ID tid), in token sh or (sh < 0)
 * wherever it is, token hint first.
 */
int keys_custody(struct rf_keys *keys, const char *id, const uint8_t *tid,
    size_t tidlen, int sh, int hint, struct custody_arg *c) RF_WUR;
/* 0 if pub is key id's (got: its id), else RF_ERR_TOKEN ending in after. */
int keys_pub_is_id(
    const char *id, EVP_PKEY *pub, char got[65], const char *after) RF_WUR;

/* A key's CKA_ID as a sort key: length first, then the bytes. */
struct tident {
	uint8_t len;
	uint8_t b[TID_MAX];
	size_t idx; /* in the caller's ids */
};

/* The order of struct tident (qsort, bsearch). */
int keys_tident_cmp(const void *a, const void *b);

/* retire.c */
/* Destroy key id's checked objects in token sh, no leaf; *found if any. */
int keys_destroy_quiet(struct rf_keys *keys, int sh, const char *id,
    const uint8_t *tid, size_t tidlen, int *found) RF_WUR;

#endif
