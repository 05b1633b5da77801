/*
 * serve's budgets (src/http/limits.c) on their own: per-source buckets
 * (IPv4 /32, IPv6 /64, IPv4-mapped as IPv4), the global bucket across
 * sources, refill with time, the bytes a day and their roll-over, and
 * the leaf size counted for a signature, and a peer's source address;
 * the connectors' sources known again at start (from the store), and the
 * connections held per source and per network (IPv6 /48).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "http/http_int.h"
#include "store/store.h"
#include "store/store_connector.h"

static struct rf_http_limits *
limits(int rate, int src_rate, int day_bytes)
{
	struct rf_config cfg;
	struct rf_http_limits *l = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.tls_handshake_rate = rate;
	cfg.tls_handshake_source_rate = src_rate;
	cfg.ocsp_ondemand_rate = rate;
	cfg.ocsp_ondemand_source_rate = src_rate;
	cfg.anon_audit_bytes_day = day_bytes;
	assert_int_equal(rf_http_limits_new(&cfg, &l), 0);
	return l;
}

/* How many of n tries at time t (ms) from ss go ahead. */
static int
takes(struct rf_http_limits *l, enum rf_http_budget b,
    const struct sockaddr_storage *ss, int n, uint64_t t)
{
	int i, ok = 0;

	for (i = 0; i < n; i++)
		ok += rf_http_limits_take(l, b, ss, 100, t, 1);
	return ok;
}

static void
test_per_source(void **state)
{
	struct rf_http_limits *l = limits(100, 3, 1000000);
	struct sockaddr_storage a = tu_addr("192.0.2.1"),
				b = tu_addr("192.0.2.2"),
				m = tu_addr("::ffff:192.0.2.1");
	uint64_t refused[2], allowed[2], bytes;

	(void)state;
	/* A burst of one second's worth, then nothing until it refills. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 10, 1000), 3);
	/* The same host as an IPv4-mapped address: the same source. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &m, 1, 1000), 0);
	/* Another source has its own bucket; another kind too. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &b, 10, 1000), 3);
	assert_int_equal(takes(l, RF_HTTP_BUDGET_OCSP, &a, 10, 1000), 3);
	/* A third of a second later: one more token (3/s). */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 10, 1334), 1);
	/* Much later: full again, but never more than a second's worth. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 10, 60000), 3);
	rf_http_limits_stats(l, refused, allowed, &bytes);
	assert_int_equal(allowed[RF_HTTP_BUDGET_TLS], 10);
	assert_int_equal(allowed[RF_HTTP_BUDGET_OCSP], 3);
	assert_int_equal(refused[RF_HTTP_BUDGET_TLS], 31);
	assert_int_equal(bytes, 1300);
	rf_http_limits_free(l);
}

static void
test_v6_prefix(void **state)
{
	struct rf_http_limits *l = limits(100, 2, 1000000);
	struct sockaddr_storage a = tu_addr("2001:db8:1:2::1"),
				b = tu_addr("2001:db8:1:2:ffff::9"),
				c = tu_addr("2001:db8:1:3::1");

	(void)state;
	/* Two addresses of one /64 share a bucket; the next /64 does not. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 1, 1000), 1);
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &b, 5, 1000), 1);
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &c, 5, 1000), 2);
	rf_http_limits_free(l);
}

static void
test_global(void **state)
{
	struct rf_http_limits *l = limits(5, 2, 1000000);
	struct sockaddr_storage ss;
	char a[32];
	int i, ok = 0;

	(void)state;
	/* Fifty sources of two each: the global five is what goes ahead. */
	for (i = 0; i < 50; i++) {
		snprintf(a, sizeof(a), "198.51.100.%d", i + 1);
		ss = tu_addr(a);
		ok += takes(l, RF_HTTP_BUDGET_TLS, &ss, 2, 1000);
	}
	assert_int_equal(ok, 5);
	/* A refusal by the global bucket did not charge the source. */
	ss = tu_addr("198.51.100.50");
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &ss, 5, 2000), 2);
	/* No address (unknown family): the global bucket alone. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_OCSP, NULL, 9, 1000), 5);
	rf_http_limits_free(l);
}

static void
test_day_bytes(void **state)
{
	struct rf_http_limits *l = limits(1000, 1000, 350);
	struct sockaddr_storage a = tu_addr("203.0.113.7");

	(void)state;
	/* 100 bytes a leaf: three fit in 350, the fourth does not. */
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 10, 1000), 3);
	assert_int_equal(
	    rf_http_limits_take(l, RF_HTTP_BUDGET_OCSP, &a, 50, 1000, 1), 1);
	assert_int_equal(
	    rf_http_limits_take(l, RF_HTTP_BUDGET_OCSP, &a, 1, 1000, 1), 0);
	/* The next day starts from zero. */
	assert_int_equal(
	    rf_http_limits_take(l, RF_HTTP_BUDGET_TLS, &a, 100, 1001, 2), 1);
	rf_http_limits_free(l);
	/* 0 bytes a day: nothing is signed for anonymous peers. */
	l = limits(1000, 1000, 0);
	assert_int_equal(takes(l, RF_HTTP_BUDGET_TLS, &a, 3, 1000), 0);
	rf_http_limits_free(l);
	rf_http_limits_free(NULL);
}

