/*
 * store_connector.h: the store's tables for connectors (issue 12): connector
 * identities and their TLS certificates, bindings to tenant connections,
 * Entra relying-party registrations, assertions made, detector baselines,
 * alerts with their webhook queue, and re-establishment evidence. Part of
 * store.h's interface; same conventions.
 */
#ifndef RF_STORE_STORE_CONNECTOR_H
#define RF_STORE_STORE_CONNECTOR_H

#include <stdint.h>

#include "common/rf.h"

struct rf_store;

struct rf_connector_rec {
	char name[64];
	char state[16]; /* "active", "revoked" */
	int64_t created;
};
int rf_store_connector_add(struct rf_store *st, const char *name,
    int64_t now) RF_WUR; /* RF_ERR_EXISTS */
int rf_store_connector_get(struct rf_store *st, const char *name,
    struct rf_connector_rec *out) RF_WUR; /* RF_ERR_NOT_FOUND */
int rf_store_connector_set_state(
    struct rf_store *st, const char *name, const char *state) RF_WUR;
int rf_store_connector_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_connector_rec *c), void *arg) RF_WUR;

/* The TLS client certificates of a connector, by serial. */
int rf_store_connector_cert_add(struct rf_store *st, const char *serial,
    const char *name, int64_t now) RF_WUR;
/* The connector a certificate serial belongs to; RF_ERR_NOT_FOUND. */
int rf_store_connector_by_cert(
    struct rf_store *st, const char *serial, char name[64]) RF_WUR;
int rf_store_connector_cert_foreach(struct rf_store *st, const char *name,
    int (*fn)(void *arg, const char *serial), void *arg) RF_WUR;

/* Bindings: connector -> tenant/connection. */
int rf_store_binding_add(struct rf_store *st, const char *connector,
    const char *tenant, const char *conn, int64_t now) RF_WUR;
/* 0 if bound, RF_ERR_NOT_FOUND if not. */
int rf_store_binding_get(struct rf_store *st, const char *connector,
    const char *tenant, const char *conn) RF_WUR;
int rf_store_binding_foreach(struct rf_store *st, const char *connector,
    int (*fn)(void *arg, const char *tenant, const char *conn),
    void *arg) RF_WUR;

/* Relying-party registration of a connection of kind "entra". */
struct rf_entra_rec {
	char tenant[128];
	char conn[64];
	char tenant_id[40]; /* the customer's directory (tenant) id, GUID */
	char client_id[40]; /* the application (client) id, GUID */
	char key_alg[16];   /* "rsa-2048", "rsa-3072", "rsa-4096" */
	char jwt_alg[8];    /* "PS256", "RS256" */
	int64_t created;
};
/* Insert or replace. */
int rf_store_entra_put(
    struct rf_store *st, const struct rf_entra_rec *e) RF_WUR;
int rf_store_entra_get(struct rf_store *st, const char *tenant,
    const char *conn, struct rf_entra_rec *out) RF_WUR; /* RF_ERR_NOT_FOUND */

/* One assertion made. */
struct rf_assertion_rec {
	char jti[40];
	int64_t time, exp;
	char tenant[128];
	char conn[64];
	char connector[64];
	char connector_serial[41];
	char cert_serial[41]; /* the credential named by x5t#S256 */
	char key_id[65];
	char x5t256[48];
	char source[64]; /* peer address */
};
int rf_store_assertion_add(
    struct rf_store *st, const struct rf_assertion_rec *a) RF_WUR;
/*
 * The source and time of each of the last `rows` assertions recorded
 * (newest first) whose time is since or later; repeated as often as it
 * is there.
 */
int rf_store_assertion_sources(struct rf_store *st, int64_t since, size_t rows,
    int (*fn)(void *arg, const char *source, int64_t time), void *arg) RF_WUR;
/* Assertions naming x5t256 with since <= time <= until, in time order. */
int rf_store_assertion_foreach(struct rf_store *st, const char *x5t256,
    int64_t since, int64_t until,
    int (*fn)(void *arg, const struct rf_assertion_rec *a), void *arg) RF_WUR;

/*
 * Detector baselines: counters by (kind, key). rf_store_seen_bump adds
 * `add` to the count (creating it with first = now) and returns the count
 * before (*before, -1 when the key was new).
 */
int rf_store_seen_bump(struct rf_store *st, const char *kind, const char *key,
    int64_t add, int64_t now, int64_t *before) RF_WUR;
/* The count (0 when absent) and time first seen (0 when absent). */
int rf_store_seen_get(struct rf_store *st, const char *kind, const char *key,
    int64_t *count, int64_t *first) RF_WUR;
