/*
 * cmd_assert.c: `ringfence assert`, the connector's client: asks serve's
 * connector API for a JWT client assertion over mutual TLS with the
 * connector's own certificate and key (files on the connector's host; the
 * key is the connector's identity, not a tenant credential).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "http/http.h"

static const char assert_help[] =
    "usage: ringfence assert --connection TENANT/NAME --cert FILE --key FILE\n"
    "           --ca FILE [--url https://HOST:PORT] [--x5t X5T#S256]\n"
    "           [--session FILE] [--json]\n"
    "       ringfence assert --renew NEW.csr --cert FILE --key FILE --ca FILE\n"
    "           [--url https://HOST:PORT] [--json]\n"
    "Asks serve's connector API (POST /v1/assertions) for a JWT client\n"
    "assertion for the connection, authenticating with the connector's\n"
    "TLS client certificate (--cert, its chain PEM) and key (--key); --ca\n"
    "is ringfence's root certificate (GET /ca/root.pem). Prints the\n"
    "assertion, or with --json the whole answer (assertion, expires, jti,\n"
    "x5t#S256). --url defaults to https://<listen>:<tls_port>.\n"
    "--renew renews the connector's own certificate (POST\n"
    "/v1/connector/renew) for the new key of NEW.csr and prints the new\n"
    "certificate chain (PEM). Every request carries a proof made with --key\n"
    "(docs/connectors.md).\n"
    "--session FILE keeps a proof session in FILE (made mode 0600; it holds\n"
    "the session's key): the first call opens one (POST\n"
    "/v1/connector/session) and later calls prove with it, which costs keyd\n"
    "and the connector a MAC instead of a signature; an ended session is\n"
    "opened again.\n"
    "A refusal prints its code and message (rate_limited and busy: when\n"
    "to retry, from Retry-After) and exits 1.\n";

#define ANSWER_MAX (64 * 1024)

/*
 * The Retry-After header of an answer's head (HEAD .. END, the blank line),
 * in seconds; -1 when there is none.
 */
static long
retry_after(const char *head, const char *end)
{
	static const char name[] = "\r\nretry-after:";
	const char *p;
	char *e;
	long v;

	for (p = head; p + sizeof(name) - 1 <= end; p++) {
		if (strncasecmp(p, name, sizeof(name) - 1) != 0)
			continue;
		p += sizeof(name) - 1;
		p += strspn(p, " \t");
		v = strtol(p, &e, 10);
		return e != p && v >= 0 ? v : -1;
	}
	return -1;
}

/* RF_ERR_IO naming opt and the reason if path cannot be read. */
static int
readable(const char *opt, const char *path)
{
	if (access(path, R_OK) != 0)
		return rf_err_set(
		    RF_ERR_IO, "%s %s: %s", opt, path, strerror(errno));
	return 0;
}

/*
 * serve's certificate must name the host of --url (HOST:PORT or
 * [V6]:PORT): one of its tls_names, or its listen address. Another
 * certificate of ringfence's CA, a tenant's server certificate, is
 * refused. The host is left in host for the error.
 */
static int
expect_name(SSL *ssl, const char *hostport, char *host, size_t hostlen)
{
	unsigned char a[16];
	const char *h = hostport, *e;
	size_t len;
	int ok;

	if (*h == '[') {
		h++;
		e = strchr(h, ']');
	} else {
		e = strrchr(h, ':');
	}
	len = e != NULL ? (size_t)(e - h) : strlen(h);
	if ((*hostport == '[' && e == NULL) || len == 0 || len >= hostlen)
		return rf_err_set(RF_ERR_ARG, "--url: use https://HOST:PORT");
	memcpy(host, h, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else
		ok = SSL_set1_host(ssl, host) == 1 &&
		    SSL_set_tlsext_host_name(ssl, host) == 1;
	if (ok != 1)
		return rf_err_set(RF_ERR_INTERNAL, "TLS client setup failed");
	return 0;
}

/*
 * The peer must be serve itself: besides naming the host (expect_name),
 * its certificate is serve's own, subject "CN=ringfence serve, OU=server"
 * (ca/tls.c), which no tenant's certificate can have (a tenant name has no
 * space). A tenant's server certificate for serve's name, or a wildcard
 * over it, is refused before anything is sent.
 */
static int
peer_is_serve(SSL *ssl, const char *hostport)
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	X509_NAME *n = x != NULL ? X509_get_subject_name(x) : NULL;
	char cn[64] = "", ou[32] = "";

	if (n != NULL) {
		(void)X509_NAME_get_text_by_NID(
		    n, NID_commonName, cn, sizeof(cn));
		(void)X509_NAME_get_text_by_NID(
		    n, NID_organizationalUnitName, ou, sizeof(ou));
	}
	if (strcmp(cn, "ringfence serve") == 0 && strcmp(ou, "server") == 0)
		return 0;
	return rf_err_set(RF_ERR_IO,
	    "TLS to %s failed: the server's certificate is one of ringfence's "
	    "CA but not serve's (CN=%s, OU=%s, not CN=ringfence serve, "
	    "OU=server): check --url",
	    hostport, cn, ou);
}

