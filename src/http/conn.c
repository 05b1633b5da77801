/*
 * conn.c: the connections of both listeners, plain HTTP and TLS.
 *
 * Each worker thread has an epoll set of its own, with a listening socket
 * of its own per listener, bound to the address with SO_REUSEPORT (the
 * kernel spreads new connections over them) and the connections it
 * accepted, for their whole life: nothing is shared between workers on the
 * request path. A TLS connection is the same connection with an OpenSSL
 * SSL object over its socket: non-blocking SSL_read/SSL_write, with
 * WANT_READ/WANT_WRITE turned into the direction the set watches, and the
 * same reader (h1.c) and limits as plain HTTP.
 * Level-triggered: a connection is watched for input, or for output room
 * while an answer waits (then nothing more is read from it), and switched
 * only then. A worker reads what a connection sent, answers every whole
 * request in it (h1.c, routes.c) into one buffer, and writes it: a request
 * costs a read, a write and a share of an epoll_wait, and no allocation.
 *
 * Timeouts: rf_conn_sweep, on the maintenance thread, shuts down
 * (shutdown(2), never close) a connection that has been idle (nothing read or
 * written), or inside one request, for rf_http_timeout() seconds; its worker,
 * seeing it readable, closes it. Closing unlinks under conn_lock before
 * close(2), so the sweep never touches a descriptor number that was reused. A
 * worker out of descriptors (EMFILE) stops watching its listening socket until
 * the next sweep.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/h1.h"
#include "http/http_int.h"

#define CONN_IN 16384		   /* bytes read at a time */
#define CONN_OUT_HIGH (256 * 1024) /* stop answering while this waits */
#define CONN_COPY_MAX 16384	   /* larger held bodies are not copied */
#define CONN_EVENTS 8		   /* events a worker takes at a time */
#define CONN_ACCEPTS 64		   /* connections accepted per turn */

/*
 * What an epoll event names besides listeners and stop (RF_HTTP_EV_*): a
 * connection, the wait of its TLS handshake for a signature (its ASYNC
 * job's fd), or a keyd connection of the worker's (api.c).
 */

struct rf_conn {
	int ev; /* RF_HTTP_EV_CONN: first, as in struct conn_async */
	int fd;
	SSL *ssl;      /* TLS connection; NULL for plain HTTP */
	uint32_t want; /* TLS: the direction SSL is waiting for */
	struct sockaddr_storage peer; /* its address (budgets, evidence) */
	struct rf_http_place place;   /* where limits.c counts it */
	uint32_t watch;		      /* what its worker's set watches */
	struct rf_conn *prev, *next;  /* h->conns, under conn_lock */
	uint64_t last_ms;	      /* atomic: its last event */
	uint64_t req_ms;	      /* atomic: a request began; 0 none */
	int shut;		      /* under conn_lock: sweep shut it down */
	int closing;		      /* close once the output is written */
	struct rf_h1 h1;
	uint8_t in[CONN_IN];
	size_t inoff, inlen; /* unread input is in[inoff, inlen) */
	uint8_t *ob;	     /* output: heads and copied bodies */
	size_t ooff, olen, ocap;
	struct rf_http_resp big; /* a held body, written after ob */
	size_t boff;
	int has_big;
	int pending; /* a request of it is with the pool (conn_run: no turn) */
	/* Closed in this turn of its worker's events, freed after them (a
	 * later event of the same epoll_wait may still name it). */
	int dead;
	/* TLS: its client certificate's serial ("" none), read at its first
	 * request: renegotiation is off (tls.c), so it never changes. */
	char serial[41];
	int has_serial;
	/*
	 * Its handshake's signature is on the signing pool (SSL_MODE_ASYNC,
	 * keys/evp.c): the connection is out of the set, its job's fd in it.
	 */
	struct conn_async {
		int ev; /* RF_HTTP_EV_ASYNC */
		int fd; /* -1: not waiting */
		struct rf_conn *c;
	} async;
};

/* What epoll hands back besides connections. */
static char listen_tag, tls_listen_tag, stop_tag, done_tag;

static int
ep_ctl(int ep, int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = ptr;
	return epoll_ctl(ep, op, fd, &ev);
}

