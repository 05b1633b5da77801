/* ringfence keys: the keys held in the token, with the store's record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"

static const char keys_help[] =
    "usage: ringfence keys list [--json]\n"
    "       ringfence keys pool status|fill ... (keys pool --help)\n"
    "\n"
    "List the private keys held in the token (RINGFENCE_MODULE,\n"
    "RINGFENCE_TOKEN), each with its record in the store: id (SHA-256 of\n"
    "the public key), algorithm, purpose, tenant, state, and the custody\n"
    "attributes read from the token. Every key ringfence makes is\n"
    "sensitive and never extractable; 'custody' says so per key.\n"
    "\n"
    "  --json   one JSON object per key, one per line\n"
    "\n"
    "See docs/keys.md.\n";

struct list_ctx {
	struct rf_cli *cli;
	size_t n;
	int r;
};

static const char *
custody_word(const struct rf_key_info *ki)
{
	if (ki->sensitive && !ki->extractable && ki->always_sensitive &&
	    ki->never_extractable)
		return "sealed";
	return "EXPOSED";
}

static int
print_key(void *arg, const struct rf_key_info *ki)
{
	struct list_ctx *c = arg;
	struct rf_key_rec kr;
	json_t *o;
	char *s;
	int have;

	memset(&kr, 0, sizeof(kr));
	have = ki->id[0] != '\0' &&
	    rf_store_key_get(c->cli->store, ki->id, &kr) == 0;
	if (!have) {
		snprintf(kr.purpose, sizeof(kr.purpose), "-");
		snprintf(kr.state, sizeof(kr.state), "%s",
		    ki->can_sign ? "unrecorded" : "no-sign");
	} else if (!ki->can_sign && strcmp(kr.state, "active") == 0) {
		/* The token is the authority on whether a key can sign. */
		snprintf(kr.state, sizeof(kr.state), "disabled");
	}
	c->n++;
	if (!c->cli->json) {
		printf("%-64s  %-8s  %-10s  %-12s  %-10s  %-7s  %s\n",
		    ki->id[0] ? ki->id : "(foreign id)",
		    rf_key_alg_name(ki->alg), kr.purpose,
		    kr.tenant[0] ? kr.tenant : "-", kr.state, custody_word(ki),
		    ki->label);
		return 0;
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b}",
	    "id", ki->id, "alg", rf_key_alg_name(ki->alg), "purpose",
	    kr.purpose, "tenant", kr.tenant, "state", kr.state, "label",
	    ki->label, "can_sign", ki->can_sign, "sensitive", ki->sensitive,
	    "extractable", ki->extractable, "always_sensitive",
	    ki->always_sensitive, "never_extractable", ki->never_extractable);
	if (o == NULL)
		return c->r = RF_ERR_ALLOC;
	if (have &&
	    json_object_set_new(o, "created", json_integer(kr.created)) != 0) {
		json_decref(o);
		return c->r = RF_ERR_ALLOC;
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		return c->r = RF_ERR_ALLOC;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int
keys_list(struct rf_cli *cli, int argc, char **argv)
{
	struct list_ctx c;
	int r;

	if (argc > 1)
		return cli_usage("keys", "unexpected argument '%s'", argv[1]);
	if ((r = cli_open(cli, CLI_KEYS)) != 0)
		return cli_fail(r);
	memset(&c, 0, sizeof(c));
	c.cli = cli;
	if (!cli->json)
		printf("%-64s  %-8s  %-10s  %-12s  %-10s  %-7s  %s\n", "ID",
		    "ALG", "PURPOSE", "TENANT", "STATE", "CUSTODY", "LABEL");
	if ((r = rf_keys_list(cli->keys, print_key, &c)) != 0)
		return cli_fail(r);
	if (fflush(stdout) != 0)
		return cli_fail(rf_err_set(RF_ERR_IO, "cannot write output"));
	return EXIT_OK;
}

int
cmd_keys(struct rf_cli *cli, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "pool") == 0)
		return cmd_keys_pool(cli, argc - 1, argv + 1);
	if (cli_wants_help(argc, argv)) {
		fputs(keys_help, stdout);
		return EXIT_OK;
	}
	if (argc < 2)
		return cli_usage("keys", "missing subcommand (list, pool)");
	if (strcmp(argv[1], "list") == 0)
		return keys_list(cli, argc - 1, argv + 1);
	return cli_usage("keys", "unknown subcommand '%s'", argv[1]);
}
