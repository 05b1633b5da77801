/*
 * cmd_reconcile.c: `ringfence audit reconcile --signins FILE`: sign-ins in
 * the relying party's log that no assertion of ours explains.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "connector/connector.h"

#define SIGNINS_MAX (256 * 1024 * 1024)

static const char reconcile_help[] =
    "usage: ringfence audit reconcile --signins FILE [--json]\n"
    "FILE is an Entra service-principal sign-in export (JSON: an array of\n"
    "Graph signIns, or an object with them in \"value\"). Of each sign-in it\n"
    "reads servicePrincipalCredentialThumbprint (one without it, or with a\n"
    "credential not ringfence's, is passed over), then ipAddress and\n"
    "createdDateTime (RFC 3339 UTC), both required, and id (Entra's own,\n"
    "optional: the report names it). Lists every sign-in with a ringfence\n"
    "credential that no assertion of ours explains (wrong time, unknown\n"
    "source network, a retired credential); exits 1 when there is one.\n";

int
cmd_audit_reconcile(struct rf_cli *cli, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"signins", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *file = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, n = 0;
	int c, r;

	if (cli_wants_help(argc, argv)) {
		fputs(reconcile_help, stdout);
		return EXIT_OK;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 's')
			file = optarg;
		else if (c == 'j')
			cli->json = 1;
		else
			return cli_usage("audit",
			    "reconcile: unknown option %.60s",
			    argv[optind - 1]);
	}
	if (file == NULL || optind != argc)
		return cli_usage("audit", "reconcile needs --signins FILE");
	if ((r = rf_read_file(file, SIGNINS_MAX, &buf, &len)) != 0)
		return cli_fail(r);
	if ((r = cli_open(cli, CLI_STORE)) != 0 ||
	    (r = rf_connector_reconcile(
		 cli->store, buf, len, cli->json, stdout, &n)) != 0) {
		free(buf);
		return cli_fail(r);
	}
	free(buf);
	if (!cli->json)
		fprintf(stderr,
		    "%zu sign-in%s not explained by our assertions\n", n,
		    n == 1 ? "" : "s");
	return n == 0 ? EXIT_OK : EXIT_FAIL;
}
