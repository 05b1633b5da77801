/*
 * connector.h: connectors use their tenant's credential without holding it
 * (docs/connectors.md). A connector authenticates with a TLS client
 * certificate of ringfence's CA and asks for a JWT client assertion (RFC
 * 7523, as Microsoft Entra ID certificate credentials use it) for a
 * connection it is bound to; ringfence fills every claim from the
 * connection's registration, checks binding, limits and incidents, signs
 * with the connection's key in the token, and raises alerts on anomalies.
 */
#ifndef RF_CONNECTOR_CONNECTOR_H
#define RF_CONNECTOR_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/types.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "store/store_connector.h"

struct rf_store;
struct rf_audit;
struct rf_ca;

/* Connector names: 1-48 characters of [A-Za-z0-9._-]. */
int rf_connector_name_check(const char *name) RF_WUR;
/* The pseudo-tenant a connector's certificates are issued under. */
void rf_connector_tenant(const char *name, char out[128]);

/*
 * A GUID (8-4-4-4-12 hex digits) in its lowercase form into out;
 * RF_ERR_ARG naming `what` otherwise.
 */
int rf_connector_guid(const char *in, const char *what, char out[37]) RF_WUR;

/*
 * The key algorithm a connection requires: for a connection of kind
 * "entra" its registered RSA algorithm (Entra ID accepts only RSA keys of
 * 2048 bits or more); RF_KEY_NONE when the connection has no requirement.
 * Every path that makes a key for a connection asks this first.
 */
int rf_connector_conn_alg(struct rf_store *st, const char *tenant,
    const char *conn, enum rf_key_alg *alg) RF_WUR;
/* 1 if pub is a key Entra ID accepts for a certificate credential: RSA of
 * 2048 bits or more. */
int rf_connector_entra_key(const EVP_PKEY *pub);

/* What rf_connector_entra_register found and did. */
struct rf_entra_change {
	int had;		  /* the connection was registered before */
	struct rf_entra_rec prev; /* that registration, when had */
	struct rf_entra_rec cur;  /* the registration now */
	int changed;   /* 0: the same registration, nothing written */
	char cred[41]; /* the connection's current credential, "" */
};

/*
 * Register (tenant, conn) as kind "entra" with the customer's directory id
 * and the application (client) id, key and JWT algorithms from cfg
 * (entra_key_alg, entra_jwt_alg). Creates the connection if new. Audited
 * ("register" leaf). Refuses (RF_ERR_KEY_DISALLOWED, nothing written) a
 * connection whose current credential's key is not RSA of 2048 bits or
 * more: Entra ID accepts only those. Registering again what is registered
 * writes nothing. *chg says what was there and what changed.
 */
int rf_connector_entra_register(const struct rf_config *cfg,
    struct rf_store *st, struct rf_audit *audit, const char *tenant,
    const char *conn, const char *tenant_id, const char *client_id,
    const struct rf_actor *who, struct rf_entra_change *chg) RF_WUR;

/* ---- JWT client assertions (jwt.c) ---- */

/* Unpadded, canonical base64url (RFC 4648 5); out has len * 3 / 4 + 1
 * bytes. RF_ERR_MALFORMED otherwise. */
int rf_b64url_decode(
    const uint8_t *in, size_t len, uint8_t *out, size_t *olen) RF_WUR;

#define RF_JWT_MAX_LIFETIME 600 /* s; Entra: exp at most 10 min after nbf */

/*
 * The signing input of an assertion (RFC 7515 5.1): BASE64URL(header) '.'
 * BASE64URL(claims), malloc'd and NUL-terminated into *msg. header:
 * {"alg":ALG,"typ":"JWT","x5t#S256":X5T}; claims: {"aud":AUD,"exp":EXP,
 * "iat":NOW,"iss":CLIENT,"jti":JTI,"nbf":NOW,"sub":CLIENT} with
 * AUD = https://login.microsoftonline.com/{tenant-id}/oauth2/v2.0/token.
 */
