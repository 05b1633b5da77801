/*
 * api_parse.c: the connector API's request bodies, untrusted (fuzzed by
 * fuzz/fuzz_connector_api.c). Strict: a JSON object, no duplicate or
 * unknown members, bounded sizes, names without traversal characters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca/ca.h"
#include "connector/connector.h"

/*
 * The member a duplicate-key error names: jansson says "duplicate object
 * key near '<the key as written>'". "" when the text is not of that form.
 */
static void
duplicate_name(const json_error_t *e, char out[48])
{
	const char *p = strstr(e->text, "near '");
	size_t n;

	out[0] = '\0';
	if (p == NULL)
		return;
	p += strlen("near '");
	if ((n = strlen(p)) < 2 || p[n - 1] != '\'')
		return;
	snprintf(out, 48, "%.*s", (int)(n - 1 < 40 ? n - 1 : 40), p);
}

static int
load(const uint8_t *body, size_t len, json_t **out)
{
	json_error_t e;
	char name[48];

	*out = NULL;
	if (len > RF_CONNECTOR_BODY_MAX)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "request body of %zu bytes: at most %d bytes", len,
		    RF_CONNECTOR_BODY_MAX);
	if ((*out = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
		 &e)) == NULL &&
	    json_error_code(&e) == json_error_duplicate_key) {
		duplicate_name(&e, name);
		return rf_err_set(RF_ERR_MALFORMED,
		    "duplicate member %s%sin the request body: give each "
		    "member once",
		    name, name[0] != '\0' ? " " : "");
	}
	if (*out == NULL)
		return rf_err_set(RF_ERR_MALFORMED,
		    "request body is not JSON (%.80s at %d): send a JSON "
		    "object",
		    e.text, e.position);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return rf_err_set(
		    RF_ERR_MALFORMED, "request body must be a JSON object");
	}
	return 0;
}

/* Every member of j is one of names[1..] (names[0]: them in words). */
static int
known_only(json_t *j, const char *const *names)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(j, k, v)
	{
		(void)v;
		for (i = 1; names[i] != NULL; i++)
			if (strcmp(k, names[i]) == 0)
				break;
		if (names[i] == NULL)
			return rf_err_set(RF_ERR_MALFORMED,
			    "unknown member \"%.40s\": this request takes "
			    "only %s",
			    k, names[0]);
	}
	return 0;
}

/* The optional "proof" member into out ("" without one): its syntax only;
 * keyd checks the rest (proof.c). */
static int
proof_member(json_t *j, char out[RF_PROOF_MAX + 1])
{
	struct rf_proof pf;
	json_t *v = json_object_get(j, "proof");
	const char *s;
	int r;

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if ((s = json_string_value(v)) == NULL)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\" must be a string, TIME.NONCE.SIGNATURE");
	if ((r = rf_proof_parse(s, strlen(s), &pf)) != 0)
		return r;
	snprintf(out, RF_PROOF_MAX + 1, "%s", s);
	return 0;
}

