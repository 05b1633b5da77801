/*
 * keyd's signing pipeline, from its callers' side: a real keyd (a child
 * process running rf_keyd_run) and several threads of this process asking
 * it at once through one client handle, as serve's workers do. Each
 * caller's signatures verify here with OpenSSL, in its own order, whether
 * its request fitted in one batch or spread over several (more than
 * BATCH_LEAVES messages); a caller whose key is disabled fails alone,
 * every time, with no leaf; the record holds exactly one leaf for each
 * signature released; a key disabled while others sign signs nothing
 * once the disable has returned; a signature does not wait behind
 * keyd's background work (a step as long as an RSA key generation), nor
 * behind a caller that stops reading an answer larger than its socket
 * holds; a caller that asks to hear when its request is recorded hears
 * it once, when every one of its leaves is in the record, and not at all
 * when the request is refused; a keys list, held open, holds up
 * neither signatures nor status; and a tree head is signed only for a
 * record that extends the largest one keyd signed (its ledger), so a
 * record rewritten in the store is not signed again.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "testutil.h"

#include "keys/keyd.h"
#include "audit/audit.h"
#include "keys/keys.h"
#include "store/store.h"

#define CALLERS 6
#define ROUNDS 6
#define BIG 300 /* more than one batch of keyd's (BATCH_LEAVES) */

static const struct rf_actor who = {"tester", "unit"};

struct fx {
	char *home;
	struct rf_config cfg;
	pid_t keyd;
	struct rf_keys *keys; /* a client of keyd */
	struct rf_key *ec, *rsa, *off;
};

static void
keyd_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "keyd: %s\n", line);
}

/* keyd's background work in test_background: slow steps, counted in
 * memory the parent shares. */
#define BG_STEP_US 500000
static int bg_on;
static int sth_on; /* keyd signs tree heads every second (test_kept_keys) */
static volatile int *bg_steps;

static int
slow_step(void *arg, struct rf_keys *keys, struct rf_store *st)
{
	(void)arg;
	(void)keys;
	(void)st;
	usleep(BG_STEP_US);
	__atomic_add_fetch(bg_steps, 1, __ATOMIC_SEQ_CST);
	return 1; /* always more to do */
}

/* The child: keyd, until SIGTERM. */
static void
keyd_child(const struct rf_config *cfg)
{
	struct rf_keyd_opts o;
	int r;

	memset(&o, 0, sizeof(o));
	o.log = keyd_log;
	if (bg_on)
		o.background = slow_step;
	if ((r = rf_keyd_run(cfg, &o)) != 0)
		fprintf(stderr, "keyd: %s\n", rf_err_msg(r));
	_exit(r == 0 ? 0 : 1);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct rf_custody c = {RF_KCLASS_ADMIN, NULL, NULL};
	struct rf_store *st = NULL;
	struct stat sb;
	int i;

	assert_non_null(fx);
	fx->home = tu_home();
	tu_token(fx->home, &fx->cfg);
	snprintf(
	    fx->cfg.custody_user, sizeof(fx->cfg.custody_user), "rf-none-keyd");
	fx->cfg.pool_refill = 0; /* the counts below are this test's */
	if (sth_on)
		fx->cfg.sth_interval = 1;
	assert_int_equal(rf_store_open(fx->cfg.db_path, 1, &st), 0);
	rf_store_free(st);
	/* keyd refuses a token folder others can read, as init makes it. */
	assert_int_equal(tu_sh("chmod 700 '%s/tokens' && chmod 600 '%s'",
			     fx->home, fx->cfg.pin_file),
	    0);
	/* Before this process loads the module: keyd alone opens it. */
	assert_true((fx->keyd = fork()) >= 0);
	if (fx->keyd == 0)
		keyd_child(&fx->cfg);
	for (i = 0; i < 300 && stat(fx->cfg.keyd_socket, &sb) != 0; i++) {
		assert_int_equal(waitpid(fx->keyd, NULL, WNOHANG), 0);
		usleep(50000);
	}
	assert_int_equal(stat(fx->cfg.keyd_socket, &sb), 0);
	rf_keys_custody_use(&c);
	assert_int_equal(rf_keys_open(&fx->cfg, NULL, &fx->keys), 0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "p-ec",
			     NULL, &who, &fx->ec),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_RSA_2048, "p-rsa",
			     NULL, &who, &fx->rsa),
	    0);
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "p-off",
			     NULL, &who, &fx->off),
	    0);
	assert_int_equal(
	    rf_keys_disable(fx->keys, rf_key_id(fx->off), &who), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int status = 0;

	rf_key_free(fx->ec);
	rf_key_free(fx->rsa);
	rf_key_free(fx->off);
	rf_keys_free(fx->keys);
	rf_keys_custody_off();
	kill(fx->keyd, SIGTERM);
	assert_int_equal(waitpid(fx->keyd, &status, 0), fx->keyd);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tu_home_remove(fx->home);
	free(fx);
	return 0;
}

