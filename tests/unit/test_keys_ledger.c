/*
 * keyd's revocation ledger (src/keys/ledger.c) against a real SQLite store
 * and record: first use takes the store's revocations; later ones follow
 * the record's "revoke" leaves; what it has seen survives the store being
 * changed back (revocation cleared, leaf deleted, by another writer of the
 * file) and a reopen; a torn last line is read again; a ledger others can
 * read is refused. And the keys keyd took out of service, kept the same
 * way; and the connector bindings and revocations an administrator makes
 * through keyd: the store's are taken once (first use, or a ledger from
 * before them), and a binding written into the store after that is not.
 * And what each CA key is (its role), taken the same way.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "keys/ledger.h"
#include "store/store_connector.h"
#include "store/store_incident.h"
#include "store_fx.h"

static void
cert(struct fx *f, const char *serial, int64_t not_after)
{
	struct rf_cert_rec c;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "issuing");
	snprintf(c.tenant, sizeof(c.tenant), "acme");
	snprintf(c.profile, sizeof(c.profile), "client");
	snprintf(c.key_id, sizeof(c.key_id), "k%s", serial);
	c.not_before = 1;
	c.not_after = not_after;
	c.issued = 1;
	c.reason = -1;
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
}

/* Revoke in the store with its leaf, in one transaction, as revoke.c. */
static void
revoke_one(struct fx *f, struct rf_audit *audit, const char *serial)
{
	struct rf_audit_event ev;
	int ch = 0;

	memset(&ev, 0, sizeof(ev));
	ev.type = "revoke";
	ev.ref = serial;
	ev.tenant = "acme";
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_cert_revoke(f->st, serial, 100, 1, &ch), 0);
	assert_int_equal(ch, 1);
	assert_int_equal(rf_audit_append(audit, &ev, 1, NULL), 0);
	assert_int_equal(rf_store_commit(f->st), 0);
}

/* What a compromised writer of the store file does: clear the
 * revocation, and with leaves, delete its record too. */