/* Have w's set watch c for events (EPOLLIN or EPOLLOUT); -1 on failure. */
static int
watch(struct rf_http_worker *w, struct rf_conn *c, uint32_t events)
{
	if (c->watch == events)
		return 0;
	c->watch = events;
	return ep_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, events, c);
}

/* Have w's set watch its listening sockets. */
static int
listen_watch(struct rf_http_worker *w)
{
	if (ep_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, EPOLLIN, &listen_tag) != 0)
		return -1;
	if (w->tlfd >= 0 &&
	    ep_ctl(w->epfd, EPOLL_CTL_ADD, w->tlfd, EPOLLIN, &tls_listen_tag) !=
		0)
		return -1;
	return 0;
}

int
rf_conn_setup(struct rf_http *h)
{
	struct rlimit rl;
	struct rf_http_worker *w;
	int i;

	h->stopfd = -1;
	for (i = 0; i < h->nworkers; i++)
		h->w[i].epfd = h->w[i].lfd = h->w[i].tlfd = h->w[i].donefd = -1;
	if (pthread_mutex_init(&h->conn_lock, NULL) != 0)
		return RF_ERR_INTERNAL;
	h->conn_lock_ok = 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 128 &&
	    rl.rlim_cur != RLIM_INFINITY)
		h->max_conns = (size_t)rl.rlim_cur - 64;
	else
		h->max_conns = 64;
	rf_http_limits_set_max_conns(h->limits, h->max_conns);
	if ((h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return rf_err_set(RF_ERR_IO, "eventfd: %s", strerror(errno));
	for (i = 0; i < h->nworkers; i++) {
		w = &h->w[i];
		/* The first worker uses the socket rf_http_new bound. */
		if (i == 0)
			w->lfd = h->plain.fd;
		else if ((w->lfd = rf_http_reuseport_socket(&h->plain)) < 0)
			return rf_err_set(
			    RF_ERR_IO, "listen (worker): %s", strerror(errno));
		if (h->tls_ctx != NULL) {
			if (i == 0)
				w->tlfd = h->tls.fd;
			else if ((w->tlfd = rf_http_reuseport_socket(&h->tls)) <
			    0)
				return rf_err_set(RF_ERR_IO,
				    "listen (worker): %s", strerror(errno));
		}
		if (pthread_mutex_init(&w->done_lock, NULL) != 0)
			return RF_ERR_INTERNAL;
		w->done_lock_ok = 1;
		if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    (w->donefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return rf_err_set(
			    RF_ERR_IO, "epoll: %s", strerror(errno));
		/* Level-triggered and never read: it wakes every worker. */
		if (ep_ctl(w->epfd, EPOLL_CTL_ADD, h->stopfd, EPOLLIN,
			&stop_tag) != 0 ||
		    ep_ctl(w->epfd, EPOLL_CTL_ADD, w->donefd, EPOLLIN,
			&done_tag) != 0 ||
		    listen_watch(w) != 0)
			return rf_err_set(
			    RF_ERR_IO, "epoll_ctl: %s", strerror(errno));
	}
	return 0;
}

void
rf_conn_stop(struct rf_http *h)
{
	uint64_t one = 1;

	if (h->stopfd >= 0)
		(void)!write(h->stopfd, &one, sizeof(one));
}

/*
 * Before close: FIN first, then what the peer already sent and nobody
 * read (a body refused with 413 before it was read) is read and dropped.
 * Closed with unread bytes, a socket sends a reset, and a client still
 * sending its body then loses the answer (RFC 9112 9.6). Only what has
 * arrived is read: the descriptor is non-blocking.
 */
#define CONN_DRAIN_MAX (256 * 1024)
static void
conn_drain(int fd)
{
	char buf[16384];
	size_t got = 0;
	ssize_t n;

	(void)shutdown(fd, SHUT_WR);
	while (got < CONN_DRAIN_MAX && (n = read(fd, buf, sizeof(buf))) > 0)
		got += (size_t)n;
}

static void
conn_free(struct rf_conn *c)
{
	if (c->ssl != NULL) {
		/* RFC 8446 6.1: close_notify, sent if there is room. */
		if (SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	conn_drain(c->fd);
	close(c->fd);
	rf_h1_free(&c->h1);
	free(c->ob);
	rf_http_resp_done(&c->big);
	free(c);
}

static void
conn_close(struct rf_http_worker *w, struct rf_conn *c)
{
	struct rf_http *h = w->h;

	/*
	 * Out of the set first: close(2) alone leaves it there while another
	 * reference to the socket lives (a child between fork and exec
	 * holds every descriptor), and its events would name freed memory.
	 */
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	pthread_mutex_lock(&h->conn_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	h->nconns--;
	rf_http_limits_conn_drop(h->limits, &c->place);
	pthread_mutex_unlock(&h->conn_lock);
	c->dead = 1;
	c->next = w->dead;
	w->dead = c;
}

/* Free what conn_close closed during this batch of events. */
static void
conn_reap(struct rf_http_worker *w)
{
	struct rf_conn *c;

	while ((c = w->dead) != NULL) {
		w->dead = c->next;
		conn_free(c);
	}
}

void
rf_conn_teardown(struct rf_http *h)
{
	struct rf_conn *c, *n;
	int i;

	for (c = h->conns; c != NULL; c = n) {
		n = c->next;
		conn_free(c);
	}
	h->conns = NULL;
	h->nconns = 0;
	for (i = 0; h->w != NULL && i < h->nworkers; i++) {
		if (h->w[i].epfd >= 0)
			close(h->w[i].epfd);
		if (h->w[i].lfd >= 0 && h->w[i].lfd != h->plain.fd)
			close(h->w[i].lfd);
		if (h->w[i].tlfd >= 0 && h->w[i].tlfd != h->tls.fd)
			close(h->w[i].tlfd);
		if (h->w[i].donefd >= 0)
			close(h->w[i].donefd);
		rf_http_job_free_all(h->w[i].done);
		h->w[i].done = NULL;
		if (h->w[i].done_lock_ok)
			pthread_mutex_destroy(&h->w[i].done_lock);
		h->w[i].done_lock_ok = 0;
		h->w[i].epfd = h->w[i].lfd = h->w[i].tlfd = h->w[i].donefd = -1;
	}
	if (h->stopfd >= 0)
		close(h->stopfd);
	h->stopfd = -1;
	if (h->conn_lock_ok)
		pthread_mutex_destroy(&h->conn_lock);
	h->conn_lock_ok = 0;
}

void
rf_conn_sweep(struct rf_http *h)
{
	uint64_t now = rf_http_mono_ms(), last, req,
		 limit = (uint64_t)rf_http_timeout(h) * 1000;
	struct rf_conn *c;
	int i;

	pthread_mutex_lock(&h->conn_lock);
	for (c = h->conns; c != NULL; c = c->next) {
		last = __atomic_load_n(&c->last_ms, __ATOMIC_RELAXED);
		req = __atomic_load_n(&c->req_ms, __ATOMIC_RELAXED);
		if (!c->shut &&
		    (now - last > limit || (req != 0 && now - req > limit))) {
			(void)shutdown(c->fd, SHUT_RDWR);
			c->shut = 1;
		}
	}
	for (i = 0; i < h->nworkers; i++)
		if (h->w[i].accept_paused && h->nconns < h->max_conns) {
			h->w[i].accept_paused = 0;
			if (listen_watch(&h->w[i]) != 0)
				rf_http_log(h,
				    "cannot watch a listening socket",
				    rf_err_set(RF_ERR_IO, "epoll_ctl: %s",
					strerror(errno)));
		}
	pthread_mutex_unlock(&h->conn_lock);
}

/* A TLS connection's SSL, accepting with the policy context. */
static int
conn_tls(struct rf_http *h, struct rf_conn *c)
{
	if ((c->ssl = SSL_new(h->tls_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_accept_state(c->ssl);
	/* ob may grow (and move) between a WANT_WRITE and its retry. */
	SSL_set_mode(c->ssl,
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
		SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * A fresh handshake's signature waits on keyd: with a signing pool,
	 * libssl runs the handshake in an ASYNC job that pauses there (the
	 * runner server.c set for keys/evp.c), until the handshake is done.
	 */
	if (h->pools[RF_HTTP_POOL_SIGN] != NULL)
		SSL_set_mode(c->ssl, SSL_MODE_ASYNC);
	return 0;
}

static void
accept_some(struct rf_http *h, struct rf_http_worker *w, int tls)
{
	struct rf_conn *c;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, i, one = 1, lfd = tls ? w->tlfd : w->lfd;

	for (i = 0; i < CONN_ACCEPTS; i++) {
		sl = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* The sweep re-arms the listener. */
				pthread_mutex_lock(&h->conn_lock);
				w->accept_paused = 1;
				(void)epoll_ctl(
				    w->epfd, EPOLL_CTL_DEL, w->lfd, NULL);
				if (w->tlfd >= 0)
					(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL,
					    w->tlfd, NULL);
				pthread_mutex_unlock(&h->conn_lock);
				return;
			}
			continue; /* ECONNABORTED and the like */
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->ev = RF_HTTP_EV_CONN;
		c->fd = fd;
		c->async.ev = RF_HTTP_EV_ASYNC;
		c->async.fd = -1;
		c->async.c = c;
		c->peer = ss;
		c->place.src = RF_HTTP_NO_SOURCE; /* not counted yet */
		c->watch = EPOLLIN;
		if (tls && conn_tls(h, c) != 0) {
			conn_free(c);
			continue;
		}
		c->last_ms = rf_http_mono_ms();
		rf_h1_init(&c->h1, rf_http_max_body(h));
		/* Answers go out in one write: no reason to wait (Nagle). */
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&h->conn_lock);
		/* One source cannot hold every connection (conns_per_source),
		 * nor one network (an IPv6 /48): past its share, closed at
		 * once. Its network's bodies share a bound too (h1.c). */
		if (h->nconns >= h->max_conns ||
		    !rf_http_limits_conn_take(h->limits, &ss, &c->place)) {
			pthread_mutex_unlock(&h->conn_lock);
			conn_free(c);
			continue;
		}
		rf_h1_share(
		    &c->h1, rf_http_limits_net_bodies(h->limits, &c->place));
		c->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = c;
		h->conns = c;
		h->nconns++;
		pthread_mutex_unlock(&h->conn_lock);
		if (ep_ctl(w->epfd, EPOLL_CTL_ADD, fd, EPOLLIN, c) != 0)
			conn_close(w, c);
	}
}

static int
out_add(struct rf_conn *c, const void *p, size_t len)
{
	uint8_t *nb;
	size_t cap;

	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (len > c->ocap - c->olen) {
		cap = c->ocap > 0 ? c->ocap : 4096;
		while (cap - c->olen < len)
			cap *= 2;
		if ((nb = realloc(c->ob, cap)) == NULL)
			return -1;
		c->ob = nb;
		c->ocap = cap;
	}
	memcpy(c->ob + c->olen, p, len);
	c->olen += len;
	return 0;
}

/* Queue o, head and body; o is then the connection's to release. */
static int
respond(struct rf_http_worker *w, struct rf_conn *c, struct rf_http_resp *o,
    int head_only, int keep_alive_10)
{
	char head[2048];
	size_t hl, blen;
	int r = 0;

	hl = rf_h1_head(o,
	    rf_http_worker_date(w, RF_HTTP_DATE_NOW, (int64_t)time(NULL)),
	    c->closing, keep_alive_10, head, sizeof(head));
	blen = head_only || o->body == NULL || !rf_h1_has_body(o->code)
	    ? 0
	    : o->len;
	if (hl == 0 || out_add(c, head, hl) != 0) {
		rf_http_resp_done(o);
		return -1;
	}
	if (blen > CONN_COPY_MAX && (o->heap != NULL || o->snap != NULL)) {
		c->big = *o; /* written after ob, then released */
		c->big.len = blen;
		c->boff = 0;
		c->has_big = 1;
		return 0;
	}
	if (blen > 0)
		r = out_add(c, o->body, blen);
	rf_http_resp_done(o);
	return r;
}

/* A stream that cannot go on: its answer, then close. */
static int
respond_fail(struct rf_http_worker *w, struct rf_conn *c)
{
	struct rf_http_resp o;

	if (rf_http_api_is_route(c->h1.target))
		rf_http_api_error(
		    &o, c->h1.fail_code, c->h1.fail_text, c->h1.max_body);
	else
		rf_http_error(&o, c->h1.fail_code, c->h1.fail_text);
	c->closing = 1;
	return respond(w, c, &o, 0, 0);
}

/*
 * Answer the whole requests read so far, while the output waiting stays
 * small. A request that waits (/audit on the store; the API and
 * on-demand OCSP on keyd) goes to its pool: nothing more is read from the
 * connection until its answer is back. -1: close now.
 */
static int
process(struct rf_http_worker *w, struct rf_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct rf_http_req q;
	struct rf_http_resp o;
	enum rf_h1_state st;
	enum rf_http_pool_kind k;
	size_t used;
	int keep, ka10, r;

	while (!c->closing && !c->has_big && !c->pending &&
	    c->olen - c->ooff < CONN_OUT_HIGH) {
		st = rf_h1_feed(
		    &c->h1, c->in + c->inoff, c->inlen - c->inoff, &used);
		c->inoff += used;
		if (st == RF_H1_MORE) {
			if (c->h1.want_continue) {
				c->h1.want_continue = 0;
				if (out_add(c, cont, sizeof(cont) - 1) != 0)
					return -1;
			}
			return 0;
		}
		if (st == RF_H1_FAIL)
			return respond_fail(w, c);
		rf_h1_request(&c->h1, &q);
		q.peer = &c->peer;
		q.tls = c->ssl != NULL;
		if (c->ssl != NULL) {
			if (!c->has_serial) {
				rf_http_api_client_serial(c->ssl, c->serial);
				c->has_serial = 1;
			}
			q.client_serial =
			    c->serial[0] != '\0' ? c->serial : NULL;
		}
		keep = rf_h1_keep_alive(&c->h1) &&
		    !__atomic_load_n(&w->h->stopping, __ATOMIC_RELAXED);
		ka10 = keep && rf_h1_is_10(&c->h1);
		if ((k = rf_http_handle_fast(w, &q, &o)) != RF_HTTP_POOL_NONE) {
			r = rf_http_pool_submit(w, k, c, &q,
			    (keep ? RF_HTTP_JOB_KEEP : 0) |
				(ka10 ? RF_HTTP_JOB_KA10 : 0),
			    &o);
			if (r == 0) {
				/* Left in the set: taken out only if an event
				 * comes meanwhile (conn_run), which a client
				 * waiting for its answer does not send. */
				c->pending = 1;
				return 0;
			}
			/* o holds the refusal (503, tryLater). */
		}
		c->closing = !keep;
		if (respond(w, c, &o, q.method == RF_HTTP_HEAD, ka10) != 0)
			return -1;
		rf_h1_next(&c->h1);
	}
	return 0;
}

/* Write p..len over TLS: bytes written, or 0 and *io set (1 wait, -1). */
static size_t
tls_write(struct rf_conn *c, const uint8_t *p, size_t len, int *io)
{
	int n, e;

	ERR_clear_error();
	n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return (size_t)n;
	e = SSL_get_error(c->ssl, n);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		c->want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		*io = 1;
	} else
		*io = -1;
	return 0;
}

/* Write what waits over TLS: as flush(). */
static int
tls_flush(struct rf_conn *c)
{
	size_t n;
	int io = 0;

	while (c->olen > c->ooff) {
		if ((n = tls_write(
			 c, c->ob + c->ooff, c->olen - c->ooff, &io)) == 0)
			return io;
		c->ooff += n;
	}
	c->ooff = c->olen = 0;
	while (c->has_big && c->big.len > c->boff) {
		if ((n = tls_write(c, c->big.body + c->boff,
			 c->big.len - c->boff, &io)) == 0)
			return io;
		c->boff += n;
	}
	if (c->has_big) {
		rf_http_resp_done(&c->big);
		c->has_big = 0;
	}
	return 0;
}

/* Write what waits: 0 all of it, 1 the socket is full, -1 close. */
static int
flush(struct rf_conn *c)
{
	struct iovec iov[2];
	struct msghdr m;
	ssize_t n;
	size_t k, a;

	if (c->ssl != NULL)
		return tls_flush(c);
	c->want = EPOLLOUT;
	for (;;) {
		k = 0;
		if (c->olen > c->ooff) {
			iov[k].iov_base = c->ob + c->ooff;
			iov[k++].iov_len = c->olen - c->ooff;
		}
		if (c->has_big && c->big.len > c->boff) {
			iov[k].iov_base = (void *)(c->big.body + c->boff);
			iov[k++].iov_len = c->big.len - c->boff;
		}
		if (k == 0) {
			if (c->has_big) {
				rf_http_resp_done(&c->big);
				c->has_big = 0;
			}
			c->ooff = c->olen = 0;
			return 0;
		}
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = k;
		if ((n = sendmsg(c->fd, &m, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		}
		a = c->olen - c->ooff;
		if ((size_t)n <= a)
			c->ooff += (size_t)n;
		else {
			c->ooff = c->olen;
			c->boff += (size_t)n - a;
		}
	}
}

/*
 * Read into c->in: bytes read, 0 at the end of the stream or on an error
 * (close), -1 when nothing waits (c->want: the direction to watch). Over
 * TLS this also drives the handshake.
 */
static ssize_t
conn_read(struct rf_conn *c, int *more)
{
	ssize_t n;
	int e;

	*more = 0;
	if (c->ssl == NULL) {
		c->want = EPOLLIN;
		do
			n = read(c->fd, c->in, sizeof(c->in));
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
		/* Short: most likely all there was; epoll says if not. */
		*more = (size_t)n == sizeof(c->in);
		return n;
	}
	ERR_clear_error();
	n = SSL_read(c->ssl, c->in, (int)sizeof(c->in));
	/* Done with the handshake: no more jobs (they cost a switch). */
	if (n > 0 || SSL_is_init_finished(c->ssl))
		SSL_clear_mode(c->ssl, SSL_MODE_ASYNC);
	if (n > 0) {
		/* Decrypted bytes SSL holds wake no epoll: read them now. */
		*more = (size_t)n == sizeof(c->in) || SSL_has_pending(c->ssl);
		return n;
	}
	e = SSL_get_error(c->ssl, (int)n);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		return -1;
	}
	if (e == SSL_ERROR_WANT_ASYNC) {
		/* The signature is on the pool: wait for its job's fd. */
		OSSL_ASYNC_FD fd;
		size_t nfd = 1;

		if (SSL_get_all_async_fds(c->ssl, &fd, &nfd) != 1 || nfd != 1) {
			ERR_clear_error();
			return 0;
		}
		c->async.fd = fd;
		c->want = 0;
		return -1;
	}
	return 0; /* close_notify, a failed handshake, a broken stream */
}

/*
 * One turn of a connection an event handed to this worker. An event is
 * activity: bytes came, or the peer took some. The sweep's clocks are
 * set once a turn: last_ms now, req_ms when a request is left unfinished.
 * With read 0, nothing is read from the socket this turn (what it holds,
 * the set reports), only what c and its TLS buffers hold is answered.
 */
static void
conn_turn(
    struct rf_http_worker *w, struct rf_conn *c, uint32_t events, int read)
{
	uint64_t now = rf_http_mono_ms(), req;
	ssize_t n = 1;
	int f, more = read || (c->ssl != NULL && SSL_has_pending(c->ssl));

	if (c->pending) {
		/* Its request is with the pool: out of the set until the
		 * answer is back (conn_done), which then goes on with this. */
		if (c->watch != 0 &&
		    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) == 0)
			c->watch = 0;
		return;
	}
	if (events & EPOLLERR)
		goto close;
	__atomic_store_n(&c->last_ms, now, __ATOMIC_RELAXED);
	for (;;) {
		if (process(w, c) != 0 || (f = flush(c)) < 0)
			goto close;
		if (c->pending)
			return; /* the pool answers, then runs it again */
		if (f == 1) {
			/* Read no more until the peer takes what it asked. */
			if (watch(w, c, c->want) != 0)
				goto close;
			return;
		}
		if (c->closing)
			goto close;
		if (c->inoff < c->inlen)
			continue; /* process() stopped for output room */
		if (!more)
			break;
		c->inoff = c->inlen = 0;
		if ((n = conn_read(c, &more)) == 0)
			goto close;
		if (n < 0)
			break;
		c->inlen = (size_t)n;
	}
	/* Only this thread writes req_ms; the sweep reads it. */
	req = __atomic_load_n(&c->req_ms, __ATOMIC_RELAXED);
	/* A TLS handshake under way is a request begun: it is timed too. */
	__atomic_store_n(&c->req_ms,
	    !c->h1.started && (c->ssl == NULL || SSL_is_init_finished(c->ssl))
		? 0
		: req != 0 ? req
			   : now,
	    __ATOMIC_RELAXED);
	if (c->async.fd >= 0) {
		/* Out of the set until the signature is made, its fd in. */
		c->watch = 0;
		if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) == 0 &&
		    ep_ctl(w->epfd, EPOLL_CTL_ADD, c->async.fd, EPOLLIN,
			&c->async) == 0)
			return;
		c->async.fd = -1;
		goto close;
	}
	/* Plain reads wait for input; TLS may wait to write (handshake). */
	if (watch(w, c, c->ssl != NULL && n < 0 ? c->want : EPOLLIN) == 0)
		return;
close:
	conn_close(w, c);
}

static void
conn_run(struct rf_http_worker *w, struct rf_conn *c, uint32_t events)
{
	conn_turn(w, c, events, 1);
}

/* The signature c's handshake waited for is made: go on with it. */
static void
conn_async(struct rf_http_worker *w, struct rf_conn *c)
{
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->async.fd, NULL);
	c->async.fd = -1;
	if (ep_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, EPOLLIN, c) != 0) {
		conn_close(w, c);
		return;
	}
	c->watch = EPOLLIN;
	conn_run(w, c, 0);
}

void
rf_conn_job_answer(struct rf_http_worker *w, struct rf_http_job *j)
{
	struct rf_conn *c = j->conn;
	int bad;

	c->pending = 0;
	c->closing = !(j->flags & RF_HTTP_JOB_KEEP);
	bad = respond(w, c, &j->o, j->flags & RF_HTTP_JOB_HEAD,
		  (j->flags & RF_HTTP_JOB_KA10) != 0) != 0;
	rf_http_job_free(j);
	rf_h1_next(&c->h1);
	/* Back in the set (if an event took it out), then on with what it
	 * sent meanwhile. */
	if (bad ||
	    (c->watch == 0 ? ep_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, EPOLLIN, c)
			   : watch(w, c, EPOLLIN)) != 0) {
		conn_close(w, c);
		return;
	}
	c->watch = EPOLLIN;
	/* The answer written; a next request the set reports. */
	conn_turn(w, c, 0, 0);
}

/* Answers the pool made for this worker's connections: send them. */
static void
conn_done(struct rf_http_worker *w)
{
	struct rf_http_job *j, *next;
	uint64_t v;

	(void)!read(w->donefd, &v, sizeof(v));
	pthread_mutex_lock(&w->done_lock);
	j = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->done_lock);
	for (; j != NULL; j = next) {
		next = j->next;
		rf_conn_job_answer(w, j);
	}
}