int
rf_connector_parse_assert(
    const uint8_t *body, size_t len, struct rf_assert_ask *out)
{
	static const char *const names[] = {
	    "\"connection\", \"x5t#S256\" and \"proof\"", "connection",
	    "x5t#S256", "proof", NULL};
	const char *c, *x, *slash;
	json_t *j = NULL;
	size_t tl, i;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = load(body, len, &j)) != 0 || (r = known_only(j, names)) != 0)
		goto out;
	r = RF_ERR_MALFORMED;
	if (json_object_get(j, "connection") == NULL) {
		r = rf_err_set(
		    r, "missing \"connection\": give it as \"TENANT/NAME\"");
		goto out;
	}
	if ((c = json_string_value(json_object_get(j, "connection"))) == NULL) {
		r = rf_err_set(r,
		    "\"connection\" must be a string, "
		    "\"TENANT/NAME\"");
		goto out;
	}
	if ((slash = strchr(c, '/')) == NULL) {
		r = rf_err_set(r, "\"connection\" must be TENANT/NAME");
		goto out;
	}
	if ((tl = (size_t)(slash - c)) > 64 ||
	    strlen(slash + 1) > RF_CONN_NAME_MAX) {
		r = rf_err_set(r,
		    "\"connection\": TENANT is at most 64 characters and "
		    "NAME at most %d",
		    RF_CONN_NAME_MAX);
		goto out;
	}
	memcpy(out->tenant, c, tl);
	out->tenant[tl] = '\0';
	snprintf(out->conn, sizeof(out->conn), "%s", slash + 1);
	/* Names are [A-Za-z0-9._-]; "." and ".." are refused too. */
	if (rf_ca_tenant_name_check(out->tenant) != 0 ||
	    rf_ca_tenant_name_check(out->conn) != 0 ||
	    strcmp(out->tenant, ".") == 0 || strcmp(out->tenant, "..") == 0 ||
	    strcmp(out->conn, ".") == 0 || strcmp(out->conn, "..") == 0 ||
	    strlen(c) != tl + 1 + strlen(out->conn)) {
		r = rf_err_set(r,
		    "\"connection\": TENANT (1-64) and NAME (1-63) are "
		    "characters of A-Z a-z 0-9 . _ - (no '/', '..' or control "
		    "characters)");
		goto out;
	}
	if ((x = json_object_get(j, "x5t#S256") != NULL
		    ? json_string_value(json_object_get(j, "x5t#S256"))
		    : "") == NULL ||
	    strlen(x) >= sizeof(out->x5t256)) {
		r = rf_err_set(
		    r, "\"x5t#S256\" must be a base64url thumbprint");
		goto out;
	}
	for (i = 0; x[i] != '\0'; i++)
		if (strchr(
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789-_",
			x[i]) == NULL) {
			r = rf_err_set(
			    r, "\"x5t#S256\" must be a base64url thumbprint");
			goto out;
		}
	snprintf(out->x5t256, sizeof(out->x5t256), "%s", x);
	r = proof_member(j, out->proof);
out:
	json_decref(j);
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

int
rf_connector_parse_renew(const uint8_t *body, size_t len, char **csr,
    size_t *csrlen, char proof[RF_PROOF_MAX + 1])
{
	static const char *const names[] = {
	    "\"csr\" and \"proof\"", "csr", "proof", NULL};
	const char *c;
	json_t *j = NULL;
	int r;

	*csr = NULL;
	*csrlen = 0;
	if ((r = load(body, len, &j)) != 0 || (r = known_only(j, names)) != 0 ||
	    (r = proof_member(j, proof)) != 0)
		goto out;
	if ((c = json_string_value(json_object_get(j, "csr"))) == NULL ||
	    *c == '\0') {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "missing \"csr\": give the PEM PKCS#10 request");
		goto out;
	}
	if ((*csr = strdup(c)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	*csrlen = strlen(c);
	r = 0;
out:
	json_decref(j);
	return r;
}

int
rf_connector_parse_session(const uint8_t *body, size_t len,
    char key[RF_PROOF_B64_32 + 1], char proof[RF_PROOF_MAX + 1])
{
	static const char *const names[] = {
	    "\"key\" and \"proof\"", "key", "proof", NULL};
	const char *k;
	json_t *j = NULL;
	int r;

	key[0] = '\0';
	if ((r = load(body, len, &j)) != 0 || (r = known_only(j, names)) != 0 ||
	    (r = proof_member(j, proof)) != 0)
		goto out;
	if (proof[0] == '\0') {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "missing \"proof\": sign one for purpose \"session\" "
		    "and the key (docs/connectors.md)");
		goto out;
	}
	k = json_string_value(json_object_get(j, "key"));
	if (k == NULL || strlen(k) != RF_PROOF_B64_32 ||
	    strspn(k,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789-_") != RF_PROOF_B64_32) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "\"key\" must be the session's X25519 public key: %d "
		    "characters of base64url",
		    RF_PROOF_B64_32);
		goto out;
	}
	memcpy(key, k, RF_PROOF_B64_32 + 1);
	r = 0;
out:
	if (r != 0)
		key[0] = '\0';
	json_decref(j);
	return r;
}
