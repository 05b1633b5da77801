/*
 * verify.c: offline verification of the whole record, checkpoints outside
 * the store, and export for independent verifiers.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/err.h>

#include "audit/audit.h"

#define CHECKPOINT_MAX 4096
#define SPKI_HEX_MAX 2048

struct sth_list {
	struct rf_audit_sth_head *v;
	size_t n, cap;
	int oversized;
	uint64_t oversized_size;
};

static int
sth_list_fn(void *arg, const struct rf_sth_rec *s)
{
	struct sth_list *l = arg;
	struct rf_audit_sth_head *nv;
	struct rf_audit_sth_head *h;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		if ((nv = reallocarray(l->v, l->cap, sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		l->v = nv;
	}
	h = &l->v[l->n++];
	memset(h, 0, sizeof(*h));
	h->size = s->size;
	h->time = s->time;
	memcpy(h->root, s->root, RF_HASH_LEN);
	snprintf(h->key_id, sizeof(h->key_id), "%s", s->key_id);
	if (s->siglen > RF_STH_SIG_MAX || s->sig == NULL) {
		if (!l->oversized) {
			l->oversized = 1;
			l->oversized_size = s->size;
		}
		h->siglen = 0;
	} else {
		memcpy(h->sig, s->sig, s->siglen);
		h->siglen = s->siglen;
	}
	return 0;
}

static int
load_sths(struct rf_store *st, struct sth_list *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	if ((r = rf_store_sth_foreach(st, sth_list_fn, l)) < 0)
		return r;
	return 0;
}

static int problem(struct rf_audit_report *rep, uint64_t index, const char *fmt,
    ...) RF_PRINTF(3, 4);

static int
problem(struct rf_audit_report *rep, uint64_t index, const char *fmt, ...)
{
	va_list ap;

	if (rep->problem[0] != '\0')
		return RF_ERR_AUDIT_TAMPERED; /* the first problem wins */
	va_start(ap, fmt);
	vsnprintf(rep->problem, sizeof(rep->problem), fmt, ap);
	va_end(ap);
	rep->index = index;
	return RF_ERR_AUDIT_TAMPERED;
}

/*
 * The streaming pass over the leaves runs on two threads. The store's
 * thread reads the rows, checks each leaf's canonical form in place
 * (rf_audit_leaf_check) and copies its data and stored hash into a batch;
 * the hashing thread takes the batches in order and, leaf by leaf, checks
 * the index, recomputes the leaf hash, takes the canonical verdict, grows
 * the tree and compares tree heads: the checks and the first problem of
 * the one-thread walk, in its order. Two batches: one filled while the
 * other is hashed. The hashing thread never touches the store (whose
 * handle only the caller's thread, holding the audit lock, uses).
 */
#define BATCH_LEAVES 2048
#define BATCH_BYTES (1 << 20) /* to start with; grows for larger leaves */

struct item {
	uint64_t index;		   /* as stored */
	int check;		   /* rf_audit_leaf_check, or 0 if not run */
	size_t off, len;	   /* data, in the batch's bytes */
	uint8_t hash[RF_HASH_LEN]; /* as stored */
};

struct batch {
	struct item it[BATCH_LEAVES];
	size_t n;
	uint8_t *bytes; /* malloc'd */
	size_t used, cap;
};

struct walk {
	/* Only the hashing thread, until it is joined. */
	struct rf_audit_report *rep;
	struct rf_merkle_acc acc;
	struct sth_list *sths;
	size_t next_sth; /* first STH whose size is not reached yet */
	uint64_t cp_size;
	int cp_want;
	uint8_t cp_root[RF_HASH_LEN];
	int cp_ok;
	/* Only the store's thread. */
	uint64_t next; /* index the next row should have */
	int fill;      /* batch being filled */
	int started;   /* the fields below are set up */
	int threaded;  /* 0: no hashing thread, batches hashed inline */
	pthread_t th;
	/* full, done, stop, err under mu; a full batch is the hasher's. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *b[2];
	int full[2]; /* handed to the hashing thread */
	int done;    /* no more batches will come */
	int stop;    /* the hashing thread stopped: a problem, or err */
	int err;     /* the hashing thread's result */
};

