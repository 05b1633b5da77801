/*
 * populate N [PINNED_EVERY [PREFIX [custody|ALG]...]]: N tenants
 * PREFIX000001.. (default prefix t), each with one connection "mail"
 * holding a key generated in the token (ALG, default ec-p256; taken from the
 * standby pool when it has keys) and a client certificate, for the incident
 * scenario test and benchmarks. Every PINNED_EVERY-th connection has a
 * pinned relying party (default 3). Uses the state in $RINGFENCE_HOME, which
 * must be initialised. With `custody`, keys are asked of the state folder's
 * running keyd instead of the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "keys/keyd.h"
#include "store/store.h"
#include "store/store_incident.h"

#define BATCH 500

struct hook {
	struct rf_store *st;
	char (*tenants)[32];
};

static int
link_connection(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct hook *h = arg;

	(void)key_id;
	return rf_store_conn_set(
	    h->st, h->tenants[i], "mail", NULL, serial, rf_now(), NULL);
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "populate: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_ca *ca = NULL;
	struct rf_actor who = {"populate", "test"};
	struct rf_issue_req reqs[BATCH];
	struct rf_issued out[BATCH];
	char tenants[BATCH][32];
	struct hook h;
	struct rf_custody custody = {RF_KCLASS_ADMIN, NULL, NULL};
	const char *prefix = "t";
	enum rf_key_alg alg = RF_KEY_EC_P256;
	size_t n, every = 3, i, j, b;
	struct timespec t0, t1;
	int r;

	if (argc < 2 || (n = strtoul(argv[1], NULL, 10)) == 0) {
		fprintf(stderr,
		    "usage: populate N [PINNED_EVERY [PREFIX "
		    "[custody|ALG]...]]\n");
		return 2;
	}
	if (argc > 2)
		every = strtoul(argv[2], NULL, 10);
	if (argc > 3 && strlen(argv[3]) < 16)
		prefix = argv[3];
	for (int a = 4; a < argc; a++) {
		if (strcmp(argv[a], "custody") == 0)
			rf_keys_custody_use(&custody);
		else if (rf_key_alg_parse(argv[a], &alg) != 0) {
			fprintf(stderr,
			    "populate: '%s' is neither custody nor an "
			    "algorithm\n",
			    argv[a]);
			return 2;
		}
	}
	if ((r = rf_config_load(&cfg)) != 0 ||
	    (r = rf_store_open(cfg.db_path, 0, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0)
		die("open", r);
	rf_ca_set_audit(ca, audit);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	h.st = st;
	h.tenants = tenants;
	for (i = 0; i < n; i += b) {
		b = n - i < BATCH ? n - i : BATCH;
		memset(reqs, 0, sizeof(reqs));
		if ((r = rf_store_begin(st)) != 0)
			die("begin", r);
		for (j = 0; j < b; j++) {
			snprintf(tenants[j], sizeof(tenants[j]), "%s%06zu",
			    prefix, i + j + 1);
			if ((r = rf_store_tenant_add(
				 st, tenants[j], rf_now())) != 0 ||
			    (r = rf_store_conn_set(st, tenants[j], "mail",
				 every > 0 && (i + j) % every == 0 ? "pinned"
								   : "ocsp",
				 NULL, rf_now(), NULL)) != 0)
				die("tenant", r);
			reqs[j].tenant = tenants[j];
			reqs[j].profile = RF_PROFILE_CLIENT;
			reqs[j].keygen = alg;
		}
		if ((r = rf_store_commit(st)) != 0)
			die("commit", r);
		if ((r = rf_ca_issue_ex(
			 ca, reqs, b, &who, out, link_connection, &h)) != 0)
			die("issue", r);
		for (j = 0; j < b; j++)
			rf_issued_clear(&out[j]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr,
	    "populate: %zu tenants with one credential each in "
	    "%.1f s\n",
	    n,
	    (double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	rf_ca_free(ca);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	return 0;
}
