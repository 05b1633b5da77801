/*
 * cmd_ca.c: `ringfence tenant`, `ringfence issue` and `ringfence cert`.
 *
 * Output: human-readable lines on stdout, or one JSON value with --json.
 * `issue` prints the PEM chain on stdout and its metadata on stderr (so
 * that `ringfence issue ... > chain.pem` keeps both apart), or the
 * metadata on stdout when the chain goes to --out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "revoke/revoke.h"
#include "store/store_incident.h"

struct opt {
	const char *name; /* without the leading "--" */
	const char **val; /* for options with a value */
	int *flag;	  /* for flags */
};

/*
 * Parse argv[start..] into opts and positional arguments. Accepts
 * "--name value", "--name=value" and flags. Usage errors print one line
 * and return EXIT_USAGE; 0 otherwise.
 */
static int
parse_opts(struct rf_cli *cli, const char *cmd, int argc, char **argv,
    int start, const struct opt *opts, const char **pos, int maxpos, int *npos)
{
	const char *a, *eq;
	size_t nl;
	int i, k;

	*npos = 0;
	for (i = start; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--json") == 0) {
			cli->json = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (*npos >= maxpos)
				return cli_usage(cmd,
				    "unexpected argument "
				    "\"%.60s\"",
				    a);
			pos[(*npos)++] = a;
			continue;
		}
		eq = strchr(a + 2, '=');
		nl = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		for (k = 0; opts != NULL && opts[k].name != NULL; k++)
			if (strlen(opts[k].name) == nl &&
			    strncmp(opts[k].name, a + 2, nl) == 0)
				break;
		if (opts == NULL || opts[k].name == NULL)
			return cli_usage(cmd, "unknown option %.60s", a);
		if (opts[k].flag != NULL) {
			if (eq != NULL)
				return cli_usage(
				    cmd, "--%s takes no value", opts[k].name);
			*opts[k].flag = 1;
			continue;
		}
		if (eq != NULL)
			*opts[k].val = eq + 1;
		else if (i + 1 < argc)
			*opts[k].val = argv[++i];
		else
			return cli_usage(
			    cmd, "--%s needs a value", opts[k].name);
	}
	return 0;
}

/* cli_open's result as an exit code (it may return an RF_ERR code). */
static int
open_what(struct rf_cli *cli, int what)
{
	int r = cli_open(cli, what);

	if (r == 0) {
		if (cli->ca != NULL && cli->audit != NULL)
			rf_ca_set_audit(cli->ca, cli->audit);
		return 0;
	}
	return r < 0 ? cli_fail(r) : r;
}

static void
iso_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

static const char *
cert_status(const struct rf_cert_rec *c)
{
	if (c->revoked)
		return "revoked";
	if (c->not_after < rf_now())
		return "expired";
	return "valid";
}

static int
json_print(json_t *j)
{
	char *s;

	if (j == NULL)
		return cli_fail(RF_ERR_ALLOC);
	s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	if (s == NULL)
		return cli_fail(RF_ERR_ALLOC);
	printf("%s\n", s);
	free(s);
	return EXIT_OK;
}

static char *
der_to_pem(const uint8_t *der, size_t len)
{
	char *pem;

	if ((pem = malloc(rf_ca_pem_len(len) + 1)) == NULL)
		return NULL;
	rf_ca_pem_write(der, len, pem);
	return pem;
}

/* ------------------------------------------------------------------ */
/* tenant                                                             */

static const char tenant_usage[] =
    "usage: ringfence tenant add NAME\n"
    "       ringfence tenant list [--json]\n"
    "       ringfence tenant show NAME [--json]\n"
    "A tenant name is 1-64 characters of A-Z a-z 0-9 . _ -\n";

struct cert_list {
	json_t *arr; /* NULL: print lines */
	size_t n;
};

static int
cert_row(void *arg, const struct rf_cert_rec *c)
{
	struct cert_list *l = arg;
	char na[32];

	iso_time(c->not_after, na);
	l->n++;
	if (l->arr != NULL)
		return json_array_append_new(l->arr,
			   json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "serial",
			       c->serial, "tenant", c->tenant, "profile",
			       c->profile, "status", cert_status(c),
			       "not_after", na, "key_id", c->key_id)) == 0
		    ? 0
		    : RF_ERR_ALLOC;
	printf("%s  %-9s  %-7s  %s  %s\n", c->serial, c->profile,
	    cert_status(c), na, c->tenant);
	return 0;
}

