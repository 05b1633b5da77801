/*
 * admin.c: key administration. Generation (one or many, with a random
 * CKA_ID and attributes that forbid changes and copies), loading and
 * lookup, custody attributes, listing with the store's disagreements,
 * disable and destroy with their intent and result leaves.
 */

#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/token_int.h"
#include "store/store.h"

static int destroy_quiet(struct rf_keys *keys, int sh, const char *id,
    const uint8_t *tid, size_t tidlen, int *found);

/*
 * 0 if pub is key id's: its id is the SHA-256 of pub's SPKI (got: that,
 * as lowercase hex). Otherwise RF_ERR_TOKEN, one line: "key ID in the
 * token has a public key hashing to GOT", then after.
 */
static int
pub_is_id(const char *id, EVP_PKEY *pub, char got[65], const char *after)
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

struct gen_arg {
	enum rf_key_alg alg;
	const char *label;
	const uint8_t *tid;	    /* TID_LEN random bytes: the new CKA_ID */
	struct rf_key *key;	    /* out */
	CK_OBJECT_HANDLE pub, priv; /* out: its objects */
	unsigned long gen;	    /* out: the generation of the handles */
	int r;
};

static CK_RV
gen_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct gen_arg *g = varg;
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = g->alg == RF_KEY_RSA_3072 ? 3072 : 2048;
	uint8_t e[3] = {0x01, 0x00, 0x01}; /* 65537 */
	const uint8_t *tid = g->tid;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ATTRIBUTE pubt[13], privt[16];
	CK_ULONG npub = 0, npriv = 0;
	struct rf_key *key = NULL;
	CK_RV rv;

	g->r = 0;
	/*
	 * The pair is found by a random CKA_ID, set here once: both objects
	 * are made neither modifiable nor copyable (PKCS#11 v2.40 section
	 * 4.4: CKA_MODIFIABLE and CKA_COPYABLE can only be set at creation),
	 * so that with the PIN nobody can turn CKA_SIGN back on, rename the
	 * key, or copy it to a session object. The key id (SPKI hash) is the
	 * public name; the store maps it to this CKA_ID.
	 */
#define ATTR(t, n, ty, ptr, len)                                               \
	do {                                                                   \
		t[n].type = (ty);                                              \
		t[n].pValue = (void *)(ptr);                                   \
		t[n].ulValueLen = (len);                                       \
		n++;                                                           \
	} while (0)
	ATTR(pubt, npub, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(pubt, npub, CKA_PRIVATE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_VERIFY, &yes, sizeof(yes));
	ATTR(pubt, npub, CKA_ENCRYPT, &no, sizeof(no));
	ATTR(pubt, npub, CKA_WRAP, &no, sizeof(no));
	ATTR(pubt, npub, CKA_VERIFY_RECOVER, &no, sizeof(no));
	ATTR(pubt, npub, CKA_MODIFIABLE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_COPYABLE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_ID, tid, TID_LEN);
	ATTR(pubt, npub, CKA_LABEL, g->label, strlen(g->label));
	switch (g->alg) {
	case RF_KEY_EC_P256:
		ATTR(pubt, npub, CKA_EC_PARAMS, keys_oid_p256,
		    sizeof(keys_oid_p256));
		break;
	case RF_KEY_EC_P384:
		ATTR(pubt, npub, CKA_EC_PARAMS, keys_oid_p384,
		    sizeof(keys_oid_p384));
		break;
	default:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		ATTR(pubt, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		break;
	}
	ATTR(privt, npriv, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_SIGN, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_DECRYPT, &no, sizeof(no));
	ATTR(privt, npriv, CKA_UNWRAP, &no, sizeof(no));
	ATTR(privt, npriv, CKA_DERIVE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_SIGN_RECOVER, &no, sizeof(no));
	ATTR(privt, npriv, CKA_MODIFIABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_COPYABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_ID, tid, TID_LEN);
	ATTR(privt, npriv, CKA_LABEL, g->label, strlen(g->label));
	if (mech.mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN)
		ATTR(pubt, npub, CKA_PUBLIC_EXPONENT, e, sizeof(e));
#undef ATTR
	rv = f->C_GenerateKeyPair(
	    s, &mech, pubt, npub, privt, npriv, &hpub, &hpriv);
	if (rv != CKR_OK)
		return rv;
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		g->r = RF_ERR_ALLOC;
		goto fail;
	}
	/* Checked in full once, when made: its id commits to these bytes. */
	if ((rv = keys_read_public(
		 f, s, hpub, 1, &key->alg, &key->pub, &g->r)) != CKR_OK ||
	    g->r != 0)
		goto fail;
	if (key->alg != g->alg) {
		g->r = rf_err_set(RF_ERR_TOKEN,
		    "token made a %s key when asked for %s",
		    rf_key_alg_name(key->alg), rf_key_alg_name(g->alg));
		goto fail;
	}
	if ((g->r = rf_keys_pub_id(key->pub, key->id)) != 0 ||
	    (g->r = keys_parse_id(key->id, key->idbin)) != 0)
		goto fail;
	memcpy(key->tid, tid, TID_LEN);
	key->tidlen = TID_LEN;
	g->key = key; /* handed to rf_keys_generate */
	g->pub = hpub;
	g->priv = hpriv;
	g->gen = keys_module_gen(keys); /* keys_with_session holds it */
	return CKR_OK;
fail:
	/* Leave nothing half made in the token. */
	f->C_DestroyObject(s, hpriv);
	f->C_DestroyObject(s, hpub);
	rf_key_free(key);
	return rv;
}

