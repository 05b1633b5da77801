/*
 * cmd_alerts.c: `ringfence alerts`: the connector anomaly alerts
 * (docs/connectors.md), and one pass of their webhook queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "connector/connector.h"

static const char alerts_help[] =
    "usage: ringfence alerts list [--json]\n"
    "       ringfence alerts deliver\n"
    "'list' prints every alert raised by the connector detectors, oldest\n"
    "first, one a line: its time, its id (its kind first; receivers\n"
    "deduplicate on it), the connection, the connector and what happened,\n"
    "and, when a webhook (alert_webhook) is set, whether it delivered it.\n"
    "'deliver' runs one pass of the webhook queue now (serve runs it\n"
    "continuously).\n";

/* The list's output: a JSON array, or text (arr NULL) that says which
 * alerts the webhook has yet to deliver when one is set. */
struct listing {
	json_t *arr;
	int webhook;
	size_t n; /* alerts listed */
};

static int
one(void *arg, const struct rf_alert_rec *a)
{
	struct listing *ls = arg;
	json_t *arr = ls->arr, *j;
	char t[32];

	ls->n++;
	rf_iso_time(a->time, t);
	if (arr != NULL) {
		char *s = rf_connector_alert_json(a);

		if (s == NULL || (j = json_loads(s, 0, NULL)) == NULL) {
			free(s);
			return RF_ERR_ALLOC;
		}
		free(s);
		/* The webhook's payload gives Unix seconds (its receivers'
		 * contract); the listing gives its times as every listing
		 * does, ISO 8601 UTC. */
		json_object_set_new(j, "time", json_string(t));
		json_object_set_new(j, "delivered", json_boolean(a->delivered));
		return json_array_append_new(arr, j) == 0 ? 0 : RF_ERR_ALLOC;
	}
	printf("%s %s %s/%s connector %s: %s%s\n", t, a->uid, a->tenant,
	    a->conn, a->connector, a->detail,
	    a->delivered || !ls->webhook ? "" : " [webhook pending]");
	return 0;
}

int
cmd_alerts(struct rf_cli *cli, int argc, char **argv)
{
	struct listing ls;
	size_t sent = 0;
	int r;

	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(alerts_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (argc != 2)
		return cli_usage(
		    "alerts", "unexpected argument '%.40s'", argv[2]);
	if (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "deliver") != 0)
		return cli_usage("alerts",
		    "unknown subcommand '%.40s': use list or deliver", argv[1]);
	if ((r = cli_open(cli, CLI_STORE)) != 0)
		return cli_fail(r);
	if (strcmp(argv[1], "list") == 0) {
		ls.arr = cli->json ? json_array() : NULL;
		if (cli->json && ls.arr == NULL)
			return cli_fail(RF_ERR_ALLOC);
		ls.webhook = cli->cfg.alert_webhook[0] != '\0';
		ls.n = 0;
		if ((r = rf_store_alert_foreach(cli->store, 0, one, &ls)) !=
		    0) {
			json_decref(ls.arr);
			return cli_fail(r);
		}
		if (cli->json)
			return cli_json_print(ls.arr);
		if (ls.n == 0)
			printf("no alerts: the connector detectors have raised "
			       "none\n");
		return EXIT_OK;
	}
	/* deliver */
	if (cli->cfg.alert_webhook[0] == '\0')
		return cli_fail(rf_err_set(
		    RF_ERR_CONFIG, "no alert_webhook set: see docs/config.md"));
	if ((r = rf_connector_webhook_pass(
		 cli->store, cli->cfg.alert_webhook, rf_now(), &sent)) != 0)
		return cli_fail(r);
	printf("%zu alert%s delivered\n", sent, sent == 1 ? "" : "s");
	return EXIT_OK;
}
