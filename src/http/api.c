/*
 * api.c: the connector API on serve's TLS listener (docs/connectors.md):
 * POST /v1/assertions, POST /v1/connector/renew and POST
 * /v1/connector/session. The listener asks for a client certificate
 * (always; it requires none) and verifies it against ringfence's CA (root
 * and issuing CAs, also those rotated in while serving); the API answers
 * only requests whose connection presented one (401 otherwise). Routes on
 * the plain listener answer 401 too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "connector/connector.h"
#include "http/http_int.h"
#include "keys/keys.h"
#include "store/store.h"

int
rf_http_api_setup(struct rf_http *h)
{
	X509_STORE *xs = NULL;
	struct rf_ca_rec *cas = NULL;
	const unsigned char *p;
	size_t n = 0, i;
	X509 *x;
	int r;

	/* Every CA certificate of the store anchors connector certificates:
	 * the root, and issuing CAs (rotated ones too) as intermediates the
	 * client need not send. */
	if ((r = rf_store_ca_list(h->tls_st, &cas, &n)) != 0)
		return r;
	if ((xs = X509_STORE_new()) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(cas[i].name, "root") != 0 &&
		    strncmp(cas[i].name, "issuing", 7) != 0)
			continue;
		p = cas[i].der;
		if ((x = d2i_X509(NULL, &p, (long)cas[i].derlen)) == NULL) {
			r = rf_err_set(RF_ERR_INTERNAL, "stored CA unreadable");
			goto out;
		}
		/* Also named in the CertificateRequest, so that a client
		 * holding several certificates picks a connector's. */
		if (X509_STORE_add_cert(xs, x) != 1 ||
		    SSL_CTX_add_client_CA(h->tls_ctx, x) != 1)
			ERR_clear_error();
		X509_free(x);
	}
	/*
	 * Ask, do not require, always: OCSP and CA routes stay open to
	 * anyone (a client without a certificate answers with none, and the
	 * API refuses it with 401); a certificate that does not verify
	 * (expired, another CA) fails the handshake. Asked also when no
	 * connector exists yet: the first one added while serve runs is
	 * served without a restart.
	 */
	SSL_CTX_set_cert_store(h->tls_ctx, xs);
	xs = NULL;
	SSL_CTX_set_verify(h->tls_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify_depth(h->tls_ctx, 3);
	r = rf_connector_svc_new(h->cfg, h->tls_keys, &h->csvc);
out:
	X509_STORE_free(xs);
	rf_ca_rec_free_all(cas, n);
	return r;
}

void
rf_http_api_trust(struct rf_http *h, X509 *ca)
{
	X509_STORE *xs;

	/* X509_STORE locks itself: safe while handshakes verify. */
	if (h->tls_ctx == NULL ||
	    (xs = SSL_CTX_get_cert_store(h->tls_ctx)) == NULL ||
	    X509_STORE_add_cert(xs, ca) != 1)
		ERR_clear_error();
}

void
rf_http_api_free(struct rf_http *h)
{
	rf_connector_svc_free(h->csvc);
	h->csvc = NULL;
}

void
rf_http_api_client_serial(SSL *ssl, char serial[41])
{
	X509 *x;

	serial[0] = '\0';
	if (ssl == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    (x = SSL_get0_peer_certificate(ssl)) == NULL)
		return;
	if (rf_ca_serial_str(X509_get0_serialNumber(x), serial) != 0) {
		rf_err_clear();
		serial[0] = '\0';
	}
}

/*
 * "ADDR:PORT" of a request's peer, for the record ("?" when unknown): an
 * IPv6 address in brackets ("[2001:db8::5]:41234"), so that the port can be
 * told from it, and an IPv4-mapped one as the IPv4 address it carries (a
 * dual-stack socket's IPv4 peer), as rf_http_peer_addr() names peers.
 */
