/*
 * alert.c: alerts are store rows (the webhook queue) and audit leaves; the
 * webhook delivers them at least once, each with a stable id.
 */
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "connector/connector.h"

#define WEBHOOK_TIMEOUT_MS 2000
#define BACKOFF_MAX 300

int
rf_connector_alerts_raise(struct rf_store *st, struct rf_audit *audit,
    const struct rf_alert_rec *a, size_t n)
{
	struct rf_audit_event ev;
	char detail[512];
	size_t i;
	int r, added;

	for (i = 0; i < n; i++) {
		if ((r = rf_store_alert_add(st, &a[i], &added)) != 0)
			return r;
		if (!added)
			continue;
		snprintf(detail, sizeof(detail), "%s: %s (connection %s/%s)",
		    a[i].kind, a[i].detail, a[i].tenant, a[i].conn);
		memset(&ev, 0, sizeof(ev));
		ev.type = "alert";
		ev.tenant = a[i].tenant;
		ev.ref = a[i].uid;
		ev.actor = a[i].connector;
		ev.detail = detail;
		ev.time = a[i].time;
		if ((r = rf_audit_append(audit, &ev, 1, NULL)) != 0)
			return r;
	}
	return 0;
}

char *
rf_connector_alert_json(const struct rf_alert_rec *a)
{
	json_t *j = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "id", a->uid,
	    "time", (json_int_t)a->time, "kind", a->kind, "tenant", a->tenant,
	    "connection", a->conn, "connector", a->connector, "detail",
	    a->detail);
	char *s;

	if (j == NULL)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* http://HOST:PORT/PATH into parts. */
static int
url_parse(const char *url, char host[128], char port[8], char path[128])
{
	const char *p, *h;
	size_t l;

	if (strncmp(url, "http://", 7) != 0)
		goto bad;
	h = url + 7;
	if ((p = strchr(h, ':')) == NULL || (l = (size_t)(p - h)) == 0 ||
	    l >= 128)
		goto bad;
	memcpy(host, h, l);
	host[l] = '\0';
	h = p + 1;
	l = strspn(h, "0123456789");
	if (l == 0 || l > 5)
		goto bad;
	memcpy(port, h, l);
	port[l] = '\0';
	h += l;
	snprintf(path, 128, "%s", *h == '\0' ? "/" : h);
	if (*path != '/')
		goto bad;
	return 0;
bad:
	return rf_err_set(RF_ERR_CONFIG,
	    "alert_webhook '%.100s': use http://HOST:PORT/PATH", url);
}

/* Wait for fd to be ready for ev; 0 on time. */
static int
wait_fd(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, WEBHOOK_TIMEOUT_MS) == 1 ? 0 : -1;
}

/* POST body; the HTTP status into *status (0: no answer). */
static int
post(const char *url, const char *body, int *status)
{
	char host[128], port[8], path[128], req[768], resp[256];
	struct addrinfo hints, *ai = NULL;
	struct timeval tv = {WEBHOOK_TIMEOUT_MS / 1000, 0};
	size_t off, l;
	ssize_t k;
	int fd = -1, r;

	*status = 0;
	if ((r = url_parse(url, host, port, path)) != 0)
		return r;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return 0;
	/* Bounded: connect and writes give up after the timeout (Linux
	 * applies SO_SNDTIMEO to connect). */
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		goto out;
	l = (size_t)snprintf(req, sizeof(req),
	    "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: "
	    "close\r\n\r\n",
	    path, host, port, strlen(body));
	if (l >= sizeof(req) || write(fd, req, l) != (ssize_t)l ||
	    write(fd, body, strlen(body)) != (ssize_t)strlen(body))
		goto out;
	for (off = 0; off < sizeof(resp) - 1 && wait_fd(fd, POLLIN) == 0;
	     off += (size_t)k)
		if ((k = read(fd, resp + off, sizeof(resp) - 1 - off)) <= 0)
			break;
	resp[off] = '\0';
	if (strncmp(resp, "HTTP/1.", 7) == 0 && off >= 12)
		*status = atoi(resp + 9);
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return 0;
}

int
rf_connector_webhook_pass(
    struct rf_store *st, const char *url, int64_t now, size_t *sent)
{
	struct rf_alert_rec q[32];
	size_t n, i;
	int64_t delay;
	char *body;
	int r, status;

	*sent = 0;
	if ((r = rf_store_alert_due(st, now, q, 32, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if ((body = rf_connector_alert_json(&q[i])) == NULL)
			return RF_ERR_ALLOC;
		r = post(url, body, &status);
		free(body);
		if (r != 0)
			return r;
		if (status >= 200 && status < 300) {
			if ((r = rf_store_alert_mark(
				 st, q[i].id, 1, q[i].attempts + 1, 0)) != 0)
				return r;
			(*sent)++;
			continue;
		}
		/* 1 s, 2 s, 4 s, ... up to 5 minutes between tries. */
		delay = q[i].attempts < 9 ? (int64_t)1 << q[i].attempts
					  : BACKOFF_MAX;
		if (delay > BACKOFF_MAX)
			delay = BACKOFF_MAX;
		if ((r = rf_store_alert_mark(
			 st, q[i].id, 0, q[i].attempts + 1, now + delay)) != 0)
			return r;
		break; /* the receiver is down: the rest waits too */
	}
	return 0;
}
