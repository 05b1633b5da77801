/*
 * store_connector.c: connectors, bindings, Entra registrations, assertions,
 * baselines, alerts and re-establishment evidence (store_connector.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/store_connector.h"
#include "store/store_int.h"

/*
 * Prepare sql and bind its parameters from fmt: 's' a string (at most 1024
 * bytes), 'i' an int64_t.
 */
/* Give back a statement of prep(): reset if cached, else finalized. */
static void
done(struct rf_store *st, sqlite3_stmt *s)
{
	size_t c;

	for (c = 0; c < st->nconn_stmt; c++)
		if (st->conn_stmt[c].s == s) {
			st_release(s);
			return;
		}
	sqlite3_finalize(s);
}

/*
 * A statement for sql (a literal: cached by its address), its parameters
 * bound from fmt ('s' text, 'i' int64). Each statement is prepared once
 * per store; one still in use (a callback of a foreach asking the same
 * query) is prepared afresh. Give it back with done().
 */
static int
prep(struct rf_store *st, sqlite3_stmt **s, const char *sql, const char *fmt,
    ...)
{
	va_list ap;
	size_t c;
	int r, i;

	*s = NULL;
	for (c = 0; c < st->nconn_stmt && st->conn_stmt[c].sql != sql; c++)
		;
	if (c < st->nconn_stmt && !sqlite3_stmt_busy(st->conn_stmt[c].s)) {
		*s = st->conn_stmt[c].s;
		sqlite3_reset(*s);
		sqlite3_clear_bindings(*s);
	} else if ((r = st_prepare(st, sql, s)) != 0)
		return r;
	else if (c == st->nconn_stmt &&
	    c < sizeof(st->conn_stmt) / sizeof(st->conn_stmt[0])) {
		st->conn_stmt[c].sql = sql;
		st->conn_stmt[c].s = *s;
		st->nconn_stmt++;
	}
	r = 0;
	va_start(ap, fmt);
	for (i = 0; fmt[i] != '\0' && r == 0; i++) {
		if (fmt[i] == 's')
			r = st_bind_text(
			    st, *s, i + 1, va_arg(ap, const char *), 1024);
		else
			r = st_bind_int(st, *s, i + 1, va_arg(ap, int64_t));
	}
	va_end(ap);
	if (r != 0) {
		done(st, *s);
		*s = NULL;
	}
	return r;
}

/* Run a prepared write to its end, in a transaction of its own or the
 * caller's; gives s back. */
static int
run(struct rf_store *st, sqlite3_stmt *s, const char *what)
{
	int r, rc, own;

	if ((r = st_tx_begin(st, &own)) != 0) {
		done(st, s);
		return r;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		r = st_fail(st, rc, what);
	done(st, s);
	return st_tx_end(st, own, r);
}

/* Step a query expected to give one row: 0 on a row (s left on it),
 * RF_ERR_NOT_FOUND when none. */
static int
one_row(struct rf_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return RF_ERR_NOT_FOUND;
	return st_fail(st, rc, what);
}

int
rf_store_connector_add(struct rf_store *st, const char *name, int64_t now)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT INTO connectors (name, created, state) "
		 "VALUES (?, ?, 'active')",
		 "si", name, now)) != 0)
		return r;
	return run(st, s, "adding a connector");
}

int
rf_store_connector_get(
    struct rf_store *st, const char *name, struct rf_connector_rec *out)
{
	sqlite3_stmt *s;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = prep(st, &s,
		 "SELECT name, state, created FROM connectors "
		 "WHERE name = ?",
		 "s", name)) != 0)
		return r;
	if ((r = one_row(st, s, "reading a connector")) == 0) {
		st_col_str(s, 0, out->name, sizeof(out->name));
		st_col_str(s, 1, out->state, sizeof(out->state));
		out->created = sqlite3_column_int64(s, 2);
	} else if (r == RF_ERR_NOT_FOUND)
		r = rf_err_set(r,
		    "no connector '%.64s': add it with 'ringfence connector "
		    "add'",
		    name);
	done(st, s);
	return r;
}

int
rf_store_connector_set_state(
    struct rf_store *st, const char *name, const char *state)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s, "UPDATE connectors SET state = ? WHERE name = ?",
		 "ss", state, name)) != 0)
		return r;
	return run(st, s, "updating a connector");
}

