/*
 * progress.c: counts, rate and ETA of a long command (progress.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/progress.h"

struct rf_progress {
	char task[96];
	char phase[32];
	enum rf_progress_out out;
	int tty;
	uint64_t done, total;
	int64_t started_ms, phase_ms, printed_ms, persisted_ms;
	int (*sink)(void *arg, const struct rf_progress_state *s);
	void *sink_arg;
	int line_open; /* a terminal line waits for its newline */
	int failed;    /* rf_progress_fail: the last line says so */
	int unshown;   /* a count not printed yet (throttled) */
	/* The caller's estimate of the phase's seconds left (eta_given),
	 * made at eta_ms. */
	int eta_given;
	double eta_s;
	int64_t eta_ms;
};

int64_t
rf_progress_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
rf_progress_new(
    const char *task, enum rf_progress_out out, struct rf_progress **pp)
{
	struct rf_progress *p;

	*pp = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return RF_ERR_ALLOC;
	snprintf(p->task, sizeof(p->task), "%s", task != NULL ? task : "");
	p->out = out;
	p->tty = out == RF_PROGRESS_AUTO && isatty(STDERR_FILENO);
	p->started_ms = p->phase_ms = rf_progress_now_ms();
	*pp = p;
	return 0;
}

void
rf_progress_free(struct rf_progress *p)
{
	free(p);
}

void
rf_progress_sink(struct rf_progress *p,
    int (*fn)(void *arg, const struct rf_progress_state *s), void *arg)
{
	if (p == NULL)
		return;
	p->sink = fn;
	p->sink_arg = arg;
}

void
rf_progress_eta_str(double s, char out[32])
{
	if (s < 0)
		snprintf(out, 32, "?");
	else if (s < 60)
		snprintf(out, 32, "%.1f s", s);
	else
		snprintf(out, 32, "%d min %02d s", (int)(s / 60), (int)s % 60);
}

static void
state_of(const struct rf_progress *p, int64_t now, int finished,
    struct rf_progress_state *s)
{
	double el = (double)(now - p->phase_ms) / 1000.0;

	memset(s, 0, sizeof(*s));
	s->task = p->task;
	s->phase = p->phase;
	s->done = p->done;
	s->total = p->total;
	s->started_ms = p->started_ms;
	s->updated_ms = now;
	s->rate = el > 0 ? (double)p->done / el : 0;
	s->eta_s = -1;
	if (p->total > 0 && p->done >= p->total)
		s->eta_s = 0;
	else if (p->eta_given)
		s->eta_s = p->eta_s - (double)(now - p->eta_ms) / 1000.0 > 0
		    ? p->eta_s - (double)(now - p->eta_ms) / 1000.0
		    : 0;
	else if (p->total > 0 && s->rate > 0)
		s->eta_s = (double)(p->total - p->done) / s->rate;
	s->finished = finished;
}

static void
emit(struct rf_progress *p, int force, int finished)
{
	struct rf_progress_state s;
	int64_t now = rf_progress_now_ms();
	char eta[32], eta_json[32];

	state_of(p, now, finished, &s);
	if (p->sink != NULL &&
	    (force || now - p->persisted_ms >= RF_PROGRESS_PERSIST_MS)) {
		/* Advice only: a failed write does not stop the command. */
		(void)!p->sink(p->sink_arg, &s);
		p->persisted_ms = now;
	}
	if (!force && now - p->printed_ms < RF_PROGRESS_PRINT_MS) {
		p->unshown = 1;
		return;
	}
	p->printed_ms = now;
	p->unshown = 0;
	rf_progress_eta_str(s.eta_s, eta);
	if (p->out == RF_PROGRESS_JSON) {
		/* Unknown: null, as keys pool status --json says it. */
		if (s.eta_s < 0)
			snprintf(eta_json, sizeof(eta_json), "null");
		else
			snprintf(eta_json, sizeof(eta_json), "%.1f", s.eta_s);
		fprintf(stderr,
		    "{\"progress\":\"%s\",\"phase\":\"%s\",\"done\":%llu,"
		    "\"total\":%llu,\"rate\":%.1f,\"eta_s\":%s,"
		    "\"finished\":%s%s}\n",
		    p->task, p->phase, (unsigned long long)s.done,
		    (unsigned long long)s.total, s.rate, eta_json,
		    finished ? "true" : "false",
		    p->failed ? ",\"failed\":true" : "");
	} else if (p->tty) {
		if (p->total > 0)
			fprintf(stderr,
			    "\r\033[K%s: %s %llu/%llu (%.0f%%) %.0f/s, "
			    "ETA %s",
			    p->task, p->phase, (unsigned long long)s.done,
			    (unsigned long long)s.total,
			    100.0 * (double)s.done / (double)s.total, s.rate,
			    eta);
		else
			fprintf(stderr, "\r\033[K%s: %s %llu", p->task,
			    p->phase, (unsigned long long)s.done);
		p->line_open = 1;
	}
	fflush(stderr);
}

/* The caller's estimate of what is left (eta_s < 0: none, the rate's). */
static void
eta_set(struct rf_progress *p, double eta_s)
{
	p->eta_given = eta_s >= 0;
	p->eta_s = eta_s;
	p->eta_ms = rf_progress_now_ms();
}

void
rf_progress_phase(struct rf_progress *p, const char *phase, uint64_t total)
{
	rf_progress_phase_eta(p, phase, total, -1);
}

void
rf_progress_phase_eta(
    struct rf_progress *p, const char *phase, uint64_t total, double eta_s)
{
	if (p == NULL)
		return;
	/* A phase's last count is shown before the next begins: a fast
	 * phase would otherwise be seen at 0 of N only. */
	if (p->unshown)
		emit(p, 1, 0);
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	p->done = 0;
	p->total = total;
	p->phase_ms = rf_progress_now_ms();
	eta_set(p, eta_s);
	emit(p, 1, 0);
}

void
rf_progress_add(struct rf_progress *p, uint64_t n)
{
	if (p == NULL)
		return;
	p->done += n;
	/* The phase's last count at once: what follows may take long, and
	 * `incident status` elsewhere would show the count before it. */
	emit(p, p->total > 0 && p->done >= p->total, 0);
}

void
rf_progress_add_eta(struct rf_progress *p, uint64_t n, double eta_s)
{
	if (p == NULL)
		return;
	eta_set(p, eta_s);
	rf_progress_add(p, n);
}

/* The last line: finished, or failed (not finished: a rerun resumes). */
static void
end(struct rf_progress *p, int failed)
{
	if (p == NULL)
		return;
	p->failed = failed;
	emit(p, 1, !failed);
	if (p->line_open)
		fputc('\n', stderr);
	p->line_open = 0;
}

void
rf_progress_finish(struct rf_progress *p)
{
	end(p, 0);
}

void
rf_progress_fail(struct rf_progress *p)
{
	end(p, 1);
}