static void
api_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char addr[RF_HTTP_ADDR_MAX];
	unsigned port;

	rf_http_peer_addr(ss, addr);
	if (addr[0] == '\0') {
		snprintf(out, len, "?");
		return;
	}
	port = ss->ss_family == AF_INET
	    ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
	    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	if (strchr(addr, ':') != NULL) /* RFC 3986 3.2.2: [IPv6]:port */
		snprintf(out, len, "[%s]:%u", addr, port);
	else
		snprintf(out, len, "%s:%u", addr, port);
}

/* A connector was served from peer: its source is known (limits.c). */
static void
api_served(struct rf_http *h, const struct sockaddr_storage *peer,
    const struct rf_api_answer *a)
{
	if (a->status == 200)
		rf_http_limits_known(h->limits, peer, rf_now());
}

/* a as the HTTP answer o; a's body moves to o (a holds nothing after). */
static void
api_reply(struct rf_http_resp *o, struct rf_api_answer *a)
{
	char ra[16];

	rf_http_status(o, a->status);
	o->h[o->nh].name = "Content-Type";
	snprintf(
	    o->h[o->nh++].value, sizeof(o->h[0].value), "application/json");
	o->h[o->nh].name = "Cache-Control";
	snprintf(o->h[o->nh++].value, sizeof(o->h[0].value), "no-store");
	/* RFC 9110 15.5.6: a 405 lists the methods the route takes. */
	if (a->status == 405) {
		o->h[o->nh].name = "Allow";
		snprintf(o->h[o->nh++].value, sizeof(o->h[0].value), "POST");
	}
	if (a->retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", a->retry_after);
		o->h[o->nh].name = "Retry-After";
		snprintf(o->h[o->nh++].value, sizeof(o->h[0].value), "%s", ra);
	}
	if (a->body != NULL) {
		o->heap = a->body;
		o->body = (const uint8_t *)a->body;
		o->len = strlen(a->body);
		a->body = NULL;
	}
}

static int
path_eq(const char *uri, size_t plen, const char *lit)
{
	return strlen(lit) == plen && memcmp(uri, lit, plen) == 0;
}

/*
 * A request the HTTP layer refused before the API read it (a body over
 * the server's limit, a header block too large): answered in the API's
 * own form, JSON with a stable code, as every API answer is.
 */
void
rf_http_api_error(
    struct rf_http_resp *o, int code, const char *text, size_t max_body)
{
	struct rf_api_answer a;
	char limit[64];

	/*
	 * A body over the server's limit is over the API's too when the
	 * server's is the higher: the API's is then the one to say. A lower
	 * max_request refused it itself, and the HTTP layer's text says so.
	 */
	if (code == 413 && max_body >= RF_CONNECTOR_BODY_MAX) {
		snprintf(limit, sizeof(limit),
		    "request body too large: at most %d bytes",
		    RF_CONNECTOR_BODY_MAX);
		text = limit;
	}
	memset(o, 0, sizeof(*o));
	memset(&a, 0, sizeof(a));
	rf_api_answer_error(
	    &a, code, code >= 500 ? "unavailable" : "bad_request", text);
	api_reply(o, &a);
	rf_api_answer_clear(&a);
}

int
rf_http_api_is_route(const char *target)
{
	size_t plen = strcspn(target, "?#");

	return path_eq(target, plen, "/v1/assertions") ||
	    path_eq(target, plen, "/v1/connector/renew") ||
	    path_eq(target, plen, "/v1/connector/session");
}

int
rf_http_api_route(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *uri, size_t plen)
{
	struct rf_api_answer a;
	char peer[INET6_ADDRSTRLEN + 8];
	int renew = 0, session = 0;

	if (path_eq(uri, plen, "/v1/connector/renew"))
		renew = 1;
	else if (path_eq(uri, plen, "/v1/connector/session"))
		session = 1;
	else if (!path_eq(uri, plen, "/v1/assertions"))
		return 0;
	memset(&a, 0, sizeof(a));
	api_peer(q->peer, peer, sizeof(peer));
	if (q->method != RF_HTTP_POST) {
		a.status = 405;
		a.body = strdup("{\"error\":\"method_not_allowed\","
				"\"message\":\"use POST\"}");
	} else if (w->h->csvc == NULL || q->client_serial == NULL) {
		a.status = 401;
		a.body = strdup("{\"error\":\"client_certificate_required\","
				"\"message\":\"use the TLS port with a "
				"connector's client certificate\"}");
	} else if (renew)
		rf_connector_svc_renew(w->h->csvc, q->client_serial, peer,
		    q->body, q->bodylen, &a);
	else if (session)
		rf_connector_svc_session(w->h->csvc, q->client_serial, peer,
		    q->body, q->bodylen, &a);
	else
		rf_connector_svc_assert(w->h->csvc, q->client_serial, peer,
		    q->body, q->bodylen, &a);
	api_served(w->h, q->peer, &a);
	api_reply(o, &a);
	return 1;
}