/* Compare every STH of the current size with the root so far. */
static int
check_sths_at(struct walk *w)
{
	uint8_t root[RF_HASH_LEN];
	struct rf_audit_sth_head *h;
	uint64_t prev;

	/* The root costs log2(n) node hashes: only at sizes that need it. */
	if (!(w->cp_want && w->cp_size == w->acc.n) &&
	    !(w->next_sth < w->sths->n &&
		w->sths->v[w->next_sth].size == w->acc.n))
		return 0;
	rf_merkle_acc_root(&w->acc, root);
	if (w->cp_want && w->cp_size == w->acc.n)
		w->cp_ok = memcmp(root, w->cp_root, RF_HASH_LEN) == 0;
	while (w->next_sth < w->sths->n &&
	    w->sths->v[w->next_sth].size == w->acc.n) {
		h = &w->sths->v[w->next_sth];
		if (memcmp(h->root, root, RF_HASH_LEN) != 0) {
			/* Another head of this size matched: this one is
			 * forged, not the leaves. */
			if (w->next_sth > 0 &&
			    w->sths->v[w->next_sth - 1].size == h->size)
				return problem(w->rep, UINT64_MAX,
				    "tree head at size %" PRIu64
				    " (time %" PRId64
				    ") does not match the leaves or the other "
				    "tree head of that size",
				    h->size, h->time);
			prev = w->next_sth > 0
			    ? w->sths->v[w->next_sth - 1].size
			    : 0;
			return problem(w->rep, prev,
			    "tree head at size %" PRIu64
			    " does not match the leaves: a leaf in [%" PRIu64
			    ", %" PRIu64 ") was modified or reordered",
			    h->size, prev, h->size);
		}
		w->next_sth++;
	}
	return 0;
}

/* The checks of one leaf, on the hashing thread. */
static int
hash_item(struct walk *w, const struct batch *b, const struct item *it)
{
	uint8_t h[RF_HASH_LEN];
	uint64_t i = w->acc.n;

	if (it->index != i) {
		if (it->index > i)
			return problem(
			    w->rep, i, "leaf %" PRIu64 " missing", i);
		return problem(w->rep, i,
		    "leaf %" PRIu64 " out of order (found index %" PRIu64 ")",
		    i, it->index);
	}
	rf_merkle_leaf_hash(b->bytes + it->off, it->len, h);
	if (memcmp(h, it->hash, RF_HASH_LEN) != 0)
		return problem(w->rep, i, "leaf %" PRIu64 " modified", i);
	if (it->check != 0) {
		if (it->check == RF_ERR_ALLOC)
			return it->check;
		return problem(w->rep, i,
		    "leaf %" PRIu64 " modified (not a canonical event or "
		    "its columns disagree with its data)",
		    i);
	}
	rf_merkle_acc_add(&w->acc, h);
	w->rep->leaves = w->acc.n;
	return check_sths_at(w);
}

static int
hash_batch(struct walk *w, const struct batch *b)
{
	size_t k;
	int r;

	for (k = 0; k < b->n; k++)
		if ((r = hash_item(w, b, &b->it[k])) != 0)
			return r;
	return 0;
}

static void *
hash_thread(void *arg)
{
	struct walk *w = arg;
	int cur = 0, r;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->full[cur] && !w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->full[cur])
			break; /* done, and every batch handed was hashed */
		pthread_mutex_unlock(&w->mu);
		r = hash_batch(w, w->b[cur]);
		pthread_mutex_lock(&w->mu);
		w->full[cur] = 0;
		pthread_cond_broadcast(&w->cv);
		if (r != 0) {
			w->stop = 1;
			w->err = r;
			break;
		}
		cur ^= 1;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/*
 * Hand the batch being filled to the hashing thread and wait until the
 * other one is free. 1 when the hashing thread has stopped.
 */
