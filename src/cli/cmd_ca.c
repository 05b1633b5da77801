/*
 * cmd_ca.c: `ringfence tenant`, `ringfence issue` and `ringfence cert`.
 *
 * Output: human-readable lines on stdout, or one JSON value with --json.
 * `issue` prints the PEM chain on stdout and its metadata on stderr (so
 * that `ringfence issue ... > chain.pem` keeps both apart), or the
 * metadata on stdout when the chain goes to --out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "cli/cli.h"
#include "common/file.h"
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

static const char *
cert_status(const struct rf_cert_rec *c)
{
	if (c->revoked)
		return "revoked";
	if (c->not_after < rf_now())
		return "expired";
	return "valid";
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

/* The prefix of connectors' pseudo-tenants, from rf_connector_tenant. */
static const char *
connector_prefix(void)
{
	static char pfx[128];

	if (pfx[0] == '\0')
		rf_connector_tenant("", pfx);
	return pfx;
}

/*
 * A connector's pseudo-tenant holds its TLS client certificates, not
 * connections: `tenant add` refuses the name and `tenant list` leaves it
 * out (`connector list` shows connectors).
 */
static int
connector_tenant(const char *name)
{
	return strncmp(name, connector_prefix(), strlen(connector_prefix())) ==
	    0;
}

static const char tenant_usage[] =
    "usage: ringfence tenant add NAME\n"
    "       ringfence tenant list [--json]\n"
    "       ringfence tenant show NAME [--json]\n"
    "A tenant name is 1-64 characters of A-Z a-z 0-9 . _ -, not starting\n"
    "with \"connector.\" (connectors' own tenants, which list leaves out).\n";

struct cert_list {
	json_t *arr; /* NULL: print lines */
	size_t n;
};

static int
cert_row(void *arg, const struct rf_cert_rec *c)
{
	struct cert_list *l = arg;
	char na[32];

	rf_iso_time(c->not_after, na);
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
	rf_iso_time(t.created, created);
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
	return cli_json_print(j);
}

/* tenant list: a row, and its header (the same widths). */
#define TENANT_ROW "%-24s %s\n"

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
		if (connector_tenant(pos[1]))
			return cli_fail(rf_err_set(RF_ERR_ARG,
			    "tenant %.64s: names starting with \"%s\" are "
			    "reserved for connectors ('ringfence connector "
			    "add'); choose another name",
			    pos[1], connector_prefix()));
		if ((r = open_what(cli, CLI_ALL)) != 0)
			return r;
		if ((r = rf_ca_tenant_add(cli->ca, pos[1], &cli->who)) != 0)
			return cli_fail(r);
		if (cli->json)
			return cli_json_print(
			    json_pack("{s:s}", "name", pos[1]));
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
			printf(TENANT_ROW, "NAME", "CREATED");
			for (i = 0; i < n; i++) {
				if (connector_tenant(ts[i].name))
					continue;
				rf_iso_time(ts[i].created, created);
				printf(TENANT_ROW, ts[i].name, created);
			}
			free(ts);
			return EXIT_OK;
		}
		if ((arr = json_array()) == NULL) {
			free(ts);
			return cli_fail(RF_ERR_ALLOC);
		}
		for (i = 0; i < n; i++) {
			if (connector_tenant(ts[i].name))
				continue;
			rf_iso_time(ts[i].created, created);
			json_array_append_new(arr,
			    json_pack("{s:s,s:s}", "name", ts[i].name,
				"created", created));
		}
		free(ts);
		return cli_json_print(arr);
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
    "           (--csr FILE | --keygen ALG | --csr-dir DIR --out OUTDIR)\n"
    "           [--connection NAME] [--dns NAME] [--days N] [--out FILE]\n"
    "           [--json]\n"
    "Prints the PEM chain (certificate, issuing CA, root) on stdout, or\n"
    "writes it to --out, and the serial, x5t, x5t#S256 and key id.\n"
    "--dns is required with the server profile. The CSR (PEM or DER, at\n"
    "most 64 KiB) gives only the public key; the subject is\n"
    "CN=<tenant>, OU=<profile>, O=ringfence. The certificate becomes the\n"
    "current credential of the tenant's connection NAME (default\n"
    "\"default\"), which incidents follow; the one before stays valid as\n"
    "its previous credential, and the one before that is revoked first\n"
    "(superseded): a connection has two valid credentials at most; its\n"
    "key, if made in the token, is destroyed once the new one is issued.\n"
    "A connection that an incident has not contained yet is refused:\n"
    "'ringfence incident contain' replaces its credential.\n"
    "--csr-dir issues one certificate per CSR file of DIR (NAME.pem,\n"
    "NAME.der or NAME.csr), for the tenant's connection NAME, in batches\n"
    "of 256 (each one transaction), and writes each chain to\n"
    "OUTDIR/NAME.pem; a line (or JSON object) per certificate on stdout.\n"
    "A CSR whose key already holds an unrevoked certificate of the tenant\n"
    "is skipped, so an interrupted run is finished by running it again.\n"
    "--keygen ALG makes the key in the token: ec-p256, ec-p384, rsa-2048,\n"
    "rsa-3072 or rsa-4096.\n";

