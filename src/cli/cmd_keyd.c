/*
 * ringfence keyd: the custody process (src/keys/keyd.h), its start on
 * demand by the other commands (cli_keyd_start, as gpg starts gpg-agent),
 * `keyd stop` and `keyd status`.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "keys/keyd.h"
#include "keys/ledger.h"
#include "keys/policy.h"
#include "pool/pool.h"

#define START_WAIT_MS 10000 /* for the socket of a keyd started here */
#define STOP_WAIT_MS 10000

static const char keyd_help[] =
    "usage: ringfence keyd [--idle SECONDS]\n"
    "       ringfence keyd stop\n"
    "       ringfence keyd status [--json]\n"
    "\n"
    "The custody process: the only process that loads the PKCS#11 module,\n"
    "reads the PIN (pin_file, or RINGFENCE_PIN, removed from its\n"
    "environment at start) and opens the token. Every other command asks\n"
    "it over $RINGFENCE_HOME/keyd.sock (setting keyd_socket); a command\n"
    "that finds none running starts one, which exits after keyd_idle\n"
    "seconds without callers. Started as root it runs as custody_user.\n"
    "Callers are classed by their uid: admin (root, keyd's user,\n"
    "admin_group) may ask anything; server_user only OCSP, CRLs, tree\n"
    "heads and TLS handshakes that match the store (docs/keys.md).\n"
    "\n"
    "  --idle SECONDS   exit after that long without callers (0: never;\n"
    "                   the default when run by hand)\n"
    "  stop             stop the state folder's keyd (by keyd.pid)\n"
    "  status           whether it runs, its pid, uid, tokens and queue\n";

static void
keyd_log(void *arg, const char *line)
{
	char ts[32];

	(void)arg;
	rf_iso_time((int64_t)time(NULL), ts);
	fprintf(stderr, "ringfence keyd: %s %s\n", ts, line);
	fflush(stderr);
}

static int
read_pid(const struct rf_config *cfg, pid_t *pid)
{
	char path[RF_PATH_MAX + 16];
	uint8_t *buf = NULL;
	size_t len;
	long v;
	int r;

	*pid = 0;
	if ((r = rf_keyd_path(cfg, "keyd.pid", path, sizeof(path))) != 0)
		return r;
	if (rf_read_file(path, 32, &buf, &len) != 0)
		return RF_ERR_NOT_FOUND;
	buf[len - (len > 0 && buf[len - 1] == '\n')] = '\0';
	v = strtol((char *)buf, NULL, 10);
	free(buf);
	if (v <= 1)
		return RF_ERR_NOT_FOUND;
	*pid = (pid_t)v;
	return 0;
}

/*
 * 1 while pid runs: it exists and is not a zombie (a keyd killed while
 * its parent lives stays one until reaped, and kill(pid, 0) still finds
 * it).
 */
