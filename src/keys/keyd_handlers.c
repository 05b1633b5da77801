/*
 * keyd_handlers.c: what the custody process (keyd.c) does with a request.
 * Each caller class has a table of the requests it may ask (as OpenSSH's
 * monitor.c keeps one per phase); a request is decoded strictly, checked
 * by the policy (policy.c) and run on the token with the rf_keys_* code,
 * its answer encoded. Signing requests go on to the pipeline
 * (keyd_pipe.c); keys list and LOAD_MANY run aside, on a thread of their
 * own, and key generation beside (keyd_aside.c). The keys kept loaded are in
 * keyd_key.c; the fuzz target's decoder is here too.
 */

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "keys/keyd_int.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/policy.h"

#define BATCH_KEYS_MAX 100000

/*
 * Handlers: decode the request (strictly), act, encode the answer.
 */

typedef int (*handler_fn)(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out);

static void
get_who(struct rf_kmsg *m, const struct conn *c, struct who_buf *w)
{
	(void)c;
	rf_kmsg_str(m, w->actor);
	rf_kmsg_str(m, w->source);
	w->who.actor = w->actor[0] ? w->actor : NULL;
	w->who.source = w->source[0] ? w->source : NULL;
}

static int
put_key(struct rf_kbuf *out, const struct rf_key *key)
{
	uint8_t buf[RF_EC_SPKI_MAX];
	unsigned char *der = NULL;
	size_t n;
	int len;

	rf_kbuf_u8(out, (uint8_t)rf_key_alg(key));
	/* EC keys in their fixed form without OpenSSL's encoder search. */
	if ((n = rf_keys_ec_spki(rf_key_public(key), buf)) > 0) {
		rf_kbuf_bytes(out, buf, n);
		return 0;
	}
	if ((len = i2d_PUBKEY(rf_key_public(key), &der)) <= 0)
		return rf_err_set(
		    RF_ERR_INTERNAL, "cannot encode a public key");
	rf_kbuf_bytes(out, der, (size_t)len);
	OPENSSL_free(der);
	return 0;
}

static int
h_hello(struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	int claim = rf_kmsg_u8(m), r;

	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	/* A lower class may be claimed, never a higher one, and a second
	 * hello may only lower it further. */
	if (claim > c->cred_cls)
		claim = c->cred_cls;
	if (c->hello && claim > c->cls)
		claim = c->cls;
	c->cls = claim;
	if (c->cls < RF_KCLASS_NONE)
		c->cls = RF_KCLASS_NONE;
	c->hello = 1;
	rf_kbuf_u8(out, (uint8_t)c->cls);
	rf_kbuf_u32(out, (uint32_t)getpid());
	if (c->cls == RF_KCLASS_NONE)
		keyd_refusal(kd, c, RF_KMSG_HELLO,
		    "caller is neither admin nor server_user");
	return 0;
}

static int
h_status(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	int r;

	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	rf_kbuf_u32(out, (uint32_t)getpid());
	rf_kbuf_u32(out, (uint32_t)geteuid());
	rf_kbuf_u8(out, (uint8_t)c->cls);
	rf_kbuf_str(out, kd->token);
	rf_kbuf_u32(out, kd->tokens);
	rf_kbuf_u32(out, (uint32_t)kd->nconns);
	rf_kbuf_u32(out, (uint32_t)kd->pl->inflight); /* signing requests */
	rf_kbuf_u64(out, kd->requests);
	rf_kbuf_u64(out, kd->refused);
	return 0;
}

static int
h_load(struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	char id[RF_KPROTO_STR_MAX];
	struct rf_key *key = NULL;
	int r;

	(void)c;
	rf_kmsg_str(m, id);
	if ((r = rf_kmsg_end(m)) != 0 || (r = keyd_key_get(kd, id, &key)) != 0)
		return r;
	r = put_key(out, key);
	rf_key_free(key);
	return r;
}

/* A LOAD_MANY's ids, read from its frame on the loop. */
struct load_many {
	uint32_t n;
	char (*ids)[RF_KPROTO_STR_MAX];
	const char **idp;
};

static void
load_many_free(void *arg)
{
	struct load_many *lm = arg;

	if (lm == NULL)
		return;
	free(lm->ids);
	free(lm->idp);
	free(lm);
}

static int
load_many_aside(struct keyd *kd, void *arg, struct rf_kbuf *out)
{
	struct load_many *lm = arg;
	struct rf_key **keys;
	uint32_t i;
	int r;

	if ((keys = calloc(lm->n ? lm->n : 1, sizeof(*keys))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = rf_keys_load_many(kd->keys, lm->idp, lm->n, keys)) == 0) {
		rf_kbuf_u32(out, lm->n);
		for (i = 0; i < lm->n && r == 0; i++) {
			rf_kbuf_u8(out, keys[i] != NULL);
			if (keys[i] != NULL)
				r = put_key(out, keys[i]);
		}
	}
	for (i = 0; i < lm->n; i++)
		rf_key_free(keys[i]);
	free(keys);
	return r;
}