static int
tenant_show(struct rf_cli *cli, const char *name)
{
	struct rf_tenant t;
	struct rf_cert_filter f;
	struct cert_list l = {NULL, 0};
	char created[32];
	json_t *j = NULL;
	int r;

	if ((r = rf_store_tenant_get(cli->store, name, &t)) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(r,
			    "unknown tenant %s: add it with "
			    "'ringfence tenant add %s'",
			    name, name);
		return cli_fail(r);
	}
	iso_time(t.created, created);
	memset(&f, 0, sizeof(f));
	f.tenant = name;
	if (cli->json) {
		if ((l.arr = json_array()) == NULL)
			return cli_fail(RF_ERR_ALLOC);
	} else
		printf("tenant %s (created %s)\n", t.name, created);
	if ((r = rf_store_cert_foreach(cli->store, &f, cert_row, &l)) != 0) {
		json_decref(l.arr);
		return cli_fail(r);
	}
	if (!cli->json) {
		if (l.n == 0)
			printf("no certificates\n");
		return EXIT_OK;
	}
	j = json_pack("{s:s,s:s,s:o}", "name", t.name, "created", created,
	    "certificates", l.arr);
	return json_print(j);
}

int
cmd_tenant(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_tenant *ts = NULL;
	const char *pos[2];
	char created[32];
	json_t *arr;
	size_t n = 0, i;
	int npos, r;

	if (cli_wants_help(argc, argv)) {
		fputs(tenant_usage, stdout);
		return EXIT_OK;
	}
	if ((r = parse_opts(
		 cli, "tenant", argc, argv, 1, NULL, pos, 2, &npos)) != 0)
		return r;
	if (npos == 0)
		return cli_usage("tenant",
		    "missing subcommand: add, list "
		    "or show");
	if (strcmp(pos[0], "add") == 0) {
		if (npos != 2)
			return cli_usage("tenant", "add needs one NAME");
		if ((r = open_what(cli, CLI_ALL)) != 0)
			return r;
		if ((r = rf_ca_tenant_add(cli->ca, pos[1], &cli->who)) != 0)
			return cli_fail(r);
		if (cli->json)
			return json_print(json_pack("{s:s}", "name", pos[1]));
		printf("tenant %s added\n", pos[1]);
		return EXIT_OK;
	}
	if (strcmp(pos[0], "list") == 0) {
		if (npos != 1)
			return cli_usage("tenant", "list takes no argument");
		if ((r = open_what(cli, CLI_STORE)) != 0)
			return r;
		if ((r = rf_store_tenant_list(cli->store, &ts, &n)) != 0)
			return cli_fail(r);
		if (!cli->json) {
			for (i = 0; i < n; i++) {
				iso_time(ts[i].created, created);
				printf("%s  %s\n", ts[i].name, created);
			}
			free(ts);
			return EXIT_OK;
		}
		if ((arr = json_array()) == NULL) {
			free(ts);
			return cli_fail(RF_ERR_ALLOC);
		}
		for (i = 0; i < n; i++) {
			iso_time(ts[i].created, created);
			json_array_append_new(arr,
			    json_pack("{s:s,s:s}", "name", ts[i].name,
				"created", created));
		}
		free(ts);
		return json_print(arr);
	}
	if (strcmp(pos[0], "show") == 0) {
		if (npos != 2)
			return cli_usage("tenant", "show needs one NAME");
		if ((r = open_what(cli, CLI_STORE)) != 0)
			return r;
		return tenant_show(cli, pos[1]);
	}
	return cli_usage("tenant",
	    "unknown subcommand \"%.40s\": use add, "
	    "list or show",
	    pos[0]);
}

/* ------------------------------------------------------------------ */
/* issue                                                              */

