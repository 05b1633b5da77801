/* Settings: defaults, then ringfence.conf, then RINGFENCE_* variables. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

enum kind { STR, INT };

struct setting {
	const char *key;
	enum kind kind;
	size_t off;
	size_t size;
	int min, max;
	const char *choices; /* STR: the values it takes, "" separated */
};

/* Entra ID: RSA keys of 2048 bits or more, PS256 or RS256 assertions. */
#define ENTRA_KEY_ALGS "rsa-2048\0rsa-3072\0rsa-4096\0"
#define ENTRA_JWT_ALGS "PS256\0RS256\0"
/* A connector's proof of possession (docs/connectors.md). */
#define CONNECTOR_PROOFS "optional\0required\0"

#define S(k, f)                                                                \
	{                                                                      \
		k, STR, offsetof(struct rf_config, f),                         \
		    sizeof(((struct rf_config *)0)->f), 0, 0, NULL             \
	}
#define C(k, f, choices)                                                       \
	{                                                                      \
		k, STR, offsetof(struct rf_config, f),                         \
		    sizeof(((struct rf_config *)0)->f), 0, 0, choices          \
	}
#define I(k, f, lo, hi)                                                        \
	{                                                                      \
		k, INT, offsetof(struct rf_config, f), 0, lo, hi, NULL         \
	}

static const struct setting settings[] = {
    S("db_path", db_path),
    S("module", module),
    S("token", token),
    I("tokens", tokens, 1, 64),
    S("pin", pin),
    S("pin_file", pin_file),
    S("softhsm_conf", softhsm_conf),
    S("listen", listen),
    I("port", port, 0, 65535),
    I("tls_port", tls_port, 0, 65535),
    S("tls_names", tls_names),
    S("base_url", base_url),
    S("ca_alg", ca_alg),
    S("actor", actor),
    I("root_days", root_days, 1, 36500),
    I("issuing_days", issuing_days, 1, 36500),
    I("ocsp_signer_days", ocsp_signer_days, 1, 3650),
    I("cert_days", cert_days, 1, 3650),
    I("ocsp_validity", ocsp_validity, 60, RF_VALIDITY_MAX),
    I("crl_validity", crl_validity, 60, RF_VALIDITY_MAX),
    I("max_request", max_request, 1024, 64 * 1024 * 1024),
    I("sth_interval", sth_interval, 1, 86400),
    I("sth_leaves", sth_leaves, 1, 100000000),
    I("connector_days", connector_days, 1, 90),
    C("entra_key_alg", entra_key_alg, ENTRA_KEY_ALGS),
    C("entra_jwt_alg", entra_jwt_alg, ENTRA_JWT_ALGS),
    I("assertion_lifetime", assertion_lifetime, 60, 600),
    I("conn_rate", conn_rate, 0, 100000000),
    I("conn_burst", conn_burst, 1, 100000000),
    I("connector_rate", connector_rate, 0, 100000000),
    I("connector_burst", connector_burst, 1, 100000000),
    I("connector_renewals", connector_renewals, 0, 1000),
    C("connector_proof", connector_proof, CONNECTOR_PROOFS),
    I("detectors", detectors, 0, 1),
    I("surge_per_minute", surge_per_minute, 1, 100000000),
    S("alert_webhook", alert_webhook),
    /* serve's budgets of anonymous peers, TLS tickets, the /audit pool */
    I("conns_per_source", conns_per_source, 0, 1000000),
    I("tls_handshake_rate", tls_handshake_rate, 1, 100000),
    I("tls_handshake_source_rate", tls_handshake_source_rate, 1, 100000),
    I("ocsp_ondemand_rate", ocsp_ondemand_rate, 1, 100000),
    I("ocsp_ondemand_source_rate", ocsp_ondemand_source_rate, 1, 100000),
    I("anon_audit_bytes_day", anon_audit_bytes_day, 0, 2000000000),
    I("tls_ticket_rotate", tls_ticket_rotate, 60, 86400),
    I("audit_threads", audit_threads, 1, 16),
    I("audit_max_concurrent", audit_max_concurrent, 1, 1024),
    S("keyd_socket", keyd_socket),
    I("keyd_idle", keyd_idle, 0, 86400 * 365),
    I("keyd_restart", keyd_restart, 0, 3600),
    S("custody_user", custody_user),
    S("server_user", server_user),
    S("admin_group", admin_group),
    S("custody_dir", custody_dir),
    I("keyd_tls_rate", keyd_tls_rate, 1, 1000000),
    I("pool_ec_p256", pool_ec_p256, -1, 10000000),
    I("pool_ec_p384", pool_ec_p384, -1, 10000000),
    I("pool_rsa_2048", pool_rsa_2048, -1, 10000000),
    I("pool_rsa_3072", pool_rsa_3072, -1, 10000000),
    I("pool_rsa_4096", pool_rsa_4096, -1, 10000000),
    I("pool_margin", pool_margin, 0, 1000),
    I("pool_refill", pool_refill, 0, 1),
    I("sign_threads", sign_threads, 1, 64),
    I("sign_max_concurrent", sign_max_concurrent, 1, 65536),
};

