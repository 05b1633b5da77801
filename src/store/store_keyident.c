/*
 * store_keyident.c: one key, one tenant connection; the compromised-key
 * list (issue 13 items 1 and 2).
 *
 * key_owners has the key identity as its primary key: the first
 * certificate of a key claims it for its tenant connection inside the
 * issuing transaction, so that two issuances racing for two tenants
 * serialise on the write lock and the second finds the claim, whatever
 * the checks made before the transaction saw.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/keyident.h"
#include "store/store_connector.h"
#include "store/store_int.h"

static void
sql_key_ident(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	char id[RF_KEY_IDENT_LEN + 1];
	const void *b;
	int n;

	(void)argc;
	b = sqlite3_value_blob(argv[0]);
	n = sqlite3_value_bytes(argv[0]);
	if (b == NULL || n <= 0 || rf_key_ident_cert(b, (size_t)n, id) != 0) {
		rf_err_clear();
		sqlite3_result_null(cx);
		return;
	}
	sqlite3_result_text(cx, id, -1, SQLITE_TRANSIENT);
}

int
st_functions(struct rf_store *st)
{
	int rc;

	rc = sqlite3_create_function(st->db, "rf_key_ident", 1,
	    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_key_ident, NULL,
	    NULL);
	if (rc != SQLITE_OK)
		return st_fail(st, rc, "registering SQL functions");
	return 0;
}

static void
utc(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

/* RF_ERR_KEY_DISALLOWED naming the entry if ident is listed. */
static int
not_compromised(struct rf_store *st, const char *ident)
{
	sqlite3_stmt *s = NULL;
	char serial[41], tenant[128], when[32];
	int64_t inc;
	int r, rc;

	if ((r = st_cached(st, &st->ident_bad,
		 "SELECT serial, tenant, incident, time FROM compromised_keys "
		 "WHERE ident = ?")) != 0)
		return r;
	s = st->ident_bad;
	if ((r = st_bind_text(st, s, 1, ident, RF_KEY_IDENT_LEN)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading the compromised-key list");
		goto out;
	}
	st_col_str(s, 0, serial, sizeof(serial));
	st_col_str(s, 1, tenant, sizeof(tenant));
	inc = sqlite3_column_int64(s, 2);
	utc(sqlite3_column_int64(s, 3), when);
	if (inc > 0)
		r = rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "public key is compromised: incident %lld contained it "
		    "(certificate %s of tenant %s, keyCompromise, %s); "
		    "generate a new key",
		    (long long)inc, serial, tenant[0] ? tenant : "-", when);
	else
		r = rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "public key is compromised: certificate %s of tenant %s "
		    "was revoked for keyCompromise at %s; generate a new key",
		    serial, tenant[0] ? tenant : "-", when);
out:
	st_release(s);
	return r;
}

/*
 * The first claim of a key: inserted unless the key is claimed already
 * (*found), in one step. The caller holds the write lock (st_key_admit's
 * transaction), so no other process claims the key between this and the
 * owner read that follows a conflict.
 */
static int
claim_new(struct rf_store *st, const char *ident, const char *tenant,
    const char *conn, const char *serial, int64_t now, int *found)
{
	sqlite3_stmt *w;
	int r, rc;

	*found = 0;
	if ((r = st_cached(st, &st->ident_claim,
		 "INSERT INTO key_owners (ident, tenant, conn, serial, "
		 "created) VALUES (?1, ?3, ?2, ?4, ?5) "
		 "ON CONFLICT (ident) DO NOTHING")) != 0)
		return r;
	w = st->ident_claim; /* one per issued certificate: cached */
	if ((r = st_bind_text(st, w, 1, ident, RF_KEY_IDENT_LEN)) != 0 ||
	    (r = st_bind_text(st, w, 2, conn, 63)) != 0 ||
	    (r = st_bind_text(st, w, 3, tenant, 127)) != 0 ||
	    (r = st_bind_text(st, w, 4, serial != NULL ? serial : "", 40)) !=
		0 ||
	    (r = st_bind_int(st, w, 5, now)) != 0)
		goto out;
	if ((rc = sqlite3_step(w)) != SQLITE_DONE) {
		r = st_fail(st, rc, "claiming a key for its tenant");
		goto out;
	}
	*found = sqlite3_changes(st->db) == 0;
	r = 0;
out:
	st_release(w);
	return r;
}

