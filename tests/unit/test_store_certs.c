/* Unit tests for the store: tenants, CAs, certificates, revocation, CRL
 * state and OCSP responses, with real SQLite files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_fx.h"

static void
reopen(struct fx *f)
{
	rf_store_free(f->st);
	f->st = NULL;
	assert_int_equal(rf_store_open(f->path, 0, &f->st), 0);
}

static void
test_tenants(void **state)
{
	struct fx *f = *state;
	struct rf_tenant t, *v = NULL;
	char big[200];
	size_t n;

	assert_int_equal(rf_store_tenant_add(f->st, "zeta", 10), 0);
	assert_int_equal(rf_store_tenant_add(f->st, "acme", 20), 0);
	assert_int_equal(rf_store_tenant_add(f->st, "acme", 30), RF_ERR_EXISTS);
	assert_int_equal(rf_store_tenant_add(f->st, "", 30), RF_ERR_ARG);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(rf_store_tenant_add(f->st, big, 30), RF_ERR_ARG);
	assert_int_equal(rf_store_tenant_get(f->st, "acme", &t), 0);
	assert_string_equal(t.name, "acme");
	assert_int_equal(t.created, 20);
	assert_true(t.id > 0);
	assert_int_equal(
	    rf_store_tenant_get(f->st, "nobody", &t), RF_ERR_NOT_FOUND);
	reopen(f);
	assert_int_equal(rf_store_tenant_list(f->st, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "acme");
	assert_string_equal(v[1].name, "zeta");
	assert_int_equal(v[1].created, 10);
	free(v);
}

static void
mkca(struct rf_ca_rec *ca, const char *name, const char *parent)
{
	static const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x05};

	memset(ca, 0, sizeof(*ca));
	snprintf(ca->name, sizeof(ca->name), "%s", name);
	snprintf(ca->key_id, sizeof(ca->key_id), "key-%s", name);
	snprintf(ca->parent, sizeof(ca->parent), "%s", parent);
	snprintf(ca->serial, sizeof(ca->serial), "0a%s", name);
	ca->not_before = 100;
	ca->not_after = 200;
	ca->active = 1;
	ca->der = (uint8_t *)der;
	ca->derlen = sizeof(der);
}

static void
test_cas(void **state)
{
	struct fx *f = *state;
	struct rf_ca_rec ca, *v = NULL;
	size_t n;

	mkca(&ca, "root", "");
	assert_int_equal(rf_store_ca_add(f->st, &ca), 0);
	assert_int_equal(rf_store_ca_add(f->st, &ca), RF_ERR_EXISTS);
	mkca(&ca, "issuing", "root");
	assert_int_equal(rf_store_ca_add(f->st, &ca), 0);
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(rf_store_ca_get(f->st, "issuing", &ca), 0);
	assert_string_equal(ca.parent, "root");
	assert_string_equal(ca.key_id, "key-issuing");
	assert_string_equal(ca.serial, "0aissuing");
	assert_int_equal(ca.not_after, 200);
	assert_int_equal(ca.active, 1);
	assert_int_equal(ca.derlen, 5);
	assert_int_equal(ca.der[4], 5);
	rf_ca_rec_clear(&ca);
	rf_ca_rec_clear(&ca);
	assert_null(ca.der);
	assert_int_equal(rf_store_ca_get(f->st, "ocsp", &ca), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_ca_set_active(f->st, "issuing", 0), 0);
	assert_int_equal(
	    rf_store_ca_set_active(f->st, "none", 0), RF_ERR_NOT_FOUND);
	reopen(f);
	assert_int_equal(rf_store_ca_list(f->st, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "issuing");
	assert_int_equal(v[0].active, 0);
	assert_string_equal(v[1].name, "root");
	assert_int_equal(v[1].active, 1);
	assert_int_equal(v[1].derlen, 5);
	rf_ca_rec_free_all(v, n);
	rf_ca_rec_free_all(NULL, 0);
}

static void
mkcert(struct rf_cert_rec *c, const char *serial, const char *issuer,
    const char *tenant, const char *key, int64_t not_after)
{
	static const uint8_t der[] = {0x30, 0x00};

	memset(c, 0, sizeof(*c));
	snprintf(c->serial, sizeof(c->serial), "%s", serial);
	snprintf(c->issuer, sizeof(c->issuer), "%s", issuer);
	snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
	snprintf(c->profile, sizeof(c->profile), "client");
	snprintf(c->key_id, sizeof(c->key_id), "%s", key);
	snprintf(c->subject, sizeof(c->subject), "CN=%s", serial);
	snprintf(c->x5t, sizeof(c->x5t), "t-%s", serial);
	snprintf(c->x5t256, sizeof(c->x5t256), "t256-%s", serial);
	c->not_before = 1;
	c->not_after = not_after;
	c->issued = 1;
	c->reason = -1;
	c->der = (uint8_t *)der;
	c->derlen = sizeof(der);
}

struct serials {
	char s[16][41];
	int has_der[16];
	size_t n;
};

static int
collect_cert(void *arg, const struct rf_cert_rec *c)
{
	struct serials *v = arg;

	assert_true(v->n < 16);
	snprintf(v->s[v->n], sizeof(v->s[0]), "%s", c->serial);
	v->has_der[v->n] = c->der != NULL && c->derlen == 2;
	v->n++;
	return 0;
}

static int
stop_cert(void *arg, const struct rf_cert_rec *c)
{
	(void)arg;
	(void)c;
	return 7;
}

static void
test_certs(void **state)
{
	struct fx *f = *state;
	struct rf_cert_rec c;
	struct rf_cert_filter flt;
	struct serials v;
	char other[128];
	int changed;

	mkcert(&c, "01", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	assert_int_equal(rf_store_cert_add(f->st, &c), RF_ERR_EXISTS);
	mkcert(&c, "02", "issuing", "acme", "k2", 300);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mkcert(&c, "03", "other", "beta", "k3", 300);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(rf_store_cert_get(f->st, "02", &c), 0);
	assert_string_equal(c.issuer, "issuing");
	assert_string_equal(c.tenant, "acme");
	assert_string_equal(c.profile, "client");
	assert_string_equal(c.key_id, "k2");
	assert_string_equal(c.subject, "CN=02");
	assert_string_equal(c.x5t, "t-02");
	assert_string_equal(c.x5t256, "t256-02");
	assert_int_equal(c.not_after, 300);
	assert_int_equal(c.revoked, 0);
	assert_int_equal(c.reason, -1);
	assert_int_equal(c.derlen, 2);
	rf_cert_rec_clear(&c);
	assert_int_equal(rf_store_cert_get(f->st, "99", &c), RF_ERR_NOT_FOUND);

	/* Key reuse across tenants. */
	assert_int_equal(rf_store_cert_key_other_tenant(
			     f->st, "k1", "acme", other, sizeof(other)),
	    RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_cert_key_other_tenant(
			     f->st, "k1", "beta", other, sizeof(other)),
	    0);
	assert_string_equal(other, "acme");

	/* Filters. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_cert_foreach(f->st, NULL, collect_cert, &v), 0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.s[0], "01");
	assert_string_equal(v.s[2], "03");
	assert_false(v.has_der[0]);
	memset(&flt, 0, sizeof(flt));
	flt.tenant = "acme";
	flt.unexpired_at = 200;
	flt.with_der = 1;
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_cert_foreach(f->st, &flt, collect_cert, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.s[0], "02");
	assert_true(v.has_der[0]);
	memset(&flt, 0, sizeof(flt));
	flt.key_id = "k3";
	flt.issuer = "other";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_cert_foreach(f->st, &flt, collect_cert, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.s[0], "03");
	assert_int_equal(
	    rf_store_cert_foreach(f->st, NULL, stop_cert, NULL), 7);

	assert_int_equal(rf_store_cert_revoke(f->st, "02", 50, 4, &changed), 0);
	assert_int_equal(changed, 1);
	memset(&flt, 0, sizeof(flt));
	flt.only_revoked = 1;
	flt.issuer = "issuing";
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_cert_foreach(f->st, &flt, collect_cert, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.s[0], "02");
}

static void
check_revoked(struct fx *f, const char *serial, int64_t at, int reason)
{
	struct rf_cert_rec c;

	assert_int_equal(rf_store_cert_get(f->st, serial, &c), 0);
	assert_int_equal(c.revoked, 1);
	assert_int_equal(c.revoked_at, at);
	assert_int_equal(c.reason, reason);
	rf_cert_rec_clear(&c);
}

static void
test_revoke_rules(void **state)
{
	struct fx *f = *state;
	struct rf_cert_rec c;
	int changed = -1;

	mkcert(&c, "0a", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	assert_int_equal(rf_store_cert_revoke(f->st, "ff", 1, 0, &changed),
	    RF_ERR_NOT_FOUND);
	assert_int_equal(changed, 0);
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 1, 99, &changed), RF_ERR_ARG);

	/* superseded (4) at 1000 */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 1000, 4, &changed), 0);
	assert_int_equal(changed, 1);
	check_revoked(f, "0a", 1000, 4);
	/* Same again: no change. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 2000, 4, &changed), 0);
	assert_int_equal(changed, 0);
	check_revoked(f, "0a", 1000, 4);
	/* Another reason that is not keyCompromise: ignored. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 2000, 5, &changed), 0);
	assert_int_equal(changed, 0);
	check_revoked(f, "0a", 1000, 4);
	/* Raised to keyCompromise, first time kept. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 3000, 1, &changed), 0);
	assert_int_equal(changed, 1);
	check_revoked(f, "0a", 1000, 1);
	/* Never lowered. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 4000, 0, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "0a", 4000, 1, &changed), 0);
	assert_int_equal(changed, 0);
	reopen(f);
	check_revoked(f, "0a", 1000, 1);

	/* Unspecified (-1) may be raised to keyCompromise too. */
	mkcert(&c, "0b", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	assert_int_equal(rf_store_cert_revoke(f->st, "0b", 10, -1, NULL), 0);
	check_revoked(f, "0b", 10, -1);
	assert_int_equal(rf_store_cert_revoke(f->st, "0b", 20, 1, &changed), 0);
	assert_int_equal(changed, 1);
	check_revoked(f, "0b", 10, 1);

	/* Inside a caller's transaction that rolls back: nothing changes. */
	mkcert(&c, "0c", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_cert_revoke(f->st, "0c", 10, 1, &changed), 0);
	rf_store_rollback(f->st);
	assert_int_equal(rf_store_cert_get(f->st, "0c", &c), 0);
	assert_int_equal(c.revoked, 0);
	rf_cert_rec_clear(&c);
}

