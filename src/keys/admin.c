/*
 * admin.c: finding keys. Loading and lookup (one key, or many in one pass
 * per token), custody attributes, the ledger's notes, listing with the
 * store's disagreements. Generation is in keygen.c; disable and destroy
 * are in retire.c.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <p11-kit/pkcs11.h>

#include "keys/keys.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/token_int.h"

/*
 * 0 if pub is key id's: its id is the SHA-256 of pub's SPKI (got: that,
 * as lowercase hex). Otherwise RF_ERR_TOKEN, one line: "key ID in the
 * token has a public key hashing to GOT", then after.
 */
int
keys_pub_is_id(const char *id, EVP_PKEY *pub, char got[65], const char *after)
{
	int r;

	if ((r = rf_keys_pub_id(pub, got)) != 0)
		return r;
	if (strcasecmp(got, id) != 0)
		return rf_err_set(RF_ERR_TOKEN,
		    "key %s in the token has a public key hashing to %s%s", id,
		    got, after);
	return 0;
}

struct load_arg {
	const uint8_t *id; /* CKA_ID */
	size_t idlen;
	struct rf_key *key;
	int found;
	int r;
};

static CK_RV
load_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct load_arg *l = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	l->r = 0;
	l->found = 0;
	if ((rv = keys_find_object(keys->f, s, CKO_PRIVATE_KEY, l->id, l->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = keys_find_object(
		 keys->f, s, CKO_PUBLIC_KEY, l->id, l->idlen, &hpub)) != CKR_OK)
		return rv;
	if (hpriv == CK_INVALID_HANDLE || hpub == CK_INVALID_HANDLE)
		return CKR_OK; /* not in this token */
	l->found = 1;
	return keys_read_public(
	    keys->f, s, hpub, 0, &l->key->alg, &l->key->pub, &l->r);
}

int
rf_keys_load(struct rf_keys *keys, const char *id, struct rf_key **out)
{
	struct load_arg l;
	struct rf_key *key = NULL;
	struct where w;
	char got[65];
	CK_RV rv = CKR_OK;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (keys->kc != NULL)
		return rf_kc_load(keys->kc, id, out);
	if ((key = calloc(1, sizeof(*key))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = keys_parse_id(id, key->idbin)) != 0 ||
	    (r = keys_key_where(keys, id, &w)) != 0)
		goto out;
	snprintf(key->id, sizeof(key->id), "%s", id);
	memcpy(key->tid, w.tid, w.tidlen);
	key->tidlen = w.tidlen;
	memset(&l, 0, sizeof(l));
	l.id = key->tid;
	l.idlen = key->tidlen;
	l.key = key;
	if ((r = keys_with_key_token(
		 keys, load_op, &l, &l.found, w.sh, &key->sh, &rv)) != 0)
		goto out;
	if (rv != CKR_OK) {
		r = keys_token_err("C_GetAttributeValue", rv);
		goto out;
	}
	if (!l.found) {
		/* A token taken away under a running process (keyd) is named
		 * as such, not as a missing key. */
		r = rf_keys_token_gone(&keys->cfg,
		    rf_err_set(RF_ERR_KEY_NOT_FOUND,
			"no key pair with id %s in token %s", id,
			keys->cfg.token));
		goto out;
	}
	if ((r = l.r) != 0)
		goto out;
	/* The id names the public key: check that it still does. */
	if ((r = keys_pub_is_id(id, key->pub, got, "")) != 0)
		goto out;
	snprintf(key->id, sizeof(key->id), "%s", got); /* lowercase */
	*out = key;				       /* owned by the caller */
	key = NULL;
	r = 0;
out:
	rf_key_free(key);
	return r;
}

static CK_RV
custody_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	static const CK_ATTRIBUTE_TYPE types[5] = {CKA_SENSITIVE,
	    CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE,
	    CKA_SIGN};
	struct custody_arg *c = varg;
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	size_t i;

	if ((rv = keys_find_object(
		 keys->f, s, CKO_PRIVATE_KEY, c->id, c->idlen, &h)) != CKR_OK)
		return rv;
	if ((c->found = h != CK_INVALID_HANDLE) == 0)
		return CKR_OK;
	c->h = h;
	for (i = 0; i < 5; i++)
		if ((rv = keys_get_bool(keys->f, s, h, types[i], &c->v[i])) !=
		    CKR_OK)
			return rv;
	return CKR_OK;
}

