/*
 * fuzz_http_h1.c: the plain listener's request reader (src/http/h1.c) on
 * arbitrary bytes, as a connection would deliver them: the first byte
 * chooses how the rest is cut into reads (1 to 16 bytes, or whole), the
 * rest is the stream. Each ready request is read and answered with a
 * response head, as the server does, until the stream fails or ends.
 * The corpus in fuzz/corpus/http_h1 holds pipelined, chunked, HTTP/1.0,
 * Expect, oversize and smuggling requests.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096

static void
answer(struct rf_h1 *x)
{
	struct rf_http_req q;
	struct rf_http_resp o;
	char head[2048];

	rf_h1_request(x, &q);
	if (q.target == NULL || strlen(q.target) > RF_HTTP_MAX_HEADERS ||
	    q.body == NULL || q.bodylen > MAX_BODY ||
	    (q.method != RF_HTTP_GET && q.method != RF_HTTP_HEAD &&
		q.method != RF_HTTP_POST && q.method != RF_HTTP_OTHER) ||
	    (q.if_none_match != NULL &&
		strlen(q.if_none_match) > RF_H1_INM_MAX))
		__builtin_trap();
	memset(&o, 0, sizeof(o));
	o.code = 200;
	o.reason = "OK";
	o.body = q.body;
	o.len = q.bodylen;
	if (rf_h1_head(&o, "Thu, 01 Jan 1970 00:00:00 GMT",
		!rf_h1_keep_alive(x), 0, head, sizeof(head)) == 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_h1 x;
	enum rf_h1_state st;
	size_t stride, off, n, used;

	if (size < 1)
		return 0;
	stride = data[0] % 17; /* 0: the whole stream at once */
	data++;
	size--;
	rf_h1_init(&x, MAX_BODY);
	for (off = 0; off < size;) {
		n = stride == 0 || size - off < stride ? size - off : stride;
		st = rf_h1_feed(&x, data + off, n, &used);
		if (used > n)
			__builtin_trap();
		off += used;
		if (st == RF_H1_FAIL) {
			if (x.fail_code < 400 || x.fail_code > 599 ||
			    x.fail_text == NULL)
				__builtin_trap();
			break;
		}
		if (st == RF_H1_READY) {
			answer(&x);
			if (!rf_h1_keep_alive(&x))
				break;
			rf_h1_next(&x);
		} else if (used != n)
			__builtin_trap(); /* MORE takes every byte */
	}
	rf_h1_free(&x);
	return 0;
}