/*
 * One HTTPS POST; the status, body (malloc'd) and Retry-After (seconds, -1
 * if none) of the answer.
 */
static int
post(const char *url, const char *cert, const char *key, const char *ca,
    const char *path, const char *body, int *status, char **out, long *retry)
{
	SSL_CTX *ctx = NULL;
	BIO *b = NULL;
	SSL *ssl = NULL;
	char hostport[300], host[300], req[1024], *buf = NULL, *p;
	const char *h;
	size_t off = 0;
	int r = RF_ERR_IO, n;

	*status = 0;
	*out = NULL;
	*retry = -1;
	if (strncmp(url, "https://", 8) != 0 ||
	    strlen(url + 8) >= sizeof(hostport))
		return rf_err_set(RF_ERR_ARG, "--url: use https://HOST:PORT");
	h = url + 8;
	snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(h, "/?#"), h);
	if ((r = readable("--ca", ca)) != 0 ||
	    (r = readable("--cert", cert)) != 0 ||
	    (r = readable("--key", key)) != 0 ||
	    (r = rf_http_tls_ctx(0, &ctx)) != 0)
		return r;
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		r = rf_err_set(RF_ERR_IO, "--ca %s: not a PEM certificate", ca);
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		r = rf_err_set(
		    RF_ERR_IO, "--cert %s: not a PEM certificate chain", cert);
		goto out;
	}
	/* A key of the certificate's type that does not match it fails
	 * here already (X509_check_private_key); one of another type, at
	 * the check below. */
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 &&
	    !(ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_X509 &&
		ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH)) {
		r = rf_err_set(
		    RF_ERR_IO, "--key %s: not a PEM private key", key);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		r = rf_err_set(RF_ERR_IO,
		    "--key %s does not match the certificate in --cert %s: "
		    "give the key the certificate was issued for",
		    key, cert);
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((b = BIO_new_ssl_connect(ctx)) == NULL ||
	    BIO_get_ssl(b, &ssl) != 1 ||
	    BIO_set_conn_hostname(b, hostport) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "TLS client setup failed");
		goto out;
	}
	if ((r = expect_name(ssl, hostport, host, sizeof(host))) != 0)
		goto out;
	if (BIO_do_connect(b) != 1 || BIO_do_handshake(b) != 1) {
		unsigned long e = ERR_peek_last_error();
		long v = SSL_get_verify_result(ssl);

		if (v == X509_V_ERR_HOSTNAME_MISMATCH ||
		    v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
			r = rf_err_set(RF_ERR_IO,
			    "TLS to %s failed (hostname mismatch): the "
			    "server's certificate does not name %s; use in "
			    "--url a name of serve's tls_names setting or its "
			    "listen address",
			    hostport, host);
			goto out;
		}

		/* The server's own failure (serve answers so when keyd, which
		 * signs its handshakes, is away): nothing to fix here. */
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_TLSV1_ALERT_INTERNAL_ERROR) {
			r = rf_err_set(RF_ERR_IO,
			    "TLS to %s failed: the server could not complete "
			    "the handshake (an internal error on its side, as "
			    "when its custody process is down): try again "
			    "later, or tell its operator",
			    hostport);
			goto out;
		}
		r = rf_err_set(RF_ERR_IO,
		    "TLS to %s failed (%s): check --url, --ca and that the "
		    "connector certificate is valid",
		    hostport, e != 0 ? ERR_reason_error_string(e) : "closed");
		goto out;
	}
	if ((r = peer_is_serve(ssl, hostport)) != 0)
		goto out;
	n = snprintf(req, sizeof(req),
	    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
	    "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	    path, hostport, strlen(body));
	if (n < 0 || (size_t)n >= sizeof(req) || BIO_write(b, req, n) != n ||
	    BIO_write(b, body, (int)strlen(body)) != (int)strlen(body)) {
		r = rf_err_set(RF_ERR_IO,
		    "%s closed the connection: is the connector certificate "
		    "valid and from ringfence's CA?",
		    hostport);
		goto out;
	}
	if ((buf = malloc(ANSWER_MAX + 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	while (off < ANSWER_MAX &&
	    (n = BIO_read(b, buf + off, (int)(ANSWER_MAX - off))) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	if (strncmp(buf, "HTTP/1.", 7) != 0 || off < 12 ||
	    (p = strstr(buf, "\r\n\r\n")) == NULL) {
		/* TLS 1.3: a client certificate the server refuses ends the
		 * connection after the client's side of the handshake. */
		r = rf_err_set(RF_ERR_IO,
		    "%s closed the connection without an answer: is the "
		    "connector certificate valid and from ringfence's CA?",
		    hostport);
		goto out;
	}
	*status = atoi(buf + 9);
	*retry = retry_after(buf, p + 2);
	if ((*out = strdup(p + 4)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	free(buf);
	BIO_free_all(b);
	SSL_CTX_free(ctx);
	return r;
}

/* A proof of possession for purpose and subject, made with the key in
 * file key (connector.h: keyd checks it against the certificate). */
static int
load_key(const char *key, EVP_PKEY **k)
{
	FILE *f;
	int r;

	*k = NULL;
	if ((r = readable("--key", key)) != 0)
		return r;
	if ((f = fopen(key, "r")) == NULL)
		return rf_err_set(
		    RF_ERR_IO, "--key %s: %s", key, strerror(errno));
	*k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*k == NULL) {
		ERR_clear_error();
		return rf_err_set(
		    RF_ERR_MALFORMED, "--key %s: not a PEM private key", key);
	}
	return 0;
}

static int
make_proof(const char *key, const char *purpose, const char *subject,
    char out[RF_PROOF_MAX + 1])
{
	EVP_PKEY *k;
	int r;

	if ((r = load_key(key, &k)) != 0)
		return r;
	r = rf_proof_make(k, purpose, subject, rf_now(), out, RF_PROOF_MAX + 1);
	EVP_PKEY_free(k);
	return r;
}

/* An answer other than 200, as the caller reads it: its code, message
 * and when to retry. */
static void
say_refused(int status, const char *ans, long retry)
{
	json_t *j = json_loads(ans, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "error"));
	const char *m = json_string_value(json_object_get(j, "message"));

	fprintf(stderr, "ringfence: refused (%d %s): %s", status,
	    e != NULL ? e : "?", m != NULL ? m : ans);
	/* rate_limited and busy: when the server takes it again. */
	if (retry >= 0)
		fprintf(stderr, ": retry after %ld s", retry);
	fputc('\n', stderr);
	json_decref(j);
}

/*
 * --session FILE: a proof session kept in FILE (docs/connectors.md, "Proof
 * sessions"), as JSON: a version mark, its id, key (hex), end and the last
 * count used. The file is locked while a count is taken, so that callers
 * at once take different counts; it holds a secret, so it must be the
 * caller's alone. A file with anything else in it is never overwritten (a
 * mistyped path must not cost the connector its key).
 */
#define SESS_MARK "ringfence-session-1"

struct sess_file {
	const char *path;
	int fd;
	int have; /* s holds a session with a minute or more left */
	int said; /* serve's refusal of a new session, printed */
	struct rf_proof_session s;
};

static void
sess_close(struct sess_file *sf)
{
	if (sf->fd >= 0)
		close(sf->fd); /* and its lock */
	sf->fd = -1;
	OPENSSL_cleanse(&sf->s, sizeof(sf->s));
}

/* j's string member name, or "". */
static const char *
jstr(json_t *j, const char *name)
{
	const char *v = json_string_value(json_object_get(j, name));

	return v != NULL ? v : "";
}

/* j's string member name wiped before j is freed (jansson does not). */
static void
jwipe(json_t *j, const char *name)
{
	const char *v = json_string_value(json_object_get(j, name));

	if (v != NULL)
		OPENSSL_cleanse((char *)v, strlen(v));
}

/* The session in the n bytes of buf (0), or RF_ERR_STATE if they are
 * something else than a session file. */
static int
sess_parse(struct sess_file *sf, const char *buf)
{
	const char *sid, *k;
	json_t *j;
	size_t n = 0;
	int r = RF_ERR_STATE;

	if ((j = json_loads(buf, 0, NULL)) == NULL ||
	    strcmp(jstr(j, "v"), SESS_MARK) != 0)
		goto out;
	sid = jstr(j, "session");
	k = jstr(j, "key");
	if (strlen(sid) != RF_PROOF_SID_LEN ||
	    rf_unhex(k, sf->s.key, sizeof(sf->s.key), &n) != 0 || n != 32)
		goto out;
	memcpy(sf->s.sid, sid, RF_PROOF_SID_LEN + 1);
	sf->s.expires =
	    (int64_t)json_integer_value(json_object_get(j, "expires"));
	sf->s.count = (uint64_t)json_integer_value(json_object_get(j, "count"));
	sf->have = sf->s.expires > rf_now() + 60;
	r = 0;
out:
	jwipe(j, "key");
	json_decref(j);
	return r;
}

/* FILE opened (made 0600) and locked; a session in it read. */
static int
sess_lock(struct sess_file *sf)
{
	char buf[1024];
	struct stat st;
	ssize_t n;
	int r;

	sf->have = 0;
	if ((sf->fd = open(sf->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		 0600)) < 0)
		return rf_err_set(
		    RF_ERR_IO, "--session %s: %s", sf->path, strerror(errno));
	if (fstat(sf->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
		return rf_err_set(RF_ERR_IO,
		    "--session %s: not a regular file of one name", sf->path);
	if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
		return rf_err_set(RF_ERR_IO,
		    "--session %s holds a session key and others can read or "
		    "own it: chmod 600 it, or remove it",
		    sf->path);
	if (flock(sf->fd, LOCK_EX) != 0 ||
	    (n = pread(sf->fd, buf, sizeof(buf) - 1, 0)) < 0)
		return rf_err_set(
		    RF_ERR_IO, "--session %s: %s", sf->path, strerror(errno));
	buf[n] = '\0';
	r = n == 0 ? 0 : sess_parse(sf, buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (r != 0)
		return rf_err_set(RF_ERR_STATE,
		    "--session %s is not a session file ringfence assert "
		    "wrote: give a new path (it is made), or remove it",
		    sf->path);
	return 0;
}

/* The session written back (its count taken so far). */
static int
sess_save(struct sess_file *sf)
{
	char hex[65], *s;
	json_t *j;
	size_t len;
	int r = 0;

	rf_hex(sf->s.key, sizeof(sf->s.key), hex);
	j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "v", SESS_MARK, "session",
	    sf->s.sid, "key", hex, "expires", (json_int_t)sf->s.expires,
	    "count", (json_int_t)sf->s.count);
	s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	jwipe(j, "key");
	json_decref(j);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (s == NULL)
		return RF_ERR_ALLOC;
	len = strlen(s);
	if (ftruncate(sf->fd, 0) != 0 ||
	    pwrite(sf->fd, s, len, 0) != (ssize_t)len)
		r = rf_err_set(
		    RF_ERR_IO, "--session %s: %s", sf->path, strerror(errno));
	OPENSSL_cleanse(s, len);
	free(s);
	return r;
}

/* A new session (POST /v1/connector/session, a proof signed with key)
 * into sf, saved. RF_ERR_REFUSED with sf->said when serve refuses (its
 * answer printed). */
static int
sess_new(struct sess_file *sf, const char *url, const char *cert,
    const char *key, const char *ca)
{
	char pub[RF_PROOF_B64_32 + 1], proof[RF_PROOF_MAX + 1], *ans = NULL;
	char *body = NULL;
	EVP_PKEY *k = NULL, *eph = NULL;
	json_t *q = NULL;
	long retry;
	int status, r;

	if ((r = load_key(key, &k)) != 0 ||
	    (r = rf_proof_session_ask(
		 k, rf_now(), &eph, pub, proof, sizeof(proof))) != 0)
		goto out;
	if ((q = json_pack("{s:s,s:s}", "key", pub, "proof", proof)) == NULL ||
	    (body = json_dumps(q, JSON_COMPACT)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = post(url, cert, key, ca, "/v1/connector/session", body,
		 &status, &ans, &retry)) != 0)
		goto out;
	if (status != 200) {
		say_refused(status, ans, retry);
		sf->said = 1;
		r = RF_ERR_REFUSED;
		goto out;
	}
	if ((r = rf_proof_session_answer(eph, pub, ans, &sf->s)) != 0)
		goto out;
	sf->have = 1;
	r = sess_save(sf);
out:
	json_decref(q);
	free(body);
	free(ans);
	EVP_PKEY_free(k);
	EVP_PKEY_free(eph);
	return r;
}

/*
 * The assertion's proof from the session in FILE, its id in sid: a new
 * session first when FILE has none, or still has the one named failed
 * (keyd no longer knows it; another caller may have opened a new one
 * meanwhile, which is used instead).
 */
static int
sess_proof(struct sess_file *sf, const char *failed, const char *url,
    const char *cert, const char *key, const char *ca, const char *conn,
    char proof[RF_PROOF_MAX + 1], char sid[RF_PROOF_SID_LEN + 1])
{
	int r;

	if ((r = sess_lock(sf)) == 0 &&
	    (!sf->have || (failed != NULL && strcmp(sf->s.sid, failed) == 0)))
		r = sess_new(sf, url, cert, key, ca);
	if (r == 0 &&
	    (r = rf_proof_make_session(&sf->s, "assert", conn, rf_now(), proof,
		 RF_PROOF_MAX + 1)) == 0)
		r = sess_save(sf);
	memcpy(sid, sf->s.sid, RF_PROOF_SID_LEN + 1);
	sess_close(sf);
	return r;
}

/* The renewal request for the CSR in file csr: {"csr": PEM, "proof": a
 * proof over the new key's SPKI, made with key}. */
static int
renew_body(const char *csr, const char *key, json_t **out)
{
	char id[65], proof[RF_PROOF_MAX + 1];
	X509_REQ *req = NULL;
	uint8_t *pem = NULL;
	BIO *b = NULL;
	size_t len;
	int r;

	*out = NULL;
	if ((r = rf_read_file(csr, 64 * 1024, &pem, &len)) != 0)
		return rf_err_set(r, "--renew %s: %s", csr, rf_err_msg(r));
	if ((b = BIO_new_mem_buf(pem, (int)len)) != NULL)
		req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	if (req == NULL || X509_REQ_get0_pubkey(req) == NULL ||
	    rf_keys_pub_id(X509_REQ_get0_pubkey(req), id) != 0) {
		ERR_clear_error();
		r = rf_err_set(RF_ERR_CSR_MALFORMED,
		    "--renew %s: not a PEM certificate request", csr);
		goto out;
	}
	if ((r = make_proof(key, "renew", id, proof)) != 0)
		goto out;
	if ((*out = json_pack("{s:s%,s:s}", "csr", (const char *)pem, len,
		 "proof", proof)) == NULL)
		r = RF_ERR_ALLOC;
out:
	BIO_free(b);
	X509_REQ_free(req);
	free(pem);
	return r;
}

int
cmd_assert(struct rf_cli *cli, int argc, char **argv)
{
	static const struct option lo[] = {
	    {"connection", required_argument, NULL, 'n'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"ca", required_argument, NULL, 'a'},
	    {"url", required_argument, NULL, 'u'},
	    {"x5t", required_argument, NULL, 'x'},
	    {"renew", required_argument, NULL, 'r'},
	    {"session", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	const char *conn = NULL, *cert = NULL, *key = NULL, *ca = NULL,
		   *url = NULL, *x5t = NULL, *renew = NULL, *s;
	char defurl[128], *ans = NULL, *body = NULL, proof[RF_PROOF_MAX + 1];
	json_t *req = NULL, *j = NULL;
	struct sess_file sf = {NULL, -1, 0, 0, {{0}, {0}, 0, 0}};
	char sid[RF_PROOF_SID_LEN + 1] = "", failed[RF_PROOF_SID_LEN + 1];
	long retry;
	int c, status, again = 0, r = EXIT_FAIL;

	if (cli_wants_help(argc, argv)) {
		fputs(assert_help, stdout);
		return EXIT_OK;
	}
	/* A server that refuses our certificate closes mid-request: that
	 * is an answer to report, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			conn = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'x':
			x5t = optarg;
			break;
		case 'r':
			renew = optarg;
			break;
		case 's':
			sf.path = optarg;
			break;
		case 'j':
			cli->json = 1;
			break;
		default:
			return cli_usage(
			    "assert", "unknown option %.60s", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_usage(
		    "assert", "unexpected argument '%.60s'", argv[optind]);
	if ((conn == NULL) == (renew == NULL) || (renew != NULL && x5t))
		return cli_usage("assert",
		    "give --connection (an assertion) or --renew (a new "
		    "certificate)");
	if (renew != NULL && sf.path != NULL)
		return cli_usage("assert",
		    "--session is for assertions: a renewal's proof is signed "
		    "with --key");
	if (cert == NULL || key == NULL || ca == NULL)
		return cli_usage("assert", "give --cert, --key and --ca");
	if (url == NULL) {
		if (cli->cfg.tls_port == 0)
			return cli_usage("assert",
			    "give --url https://HOST:PORT (tls_port is not "
			    "set)");
		snprintf(defurl, sizeof(defurl), "https://%s:%d",
		    cli->cfg.listen, cli->cfg.tls_port);
		url = defurl;
	}
	/* The API is on serve's TLS port only (mutual TLS). */
	if (strncmp(url, "https://", 8) != 0)
		return cli_usage("assert",
		    "--url %.60s: use https://HOST:PORT, serve's TLS port",
		    url);
	/* Made with the connector's key, so that the custody process knows
	 * the connector asked, not only serve (docs/connectors.md). */
ask:
	if (renew != NULL)
		c = renew_body(renew, key, &req);
	else if ((c = sf.path != NULL
			 ? sess_proof(&sf, again ? failed : NULL, url, cert,
			       key, ca, conn, proof, sid)
			 : make_proof(key, "assert", conn, proof)) == 0 &&
	    (req = x5t != NULL ? json_pack("{s:s,s:s,s:s}", "connection", conn,
				     "x5t#S256", x5t, "proof", proof)
			       : json_pack("{s:s,s:s}", "connection", conn,
				     "proof", proof)) == NULL)
		c = RF_ERR_ALLOC;
	if (c == RF_ERR_REFUSED && sf.said)
		goto out; /* serve's refusal of a new session, said */
	if (c != 0) {
		r = cli_fail(c);
		goto out;
	}
	if ((body = json_dumps(req, JSON_COMPACT)) == NULL) {
		r = cli_fail(RF_ERR_ALLOC);
		goto out;
	}
	if ((c = post(url, cert, key, ca,
		 renew != NULL ? "/v1/connector/renew" : "/v1/assertions", body,
		 &status, &ans, &retry)) != 0) {
		r = cli_fail(c);
		goto out;
	}
	j = json_loads(ans, 0, NULL);
	/* keyd no longer knows the session (it restarted, or the session
	 * ended): once more, with a new one. */
	if (status == 401 && sf.path != NULL && !again &&
	    strcmp(jstr(j, "error"), "bad_proof") == 0 &&
	    strstr(jstr(j, "message"), RF_PROOF_SESSION_UNKNOWN ":") != NULL) {
		again = 1;
		memcpy(failed, sid, sizeof(failed));
		json_decref(req);
		json_decref(j);
		free(body);
		free(ans);
		req = j = NULL;
		body = ans = NULL;
		goto ask;
	}
	if (status != 200) {
		say_refused(status, ans, retry);
		goto out;
	}
	if (cli->json)
		printf("%s\n", ans);
	else if (j != NULL &&
	    (s = json_string_value(json_object_get(
		 j, renew != NULL ? "pem" : "assertion"))) != NULL)
		printf(renew != NULL ? "%s" : "%s\n", s);
	else {
		fprintf(stderr, "ringfence: answer without %s\n",
		    renew != NULL ? "a certificate" : "an assertion");
		goto out;
	}
	r = EXIT_OK;
out:
	json_decref(req);
	json_decref(j);
	free(body);
	free(ans);
	return r;
}