void *
rf_conn_worker(void *arg)
{
	struct rf_http_worker *w = arg;
	struct rf_http *h = w->h;
	struct epoll_event ev[CONN_EVENTS];
	int n, i;

	(void)pthread_setname_np(pthread_self(), "rf-http");
	for (;;) {
		n = epoll_wait(w->epfd, ev, CONN_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rf_http_log(h, "epoll_wait failed",
			    rf_err_set(RF_ERR_IO, "%s", strerror(errno)));
			break;
		}
		for (i = 0; i < n; i++) {
			struct rf_conn *c;

			if (ev[i].data.ptr == &stop_tag)
				goto out;
			if (ev[i].data.ptr == &listen_tag)
				accept_some(h, w, 0);
			else if (ev[i].data.ptr == &tls_listen_tag)
				accept_some(h, w, 1);
			else if (ev[i].data.ptr == &done_tag)
				conn_done(w);
			else if (*(int *)ev[i].data.ptr == RF_HTTP_EV_KEYD)
				rf_http_api_ready(w, ev[i].data.ptr);
			else if (*(int *)ev[i].data.ptr == RF_HTTP_EV_ASYNC) {
				c = ((struct conn_async *)ev[i].data.ptr)->c;
				if (!c->dead)
					conn_async(w, c);
			} else if (!(c = ev[i].data.ptr)->dead)
				conn_run(w, c, ev[i].events);
		}
		conn_reap(w);
	}
out:
	conn_reap(w);
	rf_http_worker_done(w);
	return NULL;
}
