/*
 * ocsp.h: OCSP responses (RFC 6960) in the RFC 5019 lightweight profile,
 * pre-signed and served from memory.
 *
 * Two halves:
 *  - the signer (rf_ocsp_signer) builds and signs responses for one issuer
 *    with the delegated OCSP key (through rf_keys_sign, so each signature
 *    is audited) and stores them with rf_store_ocsp_put;
 *  - the responder (rf_ocsp_responder) loads the stored responses into a
 *    hash table and answers requests by copying the pre-signed DER. It never
 *    signs for a single SHA-1 request.
 *
 * What a response holds (RFC 6960 4.2.1, RFC 5019 2.2): OCSPResponse
 * { successful, BasicOCSPResponse }; ResponderID byKey (SHA-1 of the signer's
 * public key BIT STRING); one SingleResponse with a SHA-1 CertID; certStatus
 * good or revoked (revocationTime, revocationReason when known); thisUpdate
 * = producedAt = signing time; nextUpdate = thisUpdate + cfg->ocsp_validity;
 * certs = [the delegated signer certificate]; no nonce, no extensions.
 *
 * Status rules of the responder (docs/ocsp.md):
 *  - not DER, trailing bytes, no CertID, more than RF_OCSP_MAX_IDS CertIDs:
 *    malformedRequest (1), unsigned;
 *  - an issuer it does not serve, or a serial without a pre-signed response
 *    (never issued, or not yet signed): unauthorized (6), unsigned. A serial
 *    never issued is never "good";
 *  - one SHA-1 CertID with a pre-signed response: that response, verbatim;
 *    tryLater (3) if it is past its nextUpdate (the refresh is late);
 *  - several CertIDs, or a CertID hashed with SHA-256/384/512: one response
 *    signed on demand covering them all, when a signer is set and the rate
 *    limit (RF_OCSP_ONDEMAND_RATE per second) allows; tryLater (3) otherwise;
 *  - a nonce in the request is ignored: the pre-signed response (without a
 *    nonce) is served, as RFC 5019 2.1.1 allows.
 */
#ifndef RF_OCSP_OCSP_H
#define RF_OCSP_OCSP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_store;

/* OCSPResponseStatus (RFC 6960 4.2.1). */
enum rf_ocsp_resp_status {
	RF_OCSP_SUCCESSFUL = 0,
	RF_OCSP_MALFORMED_REQUEST = 1,
	RF_OCSP_INTERNAL_ERROR = 2,
	RF_OCSP_TRY_LATER = 3,
	RF_OCSP_SIG_REQUIRED = 5,
	RF_OCSP_UNAUTHORIZED = 6,
};

/* ---- Signer ---- */

/* Signs responses for one issuer with the delegated OCSP key. */
struct rf_ocsp_signer;

/*
 * signer_key, signer_cert and issuer_cert are borrowed and must outlive the
 * signer; st and keys too. issuer_name is the CA name in the store
 * ("issuing"); it is copied. signer_cert must be issued by issuer_cert (a
 * delegated responder, RFC 6960 4.2.2.2) or be issuer_cert itself.
 */
int rf_ocsp_signer_new(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_key *signer_key, X509 *signer_cert,
    X509 *issuer_cert, const char *issuer_name,
    struct rf_ocsp_signer **out) RF_WUR;
void rf_ocsp_signer_free(struct rf_ocsp_signer *s);

/* The status of one certificate to sign a response for. */
struct rf_ocsp_status {
	const char *serial; /* lowercase hex, no leading zeros */
	int revoked;	    /* 0 good, 1 revoked */
	int64_t revoked_at; /* revocationTime when revoked */
	int reason;	    /* RFC 5280 CRLReason, -1 to omit */
};

/*
 * Sign n responses (thisUpdate = rf_now()) in ONE rf_keys_sign batch
 * (what "ocsp", ref the serial) and store them with rf_store_ocsp_put in
 * ONE transaction (begun here: do not call inside rf_store_begin). Nothing
 * is stored when anything fails.
 */
