/*
 * incident.h: compromise response. One command contains a compromised
 * credential across every tenant in scope, and each affected connection is
 * then followed until its new credential is in use.
 *
 * Model (docs/incident.md): a tenant has connections (one per connector
 * product or use), each with its own key and certificate and a relying-party
 * kind: "ocsp" (the relying party checks revocation) or "pinned" (it
 * registers the certificate by thumbprint and checks no revocation, as Entra
 * ID app credentials do: there the old credential must also be removed at
 * the relying party).
 *
 * An incident names a scope: tenant:T, connection:T/NAME, key:KEYID,
 * issuer:CA or all. Each affected connection moves through
 *   affected -> contained -> reestablished -> closed   (or waived)
 * and every step is an audit leaf.
 */
#ifndef RF_INCIDENT_INCIDENT_H
#define RF_INCIDENT_INCIDENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/progress.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_store;
struct rf_audit;
struct rf_ca;

/* What an incident needs; all borrowed. */
struct rf_incident_ctx {
	const struct rf_config *cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	const struct rf_actor *who;
	struct rf_progress *progress; /* may be NULL: none shown */
};

/*
 * A progress sink (common/progress.h) that records the numbers in the
 * store (arg: struct rf_store *), for `incident status` elsewhere.
 */
struct rf_progress_state;
int rf_incident_progress_sink(void *arg, const struct rf_progress_state *s);
/* The progress task name of an incident's command ("incident 3 contain"). */
void rf_incident_task(int64_t id, const char *cmd, char out[96]);
/*
 * One contain or close of incident id at a time: an exclusive lock on
 * $home/incident-ID.lock, taken without waiting. *fd holds it; it is
 * released when *fd is closed or the process ends (kill -9 included), so
 * a killed run never leaves it held. RF_ERR_STATE, saying so, while
 * another run of this incident holds it. The incident must exist (no
 * file is made for one that does not), and the file is opened without
 * following a symbolic link (refused, naming the path). Held only once
 * the path is found to name the file locked: one removed meanwhile
 * (rf_incident_run_unlock) is opened again.
 */
int rf_incident_run_lock(
    const struct rf_incident_ctx *c, int64_t id, int *fd) RF_WUR;
/*
 * The end of a run: its lock file removed, while still held, if the
 * incident is closed (no run has anything left to do for it), then fd
 * closed. fd is closed whatever the result; an error (the store's, or the
 * removal's) leaves the file, which the next run locks as before.
 */
int rf_incident_run_unlock(
    const struct rf_incident_ctx *c, int64_t id, int fd) RF_WUR;

/* Connection states, in order. */
enum rf_item_state {
	RF_ITEM_AFFECTED = 0,
	RF_ITEM_CONTAINED,
	RF_ITEM_REESTABLISHED,
	RF_ITEM_CLOSED,
	RF_ITEM_WAIVED,
	RF_ITEM_NSTATES
};
const char *rf_item_state_name(enum rf_item_state s);

/*
 * Open an incident on scope ("tenant:T", "connection:T/NAME", "key:ID",
 * "issuer:NAME", "all"). The blast radius (connections, credentials, and the
 * signatures the keys in scope made since `since`, 0: all time) is computed
 * and recorded. RF_ERR_ARG for an unknown scope, RF_ERR_NOT_FOUND when it
 * matches nothing, RF_ERR_EXISTS when an open incident has the same scope.
 */
int rf_incident_open(const struct rf_incident_ctx *c, const char *scope,
    const char *reason, int64_t since, int64_t *id) RF_WUR;
/*
 * 0 if scope is written as one (the forms above), reading nothing; else
 * RF_ERR_ARG with a line naming the forms, for a usage error before any
 * state is opened. Whether its tenant or issuer exists, open says.
 */
int rf_incident_scope_check(const char *scope) RF_WUR;
/*
 * 0 if reason can be an incident's reason: 1 to 255 bytes of UTF-8 text
 * on one line, no control character (C0, DEL or C1), as status, list and
 * the report print it as it is; else RF_ERR_ARG with a line saying what
 * to fix. Open checks it too; the CLI checks it first, as a usage error.
 */
int rf_incident_reason_check(const char *reason) RF_WUR;

/* Progress of a containment, for the operator. */
#define RF_CONTAIN_PHASES 24

struct rf_contain_report {
	size_t revoked;	  /* certificates revoked now */
	size_t disabled;  /* keys disabled now */
	size_t issued;	  /* new credentials issued now */
	size_t pooled;	  /* of which with a key from the standby pool */
	size_t reserved;  /* of which with a key an earlier run reserved */
	size_t destroyed; /* old keys destroyed now (successors committed) */
	size_t waived;	  /* connections waived while this run ran: left */
	size_t total;	  /* connections in scope */
	int rotated;	  /* a new issuing CA was made now */
	char new_issuer[64];
	/* Wall time of this run until every connection had its successor
	 * committed and published (the incident "contained"), and of the
	 * destruction of the old keys after it (its own phase: the old
	 * keys are disabled, so they no longer sign, before it starts). */
	double contain_s, destroy_s;
	/* Issuer scope: serve's HTTPS certificate was issued by the
	 * compromised CA and is revoked (serial) and replaced by one of the
	 * new issuing CA, which a running serve takes. "" when not. */
	char tls_revoked[41];
	/* Where this run's time went, phase by phase, in the order each
	 * first ran (a phase run in parts adds up). */
	struct rf_contain_phase {
		const char *name; /* static */
		double s;
	} phase[RF_CONTAIN_PHASES];
	size_t nphase;
};

