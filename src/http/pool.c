/*
 * pool.c: requests that wait, off the OCSP workers.
 *
 * A worker answers OCSP and CA files from memory; a request that waits on
 * something else would hold every connection of the worker behind it.
 * Two things wait: the record (/audit proofs read the store) and keyd
 * (the connector API and on-demand OCSP: an audit append with its fsync,
 * then the token's signature). A worker that reads such a request hands
 * it to the pool for what it waits on and goes on with its other
 * connections; the connection waits (taken out of the worker's epoll set
 * only if it stirs meanwhile: conn.c) until a pool thread has the answer
 * and hands it back (the worker's done list, woken through its donefd).
 *
 * The pools differ only in their settings: the audit pool has a few
 * niced threads (proofs yield the CPU to the workers); the signing pool
 * has enough threads, not niced, that keyd reads many requests in one
 * poll turn and groups them into one durable append (keyd's client keeps
 * up to 16 connections per handle). At most a cap of requests run or
 * wait in a pool: beyond it the worker answers at once, as the route
 * answers a server that is busy (rf_http_busy). Each pool thread answers
 * through a worker struct of its own, so its store connection (routes.c
 * audit_open) and its OCSP answer buffer are its alone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "connector/connector.h"
#include "http/http_int.h"

/* The audit pool threads' nice value: below the workers (0). */
#define RF_HTTP_POOL_NICE 10

struct rf_http_pool {
	struct rf_http *h;
	int nice; /* raised to this on each thread; 0: as the workers */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct rf_http_job *head, *tail; /* waiting, under lock */
	size_t inflight; /* waiting or running (atomic: no lock per job) */
	size_t cap;
	int stop; /* set under lock, read atomically */
	int nthreads, started;
	pthread_t *tid;
	struct rf_http_worker *pw; /* one per thread */
};

/*
 * A place in p for one more job: 0, or -1 at the cap (or stopping). A
 * counter, not the queue's lock: the worker and every pool thread would
 * otherwise meet on that lock four times a job. Two callers racing for the
 * last place may both be refused, as at the cap.
 */
static int
pool_reserve(struct rf_http_pool *p)
{
	if (__atomic_add_fetch(&p->inflight, 1, __ATOMIC_ACQ_REL) > p->cap ||
	    __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		__atomic_sub_fetch(&p->inflight, 1, __ATOMIC_ACQ_REL);
		return -1;
	}
	return 0;
}

static void
pool_unreserve(struct rf_http_pool *p)
{
	__atomic_sub_fetch(&p->inflight, 1, __ATOMIC_ACQ_REL);
}

/* Queue j, for which a place was reserved. */
static void
pool_push(struct rf_http_pool *p, struct rf_http_job *j)
{
	pthread_mutex_lock(&p->lock);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_mutex_unlock(&p->lock);
	/* After the unlock: the thread woken does not wait for it. */
	pthread_cond_signal(&p->cv);
}

void
rf_http_job_free(struct rf_http_job *j)
{
	if (j == NULL)
		return;
	rf_http_resp_done(&j->o);
	rf_connector_assert_pending_free(j->ap);
	free(j->target);
	free(j->inm);
	free(j->body);
	free(j);
}

void
rf_http_job_free_all(struct rf_http_job *j)
{
	struct rf_http_job *next;

	for (; j != NULL; j = next) {
		next = j->next;
		rf_http_job_free(j);
	}
}

static void
job_done(struct rf_http_pool *p, struct rf_http_job *j)
{
	struct rf_http_worker *w = j->w;
	uint64_t one = 1;

	pthread_mutex_lock(&w->done_lock);
	j->next = w->done;
	w->done = j;
	pthread_mutex_unlock(&w->done_lock);
	(void)!write(w->donefd, &one, sizeof(one));
	pool_unreserve(p);
}

/*
 * The answer's body must outlive the thread's next request: one that
 * points into this worker (its OCSP answer buffer) or at a constant is
 * copied to the heap.
 */
static void
own_body(struct rf_http_resp *o)
{
	uint8_t *b;

	if (o->body == NULL || o->heap != NULL || o->snap != NULL)
		return;
	if ((b = malloc(o->len > 0 ? o->len : 1)) == NULL) {
		rf_http_error(o, 500, "out of memory");
		return;
	}
	memcpy(b, o->body, o->len);
	o->heap = b;
	o->body = b;
}

static void *
pool_main(void *arg)
{
	struct rf_http_worker *pw = arg;
	struct rf_http_pool *p = pw->pool;
	struct rf_http_job *j;

	/*
	 * The audit pool yields the CPU to the OCSP workers: on a busy host
	 * a pool thread that shares a core with a worker would otherwise
	 * add its time slices to the relying parties' latency (Linux: the
	 * nice value is the thread's own; raising it needs no privilege).
	 */
	if (p->nice > 0)
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
		    p->nice); /* a failure costs latency, not answers */
	/* Named for top -H and bench/assert_profile.sh's CPU per thread. */
	(void)pthread_setname_np(
	    pthread_self(), p->nice > 0 ? "rf-pool-audit" : "rf-pool-sign");
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->head == NULL &&
		    !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&p->cv, &p->lock);
		if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&p->lock);
		if (j->fn != NULL) {
			j->fn(j->fnarg, 0);
			free(j);
			pool_unreserve(p);
			continue;
		}
		if (j->ap != NULL)
			rf_http_api_finish(j);
		else
			rf_http_handle(pw, &j->q, &j->o);
		own_body(&j->o);
		job_done(p, j);
	}
	rf_http_worker_done(pw);
	return NULL;
}