static int
pid_running(pid_t pid)
{
	char path[64], buf[512], *rp;
	ssize_t n;
	int fd;

	if (pid <= 1 || kill(pid, 0) != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	if ((rp = strrchr(buf, ')')) == NULL || rp[1] != ' ')
		return 1;
	return rp[2] != 'Z' && rp[2] != 'X';
}

/*
 * 1 if pid is a running keyd: keyd.pid outlives a keyd that was killed,
 * and its number may since belong to another process, which must not be
 * sent a signal. A keyd runs as "ringfence [options] keyd ...": an
 * argument after the program is "keyd".
 */
static int
keyd_running(pid_t pid)
{
	char path[64], buf[512];
	size_t at;
	ssize_t n;
	int fd;

	if (!pid_running(pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno != ENOENT; /* no /proc: trust the pid file */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (at = strlen(buf) + 1; at < (size_t)n; at += strlen(buf + at) + 1)
		if (strcmp(buf + at, "keyd") == 0)
			return 1;
	return 0;
}

int
cli_keyd_stop(const struct rf_config *cfg, pid_t *stopped)
{
	char path[RF_PATH_MAX + 16];
	pid_t pid;
	int waited, fd;

	*stopped = 0;
	rf_err_clear();
	if (read_pid(cfg, &pid) != 0 || !keyd_running(pid)) {
		rf_err_clear();
		return 0;
	}
	if (kill(pid, SIGTERM) != 0)
		return rf_err_set(RF_ERR_STATE,
		    "cannot stop keyd %d: %s (run as its user or root)",
		    (int)pid, strerror(errno));
	for (waited = 0; waited < STOP_WAIT_MS && pid_running(pid);
	     waited += 20)
		usleep(20 * 1000);
	if (pid_running(pid))
		return rf_err_set(RF_ERR_STATE,
		    "keyd %d was asked to stop and is still finishing what it "
		    "had begun after %d s (a signature batch, a key change or "
		    "a keys list); it stops when that ends: run 'ringfence "
		    "keyd stop' again to wait for it",
		    (int)pid, STOP_WAIT_MS / 1000);
	*stopped = pid;
	/* Stopped on purpose: serve and make run's keeper leave it stopped
	 * (the next keyd to start, a command's, removes the mark). */
	if (rf_keyd_path(cfg, RF_KEYD_STOPPED, path, sizeof(path)) == 0 &&
	    (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) >=
		0)
		close(fd);
	rf_err_clear();
	return 0;
}

static int
keyd_stop(struct rf_cli *cli)
{
	pid_t pid;
	int r;

	if ((r = cli_keyd_stop(&cli->cfg, &pid)) != 0)
		return cli_fail(r);
	if (pid == 0)
		fprintf(stderr, "ringfence: no custody process runs for %s\n",
		    cli->cfg.home);
	else
		fprintf(stderr, "ringfence: stopped keyd %d\n", (int)pid);
	return EXIT_OK;
}

/*
 * keyd's user by name, and whether the user split is on: keyd runs as
 * custody_user (started as root, that user existing).
 */
static int
keyd_user(const struct rf_config *cfg, unsigned uid, char *name, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[2048];

	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL)
		snprintf(name, len, "%s", res->pw_name);
	else
		snprintf(name, len, "?");
	return strcmp(name, cfg->custody_user) == 0;
}

static int
keyd_status(struct rf_cli *cli)
{
	struct rf_keyd_status st;
	char user[64] = "";
	int split = 0;
	json_t *o;
	char *s;
	int r;

	r = rf_keyd_status_get(&cli->cfg, &st);
	if (r != 0 && r != RF_ERR_CUSTODY)
		return cli_fail(r);
	if (r == 0)
		split = keyd_user(&cli->cfg, st.uid, user, sizeof(user));
	if (cli->json) {
		o = r == 0
		    ? json_pack("{s:b,s:I,s:I,s:s,s:b,s:s,s:s,s:I,s:I,s:I,"
				"s:I,s:I}",
			  "running", 1, "pid", (json_int_t)st.pid, "uid",
			  (json_int_t)st.uid, "user", user, "user_split", split,
			  "class", rf_kclass_name(st.cls), "token", st.token,
			  "tokens", (json_int_t)st.tokens, "clients",
			  (json_int_t)st.clients, "queue", (json_int_t)st.queue,
			  "requests", (json_int_t)st.requests, "refused",
			  (json_int_t)st.refused)
		    : json_pack("{s:b}", "running", 0);
		if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL) {
			json_decref(o);
			return cli_fail(RF_ERR_ALLOC);
		}
		printf("%s\n", s);
		free(s);
		json_decref(o);
		return r == 0 ? EXIT_OK : EXIT_FAIL;
	}
	if (r != 0) {
		printf("keyd: not running (%s)\n", cli->cfg.keyd_socket);
		return EXIT_FAIL;
	}
	printf("keyd: running, pid %d, uid %u (%s, user split %s)\n"
	       "  socket:   %s\n"
	       "  tokens:   '%s' and %u more\n"
	       "  callers:  %u connected, %u signing requests in flight; you "
	       "are %s\n"
	       "  requests: %llu answered, %llu refused\n",
	    (int)st.pid, (unsigned)st.uid, user, split ? "on" : "off",
	    cli->cfg.keyd_socket, st.token, st.tokens > 0 ? st.tokens - 1 : 0,
	    st.clients, st.queue, rf_kclass_name(st.cls),
	    (unsigned long long)st.requests, (unsigned long long)st.refused);
	return EXIT_OK;
}

/* What keyd's connector policy needs: the settings and its own buckets,
 * so that a compromised serve cannot spend more than the limits allow. */
struct keyd_assert {
	const struct rf_config *cfg;
	struct rf_limits *limits;
	struct rf_connector_cache *cache; /* facts while the store's hold */
	struct rf_proof_guard *proofs;	  /* connectors' proofs (proof.c) */
};

/*
 * The connector's proof of possession for what it asks (purpose, subject),
 * made with the key of the certificate serve says it presented (on_behalf),
 * a connector certificate of tenant: serve cannot make one up, nor send one
 * twice. Without a proof, only while connector_proof is optional.
 */
static int
proof_ok(struct keyd_assert *ka, struct rf_store *st, struct rf_ledger *ledger,
    const struct rf_sign_req *req, const char *what, const char *tenant,
    const char *purpose, const char *subject)
{
	char why[320];
	int r;

	if (req->proof == NULL) {
		if (strcmp(ka->cfg->connector_proof, "required") != 0)
			return 0;
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused %s for %.130s: bad_proof: it carries no "
		    "proof of possession, and connector_proof is required",
		    what, subject);
	}
	if (req->on_behalf == NULL)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused %s for %.130s: bad_proof: it names no "
		    "connector certificate to check its proof with",
		    what, subject);
	r = rf_proof_check(ka->proofs, st, ledger, req->on_behalf, tenant,
	    purpose, subject, req->proof, req->prooflen, rf_now(), why,
	    sizeof(why));
	if (r == 1)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused %s for %.130s: bad_proof: %s", what,
		    subject, why);
	return r;
}

