/*
 * retire.c: taking keys out of service. Disable (a state of the store's
 * record, kept first in keyd's ledger) and destroy (both token objects,
 * the public one checked against the key's id first, many keys in one
 * pass per token), with their intent and result leaves; and the sweep of
 * what an interrupted generation (keygen.c) left in a token. Keys are
 * loaded and listed by admin.c.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/token_int.h"
#include "keys/tokmeta.h"
#include "store/store.h"

/*
 * Torn objects. SoftHSM makes an object by writing its file with the
 * default attributes, then the template (CKA_ID, CKA_LABEL, the key's
 * value) in a second write; a token folder that goes away, or a process
 * killed, in between leaves a key object with no CKA_ID, and SoftHSM's own
 * undo cannot remove its file either. No key of ours lacks a CKA_ID. Only
 * the embedded store is swept: its tokens are ringfence's (ringfence init
 * made them and keyd alone opens them); a module by path may hold other
 * applications' objects.
 */
struct sweep_arg {
	const char *label; /* of the token swept */
	const struct rf_actor *who;
	size_t swept;
	int r;
};

static CK_RV
sweep_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct sweep_arg *a = varg;
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_OBJECT_CLASS cls;
	CK_BYTE none = 0;
	CK_ATTRIBUTE t[1] = {{CKA_ID, &none, 0}}, c[1];
	CK_OBJECT_HANDLE *hs = NULL, *torn = NULL;
	struct rf_audit_event ev;
	char detail[160];
	size_t n = 0, nt = 0, i;
	CK_RV rv;

	if ((rv = keys_find_matching(f, s, t, 1, &hs, &n)) != CKR_OK || n == 0)
		goto out;
	if ((torn = calloc(n, sizeof(*torn))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < n; i++) {
		c[0].type = CKA_CLASS;
		c[0].pValue = &cls;
		c[0].ulValueLen = sizeof(cls);
		if (f->C_GetAttributeValue(s, hs[i], c, 1) == CKR_OK &&
		    (cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY))
			torn[nt++] = hs[i];
	}
	if (nt == 0)
		goto out;
	/* The record says so before the token changes. */
	snprintf(detail, sizeof(detail),
	    "%zu key object%s without a CKA_ID in token %s: left half made by "
	    "an interrupted key generation; destroyed",
	    nt, nt == 1 ? "" : "s", a->label);
	memset(&ev, 0, sizeof(ev));
	ev.type = "sweep";
	ev.actor = a->who ? a->who->actor : NULL;
	ev.source = a->who ? a->who->source : NULL;
	ev.detail = detail;
	if ((a->r = keys_audit_append(keys, &ev, 1, "nothing was destroyed")) !=
	    0)
		goto out;
	for (i = 0; i < nt && rv == CKR_OK; i++)
		if ((rv = f->C_DestroyObject(s, torn[i])) == CKR_OK)
			a->swept++;
out:
	free(torn);
	free(hs);
	return rv;
}

/*
 * Disable and destroy. A key cannot be changed in the token once made
 * (CKA_MODIFIABLE false), so disabling it is a state of its record, which
 * the signing path checks (keys_key_usable); taking it out of service for good
 * destroys both of its objects, the intent recorded before the act
 * ("destroy-intent") and the result after it ("destroy").
 */

/* What to read when a store's token id no longer names a key's objects. */
#define LIST_SHOWS                                                             \
	" ('ringfence keys list' shows the token's CKA_ID for it: token-id)"

/*
 * The last check of every destroy (issue 11): the public key object about
 * to be destroyed, read in the same session just before, holds the public
 * key of key id (its id is the SHA-256 of the SPKI). The CKA_ID that names
 * the object comes from the store, which serve's user can write: keyd
 * checks the ids it is asked to destroy, but a store changed after those
 * checks would aim the destroy at another key (the issuing key's). pub
 * and r: the read of the object (keys_read_public). 0 if it is the key's;
 * otherwise RF_ERR_TOKEN, one line, and nothing of the key is destroyed.
 */
static int
destroy_check(const char *id, EVP_PKEY *pub, int r)
{
	char got[65];

	/* A mismatch says so (keys_pub_is_id); anything else is a failed
	 * read. */
	if (r == 0 &&
	    ((r = keys_pub_is_id(id, pub, got,
		  ": the store's token id was changed; nothing of it was "
		  "destroyed" LIST_SHOWS)) == 0 ||
		r == RF_ERR_TOKEN))
		return r;
	return rf_err_set(RF_ERR_TOKEN,
	    "key %s: the public key of its token object cannot be read (%s); "
	    "nothing of it was destroyed",
	    id, rf_err_msg(r));
}

/* A private key object with no public key object to check it against. */
static int
destroy_unpaired(const char *id, const uint8_t *tid, size_t tidlen)
{
	char hex[2 * TID_MAX + 1];

	rf_hex(tid, tidlen, hex);
	return rf_err_set(RF_ERR_TOKEN,
	    "key %s: the token holds a private key object with CKA_ID %s and "
	    "no public key to check it against; nothing of it was destroyed",
	    id, hex);
}

