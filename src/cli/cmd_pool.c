/* ringfence keys pool: the standby key pool (src/pool, docs/keys.md). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/progress.h"
#include "pool/pool.h"

static const char pool_help[] =
    "usage: ringfence keys pool status [--json]\n"
    "       ringfence keys pool fill [--alg ALG] [--count N] [--json]\n"
    "\n"
    "The standby pool: key pairs made in the token ahead of need, so that\n"
    "'incident contain' and 'issue --keygen' take keys instead of making\n"
    "them. Each is taken once and never returned.\n"
    "\n"
    "The custody process (keyd) refills every pool below its target by\n"
    "itself, a few keys at a time whenever it has no request to answer\n"
    "(setting pool_refill; 0: only fill does).\n"
    "\n"
    "status  per algorithm: free keys, the target (setting pool_<alg>, by\n"
    "        default every connection of that algorithm plus pool_margin\n"
    "        percent), keys taken so far, the last refill's rate and how\n"
    "        long refilling to the target would take\n"
    "fill    make keys until each pool is at its target, at the lowest\n"
    "        priority (SCHED_IDLE, nice 19); Ctrl-C stops after the batch\n"
    "        in progress, keeping what was made\n"
    "  --alg ALG   only this pool (ec-p256, ec-p384, rsa-2048, rsa-3072,\n"
    "              rsa-4096)\n"
    "  --count N   make N keys (with --alg), whatever the target\n"
    "  --json      one JSON object per algorithm, one per line\n";

static const enum rf_key_alg algs[] = {RF_KEY_EC_P256, RF_KEY_EC_P384,
    RF_KEY_RSA_2048, RF_KEY_RSA_3072, RF_KEY_RSA_4096};
#define NALGS (sizeof(algs) / sizeof(algs[0]))

static volatile sig_atomic_t stop_fill;

static void
on_stop(int sig)
{
	(void)sig;
	stop_fill = 1;
}

static int
pool_status(struct rf_cli *cli)
{
	struct rf_pool_status ps;
	char refill[32], rate[32];
	size_t i;
	int r;

	if ((r = cli_open(cli, CLI_STORE)) != 0)
		return cli_fail(r);
	if (!cli->json)
		printf("%-9s %9s %9s %11s %9s %8s %10s %12s\n", "ALG", "FREE",
		    "TARGET", "CONNECTIONS", "TAKEN", "REJECTED", "RATE/S",
		    "REFILL");
	for (i = 0; i < NALGS; i++) {
		if ((r = rf_pool_status(&cli->cfg, cli->store, algs[i], &ps)) !=
		    0)
			return cli_fail(r);
		if (cli->json) {
			/* Not measured yet: null, not a number. */
			r = cli_json_put(json_pack(
			    "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b}",
			    "alg", rf_key_alg_name(ps.alg), "free",
			    (json_int_t)ps.free, "target",
			    (json_int_t)ps.target, "connections",
			    (json_int_t)ps.conns, "taken", (json_int_t)ps.taken,
			    "rejected", (json_int_t)ps.rejected, "rate",
			    ps.rate > 0 ? cli_json_real(ps.rate) : json_null(),
			    "refill_seconds",
			    ps.refill_s >= 0 ? cli_json_real(ps.refill_s)
					     : json_null(),
			    "background_refill", cli->cfg.pool_refill != 0));
			if (r != 0)
				return cli_fail(r);
			continue;
		}
		if (ps.rate > 0)
			snprintf(rate, sizeof(rate), "%.1f", ps.rate);
		else
			snprintf(rate, sizeof(rate), "unknown");
		if (ps.refill_s == 0)
			snprintf(refill, sizeof(refill), "full");
		else if (ps.refill_s > 0)
			snprintf(refill, sizeof(refill), "%.0f s", ps.refill_s);
		else
			snprintf(refill, sizeof(refill), "unknown");
		printf("%-9s %9lld %9lld %11lld %9lld %8lld %10s %12s\n",
		    rf_key_alg_name(ps.alg), (long long)ps.free,
		    (long long)ps.target, (long long)ps.conns,
		    (long long)ps.taken, (long long)ps.rejected, rate, refill);
	}
	/* REFILL is what refilling would take; say when nothing does it. */
	if (!cli->json && !cli->cfg.pool_refill)
		printf("background refill is off (setting pool_refill = 0): "
		       "'ringfence keys pool fill' refills\n");
	if (fflush(stdout) != 0)
		return cli_fail(rf_err_set(RF_ERR_IO, "cannot write output"));
	return EXIT_OK;
}

