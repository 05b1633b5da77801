/*
 * ringfence init: create the embedded token (SoftHSM2) or use the configured
 * one, the store, the audit key and the CA hierarchy.
 *
 * All or nothing: if any step fails, everything this run created is removed
 * (database, token folder, softhsm2.conf, PIN files), so that running init
 * again starts clean. An initialised state is never touched.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/cli.h"
#include "http/notify.h"
#include "keys/ledger.h"

static const char init_help[] =
    "usage: ringfence init [--new] [--so-pin-file FILE]\n"
    "\n"
    "Creates the state folder ($RINGFENCE_HOME, default ./var): a SoftHSM2\n"
    "token with its own softhsm2.conf and a random PIN in token.pin of the\n"
    "custody folder beside it (custody_dir, default $RINGFENCE_HOME-custody,\n"
    "mode 0700; unless RINGFENCE_PIN is set), so that a copy of the state\n"
    "folder cannot sign. The SO PIN is not kept: it is printed once, or\n"
    "written to FILE (--so-pin-file) for you to move offline.\n"
    "The SQLite store, the audit key, a root CA, an\n"
    "issuing CA and a delegated OCSP signer, all keys inside the token.\n"
    "With a hardware token (module set, softhsm_conf empty), the token must\n"
    "exist already and only keys are generated in it.\n"
    "Refuses an initialised state, and a token folder that holds keys\n"
    "while the store (RINGFENCE_DB_PATH) is missing: init never destroys\n"
    "keys it did not make. A failed init leaves nothing behind.\n"
    "Run as root while the custody user (custody_user) exists, init gives\n"
    "the state to it, as make run does, for the keyd that runs as it.\n"
    "\n"
    "  --new   first move the old state (store, tokens, softhsm2.conf,\n"
    "          token-meta) aside into $RINGFENCE_HOME/old-TIME/, and its\n"
    "          PIN (with keyd's ledger and proofs) into old-TIME/ of the\n"
    "          custody folder, never beside the tokens; nothing is\n"
    "          deleted\n"
    "  --so-pin-file FILE   write the token SO PIN to FILE (mode 0600)\n"
    "          instead of printing it, for you to move offline\n";

struct created {
	int db, tokens, softhsm_conf, pin_file, so_pin_file, custody_dir,
	    ledger;
	char tokens_dir[RF_PATH_MAX + 16];
	char so_pin_path[RF_PATH_MAX + 16];
};

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static void
remove_db(const char *db)
{
	char p[RF_PATH_MAX + 8];

	unlink(db);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
}

static void
undo(const struct rf_config *cfg, const struct created *c)
{
	char meta[RF_PATH_MAX + 16];

	if (c->db)
		remove_db(cfg->db_path);

	if (c->tokens) {
		rm_rf(c->tokens_dir);
		snprintf(meta, sizeof(meta), "%s/token-meta", cfg->home);
		rm_rf(meta); /* the copies of the tokens just removed */
	}
	if (c->softhsm_conf)
		unlink(cfg->softhsm_conf);
	if (c->pin_file)
		unlink(cfg->pin_file);
	if (c->so_pin_file)
		unlink(c->so_pin_path);
	if (c->ledger) {
		snprintf(
		    meta, sizeof(meta), "%s/revoked.ledger", cfg->custody_dir);
		unlink(meta);
	}
	if (c->custody_dir)
		rmdir(cfg->custody_dir);
}