/*
 * Custody attributes of key id (CKA_ID tid), in token sh or (sh < 0)
 * wherever it is, token hint first.
 */
int
keys_custody(struct rf_keys *keys, const char *id, const uint8_t *tid,
    size_t tidlen, int sh, int hint, struct custody_arg *c)
{
	CK_RV rv = CKR_OK;
	int r;

	memset(c, 0, sizeof(*c));
	c->id = tid;
	c->idlen = tidlen;
	if (sh < 0)
		r = keys_with_key_token(
		    keys, custody_op, c, &c->found, hint, &sh, &rv);
	else
		r = keys_with_session(keys, sh, custody_op, c, &rv);
	if (r != 0)
		return r;
	c->id = NULL;
	if (rv != CKR_OK)
		return keys_token_err("C_GetAttributeValue", rv);
	if (!c->found)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "no private key with id %s in token %s", id,
		    keys->cfg.token);
	return 0;
}

int
rf_keys_custody(struct rf_keys *keys, const char *id, int *sensitive,
    int *extractable, int *always_sensitive, int *never_extractable)
{
	struct custody_arg c;
	struct where w;
	int r;

	if (keys->kc != NULL) {
		if ((r = rf_kc_custody(keys->kc, id, c.v)) != 0)
			return r;
	} else if ((r = keys_key_where(keys, id, &w)) != 0 ||
	    (r = keys_custody(keys, id, w.tid, w.tidlen, -1, w.sh, &c)) != 0)
		return r;
	*sensitive = c.v[0];
	*extractable = c.v[1];
	*always_sensitive = c.v[2];
	*never_extractable = c.v[3];
	return 0;
}

int
rf_keys_note(struct rf_keys *keys, enum rf_knote what, const char *connector,
    const char *tenant, const char *conn)
{
	if (keys == NULL)
		return 0;
	if (keys->kc != NULL)
		return rf_kc_note(keys->kc, (int)what, connector, tenant, conn);
	if (keys->ledger == NULL)
		return 0;
	switch (what) {
	case RF_KNOTE_BIND:
		return rf_ledger_bind(keys->ledger, connector, tenant, conn);
	case RF_KNOTE_REVOKE:
		return rf_ledger_revoke_connector(keys->ledger, connector);
	}
	return rf_err_set(RF_ERR_ARG, "unknown ledger note %d", (int)what);
}

int
rf_keys_proof_session(struct rf_keys *keys, const char *serial, const char *pub,
    const uint8_t *proof, size_t prooflen, struct rf_keys_session *out)
{
	memset(out, 0, sizeof(*out));
	if (keys == NULL || keys->kc == NULL)
		return rf_err_set(RF_ERR_STATE,
		    "proof sessions are opened by the custody process (keyd), "
		    "and this process has none");
	return rf_kc_session(keys->kc, serial, pub, proof, prooflen, out);
}

int
rf_keys_note_items(struct rf_keys *keys, int affected,
    const struct rf_knote_item *v, size_t n, uint8_t *changed)
{
	if (keys == NULL || n == 0)
		return 0;
	if (keys->kc != NULL)
		return rf_kc_note_items(keys->kc, affected, v, n, changed);
	if (keys->ledger == NULL) {
		if (changed != NULL)
			memset(changed, 0, n);
		return 0;
	}
	return rf_ledger_items(keys->ledger, affected, v, n, changed);
}

int
keys_tident_cmp(const void *a, const void *b)
{
	const struct tident *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->b, y->b, TID_MAX);
}

struct load_many_arg {
	struct tident *t; /* sorted; idx: the caller's index */
	size_t n;
	int sh;			 /* the token of this pass */
	uint8_t *priv;		 /* per caller's index: private key seen */
	CK_OBJECT_HANDLE *privh; /* optional, per caller's index: its object */
	size_t kept;		 /* rf_keys_remember: pairs kept */
	CK_OBJECT_HANDLE *pub;	 /* per caller's index: public key object */
	struct rf_key **keys;	 /* per caller's index: filled when both */
	int r;
};

