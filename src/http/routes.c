/*
 * routes.c: what each request gets. Runs on worker threads (and, for the
 * slow routes, /audit, on the pool's: pool.c). The routes are a table
 * (routes[] below): a path matched exactly or as a prefix, its handler,
 * and whether it is slow.
 *
 * Paths are matched on the raw request-target:
 * the GET form of OCSP carries base64 with '/', '+', '=' and "//", which a
 * normalised path would mangle (RFC 5019 5).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit/audit.h"
#include "http/http_int.h"
#include "keys/keyd.h"
#include "store/store.h"

void
rf_http_date(int64_t t, char out[30])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		snprintf(out, 30, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void
add_header(struct rf_http_resp *o, const char *k, const char *v)
{
	size_t l = strlen(v);

	if (o->nh < RF_HTTP_RESP_HDRS) {
		if (l >= sizeof(o->h[o->nh].value))
			l = sizeof(o->h[o->nh].value) - 1;
		o->h[o->nh].name = k;
		memcpy(o->h[o->nh].value, v, l);
		o->h[o->nh].value[l] = '\0';
		o->nh++;
	}
}

void
rf_http_status(struct rf_http_resp *o, int code)
{
	o->code = code;
	switch (code) {
	case 200:
		o->reason = "OK";
		break;
	case 304:
		o->reason = "Not Modified";
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
	case 414:
		o->reason = "URI Too Long";
		break;
	case 417:
		o->reason = "Expectation Failed";
		break;
	case 423:
		o->reason = "Locked";
		break;
	case 429:
		o->reason = "Too Many Requests";
		break;
	case 431:
		o->reason = "Request Header Fields Too Large";
		break;
	case 500:
		o->reason = "Internal Server Error";
		break;
	case 501:
		o->reason = "Not Implemented";
		break;
	case 503:
		o->reason = "Service Unavailable";
		break;
	default:
		o->reason = "Error";
	}
}

/* A short text body: "text\n". */
static void
reply_text(struct rf_http_resp *o, int code, const char *text)
{
	size_t l = strlen(text);
	char *b;

	add_header(o, "Content-Type", "text/plain; charset=utf-8");
	add_header(o, "Cache-Control", "no-store");
	rf_http_status(o, code);
	if ((b = malloc(l + 1)) == NULL)
		return; /* headers only */
	memcpy(b, text, l);
	b[l] = '\n';
	o->heap = b;
	o->body = (const uint8_t *)b;
	o->len = l + 1;
}

void
rf_http_busy(const struct rf_http_req *q, struct rf_http_resp *o)
{
	static const char api[] = "{\"error\":\"busy\",\"message\":\"too many "
				  "requests wait on the custody process: retry "
				  "after Retry-After seconds\"}\n";
	const char *t = q->target != NULL ? q->target : "";
	uint8_t *b;

	memset(o, 0, sizeof(*o));
	if (strncmp(t, "/ocsp", 5) == 0 && (t[5] == '\0' || t[5] == '/')) {
		/* RFC 6960 2.3: tryLater, unsigned; nothing to cache. */
		add_header(o, "Content-Type", "application/ocsp-response");
		add_header(o, "Cache-Control", "no-store");
		rf_http_status(o, 200);
		if ((b = malloc(RF_OCSP_ERROR_LEN)) == NULL)
			return; /* headers only */
		rf_ocsp_error_response(RF_OCSP_TRY_LATER, b);
		o->heap = b;
		o->body = b;
		o->len = RF_OCSP_ERROR_LEN;
		return;
	}
	/* RFC 9110 10.2.3: when to ask again. */
	add_header(o, "Retry-After", "1");
	if (strncmp(t, "/v1/", 4) == 0) {
		add_header(o, "Content-Type", "application/json");
		add_header(o, "Cache-Control", "no-store");
		o->body = (const uint8_t *)api;
		o->len = sizeof(api) - 1;
		rf_http_status(o, 503);
		return;
	}
	reply_text(
	    o, 503, "busy: too many requests of this kind at once, retry");
}

void
rf_http_error(struct rf_http_resp *o, int code, const char *text)
{
	memset(o, 0, sizeof(*o));
	reply_text(o, code, text);
}

