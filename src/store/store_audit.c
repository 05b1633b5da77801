/*
 * store_audit.c: audit leaves and signed tree heads.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

#define ST_TEXT_MAX 256

static int
leaf_next(struct rf_store *st, uint64_t *next)
{
	int r, rc;

	if ((r = st_cached(st, &st->leaf_max,
		 "SELECT coalesce(max(idx) + 1, 0) FROM audit_leaf")) != 0)
		return r;
	if ((rc = sqlite3_step(st->leaf_max)) != SQLITE_ROW) {
		r = st_fail(st, rc, "counting audit leaves");
		goto out;
	}
	*next = (uint64_t)sqlite3_column_int64(st->leaf_max, 0);
	r = 0;
out:
	sqlite3_reset(st->leaf_max);
	return r;
}

int
rf_store_leaf_append(
    struct rf_store *st, struct rf_leaf_rec *leaves, size_t n, uint64_t *first)
{
	sqlite3_stmt *s;
	uint64_t next = 0;
	size_t i;
	int r, rc, own;

	if (n > 0 && leaves == NULL)
		return rf_err_set(RF_ERR_ARG, "no leaves to append");
	for (i = 0; i < n; i++) {
		if (leaves[i].type == NULL || *leaves[i].type == '\0')
			return rf_err_set(
			    RF_ERR_ARG, "audit leaf without type");
	}
	/* BEGIN IMMEDIATE: the count and the inserts see no other writer. */
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = leaf_next(st, &next)) != 0)
		goto out;
	if (first != NULL)
		*first = next;
	if ((r = st_cached(st, &st->leaf_ins,
		 "INSERT INTO audit_leaf (idx, time, type, key_id, tenant, "
		 "data, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")) != 0)
		goto out;
	s = st->leaf_ins;
	for (i = 0; i < n; i++) {
		struct rf_leaf_rec *l = &leaves[i];

		if (next + i > INT64_MAX) {
			r = rf_err_set(RF_ERR_TOO_LARGE, "audit log too large");
			goto out;
		}
		l->index = next + i;
		sqlite3_reset(s);
		if ((r = st_bind_int(st, s, 1, (int64_t)l->index)) != 0 ||
		    (r = st_bind_int(st, s, 2, l->time)) != 0 ||
		    (r = st_bind_text(st, s, 3, l->type, ST_TEXT_MAX)) != 0 ||
		    (r = st_bind_text(st, s, 4, l->key_id, ST_TEXT_MAX)) != 0 ||
		    (r = st_bind_text(st, s, 5, l->tenant, ST_TEXT_MAX)) != 0 ||
		    (r = st_bind_blob(st, s, 6, l->data, l->len)) != 0 ||
		    (r = st_bind_blob(st, s, 7, l->hash, sizeof(l->hash))) != 0)
			goto out;
		if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
			r = st_fail(st, rc, "appending an audit leaf");
			goto out;
		}
	}
	r = 0;
out:
	if (st->leaf_ins != NULL) {
		sqlite3_reset(st->leaf_ins);
		sqlite3_clear_bindings(st->leaf_ins);
	}
	return st_tx_end(st, own, r);
}

int
rf_store_leaf_count(struct rf_store *st, uint64_t *n)
{
	*n = 0;
	return leaf_next(st, n);
}

static int
leaf_rows(struct rf_store *st, sqlite3_stmt *s,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	struct rf_leaf_rec l;
	const void *h;
	int rc, r;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&l, 0, sizeof(l));
		l.index = (uint64_t)sqlite3_column_int64(s, 0);
		l.time = sqlite3_column_int64(s, 1);
		l.type = (const char *)sqlite3_column_text(s, 2);
		l.key_id = (const char *)sqlite3_column_text(s, 3);
		l.tenant = (const char *)sqlite3_column_text(s, 4);
		l.data = sqlite3_column_blob(s, 5);
		l.len = (size_t)sqlite3_column_bytes(s, 5);
		h = sqlite3_column_blob(s, 6);
		if (h == NULL || sqlite3_column_bytes(s, 6) != 32)
			return rf_err_set(RF_ERR_AUDIT_TAMPERED,
			    "audit leaf %llu has a malformed hash in %s",
			    (unsigned long long)l.index, st->path);
		memcpy(l.hash, h, sizeof(l.hash));
		if (l.type == NULL)
			l.type = "";
		if ((r = fn(arg, &l)) != 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return st_fail(st, rc, "reading audit leaves");
	return 0;
}

#define LEAF_COLS "idx, time, type, key_id, tenant, data, hash"

