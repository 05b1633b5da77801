/*
 * h1.c: HTTP/1.1 requests from a byte stream, through http_parser (see
 * h1.h), and response heads.
 *
 * Limits: the request line and headers together at most
 * RF_HTTP_MAX_HEADERS bytes (431), a body at most max_body bytes (413,
 * said as soon as Content-Length shows it), If-None-Match at most
 * RF_H1_INM_MAX bytes (longer: ignored, so the full answer is sent).
 * Request smuggling: http_parser refuses both Content-Length and
 * Transfer-Encoding, a Transfer-Encoding that does not end in chunked, and
 * two differing Content-Lengths (400). The library is built lenient, so
 * this layer refuses what it lets through: whitespace between a header
 * name and its colon (RFC 9112 5.1), and anything but exactly CRLF after
 * a chunk's data (RFC 9112 7.1).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

static pthread_once_t limit_once = PTHREAD_ONCE_INIT;

/*
 * Request bodies held in memory by every connection together, bytes: what
 * a crowd of connections that send part of a body and wait can make serve
 * keep. Past it, 503 and close; past its network's share
 * (RF_H1_NET_SHARE, rf_h1_share) too, so that one IPv6 /48 with its
 * 65,536 /64s cannot take it all. A body buffer over RF_H1_BODY_KEEP goes
 * with its request instead of staying with a kept-alive connection.
 */
#define RF_H1_BODIES_MAX ((size_t)64 << 20)
#define RF_H1_BODY_KEEP 16384
static size_t bodies_max = RF_H1_BODIES_MAX; /* atomic */
static size_t bodies_held;		     /* atomic */

void
rf_h1_bodies_max(size_t max)
{
	__atomic_store_n(
	    &bodies_max, max > 0 ? max : RF_H1_BODIES_MAX, __ATOMIC_RELAXED);
}

/* grow bytes more in *held, unless that passes max: 0, or -1. */
static int
held_take(size_t *held, size_t grow, size_t max)
{
	if (__atomic_add_fetch(held, grow, __ATOMIC_RELAXED) <= max)
		return 0;
	__atomic_sub_fetch(held, grow, __ATOMIC_RELAXED);
	return -1;
}

/*
 * Room for grow bytes more of x's body: 0, or -1 past the bound on every
 * parser's bodies or past its network's share of it (nothing taken).
 */
