/*
 * ringfence incident, ringfence connection: compromise response from the
 * command line (docs/incident.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/progress.h"
#include "incident/incident.h"
#include "pool/pool.h"
#include "store/store_incident.h"

static const char incident_help[] =
    "usage: ringfence incident open --scope SCOPE --reason TEXT [--since T]\n"
    "       ringfence incident contain ID\n"
    "       ringfence incident package ID (--tenant T | --all) --out DIR\n"
    "       ringfence incident confirm ID (--tenant T [--connection NAME] "
    "| --all)\n"
    "                                     [--waive]\n"
    "       ringfence incident status ID [--json]\n"
    "       ringfence incident report ID [--out PREFIX]\n"
    "       ringfence incident ack ID\n"
    "       ringfence incident close ID\n"
    "       ringfence incident list [--json]\n"
    "\n"
    "SCOPE is tenant:T, connection:T/NAME, key:KEYID, issuer:CA or all.\n"
    "--since T takes Unix seconds, a UTC time YYYY-MM-DDTHH:MM:SSZ or a UTC\n"
    "date YYYY-MM-DD, not in the future; without it, every signature counts.\n"
    "open records the blast radius (connections, credentials, signatures of\n"
    "the keys in scope since T); contain revokes every credential in scope\n"
    "(keyCompromise), disables the keys in the token, rotates the issuing CA\n"
    "for an issuer scope, and issues a new key and certificate for every\n"
    "connection; rerun it after an interruption to resume. package writes\n"
    "each tenant's re-establishment package; confirm (or the bound\n"
    "connector's use of the new credential) marks a tenant re-established,\n"
    "or with --connection one of its connections, and --waive waives them\n"
    "(contain leaves alone a connection given a credential elsewhere after\n"
    "the incident opened, and says so: waived, it keeps that credential);\n"
    "OCSP queries are recorded as sightings (those for an old serial after\n"
    "re-establishment shown until 'incident ack'); close destroys what\n"
    "is left of the old keys once every connection is re-established or\n"
    "waived. contain and close show progress on a terminal (JSON lines with\n"
    "--json); status shows it from another terminal.\n";

static const char connection_help[] =
    "usage: ringfence connection add TENANT NAME [--rp ocsp|pinned]\n"
    "       ringfence connection list [--tenant T] [--json]\n"
    "\n"
    "A connection is one connector's credential for one tenant. Its relying\n"
    "party either checks revocation (ocsp, the default) or pins the\n"
    "certificate by thumbprint (pinned, e.g. Entra ID app credentials).\n"
    "'ringfence issue --connection NAME' makes the issued certificate the\n"
    "connection's current credential.\n";

static int
parse_id(const char *s, int64_t *id)
{
	char *end;
	long long v;

	if (s == NULL)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v <= 0 || errno == ERANGE)
		return -1;
	*id = v;
	return 0;
}

/* --since: a time (cli_parse_time), not in the future. -1 otherwise. */
static int
parse_since(const char *s, int64_t *t)
{
	return cli_parse_time(s, t) == 0 && *t <= rf_now() ? 0 : -1;
}

static void
ctx_init(struct rf_cli *cli, struct rf_incident_ctx *c)
{
	c->cfg = &cli->cfg;
	c->st = cli->store;
	c->audit = cli->audit;
	c->keys = cli->keys;
	c->ca = cli->ca;
	c->who = &cli->who;
	c->progress = NULL;
}

/* Before contain, on stdout (stderr is for the one-line error): what the
 * standby pool lacks and how long making it takes (contain records the
 * same in the incident's timeline). */
static void
pool_note(struct rf_cli *cli, int64_t id, json_t *notes)
{
	struct rf_incident_ctx c;
	struct rf_pool_plan plan[RF_POOL_ALGS];
	char note[256];
	size_t i, n;

	ctx_init(cli, &c);
	if (rf_incident_pool_plan(&c, id, plan, &n) != 0) {
		rf_err_clear(); /* contain itself reports the store's error */
		return;
	}
	for (i = 0; i < n; i++) {
		if (plan[i].generate == 0)
			continue;
		rf_pool_plan_text(&plan[i], note, sizeof(note));
		/* Under --json the notes are part of the one result object. */
		if (notes != NULL)
			json_array_append_new(notes, json_string(note));
		else
			printf("%s\n", note);
	}
}

