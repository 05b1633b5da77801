/*
 * pool.c: the standby key pool (pool.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "audit/audit.h"
#include "common/progress.h"
#include "pool/pool.h"
#include "store/store.h"
#include "store/store_pool.h"

/* Keys made per batch: small enough that a stop request is seen within
 * about a second of SoftHSM work, large enough to amortise the commit. */
#define FILL_BATCH_EC 256
#define FILL_BATCH_RSA 4

static const enum rf_key_alg pool_algs[] = {RF_KEY_EC_P256, RF_KEY_EC_P384,
    RF_KEY_RSA_2048, RF_KEY_RSA_3072, RF_KEY_RSA_4096};
#define NALGS (sizeof(pool_algs) / sizeof(pool_algs[0]))

static int
setting_for(const struct rf_config *cfg, enum rf_key_alg alg)
{
	switch (alg) {
	case RF_KEY_EC_P256:
		return cfg->pool_ec_p256;
	case RF_KEY_EC_P384:
		return cfg->pool_ec_p384;
	case RF_KEY_RSA_2048:
		return cfg->pool_rsa_2048;
	case RF_KEY_RSA_3072:
		return cfg->pool_rsa_3072;
	case RF_KEY_RSA_4096:
		return cfg->pool_rsa_4096;
	default:
		return 0;
	}
}

enum rf_key_alg
rf_pool_conn_alg(enum rf_key_alg have, enum rf_key_alg required)
{
	if (required == RF_KEY_NONE || have == required)
		return have;
	/* Entra ID takes any RSA key of 2048 bits or more: an RSA key keeps
	 * its size. */
	if (rf_key_alg_rsa(have) && rf_key_alg_rsa(required))
		return have;
	return required;
}

int64_t
rf_pool_default_target(
    const struct rf_config *cfg, enum rf_key_alg alg, int64_t conns)
{
	int v = setting_for(cfg, alg);
	int64_t margin;

	if (v >= 0)
		return v;
	/* Every connection once, plus the margin (at least one key when
	 * there is any connection: rounding must not leave it at zero). */
	margin = (conns * cfg->pool_margin + 99) / 100;
	return conns + margin;
}

/*
 * Connections by the algorithm of the key that will replace theirs:
 * n[alg], for every algorithm in one pass over the store.
 */
static int
conn_count_add(void *arg, const char *alg, const uint8_t *der, size_t derlen,
    const char *required, int64_t n)
{
	int64_t *count = arg;
	enum rf_key_alg have, need = RF_KEY_NONE, next;

	/* A key's record names its algorithm; a CSR's key is read from its
	 * certificate, as contain reads it (rf_key_alg_of_pub). */
	if ((alg != NULL ? rf_key_alg_parse(alg, &have)
			 : rf_key_alg_of_cert(der, derlen, &have)) != 0 ||
	    (required != NULL && rf_key_alg_parse(required, &need) != 0)) {
		rf_err_clear(); /* none of ours: no key of the pool's */
		return 0;
	}
	if ((next = rf_pool_conn_alg(have, need)) > RF_KEY_NONE &&
	    next < RF_KEY_ALGS)
		count[next] += n;
	return 0;
}

static int
conn_counts(struct rf_store *st, int64_t count[RF_KEY_ALGS])
{
	memset(count, 0, RF_KEY_ALGS * sizeof(*count));
	return rf_store_pool_conn_keys(st, conn_count_add, count);
}

static void
rate_key(enum rf_key_alg alg, char *buf, size_t len)
{
	snprintf(buf, len, "pool_rate.%s", rf_key_alg_name(alg));
}

/* The last refill's rate of alg, keys a second; 0 when none was measured. */
static int
last_rate(struct rf_store *st, enum rf_key_alg alg, double *rate)
{
	char key[64], val[64];
	int r;

	*rate = 0;
	rate_key(alg, key, sizeof(key));
	r = rf_store_meta_get(st, key, val, sizeof(val));
	if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0;
	}
	if (r != 0)
		return r;
	*rate = strtod(val, NULL);
	if (!(*rate > 0))
		*rate = 0;
	return 0;
}