/* Leaves in the record, read from the store as any reader would. */
static uint64_t
leaves(struct fx *fx)
{
	struct rf_store *st;
	uint64_t n = 0;

	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &st), 0);
	assert_int_equal(rf_store_leaf_count(st, &n), 0);
	rf_store_free(st);
	return n;
}

static int
ossl_verify(EVP_PKEY *pub, enum rf_sig_scheme scheme, const uint8_t *msg,
    size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;
	int ok = 0;

	if (m != NULL &&
	    EVP_DigestVerifyInit(m, &p, EVP_sha256(), NULL, pub) == 1 &&
	    (scheme != RF_SIG_RSA_PSS ||
		(EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(p, 32) == 1)))
		ok = EVP_DigestVerify(m, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

/* One caller: ROUNDS requests of its own size, key and scheme. */
struct caller {
	struct fx *fx;
	int no;
	struct rf_key *key;
	enum rf_sig_scheme scheme;
	size_t n;
	int failed, bad; /* requests refused; signatures that did not verify */
	uint64_t signed_;
};

static void *
caller_main(void *arg)
{
	struct caller *cl = arg;
	struct rf_sign_req *reqs = calloc(cl->n, sizeof(*reqs));
	struct rf_sig *sigs = calloc(cl->n, sizeof(*sigs));
	char(*msg)[64] = calloc(cl->n, sizeof(*msg));
	size_t k;
	int round, r;

	if (reqs == NULL || sigs == NULL || msg == NULL)
		abort();
	for (round = 0; round < ROUNDS; round++) {
		for (k = 0; k < cl->n; k++) {
			/* Messages differ per caller, round and place, so a
			 * signature answered to the wrong one fails here. */
			snprintf(msg[k], sizeof(msg[k]),
			    "caller %d round %d msg %zu", cl->no, round, k);
			reqs[k].what = "cert";
			reqs[k].ref = msg[k];
			reqs[k].scheme = cl->scheme;
			reqs[k].msg = (const uint8_t *)msg[k];
			reqs[k].msglen = strlen(msg[k]);
		}
		r = rf_keys_sign(
		    cl->fx->keys, cl->key, reqs, cl->n, &who, sigs);
		if (r != 0) {
			cl->failed += r == RF_ERR_KEY_DISABLED;
			continue;
		}
		for (k = 0; k < cl->n; k++) {
			if (!ossl_verify(rf_key_public(cl->key), cl->scheme,
				reqs[k].msg, reqs[k].msglen, sigs[k].sig,
				sigs[k].len))
				cl->bad++;
			rf_sig_clear(&sigs[k]);
		}
		cl->signed_ += cl->n;
	}
	free(reqs);
	free(sigs);
	free(msg);
	return NULL;
}

static void
test_callers(void **state)
{
	struct fx *fx = *state;
	struct caller cl[CALLERS];
	pthread_t tid[CALLERS];
	const size_t n[CALLERS] = {1, 3, BIG, 1, 2, 1};
	uint64_t before, expect = 0;
	int i;

	memset(cl, 0, sizeof(cl));
	for (i = 0; i < CALLERS; i++) {
		cl[i].fx = fx;
		cl[i].no = i;
		cl[i].n = n[i];
		/* 1 and 4: RSA-PSS (an assertion's); 5: the disabled key. */
		cl[i].key = i == 1 || i == 4 ? fx->rsa
		    : i == 5		     ? fx->off
					     : fx->ec;
		cl[i].scheme =
		    i == 1 || i == 4 ? RF_SIG_RSA_PSS : RF_SIG_DEFAULT;
	}
	before = leaves(fx);
	for (i = 0; i < CALLERS; i++)
		assert_int_equal(
		    pthread_create(&tid[i], NULL, caller_main, &cl[i]), 0);
	for (i = 0; i < CALLERS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	for (i = 0; i < CALLERS; i++) {
		assert_int_equal(cl[i].bad, 0);
		if (i == 5) {
			/* Refused every time, alone. */
			assert_int_equal(cl[i].failed, ROUNDS);
			assert_int_equal(cl[i].signed_, 0);
			continue;
		}
		assert_int_equal(cl[i].failed, 0);
		assert_int_equal(cl[i].signed_, (uint64_t)ROUNDS * n[i]);
		expect += cl[i].signed_;
	}
	/* One leaf per signature released; none for the disabled key. */
	assert_int_equal(leaves(fx), before + expect);
}

/* Disable a key while callers sign with it: once the disable has
 * returned, nothing more is signed with it. */
struct racer {
	struct fx *fx;
	struct rf_key *key;
	volatile int *disabled; /* set by the main thread after it returned */
	int after;		/* signatures made once it was set */
};

static void *
racer_main(void *arg)
{
	struct racer *rc = arg;
	struct rf_sign_req req;
	struct rf_sig sig;
	int was, i;

	memset(&req, 0, sizeof(req));
	req.what = "cert";
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	for (i = 0; i < 400; i++) {
		was = __atomic_load_n(rc->disabled, __ATOMIC_SEQ_CST);
		if (rf_keys_sign(rc->fx->keys, rc->key, &req, 1, &who, &sig) ==
		    0) {
			rc->after += was;
			rf_sig_clear(&sig);
		} else if (was)
			break;
	}
	return NULL;
}

static void
test_disable_between(void **state)
{
	struct fx *fx = *state;
	struct racer rc[3];
	pthread_t tid[3];
	struct rf_key *k;
	volatile int disabled = 0;
	int i;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "p-race",
			     NULL, &who, &k),
	    0);
	for (i = 0; i < 3; i++) {
		rc[i].fx = fx;
		rc[i].key = k;
		rc[i].disabled = &disabled;
		rc[i].after = 0;
		assert_int_equal(
		    pthread_create(&tid[i], NULL, racer_main, &rc[i]), 0);
	}
	usleep(100000);
	assert_int_equal(rf_keys_disable(fx->keys, rf_key_id(k), &who), 0);
	__atomic_store_n(&disabled, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(rc[i].after, 0);
	}
	rf_key_free(k);
}

struct find_retired {
	const char *id;
	int seen, retired;
};

static int
find_retired(void *arg, const struct rf_key_info *ki)
{
	struct find_retired *f = arg;

	if (strcmp(ki->id, f->id) == 0) {
		f->seen++;
		f->retired = ki->retired;
	}
	return 0;
}

/*
 * A key disabled through keyd signs nothing even once the store says
 * `active` again: serve's user can write the store, and keyd keeps the
 * keys it took out of service in its own ledger (0600, custody folder).
 */
static void
test_disable_store_undone(void **state)
{
	struct fx *fx = *state;
	struct rf_sign_req req;
	struct rf_sig sig;
	struct find_retired fr;
	struct rf_key *k;
	char id[65];
	int r;

	memset(&req, 0, sizeof(req));
	req.what = "cert";
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "p-undo",
			     NULL, &who, &k),
	    0);
	snprintf(id, sizeof(id), "%s", rf_key_id(k));
	assert_int_equal(rf_keys_sign(fx->keys, k, &req, 1, &who, &sig), 0);
	rf_sig_clear(&sig);
	assert_int_equal(rf_keys_disable(fx->keys, id, &who), 0);
	/* As an attacker with the store file would. */
	assert_int_equal(tu_sh("sqlite3 '%s' \"UPDATE keys SET state = "
			       "'active' WHERE id = '%s'\"",
			     fx->cfg.db_path, id),
	    0);
	r = rf_keys_sign(fx->keys, k, &req, 1, &who, &sig);
	assert_int_equal(r, RF_ERR_KEY_DISABLED);
	assert_non_null(strstr(rf_err_msg(r), "ledger"));
	assert_null(sig.sig);
	/* keyd's list says so too (keys list reports it). */
	memset(&fr, 0, sizeof(fr));
	fr.id = id;
	assert_int_equal(rf_keys_list(fx->keys, find_retired, &fr), 0);
	assert_int_equal(fr.seen, 1);
	assert_int_equal(fr.retired, 1);
	rf_key_free(k);
}

