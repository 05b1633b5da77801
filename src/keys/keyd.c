/*
 * keyd.c: the custody process (keyd.h). One thread reads every caller
 * from a poll loop and records; signer threads sign. A request is read
 * whole (its length checked before anything is allocated), decoded
 * strictly (proto.c), looked up in the dispatch table of the caller's
 * class (as OpenSSH's monitor.c keeps one table per phase), checked by the
 * policy (policy.c) and run on the token opened here with the existing
 * rf_keys_* code. Signing requests wait until the loop appends their
 * leaves, with other callers', in one durable append; a signer thread
 * then signs that batch on its signing threads while the loop reads and
 * records the next (the pipeline below). A request outside the class's
 * table, or refused by the policy, is answered with an error and recorded
 * as a "refused" leaf; refusals beyond REFUSED_PER_MIN a minute are
 * counted and recorded as one summary leaf, so that a flood cannot grow
 * the record without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit/audit.h"
#include "keys/keyd.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/policy.h"
#include "keys/proto.h"
#include "store/store.h"

#define CONN_MAX 128		    /* callers at once */
#define FRAME_MAX_LOW (1024 * 1024) /* before hello, and for class server */
#define REFUSED_PER_MIN 60	    /* refusal leaves a minute, then a count */
#define WRITE_TIMEOUT_MS 10000	    /* a caller that does not read */
#define BATCH_KEYS_MAX 100000
#define KEY_CACHE 512	 /* keys kept loaded: an assertion's is one of many */
#define BATCH_LEAVES 256 /* messages recorded in one append, at most */
#define BATCH_FIRST 32	 /* and when the signer waits for them */

struct conn {
	int fd;
	uint64_t id; /* names it in the group, whose answers come later */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int cred_cls; /* what its credentials allow */
	int cls;      /* granted at hello: never above cred_cls */
	int hello;
	int busy; /* its signing request is in the pipeline: not read */
	int dead; /* to close once it is not busy */
	uint8_t hdr[4];
	size_t hgot;
	uint8_t *frame;
	size_t need, got;
	uint8_t *obuf; /* answers the socket did not take yet (conn_out) */
	size_t olen, ooff;
	int64_t ostall; /* closed if none of it goes by then (ms) */
};

struct keyd {
	struct rf_config cfg;
	const struct rf_keyd_opts *o;
	int token_gone; /* the token folder went away: exit, start anew */
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_kpolicy *policy;
	int lfd;
	struct conn conns[CONN_MAX];
	int nconns;
	uid_t server_uid;
	int have_server_uid;
	gid_t admin_gid;
	int have_admin_gid;
	uint64_t requests, refused;
	int64_t refused_minute; /* minute of the refusal counter */
	unsigned refused_leaves, refused_quiet;
	char token[64];
	uint32_t tokens;
	uint64_t next_id;
	struct pipeline *pl;
	struct bgwork *bg; /* NULL without background work */
	struct rf_key *kcache[KEY_CACHE];
	size_t knext;
};

/* A batch: one append of its sets' leaves, then the signer's. */
struct batch {
	struct batch *next;
	size_t n;
	struct rf_sign_set sets[CONN_MAX]; /* at most one per caller */
	struct pending *p[CONN_MAX];
	uint8_t settled[CONN_MAX]; /* set j went back before the batch did */
	struct rf_sign_plan *plan;
	struct pipeline *pl;
};

#define SIGNERS 2 /* signer threads, each with a crew of its own */

struct signer {
	struct pipeline *pl;
	pthread_t tid;
	int started;
	struct rf_crew *crew; /* its signing threads */
};

struct pipeline {
	struct signer signer[SIGNERS];
	int evfd; /* the signer wakes the loop */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *head, *tail;	   /* recorded, for the signer (mu) */
	struct pending *done;		   /* back from the signer (mu) */
	int stop;			   /* (mu) */
	int signing;			   /* signers holding a batch (mu) */
	struct pending *wait, **wait_tail; /* to record (loop) */
	size_t inflight; /* accepted and not yet back (loop) */
};

/*
 * Background work (o->background: the standby pool's refill) runs on a
 * thread of its own at the lowest priority, with a store, a record and a
 * keys handle of its own (a SQLite connection is one thread's), so that a
 * request never waits behind a key generation (an RSA key takes about half
 * a second). Requests that change keys pause it (bg_pause) and wait for its
 * step to end, as they wait for the signatures in flight.
 */
#define BG_NICE 19

struct bgwork {
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, pause, running; /* (mu) */
	const struct rf_keyd_opts *o;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
};

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

static void logf_(struct keyd *kd, const char *fmt, ...) RF_PRINTF(2, 3);

static void
logf_(struct keyd *kd, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (kd->o != NULL && kd->o->log != NULL)
		kd->o->log(kd->o->log_arg, line);
}

