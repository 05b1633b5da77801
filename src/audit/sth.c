/*
 * sth.c: signed tree heads. Signing goes through keys (and so appends its
 * own audit leaf); checking an STH signature needs only its public key.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "keys/keys.h"

/* Keep the audit key's SPKI in meta so that verification is offline. */
static int
save_spki(struct rf_store *st, const char *key_id, EVP_PKEY *pub)
{
	char name[96], *hex = NULL, cur[2048];
	unsigned char *der = NULL;
	int len, r = RF_ERR_INTERNAL;

	if ((len = i2d_PUBKEY(pub, &der)) <= 0 || len > 1000) {
		r = rf_err_set(
		    RF_ERR_INTERNAL, "audit key public part cannot be encoded");
		goto out;
	}
	if ((hex = malloc(2 * (size_t)len + 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	rf_hex(der, (size_t)len, hex);
	snprintf(name, sizeof(name), "audit.spki.%s", key_id);
	if (rf_store_meta_get(st, name, cur, sizeof(cur)) == 0 &&
	    strcmp(cur, hex) == 0) {
		r = 0;
		goto out;
	}
	if ((r = rf_store_meta_set(st, name, hex)) != 0)
		goto out;
	r = 0;
out:
	free(hex);
	OPENSSL_free(der);
	return r;
}

/*
 * The time of the next tree head: the clock, unless it reads earlier than
 * the latest tree head's time. Then the latest time, and a "clock-clamped"
 * leaf (appended before the size is taken, so the new head covers it)
 * records both readings. Timestamps never go back, so verification never
 * sees a head signed "before" a smaller one. Called with the lock held.
 */
static int
sth_time(struct rf_audit *a, const struct rf_actor *who, int64_t *out)
{
	struct rf_audit_sth_head last;
	struct rf_audit_event ev;
	char detail[160], ref[32];
	int64_t now = rf_now();
	int r;

	*out = now;
	r = rf_audit_sth_latest(a, &last);
	if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0;
	}
	if (r != 0 || now >= last.time)
		return r;
	snprintf(detail, sizeof(detail),
	    "clock read %" PRId64 ", before the tree head at size %" PRIu64
	    " signed at %" PRId64 ": the new tree head takes time %" PRId64,
	    now, last.size, last.time, last.time);
	snprintf(ref, sizeof(ref), "%" PRId64, last.time);
	memset(&ev, 0, sizeof(ev));
	ev.type = "clock-clamped";
	ev.what = "sth";
	ev.ref = ref;
	ev.detail = detail;
	ev.time = now;
	if (who != NULL) {
		ev.actor = who->actor;
		ev.source = who->source;
	}
	if ((r = rf_audit_append(a, &ev, 1, NULL)) != 0)
		return r;
	*out = last.time;
	return 0;
}

int
rf_audit_sth(struct rf_audit *a, struct rf_keys *keys,
    const struct rf_actor *who, struct rf_audit_sth_head *out)
{
	struct rf_store *st = rf_audit_store(a);
	struct rf_audit_sth_head h;
	struct rf_key_rec kr;
	struct rf_key *key = NULL;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	struct rf_sth_rec rec;
	uint8_t tbs[RF_STH_TBS_LEN];
	char ref[32];
	int r = RF_ERR_INTERNAL;

	memset(&h, 0, sizeof(h));
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (keys == NULL)
		return rf_err_set(RF_ERR_ARG, "signing a tree head needs keys");
	/*
	 * The lock is held for the store, never across rf_keys_sign: keys
	 * takes its own lock and then ours to append, so holding ours while
	 * signing could deadlock with another signing thread.
	 */
	rf_audit_lock(a);
	r = rf_store_key_by_purpose(st, "audit", &kr);
	if (r == 0)
		r = sth_time(a, who, &h.time);
	if (r == 0)
		r = rf_audit_head(a, &h.size, h.root);
	rf_audit_unlock(a);
	if (r == RF_ERR_NOT_FOUND)
		r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "no active audit key: run 'ringfence init'");
	if (r == 0)
		r = a->key_get != NULL ? a->key_get(a->key_arg, kr.id, &key)
				       : rf_keys_load(keys, kr.id, &key);
	if (r != 0)
		goto out;
	snprintf(h.key_id, sizeof(h.key_id), "%s", kr.id);
	rf_audit_sth_tbs(h.size, h.time, h.root, tbs);
	snprintf(ref, sizeof(ref), "%" PRIu64, h.size);
	memset(&req, 0, sizeof(req));
	req.msg = tbs;
	req.msglen = sizeof(tbs);
	req.scheme = RF_SIG_DEFAULT;
	req.what = "sth";
	req.ref = ref;
	if ((r = rf_keys_sign(keys, key, &req, 1, who, &sig)) != 0)
		goto out;
	if (sig.len == 0 || sig.len > RF_STH_SIG_MAX) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "tree head signature of %zu bytes", sig.len);
		goto out;
	}
	memcpy(h.sig, sig.sig, sig.len);
	h.siglen = sig.len;
	memset(&rec, 0, sizeof(rec));
	rec.size = h.size;
	rec.time = h.time;
	memcpy(rec.root, h.root, RF_HASH_LEN);
	snprintf(rec.key_id, sizeof(rec.key_id), "%s", h.key_id);
	rec.sig = h.sig;
	rec.siglen = h.siglen;
	rf_audit_lock(a);
	if ((r = save_spki(st, kr.id, rf_key_public(key))) == 0)
		r = rf_store_sth_add(st, &rec);
	rf_audit_unlock(a);
	if (r != 0)
		goto out;
	if (out != NULL)
		*out = h;
	r = 0;
