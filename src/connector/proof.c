/*
 * proof.c: a connector's proof of possession. keyd cannot see serve's TLS
 * handshakes, so a serve taken over could name any connector's
 * certificate. The connector therefore signs, with its own TLS key, a
 * fresh single-use statement of what it asks for; serve relays it and
 * keyd checks it against the connector's certificate, which it checks was
 * signed by an issuing key keyd made (its ledger). Without that key there
 * is no proof to relay, and a proof relayed once is not accepted again.
 *
 * Signed bytes: "ringfence-proof-v1\n" PURPOSE "\n" SUBJECT "\n" TIME "\n"
 * NONCE "\n"; sent as TIME "." NONCE "." base64url(signature).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "connector/connector.h"
#include "keys/keys.h"
#include "keys/ledger.h"
#include "keys/policy.h"
#include "store/store.h"

#define NONCE_MIN 16
#define NONCE_MAX 64
#define SIG_MAX 1024 /* an RSA-8192 signature */
#define CERTS 256    /* connector certificates kept verified */
#define SEEN_MIN 1024
#define WINDOW 1024 /* counts of a session accepted out of order */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 1 if the n bytes at s are base64url characters, and n > 0. */
static int
b64url_only(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(b64url, s[i]) == NULL)
			return 0;
	return n > 0;
}

/* The rest of a session's proof: its NONCE (out->nonce) is the count,
 * then MAC (mac to dot) and SID (after dot, to end). */
static int
parse_session(
    struct rf_proof *out, const char *mac, const char *dot, const char *end)
{
	size_t i, ml = (size_t)(dot - mac), il = (size_t)(end - dot - 1);

	if (strlen(out->nonce) != 16 || strspn(out->nonce, "0123456789") != 16)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": a session's COUNT must be 16 decimal digits");
	for (i = 0; i < 16; i++)
		out->count = out->count * 10 + (uint64_t)(out->nonce[i] - '0');
	if (out->count == 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": a session's COUNT starts at 1");
	if (ml != RF_PROOF_B64_32 || !b64url_only(mac, ml) ||
	    rf_b64url_decode(
		(const uint8_t *)mac, ml, out->sig, &out->siglen) != 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": a session's MAC must be %d characters of "
		    "base64url",
		    RF_PROOF_B64_32);
	if (il != RF_PROOF_SID_LEN || !b64url_only(dot + 1, il))
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": a session's SID must be %d characters of "
		    "base64url",
		    RF_PROOF_SID_LEN);
	memcpy(out->sid, dot + 1, il);
	out->sid[il] = '\0';
	return 0;
}

int
rf_proof_parse(const char *s, size_t len, struct rf_proof *out)
{
	const char *dot1, *dot2, *dot3, *end = s + len;
	size_t i, nl, sl;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > RF_PROOF_MAX)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\" must be TIME.NONCE.SIGNATURE of at most %d "
		    "characters",
		    RF_PROOF_MAX);
	if ((dot1 = memchr(s, '.', len)) == NULL ||
	    (dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1))) == NULL)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\" must be TIME.NONCE.SIGNATURE "
		    "(docs/connectors.md)");
	if (dot1 == s || dot1 - s > 12)
		return rf_err_set(
		    RF_ERR_MALFORMED, "\"proof\": TIME must be Unix seconds");
	for (i = 0; s + i < dot1; i++) {
		if (s[i] < '0' || s[i] > '9')
			return rf_err_set(RF_ERR_MALFORMED,
			    "\"proof\": TIME must be Unix seconds");
		out->time = out->time * 10 + (s[i] - '0');
	}
	nl = (size_t)(dot2 - dot1 - 1);
	if (nl < NONCE_MIN || nl > NONCE_MAX || strspn(dot1 + 1, b64url) < nl)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": NONCE must be %d to %d characters of A-Z a-z "
		    "0-9 _ -",
		    NONCE_MIN, NONCE_MAX);
	memcpy(out->nonce, dot1 + 1, nl);
	out->nonce[nl] = '\0';
	/* A session's proof: TIME.COUNT.MAC.SID. */
	if ((dot3 = memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) != NULL)
		return parse_session(out, dot2 + 1, dot3, end);
	sl = (size_t)(end - dot2 - 1);
	if (!b64url_only(dot2 + 1, sl) || sl > sizeof(out->sig) * 4 / 3 ||
	    rf_b64url_decode(
		(const uint8_t *)dot2 + 1, sl, out->sig, &out->siglen) != 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "\"proof\": SIGNATURE must be unpadded base64url");
	return 0;
}

int
rf_proof_message(const char *purpose, const char *subject, int64_t t,
    const char *nonce, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "ringfence-proof-v1\n%s\n%s\n%lld\n%s\n",
	    purpose, subject, (long long)t, nonce);

	if (n < 0 || (size_t)n >= outlen)
		return rf_err_set(RF_ERR_ARG, "proof message too long");
	return n;
}

