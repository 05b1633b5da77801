/*
 * limits.c: budgets of what an unauthenticated peer can make the token do
 * (docs/serve.md "Budgets").
 *
 * Two kinds of signature are made for anyone who connects: a TLS
 * handshake's (CertificateVerify, or the TLS 1.2 ServerKeyExchange) and
 * an on-demand OCSP response's (several CertIDs, or SHA-2 CertIDs). Each
 * kind has a global token bucket and one per source (an IPv4 /32, an IPv6
 * /64: one host can hold a whole /64), both refilled continuously at their
 * rate per second and holding at most one second's worth. Sources live in
 * a fixed table, direct-mapped by a keyed hash of the prefix: a source
 * that takes another's slot starts with a full bucket, so cycling
 * addresses gains at most the global budget, which bounds everything.
 *
 * Every signature adds a leaf to the audit record; their bytes are counted
 * per UTC day, and past cfg->anon_audit_bytes_day nothing more is signed
 * for anonymous peers until the day rolls over.
 *
 * A TLS server signs before it sees the client's certificate, so those
 * bytes are everyone's: a flood would spend them and lock connectors out
 * of new handshakes until the day rolls. Sources a connector was served
 * from (a 200 of the connector API, or an assertion in the store at
 * start) are known for a week from then: past the day's bytes, their
 * handshakes may spend a reserve of a quarter more, and the global
 * bucket, which a flood keeps empty, does not hold them back (their own
 * source's does).
 *
 * Connections are counted here too (conn.c), per source and per network:
 * an IPv6 /48 holds 65,536 /64s, each a source, so a network holds at
 * most RF_HTTP_NET_CONNS times conns_per_source connections (and at most
 * 1/RF_HTTP_NET_CONNS_PART of what serve holds), and its connections'
 * request bodies at most a share of the bound on all of them (h1.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "audit/audit.h"
#include "http/http_int.h"
#include "store/store_connector.h"

#define SOURCES RF_HTTP_SOURCES /* per budget; a power of two */
#define KNOWN 1024		/* connector sources kept; a power of two */
#define KNOWN_TTL (7 * 86400)
#define KNOWN_SEED_ROWS 100000 /* assertions read at start */

struct bucket {
	double tokens;
	uint64_t last_ms; /* 0: never used */
};

struct source {
	uint8_t prefix[8]; /* /32 in the first 4 bytes, or the /64 */
	uint8_t v6;
	struct bucket b;
};

struct budget {
	double rate, src_rate;
	struct bucket global;
	struct source src[SOURCES];
	uint64_t allowed, refused;
};

struct known {
	uint8_t prefix[8];
	uint8_t v6;
	int64_t until; /* 0: a free slot */
};

struct rf_http_limits {
	pthread_mutex_t lock;
	struct budget b[2];
	uint64_t day_max;
	int64_t day;
	uint64_t day_bytes;
	uint64_t hkey[2]; /* keyed hash: slots cannot be aimed at */
	struct known known[KNOWN];
	/* Connections held (conn.c) per source slot and per network slot,
	 * and the request-body bytes held per network slot (h1.c); atomic. */
	uint32_t conns_max; /* cfg->conns_per_source; 0: no bound */
	uint32_t net_max;   /* a network's; 0: no bound */
	uint32_t src_conns[SOURCES];
	uint32_t net_conns[SOURCES];
	size_t net_bodies[SOURCES];
};

int
rf_http_limits_new(const struct rf_config *cfg, struct rf_http_limits **out)
{
	struct rf_http_limits *l;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l);
		return rf_err_set(RF_ERR_INTERNAL, "limits: mutex");
	}
	if (RAND_bytes((unsigned char *)l->hkey, sizeof(l->hkey)) != 1) {
		rf_http_limits_free(l);
		return rf_err_set(RF_ERR_INTERNAL, "limits: no random bytes");
	}
	l->b[RF_HTTP_BUDGET_TLS].rate = cfg->tls_handshake_rate;
	l->b[RF_HTTP_BUDGET_TLS].src_rate = cfg->tls_handshake_source_rate;
	l->b[RF_HTTP_BUDGET_OCSP].rate = cfg->ocsp_ondemand_rate;
	l->b[RF_HTTP_BUDGET_OCSP].src_rate = cfg->ocsp_ondemand_source_rate;
	l->day_max = (uint64_t)cfg->anon_audit_bytes_day;
	l->conns_max = (uint32_t)cfg->conns_per_source;
	l->net_max = l->conns_max * RF_HTTP_NET_CONNS;
	l->day = -1;
	*out = l;
	return 0;
}

