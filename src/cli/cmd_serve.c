/* ringfence serve: healthz, CA certificates, CRLs and OCSP over HTTP. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "http/http.h"

static const char serve_help[] =
    "usage: ringfence serve [--port N] [--listen ADDR] [--threads N]\n"
    "                       [--tls-port N] [--duration SECONDS]\n"
    "\n"
    "Serves GET /healthz, /ca/<name>.pem|.der, /crl/<issuer>.crl, OCSP\n"
    "(POST /ocsp and GET /ocsp/<base64>) and read-only /audit/sth,\n"
    "/audit/proof, /audit/consistency over plain HTTP (docs/serve.md).\n"
    "ADDR and N default to the listen and port settings (127.0.0.1:8440);\n"
    "an address that is not loopback is refused unless given with\n"
    "--listen. --threads: worker threads (default 2). --duration: stop\n"
    "after that many seconds. SIGINT and SIGTERM stop it cleanly.\n"
    "--tls-port: also serve the same routes over TLS on that port (0: any\n"
    "free port; default: the tls_port setting, 0 = no TLS), with a server\n"
    "certificate from the issuing CA whose key stays in the token; each\n"
    "handshake signature is an audit leaf.\n"
    "The TLS port also serves the connector API to connectors presenting\n"
    "their client certificates (docs/connectors.md): POST /v1/assertions\n"
    "and POST /v1/connector/renew.\n";

static int
parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void
log_line(void *arg, const char *msg)
{
	char ts[32];

	(void)arg;
	rf_iso_time((int64_t)time(NULL), ts);
	fprintf(stderr, "ringfence serve: %s %s\n", ts, msg);
}

static int
audit_event(struct rf_cli *cli, const char *type, const char *detail)
{
	struct rf_audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.actor = cli->who.actor;
	ev.source = "serve";
	ev.detail = detail;
	return rf_audit_append(cli->audit, &ev, 1, NULL);
}

/* The command's own handle started keyd if none ran; the server's
 * handles reconnect when keyd is back, and never start one themselves:
 * the server does, from its maintenance thread, unless it runs after the
 * user split (it could not start keyd as keyd's user). */
static const struct rf_custody server_class = {RF_KCLASS_SERVER, NULL, NULL};

/*
 * After binding its ports: no core dumps or ptrace, and, started as root,
 * server_user's uid (its files: scripts/run.sh); *split then 1. One line
 * says when the user split is off.
 */
static int
drop_privileges(const struct rf_config *cfg, int *split)
{
	struct passwd *pw;

	*split = 0;
	rf_keyd_harden();
	if (geteuid() != 0) {
		fprintf(stderr,
		    "ringfence serve: running as uid %u, not root: process "
		    "split on (keys in keyd), user split off\n",
		    (unsigned)geteuid());
		return 0;
	}
	if ((pw = getpwnam(cfg->server_user)) == NULL) {
		fprintf(stderr,
		    "ringfence serve: server user '%s' does not exist: running "
		    "as root without the user split\n",
		    cfg->server_user);
		return 0;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0 || setuid(0) == 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "cannot become server user '%s': %s", cfg->server_user,
		    strerror(errno));
	rf_keyd_harden(); /* a uid change resets the dumpable flag */
	*split = 1;
	fprintf(stderr, "ringfence serve: running as '%s' (uid %u)\n",
	    cfg->server_user, (unsigned)pw->pw_uid);
	return 0;
}

int
cmd_serve(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_http_opts o;
	struct rf_http *h = NULL;
	char detail[200], tls[64] = "";
	long v;
	int i, r, rc = EXIT_FAIL, split = 0;

	if (cli_wants_help(argc, argv)) {
		fputs(serve_help, stdout);
		return EXIT_OK;
	}
	memset(&o, 0, sizeof(o));
	o.port = -1;
	o.handle_signals = 1;
	o.log = log_line;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i],
			   *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--port") == 0) {
			if (parse_int(val, 0, 65535, &v) != 0)
				return cli_usage(
				    argv[0], "--port needs 0-65535");
			o.port = (int)v;
		} else if (strcmp(a, "--listen") == 0) {
			if (val == NULL || *val == '\0')
				return cli_usage(argv[0],
				    "--listen needs an "
				    "address");
			o.listen = val;
			o.allow_public = 1;
		} else if (strcmp(a, "--tls-port") == 0) {
			if (parse_int(val, 0, 65535, &v) != 0)
				return cli_usage(
				    argv[0], "--tls-port needs 0-65535");
			o.tls = 1;
			o.tls_port = (int)v;
		} else if (strcmp(a, "--threads") == 0) {
			if (parse_int(val, 1, RF_HTTP_THREADS_MAX, &v) != 0)
				return cli_usage(argv[0],
				    "--threads needs 1-%d",
				    RF_HTTP_THREADS_MAX);
			o.threads = (int)v;
		} else if (strcmp(a, "--duration") == 0) {
			if (parse_int(val, 1, INT_MAX, &v) != 0)
				return cli_usage(argv[0],
				    "--duration needs seconds (1 or more)");
			o.duration = v;
		} else
			return cli_usage(
			    argv[0], "unknown argument '%.60s'", a);
		i++;
	}
	if ((r = cli_open(cli, CLI_ALL)) != 0)
		return cli_fail(r);
	rf_ca_set_audit(cli->ca, cli->audit);
	/*
	 * serve faces the network: keyd signs for it only what the server
	 * class may have signed. The handles the server opens claim that
	 * class; the caller's handle makes the TLS certificate at setup (an
	 * admin request), then is lowered to it too.
	 */
	rf_keys_custody_use(&server_class);
	if ((r = rf_http_new(&cli->cfg, &o, cli->store, cli->audit, cli->keys,
		 cli->ca, &cli->who, &h)) != 0 ||
	    (r = rf_keys_custody_lower(cli->keys, RF_KCLASS_SERVER)) != 0 ||
	    (r = drop_privileges(&cli->cfg, &split)) != 0) {
		rc = cli_fail(r);
		goto out;
	}
	/* keyd gone (killed, a token folder missing): started again as a
	 * command would, unless keyd's user is another (docs/serve.md). */
	if (!split)
		rf_http_keyd_restart(h, cli_keyd_start, NULL);
	if (rf_http_tls_port(h) > 0)
		snprintf(tls, sizeof(tls), " https://%s:%d", rf_http_address(h),
		    rf_http_tls_port(h));
	snprintf(detail, sizeof(detail), "http://%s:%d%s threads %d",
	    rf_http_address(h), rf_http_port(h), tls,
	    o.threads > 0 ? o.threads : RF_HTTP_THREADS_DEFAULT);
	if ((r = audit_event(cli, "serve-start", detail)) != 0) {
		rc = cli_fail(r);
		goto out;
	}
	fprintf(stderr,
	    "ringfence: serving http://%s:%d (healthz, ca, crl, ocsp)\n",
	    rf_http_address(h), rf_http_port(h));
	if (rf_http_tls_port(h) > 0)
		fprintf(stderr,
		    "ringfence: serving https://%s:%d (the same routes; "
		    "TLS key %s)\n",
		    rf_http_address(h), rf_http_tls_port(h),
		    rf_key_id(rf_ca_key(cli->ca, "tls")));
	if ((r = rf_http_run(h)) != 0) {
		rc = cli_fail(r);
		(void)audit_event(cli, "serve-stop", "error");
		goto out;
	}
	if ((r = audit_event(cli, "serve-stop", detail)) != 0) {
		rc = cli_fail(r);
		goto out;
	}
	rc = EXIT_OK;
out:
	rf_http_free(h);
	return rc;
}
