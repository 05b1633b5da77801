/* Unit tests for the store's connection and incident tables
 * (store_incident.h), with real SQLite files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_fx.h"
#include "store/store_incident.h"

static void
add_cert(struct fx *f, const char *serial, const char *tenant, const char *key,
    const char *issuer)
{
	struct rf_cert_rec c;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "%s", issuer);
	snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
	snprintf(c.key_id, sizeof(c.key_id), "%s", key);
	c.reason = -1;
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
}

struct conns {
	char name[8][64];
	char key[8][65];
	size_t n;
};

static int
collect_conn(
    void *arg, const struct rf_conn_rec *c, const struct rf_cert_rec *cur)
{
	struct conns *v = arg;

	assert_true(v->n < 8);
	assert_string_equal(c->serial, cur->serial);
	assert_string_equal(c->tenant, cur->tenant);
	snprintf(v->name[v->n], sizeof(v->name[0]), "%s", c->name);
	snprintf(v->key[v->n], sizeof(v->key[0]), "%s", cur->key_id);
	v->n++;
	return 0;
}

static void
test_conns(void **state)
{
	struct fx *f = *state;
	struct rf_conn_rec c;
	struct rf_conn_filter flt;
	struct conns v;
	int64_t id, id2;

	add_cert(f, "01", "acme", "k1", "issuing");
	add_cert(f, "02", "acme", "k2", "issuing");
	add_cert(f, "03", "beta", "k3", "other");
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, NULL, 100, &id), 0);
	assert_true(id > 0);
	assert_int_equal(rf_store_conn_get(f->st, "acme", "sync", &c), 0);
	assert_string_equal(c.rp, "ocsp");
	assert_string_equal(c.serial, "");
	assert_int_equal(c.created, 100);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", "pinned", "01", 200, &id2),
	    0);
	assert_int_equal(id2, id);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, "02", 300, NULL), 0);
	/* Same serial again: previous is not overwritten. */
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "sync", NULL, "02", 300, NULL), 0);
	assert_int_equal(rf_store_conn_get(f->st, "acme", "sync", &c), 0);
	assert_string_equal(c.rp, "pinned");
	assert_string_equal(c.serial, "02");
	assert_string_equal(c.previous, "01");
	assert_int_equal(c.created, 100);
	assert_int_equal(
	    rf_store_conn_set(f->st, "acme", "x", "bogus", NULL, 1, NULL),
	    RF_ERR_ARG);
	assert_int_equal(
	    rf_store_conn_get(f->st, "acme", "nope", &c), RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_conn_set(f->st, "beta", "api", NULL, "03", 1, NULL), 0);
	assert_int_equal(
	    rf_store_conn_set(f->st, "beta", "idle", NULL, NULL, 1, NULL), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, NULL, collect_conn, &v), 0);
	assert_int_equal(v.n, 2); /* "idle" has no credential */
	assert_string_equal(v.name[0], "sync");
	assert_string_equal(v.name[1], "api");
	memset(&flt, 0, sizeof(flt));
	flt.issuer = "issuing";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.key[0], "k2");
	memset(&flt, 0, sizeof(flt));
	flt.key_id = "k1"; /* only the previous credential has k1 */
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 0);
	flt.key_id = NULL;
	flt.tenant = "beta";
	flt.name = "api";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_conn_foreach(f->st, &flt, collect_conn, &v), 0);
	assert_int_equal(v.n, 1);
}

static int
count_inc(void *arg, const struct rf_incident_rec *inc)
{
	(void)inc;
	(*(int *)arg)++;
	return 0;
}

static void
test_incidents(void **state)
{
	struct fx *f = *state;
	struct rf_incident_rec inc, got, dup;
	int n = 0;

	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "issuer:issuing");
	snprintf(inc.reason, sizeof(inc.reason), "key exposed");
	inc.opened = 10;
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	assert_true(inc.id > 0);
	assert_string_equal(inc.state, "open");
	dup = inc;
	dup.id = 0;
	assert_int_equal(rf_store_incident_add(f->st, &dup), RF_ERR_EXISTS);
	assert_int_equal(dup.id, inc.id);

	inc.contained = 20;
	inc.since = 5;
	inc.signatures = 42;
	snprintf(inc.state, sizeof(inc.state), "contained");
	snprintf(inc.new_issuer, sizeof(inc.new_issuer), "issuing-inc1");
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	assert_int_equal(rf_store_incident_get(f->st, inc.id, &got), 0);
	assert_string_equal(got.state, "contained");
	assert_string_equal(got.reason, "key exposed");
	assert_string_equal(got.new_issuer, "issuing-inc1");
	assert_int_equal(got.contained, 20);
	assert_int_equal(got.since, 5);
	assert_int_equal(got.signatures, 42);
	assert_int_equal(
	    rf_store_incident_get(f->st, 999, &got), RF_ERR_NOT_FOUND);
	got.id = 999;
	assert_int_equal(
	    rf_store_incident_update(f->st, &got), RF_ERR_NOT_FOUND);

	/* Closed: the same scope may be opened again. */
	snprintf(inc.state, sizeof(inc.state), "closed");
	inc.closed = 30;
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	dup.id = 0;
	assert_int_equal(rf_store_incident_add(f->st, &dup), 0);
	assert_true(dup.id > inc.id);
	assert_int_equal(rf_store_incident_foreach(f->st, count_inc, &n), 0);
	assert_int_equal(n, 2);
}