/* 1 if val is one of choices ("" separated, ending in an empty one). */
static int
one_of(const char *choices, const char *val)
{
	const char *c;

	for (c = choices; *c != '\0'; c += strlen(c) + 1)
		if (strcmp(c, val) == 0)
			return 1;
	return 0;
}

/* choices as "a, b or c". */
static void
choices_text(const char *choices, char *out, size_t outlen)
{
	const char *c, *next;
	size_t len = 0;

	out[0] = '\0';
	for (c = choices; *c != '\0' && len < outlen; c = next) {
		next = c + strlen(c) + 1;
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
		    c == choices	? ""
			: *next == '\0' ? " or "
					: ", ",
		    c);
	}
}

static int
set_value(struct rf_config *cfg, const struct setting *s, const char *val,
    const char *where)
{
	char *end;
	long v;

	if (s->kind == STR) {
		if (strlen(val) >= s->size)
			return rf_err_set(RF_ERR_CONFIG,
			    "%s: value of %s is too long (max %zu)", where,
			    s->key, s->size - 1);
		if (s->choices != NULL && !one_of(s->choices, val)) {
			char list[128];

			choices_text(s->choices, list, sizeof(list));
			return rf_err_set(RF_ERR_CONFIG,
			    "%s: %s must be %s, not '%.64s'", where, s->key,
			    list, val);
		}
		memcpy((char *)cfg + s->off, val, strlen(val) + 1);
		return 0;
	}
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v < s->min ||
	    v > s->max)
		return rf_err_set(RF_ERR_CONFIG,
		    "%s: %s must be a whole number from %d to %d, not '%s'",
		    where, s->key, s->min, s->max, val);
	*(int *)((char *)cfg + s->off) = (int)v;
	return 0;
}

