/*
 * store_certs.c: issued certificates, revocation, CRL state and pre-signed
 * OCSP responses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyident.h"
#include "store/store_int.h"

/* RFC 5280 section 5.3.1: CRLReason keyCompromise (1). */
#define REASON_KEY_COMPROMISE 1

/*
 * The key's identity is claimed for the certificate's tenant connection in
 * the transaction that records it (store_keyident.c).
 */
int
rf_store_cert_add(struct rf_store *st, const struct rf_cert_rec *c)
{
	sqlite3_stmt *s;
	char ident[RF_KEY_IDENT_LEN + 1] = "";
	int r, rc, own;

	if (c->serial[0] == '\0' || c->issuer[0] == '\0')
		return rf_err_set(RF_ERR_ARG,
		    "certificate record without "
		    "serial or issuer");
	if (c->key_ident[0] != '\0')
		snprintf(ident, sizeof(ident), "%s", c->key_ident);
	else if (c->der != NULL &&
	    rf_key_ident_cert(c->der, c->derlen, ident) != 0)
		rf_err_clear(); /* not a key with an identity: no claim */
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_key_admit(
		 st, ident, c->tenant, c->conn, c->serial, c->issued, 1)) != 0)
		goto out;
	if ((r = st_cached(st, &st->cert_ins,
		 "INSERT INTO certs (serial, issuer, tenant, profile, key_id, "
		 "subject, x5t, x5t256, not_before, not_after, issued, "
		 "revoked, revoked_at, reason, der, key_ident) VALUES (?, ?, "
		 "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) != 0)
		goto out;
	s = st->cert_ins;
#define T(i, f) st_bind_text(st, s, i, c->f, sizeof(c->f) - 1)
	if ((r = T(1, serial)) != 0 || (r = T(2, issuer)) != 0 ||
	    (r = T(3, tenant)) != 0 || (r = T(4, profile)) != 0 ||
	    (r = T(5, key_id)) != 0 || (r = T(6, subject)) != 0 ||
	    (r = T(7, x5t)) != 0 || (r = T(8, x5t256)) != 0 ||
	    (r = st_bind_int(st, s, 9, c->not_before)) != 0 ||
	    (r = st_bind_int(st, s, 10, c->not_after)) != 0 ||
	    (r = st_bind_int(st, s, 11, c->issued)) != 0 ||
	    (r = st_bind_int(st, s, 12, c->revoked != 0)) != 0 ||
	    (r = st_bind_int(st, s, 13, c->revoked ? c->revoked_at : 0)) != 0 ||
	    (r = st_bind_int(st, s, 14, c->revoked ? c->reason : -1)) != 0 ||
	    (r = st_bind_blob(st, s, 15, c->der, c->derlen)) != 0 ||
	    (r = st_bind_text(st, s, 16, ident, RF_KEY_IDENT_LEN)) != 0)
		goto out;
#undef T
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "recording a certificate");
		if (r == RF_ERR_EXISTS)
			r = rf_err_set(RF_ERR_EXISTS,
			    "certificate serial %s is already used", c->serial);
		goto out;
	}
	r = 0;
out:
	st_release(st->cert_ins);
	return st_tx_end(st, own, r);
}

#define CERT_COLS                                                              \
	"serial, issuer, tenant, profile, key_id, subject, x5t, x5t256, "      \
	"not_before, not_after, issued, revoked, revoked_at, reason"