int rf_jwt_build(const struct rf_entra_rec *reg, const char *x5t256,
    const char *jti, int64_t now, int lifetime, char **msg) RF_WUR;
/*
 * Check that msg is exactly what reg and x5t256 imply at now: both parts
 * canonical base64url of JSON objects with exactly the members above, the
 * same values, a v4 GUID jti (into jti), nbf = iat within 60 s of now and
 * exp - nbf = lifetime. RF_ERR_MALFORMED otherwise.
 */
int rf_jwt_check(const struct rf_entra_rec *reg, const char *x5t256,
    const uint8_t *msg, size_t len, int64_t now, int lifetime,
    char jti[40]) RF_WUR;
/* A random version-4 GUID (RFC 9562 5.4), lowercase. */
int rf_jwt_guid(char out[37]) RF_WUR;
/* The version-4 GUID text rf_jwt_guid makes of 16 random bytes b. */
void rf_jwt_guid_of(const uint8_t rnd[16], char out[37]);
/* The JWS (msg '.' BASE64URL(sig)), malloc'd. */
int rf_jwt_join(
    const char *msg, const uint8_t *sig, size_t siglen, char **jws) RF_WUR;
/* The scheme of a JWT alg name ("PS256", "RS256"); RF_ERR_ARG otherwise. */
int rf_jwt_scheme(const char *alg, enum rf_sig_scheme *scheme) RF_WUR;

/* ---- Proof of possession (proof.c) ---- */

/*
 * A connector's proof: TIME "." NONCE "." base64url(signature), the
 * signature made with its TLS client key over rf_proof_message's bytes
 * (docs/connectors.md). purpose "assert" names the connection
 * ("TENANT/NAME"), "renew" the new key (hex SHA-256 of its SPKI DER).
 */
#define RF_PROOF_MAX 1200	  /* an RSA-4096 key's proof fits */
#define RF_PROOF_SKEW 120	  /* seconds its time may be off keyd's clock */
#define RF_PROOF_SID_LEN 22	  /* a session's id: base64url of 16 bytes */
#define RF_PROOF_B64_32 43	  /* base64url of 32 bytes: X25519 keys, MACs */
#define RF_PROOF_SESSION_TTL 3600 /* s a proof session lasts, at most */
/* How keyd's refusal of a session's proof begins when it no longer knows
 * the session: the connector opens a new one (ringfence assert does). */
#define RF_PROOF_SESSION_UNKNOWN "session_unknown"
struct rf_proof {
	int64_t time;
	char nonce[65];
	uint8_t sig[1024];
	size_t siglen;
	/* A session's proof (TIME "." COUNT "." MAC "." SID): its id, and
	 * its count (NONCE, 16 decimal digits); sid "" for a signed one. */
	char sid[RF_PROOF_SID_LEN + 1];
	uint64_t count;
};
/* Untrusted bytes (fuzzed): RF_ERR_MALFORMED with what to fix. */
int rf_proof_parse(const char *s, size_t len, struct rf_proof *out) RF_WUR;
/* The signed bytes into out; their length, or an error. */
int rf_proof_message(const char *purpose, const char *subject, int64_t t,
    const char *nonce, char *out, size_t outlen);
/* A new proof with key, made at now, into out (RF_PROOF_MAX + 1 bytes). */
int rf_proof_make(EVP_PKEY *key, const char *purpose, const char *subject,
    int64_t now, char *out, size_t outlen) RF_WUR;

/*
 * Proof sessions: what a connector that asks often uses instead of a
 * signature per request. It signs one proof (purpose "session", subject
 * the base64url of an X25519 key it made for the session); keyd answers
 * with a key of its own, a session id and a confirmation. Each side
 * derives the session's MAC key from the X25519 exchange: serve, which
 * relays both public keys, cannot. Each proof of the session is then an
 * HMAC-SHA256 of rf_proof_message's bytes (NONCE: the session's count, 16
 * decimal digits, each count once) for purpose "assert" only; keyd keeps
 * sessions in memory (RF_PROOF_SESSION_TTL at most, gone when it stops).
 */