/* The digest a key's proofs are made with: none for EdDSA. */
static const EVP_MD *
proof_md(EVP_PKEY *k)
{
	int id = EVP_PKEY_get_base_id(k);

	return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL
							      : EVP_sha256();
}

int
rf_proof_make(EVP_PKEY *key, const char *purpose, const char *subject,
    int64_t now, char *out, size_t outlen)
{
	uint8_t rnd[16], sig[SIG_MAX];
	char nonce[33], msg[512];
	EVP_MD_CTX *ctx;
	size_t sl = sizeof(sig), i;
	int ml, n, ok;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return rf_err_set(
		    RF_ERR_INTERNAL, "no random bytes for a nonce");
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	if ((ml = rf_proof_message(
		 purpose, subject, now, nonce, msg, sizeof(msg))) < 0)
		return ml;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return RF_ERR_ALLOC;
	ok = EVP_DigestSignInit(ctx, NULL, proof_md(key), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &sl, (const uint8_t *)msg, (size_t)ml) ==
		1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return rf_err_set(
		    RF_ERR_INTERNAL, "the connector key cannot sign its proof");
	n = snprintf(out, outlen, "%lld.%s.", (long long)now, nonce);
	if (n < 0 || (size_t)n + rf_b64url_len(sl) + 1 > outlen)
		return rf_err_set(RF_ERR_ARG, "proof too long");
	rf_b64url(sig, sl, out + n);
	return 0;
}

/* ---- Proof sessions: what both sides compute ---- */

/* 1 if s is n characters of base64url decoding to exactly 32 bytes. */
static int
b64url_32(const char *s, uint8_t out[32])
{
	uint8_t buf[RF_PROOF_B64_32];
	size_t n = 0;

	if (strlen(s) != RF_PROOF_B64_32 || !b64url_only(s, RF_PROOF_B64_32) ||
	    rf_b64url_decode((const uint8_t *)s, RF_PROOF_B64_32, buf, &n) !=
		0 ||
	    n != 32)
		return 0;
	memcpy(out, buf, 32);
	return 1;
}

/* X25519 of mine with the peer's raw public key: 0, or -1 (a key that
 * gives no secret, e.g. of small order). */
static int
x25519(EVP_PKEY *mine, const uint8_t peer[32], uint8_t shared[32])
{
	EVP_PKEY *p;
	EVP_PKEY_CTX *ctx = NULL;
	size_t n = 32;
	int ok;

	if ((p = EVP_PKEY_new_raw_public_key(
		 EVP_PKEY_X25519, NULL, peer, 32)) == NULL)
		return -1;
	ok = (ctx = EVP_PKEY_CTX_new(mine, NULL)) != NULL &&
	    EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, p) == 1 &&
	    EVP_PKEY_derive(ctx, shared, &n) == 1 && n == 32;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(p);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* base64url of k's raw X25519 public key. */
static int
x25519_pub(EVP_PKEY *k, char out[RF_PROOF_B64_32 + 1])
{
	uint8_t raw[32];
	size_t n = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != 32)
		return rf_err_set(RF_ERR_INTERNAL, "X25519: no public key");
	rf_b64url(raw, 32, out);
	return 0;
}

static void
hmac32(const uint8_t key[32], const char *msg, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	(void)HMAC(EVP_sha256(), key, 32, (const uint8_t *)msg, len, out, &n);
}

/* The session's MAC key, from the exchange and what names the session;
 * and the confirmation keyd sends with it. */
static int
session_key(const uint8_t shared[32], const char *cpub, const char *kpub,
    const char *sid, uint8_t key[32], char confirm[RF_PROOF_B64_32 + 1])
{
	char msg[160];
	uint8_t c[32];
	int n;

	n = snprintf(msg, sizeof(msg), "ringfence-session-v1\n%s\n%s\n%s\n",
	    cpub, kpub, sid);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return rf_err_set(RF_ERR_ARG, "proof session: names too long");
	hmac32(shared, msg, (size_t)n, key);
	n = snprintf(
	    msg, sizeof(msg), "ringfence-session-confirm-v1\n%s\n", sid);
	hmac32(key, msg, (size_t)n, c);
	rf_b64url(c, 32, confirm);
	OPENSSL_cleanse(msg, sizeof(msg));
	return 0;
}