/*
 * Many keys in one pass over the tokens (rf_keys_load_many), aside (see
 * keyd_run_aside). Like LOAD it changes no key, so signatures in flight go on
 * beside it: contain takes its pool keys while the revocation's OCSP
 * answers are being signed.
 */
static int
h_load_many(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct load_many *lm;
	uint32_t n = rf_kmsg_u32(m), i;
	int r;

	if (m->err != 0 || n > BATCH_KEYS_MAX || n > (m->len - m->off) / 4)
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody load: bad number of keys");
	if ((lm = calloc(1, sizeof(*lm))) == NULL ||
	    (lm->ids = calloc(n ? n : 1, sizeof(*lm->ids))) == NULL ||
	    (lm->idp = calloc(n ? n : 1, sizeof(*lm->idp))) == NULL) {
		load_many_free(lm);
		return RF_ERR_ALLOC;
	}
	lm->n = n;
	for (i = 0; i < n; i++) {
		rf_kmsg_str(m, lm->ids[i]);
		lm->idp[i] = lm->ids[i];
	}
	if ((r = rf_kmsg_end(m)) != 0) {
		load_many_free(lm);
		return r;
	}
	return keyd_run_aside(
	    kd, c, RF_KMSG_LOAD_MANY, load_many_aside, lm, load_many_free, out);
}

/* The role of a CA key made with label (keys.h), or NULL if it is none. */
static const char *
label_role(const char *label)
{
	const char *pfx = RF_KEY_LABEL_CA_PREFIX;

	if (strncmp(label, pfx, strlen(pfx)) == 0)
		return "issuing";
	if (strncmp(label, "ringfence ", 10) != 0)
		return NULL;
	return rf_ledger_role(label + 10);
}

/* A KEYGEN's keys, read from its frame on the loop, made beside it. */
struct keygen_job {
	struct who_buf w;
	uint32_t n;
	struct rf_keygen *reqs;
	char (*labels)[RF_KPROTO_STR_MAX];
	char (*tenants)[RF_KPROTO_STR_MAX];
	char (*made_for)[RF_KPROTO_STR_MAX];
	struct keys_prio prio; /* the caller's, for the token's work */
};

static void
keygen_job_free(void *arg)
{
	struct keygen_job *j = arg;

	if (j == NULL)
		return;
	free(j->reqs);
	free(j->labels);
	free(j->tenants);
	free(j->made_for);
	free(j);
}

/*
 * The caller's scheduling policy and nice value, from its process
 * (SO_PEERCRED's pid; Linux answers for its thread of that id, the main
 * one): `keys pool fill` runs at SCHED_IDLE and nice 19, and keyd makes
 * its keys so too. A caller keyd has no pid of, or cannot ask about, is
 * taken as normal.
 */
static void
caller_prio(const struct conn *c, struct keys_prio *p)
{
	int v;

	p->policy = SCHED_OTHER;
	p->nice = 0;
	if (c->pid <= 0)
		return;
	/* SCHED_IDLE becomes SCHED_BATCH here: an idle-class thread gets
	 * next to nothing while other work runs, and keyd's stop waits for
	 * the keys it is making (keyd_pipe_stop); at SCHED_BATCH and nice 19
	 * it still yields to everything, but finishes. */
	if ((v = sched_getscheduler(c->pid)) == SCHED_IDLE || v == SCHED_BATCH)
		p->policy = SCHED_BATCH;
	errno = 0;
	v = getpriority(PRIO_PROCESS, (id_t)c->pid);
	if (errno == 0 && v > 0)
		p->nice = v;
}