/*
 * Where --out writes is opened and checked before anything is issued, so
 * that a bad --out changes nothing: issuance commits the certificate as
 * its connection's current credential, and pushes the one before out.
 * Then the chain is written under the folder's descriptor (common/file.h).
 */
static int
out_fail(int r, const char *out)
{
	char msg[600];

	snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
	return rf_err_set(r, "--out %s: %s; nothing was issued", out, msg);
}

/* cli_out_dir_open, its error ending in "nothing was issued". */
static int
out_dir_open(const char *dir, const char *out, int *dirfd)
{
	int r;

	return (r = cli_out_dir_open(dir, dirfd)) != 0 ? out_fail(r, out) : 0;
}

/* cli_out_file_open, its error ending in "nothing was issued". */
static int
out_file_open(const char *path, int *dirfd, const char **name)
{
	int r;

	return (r = cli_out_file_open(path, dirfd, name)) != 0
	    ? out_fail(r, path)
	    : 0;
}

/*
 * A connection that an incident has not contained yet gets its next
 * credential from contain, which revokes the one the incident recorded and
 * replaces it: one issued meanwhile is a credential contain did not revoke
 * and cannot replace. Refused before anything is written (cmd_issue,
 * issue_dir), and again inside the issuance transaction (link_current),
 * where an incident opened since the first check is seen.
 */