/*
 * What contain of incident id will take from the standby pool and what it
 * must generate, per algorithm of the new keys (each old credential's,
 * pool.h): plan[0..*np), room for RF_POOL_ALGS. Connections that have their key
 * already count for none.
 */
struct rf_pool_plan;
int rf_incident_pool_plan(const struct rf_incident_ctx *c, int64_t id,
    struct rf_pool_plan *plan, size_t *np) RF_WUR;

/*
 * Contain: revoke (keyCompromise) every credential in scope, disable its key
 * in the token, rotate the issuing CA when the scope is an issuer, and issue
 * a new key (in the token) and certificate for every affected connection.
 * Restartable: after an interruption, running it again resumes where it
 * stopped; it never issues twice for a connection and never skips one. On
 * an error *rep says how far it got.
 */
int rf_incident_contain(const struct rf_incident_ctx *c, int64_t id,
    struct rf_contain_report *rep) RF_WUR;

/*
 * Write the re-establishment package of one tenant into dir/TENANT/:
 * per connection the new certificate (PEM, DER), thumbprints, the old
 * thumbprint to remove, for pinned relying parties the Microsoft Graph
 * keyCredentials body, and README.txt with plain instructions. tenant NULL:
 * every tenant of the incident.
 */
int rf_incident_package(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *dir, size_t *written) RF_WUR;

/*
 * Confirm (reestablished) or waive every connection of tenant (NULL: of
 * the incident), or only its connection conn (NULL: all); *moved: how
 * many changed state (0: every one was done already).
 */
int rf_incident_confirm(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *conn, int waive, size_t *moved) RF_WUR;

/*
 * Evidence from the OCSP responder: count anonymous queries for serial
 * from source (an address, or NULL), the last at time t. They are
 * recorded as a sighting, shown by status; they move no connection (an
 * anonymous query is not proof of use: that takes confirm, or the bound
 * connector's use of the new credential,
 * rf_store_item_reestablish_by_connector), and hold nothing: close says
 * how many nobody acknowledged. The first query of a source for an old
 * serial after its connection was re-established is also an audit leaf,
 * within quota's budget (NULL: none; past it, counted there for the
 * caller's count leaf). *matched is 1 if the serial belongs to an
 * incident.
 */
struct rf_leaf_quota;
int rf_incident_evidence(const struct rf_incident_ctx *c, const char *serial,
    const char *source, int64_t t, int64_t count, struct rf_leaf_quota *quota,
    int *matched) RF_WUR;

/* Acknowledge the sightings after re-establishment; *n how many. */
int rf_incident_ack(
    const struct rf_incident_ctx *c, int64_t id, size_t *n) RF_WUR;

struct rf_incident_status {
	int64_t id;
	char scope[192];
	char reason[256];
	char state[16]; /* open, contained, closed */
	int64_t opened, contained, closed;
	char new_issuer[64];
	size_t counts[RF_ITEM_NSTATES];
	size_t total;
	uint64_t signatures; /* signatures in the blast radius */
	size_t sightings;    /* OCSP sightings recorded */
	size_t unacked;	     /* old serials seen after re-establishment */
};
int rf_incident_status(const struct rf_incident_ctx *c, int64_t id,
    struct rf_incident_status *out) RF_WUR;

/* Stragglers: connections not yet reestablished/closed/waived. */
struct rf_incident_conn {
	char tenant[128];
	char name[64];
	char rp[8];
	char state[16];
	char old_serial[41];
	char new_serial[41];
	int64_t updated;
	char evidence[128];
};
int rf_incident_foreach(const struct rf_incident_ctx *c, int64_t id,
    int stragglers_only,
    int (*fn)(void *arg, const struct rf_incident_conn *ic), void *arg) RF_WUR;

/* The report: timeline, blast radius, actions, per-tenant state. */
int rf_incident_report(const struct rf_incident_ctx *c, int64_t id,
    FILE *markdown, FILE *json) RF_WUR;

/*
 * Close: only when every connection is reestablished or waived. Destroys
 * the old keys in the token, and the keys taken from the pool or generated
 * for the incident that no connection got (a contain killed before it
 * recorded them); *unused receives how many of those, and *unacked the
 * sightings after re-establishment nobody acknowledged (they hold nothing:
 * anyone can make them; close says so and the report lists them).
 */
int rf_incident_close(const struct rf_incident_ctx *c, int64_t id,
    size_t *unused, size_t *unacked) RF_WUR;

/*
 * The connection a key was made for (keyconn.c). contain generates a
 * connection's key with made_for "incident-ID" on its store record and
 * the label rf_keys_tenant_label(tenant, name), which is the pair itself
 * only up to 64 characters: the incident's items name the connection.
 * Each incident's items are read once per rf_incident_keyconn.
 */
struct rf_incident_keyconn;
struct rf_key_rec;
int rf_incident_keyconn_new(
    struct rf_store *st, struct rf_incident_keyconn **out) RF_WUR;
/*
 * by: "tenant/name" of the connection k was made for; RF_ERR_NOT_FOUND
 * (no message) when k was made for no incident's connection (a pool key,
 * a CA key rotate made, or one whose incident has no such connection).
 */
int rf_incident_keyconn_find(struct rf_incident_keyconn *kc,
    const struct rf_key_rec *k, char by[200]) RF_WUR;
void rf_incident_keyconn_free(struct rf_incident_keyconn *kc);

#endif
