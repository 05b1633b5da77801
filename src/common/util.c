/* Clock, encodings and file helpers shared by every module. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/file.h"
#include "common/rf.h"

static _Atomic int64_t clock_override;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int64_t env_now; /* RINGFENCE_NOW, read once; 0: unset */

/*
 * RINGFENCE_NOW moves the clock of a whole process: only test builds
 * (CMake option RF_TEST_CLOCK, on in the sanitize build) read it.
 */
static void
env_read(void)
{
#ifdef RF_TEST_CLOCK
	const char *e = getenv("RINGFENCE_NOW");

	if (e != NULL && *e != '\0')
		env_now = strtoll(e, NULL, 10);
#endif
}

void
rf_iso_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

int64_t
rf_now(void)
{
	int64_t t = atomic_load(&clock_override);

	if (t != 0)
		return t;
	/* Once: getenv on every call was 1 % of the OCSP server's time. */
	pthread_once(&env_once, env_read);
	if (env_now != 0)
		return env_now;
	return (int64_t)time(NULL);
}

double
rf_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
rf_clock_set(int64_t t)
{
	atomic_store(&clock_override, t);
}

void
rf_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

const uint8_t *
rf_ip_v4mapped(const uint8_t a16[16])
{
	static const uint8_t prefix[12] = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a16, prefix, sizeof(prefix)) == 0 ? a16 + 12 : NULL;
}

int
rf_ip_network(const char *ip, char out[64])
{
	uint8_t b[16];
	const uint8_t *v4 = b;
	char t[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, b) != 1) {
		if (inet_pton(AF_INET6, ip, b) != 1) {
			snprintf(out, 64, "%.60s", ip);
			return 0;
		}
		if ((v4 = rf_ip_v4mapped(b)) == NULL) {
			memset(b + 8, 0, 8);
			inet_ntop(AF_INET6, b, t, sizeof(t));
			snprintf(out, 64, "%s/64", t);
			return 1;
		}
	}
	snprintf(out, 64, "%u.%u.%u.0/24", v4[0], v4[1], v4[2]);
	return 1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
rf_unhex(const char *in, uint8_t *out, size_t outlen, size_t *len)
{
	size_t n = strlen(in), i;
	int hi, lo;

	if (n % 2 != 0 || n / 2 > outlen)
		return RF_ERR_MALFORMED;
	for (i = 0; i < n / 2; i++) {
		if ((hi = hexval(in[2 * i])) < 0 ||
		    (lo = hexval(in[2 * i + 1])) < 0)
			return RF_ERR_MALFORMED;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

size_t
rf_b64url_len(size_t len)
{
	return (len / 3) * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

void
rf_b64url(const uint8_t *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
	}
	out[o] = '\0';
}

int
rf_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen)
{
	FILE *f = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	*outlen = 0;
	if ((f = fopen(path, "rb")) == NULL)
		return rf_err_set(
		    RF_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	for (;;) {
		if (len == cap) {
			uint8_t *nb;

			cap = cap ? cap * 2 : 4096;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				r = RF_ERR_ALLOC;
				goto out;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len > max) {
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "%s is larger than %zu bytes", path, max);
			goto out;
		}
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		r = rf_err_set(RF_ERR_IO, "cannot read %s", path);
		goto out;
	}
	buf[len] = '\0'; /* convenient for text; not counted */
	*out = buf;
	*outlen = len;
	buf = NULL; /* now owned by the caller */
	r = 0;
out:
	free(buf);
	fclose(f);
	return r;
}

/* The folder of path by descriptor, then rf_file_write_at (file.h). */
int
rf_write_file(const char *path, const uint8_t *data, size_t len, int mode)
{
	const char *slash = path != NULL ? strrchr(path, '/') : NULL;
	char dir[4096];
	int dirfd = -1, r;

	if (path == NULL || *path == '\0')
		return rf_err_set(RF_ERR_ARG, "no file name given");
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return rf_err_set(RF_ERR_ARG, "path too long: %.80s", path);
	else
		snprintf(dir, sizeof(dir), "%.*s",
		    slash == path ? 1 : (int)(slash - path), path);
	if ((r = rf_file_open_dir(dir, &dirfd)) != 0)
		return r;
	r = rf_file_write_at(
	    dirfd, slash != NULL ? slash + 1 : path, data, len, mode);
	close(dirfd);
	return r;
}

void
rf_freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void
rf_env_wipe(const char *name)
{
	char *e = getenv(name), *entry;
	size_t n;

	if (e == NULL)
		return;
	/*
	 * getenv points past the '=' of the entry "NAME=value", one string
	 * of the environment block. unsetenv takes it out of environ but
	 * leaves its bytes, which /proc/PID/environ shows: the whole entry is
	 * wiped, its name too.
	 */
	entry = e - (strlen(name) + 1);
	n = strlen(entry);
	unsetenv(name);
	OPENSSL_cleanse(entry, n);
}

struct range {
	void (*fn)(void *, size_t, size_t);
	void *arg;
	size_t from, to;
};

static void *
range_run(void *p)
{
	struct range *g = p;

	g->fn(g->arg, g->from, g->to);
	return NULL;
}

/* [0, n) cut into contiguous ranges over g[0..all): as many as all allows,
 * at most n and at least 1; the rest are left empty. */
static void
cut(struct range *g, int all, size_t n, void (*fn)(void *, size_t, size_t),
    void *arg)
{
	int i, k = all;

	if ((size_t)k > n)
		k = n > 0 ? (int)n : 1;
	for (i = 0; i < all; i++) {
		g[i].fn = fn;
		g[i].arg = arg;
		g[i].from = i < k ? n * (size_t)i / (size_t)k : n;
		g[i].to = i < k ? n * (size_t)(i + 1) / (size_t)k : n;
	}
}

void
rf_parallel(
    size_t n, int threads, void (*fn)(void *, size_t, size_t), void *arg)
{
	struct range g[16];
	pthread_t tid[16];
	int started[16], i;

	if (threads < 1)
		threads = 1;
	if (threads > 16)
		threads = 16;
	if ((size_t)threads > n)
		threads = n > 0 ? (int)n : 1;
	cut(g, threads, n, fn, arg);
	for (i = 1; i < threads; i++)
		started[i] =
		    pthread_create(&tid[i], NULL, range_run, &g[i]) == 0;
	range_run(&g[0]);
	for (i = 1; i < threads; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			range_run(&g[i]);
	}
}

struct crew_worker {
	struct rf_crew *c;
	int i; /* its range: g[i] */
	pthread_t tid;
	int started;
};

struct rf_crew {
	pthread_mutex_t run; /* one rf_crew_run at a time */
	pthread_mutex_t mu;
	pthread_cond_t go, idle;
	int threads;		  /* the caller and the workers */
	uint64_t round;		  /* bumped by each run (mu) */
	int busy;		  /* workers still in this round (mu) */
	int stop;		  /* (mu) */
	struct range g[16];	  /* this round's ranges (mu) */
	struct crew_worker w[16]; /* w[1..threads) */
};

static void *
crew_main(void *p)
{
	struct crew_worker *w = p;
	struct rf_crew *c = w->c;
	uint64_t seen = 0;
	struct range g;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (!c->stop && c->round == seen)
			pthread_cond_wait(&c->go, &c->mu);
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		seen = c->round;
		g = c->g[w->i];
		pthread_mutex_unlock(&c->mu);
		if (g.from < g.to)
			range_run(&g);
		pthread_mutex_lock(&c->mu);
		if (--c->busy == 0)
			pthread_cond_signal(&c->idle);
		pthread_mutex_unlock(&c->mu);
	}
}