static int
issue_incident_check(struct rf_store *st, const char *tenant, const char *conn)
{
	struct rf_conn_rec cr;
	int64_t inc;
	int r;

	if ((r = rf_store_conn_get(st, tenant, conn, &cr)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0; /* a new connection is in no incident */
	}
	if (r != 0)
		return r;
	if ((r = rf_store_item_other_open(st, cr.id, 0, &inc)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0;
	}
	if (r != 0)
		return r;
	return rf_err_set(RF_ERR_STATE,
	    "connection %s/%s is in incident %lld, which has not contained "
	    "it yet: 'ringfence incident contain %lld' replaces its "
	    "credential (a new key and certificate); issue for it once the "
	    "incident has contained it; nothing was issued",
	    tenant, conn, (long long)inc, (long long)inc);
}

/*
 * Serial becomes the connection's current credential, in the issuance
 * transaction. Its previous one is pushed out, which supersede() revoked
 * beforehand: one still valid here means another issuance for the
 * connection ran meanwhile (or a --csr-dir named it twice), and pushing
 * it out would leave it valid with no connection naming it. The batch is
 * rolled back instead.
 */
static int
link_current(struct rf_store *st, const char *tenant, const char *conn,
    const char *serial)
{
	char prev[41];
	int r, live;

	if ((r = issue_incident_check(st, tenant, conn)) != 0 ||
	    (r = rf_revoke_previous_of(st, tenant, conn, prev, &live)) != 0)
		return r;
	if (live)
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s changed during this issue (another issue "
		    "for it ran at the same time): its previous credential %s "
		    "would be left valid with no connection naming it; "
		    "nothing was issued, run it again",
		    tenant, conn, prev);
	return rf_store_conn_set(
	    st, tenant, conn, NULL, serial, rf_now(), NULL);
}

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
	return link_current(l->st, l->tenant, l->name, serial);
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
		rsa = rf_connector_entra_key(pub);
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

/*
 * The previous credentials that new ones push out of their connections,
 * revoked (superseded) and published before anything is issued, once the
 * requests have passed issuance's checks (rf_revoke_superseded): a
 * credential no connection names would stay valid out of every incident's
 * reach. A failure issues nothing.
 */
static int
supersede(struct rf_cli *cli, const char *tenant, const char *const *conns,
    size_t n, size_t *done, char (*serials)[41])
{
	char msg[600];
	int r;

	if ((r = rf_revoke_superseded(&cli->cfg, cli->store, cli->keys, cli->ca,
		 cli->audit, tenant, conns, n, &cli->who, done, serials)) !=
	    0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		return cli_fail(rf_err_set(r,
		    "%s (revoking the previous credentials the new ones "
		    "supersede: nothing was issued)",
		    msg));
	}
	if (*done > 0)
		fprintf(stderr,
		    "ringfence: revoked %zu previous credential%s "
		    "(superseded): "
		    "a connection keeps its current and previous credentials "
		    "valid, no more\n",
		    *done, *done == 1 ? "" : "s");
	return 0;
}

/*
 * Their successors committed, the token keys of the credentials supersede()
 * revoked are destroyed (issue 11: a key a rotation takes out of service
 * does not stay in the token). A failure here leaves the issuance done:
 * one line says what is left.
 */
static void
retire(
    struct rf_cli *cli, const char *tenant, const char (*serials)[41], size_t n)
{
	size_t done = 0;
	int r;

	if ((r = rf_revoke_retire_keys(cli->store, cli->keys, tenant, serials,
		 n, &cli->who, &done)) != 0)
		fprintf(stderr,
		    "ringfence: the new credentials are issued; destroying "
		    "the superseded keys failed: %s ('ringfence keys list' "
		    "shows them; 'ringfence keys finish' destroys those "
		    "left being destroyed once the cause is fixed)\n",
		    rf_err_msg(r));
	else if (done > 0)
		fprintf(stderr,
		    "ringfence: destroyed %zu superseded key%s in the token\n",
		    done, done == 1 ? "" : "s");
}

/* An issuance that failed after supersede() revoked: the line says so. */
static int
issue_fail(int r, size_t superseded)
{
	char msg[600];

	if (superseded == 0)
		return cli_fail(r);
	snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
	return cli_fail(rf_err_set(r,
	    "%s (the %zu previous credential%s revoked before it stay%s "
	    "revoked: run the command again)",
	    msg, superseded, superseded == 1 ? "" : "s",
	    superseded == 1 ? "s" : ""));
}

/* issue --csr-dir: the CSR files of a folder, one connection each. */
#define ISSUE_DIR_MAX 100000
#define ISSUE_DIR_BYTES (256 << 20) /* CSR bytes read at once, at most */
#define ISSUE_DIR_BATCH 256

struct dir_csr {
	char conn[65]; /* the file's name without its extension */
	uint8_t *csr;
	size_t len;
};

static void
dir_csrs_free(struct dir_csr *c, size_t n)
{
	size_t i;

	for (i = 0; c != NULL && i < n; i++)
		free(c[i].csr);
	free(c);
}

/* NAME.pem, NAME.der or NAME.csr: NAME's length, else 0. */
static size_t
csr_base(const char *name)
{
	size_t l = strlen(name);

	if (name[0] == '.' || l < 5)
		return 0;
	if (strcmp(name + l - 4, ".pem") == 0 ||
	    strcmp(name + l - 4, ".der") == 0 ||
	    strcmp(name + l - 4, ".csr") == 0)
		return l - 4;
	return 0;
}

static int
conn_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One CSR file per connection: NAME.pem and NAME.der are two requests for
 * one connection, the second pushing the first's credential out. */
static int
dir_unique(const struct dir_csr *c, size_t n, const char *dir)
{
	const char **v;
	size_t i;
	int r = 0;

	if ((v = calloc(n, sizeof(*v))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++)
		v[i] = c[i].conn;
	qsort(v, n, sizeof(*v), conn_cmp);
	for (i = 1; i < n && r == 0; i++)
		if (strcmp(v[i - 1], v[i]) == 0)
			r = rf_err_set(RF_ERR_ARG,
			    "%s holds two CSR files for connection %s "
			    "(NAME.pem, "
			    "NAME.der and NAME.csr name one connection): keep "
			    "one",
			    dir, v[i]);
	free(v);
	return r;
}

/* The CSR files of dir in name order; other files are left alone. */
static int
dir_read(const char *dir, struct dir_csr **out, size_t *n)
{
	struct dirent **list = NULL;
	struct dir_csr *c = NULL;
	char path[RF_PATH_MAX + 300];
	size_t k = 0, bl, total = 0;
	int i, cnt, r = 0;

	*out = NULL;
	*n = 0;
	if ((cnt = scandir(dir, &list, NULL, alphasort)) < 0)
		return rf_err_set(RF_ERR_IO,
		    "cannot read the CSR folder %s: %s", dir, strerror(errno));
	if ((c = calloc((size_t)cnt + 1, sizeof(*c))) == NULL)
		r = RF_ERR_ALLOC;
	for (i = 0; i < cnt && r == 0; i++) {
		if ((bl = csr_base(list[i]->d_name)) == 0)
			continue;
		if (k == ISSUE_DIR_MAX) {
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "%s holds more than %d CSR files: split it", dir,
			    ISSUE_DIR_MAX);
			break;
		}
		snprintf(c[k].conn, sizeof(c[k].conn), "%.*s",
		    (int)(bl < RF_CONN_NAME_MAX ? bl : RF_CONN_NAME_MAX),
		    list[i]->d_name);
		if (bl > RF_CONN_NAME_MAX ||
		    rf_ca_conn_name_check(c[k].conn) != 0) {
			r = rf_err_set(RF_ERR_ARG,
			    "CSR file %s/%s: its name without the extension "
			    "is the connection's, 1-%d of A-Z a-z 0-9 . _ -",
			    dir, list[i]->d_name, RF_CONN_NAME_MAX);
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		if ((r = rf_read_file(
			 path, RF_CSR_MAX, &c[k].csr, &c[k].len)) != 0) {
			if (r == RF_ERR_TOO_LARGE)
				r = rf_err_set(r,
				    "CSR %s is larger than %d bytes", path,
				    RF_CSR_MAX);
			break;
		}
		if ((total += c[k].len) > ISSUE_DIR_BYTES) {
			k++;
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "the CSRs of %s hold more than %d MiB: split it",
			    dir, ISSUE_DIR_BYTES >> 20);
			break;
		}
		k++;
	}
	for (i = 0; i < cnt; i++)
		free(list[i]);
	free(list);
	if (r == 0 && k == 0)
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "no CSR files (NAME.pem, NAME.der or NAME.csr) in %s", dir);
	if (r == 0)
		r = dir_unique(c, k, dir);
	if (r != 0) {
		dir_csrs_free(c, k + 1);
		return r;
	}
	*out = c;
	*n = k;
	return 0;
}

struct found_cert {
	char serial[41];
	char issuer[64];
	char key_id[65];
	uint8_t *der;
	size_t derlen;
};

static int
found_unrevoked(void *arg, const struct rf_cert_rec *c)
{
	struct found_cert *f = arg;

	if (c->revoked || c->der == NULL)
		return 0;
	if ((f->der = malloc(c->derlen)) == NULL)
		return RF_ERR_ALLOC;
	memcpy(f->der, c->der, c->derlen);
	f->derlen = c->derlen;
	snprintf(f->serial, sizeof(f->serial), "%s", c->serial);
	snprintf(f->issuer, sizeof(f->issuer), "%s", c->issuer);
	snprintf(f->key_id, sizeof(f->key_id), "%s", c->key_id);
	return 1;
}

/*
 * 1 when the CSR's key already holds an unrevoked certificate of the
 * tenant (issued by an earlier, interrupted run), into *f; 0 when not. A
 * CSR that issuance would refuse fails here, naming it, before anything
 * is issued.
 */
static int
already_issued(struct rf_cli *cli, const char *tenant, enum rf_profile prof,
    const char *dir, const struct dir_csr *c, struct found_cert *f)
{
	struct rf_cert_filter flt;
	uint8_t *spki = NULL;
	EVP_PKEY *pub = NULL;
	char kid[65];
	size_t spkilen = 0;
	int r;

	memset(f, 0, sizeof(*f));
	if ((r = rf_ca_csr_parse(
		 c->csr, c->len, prof, &pub, &spki, &spkilen)) != 0) {
		char msg[400];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		return rf_err_set(r,
		    "CSR for connection %s in %s: %s: nothing was issued",
		    c->conn, dir, msg);
	}
	/* The key's id, as keys names it: the SHA-256 of its SPKI. */
	r = rf_keys_pub_id(pub, kid);
	free(spki);
	EVP_PKEY_free(pub);
	if (r != 0)
		return r;
	memset(&flt, 0, sizeof(flt));
	flt.tenant = tenant;
	flt.key_id = kid;
	flt.with_der = 1;
	r = rf_store_cert_foreach(cli->store, &flt, found_unrevoked, f);
	return r < 0 ? r : r == 1;
}

/* The chain of a certificate issued before (cert, its CA, root) as PEM. */
static char *
stored_chain(struct rf_cli *cli, const struct found_cert *f)
{
	const unsigned char *p = f->der;
	X509 *x = d2i_X509(NULL, &p, (long)f->derlen);
	X509 *ca = rf_ca_cert(cli->ca, f->issuer),
	     *root = rf_ca_cert(cli->ca, "root");
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL, *data;
	long len;

	if (x != NULL && ca != NULL && root != NULL && b != NULL &&
	    PEM_write_bio_X509(b, x) == 1 && PEM_write_bio_X509(b, ca) == 1 &&
	    PEM_write_bio_X509(b, root) == 1 &&
	    (len = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)len + 1)) != NULL) {
		memcpy(out, data, (size_t)len);
		out[len] = '\0';
	}
	X509_free(x);
	BIO_free(b);
	return out;
}

