/*
 * detect.c: anomaly detectors over assertions. Each is deterministic (a
 * function of the store's baselines and the event) and explained by one
 * sentence in docs/connectors.md; baselines live in the store
 * (connector_seen) and survive restarts.
 */
#include <stdio.h>
#include <string.h>

#include "connector/connector.h"

#define HOUR 3600
#define WEEK (168 * HOUR)
#define FANOUT_WINDOW 600 /* s: "in minutes" */
#define FANOUT_MIN 5	  /* tenants a connector may always fan out over */

static void
add(struct rf_alert_rec *out, size_t *n, const struct rf_connector_event *ev,
    const char *kind, const char *uid_tail, const char *fmt, const char *arg)
{
	struct rf_alert_rec *a;

	if (*n >= RF_ALERTS_MAX)
		return;
	a = &out[(*n)++];
	memset(a, 0, sizeof(*a));
	snprintf(a->uid, sizeof(a->uid), "%s:%s", kind, uid_tail);
	a->time = ev->now;
	snprintf(a->kind, sizeof(a->kind), "%s", kind);
	snprintf(a->tenant, sizeof(a->tenant), "%s", ev->tenant);
	snprintf(a->conn, sizeof(a->conn), "%s", ev->conn);
	snprintf(a->connector, sizeof(a->connector), "%s", ev->connector);
	snprintf(a->detail, sizeof(a->detail), fmt, arg);
}

/* An hour of the week (0: Monday 00:00 UTC) as a reader says it, "Monday
 * 12:00-13:00 UTC". */
static void
how_name(int how, char out[32])
{
	static const char *const day[7] = {"Monday", "Tuesday", "Wednesday",
	    "Thursday", "Friday", "Saturday", "Sunday"};

	snprintf(out, 32, "%s %02d:00-%02d:00 UTC", day[how / 24], how % 24,
	    how % 24 + 1);
}

int
rf_connector_detect(const struct rf_config *cfg, struct rf_store *st,
    const struct rf_connector_event *ev, struct rf_alert_rec *out, size_t *n)
{
	struct rf_seen *b = NULL;
	int r;

	*n = 0;
	if ((r = rf_seen_new(st, &b)) == 0 &&
	    (r = rf_connector_detect_in(cfg, b, ev, out, n)) == 0)
		r = rf_seen_flush(b);
	rf_seen_free(b);
	return r;
}

