/*
 * incident_int.h: what the files of the incident module share (not part of
 * its interface): incident.c (open, the timeline, loading), contain.c
 * (the old credentials and keys out of service), reissue.c (their
 * successors), track.c (after containment, close) and package.c.
 */
#ifndef RF_INCIDENT_INCIDENT_INT_H
#define RF_INCIDENT_INCIDENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "incident/incident.h"
#include "store/store_incident.h"

/* A growable list of items; free(v) when done. */
struct item_vec {
	struct rf_item_rec *v;
	size_t n, cap;
};

/*
 * Connections contain leaves alone: each one's current credential is not
 * the one the incident recorded, but one given it elsewhere after the
 * incident opened (serial). Contain replaces only what it revoked; the
 * operator keeps or revokes such a credential, and waives the connection.
 */
struct aside {
	struct rf_item_rec it;
	char serial[41];
};
struct aside_vec {
	struct aside *v;
	size_t n, cap;
};

/* The incident, with an error that says how to find one. */
int rf_incident_load(const struct rf_incident_ctx *c, int64_t id,
    struct rf_incident_rec *inc) RF_WUR;
/* Its items (tenant / state NULL: all), in tenant, name order. */
int rf_incident_load_items(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *state, struct item_vec *iv) RF_WUR;

/* incident.c: a timeline entry (store) and its audit leaf, in the caller's
 * order. */
int rf_incident_event(const struct rf_incident_ctx *c, int64_t id,
    const char *kind, const char *fmt, ...) RF_PRINTF(4, 5) RF_WUR;
/* incident.c: tell keyd's ledger that items of v are affected, or no
 * longer (its comment there says which, and when). */
int rf_incident_note_items(const struct rf_incident_ctx *c, int affected,
    const struct rf_item_rec *v, size_t n, const char *only, const uint8_t *sel,
    uint8_t *changed) RF_WUR;

/* contain.c: the revocation of an incident's credentials, begun and not
 * yet published. */
struct contain_rev;
/* contain.c: add the time since *t to the report's phase name; restart *t. */
void rf_incident_phase_time(
    struct rf_contain_report *rep, const char *name, double *t);
/* contain.c: a connection's previous credential when the scope takes it
 * too: *serial ("" none) and *key (may be NULL). */
int rf_incident_previous_in_scope(const struct rf_incident_ctx *c,
    const char *scope, const struct rf_item_rec *it, char serial[41],
    char key[65]) RF_WUR;
/* contain.c: steps 2 and 3 finished, once: the revocation published, then
 * the old keys disabled. */
int rf_incident_contain_publish_disable(const struct rf_incident_ctx *c,
    int64_t id, struct contain_rev *rv, struct rf_contain_report *rep) RF_WUR;
/* contain.c: destroy the old keys in the token (contain's step 5, close). */
int rf_incident_retire_keys(const struct rf_incident_ctx *c, int64_t id,
    const struct rf_incident_rec *inc, const struct item_vec *iv,
    size_t *destroyed) RF_WUR;

/* reissue.c: destroy the keys taken from the pool or generated for the
 * incident that no connection got (close); *n receives how many. */
int rf_incident_unused_keys_destroy(
    const struct rf_incident_ctx *c, int64_t id, size_t *n) RF_WUR;
/* reissue.c: the items of iv whose connection has a credential from
 * elsewhere, moved from iv to av. */
int rf_incident_set_aside(const struct rf_incident_ctx *c, int64_t id,
    struct item_vec *iv, struct aside_vec *av) RF_WUR;
/* reissue.c: step 4, new keys and certificates for the items of iv; one
 * whose connection gets a credential elsewhere meanwhile is added to av,
 * and the others are issued without it. */
int rf_incident_contain_issue(const struct rf_incident_ctx *c, int64_t id,
    const struct item_vec *iv, struct contain_rev *rv,
    struct rf_contain_report *rep, struct aside_vec *av) RF_WUR;

#endif
