/*
 * store_pool.c: the standby key pool's rows (store_pool.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "store/store_pool.h"

static int
step_done(struct rf_store *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		return st_fail(st, rc, what);
	return 0;
}

int
rf_store_pool_add(struct rf_store *st, const char (*ids)[65], size_t n,
    const char *alg, int64_t now)
{
	sqlite3_stmt *p = NULL, *k = NULL;
	size_t i;
	int r, own;

	if (alg == NULL || *alg == '\0' || (n > 0 && ids == NULL))
		return rf_err_set(RF_ERR_ARG, "pool keys without an algorithm");
	if (n == 0)
		return 0;
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "INSERT INTO pool (key_id, alg, state, made) "
		 "VALUES (?, ?, 'free', ?)",
		 &p)) != 0 ||
	    (r = st_prepare(st,
		 /* keys wrote the row as `generated` before the token made
		  * the key (docs/keys.md): it becomes the pool's. */
		 "INSERT INTO keys (id, alg, purpose, tenant, state, created) "
		 "VALUES (?, ?, 'pool', '', 'active', ?) ON CONFLICT (id) DO "
		 "UPDATE SET alg = excluded.alg, purpose = 'pool', tenant = "
		 "'', "
		 "state = 'active', created = excluded.created "
		 "WHERE keys.state = 'generated'",
		 &k)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		sqlite3_reset(p);
		sqlite3_reset(k);
		if ((r = st_bind_text(st, p, 1, ids[i], 64)) != 0 ||
		    (r = st_bind_text(st, p, 2, alg, 15)) != 0 ||
		    (r = st_bind_int(st, p, 3, now)) != 0 ||
		    (r = st_bind_text(st, k, 1, ids[i], 64)) != 0 ||
		    (r = st_bind_text(st, k, 2, alg, 15)) != 0 ||
		    (r = st_bind_int(st, k, 3, now)) != 0 ||
		    (r = step_done(st, p, "recording a pool key")) != 0 ||
		    (r = step_done(st, k, "recording a pool key")) != 0)
			goto out;
	}
out:
	st_stmt_done(st, p);
	st_stmt_done(st, k);
	return st_tx_end(st, own, r);
}

int
rf_store_pool_take(struct rf_store *st, const char *alg,
    const struct rf_pool_taker *takers, size_t n, int64_t now, char (*ids)[65],
    size_t *got)
{
	sqlite3_stmt *sel = NULL, *up = NULL, *key = NULL;
	size_t k = 0;
	int r, rc;

	*got = 0;
	if (!rf_store_in_transaction(st))
		return rf_err_set(RF_ERR_STATE,
		    "pool keys are taken inside a transaction (internal)");
	if (n == 0)
		return 0;
	if ((r = st_stmt(st,
		 "SELECT key_id FROM pool WHERE alg = ? AND state = 'free' "
		 "ORDER BY made, rowid LIMIT ?",
		 &sel)) != 0 ||
	    (r = st_stmt(st,
		 "UPDATE pool SET state = 'taken', taken_by = ?, ref = ?, "
		 "taken = ? WHERE key_id = ? AND state = 'free'",
		 &up)) != 0 ||
	    (r = st_stmt(st,
		 "UPDATE keys SET purpose = 'connection', tenant = ? "
		 "WHERE id = ? AND purpose = 'pool'",
		 &key)) != 0 ||
	    (r = st_bind_text(st, sel, 1, alg, 15)) != 0 ||
	    (r = st_bind_int(st, sel, 2, (int64_t)n)) != 0)
		goto out;
	while (k < n && (rc = sqlite3_step(sel)) == SQLITE_ROW)
		st_col_str(sel, 0, ids[k++], 65);
	if (k < n && rc != SQLITE_DONE) {
		r = st_fail(st, rc, "finding free pool keys");
		goto out;
	}
	sqlite3_reset(sel);
	for (*got = 0; *got < k; (*got)++) {
		const struct rf_pool_taker *t = &takers[*got];

		sqlite3_reset(up);
		sqlite3_reset(key);
		if ((r = st_bind_text(st, up, 1, t->taken_by, 199)) != 0 ||
		    (r = st_bind_text(st, up, 2, t->ref, 63)) != 0 ||
		    (r = st_bind_int(st, up, 3, now)) != 0 ||
		    (r = st_bind_text(st, up, 4, ids[*got], 64)) != 0 ||
		    (r = step_done(st, up, "taking a pool key")) != 0)
			goto out;
		/* The write lock is ours, so the row is still free. */
		if (sqlite3_changes(st->db) != 1) {
			r = rf_err_set(RF_ERR_STATE,
			    "pool key %s was taken by another process",
			    ids[*got]);
			goto out;
		}
		if ((r = st_bind_text(st, key, 1, t->tenant, 127)) != 0 ||
		    (r = st_bind_text(st, key, 2, ids[*got], 64)) != 0 ||
		    (r = step_done(st, key, "recording a pool key's tenant")) !=
			0)
			goto out;
		if (sqlite3_changes(st->db) != 1) {
			r = rf_err_set(RF_ERR_STATE,
			    "pool key %s has no record of purpose pool",
			    ids[*got]);
			goto out;
		}
	}
	r = 0;
out:
	if (r != 0)
		*got = 0;
	st_stmt_done(st, sel);
	st_stmt_done(st, up);
	st_stmt_done(st, key);
	return r;
}

