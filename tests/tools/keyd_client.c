/*
 * rf-keyd_client: a caller of the custody process for the integration
 * tests, as a compromised serve would be one: it asks keyd directly.
 *
 *   rf-keyd_client sign KEYID WHAT          sign a fixed message
 *   rf-keyd_client server-sign KEYID WHAT   the same, asked as class server
 *   rf-keyd_client digest KEYID WHAT        sign a SHA-256-sized digest
 *   rf-keyd_client ocsp-good KEYID ISSUER.pem SERIAL
 *                      a ResponseData saying `good` for SERIAL of ISSUER
 *   rf-keyd_client crl-empty KEYID ISSUER.pem
 *                      a TBSCertList of ISSUER that lists nothing
 *   rf-keyd_client server-cert KEYID TENANT CERT.pem
 *                      CERT's TBSCertificate as serve renewing a connector
 *                      certificate of TENANT asks it (class server)
 *   rf-keyd_client server-assert SERIAL BODY
 *                      POST /v1/assertions with JSON BODY as serve relays
 *                      it for the connector certificate SERIAL (class
 *                      server; serve's own checks and buckets are this
 *                      process's, fresh each run): prints the answer's
 *                      status and body (and a Retry-After line when it
 *                      has one); exit 0 on 200, 3 otherwise
 *   rf-keyd_client fuzz N SEED              N malformed, truncated and
 *                      oversized frames, each on its own connection
 *
 * Asked as an administrator unless RF_KEYD_CLIENT_SERVER=1 (class server,
 * as serve asks) or keyd gives the caller's uid less. Settings as the CLI
 * reads them (RINGFENCE_HOME). Exit 0: signed (or, for
 * fuzz, keyd still answers); 3: refused by keyd; 1: any other error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/config.h"
#include "connector/connector.h"
#include "keys/keyd.h"
#include "keys/keys.h"
#include "keys/proto.h"

static int
done(int r)
{
	if (r == 0)
		return 0;
	fprintf(stderr, "rf-keyd_client: %s\n", rf_err_msg(r));
	return r == RF_ERR_REFUSED ? 3 : 1;
}

/* A self-signed throwaway certificate for key, to have OpenSSL encode a
 * ResponseData (it signs it too; only the ResponseData is used). */
static X509 *
throwaway_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();

	if (x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
		MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, key) != 1 ||
	    X509_sign(x, key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* DER TBSCertList of issuer listing nothing, dated now (signed by a
 * throwaway key only so that OpenSSL encodes it). */
static int
crl_empty(const char *issuer_pem, uint8_t **der, size_t *len)
{
	FILE *f = fopen(issuer_pem, "r");
	X509 *issuer = NULL;
	X509_CRL *crl = NULL;
	EVP_PKEY *key = NULL;
	ASN1_TIME *t = NULL;
	unsigned char *p = NULL;
	int n, r = 0;

	if (f == NULL)
		return rf_err_set(RF_ERR_IO, "cannot read %s", issuer_pem);
	issuer = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (issuer == NULL || (crl = X509_CRL_new()) == NULL ||
	    (key = EVP_EC_gen("P-256")) == NULL ||
	    X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) != 1 ||
	    (t = X509_gmtime_adj(NULL, 0)) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, t) != 1 ||
	    X509_gmtime_adj(t, 86400) == NULL ||
	    X509_CRL_set1_nextUpdate(crl, t) != 1 ||
	    X509_CRL_sign(crl, key, EVP_sha256()) == 0 ||
	    (n = i2d_re_X509_CRL_tbs(crl, &p)) <= 0)
		r = rf_err_set(RF_ERR_INTERNAL, "cannot build the TBSCertList");
	else {
		*der = p;
		*len = (size_t)n;
	}
	ASN1_TIME_free(t);
	EVP_PKEY_free(key);
	X509_CRL_free(crl);
	X509_free(issuer);
	return r;
}

/* DER ResponseData: `good` for serial (hex) of issuer. */
static int
ocsp_good(const char *issuer_pem, const char *serial, long days, uint8_t **der,
    size_t *len)
{
	FILE *f = fopen(issuer_pem, "r");
	X509 *issuer = NULL, *tmp = NULL;
	EVP_PKEY *key = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *cid = NULL;
	ASN1_INTEGER *ai = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	BIGNUM *bn = NULL;
	unsigned char *p = NULL;
	int n, r = RF_ERR_INTERNAL;

	if (f == NULL)
		return rf_err_set(RF_ERR_IO, "cannot read %s", issuer_pem);
	issuer = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (issuer == NULL || BN_hex2bn(&bn, serial) == 0 ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (cid = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
		 X509_get0_pubkey_bitstr(issuer), ai)) == NULL ||
	    (key = EVP_EC_gen("P-256")) == NULL ||
	    (tmp = throwaway_cert(key)) == NULL ||
	    (bs = OCSP_BASICRESP_new()) == NULL ||
	    (now = X509_gmtime_adj(NULL, 0)) == NULL ||
	    (next = X509_time_adj_ex(NULL, (int)days, 0, NULL)) == NULL ||
	    OCSP_basic_add1_status(
		bs, cid, V_OCSP_CERTSTATUS_GOOD, 0, NULL, now, next) == NULL ||
	    OCSP_basic_sign(bs, tmp, key, EVP_sha256(), NULL, OCSP_NOCERTS) !=
		1 ||
	    (n = i2d_OCSP_RESPDATA(
		 (OCSP_RESPDATA *)OCSP_resp_get0_respdata(bs), &p)) <= 0) {
		r = rf_err_set(
		    RF_ERR_INTERNAL, "cannot build the ResponseData");
		goto out;
	}
	*der = p;
	*len = (size_t)n;
	r = 0;
