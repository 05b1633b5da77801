/*
 * keys.h: key custody. The only module that talks PKCS#11.
 *
 * Every private key is generated inside the token with CKA_SENSITIVE,
 * !CKA_EXTRACTABLE, CKA_PRIVATE and CKA_TOKEN; nothing of it ever leaves.
 * Both objects of a pair are made neither modifiable nor copyable (and
 * !CKA_SIGN_RECOVER): nothing about a key changes after generation.
 * A key is named by its id: the lowercase hex SHA-256 of its public key's
 * SubjectPublicKeyInfo DER. In the token it is found by a random 16-byte
 * CKA_ID, which the store records (keys.token_id, keys.token) before the
 * token makes the key; keys made before (CKA_ID = the 32-byte id) load.
 *
 * Signing is bound to the audit record: rf_keys_sign() first appends one
 * durable audit leaf per signature (rf_audit_append), then signs in the
 * token, then verifies the signature with the public key, and only then
 * releases it. If the append fails nothing is signed.
 *
 * A lost session (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
 * CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, ...) is
 * reopened and the operation retried once.
 */
#ifndef RF_KEYS_KEYS_H
#define RF_KEYS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/config.h"
#include "common/rf.h"

struct rf_keys;	 /* an open token: module, slot, logged-in session(s) */
struct rf_key;	 /* one key pair in the token */
struct rf_audit; /* audit/audit.h */

enum rf_key_alg {
	RF_KEY_NONE = 0,
	RF_KEY_EC_P256,
	RF_KEY_EC_P384,
	RF_KEY_RSA_2048,
	RF_KEY_RSA_3072,
	RF_KEY_RSA_4096,
};
/* Entries of an array indexed by algorithm (RF_KEY_NONE's included). */
#define RF_KEY_ALGS (RF_KEY_RSA_4096 + 1)

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096". */
int rf_key_alg_parse(const char *name, enum rf_key_alg *alg) RF_WUR;
const char *rf_key_alg_name(enum rf_key_alg alg);
/* 1 for an RSA algorithm (of any size), else 0. */
int rf_key_alg_rsa(enum rf_key_alg alg);
/*
 * The algorithm of ours nearest a public key's, for a key made to replace
 * it (a connector's own key from a CSR, which may be RSA of 2048 to 4096
 * bits): RSA keeps its size, rounded up to ours (more than 3072 bits is
 * rsa-4096, more than 2048 rsa-3072, other RSA rsa-2048); EC on secp384r1
 * is ec-p384, any other key ec-p256. rf_key_alg_of_cert reads the key of a
 * certificate (DER): RF_ERR_MALFORMED when it does not parse.
 */
enum rf_key_alg rf_key_alg_of_pub(const EVP_PKEY *pub);
int rf_key_alg_of_cert(
    const uint8_t *der, size_t len, enum rf_key_alg *alg) RF_WUR;

enum rf_sig_scheme {
	RF_SIG_DEFAULT = 0, /* ECDSA with SHA-256 (P-256) / SHA-384 (P-384);
			       RSA PKCS#1 v1.5 with SHA-256 */
	RF_SIG_RSA_PSS,	    /* RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 */
};

/* Who asks, for the audit record. All fields may be NULL. */
struct rf_actor {
	const char *actor;  /* person or connector */
	const char *source; /* "cli", "http 127.0.0.1", ... */
};

/* The size of the longest ref a signature's leaf may carry, its NUL
 * included: keyd refuses a longer one (the request is too large), whose
 * other strings are shorter still (RF_KPROTO_STR_MAX). */
#define RF_KEYS_REF_MAX 1024

