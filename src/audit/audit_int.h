/*
 * audit_int.h: private to the audit module. Nothing outside src/audit
 * includes it.
 */
#ifndef RF_AUDIT_AUDIT_INT_H
#define RF_AUDIT_AUDIT_INT_H

#include <pthread.h>
#include <stdint.h>

#include "audit/audit.h"

struct rf_audit {
	struct rf_store *st; /* borrowed */
	pthread_mutex_t mu;  /* recursive: every use of st */
	/* The latest tree head as this handle first saw it (sth.c). */
	int seen_set;
	uint64_t seen_size;
	int64_t seen_time;
	int64_t seen_mono; /* CLOCK_MONOTONIC seconds when first seen */
	/* Where tree heads take the audit key from (rf_audit_key_source). */
	int (*key_get)(void *arg, const char *id, struct rf_key **out);
	void *key_arg;
#ifdef RF_BENCH_AUDIT_OFF
	uint64_t nothing; /* leaves "appended" by the record-off build */
#endif
};

/* Seconds since this handle first saw the tree head (size, time). */
int64_t audit_seen_for(struct rf_audit *a, uint64_t size, int64_t time);

#endif
