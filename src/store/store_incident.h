/*
 * store_incident.h: the store's tables for connections and incidents (part
 * of store.h's interface; kept in its own header while the store module
 * settles). Same conventions as store.h.
 */
#ifndef RF_STORE_STORE_INCIDENT_H
#define RF_STORE_STORE_INCIDENT_H

#include <stdint.h>

#include "common/rf.h"

struct rf_store;
struct rf_cert_rec;

/* A tenant connection: one key and certificate per connector or use. */
struct rf_conn_rec {
	int64_t id;
	char tenant[128];
	char name[64];
	char rp[8];	   /* "ocsp" or "pinned" */
	char serial[41];   /* current credential, "" none */
	char previous[41]; /* previous credential, "" none */
	int64_t created;
};
/*
 * Create the connection (tenant, name) or update it: rp when not NULL, and
 * serial as its current credential (the current one becomes previous).
 * *id (may be NULL) receives its id.
 */
int rf_store_conn_set(struct rf_store *st, const char *tenant, const char *name,
    const char *rp, const char *serial, int64_t now, int64_t *id) RF_WUR;
int rf_store_conn_get(struct rf_store *st, const char *tenant, const char *name,
    struct rf_conn_rec *out) RF_WUR;
/*
 * Create the connection (tenant, name) with rp and no credential, only if
 * it does not exist: RF_ERR_EXISTS, *existing filled and nothing changed,
 * when it does (read and insert are one transaction).
 */
int rf_store_conn_add(struct rf_store *st, const char *tenant, const char *name,
    const char *rp, int64_t now, struct rf_conn_rec *existing) RF_WUR;
/* Selection; NULL fields do not filter. key_id and issuer apply to the
 * connection's current certificate. */
struct rf_conn_filter {
	const char *tenant;
	const char *name;
	const char *key_id;
	const char *issuer;
};
/* Connections with a current credential, with that certificate (no der). */
int rf_store_conn_foreach(struct rf_store *st, const struct rf_conn_filter *f,
    int (*fn)(void *arg, const struct rf_conn_rec *conn,
	const struct rf_cert_rec *cur),
    void *arg) RF_WUR;

struct rf_incident_rec {
	int64_t id;
	char scope[192];
	char reason[256];
	char state[16]; /* open, contained, closed */
	int64_t opened, contained, closed, since;
	char new_issuer[64];
	uint64_t signatures;
};
/* Assigns inc->id. RF_ERR_EXISTS (inc->id set to it) if an incident that
 * is not closed has the same scope. */
int rf_store_incident_add(
    struct rf_store *st, struct rf_incident_rec *inc) RF_WUR;
int rf_store_incident_get(
    struct rf_store *st, int64_t id, struct rf_incident_rec *out) RF_WUR;
/* Writes state, times, new_issuer and signatures. */
int rf_store_incident_update(
    struct rf_store *st, const struct rf_incident_rec *inc) RF_WUR;
int rf_store_incident_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_incident_rec *inc), void *arg) RF_WUR;

/* One affected connection of an incident. */
struct rf_item_rec {
	int64_t incident;
	int64_t conn;
	char tenant[128];
	char name[64];
	char rp[8];
	char old_serial[41];
	char old_key[65];
	char new_serial[41];
	char state[16];
	int64_t updated;
	char evidence[128];
	char prev_serial[41]; /* the connection's previous credential, "" */
	char new_key[65];     /* the key reserved for the new credential */
};
int rf_store_item_add(struct rf_store *st, const struct rf_item_rec *it) RF_WUR;
/* Writes new_serial, state, updated, evidence of (incident, conn). */
int rf_store_item_update(
    struct rf_store *st, const struct rf_item_rec *it) RF_WUR;
/*
 * The same, only if the item's state is still `from` (a compare-and-set
 * through the primary key); RF_ERR_STATE when it is not.
 */
int rf_store_item_move(
    struct rf_store *st, const struct rf_item_rec *it, const char *from) RF_WUR;
/* In tenant, name order; tenant / state NULL do not filter. */
int rf_store_item_foreach(struct rf_store *st, int64_t incident,
    const char *tenant, const char *state,
    int (*fn)(void *arg, const struct rf_item_rec *it), void *arg) RF_WUR;
/*
 * The items of incident still `affected` whose connection's current
 * credential is not their old one (a credential given to the connection
 * elsewhere after the incident opened), in tenant, name order, each with
 * that current credential's serial.
 */
int rf_store_item_elsewhere(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const struct rf_item_rec *it, const char *serial),
    void *arg) RF_WUR;
/* The item of an incident that is not closed whose old (*is_new 0) or new
 * (*is_new 1) serial is serial; RF_ERR_NOT_FOUND. */