/* One signature to make. */
struct rf_sign_req {
	const uint8_t *msg; /* the exact bytes signed (a TBS structure) */
	size_t msglen;
	enum rf_sig_scheme scheme;
	const char *what; /* "cert", "crl", "ocsp", "sth", "assertion" */
	/* serial hex, CRL number, tree size, ...: shorter than
	 * RF_KEYS_REF_MAX (that of an on-demand OCSP response names every
	 * serial it covers, up to 16) */
	const char *ref;
	const char *tenant; /* or NULL */
	/* what "assertion" only: the connection (within tenant) and the
	 * connector's client certificate serial it is signed for; keyd's
	 * policy decides on them (docs/connectors.md). NULL otherwise. */
	const char *conn;
	const char *on_behalf;
	/* what "assertion" and "cert" for a connector: the connector's proof
	 * of possession as it sent it (connector.h, rf_proof_check), or
	 * NULL. */
	const uint8_t *proof;
	size_t prooflen;
};

struct rf_sig {
	uint8_t *sig; /* DER for ECDSA (not raw r||s); caller frees */
	size_t len;
};

/*
 * Token administration (init only): initialise a key store of ntokens
 * tokens in free slots, labelled cfg->token, cfg->token.1, ...,
 * cfg->token.<ntokens-1>, each with the given SO PIN and user PIN. For
 * SoftHSM, cfg->softhsm_conf is written first if missing, with its token
 * folder under cfg->home. RF_ERR_EXISTS if a token with one of the labels
 * exists. rf_keys_open finds every token of the store by these labels.
 */
int rf_keys_init_token(const struct rf_config *cfg, const char *so_pin,
    const char *pin, int ntokens) RF_WUR;

/*
 * Load cfg->module, find the token labelled cfg->token, log in with the PIN
 * (rf_config_pin). audit must not be NULL: it receives a leaf for every
 * key generation, signature, disable and destroy, and failed logins.
 * Errors name the setting to fix (RF_ERR_TOKEN_MODULE, _NOT_FOUND, _PIN).
 */
int rf_keys_open(const struct rf_config *cfg, struct rf_audit *audit,
    struct rf_keys **out) RF_WUR;
void rf_keys_free(struct rf_keys *keys);

/* The longest key label (CKA_LABEL) rf_keys_generate_many accepts. */
#define RF_KEY_LABEL_MAX 64

/*
 * The label of a tenant's key made for name (a connection's, or issue
 * --keygen's profile name), in out: "tenant/name" when that fits in
 * RF_KEY_LABEL_MAX characters; otherwise its first 47 characters, "~" and
 * the first 16 hex digits of the SHA-256 of the whole "tenant/name", 64
 * in all (a tenant name has up to 64 characters and a connection name up
 * to 63). Tenant and connection names have no "~"
 * (rf_ca_tenant_name_check, ca.h), so no shortened label is another
 * pair's own. Every place that makes or
 * matches the label of a tenant's key takes it from here.
 */
int rf_keys_tenant_label(const char *tenant, const char *name,
    char out[RF_KEY_LABEL_MAX + 1]) RF_WUR;

/* One key of rf_keys_generate_many. */
struct rf_keygen {
	enum rf_key_alg alg;
	const char *label;  /* CKA_LABEL, 1 to RF_KEY_LABEL_MAX characters */
	const char *tenant; /* for the audit leaf, or NULL */
	/*
	 * What the key is made for, written on its store record with it:
	 * "incident-7" for a key contain generates, so that a rerun after a
	 * kill finds it (rf_store_key_made_for); NULL or "" for none. At
	 * most RF_KEY_MADE_FOR_MAX (store.h) letters, digits, '.', '_', '-'.
	 */
	const char *made_for;
};

/*
 * Generate n key pairs in the store's tokens, then append their n keygen
 * leaves in one durable commit. All or nothing: if any generation or the
 * append fails, the keys made are destroyed and out[] is all NULL.
 */
int rf_keys_generate_many(struct rf_keys *keys, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, struct rf_key **out) RF_WUR;

/* Generate a key pair in the token; label is CKA_LABEL. Audited. */
int rf_keys_generate(struct rf_keys *keys, enum rf_key_alg alg,
    const char *label, const char *tenant, const struct rf_actor *who,
    struct rf_key **out) RF_WUR;
