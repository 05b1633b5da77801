/* ringfence keys: the keys held in the token, with the store's record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "incident/incident.h"
#include "keys/ledger.h"

static const char keys_help[] =
    "usage: ringfence keys list [--json]\n"
    "       ringfence keys compromised [--json]\n"
    "       ringfence keys finish [--json]\n"
    "       ringfence keys pool status|fill ... (keys pool --help)\n"
    "\n"
    "List the private keys held in the token (RINGFENCE_MODULE,\n"
    "RINGFENCE_TOKEN), each with its record in the store: id (SHA-256 of\n"
    "the public key), algorithm, purpose, tenant, state, and the custody\n"
    "attributes read from the token. Every key ringfence makes is\n"
    "sensitive and never extractable; 'custody' says so per key.\n"
    "Then every disagreement between the store and the token, one line\n"
    "each: a key the store records but no token holds ('missing'), a key\n"
    "a token holds but the store does not know ('unknown'), a key the\n"
    "store says destroyed that a token still holds ('not-destroyed'), a\n"
    "key whose CKA_ID differs from the store's ('token-id'), a key keyd\n"
    "took out of service that the store says is in service ('ledger':\n"
    "the store was changed behind keyd's back). Exits 1\n"
    "when there is any. A key object without a CKA_ID is state 'torn':\n"
    "half made by a key generation the token or the process did not\n"
    "finish; it holds no key, and keyd destroys it when it next starts.\n"
    "\n"
    "  --json   one JSON object per key, one per line\n"
    "\n"
    "'compromised' lists the public keys that issuance refuses for good:\n"
    "every key revoked with keyCompromise or contained by an incident,\n"
    "with its identity (SHA-256 of the RSA modulus or EC point), key id,\n"
    "the certificate through which it was listed, the incident (or -)\n"
    "and the time.\n"
    "\n"
    "'finish' destroys the tenant keys whose destruction was recorded\n"
    "but not done (state 'destroying': a superseded key's destroy that\n"
    "failed, or a command killed in the middle), each public key checked\n"
    "against its id first, and only those keyd's ledger took out of\n"
    "service (the store alone can be changed by serve's user). Any other\n"
    "key the store calls 'destroying' is named and left (exit 1).\n"
    "\n"
    "See docs/keys.md.\n";

struct list_ctx {
	struct rf_cli *cli;
	struct rf_key_info *v; /* every private key in the token */
	size_t n, cap;
	int r;
	/* The connections keys were made for (--json), made on first use. */
	struct rf_incident_keyconn *kc;
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
collect_key(void *arg, const struct rf_key_info *ki)
{
	struct list_ctx *c = arg;
	struct rf_key_info *nv;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		if ((nv = reallocarray(c->v, c->cap, sizeof(*nv))) == NULL)
			return c->r = rf_err_set(RF_ERR_ALLOC, "out of memory");
		c->v = nv;
	}
	c->v[c->n++] = *ki;
	return 0;
}

/*
 * Set o's made_for_connection to the connection kr was made for, its
 * name ("tenant/name"), not its label, which is shortened past 64
 * characters; none for a key made for no connection.
 */
