/*
 * ledger.h: keyd's own memory of revocations and of the keys it took out
 * of service (docs/keys.md, "What the policy trusts").
 *
 * keyd decides a server's OCSP and CRL requests against the store, which
 * serve's user can also write. The ledger makes a revocation one-way for
 * keyd: it follows the record's "revoke" leaves (appended in the
 * revocation's own transaction) and keeps every revoked certificate it has
 * seen, with its issuer and notAfter, in a file of the custody folder that
 * only keyd's user can write. Once there, a certificate gets no `good`
 * answer and no CRL of its issuer may leave it out before it expires,
 * whatever the store says later.
 */
#ifndef RF_KEYS_LEDGER_H
#define RF_KEYS_LEDGER_H

#include <stdint.h>

#include "audit/audit.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "store/store.h"

/* An entry's name: a serial, a key id, a connector, or a binding's
 * "CONNECTOR TENANT CONN" (parts below 64, 128 and 64 bytes). */
#define RF_LEDGER_NAME_MAX 320
#define RF_LEDGER_PART_MAX 64

struct rf_ledger;

/* Open (or create, 0600) the ledger file at path and load it. */
int rf_ledger_open(const char *path, struct rf_ledger **out) RF_WUR;
void rf_ledger_free(struct rf_ledger *l);

/*
 * Read the record's leaves appended since the last call and keep each
 * "revoke" leaf's certificate (issuer and notAfter from the store now),
 * durably, before returning. Cheap when nothing was appended.
 */
int rf_ledger_follow(struct rf_ledger *l, struct rf_store *st) RF_WUR;

/* 1 if serial (lowercase hex) has been seen revoked. */
int rf_ledger_has(struct rf_ledger *l, const char *serial);

/*
 * Keep the keys of ids[0..n) with want[i] set (want NULL: all) as taken
 * out of service through keyd (disabled or destroyed), durably, before
 * returning: from then on keyd signs nothing with them, whatever the store
 * says. Called before the store's state changes.
 */
int rf_ledger_retire_keys(struct rf_ledger *l, const char *const *ids,
    const uint8_t *want, size_t n) RF_WUR;

/* 1 if key id (64 lowercase hex) has been taken out of service. */
int rf_ledger_key_retired(struct rf_ledger *l, const char *id);
/* 1 if id is a key id as the ledger keeps them: 64 lowercase hex. */
int rf_ledger_key_id_ok(const char *id);

/* Calls fn for each certificate of issuer seen revoked whose notAfter is
 * at or after at; fn's non-zero return stops and is returned. */
int rf_ledger_foreach(struct rf_ledger *l, const char *issuer, int64_t at,
    int (*fn)(void *arg, const char *serial), void *arg);

/*
 * Bindings and connectors, which an administrator changes through keyd
 * (RF_KMSG_NOTE) before the store: keyd signs an assertion only for a
 * connector the store and the ledger both bind to the connection, and for
 * none the ledger says revoked, whatever the store says later. The
 * store's own bindings and revoked connectors are taken once, by the first
 * rf_ledger_follow that finds them not yet taken.
 */
int rf_ledger_bind(struct rf_ledger *l, const char *connector,
    const char *tenant, const char *conn) RF_WUR;
int rf_ledger_bound(struct rf_ledger *l, const char *connector,
    const char *tenant, const char *conn);
int rf_ledger_revoke_connector(
    struct rf_ledger *l, const char *connector) RF_WUR;
int rf_ledger_connector_revoked(struct rf_ledger *l, const char *connector);

/*
 * serve's TLS keys: keyd signs a handshake digest only with a key it made
 * itself with the label RF_KEY_LABEL_TLS (an administrator's keygen), or
 * the store's TLS key when the ledger first took the store's state, never
 * with a key whose store purpose was changed to "tls" behind its back.
 */
int rf_ledger_tls_key(struct rf_ledger *l, const char *id) RF_WUR;
int rf_ledger_is_tls_key(struct rf_ledger *l, const char *id);

/*
 * CA keys, the same way: keyd keeps the role ("root", "issuing", "ocsp",
 * "audit") of each CA key it makes, and of the store's at first use. For
 * class server a key signs only as what keyd made it (rf_ledger_key_role:
 * one of those, "tls", or NULL for a key that is none of them, such as a
 * tenant's), whatever purpose the store gives it later.
 */
int rf_ledger_ca_key(
    struct rf_ledger *l, const char *id, const char *role) RF_WUR;
const char *rf_ledger_key_role(struct rf_ledger *l, const char *id);
/* s as one of those roles, a constant (it outlives the ledger's lock);
 * NULL if s is none. */
const char *rf_ledger_role(const char *s);
/* 1 if a key with store purpose s is one keyd keeps in its ledger as what
 * it made it (a CA role above, or serve's "tls" key): such a purpose
 * counts only where the ledger agrees. */
int rf_ledger_kept_purpose(const char *s);
/* 1 once the store's CA keys were taken (rf_ledger_follow). */
int rf_ledger_cas_taken(struct rf_ledger *l);

/*
 * Connections under an open incident: an administrator's incident open
 * notes each item affected before it begins, and contain (once the old
 * keys are out of service) and waive note it no longer affected; the last
 * note of an item wins. changed (NULL, or n flags): which notes moved an
 * item's state, so that a caller undoes only its own.
 * keyd signs no assertion for a connection its ledger says affected,
 * whatever the store says.
 */
int rf_ledger_items(struct rf_ledger *l, int affected,
    const struct rf_knote_item *v, size_t n, uint8_t *changed) RF_WUR;
int rf_ledger_affected(
    struct rf_ledger *l, const char *tenant, const char *conn);

/*
 * The largest tree head keyd signed with the audit key key_id (1), so that
 * it signs no later head the record does not prove consistent with it: a
 * record rewritten in the store is not signed again. rf_ledger_sth_keep
 * keeps size and root, durably, when larger than the one kept (or the
 * first for key_id).
 */
int rf_ledger_sth_last(struct rf_ledger *l, const char *key_id, uint64_t *size,
    uint8_t root[RF_HASH_LEN]);
int rf_ledger_sth_keep(struct rf_ledger *l, const char *key_id, uint64_t size,
    const uint8_t root[RF_HASH_LEN]) RF_WUR;

#endif
