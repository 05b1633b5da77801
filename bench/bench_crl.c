/*
 * bench_crl: time rf_crl_generate against `openssl ca -gencrl` on the same
 * revoked entries.
 *
 * usage: bench_crl [N ...]   (default: 100000 1000000)
 *
 * Builds a throwaway state (SoftHSM token, store, CA) in a temp folder,
 * adds fake revoked certificate records straight through the store API
 * (the CRL reads only serial, date, reason and notAfter), and writes the
 * same entries as an `openssl ca` index.txt next to a throwaway software
 * CA. Sizes are cumulative: each N adds entries up to N. Everything is
 * deleted at the end.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "revoke/revoke.h"
#include "store/store.h"

#define PIN "1234"

struct bench {
	char home[256];
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
	FILE *index;
	size_t have;
};

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench_crl: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

static int sh(const char *fmt, ...) RF_PRINTF(1, 2);

static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* openssl ca index.txt dates: UTCTime YYMMDDHHMMSSZ. */
static void
utc(int64_t t, char out[16])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 16, "%y%m%d%H%M%SZ", &tm);
}

static void
setup(struct bench *b)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	FILE *f;
	int r;

	snprintf(b->home, sizeof(b->home), "%s/rf-bench-crl-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(b->home) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	setenv("RINGFENCE_HOME", b->home, 1);
	/* keys in this process read it first (as bench_issue's do). */
	setenv("RINGFENCE_PIN", PIN, 1);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", b->home);
	if (sh("mkdir -p '%s/tokens' '%s/openssl'", b->home, b->home) != 0 ||
	    (f = fopen(path, "w")) == NULL)
		exit(1);
	fprintf(f,
	    "directories.tokendir = %s/tokens\nobjectstore.backend = "
	    "file\nlog.level = ERROR\nslots.removable = false\n",
	    b->home);
	fclose(f);
	if (sh("SOFTHSM2_CONF='%s' softhsm2-util --init-token --free --label "
	       "ringfence --so-pin 12345678 --pin " PIN " >/dev/null",
		path) != 0)
		exit(1);
	b->who.actor = "bench";
	b->who.source = "bench";
	if ((r = rf_config_load(&b->cfg)) != 0)
		die("config", r);
	if ((r = rf_store_open(b->cfg.db_path, 1, &b->st)) != 0 ||
	    (r = rf_audit_open(b->st, &b->audit)) != 0 ||
	    (r = rf_keys_open(&b->cfg, b->audit, &b->keys)) != 0 ||
	    (r = rf_ca_init(&b->cfg, b->st, b->keys, &b->who)) != 0 ||
	    (r = rf_ca_open(&b->cfg, b->st, b->keys, &b->ca)) != 0)
		die("state", r);
	rf_ca_set_audit(b->ca, b->audit);
	if ((r = rf_ca_tenant_add(b->ca, "bench", &b->who)) != 0)
		die("tenant", r);

	/* The openssl CA: same key type as ours (ec-p256), software key. */
	if (sh("cd '%s/openssl' && touch index.txt && echo 01 > crlnumber && "
	       "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	       "-nodes -keyout ca.key -out ca.pem -subj /CN=bench -days 30 "
	       "2>/dev/null && printf '[ca]\\ndefault_ca = b\\n[b]\\n"
	       "database = index.txt\\ncrlnumber = crlnumber\\n"
	       "certificate = ca.pem\\nprivate_key = ca.key\\n"
	       "default_md = sha256\\ndefault_crl_days = 7\\n' > ca.cnf",
		b->home) != 0) {
		fprintf(stderr, "bench_crl: cannot make the openssl CA\n");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/openssl/index.txt", b->home);
	if ((b->index = fopen(path, "w")) == NULL)
		exit(1);
}

/* Add fake revoked records up to n, and the same lines to index.txt. */
static void
fill(struct bench *b, size_t n)
{
	static const int reasons[] = {-1, 1, 4, 5};
	static const char *names[] = {
	    "", ",keyCompromise", ",superseded", ",cessationOfOperation"};
	struct rf_cert_rec c;
	uint8_t rnd[16 + 32], dummy[2] = {0x05, 0x00};
	int64_t now = rf_now();
	char exp[16], rev[16], upper[41];
	size_t i, k;
	int r, ch, check = 1;

	if ((r = rf_store_begin(b->st)) != 0)
		die("begin", r);
	for (; b->have < n; b->have++) {
		memset(&c, 0, sizeof(c));
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			exit(1);
		rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x10);
		rf_hex(rnd, 16, c.serial);
		rf_hex(rnd + 16, 32, c.key_id);
		snprintf(c.issuer, sizeof(c.issuer), "issuing");
		snprintf(c.tenant, sizeof(c.tenant), "bench");
		snprintf(c.profile, sizeof(c.profile), "client");
		snprintf(c.subject, sizeof(c.subject), "CN=x");
		snprintf(c.x5t, sizeof(c.x5t), "x");
		snprintf(c.x5t256, sizeof(c.x5t256), "x");
		c.issued = c.not_before = now - 86400;
		c.not_after = now + 365 * 86400;
		k = b->have % 4;
		c.revoked = 1;
		c.revoked_at = now - (int64_t)(b->have % 86400);
		c.reason = reasons[k];
		c.der = dummy;
		c.derlen = sizeof(dummy);
		if ((r = rf_store_cert_add(b->st, &c)) != 0)
			die("cert add", r);
		if (check) {
			/* Does add keep the revocation? Else revoke each. */
			struct rf_cert_rec g = {0};

			if ((r = rf_store_cert_get(b->st, c.serial, &g)) != 0)
				die("cert get", r);
			check = g.revoked ? 2 : 0;
			rf_cert_rec_clear(&g);
		}
		if (check == 0 &&
		    (r = rf_store_cert_revoke(
			 b->st, c.serial, c.revoked_at, c.reason, &ch)) != 0)
			die("revoke", r);
		for (i = 0; c.serial[i] != '\0'; i++)
			upper[i] = (char)(c.serial[i] >= 'a' ? c.serial[i] - 32
							     : c.serial[i]);
		upper[i] = '\0';
		utc(c.not_after, exp);
		utc(c.revoked_at, rev);
		fprintf(b->index, "R\t%s\t%s%s\t%s\tunknown\t/CN=x\n", exp, rev,
		    names[k], upper);
		if (b->have % 20000 == 19999) {
			if ((r = rf_store_commit(b->st)) != 0 ||
			    (r = rf_store_begin(b->st)) != 0)
				die("commit", r);
		}
	}
	if ((r = rf_store_commit(b->st)) != 0)
		die("commit", r);
	fflush(b->index);
}