static int
revoke_each(void *arg, const struct rf_cert_rec *c)
{
	struct fx *f = arg;
	int changed = 0;

	assert_int_equal(
	    rf_store_cert_revoke(f->st, c->serial, 77, 1, &changed), 0);
	assert_int_equal(changed, 1);
	return 0;
}

/* Writing from inside a foreach callback (as mass revocation does). */
static void
test_revoke_during_foreach(void **state)
{
	struct fx *f = *state;
	struct rf_cert_rec c;
	struct rf_cert_filter flt;
	struct serials v;

	mkcert(&c, "01", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mkcert(&c, "02", "issuing", "acme", "k1", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mkcert(&c, "03", "issuing", "beta", "k2", 100);
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	memset(&flt, 0, sizeof(flt));
	flt.key_id = "k1";
	assert_int_equal(rf_store_cert_foreach(f->st, &flt, revoke_each, f), 0);
	reopen(f);
	memset(&flt, 0, sizeof(flt));
	flt.only_revoked = 1;
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_cert_foreach(f->st, &flt, collect_cert, &v), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.s[0], "01");
	assert_string_equal(v.s[1], "02");
}

static void
test_crl(void **state)
{
	struct fx *f = *state;
	static const uint8_t der1[] = {1, 2, 3}, der2[] = {4, 5};
	uint64_t n, num = 0;
	int64_t tu, nu;
	uint8_t *der = NULL;
	size_t len;

	assert_int_equal(
	    rf_store_crl_get(f->st, "issuing", &num, &tu, &nu, &der, &len),
	    RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rf_store_crl_next_number(f->st, "root", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
	    rf_store_crl_put(f->st, "issuing", 2, 10, 20, der1, sizeof(der1)),
	    0);
	reopen(f);
	/* Monotonic across close and reopen. */
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(
	    rf_store_crl_get(f->st, "issuing", &num, &tu, &nu, &der, &len), 0);
	assert_int_equal(num, 2);
	assert_int_equal(tu, 10);
	assert_int_equal(nu, 20);
	assert_int_equal(len, 3);
	assert_memory_equal(der, der1, 3);
	free(der);
	der = NULL;
	/* A lower number than the stored CRL is refused. */
	assert_int_equal(
	    rf_store_crl_put(f->st, "issuing", 1, 11, 21, der2, sizeof(der2)),
	    RF_ERR_STATE);
	/* A put with a number ahead of the counter moves the counter. */
	assert_int_equal(
	    rf_store_crl_put(f->st, "issuing", 10, 11, 21, der2, sizeof(der2)),
	    0);
	assert_int_equal(
	    rf_store_crl_get(f->st, "issuing", &num, NULL, NULL, &der, &len),
	    0);
	assert_int_equal(num, 10);
	assert_int_equal(len, 2);
	free(der);
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 11);
	/* Inside a rolled-back transaction the number is not consumed. */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 12);
	rf_store_rollback(f->st);
	assert_int_equal(rf_store_crl_next_number(f->st, "issuing", &n), 0);
	assert_int_equal(n, 12);
}

