/*
 * bench_assert: the connector API's cost (bench/assert.sh).
 *
 * bench_assert raw KEYID N [MSGLEN]
 *	the token's raw signing rate with that key (the connection's
 *	RSA-2048 key) over N signatures on 2 sessions, in this process:
 *	RSA-PSS over a message of MSGLEN bytes that the token hashes, as a
 *	PS256 assertion's signing input is signed (without MSGLEN: the key's
 *	default mechanism over a fixed digest); prints "signatures/s cpu_s",
 *	cpu_s this process's CPU time for them.
 * bench_assert load HOST:PORT CERT KEY CA CONNECTION SECONDS THREADS [RATE]
 *	THREADS keep-alive mutual-TLS connections, each POSTing
 *	/v1/assertions for CONNECTION for SECONDS (paced to RATE a second in
 *	total when given, the connections' turns spread evenly over each
 *	period, not all at once); prints "rate p50_ms p99_ms errors cpu_s",
 *cpu_s the load's own CPU time (user and system, every thread), which
 *	bench/assert.sh counts against the assertions made.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "audit/audit.h"
#include "connector/connector.h"
#include "http/http.h"
#include "keys/keys.h"
#include "store/store.h"

#define MAXLAT 2000000

struct load {
	const char *hostport, *cert, *key, *ca, *conn;
	double seconds, rate;
	int threads;
	int started; /* workers so far: each one's turn in the period */
	SSL_CTX *ctx;
	EVP_PKEY *pkey;	 /* the connector's key: each request's proof */
	int use_session; /* each proof a MAC of one proof session */
	struct rf_proof_session session;
	pthread_mutex_t lock;
	double *lat;
	size_t nlat;
	size_t errors;
	char first_err[160]; /* what the first failed request got */
};

static double
mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static BIO *
dial(struct load *L)
{
	BIO *b = BIO_new_ssl_connect(L->ctx);

	if (b == NULL || BIO_set_conn_hostname(b, L->hostport) != 1 ||
	    BIO_do_connect(b) != 1 || BIO_do_handshake(b) != 1) {
		BIO_free_all(b);
		return NULL;
	}
	return b;
}

/*
 * One request on b; 0 on a 200 answer read in full, else what went wrong
 * in why (the status line and body, or the failed step).
 */
