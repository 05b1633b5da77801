/* proto.c: custody protocol frames (proto.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keys/proto.h"

const char *
rf_kclass_name(int c)
{
	switch (c) {
	case RF_KCLASS_ADMIN:
		return "admin";
	case RF_KCLASS_SERVER:
		return "server";
	default:
		return "none";
	}
}

const char *
rf_kmsg_name(int type)
{
	static const char *const names[] = {"?", "hello", "keygen", "load",
	    "sign", "disable", "list", "custody", "measure", "status",
	    "load-many", "note", "note-items", "session"};

	if (type >= 1 && type <= RF_KMSG_TYPE_MAX)
		return names[type];
	return "unknown";
}

/*
 * Writing
 */

static uint8_t *
grow(struct rf_kbuf *b, size_t n)
{
	size_t cap;
	uint8_t *d;

	if (b->err != 0)
		return NULL;
	if (n > RF_KPROTO_MAX || b->len > RF_KPROTO_MAX + 4 - n) {
		b->err = RF_ERR_TOO_LARGE;
		return NULL;
	}
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		if ((d = realloc(b->d, cap)) == NULL) {
			b->err = RF_ERR_ALLOC;
			return NULL;
		}
		b->d = d;
		b->cap = cap;
	}
	d = b->d + b->len;
	b->len += n;
	return d;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

void
rf_kbuf_begin(struct rf_kbuf *b, int type)
{
	uint8_t *p;

	b->len = 0;
	b->err = 0;
	if ((p = grow(b, 6)) != NULL) {
		put_be(p, 0, 4);
		p[4] = RF_KPROTO_VERSION;
		p[5] = (uint8_t)type;
	}
}

void
rf_kbuf_u8(struct rf_kbuf *b, uint8_t v)
{
	uint8_t *p;

	if ((p = grow(b, 1)) != NULL)
		*p = v;
}

void
rf_kbuf_u32(struct rf_kbuf *b, uint32_t v)
{
	uint8_t *p;

	if ((p = grow(b, 4)) != NULL)
		put_be(p, v, 4);
}

void
rf_kbuf_put_u32(struct rf_kbuf *b, size_t off, uint32_t v)
{
	if (b->err == 0 && off + 4 <= b->len)
		put_be(b->d + off, v, 4);
}

void
rf_kbuf_u64(struct rf_kbuf *b, uint64_t v)
{
	uint8_t *p;

	if ((p = grow(b, 8)) != NULL)
		put_be(p, v, 8);
}

void
rf_kbuf_bytes(struct rf_kbuf *b, const uint8_t *d, size_t len)
{
	uint8_t *p;

	if (len > RF_KPROTO_MAX) {
		b->err = RF_ERR_TOO_LARGE;
		return;
	}
	rf_kbuf_u32(b, (uint32_t)len);
	if (len > 0 && (p = grow(b, len)) != NULL)
		memcpy(p, d, len);
}

void
rf_kbuf_strn(struct rf_kbuf *b, const char *s, size_t max)
{
	size_t n = s == NULL ? 0 : strlen(s);

	if (n >= max) {
		b->err = RF_ERR_TOO_LARGE;
		return;
	}
	rf_kbuf_bytes(b, (const uint8_t *)s, n);
}

void
rf_kbuf_str(struct rf_kbuf *b, const char *s)
{
	rf_kbuf_strn(b, s, RF_KPROTO_STR_MAX);
}

int
rf_kbuf_finish(struct rf_kbuf *b)
{
	if (b->err == RF_ERR_TOO_LARGE)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "custody request too large (at most %u bytes, strings "
		    "%d, a signature's ref %d): ask for fewer items at a time",
		    RF_KPROTO_MAX, RF_KPROTO_STR_MAX - 1,
		    RF_KPROTO_REF_MAX - 1);
	if (b->err != 0)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	put_be(b->d, b->len - 4, 4);
	return 0;
}

void
rf_kbuf_clear(struct rf_kbuf *b)
{
	if (b->d != NULL)
		OPENSSL_cleanse(b->d, b->cap);
	free(b->d);
	memset(b, 0, sizeof(*b));
}

/*
 * Reading
 */