static int
setup_bg(void **state)
{
	void *m = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	bg_steps = m;
	*bg_steps = 0;
	bg_on = 1;
	return setup(state);
}

static int
teardown_bg(void **state)
{
	teardown(state);
	bg_on = 0;
	munmap((void *)bg_steps, sizeof(int));
	bg_steps = NULL;
	return 0;
}

static double
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* n single signatures with fx's EC key, gap_us apart: the slowest, ms. */
static double
worst_of(struct fx *fx, int n, useconds_t gap_us)
{
	struct rf_sign_req req;
	struct rf_sig sig;
	double t0, worst = 0;
	int i;

	memset(&req, 0, sizeof(req));
	req.what = "cert";
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	for (i = 0; i < n; i++) {
		t0 = ms_now();
		assert_int_equal(
		    rf_keys_sign(fx->keys, fx->ec, &req, 1, &who, &sig), 0);
		if (ms_now() - t0 > worst)
			worst = ms_now() - t0;
		rf_sig_clear(&sig);
		usleep(gap_us);
	}
	return worst;
}

/* While the background work runs its half-second steps back to back, one
 * signature after another is answered without waiting for a step. */
static void
test_background(void **state)
{
	struct fx *fx = *state;
	double worst = worst_of(fx, 30, 20000);

	/* The steps ran meanwhile, and no signature waited for one. */
	assert_true(__atomic_load_n(bg_steps, __ATOMIC_SEQ_CST) >= 1);
	if (worst >= BG_STEP_US / 2000.0)
		fail_msg("a signature took %.0f ms beside %d ms background "
			 "steps",
		    worst, BG_STEP_US / 1000);
}