int
rf_crew_new(int threads, const char *name, struct rf_crew **out)
{
	struct rf_crew *c;
	int i;

	*out = NULL;
	if (threads < 1)
		threads = 1;
	if (threads > 16)
		threads = 16;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	if (pthread_mutex_init(&c->run, NULL) != 0 ||
	    pthread_mutex_init(&c->mu, NULL) != 0 ||
	    pthread_cond_init(&c->go, NULL) != 0 ||
	    pthread_cond_init(&c->idle, NULL) != 0) {
		free(c);
		return rf_err_set(RF_ERR_INTERNAL, "cannot set up threads");
	}
	c->threads = 1;
	for (i = 1; i < threads; i++) {
		c->w[i].c = c;
		c->w[i].i = i;
		if (pthread_create(&c->w[i].tid, NULL, crew_main, &c->w[i]) !=
		    0)
			break; /* fewer workers: their ranges run in others */
		(void)pthread_setname_np(c->w[i].tid, name);
		c->w[i].started = 1;
		c->threads++;
	}
	*out = c;
	return 0;
}

void
rf_crew_run(
    struct rf_crew *c, size_t n, void (*fn)(void *, size_t, size_t), void *arg)
{
	pthread_mutex_lock(&c->run);
	pthread_mutex_lock(&c->mu);
	cut(c->g, c->threads, n, fn, arg);
	if (c->threads > 1) {
		c->busy = c->threads - 1;
		c->round++;
		pthread_cond_broadcast(&c->go);
	}
	pthread_mutex_unlock(&c->mu);
	range_run(&c->g[0]);
	pthread_mutex_lock(&c->mu);
	while (c->busy > 0)
		pthread_cond_wait(&c->idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->run);
}

void
rf_crew_free(struct rf_crew *c)
{
	int i;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->go);
	pthread_mutex_unlock(&c->mu);
	for (i = 1; i < 16; i++)
		if (c->w[i].started)
			pthread_join(c->w[i].tid, NULL);
	pthread_cond_destroy(&c->idle);
	pthread_cond_destroy(&c->go);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->run);
	free(c);
}

#ifdef RF_TEST_SEAMS
void
rf_test_point(const char *name)
{
	const char *at = getenv("RINGFENCE_TEST_KILL_AT");

	if (at != NULL && strcmp(at, name) == 0)
		raise(SIGKILL);
}

void
rf_test_pause(const char *name)
{
	const char *at = getenv("RINGFENCE_TEST_PAUSE_AT");
	const char *ms = getenv("RINGFENCE_TEST_PAUSE_MS");
	const char *until;
	int n = ms != NULL ? atoi(ms) : 2000;

	if (at == NULL || strcmp(at, name) != 0)
		return;
	/* One line on stderr (keyd's: keyd.log), so that a test knows the
	 * process is held there before it acts in the window. */
	fprintf(stderr, "ringfence: test pause at %s for %d ms\n", name, n);
	fflush(stderr);
	/* With RINGFENCE_TEST_PAUSE_UNTIL, a handshake: held until the test
	 * creates that file (at most n ms), however loaded the machine. */
	if ((until = getenv("RINGFENCE_TEST_PAUSE_UNTIL")) != NULL) {
		for (; n > 0 && access(until, F_OK) != 0; n -= 10)
			usleep(10000);
		return;
	}
	usleep((useconds_t)n * 1000);
}
#endif
