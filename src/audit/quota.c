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
rf_leaf_quota_init(struct rf_leaf_quota *q, unsigned per_min)
{
	memset(q, 0, sizeof(*q));
	q->per_min = per_min;
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
		    "by one (at most %u a minute are)",
		    q->quiet, q->per_min);
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
	return n;
}

int
rf_leaf_quota_take(struct rf_leaf_quota *q, const char *who)
{
	size_t i;

	if (q->leaves < q->per_min) {
		q->leaves++;
		return 1;
	}
	q->quiet++;
	if (who == NULL || *who == '\0') {
		q->other++;
		return 0;
	}
	for (i = 0; i < RF_LEAF_QUOTA_TOP && q->top[i].n > 0; i++)
		if (strcmp(q->top[i].who, who) == 0) {
			q->top[i].n++;
			return 0;
		}
	if (i < RF_LEAF_QUOTA_TOP) {
		snprintf(q->top[i].who, sizeof(q->top[i].who), "%s", who);
		q->top[i].n = 1;
	} else
		q->other++;
	return 0;
}