/*
 * A caller (a child process) that asks for an answer larger than a
 * socket holds and stops reading delays no one else; once it reads
 * again it gets the whole answer. The signatures timed are asked once
 * keyd has signed the big request (its queue, from keyd's status, is
 * empty again) and holds its answer: a signature asked before then may
 * wait for that signing, however long a loaded machine makes it; one
 * asked after may not wait for the reader at all.
 */
#define STALL_N 3000 /* RSA-2048: 768 KB of signatures */

/* The big request through keys: 0 when every signature came back. */
static int
stall_sign(struct rf_keys *k, struct rf_key *rsa)
{
	struct rf_sign_req *reqs = calloc(STALL_N, sizeof(*reqs));
	struct rf_sig *sigs = calloc(STALL_N, sizeof(*sigs));
	size_t i;
	int r = 1;

	for (i = 0; reqs != NULL && i < STALL_N; i++) {
		reqs[i].what = "cert";
		reqs[i].scheme = RF_SIG_RSA_PSS;
		reqs[i].msg = (const uint8_t *)"stalled";
		reqs[i].msglen = 7;
	}
	if (reqs != NULL && sigs != NULL &&
	    (r = rf_keys_sign(k, rsa, reqs, STALL_N, &who, sigs)) == 0)
		for (i = 0; r == 0 && i < STALL_N; i++)
			if (sigs[i].sig == NULL || sigs[i].len != 256)
				r = 1;
	if (r != 0)
		fprintf(stderr, "the big request: %s\n",
		    r == 1 ? "a signature is missing" : rf_err_msg(r));
	for (i = 0; sigs != NULL && i < STALL_N; i++)
		rf_sig_clear(&sigs[i]);
	free(sigs);
	free(reqs);
	return r;
}

static void
stalled_child(struct fx *fx)
{
	struct rf_keys *k = NULL;

	if (rf_keys_open(&fx->cfg, NULL, &k) != 0)
		_exit(2);
	_exit(stall_sign(k, fx->rsa) == 0 ? 0 : 3);
}

/*
 * SIGCONT to the stopped caller at a deadline the parent sets, whatever
 * the parent is doing (or at once when told): a keyd that waits for the
 * reader then holds the parent's requests until this, and the test fails
 * instead of hanging. fired: the deadline passed.
 */
