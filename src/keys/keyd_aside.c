/*
 * keyd_aside.c: the custody process's requests run aside (keyd_int.h): a
 * slow request (keys list, LOAD_MANY, key generation; keyd_handlers.c
 * decodes them and does their work) is answered from a thread of its own,
 * and its answer goes back to the loop through the pipeline's done list
 * (keyd_pipe.c), as a signature's does.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "keys/keyd_int.h"

/*
 * keys list and LOAD_MANY run on a thread of their own: at 72,000 keys a
 * list reads the tokens for about a minute, and contain's load of 36,000
 * pool keys for seconds; on the loop either held up every other caller
 * meanwhile (no OCSP re-signature, assertion or TLS handshake, and the
 * signers idle for want of batches). The caller is busy until the answer
 * comes back through the pipeline's done list (keyd_pipe_done), and it counts
 * as in flight, so that a request that changes keys (DRAIN), and stop,
 * wait for it as for signatures. The done list and the wake are written
 * under the pipeline's lock, after which this thread touches nothing of
 * keyd's: keyd_pipe_stop takes that lock before it frees anything.
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
	keyd_pipe_wake(pl);
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

/*
 * Answer c's request of type by fn(kd, arg) on a thread of its own, or on
 * the loop if none can be started. arg is freed by arg_free either way.
 * beside: counted in pipeline.beside, which no drain waits for.
 */
static int
run_aside(struct keyd *kd, struct conn *c, int type, aside_fn fn, void *arg,
    void (*arg_free)(void *), int beside, struct rf_kbuf *out)
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
	p->beside = beside;
	started = pthread_attr_init(&at) == 0;
	if (started) {
		started = pthread_attr_setdetachstate(
			      &at, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&t, &at, aside_main, p) == 0;
		pthread_attr_destroy(&at);
	}
	if (!started) {
		r = fn(kd, arg, out); /* on the loop, as before */
		keyd_pending_free(p);
		return r;
	}
	c->busy = 1;
	if (beside)
		kd->pl->beside++;
	else
		kd->pl->inflight++;
	return QUEUED;
}

int
keyd_run_aside(struct keyd *kd, struct conn *c, int type, aside_fn fn,
    void *arg, void (*arg_free)(void *), struct rf_kbuf *out)
{
	return run_aside(kd, c, type, fn, arg, arg_free, 0, out);
}

/*
 * Key generation runs beside everything else. On the loop it held every
 * other caller up for as long as it took: each 4 RSA keys of a `keys pool
 * fill` (about a second) stopped revoke, issue and tenant add for that
 * long, several times each (beside a fill, revoke took 2 to 6 s in the
 * sanitizer build). A new key is in no signature in flight, and no
 * disable or destroy names it, so those do not wait for it either (they
 * would hold the loop meanwhile, behind a generation a low-priority
 * caller's idle cores make); keyd's stop does.
 */
int
keyd_run_beside(struct keyd *kd, struct conn *c, int type, aside_fn fn,
    void *arg, void (*arg_free)(void *), struct rf_kbuf *out)
{
	return run_aside(kd, c, type, fn, arg, arg_free, 1, out);
}