/* rf_keyd_opts.session: a connector's proof session (proof.c). */
static int
keyd_proof_session(void *arg, struct rf_store *st, struct rf_ledger *ledger,
    const char *serial, const char *pub, const uint8_t *proof, size_t prooflen,
    char *sid, char *kpub, char *confirm, int64_t *end)
{
	struct keyd_assert *ka = arg;
	struct rf_proof_opened op;
	char why[320];
	int r;

	if (ledger == NULL)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused a proof session for certificate %.40s: "
		    "bad_proof: keyd has no ledger to check it with",
		    serial);
	r = rf_proof_session_open(ka->proofs, st, ledger, serial, pub, proof,
	    prooflen, rf_now(), &op, why, sizeof(why));
	if (r == 1)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused a proof session for certificate %.40s: "
		    "bad_proof: %s",
		    serial, why);
	if (r != 0)
		return r;
	memcpy(sid, op.sid, sizeof(op.sid));
	memcpy(kpub, op.pub, sizeof(op.pub));
	memcpy(confirm, op.confirm, sizeof(op.confirm));
	*end = op.expires;
	OPENSSL_cleanse(&op, sizeof(op));
	return 0;
}

/*
 * What the store said, checked against keyd's ledger, which only an
 * administrator changes (through keyd): the binding, the connector and
 * its certificate, and the connection's open incidents. serve's user can write
 * the store; it cannot write these.
 */
static int
ledger_agrees(struct rf_ledger *ledger, const char *connector,
    const struct rf_sign_req *req)
{
	if (ledger == NULL)
		return 0;
	if (rf_ledger_connector_revoked(ledger, connector))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for %.64s/%.64s: revoked: "
		    "connector %.64s is revoked in keyd's ledger (the store "
		    "does not say so: not yet, or changed behind keyd's "
		    "back)",
		    req->tenant, req->conn, connector);
	if (rf_ledger_has(ledger, req->on_behalf))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for %.64s/%.64s: revoked: "
		    "connector certificate %.64s is revoked in keyd's ledger "
		    "(the store does not say so: not yet, or changed behind "
		    "keyd's back)",
		    req->tenant, req->conn, req->on_behalf);
	if (rf_ledger_affected(ledger, req->tenant, req->conn))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for %.64s/%.64s: "
		    "under_incident: the connection is under an open incident "
		    "in keyd's ledger (the store does not say so: not yet, "
		    "or changed behind keyd's back)",
		    req->tenant, req->conn);
	if (!rf_ledger_bound(ledger, connector, req->tenant, req->conn))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for %.64s/%.64s: not_bound: "
		    "connector %.64s was never bound to it through keyd (the "
		    "store's binding was made behind keyd's back)",
		    req->tenant, req->conn, connector);
	return 0;
}