/*
 * Destroy both objects with CKA_ID id, once the public one is checked
 * against key (destroy_check); found says whether there were any, refused
 * why they are left (its r 0: they were not).
 */
struct destroy_arg {
	const uint8_t *id;
	size_t idlen;
	const char *key;
	int found;
	struct rf_err_held refused;
};

static CK_RV
destroy_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_arg *a = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	enum rf_key_alg alg;
	EVP_PKEY *pub = NULL;
	CK_RV rv;
	int r;

	a->found = 0;
	a->refused.r = 0;
	keys_made_drop(keys, a->id, a->idlen);
	if ((rv = keys_find_object(keys->f, s, CKO_PRIVATE_KEY, a->id, a->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = keys_find_object(
		 keys->f, s, CKO_PUBLIC_KEY, a->id, a->idlen, &hpub)) != CKR_OK)
		return rv;
	if (hpriv == CK_INVALID_HANDLE && hpub == CK_INVALID_HANDLE)
		return CKR_OK;
	a->found = 1;
	if (hpub == CK_INVALID_HANDLE)
		r = destroy_unpaired(a->key, a->id, a->idlen);
	else if ((rv = keys_read_public(keys->f, s, hpub, 0, &alg, &pub, &r)) !=
	    CKR_OK)
		return rv;
	else
		r = destroy_check(a->key, pub, r);
	EVP_PKEY_free(pub);
	if (r != 0) {
		rf_err_keep(&a->refused, r);
		return CKR_OK;
	}
	if (hpriv != CK_INVALID_HANDLE &&
	    (rv = keys->f->C_DestroyObject(s, hpriv)) != CKR_OK)
		return rv;
	if (hpub != CK_INVALID_HANDLE &&
	    (rv = keys->f->C_DestroyObject(s, hpub)) != CKR_OK)
		return rv;
	return CKR_OK;
}

/* Whether the token holds an object with CKA_ID id; nothing changes. */
static CK_RV
probe_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_arg *a = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	a->found = 0;
	if ((rv = keys_find_object(keys->f, s, CKO_PRIVATE_KEY, a->id, a->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = keys_find_object(
		 keys->f, s, CKO_PUBLIC_KEY, a->id, a->idlen, &hpub)) != CKR_OK)
		return rv;
	a->found = hpriv != CK_INVALID_HANDLE || hpub != CK_INVALID_HANDLE;
	return CKR_OK;
}

/*
 * A generation interrupted anywhere leaves its "generating" row (written
 * before the token is asked; removed only once the key is recorded or
 * seen destroyed), naming its token: only those tokens are swept, so that
 * a start after a clean run reads nothing (a whole-token search costs a
 * file read per object with SoftHSM). A row whose CKA_ID the token no
 * longer holds then goes: nothing is left to know of.
 */
int
rf_keys_sweep_torn(
    struct rf_keys *keys, const struct rf_actor *who, size_t *swept)
{
	struct rf_key_rec *recs = NULL;
	struct sweep_arg a;
	struct destroy_arg d;
	uint8_t tid[TID_MAX], *want = NULL;
	int *rsh = NULL; /* per row: its token's index, or -1 */
	char made[16];
	CK_RV rv = CKR_OK;
	size_t nrecs = 0, i, len;
	int sh, r;

	*swept = 0;
	if (keys->kc != NULL)
		return rf_err_set(RF_ERR_ARG, "only keyd sweeps the token");
	/* key_tokens: the tokens ringfence init made for the embedded store. */
	if (rf_store_meta_get(
		keys_store(keys), "key_tokens", made, sizeof(made)) != 0) {
		rf_err_clear();
		return 0;
	}
	keys_store_lock(keys);
	r = rf_store_key_list_state(
	    keys_store(keys), "generating", &recs, &nrecs);
	keys_store_unlock(keys);
	if (r != 0 || nrecs == 0)
		goto out;
	if ((want = calloc((size_t)keys->nsh, 1)) == NULL ||
	    (rsh = calloc(nrecs, sizeof(*rsh))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < nrecs; i++)
		if ((rsh[i] = keys_shard_index(keys, recs[i].token)) >= 0)
			want[rsh[i]] = 1;
	memset(&a, 0, sizeof(a));
	a.who = who;
	for (sh = 0; sh < keys->nsh; sh++) {
		if (!want[sh])
			continue;
		a.label = keys->sh[sh].label;
		if ((r = keys_with_session(keys, sh, sweep_op, &a, &rv)) != 0)
			goto out;
		if ((r = a.r) != 0)
			goto out;
		if (rv != CKR_OK) {
			r = keys_token_err("C_DestroyObject", rv);
			goto out;
		}
	}
	*swept = a.swept;
	for (i = 0; i < nrecs; i++) {
		if ((sh = rsh[i]) < 0 ||
		    rf_unhex(recs[i].token_id, tid, sizeof(tid), &len) != 0) {
			rf_err_clear();
			continue; /* not ours to judge: it stays */
		}
		memset(&d, 0, sizeof(d));
		d.id = tid;
		d.idlen = len;
		if ((r = keys_with_session(keys, sh, probe_op, &d, &rv)) != 0)
			goto out;
		if (rv != CKR_OK || d.found)
			continue;
		keys_store_lock(keys);
		if (rf_store_key_forget(keys_store(keys), recs[i].id) != 0)
			rf_err_clear();
		keys_store_unlock(keys);
	}
	r = 0;
out:
	free(rsh);
	free(want);
	free(recs);
	return r;
}

int
keys_destroy_quiet(struct rf_keys *keys, int sh, const char *id,
    const uint8_t *tid, size_t tidlen, int *found)
{
	struct destroy_arg a;
	CK_RV rv = CKR_OK;
	int r;

	*found = 0;
	memset(&a, 0, sizeof(a));
	a.id = tid;
	a.idlen = tidlen;
	a.key = id;
	if ((r = keys_with_session(keys, sh, destroy_op, &a, &rv)) != 0)
		return r;
	if (rv != CKR_OK)
		return keys_token_err("C_DestroyObject", rv);
	if (a.refused.r != 0)
		return rf_err_kept(&a.refused);
	*found = a.found;
	return 0;
}

/*
 * keyd: keep the keys of ids[0..n) with want[i] set in its ledger, before
 * the store's state changes: the store can be written by serve's user,
 * the ledger by keyd's alone. A key the ledger holds signs nothing even if
 * the change below then fails: refused rather than trusted.
 */
static int
keys_retire(
    struct rf_keys *keys, const char *const *ids, const uint8_t *want, size_t n)
{
	int r;