int
rf_store_pool_set_state(
    struct rf_store *st, const char *key_id, const char *state)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(
		 st, "UPDATE pool SET state = ? WHERE key_id = ?", &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, state, 15)) != 0 ||
	    (r = st_bind_text(st, s, 2, key_id, 64)) != 0 ||
	    (r = step_done(st, s, "updating a pool key")) != 0)
		goto out;
	if (sqlite3_changes(st->db) != 1)
		r = rf_err_set(RF_ERR_NOT_FOUND, "no pool key %s", key_id);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

#define POOL_COLS "key_id, alg, state, taken_by, ref, made, taken"

static void
pool_row(sqlite3_stmt *s, struct rf_pool_rec *p)
{
	memset(p, 0, sizeof(*p));
	st_col_str(s, 0, p->key_id, sizeof(p->key_id));
	st_col_str(s, 1, p->alg, sizeof(p->alg));
	st_col_str(s, 2, p->state, sizeof(p->state));
	st_col_str(s, 3, p->taken_by, sizeof(p->taken_by));
	st_col_str(s, 4, p->ref, sizeof(p->ref));
	p->made = sqlite3_column_int64(s, 5);
	p->taken = sqlite3_column_int64(s, 6);
}

int
rf_store_pool_get(
    struct rf_store *st, const char *key_id, struct rf_pool_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_stmt(st, "SELECT " POOL_COLS " FROM pool WHERE key_id = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, key_id, 64)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		pool_row(s, out);
	else if (rc == SQLITE_DONE)
		r = rf_err_set(
		    RF_ERR_NOT_FOUND, "key %s is not a pool key", key_id);
	else
		r = st_fail(st, rc, "reading a pool key");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_pool_count(
    struct rf_store *st, const char *alg, struct rf_pool_counts *out)
{
	sqlite3_stmt *s = NULL;
	char state[16];
	int64_t c;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_stmt(st,
		 "SELECT state, count(*), min(made) FROM pool WHERE alg = ? "
		 "GROUP BY state",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, alg, 15)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, state, sizeof(state));
		c = sqlite3_column_int64(s, 1);
		if (strcmp(state, "free") == 0) {
			out->free = c;
			out->oldest_free = sqlite3_column_int64(s, 2);
		} else if (strcmp(state, "taken") == 0)
			out->taken = c;
		else
			out->rejected += c;
	}
	if (rc != SQLITE_DONE)
		r = st_fail(st, rc, "counting pool keys");
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_pool_conn_keys(struct rf_store *st,
    int (*fn)(void *arg, const char *alg, const uint8_t *der, size_t derlen,
	const char *required, int64_t n),
    void *arg)
{
	sqlite3_stmt *s = NULL;
	char alg[16], req[16];
	int r, rc;

	/*
	 * Connections whose key is the token's are counted by its record's
	 * algorithm, a group each; the others (a connector's own key from a
	 * CSR: no key record) one row each, with the certificate to read
	 * the key from.
	 */
	if ((r = st_stmt(st,
		 "SELECT k.alg, e.key_alg, CASE WHEN k.alg IS NULL THEN c.der "
		 "END, count(*) FROM conns n JOIN certs c ON c.serial = "
		 "n.serial LEFT JOIN keys k ON k.id = c.key_id LEFT JOIN "
		 "conn_entra e ON e.tenant = n.tenant AND e.conn = n.name "
		 "GROUP BY k.alg, e.key_alg, CASE WHEN k.alg IS NULL THEN "
		 "c.serial END",
		 &s)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		/* NULL tested before anything converts the column. */
		int has_alg = sqlite3_column_type(s, 0) != SQLITE_NULL;
		int has_req = sqlite3_column_type(s, 1) != SQLITE_NULL;
		const uint8_t *der = sqlite3_column_blob(s, 2);
		size_t derlen = (size_t)sqlite3_column_bytes(s, 2);

		st_col_str(s, 0, alg, sizeof(alg));
		st_col_str(s, 1, req, sizeof(req));
		if ((r = fn(arg, has_alg ? alg : NULL, der, derlen,
			 has_req ? req : NULL, sqlite3_column_int64(s, 3))) !=
		    0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = st_fail(st, rc, "counting connections");
out:
	st_stmt_done(st, s);
	return r;
}

/* The pool keys sql selects (key_id, taken_by, alg; ?1 the ref), each to
 * fn. */
static int
pool_keys_select(struct rf_store *st, const char *sql, const char *ref,
    int (*fn)(void *arg, const char *id, const char *taken_by, const char *alg),
    void *arg, const char *what)
{
	sqlite3_stmt *s = NULL;
	char id[65], by[200], alg[16];
	int r, rc;

	if ((r = st_stmt(st, sql, &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, ref, 63)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, id, sizeof(id));
		st_col_str(s, 1, by, sizeof(by));
		st_col_str(s, 2, alg, sizeof(alg));
		if ((r = fn(arg, id, by, alg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = st_fail(st, rc, what);
out:
	st_stmt_done(st, s);
	return r;
}

int
rf_store_pool_taken_unused(struct rf_store *st, const char *ref,
    int (*fn)(void *arg, const char *id, const char *taken_by, const char *alg),
    void *arg)
{
	return pool_keys_select(st,
	    "SELECT p.key_id, p.taken_by, p.alg FROM pool p WHERE "
	    "p.ref = ?1 AND p.state = 'taken' AND EXISTS (SELECT 1 FROM "
	    "keys t WHERE t.id = p.key_id AND t.state = 'active') AND NOT "
	    "EXISTS (SELECT 1 FROM certs c WHERE c.key_id = p.key_id)",
	    ref, fn, arg, "finding pool keys taken before");
}

int
rf_store_pool_rejected_live(struct rf_store *st, const char *ref,
    int (*fn)(void *arg, const char *id, const char *taken_by, const char *alg),
    void *arg)
{
	return pool_keys_select(st,
	    "SELECT p.key_id, p.taken_by, p.alg FROM pool p WHERE "
	    "p.ref = ?1 AND p.state = 'rejected' AND EXISTS "
	    "(SELECT 1 FROM keys t WHERE t.id = p.key_id AND t.state <> "
	    "'destroyed')",
	    ref, fn, arg, "finding rejected pool keys not destroyed");
}

int
rf_store_pool_foreach(struct rf_store *st, const char *alg,
    int (*fn)(void *arg, const struct rf_pool_rec *p), void *arg)
{
	sqlite3_stmt *s = NULL;
	struct rf_pool_rec p;
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT " POOL_COLS " FROM pool WHERE ?1 IS NULL OR alg = ?1 "
		 "ORDER BY made, rowid",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, alg, 15)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		pool_row(s, &p);
		if ((r = fn(arg, &p)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = st_fail(st, rc, "listing pool keys");
out:
	st_stmt_done(st, s);
	return r;
}