static void
test_leaf_bytes(void **state)
{
	struct rf_actor who = {"alice", "serve tls"};
	size_t a, b;

	(void)state;
	a = rf_http_sign_leaf_bytes("k1", "tls", "127.0.0.1:1", 32, &who);
	b = rf_http_sign_leaf_bytes("k1", "tls", "127.0.0.1:12345", 32, &who);
	/* The canonical leaf: the digest's hex and every field count. */
	assert_true(a > 64 + strlen("127.0.0.1:1"));
	assert_int_equal(b - a, 4);
	assert_int_equal(
	    rf_http_sign_leaf_bytes("k1", "tls", "127.0.0.1:1", 48, &who) - a,
	    32);
}

/* A sighting's source address: IPv4, IPv6, IPv4-mapped, unknown. */
static void
test_peer_addr(void **state)
{
	static const char *const cases[][2] = {
	    {"192.0.2.7", "192.0.2.7"},
	    {"2001:db8:1:2::7", "2001:db8:1:2::7"},
	    {"::ffff:198.51.100.9", "198.51.100.9"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	};
	struct sockaddr_storage ss;
	char a[RF_HTTP_ADDR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ss = tu_addr(cases[i][0]);
		rf_http_peer_addr(&ss, a);
		assert_string_equal(a, cases[i][1]);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	rf_http_peer_addr(&ss, a);
	assert_string_equal(a, "");
	rf_http_peer_addr(NULL, a);
	assert_string_equal(a, "");
}

static struct rf_http_limits *
conn_limits(int per_source, size_t max_conns)
{
	struct rf_config cfg;
	struct rf_http_limits *l = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.conns_per_source = per_source;
	assert_int_equal(rf_http_limits_new(&cfg, &l), 0);
	/* Which sources share a slot, the same every run: with a random
	 * key, the /64 of the third /48 met a held connection's slot in 1
	 * run of 100 (7 held, not 8), and the networks' slots met about 1
	 * run in 500. With this key the slots this test counts in are
	 * its own. */
	rf_http_limits_key(l, 0x52494e4746454e43ULL, 0x746573746b657931ULL);
	rf_http_limits_set_max_conns(l, max_conns);
	return l;
}

/* How many of n connections from fmt's addresses (%x: 0 to n-1) are
 * held; their places in pl[0..n). */
static size_t
conns(struct rf_http_limits *l, const char *fmt, size_t n,
    struct rf_http_place *pl)
{
	struct sockaddr_storage ss;
	char a[64];
	size_t i, held = 0;

	for (i = 0; i < n; i++) {
		snprintf(a, sizeof(a), fmt, (unsigned)i);
		ss = tu_addr(a);
		if (rf_http_limits_conn_take(l, &ss, &pl[i]))
			held++;
		else
			pl[i].src = pl[i].net = RF_HTTP_NO_SOURCE;
	}
	return held;
}

/*
 * One IPv6 /48 holds 65,536 /64s, each a source: connections from many
 * /64s of one /48 stop at the network's share (RF_HTTP_NET_CONNS times
 * conns_per_source, at most an eighth of what serve holds), while another
 * /48 and IPv4 addresses are still held; one /64 still stops at
 * conns_per_source; a closed connection makes room again.
 */
static void
test_conns_per_network(void **state)
{
	struct rf_http_limits *l = conn_limits(8, 100000);
	struct rf_http_place pl[200], more[5], other;
	size_t i;

	(void)state;
	/* 200 /64s of 2001:db8:1::/48, one connection each: 4 x 8. */
	assert_int_equal(
	    conns(l, "2001:db8:1:%x::1", 200, pl), RF_HTTP_NET_CONNS * 8);
	assert_int_equal(conns(l, "2001:db8:2:%x::1", 5, more), 5);
	assert_int_equal(conns(l, "2001:db8:ffff:%x::7", 1, &other), 1);
	assert_int_equal(conns(l, "198.51.100.%u", 1, &other), 1);
	/* One /64 of yet another /48: conns_per_source. */
	assert_int_equal(conns(l, "2001:db8:3:1::%x", 20, pl + 100), 8);
	/* A connection of the first /48 closes: one more is held. */
	for (i = 0; pl[i].src == RF_HTTP_NO_SOURCE; i++)
		;
	rf_http_limits_conn_drop(l, &pl[i]);
	assert_int_equal(pl[i].net, RF_HTTP_NO_SOURCE);
	assert_int_equal(conns(l, "2001:db8:1:%x:1::1", 3, pl), 1);
	rf_http_limits_free(l);
	/* Few descriptors: an eighth of them. */
	l = conn_limits(256, 80);
	assert_int_equal(conns(l, "2001:db8:1:%x::1", 200, pl), 10);
	assert_int_equal(conns(l, "2001:db8:2:%x::1", 1, &other), 1);
	rf_http_limits_free(l);
	/* One IPv4 address (a NAT egress: its own network) keeps
	 * conns_per_source, whatever an eighth of the descriptors is. */
	l = conn_limits(200, 960);
	assert_int_equal(conns(l, "192.0.2.%u", 1, pl), 1);
	for (i = 1; i < 200; i++)
		assert_int_equal(conns(l, "192.0.2.0", 1, pl + i), 1);
	assert_int_equal(conns(l, "192.0.2.0", 1, &other), 0);
	rf_http_limits_free(l);
}

/* An assertion from source at t, as serve's recorder stores it. */
static void
assertion_at(struct rf_store *st, const char *source, int64_t t)
{
	static int n;
	struct rf_assertion_rec a;

	memset(&a, 0, sizeof(a));
	snprintf(a.jti, sizeof(a.jti), "jti-%d", ++n);
	a.time = t;
	a.exp = t + 600;
	snprintf(a.tenant, sizeof(a.tenant), "acme");
	snprintf(a.conn, sizeof(a.conn), "acme/m365");
	snprintf(a.connector, sizeof(a.connector), "sync");
	snprintf(a.source, sizeof(a.source), "%s", source);
	assert_int_equal(rf_store_assertion_add(st, &a), 0);
}

/*
 * 1 if ss is a connector's known source at the clock's time: past the
 * global bucket (one handshake a second, spent at once by another
 * source), which only a known source may skip.
 */
static int
is_known(
    struct rf_http_limits *l, const struct sockaddr_storage *ss, uint64_t ms)
{
	struct sockaddr_storage other = tu_addr("198.51.100.99");

	(void)rf_http_limits_take(l, RF_HTTP_BUDGET_TLS, &other, 100, ms, 1);
	return rf_http_limits_take(l, RF_HTTP_BUDGET_TLS, ss, 100, ms, 1);
}

/*
 * A restarted server knows a connector's source for a week from its last
 * assertion in the store, not from the restart: a source last served six
 * days ago is known for one more day (an older assertion of it read
 * after the last one does not shorten that), one last served eight days
 * ago is not known at all.
 */
static void
test_known_seed(void **state)
{
	const int64_t t = 1700000000, day = 86400;
	struct sockaddr_storage a = tu_addr("192.0.2.1"),
				b = tu_addr("2001:db8:1:2::5");
	struct rf_http_limits *l;
	struct rf_store *st = NULL;
	char *home = tu_home(), path[1024];

	(void)state;
	snprintf(path, sizeof(path), "%s/state.db", home);
	assert_int_equal(rf_store_open(path, 1, &st), 0);
	assertion_at(st, "192.0.2.1", t - 6 * day - day / 2);
	assertion_at(st, "192.0.2.1", t - 6 * day); /* its last */
	assertion_at(st, "2001:db8:1:2::5", t - 8 * day);
	rf_clock_set(t);
	l = limits(1, 100, 1000000);
	assert_int_equal(rf_http_limits_seed_known(l, st, t), 0);
	assert_true(is_known(l, &a, 1000));
	assert_false(is_known(l, &b, 2000));
	rf_clock_set(t + day - 60);
	assert_true(is_known(l, &a, 3000));
	rf_clock_set(t + day + 1);
	assert_false(is_known(l, &a, 4000));
	rf_clock_set(0);
	rf_http_limits_free(l);
	rf_store_free(st);
	tu_home_remove(home);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_per_source),
	    cmocka_unit_test(test_v6_prefix),
	    cmocka_unit_test(test_global),
	    cmocka_unit_test(test_day_bytes),
	    cmocka_unit_test(test_leaf_bytes),
	    cmocka_unit_test(test_peer_addr),
	    cmocka_unit_test(test_known_seed),
	    cmocka_unit_test(test_conns_per_network),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
