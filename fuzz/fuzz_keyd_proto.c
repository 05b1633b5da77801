/*
 * fuzz_keyd_proto.c: the custody protocol's request decoder (keyd_handlers.c,
 * proto.c) on arbitrary bytes: no crash, no read past the frame, and
 * every frame keyd accepts re-encodes to the same bytes for the simple
 * requests (the encoder and the decoder agree). The corpus in
 * fuzz/corpus/keyd_proto holds well-formed requests of every type and
 * truncated, oversized and trailing-byte variants; ctest replays it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keys/keys_int.h"
#include "keys/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LOAD and CUSTODY: one string; re-encoded, the same frame. */
static void
roundtrip_id(const uint8_t *data, size_t size)
{
	struct rf_kmsg m;
	struct rf_kbuf b = {0};
	char id[RF_KPROTO_STR_MAX];

	if (rf_kmsg_parse(data, size, &m) != 0 ||
	    (m.type != RF_KMSG_LOAD && m.type != RF_KMSG_CUSTODY))
		return;
	rf_kmsg_str(&m, id);
	if (rf_kmsg_end(&m) != 0)
		return;
	rf_kbuf_begin(&b, m.type);
	rf_kbuf_str(&b, id);
	if (rf_kbuf_finish(&b) != 0 || b.len != size ||
	    memcmp(b.d, data, size) != 0)
		__builtin_trap();
	rf_kbuf_clear(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_kmsg m;

	if (rf_keyd_decode(data, size) == 0) {
		/* Accepted: its header says exactly its size. */
		if (rf_kmsg_parse(data, size, &m) != 0 ||
		    size !=
			((size_t)data[0] << 24 | (size_t)data[1] << 16 |
			    (size_t)data[2] << 8 | data[3]) +
			    4)
			__builtin_trap();
		roundtrip_id(data, size);
	}
	return 0;
}
