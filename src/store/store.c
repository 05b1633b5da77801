/*
 * store.c: the SQLite backend: open, migrations, transactions, errors, meta.
 *
 * Durability: WAL journal with synchronous=FULL, so a COMMIT has reached
 * the disk (WAL fsync) when it returns. Every write runs in BEGIN IMMEDIATE
 * (or a savepoint inside the caller's transaction): the write lock is taken
 * up front, so two processes serialise on it (busy timeout 5 s) instead of
 * failing on a stale read snapshot.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

#define ST_BUSY_MS 5000
/*
 * Pages kept per connection (KiB, grown only as used): an estate of 36,000
 * connections is a store of about 200 MiB, and contain's reissue read its
 * indexes from the OS with a pread per page miss at SQLite's 2 MiB default.
 */
#define ST_CACHE_PRAGMA "PRAGMA cache_size = -65536"
/*
 * Savepoints and statement journals in memory, not in temporary files:
 * each store call inside a caller's transaction is a savepoint, and each
 * page it first changes was copied to a file with a write per page.
 */
#define ST_TEMP_PRAGMA "PRAGMA temp_store = MEMORY"
/*
 * The database file read through a memory map (up to 1 GiB): a page the
 * cache lacks costs no system call (at 36,000 connections contain's
 * reissue made a pread per missing index page: 16.3 s -> 13.4 s). WAL
 * checkpoints never shrink the file, which a map could not survive.
 */
#define ST_MMAP_PRAGMA "PRAGMA mmap_size = 1073741824"

/*
 * Waiting for another connection's write lock, up to ST_BUSY_MS. SQLite's
 * own timeout handler sleeps up to 100 ms between tries, so a writer that
 * waits behind a transaction of half a second wakes up to 100 ms after it
 * ends. keyd's record of each signing batch and a contain's commits take
 * turns on this lock, as do serve's recorder and keyd: each turn lost that
 * time. This one tries again every quarter of a millisecond, then every
 * millisecond.
 */
static int
st_busy(void *arg, int count)
{
	struct rf_store *st = arg;
	double now = rf_mono_s();

	/* SQLite resets count per statement step, not per wait: a wait
	 * begins at count 0 or when the last try was a while ago. */
	if (count == 0 || now - st->busy_last > 0.05) {
		st->busy_since = now;
		count = 0;
	} else if (now - st->busy_since >= ST_BUSY_MS / 1000.0) {
		return 0; /* SQLITE_BUSY to the caller */
	}
	st->busy_last = now;
	usleep(count < 8 ? 250 : 1000);
	return 1;
}

/*
 * Migrations: script i takes the schema from version i to i + 1. Each runs
 * in its own transaction together with the user_version update. Append
 * only: never edit a script that has shipped.
 */