int
rf_connector_detect_in(const struct rf_config *cfg, struct rf_seen *st,
    const struct rf_connector_event *ev, struct rf_alert_rec *out, size_t *n)
{
	char k[320], u[320], net[64], num[32];
	int64_t before, used, first, c, base, last, hour = ev->now / HOUR;
	int r;

	*n = 0;
	snprintf(
	    u, sizeof(u), "%s/%s:%lld", ev->tenant, ev->conn, (long long)hour);
	/* A connection under an open incident was asked for. */
	if (ev->refused_incident) {
		add(out, n, ev, "under_incident", u,
		    "connector %s asked for a connection under an open "
		    "incident; refused",
		    ev->connector);
		return 0;
	}
	/* How much the connection was used before this assertion. */
	snprintf(k, sizeof(k), "%s/%s", ev->tenant, ev->conn);
	if ((r = rf_seen_bump(st, "conn", k, 1, ev->now, &used)) != 0)
		return r;
	if ((r = rf_seen_get(st, "conn", k, &c, &first)) != 0)
		return r;

	/* A connector never seen on this connection (after the first). */
	snprintf(k, sizeof(k), "%s/%s|%s", ev->tenant, ev->conn, ev->connector);
	if ((r = rf_seen_bump(st, "pair", k, 1, ev->now, &before)) != 0)
		return r;
	if (before < 0 && used > 0)
		add(out, n, ev, "new_connector", k,
		    "connector %s was never seen on this connection before",
		    ev->connector);

	/* A source network never seen for this connection. */
	(void)rf_ip_network(ev->source, net);
	snprintf(k, sizeof(k), "%s/%s|%s", ev->tenant, ev->conn, net);
	if ((r = rf_seen_bump(st, "net", k, 1, ev->now, &before)) != 0)
		return r;
	if (before < 0 && used > 0)
		add(out, n, ev, "new_network", k,
		    "source network %s was never seen for this connection",
		    net);

	/* An hour of the week never used, once a week of history exists
	 * (1970-01-01 was a Thursday: +72 h makes Monday 00:00 hour 0). */
	snprintf(k, sizeof(k), "%s/%s|%lld", ev->tenant, ev->conn,
	    (long long)((hour + 72) % 168));
	if ((r = rf_seen_bump(st, "how", k, 1, ev->now, &before)) != 0)
		return r;
	if (before < 0 && used > 0 && ev->now - first >= WEEK) {
		how_name((int)((hour + 72) % 168), num);
		add(out, n, ev, "new_hour_of_week", k,
		    "the connection is used in an hour of the week (%s) never "
		    "used in its history",
		    num);
	}

	/* The connection's hourly rate above its baseline: the busiest
	 * complete hour so far; the threshold is 2 x baseline + 3. */
	snprintf(
	    k, sizeof(k), "%s/%s|%lld", ev->tenant, ev->conn, (long long)hour);
	if ((r = rf_seen_bump(st, "hour", k, 1, ev->now, &before)) != 0)
		return r;
	snprintf(u, sizeof(u), "%s/%s", ev->tenant, ev->conn);
	if (before < 0) {
		/*
		 * A new hour: fold the connection's last used hour into the
		 * baseline ("lasth"; the hour before when none is recorded),
		 * not only the hour just before: a connection used every few
		 * hours has a baseline too.
		 */
		if ((r = rf_seen_get(st, "lasth", u, &last, NULL)) != 0)
			return r;
		if (last <= 0 || last >= hour)
			last = hour - 1;
		snprintf(k, sizeof(k), "%s/%s|%lld", ev->tenant, ev->conn,
		    (long long)last);
		if ((r = rf_seen_get(st, "hour", k, &c, NULL)) != 0 ||
		    (c > 0 &&
			(r = rf_seen_max(st, "hbase", u, c, ev->now)) != 0) ||
		    (r = rf_seen_set(st, "lasth", u, hour, ev->now)) != 0)
			return r;
	}
	if ((r = rf_seen_get(st, "hbase", u, &base, &first)) != 0)
		return r;
	if (first != 0 && before + 1 == 2 * base + 3) {
		snprintf(k, sizeof(k), "%s/%s:%lld", ev->tenant, ev->conn,
		    (long long)hour);
		snprintf(num, sizeof(num), "%lld", (long long)base);
		add(out, n, ev, "rate_above_baseline", k,
		    "the connection's assertions this hour reached twice its "
		    "busiest hour (%s) plus 3",
		    num);
	}

	/* One connector over more tenants in 10 minutes than its baseline. */
	snprintf(k, sizeof(k), "%s|%s", ev->connector, ev->tenant);
	if ((r = rf_seen_bump(st, "fan", k, 1, ev->now, &before)) != 0)
		return r;
	snprintf(k, sizeof(k), "%s|", ev->connector);
	if ((r = rf_seen_count(st, "fan", k, ev->now - FANOUT_WINDOW, &c)) != 0)
		return r;
	/* The baseline: the most tenants of any earlier 10-minute window
	 * (fcur holds the current window's, first = its start). */
	if ((r = rf_seen_get(st, "fcur", ev->connector, &base, &first)) != 0)
		return r;
	if (first != 0 && first / FANOUT_WINDOW == ev->now / FANOUT_WINDOW)
		r = rf_seen_max(st, "fcur", ev->connector, c, ev->now);
	else if ((r = rf_seen_set(st, "fcur", ev->connector, c, ev->now)) ==
		0 &&
	    first != 0)
		r = rf_seen_max(st, "fbase", ev->connector, base, ev->now);
	if (r != 0 ||
	    (r = rf_seen_get(st, "fbase", ev->connector, &base, NULL)) != 0)
		return r;
	if (c > FANOUT_MIN && c > 2 * base) {
		snprintf(k, sizeof(k), "%s:%lld", ev->connector,
		    (long long)(ev->now / FANOUT_WINDOW));
		snprintf(num, sizeof(num), "%lld", (long long)c);
		add(out, n, ev, "fanout", k,
		    "the connector reached %s tenants within 10 minutes, over "
		    "twice its baseline",
		    num);
	}

	/* A global surge across tenants: one alert an hour. */
	snprintf(k, sizeof(k), "%lld", (long long)(ev->now / 60));
	if ((r = rf_seen_bump(st, "minute", k, 1, ev->now, &before)) != 0)
		return r;
	if (before + 1 == cfg->surge_per_minute) {
		snprintf(k, sizeof(k), "%lld", (long long)hour);
		snprintf(num, sizeof(num), "%d", cfg->surge_per_minute);
		add(out, n, ev, "global_surge", k,
		    "assertions across all tenants reached %s in one minute",
		    num);
	}

	/* A request naming a retired credential. */
	if (ev->asked_x5t256 != NULL && ev->asked_x5t256[0] != '\0' &&
	    strcmp(ev->asked_x5t256, ev->cred_x5t256) != 0) {
		snprintf(k, sizeof(k), "%s/%s|%s:%lld", ev->tenant, ev->conn,
		    ev->asked_x5t256, (long long)hour);
		add(out, n, ev, "retired_credential", k,
		    "the request named credential %s, which is not the "
		    "connection's current one",
		    ev->asked_x5t256);
	}
	return 0;
}
