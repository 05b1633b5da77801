/*
 * progress.h: progress of a command that runs for more than a second, for
 * the responder who watches it (docs/incident.md, "Progress").
 *
 * Counts, rate and an ETA go to stderr: on a terminal as one line that
 * updates in place, with --json as one JSON object a line, otherwise not
 * at all. A sink (the store, for `incident status` in another terminal)
 * receives the same numbers at most every RF_PROGRESS_PERSIST_MS.
 */
#ifndef RF_COMMON_PROGRESS_H
#define RF_COMMON_PROGRESS_H

#include <stdint.h>

#include "common/rf.h"

#define RF_PROGRESS_PRINT_MS 200
#define RF_PROGRESS_PERSIST_MS 500

/* The numbers of one moment. */
struct rf_progress_state {
	const char *task;  /* "incident 3 contain" */
	const char *phase; /* "revoke", "reissue", ... */
	uint64_t done, total;
	int64_t started_ms, updated_ms; /* wall clock, milliseconds */
	double rate;			/* per second over the phase */
	double eta_s;			/* seconds left, -1 unknown */
	int finished;
};

enum rf_progress_out {
	RF_PROGRESS_AUTO = 0, /* a line on stderr if it is a terminal */
	RF_PROGRESS_JSON,     /* JSON lines on stderr */
	RF_PROGRESS_QUIET,    /* nothing printed (the sink still runs) */
};

struct rf_progress;

/* task is copied. */
int rf_progress_new(
    const char *task, enum rf_progress_out out, struct rf_progress **p) RF_WUR;
void rf_progress_free(struct rf_progress *p);
/* A sink for the numbers (its errors are ignored: progress is advice). */
void rf_progress_sink(struct rf_progress *p,
    int (*fn)(void *arg, const struct rf_progress_state *s), void *arg);
/* Start a phase of total steps (0: unknown); shown at once. */
void rf_progress_phase(
    struct rf_progress *p, const char *phase, uint64_t total);
/* n more steps done; printed and persisted when due, and at once when the
 * count reaches the total. NULL p: nothing. */
void rf_progress_add(struct rf_progress *p, uint64_t n);
/*
 * The same for a phase whose steps differ in cost (RSA and EC keys made in
 * one phase), with the caller's estimate of the seconds it has left,
 * eta_s: shown instead of the steps left at the phase's rate, counting
 * down, until the next estimate or phase.
 */
void rf_progress_phase_eta(
    struct rf_progress *p, const char *phase, uint64_t total, double eta_s);
void rf_progress_add_eta(struct rf_progress *p, uint64_t n, double eta_s);
/* The command ends: a last line (and a newline on a terminal). */
void rf_progress_finish(struct rf_progress *p);
/* The command failed or was refused: the last line is not "finished"
 * (JSON: "finished":false,"failed":true), and neither is the sink's. */
void rf_progress_fail(struct rf_progress *p);

/* The wall clock in milliseconds, the clock of started_ms and updated_ms. */
int64_t rf_progress_now_ms(void);

/* "12.3 s", "4 min 05 s" for an ETA; out of 32 bytes. */
void rf_progress_eta_str(double s, char out[32]);

#endif
