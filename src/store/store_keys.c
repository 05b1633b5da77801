/*
 * store_keys.c: tenants, key records and certificate authorities.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Run a prepared write to completion inside its own transaction. */
static int
run_write(struct rf_store *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		return st_fail(st, rc, what);
	return 0;
}

int
rf_store_tenant_add(struct rf_store *st, const char *name, int64_t now)
{
	struct rf_tenant t;
	sqlite3_stmt *s = NULL;
	int r, own;

	if (name == NULL || *name == '\0' ||
	    strnlen(name, sizeof(t.name)) >= sizeof(t.name))
		return rf_err_set(RF_ERR_ARG,
		    "tenant name empty or too long "
		    "(at most %zu bytes)",
		    sizeof(t.name) - 1);
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(st,
		 "INSERT INTO tenants (name, created) VALUES (?, ?)", &s)) !=
		0 ||
	    (r = st_bind_text(st, s, 1, name, sizeof(t.name) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 2, now)) != 0)
		goto out;
	if ((r = run_write(st, s, "adding a tenant")) == RF_ERR_EXISTS)
		r = rf_err_set(
		    RF_ERR_EXISTS, "tenant '%s' already exists", name);
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

static void
tenant_row(sqlite3_stmt *s, struct rf_tenant *t)
{
	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(s, 0);
	st_col_str(s, 1, t->name, sizeof(t->name));
	t->created = sqlite3_column_int64(s, 2);
}

int
rf_store_tenant_get(
    struct rf_store *st, const char *name, struct rf_tenant *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_cached(st, &st->tenant_get,
		 "SELECT id, name, created FROM tenants WHERE name = ?")) != 0)
		goto out;
	s = st->tenant_get;
	if ((r = st_bind_text(st, s, 1, name, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		tenant_row(s, out);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "no tenant '%s': add it with "
		    "'ringfence tenant add'",
		    name);
	else
		r = st_fail(st, rc, "reading a tenant");
out:
	st_release(s);
	return r;
}

int
rf_store_tenant_list(struct rf_store *st, struct rf_tenant **out, size_t *n)
{
	sqlite3_stmt *s = NULL;
	struct rf_tenant *v = NULL, *nv;
	size_t cap = 0, cnt = 0;
	int r, rc;

	*out = NULL;
	*n = 0;
	if ((r = st_prepare(st,
		 "SELECT id, name, created FROM tenants ORDER BY name", &s)) !=
	    0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				r = rf_err_set(RF_ERR_ALLOC, "out of memory");
				goto out;
			}
			v = nv;
		}
		tenant_row(s, &v[cnt++]);
	}
	if (rc != SQLITE_DONE) {
		r = st_fail(st, rc, "listing tenants");
		goto out;
	}
	*out = v; /* now owned by the caller */
	*n = cnt;
	v = NULL;
	r = 0;
out:
	free(v);
	sqlite3_finalize(s);
	return r;
}

int
rf_store_key_add(struct rf_store *st, const struct rf_key_rec *k)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if (k->id[0] == '\0' || k->purpose[0] == '\0' || k->state[0] == '\0')
		return rf_err_set(RF_ERR_ARG,
		    "key record without id, purpose "
		    "or state");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	/* A row keys noted at generation ("generated") is completed; any
	 * other row with this id is left alone (RF_ERR_EXISTS). */
	if ((r = st_prepare(st,
		 "INSERT INTO keys (id, alg, purpose, tenant, state, created) "
		 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
		 "alg = excluded.alg, purpose = excluded.purpose, "
		 "tenant = excluded.tenant, state = excluded.state, "
		 "created = excluded.created WHERE keys.state = 'generated'",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, k->id, sizeof(k->id) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 2, k->alg, sizeof(k->alg) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 3, k->purpose, sizeof(k->purpose) - 1)) !=
		0 ||
	    (r = st_bind_text(st, s, 4, k->tenant, sizeof(k->tenant) - 1)) !=
		0 ||
	    (r = st_bind_text(st, s, 5, k->state, sizeof(k->state) - 1)) != 0 ||
	    (r = st_bind_int(st, s, 6, k->created)) != 0)
		goto out;
	if ((r = run_write(st, s, "recording a key")) == 0 &&
	    sqlite3_changes(st->db) == 0)
		r = RF_ERR_EXISTS;
	if (r == RF_ERR_EXISTS)
		r = rf_err_set(
		    RF_ERR_EXISTS, "key %s is already recorded", k->id);
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

