/*
 * The plain listener's request reader (src/http/h1.c) on its own: requests
 * cut at every byte, pipelined, chunked, with Expect: 100-continue; each
 * limit and each refused form with the status it gets; response heads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "http/h1.h"

/* Feed s whole; the state after, with *used the bytes taken. */
static enum rf_h1_state
feed_all(struct rf_h1 *x, const char *s, size_t *used)
{
	return rf_h1_feed(x, (const uint8_t *)s, strlen(s), used);
}

static void
test_fragments(void **state)
{
	static const char req[] =
	    "POST /ocsp HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"ab\"\r\n"
	    "Content-Length: 5\r\n\r\nhello";
	struct rf_h1 x;
	struct rf_http_req q;
	size_t i, used;
	enum rf_h1_state st = RF_H1_MORE;

	(void)state;
	rf_h1_init(&x, 1024);
	/* One byte at a time: the same request as in one piece. */
	for (i = 0; i < sizeof(req) - 1; i++) {
		st = rf_h1_feed(&x, (const uint8_t *)req + i, 1, &used);
		assert_int_equal(used, 1);
		if (i < sizeof(req) - 2)
			assert_int_equal(st, RF_H1_MORE);
	}
	assert_int_equal(st, RF_H1_READY);
	rf_h1_request(&x, &q);
	assert_int_equal(q.method, RF_HTTP_POST);
	assert_string_equal(q.target, "/ocsp");
	assert_int_equal(q.bodylen, 5);
	assert_memory_equal(q.body, "hello", 5);
	assert_string_equal(q.if_none_match, "\"ab\"");
	assert_true(rf_h1_keep_alive(&x));
	rf_h1_next(&x);
	rf_h1_free(&x);
}

static void
test_pipelined(void **state)
{
	static const char two[] =
	    "GET /a//b+c= HTTP/1.1\r\n\r\n"
	    "HEAD /healthz HTTP/1.1\r\n"
	    "If-None-Match: \"x\"\r\n"
	    "if-none-match: W/\"y\"\r\n\r\n"
	    "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n";
	struct rf_h1 x;
	struct rf_http_req q;
	size_t used, off = 0;

	(void)state;
	rf_h1_init(&x, 1024);
	assert_int_equal(feed_all(&x, two, &used), RF_H1_READY);
	rf_h1_request(&x, &q);
	assert_int_equal(q.method, RF_HTTP_GET);
	/* The raw target: nothing merged or decoded. */
	assert_string_equal(q.target, "/a//b+c=");
	assert_null(q.if_none_match);
	assert_int_equal(q.bodylen, 0);
	assert_true(rf_h1_keep_alive(&x));
	off += used;
	/* Until rf_h1_next, the reader takes nothing more. */
	assert_int_equal(feed_all(&x, two + off, &used), RF_H1_READY);
	assert_int_equal(used, 0);
	rf_h1_next(&x);
	assert_int_equal(feed_all(&x, two + off, &used), RF_H1_READY);
	off += used;
	rf_h1_request(&x, &q);
	assert_int_equal(q.method, RF_HTTP_HEAD);
	/* Two If-None-Match headers are one list. */
	assert_string_equal(q.if_none_match, "\"x\",W/\"y\"");
	rf_h1_next(&x);
	assert_int_equal(feed_all(&x, two + off, &used), RF_H1_READY);
	off += used;
	assert_int_equal(off, strlen(two));
	rf_h1_request(&x, &q);
	assert_string_equal(q.target, "/c");
	assert_false(rf_h1_keep_alive(&x));
	rf_h1_free(&x);
}

