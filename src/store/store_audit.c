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

/*
 * The audit tree's interior nodes (store.h). A node at (level, index) is
 * the RFC 9162 hash of leaves [index << level, (index + 1) << level).
 */
void
rf_store_set_node_hash(struct rf_store *st, rf_store_node_hash_fn fn)
{
	st->node_hash = fn;
	st->fr_ok = st->fr_pending_ok = 0;
}

void
st_tree_txn_end(struct rf_store *st, int committed)
{
	if (committed && st->fr_pending_ok) {
		st->fr = st->fr_pending;
		st->fr_ok = 1;
	}
	/* After a rollback the committed frontier still holds. */
	st->fr_pending_ok = 0;
}

static int
node_get(struct rf_store *st, unsigned level, uint64_t index, uint8_t out[32])
{
	const void *h;
	int r, rc;

	if ((r = st_cached(st, &st->node_get,
		 "SELECT hash FROM audit_node WHERE level = ? AND idx = ?")) !=
		0 ||
	    (r = st_bind_int(st, st->node_get, 1, level)) != 0 ||
	    (r = st_bind_int(st, st->node_get, 2, (int64_t)index)) != 0)
		goto out;
	rc = sqlite3_step(st->node_get);
	if (rc == SQLITE_DONE) {
		r = RF_ERR_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading an audit tree node");
		goto out;
	}
	h = sqlite3_column_blob(st->node_get, 0);
	if (h == NULL || sqlite3_column_bytes(st->node_get, 0) != 32) {
		r = rf_err_set(RF_ERR_AUDIT_TAMPERED,
		    "audit tree node (%u, %llu) is malformed in %s: run "
		    "'ringfence audit verify'",
		    level, (unsigned long long)index, st->path);
		goto out;
	}
	memcpy(out, h, 32);
	r = 0;
out:
	st_release(st->node_get);
	return r;
}

static int
node_put(
    struct rf_store *st, unsigned level, uint64_t index, const uint8_t h[32])
{
	int r, rc;

	if ((r = st_cached(st, &st->node_ins,
		 "INSERT INTO audit_node (level, idx, hash) VALUES (?, ?, "
		 "?)")) != 0 ||
	    (r = st_bind_int(st, st->node_ins, 1, level)) != 0 ||
	    (r = st_bind_int(st, st->node_ins, 2, (int64_t)index)) != 0 ||
	    (r = st_bind_blob(st, st->node_ins, 3, h, 32)) != 0)
		goto out;
	if ((rc = sqlite3_step(st->node_ins)) != SQLITE_DONE)
		r = st_fail(st, rc, "writing an audit tree node");
out:
	st_release(st->node_ins);
	return r;
}

