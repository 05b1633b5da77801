/*
 * Fuzz the audit leaf checker (rf_audit_leaf_check) and encoder
 * (rf_audit_encode) differentially against jansson's round trip, the
 * definition of the canonical form (docs/audit-format.md):
 *
 *   1. the input as leaf data, with no columns, with fixed columns, and
 *      with the columns jansson reads from it: the checker must accept
 *      exactly when jansson parses the data (strictly, one object) into a
 *      known event that re-encodes to the same bytes and whose columns
 *      agree;
 *   2. the input split at NUL bytes into the fields of an event: the
 *      encoder must give jansson's bytes (or fail as jansson does), and
 *      what it writes must pass the checker.
 *
 * Any disagreement aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static const char *const names[] = {"type", "key_id", "tenant", "what", "ref",
    "digest", "actor", "source", "detail"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static int
ref_col(const char *col, json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL)
		return col == NULL || *col == '\0';
	return col != NULL && strcmp(col, json_string_value(v)) == 0;
}

/* The jansson check that rf_audit_leaf_check replaced: 1 if accepted. */
static int
ref_check(const struct rf_leaf_rec *l)
{
	json_t *o, *v;
	const char *k;
	char *txt = NULL;
	size_t i;
	int ok = 0;

	if (l->len == 0 || l->len > RF_AUDIT_LEAF_MAX || l->data == NULL)
		return 0;
	if ((o = json_loadb((const char *)l->data, l->len,
		 JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	if (!json_is_object(o))
		goto out;
	v = json_object_get(o, "v");
	if (!json_is_integer(v) || json_integer_value(v) != RF_AUDIT_FORMAT)
		goto out;
	v = json_object_get(o, "time");
	if (!json_is_integer(v) || json_integer_value(v) != l->time)
		goto out;
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "v") == 0 || strcmp(k, "time") == 0)
			continue;
		for (i = 0; i < NNAMES; i++)
			if (strcmp(k, names[i]) == 0)
				break;
		if (i == NNAMES || !json_is_string(v))
			goto out;
	}
	if (json_object_get(o, "type") == NULL ||
	    !ref_col(l->type, o, "type") || !ref_col(l->key_id, o, "key_id") ||
	    !ref_col(l->tenant, o, "tenant"))
		goto out;
	if ((txt = json_dumps(o, FLAGS)) == NULL)
		abort();
	ok = strlen(txt) == l->len && memcmp(txt, l->data, l->len) == 0;
out:
	free(txt);
	json_decref(o);
	return ok;
}

static void
same_verdict(const struct rf_leaf_rec *l)
{
	if ((rf_audit_leaf_check(l) == 0) != ref_check(l))
		abort();
}

static const char *
str_of(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

static void
check_leaf(const uint8_t *data, size_t size)
{
	struct rf_leaf_rec l;
	json_t *o;

	memset(&l, 0, sizeof(l));
	l.data = data;
	l.len = size;
	same_verdict(&l);
	l.type = "sign";
	l.key_id = "k";
	l.tenant = "t";
	l.time = 1;
	same_verdict(&l);
	/* The columns the data claims: reaches the checker's accept path. */
	if ((o = json_loadb((const char *)data, size, 0, NULL)) == NULL)
		return;
	l.type = str_of(o, "type");
	l.key_id = str_of(o, "key_id");
	l.tenant = str_of(o, "tenant");
	l.time = json_integer_value(json_object_get(o, "time"));
	same_verdict(&l);
	l.type = l.type != NULL ? l.type : "";
	l.key_id = l.key_id != NULL ? l.key_id : "";
	same_verdict(&l);
	json_decref(o);
}

/* jansson's encoding of ev: 0, or the error rf_audit_encode must give. */
static int
ref_encode(const struct rf_audit_event *ev, const char *v[NNAMES], char **txt)
{
	json_t *o, *s;
	size_t i;
	int r = 0;

	*txt = NULL;
	if (v[0] == NULL || *v[0] == '\0')
		return RF_ERR_ARG;
	if ((o = json_object()) == NULL ||
	    json_object_set_new(o, "v", json_integer(RF_AUDIT_FORMAT)) != 0 ||
	    json_object_set_new(o, "time", json_integer(ev->time)) != 0)
		abort();
	for (i = 0; i < NNAMES && r == 0; i++) {
		if (v[i] == NULL)
			continue;
		if (strlen(v[i]) > RF_AUDIT_LEAF_MAX)
			r = RF_ERR_TOO_LARGE;
		else if ((s = json_string(v[i])) == NULL)
			r = RF_ERR_ARG;
		else if (json_object_set_new(o, names[i], s) != 0)
			abort();
	}
	if (r == 0 && (*txt = json_dumps(o, FLAGS)) == NULL)
		abort();
	if (r == 0 && strlen(*txt) > RF_AUDIT_LEAF_MAX) {
		free(*txt);
		*txt = NULL;
		r = RF_ERR_TOO_LARGE;
	}
	json_decref(o);
	return r;
}

static void
check_encode(const uint8_t *data, size_t size)
{
	struct rf_audit_event ev;
	struct rf_leaf_rec l;
	const char *v[NNAMES];
	char *copy, *p, *want = NULL;
	uint8_t *got = NULL;
	size_t i, len;
	int r, rr;

	/* Fields separated by NUL; the ones not reached stay absent. */
	if ((copy = malloc(size + 1)) == NULL)
		return;
	memcpy(copy, data, size);
	copy[size] = '\0';
	memset(v, 0, sizeof(v));
	for (i = 0, p = copy; i < NNAMES && p <= copy + size; i++) {
		v[i] = p;
		p += strlen(p) + 1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = v[0];
	ev.key_id = v[1];
	ev.tenant = v[2];
	ev.what = v[3];
	ev.ref = v[4];
	ev.digest = v[5];
	ev.actor = v[6];
	ev.source = v[7];
	ev.detail = v[8];
	ev.time = size > 0 ? (int64_t)data[0] - 128 : 1;
	if (ev.time == 0)
		ev.time = INT64_MIN;
	rr = ref_encode(&ev, v, &want);
	r = rf_audit_encode(&ev, 7, &got, &len);
	if (r != rr)
		abort();
	if (r == 0) {
		if (len != strlen(want) || memcmp(got, want, len) != 0)
			abort();
		memset(&l, 0, sizeof(l));
		l.data = got;
		l.len = len;
		l.time = ev.time;
		l.type = ev.type;
		l.key_id = ev.key_id;
		l.tenant = ev.tenant;
		if (rf_audit_leaf_check(&l) != 0 || !ref_check(&l))
			abort();
	}
	free(got);
	free(want);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	/* A copy of exactly size bytes: reads past it are caught. */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	check_leaf(copy, size);
	check_encode(copy, size);
	free(copy);
	return 0;
}
