/*
 * bench_rate [N]: the token's raw signing rate with an EC P-256 key of the
 * state in $RINGFENCE_HOME (the issuing CA's, so run it before an
 * incident disables that key), on 2 sessions; prints
 * signatures per second. The limit every other benchmark is held against.
 *
 * bench_rate keygen [N]: the rate at which the token makes EC P-256 key
 * pairs the way `incident contain` makes them (rf_keys_generate_many in
 * batches of 500: C_GenerateKeyPair of token objects, the public key read
 * back, the id set, the keygen leaves appended); prints key pairs per
 * second. The keys stay in the token, labelled bench-keygen, with their
 * audit leaves: the benchmark's state folder is thrown away after.
 *
 * bench_rate verify [N]: the rate at which keys checks a signature of that
 * key before releasing it (rf_keys_verifier, as keyd does), on 2 threads;
 * prints verifications per second. With the signing rate it makes the
 * floor of a released signature: the token signs it, then keys verifies
 * it (bench/contain.sh).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "store/store.h"

#define BATCH 500

struct verify_job {
	EVP_PKEY *pub;
	enum rf_key_alg alg;
	const uint8_t *dig;
	size_t diglen;
	const struct rf_sig *sig;
	size_t n;
	int bad; /* 1: a signature did not verify; 2: no verifier */
};

static void *
verify_loop(void *arg)
{
	struct verify_job *j = arg;
	struct rf_verifier *v = NULL;
	size_t i;

	if (rf_keys_verifier_new(j->pub, j->alg, &v) != 0) {
		j->bad = 2;
		return NULL;
	}
	for (i = 0; i < j->n; i++)
		if (rf_keys_verifier_check(v, RF_SIG_DEFAULT, j->dig, j->diglen,
			j->sig->sig, j->sig->len) != 0)
			j->bad = 1;
	rf_keys_verifier_free(v);
	return NULL;
}

/*
 * One signature made with key (one leaf) over a digest of the key's own
 * algorithm, verified n times on 2 threads.
 */
static int
verify_rate(struct rf_keys *keys, struct rf_key *key, size_t n, double *rate)
{
	const struct rf_actor who = {"bench", "bench_rate"};
	struct rf_sign_req req;
	struct rf_sig sig = {0};
	struct verify_job j[2];
	struct timespec t0, t1;
	const EVP_MD *md = rf_key_alg_md(rf_key_alg(key));
	uint8_t dig[EVP_MAX_MD_SIZE];
	pthread_t tid;
	int r, k;

	if (md == NULL)
		return rf_err_set(RF_ERR_ARG, "the issuing key has no digest");
	memset(&req, 0, sizeof(req));
	memset(dig, 0x5a, sizeof(dig));
	req.msg = dig;
	req.msglen = (size_t)EVP_MD_get_size(md);
	req.what = "bench";
	if ((r = rf_keys_sign_digest(keys, key, &req, 1, &who, &sig)) != 0)
		return r;
	for (k = 0; k < 2; k++) {
		j[k].pub = rf_key_public(key);
		j[k].alg = rf_key_alg(key);
		j[k].dig = dig;
		j[k].diglen = req.msglen;
		j[k].sig = &sig;
		j[k].n = n / 2 + (size_t)k * (n % 2);
		j[k].bad = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pthread_create(&tid, NULL, verify_loop, &j[1]) != 0) {
		rf_sig_clear(&sig);
		return rf_err_set(RF_ERR_INTERNAL, "no thread");
	}
	verify_loop(&j[0]);
	pthread_join(tid, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rf_sig_clear(&sig);
	if (j[0].bad == 2 || j[1].bad == 2)
		return rf_err_set(RF_ERR_INTERNAL, "no verifier for the key");
	if (j[0].bad || j[1].bad)
		return rf_err_set(
		    RF_ERR_SIGNATURE_INVALID, "a signature did not verify");
	*rate = (double)n /
	    ((double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

static int
keygen_rate(struct rf_keys *keys, size_t n, double *rate)
{
	struct rf_keygen req[BATCH];
	struct rf_key *out[BATCH];
	struct rf_actor who = {"bench", "bench_rate"};
	struct timespec t0, t1;
	size_t i, j, b;
	int r;

	memset(req, 0, sizeof(req));
	for (j = 0; j < BATCH; j++) {
		req[j].alg = RF_KEY_EC_P256;
		req[j].label = "bench-keygen";
		req[j].tenant = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i += b) {
		b = n - i < BATCH ? n - i : BATCH;
		if ((r = rf_keys_generate_many(keys, req, b, &who, out)) != 0)
			return r;
		for (j = 0; j < b; j++)
			rf_key_free(out[j]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*rate = (double)n /
	    ((double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_ca *ca = NULL;
	int keygen = argc > 1 && strcmp(argv[1], "keygen") == 0;
	int verify = argc > 1 && strcmp(argv[1], "verify") == 0;
	int mode = keygen || verify;
	const char *arg = argc > 1 + mode ? argv[1 + mode] : NULL;
	size_t n = arg != NULL ? strtoul(arg, NULL, 10) : 20000;
	double rate = 0;
	int r;

	if (n == 0) {
		fprintf(stderr, "usage: bench_rate [keygen|verify] [N]\n");
		return 2;
	}
	if ((r = rf_config_load(&cfg)) != 0 ||
	    (r = rf_store_open(cfg.db_path, 0, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0 ||
	    (r = keygen ? keygen_rate(keys, n, &rate)
		    : verify
		    ? verify_rate(keys, rf_ca_key(ca, "issuing"), n, &rate)
		    : rf_keys_measure_rate(
			  keys, rf_ca_key(ca, "issuing"), n, 2, &rate)) != 0) {
		fprintf(stderr, "bench_rate: %s\n", rf_err_msg(r));
		return 1;
	}
	printf("%.0f\n", rate);
	rf_ca_free(ca);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	return 0;
}