static const char *const migrations[] = {
    /* 1: core state */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, val TEXT NOT NULL);"
    "CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
    "  UNIQUE, created INTEGER NOT NULL);"
    "CREATE TABLE keys (id TEXT PRIMARY KEY, alg TEXT NOT NULL,"
    "  purpose TEXT NOT NULL, tenant TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX keys_purpose ON keys (purpose, state, created);"
    "CREATE TABLE cas (name TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
    "  parent TEXT NOT NULL DEFAULT '', serial TEXT NOT NULL,"
    "  not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
    "  active INTEGER NOT NULL, der BLOB);"
    "CREATE TABLE certs (serial TEXT PRIMARY KEY, issuer TEXT NOT NULL,"
    "  tenant TEXT NOT NULL, profile TEXT NOT NULL, key_id TEXT NOT NULL,"
    "  subject TEXT NOT NULL, x5t TEXT NOT NULL, x5t256 TEXT NOT NULL,"
    "  not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
    "  issued INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0,"
    "  reason INTEGER NOT NULL DEFAULT -1, der BLOB);"
    "CREATE INDEX certs_key ON certs (key_id);"
    "CREATE INDEX certs_tenant ON certs (tenant);"
    "CREATE INDEX certs_issuer ON certs (issuer, revoked);"
    "CREATE TABLE crl_counter (issuer TEXT PRIMARY KEY,"
    "  last INTEGER NOT NULL);"
    "CREATE TABLE crl_state (issuer TEXT PRIMARY KEY,"
    "  number INTEGER NOT NULL, this_update INTEGER NOT NULL,"
    "  next_update INTEGER NOT NULL, der BLOB NOT NULL);"
    "CREATE TABLE ocsp (serial TEXT PRIMARY KEY, issuer TEXT NOT NULL,"
    "  this_update INTEGER NOT NULL, next_update INTEGER NOT NULL,"
    "  der BLOB NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX ocsp_seq ON ocsp (seq);"
    "CREATE TABLE audit_leaf (idx INTEGER PRIMARY KEY,"
    "  time INTEGER NOT NULL, type TEXT NOT NULL, key_id TEXT,"
    "  tenant TEXT, data BLOB NOT NULL, hash BLOB NOT NULL);"
    "CREATE INDEX audit_leaf_key ON audit_leaf (key_id, time);"
    "CREATE INDEX audit_leaf_tenant ON audit_leaf (tenant, time);"
    "CREATE INDEX audit_leaf_time ON audit_leaf (time);"
    "CREATE TABLE audit_sth (id INTEGER PRIMARY KEY,"
    "  size INTEGER NOT NULL, time INTEGER NOT NULL, root BLOB NOT NULL,"
    "  key_id TEXT NOT NULL, sig BLOB NOT NULL);"
    "CREATE INDEX audit_sth_size ON audit_sth (size, time);",
    /* 2: connections and incidents */
    "CREATE TABLE conns (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,"
    "  name TEXT NOT NULL, rp TEXT NOT NULL DEFAULT 'ocsp',"
    "  serial TEXT NOT NULL DEFAULT '', previous TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL, UNIQUE (tenant, name));"
    "CREATE INDEX conns_serial ON conns (serial);"
    "CREATE TABLE incidents (id INTEGER PRIMARY KEY, scope TEXT NOT NULL,"
    "  reason TEXT NOT NULL, state TEXT NOT NULL,"
    "  opened INTEGER NOT NULL DEFAULT 0,"
    "  contained INTEGER NOT NULL DEFAULT 0,"
    "  closed INTEGER NOT NULL DEFAULT 0, since INTEGER NOT NULL DEFAULT 0,"
    "  new_issuer TEXT NOT NULL DEFAULT '',"
    "  signatures INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX incidents_scope ON incidents (scope, state);"
    "CREATE TABLE incident_items (incident INTEGER NOT NULL"
    "  REFERENCES incidents (id), conn INTEGER NOT NULL,"
    "  tenant TEXT NOT NULL, name TEXT NOT NULL, rp TEXT NOT NULL,"
    "  old_serial TEXT NOT NULL, old_key TEXT NOT NULL,"
    "  new_serial TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,"
    "  updated INTEGER NOT NULL, evidence TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (incident, conn));"
    "CREATE INDEX incident_items_old ON incident_items (old_serial);"
    "CREATE INDEX incident_items_new ON incident_items (new_serial);"
    "CREATE TABLE incident_events (id INTEGER PRIMARY KEY,"
    "  incident INTEGER NOT NULL REFERENCES incidents (id),"
    "  time INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE INDEX incident_events_inc ON incident_events (incident, id);",
    /* 3: audit tree interior nodes, for proofs in O(log n) (audit) */
    "CREATE TABLE audit_node (level INTEGER NOT NULL,"
    "  idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  PRIMARY KEY (level, idx)) WITHOUT ROWID;",
    /* 4: token hygiene: each key's random CKA_ID and the token holding it */
    "ALTER TABLE keys ADD COLUMN token_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE keys ADD COLUMN token TEXT NOT NULL DEFAULT '';",
    /* 5: connectors and tenant-bound client assertions (issue 12) */
    "CREATE TABLE connectors (name TEXT PRIMARY KEY,"
    "  created INTEGER NOT NULL, state TEXT NOT NULL);"
    "CREATE TABLE connector_certs (serial TEXT PRIMARY KEY,"
    "  connector TEXT NOT NULL, issued INTEGER NOT NULL);"
    "CREATE INDEX connector_certs_name ON connector_certs (connector);"
    "CREATE TABLE connector_bindings (connector TEXT NOT NULL,"
    "  tenant TEXT NOT NULL, conn TEXT NOT NULL, created INTEGER NOT NULL,"
    "  PRIMARY KEY (connector, tenant, conn));"
    "CREATE TABLE conn_entra (tenant TEXT NOT NULL, conn TEXT NOT NULL,"
    "  tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,"
    "  key_alg TEXT NOT NULL, jwt_alg TEXT NOT NULL,"
    "  created INTEGER NOT NULL, PRIMARY KEY (tenant, conn));"
    "CREATE TABLE assertions (jti TEXT PRIMARY KEY, time INTEGER NOT NULL,"
    "  exp INTEGER NOT NULL, tenant TEXT NOT NULL, conn TEXT NOT NULL,"
    "  connector TEXT NOT NULL, connector_serial TEXT NOT NULL,"
    "  cert_serial TEXT NOT NULL, key_id TEXT NOT NULL,"
    "  x5t256 TEXT NOT NULL, source TEXT NOT NULL);"
    "CREATE INDEX assertions_x5t ON assertions (x5t256, time);"
    "CREATE TABLE connector_seen (kind TEXT NOT NULL, k TEXT NOT NULL,"
    "  first INTEGER NOT NULL, last INTEGER NOT NULL,"
    "  count INTEGER NOT NULL, PRIMARY KEY (kind, k));"
    "CREATE TABLE alerts (id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
    "  time INTEGER NOT NULL, kind TEXT NOT NULL, tenant TEXT NOT NULL,"
    "  conn TEXT NOT NULL, connector TEXT NOT NULL, detail TEXT NOT NULL,"
    "  delivered INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_try INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX alerts_queue ON alerts (delivered, next_try);"
    "CREATE TABLE conn_reestablished (tenant TEXT NOT NULL,"
    "  conn TEXT NOT NULL, serial TEXT NOT NULL, connector TEXT NOT NULL,"
    "  time INTEGER NOT NULL, PRIMARY KEY (tenant, conn, serial));",
    /* 6: key identity and compromised keys (issue 13 items 1, 2): a key
     * (SHA-256 of its RSA modulus or EC point, rf_key_ident) serves one
     * tenant connection; a key revoked for keyCompromise never returns.
     * Existing rows are backfilled; the earliest certificate owns a key. */
    "ALTER TABLE certs ADD COLUMN key_ident TEXT NOT NULL DEFAULT '';"
    "UPDATE certs SET key_ident = coalesce(rf_key_ident(der), '');"
    "CREATE INDEX certs_key_ident ON certs (key_ident);"
    "CREATE TABLE key_owners (ident TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
    "  conn TEXT NOT NULL DEFAULT '', serial TEXT NOT NULL,"
    "  created INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO key_owners (ident, tenant, conn, serial, created)"
    "  SELECT c.key_ident, c.tenant, coalesce((SELECT n.name FROM conns n"
    "  WHERE n.tenant = c.tenant AND (n.serial = c.serial OR"
    "  n.previous = c.serial) LIMIT 1), ''), c.serial, c.issued"
    "  FROM certs c WHERE c.key_ident <> '' ORDER BY c.issued, c.serial;"
    "CREATE TABLE compromised_keys (ident TEXT PRIMARY KEY,"
    "  key_id TEXT NOT NULL, serial TEXT NOT NULL, tenant TEXT NOT NULL,"
    "  reason INTEGER NOT NULL, incident INTEGER NOT NULL DEFAULT 0,"
    "  time INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO compromised_keys (ident, key_id, serial, tenant,"
    "  reason, incident, time) SELECT key_ident, key_id, serial, tenant,"
    "  reason, 0, revoked_at FROM certs WHERE revoked = 1 AND reason = 1"
    "  AND key_ident <> '' ORDER BY revoked_at, serial;",
    /* 7: incidents: previous credential and reserved key per item,
     * OCSP sightings, progress of long commands (incident helper) */
    "ALTER TABLE incident_items ADD COLUMN prev_serial TEXT NOT NULL "
    "  DEFAULT '';"
    "ALTER TABLE incident_items ADD COLUMN new_key TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX incident_items_conn ON incident_items (conn, state);"
    "CREATE TABLE incident_sightings (id INTEGER PRIMARY KEY,"
    "  incident INTEGER NOT NULL, conn INTEGER NOT NULL,"
    "  serial TEXT NOT NULL, is_new INTEGER NOT NULL,"
    "  source TEXT NOT NULL, first INTEGER NOT NULL,"
    "  last INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1,"
    "  after_reestablished INTEGER NOT NULL DEFAULT 0,"
    "  acked INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (incident, serial, source));"
    "CREATE INDEX incident_sightings_inc ON incident_sightings"
    "  (incident, acked);"
    "CREATE TABLE progress (task TEXT PRIMARY KEY, phase TEXT NOT NULL,"
    "  done INTEGER NOT NULL, total INTEGER NOT NULL,"
    "  started_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL, finished INTEGER NOT NULL DEFAULT 0);",
    /* 8: standby key pool (src/pool) */
    "CREATE TABLE pool (key_id TEXT PRIMARY KEY, alg TEXT NOT NULL,"
    "  state TEXT NOT NULL, taken_by TEXT NOT NULL DEFAULT '',"
    "  ref TEXT NOT NULL DEFAULT '', made INTEGER NOT NULL,"
    "  taken INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX pool_free ON pool (alg, state, made);",
    /* 9: a connection's incident items, asked at every assertion (issue 12) */
    "CREATE INDEX incident_items_name ON incident_items (tenant, name);",
    /* 10: key_owners in one b-tree (WITHOUT ROWID): one write per claim */
    "CREATE TABLE key_owners_10 (ident TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL, conn TEXT NOT NULL DEFAULT '',"
    "  serial TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO key_owners_10 (ident, tenant, conn, serial, created)"
    "  SELECT ident, tenant, conn, serial, created FROM key_owners;"
    "DROP TABLE key_owners;"
    "ALTER TABLE key_owners_10 RENAME TO key_owners;",
    /* 11: connector_gen counts changes to what assertions are decided on */
    "CREATE TABLE connector_gen (id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  n INTEGER NOT NULL);"
    "INSERT INTO connector_gen (id, n) VALUES (1, 0);"
    "CREATE TRIGGER connector_gen_connectors_i AFTER INSERT ON connectors"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connectors_u AFTER UPDATE ON connectors"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connectors_d AFTER DELETE ON connectors"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_certs_i AFTER INSERT ON "
    "connector_certs"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_certs_u AFTER UPDATE ON "
    "connector_certs"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_certs_d AFTER DELETE ON "
    "connector_certs"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_bindings_i AFTER INSERT ON "
    "connector_bindings"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_bindings_u AFTER UPDATE ON "
    "connector_bindings"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_connector_bindings_d AFTER DELETE ON "
    "connector_bindings"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_conn_entra_i AFTER INSERT ON conn_entra"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_conn_entra_u AFTER UPDATE ON conn_entra"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_conn_entra_d AFTER DELETE ON conn_entra"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incidents_i AFTER INSERT ON incidents"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incidents_u AFTER UPDATE ON incidents"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incidents_d AFTER DELETE ON incidents"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incident_items_i AFTER INSERT ON "
    "incident_items"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incident_items_u AFTER UPDATE ON "
    "incident_items"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_incident_items_d AFTER DELETE ON "
    "incident_items"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_conns_u AFTER UPDATE ON conns"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_conns_d AFTER DELETE ON conns"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_certs_u AFTER UPDATE ON certs"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_certs_d AFTER DELETE ON certs"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_keys_u AFTER UPDATE ON keys"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;"
    "CREATE TRIGGER connector_gen_keys_d AFTER DELETE ON keys"
    "  BEGIN UPDATE connector_gen SET n = n + 1; END;",
    /*
     * 12: leaves by (tenant, key_id, time) in one index, for both
     * searches: a leaf naming a tenant's key goes beside the tenant's
     * other leaves instead of at a random place by key id
     * (rf_store_leaf_search).
     */
    "DROP INDEX audit_leaf_key;"
    "DROP INDEX audit_leaf_tenant;"
    "CREATE INDEX audit_leaf_tenant ON audit_leaf (tenant, key_id, time);",
    /*
     * 13: pool keys by what took them: a rerun of contain finds the keys
     * its killed predecessor took (rf_store_pool_taken_unused).
     */
    "CREATE INDEX pool_taken ON pool (ref, taken_by);",
    /*
     * 14: what a key was made for ("incident-N" for the keys contain
     * generates, '' otherwise) and its CKA_LABEL, written by keys with the
     * key's own record: a rerun of contain finds the keys its killed
     * predecessor made and did not record (rf_store_key_made_for).
     */
    "ALTER TABLE keys ADD COLUMN made_for TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE keys ADD COLUMN label TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX keys_made_for ON keys (made_for, state) WHERE "
    "made_for <> '';",
    /*
     * 15: sightings in the order they go at the cap
     * (rf_store_sighting_trim): its delete reads the few rows it drops,
     * not every row sorted.
     */
    "CREATE INDEX incident_sightings_age ON incident_sightings "
    "((after_reestablished AND NOT acked), last);",
};
#define ST_NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int
st_fail(struct rf_store *st, int rc, const char *what)
{
	const char *path = st != NULL && st->path != NULL ? st->path : "?";
	const char *msg = st != NULL && st->db != NULL ? sqlite3_errmsg(st->db)
						       : sqlite3_errstr(rc);
	int sys =
	    st != NULL && st->db != NULL ? sqlite3_system_errno(st->db) : 0;

	switch (rc & 0xff) {
	case SQLITE_READONLY:
		return rf_err_set(RF_ERR_STORE_READONLY,
		    "%s: database %s is read-only (%s): make the file and its "
		    "folder writable by the ringfence user",
		    what, path, msg);
	case SQLITE_FULL:
		return rf_err_set(RF_ERR_STORE_FULL,
		    "%s: database %s is full (%s): free disk space on its "
		    "volume",
		    what, path, msg);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return rf_err_set(RF_ERR_STORE_BUSY,
		    "%s: database %s is busy (%s): another process holds it; "
		    "retry",
		    what, path, msg);
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return rf_err_set(
			    RF_ERR_EXISTS, "%s: already exists", what);
		return rf_err_set(RF_ERR_ARG,
		    "%s: rejected by the database "
		    "(%s)",
		    what, msg);
	case SQLITE_NOMEM:
		return rf_err_set(RF_ERR_ALLOC, "%s: out of memory", what);
	case SQLITE_IOERR:
		if (sys == ENOSPC || sys == EDQUOT)
			return rf_err_set(RF_ERR_STORE_FULL,
			    "%s: no space left for database %s (%s): free disk "
			    "space on its volume",
			    what, path, msg);
		if (sys == EROFS || sys == EACCES || sys == EPERM)
			return rf_err_set(RF_ERR_STORE_READONLY,
			    "%s: database %s cannot be written (%s): make it "
			    "writable",
			    what, path, msg);
		break;
	case SQLITE_CANTOPEN:
		return rf_err_set(RF_ERR_STORE_READONLY,
		    "%s: cannot open database %s (%s): check that it and its "
		    "folder exist and are writable by the ringfence user",
		    what, path, msg);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return rf_err_set(RF_ERR_STORE,
		    "%s: database %s is damaged (%s): restore it from a "
		    "backup",
		    what, path, msg);
	}
	return rf_err_set(RF_ERR_STORE, "%s: database %s: %s", what, path, msg);
}