struct rf_proof_session {
	char sid[RF_PROOF_SID_LEN + 1];
	uint8_t key[32];
	int64_t expires;
	uint64_t count; /* the last count used (rf_proof_make_session) */
};
/* The connector's ask: a new X25519 key (*eph, its public key in pub)
 * and the signed proof for it, made with key at now. */
int rf_proof_session_ask(EVP_PKEY *key, int64_t now, EVP_PKEY **eph,
    char pub[RF_PROOF_B64_32 + 1], char *proof, size_t prooflen) RF_WUR;
/* keyd's answer (untrusted: from serve) to the ask of eph and pub: the
 * session s, once kpub is an X25519 key and confirm holds. */
int rf_proof_session_take(EVP_PKEY *eph, const char *pub, const char *sid,
    const char *kpub, const char *confirm, int64_t expires,
    struct rf_proof_session *s) RF_WUR;
/* The same, of keyd's answer as serve sends it: the JSON body
 * {"session", "key", "confirm", "expires"} (untrusted). */
int rf_proof_session_answer(EVP_PKEY *eph, const char *pub, const char *json,
    struct rf_proof_session *s) RF_WUR;
/* A proof of s for purpose and subject at now (thread-safe: the count is
 * taken atomically), into out (RF_PROOF_MAX + 1 bytes). */
int rf_proof_make_session(struct rf_proof_session *s, const char *purpose,
    const char *subject, int64_t now, char *out, size_t outlen) RF_WUR;

/*
 * keyd's check (thread-safe): proof, len bytes, for purpose and subject,
 * made within RF_PROOF_SKEW of now with the key of connector certificate
 * cert_serial, a certificate of the store that an issuing key of keyd's
 * ledger signed, clientAuth only, valid at now, its CN tenant (NULL: any);
 * never accepted before (each proof once). 0: accepted; 1: refused, why
 * says why in one sentence; an error otherwise.
 */
struct rf_proof_guard;
struct rf_ledger;
int rf_proof_guard_new(struct rf_proof_guard **out) RF_WUR;
void rf_proof_guard_free(struct rf_proof_guard *g);
/*
 * Keep the proofs g accepts in folder dir (keyd's own, custody_dir), in
 * two files, one per generation of the replay cache, and take those kept
 * before (a restart) as the generation before the first check's: a proof
 * is accepted once across restarts too. The files are opened at the first
 * check, by the process that checks. An accepted proof that cannot be
 * written is an error, not an acceptance.
 */
int rf_proof_guard_keep(struct rf_proof_guard *g, const char *dir) RF_WUR;
int rf_proof_check(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *cert_serial, const char *tenant,
    const char *purpose, const char *subject, const uint8_t *proof, size_t len,
    int64_t now, char *why, size_t whylen) RF_WUR;
/*
 * keyd opens a proof session for connector certificate cert_serial: proof
 * is its signed proof (rf_proof_check, purpose "session", subject pub, the
 * connector's X25519 key). A session's proofs are then checked by
 * rf_proof_check too: the session's certificate is cert_serial's, and it
 * must still pass every check a signed proof does. At most
 * RF_PROOF_SESSIONS sessions, RF_PROOF_SESSIONS_CERT per certificate: a
 * new one ends the one closest to its end. 0: opened (out); 1: refused,
 * why says why; an error otherwise.
 */