#define STRAGGLERS_SHOWN 20

static int
print_conn(void *arg, const struct rf_incident_conn *ic)
{
	size_t *shown = arg;

	if ((*shown)++ >= STRAGGLERS_SHOWN)
		return 0;
	printf("  %-24s %-12s %-7s %-14s %s -> %s %s\n", ic->tenant, ic->name,
	    ic->rp, ic->state, ic->old_serial,
	    ic->new_serial[0] ? ic->new_serial : "-", ic->evidence);
	return 0;
}

static int
print_sighting(void *arg, const struct rf_sighting_rec *g)
{
	char last[32];

	(void)arg;
	rf_iso_time(g->last, last);
	printf("    %s serial %s from %s: %lld queries, last at %s%s%s\n",
	    g->is_new ? "new" : "old", g->serial, g->source,
	    (long long)g->count, last,
	    g->after_reestablished ? ", after re-establishment" : "",
	    g->after_reestablished && !g->acked ? " (not acknowledged)" : "");
	return 0;
}

/* The same, for status --json: an array of objects. */
static int
json_sighting(void *arg, const struct rf_sighting_rec *g)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:b}",
	    "serial", g->serial, "credential", g->is_new ? "new" : "old",
	    "source", g->source, "count", (json_int_t)g->count, "first",
	    (json_int_t)g->first, "last", (json_int_t)g->last,
	    "after_reestablished", g->after_reestablished, "acked", g->acked);

	if (o == NULL || json_array_append_new(arg, o) != 0)
		return RF_ERR_ALLOC;
	return 0;
}

/* A straggler for status --json: what the text prints, by name. */
static int
json_conn(void *arg, const struct rf_incident_conn *ic)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
	    "tenant", ic->tenant, "connection", ic->name, "relying_party",
	    ic->rp, "state", ic->state, "old_serial", ic->old_serial,
	    "new_serial", ic->new_serial, "evidence", ic->evidence, "updated",
	    (json_int_t)ic->updated);

	if (o == NULL || json_array_append_new(arg, o) != 0)
		return RF_ERR_ALLOC;
	return 0;
}

static int
json_stragglers(const struct rf_incident_ctx *c, int64_t id, json_t *j)
{
	json_t *arr = json_array();

	if (arr == NULL || json_object_set_new(j, "stragglers", arr) != 0)
		return RF_ERR_ALLOC;
	return rf_incident_foreach(c, id, 1, json_conn, arr);
}

/* The progress of a running (or the last) contain / close. */
static int
progress_get(const struct rf_incident_ctx *c, int64_t id, const char *cmd,
    struct rf_progress_rec *p)
{
	char task[96];

	rf_incident_task(id, cmd, task);
	if (rf_store_progress_get(c->st, task, p) != 0) {
		rf_err_clear();
		return -1;
	}
	return 0;
}

static void
progress_rates(const struct rf_progress_rec *p, double *rate, double *eta)
{
	double el = (double)(p->updated_ms - p->started_ms) / 1000.0;

	*rate = el > 0 ? (double)p->done / el : 0;
	*eta = -1;
	if (p->total > 0 && p->done >= p->total)
		*eta = 0;
	else if (p->total > 0 && *rate > 0)
		*eta = (double)(p->total - p->done) / *rate;
}

/* Whether the command that writes p still runs (on this host). */
static int
progress_alive(const struct rf_progress_rec *p)
{
	return p->pid > 0 && (kill((pid_t)p->pid, 0) == 0 || errno == EPERM);
}