/* rf_pool_status, the connections counted (conn_counts). */
static int
status_of(const struct rf_config *cfg, struct rf_store *st, enum rf_key_alg alg,
    const int64_t *conns, struct rf_pool_status *out)
{
	struct rf_pool_counts c;
	int r;

	memset(out, 0, sizeof(*out));
	out->alg = alg;
	out->refill_s = -1;
	if ((r = rf_store_pool_count(st, rf_key_alg_name(alg), &c)) != 0)
		return r;
	out->conns = conns[alg];
	out->free = c.free;
	out->taken = c.taken;
	out->rejected = c.rejected;
	out->target = rf_pool_default_target(cfg, alg, out->conns);
	if ((r = last_rate(st, alg, &out->rate)) != 0)
		return r;
	if (out->free >= out->target)
		out->refill_s = 0;
	else if (out->rate > 0)
		out->refill_s = (double)(out->target - out->free) / out->rate;
	return 0;
}

int
rf_pool_status(const struct rf_config *cfg, struct rf_store *st,
    enum rf_key_alg alg, struct rf_pool_status *out)
{
	int64_t conns[RF_KEY_ALGS];
	int r;

	memset(out, 0, sizeof(*out));
	if (alg <= RF_KEY_NONE || alg >= RF_KEY_ALGS)
		return rf_err_set(
		    RF_ERR_ARG, "no pool of key algorithm %d", (int)alg);
	if ((r = conn_counts(st, conns)) != 0)
		return r;
	return status_of(cfg, st, alg, conns, out);
}

int
rf_pool_lower_priority(void)
{
	struct sched_param sp;

	memset(&sp, 0, sizeof(sp));
	/* Linux: both apply to the calling thread alone. */
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "cannot set the refilling thread to SCHED_IDLE");
	errno = 0;
	if (setpriority(PRIO_PROCESS, 0, 19) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "cannot lower the refilling thread to nice 19: %s",
		    strerror(errno));
	return 0;
}

/* Make and record one batch of b keys of alg. */
static int
fill_batch(struct rf_keys *keys, struct rf_store *st, enum rf_key_alg alg,
    size_t b, const struct rf_actor *who)
{
	struct rf_keygen *kg = NULL;
	struct rf_key **made = NULL;
	char(*ids)[65] = NULL;
	const char **dids = NULL;
	size_t i, done;
	int r = RF_ERR_ALLOC;

	if ((kg = calloc(b, sizeof(*kg))) == NULL ||
	    (made = calloc(b, sizeof(*made))) == NULL ||
	    (ids = calloc(b, sizeof(*ids))) == NULL ||
	    (dids = calloc(b, sizeof(*dids))) == NULL)
		goto out;
	for (i = 0; i < b; i++) {
		kg[i].alg = alg;
		kg[i].label = "pool";
		kg[i].tenant = NULL;
	}
	if ((r = rf_keys_generate_many(keys, kg, b, who, made)) != 0)
		goto out;
	for (i = 0; i < b; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s", rf_key_id(made[i]));
		dids[i] = ids[i];
	}
	if ((r = rf_store_pool_add(st, (const char(*)[65])ids, b,
		 rf_key_alg_name(alg), rf_now())) != 0) {
		char msg[512];

		/* Unrecorded keys serve nothing: remove them. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		(void)!rf_keys_destroy_many(keys, dids, b, who, &done);
		rf_err_set(r, "%s (the batch's keys were destroyed)", msg);
	}
out:
	for (i = 0; made != NULL && i < b; i++)
		rf_key_free(made[i]);
	free(made);
	free(kg);
	free(ids);
	free(dids);
	return r;
}

int
rf_pool_refill(struct rf_keys *keys, struct rf_store *st, enum rf_key_alg alg,
    int64_t target, size_t max, const volatile sig_atomic_t *stop,
    const struct rf_actor *who, struct rf_pool_fill_report *rep)
{
	return rf_pool_refill_progress(
	    keys, st, alg, target, max, stop, who, NULL, rep);
}

int
rf_pool_refill_progress(struct rf_keys *keys, struct rf_store *st,
    enum rf_key_alg alg, int64_t target, size_t max,
    const volatile sig_atomic_t *stop, const struct rf_actor *who,
    struct rf_progress *prog, struct rf_pool_fill_report *rep)
{
	struct rf_pool_counts c;
	size_t batch, b;
	char key[64], val[64];
	double t0;
	int64_t total;
	int r = 0, started = 0;

	memset(rep, 0, sizeof(*rep));
	if (alg < RF_KEY_EC_P256 || alg >= RF_KEY_ALGS)
		return rf_err_set(RF_ERR_ARG, "unknown pool key algorithm");
	batch = rf_key_alg_rsa(alg) ? FILL_BATCH_RSA : FILL_BATCH_EC;
	t0 = rf_mono_s();
	for (;;) {
		if ((r = rf_store_pool_count(st, rf_key_alg_name(alg), &c)) !=
		    0)
			break;
		rep->free = c.free;
		if (c.free >= target || (max > 0 && rep->made >= max) ||
		    (stop != NULL && *stop))
			break;
		if (!started) {
			/* The keys this run will make: --count, or up to
			 * the target. */
			total = target - c.free;
			if (max > 0 && (int64_t)max < total)
				total = (int64_t)max;
			rf_progress_phase(prog, "make keys", (uint64_t)total);
			started = 1;
		}
		b = batch;
		if ((int64_t)b > target - c.free)
			b = (size_t)(target - c.free);
		if (max > 0 && b > max - rep->made)
			b = max - rep->made;
		if ((r = fill_batch(keys, st, alg, b, who)) != 0)
			break;
		rep->made += b;
		rf_progress_add(prog, b);
	}
	rep->seconds = rf_mono_s() - t0;
	/* Rate for status: only from runs long enough to mean something. */
	if (rep->made >= 8 && rep->seconds > 0) {
		int r2;

		rate_key(alg, key, sizeof(key));
		snprintf(
		    val, sizeof(val), "%.3f", (double)rep->made / rep->seconds);
		if ((r2 = rf_store_meta_set(st, key, val)) != 0 && r == 0)
			r = r2;
	}
	return r;
}

