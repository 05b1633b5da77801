/*
 * The HTTP server in-process, on a real token and store, spoken to by
 * independent clients (curl, openssl ocsp, openssl x509/crl): routes,
 * headers, limits, a client that connects and says nothing, and a
 * revocation made through other handles (as another process would) seen
 * by OCSP within a second.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "audit/audit.h"
#include "ca/ca.h"
#include "http/http.h"
#include "revoke/revoke.h"
#include "store/store.h"

struct fx {
	char *home;
	struct rf_config cfg;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
	struct rf_http *h;
	pthread_t tid;
	int run_rc;
	int port;
	char serial[41];
};

static void *
run_thread(void *arg)
{
	struct fx *fx = arg;

	fx->run_rc = rf_http_run(fx->h);
	return NULL;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct rf_issue_req q = {0};
	struct rf_issued is;
	struct rf_http_opts o = {0};
	char path[1200];
	FILE *f;
	int i;

	assert_non_null(fx);
	fx->home = tu_home();
	tu_token(fx->home, &fx->cfg);
	fx->who.actor = "test";
	fx->who.source = "test";
	assert_int_equal(rf_store_open(fx->cfg.db_path, 1, &fx->st), 0);
	assert_int_equal(rf_audit_open(fx->st, &fx->audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, fx->audit, &fx->keys), 0);
	assert_int_equal(rf_ca_init(&fx->cfg, fx->st, fx->keys, &fx->who), 0);
	assert_int_equal(rf_ca_open(&fx->cfg, fx->st, fx->keys, &fx->ca), 0);
	rf_ca_set_audit(fx->ca, fx->audit);
	assert_int_equal(rf_ca_tenant_add(fx->ca, "acme", &fx->who), 0);
	q.tenant = "acme";
	q.profile = RF_PROFILE_CLIENT;
	q.keygen = RF_KEY_EC_P256;
	memset(&is, 0, sizeof(is));
	assert_int_equal(rf_ca_issue(fx->ca, &q, 1, &fx->who, &is), 0);
	snprintf(fx->serial, sizeof(fx->serial), "%s", is.serial);
	snprintf(path, sizeof(path), "%s/cert.der", fx->home);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(is.der, 1, is.derlen, f), is.derlen);
	fclose(f);
	rf_issued_clear(&is);
	assert_int_equal(tu_sh("cd '%s' && openssl x509 -inform DER -in "
			       "cert.der -out cert.pem",
			     fx->home),
	    0);

	/* A non-loopback address needs allow_public. */
	o.listen = "0.0.0.0";
	o.port = 0;
	assert_int_equal(rf_http_new(&fx->cfg, &o, fx->st, fx->audit, fx->keys,
			     fx->ca, &fx->who, &fx->h),
	    RF_ERR_CONFIG);
	assert_null(fx->h);

	o.listen = "127.0.0.1";
	o.threads = 2;
	o.duration = 120; /* bounded even if the test breaks */
	o.timeout = 2;	  /* test_wire waits for it */
	assert_int_equal(rf_http_new(&fx->cfg, &o, fx->st, fx->audit, fx->keys,
			     fx->ca, &fx->who, &fx->h),
	    0);
	fx->port = rf_http_port(fx->h);
	assert_true(fx->port > 0);
	assert_int_equal(pthread_create(&fx->tid, NULL, run_thread, fx), 0);
	for (i = 0; i < 100; i++) {
		if (tu_sh("curl -sf -m 2 -o /dev/null "
			  "http://127.0.0.1:%d/healthz",
			fx->port) == 0)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_true(i < 100);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	rf_http_stop(fx->h);
	assert_int_equal(pthread_join(fx->tid, NULL), 0);
	assert_int_equal(fx->run_rc, 0);
	rf_http_free(fx->h);
	rf_ca_free(fx->ca);
	rf_keys_free(fx->keys);
	rf_audit_free(fx->audit);
	rf_store_free(fx->st);
	tu_home_remove(fx->home);
	free(fx);
	return 0;
}

