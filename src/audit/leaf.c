/*
 * leaf.c: the canonical leaf encoding (docs/audit-format.md): writing an
 * event in it, and checking that stored bytes are in it.
 *
 * The canonical form is what jansson writes with JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENSURE_ASCII. Writing: events whose strings need no
 * escape (nearly all) are written here directly, byte for byte what
 * jansson would write; any other event goes through jansson. Checking:
 * jansson can parse a leaf but cannot say whether its bytes were the
 * canonical ones, so the check is a small recogniser of exactly the
 * canonical form (grammar above rf_audit_leaf_check), reading the bytes in
 * place. fuzz/fuzz_audit_leaf.c holds it against the jansson round trip
 * (parse, re-encode, compare) that it replaced.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit/audit.h"

/* Members in canonical order: names sorted by byte value. */
enum member {
	M_ACTOR,
	M_DETAIL,
	M_DIGEST,
	M_KEY_ID,
	M_REF,
	M_SOURCE,
	M_TENANT,
	M_TIME,
	M_TYPE,
	M_V,
	M_WHAT,
	NMEMBERS
};

static const struct {
	const char *name;
	size_t len;
} members[NMEMBERS] = {
#define MEMBER(s)                                                              \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}
    MEMBER("actor"),
    MEMBER("detail"),
    MEMBER("digest"),
    MEMBER("key_id"),
    MEMBER("ref"),
    MEMBER("source"),
    MEMBER("tenant"),
    MEMBER("time"),
    MEMBER("type"),
    MEMBER("v"),
    MEMBER("what"),
#undef MEMBER
};

/* The string members of an event, in the order of struct rf_audit_event. */
static const enum member event_order[] = {
    M_TYPE,
    M_KEY_ID,
    M_TENANT,
    M_WHAT,
    M_REF,
    M_DIGEST,
    M_ACTOR,
    M_SOURCE,
    M_DETAIL,
};
#define NFIELDS (sizeof(event_order) / sizeof(event_order[0]))

/* The string value of member m (NULL: absent, or not a string member). */
static const char *
event_value(const struct rf_audit_event *ev, enum member m)
{
	switch (m) {
	case M_ACTOR:
		return ev->actor;
	case M_DETAIL:
		return ev->detail;
	case M_DIGEST:
		return ev->digest;
	case M_KEY_ID:
		return ev->key_id;
	case M_REF:
		return ev->ref;
	case M_SOURCE:
		return ev->source;
	case M_TENANT:
		return ev->tenant;
	case M_TYPE:
		return ev->type;
	case M_WHAT:
		return ev->what;
	default:
		return NULL;
	}
}

/*
 * A byte that a canonical string holds as itself: ASCII from space to DEL
 * (0x20-0x7F, tested as c - 0x20 < 0x60 unsigned) except '"' and '\'.
 * jansson escapes only those two, control characters and, with
 * JSON_ENSURE_ASCII, non-ASCII; DEL and '/' stay as they are.
 */
static int
plain_byte(uint8_t c)
{
	return (uint8_t)(c - 0x20) < 0x60 && c != '"' && c != '\\';
}