/* Find a key by id (64 hex). RF_ERR_KEY_NOT_FOUND if absent. */
int rf_keys_load(
    struct rf_keys *keys, const char *id, struct rf_key **out) RF_WUR;
/*
 * rf_keys_load for n ids: out[i] is NULL for an id no token holds; every
 * key found is checked as rf_keys_load checks it. On another error none.
 */
int rf_keys_load_many(struct rf_keys *keys, const char *const *ids, size_t n,
    struct rf_key **out) RF_WUR;
void rf_key_free(struct rf_key *key);
/* A copy of key that lives on its own (rf_key_free it). */
int rf_key_dup(const struct rf_key *key, struct rf_key **out) RF_WUR;

const char *rf_key_id(const struct rf_key *key);
enum rf_key_alg rf_key_alg(const struct rf_key *key);
/* The public key; borrowed, valid while key lives. */
EVP_PKEY *rf_key_public(const struct rf_key *key);
/* The AlgorithmIdentifier for signatures by this key; caller frees. */
int rf_key_sigalg(const struct rf_key *key, enum rf_sig_scheme scheme,
    X509_ALGOR **out) RF_WUR;

/*
 * Sign n messages with one key: n audit leaves are appended in one durable
 * group commit, then each message is signed and verified. On any error no
 * signature is returned (sigs[] are all NULL). sigs has n entries.
 */
int rf_keys_sign(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs) RF_WUR;
/*
 * Signatures asked of the custody process on a connection of the caller's
 * own, which the caller polls instead of waiting (serve's epoll workers);
 * nothing here blocks. open connects and sends the hello; when the fd is
 * readable, greet reads keyd's answer (1: not all of it yet; 0: the call
 * is idle). An idle call takes one rf_keys_sign request of one message
 * (sign); when the fd is readable, sign_read reads the answer: 1 while it
 * is incomplete, 0 with *sig (checked as rf_keys_sign checks it), or an
 * error: keyd's refusal (the call is idle again) or a lost call
 * (rf_keys_call_alive 0: free it). keys must be a custody process client
 * (RF_ERR_ARG otherwise). key and req must stay as they were sent until
 * the answer is read.
 */
struct rf_kcall;
int rf_keys_call_open(struct rf_keys *keys, struct rf_kcall **out) RF_WUR;
int rf_keys_call_fd(const struct rf_kcall *c);
int rf_keys_call_greet(struct rf_kcall *c) RF_WUR;
int rf_keys_call_idle(const struct rf_kcall *c);
int rf_keys_call_alive(const struct rf_kcall *c);
int rf_keys_call_sign(struct rf_kcall *c, const struct rf_key *key,
    const struct rf_sign_req *req, const struct rf_actor *who) RF_WUR;
int rf_keys_call_sign_read(struct rf_kcall *c, const struct rf_key *key,
    const struct rf_sign_req *req, struct rf_sig *sig) RF_WUR;
void rf_keys_call_free(struct rf_kcall *c);

/*
 * rf_keys_sign for callers that hash themselves (libssl hands over only
 * the digest of what a TLS handshake signs): reqs[i].msg is the digest,
 * reqs[i].msglen its size, which must be that of rf_key_alg_md (EC keys
 * only; the scheme is ignored). Audited, signed and verified (against the
 * digest) exactly as rf_keys_sign does: the leaves, whose digest field is
 * this digest, are durable before the token signs.
 */
int rf_keys_sign_digest(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs) RF_WUR;

/*
 * fn(arg) is called once a request's audit leaves are durable, before
 * its signatures are made: from then on keyd needs nothing of the store
 * for it, and a caller may take the store's write lock without holding
 * keyd back (rf_ca_issue_pipelined).
 */
struct rf_recorded {
	void (*fn)(void *arg);
	void *arg;
};

