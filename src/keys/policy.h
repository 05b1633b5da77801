/*
 * policy.h: what each caller class may have signed (keyd_handlers.c asks
 * before it loads a key). Admin: anything. Server (serve's user): OCSP
 * responses that say what the store says, CRLs that list what the store lists,
 * tree heads with the audit key, TLS handshake digests with serve's TLS key
 * within keyd_tls_rate a second. docs/keys.md, "Caller classes".
 */
#ifndef RF_KEYS_POLICY_H
#define RF_KEYS_POLICY_H

#include "common/config.h"
#include "keys/keys.h"
#include "audit/audit.h"
#include "store/store.h"

struct rf_kpolicy;

/* st and audit (keyd's) are borrowed and must outlive the policy. */
int rf_kpolicy_new(const struct rf_config *cfg, struct rf_store *st,
    struct rf_audit *audit, struct rf_kpolicy **out) RF_WUR;
void rf_kpolicy_free(struct rf_kpolicy *p);
/* The policy's ledger (ledger.h), for keyd's keys handle; borrowed. */
struct rf_ledger *rf_kpolicy_ledger(struct rf_kpolicy *p);

/* 0 if class cls may have key_id sign reqs[0..n) (digests when digest),
 * else RF_ERR_REFUSED with the reason set. */
int rf_kpolicy_sign(struct rf_kpolicy *p, int cls, const char *key_id,
    int digest, const struct rf_sign_req *reqs, size_t n) RF_WUR;

/* Class server's client assertions (what "assertion"): fn decides on each
 * (0: sign; else RF_ERR_REFUSED with the reason). Without fn, none. gen is
 * the store's connector generation (rf_store_connector_gen) read before
 * anything else of the request, -1 when it could not be read: facts kept
 * while it holds are the store's. ledger is keyd's own (ledger.h), which
 * fn checks too: the store alone can be changed by serve's user. */
struct rf_ledger;
typedef int (*rf_kpolicy_assertion_fn)(void *arg, struct rf_store *st,
    struct rf_ledger *ledger, int64_t gen, const char *key_id,
    const struct rf_sign_req *req);
void rf_kpolicy_set_assertion(
    struct rf_kpolicy *p, rf_kpolicy_assertion_fn fn, void *arg);
/* Class server's certificates: only a connector's own renewal (POST
 * /v1/connector/renew): an end-entity clientAuth certificate of the
 * issuing key valid at most connector_days, which fn (same shape) then
 * checks names an active connector. Without fn, none. */
void rf_kpolicy_set_cert(
    struct rf_kpolicy *p, rf_kpolicy_assertion_fn fn, void *arg);
/* 1 if x is an end entity for client authentication only (its extended
 * key usage exactly clientAuth), as a connector's certificate is. */
int rf_kpolicy_client_only(X509 *x);
/* 1 if name is the CA's connector profile subject for tenant (issue.c:
 * O=ringfence, OU=connector, CN=tenant, in that order). */
int rf_kpolicy_connector_subject(const X509_NAME *name, const char *tenant);
/* The key id (rf_keys_pub_id) of the public key a certificate's TBS
 * (a cert request's msg) certifies. */
int rf_kpolicy_cert_key_id(const uint8_t *tbs, size_t len, char id[65]) RF_WUR;

#endif