out:
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	OCSP_BASICRESP_free(bs);
	X509_free(tmp);
	EVP_PKEY_free(key);
	OCSP_CERTID_free(cid);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	X509_free(issuer);
	return r;
}

/* CERT.pem's TBSCertificate, DER. */
static int
tbs_of(const char *pem, uint8_t **der, size_t *len)
{
	FILE *f = fopen(pem, "r");
	X509 *x = NULL;
	unsigned char *p = NULL;
	int n = -1;

	if (f != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x == NULL || (n = i2d_re_X509_tbs(x, &p)) <= 0) {
		X509_free(x);
		return rf_err_set(
		    RF_ERR_IO, "cannot read a certificate from %s", pem);
	}
	X509_free(x);
	*der = p;
	*len = (size_t)n;
	return 0;
}

static int
sign_as(const struct rf_config *cfg, int cls, const char *tenant,
    const char *id, const char *what, const uint8_t *msg, size_t len,
    int digest)
{
	struct rf_custody c = {cls, NULL, NULL};
	struct rf_actor who = {"keyd_client", "keyd_client"};
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	struct rf_keys *keys = NULL;
	struct rf_key *key = NULL;
	int r;

	rf_keys_custody_use(&c);
	memset(&req, 0, sizeof(req));
	req.msg = msg;
	req.msglen = len;
	req.what = what;
	req.ref = "keyd_client";
	req.tenant = tenant;
	if ((r = rf_keys_open(cfg, NULL, &keys)) == 0 &&
	    (r = rf_keys_load(keys, id, &key)) == 0)
		r = digest ? rf_keys_sign_digest(keys, key, &req, 1, &who, &sig)
			   : rf_keys_sign(keys, key, &req, 1, &who, &sig);
	rf_sig_clear(&sig);
	rf_key_free(key);
	rf_keys_free(keys);
	return r;
}

/* serve's assertion path, run here: a serve taken over asks as this. */
static int
server_assert(const struct rf_config *cfg, const char *serial, const char *body)
{
	struct rf_custody c = {RF_KCLASS_SERVER, NULL, NULL};
	struct rf_connector_svc *svc = NULL;
	struct rf_api_answer a;
	struct rf_keys *keys = NULL;
	int r;

	memset(&a, 0, sizeof(a));
	rf_keys_custody_use(&c);
	if ((r = rf_keys_open(cfg, NULL, &keys)) != 0 ||
	    (r = rf_connector_svc_new(cfg, keys, &svc)) != 0)
		goto out;
	rf_connector_svc_assert(
	    svc, serial, "127.0.0.1", (const uint8_t *)body, strlen(body), &a);
	printf("%d %s\n", a.status, a.body != NULL ? a.body : "");
	if (a.retry_after > 0)
		printf("Retry-After: %d\n", a.retry_after);
	if (a.status != 200)
		r = rf_err_set(RF_ERR_REFUSED, "answered %d", a.status);
out:
	rf_api_answer_clear(&a);
	rf_connector_svc_free(svc);
	rf_keys_free(keys);
	return r;
}

/* As an administrator, or as serve with RF_KEYD_CLIENT_SERVER=1 set. */
static int
sign(const struct rf_config *cfg, const char *id, const char *what,
    const uint8_t *msg, size_t len, int digest)
{
	const char *e = getenv("RF_KEYD_CLIENT_SERVER");
	int cls = e != NULL && strcmp(e, "1") == 0 ? RF_KCLASS_SERVER
						   : RF_KCLASS_ADMIN;

	return sign_as(cfg, cls, NULL, id, what, msg, len, digest);
}