/* Every object of a token, once: those whose CKA_ID is in a->t. */
static CK_RV ids_scan(
    struct rf_keys *keys, CK_SESSION_HANDLE s, struct load_many_arg *a);

struct list_arg {
	int (*fn)(void *arg, const struct rf_key_info *ki);
	void *arg;
	int r;
	const char *label; /* of the token being listed */
};

/*
 * What `keys list` shows of private key object h, in one attribute read
 * (a file-backed token pays per read); each attribute read alone when the
 * token refuses one of them.
 */
static CK_RV
list_attrs(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    struct rf_key_info *ki, uint8_t *id, size_t *idlen)
{
	static const CK_ATTRIBUTE_TYPE types[5] = {CKA_SIGN, CKA_SENSITIVE,
	    CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE};
	int *v[5] = {&ki->can_sign, &ki->sensitive, &ki->extractable,
	    &ki->always_sensitive, &ki->never_extractable};
	CK_BBOOL b[5];
	CK_ATTRIBUTE a[7];
	char label[sizeof(ki->label)];
	size_t j, len;
	CK_RV rv;

	for (j = 0; j < 5; j++) {
		b[j] = CK_FALSE;
		a[j].type = types[j];
		a[j].pValue = &b[j];
		a[j].ulValueLen = sizeof(b[j]);
	}
	a[5].type = CKA_LABEL;
	a[5].pValue = label;
	a[5].ulValueLen = sizeof(label) - 1;
	a[6].type = CKA_ID;
	a[6].pValue = id;
	a[6].ulValueLen = ATTR_MAX;
	if (f->C_GetAttributeValue(s, h, a, 7) == CKR_OK) {
		for (j = 0; j < 5; j++)
			*v[j] = b[j] == CK_TRUE;
		memcpy(ki->label, label, a[5].ulValueLen);
		*idlen = a[6].ulValueLen;
		return CKR_OK;
	}
	for (j = 0; j < 5; j++)
		if ((rv = keys_get_bool(f, s, h, types[j], v[j])) != CKR_OK)
			return rv;
	if (keys_get_bytes(f, s, h, CKA_LABEL, (uint8_t *)label,
		sizeof(ki->label) - 1, &len) == CKR_OK)
		memcpy(ki->label, label, len);
	return keys_get_bytes(f, s, h, CKA_ID, id, ATTR_MAX, idlen);
}

/*
 * Every private key of a token: their attributes first, then their public
 * keys found by CKA_ID in one pass over the token (ids_scan), where a
 * search per key would make a file-backed token read every object for
 * each key it lists.
 */
