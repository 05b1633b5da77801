/*
 * bench_issue: issuance throughput of rf_ca_issue against the token's raw
 * signing rate.
 *
 * usage: bench_issue [N [BATCH [norate]]]   (default 2000 500)
 *
 * In a temp state folder with a fresh SoftHSM token (made through the
 * library, as `ringfence init` does): (a) rf_keys_measure_rate with the
 * issuing key on 1 and 2 threads; (b) N CSRs from throwaway software keys
 * (made before the clock starts), each for its own tenant, issued through
 * rf_ca_issue in batches of BATCH, committed to the store. Prints
 * "key value" lines for bench/issue.sh. Everything is deleted at the end.
 * "norate" skips (a): bench/audit.sh runs (b) alone, with the record on and
 * in the record-off build (CMake RF_BENCH_AUDIT_OFF).
 *
 * With RF_BENCH_KEYD set to a ringfence binary, (b) goes through the
 * custody process as every command does: the state is made in-process (as
 * `ringfence init` does), then a keyd is started from that binary and the
 * issuance's keys are a client of it (bench/custody.sh). RF_BENCH_PIPELINE
 * (with it) issues the N through rf_ca_issue_pipelined, contain's reissue
 * path: a batch is signed while the one before it commits.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "keys/keyd.h"
#include "store/store.h"

static pid_t keyd_pid = -1;

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench_issue: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A DER PKCS#10 request from a fresh P-256 key; the key is dropped. */
static int
make_csr(uint8_t **der, size_t *len)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509_REQ *rq = X509_REQ_new();
	unsigned char *p = NULL;
	int n, ok = 0;

	if (pk != NULL && rq != NULL && X509_REQ_set_version(rq, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(rq), "CN",
		MBSTRING_ASC, (const unsigned char *)"bench", -1, -1, 0) == 1 &&
	    X509_REQ_set_pubkey(rq, pk) == 1 &&
	    X509_REQ_sign(rq, pk, EVP_sha256()) > 0 &&
	    (n = i2d_X509_REQ(rq, &p)) > 0) {
		*der = p;
		*len = (size_t)n;
		ok = 1;
	}
	X509_REQ_free(rq);
	EVP_PKEY_free(pk);
	return ok ? 0 : RF_ERR_INTERNAL;
}