/*
 * Assertions waited for on the epoll worker. Through the signing pool an
 * assertion costs a pool thread's two wake-ups (the worker hands it over;
 * keyd's answer wakes it) on top of the worker's: on two cores a third of
 * serve's time (bench/assert_profile.sh). Here the worker decides, writes
 * the request on a keyd connection of its own (in its epoll set, one
 * request at a time each) and goes on with its other connections; keyd's
 * answer is one more event of its set. What would make the worker wait
 * otherwise (a key not loaded yet, a keyd to connect to for the first
 * time after it went away) goes to the pool as before.
 */
#define API_KSLOTS_MAX 16 /* keyd connections per worker */
#define API_KSLOTS_ALL 32 /* of all workers (keyd takes 128 callers) */

struct rf_http_kslot {
	int ev;		       /* RF_HTTP_EV_KEYD: first, as conn.c's events */
	struct rf_kcall *call; /* NULL: not connected */
	struct rf_http_job *job; /* NULL: idle */
	struct rf_assert_pending *ap;
};

static void
kslot_close(struct rf_http_worker *w, struct rf_http_kslot *s)
{
	if (s->call == NULL)
		return;
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, rf_keys_call_fd(s->call), NULL);
	rf_keys_call_free(s->call);
	s->call = NULL;
}

/*
 * An idle slot of w, its hello answered: NULL if none (the pool answers).
 * Without one, an unconnected slot connects and says hello, for the
 * requests after this one: keyd's answer to the hello is an event too.
 */
static struct rf_http_kslot *
kslot_get(struct rf_http_worker *w)
{
	struct rf_http_kslot *s = NULL;
	struct epoll_event ev;
	int i, n;

	if (w->ks == NULL) {
		n = API_KSLOTS_ALL / (w->h->nworkers > 0 ? w->h->nworkers : 1);
		n = n < 1 ? 1 : n > API_KSLOTS_MAX ? API_KSLOTS_MAX : n;
		if ((w->ks = calloc((size_t)n, sizeof(*w->ks))) == NULL)
			return NULL;
		w->nks = n;
		for (i = 0; i < n; i++)
			w->ks[i].ev = RF_HTTP_EV_KEYD;
	}
	for (i = 0; i < w->nks; i++) {
		if (w->ks[i].call == NULL) {
			if (s == NULL)
				s = &w->ks[i];
		} else if (w->ks[i].job == NULL &&
		    rf_keys_call_idle(w->ks[i].call))
			return &w->ks[i];
	}
	if (s == NULL || rf_keys_call_open(w->h->tls_keys, &s->call) != 0)
		return NULL;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, rf_keys_call_fd(s->call), &ev) !=
	    0) {
		rf_keys_call_free(s->call);
		s->call = NULL;
	}
	return NULL;
}

/* j's answer from a into its response, and j to its worker. */
static void
kslot_answer(struct rf_http_job *j, struct rf_api_answer *a)
{
	api_served(j->w->h, j->q.peer, a);
	api_reply(&j->o, a);
	rf_http_pool_done(j, RF_HTTP_POOL_SIGN);
}