static const struct setting *
find_setting(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (strcmp(settings[i].key, key) == 0)
			return &settings[i];
	return NULL;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
load_file(struct rf_config *cfg, const char *path)
{
	FILE *f;
	char line[2048], where[RF_PATH_MAX + 32], *key, *val, *eq;
	const struct setting *s;
	int lineno = 0, r = 0;

	if ((f = fopen(path, "r")) == NULL)
		return errno == ENOENT
		    ? 0
		    : rf_err_set(RF_ERR_CONFIG, "cannot read %s: %s", path,
			  strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (snprintf(where, sizeof(where), "%s:%d", path, lineno) < 0)
			where[0] = '\0';
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			r = rf_err_set(
			    RF_ERR_CONFIG, "%s: expected 'key = value'", where);
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if ((s = find_setting(key)) == NULL) {
			r = rf_err_set(RF_ERR_CONFIG,
			    "%s: unknown setting '%s'", where, key);
			break;
		}
		if ((r = set_value(cfg, s, val, where)) != 0)
			break;
	}
	fclose(f);
	return r;
}

static int
load_env(struct rf_config *cfg)
{
	char name[64];
	const char *v;
	size_t i, j;
	int r;

	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		snprintf(name, sizeof(name), "RINGFENCE_%s", settings[i].key);
		for (j = strlen("RINGFENCE_"); name[j] != '\0'; j++)
			name[j] = (char)toupper((unsigned char)name[j]);
		if ((v = getenv(name)) == NULL || *v == '\0')
			continue;
		/* Only the process that logs in reads the PIN (config.h). */
		if (settings[i].off == offsetof(struct rf_config, pin))
			continue;
		if ((r = set_value(cfg, &settings[i], v, name)) != 0)
			return r;
	}
	return 0;
}

/* dir/name into out; RF_ERR_CONFIG if it does not fit. */
static int
path_join(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= outlen)
		return rf_err_set(
		    RF_ERR_CONFIG, "path %s/%s is too long", dir, name);
	return 0;
}

int
rf_config_load(struct rf_config *cfg)
{
	const char *home = getenv("RINGFENCE_HOME");
	char path[RF_PATH_MAX + 32];
	char cwd[RF_PATH_MAX];
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (home == NULL || *home == '\0') {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return rf_err_set(RF_ERR_CONFIG,
			    "cannot find the working folder: set "
			    "RINGFENCE_HOME");
		if ((r = path_join(cfg->home, sizeof(cfg->home), cwd, "var")) !=
		    0)
			return r;
	} else if (strlen(home) >= sizeof(cfg->home) - 64) {
		return rf_err_set(RF_ERR_CONFIG, "RINGFENCE_HOME is too long");
	} else {
		snprintf(cfg->home, sizeof(cfg->home), "%s", home);
	}
	if ((r = path_join(cfg->db_path, sizeof(cfg->db_path), cfg->home,
		 "ringfence.db")) != 0 ||
	    (r = path_join(cfg->softhsm_conf, sizeof(cfg->softhsm_conf),
		 cfg->home, "softhsm2.conf")) != 0 ||
	    (r = path_join(path, sizeof(path), cfg->home, "ringfence.conf")) !=
		0)
		return r;
	snprintf(cfg->module, sizeof(cfg->module), "%s", DEFAULT_MODULE);
	snprintf(cfg->token, sizeof(cfg->token), "ringfence");
	cfg->tokens = 32;
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1");
	cfg->port = 8440;
	snprintf(cfg->tls_names, sizeof(cfg->tls_names), "localhost");
	snprintf(cfg->ca_alg, sizeof(cfg->ca_alg), "ec-p256");
	snprintf(cfg->actor, sizeof(cfg->actor), "%s",
	    getenv("USER") ? getenv("USER") : "operator");
	cfg->root_days = 3650;
	cfg->issuing_days = 1825;
	cfg->ocsp_signer_days = 90;
	cfg->cert_days = 90;
	cfg->ocsp_validity = 4 * 86400;
	cfg->crl_validity = 7 * 86400;
	cfg->max_request = 64 * 1024;
	cfg->sth_interval = 60;
	cfg->sth_leaves = 10000;
	cfg->connector_days = 7;
	snprintf(cfg->entra_key_alg, sizeof(cfg->entra_key_alg), "rsa-2048");
	snprintf(cfg->entra_jwt_alg, sizeof(cfg->entra_jwt_alg), "PS256");
	cfg->assertion_lifetime = 600;
	cfg->conn_rate = 4;
	cfg->conn_burst = 12;
	cfg->connector_rate = 7200;
	cfg->connector_burst = 600;
	cfg->connector_renewals = 4;
	snprintf(
	    cfg->connector_proof, sizeof(cfg->connector_proof), "optional");
	cfg->detectors = 1;
	cfg->surge_per_minute = 600;
	cfg->conns_per_source = 256;
	cfg->tls_handshake_rate = 50;
	cfg->tls_handshake_source_rate = 20;
	cfg->ocsp_ondemand_rate = 50;
	cfg->ocsp_ondemand_source_rate = 10;
	cfg->anon_audit_bytes_day = 64 * 1024 * 1024;
	cfg->tls_ticket_rotate = 3600;
	cfg->audit_threads = 2;
	cfg->audit_max_concurrent = 256;
	cfg->keyd_idle = 600;
	cfg->keyd_restart = 30;
	snprintf(
	    cfg->custody_user, sizeof(cfg->custody_user), "ringfence-keyd");
	snprintf(cfg->server_user, sizeof(cfg->server_user), "ringfence");
	cfg->keyd_tls_rate = 200;
	cfg->pool_ec_p256 = cfg->pool_ec_p384 = -1;
	cfg->pool_rsa_2048 = cfg->pool_rsa_3072 = cfg->pool_rsa_4096 = -1;
	cfg->pool_margin = 10;
	cfg->pool_refill = 1;
	cfg->sign_threads = 16;
	cfg->sign_max_concurrent = 256;

	if ((r = load_file(cfg, path)) != 0 || (r = load_env(cfg)) != 0)
		return r;
	/* The PIN lives beside the state folder, never in it: a copy of the
	 * state folder cannot sign. */
	if (cfg->custody_dir[0] == '\0' &&
	    snprintf(cfg->custody_dir, sizeof(cfg->custody_dir), "%s-custody",
		cfg->home) >= (int)sizeof(cfg->custody_dir))
		return rf_err_set(RF_ERR_CONFIG, "RINGFENCE_HOME is too long");
	if (cfg->pin_file[0] == '\0' &&
	    (r = path_join(cfg->pin_file, sizeof(cfg->pin_file),
		 cfg->custody_dir, "token.pin")) != 0)
		return r;
	if (cfg->keyd_socket[0] == '\0' &&
	    (r = path_join(cfg->keyd_socket, sizeof(cfg->keyd_socket),
		 cfg->home, "keyd.sock")) != 0)
		return r;
	if (cfg->base_url[0] == '\0')
		snprintf(cfg->base_url, sizeof(cfg->base_url), "http://%s:%d",
		    cfg->listen, cfg->port);
	return 0;
}