out:
	rf_sig_clear(&sig);
	rf_key_free(key);
	return r;
}

/* Leaf `index` records the signature of a tree head. */
struct sth_leaf {
	int is_sth_sig;
};

static int
sth_leaf_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct sth_leaf *s = arg;
	json_t *o, *what;

	if (l->type == NULL || strcmp(l->type, "sign") != 0 ||
	    l->len > RF_AUDIT_LEAF_MAX)
		return 0;
	if ((o = json_loadb((const char *)l->data, l->len, 0, NULL)) == NULL)
		return 0;
	what = json_object_get(o, "what");
	s->is_sth_sig =
	    json_is_string(what) && strcmp(json_string_value(what), "sth") == 0;
	json_decref(o);
	return 0;
}

/* Whether a tree head is due (called with the lock held). */
static int
maybe_due(struct rf_audit *a, int64_t interval_s, uint64_t leaves, int *due)
{
	struct rf_audit_sth_head last;
	struct sth_leaf sl = {0};
	uint64_t n;
	int64_t now, elapsed;
	int r;

	*due = 0;
	if ((r = rf_audit_size(a, &n)) != 0)
		return r;
	r = rf_audit_sth_latest(a, &last);
	if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		*due = n > 0;
	} else if (r != 0) {
		return r;
	} else if (n > last.size) {
		/* Only the last STH's own signature leaf is new: nothing to
		 * sign, or every STH would cause the next. */
		if (n == last.size + 1 &&
		    (r = rf_store_leaf_foreach(rf_audit_store(a), last.size, n,
			 sth_leaf_fn, &sl)) < 0)
			return r;
		/* A clock stepped back: count on this process's own clock
		 * since it saw the last head (its time will be clamped). */
		now = rf_now();
		elapsed = now >= last.time
		    ? now - last.time
		    : audit_seen_for(a, last.size, last.time);
		if (!sl.is_sth_sig || n > last.size + 1)
			*due = (interval_s >= 0 && elapsed >= interval_s) ||
			    (leaves > 0 && n - last.size >= leaves);
	}
	return 0;
}

void
rf_audit_key_source(struct rf_audit *a,
    int (*get)(void *arg, const char *id, struct rf_key **out), void *arg)
{
	rf_audit_lock(a);
	a->key_get = get;
	a->key_arg = arg;
	rf_audit_unlock(a);
}

int
rf_audit_maybe_sth(struct rf_audit *a, struct rf_keys *keys, int64_t interval_s,
    uint64_t leaves, int *made)
{
	int r, due = 0;

	if (made != NULL)
		*made = 0;
	rf_audit_lock(a);
	r = maybe_due(a, interval_s, leaves, &due);
	rf_audit_unlock(a);
	if (r != 0 || !due)
		return r;
	if ((r = rf_audit_sth(a, keys, NULL, NULL)) != 0)
		return r;
	if (made != NULL)
		*made = 1;
	return 0;
}
