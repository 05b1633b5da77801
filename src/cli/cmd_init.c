/*
 * ringfence init: create the embedded token (SoftHSM2) or use the configured
 * one, the store, the audit key and the CA hierarchy.
 *
 * All or nothing: if any step fails, everything this run created is removed
 * (database, token folder, softhsm2.conf, PIN files), so that running init
 * again starts clean. An initialised state is never touched.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/cli.h"

static const char init_help[] =
    "usage: ringfence init\n"
    "\n"
    "Creates the state folder ($RINGFENCE_HOME, default ./var): a SoftHSM2\n"
    "token with its own softhsm2.conf and a random PIN in token.pin (unless\n"
    "RINGFENCE_PIN is set), the SQLite store, the audit key, a root CA, an\n"
    "issuing CA and a delegated OCSP signer, all keys inside the token.\n"
    "With a hardware token (module set, softhsm_conf empty), the token must\n"
    "exist already and only keys are generated in it.\n"
    "Refuses an initialised state. A failed init leaves nothing behind.\n";

struct created {
	int db, tokens, softhsm_conf, pin_file, so_pin_file;
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
	if (c->db)
		remove_db(cfg->db_path);
	if (c->tokens)
		rm_rf(c->tokens_dir);
	if (c->softhsm_conf)
		unlink(cfg->softhsm_conf);
	if (c->pin_file)
		unlink(cfg->pin_file);
	if (c->so_pin_file)
		unlink(c->so_pin_path);
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
 * A state whose database says it is not initialised is the remains of a
 * failed init: clear it so this run starts clean.
 */
static int
check_previous(struct rf_cli *cli, int embedded, const char *tokens_dir)
{
	struct rf_store *st = NULL;
	char v[16];
	int r;

	if (exists(cli->cfg.db_path)) {
		if ((r = rf_store_open(cli->cfg.db_path, 0, &st)) != 0)
			return r;
		r = rf_store_meta_get(st, "initialised", v, sizeof(v));
		rf_store_free(st);
		if (r == 0)
			return rf_err_set(RF_ERR_ALREADY_INITIALISED,
			    "state at %s is already initialised: nothing was "
			    "changed (remove the folder to start over)",
			    cli->cfg.home);
		if (r != RF_ERR_NOT_FOUND)
			return r;
		remove_db(cli->cfg.db_path);
	}
	if (embedded && exists(tokens_dir))
		rm_rf(tokens_dir);
	return 0;
}

static int
init_state(struct rf_cli *cli, struct created *c)
{
	struct rf_config *cfg = &cli->cfg;
	char pin[sizeof(cli->cfg.pin)] = "", so_pin[33] = "", ntok[16];
	int embedded = cfg->softhsm_conf[0] != '\0' &&
	    strstr(cfg->module, "softhsm") != NULL;
	int r = RF_ERR_INTERNAL;

	snprintf(c->tokens_dir, sizeof(c->tokens_dir), "%s/tokens", cfg->home);
	snprintf(c->so_pin_path, sizeof(c->so_pin_path), "%s/token.so-pin",
	    cfg->home);
	if (mkdir(cfg->home, 0700) != 0 && errno != EEXIST)
		return rf_err_set(RF_ERR_IO,
		    "cannot create state folder %s: "
		    "%s",
		    cfg->home, strerror(errno));
	if ((r = check_previous(cli, embedded, c->tokens_dir)) != 0)
		return r;

	if (embedded) {
		c->softhsm_conf = !exists(cfg->softhsm_conf);
		c->tokens = 1;
		if ((r = random_pin(so_pin)) != 0)
			goto out;
		if (cfg->pin[0] == '\0') {
			if ((r = random_pin(pin)) != 0 ||
			    (r = write_secret(cfg->pin_file, pin)) != 0)
				goto out;
			c->pin_file = 1;
		} else {
			snprintf(pin, sizeof(pin), "%s", cfg->pin);
		}
		if ((r = write_secret(c->so_pin_path, so_pin)) != 0)
			goto out;
		c->so_pin_file = 1;
		if ((r = rf_keys_init_token(cfg, so_pin, pin, cfg->tokens)) !=
		    0)
			goto out;
	}
	c->db = 1;
	snprintf(ntok, sizeof(ntok), "%d", cfg->tokens);
	if ((r = rf_store_open(cfg->db_path, 1, &cli->store)) != 0 ||
	    (embedded &&
		(r = rf_store_meta_set(cli->store, "key_tokens", ntok)) != 0) ||
	    (r = cli_open(cli, CLI_KEYS)) != 0 ||
	    (r = rf_ca_init(cfg, cli->store, cli->keys, &cli->who)) != 0)
		goto out;
	r = 0;
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	return r;
}

int
cmd_init(struct rf_cli *cli, int argc, char **argv)
{
	struct created c;
	struct rf_key_rec kr;
	char more[96] = "";
	int r;

	if (cli_wants_help(argc, argv)) {
		fputs(init_help, stdout);
		return EXIT_OK;
	}
	if (argc > 1)
		return cli_usage("init", "unexpected argument '%s'", argv[1]);
	memset(&c, 0, sizeof(c));
	if ((r = init_state(cli, &c)) != 0) {
		cli_close(cli);
		undo(&cli->cfg, &c);
		return cli_fail(r);
	}
	if (c.tokens && cli->cfg.tokens > 1)
		snprintf(more, sizeof(more), " to '%s.%d'", cli->cfg.token,
		    cli->cfg.tokens - 1);
	fprintf(stderr,
	    "ringfence: initialised %s\n"
	    "  token:  '%s'%s in %s\n"
	    "  store:  %s\n"
	    "  CA:     root, issuing and OCSP signer (%s keys in the token)\n"
	    "  next:   ringfence tenant add NAME; ringfence serve\n",
	    cli->cfg.home, cli->cfg.token, more, cli->cfg.module,
	    cli->cfg.db_path, cli->cfg.ca_alg);
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