static int
one_body(BIO *b, const char *req, size_t reqlen, char *why, size_t whylen,
    char *body, size_t bodylen)
{
	char buf[8192], *p;
	size_t off = 0, clen = 0, hl;
	int n;

	if (BIO_write(b, req, (int)reqlen) != (int)reqlen) {
		snprintf(why, whylen, "writing the request failed");
		return -1;
	}
	for (;;) {
		if (off == sizeof(buf) - 1) {
			snprintf(why, whylen, "an answer over %zu bytes",
			    sizeof(buf) - 1);
			return -1;
		}
		if ((n = BIO_read(
			 b, buf + off, (int)(sizeof(buf) - 1 - off))) <= 0) {
			snprintf(why, whylen,
			    "the connection ended after %zu bytes of the "
			    "answer",
			    off);
			return -1;
		}
		off += (size_t)n;
		buf[off] = '\0';
		if ((p = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		hl = (size_t)(p + 4 - buf);
		if ((p = strcasestr(buf, "\r\nContent-Length:")) == NULL) {
			snprintf(why, whylen, "an answer without a length");
			return -1;
		}
		clen = strtoul(p + 17, NULL, 10);
		if (off >= hl + clen)
			break;
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) == 0) {
		if (body != NULL)
			snprintf(body, bodylen, "%.*s", (int)clen, buf + hl);
		return 0;
	}
	p = strchr(buf, '\r');
	snprintf(why, whylen, "%.*s: %.*s", (int)(p - buf), buf,
	    (int)(off - hl < 100 ? off - hl : 100), buf + hl);
	return 1;
}

static int
one(BIO *b, const char *req, size_t reqlen, char *why, size_t whylen)
{
	return one_body(b, req, reqlen, why, whylen, NULL, 0);
}

/*
 * RF_BENCH_PROOF=session (the default): one proof session for the
 * process (POST /v1/connector/session, as a connector that asks often
 * keeps one), each request's proof a MAC of it.
 */
static int
session_open(struct load *L)
{
	char pub[RF_PROOF_B64_32 + 1], proof[RF_PROOF_MAX + 1];
	char body[RF_PROOF_MAX + 128], req[RF_PROOF_MAX + 512], ans[1024];
	char why[160];
	EVP_PKEY *eph = NULL;
	BIO *b;
	int n, r = -1;

	if ((b = dial(L)) == NULL ||
	    rf_proof_session_ask(
		L->pkey, rf_now(), &eph, pub, proof, sizeof(proof)) != 0)
		goto out;
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"proof\":\"%s\"}", pub,
	    proof);
	n = snprintf(req, sizeof(req),
	    "POST /v1/connector/session HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    L->hostport, strlen(body), body);
	if (one_body(b, req, (size_t)n, why, sizeof(why), ans, sizeof(ans)) !=
	    0) {
		fprintf(
		    stderr, "bench_assert: opening a proof session: %s\n", why);
		goto out;
	}
	if ((n = rf_proof_session_answer(eph, pub, ans, &L->session)) != 0) {
		fprintf(stderr, "bench_assert: the proof session: %s\n",
		    rf_err_msg(n));
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(eph);
	BIO_free_all(b);
	return r;
}

static void *
worker(void *arg)
{
	struct load *L = arg;
	char body[RF_PROOF_MAX + 128], req[RF_PROOF_MAX + 512], why[160];
	char proof[RF_PROOF_MAX + 1];
	double t0 = mono(), t, next = t0, gap, *lat;
	size_t nl = 0, errs = 0;
	int reqlen;
	BIO *b;

	gap = L->rate > 0 ? (double)L->threads / L->rate : 0;
	/* Paced: the i-th connection asks at i / threads of each period, so
	 * that the offered load is even rather than bursts of every one. */
	pthread_mutex_lock(&L->lock);
	next += gap * L->started++ / L->threads;
	pthread_mutex_unlock(&L->lock);
	if ((lat = malloc(sizeof(double) * MAXLAT)) == NULL ||
	    (b = dial(L)) == NULL) {
		free(lat);
		pthread_mutex_lock(&L->lock);
		L->errors++;
		pthread_mutex_unlock(&L->lock);
		return NULL;
	}
	while ((t = mono()) - t0 < L->seconds && nl < MAXLAT) {
		if (gap > 0) {
			if (t < next) {
				struct timespec ts = {
				    0, (long)((next - t) * 1e9)};

				nanosleep(&ts, NULL);
			}
			next += gap;
			t = mono();
		}
		/* A new proof each request, as ringfence assert makes it:
		 * its cost is the connector's, and keyd's check is in. */
		if (L->pkey == NULL)
			proof[0] = '\0';
		else if (L->use_session
			? rf_proof_make_session(&L->session, "assert", L->conn,
			      rf_now(), proof, sizeof(proof)) != 0
			: rf_proof_make(L->pkey, "assert", L->conn, rf_now(),
			      proof, sizeof(proof)) != 0) {
			errs++;
			break;
		}
		if (proof[0] != '\0')
			snprintf(body, sizeof(body),
			    "{\"connection\":\"%s\",\"proof\":\"%s\"}", L->conn,
			    proof);
		else
			snprintf(body, sizeof(body), "{\"connection\":\"%s\"}",
			    L->conn);
		reqlen = snprintf(req, sizeof(req),
		    "POST /v1/assertions HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n\r\n%s",
		    L->hostport, strlen(body), body);
		if (one(b, req, (size_t)reqlen, why, sizeof(why)) != 0) {
			pthread_mutex_lock(&L->lock);
			if (L->first_err[0] == '\0')
				snprintf(L->first_err, sizeof(L->first_err),
				    "%.*s", (int)sizeof(L->first_err) - 1, why);
			pthread_mutex_unlock(&L->lock);
			errs++;
			BIO_free_all(b);
			if ((b = dial(L)) == NULL)
				break;
			continue;
		}
		lat[nl++] = (mono() - t) * 1000.0;
	}
	BIO_free_all(b);
	pthread_mutex_lock(&L->lock);
	memcpy(L->lat + L->nlat, lat, nl * sizeof(double));
	L->nlat += nl;
	L->errors += errs;
	pthread_mutex_unlock(&L->lock);
	free(lat);
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* This process's CPU time so far (user and system, every thread), s. */
static double
cpu_self(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
load(int argc, char **argv)
{
	struct load L;
	pthread_t tid[64];
	double t0, el, c0;
	const char *mode;
	int i;

	if (argc < 9)
		return 2;
	memset(&L, 0, sizeof(L));
	L.hostport = argv[2];
	L.cert = argv[3];
	L.key = argv[4];
	L.ca = argv[5];
	L.conn = argv[6];
	L.seconds = atof(argv[7]);
	L.threads = atoi(argv[8]);
	L.rate = argc > 9 ? atof(argv[9]) : 0;
	if (L.threads < 1 || L.threads > 64 || L.seconds <= 0)
		return 2;
	pthread_mutex_init(&L.lock, NULL);
	if ((L.lat = malloc(sizeof(double) * MAXLAT * 2)) == NULL ||
	    rf_http_tls_ctx(0, &L.ctx) != 0 ||
	    SSL_CTX_load_verify_locations(L.ctx, L.ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(L.ctx, L.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(L.ctx, L.key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "bench_assert: TLS setup failed\n");
		return 1;
	}
	SSL_CTX_set_verify(L.ctx, SSL_VERIFY_PEER, NULL);
	{
		FILE *f = fopen(L.key, "r");

		L.pkey =
		    f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
		if (f != NULL)
			fclose(f);
	}
	/* RF_BENCH_PROOF: "session" (the default), "signed" (a signature
	 * per request) or "none" (connector_proof optional), to see what the
	 * proofs cost. */
	mode = getenv("RF_BENCH_PROOF") != NULL ? getenv("RF_BENCH_PROOF")
						: "session";
	if (strcmp(mode, "none") == 0) {
		EVP_PKEY_free(L.pkey);
		L.pkey = NULL;
	} else if (L.pkey == NULL) {
		fprintf(
		    stderr, "bench_assert: %s: no PEM private key\n", L.key);
		return 1;
	} else if (strcmp(mode, "session") == 0) {
		L.use_session = 1;
		if (session_open(&L) != 0)
			return 1;
	} else if (strcmp(mode, "signed") != 0) {
		fprintf(stderr,
		    "bench_assert: RF_BENCH_PROOF is session, signed or "
		    "none, not '%s'\n",
		    mode);
		return 2;
	}
	t0 = mono();
	c0 = cpu_self();
	for (i = 0; i < L.threads; i++)
		pthread_create(&tid[i], NULL, worker, &L);
	for (i = 0; i < L.threads; i++)
		pthread_join(tid[i], NULL);
	el = mono() - t0;
	qsort(L.lat, L.nlat, sizeof(double), cmp);
	if (L.errors > 0)
		fprintf(stderr,
		    "bench_assert: %zu failed requests; the first: %s\n",
		    L.errors,
		    L.first_err[0] ? L.first_err : "a connection failed");
	printf("%.0f %.2f %.2f %zu %.3f\n", (double)L.nlat / el,
	    L.nlat ? L.lat[L.nlat / 2] : 0,
	    L.nlat ? L.lat[(size_t)((double)L.nlat * 0.99)] : 0, L.errors,
	    cpu_self() - c0);
	SSL_CTX_free(L.ctx);
	EVP_PKEY_free(L.pkey);
	free(L.lat);
	return L.nlat > 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_key *key = NULL;
	double rate = 0, c0 = 0;
	int r;

	if (argc > 1 && strcmp(argv[1], "load") == 0)
		return load(argc, argv);
	if ((argc != 4 && argc != 5) || strcmp(argv[1], "raw") != 0) {
		fprintf(stderr,
		    "usage: bench_assert raw KEYID N [MSGLEN]\n"
		    "       bench_assert load HOST:PORT CERT KEY CA CONNECTION "
		    "SECONDS THREADS [RATE]\n");
		return 2;
	}
	if ((r = rf_config_load(&cfg)) != 0 ||
	    (r = rf_store_open(cfg.db_path, 0, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_keys_load(keys, argv[2], &key)) != 0 ||
	    (c0 = cpu_self()) < 0 ||
	    (r = argc == 5 ? rf_keys_measure_rate_msg(keys, key,
				 strtoul(argv[3], NULL, 10), 2, RF_SIG_RSA_PSS,
				 strtoul(argv[4], NULL, 10), &rate)
			   : rf_keys_measure_rate(keys, key,
				 strtoul(argv[3], NULL, 10), 2, &rate)) != 0) {
		fprintf(stderr, "bench_assert: %s\n", rf_err_msg(r));
		return 1;
	}
	printf("%.0f %.3f\n", rate, cpu_self() - c0);
	rf_key_free(key);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	return 0;
}