/* Fill c from a row of CERT_COLS (then der at column 14 if with_der). */
static int
cert_row(sqlite3_stmt *s, struct rf_cert_rec *c, int with_der)
{
	memset(c, 0, sizeof(*c));
	st_col_str(s, 0, c->serial, sizeof(c->serial));
	st_col_str(s, 1, c->issuer, sizeof(c->issuer));
	st_col_str(s, 2, c->tenant, sizeof(c->tenant));
	st_col_str(s, 3, c->profile, sizeof(c->profile));
	st_col_str(s, 4, c->key_id, sizeof(c->key_id));
	st_col_str(s, 5, c->subject, sizeof(c->subject));
	st_col_str(s, 6, c->x5t, sizeof(c->x5t));
	st_col_str(s, 7, c->x5t256, sizeof(c->x5t256));
	c->not_before = sqlite3_column_int64(s, 8);
	c->not_after = sqlite3_column_int64(s, 9);
	c->issued = sqlite3_column_int64(s, 10);
	c->revoked = sqlite3_column_int(s, 11);
	c->revoked_at = sqlite3_column_int64(s, 12);
	c->reason = sqlite3_column_int(s, 13);
	if (!with_der)
		return 0;
	return st_col_dup(s, 14, &c->der, &c->derlen);
}