void
rf_http_limits_free(struct rf_http_limits *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* Refill b at rate per second (at most one second's worth); take one. */
static int
bucket_take(struct bucket *b, double rate, uint64_t now_ms, int take)
{
	if (b->last_ms == 0) {
		b->tokens = rate;
	} else if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
		if (b->tokens > rate)
			b->tokens = rate;
	}
	b->last_ms = now_ms;
	if (b->tokens < 1.0)
		return 0;
	if (take)
		b->tokens -= 1.0;
	return 1;
}

/* The source's prefix; 0 for an address family without one. */
static int
prefix_of(const struct sockaddr_storage *ss, uint8_t p[8], uint8_t *v6)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *v4;

	memset(p, 0, 8);
	*v6 = 0;
	if (ss == NULL)
		return 0;
	if (ss->ss_family == AF_INET) {
		memcpy(p, &s4->sin_addr, 4);
		return 1;
	}
	if (ss->ss_family != AF_INET6)
		return 0;
	if ((v4 = rf_ip_v4mapped(s6->sin6_addr.s6_addr)) != NULL) {
		memcpy(p, v4, 4); /* IPv4-mapped */
		return 1;
	}
	memcpy(p, s6->sin6_addr.s6_addr, 8);
	*v6 = 1;
	return 1;
}

void
rf_http_peer_addr(const struct sockaddr_storage *ss, char out[RF_HTTP_ADDR_MAX])
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	uint8_t p[8], v6;

	out[0] = '\0';
	if (prefix_of(ss, p, &v6) == 0)
		return;
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &s4->sin_addr, out, RF_HTTP_ADDR_MAX);
	else if (!v6) /* IPv4-mapped: the IPv4 address it carries */
		inet_ntop(
		    AF_INET, s6->sin6_addr.s6_addr + 12, out, RF_HTTP_ADDR_MAX);
	else
		inet_ntop(AF_INET6, &s6->sin6_addr, out, RF_HTTP_ADDR_MAX);
}

socklen_t
rf_http_addr_parse(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return sizeof(*s6);
	}
	return 0;
}

void
rf_http_limits_key(struct rf_http_limits *l, uint64_t k0, uint64_t k1)
{
	l->hkey[0] = k0;
	l->hkey[1] = k1;
}

static size_t
slot_of(const struct rf_http_limits *l, const uint8_t p[8], uint8_t v6)
{
	uint64_t x;

	memcpy(&x, p, 8);
	x ^= l->hkey[0] ^ v6;
	/* splitmix64 finaliser, keyed twice. */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x ^= l->hkey[1];
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (size_t)(x & (SOURCES - 1));
}

/* One more in *n unless that makes more than max (0: no bound). */
static int
count_take(uint32_t *n, uint32_t max)
{
	if (__atomic_add_fetch(n, 1, __ATOMIC_RELAXED) <= max || max == 0)
		return 1;
	__atomic_sub_fetch(n, 1, __ATOMIC_RELAXED);
	return 0;
}

int
rf_http_limits_conn_take(struct rf_http_limits *l,
    const struct sockaddr_storage *peer, struct rf_http_place *pl)
{
	uint8_t p[8], v6;
	size_t src, net;

	pl->src = pl->net = RF_HTTP_NO_SOURCE;
	if (l == NULL || !prefix_of(peer, p, &v6))
		return 1;
	src = slot_of(l, p, v6);
	/* The network: an IPv6 /48 (its /64s are free to whoever holds
	 * it), an IPv4 address on its own. Hashed apart from sources. */
	if (v6)
		p[6] = p[7] = 0;
	net = slot_of(l, p, v6 | 2);
	if (!count_take(&l->src_conns[src], l->conns_max))
		return 0;
	/* An IPv4 address is bounded as a source already (it is its own
	 * network): counted, not bounded again, so that one NAT address
	 * keeps conns_per_source. */
	if (!count_take(&l->net_conns[net],
		v6 ? __atomic_load_n(&l->net_max, __ATOMIC_RELAXED) : 0)) {
		__atomic_sub_fetch(&l->src_conns[src], 1, __ATOMIC_RELAXED);
		return 0;
	}
	pl->src = src;
	pl->net = net;
	return 1;
}