struct dir_link {
	struct rf_store *st;
	const char *tenant;
	const struct rf_issue_req *reqs; /* the batch's */
};

static int
link_dir(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct dir_link *l = arg;

	(void)key_id;
	return link_current(l->st, l->tenant, l->reqs[i].connection, serial);
}

/* One certificate's line (or JSON object) and its chain file. */
static int
issued_out(struct rf_cli *cli, const char *tenant, enum rf_profile prof,
    const char *conn, const char *outdir, int outfd, const char *serial,
    const char *key_id, const char *pem, int before)
{
	char path[RF_PATH_MAX + 80], name[80];
	struct stat sb;
	int r;

	snprintf(path, sizeof(path), "%s/%s.pem", outdir, conn);
	snprintf(name, sizeof(name), "%s.pem", conn);
	if (pem != NULL && (!before || fstatat(outfd, name, &sb, 0) != 0) &&
	    (r = rf_file_write_at(
		 outfd, name, (const uint8_t *)pem, strlen(pem), 0644)) != 0)
		return r;
	if (cli->json)
		return cli_json_put(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}",
		    "serial", serial, "tenant", tenant, "connection", conn,
		    "profile", rf_profile_name(prof), "key", key_id, "chain",
		    path, "issued_before", before));
	printf("%s %s %s%s\n", serial, conn, path,
	    before ? " (issued before)" : "");
	return 0;
}