void
rf_keyd_harden(void)
{
	struct rlimit rl = {0, 0};

	/* No core file, no ptrace by our own user, no /proc/PID/mem. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)setrlimit(RLIMIT_CORE, &rl);
}

/*
 * Refusals
 */

/* Flush the count of unrecorded refusals of the previous minute. */
static void
refusals_roll(struct keyd *kd)
{
	struct rf_audit_event ev;
	int64_t minute = rf_now() / 60;
	char detail[160];

	if (minute == kd->refused_minute)
		return;
	if (kd->refused_quiet > 0) {
		snprintf(detail, sizeof(detail),
		    "%u more refusals in the minute before, not recorded one "
		    "by one (at most %d a minute are)",
		    kd->refused_quiet, REFUSED_PER_MIN);
		memset(&ev, 0, sizeof(ev));
		ev.type = "refused";
		ev.source = "keyd";
		ev.detail = detail;
		if (rf_audit_append(kd->audit, &ev, 1, NULL) != 0)
			logf_(kd, "could not record %s", detail);
	}
	kd->refused_minute = minute;
	kd->refused_leaves = 0;
	kd->refused_quiet = 0;
}

/* Record one refusal: a leaf, or a count past the minute's budget. */
static void
refusal(struct keyd *kd, const struct conn *c, int type, const char *why)
{
	struct rf_audit_event ev;
	char actor[64], detail[400];

	kd->refused++;
	refusals_roll(kd);
	logf_(kd, "refused uid %u (%s) %s: %s", (unsigned)c->uid,
	    rf_kclass_name(c->cls), rf_kmsg_name(type), why);
	if (kd->refused_leaves >= REFUSED_PER_MIN) {
		kd->refused_quiet++;
		return;
	}
	kd->refused_leaves++;
	snprintf(actor, sizeof(actor), "uid %u pid %d", (unsigned)c->uid,
	    (int)c->pid);
	snprintf(detail, sizeof(detail), "class %s asked %s: %s",
	    rf_kclass_name(c->hello ? c->cls : c->cred_cls), rf_kmsg_name(type),
	    why);
	memset(&ev, 0, sizeof(ev));
	ev.type = "refused";
	ev.actor = actor;
	ev.source = "keyd";
	ev.what = rf_kmsg_name(type);
	ev.detail = detail;
	if (rf_audit_append(kd->audit, &ev, 1, NULL) != 0)
		logf_(kd, "could not record the refusal: %s", detail);
}

/*
 * Handlers: decode the request (strictly), act, encode the answer.
 */

typedef int (*handler_fn)(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out);

/* who from a request, as the caller names itself for the record. */
struct who_buf {
	char actor[RF_KPROTO_STR_MAX];
	char source[RF_KPROTO_STR_MAX];
	struct rf_actor who;
};

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

/*
 * A copy of key id (rf_key_free it), loaded from the token once and then
 * kept: keyd alone opens the token, so a kept key changes only through
 * keyd, and disabling or destroying keys empties the cache (key_flush).
 * The store's state of the key is still read at each signature.
 */
static int
key_get(struct keyd *kd, const char *id, struct rf_key **out)
{
	struct rf_key *k = NULL;
	size_t i;
	int r;

	*out = NULL;
	for (i = 0; i < KEY_CACHE && kd->kcache[i] != NULL; i++)
		if (strcasecmp(rf_key_id(kd->kcache[i]), id) == 0)
			return rf_key_dup(kd->kcache[i], out);
	if ((r = rf_keys_load(kd->keys, id, &k)) != 0)
		return r;
	/* Its copies then sign without searching the token. A key that
	 * may not sign is kept too: signing with it fails as it should. */
	if (rf_keys_check(kd->keys, k) != 0)
		rf_err_clear();
	if ((r = rf_key_dup(k, out)) != 0) {
		rf_key_free(k);
		return r;
	}
	rf_key_free(kd->kcache[kd->knext]);
	kd->kcache[kd->knext] = k;
	kd->knext = (kd->knext + 1) % KEY_CACHE;
	return 0;
}

/* rf_audit_key_source's getter: tree heads sign with a kept audit key. */
static int
key_get_audit(void *arg, const char *id, struct rf_key **out)
{
	return key_get(arg, id, out);
}

/*
 * Keys ids[0..n) were disabled or destroyed: they are loaded again if
 * asked for. The others are kept: a load searches a token, which costs a
 * SoftHSM file store of thousands of keys a quarter of a second.
 */
static void
key_forget(struct keyd *kd, const char *const *ids, size_t n)
{
	size_t i, j, k = 0;

	for (i = 0; i < KEY_CACHE && kd->kcache[i] != NULL; i++) {
		for (j = 0; j < n; j++)
			if (strcasecmp(rf_key_id(kd->kcache[i]), ids[j]) == 0)
				break;
		if (j < n)
			rf_key_free(kd->kcache[i]);
		else
			kd->kcache[k++] = kd->kcache[i];
	}
	if (k == i)
		return; /* none forgotten */
	for (j = k; j < i; j++)
		kd->kcache[j] = NULL;
	kd->knext = k; /* the first free place */
}

static void
key_flush(struct keyd *kd)
{
	size_t i;

	for (i = 0; i < KEY_CACHE; i++) {
		rf_key_free(kd->kcache[i]);
		kd->kcache[i] = NULL;
	}
	kd->knext = 0;
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
		refusal(kd, c, RF_KMSG_HELLO,
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
	if ((r = rf_kmsg_end(m)) != 0 || (r = key_get(kd, id, &key)) != 0)
		return r;
	r = put_key(out, key);
	rf_key_free(key);
	return r;
}

/* A request answered from a thread of its own (run_aside). */
typedef int (*aside_fn)(struct keyd *kd, void *arg, struct rf_kbuf *out);
static int run_aside(struct keyd *kd, struct conn *c, int type, aside_fn fn,
    void *arg, void (*arg_free)(void *), struct rf_kbuf *out);

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
 * run_aside). Like LOAD it changes no key, so signatures in flight go on
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
	return run_aside(
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

static int
h_keygen(
    struct keyd *kd, struct conn *c, struct rf_kmsg *m, struct rf_kbuf *out)
{
	struct who_buf w;
	struct rf_keygen *reqs = NULL;
	struct rf_key **keys = NULL;
	char(*labels)[RF_KPROTO_STR_MAX] = NULL,
	(*tenants)[RF_KPROTO_STR_MAX] = NULL;
	const char *role;
	uint32_t n, i;
	int r;

	get_who(m, c, &w);
	n = rf_kmsg_u32(m);
	/* Each key takes at least 9 bytes: n is bounded by the frame. */
	if (m->err != 0 || n == 0 || n > BATCH_KEYS_MAX ||
	    n > (m->len - m->off) / 9)
		return rf_err_set(
		    RF_ERR_MALFORMED, "custody keygen: bad number of keys");
	if ((reqs = calloc(n, sizeof(*reqs))) == NULL ||
	    (keys = calloc(n, sizeof(*keys))) == NULL ||
	    (labels = calloc(n, sizeof(*labels))) == NULL ||
	    (tenants = calloc(n, sizeof(*tenants))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		reqs[i].alg = (enum rf_key_alg)rf_kmsg_u8(m);
		rf_kmsg_str(m, labels[i]);
		rf_kmsg_str(m, tenants[i]);
		reqs[i].label = labels[i];
		reqs[i].tenant = tenants[i][0] ? tenants[i] : NULL;
	}
	if ((r = rf_kmsg_end(m)) != 0 ||
	    (r = rf_keys_generate_many(kd->keys, reqs, n, &w.who, keys)) != 0)
		goto out;
	/* serve's TLS keys and the CA keys: keyd keeps what each was made
	 * as, and signs for class server with it only as that (policy.c),
	 * whatever purpose the store gives it later. */
	for (i = 0; i < n && r == 0; i++)
		if (strcmp(labels[i], RF_KEY_LABEL_TLS) == 0)
			r = rf_ledger_tls_key(
			    rf_kpolicy_ledger(kd->policy), rf_key_id(keys[i]));
		else if ((role = label_role(labels[i])) != NULL)
			r = rf_ledger_ca_key(rf_kpolicy_ledger(kd->policy),
			    rf_key_id(keys[i]), role);
	if (r != 0)
		goto out;
	rf_kbuf_u32(out, n);
	for (i = 0; i < n && r == 0; i++)
		r = put_key(out, keys[i]);
out:
	for (i = 0; keys != NULL && i < n; i++)
		rf_key_free(keys[i]);
	free(keys);
	free(reqs);
	free(labels);
	free(tenants);
	return r;
}

/* A SIGN request, decoded: strings in one block, messages in the frame. */
struct sign_in {
	char id[RF_KPROTO_STR_MAX];
	int digest;
	int recorded; /* say RECORDED (RF_KSIGN_RECORDED) */
	struct who_buf w;
	uint32_t n;
	struct rf_sign_req *reqs;
	char (*str)[5][RF_KPROTO_STR_MAX];
};

static void
sign_in_free(struct sign_in *s)
{
	free(s->reqs);
	free(s->str);
}

static int
sign_decode(struct rf_kmsg *m, const struct conn *c, struct sign_in *s)
{
	uint32_t i;
	uint8_t flags;

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
	if ((s->reqs = calloc(s->n, sizeof(*s->reqs))) == NULL ||
	    (s->str = calloc(s->n, sizeof(*s->str))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < s->n; i++) {
		s->reqs[i].scheme = (enum rf_sig_scheme)rf_kmsg_u8(m);
		rf_kmsg_str(m, s->str[i][0]);
		rf_kmsg_str(m, s->str[i][1]);
		rf_kmsg_str(m, s->str[i][2]);
		rf_kmsg_str(m, s->str[i][3]);
		rf_kmsg_str(m, s->str[i][4]);
		rf_kmsg_bytes(m, &s->reqs[i].proof, &s->reqs[i].prooflen,
		    RF_KPROTO_PROOF_MAX);
		rf_kmsg_bytes(
		    m, &s->reqs[i].msg, &s->reqs[i].msglen, RF_KPROTO_MAX);
		s->reqs[i].what = s->str[i][0][0] ? s->str[i][0] : NULL;
		s->reqs[i].ref = s->str[i][1][0] ? s->str[i][1] : NULL;
		s->reqs[i].tenant = s->str[i][2][0] ? s->str[i][2] : NULL;
		s->reqs[i].conn = s->str[i][3][0] ? s->str[i][3] : NULL;
		s->reqs[i].on_behalf = s->str[i][4][0] ? s->str[i][4] : NULL;
		if (s->reqs[i].prooflen == 0)
			s->reqs[i].proof = NULL;
	}
	return rf_kmsg_end(m);
}

/*
 * The signing pipeline. A request is checked when it arrives (h_sign) and
 * waits, with the frame its messages are in, until the loop records it
 * (pipe_feed): the leaves of what waits, several callers' and at most
 * BATCH_LEAVES, go to the record in one durable append, and the batch goes
 * to a signer thread (signer_main, SIGNERS of them), which signs it on its
 * signing threads and answers each caller whose last message it signed.
 * The loop records the next batch while the signers sign, but only once a
 * signer has taken every batch recorded before, so that a batch grows
 * while the token is busy. Two signers, not one: each batch ends when its
 * slowest signing thread does, and the other signer's batch fills the
 * core that waits (16 callers: 10 to 20 % more assertions a second). A caller
 * is not read again until it is answered. Error answers, refusal leaves and
 * closing connections stay with the loop (they reach the store and the
 * connection table): the signer hands every request back (pipe_done).
 */
struct pending {
	struct pending *next;
	struct keyd *kd; /* an aside request's (aside_main) */
	int type;	 /* RF_KMSG_SIGN, or that of an aside request */
	aside_fn aside;	 /* an aside request's work, and its argument */
	void *arg;
	void (*arg_free)(void *arg);
	uint64_t conn;
	int fd;		/* the caller's: open while it is busy */
	uint8_t *frame; /* the request, owned: s's messages point into it */
	size_t framelen;
	struct sign_in s;
	struct rf_key *key;
	struct rf_sig *sigs; /* s.n of them */
	size_t recorded;     /* messages in batches so far (loop) */
	size_t settled;	     /* messages signed or failed (signer) */
	int r;		     /* the first failure, and its message */
	char msg[160];
	/* The signer answered (1), in part (2) or could not (-1); -1 also
	 * when RECORDED did not go out whole (say_recorded). */
	int sent;
	struct rf_kbuf out; /* its answer, when the socket took part of it */
	size_t outoff;
};

#define QUEUED 1 /* a handler's answer comes later, from the pipeline */

static void pipe_wait(struct keyd *kd, struct pending *p);
static void pipe_drain(struct keyd *kd);
static void pipe_wake(struct pipeline *pl);
static void bg_pause(struct keyd *kd);
static void bg_resume(struct keyd *kd);

static void
pending_free(struct pending *p)
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
	    (r = key_get(kd, p->s.id, &p->key)) != 0)
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
	pipe_wait(kd, p);
	return QUEUED;
fail:
	pending_free(p);
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

	if (!rf_ledger_cas_taken(l) && (r = rf_ledger_follow(l, kd->st)) != 0)
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
	key_forget(kd, idp, n);
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
		logf_(kd, "uid %u %s connector %s%s%s%s%s", (unsigned)c->uid,
		    what == RF_KNOTE_BIND ? "bound" : "revoked", connector,
		    what == RF_KNOTE_BIND ? " to " : "",
		    what == RF_KNOTE_BIND ? tenant : "",
		    what == RF_KNOTE_BIND ? "/" : "",
		    what == RF_KNOTE_BIND ? conn : "");
	return r;
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
	logf_(kd, "uid %u noted %u incident item%s %s", (unsigned)c->uid,
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

/*
 * keys list and LOAD_MANY run on a thread of their own: at 72,000 keys a
 * list reads the tokens for about a minute, and contain's load of 36,000
 * pool keys for seconds; on the loop either held up every other caller
 * meanwhile (no OCSP re-signature, assertion or TLS handshake, and the
 * signers idle for want of batches). The caller is busy until the answer
 * comes back through the pipeline's done list (pipe_done), and it counts
 * as in flight, so that a request that changes keys (DRAIN), and stop,
 * wait for it as for signatures. The done list and the wake are written
 * under the pipeline's lock, after which this thread touches nothing of
 * keyd's: pipe_stop takes that lock before it frees anything.
 */
static void *
aside_main(void *arg)
{
	struct pending *p = arg;
	struct pipeline *pl = p->kd->pl;
	int r;

	(void)pthread_setname_np(pthread_self(), "rf-aside");
	rf_test_pause("keyd-aside");
	rf_kbuf_begin(&p->out, RF_KMSG_OK);
	if ((r = p->aside(p->kd, p->arg, &p->out)) == 0 &&
	    (r = rf_kbuf_finish(&p->out)) == 0) {
		p->sent = 2; /* all of out, from outoff 0 */
	} else {
		p->r = r;
		snprintf(p->msg, sizeof(p->msg), "%s", rf_err_msg(r));
	}
	pthread_mutex_lock(&pl->mu);
	p->next = pl->done;
	pl->done = p;
	pipe_wake(pl);
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

/*
 * Answer c's request of type by fn(kd, arg) on a thread of its own, or on
 * the loop if none can be started. arg is freed by arg_free either way.
 */
static int
run_aside(struct keyd *kd, struct conn *c, int type, aside_fn fn, void *arg,
    void (*arg_free)(void *), struct rf_kbuf *out)
{
	pthread_attr_t at;
	struct pending *p;
	pthread_t t;
	int r, started;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		if (arg_free != NULL)
			arg_free(arg);
		return RF_ERR_ALLOC;
	}
	p->kd = kd;
	p->type = type;
	p->conn = c->id;
	p->fd = c->fd;
	p->aside = fn;
	p->arg = arg;
	p->arg_free = arg_free;
	started = pthread_attr_init(&at) == 0;
	if (started) {
		started = pthread_attr_setdetachstate(
			      &at, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&t, &at, aside_main, p) == 0;
		pthread_attr_destroy(&at);
	}
	if (!started) {
		r = fn(kd, arg, out); /* on the loop, as before */
		pending_free(p);
		return r;
	}
	c->busy = 1;
	kd->pl->inflight++;
	return QUEUED;
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
	return run_aside(kd, c, RF_KMSG_LIST, list_aside, NULL, NULL, out);
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
		if (m.err != 0 || n == 0 || n > (m.len - m.off) / 9)
			return RF_ERR_MALFORMED;
		for (i = 0; i < n; i++) {
			(void)rf_kmsg_u8(&m);
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
    {RF_KMSG_KEYGEN, h_keygen, DRAIN},
    {RF_KMSG_DISABLE, h_disable, DRAIN},
    {RF_KMSG_LIST, h_list, 0},
    {RF_KMSG_CUSTODY, h_custody, DRAIN},
    {RF_KMSG_MEASURE, h_measure, DRAIN},
    {RF_KMSG_LOAD_MANY, h_load_many, 0},
    {RF_KMSG_NOTE, h_note, 0},
    {RF_KMSG_NOTE_ITEMS, h_note_items, 0},
    {0, NULL, 0},
};

static const struct handler table_server[] = {
    {RF_KMSG_HELLO, h_hello, 0},
    {RF_KMSG_STATUS, h_status, 0},
    {RF_KMSG_LOAD, h_load, 0},
    {RF_KMSG_SIGN, h_sign, 0},
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

/*
 * Connections
 */

static int
frame_max(const struct conn *c)
{
	return c->hello && c->cls == RF_KCLASS_ADMIN ? (int)RF_KPROTO_MAX
						     : FRAME_MAX_LOW;
}

static void
conn_close(struct keyd *kd, int i)
{
	struct conn *c = &kd->conns[i];

	close(c->fd);
	free(c->frame);
	free(c->obuf);
	kd->conns[i] = kd->conns[--kd->nconns];
	memset(&kd->conns[kd->nconns], 0, sizeof(struct conn));
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
out_empty(const struct conn *c)
{
	return c->ooff == c->olen;
}

static void
out_clear(struct conn *c)
{
	free(c->obuf);
	c->obuf = NULL;
	c->olen = c->ooff = 0;
}

/* Send what the socket takes now, without waiting: bytes sent or -1. */
static ssize_t
send_now(int fd, const uint8_t *d, size_t len)
{
	size_t done = 0;
	ssize_t k;

	while (done < len) {
		k = send(fd, d + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0)
			done += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return -1;
	}
	return (ssize_t)done;
}

/*
 * Answer len bytes on c without waiting: what the socket does not take
 * now waits in c's queue and goes out when c is writable (conn_flush). c is
 * not read while its queue holds anything, and is closed if none of it goes
 * out for WRITE_TIMEOUT_MS: a caller that does not read stalls no one else.
 */
static int
conn_out(struct conn *c, const uint8_t *d, size_t len)
{
	uint8_t *nb;
	ssize_t k;

	if (out_empty(c)) {
		out_clear(c);
		if ((k = send_now(c->fd, d, len)) < 0)
			return RF_ERR_IO;
		if ((size_t)k == len)
			return 0;
		d += k;
		len -= (size_t)k;
		c->ostall = mono_ms() + WRITE_TIMEOUT_MS;
	}
	if ((nb = realloc(c->obuf, c->olen + len)) == NULL)
		return RF_ERR_ALLOC;
	memcpy(nb + c->olen, d, len);
	c->obuf = nb;
	c->olen += len;
	return 0;
}

/* c is writable: send what waits. 0 keep c, -1 close it. */
static int
conn_flush(struct conn *c)
{
	ssize_t k;

	if ((k = send_now(c->fd, c->obuf + c->ooff, c->olen - c->ooff)) < 0)
		return -1;
	if (k > 0)
		c->ostall = mono_ms() + WRITE_TIMEOUT_MS;
	c->ooff += (size_t)k;
	if (out_empty(c))
		out_clear(c);
	return 0;
}

/* Answer error r (its message) on c. */
static int
send_err(struct conn *c, int r)
{
	struct rf_kbuf b = {0};
	int w;

	rf_kbuf_begin(&b, RF_KMSG_ERR);
	rf_kbuf_u32(&b, (uint32_t)(r < 0 ? -r : 1));
	rf_kbuf_str(&b, "");
	if (b.err == 0) {
		/* The message, cut to a string field's length. */
		char msg[RF_KPROTO_STR_MAX];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_kbuf_begin(&b, RF_KMSG_ERR);
		rf_kbuf_u32(&b, (uint32_t)(r < 0 ? -r : 1));
		rf_kbuf_str(&b, msg);
	}
	w = rf_kbuf_finish(&b) == 0 ? conn_out(c, b.d, b.len) : RF_ERR_ALLOC;
	rf_kbuf_clear(&b);
	return w;
}

/* Answer request type with out (r 0) or error r: 0 keep c, -1 close it. */
static int
answer(struct keyd *kd, struct conn *c, int type, int r, struct rf_kbuf *out)
{
	if (r == 0 && (r = rf_kbuf_finish(out)) == 0)
		return conn_out(c, out->d, out->len) == 0 ? 0 : -1;
	if (r == RF_ERR_REFUSED || r == RF_ERR_MALFORMED)
		refusal(kd, c, type, rf_err_msg(r));
	else if ((r = rf_keys_token_gone(&kd->cfg, r)) ==
	    RF_ERR_TOKEN_NOT_FOUND)
		kd->token_gone = 1;
	return send_err(c, r) == 0 && r != RF_ERR_MALFORMED ? 0 : -1;
}

/* One whole frame from c: 0 to keep the connection, -1 to close it. */
static int
conn_request(struct keyd *kd, struct conn *c)
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
		refusal(kd, c, 0, rf_err_msg(r));
		(void)send_err(c, r);
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
		refusal(kd, c, m.type,
		    c->hello ? "not in its class's table" : "no hello first");
		return send_err(c, r) == 0 ? 0 : -1;
	}
	if (h->drain) {
		bg_pause(kd);
		pipe_drain(kd);
	}
	rf_kbuf_begin(&out, RF_KMSG_OK);
	/*
	 * The store connection is opened without SQLite's mutex, and keys
	 * uses it under the audit's lock: so do the handlers here (the
	 * policy reads the store), since a request run aside (run_aside)
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
		keep = answer(kd, c, m.type, r, &out);
	if (h->drain)
		bg_resume(kd);
	rf_kbuf_clear(&out);
	return keep;
}

/* The connection named id, or -1 when it has gone. */
static int
conn_find(struct keyd *kd, uint64_t id)
{
	int i;

	for (i = 0; i < kd->nconns; i++)
		if (kd->conns[i].id == id)
			return i;
	return -1;
}

static void
pipe_wait(struct keyd *kd, struct pending *p)
{
	struct pipeline *pl = kd->pl;

	p->next = NULL;
	*pl->wait_tail = p;
	pl->wait_tail = &p->next;
	pl->inflight++;
}

static void
pipe_wake(struct pipeline *pl)
{
	uint64_t one = 1;

	(void)!write(pl->evfd, &one, sizeof(one));
}

/*
 * Take up to max waiting messages: every waiting request gets its share
 * (max over their number, at least one), then what is left of max goes to
 * them in arrival order. A large request thus never holds a small one back
 * by more than one batch.
 */
static void
batch_fill(struct pipeline *pl, struct batch *b, size_t max)
{
	size_t take[CONN_MAX], count = 0, fair, left = max, k, i;
	struct rf_sign_set *set;
	struct pending *p, **pp;

	for (p = pl->wait; p != NULL && count < CONN_MAX; p = p->next)
		count++;
	if (count == 0)
		return;
	fair = max / count > 0 ? max / count : 1;
	for (p = pl->wait, i = 0; i < count; p = p->next, i++) {
		k = p->s.n - p->recorded;
		/* Asked to hear when it is recorded: recorded whole. */
		if (p->s.recorded) {
			take[i] = k;
			continue;
		}
		take[i] = k < fair ? k : fair;
		take[i] = take[i] < left ? take[i] : left;
		left -= take[i];
	}
	for (p = pl->wait, i = 0; i < count && left > 0; p = p->next, i++) {
		if (p->s.recorded)
			continue;
		k = p->s.n - p->recorded - take[i];
		k = k < left ? k : left;
		take[i] += k;
		left -= k;
	}
	/* The sets, in arrival order; requests recorded whole leave. */
	for (pp = &pl->wait, i = 0; i < count; i++) {
		p = *pp;
		if (take[i] > 0) {
			set = &b->sets[b->n];
			b->p[b->n++] = p;
			set->key = p->key;
			set->reqs = p->s.reqs + p->recorded;
			set->n = take[i];
			set->digest = p->s.digest;
			set->who = &p->s.w.who;
			set->sigs = p->sigs + p->recorded;
			p->recorded += take[i];
		}
		if (p->recorded == p->s.n)
			*pp = p->next;
		else
			pp = &p->next;
	}
	if (*pp == NULL)
		pl->wait_tail = pp;
}

/*
 * The callers that asked (RF_KSIGN_RECORDED) hear that their leaves in b
 * are durable. b is not yet the signer's, so this goes out before any of
 * their signatures can. A socket that does not take these few bytes at
 * once is out of step: its caller is closed instead of answered.
 */
static void
say_recorded(struct batch *b)
{
	struct rf_kbuf k = {0};
	struct pending *p;
	size_t j;
	ssize_t w;

	for (j = 0; j < b->n; j++) {
		p = b->p[j];
		if (!p->s.recorded || b->sets[j].r != 0)
			continue; /* such a request is in one batch, whole */
		rf_kbuf_begin(&k, RF_KMSG_RECORDED);
		if (rf_kbuf_finish(&k) != 0 ||
		    (w = send_now(p->fd, k.d, k.len)) < 0 || (size_t)w != k.len)
			p->sent = -1;
		rf_kbuf_clear(&k);
	}
}

/* Record what waits, a batch at a time, while the signer has none. */
static void
pipe_feed(struct keyd *kd)
{
	struct pipeline *pl = kd->pl;
	struct batch *b;
	int taken, idle;

	while (pl->wait != NULL) {
		pthread_mutex_lock(&pl->mu);
		taken = pl->head == NULL;
		idle = taken && pl->signing == 0;
		pthread_mutex_unlock(&pl->mu);
		if (!taken || (b = calloc(1, sizeof(*b))) == NULL)
			return; /* the next turn (the signer wakes it) */
		/* An idle signer starts on a small batch: the token's work
		 * begins after a short append, and the next overlaps it. */
		batch_fill(pl, b, idle ? BATCH_FIRST : BATCH_LEAVES);
		/* The record first: nothing of b is signed before this. */
		b->plan = rf_keys_group_record(kd->keys, b->sets, b->n);
		say_recorded(b);
		pthread_mutex_lock(&pl->mu);
		if (pl->tail != NULL)
			pl->tail->next = b;
		else
			pl->head = b;
		pl->tail = b;
		pthread_cond_signal(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
}

/*
 * The signer's answer to p, its signatures in order, sent as far as the
 * socket takes it now (p's caller is busy: nothing else is queued for it);
 * the loop queues the rest (pipe_done).
 */
static void
answer_sigs(struct pending *p)
{
	size_t k;
	ssize_t w;

	if (p->sent < 0)
		return; /* out of step since say_recorded */
	rf_kbuf_begin(&p->out, RF_KMSG_OK);
	rf_kbuf_u32(&p->out, (uint32_t)p->s.n);
	for (k = 0; k < p->s.n; k++)
		rf_kbuf_bytes(&p->out, p->sigs[k].sig, p->sigs[k].len);
	if (rf_kbuf_finish(&p->out) != 0 ||
	    (w = send_now(p->fd, p->out.d, p->out.len)) < 0) {
		p->sent = -1;
		return;
	}
	p->outoff = (size_t)w;
	p->sent = p->outoff == p->out.len ? 1 : 2;
}

/*
 * set, a part of p, is signed or failed; p is back once all of it is. A
 * request larger than a batch has parts in several, which the signers may
 * settle at once: the count is kept under the lock, and the last part's
 * thread answers (the others' signatures are visible to it through it).
 */
static void
settle(struct pipeline *pl, struct pending *p, const struct rf_sign_set *set)
{
	int last;

	pthread_mutex_lock(&pl->mu);
	if (set->r != 0 && p->r == 0) {
		p->r = set->r;
		snprintf(p->msg, sizeof(p->msg), "%s", set->msg);
	}
	p->settled += set->n;
	last = p->settled == p->s.n;
	pthread_mutex_unlock(&pl->mu);
	if (!last)
		return;
	if (p->r == 0)
		answer_sigs(p);
	pthread_mutex_lock(&pl->mu);
	p->next = pl->done;
	pl->done = p;
	pthread_mutex_unlock(&pl->mu);
}

/*
 * A set of the batch is signed (rf_keys_group_sign_each, on the signing
 * thread that finished it): its caller is answered now, not when the
 * batch's last signature is made, and the loop is woken to read that
 * caller's next request while the rest of the batch is signed. Each set
 * is a different caller's (one set a caller in a batch), so no two of
 * these touch the same pending.
 */
static void
set_signed(void *arg, struct rf_sign_set *set)
{
	struct batch *b = arg;
	size_t j = (size_t)(set - b->sets);

	b->settled[j] = 1;
	settle(b->pl, b->p[j], set);
	pipe_wake(b->pl);
}

static void *
signer_main(void *arg)
{
	struct signer *sg = arg;
	struct pipeline *pl = sg->pl;
	struct batch *b;
	size_t j;

	/* Named for top -H and bench/assert_profile.sh's CPU per thread. */
	(void)pthread_setname_np(pthread_self(), "rf-signer");
	for (;;) {
		pthread_mutex_lock(&pl->mu);
		while (pl->head == NULL && !pl->stop)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if ((b = pl->head) == NULL) { /* stopped, and nothing left */
			pthread_mutex_unlock(&pl->mu);
			break;
		}
		if ((pl->head = b->next) == NULL)
			pl->tail = NULL;
		pl->signing++;
		pthread_mutex_unlock(&pl->mu);
		pipe_wake(pl); /* the loop may record the next batch now */
		b->pl = pl;
		rf_keys_group_sign_each(b->plan, sg->crew, set_signed, b);
		for (j = 0; j < b->n; j++) /* refused when recorded */
			if (!b->settled[j])
				settle(pl, b->p[j], &b->sets[j]);
		free(b);
		pthread_mutex_lock(&pl->mu);
		pl->signing--;
		pthread_mutex_unlock(&pl->mu);
		pipe_wake(pl);
	}
	return NULL;
}

/*
 * What the signer handed back: errors are answered here (refusals are
 * leaves), callers it could not answer are closed (after the turn:
 * conn_sweep), then the next batch is recorded.
 */
static void
pipe_done(struct keyd *kd)
{
	struct pipeline *pl = kd->pl;
	struct rf_kbuf out = {0};
	struct pending *p, *next;
	struct conn *c;
	uint64_t v;
	int i;

	(void)!read(pl->evfd, &v, sizeof(v));
	pthread_mutex_lock(&pl->mu);
	p = pl->done;
	pl->done = NULL;
	pthread_mutex_unlock(&pl->mu);
	for (; p != NULL; p = next) {
		next = p->next;
		pl->inflight--;
		/* A caller gone meanwhile gets nothing: its leaves stay. */
		if ((i = conn_find(kd, p->conn)) >= 0) {
			c = &kd->conns[i];
			c->busy = 0;
			if (p->sent < 0)
				c->dead = 1;
			else if (p->r != 0) {
				rf_err_set(p->r, "%s", p->msg);
				rf_kbuf_begin(&out, RF_KMSG_OK);
				if (answer(kd, c, p->type, p->r, &out) != 0)
					c->dead = 1;
				rf_kbuf_clear(&out);
			} else if (p->sent == 2 &&
			    conn_out(c, p->out.d + p->outoff,
				p->out.len - p->outoff) != 0)
				c->dead = 1;
		}
		pending_free(p);
	}
	pipe_feed(kd);
}

/* Every signature in flight made and answered (before a key changes). */
static void
pipe_drain(struct keyd *kd)
{
	struct pollfd pf = {kd->pl->evfd, POLLIN, 0};

	while (kd->pl->inflight > 0) {
		pipe_feed(kd);
		(void)poll(&pf, 1, 1000);
		pipe_done(kd);
	}
}

static void pipe_stop(struct keyd *kd);

static int
pipe_start(struct keyd *kd)
{
	struct pipeline *pl;
	struct signer *sg;
	int i;

	if ((pl = calloc(1, sizeof(*pl))) == NULL)
		return RF_ERR_ALLOC;
	pl->wait_tail = &pl->wait;
	if ((pl->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(pl);
		return rf_err_set(
		    RF_ERR_INTERNAL, "keyd: eventfd: %s", strerror(errno));
	}
	if (pthread_mutex_init(&pl->mu, NULL) != 0 ||
	    pthread_cond_init(&pl->cv, NULL) != 0) {
		close(pl->evfd);
		free(pl);
		return rf_err_set(RF_ERR_INTERNAL, "keyd: signer lock");
	}
	kd->pl = pl;
	for (i = 0; i < SIGNERS; i++) {
		sg = &pl->signer[i];
		sg->pl = pl;
		/* Kept threads: one started per batch cost about as much CPU
		 * as a signature when the batches are a few assertions. */
		if (rf_crew_new(
			rf_keys_sign_threads(), "rf-signer", &sg->crew) != 0)
			rf_err_clear(); /* a thread per batch, as before */
		if (pthread_create(&sg->tid, NULL, signer_main, sg) != 0) {
			rf_crew_free(sg->crew);
			sg->crew = NULL;
			if (i > 0)
				break; /* fewer signers */
			pipe_stop(kd);
			return rf_err_set(RF_ERR_INTERNAL,
			    "keyd: cannot start the signer thread");
		}
		sg->started = 1;
	}
	return 0;
}

/* Answer what is in flight, then stop the signer. */
static void
pipe_stop(struct keyd *kd)
{
	struct pipeline *pl = kd->pl;
	int i;

	if (pl == NULL)
		return;
	pipe_drain(kd);
	pthread_mutex_lock(&pl->mu);
	pl->stop = 1;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	for (i = 0; i < SIGNERS; i++) {
		if (pl->signer[i].started)
			pthread_join(pl->signer[i].tid, NULL);
		rf_crew_free(pl->signer[i].crew);
	}
	pthread_cond_destroy(&pl->cv);
	pthread_mutex_destroy(&pl->mu);
	close(pl->evfd);
	free(pl);
	kd->pl = NULL;
}

/* Close the callers marked dead once nothing of theirs is in flight,
 * and those that have not read their answers for WRITE_TIMEOUT_MS. */
static void
conn_sweep(struct keyd *kd)
{
	int64_t now = mono_ms();
	struct conn *c;
	int i;

	for (i = kd->nconns - 1; i >= 0; i--) {
		c = &kd->conns[i];
		if (!c->busy && (c->dead || (!out_empty(c) && now > c->ostall)))
			conn_close(kd, i);
	}
}

/* Read what c has sent; run each whole frame. 0 keep, -1 close. */
static int
conn_read(struct keyd *kd, struct conn *c)
{
	ssize_t k;
	uint32_t n;
	int r;

	if (c->frame == NULL) {
		k = recv(c->fd, c->hdr + c->hgot, 4 - c->hgot, MSG_DONTWAIT);
		if (k <= 0)
			return k < 0 && (errno == EAGAIN || errno == EINTR)
			    ? 0
			    : -1;
		c->hgot += (size_t)k;
		if (c->hgot < 4)
			return 0;
		n = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 |
		    (uint32_t)c->hdr[2] << 8 | c->hdr[3];
		/* The length is checked before anything is allocated. */
		if (n < 2 || n > (uint32_t)frame_max(c)) {
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "custody frame of %u bytes (at most %d for this "
			    "caller)",
			    n, frame_max(c));
			refusal(kd, c, 0, rf_err_msg(r));
			(void)send_err(c, r);
			return -1;
		}
		if ((c->frame = malloc((size_t)n + 4)) == NULL)
			return -1;
		memcpy(c->frame, c->hdr, 4);
		c->need = (size_t)n + 4;
		c->got = 4;
	}
	k = recv(c->fd, c->frame + c->got, c->need - c->got, MSG_DONTWAIT);
	if (k <= 0)
		return k < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	c->got += (size_t)k;
	if (c->got < c->need)
		return 0;
	r = conn_request(kd, c);
	if (c->frame != NULL) { /* else a queued request holds it */
		OPENSSL_cleanse(c->frame, c->need);
		free(c->frame);
		c->frame = NULL;
	}
	c->hgot = 0;
	return r;
}

static int
in_admin_group(struct keyd *kd, uid_t uid, gid_t gid)
{
	struct passwd *pw;
	struct group *gr;
	char **mem;

	if (!kd->have_admin_gid)
		return 0;
	if (gid == kd->admin_gid)
		return 1;
	if ((pw = getpwuid(uid)) == NULL ||
	    (gr = getgrgid(kd->admin_gid)) == NULL)
		return 0;
	for (mem = gr->gr_mem; *mem != NULL; mem++)
		if (strcmp(*mem, pw->pw_name) == 0)
			return 1;
	return 0;
}

static void
conn_accept(struct keyd *kd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct conn *c;
	int fd;

	if ((fd = accept4(kd->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return;
	if (kd->nconns == CONN_MAX ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		close(fd);
		return;
	}
	c = &kd->conns[kd->nconns++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->id = ++kd->next_id;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	if (cr.uid == 0 || cr.uid == geteuid())
		c->cred_cls = RF_KCLASS_ADMIN;
	else if (kd->have_server_uid && cr.uid == kd->server_uid)
		c->cred_cls = RF_KCLASS_SERVER;
	else if (in_admin_group(kd, cr.uid, cr.gid))
		c->cred_cls = RF_KCLASS_ADMIN;
	else
		c->cred_cls = RF_KCLASS_NONE;
}

/*
 * Start
 */

/* The token folder and the PIN file: only keyd's user may read them. */
static int
check_private(const char *path, int dir)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return 0; /* absent: nothing to protect */
	if (sb.st_uid != geteuid() || (sb.st_mode & 077) != 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "%s is readable by others or not owned by keyd's user "
		    "(uid %u): chown %u %s && chmod %s %s",
		    path, (unsigned)geteuid(), (unsigned)geteuid(), path,
		    dir ? "700" : "600", path);
	return 0;
}

/* Drop root for custody_user, or say in one line why not. */
static int
drop_user(struct keyd *kd)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		logf_(kd,
		    "running as uid %u, not root: process split on, user "
		    "split off",
		    (unsigned)geteuid());
		return 0;
	}
	if ((pw = getpwnam(kd->cfg.custody_user)) == NULL) {
		logf_(kd,
		    "custody user '%s' does not exist: running as root "
		    "without the user split",
		    kd->cfg.custody_user);
		return 0;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0 || setuid(0) == 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "cannot become custody user '%s': %s", kd->cfg.custody_user,
		    strerror(errno));
	/* setuid cleared it; set again. */
	rf_keyd_harden();
	logf_(kd, "running as custody user '%s' (uid %u)", kd->cfg.custody_user,
	    (unsigned)pw->pw_uid);
	return 0;
}

static int
listen_on(struct keyd *kd, const char *path)
{
	struct sockaddr_un sa;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return rf_err_set(RF_ERR_CONFIG,
		    "keyd_socket %s is too long for a socket path", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((kd->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return rf_err_set(RF_ERR_IO, "socket: %s", strerror(errno));
	(void)unlink(path); /* a stale socket: keyd.lock says none runs */
	if (bind(kd->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(kd->lfd, 64) != 0) {
		r = rf_err_set(RF_ERR_IO, "cannot listen on %s: %s", path,
		    strerror(errno));
		return r;
	}
	/* Anyone may connect; SO_PEERCRED decides what they may ask. */
	if (chmod(path, 0666) != 0)
		return rf_err_set(
		    RF_ERR_IO, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* RINGFENCE_PIN: taken out of the environment at once, its bytes wiped. */
static void
take_env_pin(struct rf_config *cfg)
{
	char *e = getenv("RINGFENCE_PIN");

	if (e == NULL)
		return;
	if (*e != '\0' && strlen(e) < sizeof(cfg->pin))
		snprintf(cfg->pin, sizeof(cfg->pin), "%s", e);
	rf_env_wipe("RINGFENCE_PIN");
}

static void *
bg_main(void *arg)
{
	struct bgwork *bg = arg;
	struct timespec until;
	int more = 0;

	/* Linux: the nice value is the thread's own. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BG_NICE);
	(void)pthread_setname_np(pthread_self(), "rf-keyd-bg");
	pthread_mutex_lock(&bg->mu);
	while (!bg->stop) {
		if (bg->pause > 0 || !more) {
			/* A second between steps that found nothing to do. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			(void)pthread_cond_timedwait(&bg->cv, &bg->mu, &until);
			if (bg->pause > 0 || bg->stop) {
				more = 0;
				continue;
			}
		}
		bg->running = 1;
		pthread_mutex_unlock(&bg->mu);
		more = bg->o->background(
			   bg->o->background_arg, bg->keys, bg->st) > 0;
		pthread_mutex_lock(&bg->mu);
		bg->running = 0;
		pthread_cond_broadcast(&bg->cv);
	}
	pthread_mutex_unlock(&bg->mu);
	return NULL;
}

/* Hold the background work: its current step ends first. */
static void
bg_pause(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->pause++;
	while (bg->running)
		pthread_cond_wait(&bg->cv, &bg->mu);
	pthread_mutex_unlock(&bg->mu);
}

static void
bg_resume(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->pause--;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
}

static void
bg_free(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	if (bg->started) {
		pthread_mutex_lock(&bg->mu);
		bg->stop = 1;
		pthread_cond_broadcast(&bg->cv);
		pthread_mutex_unlock(&bg->mu);
		pthread_join(bg->tid, NULL);
	}
	pthread_cond_destroy(&bg->cv);
	pthread_mutex_destroy(&bg->mu);
	rf_keys_free(bg->keys);
	rf_audit_free(bg->audit);
	rf_store_free(bg->st);
	free(bg);
	kd->bg = NULL;
}

/* The background work's own handles, opened while the PIN is known. */
static int
bg_open(struct keyd *kd)
{
	struct bgwork *bg;
	int r;

	if (kd->o == NULL || kd->o->background == NULL)
		return 0;
	if ((bg = calloc(1, sizeof(*bg))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutex_init(&bg->mu, NULL) != 0) {
		free(bg);
		return rf_err_set(RF_ERR_INTERNAL, "keyd: mutex");
	}
	if (pthread_cond_init(&bg->cv, NULL) != 0) {
		pthread_mutex_destroy(&bg->mu);
		free(bg);
		return rf_err_set(RF_ERR_INTERNAL, "keyd: condition");
	}
	bg->o = kd->o;
	kd->bg = bg;
	if ((r = rf_store_open(kd->cfg.db_path, 0, &bg->st)) != 0 ||
	    (r = rf_store_unmap(bg->st)) != 0 ||
	    (r = rf_audit_open(bg->st, &bg->audit)) != 0 ||
	    (r = rf_keys_open(&kd->cfg, bg->audit, &bg->keys)) != 0)
		return r;
	rf_keys_forget_pin(bg->keys);
	return 0;
}

static int
bg_start(struct keyd *kd)
{
	if (kd->bg == NULL)
		return 0;
	if (pthread_create(&kd->bg->tid, NULL, bg_main, kd->bg) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "keyd: cannot start the background thread");
	kd->bg->started = 1;
	return 0;
}

static int
keyd_open(struct keyd *kd)
{
	static const struct rf_actor sweeper = {"keyd", "keyd"};
	char tokens_dir[RF_PATH_MAX + 16], v[32];
	size_t swept;
	struct passwd *pw;
	struct group *gr;
	int r;

	if ((pw = getpwnam(kd->cfg.server_user)) != NULL) {
		kd->server_uid = pw->pw_uid;
		kd->have_server_uid = 1;
	}
	if (kd->cfg.admin_group[0] != '\0') {
		if ((gr = getgrnam(kd->cfg.admin_group)) == NULL)
			return rf_err_set(RF_ERR_CONFIG,
			    "admin_group '%s' does not exist: create it or "
			    "unset admin_group",
			    kd->cfg.admin_group);
		kd->admin_gid = gr->gr_gid;
		kd->have_admin_gid = 1;
	}
	if ((r = drop_user(kd)) != 0)
		return r;
	snprintf(tokens_dir, sizeof(tokens_dir), "%s/tokens", kd->cfg.home);
	if ((r = check_private(tokens_dir, 1)) != 0 ||
	    (r = check_private(kd->cfg.pin_file, 0)) != 0)
		return r;
	if ((r = rf_store_open(kd->cfg.db_path, 0, &kd->st)) != 0) {
		if (r == RF_ERR_NOT_INITIALISED)
			return rf_err_set(r,
			    "no state at %s: run 'ringfence init' (or set "
			    "RINGFENCE_HOME)",
			    kd->cfg.home);
		return r;
	}
	if ((r = rf_store_unmap(kd->st)) != 0 ||
	    (r = rf_audit_open(kd->st, &kd->audit)) != 0 ||
	    (r = rf_keys_open(&kd->cfg, kd->audit, &kd->keys)) != 0 ||
	    (r = rf_kpolicy_new(&kd->cfg, kd->st, kd->audit, &kd->policy)) != 0)
		return r;
	rf_keys_set_ledger(kd->keys, rf_kpolicy_ledger(kd->policy));
	rf_audit_key_source(kd->audit, key_get_audit, kd);
	/* keyd alone opens the token: nothing is being made in it now. */
	if ((r = rf_keys_sweep_torn(kd->keys, &sweeper, &swept)) != 0)
		logf_(kd, "sweeping half-made key objects: %s", rf_err_msg(r));
	else if (swept > 0)
		logf_(kd,
		    "destroyed %zu key object%s an interrupted key generation "
		    "left half made (no CKA_ID)",
		    swept, swept == 1 ? "" : "s");
	if (kd->o != NULL && kd->o->assertion != NULL)
		rf_kpolicy_set_assertion(
		    kd->policy, kd->o->assertion, kd->o->assertion_arg);
	if (kd->o != NULL && kd->o->cert != NULL)
		rf_kpolicy_set_cert(
		    kd->policy, kd->o->cert, kd->o->assertion_arg);
	if ((r = bg_open(kd)) != 0)
		return r;
	/*
	 * Logged in: the PIN is kept nowhere in keyd's memory any more. A PIN
	 * file is read again for a token first used later; a PIN from the
	 * environment is gone with it, so every token is logged in first.
	 */
	if (kd->cfg.pin[0] != '\0' && (r = rf_keys_login_all(kd->keys)) != 0)
		return r;
	OPENSSL_cleanse(kd->cfg.pin, sizeof(kd->cfg.pin));
	rf_keys_forget_pin(kd->keys);
	snprintf(kd->token, sizeof(kd->token), "%s", kd->cfg.token);
	kd->tokens = (uint32_t)kd->cfg.tokens;
	if (rf_store_meta_get(kd->st, "key_tokens", v, sizeof(v)) == 0)
		kd->tokens = (uint32_t)strtoul(v, NULL, 10);
	return 0;
}

static int
write_pid(const char *path)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	return rf_write_file(path, (const uint8_t *)buf, strlen(buf), 0644);
}

/*
 * The record signs its tree heads by itself (issue 13): every sth_interval
 * seconds or sth_leaves leaves, whoever appended them, while keyd runs.
 * A failure is logged and tried again on the next pass.
 */
static void
tree_head(struct keyd *kd, int64_t started)
{
	int made = 0, r;

	/* Not at start: the first after sth_interval of keyd's own life. */
	if (rf_now() - started < kd->cfg.sth_interval)
		return;
	if ((r = rf_audit_maybe_sth(kd->audit, kd->keys, kd->cfg.sth_interval,
		 (uint64_t)kd->cfg.sth_leaves, &made)) != 0) {
		logf_(kd, "signing a tree head: %s", rf_err_msg(r));
		rf_err_clear();
	}
}

int
rf_keyd_run(const struct rf_config *cfg, const struct rf_keyd_opts *o)
{
	struct keyd *kd;
	struct pollfd pf[CONN_MAX + 2];
	struct sigaction sa;
	char lock[RF_PATH_MAX + 16], pid[RF_PATH_MAX + 16];
	char sock[RF_PATH_MAX];
	int64_t idle_since, started;
	int lfd = -1, i, n, r = RF_ERR_INTERNAL, listening = 0;

	/* Before anything else, and before any thread exists. */
	rf_keyd_harden();
	rf_keys_custody_off(); /* keyd opens the token itself */
	if ((kd = calloc(1, sizeof(*kd))) == NULL)
		return RF_ERR_ALLOC;
	kd->cfg = *cfg;
	kd->o = o;
	kd->lfd = -1;
	take_env_pin(&kd->cfg);
	if (kd->cfg.softhsm_conf[0] != '\0' &&
	    access(kd->cfg.softhsm_conf, R_OK) == 0)
		setenv("SOFTHSM2_CONF", kd->cfg.softhsm_conf, 1);
	if ((r = rf_keyd_path(cfg, "keyd.lock", lock, sizeof(lock))) != 0 ||
	    (r = rf_keyd_path(cfg, "keyd.pid", pid, sizeof(pid))) != 0 ||
	    (r = rf_keyd_path(cfg, "keyd.sock", sock, sizeof(sock))) != 0)
		goto out;
	/* One keyd per state folder: the lock lives as long as we do. */
	if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		r = rf_err_set(
		    RF_ERR_IO, "cannot open %s: %s", lock, strerror(errno));
		goto out;
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		r = rf_err_set(RF_ERR_EXISTS,
		    "a custody process already runs for %s (see %s; "
		    "'ringfence keyd stop' stops it)",
		    cfg->home, pid);
		goto out;
	}
	if ((r = listen_on(kd, sock)) != 0)
		goto out;
	listening = 1;
	if ((r = keyd_open(kd)) != 0 || (r = pipe_start(kd)) != 0 ||
	    (r = bg_start(kd)) != 0 || (r = write_pid(pid)) != 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The connector proof setting is keyd's from its start (whoever
	 * started it): the log says which (docs/connectors.md). */
	logf_(kd,
	    "keyd %d listening on %s (token '%s', %u tokens; connector_proof "
	    "%s)",
	    (int)getpid(), sock, kd->token, kd->tokens,
	    kd->cfg.connector_proof);
	if (o != NULL && o->ready != NULL)
		o->ready(o->ready_arg);
	idle_since = started = rf_now();
	while (!stop_signal) {
		pf[0].fd = kd->lfd;
		pf[0].events = POLLIN;
		pf[1].fd = kd->pl->evfd;
		pf[1].events = POLLIN;
		for (i = 0; i < kd->nconns; i++) {
			/* A caller waiting for its answer, or not reading the
			 * last one, is not read. */
			pf[i + 2].fd = kd->conns[i].busy || kd->conns[i].dead
			    ? -1
			    : kd->conns[i].fd;
			pf[i + 2].events =
			    out_empty(&kd->conns[i]) ? POLLIN : POLLOUT;
			pf[i + 2].revents = 0;
		}
		n = poll(pf, (nfds_t)kd->nconns + 2, 1000);
		if (n < 0 && errno != EINTR) {
			r = rf_err_set(RF_ERR_IO, "poll: %s", strerror(errno));
			goto out;
		}
		refusals_roll(kd);
		tree_head(kd, started);
		/* Backwards, so that closing one keeps the others' slots. */
		for (i = kd->nconns - 1; n > 0 && i >= 0; i--)
			if (pf[i + 2].revents != 0 &&
			    (!out_empty(&kd->conns[i])
				    ? conn_flush(&kd->conns[i])
				    : conn_read(kd, &kd->conns[i])) != 0)
				conn_close(kd, i);
		pipe_done(kd); /* answers back, and the next batch recorded */
		conn_sweep(kd);
		if (n > 0 && (pf[0].revents & POLLIN))
			conn_accept(kd);
		/* SoftHSM read the token when keyd started and does not read
		 * it again: a token taken away and put back is read by the next
		 * keyd, which the next command starts. */
		if (kd->token_gone) {
			logf_(kd,
			    "the token folder is missing: exiting, the next "
			    "command starts keyd again");
			break;
		}
		if (kd->nconns > 0)
			idle_since = rf_now();
		else if (o != NULL && o->idle > 0 &&
		    rf_now() - idle_since >= o->idle) {
			logf_(kd, "idle for %d s: exiting", o->idle);
			break;
		}
	}
	if (stop_signal)
		logf_(kd, "stopped by signal %d", (int)stop_signal);
	r = 0;
out:
	pipe_stop(kd); /* every request in flight answered first */
	bg_free(kd);
	while (kd->nconns > 0)
		conn_close(kd, kd->nconns - 1);
	if (listening) {
		(void)unlink(sock);
		(void)unlink(pid);
	}
	if (kd->lfd >= 0)
		close(kd->lfd);
	key_flush(kd);
	rf_kpolicy_free(kd->policy);
	rf_keys_free(kd->keys);
	rf_audit_free(kd->audit);
	rf_store_free(kd->st);
	if (lfd >= 0)
		close(lfd); /* releases keyd.lock */
	OPENSSL_cleanse(kd, sizeof(*kd));
	free(kd);
	return r;
}