static CK_RV
list_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct list_arg *la = varg;
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_OBJECT_HANDLE *hs = NULL;
	struct rf_key_info *ki = NULL, *k;
	struct load_many_arg a;
	uint8_t buf[ATTR_MAX];
	const char *role;
	EVP_PKEY *pub;
	size_t n = 0, i, len;
	int r;
	CK_RV rv;

	memset(&a, 0, sizeof(a));
	/* Collect handles first: no other call while a search is active. */
	if ((rv = keys_find_all(f, s, CKO_PRIVATE_KEY, &hs, &n)) != CKR_OK)
		goto out;
	if ((ki = calloc(n ? n : 1, sizeof(*ki))) == NULL ||
	    (a.t = calloc(n ? n : 1, sizeof(*a.t))) == NULL ||
	    (a.priv = calloc(n ? n : 1, 1)) == NULL ||
	    (a.pub = calloc(n ? n : 1, sizeof(*a.pub))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < n; i++) {
		a.pub[i] = CK_INVALID_HANDLE;
		if ((rv = list_attrs(f, s, hs[i], &ki[i], buf, &len)) != CKR_OK)
			goto out;
		snprintf(ki[i].token, sizeof(ki[i].token), "%s", la->label);
		if (len > 0 && len <= TID_MAX) {
			rf_hex(buf, len, ki[i].token_id);
			a.t[a.n].len = (uint8_t)len;
			memcpy(a.t[a.n].b, buf, len);
			a.t[a.n++].idx = i;
		}
	}
	qsort(a.t, a.n, sizeof(*a.t), keys_tident_cmp);
	if ((rv = ids_scan(keys, s, &a)) != CKR_OK)
		goto out;
	for (i = 0; i < n && la->r == 0; i++) {
		k = &ki[i];
		/* The key id is the hash of the public key found by CKA_ID
		 * (for keys made before random ids, CKA_ID is that hash). */
		pub = NULL;
		if (a.pub[i] != CK_INVALID_HANDLE &&
		    keys_read_public(f, s, a.pub[i], 0, &k->alg, &pub, &r) ==
			CKR_OK) {
			if (r != 0 || rf_keys_pub_id(pub, k->id) != 0) {
				k->alg = RF_KEY_NONE;
				k->id[0] = '\0';
			}
			EVP_PKEY_free(pub);
			rf_err_clear();
		}
		if (k->id[0] == '\0' && strlen(k->token_id) == 2 * ID_LEN)
			snprintf(k->id, sizeof(k->id), "%s", k->token_id);
		k->retired = keys->ledger != NULL && k->id[0] != '\0' &&
		    rf_ledger_key_retired(keys->ledger, k->id);
		k->ledger =
		    keys->ledger != NULL && rf_ledger_cas_taken(keys->ledger);
		k->role[0] = '\0';
		if (k->ledger && k->id[0] != '\0' &&
		    (role = rf_ledger_key_role(keys->ledger, k->id)) != NULL)
			snprintf(k->role, sizeof(k->role), "%s", role);
		la->r = la->fn(la->arg, k);
	}
out:
	free(a.t);
	free(a.priv);
	free(a.pub);
	free(ki);
	free(hs);
	return rv;
}

int
rf_keys_list(struct rf_keys *keys,
    int (*fn)(void *arg, const struct rf_key_info *ki), void *arg)
{
	struct list_arg la = {fn, arg, 0, NULL};
	CK_RV rv = CKR_OK;
	int i, r;

	if (keys->kc != NULL)
		return rf_kc_list(keys->kc, fn, arg);
	for (i = 0; i < keys->nsh && la.r == 0; i++) {
		la.label = keys->sh[i].label;
		if ((r = keys_with_session(keys, i, list_op, &la, &rv)) != 0)
			return r;
		if (rv != CKR_OK)
			return keys_token_err("C_FindObjects", rv);
	}
	return la.r;
}

/*
 * Many keys: one pass over each token that holds any of them (the CKA_ID of
 * every key object read once) instead of two searches per key. Tokens such
 * as SoftHSM's file store read every object of the token on each search,
 * so per-key searches cost O(keys x objects); the pass costs O(objects).
 * Through keyd it is one request (RF_KMSG_LOAD_MANY).
 */

/* Whole-token reads by load_many_scan (rf_keys_full_reads). */
static atomic_ulong full_reads;

unsigned long
rf_keys_full_reads(void)
{
	return atomic_load(&full_reads);
}

/* ids_scan to find keys to load, counted (rf_keys_full_reads). */
static CK_RV
load_many_scan(
    struct rf_keys *keys, CK_SESSION_HANDLE s, struct load_many_arg *a)
{
	atomic_fetch_add(&full_reads, 1);
	return ids_scan(keys, s, a);
}

/*
 * One search for every object of the token, then one attribute read per
 * object (its class and CKA_ID together): on a file-backed token each
 * search and each read costs file calls per object, so this is the least
 * of them.
 */