int
st_exec(struct rf_store *st, const char *sql)
{
	int rc;

	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return st_fail(st, rc, "database statement");
	return 0;
}

int
st_prepare(struct rf_store *st, const char *sql, sqlite3_stmt **out)
{
	int rc;

	*out = NULL;
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL)) !=
	    SQLITE_OK) {
		sqlite3_finalize(*out);
		*out = NULL;
		return st_fail(st, rc, "preparing a query");
	}
	return 0;
}

int
st_cached(struct rf_store *st, sqlite3_stmt **cache, const char *sql)
{
	if (*cache != NULL) {
		sqlite3_reset(*cache);
		sqlite3_clear_bindings(*cache);
		return 0;
	}
	return st_prepare(st, sql, cache);
}

int
st_stmt(struct rf_store *st, const char *sql, sqlite3_stmt **out)
{
	size_t c;
	int r;

	*out = NULL;
	for (c = 0; c < st->nstmt && st->stmt[c].sql != sql; c++)
		;
	if (c < st->nstmt && !sqlite3_stmt_busy(st->stmt[c].s)) {
		*out = st->stmt[c].s;
		sqlite3_reset(*out);
		sqlite3_clear_bindings(*out);
		return 0;
	}
	if ((r = st_prepare(st, sql, out)) != 0)
		return r;
	if (c == st->nstmt && c < sizeof(st->stmt) / sizeof(st->stmt[0])) {
		st->stmt[c].sql = sql;
		st->stmt[c].s = *out;
		st->nstmt++;
	}
	return 0;
}

