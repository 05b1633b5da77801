/*
 * quota.c: a minute's budget of refusal leaves (audit.h). Used by keyd
 * for the refusals of its callers and by serve for the connector API's:
 * a flood of refused requests adds at most per_min leaves a minute and
 * one leaf that counts the rest, naming the callers refused most.
 */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"

void
rf_leaf_quota_init(struct rf_leaf_quota *q, unsigned per_min, unsigned per_who)
{
	memset(q, 0, sizeof(*q));
	q->per_min = per_min;
	q->per_who = per_who;
	q->minute = -1;
}

int
rf_leaf_quota_roll(
    struct rf_leaf_quota *q, int64_t now, int force, char *out, size_t cap)
{
	int64_t minute = now / 60;
	size_t i, len;
	int n;

	if (minute == q->minute && !(force && q->quiet > 0))
		return 0;
	n = 0;
	if (q->quiet > 0) {
		len = (size_t)snprintf(out, cap,
		    "%u more refusals in the minute before, not recorded one "
		    "by one (at most %u a minute are",
		    q->quiet, q->per_min);
		if (q->per_who > 0 && len < cap)
			len += (size_t)snprintf(
			    out + len, cap - len, ", %u of one", q->per_who);
		if (len < cap)
			len += (size_t)snprintf(out + len, cap - len, ")");
		for (i = 0; i < RF_LEAF_QUOTA_TOP && q->top[i].n > 0; i++)
			if (len < cap)
				len += (size_t)snprintf(out + len, cap - len,
				    "%s %s %u", i == 0 ? ":" : ",",
				    q->top[i].who, q->top[i].n);
		if (q->other > 0 && len < cap)
			(void)snprintf(
			    out + len, cap - len, ", others %u", q->other);
		n = 1;
	}
	q->minute = minute;
	q->leaves = q->quiet = q->other = 0;
	memset(q->top, 0, sizeof(q->top));
	memset(q->seen, 0, sizeof(q->seen));
	return n;
}

/* who's entry in v[0..n), or a free one named who; NULL when full. */
static struct rf_leaf_quota_who *
entry(struct rf_leaf_quota_who *v, size_t n, const char *who)
{
	size_t i;

	for (i = 0; i < n && v[i].n > 0; i++)
		if (strcmp(v[i].who, who) == 0)
			return &v[i];
	if (i == n)
		return NULL;
	snprintf(v[i].who, sizeof(v[i].who), "%s", who);
	return &v[i];
}

int
rf_leaf_quota_take(struct rf_leaf_quota *q, const char *who)
{
	struct rf_leaf_quota_who *e = NULL;

	if (who != NULL && *who == '\0')
		who = NULL;
	/* A caller past its own share, once it has an entry (the first
	 * RF_LEAF_QUOTA_WHO callers of the minute do). */
	if (who != NULL && q->per_who > 0)
		e = entry(q->seen, RF_LEAF_QUOTA_WHO, who);
	if (q->leaves < q->per_min && (e == NULL || e->n < q->per_who)) {
		q->leaves++;
		if (e != NULL)
			e->n++;
		return 1;
	}
	q->quiet++;
	if (who != NULL && (e = entry(q->top, RF_LEAF_QUOTA_TOP, who)) != NULL)
		e->n++;
	else
		q->other++;
	return 0;
}