static const char issue_usage[] =
    "usage: ringfence issue --tenant T --profile client|server|assertion\n"
    "           (--csr FILE | --keygen ec-p256|ec-p384|rsa-2048|rsa-3072)\n"
    "           [--connection NAME] [--dns NAME] [--days N] [--out FILE]\n"
    "           [--json]\n"
    "Prints the PEM chain (certificate, issuing CA, root) on stdout, or\n"
    "writes it to --out, and the serial, x5t, x5t#S256 and key id.\n"
    "--dns is required with the server profile. The CSR (PEM or DER, at\n"
    "most 64 KiB) gives only the public key; the subject is\n"
    "CN=<tenant>, OU=<profile>, O=ringfence. The certificate becomes the\n"
    "current credential of the tenant's connection NAME (default\n"
    "\"default\"), which incidents follow.\n";

/*
 * The issued certificate becomes its connection's current credential in
 * the issuance transaction (the connection is created if new).
 */
struct conn_link {
	struct rf_store *st;
	const char *tenant, *name;
};

static int
link_conn(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct conn_link *l = arg;

	(void)i;
	(void)key_id;
	return rf_store_conn_set(
	    l->st, l->tenant, l->name, NULL, serial, rf_now(), NULL);
}

/*
 * A connection that requires a key algorithm (an entra connection: RSA)
 * gets a key of that algorithm: rf_connector_conn_alg decides.
 */
static int
issue_alg_check(struct rf_cli *cli, const char *tenant, const char *conn,
    const struct rf_issue_req *req)
{
	enum rf_key_alg need;
	int r;

	if ((r = rf_connector_conn_alg(cli->store, tenant, conn, &need)) != 0)
		return cli_fail(r);
	if (need != RF_KEY_NONE && req->keygen != RF_KEY_NONE &&
	    req->keygen != need)
		return cli_fail(rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "connection %s/%s is an entra connection: use --keygen %s "
		    "(Entra ID accepts only RSA keys)",
		    tenant, conn, rf_key_alg_name(need)));
	/* A CSR's key, too, must be RSA for such a connection. */
	if (need != RF_KEY_NONE && req->csr != NULL) {
		EVP_PKEY *pub = NULL;
		int rsa;

		if ((r = rf_ca_csr_check(
			 req->csr, req->csrlen, req->profile, &pub)) != 0)
			return cli_fail(r);
		rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA &&
		    EVP_PKEY_get_bits(pub) >= 2048;
		EVP_PKEY_free(pub);
		if (!rsa)
			return cli_fail(rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "connection %s/%s is an entra connection: the CSR "
			    "needs an RSA key of 2048 bits or more (Entra ID "
			    "accepts only RSA keys)",
			    tenant, conn));
	}
	return 0;
}

