/*
 * keyd.c: the custody process (keyd.h). One thread reads every caller
 * from a poll loop and records; signer threads sign. A request is read
 * whole (its length checked before anything is allocated), decoded
 * strictly (proto.c), looked up in the dispatch table of the caller's
 * class (as OpenSSH's monitor.c keeps one table per phase), checked by the
 * policy (policy.c) and run on the token opened here with the existing
 * rf_keys_* code. Signing requests wait until the loop appends their
 * leaves, with other callers', in one durable append; a signer thread
 * then signs that batch on its signing threads while the loop reads and
 * records the next (the pipeline). A request outside the class's
 * table, or refused by the policy, is answered with an error and recorded
 * as a "refused" leaf; refusals beyond REFUSED_PER_MIN a minute, or
 * REFUSED_PER_UID of one uid, are counted and recorded as one summary
 * leaf, so that a flood cannot grow the record without bound.
 *
 * This file starts keyd, hardened, and runs its poll loop, with the
 * background work and the record of refusals; the handlers are in
 * keyd_handlers.c, the requests run aside in keyd_aside.c, the keys kept
 * loaded in keyd_key.c, the pipeline in keyd_pipe.c, the callers'
 * connections in keyd_conn.c (keyd_int.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit/audit.h"
#include "keys/keyd_int.h"
#include "keys/keys_int.h"
#include "keys/policy.h"
#include "store/store.h"

#define REFUSED_PER_MIN 120 /* refusal leaves a minute, then a count */
#define REFUSED_PER_UID 60  /* ... and of one caller's uid */

/*
 * Background work (o->background: the standby pool's refill) runs on a
 * thread of its own at the lowest priority, with a store, a record and a
 * keys handle of its own (a SQLite connection is one thread's), so that a
 * request never waits behind a key generation (an RSA key takes about half
 * a second). Requests that change keys pause it (keyd_bg_pause) and wait for
 * its step to end, as they wait for the signatures in flight.
 */
#define BG_NICE 19

struct bgwork {
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, pause, running; /* (mu) */
	const struct rf_keyd_opts *o;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
};

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

void
keyd_logf(struct keyd *kd, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (kd->o != NULL && kd->o->log != NULL)
		kd->o->log(kd->o->log_arg, line);
}

void
rf_keyd_harden(void)
{
	struct rlimit rl = {0, 0};

	/* No core file, no ptrace by our own user, no /proc/PID/mem. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)setrlimit(RLIMIT_CORE, &rl);
}

/*
 * Refusals
 */

/* Write the count of a minute's refusals not recorded one by one, once a
 * later minute has come (force: now, as keyd stops). */
static void
refusals_roll(struct keyd *kd, int force)
{
	struct rf_audit_event ev;
	char detail[400];

	if (!rf_leaf_quota_roll(
		&kd->refusals, rf_now(), force, detail, sizeof(detail)))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = "refused";
	ev.source = "keyd";
	ev.detail = detail;
	if (rf_audit_append(kd->audit, &ev, 1, NULL) != 0)
		keyd_logf(kd, "could not record %s", detail);
}

/* Record one refusal: a leaf, or a count past the minute's budget. */
void
keyd_refusal(struct keyd *kd, const struct conn *c, int type, const char *why)
{
	struct rf_audit_event ev;
	char actor[64], detail[400];

	kd->refused++;
	refusals_roll(kd, 0);
	keyd_logf(kd, "refused uid %u (%s) %s: %s", (unsigned)c->uid,
	    rf_kclass_name(c->cls), rf_kmsg_name(type), why);
	snprintf(actor, sizeof(actor), "uid %u", (unsigned)c->uid);
	if (!rf_leaf_quota_take(&kd->refusals, actor))
		return;
	snprintf(actor, sizeof(actor), "uid %u pid %d", (unsigned)c->uid,
	    (int)c->pid);
	snprintf(detail, sizeof(detail), "class %s asked %s: %s",
	    rf_kclass_name(c->hello ? c->cls : c->cred_cls), rf_kmsg_name(type),
	    why);
	memset(&ev, 0, sizeof(ev));
	ev.type = "refused";
	ev.actor = actor;
	ev.source = "keyd";
	ev.what = rf_kmsg_name(type);
	ev.detail = detail;
	if (rf_audit_append(kd->audit, &ev, 1, NULL) != 0)
		keyd_logf(kd, "could not record the refusal: %s", detail);
}

/*
 * Start
 */

/* The token folder and the PIN file: only keyd's user may read them. */
static int
check_private(const char *path, int dir)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return 0; /* absent: nothing to protect */
	if (sb.st_uid != geteuid() || (sb.st_mode & 077) != 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "%s is readable by others or not owned by keyd's user "
		    "(uid %u): chown %u %s && chmod %s %s",
		    path, (unsigned)geteuid(), (unsigned)geteuid(), path,
		    dir ? "700" : "600", path);
	return 0;
}

