/*
 * limits.c: token buckets per connection and per connector, in memory (a
 * restart refills them: the burst is sized for restarts anyway). One
 * chained hash table under one lock; buckets are never removed (one per
 * connection and connector: bounded by the store's size).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"

#define NBUCKETS 4096

struct bucket {
	struct bucket *next;
	double tokens;
	uint64_t at_ms;
	char key[];
};

struct rf_limits {
	pthread_mutex_t lock;
	struct bucket *b[NBUCKETS];
};

int
rf_limits_new(struct rf_limits **out)
{
	struct rf_limits *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l);
		return RF_ERR_INTERNAL;
	}
	*out = l;
	return 0;
}

void
rf_limits_free(struct rf_limits *l)
{
	struct bucket *b, *n;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < NBUCKETS; i++)
		for (b = l->b[i]; b != NULL; b = n) {
			n = b->next;
			free(b);
		}
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* FNV-1a. */
static size_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % NBUCKETS;
}

int
rf_limits_renewal(struct rf_limits *l, const struct rf_config *cfg,
    const char *connector, int64_t now, int *retry_after)
{
	char key[80];

	snprintf(key, sizeof(key), "r:%.64s", connector);
	return rf_limits_take(l, key, cfg->connector_renewals / 24.0,
	    cfg->connector_renewals, (uint64_t)now * 1000, retry_after);
}

void
rf_limits_renewal_back(
    struct rf_limits *l, const struct rf_config *cfg, const char *connector)
{
	char key[80];

	if (cfg->connector_renewals <= 0)
		return;
	snprintf(key, sizeof(key), "r:%.64s", connector);
	rf_limits_give(l, key, cfg->connector_renewals);
}

void
rf_limits_give(struct rf_limits *l, const char *key, double burst)
{
	struct bucket *b;

	pthread_mutex_lock(&l->lock);
	for (b = l->b[hash(key)]; b != NULL; b = b->next)
		if (strcmp(b->key, key) == 0) {
			b->tokens =
			    b->tokens + 1.0 > burst ? burst : b->tokens + 1.0;
			break;
		}
	pthread_mutex_unlock(&l->lock);
}

int
rf_limits_take(struct rf_limits *l, const char *key, double per_hour,
    double burst, uint64_t now_ms, int *retry_after)
{
	struct bucket *b;
	double rate = per_hour / 3600000.0; /* tokens per ms */
	size_t h = hash(key), kl = strlen(key);
	int r = 0;

	*retry_after = 0;
	if (per_hour <= 0 || burst < 1)
		return 0; /* no limit set */
	pthread_mutex_lock(&l->lock);
	for (b = l->b[h]; b != NULL; b = b->next)
		if (strcmp(b->key, key) == 0)
			break;
	if (b == NULL) {
		if ((b = malloc(sizeof(*b) + kl + 1)) == NULL) {
			pthread_mutex_unlock(&l->lock);
			return RF_ERR_ALLOC;
		}
		memcpy(b->key, key, kl + 1);
		b->tokens = burst;
		b->at_ms = now_ms;
		b->next = l->b[h];
		l->b[h] = b;
	}
	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) * rate;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->at_ms = now_ms;
	if (b->tokens >= 1.0)
		b->tokens -= 1.0;
	else {
		/* Whole seconds until one token is back, rounded up. */
		uint64_t ms = (uint64_t)((1.0 - b->tokens) / rate + 0.5);

		*retry_after = (int)((ms + 999) / 1000);
		if (*retry_after < 1)
			*retry_after = 1;
		r = RF_ERR_STATE;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}
