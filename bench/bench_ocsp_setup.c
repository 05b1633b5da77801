/*
 * bench_ocsp_setup DIR N: the certificate set for bench/ocsp.sh.
 *
 * Initialises a state in $RINGFENCE_HOME (token, store, CA), issues N
 * certificates from CSRs (throwaway software keys: they stand for the
 * connectors' keys) through rf_ca_issue, revokes every tenth with
 * keyCompromise, makes sure every certificate has a pre-signed OCSP
 * response, and writes for the peers, into DIR:
 *   issuing.pem, root.pem  the issuer and root
 *   index.txt             an `openssl ca` index of the same set
 *   index.txt.attr        unique_subject = no (for that index)
 *   responses.b64         every pre-signed response, base64 (cfssl)
 *   one.der               one pre-signed response (nginx)
 *   requests.hex          1,000 OCSP requests for random serials (wrk)
 *   probe.der             one request (readiness probe)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "common/config.h"
#include "keys/keys.h"
#include "ocsp/ocsp.h"
#include "revoke/revoke.h"
#include "store/store.h"

#define BATCH 1000
#define PER_TENANT 100
#define NREQ 1000

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench_ocsp_setup: %s: %s\n", what, rf_err_msg(r));
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *
make_csr(EVP_PKEY_CTX *kctx, size_t *len)
{
	EVP_PKEY *k = NULL;
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	uint8_t *der = NULL;
	int n;

	if (req == NULL || name == NULL || EVP_PKEY_keygen(kctx, &k) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		(const unsigned char *)"bench", -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    (n = i2d_X509_REQ(req, &der)) <= 0) {
		fprintf(stderr, "bench_ocsp_setup: cannot make a CSR\n");
		exit(1);
	}
	*len = (size_t)n;
	EVP_PKEY_free(k);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return der;
}

static void
write_pem(const char *dir, const char *name, X509 *x)
{
	char path[2048];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL || PEM_write_X509(f, x) != 1) {
		fprintf(stderr, "bench_ocsp_setup: cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
}

struct dump {
	FILE *b64, *index;
	char dir[1024];
	int one;
	size_t n;
};

static int
dump_response(void *arg, const struct rf_ocsp_rec *o)
{
	struct dump *d = arg;
	char path[2048];
	unsigned char *b64;
	int n;
	FILE *f;

	if ((b64 = malloc(4 * ((o->len + 2) / 3) + 1)) == NULL)
		return RF_ERR_ALLOC;
	n = EVP_EncodeBlock(b64, o->der, (int)o->len);
	fprintf(d->b64, "%.*s\n", n, b64);
	free(b64);
	if (!d->one) {
		snprintf(path, sizeof(path), "%s/one.der", d->dir);
		if ((f = fopen(path, "wb")) == NULL)
			return RF_ERR_IO;
		fwrite(o->der, 1, o->len, f);
		fclose(f);
		d->one = 1;
	}
	d->n++;
	return 0;
}

static void
gmt(int64_t t, char out[16])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 16, "%y%m%d%H%M%SZ", &tm);
}

static int
dump_index(void *arg, const struct rf_cert_rec *c)
{
	struct dump *d = arg;
	char exp[16], rev[16], up[41];
	size_t i;

	for (i = 0; c->serial[i] != '\0'; i++)
		up[i] = (char)(c->serial[i] >= 'a' ? c->serial[i] - 32
						   : c->serial[i]);
	up[i] = '\0';
	gmt(c->not_after, exp);
	if (c->revoked) {
		gmt(c->revoked_at, rev);
		fprintf(d->index,
		    "R\t%s\t%s,keyCompromise\t%s%s\tunknown\t/CN=%s\n", exp,
		    rev, strlen(up) % 2 ? "0" : "", up, c->tenant);
	} else {
		fprintf(d->index, "V\t%s\t\t%s%s\tunknown\t/CN=%s\n", exp,
		    strlen(up) % 2 ? "0" : "", up, c->tenant);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_store *st = NULL;
	struct rf_audit *audit = NULL;
	struct rf_keys *keys = NULL;
	struct rf_ca *ca = NULL;
	struct rf_ocsp_signer *signer = NULL;
	struct rf_actor who = {"bench", "bench"};
	struct rf_issue_req *reqs;
	struct rf_issued *out;
	struct rf_ocsp_status *sts;
	uint8_t **csrs;
	char(*serials)[41];
	char path[2048], tname[32];
	EVP_PKEY_CTX *kctx;
	struct dump d;
	size_t n, i, j, nrev = 0, signed_n = 0;
	double t0;
	FILE *f;
	int r;

	if (argc != 3 || (n = strtoul(argv[2], NULL, 10)) < BATCH) {
		fprintf(
		    stderr, "usage: bench_ocsp_setup DIR N (N >= %d)\n", BATCH);
		return 2;
	}
	if ((r = rf_config_load(&cfg)) != 0)
		die("config", r);
	mkdir(cfg.home, 0700);
	/* The PIN file where keys read it (pin_file: <home>-custody/). */
	snprintf(path, sizeof(path), "%s", cfg.pin_file);
	if (strrchr(path, '/') != NULL) {
		*strrchr(path, '/') = '\0';
		mkdir(path, 0700);
	}
	/* 0600: keyd reads a PIN file of its user's alone. */
	if ((f = fopen(cfg.pin_file, "w")) == NULL ||
	    chmod(cfg.pin_file, 0600) != 0)
		die("pin file", RF_ERR_IO);
	fprintf(f, "bench-pin\n");
	fclose(f);
	if ((r = rf_keys_init_token(
		 &cfg, "bench-so-pin", "bench-pin", cfg.tokens)) != 0)
		die("token", r);
	if ((r = rf_store_open(cfg.db_path, 1, &st)) != 0 ||
	    (r = rf_audit_open(st, &audit)) != 0 ||
	    (r = rf_keys_open(&cfg, audit, &keys)) != 0 ||
	    (r = rf_ca_init(&cfg, st, keys, &who)) != 0 ||
	    (r = rf_ca_open(&cfg, st, keys, &ca)) != 0)
		die("init", r);
	if ((r = rf_ocsp_signer_new(&cfg, st, keys, rf_ca_key(ca, "ocsp"),
		 rf_ca_cert(ca, "ocsp"), rf_ca_cert(ca, "issuing"), "issuing",
		 &signer)) != 0)
		die("ocsp signer", r);

	for (i = 0; i < (n + PER_TENANT - 1) / PER_TENANT; i++) {
		snprintf(tname, sizeof(tname), "t%06zu", i);
		if ((r = rf_ca_tenant_add(ca, tname, &who)) != 0)
			die("tenant", r);
	}

	reqs = calloc(BATCH, sizeof(*reqs));
	out = calloc(BATCH, sizeof(*out));
	csrs = calloc(BATCH, sizeof(*csrs));
	sts = calloc(BATCH, sizeof(*sts));
	serials = calloc(n, sizeof(*serials));
	kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	if (reqs == NULL || out == NULL || csrs == NULL || sts == NULL ||
	    serials == NULL || kctx == NULL ||
	    EVP_PKEY_keygen_init(kctx) != 1 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(
		kctx, NID_X9_62_prime256v1) != 1)
		die("alloc", RF_ERR_ALLOC);

	t0 = now_s();
	for (i = 0; i < n; i += BATCH) {
		size_t b = n - i < BATCH ? n - i : BATCH;
		char tn[BATCH][32];

		for (j = 0; j < b; j++) {
			snprintf(tn[j], sizeof(tn[j]), "t%06zu",
			    (i + j) / PER_TENANT);
			csrs[j] = make_csr(kctx, &reqs[j].csrlen);
			reqs[j].tenant = tn[j];
			reqs[j].profile = RF_PROFILE_CLIENT;
			reqs[j].csr = csrs[j];
		}
		if ((r = rf_ca_issue(ca, reqs, b, &who, out)) != 0)
			die("issue", r);
		for (j = 0; j < b; j++) {
			memcpy(serials[i + j], out[j].serial, 41);
			rf_issued_clear(&out[j]);
			OPENSSL_free(csrs[j]);
		}
	}
	fprintf(stderr, "issued %zu certificates in %.1f s\n", n, now_s() - t0);

	/* Every tenth, keyCompromise: one transaction, then re-sign. */
	t0 = now_s();
	if ((r = rf_store_begin(st)) != 0)
		die("begin", r);
	for (i = 0; i < n; i += 10) {
		int changed;

		if ((r = rf_store_cert_revoke(
			 st, serials[i], rf_now(), 1, &changed)) != 0)
			die("revoke", r);
		nrev++;
	}
	if ((r = rf_crl_mark_revoked(st, "issuing")) != 0 ||
	    (r = rf_store_commit(st)) != 0)
		die("commit", r);
	for (i = 0, j = 0; i < n; i += 10) {
		sts[j].serial = serials[i];
		sts[j].revoked = 1;
		sts[j].revoked_at = rf_now();
		sts[j].reason = 1;
		if (++j == BATCH || i + 10 >= n) {
			if ((r = rf_ocsp_presign(signer, sts, j, &who)) != 0)
				die("presign", r);
			j = 0;
		}
	}
	/* Sign whatever issuance did not pre-sign. */
	if ((r = rf_ocsp_refresh_due(signer, rf_now(), &who, &signed_n)) != 0)
		die("refresh", r);
	if ((r = rf_crl_generate(&cfg, st, keys, ca, "issuing", &who)) != 0)
		die("crl", r);
	fprintf(stderr,
	    "revoked %zu, signed %zu missing responses, CRL in "
	    "%.1f s\n",
	    nrev, signed_n, now_s() - t0);

	/* Files for the peers. */
	memset(&d, 0, sizeof(d));
	snprintf(d.dir, sizeof(d.dir), "%s", argv[1]);
	write_pem(argv[1], "issuing.pem", rf_ca_cert(ca, "issuing"));
	write_pem(argv[1], "root.pem", rf_ca_cert(ca, "root"));
	snprintf(path, sizeof(path), "%s/responses.b64", argv[1]);
	if ((d.b64 = fopen(path, "w")) == NULL)
		die(path, RF_ERR_IO);
	if ((r = rf_store_ocsp_foreach(st, 0, dump_response, &d)) != 0)
		die("responses", r);
	fclose(d.b64);
	snprintf(path, sizeof(path), "%s/index.txt", argv[1]);
	if ((d.index = fopen(path, "w")) == NULL)
		die(path, RF_ERR_IO);
	{
		struct rf_cert_filter flt;

		memset(&flt, 0, sizeof(flt));
		flt.issuer = "issuing";
		if ((r = rf_store_cert_foreach(st, &flt, dump_index, &d)) != 0)
			die("index", r);
	}
	fclose(d.index);
	/*
	 * Each tenant holds several certificates with one subject: without
	 * this, openssl refuses the index ("Error creating name index") and
	 * its responder never starts.
	 */
	snprintf(path, sizeof(path), "%s/index.txt.attr", argv[1]);
	if ((d.index = fopen(path, "w")) == NULL)
		die(path, RF_ERR_IO);
	fputs("unique_subject = no\n", d.index);
	fclose(d.index);

	/* Requests for random serials of the set (SHA-1 CertIDs). */
	snprintf(path, sizeof(path), "%s/requests.hex", argv[1]);
	if ((f = fopen(path, "w")) == NULL)
		die(path, RF_ERR_IO);
	for (i = 0; i < NREQ; i++) {
		OCSP_REQUEST *oreq = OCSP_REQUEST_new();
		OCSP_CERTID *id;
		ASN1_INTEGER *ai;
		BIGNUM *bn = NULL;
		uint32_t pick;
		uint8_t *der = NULL;
		int len, k;

		RAND_bytes((uint8_t *)&pick, sizeof(pick));
		if (BN_hex2bn(&bn, serials[pick % n]) == 0 ||
		    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
		    (id = OCSP_cert_id_new(EVP_sha1(),
			 X509_get_subject_name(rf_ca_cert(ca, "issuing")),
			 X509_get0_pubkey_bitstr(rf_ca_cert(ca, "issuing")),
			 ai)) == NULL ||
		    OCSP_request_add0_id(oreq, id) == NULL ||
		    (len = i2d_OCSP_REQUEST(oreq, &der)) <= 0)
			die("request", RF_ERR_INTERNAL);
		for (k = 0; k < len; k++)
			fprintf(f, "%02x", der[k]);
		fprintf(f, "\n");
		if (i == 0) {
			FILE *p;

			snprintf(path, sizeof(path), "%s/probe.der", argv[1]);
			if ((p = fopen(path, "wb")) == NULL)
				die(path, RF_ERR_IO);
			fwrite(der, 1, (size_t)len, p);
			fclose(p);
		}
		OPENSSL_free(der);
		ASN1_INTEGER_free(ai);
		BN_free(bn);
		OCSP_REQUEST_free(oreq);
	}
	fclose(f);
	fprintf(stderr, "wrote %zu responses and %d requests to %s\n", d.n,
	    NREQ, argv[1]);

	EVP_PKEY_CTX_free(kctx);
	free(reqs);
	free(out);
	free(csrs);
	free(sts);
	free(serials);
	rf_ocsp_signer_free(signer);
	rf_ca_free(ca);
	rf_keys_free(keys);
	rf_audit_free(audit);
	rf_store_free(st);
	return 0;
}