int
rf_store_connector_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_connector_rec *c), void *arg)
{
	struct rf_connector_rec c;
	sqlite3_stmt *s;
	int r, rc;

	if ((r = prep(st, &s,
		 "SELECT name, state, created FROM connectors ORDER BY name",
		 "")) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&c, 0, sizeof(c));
		st_col_str(s, 0, c.name, sizeof(c.name));
		st_col_str(s, 1, c.state, sizeof(c.state));
		c.created = sqlite3_column_int64(s, 2);
		if ((r = fn(arg, &c)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = st_fail(st, rc, "listing connectors");
	done(st, s);
	return r;
}

int
rf_store_connector_cert_add(
    struct rf_store *st, const char *serial, const char *name, int64_t now)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT INTO connector_certs (serial, connector, issued) "
		 "VALUES (?, ?, ?)",
		 "ssi", serial, name, now)) != 0)
		return r;
	return run(st, s, "recording a connector certificate");
}

int
rf_store_connector_by_cert(
    struct rf_store *st, const char *serial, char name[64])
{
	sqlite3_stmt *s;
	int r;

	name[0] = '\0';
	if ((r = prep(st, &s,
		 "SELECT connector FROM connector_certs WHERE serial = ?", "s",
		 serial)) != 0)
		return r;
	if ((r = one_row(st, s, "reading a connector certificate")) == 0)
		st_col_str(s, 0, name, 64);
	done(st, s);
	return r;
}

int
rf_store_connector_cert_foreach(struct rf_store *st, const char *name,
    int (*fn)(void *arg, const char *serial), void *arg)
{
	char serial[41];
	sqlite3_stmt *s;
	int r, rc;

	if ((r = prep(st, &s,
		 "SELECT serial FROM connector_certs WHERE connector = ? "
		 "ORDER BY issued, serial",
		 "s", name)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, serial, sizeof(serial));
		if ((r = fn(arg, serial)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = st_fail(st, rc, "listing connector certificates");
	done(st, s);
	return r;
}

int
rf_store_binding_add(struct rf_store *st, const char *connector,
    const char *tenant, const char *conn, int64_t now)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT OR IGNORE INTO connector_bindings (connector, "
		 "tenant, conn, created) VALUES (?, ?, ?, ?)",
		 "sssi", connector, tenant, conn, now)) != 0)
		return r;
	return run(st, s, "binding a connector");
}

int
rf_store_binding_get(struct rf_store *st, const char *connector,
    const char *tenant, const char *conn)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "SELECT 1 FROM connector_bindings WHERE connector = ? AND "
		 "tenant = ? AND conn = ?",
		 "sss", connector, tenant, conn)) != 0)
		return r;
	r = one_row(st, s, "reading a binding");
	done(st, s);
	return r;
}

int
rf_store_binding_foreach(struct rf_store *st, const char *connector,
    int (*fn)(void *arg, const char *tenant, const char *conn), void *arg)
{
	char tenant[128], conn[64];
	sqlite3_stmt *s;
	int r, rc;

	if ((r = prep(st, &s,
		 "SELECT tenant, conn FROM connector_bindings WHERE "
		 "connector = ? ORDER BY tenant, conn",
		 "s", connector)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, tenant, sizeof(tenant));
		st_col_str(s, 1, conn, sizeof(conn));
		if ((r = fn(arg, tenant, conn)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = st_fail(st, rc, "listing bindings");
	done(st, s);
	return r;
}

int
rf_store_entra_put(struct rf_store *st, const struct rf_entra_rec *e)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT OR REPLACE INTO conn_entra (tenant, conn, tenant_id, "
		 "client_id, key_alg, jwt_alg, created) VALUES "
		 "(?, ?, ?, ?, ?, ?, ?)",
		 "ssssssi", e->tenant, e->conn, e->tenant_id, e->client_id,
		 e->key_alg, e->jwt_alg, e->created)) != 0)
		return r;
	return run(st, s, "registering an entra connection");
}

/* tenant, conn, tenant_id, client_id, key_alg, jwt_alg, created from
 * column i on. */