static int
made_for_connection(struct list_ctx *c, const struct rf_key_rec *kr, json_t *o)
{
	char by[200];
	int r;

	if (c->kc == NULL &&
	    (r = rf_incident_keyconn_new(c->cli->store, &c->kc)) != 0)
		return r;
	if ((r = rf_incident_keyconn_find(c->kc, kr, by)) == RF_ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return r;
	if (json_object_set_new(o, "made_for_connection", json_string(by)) != 0)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	return 0;
}

static int
print_key(struct list_ctx *c, const struct rf_key_info *ki,
    const struct rf_key_rec *kr, int have)
{
	json_t *o;
	char *s;
	int r;

	if (!c->cli->json) {
		printf("%-64s  %-8s  %-10s  %-12s  %-10s  %-7s  %s\n",
		    ki->id[0] ? ki->id : "(foreign id)",
		    rf_key_alg_name(ki->alg), kr->purpose,
		    kr->tenant[0] ? kr->tenant : "-", kr->state,
		    custody_word(ki), ki->label);
		return 0;
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, "
		      "s:s, s:s}",
	    "id", ki->id, "alg", rf_key_alg_name(ki->alg), "purpose",
	    kr->purpose, "tenant", kr->tenant, "state", kr->state, "label",
	    ki->label, "can_sign", ki->can_sign, "sensitive", ki->sensitive,
	    "extractable", ki->extractable, "always_sensitive",
	    ki->always_sensitive, "never_extractable", ki->never_extractable,
	    "token_id", ki->token_id, "token", ki->token);
	if (o == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	if (have &&
	    json_object_set_new(o, "created", json_integer(kr->created)) != 0)
		goto oom;
	/* A key made for something: contain's for an incident's connection,
	 * rotate's for a new CA. */
	if (have && kr->made_for[0] != '\0') {
		if (json_object_set_new(
			o, "made_for", json_string(kr->made_for)) != 0)
			goto oom;
		if ((r = made_for_connection(c, kr, o)) != 0) {
			json_decref(o);
			return r;
		}
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	printf("%s\n", s);
	free(s);
	return 0;
oom:
	json_decref(o);
	return rf_err_set(RF_ERR_ALLOC, "out of memory");
}

/*
 * Whether the store's purpose of a key in service disagrees with what keyd
 * made it as (its ledger, ledger.h): a CA key's role, or none.
 */
static int
role_differs(const struct rf_key_info *ki, const struct rf_key_rec *kr)
{
	/* Only what keyd would sign with: a key active in the store. */
	if (!ki->ledger || ki->retired || strcmp(kr->state, "active") != 0 ||
	    strcmp(kr->purpose, "-") == 0)
		return 0;
	if (ki->role[0] != '\0')
		return strcmp(ki->role, kr->purpose) != 0;
	return rf_ledger_kept_purpose(kr->purpose);
}

/*
 * One disagreement between the store and the token, one line: kind is
 * "missing" (the store records a live key no token holds), "unknown" (a
 * token holds a key the store does not record), "not-destroyed" (the
 * store says destroyed, a token still holds it) or "token-id" (the
 * store's CKA_ID for the key is not the token's).
 */
static int
disagree(struct rf_cli *cli, const char *kind, const char *id,
    const char *token, const char *detail)
{
	json_t *o;
	char *s;

	if (!cli->json) {
		printf("disagreement: %s key %s%s%s: %s\n", kind,
		    id[0] ? id : "(no public key)",
		    token[0] ? " in token " : "", token, detail);
		return 0;
	}
	if ((o = json_pack("{s:s, s:s, s:s, s:s}", "disagreement", kind, "id",
		 id, "token", token, "detail", detail)) == NULL ||
	    (s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		json_decref(o);
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	}
	json_decref(o);
	printf("%s\n", s);
	free(s);
	return 0;
}

/*
 * 1 if the store announced a key with this CKA_ID before the token made
 * it ("generating") and the process was killed before it recorded the
 * key's id: an interrupted generation, known to the store.
 */
static int
interrupted(const struct rf_key_rec *recs, size_t n, const char *token_id)
{
	size_t i;

	for (i = 0; i < n && token_id[0] != '\0'; i++)
		if (strcmp(recs[i].state, "generating") == 0 &&
		    strcasecmp(recs[i].token_id, token_id) == 0)
			return 1;
	return 0;
}

static int
info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rf_key_info *)a)->id,
	    ((const struct rf_key_info *)b)->id);
}

/* The token's key of id in c (keyd's list, sorted by id), or NULL. */
static const struct rf_key_info *
listed(const struct list_ctx *c, const char *id)
{
	struct rf_key_info want;

	memset(&want, 0, sizeof(want));
	snprintf(want.id, sizeof(want.id), "%s", id);
	return c->n == 0 ? NULL
			 : bsearch(&want, c->v, c->n, sizeof(*c->v), info_cmp);
}

