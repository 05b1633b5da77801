/*
 * store.h: durable state. The only module that speaks SQL.
 *
 * SQLite in WAL mode with synchronous=FULL: a function that returns 0 after
 * a write has made it durable (or it is inside rf_store_begin/commit, and
 * the commit makes it durable). Every write outside an explicit transaction
 * is its own transaction. The interface names no SQLite type, so that a
 * PostgreSQL backend can implement it.
 *
 * Records with variable-size data (der) own it: free with the matching
 * _clear function. Strings in records are fixed buffers, NUL-terminated.
 */
#ifndef RF_STORE_STORE_H
#define RF_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rf.h"

struct rf_store;

/*
 * Open (creating if `create`) the database at path and run migrations.
 * A missing database without `create` is RF_ERR_NOT_INITIALISED.
 * Errors map to RF_ERR_STORE_READONLY / _FULL / _BUSY where they apply.
 */
int rf_store_open(const char *path, int create, struct rf_store **out) RF_WUR;
void rf_store_free(struct rf_store *st);
/* Schema version after migrations. */
int rf_store_schema_version(struct rf_store *st);
/*
 * A long-lived server's connection (serve, keyd): reads without the
 * memory map rf_store_open sets up for bulk work. SQLite drops a
 * connection's whole map at the first read transaction after another
 * connection's commit, and faults it in again on the next reads: a munmap,
 * with its TLB flush on every core, for each request that comes between
 * the other process's commits. Such a request reads a few pages, and a
 * pread each costs less.
 */
int rf_store_unmap(struct rf_store *st) RF_WUR;
/*
 * SQLite backend notes:
 * - Threads: a connection is opened with SQLITE_OPEN_NOMUTEX; use each
 *   struct rf_store from one thread at a time (one per thread is simplest).
 *   Several connections and processes may share one database.
 * - Busy: writers wait up to 5 s for another writer, then RF_ERR_STORE_BUSY.
 * - path may be a SQLite URI ("file:/x/state.db?mode=ro"): that is how a
 *   read-only connection is opened (writes then fail RF_ERR_STORE_READONLY).
 * - A database whose schema is newer than this code is refused (RF_ERR_STORE).
 */
/* The schema version this code migrates to. */
int rf_store_latest_schema_version(void);
/* Test and tooling hook: like rf_store_open, but migrate only up to
 * max_version (0: the latest). */
int rf_store_open_version(const char *path, int create, int max_version,
    struct rf_store **out) RF_WUR;
/* Test hook: cap the database at `pages` pages (PRAGMA max_page_count) so
 * that writes fail with RF_ERR_STORE_FULL. */
int rf_store_test_set_max_pages(struct rf_store *st, int64_t pages) RF_WUR;

/*
 * Explicit transaction (BEGIN IMMEDIATE). Not nested (RF_ERR_STATE). Store
 * writes inside it join it (each in a savepoint, so a failed write leaves
 * nothing of itself). If SQLite had to abandon the transaction (disk full,
 * I/O error), rf_store_commit fails and nothing was written.
 */
int rf_store_begin(struct rf_store *st) RF_WUR;
/*
 * The same, for a caller that rolls the whole transaction back on any
 * error (a batch of thousands of writes): the writes in it open no
 * savepoint each, which SQLite pays for by copying every page a write
 * touches (at 36,000 certificates a fifth of issuance's commits). A write
 * that fails leaves the transaction unusable: rf_store_commit then rolls
 * it back and fails, and nothing was written.
 */
int rf_store_begin_bulk(struct rf_store *st) RF_WUR;
int rf_store_commit(struct rf_store *st) RF_WUR;
void rf_store_rollback(struct rf_store *st);
/* 1 while an rf_store_begin transaction is open: writes are not yet
 * durable. */
int rf_store_in_transaction(const struct rf_store *st);

/*
 * A counter that changes whenever another connection commits (SQLite
 * data_version). Servers poll it to notice revocations made elsewhere.
 */