static int
hand_over(struct walk *w)
{
	int stop;

	if (!w->threaded) {
		if ((w->err = hash_batch(w, w->b[w->fill])) != 0)
			w->stop = 1;
		w->b[w->fill]->n = w->b[w->fill]->used = 0;
		return w->stop;
	}
	pthread_mutex_lock(&w->mu);
	w->full[w->fill] = 1;
	pthread_cond_broadcast(&w->cv);
	w->fill ^= 1;
	while (w->full[w->fill] && !w->stop)
		pthread_cond_wait(&w->cv, &w->mu);
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	w->b[w->fill]->n = w->b[w->fill]->used = 0;
	return stop;
}

/* On the store's thread: check in place, copy, hand over when full. */
static int
walk_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct walk *w = arg;
	struct batch *b = w->b[w->fill];
	struct item *it = &b->it[b->n];
	uint8_t *nb;
	size_t cap;
	int last;

	if (l->len > b->cap - b->used) {
		cap = b->cap;
		while (cap - b->used < l->len)
			cap *= 2;
		if ((nb = realloc(b->bytes, cap)) == NULL)
			return RF_ERR_ALLOC;
		b->bytes = nb;
		b->cap = cap;
	}
	it->index = l->index;
	it->off = b->used;
	it->len = l->len;
	if (l->len > 0)
		memcpy(b->bytes + b->used, l->data, l->len);
	b->used += l->len;
	memcpy(it->hash, l->hash, RF_HASH_LEN);
	/* A leaf with the wrong index or not canonical ends the walk. */
	last = l->index != w->next;
	it->check = last ? 0 : rf_audit_leaf_check(l);
	last = last || it->check != 0;
	w->next++;
	b->n++;
	if (b->n == BATCH_LEAVES || last)
		return hand_over(w) || last;
	return 0;
}

/* Start the hashing thread (or hash inline if it cannot start). */
static int
walk_start(struct walk *w)
{
	int i;

	for (i = 0; i < 2; i++) {
		if ((w->b[i] = calloc(1, sizeof(*w->b[i]))) == NULL ||
		    (w->b[i]->bytes = malloc(BATCH_BYTES)) == NULL)
			return RF_ERR_ALLOC;
		w->b[i]->cap = BATCH_BYTES;
	}
	if (pthread_mutex_init(&w->mu, NULL) != 0)
		return RF_ERR_INTERNAL;
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->mu);
		return RF_ERR_INTERNAL;
	}
	w->started = 1;
	w->threaded = pthread_create(&w->th, NULL, hash_thread, w) == 0;
	return 0;
}

/* Hand over what is left, wait for the hashing thread; its result. */
static int
walk_finish(struct walk *w)
{
	int stop;

	if (!w->started)
		return 0;
	pthread_mutex_lock(&w->mu);
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	if (!stop && w->b[w->fill]->n > 0)
		hand_over(w);
	if (w->threaded) {
		pthread_mutex_lock(&w->mu);
		w->done = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
		w->threaded = 0;
	}
	return w->err;
}

static void
walk_free(struct walk *w)
{
	int i;

	if (w->started) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
	}
	for (i = 0; i < 2; i++) {
		if (w->b[i] != NULL)
			free(w->b[i]->bytes);
		free(w->b[i]);
	}
}

static int
spki_for(struct rf_store *st, const char *key_id, uint8_t *spki, size_t spkimax,
    size_t *len)
{
	char name[96], hex[SPKI_HEX_MAX + 1];
	int r;

	snprintf(name, sizeof(name), "audit.spki.%s", key_id);
	if ((r = rf_store_meta_get(st, name, hex, sizeof(hex))) != 0)
		return r;
	return rf_unhex(hex, spki, spkimax, len);
}

/* Signatures, signer, and order of the tree heads. */
static int
check_sth_list(struct rf_store *st, struct sth_list *l, const char *pinned,
    struct rf_audit_report *rep)
{
	struct rf_audit_sth_head *h, *latest = NULL, *group_max = NULL;
	struct rf_key_rec kr;
	uint8_t spki[SPKI_HEX_MAX / 2];
	size_t i, spkilen;
	int r;