static void
unrevoke_outside(struct fx *f, const char *serial, int leaves)
{
	char sql[256];
	sqlite3 *db = NULL;

	snprintf(sql, sizeof(sql),
	    "UPDATE certs SET revoked = 0, revoked_at = 0, reason = -1 "
	    "WHERE serial = '%s';%s",
	    serial,
	    leaves ? "DELETE FROM audit_leaf WHERE type = 'revoke';" : "");
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static int
collect(void *arg, const char *serial)
{
	char *out = arg;

	strcat(out, serial);
	strcat(out, " ");
	return 0;
}

static void
test_ledger(void **state)
{
	struct fx *f = *state;
	struct rf_audit *audit = NULL;
	struct rf_ledger *l = NULL;
	char path[1100], seen[256];
	struct stat sb;
	FILE *fp;
	int ch = 0;

	snprintf(path, sizeof(path), "%s/revoked.ledger", f->home);
	assert_int_equal(rf_audit_open(f->st, &audit), 0);
	cert(f, "0a", 1000);
	cert(f, "0b", 5000);
	cert(f, "0c", 5000);
	revoke_one(f, audit, "0a");

	/* First use: the store's revocations now. */
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_false(rf_ledger_has(l, "0a"));
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0a"));
	assert_false(rf_ledger_has(l, "0b"));

	/* Then the record's revoke leaves. */
	revoke_one(f, audit, "0b");
	assert_false(rf_ledger_has(l, "0b"));
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0b"));
	assert_false(rf_ledger_has(l, "0c"));

	/* The store changed back behind keyd's back: still revoked, here
	 * and after a reopen. */
	unrevoke_outside(f, "0b", 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0b"));
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0a"));
	assert_true(rf_ledger_has(l, "0b"));

	/* A CRL of the issuer must list those not expired at its date. */
	seen[0] = '\0';
	assert_int_equal(
	    rf_ledger_foreach(l, "issuing", 2000, collect, seen), 0);
	assert_string_equal(seen, "0b ");
	seen[0] = '\0';
	assert_int_equal(rf_ledger_foreach(l, "other", 0, collect, seen), 0);
	assert_string_equal(seen, "");
	rf_ledger_free(l);
	l = NULL;

	/* A torn last line (killed mid-append) is dropped, not misread. */
	assert_non_null(fp = fopen(path, "a"));
	fputs("r 0c issu", fp);
	fclose(fp);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_false(rf_ledger_has(l, "0c"));
	assert_true(rf_ledger_has(l, "0b"));
	/* and the next append starts a line of its own. */
	revoke_one(f, audit, "0c");
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_true(rf_ledger_has(l, "0b"));
	assert_true(rf_ledger_has(l, "0c"));
	/* Its record deleted too, once read: nothing is forgotten. */
	unrevoke_outside(f, "0c", 1);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0c"));
	rf_ledger_free(l);
	l = NULL;

	/* A shorter record is another one: its revocations are taken from
	 * the store, and nothing kept is forgotten. */
	assert_int_equal(rf_ledger_open(path, &l), 0);
	cert(f, "0d", 5000); /* revoked in the store alone, no leaf */
	assert_int_equal(rf_store_begin(f->st), 0);
	assert_int_equal(rf_store_cert_revoke(f->st, "0d", 100, 1, &ch), 0);
	assert_int_equal(rf_store_commit(f->st), 0);
	cert(f, "0e", 5000);
	revoke_one(f, audit, "0e");
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0e"));
	assert_false(rf_ledger_has(l, "0d"));
	unrevoke_outside(f, "0e", 1); /* its leaf gone: a shorter record */
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_has(l, "0d"));
	assert_true(rf_ledger_has(l, "0e"));
	rf_ledger_free(l);
	l = NULL;

	/* Readable by others: refused, with the chmod to run. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(rf_ledger_open(path, &l), RF_ERR_IO);
	assert_non_null(strstr(rf_err_msg(RF_ERR_IO), "chmod 600"));
	assert_null(l);
	rf_audit_free(audit);
}

/*
 * Keys taken out of service: kept durably beside the revocations, each
 * once; a malformed id is not kept; a revocation serial is not a key.
 */
static void
test_ledger_keys(void **state)
{
	struct fx *f = *state;
	char path[1100], k1[65], k2[65];
	const char *ids[3];
	uint8_t want[3] = {1, 0, 1};
	uint8_t root[RF_HASH_LEN], root2[RF_HASH_LEN], got[RF_HASH_LEN];
	uint64_t size = 0;
	struct rf_ledger *l = NULL;

	snprintf(path, sizeof(path), "%s/keys.ledger", f->home);
	memset(k1, 'a', 64);
	k1[64] = '\0';
	memset(k2, 'b', 64);
	k2[64] = '\0';
	ids[0] = k1;
	ids[1] = k2;
	ids[2] = "not-a-key-id";
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_false(rf_ledger_key_retired(l, k1));
	assert_int_equal(rf_ledger_retire_keys(l, ids, want, 3), 0);
	assert_true(rf_ledger_key_retired(l, k1));
	assert_false(rf_ledger_key_retired(l, k2)); /* not wanted */
	assert_false(rf_ledger_key_retired(l, "not-a-key-id"));
	assert_false(rf_ledger_has(l, k1)); /* a key is not a serial */
	assert_int_equal(rf_ledger_retire_keys(l, ids, NULL, 2), 0);
	rf_ledger_free(l);
	l = NULL;
	/* Once each in the file, and both after a reopen. */
	assert_int_equal(tu_sh("test $(grep -c '^k ' '%s') = 2", path), 0);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_true(rf_ledger_key_retired(l, k1));
	assert_true(rf_ledger_key_retired(l, k2));
	assert_int_equal(rf_ledger_retire_keys(l, ids, NULL, 2), 0);

	/* The largest tree head signed with each key: a smaller one is not
	 * kept, each key has its own, and they survive a reopen. */
	memset(root, 7, sizeof(root));
	memset(root2, 9, sizeof(root2));
	assert_false(rf_ledger_sth_last(l, k1, &size, got));
	assert_int_equal(rf_ledger_sth_keep(l, k1, 10, root), 0);
	assert_int_equal(rf_ledger_sth_keep(l, k1, 5, root2), 0);
	assert_true(rf_ledger_sth_last(l, k1, &size, got));
	assert_int_equal(size, 10);
	assert_memory_equal(got, root, sizeof(root));
	assert_false(rf_ledger_sth_last(l, k2, &size, got));
	rf_ledger_free(l);
	assert_int_equal(tu_sh("test $(grep -c '^k ' '%s') = 2", path), 0);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_true(rf_ledger_sth_last(l, k1, &size, got));
	assert_int_equal(size, 10);
	assert_memory_equal(got, root, sizeof(root));
	/* Another key's head leaves this one's as it was. */
	assert_int_equal(rf_ledger_sth_keep(l, k2, 3, root2), 0);
	assert_true(rf_ledger_sth_last(l, k1, &size, got));
	assert_int_equal(size, 10);
	assert_true(rf_ledger_sth_last(l, k2, &size, got));
	assert_int_equal(size, 3);
	rf_ledger_free(l);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_true(rf_ledger_sth_last(l, k1, &size, got));
	assert_int_equal(size, 10);
	assert_memory_equal(got, root, sizeof(root));
	rf_ledger_free(l);
}

static void
test_ledger_connectors(void **state)
{
	struct fx *f = *state;
	struct rf_ledger *l = NULL;
	char path[1100];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/revoked.ledger", f->home);
	assert_int_equal(rf_store_connector_add(f->st, "sync", 1), 0);
	assert_int_equal(rf_store_connector_add(f->st, "arch", 1), 0);
	assert_int_equal(
	    rf_store_connector_set_state(f->st, "arch", "revoked"), 0);
	assert_int_equal(
	    rf_store_binding_add(f->st, "sync", "acme", "m365", 1), 0);

	/* A ledger from before bindings were kept (no "s 2"): the store's
	 * bindings and revoked connectors are taken once, at the next
	 * follow, with its revocations and keys kept as they were. */
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "k %064d\np 0\n", 0);
	fclose(fp);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_false(rf_ledger_bound(l, "sync", "acme", "m365"));
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_bound(l, "sync", "acme", "m365"));
	assert_false(rf_ledger_bound(l, "sync", "acme", "other"));
	assert_false(rf_ledger_bound(l, "arch", "acme", "m365"));
	assert_true(rf_ledger_connector_revoked(l, "arch"));
	assert_false(rf_ledger_connector_revoked(l, "sync"));
	assert_int_equal(tu_sh("grep -qx 's 2' '%s'", path), 0);

	/* Later, a binding written into the store (as serve's user could) is
	 * not taken, nor is a revoked connector made active again forgotten:
	 * neither at the next follow, nor after a reopen. */
	assert_int_equal(
	    rf_store_binding_add(f->st, "sync", "acme", "forged", 2), 0);
	assert_int_equal(
	    rf_store_connector_set_state(f->st, "arch", "active"), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_false(rf_ledger_bound(l, "sync", "acme", "forged"));
	assert_true(rf_ledger_connector_revoked(l, "arch"));

	/* An administrator's binding and revocation (rf_keys_note). */
	assert_int_equal(rf_ledger_bind(l, "sync", "globex", "m365"), 0);
	assert_int_equal(rf_ledger_revoke_connector(l, "sync"), 0);
	assert_int_equal(
	    rf_ledger_bind(l, "sync", "bad tenant", "m365"), RF_ERR_ARG);
	assert_int_equal(rf_ledger_bind(l, "", "acme", "m365"), RF_ERR_ARG);
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_bound(l, "sync", "globex", "m365"));
	assert_true(rf_ledger_bound(l, "sync", "acme", "m365"));
	assert_false(rf_ledger_bound(l, "sync", "acme", "forged"));
	assert_true(rf_ledger_connector_revoked(l, "sync"));
	assert_true(rf_ledger_key_retired(l,
	    "000000000000000000000000000000000000000000000000000000000000000"
	    "0"));
	rf_ledger_free(l);
	/* Seeded once: one "s 2" line. */
	assert_int_equal(tu_sh("test $(grep -c '^s 2$' '%s') = 1", path), 0);
}

