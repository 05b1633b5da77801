/*
 * revoke.h: revocation and CRLs (RFC 5280 sections 5 and 5.3.1).
 *
 * A revocation changes certificate records in one store transaction
 * together with their "revoke" audit leaves, then, before returning,
 * re-signs the OCSP responses of the affected serials and regenerates the
 * CRL of each affected issuer: once rf_revoke() returns 0 the revocation
 * is visible to OCSP and CRL clients.
 *
 * CRLs are v2, one current CRL per CA name ("issuing" for tenant
 * certificates, "root" for the issuing CA), signed through keys with the
 * CA's key. See docs/revocation.md.
 */
#ifndef RF_REVOKE_REVOKE_H
#define RF_REVOKE_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_store;
struct rf_keys;
struct rf_ca;
struct rf_audit;

/* RFC 5280 5.3.1 CRLReason; RF_CRL_REASON_NONE: no reason recorded. */
enum rf_crl_reason {
	RF_CRL_REASON_NONE = -1,
	RF_CRL_REASON_UNSPECIFIED = 0,
	RF_CRL_REASON_KEY_COMPROMISE = 1,
	RF_CRL_REASON_CA_COMPROMISE = 2,
	RF_CRL_REASON_AFFILIATION_CHANGED = 3,
	RF_CRL_REASON_SUPERSEDED = 4,
	RF_CRL_REASON_CESSATION_OF_OPERATION = 5,
	RF_CRL_REASON_CERTIFICATE_HOLD = 6,
	/* 7 is not used */
	RF_CRL_REASON_REMOVE_FROM_CRL = 8,
	RF_CRL_REASON_PRIVILEGE_WITHDRAWN = 9,
	RF_CRL_REASON_AA_COMPROMISE = 10,
};

/*
 * Parse an RFC 5280 5.3.1 reason name ("keyCompromise", case-insensitive)
 * or its decimal value. 7 and unknown names are RF_ERR_ARG.
 */
int rf_crl_reason_parse(const char *name, int *reason) RF_WUR;
/* The RFC name of a reason; "none" for -1, NULL for an invalid value. */
const char *rf_crl_reason_name(int reason);

/* What to revoke: exactly one of serial, tenant, key_id. */
struct rf_progress;

struct rf_revoke_req {
	const char *serial; /* hex; case, leading zeros and ':' ignored */
	const char *tenant; /* every certificate of the tenant */
	const char *key_id; /* every certificate with this SPKI SHA-256 */
	int reason;	    /* enum rf_crl_reason; removeFromCRL refused */
	/* Optional: phases and counts while it runs (common/progress.h). */
	struct rf_progress *progress;
};

/*
 * Revoke. With keyCompromise, every certificate (in any tenant) whose
 * public key is that of a selected certificate is revoked too. Each change
 * goes through rf_store_cert_revoke (idempotent: the first date is kept, a
 * reason may only be raised to keyCompromise) in one transaction with one
 * "revoke" audit event per changed certificate. Then the OCSP responses of
 * all selected serials are re-signed and the CRLs of their issuers are
 * regenerated (when changed or due). *revoked receives the number of
 * certificates that changed (0: all were revoked already).
 * RF_ERR_NOT_FOUND: unknown serial, tenant, or a key with no certificate.
 * audit must be open on st (its leaves join the revoking transaction).
 */
int rf_revoke(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const struct rf_revoke_req *req, const struct rf_actor *who,
    size_t *revoked) RF_WUR;

/*
 * rf_revoke for n serials (canonical or as people type them) in one
 * transaction, with the same reason; for incident containment.
 * RF_ERR_NOT_FOUND (nothing changed) if one serial is unknown.
 */
int rf_revoke_serials(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked) RF_WUR;

/*
 * A connection keeps two valid credentials: its current one and the one
 * before it (the relying party's rollover). Before new credentials are
 * issued for connections conns[0..n) of tenant, the previous credential of
 * each that has both, if still valid, is revoked (superseded) and
 * published, in one rf_revoke_serials: otherwise it would stay valid with
 * no connection naming it, and an incident, which replaces what the
 * connections name, would leave it so. *revoked (may be NULL) receives how
 * many were; superseded (NULL, or n of them) each one's serial, or "".
 * Connections that do not exist yet are skipped.
 */
int rf_revoke_superseded(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char *tenant, const char *const *conns, size_t n,
    const struct rf_actor *who, size_t *revoked, char (*superseded)[41]) RF_WUR;
