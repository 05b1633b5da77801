/*
 * keyd_pipe.c: the custody process's signing pipeline (keyd.c,
 * keyd_int.h): a signing request's leaves recorded, with other callers',
 * in one durable append, then signed on a signer thread and answered.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "keys/keyd_int.h"

#define BATCH_LEAVES 256 /* messages recorded in one append, at most */
#define BATCH_FIRST 32	 /* and when the signer waits for them */

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
 * connection table): the signer hands every request back (keyd_pipe_done).
 */

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

void
keyd_pipe_wait(struct keyd *kd, struct pending *p)
{
	struct pipeline *pl = kd->pl;

	p->next = NULL;
	*pl->wait_tail = p;
	pl->wait_tail = &p->next;
	pl->inflight++;
}

void
keyd_pipe_wake(struct pipeline *pl)
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
		    (w = keyd_send_now(p->fd, k.d, k.len)) < 0 ||
		    (size_t)w != k.len)
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
 * the loop queues the rest (keyd_pipe_done).
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
	    (w = keyd_send_now(p->fd, p->out.d, p->out.len)) < 0) {
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
	keyd_pipe_wake(b->pl);
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
		keyd_pipe_wake(pl); /* the loop may record the next batch now */
		b->pl = pl;
		rf_keys_group_sign_each(b->plan, sg->crew, set_signed, b);
		for (j = 0; j < b->n; j++) /* refused when recorded */
			if (!b->settled[j])
				settle(pl, b->p[j], &b->sets[j]);
		free(b);
		pthread_mutex_lock(&pl->mu);
		pl->signing--;
		pthread_mutex_unlock(&pl->mu);
		keyd_pipe_wake(pl);
	}
	return NULL;
}

/*
 * What the signer handed back: errors are answered here (refusals are
 * leaves), callers it could not answer are closed (after the turn:
 * keyd_conn_sweep), then the next batch is recorded.
 */
void
keyd_pipe_done(struct keyd *kd)
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
		if (p->beside)
			pl->beside--;
		else
			pl->inflight--;
		/* A caller gone meanwhile gets nothing: its leaves stay. */
		if ((i = keyd_conn_find(kd, p->conn)) >= 0) {
			c = &kd->conns[i];
			c->busy = 0;
			if (p->sent < 0)
				c->dead = 1;
			else if (p->r != 0) {
				rf_err_set(p->r, "%s", p->msg);
				rf_kbuf_begin(&out, RF_KMSG_OK);
				if (keyd_answer(kd, c, p->type, p->r, &out) !=
				    0)
					c->dead = 1;
				rf_kbuf_clear(&out);
			} else if (p->sent == 2 &&
			    keyd_conn_out(c, p->out.d + p->outoff,
				p->out.len - p->outoff) != 0)
				c->dead = 1;
		}
		keyd_pending_free(p);
	}
	pipe_feed(kd);
}

/* Every signature in flight made and answered (before a key changes). */
void
keyd_pipe_drain(struct keyd *kd)
{
	struct pollfd pf = {kd->pl->evfd, POLLIN, 0};

	while (kd->pl->inflight > 0) {
		pipe_feed(kd);
		(void)poll(&pf, 1, 1000);
		keyd_pipe_done(kd);
	}
}

int
keyd_pipe_start(struct keyd *kd)
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
			keyd_pipe_stop(kd);
			return rf_err_set(RF_ERR_INTERNAL,
			    "keyd: cannot start the signer thread");
		}
		sg->started = 1;
	}
	return 0;
}

/* Answer what is in flight, then stop the signer. */
void
keyd_pipe_stop(struct keyd *kd)
{
	struct pipeline *pl = kd->pl;
	int i;

	if (pl == NULL)
		return;
	keyd_pipe_drain(kd);
	/* and the key generations beside it (keyd_run_beside) */
	while (pl->beside > 0) {
		struct pollfd pf = {pl->evfd, POLLIN, 0};

		(void)poll(&pf, 1, 1000);
		keyd_pipe_done(kd);
	}
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