int rf_ocsp_presign(struct rf_ocsp_signer *s, const struct rf_ocsp_status *sts,
    size_t n, const struct rf_actor *who) RF_WUR;

/*
 * Issuance's path: the same responses in steps, so that their signatures
 * join the certificates' in one rf_keys_sign_group and the responses
 * commit in the certificates' transaction. prepare builds the TBS
 * (thisUpdate = rf_now()) and the sign requests (rf_ocsp_presigned_reqs,
 * for rf_ocsp_signer_key; borrowed from p); finish assembles the responses
 * from those requests' signatures; store puts them with rf_store_ocsp_put
 * inside the caller's rf_store_begin (the caller commits the statuses they
 * were signed with). Every _free accepts NULL.
 */
struct rf_ocsp_presigned;
int rf_ocsp_presign_prepare(struct rf_ocsp_signer *s,
    const struct rf_ocsp_status *sts, size_t n,
    struct rf_ocsp_presigned **out) RF_WUR;
const struct rf_sign_req *rf_ocsp_presigned_reqs(
    const struct rf_ocsp_presigned *p, size_t *n);
struct rf_key *rf_ocsp_signer_key(const struct rf_ocsp_signer *s);
int rf_ocsp_presign_finish(
    struct rf_ocsp_presigned *p, const struct rf_sig *sigs) RF_WUR;
int rf_ocsp_presigned_store(const struct rf_ocsp_presigned *p) RF_WUR;
/* rf_ocsp_presigned_store, but a response whose status changed since it
 * was prepared is not stored (the writer of the change publishes its
 * own), as rf_ocsp_presign does. */
int rf_ocsp_presigned_store_current(const struct rf_ocsp_presigned *p) RF_WUR;
void rf_ocsp_presigned_free(struct rf_ocsp_presigned *p);

/*
 * Re-sign, with the status recorded in the store's certificate table, every
 * response of this issuer whose thisUpdate is at least
 * cfg->ocsp_validity / 2 old at `now`, and sign the missing ones: every
 * certificate of this issuer not yet expired at `now` without a stored
 * response. thisUpdate of the new responses is `now`. Works in batches of
 * RF_OCSP_REFRESH_BATCH (one rf_keys_sign call and one store transaction
 * each). *count (may be NULL) receives how many responses were signed.
 */
#define RF_OCSP_REFRESH_BATCH 256
int rf_ocsp_refresh_due(struct rf_ocsp_signer *s, int64_t now,
    const struct rf_actor *who, size_t *count) RF_WUR;

struct rf_ocsp_certid; /* below */

/*
 * Sign one response now, not stored, covering n (1..RF_OCSP_MAX_IDS)
 * CertIDs as the client wrote them (their hash algorithm is kept; their
 * hashes must be this signer's issuer's, else RF_ERR_ARG) with statuses
 * sts[i] (sts[i].serial must equal ids[i].serial). thisUpdate = now. One
 * audited signature (what "ocsp", ref rf_ocsp_ondemand_ref's: every
 * serial). The response goes to out (outmax bytes; RF_ERR_TOO_LARGE if it
 * does not fit).
 */
int rf_ocsp_sign_now(struct rf_ocsp_signer *s, const struct rf_ocsp_certid *ids,
    const struct rf_ocsp_status *sts, size_t n, int64_t now,
    const struct rf_actor *who, uint8_t *out, size_t outmax,
    size_t *outlen) RF_WUR;

/* The issuer name given to rf_ocsp_signer_new; borrowed. */
const char *rf_ocsp_signer_issuer(const struct rf_ocsp_signer *s);

/* ---- Responder ---- */

/* In-memory pre-signed responses, served without signing. */
struct rf_ocsp_responder;

/*
 * st is borrowed and used only by rf_ocsp_responder_reload (from one
 * thread). st may be NULL for a responder that never reloads (fuzzing):
 * it then answers unauthorized or tryLater only.
 */
int rf_ocsp_responder_new(
    struct rf_store *st, struct rf_ocsp_responder **out) RF_WUR;