#define RF_PROOF_SESSIONS 4096
#define RF_PROOF_SESSIONS_CERT 16
struct rf_proof_opened {
	char sid[RF_PROOF_SID_LEN + 1];
	char pub[RF_PROOF_B64_32 + 1];	   /* keyd's X25519 key */
	char confirm[RF_PROOF_B64_32 + 1]; /* an HMAC with the session key */
	int64_t expires;
};
int rf_proof_session_open(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *cert_serial, const char *pub,
    const uint8_t *proof, size_t len, int64_t now, struct rf_proof_opened *out,
    char *why, size_t whylen) RF_WUR;

/* ---- The API's request (api_parse.c) ---- */

#define RF_CONNECTOR_BODY_MAX 8192

/* POST /v1/assertions: {"connection": "TENANT/NAME"[, "x5t#S256": X]} */
struct rf_assert_ask {
	char tenant[128];
	char conn[64];
	char x5t256[48]; /* the credential the connector believes in, or "" */
	char proof[RF_PROOF_MAX + 1]; /* its proof of possession, or "" */
};
/*
 * Strict: a JSON object of at most RF_CONNECTOR_BODY_MAX bytes, no unknown
 * members, "connection" TENANT/NAME with both parts valid names (no '/',
 * "..", or other traversal). RF_ERR_MALFORMED / RF_ERR_TOO_LARGE with a
 * one-line message saying what to fix.
 */
int rf_connector_parse_assert(
    const uint8_t *body, size_t len, struct rf_assert_ask *out) RF_WUR;
/* POST /v1/connector/renew: {"csr": PEM}; *csr malloc'd. */
int rf_connector_parse_renew(const uint8_t *body, size_t len, char **csr,
    size_t *csrlen, char proof[RF_PROOF_MAX + 1]) RF_WUR;
/* POST /v1/connector/session: {"key": X25519 key, "proof": signed proof}
 * (untrusted, fuzzed). */
int rf_connector_parse_session(const uint8_t *body, size_t len,
    char key[RF_PROOF_B64_32 + 1], char proof[RF_PROOF_MAX + 1]) RF_WUR;

/* ---- Limits (limits.c): token buckets in memory ---- */

struct rf_limits;
int rf_limits_new(struct rf_limits **out) RF_WUR;
void rf_limits_free(struct rf_limits *l);
/*
 * Take one token from the bucket `key` (rate per hour, burst capacity) at
 * now_ms. 0 when taken; RF_ERR_STATE when empty, with *retry_after the
 * seconds until a token is back. Thread-safe.
 */
int rf_limits_take(struct rf_limits *l, const char *key, double per_hour,
    double burst, uint64_t now_ms, int *retry_after) RF_WUR;
/* A token taken from key's bucket back, unspent (at most burst). */
void rf_limits_give(struct rf_limits *l, const char *key, double burst);
/*
 * One renewal of connector's own certificate at now (seconds): a bucket of
 * cfg->connector_renewals a day (0: no limit), kept by serve and by keyd
 * alike. As rf_limits_take.
 */
int rf_limits_renewal(struct rf_limits *l, const struct rf_config *cfg,
    const char *connector, int64_t now, int *retry_after) RF_WUR;
/* A renewal taken by rf_limits_renewal back: it signed nothing. */
void rf_limits_renewal_back(
    struct rf_limits *l, const struct rf_config *cfg, const char *connector);

/* ---- The decision (decide.c): what the custody process calls ---- */

enum rf_refusal {
	RF_REFUSE_NONE = 0,
	RF_REFUSE_UNKNOWN,     /* certificate is not a connector's: 401 */
	RF_REFUSE_REVOKED,     /* connector or its certificate revoked: 401 */
	RF_REFUSE_NOT_BOUND,   /* 403 */
	RF_REFUSE_NOT_ENTRA,   /* connection has no registration: 404 */
	RF_REFUSE_NO_CRED,     /* no usable credential: 409 */
	RF_REFUSE_INCIDENT,    /* under an open incident: 423 */
	RF_REFUSE_RATE,	       /* 429 with Retry-After */
	RF_REFUSE_BAD_MESSAGE, /* not what the registration implies: 403 */
	RF_REFUSE_KEY,	       /* not the connection's current key: 403 */
};
/* The stable code ("not_bound", ...) and HTTP status of a refusal. */
const char *rf_refusal_code(enum rf_refusal why);
/* The end of keyd's rate_limited refusals: serve reads it back from the
 * last parenthesis for its Retry-After (service.c, svc_answer_fail). */