/* RFC 9110 15.5.6: 405 lists the allowed methods. */
static void
reply_405(struct rf_http_resp *o, const char *allow)
{
	add_header(o, "Allow", allow);
	reply_text(o, 405, "method not allowed");
}

static int
is_get(const struct rf_http_req *q)
{
	return q->method == RF_HTTP_GET || q->method == RF_HTTP_HEAD;
}

/*
 * RFC 9110 13.1.2 If-None-Match: "*" or a list of entity tags, strong or
 * weak ("W/"), compared weakly. 1 if etag (unquoted) is listed.
 */
static int
etag_matches(const struct rf_http_req *q, const char *etag)
{
	const char *v = q->if_none_match, *p;
	size_t el = strlen(etag);

	if (v == NULL || el == 0)
		return 0;
	for (p = v; *p != '\0';) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return 0;
		p++;
		if (strncmp(p, etag, el) == 0 && p[el] == '"')
			return 1;
		if ((p = strchr(p, '"')) == NULL)
			return 0;
		p++;
	}
	return 0;
}

const char *
rf_http_worker_date(struct rf_http_worker *w, int slot, int64_t t)
{
	if (w->date_t[slot] != t || w->date_s[slot][0] == '\0') {
		rf_http_date(t, w->date_s[slot]);
		w->date_t[slot] = t;
	}
	return w->date_s[slot];
}

/* The longest an OCSP answer may be cached (seconds). */
#define RF_HTTP_OCSP_MAX_AGE 60

/* Validators and freshness for a response valid from lm until exp. */
static void
cache_headers(struct rf_http_worker *w, struct rf_http_resp *o,
    const char *etag, int64_t lm, int64_t exp, int64_t dflt_age, int revalidate)
{
	char buf[128];
	int64_t age = dflt_age, now = rf_now();

	if (exp > 0) {
		/* max-age never reaches past nextUpdate. */
		age = exp - now;
		if (age < 0)
			age = 0;
		/*
		 * RFC 5019 6.2 lets max-age reach nextUpdate, but a cached
		 * `good` must not outlive a revocation by days: OCSP
		 * answers (revalidate) are cached for minutes at most.
		 */
		if (revalidate && age > RF_HTTP_OCSP_MAX_AGE)
			age = RF_HTTP_OCSP_MAX_AGE;
		add_header(o, "Expires",
		    rf_http_worker_date(w, RF_HTTP_DATE_NEXT, exp));
	}
	snprintf(buf, sizeof(buf),
	    "max-age=%" PRId64 ", public, no-transform%s", age,
	    revalidate ? ", must-revalidate" : "");
	add_header(o, "Cache-Control", buf);
	if (lm > 0)
		add_header(o, "Last-Modified",
		    rf_http_worker_date(w, RF_HTTP_DATE_THIS, lm));
	snprintf(buf, sizeof(buf), "\"%s\"", etag);
	add_header(o, "ETag", buf);
}

/* /ca/... and /crl/...: from the snapshot. 0 if the path is not there. */
static int
serve_blob(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *path, size_t plen)
{
	struct rf_http *h = w->h;
	struct rf_http_snapshot *s = rf_http_snapshot_get(h);
	const struct rf_http_blob *b = NULL;
	size_t i;

	for (i = 0; s != NULL && i < s->n; i++)
		if (strlen(s->b[i].path) == plen &&
		    memcmp(s->b[i].path, path, plen) == 0) {
			b = &s->b[i];
			break;
		}
	if (b == NULL) {
		rf_http_snapshot_unref(s);
		return 0;
	}
	if (!is_get(q)) {
		rf_http_snapshot_unref(s);
		reply_405(o, "GET, HEAD");
		return 1;
	}
	add_header(o, "Content-Type", b->ctype);
	/* RFC 5280 5.1.2.5: a CRL is fresh until its nextUpdate. */
	cache_headers(w, o, b->etag, b->last_modified, b->expires, 3600, 0);
	if (etag_matches(q, b->etag)) {
		rf_http_snapshot_unref(s);
		rf_http_status(o, 304);
		return 1;
	}
	/* The reference is dropped once the bytes are written. */
	o->snap = s;
	o->body = b->data;
	o->len = b->len;
	rf_http_status(o, 200);
	return 1;
}

