/*
 * jwt.c: JWT client assertions for Entra ID certificate credentials.
 *
 * RFC 7515 5.1: the signing input is ASCII(BASE64URL(UTF8(header)) || '.'
 * || BASE64URL(payload)); RFC 7523 3 and Microsoft's "certificate
 * credentials" page give the members: header alg (PS256, RS256 accepted),
 * typ JWT, x5t#S256 (RFC 7515 4.1.8); claims aud (the tenant's v2.0 token
 * endpoint), iss = sub = the application (client) id, jti a GUID, nbf, iat,
 * exp at most 10 minutes later.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "connector/connector.h"

#define AUD_FMT "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
#define CLOCK_SKEW 60

int
rf_jwt_scheme(const char *alg, enum rf_sig_scheme *scheme)
{
	if (strcmp(alg, "PS256") == 0)
		*scheme = RF_SIG_RSA_PSS;
	else if (strcmp(alg, "RS256") == 0)
		*scheme = RF_SIG_DEFAULT; /* RSASSA-PKCS1-v1_5 with SHA-256 */
	else
		return rf_err_set(RF_ERR_ARG,
		    "JWT algorithm '%.16s': use PS256 or RS256", alg);
	return 0;
}

int
rf_jwt_guid(char out[37])
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return rf_err_set(RF_ERR_INTERNAL, "no random bytes for a jti");
	rf_jwt_guid_of(b, out);
	return 0;
}