int
rf_proof_session_ask(EVP_PKEY *key, int64_t now, EVP_PKEY **eph,
    char pub[RF_PROOF_B64_32 + 1], char *proof, size_t prooflen)
{
	int r;

	if ((*eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL)
		return rf_err_set(RF_ERR_INTERNAL, "X25519: no key");
	if ((r = x25519_pub(*eph, pub)) != 0 ||
	    (r = rf_proof_make(key, "session", pub, now, proof, prooflen)) !=
		0) {
		EVP_PKEY_free(*eph);
		*eph = NULL;
	}
	return r;
}

int
rf_proof_session_take(EVP_PKEY *eph, const char *pub, const char *sid,
    const char *kpub, const char *confirm, int64_t expires,
    struct rf_proof_session *s)
{
	uint8_t kraw[32], shared[32];
	char want[RF_PROOF_B64_32 + 1];
	int ok;

	memset(s, 0, sizeof(*s));
	if (strlen(pub) != RF_PROOF_B64_32)
		return rf_err_set(RF_ERR_ARG, "proof session: not its key");
	if (strlen(sid) != RF_PROOF_SID_LEN || !b64url_only(sid, strlen(sid)))
		return rf_err_set(RF_ERR_MALFORMED,
		    "the session's id is not %d characters of base64url",
		    RF_PROOF_SID_LEN);
	if (!b64url_32(kpub, kraw) || x25519(eph, kraw, shared) != 0)
		return rf_err_set(RF_ERR_MALFORMED,
		    "the session's key is not a usable X25519 key");
	if (session_key(shared, pub, kpub, sid, s->key, want) != 0) {
		OPENSSL_cleanse(shared, sizeof(shared));
		return RF_ERR_ARG;
	}
	OPENSSL_cleanse(shared, sizeof(shared));
	ok = strlen(confirm) == RF_PROOF_B64_32 &&
	    CRYPTO_memcmp(confirm, want, RF_PROOF_B64_32) == 0;
	if (!ok) {
		OPENSSL_cleanse(s->key, sizeof(s->key));
		return rf_err_set(RF_ERR_REFUSED,
		    "the session's confirmation does not hold: the answer is "
		    "not keyd's (is serve relaying it unchanged?)");
	}
	memcpy(s->sid, sid, RF_PROOF_SID_LEN + 1);
	s->expires = expires;
	return 0;
}

int
rf_proof_session_answer(EVP_PKEY *eph, const char *pub, const char *json,
    struct rf_proof_session *s)
{
	const char *v[3], *names[3] = {"session", "key", "confirm"};
	json_t *j;
	int i, r;

	memset(s, 0, sizeof(*s));
	if ((j = json_loads(json, 0, NULL)) == NULL)
		return rf_err_set(
		    RF_ERR_MALFORMED, "the proof session's answer is not JSON");
	for (i = 0; i < 3; i++)
		if ((v[i] = json_string_value(json_object_get(j, names[i]))) ==
		    NULL)
			v[i] = "";
	r = rf_proof_session_take(eph, pub, v[0], v[1], v[2],
	    (int64_t)json_integer_value(json_object_get(j, "expires")), s);
	json_decref(j);
	return r;
}

int
rf_proof_make_session(struct rf_proof_session *s, const char *purpose,
    const char *subject, int64_t now, char *out, size_t outlen)
{
	uint64_t count = __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
	char nonce[17], msg[512], mac[RF_PROOF_B64_32 + 1];
	uint8_t m[32];
	int ml, n;

	if (count > 9999999999999999ULL)
		return rf_err_set(
		    RF_ERR_STATE, "the proof session's count is spent");
	snprintf(nonce, sizeof(nonce), "%016llu", (unsigned long long)count);
	if ((ml = rf_proof_message(
		 purpose, subject, now, nonce, msg, sizeof(msg))) < 0)
		return ml;
	hmac32(s->key, msg, (size_t)ml, m);
	rf_b64url(m, 32, mac);
	n = snprintf(
	    out, outlen, "%lld.%s.%s.%s", (long long)now, nonce, mac, s->sid);
	if (n < 0 || (size_t)n >= outlen)
		return rf_err_set(RF_ERR_ARG, "proof too long");
	return 0;
}

/* ---- keyd's side ---- */

/* A connector certificate found good once: its key, CN and validity. */
struct cert_ent {
	char serial[41];
	char issuer_id[65]; /* its issuing key's id */
	char cn[128];
	int64_t not_before, not_after;
	EVP_PKEY *pub;
};

/* Proofs accepted, by SHA-256 (first 16 bytes) of what they sign: two
 * generations of open addressing, each kept RF_PROOF_SKEW * 2 seconds, so
 * that a proof stays known as long as its time is acceptable. */
struct seen {
	uint8_t (*h)[16];
	size_t cap, n;
};

/* A proof session keyd opened: id[0..1] its slot, the rest random; an
 * id of zeros is a free slot. */
struct session {
	uint8_t id[16];
	uint8_t key[32];
	char serial[41];
	int64_t expires;
	uint64_t top;		   /* the highest count accepted */
	uint64_t win[WINDOW / 64]; /* bit d: count top - d accepted */
};

struct rf_proof_guard {
	pthread_mutex_t lock;
	struct cert_ent certs[CERTS];
	struct session *sess; /* RF_PROOF_SESSIONS, once one is opened */
	struct seen gen[2];   /* [0] current */
	int64_t gen_start;
	/* rf_proof_guard_keep: each generation's file (proofs.0 the
	 * current one's, appended to), or fd -1. */
	char path[2][RF_PATH_MAX];
	int fd; /* or KEPT_PENDING: opened at the first check */
};

#define KEPT_PENDING (-2)

int
rf_proof_guard_new(struct rf_proof_guard **out)
{
	struct rf_proof_guard *g;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return RF_ERR_ALLOC;
	pthread_mutex_init(&g->lock, NULL);
	g->fd = -1;
	*out = g;
	return 0;
}

void
rf_proof_guard_free(struct rf_proof_guard *g)
{
	size_t i;

	if (g == NULL)
		return;
	for (i = 0; i < CERTS; i++)
		EVP_PKEY_free(g->certs[i].pub);
	free(g->gen[0].h);
	free(g->gen[1].h);
	if (g->sess != NULL) {
		OPENSSL_cleanse(g->sess, RF_PROOF_SESSIONS * sizeof(*g->sess));
		free(g->sess);
	}
	if (g->fd >= 0)
		close(g->fd);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static size_t
slot_of(const uint8_t h[16], size_t cap)
{
	uint64_t v;

	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (cap - 1));
}

static int
seen_has(const struct seen *s, const uint8_t h[16])
{
	size_t i;

	if (s->cap == 0)
		return 0;
	for (i = slot_of(h, s->cap); s->h[i][0] != 0;
	     i = (i + 1) & (s->cap - 1))
		if (memcmp(s->h[i], h, 16) == 0)
			return 1;
	return 0;
}

static int
seen_add(struct seen *s, const uint8_t h[16])
{
	struct seen big;
	size_t i, j;

	if (s->n + 1 > s->cap / 2) {
		big.cap = s->cap == 0 ? SEEN_MIN : s->cap * 2;
		big.n = 0;
		if ((big.h = calloc(big.cap, 16)) == NULL)
			return RF_ERR_ALLOC;
		for (i = 0; i < s->cap; i++)
			if (s->h[i][0] != 0) {
				for (j = slot_of(s->h[i], big.cap);
				     big.h[j][0] != 0;
				     j = (j + 1) & (big.cap - 1))
					;
				memcpy(big.h[j], s->h[i], 16);
				big.n++;
			}
		free(s->h);
		*s = big;
	}
	for (i = slot_of(h, s->cap); s->h[i][0] != 0;
	     i = (i + 1) & (s->cap - 1))
		;
	memcpy(s->h[i], h, 16);
	s->n++;
	return 0;
}

/*
 * The generations' files (rf_proof_guard_keep): proofs.0 the current
 * one's, proofs.1 the one before; each a run of 16-byte entries as seen
 * keeps them. A turn makes proofs.0 the new proofs.1.
 */
static int
kept_open(struct rf_proof_guard *g)
{
	if (g->fd >= 0)
		close(g->fd);
	if ((g->fd = open(g->path[0],
		 O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) <
	    0)
		return rf_err_set(RF_ERR_IO,
		    "keyd cannot keep the proofs it accepts in %s: %s",
		    g->path[0], strerror(errno));
	return 0;
}

static int
kept_turn(struct rf_proof_guard *g)
{
	if (rename(g->path[0], g->path[1]) != 0)
		return rf_err_set(RF_ERR_IO,
		    "keyd cannot turn the proofs it keeps (%s to %s): %s",
		    g->path[0], g->path[1], strerror(errno));
	return kept_open(g);
}

/* The entries of file path into s (a file that is not there: none). */
static int
kept_load(const char *path, struct seen *s)
{
	uint8_t h[16];
	FILE *f;
	int r = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return errno == ENOENT ? 0
				       : rf_err_set(RF_ERR_IO,
					     "keyd cannot read the proofs it "
					     "kept in %s: %s",
					     path, strerror(errno));
	/* A last entry cut short by a crash is no entry. */
	while (r == 0 && fread(h, sizeof(h), 1, f) == 1)
		if ((h[0] & 1) != 0 && !seen_has(s, h))
			r = seen_add(s, h);
	fclose(f);
	return r;
}

int
rf_proof_guard_keep(struct rf_proof_guard *g, const char *dir)
{
	size_t i;

	for (i = 0; i < 2; i++)
		if ((size_t)snprintf(g->path[i], sizeof(g->path[i]),
			"%s/proofs.%zu", dir, i) >= sizeof(g->path[i]))
			return rf_err_set(RF_ERR_ARG,
			    "keyd's folder name is too long: %.60s", dir);
	g->fd = KEPT_PENDING;
	return 0;
}

/*
 * At the first check (in keyd's process as its own user, once it has
 * dropped root): the entries kept before, both generations, become the
 * generation before now, rewritten as proofs.1; proofs.0 starts empty.
 * Each stays a whole generation more, past any proof's window.
 */
static int
kept_start(struct rf_proof_guard *g, int64_t now)
{
	struct seen *s = &g->gen[1];
	char tmp[RF_PATH_MAX + 8];
	size_t i;
	FILE *f;
	int r, ok;

	snprintf(tmp, sizeof(tmp), "%s.new", g->path[1]);
	if ((r = kept_load(g->path[0], s)) != 0 ||
	    (r = kept_load(g->path[1], s)) != 0)
		return r;
	if ((f = fopen(tmp, "wb")) == NULL)
		return rf_err_set(RF_ERR_IO, "keyd cannot write %s: %s", tmp,
		    strerror(errno));
	ok = 1;
	for (i = 0; i < s->cap && ok; i++)
		if (s->h[i][0] != 0)
			ok = fwrite(s->h[i], 16, 1, f) == 1;
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	if (fclose(f) != 0 || !ok || rename(tmp, g->path[1]) != 0) {
		r = rf_err_set(RF_ERR_IO, "keyd cannot write %s: %s",
		    g->path[1], strerror(errno));
		(void)unlink(tmp);
		return r;
	}
	g->gen_start = now;
	return kept_open(g);
}

/* 1 if h was accepted before; else remembers it (0) or an error. */
static int
once(struct rf_proof_guard *g, const uint8_t digest[32], int64_t now)
{
	uint8_t h[16];
	int r;

	memcpy(h, digest, 16);
	h[0] |= 1; /* a zero first byte marks an empty slot */
	pthread_mutex_lock(&g->lock);
	if (g->fd == KEPT_PENDING && (r = kept_start(g, now)) != 0)
		goto out;
	if (now - g->gen_start >= 2 * RF_PROOF_SKEW) {
		free(g->gen[1].h);
		g->gen[1] = g->gen[0];
		memset(&g->gen[0], 0, sizeof(g->gen[0]));
		g->gen_start = now;
		if (g->fd >= 0 && (r = kept_turn(g)) != 0)
			goto out;
	}
	if (seen_has(&g->gen[0], h) || seen_has(&g->gen[1], h))
		r = 1;
	else if ((r = seen_add(&g->gen[0], h)) == 0 && g->fd >= 0 &&
	    write(g->fd, h, sizeof(h)) != (ssize_t)sizeof(h))
		r = rf_err_set(RF_ERR_IO,
		    "keyd cannot record an accepted proof in %s: %s",
		    g->path[0], strerror(errno));
out:
	pthread_mutex_unlock(&g->lock);
	return r;
}

/* 1 if x's serial number is serial, the store's canonical form. */
static int
serial_is(X509 *x, const char *serial)
{
	char hex[41];

	return rf_ca_serial_str(X509_get0_serialNumber(x), hex) == 0 &&
	    strcmp(hex, serial) == 0;
}

/*
 * The connector certificate serial: from the store, signed by a key that
 * keyd's ledger says it made as an issuing key, of the connector profile
 * (clientAuth end entity, CN its tenant). e is filled (pub owned by e).
 * 1 with why set when it is none of that.
 */
static int
cert_load(struct rf_store *st, struct rf_ledger *ledger, const char *serial,
    struct cert_ent *e, char *why, size_t whylen)
{
	struct rf_cert_rec cr;
	struct rf_ca_rec ca;
	const unsigned char *p;
	X509 *x = NULL, *cx = NULL;
	const char *role;
	char id[65];
	int r = 1, cnl;

	memset(&cr, 0, sizeof(cr));
	memset(&ca, 0, sizeof(ca));
	memset(e, 0, sizeof(*e));
	if ((r = rf_store_cert_get(st, serial, &cr)) != 0 ||
	    (r = rf_store_ca_get(st, cr.issuer, &ca)) != 0) {
		if (r != RF_ERR_NOT_FOUND)
			goto out;
		rf_err_clear();
		snprintf(why, whylen,
		    "certificate %.40s or its issuer is not in the store",
		    serial);
		r = 1;
		goto out;
	}
	r = 1;
	p = ca.der;
	if ((cx = d2i_X509(NULL, &p, (long)ca.derlen)) == NULL ||
	    rf_keys_pub_id(X509_get0_pubkey(cx), id) != 0 ||
	    (role = rf_ledger_key_role(ledger, id)) == NULL ||
	    strcmp(role, "issuing") != 0) {
		rf_err_clear();
		snprintf(why, whylen,
		    "certificate %.40s's issuer is not an issuing key keyd "
		    "made",
		    serial);
		goto out;
	}
	p = cr.der;
	if ((x = d2i_X509(NULL, &p, (long)cr.derlen)) == NULL ||
	    !serial_is(x, serial) ||
	    X509_verify(x, X509_get0_pubkey(cx)) != 1) {
		snprintf(why, whylen,
		    "certificate %.40s is not signed by its issuer", serial);
		goto out;
	}
	cnl = X509_NAME_get_text_by_NID(
	    X509_get_subject_name(x), NID_commonName, e->cn, sizeof(e->cn));
	if (!rf_kpolicy_client_only(x) || cnl <= 0 ||
	    (size_t)cnl >= sizeof(e->cn) ||
	    !rf_kpolicy_connector_subject(X509_get_subject_name(x), e->cn)) {
		snprintf(why, whylen,
		    "certificate %.40s is not a connector's client "
		    "certificate",
		    serial);
		goto out;
	}
	e->not_before = rf_ca_asn1_secs(X509_get0_notBefore(x));
	e->not_after = rf_ca_asn1_secs(X509_get0_notAfter(x));
	if ((e->pub = X509_get_pubkey(x)) == NULL) {
		snprintf(why, whylen, "certificate %.40s has no key", serial);
		goto out;
	}
	snprintf(e->serial, sizeof(e->serial), "%s", serial);
	memcpy(e->issuer_id, id, sizeof(e->issuer_id));
	r = 0;
out:
	X509_free(x);
	X509_free(cx);
	rf_cert_rec_clear(&cr);
	rf_ca_rec_clear(&ca);
	return r;
}

/* The public key of connector certificate serial (a reference the caller
 * frees) and its CN, from g's cache or the store. */
static int
cert_key(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *serial, int64_t now, EVP_PKEY **pub,
    char cn[128], char *why, size_t whylen)
{
	struct cert_ent e, *c;
	size_t i, h = 5381;
	int r;

	for (i = 0; serial[i] != '\0'; i++)
		h = h * 33 + (unsigned char)serial[i];
	c = &g->certs[h % CERTS];
	pthread_mutex_lock(&g->lock);
	if (c->pub != NULL && strcmp(c->serial, serial) == 0) {
		e = *c;
		EVP_PKEY_up_ref(e.pub);
		pthread_mutex_unlock(&g->lock);
	} else {
		pthread_mutex_unlock(&g->lock);
		if ((r = cert_load(st, ledger, serial, &e, why, whylen)) != 0)
			return r;
		pthread_mutex_lock(&g->lock);
		EVP_PKEY_free(c->pub);
		*c = e;
		EVP_PKEY_up_ref(e.pub);
		pthread_mutex_unlock(&g->lock);
	}
	if (now < e.not_before - RF_PROOF_SKEW || now > e.not_after) {
		EVP_PKEY_free(e.pub);
		snprintf(
		    why, whylen, "certificate %.40s is not valid now", serial);
		return 1;
	}
	/* What keyd learnt since: each time, not kept with the entry. */
	if (rf_ledger_has(ledger, serial) ||
	    rf_ledger_key_retired(ledger, e.issuer_id)) {
		EVP_PKEY_free(e.pub);
		snprintf(why, whylen,
		    "certificate %.40s is revoked, or its issuing key is out "
		    "of service (keyd's ledger)",
		    serial);
		return 1;
	}
	memcpy(cn, e.cn, sizeof(e.cn));
	*pub = e.pub;
	return 0;
}

/* 1 with why when pf's time is more than RF_PROOF_SKEW from now. */
static int
proof_stale(const struct rf_proof *pf, int64_t now, char *why, size_t whylen)
{
	if (pf->time >= now - RF_PROOF_SKEW && pf->time <= now + RF_PROOF_SKEW)
		return 0;
	snprintf(why, whylen,
	    "the proof's time is %lld s from keyd's clock (at most %d): make "
	    "a new one",
	    (long long)(pf->time - now), RF_PROOF_SKEW);
	return 1;
}

/* cert_key, and the certificate's CN must be tenant (NULL: any); on a
 * refusal (1) or an error, *pub is NULL. */
static int
cert_key_of(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *serial, const char *tenant,
    int64_t now, EVP_PKEY **pub, char *why, size_t whylen)
{
	char cn[128];
	int r;

	*pub = NULL;
	if ((r = cert_key(g, st, ledger, serial, now, pub, cn, why, whylen)) !=
	    0)
		return r;
	if (tenant != NULL && strcmp(cn, tenant) != 0) {
		EVP_PKEY_free(*pub);
		*pub = NULL;
		snprintf(why, whylen,
		    "certificate %.40s is %.64s's, not %.64s's", serial, cn,
		    tenant);
		return 1;
	}
	return 0;
}

/* ---- keyd's proof sessions ---- */

/* Bit d of w becomes bit d + by (counts age as the top moves up). */
static void
window_shift(uint64_t w[WINDOW / 64], uint64_t by)
{
	size_t i, words = WINDOW / 64, wb = (size_t)(by / 64);
	unsigned bb = (unsigned)(by % 64);
	uint64_t v;

	if (by >= WINDOW) {
		memset(w, 0, words * sizeof(*w));
		return;
	}
	for (i = words; i-- > 0;) {
		v = 0;
		if (i >= wb) {
			v = w[i - wb] << bb;
			if (bb != 0 && i >= wb + 1)
				v |= w[i - wb - 1] >> (64 - bb);
		}
		w[i] = v;
	}
}

/* Take count c of session s: 0, or 1 if it was taken before or is older
 * than the window. */
static int
window_take(struct session *s, uint64_t c)
{
	uint64_t d;

	if (c > s->top) {
		window_shift(s->win, c - s->top);
		s->top = c;
		s->win[0] |= 1;
		return 0;
	}
	d = s->top - c;
	if (d >= WINDOW || ((s->win[d / 64] >> (d % 64)) & 1) != 0)
		return 1;
	s->win[d / 64] |= (uint64_t)1 << (d % 64);
	return 0;
}

/* The open session sid names, under g's lock; NULL if none. */
static struct session *
session_find(struct rf_proof_guard *g, const char *sid, int64_t now)
{
	uint8_t id[RF_PROOF_SID_LEN];
	struct session *s;
	size_t n = 0, slot;

	if (g->sess == NULL ||
	    rf_b64url_decode((const uint8_t *)sid, strlen(sid), id, &n) != 0 ||
	    n != 16)
		return NULL;
	slot = (size_t)id[0] << 8 | id[1];
	if (slot >= RF_PROOF_SESSIONS)
		return NULL;
	s = &g->sess[slot];
	if (CRYPTO_memcmp(s->id, id, 16) != 0)
		return NULL;
	if (s->expires <= now) { /* ended: its key goes now */
		OPENSSL_cleanse(s, sizeof(*s));
		return NULL;
	}
	return s;
}

/*
 * The slot a new session of serial takes, under g's lock: the earliest
 * ending of serial's own when it has RF_PROOF_SESSIONS_CERT; else a free
 * or ended one; else the one closest to its end.
 */
static size_t
session_slot(struct rf_proof_guard *g, const char *serial, int64_t now)
{
	size_t i, mine = 0, own = SIZE_MAX, any = SIZE_MAX, unused = SIZE_MAX;
	struct session *s;

	for (i = 0; i < RF_PROOF_SESSIONS; i++) {
		s = &g->sess[i];
		if (s->expires <= now) {
			if (unused == SIZE_MAX)
				unused = i;
			continue;
		}
		if (strcmp(s->serial, serial) == 0) {
			mine++;
			if (own == SIZE_MAX ||
			    s->expires < g->sess[own].expires)
				own = i;
		}
		if (any == SIZE_MAX || s->expires < g->sess[any].expires)
			any = i;
	}
	if (mine >= RF_PROOF_SESSIONS_CERT)
		return own;
	return unused != SIZE_MAX ? unused : any;
}

int
rf_proof_session_open(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *cert_serial, const char *pub,
    const uint8_t *proof, size_t len, int64_t now, struct rf_proof_opened *out,
    char *why, size_t whylen)
{
	uint8_t cpub[32], shared[32], id[16];
	struct session *s;
	EVP_PKEY *mine = NULL;
	size_t slot;
	int r;

	memset(out, 0, sizeof(*out));
	memset(shared, 0, sizeof(shared));
	if (!b64url_32(pub, cpub)) {
		snprintf(why, whylen,
		    "\"key\" must be an X25519 public key: %d characters of "
		    "base64url",
		    RF_PROOF_B64_32);
		return 1;
	}
	/* The connector's signed proof for this key (each proof once). */
	if ((r = rf_proof_check(g, st, ledger, cert_serial, NULL, "session",
		 pub, proof, len, now, why, whylen)) != 0)
		return r;
	if ((mine = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL)
		return rf_err_set(RF_ERR_INTERNAL, "X25519: no key");
	if ((r = x25519_pub(mine, out->pub)) != 0)
		goto out;
	if (x25519(mine, cpub, shared) != 0) {
		snprintf(
		    why, whylen, "\"key\" is not a usable X25519 public key");
		r = 1;
		goto out;
	}
	if (RAND_bytes(id + 2, sizeof(id) - 2) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "no random bytes");
		goto out;
	}
	pthread_mutex_lock(&g->lock);
	if (g->sess == NULL &&
	    (g->sess = calloc(RF_PROOF_SESSIONS, sizeof(*g->sess))) == NULL) {
		pthread_mutex_unlock(&g->lock);
		r = RF_ERR_ALLOC;
		goto out;
	}
	slot = session_slot(g, cert_serial, now);
	s = &g->sess[slot];
	memset(s, 0, sizeof(*s));
	id[0] = (uint8_t)(slot >> 8);
	id[1] = (uint8_t)slot;
	memcpy(s->id, id, sizeof(id));
	rf_b64url(id, sizeof(id), out->sid);
	if ((r = session_key(
		 shared, pub, out->pub, out->sid, s->key, out->confirm)) != 0) {
		OPENSSL_cleanse(s, sizeof(*s));
		pthread_mutex_unlock(&g->lock);
		goto out;
	}
	snprintf(s->serial, sizeof(s->serial), "%s", cert_serial);
	s->expires = out->expires = now + RF_PROOF_SESSION_TTL;
	pthread_mutex_unlock(&g->lock);
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_PKEY_free(mine);
	return r;
}

/*
 * A session's proof: for an assertion only; in the window of a signed
 * one; a session keyd opened for this certificate, which still passes
 * every check (cert_key: valid, not revoked, its issuer in service; its
 * CN tenant); the MAC over the same bytes a signature covers; each count
 * once.
 */
static int
session_check(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *cert_serial, const char *tenant,
    const char *purpose, const char *subject, const struct rf_proof *pf,
    int64_t now, char *why, size_t whylen)
{
	struct session *s;
	EVP_PKEY *pub = NULL;
	uint8_t key[32], mac[32], id[16];
	char msg[512];
	int ml, r;

	if (strcmp(purpose, "assert") != 0) {
		snprintf(why, whylen,
		    "a session's proof is for assertions only: sign a %s's "
		    "proof with the connector's key",
		    purpose);
		return 1;
	}
	if (proof_stale(pf, now, why, whylen))
		return 1;
	if ((ml = rf_proof_message(
		 purpose, subject, pf->time, pf->nonce, msg, sizeof(msg))) < 0)
		return ml;
	pthread_mutex_lock(&g->lock);
	if ((s = session_find(g, pf->sid, now)) == NULL ||
	    strcmp(s->serial, cert_serial) != 0) {
		pthread_mutex_unlock(&g->lock);
		snprintf(why, whylen,
		    RF_PROOF_SESSION_UNKNOWN
		    ": proof session %s is not open for certificate %.40s "
		    "(it ended, or keyd restarted): open a new one",
		    pf->sid, cert_serial);
		return 1;
	}
	memcpy(key, s->key, sizeof(key));
	memcpy(id, s->id, sizeof(id));
	pthread_mutex_unlock(&g->lock);
	r = cert_key_of(
	    g, st, ledger, cert_serial, tenant, now, &pub, why, whylen);
	EVP_PKEY_free(pub);
	if (r == 0) {
		hmac32(key, msg, (size_t)ml, mac);
		if (pf->siglen != 32 || CRYPTO_memcmp(mac, pf->sig, 32) != 0) {
			snprintf(why, whylen,
			    "the proof does not verify with session %s's key "
			    "for %s %.130s",
			    pf->sid, purpose, subject);
			r = 1;
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	if (r != 0)
		return r;
	pthread_mutex_lock(&g->lock);
	s = session_find(g, pf->sid, now);
	if (s == NULL || CRYPTO_memcmp(s->id, id, 16) != 0)
		r = 2; /* ended meanwhile */
	else if (window_take(s, pf->count) != 0)
		r = 1;
	pthread_mutex_unlock(&g->lock);
	if (r == 2)
		snprintf(why, whylen,
		    RF_PROOF_SESSION_UNKNOWN
		    ": proof session %s ended while its proof was checked: "
		    "open a new one",
		    pf->sid);
	else if (r == 1)
		snprintf(why, whylen,
		    "this proof was used before, or its count is %d or more "
		    "behind the session's newest: each is accepted once",
		    WINDOW);
	return r != 0 ? 1 : 0;
}

int
rf_proof_check(struct rf_proof_guard *g, struct rf_store *st,
    struct rf_ledger *ledger, const char *cert_serial, const char *tenant,
    const char *purpose, const char *subject, const uint8_t *proof, size_t len,
    int64_t now, char *why, size_t whylen)
{
	struct rf_proof pf;
	uint8_t dig[32];
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *ctx = NULL;
	char msg[512];
	int ml, r, ok;

	if (ledger == NULL) {
		snprintf(why, whylen, "keyd has no ledger to check it with");
		return 1;
	}
	if (rf_proof_parse((const char *)proof, len, &pf) != 0) {
		snprintf(why, whylen, "%s", rf_err_msg(RF_ERR_MALFORMED));
		rf_err_clear();
		return 1;
	}
	if (pf.sid[0] != '\0')
		return session_check(g, st, ledger, cert_serial, tenant,
		    purpose, subject, &pf, now, why, whylen);
	if (proof_stale(&pf, now, why, whylen))
		return 1;
	if ((ml = rf_proof_message(
		 purpose, subject, pf.time, pf.nonce, msg, sizeof(msg))) < 0)
		return ml;
	if ((r = cert_key_of(g, st, ledger, cert_serial, tenant, now, &pub, why,
		 whylen)) != 0)
		return r;
	ok = (ctx = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, proof_md(pub), NULL, pub) == 1 &&
	    EVP_DigestVerify(
		ctx, pf.sig, pf.siglen, (const uint8_t *)msg, (size_t)ml) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	if (!ok) {
		snprintf(why, whylen,
		    "the proof does not verify with certificate %.40s's key "
		    "for %s %.130s",
		    cert_serial, purpose, subject);
		return 1;
	}
	if (EVP_Digest(msg, (size_t)ml, dig, NULL, EVP_sha256(), NULL) != 1)
		return rf_err_set(RF_ERR_INTERNAL, "SHA-256 failed");
	if ((r = once(g, dig, now)) == 1)
		snprintf(why, whylen,
		    "this proof was used before: each is accepted once");
	return r;
}