static int
noop_cb(void *arg, const struct rf_cert_rec *c)
{
	(void)c;
	(*(size_t *)arg)++;
	return 0;
}

/* The store's share: one scan of what the CRL reads, with no encoding. */
static double
scan_time(struct bench *b)
{
	struct rf_cert_filter f = {0};
	size_t n = 0;
	double t;
	int r;

	f.issuer = "issuing";
	f.only_revoked = 1;
	f.unexpired_at = rf_now();
	t = mono();
	if ((r = rf_store_cert_foreach(b->st, &f, noop_cb, &n)) != 0)
		die("scan", r);
	return mono() - t;
}

/* Parse our CRL back: N entries, signature valid. */
static void
check_crl(struct bench *b, size_t n)
{
	uint8_t *der = NULL;
	const uint8_t *p;
	size_t len = 0;
	uint64_t num;
	int64_t tu, nu;
	X509_CRL *crl;
	int r;

	if ((r = rf_store_crl_get(
		 b->st, "issuing", &num, &tu, &nu, &der, &len)) != 0)
		die("crl get", r);
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL ||
	    p != der + len ||
	    (size_t)sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) != n ||
	    X509_CRL_verify(
		crl, X509_get0_pubkey(rf_ca_cert(b->ca, "issuing"))) != 1) {
		fprintf(stderr,
		    "bench_crl: the CRL of %zu entries does not "
		    "parse or verify\n",
		    n);
		exit(1);
	}
	X509_CRL_free(crl);
	free(der);
}

int
main(int argc, char **argv)
{
	static const size_t defaults[] = {100000, 1000000};
	struct bench b;
	size_t sizes[16], nsizes = 0, i;
	double t, ours, theirs, scan;
	int r, rep;

	memset(&b, 0, sizeof(b));
	for (i = 1; i < (size_t)argc && nsizes < 16; i++)
		sizes[nsizes++] = strtoul(argv[i], NULL, 10);
	if (nsizes == 0)
		for (i = 0; i < 2; i++)
			sizes[nsizes++] = defaults[i];
	setup(&b);
	printf("%-10s %14s %14s %14s %8s\n", "entries", "ringfence (s)",
	    "(store scan)", "openssl ca (s)", "ratio");
	for (i = 0; i < nsizes; i++) {
		fill(&b, sizes[i]);
		ours = 1e9;
		for (rep = 0; rep < 3; rep++) {
			t = mono();
			if ((r = rf_crl_generate(&b.cfg, b.st, b.keys, b.ca,
				 "issuing", &b.who)) != 0)
				die("rf_crl_generate", r);
			t = mono() - t;
			if (t < ours)
				ours = t;
		}
		check_crl(&b, sizes[i]);
		scan = 1e9;
		for (rep = 0; rep < 3; rep++)
			if ((t = scan_time(&b)) < scan)
				scan = t;
		theirs = 1e9;
		for (rep = 0; rep < (sizes[i] > 200000 ? 1 : 3); rep++) {
			t = mono();
			if (sh("cd '%s/openssl' && openssl ca -config ca.cnf "
			       "-gencrl -out crl.pem 2>/dev/null",
				b.home) != 0) {
				fprintf(
				    stderr, "bench_crl: openssl ca failed\n");
				exit(1);
			}
			t = mono() - t;
			if (t < theirs)
				theirs = t;
		}
		printf("%-10zu %14.3f %14.3f %14.3f %7.1fx\n", sizes[i], ours,
		    scan, theirs, theirs / ours);
		fflush(stdout);
	}
	fclose(b.index);
	rf_ca_free(b.ca);
	rf_keys_free(b.keys);
	rf_audit_free(b.audit);
	rf_store_free(b.st);
	sh("rm -rf '%s'", b.home);
	return 0;
}