int
cmd_issue(struct rf_cli *cli, int argc, char **argv)
{
	const char *tenant = NULL, *profile = NULL, *csr = NULL, *keygen = NULL,
		   *dns = NULL, *days = NULL, *outp = NULL, *pos[1],
		   *conn = "default";
	const struct opt opts[] = {{"tenant", &tenant, NULL},
	    {"connection", &conn, NULL}, {"profile", &profile, NULL},
	    {"csr", &csr, NULL}, {"keygen", &keygen, NULL}, {"dns", &dns, NULL},
	    {"days", &days, NULL}, {"out", &outp, NULL}, {NULL, NULL, NULL}};
	struct rf_issue_req req;
	struct rf_issued is;
	struct conn_link link;
	uint8_t *csrbuf = NULL;
	size_t csrlen = 0;
	FILE *meta;
	char *end;
	long d = 0;
	int npos, r;

	memset(&req, 0, sizeof(req));
	memset(&is, 0, sizeof(is));
	if (cli_wants_help(argc, argv)) {
		fputs(issue_usage, stdout);
		return EXIT_OK;
	}
	if ((r = parse_opts(
		 cli, "issue", argc, argv, 1, opts, pos, 0, &npos)) != 0)
		return r;
	if (tenant == NULL)
		return cli_usage("issue", "missing --tenant");
	if (profile == NULL)
		return cli_usage("issue", "missing --profile");
	if (rf_profile_parse(profile, &req.profile) != 0)
		return cli_usage("issue",
		    "unknown profile \"%.40s\": use "
		    "client, server or assertion",
		    profile);
	if ((csr == NULL) == (keygen == NULL))
		return cli_usage("issue",
		    "give exactly one of --csr FILE and "
		    "--keygen ALG");
	if (keygen != NULL && rf_key_alg_parse(keygen, &req.keygen) != 0)
		return cli_usage("issue",
		    "unknown key algorithm \"%.40s\": "
		    "use ec-p256, ec-p384, rsa-2048 or "
		    "rsa-3072",
		    keygen);
	if (days != NULL) {
		d = strtol(days, &end, 10);
		if (*days == '\0' || *end != '\0' || d < 1 || d > 3650)
			return cli_usage("issue", "--days must be 1-3650");
	}
	if (req.profile == RF_PROFILE_SERVER && dns == NULL)
		return cli_usage(
		    "issue", "the server profile needs --dns NAME");
	if (req.profile != RF_PROFILE_SERVER && dns != NULL)
		return cli_usage("issue",
		    "--dns applies to the server "
		    "profile only");
	rf_err_clear();
	if (csr != NULL &&
	    (r = rf_read_file(csr, RF_CSR_MAX, &csrbuf, &csrlen)) != 0) {
		if (r == RF_ERR_TOO_LARGE)
			r = rf_err_set(r, "CSR %s is larger than %d bytes", csr,
			    RF_CSR_MAX);
		return cli_fail(r);
	}
	req.tenant = tenant;
	req.csr = csrbuf;
	req.csrlen = csrlen;
	req.dns = dns;
	req.days = (int)d;
	req.connection = conn;
	if ((r = open_what(cli, CLI_ALL)) != 0)
		goto out;
	if ((r = rf_ca_tenant_name_check(conn)) != 0) {
		r = cli_usage("issue", "--connection: %s", rf_err_msg(r));
		goto out;
	}
	if ((r = issue_alg_check(cli, tenant, conn, &req)) != 0)
		goto out;
	link.st = cli->store;
	link.tenant = tenant;
	link.name = conn;
	if ((r = rf_ca_issue_ex(
		 cli->ca, &req, 1, &cli->who, &is, link_conn, &link)) != 0) {
		r = cli_fail(r);
		goto out;
	}
	if (outp != NULL &&
	    (r = rf_write_file(outp, (uint8_t *)is.chain_pem,
		 strlen(is.chain_pem), 0644)) != 0) {
		r = cli_fail(r);
		goto out;
	}
	if (cli->json) {
		r = json_print(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
		    "serial", is.serial, "tenant", tenant, "profile",
		    rf_profile_name(req.profile), "x5t", is.x5t, "x5t#S256",
		    is.x5t256, "key", is.key_id, "pem", is.chain_pem));
		goto out;
	}
	meta = stdout;
	if (outp == NULL) {
		fputs(is.chain_pem, stdout);
		if ((r = cli_flush()) != 0)
			goto out;
		meta = stderr;
	}
	fprintf(meta, "serial: %s\nx5t: %s\nx5t#S256: %s\nkey: %s\n", is.serial,
	    is.x5t, is.x5t256, is.key_id);
	r = EXIT_OK;
out:
	rf_issued_clear(&is);
	free(csrbuf);
	return r;
}

/* ------------------------------------------------------------------ */
/* cert                                                               */

static const char cert_usage[] =
    "usage: ringfence cert show SERIAL [--json]\n"
    "       ringfence cert list [--tenant T] [--json]\n"
    "       ringfence cert ca root|issuing|ocsp\n"
    "SERIAL is lowercase hex without leading zeros.\n";