/* Set the count to max(count, v). */
int rf_store_seen_max(struct rf_store *st, const char *kind, const char *key,
    int64_t v, int64_t now) RF_WUR;
/* Set the count to v and first to now (a window restarts). */
int rf_store_seen_set(struct rf_store *st, const char *kind, const char *key,
    int64_t v, int64_t now) RF_WUR;
/* How many keys of kind start with prefix and were last bumped >= since. */
int rf_store_seen_count(struct rf_store *st, const char *kind,
    const char *prefix, int64_t since, int64_t *n) RF_WUR;
/* One baseline's whole row: RF_ERR_NOT_FOUND when absent. */
struct rf_seen_rec {
	int64_t count, first, last;
};
int rf_store_seen_row(struct rf_store *st, const char *kind, const char *key,
    struct rf_seen_rec *out) RF_WUR;
/* Write one baseline's whole row (as rf_store_seen_row reads it). */
int rf_store_seen_put(struct rf_store *st, const char *kind, const char *key,
    const struct rf_seen_rec *v) RF_WUR;

/* Alerts, each also an audit leaf; the webhook queue is the same rows. */
struct rf_alert_rec {
	int64_t id;
	char uid[160]; /* stable id: receivers deduplicate on it */
	int64_t time;
	char kind[32];
	char tenant[128];
	char conn[64];
	char connector[64];
	char detail[256];
	int delivered;
	int attempts;
	int64_t next_try;
};
/* *added is 0 when an alert with the same uid exists (nothing written). */
int rf_store_alert_add(
    struct rf_store *st, const struct rf_alert_rec *a, int *added) RF_WUR;
/* In id order; since_id 0: all. */
int rf_store_alert_foreach(struct rf_store *st, int64_t since_id,
    int (*fn)(void *arg, const struct rf_alert_rec *a), void *arg) RF_WUR;
/* Up to max undelivered alerts due at now, in id order; *n receives how
 * many were written to out. */
int rf_store_alert_due(struct rf_store *st, int64_t now,
    struct rf_alert_rec *out, size_t max, size_t *n) RF_WUR;
int rf_store_alert_mark(struct rf_store *st, int64_t id, int delivered,
    int attempts, int64_t next_try) RF_WUR;

/* 1 in *open when (tenant, conn) is an affected item of an open incident
 * (not yet contained). */
int rf_store_conn_under_incident(struct rf_store *st, const char *tenant,
    const char *conn, int *open, int64_t *incident) RF_WUR;

/*
 * Everything a connector's assertion is decided on, in one query: the
 * connector of TLS certificate serial, that certificate and the connector's
 * state, its binding to (tenant, conn), the connection's Entra registration,
 * its current credential, and whether an open incident has it affected.
 * RF_ERR_NOT_FOUND when serial is no connector's certificate. The decision
 * (connector/decide.c) reads the facts; a refusal is explained by the
 * single queries above.
 */
struct rf_connector_facts {
	char connector[64];
	char state[16];		      /* the connector's */
	int cert_known, cert_revoked; /* its TLS certificate */
	char cert_profile[16];
	int64_t cert_nb, cert_na;
	int bound;
	int registered;
	struct rf_entra_rec reg;
	int conn_known;	      /* the connection exists */
	char cred_serial[41]; /* its current credential, "" if none */
	int cred_known, cred_revoked;
	int64_t cred_na;
	char cred_key_id[65];
	char cred_x5t256[48];
	int64_t incident; /* an open incident affecting it, or 0 */
};
int rf_store_connector_facts(struct rf_store *st, const char *serial,
    const char *tenant, const char *conn,
    struct rf_connector_facts *out) RF_WUR;
/*
 * A counter that moves with every change, by any connection, to what a
 * connector's assertion and a signing key's use are decided on: connectors,
 * their certificates and bindings, Entra registrations, incidents and
 * their items (any row), connections, certificates and keys (changed or
 * removed rows; a new row of these cannot change facts that passed). Facts
 * read when it was n are still the store's while it reads n (triggers of
 * migration 11).
 */
int rf_store_connector_gen(struct rf_store *st, int64_t *n) RF_WUR;

/*
 * Evidence that a connection works again: the first assertion signed with
 * credential serial, by connector. *added is 0 if recorded already.
 */
int rf_store_reestablished_add(struct rf_store *st, const char *tenant,
    const char *conn, const char *serial, const char *connector, int64_t t,
    int *added) RF_WUR;
/* The connector that re-established (tenant, conn, serial); NOT_FOUND. */
int rf_store_reestablished_get(struct rf_store *st, const char *tenant,
    const char *conn, const char *serial, char connector[64],
    int64_t *t) RF_WUR;

#endif
