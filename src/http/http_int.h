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
	/* Last HTTP dates written: responses signed together share them. */
	int64_t date_t[2];
	char date_s[2][30];
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

	int nworkers;
	struct rf_http_worker *w;

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
	uint64_t last_crl_ms, last_ocsp_ms, last_sth_ms, last_change_ms,
	    last_snap_ms;
	char crl_issuers[RF_HTTP_MAX_ISSUERS][64];
	size_t ncrl_issuers;
	char lasterr[256];
};

uint64_t rf_http_mono_ms(void);
void rf_http_log(struct rf_http *h, const char *what, int r);

/* Rebuild the snapshot from the store (maintenance thread). */
int rf_http_snapshot_reload(struct rf_http *h) RF_WUR;
/* A reference to the current snapshot (never NULL once running). */
struct rf_http_snapshot *rf_http_snapshot_get(struct rf_http *h);
void rf_http_snapshot_unref(struct rf_http_snapshot *s);

/* The evhttp callback of every request. */
void rf_http_route(struct evhttp_request *req, void *arg);

#endif