/*
 * RFC 5019 6.2: a successful response carries Last-Modified (thisUpdate),
 * Expires (nextUpdate), an ETag and
 * Cache-Control: max-age=N, public, no-transform, must-revalidate
 * with N no later than nextUpdate. Error statuses are not cacheable.
 * The body is the worker's answer buffer, valid until its next request.
 */
static void
ocsp_reply(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const struct rf_ocsp_answer *ans)
{
	add_header(o, "Content-Type", "application/ocsp-response");
	if (ans->status == RF_OCSP_SUCCESSFUL && ans->next_update > 0) {
		cache_headers(
		    w, o, ans->etag, ans->this_update, ans->next_update, 0, 1);
		if (is_get(q) && etag_matches(q, ans->etag)) {
			rf_http_status(o, 304);
			return;
		}
	} else
		add_header(o, "Cache-Control", "no-store");
	o->body = ans->der;
	o->len = ans->len;
	rf_http_status(o, ans->http_status > 0 ? ans->http_status : 200);
}

/* Note the serials of an answered request while an incident is open. */
#define EV_LOOKBACK 8 /* notes looked at for the same query */
static void
evidence_note(struct rf_http *h, const struct sockaddr_storage *peer,
    const uint8_t *der, size_t len)
{
	struct rf_ocsp_request q;
	char src[RF_HTTP_ADDR_MAX];
	int64_t now = rf_now();
	size_t i, k;

	if (rf_ocsp_request_parse(der, len, &q) != 0)
		return;
	rf_http_peer_addr(peer, src);
	pthread_mutex_lock(&h->ev_lock);
	for (i = 0; i < q.n; i++) {
		if (q.ids[i].serial[0] == '\0')
			continue;
		/* The same query as one of the last few: counted there, so
		 * that a flood from one client takes no room from others. */
		for (k = h->nev; k > 0 && k + EV_LOOKBACK > h->nev; k--)
			if (strcmp(h->ev_serial[k - 1], q.ids[i].serial) == 0 &&
			    strcmp(h->ev_source[k - 1], src) == 0)
				break;
		if (k > 0 && k + EV_LOOKBACK > h->nev) {
			if (h->ev_count[k - 1] < UINT32_MAX)
				h->ev_count[k - 1]++;
			h->ev_time[k - 1] = now;
			continue;
		}
		if (h->nev == RF_HTTP_EVIDENCE_MAX)
			break;
		memcpy(h->ev_serial[h->nev], q.ids[i].serial, 41);
		memcpy(h->ev_source[h->nev], src, sizeof(src));
		h->ev_count[h->nev] = 1;
		h->ev_time[h->nev++] = now;
	}
	pthread_mutex_unlock(&h->ev_lock);
}

/* What the OCSP budget gate knows of a request. */
struct gate_ctx {
	struct rf_http *h;
	const struct sockaddr_storage *peer;
};

/*
 * Asked by the responder before it signs on demand: the per-source and
 * global budgets, and the bytes a day of the record, count the leaf that
 * signature adds (its ref names every serial: signer.c).
 */
static int
ocsp_gate(void *arg, const struct rf_ocsp_request *q)
{
	static const struct rf_actor who = {"ocsp-responder", "ocsp on-demand"};
	const struct gate_ctx *g = arg;
	char ref[RF_OCSP_REF_MAX];
	size_t dlen;

	rf_ocsp_ondemand_ref(q->ids, q->n, ref);
	dlen =
	    g->h->od.key != NULL && rf_key_alg(g->h->od.key) == RF_KEY_EC_P384
	    ? 48
	    : 32;
	return rf_http_limits_take(g->h->limits, RF_HTTP_BUDGET_OCSP, g->peer,
	    rf_http_sign_leaf_bytes(
		g->h->od.key != NULL ? rf_key_id(g->h->od.key) : NULL, "ocsp",
		ref, dlen, &who),
	    rf_http_mono_ms(), rf_now() / 86400);
}

/*
 * An answer the responder could not sign (internalError): a line in
 * serve's log saying why. Anyone can ask, so at most one line a second;
 * the next one counts those left out meanwhile.
 */