struct ocsps {
	char s[8][41];
	size_t n;
};

static int
collect_ocsp(void *arg, const struct rf_ocsp_rec *o)
{
	struct ocsps *v = arg;

	assert_true(v->n < 8);
	snprintf(v->s[v->n], sizeof(v->s[0]), "%s", o->serial);
	assert_string_equal(o->issuer, "issuing");
	assert_int_equal(o->len, 2);
	assert_int_equal(o->der[0], 0x30);
	assert_int_equal(o->next_update, o->this_update + 100);
	v->n++;
	return 0;
}

static void
put_ocsp(struct fx *f, const char *serial, int64_t t)
{
	static const uint8_t der[] = {0x30, 0x00};
	struct rf_ocsp_rec o;

	memset(&o, 0, sizeof(o));
	snprintf(o.serial, sizeof(o.serial), "%s", serial);
	snprintf(o.issuer, sizeof(o.issuer), "issuing");
	o.this_update = t;
	o.next_update = t + 100;
	o.der = der;
	o.len = sizeof(der);
	assert_int_equal(rf_store_ocsp_put(f->st, &o), 0);
}

static void
test_ocsp(void **state)
{
	struct fx *f = *state;
	struct ocsps v;
	int64_t seq0, seq1, seq2;

	assert_int_equal(rf_store_ocsp_seq(f->st, &seq0), 0);
	assert_int_equal(seq0, 0);
	put_ocsp(f, "01", 10);
	put_ocsp(f, "02", 10);
	put_ocsp(f, "03", 10);
	assert_int_equal(rf_store_ocsp_seq(f->st, &seq1), 0);
	assert_true(seq1 > seq0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(rf_store_ocsp_foreach(f->st, 0, collect_ocsp, &v), 0);
	assert_int_equal(v.n, 3);
	/* Nothing changed since seq1. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_ocsp_foreach(f->st, seq1, collect_ocsp, &v), 0);
	assert_int_equal(v.n, 0);
	/* Replace 02, add 04: exactly those come back. */
	put_ocsp(f, "02", 20);
	put_ocsp(f, "04", 20);
	reopen(f);
	memset(&v, 0, sizeof(v));
	assert_int_equal(
	    rf_store_ocsp_foreach(f->st, seq1, collect_ocsp, &v), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.s[0], "02");
	assert_string_equal(v.s[1], "04");
	assert_int_equal(rf_store_ocsp_seq(f->st, &seq2), 0);
	assert_true(seq2 > seq1);
	/* Still one row per serial. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(rf_store_ocsp_foreach(f->st, 0, collect_ocsp, &v), 0);
	assert_int_equal(v.n, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_certs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revoke_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_revoke_during_foreach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ocsp, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