static int
cert_show(struct rf_cli *cli, const char *serial)
{
	struct rf_cert_rec c;
	char nb[32], na[32], ra[32], norm[41], *pem = NULL;
	int r;

	memset(&c, 0, sizeof(c));
	/* As openssl prints it too: any case, colons, leading zeros. */
	if ((r = rf_revoke_serial_norm(serial, norm)) != 0)
		return cli_fail(r);
	serial = norm;
	if ((r = rf_store_cert_get(cli->store, serial, &c)) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(r,
			    "no certificate with serial %.60s "
			    "(see 'ringfence cert list')",
			    serial);
		return cli_fail(r);
	}
	if ((pem = der_to_pem(c.der, c.derlen)) == NULL) {
		rf_cert_rec_clear(&c);
		return cli_fail(RF_ERR_ALLOC);
	}
	iso_time(c.not_before, nb);
	iso_time(c.not_after, na);
	iso_time(c.revoked_at, ra);
	if (cli->json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
				      "s:s,s:s,s:s}",
		    "serial", c.serial, "issuer", c.issuer, "tenant", c.tenant,
		    "profile", c.profile, "subject", c.subject, "key", c.key_id,
		    "x5t", c.x5t, "x5t#S256", c.x5t256, "not_before", nb,
		    "not_after", na, "status", cert_status(&c), "pem", pem);

		if (j != NULL && c.revoked) {
			json_object_set_new(j, "revoked_at", json_string(ra));
			json_object_set_new(
			    j, "reason", json_integer(c.reason));
		}
		r = json_print(j);
	} else {
		printf("serial: %s\nissuer: %s\ntenant: %s\nprofile: %s\n"
		       "subject: %s\nkey: %s\nx5t: %s\nx5t#S256: %s\n"
		       "not_before: %s\nnot_after: %s\nstatus: %s\n",
		    c.serial, c.issuer, c.tenant, c.profile, c.subject,
		    c.key_id, c.x5t, c.x5t256, nb, na, cert_status(&c));
		if (c.revoked)
			printf("revoked_at: %s\nreason: %d\n", ra, c.reason);
		fputs(pem, stdout);
		r = EXIT_OK;
	}
	free(pem);
	rf_cert_rec_clear(&c);
	return r;
}

static int
cert_ca(struct rf_cli *cli, const char *name)
{
	struct rf_ca_rec rec;
	char *pem;
	int r;

	memset(&rec, 0, sizeof(rec));
	if ((r = rf_store_ca_get(cli->store, name, &rec)) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(r,
			    "no CA certificate named %.40s: use "
			    "root, issuing or ocsp",
			    name);
		return cli_fail(r);
	}
	if ((pem = der_to_pem(rec.der, rec.derlen)) == NULL) {
		rf_ca_rec_clear(&rec);
		return cli_fail(RF_ERR_ALLOC);
	}
	if (cli->json)
		r = json_print(json_pack("{s:s,s:s,s:s,s:s}", "name", rec.name,
		    "serial", rec.serial, "key", rec.key_id, "pem", pem));
	else {
		fputs(pem, stdout);
		r = EXIT_OK;
	}
	free(pem);
	rf_ca_rec_clear(&rec);
	return r;
}

int
cmd_cert(struct rf_cli *cli, int argc, char **argv)
{
	const char *tenant = NULL, *pos[2];
	const struct opt opts[] = {
	    {"tenant", &tenant, NULL}, {NULL, NULL, NULL}};
	struct rf_cert_filter f;
	struct cert_list l = {NULL, 0};
	int npos, r;

	if (cli_wants_help(argc, argv)) {
		fputs(cert_usage, stdout);
		return EXIT_OK;
	}
	if ((r = parse_opts(cli, "cert", argc, argv, 1, opts, pos, 2, &npos)) !=
	    0)
		return r;
	if (npos == 0)
		return cli_usage(
		    "cert", "missing subcommand: show, list or ca");
	if (strcmp(pos[0], "list") == 0) {
		if (npos != 1)
			return cli_usage("cert", "list takes no argument");
		if ((r = open_what(cli, CLI_STORE)) != 0)
			return r;
		memset(&f, 0, sizeof(f));
		f.tenant = tenant;
		if (cli->json && (l.arr = json_array()) == NULL)
			return cli_fail(RF_ERR_ALLOC);
		if ((r = rf_store_cert_foreach(cli->store, &f, cert_row, &l)) !=
		    0) {
			json_decref(l.arr);
			return cli_fail(r);
		}
		return cli->json ? json_print(l.arr) : EXIT_OK;
	}
	if (tenant != NULL)
		return cli_usage("cert", "--tenant applies to list only");
	if (strcmp(pos[0], "show") == 0 || strcmp(pos[0], "ca") == 0) {
		if (npos != 2)
			return cli_usage(
			    "cert", "%s needs one argument", pos[0]);
		if ((r = open_what(cli, CLI_STORE)) != 0)
			return r;
		return pos[0][0] == 's' ? cert_show(cli, pos[1])
					: cert_ca(cli, pos[1]);
	}
	return cli_usage("cert",
	    "unknown subcommand \"%.40s\": use show, "
	    "list or ca",
	    pos[0]);
}
