/*
 * cli.h: the `ringfence` command, a thin layer over librf.
 *
 * Each subcommand is `int cmd_NAME(struct rf_cli *cli, int argc, char **argv)`
 * with argv[0] the subcommand name, and returns an exit code: 0 ok,
 * 1 failure (after printing one line with cli_fail), 2 usage.
 */
#ifndef RF_CLI_CLI_H
#define RF_CLI_CLI_H

#include <sys/types.h>

#include <jansson.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "common/config.h"
#include "keys/keyd.h"
#include "keys/keys.h"
#include "store/store.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct rf_cli {
	struct rf_config cfg;
	struct rf_store *store;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
	int json; /* --json given */
};

/* Open what a command needs, in order: store, audit, keys, ca. */
enum { CLI_STORE = 1, CLI_AUDIT = 2, CLI_KEYS = 4, CLI_CA = 8, CLI_ALL = 15 };
int cli_open(struct rf_cli *cli, int what);
/* Wipe RINGFENCE_PIN from this process's environment (keyd reads it). */
void cli_forget_pin(void);
/* Print j on one line (compact, keys sorted, ASCII) and free it: EXIT_OK, or
 * the failure of a NULL j (a failed json_pack). */
int cli_json_print(json_t *j);
/* The same, for a caller that reports errors itself: 0 or RF_ERR_ALLOC. */
int cli_json_put(json_t *j);
/*
 * A measured number (a rate, seconds) for JSON: to 0.1, or to 3
 * significant digits where that is finer (0.0123), so that it reads 60.8,
 * not 60.798000000000002; null when not finite. Dumped with
 * CLI_JSON_REALS (cli_json_put does), which prints it as rounded.
 */
json_t *cli_json_real(double v);
/* Reals to 15 significant digits: a rounded double prints as written
 * (jansson's default, 17, prints 60.8 as 60.799999999999997). */
#define CLI_JSON_REALS JSON_REAL_PRECISION(15)
void cli_close(struct rf_cli *cli);

/* Print "ringfence: <message>" for error r on stderr; returns EXIT_FAIL. */
int cli_fail(int r);
/* Print "ringfence CMD: <message>" and a usage hint; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) RF_PRINTF(2, 3);

/* Flush stdout; on a short write print the one line (what failed, e.g.
 * "No space left on device") and return EXIT_FAIL. */
int cli_flush(void) RF_WUR;

/* True if argv[i] is --help or -h. */
int cli_wants_help(int argc, char **argv);

/*
 * A time given on the command line: Unix seconds, ISO 8601 UTC
 * ("2026-12-06T21:00:00Z", as listings print it) or a UTC date
 * ("2026-12-06"). 0, or -1 for anything else.
 */
int cli_parse_time(const char *s, int64_t *t);
/* Listings print times with rf_iso_time (common/rf.h). */
/*
 * Where an --out writes, checked before anything is made: the folder dir
 * opened into *dirfd (close with close()) and writable; for a file path,
 * also its name in it (*name, pointing into path), which must not be a
 * folder. The file is then written under *dirfd (common/file.h).
 */
int cli_out_dir_open(const char *dir, int *dirfd) RF_WUR;
int cli_out_file_open(const char *path, int *dirfd, const char **name) RF_WUR;

int cmd_init(struct rf_cli *cli, int argc, char **argv);
int cmd_tenant(struct rf_cli *cli, int argc, char **argv);
int cmd_issue(struct rf_cli *cli, int argc, char **argv);
int cmd_cert(struct rf_cli *cli, int argc, char **argv);
int cmd_serve(struct rf_cli *cli, int argc, char **argv);
int cmd_revoke(struct rf_cli *cli, int argc, char **argv);
int cmd_crl(struct rf_cli *cli, int argc, char **argv);
int cmd_audit(struct rf_cli *cli, int argc, char **argv);
int cmd_keys(struct rf_cli *cli, int argc, char **argv);
int cmd_keys_pool(struct rf_cli *cli, int argc, char **argv);
int cmd_incident(struct rf_cli *cli, int argc, char **argv);
int cmd_connection(struct rf_cli *cli, int argc, char **argv);
int cmd_connector(struct rf_cli *cli, int argc, char **argv);
int cmd_assert(struct rf_cli *cli, int argc, char **argv);
int cmd_alerts(struct rf_cli *cli, int argc, char **argv);
/* `ringfence audit reconcile --signins FILE` (cmd_reconcile.c). */
int cmd_audit_reconcile(struct rf_cli *cli, int argc, char **argv);
int cmd_keyd(struct rf_cli *cli, int argc, char **argv);

/* Start the state folder's custody process and wait for its socket
 * (struct rf_custody's start, keyd.h). */
int cli_keyd_start(void *arg, const struct rf_config *cfg) RF_WUR;
/* Stop the state folder's custody process, if one runs (*stopped: its
 * pid, 0 when none ran). */
int cli_keyd_stop(const struct rf_config *cfg, pid_t *stopped) RF_WUR;

#endif
