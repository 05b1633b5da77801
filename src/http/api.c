/*
 * api.c: the connector API on serve's TLS listener (docs/connectors.md):
 * POST /v1/assertions and POST /v1/connector/renew. The listener asks for
 * a client certificate (always; it requires none) and verifies it against
 * ringfence's CA (root and issuing CAs, also those rotated in while
 * serving); the API answers only requests whose connection presented one
 * (401 otherwise). Routes on the plain listener answer 401 too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "connector/connector.h"
#include "http/http_int.h"
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

/* "ADDR:PORT" of a request's peer, for the record ("?" when unknown). */
static void
api_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	const void *a = NULL;
	unsigned port = 0;

	if (ss != NULL && ss->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
		a = &v4->sin_addr;
		port = ntohs(v4->sin_port);
	} else if (ss != NULL && ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
		a = &v6->sin6_addr;
		port = ntohs(v6->sin6_port);
	}
	if (a == NULL ||
	    inet_ntop(ss->ss_family, a, addr, sizeof(addr)) == NULL)
		snprintf(out, len, "?");
	else
		snprintf(out, len, "%s:%u", addr, port);
}

static void
api_reply(struct rf_http_resp *o, struct rf_api_answer *a)
{
	char ra[16];

	o->code = a->status;
	switch (a->status) {
	case 200:
		o->reason = "OK";
		break;
	case 400:
		o->reason = "Bad Request";
		break;
	case 401:
		o->reason = "Unauthorized";
		break;
	case 403:
		o->reason = "Forbidden";
		break;
	case 404:
		o->reason = "Not Found";
		break;
	case 405:
		o->reason = "Method Not Allowed";
		break;
	case 409:
		o->reason = "Conflict";
		break;
	case 413:
		o->reason = "Content Too Large";
		break;
	case 423:
		o->reason = "Locked";
		break;
	case 429:
		o->reason = "Too Many Requests";
		break;
	default:
		o->reason = "Internal Server Error";
		break;
	}
	o->h[o->nh].name = "Content-Type";
	snprintf(
	    o->h[o->nh++].value, sizeof(o->h[0].value), "application/json");
	o->h[o->nh].name = "Cache-Control";
	snprintf(o->h[o->nh++].value, sizeof(o->h[0].value), "no-store");
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

int
rf_http_api_is_route(const char *target)
{
	size_t plen = strcspn(target, "?#");

	return path_eq(target, plen, "/v1/assertions") ||
	    path_eq(target, plen, "/v1/connector/renew");
}

int
rf_http_api_route(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *uri, size_t plen)
{
	struct rf_api_answer a;
	char peer[INET6_ADDRSTRLEN + 8];
	int renew;

	if (path_eq(uri, plen, "/v1/assertions"))
		renew = 0;
	else if (path_eq(uri, plen, "/v1/connector/renew"))
		renew = 1;
	else
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
	else
		rf_connector_svc_assert(w->h->csvc, q->client_serial, peer,
		    q->body, q->bodylen, &a);
	api_reply(o, &a);
	rf_api_answer_clear(&a);
	return 1;
}