static void
entra_row(sqlite3_stmt *s, int i, struct rf_entra_rec *e)
{
	st_col_str(s, i, e->tenant, sizeof(e->tenant));
	st_col_str(s, i + 1, e->conn, sizeof(e->conn));
	st_col_str(s, i + 2, e->tenant_id, sizeof(e->tenant_id));
	st_col_str(s, i + 3, e->client_id, sizeof(e->client_id));
	st_col_str(s, i + 4, e->key_alg, sizeof(e->key_alg));
	st_col_str(s, i + 5, e->jwt_alg, sizeof(e->jwt_alg));
	e->created = sqlite3_column_int64(s, i + 6);
}

int
rf_store_entra_get(struct rf_store *st, const char *tenant, const char *conn,
    struct rf_entra_rec *out)
{
	sqlite3_stmt *s;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = prep(st, &s,
		 "SELECT tenant, conn, tenant_id, client_id, key_alg, "
		 "jwt_alg, created FROM conn_entra WHERE tenant = ? AND "
		 "conn = ?",
		 "ss", tenant, conn)) != 0)
		return r;
	if ((r = one_row(st, s, "reading an entra registration")) == 0)
		entra_row(s, 0, out);
	done(st, s);
	return r;
}

#define ASSERTION_COLS                                                         \
	"jti, time, exp, tenant, conn, connector, connector_serial, "          \
	"cert_serial, key_id, x5t256, source"

int
rf_store_assertion_add(struct rf_store *st, const struct rf_assertion_rec *a)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT INTO assertions (" ASSERTION_COLS
		 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		 "siissssssss", a->jti, a->time, a->exp, a->tenant, a->conn,
		 a->connector, a->connector_serial, a->cert_serial, a->key_id,
		 a->x5t256, a->source)) != 0)
		return r;
	return run(st, s, "recording an assertion");
}

int
rf_store_assertion_foreach(struct rf_store *st, const char *x5t256,
    int64_t since, int64_t until,
    int (*fn)(void *arg, const struct rf_assertion_rec *a), void *arg)
{
	struct rf_assertion_rec a;
	sqlite3_stmt *s;
	int r, rc;

	if ((r = prep(st, &s,
		 "SELECT " ASSERTION_COLS " FROM assertions WHERE x5t256 = ? "
		 "AND time >= ? AND time <= ? ORDER BY time, jti",
		 "sii", x5t256, since, until)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&a, 0, sizeof(a));
		st_col_str(s, 0, a.jti, sizeof(a.jti));
		a.time = sqlite3_column_int64(s, 1);
		a.exp = sqlite3_column_int64(s, 2);
		st_col_str(s, 3, a.tenant, sizeof(a.tenant));
		st_col_str(s, 4, a.conn, sizeof(a.conn));
		st_col_str(s, 5, a.connector, sizeof(a.connector));
		st_col_str(
		    s, 6, a.connector_serial, sizeof(a.connector_serial));
		st_col_str(s, 7, a.cert_serial, sizeof(a.cert_serial));
		st_col_str(s, 8, a.key_id, sizeof(a.key_id));
		st_col_str(s, 9, a.x5t256, sizeof(a.x5t256));
		st_col_str(s, 10, a.source, sizeof(a.source));
		if ((r = fn(arg, &a)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = st_fail(st, rc, "reading assertions");
	done(st, s);
	return r;
}

int
rf_store_assertion_sources(struct rf_store *st, int64_t since, size_t rows,
    int (*fn)(void *arg, const char *source, int64_t time), void *arg)
{
	sqlite3_stmt *s;
	char src[64];
	int r = 0, rc;

	/* Newest first by rowid (the insertion order): no index on time, and
	 * a bounded read however large the table. */
	if ((r = prep(st, &s,
		 "SELECT source, time FROM assertions ORDER BY rowid DESC "
		 "LIMIT ?",
		 "i", (int64_t)rows)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_int64(s, 1) < since)
			continue;
		st_col_str(s, 0, src, sizeof(src));
		if ((r = fn(arg, src, sqlite3_column_int64(s, 1))) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = st_fail(st, rc, "reading assertions' sources");
	done(st, s);
	return r;
}

int
rf_store_seen_get(struct rf_store *st, const char *kind, const char *key,
    int64_t *count, int64_t *first)
{
	sqlite3_stmt *s;
	int r;

	*count = 0;
	if (first != NULL)
		*first = 0;
	if ((r = prep(st, &s,
		 "SELECT count, first FROM connector_seen WHERE kind = ? AND "
		 "k = ?",
		 "ss", kind, key)) != 0)
		return r;
	if ((r = one_row(st, s, "reading a baseline")) == 0) {
		*count = sqlite3_column_int64(s, 0);
		if (first != NULL)
			*first = sqlite3_column_int64(s, 1);
	} else if (r == RF_ERR_NOT_FOUND)
		r = 0;
	done(st, s);
	return r;
}

int
rf_store_seen_bump(struct rf_store *st, const char *kind, const char *key,
    int64_t add, int64_t now, int64_t *before)
{
	sqlite3_stmt *s;
	int64_t c = 0, first = 0;
	int r;

	if ((r = rf_store_seen_get(st, kind, key, &c, &first)) != 0)
		return r;
	if (before != NULL)
		*before = first == 0 ? -1 : c;
	if ((r = prep(st, &s,
		 "INSERT INTO connector_seen (kind, k, first, last, count) "
		 "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, k) DO UPDATE SET "
		 "count = count + excluded.count, last = excluded.last",
		 "ssiii", kind, key, now, now, add)) != 0)
		return r;
	return run(st, s, "updating a baseline");
}

int
rf_store_seen_max(struct rf_store *st, const char *kind, const char *key,
    int64_t v, int64_t now)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT INTO connector_seen (kind, k, first, last, count) "
		 "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, k) DO UPDATE SET "
		 "count = max(count, excluded.count), last = excluded.last",
		 "ssiii", kind, key, now, now, v)) != 0)
		return r;
	return run(st, s, "updating a baseline");
}

int
rf_store_seen_set(struct rf_store *st, const char *kind, const char *key,
    int64_t v, int64_t now)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT OR REPLACE INTO connector_seen (kind, k, first, last, "
		 "count) VALUES (?, ?, ?, ?, ?)",
		 "ssiii", kind, key, now, now, v)) != 0)
		return r;
	return run(st, s, "updating a baseline");
}