/*
 * issue --csr-dir: every CSR of dir not issued yet, in batches of
 * ISSUE_DIR_BATCH, each committed on its own; a failure says how many
 * were issued before it, and the same command finishes the rest.
 */
static int
issue_dir(struct rf_cli *cli, const struct rf_issue_req *tmpl, const char *dir,
    const char *outdir, int outfd)
{
	struct dir_csr *c = NULL;
	struct rf_issue_req *reqs = NULL;
	struct rf_issued *is = NULL;
	const char **conns = NULL;
	struct found_cert f;
	struct dir_link link;
	char msg[600], *pem;
	size_t n = 0, m = 0, i, k, j, cnt, done = 0, before = 0, superseded = 0;
	char(*gone)[41] = NULL; /* what supersede() revoked */
	int r;

	if ((r = dir_read(dir, &c, &n)) != 0)
		return cli_fail(r);
	if ((reqs = calloc(n, sizeof(*reqs))) == NULL ||
	    (conns = calloc(n + 1, sizeof(*conns))) == NULL ||
	    (is = calloc(ISSUE_DIR_BATCH, sizeof(*is))) == NULL) {
		r = cli_fail(RF_ERR_ALLOC);
		goto out;
	}
	/*
	 * Every connection is checked before anything is written (a chain
	 * of one issued before included): in no incident that has not
	 * contained it, and with a key its kind accepts: the CSR's own, as
	 * issue --csr checks it (an entra connection's must be RSA).
	 */
	for (i = 0; i < n; i++) {
		struct rf_issue_req one = *tmpl;

		one.csr = c[i].csr;
		one.csrlen = c[i].len;
		one.connection = c[i].conn;
		if ((r = issue_incident_check(
			 cli->store, tmpl->tenant, c[i].conn)) != 0) {
			r = cli_fail(r);
			goto out;
		}
		if ((r = issue_alg_check(cli, tmpl->tenant, c[i].conn, &one)) !=
		    0)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = already_issued(cli, tmpl->tenant, tmpl->profile, dir,
			 &c[i], &f)) < 0) {
			r = cli_fail(r);
			goto out;
		}
		if (r == 1) {
			pem = stored_chain(cli, &f);
			r = issued_out(cli, tmpl->tenant, tmpl->profile,
			    c[i].conn, outdir, outfd, f.serial, f.key_id, pem,
			    1);
			free(pem);
			free(f.der);
			if (r != 0) {
				r = cli_fail(r);
				goto out;
			}
			before++;
			continue;
		}
		reqs[m] = *tmpl;
		reqs[m].csr = c[i].csr;
		reqs[m].csrlen = c[i].len;
		reqs[m].connection = c[i].conn;
		m++;
	}
	for (i = 0; i < m; i++)
		conns[i] = reqs[i].connection;
	if (m > 0 && (r = rf_ca_issue_check(cli->ca, reqs, m)) != 0) {
		r = cli_fail(r);
		goto out;
	}
	if (m > 0 && (gone = calloc(m, sizeof(*gone))) == NULL) {
		r = cli_fail(RF_ERR_ALLOC);
		goto out;
	}
	if ((r = supersede(cli, tmpl->tenant, conns, m, &superseded, gone)) !=
	    0)
		goto out;
	link.st = cli->store;
	link.tenant = tmpl->tenant;
	for (k = 0; k < m; k += cnt) {
		cnt = m - k < ISSUE_DIR_BATCH ? m - k : ISSUE_DIR_BATCH;
		link.reqs = reqs + k;
		if ((r = rf_ca_issue_ex(cli->ca, reqs + k, cnt, &cli->who, is,
			 link_dir, &link)) != 0) {
			snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
			/* The batches before it are committed. */
			retire(cli, tmpl->tenant, (const char(*)[41])gone, k);
			r = issue_fail(rf_err_set(r,
					   "%s (%zu of %zu certificates were "
					   "issued before it, chains in %s; "
					   "the same command skips them)",
					   msg, done + before, n, outdir),
			    superseded);
			goto out;
		}
		for (j = 0; j < cnt; j++) {
			if (r == 0)
				r = issued_out(cli, tmpl->tenant, tmpl->profile,
				    reqs[k + j].connection, outdir, outfd,
				    is[j].serial, is[j].key_id, is[j].chain_pem,
				    0);
			rf_issued_clear(&is[j]);
		}
		if (r != 0) {
			r = cli_fail(r);
			goto out;
		}
		done += cnt;
	}
	if ((r = cli_flush()) != 0)
		goto out;
	retire(cli, tmpl->tenant, (const char(*)[41])gone, m);
	fprintf(stderr,
	    "ringfence: issued %zu certificates (%zu issued before) from %s; "
	    "chains in %s\n",
	    done, before, dir, outdir);
	r = EXIT_OK;