/* One caller's request in a group (rf_keys_sign_group). */
struct rf_sign_set {
	struct rf_key *key;
	const struct rf_sign_req *reqs;
	size_t n;
	int digest; /* reqs[i].msg is a digest (rf_keys_sign_digest) */
	const struct rf_actor *who;
	struct rf_sig *sigs; /* n of them, filled when r is 0 */
	/* Through keyd, NULL or told when the set is recorded: keyd then
	 * records it whole, in one append. Not called when the set fails
	 * first, nor in a process that holds the token itself. */
	const struct rf_recorded *recorded;
	int r;	       /* this set's result */
	char msg[256]; /* and its message when r is not 0: as long as keyd
			  sends one (RF_KPROTO_STR_MAX) */
};
/*
 * Several callers' requests at once (keyd groups what its callers ask
 * while it was busy): each set is checked, signed and verified as
 * rf_keys_sign or rf_keys_sign_digest would, but the leaves of every set
 * go to the record in one durable append before the token signs any of
 * them, and the signing is spread over the signing threads. A set that
 * fails fails alone, in its r and msg. Through keyd (a client handle)
 * each set is its own request, all sent at once on connections of their
 * own, so that keyd records them together.
 */
void rf_keys_sign_group(
    struct rf_keys *keys, struct rf_sign_set *sets, size_t n);
/*
 * The same in two steps, for a caller that overlaps them (keyd: the
 * record of one group while the token signs the one before). record checks
 * and prepares every set and appends all their leaves in one durable
 * append, in the calling thread (the record's store is that thread's);
 * it returns what is left to sign, or NULL when nothing is. sign signs
 * and verifies it on the signing threads from any thread, touches no
 * store, marks the sets that fail and frees the plan. Until then the sets,
 * their requests, keys and signature arrays must stay. Tokens of this
 * process only: a client handle's sets fail.
 */
struct rf_sign_plan;
struct rf_sign_plan *rf_keys_group_record(
    struct rf_keys *keys, struct rf_sign_set *sets, size_t n);
void rf_keys_group_sign(struct rf_sign_plan *plan);
/*
 * rf_keys_group_sign, calling done(arg, set) for each set that the plan
 * signs as soon as its own signatures are made and verified (or it
 * failed: set->r), from the signing thread that finished it: one caller
 * of a group can be answered while the others' signatures are still being
 * made. done runs on several threads at once; sets that failed before the
 * plan (in record) are not passed to it. The plan is signed on crew's
 * kept threads (rf.h: rf_crew_new with rf_keys_sign_threads()), or, with
 * crew NULL, on threads started for it.
 */
void rf_keys_group_sign_each(struct rf_sign_plan *plan, struct rf_crew *crew,
    void (*done)(void *arg, struct rf_sign_set *set), void *arg);
/* The signing threads a plan runs on. */
int rf_keys_sign_threads(void);
void rf_sig_clear(struct rf_sig *sig);

/*
 * An EVP_PKEY for OpenSSL (libssl: SSL_use_PrivateKey) whose private
 * operation is rf_keys_sign_digest with key: each signature it makes is
 * one audited signature in the token, its leaf carrying what, ref and who
 * (copied). It holds no private key material: only the public key and a
 * callback (evp.c). EC keys only. keys is borrowed and must outlive the
 * EVP_PKEY and every SSL holding it; key is copied. Caller frees.
 */
int rf_keys_evp_pkey(struct rf_keys *keys, const struct rf_key *key,
    const char *what, const char *ref, const struct rf_actor *who,
    EVP_PKEY **out) RF_WUR;

/*
 * Where those EVP_PKEYs sign when libssl runs inside an OpenSSL ASYNC job
 * (SSL_MODE_ASYNC): run(fn, fnarg, arg) must have fn(fnarg, 0) called on
 * another thread (fn(fnarg, 1) if it will never run) and return 0, or
 * return nonzero when it cannot take it (the signature then fails: the
 * handshake is refused). Meanwhile the job pauses with an fd in its wait
 * context that turns readable once the signature is made: the thread
 * that runs libssl (a serve worker) never waits on keyd. NULL: signed in
 * place, as outside a job. Set before any such handshake starts.
 */
