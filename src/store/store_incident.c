/*
 * store_incident.c: tenant connections, incidents, their items and events
 * (store_incident.h).
 */
#include <stdio.h>
#include <string.h>

#include "store/store_incident.h"
#include "store/store_int.h"

static int
step_done(struct rf_store *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		return st_fail(st, rc, what);
	return 0;
}

int
rf_store_conn_set(struct rf_store *st, const char *tenant, const char *name,
    const char *rp, const char *serial, int64_t now, int64_t *id)
{
	struct rf_conn_rec c;
	sqlite3_stmt *s = NULL;
	int r, rc, own, found;

	if (id != NULL)
		*id = 0;
	if (tenant == NULL || *tenant == '\0' || name == NULL || *name == '\0')
		return rf_err_set(RF_ERR_ARG,
		    "connection without tenant or "
		    "name");
	if (rp != NULL && strcmp(rp, "ocsp") != 0 && strcmp(rp, "pinned") != 0)
		return rf_err_set(RF_ERR_ARG,
		    "relying-party mode '%s' is not "
		    "'ocsp' or 'pinned'",
		    rp);
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "SELECT id, serial FROM conns WHERE tenant = ? AND name = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, tenant, sizeof(c.tenant) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 2, name, sizeof(c.name) - 1)) != 0)
		goto out;
	memset(&c, 0, sizeof(c));
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		found = 1;
		c.id = sqlite3_column_int64(s, 0);
		st_col_str(s, 1, c.serial, sizeof(c.serial));
	} else if (rc == SQLITE_DONE)
		found = 0;
	else {
		r = st_fail(st, rc, "reading a connection");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	if (!found) {
		if ((r = st_stmt(st,
			 "INSERT INTO conns (tenant, name, rp, serial, "
			 "created) VALUES (?, ?, ?, ?, ?)",
			 &s)) != 0 ||
		    (r = st_bind_text(
			 st, s, 1, tenant, sizeof(c.tenant) - 1)) != 0 ||
		    (r = st_bind_text(st, s, 2, name, sizeof(c.name) - 1)) !=
			0 ||
		    (r = st_bind_text(st, s, 3, rp != NULL ? rp : "ocsp", 7)) !=
			0 ||
		    (r = st_bind_text(st, s, 4, serial != NULL ? serial : "",
			 sizeof(c.serial) - 1)) != 0 ||
		    (r = st_bind_int(st, s, 5, now)) != 0 ||
		    (r = step_done(st, s, "adding a connection")) != 0)
			goto out;
		c.id = sqlite3_last_insert_rowid(st->db);
	} else {
		int move = serial != NULL && strcmp(serial, c.serial) != 0;

		if ((r = st_stmt(st,
			 "UPDATE conns SET rp = coalesce(?, rp), "
			 "previous = CASE WHEN ? THEN serial ELSE previous "
			 "END, "
			 "serial = CASE WHEN ? THEN ? ELSE serial END "
			 "WHERE id = ?",
			 &s)) != 0 ||
		    (r = st_bind_text(st, s, 1, rp, 7)) != 0 ||
		    (r = st_bind_int(st, s, 2, move)) != 0 ||
		    (r = st_bind_int(st, s, 3, move)) != 0 ||
		    (r = st_bind_text(st, s, 4, serial != NULL ? serial : "",
			 sizeof(c.serial) - 1)) != 0 ||
		    (r = st_bind_int(st, s, 5, c.id)) != 0 ||
		    (r = step_done(st, s, "updating a connection")) != 0)
			goto out;
	}
	if (id != NULL)
		*id = c.id;
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

#define CONN_COLS "id, tenant, name, rp, serial, previous, created"

static void
conn_row(sqlite3_stmt *s, struct rf_conn_rec *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(s, 0);
	st_col_str(s, 1, c->tenant, sizeof(c->tenant));
	st_col_str(s, 2, c->name, sizeof(c->name));
	st_col_str(s, 3, c->rp, sizeof(c->rp));
	st_col_str(s, 4, c->serial, sizeof(c->serial));
	st_col_str(s, 5, c->previous, sizeof(c->previous));
	c->created = sqlite3_column_int64(s, 6);
}

int
rf_store_conn_get(struct rf_store *st, const char *tenant, const char *name,
    struct rf_conn_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_stmt(st,
		 "SELECT " CONN_COLS " FROM conns WHERE tenant = ? AND "
		 "name = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, tenant, 1024)) != 0 ||
	    (r = st_bind_text(st, s, 2, name, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		conn_row(s, out);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "no connection '%s' of tenant "
		    "'%s'",
		    name, tenant);
	else
		r = st_fail(st, rc, "reading a connection");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_conn_add(struct rf_store *st, const char *tenant, const char *name,
    const char *rp, int64_t now, struct rf_conn_rec *existing)
{
	int r, own = !rf_store_in_transaction(st);

	/* rf_store_conn_set nests its write in the transaction opened here. */
	if (own && (r = rf_store_begin(st)) != 0)
		return r;
	if ((r = rf_store_conn_get(st, tenant, name, existing)) == 0)
		r = rf_err_set(
		    RF_ERR_EXISTS, "connection %s/%s exists", tenant, name);
	else if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		r = rf_store_conn_set(st, tenant, name, rp, NULL, now, NULL);
	}
	if (own && r == 0)
		r = rf_store_commit(st);
	else if (own)
		rf_store_rollback(st);
	return r;
}

int
rf_store_conn_foreach(struct rf_store *st, const struct rf_conn_filter *f,
    int (*fn)(void *arg, const struct rf_conn_rec *conn,
	const struct rf_cert_rec *cur),
    void *arg)
{
	static const struct rf_conn_filter none;
	struct rf_conn_rec c;
	struct rf_cert_rec cert;
	sqlite3_stmt *s = NULL;
	char sql[768];
	int r, rc, i = 1;

	if (f == NULL)
		f = &none;
	snprintf(sql, sizeof(sql),
	    "SELECT n.id, n.tenant, n.name, n.rp, n.serial, n.previous, "
	    "n.created, c.serial, c.issuer, c.tenant, c.profile, c.key_id, "
	    "c.subject, c.x5t, c.x5t256, c.not_before, c.not_after, c.issued, "
	    "c.revoked, c.revoked_at, c.reason FROM conns n JOIN certs c ON "
	    "c.serial = n.serial WHERE n.serial <> ''%s%s%s%s "
	    "ORDER BY n.tenant, n.name",
	    f->tenant != NULL ? " AND n.tenant = ?" : "",
	    f->name != NULL ? " AND n.name = ?" : "",
	    f->key_id != NULL ? " AND c.key_id = ?" : "",
	    f->issuer != NULL ? " AND c.issuer = ?" : "");
	if ((r = st_prepare(st, sql, &s)) != 0)
		goto out;
	if ((f->tenant != NULL &&
		(r = st_bind_text(st, s, i++, f->tenant, 1024)) != 0) ||
	    (f->name != NULL &&
		(r = st_bind_text(st, s, i++, f->name, 1024)) != 0) ||
	    (f->key_id != NULL &&
		(r = st_bind_text(st, s, i++, f->key_id, 1024)) != 0) ||
	    (f->issuer != NULL &&
		(r = st_bind_text(st, s, i++, f->issuer, 1024)) != 0))
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		conn_row(s, &c);
		memset(&cert, 0, sizeof(cert));
		st_col_str(s, 7, cert.serial, sizeof(cert.serial));
		st_col_str(s, 8, cert.issuer, sizeof(cert.issuer));
		st_col_str(s, 9, cert.tenant, sizeof(cert.tenant));
		st_col_str(s, 10, cert.profile, sizeof(cert.profile));
		st_col_str(s, 11, cert.key_id, sizeof(cert.key_id));
		st_col_str(s, 12, cert.subject, sizeof(cert.subject));
		st_col_str(s, 13, cert.x5t, sizeof(cert.x5t));
		st_col_str(s, 14, cert.x5t256, sizeof(cert.x5t256));
		cert.not_before = sqlite3_column_int64(s, 15);
		cert.not_after = sqlite3_column_int64(s, 16);
		cert.issued = sqlite3_column_int64(s, 17);
		cert.revoked = sqlite3_column_int(s, 18);
		cert.revoked_at = sqlite3_column_int64(s, 19);
		cert.reason = sqlite3_column_int(s, 20);
		if ((r = fn(arg, &c, &cert)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing connections");
out:
	st_stmt_done(st, s);
	return r;
}

#define INC_COLS                                                               \
	"id, scope, reason, state, opened, contained, closed, since, "         \
	"new_issuer, signatures"

static void
inc_row(sqlite3_stmt *s, struct rf_incident_rec *inc)
{
	memset(inc, 0, sizeof(*inc));
	inc->id = sqlite3_column_int64(s, 0);
	st_col_str(s, 1, inc->scope, sizeof(inc->scope));
	st_col_str(s, 2, inc->reason, sizeof(inc->reason));
	st_col_str(s, 3, inc->state, sizeof(inc->state));
	inc->opened = sqlite3_column_int64(s, 4);
	inc->contained = sqlite3_column_int64(s, 5);
	inc->closed = sqlite3_column_int64(s, 6);
	inc->since = sqlite3_column_int64(s, 7);
	st_col_str(s, 8, inc->new_issuer, sizeof(inc->new_issuer));
	inc->signatures = (uint64_t)sqlite3_column_int64(s, 9);
}

int
rf_store_incident_add(struct rf_store *st, struct rf_incident_rec *inc)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own;

	if (inc->scope[0] == '\0')
		return rf_err_set(RF_ERR_ARG, "incident without a scope");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "SELECT id FROM incidents WHERE scope = ? AND state <> "
		 "'closed' ORDER BY id LIMIT 1",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, inc->scope, sizeof(inc->scope) - 1)) !=
		0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		inc->id = sqlite3_column_int64(s, 0);
		r = rf_err_set(RF_ERR_EXISTS,
		    "incident %lld is already open for %s", (long long)inc->id,
		    inc->scope);
		goto out;
	} else if (rc != SQLITE_DONE) {
		r = st_fail(st, rc, "reading incidents");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	if ((r = st_stmt(st,
		 "INSERT INTO incidents (scope, reason, state, opened, "
		 "contained, closed, since, new_issuer, signatures) VALUES "
		 "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, inc->scope, sizeof(inc->scope) - 1)) !=
		0 ||
	    (r = st_bind_text(
		 st, s, 2, inc->reason, sizeof(inc->reason) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 3,
		 inc->state[0] != '\0' ? inc->state : "open",
		 sizeof(inc->state) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 4, inc->opened)) != 0 ||
	    (r = st_bind_int(st, s, 5, inc->contained)) != 0 ||
	    (r = st_bind_int(st, s, 6, inc->closed)) != 0 ||
	    (r = st_bind_int(st, s, 7, inc->since)) != 0 ||
	    (r = st_bind_text(st, s, 8, inc->new_issuer,
		 sizeof(inc->new_issuer) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 9, (int64_t)inc->signatures)) != 0 ||
	    (r = step_done(st, s, "opening an incident")) != 0)
		goto out;
	inc->id = sqlite3_last_insert_rowid(st->db);
	if (inc->state[0] == '\0')
		snprintf(inc->state, sizeof(inc->state), "open");
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_incident_get(
    struct rf_store *st, int64_t id, struct rf_incident_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_stmt(st,
		 "SELECT " INC_COLS " FROM incidents WHERE "
		 "id = ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, id)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		inc_row(s, out);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = rf_err_set(
		    RF_ERR_NOT_FOUND, "no incident %lld", (long long)id);
	else
		r = st_fail(st, rc, "reading an incident");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_incident_update(struct rf_store *st, const struct rf_incident_rec *inc)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "UPDATE incidents SET state = ?, opened = ?, contained = ?, "
		 "closed = ?, since = ?, new_issuer = ?, signatures = ? "
		 "WHERE id = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, inc->state, sizeof(inc->state) - 1)) !=
		0 ||
	    (r = st_bind_int(st, s, 2, inc->opened)) != 0 ||
	    (r = st_bind_int(st, s, 3, inc->contained)) != 0 ||
	    (r = st_bind_int(st, s, 4, inc->closed)) != 0 ||
	    (r = st_bind_int(st, s, 5, inc->since)) != 0 ||
	    (r = st_bind_text(st, s, 6, inc->new_issuer,
		 sizeof(inc->new_issuer) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 7, (int64_t)inc->signatures)) != 0 ||
	    (r = st_bind_int(st, s, 8, inc->id)) != 0 ||
	    (r = step_done(st, s, "updating an incident")) != 0)
		goto out;
	if (sqlite3_changes(st->db) == 0)
		r = rf_err_set(
		    RF_ERR_NOT_FOUND, "no incident %lld", (long long)inc->id);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_incident_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_incident_rec *inc), void *arg)
{
	struct rf_incident_rec inc;
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT " INC_COLS " FROM incidents ORDER BY "
		 "id",
		 &s)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		inc_row(s, &inc);
		if ((r = fn(arg, &inc)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing incidents");
out:
	st_stmt_done(st, s);
	return r;
}

#define ITEM_COLS                                                              \
	"incident, conn, tenant, name, rp, old_serial, old_key, new_serial, "  \
	"state, updated, evidence, prev_serial, new_key"

static void
item_row(sqlite3_stmt *s, struct rf_item_rec *it)
{
	memset(it, 0, sizeof(*it));
	it->incident = sqlite3_column_int64(s, 0);
	it->conn = sqlite3_column_int64(s, 1);
	st_col_str(s, 2, it->tenant, sizeof(it->tenant));
	st_col_str(s, 3, it->name, sizeof(it->name));
	st_col_str(s, 4, it->rp, sizeof(it->rp));
	st_col_str(s, 5, it->old_serial, sizeof(it->old_serial));
	st_col_str(s, 6, it->old_key, sizeof(it->old_key));
	st_col_str(s, 7, it->new_serial, sizeof(it->new_serial));
	st_col_str(s, 8, it->state, sizeof(it->state));
	it->updated = sqlite3_column_int64(s, 9);
	st_col_str(s, 10, it->evidence, sizeof(it->evidence));
	st_col_str(s, 11, it->prev_serial, sizeof(it->prev_serial));
	st_col_str(s, 12, it->new_key, sizeof(it->new_key));
}

int
rf_store_item_add(struct rf_store *st, const struct rf_item_rec *it)
{
	sqlite3_stmt *s = NULL;
	int r, own;

#define T(i, f) st_bind_text(st, s, i, it->f, sizeof(it->f) - 1)
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "INSERT INTO incident_items (" ITEM_COLS ") VALUES (?, ?, ?, "
		 "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, it->incident)) != 0 ||
	    (r = st_bind_int(st, s, 2, it->conn)) != 0 ||
	    (r = T(3, tenant)) != 0 || (r = T(4, name)) != 0 ||
	    (r = T(5, rp)) != 0 || (r = T(6, old_serial)) != 0 ||
	    (r = T(7, old_key)) != 0 || (r = T(8, new_serial)) != 0 ||
	    (r = T(9, state)) != 0 ||
	    (r = st_bind_int(st, s, 10, it->updated)) != 0 ||
	    (r = T(11, evidence)) != 0 || (r = T(12, prev_serial)) != 0 ||
	    (r = T(13, new_key)) != 0)
		goto out;
	if ((r = step_done(st, s, "adding an incident item")) == RF_ERR_EXISTS)
		r = rf_err_set(RF_ERR_EXISTS,
		    "connection %lld is already in "
		    "incident %lld",
		    (long long)it->conn, (long long)it->incident);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

/* Through the primary key; with `from`, only while the state is still it. */
static int
item_update(struct rf_store *st, const struct rf_item_rec *it, const char *from)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "UPDATE incident_items SET new_serial = ?, state = ?, "
		 "updated = ?, evidence = ? WHERE incident = ? AND conn = ? "
		 "AND (?7 IS NULL OR state = ?7)",
		 &s)) != 0 ||
	    (r = T(1, new_serial)) != 0 || (r = T(2, state)) != 0 ||
	    (r = st_bind_int(st, s, 3, it->updated)) != 0 ||
	    (r = T(4, evidence)) != 0 ||
	    (r = st_bind_int(st, s, 5, it->incident)) != 0 ||
	    (r = st_bind_int(st, s, 6, it->conn)) != 0 ||
	    (r = from != NULL ? st_bind_text(st, s, 7, from, 16)
			      : (sqlite3_bind_null(s, 7) == SQLITE_OK
					? 0
					: st_fail(st, SQLITE_ERROR,
					      "binding a state"))) != 0 ||
	    (r = step_done(st, s, "updating an incident item")) != 0)
		goto out;
#undef T
	if (sqlite3_changes(st->db) == 0 && from != NULL)
		r = rf_err_set(RF_ERR_STATE,
		    "connection %lld of incident %lld is no longer %s",
		    (long long)it->conn, (long long)it->incident, from);
	else if (sqlite3_changes(st->db) == 0)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "connection %lld is not in "
		    "incident %lld",
		    (long long)it->conn, (long long)it->incident);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_item_update(struct rf_store *st, const struct rf_item_rec *it)
{
	return item_update(st, it, NULL);
}