int
rf_kmsg_parse(const uint8_t *frame, size_t len, struct rf_kmsg *m)
{
	uint32_t n;

	memset(m, 0, sizeof(*m));
	if (len < 6)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody frame of %zu bytes: shorter than its header", len);
	n = (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 |
	    (uint32_t)frame[2] << 8 | frame[3];
	if (n != len - 4 || n > RF_KPROTO_MAX)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody frame says %u bytes, has %zu", n, len - 4);
	if (frame[4] != RF_KPROTO_VERSION)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody protocol version %u, this build speaks %d: run "
		    "one ringfence build for keyd and its callers",
		    frame[4], RF_KPROTO_VERSION);
	if ((frame[5] < 1 || frame[5] > RF_KMSG_TYPE_MAX) &&
	    frame[5] != RF_KMSG_OK && frame[5] != RF_KMSG_ERR &&
	    frame[5] != RF_KMSG_RECORDED)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody frame of unknown type %u", frame[5]);
	m->p = frame;
	m->len = len;
	m->off = 6;
	m->type = frame[5];
	return 0;
}

static const uint8_t *
take(struct rf_kmsg *m, size_t n)
{
	const uint8_t *p;

	if (m->err != 0 || n > m->len - m->off) {
		m->err = RF_ERR_MALFORMED;
		return NULL;
	}
	p = m->p + m->off;
	m->off += n;
	return p;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

uint8_t
rf_kmsg_u8(struct rf_kmsg *m)
{
	const uint8_t *p = take(m, 1);

	return p ? *p : 0;
}

uint32_t
rf_kmsg_u32(struct rf_kmsg *m)
{
	const uint8_t *p = take(m, 4);

	return p ? (uint32_t)get_be(p, 4) : 0;
}

uint64_t
rf_kmsg_u64(struct rf_kmsg *m)
{
	const uint8_t *p = take(m, 8);

	return p ? get_be(p, 8) : 0;
}

void
rf_kmsg_bytes(struct rf_kmsg *m, const uint8_t **p, size_t *len, size_t max)
{
	uint32_t n = rf_kmsg_u32(m);

	*p = NULL;
	*len = 0;
	if (m->err != 0)
		return;
	if (n > max) {
		m->err = RF_ERR_TOO_LARGE;
		return;
	}
	if ((*p = take(m, n)) != NULL)
		*len = n;
}

void
rf_kmsg_str(struct rf_kmsg *m, char out[RF_KPROTO_STR_MAX])
{
	rf_kmsg_strn(m, out, RF_KPROTO_STR_MAX);
}

void
rf_kmsg_strn(struct rf_kmsg *m, char *out, size_t max)
{
	const uint8_t *p;
	size_t n;

	out[0] = '\0';
	rf_kmsg_bytes(m, &p, &n, max - 1);
	if (m->err != 0)
		return;
	if (n > 0 && memchr(p, '\0', n) != NULL) {
		m->err = RF_ERR_MALFORMED;
		return;
	}
	if (n > 0)
		memcpy(out, p, n);
	out[n] = '\0';
}

int
rf_kmsg_end(struct rf_kmsg *m)
{
	if (m->err == RF_ERR_TOO_LARGE)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody %s: a field is longer than allowed",
		    rf_kmsg_name(m->type));
	if (m->err != 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody %s: truncated or malformed field at byte %zu",
		    rf_kmsg_name(m->type), m->off);
	if (m->off != m->len)
		return rf_err_set(RF_ERR_MALFORMED,
		    "custody %s: %zu bytes after its last field",
		    rf_kmsg_name(m->type), m->len - m->off);
	return 0;
}

/*
 * Socket I/O
 */

/* Read exactly n bytes: 0, 1 at end of stream before any, -1 on error. */
static int
read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 && got == 0 ? 1 : -1;
		got += (size_t)k;
	}
	return 0;
}

int
rf_kproto_read(int fd, size_t max, uint8_t **frame, size_t *len)
{
	uint8_t hdr[4], *f;
	uint32_t n;
	int k;

	*frame = NULL;
	*len = 0;
	if ((k = read_full(fd, hdr, 4)) != 0)
		return k == 1 ? RF_ERR_NOT_FOUND
			      : rf_err_set(RF_ERR_IO, "custody socket: %s",
				    errno ? strerror(errno) : "short read");
	n = (uint32_t)get_be(hdr, 4);
	if (n < 2 || n > max)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "custody frame of %u bytes (at most %zu)", n, max);
	if ((f = malloc((size_t)n + 4)) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	memcpy(f, hdr, 4);
	if (read_full(fd, f + 4, n) != 0) {
		free(f);
		return rf_err_set(RF_ERR_IO, "custody socket: short read");
	}
	*frame = f; /* the caller's */
	*len = (size_t)n + 4;
	return 0;
}

int
rf_kproto_write(int fd, const struct rf_kbuf *b)
{
	size_t done = 0;
	ssize_t k;

	while (done < b->len) {
		k = send(fd, b->d + done, b->len - done, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return rf_err_set(RF_ERR_IO, "custody socket: %s",
			    k < 0 ? strerror(errno) : "closed");
		done += (size_t)k;
	}
	return 0;
}