/*
 * Reject a taken key that failed its check. Its pool state "rejected",
 * its record "destroying" (it signs nothing) and a leaf saying why commit
 * in one transaction, under the audit's lock (the store handle is the
 * audit's): the destruction is decided with the rejection, so that a
 * process killed before the destroy leaves the key for the next take of
 * the same ref, or the incident's close, to destroy
 * (rf_pool_rejected_finish). Then the key is destroyed like any tenant
 * key (custody's tenant-only destroy: the pool row is the store's word,
 * which serve's user can write), with its intent and result leaves; its
 * record says "destroyed" only once the token no longer holds it. A
 * destroy that fails leaves it "destroying" for those later runs, with a
 * leaf (pool, "destroy-pending") saying why, and is not the result: the
 * take goes on, the caller makes a key for that connection. Only a
 * rejection that cannot be recorded fails.
 */
static int
reject(struct rf_keys *keys, struct rf_audit *audit, const char *id,
    const char *tenant, const char *why, const struct rf_actor *who)
{
	struct rf_store *st = rf_audit_store(audit);
	struct rf_audit_event ev;
	char detail[512];
	size_t done;
	int r;

	memset(&ev, 0, sizeof(ev));
	ev.type = "pool";
	ev.what = "reject";
	ev.key_id = id;
	ev.tenant = tenant;
	ev.detail = why;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	rf_audit_lock(audit);
	if ((r = rf_store_begin(st)) == 0) {
		if ((r = rf_store_pool_set_state(st, id, "rejected")) == 0 &&
		    (r = rf_store_key_set_state(st, id, "destroying")) == 0 &&
		    (r = rf_audit_append(audit, &ev, 1, NULL)) == 0)
			r = rf_store_commit(st);
		else
			rf_store_rollback(st);
	}
	rf_audit_unlock(audit);
	if (r != 0)
		return r;
	rf_test_point("pool-rejected"); /* decided, not destroyed yet */
	if ((r = rf_keys_destroy_tenant_many(keys, &id, 1, who, &done)) == 0)
		return 0;
	snprintf(detail, sizeof(detail),
	    "rejected (%s), not destroyed yet: %s; the next take for the same "
	    "use, or the incident's close, destroys it",
	    why, rf_err_msg(r));
	rf_err_clear();
	ev.what = "destroy-pending";
	ev.detail = detail;
	/* Advice: the key's record says "destroying" whatever this does. */
	rf_audit_lock(audit);
	if (rf_audit_append(audit, &ev, 1, NULL) != 0)
		rf_err_clear();
	rf_audit_unlock(audit);
	return 0;
}