static int
bodies_take(struct rf_h1 *x, size_t grow)
{
	size_t max = __atomic_load_n(&bodies_max, __ATOMIC_RELAXED);
	size_t share = max / RF_H1_NET_SHARE;

	/* A network holds two of the largest bodies at least: a body
	 * max_body allows is never refused for the share alone. */
	if (share < 2 * x->max_body)
		share = 2 * x->max_body;
	if (held_take(&bodies_held, grow, max) != 0)
		return -1;
	if (x->net_held != NULL && held_take(x->net_held, grow, share) != 0) {
		__atomic_sub_fetch(&bodies_held, grow, __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}

static void
bodies_give(struct rf_h1 *x, size_t n)
{
	__atomic_sub_fetch(&bodies_held, n, __ATOMIC_RELAXED);
	if (x->net_held != NULL)
		__atomic_sub_fetch(x->net_held, n, __ATOMIC_RELAXED);
}

void
rf_h1_share(struct rf_h1 *x, size_t *held)
{
	x->net_held = held;
}

static void
body_drop(struct rf_h1 *x)
{
	bodies_give(x, x->bcap);
	free(x->body);
	x->body = NULL;
	x->bcap = 0;
}

static void
limit_init(void)
{
	/* http_parser's own bound, process-wide; ours is checked too. */
	http_parser_set_max_header_size(RF_HTTP_MAX_HEADERS);
}

static int
fail(struct rf_h1 *x, int code, const char *text)
{
	if (x->fail_code == 0) {
		x->fail_code = code;
		x->fail_text = text;
	}
	return -1; /* stops http_parser with HPE_CB_* */
}

/* 413, saying the limit. */
static int
too_large(struct rf_h1 *x)
{
	if (x->fail_code == 0)
		snprintf(x->fail_buf, sizeof(x->fail_buf),
		    "request body too large: at most %zu bytes", x->max_body);
	return fail(x, 413, x->fail_buf);
}

static int
head_add(struct rf_h1 *x, size_t len)
{
	x->head_bytes += len;
	if (x->head_bytes > RF_HTTP_MAX_HEADERS)
		return fail(x, 431, "request header fields too large");
	return 0;
}

static int
on_begin(http_parser *p)
{
	struct rf_h1 *x = p->data;

	x->started = 1;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct rf_h1 *x = p->data;

	if (head_add(x, len) != 0)
		return -1;
	if (len > sizeof(x->target) - 1 - x->tlen)
		return fail(x, 414, "URI too long");
	memcpy(x->target + x->tlen, at, len);
	x->tlen += len;
	x->target[x->tlen] = '\0';
	return 0;
}

static int
on_field(http_parser *p, const char *at, size_t len)
{
	struct rf_h1 *x = p->data;
	size_t i;

	if (head_add(x, len) != 0)
		return -1;
	if (x->in_value) { /* a new header begins */
		x->in_value = 0;
		x->flen = 0;
	}
	for (i = 0; i < len; i++) {
		char c = at[i];

		/* A lenient http_parser takes "Host : x" as "host ". */
		if (c == ' ' || c == '\t')
			return fail(x, 400,
			    "whitespace between a header name and its colon");
		if (x->flen >= sizeof(x->field) - 1) {
			x->flen =
			    sizeof(x->field); /* too long: no header of ours */
			break;
		}
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		x->field[x->flen++] = c;
	}
	if (x->flen < sizeof(x->field))
		x->field[x->flen] = '\0';
	return 0;
}

static void
keep(char *dst, size_t cap, size_t *dlen, const char *at, size_t len, int *over)
{
	if (*over || *dlen > cap || len > cap - *dlen) {
		*over = 1;
		return;
	}
	memcpy(dst + *dlen, at, len);
	*dlen += len;
	dst[*dlen] = '\0';
}

static int
on_value(http_parser *p, const char *at, size_t len)
{
	struct rf_h1 *x = p->data;
	int over = 0, first = !x->in_value;

	if (head_add(x, len) != 0)
		return -1;
	x->in_value = 1;
	if (x->flen >= sizeof(x->field))
		return 0;
	if (strcmp(x->field, "if-none-match") == 0) {
		over = x->has_inm < 0;
		/* A second such header continues the list (RFC 9110 5.3). */
		if (first && x->inmlen > 0)
			keep(x->inm, RF_H1_INM_MAX, &x->inmlen, ",", 1, &over);
		keep(x->inm, RF_H1_INM_MAX, &x->inmlen, at, len, &over);
		x->has_inm = over ? -1 : 1;
	} else if (strcmp(x->field, "expect") == 0) {
		keep(
		    x->expect, sizeof(x->expect) - 1, &x->elen, at, len, &over);
		if (over)
			x->elen = sizeof(x->expect); /* not 100-continue */
	}
	return 0;
}

static int
on_headers(http_parser *p)
{
	struct rf_h1 *x = p->data;

	switch (p->method) {
	case HTTP_GET:
		x->method = RF_HTTP_GET;
		break;
	case HTTP_HEAD:
		x->method = RF_HTTP_HEAD;
		break;
	case HTTP_POST:
		x->method = RF_HTTP_POST;
		break;
	default:
		x->method = RF_HTTP_OTHER;
	}
	/* Said now, not after reading a body that will be refused. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > x->max_body)
		return too_large(x);
	if (x->elen > 0 && x->elen < sizeof(x->expect)) {
		if (strcasecmp(x->expect, "100-continue") != 0)
			return fail(x, 417, "expectation not supported");
		/* RFC 9110 10.1.1: only HTTP/1.1 clients wait for it. */
		x->want_continue = p->http_major == 1 && p->http_minor >= 1 &&
		    ((p->flags & F_CHUNKED) || p->content_length > 0);
	}
	return 0;
}

/* Check the bytes after a chunk's data, from pos up to the buffer's end. */
static int
crlf_check(struct rf_h1 *x, const uint8_t *pos)
{
	while (x->crlf_need > 0 && pos < x->feed_end) {
		if (*pos++ != (x->crlf_need == 2 ? '\r' : '\n'))
			return fail(x, 400, "chunk data not followed by CRLF");
		x->crlf_need--;
	}
	return 0;
}

static int
on_chunk_header(http_parser *p)
{
	struct rf_h1 *x = p->data;

	x->chunk_open = p->content_length > 0;
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct rf_h1 *x = p->data;
	uint8_t *nb;
	size_t cap;

	/* The chunk's last data: CRLF must follow, here or in later bytes. */
	if (x->chunk_open && p->content_length == 0) {
		x->chunk_open = 0;
		x->crlf_need = 2;
		if (crlf_check(x, (const uint8_t *)at + len) != 0)
			return -1;
	}

	if (len > x->max_body - x->blen)
		return too_large(x);
	if (x->blen + len > x->bcap) {
		cap = x->bcap > 0 ? x->bcap : 1024;
		while (cap < x->blen + len)
			cap *= 2;
		if (cap > x->max_body)
			cap = x->max_body;
		if (bodies_take(x, cap - x->bcap) != 0)
			return fail(x, 503,
			    "busy: too many request bodies in memory; retry");
		if ((nb = realloc(x->body, cap)) == NULL) {
			bodies_give(x, cap - x->bcap);
			return fail(x, 503, "out of memory");
		}
		x->body = nb;
		x->bcap = cap;
	}
	memcpy(x->body + x->blen, at, len);
	x->blen += len;
	return 0;
}

static int
on_complete(http_parser *p)
{
	struct rf_h1 *x = p->data;

	x->state = RF_H1_READY;
	http_parser_pause(p, 1); /* one request at a time */
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_complete,
};

static void
request_reset(struct rf_h1 *x)
{
	x->state = RF_H1_MORE;
	x->method = RF_HTTP_OTHER;
	x->tlen = 0;
	x->target[0] = '\0';
	x->head_bytes = 0;
	x->flen = 0;
	x->in_value = 0;
	x->inmlen = 0;
	x->inm[0] = '\0';
	x->has_inm = 0;
	x->elen = 0;
	x->expect[0] = '\0';
	x->want_continue = 0;
	x->blen = 0;
	x->started = 0;
	x->first = 0;
	x->chunk_open = 0;
	x->crlf_need = 0;
}

void
rf_h1_init(struct rf_h1 *x, size_t max_body)
{
	pthread_once(&limit_once, limit_init);
	memset(x, 0, sizeof(*x));
	http_parser_init(&x->p, HTTP_REQUEST);
	x->p.data = x;
	x->max_body = max_body;
	request_reset(x);
}

void
rf_h1_free(struct rf_h1 *x)
{
	body_drop(x);
	x->blen = 0;
}

enum rf_h1_state
rf_h1_feed(struct rf_h1 *x, const uint8_t *buf, size_t len, size_t *used)
{
	enum http_errno e;
	size_t n;

	*used = 0;
	if (x->state != RF_H1_MORE)
		return x->state;
	if (len == 0)
		return RF_H1_MORE;
	if (x->first == 0)
		x->first = buf[0];
	x->feed_end = buf + len;
	if (x->crlf_need > 0 && crlf_check(x, buf) != 0) {
		x->state = RF_H1_FAIL;
		return RF_H1_FAIL;
	}
	n = http_parser_execute(&x->p, &settings, (const char *)buf, len);
	*used = n > len ? len : n;
	e = HTTP_PARSER_ERRNO(&x->p);
	if (x->state == RF_H1_READY && e == HPE_PAUSED)
		return RF_H1_READY;
	if (e == HPE_OK && x->p.upgrade) {
		/*
		 * An Upgrade or CONNECT request: answered as any other
		 * (CONNECT gets 405), and the connection is closed after.
		 */
		if (x->state == RF_H1_READY)
			return RF_H1_READY;
		fail(x, 400, "protocol upgrade not supported");
	} else if (e == HPE_OK) {
		return RF_H1_MORE;
	} else if (e == HPE_HEADER_OVERFLOW)
		fail(x, 431, "request header fields too large");
	else if (e == HPE_INVALID_METHOD && x->first >= 'A' && x->first <= 'Z')
		fail(x, 501, "method not implemented");
	else
		fail(x, 400, http_errno_description(e));
	x->state = RF_H1_FAIL;
	return RF_H1_FAIL;
}

void
rf_h1_request(const struct rf_h1 *x, struct rf_http_req *q)
{
	memset(q, 0, sizeof(*q));
	q->method = x->method;
	q->target = x->target;
	q->body = x->blen > 0 ? x->body : (const uint8_t *)"";
	q->bodylen = x->blen;
	q->if_none_match = x->has_inm == 1 ? x->inm : NULL;
}

int
rf_h1_keep_alive(const struct rf_h1 *x)
{
	return x->state == RF_H1_READY && !x->p.upgrade &&
	    http_should_keep_alive(&x->p);
}

void
rf_h1_next(struct rf_h1 *x)
{
	if (x->bcap > RF_H1_BODY_KEEP)
		body_drop(x);
	request_reset(x);
	http_parser_pause(&x->p, 0);
}

int
rf_h1_has_body(int code)
{
	return code >= 200 && code != 204 && code != 304;
}

int
rf_h1_is_10(const struct rf_h1 *x)
{
	return x->p.http_major == 1 && x->p.http_minor == 0;
}

/* A response head being written: stops at the first thing too long. */
struct head {
	char *p;
	size_t n, cap;
	int over;
};

static void
put(struct head *b, const char *s, size_t len)
{
	if (b->over || len > b->cap - b->n) {
		b->over = 1;
		return;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
}

static void
puts_(struct head *b, const char *s)
{
	put(b, s, strlen(s));
}

static void
putu(struct head *b, size_t v)
{
	char t[24];
	size_t i = sizeof(t);

	do
		t[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(b, t + i, sizeof(t) - i);
}

size_t
rf_h1_head(const struct rf_http_resp *o, const char *date, int closing,
    int keep_alive_10, char *out, size_t cap)
{
	struct head b = {out, 0, cap, 0};
	size_t i;

	/* By hand, not snprintf: this runs for every answer. */
	puts_(&b, "HTTP/1.1 ");
	putu(&b, o->code >= 100 && o->code <= 999 ? (size_t)o->code : 500);
	puts_(&b, " ");
	puts_(&b, o->reason != NULL ? o->reason : "");
	puts_(&b, "\r\nDate: ");
	puts_(&b, date);
	puts_(&b, "\r\n");
	for (i = 0; i < o->nh; i++) {
		puts_(&b, o->h[i].name);
		puts_(&b, ": ");
		puts_(&b, o->h[i].value);
		puts_(&b, "\r\n");
	}
	if (rf_h1_has_body(o->code)) {
		puts_(&b, "Content-Length: ");
		putu(&b, o->body != NULL ? o->len : 0);
		puts_(&b, "\r\n");
	}
	if (closing)
		puts_(&b, "Connection: close\r\n");
	else if (keep_alive_10)
		puts_(&b, "Connection: keep-alive\r\n");
	puts_(&b, "\r\n");
	return b.over ? 0 : b.n;
}