typedef int (*rf_keys_evp_runner)(
    void (*fn)(void *fnarg, int cancelled), void *fnarg, void *arg);
void rf_keys_evp_set_runner(rf_keys_evp_runner run, void *arg);

/*
 * Stop a key from signing: its store record becomes "disabled", which
 * rf_keys_sign checks before any leaf (the token cannot be changed: keys
 * are not modifiable). A key the token holds but the store does not
 * record is recorded, disabled. "key-disable" leaf. RF_ERR_KEY_NOT_FOUND
 * if neither knows it, or it is destroyed.
 */
int rf_keys_disable(
    struct rf_keys *keys, const char *id, const struct rf_actor *who) RF_WUR;
/*
 * Take a key out of service for good: record "destroying" and a
 * "destroy-intent" leaf, destroy both objects in the token, then record
 * "destroyed" and a "destroy" leaf (whether the token still held it).
 * Run again after a kill, it finishes. RF_ERR_KEY_NOT_FOUND if the token
 * does not hold it and the store has no live record of it.
 */
int rf_keys_destroy(
    struct rf_keys *keys, const char *id, const struct rf_actor *who) RF_WUR;

/*
 * The same for every key of ids[0..n) the store records (disable), or
 * that is not destroyed already (destroy: one pass over each token's
 * objects). One leaf per key and step, in one append each. *done receives
 * how many were disabled, or destroyed in the token.
 */
int rf_keys_disable_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done) RF_WUR;
/*
 * Keep the object handles of the keys of ids[0..n) that the store records
 * in token number `token` (0 .. rf_keys_token_count() - 1), found by one
 * pass over that token, as if this process had made them: taking them
 * later (rf_keys_load_many) or destroying them needs no search. A process
 * that restarts (keyd) loses the handles of the keys it made; this finds
 * them again, one token at a time, in the background. *kept receives how
 * many pairs were found. A custody client (keyd's caller) keeps nothing.
 */
int rf_keys_remember(struct rf_keys *keys, const char *const *ids, size_t n,
    int token, size_t *kept) RF_WUR;
/*
 * keyd, at start: destroy the key objects without a CKA_ID that an
 * interrupted generation left half made in the embedded store's tokens
 * (none elsewhere), after one "sweep" leaf per token that had any.
 * *swept receives how many objects were destroyed.
 */
int rf_keys_sweep_torn(
    struct rf_keys *keys, const struct rf_actor *who, size_t *swept) RF_WUR;
/* The number of tokens the key store spans. */
int rf_keys_token_count(struct rf_keys *keys);
/* The token number the store records for key id (-1: none, or unknown). */
int rf_keys_token_of(struct rf_keys *keys, const char *id);
/*
 * How many times this process has read every object of a token to find
 * keys it was asked to load (rf_keys_load_many found no kept handles):
 * what rf_keys_remember saves.
 */
unsigned long rf_keys_full_reads(void);
/* How many times this process has read a public key object's attributes
 * (rf_keys_load_many of keys it made or found again reads none). */
unsigned long rf_keys_pub_reads(void);
/*
 * rf_keys_destroy_many of keys the caller found as tenant connections'
 * keys in the store: through keyd, a request naming a key its ledger keeps
 * as a CA or TLS key is refused whole (RF_ERR_REFUSED), since the store,
 * which serve's user can write, does not decide what a key is.
 */
int rf_keys_destroy_tenant_many(struct rf_keys *keys, const char *const *ids,
    size_t n, const struct rf_actor *who, size_t *done) RF_WUR;
int rf_keys_destroy_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done) RF_WUR;