#define RF_RETRY_AFTER_FMT "(retry after %d s)"
int rf_refusal_status(enum rf_refusal why);

/* One assertion asked for. */
struct rf_connector_req {
	const char *cert_serial; /* the connector's verified TLS client cert */
	const char *tenant;
	const char *conn;
	const char *key_id; /* the key asked to sign */
	const uint8_t *msg; /* the exact signing input */
	size_t msglen;
	int64_t now;
};

struct rf_connector_verdict {
	enum rf_refusal why; /* RF_REFUSE_NONE: sign */
	char connector[64];
	char jti[40];
	char cred_serial[41]; /* the connection's current credential */
	char key_id[65];      /* and its key */
	char x5t256[48];
	enum rf_sig_scheme scheme;
	int retry_after; /* RF_REFUSE_RATE */
	int64_t incident;
	char detail[200]; /* one sentence for the refusal */
};

/*
 * Decide whether to sign. Checks, in order: the certificate is a
 * connector's, unexpired and unrevoked, and the connector active; the
 * connection is bound to it; it is an entra connection with a current,
 * unrevoked credential whose key is key_id; no open incident has it
 * affected; the message is exactly the header and claims the registration
 * implies (rf_jwt_check); the per-connection and per-connector buckets of
 * limits (NULL: no limits) have a token. A refusal is not an error: 0 with
 * v->why set. Errors are store failures. Writes nothing.
 */
int rf_connector_decide(const struct rf_config *cfg, struct rf_store *st,
    struct rf_limits *limits, const struct rf_connector_req *q,
    struct rf_connector_verdict *v) RF_WUR;

/*
 * Facts of decisions kept between requests (rf_connector_decide_cached).
 * One per store connection; not thread-safe.
 */
struct rf_connector_cache;
int rf_connector_cache_new(struct rf_connector_cache **out) RF_WUR;
void rf_connector_cache_free(struct rf_connector_cache *c);
/*
 * rf_connector_decide, with the facts of requests that passed kept in c
 * while the store's connector generation (rf_store_connector_gen) stays
 * gen (read here when gen < 0; read it before anything the caller decides
 * on): a request asked again reads one counter instead of its facts.
 * Every check is made as rf_connector_decide makes it, the time-bound ones
 * at q->now each time; a request that does not pass on kept facts is
 * decided on the store's. With c NULL, rf_connector_decide. When not
 * refused, *reg (if not NULL) receives the connection's registration.
 */
int rf_connector_decide_cached(struct rf_connector_cache *c, int64_t gen,
    const struct rf_config *cfg, struct rf_store *st, struct rf_limits *limits,
    const struct rf_connector_req *q, struct rf_connector_verdict *v,
    struct rf_entra_rec *reg) RF_WUR;

/*
 * The last step of rf_connector_decide: a token from the connection's and
 * the connector's buckets of limits (NULL: none), for q as v (not refused)
 * decided it. Out of tokens: 0 with v->why RF_REFUSE_RATE and
 * v->retry_after set. keyd takes them only once the connector's proof is
 * checked, so that requests it refuses spend none.
 */
int rf_connector_limits_take(const struct rf_config *cfg,
    struct rf_limits *limits, const struct rf_connector_req *q,
    struct rf_connector_verdict *v) RF_WUR;

/*
 * The tokens rf_connector_limits_take took for a request (tenant/conn, by
 * connector) go back: nothing was signed for it (keyd refused it, or it
 * failed), and a request that signs nothing spends none.
 */