static int
keygen_beside(struct keyd *kd, void *arg, struct rf_kbuf *out)
{
	struct keygen_job *j = arg;
	struct rf_key **keys;
	const char *role;
	uint32_t i;
	int r, low;

	if ((keys = calloc(j->n, sizeof(*keys))) == NULL)
		return RF_ERR_ALLOC;
	/* A caller at normal priority (contain, issue) goes first: the
	 * background refill's step ends, and it waits meanwhile. */
	low = keys_prio_low(&j->prio);
	if (!low)
		keyd_bg_pause(kd);
	if ((r = keys_generate_at(
		 kd->keys, j->reqs, j->n, &j->w.who, &j->prio, keys)) != 0)
		goto out;
	/* serve's TLS keys and the CA keys: keyd keeps what each was made
	 * as, and signs for class server with it only as that (policy.c),
	 * whatever purpose the store gives it later. */
	for (i = 0; i < j->n && r == 0; i++)
		if (strcmp(j->labels[i], RF_KEY_LABEL_TLS) == 0)
			r = rf_ledger_tls_key(
			    rf_kpolicy_ledger(kd->policy), rf_key_id(keys[i]));
		else if ((role = label_role(j->labels[i])) != NULL)
			r = rf_ledger_ca_key(rf_kpolicy_ledger(kd->policy),
			    rf_key_id(keys[i]), role);
	if (r != 0)
		goto out;
	rf_kbuf_u32(out, j->n);
	for (i = 0; i < j->n && r == 0; i++)
		r = put_key(out, keys[i]);
out:
	if (!low)
		keyd_bg_resume(kd);
	for (i = 0; i < j->n; i++)
		rf_key_free(keys[i]);
	free(keys);
	return r;
}

/* Keys are made beside the loop (keyd_run_beside), at the caller's
 * priority (keys_generate_at). */
static int
h_keygen(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct keygen_job *j;
	uint32_t n, i;
	int r;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return RF_ERR_ALLOC;
	get_who(m, c, &j->w);
	n = rf_kmsg_u32(m);
	/* Each key takes at least 13 bytes: n is bounded by the frame. */
	if (m->err != 0 || n == 0 || n > BATCH_KEYS_MAX ||
	    n > (m->len - m->off) / 13) {
		keygen_job_free(j);
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody keygen: bad number of keys");
	}
	j->n = n;
	if ((j->reqs = calloc(n, sizeof(*j->reqs))) == NULL ||
	    (j->labels = calloc(n, sizeof(*j->labels))) == NULL ||
	    (j->tenants = calloc(n, sizeof(*j->tenants))) == NULL ||
	    (j->made_for = calloc(n, sizeof(*j->made_for))) == NULL) {
		keygen_job_free(j);
		return RF_ERR_ALLOC;
	}
	for (i = 0; i < n; i++) {
		j->reqs[i].alg = (enum rf_key_alg)rf_kmsg_u8(m);
		rf_kmsg_str(m, j->labels[i]);
		rf_kmsg_str(m, j->tenants[i]);
		rf_kmsg_str(m, j->made_for[i]); /* checked by keygen.c */
		j->reqs[i].label = j->labels[i];
		j->reqs[i].tenant = j->tenants[i][0] ? j->tenants[i] : NULL;
		j->reqs[i].made_for = j->made_for[i];
	}
	if ((r = rf_kmsg_end(m)) != 0) {
		keygen_job_free(j);
		return r;
	}
	caller_prio(c, &j->prio);
	return keyd_run_beside(
	    kd, c, RF_KMSG_KEYGEN, keygen_beside, j, keygen_job_free, out);
}

static void
sign_in_free(struct sign_in *s)
{
	free(s->reqs);
	free(s->str);
	free(s->refs);
}

