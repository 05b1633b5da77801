/*
 * client.c: the rf_keys API as a client of the custody process. One stub
 * per request (as OpenSSH's monitor_wrap.c), each mirroring its handler
 * in keyd_handlers.c: write the request, read one answer.
 *
 * A connection is made lazily: at rf_keys_open, and again on the next
 * call after keyd went away, so that serve reconnects once keyd is back.
 * A keyd that ends before answering (kill -9) gives RF_ERR_CUSTODY: it
 * appends each leaf before it signs, so nothing it signed lacks its leaf,
 * and nothing was released to this caller.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "keys/keyd.h"
#include "keys/keys_int.h"
#include "keys/proto.h"

/* The process-wide switch (keyd.h). */
static pthread_mutex_t use_lock = PTHREAD_MUTEX_INITIALIZER;
static int use_on;
static struct rf_custody use;

/*
 * Connections to keyd per handle. Each request takes an idle connection,
 * or opens one while fewer than KC_CONNS are open, or waits: threads that
 * share a handle (serve's workers) thus reach keyd at once, and keyd
 * groups what they ask into one audit append (keyd_pipe.c).
 */
#define KC_CONNS 16

struct rf_kc {
	pthread_mutex_t mu; /* everything below */
	pthread_cond_t cv;  /* a connection came back */
	int idle[KC_CONNS]; /* connected, hello said, not in use */
	int nidle;
	int open;     /* connections in use or idle */
	unsigned gen; /* class changes: older connections close */
	int cls;      /* granted by keyd's hello */
	struct rf_custody c;
	struct rf_config cfg; /* without PIN */
};

void
rf_keys_custody_use(const struct rf_custody *c)
{
	pthread_mutex_lock(&use_lock);
	use = *c;
	use_on = 1;
	pthread_mutex_unlock(&use_lock);
}

void
rf_keys_custody_off(void)
{
	pthread_mutex_lock(&use_lock);
	use_on = 0;
	pthread_mutex_unlock(&use_lock);
}

int
rf_kc_enabled(void)
{
	int on;

	pthread_mutex_lock(&use_lock);
	on = use_on;
	pthread_mutex_unlock(&use_lock);
	return on;
}

int
rf_keyd_path(
    const struct rf_config *cfg, const char *name, char *out, size_t outlen)
{
	int n;

	if (strcmp(name, "keyd.sock") == 0 && cfg->keyd_socket[0] != '\0')
		n = snprintf(out, outlen, "%s", cfg->keyd_socket);
	else
		n = snprintf(out, outlen, "%s/%s", cfg->home, name);
	if (n < 0 || (size_t)n >= outlen)
		return rf_err_set(RF_ERR_CONFIG,
		    "path of %s is too long: check RINGFENCE_HOME", name);
	return 0;
}

/* keyd's socket address, or RF_ERR_CONFIG. */
static int
sock_addr(const struct rf_config *cfg, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(cfg->keyd_socket) >= sizeof(sa->sun_path))
		return rf_err_set(RF_ERR_CONFIG,
		    "keyd_socket %s is longer than a socket path may be (%zu)",
		    cfg->keyd_socket, sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, cfg->keyd_socket, strlen(cfg->keyd_socket) + 1);
	return 0;
}

/* A connected socket to keyd, or RF_ERR_CUSTODY. */
static int
sock_connect(const struct rf_config *cfg, int *fd)
{
	struct sockaddr_un sa;
	int r, s;

	*fd = -1;
	if ((r = sock_addr(cfg, &sa)) != 0)
		return r;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return rf_err_set(RF_ERR_IO, "socket: %s", strerror(errno));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(s);
		return rf_err_set(RF_ERR_CUSTODY,
		    "no custody process answers at %s (%s): start it with "
		    "'ringfence keyd'",
		    cfg->keyd_socket, strerror(errno));
	}
	*fd = s;
	return 0;
}