void rf_ocsp_responder_free(struct rf_ocsp_responder *r);
/*
 * Serve responses stored for issuer `name` (CA name in the store); the
 * issuer certificate (copied: reference taken) identifies it in CertIDs by
 * SHA-1, SHA-256, SHA-384 and SHA-512 name and key hashes. May be called
 * while serving, from the thread that calls rf_ocsp_responder_reload (the
 * next reload then reads every stored row once). RF_ERR_EXISTS on a
 * duplicate name.
 */
int rf_ocsp_responder_add_issuer(
    struct rf_ocsp_responder *r, const char *name, X509 *issuer) RF_WUR;
/*
 * Optional: a signer for requests that cannot use a pre-signed response
 * (several CertIDs, non-SHA-1 CertID). Borrowed; its issuer must have been
 * added. Calls to it are serialised by the responder; do not use the same
 * signer from another thread while the responder runs. NULL unsets.
 */
void rf_ocsp_responder_set_signer(
    struct rf_ocsp_responder *r, struct rf_ocsp_signer *s);
/* One more on-demand signer, for another issuer (a rotation's): borrowed,
 * as set_signer's; its issuer must have been added. Requests whose
 * CertIDs are all of one issuer are signed by that issuer's signer. */
int rf_ocsp_responder_add_signer(
    struct rf_ocsp_responder *r, struct rf_ocsp_signer *s) RF_WUR;
/*
 * Load the responses changed in the store since the last call (all on the
 * first), by the store's OCSP change sequence: one indexed query when
 * nothing changed. Call from ONE thread; concurrent
 * rf_ocsp_respond calls are fine.
 */
int rf_ocsp_responder_reload(struct rf_ocsp_responder *r) RF_WUR;
/* Number of responses held. */
size_t rf_ocsp_responder_count(struct rf_ocsp_responder *r);

#define RF_OCSP_MAX_RESPONSE 8192
#define RF_OCSP_MAX_REQUEST 8192 /* larger requests: malformedRequest */
#define RF_OCSP_MAX_IDS 16	 /* CertIDs in one request */
#define RF_OCSP_ONDEMAND_RATE 50 /* on-demand signatures per second */
/* "on-demand", then each serial after a space or a comma, and a NUL. */
#define RF_OCSP_REF_MAX (10 + RF_OCSP_MAX_IDS * 41)

/*
 * The ref of an on-demand signature's audit leaf, "on-demand s1,s2,...":
 * every serial of ids[0..n) (n at most RF_OCSP_MAX_IDS), in the
 * request's order, so that the record says which certificates the
 * signature covers.
 */
void rf_ocsp_ondemand_ref(
    const struct rf_ocsp_certid *ids, size_t n, char out[RF_OCSP_REF_MAX]);

struct rf_ocsp_answer {
	int http_status;		   /* 200 for every OCSP answer */
	int status;			   /* enum rf_ocsp_resp_status */
	uint8_t der[RF_OCSP_MAX_RESPONSE]; /* the OCSPResponse */
	size_t len;
	/*
	 * For a successful answer: thisUpdate / nextUpdate of the response,
	 * for Last-Modified, Expires and Cache-Control max-age (at most
	 * next_update - now), and an ETag (hex of the first 16 bytes of the
	 * SHA-256 of der, NUL-terminated, no quotes). All 0 / "" for an
	 * unsuccessful status and for a response signed on demand: do not
	 * cache those (Cache-Control: no-store).
	 */
	int64_t this_update, next_update;
	char etag[40];
	/*
	 * RF_OCSP_DEFER only: 1 when the request passed the gate and would
	 * be signed now; nothing was signed and der is empty. Ask again
	 * (without the gate: its budget is taken) where waiting on the
	 * token is fine (serve: its signing pool).
	 */
	int deferred;
	/* internalError only: why the response could not be signed (one
	 * line, for the caller's log); "" otherwise. */
	char why[256];
};

