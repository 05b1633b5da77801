/*
 * seen.c: the detectors' baselines (connector_seen) as a batch of events
 * reads and writes them (connector.h, rf_seen_*). Each row a batch touches
 * is read once, changed in memory and written once at rf_seen_flush, so
 * that a batch of assertions for the same connections costs one write per
 * baseline, not one per assertion and detector. Every read answers what
 * the store would answer had each change been written at once.
 */
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"

#define SEEN_CAP 1024		     /* rows held; a power of two */
#define SEEN_FULL (SEEN_CAP * 3 / 4) /* then written and forgotten */
#define SEEN_COUNTS 16		     /* store counts held per batch */

struct seen_row {
	char kind[16];
	char key[320];
	struct rf_seen_rec v, orig; /* now, and as the store had it */
	int used, exists, orig_exists, dirty;
};

/*
 * A count the store answered (rf_store_seen_count) in this batch: the
 * store's rows do not move until rf_seen_flush (the caller's transaction
 * holds the write lock; only the flush writes), so the same question is
 * answered from here, and the rows changed here correct it as before.
 */
struct seen_count {
	char kind[16];
	char prefix[320];
	int64_t since, n;
};

struct rf_seen {
	struct rf_store *st;
	size_t ncounts, nextcount;
	struct seen_count counts[SEEN_COUNTS];
	size_t n;
	size_t order[SEEN_CAP]; /* the used slots */
	struct seen_row rows[SEEN_CAP];
};

int
rf_seen_new(struct rf_store *st, struct rf_seen **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return RF_ERR_ALLOC;
	(*out)->st = st;
	return 0;
}

void
rf_seen_free(struct rf_seen *b)
{
	free(b);
}

void
rf_seen_drop(struct rf_seen *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		b->rows[b->order[i]].used = 0;
	b->n = 0;
	b->ncounts = b->nextcount = 0;
}

int
rf_seen_flush(struct rf_seen *b)
{
	struct seen_row *w;
	size_t i;
	int r = 0;

	for (i = 0; i < b->n && r == 0; i++) {
		w = &b->rows[b->order[i]];
		if (w->dirty && w->exists)
			r = rf_store_seen_put(b->st, w->kind, w->key, &w->v);
	}
	rf_seen_drop(b);
	return r;
}

/* FNV-1a over kind and key. */
static size_t
slot_of(const char *kind, const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	const char *s;

	for (s = kind; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (s = key; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return (size_t)(h & (SEEN_CAP - 1));
}

/* The row (kind, key), read from the store the first time. */
static int
row(struct rf_seen *b, const char *kind, const char *key, struct seen_row **out)
{
	struct seen_row *w;
	size_t i;
	int r;

	*out = NULL;
	if (strlen(kind) >= sizeof(w->kind) || strlen(key) >= sizeof(w->key))
		return rf_err_set(RF_ERR_ARG, "a baseline key is too long");
	for (i = slot_of(kind, key);; i = (i + 1) & (SEEN_CAP - 1)) {
		w = &b->rows[i];
		if (!w->used)
			break;
		if (strcmp(w->kind, kind) == 0 && strcmp(w->key, key) == 0) {
			*out = w;
			return 0;
		}
	}
	if (b->n >= SEEN_FULL) {
		/* Full: what is held goes to the store, which then answers. */
		if ((r = rf_seen_flush(b)) != 0)
			return r;
		return row(b, kind, key, out);
	}
	memset(w, 0, sizeof(*w));
	memcpy(w->kind, kind, strlen(kind) + 1);
	memcpy(w->key, key, strlen(key) + 1);
	r = rf_store_seen_row(b->st, kind, key, &w->orig);
	if (r != 0 && r != RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	w->orig_exists = w->exists = r == 0;
	w->v = w->orig;
	w->used = 1;
	b->order[b->n++] = i;
	*out = w;
	return 0;
}

int
rf_seen_get(struct rf_seen *b, const char *kind, const char *key,
    int64_t *count, int64_t *first)
{
	struct seen_row *w;
	int r;

	*count = 0;
	if (first != NULL)
		*first = 0;
	if ((r = row(b, kind, key, &w)) != 0 || !w->exists)
		return r;
	*count = w->v.count;
	if (first != NULL)
		*first = w->v.first;
	return 0;
}

int
rf_seen_bump(struct rf_seen *b, const char *kind, const char *key, int64_t add,
    int64_t now, int64_t *before)
{
	struct seen_row *w;
	int r;

	if ((r = row(b, kind, key, &w)) != 0)
		return r;
	if (before != NULL)
		*before = w->exists && w->v.first != 0 ? w->v.count : -1;
	if (w->exists) {
		w->v.count += add;
	} else {
		w->v.first = now;
		w->v.count = add;
		w->exists = 1;
	}
	w->v.last = now;
	w->dirty = 1;
	return 0;
}

int
rf_seen_max(struct rf_seen *b, const char *kind, const char *key, int64_t v,
    int64_t now)
{
	struct seen_row *w;
	int r;

	if ((r = row(b, kind, key, &w)) != 0)
		return r;
	if (!w->exists) {
		w->v.first = now;
		w->v.count = v;
		w->exists = 1;
	} else if (v > w->v.count) {
		w->v.count = v;
	}
	w->v.last = now;
	w->dirty = 1;
	return 0;
}

int
rf_seen_set(struct rf_seen *b, const char *kind, const char *key, int64_t v,
    int64_t now)
{
	struct seen_row *w;
	int r;

	if ((r = row(b, kind, key, &w)) != 0)
		return r;
	w->v.first = w->v.last = now;
	w->v.count = v;
	w->exists = 1;
	w->dirty = 1;
	return 0;
}

/* The store's count of (kind, prefix, since), asked once a batch. */
static int
store_count(struct rf_seen *b, const char *kind, const char *prefix,
    int64_t since, int64_t *n)
{
	struct seen_count *c;
	size_t i;
	int r;

	for (i = 0; i < b->ncounts; i++) {
		c = &b->counts[i];
		if (c->since == since && strcmp(c->kind, kind) == 0 &&
		    strcmp(c->prefix, prefix) == 0) {
			*n = c->n;
			return 0;
		}
	}
	if ((r = rf_store_seen_count(b->st, kind, prefix, since, n)) != 0)
		return r;
	/* Longer questions than an entry holds are asked each time. */
	if (strlen(kind) >= sizeof(c->kind) ||
	    strlen(prefix) >= sizeof(c->prefix))
		return 0;
	if (b->ncounts < SEEN_COUNTS) {
		c = &b->counts[b->ncounts++];
	} else {
		c = &b->counts[b->nextcount];
		b->nextcount = (b->nextcount + 1) % SEEN_COUNTS;
	}
	memcpy(c->kind, kind, strlen(kind) + 1);
	memcpy(c->prefix, prefix, strlen(prefix) + 1);
	c->since = since;
	c->n = *n;
	return 0;
}

int
rf_seen_count(struct rf_seen *b, const char *kind, const char *prefix,
    int64_t since, int64_t *n)
{
	const struct seen_row *w;
	size_t i, pl = strlen(prefix);
	int r;

	/* The store's count, corrected by the rows changed here. */
	if ((r = store_count(b, kind, prefix, since, n)) != 0)
		return r;
	for (i = 0; i < b->n; i++) {
		w = &b->rows[b->order[i]];
		if (!w->dirty || strcmp(w->kind, kind) != 0 ||
		    strncmp(w->key, prefix, pl) != 0)
			continue;
		*n -= w->orig_exists && w->orig.last >= since;
		*n += w->exists && w->v.last >= since;
	}
	return 0;
}