/*
 * Destroy the keys of out[0..n) made by a batch that failed; free them.
 * kept[i] becomes 1 for a key made that could not be destroyed, or that
 * the token did not show (just made, it is there: a token that shows
 * nothing has gone away, or was initialised again without its folder):
 * its row stays, so that the store still knows of it.
 */
static int
undo_generated(
    struct rf_keys *keys, struct rf_key **out, size_t n, uint8_t *kept)
{
	size_t i;
	int bad = 0, found;

	for (i = 0; i < n; i++) {
		if (out[i] == NULL)
			continue;
		if (destroy_quiet(keys, out[i]->sh, out[i]->id, out[i]->tid,
			out[i]->tidlen, &found) != 0 ||
		    !found) {
			rf_err_clear();
			bad = 1;
			kept[i] = 1;
		} else {
			/* Gone from the token: its row goes too. */
			keys_store_lock(keys);
			if (rf_store_key_forget(keys_store(keys), out[i]->id) !=
			    0)
				bad = 1;
			keys_store_unlock(keys);
		}
		rf_key_free(out[i]);
		out[i] = NULL;
	}
	return bad;
}

#ifdef RF_TEST_HOOKS
void
rf_keys_test_after_keygen(
    struct rf_keys *keys, void (*fn)(void *arg, size_t made), void *arg)
{
	keys->test_after_keygen = fn;
	keys->test_after_keygen_arg = arg;
}
#endif

/*
 * Keys made one at a time (CA, OCSP signer, audit keys: every process loads
 * them) live in the first token, which every process logs in to at open;
 * keys made in batches (connections) are spread over all the tokens. SoftHSM
 * rewrites a token's token.object on every login, and another process
 * reading it at that moment can fail: the fewer tokens a process logs in
 * to, the fewer such moments.
 */
