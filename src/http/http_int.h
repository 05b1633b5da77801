/* http_int.h: what server.c, snapshot.c and routes.c share. Private. */
#ifndef RF_HTTP_HTTP_INT_H
#define RF_HTTP_ISSUERS_MAX 16
#define RF_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "audit/audit.h"
#include "http/http.h"
#include "ocsp/ocsp.h"

/* One thing served from memory (a CA certificate, a CRL). */
struct rf_http_blob {
	char path[96];	   /* "/ca/root.der", "/crl/issuing.crl" */
	const char *ctype; /* Content-Type */
	uint8_t *data;
	size_t len;
	char etag[40];	       /* hex, no quotes */
	int64_t last_modified; /* 0: none */
	int64_t expires;       /* 0: none (then max-age 3600) */
};

/* An immutable set of blobs; readers hold a reference while sending. */
struct rf_http_snapshot {
	atomic_int refs;
	size_t n;
	struct rf_http_blob b[];
};

struct rf_conn;
struct rf_http_job;
struct rf_http_pool;
struct rf_http_limits;
struct rf_http_tickets;
struct rf_http_kslot;

struct rf_http_worker {
	struct rf_http *h;
	pthread_t tid;
	/* /audit only: this thread's own store connection, opened lazily. */
	struct rf_store *st;
	struct rf_audit *audit;
	/* The OCSP answer being sent (about 8 KiB: not on the stack). */
	struct rf_ocsp_answer ans;
	/*
	 * Last HTTP dates written, one per RF_HTTP_DATE_* slot: responses
	 * signed together share them, and Date changes once a second.
	 */
	int64_t date_t[3];
	char date_s[3][30];
	int epfd;	   /* its epoll set (conn.c) */
	int lfd;	   /* its plain listening socket */
	int tlfd;	   /* its TLS listening socket, or -1 */
	int accept_paused; /* under conn_lock: out of descriptors */
	/* A pool thread's own worker: its pool; NULL on an epoll worker. */
	struct rf_http_pool *pool;
	/* Answers the pools made for its connections (pool.c). */
	int donefd; /* eventfd in its set: done is not empty */
	pthread_mutex_t done_lock;
	int done_lock_ok;
	struct rf_http_job *done; /* under done_lock */
	/* Assertions whose signature it waits for itself (api.c): keyd
	 * connections of its own, in its set; NULL when it has none. */
	struct rf_http_kslot *ks;
	int nks;
	/* Connections closed during its current batch of events (conn.c). */
	struct rf_conn *dead;
};

/*
 * What an epoll event names besides listeners, stop and the done list:
 * the struct it points at begins with one of these.
 */
enum { RF_HTTP_EV_CONN = 1, RF_HTTP_EV_ASYNC, RF_HTTP_EV_KEYD };

#define RF_HTTP_MAX_ISSUERS 16
#define RF_HTTP_QUIET_MS 1000 /* store quiet this long before CRL/OCSP work */

#define RF_HTTP_EVIDENCE_MAX 4096
#define RF_HTTP_SOURCES 4096 /* source slots (limits.c); a power of two */
#define RF_HTTP_NO_SOURCE ((size_t)-1)
/* Sightings after re-establishment recorded one by one, a minute, and of
 * one source: anyone can ask, from many addresses (docs/incident.md). */
#define RF_HTTP_SIGHTING_LEAVES 60
#define RF_HTTP_SIGHTING_LEAVES_WHO 10
#define RF_HTTP_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/*
 * An on-demand OCSP signer (several CertIDs, SHA-2 CertIDs) with handles
 * of its own: it runs on worker threads, serialised by the responder, so
 * nothing else may use them.
 */
struct http_od {
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_key *key;
	struct rf_ocsp_signer *signer;
};