static void
ocsp_failure_log(struct rf_http *h, const struct rf_ocsp_answer *ans)
{
	uint64_t now = rf_http_mono_ms(),
		 last = __atomic_load_n(&h->od_log_ms, __ATOMIC_RELAXED);
	uint64_t more;
	char line[sizeof(ans->why) + 96];

	if (h->o.log == NULL)
		return;
	if ((last != 0 && now - last < 1000) ||
	    !__atomic_compare_exchange_n(&h->od_log_ms, &last, now, 0,
		__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&h->od_unlogged, 1, __ATOMIC_RELAXED);
		return;
	}
	more = __atomic_exchange_n(&h->od_unlogged, 0, __ATOMIC_RELAXED);
	if (more > 0)
		snprintf(line, sizeof(line),
		    "OCSP on-demand %s (answered internalError; %llu more "
		    "since the last such line)",
		    ans->why, (unsigned long long)more);
	else
		snprintf(line, sizeof(line),
		    "OCSP on-demand %s (answered internalError)", ans->why);
	h->o.log(h->o.log_arg, line);
}

/*
 * The OCSP answer to der. defer: on a worker, a request that would be
 * signed now (past the budgets, which it takes) is not answered here:
 * RF_HTTP_POOL_SIGN, for the signing pool, which answers it with the
 * budgets already taken (q->deferred).
 */
static enum rf_http_pool_kind
ocsp_answer(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const uint8_t *der, size_t len, int defer)
{
	struct rf_http *h = w->h;
	struct rf_ocsp_answer *ans = &w->ans;
	struct gate_ctx g = {h, q->peer};
	int r;

	if ((r = rf_ocsp_respond_ex(h->resp, der, len, rf_now(),
		 h->limits != NULL && !q->deferred ? ocsp_gate : NULL, &g,
		 defer ? RF_OCSP_DEFER : 0, ans)) != 0) {
		reply_text(o, 500, rf_err_str(r));
		return RF_HTTP_POOL_NONE;
	}
	if (ans->deferred)
		return RF_HTTP_POOL_SIGN;
	if (ans->status == RF_OCSP_INTERNAL_ERROR)
		ocsp_failure_log(h, ans);
	if (ans->status == RF_OCSP_SUCCESSFUL &&
	    __atomic_load_n(&h->watching, __ATOMIC_RELAXED))
		evidence_note(h, q->peer, der, len);
	ocsp_reply(w, q, o, ans);
	return RF_HTTP_POOL_NONE;
}

/* RFC 6960 A.1.1 / RFC 5019 5: GET {url}/{url-encoding of base64(DER)}. */
static enum rf_http_pool_kind
ocsp_get(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *enc, size_t len, int defer)
{
	struct rf_ocsp_answer *ans = &w->ans;
	enum rf_http_pool_kind k;
	uint8_t *der = NULL;
	size_t dlen = 0;

	if (rf_ocsp_get_decode(enc, len, &der, &dlen) != 0) {
		/* Not base64 of anything: answered as OCSP does. */
		memset(ans, 0, sizeof(*ans));
		rf_ocsp_error_response(RF_OCSP_MALFORMED_REQUEST, ans->der);
		ans->len = RF_OCSP_ERROR_LEN;
		ans->status = RF_OCSP_MALFORMED_REQUEST;
		ans->http_status = 200;
		ocsp_reply(w, q, o, ans);
		return RF_HTTP_POOL_NONE;
	}
	k = ocsp_answer(w, q, o, der, dlen, defer);
	free(der);
	return k;
}

/* ---- /audit: read-only JSON ---- */

static int
audit_open(struct rf_http_worker *w)
{
	int r;

	if (w->audit != NULL)
		return 0;
	if ((r = rf_store_open(w->h->cfg->db_path, 0, &w->st)) != 0)
		return r;
	if ((r = rf_store_unmap(w->st)) != 0 ||
	    (r = rf_audit_open(w->st, &w->audit)) != 0) {
		rf_store_free(w->st);
		w->st = NULL;
		return r;
	}
	return 0;
}