/* A verdict's refusal as keyd's: its code, for serve to answer with (and
 * for rate_limited, when to ask again: serve's Retry-After). */
static int
refused(const struct rf_connector_verdict *v, const struct rf_sign_req *req)
{
	if (v->why == RF_REFUSE_NONE)
		return 0;
	if (v->why == RF_REFUSE_RATE)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for %.64s/%.64s: %s: "
		    "%s " RF_RETRY_AFTER_FMT,
		    req->tenant, req->conn, rf_refusal_code(v->why), v->detail,
		    v->retry_after);
	return rf_err_set(RF_ERR_REFUSED,
	    "custody refused assertion for %.64s/%.64s: %s: %s", req->tenant,
	    req->conn, rf_refusal_code(v->why), v->detail);
}

/*
 * Class server's client assertions, decided in the custody process: the
 * connector certificate, its binding to the connection, the connection's
 * current key, no open incident, the exact header and claims the
 * registration implies, and the limits (rf_connector_decide).
 */
static int
keyd_assertion(void *arg, struct rf_store *st, struct rf_ledger *ledger,
    int64_t gen, const char *key_id, const struct rf_sign_req *req)
{
	struct keyd_assert *ka = arg;
	struct rf_connector_req q;
	struct rf_connector_verdict v;
	char tenant[128], subject[260];
	int r;

	if (req->on_behalf == NULL || req->tenant == NULL || req->conn == NULL)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion for class server: it names no "
		    "connector certificate and connection");
	memset(&q, 0, sizeof(q));
	q.cert_serial = req->on_behalf;
	q.tenant = req->tenant;
	q.conn = req->conn;
	q.key_id = key_id;
	q.msg = req->msg;
	q.msglen = req->msglen;
	q.now = rf_now();
	/* The limits last: a request refused for anything else, its proof
	 * included, spends no token of the connector's buckets (a serve
	 * taken over could otherwise empty them with proofs it makes up). */
	if ((r = rf_connector_decide_cached(
		 ka->cache, gen, ka->cfg, st, NULL, &q, &v, NULL)) != 0 ||
	    (r = refused(&v, req)) != 0 ||
	    (r = ledger_agrees(ledger, v.connector, req)) != 0)
		return r;
	rf_connector_tenant(v.connector, tenant);
	if ((size_t)snprintf(subject, sizeof(subject), "%s/%s", req->tenant,
		req->conn) >= sizeof(subject))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused assertion: its connection name is too "
		    "long");
	if ((r = proof_ok(ka, st, ledger, req, "assertion", tenant, "assert",
		 subject)) != 0 ||
	    (r = rf_connector_limits_take(ka->cfg, ka->limits, &q, &v)) != 0)
		return r;
	return refused(&v, req);
}

/* Class server's certificates: the renewal of an active connector's own
 * client certificate (its tenant is the connector's, connector.h), at
 * most connector_renewals a day by keyd's own count, as serve counts them: a
 * serve taken over gets no more. */