int
rf_store_seen_count(struct rf_store *st, const char *kind, const char *prefix,
    int64_t since, int64_t *n)
{
	sqlite3_stmt *s;
	int r;

	*n = 0;
	/* substr, not LIKE: keys may hold '%' or '_'; the range lets the
	 * primary key find them (names hold no U+10FFFF). */
	if ((r = prep(st, &s,
		 "SELECT count(*) FROM connector_seen WHERE kind = ?1 AND "
		 "k >= ?2 AND k < ?2 || char(1114111) AND "
		 "substr(k, 1, length(?2)) = ?2 AND last >= ?3",
		 "ssi", kind, prefix, since)) != 0)
		return r;
	if ((r = one_row(st, s, "counting a baseline")) == 0)
		*n = sqlite3_column_int64(s, 0);
	done(st, s);
	return r;
}

int
rf_store_seen_row(struct rf_store *st, const char *kind, const char *key,
    struct rf_seen_rec *out)
{
	sqlite3_stmt *s;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = prep(st, &s,
		 "SELECT count, first, last FROM connector_seen WHERE kind = ? "
		 "AND k = ?",
		 "ss", kind, key)) != 0)
		return r;
	if ((r = one_row(st, s, "reading a baseline")) == 0) {
		out->count = sqlite3_column_int64(s, 0);
		out->first = sqlite3_column_int64(s, 1);
		out->last = sqlite3_column_int64(s, 2);
	}
	done(st, s);
	return r;
}

int
rf_store_seen_put(struct rf_store *st, const char *kind, const char *key,
    const struct rf_seen_rec *v)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "INSERT OR REPLACE INTO connector_seen (kind, k, first, last, "
		 "count) VALUES (?, ?, ?, ?, ?)",
		 "ssiii", kind, key, v->first, v->last, v->count)) != 0)
		return r;
	return run(st, s, "writing a baseline");
}

int
rf_store_alert_add(
    struct rf_store *st, const struct rf_alert_rec *a, int *added)
{
	sqlite3_stmt *s;
	int r, rc, own;

