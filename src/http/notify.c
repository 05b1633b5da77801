/*
 * notify.c: serve.sock, so that a committed change is visible when the
 * command that made it returns (notify.h).
 *
 * Wire format, one datagram each way: the client sends "RFN1" followed by
 * 16 random bytes; the server answers with the same 20 bytes once its
 * reload has run. Anything else is ignored. The client binds an abstract
 * autobound address so that the server can answer it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "http/http_int.h"
#include "http/notify.h"

#define NOTIFY_MAGIC "RFN1"
#define NOTIFY_LEN 20
#define NOTIFY_BATCH 64

struct rf_http_notify {
	int fd;
	struct sockaddr_un sa;
};

static int
sock_addr(const char *home, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", home,
		RF_NOTIFY_SOCK) >= (int)sizeof(sa->sun_path))
		return rf_err_set(RF_ERR_ARG,
		    "state folder path too long for %s (at most %zu "
		    "characters)",
		    RF_NOTIFY_SOCK,
		    sizeof(sa->sun_path) - sizeof(RF_NOTIFY_SOCK) - 1);
	return 0;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
rf_http_notify_send(const struct rf_config *cfg, int timeout_ms, int *acked)
{
	struct sockaddr_un to;
	sa_family_t fam = AF_UNIX;
	uint8_t msg[NOTIFY_LEN], ans[NOTIFY_LEN + 1];
	struct pollfd pfd;
	int64_t end;
	ssize_t n;
	int fd = -1, r = 0;

	if (acked != NULL)
		*acked = 0;
	if (sock_addr(cfg->home, &to) != 0) {
		rf_err_clear(); /* no server can listen there either */
		return 0;
	}
	if (access(to.sun_path, F_OK) != 0)
		return 0; /* no server */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&fam, sizeof(fam)) != 0) {
		r = rf_err_set(RF_ERR_IO,
		    "cannot make a notification socket: %s", strerror(errno));
		goto out;
	}
	memcpy(msg, NOTIFY_MAGIC, 4);
	if (RAND_bytes(msg + 4, NOTIFY_LEN - 4) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "no random bytes");
		goto out;
	}
	if (sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to,
		sizeof(to)) < 0) {
		/* A socket left by a server that is gone: nobody to tell. */
		if (errno == ECONNREFUSED || errno == ENOENT)
			goto out;
		r = rf_err_set(RF_ERR_IO, "cannot notify the server at %s: %s",
		    to.sun_path, strerror(errno));
		goto out;
	}
	end = mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();

		if (left <= 0) {
			r = rf_err_set(RF_ERR_IO,
			    "the server at %s did not confirm the change "
			    "within "
			    "%d ms: it shows it at its next poll",
			    to.sun_path, timeout_ms);
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			r = rf_err_set(RF_ERR_IO, "poll: %s", strerror(errno));
			goto out;
		}
		if (!(pfd.revents & POLLIN))
			continue;
		if ((n = recv(fd, ans, sizeof(ans), 0)) == NOTIFY_LEN &&
		    memcmp(ans, msg, NOTIFY_LEN) == 0)
			break; /* ours, answered after the reload */
	}
	if (acked != NULL)
		*acked = 1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * Readable: take every waiting request, reload once (the store holds every
 * change committed before its request was sent), then answer each.
 */
int
rf_http_notify_fd(const struct rf_http *h)
{
	return h->notify != NULL ? h->notify->fd : -1;
}

void
rf_http_notify_handle(struct rf_http *h)
{
	int fd = h->notify->fd;
	struct sockaddr_un from[NOTIFY_BATCH];
	socklen_t fl[NOTIFY_BATCH];
	uint8_t msg[NOTIFY_BATCH][NOTIFY_LEN + 1];
	size_t n = 0, i;
	ssize_t got;

	while (n < NOTIFY_BATCH) {
		fl[n] = sizeof(from[n]);
		got = recvfrom(fd, msg[n], sizeof(msg[n]), MSG_DONTWAIT,
		    (struct sockaddr *)&from[n], &fl[n]);
		if (got < 0)
			break;
		if (got != NOTIFY_LEN || memcmp(msg[n], NOTIFY_MAGIC, 4) != 0 ||
		    fl[n] <= sizeof(sa_family_t))
			continue; /* not a request, or no address to answer */
		n++;
	}
	if (n == 0)
		return;
	rf_http_refresh_now(h);
	for (i = 0; i < n; i++)
		(void)!sendto(fd, msg[i], NOTIFY_LEN, MSG_DONTWAIT,
		    (struct sockaddr *)&from[i], fl[i]);
}

int
rf_http_notify_start(struct rf_http *h)
{
	struct rf_http_notify *nt;
	int r;

	if ((nt = calloc(1, sizeof(*nt))) == NULL)
		return RF_ERR_ALLOC;
	nt->fd = -1;
	if ((r = sock_addr(h->cfg->home, &nt->sa)) != 0)
		goto fail;
	/* One server per state folder: a socket left behind is replaced. */
	(void)unlink(nt->sa.sun_path);
	if ((nt->fd = socket(
		 AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(nt->fd, (struct sockaddr *)&nt->sa, sizeof(nt->sa)) != 0 ||
	    chmod(nt->sa.sun_path, 0660) != 0) {
		r = rf_err_set(RF_ERR_IO, "cannot listen on %s: %s",
		    nt->sa.sun_path, strerror(errno));
		goto fail;
	}
	h->notify = nt; /* now h's */
	return 0;
fail:
	if (nt->fd >= 0) {
		close(nt->fd);
		(void)unlink(nt->sa.sun_path);
	}
	free(nt);
	return r;
}

void
rf_http_notify_stop(struct rf_http *h)
{
	struct rf_http_notify *nt;

	if (h == NULL || (nt = h->notify) == NULL)
		return;
	if (nt->fd >= 0) {
		close(nt->fd);
		(void)unlink(nt->sa.sun_path);
	}
	free(nt);
	h->notify = NULL;
}