	for (i = 0; i < l->n; i++) {
		h = &l->v[i];
		if (h->siglen == 0)
			return problem(rep, UINT64_MAX,
			    "tree head at size %" PRIu64
			    " has no valid signature",
			    h->size);
		/* The key id kept outside this host, not the store's word. */
		if (pinned != NULL && strcmp(h->key_id, pinned) != 0)
			return problem(rep, UINT64_MAX,
			    "tree head at size %" PRIu64
			    " is signed by %s, not the pinned audit key %s",
			    h->size, h->key_id, pinned);
		r = rf_store_key_get(st, h->key_id, &kr);
		if (r == RF_ERR_NOT_FOUND ||
		    (r == 0 && strcmp(kr.purpose, "audit") != 0))
			return problem(rep, UINT64_MAX,
			    "tree head at size %" PRIu64
			    " is signed by %s, not an audit key",
			    h->size, h->key_id);
		if (r != 0)
			return r;
		r = spki_for(st, h->key_id, spki, sizeof(spki), &spkilen);
		if (r == RF_ERR_NOT_FOUND || r == RF_ERR_MALFORMED)
			return problem(rep, UINT64_MAX,
			    "tree head at size %" PRIu64
			    ": the public key of %s is missing or malformed",
			    h->size, h->key_id);
		if (r != 0)
			return r;
		r = rf_audit_sth_verify(h, spki, spkilen);
		ERR_clear_error();
		if (r == RF_ERR_SIGNATURE_INVALID || r == RF_ERR_MALFORMED)
			return problem(rep, UINT64_MAX,
			    "tree head at size %" PRIu64
			    " has an invalid signature",
			    h->size);
		if (r != 0)
			return r;
		/*
		 * Never shrinks: no tree head may be signed earlier than one
		 * of a smaller size. The list is ordered by size, so keep the
		 * latest time among strictly smaller sizes.
		 */
		if (i == 0 || h->size != l->v[i - 1].size) {
			if (group_max != NULL &&
			    (latest == NULL || group_max->time > latest->time))
				latest = group_max;
			group_max = NULL;
		}
		if (latest != NULL && latest->time > h->time)
			return problem(rep, UINT64_MAX,
			    "tree head at time %" PRId64
			    " shrinks the tree from size %" PRIu64
			    " to %" PRIu64,
			    latest->time, h->size, latest->size);
		if (group_max == NULL || h->time > group_max->time)
			group_max = h;
		rep->sths++;
	}
	return 0;
}

/*
 * "ringfence-audit-checkpoint v1\nsize N\nroot HEX\n", and for a
 * checkpoint that pins the audit key (audit watch) "key HEX\n" after it.
 */
int
rf_audit_checkpoint_parse_key(const uint8_t *buf, size_t len, uint64_t *size,
    uint8_t root[RF_HASH_LEN], char key_id[65])
{
	static const char head[] = "ringfence-audit-checkpoint v1\nsize ";
	char txt[CHECKPOINT_MAX + 1], hex[2 * RF_HASH_LEN + 1], *end;
	const char *p;
	unsigned long long sz;
	size_t rl, i;

	key_id[0] = '\0';
	if (len > CHECKPOINT_MAX || memchr(buf, '\0', len) != NULL)
		return RF_ERR_MALFORMED;
	memcpy(txt, buf, len);
	txt[len] = '\0';
	if (strncmp(txt, head, sizeof(head) - 1) != 0)
		return RF_ERR_MALFORMED;
	p = txt + sizeof(head) - 1;
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '\n'))
		return RF_ERR_MALFORMED;
	errno = 0;
	sz = strtoull(p, &end, 10);
	if (errno != 0 || strncmp(end, "\nroot ", 6) != 0)
		return RF_ERR_MALFORMED;
	p = end + 6;
	if (strlen(p) < 2 * RF_HASH_LEN + 1 || p[2 * RF_HASH_LEN] != '\n')
		return RF_ERR_MALFORMED;
	memcpy(hex, p, 2 * RF_HASH_LEN);
	hex[2 * RF_HASH_LEN] = '\0';
	if (rf_unhex(hex, root, RF_HASH_LEN, &rl) != 0 || rl != RF_HASH_LEN)
		return RF_ERR_MALFORMED;
	p += 2 * RF_HASH_LEN + 1;
	if (*p != '\0') {
		/* "key " 64 lower-case hex digits "\n", and nothing after. */
		if (strncmp(p, "key ", 4) != 0 || strlen(p) != 4 + 64 + 1 ||
		    p[4 + 64] != '\n')
			return RF_ERR_MALFORMED;
		for (i = 0; i < 64; i++)
			if (!((p[4 + i] >= '0' && p[4 + i] <= '9') ||
				(p[4 + i] >= 'a' && p[4 + i] <= 'f')))
				return RF_ERR_MALFORMED;
		memcpy(key_id, p + 4, 64);
		key_id[64] = '\0';
	}
	*size = sz;
	return 0;
}

