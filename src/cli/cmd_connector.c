/*
 * cmd_connector.c: `ringfence connector`: connector identities (a TLS
 * client certificate from a CSR made on the connector's host), bindings to
 * tenant connections, and the Entra registration of a connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/file.h"
#include "common/keyident.h"
#include "connector/connector.h"
#include "revoke/revoke.h"
#include "store/store_incident.h"

static const char connector_help[] =
    "usage: ringfence connector add NAME [--csr FILE] [--out FILE]\n"
    "       ringfence connector enroll NAME --csr FILE [--out FILE]\n"
    "       ringfence connector bind NAME TENANT/CONNECTION...\n"
    "       ringfence connector list [--json]\n"
    "       ringfence connector show NAME [--json]\n"
    "       ringfence connector revoke NAME\n"
    "       ringfence connector entra TENANT/CONNECTION --tenant-id GUID\n"
    "                 --client-id GUID\n"
    "A connector authenticates to serve's TLS port with a client\n"
    "certificate issued from a CSR made on its own host (valid\n"
    "connector_days, default 7; renewed through POST\n"
    "/v1/connector/renew). It gets JWT client assertions only for the\n"
    "connections it is bound to. 'entra' registers a connection of kind\n"
    "entra: the customer's directory (tenant) id and the application\n"
    "(client) id; its keys are RSA (entra_key_alg) and its assertions\n"
    "PS256 (entra_jwt_alg). See docs/connectors.md.\n";

/* Each subcommand's operands (its options aside), as its usage line
 * above names them, and how many it takes. */
static const struct sub {
	const char *name, *operands;
	int min, max;
} subs[] = {
    {"add", "NAME", 1, 1},
    {"enroll", "NAME", 1, 1},
    {"bind", "NAME TENANT/CONNECTION...", 2, INT_MAX},
    {"list", "", 0, 0},
    {"show", "NAME", 1, 1},
    {"revoke", "NAME", 1, 1},
    {"entra", "TENANT/CONNECTION", 1, 1},
};

/* The usage error of a subcommand given argc operands, too few or too
 * many: its usage and what is missing, or the first one too many. */
static int
operands_usage(const struct sub *s, int argc, char **argv)
{
	const char *missing = s->operands;
	int i;

	if (argc > s->max)
		return cli_usage("connector",
		    "usage: ringfence connector %s%s%s: unexpected argument "
		    "'%.40s'",
		    s->name, *s->operands != '\0' ? " " : "", s->operands,
		    argv[s->max]);
	/* argc < min: the operands from the first not given. */
	for (i = 0; i < argc; i++)
		missing = strchr(missing, ' ') + 1;
	return cli_usage("connector",
	    "usage: ringfence connector %s %s: missing %s", s->name,
	    s->operands, missing);
}

/* getopt_long over argv[1..] (argv[0] is the subcommand). */
static int
opts(int argc, char **argv, const char **csr, const char **out,
    const char **tid, const char **cid)
{
	static const struct option lo[] = {
	    {"csr", required_argument, NULL, 'c'},
	    {"out", required_argument, NULL, 'o'},
	    {"tenant-id", required_argument, NULL, 't'},
	    {"client-id", required_argument, NULL, 'i'},
	    {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			*csr = optarg;
			break;
		case 'o':
			*out = optarg;
			break;
		case 't':
			*tid = optarg;
			break;
		case 'i':
			*cid = optarg;
			break;
		case 'j':
			break;
		default:
			return cli_usage("connector", "unknown option %.60s",
			    argv[optind - 1]);
		}
	}
	return 0;
}

/*
 * An existing connector, said with what to do. RF_ERR_STATE, not
 * RF_ERR_EXISTS: inside an issuance that means a serial collision, which
 * the CA tries again.
 */
static int
connector_exists(const char *name, const char *state)
{
	if (strcmp(state, "active") != 0)
		return rf_err_set(RF_ERR_STATE,
		    "connector %s exists and is %s: choose another name", name,
		    state);
	return rf_err_set(RF_ERR_STATE,
	    "connector %s exists: give it a certificate with 'ringfence "
	    "connector enroll %s --csr FILE' (see 'ringfence connector show "
	    "%s')",
	    name, name, name);
}