static void
print_progress(
    const struct rf_incident_ctx *c, int64_t id, const char *cmd, int closed)
{
	struct rf_progress_rec p;
	double rate, eta;
	char etas[32];

	if (progress_get(c, id, cmd, &p) != 0)
		return;
	progress_rates(&p, &rate, &eta);
	rf_progress_eta_str(eta, etas);
	if (p.finished)
		printf("  %s: finished (last phase %s, %llu/%llu)\n", cmd,
		    p.phase, (unsigned long long)p.done,
		    (unsigned long long)p.total);
	else if (!progress_alive(&p) && closed)
		printf("  %s interrupted (pid %lld is gone) in %s at "
		       "%llu/%llu; the incident is closed since: nothing to "
		       "resume\n",
		    cmd, (long long)p.pid, p.phase, (unsigned long long)p.done,
		    (unsigned long long)p.total);
	else if (!progress_alive(&p))
		printf("  %s interrupted (pid %lld is gone) in %s at "
		       "%llu/%llu, %.1f s ago: run 'ringfence incident %s "
		       "%lld' to resume\n",
		    cmd, (long long)p.pid, p.phase, (unsigned long long)p.done,
		    (unsigned long long)p.total,
		    (double)(rf_progress_now_ms() - p.updated_ms) / 1000.0, cmd,
		    (long long)id);
	else
		printf("  %s running (pid %lld): %s %llu/%llu, %.0f/s, ETA %s "
		       "(as of %.1f s ago)\n",
		    cmd, (long long)p.pid, p.phase, (unsigned long long)p.done,
		    (unsigned long long)p.total, rate, etas,
		    (double)(rf_progress_now_ms() - p.updated_ms) / 1000.0);
}

static void
progress_json(
    const struct rf_incident_ctx *c, int64_t id, const char *cmd, json_t *j)
{
	struct rf_progress_rec p;
	double rate, eta;
	char key[32];

	if (progress_get(c, id, cmd, &p) != 0)
		return;
	progress_rates(&p, &rate, &eta);
	snprintf(key, sizeof(key), "%s_progress", cmd);
	/* An ETA not known yet is null, as in the progress lines. */
	json_object_set_new(j, key,
	    json_pack("{s:s, s:I, s:I, s:o, s:o, s:b, s:b, s:I, s:I}", "phase",
		p.phase, "done", (json_int_t)p.done, "total",
		(json_int_t)p.total, "rate", cli_json_real(rate), "eta_s",
		eta >= 0 ? cli_json_real(eta) : json_null(), "finished",
		p.finished, "running", !p.finished && progress_alive(&p), "pid",
		(json_int_t)p.pid, "updated_ms", (json_int_t)p.updated_ms));
}

/* A run's lock released, its file removed once the incident is closed; a
 * file that stays is only untidy (the next run locks it as before). */
static void
run_unlock(const struct rf_incident_ctx *c, int64_t id, int fd)
{
	if (rf_incident_run_unlock(c, id, fd) != 0)
		rf_err_clear();
}

/* Contain's result as one JSON object (--json): counts, times, phases. */
static int
contain_json(int64_t id, const struct rf_contain_report *rep, json_t *notes)
{
	json_t *o, *ph;
	size_t i;

	if ((ph = json_array()) == NULL) {
		json_decref(notes);
		return cli_fail(RF_ERR_ALLOC);
	}
	for (i = 0; i < rep->nphase; i++)
		json_array_append_new(ph,
		    json_pack("{s:s, s:o}", "phase", rep->phase[i].name, "s",
			cli_json_real(rep->phase[i].s)));
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
		      "s:o, s:s, s:s, s:o, s:o}",
	    "incident", (json_int_t)id, "connections", (json_int_t)rep->total,
	    "revoked", (json_int_t)rep->revoked, "disabled",
	    (json_int_t)rep->disabled, "issued", (json_int_t)rep->issued,
	    "pooled", (json_int_t)rep->pooled, "reserved",
	    (json_int_t)rep->reserved, "generated",
	    (json_int_t)(rep->issued - rep->pooled - rep->reserved),
	    "destroyed", (json_int_t)rep->destroyed, "contain_s",
	    cli_json_real(rep->contain_s), "destroy_s",
	    cli_json_real(rep->destroy_s), "new_issuer", rep->new_issuer,
	    "tls_revoked", rep->tls_revoked, "contain_phases", ph, "pool_notes",
	    notes);
	return cli_json_print(o);
}

