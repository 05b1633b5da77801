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

#include <openssl/evp.h>
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

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
rf_proof_parse(const char *s, size_t len, struct rf_proof *out)
{
	const char *dot1, *dot2, *end = s + len;
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
	sl = (size_t)(end - dot2 - 1);
	for (i = 0; i < sl; i++)
		if (dot2[1 + i] == '\0' || strchr(b64url, dot2[1 + i]) == NULL)
			break;
	if (sl == 0 || i < sl || sl > sizeof(out->sig) * 4 / 3 ||
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

struct rf_proof_guard {
	pthread_mutex_t lock;
	struct cert_ent certs[CERTS];
	struct seen gen[2]; /* [0] current */
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
	char msg[512], cn[128];
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
	if (pf.time < now - RF_PROOF_SKEW || pf.time > now + RF_PROOF_SKEW) {
		snprintf(why, whylen,
		    "the proof's time is %lld s from keyd's clock (at most "
		    "%d): "
		    "make a new one",
		    (long long)(pf.time - now), RF_PROOF_SKEW);
		return 1;
	}
	if ((ml = rf_proof_message(
		 purpose, subject, pf.time, pf.nonce, msg, sizeof(msg))) < 0)
		return ml;
	if ((r = cert_key(
		 g, st, ledger, cert_serial, now, &pub, cn, why, whylen)) != 0)
		return r;
	if (tenant != NULL && strcmp(cn, tenant) != 0) {
		EVP_PKEY_free(pub);
		snprintf(why, whylen,
		    "certificate %.40s is %.64s's, not %.64s's", cert_serial,
		    cn, tenant);
		return 1;
	}
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