static void
test_chunked_and_continue(void **state)
{
	static const char req[] =
	    "POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\n\r\n";
	static const char body[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	struct rf_h1 x;
	struct rf_http_req q;
	size_t used;

	(void)state;
	rf_h1_init(&x, 1024);
	assert_int_equal(feed_all(&x, req, &used), RF_H1_MORE);
	assert_true(x.want_continue);
	assert_int_equal(feed_all(&x, body, &used), RF_H1_READY);
	rf_h1_request(&x, &q);
	assert_int_equal(q.bodylen, 5);
	assert_memory_equal(q.body, "abcde", 5);
	rf_h1_next(&x);
	assert_false(x.want_continue);
	/* HTTP/1.0 clients do not wait for 100 (RFC 9110 10.1.1). */
	assert_int_equal(feed_all(&x,
			     "POST /ocsp HTTP/1.0\r\nExpect: 100-continue\r\n"
			     "Content-Length: 1\r\n\r\n",
			     &used),
	    RF_H1_MORE);
	assert_false(x.want_continue);
	rf_h1_free(&x);
}

/* s, fed whole to a fresh reader, fails with code. */
static void
fails_with(const char *s, size_t max_body, int code)
{
	struct rf_h1 x;
	size_t used;

	rf_h1_init(&x, max_body);
	assert_int_equal(feed_all(&x, s, &used), RF_H1_FAIL);
	assert_int_equal(x.fail_code, code);
	assert_non_null(x.fail_text);
	/* A failed stream stays failed. */
	assert_int_equal(
	    feed_all(&x, "GET / HTTP/1.1\r\n\r\n", &used), RF_H1_FAIL);
	rf_h1_free(&x);
}

/* s, fed whole to a fresh reader, fails saying text. */
static void
says(const char *s, size_t max_body, const char *text)
{
	struct rf_h1 x;
	size_t used;

	rf_h1_init(&x, max_body);
	assert_int_equal(feed_all(&x, s, &used), RF_H1_FAIL);
	assert_string_equal(x.fail_text, text);
	rf_h1_free(&x);
}

static void
test_refused(void **state)
{
	char *big;
	size_t n = RF_HTTP_MAX_HEADERS + 100;

	(void)state;
	/* Said from Content-Length, before any of the body, with the limit. */
	fails_with(
	    "POST /ocsp HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 65536, 413);
	says("POST /ocsp HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 65536,
	    "request body too large: at most 65536 bytes");
	/* A chunked body that grows past the limit. */
	fails_with("POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "20\r\n0123456789abcdef0123456789abcdef\r\n",
	    16, 413);
	says("POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "20\r\n0123456789abcdef0123456789abcdef\r\n",
	    16, "request body too large: at most 16 bytes");
	/* Smuggling forms. */
	fails_with("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
	    1024, 400);
	fails_with("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
		   "Content-Length: 4\r\n\r\n",
	    1024, 400);
	fails_with(
	    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 1024, 400);
	fails_with("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 1024, 400);
	fails_with("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    1024, 400);
	/* RFC 9112 5.1: no whitespace between a field name and its colon. */
	fails_with("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 1024, 400);
	fails_with("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 1024, 400);
	/* Chunk data followed by anything but exactly CRLF. */
	fails_with("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "3\r\nabcXY0\r\n\r\n",
	    1024, 400);
	fails_with("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "3\r\nabc\rX0\r\n\r\n",
	    1024, 400);
	fails_with("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "3\r\nabc\n\n0\r\n\r\n",
	    1024, 400);
	fails_with("BREW / HTTP/1.1\r\n\r\n", 1024, 501);
	fails_with("GET / HTTP/1.1\r\nExpect: tea\r\n\r\n", 1024, 417);
	fails_with("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1024, 400);
	/* Request line and headers past RF_HTTP_MAX_HEADERS. */
	assert_non_null(big = malloc(n + 64));
	snprintf(big, n + 64, "GET / HTTP/1.1\r\nX-A: %0*d\r\n\r\n",
	    (int)(n - 40), 0);
	fails_with(big, 1024, 431);
	snprintf(big, n + 64, "GET /%0*d HTTP/1.1\r\n\r\n", (int)(n - 40), 0);
	fails_with(big, 1024, 431);
	free(big);
}

/*
 * What every connection's request bodies hold in memory together is
 * bounded: parts of bodies, each under max_request, from many connections
 * that never finish (5,000 of 30 KB took serve to 300 MB, and it kept
 * 200 MB after they closed) get 503 once the bound is reached; a body's
 * buffer larger than 16 KiB goes with its request rather than waiting with
 * the connection for the next one.
 */
static void
test_bodies_bounded(void **state)
{
	static const char head[] =
	    "POST /ocsp HTTP/1.1\r\nContent-Length: 65536\r\n\r\n";
	enum { N = 64 };
	struct rf_h1 *x;
	char *part;
	size_t i, used, refused = 0;
	enum rf_h1_state st;

	(void)state;
	assert_non_null(x = calloc(N, sizeof(*x)));
	assert_non_null(part = malloc(40000));
	memset(part, 'a', 40000);
	rf_h1_bodies_max(16 * 65536); /* room for 16 such bodies */
	for (i = 0; i < N; i++) {
		rf_h1_init(&x[i], 65536);
		assert_int_equal(feed_all(&x[i], head, &used), RF_H1_MORE);
		st = rf_h1_feed(&x[i], (const uint8_t *)part, 40000, &used);
		if (st == RF_H1_FAIL) {
			assert_int_equal(x[i].fail_code, 503);
			refused++;
		} else
			assert_int_equal(st, RF_H1_MORE);
	}
	assert_int_equal(refused, N - 16);
	/* Freed, their room is there again. */
	for (i = 0; i < N; i++)
		rf_h1_free(&x[i]);
	rf_h1_init(&x[0], 65536);
	assert_int_equal(feed_all(&x[0], head, &used), RF_H1_MORE);
	assert_int_equal(
	    rf_h1_feed(&x[0], (const uint8_t *)part, 40000, &used), RF_H1_MORE);
	rf_h1_free(&x[0]);
	/* A large body's buffer goes with its request. */
	rf_h1_init(&x[0], 65536);
	assert_int_equal(feed_all(&x[0],
			     "POST /ocsp HTTP/1.1\r\nContent-Length: 40000\r\n"
			     "\r\n",
			     &used),
	    RF_H1_MORE);
	assert_int_equal(rf_h1_feed(&x[0], (const uint8_t *)part, 40000, &used),
	    RF_H1_READY);
	rf_h1_next(&x[0]);
	assert_null(x[0].body);
	rf_h1_free(&x[0]);
	rf_h1_bodies_max(0); /* the default again */
	free(part);
	free(x);
}

/*
 * Request bodies of one network: connections from many /64s of one IPv6
 * /48 (each a source of its own) hold at most 1/RF_H1_NET_SHARE of the
 * bodies' bound together, so that one /48 cannot take the room every
 * client shares; another /48 still gets room, and closed connections give
 * theirs back.
 */
static void
test_bodies_per_network(void **state)
{
	static const char head[] =
	    "POST /ocsp HTTP/1.1\r\nContent-Length: 65536\r\n\r\n";
	enum { N = 40 };
	struct rf_config cfg;
	struct rf_http_limits *l = NULL;
	struct rf_http_place pl[N + 1];
	struct sockaddr_storage ss;
	struct rf_h1 *x;
	char *part, a[64];
	size_t i, used, held = 0;
	enum rf_h1_state st;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(rf_http_limits_new(&cfg, &l), 0);
	rf_http_limits_set_max_conns(l, 100000);
	assert_non_null(x = calloc(N + 1, sizeof(*x)));
	assert_non_null(part = malloc(40000));
	memset(part, 'a', 40000);
	/* 4 MiB for all: a network's share holds four 64 KiB buffers. */
	rf_h1_bodies_max(64 * 65536);
	for (i = 0; i <= N; i++) {
		/* The last one is of another /48. */
		snprintf(a, sizeof(a),
		    i < N ? "2001:db8:1:%x::1" : "2001:db8:2::1", (unsigned)i);
		ss = tu_addr(a);
		assert_true(rf_http_limits_conn_take(l, &ss, &pl[i]));
		rf_h1_init(&x[i], 65536);
		rf_h1_share(&x[i], rf_http_limits_net_bodies(l, &pl[i]));
		assert_non_null(x[i].net_held);
		assert_int_equal(feed_all(&x[i], head, &used), RF_H1_MORE);
		st = rf_h1_feed(&x[i], (const uint8_t *)part, 40000, &used);
		if (i == N)
			assert_int_equal(st, RF_H1_MORE);
		else if (st == RF_H1_FAIL)
			assert_int_equal(x[i].fail_code, 503);
		else {
			assert_int_equal(st, RF_H1_MORE);
			held++;
		}
	}
	assert_int_equal(held, 64 / RF_H1_NET_SHARE);
	/* Closed, their room is the network's again. */
	for (i = 0; i <= N; i++)
		rf_h1_free(&x[i]);
	assert_int_equal(*x[0].net_held, 0);
	rf_h1_init(&x[0], 65536);
	rf_h1_share(&x[0], rf_http_limits_net_bodies(l, &pl[0]));
	assert_int_equal(feed_all(&x[0], head, &used), RF_H1_MORE);
	assert_int_equal(
	    rf_h1_feed(&x[0], (const uint8_t *)part, 40000, &used), RF_H1_MORE);
	rf_h1_free(&x[0]);
	/* A body max_body allows is never refused for the network's share
	 * alone: with 1 MiB for all (a 64 KiB share), one of 150,000 bytes
	 * under a max_body of 200,000 is read whole. */
	rf_h1_bodies_max(1 << 20);
	{
		static const char big[] =
		    "POST /ocsp HTTP/1.1\r\nContent-Length: 150000\r\n\r\n";

		rf_h1_init(&x[0], 200000);
		rf_h1_share(&x[0], rf_http_limits_net_bodies(l, &pl[0]));
		assert_int_equal(feed_all(&x[0], big, &used), RF_H1_MORE);
		for (i = 0; i < 3; i++)
			assert_int_equal(
			    rf_h1_feed(
				&x[0], (const uint8_t *)part, 40000, &used),
			    RF_H1_MORE);
		assert_int_equal(
		    rf_h1_feed(&x[0], (const uint8_t *)part, 30000, &used),
		    RF_H1_READY);
		rf_h1_free(&x[0]);
	}
	rf_h1_bodies_max(0); /* the default again */
	rf_http_limits_free(l);
	free(part);
	free(x);
}

/* Bad chunk framing is found when the CRLF arrives a byte at a time too. */
static void
test_chunk_crlf_split(void **state)
{
	static const char ok[] = "POST / HTTP/1.1\r\nTransfer-Encoding: "
				 "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
	static const char bad[] = "POST / HTTP/1.1\r\nTransfer-Encoding: "
				  "chunked\r\n\r\n3\r\nabc\r;0\r\n\r\n";
	struct rf_h1 x;
	enum rf_h1_state st = RF_H1_MORE;
	size_t i, used;

	(void)state;
	rf_h1_init(&x, 1024);
	for (i = 0; i < sizeof(ok) - 1 && st == RF_H1_MORE; i++)
		st = rf_h1_feed(&x, (const uint8_t *)ok + i, 1, &used);
	assert_int_equal(st, RF_H1_READY);
	assert_int_equal(i, sizeof(ok) - 1);
	rf_h1_free(&x);
	rf_h1_init(&x, 1024);
	st = RF_H1_MORE;
	for (i = 0; i < sizeof(bad) - 1 && st == RF_H1_MORE; i++)
		st = rf_h1_feed(&x, (const uint8_t *)bad + i, 1, &used);
	assert_int_equal(st, RF_H1_FAIL);
	assert_int_equal(x.fail_code, 400);
	rf_h1_free(&x);
}

static void
test_keep_alive(void **state)
{
	struct rf_h1 x;
	size_t used;

	(void)state;
	rf_h1_init(&x, 1024);
	assert_int_equal(
	    feed_all(&x, "GET / HTTP/1.0\r\n\r\n", &used), RF_H1_READY);
	assert_false(rf_h1_keep_alive(&x));
	rf_h1_free(&x);
	rf_h1_init(&x, 1024);
	assert_int_equal(
	    feed_all(
		&x, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &used),
	    RF_H1_READY);
	assert_true(rf_h1_keep_alive(&x));
	rf_h1_free(&x);
	/* An upgrade is answered as a plain request, then closed. */
	rf_h1_init(&x, 1024);
	assert_int_equal(feed_all(&x,
			     "GET / HTTP/1.1\r\nConnection: Upgrade\r\n"
			     "Upgrade: h2c\r\n\r\n",
			     &used),
	    RF_H1_READY);
	assert_false(rf_h1_keep_alive(&x));
	rf_h1_free(&x);
}

static void
test_head(void **state)
{
	struct rf_http_resp o;
	char out[512];
	size_t n;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.code = 200;
	o.reason = "OK";
	o.nh = 1;
	o.h[0].name = "Content-Type";
	snprintf(o.h[0].value, sizeof(o.h[0].value), "application/x");
	o.body = (const uint8_t *)"abc";
	o.len = 3;
	n = rf_h1_head(
	    &o, "Mon, 23 Nov 2026 18:00:00 GMT", 0, 0, out, sizeof(out));
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out,
	    "HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\n"
	    "Content-Type: application/x\r\nContent-Length: 3\r\n\r\n");
	/* 304: no Content-Length; closing says so; 1.0 keep-alive too. */
	o.code = 304;
	o.reason = "Not Modified";
	n = rf_h1_head(&o, "D", 1, 0, out, sizeof(out));
	out[n] = '\0';
	assert_null(strstr(out, "Content-Length"));
	assert_non_null(strstr(out, "\r\nConnection: close\r\n\r\n"));
	o.code = 200;
	n = rf_h1_head(&o, "D", 0, 1, out, sizeof(out));
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nConnection: keep-alive\r\n\r\n"));
	/* Too small a buffer: 0, never a cut head. */
	assert_int_equal(rf_h1_head(&o, "D", 0, 0, out, 20), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fragments),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_chunked_and_continue),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_bodies_bounded),
	    cmocka_unit_test(test_bodies_per_network),
	    cmocka_unit_test(test_chunk_crlf_split),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