/*
 * Benchmark only: the token's raw signing rate with this key over n
 * signatures on `threads` sessions. Signatures are discarded, never
 * released; one audit leaf (type "measure") records them first.
 * *per_sec receives signatures per second.
 */
int rf_keys_measure_rate(struct rf_keys *keys, struct rf_key *key, size_t n,
    int threads, double *per_sec) RF_WUR;
/* The same for an RSA key, in this process only, with the mechanism of
 * scheme over a message of msglen bytes that the token hashes: what one
 * of scheme's real signatures costs the token (a PS256 assertion's). */
int rf_keys_measure_rate_msg(struct rf_keys *keys, struct rf_key *key, size_t n,
    int threads, enum rf_sig_scheme scheme, size_t msglen,
    double *per_sec) RF_WUR;

/*
 * r, or, when the embedded token's folder (SoftHSM's directories.tokendir)
 * is missing, RF_ERR_TOKEN_NOT_FOUND saying so and how to resume: a token
 * taken away under a running process fails calls in many ways.
 */
int rf_keys_token_gone(const struct rf_config *cfg, int r) RF_WUR;

/*
 * 1 when keys' operations go to the custody process (keyd): then they use
 * no store of this process, and a thread may sign while another uses the
 * store; 0 for a token opened in this process (its signatures append to
 * the audit record in the caller's store).
 */
int rf_keys_remote(const struct rf_keys *keys);

/* Key id (64 hex + NUL) of a public key: SHA-256 of its SPKI DER. */
int rf_keys_pub_id(EVP_PKEY *pub, char id[65]) RF_WUR;

/*
 * The SPKI DER of a public key in *der (OPENSSL_malloc'd: OPENSSL_free
 * it), its length in *len: a named P-256 or P-384 key without OpenSSL's
 * encoder search (a tenth of a millisecond a key), others by i2d_PUBKEY.
 */
int rf_keys_spki_der(EVP_PKEY *pub, uint8_t **der, size_t *len) RF_WUR;

/*
 * Custody attributes of a private key, read from the token: 1 or 0 each.
 * RF_ERR_KEY_NOT_FOUND if there is no private key with this id.
 */
int rf_keys_custody(struct rf_keys *keys, const char *id, int *sensitive,
    int *extractable, int *always_sensitive, int *never_extractable) RF_WUR;

/* The label of serve's TLS keys: keyd keeps the id of each key it makes
 * with it in its ledger, and signs handshake digests with no other. */
#define RF_KEY_LABEL_TLS "ringfence tls"
/* CA keys: "ringfence root", "... issuing", "... ocsp", "... audit" (init),
 * and an issuing CA made by rotation: this prefix, then its name. keyd
 * keeps each one's role from its label (ledger.h). */
#define RF_KEY_LABEL_CA_PREFIX "ringfence ca "

/*
 * An administrator's change of what keyd's connector policy trusts, kept
 * in keyd's ledger (ledger.h) before the caller changes the store:
 * RF_KNOTE_BIND binds connector to tenant/conn, RF_KNOTE_REVOKE revokes
 * connector (tenant and conn NULL). Refused (RF_ERR_REFUSED) for any
 * caller but an administrator. In-process (no keyd), a keys handle with a
 * ledger keeps it there, and one without does nothing: no policy reads
 * it there.
 */
enum rf_knote { RF_KNOTE_BIND = 1, RF_KNOTE_REVOKE = 2 };

/*
 * A connector's proof session, opened by keyd (serve relays it: connector.h,
 * rf_proof_session_open) for certificate serial, the connector's X25519
 * key pub and its signed proof. Only through keyd: RF_ERR_STATE without.
 */
struct rf_keys_session {
	char sid[64], pub[64], confirm[64];
	int64_t expires;
};
int rf_keys_proof_session(struct rf_keys *keys, const char *serial,
    const char *pub, const uint8_t *proof, size_t prooflen,
    struct rf_keys_session *out) RF_WUR;