/* Print the token's keys, then every disagreement with the store. */
static int
list_and_compare(struct list_ctx *c, size_t *ndis)
{
	struct rf_cli *cli = c->cli;
	struct rf_key_rec kr, *recs = NULL;
	struct list_ctx again = {0};
	char detail[256];
	size_t i, nrecs = 0;
	int have, r;

	*ndis = 0;
	rf_test_pause("keys-list-token-read"); /* a key made meanwhile */
	if ((r = rf_store_key_list(cli->store, &recs, &nrecs)) != 0)
		return r;
	for (i = 0; i < c->n; i++) {
		const struct rf_key_info *ki = &c->v[i];

		memset(&kr, 0, sizeof(kr));
		have = ki->id[0] != '\0' &&
		    (r = rf_store_key_get(cli->store, ki->id, &kr)) == 0;
		if (!have && ki->id[0] != '\0' && r != RF_ERR_NOT_FOUND)
			goto out;
		rf_err_clear();
		if (!have) {
			snprintf(kr.purpose, sizeof(kr.purpose), "-");
			snprintf(kr.state, sizeof(kr.state), "%s",
			    ki->token_id[0] == '\0' ? "torn"
				: interrupted(recs, nrecs, ki->token_id)
				? "interrupted"
				: "unrecorded");
		} else if (!ki->can_sign && strcmp(kr.state, "active") == 0) {
			/* Made before disabling was a store state. */
			snprintf(kr.state, sizeof(kr.state), "disabled");
		}
		if ((r = print_key(c, ki, &kr, have)) != 0)
			goto out;
	}
	/* Token to store. */
	for (i = 0; i < c->n; i++) {
		const struct rf_key_info *ki = &c->v[i];

		memset(&kr, 0, sizeof(kr));
		r = ki->id[0] ? rf_store_key_get(cli->store, ki->id, &kr)
			      : RF_ERR_NOT_FOUND;
		if (r != 0 && r != RF_ERR_NOT_FOUND)
			goto out;
		rf_err_clear();
		/* Half made, no key (keyd destroys it when it starts). */
		if (r == RF_ERR_NOT_FOUND && ki->token_id[0] == '\0')
			continue;
		if (r == RF_ERR_NOT_FOUND &&
		    interrupted(recs, nrecs, ki->token_id)) {
			continue;
		} else if (r == RF_ERR_NOT_FOUND) {
			snprintf(detail, sizeof(detail),
			    "the token holds it (CKA_ID %s, label '%s'), the "
			    "store does not know it",
			    ki->token_id, ki->label);
			r = disagree(cli, "unknown", ki->id, ki->token, detail);
		} else if (ki->retired && strcmp(kr.state, "disabled") != 0 &&
		    strcmp(kr.state, "destroying") != 0 &&
		    strcmp(kr.state, "destroyed") != 0) {
			snprintf(detail, sizeof(detail),
			    "keyd took it out of service (its ledger), the "
			    "store says %s: the store was changed behind "
			    "keyd's back; the key signs nothing",
			    kr.state);
			r = disagree(cli, "ledger", ki->id, ki->token, detail);
		} else if (role_differs(ki, &kr)) {
			if (ki->role[0] != '\0')
				snprintf(detail, sizeof(detail),
				    "keyd made it as the %s key (its ledger), "
				    "the store says %s: the store was changed "
				    "behind keyd's back; keyd signs nothing "
				    "else with it for serve",
				    ki->role, kr.purpose);
			else
				snprintf(detail, sizeof(detail),
				    "the store says it is the %s key, keyd did "
				    "not make it as one (its ledger): the "
				    "store was changed behind keyd's back; "
				    "keyd signs nothing with it for serve",
				    kr.purpose);
			r = disagree(cli, "role", ki->id, ki->token, detail);
		} else if (strcmp(kr.state, "destroyed") == 0) {
			snprintf(detail, sizeof(detail),
			    "the store says destroyed, the token still holds "
			    "it (a destroy that did not finish: run the "
			    "command that destroyed it again)");
			r = disagree(
			    cli, "not-destroyed", ki->id, ki->token, detail);
		} else if (kr.token_id[0] != '\0' &&
		    strcasecmp(kr.token_id, ki->token_id) != 0) {
			snprintf(detail, sizeof(detail),
			    "the store says CKA_ID %s, the token has %s",
			    kr.token_id, ki->token_id);
			r = disagree(
			    cli, "token-id", ki->id, ki->token, detail);
		} else {
			continue;
		}
		if (r != 0)
			goto out;
		(*ndis)++;
	}
	/*
	 * Store to token. The token was listed before the store was read: a
	 * key made in between (a pool refill's) is in the store and not in
	 * that list. The token makes a key before the store names it, so a
	 * second list, read after the store, holds every such key: a key
	 * missing from both is missing.
	 */
	r = 0;
	qsort(c->v, c->n, sizeof(*c->v), info_cmp);
	for (i = 0; i < nrecs && r == 0; i++) {
		if (strcmp(recs[i].state, "destroyed") == 0 ||
		    strcmp(recs[i].state, "generating") == 0)
			continue;
		if (listed(c, recs[i].id) != NULL)
			continue;
		if (again.cli == NULL) {
			again.cli = cli;
			if ((r = rf_keys_list(
				 cli->keys, collect_key, &again)) != 0)
				goto out;
			if (again.n > 0)
				qsort(again.v, again.n, sizeof(*again.v),
				    info_cmp);
		}
		if (listed(&again, recs[i].id) != NULL)
			continue;
		snprintf(detail, sizeof(detail),
		    "the store records it (%s, %s, state %s), no token holds "
		    "it",
		    recs[i].alg, recs[i].purpose, recs[i].state);
		r = disagree(cli, "missing", recs[i].id, recs[i].token, detail);
		(*ndis)++;
	}
out:
	free(again.v);
	free(recs);
	return r;
}