int rf_store_change_counter(struct rf_store *st, int64_t *out) RF_WUR;

/* Small settings and state: "initialised", "schema", ... */
int rf_store_meta_get(struct rf_store *st, const char *key, char *val,
    size_t vallen) RF_WUR; /* RF_ERR_NOT_FOUND */
int rf_store_meta_set(
    struct rf_store *st, const char *key, const char *val) RF_WUR;

/* Tenants. */
struct rf_tenant {
	int64_t id;
	char name[128];
	int64_t created;
};
int rf_store_tenant_add(struct rf_store *st, const char *name,
    int64_t now) RF_WUR; /* RF_ERR_EXISTS */
int rf_store_tenant_get(struct rf_store *st, const char *name,
    struct rf_tenant *out) RF_WUR; /* RF_ERR_NOT_FOUND */
/* *out is an array of *n tenants, ordered by name; caller frees it. */
int rf_store_tenant_list(
    struct rf_store *st, struct rf_tenant **out, size_t *n) RF_WUR;

/* The record of keys held in the token (no key material). */
/* The longest "made for" of a key record (keys.h struct rf_keygen). */
#define RF_KEY_MADE_FOR_MAX 63
struct rf_key_rec {
	char id[65];	  /* hex SHA-256 of SPKI */
	char alg[16];	  /* "ec-p256", ... */
	char purpose[16]; /* "root", "issuing", "ocsp", "audit", "connection" */
	char tenant[128]; /* "" if none */
	char state[16];	  /* "active", "disabled", "destroyed" */
	int64_t created;
	/* Set by keys (rf_store_key_note_many): the key's CKA_ID in the
	 * token as hex ("" for keys whose CKA_ID is the SPKI hash, made
	 * before random ids), and the label of the token holding it. */
	char token_id[65];
	char token[33];
	/* Also set by keys, with the key's first row: what it was made for
	 * ("incident-7" for a key contain generates, "" otherwise) and its
	 * CKA_LABEL ("tenant/connection" for a connection's key, shortened
	 * past 64 characters: keys.h rf_keys_tenant_label). */
	char made_for[RF_KEY_MADE_FOR_MAX + 1];
	char label[65];
};
int rf_store_key_add(
    struct rf_store *st, const struct rf_key_rec *k) RF_WUR; /* RF_ERR_EXISTS */
int rf_store_key_get(
    struct rf_store *st, const char *id, struct rf_key_rec *out) RF_WUR;
int rf_store_key_set_state(
    struct rf_store *st, const char *id, const char *state) RF_WUR;
/* The active key with this purpose (e.g. "audit"); RF_ERR_NOT_FOUND. */
int rf_store_key_by_purpose(
    struct rf_store *st, const char *purpose, struct rf_key_rec *out) RF_WUR;
/*
 * For keys (src/keys): record keys as given, in one transaction; an id
 * already recorded is left as it is. Keys records each key it makes this
 * way (state "generated", purpose "-"), with its token_id and token, before
 * handing the key out; rf_store_key_add then completes such a row.
 */
int rf_store_key_note_many(
    struct rf_store *st, const struct rf_key_rec *k, size_t n) RF_WUR;
/* Remove the row of a key whose generation was undone (state "generated"
 * only); no row is not an error. */
int rf_store_key_forget(struct rf_store *st, const char *id) RF_WUR;
/*
 * Keys made for made_for ("incident-7") that are still "generated": made
 * by the custody process and recorded by no caller yet, as a run killed
 * between the two leaves them. fn gets each key's record; a non-zero
 * return stops and is returned.
 */
int rf_store_key_made_for(struct rf_store *st, const char *made_for,
    int (*fn)(void *arg, const struct rf_key_rec *k), void *arg) RF_WUR;
/* Every key record, oldest first: *out is an array of *n; caller frees. */
int rf_store_key_list(
    struct rf_store *st, struct rf_key_rec **out, size_t *n) RF_WUR;
