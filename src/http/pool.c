/*
 * pool.c: the slow routes (/audit/...) off the OCSP workers.
 *
 * A proof reads the store; however fast the audit module makes it, it is
 * not work for a thread that answers OCSP from memory. A worker that reads
 * such a request hands it here and goes on with its other connections; the
 * connection waits, out of the worker's epoll set, until a pool thread has
 * the answer and hands it back (the worker's done list, woken through its
 * donefd). At most cfg->audit_max_concurrent requests run or wait at once:
 * beyond that the worker answers 503 with Retry-After itself, at once.
 * Each pool thread answers through a worker struct of its own, so its
 * store connection (routes.c audit_open) is its alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "http/http_int.h"

/* The pool threads' nice value: below the workers (0). */
#define RF_HTTP_POOL_NICE 10

struct rf_http_pool {
	struct rf_http *h;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct rf_http_job *head, *tail; /* waiting, under lock */
	size_t inflight;		 /* waiting or running */
	size_t cap;
	int stop;
	int nthreads, started;
	pthread_t *tid;
	struct rf_http_worker *pw; /* one per thread */
};

void
rf_http_job_free(struct rf_http_job *j)
{
	if (j == NULL)
		return;
	rf_http_resp_done(&j->o);
	free(j->target);
	free(j->inm);
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
	pthread_mutex_lock(&p->lock);
	p->inflight--;
	pthread_mutex_unlock(&p->lock);
}

static void *
pool_main(void *arg)
{
	struct rf_http_worker *pw = arg;
	struct rf_http_pool *p = pw->h->pool;
	struct rf_http_job *j;

	/*
	 * Proofs yield the CPU to the OCSP workers: on a busy host a pool
	 * thread that shares a core with a worker would otherwise add its
	 * time slices to the relying parties' latency (Linux: the nice
	 * value is the thread's own; raising it needs no privilege).
	 */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
	    RF_HTTP_POOL_NICE); /* a failure costs latency, not answers */
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->head == NULL && !p->stop)
			pthread_cond_wait(&p->cv, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&p->lock);
		rf_http_handle(pw, &j->q, &j->o);
		job_done(p, j);
	}
	rf_http_worker_done(pw);
	return NULL;
}

int
rf_http_pool_start(struct rf_http *h)
{
	struct rf_http_pool *p;
	int i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return RF_ERR_ALLOC;
	p->h = h;
	p->nthreads = h->cfg->audit_threads > 0 ? h->cfg->audit_threads : 1;
	p->cap = h->cfg->audit_max_concurrent > 0
	    ? (size_t)h->cfg->audit_max_concurrent
	    : 1;
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
	h->pool = p;
	for (i = 0; i < p->nthreads; i++) {
		p->pw[i].h = h;
		p->pw[i].epfd = p->pw[i].lfd = p->pw[i].tlfd = -1;
		p->pw[i].donefd = -1;
		if (pthread_create(&p->tid[i], NULL, pool_main, &p->pw[i]) != 0)
			break;
		p->started++;
	}
	if (p->started == 0) {
		rf_http_pool_stop(h);
		return rf_err_set(RF_ERR_INTERNAL, "cannot start a thread");
	}
	return 0;
}

void
rf_http_pool_stop(struct rf_http *h)
{
	struct rf_http_pool *p = h != NULL ? h->pool : NULL;
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->started; i++)
		pthread_join(p->tid[i], NULL);
	rf_http_job_free_all(p->head); /* never run: their conns close */
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	free(p->tid);
	free(p->pw);
	free(p);
	h->pool = NULL;
}

static char *
dup_opt(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

int
rf_http_pool_submit(struct rf_http_worker *w, struct rf_conn *c,
    const struct rf_http_req *q, int flags, struct rf_http_resp *o)
{
	struct rf_http_pool *p = w->h->pool;
	struct rf_http_job *j = NULL;

	memset(o, 0, sizeof(*o));
	if (p == NULL) {
		/* No pool (it could not start): answered in place. */
		rf_http_handle(w, q, o);
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	if (p->inflight >= p->cap || p->stop) {
		pthread_mutex_unlock(&p->lock);
		rf_http_busy(o);
		return -1;
	}
	p->inflight++;
	pthread_mutex_unlock(&p->lock);
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->target = dup_opt(q->target)) == NULL ||
	    (q->if_none_match != NULL &&
		(j->inm = dup_opt(q->if_none_match)) == NULL)) {
		rf_http_job_free(j);
		pthread_mutex_lock(&p->lock);
		p->inflight--;
		pthread_mutex_unlock(&p->lock);
		rf_http_busy(o);
		return -1;
	}
	j->w = w;
	j->conn = c;
	j->flags = flags | (q->method == RF_HTTP_HEAD ? RF_HTTP_JOB_HEAD : 0);
	j->q.method = q->method;
	j->q.target = j->target;
	/* /audit answers GET and HEAD only: no body is carried over. */
	j->q.body = (const uint8_t *)"";
	j->q.bodylen = 0;
	j->q.if_none_match = j->inm;
	if (q->peer != NULL) {
		j->peer = *q->peer;
		j->q.peer = &j->peer;
	}
	j->q.tls = q->tls;
	pthread_mutex_lock(&p->lock);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
