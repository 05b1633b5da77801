/*
 * keyd_conn.c: the custody process's connections to its callers (keyd.c,
 * keyd_int.h): accepting them and classing each by its credentials,
 * reading whole frames (the length checked before anything is allocated),
 * and answering without waiting: what a socket does not take waits until
 * it is writable, and a caller that does not read is closed.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keys/keyd_int.h"

#define FRAME_MAX_LOW (1024 * 1024) /* before hello, and for class server */
#define WRITE_TIMEOUT_MS 10000	    /* a caller that does not read */

static int
frame_max(const struct conn *c)
{
	return c->hello && c->cls == RF_KCLASS_ADMIN ? (int)RF_KPROTO_MAX
						     : FRAME_MAX_LOW;
}

void
keyd_conn_close(struct keyd *kd, int i)
{
	struct conn *c = &kd->conns[i];

	close(c->fd);
	free(c->frame);
	free(c->obuf);
	kd->conns[i] = kd->conns[--kd->nconns];
	memset(&kd->conns[kd->nconns], 0, sizeof(struct conn));
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
keyd_out_empty(const struct conn *c)
{
	return c->ooff == c->olen;
}

static void
out_clear(struct conn *c)
{
	free(c->obuf);
	c->obuf = NULL;
	c->olen = c->ooff = 0;
}

/* Send what the socket takes now, without waiting: bytes sent or -1. */
ssize_t
keyd_send_now(int fd, const uint8_t *d, size_t len)
{
	size_t done = 0;
	ssize_t k;

	while (done < len) {
		k = send(fd, d + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0)
			done += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return -1;
	}
	return (ssize_t)done;
}

/*
 * Answer len bytes on c without waiting: what the socket does not take
 * now waits in c's queue and goes out when c is writable
 * (keyd_conn_flush). c is not read while its queue holds anything, and is
 * closed if none of it goes out for WRITE_TIMEOUT_MS: a caller that does
 * not read stalls no one else.
 */
int
keyd_conn_out(struct conn *c, const uint8_t *d, size_t len)
{
	uint8_t *nb;
	ssize_t k;

	if (keyd_out_empty(c)) {
		out_clear(c);
		if ((k = keyd_send_now(c->fd, d, len)) < 0)
			return RF_ERR_IO;
		if ((size_t)k == len)
			return 0;
		d += k;
		len -= (size_t)k;
		c->ostall = mono_ms() + WRITE_TIMEOUT_MS;
	}
	if ((nb = realloc(c->obuf, c->olen + len)) == NULL)
		return RF_ERR_ALLOC;
	memcpy(nb + c->olen, d, len);
	c->obuf = nb;
	c->olen += len;
	return 0;
}

/* c is writable: send what waits. 0 keep c, -1 close it. */
int
keyd_conn_flush(struct conn *c)
{
	ssize_t k;

	if ((k = keyd_send_now(c->fd, c->obuf + c->ooff, c->olen - c->ooff)) <
	    0)
		return -1;
	if (k > 0)
		c->ostall = mono_ms() + WRITE_TIMEOUT_MS;
	c->ooff += (size_t)k;
	if (keyd_out_empty(c))
		out_clear(c);
	return 0;
}

/* Answer error r (its message) on c. */
int
keyd_send_err(struct conn *c, int r)
{
	struct rf_kbuf b = {0};
	int w;

	rf_kbuf_begin(&b, RF_KMSG_ERR);
	rf_kbuf_u32(&b, (uint32_t)(r < 0 ? -r : 1));
	rf_kbuf_str(&b, "");
	if (b.err == 0) {
		/* The message, cut to a string field's length. */
		char msg[RF_KPROTO_STR_MAX];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_kbuf_begin(&b, RF_KMSG_ERR);
		rf_kbuf_u32(&b, (uint32_t)(r < 0 ? -r : 1));
		rf_kbuf_str(&b, msg);
	}
	w = rf_kbuf_finish(&b) == 0 ? keyd_conn_out(c, b.d, b.len)
				    : RF_ERR_ALLOC;
	rf_kbuf_clear(&b);
	return w;
}

/* Answer request type with out (r 0) or error r: 0 keep c, -1 close it. */
int
keyd_answer(
    struct keyd *kd, struct conn *c, int type, int r, struct rf_kbuf *out)
{
	if (r == 0 && (r = rf_kbuf_finish(out)) == 0)
		return keyd_conn_out(c, out->d, out->len) == 0 ? 0 : -1;
	if (r == RF_ERR_REFUSED || r == RF_ERR_MALFORMED)
		keyd_refusal(kd, c, type, rf_err_msg(r));
	else if ((r = rf_keys_token_gone(&kd->cfg, r)) ==
	    RF_ERR_TOKEN_NOT_FOUND)
		kd->token_gone = 1;
	return keyd_send_err(c, r) == 0 && r != RF_ERR_MALFORMED ? 0 : -1;
}

/* The connection named id, or -1 when it has gone. */
int
keyd_conn_find(struct keyd *kd, uint64_t id)
{
	int i;

	for (i = 0; i < kd->nconns; i++)
		if (kd->conns[i].id == id)
			return i;
	return -1;
}

/* Close the callers marked dead once nothing of theirs is in flight,
 * and those that have not read their answers for WRITE_TIMEOUT_MS. */
void
keyd_conn_sweep(struct keyd *kd)
{
	int64_t now = mono_ms();
	struct conn *c;
	int i;

	for (i = kd->nconns - 1; i >= 0; i--) {
		c = &kd->conns[i];
		if (!c->busy &&
		    (c->dead || (!keyd_out_empty(c) && now > c->ostall)))
			keyd_conn_close(kd, i);
	}
}

/* Read what c has sent; run each whole frame. 0 keep, -1 close. */
int
keyd_conn_read(struct keyd *kd, struct conn *c)
{
	ssize_t k;
	uint32_t n;
	int r;

	if (c->frame == NULL) {
		k = recv(c->fd, c->hdr + c->hgot, 4 - c->hgot, MSG_DONTWAIT);
		if (k <= 0)
			return k < 0 && (errno == EAGAIN || errno == EINTR)
			    ? 0
			    : -1;
		c->hgot += (size_t)k;
		if (c->hgot < 4)
			return 0;
		n = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 |
		    (uint32_t)c->hdr[2] << 8 | c->hdr[3];
		/* The length is checked before anything is allocated. */
		if (n < 2 || n > (uint32_t)frame_max(c)) {
			r = rf_err_set(RF_ERR_TOO_LARGE,
			    "custody frame of %u bytes (at most %d for this "
			    "caller)",
			    n, frame_max(c));
			keyd_refusal(kd, c, 0, rf_err_msg(r));
			(void)keyd_send_err(c, r);
			return -1;
		}
		if ((c->frame = malloc((size_t)n + 4)) == NULL)
			return -1;
		memcpy(c->frame, c->hdr, 4);
		c->need = (size_t)n + 4;
		c->got = 4;
	}
	k = recv(c->fd, c->frame + c->got, c->need - c->got, MSG_DONTWAIT);
	if (k <= 0)
		return k < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	c->got += (size_t)k;
	if (c->got < c->need)
		return 0;
	r = keyd_conn_request(kd, c);
	if (c->frame != NULL) { /* else a queued request holds it */
		OPENSSL_cleanse(c->frame, c->need);
		free(c->frame);
		c->frame = NULL;
	}
	c->hgot = 0;
	return r;
}

static int
in_admin_group(struct keyd *kd, uid_t uid, gid_t gid)
{
	struct passwd *pw;
	struct group *gr;
	char **mem;

	if (!kd->have_admin_gid)
		return 0;
	if (gid == kd->admin_gid)
		return 1;
	if ((pw = getpwuid(uid)) == NULL ||
	    (gr = getgrgid(kd->admin_gid)) == NULL)
		return 0;
	for (mem = gr->gr_mem; *mem != NULL; mem++)
		if (strcmp(*mem, pw->pw_name) == 0)
			return 1;
	return 0;
}

void
keyd_conn_accept(struct keyd *kd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct conn *c;
	int fd;

	if ((fd = accept4(kd->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return;
	if (kd->nconns == CONN_MAX ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		close(fd);
		return;
	}
	c = &kd->conns[kd->nconns++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->id = ++kd->next_id;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	if (cr.uid == 0 || cr.uid == geteuid())
		c->cred_cls = RF_KCLASS_ADMIN;
	else if (kd->have_server_uid && cr.uid == kd->server_uid)
		c->cred_cls = RF_KCLASS_SERVER;
	else if (in_admin_group(kd, cr.uid, cr.gid))
		c->cred_cls = RF_KCLASS_ADMIN;
	else
		c->cred_cls = RF_KCLASS_NONE;
}
