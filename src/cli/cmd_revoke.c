/* ringfence revoke and ringfence crl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/progress.h"
#include "revoke/revoke.h"

static const char revoke_help[] =
    "usage: ringfence revoke SERIAL | --tenant TENANT | --key KEYID\n"
    "                        [--reason REASON]\n"
    "\n"
    "Revokes one certificate (SERIAL, hex), every certificate of a tenant,\n"
    "or every certificate of a public key (KEYID: SHA-256 of the SPKI, 64\n"
    "hex). REASON is an RFC 5280 name: unspecified, keyCompromise,\n"
    "cACompromise, affiliationChanged, superseded, cessationOfOperation,\n"
    "certificateHold, privilegeWithdrawn, aACompromise. With keyCompromise,\n"
    "every certificate carrying the same public key is revoked too, in any\n"
    "tenant. Revoking again is harmless: the first date is kept and the\n"
    "reason can only be raised to keyCompromise.\n"
    "When the command returns, the OCSP responses and the CRL already say\n"
    "revoked.\n";

static const char crl_help[] =
    "usage: ringfence crl [--issuer issuing|root] [--out FILE] "
    "[--regenerate]\n"
    "\n"
    "Writes the current CRL (DER) of the issuer (default: issuing, which\n"
    "signs tenant certificates; root lists revoked issuing CAs) to FILE or\n"
    "standard output. A new CRL is made first when none exists, when it is\n"
    "due (a day old, near its nextUpdate, or a revocation since), or with\n"
    "--regenerate.\n";

static int
count_cb(void *arg, const struct rf_cert_rec *c)
{
	(void)c;
	(*(size_t *)arg)++;
	return 0;
}

int
cmd_revoke(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_revoke_req req = {0};
	struct rf_cert_filter f = {0};
	struct rf_progress *prog = NULL;
	size_t revoked = 0, matched = 0;
	char msg[1024];
	int i, r;

	req.reason = RF_CRL_REASON_NONE;
	if (cli_wants_help(argc, argv)) {
		fputs(revoke_help, stdout);
		return EXIT_OK;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			req.tenant = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			req.key_id = argv[++i];
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
			if (rf_crl_reason_parse(argv[++i], &req.reason) != 0)
				return cli_usage(
				    argv[0], "%s", rf_err_msg(RF_ERR_ARG));
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return cli_usage(argv[0],
			    "unknown or incomplete "
			    "option '%s'",
			    argv[i]);
		else if (req.serial == NULL)
			req.serial = argv[i];
		else
			return cli_usage(argv[0], "more than one serial");
	}
	if ((req.serial != NULL) + (req.tenant != NULL) +
		(req.key_id != NULL) !=
	    1)
		return cli_usage(argv[0],
		    "name exactly one of SERIAL, "
		    "--tenant or --key");
	if (req.reason == RF_CRL_REASON_REMOVE_FROM_CRL)
		return cli_usage(argv[0], "removeFromCRL cannot revoke");

	if ((r = cli_open(cli, CLI_ALL)) != 0)
		return cli_fail(r);
	if (req.tenant != NULL) {
		f.tenant = req.tenant;
		if ((r = rf_store_cert_foreach(
			 cli->store, &f, count_cb, &matched)) != 0)
			return cli_fail(r);
	}
	/* A tenant or key may hold many: progress (common/progress.h). */
	if (req.serial == NULL &&
	    (r = rf_progress_new(
		 req.tenant != NULL ? "revoke tenant" : "revoke key",
		 cli->json ? RF_PROGRESS_JSON : RF_PROGRESS_AUTO, &prog)) != 0)
		return cli_fail(r);
	/* rf_revoke moves it through its phases: commit, OCSP, CRLs. */
	req.progress = prog;
	r = rf_revoke(&cli->cfg, cli->store, cli->keys, cli->ca, cli->audit,
	    &req, &cli->who, &revoked);
	snprintf(msg, sizeof(msg), "%s", r != 0 ? rf_err_msg(r) : "");
	if (r != 0)
		rf_progress_fail(prog);
	else
		rf_progress_finish(prog);
	rf_progress_free(prog);
	if (r != 0)
		return cli_fail(rf_err_set(r, "%s", msg));
	if (req.tenant != NULL && matched == 0)
		printf("tenant %s has no certificates\n", req.tenant);
	else if (revoked == 0)
		printf("already revoked\n");
	else
		printf("revoked %zu certificate(s)\n", revoked);
	return EXIT_OK;
}

int
cmd_crl(struct rf_cli *cli, int argc, char **argv)
{
	const char *issuer = "issuing", *out = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	uint64_t number = 0;
	int64_t tu = 0, nu = 0;
	int i, r, regenerate = 0, due = 0, ret = EXIT_FAIL;

	if (cli_wants_help(argc, argv)) {
		fputs(crl_help, stdout);
		return EXIT_OK;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--issuer") == 0 && i + 1 < argc)
			issuer = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "--regenerate") == 0)
			regenerate = 1;
		else
			return cli_usage(
			    argv[0], "unexpected argument '%s'", argv[i]);
	}
	if (out == NULL && isatty(STDOUT_FILENO))
		return cli_usage(argv[0],
		    "refusing to write DER to a "
		    "terminal: use --out FILE or "
		    "redirect");

	if ((r = cli_open(cli, CLI_STORE)) != 0)
		return cli_fail(r);
	if (!regenerate &&
	    (r = rf_crl_due(&cli->cfg, cli->store, issuer, &due)) != 0)
		return cli_fail(r);
	if (regenerate || due) {
		if ((r = cli_open(cli, CLI_ALL)) != 0 ||
		    (r = rf_crl_generate(&cli->cfg, cli->store, cli->keys,
			 cli->ca, issuer, &cli->who)) != 0)
			return cli_fail(r);
	}
	if ((r = rf_store_crl_get(
		 cli->store, issuer, &number, &tu, &nu, &der, &len)) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(r, "no CRL for '%s'", issuer);
		ret = cli_fail(r);
		goto out;
	}
	if (out != NULL) {
		if ((r = rf_write_file(out, der, len, 0644)) != 0) {
			ret = cli_fail(r);
			goto out;
		}
	} else if (fwrite(der, 1, len, stdout) != len || fflush(stdout) != 0) {
		ret = cli_fail(rf_err_set(RF_ERR_IO,
		    "cannot write the CRL to "
		    "standard output"));
		goto out;
	}
	ret = EXIT_OK;
out:
	free(der);
	return ret;
}
