/*
 * custody.c: serve's view of the custody process (docs/serve.md, "Keys:
 * the custody process"): whether keyd listens, asked for /healthz and by
 * the maintenance thread, and keyd started again when it is gone.
 *
 * keyd ends when it is killed, or by itself when a token folder goes
 * missing (SoftHSM reads the tokens once: a fresh keyd reads them again).
 * serve holds no key and keeps answering from memory meanwhile, but signs
 * nothing new; commands start keyd when they need it, and so does serve
 * when it was given the commands' starter (rf_http_keyd_restart: not
 * after the user split, whose serve cannot be keyd's user). The attempts
 * are spaced 1 s after keyd was first found gone, then 2, 4, ... at most
 * cfg->keyd_restart seconds apart until keyd has listened that long
 * again, each on the signing pool (the start waits for keyd's socket) and
 * logged once, so that a keyd that cannot start is never a busy loop.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http/http_int.h"
#include "keys/keyd.h"

#define PROBE_MS 250	   /* at most one connect to keyd's socket per */
#define FIRST_WAIT_MS 1000 /* after keyd was first found gone */

enum { JOB_NONE = 0, JOB_RUNNING, JOB_DONE };

int
rf_http_keyd_up(struct rf_http *h)
{
	uint64_t now = rf_http_mono_ms();
	uint64_t last = __atomic_load_n(&h->keyd_probe_ms, __ATOMIC_ACQUIRE);
	int up;

	/* One thread claims the probe; the others answer what was found. */
	if ((last != 0 && (int64_t)(now - last) < PROBE_MS) ||
	    !__atomic_compare_exchange_n(&h->keyd_probe_ms, &last, now, 0,
		__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&h->keyd_up, __ATOMIC_ACQUIRE);
	up = rf_keyd_listening(h->cfg);
	__atomic_store_n(&h->keyd_up, up, __ATOMIC_RELEASE);
	return up;
}

void
rf_http_keyd_restart(struct rf_http *h,
    int (*start)(void *arg, const struct rf_config *cfg), void *arg)
{
	h->kr.start = h->cfg->keyd_restart > 0 ? start : NULL;
	h->kr.arg = arg;
}

/* On a pool thread: one start, as a command makes it. */
static void
start_job(void *arg, int cancelled)
{
	struct rf_http *h = arg;
	int r;

	if (cancelled)
		r = rf_err_set(RF_ERR_INTERNAL, "serve is stopping");
	else
		r = h->kr.start(h->kr.arg, h->cfg);
	h->kr.r = r;
	snprintf(
	    h->kr.msg, sizeof(h->kr.msg), "%s", r != 0 ? rf_err_msg(r) : "");
	rf_err_clear();
	__atomic_store_n(&h->kr.job, JOB_DONE, __ATOMIC_RELEASE);
}

static void
say(struct rf_http *h, const char *line)
{
	if (h->o.log != NULL)
		h->o.log(h->o.log_arg, line);
}

/* The last attempt's outcome, said once. */
static void
start_done(struct rf_http *h, uint64_t now)
{
	char line[700];

	h->kr.job = JOB_NONE;
	if (h->kr.r == 0) {
		h->kr.up_ms = now;
		snprintf(line, sizeof(line), "keyd started again (attempt %u)",
		    h->kr.attempt);
	} else
		snprintf(line, sizeof(line),
		    "keyd did not start (attempt %u): %s; the next attempt in "
		    "%u s",
		    h->kr.attempt, h->kr.msg,
		    (unsigned)((h->kr.next_ms > now ? h->kr.next_ms - now : 0) +
			999) /
			1000);
	say(h, line);
}

void
rf_http_keyd_watch(struct rf_http *h, uint64_t now)
{
	uint64_t cap = (uint64_t)h->cfg->keyd_restart * 1000;
	char line[128], path[RF_PATH_MAX + 16];

	if (h->kr.start == NULL)
		return;
	switch (__atomic_load_n(&h->kr.job, __ATOMIC_ACQUIRE)) {
	case JOB_RUNNING:
		return;
	case JOB_DONE:
		start_done(h, now);
		break;
	}
	if (rf_http_keyd_up(h)) {
		h->kr.down_ms = 0;
		/* Up for as long as the longest wait: a later loss starts
		 * from the shortest again. */
		if (h->kr.attempt > 0 && now - h->kr.up_ms >= cap) {
			h->kr.attempt = 0;
			h->kr.wait_ms = 0;
		}
		return;
	}
	/* Stopped on purpose ('ringfence keyd stop'): left so, said once;
	 * the next command starts it, as before serve restarted it. */
	if (rf_keyd_path(h->cfg, RF_KEYD_STOPPED, path, sizeof(path)) == 0 &&
	    access(path, F_OK) == 0) {
		if (!h->kr.stopped_said)
			say(h,
			    "keyd was stopped with 'ringfence keyd stop': "
			    "not started again (the next command starts "
			    "it)");
		h->kr.stopped_said = 1;
		h->kr.down_ms = 0;
		return;
	}
	rf_err_clear();
	h->kr.stopped_said = 0;
	if (h->kr.down_ms == 0) {
		h->kr.down_ms = now;
		if (h->kr.next_ms < now + FIRST_WAIT_MS)
			h->kr.next_ms = now + FIRST_WAIT_MS;
	}
	if (now < h->kr.next_ms)
		return;
	/* 1 s after it was found gone, then 2, 4, ... after each attempt. */
	h->kr.wait_ms =
	    h->kr.wait_ms == 0 ? 2 * FIRST_WAIT_MS : h->kr.wait_ms * 2;
	if (h->kr.wait_ms > cap)
		h->kr.wait_ms = cap;
	h->kr.next_ms = now + h->kr.wait_ms;
	h->kr.attempt++;
	snprintf(line, sizeof(line),
	    "keyd is gone: starting it again (attempt %u)", h->kr.attempt);
	say(h, line);
	__atomic_store_n(&h->kr.job, JOB_RUNNING, __ATOMIC_RELEASE);
	if (rf_http_pool_run(h, RF_HTTP_POOL_SIGN, start_job, h) != 0) {
		h->kr.r = RF_ERR_INTERNAL;
		snprintf(h->kr.msg, sizeof(h->kr.msg),
		    "the signing pool is full or stopping");
		h->kr.job = JOB_DONE;
	}
}