static int
status_cmd(struct rf_cli *cli, const struct rf_incident_ctx *c, int64_t id)
{
	struct rf_incident_status s;
	json_t *j, *g;
	int r, i;

	if ((r = rf_incident_status(c, id, &s)) != 0)
		return cli_fail(r);
	if (cli->json) {
		j = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I}",
		    "id", (json_int_t)s.id, "scope", s.scope, "reason",
		    s.reason, "state", s.state, "opened", (json_int_t)s.opened,
		    "contained", (json_int_t)s.contained, "closed",
		    (json_int_t)s.closed, "new_issuer", s.new_issuer,
		    "connections", (json_int_t)s.total);
		for (i = 0; j != NULL && i < RF_ITEM_NSTATES; i++)
			json_object_set_new(j, rf_item_state_name(i),
			    json_integer((json_int_t)s.counts[i]));
		if (j != NULL) {
			json_object_set_new(j, "sightings",
			    json_integer((json_int_t)s.sightings));
			json_object_set_new(j, "sightings_unacked",
			    json_integer((json_int_t)s.unacked));
			/* The newest ten, as the text shows them; the
			 * stragglers all (the text shows the first 20). */
			r = RF_ERR_ALLOC;
			if ((g = json_array()) == NULL ||
			    json_object_set_new(j, "sighting_list", g) != 0 ||
			    (r = rf_store_sighting_foreach(
				 c->st, id, 10, json_sighting, g)) != 0 ||
			    (r = json_stragglers(c, id, j)) != 0) {
				json_decref(j);
				return cli_fail(r);
			}
			progress_json(c, id, "contain", j);
			progress_json(c, id, "close", j);
		}
		return cli_json_print(j); /* one line, as every command's */
	}
	printf("incident %lld: %s (scope %s)\n", (long long)s.id, s.state,
	    s.scope);
	print_progress(c, id, "contain", strcmp(s.state, "closed") == 0);
	print_progress(c, id, "close", strcmp(s.state, "closed") == 0);
	printf("  reason: %s\n", s.reason);
	printf("  connections: %zu;", s.total);
	for (i = 0; i < RF_ITEM_NSTATES; i++)
		printf(" %s %zu%s", rf_item_state_name(i), s.counts[i],
		    i + 1 < RF_ITEM_NSTATES ? "," : "\n");
	if (s.new_issuer[0] != '\0')
		printf("  new issuing CA: %s\n", s.new_issuer);
	if (s.sightings > 0) {
		printf("  OCSP sightings: %zu (%zu of old credentials after "
		       "re-establishment, not acknowledged%s)\n",
		    s.sightings, s.unacked,
		    s.unacked > 0 && strcmp(s.state, "closed") != 0
			? ": look at them, then 'incident ack'"
			: "");
		if ((r = rf_store_sighting_foreach(
			 c->st, id, 10, print_sighting, NULL)) != 0)
			return cli_fail(r);
	}
	if (s.counts[RF_ITEM_AFFECTED] + s.counts[RF_ITEM_CONTAINED] > 0) {
		size_t shown = 0;

		printf("  stragglers:\n");
		if ((r = rf_incident_foreach(c, id, 1, print_conn, &shown)) !=
		    0)
			return cli_fail(r);
		if (shown > STRAGGLERS_SHOWN)
			printf("  ... and %zu more (--json, or 'incident "
			       "report')\n",
			    shown - STRAGGLERS_SHOWN);
	}
	return EXIT_OK;
}

/* incident list: a row, and its header (the same widths). */
#define LIST_ROW "%-6lld %-10s %-32s %s\n"
#define LIST_HEAD "%-6s %-10s %-32s %s\n"