out:
	free(gone);
	free(is);
	free(conns);
	free(reqs);
	dir_csrs_free(c, n);
	return r;
}

int
cmd_issue(struct rf_cli *cli, int argc, char **argv)
{
	const char *tenant = NULL, *profile = NULL, *csr = NULL, *keygen = NULL,
		   *dns = NULL, *days = NULL, *outp = NULL, *pos[1],
		   *conn = NULL, *csrdir = NULL;
	const struct opt opts[] = {{"tenant", &tenant, NULL},
	    {"connection", &conn, NULL}, {"profile", &profile, NULL},
	    {"csr", &csr, NULL}, {"keygen", &keygen, NULL}, {"dns", &dns, NULL},
	    {"days", &days, NULL}, {"out", &outp, NULL},
	    {"csr-dir", &csrdir, NULL}, {NULL, NULL, NULL}};
	struct rf_issue_req req;
	struct rf_issued is;
	struct conn_link link;
	uint8_t *csrbuf = NULL;
	size_t csrlen = 0, superseded = 0;
	char gone[1][41] = {""}; /* what supersede() revoked */
	FILE *meta;
	const char *outname = NULL;
	char *end, msg[600];
	long d = 0;
	int npos, r, outfd = -1;

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
	if ((csr != NULL) + (keygen != NULL) + (csrdir != NULL) != 1)
		return cli_usage("issue",
		    "give exactly one of --csr FILE, --keygen ALG and "
		    "--csr-dir DIR");
	if (csrdir != NULL && outp == NULL)
		return cli_usage("issue",
		    "--csr-dir needs --out OUTDIR, the folder for the chains");
	if (csrdir != NULL && conn != NULL)
		return cli_usage("issue",
		    "--csr-dir names each connection by its CSR file: "
		    "leave out --connection");
	if (conn == NULL)
		conn = "default";
	if (keygen != NULL && rf_key_alg_parse(keygen, &req.keygen) != 0)
		return cli_usage("issue",
		    "unknown key algorithm \"%.40s\": "
		    "use ec-p256, ec-p384, rsa-2048, "
		    "rsa-3072 or rsa-4096",
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
	r = 0;
	if (csrdir != NULL && mkdir(outp, 0755) != 0 && errno != EEXIST)
		r = out_fail(rf_err_set(RF_ERR_IO, "cannot create it: %s",
				 strerror(errno)),
		    outp);
	else if (csrdir != NULL)
		r = out_dir_open(outp, outp, &outfd);
	else if (outp != NULL)
		r = out_file_open(outp, &outfd, &outname);
	if (r != 0) {
		free(csrbuf);
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
	if (csrdir != NULL) {
		r = issue_dir(cli, &req, csrdir, outp, outfd);
		goto out;
	}
	if ((r = rf_ca_conn_name_check(conn)) != 0) {
		r = cli_usage("issue", "--connection: %s", rf_err_msg(r));
		goto out;
	}
	if ((r = issue_incident_check(cli->store, tenant, conn)) != 0) {
		r = cli_fail(r);
		goto out;
	}
	if ((r = issue_alg_check(cli, tenant, conn, &req)) != 0)
		goto out;
	if ((r = rf_ca_issue_check(cli->ca, &req, 1)) != 0) {
		r = cli_fail(r);
		goto out;
	}
	if ((r = supersede(cli, tenant, &conn, 1, &superseded, gone)) != 0)
		goto out;
	link.st = cli->store;
	link.tenant = tenant;
	link.name = conn;
	if ((r = rf_ca_issue_ex(
		 cli->ca, &req, 1, &cli->who, &is, link_conn, &link)) != 0) {
		r = issue_fail(r, superseded);
		goto out;
	}
	retire(cli, tenant, (const char(*)[41])gone, 1);
	if (outp != NULL &&
	    (r = rf_file_write_at(outfd, outname, (uint8_t *)is.chain_pem,
		 strlen(is.chain_pem), 0644)) != 0) {
		/* Checked before; a full disk may still fail it now. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		r = cli_fail(rf_err_set(r,
		    "%s: certificate %s was issued and is the current "
		    "credential of %s/%s; 'ringfence cert show %s' prints it",
		    msg, is.serial, tenant, conn, is.serial));
		goto out;
	}
	if (cli->json) {
		r = cli_json_print(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
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
	if (outfd >= 0)
		close(outfd);
	rf_issued_clear(&is);
	free(csrbuf);
	return r;
}

/* ------------------------------------------------------------------ */
/* cert                                                               */

static const char cert_usage[] =
    "usage: ringfence cert show SERIAL [--json]\n"
    "       ringfence cert list [--tenant T] [--json]\n"
    "       ringfence cert ca root|issuing|ocsp|NAME [--replaced]\n"
    "SERIAL is lowercase hex without leading zeros.\n"
    "'cert ca issuing' is the issuing CA in use (after an incident's\n"
    "rotation, its successor: issuing-inc<ID>) and 'cert ca ocsp' its\n"
    "OCSP signer; any other NAME is that CA (issuing-inc3, ocsp-issuing-\n"
    "inc3, tls ...). --replaced: the CA of exactly that name, even one a\n"
    "rotation replaced (the original issuing CA and its signer).\n";

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
	rf_iso_time(c.not_before, nb);
	rf_iso_time(c.not_after, na);
	rf_iso_time(c.revoked_at, ra);
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
		r = cli_json_print(j);
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

/* The names of recs, for an error: "root, issuing (replaced), ...". */
static void
ca_names(const struct rf_ca_rec *recs, size_t n, char *out, size_t max)
{
	size_t i, len = 0;
	int iss = rf_ca_rec_issuer(recs, n);

	out[0] = '\0';
	for (i = 0; i < n && len < max; i++)
		len += (size_t)snprintf(out + len, max - len, "%s%s%s",
		    i == 0 ? "" : ", ", recs[i].name,
		    (int)i == iss ? " (issuing CA in use)"
			: strcmp(recs[i].parent, "root") == 0 && !recs[i].active
			? " (replaced)"
			: "");
}

/*
 * The CA people call name (rf_ca_rec_find): "issuing" and "ocsp" follow a
 * rotation, and a line on stderr says which CA that is now; replaced: the
 * record of exactly that name.
 */
static int
cert_ca(struct rf_cli *cli, const char *name, int replaced)
{
	struct rf_ca_rec *recs = NULL;
	const struct rf_ca_rec *rec;
	char *pem, names[512];
	size_t n = 0;
	int r, k;

	if ((r = rf_store_ca_list(cli->store, &recs, &n)) != 0)
		return cli_fail(r);
	if ((k = rf_ca_rec_find(recs, n, name, replaced)) < 0) {
		ca_names(recs, n, names, sizeof(names));
		rf_ca_rec_free_all(recs, n);
		return cli_fail(rf_err_set(RF_ERR_NOT_FOUND,
		    "no CA certificate named %.40s: the CAs are %s", name,
		    names));
	}
	rec = &recs[k];
	if (strcmp(rec->name, name) != 0)
		fprintf(stderr,
		    "ringfence: %s is %s, the issuing CA in use%s since a "
		    "rotation replaced the CA named %s ('ringfence cert ca %s "
		    "--replaced' prints that one)\n",
		    name, rec->name, name[0] == 'o' ? "'s OCSP signer" : "",
		    name, name);
	if ((pem = der_to_pem(rec->der, rec->derlen)) == NULL) {
		rf_ca_rec_free_all(recs, n);
		return cli_fail(RF_ERR_ALLOC);
	}
	if (cli->json)
		r = cli_json_print(
		    json_pack("{s:s,s:s,s:s,s:s}", "name", rec->name, "serial",
			rec->serial, "key", rec->key_id, "pem", pem));
	else {
		fputs(pem, stdout);
		r = EXIT_OK;
	}
	free(pem);
	rf_ca_rec_free_all(recs, n);
	return r;
}

int
cmd_cert(struct rf_cli *cli, int argc, char **argv)
{
	const char *tenant = NULL, *pos[2];
	int replaced = 0;
	const struct opt opts[] = {{"tenant", &tenant, NULL},
	    {"replaced", NULL, &replaced}, {NULL, NULL, NULL}};
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
	if (replaced && strcmp(pos[0], "ca") != 0)
		return cli_usage("cert", "--replaced applies to ca only");
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
		return cli->json ? cli_json_print(l.arr) : EXIT_OK;
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
					: cert_ca(cli, pos[1], replaced);
	}
	return cli_usage("cert",
	    "unknown subcommand \"%.40s\": use show, "
	    "list or ca",
	    pos[0]);
}
