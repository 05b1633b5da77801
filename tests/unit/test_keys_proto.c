/*
 * The custody protocol's frames (src/keys/proto.c): what is written reads
 * back field by field; the decoder rejects truncated frames, trailing
 * bytes, strings with NUL or too long, a foreign version and unknown types;
 * a frame's length is refused before anything is allocated for it; and
 * keyd's request decoder (rf_keyd_decode) accepts a well-formed signing
 * request and refuses its truncations and extensions.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys/keys_int.h"
#include "keys/proto.h"
#include "testutil.h"

/* A SIGN request's start, for n items. */
static void
sign_head(struct rf_kbuf *b, uint32_t n)
{
	rf_kbuf_begin(b, RF_KMSG_SIGN);
	rf_kbuf_str(b, "ab");
	rf_kbuf_u8(b, 0);
	rf_kbuf_str(b, "alice");
	rf_kbuf_str(b, NULL);
	rf_kbuf_u32(b, n);
}

/* One item: what, ref (with raw, written as bytes whatever its length,
 * else with the ref field's limit), tenant, connection (assertions), on
 * behalf of a connector certificate, its proof, then the message. */
static void
sign_item(struct rf_kbuf *b, const char *what, const char *ref, int raw,
    const uint8_t *proof, size_t prooflen)
{
	static const uint8_t msg[] = {0x30, 0x03, 0x02, 0x01, 0x01};

	rf_kbuf_u8(b, 0);
	rf_kbuf_str(b, what);
	if (raw)
		rf_kbuf_bytes(b, (const uint8_t *)ref, strlen(ref));
	else
		rf_kbuf_strn(b, ref, RF_KPROTO_REF_MAX);
	rf_kbuf_str(b, "acme");
	rf_kbuf_str(b, "mail");
	rf_kbuf_str(b, "0a0b");
	rf_kbuf_bytes(b, proof, prooflen);
	rf_kbuf_bytes(b, msg, sizeof(msg));
}

/* A SIGN request of n items, each with this what and ref. */
static int
build_sign_n(struct rf_kbuf *b, uint32_t n, const char *what, const char *ref)
{
	uint32_t i;

	sign_head(b, n);
	for (i = 0; i < n; i++)
		sign_item(b, what, ref, 0,
		    (const uint8_t *)"1.0123456789abcdef.AAAA", 23);
	return rf_kbuf_finish(b);
}

static void
build_sign(struct rf_kbuf *b)
{
	assert_int_equal(build_sign_n(b, 1, "cert", "01"), 0);
}

static void
test_roundtrip(void **state)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	const uint8_t *p;
	size_t len;
	char s[RF_KPROTO_STR_MAX];

	(void)state;
	rf_kbuf_begin(&b, RF_KMSG_MEASURE);
	rf_kbuf_str(&b, "id");
	rf_kbuf_u64(&b, UINT64_C(0x0102030405060708));
	rf_kbuf_u32(&b, 7);
	rf_kbuf_bytes(&b, (const uint8_t *)"xyz", 3);
	assert_int_equal(rf_kbuf_finish(&b), 0);
	assert_int_equal(rf_kmsg_parse(b.d, b.len, &m), 0);
	assert_int_equal(m.type, RF_KMSG_MEASURE);
	rf_kmsg_str(&m, s);
	assert_string_equal(s, "id");
	assert_true(rf_kmsg_u64(&m) == UINT64_C(0x0102030405060708));
	assert_int_equal(rf_kmsg_u32(&m), 7);
	rf_kmsg_bytes(&m, &p, &len, 3);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "xyz", 3);
	assert_int_equal(rf_kmsg_end(&m), 0);
	/* One field more than there is: malformed. */
	(void)rf_kmsg_u8(&m);
	assert_int_equal(rf_kmsg_end(&m), RF_ERR_MALFORMED);
	rf_kbuf_clear(&b);
}

/*
 * A signature's ref may be longer than other strings (an on-demand OCSP
 * response names up to 16 serials: RF_KPROTO_REF_MAX); one byte more is
 * refused by the encoder and by keyd's decoder, and the other strings
 * keep their limit.
 */
static void
test_ref_limit(void **state)
{
	struct rf_kbuf b = {0};
	char ref[RF_KPROTO_REF_MAX + 1], what[RF_KPROTO_STR_MAX + 1];
	size_t at;

	(void)state;
	memset(ref, 'a', sizeof(ref));
	ref[RF_KPROTO_REF_MAX - 1] = '\0';
	assert_int_equal(build_sign_n(&b, 1, "ocsp", ref), 0);
	assert_int_equal(rf_keyd_decode(b.d, b.len), 0);
	rf_kbuf_clear(&b);
	/* Many items, refs short and long: all held. */
	assert_int_equal(build_sign_n(&b, 40, "ocsp", ref), 0);
	assert_int_equal(rf_keyd_decode(b.d, b.len), 0);
	rf_kbuf_clear(&b);
	assert_int_equal(build_sign_n(&b, 40, "ocsp", ""), 0);
	assert_int_equal(rf_keyd_decode(b.d, b.len), 0);
	rf_kbuf_clear(&b);

	/* One byte more: the encoder refuses it... */
	ref[RF_KPROTO_REF_MAX - 1] = 'a';
	ref[RF_KPROTO_REF_MAX] = '\0';
	assert_int_equal(build_sign_n(&b, 1, "ocsp", ref), RF_ERR_TOO_LARGE);
	rf_kbuf_clear(&b);
	/* ... and so does keyd, given it: the ref field written as bytes. */
	sign_head(&b, 1);
	at = b.len;
	sign_item(&b, "ocsp", ref, 1, NULL, 0);
	assert_int_equal(
	    b.len - at, 1 + 8 + 4 + RF_KPROTO_REF_MAX + 3 * 8 + 4 + 4 + 5);
	assert_int_equal(rf_kbuf_finish(&b), 0);
	assert_int_equal(rf_keyd_decode(b.d, b.len), RF_ERR_MALFORMED);
	rf_kbuf_clear(&b);

	/* Another string as long as a ref may be: refused. */
	memset(what, 'w', sizeof(what));
	what[RF_KPROTO_STR_MAX] = '\0';
	assert_int_equal(build_sign_n(&b, 1, what, "01"), RF_ERR_TOO_LARGE);
	rf_kbuf_clear(&b);
}