int
rf_store_leaf_foreach(struct rf_store *st, uint64_t from, uint64_t to,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	sqlite3_stmt *s = NULL;
	int r;

	if (from > INT64_MAX)
		return 0;
	if (to > INT64_MAX)
		to = INT64_MAX;
	if (from >= to)
		return 0;
	if ((r = st_prepare(st,
		 "SELECT " LEAF_COLS " FROM audit_leaf WHERE idx >= ? AND "
		 "idx < ? ORDER BY idx",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, (int64_t)from)) != 0 ||
	    (r = st_bind_int(st, s, 2, (int64_t)to)) != 0)
		goto out;
	r = leaf_rows(st, s, fn, arg);
out:
	sqlite3_finalize(s);
	return r;
}

/*
 * Matches in time order (then index). Each filter uses its index:
 * (key_id, time), (tenant, time) or (time).
 */
int
rf_store_leaf_search(struct rf_store *st, const char *key_id,
    const char *tenant, int64_t since, int64_t until, size_t limit,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	sqlite3_stmt *s = NULL;
	char sql[512];
	int r, i = 1;

	snprintf(sql, sizeof(sql),
	    "SELECT " LEAF_COLS " FROM audit_leaf WHERE 1%s%s%s%s "
	    "ORDER BY time, idx LIMIT ?",
	    key_id != NULL ? " AND key_id = ?" : "",
	    tenant != NULL ? " AND tenant = ?" : "",
	    since != 0 ? " AND time >= ?" : "",
	    until != 0 ? " AND time <= ?" : "");
	if ((r = st_prepare(st, sql, &s)) != 0)
		goto out;
	if ((key_id != NULL &&
		(r = st_bind_text(st, s, i++, key_id, ST_TEXT_MAX)) != 0) ||
	    (tenant != NULL &&
		(r = st_bind_text(st, s, i++, tenant, ST_TEXT_MAX)) != 0) ||
	    (since != 0 && (r = st_bind_int(st, s, i++, since)) != 0) ||
	    (until != 0 && (r = st_bind_int(st, s, i++, until)) != 0) ||
	    (r = st_bind_int(st, s, i,
		 limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit)) != 0)
		goto out;
	r = leaf_rows(st, s, fn, arg);
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_sth_add(struct rf_store *st, const struct rf_sth_rec *sth)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own;

	if (sth->size > INT64_MAX)
		return rf_err_set(RF_ERR_ARG, "tree size out of range");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(st,
		 "INSERT INTO audit_sth (size, time, root, key_id, sig) "
		 "VALUES (?, ?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, (int64_t)sth->size)) != 0 ||
	    (r = st_bind_int(st, s, 2, sth->time)) != 0 ||
	    (r = st_bind_blob(st, s, 3, sth->root, sizeof(sth->root))) != 0 ||
	    (r = st_bind_text(st, s, 4, sth->key_id, 64)) != 0 ||
	    (r = st_bind_blob(st, s, 5, sth->sig, sth->siglen)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "storing a tree head");
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

static int
sth_rows(struct rf_store *st, const char *sql,
    int (*fn)(void *arg, const struct rf_sth_rec *s), void *arg)
{
	sqlite3_stmt *s = NULL;
	struct rf_sth_rec h;
	const void *root;
	int r, rc;

	if ((r = st_prepare(st, sql, &s)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&h, 0, sizeof(h));
		h.size = (uint64_t)sqlite3_column_int64(s, 0);
		h.time = sqlite3_column_int64(s, 1);
		root = sqlite3_column_blob(s, 2);
		if (root == NULL || sqlite3_column_bytes(s, 2) != 32) {
			r = rf_err_set(RF_ERR_AUDIT_TAMPERED,
			    "tree head of size %llu has a malformed root",
			    (unsigned long long)h.size);
			goto out;
		}
		memcpy(h.root, root, sizeof(h.root));
		st_col_str(s, 3, h.key_id, sizeof(h.key_id));
		h.sig = sqlite3_column_blob(s, 4);
		h.siglen = (size_t)sqlite3_column_bytes(s, 4);
		if ((r = fn(arg, &h)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "reading tree heads");
out:
	sqlite3_finalize(s);
	return r;
}

#define STH_COLS "size, time, root, key_id, sig"

int
rf_store_sth_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_sth_rec *s), void *arg)
{
	return sth_rows(st,
	    "SELECT " STH_COLS " FROM audit_sth ORDER BY size, time, id", fn,
	    arg);
}

/* One row through the (size, time) index, whatever the number of heads. */
int
rf_store_sth_latest(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_sth_rec *s), void *arg)
{
	return sth_rows(st,
	    "SELECT " STH_COLS " FROM audit_sth ORDER BY size DESC, "
	    "time DESC, id DESC LIMIT 1",
	    fn, arg);
}
