/*
 * ringfence: git-style subcommands over librf.
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "http/notify.h"
#include "store/store_incident.h"

#ifdef RF_BENCH_AUDIT_OFF
/* The benchmark's record-off build (CMakeLists.txt) makes no binary. */
#error "no ringfence binary is built with the audit record off"
#endif

struct command {
	const char *name;
	int (*fn)(struct rf_cli *, int, char **);
	const char *summary; /* lines end in '\n', the last one not */
};

static const struct command commands[] = {
    {"init", cmd_init, "create the token, the store and the CA hierarchy"},
    {"tenant", cmd_tenant, "add, list and show tenants"},
    {"issue", cmd_issue,
	"issue a tenant certificate (CSR or key in the "
	"token)"},
    {"cert", cmd_cert, "show and list certificates; print CA certificates"},
    {"revoke", cmd_revoke, "revoke by serial, tenant or key"},
    {"crl", cmd_crl, "write the current CRL of an issuer"},
    {"audit", cmd_audit, "tree heads, proofs, verification, search"},
    {"connection", cmd_connection,
	"add and list tenant connections (one credential each)"},
    {"incident", cmd_incident,
	"open, contain, package, track and close an incident"},
    {"keys", cmd_keys, "the token's keys and the standby key pool"},
    {"serve", cmd_serve,
	"serve healthz, CA certificates, CRLs and OCSP; on TLS also the\n"
	"connector API: POST /v1/assertions, POST /v1/connector/renew"},
    {"connector", cmd_connector,
	"connector identities, bindings, entra connections"},
    {"assert", cmd_assert, "get a client assertion (connector side)"},
    {"alerts", cmd_alerts, "connector anomaly alerts and their webhook"},
    {"keyd", cmd_keyd, "the custody process: run, stop, status"},
};

static void
usage(FILE *f)
{
	const char *s;
	size_t i, n;

	fprintf(f, "usage: ringfence [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		for (s = commands[i].summary; *s != '\0'; s += n + !!s[n]) {
			n = strcspn(s, "\n");
			fprintf(f, "  %-10s %.*s\n",
			    s == commands[i].summary ? commands[i].name : "",
			    (int)n, s);
		}
	fprintf(f, "  %-10s %s\n", "help",
	    "this text; 'ringfence CMD --help' "
	    "for one command");
	fprintf(f,
	    "\nSettings: $RINGFENCE_HOME/ringfence.conf and RINGFENCE_* "
	    "variables (docs/config.md).\n");
}

/*
 * Every command's output reaches its file, or the command fails: a short
 * write (a full disk under `issue > file`, a closed pipe) is an error
 * even when the command itself succeeded.
 */
static int output_reported; /* cli_flush said it already */

static void
output_fail(int err)
{
	/* stderr stays open: the one line goes there. */
	fprintf(stderr,
	    "ringfence: cannot write the output (%s): check the disk or "
	    "pipe it goes to; the output is incomplete\n",
	    strerror(err));
}

int
cli_flush(void)
{
	errno = 0;
	if (fflush(stdout) == 0 && ferror(stdout) == 0)
		return 0;
	if (!output_reported)
		output_fail(errno != 0 ? errno : EIO);
	output_reported = 1;
	return EXIT_FAIL;
}

static int
output_check(int r)
{
	int err = 0;

	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout) != 0)
		err = errno != 0 ? errno : EIO;
	if (fclose(stdout) != 0 && err == 0)
		err = errno != 0 ? errno : EIO;
	if (err == 0)
		return r;
	if (!output_reported)
		output_fail(err);
	return EXIT_FAIL;
}

int
main(int argc, char **argv)
{
	struct rf_cli cli;
	int i, j, r;

	memset(&cli, 0, sizeof(cli));
	/* --json is accepted anywhere; commands read cli.json. */
	for (i = j = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			cli.json = 1;
		else
			argv[j++] = argv[i];
	}
	argc = j;
	argv[argc] = NULL;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		if (argc > 2) {
			for (i = 0;
			     i < (int)(sizeof(commands) / sizeof(commands[0]));
			     i++) {
				if (strcmp(commands[i].name, argv[2]) == 0) {
					char *hargv[] = {
					    argv[2], "--help", NULL};

					return commands[i].fn(&cli, 2, hargv);
				}
			}
		}
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("ringfence 0.1.0\n");
		return EXIT_OK;
	}
	for (i = 0; i < (int)(sizeof(commands) / sizeof(commands[0])); i++) {
		if (strcmp(commands[i].name, argv[1]) != 0)
			continue;
		if ((r = rf_config_load(&cli.cfg)) != 0 &&
		    !cli_wants_help(argc - 1, argv + 1))
			return cli_fail(r);
		cli.who.actor = cli.cfg.actor;
		cli.who.source = "cli";
		/*
		 * Keys live in the custody process: every command asks it,
		 * starting it when none runs, except keyd itself and init
		 * (which makes the token before any keyd can exist).
		 */
		if (strcmp(argv[1], "keyd") != 0 &&
		    strcmp(argv[1], "init") != 0) {
			struct rf_custody c = {
			    RF_KCLASS_ADMIN, cli_keyd_start, NULL};

			rf_keys_custody_use(&c);
		}
		r = commands[i].fn(&cli, argc - 1, argv + 1);
		/* Before anything else touches errno. */
		r = output_check(r);
		/*
		 * A change is visible when the command returns: a running
		 * server reloads before we exit (http/notify.h). Also after
		 * a failure: what was committed is served.
		 */
		if (strcmp(argv[1], "serve") != 0 &&
		    rf_store_wrote(cli.store) &&
		    rf_http_notify_send(&cli.cfg, RF_NOTIFY_TIMEOUT_MS, NULL) !=
			0) {
			fprintf(stderr, "ringfence: note: %s\n",
			    rf_err_msg(RF_ERR_IO));
		}
		cli_close(&cli);
		return r;
	}
	fprintf(stderr,
	    "ringfence: unknown command '%s': see 'ringfence "
	    "help'\n",
	    argv[1]);
	return EXIT_USAGE;
}