/* 16 random bytes as 32 hex digits. */
static int
random_pin(char out[33])
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return rf_err_set(RF_ERR_INTERNAL, "no randomness for the PIN");
	rf_hex(b, sizeof(b), out);
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static int
write_secret(const char *path, const char *secret)
{
	char buf[160];
	int r;

	snprintf(buf, sizeof(buf), "%s\n", secret);
	r = rf_write_file(path, (const uint8_t *)buf, strlen(buf), 0600);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/*
 * How many key objects the SoftHSM token folder holds: every file
 * tokens/<uuid>/<object>.object but token.object (the token's own
 * metadata). A folder that cannot be read counts as holding keys.
 */
static size_t
token_objects(const char *tokens_dir)
{
	char sub[RF_PATH_MAX + 300];
	struct dirent *e, *o;
	DIR *d, *t;
	size_t n = 0, len;

	if ((d = opendir(tokens_dir)) == NULL)
		return errno == ENOENT ? 0 : 1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", tokens_dir, e->d_name);
		if ((t = opendir(sub)) == NULL)
			continue; /* not a token folder */
		while ((o = readdir(t)) != NULL) {
			len = strlen(o->d_name);
			if (len > 7 &&
			    strcmp(o->d_name + len - 7, ".object") == 0 &&
			    strcmp(o->d_name, "token.object") != 0)
				n++;
		}
		closedir(t);
	}
	closedir(d);
	return n;
}

/* Move path (if it exists) into folder dir; *moved counts it. */
static int
move_into(const char *path, const char *dir, const char *name, int *moved)
{
	char to[RF_PATH_MAX + 300];

	if (!exists(path))
		return 0;
	if (snprintf(to, sizeof(to), "%s/%s", dir, name) >= (int)sizeof(to))
		return rf_err_set(
		    RF_ERR_ARG, "path %s/%s is too long", dir, name);
	if (rename(path, to) != 0)
		return rf_err_set(RF_ERR_IO,
		    "cannot move %s to %s: %s (move it yourself, then run "
		    "init again)",
		    path, to, strerror(errno));
	(*moved)++;
	return 0;
}

/*
 * The PIN file of an embedded token, keyd's ledger and its record of
 * connector proofs go aside in the custody folder (the PIN file's own folder),
 * into old-<stamp>/ there: never beside the tokens they open, so that a copy of
 * the state folder still cannot sign.
 */
static int
move_custody_aside(const struct rf_config *cfg, const char *stamp)
{
	char dir[RF_PATH_MAX + 64], p[RF_PATH_MAX + 64];
	const char *slash = strrchr(cfg->pin_file, '/');
	char name[16];
	int i, r, moved = 0;

	if (!exists(cfg->pin_file))
		return 0;
	if (snprintf(dir, sizeof(dir), "%.*s/old-%s",
		slash != NULL ? (int)(slash - cfg->pin_file) : 1,
		slash != NULL ? cfg->pin_file : ".", stamp) >= (int)sizeof(dir))
		return rf_err_set(
		    RF_ERR_ARG, "path of %s is too long", cfg->pin_file);
	if (mkdir(dir, 0700) != 0)
		return rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	snprintf(p, sizeof(p), "%s/revoked.ledger", cfg->custody_dir);
	if ((r = move_into(cfg->pin_file, dir, "token.pin", &moved)) != 0 ||
	    (r = move_into(p, dir, "revoked.ledger", &moved)) != 0)
		return r;
	/* keyd's record of connector proofs seen (rf_proof_guard_keep). */
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "proofs.%d", i);
		snprintf(p, sizeof(p), "%s/%s", cfg->custody_dir, name);
		if ((r = move_into(p, dir, name, &moved)) != 0)
			return r;
	}
	fprintf(stderr,
	    "ringfence: moved the old PIN to %s, with keyd's ledger and "
	    "record of proofs (not beside the old tokens)\n",
	    dir);
	return 0;
}

/*
 * init --new: move the old state aside into $RINGFENCE_HOME/old-<UTC
 * time>/ (0700): the store and its WAL files, the token folder, its
 * verified metadata copies and softhsm2.conf; the PIN file of the
 * embedded token, keyd's ledger and its record of proofs into old-<UTC
 * time>/ of the custody folder (move_custody_aside). Nothing is deleted; the
 * keys stay in the moved token folder.
 */