static int
sign_decode(struct rf_kmsg *m, const struct conn *c, struct sign_in *s)
{
	uint32_t i;
	uint8_t flags;
	size_t used = 0;

	memset(s, 0, sizeof(*s));
	rf_kmsg_str(m, s->id);
	flags = rf_kmsg_u8(m);
	s->digest = (flags & RF_KSIGN_DIGEST) != 0;
	s->recorded = (flags & RF_KSIGN_RECORDED) != 0;
	get_who(m, c, &s->w);
	s->n = rf_kmsg_u32(m);
	if (m->err == 0 &&
	    (flags & ~(RF_KSIGN_DIGEST | RF_KSIGN_RECORDED)) != 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody sign: unknown flags 0x%02x (run one ringfence "
		    "build for keyd and its callers)",
		    flags);
	/* Each item takes at least 29 bytes: n is bounded by the frame. */
	if (m->err != 0 || s->n == 0 || s->n > RF_KPROTO_BATCH_MAX ||
	    s->n > (m->len - m->off) / 29)
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody sign: bad number of messages");
	/* Every ref's bytes are the frame's: what is left of it, and a NUL
	 * per item, hold them all. */
	if ((s->reqs = calloc(s->n, sizeof(*s->reqs))) == NULL ||
	    (s->str = calloc(s->n, sizeof(*s->str))) == NULL ||
	    (s->refs = malloc(m->len - m->off + s->n)) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < s->n; i++) {
		char *ref = s->refs + used;

		s->reqs[i].scheme = (enum rf_sig_scheme)rf_kmsg_u8(m);
		rf_kmsg_str(m, s->str[i][0]);
		rf_kmsg_strn(m, ref, RF_KPROTO_REF_MAX);
		used += strlen(ref) + 1;
		rf_kmsg_str(m, s->str[i][1]);
		rf_kmsg_str(m, s->str[i][2]);
		rf_kmsg_str(m, s->str[i][3]);
		rf_kmsg_bytes(m, &s->reqs[i].proof, &s->reqs[i].prooflen,
		    RF_KPROTO_PROOF_MAX);
		rf_kmsg_bytes(
		    m, &s->reqs[i].msg, &s->reqs[i].msglen, RF_KPROTO_MAX);
		s->reqs[i].what = s->str[i][0][0] ? s->str[i][0] : NULL;
		s->reqs[i].ref = ref[0] ? ref : NULL;
		s->reqs[i].tenant = s->str[i][1][0] ? s->str[i][1] : NULL;
		s->reqs[i].conn = s->str[i][2][0] ? s->str[i][2] : NULL;
		s->reqs[i].on_behalf = s->str[i][3][0] ? s->str[i][3] : NULL;
		if (s->reqs[i].prooflen == 0)
			s->reqs[i].proof = NULL;
	}
	return rf_kmsg_end(m);
}

void
keyd_pending_free(struct pending *p)
{
	size_t k;

	if (p == NULL)
		return;
	for (k = 0; p->sigs != NULL && k < p->s.n; k++)
		rf_sig_clear(&p->sigs[k]);
	free(p->sigs);
	rf_key_free(p->key);
	sign_in_free(&p->s);
	if (p->frame != NULL)
		OPENSSL_cleanse(p->frame, p->framelen);
	free(p->frame);
	rf_kbuf_clear(&p->out);
	if (p->arg_free != NULL)
		p->arg_free(p->arg);
	free(p);
}

static int
h_sign(struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct pending *p;
	int r;

	(void)out;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = sign_decode(m, c, &p->s)) != 0)
		goto fail;
	/* Policy first: a refused request loads no key and signs nothing. */
	if ((r = rf_kpolicy_sign(kd->policy, c->cls, p->s.id, p->s.digest,
		 p->s.reqs, p->s.n)) != 0 ||
	    (r = keyd_key_get(kd, p->s.id, &p->key)) != 0)
		goto fail;
	if ((p->sigs = calloc(p->s.n, sizeof(*p->sigs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto fail;
	}
	p->type = RF_KMSG_SIGN;
	p->conn = c->id;
	p->fd = c->fd;
	p->frame = c->frame;
	p->framelen = c->need;
	c->frame = NULL;
	c->busy = 1;
	keyd_pipe_wait(kd, p);
	return QUEUED;
fail:
	keyd_pending_free(p);
	return r;
}

/* 0 if every key of ids the tokens hold checks (rf_keys_load_many). */
static int
loaded_many(struct keyd *kd, const char *const *ids, uint32_t n)
{
	struct rf_key **k;
	uint32_t i;
	int r;

	if ((k = calloc(n ? n : 1, sizeof(*k))) == NULL)
		return RF_ERR_ALLOC;
	r = rf_keys_load_many(kd->keys, ids, n, k);
	for (i = 0; i < n; i++)
		rf_key_free(k[i]);
	free(k);
	return r;
}

/*
 * Tenant keys only (rf_keys_destroy_tenant_many): the caller found them in
 * the store, which serve's user can write; keyd's ledger says what a CA
 * or TLS key is. Each id is the ledger's form (64 lowercase hex), the
 * ledger has taken the store's CA keys, and the token object the store
 * points at has that id's public key (rf_keys_load_many checks it), so
 * that a rewritten token id cannot aim the destroy at another key.
 */
static int
tenant_keys_only(struct keyd *kd, const char *const *ids, uint32_t n)
{
	struct rf_ledger *l = rf_kpolicy_ledger(kd->policy);
	struct rf_key *k;
	const char *role;
	uint32_t i;
	int r;

	/* A draining request runs without the audit's lock, but a key
	 * generation beside the loop (keygen_beside) may be writing the
	 * store's connection under it: the follow takes it. */
	if (!rf_ledger_cas_taken(l)) {
		rf_audit_lock(kd->audit);
		r = rf_ledger_follow(l, kd->st);
		rf_audit_unlock(kd->audit);
	} else
		r = 0;
	if (r != 0)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused to destroy keys: its ledger cannot take "
		    "the store's CA keys (%s)",
		    rf_err_msg(r));
	for (i = 0; i < n; i++) {
		if (!rf_ledger_key_id_ok(ids[i]))
			return rf_err_set(RF_ERR_REFUSED,
			    "custody refused to destroy key %.64s: not a key "
			    "id (64 lowercase hex digits)",
			    ids[i]);
		if ((role = rf_ledger_key_role(l, ids[i])) != NULL)
			return rf_err_set(RF_ERR_REFUSED,
			    "custody refused to destroy key %.64s: keyd made "
			    "it as the %s key, and the store calls it a "
			    "tenant connection's (the store was changed "
			    "behind keyd's back)",
			    ids[i], role);
	}
	/* One pass over the tokens for all of them; only when one does not
	 * check are they loaded one by one, to name it. */
	if ((r = loaded_many(kd, ids, n)) == 0)
		return 0;
	rf_err_clear();
	for (i = 0; i < n; i++) {
		if ((r = rf_keys_load(kd->keys, ids[i], &k)) == 0) {
			rf_key_free(k);
			continue;
		}
		if (r == RF_ERR_KEY_NOT_FOUND) {
			rf_err_clear(); /* not in the token: nothing to aim */
			continue;
		}
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused to destroy key %.64s: %s", ids[i],
		    rf_err_msg(r));
	}
	return 0;
}

