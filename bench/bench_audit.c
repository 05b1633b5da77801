/*
 * bench_audit [N_VERIFY]: the audit record's costs (issue 4).
 *   1. durable appends per second, in group commits of 1,000 leaves;
 *   2. `audit verify` time on N_VERIFY leaves (default 1,000,000);
 *   3. the record's share of issuance: the append time of the leaves one
 *      issuance makes (sign + issue + OCSP sign), per certificate, printed
 *      for bench/run.sh to set against the measured issuance rate.
 * Uses a fresh store in $RINGFENCE_HOME (no token needed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit/audit.h"
#include "common/config.h"
#include "store/store.h"

#define BATCH 1000

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench_audit: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

/* n leaves shaped like the "sign" events of an issuance. */
static double
append(struct rf_audit *a, size_t n)
{
	struct rf_audit_event evs[BATCH];
	char refs[BATCH][40];
	size_t i, j, b;
	double t0 = now_s();
	int r;

	for (i = 0; i < n; i += b) {
		b = n - i < BATCH ? n - i : BATCH;
		for (j = 0; j < b; j++) {
			snprintf(refs[j], sizeof(refs[j]), "%032zx", i + j);
			memset(&evs[j], 0, sizeof(evs[j]));
			evs[j].type = "sign";
			evs[j].key_id =
			    "77f4f3ee2bb307a31d96c5756ace27d95b2e8a5b"
			    "51306408ee80943b780f0961";
			evs[j].tenant = "t000123";
			evs[j].what = "cert";
			evs[j].ref = refs[j];
			evs[j].digest = "9da79dd88ef5b69751b7ea207c229722d44f00"
					"cd16b9188bad3242dd11a1ce48";
			evs[j].actor = "bench";
			evs[j].source = "bench";
		}
		if ((r = rf_audit_append(a, evs, b, NULL)) != 0)
			die("append", r);
	}
	return now_s() - t0;
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *a = NULL;
	struct rf_audit_report rep;
	size_t nverify = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t nrate = 200000;
	double t, rate, tv;
	int r;

	if ((r = rf_config_load(&cfg)) != 0)
		die("config", r);
	mkdir(cfg.home, 0700);
	if ((r = rf_store_open(cfg.db_path, 1, &st)) != 0 ||
	    (r = rf_audit_open(st, &a)) != 0)
		die("open", r);
	t = append(a, nrate);
	rate = (double)nrate / t;
	if (nverify > nrate)
		append(a, nverify - nrate);
	memset(&rep, 0, sizeof(rep));
	tv = now_s();
	if ((r = rf_audit_verify(a, NULL, &rep)) != 0)
		die("verify", r);
	tv = now_s() - tv;
	printf("append_rate %.0f\n", rate);
	printf("verify_leaves %llu\n", (unsigned long long)rep.leaves);
	printf("verify_seconds %.2f\n", tv);
	/* three leaves per issued certificate: cert sign, issue, OCSP sign */
	printf("audit_us_per_cert %.1f\n", 3e6 / rate);
	rf_audit_free(a);
	rf_store_free(st);
	return 0;
}