int rf_store_item_by_serial(struct rf_store *st, const char *serial,
    struct rf_item_rec *out, int *is_new) RF_WUR;

/*
 * Record key_id as the key of the item's new credential, before the key is
 * used; only while the reserved key is still prev ("" none) and the item
 * is still affected. RF_ERR_EXISTS when another run changed it first.
 */
int rf_store_item_reserve_key(struct rf_store *st, int64_t incident,
    int64_t conn, const char *prev, const char *key_id) RF_WUR;
/* The item's state now (incident, conn); RF_ERR_NOT_FOUND. */
int rf_store_item_state(
    struct rf_store *st, int64_t incident, int64_t conn, char state[16]) RF_WUR;
/*
 * The lowest incident other than `incident`, not closed, in which the
 * connection is still `affected` (not yet contained): a connection belongs
 * to at most one such incident. RF_ERR_NOT_FOUND (unset) when none.
 */
int rf_store_item_other_open(
    struct rf_store *st, int64_t conn, int64_t incident, int64_t *other) RF_WUR;

/*
 * For the connectors: the connection's bound connector used its new
 * credential (serial), which is evidence that the connection is
 * re-established. Moves every `contained` item of an open incident whose
 * new serial it is; *moved receives how many (0: nothing to move).
 */
int rf_store_item_reestablish_by_connector(struct rf_store *st,
    const char *serial, const char *connector, int64_t t, size_t *moved) RF_WUR;

struct rf_event_rec {
	int64_t incident;
	int64_t time;
	char kind[32];
	char detail[512];
};
int rf_store_incident_event_add(struct rf_store *st, int64_t incident,
    int64_t time, const char *kind, const char *detail) RF_WUR;
int rf_store_incident_event_foreach(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const struct rf_event_rec *e), void *arg) RF_WUR;

/*
 * Keys recorded on incident's items (new_key) that are still "reserved"
 * and in no certificate: a run killed after it recorded them, whose
 * connections were waived before a rerun used them. As
 * rf_store_pool_taken_unused: fn gets each key's id, "" and algorithm.
 * (Pool keys taken and unused are "active", keys generated and unrecorded
 * "generated": no key is in two of these lists.)
 */
int rf_store_item_keys_reserved_unused(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const char *id, const char *by, const char *alg),
    void *arg) RF_WUR;

/*
 * OCSP sightings: a query for a serial of an incident, from a source
 * address. One row per (incident, serial, source), counted; at most
 * RF_SIGHTINGS_MAX rows once trimmed, the acknowledged and those before
 * re-establishment dropped first, oldest first.
 */
#define RF_SIGHTINGS_MAX 100000
struct rf_sighting_rec {
	int64_t incident, conn;
	char serial[41];
	int is_new;
	char source[64];
	int64_t first, last, count;
	int after_reestablished; /* an old serial, after re-establishment */
	int acked;
};
/*
 * s->count queries (at least 1) more of (incident, serial, source), the
 * last at s->last. *fresh: 1 when it is new after re-establishment (no
 * row for it, or one from before), which the caller records as a leaf.
 */
int rf_store_sighting_add(
    struct rf_store *st, const struct rf_sighting_rec *s, int *fresh) RF_WUR;
/* Down to RF_SIGHTINGS_MAX rows: once per batch of adds, not per add. */
int rf_store_sighting_trim(struct rf_store *st) RF_WUR;
/* Newest first; at most limit (0: all). */
int rf_store_sighting_foreach(struct rf_store *st, int64_t incident,
    size_t limit, int (*fn)(void *arg, const struct rf_sighting_rec *s),
    void *arg) RF_WUR;
/* Sightings of the incident, and those after re-establishment not acked. */
int rf_store_sighting_counts(struct rf_store *st, int64_t incident,
    size_t *total, size_t *unacked) RF_WUR;
/* Acknowledge every sighting after re-establishment; *n how many. */
int rf_store_sighting_ack(
    struct rf_store *st, int64_t incident, size_t *n) RF_WUR;

/* 1 if this connection changed the store (then serve is told). */
int rf_store_wrote(struct rf_store *st);

/*
 * Progress of a long command, for `incident status` in another terminal:
 * one row per task ("incident 3 contain"), replaced as it advances.
 */
struct rf_progress_rec {
	char task[96];
	char phase[32];
	uint64_t done, total;
	int64_t started_ms, updated_ms;
	int64_t pid;
	int finished;
};
int rf_store_progress_put(
    struct rf_store *st, const struct rf_progress_rec *p) RF_WUR;
/* RF_ERR_NOT_FOUND when the task never reported progress. */
int rf_store_progress_get(
    struct rf_store *st, const char *task, struct rf_progress_rec *out) RF_WUR;

#endif