void
st_stmt_done(struct rf_store *st, sqlite3_stmt *s)
{
	size_t c;

	if (s == NULL)
		return;
	for (c = 0; c < st->nstmt; c++)
		if (st->stmt[c].s == s) {
			st_release(s);
			return;
		}
	sqlite3_finalize(s);
}

void
st_release(sqlite3_stmt *s)
{
	if (s == NULL)
		return;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int
refuse_readonly(struct rf_store *st)
{
	if (sqlite3_db_readonly(st->db, "main") != 1)
		return 0;
	return rf_err_set(RF_ERR_STORE_READONLY,
	    "database %s is open read-only: make the file and its folder "
	    "writable by the ringfence user",
	    st->path);
}

/*
 * A statement without results run from the cache (a savepoint is taken
 * and released around every write inside a caller's transaction:
 * sqlite3_exec would parse it each time). Returns the SQLite result.
 */
static int
st_step_once(struct rf_store *st, const char *sql)
{
	sqlite3_stmt *s;
	int rc;

	if (st_stmt(st, sql, &s) != 0) {
		rf_err_clear();
		return sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	}
	rc = sqlite3_step(s);
	st_stmt_done(st, s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int
st_tx_begin(struct rf_store *st, int *own)
{
	int r, rc;

	*own = !st->in_txn;
	if ((r = refuse_readonly(st)) != 0)
		return r;
	/* The caller's transaction was abandoned by SQLite after an error:
	 * a savepoint now would start a new, separate transaction. */
	if (st->in_txn && sqlite3_get_autocommit(st->db))
		return rf_err_set(RF_ERR_STORE,
		    "the transaction on %s was rolled back after an earlier "
		    "error: roll back and start again",
		    st->path);
	if (st->in_txn && st->bulk)
		return 0; /* no savepoint: st_tx_end marks a failure */
	rc = *own ? sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)
		  : st_step_once(st, "SAVEPOINT rf_op");
	if (rc != SQLITE_OK)
		return st_fail(st, rc, "starting a transaction");
	return 0;
}

int
st_tx_end(struct rf_store *st, int own, int r)
{
	int rc;

	if (!own && st->bulk) {
		if (r != 0)
			st->bulk_failed = 1;
		return r;
	}
	if (r == 0) {
		rc = own ? sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL)
			 : st_step_once(st, "RELEASE rf_op");
		if (rc == SQLITE_OK)
			return 0;
		r = st_fail(st, rc, "committing");
	}
	/* SQLite may already have rolled back (FULL, IOERR, BUSY). */
	if (sqlite3_get_autocommit(st->db))
		return r;
	if (own)
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	else
		(void)sqlite3_exec(st->db, "ROLLBACK TO rf_op; RELEASE rf_op",
		    NULL, NULL, NULL);
	return r;
}

int
st_bind_text(
    struct rf_store *st, sqlite3_stmt *s, int i, const char *v, size_t max)
{
	int rc;

	if (v != NULL && strnlen(v, max + 1) > max)
		return rf_err_set(
		    RF_ERR_ARG, "value too long (over %zu bytes)", max);
	rc = v == NULL ? sqlite3_bind_null(s, i)
		       : sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return st_fail(st, rc, "binding a value");
	return 0;
}

int
st_bind_blob(
    struct rf_store *st, sqlite3_stmt *s, int i, const uint8_t *v, size_t len)
{
	int rc;

	if (len > INT_MAX)
		return rf_err_set(RF_ERR_TOO_LARGE, "value too large to store");
	if (v == NULL && len != 0)
		return rf_err_set(RF_ERR_ARG, "NULL data with a length");
	/* An empty blob is stored as a zero-length blob, not NULL. */
	rc = sqlite3_bind_blob(
	    s, i, v == NULL ? (const void *)"" : v, (int)len, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return st_fail(st, rc, "binding a value");
	return 0;
}

int
st_bind_int(struct rf_store *st, sqlite3_stmt *s, int i, int64_t v)
{
	int rc;

	if ((rc = sqlite3_bind_int64(s, i, v)) != SQLITE_OK)
		return st_fail(st, rc, "binding a value");
	return 0;
}

void
st_col_str(sqlite3_stmt *s, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	if (len == 0)
		return;
	if (t == NULL) {
		*buf = '\0';
		return;
	}
	strncpy(buf, (const char *)t, len - 1);
	buf[len - 1] = '\0';
}

int
st_col_dup(sqlite3_stmt *s, int i, uint8_t **out, size_t *len)
{
	const void *b = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);

	*out = NULL;
	*len = 0;
	if (b == NULL || n <= 0)
		return 0;
	if ((*out = malloc((size_t)n)) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	memcpy(*out, b, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static int
user_version(struct rf_store *st, int *v)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_prepare(st, "PRAGMA user_version", &s)) != 0)
		return r;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "reading the schema version");
		goto out;
	}
	*v = sqlite3_column_int(s, 0);
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