static int
move_aside(struct rf_cli *cli, int embedded, const char *tokens_dir)
{
	const struct rf_config *cfg = &cli->cfg;
	char dir[RF_PATH_MAX + 64], stamp[32], p[RF_PATH_MAX + 64];
	const char *base;
	struct tm tm;
	time_t now = time(NULL);
	int r, moved = 0, acked;
	pid_t keyd;

	/*
	 * A running serve holds the old store open and would go on answering
	 * from it (and its keeper would start keyd again): its operator stops
	 * it first. It answers on serve.sock (http/notify.h); one that does
	 * not answer in time is there all the same.
	 */
	if ((r = rf_http_notify_send(cfg, RF_NOTIFY_TIMEOUT_MS, &acked)) != 0) {
		char why[300];

		snprintf(why, sizeof(why), "%s", rf_err_msg(r));
		return rf_err_set(RF_ERR_STATE,
		    "cannot tell whether serve runs on %s (%s): stop serve "
		    "if it runs, then run 'ringfence init --new' again",
		    cfg->home, why);
	}
	if (acked)
		return rf_err_set(RF_ERR_STATE,
		    "serve is running on %s (it answered on %s/%s): stop it "
		    "first, then run 'ringfence init --new' again",
		    cfg->home, cfg->home, RF_NOTIFY_SOCK);
	/* The old state's custody process holds its tokens: stopped first. */
	if ((r = cli_keyd_stop(cfg, &keyd)) != 0)
		return r;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (embedded && (r = move_custody_aside(cfg, stamp)) != 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/old-%s", cfg->home, stamp);
	if (mkdir(dir, 0700) != 0)
		return rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	base = strrchr(cfg->db_path, '/');
	base = base ? base + 1 : cfg->db_path;
	if ((r = move_into(cfg->db_path, dir, base, &moved)) != 0)
		return r;
	snprintf(p, sizeof(p), "%s-wal", cfg->db_path);
	snprintf(stamp, sizeof(stamp), "%.20s-wal", base);
	if ((r = move_into(p, dir, stamp, &moved)) != 0)
		return r;
	snprintf(p, sizeof(p), "%s-shm", cfg->db_path);
	snprintf(stamp, sizeof(stamp), "%.20s-shm", base);
	if ((r = move_into(p, dir, stamp, &moved)) != 0 ||
	    (r = move_into(tokens_dir, dir, "tokens", &moved)) != 0)
		return r;
	snprintf(p, sizeof(p), "%s/token-meta", cfg->home);
	if ((r = move_into(p, dir, "token-meta", &moved)) != 0 ||
	    (r = move_into(cfg->softhsm_conf, dir, "softhsm2.conf", &moved)) !=
		0)
		return r;
	snprintf(p, sizeof(p), "%s/token.so-pin", cfg->home);
	if ((r = move_into(p, dir, "token.so-pin", &moved)) != 0)
		return r;
	if (moved == 0)
		rmdir(dir);
	else
		fprintf(stderr, "ringfence: moved the old state to %s\n", dir);
	return 0;
}

/*
 * A state whose database says it is not initialised is the remains of a
 * failed init: its database is cleared so this run starts clean, and so
 * is a token folder holding no key. A token folder holding keys is never
 * removed: without its store (RINGFENCE_DB_PATH missing, or pointing at
 * another file) init is refused; --new moves both aside first.
 */
static int
check_previous(
    struct rf_cli *cli, int embedded, const char *tokens_dir, int fresh)
{
	struct rf_store *st = NULL;
	char v[16];
	size_t nobj;
	int r;

	if (fresh && (r = move_aside(cli, embedded, tokens_dir)) != 0)
		return r;
	if (exists(cli->cfg.db_path)) {
		if ((r = rf_store_open(cli->cfg.db_path, 0, &st)) != 0)
			return r;
		r = rf_store_meta_get(st, "initialised", v, sizeof(v));
		rf_store_free(st);
		if (r == 0)
			return rf_err_set(RF_ERR_ALREADY_INITIALISED,
			    "state at %s is already initialised: nothing was "
			    "changed (to start over, 'ringfence init --new' "
			    "moves it aside; its keys are kept)",
			    cli->cfg.home);
		if (r != RF_ERR_NOT_FOUND)
			return r;
		rf_err_clear();
	}
	if (embedded && (nobj = token_objects(tokens_dir)) > 0)
		return rf_err_set(RF_ERR_EXISTS,
		    "token folder %s holds %zu key objects but the store %s "
		    "is missing or not initialised: nothing was changed (point "
		    "RINGFENCE_DB_PATH at its store, or run 'ringfence init "
		    "--new' to move the old state aside)",
		    tokens_dir, nobj, cli->cfg.db_path);
	if (exists(cli->cfg.db_path))
		remove_db(cli->cfg.db_path);
	if (embedded && exists(tokens_dir))
		rm_rf(tokens_dir); /* tokens without a key: a failed init's */
	return 0;
}

static int
count_key(void *arg, const struct rf_key_info *ki)
{
	(void)ki;
	(*(size_t *)arg)++;
	return 0;
}

/* The custody folder, made here (undo removes it) unless it exists. */
static int
custody_mkdir(const struct rf_config *cfg, struct created *c)
{
	if (mkdir(cfg->custody_dir, 0700) == 0)
		c->custody_dir = 1;
	else if (errno != EEXIST)
		return rf_err_set(RF_ERR_IO,
		    "cannot create custody folder %s: %s", cfg->custody_dir,
		    strerror(errno));
	return 0;
}

/*
 * The CA keys just made, in keyd's ledger (ledger.h), before the store's
 * commit names them (rf_ca_init_ex): for serve, keyd signs with a CA key
 * only as what its ledger says the key is, and it takes the store's CA
 * keys only once. A ledger kept from an earlier state (init --new with the
 * PIN in the environment, or a token of another module, leaves it where it
 * is) would otherwise never learn these; written after the commit, an init
 * killed in between left them out of it for good. An init that fails after
 * this removes a ledger it created (undo); a kept one keeps the lines,
 * naming keys that no store holds, which keyd therefore never signs with
 * for serve.
 */
struct ledger_hook {
	const struct rf_config *cfg;
	struct created *c;
};

static int
ledger_ca_keys(
    void *arg, const char *const *ids, const char *const *roles, size_t n)
{
	struct ledger_hook *h = arg;
	char path[RF_PATH_MAX + 32];
	struct rf_ledger *l = NULL;
	struct stat sb;
	size_t i;
	int r = 0;

	if ((r = custody_mkdir(h->cfg, h->c)) != 0)
		return r;
	snprintf(path, sizeof(path), "%s/revoked.ledger", h->cfg->custody_dir);
	h->c->ledger = stat(path, &sb) != 0;
	if ((r = rf_ledger_open(path, &l)) != 0)
		return r;
	for (i = 0; i < n && r == 0; i++)
		r = rf_ledger_ca_key(l, ids[i], roles[i]);
	rf_ledger_free(l);
	return r;
}

static int
init_state(struct rf_cli *cli, struct created *c, int fresh, char so_pin[33])
{
	struct rf_config *cfg = &cli->cfg;
	const char *env_pin = getenv("RINGFENCE_PIN");
	char pin[sizeof(cli->cfg.pin)] = "", ntok[16];
	int embedded = cfg->softhsm_conf[0] != '\0' &&
	    strstr(cfg->module, "softhsm") != NULL;
	struct ledger_hook hook;
	size_t nkeys = 0;
	int r = RF_ERR_INTERNAL;

	snprintf(c->tokens_dir, sizeof(c->tokens_dir), "%s/tokens", cfg->home);
	if (mkdir(cfg->home, 0700) != 0 && errno != EEXIST)
		return rf_err_set(RF_ERR_IO,
		    "cannot create state folder %s: "
		    "%s",
		    cfg->home, strerror(errno));
	if ((r = check_previous(cli, embedded, c->tokens_dir, fresh)) != 0)
		return r;

	if (embedded) {
		c->softhsm_conf = !exists(cfg->softhsm_conf);
		c->tokens = 1;
		if ((r = random_pin(so_pin)) != 0)
			goto out;
		if (env_pin == NULL || *env_pin == '\0') {
			/* The custody folder: beside the state, never in it. */
			if ((r = custody_mkdir(cfg, c)) != 0 ||
			    (r = random_pin(pin)) != 0 ||
			    (r = write_secret(cfg->pin_file, pin)) != 0)
				goto out;
			c->pin_file = 1;
		} else if (strlen(env_pin) >= sizeof(pin)) {
			r = rf_err_set(
			    RF_ERR_CONFIG, "RINGFENCE_PIN is too long");
			goto out;
		} else {
			snprintf(pin, sizeof(pin), "%s", env_pin);
		}
		if (c->so_pin_path[0] != '\0') {
			if ((r = write_secret(c->so_pin_path, so_pin)) != 0)
				goto out;
			c->so_pin_file = 1;
		}
		if ((r = rf_keys_init_token(cfg, so_pin, pin, cfg->tokens)) !=
		    0)
			goto out;
	}
	c->db = 1;
	snprintf(ntok, sizeof(ntok), "%d", cfg->tokens);
	if ((r = rf_store_open(cfg->db_path, 1, &cli->store)) != 0 ||
	    (embedded &&
		(r = rf_store_meta_set(cli->store, "key_tokens", ntok)) != 0) ||
	    (r = cli_open(cli, CLI_KEYS)) != 0)
		goto out;
	/* A configured token that holds keys belongs to another store. */
	if (!embedded &&
	    ((r = rf_keys_list(cli->keys, count_key, &nkeys)) != 0 ||
		nkeys > 0)) {
		if (r == 0)
			r = rf_err_set(RF_ERR_EXISTS,
			    "token '%s' in module %s holds %zu keys but the "
			    "store %s is new: nothing was changed (point "
			    "RINGFENCE_DB_PATH at its store)",
			    cfg->token, cfg->module, nkeys, cfg->db_path);
		goto out;
	}
	hook.cfg = cfg;
	hook.c = c;
	if ((r = rf_ca_init_ex(cfg, cli->store, cli->keys, &cli->who,
		 ledger_ca_keys, &hook)) != 0)
		goto out;
	r = 0;
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	return r;
}

/* nftw has no argument: the owner hand_over() gives the state. */
static uid_t hand_uid;
static gid_t hand_gid;

static int
hand_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return lchown(path, hand_uid, hand_gid) != 0 ? -1 : 0;
}