/*
 * Answer one DER OCSPRequest (the POST body or the decoded GET path).
 * Returns 0 whenever ans holds an OCSP answer to send (including the
 * unsigned error statuses); a negative code only for bad arguments.
 * Thread-safe against concurrent rf_ocsp_respond calls and one reloading
 * thread. Never signs for a single SHA-1 request.
 */
int rf_ocsp_respond(struct rf_ocsp_responder *r, const uint8_t *req, size_t len,
    int64_t now, struct rf_ocsp_answer *ans) RF_WUR;
/*
 * As rf_ocsp_respond, with a gate asked (only) before a response would be
 * signed on demand for the request q, every certificate of which is
 * known: 0 refuses, and the answer is then the pre-signed response when q
 * names one certificate, tryLater otherwise. serve's budgets.
 */
struct rf_ocsp_request;
typedef int (*rf_ocsp_gate_fn)(void *arg, const struct rf_ocsp_request *q);
int rf_ocsp_respond_gated(struct rf_ocsp_responder *r, const uint8_t *req,
    size_t len, int64_t now, rf_ocsp_gate_fn gate, void *gate_arg,
    struct rf_ocsp_answer *ans) RF_WUR;
/*
 * As rf_ocsp_respond_gated; with RF_OCSP_DEFER a request that would be
 * signed now (past the gate) is not: ans->deferred is set instead, so
 * that a thread answering from memory never waits on the token.
 */
#define RF_OCSP_DEFER 1
int rf_ocsp_respond_ex(struct rf_ocsp_responder *r, const uint8_t *req,
    size_t len, int64_t now, rf_ocsp_gate_fn gate, void *gate_arg,
    unsigned flags, struct rf_ocsp_answer *ans) RF_WUR;

/*
 * GET form (RFC 6960 A.1, RFC 5019 5): decode the path segment after
 * "/ocsp/" (percent-encoded base64 of the DER request; may hold '/', '+',
 * '=', "//", and %2F etc.) into DER. Standard base64 with or without '='
 * padding; base64url is accepted too. At most RF_OCSP_MAX_REQUEST bytes of
 * path; RF_ERR_TOO_LARGE beyond, RF_ERR_MALFORMED for anything else wrong.
 * *der is malloc'd; caller frees.
 */
int rf_ocsp_get_decode(
    const char *path, size_t pathlen, uint8_t **der, size_t *len) RF_WUR;

/* ---- Pure request decoding (no store, no state; fuzzed) ---- */

enum rf_ocsp_hash {
	RF_OCSP_HASH_OTHER = 0,
	RF_OCSP_HASH_SHA1,
	RF_OCSP_HASH_SHA256,
	RF_OCSP_HASH_SHA384,
	RF_OCSP_HASH_SHA512,
};

struct rf_ocsp_certid {
	enum rf_ocsp_hash hash;
	uint8_t name_hash[64], key_hash[64];
	size_t hash_len; /* both hashes have this length, else malformed */
	char serial[41]; /* lowercase hex, no leading zeros; "" if the
			    serial is negative or longer than 20 bytes (then
			    it cannot be one of ours) */
};

struct rf_ocsp_request {
	size_t n; /* CertIDs, 1..RF_OCSP_MAX_IDS */
	struct rf_ocsp_certid ids[RF_OCSP_MAX_IDS];
	int has_nonce; /* the request carries id-pkix-ocsp-nonce */
};

/*
 * Decode an OCSPRequest (RFC 6960 4.1.1): DER, no trailing bytes, at most
 * RF_OCSP_MAX_REQUEST bytes, 1..RF_OCSP_MAX_IDS CertIDs, name and key hash
 * lengths matching the hash algorithm. RF_ERR_MALFORMED or
 * RF_ERR_TOO_LARGE otherwise.
 */
int rf_ocsp_request_parse(
    const uint8_t *der, size_t len, struct rf_ocsp_request *out) RF_WUR;

/* The unsigned OCSPResponse for an error status: 30 03 0A 01 <status>. */
#define RF_OCSP_ERROR_LEN 5
void rf_ocsp_error_response(
    enum rf_ocsp_resp_status status, uint8_t out[RF_OCSP_ERROR_LEN]);

#endif