static int
keyd_connector_cert(void *arg, struct rf_store *st, struct rf_ledger *ledger,
    int64_t gen, const char *key_id, const struct rf_sign_req *req)
{
	struct keyd_assert *ka = arg;
	struct rf_connector_rec cr;
	char tenant[128], newkey[65];
	const char *name;
	int r, retry;

	(void)gen;
	(void)key_id;
	rf_connector_tenant("", tenant);
	if (strncmp(req->tenant, tenant, strlen(tenant)) != 0 ||
	    *(name = req->tenant + strlen(tenant)) == '\0')
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused cert for class server: %.64s is not a "
		    "connector's tenant",
		    req->tenant);
	if (rf_store_connector_get(st, name, &cr) != 0 ||
	    strcmp(cr.state, "active") != 0 ||
	    (ledger != NULL && rf_ledger_connector_revoked(ledger, name)))
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused cert for class server: connector %.64s "
		    "is not active",
		    name);
	/* The proof names the new key: serve cannot swap in its own. */
	if ((r = rf_kpolicy_cert_key_id(req->msg, req->msglen, newkey)) != 0 ||
	    (r = proof_ok(ka, st, ledger, req, "cert", req->tenant, "renew",
		 newkey)) != 0)
		return r;
	if ((r = rf_limits_renewal(
		 ka->limits, ka->cfg, name, rf_now(), &retry)) == RF_ERR_STATE)
		return rf_err_set(RF_ERR_REFUSED,
		    "custody refused cert for class server: rate_limited: "
		    "connector %.64s has had its renewals for the day "
		    "(connector_renewals %d) " RF_RETRY_AFTER_FMT,
		    name, ka->cfg->connector_renewals, retry);
	return r;
}

/* keyd's background hook: the standby pool's refill (pool.h). */
static int
keyd_background(void *arg, struct rf_keys *keys, struct rf_store *st)
{
	return rf_pool_bg_step(arg, keys, st);
}

int
cmd_keyd(struct rf_cli *cli, int argc, char **argv)
{
	struct rf_keyd_opts o;
	struct keyd_assert ka = {&cli->cfg, NULL, NULL, NULL};
	struct rf_pool_bg *bg = NULL;
	long v;
	char *end;
	int r;

	if (cli_wants_help(argc, argv)) {
		fputs(keyd_help, stdout);
		return EXIT_OK;
	}
	if (argc == 2 && strcmp(argv[1], "stop") == 0)
		return keyd_stop(cli);
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return keyd_status(cli);
	memset(&o, 0, sizeof(o));
	o.log = keyd_log;
	if (argc == 2 && strcmp(argv[1], "--on-demand") == 0) {
		o.idle = cli->cfg.keyd_idle;
	} else if (argc == 3 && strcmp(argv[1], "--idle") == 0) {
		errno = 0;
		v = strtol(argv[2], &end, 10);
		if (errno != 0 || *end != '\0' || v < 0 || v > 86400 * 365)
			return cli_usage(
			    "keyd", "--idle needs seconds (0 = never)");
		o.idle = (int)v;
	} else if (argc > 1) {
		return cli_usage(
		    "keyd", "unexpected argument '%.60s'", argv[1]);
	}
	if ((r = rf_limits_new(&ka.limits)) != 0 ||
	    (r = rf_connector_cache_new(&ka.cache)) != 0 ||
	    (r = rf_proof_guard_new(&ka.proofs)) != 0 ||
	    (r = rf_proof_guard_keep(ka.proofs, cli->cfg.custody_dir)) != 0 ||
	    (r = rf_pool_bg_new(&cli->cfg, keyd_log, NULL, &bg)) != 0) {
		rf_proof_guard_free(ka.proofs);
		rf_connector_cache_free(ka.cache);
		rf_limits_free(ka.limits);
		return cli_fail(r);
	}
	o.assertion = keyd_assertion;
	o.cert = keyd_connector_cert;
	o.session = keyd_proof_session;
	o.assertion_arg = &ka;
	o.background = keyd_background;
	o.background_arg = bg;
	r = rf_keyd_run(&cli->cfg, &o);
	rf_pool_bg_free(bg);
	rf_proof_guard_free(ka.proofs);
	rf_connector_cache_free(ka.cache);
	rf_limits_free(ka.limits);
	if (r != 0) {
		/* keyd.log gets the time too; a terminal one line. */
		if (!isatty(STDERR_FILENO))
			keyd_log(NULL, rf_err_msg(r));
		return cli_fail(r);
	}
	return EXIT_OK;
}

/* The last line of keyd.log, for a keyd that did not come up. */
static void
last_log_line(const char *path, char *out, size_t outlen)
{
	uint8_t *buf = NULL;
	size_t len = 0, i, start = 0;

	out[0] = '\0';
	if (rf_read_file(path, 1 << 20, &buf, &len) != 0)
		return;
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	for (i = 0; i < len; i++)
		if (buf[i] == '\n')
			start = i + 1;
	snprintf(out, outlen, "%.*s", (int)(len - start), (char *)buf + start);
	free(buf);
}