#define KEY_COLS                                                               \
	"id, alg, purpose, tenant, state, created, token_id, token, "          \
	"made_for, label"

static int
key_one(struct rf_store *st, sqlite3_stmt *s, struct rf_key_rec *out,
    const char *what, const char *name)
{
	int rc;

	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, out->id, sizeof(out->id));
		st_col_str(s, 1, out->alg, sizeof(out->alg));
		st_col_str(s, 2, out->purpose, sizeof(out->purpose));
		st_col_str(s, 3, out->tenant, sizeof(out->tenant));
		st_col_str(s, 4, out->state, sizeof(out->state));
		out->created = sqlite3_column_int64(s, 5);
		st_col_str(s, 6, out->token_id, sizeof(out->token_id));
		st_col_str(s, 7, out->token, sizeof(out->token));
		st_col_str(s, 8, out->made_for, sizeof(out->made_for));
		st_col_str(s, 9, out->label, sizeof(out->label));
		return 0;
	}
	if (rc == SQLITE_DONE)
		return rf_err_set(RF_ERR_NOT_FOUND, "no %s %s", what, name);
	return st_fail(st, rc, "reading a key record");
}

int
rf_store_key_get(struct rf_store *st, const char *id, struct rf_key_rec *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = st_cached(st, &st->key_get,
		 "SELECT " KEY_COLS " FROM keys WHERE id = ?")) != 0)
		return r;
	if ((r = st_bind_text(st, st->key_get, 1, id, 1024)) == 0)
		r = key_one(st, st->key_get, out, "key with id", id);
	st_release(st->key_get);
	return r;
}

int
rf_store_key_set_state(struct rf_store *st, const char *id, const char *state)
{
	struct rf_key_rec k;
	sqlite3_stmt *s = NULL;
	int r, own;

	if (state == NULL || *state == '\0')
		return rf_err_set(RF_ERR_ARG, "empty key state");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st, "UPDATE keys SET state = ? WHERE id = ?", &s)) !=
		0 ||
	    (r = st_bind_text(st, s, 1, state, sizeof(k.state) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 2, id, 1024)) != 0 ||
	    (r = run_write(st, s, "changing a key's state")) != 0)
		goto out;
	if (sqlite3_changes(st->db) == 0)
		r = rf_err_set(RF_ERR_NOT_FOUND, "no key with id %s", id);
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_key_by_purpose(
    struct rf_store *st, const char *purpose, struct rf_key_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = st_prepare(st,
		 "SELECT " KEY_COLS " FROM keys WHERE purpose = ? AND "
		 "state = 'active' ORDER BY created DESC, rowid DESC LIMIT 1",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, purpose, 1024)) != 0)
		goto out;
	r = key_one(st, s, out, "active key for purpose", purpose);
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_key_note_many(
    struct rf_store *st, const struct rf_key_rec *k, size_t n)
{
	sqlite3_stmt *s = NULL, *d = NULL;
	size_t i;
	int r, own;

	if (n == 0)
		return 0;
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	/* A key made replaces the row that announced it by its CKA_ID. */
	if ((r = st_prepare(st,
		 "DELETE FROM keys WHERE token_id = ? AND token_id <> '' AND "
		 "state = 'generating'",
		 &d)) != 0)
		goto out;
	if ((r = st_prepare(st,
		 "INSERT INTO keys (id, alg, purpose, tenant, state, created, "
		 "token_id, token, made_for, label) VALUES (?, ?, ?, ?, ?, ?, "
		 "?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		 &s)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (k[i].id[0] == '\0' || k[i].purpose[0] == '\0' ||
		    k[i].state[0] == '\0') {
			r = rf_err_set(RF_ERR_ARG,
			    "key record without id, purpose or state");
			goto out;
		}
		if (strcmp(k[i].state, "generating") != 0) {
			sqlite3_reset(d);
			if ((r = st_bind_text(st, d, 1, k[i].token_id,
				 sizeof(k[i].token_id) - 1)) != 0 ||
			    (r = run_write(st, d, "recording a new key")) != 0)
				goto out;
		}
		sqlite3_reset(s);
		if ((r = st_bind_text(
			 st, s, 1, k[i].id, sizeof(k[i].id) - 1)) != 0 ||
		    (r = st_bind_text(
			 st, s, 2, k[i].alg, sizeof(k[i].alg) - 1)) != 0 ||
		    (r = st_bind_text(st, s, 3, k[i].purpose,
			 sizeof(k[i].purpose) - 1)) != 0 ||
		    (r = st_bind_text(st, s, 4, k[i].tenant,
			 sizeof(k[i].tenant) - 1)) != 0 ||
		    (r = st_bind_text(
			 st, s, 5, k[i].state, sizeof(k[i].state) - 1)) != 0 ||
		    (r = st_bind_int(st, s, 6, k[i].created)) != 0 ||
		    (r = st_bind_text(st, s, 7, k[i].token_id,
			 sizeof(k[i].token_id) - 1)) != 0 ||
		    (r = st_bind_text(
			 st, s, 8, k[i].token, sizeof(k[i].token) - 1)) != 0 ||
		    (r = st_bind_text(st, s, 9, k[i].made_for,
			 sizeof(k[i].made_for) - 1)) != 0 ||
		    (r = st_bind_text(
			 st, s, 10, k[i].label, sizeof(k[i].label) - 1)) != 0 ||
		    (r = run_write(st, s, "recording a new key")) != 0)
			goto out;
	}
out:
	sqlite3_finalize(d);
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

int
rf_store_key_forget(struct rf_store *st, const char *id)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(st,
		 "DELETE FROM keys WHERE id = ? AND state IN ('generated', "
		 "'generating')",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, id, 1024)) != 0)
		goto out;
	r = run_write(st, s, "forgetting an undone key");
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

