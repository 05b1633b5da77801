/*
 * Fuzz audit watch's handling of a server's answers: the input is the
 * /audit/sth body, then a 0x00 byte, then the /audit/consistency body. Both
 * parsers run on their part, then a whole watch step against a checkpoint
 * of size 1: a step that succeeds must be one whose served head parses
 * and carries a signature that verifies with the served key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct parts {
	const uint8_t *sth, *cons;
	size_t sthlen, conslen;
};

static int
fetch(void *arg, const char *path, uint8_t **body, size_t *len)
{
	const struct parts *p = arg;
	const uint8_t *b = strcmp(path, "/audit/sth") == 0 ? p->sth : p->cons;
	size_t n = b == p->sth ? p->sthlen : p->conslen;

	*len = n;
	if ((*body = malloc(n > 0 ? n : 1)) == NULL)
		return RF_ERR_ALLOC;
	if (n > 0)
		memcpy(*body, b, n);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_audit_sth_head h;
	struct rf_audit_watch w;
	struct parts p;
	const uint8_t *nul = memchr(data, 0, size);
	uint8_t spki[1024], (*proof)[RF_HASH_LEN] = NULL;
	uint64_t a, b;
	size_t spkilen = 0, plen, i;
	int parsed;

	p.sth = data;
	p.sthlen = nul != NULL ? (size_t)(nul - data) : size;
	p.cons = nul != NULL ? nul + 1 : data + size;
	p.conslen = nul != NULL ? size - p.sthlen - 1 : 0;
	parsed = rf_audit_watch_sth_parse(
		     p.sth, p.sthlen, &h, spki, sizeof(spki), &spkilen) == 0;
	if (parsed) {
		/* A parsed head: a 64-hex key id, bounded signature and key. */
		if (strlen(h.key_id) != 64 || h.siglen == 0 ||
		    h.siglen > RF_STH_SIG_MAX || spkilen == 0 ||
		    spkilen > sizeof(spki))
			abort();
		for (i = 0; i < 64; i++)
			if (!((h.key_id[i] >= '0' && h.key_id[i] <= '9') ||
				(h.key_id[i] >= 'a' && h.key_id[i] <= 'f')))
				abort();
	}
	if (rf_audit_watch_consistency_parse(
		p.cons, p.conslen, &a, &b, &proof, &plen) == 0 &&
	    plen > 66)
		abort();
	free(proof);
	memset(&w, 0, sizeof(w));
	w.have = 1;
	w.size = 1;
	if (rf_audit_watch_step(&w, fetch, &p) == 0 &&
	    (!parsed || rf_audit_sth_verify(&h, spki, spkilen) != 0))
		abort();
	rf_err_clear();
	return 0;
}