struct resume {
	pid_t kid;
	struct timespec until;
	int done, fired;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void
resume_in(struct resume *w, int secs)
{
	pthread_mutex_lock(&w->mu);
	clock_gettime(CLOCK_REALTIME, &w->until);
	w->until.tv_sec += secs;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void *
resume_later(void *arg)
{
	struct resume *w = arg;
	struct timespec now;

	pthread_mutex_lock(&w->mu);
	while (!w->done) {
		(void)pthread_cond_timedwait(&w->cv, &w->mu, &w->until);
		clock_gettime(CLOCK_REALTIME, &now);
		if (!w->done &&
		    (now.tv_sec > w->until.tv_sec ||
			(now.tv_sec == w->until.tv_sec &&
			    now.tv_nsec >= w->until.tv_nsec))) {
			w->fired = 1;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	kill(w->kid, SIGCONT);
	return NULL;
}

/* keyd's signing requests in flight. */
static unsigned
keyd_queue(struct fx *fx)
{
	struct rf_keyd_status st;

	assert_int_equal(rf_keyd_status_get(&fx->cfg, &st), 0);
	return st.queue;
}

static void
test_stalled_reader(void **state)
{
	struct fx *fx = *state;
	struct resume w;
	pthread_t tid;
	double worst;
	pid_t kid;
	int i, fired, status = 0;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	assert_true((kid = fork()) >= 0);
	if (kid == 0)
		stalled_child(fx);
	/* Its request is in keyd's pipeline; then it stops reading. */
	for (i = 0; i < 600 && keyd_queue(fx) == 0; i++)
		usleep(50000);
	assert_true(i < 600);
	assert_int_equal(kill(kid, SIGSTOP), 0);
	w.kid = kid;
	resume_in(&w, 60);
	assert_int_equal(pthread_create(&tid, NULL, resume_later, &w), 0);
	/* keyd signs it and holds its answer (60 s at most: a keyd stuck on
	 * the reader answers no status until the SIGCONT). */
	for (i = 0; keyd_queue(fx) != 0; i++)
		usleep(50000);
	pthread_mutex_lock(&w.mu);
	fired = w.fired;
	pthread_mutex_unlock(&w.mu);
	if (fired)
		fail_msg("keyd answered nothing for 60 s beside a caller that "
			 "does not read");
	/* Then the SIGCONT in 7 s at the latest: within the 10 s keyd
	 * gives a caller that does not read before it closes it. */
	resume_in(&w, 7);
	worst = worst_of(fx, 30, 50000);
	pthread_mutex_lock(&w.mu);
	w.done = 1;
	pthread_cond_signal(&w.cv);
	pthread_mutex_unlock(&w.mu);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(waitpid(kid, &status, 0), kid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* A keyd that waited for the reader would have held one until the
	 * SIGCONT, 7 s after they began. */
	if (worst >= 3000)
		fail_msg("a signature took %.0f ms beside a caller that does "
			 "not read",
		    worst);
}

/* What a set's rf_recorded saw: how often it was told, and the leaves in
 * the record then. */
struct heard {
	struct fx *fx;
	int times;
	uint64_t leaves;
};

static void
heard_one(void *arg)
{
	struct heard *h = arg;

	h->times++;
	h->leaves = leaves(h->fx);
}

static void
test_told_recorded(void **state)
{
	struct fx *fx = *state;
	size_t n = 4 * BIG; /* several of keyd's batches, were it split */
	struct rf_sign_req *reqs = calloc(n, sizeof(*reqs));
	struct rf_sig *sigs = calloc(n, sizeof(*sigs)), offsig[1];
	struct rf_sign_set sets[2];
	struct heard h[2];
	struct rf_recorded rec[2];
	EVP_PKEY *pub = rf_key_public(fx->ec);
	uint64_t before = leaves(fx);
	size_t i;

	assert_non_null(reqs);
	assert_non_null(sigs);
	for (i = 0; i < n; i++) {
		reqs[i].what = "cert";
		reqs[i].msg = (const uint8_t *)"told";
		reqs[i].msglen = 4;
	}
	memset(sets, 0, sizeof(sets));
	memset(h, 0, sizeof(h));
	for (i = 0; i < 2; i++) {
		h[i].fx = fx;
		rec[i].fn = heard_one;
		rec[i].arg = &h[i];
		sets[i].recorded = &rec[i];
		sets[i].who = &who;
	}
	sets[0].key = fx->ec;
	sets[0].reqs = reqs;
	sets[0].n = n;
	sets[0].sigs = sigs;
	sets[1].key = fx->off; /* disabled: refused, never recorded */
	sets[1].reqs = reqs;
	sets[1].n = 1;
	sets[1].sigs = offsig;
	rf_keys_sign_group(fx->keys, sets, 2);
	assert_int_equal(sets[0].r, 0);
	assert_int_not_equal(sets[1].r, 0);
	assert_int_equal(h[0].times, 1);
	assert_int_equal(h[1].times, 0);
	/* Recorded whole before told: every leaf of the set was there. */
	assert_true(h[0].leaves >= before + n);
	assert_int_equal(leaves(fx), before + n);
	for (i = 0; i < n; i++) {
		assert_true(ossl_verify(pub, RF_SIG_DEFAULT, reqs[i].msg,
		    reqs[i].msglen, sigs[i].sig, sigs[i].len));
		rf_sig_clear(&sigs[i]);
	}
	free(sigs);
	free(reqs);
}

/* keyd holds every keys list 2.5 s (a test seam), as a list of 72,000
 * keys holds it for a minute. */
#define LIST_HOLD_MS 2500

static int
setup_list_held(void **state)
{
	char ms[16];
	int r;

	snprintf(ms, sizeof(ms), "%d", LIST_HOLD_MS);
	setenv("RINGFENCE_TEST_PAUSE_AT", "keyd-aside", 1);
	setenv("RINGFENCE_TEST_PAUSE_MS", ms, 1);
	r = setup(state); /* keyd, forked there, keeps them */
	unsetenv("RINGFENCE_TEST_PAUSE_AT");
	unsetenv("RINGFENCE_TEST_PAUSE_MS");
	return r;
}

struct lister {
	struct fx *fx;
	size_t n;
	int r;
	double start, end; /* ms_now() */
};

static int
count_key(void *arg, const struct rf_key_info *ki)
{
	(void)ki;
	(*(size_t *)arg)++;
	return 0;
}

static void *
list_aside(void *arg)
{
	struct lister *l = arg;

	l->start = ms_now();
	l->r = rf_keys_list(l->fx->keys, count_key, &l->n);
	l->end = ms_now();
	return NULL;
}

/* While a keys list reads the tokens, keyd goes on answering: signatures
 * and status do not wait for it, and the list still answers whole. */
static void
test_list_aside(void **state)
{
	struct fx *fx = *state;
	struct lister l = {fx, 0, -1, 0, 0};
	pthread_t tid;
	double worst, signed_at;

	assert_int_equal(pthread_create(&tid, NULL, list_aside, &l), 0);
	usleep(300000); /* the list is in keyd by now */
	worst = worst_of(fx, 10, 50000);
	(void)keyd_queue(fx); /* status answers too */
	signed_at = ms_now();
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(l.r, 0);
	assert_true(l.n >= 2); /* the EC and RSA keys at least */
	/* The signatures were made while the list was held. */
	assert_true(l.end - l.start >= LIST_HOLD_MS);
	assert_true(l.end > signed_at);
	if (worst >= 1000)
		fail_msg("a signature took %.0f ms beside a keys list", worst);
}

struct loader {
	struct fx *fx;
	struct rf_key *out[3];
	int r;
	double start, end; /* ms_now() */
};

static void *
load_many_aside(void *arg)
{
	struct loader *l = arg;
	const char *ids[3] = {rf_key_id(l->fx->ec), rf_key_id(l->fx->rsa),
	    "00000000000000000000000000000000000000000000000000000000000000aa"};

	l->start = ms_now();
	l->r = rf_keys_load_many(l->fx->keys, ids, 3, l->out);
	l->end = ms_now();
	return NULL;
}

/* A load of many keys (contain's pool keys) is aside too: signatures go on
 * while it reads the tokens, and it answers every key, a missing one as
 * missing. */
static void
test_load_many_aside(void **state)
{
	struct fx *fx = *state;
	struct loader l;
	pthread_t tid;
	double worst, signed_at;
	int i;

	memset(&l, 0, sizeof(l));
	l.fx = fx;
	l.r = -1;
	assert_int_equal(pthread_create(&tid, NULL, load_many_aside, &l), 0);
	usleep(300000); /* the load is in keyd by now */
	worst = worst_of(fx, 10, 50000);
	signed_at = ms_now();
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(l.r, 0);
	assert_non_null(l.out[0]);
	assert_non_null(l.out[1]);
	assert_null(l.out[2]);
	assert_string_equal(rf_key_id(l.out[0]), rf_key_id(fx->ec));
	assert_string_equal(rf_key_id(l.out[1]), rf_key_id(fx->rsa));
	assert_int_equal(
	    EVP_PKEY_eq(rf_key_public(l.out[1]), rf_key_public(fx->rsa)), 1);
	assert_true(l.end - l.start >= LIST_HOLD_MS);
	assert_true(l.end > signed_at);
	if (worst >= 1000)
		fail_msg(
		    "a signature took %.0f ms beside a load of keys", worst);
	for (i = 0; i < 3; i++)
		rf_key_free(l.out[i]);
}

static void append_leaves(struct fx *fx, const char *type, int n);

/* LOAD_MANY after LOAD_MANY, until told to stop: failures counted. */
struct hammer {
	struct fx *fx;
	volatile int stop;
	int loads, failed;
};

#define HAMMER_IDS 300

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct rf_keys *k = NULL;
	struct rf_key *out[HAMMER_IDS];
	const char *ids[HAMMER_IDS];
	int i;

	for (i = 0; i < HAMMER_IDS; i++)
		ids[i] = rf_key_id(i % 2 ? h->fx->ec : h->fx->rsa);
	/* A connection of its own: keyd's loop reads one at a time. */
	if (rf_keys_open(&h->fx->cfg, NULL, &k) != 0) {
		h->failed++;
		return NULL;
	}
	while (!__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST)) {
		if (rf_keys_load_many(k, ids, HAMMER_IDS, out) != 0)
			h->failed++;
		for (i = 0; i < HAMMER_IDS; i++) {
			if (out[i] == NULL)
				h->failed++;
			rf_key_free(out[i]);
		}
		h->loads++;
	}
	rf_keys_free(k);
	return NULL;
}

/*
 * Loads run aside read the store on their thread while keyd's loop reads
 * it for the policy of each signature: one store connection, used under
 * one lock by both (keyd_handlers.c, request). Without it the connection's
 * state was torn at 36,000 keys ("database is damaged").
 */
static void
test_aside_beside_policy(void **state)
{
	struct fx *fx = *state;
	struct hammer h[2];
	pthread_t tid[2];
	int i;

	memset(h, 0, sizeof(h));
	for (i = 0; i < 2; i++) {
		h[i].fx = fx;
		assert_int_equal(
		    pthread_create(&tid[i], NULL, hammer_main, &h[i]), 0);
	}
	/* Each signature's policy reads the leaves appended since the last. */
	for (i = 0; i < 15; i++) {
		append_leaves(fx, "test", 200);
		(void)worst_of(fx, 5, 0);
	}
	for (i = 0; i < 2; i++) {
		__atomic_store_n(&h[i].stop, 1, __ATOMIC_SEQ_CST);
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(h[i].failed, 0);
		assert_true(h[i].loads > 0);
	}
}

/* Ask keyd (as an administrator) to sign the record's tree head at size
 * (0: its head now); RF_ERR_REFUSED if keyd's ledger says no. */
static int
sign_head_with(struct fx *fx, struct rf_key *key, uint64_t size)
{
	struct rf_store *st = NULL;
	struct rf_audit *a = NULL;
	uint8_t root[RF_HASH_LEN], tbs[RF_STH_TBS_LEN];
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	uint64_t head = 0;
	int r;

	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &st), 0);
	assert_int_equal(rf_audit_open(st, &a), 0);
	assert_int_equal(rf_audit_head(a, &head, root), 0);
	if (size != 0 && size != head)
		assert_int_equal(rf_audit_root(a, size, root), 0);
	rf_audit_sth_tbs(size ? size : head, rf_now(), root, tbs);
	rf_audit_free(a);
	rf_store_free(st);
	memset(&req, 0, sizeof(req));
	req.msg = tbs;
	req.msglen = sizeof(tbs);
	req.what = "sth";
	req.ref = "test";
	r = rf_keys_sign(fx->keys, key, &req, 1, &who, &sig);
	rf_sig_clear(&sig);
	return r;
}

static int
sign_head(struct fx *fx, uint64_t size)
{
	return sign_head_with(fx, fx->ec, size);
}

/* n leaves of kind type, appended as any writer of the record would. */
static void
append_leaves(struct fx *fx, const char *type, int n)
{
	struct rf_store *st = NULL;
	struct rf_audit *a = NULL;
	struct rf_audit_event ev;
	int i;

	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &st), 0);
	assert_int_equal(rf_audit_open(st, &a), 0);
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.detail = type;
	for (i = 0; i < n; i++)
		assert_int_equal(rf_audit_append(a, &ev, 1, NULL), 0);
	rf_audit_free(a);
	rf_store_free(st);
}

