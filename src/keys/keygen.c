/*
 * keygen.c: key generation, one key or a batch: each key's random CKA_ID
 * recorded in the store before the token makes the pair, attributes that
 * forbid changes and copies, the "keygen" leaves; the keys of a batch that
 * failed are destroyed again (keys_destroy_quiet, retire.c). Also the
 * label a tenant's key is made with (rf_keys_tenant_label). Loading and
 * listing keys are in admin.c.
 */

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/keys_int.h"
#include "keys/token_int.h"
#include "store/store.h"

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
	CK_ULONG bits = g->alg == RF_KEY_RSA_4096 ? 4096
	    : g->alg == RF_KEY_RSA_3072		  ? 3072
						  : 2048;
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
		if (keys_destroy_quiet(keys, out[i]->sh, out[i]->id,
			out[i]->tid, out[i]->tidlen, &found) != 0 ||
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

/* The hex digits of the hash in a shortened label (rf_keys_tenant_label). */
#define LABEL_HASH_HEX 16

int
rf_keys_tenant_label(
    const char *tenant, const char *name, char out[RF_KEY_LABEL_MAX + 1])
{
	char pair[2 * RF_KEY_LABEL_MAX + 2], hex[2 * SHA256_DIGEST_LENGTH + 1];
	uint8_t md[SHA256_DIGEST_LENGTH];
	int n;

	out[0] = '\0';
	if (tenant == NULL || name == NULL)
		return rf_err_set(
		    RF_ERR_ARG, "a key label needs a tenant and a name");
	n = snprintf(pair, sizeof(pair), "%s/%s", tenant, name);
	if (n < 0 || (size_t)n >= sizeof(pair))
		return rf_err_set(RF_ERR_ARG,
		    "tenant %.64s and name %.64s are too long for a key label",
		    tenant, name);
	if (n <= RF_KEY_LABEL_MAX) {
		memcpy(out, pair, (size_t)n + 1);
		return 0;
	}
	/* "<first 47 of the pair>~<16 hex of SHA-256(pair)>": 64. */
	if (EVP_Digest(pair, (size_t)n, md, NULL, EVP_sha256(), NULL) != 1)
		return rf_err_set(RF_ERR_INTERNAL,
		    "cannot hash the key label of %s (OpenSSL)", pair);
	rf_hex(md, sizeof(md), hex);
	snprintf(out, RF_KEY_LABEL_MAX + 1, "%.*s~%.*s",
	    RF_KEY_LABEL_MAX - 1 - LABEL_HASH_HEX, pair, LABEL_HASH_HEX, hex);
	return 0;
}

/* A key's "made for" (struct rf_keygen): none, or a short plain name. */
static int
made_for_ok(const char *m)
{
	size_t i;

	if (m == NULL)
		return 1;
	for (i = 0; m[i] != '\0'; i++)
		if (i == RF_KEY_MADE_FOR_MAX ||
		    !((m[i] >= 'a' && m[i] <= 'z') ||
			(m[i] >= 'A' && m[i] <= 'Z') ||
			(m[i] >= '0' && m[i] <= '9') || m[i] == '.' ||
			m[i] == '_' || m[i] == '-'))
			return 0;
	return 1;
}

/* The token's part of a generation (generate): the pairs made in turn. */
struct make {
	struct rf_keys *keys;
	const struct rf_keygen *reqs;
	size_t n;
	const struct rf_actor *who;
	uint8_t (*tids)[TID_LEN];
	const int *shs;
	struct rf_key **out;
	uint8_t *kept;
	struct rf_audit_event *evs;
	struct rf_key_rec *recs;
	char (*detail)[96];
	const struct keys_prio *prio; /* make_low's */
	int r;			      /* make_low's result, and its message */
	char msg[MSG_MAX];
};

/*
 * Make the pairs of m in the token, in turn: out[i], its handles kept,
 * its "keygen" leaf and "generated" row filled in (written by generate).
 * No lock of the store or the record is held here, only the module's for
 * reading and a session (keys_with_session).
 */
static int
make_pairs(struct make *m)
{
	struct rf_keys *keys = m->keys;
	const struct rf_keygen *reqs = m->reqs;
	const struct rf_actor *who = m->who;
	struct rf_key **out = m->out;
	struct gen_arg g;
	CK_RV rv = CKR_OK;
	size_t i;
	int r;

	for (i = 0; i < m->n; i++) {
		memset(&g, 0, sizeof(g));
		g.alg = reqs[i].alg;
		g.label = reqs[i].label;
		g.tid = m->tids[i];
		/*
		 * A generation that fails may have left objects behind with
		 * this CKA_ID (SoftHSM writes the public key's file, then the
		 * private key's; a token folder gone in between keeps both
		 * and neither can be destroyed): its row stays "generating",
		 * so that 'keys list' knows what they are.
		 */
		m->kept[i] = 1;
		if ((r = keys_with_session(keys, m->shs[i], gen_op, &g, &rv)) !=
		    0)
			return r;
		/*
		 * A token that no longer answers (SoftHSM's, its folder gone
		 * while the module was open) says so, and keyd starts over
		 * (token_gone): the same command run again makes the key.
		 */
		if (rv != CKR_OK) {
			r = keys_token_answers(
			    keys, m->shs[i], "no key was made there");
			if (r == RF_ERR_TOKEN_NOT_FOUND)
				return r;
			rf_err_clear();
			return keys_token_err("C_GenerateKeyPair", rv);
		}
		if (g.r != 0)
			return g.r;
		m->kept[i] = 0;
		out[i] = g.key;
		out[i]->sh = m->shs[i];
		/* Found again without a search while this process runs
		 * (rf_keys_load_many: a pool key taken by contain). */
		keys_made_put(keys, m->shs[i], m->tids[i], g.pub, g.priv, g.gen,
		    out[i]->pub, out[i]->alg);
#ifdef RF_TEST_HOOKS
		if (keys->test_after_keygen != NULL)
			keys->test_after_keygen(
			    keys->test_after_keygen_arg, i + 1);
#endif
		snprintf(m->detail[i], sizeof(m->detail[i]), "%s %s",
		    rf_key_alg_name(reqs[i].alg), reqs[i].label);
		m->evs[i].type = "keygen";
		m->evs[i].key_id = out[i]->id;
		m->evs[i].tenant = reqs[i].tenant;
		m->evs[i].actor = who ? who->actor : NULL;
		m->evs[i].source = who ? who->source : NULL;
		m->evs[i].detail = m->detail[i];
		snprintf(
		    m->recs[i].id, sizeof(m->recs[i].id), "%s", out[i]->id);
		snprintf(
		    m->recs[i].state, sizeof(m->recs[i].state), "generated");
	}
	return 0;
}

/* make_pairs on a thread of its own, at m->prio's priority. */
static void *
make_low(void *arg)
{
	struct make *m = arg;
	struct sched_param sp;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	(void)pthread_setname_np(pthread_self(), "rf-keygen-low");
	memset(&sp, 0, sizeof(sp));
	/* Linux: the policy and the nice value are this thread's alone. A
	 * thread may always lower its own priority. */
	if (m->prio->policy == SCHED_IDLE || m->prio->policy == SCHED_BATCH)
		(void)pthread_setschedparam(
		    pthread_self(), m->prio->policy, &sp);
	if (m->prio->nice > 0)
		(void)setpriority(PRIO_PROCESS, (id_t)tid, m->prio->nice);
	if ((m->r = make_pairs(m)) != 0)
		snprintf(m->msg, sizeof(m->msg), "%s", rf_err_msg(m->r));
	return NULL;
}

/*
 * The token's work at prio (NULL, or nothing lower than normal: on this
 * thread). A caller at a lower priority (keyd's for a `keys pool fill`)
 * has its pairs made on a thread at that priority, so that they take only
 * cores nothing else wants; this thread waits for it, and writes the
 * store and the record before and after at its own priority, so that no
 * lock another thread needs is held at the lower one.
 */
static int
make_pairs_at(struct make *m, const struct keys_prio *prio)
{
	pthread_t t;

	if (!keys_prio_low(prio))
		return make_pairs(m);
	m->prio = prio;
	if (pthread_create(&t, NULL, make_low, m) != 0)
		return make_pairs(m); /* here, as before */
	pthread_join(t, NULL);
	if (m->r != 0)
		return rf_err_set(m->r, "%s", m->msg);
	return 0;
}

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
    int spread, const struct rf_actor *who, const struct keys_prio *prio,
    struct rf_key **out)
{
	struct make mk;
	struct rf_audit_event *evs = NULL;
	struct rf_key_rec *recs = NULL;
	char(*detail)[96] = NULL, (*pending)[65] = NULL, msg[MSG_MAX];
	uint8_t(*tids)[TID_LEN] = NULL, *kept = NULL;
	int *shs = NULL;
	size_t i;
	int noted = 0, audit_failed = 0, r = RF_ERR_INTERNAL;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	for (i = 0; i < n; i++) {
		if (reqs[i].alg != RF_KEY_EC_P256 &&
		    reqs[i].alg != RF_KEY_EC_P384 &&
		    !rf_key_alg_rsa(reqs[i].alg))
			return rf_err_set(RF_ERR_ARG,
			    "unknown key algorithm %d", reqs[i].alg);
		if (reqs[i].label == NULL || reqs[i].label[0] == '\0' ||
		    strlen(reqs[i].label) > RF_KEY_LABEL_MAX)
			return rf_err_set(RF_ERR_ARG,
			    "a key label of 1 to %d characters is needed",
			    RF_KEY_LABEL_MAX);
		if (!made_for_ok(reqs[i].made_for))
			return rf_err_set(RF_ERR_ARG,
			    "what key %s is made for is not at most %d "
			    "letters, digits, '.', '_' or '-'",
			    reqs[i].label, RF_KEY_MADE_FOR_MAX);
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
		/* In the key's first row: never a key without its purpose. */
		snprintf(recs[i].made_for, sizeof(recs[i].made_for), "%s",
		    reqs[i].made_for ? reqs[i].made_for : "");
		snprintf(
		    recs[i].label, sizeof(recs[i].label), "%s", reqs[i].label);
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
	memset(&mk, 0, sizeof(mk));
	mk.keys = keys;
	mk.reqs = reqs;
	mk.n = n;
	mk.who = who;
	mk.tids = tids;
	mk.shs = shs;
	mk.out = out;
	mk.kept = kept;
	mk.evs = evs;
	mk.recs = recs;
	mk.detail = detail;
	if ((r = make_pairs_at(&mk, prio)) != 0)
		goto out;
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
	struct rf_keygen req = {alg, label, tenant, NULL};

	*out = NULL;
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, &req, 1, who, out);
	return generate(keys, &req, 1, 0, who, NULL, out);
}

int
rf_keys_generate_many(struct rf_keys *keys, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, struct rf_key **out)
{
	return keys_generate_at(keys, reqs, n, who, NULL, out);
}

int
keys_generate_at(struct rf_keys *keys, const struct rf_keygen *reqs, size_t n,
    const struct rf_actor *who, const struct keys_prio *prio,
    struct rf_key **out)
{
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, reqs, n, who, out);
	return generate(keys, reqs, n, 1, who, prio, out);
}