static CK_RV
ids_scan(struct rf_keys *keys, CK_SESSION_HANDLE s, struct load_many_arg *a)
{
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_OBJECT_HANDLE *hs = NULL;
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE t[2];
	struct tident want, *hit;
	size_t nhs = 0, i;
	CK_RV rv;

	rv = keys_find_matching(f, s, NULL, 0, &hs, &nhs);
	for (i = 0; rv == CKR_OK && i < nhs; i++) {
		memset(&want, 0, sizeof(want));
		t[0].type = CKA_CLASS;
		t[0].pValue = &cls;
		t[0].ulValueLen = sizeof(cls);
		t[1].type = CKA_ID;
		t[1].pValue = want.b;
		t[1].ulValueLen = sizeof(want.b);
		/* An id longer than ours does not fit: not one of ours. */
		if (f->C_GetAttributeValue(s, hs[i], t, 2) != CKR_OK ||
		    t[1].ulValueLen == 0 || t[1].ulValueLen > sizeof(want.b))
			continue;
		want.len = (uint8_t)t[1].ulValueLen;
		if ((hit = bsearch(&want, a->t, a->n, sizeof(*a->t),
			 keys_tident_cmp)) == NULL)
			continue;
		if (cls == CKO_PRIVATE_KEY) {
			a->priv[hit->idx] = 1;
			if (a->privh != NULL)
				a->privh[hit->idx] = hs[i];
		} else if (cls == CKO_PUBLIC_KEY &&
		    a->pub[hit->idx] == CK_INVALID_HANDLE)
			a->pub[hit->idx] = hs[i];
	}
	free(hs);
	return rv;
}

static CK_RV
load_many_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct load_many_arg *a = varg;
	struct rf_key *k;
	size_t i, x;
	CK_RV rv;

	CK_OBJECT_HANDLE hpub, hpriv;
	unsigned long gen = keys_module_gen(keys);
	size_t miss = 0;
	int is;

	/*
	 * Keys this process made or found (a pool key taken by contain, in
	 * keyd) are found by the handles kept from their generation. Their
	 * public key, when it was read from the token then, is taken from
	 * memory: only this process opens the token, its key objects are
	 * unmodifiable, and a destroyed pair or a new module generation
	 * leaves the set. Otherwise the private key's handle is checked by
	 * one read, the public key's in the read of the key itself, and the
	 * key is kept for the next time. The token is searched only for the
	 * others.
	 */
	for (i = 0; i < a->n && a->r == 0; i++) {
		x = a->t[i].idx;
		k = a->keys[x];
		if (k->pub != NULL)
			continue; /* read before the session was lost */
		is = 0;
		if (!keys_made_get(keys, a->sh, a->t[i].b, a->t[i].len, gen,
			&hpub, &hpriv, &k->pub, &k->alg)) {
			miss++;
			continue;
		}
		if (k->pub == NULL &&
		    keys_object_is(keys->f, s, hpriv, CKO_PRIVATE_KEY,
			a->t[i].b, a->t[i].len)) {
			/* The public key is read with the check of its
			 * handle. */
			if ((rv = keys_read_public_of(keys->f, s, hpub,
				 a->t[i].b, a->t[i].len, &is, &k->alg, &k->pub,
				 &a->r)) != CKR_OK)
				return rv;
			if (is)
				keys_made_put(keys, a->sh, a->t[i].b, hpub,
				    hpriv, gen, k->pub, k->alg);
		}
		if (k->pub != NULL) {
			a->priv[x] = 1;
			a->pub[x] = hpub;
		} else {
			miss++;
		}
	}
	if (a->r != 0)
		return CKR_OK;
	if (miss > 0 && (rv = load_many_scan(keys, s, a)) != CKR_OK)
		return rv;
	for (i = 0; i < a->n && a->r == 0; i++) {
		x = a->t[i].idx;
		k = a->keys[x];
		if (!a->priv[x] || a->pub[x] == CK_INVALID_HANDLE ||
		    k->pub != NULL)
			continue; /* not (all) in this token, or read */
		if ((rv = keys_read_public(keys->f, s, a->pub[x], 0, &k->alg,
			 &k->pub, &a->r)) != CKR_OK)
			return rv;
	}
	return CKR_OK;
}

/*
 * The per-token passes of rf_keys_load_many, on LOAD_THREADS threads:
 * a file-backed token answers each attribute read with file calls, and
 * at 36,000 keys the passes took 5.4 s of one core. Each pass has its own
 * session and its own token's keys; the per-key arrays are shared at
 * disjoint indexes.
 */
#define LOAD_THREADS 2

struct load_many_par {
	struct rf_keys *keys;
	struct rf_key **k;
	size_t n;
	struct load_many_arg proto; /* the per-key arrays */
	struct rf_err_held *res;    /* per token */
};