	*added = 0;
	if ((r = prep(st, &s,
		 "INSERT OR IGNORE INTO alerts (uid, time, kind, tenant, "
		 "conn, connector, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
		 "sisssss", a->uid, a->time, a->kind, a->tenant, a->conn,
		 a->connector, a->detail)) != 0)
		return r;
	if ((r = st_tx_begin(st, &own)) != 0) {
		done(st, s);
		return r;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		r = st_fail(st, rc, "adding an alert");
	else
		*added = sqlite3_changes(st->db) > 0;
	done(st, s);
	return st_tx_end(st, own, r);
}

#define ALERT_COLS                                                             \
	"id, uid, time, kind, tenant, conn, connector, detail, delivered, "    \
	"attempts, next_try"

static void
alert_row(sqlite3_stmt *s, struct rf_alert_rec *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(s, 0);
	st_col_str(s, 1, a->uid, sizeof(a->uid));
	a->time = sqlite3_column_int64(s, 2);
	st_col_str(s, 3, a->kind, sizeof(a->kind));
	st_col_str(s, 4, a->tenant, sizeof(a->tenant));
	st_col_str(s, 5, a->conn, sizeof(a->conn));
	st_col_str(s, 6, a->connector, sizeof(a->connector));
	st_col_str(s, 7, a->detail, sizeof(a->detail));
	a->delivered = sqlite3_column_int(s, 8);
	a->attempts = sqlite3_column_int(s, 9);
	a->next_try = sqlite3_column_int64(s, 10);
}

int
rf_store_alert_foreach(struct rf_store *st, int64_t since_id,
    int (*fn)(void *arg, const struct rf_alert_rec *a), void *arg)
{
	struct rf_alert_rec a;
	sqlite3_stmt *s;
	int r, rc;

	if ((r = prep(st, &s,
		 "SELECT " ALERT_COLS " FROM alerts WHERE id > ? ORDER BY id",
		 "i", since_id)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		alert_row(s, &a);
		if ((r = fn(arg, &a)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = st_fail(st, rc, "listing alerts");
	done(st, s);
	return r;
}

int
rf_store_alert_due(struct rf_store *st, int64_t now, struct rf_alert_rec *out,
    size_t max, size_t *n)
{
	sqlite3_stmt *s;
	int r, rc;

	*n = 0;
	if ((r = prep(st, &s,
		 "SELECT " ALERT_COLS " FROM alerts WHERE delivered = 0 AND "
		 "next_try <= ? ORDER BY id LIMIT ?",
		 "ii", now, (int64_t)max)) != 0)
		return r;
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
		alert_row(s, &out[(*n)++]);
	if (*n < max && rc != SQLITE_DONE)
		r = st_fail(st, rc, "reading the alert queue");
	done(st, s);
	return r;
}

int
rf_store_alert_mark(struct rf_store *st, int64_t id, int delivered,
    int attempts, int64_t next_try)
{
	sqlite3_stmt *s;
	int r;

	if ((r = prep(st, &s,
		 "UPDATE alerts SET delivered = ?, attempts = ?, next_try = ? "
		 "WHERE id = ?",
		 "iiii", (int64_t)delivered, (int64_t)attempts, next_try,
		 id)) != 0)
		return r;
	return run(st, s, "updating the alert queue");
}

int
rf_store_conn_under_incident(struct rf_store *st, const char *tenant,
    const char *conn, int *open, int64_t *incident)
{
	sqlite3_stmt *s;
	int r;

	*open = 0;
	if (incident != NULL)
		*incident = 0;
	if ((r = prep(st, &s,
		 "SELECT i.id FROM incident_items it JOIN incidents i ON "
		 "i.id = it.incident WHERE it.tenant = ? AND it.name = ? AND "
		 "i.state = 'open' AND it.state = 'affected' LIMIT 1",
		 "ss", tenant, conn)) != 0)
		return r;
	if ((r = one_row(st, s, "reading incidents")) == 0) {
		*open = 1;
		if (incident != NULL)
			*incident = sqlite3_column_int64(s, 0);
	} else if (r == RF_ERR_NOT_FOUND)
		r = 0;
	done(st, s);
	return r;
}

int
rf_store_connector_facts(struct rf_store *st, const char *serial,
    const char *tenant, const char *conn, struct rf_connector_facts *out)
{
	sqlite3_stmt *s;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = prep(st, &s,
		 "SELECT cc.connector, c.state, kc.serial IS NOT NULL, "
		 "kc.revoked, kc.not_before, kc.not_after, kc.profile, "
		 "(SELECT 1 FROM connector_bindings b WHERE "
		 "b.connector = cc.connector AND b.tenant = ?2 AND "
		 "b.conn = ?3) IS NOT NULL, "
		 "e.tenant IS NOT NULL, e.tenant, e.conn, e.tenant_id, "
		 "e.client_id, e.key_alg, e.jwt_alg, e.created, "
		 "cn.id IS NOT NULL, cn.serial, "
		 "cr.serial IS NOT NULL, cr.revoked, cr.not_after, cr.key_id, "
		 "cr.x5t256, (SELECT i.id FROM incident_items it JOIN "
		 "incidents i ON i.id = it.incident WHERE it.tenant = ?2 AND "
		 "it.name = ?3 AND i.state = 'open' AND "
		 "it.state = 'affected' LIMIT 1) "
		 "FROM connector_certs cc "
		 "LEFT JOIN connectors c ON c.name = cc.connector "
		 "LEFT JOIN certs kc ON kc.serial = cc.serial "
		 "LEFT JOIN conn_entra e ON e.tenant = ?2 AND e.conn = ?3 "
		 "LEFT JOIN conns cn ON cn.tenant = ?2 AND cn.name = ?3 "
		 "LEFT JOIN certs cr ON cr.serial = cn.serial "
		 "WHERE cc.serial = ?1",
		 "sss", serial, tenant, conn)) != 0)
		return r;
	if ((r = one_row(st, s, "reading a connector's request")) == 0) {
		st_col_str(s, 0, out->connector, sizeof(out->connector));
		st_col_str(s, 1, out->state, sizeof(out->state));
		out->cert_known = sqlite3_column_int(s, 2);
		out->cert_revoked = sqlite3_column_int(s, 3);
		out->cert_nb = sqlite3_column_int64(s, 4);
		out->cert_na = sqlite3_column_int64(s, 5);
		st_col_str(s, 6, out->cert_profile, sizeof(out->cert_profile));
		out->bound = sqlite3_column_int(s, 7);
		out->registered = sqlite3_column_int(s, 8);
		entra_row(s, 9, &out->reg);
		out->conn_known = sqlite3_column_int(s, 16);
		st_col_str(s, 17, out->cred_serial, sizeof(out->cred_serial));
		out->cred_known = sqlite3_column_int(s, 18);
		out->cred_revoked = sqlite3_column_int(s, 19);
		out->cred_na = sqlite3_column_int64(s, 20);
		st_col_str(s, 21, out->cred_key_id, sizeof(out->cred_key_id));
		st_col_str(s, 22, out->cred_x5t256, sizeof(out->cred_x5t256));
		out->incident = sqlite3_column_int64(s, 23);
	}
	done(st, s);
	return r;
}

int
rf_store_connector_gen(struct rf_store *st, int64_t *n)
{
	sqlite3_stmt *s;
	int r;

	*n = -1;
	if ((r = prep(
		 st, &s, "SELECT n FROM connector_gen WHERE id = 1", "")) != 0)
		return r;
	if ((r = one_row(st, s, "reading the connector generation")) == 0)
		*n = sqlite3_column_int64(s, 0);
	done(st, s);
	return r;
}

int
rf_store_reestablished_add(struct rf_store *st, const char *tenant,
    const char *conn, const char *serial, const char *connector, int64_t t,
    int *added)
{
	sqlite3_stmt *s;
	int r, rc, own;

	*added = 0;
	if ((r = prep(st, &s,
		 "INSERT OR IGNORE INTO conn_reestablished (tenant, conn, "
		 "serial, connector, time) VALUES (?, ?, ?, ?, ?)",
		 "ssssi", tenant, conn, serial, connector, t)) != 0)
		return r;
	if ((r = st_tx_begin(st, &own)) != 0) {
		done(st, s);
		return r;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		r = st_fail(st, rc, "recording re-establishment");
	else
		*added = sqlite3_changes(st->db) > 0;
	done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_reestablished_get(struct rf_store *st, const char *tenant,
    const char *conn, const char *serial, char connector[64], int64_t *t)
{
	sqlite3_stmt *s;
	int r;

	connector[0] = '\0';
	*t = 0;
	if ((r = prep(st, &s,
		 "SELECT connector, time FROM conn_reestablished WHERE "
		 "tenant = ? AND conn = ? AND serial = ?",
		 "sss", tenant, conn, serial)) != 0)
		return r;
	if ((r = one_row(st, s, "reading re-establishment")) == 0) {
		st_col_str(s, 0, connector, 64);
		*t = sqlite3_column_int64(s, 1);
	}
	done(st, s);
	return r;
}