struct rf_http {
	/*
	 * Incident evidence (docs/incident.md): while an incident is open,
	 * workers note the serials of successful OCSP queries; the
	 * maintenance thread hands them to rf_incident_evidence.
	 */
	int watching; /* atomic: an incident is open */
	pthread_mutex_t ev_lock;
	int ev_lock_ok;
	size_t nev;
	char ev_serial[RF_HTTP_EVIDENCE_MAX][41];
	int64_t ev_time[RF_HTTP_EVIDENCE_MAX];
	char ev_source[RF_HTTP_EVIDENCE_MAX][RF_HTTP_ADDR_MAX]; /* "" unknown */
	uint32_t ev_count[RF_HTTP_EVIDENCE_MAX]; /* queries noted as one */
	uint64_t last_watch_ms;
	/* The sightings' leaves a minute (maintenance thread only). */
	struct rf_leaf_quota ev_quota;
	/* /healthz: whether keyd listened when last asked (atomics). */
	uint64_t keyd_probe_ms;
	int keyd_up;
	/* keyd started again when it is gone (custody.c): maintenance
	 * thread, but for the start's outcome, made on the signing pool. */
	struct http_keyd_restart {
		int (*start)(void *arg, const struct rf_config *cfg);
		void *arg;
		uint64_t down_ms; /* first found gone; 0: listening */
		uint64_t next_ms; /* no attempt before */
		uint64_t up_ms;	  /* the last start that came up */
		uint64_t wait_ms; /* the last wait between attempts */
		unsigned attempt; /* since keyd last stayed up */
		int stopped_said; /* "stopped on purpose" logged */
		int job;	  /* atomic: none, running, done */
		int r;		  /* the start's outcome, and why */
		char msg[512];
	} kr;
	const struct rf_config *cfg;
	struct rf_store *st; /* maintenance thread */
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_ca *ca;
	struct rf_actor who;
	struct rf_http_opts o;
	char addr[64];
	/* The listening sockets: plain HTTP, and HTTPS (fd -1 when off). */
	struct http_sock {
		int fd;
		struct sockaddr_storage ss; /* its address, port included */
		socklen_t sl;
		int port;
	} plain, tls;

	/*
	 * TLS (docs/serve.md): the policy context with the "tls" certificate
	 * and its issuer; each handshake gets an EVP_PKEY whose signature is
	 * an audited rf_keys signature made with these handles of its own,
	 * shared by the workers (keys serialises their appends).
	 */
	SSL_CTX *tls_ctx;
	struct rf_store *tls_st;
	struct rf_audit *tls_audit;
	struct rf_keys *tls_keys;
	/* The certificate, its issuer and its key: replaced while serving
	 * when an incident's contain renews them (tls_refresh), so each
	 * handshake takes its own references under tls_mu. */
	pthread_mutex_t tls_mu;
	int tls_mu_ok;
	struct rf_key *tls_key;
	X509 *tls_x, *tls_ix;
	char tls_serial[41];
	struct rf_actor tls_who;
	struct rf_connector_svc *csvc; /* the connector API (api.c) */

	/* Budgets of what anonymous peers make the token do (limits.c). */
	struct rf_http_limits *limits;
	struct rf_http_tickets *tickets; /* TLS session ticket keys */
	/* Requests that wait off the OCSP workers (pool.c): /audit, and
	 * those that wait on keyd's signature. */
	struct rf_http_pool *pools[3]; /* by enum rf_http_pool_kind */
	/*
	 * Both listeners (conn.c): nworkers threads, each with its own epoll
	 * set holding its listening sockets and its connections.
	 */
	int nworkers;
	struct rf_http_worker *w;
	int stopfd;
	int stopping; /* atomic: answer with "Connection: close" */
	pthread_mutex_t conn_lock;
	int conn_lock_ok;
	struct rf_conn *conns; /* under conn_lock */
	size_t nconns, max_conns;

	struct rf_store *resp_st; /* the responder's connection */
	struct rf_ocsp_responder *resp;
	struct rf_ocsp_signer *signer; /* maintenance refresh */
	/* Issuing CAs made by rotation, served besides "issuing". */
	struct http_issuer {
		char name[64];
		X509 *ic, *oc;
		struct rf_key *okey;
		char okey_id[65]; /* okey's, loaded or not */
		struct rf_ocsp_signer *signer;
		struct http_od od; /* its on-demand signer */
	} extra[RF_HTTP_ISSUERS_MAX];
	size_t nextra;
	/* On-demand signing of "issuing" (http_od). */
	struct http_od od;
	/* Atomics: when an on-demand answer's failure was last logged (its
	 * monotonic ms), and how many were not logged since (routes.c). */
	uint64_t od_log_ms, od_unlogged;

