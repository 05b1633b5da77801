/*
 * server.c: threads, listening sockets, maintenance and lifecycle of the
 * `ringfence serve` HTTP server. Routes are in routes.c, what they serve
 * from memory in snapshot.c.
 *
 * Worker threads, each with its own epoll set holding its SO_REUSEPORT
 * listening sockets (plain and TLS) and its connections (conn.c, h1.c).
 * The /audit routes run on a small pool (pool.c). The thread inside
 * rf_http_run() wakes every RF_HTTP_TICK_MS and owns every store, audit
 * and keys handle given to rf_http_new(); workers only read memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "http/http_int.h"
#include "http/notify.h"
#include "incident/incident.h"
#include "store/store_connector.h"
#include "store/store_incident.h"
#include "revoke/revoke.h"
#include "store/store.h"

/* What a TLS client (a connector) may sign its CertificateVerify with. */
#define CLIENT_SIGALGS                                                         \
	"ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:ed25519:"                      \
	"rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"         \
	"rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:"            \
	"RSA+SHA256:RSA+SHA384:RSA+SHA512"

uint64_t
rf_http_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Report a maintenance problem once (not again while it repeats). */
void
rf_http_log(struct rf_http *h, const char *what, int r)
{
	char line[sizeof(h->lasterr)];

	snprintf(line, sizeof(line), "%s: %s", what, rf_err_msg(r));
	if (strcmp(line, h->lasterr) == 0)
		return;
	snprintf(h->lasterr, sizeof(h->lasterr), "%s", line);
	if (h->o.log != NULL)
		h->o.log(h->o.log_arg, line);
}

static void
log_clear(struct rf_http *h)
{
	h->lasterr[0] = '\0';
}

/* 127.0.0.0/8 and ::1 (and ::ffff:127.0.0.0/104). */
static int
is_loopback(const struct sockaddr_storage *ss)
{
	static const uint8_t v6lo[16] = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *v4;

	if (ss->ss_family == AF_INET)
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return memcmp(s6->sin6_addr.s6_addr, v6lo, 16) == 0 ||
		    ((v4 = rf_ip_v4mapped(s6->sin6_addr.s6_addr)) != NULL &&
			v4[0] == 127);
	return 0;
}

/* 1 if a plain socket (no SO_REUSEPORT) cannot bind the address. */
static int
port_taken(const struct sockaddr_storage *ss, socklen_t sl)
{
	int fd, one = 1, taken;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0; /* the real bind reports it */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	taken = bind(fd, (const struct sockaddr *)ss, sl) != 0 &&
	    errno == EADDRINUSE;
	close(fd);
	return taken;
}

static int
nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ? -1 : 0;
}

