/*
 * Unit tests for the store's key identities (issue 13 items 1, 2): a key
 * serves one tenant connection, claimed when its certificate is recorded;
 * a key revoked for keyCompromise, or contained by an incident, is
 * refused for good, with a line naming why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_fx.h"

static void
mk(struct rf_cert_rec *c, const char *serial, const char *tenant,
    const char *conn, const char *ident)
{
	static const uint8_t der[] = {0x30, 0x00};

	memset(c, 0, sizeof(*c));
	snprintf(c->serial, sizeof(c->serial), "%s", serial);
	snprintf(c->issuer, sizeof(c->issuer), "issuing");
	snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
	snprintf(c->profile, sizeof(c->profile), "client");
	snprintf(c->key_id, sizeof(c->key_id), "kid-%s", ident);
	snprintf(c->key_ident, sizeof(c->key_ident), "%s", ident);
	snprintf(c->conn, sizeof(c->conn), "%s", conn);
	snprintf(c->subject, sizeof(c->subject), "CN=%s", tenant);
	c->not_after = 1000;
	c->issued = 10;
	c->reason = -1;
	c->der = (uint8_t *)der;
	c->derlen = sizeof(der);
}

static void
test_one_connection(void **state)
{
	struct fx *f = *state;
	struct rf_cert_rec c;

	mk(&c, "01", "acme", "mail", "aa");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	/* Renewal of the same connection. */
	mk(&c, "02", "acme", "mail", "aa");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	/* No connection named: any connection of the owner tenant. */
	mk(&c, "03", "acme", "", "aa");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	/* Another tenant, another connection: refused, nothing stored. */
	mk(&c, "04", "globex", "mail", "aa");
	assert_int_equal(rf_store_cert_add(f->st, &c), RF_ERR_KEY_REUSED);
	assert_string_equal(rf_err_msg(RF_ERR_KEY_REUSED),
	    "public key already serves tenant acme connection mail "
	    "(certificate 01): a key serves one tenant connection; generate "
	    "a new key");
	mk(&c, "05", "acme", "files", "aa");
	assert_int_equal(rf_store_cert_add(f->st, &c), RF_ERR_KEY_REUSED);
	assert_int_equal(rf_store_cert_get(f->st, "04", &c), RF_ERR_NOT_FOUND);
	assert_int_equal(rf_store_cert_get(f->st, "05", &c), RF_ERR_NOT_FOUND);
	/* The read-only check says the same. */
	assert_int_equal(
	    rf_store_key_admit(f->st, "aa", "globex", NULL), RF_ERR_KEY_REUSED);
	assert_int_equal(rf_store_key_admit(f->st, "aa", "acme", "mail"), 0);
	assert_int_equal(rf_store_key_admit(f->st, "bb", "globex", "x"), 0);
	/* A claim made without a connection takes the first one named. */
	mk(&c, "06", "initech", "", "cc");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mk(&c, "07", "initech", "sync", "cc");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mk(&c, "08", "initech", "other", "cc");
	assert_int_equal(rf_store_cert_add(f->st, &c), RF_ERR_KEY_REUSED);
	/* Inside a transaction that rolls back, the claim goes too. */
	assert_int_equal(rf_store_begin(f->st), 0);
	mk(&c, "09", "hooli", "x", "dd");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	rf_store_rollback(f->st);
	mk(&c, "0a", "globex", "y", "dd");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
}

static int
count(void *arg, const struct rf_cert_rec *c)
{
	(void)c;
	(*(size_t *)arg)++;
	return 0;
}

/* Two encodings of one key (two key ids, one identity) are one key. */
static void
test_same_key(void **state)
{
	struct fx *f = *state;
	struct rf_cert_filter flt = {0};
	struct rf_cert_rec c;
	size_t n = 0;

	mk(&c, "21", "acme", "mail", "gg");
	snprintf(c.key_id, sizeof(c.key_id), "kA");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mk(&c, "22", "acme", "mail", "gg");
	snprintf(c.key_id, sizeof(c.key_id), "kB");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mk(&c, "23", "acme", "mail", "hh");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	flt.same_key = "kA";
	assert_int_equal(rf_store_cert_foreach(f->st, &flt, count, &n), 0);
	assert_int_equal(n, 2);
	n = 0;
	flt.same_key = "kid-hh";
	assert_int_equal(rf_store_cert_foreach(f->st, &flt, count, &n), 0);
	assert_int_equal(n, 1);
}

struct list {
	size_t n;
	struct rf_compromised_rec last;
};

static int
collect(void *arg, const struct rf_compromised_rec *k)
{
	struct list *l = arg;

	l->n++;
	l->last = *k;
	return 0;
}