	if (keys->ledger == NULL)
		return 0;
	if ((r = rf_ledger_retire_keys(keys->ledger, ids, want, n)) != 0)
		return rf_err_set(r,
		    "keyd's ledger could not record the keys taken out of "
		    "service (%s); the store was not changed",
		    rf_err_msg(r));
	return 0;
}

/*
 * Set the store state of the recorded keys among ids[0..n) with want[i]
 * set, in one transaction; a key already destroyed keeps that state, and
 * one being destroyed is not disabled.
 * hit[i] becomes 1 for each row changed.
 */
static int
set_states(struct rf_keys *keys, const char *const *ids, const uint8_t *want,
    size_t n, const char *state, uint8_t *hit)
{
	struct rf_store *st = keys_store(keys);
	struct rf_key_rec kr;
	size_t i;
	int r;

	keys_store_lock(keys);
	if (rf_store_in_transaction(st)) {
		r = rf_err_set(RF_ERR_INTERNAL,
		    "refusing to change key states inside an open store "
		    "transaction");
		goto out;
	}
	if ((r = rf_store_begin_bulk(st)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++) {
		hit[i] = 0;
		if (!want[i])
			continue;
		if ((r = rf_store_key_get(st, ids[i], &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			r = 0;
			continue;
		}
		/* Destroyed stays; a destroy under way is not undone. */
		if (r != 0 || strcmp(kr.state, "destroyed") == 0 ||
		    (strcmp(kr.state, "destroying") == 0 &&
			strcmp(state, "disabled") == 0))
			continue;
		if ((r = rf_store_key_set_state(st, ids[i], state)) == 0)
			hit[i] = 1;
	}
	if (r != 0)
		rf_store_rollback(st);
	else
		r = rf_store_commit(st);
out:
	keys_store_unlock(keys);
	return r;
}

/* One leaf of type for each ids[i] with pick[i] set, in one append. */
static int
admin_leaves(struct rf_keys *keys, const char *type, const char *const *ids,
    const uint8_t *pick, const char *const *detail, size_t n,
    const struct rf_actor *who, const char *doing)
{
	struct rf_audit_event *evs;
	size_t i, k = 0;
	int r;

	if ((evs = calloc(n ? n : 1, sizeof(*evs))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	for (i = 0; i < n; i++) {
		if (!pick[i])
			continue;
		evs[k].type = type;
		evs[k].key_id = ids[i];
		evs[k].actor = who ? who->actor : NULL;
		evs[k].source = who ? who->source : NULL;
		evs[k].detail = detail ? detail[i] : NULL;
		k++;
	}
	r = k > 0 ? keys_audit_append(keys, evs, k, doing) : 0;
	free(evs);
	return r;
}

/*
 * rf_keys_disable(_many): the recorded keys among ids become "disabled"
 * in the store. single: one key, which must exist; a key the store does
 * not record but the token holds is recorded as disabled.
 */
static int
disable_ids(struct rf_keys *keys, const char *const *ids, size_t n, int single,
    const struct rf_actor *who, size_t *done)
{
	struct rf_key *key = NULL;
	struct rf_key_rec kr;
	struct where w;
	uint8_t *want = NULL, *hit = NULL;
	char msg[128];
	size_t i, k = 0;
	int r = RF_ERR_INTERNAL;

	*done = 0;
	if (n == 0)
		return 0;
	if ((want = calloc(n, 1)) == NULL || (hit = calloc(n, 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = keys_key_where(keys, ids[i], &w)) != 0)
			goto out;
		want[i] = 1;
		if (!single || w.recorded)
			continue;
		/* Not recorded: record it, disabled, if the token holds it. */
		if ((r = rf_keys_load(keys, ids[i], &key)) != 0)
			goto out;
		memset(&kr, 0, sizeof(kr));
		snprintf(kr.id, sizeof(kr.id), "%s", key->id);
		snprintf(
		    kr.alg, sizeof(kr.alg), "%s", rf_key_alg_name(key->alg));
		snprintf(kr.purpose, sizeof(kr.purpose), "-");
		snprintf(kr.state, sizeof(kr.state), "generated");
		kr.created = rf_now();
		rf_hex(key->tid, key->tidlen, kr.token_id);
		keys_store_lock(keys);
		r = rf_store_key_note_many(keys_store(keys), &kr, 1);
		keys_store_unlock(keys);
		if (r != 0)
			goto out;
	}
	if ((r = keys_retire(keys, ids, want, n)) != 0 ||
	    (r = set_states(keys, ids, want, n, "disabled", hit)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		k += hit[i];
	if (single && k == 0) {
		r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "key %s is destroyed already", ids[0]);
		goto out;
	}
	snprintf(msg, sizeof(msg),
	    "%zu keys were disabled in the store, without a leaf", k);
	if ((r = admin_leaves(
		 keys, "key-disable", ids, hit, NULL, n, who, msg)) != 0)
		goto out;
	*done = k;
	r = 0;
out:
	rf_key_free(key);
	free(want);
	free(hit);
	return r;
}

int
rf_keys_disable(
    struct rf_keys *keys, const char *id, const struct rf_actor *who)
{
	size_t done;

	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, &id, 1, 0, who, NULL);
	return disable_ids(keys, &id, 1, 1, who, &done);
}

int
rf_keys_disable_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done)
{
	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, ids, n, 0, who, done);
	return disable_ids(keys, ids, n, 0, who, done);
}

/*
 * Many keys at once: one pass over each token's objects instead of one
 * C_FindObjects per key. Tokens such as SoftHSM's file store scan every
 * object on each search, so per-key searches cost O(keys x objects).
 */
struct destroy_many_arg {
	struct tident *t; /* sorted */
	size_t n;
	const char *const *ids; /* the caller's: what each public key must be */
	uint8_t *found;		/* per caller's id */
	uint8_t *refused;	/* per caller's id: its check failed */
	struct rf_err_held why; /* the first refusal */
	int *tsh;		/* per caller's id: the recorded token, or -1 */
	int sh;			/* the token of this pass */
};

/*
 * What one token's pass destroys, all of it read (and every public key
 * checked) before the first change: a file-backed token rescans its whole
 * store after each change, so reads interleaved with changes would each
 * pay for a rescan.
 */
struct destroy_plan {
	CK_OBJECT_HANDLE *pair; /* kept handles: private, public, ... */
	size_t *pairx;		/* per pair: the caller's index */
	size_t npair;
	CK_OBJECT_HANDLE *obj[2]; /* by a search: private, public */
	struct tident **hit[2];	  /* per object: its key, or NULL */
	size_t nobj[2];
	uint8_t *seen; /* per key of t: SEEN_* */
};

#define SEEN_KEPT 1 /* destroyed by the handles kept from its generation */
#define SEEN_PRIV 2 /* the search found a private key object */
#define SEEN_PUB 4  /* and a public one */

/* Key x is left whole: the first refusal's line is kept for the caller. */
static void
destroy_refuse(struct destroy_many_arg *a, size_t x, int r)
{
	a->refused[x] = 1;
	if (a->why.r == 0)
		rf_err_keep(&a->why, r);
	else
		rf_err_clear();
}

/*
 * The keys of this token that this process made, by the handles kept from
 * their generation: the private key object's class and CKA_ID checked by
 * one read, the public key object's in the read of its public key, which
 * destroy_check checks. *left: the keys the token may hold that were not
 * found so.
 */
static CK_RV
plan_kept(struct rf_keys *keys, CK_SESSION_HANDLE s, struct destroy_many_arg *a,
    struct destroy_plan *p, size_t *left)
{
	CK_OBJECT_HANDLE hpub, hpriv;
	unsigned long gen = keys_module_gen(keys);
	enum rf_key_alg alg;
	EVP_PKEY *pub;
	size_t i, x;
	CK_RV rv;
	int is, r = 0;

	*left = 0;
	for (i = 0; i < a->n; i++) {
		x = a->t[i].idx;
		/* Gone, left whole, or another token holds it, as recorded. */
		if (a->found[x] || a->refused[x] ||
		    (a->tsh[x] != a->sh && a->tsh[x] >= 0 &&
			a->tsh[x] < keys->nsh))
			continue;
		is = 0;
		pub = NULL;
		if (a->tsh[x] == a->sh &&
		    keys_made_get(keys, a->sh, a->t[i].b, a->t[i].len, gen,
			&hpub, &hpriv, NULL, NULL) &&
		    keys_object_is(keys->f, s, hpriv, CKO_PRIVATE_KEY,
			a->t[i].b, a->t[i].len) &&
		    (rv = keys_read_public_of(keys->f, s, hpub, a->t[i].b,
			 a->t[i].len, &is, &alg, &pub, &r)) != CKR_OK)
			return rv;
		if (!is) {
			(*left)++;
			continue;
		}
		r = destroy_check(a->ids[x], pub, r);
		EVP_PKEY_free(pub);
		if (r != 0) {
			destroy_refuse(a, x, r);
			continue;
		}
		p->seen[i] |= SEEN_KEPT;
		p->pairx[p->npair] = x;
		p->pair[2 * p->npair] = hpriv;
		p->pair[2 * p->npair++ + 1] = hpub;
	}
	return CKR_OK;
}

/*
 * The objects of class c (0 private, 1 public) whose CKA_ID is a key's of
 * a->t, but for those found by their kept handles; a public key object's
 * public key checked against the key's id (destroy_check).
 */
static CK_RV
plan_search(struct rf_keys *keys, CK_SESSION_HANDLE s,
    struct destroy_many_arg *a, struct destroy_plan *p, int c)
{
	CK_OBJECT_CLASS cls = c ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY;
	struct tident want, *hit;
	enum rf_key_alg alg;
	EVP_PKEY *pub;
	size_t i, len;
	CK_RV rv;
	int r;

	if ((rv = keys_find_all(keys->f, s, cls, &p->obj[c], &p->nobj[c])) !=
	    CKR_OK)
		return rv;
	if ((p->hit[c] = calloc(
		 p->nobj[c] ? p->nobj[c] : 1, sizeof(*p->hit[c]))) == NULL)
		return CKR_HOST_MEMORY;
	for (i = 0; i < p->nobj[c]; i++) {
		memset(&want, 0, sizeof(want));
		if (keys_get_bytes(keys->f, s, p->obj[c][i], CKA_ID, want.b,
			sizeof(want.b), &len) != CKR_OK ||
		    len == 0)
			continue; /* not one of ours */
		want.len = (uint8_t)len;
		if ((hit = bsearch(&want, a->t, a->n, sizeof(*a->t),
			 keys_tident_cmp)) == NULL ||
		    a->refused[hit->idx] || (p->seen[hit - a->t] & SEEN_KEPT))
			continue;
		p->hit[c][i] = hit;
		p->seen[hit - a->t] |= c ? SEEN_PUB : SEEN_PRIV;
		if (!c)
			continue;
		if ((rv = keys_read_public(keys->f, s, p->obj[c][i], 0, &alg,
			 &pub, &r)) != CKR_OK)
			return rv;
		r = destroy_check(a->ids[hit->idx], pub, r);
		EVP_PKEY_free(pub);
		if (r != 0)
			destroy_refuse(a, hit->idx, r);
	}
	return CKR_OK;
}

/* A key missing from its token's search: its id, its index in ids. */
struct lost {
	const char *id;
	size_t x;
};

static int
lost_cmp(const void *x, const void *y)
{
	return strcasecmp(
	    ((const struct lost *)x)->id, ((const struct lost *)y)->id);
}

/* Key id found under a CKA_ID that is not the store's (plan_lost, lost_op). */
static int
lost_found(const char *id)
{
	return rf_err_set(RF_ERR_TOKEN,
	    "key %s is in the token under a CKA_ID that is not the store's: "
	    "the store's token id was changed; nothing of it was "
	    "destroyed" LIST_SHOWS,
	    id);
}

/*
 * The key id of public key object h (got; "" when it does not read as a
 * key): what a lost key is looked for by (lost_op, plan_lost).
 */
static CK_RV
object_key_id(
    struct rf_keys *keys, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, char got[65])
{
	enum rf_key_alg alg;
	EVP_PKEY *pub = NULL;
	CK_RV rv;
	int r;

	got[0] = '\0';
	if ((rv = keys_read_public(keys->f, s, h, 0, &alg, &pub, &r)) ==
		CKR_OK &&
	    (r != 0 || rf_keys_pub_id(pub, got) != 0))
		got[0] = '\0';
	rf_err_clear();
	EVP_PKEY_free(pub);
	return rv;
}

/*
 * plan_lost for one key (the single-key destroy), which no object of any
 * token carries under the store's CKA_ID: found if a public key object of
 * this token holds it under another.
 */
static CK_RV
lost_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_arg *a = varg;
	CK_OBJECT_HANDLE *hs = NULL;
	char got[65];
	size_t i, n = 0;
	CK_RV rv;

	a->found = 0;
	if ((rv = keys_find_all(keys->f, s, CKO_PUBLIC_KEY, &hs, &n)) != CKR_OK)
		return rv;
	for (i = 0; i < n && !a->found; i++) {
		if ((rv = object_key_id(keys, s, hs[i], got)) != CKR_OK)
			break;
		a->found = strcasecmp(got, a->key) == 0;
	}
	free(hs);
	return rv;
}

/*
 * Keys of this pass none of whose objects carry the store's CKA_ID: gone
 * (a destroy that ran before), or here under a CKA_ID of their own, the
 * store's changed to name nothing. Only when a key is missing, the public
 * key objects the searches did not match are read (a read of the whole
 * token), and a missing key found so is refused like a mismatch, never
 * recorded as gone while its objects stay.
 */
static CK_RV
plan_lost(struct rf_keys *keys, CK_SESSION_HANDLE s, struct destroy_many_arg *a,
    struct destroy_plan *p)
{
	struct lost *miss = NULL, want, *hit;
	char got[65];
	size_t i, x, m = 0;
	CK_RV rv = CKR_OK;

	for (i = 0; i < a->n; i++) {
		x = a->t[i].idx;
		if (p->seen[i] != 0 || a->found[x] || a->refused[x] ||
		    (a->tsh[x] != a->sh && a->tsh[x] >= 0 &&
			a->tsh[x] < keys->nsh))
			continue;
		if (miss == NULL &&
		    (miss = calloc(a->n, sizeof(*miss))) == NULL)
			return CKR_HOST_MEMORY;
		miss[m].id = a->ids[x];
		miss[m++].x = x;
	}
	if (m == 0)
		return CKR_OK;
	qsort(miss, m, sizeof(*miss), lost_cmp);
	want.id = got;
	for (i = 0; i < p->nobj[1]; i++) {
		if (p->hit[1][i] != NULL)
			continue;
		if ((rv = object_key_id(keys, s, p->obj[1][i], got)) != CKR_OK)
			break;
		if (got[0] != '\0' &&
		    (hit = bsearch(&want, miss, m, sizeof(*miss), lost_cmp)) !=
			NULL &&
		    !a->refused[hit->x])
			destroy_refuse(a, hit->x, lost_found(hit->id));
	}
	free(miss);
	return rv;
}

/*
 * Destroy what the plan holds of keys not refused: the kept pairs, then
 * what the searches found, every private key before any public key, so
 * that a run killed in between leaves a public key alone (checked and
 * destroyed the next time), never a private key without its check.
 */
static CK_RV
plan_run(struct rf_keys *keys, CK_SESSION_HANDLE s, struct destroy_many_arg *a,
    struct destroy_plan *p)
{
	struct tident *hit;
	CK_RV rv = CKR_OK;
	size_t i;
	int c;

	for (i = 0; i < p->npair && rv == CKR_OK; i++) {
		if ((rv = keys->f->C_DestroyObject(s, p->pair[2 * i])) ==
			CKR_OK &&
		    (rv = keys->f->C_DestroyObject(s, p->pair[2 * i + 1])) ==
			CKR_OK)
			a->found[p->pairx[i]] = 1;
	}
	for (c = 0; c < 2; c++)
		for (i = 0; i < p->nobj[c] && rv == CKR_OK; i++) {
			if ((hit = p->hit[c][i]) == NULL ||
			    a->refused[hit->idx])
				continue;
			if ((rv = keys->f->C_DestroyObject(s, p->obj[c][i])) ==
			    CKR_OK)
				a->found[hit->idx] = 1;
		}
	return rv;
}

/*
 * The keys of this token: those this process made by their kept handles;
 * the token is searched only when a key it holds by the record, or a key
 * of no recorded token, is left. A key is destroyed only once its public
 * key object is checked against its id (destroy_check); a private key
 * object without one is left, refused, as is every object of a key whose
 * check failed.
 */
static CK_RV
destroy_many_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_many_arg *a = varg;
	struct destroy_plan p;
	size_t i, left = 0;
	CK_RV rv;

	memset(&p, 0, sizeof(p));
	if ((p.pair = calloc(2 * a->n + 1, sizeof(*p.pair))) == NULL ||
	    (p.pairx = calloc(a->n + 1, sizeof(*p.pairx))) == NULL ||
	    (p.seen = calloc(a->n + 1, 1)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if ((rv = plan_kept(keys, s, a, &p, &left)) != CKR_OK ||
	    (left > 0 &&
		((rv = plan_search(keys, s, a, &p, 0)) != CKR_OK ||
		    (rv = plan_search(keys, s, a, &p, 1)) != CKR_OK ||
		    (rv = plan_lost(keys, s, a, &p)) != CKR_OK)))
		goto out;
	for (i = 0; i < a->n; i++)
		if ((p.seen[i] & (SEEN_PRIV | SEEN_PUB)) == SEEN_PRIV &&
		    !a->refused[a->t[i].idx])
			destroy_refuse(a, a->t[i].idx,
			    destroy_unpaired(
				a->ids[a->t[i].idx], a->t[i].b, a->t[i].len));
	rv = plan_run(keys, s, a, &p);
out:
	free(p.pair);
	free(p.pairx);
	free(p.seen);
	free(p.obj[0]);
	free(p.obj[1]);
	free(p.hit[0]);
	free(p.hit[1]);
	return rv;
}

/*
 * A key no token showed is recorded gone only if the token holding it, as
 * the store records, can tell: the module shows that token, its folder is
 * there, and it answers (a key of no recorded token: every token). SoftHSM
 * shows a token whose folder went away as empty to a process that had it
 * open, and goes on so once the folder is back; a token missing when the
 * module was initialised is left out, with every token after it
 * (keys_find_shards). What the folders and tokens say is read once per
 * destroy, when a key was not found.
 */
struct unseen {
	int read;
	char tdir[RF_PATH_MAX + 64];
	struct rf_tokmeta_folder miss[RF_TOKMETA_MAX];
	int n;
	uint8_t answers[SHARD_MAX]; /* per token: 1 once it answered */
};

/* 0 if token sh answers (keys_token_answers), asked once per destroy. */
static int
unseen_answers(struct rf_keys *keys, struct unseen *u, int sh)
{
	int r;

	if (u->answers[sh])
		return 0;
	if ((r = keys_token_answers(
		 keys, sh, "its keys are not recorded destroyed")) == 0)
		u->answers[sh] = 1;
	return r;
}

/* What to do, early in the line: keyd's answers carry 255 bytes. */
#define PUT_BACK                                                               \
	"put the token back, then run the same command again (its keys are "   \
	"not recorded destroyed)"

/* 0 if key id, which no token showed, is gone; else why not, one line. */
static int
unseen_check(struct rf_keys *keys, struct unseen *u, const char *id,
    const struct where *w)
{
	const struct rf_tokmeta_folder *m = NULL;
	int i, nsh, r;

	if (!u->read) {
		if ((r = rf_tokmeta_missing(&keys->cfg, u->tdir,
			 sizeof(u->tdir), u->miss, RF_TOKMETA_MAX, &u->n)) != 0)
			return r;
		u->read = 1;
	}
	for (i = 0; i < u->n && w->token[0] != '\0'; i++)
		if (strcmp(u->miss[i].label, w->token) == 0)
			m = &u->miss[i];
	/* Its own token's folder, else the first missing (keys_find_shards
	 * stops there), else the module's word. */
	if (m == NULL && (w->token[0] == '\0' || w->sh < 0) && u->n > 0)
		m = &u->miss[0];
	if (m != NULL)
		return rf_err_set(RF_ERR_TOKEN_NOT_FOUND,
		    "token %s is missing (its folder %s/%s): " PUT_BACK,
		    m->label, u->tdir, m->uuid);
	if (w->token[0] != '\0' && w->sh < 0)
		return rf_err_set(RF_ERR_TOKEN_NOT_FOUND,
		    "token %s, which holds key %s, is not in module "
		    "%s: " PUT_BACK,
		    w->token, id, keys->cfg.module);
	/* Shown, and its folder there: it must answer too. */
	if (w->sh >= 0)
		return unseen_answers(keys, u, w->sh);
	pthread_mutex_lock(&keys->lock);
	nsh = keys->nsh;
	pthread_mutex_unlock(&keys->lock);
	for (i = 0; i < nsh; i++)
		if ((r = unseen_answers(keys, u, i)) != 0)
			return r;
	return 0;
}

/*
 * rf_keys_destroy(_many). For each key not already destroyed: its record
 * becomes "destroying" and a "destroy-intent" leaf is durable; then its
 * objects are destroyed in the token; then the record becomes "destroyed"
 * and a "destroy" leaf says whether the token held it. A run killed in
 * between is finished by running it again. single: one key, which must
 * be in the token or recorded as live. A key whose public key object is
 * not its key's (destroy_check) loses nothing and keeps its record
 * "destroying", without a "destroy" leaf: the others are recorded, then
 * the call fails with the first such key's line.
 */
static int
destroy_ids(struct rf_keys *keys, const char *const *ids, size_t n, int single,
    const struct rf_actor *who, size_t *done)
{
	struct destroy_many_arg a;
	struct destroy_arg d;
	struct where *wv = NULL, *w;
	struct unseen *u = NULL;
	uint8_t *want = NULL, *hit = NULL;
	const char **detail = NULL;
	char msg[160];
	CK_RV rv = CKR_OK;
	size_t i, k = 0, nt = 0;
	int sh = -1, hint = -1, r = RF_ERR_INTERNAL;

	*done = 0;
	memset(&a, 0, sizeof(a));
	if (n == 0)
		return 0;
	a.ids = ids;
	if ((wv = calloc(n, sizeof(*wv))) == NULL ||
	    (want = calloc(n, 1)) == NULL || (hit = calloc(n, 1)) == NULL ||
	    (a.found = calloc(n, 1)) == NULL ||
	    (a.refused = calloc(n, 1)) == NULL ||
	    (detail = calloc(n, sizeof(*detail))) == NULL ||
	    (a.t = calloc(n, sizeof(*a.t))) == NULL ||
	    (a.tsh = calloc(n, sizeof(*a.tsh))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	memset(&d, 0, sizeof(d));
	for (i = 0; i < n; i++) {
		w = &wv[i];
		if ((r = keys_key_where(keys, ids[i], w)) != 0)
			goto out;
		if (single) {
			d.id = a.t[0].b;
			memcpy(a.t[0].b, w->tid, w->tidlen);
			d.idlen = w->tidlen;
			hint = w->sh;
			if ((r = keys_with_key_token(keys, probe_op, &d,
				 &d.found, hint, &sh, &rv)) != 0)
				goto out;
			if (rv != CKR_OK) {
				r = keys_token_err("C_FindObjects", rv);
				goto out;
			}
			if (!d.found &&
			    (!w->recorded ||
				strcmp(w->state, "destroyed") == 0)) {
				r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
				    "no key with id %s in token %s", ids[i],
				    keys->cfg.token);
				goto out;
			}
			d.found = 0;
			a.t[0].len = (uint8_t)w->tidlen;
			a.t[0].idx = 0;
			want[0] = 1;
			nt = 1;
			continue;
		}
		if (w->recorded && strcmp(w->state, "destroyed") == 0)
			continue;
		want[i] = 1;
		a.tsh[i] = w->sh;
		a.t[nt].len = (uint8_t)w->tidlen;
		memcpy(a.t[nt].b, w->tid, w->tidlen);
		a.t[nt].idx = i;
		nt++;
	}
	if (nt == 0) {
		r = 0;
		goto out;
	}
	/* The intent, durable before the act. */
	snprintf(msg, sizeof(msg), "nothing was destroyed");
	if ((r = keys_retire(keys, ids, want, n)) != 0 ||
	    (r = set_states(keys, ids, want, n, "destroying", hit)) != 0 ||
	    (r = admin_leaves(
		 keys, "destroy-intent", ids, want, NULL, n, who, msg)) != 0)
		goto out;
	if (single) {
		d.id = a.t[0].b;
		d.idlen = a.t[0].len;
		d.key = ids[0];
		if ((r = keys_with_key_token(
			 keys, destroy_op, &d, &d.found, hint, &sh, &rv)) != 0)
			goto out;
		a.found[0] = (uint8_t)d.found;
		a.refused[0] = d.refused.r != 0;
		a.why = d.refused;
		/* Recorded, and no object carries its CKA_ID: it may be in a
		 * token under another (plan_lost). */
		if (rv == CKR_OK && !d.found && !a.refused[0] &&
		    wv[0].recorded) {
			if ((r = keys_with_key_token(keys, lost_op, &d,
				 &d.found, hint, &sh, &rv)) != 0)
				goto out;
			if (rv != CKR_OK) {
				r = keys_token_err("C_FindObjects", rv);
				goto out;
			}
			if (d.found) {
				a.refused[0] = 1;
				rf_err_keep(&a.why, lost_found(ids[0]));
			}
		}
	} else {
		qsort(a.t, nt, sizeof(*a.t), keys_tident_cmp);
		a.n = nt;
		for (i = 0; i < (size_t)keys->nsh && rv == CKR_OK; i++) {
			a.sh = (int)i;
			if ((r = keys_with_session(
				 keys, (int)i, destroy_many_op, &a, &rv)) != 0)
				break;
		}
		/* Gone, or going: found again by a search if at all. */
		for (i = 0; i < nt; i++)
			keys_made_drop(keys, a.t[i].b, a.t[i].len);
		if (r != 0)
			goto out;
	}
	if (rv != CKR_OK) {
		r = keys_token_err("C_DestroyObject", rv);
		goto out;
	}
	/* Not shown by its token: gone only if that token can tell. A token
	 * missing is the call's result before any other refusal: keyd exits
	 * once it has answered it (keyd_conn.c), so that the next command's
	 * keyd reads the token put back. */
	for (i = 0; i < n; i++) {
		if (!want[i] || a.refused[i] || a.found[i])
			continue;
		if (u == NULL && (u = calloc(1, sizeof(*u))) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		if ((r = unseen_check(keys, u, ids[i], &wv[i])) == 0)
			continue;
		a.refused[i] = 1;
		if (a.why.r != RF_ERR_TOKEN_NOT_FOUND)
			rf_err_keep(&a.why, r);
		else
			rf_err_clear();
	}
	for (i = 0; i < n; i++) {
		if (a.refused[i]) {
			want[i] = 0; /* nothing of it destroyed */
			continue;
		}
		k += a.found[i];
		detail[i] =
		    a.found[i] ? "destroyed in the token" : "not in the token";
	}
	snprintf(msg, sizeof(msg),
	    "%zu keys were destroyed in the token; run again to record it", k);
	if ((r = set_states(keys, ids, want, n, "destroyed", hit)) != 0 ||
	    (r = admin_leaves(
		 keys, "destroy", ids, want, detail, n, who, msg)) != 0)
		goto out;
	*done = k;
	r = rf_err_kept(&a.why);
out:
	free(wv);
	free(u);
	free(want);
	free(hit);
	free(a.found);
	free(a.refused);
	free(a.t);
	free(a.tsh);
	free(detail);
	return r;
}

int
rf_keys_destroy(
    struct rf_keys *keys, const char *id, const struct rf_actor *who)
{
	size_t done;

	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, &id, 1, 1, who, NULL);
	return destroy_ids(keys, &id, 1, 1, who, &done);
}

int
rf_keys_destroy_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done)
{
	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, ids, n, 1, who, done);
	return destroy_ids(keys, ids, n, 0, who, done);
}

int
rf_keys_destroy_tenant_many(struct rf_keys *keys, const char *const *ids,
    size_t n, const struct rf_actor *who, size_t *done)
{
	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, ids, n, 2, who, done);
	return destroy_ids(keys, ids, n, 0, who, done);
}