int
rf_store_read_begin(struct rf_store *st, int *own)
{
	int rc;

	*own = 0;
	if (!sqlite3_get_autocommit(st->db))
		return 0;
	/* Deferred: the read lock is taken by the first query and held. */
	if ((rc = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK)
		return st_fail(st, rc, "starting a read");
	*own = 1;
	return 0;
}

void
rf_store_read_end(struct rf_store *st, int own)
{
	if (!own || sqlite3_get_autocommit(st->db))
		return;
	/* Nothing was written: ending it cannot lose anything. */
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int
rf_store_leaf_hashes(struct rf_store *st, uint64_t lo, size_t max,
    uint8_t (*out)[32], size_t *got)
{
	const void *p;
	int r, rc = SQLITE_DONE;

	*got = 0;
	if (lo > INT64_MAX || max > INT64_MAX - lo)
		return 0;
	if ((r = st_cached(st, &st->leaf_hashes,
		 "SELECT idx, hash FROM audit_leaf WHERE idx >= ? AND idx < ? "
		 "ORDER BY idx")) != 0 ||
	    (r = st_bind_int(st, st->leaf_hashes, 1, (int64_t)lo)) != 0 ||
	    (r = st_bind_int(st, st->leaf_hashes, 2, (int64_t)(lo + max))) != 0)
		goto out;
	while ((rc = sqlite3_step(st->leaf_hashes)) == SQLITE_ROW) {
		p = sqlite3_column_blob(st->leaf_hashes, 1);
		/* A gap or a malformed hash ends the run. */
		if ((uint64_t)sqlite3_column_int64(st->leaf_hashes, 0) !=
			lo + *got ||
		    p == NULL || sqlite3_column_bytes(st->leaf_hashes, 1) != 32)
			break;
		memcpy(out[(*got)++], p, 32);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = st_fail(st, rc, "reading audit leaf hashes");
		goto out;
	}
	r = 0;
out:
	st_release(st->leaf_hashes);
	return r;
}

/* The root of the 2^level (<= 2^RF_STORE_NODE_LEVEL) leaves from lo,
 * from their stored hashes, read in one query. */
static int
leaves_root(struct rf_store *st, uint64_t lo, unsigned level, uint8_t out[32])
{
	uint8_t h[1 << RF_STORE_NODE_LEVEL][32];
	size_t cnt = (size_t)1 << level, got = 0, i;
	int r;

	if ((r = rf_store_leaf_hashes(st, lo, cnt, h, &got)) != 0)
		return r;
	if (got != cnt)
		return rf_err_set(RF_ERR_NOT_FOUND,
		    "audit leaf %llu is not in the record",
		    (unsigned long long)(lo + got));
	for (; cnt > 1; cnt /= 2)
		for (i = 0; i < cnt / 2; i++)
			st->node_hash(h[2 * i], h[2 * i + 1], h[i]);
	memcpy(out, h[0], 32);
	return 0;
}

/*
 * A subtree's hash: its stored node, or computed from its leaves (low
 * levels, where no node is stored) or, with !strict, from its children
 * when the node is missing (a record appended without node hashes).
 */
static int
subtree(struct rf_store *st, unsigned level, uint64_t index, int strict,
    uint8_t out[32])
{
	uint8_t l[32], rr[32];
	int r;

	if (st->node_hash == NULL)
		return rf_err_set(RF_ERR_STATE, "no audit node hash set");
	if (level > 62 || index > ((uint64_t)INT64_MAX >> level) - 1)
		return rf_err_set(RF_ERR_NOT_FOUND, "beyond the audit record");
	if (level >= RF_STORE_NODE_LEVEL) {
		r = node_get(st, level, index, out);
		if (r != RF_ERR_NOT_FOUND || strict)
			return r;
		if (level > RF_STORE_NODE_LEVEL) {
			if ((r = subtree(st, level - 1, 2 * index, 0, l)) !=
				0 ||
			    (r = subtree(
				 st, level - 1, 2 * index + 1, 0, rr)) != 0)
				return r;
			st->node_hash(l, rr, out);
			return 0;
		}
	}
	return leaves_root(st, index << level, level, out);
}

int
rf_store_subtree_hash(
    struct rf_store *st, unsigned level, uint64_t index, uint8_t out[32])
{
	return subtree(st, level, index, 0, out);
}

/* The frontier of the first n leaves, from stored nodes only (strict). */
static int
frontier_load(struct rf_store *st, uint64_t n, struct st_frontier *f)
{
	int k, r;

	memset(f, 0, sizeof(*f));
	f->n = n;
	for (k = 63; k >= 0; k--) {
		if (((n >> k) & 1) == 0)
			continue;
		if ((r = subtree(st, (unsigned)k, (n >> k) - 1, 1,
			 f->hash[f->top])) != 0)
			return r;
		f->level[f->top++] = (uint8_t)k;
	}
	return 0;
}

/* Add one leaf; store every subtree it completes at a stored level. */
static int
frontier_add(struct rf_store *st, struct st_frontier *f, const uint8_t h[32])
{
	unsigned lv;
	int r;

	memcpy(f->hash[f->top], h, 32);
	f->level[f->top++] = 0;
	f->n++;
	while (f->top >= 2 && f->level[f->top - 1] == f->level[f->top - 2]) {
		st->node_hash(f->hash[f->top - 2], f->hash[f->top - 1],
		    f->hash[f->top - 2]);
		f->top--;
		lv = ++f->level[f->top - 1];
		if (lv >= RF_STORE_NODE_LEVEL &&
		    (r = node_put(
			 st, lv, (f->n >> lv) - 1, f->hash[f->top - 1])) != 0)
			return r;
	}
	return 0;
}

/*
 * The frontier an append at leaf `next` extends: the one kept from this
 * handle's last append when it still describes the record, else loaded.
 * *tree is 0 (write no nodes) without a hash function or when a node below
 * is missing: rf_store_node_fill writes them later.
 */
static int
tree_start(struct rf_store *st, uint64_t next, struct st_frontier *f, int *tree)
{
	int r;

	*tree = 0;
	if (st->node_hash == NULL)
		return 0;
	if (st->fr_pending_ok && st->fr_pending.n == next)
		*f = st->fr_pending;
	else if (st->fr_ok && st->fr.n == next)
		*f = st->fr;
	else if ((r = frontier_load(st, next, f)) != 0) {
		if (r != RF_ERR_NOT_FOUND)
			return r;
		rf_err_clear();
		return 0;
	}
	*tree = 1;
	return 0;
}

/* Keep the frontier after a successful append: committed, or pending in
 * the caller's transaction until rf_store_commit. */
static void
tree_keep(struct rf_store *st, int own, const struct st_frontier *f)
{
	if (own) {
		st->fr = *f;
		st->fr_ok = 1;
	} else {
		st->fr_pending = *f;
		st->fr_pending_ok = 1;
	}
}

/* Leaves covered by level-RF_STORE_NODE_LEVEL nodes (dense from 0). */
static int
node_cover(struct rf_store *st, uint64_t *covered)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*covered = 0;
	if ((r = st_prepare(st,
		 "SELECT coalesce(max(idx) + 1, 0) FROM audit_node WHERE "
		 "level = ?",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, RF_STORE_NODE_LEVEL)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "reading audit tree nodes");
		goto out;
	}
	*covered = (uint64_t)sqlite3_column_int64(s, 0) << RF_STORE_NODE_LEVEL;
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

static int
fill_from(struct rf_store *st, struct st_frontier *f, uint64_t n)
{
	sqlite3_stmt *s = NULL;
	const void *h;
	int r, rc;

	if ((r = st_prepare(st,
		 "SELECT idx, hash FROM audit_leaf WHERE idx >= ? AND idx < ? "
		 "ORDER BY idx",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, (int64_t)f->n)) != 0 ||
	    (r = st_bind_int(st, s, 2, (int64_t)n)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		h = sqlite3_column_blob(s, 1);
		/* A gap or a malformed hash: stop; verify names it. */
		if ((uint64_t)sqlite3_column_int64(s, 0) != f->n || h == NULL ||
		    sqlite3_column_bytes(s, 1) != 32)
			break;
		if ((r = frontier_add(st, f, h)) != 0)
			goto out;
	}
	r = rc == SQLITE_ROW || rc == SQLITE_DONE
	    ? 0
	    : st_fail(st, rc, "reading audit leaf hashes");
out:
	sqlite3_finalize(s);
	return r;
}

/*
 * Once per record (at migration: the nodes of an existing record), and
 * after appends made without a node hash function.
 */
int
rf_store_node_fill(struct rf_store *st)
{
	struct st_frontier f;
	uint64_t n = 0, covered = 0;
	int r, own;

	memset(&f, 0, sizeof(f));
	if (st->node_hash == NULL)
		return rf_err_set(RF_ERR_STATE, "no audit node hash set");
	/* The common case, read-only: nothing is missing. */
	if ((r = leaf_next(st, &n)) != 0 || (r = node_cover(st, &covered)) != 0)
		return r;
	if (n >> RF_STORE_NODE_LEVEL <= covered >> RF_STORE_NODE_LEVEL)
		return 0;
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = leaf_next(st, &n)) != 0 || (r = node_cover(st, &covered)) != 0)
		goto out;
	if ((r = frontier_load(st, covered, &f)) == RF_ERR_NOT_FOUND) {
		/* Not dense after all: start again from leaf 0. */
		rf_err_clear();
		if ((r = st_exec(st, "DELETE FROM audit_node")) != 0)
			goto out;
		memset(&f, 0, sizeof(f));
	} else if (r != 0)
		goto out;
	r = fill_from(st, &f, n);
out:
	if ((r = st_tx_end(st, own, r)) == 0)
		tree_keep(st, own, &f);
	return r;
}

int
rf_store_leaf_append(
    struct rf_store *st, struct rf_leaf_rec *leaves, size_t n, uint64_t *first)
{
	struct st_frontier fr;
	sqlite3_stmt *s;
	uint64_t next = 0;
	size_t i;
	int r, rc, own, tree = 0;

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
	if ((r = tree_start(st, next, &fr, &tree)) != 0)
		goto out;
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
		if (tree && (r = frontier_add(st, &fr, l->hash)) != 0)
			goto out;
	}
	r = 0;
out:
	if (st->leaf_ins != NULL) {
		sqlite3_reset(st->leaf_ins);
		sqlite3_clear_bindings(st->leaf_ins);
	}
	if ((r = st_tx_end(st, own, r)) == 0 && tree)
		tree_keep(st, own, &fr);
	return r;
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
 * Matches in time order (then index). One index serves both filters:
 * (tenant, key_id, time) (migration 12). A leaf that names a tenant's key
 * is then filed with the tenant's other leaves, which a contain writes
 * together, rather than at a random place in a key-ordered index: that
 * index was a third of what a 36,000-tenant contain wrote to the store.
 * A key alone is found on each tenant's part of the index in turn (a
 * skip scan: one seek per tenant of the record, about 0.2 s at 36,000)
 * and on the leaves without a tenant; a tenant alone by its prefix, every
 * leaf of the tenant read and sorted by time (a window or a limit no
 * longer stops the read early: a tenant's leaves are a few thousand a
 * year per connection); with neither, the (time) index.
 */