static void
load_many_tokens(void *arg, size_t from, size_t to)
{
	struct load_many_par *p = arg;
	struct load_many_arg a = p->proto;
	struct rf_key **k = p->k;
	CK_RV rv = CKR_OK;
	size_t i;
	int r = 0;

	if (from < to && (a.t = calloc(p->n, sizeof(*a.t))) == NULL) {
		rf_err_keep(&p->res[from], RF_ERR_ALLOC);
		return;
	}
	for (; r == 0 && from < to; from++) {
		a.sh = (int)from;
		a.n = 0;
		for (i = 0; i < p->n; i++) {
			if (k[i]->sh != a.sh)
				continue;
			a.t[a.n].len = (uint8_t)k[i]->tidlen;
			memset(a.t[a.n].b, 0, sizeof(a.t[a.n].b));
			memcpy(a.t[a.n].b, k[i]->tid, k[i]->tidlen);
			a.t[a.n++].idx = i;
		}
		if (a.n == 0)
			continue;
		qsort(a.t, a.n, sizeof(*a.t), keys_tident_cmp);
		if ((r = keys_with_session(
			 p->keys, a.sh, load_many_op, &a, &rv)) == 0 &&
		    rv != CKR_OK)
			r = keys_token_err("C_FindObjects", rv);
		if (r == 0)
			r = a.r;
		rf_err_keep(&p->res[from], r);
	}
	free(a.t);
}

int
rf_keys_load_many(
    struct rf_keys *keys, const char *const *ids, size_t n, struct rf_key **out)
{
	struct load_many_arg a;
	struct load_many_par par;
	struct rf_key **k = NULL;
	struct where w;
	char got[65];
	size_t i;
	int sh, nsh, r = RF_ERR_ALLOC;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (n == 0)
		return 0;
	if (keys->kc != NULL)
		return rf_kc_load_many(keys->kc, ids, n, out);
	memset(&a, 0, sizeof(a));
	memset(&par, 0, sizeof(par));
	pthread_mutex_lock(&keys->lock);
	nsh = keys->nsh;
	pthread_mutex_unlock(&keys->lock);
	if ((k = calloc(n, sizeof(*k))) == NULL ||
	    (a.priv = calloc(n, 1)) == NULL ||
	    (a.pub = calloc(n, sizeof(*a.pub))) == NULL ||
	    (par.res = calloc(nsh > 0 ? nsh : 1, sizeof(*par.res))) == NULL)
		goto out;
	a.keys = k;
	for (i = 0; i < n; i++) {
		a.pub[i] = CK_INVALID_HANDLE;
		if ((k[i] = calloc(1, sizeof(*k[i]))) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		if ((r = keys_parse_id(ids[i], k[i]->idbin)) != 0 ||
		    (r = keys_key_where(keys, ids[i], &w)) != 0)
			goto out;
		snprintf(k[i]->id, sizeof(k[i]->id), "%s", ids[i]);
		memcpy(k[i]->tid, w.tid, w.tidlen);
		k[i]->tidlen = w.tidlen;
		k[i]->sh = w.sh;
	}
	/* One pass per token holding some of them, as the store records. */
	par.keys = keys;
	par.k = k;
	par.n = n;
	par.proto = a;
	rf_parallel((size_t)nsh, LOAD_THREADS, load_many_tokens, &par);
	for (sh = 0; sh < nsh; sh++)
		if ((r = rf_err_kept(&par.res[sh])) != 0)
			goto out;
	for (i = 0; i < n; i++) {
		if (k[i]->sh < 0 || k[i]->sh >= nsh) {
			/* No recorded token: probe them as rf_keys_load does.
			 */
			if ((r = rf_keys_load(keys, ids[i], &out[i])) ==
			    RF_ERR_KEY_NOT_FOUND) {
				rf_err_clear();
				r = 0;
			}
			if (r != 0)
				goto out;
			continue;
		}
		if (k[i]->pub == NULL)
			continue; /* not in its token */
		/* The id names the public key: check that it still does. */
		if ((r = keys_pub_is_id(ids[i], k[i]->pub, got, "")) != 0)
			goto out;
		snprintf(k[i]->id, sizeof(k[i]->id), "%s", got);
		out[i] = k[i];
		k[i] = NULL;
	}
	r = 0;
out:
	if (r != 0)
		for (i = 0; i < n; i++) {
			rf_key_free(out[i]);
			out[i] = NULL;
		}
	for (i = 0; k != NULL && i < n; i++)
		rf_key_free(k[i]);
	free(k);
	free(par.res);
	free(a.priv);
	free(a.pub);
	return r;
}

/* rf_keys_remember: keep the handles of the pairs one pass found. */
static CK_RV
remember_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct load_many_arg *a = varg;
	unsigned long gen = keys_module_gen(keys);
	enum rf_key_alg alg;
	EVP_PKEY *pk;
	size_t i, x;
	CK_RV rv;
	int bad;