static void
pool_free(struct rf_http_pool *p)
{
	struct rf_http_job *j, *next;
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->started; i++)
		pthread_join(p->tid[i], NULL);
	for (j = p->head; j != NULL; j = next) {
		next = j->next;
		if (j->fn != NULL) { /* never run: told so */
			j->fn(j->fnarg, 1);
			free(j);
		} else
			rf_http_job_free(j); /* never run: its conn closes */
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	free(p->tid);
	free(p->pw);
	free(p);
}

/* A pool of nthreads threads (nice), at most cap jobs in it. */
static int
pool_new(struct rf_http *h, int nthreads, int cap, int nice,
    struct rf_http_pool **out)
{
	struct rf_http_pool *p;
	int i;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return RF_ERR_ALLOC;
	p->h = h;
	p->nice = nice;
	p->nthreads = nthreads > 0 ? nthreads : 1;
	p->cap = cap > 0 ? (size_t)cap : 1;
	if ((p->tid = calloc((size_t)p->nthreads, sizeof(*p->tid))) == NULL ||
	    (p->pw = calloc((size_t)p->nthreads, sizeof(*p->pw))) == NULL) {
		free(p->tid);
		free(p);
		return RF_ERR_ALLOC;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p->tid);
		free(p->pw);
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "pool: mutex");
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->lock);
		free(p->tid);
		free(p->pw);
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "pool: condition");
	}
	for (i = 0; i < p->nthreads; i++) {
		p->pw[i].h = h;
		p->pw[i].pool = p;
		p->pw[i].epfd = p->pw[i].lfd = p->pw[i].tlfd = -1;
		p->pw[i].donefd = -1;
		if (pthread_create(&p->tid[i], NULL, pool_main, &p->pw[i]) != 0)
			break;
		p->started++;
	}
	if (p->started == 0) {
		pool_free(p);
		return rf_err_set(RF_ERR_INTERNAL, "cannot start a thread");
	}
	*out = p;
	return 0;
}

int
rf_http_pool_start(struct rf_http *h)
{
	const struct rf_config *cfg = h->cfg;
	int r;

	if ((r = pool_new(h, cfg->audit_threads, cfg->audit_max_concurrent,
		 RF_HTTP_POOL_NICE, &h->pools[RF_HTTP_POOL_AUDIT])) != 0 ||
	    (r = pool_new(h, cfg->sign_threads, cfg->sign_max_concurrent, 0,
		 &h->pools[RF_HTTP_POOL_SIGN])) != 0) {
		rf_http_pool_stop(h);
		return r;
	}
	return 0;
}

void
rf_http_pool_stop(struct rf_http *h)
{
	int k;

	if (h == NULL)
		return;
	for (k = 0; k < RF_HTTP_POOLS; k++) {
		pool_free(h->pools[k]);
		h->pools[k] = NULL;
	}
}

int
rf_http_pool_run(struct rf_http *h, enum rf_http_pool_kind k,
    void (*fn)(void *fnarg, int cancelled), void *fnarg)
{
	struct rf_http_pool *p = h->pools[k];
	struct rf_http_job *j;

	if (p == NULL || pool_reserve(p) != 0)
		return -1;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		pool_unreserve(p);
		return -1;
	}
	j->fn = fn;
	j->fnarg = fnarg;
	pool_push(p, j);
	return 0;
}

static char *
dup_opt(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

int
rf_http_pool_submit(struct rf_http_worker *w, enum rf_http_pool_kind k,
    struct rf_conn *c, const struct rf_http_req *q, int flags,
    struct rf_http_resp *o)
{
	struct rf_http_pool *p = w->h->pools[k];
	struct rf_http_job *j = NULL;

	memset(o, 0, sizeof(*o));
	if (p == NULL) {
		/* No pool (it could not start): answered in place. */
		rf_http_handle(w, q, o);
		return -1;
	}
	/* Past the cap: answered at once, nothing copied. */
	if (pool_reserve(p) != 0) {
		rf_http_busy(q, o);
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->target = dup_opt(q->target)) == NULL ||
	    (q->if_none_match != NULL &&
		(j->inm = dup_opt(q->if_none_match)) == NULL) ||
	    (j->body = malloc(q->bodylen + 1)) == NULL) {
		rf_http_job_free(j);
		pool_unreserve(p);
		rf_http_busy(q, o);
		return -1;
	}
	j->w = w;
	j->conn = c;
	j->flags = flags | (q->method == RF_HTTP_HEAD ? RF_HTTP_JOB_HEAD : 0);
	j->q.method = q->method;
	j->q.target = j->target;
	/* A POST's body goes with it (the API's JSON, an OCSP request). */
	if (q->bodylen > 0)
		memcpy(j->body, q->body, q->bodylen);
	j->body[q->bodylen] = '\0';
	j->q.body = j->body;
	j->q.bodylen = q->bodylen;
	j->q.if_none_match = j->inm;
	if (q->peer != NULL) {
		j->peer = *q->peer;
		j->q.peer = &j->peer;
	}
	j->q.tls = q->tls;
	if (q->client_serial != NULL) {
		snprintf(j->serial, sizeof(j->serial), "%s", q->client_serial);
		j->q.client_serial = j->serial;
	}
	/* The worker took its budgets when it deferred it. */
	j->q.deferred = 1;
	/* An assertion waits on the worker itself when it can (api.c). */
	if (k == RF_HTTP_POOL_SIGN && rf_http_api_begin(w, j) == 0)
		return 0;
	pool_push(p, j);
	return 0;
}

void
rf_http_pool_done(struct rf_http_job *j, enum rf_http_pool_kind k)
{
	job_done(j->w->h->pools[k], j);
}

void
rf_http_pool_release(struct rf_http *h, enum rf_http_pool_kind k)
{
	pool_unreserve(h->pools[k]);
}