static void
reply_json(struct rf_http_resp *o, json_t *j)
{
	char *s =
	    j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	char *b;
	size_t l;

	json_decref(j);
	if (s == NULL || (b = realloc(s, (l = strlen(s)) + 1)) == NULL) {
		free(s);
		reply_text(o, 500, "out of memory");
		return;
	}
	b[l] = '\n'; /* the NUL's place: the body is not a C string */
	add_header(o, "Content-Type", "application/json");
	add_header(o, "Cache-Control", "no-store");
	o->heap = b;
	o->body = (const uint8_t *)b;
	o->len = l + 1;
	rf_http_status(o, 200);
}

static json_t *
hexj(const uint8_t *p, size_t len)
{
	char buf[2 * RF_STH_SIG_MAX + 1];

	if (len > RF_STH_SIG_MAX)
		return NULL;
	rf_hex(p, len, buf);
	return json_string(buf);
}

static json_t *
proofj(const uint8_t (*proof)[RF_HASH_LEN], size_t plen)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < plen; i++)
		json_array_append_new(a, hexj(proof[i], RF_HASH_LEN));
	return a;
}

/*
 * The value of parameter k in query ("a=1&b=2"), copied to out (cap
 * bytes, NUL-terminated): 1 found, 0 absent, -1 too long. Values are
 * decimal numbers here: no percent-decoding is needed.
 */
static int
query_get(const char *query, const char *k, char *out, size_t cap)
{
	size_t kl = strlen(k), vl;
	const char *p = query;

	while (p != NULL && *p != '\0' && *p != '#') {
		vl = strcspn(p, "&#");
		if (vl > kl && strncmp(p, k, kl) == 0 && p[kl] == '=') {
			if (vl - kl - 1 >= cap)
				return -1;
			memcpy(out, p + kl + 1, vl - kl - 1);
			out[vl - kl - 1] = '\0';
			return 1;
		}
		p += vl;
		if (*p == '&')
			p++;
	}
	return 0;
}