int
rf_store_key_made_for(struct rf_store *st, const char *made_for,
    int (*fn)(void *arg, const struct rf_key_rec *k), void *arg)
{
	struct rf_key_rec k;
	sqlite3_stmt *s = NULL;
	int r;

	if (made_for == NULL || made_for[0] == '\0')
		return rf_err_set(RF_ERR_ARG, "keys made for nothing named");
	if ((r = st_prepare(st,
		 "SELECT " KEY_COLS " FROM keys WHERE made_for = ? AND "
		 "made_for <> '' AND state = 'generated' ORDER BY created, "
		 "rowid",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, made_for, RF_KEY_MADE_FOR_MAX)) != 0)
		goto out;
	for (;;) {
		memset(&k, 0, sizeof(k));
		if ((r = key_one(st, s, &k, "key made for", made_for)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			r = 0;
			break;
		}
		if (r != 0 || (r = fn(arg, &k)) != 0)
			break;
	}
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_key_list(struct rf_store *st, struct rf_key_rec **out, size_t *n)
{
	return rf_store_key_list_state(st, NULL, out, n);
}

int
rf_store_key_list_state(
    struct rf_store *st, const char *state, struct rf_key_rec **out, size_t *n)
{
	sqlite3_stmt *s = NULL;
	struct rf_key_rec *v = NULL, *nv;
	size_t cap = 0, cnt = 0;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = st_prepare(st,
		 state == NULL
		     ? "SELECT " KEY_COLS " FROM keys ORDER BY created, rowid"
		     : "SELECT " KEY_COLS " FROM keys WHERE state = ? ORDER BY "
		       "created, rowid",
		 &s)) != 0)
		return r;
	if (state != NULL && (r = st_bind_text(st, s, 1, state, 32)) != 0) {
		sqlite3_finalize(s);
		return r;
	}
	for (;;) {
		if (cnt == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				r = rf_err_set(RF_ERR_ALLOC, "out of memory");
				goto out;
			}
			v = nv;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		if ((r = key_one(st, s, &v[cnt], "key", "")) ==
		    RF_ERR_NOT_FOUND)
			break;
		if (r != 0)
			goto out;
		cnt++;
	}
	rf_err_clear();
	*out = v; /* now owned by the caller */
	*n = cnt;
	v = NULL;
	r = 0;
out:
	free(v);
	sqlite3_finalize(s);
	return r;
}