/* chown path (if it exists) and set its mode; -1 with errno on failure. */
static int
hand_file(const char *path, mode_t mode)
{
	if (!exists(path))
		return 0;
	if (lchown(path, hand_uid, hand_gid) != 0 || chmod(path, mode) != 0)
		return -1;
	return 0;
}

/*
 * init as root, with the custody user present (make run made it): the
 * state goes to that user at once, as scripts/run.sh leaves it, so that
 * the keyd the next command starts (as that user) can open it: the state
 * folder and the store its user's and its group's (serve's user is in
 * it), the token folder, softhsm2.conf, the custody folder and the PIN
 * its user's alone. *name gets the user, "" when nothing was handed.
 */
static int
hand_over(const struct rf_config *cfg, char *name, size_t namelen)
{
	struct passwd *pw;
	char p[RF_PATH_MAX + 16];
	int ok;

	name[0] = '\0';
	if (geteuid() != 0 || (pw = getpwnam(cfg->custody_user)) == NULL)
		return 0;
	hand_uid = pw->pw_uid;
	hand_gid = pw->pw_gid;
	ok = nftw(cfg->home, hand_entry, 16, FTW_PHYS) == 0 &&
	    (!exists(cfg->custody_dir) ||
		nftw(cfg->custody_dir, hand_entry, 16, FTW_PHYS) == 0) &&
	    chmod(cfg->home, 0770) == 0 && hand_file(cfg->db_path, 0660) == 0;
	snprintf(p, sizeof(p), "%s-wal", cfg->db_path);
	ok = ok && hand_file(p, 0660) == 0;
	snprintf(p, sizeof(p), "%s-shm", cfg->db_path);
	ok = ok && hand_file(p, 0660) == 0;
	snprintf(p, sizeof(p), "%s/tokens", cfg->home);
	ok = ok && hand_file(p, 0700) == 0 &&
	    hand_file(cfg->softhsm_conf, 0600) == 0 &&
	    hand_file(cfg->custody_dir, 0700) == 0 &&
	    hand_file(cfg->pin_file, 0600) == 0;
	if (!ok)
		return rf_err_set(RF_ERR_IO,
		    "cannot give the state %s to the custody user '%s': %s",
		    cfg->home, cfg->custody_user, strerror(errno));
	snprintf(name, namelen, "%s", pw->pw_name);
	return 0;
}