int
rf_audit_checkpoint_parse(
    const uint8_t *buf, size_t len, uint64_t *size, uint8_t root[RF_HASH_LEN])
{
	char key_id[65];

	return rf_audit_checkpoint_parse_key(buf, len, size, root, key_id);
}

int
rf_audit_checkpoint_write(const char *path, uint64_t size,
    const uint8_t root[RF_HASH_LEN], const char *key_id)
{
	char txt[256], hex[2 * RF_HASH_LEN + 1];
	int n;

	rf_hex(root, RF_HASH_LEN, hex);
	n = snprintf(txt, sizeof(txt),
	    "ringfence-audit-checkpoint v1\nsize %" PRIu64 "\nroot %s\n%s%s%s",
	    size, hex, key_id != NULL ? "key " : "",
	    key_id != NULL ? key_id : "", key_id != NULL ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(txt))
		return rf_err_set(RF_ERR_ARG, "audit key id too long");
	/* A temporary file, fsync'd, renamed over the old one. */
	return rf_write_file(path, (const uint8_t *)txt, (size_t)n, 0644);
}

static int
verify_inner(struct rf_audit *a, const char *cp_path, int force_write,
    const char *pinned, struct rf_audit_report *rep)
{
	struct rf_store *st = rf_audit_store(a);
	struct sth_list sths;
	struct walk w;
	struct stat sb;
	uint8_t *cp = NULL, root[RF_HASH_LEN];
	char cp_key[65] = "";
	size_t cplen = 0, i;
	uint64_t n, maxsize = 0;
	int r = RF_ERR_INTERNAL, wr, cp_exists = 0;

	memset(rep, 0, sizeof(*rep));
	rep->index = UINT64_MAX;
	memset(&w, 0, sizeof(w));
	memset(&sths, 0, sizeof(sths));
	if ((r = load_sths(st, &sths)) != 0) {
		/* The store refuses a malformed tree head row. */
		if (r == RF_ERR_AUDIT_TAMPERED) {
			snprintf(rep->problem, sizeof(rep->problem), "%s",
			    rf_err_msg(r));
			r = rf_err_set(r, "audit: %s", rep->problem);
		}
		goto out;
	}
	if ((r = rf_store_leaf_count(st, &n)) != 0)
		goto out;
	w.rep = rep;
	w.sths = &sths;
	rf_merkle_acc_init(&w.acc);
	if (cp_path != NULL && !force_write) {
		if (stat(cp_path, &sb) == 0) {
			cp_exists = 1;
			if ((r = rf_read_file(
				 cp_path, CHECKPOINT_MAX, &cp, &cplen)) != 0)
				goto out;
			if (rf_audit_checkpoint_parse_key(cp, cplen, &w.cp_size,
				w.cp_root, cp_key) != 0) {
				r = rf_err_set(RF_ERR_MALFORMED,
				    "%s is not an audit checkpoint", cp_path);
				goto out;
			}
			w.cp_want = 1;
		} else if (errno != ENOENT) {
			r = rf_err_set(
			    RF_ERR_IO, "%s: %s", cp_path, strerror(errno));
			goto out;
		}
	}
	/* A checkpoint that pins the audit key pins it here too. */
	if (pinned == NULL && cp_key[0] != '\0')
		pinned = cp_key;
	for (i = 0; i < sths.n; i++)
		if (sths.v[i].size > maxsize)
			maxsize = sths.v[i].size;
	/* Tree heads of size 0 and a checkpoint of size 0. */
	if ((r = check_sths_at(&w)) != 0)
		goto out;
	if ((r = walk_start(&w)) != 0)
		goto out;
	r = rf_store_leaf_foreach(st, 0, INT64_MAX, walk_fn, &w);
	/* The hashing thread's results are read only after this. */
	if ((wr = walk_finish(&w)) != 0 && wr != RF_ERR_AUDIT_TAMPERED) {
		r = wr;
		goto out;
	}
	if (r == RF_ERR_AUDIT_TAMPERED && rep->problem[0] == '\0')
		problem(rep, w.acc.n,
		    "leaf %" PRIu64 " modified (its stored hash is malformed)",
		    w.acc.n);
	else if (r < 0 && rep->problem[0] == '\0')
		goto out;
	if (rep->problem[0] == '\0' && w.acc.n < n)
		problem(rep, w.acc.n, "leaf %" PRIu64 " missing", w.acc.n);
	if (rep->problem[0] == '\0' && w.acc.n < maxsize)
		problem(rep, w.acc.n,
		    "leaf %" PRIu64 " missing: the record was truncated below "
		    "the tree head at size %" PRIu64,
		    w.acc.n, maxsize);
	if (rep->problem[0] == '\0' &&
	    (r = check_sth_list(st, &sths, pinned, rep)) != 0 &&
	    r != RF_ERR_AUDIT_TAMPERED)
		goto out;
	if (rep->problem[0] == '\0' && w.cp_want) {
		if (w.cp_size > w.acc.n)
			problem(rep, w.acc.n,
			    "leaf %" PRIu64 " missing: the record no longer "
			    "reaches the checkpoint at size %" PRIu64,
			    w.acc.n, w.cp_size);
		else if (!w.cp_ok)
			problem(rep, UINT64_MAX,
			    "the record does not extend the checkpoint at "
			    "size %" PRIu64 " (a leaf below it was modified)",
			    w.cp_size);
	}
	if (rep->problem[0] != '\0') {
		r = rf_err_set(
		    RF_ERR_AUDIT_TAMPERED, "audit: %s", rep->problem);
		goto out;
	}
	if (cp_path != NULL && (force_write || !cp_exists)) {
		rf_merkle_acc_root(&w.acc, root);
		if ((r = rf_audit_checkpoint_write(
			 cp_path, w.acc.n, root, pinned)) != 0)
			goto out;
		rep->checkpoint_new = 1;
	}
	r = 0;
out:
	walk_free(&w); /* the hashing thread, if any, was joined above */
	free(cp);
	free(sths.v);
	return r;
}