static void
test_ledger_items(void **state)
{
	struct fx *f = *state;
	struct rf_ledger *l = NULL;
	struct rf_incident_rec inc;
	struct rf_item_rec it;
	char k7[65], k8[65], path[1100];
	uint8_t ch[2];
	struct rf_knote_item a[2] = {
	    {"acme", "m365", k7}, {"globex", "m365", k7}};
	struct rf_knote_item b = {"acme", "m365", k8};
	struct rf_knote_item bad = {"acme corp", "m365", k7};
	struct rf_knote_item nokey = {"acme", "m365", "7"};

	memset(k7, '7', 64);
	k7[64] = '\0';
	memset(k8, '8', 64);
	k8[64] = '\0';

	snprintf(path, sizeof(path), "%s/revoked.ledger", f->home);
	/* An open incident in the store at first use: its affected items
	 * are taken; a contained one is not. */
	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "tenant:acme");
	snprintf(inc.reason, sizeof(inc.reason), "test");
	snprintf(inc.state, sizeof(inc.state), "open");
	inc.opened = 1;
	assert_int_equal(rf_store_incident_add(f->st, &inc), 0);
	memset(&it, 0, sizeof(it));
	it.incident = inc.id;
	it.conn = 1;
	snprintf(it.tenant, sizeof(it.tenant), "acme");
	snprintf(it.name, sizeof(it.name), "seeded");
	snprintf(it.rp, sizeof(it.rp), "entra");
	snprintf(it.state, sizeof(it.state), "affected");
	memset(it.old_key, 'c', 64);
	it.old_key[64] = '\0';
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	it.conn = 2;
	snprintf(it.name, sizeof(it.name), "done");
	snprintf(it.state, sizeof(it.state), "contained");
	assert_int_equal(rf_store_item_add(f->st, &it), 0);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_affected(l, "acme", "seeded"));
	assert_false(rf_ledger_affected(l, "acme", "done"));

	/* Two credentials' incidents on one connection (one contained, a
	 * later one open): affected until both are cleared. */
	assert_int_equal(rf_ledger_items(l, 1, a, 2, ch), 0);
	assert_true(ch[0] && ch[1]);
	assert_int_equal(rf_ledger_items(l, 1, &b, 1, NULL), 0);
	assert_true(rf_ledger_affected(l, "acme", "m365"));
	assert_true(rf_ledger_affected(l, "globex", "m365"));
	assert_false(rf_ledger_affected(l, "acme", "other"));
	assert_int_equal(rf_ledger_items(l, 0, a, 2, ch), 0);
	assert_true(ch[0] && ch[1]);
	assert_true(rf_ledger_affected(l, "acme", "m365")); /* k8's */
	assert_false(rf_ledger_affected(l, "globex", "m365"));
	/* Noted twice: counted once, and the second did not move it. */
	assert_int_equal(rf_ledger_items(l, 0, a, 1, ch), 0);
	assert_false(ch[0]);
	/* The last note wins: a credential waived (cleared) and then
	 * affected by a later incident is affected again, and a reopen
	 * reads it so. */
	assert_int_equal(rf_ledger_items(l, 1, &a[1], 1, ch), 0);
	assert_true(ch[0]);
	assert_true(rf_ledger_affected(l, "globex", "m365"));
	assert_int_equal(rf_ledger_items(l, 1, &bad, 1, NULL), RF_ERR_ARG);
	assert_int_equal(rf_ledger_items(l, 1, &nokey, 1, NULL), RF_ERR_ARG);
	rf_ledger_free(l);
	l = NULL;

	/* The same after a reopen; then the last one clears. */
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_true(rf_ledger_affected(l, "acme", "m365"));
	assert_true(rf_ledger_affected(l, "globex", "m365"));
	assert_int_equal(rf_ledger_items(l, 0, &a[1], 1, NULL), 0);
	assert_false(rf_ledger_affected(l, "globex", "m365"));
	assert_true(rf_ledger_affected(l, "acme", "seeded"));
	assert_int_equal(rf_ledger_items(l, 0, &b, 1, NULL), 0);
	assert_false(rf_ledger_affected(l, "acme", "m365"));
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_false(rf_ledger_affected(l, "acme", "m365"));
	rf_ledger_free(l);
}