static int
list_incident(void *arg, const struct rf_incident_rec *inc)
{
	json_t *arr = arg;

	if (arr != NULL)
		return json_array_append_new(arr,
			   json_pack("{s:I, s:s, s:s, s:s, s:I}", "id",
			       (json_int_t)inc->id, "scope", inc->scope,
			       "state", inc->state, "reason", inc->reason,
			       "opened", (json_int_t)inc->opened)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	printf(
	    LIST_ROW, (long long)inc->id, inc->state, inc->scope, inc->reason);
	return 0;
}

int
cmd_incident(struct rf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"scope", required_argument, NULL, 's'},
	    {"reason", required_argument, NULL, 'r'},
	    {"since", required_argument, NULL, 'S'},
	    {"tenant", required_argument, NULL, 't'},
	    {"all", no_argument, NULL, 'a'},
	    {"out", required_argument, NULL, 'o'},
	    {"waive", no_argument, NULL, 'w'},
	    {"connection", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *scope = NULL, *reason = NULL, *tenant = NULL, *outp = NULL;
	const char *conn = NULL;
	const char *sub;
	struct rf_incident_ctx c;
	struct rf_contain_report rep;
	struct rf_incident_status done_st;
	int64_t id = 0, since = 0;
	int ch, all = 0, waive = 0, r;
	size_t n;

	if (cli_wants_help(argc, argv) || argc < 2) {
		fputs(incident_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	sub = argv[1];
	optind = 2;
	opterr = 0; /* one line: ours, which names the option */
	while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			/* A usage error, as --since's: before any state. */
			if (rf_incident_scope_check(optarg) != 0)
				return cli_usage(
				    "incident", "%s", rf_err_msg(RF_ERR_ARG));
			scope = optarg;
			break;
		case 'r':
			/* A usage error, as --scope's: before any state. */
			if (rf_incident_reason_check(optarg) != 0)
				return cli_usage(
				    "incident", "%s", rf_err_msg(RF_ERR_ARG));
			reason = optarg;
			break;
		case 'S':
			if (parse_since(optarg, &since) != 0)
				return cli_usage("incident",
				    "--since '%.40s': give Unix seconds (e.g. "
				    "1764979200), a UTC time "
				    "YYYY-MM-DDTHH:MM:SSZ or a UTC date "
				    "YYYY-MM-DD, not in the future",
				    optarg);
			break;
		case 't':
			tenant = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'o':
			outp = optarg;
			break;
		case 'w':
			waive = 1;
			break;
		case 'c':
			conn = optarg;
			break;
		case ':':
			return cli_usage("incident",
			    "option '%.40s' needs a value", argv[optind - 1]);
		default:
			if (optopt != 0)
				return cli_usage("incident",
				    "unknown option '-%c' (an incident ID is a "
				    "positive number)",
				    optopt);
			return cli_usage("incident", "unknown option '%.40s'",
			    argv[optind - 1]);
		}
	}
	if (strcmp(sub, "open") != 0 && strcmp(sub, "list") != 0) {
		if (optind >= argc || parse_id(argv[optind], &id) != 0)
			return cli_usage("incident",
			    "'incident %s' needs an incident ID (a positive "
			    "number)",
			    sub);
		optind++;
	}
	if (optind < argc)
		return cli_usage(
		    "incident", "unexpected argument '%s'", argv[optind]);
	/*
	 * status and list read the store only: they must answer while a
	 * contain in another terminal keeps keyd busy making keys.
	 */
	if ((r = cli_open(cli,
		 strcmp(sub, "status") == 0 || strcmp(sub, "list") == 0
		     ? CLI_STORE
		     : CLI_ALL)) != 0)
		return cli_fail(r);
	ctx_init(cli, &c);

	if (strcmp(sub, "open") == 0) {
		if (scope == NULL || reason == NULL)
			return cli_usage("incident",
			    "open needs --scope SCOPE and --reason TEXT");
		if ((r = rf_incident_open(&c, scope, reason, since, &id)) != 0)
			return cli_fail(r);
		{
			struct rf_incident_status st;

			if ((r = rf_incident_status(&c, id, &st)) != 0)
				return cli_fail(r);
			printf("%lld\n", (long long)id);
			fprintf(stderr,
			    "ringfence: opened incident %lld on %s: %zu "
			    "connection%s, %llu signature%s by the keys in "
			    "scope; next: ringfence incident contain %lld\n",
			    (long long)id, st.scope, st.total,
			    st.total == 1 ? "" : "s",
			    (unsigned long long)st.signatures,
			    st.signatures == 1 ? "" : "s", (long long)id);
		}
		return EXIT_OK;
	}
	if (strcmp(sub, "contain") == 0 || strcmp(sub, "close") == 0) {
		char task[96], msg[1024];
		json_t *notes = NULL;
		size_t unused = 0, unacked = 0;
		int lock;

		/* One run of an incident at a time, before anything is taken
		 * or made (two contains burned the pool and stalled each
		 * other); held until the run has ended (run_unlock). Refused
		 * here, it ends as any failed run does: with --json, a failed
		 * line. */
		if ((r = rf_incident_run_lock(&c, id, &lock)) != 0) {
			rf_incident_task(id, sub, task);
			snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
			if (cli->json &&
			    rf_progress_new(
				task, RF_PROGRESS_JSON, &c.progress) == 0) {
				rf_progress_fail(c.progress);
				rf_progress_free(c.progress);
				c.progress = NULL;
			}
			return cli_fail(rf_err_set(r, "%s", msg));
		}
		if (strcmp(sub, "contain") == 0) {
			if (cli->json && (notes = json_array()) == NULL) {
				run_unlock(&c, id, lock);
				return cli_fail(RF_ERR_ALLOC);
			}
			pool_note(cli, id, notes);
		}
		rf_incident_task(id, sub, task);
		if ((r = rf_progress_new(task,
			 cli->json ? RF_PROGRESS_JSON : RF_PROGRESS_AUTO,
			 &c.progress)) != 0) {
			run_unlock(&c, id, lock);
			json_decref(notes);
			return cli_fail(r);
		}
		rf_progress_sink(c.progress, rf_incident_progress_sink, c.st);
		if (strcmp(sub, "contain") == 0)
			r = rf_incident_contain(&c, id, &rep);
		else
			r = rf_incident_close(&c, id, &unused, &unacked);
		/* The last progress write must not hide the error. */
		snprintf(msg, sizeof(msg), "%s", r != 0 ? rf_err_msg(r) : "");
		/*
		 * A run that failed or was refused is not finished: the store
		 * keeps what it last wrote (status: interrupted, run it again
		 * to resume), or nothing when it was refused before it began.
		 */
		if (r != 0) {
			rf_progress_sink(c.progress, NULL, NULL);
			rf_progress_fail(c.progress);
		} else {
			rf_progress_finish(c.progress);
		}
		rf_progress_free(c.progress);
		c.progress = NULL;
		run_unlock(&c, id, lock);
		if (r != 0) {
			json_decref(notes);
			return cli_fail(rf_err_set(r, "%s", msg));
		}
		if (strcmp(sub, "close") == 0) {
			if (cli->json)
				return cli_json_print(json_pack(
				    "{s:I, s:s, s:I, s:I}", "incident",
				    (json_int_t)id, "state", "closed",
				    "unused_keys_destroyed", (json_int_t)unused,
				    "sightings_unacked", (json_int_t)unacked));
			printf("incident %lld closed", (long long)id);
			if (unused > 0)
				printf("; %zu keys taken or generated for it "
				       "and never used destroyed in the token",
				    unused);
			if (unacked > 0)
				printf("; %zu OCSP queries for old credentials "
				       "after re-establishment were never "
				       "acknowledged ('incident status' lists "
				       "the newest)",
				    unacked);
			printf("\n");
			return EXIT_OK;
		}
		if (cli->json)
			return contain_json(id, &rep, notes);
		printf("incident %lld contained: %zu connection%s; %zu "
		       "revoked, %zu keys disabled, %zu new credentials, %zu "
		       "old keys destroyed%s%s%s\n",
		    (long long)id, rep.total, rep.total == 1 ? "" : "s",
		    rep.revoked, rep.disabled, rep.issued, rep.destroyed,
		    rep.new_issuer[0] ? "; new issuing CA " : "",
		    rep.new_issuer,
		    rep.issued < rep.total ? " by this run" : "");
		/* A rerun did only what was left, and waived connections get
		 * nothing: the incident's own count. */
		if (rep.issued < rep.total) {
			if (rf_incident_status(&c, id, &done_st) == 0)
				printf("in all: %zu of %zu connections have "
				       "their new credential, %zu are waived "
				       "('ringfence incident status %lld')\n",
				    done_st.counts[RF_ITEM_CONTAINED] +
					done_st.counts[RF_ITEM_REESTABLISHED] +
					done_st.counts[RF_ITEM_CLOSED],
				    done_st.total,
				    done_st.counts[RF_ITEM_WAIVED],
				    (long long)id);
			else
				rf_err_clear();
		}
		if (rep.issued > 0)
			printf("%zu new keys from the standby pool, %zu "
			       "generated%s%.0zu%s\n",
			    rep.pooled, rep.issued - rep.pooled - rep.reserved,
			    rep.reserved ? "; " : "", rep.reserved,
			    rep.reserved ? " reserved by an earlier run" : "");
		printf("contained in %.2f s; old keys destroyed in %.2f s "
		       "after that\n",
		    rep.contain_s, rep.destroy_s);
		if (rep.tls_revoked[0] != '\0')
			printf("serve's HTTPS certificate %s was issued by the "
			       "compromised CA: revoked, and replaced by one "
			       "of %s, which a running serve takes within a "
			       "second\n",
			    rep.tls_revoked, rep.new_issuer);
		return EXIT_OK;
	}
	if (strcmp(sub, "package") == 0) {
		if (tenant != NULL && all)
			return cli_usage("incident",
			    "package takes --tenant T or --all, not both");
		if (outp == NULL || (tenant == NULL && !all))
			return cli_usage("incident",
			    "package needs --out DIR and one of --tenant T or "
			    "--all");
		if ((r = rf_incident_package(&c, id, tenant, outp, &n)) != 0)
			return cli_fail(r);
		printf("wrote %zu connection packages under %s\n", n, outp);
		return EXIT_OK;
	}
	if (strcmp(sub, "confirm") == 0) {
		if (tenant != NULL && all)
			return cli_usage("incident",
			    "confirm takes --tenant T or --all, not both");
		if (tenant == NULL && !all)
			return cli_usage("incident",
			    "confirm needs one of --tenant T or --all");
		if (conn != NULL && tenant == NULL)
			return cli_usage("incident",
			    "--connection NAME names a connection of --tenant "
			    "T");
		if ((r = rf_incident_confirm(
			 &c, id, tenant, conn, waive, &n)) != 0)
			return cli_fail(r);
		if (n == 0 && conn != NULL)
			printf("connection %s/%s: already re-established, "
			       "waived or closed; nothing changed\n",
			    tenant, conn);
		else if (n == 0)
			printf("%s%s: every connection already re-established, "
			       "waived or closed; nothing changed\n",
			    tenant != NULL ? "tenant " : "incident",
			    tenant != NULL ? tenant : "");
		else if (conn != NULL)
			printf("connection %s/%s %s\n", tenant, conn,
			    waive ? "waived" : "re-established");
		else
			printf("%s %s %s\n",
			    tenant != NULL ? "tenant" : "every",
			    tenant != NULL ? tenant : "connection",
			    waive ? "waived" : "re-established");
		return EXIT_OK;
	}
	if (strcmp(sub, "status") == 0)
		return status_cmd(cli, &c, id);
	if (strcmp(sub, "report") == 0) {
		char md[1100], js[1100];
		FILE *fm, *fj;

		snprintf(md, sizeof(md), "%s.md",
		    outp != NULL ? outp : "incident-report");
		snprintf(js, sizeof(js), "%s.json",
		    outp != NULL ? outp : "incident-report");
		if ((fm = fopen(md, "w")) == NULL ||
		    (fj = fopen(js, "w")) == NULL) {
			if (fm != NULL)
				fclose(fm);
			return cli_fail(rf_err_set(
			    RF_ERR_IO, "cannot write %s / %s", md, js));
		}
		r = rf_incident_report(&c, id, fm, fj);
		fclose(fm);
		fclose(fj);
		if (r != 0)
			return cli_fail(r);
		printf("wrote %s and %s\n", md, js);
		return EXIT_OK;
	}
	if (strcmp(sub, "ack") == 0) {
		if ((r = rf_incident_ack(&c, id, &n)) != 0)
			return cli_fail(r);
		printf("%zu sightings acknowledged\n", n);
		return EXIT_OK;
	}
	if (strcmp(sub, "list") == 0) {
		json_t *arr = cli->json ? json_array() : NULL;

		if (cli->json && arr == NULL)
			return cli_fail(RF_ERR_ALLOC);
		if (!cli->json)
			printf(LIST_HEAD, "ID", "STATE", "SCOPE", "REASON");
		if ((r = rf_store_incident_foreach(
			 cli->store, list_incident, arr)) != 0) {
			json_decref(arr);
			return cli_fail(r);
		}
		/* One line, compact, as every command's JSON. */
		return arr != NULL ? cli_json_print(arr) : EXIT_OK;
	}
	return cli_usage("incident", "unknown subcommand '%s'", sub);
}

/* connection list: a row, and its header (the same widths). */
#define CONN_ROW "%-24s %-16s %-7s %s\n"

static int
print_connection(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	json_t *arr = arg;

	(void)cur;
	if (arr != NULL)
		return json_array_append_new(arr,
			   json_pack("{s:s, s:s, s:s, s:s, s:s}", "tenant",
			       conn->tenant, "name", conn->name,
			       "relying_party", conn->rp, "serial",
			       conn->serial, "previous", conn->previous)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	printf(CONN_ROW, conn->tenant, conn->name, conn->rp,
	    conn->serial[0] ? conn->serial : "-");
	return 0;
}

/*
 * connection add of a connection that exists changes nothing: its
 * relying-party kind decides what incident packages tell the tenant, so
 * it is never changed behind a second add. The same kind again is no
 * error; another kind is refused.
 */
static int
conn_exists(const struct rf_conn_rec *c, const char *rp)
{
	char has[320];

	if (c->serial[0] != '\0')
		snprintf(has, sizeof(has),
		    "see 'ringfence connection list --tenant %s'", c->tenant);
	else
		snprintf(has, sizeof(has),
		    "it has no credential yet ('ringfence issue --tenant %s "
		    "--connection %s')",
		    c->tenant, c->name);
	if (strcmp(c->rp, rp) == 0) {
		printf("connection %s/%s exists (relying party %s): nothing "
		       "changed\n",
		    c->tenant, c->name, c->rp);
		return EXIT_OK;
	}
	return cli_fail(rf_err_set(RF_ERR_EXISTS,
	    "connection %s/%s exists (relying party %s): not changed to %s; "
	    "%s",
	    c->tenant, c->name, c->rp, rp, has));
}

int
cmd_connection(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_conn_filter f;
	struct rf_conn_rec old;
	struct rf_tenant t;
	const char *rp = "ocsp";
	json_t *arr;
	int r, i;

	if (cli_wants_help(argc, argv) || argc < 2) {
		fputs(connection_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if ((r = cli_open(cli, CLI_STORE)) != 0)
		return cli_fail(r);
	memset(&f, 0, sizeof(f));
	if (strcmp(argv[1], "add") == 0) {
		if (argc < 4)
			return cli_usage(
			    "connection", "add needs TENANT and NAME");
		for (i = 4; i < argc; i++) {
			if (strcmp(argv[i], "--rp") == 0 && i + 1 < argc)
				rp = argv[++i];
			else
				return cli_usage("connection",
				    "unexpected argument '%s'", argv[i]);
		}
		if (strcmp(rp, "ocsp") != 0 && strcmp(rp, "pinned") != 0)
			return cli_usage("connection",
			    "--rp is ocsp or pinned, not '%s'", rp);
		if ((r = rf_store_tenant_get(cli->store, argv[2], &t)) != 0)
			return cli_fail(r == RF_ERR_NOT_FOUND
				? rf_err_set(r,
				      "unknown tenant %s: add it with "
				      "'ringfence tenant add %s'",
				      argv[2], argv[2])
				: r);
		if ((r = rf_ca_conn_name_check(argv[3])) != 0)
			return cli_fail(r);
		r = rf_store_conn_add(
		    cli->store, argv[2], argv[3], rp, rf_now(), &old);
		if (r == RF_ERR_EXISTS)
			return conn_exists(&old, rp);
		if (r != 0)
			return cli_fail(r);
		printf("connection %s/%s (%s)\n", argv[2], argv[3], rp);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "list") == 0) {
		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
				f.tenant = argv[++i];
			else
				return cli_usage("connection",
				    "unexpected argument '%s'", argv[i]);
		}
		arr = cli->json ? json_array() : NULL;
		if (cli->json && arr == NULL)
			return cli_fail(RF_ERR_ALLOC);
		if (!cli->json)
			printf(CONN_ROW, "TENANT", "NAME", "RP", "SERIAL");
		if ((r = rf_store_conn_foreach(
			 cli->store, &f, print_connection, arr)) != 0) {
			json_decref(arr);
			return cli_fail(r);
		}
		/* One line, compact, as every command's JSON. */
		return arr != NULL ? cli_json_print(arr) : EXIT_OK;
	}
	return cli_usage("connection", "unknown subcommand '%s'", argv[1]);
}