	pthread_mutex_t snap_lock;
	int snap_lock_ok;
	struct rf_http_snapshot *snap; /* under snap_lock */

	int mstopfd; /* eventfd: rf_http_stop() ends rf_http_run() */
	struct rf_http_notify *notify; /* serve.sock (notify.c) */

	/* Maintenance state. */
	int64_t counter;
	int have_counter, crl_dirty, ocsp_dirty, snap_dirty;
	uint64_t last_sweep_ms, last_crl_ms, last_ocsp_ms, last_sth_ms,
	    last_change_ms, last_snap_ms;
	char crl_issuers[RF_HTTP_MAX_ISSUERS][64];
	size_t ncrl_issuers;
	/*
	 * CAs made while serving (an incident's contain): the store is read
	 * again into a CA handle of serve's own, which replaces ca; the ones
	 * it replaced stay until rf_http_free (signers borrow their certs).
	 */
	struct rf_ca *own_ca[RF_HTTP_ISSUERS_MAX];
	size_t nown_ca;
	size_t ca_seen; /* CA records in the store when last looked */
	char lasterr[256];
};

uint64_t rf_http_mono_ms(void);
/* Whether keyd listens: asked at most every 250 ms (custody.c). */
int rf_http_keyd_up(struct rf_http *h);
/* Maintenance: keyd gone, started again (rf_http_keyd_restart). */
void rf_http_keyd_watch(struct rf_http *h, uint64_t now);
/* Another socket bound to hs's address with SO_REUSEPORT; -1 and errno. */
int rf_http_reuseport_socket(const struct http_sock *hs);
/* Seconds a connection may idle, or spend on one request. */
int rf_http_timeout(const struct rf_http *h);
/* Bytes a request body may have (max_request; 413 beyond). */
size_t rf_http_max_body(const struct rf_http *h);
void rf_http_log(struct rf_http *h, const char *what, int r);

/* Rebuild the snapshot from the store (maintenance thread). */
int rf_http_snapshot_reload(struct rf_http *h) RF_WUR;
/* A reference to the current snapshot (never NULL once running). */
struct rf_http_snapshot *rf_http_snapshot_get(struct rf_http *h);
void rf_http_snapshot_unref(struct rf_http_snapshot *s);

/*
 * A request and its response, as routes.c sees them: the same for the
 * plain listener and the TLS one (h1.c, conn.c).
 */
enum rf_http_method {
	RF_HTTP_GET = 1,
	RF_HTTP_HEAD,
	RF_HTTP_POST,
	RF_HTTP_OTHER /* anything else: 405 */
};

struct rf_http_req {
	enum rf_http_method method;
	const char *target;  /* raw request-target, NUL-terminated */
	const uint8_t *body; /* never NULL ("" when empty) */
	size_t bodylen;
	const char *if_none_match;	     /* NULL when absent */
	const struct sockaddr_storage *peer; /* the client; NULL: unknown */
	int tls;			     /* it came over TLS */
	/* TLS: the verified client certificate's serial (lowercase hex),
	 * NULL without one (api.c, connectors). */
	const char *client_serial;
	/* On a pool thread: a worker deferred it, and took its budgets. */
	int deferred;
};

#define RF_HTTP_RESP_HDRS 8

struct rf_http_resp {
	int code;
	const char *reason;
	size_t nh;
	struct rf_http_hdr {
		const char *name;
		char value[128];
	} h[RF_HTTP_RESP_HDRS];
	const uint8_t *body; /* len bytes; NULL for none */
	size_t len;
	/* What holds the body until it is sent: freed or released after. */
	void *heap;		       /* malloc'd: free() */
	struct rf_http_snapshot *snap; /* a snapshot reference */
};

/* rf_http_date(t) through w's cache slot (RF_HTTP_DATE_*). */
enum { RF_HTTP_DATE_THIS, RF_HTTP_DATE_NEXT, RF_HTTP_DATE_NOW };
const char *rf_http_worker_date(struct rf_http_worker *w, int slot, int64_t t);

