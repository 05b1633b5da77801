/*
 * fuzz_ocsp_request.c: OCSP request decoding (rf_ocsp_request_parse) and a
 * responder (rf_ocsp_respond) on arbitrary bytes. The responder serves one
 * fixed issuer (below) and holds no responses and no signer, so it must
 * answer every input with an unsigned error status: malformedRequest
 * exactly when the parser refuses the bytes, never "successful".
 * The corpus in fuzz/corpus/ocsp_request holds requests made with
 * `openssl ocsp -reqout` for this issuer, and broken variants.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/pem.h>

#include "ocsp/ocsp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A public certificate only ("CN=fuzz issuer"); its key is not kept. */
static const char issuer_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBgjCCASegAwIBAgIUDpxD9B/xBM06hKXTC8Mesu72x1UwCgYIKoZIzj0EAwIw\n"
    "FjEUMBIGA1UEAwwLZnV6eiBpc3N1ZXIwHhcNMjYxMTIzMDg1NTU5WhcNMzYxMTIw\n"
    "MDg1NTU5WjAWMRQwEgYDVQQDDAtmdXp6IGlzc3VlcjBZMBMGByqGSM49AgEGCCqG\n"
    "SM49AwEHA0IABEwAsxkJa5YG4yb8/QPoUfP92eX/iBtWIp/yMrFBBJRmx2kUSPtZ\n"
    "FNI5dY51iJKJj2hKKakQu/5iyDt7MlGckHejUzBRMB0GA1UdDgQWBBQYAHFtzMfJ\n"
    "ZdjT3OmgAypq5C/3rjAfBgNVHSMEGDAWgBQYAHFtzMfJZdjT3OmgAypq5C/3rjAP\n"
    "BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCGCl/3Pel53s8rm2EK\n"
    "Tf5FnetqbZkELbrIrpwLhQaO1wIhAJnkINaLt4sw1I2bZxZTP/DaGdrhy/E2P6J1\n"
    "2Ni8JcFP\n"
    "-----END CERTIFICATE-----\n";

static struct rf_ocsp_responder *
responder(void)
{
	static struct rf_ocsp_responder *r;
	BIO *bio;
	X509 *x;

	if (r != NULL)
		return r;
	if ((bio = BIO_new_mem_buf(issuer_pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
		__builtin_trap();
	BIO_free(bio);
	if (rf_ocsp_responder_new(NULL, &r) != 0 ||
	    rf_ocsp_responder_add_issuer(r, "issuing", x) != 0)
		__builtin_trap();
	X509_free(x); /* the responder holds its own reference */
	return r;
}

static void
check_request(const struct rf_ocsp_request *q)
{
	size_t i, l;

	if (q->n == 0 || q->n > RF_OCSP_MAX_IDS)
		__builtin_trap();
	for (i = 0; i < q->n; i++) {
		const char *s = q->ids[i].serial;

		if (q->ids[i].hash_len == 0 || q->ids[i].hash_len > 64)
			__builtin_trap();
		l = strnlen(s, sizeof(q->ids[i].serial));
		if (l == sizeof(q->ids[i].serial) || (l > 1 && s[0] == '0'))
			__builtin_trap();
		if (strspn(s, "0123456789abcdef") != l)
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rf_ocsp_answer ans;
	struct rf_ocsp_request q;
	int parsed;

	parsed = rf_ocsp_request_parse(data, size, &q) == 0;
	if (parsed)
		check_request(&q);
	if (rf_ocsp_respond(responder(), data, size, 1700000000, &ans) != 0)
		__builtin_trap();
	if (ans.http_status != 200 || ans.len != RF_OCSP_ERROR_LEN ||
	    ans.status == RF_OCSP_SUCCESSFUL ||
	    (ans.status == RF_OCSP_MALFORMED_REQUEST) == parsed)
		__builtin_trap();
	return 0;
}