/* A decimal query parameter: 1 if present and valid. */
static int
query_u64(const char *query, const char *k, uint64_t *v)
{
	char s[24], *end;

	if (query_get(query, k, s, sizeof(s)) != 1 || s[0] < '0' || s[0] > '9')
		return 0;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static void
audit_error(struct rf_http_resp *o, int r)
{
	if (r == RF_ERR_ARG || r == RF_ERR_NOT_FOUND)
		reply_text(o, r == RF_ERR_ARG ? 400 : 404, rf_err_msg(r));
	else
		reply_text(o, 500, rf_err_msg(r));
}

static void
audit_route(struct rf_http_worker *w, const struct rf_http_req *req,
    struct rf_http_resp *o, const char *what, const char *query)
{
	struct rf_audit_sth_head sth;
	char tmp[24];
	char spki[2049];
	uint8_t a[RF_HASH_LEN], b[RF_HASH_LEN], (*proof)[RF_HASH_LEN] = NULL;
	uint64_t x = 0, y = 0;
	size_t plen = 0;
	json_t *j = NULL;
	int r;

	if (!is_get(req)) {
		reply_405(o, "GET, HEAD");
		return;
	}
	rf_err_clear();
	if ((r = audit_open(w)) != 0) {
		audit_error(o, r);
		return;
	}
	if (strcmp(what, "sth") == 0) {
		/* With the signer's public key, for `audit watch` elsewhere
		 * (it checks that the key hashes to the id it pinned). */
		if ((r = rf_audit_sth_latest(w->audit, &sth)) != 0 ||
		    (r = rf_audit_key_spki_hex(
			 w->audit, sth.key_id, spki, sizeof(spki))) != 0)
			goto fail;
		j = json_pack("{s:I,s:I,s:o,s:s,s:o,s:s}", "tree_size",
		    (json_int_t)sth.size, "timestamp", (json_int_t)sth.time,
		    "root_hash", hexj(sth.root, RF_HASH_LEN), "key_id",
		    sth.key_id, "signature", hexj(sth.sig, sth.siglen), "spki",
		    spki);
	} else if (strcmp(what, "proof") == 0) {
		/* RFC 9162 2.1.3: inclusion of leaf x in the tree of size y. */
		if (!query_u64(query, "leaf", &x) ||
		    (query_get(query, "size", tmp, sizeof(tmp)) != 0 &&
			!query_u64(query, "size", &y))) {
			reply_text(
			    o, 400, "usage: /audit/proof?leaf=N[&size=S]");
			goto done;
		}
		if (y == 0 && (r = rf_audit_size(w->audit, &y)) != 0)
			goto fail;
		if ((r = rf_audit_prove_inclusion(
			 w->audit, x, y, a, b, &proof, &plen)) != 0)
			goto fail;
		j = json_pack("{s:I,s:I,s:o,s:o,s:o}", "leaf_index",
		    (json_int_t)x, "tree_size", (json_int_t)y, "leaf_hash",
		    hexj(a, RF_HASH_LEN), "root_hash", hexj(b, RF_HASH_LEN),
		    "audit_path",
		    proofj((const uint8_t(*)[RF_HASH_LEN])proof, plen));
	} else if (strcmp(what, "consistency") == 0) {
		/* RFC 9162 2.1.4: the tree of size x is a prefix of y's. */
		if (!query_u64(query, "old", &x) ||
		    !query_u64(query, "new", &y)) {
			reply_text(
			    o, 400, "usage: /audit/consistency?old=A&new=B");
			goto done;
		}
		if ((r = rf_audit_prove_consistency(
			 w->audit, x, y, a, b, &proof, &plen)) != 0)
			goto fail;
		j = json_pack("{s:I,s:I,s:o,s:o,s:o}", "first", (json_int_t)x,
		    "second", (json_int_t)y, "first_hash", hexj(a, RF_HASH_LEN),
		    "second_hash", hexj(b, RF_HASH_LEN), "consistency",
		    proofj((const uint8_t(*)[RF_HASH_LEN])proof, plen));
	} else {
		reply_text(o, 404, "not found");
		goto done;
	}
	reply_json(o, j);
	goto done;
fail:
	audit_error(o, r);
done:
	free(proof);
}

/* ---- Router ---- */

/*
 * 200 "ok", or 503 while keyd is away: OCSP and CRLs are still answered from
 * memory then, but nothing new can be signed (TLS handshakes, on-demand OCSP,
 * the connector API), and a health check should say so.
 */
static enum rf_http_pool_kind
route_healthz(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *rest, size_t rlen, const char *query,
    int defer)
{
	static const char down[] =
	    "keyd down: OCSP and CRLs are answered from memory; nothing new "
	    "can be signed until it is back\n";

	(void)rest;
	(void)rlen;
	(void)query;
	(void)defer;
	if (!is_get(q)) {
		reply_405(o, "GET, HEAD");
		return RF_HTTP_POOL_NONE;
	}
	add_header(o, "Content-Type", "text/plain; charset=utf-8");
	add_header(o, "Cache-Control", "no-store");
	if (rf_http_keyd_up(w->h)) {
		o->body = (const uint8_t *)"ok\n";
		o->len = 3;
		rf_http_status(o, 200);
	} else {
		add_header(o, "Retry-After", "1");
		o->body = (const uint8_t *)down;
		o->len = sizeof(down) - 1;
		rf_http_status(o, 503);
	}
	return RF_HTTP_POOL_NONE;
}

static enum rf_http_pool_kind
route_ocsp_post(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *rest, size_t rlen, const char *query,
    int defer)
{
	(void)rest;
	(void)query;
	if (rlen > 1) { /* "/ocsp/" + something: the GET form */
		if (!is_get(q)) {
			reply_405(o, "GET, HEAD");
			return RF_HTTP_POOL_NONE;
		}
		return ocsp_get(w, q, o, rest + 1, rlen - 1, defer);
	}
	/* RFC 6960 A.1.1: POST, the DER OCSPRequest as the body. */
	if (q->method != RF_HTTP_POST) {
		reply_405(o, "POST");
		return RF_HTTP_POOL_NONE;
	}
	/* An empty or oversize body gets malformedRequest. */
	return ocsp_answer(w, q, o, q->body, q->bodylen, defer);
}

static enum rf_http_pool_kind
route_audit(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *rest, size_t rlen, const char *query,
    int defer)
{
	char sub[32];

	if (defer)
		return RF_HTTP_POOL_AUDIT; /* it reads the store */
	if (rlen == 0 || rlen >= sizeof(sub)) {
		reply_text(o, 404, "not found");
		return RF_HTTP_POOL_NONE;
	}
	memcpy(sub, rest, rlen);
	sub[rlen] = '\0';
	audit_route(w, q, o, sub, query);
	return RF_HTTP_POOL_NONE;
}

/*
 * /v1/...: the connector API (api.c). A request that will be signed (a
 * POST with a verified client certificate) waits on keyd: the signing
 * pool's; refusals that need no store (405, 401) are answered here.
 */
static enum rf_http_pool_kind
route_api(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, const char *rest, size_t rlen, const char *query,
    int defer)
{
	(void)rest;
	(void)rlen;
	(void)query;
	if (defer && q->method == RF_HTTP_POST && q->client_serial != NULL &&
	    w->h->csvc != NULL && rf_http_api_is_route(q->target))
		return RF_HTTP_POOL_SIGN;
	if (!rf_http_api_route(w, q, o, q->target, strcspn(q->target, "?#")))
		reply_text(o, 404, "not found");
	return RF_HTTP_POOL_NONE;
}

/*
 * The routes, first match wins. prefix: the path starts with it (rest is
 * what follows), else the path is exactly it (or it with a trailing '/',
 * when slash). A handler called with defer (on an epoll worker) that
 * would wait (on the store, on keyd) answers nothing and returns the pool
 * that answers it (pool.c); called again there without defer, it answers.
 * New routes (an API) are new rows.
 */
#define ROUTE(p) (p), sizeof(p) - 1
static const struct route {
	const char *path;
	size_t len;
	int prefix;
	enum rf_http_pool_kind (*fn)(struct rf_http_worker *w,
	    const struct rf_http_req *q, struct rf_http_resp *o,
	    const char *rest, size_t rlen, const char *query, int defer);
} routes[] = {
    {ROUTE("/healthz"), 0, route_healthz},
    /* "/ocsp", "/ocsp/" (POST), "/ocsp/<b64>" (GET) */
    {ROUTE("/ocsp"), 1, route_ocsp_post},
    {ROUTE("/audit/"), 1, route_audit},
    {ROUTE("/v1/"), 1, route_api},
};

static const struct route *
route_find(const char *uri, size_t plen, const char **rest, size_t *rlen)
{
	size_t i, l;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		l = routes[i].len;
		if (plen < l || memcmp(uri, routes[i].path, l) != 0)
			continue;
		if (!routes[i].prefix && plen != l)
			continue;
		/* "/ocsp" matches "/ocsp", "/ocsp/..." but not "/ocspx". */
		if (routes[i].prefix && plen > l &&
		    routes[i].path[l - 1] != '/' && uri[l] != '/')
			continue;
		*rest = uri + l;
		*rlen = plen - l;
		return &routes[i];
	}
	return NULL;
}