static void
key_row(struct fx *f, char c, const char *purpose, char id[65])
{
	struct rf_key_rec k;

	memset(&k, 0, sizeof(k));
	memset(id, c, 64);
	id[64] = '\0';
	snprintf(k.id, sizeof(k.id), "%s", id);
	snprintf(k.alg, sizeof(k.alg), "ec-p256");
	snprintf(k.purpose, sizeof(k.purpose), "%s", purpose);
	snprintf(k.state, sizeof(k.state), "active");
	assert_int_equal(rf_store_key_add(f->st, &k), 0);
}

/* What each CA key is: the store's at first use (and on upgrade from a
 * ledger without them), then only what keyd made, across reopens. */
static void
test_ledger_cas(void **state)
{
	struct fx *f = *state;
	struct rf_ledger *l = NULL;
	char path[1100], root[65], iss[65], conn[65], later[65], made[65];

	snprintf(path, sizeof(path), "%s/cas.ledger", f->home);
	key_row(f, 'a', "root", root);
	key_row(f, 'b', "issuing", iss);
	key_row(f, 'c', "connection", conn);
	/* A ledger from before CA keys were kept: connectors taken, no 's 3'.
	 */
	assert_int_equal(
	    tu_sh("printf 's 2\\np 0\\n' >'%s'; chmod 600 '%s'", path, path),
	    0);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_null(rf_ledger_key_role(l, root));
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_string_equal(rf_ledger_key_role(l, root), "root");
	assert_string_equal(rf_ledger_key_role(l, iss), "issuing");
	assert_null(rf_ledger_key_role(l, conn));
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(tu_sh("grep -qx 's 3' '%s'", path), 0);

	/* The store renames keys afterwards: the ledger keeps what it took,
	 * and takes no key the store now calls a CA's. */
	assert_int_equal(tu_sh("sqlite3 '%s' \"UPDATE keys SET purpose = "
			       "'issuing' WHERE purpose = 'root'; UPDATE keys "
			       "SET purpose = 'ocsp' WHERE id = '%s'\"",
			     f->path, conn),
	    0);
	key_row(f, 'd', "audit", later);
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_int_equal(rf_ledger_follow(l, f->st), 0);
	assert_string_equal(rf_ledger_key_role(l, root), "root");
	assert_null(rf_ledger_key_role(l, conn));
	assert_null(rf_ledger_key_role(l, later));

	/* keyd's own keygen: kept durably; a bad role or id is refused. */
	memset(made, 'e', 64);
	made[64] = '\0';
	assert_int_equal(rf_ledger_ca_key(l, made, "issuing"), 0);
	assert_int_equal(rf_ledger_ca_key(l, made, "tls"), RF_ERR_ARG);
	rf_err_clear();
	assert_int_equal(rf_ledger_ca_key(l, "short", "root"), RF_ERR_ARG);
	rf_err_clear();
	rf_ledger_free(l);
	l = NULL;
	assert_int_equal(rf_ledger_open(path, &l), 0);
	assert_string_equal(rf_ledger_key_role(l, made), "issuing");
	assert_string_equal(rf_ledger_key_role(l, iss), "issuing");
	rf_ledger_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ledger, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ledger_connectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_items, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ledger_cas, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