/* o's status, with its reason phrase (RFC 9110 15). */
void rf_http_status(struct rf_http_resp *o, int code);
/* A short text answer ("text\n") with that status. */
void rf_http_error(struct rf_http_resp *o, int code, const char *text);
/*
 * The answer when a pool is at its cap, as q's route answers: tryLater
 * for OCSP, 503 with Retry-After (JSON for the API, text otherwise).
 */
void rf_http_busy(const struct rf_http_req *q, struct rf_http_resp *o);

/* Answer q into *o (zeroed here); rf_http_resp_done() when sent. */
void rf_http_handle(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o);
void rf_http_resp_done(struct rf_http_resp *o);

/*
 * The pools (pool.c), by what their requests wait for: the record
 * (/audit: few threads, niced) or keyd's signature (the connector API,
 * on-demand OCSP: enough threads to keep keyd's groups full).
 */
enum rf_http_pool_kind {
	RF_HTTP_POOL_NONE = 0, /* answered on the worker */
	RF_HTTP_POOL_AUDIT,
	RF_HTTP_POOL_SIGN,
	RF_HTTP_POOLS
};

/*
 * On a worker: answer q as rf_http_handle does, unless it must wait (on
 * the store or on keyd): then the pool that answers it, and nothing is
 * done but the budgets taken (q then goes with deferred set).
 */
enum rf_http_pool_kind rf_http_handle_fast(struct rf_http_worker *w,
    const struct rf_http_req *q, struct rf_http_resp *o);
/* A worker thread's last act: close what it alone used. */
void rf_http_worker_done(struct rf_http_worker *w);

/* The plain listener (conn.c). */
int rf_conn_setup(struct rf_http *h) RF_WUR; /* epoll set, listener in it */
void *rf_conn_worker(void *w);		     /* a worker thread's main */
/* On w's thread, outside any turn of j's connection: send j's answer
 * (made), free j, and go on with the connection. */
void rf_conn_job_answer(struct rf_http_worker *w, struct rf_http_job *j);
void rf_conn_stop(struct rf_http *h);	  /* end every worker's loop */
void rf_conn_sweep(struct rf_http *h);	  /* timeouts; accept again */
void rf_conn_teardown(struct rf_http *h); /* after the workers ended */

/* The connector API (api.c): set up with the TLS context, freed with it;
 * its routes (1 when uri is one of them); for each TLS request, the
 * verified client certificate's serial and the peer (and TCP_NODELAY on
 * the connection). */
struct rf_connector_svc;
int rf_http_api_setup(struct rf_http *h) RF_WUR;
void rf_http_api_free(struct rf_http *h);
/* A CA rotated in while serving anchors connector certificates too. */
void rf_http_api_trust(struct rf_http *h, X509 *ca);
int rf_http_api_route(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *uri, size_t plen);
/*
 * On an epoll worker, an assertion the signing pool would answer (j, with
 * its place in the pool taken): decided here and its signature asked of
 * keyd on one of the worker's own connections, so that no thread waits
 * for it. 0: taken (an answer made at once goes to w's done list, as
 * the pool's would; keyd's answer is answered when it comes,
 * rf_http_api_ready); -1: left to the pool (no free connection, keyd not
 * reachable, or not an assertion), with j->ap set when it was decided
 * here and only waits for its key or for keyd.
 */
int rf_http_api_begin(struct rf_http_worker *w, struct rf_http_job *j);
/* ev (RF_HTTP_EV_KEYD) is readable on w: its answer, when whole. */
void rf_http_api_ready(struct rf_http_worker *w, void *ev);
/* On a pool thread: j, begun on its worker, finished (rf_http_api_begin
 * left it to the pool with its assertion decided: j->ap). */
void rf_http_api_finish(struct rf_http_job *j);
/* A worker's keyd connections closed, their requests dropped. */
void rf_http_api_worker_done(struct rf_http_worker *w);
/* 1 if target's path is one of the API's (then it signs). */
int rf_http_api_is_route(const char *target);
/* The HTTP layer's refusal (code, text) of a request to the API, in the
 * API's JSON form. A 413 (a body over max_body, the server's limit) says
 * the lower of max_body and the API's own limit: the one that applied. */
