/*
 * h1.h: HTTP/1.1 requests read from a byte stream (RFC 9112) and the
 * heads of their responses, for the plain listener (conn.c). Private to
 * src/http.
 *
 * The syntax is http_parser's (libhttp-parser, the parser Node.js used
 * for a decade); this layer keeps the few parts of a request the routes
 * use (method, raw request-target, body, If-None-Match, Expect) within
 * fixed limits, and knows nothing of sockets, so that the fuzz target
 * fuzz/fuzz_http_h1.c drives exactly what the server runs.
 */
#ifndef RF_HTTP_H1_H
#define RF_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "http/http_int.h"

#define RF_H1_INM_MAX 512 /* bytes of If-None-Match kept */

enum rf_h1_state {
	RF_H1_MORE = 0, /* every byte used; feed more */
	RF_H1_READY,	/* a whole request: rf_h1_request, then rf_h1_next */
	RF_H1_FAIL	/* answer rf_h1_fail_* and close the connection */
};

struct rf_h1 {
	http_parser p;
	size_t max_body;
	enum rf_h1_state state;
	/* Why the stream failed: an HTTP status and a one-line reason. */
	int fail_code;
	const char *fail_text;
	char fail_buf[64]; /* fail_text when it says a number */
	/* The request being read. */
	enum rf_http_method method;
	char target[RF_HTTP_MAX_HEADERS + 1];
	size_t tlen;
	size_t head_bytes; /* request line and headers so far */
	char field[24];	   /* the header name being read, lowercased */
	size_t flen;
	int in_value; /* the last callback was a header value */
	char inm[RF_H1_INM_MAX + 1];
	size_t inmlen;
	int has_inm;
	char expect[16];
	size_t elen;
	int want_continue; /* "Expect: 100-continue": send 100 first */
	uint8_t *body;	   /* max_body bytes at most; kept between requests */
	size_t *net_held;  /* its network's bodies (rf_h1_share), or NULL */
	size_t blen, bcap;
	int started; /* a byte of this request has been read */
	/*
	 * Chunk framing checked exactly (http_parser, built lenient, takes
	 * any two bytes after chunk data): the CRLF still expected after
	 * the chunk data ended (0, 1 or 2 bytes), and the buffer being fed.
	 */
	int chunk_open; /* a chunk's data is being read */
	int crlf_need;	/* bytes of "\r\n" still to see: 2, 1 or 0 */
	const uint8_t *feed_end;
	uint8_t first; /* its first byte: a method's letter, or garbage */
};

/* A reader for requests with bodies of at most max_body bytes. */
void rf_h1_init(struct rf_h1 *x, size_t max_body);
void rf_h1_free(struct rf_h1 *x);
/* The bound on every parser's bodies together, bytes (0: the default,
 * 64 MiB); for tests. */
void rf_h1_bodies_max(size_t max);
/*
 * x's bodies count in *held too, shared with the other connections of
 * its network (rf_http_limits_net_bodies), which hold at most
 * 1/RF_H1_NET_SHARE of the bound on every parser's bodies together.
 * NULL: not counted there. Before the first byte is fed.
 */
#define RF_H1_NET_SHARE 16
void rf_h1_share(struct rf_h1 *x, size_t *held);

/*
 * Read up to len bytes; *used says how many were taken. RF_H1_READY stops
 * right after the request's last byte: the rest is for after rf_h1_next.
 */
enum rf_h1_state rf_h1_feed(
    struct rf_h1 *x, const uint8_t *buf, size_t len, size_t *used);

/* The ready request, valid until rf_h1_next. */
void rf_h1_request(const struct rf_h1 *x, struct rf_http_req *q);
/* 1 if the connection may carry another request after this one. */
int rf_h1_keep_alive(const struct rf_h1 *x);
/* Forget the ready request and read the next. */
void rf_h1_next(struct rf_h1 *x);
/* 1 if the request read is HTTP/1.0 (keep-alive is then said back). */
int rf_h1_is_10(const struct rf_h1 *x);
/* 1 if a response with this status carries a body (RFC 9110 6.4.1). */
int rf_h1_has_body(int code);

/*
 * The head of a response to o: status line, Date, the response's headers,
 * Content-Length (none for 1xx, 204, 304) and "Connection: close" when
 * closing. Its length, or 0 if cap is too small.
 */
size_t rf_h1_head(const struct rf_http_resp *o, const char *date, int closing,
    int keep_alive_10, char *out, size_t cap);

#endif