static void
test_sth_history(void **state)
{
	struct fx *fx = *state;
	uint64_t first;

	append_leaves(fx, "test", 5);
	first = leaves(fx);
	assert_int_equal(sign_head(fx, 0), 0);
	/* The record grows: a larger head is proved consistent, signed. */
	append_leaves(fx, "test", 3);
	assert_int_equal(sign_head(fx, 0), 0);
	/* An older head of the same record is consistent too. */
	assert_int_equal(sign_head(fx, first), 0);

	/* Cut short below what keyd signed: refused. */
	assert_int_equal(tu_sh("sqlite3 '%s' 'DELETE FROM audit_leaf WHERE "
			       "idx >= 3; DELETE FROM audit_node'",
			     fx->cfg.db_path),
	    0);
	assert_int_equal(sign_head(fx, 3), RF_ERR_REFUSED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_REFUSED),
	    "does not extend the tree head keyd signed"));

	/* Rewritten from the start, as a writer of the store file can, with
	 * the record's own code, so that its nodes and roots agree: larger
	 * than before, and consistent with itself, but not with what keyd
	 * signed. Refused, at any size. A head signed with another key (a
	 * key the store may call the audit key) does not replace what keyd
	 * keeps for this one. */
	assert_int_equal(tu_sh("sqlite3 '%s' 'DELETE FROM audit_leaf; "
			       "DELETE FROM audit_node; DELETE FROM audit_sth'",
			     fx->cfg.db_path),
	    0);
	append_leaves(fx, "forged", (int)first + 20);
	assert_int_equal(sign_head_with(fx, fx->rsa, 0), 0);
	assert_int_equal(sign_head(fx, 0), RF_ERR_REFUSED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_REFUSED),
	    "does not extend the tree head keyd signed"));
	assert_int_equal(sign_head(fx, first), RF_ERR_REFUSED);
}

