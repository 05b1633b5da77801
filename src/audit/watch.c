/*
 * watch.c: checking a served record from another machine (ringfence audit
 * watch). The served tree head and consistency proof are untrusted bytes:
 * parsed strictly here, then checked offline against what the watcher
 * kept: the pinned audit key id and its last checkpoint (size and root).
 * No store, no token; the HTTP transport is the caller's.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>

#include "audit/audit.h"

/* Largest answer read from a server. */
#define WATCH_BODY_MAX 65536
/* A consistency proof has at most 64 levels plus a seed. */
#define WATCH_PROOF_MAX 66

static int
malformed(const char *what, const char *why)
{
	return rf_err_set(RF_ERR_MALFORMED,
	    "the server's %s answer is malformed (%s): is the URL a ringfence "
	    "server?",
	    what, why);
}

/* A JSON object from at most WATCH_BODY_MAX bytes, nothing after it. */
static json_t *
load_object(const uint8_t *buf, size_t len)
{
	json_t *o;

	if (buf == NULL || len == 0 || len > WATCH_BODY_MAX)
		return NULL;
	/* Without JSON_DISABLE_EOF_CHECK, trailing bytes are an error. */
	o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (o != NULL && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
get_u64(json_t *o, const char *k, uint64_t *v)
{
	json_t *j = json_object_get(o, k);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

/* A lower-case hex string of exactly want bytes (want 0: 1..max). */
static int
get_hex(json_t *o, const char *k, uint8_t *out, size_t max, size_t want,
    size_t *len)
{
	json_t *j = json_object_get(o, k);
	const char *s;
	size_t n, i;

	if (!json_is_string(j))
		return -1;
	s = json_string_value(j);
	n = json_string_length(j);
	if (n % 2 != 0 || n == 0 || n / 2 > max || (want && n / 2 != want))
		return -1;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return rf_unhex(s, out, max, len) == 0 ? 0 : -1;
}

int
rf_audit_watch_sth_parse(const uint8_t *buf, size_t len,
    struct rf_audit_sth_head *h, uint8_t *spki, size_t spkimax, size_t *spkilen)
{
	uint8_t id[32];
	json_t *o = NULL, *t;
	size_t n;
	int r = RF_ERR_MALFORMED;

	memset(h, 0, sizeof(*h));
	*spkilen = 0;
	if ((o = load_object(buf, len)) == NULL) {
		r = malformed("/audit/sth", "not one JSON object");
		goto out;
	}
	t = json_object_get(o, "timestamp");
	if (get_u64(o, "tree_size", &h->size) != 0 || !json_is_integer(t) ||
	    get_hex(o, "root_hash", h->root, RF_HASH_LEN, RF_HASH_LEN, &n) !=
		0 ||
	    get_hex(o, "key_id", id, sizeof(id), sizeof(id), &n) != 0 ||
	    get_hex(o, "signature", h->sig, RF_STH_SIG_MAX, 0, &h->siglen) !=
		0 ||
	    get_hex(o, "spki", spki, spkimax, 0, spkilen) != 0) {
		r = malformed("/audit/sth",
		    "needs tree_size, timestamp, root_hash, key_id, signature "
		    "and spki");
		goto out;
	}
	h->time = (int64_t)json_integer_value(t);
	rf_hex(id, sizeof(id), h->key_id);
	r = 0;
out:
	json_decref(o);
	return r;
}

int
rf_audit_watch_consistency_parse(const uint8_t *buf, size_t len,
    uint64_t *first, uint64_t *second, uint8_t (**proof)[RF_HASH_LEN],
    size_t *plen)
{
	uint8_t(*p)[RF_HASH_LEN] = NULL;
	json_t *o = NULL, *a, *e;
	size_t i, n, hl;
	int r = RF_ERR_MALFORMED;

	*proof = NULL;
	*plen = 0;
	if ((o = load_object(buf, len)) == NULL) {
		r = malformed("/audit/consistency", "not one JSON object");
		goto out;
	}
	a = json_object_get(o, "consistency");
	if (get_u64(o, "first", first) != 0 ||
	    get_u64(o, "second", second) != 0 || !json_is_array(a) ||
	    (n = json_array_size(a)) > WATCH_PROOF_MAX) {
		r = malformed("/audit/consistency",
		    "needs first, second and at most 66 consistency hashes");
		goto out;
	}
	if (n > 0 && (p = calloc(n, RF_HASH_LEN)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		e = json_array_get(a, i);
		if (!json_is_string(e) ||
		    json_string_length(e) != 2 * RF_HASH_LEN ||
		    rf_unhex(json_string_value(e), p[i], RF_HASH_LEN, &hl) !=
			0 ||
		    hl != RF_HASH_LEN) {
			r = malformed("/audit/consistency",
			    "a consistency hash is not 64 hex digits");
			goto out;
		}
	}
	*proof = p; /* owned by the caller */
	p = NULL;
	*plen = n;
	r = 0;
out:
	free(p);
	json_decref(o);
	return r;
}

static int broke(struct rf_audit_watch *w, const char *fmt, ...)
    RF_PRINTF(2, 3);

static int
broke(struct rf_audit_watch *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->problem, sizeof(w->problem), fmt, ap);
	va_end(ap);
	return rf_err_set(RF_ERR_AUDIT_TAMPERED, "audit watch: %s", w->problem);
}

/*
 * The checks, in order; the first that fails is named:
 *   1. key id: the served head's key id is the pinned one;
 *   2. key id: the served public key hashes to it; signature: the head's
 *      signature over its 65 signed bytes verifies with that key;
 *   3. size went back: the head is not smaller than the checkpoint;
 *   4. consistency: at the checkpoint's size, the same root; beyond it, the
 *      RFC 9162 2.1.4.2 proof from (size, root) to the head verifies.
 */
int
rf_audit_watch_step(
    struct rf_audit_watch *w, rf_audit_fetch_fn fetch, void *arg)
{
	struct rf_audit_sth_head h;
	uint8_t *body = NULL, spki[1024];
	uint8_t(*proof)[RF_HASH_LEN] = NULL;
	char path[96], id[65];
	const char *pin;
	uint64_t first, second;
	size_t len = 0, spkilen = 0, plen = 0;
	int r = RF_ERR_INTERNAL;

	w->problem[0] = '\0';
	if ((r = fetch(arg, "/audit/sth", &body, &len)) != 0)
		goto out;
	if ((r = rf_audit_watch_sth_parse(
		 body, len, &h, spki, sizeof(spki), &spkilen)) != 0)
		goto out;
	pin = w->key_id[0] != '\0' ? w->key_id : NULL;
	if (pin != NULL && strcmp(h.key_id, pin) != 0) {
		r = broke(w,
		    "key id: the tree head at size %" PRIu64
		    " is signed by %s, not the pinned audit key %s",
		    h.size, h.key_id, pin);
		goto out;
	}
	if ((r = rf_audit_key_id_of(spki, spkilen, id)) != 0)
		goto out;
	if (strcmp(id, h.key_id) != 0) {
		r = broke(w,
		    "key id: the served public key is not audit key %s",
		    h.key_id);
		goto out;
	}
	r = rf_audit_sth_verify(&h, spki, spkilen);
	ERR_clear_error();
	if (r == RF_ERR_SIGNATURE_INVALID || r == RF_ERR_MALFORMED) {
		r = broke(w,
		    "signature: the tree head at size %" PRIu64
		    " does not verify with audit key %s",
		    h.size, h.key_id);
		goto out;
	}
	if (r != 0)
		goto out;
	if (w->have) {
		if (h.size < w->size) {
			r = broke(w,
			    "size went back: the served tree head has %" PRIu64
			    " leaves, the checkpoint %" PRIu64,
			    h.size, w->size);
			goto out;
		}
		if (h.size == w->size &&
		    memcmp(h.root, w->root, RF_HASH_LEN) != 0) {
			r = broke(w,
			    "consistency: the tree head at size %" PRIu64
			    " has another root than the checkpoint: the record "
			    "was rewritten",
			    h.size);
			goto out;
		}
		if (h.size > w->size && w->size > 0) {
			free(body);
			body = NULL;
			snprintf(path, sizeof(path),
			    "/audit/consistency?old=%" PRIu64 "&new=%" PRIu64,
			    w->size, h.size);
			if ((r = fetch(arg, path, &body, &len)) != 0 ||
			    (r = rf_audit_watch_consistency_parse(body, len,
				 &first, &second, &proof, &plen)) != 0)
				goto out;
			if (first != w->size || second != h.size ||
			    rf_merkle_verify_consistency(w->size, h.size,
				w->root, h.root,
				(const uint8_t(*)[RF_HASH_LEN])proof,
				plen) != 0) {
				r = broke(w,
				    "consistency: the record at size %" PRIu64
				    " does not extend the checkpoint at size "
				    "%" PRIu64 " (rewritten or forked)",
				    h.size, w->size);
				goto out;
			}
		}
		w->grew = h.size - w->size;
	}
	/* Advance: the caller writes it to the checkpoint file. */
	w->prev_size = w->have ? w->size : 0;
	w->have = 1;
	w->size = h.size;
	w->time = h.time;
	memcpy(w->root, h.root, RF_HASH_LEN);
	snprintf(w->key_id, sizeof(w->key_id), "%s", h.key_id);
	r = 0;
out:
	free(proof);
	free(body);
	return r;
}