static int
too_new(struct rf_store *st, int v, int max)
{
	return rf_err_set(RF_ERR_STORE,
	    "database %s has schema version %d, newer than this ringfence "
	    "understands (%d): upgrade ringfence or restore an older database",
	    st->path, v, max);
}

/* Apply migrations until the schema is at version max. */
static int
migrate(struct rf_store *st, int max)
{
	char sql[64];
	int r, v, own;

	if ((r = user_version(st, &v)) != 0)
		return r;
	if (v > ST_NMIGRATIONS)
		return too_new(st, v, ST_NMIGRATIONS);
	while (v < max) {
		if ((r = st_tx_begin(st, &own)) != 0)
			return r;
		/* Another process may have migrated while we waited. */
		if ((r = user_version(st, &v)) != 0 || v >= max)
			goto next;
		if ((r = st_exec(st, migrations[v])) != 0)
			goto next;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((r = st_exec(st, sql)) != 0)
			goto next;
	next:
		if ((r = st_tx_end(st, own, r)) != 0)
			return r;
		if ((r = user_version(st, &v)) != 0)
			return r;
	}
	st->schema = v;
	return 0;
}

static int
is_uri(const char *path)
{
	return strncmp(path, "file:", 5) == 0;
}

int
rf_store_open_version(
    const char *path, int create, int max_version, struct rf_store **out)
{
	struct rf_store *st = NULL;
	struct stat sb;
	int r = RF_ERR_INTERNAL, rc, flags;

	*out = NULL;
	if (path == NULL || *path == '\0')
		return rf_err_set(RF_ERR_ARG, "no database path");
	if (max_version < 1 || max_version > ST_NMIGRATIONS)
		max_version = ST_NMIGRATIONS;
	if (!is_uri(path) && stat(path, &sb) != 0) {
		if (errno == ENOENT && !create)
			return rf_err_set(RF_ERR_NOT_INITIALISED,
			    "no state at %s: run 'ringfence init'", path);
		if (errno != ENOENT)
			return rf_err_set(RF_ERR_IO, "cannot reach %s: %s",
			    path, strerror(errno));
	}
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		r = rf_err_set(RF_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* One connection per thread at a time: no SQLite mutexes. */
	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if ((rc = sqlite3_open_v2(path, &st->db, flags, NULL)) != SQLITE_OK) {
		r = st_fail(st, rc, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_handler(st->db, st_busy, st);
	if ((r = st_exec(st, "PRAGMA foreign_keys = ON")) != 0 ||
	    (r = st_exec(st, ST_MMAP_PRAGMA)) != 0 ||
	    (r = st_functions(st)) != 0)
		goto out;
	if (!sqlite3_db_readonly(st->db, "main")) {
		if ((r = st_exec(st, "PRAGMA journal_mode = WAL")) != 0 ||
		    (r = st_exec(st, "PRAGMA synchronous = FULL")) != 0 ||
		    (r = st_exec(st, ST_CACHE_PRAGMA)) != 0 ||
		    (r = st_exec(st, ST_TEMP_PRAGMA)) != 0)
			goto out;
	}
	if ((r = migrate(st, max_version)) != 0)
		goto out;
	*out = st; /* now owned by the caller */
	st = NULL;
	r = 0;
out:
	rf_store_free(st);
	return r;
}

int
rf_store_unmap(struct rf_store *st)
{
	return st_exec(st, "PRAGMA mmap_size = 0");
}

int
rf_store_open(const char *path, int create, struct rf_store **out)
{
	return rf_store_open_version(path, create, 0, out);
}

void
rf_store_free(struct rf_store *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(st->leaf_ins);
	sqlite3_finalize(st->leaf_max);
	sqlite3_finalize(st->node_get);
	sqlite3_finalize(st->node_ins);
	sqlite3_finalize(st->leaf_hashes);
	sqlite3_finalize(st->cert_ins);
	sqlite3_finalize(st->key_get);
	sqlite3_finalize(st->ocsp_put);
	sqlite3_finalize(st->cert_get);
	sqlite3_finalize(st->cert_other);
	sqlite3_finalize(st->tenant_get);
	sqlite3_finalize(st->ident_owner);
	sqlite3_finalize(st->ident_bad);
	sqlite3_finalize(st->ident_claim);
	for (size_t i = 0; i < st->nconn_stmt; i++)
		sqlite3_finalize(st->conn_stmt[i].s);
	for (size_t i = 0; i < st->nstmt; i++)
		sqlite3_finalize(st->stmt[i].s);
	if (st->db != NULL) {
		if (!sqlite3_get_autocommit(st->db))
			(void)sqlite3_exec(
			    st->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(st->db);
	}
	free(st->path);
	free(st);
}

int
rf_store_schema_version(struct rf_store *st)
{
	return st->schema;
}

int
rf_store_latest_schema_version(void)
{
	return ST_NMIGRATIONS;
}

int
rf_store_begin(struct rf_store *st)
{
	int r, rc;

	if (st->in_txn)
		return rf_err_set(
		    RF_ERR_STATE, "a store transaction is already open");
	if ((r = refuse_readonly(st)) != 0)
		return r;
	if ((rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) !=
	    SQLITE_OK)
		return st_fail(st, rc, "starting a transaction");
	st->in_txn = 1;
	st->bulk = st->bulk_failed = 0;
	return 0;
}

int
rf_store_begin_bulk(struct rf_store *st)
{
	int r;

	if ((r = rf_store_begin(st)) == 0)
		st->bulk = 1;
	return r;
}

int
rf_store_in_transaction(const struct rf_store *st)
{
	return st->in_txn;
}

int
rf_store_commit(struct rf_store *st)
{
	int rc;

	if (!st->in_txn)
		return rf_err_set(RF_ERR_STATE, "no store transaction is open");
	st->in_txn = 0;
	if (st->bulk_failed) {
		rf_store_rollback(st);
		return rf_err_set(RF_ERR_STORE,
		    "a write in the transaction on %s failed: it was rolled "
		    "back, nothing was written",
		    st->path);
	}
	st->bulk = 0;
	if (sqlite3_get_autocommit(st->db)) {
		st_tree_txn_end(st, 0);
		return rf_err_set(RF_ERR_STORE,
		    "the transaction on %s was rolled back after an earlier "
		    "error: nothing was written",
		    st->path);
	}
	if ((rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		int r = st_fail(st, rc, "committing");

		if (!sqlite3_get_autocommit(st->db))
			(void)sqlite3_exec(
			    st->db, "ROLLBACK", NULL, NULL, NULL);
		st_tree_txn_end(st, 0);
		return r;
	}
	st_tree_txn_end(st, 1);
	return 0;
}

void
rf_store_rollback(struct rf_store *st)
{
	if (st == NULL)
		return;
	st->in_txn = 0;
	st->bulk = st->bulk_failed = 0;
	st_tree_txn_end(st, 0);
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* data_version changes when another connection commits; total_changes
 * when this one writes. Their sum changes on either. */
int
rf_store_change_counter(struct rf_store *st, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*out = 0;
	if ((r = st_prepare(st, "PRAGMA data_version", &s)) != 0)
		return r;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "reading the change counter");
		goto out;
	}
	*out = sqlite3_column_int64(s, 0) + sqlite3_total_changes64(st->db);
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_meta_get(
    struct rf_store *st, const char *key, char *val, size_t vallen)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *t;
	int r, rc;

	if (vallen > 0)
		*val = '\0';
	if ((r = st_prepare(st, "SELECT val FROM meta WHERE key = ?", &s)) !=
		0 ||
	    (r = st_bind_text(st, s, 1, key, 256)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = rf_err_set(RF_ERR_NOT_FOUND, "no setting '%s'", key);
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading a setting");
		goto out;
	}
	t = sqlite3_column_text(s, 0);
	if (t == NULL || strlen((const char *)t) >= vallen) {
		r = rf_err_set(RF_ERR_TOO_LARGE, "setting '%s' too long", key);
		goto out;
	}
	memcpy(val, t, strlen((const char *)t) + 1);
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_meta_set(struct rf_store *st, const char *key, const char *val)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own;

	if (key == NULL || val == NULL)
		return rf_err_set(RF_ERR_ARG, "setting without key or value");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(st,
		 "INSERT INTO meta (key, val) VALUES (?, ?) "
		 "ON CONFLICT (key) DO UPDATE SET val = "
		 "excluded.val",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, key, 256)) != 0 ||
	    (r = st_bind_text(st, s, 2, val, 65536)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "writing a setting");
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

/* Test hook: cap the database size to provoke SQLITE_FULL. */
int
rf_store_test_set_max_pages(struct rf_store *st, int64_t pages)
{
	char sql[64];

	snprintf(
	    sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
	return st_exec(st, sql);
}