/* Answer q into o; with defer, the pool it waits for instead (o empty). */
static enum rf_http_pool_kind
handle(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o, int defer)
{
	const char *uri = q->target, *query = NULL, *rest;
	const struct route *rt;
	size_t plen, rlen;

	memset(o, 0, sizeof(*o));
	if (uri == NULL || uri[0] != '/') {
		reply_text(o, 400, "origin-form target only");
		return RF_HTTP_POOL_NONE;
	}
	plen = strcspn(uri, "?#");
	if (uri[plen] == '?')
		query = uri + plen + 1;
	if ((rt = route_find(uri, plen, &rest, &rlen)) != NULL)
		return rt->fn(w, q, o, rest, rlen, query, defer);
	if (serve_blob(w, q, o, uri, plen))
		return RF_HTTP_POOL_NONE;
	reply_text(o, 404, "not found");
	return RF_HTTP_POOL_NONE;
}

void
rf_http_handle(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o)
{
	(void)handle(w, q, o, 0);
}

enum rf_http_pool_kind
rf_http_handle_fast(struct rf_http_worker *w, const struct rf_http_req *q,
    struct rf_http_resp *o)
{
	return handle(w, q, o, 1);
}

void
rf_http_resp_done(struct rf_http_resp *o)
{
	free(o->heap);
	o->heap = NULL;
	rf_http_snapshot_unref(o->snap);
	o->snap = NULL;
	o->body = NULL;
	o->len = 0;
}