static int
setup_sth(void **state)
{
	sth_on = 1;
	return setup(state);
}

static int
teardown_sth(void **state)
{
	teardown(state);
	sth_on = 0;
	return 0;
}

/* Tree heads keyd signed by itself with key id. */
struct heads {
	const char *id;
	int n;
};

static int
count_head(void *arg, const struct rf_sth_rec *rec)
{
	struct heads *h = arg;

	h->n += strcasecmp(rec->key_id, h->id) == 0;
	return 0;
}

static int
heads_by(struct fx *fx, const char *id)
{
	struct heads h = {id, 0};
	struct rf_store *st;

	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &st), 0);
	assert_int_equal(rf_store_sth_foreach(st, count_head, &h), 0);
	rf_store_free(st);
	return h.n;
}

/* Wait up to 5 s for keyd's next tree head by key id: 1 if one came. */
static int
head_comes(struct fx *fx, const char *id)
{
	int before = heads_by(fx, id), i;

	append_leaves(fx, "test", 2);
	for (i = 0; i < 50; i++) {
		if (heads_by(fx, id) > before)
			return 1;
		usleep(100000);
	}
	return 0;
}

/*
 * keyd keeps the keys it loaded, its audit key too: a disable forgets
 * only the keys it names (the others sign on, the disabled do not), and
 * the tree heads keyd signs by itself stop when its audit key is disabled.
 */