/* The same for the records in one state ("generating", ...). */
int rf_store_key_list_state(struct rf_store *st, const char *state,
    struct rf_key_rec **out, size_t *n) RF_WUR;

/* Certificate authorities and other service certificates. */
struct rf_ca_rec {
	char name[64]; /* "root", "issuing", "ocsp" ... */
	char key_id[65];
	char parent[64]; /* issuer's name; "" for a root */
	char serial[41];
	int64_t not_before, not_after;
	int active;
	uint8_t *der;
	size_t derlen;
};
int rf_store_ca_add(struct rf_store *st,
    const struct rf_ca_rec *ca) RF_WUR; /* RF_ERR_EXISTS on name */
/* Add, or replace the record of the same name (service certificates). */
int rf_store_ca_put(struct rf_store *st, const struct rf_ca_rec *ca) RF_WUR;
int rf_store_ca_get(
    struct rf_store *st, const char *name, struct rf_ca_rec *out) RF_WUR;
/* *out is an array of *n records (with der); free with rf_ca_rec_free_all. */
int rf_store_ca_list(
    struct rf_store *st, struct rf_ca_rec **out, size_t *n) RF_WUR;
int rf_store_ca_set_active(
    struct rf_store *st, const char *name, int active) RF_WUR;
void rf_ca_rec_clear(struct rf_ca_rec *ca);
void rf_ca_rec_free_all(struct rf_ca_rec *cas, size_t n);

/* Issued certificates. serial is lowercase hex of the DER INTEGER value. */
struct rf_cert_rec {
	char serial[41];
	char issuer[64]; /* CA name */
	char tenant[128];
	char profile[16];
	char key_id[65]; /* SHA-256 of the certificate's SPKI */
	char subject[256];
	char x5t[32];	 /* base64url SHA-1 thumbprint */
	char x5t256[48]; /* base64url SHA-256 thumbprint */
	int64_t not_before, not_after, issued;
	int revoked; /* 0 or 1 */
	int64_t revoked_at;
	int reason; /* RFC 5280 CRLReason, -1 when unspecified/none */
	uint8_t *der;
	size_t derlen;
	/*
	 * Added with issue 13, written by rf_store_cert_add only (not read
	 * back): the key identity (common/keyident.h; computed from der when
	 * empty) and the tenant's connection the certificate serves ("" for
	 * none). The add refuses a compromised key and a key that serves
	 * another tenant connection, in its transaction.
	 */
	char key_ident[65];
	char conn[64];
};
int rf_store_cert_add(struct rf_store *st, const struct rf_cert_rec *c)
    RF_WUR; /* RF_ERR_EXISTS on a serial collision */
int rf_store_cert_get(
    struct rf_store *st, const char *serial, struct rf_cert_rec *out) RF_WUR;
void rf_cert_rec_clear(struct rf_cert_rec *c);
/*
 * The tenant (other than `tenant`) that already holds a certificate for
 * public key key_id, into other; RF_ERR_NOT_FOUND when there is none.
 */
int rf_store_cert_key_other_tenant(struct rf_store *st, const char *key_id,
    const char *tenant, char *other, size_t otherlen) RF_WUR;

/* Selection for iteration; NULL / 0 fields do not filter. */
struct rf_cert_filter {
	const char *tenant;
	const char *key_id;
	const char *issuer;
	int only_revoked;
	int64_t unexpired_at; /* not_after >= this, when non-zero */
	int with_der;	      /* fill der in the records */
	/* Issue 13: certificates of the key with this key id, under any
	 * encoding or exponent (the same key identity). */
	const char *same_key;
};
/* Calls fn for each match in serial order; fn's non-zero return stops and
 * is returned. The record is only valid during the call. */
int rf_store_cert_foreach(struct rf_store *st, const struct rf_cert_filter *f,
    int (*fn)(void *arg, const struct rf_cert_rec *c), void *arg) RF_WUR;
