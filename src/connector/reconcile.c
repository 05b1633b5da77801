/*
 * reconcile.c: the relying party's own log against ours. Every sign-in of
 * an Entra service-principal sign-in export that used a ringfence
 * credential must be explained by an assertion we signed: same credential,
 * the sign-in within the assertion's validity, from the source network
 * (/24, /64) the assertion was asked from.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "connector/connector.h"
#include "store/store.h"

#define SKEW 300 /* s of clock difference allowed either way */

struct cred {
	char serial[41], tenant[128], x5t[32], x5t256[48];
	int revoked;
	int64_t revoked_at;
};

/*
 * Every certificate's thumbprints, read in one pass over the store when
 * the first sign-in names a credential, and sorted both ways: an export
 * of thousands of sign-ins against an estate of 36,000 certificates is
 * one read of the store, not one per sign-in.
 */
struct creds {
	struct cred *v;
	size_t n, cap;
	const struct cred **by1, **by256; /* sorted by x5t, by x5t256 */
	int loaded;
};

static int
creds_add(void *arg, const struct rf_cert_rec *c)
{
	struct creds *cs = arg;
	struct cred *d;

	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? 2 * cs->cap : 1024;

		if ((d = reallocarray(cs->v, cap, sizeof(*d))) == NULL)
			return RF_ERR_ALLOC;
		cs->v = d;
		cs->cap = cap;
	}
	d = &cs->v[cs->n++];
	snprintf(d->serial, sizeof(d->serial), "%s", c->serial);
	snprintf(d->tenant, sizeof(d->tenant), "%s", c->tenant);
	snprintf(d->x5t, sizeof(d->x5t), "%s", c->x5t);
	snprintf(d->x5t256, sizeof(d->x5t256), "%s", c->x5t256);
	d->revoked = c->revoked;
	d->revoked_at = c->revoked_at;
	return 0;
}

static int
by_x5t(const void *a, const void *b)
{
	return strcmp((*(const struct cred *const *)a)->x5t,
	    (*(const struct cred *const *)b)->x5t);
}

static int
by_x5t256(const void *a, const void *b)
{
	return strcmp((*(const struct cred *const *)a)->x5t256,
	    (*(const struct cred *const *)b)->x5t256);
}

static void
creds_free(struct creds *cs)
{
	free(cs->v);
	free(cs->by1);
	free(cs->by256);
	memset(cs, 0, sizeof(*cs));
}

static int
creds_load(struct rf_store *st, struct creds *cs)
{
	size_t i;
	int r;

	if (cs->loaded)
		return 0;
	if ((r = rf_store_cert_foreach(st, NULL, creds_add, cs)) != 0)
		return r;
	if ((cs->by1 = calloc(cs->n + 1, sizeof(*cs->by1))) == NULL ||
	    (cs->by256 = calloc(cs->n + 1, sizeof(*cs->by256))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < cs->n; i++)
		cs->by1[i] = cs->by256[i] = &cs->v[i];
	qsort(cs->by1, cs->n, sizeof(*cs->by1), by_x5t);
	qsort(cs->by256, cs->n, sizeof(*cs->by256), by_x5t256);
	cs->loaded = 1;
	return 0;
}

/* The thumbprint as Entra shows it (hex SHA-1 or SHA-256, any case) or as
 * base64url x5t / x5t#S256. */
static int
lookup(struct rf_store *st, struct creds *cs, const char *tp, struct cred *c)
{
	const struct cred *const *hit = NULL;
	struct cred key;
	const struct cred *kp = &key;
	uint8_t b[32];
	size_t l = strlen(tp), n;
	int r;

	if ((r = creds_load(st, cs)) != 0)
		return r;
	memset(&key, 0, sizeof(key));
	if ((l == 40 || l == 64) && rf_unhex(tp, b, sizeof(b), &n) == 0) {
		if (n == 20) {
			rf_b64url(b, n, key.x5t);
			hit = bsearch(&kp, cs->by1, cs->n, sizeof(kp), by_x5t);
		} else {
			rf_b64url(b, n, key.x5t256);
			hit = bsearch(
			    &kp, cs->by256, cs->n, sizeof(kp), by_x5t256);
		}
	} else if (l < sizeof(key.x5t)) {
		snprintf(key.x5t, sizeof(key.x5t), "%s", tp);
		hit = bsearch(&kp, cs->by1, cs->n, sizeof(kp), by_x5t);
	} else if (l < sizeof(key.x5t256)) {
		snprintf(key.x5t256, sizeof(key.x5t256), "%s", tp);
		hit = bsearch(&kp, cs->by256, cs->n, sizeof(kp), by_x5t256);
	}
	if (hit == NULL)
		return RF_ERR_NOT_FOUND;
	*c = **hit;
	return 0;
}

struct explain {
	const char *ip;
	int64_t t;
	int in_time, from_net;
	char conn[200];
};

static int
explain_one(void *arg, const struct rf_assertion_rec *a)
{
	struct explain *e = arg;
	char n1[64], n2[64];

	if (e->t < a->time - SKEW || e->t > a->exp + SKEW)
		return 0;
	e->in_time = 1;
	snprintf(e->conn, sizeof(e->conn), "%s/%s", a->tenant, a->conn);
	/* An address that is not one matches only the same text. */
	if (rf_ip_network(a->source, n1) == rf_ip_network(e->ip, n2) &&
	    strcmp(n1, n2) == 0) {
		e->from_net = 1;
		return 1;
	}
	return 0;
}

/*
 * A field of the export as the text report shows it: printable ASCII, at
 * most cap - 1 bytes, each other byte as '?'. The file is another
 * service's, and a newline in a field would forge a line of the report.
 */
static const char *
shown(const char *in, char *out, size_t cap)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < cap; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
	return out;
}