int rf_keys_note(struct rf_keys *keys, enum rf_knote what,
    const char *connector, const char *tenant, const char *conn) RF_WUR;

/*
 * An administrator's incident items, for keyd's ledger the same way:
 * affected (incident open, before it commits) or no longer affected
 * (contain once the old keys are out of service, waive). keyd signs no
 * assertion for a connection its ledger says affected. changed (NULL, or
 * n flags): which notes moved an item's state (the last note wins), so
 * that a caller undoes only its own.
 */
struct rf_knote_item {
	const char *tenant, *conn;
	const char *key; /* the key of the credential the incident replaces */
};
int rf_keys_note_items(struct rf_keys *keys, int affected,
    const struct rf_knote_item *v, size_t n, uint8_t *changed) RF_WUR;
/* 1 if keyd's ledger can name the item (no CLI name is refused). */
int rf_knote_item_ok(const char *tenant, const char *conn, const char *key);

/* One private key found in the token, for listings. */
struct rf_key_info {
	char id[65];	     /* SHA-256 of its public key's SPKI, as hex (a key
				without a readable public key: "") */
	char label[65];	     /* CKA_LABEL */
	enum rf_key_alg alg; /* RF_KEY_NONE if not one of ours */
	int can_sign;	     /* CKA_SIGN */
	int sensitive, extractable, always_sensitive, never_extractable;
	char token_id[65]; /* CKA_ID as hex */
	char token[33];	   /* the label of the token holding it */
	int retired;	   /* keyd took it out of service (its ledger) */
	int ledger;	   /* role below is keyd's ledger's word */
	char role[16];	   /* what keyd made it as: "root", "issuing",
			      "ocsp", "audit", "tls"; "" none */
};
/* Call fn for each private key in the token; fn's non-zero return stops
 * and is returned. */
int rf_keys_list(struct rf_keys *keys,
    int (*fn)(void *arg, const struct rf_key_info *ki), void *arg) RF_WUR;

#ifdef RF_TEST_HOOKS /* test builds only (CMake RF_TEST_HOOKS) */
/* Tests only: close every session of the token underneath keys (as a
 * device reset would), so that the next operation must recover. */
int rf_keys_test_drop_sessions(struct rf_keys *keys) RF_WUR;
/* Tests only: do the same inside the next rf_keys_sign, after its audit
 * append and before its first signature. */
void rf_keys_test_drop_at_sign(struct rf_keys *keys);
/* Tests only: call fn(arg, made) after each key a generation made (before
 * the next is asked of the token), until set again (fn NULL: none). */
void rf_keys_test_after_keygen(
    struct rf_keys *keys, void (*fn)(void *arg, size_t made), void *arg);
/* Tests only: recover as after CKR_DEVICE_ERROR: the module is finalised
 * and initialised again, every other use of it in the process paused. */
int rf_keys_test_device_error(struct rf_keys *keys) RF_WUR;
#endif

/*
 * Helpers without a token (alg.c), exposed for tests and fuzzing.
 * ECDSA: raw r||s (2 * field length) to a DER ECDSA-Sig-Value; *der is
 * malloc'd; caller frees.
 */
int rf_keys_ecdsa_raw_to_der(
    const uint8_t *raw, size_t rawlen, uint8_t **der, size_t *derlen) RF_WUR;
/* The uncompressed point inside CKA_EC_POINT (a DER OCTET STRING, or the
 * bare point some modules return) for alg; *point points into in. */
int rf_keys_ec_point_decode(enum rf_key_alg alg, const uint8_t *in, size_t len,
    const uint8_t **point, size_t *pointlen) RF_WUR;
/*
 * A public key from its parameters, as OpenSSL imports it (an EC point
 * must be on the curve; nothing more is checked): for keys whose owner has
 * just proved possession by a signature, such as a CSR's. RF_ERR_MALFORMED
 * when OpenSSL rejects it; caller frees.
 */