int
rf_store_item_move(
    struct rf_store *st, const struct rf_item_rec *it, const char *from)
{
	return item_update(st, it, from);
}

int
rf_store_item_foreach(struct rf_store *st, int64_t incident, const char *tenant,
    const char *state, int (*fn)(void *arg, const struct rf_item_rec *it),
    void *arg)
{
	struct rf_item_rec it;
	sqlite3_stmt *s = NULL;
	char sql[384];
	int r, rc, i = 2;

	snprintf(sql, sizeof(sql),
	    "SELECT " ITEM_COLS " FROM incident_items WHERE incident = ?%s%s "
	    "ORDER BY tenant, name, conn",
	    tenant != NULL ? " AND tenant = ?" : "",
	    state != NULL ? " AND state = ?" : "");
	if ((r = st_prepare(st, sql, &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0 ||
	    (tenant != NULL &&
		(r = st_bind_text(st, s, i++, tenant, 1024)) != 0) ||
	    (state != NULL && (r = st_bind_text(st, s, i++, state, 1024)) != 0))
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		item_row(s, &it);
		if ((r = fn(arg, &it)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing incident items");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_item_elsewhere(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const struct rf_item_rec *it, const char *serial),
    void *arg)
{
	struct rf_item_rec it;
	sqlite3_stmt *s = NULL;
	char cur[41];
	int r, rc;

	if ((r = st_prepare(st,
		 "SELECT " ITEM_COLS ", cur FROM (SELECT i.*, n.serial AS cur "
		 "FROM incident_items i JOIN conns n ON n.id = i.conn WHERE "
		 "i.incident = ? AND i.state = 'affected' AND n.serial <> "
		 "i.old_serial) ORDER BY tenant, name, conn",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		item_row(s, &it);
		st_col_str(s, 13, cur, sizeof(cur));
		if ((r = fn(arg, &it, cur)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing incident items");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_item_by_serial(struct rf_store *st, const char *serial,
    struct rf_item_rec *out, int *is_new)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	*is_new = 0;
	if (serial == NULL || *serial == '\0')
		return rf_err_set(RF_ERR_ARG, "empty serial");
	if ((r = st_stmt(st,
		 "SELECT i.incident, i.conn, i.tenant, i.name, i.rp, "
		 "i.old_serial, i.old_key, i.new_serial, i.state, i.updated, "
		 "i.evidence, i.prev_serial, i.new_key, i.new_serial = ?1 "
		 "FROM incident_items i JOIN "
		 "incidents n ON n.id = i.incident WHERE n.state <> 'closed' "
		 "AND (i.old_serial = ?1 OR i.new_serial = ?1) "
		 "ORDER BY i.incident DESC LIMIT 1",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, serial, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		item_row(s, out);
		*is_new = sqlite3_column_int(s, 13);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = RF_ERR_NOT_FOUND;
	else
		r = st_fail(st, rc, "reading incident items");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_incident_event_add(struct rf_store *st, int64_t incident, int64_t time,
    const char *kind, const char *detail)
{
	struct rf_event_rec e;
	sqlite3_stmt *s = NULL;
	int r, own;

	if (kind == NULL || *kind == '\0')
		return rf_err_set(RF_ERR_ARG, "incident event without a kind");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "INSERT INTO incident_events (incident, time, kind, detail) "
		 "VALUES (?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0 ||
	    (r = st_bind_int(st, s, 2, time)) != 0 ||
	    (r = st_bind_text(st, s, 3, kind, sizeof(e.kind) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 4, detail != NULL ? detail : "",
		 sizeof(e.detail) - 1)) != 0 ||
	    (r = step_done(st, s, "recording an incident event")) != 0)
		goto out;
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_incident_event_foreach(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const struct rf_event_rec *e), void *arg)
{
	struct rf_event_rec e;
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT incident, time, kind, detail FROM incident_events "
		 "WHERE incident = ? ORDER BY id",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.incident = sqlite3_column_int64(s, 0);
		e.time = sqlite3_column_int64(s, 1);
		st_col_str(s, 2, e.kind, sizeof(e.kind));
		st_col_str(s, 3, e.detail, sizeof(e.detail));
		if ((r = fn(arg, &e)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing incident events");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_item_reserve_key(struct rf_store *st, int64_t incident, int64_t conn,
    const char *prev, const char *key_id)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "UPDATE incident_items SET new_key = ? WHERE incident = ? "
		 "AND conn = ? AND new_key = ? AND state = 'affected'",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, key_id, 64)) != 0 ||
	    (r = st_bind_int(st, s, 2, incident)) != 0 ||
	    (r = st_bind_int(st, s, 3, conn)) != 0 ||
	    (r = st_bind_text(st, s, 4, prev, 64)) != 0 ||
	    (r = step_done(st, s, "reserving a key for an incident item")) != 0)
		goto out;
	if (sqlite3_changes(st->db) == 0)
		r = rf_err_set(RF_ERR_EXISTS,
		    "connection %lld of incident %lld already has a key "
		    "reserved",
		    (long long)conn, (long long)incident);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_item_state(
    struct rf_store *st, int64_t incident, int64_t conn, char state[16])
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	state[0] = '\0';
	if ((r = st_stmt(st,
		 "SELECT state FROM incident_items WHERE incident = ? AND "
		 "conn = ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0 ||
	    (r = st_bind_int(st, s, 2, conn)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		st_col_str(s, 0, state, 16);
	else if (rc == SQLITE_DONE)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "connection %lld is not in incident %lld", (long long)conn,
		    (long long)incident);
	else
		r = st_fail(st, rc, "reading an incident item's state");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_item_other_open(
    struct rf_store *st, int64_t conn, int64_t incident, int64_t *other)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*other = 0;
	if ((r = st_stmt(st,
		 "SELECT i.incident FROM incident_items i JOIN incidents n "
		 "ON n.id = i.incident WHERE i.conn = ? AND i.incident <> ? "
		 "AND i.state = 'affected' AND n.state <> 'closed' "
		 "ORDER BY i.incident LIMIT 1",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, conn)) != 0 ||
	    (r = st_bind_int(st, s, 2, incident)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*other = sqlite3_column_int64(s, 0);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = RF_ERR_NOT_FOUND;
	} else {
		r = st_fail(st, rc, "reading incident items");
	}
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_progress_put(struct rf_store *st, const struct rf_progress_rec *p)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "INSERT OR REPLACE INTO progress (task, phase, done, total, "
		 "started_ms, updated_ms, pid, finished) VALUES (?, ?, ?, ?, "
		 "?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, p->task, sizeof(p->task) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 2, p->phase, sizeof(p->phase) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 3, (int64_t)p->done)) != 0 ||
	    (r = st_bind_int(st, s, 4, (int64_t)p->total)) != 0 ||
	    (r = st_bind_int(st, s, 5, p->started_ms)) != 0 ||
	    (r = st_bind_int(st, s, 6, p->updated_ms)) != 0 ||
	    (r = st_bind_int(st, s, 7, p->pid)) != 0 ||
	    (r = st_bind_int(st, s, 8, p->finished)) != 0 ||
	    (r = step_done(st, s, "recording progress")) != 0)
		goto out;
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_progress_get(
    struct rf_store *st, const char *task, struct rf_progress_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_stmt(st,
		 "SELECT task, phase, done, total, started_ms, updated_ms, "
		 "pid, finished FROM progress WHERE task = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, task, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, out->task, sizeof(out->task));
		st_col_str(s, 1, out->phase, sizeof(out->phase));
		out->done = (uint64_t)sqlite3_column_int64(s, 2);
		out->total = (uint64_t)sqlite3_column_int64(s, 3);
		out->started_ms = sqlite3_column_int64(s, 4);
		out->updated_ms = sqlite3_column_int64(s, 5);
		out->pid = sqlite3_column_int64(s, 6);
		out->finished = sqlite3_column_int(s, 7);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = RF_ERR_NOT_FOUND;
	} else {
		r = st_fail(st, rc, "reading progress");
	}
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_item_keys_reserved_unused(struct rf_store *st, int64_t incident,
    int (*fn)(void *arg, const char *id, const char *by, const char *alg),
    void *arg)
{
	sqlite3_stmt *s = NULL;
	char id[65], alg[16];
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT k.id, k.alg FROM incident_items i JOIN keys k ON "
		 "k.id = i.new_key WHERE i.incident = ? AND k.state = "
		 "'reserved' AND NOT EXISTS (SELECT 1 FROM certs c WHERE "
		 "c.key_id = k.id)",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, id, sizeof(id));
		st_col_str(s, 1, alg, sizeof(alg));
		if ((r = fn(arg, id, "", alg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = st_fail(st, rc, "finding keys reserved and unused");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_sighting_add(
    struct rf_store *st, const struct rf_sighting_rec *g, int *fresh)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own, was = -1; /* -1: no row yet */

	*fresh = 0;
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "SELECT after_reestablished FROM incident_sightings WHERE "
		 "incident = ? AND serial = ? AND source = ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, g->incident)) != 0 ||
	    (r = st_bind_text(st, s, 2, g->serial, 40)) != 0 ||
	    (r = st_bind_text(st, s, 3, g->source, sizeof(g->source) - 1)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		was = sqlite3_column_int(s, 0);
	else if (rc != SQLITE_DONE) {
		r = st_fail(st, rc, "reading a sighting");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	if ((r = st_stmt(st,
		 "INSERT INTO incident_sightings (incident, conn, serial, "
		 "is_new, source, first, last, count, after_reestablished) "
		 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?8, ?7) ON CONFLICT "
		 "(incident, serial, source) DO UPDATE SET last = max(last, "
		 "?6), count = count + ?8, after_reestablished = "
		 "max(after_reestablished, ?7), acked = CASE WHEN ?7 > "
		 "after_reestablished THEN 0 ELSE acked END",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, g->incident)) != 0 ||
	    (r = st_bind_int(st, s, 2, g->conn)) != 0 ||
	    (r = st_bind_text(st, s, 3, g->serial, 40)) != 0 ||
	    (r = st_bind_int(st, s, 4, g->is_new)) != 0 ||
	    (r = st_bind_text(st, s, 5, g->source, sizeof(g->source) - 1)) !=
		0 ||
	    (r = st_bind_int(st, s, 6, g->last)) != 0 ||
	    (r = st_bind_int(st, s, 7, g->after_reestablished)) != 0 ||
	    (r = st_bind_int(st, s, 8, g->count > 0 ? g->count : 1)) != 0 ||
	    (r = step_done(st, s, "recording a sighting")) != 0)
		goto out;
	/* New after re-establishment: no row, or a row from before. */
	*fresh = g->after_reestablished && was <= 0;
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_sighting_trim(struct rf_store *st)
{
	sqlite3_stmt *s = NULL;
	int64_t n = 0;
	int r, rc, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st, "SELECT count(*) FROM incident_sightings", &s)) !=
	    0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "counting sightings");
		goto out;
	}
	n = sqlite3_column_int64(s, 0);
	st_stmt_done(st, s);
	s = NULL;
	r = 0;
	if (n <= RF_SIGHTINGS_MAX)
		goto out;
	/* In the order of incident_sightings_age: the rows nobody needs
	 * to look at (acknowledged, or before re-establishment) first,
	 * oldest first within each. */
	if ((r = st_stmt(st,
		 "DELETE FROM incident_sightings WHERE id IN (SELECT id FROM "
		 "incident_sightings ORDER BY (after_reestablished AND NOT "
		 "acked), last LIMIT ?)",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, n - RF_SIGHTINGS_MAX)) != 0 ||
	    (r = step_done(st, s, "bounding the sightings")) != 0)
		goto out;
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_sighting_foreach(struct rf_store *st, int64_t incident, size_t limit,
    int (*fn)(void *arg, const struct rf_sighting_rec *g), void *arg)
{
	struct rf_sighting_rec g;
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT incident, conn, serial, is_new, source, first, last, "
		 "count, after_reestablished, acked FROM incident_sightings "
		 "WHERE incident = ? ORDER BY last DESC, id DESC LIMIT ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0 ||
	    (r = st_bind_int(st, s, 2, limit > 0 ? (int64_t)limit : -1)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&g, 0, sizeof(g));
		g.incident = sqlite3_column_int64(s, 0);
		g.conn = sqlite3_column_int64(s, 1);
		st_col_str(s, 2, g.serial, sizeof(g.serial));
		g.is_new = sqlite3_column_int(s, 3);
		st_col_str(s, 4, g.source, sizeof(g.source));
		g.first = sqlite3_column_int64(s, 5);
		g.last = sqlite3_column_int64(s, 6);
		g.count = sqlite3_column_int64(s, 7);
		g.after_reestablished = sqlite3_column_int(s, 8);
		g.acked = sqlite3_column_int(s, 9);
		if ((r = fn(arg, &g)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing sightings");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_sighting_counts(
    struct rf_store *st, int64_t incident, size_t *total, size_t *unacked)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*total = *unacked = 0;
	if ((r = st_stmt(st,
		 "SELECT count(*), coalesce(sum(after_reestablished AND NOT "
		 "acked), 0) FROM incident_sightings WHERE incident = ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "counting sightings");
		goto out;
	}
	*total = (size_t)sqlite3_column_int64(s, 0);
	*unacked = (size_t)sqlite3_column_int64(s, 1);
	r = 0;
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_sighting_ack(struct rf_store *st, int64_t incident, size_t *n)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	*n = 0;
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "UPDATE incident_sightings SET acked = 1 WHERE incident = ? "
		 "AND after_reestablished = 1 AND acked = 0",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, incident)) != 0 ||
	    (r = step_done(st, s, "acknowledging sightings")) != 0)
		goto out;
	*n = (size_t)sqlite3_changes(st->db);
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_item_reestablish_by_connector(struct rf_store *st, const char *serial,
    const char *connector, int64_t t, size_t *moved)
{
	sqlite3_stmt *s = NULL;
	char ev[128];
	int r, own;

	*moved = 0;
	snprintf(ev, sizeof(ev), "new credential used by connector %s",
	    connector != NULL ? connector : "?");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "UPDATE incident_items SET state = 'reestablished', "
		 "updated = ?, evidence = ? WHERE new_serial = ? AND state = "
		 "'contained' AND incident IN (SELECT id FROM incidents WHERE "
		 "state <> 'closed')",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, t)) != 0 ||
	    (r = st_bind_text(st, s, 2, ev, sizeof(ev) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 3, serial, 40)) != 0 ||
	    (r = step_done(st, s, "marking a connection re-established")) != 0)
		goto out;
	*moved = (size_t)sqlite3_changes(st->db);
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_wrote(struct rf_store *st)
{
	return st != NULL && sqlite3_total_changes64(st->db) > 0;
}