static int
verify_unlocked(struct rf_audit *a, const char *checkpoint_path,
    const char *pinned, struct rf_audit_report *rep)
{
	return verify_inner(a, checkpoint_path, 0, pinned, rep);
}

static int
checkpoint_unlocked(
    struct rf_audit *a, const char *path, struct rf_audit_report *rep)
{
	if (path == NULL)
		return rf_err_set(RF_ERR_ARG, "checkpoint needs a file name");
	return verify_inner(a, path, 1, NULL, rep);
}

/* Export: one JSON object per line (docs/audit-format.md). */
static int
put_line(FILE *f, json_t *o)
{
	char *txt;
	int r = 0;

	if (o == NULL)
		return RF_ERR_ALLOC;
	if ((txt = json_dumps(o,
		 JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)) == NULL) {
		json_decref(o);
		return RF_ERR_ALLOC;
	}
	if (fputs(txt, f) == EOF || fputc('\n', f) == EOF)
		r = rf_err_set(RF_ERR_IO, "export: %s", strerror(errno));
	free(txt);
	json_decref(o);
	return r;
}

struct export_ctx {
	FILE *f;
	int err;
};

static int
export_leaf_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct export_ctx *x = arg;
	char hex[2 * RF_HASH_LEN + 1], *data;
	int r;

	if (l->len > RF_AUDIT_LEAF_MAX * 2 ||
	    (data = malloc(2 * l->len + 1)) == NULL) {
		x->err = RF_ERR_ALLOC;
		return 1;
	}
	rf_hex(l->data, l->len, data);
	rf_hex(l->hash, RF_HASH_LEN, hex);
	r = put_line(x->f,
	    json_pack("{s:s, s:I, s:I, s:s, s:s}", "kind", "leaf", "index",
		(json_int_t)l->index, "time", (json_int_t)l->time, "data_hex",
		data, "hash", hex));
	free(data);
	if (r != 0) {
		x->err = r;
		return 1;
	}
	return 0;
}