void
rf_http_limits_conn_drop(struct rf_http_limits *l, struct rf_http_place *pl)
{
	if (l != NULL && pl->src != RF_HTTP_NO_SOURCE) {
		__atomic_sub_fetch(&l->src_conns[pl->src], 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&l->net_conns[pl->net], 1, __ATOMIC_RELAXED);
	}
	pl->src = pl->net = RF_HTTP_NO_SOURCE;
}

void
rf_http_limits_set_max_conns(struct rf_http_limits *l, size_t max)
{
	size_t part = max / RF_HTTP_NET_CONNS_PART;

	if (l->conns_max == 0)
		return; /* conns_per_source 0: no bound at all */
	if (part < 1)
		part = 1;
	if (part > (size_t)l->conns_max * RF_HTTP_NET_CONNS)
		part = (size_t)l->conns_max * RF_HTTP_NET_CONNS;
	__atomic_store_n(&l->net_max, (uint32_t)part, __ATOMIC_RELAXED);
}

size_t *
rf_http_limits_net_bodies(
    struct rf_http_limits *l, const struct rf_http_place *pl)
{
	if (l == NULL || pl->net == RF_HTTP_NO_SOURCE)
		return NULL;
	return &l->net_bodies[pl->net];
}

/* Whether p is a connector's source still, under l->lock. */
static int
known_has(
    const struct rf_http_limits *l, const uint8_t p[8], uint8_t v6, int64_t now)
{
	const struct known *k = &l->known[slot_of(l, p, v6) & (KNOWN - 1)];

	return k->until > now && k->v6 == v6 && memcmp(k->prefix, p, 8) == 0;
}

void
rf_http_limits_known(
    struct rf_http_limits *l, const struct sockaddr_storage *peer, int64_t now)
{
	struct known *k;
	uint8_t p[8], v6;

	if (l == NULL || !prefix_of(peer, p, &v6))
		return;
	pthread_mutex_lock(&l->lock);
	k = &l->known[slot_of(l, p, v6) & (KNOWN - 1)];
	/* The later week wins the slot: a source served now always does,
	 * and the start's seed (newest first) keeps each source's last. */
	if (k->until <= now + KNOWN_TTL) {
		memcpy(k->prefix, p, 8);
		k->v6 = v6;
		k->until = now + KNOWN_TTL;
	}
	pthread_mutex_unlock(&l->lock);
}

/*
 * rf_store_assertion_sources: an address, as the recorder keeps it, known
 * for a week from that assertion (not from the server's start: a source
 * last served six days ago is known for one more day).
 */
static int
known_seed(void *arg, const char *source, int64_t time)
{
	struct rf_http_limits *l = arg;
	struct sockaddr_storage ss;

	if (rf_http_addr_parse(source, 0, &ss) != 0)
		rf_http_limits_known(l, &ss, time);
	return 0;
}

int
rf_http_limits_seed_known(
    struct rf_http_limits *l, struct rf_store *st, int64_t now)
{
	return rf_store_assertion_sources(
	    st, now - KNOWN_TTL, KNOWN_SEED_ROWS, known_seed, l);
}

int
rf_http_limits_take(struct rf_http_limits *l, enum rf_http_budget which,
    const struct sockaddr_storage *peer, size_t leaf_bytes, uint64_t now_ms,
    int64_t day)
{
	struct budget *b;
	struct source *s = NULL;
	uint8_t p[8], v6;
	int ok, has_prefix, known = 0;

	if (l == NULL ||
	    (which != RF_HTTP_BUDGET_TLS && which != RF_HTTP_BUDGET_OCSP))
		return 0;
	if (now_ms == 0)
		now_ms = 1; /* 0 marks a bucket never used */
	b = &l->b[which];
	pthread_mutex_lock(&l->lock);
	if (day != l->day) {
		l->day = day;
		l->day_bytes = 0;
	}
	has_prefix = prefix_of(peer, p, &v6);
	if (which == RF_HTTP_BUDGET_TLS && has_prefix)
		known = known_has(l, p, v6, rf_now());
	ok = l->day_bytes + leaf_bytes <=
	    l->day_max + (known ? l->day_max / 4 : 0);
	if (ok && has_prefix) {
		s = &b->src[slot_of(l, p, v6)];
		if (s->b.last_ms == 0 || s->v6 != v6 ||
		    memcmp(s->prefix, p, 8) != 0) {
			memcpy(s->prefix, p, 8);
			s->v6 = v6;
			s->b.last_ms = 0; /* a new source: a full bucket */
		}
		ok = bucket_take(&s->b, b->src_rate, now_ms, 0);
	}
	/* Both must allow it before either is charged (a known source:
	 * its own only). */
	if (ok && !known)
		ok = bucket_take(&b->global, b->rate, now_ms, 1);
	if (ok && s != NULL)
		s->b.tokens -= 1.0;
	if (ok) {
		l->day_bytes += leaf_bytes;
		b->allowed++;
	} else
		b->refused++;
	pthread_mutex_unlock(&l->lock);
	return ok;
}

