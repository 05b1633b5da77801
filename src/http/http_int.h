/* http_int.h: what server.c, snapshot.c and routes.c share. Private. */
#ifndef RF_HTTP_HTTP_INT_H
#define RF_HTTP_ISSUERS_MAX 16
#define RF_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/http.h>

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

struct rf_http_worker {
	struct rf_http *h;
	pthread_t tid;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp *https; /* TLS listener, or NULL */
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
	int epfd;	   /* plain listener: its epoll set (conn.c) */
	int lfd;	   /* its listening socket (per-worker sets) */
	int accept_paused; /* under conn_lock: out of descriptors */
};

#define RF_HTTP_MAX_ISSUERS 16
#define RF_HTTP_QUIET_MS 1000 /* store quiet this long before CRL/OCSP work */

#define RF_HTTP_EVIDENCE_MAX 4096

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
	uint64_t last_watch_ms;
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
	struct rf_key *tls_key;
	struct rf_actor tls_who;
	struct rf_connector_svc *csvc; /* the connector API (api.c) */

	/*
	 * Plain HTTP (conn.c): nworkers threads on one epoll set, with the
	 * listening socket and every connection in it.
	 */
	int nworkers;
	struct rf_http_worker *w;
	int stopfd;
	int stopping; /* atomic: answer with "Connection: close" */
	pthread_mutex_t conn_lock;
	int conn_lock_ok;
	struct rf_conn *conns; /* under conn_lock */
	size_t nconns, max_conns;
	/* TLS: nworkers threads, each an event_base with an evhttp. */
	struct rf_http_worker *tw;

	struct rf_store *resp_st; /* the responder's connection */
	struct rf_ocsp_responder *resp;
	struct rf_ocsp_signer *signer; /* maintenance refresh */
	/* Issuing CAs made by rotation, served besides "issuing". */
	struct http_issuer {
		char name[64];
		X509 *ic, *oc;
		struct rf_key *okey;
		struct rf_ocsp_signer *signer;
	} extra[RF_HTTP_ISSUERS_MAX];
	size_t nextra;
	/* On-demand signing: handles used only under the responder's lock. */
	struct rf_store *od_st;
	struct rf_audit *od_audit;
	struct rf_keys *od_keys;
	struct rf_key *od_key;
	struct rf_ocsp_signer *od_signer;

	pthread_mutex_t snap_lock;
	int snap_lock_ok;
	struct rf_http_snapshot *snap; /* under snap_lock */

	struct event_base *mbase;
	struct event *tick, *stop_ev, *sigint, *sigterm, *dur;

	/* Maintenance state. */
	int64_t counter;
	int have_counter, crl_dirty, ocsp_dirty, snap_dirty;
	uint64_t last_sweep_ms, last_crl_ms, last_ocsp_ms, last_sth_ms,
	    last_change_ms, last_snap_ms;
	char crl_issuers[RF_HTTP_MAX_ISSUERS][64];
	size_t ncrl_issuers;
	char lasterr[256];
};

uint64_t rf_http_mono_ms(void);
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
 * plain listener (h1.c, conn.c) and the TLS one (evhttp, server.c).
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
	const char *if_none_match; /* NULL when absent */
	/* TLS: the verified client certificate's serial (NULL: none), and
	 * the peer "ADDR:PORT" (api.c, connectors). */
	const char *client_serial;
	const char *peer;
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

/* A short text answer ("text\n") with that status. */
void rf_http_error(struct rf_http_resp *o, int code, const char *text);

/* Answer q into *o (zeroed here); rf_http_resp_done() when sent. */
void rf_http_handle(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o);
void rf_http_resp_done(struct rf_http_resp *o);

/* The evhttp callback of the TLS listener's requests. */
void rf_http_route(struct evhttp_request *req, void *arg);
/* A worker thread's last act: close what it alone used. */
void rf_http_worker_done(struct rf_http_worker *w);

/* The plain listener (conn.c). */
int rf_conn_setup(struct rf_http *h) RF_WUR; /* epoll set, listener in it */
void *rf_conn_worker(void *w);		     /* a worker thread's main */
void rf_conn_stop(struct rf_http *h);	     /* end every worker's loop */
void rf_conn_sweep(struct rf_http *h);	     /* timeouts; accept again */
void rf_conn_teardown(struct rf_http *h);    /* after the workers ended */

/* The connector API (api.c): set up with the TLS context, freed with it;
 * its routes (1 when uri is one of them); for each TLS request, the
 * verified client certificate's serial and the peer (and TCP_NODELAY on
 * the connection). */
struct rf_connector_svc;
int rf_http_api_setup(struct rf_http *h) RF_WUR;
void rf_http_api_free(struct rf_http *h);
int rf_http_api_route(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *uri, size_t plen);
void rf_http_api_conn(
    struct evhttp_request *req, char serial[41], char peer[64]);

#endif