int
rf_http_api_begin(struct rf_http_worker *w, struct rf_http_job *j)
{
	struct rf_http_kslot *s;
	struct rf_assert_pending *ap = NULL;
	struct rf_api_answer a;
	const struct rf_key *key;
	const struct rf_sign_req *sr;
	const struct rf_actor *who;
	char peer[INET6_ADDRSTRLEN + 8];

	if (w->pool != NULL || w->h->csvc == NULL ||
	    j->q.method != RF_HTTP_POST || j->q.client_serial == NULL ||
	    !path_eq(
		j->q.target, strcspn(j->q.target, "?#"), "/v1/assertions") ||
	    (s = kslot_get(w)) == NULL)
		return -1;
	api_peer(j->q.peer, peer, sizeof(peer));
	if (rf_connector_svc_assert_begin(w->h->csvc, j->q.client_serial, peer,
		j->q.body, j->q.bodylen, 1, &a, &ap) != 0)
		return -1; /* it would wait: the pool's, undecided */
	if (ap == NULL) {
		kslot_answer(j, &a); /* a refusal, bad input */
		return 0;
	}
	rf_connector_assert_request(ap, &key, &sr, &who);
	if (key == NULL) {
		/* Its key is loaded from keyd first: a wait, the pool's. */
		j->ap = ap;
		return -1;
	}
	if (rf_keys_call_sign(s->call, key, sr, who) != 0) {
		/* Nothing went out (keyd went away and the slot did not
		 * know yet): the pool signs it, decided already. */
		kslot_close(w, s);
		j->ap = ap;
		return -1;
	}
	s->job = j;
	s->ap = ap;
	return 0;
}

void
rf_http_api_ready(struct rf_http_worker *w, void *ev)
{
	struct rf_http_kslot *s = ev;
	struct rf_http_job *j = s->job;
	struct rf_api_answer a;
	struct rf_sig sig = {NULL, 0};
	const struct rf_key *key;
	const struct rf_sign_req *sr;
	const struct rf_actor *who;
	int r;

	if (s->call == NULL)
		return; /* closed since the event was reported */
	if (j == NULL) {
		/* keyd's answer to the hello; nothing else is asked of an
		 * idle one (keyd closes it: it stopped). */
		if (rf_keys_call_idle(s->call) ||
		    (r = rf_keys_call_greet(s->call)) < 0)
			kslot_close(w, s);
		return;
	}
	rf_connector_assert_request(s->ap, &key, &sr, &who);
	if ((r = rf_keys_call_sign_read(s->call, key, sr, &sig)) == 1)
		return; /* not all of it yet */
	if (r != 0 && !rf_keys_call_alive(s->call))
		kslot_close(w, s);
	rf_connector_svc_assert_end(w->h->csvc, s->ap, r, &sig, &a);
	rf_sig_clear(&sig);
	s->job = NULL;
	s->ap = NULL;
	/* Answered here, on the worker, at once (the slot is free again:
	 * the connection's next request may take it). */
	api_served(w->h, j->q.peer, &a);
	api_reply(&j->o, &a);
	rf_http_pool_release(w->h, RF_HTTP_POOL_SIGN);
	rf_conn_job_answer(w, j);
}

void
rf_http_api_finish(struct rf_http_job *j)
{
	struct rf_api_answer a;
	struct rf_assert_pending *ap = j->ap;

	j->ap = NULL;
	rf_connector_svc_assert_finish(j->w->h->csvc, ap, &a);
	api_served(j->w->h, j->q.peer, &a);
	api_reply(&j->o, &a);
}

void
rf_http_api_worker_done(struct rf_http_worker *w)
{
	struct rf_api_answer a;
	int i;

	for (i = 0; w->ks != NULL && i < w->nks; i++) {
		if (w->ks[i].job != NULL) {
			/* Stopping: its connection closes unanswered. */
			rf_connector_svc_assert_end(
			    w->h->csvc, w->ks[i].ap, RF_ERR_CUSTODY, NULL, &a);
			rf_api_answer_clear(&a);
			rf_http_job_free(w->ks[i].job);
		}
		kslot_close(w, &w->ks[i]);
	}
	free(w->ks);
	w->ks = NULL;
	w->nks = 0;
}