void rf_connector_limits_give(const struct rf_config *cfg,
    struct rf_limits *limits, const char *tenant, const char *conn,
    const char *connector);

/* ---- Detectors and alerts (detect.c, alert.c) ---- */

/* One assertion made or refused, as the detectors see it. */
struct rf_connector_event {
	const char *tenant, *conn, *connector, *cert_serial;
	const char *source;	  /* peer address, no port */
	const char *asked_x5t256; /* the credential the request named, or "" */
	const char *cred_x5t256;  /* the connection's current credential */
	const char *jti;
	int64_t now;
	int refused_incident; /* the request was refused: under incident */
};

#define RF_ALERTS_MAX 8
/*
 * Update the baselines with ev and write the alerts it raises (up to
 * RF_ALERTS_MAX, *n of them) into out. Deterministic; see
 * docs/connectors.md for each detector's one sentence. Call inside the
 * transaction that records the assertion.
 */
int rf_connector_detect(const struct rf_config *cfg, struct rf_store *st,
    const struct rf_connector_event *ev, struct rf_alert_rec *out,
    size_t *n) RF_WUR;
/*
 * The detectors' baselines as a batch of events reads and writes them
 * (seen.c): each row read once, changed in memory, written once by
 * rf_seen_flush in the caller's transaction. Reads answer what the store
 * would answer had every change been written at once. One per store
 * connection; not thread-safe.
 */
struct rf_seen;
int rf_seen_new(struct rf_store *st, struct rf_seen **out) RF_WUR;
void rf_seen_free(struct rf_seen *b);
/* Write every changed row, then hold none. */
int rf_seen_flush(struct rf_seen *b) RF_WUR;
/* Forget every change (its transaction was rolled back). */
void rf_seen_drop(struct rf_seen *b);
/* As rf_store_seen_get, _bump, _max, _set and _count (store_connector.h). */
int rf_seen_get(struct rf_seen *b, const char *kind, const char *key,
    int64_t *count, int64_t *first) RF_WUR;
int rf_seen_bump(struct rf_seen *b, const char *kind, const char *key,
    int64_t add, int64_t now, int64_t *before) RF_WUR;
int rf_seen_max(struct rf_seen *b, const char *kind, const char *key, int64_t v,
    int64_t now) RF_WUR;
int rf_seen_set(struct rf_seen *b, const char *kind, const char *key, int64_t v,
    int64_t now) RF_WUR;
int rf_seen_count(struct rf_seen *b, const char *kind, const char *prefix,
    int64_t since, int64_t *n) RF_WUR;
/* rf_connector_detect on the baselines of b (written at rf_seen_flush). */
int rf_connector_detect_in(const struct rf_config *cfg, struct rf_seen *b,
    const struct rf_connector_event *ev, struct rf_alert_rec *out,
    size_t *n) RF_WUR;

/*
 * Record alerts: each new uid is a row (queued for the webhook) and an
 * "alert" audit leaf, in the caller's transaction.
 */
int rf_connector_alerts_raise(struct rf_store *st, struct rf_audit *audit,
    const struct rf_alert_rec *a, size_t n) RF_WUR;
/*
 * One pass of the webhook queue: POST each due alert as JSON to url
 * (http://HOST:PORT/PATH), marking it delivered on a 2xx answer, else
 * scheduling a retry with exponential backoff (1 s doubling to 5 min).
 * *sent receives how many were delivered.
 */
int rf_connector_webhook_pass(
    struct rf_store *st, const char *url, int64_t now, size_t *sent) RF_WUR;
/* The JSON of an alert, malloc'd. */
char *rf_connector_alert_json(const struct rf_alert_rec *a);

/* ---- The service behind the API (service.c; its recorder in
 * recorder.c, renewals in renew.c) ---- */

struct rf_connector_svc;
/*
 * The handles the API uses from every worker thread (serialised inside):
 * a store connection and audit record of its own on cfg->db_path, keys
 * borrowed (thread-safe), and a webhook thread when cfg->alert_webhook is
 * set.
 */