static int
fill_one(struct rf_cli *cli, enum rf_key_alg alg, long long count)
{
	struct rf_pool_status ps;
	struct rf_pool_fill_report rep;
	struct rf_progress *prog = NULL;
	char task[64];
	int64_t target;
	int r, r2;

	if ((r = rf_pool_status(&cli->cfg, cli->store, alg, &ps)) != 0)
		return r;
	target = count > 0 ? INT64_MAX : ps.target;
	/* RSA keys take minutes: counts, rate and ETA (common/progress.h). */
	snprintf(task, sizeof(task), "pool fill %s", rf_key_alg_name(alg));
	if ((r = rf_progress_new(task,
		 cli->json ? RF_PROGRESS_JSON : RF_PROGRESS_AUTO, &prog)) != 0)
		return r;
	r = rf_pool_refill_progress(cli->keys, cli->store, alg, target,
	    count > 0 ? (size_t)count : 0, &stop_fill, &cli->who, prog, &rep);
	if (r != 0)
		rf_progress_fail(prog);
	else
		rf_progress_finish(prog);
	rf_progress_free(prog);
	if (cli->json)
		r2 = cli_json_put(json_pack("{s:s, s:I, s:o, s:I, s:I, s:b}",
		    "alg", rf_key_alg_name(alg), "made", (json_int_t)rep.made,
		    "seconds", cli_json_real(rep.seconds), "free",
		    (json_int_t)rep.free, "target", (json_int_t)ps.target,
		    "stopped", stop_fill != 0));
	else if (printf("pool %s: made %zu keys in %.1f s (%.1f keys/s); "
			"%lld free, target %lld%s\n",
		     rf_key_alg_name(alg), rep.made, rep.seconds,
		     rep.seconds > 0 ? (double)rep.made / rep.seconds : 0.0,
		     (long long)rep.free, (long long)ps.target,
		     stop_fill ? " (stopped)" : "") < 0)
		r2 = rf_err_set(RF_ERR_IO, "cannot write output");
	else
		r2 = 0;
	return r != 0 ? r : r2;
}

static int
pool_fill(struct rf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"alg", required_argument, NULL, 'a'},
	    {"count", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	struct sigaction sa;
	enum rf_key_alg alg = RF_KEY_NONE;
	long long count = 0;
	char *end;
	size_t i;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (rf_key_alg_parse(optarg, &alg) != 0)
				return cli_usage("keys pool",
				    "--alg must be ec-p256, ec-p384, rsa-2048, "
				    "rsa-3072 or rsa-4096, not '%s'",
				    optarg);
			break;
		case 'c':
			count = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || count < 1 ||
			    count > 10000000)
				return cli_usage("keys pool",
				    "--count must be a number from 1 to "
				    "10000000, not '%s'",
				    optarg);
			break;
		default:
			return cli_usage("keys pool", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(
		    "keys pool", "unexpected argument '%s'", argv[optind]);
	if (count > 0 && alg == RF_KEY_NONE)
		return cli_usage("keys pool", "--count needs --alg");
	if ((r = cli_open(cli, CLI_STORE | CLI_AUDIT | CLI_KEYS)) != 0)
		return cli_fail(r);
	/* Never in the way of a signature: idle cores only. */
	if ((r = rf_pool_lower_priority()) != 0)
		fprintf(stderr, "ringfence: warning: %s\n", rf_err_msg(r));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	for (i = 0; i < NALGS && !stop_fill; i++) {
		if (alg != RF_KEY_NONE && algs[i] != alg)
			continue;
		if ((r = fill_one(cli, algs[i], count)) != 0)
			return cli_fail(r);
	}
	if (fflush(stdout) != 0)
		return cli_fail(rf_err_set(RF_ERR_IO, "cannot write output"));
	return EXIT_OK;
}

int
cmd_keys_pool(struct rf_cli *cli, int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs(pool_help, stdout);
		return EXIT_OK;
	}
	if (argc < 2)
		return cli_usage(
		    "keys pool", "missing subcommand (status, fill)");
	if (strcmp(argv[1], "status") == 0) {
		if (argc > 2)
			return cli_usage(
			    "keys pool", "unexpected argument '%s'", argv[2]);
		return pool_status(cli);
	}
	if (strcmp(argv[1], "fill") == 0)
		return pool_fill(cli, argc - 1, argv + 1);
	return cli_usage("keys pool", "unknown subcommand '%s'", argv[1]);
}
