/*
 * http.h: the `ringfence serve` HTTP server.
 *
 * Routes (docs/serve.md): GET /healthz, GET /ca/<name>.pem|.der,
 * GET /crl/<issuer>.crl, POST /ocsp and GET /ocsp/<base64 request>
 * (RFC 6960 A.1, RFC 5019 5 and 6), and read-only audit endpoints
 * GET /audit/sth, /audit/proof, /audit/consistency (JSON).
 *
 * Threads: `threads` workers, each with its own epoll set and its own
 * SO_REUSEPORT sockets bound to the plain and the TLS address (conn.c;
 * requests of both are read by the same reader, h1.c, with the same
 * limits); they answer from memory (the shared
 * OCSP responder, a reference-counted snapshot of CA certificates and
 * CRLs) and never touch the store for those routes. The thread that calls
 * rf_http_run() runs the maintenance timer (every 100 ms) with the store,
 * audit, keys and CA handles given to rf_http_new(): OCSP responder
 * reload, CRL regeneration when due, OCSP refresh, signed tree heads,
 * connection timeouts. Those handles are used by that thread only.
 *
 * TLS (optional): the same workers hold an OpenSSL SSL per TLS
 * connection (non-blocking, the rf_http_tls_ctx() policy); the same
 * routes. Handshake signatures go through keys (rf_keys_evp_pkey), on
 * store, audit and keys handles of their own shared by the workers, within
 * budgets (per source and global; limits.c); returning clients resume
 * with session tickets under rotating keys (tickets.c) and cost no
 * signature. The /audit routes run on a small pool with a cap (pool.c).
 */
#ifndef RF_HTTP_HTTP_H
#define RF_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_http;
struct rf_store;
struct rf_audit;
struct rf_ca;

#define RF_HTTP_THREADS_DEFAULT 2
#define RF_HTTP_THREADS_MAX 64
#define RF_HTTP_TIMEOUT 10	    /* s a connection may idle or take */
#define RF_HTTP_MAX_HEADERS 8192    /* bytes of request line + headers */
#define RF_HTTP_TICK_MS 100	    /* maintenance timer */
#define RF_HTTP_CRL_COALESCE_MS 200 /* at most one CRL pass per this */
#define RF_HTTP_OCSP_REFRESH_S 300  /* OCSP refresh_due interval */

struct rf_http_opts {
	const char *listen; /* NULL: cfg->listen */
	int port;	    /* -1: cfg->port; 0: any free port */
	int threads;	    /* 0: RF_HTTP_THREADS_DEFAULT */
	int allow_public;   /* 1: a non-loopback address was asked for */
	int handle_signals; /* 1: SIGINT / SIGTERM stop rf_http_run */
	int64_t duration;   /* >0: rf_http_run returns after this many s */
	int timeout;	    /* s a connection may idle; 0: RF_HTTP_TIMEOUT */
	/*
	 * HTTPS besides HTTP: 0 as cfg->tls_port says (0 there: none), 1 on
	 * tls_port (0: any free port), -1 none.
	 */
	int tls;
	int tls_port;
	/* Optional: one line per maintenance problem (not per request). */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
};

/*
 * Bind the listening socket and prepare the worker threads (not started).
 * cfg, st, audit, keys, ca and who are borrowed and must outlive the
 * server; they are used by the thread that calls rf_http_run only. The
 * OCSP responder gets its own store connection (cfg->db_path).
 * RF_ERR_CONFIG for an address that is not loopback without
 * allow_public; RF_ERR_IO when the address cannot be bound.
 * With TLS, the "tls" certificate is made or renewed first
 * (rf_ca_tls_ensure, with keys and audit), for the listen address and
 * cfg->tls_names.
 */
int rf_http_new(const struct rf_config *cfg, const struct rf_http_opts *o,
    struct rf_store *st, struct rf_audit *audit, struct rf_keys *keys,
    struct rf_ca *ca, const struct rf_actor *who, struct rf_http **out) RF_WUR;
void rf_http_free(struct rf_http *h);

/* The bound port (useful with port 0) and address. */
int rf_http_port(const struct rf_http *h);
/* The bound HTTPS port; 0 without TLS. */
int rf_http_tls_port(const struct rf_http *h);
const char *rf_http_address(const struct rf_http *h);

/*
 * start(arg, cfg) starts keyd as the commands do: with it, rf_http_run
 * starts keyd again when it is gone, 1 s after it was found gone, then
 * 2, 4, ... at most cfg->keyd_restart seconds apart (0 there: never),
 * each attempt logged. Before rf_http_run; NULL: never.
 */
void rf_http_keyd_restart(struct rf_http *h,
    int (*start)(void *arg, const struct rf_config *cfg), void *arg);

/*
 * Load what the workers serve, start them, run maintenance until
 * rf_http_stop(), a signal (handle_signals) or the duration, then stop and
 * join the workers. SIGPIPE is ignored process-wide from here on (a peer
 * closing mid-reply must not end the server).
 */
int rf_http_run(struct rf_http *h) RF_WUR;
/* Ask rf_http_run to return; callable from any thread. */
void rf_http_stop(struct rf_http *h);

/*
 * TLS policy (DESIGN.md): TLS 1.3, or TLS 1.2 with ECDHE key exchange and
 * AEAD suites only (AES-GCM, ChaCha20-Poly1305); no suite without forward
 * secrecy is ever offered; no renegotiation, no compression. A server
 * context without certificate or key: the caller adds them. *out is the
 * caller's (SSL_CTX_free).
 */
int rf_http_tls_ctx(int server, SSL_CTX **out) RF_WUR;
/*
 * 0 if every cipher ctx offers is TLS 1.3, or ECDHE + AEAD, and its
 * minimum protocol is TLS 1.2 or later; RF_ERR_CONFIG naming the first
 * offender otherwise.
 */
int rf_http_tls_check(SSL_CTX *ctx) RF_WUR;

/* HTTP-date (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT"; out 30. */
void rf_http_date(int64_t t, char out[30]);

#endif