int
st_key_admit(struct rf_store *st, const char *ident, const char *tenant,
    const char *conn, const char *serial, int64_t now, int record)
{
	sqlite3_stmt *s = NULL, *w = NULL;
	char otenant[128], oconn[64], oserial[41], owner[64];
	int r, rc, found = 0;

	if (ident == NULL || *ident == '\0')
		return 0; /* no identity (not a key we can name): nothing */
	if (conn == NULL)
		conn = "";
	if ((r = not_compromised(st, ident)) != 0)
		return r;
	/* Usually the key's first certificate: the claim alone, one step. */
	if (record &&
	    (r = claim_new(st, ident, tenant, conn, serial, now, &found)) != 0)
		return r;
	if (record && !found)
		return 0;
	found = 0;
	if ((r = st_cached(st, &st->ident_owner,
		 "SELECT tenant, conn, serial FROM key_owners "
		 "WHERE ident = ?")) != 0)
		return r;
	s = st->ident_owner;
	if ((r = st_bind_text(st, s, 1, ident, RF_KEY_IDENT_LEN)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		found = 1;
		st_col_str(s, 0, otenant, sizeof(otenant));
		st_col_str(s, 1, oconn, sizeof(oconn));
		st_col_str(s, 2, oserial, sizeof(oserial));
	} else if (rc != SQLITE_DONE) {
		r = st_fail(st, rc, "reading the owner of a key");
		goto out;
	}
	st_release(s);
	s = NULL;
	if (found &&
	    (strcmp(otenant, tenant) != 0 ||
		(*conn != '\0' && *oconn != '\0' &&
		    strcmp(conn, oconn) != 0))) {
		/* A connector's key: named as its operator names it, not by
		 * the tenant its certificates are issued under. */
		if (oserial[0] != '\0' &&
		    rf_store_connector_by_cert(st, oserial, owner) == 0) {
			r = rf_err_set(RF_ERR_KEY_REUSED,
			    "this key is already connector %s's (certificate "
			    "%s); make a new key for each connector",
			    owner, oserial);
			goto out;
		}
		r = rf_err_set(RF_ERR_KEY_REUSED,
		    "public key already serves tenant %s connection %s "
		    "(certificate %s): a key serves one tenant connection; "
		    "generate a new key",
		    otenant[0] ? otenant : "-", oconn[0] ? oconn : "-",
		    oserial);
		goto out;
	}
	if (record && !found) { /* the write lock is held: cannot be */
		r = rf_err_set(RF_ERR_INTERNAL,
		    "the owner of a claimed key could not be read");
		goto out;
	}
	if (!record || (found && (*conn == '\0' || *oconn != '\0'))) {
		r = 0;
		goto out;
	}
	/* Claimed without a connection: now the connection's. */
	if ((r = st_prepare(
		 st, "UPDATE key_owners SET conn = ?2 WHERE ident = ?1", &w)) !=
		0 ||
	    (r = st_bind_text(st, w, 1, ident, RF_KEY_IDENT_LEN)) != 0 ||
	    (r = st_bind_text(st, w, 2, conn, 63)) != 0)
		goto out;
	if ((rc = sqlite3_step(w)) != SQLITE_DONE) {
		r = st_fail(st, rc, "claiming a key for its connection");
		goto out;
	}
	r = 0;
out:
	st_release(s);
	sqlite3_finalize(w);
	return r;
}

int
rf_store_key_admit(struct rf_store *st, const char *ident, const char *tenant,
    const char *conn)
{
	return st_key_admit(
	    st, ident, tenant != NULL ? tenant : "", conn, NULL, 0, 0);
}

int
rf_store_key_compromised_add(
    struct rf_store *st, const char *serial, int64_t incident, int64_t at)
{
	int r, own;

	if (serial == NULL || *serial == '\0' || incident < 0)
		return rf_err_set(
		    RF_ERR_ARG, "compromised key without a certificate serial");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	r = st_compromised_add(st, serial, incident, at);
	return st_tx_end(st, own, r);
}

int
st_compromised_add(
    struct rf_store *st, const char *serial, int64_t incident, int64_t at)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_stmt(st, "SELECT 1 FROM certs WHERE serial = ?", &s)) !=
		0 ||
	    (r = st_bind_text(st, s, 1, serial, 40)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = rf_err_set(
		    RF_ERR_NOT_FOUND, "no certificate with serial %s", serial);
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading a certificate");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	/* RFC 5280 5.3.1 keyCompromise (1). The WHERE before ON CONFLICT
	 * is the SELECT's, as SQLite's upsert-after-select needs. */
	if ((r = st_stmt(st,
		 "INSERT INTO compromised_keys (ident, key_id, serial, tenant, "
		 "reason, incident, time) SELECT key_ident, key_id, serial, "
		 "tenant, 1, ?2, ?3 FROM certs WHERE serial = ?1 AND "
		 "key_ident <> '' ON CONFLICT (ident) DO UPDATE SET incident "
		 "= excluded.incident WHERE compromised_keys.incident = 0 AND "
		 "excluded.incident <> 0",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, serial, 40)) != 0 ||
	    (r = st_bind_int(st, s, 2, incident)) != 0 ||
	    (r = st_bind_int(st, s, 3, at)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "listing a compromised key");
		goto out;
	}
	r = 0;
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_compromised_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_compromised_rec *k), void *arg)
{
	struct rf_compromised_rec k;
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_prepare(st,
		 "SELECT ident, key_id, serial, tenant, reason, incident, time "
		 "FROM compromised_keys ORDER BY time, ident",
		 &s)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&k, 0, sizeof(k));
		st_col_str(s, 0, k.ident, sizeof(k.ident));
		st_col_str(s, 1, k.key_id, sizeof(k.key_id));
		st_col_str(s, 2, k.serial, sizeof(k.serial));
		st_col_str(s, 3, k.tenant, sizeof(k.tenant));
		k.reason = sqlite3_column_int(s, 4);
		k.incident = sqlite3_column_int64(s, 5);
		k.time = sqlite3_column_int64(s, 6);
		if ((r = fn(arg, &k)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0
			      : st_fail(st, rc, "reading the compromised keys");
out:
	sqlite3_finalize(s);
	return r;
}