int rf_keys_ec_import(enum rf_key_alg alg, const uint8_t *point, size_t len,
    EVP_PKEY **out) RF_WUR;
int rf_keys_rsa_import(const BIGNUM *n, const BIGNUM *e, EVP_PKEY **out) RF_WUR;
/*
 * Public keys from token attributes: imported as above, then OpenSSL's full
 * public-key check (EVP_PKEY_public_check; 40 us for P-256, 3 ms for
 * RSA-2048, so not for every CSR); caller frees.
 */
int rf_keys_ec_pub(enum rf_key_alg alg, const uint8_t *point, size_t len,
    EVP_PKEY **out) RF_WUR;
int rf_keys_rsa_pub(const uint8_t *n, size_t nlen, const uint8_t *e,
    size_t elen, enum rf_key_alg *alg, EVP_PKEY **out) RF_WUR;
/*
 * The same for a key read again, fully checked when it was made: imported
 * (EC: the point on the curve; RSA: its size, an odd modulus, exponent
 * 65537) without OpenSSL's full check (3 ms for RSA-2048: a pool of
 * 36,000 would cost two minutes to take). Only for a caller that then
 * compares the key's id (the SHA-256 of its SPKI) with the id recorded
 * when it was made, as rf_keys_load and rf_keys_load_many do: the same
 * bytes passed the full check then.
 */
int rf_keys_ec_pub_known(enum rf_key_alg alg, const uint8_t *point, size_t len,
    EVP_PKEY **out) RF_WUR;
int rf_keys_rsa_pub_known(const uint8_t *n, size_t nlen, const uint8_t *e,
    size_t elen, enum rf_key_alg *alg, EVP_PKEY **out) RF_WUR;
/* OpenSSL full public-key checks this process made (tests). */
unsigned long rf_keys_pub_checks(void);
/* Verify a signature as rf_keys_sign makes it: 0, RF_ERR_SIGNATURE_INVALID
 * or RF_ERR_INTERNAL (a library error). */
int rf_keys_verify(EVP_PKEY *pub, enum rf_key_alg alg,
    enum rf_sig_scheme scheme, const uint8_t *msg, size_t msglen,
    const uint8_t *sig, size_t siglen) RF_WUR;
/* Verify an ECDSA signature (DER) over a digest: as rf_keys_verify. */
int rf_keys_verify_digest(EVP_PKEY *pub, const uint8_t *dig, size_t diglen,
    const uint8_t *sig, size_t siglen) RF_WUR;
/*
 * A verifier of a batch's signatures under one key, over the digests
 * rf_key_alg_md() made of their messages (RSA: PKCS#1 v1.5 or RFC 4055 PSS
 * with SHA-256). Checks answer as rf_keys_verify. pub must outlive it.
 */
struct rf_verifier;
int rf_keys_verifier_new(
    EVP_PKEY *pub, enum rf_key_alg alg, struct rf_verifier **out) RF_WUR;
int rf_keys_verifier_check(struct rf_verifier *v, enum rf_sig_scheme scheme,
    const uint8_t *dig, size_t diglen, const uint8_t *sig,
    size_t siglen) RF_WUR;
void rf_keys_verifier_free(struct rf_verifier *v);
/* The digest rf_keys_sign audits and (for ECDSA) signs: SHA-384 for
 * P-384, SHA-256 otherwise. */
const EVP_MD *rf_key_alg_md(enum rf_key_alg alg);
/*
 * SoftHSM's token metadata file (tokens/<uuid>/token.object) parsed as its
 * attribute stream, to verify a copy of it (tokmeta.c): 0 with the token's
 * label and serial (trailing spaces removed) when the stream is whole and
 * holds both; RF_ERR_MALFORMED otherwise (empty, cut short, bad kind).
 */
int rf_keys_tokmeta_parse(
    const uint8_t *buf, size_t len, char label[33], char serial[17]) RF_WUR;

#endif