/* One frame's worth of bad bytes on a fresh connection. */
static void
fuzz_one(const char *path, unsigned *seed)
{
	struct sockaddr_un sa;
	uint8_t buf[512];
	size_t len, i;
	int s, kind = rand_r(seed) % 5;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >=
		(int)sizeof(sa.sun_path) ||
	    (s = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(s);
		return;
	}
	len = 6 + (size_t)(rand_r(seed) % 200);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)rand_r(seed);
	buf[4] = RF_KPROTO_VERSION;
	buf[5] = (uint8_t)(1 + rand_r(seed) % RF_KMSG_TYPE_MAX);
	switch (kind) {
	case 0: /* consistent length, random fields */
		buf[0] = 0, buf[1] = 0, buf[2] = (uint8_t)((len - 4) >> 8);
		buf[3] = (uint8_t)(len - 4);
		break;
	case 1: /* truncated: says more than it sends */
		buf[0] = 0, buf[1] = 0, buf[2] = 0x10, buf[3] = 0;
		break;
	case 2: /* oversized */
		buf[0] = 0x7f, buf[1] = 0xff, buf[2] = 0xff, buf[3] = 0xff;
		break;
	case 3: /* a hello, then a signing request of random fields */
		memcpy(buf, "\0\0\0\3\1\1\2", 7);
		buf[4] = RF_KPROTO_VERSION;
		buf[7] = 0, buf[8] = 0, buf[9] = (uint8_t)((len - 11) >> 8);
		buf[10] = (uint8_t)(len - 11);
		buf[11] = RF_KPROTO_VERSION;
		buf[12] = RF_KMSG_SIGN;
		break;
	default: /* bad version */
		buf[0] = 0, buf[1] = 0, buf[2] = 0, buf[3] = (uint8_t)(len - 4);
		buf[4] = (uint8_t)rand_r(seed);
		break;
	}
	(void)!send(s, buf, len, MSG_NOSIGNAL);
	shutdown(s, SHUT_WR);
	(void)!recv(s, buf, sizeof(buf), 0);
	close(s);
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	struct rf_keyd_status st;
	static const uint8_t msg[] = "not a TBSCertificate";
	uint8_t dig[32], *der = NULL;
	size_t len = 0;
	unsigned seed;
	long i, n;
	int r;

	if ((r = rf_config_load(&cfg)) != 0)
		return done(r);
	if (argc == 4 && strcmp(argv[1], "sign") == 0)
		return done(
		    sign(&cfg, argv[2], argv[3], msg, sizeof(msg) - 1, 0));
	if (argc == 4 && strcmp(argv[1], "server-sign") == 0)
		return done(sign_as(&cfg, RF_KCLASS_SERVER, NULL, argv[2],
		    argv[3], msg, sizeof(msg) - 1, 0));
	if (argc == 4 && strcmp(argv[1], "digest") == 0) {
		memset(dig, 0x42, sizeof(dig));
		return done(sign(&cfg, argv[2], argv[3], dig, sizeof(dig), 1));
	}
	/* A good answer valid a day, or (ocsp-good-long) until 2050. */
	if (argc == 5 &&
	    (strcmp(argv[1], "ocsp-good") == 0 ||
		strcmp(argv[1], "ocsp-good-long") == 0)) {
		if ((r = ocsp_good(argv[3], argv[4],
			 strcmp(argv[1], "ocsp-good") == 0 ? 1 : 8800, &der,
			 &len)) == 0)
			r = sign(&cfg, argv[2], "ocsp", der, len, 0);
		OPENSSL_free(der);
		return done(r);
	}
	if (argc == 4 && strcmp(argv[1], "crl-empty") == 0) {
		if ((r = crl_empty(argv[3], &der, &len)) == 0)
			r = sign(&cfg, argv[2], "crl", der, len, 0);
		OPENSSL_free(der);
		return done(r);
	}
	if (argc == 5 && strcmp(argv[1], "server-cert") == 0) {
		if ((r = tbs_of(argv[4], &der, &len)) == 0)
			r = sign_as(&cfg, RF_KCLASS_SERVER, argv[3], argv[2],
			    "cert", der, len, 0);
		OPENSSL_free(der);
		return done(r);
	}
	if (argc == 4 && strcmp(argv[1], "server-assert") == 0)
		return done(server_assert(&cfg, argv[2], argv[3]));
	if (argc == 5 && strcmp(argv[1], "note-bind") == 0) {
		struct rf_custody c = {RF_KCLASS_ADMIN, NULL, NULL};
		struct rf_keys *keys = NULL;

		rf_keys_custody_use(&c);
		if ((r = rf_keys_open(&cfg, NULL, &keys)) == 0)
			r = rf_keys_note(
			    keys, RF_KNOTE_BIND, argv[2], argv[3], argv[4]);
		rf_keys_free(keys);
		return done(r);
	}
	if (argc == 4 && strcmp(argv[1], "fuzz") == 0) {
		n = strtol(argv[2], NULL, 10);
		seed = (unsigned)strtoul(argv[3], NULL, 10);
		for (i = 0; i < n; i++)
			fuzz_one(cfg.keyd_socket, &seed);
		return done(rf_keyd_status_get(&cfg, &st));
	}
	fprintf(stderr,
	    "usage: rf-keyd_client sign|server-sign|digest KEYID WHAT | "
	    "ocsp-good[-long] KEYID ISSUER.pem SERIAL | "
	    "crl-empty KEYID ISSUER.pem | "
	    "server-cert KEYID TENANT CERT.pem | server-assert SERIAL BODY | "
	    "note-bind CONNECTOR TENANT CONN | fuzz N SEED\n");
	return 2;
}