static void
test_compromised(void **state)
{
	struct fx *f = *state;
	struct rf_cert_rec c;
	struct list l;
	int changed;

	mk(&c, "11", "acme", "mail", "ee");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	mk(&c, "12", "acme", "files", "ff");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	/* Revoked for another reason: the key may be certified again. */
	assert_int_equal(rf_store_cert_revoke(f->st, "12", 50, 4, NULL), 0);
	mk(&c, "13", "acme", "files", "ff");
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
	/* keyCompromise: listed in the revoking transaction. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "11", 1700000000, 1, &changed), 0);
	assert_int_equal(changed, 1);
	mk(&c, "14", "acme", "mail", "ee");
	assert_int_equal(rf_store_cert_add(f->st, &c), RF_ERR_KEY_DISALLOWED);
	assert_string_equal(rf_err_msg(RF_ERR_KEY_DISALLOWED),
	    "public key is compromised: certificate 11 of tenant acme was "
	    "revoked for keyCompromise at 2023-11-14T22:13:20Z; generate a "
	    "new key");
	assert_int_equal(rf_store_key_admit(f->st, "ee", "acme", "mail"),
	    RF_ERR_KEY_DISALLOWED);
	/* An incident names itself on the entry. */
	assert_int_equal(
	    rf_store_key_compromised_add(f->st, "11", 7, 1700000100), 0);
	assert_int_equal(rf_store_key_admit(f->st, "ee", "globex", NULL),
	    RF_ERR_KEY_DISALLOWED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_KEY_DISALLOWED),
	    "incident 7 contained it (certificate 11 of tenant acme"));
	/* An incident alone lists a key; a rolled-back one does not. */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_key_compromised_add(f->st, "13", 8, 60), 0);
	rf_store_rollback(f->st);
	assert_int_equal(rf_store_key_admit(f->st, "ff", "acme", "files"), 0);
	assert_int_equal(rf_store_key_compromised_add(f->st, "13", 8, 60), 0);
	assert_int_equal(rf_store_key_admit(f->st, "ff", "acme", "files"),
	    RF_ERR_KEY_DISALLOWED);
	assert_int_equal(
	    rf_store_key_compromised_add(f->st, "99", 8, 60), RF_ERR_NOT_FOUND);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rf_store_compromised_foreach(f->st, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.last.ident, "ee");
	assert_string_equal(l.last.serial, "11");
	assert_int_equal(l.last.incident, 7);
	assert_int_equal(l.last.time, 1700000000);
}

/*
 * Migration 10 moves key_owners to one b-tree (WITHOUT ROWID): the claims
 * made before it are kept and still refuse another tenant; new claims and
 * the connection of a claim made without one are recorded after it.
 */
static void
test_owners_migrated(void **state)
{
	struct fx *f = *state;
	struct rf_store *st = NULL;
	struct rf_cert_rec c;
	char p[1100];

	snprintf(p, sizeof(p), "%s/v9.db", f->home);
	assert_int_equal(rf_store_open_version(p, 1, 9, &st), 0);
	mk(&c, "31", "acme", "mail", "ee");
	assert_int_equal(rf_store_cert_add(st, &c), 0);
	mk(&c, "32", "acme", "", "ff");
	assert_int_equal(rf_store_cert_add(st, &c), 0);
	rf_store_free(st);
	assert_int_equal(raw_int(p,
			     "SELECT count(*) FROM sqlite_master WHERE name = "
			     "'key_owners' AND sql LIKE '%WITHOUT ROWID%'"),
	    0);

	assert_int_equal(rf_store_open(p, 0, &st), 0);
	assert_true(rf_store_schema_version(st) >= 10);
	mk(&c, "33", "globex", "mail", "ee");
	assert_int_equal(rf_store_cert_add(st, &c), RF_ERR_KEY_REUSED);
	assert_non_null(strstr(rf_err_msg(RF_ERR_KEY_REUSED),
	    "serves tenant acme connection mail (certificate 31)"));
	mk(&c, "34", "acme", "sync", "ff"); /* takes the claim's connection */
	assert_int_equal(rf_store_cert_add(st, &c), 0);
	mk(&c, "35", "acme", "other", "ff");
	assert_int_equal(rf_store_cert_add(st, &c), RF_ERR_KEY_REUSED);
	mk(&c, "36", "initech", "x", "gg");
	assert_int_equal(rf_store_cert_add(st, &c), 0);
	rf_store_free(st);
	assert_int_equal(raw_int(p,
			     "SELECT count(*) FROM sqlite_master WHERE name = "
			     "'key_owners' AND sql LIKE '%WITHOUT ROWID%'"),
	    1);
	assert_int_equal(raw_int(p, "SELECT count(*) FROM key_owners"), 3);
	assert_int_equal(raw_int(p,
			     "SELECT count(*) FROM key_owners WHERE ident = "
			     "'ff' AND conn = 'sync' AND serial = '32'"),
	    1);
	assert_int_equal(
	    raw_int(p,
		"SELECT count(*) FROM key_owners WHERE ident = "
		"'gg' AND tenant = 'initech' AND serial = '36' AND "
		"created = 10"),
	    1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_one_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compromised, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_owners_migrated, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
