/*
 * The canonical leaf form (docs/audit-format.md): which bytes the checker
 * accepts, one case per rule, and every variant of an accepted leaf that
 * differs from it by one byte (flipped, dropped, or added) is refused. The
 * encoder writes what the checker accepts, escapes included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "audit/audit.h"

/* Columns of the cases below unless a case says otherwise. */
#define T 1700000000

static const struct leaf_case {
	const char *name;
	const char *data;
	int ok;
	const char *type, *key_id, *tenant; /* NULL: "sign", NULL, NULL */
	int64_t time;			    /* 0: T */
} cases[] = {
    {"minimal", "{\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 1, NULL,
	NULL, NULL, 0},
    {"all members",
	"{\"actor\":\"a\",\"detail\":\"d\",\"digest\":\"00\",\"key_id\":\"k\","
	"\"ref\":\"r\",\"source\":\"s\",\"tenant\":\"t\",\"time\":1700000000,"
	"\"type\":\"sign\",\"v\":1,\"what\":\"cert\"}",
	1, "sign", "k", "t", 0},
    {"escapes as jansson writes them",
	"{\"detail\":\"\\\" \\\\ \\b\\f\\n\\r\\t \\u0001\\u001F / \x7f "
	"\\u00E9\\uFFFF\\uD83D\\uDE00\",\"time\":1700000000,\"type\":"
	"\"sign\",\"v\":1}",
	1, NULL, NULL, NULL, 0},
    {"escaped columns",
	"{\"tenant\":\"caf\\u00E9\",\"time\":1700000000,\"type\":\"a\\\"b\","
	"\"v\":1}",
	1, "a\"b", NULL, "caf\xc3\xa9", 0},
    {"column beyond the BMP",
	"{\"tenant\":\"\\uD83D\\uDE00\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	1, NULL, NULL, "\xf0\x9f\x98\x80", 0},
    {"empty key_id column and member",
	"{\"key_id\":\"\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 1,
	NULL, "", NULL, 0},
    {"negative time", "{\"time\":-5,\"type\":\"sign\",\"v\":1}", 1, NULL, NULL,
	NULL, -5},
    {"time INT64_MIN",
	"{\"time\":-9223372036854775808,\"type\":\"sign\",\"v\":1}", 1, NULL,
	NULL, NULL, INT64_MIN},
    {"empty", "", 0, NULL, NULL, NULL, 0},
    {"array", "[1]", 0, NULL, NULL, NULL, 0},
    {"whitespace", "{\"time\":1700000000, \"type\":\"sign\",\"v\":1}", 0, NULL,
	NULL, NULL, 0},
    {"trailing newline", "{\"time\":1700000000,\"type\":\"sign\",\"v\":1}\n", 0,
	NULL, NULL, NULL, 0},
    {"keys unsorted", "{\"type\":\"sign\",\"time\":1700000000,\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"key twice",
	"{\"time\":1700000000,\"type\":\"sign\",\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"unknown member",
	"{\"time\":1700000000,\"type\":\"sign\",\"v\":1,\"x\":\"y\"}", 0, NULL,
	NULL, NULL, 0},
    {"escaped name", "{\"time\":1700000000,\"t\\u0079pe\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"no type", "{\"time\":1700000000,\"v\":1}", 0, NULL, NULL, NULL, 0},
    {"no time", "{\"type\":\"sign\",\"v\":1}", 0, NULL, NULL, NULL, 0},
    {"no version", "{\"time\":1700000000,\"type\":\"sign\"}", 0, NULL, NULL,
	NULL, 0},
    {"version 2", "{\"time\":1700000000,\"type\":\"sign\",\"v\":2}", 0, NULL,
	NULL, NULL, 0},
    {"version 1.0", "{\"time\":1700000000,\"type\":\"sign\",\"v\":1.0}", 0,
	NULL, NULL, NULL, 0},
    {"version 10", "{\"time\":1700000000,\"type\":\"sign\",\"v\":10}", 0, NULL,
	NULL, NULL, 0},
    {"version string", "{\"time\":1700000000,\"type\":\"sign\",\"v\":\"1\"}", 0,
	NULL, NULL, NULL, 0},
    {"time other than the column",
	"{\"time\":1700000001,\"type\":\"sign\",\"v\":1}", 0, NULL, NULL, NULL,
	0},
    {"time with a leading zero",
	"{\"time\":01700000000,\"type\":\"sign\",\"v\":1}", 0, NULL, NULL, NULL,
	0},
    {"time real", "{\"time\":1700000000.0,\"type\":\"sign\",\"v\":1}", 0, NULL,
	NULL, NULL, 0},
    {"time -0", "{\"time\":-0,\"type\":\"sign\",\"v\":1}", 0, NULL, NULL, NULL,
	0},
    {"time string", "{\"time\":\"1700000000\",\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"null member",
	"{\"tenant\":null,\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"number member",
	"{\"tenant\":1,\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0, NULL,
	NULL, NULL, 0},
    {"type other than the column",
	"{\"time\":1700000000,\"type\":\"issue\",\"v\":1}", 0, NULL, NULL, NULL,
	0},
    {"tenant column without member",
	"{\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0, NULL, NULL, "t",
	0},
    {"tenant member without column",
	"{\"tenant\":\"t\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"tenant column a prefix",
	"{\"tenant\":\"tt\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, "t", 0},
    {"tenant member a prefix",
	"{\"tenant\":\"t\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, "tt", 0},
    {"escaped column other than the member",
	"{\"tenant\":\"caf\\u00E9\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, "cafe", 0},
    {"raw UTF-8",
	"{\"detail\":\"caf\xc3\xa9\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"raw control character",
	"{\"detail\":\"a\tb\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"lower-case hex",
	"{\"detail\":\"\\u00e9\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"escaped slash",
	"{\"detail\":\"\\/\",\"time\":1700000000,\"type\":\"sign\",\"v\":1}", 0,
	NULL, NULL, NULL, 0},
    {"long form of \\n",
	"{\"detail\":\"\\u000A\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"escaped ASCII",
	"{\"detail\":\"\\u0041\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"escaped DEL",
	"{\"detail\":\"\\u007F\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"escaped NUL",
	"{\"detail\":\"\\u0000\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"lone high surrogate",
	"{\"detail\":\"\\uD83D\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"lone low surrogate",
	"{\"detail\":\"\\uDE00\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"surrogates reversed",
	"{\"detail\":\"\\uDE00\\uD83D\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"unknown escape",
	"{\"detail\":\"\\x41\",\"time\":1700000000,\"type\":\"sign\","
	"\"v\":1}",
	0, NULL, NULL, NULL, 0},
    {"unterminated string", "{\"time\":1700000000,\"type\":\"sign", 0, NULL,
	NULL, NULL, 0},
    {"unterminated escape", "{\"time\":1700000000,\"type\":\"\\u00", 0, NULL,
	NULL, NULL, 0},
    {"unterminated object", "{\"time\":1700000000,\"type\":\"sign\",\"v\":1", 0,
	NULL, NULL, NULL, 0},
};

static void
set_columns(const struct leaf_case *c, struct rf_leaf_rec *l)
{
	memset(l, 0, sizeof(*l));
	l->data = (const uint8_t *)c->data;
	l->len = strlen(c->data);
	l->type = c->type != NULL ? c->type : "sign";
	l->key_id = c->key_id;
	l->tenant = c->tenant;
	l->time = c->time != 0 ? c->time : T;
	if (strcmp(c->name, "time -0") == 0)
		l->time = 0; /* the one case whose column is 0 */
}

static void
test_cases(void **state)
{
	struct rf_leaf_rec l;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_columns(&cases[i], &l);
		r = rf_audit_leaf_check(&l);
		if ((r == 0) != cases[i].ok) {
			fprintf(
			    stderr, "case \"%s\": got %d\n", cases[i].name, r);
			fail();
		}
		if (r != 0)
			assert_int_equal(r, RF_ERR_MALFORMED);
	}
}

/*
 * One byte changed, dropped or added: never canonical and matching, in the
 * accepted cases whose every member is checked against a column (a change
 * of, say, "detail" gives another valid leaf: only its hash tells).
 */
static void
test_mutations(void **state)
{
	struct rf_leaf_rec l;
	uint8_t buf[512];
	size_t i, j, len;
	int bit;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!cases[i].ok ||
		    strstr(cases[i].data, "\"detail\"") != NULL ||
		    strstr(cases[i].data, "\"actor\"") != NULL)
			continue;
		set_columns(&cases[i], &l);
		len = l.len;
		assert_true(len + 1 <= sizeof(buf));
		l.data = buf;
		for (j = 0; j < len; j++) {
			for (bit = 0; bit < 8; bit++) {
				memcpy(buf, cases[i].data, len);
				buf[j] ^= (uint8_t)(1 << bit);
				assert_int_not_equal(
				    rf_audit_leaf_check(&l), 0);
			}
			/* Drop byte j. */
			memcpy(buf, cases[i].data, j);
			memcpy(buf + j, cases[i].data + j + 1, len - j - 1);
			l.len = len - 1;
			assert_int_not_equal(rf_audit_leaf_check(&l), 0);
			l.len = len;
		}
		/* A byte added at the end. */
		memcpy(buf, cases[i].data, len);
		buf[len] = ' ';
		l.len = len + 1;
		assert_int_not_equal(rf_audit_leaf_check(&l), 0);
	}
}

static void
test_encode_checks(void **state)
{
	static const char want[] =
	    "{\"detail\":\"\\\" \\\\ \\b\\f\\n\\r\\t \\u0001\\u001F / \x7f "
	    "\\u00E9\\uFFFF\\uD83D\\uDE00\",\"tenant\":\"caf\\u00E9\","
	    "\"time\":1700000000,\"type\":\"a\\\"b\",\"v\":1}";
	struct rf_audit_event ev;
	struct rf_leaf_rec l;
	uint8_t *d = NULL;
	size_t len;

	(void)state;
	memset(&ev, 0, sizeof(ev));
	ev.type = "a\"b";
	ev.tenant = "caf\xc3\xa9";
	ev.detail = "\" \\ \b\f\n\r\t \x01\x1f / \x7f \xc3\xa9\xef\xbf\xbf"
		    "\xf0\x9f\x98\x80";
	ev.time = T;
	assert_int_equal(rf_audit_encode(&ev, 1, &d, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(d, want, len);
	memset(&l, 0, sizeof(l));
	l.data = d;
	l.len = len;
	l.type = ev.type;
	l.tenant = ev.tenant;
	l.time = T;
	assert_int_equal(rf_audit_leaf_check(&l), 0);
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_encode_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