/* RFC 3339 UTC ("2026-12-04T07:05:43Z", fractions allowed). */
static int
parse_time(const char *s, int64_t *t)
{
	struct tm tm;
	const char *e;

	memset(&tm, 0, sizeof(tm));
	/* strptime skips white space before each number: none is taken. */
	if (s == NULL || strspn(s, "0123456789-T:.Z+") != strlen(s) ||
	    (e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return RF_ERR_MALFORMED;
	if (*e == '.')
		for (e++; isdigit((unsigned char)*e); e++)
			;
	if (strcmp(e, "Z") != 0 && strcmp(e, "+00:00") != 0)
		return RF_ERR_MALFORMED;
	*t = (int64_t)timegm(&tm);
	return 0;
}

int
rf_connector_reconcile(struct rf_store *st, const uint8_t *json, size_t len,
    int as_json, FILE *out, size_t *unexplained)
{
	json_t *root = NULL, *arr, *s, *res = NULL;
	json_error_t e;
	struct explain ex;
	struct creds cs;
	struct cred c;
	const char *tp, *ip, *when, *why, *sid;
	char sip[64], ssid[64];
	size_t i;
	int64_t t;
	int r;

	*unexplained = 0;
	memset(&cs, 0, sizeof(cs));
	if ((root = json_loadb((const char *)json, len, 0, &e)) == NULL)
		return rf_err_set(RF_ERR_MALFORMED,
		    "sign-in export is not JSON (%.80s, line %d): export the "
		    "sign-ins as JSON (Graph auditLogs/signIns, or the admin "
		    "center's Download JSON)",
		    e.text, e.line);
	arr = json_is_array(root) ? root : json_object_get(root, "value");
	if (!json_is_array(arr)) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "sign-in export: expected an array of sign-ins or an "
		    "object with \"value\"");
		goto out;
	}
	res = as_json ? json_array() : NULL;
	json_array_foreach(arr, i, s)
	{
		tp = json_string_value(
		    json_object_get(s, "servicePrincipalCredentialThumbprint"));
		ip = json_string_value(json_object_get(s, "ipAddress"));
		when = json_string_value(json_object_get(s, "createdDateTime"));
		/* Entra's own id of the sign-in, to find it there. */
		if ((sid = json_string_value(json_object_get(s, "id"))) == NULL)
			sid = "";
		if (tp == NULL || *tp == '\0')
			continue; /* no certificate credential named */
		if ((r = lookup(st, &cs, tp, &c)) == RF_ERR_NOT_FOUND)
			continue; /* not one of ours */
		if (r != 0)
			goto out;
		if (ip == NULL || parse_time(when, &t) != 0) {
			/* Counted from 1, as a reader counts them. */
			r = rf_err_set(RF_ERR_MALFORMED,
			    "sign-in %zu%s%s%s: %s; a sign-in "
			    "with a ringfence credential needs ipAddress and "
			    "createdDateTime (RFC 3339 UTC, as "
			    "2026-12-04T07:05:43Z)",
			    i + 1, *sid != '\0' ? " (id " : "",
			    shown(sid, ssid, sizeof(ssid)),
			    *sid != '\0' ? ")" : "",
			    ip == NULL	       ? "no ipAddress"
				: when == NULL ? "no createdDateTime"
					       : "createdDateTime is not RFC "
						 "3339 UTC");
			goto out;
		}
		memset(&ex, 0, sizeof(ex));
		ex.ip = ip;
		ex.t = t;
		if ((r = rf_store_assertion_foreach(st, c.x5t256,
			 t - RF_JWT_MAX_LIFETIME - 2 * SKEW, t + SKEW,
			 explain_one, &ex)) < 0)
			goto out;
		if (c.revoked && t > c.revoked_at + SKEW)
			why = "retired credential: revoked before this sign-in";
		else if (!ex.in_time)
			why = "no assertion of ours was valid at that time";
		else if (!ex.from_net)
			why =
			    "unknown source: no assertion was asked from this "
			    "network";
		else
			continue;
		(*unexplained)++;
		if (res != NULL)
			json_array_append_new(res,
			    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id",
				sid, "time", when, "ipAddress", ip,
				"thumbprint", tp, "serial", c.serial, "tenant",
				c.tenant, "reason", why));
		else
			fprintf(out,
			    "%s %s sign-in %s credential %s (tenant %s): "
			    "%s\n",
			    when, shown(ip, sip, sizeof(sip)),
			    shown(*sid != '\0' ? sid : "-", ssid, sizeof(ssid)),
			    c.serial, c.tenant, why);
	}
	if (res != NULL) {
		json_dumpf(res, out, JSON_COMPACT);
		fputc('\n', out);
	}
	r = 0;
out:
	creds_free(&cs);
	json_decref(res);
	json_decref(root);
	return r;
}
