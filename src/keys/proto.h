/*
 * proto.h: the custody protocol, spoken over keyd's UNIX-domain socket
 * between rf_keys clients (client.c) and the custody process (keyd*.c).
 *
 * A frame is
 *
 *   u32 length   bytes that follow, big-endian, at most RF_KPROTO_MAX
 *   u8  version  RF_KPROTO_VERSION
 *   u8  type     a request (enum rf_kmsg_type) or RF_KMSG_OK / RF_KMSG_ERR
 *   fields       in the order the type defines (docs/keys.md)
 *
 * Fields: u8, u32 and u64 big-endian; bytes and strings as a u32 length
 * and the bytes. Strings hold no NUL and an empty string stands for
 * "none". A decoder checks every length against what is left before it
 * copies or allocates anything, and a frame with bytes left over after
 * its last field is rejected (RF_ERR_MALFORMED).
 */
#ifndef RF_KEYS_PROTO_H
#define RF_KEYS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/rf.h"
#include "keys/keyd.h"
#include "keys/keys.h"

#define RF_KPROTO_VERSION 5
#define RF_KPROTO_MAX (32u * 1024 * 1024) /* largest frame after length */
#define RF_KPROTO_STR_MAX 256		  /* longest string field */
#define RF_KPROTO_REF_MAX RF_KEYS_REF_MAX /* but a SIGN item's ref */
#define RF_KPROTO_PROOF_MAX 2048	  /* a connector's proof */
#define RF_KPROTO_BATCH_MAX 100000	  /* items in one request */
#define RF_KPROTO_NOTE_ITEMS_MAX 10000	  /* incident items in one note */

enum rf_kmsg_type {
	RF_KMSG_HELLO = 1,   /* u8 claimed class -> u8 class, u32 pid */
	RF_KMSG_KEYGEN = 2,  /* who, u32 n, n x (u8 alg, str label, str
				tenant, str made for) -> u32 n, n x (u8
				alg, bytes spki) */
	RF_KMSG_LOAD = 3,    /* str id -> u8 alg, bytes spki */
	RF_KMSG_SIGN = 4,    /* str id, u8 flags (RF_KSIGN_*), who, u32 n,
				n x (u8 scheme, str what, str ref, str
				tenant, bytes msg) -> [RECORDED], u32 n,
				n x bytes sig */
	RF_KMSG_DISABLE = 5, /* u8 destroy (2: tenant keys only), who, u32 n,
				n x str id -> u64 */
	RF_KMSG_LIST = 6,    /* -> u32 n, n x key info (str id, str label,
				6 x u8: alg, sign, sensitive, extractable,
				always sensitive, never extractable; str
				CKA_ID, str token, u8 retired) */
	RF_KMSG_CUSTODY = 7, /* str id -> 4 x u8 */
	RF_KMSG_MEASURE = 8, /* str id, u64 n, u32 threads -> u64 micro/s */
	RF_KMSG_STATUS = 9,  /* -> u32 pid, u32 uid, u8 class, str token,
				u32 tokens, u32 clients, u64 requests,
				u64 refused */
	/* u32 n, n x str id -> u32 n, n x (u8 found; if found, u8 alg,
	 * bytes spki) */
	RF_KMSG_LOAD_MANY = 10,
	/* u8 what (RF_KNOTE_*), str connector, str tenant, str conn -> no
	 * fields: an administrator's change of what keyd's connector policy
	 * trusts, kept in keyd's ledger before the store changes. */
	RF_KMSG_NOTE = 11,
	/* u8 affected, u32 n (at most RF_KPROTO_NOTE_ITEMS_MAX), n x (str
	 * tenant, str conn, str key) -> u32 n, n x u8 changed: an
	 * administrator's incident items, for the same ledger. */
	RF_KMSG_NOTE_ITEMS = 12,
	/* str certificate serial, str X25519 key, bytes proof -> str id,
	 * str keyd's X25519 key, str confirmation, u64 end: a connector's
	 * proof session (connector.h, rf_proof_session_open). */
	RF_KMSG_SESSION = 13,
	RF_KMSG_TYPE_MAX = 13,
	RF_KMSG_OK = 0x80,  /* the answer's fields */
	RF_KMSG_ERR = 0x81, /* u32 -code, str message */
	/* No fields: a SIGN request's leaves are durable, its signatures
	 * follow (asked with RF_KSIGN_RECORDED). */
	RF_KMSG_RECORDED = 0x82,
};