/* Drop root for custody_user, or say in one line why not. */
static int
drop_user(struct keyd *kd)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		keyd_logf(kd,
		    "running as uid %u, not root: process split on, user "
		    "split off",
		    (unsigned)geteuid());
		return 0;
	}
	if ((pw = getpwnam(kd->cfg.custody_user)) == NULL) {
		keyd_logf(kd,
		    "custody user '%s' does not exist: running as root "
		    "without the user split",
		    kd->cfg.custody_user);
		return 0;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0 || setuid(0) == 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "cannot become custody user '%s': %s", kd->cfg.custody_user,
		    strerror(errno));
	/* setuid cleared it; set again. */
	rf_keyd_harden();
	keyd_logf(kd, "running as custody user '%s' (uid %u)",
	    kd->cfg.custody_user, (unsigned)pw->pw_uid);
	return 0;
}

static int
listen_on(struct keyd *kd, const char *path)
{
	struct sockaddr_un sa;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return rf_err_set(RF_ERR_CONFIG,
		    "keyd_socket %s is too long for a socket path", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((kd->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return rf_err_set(RF_ERR_IO, "socket: %s", strerror(errno));
	(void)unlink(path); /* a stale socket: keyd.lock says none runs */
	if (bind(kd->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(kd->lfd, 64) != 0) {
		r = rf_err_set(RF_ERR_IO, "cannot listen on %s: %s", path,
		    strerror(errno));
		return r;
	}
	/* Anyone may connect; SO_PEERCRED decides what they may ask. */
	if (chmod(path, 0666) != 0)
		return rf_err_set(
		    RF_ERR_IO, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* RINGFENCE_PIN: taken out of the environment at once, its bytes wiped. */
static void
take_env_pin(struct rf_config *cfg)
{
	char *e = getenv("RINGFENCE_PIN");

	if (e == NULL)
		return;
	if (*e != '\0' && strlen(e) < sizeof(cfg->pin))
		snprintf(cfg->pin, sizeof(cfg->pin), "%s", e);
	rf_env_wipe("RINGFENCE_PIN");
}

static void *
bg_main(void *arg)
{
	struct bgwork *bg = arg;
	struct timespec until;
	int more = 0;

	/* Linux: the nice value is the thread's own. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BG_NICE);
	(void)pthread_setname_np(pthread_self(), "rf-keyd-bg");
	pthread_mutex_lock(&bg->mu);
	while (!bg->stop) {
		if (bg->pause > 0 || !more) {
			/* A second between steps that found nothing to do. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			(void)pthread_cond_timedwait(&bg->cv, &bg->mu, &until);
			if (bg->pause > 0 || bg->stop) {
				more = 0;
				continue;
			}
		}
		bg->running = 1;
		pthread_mutex_unlock(&bg->mu);
		more = bg->o->background(
			   bg->o->background_arg, bg->keys, bg->st) > 0;
		pthread_mutex_lock(&bg->mu);
		bg->running = 0;
		pthread_cond_broadcast(&bg->cv);
	}
	pthread_mutex_unlock(&bg->mu);
	return NULL;
}

/* Hold the background work: its current step ends first. */
void
keyd_bg_pause(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->pause++;
	while (bg->running)
		pthread_cond_wait(&bg->cv, &bg->mu);
	pthread_mutex_unlock(&bg->mu);
}

void
keyd_bg_resume(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->pause--;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
}

static void
bg_free(struct keyd *kd)
{
	struct bgwork *bg = kd->bg;

	if (bg == NULL)
		return;
	if (bg->started) {
		pthread_mutex_lock(&bg->mu);
		bg->stop = 1;
		pthread_cond_broadcast(&bg->cv);
		pthread_mutex_unlock(&bg->mu);
		pthread_join(bg->tid, NULL);
	}
	pthread_cond_destroy(&bg->cv);
	pthread_mutex_destroy(&bg->mu);
	rf_keys_free(bg->keys);
	rf_audit_free(bg->audit);
	rf_store_free(bg->st);
	free(bg);
	kd->bg = NULL;
}

/* The background work's own handles, opened while the PIN is known. */
static int
bg_open(struct keyd *kd)
{
	struct bgwork *bg;
	int r;

	if (kd->o == NULL || kd->o->background == NULL)
		return 0;
	if ((bg = calloc(1, sizeof(*bg))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutex_init(&bg->mu, NULL) != 0) {
		free(bg);
		return rf_err_set(RF_ERR_INTERNAL, "keyd: mutex");
	}
	if (pthread_cond_init(&bg->cv, NULL) != 0) {
		pthread_mutex_destroy(&bg->mu);
		free(bg);
		return rf_err_set(RF_ERR_INTERNAL, "keyd: condition");
	}
	bg->o = kd->o;
	kd->bg = bg;
	if ((r = rf_store_open(kd->cfg.db_path, 0, &bg->st)) != 0 ||
	    (r = rf_store_unmap(bg->st)) != 0 ||
	    (r = rf_audit_open(bg->st, &bg->audit)) != 0 ||
	    (r = rf_keys_open(&kd->cfg, bg->audit, &bg->keys)) != 0)
		return r;
	rf_keys_forget_pin(bg->keys);
	return 0;
}

static int
bg_start(struct keyd *kd)
{
	if (kd->bg == NULL)
		return 0;
	if (pthread_create(&kd->bg->tid, NULL, bg_main, kd->bg) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "keyd: cannot start the background thread");
	kd->bg->started = 1;
	return 0;
}

static int
keyd_open(struct keyd *kd)
{
	static const struct rf_actor sweeper = {"keyd", "keyd"};
	char tokens_dir[RF_PATH_MAX + 16], v[32];
	size_t swept;
	struct passwd *pw;
	struct group *gr;
	int r;

	if ((pw = getpwnam(kd->cfg.server_user)) != NULL) {
		kd->server_uid = pw->pw_uid;
		kd->have_server_uid = 1;
	}
	if (kd->cfg.admin_group[0] != '\0') {
		if ((gr = getgrnam(kd->cfg.admin_group)) == NULL)
			return rf_err_set(RF_ERR_CONFIG,
			    "admin_group '%s' does not exist: create it or "
			    "unset admin_group",
			    kd->cfg.admin_group);
		kd->admin_gid = gr->gr_gid;
		kd->have_admin_gid = 1;
	}
	if ((r = drop_user(kd)) != 0)
		return r;
	snprintf(tokens_dir, sizeof(tokens_dir), "%s/tokens", kd->cfg.home);
	if ((r = check_private(tokens_dir, 1)) != 0 ||
	    (r = check_private(kd->cfg.pin_file, 0)) != 0)
		return r;
	if ((r = rf_store_open(kd->cfg.db_path, 0, &kd->st)) != 0) {
		if (r == RF_ERR_NOT_INITIALISED)
			return rf_err_set(r,
			    "no state at %s: run 'ringfence init' (or set "
			    "RINGFENCE_HOME)",
			    kd->cfg.home);
		return r;
	}
	if ((r = rf_store_unmap(kd->st)) != 0 ||
	    (r = rf_audit_open(kd->st, &kd->audit)) != 0 ||
	    (r = rf_keys_open(&kd->cfg, kd->audit, &kd->keys)) != 0 ||
	    (r = rf_kpolicy_new(&kd->cfg, kd->st, kd->audit, &kd->policy)) != 0)
		return r;
	rf_keys_set_ledger(kd->keys, rf_kpolicy_ledger(kd->policy));
	rf_audit_key_source(kd->audit, keyd_key_get_audit, kd);
	/* keyd alone opens the token: nothing is being made in it now. */
	if ((r = rf_keys_sweep_torn(kd->keys, &sweeper, &swept)) != 0)
		keyd_logf(
		    kd, "sweeping half-made key objects: %s", rf_err_msg(r));
	else if (swept > 0)
		keyd_logf(kd,
		    "destroyed %zu key object%s an interrupted key generation "
		    "left half made (no CKA_ID)",
		    swept, swept == 1 ? "" : "s");
	if (kd->o != NULL && kd->o->assertion != NULL)
		rf_kpolicy_set_assertion(
		    kd->policy, kd->o->assertion, kd->o->assertion_arg);
	if (kd->o != NULL && kd->o->cert != NULL)
		rf_kpolicy_set_cert(
		    kd->policy, kd->o->cert, kd->o->assertion_arg);
	if ((r = bg_open(kd)) != 0)
		return r;
	/*
	 * Logged in: the PIN is kept nowhere in keyd's memory any more. A PIN
	 * file is read again for a token first used later; a PIN from the
	 * environment is gone with it, so every token is logged in first.
	 */
	if (kd->cfg.pin[0] != '\0' && (r = rf_keys_login_all(kd->keys)) != 0)
		return r;
	OPENSSL_cleanse(kd->cfg.pin, sizeof(kd->cfg.pin));
	rf_keys_forget_pin(kd->keys);
	snprintf(kd->token, sizeof(kd->token), "%s", kd->cfg.token);
	kd->tokens = (uint32_t)kd->cfg.tokens;
	if (rf_store_meta_get(kd->st, "key_tokens", v, sizeof(v)) == 0)
		kd->tokens = (uint32_t)strtoul(v, NULL, 10);
	return 0;
}

static int
write_pid(const char *path)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	return rf_write_file(path, (const uint8_t *)buf, strlen(buf), 0644);
}

/*
 * The record signs its tree heads by itself (issue 13): every sth_interval
 * seconds or sth_leaves leaves, whoever appended them, while keyd runs.
 * A failure is logged and tried again on the next pass.
 */
static void
tree_head(struct keyd *kd, int64_t started)
{
	int made = 0, r;

	/* Not at start: the first after sth_interval of keyd's own life. */
	if (rf_now() - started < kd->cfg.sth_interval)
		return;
	if ((r = rf_audit_maybe_sth(kd->audit, kd->keys, kd->cfg.sth_interval,
		 (uint64_t)kd->cfg.sth_leaves, &made)) != 0) {
		keyd_logf(kd, "signing a tree head: %s", rf_err_msg(r));
		rf_err_clear();
	}
}

int
rf_keyd_run(const struct rf_config *cfg, const struct rf_keyd_opts *o)
{
	struct keyd *kd;
	struct pollfd pf[CONN_MAX + 2];
	struct sigaction sa;
	char lock[RF_PATH_MAX + 16], pid[RF_PATH_MAX + 16];
	char sock[RF_PATH_MAX], stopped[RF_PATH_MAX + 16];
	int64_t idle_since, started;
	int lfd = -1, i, n, r = RF_ERR_INTERNAL, listening = 0;

	/* Before anything else, and before any thread exists. */
	rf_keyd_harden();
	rf_keys_custody_off(); /* keyd opens the token itself */
	if ((kd = calloc(1, sizeof(*kd))) == NULL)
		return RF_ERR_ALLOC;
	kd->cfg = *cfg;
	kd->o = o;
	kd->lfd = -1;
	rf_leaf_quota_init(&kd->refusals, REFUSED_PER_MIN, REFUSED_PER_UID);
	take_env_pin(&kd->cfg);
	if (kd->cfg.softhsm_conf[0] != '\0' &&
	    access(kd->cfg.softhsm_conf, R_OK) == 0)
		setenv("SOFTHSM2_CONF", kd->cfg.softhsm_conf, 1);
	if ((r = rf_keyd_path(cfg, "keyd.lock", lock, sizeof(lock))) != 0 ||
	    (r = rf_keyd_path(cfg, "keyd.pid", pid, sizeof(pid))) != 0 ||
	    (r = rf_keyd_path(cfg, "keyd.sock", sock, sizeof(sock))) != 0)
		goto out;
	/* One keyd per state folder: the lock lives as long as we do. */
	if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		r = rf_err_set(
		    RF_ERR_IO, "cannot open %s: %s", lock, strerror(errno));
		goto out;
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		r = rf_err_set(RF_ERR_EXISTS,
		    "a custody process already runs for %s (see %s; "
		    "'ringfence keyd stop' stops it)",
		    cfg->home, pid);
		goto out;
	}
	/* Started: no longer stopped on purpose. */
	if (rf_keyd_path(cfg, RF_KEYD_STOPPED, stopped, sizeof(stopped)) == 0)
		(void)unlink(stopped);
	if ((r = listen_on(kd, sock)) != 0)
		goto out;
	listening = 1;
	if ((r = keyd_open(kd)) != 0 || (r = keyd_pipe_start(kd)) != 0 ||
	    (r = bg_start(kd)) != 0 || (r = write_pid(pid)) != 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The connector proof setting is keyd's from its start (whoever
	 * started it): the log says which (docs/connectors.md). */
	keyd_logf(kd,
	    "keyd %d listening on %s (token '%s', %u tokens; connector_proof "
	    "%s)",
	    (int)getpid(), sock, kd->token, kd->tokens,
	    kd->cfg.connector_proof);
	if (o != NULL && o->ready != NULL)
		o->ready(o->ready_arg);
	idle_since = started = rf_now();
	while (!stop_signal) {
		pf[0].fd = kd->lfd;
		pf[0].events = POLLIN;
		pf[1].fd = kd->pl->evfd;
		pf[1].events = POLLIN;
		for (i = 0; i < kd->nconns; i++) {
			/* A caller waiting for its answer, or not reading the
			 * last one, is not read. */
			pf[i + 2].fd = kd->conns[i].busy || kd->conns[i].dead
			    ? -1
			    : kd->conns[i].fd;
			pf[i + 2].events =
			    keyd_out_empty(&kd->conns[i]) ? POLLIN : POLLOUT;
			pf[i + 2].revents = 0;
		}
		n = poll(pf, (nfds_t)kd->nconns + 2, 1000);
		if (n < 0 && errno != EINTR) {
			r = rf_err_set(RF_ERR_IO, "poll: %s", strerror(errno));
			goto out;
		}
		refusals_roll(kd, 0);
		tree_head(kd, started);
		/* Backwards, so that closing one keeps the others' slots. */
		for (i = kd->nconns - 1; n > 0 && i >= 0; i--)
			if (pf[i + 2].revents != 0 &&
			    (!keyd_out_empty(&kd->conns[i])
				    ? keyd_conn_flush(&kd->conns[i])
				    : keyd_conn_read(kd, &kd->conns[i])) != 0)
				keyd_conn_close(kd, i);
		/* answers back, and the next batch recorded */
		keyd_pipe_done(kd);
		keyd_conn_sweep(kd);
		if (n > 0 && (pf[0].revents & POLLIN))
			keyd_conn_accept(kd);
		/* SoftHSM read the token when keyd started and does not read
		 * it again: a token taken away and put back is read by the next
		 * keyd, which the next command starts. */
		if (kd->token_gone) {
			keyd_logf(kd,
			    "a token folder is missing: exiting, the next "
			    "command starts keyd again");
			break;
		}
		if (kd->nconns > 0)
			idle_since = rf_now();
		else if (o != NULL && o->idle > 0 &&
		    rf_now() - idle_since >= o->idle) {
			keyd_logf(kd, "idle for %d s: exiting", o->idle);
			break;
		}
	}
	if (stop_signal)
		keyd_logf(kd, "stopped by signal %d", (int)stop_signal);
	r = 0;
out:
	keyd_pipe_stop(kd); /* every request in flight answered first */
	if (kd->audit != NULL)
		refusals_roll(kd, 1);
	bg_free(kd);
	while (kd->nconns > 0)
		keyd_conn_close(kd, kd->nconns - 1);
	if (listening) {
		(void)unlink(sock);
		(void)unlink(pid);
	}
	if (kd->lfd >= 0)
		close(kd->lfd);
	keyd_key_flush(kd);
	rf_kpolicy_free(kd->policy);
	rf_keys_free(kd->keys);
	rf_audit_free(kd->audit);
	rf_store_free(kd->st);
	if (lfd >= 0)
		close(lfd); /* releases keyd.lock */
	OPENSSL_cleanse(kd, sizeof(*kd));
	free(kd);
	return r;
}