int
rf_config_pin(const struct rf_config *cfg, char *pin, size_t pinlen)
{
	uint8_t *buf = NULL;
	const char *env;
	size_t len = 0;
	int r;

	if (cfg->pin[0] == '\0' && (env = getenv("RINGFENCE_PIN")) != NULL &&
	    *env != '\0') {
		if (strlen(env) >= pinlen)
			return rf_err_set(
			    RF_ERR_CONFIG, "RINGFENCE_PIN is too long");
		snprintf(pin, pinlen, "%s", env);
		return 0;
	}
	if (cfg->pin[0] != '\0') {
		if (strlen(cfg->pin) >= pinlen)
			return rf_err_set(RF_ERR_CONFIG,
			    "RINGFENCE_PIN is too "
			    "long");
		snprintf(pin, pinlen, "%s", cfg->pin);
		return 0;
	}
	if ((r = rf_read_file(cfg->pin_file, 256, &buf, &len)) != 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "no token PIN: set RINGFENCE_PIN or create pin_file %s",
		    cfg->pin_file);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || len >= pinlen) {
		rf_freezero(buf, len + 1);
		return rf_err_set(RF_ERR_CONFIG,
		    "pin_file %s is empty or too "
		    "long",
		    cfg->pin_file);
	}
	memcpy(pin, buf, len);
	pin[len] = '\0';
	rf_freezero(buf, len + 1);
	return 0;
}