struct items {
	char name[8][64];
	size_t n;
};

static int
collect_item(void *arg, const struct rf_item_rec *it)
{
	struct items *v = arg;

	assert_true(v->n < 8);
	snprintf(v->name[v->n], sizeof(v->name[0]), "%s", it->name);
	v->n++;
	return 0;
}

struct events {
	char kind[8][32];
	size_t n;
};

static int
collect_event(void *arg, const struct rf_event_rec *e)
{
	struct events *v = arg;

	assert_true(v->n < 8);
	snprintf(v->kind[v->n], sizeof(v->kind[0]), "%s", e->kind);
	v->n++;
	return 0;
}

static void
mkitem(struct rf_item_rec *it, int64_t inc, int64_t conn, const char *tenant,
    const char *name, const char *old)
{
	memset(it, 0, sizeof(*it));
	it->incident = inc;
	it->conn = conn;
	snprintf(it->tenant, sizeof(it->tenant), "%s", tenant);
	snprintf(it->name, sizeof(it->name), "%s", name);
	snprintf(it->rp, sizeof(it->rp), "ocsp");
	snprintf(it->old_serial, sizeof(it->old_serial), "%s", old);
	snprintf(it->old_key, sizeof(it->old_key), "key-%s", old);
	snprintf(it->state, sizeof(it->state), "affected");
	it->updated = 1;
}

static void
test_items_events(void **state)
{
	struct fx *f = *state;
	struct rf_incident_rec inc;
	struct rf_item_rec it, got;
	struct items v;
	struct events ev;
	int is_new;

	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "tenant:acme");
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	mkitem(&it, inc.id, 2, "beta", "b", "0b");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	assert_int_equal(rf_store_item_add(f->st, &it), RF_ERR_EXISTS);
	mkitem(&it, inc.id, 1, "acme", "z", "0a");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	mkitem(&it, inc.id, 3, "acme", "a", "0c");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);

	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_item_foreach(f->st, inc.id, NULL, NULL, collect_item, &v),
	    0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.name[0], "a");
	assert_string_equal(v.name[1], "z");
	assert_string_equal(v.name[2], "b");

	snprintf(it.new_serial, sizeof(it.new_serial), "1c");
	snprintf(it.state, sizeof(it.state), "contained");
	snprintf(it.evidence, sizeof(it.evidence), "ocsp fetch");
	it.updated = 9;
	assert_int_equal(rf_store_item_update(f->st, &it), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(rf_store_item_foreach(f->st, inc.id, "acme",
			     "contained", collect_item, &v),
	    0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.name[0], "a");
	it.conn = 77;
	assert_int_equal(rf_store_item_update(f->st, &it), RF_ERR_NOT_FOUND);
	/* A move only from the state named: the second one finds it gone. */
	mkitem(&it, inc.id, 2, "beta", "b", "0b");
	snprintf(it.new_serial, sizeof(it.new_serial), "2b");
	snprintf(it.state, sizeof(it.state), "contained");
	assert_int_equal(rf_store_item_move(f->st, &it, "affected"), 0);
	snprintf(it.new_serial, sizeof(it.new_serial), "3b");
	assert_int_equal(
	    rf_store_item_move(f->st, &it, "affected"), RF_ERR_STATE);
	assert_int_equal(
	    rf_store_item_by_serial(f->st, "2b", &got, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(rf_store_item_by_serial(f->st, "3b", &got, &is_new),
	    RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_item_by_serial(f->st, "0c", &got, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_string_equal(got.name, "a");
	assert_string_equal(got.new_serial, "1c");
	assert_string_equal(got.evidence, "ocsp fetch");
	assert_int_equal(got.updated, 9);
	assert_int_equal(
	    rf_store_item_by_serial(f->st, "1c", &got, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(rf_store_item_by_serial(f->st, "ff", &got, &is_new),
	    RF_ERR_NOT_FOUND);
	/* Closed incidents do not match. */
	snprintf(inc.state, sizeof(inc.state), "closed");
	assert_int_equal(rf_store_incident_update(f->st, &inc), 0);
	assert_int_equal(rf_store_item_by_serial(f->st, "1c", &got, &is_new),
	    RF_ERR_NOT_FOUND);

	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id, 1, "opened", "x"), 0);
	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id, 2, "contained", NULL),
	    0);
	assert_int_equal(
	    rf_store_incident_event_add(f->st, inc.id + 1000, 2, "x", "y"),
	    RF_ERR_ARG); /* no such incident */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(
	    rf_store_incident_event_foreach(f->st, inc.id, collect_event, &ev),
	    0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.kind[0], "opened");
	assert_string_equal(ev.kind[1], "contained");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_conns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incidents, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_items_events, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