static int
keys_list(struct rf_cli *cli, int argc, char **argv)
{
	struct list_ctx c;
	size_t ndis = 0;
	int r;

	if (argc > 1)
		return cli_usage("keys", "unexpected argument '%s'", argv[1]);
	if ((r = cli_open(cli, CLI_KEYS)) != 0)
		return cli_fail(r);
	memset(&c, 0, sizeof(c));
	c.cli = cli;
	if ((r = rf_keys_list(cli->keys, collect_key, &c)) != 0) {
		free(c.v);
		return cli_fail(r); /* nothing printed but the error */
	}
	if (!cli->json)
		printf("%-64s  %-8s  %-10s  %-12s  %-10s  %-7s  %s\n", "ID",
		    "ALG", "PURPOSE", "TENANT", "STATE", "CUSTODY", "LABEL");
	r = list_and_compare(&c, &ndis);
	rf_incident_keyconn_free(c.kc);
	free(c.v);
	if (r != 0)
		return cli_fail(r);
	if (fflush(stdout) != 0)
		return cli_fail(rf_err_set(RF_ERR_IO, "cannot write output"));
	if (ndis > 0)
		return cli_fail(rf_err_set(RF_ERR_STATE,
		    "%zu disagreements between the store and the token (listed "
		    "above)",
		    ndis));
	return EXIT_OK;
}