/*
 * Revoke: idempotent. A revoked certificate keeps its first revoked_at; its
 * reason may only be raised to keyCompromise (1). *changed is 1 if anything
 * changed. RF_ERR_NOT_FOUND for an unknown serial.
 */
int rf_store_cert_revoke(struct rf_store *st, const char *serial, int64_t at,
    int reason, int *changed) RF_WUR;

/*
 * Key identities (issue 13). rf_store_key_admit checks, without writing,
 * what rf_store_cert_add enforces: RF_ERR_KEY_DISALLOWED with a line
 * naming the revocation or incident when the key is on the compromised
 * list, RF_ERR_KEY_REUSED naming the other tenant connection when it
 * serves one. conn "" (or NULL) matches any connection of the tenant.
 */
int rf_store_key_admit(struct rf_store *st, const char *ident,
    const char *tenant, const char *conn) RF_WUR;
/*
 * Put the key of certificate `serial` on the compromised list, in the
 * caller's transaction (the one that revokes it). incident is the
 * incident's id, or 0 for a revocation with keyCompromise (which
 * rf_store_cert_revoke records by itself). A key already listed keeps
 * its first entry; an incident id is added to an entry without one.
 * RF_ERR_NOT_FOUND for an unknown serial.
 */
int rf_store_key_compromised_add(struct rf_store *st, const char *serial,
    int64_t incident, int64_t at) RF_WUR;
struct rf_compromised_rec {
	char ident[65];	 /* key identity */
	char key_id[65]; /* SHA-256 of the SPKI of the certificate */
	char serial[41]; /* the certificate through which it was listed */
	char tenant[128];
	int reason;	  /* CRLReason: keyCompromise (1) */
	int64_t incident; /* 0: a revocation */
	int64_t time;
};
/* In listing order (time, then identity); fn's non-zero return stops. */
int rf_store_compromised_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_compromised_rec *k), void *arg) RF_WUR;

/* CRLs: one current CRL per issuer; the number never goes backwards. */
int rf_store_crl_next_number(struct rf_store *st, const char *issuer,
    uint64_t *number) RF_WUR; /* increments and returns the new number */
/* Replace the issuer's CRL. RF_ERR_STATE if number is lower than the stored
 * CRL's; a number ahead of the counter moves the counter up to it. */
int rf_store_crl_put(struct rf_store *st, const char *issuer, uint64_t number,
    int64_t this_update, int64_t next_update, const uint8_t *der,
    size_t len) RF_WUR;
int rf_store_crl_get(struct rf_store *st, const char *issuer, uint64_t *number,
    int64_t *this_update, int64_t *next_update, uint8_t **der,
    size_t *len) RF_WUR; /* caller frees *der */

/* Pre-signed OCSP responses, one per serial. */
struct rf_ocsp_rec {
	char serial[41];
	char issuer[64];
	int64_t this_update, next_update;
	const uint8_t *der;
	size_t len;
};
int rf_store_ocsp_put(struct rf_store *st,
    const struct rf_ocsp_rec *o) RF_WUR; /* insert or replace */
/*
 * Every put takes the next change sequence. rf_store_ocsp_seq gives the
 * current highest sequence (0 when empty); rf_store_ocsp_foreach(since)
 * calls fn for the responses with sequence > since, in sequence order
 * (since 0: all). The record is only valid during the call.
 */
int rf_store_ocsp_seq(struct rf_store *st, int64_t *seq) RF_WUR;
int rf_store_ocsp_foreach(struct rf_store *st, int64_t since,
    int (*fn)(void *arg, const struct rf_ocsp_rec *o), void *arg) RF_WUR;