int rf_connector_svc_new(const struct rf_config *cfg, struct rf_keys *keys,
    struct rf_connector_svc **out) RF_WUR;
void rf_connector_svc_free(struct rf_connector_svc *svc);

/* An API answer: status, JSON body (malloc'd), Retry-After (0: none). */
struct rf_api_answer {
	int status;
	char *body;
	int retry_after;
};
void rf_api_answer_clear(struct rf_api_answer *a);
/* *a: status, with the JSON body {"error": code, "message": msg}. */
void rf_api_answer_error(
    struct rf_api_answer *a, int status, const char *code, const char *msg);
/*
 * POST /v1/assertions from the connector with TLS client certificate
 * cert_serial (NULL: none) at source. Always fills *a.
 */
void rf_connector_svc_assert(struct rf_connector_svc *svc,
    const char *cert_serial, const char *source, const uint8_t *body,
    size_t len, struct rf_api_answer *a);
/*
 * The same in parts, for a caller that waits for keyd's signature itself
 * (serve's epoll workers, rf_keys_call_*). begin decides and builds the
 * message; it fills *a and sets *out NULL when it answers at once (a
 * refusal, bad input), or sets *out. A key not loaded yet is left to
 * finish: rf_connector_assert_request names it NULL. With nowait, begin
 * waits for nothing but the store: 1, with nothing done (*a empty, *out
 * NULL), when it would (a renewal holds the service).
 * rf_connector_assert_request names the signing request; end takes its
 * signature (r: the signing call's result), fills *a and frees p. finish, for a
 * caller that may wait, loads the key if needed, signs and ends.
 */
struct rf_assert_pending;
struct rf_key;
struct rf_sign_req;
struct rf_actor;
struct rf_sig;
int rf_connector_svc_assert_begin(struct rf_connector_svc *svc,
    const char *cert_serial, const char *source, const uint8_t *body,
    size_t len, int nowait, struct rf_api_answer *a,
    struct rf_assert_pending **out);
void rf_connector_assert_request(const struct rf_assert_pending *p,
    const struct rf_key **key, const struct rf_sign_req **sr,
    const struct rf_actor **who);
void rf_connector_svc_assert_end(struct rf_connector_svc *svc,
    struct rf_assert_pending *p, int r, const struct rf_sig *sig,
    struct rf_api_answer *a);
void rf_connector_svc_assert_finish(struct rf_connector_svc *svc,
    struct rf_assert_pending *p, struct rf_api_answer *a);
/* p never signed (the server stopped first). */
void rf_connector_assert_pending_free(struct rf_assert_pending *p);
/* POST /v1/connector/renew: a new certificate for the caller's CSR. */
void rf_connector_svc_renew(struct rf_connector_svc *svc,
    const char *cert_serial, const char *source, const uint8_t *body,
    size_t len, struct rf_api_answer *a);
/* POST /v1/connector/session: a proof session (proof.c) opened by keyd. */
void rf_connector_svc_session(struct rf_connector_svc *svc,
    const char *cert_serial, const char *source, const uint8_t *body,
    size_t len, struct rf_api_answer *a);

/* ---- Reconcile (reconcile.c) ---- */

/*
 * Read an Entra service-principal sign-in export (JSON: an array, or an
 * object with "value": [...]; each sign-in with "createdDateTime",
 * "ipAddress", and the credential as "servicePrincipalCredentialThumbprint"
 * (hex SHA-1 or base64url x5t / x5t#S256) or "servicePrincipalCredentialKeyId")
 * and write to out every sign-in with a ringfence credential that no
 * assertion of ours explains. *unexplained receives their count.
 */
int rf_connector_reconcile(struct rf_store *st, const uint8_t *json, size_t len,
    int as_json, FILE *out, size_t *unexplained) RF_WUR;

#endif