static int
generate(struct rf_keys *keys, const struct rf_keygen *reqs, size_t n,
    int spread, const struct rf_actor *who, struct rf_key **out)
{
	struct gen_arg g;
	struct rf_audit_event *evs = NULL;
	struct rf_key_rec *recs = NULL;
	char(*detail)[96] = NULL, (*pending)[65] = NULL, msg[MSG_MAX];
	uint8_t(*tids)[TID_LEN] = NULL, *kept = NULL;
	int *shs = NULL;
	CK_RV rv = CKR_OK;
	size_t i;
	int noted = 0, audit_failed = 0, r = RF_ERR_INTERNAL;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	for (i = 0; i < n; i++) {
		if (reqs[i].alg != RF_KEY_EC_P256 &&
		    reqs[i].alg != RF_KEY_EC_P384 &&
		    reqs[i].alg != RF_KEY_RSA_2048 &&
		    reqs[i].alg != RF_KEY_RSA_3072)
			return rf_err_set(RF_ERR_ARG,
			    "unknown key algorithm %d", reqs[i].alg);
		if (reqs[i].label == NULL || reqs[i].label[0] == '\0' ||
		    strlen(reqs[i].label) > 64)
			return rf_err_set(RF_ERR_ARG,
			    "a key label of 1 to 64 characters is needed");
	}
	if (n == 0)
		return 0;
	if (keys_in_transaction(keys))
		return rf_err_set(RF_ERR_INTERNAL,
		    "refusing to make keys inside an open store transaction");
	if ((evs = calloc(n, sizeof(*evs))) == NULL ||
	    (recs = calloc(n, sizeof(*recs))) == NULL ||
	    (detail = calloc(n, sizeof(*detail))) == NULL ||
	    (pending = calloc(n, sizeof(*pending))) == NULL ||
	    (tids = calloc(n, sizeof(*tids))) == NULL ||
	    (kept = calloc(n, 1)) == NULL ||
	    (shs = calloc(n, sizeof(*shs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/*
	 * The store learns each key's random CKA_ID before the token makes
	 * it (state "generating", id "pending-<CKA_ID>"), then its id once
	 * made ("generated", until the caller records its purpose with
	 * rf_store_key_add). A process killed in between leaves a key the
	 * store knows of, never one it does not.
	 */
	if (RAND_bytes((unsigned char *)tids, (int)(n * TID_LEN)) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "no random bytes");
		goto out;
	}
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&keys->lock);
		shs[i] =
		    spread ? (int)(keys->next++ % (unsigned int)keys->nsh) : 0;
		snprintf(recs[i].token, sizeof(recs[i].token), "%s",
		    keys->sh[shs[i]].label);
		pthread_mutex_unlock(&keys->lock);
		rf_hex(tids[i], TID_LEN, recs[i].token_id);
		snprintf(pending[i], sizeof(pending[i]), "pending-%.32s",
		    recs[i].token_id);
		snprintf(recs[i].id, sizeof(recs[i].id), "%s", pending[i]);
		snprintf(recs[i].alg, sizeof(recs[i].alg), "%s",
		    rf_key_alg_name(reqs[i].alg));
		snprintf(recs[i].purpose, sizeof(recs[i].purpose), "-");
		snprintf(recs[i].tenant, sizeof(recs[i].tenant), "%s",
		    reqs[i].tenant ? reqs[i].tenant : "");
		snprintf(recs[i].state, sizeof(recs[i].state), "generating");
		recs[i].created = rf_now();
	}
	keys_store_lock(keys);
	r = rf_store_key_note_many(keys_store(keys), recs, n);
	keys_store_unlock(keys);
	if (r != 0) {
		r = rf_err_set(r,
		    "the store could not record the keys to make (%s); "
		    "nothing was made",
		    rf_err_msg(r));
		goto out;
	}
	noted = 1;
	for (i = 0; i < n; i++) {
		memset(&g, 0, sizeof(g));
		g.alg = reqs[i].alg;
		g.label = reqs[i].label;
		g.tid = tids[i];
		/*
		 * A generation that fails may have left objects behind with
		 * this CKA_ID (SoftHSM writes the public key's file, then the
		 * private key's; a token folder gone in between keeps both
		 * and neither can be destroyed): its row stays "generating",
		 * so that 'keys list' knows what they are.
		 */
		kept[i] = 1;
		if ((r = keys_with_session(keys, shs[i], gen_op, &g, &rv)) != 0)
			goto out;
		if (rv != CKR_OK) {
			r = keys_token_err("C_GenerateKeyPair", rv);
			goto out;
		}
		if ((r = g.r) != 0)
			goto out;
		kept[i] = 0;
		out[i] = g.key;
		out[i]->sh = shs[i];
		/* Found again without a search while this process runs
		 * (rf_keys_load_many: a pool key taken by contain). */
		keys_made_put(keys, shs[i], tids[i], g.pub, g.priv, g.gen,
		    out[i]->pub, out[i]->alg);
#ifdef RF_TEST_HOOKS
		if (keys->test_after_keygen != NULL)
			keys->test_after_keygen(
			    keys->test_after_keygen_arg, i + 1);
#endif
		snprintf(detail[i], sizeof(detail[i]), "%s %s",
		    rf_key_alg_name(reqs[i].alg), reqs[i].label);
		evs[i].type = "keygen";
		evs[i].key_id = out[i]->id;
		evs[i].tenant = reqs[i].tenant;
		evs[i].actor = who ? who->actor : NULL;
		evs[i].source = who ? who->source : NULL;
		evs[i].detail = detail[i];
		snprintf(recs[i].id, sizeof(recs[i].id), "%s", out[i]->id);
		snprintf(recs[i].state, sizeof(recs[i].state), "generated");
	}
	/* Each "generating" row becomes the key's own. */
	keys_store_lock(keys);
	r = rf_store_key_note_many(keys_store(keys), recs, n);
	keys_store_unlock(keys);
	if (r != 0) {
		r = rf_err_set(r,
		    "the store could not record the new %s (%s); %s",
		    n == 1 ? "key" : "keys", rf_err_msg(r),
		    n == 1 ? "the new key was destroyed"
			   : "the new keys were destroyed");
		goto out;
	}
	/* A key without its record must not exist. */
	if ((r = keys_audit_append(keys, evs, n,
		 n == 1 ? "the new key was destroyed"
			: "the new keys were destroyed")) != 0) {
		audit_failed = 1;
		goto out;
	}
	r = 0;
out:
	if (r != 0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		if (kept != NULL && undo_generated(keys, out, n, kept) != 0)
			r = rf_err_set(r,
			    "%s; a new key could not be destroyed: "
			    "see 'ringfence keys list'",
			    audit_failed ? "audit record could not be appended"
					 : msg);
		else
			r = rf_err_set(r, "%s", msg);
		/* Rows of keys never made, or made and destroyed. */
		keys_store_lock(keys);
		for (i = 0; noted && i < n; i++)
			if (!kept[i] &&
			    rf_store_key_forget(keys_store(keys), pending[i]) !=
				0)
				rf_err_clear();
		keys_store_unlock(keys);
		if (noted)
			r = rf_err_set(r, "%s", msg);
	}
	free(shs);
	free(kept);
	free(tids);
	free(pending);
	free(detail);
	free(recs);
	free(evs);
	return r;
}

int
rf_keys_generate(struct rf_keys *keys, enum rf_key_alg alg, const char *label,
    const char *tenant, const struct rf_actor *who, struct rf_key **out)
{
	struct rf_keygen req = {alg, label, tenant};

	*out = NULL;
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, &req, 1, who, out);
	return generate(keys, &req, 1, 0, who, out);
}