int
rf_store_cert_get(
    struct rf_store *st, const char *serial, struct rf_cert_rec *out)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = st_cached(st, &st->cert_get,
		 "SELECT " CERT_COLS ", der FROM certs WHERE serial = ?")) != 0)
		goto out;
	s = st->cert_get;
	if ((r = st_bind_text(st, s, 1, serial, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		r = cert_row(s, out, 1);
	else if (rc == SQLITE_DONE)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "no certificate with serial "
		    "%s",
		    serial);
	else
		r = st_fail(st, rc, "reading a certificate");
out:
	st_release(s);
	return r;
}

void
rf_cert_rec_clear(struct rf_cert_rec *c)
{
	if (c == NULL)
		return;
	free(c->der);
	c->der = NULL;
	c->derlen = 0;
}

int
rf_store_cert_key_other_tenant(struct rf_store *st, const char *key_id,
    const char *tenant, char *other, size_t otherlen)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if (otherlen > 0)
		*other = '\0';
	if ((r = st_cached(st, &st->cert_other,
		 "SELECT tenant FROM certs WHERE key_id = ? AND tenant <> ? "
		 "ORDER BY issued LIMIT 1")) != 0)
		goto out;
	s = st->cert_other;
	if ((r = st_bind_text(st, s, 1, key_id, 1024)) != 0 ||
	    (r = st_bind_text(st, s, 2, tenant != NULL ? tenant : "", 1024)) !=
		0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st_col_str(s, 0, other, otherlen);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = RF_ERR_NOT_FOUND;
	else
		r = st_fail(st, rc, "looking up a key's tenants");
out:
	st_release(s);
	return r;
}

int
rf_store_cert_foreach(struct rf_store *st, const struct rf_cert_filter *f,
    int (*fn)(void *arg, const struct rf_cert_rec *c), void *arg)
{
	static const struct rf_cert_filter none;
	struct rf_cert_rec c;
	sqlite3_stmt *s = NULL;
	char sql[512];
	int r, rc, i = 1;

	memset(&c, 0, sizeof(c));
	if (f == NULL)
		f = &none;
	/* keyCompromise asks this once per key revoked: prepared once. */
	if (f->same_key != NULL && f->tenant == NULL && f->key_id == NULL &&
	    f->issuer == NULL && !f->only_revoked && f->unexpired_at == 0 &&
	    !f->with_der) {
		if ((r = st_stmt(st,
			 "SELECT " CERT_COLS " FROM certs WHERE (key_id = ?100 "
			 "OR key_ident IN (SELECT key_ident FROM certs WHERE "
			 "key_id = ?100 AND key_ident <> '')) ORDER BY serial",
			 &s)) != 0)
			goto out;
		if ((r = st_bind_text(st, s, 100, f->same_key, 1024)) != 0)
			goto out;
		goto rows;
	}
	snprintf(sql, sizeof(sql),
	    "SELECT " CERT_COLS "%s FROM certs WHERE 1%s%s%s%s%s%s "
	    "ORDER BY serial",
	    f->with_der ? ", der" : "",
	    f->tenant != NULL ? " AND tenant = ?" : "",
	    f->key_id != NULL ? " AND key_id = ?" : "",
	    f->issuer != NULL ? " AND issuer = ?" : "",
	    f->only_revoked ? " AND revoked = 1" : "",
	    f->unexpired_at != 0 ? " AND not_after >= ?" : "",
	    f->same_key != NULL
		? " AND (key_id = ?100 OR key_ident IN (SELECT key_ident "
		  "FROM certs WHERE key_id = ?100 AND key_ident <> ''))"
		: "");
	if ((r = st_prepare(st, sql, &s)) != 0)
		goto out;
	if ((f->tenant != NULL &&
		(r = st_bind_text(st, s, i++, f->tenant, 1024)) != 0) ||
	    (f->key_id != NULL &&
		(r = st_bind_text(st, s, i++, f->key_id, 1024)) != 0) ||
	    (f->issuer != NULL &&
		(r = st_bind_text(st, s, i++, f->issuer, 1024)) != 0) ||
	    (f->unexpired_at != 0 &&
		(r = st_bind_int(st, s, i++, f->unexpired_at)) != 0) ||
	    (f->same_key != NULL &&
		(r = st_bind_text(st, s, 100, f->same_key, 1024)) != 0))
		goto out;
rows:
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((r = cert_row(s, &c, f->with_der)) != 0)
			goto out;
		r = fn(arg, &c);
		rf_cert_rec_clear(&c);
		if (r != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "listing certificates");
out:
	rf_cert_rec_clear(&c);
	st_stmt_done(st, s);
	return r;
}

/*
 * RFC 5280 section 5.3.1: once revoked, a certificate stays revoked; the
 * only reason change allowed is to keyCompromise (as a CA learns more).
 * revocationDate (section 5.1.2.6) keeps the first revocation time.
 */
int
rf_store_cert_revoke(struct rf_store *st, const char *serial, int64_t at,
    int reason, int *changed)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own, revoked, cur;

	if (changed != NULL)
		*changed = 0;
	if (reason < -1 || reason > 10 || reason == 7)
		return rf_err_set(RF_ERR_ARG, "invalid CRL reason %d", reason);
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "SELECT revoked, reason FROM certs WHERE serial = ?", &s)) !=
		0 ||
	    (r = st_bind_text(st, s, 1, serial, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = rf_err_set(
		    RF_ERR_NOT_FOUND, "no certificate with serial %s", serial);
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading a certificate");
		goto out;
	}
	revoked = sqlite3_column_int(s, 0);
	cur = sqlite3_column_int(s, 1);
	st_stmt_done(st, s);
	s = NULL;
	if (!revoked) {
		r = st_stmt(st,
		    "UPDATE certs SET revoked = 1, revoked_at = ?, reason = ? "
		    "WHERE serial = ?",
		    &s);
		if (r != 0 || (r = st_bind_int(st, s, 1, at)) != 0 ||
		    (r = st_bind_int(st, s, 2, reason)) != 0 ||
		    (r = st_bind_text(st, s, 3, serial, 1024)) != 0)
			goto out;
	} else if (reason == REASON_KEY_COMPROMISE &&
	    cur != REASON_KEY_COMPROMISE) {
		r = st_stmt(
		    st, "UPDATE certs SET reason = ? WHERE serial = ?", &s);
		if (r != 0 || (r = st_bind_int(st, s, 1, reason)) != 0 ||
		    (r = st_bind_text(st, s, 2, serial, 1024)) != 0)
			goto out;
	} else {
		r = 0; /* already revoked; nothing to change */
		goto out;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "revoking a certificate");
		goto out;
	}
	/* The key never comes back: listed in the same transaction. */
	if (reason == REASON_KEY_COMPROMISE &&
	    (r = st_compromised_add(st, serial, 0, at)) != 0)
		goto out;
	if (changed != NULL)
		*changed = 1;
	r = 0;
out:
	st_stmt_done(st, s);
	r = st_tx_end(st, own, r);
	if (r != 0 && changed != NULL)
		*changed = 0;
	return r;
}