static int
export_unlocked(struct rf_audit *a, FILE *f)
{
	struct rf_store *st = rf_audit_store(a);
	struct sth_list sths;
	struct export_ctx x = {f, 0};
	char root[2 * RF_HASH_LEN + 1], *sig = NULL, *spki = NULL;
	uint8_t spkib[SPKI_HEX_MAX / 2];
	size_t i, spkilen;
	uint64_t n;
	int r = RF_ERR_INTERNAL;

	memset(&sths, 0, sizeof(sths));
	if ((r = rf_store_leaf_count(st, &n)) != 0 ||
	    (r = load_sths(st, &sths)) != 0)
		goto out;
	if ((r = put_line(f,
		 json_pack("{s:s, s:i, s:I, s:I}", "format",
		     "ringfence-audit-export", "version", 1, "leaves",
		     (json_int_t)n, "sths", (json_int_t)sths.n))) != 0)
		goto out;
	if ((r = rf_store_leaf_foreach(st, 0, n, export_leaf_fn, &x)) < 0)
		goto out;
	if (x.err != 0) {
		r = x.err;
		goto out;
	}
	if ((sig = malloc(2 * RF_STH_SIG_MAX + 1)) == NULL ||
	    (spki = malloc(SPKI_HEX_MAX + 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < sths.n; i++) {
		rf_hex(sths.v[i].root, RF_HASH_LEN, root);
		rf_hex(sths.v[i].sig, sths.v[i].siglen, sig);
		spki[0] = '\0';
		if (spki_for(st, sths.v[i].key_id, spkib, sizeof(spkib),
			&spkilen) == 0)
			rf_hex(spkib, spkilen, spki);
		rf_err_clear();
		if ((r = put_line(f,
			 json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s}",
			     "kind", "sth", "size", (json_int_t)sths.v[i].size,
			     "time", (json_int_t)sths.v[i].time, "root", root,
			     "key_id", sths.v[i].key_id, "sig", sig, "spki",
			     spki))) != 0)
			goto out;
	}
	if (fflush(f) != 0) {
		r = rf_err_set(RF_ERR_IO, "export: %s", strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(sig);
	free(spki);
	free(sths.v);
	return r;
}

int
rf_audit_verify(struct rf_audit *a, const char *checkpoint_path,
    struct rf_audit_report *rep)
{
	return rf_audit_verify_key(a, checkpoint_path, NULL, rep);
}

int
rf_audit_verify_key(struct rf_audit *a, const char *checkpoint_path,
    const char *audit_key_id, struct rf_audit_report *rep)
{
	int r;

	rf_audit_lock(a);
	r = verify_unlocked(a, checkpoint_path, audit_key_id, rep);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_key_spki_hex(
    struct rf_audit *a, const char *key_id, char *hex, size_t max)
{
	char name[96];
	int r;

	snprintf(name, sizeof(name), "audit.spki.%s", key_id);
	rf_audit_lock(a);
	r = rf_store_meta_get(rf_audit_store(a), name, hex, max);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_checkpoint(
    struct rf_audit *a, const char *path, struct rf_audit_report *rep)
{
	int r;

	rf_audit_lock(a);
	r = checkpoint_unlocked(a, path, rep);
	rf_audit_unlock(a);
	return r;
}

int
rf_audit_export(struct rf_audit *a, FILE *f)
{
	int r;

	rf_audit_lock(a);
	r = export_unlocked(a, f);
	rf_audit_unlock(a);
	return r;
}