void rf_http_api_error(
    struct rf_http_resp *o, int code, const char *text, size_t max_body);
/* The verified client certificate's serial of a TLS connection, as
 * lowercase hex ("" without one). */
void rf_http_api_client_serial(SSL *ssl, char serial[41]);

/*
 * The pools (pool.c): threads, each with a worker of its own (its own
 * store connection, its own OCSP answer buffer), answer what the epoll
 * workers hand them; at most a cap of requests run or wait per pool,
 * beyond that rf_http_busy. A job's answer goes back to the worker that
 * took the request (its done list and donefd).
 */
#define RF_HTTP_JOB_KEEP 1 /* keep the connection after the answer */
#define RF_HTTP_JOB_KA10 2 /* HTTP/1.0 keep-alive: say it back */
#define RF_HTTP_JOB_HEAD 4 /* HEAD: no body */
struct rf_http_job {
	struct rf_http_job *next;
	struct rf_http_worker *w; /* whose connection */
	struct rf_conn *conn;
	int flags;
	struct rf_http_req q; /* what it points at is copied below */
	struct sockaddr_storage peer;
	struct rf_http_resp o; /* the answer, once made */
	char *target, *inm;
	uint8_t *body;	 /* POST: the request body */
	char serial[41]; /* the client certificate's serial, or "" */
	/* An assertion decided on the worker, to sign (api.c), or NULL. */
	struct rf_assert_pending *ap;
	/* Not a request: fn(fnarg, 0) runs on the pool (w, conn unused). */
	void (*fn)(void *fnarg, int cancelled);
	void *fnarg;
};
/* j answered off its pool k (api.c): to its worker, as the pool does;
 * or, on that worker (answered there), only its place in k freed. */
void rf_http_pool_done(struct rf_http_job *j, enum rf_http_pool_kind k);
void rf_http_pool_release(struct rf_http *h, enum rf_http_pool_kind k);
/* Start every pool (audit: cfg->audit_*, sign: cfg->sign_*). */
int rf_http_pool_start(struct rf_http *h) RF_WUR;
void rf_http_pool_stop(struct rf_http *h); /* NULL-safe; joins */
/* 0: queued (the answer comes back); else *o holds the answer to send
 * (rf_http_busy past the cap). */
int rf_http_pool_submit(struct rf_http_worker *w, enum rf_http_pool_kind k,
    struct rf_conn *c, const struct rf_http_req *q, int flags,
    struct rf_http_resp *o);
/*
 * Run fn(fnarg, 0) on pool k (fn(fnarg, 1) if the pool stops first): the
 * TLS handshake's signature (rf_keys_evp_set_runner). 0 queued; -1 at the
 * cap or stopping, and nothing runs.
 */
int rf_http_pool_run(struct rf_http *h, enum rf_http_pool_kind k,
    void (*fn)(void *fnarg, int cancelled), void *fnarg);
void rf_http_job_free(struct rf_http_job *j);
void rf_http_job_free_all(struct rf_http_job *j);

/*
 * Budgets (limits.c): token buckets per source (/32 IPv4, /64 IPv6) and
 * global, for TLS handshakes that need a token signature and for
 * on-demand OCSP signatures, and the bytes a day anonymous peers may add
 * to the audit record. 1: go ahead (the leaf's bytes are counted); 0: over
 * a budget, do not sign.
 */
enum rf_http_budget { RF_HTTP_BUDGET_TLS = 0, RF_HTTP_BUDGET_OCSP = 1 };
int rf_http_limits_new(
    const struct rf_config *cfg, struct rf_http_limits **out) RF_WUR;
void rf_http_limits_free(struct rf_http_limits *l);
/* Tests: a known hash key, so that which sources and networks share a
 * slot (a keyed hash, RAND_bytes otherwise) is the same every run. */
void rf_http_limits_key(struct rf_http_limits *l, uint64_t k0, uint64_t k1);
int rf_http_limits_take(struct rf_http_limits *l, enum rf_http_budget b,
    const struct sockaddr_storage *peer, size_t leaf_bytes, uint64_t now_ms,
    int64_t day);