/*
 * The connector NAME, which must be active: a revoked one is revoked for
 * good (nothing un-revokes it), so the error says what to do instead.
 */
static int
connector_active(struct rf_cli *cli, const char *name)
{
	struct rf_connector_rec c;
	int r;

	if ((r = rf_store_connector_get(cli->store, name, &c)) != 0)
		return r;
	if (strcmp(c.state, "active") != 0)
		return rf_err_set(RF_ERR_STATE,
		    "connector %s is %s, for good: add a connector under "
		    "another name (ringfence connector add NAME --csr FILE)",
		    name, c.state);
	return 0;
}

/* A connector's certificates are issued under a tenant of its own. */
static int
own_tenant(struct rf_cli *cli, const char *tenant)
{
	int r;

	if ((r = rf_ca_tenant_add(cli->ca, tenant, &cli->who)) ==
	    RF_ERR_EXISTS) {
		rf_err_clear();
		r = 0;
	}
	return r;
}

/*
 * What issuance checks of a connector's CSR, before anything is made: the
 * request (rf_ca_csr_parse) and its key, never a compromised one nor one
 * serving another tenant's connection (rf_store_key_admit).
 */
static int
csr_admit(struct rf_cli *cli, const char *tenant, const char *path,
    const uint8_t *csr, size_t len)
{
	char ident[RF_KEY_IDENT_LEN + 1], msg[512];
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	int r;

	if ((r = rf_ca_csr_parse(
		 csr, len, RF_PROFILE_CONNECTOR, NULL, &spki, &spkilen)) == 0 &&
	    (r = rf_key_ident_spki(spki, spkilen, ident)) == 0)
		r = rf_store_key_admit(cli->store, ident, tenant, NULL);
	free(spki);
	if (r != 0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		r = rf_err_set(r, "CSR %s: %s", path, msg);
	}
	return r;
}

struct enroll_link {
	struct rf_store *st;
	const char *name;
	int create; /* the connector is added with its first certificate */
};

static int
enroll_hook(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct enroll_link *l = arg;
	int r;

	(void)i;
	(void)key_id;
	if (l->create &&
	    (r = rf_store_connector_add(l->st, l->name, rf_now())) != 0)
		return r == RF_ERR_EXISTS ? connector_exists(l->name, "active")
					  : r;
	return rf_store_connector_cert_add(l->st, serial, l->name, rf_now());
}

/*
 * Issue the connector's TLS client certificate (the CA's connector
 * profile) from its CSR; with create, the connector is added in the same
 * transaction. --out and the CSR are checked first: a failure leaves
 * nothing made.
 */