/*
 * Start a keyd for cfg's state folder, detached (its own session, output
 * to keyd.log), and wait until its socket answers. Another command may
 * start one at the same time: keyd.lock lets one run, and either answers.
 */
/*
 * Fork the keyd of cfg's state folder, detached: a child makes a session
 * of its own and forks keyd from it, sends its pid back over a pipe and
 * exits at once. So keyd is never the caller's child: a serve that started
 * one does not keep it as a zombie in `ps` when it dies (kill -9), which
 * its pid file would also still name. *kpid: keyd's pid, 0 if unknown.
 */
static int
keyd_fork(const char *log, pid_t *kpid)
{
	pid_t child, k = 0;
	char self[RF_PATH_MAX];
	ssize_t sl;
	int fd, pfd[2], status;

	*kpid = 0;
	/* keyd runs this binary by its own path, so that its process name
	 * (ps -C ringfence) is ringfence, not exe; /proc/self/exe when the
	 * path is gone (a binary rebuilt under a running command). */
	if ((sl = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		sl = 0;
	self[sl] = '\0';
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return rf_err_set(RF_ERR_INTERNAL, "pipe: %s", strerror(errno));
	if ((child = fork()) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return rf_err_set(RF_ERR_INTERNAL, "fork: %s", strerror(errno));
	}
	if (child == 0) {
		/* Only async-signal-safe calls until exec: serve has threads.
		 */
		(void)setsid();
		if ((k = fork()) == 0) {
			if ((fd = open("/dev/null", O_RDONLY)) >= 0) {
				dup2(fd, 0);
				close(fd);
			}
			if ((fd = open(log,
				 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				 0600)) >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			if (self[0] == '/')
				execl(self, "ringfence", "keyd", "--on-demand",
				    (char *)NULL);
			execl("/proc/self/exe", "ringfence", "keyd",
			    "--on-demand", (char *)NULL);
			_exit(127);
		}
		if (write(pfd[1], &k, sizeof(k)) != (ssize_t)sizeof(k))
			_exit(1);
		_exit(k < 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &k, sizeof(k)) != (ssize_t)sizeof(k))
		k = 0;
	close(pfd[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (k <= 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "could not start the custody process (fork)");
	*kpid = k;
	return 0;
}

int
cli_keyd_start(void *arg, const struct rf_config *cfg)
{
	char log[RF_PATH_MAX + 16], line[400];
	struct rf_keyd_status st;
	pid_t pid;
	int waited, r;

	(void)arg;
	if ((r = rf_keyd_path(cfg, "keyd.log", log, sizeof(log))) != 0)
		return r;
	if ((r = keyd_fork(log, &pid)) != 0)
		return r;
	for (waited = 0; waited < START_WAIT_MS; waited += 20) {
		if (rf_keyd_status_get(cfg, &st) == 0)
			return 0;
		/* Exited: a failure, or another keyd holds the state folder's
		 * lock. That one is starting (it answers soon) or stopping
		 * (its lock goes with it): asked again, and one more started
		 * every 100 ms meanwhile, within the same wait. */
		if (pid != 0 && !pid_running(pid)) {
			if (rf_keyd_status_get(cfg, &st) == 0)
				return 0;
			last_log_line(log, line, sizeof(line));
			if (strstr(line, "already runs") == NULL)
				return rf_err_set(RF_ERR_CUSTODY,
				    "the custody process did not start: %s "
				    "(%s)",
				    line[0] ? line : "no message", log);
			pid = 0;
		}
		if (pid == 0 && waited % 100 == 0 &&
		    (r = keyd_fork(log, &pid)) != 0)
			return r;
		usleep(20 * 1000);
	}
	if (pid == 0)
		return rf_err_set(RF_ERR_CUSTODY,
		    "the custody process did not start: another one holds "
		    "%s's lock and did not answer within %d s (%s)",
		    cfg->home, START_WAIT_MS / 1000, log);
	return rf_err_set(RF_ERR_CUSTODY,
	    "the custody process did not answer within %d s: see %s",
	    START_WAIT_MS / 1000, log);
}