/* The decimal of v as jansson writes it ("%lld"); returns the length. */
static size_t
i64_dec(int64_t v, char out[21])
{
	char tmp[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		out[i++] = '-';
	while (n > 0)
		out[i++] = tmp[--n];
	return i;
}

#define ENCODE_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

/* The general case, through jansson. *out is malloc'd. */
static int
encode_jansson(
    const struct rf_audit_event *ev, int64_t time, char **out, size_t *len)
{
	json_t *o = NULL, *s;
	const char *v;
	char *txt = NULL;
	size_t i;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if ((o = json_object()) == NULL ||
	    json_object_set_new(o, "v", json_integer(RF_AUDIT_FORMAT)) != 0 ||
	    json_object_set_new(o, "time", json_integer(time)) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < NFIELDS; i++) {
		if ((v = event_value(ev, event_order[i])) == NULL)
			continue;
		if (strlen(v) > RF_AUDIT_LEAF_MAX) {
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "audit event field %s is too long",
			    members[event_order[i]].name);
			goto out;
		}
		if ((s = json_string(v)) == NULL) {
			r = rf_err_set(RF_ERR_ARG,
			    "audit event field %s is not valid UTF-8",
			    members[event_order[i]].name);
			goto out;
		}
		if (json_object_set_new(o, members[event_order[i]].name, s) !=
		    0) {
			r = RF_ERR_ALLOC;
			goto out;
		}
	}
	if ((txt = json_dumps(o, ENCODE_FLAGS)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	*len = strlen(txt);
	*out = txt; /* owned by the caller */
	txt = NULL;
	r = 0;
out:
	free(txt);
	json_decref(o);
	return r;
}

/*
 * docs/audit-format.md: one JSON object, keys sorted, no whitespace, ASCII
 * only (JSON \u escapes), "v" the format version, "time" an integer, the
 * other members strings, absent when NULL.
 */
int
rf_audit_encode(
    const struct rf_audit_event *ev, int64_t now, uint8_t **out, size_t *len)
{
	const char *v;
	char dec[21], *txt = NULL;
	const uint8_t *q;
	uint8_t *d = NULL, *p;
	size_t need = 2, n = 0, i, declen;
	int64_t time;
	int r, plain = 1;

	*out = NULL;
	*len = 0;
	if (ev == NULL || ev->type == NULL || *ev->type == '\0')
		return rf_err_set(RF_ERR_ARG, "audit event without a type");
	time = ev->time != 0 ? ev->time : now;
	declen = i64_dec(time, dec);
	/* In the order, and with the errors, of encode_jansson. */
	for (i = 0; i < NFIELDS && plain; i++) {
		if ((v = event_value(ev, event_order[i])) == NULL)
			continue;
		for (q = (const uint8_t *)v; *q != '\0' && plain_byte(*q); q++)
			;
		plain = *q == '\0';
		if ((n = (size_t)(q - (const uint8_t *)v)) > RF_AUDIT_LEAF_MAX)
			return rf_err_set(RF_ERR_TOO_LARGE,
			    "audit event field %s is too long",
			    members[event_order[i]].name);
		need += members[event_order[i]].len + n + 6; /* "":"", */
	}
	if (!plain) {
		if ((r = encode_jansson(ev, time, &txt, &n)) != 0)
			return r;
		d = (uint8_t *)txt;
		goto done;
	}
	/*
	 * Every string is plain: {"name":"value",...,"time":N,...,"v":1},
	 * the members in order, byte for byte what jansson writes.
	 */
	need += sizeof("\"time\":,\"v\":1") + declen;
	if ((d = malloc(need)) == NULL)
		return RF_ERR_ALLOC;
	p = d;
	*p++ = '{';
	for (i = 0; i < NMEMBERS; i++) {
		if (i == M_TIME) {
			memcpy(p, "\"time\":", 7);
			memcpy(p + 7, dec, declen);
			p += 7 + declen;
		} else if (i == M_V) {
			memcpy(p, "\"v\":1", 5);
			p += 5;
		} else if ((v = event_value(ev, (enum member)i)) != NULL) {
			*p++ = '"';
			memcpy(p, members[i].name, members[i].len);
			p += members[i].len;
			memcpy(p, "\":\"", 3);
			p += 3;
			n = strlen(v);
			memcpy(p, v, n);
			p += n;
			*p++ = '"';
		} else
			continue;
		*p++ = ',';
	}
	p[-1] = '}';
	n = (size_t)(p - d);
done:
	if (n > RF_AUDIT_LEAF_MAX) {
		free(d);
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "audit event encodes to more than %d bytes",
		    RF_AUDIT_LEAF_MAX);
	}
	*out = d; /* owned by the caller */
	*len = n;
	return 0;
}

/* Four upper-case hex digits (as jansson writes \u escapes), or -1. */
static long
hex4_upper(const uint8_t *p)
{
	long v = 0;
	int i, d;

	for (i = 0; i < 4; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'A' && p[i] <= 'F')
			d = p[i] - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* UTF-8 of a code point (RFC 3629); returns the length. */
static size_t
utf8_put(long cp, uint8_t out[4])
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | cp >> 6);
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xe0 | cp >> 12);
		out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (uint8_t)(0xf0 | cp >> 18);
	out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * One canonical escape at p (p[0] is '\'), at most end: its code point
 * in *cp and its length, or 0 if it is not the escape jansson writes for
 * that code point.
 */
static size_t
escape(const uint8_t *p, const uint8_t *end, long *cp)
{
	long lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"':
	case '\\':
		*cp = p[1];
		return 2;
	case 'b':
		*cp = '\b';
		return 2;
	case 'f':
		*cp = '\f';
		return 2;
	case 'n':
		*cp = '\n';
		return 2;
	case 'r':
		*cp = '\r';
		return 2;
	case 't':
		*cp = '\t';
		return 2;
	case 'u':
		break;
	default:
		return 0; /* "\/" included: jansson writes '/' as it is */
	}
	if (end - p < 6 || (*cp = hex4_upper(p + 2)) < 0)
		return 0;
	/* U+0000 is refused (no JSON_ALLOW_NUL); the others have \b etc. */
	if (*cp == 0 || *cp == '\b' || *cp == '\f' || *cp == '\n' ||
	    *cp == '\r' || *cp == '\t' || (*cp >= 0x20 && *cp < 0x80))
		return 0;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return 0; /* a low surrogate alone */
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 6;
	/* Beyond the BMP: a high then a low surrogate (RFC 8259 7). */
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
	    (lo = hex4_upper(p + 8)) < 0xdc00 || lo > 0xdfff)
		return 0;
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 12;
}

/*
 * A canonical string from *pp (just after its opening quote) to its
 * closing quote; *pp is left after that. *same says whether the string's
 * value equals want (a column, NUL-ended; never when want is NULL). -1 if
 * not canonical.
 */