/*
 * RFC 5280 section 5.2.3: the CRL number is monotonically increasing. It
 * is kept in crl_counter, not derived from crl_state, so that it survives
 * the loss or replacement of the stored CRL.
 */
int
rf_store_crl_next_number(
    struct rf_store *st, const char *issuer, uint64_t *number)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own;

	*number = 0;
	if (issuer == NULL || *issuer == '\0')
		return rf_err_set(RF_ERR_ARG, "CRL number without an issuer");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_stmt(st,
		 "INSERT INTO crl_counter (issuer, last) VALUES (?, 1) "
		 "ON CONFLICT (issuer) DO UPDATE SET last = last + 1 "
		 "RETURNING last",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, issuer, 63)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = st_fail(st, rc, "advancing the CRL number");
		goto out;
	}
	*number = (uint64_t)sqlite3_column_int64(s, 0);
	/* Run RETURNING to completion so that the write is done. */
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "advancing the CRL number");
		goto out;
	}
	r = 0;
out:
	st_stmt_done(st, s);
	r = st_tx_end(st, own, r);
	if (r != 0)
		*number = 0;
	return r;
}

int
rf_store_crl_put(struct rf_store *st, const char *issuer, uint64_t number,
    int64_t this_update, int64_t next_update, const uint8_t *der, size_t len)
{
	sqlite3_stmt *s = NULL;
	int r, rc, own;

	if (issuer == NULL || *issuer == '\0' || der == NULL || len == 0)
		return rf_err_set(RF_ERR_ARG, "CRL without issuer or content");
	if (number > INT64_MAX)
		return rf_err_set(RF_ERR_ARG, "CRL number out of range");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	/* Refuse to replace a CRL by one with a lower number. */
	if ((r = st_stmt(st, "SELECT number FROM crl_state WHERE issuer = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, issuer, 63)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    (uint64_t)sqlite3_column_int64(s, 0) > number) {
		r = rf_err_set(RF_ERR_STATE,
		    "CRL number %llu for %s is lower than the stored %lld: "
		    "take a new number with the CRL number counter",
		    (unsigned long long)number, issuer,
		    (long long)sqlite3_column_int64(s, 0));
		goto out;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = st_fail(st, rc, "reading the CRL state");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	if ((r = st_stmt(st,
		 "INSERT INTO crl_state (issuer, number, this_update, "
		 "next_update, der) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
		 "(issuer) "
		 "DO UPDATE SET number = excluded.number, this_update = "
		 "excluded.this_update, next_update = excluded.next_update, "
		 "der = excluded.der",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, issuer, 63)) != 0 ||
	    (r = st_bind_int(st, s, 2, (int64_t)number)) != 0 ||
	    (r = st_bind_int(st, s, 3, this_update)) != 0 ||
	    (r = st_bind_int(st, s, 4, next_update)) != 0 ||
	    (r = st_bind_blob(st, s, 5, der, len)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "storing a CRL");
		goto out;
	}
	st_stmt_done(st, s);
	s = NULL;
	/* The counter never falls behind a number in use. */
	if ((r = st_stmt(st,
		 "INSERT INTO crl_counter (issuer, last) VALUES (?, ?) "
		 "ON CONFLICT (issuer) DO UPDATE SET last = max(last, "
		 "excluded.last)",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, issuer, 63)) != 0 ||
	    (r = st_bind_int(st, s, 2, (int64_t)number)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "storing a CRL");
		goto out;
	}
	r = 0;
out:
	st_stmt_done(st, s);
	return st_tx_end(st, own, r);
}

int
rf_store_crl_get(struct rf_store *st, const char *issuer, uint64_t *number,
    int64_t *this_update, int64_t *next_update, uint8_t **der, size_t *len)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*der = NULL;
	*len = 0;
	if ((r = st_stmt(st,
		 "SELECT number, this_update, next_update, der FROM crl_state "
		 "WHERE issuer = ?",
		 &s)) != 0 ||
	    (r = st_bind_text(st, s, 1, issuer, 1024)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "no CRL for %s yet: run "
		    "'ringfence crl'",
		    issuer);
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = st_fail(st, rc, "reading a CRL");
		goto out;
	}
	if (number != NULL)
		*number = (uint64_t)sqlite3_column_int64(s, 0);
	if (this_update != NULL)
		*this_update = sqlite3_column_int64(s, 1);
	if (next_update != NULL)
		*next_update = sqlite3_column_int64(s, 2);
	r = st_col_dup(s, 3, der, len);
out:
	st_stmt_done(st, s);
	return r;
}

/*
 * OCSP: each put takes the next change sequence (max + 1), so foreach
 * (since) returns exactly the rows written after rf_store_ocsp_seq gave
 * `since`. Sequences only grow: rows are replaced, never deleted.
 */
int
rf_store_ocsp_put(struct rf_store *st, const struct rf_ocsp_rec *o)
{
	sqlite3_stmt *s;
	int r, rc, own;

	if (o->serial[0] == '\0' || o->der == NULL || o->len == 0)
		return rf_err_set(RF_ERR_ARG,
		    "OCSP response without serial "
		    "or content");
	if ((r = st_tx_begin(st, &own)) != 0)
		return r;
	if ((r = st_cached(st, &st->ocsp_put,
		 "INSERT INTO ocsp (serial, issuer, this_update, next_update, "
		 "der, seq) VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), "
		 "0) + 1 FROM ocsp)) ON CONFLICT (serial) DO UPDATE SET "
		 "issuer = excluded.issuer, this_update = "
		 "excluded.this_update, "
		 "next_update = excluded.next_update, der = excluded.der, "
		 "seq = excluded.seq")) != 0)
		goto out;
	s = st->ocsp_put;
	if ((r = st_bind_text(st, s, 1, o->serial, sizeof(o->serial) - 1)) !=
		0 ||
	    (r = st_bind_text(st, s, 2, o->issuer, sizeof(o->issuer) - 1)) !=
		0 ||
	    (r = st_bind_int(st, s, 3, o->this_update)) != 0 ||
	    (r = st_bind_int(st, s, 4, o->next_update)) != 0 ||
	    (r = st_bind_blob(st, s, 5, o->der, o->len)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = st_fail(st, rc, "storing an OCSP response");
		goto out;
	}
	r = 0;
out:
	st_release(st->ocsp_put);
	return st_tx_end(st, own, r);
}

int
rf_store_ocsp_seq(struct rf_store *st, int64_t *seq)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*seq = 0;
	if ((r = st_stmt(st, "SELECT coalesce(max(seq), 0) FROM ocsp", &s)) !=
	    0)
		return r;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		r = st_fail(st, rc, "reading the OCSP sequence");
	else
		*seq = sqlite3_column_int64(s, 0);
	st_stmt_done(st, s);
	return r;
}

int
rf_store_ocsp_foreach(struct rf_store *st, int64_t since,
    int (*fn)(void *arg, const struct rf_ocsp_rec *o), void *arg)
{
	struct rf_ocsp_rec o;
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = st_stmt(st,
		 "SELECT serial, issuer, this_update, next_update, der FROM "
		 "ocsp WHERE seq > ? ORDER BY seq",
		 &s)) != 0 ||
	    (r = st_bind_int(st, s, 1, since)) != 0)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&o, 0, sizeof(o));
		st_col_str(s, 0, o.serial, sizeof(o.serial));
		st_col_str(s, 1, o.issuer, sizeof(o.issuer));
		o.this_update = sqlite3_column_int64(s, 2);
		o.next_update = sqlite3_column_int64(s, 3);
		o.der = sqlite3_column_blob(s, 4);
		o.len = (size_t)sqlite3_column_bytes(s, 4);
		if ((r = fn(arg, &o)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : st_fail(st, rc, "reading OCSP responses");
out:
	st_stmt_done(st, s);
	return r;
}