static int
h_disable(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct who_buf w;
	char(*ids)[RF_KPROTO_STR_MAX] = NULL;
	const char **idp = NULL;
	uint32_t n, i;
	size_t done = 0;
	int destroy = rf_kmsg_u8(m), r;

	get_who(m, c, &w);
	n = rf_kmsg_u32(m);
	if (m->err != 0 || n > BATCH_KEYS_MAX || n > (m->len - m->off) / 4 ||
	    destroy > 2)
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody disable: bad number of keys");
	if ((ids = calloc(n + 1, sizeof(*ids))) == NULL ||
	    (idp = calloc(n + 1, sizeof(*idp))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		rf_kmsg_str(m, ids[i]);
		idp[i] = ids[i];
	}
	if ((r = rf_kmsg_end(m)) != 0)
		goto out;
	if (destroy == 2 && (r = tenant_keys_only(kd, idp, n)) != 0)
		goto out;
	/* Tests: the store changed between the checks and the destroy. */
	rf_test_pause("keyd-destroy-checked");
	r = destroy ? rf_keys_destroy_many(kd->keys, idp, n, &w.who, &done)
		    : rf_keys_disable_many(kd->keys, idp, n, &w.who, &done);
	keyd_key_forget(kd, idp, n);
	if (r == 0)
		rf_kbuf_u64(out, (uint64_t)done);
out:
	free(ids);
	free(idp);
	return r;
}

/* An administrator's binding or connector revocation, kept in the ledger
 * before the caller changes the store (rf_keys_note). */
static int
h_note(struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	char connector[RF_KPROTO_STR_MAX], tenant[RF_KPROTO_STR_MAX];
	char conn[RF_KPROTO_STR_MAX];
	int what = rf_kmsg_u8(m), r;

	(void)out;
	rf_kmsg_str(m, connector);
	rf_kmsg_str(m, tenant);
	rf_kmsg_str(m, conn);
	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	switch (what) {
	case RF_KNOTE_BIND:
		r = rf_ledger_bind(
		    rf_kpolicy_ledger(kd->policy), connector, tenant, conn);
		break;
	case RF_KNOTE_REVOKE:
		r = rf_ledger_revoke_connector(
		    rf_kpolicy_ledger(kd->policy), connector);
		break;
	default:
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody note: unknown kind %d", what);
	}
	if (r == 0)
		keyd_logf(kd, "uid %u %s connector %s%s%s%s%s",
		    (unsigned)c->uid,
		    what == RF_KNOTE_BIND ? "bound" : "revoked", connector,
		    what == RF_KNOTE_BIND ? " to " : "",
		    what == RF_KNOTE_BIND ? tenant : "",
		    what == RF_KNOTE_BIND ? "/" : "",
		    what == RF_KNOTE_BIND ? conn : "");
	return r;
}

/*
 * A connector's proof session, relayed by serve (connector.h): the hook
 * (rf_keyd_opts.session) checks the connector's signed proof and opens
 * it. Nothing is signed with a token key.
 */
static int
h_session(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	char serial[RF_KPROTO_STR_MAX], pub[RF_KPROTO_STR_MAX];
	char sid[RF_KPROTO_STR_MAX], kpub[RF_KPROTO_STR_MAX];
	char confirm[RF_KPROTO_STR_MAX];
	const uint8_t *proof;
	size_t prooflen;
	int64_t end = 0;
	int r;

	rf_kmsg_str(m, serial);
	rf_kmsg_str(m, pub);
	rf_kmsg_bytes(m, &proof, &prooflen, RF_KPROTO_PROOF_MAX);
	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	if (kd->o == NULL || kd->o->session == NULL)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused a proof session: keyd has no connector "
		    "policy");
	sid[0] = kpub[0] = confirm[0] = '\0';
	if ((r = kd->o->session(kd->o->assertion_arg, kd->st,
		 rf_kpolicy_ledger(kd->policy), serial, pub, proof, prooflen,
		 sid, kpub, confirm, &end)) != 0)
		return r;
	keyd_logf(kd,
	    "uid %u opened a proof session for connector "
	    "certificate %s",
	    (unsigned)c->uid, serial);
	rf_kbuf_str(out, sid);
	rf_kbuf_str(out, kpub);
	rf_kbuf_str(out, confirm);
	rf_kbuf_u64(out, (uint64_t)end);
	return 0;
}

