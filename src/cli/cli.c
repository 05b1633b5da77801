/* Shared plumbing of the subcommands: opening state, errors, usage. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/file.h"

int
cli_parse_time(const char *s, int64_t *t)
{
	struct tm tm;
	const char *e;
	char *end;
	long long v;

	if (*s == '\0')
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno != 0)
			return -1;
		*t = v;
		return 0;
	}
	/* strptime skips white space before each number: none is taken. */
	if (strspn(s, "0123456789-T:Z") != strlen(s))
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *e != '\0') {
		memset(&tm, 0, sizeof(tm));
		if ((e = strptime(s, "%Y-%m-%d", &tm)) == NULL || *e != '\0')
			return -1;
	}
	*t = (int64_t)timegm(&tm);
	return 0;
}

int
cli_out_dir_open(const char *dir, int *dirfd)
{
	int r;

	if ((r = rf_file_open_dir(dir, dirfd)) != 0) {
		*dirfd = -1;
		return r;
	}
	if (faccessat(*dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
		r = rf_err_set(RF_ERR_IO, "cannot write in folder %s: %s", dir,
		    strerror(errno));
		close(*dirfd);
		*dirfd = -1;
	}
	return r;
}

int
cli_out_file_open(const char *path, int *dirfd, const char **name)
{
	const char *slash = strrchr(path, '/');
	char dir[RF_PATH_MAX];
	struct stat sb;
	int r;

	*dirfd = -1;
	*name = slash != NULL ? slash + 1 : path;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return rf_err_set(RF_ERR_ARG, "path too long");
	else
		snprintf(dir, sizeof(dir), "%.*s",
		    slash == path ? 1 : (int)(slash - path), path);
	if ((r = rf_file_name_check(*name)) != 0)
		return rf_err_set(r, "give a file name, not a folder");
	if ((r = cli_out_dir_open(dir, dirfd)) != 0)
		return r;
	if (fstatat(*dirfd, *name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(sb.st_mode)) {
		close(*dirfd);
		*dirfd = -1;
		return rf_err_set(
		    RF_ERR_ARG, "a folder: give a file name in it");
	}
	return 0;
}

int
cli_json_put(json_t *j)
{
	char *s;

	if (j == NULL)
		return RF_ERR_ALLOC;
	s = json_dumps(j,
	    JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | CLI_JSON_REALS);
	json_decref(j);
	if (s == NULL)
		return RF_ERR_ALLOC;
	printf("%s\n", s);
	free(s);
	return 0;
}

json_t *
cli_json_real(double v)
{
	double a = v < 0 ? -v : v, scale = 10;

	if (!isfinite(v))
		return json_null();
	if (a >= 1e15)
		return json_real(v); /* no fraction left to round */
	while (a > 0 && a * scale < 100 && scale < 1e12)
		scale *= 10;
	return json_real(
	    (double)(long long)(v * scale + (v < 0 ? -0.5 : 0.5)) / scale);
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
	unsigned char msg[512];
	va_list ap;
	size_t i;
	int n;

	va_start(ap, fmt);
	n = vsnprintf((char *)msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	/*
	 * What a user typed is in it: one line, and no control byte (C0,
	 * DEL, or C1 as UTF-8) that could move the cursor or forge a line.
	 */
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';
		else if (msg[i] == 0xc2 && msg[i + 1] >= 0x80 &&
		    msg[i + 1] <= 0x9f) {
			msg[i] = '?';
			msg[++i] = '?';
		}
	fprintf(stderr, "ringfence %s: %s (see 'ringfence %s --help')\n", cmd,
	    (const char *)msg, cmd);
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