/*
 * Once their successors are committed, the token keys of tenant's
 * superseded credentials serials[0..n) ("" skipped) are destroyed, each
 * that the store records as a connection key of tenant and that no
 * unrevoked, unexpired certificate still certifies (a CSR's key is not
 * the token's: nothing to do), through rf_keys_destroy_many: its intent
 * and its result each on the record. *destroyed receives how many.
 */
int rf_revoke_retire_keys(struct rf_store *st, struct rf_keys *keys,
    const char *tenant, const char (*serials)[41], size_t n,
    const struct rf_actor *who, size_t *destroyed) RF_WUR;
/*
 * The previous credential of connection (tenant, conn) while it has not
 * expired, into serial ("" when there is none, or the connection has no
 * current one besides it), and *live 1 if it is not revoked either.
 */
int rf_revoke_previous_of(struct rf_store *st, const char *tenant,
    const char *conn, char serial[41], int *live) RF_WUR;

/* Seconds spent in each step of a revocation. */
struct rf_revoke_times {
	double commit_s; /* select, revoke and record, one transaction */
	double ocsp_s;	 /* re-sign the OCSP responses */
	double crl_s;	 /* regenerate the CRLs */
};

/* rf_revoke_serials, and *t (may be NULL) receives its steps' times. */
int rf_revoke_serials_timed(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked, struct rf_revoke_times *t) RF_WUR;

/*
 * rf_revoke_serials_timed in two calls, so that the caller works while the
 * OCSP responses are signed: _begin commits the revocation (steps 1 and
 * 2), prepares the responses and starts their signatures on a thread of
 * their own (keys only: the caller keeps the store); rf_revoke_publish
 * waits for them, stores them and regenerates the CRLs (steps 3 and 4),
 * and frees *pub. *pub is NULL after an error and when nothing was
 * selected (then rf_revoke_publish does nothing). Until rf_revoke_publish
 * returns 0 the revocation is committed but not published: running the
 * same revocation again publishes it. rf_revoke_pub_free abandons a
 * publication (waits for its signatures, stores nothing); accepts NULL.
 */
struct rf_revoke_pub;
int rf_revoke_serials_begin(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, struct rf_audit *audit,
    const char **serials, size_t n, int reason, const struct rf_actor *who,
    size_t *revoked, struct rf_revoke_times *t,
    struct rf_revoke_pub **pub) RF_WUR;
int rf_revoke_publish(
    struct rf_revoke_pub *pub, struct rf_revoke_times *t) RF_WUR;
void rf_revoke_pub_free(struct rf_revoke_pub *pub);

/*
 * RFC 5280 section 5: generate, sign (rf_keys_sign, what "crl", ref the
 * CRL number) and store (rf_store_crl_put) a new current CRL for the CA
 * named issuer. thisUpdate is rf_now(), nextUpdate thisUpdate +
 * cfg->crl_validity. It lists every revoked certificate of issuer whose
 * notAfter has not passed. rf_crl_generate_n also returns the CRL number
 * in *number (may be NULL).
 */
int rf_crl_generate(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who) RF_WUR;
int rf_crl_generate_n(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who, uint64_t *number) RF_WUR;

/*
 * *due = 1 if the CRL of issuer must be regenerated: none exists, it is a
 * day old or more, a quarter of its validity is left or less, or a
 * revocation of a certificate of issuer was committed since it was made.
 */
#define RF_CRL_MAX_AGE 86400
int rf_crl_due(const struct rf_config *cfg, struct rf_store *st,
    const char *issuer, int *due) RF_WUR;

/*
 * Record that a certificate of issuer was revoked, so that rf_crl_due says
 * its CRL is due. Call it inside the transaction that revokes (rf_revoke
 * does); code that calls rf_store_cert_revoke itself must call it too.
 */
int rf_crl_mark_revoked(struct rf_store *st, const char *issuer) RF_WUR;

/*
 * Regenerate the CRL of issuer if rf_crl_due says so; *regenerated (may be
 * NULL) is set to 1 if it did. For the serve loop.
 */
int rf_crl_refresh(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca *ca, const char *issuer,
    const struct rf_actor *who, int *regenerated) RF_WUR;

/*
 * Canonical serial (lowercase hex of the INTEGER value, no leading zeros,
 * at most 40 digits) from user input; RF_ERR_ARG if it is not hex.
 */
int rf_revoke_serial_norm(const char *in, char out[41]) RF_WUR;

#endif