/* Add a CA record, or with replace put it in place of one so named. */
static int
ca_write(struct rf_store *st, const struct rf_ca_rec *ca, int replace)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if (ca->name[0] == '\0')
		return rf_err_set(RF_ERR_ARG, "CA record without a name");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(st,
		 replace ? "INSERT OR REPLACE INTO cas (name, key_id, parent, "
			   "serial, not_before, not_after, active, der) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
			 : "INSERT INTO cas (name, key_id, parent, serial, "
			   "not_before, not_after, active, der) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, ca->name, sizeof(ca->name) - 1)) != 0 ||
	    (r = st_bind_text(st, s, 2, ca->key_id, sizeof(ca->key_id) - 1)) !=
		0 ||
	    (r = st_bind_text(st, s, 3, ca->parent, sizeof(ca->parent) - 1)) !=
		0 ||
	    (r = st_bind_text(st, s, 4, ca->serial, sizeof(ca->serial) - 1)) !=
		0 ||
	    (r = st_bind_int(st, s, 5, ca->not_before)) != 0 ||
	    (r = st_bind_int(st, s, 6, ca->not_after)) != 0 ||
	    (r = st_bind_int(st, s, 7, ca->active != 0)) != 0 ||
	    (r = st_bind_blob(st, s, 8, ca->der, ca->derlen)) != 0)
		goto out;
	if ((r = run_write(st, s, "recording a CA")) == RF_ERR_EXISTS)
		r = rf_err_set(
		    RF_ERR_EXISTS, "a CA named '%s' already exists", ca->name);
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

int
rf_store_ca_add(struct rf_store *st, const struct rf_ca_rec *ca)
{
	return ca_write(st, ca, 0);
}

int
rf_store_ca_put(struct rf_store *st, const struct rf_ca_rec *ca)
{
	return ca_write(st, ca, 1);
}

#define CA_COLS                                                                \
	"name, key_id, parent, serial, not_before, not_after, active, der"

static int
ca_row(sqlite3_stmt *s, struct rf_ca_rec *ca)
{
	memset(ca, 0, sizeof(*ca));
	st_col_str(s, 0, ca->name, sizeof(ca->name));
	st_col_str(s, 1, ca->key_id, sizeof(ca->key_id));
	st_col_str(s, 2, ca->parent, sizeof(ca->parent));
	st_col_str(s, 3, ca->serial, sizeof(ca->serial));
	ca->not_before = sqlite3_column_int64(s, 4);
	ca->not_after = sqlite3_column_int64(s, 5);
	ca->active = sqlite3_column_int(s, 6);
	return st_col_dup(s, 7, &ca->der, &ca->derlen);
}

int
rf_store_ca_get(struct rf_store *st, const char *name, struct rf_ca_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_prepare(
		 st, "SELECT " CA_COLS " FROM cas WHERE name = ?", &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, name, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		r = ca_row(s, out);
	else if (rc == SQLITE_DONE)
		r = rf_err_set(RF_ERR_NOT_FOUND, "no CA named '%s'", name);
	else
		r = st_fail(st, rc, "reading a CA");
out:
	sqlite3_finalize(s);
	return r;
}

int
rf_store_ca_list(struct rf_store *st, struct rf_ca_rec **out, size_t *n)
{
	sqlite3_stmt *s = NULL;
	struct rf_ca_rec *v = NULL, *nv;
	size_t cap = 0, cnt = 0;
	int r, rc;

	*out = NULL;
	*n = 0;
	if ((r = st_prepare(
		 st, "SELECT " CA_COLS " FROM cas ORDER BY name", &s)) != 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				r = rf_err_set(RF_ERR_ALLOC, "out of memory");
				goto out;
			}
			v = nv;
		}
		if ((r = ca_row(s, &v[cnt++])) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = st_fail(st, rc, "listing CAs");
		goto out;
	}
	*out = v; /* now owned by the caller */
	*n = cnt;
	v = NULL;
	cnt = 0;
	r = 0;
out:
	rf_ca_rec_free_all(v, cnt);
	sqlite3_finalize(s);
	return r;
}

int
rf_store_ca_set_active(struct rf_store *st, const char *name, int active)
{
	sqlite3_stmt *s = NULL;
	int r, own;

	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_prepare(
		 st, "UPDATE cas SET active = ? WHERE name = ?", &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, active != 0)) != 0 ||
	    (r = st_bind_text(st, s, 2, name, 1024)) != 0 ||
	    (r = run_write(st, s, "changing a CA")) != 0)
		goto out;
	if (sqlite3_changes(st->db) == 0)
		r = rf_err_set(RF_ERR_NOT_FOUND, "no CA named '%s'", name);
out:
	sqlite3_finalize(s);
	return st_tx_end(st, own, r);
}

void
rf_ca_rec_clear(struct rf_ca_rec *ca)
{
	if (ca == NULL)
		return;
	free(ca->der);
	ca->der = NULL;
	ca->derlen = 0;
}

void
rf_ca_rec_free_all(struct rf_ca_rec *cas, size_t n)
{
	size_t i;

	if (cas == NULL)
		return;
	for (i = 0; i < n; i++)
		rf_ca_rec_clear(&cas[i]);
	free(cas);
}