static void
test_kept_keys(void **state)
{
	struct fx *fx = *state;
	struct rf_key *k[6], *audit;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	int i, round;

	assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256, "audit",
			     NULL, &who, &audit),
	    0);
	/* Made `generated`; init records its audit key as this. */
	assert_int_equal(tu_sh("sqlite3 '%s' \"UPDATE keys SET state = "
			       "'active', purpose = 'audit' WHERE id = '%s'\"",
			     fx->cfg.db_path, rf_key_id(audit)),
	    0);
	for (i = 0; i < 6; i++)
		assert_int_equal(rf_keys_generate(fx->keys, RF_KEY_EC_P256,
				     "p-kept", NULL, &who, &k[i]),
		    0);
	memset(&req, 0, sizeof(req));
	req.what = "cert";
	req.msg = (const uint8_t *)"tbs";
	req.msglen = 3;
	/* Loaded, then kept; two of them disabled between the rounds. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 6; i++) {
			int off = round == 1 && (i == 1 || i == 4);

			assert_int_equal(rf_keys_sign(fx->keys, k[i], &req, 1,
					     &who, &sig) == 0,
			    !off);
			if (!off)
				assert_true(ossl_verify(rf_key_public(k[i]),
				    RF_SIG_DEFAULT, req.msg, req.msglen,
				    sig.sig, sig.len));
			rf_sig_clear(&sig);
		}
		if (round == 0) {
			assert_true(head_comes(fx, rf_key_id(audit)));
			assert_int_equal(
			    rf_keys_disable(fx->keys, rf_key_id(k[1]), &who),
			    0);
			assert_int_equal(
			    rf_keys_disable(fx->keys, rf_key_id(k[4]), &who),
			    0);
		}
	}
	/* A kept key the store says is disabled signs nothing: the store's
	 * state is read at each signature, not kept with the key. */
	assert_int_equal(tu_sh("sqlite3 '%s' \"UPDATE keys SET state = "
			       "'disabled' WHERE id = '%s'\"",
			     fx->cfg.db_path, rf_key_id(k[0])),
	    0);
	assert_int_not_equal(
	    rf_keys_sign(fx->keys, k[0], &req, 1, &who, &sig), 0);
	rf_sig_clear(&sig);
	/* A key loaded after the disable takes a freed place. */
	assert_int_equal(
	    rf_keys_sign(fx->keys, fx->ec, &req, 1, &who, &sig), 0);
	rf_sig_clear(&sig);
	assert_true(head_comes(fx, rf_key_id(audit)));
	/* The kept audit key signs no tree head once disabled. */
	assert_int_equal(rf_keys_disable(fx->keys, rf_key_id(audit), &who), 0);
	assert_false(head_comes(fx, rf_key_id(audit)));
	for (i = 0; i < 6; i++)
		rf_key_free(k[i]);
	rf_key_free(audit);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_callers, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_disable_between, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_disable_store_undone, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_background, setup_bg, teardown_bg),
	    cmocka_unit_test_setup_teardown(
		test_stalled_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_told_recorded, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_list_aside, setup_list_held, teardown),
	    cmocka_unit_test_setup_teardown(
		test_load_many_aside, setup_list_held, teardown),
	    cmocka_unit_test_setup_teardown(
		test_aside_beside_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sth_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_kept_keys, setup_sth, teardown_sth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
