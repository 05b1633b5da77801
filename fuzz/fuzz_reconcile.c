/*
 * fuzz_reconcile.c: `ringfence audit reconcile --signins FILE`
 * (rf_connector_reconcile) on arbitrary bytes. The sign-in export is
 * another service's file, and an attacker who can sign in can shape
 * parts of it (the addresses and times of failed sign-ins). No crash and
 * no read past the input, in text and in JSON output; every line of the
 * text report names one sign-in, so no field may end one (a newline or
 * any other control character in what it prints). The store, made once,
 * holds one connection's credential (serial 2a01, its thumbprints) and
 * one assertion for it; the corpus in fuzz/corpus/reconcile holds
 * exports that it explains, does not explain, and malformed ones.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"
#include "fuzz_fx.h"
#include "store/store.h"
#include "store/store_connector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rf_store *st;

static void
fx_init(void)
{
	struct rf_cert_rec c;
	struct rf_assertion_rec a;
	int i;

	st = fuzz_fx_store("reconcile", NULL);
	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "2a01");
	snprintf(c.issuer, sizeof(c.issuer), "issuing");
	snprintf(c.tenant, sizeof(c.tenant), "acme");
	snprintf(c.profile, sizeof(c.profile), "assertion");
	snprintf(c.key_id, sizeof(c.key_id), "%064d", 1);
	/* SHA-1 00 01 .. 13 and SHA-256 00 01 .. 1f, base64url. */
	snprintf(c.x5t, sizeof(c.x5t), "AAECAwQFBgcICQoLDA0ODxAREhM");
	snprintf(c.x5t256, sizeof(c.x5t256),
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	c.not_before = 1;
	c.not_after = 2112000000;
	c.issued = 1;
	c.reason = -1;
	memset(&a, 0, sizeof(a));
	snprintf(a.jti, sizeof(a.jti), "6f1c2b1e-0000-4000-8000-000000000001");
	a.time = 1796551000; /* 2026-12-06T09:56:40Z */
	a.exp = a.time + 600;
	snprintf(a.tenant, sizeof(a.tenant), "acme");
	snprintf(a.conn, sizeof(a.conn), "m365");
	snprintf(a.connector, sizeof(a.connector), "sync");
	snprintf(a.connector_serial, sizeof(a.connector_serial), "77");
	snprintf(a.cert_serial, sizeof(a.cert_serial), "2a01");
	snprintf(a.key_id, sizeof(a.key_id), "%s", c.key_id);
	snprintf(a.x5t256, sizeof(a.x5t256), "%s", c.x5t256);
	snprintf(a.source, sizeof(a.source), "192.0.2.7");
	if (rf_store_cert_add(st, &c) != 0 ||
	    rf_store_assertion_add(st, &a) != 0)
		abort();
	/* Others around it, so that the search has a list to search. */
	for (i = 0; i < 4; i++) {
		snprintf(c.serial, sizeof(c.serial), "2b0%d", i);
		snprintf(c.key_id, sizeof(c.key_id), "%064d", i + 2);
		snprintf(c.x5t, sizeof(c.x5t), "%c%026d", 'A' + 2 * i, i);
		snprintf(c.x5t256, sizeof(c.x5t256), "%c%042d", 'A' + 2 * i, i);
		if (rf_store_cert_add(st, &c) != 0)
			abort();
	}
}

/* Each line of the text report: printable, newline-terminated. */
static void
check_text(const char *t, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (((unsigned char)t[i] < 0x20 && t[i] != '\n') ||
		    (unsigned char)t[i] >= 0x7f)
			abort();
	if (len > 0 && t[len - 1] != '\n')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL;
	size_t len = 0, n = 0;
	FILE *out;
	int json;

	if (st == NULL)
		fx_init();
	for (json = 0; json < 2; json++) {
		if ((out = open_memstream(&text, &len)) == NULL)
			abort();
		if (rf_connector_reconcile(st, data, size, json, out, &n) != 0)
			rf_err_clear();
		fclose(out);
		if (!json)
			check_text(text, len);
		free(text);
		text = NULL;
	}
	return 0;
}
