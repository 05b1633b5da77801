/*
 * bench_rate [N]: the token's raw signing rate with an EC P-256 key of the
 * state in $RINGFENCE_HOME (the issuing CA's, so run it before an
 * incident disables that key), on 2 sessions; prints
 * signatures per second. The limit every other benchmark is held against.
 */
#include <stdio.h>
#include <stdlib.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "store/store.h"

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_ca *ca = NULL;
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
	double rate = 0;
	int r;

	if ((r = rf_config_load(&cfg)) != 0 ||
	    (r = rf_store_open(cfg.db_path, 0, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0 ||
	    (r = rf_keys_measure_rate(
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
