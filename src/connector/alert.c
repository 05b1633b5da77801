/*
 * alert.c: alerts are store rows (the webhook queue) and audit leaves; the
 * webhook delivers them at least once, each with a stable id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
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

/* http:// or https:// and a host: what a webhook may be. */
static int
url_check(const char *url)
{
	const char *h = strncmp(url, "http://", 7) == 0 ? url + 7
	    : strncmp(url, "https://", 8) == 0		? url + 8
							: NULL;

	if (h == NULL || *h == '\0' || *h == '/' || *h == ':' ||
	    strlen(url) > 512 || strpbrk(url, " \t\r\n") != NULL)
		return rf_err_set(RF_ERR_CONFIG,
		    "alert_webhook '%.100s': use http://HOST:PORT/PATH or "
		    "https://HOST/PATH",
		    url);
	return 0;
}

/* The receiver's body is not read: only its status matters. */
static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/*
 * POST body as JSON to url with libcurl; the HTTP status into *status (0:
 * no answer). Bounded in time; no proxy, no redirect: the alert goes to
 * the receiver the setting names, or waits for the next pass.
 */
static int
post(const char *url, const char *body, int *status)
{
	struct curl_slist *hd = NULL, *h2;
	CURL *c = NULL;
	long code = 0;
	int r;

	*status = 0;
	if ((r = url_check(url)) != 0)
		return r;
	if ((c = curl_easy_init()) == NULL ||
	    (hd = curl_slist_append(NULL, "Content-Type: application/json")) ==
		NULL ||
	    (h2 = curl_slist_append(hd, "Expect:")) == NULL) {
		curl_slist_free_all(hd);
		curl_easy_cleanup(c);
		return RF_ERR_ALLOC;
	}
	hd = h2;
	if (curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") ==
		CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
		(long)WEBHOOK_TIMEOUT_MS) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
		(long)(2 * WEBHOOK_TIMEOUT_MS)) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_USERAGENT, "ringfence") == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) == CURLE_OK &&
	    curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
		*status = (int)code;
	curl_slist_free_all(hd);
	curl_easy_cleanup(c);
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