/* Append key id to (*v)[0..*n), which holds *cap, growing it. */
static int
ids_add(char (**v)[65], size_t *n, size_t *cap, const char *id)
{
	char(*nv)[65];
	size_t c;

	if (*n == *cap) {
		c = *cap ? 2 * *cap : 64;
		if ((nv = realloc(*v, c * sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		*v = nv;
		*cap = c;
	}
	snprintf((*v)[(*n)++], 65, "%s", id);
	return 0;
}

struct id_vec {
	char (*v)[65];
	size_t n, cap;
};

static int
id_add(void *arg, const char *id, const char *taken_by, const char *alg)
{
	struct id_vec *iv = arg;

	(void)taken_by;
	(void)alg;
	return ids_add(&iv->v, &iv->n, &iv->cap, id);
}

int
rf_pool_rejected_finish(struct rf_keys *keys, struct rf_audit *audit,
    const char *ref, const struct rf_actor *who, size_t *destroyed)
{
	struct id_vec iv = {0};
	const char **ids = NULL;
	size_t i, done;
	int r;

	*destroyed = 0;
	rf_audit_lock(audit); /* the store handle is the audit's */
	r = rf_store_pool_rejected_live(
	    rf_audit_store(audit), ref, id_add, &iv);
	rf_audit_unlock(audit);
	if (r != 0 || iv.n == 0)
		goto out;
	if ((ids = calloc(iv.n, sizeof(*ids))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < iv.n; i++)
		ids[i] = iv.v[i];
	if ((r = rf_keys_destroy_tenant_many(keys, ids, iv.n, who, &done)) == 0)
		*destroyed = iv.n;
out:
	free(ids);
	free(iv.v);
	return r;
}

/* Move keys of every algorithm wanted to "taken", with their leaves, in one
 * transaction. idx[i] receives want i's key id, or "" for none. */
static int
take_part(struct rf_audit *audit, const struct rf_pool_want *want, size_t n,
    const struct rf_actor *who, char (*idx)[65])
{
	struct rf_store *st = rf_audit_store(audit);
	struct rf_pool_taker *tk = NULL;
	struct rf_audit_event *evs = NULL;
	size_t *pos = NULL, a, i, k, got, nev = 0;
	char(*ids)[65] = NULL;
	int r = RF_ERR_ALLOC, in_tx = 0;

	if ((tk = calloc(n, sizeof(*tk))) == NULL ||
	    (evs = calloc(n, sizeof(*evs))) == NULL ||
	    (pos = calloc(n, sizeof(*pos))) == NULL ||
	    (ids = calloc(n, sizeof(*ids))) == NULL)
		goto out;
	if ((r = rf_store_begin_bulk(st)) != 0)
		goto out;
	in_tx = 1;
	for (a = 0; a < NALGS; a++) {
		for (i = 0, k = 0; i < n; i++) {
			if (want[i].alg != pool_algs[a])
				continue;
			tk[k].tenant = want[i].tenant;
			tk[k].taken_by = want[i].taken_by;
			tk[k].ref = want[i].ref;
			pos[k++] = i;
		}
		if (k == 0)
			continue;
		if ((r = rf_store_pool_take(st, rf_key_alg_name(pool_algs[a]),
			 tk, k, rf_now(), ids, &got)) != 0)
			goto out;
		for (i = 0; i < got; i++) {
			const struct rf_pool_want *w = &want[pos[i]];
			struct rf_audit_event *ev = &evs[nev++];

			snprintf(idx[pos[i]], 65, "%s", ids[i]);
			ev->type = "pool";
			ev->what = "take";
			ev->key_id = idx[pos[i]];
			ev->tenant = w->tenant;
			ev->ref = w->ref;
			ev->detail = w->taken_by;
			ev->actor = who != NULL ? who->actor : NULL;
			ev->source = who != NULL ? who->source : NULL;
		}
	}
	/* The leaves saying where each key went commit with the move. */
	if ((r = rf_audit_append(audit, evs, nev, NULL)) != 0)
		goto out;
	r = rf_store_commit(st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(st);
	if (r != 0)
		for (i = 0; i < n; i++)
			idx[i][0] = '\0';
	free(tk);
	free(evs);
	free(pos);
	free(ids);
	return r;
}

/*
 * Wants taken a part at a time, each part one transaction: a pool key
 * moves with the leaf saying where it went, and keyd, which appends the
 * leaves of the signatures it makes to the same store, waits for one
 * part's commit at most (at 36,000 pool keys the single transaction held
 * the store's write lock for 1.5 s, and the revocation's OCSP signatures
 * meanwhile). On a failure, idx keeps the ids the parts before it took
 * (committed, each with its leaf): rf_pool_take rejects them.
 */
#define TAKE_PART 2000

static int
take_ids(struct rf_audit *audit, const struct rf_pool_want *want, size_t n,
    const struct rf_actor *who, char (*idx)[65])
{
	size_t from, k;
	int r = 0;

	for (from = 0; from < n && r == 0; from += k) {
		k = n - from < TAKE_PART ? n - from : TAKE_PART;
		if (from > 0)
			rf_test_pause("pool-take-part");
		rf_audit_lock(audit); /* the store handle is the audit's */
		r = take_part(audit, &want[from], k, who, &idx[from]);
		rf_audit_unlock(audit);
	}
	return r;
}

int
rf_pool_take(struct rf_keys *keys, struct rf_audit *audit,
    const struct rf_pool_want *want, size_t n, const struct rf_actor *who,
    struct rf_key **out, size_t *taken)
{
	char(*idx)[65] = NULL;
	const char **ids = NULL;
	struct rf_key **loaded = NULL;
	struct rf_err_held first;
	char why[256];
	size_t i, k;
	int r = RF_ERR_ALLOC;

	*taken = 0;
	memset(&first, 0, sizeof(first));
	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (n == 0)
		return 0;
	if ((idx = calloc(n, sizeof(*idx))) == NULL ||
	    (ids = calloc(n, sizeof(*ids))) == NULL ||
	    (loaded = calloc(n, sizeof(*loaded))) == NULL)
		goto out;
	/*
	 * Keys an earlier take for the same use rejected and did not destroy
	 * (killed before, or the destroy failed) go first; one that fails
	 * again waits for the next take, as it is, signing nothing.
	 */
	for (i = 0; i < n; i++) {
		if (want[i].ref == NULL ||
		    (i > 0 && want[i - 1].ref != NULL &&
			strcmp(want[i].ref, want[i - 1].ref) == 0))
			continue;
		if (rf_pool_rejected_finish(
			keys, audit, want[i].ref, who, &k) != 0)
			rf_err_clear();
	}
	if ((r = take_ids(audit, want, n, who, idx)) != 0) {
		char msg[512];

		/* Keys of the parts taken before the failure go to no one:
		 * out of service, each with a leaf saying so, not left
		 * "taken" by a caller that never had them. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		for (i = 0; i < n; i++) {
			if (idx[i][0] == '\0')
				continue;
			(void)!reject(keys, audit, idx[i], want[i].tenant,
			    "taken by a take that failed in a later part", who);
		}
		rf_err_set(r, "%s", msg);
		goto out;
	}
	/* One pass over the token for the batch (rf_keys_load_many checks,
	 * as rf_keys_load does, that each id is the SHA-256 of the public
	 * key the token holds); the record gives the algorithm. */
	for (i = 0, k = 0; i < n; i++)
		if (idx[i][0] != '\0')
			ids[k++] = idx[i];
	if ((r = rf_keys_load_many(keys, ids, k, loaded)) != 0)
		goto out;
	for (i = 0, k = 0; i < n; i++) {
		if (idx[i][0] == '\0')
			continue;
		out[i] = loaded[k];
		loaded[k++] = NULL;
		if (out[i] != NULL && rf_key_alg(out[i]) == want[i].alg) {
			(*taken)++;
			continue;
		}
		if (out[i] != NULL)
			snprintf(why, sizeof(why),
			    "pool key is %s in the token, %s in the store",
			    rf_key_alg_name(rf_key_alg(out[i])),
			    rf_key_alg_name(want[i].alg));
		else
			snprintf(why, sizeof(why), "no token holds pool key %s",
			    idx[i]);
		rf_key_free(out[i]);
		out[i] = NULL;
		/* Every key that failed is rejected; the first whose
		 * rejection could not be recorded is the result. */
		if ((r = reject(
			 keys, audit, idx[i], want[i].tenant, why, who)) != 0) {
			if (first.r == 0)
				rf_err_keep(&first, r);
			else
				rf_err_clear();
		}
	}
	r = rf_err_kept(&first);
out:
	if (r != 0) {
		for (i = 0; i < n; i++) {
			rf_key_free(out[i]);
			out[i] = NULL;
		}
		*taken = 0;
	}
	for (i = 0; loaded != NULL && i < n; i++)
		rf_key_free(loaded[i]);
	free(loaded);
	free(ids);
	free(idx);
	return r;
}

/* Background refill: keys per step, seconds between checks of the targets
 * when every pool is full, and the pause after a failure. */
#define BG_STEP_EC 8
#define BG_STEP_RSA 1
#define BG_RECHECK_S 10
#define BG_BACKOFF_S 60
/* Keys made before the rate is recorded again. */
#define BG_RATE_EVERY 32

struct rf_pool_bg {
	struct rf_config cfg; /* copy: the settings */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	int64_t need[NALGS]; /* keys each pool lacks, as last counted */
	double next_check;   /* mono time of the next count */
	double paused_until; /* after a failure */
	size_t made[NALGS];  /* since the rate was last recorded */
	double busy[NALGS];  /* seconds spent making them */
	/* At start, the free pool keys' handles are found again
	 * (rf_keys_remember), one token a step: the next token, -1 when
	 * done; the ids, the pairs found and the time it took. */
	int reload_tok;
	char (*reload)[65];
	int *reload_in; /* per id: its token (rf_keys_token_of) */
	size_t nreload, reload_cap, reload_kept;
	double reload_s;
	unsigned long full_reads; /* rf_keys_full_reads() last logged */
};

int
rf_pool_bg_new(const struct rf_config *cfg,
    void (*log)(void *arg, const char *line), void *log_arg,
    struct rf_pool_bg **out)
{
	struct rf_pool_bg *bg;

	*out = NULL;
	if ((bg = calloc(1, sizeof(*bg))) == NULL)
		return RF_ERR_ALLOC;
	bg->cfg = *cfg;
	/* The copy keeps no secret: the PIN stays in keyd's own copy. */
	explicit_bzero(bg->cfg.pin, sizeof(bg->cfg.pin));
	bg->log = log;
	bg->log_arg = log_arg;
#ifdef RF_TEST_HOOKS
	/* Tests: no reload, so that a take without kept handles is seen. */
	if (getenv("RINGFENCE_TEST_POOL_NO_RELOAD") != NULL)
		bg->reload_tok = -1;
#endif
	*out = bg;
	return 0;
}

void
rf_pool_bg_free(struct rf_pool_bg *bg)
{
	if (bg == NULL)
		return;
	free(bg->reload);
	free(bg->reload_in);
	free(bg);
}

static void
bg_log(struct rf_pool_bg *bg, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (bg->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	bg->log(bg->log_arg, line);
}

/* Collect the free pool keys' ids for the reload. */
static int
reload_collect(void *arg, const struct rf_pool_rec *p)
{
	struct rf_pool_bg *bg = arg;

	if (strcmp(p->state, "free") != 0)
		return 0;
	return ids_add(&bg->reload, &bg->nreload, &bg->reload_cap, p->key_id);
}

/*
 * One step of the reload: the handles of the free pool keys in one token
 * (rf_keys_remember, one pass over it). keyd lost the handles of the keys
 * it made when it last stopped; without them, taking pool keys reads
 * every object of each token. 1: more to do.
 */
static int
reload_step(struct rf_pool_bg *bg, struct rf_keys *keys, struct rf_store *st)
{
	const char **ids = NULL;
	double t0 = rf_mono_s();
	size_t i, k = 0, kept = 0;
	int r;

	if (bg->reload == NULL && bg->reload_tok == 0) {
		/* The ids and their tokens, once: a step reads one token. */
		if ((r = rf_store_pool_foreach(st, NULL, reload_collect, bg)) !=
		    0)
			goto fail;
		if (bg->nreload == 0)
			goto done;
		if (bg->nreload > 0 &&
		    (bg->reload_in = calloc(bg->nreload, sizeof(int))) ==
			NULL) {
			r = RF_ERR_ALLOC;
			goto fail;
		}
		for (i = 0; i < bg->nreload; i++)
			bg->reload_in[i] =
			    rf_keys_token_of(keys, bg->reload[i]);
		bg->reload_s += rf_mono_s() - t0;
		return 1;
	}
	if (bg->nreload == 0 || bg->reload_tok >= rf_keys_token_count(keys)) {
		if (bg->nreload > 0)
			bg_log(bg,
			    "standby pool: handles of %zu of %zu free keys "
			    "found again in the token in %.2f s",
			    bg->reload_kept, bg->nreload, bg->reload_s);
		goto done;
	}
	if ((ids = calloc(bg->nreload, sizeof(*ids))) == NULL) {
		r = RF_ERR_ALLOC;
		goto fail;
	}
	for (i = 0; i < bg->nreload; i++)
		if (bg->reload_in[i] == bg->reload_tok)
			ids[k++] = bg->reload[i];
	r = rf_keys_remember(keys, ids, k, bg->reload_tok, &kept);
	free(ids);
	if (r != 0)
		goto fail;
	bg->reload_kept += kept;
	bg->reload_tok++;
	bg->reload_s += rf_mono_s() - t0;
	return 1;
fail:
	/* Not needed for correctness: taking keys searches without. */
	bg_log(bg, "standby pool: handles of free keys not found again: %s",
	    rf_err_msg(r));
	rf_err_clear();
done:
	free(bg->reload);
	free(bg->reload_in);
	bg->reload = NULL;
	bg->reload_in = NULL;
	bg->nreload = bg->reload_cap = 0;
	bg->reload_tok = -1;
	return 1;
}

/* Count what each pool lacks. */
static int
bg_count(struct rf_pool_bg *bg, struct rf_store *st)
{
	struct rf_pool_status ps;
	int64_t conns[RF_KEY_ALGS];
	size_t a;
	int r;

	/* One pass over the connections for every pool (a CSR's key is read
	 * from its certificate). */
	if ((r = conn_counts(st, conns)) != 0)
		return r;
	for (a = 0; a < NALGS; a++) {
		if ((r = status_of(&bg->cfg, st, pool_algs[a], conns, &ps)) !=
		    0)
			return r;
		bg->need[a] = ps.target > ps.free ? ps.target - ps.free : 0;
	}
	return 0;
}

int
rf_pool_bg_step(
    struct rf_pool_bg *bg, struct rf_keys *keys, struct rf_store *st)
{
	static const struct rf_actor who = {"keyd", "pool refill"};
	char key[64], val[64];
	double t0 = rf_mono_s();
	unsigned long reads = rf_keys_full_reads();
	size_t a, b;
	int r;

	if (reads != bg->full_reads) {
		bg->full_reads = reads;
		bg_log(bg,
		    "keys: %lu whole-token reads to load keys since start",
		    reads);
	}
	if (bg->reload_tok >= 0)
		return reload_step(bg, keys, st);
	if (!bg->cfg.pool_refill || t0 < bg->paused_until)
		return 0;
	for (a = 0; a < NALGS && bg->need[a] == 0; a++)
		;
	if (a == NALGS) {
		if (t0 < bg->next_check)
			return 0;
		bg->next_check = t0 + BG_RECHECK_S;
		if ((r = bg_count(bg, st)) != 0)
			goto fail;
		for (a = 0; a < NALGS && bg->need[a] == 0; a++)
			;
		if (a == NALGS)
			return 0;
	}
	b = rf_key_alg_rsa(pool_algs[a]) ? BG_STEP_RSA : BG_STEP_EC;
	if ((int64_t)b > bg->need[a])
		b = (size_t)bg->need[a];
	if ((r = fill_batch(keys, st, pool_algs[a], b, &who)) != 0)
		goto fail;
	bg->need[a] -= (int64_t)b;
	bg->made[a] += b;
	bg->busy[a] += rf_mono_s() - t0;
	if (bg->made[a] >= BG_RATE_EVERY || bg->need[a] == 0) {
		if (bg->made[a] >= 8 && bg->busy[a] > 0) {
			rate_key(pool_algs[a], key, sizeof(key));
			snprintf(val, sizeof(val), "%.3f",
			    (double)bg->made[a] / bg->busy[a]);
			if ((r = rf_store_meta_set(st, key, val)) != 0)
				goto fail;
		}
		bg->made[a] = 0;
		bg->busy[a] = 0;
	}
	if (bg->need[a] == 0) {
		/* Count again: connections may have come meanwhile. */
		bg->next_check = 0;
	}
	return 1;
fail:
	bg_log(bg, "standby pool refill paused for %d s: %s", BG_BACKOFF_S,
	    rf_err_msg(r));
	rf_err_clear();
	memset(bg->need, 0, sizeof(bg->need));
	bg->paused_until = rf_mono_s() + BG_BACKOFF_S;
	bg->next_check = 0;
	return 0;
}

/* Key pairs a second SoftHSM makes on this kind of machine (2 cores), for
 * an estimate before any refill has measured the real rate. */
static double
typical_rate(enum rf_key_alg alg)
{
	switch (alg) {
	case RF_KEY_EC_P256:
		return 300;
	case RF_KEY_EC_P384:
		return 150;
	case RF_KEY_RSA_2048:
		return 5;
	case RF_KEY_RSA_3072:
		return 1;
	default:
		return 0.2; /* RSA-4096: a few seconds a key */
	}
}

int
rf_pool_gen_rate(
    struct rf_store *st, enum rf_key_alg alg, double *rate, int *measured)
{
	int r;

	*measured = 0;
	if ((r = last_rate(st, alg, rate)) != 0)
		return r;
	*measured = *rate > 0;
	if (*rate <= 0)
		*rate = typical_rate(alg);
	return 0;
}

int
rf_pool_plan_for(const struct rf_config *cfg, struct rf_store *st,
    enum rf_key_alg alg, int64_t need, struct rf_pool_plan *p)
{
	struct rf_pool_status ps;
	int r;

	memset(p, 0, sizeof(*p));
	p->alg = alg;
	p->need = need;
	if (need == 0)
		return 0;
	if ((r = rf_pool_status(cfg, st, alg, &ps)) != 0)
		return r;
	p->from_pool = ps.free < need ? ps.free : need;
	p->generate = need - p->from_pool;
	p->rate_measured = ps.rate > 0;
	p->rate = ps.rate > 0 ? ps.rate : typical_rate(alg);
	p->gen_s = (double)p->generate / p->rate;
	return 0;
}

void
rf_pool_plan_text(const struct rf_pool_plan *p, char *buf, size_t len)
{
	const char *name = rf_key_alg_name(p->alg);

	if (p->generate == 0) {
		snprintf(buf, len,
		    "the standby pool has all %lld %s keys needed",
		    (long long)p->need, name);
		return;
	}
	/* Under 10 s, tenths: one RSA key is "about 0.2 s", not "0 s". */
	snprintf(buf, len,
	    "the standby pool has %lld of %lld %s keys needed: %lld will be "
	    "generated in the token, about %.*f s at %.1f keys/s (%s)",
	    (long long)p->from_pool, (long long)p->need, name,
	    (long long)p->generate, p->gen_s < 9.95 ? 1 : 0, p->gen_s, p->rate,
	    p->rate_measured ? "the last refill's rate"
			     : "a typical SoftHSM rate");
}