/* An administrator's incident items, kept in the ledger before the
 * caller changes the store (rf_keys_note_items). */
static int
h_note_items(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct rf_knote_item *v = NULL;
	char(*str)[3][RF_KPROTO_STR_MAX] = NULL;
	uint8_t *changed = NULL;
	int affected = rf_kmsg_u8(m), r;
	uint32_t n = rf_kmsg_u32(m), i;

	/* Each item takes at least 12 bytes: n is bounded by the frame. */
	if (m->err != 0 || affected > 1 || n > RF_KPROTO_NOTE_ITEMS_MAX ||
	    n > (m->len - m->off) / 12)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody note-items: bad number of items");
	if ((v = calloc(n + 1, sizeof(*v))) == NULL ||
	    (str = calloc(n + 1, sizeof(*str))) == NULL ||
	    (changed = calloc(n + 1, 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		rf_kmsg_str(m, str[i][0]);
		rf_kmsg_str(m, str[i][1]);
		v[i].tenant = str[i][0];
		v[i].conn = str[i][1];
		rf_kmsg_str(m, str[i][2]);
		v[i].key = str[i][2];
	}
	if ((r = rf_kmsg_end(m)) != 0 ||
	    (r = rf_ledger_items(
		 rf_kpolicy_ledger(kd->policy), affected, v, n, changed)) != 0)
		goto out;
	rf_kbuf_u32(out, n);
	for (i = 0; i < n; i++)
		rf_kbuf_u8(out, changed[i]);
	keyd_logf(kd, "uid %u noted %u incident item%s %s", (unsigned)c->uid,
	    (unsigned)n, n == 1 ? "" : "s",
	    affected ? "affected" : "no longer affected");
out:
	free(v);
	free(str);
	free(changed);
	return r;
}

struct listed {
	struct rf_kbuf *out;
	uint32_t n;
};

static int
list_one(void *arg, const struct rf_key_info *ki)
{
	struct listed *l = arg;
	struct rf_kbuf *out = l->out;

	l->n++;
	rf_kbuf_str(out, ki->id);
	rf_kbuf_str(out, ki->label);
	rf_kbuf_u8(out, (uint8_t)ki->alg);
	rf_kbuf_u8(out, (uint8_t)ki->can_sign);
	rf_kbuf_u8(out, (uint8_t)ki->sensitive);
	rf_kbuf_u8(out, (uint8_t)ki->extractable);
	rf_kbuf_u8(out, (uint8_t)ki->always_sensitive);
	rf_kbuf_u8(out, (uint8_t)ki->never_extractable);
	rf_kbuf_str(out, ki->token_id);
	rf_kbuf_str(out, ki->token);
	rf_kbuf_u8(out, (uint8_t)ki->retired);
	rf_kbuf_u8(out, (uint8_t)ki->ledger);
	rf_kbuf_str(out, ki->role);
	return 0;
}

/* Every key of every token into out, in one pass (a count first was a
 * second whole pass: 40 s at 72,000 keys); the count goes in front. */
static int
list_into(struct rf_keys *keys, struct rf_kbuf *out)
{
	struct listed l = {out, 0};
	size_t at = out->len;
	int r;

	rf_kbuf_u32(out, 0);
	if ((r = rf_keys_list(keys, list_one, &l)) != 0)
		return r;
	rf_kbuf_put_u32(out, at, l.n);
	return 0;
}

static int
list_aside(struct keyd *kd, void *arg, struct rf_kbuf *out)
{
	(void)arg;
	return list_into(kd->keys, out);
}

static int
h_list(struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	int r;

	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	return keyd_run_aside(kd, c, RF_KMSG_LIST, list_aside, NULL, NULL, out);
}

static int
h_custody(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	char id[RF_KPROTO_STR_MAX];
	int v[4], r;

	(void)c;
	rf_kmsg_str(m, id);
	if ((r = rf_kmsg_end(m)) != 0 ||
	    (r = rf_keys_custody(kd->keys, id, &v[0], &v[1], &v[2], &v[3])) !=
		0)
		return r;
	for (r = 0; r < 4; r++)
		rf_kbuf_u8(out, (uint8_t)v[r]);
	return 0;
}

static int
h_measure(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	char id[RF_KPROTO_STR_MAX];
	struct rf_key *key = NULL;
	uint64_t n;
	uint32_t threads;
	double per_sec;
	int r;

	(void)c;
	rf_kmsg_str(m, id);
	n = rf_kmsg_u64(m);
	threads = rf_kmsg_u32(m);
	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	if (n == 0 || n > 10000000 || threads < 1 || threads > 16)
		return rf_err_set(RF_ERR_ARG,
		    "measure 1 to 10000000 signatures on 1 to 16 threads");
	if ((r = rf_keys_load(kd->keys, id, &key)) != 0)
		return r;
	r = rf_keys_measure_rate(
	    kd->keys, key, (size_t)n, (int)threads, &per_sec);
	rf_key_free(key);
	if (r == 0)
		rf_kbuf_u64(out, (uint64_t)(per_sec * 1000.0));
	return r;
}

/*
 * Decode a request frame as its handler does, acting on nothing (the fuzz
 * target's entry, fuzz/fuzz_keyd_proto.c): 0 if keyd would accept it.
 */
int
rf_keyd_decode(const uint8_t *frame, size_t len)
{
	struct conn c;
	struct rf_kmsg m;
	struct sign_in s;
	struct who_buf w;
	char str[RF_KPROTO_STR_MAX];
	const uint8_t *p;
	size_t plen;
	uint32_t n, i;
	uint8_t v;
	int r;

	memset(&c, 0, sizeof(c));
	if ((r = rf_kmsg_parse(frame, len, &m)) != 0)
		return r;
	switch (m.type) {
	case RF_KMSG_HELLO:
		(void)rf_kmsg_u8(&m);
		break;
	case RF_KMSG_LOAD:
	case RF_KMSG_CUSTODY:
		rf_kmsg_str(&m, str);
		break;
	case RF_KMSG_SIGN:
		r = sign_decode(&m, &c, &s);
		sign_in_free(&s);
		return r;
	case RF_KMSG_KEYGEN:
		get_who(&m, &c, &w);
		n = rf_kmsg_u32(&m);
		if (m.err != 0 || n == 0 || n > (m.len - m.off) / 13)
			return RF_ERR_MALFORMED;
		for (i = 0; i < n; i++) {
			(void)rf_kmsg_u8(&m);
			rf_kmsg_str(&m, str);
			rf_kmsg_str(&m, str);
			rf_kmsg_str(&m, str);
		}
		break;
	case RF_KMSG_DISABLE:
		/* As h_disable reads it: destroy 0, 1 or 2 (tenant keys). */
		v = rf_kmsg_u8(&m);
		get_who(&m, &c, &w);
		n = rf_kmsg_u32(&m);
		if (m.err != 0 || n > (m.len - m.off) / 4 || v > 2 ||
		    n > BATCH_KEYS_MAX)
			return RF_ERR_MALFORMED;
		for (i = 0; i < n; i++)
			rf_kmsg_str(&m, str);
		break;
	case RF_KMSG_LOAD_MANY:
		n = rf_kmsg_u32(&m);
		if (m.err != 0 || n > (m.len - m.off) / 4)
			return RF_ERR_MALFORMED;
		for (i = 0; i < n; i++)
			rf_kmsg_str(&m, str);
		break;
	case RF_KMSG_MEASURE:
		rf_kmsg_str(&m, str);
		(void)rf_kmsg_u64(&m);
		(void)rf_kmsg_u32(&m);
		break;
	case RF_KMSG_NOTE_ITEMS:
		(void)rf_kmsg_u8(&m);
		n = rf_kmsg_u32(&m);
		if (m.err != 0 || n > RF_KPROTO_NOTE_ITEMS_MAX ||
		    n > (m.len - m.off) / 12)
			return RF_ERR_MALFORMED;
		for (i = 0; i < n; i++) {
			rf_kmsg_str(&m, str);
			rf_kmsg_str(&m, str);
			rf_kmsg_str(&m, str);
		}
		break;
	case RF_KMSG_NOTE:
		(void)rf_kmsg_u8(&m);
		rf_kmsg_str(&m, str);
		rf_kmsg_str(&m, str);
		rf_kmsg_str(&m, str);
		break;
	case RF_KMSG_SESSION:
		rf_kmsg_str(&m, str);
		rf_kmsg_str(&m, str);
		rf_kmsg_bytes(&m, &p, &plen, RF_KPROTO_PROOF_MAX);
		break;
	case RF_KMSG_LIST:
	case RF_KMSG_STATUS:
		break;
	default:
		return RF_ERR_MALFORMED; /* an answer, not a request */
	}
	return rf_kmsg_end(&m);
}

/* What each class may ask (policy.c then decides what it may sign). */
struct handler {
	int type;
	handler_fn fn;
	int drain; /* runs once every signature in flight is answered */
};

/* A key or the token changes: no signature may straddle it. */
#define DRAIN 1

static const struct handler table_admin[] = {
    {RF_KMSG_HELLO, h_hello, 0},
    {RF_KMSG_STATUS, h_status, 0},
    {RF_KMSG_LOAD, h_load, 0},
    {RF_KMSG_SIGN, h_sign, 0},
    {RF_KMSG_KEYGEN, h_keygen, 0},
    {RF_KMSG_DISABLE, h_disable, DRAIN},
    {RF_KMSG_LIST, h_list, 0},
    {RF_KMSG_CUSTODY, h_custody, DRAIN},
    {RF_KMSG_MEASURE, h_measure, DRAIN},
    {RF_KMSG_LOAD_MANY, h_load_many, 0},
    {RF_KMSG_NOTE, h_note, 0},
    {RF_KMSG_NOTE_ITEMS, h_note_items, 0},
    {RF_KMSG_SESSION, h_session, 0},
    {0, NULL, 0},
};

static const struct handler table_server[] = {
    {RF_KMSG_HELLO, h_hello, 0},
    {RF_KMSG_STATUS, h_status, 0},
    {RF_KMSG_LOAD, h_load, 0},
    {RF_KMSG_SIGN, h_sign, 0},
    {RF_KMSG_SESSION, h_session, 0},
    {0, NULL, 0},
};

/* Before hello, and for callers of no class: hello only. */
static const struct handler table_none[] = {
    {RF_KMSG_HELLO, h_hello, 0},
    {0, NULL, 0},
};

static const struct handler *
table_of(const struct conn *c)
{
	if (!c->hello || c->cls == RF_KCLASS_NONE)
		return c->hello ? table_none + 1 : table_none;
	return c->cls == RF_KCLASS_ADMIN ? table_admin : table_server;
}

/* One whole frame from c: 0 to keep the connection, -1 to close it. */
int
keyd_conn_request(struct keyd *kd, struct conn *c)
{
	const struct handler *h;
	struct rf_kbuf out = {0};
	struct rf_kmsg m;
	int r, keep = 0;

	kd->requests++;
	rf_err_clear();
	if ((r = rf_kmsg_parse(c->frame, c->got, &m)) != 0 ||
	    m.type == RF_KMSG_OK || m.type == RF_KMSG_ERR ||
	    m.type == RF_KMSG_RECORDED) {
		if (r == 0)
			r = rf_err_set(RF_ERR_MALFORMED,
			    "custody frame is an answer, not a request");
		keyd_refusal(kd, c, 0, rf_err_msg(r));
		(void)keyd_send_err(c, r);
		return -1; /* a malformed stream cannot be resynchronised */
	}
	for (h = table_of(c); h->fn != NULL; h++)
		if (h->type == m.type)
			break;
	if (h->fn == NULL) {
		r = rf_err_set(RF_ERR_REFUSED,
		    "custody: %s is not for class %s (uid %u)",
		    rf_kmsg_name(m.type),
		    rf_kclass_name(c->hello ? c->cls : c->cred_cls),
		    (unsigned)c->uid);
		keyd_refusal(kd, c, m.type,
		    c->hello ? "not in its class's table" : "no hello first");
		return keyd_send_err(c, r) == 0 ? 0 : -1;
	}
	if (h->drain) {
		keyd_bg_pause(kd);
		keyd_pipe_drain(kd);
	}
	rf_kbuf_begin(&out, RF_KMSG_OK);
	/*
	 * The store connection is opened without SQLite's mutex, and keys
	 * uses it under the audit's lock: so do the handlers here (the
	 * policy reads the store), since a request run aside (keyd_run_aside)
	 * may be using it on its thread. A request that drains runs with
	 * none in flight, and may start threads of its own that take that
	 * lock: it runs without it.
	 */
	if (!h->drain)
		rf_audit_lock(kd->audit);
	r = h->fn(kd, c, &m, &out);
	if (!h->drain)
		rf_audit_unlock(kd->audit);
	if (r != QUEUED)
		keep = keyd_answer(kd, c, m.type, r, &out);
	if (h->drain)
		keyd_bg_resume(kd);
	rf_kbuf_clear(&out);
	return keep;
}