static int
string(const uint8_t **pp, const uint8_t *end, const char *want, int *same)
{
	const uint8_t *p = *pp, *w = (const uint8_t *)want;
	uint8_t u[4];
	size_t n, i;
	long cp;

	for (;;) {
		/* The common case: a run of bytes that stand for themselves. */
		while (w != NULL && p < end && plain_byte(*p))
			w = *w == *p++ ? w + 1 : NULL;
		while (p < end && plain_byte(*p))
			p++;
		if (p == end)
			return -1;
		if (*p == '"')
			break;
		if (*p != '\\' || (n = escape(p, end, &cp)) == 0)
			return -1; /* control character, non-ASCII, escape */
		p += n;
		if (w == NULL)
			continue;
		/* A decoded value never holds NUL: w stops at its end. */
		n = utf8_put(cp, u);
		for (i = 0; i < n && w != NULL; i++)
			w = *w == u[i] ? w + 1 : NULL;
	}
	*same = w != NULL && *w == '\0';
	*pp = p + 1;
	return 0;
}

/*
 * The canonical leaf, byte for byte (docs/audit-format.md):
 *
 *   leaf    = "{" member *("," member) "}"     nothing after it
 *   member  = DQUOTE name DQUOTE ":" value     names in byte order, once
 *   name    = one of members[] above
 *   "v"     : "1"
 *   "time"  : the decimal of the time column ("-"? digits, no leading 0)
 *   others  : DQUOTE *(plain / escape) DQUOTE
 *   plain   = %x20-21 / %x23-5B / %x5D-7F
 *   escape  = "\" (DQUOTE / "\" / "b" / "f" / "n" / "r" / "t")
 *           / "\u" 4UPHEX     U+0001-001F without those five, U+0080-FFFF
 *                             without surrogates
 *           / "\u" 4UPHEX "\u" 4UPHEX    a surrogate pair, U+10000 and up
 *
 * "v", "time" and "type" must be present; the type, key_id and tenant
 * columns must equal the values (absent: the column NULL or empty).
 */
int
rf_audit_leaf_check(const struct rf_leaf_rec *l)
{
	const uint8_t *p, *end, *name;
	const char *col;
	char dec[21];
	size_t declen;
	int m, prev = -1, same, is_col, seen = 0;

	if (l->len == 0 || l->len > RF_AUDIT_LEAF_MAX || l->data == NULL)
		return RF_ERR_MALFORMED;
	p = l->data;
	end = p + l->len;
	if (*p++ != '{')
		return RF_ERR_MALFORMED;
	for (;;) {
		if (p == end || *p++ != '"')
			return RF_ERR_MALFORMED;
		for (name = p; p < end && *p != '"'; p++)
			;
		if (end - p < 2 || p[1] != ':')
			return RF_ERR_MALFORMED;
		/* In order: a name before prev is out of order or repeated. */
		for (m = prev + 1; m < NMEMBERS; m++)
			if (members[m].len == (size_t)(p - name) &&
			    memcmp(members[m].name, name, members[m].len) == 0)
				break;
		if (m == NMEMBERS)
			return RF_ERR_MALFORMED;
		prev = m;
		seen |= 1 << m;
		p += 2;
		if (m == M_V) {
			_Static_assert(RF_AUDIT_FORMAT == 1, "v is one digit");
			if (p == end || *p++ != '1')
				return RF_ERR_MALFORMED;
		} else if (m == M_TIME) {
			declen = i64_dec(l->time, dec);
			if ((size_t)(end - p) < declen ||
			    memcmp(p, dec, declen) != 0)
				return RF_ERR_MALFORMED;
			p += declen;
		} else {
			is_col = m == M_TYPE || m == M_KEY_ID || m == M_TENANT;
			col = m == M_TYPE   ? l->type
			    : m == M_KEY_ID ? l->key_id
					    : l->tenant;
			/* A column with no value cannot equal a present one. */
			if (is_col && col == NULL)
				return RF_ERR_MALFORMED;
			if (p == end || *p++ != '"' ||
			    string(&p, end, is_col ? col : NULL, &same) != 0 ||
			    (is_col && !same))
				return RF_ERR_MALFORMED;
		}
		if (p == end)
			return RF_ERR_MALFORMED;
		if (*p == '}')
			break;
		if (*p++ != ',')
			return RF_ERR_MALFORMED;
	}
	if (p + 1 != end)
		return RF_ERR_MALFORMED; /* trailing bytes */
	if ((seen & (1 << M_V | 1 << M_TIME | 1 << M_TYPE)) !=
	    (1 << M_V | 1 << M_TIME | 1 << M_TYPE))
		return RF_ERR_MALFORMED;
	if ((!(seen & 1 << M_KEY_ID) && l->key_id != NULL &&
		*l->key_id != '\0') ||
	    (!(seen & 1 << M_TENANT) && l->tenant != NULL &&
		*l->tenant != '\0'))
		return RF_ERR_MALFORMED;
	return 0;
}