static int
listen_socket(struct rf_http *h, const char *addr, int port, const char *flag,
    struct http_sock *out)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd = -1, one = 1, r = RF_ERR_INTERNAL;

	if (strcmp(addr, "localhost") == 0)
		addr = "127.0.0.1";
	if ((sl = rf_http_addr_parse(addr, port, &ss)) == 0) {
		r = rf_err_set(RF_ERR_CONFIG,
		    "listen address \"%.60s\" is not an IPv4 or IPv6 "
		    "address: use e.g. 127.0.0.1",
		    addr);
		goto out;
	}
	if (!h->o.allow_public && !is_loopback(&ss)) {
		r = rf_err_set(RF_ERR_CONFIG,
		    "refusing to listen on %.60s, which is not a loopback "
		    "address: pass --listen %.60s to serve beyond this host",
		    addr, addr);
		goto out;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
		r = rf_err_set(RF_ERR_IO, "socket: %s", strerror(errno));
		goto out;
	}
	/*
	 * SO_REUSEPORT would let a second server of the same user share the
	 * port silently: first make sure nobody holds it.
	 */
	if (port != 0 && port_taken(&ss, sl)) {
		errno = EADDRINUSE;
		r = rf_err_set(RF_ERR_IO,
		    "cannot listen on %.60s port %d: %s: choose another "
		    "%s",
		    addr, port, strerror(errno), flag);
		goto out;
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
		r = rf_err_set(RF_ERR_IO,
		    "cannot listen on %.60s port %d: %s: choose another "
		    "%s",
		    addr, port, strerror(errno), flag);
		goto out;
	}
	if (listen(fd, 1024) != 0 || nonblocking(fd) != 0) {
		r = rf_err_set(RF_ERR_IO, "listen: %s", strerror(errno));
		goto out;
	}
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		r = rf_err_set(RF_ERR_IO, "getsockname: %s", strerror(errno));
		goto out;
	}
	out->port =
	    ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
	out->ss = ss; /* with the port bound, for the other workers */
	out->sl = sl;
	if (addr != h->addr) /* the TLS socket reuses the plain one's */
		snprintf(h->addr, sizeof(h->addr), "%s", addr);
	out->fd = fd; /* now h's */
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
rf_http_reuseport_socket(const struct http_sock *hs)
{
	int fd, one = 1, e;

	if ((fd = socket(hs->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)&hs->ss, hs->sl) != 0 ||
	    listen(fd, 1024) != 0 || nonblocking(fd) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
rf_http_timeout(const struct rf_http *h)
{
	return h->o.timeout > 0 ? h->o.timeout : RF_HTTP_TIMEOUT;
}

size_t
rf_http_max_body(const struct rf_http *h)
{
	return h->cfg->max_request > 0 ? (size_t)h->cfg->max_request
				       : 64 * 1024;
}

/* An on-demand signer for issuer ic (name) with OCSP key key_id and its
 * certificate oc (http_od). */
static int
od_open(struct rf_http *h, const char *key_id, X509 *oc, X509 *ic,
    const char *name, struct http_od *od)
{
	int r;

	if ((r = rf_store_open(h->cfg->db_path, 0, &od->st)) != 0 ||
	    (r = rf_store_unmap(od->st)) != 0 ||
	    (r = rf_audit_open(od->st, &od->audit)) != 0 ||
	    (r = rf_keys_open(h->cfg, od->audit, &od->keys)) != 0 ||
	    (r = rf_keys_load(od->keys, key_id, &od->key)) != 0)
		return r;
	return rf_ocsp_signer_new(
	    h->cfg, od->st, od->keys, od->key, oc, ic, name, &od->signer);
}

static void
od_close(struct http_od *od)
{
	rf_ocsp_signer_free(od->signer);
	rf_key_free(od->key);
	rf_keys_free(od->keys);
	rf_audit_free(od->audit);
	rf_store_free(od->st);
	memset(od, 0, sizeof(*od));
}

/* The on-demand OCSP signer of "issuing". */
static int
ondemand_setup(struct rf_http *h)
{
	struct rf_key *k = rf_ca_key(h->ca, "ocsp");
	X509 *oc = rf_ca_cert(h->ca, "ocsp"),
	     *ic = rf_ca_cert(h->ca, "issuing");
	int r;

	if (k == NULL || oc == NULL || ic == NULL)
		return rf_err_set(RF_ERR_NOT_FOUND, "no OCSP signer");
	if ((r = od_open(h, rf_key_id(k), oc, ic, "issuing", &h->od)) != 0)
		return r;
	rf_ocsp_responder_set_signer(h->resp, h->od.signer);
	return 0;
}

/*
 * The on-demand signers of the issuers a rotation added (issuers_setup),
 * once "issuing" has one: a SHA-2 CertID or a request of several
 * certificates of a rotation's CA is signed as one of "issuing" is
 * (tryLater before). One that cannot be set up is logged; that issuer's
 * pre-signed responses are served all the same.
 */
static void
ondemand_extra(struct rf_http *h)
{
	struct http_issuer *e;
	size_t k;
	int r;

	for (k = 0; h->od.signer != NULL && k < h->nextra; k++) {
		e = &h->extra[k];
		/* By the record's key id: the refresh's own load may have
		 * failed (keyd away when the CA appeared); this is tried
		 * again at each pass until it works. */
		if (e->od.signer != NULL || e->okey_id[0] == '\0')
			continue;
		if ((r = od_open(
			 h, e->okey_id, e->oc, e->ic, e->name, &e->od)) != 0 ||
		    (r = rf_ocsp_responder_add_signer(h->resp, e->od.signer)) !=
			0) {
			od_close(&e->od);
			rf_http_log(
			    h, "OCSP on-demand signing of a rotated CA", r);
		}
	}
}

/*
 * Issuing CAs other than "issuing" (made by an incident's rotation): each
 * is served by the responder with the delegated signer the rotation
 * certified for it. Read from the store at start, and again after every
 * change to it, so that a rotation made while serving is answered for
 * (not "unauthorized") as soon as its responses are stored.
 */
static int
issuers_setup(struct rf_http *h)
{
	struct rf_ca_rec *recs = NULL;
	struct http_issuer *e;
	const uint8_t *p;
	char oname[64];
	size_t n = 0, i, j;
	int r;

	if ((r = rf_store_ca_list(h->st, &recs, &n)) != 0)
		return r;
	for (i = 0; i < n && r == 0; i++) {
		if (strcmp(recs[i].parent, "root") != 0 ||
		    strcmp(recs[i].name, "issuing") == 0)
			continue;
		for (j = 0; j < h->nextra; j++)
			if (strcmp(h->extra[j].name, recs[i].name) == 0)
				break;
		if (j < h->nextra)
			continue; /* served already */
		if (h->nextra == RF_HTTP_ISSUERS_MAX)
			break;
		rf_ca_ocsp_name(recs[i].name, oname);
		for (j = 0; j < n; j++)
			if (strcmp(recs[j].name, oname) == 0)
				break;
		if (j == n)
			continue; /* no delegated signer for it */
		e = &h->extra[h->nextra];
		p = recs[i].der;
		e->ic = d2i_X509(NULL, &p, (long)recs[i].derlen);
		p = recs[j].der;
		e->oc = d2i_X509(NULL, &p, (long)recs[j].derlen);
		if (e->ic == NULL || e->oc == NULL) {
			X509_free(e->ic);
			X509_free(e->oc);
			e->ic = e->oc = NULL;
			r = rf_err_set(RF_ERR_MALFORMED,
			    "stored certificate of %s does not parse",
			    recs[i].name);
			break;
		}
		snprintf(e->name, sizeof(e->name), "%s", recs[i].name);
		snprintf(e->okey_id, sizeof(e->okey_id), "%s", recs[j].key_id);
		h->nextra++;
		rf_http_api_trust(h, e->ic);
		if ((r = rf_ocsp_responder_add_issuer(
			 h->resp, recs[i].name, e->ic)) != 0 ||
		    (r = rf_keys_load(h->keys, recs[j].key_id, &e->okey)) !=
			0 ||
		    (r = rf_ocsp_signer_new(h->cfg, h->st, h->keys, e->okey,
			 e->oc, e->ic, recs[i].name, &e->signer)) != 0)
			break;
	}
	rf_ca_rec_free_all(recs, n);
	return r;
}

/* "ADDR:PORT" of the peer of socket fd, for the audit record. */
static void
peer_name(int fd, char *out, size_t len, struct sockaddr_storage *pss)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	memset(&ss, 0, sizeof(ss));
	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (void *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			port = ntohs(s4->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (void *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			port = ntohs(s6->sin6_port);
		}
	}
	snprintf(
	    out, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", a, port);
	*pss = ss;
}

/*
 * SSL_CTX_set_cert_cb, while a ClientHello is processed: this connection's
 * private key, an EVP_PKEY whose one signature (CertificateVerify, or the
 * TLS 1.2 ServerKeyExchange) is an rf_keys signature audited with the
 * peer's address as ref. 0 fails the handshake.
 *
 * A handshake that resumes a session (a ticket, tickets.c) signs nothing
 * and costs nothing; any other must fit the TLS budgets (limits.c), or is
 * refused here, before the server signs.
 */
static int
tls_cert_cb(SSL *ssl, void *arg)
{
	struct rf_http *h = arg;
	struct sockaddr_storage ss;
	EVP_PKEY *pk = NULL;
	X509 *x = NULL, *ix = NULL;
	char ref[INET6_ADDRSTRLEN + 16];
	int ok = 0;

	peer_name(SSL_get_fd(ssl), ref, sizeof(ref), &ss);
	/*
	 * This handshake's certificate and key, whatever a renewal does
	 * meanwhile (tls_refresh): the budget is taken for the key in use, and
	 * the EVP_PKEY holds a copy of it.
	 */
	pthread_mutex_lock(&h->tls_mu);
	if ((SSL_session_reused(ssl) ||
		rf_http_limits_take(h->limits, RF_HTTP_BUDGET_TLS, &ss,
		    rf_http_sign_leaf_bytes(rf_key_id(h->tls_key), "tls", ref,
			rf_key_alg(h->tls_key) == RF_KEY_EC_P384 ? 48 : 32,
			&h->tls_who),
		    rf_http_mono_ms(), rf_now() / 86400)) &&
	    rf_keys_evp_pkey(
		h->tls_keys, h->tls_key, "tls", ref, &h->tls_who, &pk) == 0) {
		x = h->tls_x;
		ix = h->tls_ix;
		X509_up_ref(x);
		X509_up_ref(ix);
	}
	pthread_mutex_unlock(&h->tls_mu);
	if (pk == NULL) { /* over budget: OpenSSL's internal_error alert */
		rf_err_clear();
		goto out;
	}
	if (SSL_use_certificate(ssl, x) != 1 ||
	    SSL_clear_chain_certs(ssl) != 1 ||
	    SSL_add1_chain_cert(ssl, ix) != 1) {
		ERR_clear_error();
		goto out;
	}
	ok = SSL_use_PrivateKey(ssl, pk) == 1; /* takes a reference */
out:
	EVP_PKEY_free(pk);
	X509_free(x);
	X509_free(ix);
	return ok;
}

/* rf_keys_evp_runner: a handshake's signature, on the signing pool. */
static int
tls_sign_runner(void (*fn)(void *fnarg, int cancelled), void *fnarg, void *arg)
{
	return rf_http_pool_run(arg, RF_HTTP_POOL_SIGN, fn, fnarg);
}

/*
 * An incident's contain renewed the "tls" certificate (a new issuing CA):
 * take it, its issuer and its key for the handshakes from now on;
 * connections already open keep theirs. Tried again on the next pass
 * while its issuer is not known yet.
 */
static void
tls_refresh(struct rf_http *h)
{
	struct rf_ca_rec rec;
	struct rf_key *key = NULL, *okey;
	const uint8_t *p;
	X509 *x = NULL, *ix, *ox, *oix;
	char msg[320];
	int same, r;

	if (h->tls_ctx == NULL)
		return;
	memset(&rec, 0, sizeof(rec));
	if ((r = rf_store_ca_get(h->st, "tls", &rec)) != 0) {
		rf_http_log(h, "reading the TLS certificate", r);
		return;
	}
	pthread_mutex_lock(&h->tls_mu);
	same = strcmp(rec.serial, h->tls_serial) == 0;
	pthread_mutex_unlock(&h->tls_mu);
	if (same || (ix = rf_ca_cert(h->ca, rec.parent)) == NULL)
		goto out;
	p = rec.der;
	if ((x = d2i_X509(NULL, &p, (long)rec.derlen)) == NULL) {
		rf_http_log(h, "the renewed TLS certificate",
		    rf_err_set(RF_ERR_STATE, "it does not parse"));
		goto out;
	}
	if ((r = rf_keys_load(h->tls_keys, rec.key_id, &key)) != 0) {
		rf_http_log(h, "the renewed TLS certificate's key", r);
		goto out;
	}
	X509_up_ref(ix);
	pthread_mutex_lock(&h->tls_mu);
	okey = h->tls_key;
	ox = h->tls_x;
	oix = h->tls_ix;
	h->tls_key = key;
	h->tls_x = x;
	h->tls_ix = ix;
	snprintf(msg, sizeof(msg),
	    "TLS certificate %s replaced by %s of %s, key %s", h->tls_serial,
	    rec.serial, rec.parent, rec.key_id);
	snprintf(h->tls_serial, sizeof(h->tls_serial), "%s", rec.serial);
	pthread_mutex_unlock(&h->tls_mu);
	key = NULL;
	x = NULL;
	rf_key_free(okey);
	X509_free(ox);
	X509_free(oix);
	if (h->o.log != NULL)
		h->o.log(h->o.log_arg, msg);
out:
	X509_free(x);
	rf_key_free(key);
	rf_ca_rec_clear(&rec);
}

/*
 * The names of the TLS certificate: the listen address (unless it is the
 * unspecified address) and cfg->tls_names (comma or space separated).
 */
#define TLS_NAMES_MAX 16
static int
tls_names(struct rf_http *h, char *buf, size_t len,
    const char *names[TLS_NAMES_MAX], size_t *n)
{
	char *p, *save = NULL;

	*n = 0;
	if (strcmp(h->addr, "0.0.0.0") != 0 && strcmp(h->addr, "::") != 0)
		names[(*n)++] = h->addr;
	snprintf(buf, len, "%s", h->cfg->tls_names);
	for (p = strtok_r(buf, ", \t", &save); p != NULL;
	     p = strtok_r(NULL, ", \t", &save)) {
		if (*n == TLS_NAMES_MAX)
			return rf_err_set(RF_ERR_CONFIG,
			    "more than %d TLS names: check tls_names",
			    TLS_NAMES_MAX - 1);
		names[(*n)++] = p;
	}
	return 0;
}

/*
 * The certificate a new one replaced (other names, its issuer, its age) is
 * revoked as superseded, so that no valid certificate is left whose key
 * signs nothing any more. One already revoked stays as it is; a failure is
 * logged with the command that finishes it, and serve starts anyway.
 */
static void
tls_supersede(struct rf_http *h, const char *serial, char *msg, size_t len)
{
	const char *sv[1] = {serial};
	size_t done = 0;
	int r;

	if ((r = rf_revoke_serials(h->cfg, h->st, h->keys, h->ca, h->audit, sv,
		 1, RF_CRL_REASON_SUPERSEDED, &h->who, &done)) != 0) {
		snprintf(msg, len,
		    "the replaced HTTPS certificate %s could not be revoked "
		    "(%s): run 'ringfence revoke %s --reason superseded'",
		    serial, rf_err_msg(r), serial);
		rf_err_clear();
	} else if (done == 0) {
		return; /* revoked before (revoke, an incident) */
	} else {
		snprintf(msg, len,
		    "the replaced HTTPS certificate %s is revoked (superseded)",
		    serial);
	}
	if (h->o.log != NULL)
		h->o.log(h->o.log_arg, msg);
}

/*
 * TLS: the "tls" certificate (made or renewed with the caller's handles),
 * a key handle of its own for the workers' handshakes, and the policy
 * context (rf_http_tls_ctx) with the certificate and its issuer.
 */
static int
tls_setup(struct rf_http *h)
{
	const char *names[TLS_NAMES_MAX];
	char buf[sizeof(h->cfg->tls_names)], msg[400], old[41] = "";
	struct rf_key *k;
	X509 *x, *ix;
	size_t n;
	int made = 0, r;

	if ((x = rf_ca_cert(h->ca, "tls")) != NULL &&
	    rf_ca_serial_str(X509_get0_serialNumber(x), old) != 0) {
		rf_err_clear();
		old[0] = '\0';
	}
	if ((r = tls_names(h, buf, sizeof(buf), names, &n)) != 0 ||
	    (r = rf_ca_tls_ensure(h->ca, names, n, &h->who, &made)) != 0)
		return r;
	x = rf_ca_cert(h->ca, "tls");
	k = rf_ca_key(h->ca, "tls");
	ix = rf_ca_cert(h->ca, rf_ca_issuer_name(h->ca));
	if (x == NULL || k == NULL || ix == NULL)
		return rf_err_set(RF_ERR_INTERNAL, "no TLS certificate");
	if (made && h->o.log != NULL) {
		snprintf(msg, sizeof(msg), "TLS certificate issued, key %s",
		    rf_key_id(k));
		h->o.log(h->o.log_arg, msg);
	}
	if (made && old[0] != '\0')
		tls_supersede(h, old, msg, sizeof(msg));
	h->tls_who.actor = h->who.actor;
	h->tls_who.source = "serve tls";
	if ((r = rf_store_open(h->cfg->db_path, 0, &h->tls_st)) != 0 ||
	    (r = rf_store_unmap(h->tls_st)) != 0 ||
	    (r = rf_audit_open(h->tls_st, &h->tls_audit)) != 0 ||
	    (r = rf_keys_open(h->cfg, h->tls_audit, &h->tls_keys)) != 0 ||
	    (r = rf_keys_load(h->tls_keys, rf_key_id(k), &h->tls_key)) != 0 ||
	    (r = rf_ca_serial_str(X509_get0_serialNumber(x), h->tls_serial)) !=
		0 ||
	    (r = rf_http_tls_ctx(1, &h->tls_ctx)) != 0)
		return r;
	X509_up_ref(x);
	X509_up_ref(ix);
	h->tls_x = x;
	h->tls_ix = ix;
	/*
	 * The key signs digests of its own size (keys: SHA-256 for P-256).
	 * A full handshake's key use is on the record; a returning client
	 * resumes with a ticket (tickets.c: stateless, keys rotated), which
	 * needs no signature. No server-side session cache.
	 */
	SSL_CTX_clear_options(h->tls_ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_use_certificate(h->tls_ctx, x) != 1 ||
	    SSL_CTX_add1_chain_cert(h->tls_ctx, ix) != 1 ||
	    SSL_CTX_set1_sigalgs_list(h->tls_ctx,
		rf_key_alg(k) == RF_KEY_EC_P384 ? "ECDSA+SHA384"
						: "ECDSA+SHA256") != 1 ||
	    /* That list is also what a client may sign with unless this
	     * one is set: connectors' keys are EC, RSA or Ed25519. */
	    SSL_CTX_set1_client_sigalgs_list(h->tls_ctx, CLIENT_SIGALGS) != 1 ||
	    SSL_CTX_set_num_tickets(h->tls_ctx, 1) != 1 ||
	    SSL_CTX_set_session_id_context(h->tls_ctx,
		(const unsigned char *)"ringfence-serve", 15) != 1) {
		ERR_clear_error();
		return rf_err_set(RF_ERR_INTERNAL,
		    "TLS: OpenSSL refused the certificate or settings");
	}
	SSL_CTX_set_session_cache_mode(h->tls_ctx, SSL_SESS_CACHE_OFF);
	if ((r = rf_http_tickets_new(
		 h->tls_ctx, h->cfg->tls_ticket_rotate, &h->tickets)) != 0)
		return r;
	SSL_CTX_set_cert_cb(h->tls_ctx, tls_cert_cb, h);
	if ((r = rf_http_api_setup(h)) != 0)
		return r;
	return rf_http_tls_check(h->tls_ctx);
}

int
rf_http_new(const struct rf_config *cfg, const struct rf_http_opts *o,
    struct rf_store *st, struct rf_audit *audit, struct rf_keys *keys,
    struct rf_ca *ca, const struct rf_actor *who, struct rf_http **out)
{
	struct rf_http *h = NULL;
	struct rf_key *ok;
	X509 *oc, *ic;
	int i, r = RF_ERR_INTERNAL;

	*out = NULL;
	if (cfg == NULL || o == NULL || st == NULL || audit == NULL ||
	    keys == NULL || ca == NULL)
		return rf_err_set(RF_ERR_ARG, "rf_http_new: missing handle");
	if (o->threads < 0 || o->threads > RF_HTTP_THREADS_MAX)
		return rf_err_set(
		    RF_ERR_ARG, "threads: 1 to %d", RF_HTTP_THREADS_MAX);
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return RF_ERR_ALLOC;
	h->plain.fd = h->tls.fd = -1;
	h->stopfd = h->mstopfd = -1;
	h->keyd_up = 1; /* until /healthz first asks (routes.c) */
	h->o = *o;
	h->cfg = cfg;
	h->st = st;
	h->audit = audit;
	h->keys = keys;
	h->ca = ca;
	h->who.actor = who != NULL && who->actor != NULL ? who->actor : "serve";
	h->who.source = "serve";
	if (pthread_mutex_init(&h->snap_lock, NULL) != 0)
		goto out;
	h->snap_lock_ok = 1;
	if (pthread_mutex_init(&h->ev_lock, NULL) != 0)
		goto out;
	h->ev_lock_ok = 1;
	rf_leaf_quota_init(
	    &h->ev_quota, RF_HTTP_SIGHTING_LEAVES, RF_HTTP_SIGHTING_LEAVES_WHO);
	rf_leaf_quota_what(&h->ev_quota,
	    "OCSP sightings of old credentials after re-establishment");
	if (pthread_mutex_init(&h->tls_mu, NULL) != 0)
		goto out;
	h->tls_mu_ok = 1;
	h->nworkers = o->threads > 0 ? o->threads : RF_HTTP_THREADS_DEFAULT;
	if ((r = rf_http_limits_new(cfg, &h->limits)) != 0)
		goto out;
	if ((h->mstopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = rf_err_set(RF_ERR_IO, "eventfd: %s", strerror(errno));
		goto out;
	}
	if ((r = listen_socket(h, o->listen != NULL ? o->listen : cfg->listen,
		 o->port >= 0 ? o->port : cfg->port, "--port", &h->plain)) != 0)
		goto out;
	if ((o->tls > 0 || (o->tls == 0 && cfg->tls_port > 0)) &&
	    ((r = listen_socket(h, h->addr,
		  o->tls > 0 ? o->tls_port : cfg->tls_port, "--tls-port",
		  &h->tls)) != 0 ||
		(r = tls_setup(h)) != 0))
		goto out;

	/* The OCSP responder, on its own store connection. */
	ic = rf_ca_cert(ca, "issuing");
	oc = rf_ca_cert(ca, "ocsp");
	ok = rf_ca_key(ca, "ocsp");
	if (ic == NULL || oc == NULL || ok == NULL) {
		r = rf_err_set(RF_ERR_NOT_INITIALISED,
		    "no issuing CA or OCSP signer: run 'ringfence init'");
		goto out;
	}
	if ((r = rf_store_open(cfg->db_path, 0, &h->resp_st)) != 0 ||
	    (r = rf_ocsp_responder_new(h->resp_st, &h->resp)) != 0 ||
	    (r = rf_ocsp_responder_add_issuer(h->resp, "issuing", ic)) != 0)
		goto out;
	/* The maintenance signer shares the caller's handles. */
	if ((r = rf_ocsp_signer_new(
		 cfg, st, keys, ok, oc, ic, "issuing", &h->signer)) != 0)
		goto out;
	if ((r = issuers_setup(h)) != 0)
		goto out;
	if ((r = ondemand_setup(h)) != 0) {
		rf_http_log(h, "OCSP on-demand signing disabled", r);
		rf_ocsp_responder_set_signer(h->resp, NULL);
	} else
		ondemand_extra(h);
	/* The day's anonymous bytes so far count, across restarts; the
	 * connectors' sources of the last week are known again. */
	if ((r = rf_http_limits_seed(h->limits, audit,
		 h->tls_key != NULL ? rf_key_id(h->tls_key) : NULL,
		 h->od.key != NULL ? rf_key_id(h->od.key) : NULL, rf_now())) !=
		0 ||
	    (r = rf_http_limits_seed_known(h->limits, st, rf_now())) != 0)
		goto out;

	if ((h->w = calloc((size_t)h->nworkers, sizeof(*h->w))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < h->nworkers; i++) {
		h->w[i].h = h;
		h->w[i].epfd = h->w[i].lfd = h->w[i].tlfd = -1;
		h->w[i].donefd = -1;
	}
	if ((r = rf_conn_setup(h)) != 0)
		goto out;
	/* Commands tell the server of their changes (notify.c). */
	if ((r = rf_http_notify_start(h)) != 0)
		goto out;
	*out = h; /* now the caller's */
	h = NULL;
	r = 0;
out:
	rf_http_free(h);
	return r;
}

void
rf_http_free(struct rf_http *h)
{
	size_t k;
	int i;

	if (h == NULL)
		return;
	rf_http_notify_stop(h);
	rf_http_pool_stop(h); /* before the connections its jobs name */
	rf_conn_teardown(h);  /* connections still open, and the epoll set */
	for (i = 0; h->w != NULL && i < h->nworkers; i++)
		rf_http_worker_done(&h->w[i]);
	free(h->w);
	if (h->plain.fd >= 0)
		close(h->plain.fd);
	if (h->tls.fd >= 0)
		close(h->tls.fd);
	/* After the workers: their connections hold SSLs and EVP_PKEYs. */
	rf_http_api_free(h);
	SSL_CTX_free(h->tls_ctx);
	rf_http_tickets_free(h->tickets); /* after the SSL_CTX that uses it */
	rf_http_limits_free(h->limits);
	if (h->mstopfd >= 0)
		close(h->mstopfd);
	rf_key_free(h->tls_key);
	X509_free(h->tls_x);
	X509_free(h->tls_ix);
	if (h->tls_mu_ok)
		pthread_mutex_destroy(&h->tls_mu);
	rf_keys_free(h->tls_keys);
	rf_audit_free(h->tls_audit);
	rf_store_free(h->tls_st);
	rf_ocsp_responder_free(h->resp);
	for (k = 0; k < h->nextra; k++)
		od_close(&h->extra[k].od);
	od_close(&h->od);
	rf_ocsp_signer_free(h->signer);
	for (k = 0; k < h->nextra; k++) {
		rf_ocsp_signer_free(h->extra[k].signer);
		rf_key_free(h->extra[k].okey);
		X509_free(h->extra[k].ic);
		X509_free(h->extra[k].oc);
	}
	rf_store_free(h->resp_st);
	for (k = 0; k < h->nown_ca; k++)
		rf_ca_free(h->own_ca[k]);
	rf_http_snapshot_unref(h->snap);
	if (h->snap_lock_ok)
		pthread_mutex_destroy(&h->snap_lock);
	if (h->ev_lock_ok)
		pthread_mutex_destroy(&h->ev_lock);
	free(h);
}

int
rf_http_port(const struct rf_http *h)
{
	return h->plain.port;
}

int
rf_http_tls_port(const struct rf_http *h)
{
	return h->tls_ctx != NULL ? h->tls.port : 0;
}

const char *
rf_http_address(const struct rf_http *h)
{
	return h->addr;
}

void
rf_http_stop(struct rf_http *h)
{
	uint64_t one = 1;

	if (h != NULL && h->mstopfd >= 0)
		(void)!write(h->mstopfd, &one, sizeof(one));
}

/* ---- Maintenance (the rf_http_run thread only) ---- */

/* CRLs: regenerate those rf_crl_due names (RFC 5280 5.1.2.5). */
static void
crl_pass(struct rf_http *h)
{
	size_t i;
	int r, regen;

	for (i = 0; i < h->ncrl_issuers; i++) {
		regen = 0;
		if ((r = rf_crl_refresh(h->cfg, h->st, h->keys, h->ca,
			 h->crl_issuers[i], &h->who, &regen)) != 0) {
			rf_http_log(h, "CRL regeneration", r);
			continue;
		}
		if (regen)
			h->snap_dirty = 1;
	}
}

/*
 * A CA the store holds that ca does not know (made by another process:
 * an incident's contain): open the CAs again, on serve's handles, so that
 * its CRL is made and served and its certificates answered at once.
 * *fresh says whether ca changed.
 */
static int
ca_refresh(struct rf_http *h, int *fresh)
{
	struct rf_ca_rec *recs = NULL;
	struct rf_ca *nca = NULL;
	size_t n = 0, i;
	int unknown = 0, r;

	*fresh = 0;
	if ((r = rf_store_ca_list(h->st, &recs, &n)) != 0)
		return r;
	if (n != h->ca_seen)
		for (i = 0; i < n; i++)
			if (rf_ca_cert(h->ca, recs[i].name) == NULL)
				unknown = 1;
	rf_ca_rec_free_all(recs, n);
	h->ca_seen = n;
	if (!unknown)
		return 0;
	if (h->nown_ca == RF_HTTP_ISSUERS_MAX)
		return rf_err_set(RF_ERR_TOO_LARGE,
		    "more than %d CA changes while serving: restart serve",
		    RF_HTTP_ISSUERS_MAX);
	if ((r = rf_ca_open(h->cfg, h->st, h->keys, &nca)) != 0)
		return r;
	rf_ca_set_audit(nca, h->audit);
	h->own_ca[h->nown_ca++] = nca; /* freed with h */
	h->ca = nca;
	*fresh = 1;
	return 0;
}

static void
snapshot_pass(struct rf_http *h)
{
	size_t before;
	int r, fresh = 0;

	if ((r = ca_refresh(h, &fresh)) != 0)
		rf_http_log(h, "reading new CAs", r);

	/* A CA new in the store (an incident's rotation) is served too. */
	if ((r = issuers_setup(h)) != 0)
		rf_http_log(h, "new issuing CA", r);
	ondemand_extra(h);
	tls_refresh(h); /* and serve's own certificate, if contain renewed it */
	before = h->ncrl_issuers;
	if ((r = rf_http_snapshot_reload(h)) != 0) {
		rf_http_log(h, "reloading CA certificates and CRLs", r);
		return;
	}
	h->snap_dirty = 0;
	/* A new CA's first CRL now, not after the store is quiet. */
	if (fresh || h->ncrl_issuers != before) {
		crl_pass(h);
		if (h->snap_dirty && (r = rf_http_snapshot_reload(h)) == 0)
			h->snap_dirty = 0;
	}
}

static int
incident_open_cb(void *arg, const struct rf_incident_rec *inc)
{
	int *open = arg;

	if (strcmp(inc->state, "closed") != 0)
		*open = 1;
	return 0;
}

/* A pass's noted query: serial, source, the newest time, how many. */
struct ev_note {
	char serial[41];
	char source[RF_HTTP_ADDR_MAX];
	int64_t when;
	uint64_t count;
};

static int
ev_note_cmp(const void *a, const void *b)
{
	const struct ev_note *x = a, *y = b;
	int c = strcmp(x->serial, y->serial);

	return c != 0 ? c : strcmp(x->source, y->source);
}

/*
 * The sightings' count leaf, once its minute is over: how many sightings
 * after re-establishment the budget did not record one by one.
 */
static int
ev_quota_roll(struct rf_http *h, int64_t now)
{
	struct rf_audit_event ev;
	char detail[512];

	if (!rf_leaf_quota_roll(&h->ev_quota, now, 0, detail, sizeof(detail)))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.type = "incident";
	ev.what = "sighting";
	ev.actor = "anonymous OCSP clients";
	ev.source = "serve";
	ev.detail = detail;
	ev.time = now;
	return rf_audit_append(h->audit, &ev, 1, NULL);
}

/*
 * Once a second: is an incident open (then workers note OCSP serials), and
 * hand the noted serials to the incident record as evidence, in one
 * transaction: the same serial and source once, with its count (a flood
 * from one client is one row more at most); the first of a source after
 * re-establishment a leaf, within a budget a minute; the sightings trimmed
 * to their cap once. final: the last pass, once the workers have stopped
 * (rf_http_run), whenever the previous one was: what they noted since is
 * not lost when serve stops.
 */
static void
evidence_pass(struct rf_http *h, uint64_t now, int final)
{
	struct rf_incident_ctx c;
	struct rf_leaf_quota before;
	static struct ev_note note[RF_HTTP_EVIDENCE_MAX];
	size_t n, i, k;
	int open = 0, matched, r;

	if (now - h->last_watch_ms < 1000 && !final)
		return;
	h->last_watch_ms = now;
	if ((r = rf_store_incident_foreach(h->st, incident_open_cb, &open)) !=
	    0) {
		rf_http_log(h, "incident watch", r);
		return;
	}
	__atomic_store_n(&h->watching, open, __ATOMIC_RELAXED);
	pthread_mutex_lock(&h->ev_lock);
	n = h->nev;
	for (i = 0; i < n; i++) {
		memcpy(note[i].serial, h->ev_serial[i], sizeof(note[i].serial));
		memcpy(note[i].source, h->ev_source[i], sizeof(note[i].source));
		note[i].when = h->ev_time[i];
		note[i].count = h->ev_count[i];
	}
	h->nev = 0;
	pthread_mutex_unlock(&h->ev_lock);
	if (n == 0 && !rf_leaf_quota_due(&h->ev_quota, rf_now()))
		return;
	qsort(note, n, sizeof(note[0]), ev_note_cmp);
	for (i = 0, k = 0; i < n; i++) {
		if (k > 0 && ev_note_cmp(&note[k - 1], &note[i]) == 0) {
			note[k - 1].count += note[i].count;
			if (note[i].when > note[k - 1].when)
				note[k - 1].when = note[i].when;
			continue;
		}
		note[k++] = note[i];
	}
	c.cfg = h->cfg;
	c.st = h->st;
	c.audit = h->audit;
	c.keys = h->keys;
	c.ca = h->ca;
	c.who = &h->who;
	c.progress = NULL;
	before = h->ev_quota;
	if ((r = rf_store_begin(h->st)) != 0) {
		rf_http_log(h, "incident evidence", r);
		return;
	}
	if ((r = ev_quota_roll(h, rf_now())) != 0)
		goto fail;
	/* One sighting that cannot be written does not cost the others. */
	for (i = 0; i < k; i++)
		if ((r = rf_incident_evidence(&c, note[i].serial,
			 note[i].source, note[i].when, (int64_t)note[i].count,
			 &h->ev_quota, &matched)) != 0)
			rf_http_log(h, "incident evidence", r);
	if ((r = rf_store_sighting_trim(h->st)) != 0 ||
	    (r = rf_store_commit(h->st)) != 0)
		goto fail;
	return;
fail:
	rf_http_log(h, "incident evidence", r);
	rf_store_rollback(h->st);
	h->ev_quota = before; /* its leaves went with the transaction */
}

/* What a committed change needs first: the responder and the snapshot. */
static void
maintain_reload(struct rf_http *h, uint64_t now)
{
	int64_t c;
	int r;

	/* A commit by another connection (a revoke, an issue). */
	if ((r = rf_store_change_counter(h->st, &c)) != 0)
		rf_http_log(h, "store change counter", r);
	else if (!h->have_counter || c != h->counter) {
		h->counter = c;
		h->have_counter = 1;
		h->crl_dirty = h->ocsp_dirty = h->snap_dirty = 1;
		h->last_change_ms = now;
	}
}

static void
maintain(struct rf_http *h, int first)
{
	uint64_t now = rf_http_mono_ms();
	size_t count, k;
	int r, made, quiet;

	maintain_reload(h, now);
	/*
	 * A writer that revokes (rf_revoke) regenerates the CRL and re-signs
	 * OCSP itself right after its commit; working on the same issuer at
	 * the same moment would only race it. So after a change, wait until
	 * the store has been quiet for RF_HTTP_QUIET_MS.
	 */
	quiet = now - h->last_change_ms >= RF_HTTP_QUIET_MS;
	if ((r = rf_ocsp_responder_reload(h->resp)) != 0)
		rf_http_log(h, "OCSP responder reload", r);
	if (h->snap_dirty && h->ncrl_issuers == 0)
		snapshot_pass(h); /* learn the CA names first */
	if ((h->crl_dirty && quiet &&
		now - h->last_crl_ms >= RF_HTTP_CRL_COALESCE_MS) ||
	    now - h->last_crl_ms >= 60000 || first) {
		h->crl_dirty = 0;
		h->last_crl_ms = now;
		crl_pass(h);
	}
	if (!first &&
	    ((h->ocsp_dirty && quiet && now - h->last_ocsp_ms >= 1000) ||
		h->last_ocsp_ms == 0 ||
		now - h->last_ocsp_ms >= RF_HTTP_OCSP_REFRESH_S * 1000)) {
		h->ocsp_dirty = 0;
		h->last_ocsp_ms = now;
		count = 0;
		if ((r = rf_ocsp_refresh_due(
			 h->signer, rf_now(), &h->who, &count)) != 0)
			rf_http_log(h, "OCSP refresh", r);
		for (k = 0; k < h->nextra; k++) {
			size_t c2 = 0;

			if ((r = rf_ocsp_refresh_due(h->extra[k].signer,
				 rf_now(), &h->who, &c2)) != 0)
				rf_http_log(h, "OCSP refresh", r);
			count += c2;
		}
		if (count > 0 && (r = rf_ocsp_responder_reload(h->resp)) != 0)
			rf_http_log(h, "OCSP responder reload", r);
	}
	evidence_pass(h, now, 0);
	if (now - h->last_sth_ms >= 1000) {
		h->last_sth_ms = now;
		made = 0;
		if ((r = rf_audit_maybe_sth(h->audit, h->keys,
			 h->cfg->sth_interval, (uint64_t)h->cfg->sth_leaves,
			 &made)) != 0)
			rf_http_log(h, "signed tree head", r);
	}
	/* Copying large CRLs on every commit elsewhere would be waste. */
	if (h->snap_dirty && (first || now - h->last_snap_ms >= 300)) {
		h->last_snap_ms = now;
		snapshot_pass(h);
	}
}

/*
 * For serve.sock (notify.c): the change a command committed, in what the
 * workers answer from, now; evidence, tree heads and CRLs wait for the
 * tick, so that they never delay the answer.
 */
void
rf_http_refresh_now(struct rf_http *h)
{
	int r;

	maintain_reload(h, rf_http_mono_ms());
	if ((r = rf_ocsp_responder_reload(h->resp)) != 0)
		rf_http_log(h, "OCSP responder reload", r);
	if (h->snap_dirty) {
		h->last_snap_ms = rf_http_mono_ms();
		snapshot_pass(h);
	}
}

static void
tick(struct rf_http *h)
{
	uint64_t now = rf_http_mono_ms();

	maintain(h, 0);
	rf_http_keyd_watch(h, now);
	if (now - h->last_sweep_ms >= 1000) {
		h->last_sweep_ms = now;
		rf_conn_sweep(h);
		rf_http_tickets_rotate(h->tickets, now);
	}
}

void
rf_http_worker_done(struct rf_http_worker *w)
{
	rf_http_api_worker_done(w);
	/* The /audit store connection belongs to the worker's thread. */
	rf_audit_free(w->audit);
	w->audit = NULL;
	rf_store_free(w->st);
	w->st = NULL;
}

/*
 * SIGINT and SIGTERM (handle_signals): a process-wide handler, whichever
 * thread the kernel picks (libraries' threads do not block them), that
 * does what rf_http_stop does; write(2) is async-signal-safe.
 */
static volatile sig_atomic_t sig_stopfd = -1;

static void
on_signal(int sig)
{
	uint64_t one = 1;
	int e = errno;

	(void)sig;
	if (sig_stopfd >= 0)
		(void)!write(sig_stopfd, &one, sizeof(one));
	errno = e;
}

/*
 * Maintenance every RF_HTTP_TICK_MS until rf_http_stop() or a signal
 * (mstopfd) or the deadline (0: none).
 */
static int
maintain_loop(struct rf_http *h, uint64_t deadline)
{
	struct pollfd pf[2];
	uint64_t now, last = rf_http_mono_ms();
	int n, nfd, wait;

	for (;;) {
		now = rf_http_mono_ms();
		if (deadline != 0 && now >= deadline)
			return 0;
		wait = now - last >= RF_HTTP_TICK_MS
		    ? 0
		    : (int)(RF_HTTP_TICK_MS - (now - last));
		if (deadline != 0 && deadline - now < (uint64_t)wait)
			wait = (int)(deadline - now);
		pf[0].fd = h->mstopfd;
		pf[0].events = POLLIN;
		pf[0].revents = 0;
		/* serve.sock: a command waits for its change to be served. */
		nfd = 1;
		if ((pf[1].fd = rf_http_notify_fd(h)) >= 0) {
			pf[1].events = POLLIN;
			pf[1].revents = 0;
			nfd = 2;
		}
		if ((n = poll(pf, (nfds_t)nfd, wait)) < 0) {
			if (errno == EINTR)
				continue;
			return rf_err_set(
			    RF_ERR_INTERNAL, "poll: %s", strerror(errno));
		}
		if (n > 0 && pf[0].revents != 0)
			return 0;
		if (nfd == 2 && pf[1].revents != 0)
			rf_http_notify_handle(h);
		if (rf_http_mono_ms() - last >= RF_HTTP_TICK_MS) {
			last = rf_http_mono_ms();
			tick(h);
		}
	}
}

int
rf_http_run(struct rf_http *h)
{
	struct sigaction sa, oint, oterm;
	struct rf_err_held held;
	sigset_t block, old;
	uint64_t deadline = 0, v;
	int i, r = RF_ERR_INTERNAL, started = 0, sigs = 0;

	signal(SIGPIPE, SIG_IGN);
	log_clear(h);
	while (read(h->mstopfd, &v, sizeof(v)) > 0)
		; /* a stop asked before a run is not for this one */
	/* Everything the workers serve is in memory before they start. */
	h->snap_dirty = 1;
	maintain(h, 1);
	if (h->snap == NULL) {
		if ((r = rf_http_snapshot_reload(h)) != 0)
			goto out;
	}
	if ((r = rf_http_pool_start(h)) != 0)
		goto out;
	/* A fresh TLS handshake's signature on the signing pool (conn.c). */
	if (h->tls_ctx != NULL)
		rf_keys_evp_set_runner(tls_sign_runner, h);
	if (h->o.handle_signals) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sig_stopfd = h->mstopfd;
		if (sigaction(SIGINT, &sa, &oint) == 0) {
			sigs |= 1;
			if (sigaction(SIGTERM, &sa, &oterm) == 0)
				sigs |= 2;
		}
	}
	/* Workers leave signals to this thread. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < h->nworkers; i++) {
		if (pthread_create(
			&h->w[i].tid, NULL, rf_conn_worker, &h->w[i]) != 0)
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (h->o.duration > 0)
		deadline = rf_http_mono_ms() + (uint64_t)h->o.duration * 1000;
	if (started < h->nworkers)
		r = rf_err_set(RF_ERR_INTERNAL, "cannot start a thread");
	else if (h->o.handle_signals && sigs != 3)
		r = rf_err_set(
		    RF_ERR_INTERNAL, "sigaction: %s", strerror(errno));
	else
		r = maintain_loop(h, deadline);
	__atomic_store_n(&h->stopping, 1, __ATOMIC_RELAXED);
	rf_conn_stop(h);
	for (i = 0; i < started; i++)
		pthread_join(h->w[i].tid, NULL);
	rf_http_pool_stop(h);
	if (h->tls_ctx != NULL)
		rf_keys_evp_set_runner(NULL, NULL);
	/* The OCSP queries noted since the last pass, as evidence; the
	 * reason serve stopped, if it failed, is kept across it. */
	rf_err_keep(&held, r);
	evidence_pass(h, rf_http_mono_ms(), 1);
	r = rf_err_kept(&held);
	if (sigs & 1)
		(void)sigaction(SIGINT, &oint, NULL);
	if (sigs & 2)
		(void)sigaction(SIGTERM, &oterm, NULL);
	sig_stopfd = -1;
out:
	return r;
}