/*
 * peer (its /32 or /64) was served as a connector at now (seconds): for a
 * week from then its TLS handshakes may spend a reserve past the day's
 * bytes, and skip the global bucket (limits.c). Sources that share a slot
 * keep the one known longer.
 */
void rf_http_limits_known(
    struct rf_http_limits *l, const struct sockaddr_storage *peer, int64_t now);
/*
 * The connectors' sources of the last week again, from the last
 * assertions the store holds (a restarted server); now: seconds.
 */
int rf_http_limits_seed_known(
    struct rf_http_limits *l, struct rf_store *st, int64_t now) RF_WUR;
/*
 * Where a connection is counted (conn.c): its source's slot of
 * RF_HTTP_SOURCES, by a keyed hash of its /32 or /64, and its network's,
 * by a keyed hash of its /48 (an IPv4 address is a network of its own);
 * several may share a slot: they are counted together. RF_HTTP_NO_SOURCE
 * when not counted.
 */
struct rf_http_place {
	size_t src, net;
};
/*
 * A network (an IPv6 /48, which holds 65,536 /64s) holds at most this
 * many times conns_per_source connections, and never more than
 * 1/RF_HTTP_NET_CONNS_PART of every connection serve can hold.
 */
#define RF_HTTP_NET_CONNS 4
#define RF_HTTP_NET_CONNS_PART 8
/*
 * A connection from peer, counted: 1 (*pl says where), or 0 when its
 * source holds conns_per_source already or its network its share
 * (nothing counted).
 */
int rf_http_limits_conn_take(struct rf_http_limits *l,
    const struct sockaddr_storage *peer, struct rf_http_place *pl) RF_WUR;
/* The connection counted at *pl closed (*pl is then counted nowhere). */
void rf_http_limits_conn_drop(
    struct rf_http_limits *l, struct rf_http_place *pl);
/* The connections serve can hold at all (conn.c), for a network's share. */
void rf_http_limits_set_max_conns(struct rf_http_limits *l, size_t max);
/*
 * The count of request-body bytes held by *pl's network, for rf_h1_share
 * (h1.h); NULL when it has none (not counted).
 */
size_t *rf_http_limits_net_bodies(
    struct rf_http_limits *l, const struct rf_http_place *pl);
/*
 * Start the day's count from the record: the bytes of today's leaves of
 * anonymous signatures (every signature by the TLS key, the on-demand
 * ones by the OCSP key; either id may be NULL), so that a restarted server
 * does not grant the day's bytes again. now: seconds since the epoch.
 */
int rf_http_limits_seed(struct rf_http_limits *l, struct rf_audit *audit,
    const char *tls_key_id, const char *ocsp_key_id, int64_t now) RF_WUR;
/* What was refused so far, per budget; and bytes counted today. */
void rf_http_limits_stats(struct rf_http_limits *l, uint64_t refused[2],
    uint64_t allowed[2], uint64_t *day_bytes);
/* *ss for an IPv4 or IPv6 address in text and a port: its length, or 0
 * when addr is neither. */
socklen_t rf_http_addr_parse(
    const char *addr, int port, struct sockaddr_storage *ss);
/*
 * The source address of a peer as text, without the port: "192.0.2.7",
 * "2001:db8::7" (an IPv4-mapped IPv6 address as IPv4); "" when unknown.
 */
void rf_http_peer_addr(
    const struct sockaddr_storage *ss, char out[RF_HTTP_ADDR_MAX]);
/* Bytes of the audit leaf a "sign" event with these fields adds. */
size_t rf_http_sign_leaf_bytes(const char *key_id, const char *what,
    const char *ref, size_t digest_len, const struct rf_actor *who);

/*
 * TLS session tickets (tickets.c): keys made at random, rotated every
 * cfg->tls_ticket_rotate seconds; tickets of the previous key still resume
 * (and are renewed). Returning clients then cost no signature.
 */
int rf_http_tickets_new(
    SSL_CTX *ctx, int rotate_s, struct rf_http_tickets **out) RF_WUR;
void rf_http_tickets_free(struct rf_http_tickets *t);
/* A new key when the current one is older than rotate_s (maintenance). */
void rf_http_tickets_rotate(struct rf_http_tickets *t, uint64_t now_ms);

#endif