int
rf_keyd_listening(const struct rf_config *cfg)
{
	struct sockaddr_un sa;
	int s, ok;

	if (!rf_kc_enabled())
		return 1;
	if (sock_addr(cfg, &sa) != 0) {
		rf_err_clear();
		return 0;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return 0;
	/* EAGAIN: its backlog is full, so it is there, only busy. */
	ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	    errno == EAGAIN;
	close(s);
	return ok;
}

/* The error an ERR answer carries, re-set here. */
static int
answer_err(struct rf_kmsg *m)
{
	char msg[RF_KPROTO_STR_MAX];
	uint32_t code = rf_kmsg_u32(m);
	int r;

	rf_kmsg_str(m, msg);
	if (rf_kmsg_end(m) != 0 || code == 0 || code > 1000)
		return rf_err_set(
		    RF_ERR_CUSTODY, "custody process sent a malformed error");
	r = -(int)code;
	return rf_err_set(r, "%s", msg[0] ? msg : rf_err_str(r));
}

/*
 * Send b and read the answer into *frame / *m (OK only). A SIGN request
 * that asked to hear when it is recorded gets RECORDED first: recorded
 * (if not NULL) is called then, and the answer read after it. On an I/O
 * error the connection is dropped (the next call reconnects).
 */
static int
exchange(int fd, const struct rf_kbuf *b, uint8_t **frame, struct rf_kmsg *m,
    const struct rf_recorded *rec)
{
	size_t len;
	int r, said = 0;

	*frame = NULL;
	if ((r = rf_kproto_write(fd, b)) != 0)
		return rf_err_set(RF_ERR_CUSTODY,
		    "custody process went away (%s): nothing was signed; run "
		    "the command again",
		    rf_err_msg(r));
	for (;;) {
		if ((r = rf_kproto_read(fd, RF_KPROTO_MAX, frame, &len)) != 0)
			return rf_err_set(
			    RF_ERR_CUSTODY, "%s", rf_err_str(RF_ERR_CUSTODY));
		if ((r = rf_kmsg_parse(*frame, len, m)) != 0)
			return rf_err_set(RF_ERR_CUSTODY,
			    "custody process answered garbage: %s",
			    rf_err_msg(r));
		if (m->type != RF_KMSG_RECORDED || rec == NULL || said++)
			break;
		free(*frame);
		*frame = NULL;
		rec->fn(rec->arg);
	}
	if (m->type == RF_KMSG_ERR)
		return answer_err(m);
	if (m->type != RF_KMSG_OK)
		return rf_err_set(
		    RF_ERR_CUSTODY, "custody process answered out of turn");
	return 0;
}

/* The HELLO request claiming class claim, into b. */
static int
hello_frame(struct rf_kbuf *b, int claim)
{
	rf_kbuf_begin(b, RF_KMSG_HELLO);
	rf_kbuf_u8(b, (uint8_t)claim);
	return rf_kbuf_finish(b);
}

/* keyd's OK answer to a hello: the class granted into *cls. */
static int
hello_answer(struct rf_kmsg *m, int *cls)
{
	int r;

	*cls = rf_kmsg_u8(m);
	(void)rf_kmsg_u32(m); /* keyd's pid */
	if ((r = rf_kmsg_end(m)) != 0)
		return r;
	if (*cls == RF_KCLASS_NONE)
		return rf_err_set(RF_ERR_REFUSED,
		    "the custody process refuses uid %u: run as root, as the "
		    "custody user, as server_user or in admin_group",
		    (unsigned)getuid());
	return 0;
}

static int
hello(struct rf_kc *kc, int fd)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int r;

	if ((r = hello_frame(&b, kc->c.claim)) == 0 &&
	    (r = exchange(fd, &b, &frame, &m, NULL)) == 0)
		r = hello_answer(&m, &kc->cls);
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

/*
 * A connection for one request: an idle one, a new one (starting keyd
 * once if allowed), or the next one given back. Under kc->mu, which a
 * connect and hello keep held: they are rare, and one keyd start is
 * enough for every waiting thread.
 */
static int
take(struct rf_kc *kc, int *fd, unsigned *gen)
{
	int r;

	while (kc->nidle == 0 && kc->open >= KC_CONNS)
		pthread_cond_wait(&kc->cv, &kc->mu);
	*gen = kc->gen;
	if (kc->nidle > 0) {
		*fd = kc->idle[--kc->nidle];
		return 0;
	}
	r = sock_connect(&kc->cfg, fd);
	if (r == RF_ERR_CUSTODY && kc->c.start != NULL) {
		if ((r = kc->c.start(kc->c.arg, &kc->cfg)) != 0)
			return r;
		r = sock_connect(&kc->cfg, fd);
	}
	if (r != 0)
		return r;
	if ((r = hello(kc, *fd)) != 0) {
		close(*fd);
		*fd = -1;
		return r;
	}
	kc->open++;
	return 0;
}

/* Give fd back (ok) or close it (a lost or outdated connection). */
static void
give(struct rf_kc *kc, int fd, unsigned gen, int ok)
{
	if (ok && gen == kc->gen && kc->nidle < KC_CONNS) {
		kc->idle[kc->nidle++] = fd;
	} else {
		close(fd);
		kc->open--;
	}
	pthread_cond_signal(&kc->cv);
}

/*
 * One request: finish b, send it, read the OK answer into *frame / *m.
 * Lost connections are closed for the next call to reconnect.
 */
static int
call_told(struct rf_kc *kc, struct rf_kbuf *b, uint8_t **frame,
    struct rf_kmsg *m, const struct rf_recorded *rec)
{
	unsigned gen;
	int fd = -1, r;

	*frame = NULL;
	if ((r = rf_kbuf_finish(b)) != 0)
		return r;
	pthread_mutex_lock(&kc->mu);
	r = take(kc, &fd, &gen);
	pthread_mutex_unlock(&kc->mu);
	if (r != 0)
		return r;
	r = exchange(fd, b, frame, m, rec);
	pthread_mutex_lock(&kc->mu);
	give(kc, fd, gen, r != RF_ERR_CUSTODY);
	pthread_mutex_unlock(&kc->mu);
	if (r != 0) {
		free(*frame);
		*frame = NULL;
	}
	return r;
}

static int
call(struct rf_kc *kc, struct rf_kbuf *b, uint8_t **frame, struct rf_kmsg *m)
{
	return call_told(kc, b, frame, m, NULL);
}

static void
put_who(struct rf_kbuf *b, const struct rf_actor *who)
{
	rf_kbuf_str(b, who ? who->actor : NULL);
	rf_kbuf_str(b, who ? who->source : NULL);
}

/* Close the idle connections; those in use close when given back. */
static void
drop_all(struct rf_kc *kc)
{
	kc->gen++;
	while (kc->nidle > 0) {
		close(kc->idle[--kc->nidle]);
		kc->open--;
	}
}

int
rf_keys_custody_lower(struct rf_keys *keys, int cls)
{
	struct rf_kc *kc = rf_keys_kc(keys);
	unsigned gen;
	int fd = -1, r;

	if (kc == NULL)
		return 0;
	pthread_mutex_lock(&kc->mu);
	if (cls < kc->c.claim)
		kc->c.claim = cls; /* reconnects claim it too */
	kc->c.start = NULL;	   /* and wait for keyd, never start one */
	drop_all(kc);
	/* Say the new hello now, so that a refusal is reported here. */
	if ((r = take(kc, &fd, &gen)) == 0)
		give(kc, fd, gen, 1);
	pthread_mutex_unlock(&kc->mu);
	return r;
}

int
rf_kc_open(const struct rf_config *cfg, struct rf_keys **out)
{
	struct rf_kc *kc;
	unsigned gen;
	int fd = -1, r;

	*out = NULL;
	if ((kc = calloc(1, sizeof(*kc))) == NULL)
		return RF_ERR_ALLOC;
	pthread_mutex_init(&kc->mu, NULL);
	pthread_cond_init(&kc->cv, NULL);
	kc->cfg = *cfg;
	memset(kc->cfg.pin, 0, sizeof(kc->cfg.pin));
	pthread_mutex_lock(&use_lock);
	kc->c = use;
	pthread_mutex_unlock(&use_lock);
	/* Connect now, so that open reports a keyd that cannot be reached. */
	pthread_mutex_lock(&kc->mu);
	if ((r = take(kc, &fd, &gen)) == 0)
		give(kc, fd, gen, 1);
	pthread_mutex_unlock(&kc->mu);
	if (r != 0) {
		rf_kc_free(kc);
		return r;
	}
	return rf_keys_new_client(cfg, kc, out); /* owns kc */
}

void
rf_kc_free(struct rf_kc *kc)
{
	if (kc == NULL)
		return;
	drop_all(kc);
	pthread_cond_destroy(&kc->cv);
	pthread_mutex_destroy(&kc->mu);
	free(kc);
}

/* A key from an answer's u8 alg and bytes SPKI. */
static int
get_key(struct rf_kmsg *m, struct rf_key **out)
{
	const uint8_t *spki;
	size_t len;
	uint8_t alg = rf_kmsg_u8(m);

	*out = NULL;
	rf_kmsg_bytes(m, &spki, &len, 4096);
	if (m->err != 0)
		return rf_err_set(
		    RF_ERR_CUSTODY, "custody process sent a malformed key");
	return rf_key_new_public((enum rf_key_alg)alg, spki, len, out);
}

int
rf_kc_generate_many(struct rf_kc *kc, const struct rf_keygen *reqs, size_t n,
    const struct rf_actor *who, struct rf_key **out)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (n > RF_KPROTO_BATCH_MAX)
		return rf_err_set(RF_ERR_ARG, "at most %d keys at a time",
		    RF_KPROTO_BATCH_MAX);
	rf_kbuf_begin(&b, RF_KMSG_KEYGEN);
	put_who(&b, who);
	rf_kbuf_u32(&b, (uint32_t)n);
	for (i = 0; i < n; i++) {
		rf_kbuf_u8(&b, (uint8_t)reqs[i].alg);
		rf_kbuf_str(&b, reqs[i].label);
		rf_kbuf_str(&b, reqs[i].tenant);
		rf_kbuf_str(&b, reqs[i].made_for);
	}
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	if (rf_kmsg_u32(&m) != n) {
		r = rf_err_set(RF_ERR_CUSTODY, "custody process made %s keys",
		    "another number of");
		goto out;
	}
	for (i = 0; i < n && r == 0; i++)
		r = get_key(&m, &out[i]);
	if (r == 0)
		r = rf_kmsg_end(&m);
out:
	if (r != 0)
		for (i = 0; i < n; i++) {
			rf_key_free(out[i]);
			out[i] = NULL;
		}
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_load(struct rf_kc *kc, const char *id, struct rf_key **out)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int r;

	*out = NULL;
	rf_kbuf_begin(&b, RF_KMSG_LOAD);
	rf_kbuf_str(&b, id);
	if ((r = call(kc, &b, &frame, &m)) != 0 ||
	    (r = get_key(&m, out)) != 0 || (r = rf_kmsg_end(&m)) != 0)
		goto out;
	if (strcmp(rf_key_id(*out), id) != 0)
		r = rf_err_set(RF_ERR_CUSTODY,
		    "custody process answered key %s for %s", rf_key_id(*out),
		    id);
out:
	if (r != 0) {
		rf_key_free(*out);
		*out = NULL;
	}
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

/* Ids of one LOAD_MANY frame: its answer stays far below the frame limit
 * (an RSA-3072 key's SPKI is about 420 bytes). */
#define LOAD_FRAME_KEYS 20000

int
rf_kc_load_many(
    struct rf_kc *kc, const char *const *ids, size_t n, struct rf_key **out)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	size_t i, from, to;
	int r = 0;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	for (from = 0; from < n && r == 0; from = to) {
		to = n - from < LOAD_FRAME_KEYS ? n : from + LOAD_FRAME_KEYS;
		rf_kbuf_begin(&b, RF_KMSG_LOAD_MANY);
		rf_kbuf_u32(&b, (uint32_t)(to - from));
		for (i = from; i < to; i++)
			rf_kbuf_str(&b, ids[i]);
		if ((r = call(kc, &b, &frame, &m)) != 0)
			break;
		if (rf_kmsg_u32(&m) != to - from)
			r = rf_err_set(RF_ERR_CUSTODY,
			    "custody process answered another number of keys");
		for (i = from; i < to && r == 0; i++) {
			if (rf_kmsg_u8(&m) == 0)
				continue; /* no token holds it */
			if ((r = get_key(&m, &out[i])) == 0 &&
			    strcmp(rf_key_id(out[i]), ids[i]) != 0)
				r = rf_err_set(RF_ERR_CUSTODY,
				    "custody process answered key %s for %s",
				    rf_key_id(out[i]), ids[i]);
		}
		if (r == 0)
			r = rf_kmsg_end(&m);
		free(frame);
		frame = NULL;
		rf_kbuf_clear(&b);
	}
	if (r != 0)
		for (i = 0; i < n; i++) {
			rf_key_free(out[i]);
			out[i] = NULL;
		}
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

/* Requests of one SIGN frame: at most this many message bytes. */
#define SIGN_FRAME_BYTES (8u * 1024 * 1024)

/* The SIGN request for reqs[from..to) into b (begun and finished here). */
static int
sign_frame(struct rf_kbuf *b, const struct rf_key *key,
    const struct rf_sign_req *reqs, size_t from, size_t to, int digest,
    const struct rf_actor *who, int told)
{
	size_t i;

	rf_kbuf_begin(b, RF_KMSG_SIGN);
	rf_kbuf_str(b, rf_key_id(key));
	rf_kbuf_u8(b,
	    (uint8_t)((digest ? RF_KSIGN_DIGEST : 0) |
		(told ? RF_KSIGN_RECORDED : 0)));
	put_who(b, who);
	rf_kbuf_u32(b, (uint32_t)(to - from));
	for (i = from; i < to; i++) {
		rf_kbuf_u8(b, (uint8_t)reqs[i].scheme);
		rf_kbuf_str(b, reqs[i].what);
		rf_kbuf_strn(b, reqs[i].ref, RF_KPROTO_REF_MAX);
		rf_kbuf_str(b, reqs[i].tenant);
		rf_kbuf_str(b, reqs[i].conn);
		rf_kbuf_str(b, reqs[i].on_behalf);
		rf_kbuf_bytes(b, reqs[i].proof, reqs[i].prooflen);
		rf_kbuf_bytes(b, reqs[i].msg, reqs[i].msglen);
	}
	return rf_kbuf_finish(b);
}

/* The signatures of an OK answer to sign_frame's request into sigs. */
static int
sign_answer(struct rf_kmsg *m, size_t from, size_t to, struct rf_sig *sigs)
{
	const uint8_t *p;
	size_t i, len;

	if (rf_kmsg_u32(m) != to - from)
		return rf_err_set(
		    RF_ERR_CUSTODY, "custody process answered a short batch");
	for (i = from; i < to; i++) {
		rf_kmsg_bytes(m, &p, &len, 1024);
		if (m->err != 0 || len == 0)
			break;
		if ((sigs[i].sig = malloc(len)) == NULL)
			return RF_ERR_ALLOC;
		memcpy(sigs[i].sig, p, len);
		sigs[i].len = len;
	}
	return rf_kmsg_end(m);
}

/* Sign reqs[from..to) in one request into sigs[from..to). */
static int
sign_part(struct rf_kc *kc, struct rf_key *key, const struct rf_sign_req *reqs,
    size_t from, size_t to, int digest, const struct rf_actor *who,
    struct rf_sig *sigs, const struct rf_recorded *rec)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int r;

	if ((r = sign_frame(
		 &b, key, reqs, from, to, digest, who, rec != NULL)) == 0 &&
	    (r = call_told(kc, &b, &frame, &m, rec)) == 0)
		r = sign_answer(&m, from, to, sigs);
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

/*
 * keyd verifies each signature before releasing it. The client audits its
 * answers: one signature of each frame of several, chosen at random, and
 * one frame of a single signature in SIGN_AUDIT_ONE (a TLS handshake's or
 * an assertion's, where a second verification per call would be a tenth
 * of serve's work), against the public key it holds. A keyd answering for
 * the wrong key, or in the wrong order, is caught here without verifying
 * every signature twice.
 */
#define SIGN_AUDIT_ONE 8

/*
 * Which answer to audit: keyd cannot tell which, and the choice is cheap.
 * RAND_bytes updates its DRBG on every call: 2 us in a tight loop here,
 * 5 % of serve's CPU per assertion in bench/assert_profile.sh, as much as
 * the audit's verifications on average. Each thread draws a seed from it
 * once and steps xorshift64* from there.
 */
static uint32_t
audit_pick(void)
{
	static _Thread_local uint64_t x;

	/* No seed yet: this answer is audited (0), and the next call draws
	 * again. */
	if (x == 0 &&
	    (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1 || x == 0)) {
		x = 0;
		return 0;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return (uint32_t)((x * 0x2545f4914f6cdd1dULL) >> 32);
}

static int
sign_check(const struct rf_key *key, const struct rf_sign_req *reqs,
    const struct rf_sig *sigs, size_t from, size_t to, int digest)
{
	uint32_t pick = audit_pick();
	size_t i;
	int r;

	if (to - from == 1 && pick % SIGN_AUDIT_ONE != 0)
		return 0;
	i = from + (pick / SIGN_AUDIT_ONE) % (to - from);
	if (digest)
		r = rf_keys_verify_digest(rf_key_public(key), reqs[i].msg,
		    reqs[i].msglen, sigs[i].sig, sigs[i].len);
	else
		r = rf_keys_verify(rf_key_public(key), rf_key_alg(key),
		    reqs[i].scheme, reqs[i].msg, reqs[i].msglen, sigs[i].sig,
		    sigs[i].len);
	if (r != 0)
		r = rf_err_set(RF_ERR_SIGNATURE_INVALID,
		    "custody process returned a signature that does not "
		    "verify with key %s",
		    rf_key_id(key));
	return r;
}

int
rf_kc_sign_told(struct rf_kc *kc, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int digest,
    const struct rf_actor *who, struct rf_sig *sigs,
    const struct rf_recorded *rec)
{
	size_t i, from, bytes;
	int r = 0;

	for (i = 0; i < n; i++)
		sigs[i].sig = NULL, sigs[i].len = 0;
	if (n == 0)
		return 0;
	if (key == NULL || reqs == NULL)
		return rf_err_set(RF_ERR_ARG, "bad signing request");
	/* Large batches go as several frames, each within the limit. */
	for (from = 0; from < n && r == 0;) {
		for (i = from, bytes = 0;
		     i < n && i - from < RF_KPROTO_BATCH_MAX &&
		     (i == from || bytes + reqs[i].msglen < SIGN_FRAME_BYTES);
		     i++)
			bytes += reqs[i].msglen + 64;
		/* Told of the first frame only: that is when keyd starts. */
		r = sign_part(kc, key, reqs, from, i, digest, who, sigs,
		    from == 0 ? rec : NULL);
		if (r == 0)
			r = sign_check(key, reqs, sigs, from, i, digest);
		from = i;
	}
	if (r != 0)
		for (i = 0; i < n; i++)
			rf_sig_clear(&sigs[i]);
	return r;
}

int
rf_kc_sign(struct rf_kc *kc, struct rf_key *key, const struct rf_sign_req *reqs,
    size_t n, int digest, const struct rf_actor *who, struct rf_sig *sigs)
{
	return rf_kc_sign_told(kc, key, reqs, n, digest, who, sigs, NULL);
}

/*
 * Signing calls on a connection of the caller's own, which the caller
 * polls (serve's epoll workers): nothing here waits. The connection is
 * made and its hello sent at once; keyd's answer to the hello is read
 * when the socket is readable, as each signature's answer is. A request
 * is written whole (a socket with one small request at a time takes it at
 * once). The answer is checked as rf_kc_sign checks it.
 */
#define KCALL_ANSWER_MAX 4096 /* one signature, or an error's text */

enum { KCALL_HELLO = 1, KCALL_IDLE, KCALL_SIGN, KCALL_DEAD };

struct rf_kcall {
	int fd;
	int state; /* KCALL_* */
	uint8_t in[KCALL_ANSWER_MAX];
	size_t got;
};

int
rf_keys_call_open(struct rf_keys *keys, struct rf_kcall **out)
{
	struct rf_kc *kc = keys != NULL ? rf_keys_kc(keys) : NULL;
	struct sockaddr_un sa;
	struct rf_kbuf b = {0};
	struct rf_kcall *c;
	size_t n;
	int r;

	*out = NULL;
	if (kc == NULL)
		return rf_err_set(RF_ERR_ARG, "not a custody process client");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((n = strlen(kc->cfg.keyd_socket)) >= sizeof(sa.sun_path))
		return rf_err_set(RF_ERR_CONFIG, "keyd_socket is too long");
	memcpy(sa.sun_path, kc->cfg.keyd_socket, n + 1);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	c->state = KCALL_HELLO;
	/* Non-blocking: a keyd whose backlog is full is not waited for. */
	if ((c->fd = socket(
		 AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		free(c);
		return rf_err_set(RF_ERR_IO, "socket: %s", strerror(errno));
	}
	/* kc->mu is held through a blocking client's connect and hello (a
	 * pool thread's, keyd slow to answer): not waited for either. */
	if (pthread_mutex_trylock(&kc->mu) != 0) {
		rf_keys_call_free(c);
		return rf_err_set(
		    RF_ERR_CUSTODY, "the custody client is connecting");
	}
	r = hello_frame(&b, kc->c.claim);
	pthread_mutex_unlock(&kc->mu);
	if (r == 0 && connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		r = rf_err_set(RF_ERR_CUSTODY,
		    "no custody process answers at %s (%s)",
		    kc->cfg.keyd_socket, strerror(errno));
	else if (r == 0 && (r = rf_kproto_write(c->fd, &b)) != 0)
		r = rf_err_set(
		    RF_ERR_CUSTODY, "custody process: %s", rf_err_msg(r));
	rf_kbuf_clear(&b);
	if (r != 0) {
		rf_keys_call_free(c);
		return r;
	}
	*out = c;
	return 0;
}

int
rf_keys_call_fd(const struct rf_kcall *c)
{
	return c->fd;
}

int
rf_keys_call_alive(const struct rf_kcall *c)
{
	return c->state != KCALL_DEAD;
}

int
rf_keys_call_idle(const struct rf_kcall *c)
{
	return c->state == KCALL_IDLE;
}

void
rf_keys_call_free(struct rf_kcall *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	OPENSSL_cleanse(c->in, sizeof(c->in));
	free(c);
}

/* The call lost: e, set with the message. */
static int
call_lost(struct rf_kcall *c, int e)
{
	c->state = KCALL_DEAD;
	return e;
}

/* keyd's answer in c->in, read as far as the socket has it: 1 while it is
 * incomplete, 0 when whole (parsed into *m), else an error (lost). */
static int
call_frame(struct rf_kcall *c, struct rf_kmsg *m)
{
	size_t want;
	ssize_t k;
	int r;

	for (;;) {
		want = 4;
		if (c->got >= 4) {
			want += (size_t)c->in[0] << 24 |
			    (size_t)c->in[1] << 16 | (size_t)c->in[2] << 8 |
			    c->in[3];
			if (want > sizeof(c->in) || want < 6)
				return call_lost(c,
				    rf_err_set(RF_ERR_CUSTODY,
					"custody process answered a frame of "
					"%zu bytes",
					want));
		}
		if (c->got == want && want > 4)
			break;
		k = recv(c->fd, c->in + c->got, want - c->got, MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (k <= 0)
			return call_lost(c,
			    rf_err_set(RF_ERR_CUSTODY,
				"custody process went away before it "
				"answered: ask again"));
		c->got += (size_t)k;
	}
	c->got = 0;
	if ((r = rf_kmsg_parse(c->in, want, m)) != 0)
		return call_lost(c,
		    rf_err_set(RF_ERR_CUSTODY,
			"custody process answered garbage: %s", rf_err_msg(r)));
	return 0;
}

int
rf_keys_call_greet(struct rf_kcall *c)
{
	struct rf_kmsg m;
	int r, cls;

	if (c->state != KCALL_HELLO)
		return rf_err_set(RF_ERR_STATE, "no hello is under way");
	if ((r = call_frame(c, &m)) != 0)
		return r;
	if (m.type == RF_KMSG_ERR)
		return call_lost(c, answer_err(&m));
	if (m.type != RF_KMSG_OK)
		return call_lost(c,
		    rf_err_set(RF_ERR_CUSTODY,
			"custody process answered the hello out of turn"));
	if ((r = hello_answer(&m, &cls)) != 0)
		return call_lost(c, r);
	c->state = KCALL_IDLE;
	return 0;
}

int
rf_keys_call_sign(struct rf_kcall *c, const struct rf_key *key,
    const struct rf_sign_req *req, const struct rf_actor *who)
{
	struct rf_kbuf b = {0};
	int r;

	if (c->state != KCALL_IDLE)
		return rf_err_set(RF_ERR_STATE, "the custody call is not idle");
	if ((r = sign_frame(&b, key, req, 0, 1, 0, who, 0)) == 0 &&
	    (r = rf_kproto_write(c->fd, &b)) != 0)
		r = call_lost(c,
		    rf_err_set(RF_ERR_CUSTODY,
			"custody process went away (%s): nothing was signed",
			rf_err_msg(r)));
	rf_kbuf_clear(&b);
	if (r == 0)
		c->state = KCALL_SIGN;
	return r;
}

int
rf_keys_call_sign_read(struct rf_kcall *c, const struct rf_key *key,
    const struct rf_sign_req *req, struct rf_sig *sig)
{
	struct rf_kmsg m;
	int r;

	sig->sig = NULL;
	sig->len = 0;
	if (c->state != KCALL_SIGN)
		return rf_err_set(RF_ERR_STATE, "no custody call is under way");
	if ((r = call_frame(c, &m)) != 0)
		return r;
	c->state = KCALL_IDLE;
	if (m.type == RF_KMSG_ERR)
		return answer_err(&m);
	if (m.type != RF_KMSG_OK)
		return call_lost(c,
		    rf_err_set(RF_ERR_CUSTODY,
			"custody process answered out of turn"));
	if ((r = sign_answer(&m, 0, 1, sig)) == 0)
		r = sign_check(key, req, sig, 0, 1, 0);
	if (r != 0)
		rf_sig_clear(sig);
	return r;
}

int
rf_kc_disable_many(struct rf_kc *kc, const char *const *ids, size_t n,
    int destroy, const struct rf_actor *who, size_t *done)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	uint64_t d;
	size_t i;
	int r;

	if (done != NULL)
		*done = 0;
	if (n > RF_KPROTO_BATCH_MAX)
		return rf_err_set(RF_ERR_ARG, "at most %d keys at a time",
		    RF_KPROTO_BATCH_MAX);
	rf_kbuf_begin(&b, RF_KMSG_DISABLE);
	rf_kbuf_u8(&b, (uint8_t)destroy); /* 0, 1, or 2: tenant keys only */
	put_who(&b, who);
	rf_kbuf_u32(&b, (uint32_t)n);
	for (i = 0; i < n; i++)
		rf_kbuf_str(&b, ids[i]);
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	d = rf_kmsg_u64(&m);
	if ((r = rf_kmsg_end(&m)) != 0)
		goto out;
	if (done != NULL)
		*done = (size_t)d;
	/* The single-key calls fail for a key that is not there. */
	else if (d == 0)
		r = rf_err_set(
		    RF_ERR_KEY_NOT_FOUND, "no key %s in the token", ids[0]);
out:
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_list(struct rf_kc *kc, int (*fn)(void *arg, const struct rf_key_info *ki),
    void *arg)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	struct rf_key_info ki;
	char s[RF_KPROTO_STR_MAX];
	uint8_t *frame = NULL;
	uint32_t n, i;
	int r;

	rf_kbuf_begin(&b, RF_KMSG_LIST);
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	n = rf_kmsg_u32(&m);
	for (i = 0; i < n && m.err == 0 && r == 0; i++) {
		memset(&ki, 0, sizeof(ki));
		rf_kmsg_str(&m, s);
		snprintf(ki.id, sizeof(ki.id), "%.64s", s);
		rf_kmsg_str(&m, s);
		snprintf(ki.label, sizeof(ki.label), "%.64s", s);
		ki.alg = (enum rf_key_alg)rf_kmsg_u8(&m);
		ki.can_sign = rf_kmsg_u8(&m);
		ki.sensitive = rf_kmsg_u8(&m);
		ki.extractable = rf_kmsg_u8(&m);
		ki.always_sensitive = rf_kmsg_u8(&m);
		ki.never_extractable = rf_kmsg_u8(&m);
		rf_kmsg_str(&m, s);
		snprintf(ki.token_id, sizeof(ki.token_id), "%.64s", s);
		rf_kmsg_str(&m, s);
		snprintf(ki.token, sizeof(ki.token), "%.32s", s);
		ki.retired = rf_kmsg_u8(&m) != 0;
		ki.ledger = rf_kmsg_u8(&m) != 0;
		rf_kmsg_str(&m, s);
		snprintf(ki.role, sizeof(ki.role), "%.15s", s);
		if (m.err == 0)
			r = fn(arg, &ki);
	}
	if (r == 0)
		r = rf_kmsg_end(&m);
out:
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_custody(struct rf_kc *kc, const char *id, int v[4])
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int i, r;

	rf_kbuf_begin(&b, RF_KMSG_CUSTODY);
	rf_kbuf_str(&b, id);
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	for (i = 0; i < 4; i++)
		v[i] = rf_kmsg_u8(&m) != 0;
	r = rf_kmsg_end(&m);
out:
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_session(struct rf_kc *kc, const char *serial, const char *pub,
    const uint8_t *proof, size_t prooflen, struct rf_keys_session *out)
{
	char str[RF_KPROTO_STR_MAX];
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	rf_kbuf_begin(&b, RF_KMSG_SESSION);
	rf_kbuf_str(&b, serial);
	rf_kbuf_str(&b, pub);
	rf_kbuf_bytes(&b, proof, prooflen);
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	rf_kmsg_str(&m, str);
	snprintf(out->sid, sizeof(out->sid), "%.63s", str);
	rf_kmsg_str(&m, str);
	snprintf(out->pub, sizeof(out->pub), "%.63s", str);
	rf_kmsg_str(&m, str);
	snprintf(out->confirm, sizeof(out->confirm), "%.63s", str);
	out->expires = (int64_t)rf_kmsg_u64(&m);
	r = rf_kmsg_end(&m);
out:
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_note(struct rf_kc *kc, int what, const char *connector,
    const char *tenant, const char *conn)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	int r;

	rf_kbuf_begin(&b, RF_KMSG_NOTE);
	rf_kbuf_u8(&b, (uint8_t)what);
	rf_kbuf_str(&b, connector);
	rf_kbuf_str(&b, tenant);
	rf_kbuf_str(&b, conn);
	if ((r = call(kc, &b, &frame, &m)) == 0)
		r = rf_kmsg_end(&m);
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_kc_note_items(struct rf_kc *kc, int affected, const struct rf_knote_item *v,
    size_t n, uint8_t *changed)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL, ch;
	size_t off, k, i;
	int r = 0;

	if (changed != NULL)
		memset(changed, 0, n);
	for (off = 0; off < n && r == 0; off += k) {
		k = n - off < RF_KPROTO_NOTE_ITEMS_MAX
		    ? n - off
		    : RF_KPROTO_NOTE_ITEMS_MAX;
		rf_kbuf_begin(&b, RF_KMSG_NOTE_ITEMS);
		rf_kbuf_u8(&b, affected ? 1 : 0);
		rf_kbuf_u32(&b, (uint32_t)k);
		for (i = off; i < off + k; i++) {
			rf_kbuf_str(&b, v[i].tenant);
			rf_kbuf_str(&b, v[i].conn);
			rf_kbuf_str(&b, v[i].key);
		}
		if ((r = call(kc, &b, &frame, &m)) == 0) {
			if (rf_kmsg_u32(&m) != k)
				m.err = RF_ERR_MALFORMED;
			for (i = off; i < off + k && m.err == 0; i++)
				if ((ch = rf_kmsg_u8(&m)) != 0 &&
				    changed != NULL)
					changed[i] = 1;
			r = rf_kmsg_end(&m);
		}
		free(frame);
		frame = NULL;
		rf_kbuf_clear(&b);
	}
	return r;
}

int
rf_kc_measure_rate(struct rf_kc *kc, struct rf_key *key, size_t n, int threads,
    double *per_sec)
{
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	uint8_t *frame = NULL;
	uint64_t milli;
	int r;

	*per_sec = 0;
	rf_kbuf_begin(&b, RF_KMSG_MEASURE);
	rf_kbuf_str(&b, rf_key_id(key));
	rf_kbuf_u64(&b, (uint64_t)n);
	rf_kbuf_u32(&b, (uint32_t)threads);
	if ((r = call(kc, &b, &frame, &m)) != 0)
		goto out;
	milli = rf_kmsg_u64(&m);
	if ((r = rf_kmsg_end(&m)) == 0)
		*per_sec = (double)milli / 1000.0;
out:
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}

int
rf_keyd_status_get(const struct rf_config *cfg, struct rf_keyd_status *st)
{
	struct rf_kc kc;
	struct rf_kbuf b = {0};
	struct rf_kmsg m;
	char tok[RF_KPROTO_STR_MAX];
	uint8_t *frame = NULL;
	int fd = -1, r;

	memset(st, 0, sizeof(*st));
	memset(&kc, 0, sizeof(kc));
	kc.cfg = *cfg;
	kc.c.claim = RF_KCLASS_ADMIN;
	if ((r = sock_connect(cfg, &fd)) != 0 || (r = hello(&kc, fd)) != 0)
		goto out;
	rf_kbuf_begin(&b, RF_KMSG_STATUS);
	if ((r = rf_kbuf_finish(&b)) != 0 ||
	    (r = exchange(fd, &b, &frame, &m, NULL)) != 0)
		goto out;
	st->pid = (pid_t)rf_kmsg_u32(&m);
	st->uid = (uid_t)rf_kmsg_u32(&m);
	st->cls = rf_kmsg_u8(&m);
	rf_kmsg_str(&m, tok);
	snprintf(st->token, sizeof(st->token), "%.63s", tok);
	st->tokens = rf_kmsg_u32(&m);
	st->clients = rf_kmsg_u32(&m);
	st->queue = rf_kmsg_u32(&m);
	st->requests = rf_kmsg_u64(&m);
	st->refused = rf_kmsg_u64(&m);
	r = rf_kmsg_end(&m);
out:
	if (fd >= 0)
		close(fd);
	free(frame);
	rf_kbuf_clear(&b);
	return r;
}