static int
print_compromised(void *arg, const struct rf_compromised_rec *k)
{
	struct list_ctx *c = arg;
	char when[32], inc[24];
	json_t *o;
	char *s;

	c->n++;
	rf_iso_time(k->time, when);
	if (!c->cli->json) {
		snprintf(inc, sizeof(inc), "%lld", (long long)k->incident);
		printf("%-64s  %-40s  %-12s  %-8s  %s\n", k->ident, k->serial,
		    k->tenant[0] ? k->tenant : "-", k->incident > 0 ? inc : "-",
		    when);
		return 0;
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "ident",
	    k->ident, "key", k->key_id, "serial", k->serial, "tenant",
	    k->tenant, "reason", "keyCompromise", "incident",
	    (json_int_t)k->incident, "time", (json_int_t)k->time, "at", when);
	if (o == NULL)
		return c->r = RF_ERR_ALLOC;
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		return c->r = RF_ERR_ALLOC;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int
keys_compromised(struct rf_cli *cli, int argc, char **argv)
{
	struct list_ctx c;
	int r;

	if (argc > 1)
		return cli_usage("keys", "unexpected argument '%s'", argv[1]);
	if ((r = cli_open(cli, CLI_STORE)) != 0)
		return cli_fail(r);
	memset(&c, 0, sizeof(c));
	c.cli = cli;
	if (!cli->json)
		printf("%-64s  %-40s  %-12s  %-8s  %s\n", "IDENTITY", "SERIAL",
		    "TENANT", "INCIDENT", "LISTED");
	if ((r = rf_store_compromised_foreach(
		 cli->store, print_compromised, &c)) != 0)
		return cli_fail(c.r != 0 ? c.r : r);
	return EXIT_OK;
}

/*
 * keys finish: the destructions whose intent is recorded (state
 * "destroying": the leaf durable, the act not done or not recorded), such
 * as a superseded key's that keyd refused or that a crash cut short. The
 * store, which serve's user can write, says "destroying"; keyd's list
 * says what the token holds (by each object's public key) and what keyd's
 * ledger took out of service. A key the token holds is finished only if
 * the ledger retired it (every destroy retires first), a CA key never
 * here; one the token does not hold only has its record finished.
 */
static int
keys_finish(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_key_rec *recs = NULL;
	const struct rf_key_info *ki;
	struct list_ctx c;
	const char **ids = NULL;
	size_t n = 0, i, k = 0, done = 0, left = 0;
	int r;

	if (argc > 1)
		return cli_usage("keys", "unexpected argument '%s'", argv[1]);
	memset(&c, 0, sizeof(c));
	c.cli = cli;
	if ((r = cli_open(cli, CLI_STORE | CLI_KEYS)) != 0 ||
	    (r = rf_store_key_list_state(
		 cli->store, "destroying", &recs, &n)) != 0)
		return cli_fail(r);
	if (n > 0 && (r = rf_keys_list(cli->keys, collect_key, &c)) != 0) {
		r = c.r != 0 ? c.r : r;
		goto out;
	}
	if (c.n > 0)
		qsort(c.v, c.n, sizeof(*c.v), info_cmp);
	if ((ids = calloc(n + 1, sizeof(*ids))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		ki = listed(&c, recs[i].id);
		if (strcmp(recs[i].purpose, "connection") != 0 ||
		    (ki != NULL && ki->role[0] != '\0')) {
			fprintf(stderr,
			    "ringfence: key %s (%s) is being destroyed: it is "
			    "not a tenant connection's key, which is all this "
			    "command destroys (see docs/keys.md)\n",
			    recs[i].id, recs[i].purpose);
			left++;
		} else if (ki != NULL && !ki->retired) {
			fprintf(stderr,
			    "ringfence: key %s: the store says it is being "
			    "destroyed, keyd's ledger never took it out of "
			    "service (the store was changed behind keyd's "
			    "back): left as it is\n",
			    recs[i].id);
			left++;
		} else {
			ids[k++] = recs[i].id;
		}
	}
	if (k > 0)
		r = rf_keys_destroy_tenant_many(
		    cli->keys, ids, k, &cli->who, &done);
	if (r == 0 && cli->json)
		printf("{\"destroying\":%zu,\"destroyed\":%zu,\"left\":%zu}\n",
		    k, done, left);
	else if (r == 0)
		printf("%zu of %zu tenant keys left being destroyed are "
		       "destroyed now (%zu were no longer in the token); %zu "
		       "left\n",
		    done, k, k - done, left);
out:
	free(c.v);
	free(ids);
	free(recs);
	return r != 0 ? cli_fail(r) : (left > 0 ? EXIT_FAIL : EXIT_OK);
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
		return cli_usage("keys",
		    "missing subcommand (list, compromised, finish, pool)");
	if (strcmp(argv[1], "list") == 0)
		return keys_list(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "compromised") == 0)
		return keys_compromised(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "finish") == 0)
		return keys_finish(cli, argc - 1, argv + 1);
	return cli_usage("keys", "unknown subcommand '%s'", argv[1]);
}