static int
enroll(struct rf_cli *cli, const char *name, const char *csr, const char *out,
    int create)
{
	struct rf_issue_req req;
	struct rf_issued is;
	struct enroll_link link;
	char tenant[128], msg[512];
	const char *base = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int dirfd = -1, r;

	memset(&is, 0, sizeof(is));
	rf_connector_tenant(name, tenant);
	if (out != NULL && (r = cli_out_file_open(out, &dirfd, &base)) != 0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		r = rf_err_set(r, "--out %s: %s: nothing was issued", out, msg);
		goto out;
	}
	if ((r = rf_read_file(csr, RF_CSR_MAX, &buf, &len)) != 0) {
		if (r == RF_ERR_TOO_LARGE)
			r = rf_err_set(r, "CSR %s is larger than %d bytes", csr,
			    RF_CSR_MAX);
		goto out;
	}
	if ((r = csr_admit(cli, tenant, csr, buf, len)) != 0 ||
	    (create && (r = own_tenant(cli, tenant)) != 0))
		goto out;
	memset(&req, 0, sizeof(req));
	req.tenant = tenant;
	req.profile = RF_PROFILE_CONNECTOR;
	req.csr = buf;
	req.csrlen = len;
	req.days = cli->cfg.connector_days;
	link.st = cli->store;
	link.name = name;
	link.create = create;
	if ((r = rf_ca_issue_ex(
		 cli->ca, &req, 1, &cli->who, &is, enroll_hook, &link)) != 0)
		goto out;
	if (out != NULL &&
	    (r = rf_file_write_at(dirfd, base, (const uint8_t *)is.chain_pem,
		 strlen(is.chain_pem), 0644)) != 0) {
		/* Checked before; a full disk may still fail it now. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		r = rf_err_set(r,
		    "%s: connector %s has certificate %s; 'ringfence cert "
		    "show %s' prints it",
		    msg, name, is.serial, is.serial);
		goto out;
	}
	if (out == NULL)
		fputs(is.chain_pem, stdout);
	fprintf(out != NULL ? stdout : stderr,
	    "connector %s: certificate %s, valid %d days\n", name, is.serial,
	    cli->cfg.connector_days);
out:
	if (dirfd >= 0)
		close(dirfd);
	rf_issued_clear(&is);
	free(buf);
	return r != 0 ? cli_fail(r) : EXIT_OK;
}

static int
do_add(struct rf_cli *cli, const char *name, const char *csr, const char *out)
{
	struct rf_connector_rec c;
	char tenant[128];
	int r;

	if ((r = rf_connector_name_check(name)) != 0)
		return cli_fail(r);
	if (out != NULL && csr == NULL)
		return cli_usage("connector", "add: --out needs --csr FILE");
	if ((r = cli_open(cli, CLI_ALL)) != 0)
		return cli_fail(r);
	if ((r = rf_store_connector_get(cli->store, name, &c)) !=
	    RF_ERR_NOT_FOUND)
		return cli_fail(r == 0 ? connector_exists(name, c.state) : r);
	rf_err_clear();
	if (csr != NULL)
		return enroll(cli, name, csr, out, 1);
	rf_connector_tenant(name, tenant);
	if ((r = own_tenant(cli, tenant)) != 0)
		return cli_fail(r);
	if ((r = rf_store_connector_add(cli->store, name, rf_now())) != 0)
		return cli_fail(
		    r == RF_ERR_EXISTS ? connector_exists(name, "active") : r);
	printf("connector %s added: enroll it with 'ringfence "
	       "connector enroll %s --csr FILE'\n",
	    name, name);
	return EXIT_OK;
}

/* TENANT/CONNECTION into its parts. */
static int
split_conn(const char *s, char tenant[128], char conn[64])
{
	const char *sl = strchr(s, '/');

	if (sl == NULL)
		return rf_err_set(RF_ERR_ARG,
		    "'%.80s': give a connection as TENANT/CONNECTION", s);
	if ((size_t)(sl - s) > 64 || strlen(sl + 1) > RF_CONN_NAME_MAX)
		return rf_err_set(RF_ERR_ARG,
		    "'%.80s': TENANT is 1-64 characters and CONNECTION 1-%d", s,
		    RF_CONN_NAME_MAX);
	memcpy(tenant, s, (size_t)(sl - s));
	tenant[sl - s] = '\0';
	snprintf(conn, 64, "%s", sl + 1);
	if (rf_ca_tenant_name_check(tenant) != 0 ||
	    rf_ca_conn_name_check(conn) != 0)
		return rf_err_set(RF_ERR_ARG,
		    "'%.80s': TENANT (1-64) and CONNECTION (1-%d) are "
		    "characters of A-Z a-z 0-9 . _ -",
		    s, RF_CONN_NAME_MAX);
	return 0;
}

/* conns[i] is named earlier in conns too. */
static int
named_before(char **conns, int i)
{
	int j;

	for (j = 0; j < i; j++)
		if (strcmp(conns[j], conns[i]) == 0)
			return 1;
	return 0;
}

static int
do_bind(struct rf_cli *cli, const char *name, int n, char **conns)
{
	struct rf_conn_rec cr;
	struct rf_audit_event ev;
	char tenant[128], conn[64], detail[256], was[512] = "";
	int i, r, added = 0;

	if ((r = cli_open(cli, CLI_AUDIT | CLI_KEYS)) != 0 ||
	    (r = connector_active(cli, name)) != 0)
		return cli_fail(r);
	/*
	 * keyd's ledger first, outside the store's transaction (keyd writes
	 * the record, and a transaction held while waiting for keyd would
	 * hold it up): keyd signs for a binding only when both say it
	 * (docs/keys.md, "What the policy trusts"). Every connection is
	 * checked before any is noted.
	 */
	for (i = 0; i < n; i++) {
		if ((r = split_conn(conns[i], tenant, conn)) != 0)
			return cli_fail(r);
		if ((r = rf_store_conn_get(cli->store, tenant, conn, &cr)) != 0)
			return cli_fail(rf_err_set(r,
			    "no connection %s/%s: register it with "
			    "'ringfence connector entra %s/%s ...'",
			    tenant, conn, tenant, conn));
	}
	for (i = 0; i < n; i++) {
		if ((r = split_conn(conns[i], tenant, conn)) != 0)
			return cli_fail(r);
		if ((r = rf_keys_note(
			 cli->keys, RF_KNOTE_BIND, name, tenant, conn)) != 0)
			return cli_fail(r);
	}
	if ((r = rf_store_begin(cli->store)) != 0)
		return cli_fail(r);
	for (i = 0; i < n; i++) {
		if ((r = split_conn(conns[i], tenant, conn)) != 0)
			goto fail;
		if (named_before(conns, i))
			continue;
		/* Bound already: nothing to write. */
		if ((r = rf_store_binding_get(
			 cli->store, name, tenant, conn)) == 0) {
			snprintf(was + strlen(was), sizeof(was) - strlen(was),
			    "%s%s/%s", was[0] != '\0' ? ", " : "", tenant,
			    conn);
			continue;
		}
		if (r != RF_ERR_NOT_FOUND)
			goto fail;
		rf_err_clear();
		snprintf(detail, sizeof(detail), "bind connector %s to %s/%s",
		    name, tenant, conn);
		memset(&ev, 0, sizeof(ev));
		ev.type = "bind";
		ev.tenant = tenant;
		ev.actor = cli->who.actor;
		ev.source = cli->who.source;
		ev.detail = detail;
		if ((r = rf_store_binding_add(
			 cli->store, name, tenant, conn, rf_now())) != 0 ||
		    (r = rf_audit_append(cli->audit, &ev, 1, NULL)) != 0)
			goto fail;
		added++;
	}
	if ((r = rf_store_commit(cli->store)) != 0)
		return cli_fail(r);
	if (added == 0)
		printf("connector %s: already bound to %s; nothing changed\n",
		    name, was);
	else
		printf("connector %s bound to %d more connection%s%s%s%s\n",
		    name, added, added == 1 ? "" : "s",
		    was[0] != '\0' ? " (already bound to " : "", was,
		    was[0] != '\0' ? ")" : "");
	return EXIT_OK;
fail:
	rf_store_rollback(cli->store);
	return cli_fail(r);
}

/* connector list: a row, and its header (the same widths). */
#define CONNECTOR_ROW "%-24s %s\n"

/* Times in listings, text and JSON, are ISO 8601 UTC (rf_iso_time), as
 * cert list gives them. */
static int
list_one(void *arg, const struct rf_connector_rec *c)
{
	json_t *arr = arg;
	char created[32];

	rf_iso_time(c->created, created);
	if (arr != NULL)
		return json_array_append_new(arr,
			   json_pack("{s:s,s:s,s:s}", "name", c->name, "state",
			       c->state, "created", created)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	printf(CONNECTOR_ROW, c->name, c->state);
	return 0;
}

struct show {
	struct rf_store *st;
	json_t *certs, *binds;
};

static int
show_cert(void *arg, const char *serial)
{
	struct show *s = arg;
	struct rf_cert_rec c;
	const char *status;
	char na[32];
	int r;

	memset(&c, 0, sizeof(c));
	if ((r = rf_store_cert_get(s->st, serial, &c)) != 0)
		return r;
	status = c.revoked	     ? "revoked"
	    : c.not_after < rf_now() ? "expired"
				     : "valid";
	rf_iso_time(c.not_after, na);
	if (s->certs != NULL)
		r = json_array_append_new(s->certs,
			json_pack("{s:s,s:s,s:s}", "serial", serial,
			    "not_after", na, "status", status)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	else
		printf(
		    "  certificate %s %s (not after %s)\n", serial, status, na);
	rf_cert_rec_clear(&c);
	return r;
}

static int
show_bind(void *arg, const char *tenant, const char *conn)
{
	struct show *s = arg;
	char b[200];

	snprintf(b, sizeof(b), "%s/%s", tenant, conn);
	if (s->binds != NULL)
		return json_array_append_new(s->binds, json_string(b)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	printf("  bound %s\n", b);
	return 0;
}

static int
do_show(struct rf_cli *cli, const char *name)
{
	struct rf_connector_rec c;
	struct show s;
	json_t *j;
	int r;

	if ((r = cli_open(cli, CLI_STORE)) != 0 ||
	    (r = rf_store_connector_get(cli->store, name, &c)) != 0)
		return cli_fail(r);
	memset(&s, 0, sizeof(s));
	s.st = cli->store;
	if (cli->json) {
		s.certs = json_array();
		s.binds = json_array();
	} else
		printf("connector %s %s\n", c.name, c.state);
	if ((r = rf_store_connector_cert_foreach(
		 cli->store, name, show_cert, &s)) != 0 ||
	    (r = rf_store_binding_foreach(cli->store, name, show_bind, &s)) !=
		0) {
		json_decref(s.certs);
		json_decref(s.binds);
		return cli_fail(r);
	}
	if (cli->json) {
		j = json_pack("{s:s,s:s,s:o,s:o}", "name", c.name, "state",
		    c.state, "certificates", s.certs, "bindings", s.binds);
		return cli_json_print(j); /* NULL: out of memory, exit 1 */
	}
	return EXIT_OK;
}

static int
count_unrevoked(void *arg, const struct rf_cert_rec *c)
{
	*(size_t *)arg += !c->revoked;
	return 0;
}

static int
do_revoke(struct rf_cli *cli, const char *name)
{
	struct rf_connector_rec c;
	struct rf_revoke_req req;
	struct rf_cert_filter f;
	char tenant[128];
	size_t n = 0, live = 0;
	int r, was;

	if ((r = cli_open(cli, CLI_ALL)) != 0 ||
	    (r = rf_store_connector_get(cli->store, name, &c)) != 0)
		return cli_fail(r);
	rf_connector_tenant(name, tenant);
	/* Revoked already: in keyd's ledger too (it is told first, below).
	 * Certificates a run cut short left unrevoked are revoked now; with
	 * none, nothing is done. */
	if ((was = strcmp(c.state, "revoked") == 0)) {
		memset(&f, 0, sizeof(f));
		f.tenant = tenant;
		if ((r = rf_store_cert_foreach(
			 cli->store, &f, count_unrevoked, &live)) != 0)
			return cli_fail(r);
		if (live == 0) {
			printf("connector %s is already revoked, and so are "
			       "its certificates; nothing changed\n",
			    name);
			return EXIT_OK;
		}
	}
	/* First the connector, in keyd's ledger and then in the store:
	 * nothing is signed for it from here on. */
	if (!was &&
	    ((r = rf_keys_note(cli->keys, RF_KNOTE_REVOKE, name, NULL, NULL)) !=
		    0 ||
		(r = rf_store_connector_set_state(
		     cli->store, name, "revoked")) != 0))
		return cli_fail(r);
	memset(&req, 0, sizeof(req));
	req.tenant = tenant;
	req.reason = RF_CRL_REASON_KEY_COMPROMISE;
	r = rf_revoke(&cli->cfg, cli->store, cli->keys, cli->ca, cli->audit,
	    &req, &cli->who, &n);
	if (r != 0 && r != RF_ERR_NOT_FOUND)
		return cli_fail(r);
	if (was)
		printf("connector %s is already revoked; %zu more "
		       "certificate%s revoked now\n",
		    name, n, n == 1 ? "" : "s");
	else
		printf("connector %s revoked (%zu certificate%s)\n", name, n,
		    n == 1 ? "" : "s");
	return EXIT_OK;
}

/* " NAME OLD -> NEW" for a field a registration changed, onto buf. */
static void
changed_field(
    char *buf, size_t size, const char *name, const char *old, const char *new)
{
	size_t l = strlen(buf);

	if (strcmp(old, new) != 0)
		snprintf(buf + l, size - l, "%s %s %s -> %s", l > 0 ? "," : "",
		    name, old, new);
}

static int
do_entra(
    struct rf_cli *cli, const char *which, const char *tid, const char *cid)
{
	struct rf_entra_change chg;
	const struct rf_entra_rec *reg = &chg.cur;
	char tenant[128], conn[64], what[400] = "";
	int r;

	if (tid == NULL || cid == NULL)
		return cli_usage(
		    "connector", "entra needs --tenant-id and --client-id");
	if ((r = split_conn(which, tenant, conn)) != 0)
		return cli_fail(r);
	if ((r = cli_open(cli, CLI_AUDIT)) != 0 ||
	    (r = rf_connector_entra_register(&cli->cfg, cli->store, cli->audit,
		 tenant, conn, tid, cid, &cli->who, &chg)) != 0)
		return cli_fail(r);
	if (!chg.changed) {
		printf("connection %s/%s: already registered (tenant id %s, "
		       "client id %s); nothing changed\n",
		    tenant, conn, reg->tenant_id, reg->client_id);
		return EXIT_OK;
	}
	if (chg.had) {
		changed_field(what, sizeof(what), "tenant id",
		    chg.prev.tenant_id, reg->tenant_id);
		changed_field(what, sizeof(what), "client id",
		    chg.prev.client_id, reg->client_id);
		changed_field(
		    what, sizeof(what), "key", chg.prev.key_alg, reg->key_alg);
		changed_field(what, sizeof(what), "assertions",
		    chg.prev.jwt_alg, reg->jwt_alg);
		printf("connection %s/%s: registration changed:%s", tenant,
		    conn, what);
	} else
		printf("connection %s/%s: kind entra, %s keys, %s assertions",
		    tenant, conn, reg->key_alg, reg->jwt_alg);
	if (chg.cred[0] != '\0')
		printf("; its credential %s must be registered on application "
		       "%s in directory %s ('ringfence cert show %s' prints "
		       "it)\n",
		    chg.cred, reg->client_id, reg->tenant_id, chg.cred);
	else
		printf("; issue its credential with 'ringfence issue --tenant "
		       "%s --connection %s --profile assertion --keygen %s'\n",
		    tenant, conn, reg->key_alg);
	return EXIT_OK;
}

int
cmd_connector(struct rf_cli *cli, int argc, char **argv)
{
	const char *csr = NULL, *out = NULL, *tid = NULL, *cid = NULL, *sub;
	const struct sub *sb;
	json_t *arr = NULL;
	int r;

	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(connector_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	sub = argv[1];
	argc--;
	argv++;
	if ((r = opts(argc, argv, &csr, &out, &tid, &cid)) != 0)
		return r;
	argc -= optind;
	argv += optind;
	for (sb = subs; sb < subs + sizeof(subs) / sizeof(subs[0]) &&
	     strcmp(sb->name, sub) != 0;
	     sb++)
		;
	if (sb == subs + sizeof(subs) / sizeof(subs[0]))
		return cli_usage("connector",
		    "unknown subcommand '%.40s': use add, enroll, bind, list, "
		    "show, revoke or entra",
		    sub);
	if (argc < sb->min || argc > sb->max)
		return operands_usage(sb, argc, argv);
	if (strcmp(sub, "add") == 0)
		return do_add(cli, argv[0], csr, out);
	if (strcmp(sub, "enroll") == 0) {
		if (csr == NULL)
			return cli_usage(
			    "connector", "enroll needs --csr FILE");
		if ((r = cli_open(cli, CLI_ALL)) != 0 ||
		    (r = connector_active(cli, argv[0])) != 0)
			return cli_fail(r);
		return enroll(cli, argv[0], csr, out, 0);
	}
	if (strcmp(sub, "bind") == 0)
		return do_bind(cli, argv[0], argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0) {
		if ((r = cli_open(cli, CLI_STORE)) != 0)
			return cli_fail(r);
		if (cli->json && (arr = json_array()) == NULL)
			return cli_fail(RF_ERR_ALLOC);
		if (!cli->json)
			printf(CONNECTOR_ROW, "NAME", "STATE");
		if ((r = rf_store_connector_foreach(
			 cli->store, list_one, cli->json ? arr : NULL)) != 0) {
			json_decref(arr);
			return cli_fail(r);
		}
		return cli->json ? cli_json_print(arr) : EXIT_OK;
	}
	if (strcmp(sub, "show") == 0)
		return do_show(cli, argv[0]);
	if (strcmp(sub, "revoke") == 0)
		return do_revoke(cli, argv[0]);
	return do_entra(cli, argv[0], tid, cid); /* the table's last */
}