static void
test_strict(void **state)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t f[64];
	char s[RF_KPROTO_STR_MAX], big[300];
	size_t i;

	(void)state;
	build_sign(&b);
	assert_int_equal(rf_keyd_decode(b.d, b.len), 0);
	/* Every truncation, with its length fixed up, is refused. */
	for (i = 6; i < b.len; i++) {
		uint8_t *t = malloc(i);

		memcpy(t, b.d, i);
		t[0] = (uint8_t)((i - 4) >> 24),
		t[1] = (uint8_t)((i - 4) >> 16);
		t[2] = (uint8_t)((i - 4) >> 8), t[3] = (uint8_t)(i - 4);
		assert_int_not_equal(rf_keyd_decode(t, i), 0);
		free(t);
	}
	/* A length that disagrees with the bytes: refused. */
	assert_int_not_equal(rf_keyd_decode(b.d, b.len - 1), 0);
	/* A trailing byte: refused. */
	{
		uint8_t *t = malloc(b.len + 1);

		memcpy(t, b.d, b.len);
		t[b.len] = 0;
		t[3]++;
		assert_int_equal(
		    rf_keyd_decode(t, b.len + 1), RF_ERR_MALFORMED);
		free(t);
	}
	rf_kbuf_clear(&b);
	/* A connector's proof longer than any proof: refused. */
	{
		static uint8_t proof[RF_KPROTO_PROOF_MAX + 1];

		memset(proof, 'A', sizeof(proof));
		sign_head(&b, 1);
		sign_item(&b, "assertion", "01", 0, proof, sizeof(proof));
		assert_int_equal(rf_kbuf_finish(&b), 0);
		assert_int_not_equal(rf_keyd_decode(b.d, b.len), 0);
		rf_kbuf_clear(&b);
	}

	/* Another version, an unknown type, an answer type as a request. */
	memcpy(f, "\0\0\0\2\0\3", 6);
	f[4] = RF_KPROTO_VERSION + 1;
	assert_int_equal(rf_kmsg_parse(f, 6, &m), RF_ERR_MALFORMED);
	memcpy(f, "\0\0\0\2\0\77", 6);
	f[4] = RF_KPROTO_VERSION;
	assert_int_equal(rf_kmsg_parse(f, 6, &m), RF_ERR_MALFORMED);
	memcpy(f, "\0\0\0\2\0\x80", 6);
	f[4] = RF_KPROTO_VERSION;
	assert_int_not_equal(rf_keyd_decode(f, 6), 0);

	/* A string with a NUL, and one too long. */
	memcpy(f, "\0\0\0\x0b\0\3\0\0\0\5ab\0cd", 15);
	f[4] = RF_KPROTO_VERSION;
	assert_int_equal(rf_kmsg_parse(f, 15, &m), 0);
	rf_kmsg_str(&m, s);
	assert_int_equal(rf_kmsg_end(&m), RF_ERR_MALFORMED);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rf_kbuf_begin(&b, RF_KMSG_LOAD);
	rf_kbuf_str(&b, big);
	assert_int_equal(rf_kbuf_finish(&b), RF_ERR_TOO_LARGE);
	rf_kbuf_clear(&b);
}

/* A frame announcing more than the limit is refused from its 4 bytes. */
static void
test_read_limit(void **state)
{
	struct rf_kbuf b = {0};
	uint8_t *frame = NULL;
	size_t len = 0;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], "\x7f\xff\xff\xff", 4), 4);
	assert_int_equal(rf_kproto_read(sv[1], RF_KPROTO_MAX, &frame, &len),
	    RF_ERR_TOO_LARGE);
	assert_null(frame);
	/* A whole frame reads back; then the end of the stream. */
	build_sign(&b);
	assert_int_equal(rf_kproto_write(sv[0], &b), 0);
	close(sv[0]);
	assert_int_equal(rf_kproto_read(sv[1], RF_KPROTO_MAX, &frame, &len), 0);
	assert_int_equal(len, b.len);
	assert_memory_equal(frame, b.d, len);
	free(frame);
	assert_int_equal(rf_kproto_read(sv[1], RF_KPROTO_MAX, &frame, &len),
	    RF_ERR_NOT_FOUND);
	close(sv[1]);
	rf_kbuf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_strict),
	    cmocka_unit_test(test_ref_limit),
	    cmocka_unit_test(test_read_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