struct seed_ctx {
	int ondemand_only; /* the OCSP key: only its on-demand signatures */
	uint64_t bytes;
};

static int
seed_leaf(void *arg, const struct rf_leaf_rec *lf)
{
	struct seed_ctx *c = arg;
	json_t *j;
	const char *ref;

	if (lf->type == NULL || strcmp(lf->type, "sign") != 0)
		return 0;
	if (c->ondemand_only) {
		/* Pre-signed answers are the server's own work: skip them
		 * without parsing unless the leaf can be on-demand. */
		if (memmem(lf->data, lf->len, "on-demand", 9) == NULL ||
		    (j = json_loadb(
			 (const char *)lf->data, lf->len, 0, NULL)) == NULL)
			return 0;
		ref = json_string_value(json_object_get(j, "ref"));
		if (ref == NULL || strncmp(ref, "on-demand", 9) != 0) {
			json_decref(j);
			return 0;
		}
		json_decref(j);
	}
	c->bytes += lf->len;
	return 0;
}

int
rf_http_limits_seed(struct rf_http_limits *l, struct rf_audit *audit,
    const char *tls_key_id, const char *ocsp_key_id, int64_t now)
{
	struct rf_audit_query q;
	struct seed_ctx c = {0, 0};
	int r;

	memset(&q, 0, sizeof(q));
	q.since = now - now % 86400;
	if (tls_key_id != NULL) {
		q.key_id = tls_key_id;
		if ((r = rf_audit_search(audit, &q, seed_leaf, &c)) != 0)
			return r;
	}
	if (ocsp_key_id != NULL) {
		c.ondemand_only = 1;
		q.key_id = ocsp_key_id;
		if ((r = rf_audit_search(audit, &q, seed_leaf, &c)) != 0)
			return r;
	}
	pthread_mutex_lock(&l->lock);
	if (l->day != now / 86400) {
		l->day = now / 86400;
		l->day_bytes = 0;
	}
	if (c.bytes > l->day_bytes)
		l->day_bytes = c.bytes;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

void
rf_http_limits_stats(struct rf_http_limits *l, uint64_t refused[2],
    uint64_t allowed[2], uint64_t *day_bytes)
{
	int i;

	pthread_mutex_lock(&l->lock);
	for (i = 0; i < 2; i++) {
		refused[i] = l->b[i].refused;
		allowed[i] = l->b[i].allowed;
	}
	*day_bytes = l->day_bytes;
	pthread_mutex_unlock(&l->lock);
}

size_t
rf_http_sign_leaf_bytes(const char *key_id, const char *what, const char *ref,
    size_t digest_len, const struct rf_actor *who)
{
	/* The leaf keys writes before a signature: its canonical bytes. */
	static const char zeros[129] =
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000";
	struct rf_audit_event ev;
	char digest[129];
	uint8_t *leaf = NULL;
	size_t len = 0;

	if (digest_len * 2 > sizeof(digest) - 1)
		digest_len = (sizeof(digest) - 1) / 2;
	memcpy(digest, zeros, digest_len * 2);
	digest[digest_len * 2] = '\0';
	memset(&ev, 0, sizeof(ev));
	ev.type = "sign";
	ev.key_id = key_id;
	ev.what = what;
	ev.ref = ref;
	ev.digest = digest;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	if (rf_audit_encode(&ev, rf_now(), &leaf, &len) != 0) {
		rf_err_clear();
		return 1024; /* cannot happen for ASCII fields: be safe */
	}
	free(leaf);
	return len;
}