	if ((rv = load_many_scan(keys, s, a)) != CKR_OK)
		return rv;
	for (i = 0; i < a->n; i++) {
		x = a->t[i].idx;
		if (!a->priv[x] || a->pub[x] == CK_INVALID_HANDLE)
			continue; /* not (all) in this token */
		/* Its public key too, read now so that taking the key later
		 * reads nothing (a key this process cannot use is kept
		 * without it, and read again when taken). */
		pk = NULL;
		bad = 0;
		if ((rv = keys_read_public(
			 keys->f, s, a->pub[x], 0, &alg, &pk, &bad)) != CKR_OK)
			return rv;
		if (bad != 0)
			rf_err_clear();
		keys_made_put(keys, a->sh, a->t[i].b, a->pub[x], a->privh[x],
		    gen, bad == 0 ? pk : NULL, alg);
		EVP_PKEY_free(pk);
		a->kept++;
	}
	return CKR_OK;
}

int
rf_keys_remember(struct rf_keys *keys, const char *const *ids, size_t n,
    int token, size_t *kept)
{
	struct load_many_arg a;
	struct where w;
	CK_RV rv = CKR_OK;
	size_t i;
	int r = RF_ERR_ALLOC;

	*kept = 0;
	if (keys->kc != NULL || n == 0 || token < 0 ||
	    token >= rf_keys_token_count(keys))
		return 0; /* a client keeps no handles; nothing to find */
	memset(&a, 0, sizeof(a));
	if ((a.t = calloc(n, sizeof(*a.t))) == NULL ||
	    (a.priv = calloc(n, 1)) == NULL ||
	    (a.pub = calloc(n, sizeof(*a.pub))) == NULL ||
	    (a.privh = calloc(n, sizeof(*a.privh))) == NULL)
		goto out;
	/* Keys made with a random CKA_ID, recorded in this token. */
	for (i = 0; i < n; i++) {
		a.pub[i] = CK_INVALID_HANDLE;
		if ((r = keys_key_where(keys, ids[i], &w)) != 0)
			goto out;
		if (w.sh != token || w.tidlen != TID_LEN)
			continue;
		a.t[a.n].len = (uint8_t)w.tidlen;
		memcpy(a.t[a.n].b, w.tid, w.tidlen);
		a.t[a.n++].idx = i;
	}
	r = 0;
	if (a.n == 0)
		goto out;
	qsort(a.t, a.n, sizeof(*a.t), keys_tident_cmp);
	a.sh = token;
	if ((r = keys_with_session(keys, token, remember_op, &a, &rv)) != 0)
		goto out;
	if (rv != CKR_OK) {
		r = keys_token_err("C_FindObjects", rv);
		goto out;
	}
	*kept = a.kept;
	r = 0;
out:
	free(a.t);
	free(a.priv);
	free(a.pub);
	free(a.privh);
	return r;
}

int
rf_keys_token_of(struct rf_keys *keys, const char *id)
{
	struct where w;

	if (keys->kc != NULL)
		return -1;
	if (keys_key_where(keys, id, &w) != 0) {
		rf_err_clear();
		return -1;
	}
	return w.sh;
}

int
rf_keys_token_count(struct rf_keys *keys)
{
	int n;

	if (keys->kc != NULL)
		return 0;
	pthread_mutex_lock(&keys->lock);
	n = keys->nsh;
	pthread_mutex_unlock(&keys->lock);
	return n;
}