/* curl's status code and headers for one request into home/out. */
#define CURL "curl -s -m 5 -D '%s/hdr' -o '%s/out' -w '%%{http_code}' "

static void
test_routes(void **state)
{
	struct fx *fx = *state;
	const char *d = fx->home;
	int p = fx->port;

	assert_int_equal(tu_sh("cd '%s' && curl -sf http://127.0.0.1:%d/healthz"
			       " | grep -qx ok",
			     d, p),
	    0);
	/* CA certificates, PEM and DER, parsed by openssl. */
	assert_int_equal(tu_sh("cd '%s' && curl -sf -o root.pem "
			       "http://127.0.0.1:%d/ca/root.pem && "
			       "openssl x509 -in root.pem -noout && "
			       "curl -sf -o issuing.der "
			       "http://127.0.0.1:%d/ca/issuing.der && "
			       "openssl x509 -inform DER -in issuing.der "
			       "-out issuing.pem && openssl verify -CAfile "
			       "root.pem issuing.pem >/dev/null",
			     d, p, p),
	    0);
	/* 404, 405 with Allow. */
	assert_int_equal(
	    tu_sh("test $(" CURL "http://127.0.0.1:%d/nope) = 404", d, d, p),
	    0);
	assert_int_equal(tu_sh("test $(" CURL "-X PUT --data x "
			       "http://127.0.0.1:%d/ocsp) = 405 && "
			       "grep -qi '^Allow: POST' '%s/hdr'",
			     d, d, p, d),
	    0);
	assert_int_equal(tu_sh("test $(" CURL "-X DELETE "
			       "http://127.0.0.1:%d/healthz) = 405",
			     d, d, p),
	    0);
	/* Oversize body: 413 (max_request is 64 KiB by default). */
	assert_int_equal(tu_sh("cd '%s' && head -c 70000 /dev/zero > big && "
			       "test $(" CURL "-H 'Content-Type: "
			       "application/ocsp-request' --data-binary @big "
			       "http://127.0.0.1:%d/ocsp) = 413",
			     d, d, d, p),
	    0);
	/* A client that connects and closes, and one that stalls. */
	assert_int_equal(tu_sh("python3 -c 'import socket; "
			       "s=socket.create_connection((\"127.0.0.1\",%d));"
			       "s.close(); s=socket.create_connection("
			       "(\"127.0.0.1\",%d)); s.send(b\"GET /hea\"); "
			       "s.close()'",
			     p, p),
	    0);
	assert_int_equal(tu_sh("curl -sf -m 2 http://127.0.0.1:%d/healthz "
			       ">/dev/null",
			     p),
	    0);
	/* The CRL: DER, headers, 304 on its ETag, parsed by openssl. */
	assert_int_equal(tu_sh("test $(" CURL "http://127.0.0.1:%d/crl/"
			       "issuing.crl) = 200 && grep -qi '^Content-Type:"
			       " application/pkix-crl' '%s/hdr' && "
			       "openssl crl -inform DER -in '%s/out' -noout "
			       "-CAfile '%s/issuing.pem' 2>&1 | grep -q "
			       "'verify OK'",
			     d, d, p, d, d, d),
	    0);
	assert_int_equal(tu_sh("cd '%s' && e=$(sed -n 's/^[Ee][Tt]ag: //p' "
			       "hdr | tr -d '\\r') && test -n \"$e\" && "
			       "test $(curl -s -o /dev/null -w '%%{http_code}' "
			       "-H \"If-None-Match: $e\" "
			       "http://127.0.0.1:%d/crl/issuing.crl) = 304",
			     d, p),
	    0);
}