/* The flags of a SIGN request. */
#define RF_KSIGN_DIGEST 1 /* the messages are digests */
/* Record the request whole, in one append, and say RECORDED once it is
 * durable: the caller then knows keyd no longer needs the store. */
#define RF_KSIGN_RECORDED 2

const char *rf_kmsg_name(int type);

/* A frame being written; errors are sticky and reported by _finish. */
struct rf_kbuf {
	uint8_t *d;
	size_t len, cap;
	int err;
};

void rf_kbuf_begin(struct rf_kbuf *b, int type);
void rf_kbuf_u8(struct rf_kbuf *b, uint8_t v);
void rf_kbuf_u32(struct rf_kbuf *b, uint32_t v);
/* Overwrite the u32 written at off (a count known only once what it
 * counts is written). */
void rf_kbuf_put_u32(struct rf_kbuf *b, size_t off, uint32_t v);
void rf_kbuf_u64(struct rf_kbuf *b, uint64_t v);
void rf_kbuf_bytes(struct rf_kbuf *b, const uint8_t *p, size_t len);
/* NULL is written as the empty string. */
void rf_kbuf_str(struct rf_kbuf *b, const char *s);
/* The same for a field of at most max - 1 bytes (a SIGN item's ref). */
void rf_kbuf_strn(struct rf_kbuf *b, const char *s, size_t max);
/* Fill in the length: 0, or RF_ERR_ALLOC / RF_ERR_TOO_LARGE. */
int rf_kbuf_finish(struct rf_kbuf *b) RF_WUR;
/* Wipe and free the contents (messages may be secret-free, but cheap). */
void rf_kbuf_clear(struct rf_kbuf *b);

/* A frame being read. Fields point into the frame: no allocation. */
struct rf_kmsg {
	const uint8_t *p;
	size_t len, off;
	int type;
	int err; /* sticky: the first field that did not fit */
};

/*
 * Check a frame's header (length, version, a known type) and start reading
 * its fields. frame includes the 4-byte length.
 */
int rf_kmsg_parse(const uint8_t *frame, size_t len, struct rf_kmsg *m) RF_WUR;
uint8_t rf_kmsg_u8(struct rf_kmsg *m);
uint32_t rf_kmsg_u32(struct rf_kmsg *m);
uint64_t rf_kmsg_u64(struct rf_kmsg *m);
/* *p points into the frame; at most max bytes. */
void rf_kmsg_bytes(
    struct rf_kmsg *m, const uint8_t **p, size_t *len, size_t max);
/* Copy a string of at most RF_KPROTO_STR_MAX - 1 bytes into out (NUL
 * terminated); NUL bytes inside are malformed. */
void rf_kmsg_str(struct rf_kmsg *m, char out[RF_KPROTO_STR_MAX]);
/* The same for a field of at most max - 1 bytes into out (max bytes, or
 * as many as the field's length and NUL need). */
void rf_kmsg_strn(struct rf_kmsg *m, char *out, size_t max);
/* 0 if every field fitted and nothing is left over, else
 * RF_ERR_MALFORMED naming what. */
int rf_kmsg_end(struct rf_kmsg *m) RF_WUR;

/*
 * Socket I/O of whole frames. rf_kproto_read reads the length first and
 * refuses one above max before allocating; *frame (malloc'd, caller frees)
 * holds the length too. RF_ERR_NOT_FOUND at a clean end of stream before
 * any byte, RF_ERR_IO otherwise.
 */
int rf_kproto_read(int fd, size_t max, uint8_t **frame, size_t *len) RF_WUR;
int rf_kproto_write(int fd, const struct rf_kbuf *b) RF_WUR;

#endif
