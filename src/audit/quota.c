/*
 * quota.c: a minute's budget of refusal leaves (audit.h). Used by keyd
 * for the refusals of its callers, by serve for the connector API's and
 * for anonymous OCSP sightings of incidents: a flood adds at most per_min
 * leaves a minute and one leaf that counts the rest, naming the callers
 * counted most.
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
	q->what = "refusals";
}

void
rf_leaf_quota_what(struct rf_leaf_quota *q, const char *what)
{
	q->what = what;
}

int
rf_leaf_quota_due(const struct rf_leaf_quota *q, int64_t now)
{
	return q->quiet > 0 && now / 60 > q->minute;
}

/* The count's leaf detail: the callers counted most, by name. */
static void
describe(const struct rf_leaf_quota *q, char *out, size_t cap)
{
	unsigned named = 0, i, k, best;
	uint32_t used = 0; /* bit i: seen[i] named */
	char when[32];
	size_t len;

	rf_iso_time(q->minute * 60, when);
	len = (size_t)snprintf(out, cap,
	    "%u more %s in the minute from %s, not recorded one by one "
	    "(at most %u a minute are",
	    q->quiet, q->what, when, q->per_min);
	if (q->per_who > 0 && len < cap)
		len += (size_t)snprintf(
		    out + len, cap - len, ", %u of one", q->per_who);
	if (len < cap)
		len += (size_t)snprintf(out + len, cap - len, ")");
	for (k = 0; k < RF_LEAF_QUOTA_TOP; k++) {
		best = RF_LEAF_QUOTA_WHO;
		for (i = 0; i < RF_LEAF_QUOTA_WHO; i++)
			if (!(used & (1u << i)) && q->seen[i].counted > 0 &&
			    (best == RF_LEAF_QUOTA_WHO ||
				q->seen[i].counted > q->seen[best].counted))
				best = i;
		if (best == RF_LEAF_QUOTA_WHO)
			break;
		used |= 1u << best;
		named += q->seen[best].counted;
		if (len < cap)
			len += (size_t)snprintf(out + len, cap - len,
			    "%s %s %u", k == 0 ? ":" : ",", q->seen[best].who,
			    q->seen[best].counted);
	}
	if (named < q->quiet && len < cap)
		(void)snprintf(out + len, cap - len, "%s others %u",
		    named > 0 ? "," : ":", q->quiet - named);
}

int
rf_leaf_quota_roll(
    struct rf_leaf_quota *q, int64_t now, int force, char *out, size_t cap)
{
	int64_t minute = now / 60;
	int n = 0;

	if (cap == 0 || (minute <= q->minute && !(force && q->quiet > 0)))
		return 0;
	if (q->quiet > 0) {
		describe(q, out, cap);
		n = 1;
	}
	if (minute > q->minute)
		q->minute = minute;
	q->leaves = q->quiet = 0;
	memset(q->seen, 0, sizeof(q->seen));
	return n;
}

/* who's entry (as kept: at most 63 bytes), a free one named so, or NULL
 * when every entry is another caller's. */
static struct rf_leaf_quota_who *
entry(struct rf_leaf_quota *q, const char *who)
{
	struct rf_leaf_quota_who *e;
	char w[sizeof(e->who)];
	size_t i;

	if (who == NULL || *who == '\0')
		return NULL;
	snprintf(w, sizeof(w), "%s", who);
	for (i = 0; i < RF_LEAF_QUOTA_WHO; i++) {
		e = &q->seen[i];
		if (e->leaves == 0 && e->counted == 0) {
			memcpy(e->who, w, sizeof(w));
			return e;
		}
		if (strcmp(e->who, w) == 0)
			return e;
	}
	return NULL;
}

int
rf_leaf_quota_take(struct rf_leaf_quota *q, const char *who)
{
	struct rf_leaf_quota_who *e = entry(q, who);

	if (q->leaves < q->per_min &&
	    (e == NULL || q->per_who == 0 || e->leaves < q->per_who)) {
		q->leaves++;
		if (e != NULL)
			e->leaves++;
		return 1;
	}
	q->quiet++;
	if (e != NULL)
		e->counted++;
	return 0;
}

void
rf_leaf_quota_count(struct rf_leaf_quota *q, const char *who)
{
	struct rf_leaf_quota_who *e = entry(q, who);

	q->quiet++;
	if (e != NULL)
		e->counted++;
}