/* Audit leaves: index is 0-based and dense. */
struct rf_leaf_rec {
	uint64_t index;
	int64_t time;
	const char *type;
	const char *key_id; /* may be NULL */
	const char *tenant; /* may be NULL */
	const uint8_t *data;
	size_t len;
	uint8_t hash[32]; /* RFC 9162 leaf hash */
};
/*
 * Append n leaves in one transaction (or in the caller's). Indexes are
 * assigned here, consecutive from the current count; *first receives the
 * first. Durable when it returns 0 outside a caller's transaction.
 */
int rf_store_leaf_append(struct rf_store *st, struct rf_leaf_rec *leaves,
    size_t n, uint64_t *first) RF_WUR;
int rf_store_leaf_count(struct rf_store *st, uint64_t *n) RF_WUR;
/* Leaves [from, to) in index order; records valid during the call. */
int rf_store_leaf_foreach(struct rf_store *st, uint64_t from, uint64_t to,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg) RF_WUR;
/*
 * Search by key, tenant and time range since <= time <= until; NULL / 0 do
 * not filter; limit 0 is no limit. Results in time order, then index. The
 * record (and its strings) is only valid during the call.
 */
int rf_store_leaf_search(struct rf_store *st, const char *key_id,
    const char *tenant, int64_t since, int64_t until, size_t limit,
    int (*fn)(void *arg, const struct rf_leaf_rec *l), void *arg) RF_WUR;

/*
 * The audit tree's interior nodes: the hash of every complete subtree of
 * 2^level leaves (level >= RF_STORE_NODE_LEVEL), keyed by (level, index),
 * written by rf_store_leaf_append in the transaction of the leaves that
 * complete it, so that a root or proof reads O(log n) rows. The hash
 * function is the audit module's, registered with rf_store_set_node_hash;
 * appends made without one write no nodes, and rf_store_node_fill (run at
 * rf_audit_open) writes what is missing, once.
 */
#define RF_STORE_NODE_LEVEL 4
/*
 * One read snapshot for the several queries of a root or proof: without
 * it each query is a transaction of its own (a lock taken and released,
 * the WAL index checked), which costs more than the query. Inside a
 * transaction already, that one is the snapshot and *own is 0.
 */
int rf_store_read_begin(struct rf_store *st, int *own) RF_WUR;
void rf_store_read_end(struct rf_store *st, int own);
typedef void (*rf_store_node_hash_fn)(
    const uint8_t left[32], const uint8_t right[32], uint8_t out[32]);
void rf_store_set_node_hash(struct rf_store *st, rf_store_node_hash_fn fn);
/*
 * The hash of the complete subtree of 2^level leaves starting at leaf
 * index << level: a stored node, the stored hash of a leaf, or computed
 * from those below it. RF_ERR_NOT_FOUND if the record does not reach that
 * far; RF_ERR_STATE without a node hash function.
 */
int rf_store_subtree_hash(struct rf_store *st, unsigned level, uint64_t index,
    uint8_t out[32]) RF_WUR;
/*
 * The stored hashes of up to max leaves from lo, in order, into out;
 * *got stops at the end of the record (or at a gap).
 */
int rf_store_leaf_hashes(struct rf_store *st, uint64_t lo, size_t max,
    uint8_t (*out)[32], size_t *got) RF_WUR;
/* Write the interior nodes missing below the current number of leaves. */
int rf_store_node_fill(struct rf_store *st) RF_WUR;

/* Signed tree heads. */
struct rf_sth_rec {
	uint64_t size;
	int64_t time;
	uint8_t root[32];
	char key_id[65];
	const uint8_t *sig;
	size_t siglen;
};
int rf_store_sth_add(struct rf_store *st, const struct rf_sth_rec *s) RF_WUR;
/* In order of size, then time. */
int rf_store_sth_foreach(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_sth_rec *s), void *arg) RF_WUR;
/* The last of that order only (fn not called when there is none). */
int rf_store_sth_latest(struct rf_store *st,
    int (*fn)(void *arg, const struct rf_sth_rec *s), void *arg) RF_WUR;

#endif