/* CPU seconds of this process (every thread) so far. */
static double
cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of keyd (RF_BENCH_KEYD) so far, from /proc; 0 without. */
static double
keyd_cpu(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	if (keyd_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)keyd_pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* Fields 14 and 15 (utime, stime) follow the ")" ending comm. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		&ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * (c) What every released certificate costs besides the token: the two
 * signatures verified with the public key before release (keys), and the
 * CSR's proof of possession (ca). Each measured on two threads, as the
 * token's rate is; with it they make the floor of a certificate that may
 * be released (bench/issue.sh).
 */
struct floor_job {
	EVP_PKEY *pub;
	const uint8_t *dig, *sig;
	size_t diglen, siglen;
	struct rf_csr **csrs;
	size_t from, to;
	int bad;
};

static void *
floor_verify(void *arg)
{
	struct floor_job *j = arg;
	struct rf_verifier *v = NULL;
	size_t i;

	if (rf_keys_verifier_new(j->pub, RF_KEY_EC_P256, &v) != 0) {
		j->bad = 1;
		return NULL;
	}
	for (i = j->from; i < j->to; i++)
		if (rf_keys_verifier_check(v, RF_SIG_DEFAULT, j->dig, j->diglen,
			j->sig, j->siglen) != 0)
			j->bad = 1;
	rf_keys_verifier_free(v);
	return NULL;
}

static void *
floor_prove(void *arg)
{
	struct floor_job *j = arg;
	size_t i;

	for (i = j->from; i < j->to; i++)
		if (rf_ca_csr_prove(j->csrs[i]) != 0)
			j->bad = 1;
	return NULL;
}

/* Items per second of fn over [0, n) on two threads. */
static double
floor_rate(void *(*fn)(void *), struct floor_job *tmpl, size_t n)
{
	struct floor_job j[2];
	pthread_t tid;
	double t0;
	int k;

	for (k = 0; k < 2; k++) {
		j[k] = *tmpl;
		j[k].from = n * (size_t)k / 2;
		j[k].to = n * (size_t)(k + 1) / 2;
	}
	t0 = mono();
	if (pthread_create(&tid, NULL, fn, &j[1]) != 0)
		die("thread", RF_ERR_INTERNAL);
	fn(&j[0]);
	pthread_join(tid, NULL);
	if (j[0].bad || j[1].bad)
		die("floor", RF_ERR_SIGNATURE_INVALID);
	return (double)n / (mono() - t0);
}

static void
floor_rates(struct rf_keys *keys, struct rf_key *key, uint8_t **csr,
    const size_t *csrlen, size_t n, double *verify2, double *prove2)
{
	const struct rf_actor who = {"bench", "bench"};
	struct floor_job j;
	struct rf_sign_req req;
	struct rf_sig sig = {0};
	struct rf_csr **csrs;
	uint8_t dig[32];
	size_t i;
	int r;

	memset(&j, 0, sizeof(j));
	memset(&req, 0, sizeof(req));
	memset(dig, 0x5a, sizeof(dig));
	req.msg = dig;
	req.msglen = sizeof(dig);
	req.what = "bench";
	if ((r = rf_keys_sign_digest(keys, key, &req, 1, &who, &sig)) != 0)
		die("floor signature", r);
	j.pub = rf_key_public(key);
	j.dig = dig;
	j.diglen = sizeof(dig);
	j.sig = sig.sig;
	j.siglen = sig.len;
	*verify2 = floor_rate(floor_verify, &j, n);
	if ((csrs = calloc(n, sizeof(*csrs))) == NULL)
		die("memory", RF_ERR_ALLOC);
	for (i = 0; i < n; i++)
		if ((r = rf_ca_csr_open(csr[i], csrlen[i], RF_PROFILE_CLIENT,
			 &csrs[i], NULL, NULL)) != 0)
			die("CSR", r);
	j.csrs = csrs;
	*prove2 = floor_rate(floor_prove, &j, n);
	for (i = 0; i < n; i++)
		rf_csr_free(csrs[i]);
	free(csrs);
	rf_sig_clear(&sig);
}

static int
count_ocsp(void *arg, const struct rf_ocsp_rec *o)
{
	(void)o;
	(*(size_t *)arg)++;
	return 0;
}

/*
 * RF_BENCH_CALLERS=K (with RF_BENCH_KEYD): K processes issue the N
 * certificates together through the one keyd, each its share in batches,
 * as K operators' commands would. Each opens the store and keyd itself
 * (nothing opened here crosses a fork), then waits on go so that the
 * clock starts when every caller is ready. Returns the seconds.
 */
static double
issue_callers(const struct rf_config *cfg, int callers,
    const struct rf_issue_req *reqs, size_t n, size_t batch)
{
	const struct rf_actor who = {"bench", "bench"};
	int go[2], ready[2], k, status, bad = 0;
	pid_t pid[16];
	double t0;
	char b;

	if (pipe(go) != 0 || pipe(ready) != 0)
		die("pipe", RF_ERR_IO);
	for (k = 0; k < callers; k++) {
		if ((pid[k] = fork()) < 0)
			die("fork", RF_ERR_INTERNAL);
		if (pid[k] == 0) {
			struct rf_store *st = NULL;
			struct rf_audit *audit = NULL;
			struct rf_keys *keys = NULL;
			struct rf_ca *ca = NULL;
			struct rf_issued *out;
			size_t from = n * (size_t)k / (size_t)callers;
			size_t to = n * (size_t)(k + 1) / (size_t)callers;
			size_t i, m;
			int r;

			close(go[1]);
			close(ready[0]);
			if ((out = calloc(to - from, sizeof(*out))) == NULL ||
			    (r = rf_store_open(cfg->db_path, 0, &st)) != 0 ||
			    (r = rf_audit_open(st, &audit)) != 0 ||
			    (r = rf_keys_open(cfg, audit, &keys)) != 0 ||
			    (r = rf_ca_open(cfg, st, keys, &ca)) != 0)
				_exit(3);
			rf_ca_set_audit(ca, audit);
			if (write(ready[1], "r", 1) != 1 ||
			    read(go[0], &b, 1) != 1)
				_exit(4);
			for (i = from; i < to; i += m) {
				m = to - i < batch ? to - i : batch;
				if ((r = rf_ca_issue(ca, reqs + i, m, &who,
					 out + (i - from))) != 0) {
					fprintf(stderr,
					    "bench_issue: caller %d: %s\n", k,
					    rf_err_msg(r));
					_exit(5);
				}
			}
			_exit(0);
		}
	}
	close(go[0]);
	close(ready[1]);
	for (k = 0; k < callers; k++)
		if (read(ready[0], &b, 1) != 1)
			die("a caller did not start", RF_ERR_INTERNAL);
	t0 = mono();
	for (k = 0; k < callers; k++)
		if (write(go[1], "g", 1) != 1)
			die("go", RF_ERR_IO);
	for (k = 0; k < callers; k++)
		if (waitpid(pid[k], &status, 0) != pid[k] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	if (bad)
		die("a caller failed", RF_ERR_INTERNAL);
	close(go[1]);
	close(ready[0]);
	return mono() - t0;
}

/* rf_custody start: the keyd of RF_BENCH_KEYD, until its socket answers. */
static int
start_keyd(void *arg, const struct rf_config *cfg)
{
	const char *bin = arg;
	struct rf_keyd_status ks;
	int i;

	if ((keyd_pid = fork()) < 0)
		return rf_err_set(RF_ERR_INTERNAL, "fork: %s", strerror(errno));
	if (keyd_pid == 0) {
		execl(bin, bin, "keyd", "--idle", "0", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 400; i++) {
		if (rf_keyd_status_get(cfg, &ks) == 0)
			return 0;
		rf_err_clear();
		usleep(25000);
	}
	return rf_err_set(RF_ERR_CUSTODY, "keyd from %s did not start", bin);
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_ca *ca = NULL;
	struct rf_actor who = {"bench", "bench"};
	struct rf_custody cu = {RF_KCLASS_ADMIN, start_keyd, NULL};
	const char *keyd_bin = getenv("RF_BENCH_KEYD");
	const char *ncallers = getenv("RF_BENCH_CALLERS");
	int pipelined = getenv("RF_BENCH_PIPELINE") != NULL;
	int callers = ncallers != NULL ? atoi(ncallers) : 1;
	struct rf_issue_req *reqs;
	struct rf_issued *out;
	uint8_t **csr;
	size_t *csrlen, n = 2000, batch = 500, i, m, nocsp = 0;
	char home[] = "/tmp/rf-bench-issue-XXXXXX", (*tenant)[24], cmd[300];
	double r1 = 0, r2 = 0, v2 = 0, p2 = 0, t0, t1, c0 = cpu(), c1, k0 = 0,
	       k1;
	int r, norate = 0;

	if (argc > 1)
		n = strtoul(argv[1], NULL, 10);
	if (argc > 2)
		batch = strtoul(argv[2], NULL, 10);
	if (argc > 3 && strcmp(argv[3], "norate") == 0)
		norate = 1;
	if (callers < 1 || callers > 16 ||
	    (callers > 1 && (keyd_bin == NULL || *keyd_bin == '\0'))) {
		fprintf(stderr,
		    "bench_issue: RF_BENCH_CALLERS is 1 to 16, "
		    "and more than 1 needs RF_BENCH_KEYD\n");
		return 2;
	}
	if (n == 0 || batch == 0 || (argc > 3 && !norate)) {
		fprintf(stderr, "usage: bench_issue [N [BATCH [norate]]]\n");
		return 2;
	}
	if (mkdtemp(home) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	setenv("RINGFENCE_HOME", home, 1);
	setenv("RINGFENCE_PIN", "1234", 1);
	unsetenv("RINGFENCE_MODULE");
	unsetenv("RINGFENCE_TOKEN");
	unsetenv("RINGFENCE_NOW");
	/* The bench's state folder is this user's: no user split for keyd. */
	setenv("RINGFENCE_CUSTODY_USER", "rf-bench-nobody", 1);
	if ((r = rf_config_load(&cfg)) != 0)
		die("config", r);
	if ((r = rf_keys_init_token(&cfg, "12345678", "1234", cfg.tokens)) != 0)
		die("token", r);
	if ((r = rf_store_open(cfg.db_path, 1, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_ca_init(&cfg, st, keys, &who)) != 0 ||
	    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0)
		die("init", r);
	rf_ca_set_audit(ca, audit);
	if (keyd_bin != NULL && *keyd_bin != '\0') {
		/* From here on the token is keyd's: this process asks it. */
		rf_ca_free(ca);
		rf_keys_free(keys);
		ca = NULL;
		keys = NULL;
		cu.arg = (void *)keyd_bin;
		rf_keys_custody_use(&cu);
		if ((r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
		    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0)
			die("custody", r);
		rf_ca_set_audit(ca, audit);
	}

	/* (a) The token's raw rate with the issuing key (unless norate). */
	if (!norate &&
	    ((r = rf_keys_measure_rate(
		  keys, rf_ca_key(ca, "issuing"), n, 1, &r1)) != 0 ||
		(r = rf_keys_measure_rate(
		     keys, rf_ca_key(ca, "issuing"), n, 2, &r2)) != 0))
		die("measure rate", r);

	/* (b) N CSRs and tenants, made before the clock starts. */
	csr = calloc(n, sizeof(*csr));
	csrlen = calloc(n, sizeof(*csrlen));
	tenant = calloc(n, sizeof(*tenant));
	reqs = calloc(n, sizeof(*reqs));
	out = calloc(n, sizeof(*out));
	if (csr == NULL || csrlen == NULL || tenant == NULL || reqs == NULL ||
	    out == NULL)
		die("memory", RF_ERR_ALLOC);
	if ((r = rf_store_begin(st)) != 0)
		die("begin", r);
	for (i = 0; i < n; i++) {
		snprintf(tenant[i], sizeof(tenant[i]), "t%06zu", i);
		if ((r = rf_store_tenant_add(st, tenant[i], rf_now())) != 0)
			die("tenant", r);
		if ((r = make_csr(&csr[i], &csrlen[i])) != 0)
			die("CSR", r);
		reqs[i].tenant = tenant[i];
		reqs[i].profile = RF_PROFILE_CLIENT;
		reqs[i].csr = csr[i];
		reqs[i].csrlen = csrlen[i];
	}
	if ((r = rf_store_commit(st)) != 0)
		die("commit", r);
	if (!norate)
		floor_rates(
		    keys, rf_ca_key(ca, "issuing"), csr, csrlen, n, &v2, &p2);

	if (callers > 1) {
		t0 = 0;
		t1 = issue_callers(&cfg, callers, reqs, n, batch);
	} else if (pipelined) {
		/* contain's reissue path: batch k+1 signed while k commits. */
		c0 = cpu();
		k0 = keyd_cpu();
		t0 = mono();
		if ((r = rf_ca_issue_pipelined(ca, reqs, n, batch, batch, &who,
			 NULL, NULL, NULL, NULL)) != 0)
			die("issue (pipelined)", r);
		t1 = mono();
	} else {
		c0 = cpu();
		k0 = keyd_cpu();
		t0 = mono();
		for (i = 0; i < n; i += m) {
			m = n - i < batch ? n - i : batch;
			if ((r = rf_ca_issue(ca, reqs + i, m, &who, out + i)) !=
			    0)
				die("issue", r);
		}
		t1 = mono();
	}
	c1 = cpu();
	k1 = keyd_cpu();
	if ((r = rf_store_ocsp_foreach(st, 0, count_ocsp, &nocsp)) != 0)
		die("ocsp count", r);

	printf("certs %zu\n", n);
	printf("batch %zu\n", batch);
	printf("callers %d\n", callers);
	printf("issue_seconds %.3f\n", t1 - t0);
	printf("issue_per_sec %.1f\n", (double)n / (t1 - t0));
	/* This process's CPU per certificate (every thread; in-process
	 * keys: the token's too): steadier than the rate on a busy host.
	 * Through keyd it leaves keyd's out. */
	if (callers == 1) {
		printf("issue_cpu_ms_per_cert %.4f\n",
		    (c1 - c0) * 1e3 / (double)n);
		/* With keyd's (10 ms ticks: steady over a few seconds). */
		if (keyd_pid > 0)
			printf("issue_keyd_cpu_ms_per_cert %.4f\n",
			    (k1 - k0) * 1e3 / (double)n);
	}
	printf("token_rate_1 %.1f\n", r1);
	printf("token_rate_2 %.1f\n", r2);
	printf("verify_rate_2 %.1f\n", v2);
	printf("prove_rate_2 %.1f\n", p2);
	/* 1 certificate signature, plus 1 OCSP pre-signature when issuance
	 * pre-signs (then every new certificate has a stored response). */
	printf("sigs_per_cert %d\n", nocsp >= n ? 2 : 1);

	for (i = 0; i < n; i++) {
		rf_issued_clear(&out[i]);
		OPENSSL_free(csr[i]);
	}
	free(out);
	free(reqs);
	free(tenant);
	free(csrlen);
	free(csr);
	rf_ca_free(ca);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	if (keyd_pid > 0) {
		(void)kill(keyd_pid, SIGTERM);
		(void)waitpid(keyd_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s-custody'", home, home);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_issue: could not remove %s\n", home);
	return 0;
}