int
rf_keys_generate_many(struct rf_keys *keys, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, struct rf_key **out)
{
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, reqs, n, who, out);
	return generate(keys, reqs, n, 1, who, out);
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
	if ((r = pub_is_id(id, key->pub, got, "")) != 0)
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

/* A key's CKA_ID as a sort key: length first, then the bytes. */
struct tident {
	uint8_t len;
	uint8_t b[TID_MAX];
	size_t idx; /* in the caller's ids */
};

static int
tident_cmp(const void *a, const void *b)
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
	qsort(a.t, a.n, sizeof(*a.t), tident_cmp);
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

	/* A mismatch says so (pub_is_id); anything else is a failed read. */
	if (r == 0 &&
	    ((r = pub_is_id(id, pub, got,
		  ": the store's token id was changed; nothing of it was "
		  "destroyed")) == 0 ||
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

static int
destroy_quiet(struct rf_keys *keys, int sh, const char *id, const uint8_t *tid,
    size_t tidlen, int *found)
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
	if ((r = rf_store_begin(st)) != 0)
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
			 tident_cmp)) == NULL ||
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
	enum rf_key_alg alg;
	EVP_PKEY *pub;
	char got[65];
	size_t i, x, m = 0;
	CK_RV rv = CKR_OK;
	int r;

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
		pub = NULL;
		if ((rv = keys_read_public(keys->f, s, p->obj[1][i], 0, &alg,
			 &pub, &r)) != CKR_OK)
			break;
		if (r == 0 && rf_keys_pub_id(pub, got) == 0 &&
		    (hit = bsearch(&want, miss, m, sizeof(*miss), lost_cmp)) !=
			NULL &&
		    !a->refused[hit->x])
			destroy_refuse(a, hit->x,
			    rf_err_set(RF_ERR_TOKEN,
				"key %s is in the token under a CKA_ID that is "
				"not the store's: the store's token id was "
				"changed; nothing of it was destroyed",
				hit->id));
		rf_err_clear();
		EVP_PKEY_free(pub);
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
	struct where w;
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
	if ((want = calloc(n, 1)) == NULL || (hit = calloc(n, 1)) == NULL ||
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
		if ((r = keys_key_where(keys, ids[i], &w)) != 0)
			goto out;
		if (single) {
			d.id = a.t[0].b;
			memcpy(a.t[0].b, w.tid, w.tidlen);
			d.idlen = w.tidlen;
			hint = w.sh;
			if ((r = keys_with_key_token(keys, probe_op, &d,
				 &d.found, hint, &sh, &rv)) != 0)
				goto out;
			if (rv != CKR_OK) {
				r = keys_token_err("C_FindObjects", rv);
				goto out;
			}
			if (!d.found &&
			    (!w.recorded ||
				strcmp(w.state, "destroyed") == 0)) {
				r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
				    "no key with id %s in token %s", ids[i],
				    keys->cfg.token);
				goto out;
			}
			d.found = 0;
			a.t[0].len = (uint8_t)w.tidlen;
			a.t[0].idx = 0;
			want[0] = 1;
			nt = 1;
			continue;
		}
		if (w.recorded && strcmp(w.state, "destroyed") == 0)
			continue;
		want[i] = 1;
		a.tsh[i] = w.sh;
		a.t[nt].len = (uint8_t)w.tidlen;
		memcpy(a.t[nt].b, w.tid, w.tidlen);
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
	} else {
		qsort(a.t, nt, sizeof(*a.t), tident_cmp);
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
		if ((hit = bsearch(
			 &want, a->t, a->n, sizeof(*a->t), tident_cmp)) == NULL)
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
		qsort(a.t, a.n, sizeof(*a.t), tident_cmp);
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
		if ((r = pub_is_id(ids[i], k[i]->pub, got, "")) != 0)
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
	qsort(a.t, a.n, sizeof(*a.t), tident_cmp);
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
