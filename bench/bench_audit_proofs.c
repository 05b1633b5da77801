/*
 * bench_audit_proofs [N_MAX]: inclusion and consistency proofs from the
 * stored subtree hashes (issue 13 item 5) as the record grows to N_MAX
 * leaves (default 10,000,000). The record is appended through
 * rf_audit_append in group commits of 10,000 (the production path, nodes
 * written with the leaves); at every size 10^3, 10^4, ... it times 1,000
 * inclusion proofs of random leaves and 1,000 consistency proofs from
 * random older sizes, each with its roots, as /audit/proof and
 * /audit/consistency compute them, and checks every proof. Prints
 * "proofs SIZE INCLUSION_US CONSISTENCY_US" lines (mean microseconds).
 * Uses the store in $RINGFENCE_HOME (no token needed): a fresh one, or a
 * record kept from an earlier run, which is only grown to N_MAX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit/audit.h"
#include "common/config.h"
#include "store/store.h"

#define BATCH 10000
#define PROOFS 1000

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
	fprintf(stderr, "bench_audit_proofs: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

static struct rf_audit_event evs[BATCH];
static char refs[BATCH][40];

/* Leaves shaped like the "sign" events of an issuance, up to size n. */
static void
grow(struct rf_audit *a, uint64_t have, uint64_t n)
{
	uint64_t i, j, b;
	int r;

	for (i = have; i < n; i += b) {
		b = n - i < BATCH ? n - i : BATCH;
		for (j = 0; j < b; j++) {
			snprintf(refs[j], sizeof(refs[j]), "%032llx",
			    (unsigned long long)(i + j));
			memset(&evs[j], 0, sizeof(evs[j]));
			evs[j].type = "sign";
			evs[j].key_id =
			    "77f4f3ee2bb307a31d96c5756ace27d95b2e8a5b"
			    "51306408ee80943b780f0961";
			evs[j].tenant = "t000123";
			evs[j].what = "cert";
			evs[j].ref = refs[j];
			evs[j].actor = "bench";
		}
		if ((r = rf_audit_append(a, evs, b, NULL)) != 0)
			die("append", r);
	}
}

static uint64_t
pick(uint64_t below)
{
	uint64_t x = ((uint64_t)rand() << 31) ^ (uint64_t)rand();

	return x % below;
}

static void
measure(struct rf_audit *a, uint64_t n)
{
	uint8_t leaf[RF_HASH_LEN], r1[RF_HASH_LEN], r2[RF_HASH_LEN];
	uint8_t(*p)[RF_HASH_LEN];
	uint64_t i, m;
	size_t plen, k;
	double t, ti = 0, tc = 0;
	int r;

	for (k = 0; k < PROOFS; k++) {
		i = pick(n);
		t = now_s();
		if ((r = rf_audit_prove_inclusion(
			 a, i, n, leaf, r1, &p, &plen)) != 0)
			die("inclusion proof", r);
		ti += now_s() - t;
		if (rf_merkle_verify_inclusion(i, n, leaf,
			(const uint8_t(*)[RF_HASH_LEN])p, plen, r1) != 0)
			die("inclusion proof does not verify", RF_ERR_PROOF);
		free(p);
		m = 1 + pick(n);
		t = now_s();
		if ((r = rf_audit_prove_consistency(
			 a, m, n, r1, r2, &p, &plen)) != 0)
			die("consistency proof", r);
		tc += now_s() - t;
		if (rf_merkle_verify_consistency(m, n, r1, r2,
			(const uint8_t(*)[RF_HASH_LEN])p, plen) != 0)
			die("consistency proof does not verify", RF_ERR_PROOF);
		free(p);
	}
	printf("proofs %llu %.1f %.1f\n", (unsigned long long)n,
	    ti / PROOFS * 1e6, tc / PROOFS * 1e6);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *a = NULL;
	uint64_t nmax = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
	uint64_t n = 0, have = 0, built, next;
	double t0;
	int r;

	if ((r = rf_config_load(&cfg)) != 0)
		die("config", r);
	mkdir(cfg.home, 0700);
	if ((r = rf_store_open(cfg.db_path, 1, &st)) != 0 ||
	    (r = rf_audit_open(st, &a)) != 0)
		die("open", r);
	/* A record kept from an earlier run (bench/audit_proofs.sh with
	 * RF_BENCH_KEEP) is not rebuilt: sizes below its own are then tree
	 * sizes inside the larger record. */
	if ((r = rf_audit_size(a, &have)) != 0)
		die("size", r);
	built = have;
	srand(1);
	t0 = now_s();
	for (next = 1000; n < nmax; next *= 10) {
		if (next > nmax)
			next = nmax;
		if (next > have) {
			grow(a, have, next);
			have = next;
		}
		n = next;
		measure(a, n);
	}
	if (have > built)
		printf("append_rate %.0f\n",
		    (double)(have - built) / (now_s() - t0));
	rf_audit_free(a);
	rf_store_free(st);
	return 0;
}
