/*
 * store_int.h: private to the store module (SQLite backend). Nothing outside
 * src/store includes it.
 */
#ifndef RF_STORE_STORE_INT_H
#define RF_STORE_STORE_INT_H

#include <sqlite3.h>

#include "store/store.h"

/*
 * The roots of the complete subtrees that make up the first n leaves of the
 * audit tree, largest first: one per set bit of n.
 */
struct st_frontier {
	uint64_t n;
	unsigned top;
	uint8_t level[64];
	uint8_t hash[64][32];
};

struct rf_store {
	sqlite3 *db;
	char *path; /* as given to rf_store_open, for messages */
	int in_txn; /* inside rf_store_begin .. commit/rollback */
	/* rf_store_begin_bulk: writes in it open no savepoint; one failed
	 * (bulk_failed) and the commit refuses the transaction. */
	int bulk, bulk_failed;
	int schema;		/* user_version after migrations */
	double busy_since;	/* st_busy: when this wait for the lock began */
	double busy_last;	/* and when it last tried */
	sqlite3_stmt *leaf_ins; /* cached hot statements (lazily prepared) */
	sqlite3_stmt *leaf_max;
	sqlite3_stmt *cert_ins;
	sqlite3_stmt *ocsp_put;
	sqlite3_stmt *cert_get; /* lookups made for every issued certificate */
	sqlite3_stmt *cert_other;
	sqlite3_stmt *tenant_get;
	sqlite3_stmt *key_get; /* keyd: per signing group, load, disable */
	/* The audit tree's interior nodes (store_audit.c). */
	sqlite3_stmt *node_get;
	sqlite3_stmt *node_ins;
	sqlite3_stmt *leaf_hashes;
	rf_store_node_hash_fn node_hash; /* NULL: appends write no nodes */
	struct st_frontier fr;		 /* committed, valid at fr.n leaves */
	struct st_frontier fr_pending;	 /* in the caller's transaction */
	int fr_ok, fr_pending_ok;
	sqlite3_stmt *ident_owner; /* key identity: owner, compromised list */
	sqlite3_stmt *ident_bad;
	sqlite3_stmt *ident_claim;
	/* The connector tables' statements, by their SQL text's address
	 * (store_connector.c): a connector's assertion asks several. */
	struct {
		const char *sql;
		sqlite3_stmt *s;
	} conn_stmt[40];
	size_t nconn_stmt;
	/* Statements of st_stmt, by their SQL text's address (store.c):
	 * the per-row queries of issuance, revocation and contain. */
	struct {
		const char *sql;
		sqlite3_stmt *s;
	} stmt[64];
	size_t nstmt;
};

/*
 * The end of a caller's transaction (rf_store_commit / rollback): the
 * frontier it extended becomes the committed one, or is forgotten.
 */
void st_tree_txn_end(struct rf_store *st, int committed);

/* Map a SQLite result code to RF_ERR_* and attach a detail naming what. */
int st_fail(struct rf_store *st, int rc, const char *what);
/* Run SQL without results. */
int st_exec(struct rf_store *st, const char *sql) RF_WUR;
/* Prepare a statement (finalize with sqlite3_finalize). */
int st_prepare(struct rf_store *st, const char *sql, sqlite3_stmt **out) RF_WUR;
/* Prepare once into *cache, then reset and clear bindings on later calls. */
int st_cached(
    struct rf_store *st, sqlite3_stmt **cache, const char *sql) RF_WUR;
/*
 * A statement for sql, a string literal: prepared once per store and
 * cached by the literal's address, so that a query asked once per row is
 * parsed once. A statement still in use (a foreach's callback asking the
 * same query) is prepared afresh. Give it back with st_stmt_done.
 */
int st_stmt(struct rf_store *st, const char *sql, sqlite3_stmt **out) RF_WUR;
/* Give back a statement of st_stmt: reset if cached, else finalized.
 * Accepts NULL. */
void st_stmt_done(struct rf_store *st, sqlite3_stmt *s);
/*
 * Done with a cached statement: reset it (a query left on a row would hold
 * its read snapshot open) and clear its bindings. Accepts NULL.
 */
void st_release(sqlite3_stmt *s);

/*
 * Every write runs between st_tx_begin and st_tx_end. Outside a caller's
 * transaction this is BEGIN IMMEDIATE .. COMMIT; inside one, a savepoint,
 * so that a failed operation leaves nothing half-written either way.
 * st_tx_end commits when r is 0, else rolls back; it returns the result.
 */
int st_tx_begin(struct rf_store *st, int *own) RF_WUR;
int st_tx_end(struct rf_store *st, int own, int r) RF_WUR;

/* Bind helpers: text of at most max bytes (RF_ERR_ARG beyond); NULL
 * binds NULL. */
int st_bind_text(struct rf_store *st, sqlite3_stmt *s, int i, const char *v,
    size_t max) RF_WUR;
int st_bind_blob(struct rf_store *st, sqlite3_stmt *s, int i, const uint8_t *v,
    size_t len) RF_WUR;
int st_bind_int(struct rf_store *st, sqlite3_stmt *s, int i, int64_t v) RF_WUR;
/* Copy a text column into a fixed buffer ("" for NULL). */
void st_col_str(sqlite3_stmt *s, int i, char *buf, size_t len);
/* Copy a blob column into a new allocation (NULL, 0 when empty). */
int st_col_dup(sqlite3_stmt *s, int i, uint8_t **out, size_t *len) RF_WUR;

/* SQL functions the migrations use: rf_key_ident(certificate DER). */
int st_functions(struct rf_store *st) RF_WUR;
/*
 * Admit public key `ident` for a certificate of tenant connection
 * (tenant, conn) (store_keyident.c): refused when the key is on the
 * compromised list or serves another tenant connection. With record, the
 * key is claimed for it (inside the caller's transaction).
 */
int st_key_admit(struct rf_store *st, const char *ident, const char *tenant,
    const char *conn, const char *serial, int64_t now, int record) RF_WUR;
/* rf_store_key_compromised_add inside the caller's open transaction. */
int st_compromised_add(struct rf_store *st, const char *serial,
    int64_t incident, int64_t at) RF_WUR;

#endif