int
rf_store_leaf_search(struct rf_store *st, const char *key_id,
    const char *tenant, int64_t since, int64_t until, size_t limit,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg)
{
	sqlite3_stmt *s = NULL;
	char sql[1024], when[64];
	int r;

	snprintf(when, sizeof(when), "%s%s",
	    since != 0 ? " AND time >= ?3" : "",
	    until != 0 ? " AND time <= ?4" : "");
	if (key_id != NULL && tenant == NULL)
		snprintf(sql, sizeof(sql),
		    "WITH RECURSIVE t(x) AS (SELECT (SELECT min(tenant) FROM "
		    "audit_leaf) UNION ALL SELECT (SELECT min(tenant) FROM "
		    "audit_leaf WHERE tenant > t.x) FROM t WHERE t.x IS NOT "
		    "NULL) "
		    "SELECT " LEAF_COLS " FROM audit_leaf WHERE tenant IN "
		    "(SELECT x FROM t WHERE x IS NOT NULL) AND key_id = ?1%s "
		    "UNION ALL SELECT " LEAF_COLS " FROM audit_leaf WHERE "
		    "tenant IS NULL AND key_id = ?1%s "
		    "ORDER BY time, idx LIMIT ?5",
		    when, when);
	else
		snprintf(sql, sizeof(sql),
		    "SELECT " LEAF_COLS " FROM audit_leaf WHERE 1%s%s%s "
		    "ORDER BY time, idx LIMIT ?5",
		    tenant != NULL ? " AND tenant = ?2" : "",
		    key_id != NULL ? " AND key_id = ?1" : "", when);
	if ((r = st_prepare(st, sql, &s)) != 0)
		goto out;
	if ((key_id != NULL &&
		(r = st_bind_text(st, s, 1, key_id, ST_TEXT_MAX)) != 0) ||
	    (tenant != NULL &&
		(r = st_bind_text(st, s, 2, tenant, ST_TEXT_MAX)) != 0) ||
	    (since != 0 && (r = st_bind_int(st, s, 3, since)) != 0) ||
	    (until != 0 && (r = st_bind_int(st, s, 4, until)) != 0) ||
	    (r = st_bind_int(st, s, 5,
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