int
cmd_init(struct rf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"new", no_argument, NULL, 'n'},
	    {"so-pin-file", required_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	struct created c;
	struct rf_key_rec kr;
	char more[96] = "", so_pin[33] = "", owner[64];
	struct group *gr;
	int ch, fresh = 0, r;

	if (cli_wants_help(argc, argv)) {
		fputs(init_help, stdout);
		return EXIT_OK;
	}
	optind = 1;
	opterr = 0;
	memset(&c, 0, sizeof(c));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			fresh = 1;
		else if (ch == 's' &&
		    snprintf(c.so_pin_path, sizeof(c.so_pin_path), "%s",
			optarg) >= (int)sizeof(c.so_pin_path))
			return cli_usage("init", "--so-pin-file path too long");
		else if (ch != 's')
			return cli_usage(
			    "init", "unknown option '%s'", argv[optind - 1]);
	}
	if (optind < argc)
		return cli_usage(
		    "init", "unexpected argument '%s'", argv[optind]);
	if ((r = init_state(cli, &c, fresh, so_pin)) != 0 ||
	    (r = hand_over(&cli->cfg, owner, sizeof(owner))) != 0) {
		OPENSSL_cleanse(so_pin, sizeof(so_pin));
		cli_close(cli);
		undo(&cli->cfg, &c);
		return cli_fail(r);
	}
	/* The SO PIN is not kept: once on the terminal, or in the file. */
	if (c.so_pin_file)
		fprintf(stderr,
		    "ringfence: token SO PIN written to %s: move it offline "
		    "now (ringfence never needs it again)\n",
		    c.so_pin_path);
	else if (so_pin[0] != '\0')
		fprintf(stderr,
		    "ringfence: token SO PIN (shown once, not kept; write it "
		    "down offline): %s\n",
		    so_pin);
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	if (c.tokens && cli->cfg.tokens > 1)
		snprintf(more, sizeof(more), " to '%s.%d'", cli->cfg.token,
		    cli->cfg.tokens - 1);
	fprintf(stderr,
	    "ringfence: initialised %s\n"
	    "  token:  '%s'%s in %s (PIN in %s)\n"
	    "  store:  %s\n"
	    "  CA:     root, issuing and OCSP signer (%s keys in the token)\n"
	    "  next:   ringfence tenant add NAME; ringfence serve\n",
	    cli->cfg.home, cli->cfg.token, more, cli->cfg.module,
	    cli->cfg.pin_file, cli->cfg.db_path, cli->cfg.ca_alg);
	if (owner[0] != '\0') {
		gr = getgrgid(hand_gid);
		fprintf(stderr,
		    "  owner:  '%s' (group '%s'), keyd's user: the token and "
		    "the PIN are its alone\n",
		    owner, gr != NULL ? gr->gr_name : "?");
	}
	/* Pinned outside this host, it is what the record is checked
	 * against (docs/audit-format.md). */
	if (rf_store_key_by_purpose(cli->store, "audit", &kr) == 0)
		fprintf(stderr,
		    "  audit key id: %s\n"
		    "          keep it off this host: ringfence audit verify "
		    "--audit-key-id ID,\n"
		    "          ringfence audit watch URL --checkpoint FILE "
		    "--audit-key-id ID\n",
		    kr.id);
	return EXIT_OK;
}