/* openssl ocsp against the server; its output into home/ocsp.txt. */
static int
ocsp_status(struct fx *fx, const char *want)
{
	return tu_sh("cd '%s' && openssl ocsp -issuer issuing.pem -cert "
		     "cert.pem -url http://127.0.0.1:%d/ocsp -CAfile root.pem "
		     "-no_nonce >ocsp.txt 2>&1 && grep -q 'cert.pem: %s' "
		     "ocsp.txt && grep -q 'Response verify OK' ocsp.txt",
	    fx->home, fx->port, want);
}

/* Handles of their own on the server's state, as another process has. */
struct other {
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
};

static void
other_open(struct fx *fx, struct other *o)
{
	assert_int_equal(rf_store_open(fx->cfg.db_path, 0, &o->st), 0);
	assert_int_equal(rf_audit_open(o->st, &o->audit), 0);
	assert_int_equal(rf_keys_open(&fx->cfg, o->audit, &o->keys), 0);
	assert_int_equal(rf_ca_open(&fx->cfg, o->st, o->keys, &o->ca), 0);
	rf_ca_set_audit(o->ca, o->audit);
}

static void
other_close(struct other *o)
{
	rf_ca_free(o->ca);
	rf_keys_free(o->keys);
	rf_audit_free(o->audit);
	rf_store_free(o->st);
}