void
rf_jwt_guid_of(const uint8_t rnd[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t i, o = 0;

	memcpy(b, rnd, sizeof(b));
	/* RFC 9562 5.4: version 4 in the high nibble of octet 6, variant
	 * 10xx in octet 8. */
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	/* 8-4-4-4-12 hex digits. */
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

int
rf_connector_guid(const char *in, const char *what, char out[37])
{
	size_t i;

	if (in == NULL || strlen(in) != 36)
		goto bad;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (in[i] != '-')
				goto bad;
		} else if (!isxdigit((unsigned char)in[i]))
			goto bad;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[36] = '\0';
	return 0;
bad:
	out[0] = '\0';
	return rf_err_set(RF_ERR_ARG,
	    "%s '%.40s' is not a GUID: give it as "
	    "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (Entra admin center, "
	    "Overview)",
	    what, in != NULL ? in : "");
}

/* BASE64URL of s into a new string. */
static char *
b64s(const char *s)
{
	size_t l = strlen(s);
	char *o = malloc(rf_b64url_len(l) + 1);

	if (o != NULL)
		rf_b64url((const uint8_t *)s, l, o);
	return o;
}

/* The header and claims JSON texts, member order fixed. */
static int
texts(const struct rf_entra_rec *reg, const char *x5t256, const char *jti,
    int64_t now, int64_t exp, char hdr[160], char cl[512])
{
	char aud[128];
	int n;

	snprintf(aud, sizeof(aud), AUD_FMT, reg->tenant_id);
	n = snprintf(hdr, 160,
	    "{\"alg\":\"%s\",\"typ\":\"JWT\",\"x5t#S256\":\"%s\"}",
	    reg->jwt_alg, x5t256);
	if (n < 0 || n >= 160)
		return rf_err_set(RF_ERR_ARG, "JWT header too long");
	n = snprintf(cl, 512,
	    "{\"aud\":\"%s\",\"exp\":%lld,\"iat\":%lld,\"iss\":\"%s\","
	    "\"jti\":\"%s\",\"nbf\":%lld,\"sub\":\"%s\"}",
	    aud, (long long)exp, (long long)now, reg->client_id, jti,
	    (long long)now, reg->client_id);
	if (n < 0 || n >= 512)
		return rf_err_set(RF_ERR_ARG, "JWT claims too long");
	return 0;
}

int
rf_jwt_build(const struct rf_entra_rec *reg, const char *x5t256,
    const char *jti, int64_t now, int lifetime, char **msg)
{
	char hdr[160], cl[512], *h = NULL, *c = NULL;
	size_t l;
	int r;

	*msg = NULL;
	if (lifetime < 1 || lifetime > RF_JWT_MAX_LIFETIME)
		return rf_err_set(RF_ERR_ARG,
		    "assertion lifetime %d s: use 1 to %d", lifetime,
		    RF_JWT_MAX_LIFETIME);
	if ((r = texts(reg, x5t256, jti, now, now + lifetime, hdr, cl)) != 0)
		return r;
	if ((h = b64s(hdr)) == NULL || (c = b64s(cl)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	l = strlen(h) + 1 + strlen(c) + 1;
	if ((*msg = malloc(l)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	snprintf(*msg, l, "%s.%s", h, c);
	r = 0;
out:
	free(h);
	free(c);
	return r;
}

int
rf_jwt_join(const char *msg, const uint8_t *sig, size_t siglen, char **jws)
{
	size_t ml = strlen(msg), l = ml + 1 + rf_b64url_len(siglen) + 1;

	if ((*jws = malloc(l)) == NULL)
		return RF_ERR_ALLOC;
	memcpy(*jws, msg, ml);
	(*jws)[ml] = '.';
	rf_b64url(sig, siglen, *jws + ml + 1);
	return 0;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode unpadded base64url (RFC 4648 5); out has len * 3 / 4 + 1 bytes.
 * Unused low bits must be zero, so that only the canonical text decodes.
 */
int
rf_b64url_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *olen)
{
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0, v;

	if (len % 4 == 1)
		return RF_ERR_MALFORMED;
	for (i = 0; i < len; i++) {
		if ((v = b64val(in[i])) < 0)
			return RF_ERR_MALFORMED;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return RF_ERR_MALFORMED;
	*olen = o;
	return 0;
}

/*
 * The decoded part must be byte for byte the text ringfence makes: the
 * check then needs no JSON parser's leniency, and nothing else (another
 * member, another order, white space, an escape) can pass.
 */
static int
part_is(const uint8_t *p, size_t len, const char *want)
{
	uint8_t buf[768];
	size_t l;

	if (len > (sizeof(buf) - 1) * 4 / 3 ||
	    rf_b64url_decode(p, len, buf, &l) != 0)
		return 0;
	return l == strlen(want) && memcmp(buf, want, l) == 0;
}

/* The claims' jti and times, from the decoded JSON (jansson). */
static int
claims_read(
    const uint8_t *p, size_t len, char jti[40], int64_t *iat, int64_t *exp)
{
	uint8_t buf[768];
	json_t *j = NULL;
	json_error_t e;
	const char *s;
	size_t l;
	int r = RF_ERR_MALFORMED;

	if (len > (sizeof(buf) - 1) * 4 / 3 ||
	    rf_b64url_decode(p, len, buf, &l) != 0)
		return r;
	if ((j = json_loadb(
		 (const char *)buf, l, JSON_REJECT_DUPLICATES, &e)) == NULL ||
	    !json_is_object(j) ||
	    (s = json_string_value(json_object_get(j, "jti"))) == NULL ||
	    strlen(s) != 36 || !json_is_integer(json_object_get(j, "iat")) ||
	    !json_is_integer(json_object_get(j, "exp")))
		goto out;
	snprintf(jti, 40, "%s", s);
	*iat = json_integer_value(json_object_get(j, "iat"));
	*exp = json_integer_value(json_object_get(j, "exp"));
	r = 0;
out:
	json_decref(j);
	return r;
}

int
rf_jwt_check(const struct rf_entra_rec *reg, const char *x5t256,
    const uint8_t *msg, size_t len, int64_t now, int lifetime, char jti[40])
{
	char hdr[160], cl[512], guid[37];
	const uint8_t *dot;
	int64_t iat, exp;
	size_t hl;
	int r;

	jti[0] = '\0';
	if ((dot = memchr(msg, '.', len)) == NULL)
		return rf_err_set(RF_ERR_MALFORMED, "not a JWS signing input");
	hl = (size_t)(dot - msg);
	if ((r = claims_read(dot + 1, len - hl - 1, jti, &iat, &exp)) != 0)
		return rf_err_set(r, "claims are not a JSON object with jti");
	/* jti: a version-4 GUID. */
	if (rf_connector_guid(jti, "jti", guid) != 0 ||
	    strcmp(guid, jti) != 0 || guid[14] != '4' ||
	    strchr("89ab", guid[19]) == NULL)
		return rf_err_set(RF_ERR_MALFORMED, "jti is not a v4 GUID");
	if (iat < now - CLOCK_SKEW || iat > now + CLOCK_SKEW)
		return rf_err_set(RF_ERR_MALFORMED, "iat is not now");
	if (exp - iat != lifetime || lifetime < 1 ||
	    lifetime > RF_JWT_MAX_LIFETIME)
		return rf_err_set(RF_ERR_MALFORMED,
		    "exp is not nbf + the assertion lifetime (at most 10 "
		    "minutes)");
	if ((r = texts(reg, x5t256, jti, iat, exp, hdr, cl)) != 0)
		return r;
	if (!part_is(msg, hl, hdr))
		return rf_err_set(RF_ERR_MALFORMED,
		    "header is not the registration's (alg, typ, x5t#S256)");
	if (!part_is(dot + 1, len - hl - 1, cl))
		return rf_err_set(RF_ERR_MALFORMED,
		    "claims are not the registration's (aud, iss, sub, nbf)");
	return 0;
}
