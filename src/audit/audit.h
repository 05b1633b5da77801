/*
 * audit.h: the tamper-evident record. The only module that appends to it.
 *
 * An append-only Merkle log hashed as in RFC 9162 section 2.1:
 *   leaf hash = SHA-256(0x00 || leaf data)
 *   node hash = SHA-256(0x01 || left || right)
 * Leaf data is a canonical encoding of one event (docs/audit-format.md).
 * Signed tree heads (size, root, time) are signed by the audit key in the
 * token. Leaves and tree heads live in the store.
 */
#ifndef RF_AUDIT_AUDIT_H
#define RF_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/rf.h"

struct rf_audit;
struct rf_store;
struct rf_keys;

/* One event. Strings may be NULL (omitted from the encoding). */
struct rf_audit_event {
	const char *type;   /* "keygen", "sign", "issue", "revoke", "tenant",
			       "init", "login-failed", "serve-start", ... */
	const char *key_id; /* key involved */
	const char *tenant;
	const char *what;   /* for "sign": cert, crl, ocsp, sth, assertion */
	const char *ref;    /* serial, CRL number, tree size, ... */
	const char *digest; /* hex digest signed, for "sign" */
	const char *actor;
	const char *source;
	const char *detail; /* free text */
	int64_t time;	    /* 0: rf_now() */
};

int rf_audit_open(struct rf_store *store, struct rf_audit **out) RF_WUR;
void rf_audit_free(struct rf_audit *audit);

/*
 * Append n events as consecutive leaves in one transaction, durable when
 * this returns 0. *first receives the index of the first (may be NULL).
 */
int rf_audit_append(struct rf_audit *audit, const struct rf_audit_event *evs,
    size_t n, uint64_t *first) RF_WUR;

#define RF_HASH_LEN 32

/* RFC 9162 hashing; pure functions, no state. */
void rf_merkle_leaf_hash(const uint8_t *data, size_t len,
    uint8_t out[RF_HASH_LEN]);
void rf_merkle_node_hash(const uint8_t left[RF_HASH_LEN],
    const uint8_t right[RF_HASH_LEN], uint8_t out[RF_HASH_LEN]);
/* Root of n leaf hashes (n may be 0: SHA-256 of the empty string). */
int rf_merkle_root(const uint8_t (*leaves)[RF_HASH_LEN], uint64_t n,
    uint8_t out[RF_HASH_LEN]) RF_WUR;
/* 0 if the proof verifies, RF_ERR_PROOF otherwise. */
int rf_merkle_verify_inclusion(uint64_t index, uint64_t size,
    const uint8_t leaf[RF_HASH_LEN], const uint8_t (*proof)[RF_HASH_LEN],
    size_t plen, const uint8_t root[RF_HASH_LEN]) RF_WUR;
int rf_merkle_verify_consistency(uint64_t size1, uint64_t size2,
    const uint8_t root1[RF_HASH_LEN], const uint8_t root2[RF_HASH_LEN],
    const uint8_t (*proof)[RF_HASH_LEN], size_t plen) RF_WUR;

/* Further API (tree heads, proofs, verify, export, search) below. */