static void
test_ocsp(void **state)
{
	struct fx *fx = *state;
	struct other o;
	struct rf_revoke_req rq = {0};
	const char *d = fx->home;
	size_t n = 0;
	double t0, dt = 99;
	int i;

	assert_int_equal(tu_sh("cd '%s' && curl -sf -o root.pem "
			       "http://127.0.0.1:%d/ca/root.pem && "
			       "curl -sf -o issuing.pem "
			       "http://127.0.0.1:%d/ca/issuing.pem",
			     d, fx->port, fx->port),
	    0);
	/* The certificate was issued before the server started: its
	 * response is signed by the first maintenance pass. */
	for (i = 0; i < 100 && ocsp_status(fx, "good") != 0; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_true(i < 100);
	/* RFC 5019 6.2 headers on POST. */
	assert_int_equal(tu_sh("cd '%s' && openssl ocsp -issuer issuing.pem "
			       "-cert cert.pem -no_nonce -reqout req.der "
			       ">/dev/null 2>&1 && test $(" CURL
			       "-H 'Content-Type: application/ocsp-request' "
			       "--data-binary @req.der http://127.0.0.1:%d/"
			       "ocsp) = 200 && grep -qi '^Content-Type: "
			       "application/ocsp-response' hdr && grep -qiE "
			       "'^Cache-Control: max-age=[0-9]+, public, "
			       "no-transform, must-revalidate' hdr && grep "
			       "-qi '^Last-Modified: ' hdr && grep -qi "
			       "'^Expires: ' hdr && grep -qi '^ETag: \"' hdr",
			     d, d, d, fx->port),
	    0);
	/* GET with the raw base64 ('/', '+', '=' kept, not encoded) and
	 * percent-encoded; both parse as the same good response. */
	assert_int_equal(tu_sh("cd '%s' && b=$(openssl base64 -A -in req.der)"
			       " && test $(" CURL "\"http://127.0.0.1:%d/ocsp/"
			       "$b\") = 200 && openssl ocsp -respin out "
			       "-issuer issuing.pem -cert cert.pem -CAfile "
			       "root.pem 2>&1 | grep -q 'cert.pem: good' && "
			       "e=$(printf %%s \"$b\" | sed 's,/,%%2F,g; "
			       "s,+,%%2B,g; s,=,%%3D,g') && test $(" CURL
			       "\"http://127.0.0.1:%d/ocsp/$e\") = 200 && "
			       "openssl ocsp -respin out -issuer issuing.pem "
			       "-cert cert.pem -CAfile root.pem 2>&1 | "
			       "grep -q 'cert.pem: good'",
			     d, d, d, fx->port, d, d, fx->port),
	    0);
	/* Malformed: garbage POST and GET -> malformedRequest (1). */
	assert_int_equal(tu_sh("cd '%s' && test $(" CURL "-H 'Content-Type: "
			       "application/ocsp-request' --data-binary "
			       "'not der' http://127.0.0.1:%d/ocsp) = 200 && "
			       "openssl ocsp -respin out -resp_text 2>&1 | "
			       "grep -q malformedrequest && test $(" CURL
			       "http://127.0.0.1:%d/ocsp/@@@) = 200 && "
			       "openssl ocsp -respin out -resp_text 2>&1 | "
			       "grep -q malformedrequest",
			     d, d, d, fx->port, d, d, fx->port),
	    0);

	/* Revoke through other handles, as `ringfence revoke` would. */
	other_open(fx, &o);
	rq.serial = fx->serial;
	rq.reason = RF_CRL_REASON_KEY_COMPROMISE;
	i = rf_revoke(&fx->cfg, o.st, o.keys, o.ca, o.audit, &rq, &fx->who, &n);
	if (i != 0)
		print_error("rf_revoke: %s\n", rf_err_msg(i));
	assert_int_equal(i, 0);
	t0 = now_s();
	assert_int_equal(n, 1);
	for (i = 0; i < 40; i++) {
		if (ocsp_status(fx, "revoked") == 0) {
			dt = now_s() - t0;
			break;
		}
		struct timespec ts = {0, 25 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	print_message("revoked visible over OCSP after %.3f s\n", dt);
	assert_true(dt < 1.0);
	assert_int_equal(
	    tu_sh("grep -q 'Reason: keyCompromise' '%s/ocsp.txt'", d), 0);
	/* The served CRL lists the serial (within the coalescing delay). */
	for (i = 0; i < 40; i++) {
		if (tu_sh("cd '%s' && curl -sf -o crl.der http://127.0.0.1:%d/"
			  "crl/issuing.crl && openssl crl -inform DER -in "
			  "crl.der -noout -text | grep -qi "
			  "'Serial Number: 0*%s$'",
			d, fx->port, fx->serial) == 0)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_true(i < 40);
	other_close(&o);
}

static void
test_audit(void **state)
{
	struct fx *fx = *state;
	const char *d = fx->home;

	assert_int_equal(tu_sh("test $(" CURL "'http://127.0.0.1:%d/audit/"
			       "proof?leaf=0') = 200 && grep -q "
			       "'\"audit_path\"' '%s/out'",
			     d, d, fx->port, d),
	    0);
	assert_int_equal(tu_sh("test $(" CURL "'http://127.0.0.1:%d/audit/"
			       "proof?leaf=x') = 400",
			     d, d, fx->port),
	    0);
	assert_int_equal(tu_sh("test $(" CURL "'http://127.0.0.1:%d/audit/"
			       "consistency?old=1&new=2') = 200 && grep -q "
			       "'\"consistency\"' '%s/out'",
			     d, d, fx->port, d),
	    0);
}

#define WIRE "python3 \"$RF_SOURCE_DIR/tests/unit/http_wire.py\" %d "
#define BULK 700

/*
 * The plain listener on the wire (tests/unit/http_wire.py): pipelined
 * requests for a CRL of BULK entries (a body the server holds rather
 * than copies) read late, so its writes block; the idle and unfinished-
 * request timeout; Expect: 100-continue; HTTP/1.0 with and without
 * keep-alive.
 */
static void
test_wire(void **state)
{
	struct fx *fx = *state;
	struct rf_issue_req *q;
	struct rf_issued *is;
	struct rf_revoke_req rq = {0};
	struct other o;
	char path[1200];
	uint8_t *csr = NULL;
	size_t i, len = 0, n = 0;
	int r;

	other_open(fx, &o);
	assert_int_equal(rf_ca_tenant_add(o.ca, "bulk", &fx->who), 0);
	assert_non_null(q = calloc(BULK, sizeof(*q)));
	assert_non_null(is = calloc(BULK, sizeof(*is)));
	for (i = 0; i < BULK; i++) {
		q[i].tenant = "bulk";
		q[i].profile = RF_PROFILE_CLIENT;
		q[i].keygen = RF_KEY_NONE;
	}
	assert_int_equal(tu_sh("cd '%s' && openssl req -new -newkey ec "
			       "-pkeyopt ec_paramgen_curve:P-256 -nodes "
			       "-keyout /dev/null -subj /CN=bulk -outform DER "
			       "-out bulk.csr 2>/dev/null",
			     fx->home),
	    0);
	snprintf(path, sizeof(path), "%s/bulk.csr", fx->home);
	assert_int_equal(rf_read_file(path, 2048, &csr, &len), 0);
	for (i = 0; i < BULK; i++) {
		q[i].csr = csr;
		q[i].csrlen = len;
	}
	r = rf_ca_issue(o.ca, q, BULK, &fx->who, is);
	if (r != 0)
		print_error("rf_ca_issue: %s\n", rf_err_msg(r));
	assert_int_equal(r, 0);
	for (i = 0; i < BULK; i++)
		rf_issued_clear(&is[i]);
	rq.tenant = "bulk";
	rq.reason = RF_CRL_REASON_SUPERSEDED;
	assert_int_equal(
	    rf_revoke(&fx->cfg, o.st, o.keys, o.ca, o.audit, &rq, &fx->who, &n),
	    0);
	assert_int_equal(n, BULK);
	/* The server serves the new CRL once its store has been quiet. */
	for (i = 0; i < 100; i++) {
		if (tu_sh("test $(curl -sf http://127.0.0.1:%d/crl/issuing.crl"
			  " | wc -c) -gt 16384",
			fx->port) == 0)
			break;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_true(i < 100);
	assert_int_equal(
	    tu_sh(WIRE "pipeline /crl/issuing.crl 30", fx->port), 0);
	assert_int_equal(tu_sh(WIRE "idle 2", fx->port), 0);
	assert_int_equal(tu_sh(WIRE "continue", fx->port), 0);
	assert_int_equal(tu_sh(WIRE "http10", fx->port), 0);
	/* And it still serves. */
	assert_int_equal(tu_sh("curl -sf -m 2 http://127.0.0.1:%d/healthz "
			       ">/dev/null",
			     fx->port),
	    0);
	free(q);
	free(is);
	free(csr);
	other_close(&o);
}

/*
 * A connection the server closes while a forked child still holds its
 * descriptor (as every child does between fork and exec): the socket
 * lives on, so close(2) alone would leave it in the worker's epoll set,
 * reporting EOF for a connection already freed.
 */
static void
test_close_while_forked(void **state)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	struct fx *fx = *state;
	struct sockaddr_in sa;
	struct timespec ts = {0, 300 * 1000 * 1000};
	char buf[512];
	pid_t pid;
	int s, st;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)fx->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* Answered: the server has accepted it. */
	assert_int_equal(write(s, req, sizeof(req) - 1), sizeof(req) - 1);
	assert_true(read(s, buf, sizeof(buf)) > 0);
	if ((pid = fork()) == 0) {
		sleep(2);
		_exit(0);
	}
	assert_true(pid > 0);
	/* shutdown, not close: the child holds this end too. */
	assert_int_equal(shutdown(s, SHUT_RDWR), 0);
	close(s); /* the server reads EOF and closes its end */
	nanosleep(&ts, NULL);
	assert_int_equal(tu_sh("curl -sf -m 2 http://127.0.0.1:%d/healthz "
			       ">/dev/null",
			     fx->port),
	    0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_ocsp),
	    cmocka_unit_test(test_audit),
	    cmocka_unit_test(test_wire),
	    cmocka_unit_test(test_close_while_forked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
