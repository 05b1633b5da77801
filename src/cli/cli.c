/* Shared plumbing of the subcommands: opening state, errors, usage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"

int
cli_json_put(json_t *j)
{
	char *s;

	if (j == NULL)
		return RF_ERR_ALLOC;
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(j);
	if (s == NULL)
		return RF_ERR_ALLOC;
	printf("%s\n", s);
	free(s);
	return 0;
}

int
cli_json_print(json_t *j)
{
	int r;

	return (r = cli_json_put(j)) != 0 ? cli_fail(r) : EXIT_OK;
}

void
cli_forget_pin(void)
{
	rf_env_wipe("RINGFENCE_PIN");
}

int
cli_open(struct rf_cli *cli, int what)
{
	int r;

	rf_err_clear();
	if ((what & (CLI_STORE | CLI_AUDIT | CLI_KEYS | CLI_CA)) &&
	    cli->store == NULL &&
	    (r = rf_store_open(cli->cfg.db_path, 0, &cli->store)) != 0) {
		if (r == RF_ERR_NOT_INITIALISED)
			return rf_err_set(r,
			    "no state at %s: run 'ringfence "
			    "init' (or set RINGFENCE_HOME)",
			    cli->cfg.home);
		return r;
	}
	if ((what & (CLI_AUDIT | CLI_KEYS | CLI_CA)) && cli->audit == NULL &&
	    (r = rf_audit_open(cli->store, &cli->audit)) != 0)
		return r;
	if ((what & (CLI_KEYS | CLI_CA)) && cli->keys == NULL) {
		if ((r = rf_keys_open(&cli->cfg, cli->audit, &cli->keys)) != 0)
			return r;
		/* keyd has it now, if it needed it: not this process. */
		cli_forget_pin();
	}
	if ((what & CLI_CA) && cli->ca == NULL &&
	    (r = rf_ca_open(&cli->cfg, cli->store, cli->keys, &cli->ca)) != 0)
		return r;
	if ((what & CLI_CA) && cli->ca != NULL)
		rf_ca_set_audit(cli->ca, cli->audit);
	return 0;
}

void
cli_close(struct rf_cli *cli)
{
	rf_ca_free(cli->ca);
	cli->ca = NULL;
	rf_keys_free(cli->keys);
	cli->keys = NULL;
	rf_audit_free(cli->audit);
	cli->audit = NULL;
	rf_store_free(cli->store);
	cli->store = NULL;
}

int
cli_fail(int r)
{
	fprintf(stderr, "ringfence: %s\n", rf_err_msg(r));
	return EXIT_FAIL;
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringfence %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'ringfence %s --help')\n", cmd);
	return EXIT_USAGE;
}

int
cli_wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}
