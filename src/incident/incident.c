/*
 * incident.c: an incident and its record. Opening one: the scope parsed,
 * the connections in it told to keyd's ledger, then its items and blast
 * radius committed. The record every step writes and reads: the timeline
 * (an event and its audit leaf per step), the progress of a command, and
 * the incident and its items loaded for the other files. contain.c takes
 * the items' old credentials out of service and reissue.c gives them new
 * ones; track.c follows them until the incident closes; package.c writes
 * each tenant's package.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "revoke/revoke.h"
#include "store/store.h"
#include "store/store_incident.h"

/* Tries at the run lock while its file is removed under it. */
#define RUN_LOCK_TRIES 10

/* One audit leaf for an incident step. */
static int
audit_step(const struct rf_incident_ctx *c, int64_t id, const char *what,
    const char *tenant, const char *ref, const char *detail)
{
	struct rf_audit_event ev;
	char idbuf[32];

	snprintf(idbuf, sizeof(idbuf), "incident-%lld", (long long)id);
	memset(&ev, 0, sizeof(ev));
	ev.type = "incident";
	ev.what = what;
	ev.tenant = tenant;
	ev.ref = ref != NULL ? ref : idbuf;
	ev.detail = detail;
	ev.actor = c->who != NULL ? c->who->actor : NULL;
	ev.source = c->who != NULL ? c->who->source : NULL;
	return rf_audit_append(c->audit, &ev, 1, NULL);
}

/* A timeline entry (store) and its audit leaf, in the caller's order. */
int
rf_incident_event(const struct rf_incident_ctx *c, int64_t id, const char *kind,
    const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if ((r = rf_store_incident_event_add(
		 c->st, id, rf_now(), kind, detail)) != 0)
		return r;
	return audit_step(c, id, kind, NULL, NULL, detail);
}

void
rf_incident_task(int64_t id, const char *cmd, char out[96])
{
	snprintf(out, 96, "incident %lld %s", (long long)id, cmd);
}

/* $home/incident-ID.lock */
static int
run_lock_path(
    const struct rf_incident_ctx *c, int64_t id, char *path, size_t len)
{
	if ((size_t)snprintf(path, len, "%s/incident-%lld.lock", c->cfg->home,
		(long long)id) >= len)
		return rf_err_set(RF_ERR_ARG, "state folder path too long");
	return 0;
}

/*
 * One try at the lock: *fd the locked file, or -1 when the file locked is
 * no longer the one at path. A run that closes the incident removes the
 * file while it holds the lock (rf_incident_run_unlock): a run that opened
 * it before and locks it after holds the lock of a file nobody else will
 * open, while a third run makes a new one at path and locks that. Held
 * only if path still names the file locked (device and inode): then only
 * this run can remove it.
 */
static int
run_lock_try(const char *path, int64_t id, int *fd)
{
	struct stat fs, ps;
	int f, e;

	*fd = -1;
	/* A link planted there would have the lock made, or opened, at its
	 * target: refused (ELOOP) rather than followed. */
	if ((f = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) <
	    0) {
		if (errno == ELOOP)
			return rf_err_set(RF_ERR_IO,
			    "%s is a symbolic link, not incident %lld's run "
			    "lock: remove it, then run this again",
			    path, (long long)id);
		if (errno == EISDIR)
			return rf_err_set(RF_ERR_IO,
			    "%s is a directory, not incident %lld's run lock: "
			    "remove it, then run this again",
			    path, (long long)id);
		return rf_err_set(RF_ERR_IO,
		    "%s: %s (incident %lld's run lock: make the state folder "
		    "writable for this user)",
		    path, strerror(errno), (long long)id);
	}
	/* Tests: the file opened, not locked yet. */
	rf_test_pause("incident-lock-opened");
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		close(f);
		if (e == EWOULDBLOCK)
			return rf_err_set(RF_ERR_STATE,
			    "incident %lld is being contained or closed by "
			    "another run right now: let it finish ('ringfence "
			    "incident status %lld' shows it), then run this "
			    "again if it did not",
			    (long long)id, (long long)id);
		return rf_err_set(RF_ERR_IO, "%s: %s", path, strerror(e));
	}
	if (fstat(f, &fs) != 0) {
		e = errno;
		close(f);
		return rf_err_set(RF_ERR_IO, "%s: %s", path, strerror(e));
	}
	if (lstat(path, &ps) != 0) {
		e = errno;
		close(f);
		if (e == ENOENT)
			return 0; /* removed since it was opened: again */
		return rf_err_set(RF_ERR_IO, "%s: %s", path, strerror(e));
	}
	if (ps.st_dev != fs.st_dev || ps.st_ino != fs.st_ino) {
		close(f); /* replaced since it was opened: again */
		return 0;
	}
	*fd = f;
	return 0;
}

int
rf_incident_run_lock(const struct rf_incident_ctx *c, int64_t id, int *fd)
{
	struct rf_incident_rec inc;
	char path[RF_PATH_MAX + 64];
	int i, r;

	*fd = -1;
	/* No lock file for an incident that does not exist. */
	if ((r = rf_incident_load(c, id, &inc)) != 0 ||
	    (r = run_lock_path(c, id, path, sizeof(path))) != 0)
		return r;
	/* The file is removed only as an incident closes: a few tries. */
	for (i = 0; i < RUN_LOCK_TRIES; i++)
		if ((r = run_lock_try(path, id, fd)) != 0 || *fd >= 0)
			return r;
	return rf_err_set(RF_ERR_STATE,
	    "%s was removed each time this run locked it (%d times): another "
	    "run of incident %lld is closing it; run this again",
	    path, RUN_LOCK_TRIES, (long long)id);
}

int
rf_incident_run_unlock(const struct rf_incident_ctx *c, int64_t id, int fd)
{
	struct rf_incident_rec inc;
	char path[RF_PATH_MAX + 64];
	int r;

	if (fd < 0)
		return 0;
	/* Still held: no other run is past run_lock_try (see there). */
	if ((r = rf_store_incident_get(c->st, id, &inc)) == 0 &&
	    strcmp(inc.state, "closed") == 0 &&
	    (r = run_lock_path(c, id, path, sizeof(path))) == 0 &&
	    unlink(path) != 0 && errno != ENOENT)
		r = rf_err_set(RF_ERR_IO, "%s: %s", path, strerror(errno));
	close(fd);
	return r;
}

int
rf_incident_progress_sink(void *arg, const struct rf_progress_state *s)
{
	struct rf_progress_rec p;

	memset(&p, 0, sizeof(p));
	snprintf(p.task, sizeof(p.task), "%s", s->task);
	snprintf(p.phase, sizeof(p.phase), "%s", s->phase);
	p.done = s->done;
	p.total = s->total;
	p.started_ms = s->started_ms;
	p.updated_ms = s->updated_ms;
	p.pid = (int64_t)getpid();
	p.finished = s->finished;
	return rf_store_progress_put(arg, &p);
}

/* ---- Scope ---- */

struct scope {
	struct rf_conn_filter f;
	char kind[16];
	char value[160];
	char tenant[128], name[64];
};

/* text as a message shows it: at most 60 bytes, a control byte as '?'. */
static const char *
scope_shown(const char *text, char out[61])
{
	size_t i;

	for (i = 0; i < 60 && text[i] != '\0'; i++)
		out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f
		    ? '?'
		    : text[i];
	out[i] = '\0';
	return out;
}

/* The scope as written, reading nothing: RF_ERR_ARG names the forms. */
static int
scope_syntax(const char *text, struct scope *s)
{
	const char *colon, *slash;
	char shown[61];

	memset(s, 0, sizeof(*s));
	if (strcmp(text, "all") == 0) {
		snprintf(s->kind, sizeof(s->kind), "all");
		return 0;
	}
	if ((colon = strchr(text, ':')) == NULL ||
	    (size_t)(colon - text) >= sizeof(s->kind) ||
	    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(s->value))
		goto bad;
	memcpy(s->kind, text, (size_t)(colon - text));
	snprintf(s->value, sizeof(s->value), "%s", colon + 1);
	if (strcmp(s->kind, "tenant") == 0) {
		s->f.tenant = s->value;
	} else if (strcmp(s->kind, "connection") == 0) {
		if ((slash = strchr(s->value, '/')) == NULL ||
		    slash == s->value || slash[1] == '\0' ||
		    (size_t)(slash - s->value) >= sizeof(s->tenant) ||
		    strlen(slash + 1) >= sizeof(s->name))
			return rf_err_set(RF_ERR_ARG,
			    "connection scope is connection:TENANT/NAME, not "
			    "'%s'",
			    scope_shown(text, shown));
		memcpy(s->tenant, s->value, (size_t)(slash - s->value));
		snprintf(s->name, sizeof(s->name), "%s", slash + 1);
		s->f.tenant = s->tenant;
		s->f.name = s->name;
	} else if (strcmp(s->kind, "key") == 0) {
		if (strlen(s->value) != 64 ||
		    strspn(s->value, "0123456789abcdef") != 64)
			return rf_err_set(RF_ERR_ARG,
			    "key scope is key:ID with the 64 lowercase hex "
			    "digits of the key id");
		s->f.key_id = s->value;
	} else if (strcmp(s->kind, "issuer") == 0) {
		s->f.issuer = s->value;
	} else {
		goto bad;
	}
	return 0;
bad:
	return rf_err_set(RF_ERR_ARG,
	    "unknown scope '%s': use tenant:T, connection:T/NAME, key:ID, "
	    "issuer:CA or all",
	    scope_shown(text, shown));
}

int
rf_incident_scope_check(const char *text)
{
	struct scope s;

	return scope_syntax(text, &s);
}

/* The scope, its tenant or issuer found in the store. */
static int
scope_parse(const struct rf_incident_ctx *c, const char *text, struct scope *s)
{
	struct rf_tenant t;
	struct rf_ca_rec ca;
	int r;

	if ((r = scope_syntax(text, s)) != 0)
		return r;
	if (strcmp(s->kind, "tenant") == 0 &&
	    (r = rf_store_tenant_get(c->st, s->value, &t)) != 0)
		return r == RF_ERR_NOT_FOUND
		    ? rf_err_set(RF_ERR_NOT_FOUND,
			  "unknown tenant %s: see 'ringfence tenant list'",
			  s->value)
		    : r;
	if (strcmp(s->kind, "issuer") == 0) {
		memset(&ca, 0, sizeof(ca));
		if ((r = rf_store_ca_get(c->st, s->value, &ca)) != 0)
			return r == RF_ERR_NOT_FOUND
			    ? rf_err_set(RF_ERR_NOT_FOUND, "unknown issuer %s",
				  s->value)
			    : r;
		rf_ca_rec_clear(&ca);
	}
	return 0;
}

/* ---- Open ---- */

static int collect_item(void *arg, const struct rf_item_rec *it);

/*
 * Tell the custody process's ledger (docs/keys.md, "What the policy
 * trusts") that items of v (those in state only, or all) are affected, or
 * no longer: keyd signs no assertion for a connection its ledger says
 * affected, whatever the store says. Affected before the store commits
 * them; no longer affected once nothing old can sign (contain) or the
 * operator waived them, before the store says so. sel (NULL: all) picks
 * items of v; changed (NULL, or n flags) says which notes moved an item's
 * state, so that an open that fails undoes only its own.
 */
int
rf_incident_note_items(const struct rf_incident_ctx *c, int affected,
    const struct rf_item_rec *v, size_t n, const char *only, const uint8_t *sel,
    uint8_t *changed)
{
	struct rf_knote_item *k;
	uint8_t *kch;
	size_t *at, i, m = 0;
	int r;

	if (changed != NULL)
		memset(changed, 0, n);
	if (n == 0 || c->keys == NULL)
		return 0;
	k = calloc(n, sizeof(*k));
	kch = calloc(n, 1);
	at = calloc(n, sizeof(*at));
	if (k == NULL || kch == NULL || at == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((only != NULL && strcmp(v[i].state, only) != 0) ||
		    (sel != NULL && !sel[i]))
			continue;
		k[m].tenant = v[i].tenant;
		k[m].conn = v[i].name;
		k[m].key = v[i].old_key;
		at[m++] = i;
	}
	r = rf_keys_note_items(c->keys, affected, k, m, kch);
	for (i = 0; changed != NULL && i < m; i++)
		changed[at[i]] = kch[i];
out:
	free(k);
	free(kch);
	free(at);
	return r;
}

struct open_acc {
	const struct rf_incident_ctx *c;
	int64_t id;
	size_t n;
	size_t skipped; /* connections left to another open incident */
	size_t retired; /* items waived at open: retired credentials */
	int64_t other;	/* the first such incident */
	int64_t since;
	uint64_t signatures;
	/* The items' keys, sorted: when set, only their signatures count
	 * (a tenant's leaves also hold the issuing CA's, for its
	 * certificates). */
	char (*keys)[65];
	size_t nkeys, capkeys;
	int only_keys;
	const char *scope;    /* as given, for rf_incident_previous_in_scope */
	struct item_vec cand; /* noted to keyd's ledger before the store */
	uint8_t *moved;	      /* per candidate: the note changed its state */
};

/* "TENANT CONN KEY" of an item, for the candidates' order. */
static void
item_name(const struct rf_item_rec *it, char out[260])
{
	snprintf(
	    out, 260, "%.127s %.63s %.64s", it->tenant, it->name, it->old_key);
}

static int
cand_cmp(const void *a, const void *b)
{
	char x[260], y[260];

	item_name(a, x);
	item_name(b, y);
	return strcmp(x, y);
}

/*
 * A credential the operator retired before the incident: revoked because
 * the connection ended or moved on (cessationOfOperation, superseded,
 * affiliationChanged, privilegeWithdrawn) or is on hold. One revoked for
 * a compromise (keyCompromise, caCompromise, no reason given) is still
 * the connection's, revoked by a responder before the incident opened:
 * contain replaces it.
 */
static int
retired(const struct rf_cert_rec *cur)
{
	if (!cur->revoked)
		return 0;
	switch (cur->reason) {
	case RF_CRL_REASON_AFFILIATION_CHANGED:
	case RF_CRL_REASON_SUPERSEDED:
	case RF_CRL_REASON_CESSATION_OF_OPERATION:
	case RF_CRL_REASON_CERTIFICATE_HOLD:
	case RF_CRL_REASON_PRIVILEGE_WITHDRAWN:
		return 1;
	default:
		return 0;
	}
}

/*
 * The item conn would be in this incident, with the credential it has now
 * (cur); *other: the incident that holds it uncontained (0: none). A
 * connection belongs to at most one incident that has not contained it
 * yet: two incidents issuing for one connection would leave it two valid
 * credentials. One that another incident has contained joins with its new
 * credential: this incident builds on that one's result.
 */
static int
item_of(const struct open_acc *a, const struct rf_conn_rec *conn,
    const struct rf_cert_rec *cur, struct rf_item_rec *it, int64_t *other)
{
	int r;

	if ((r = rf_store_item_other_open(a->c->st, conn->id, a->id, other)) !=
	    RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	*other = 0;
	memset(it, 0, sizeof(*it));
	it->incident = a->id;
	it->conn = conn->id;
	snprintf(it->tenant, sizeof(it->tenant), "%s", conn->tenant);
	snprintf(it->name, sizeof(it->name), "%s", conn->name);
	snprintf(it->rp, sizeof(it->rp), "%s", conn->rp);
	snprintf(it->old_serial, sizeof(it->old_serial), "%s", cur->serial);
	snprintf(it->old_key, sizeof(it->old_key), "%s", cur->key_id);
	/* Recorded now: after the reissue the connection forgets it. */
	if (strcmp(conn->previous, cur->serial) != 0)
		snprintf(it->prev_serial, sizeof(it->prev_serial), "%s",
		    conn->previous);
	snprintf(it->state, sizeof(it->state), "affected");
	if (retired(cur)) {
		/* Not in service: its key goes with the others, but it
		 * gets no new credential (contain reissues only affected
		 * items); the item says why. */
		snprintf(it->state, sizeof(it->state), "waived");
		snprintf(it->evidence, sizeof(it->evidence),
		    "credential revoked before the incident (%s): not "
		    "replaced",
		    rf_crl_reason_name(cur->reason));
	}
	it->updated = rf_now();
	return 0;
}

/*
 * Before the open's transaction (a->id is 0 yet): the connections of the
 * scope that no other incident holds uncontained, with the key each
 * credential has now. They are told to keyd's ledger first, outside any
 * store transaction (keyd writes the record, and a transaction held while
 * waiting for keyd would hold keyd up); open_item then admits only these.
 */
static int
open_candidate(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	struct open_acc *a = arg;
	struct rf_item_rec it;
	int64_t other;
	int r;

	if (!rf_knote_item_ok(conn->tenant, conn->name, cur->key_id))
		return 0; /* not a name ringfence makes (open_item skips it) */
	if ((r = item_of(a, conn, cur, &it, &other)) != 0 || other != 0)
		return r;
	return collect_item(&a->cand, &it);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
count_leaf(void *arg, const struct rf_leaf_rec *l)
{
	struct open_acc *a = arg;

	if (l->type == NULL || strcmp(l->type, "sign") != 0)
		return 0;
	if (a->only_keys &&
	    (l->key_id == NULL || a->nkeys == 0 ||
		bsearch(l->key_id, a->keys, a->nkeys, sizeof(a->keys[0]),
		    key_cmp) == NULL))
		return 0;
	a->signatures++;
	return 0;
}

/* An item's key, for count_leaf. */
static int
keep_key(struct open_acc *a, const char *key_id)
{
	if (a->nkeys == a->capkeys) {
		size_t cap = a->capkeys ? 2 * a->capkeys : 64;
		char(*k)[65] = reallocarray(a->keys, cap, sizeof(*k));

		if (k == NULL)
			return RF_ERR_ALLOC;
		a->keys = k;
		a->capkeys = cap;
	}
	snprintf(a->keys[a->nkeys++], sizeof(a->keys[0]), "%s", key_id);
	return 0;
}

static int
open_item(
    void *arg, const struct rf_conn_rec *conn, const struct rf_cert_rec *cur)
{
	struct open_acc *a = arg;
	struct rf_item_rec it;
	char prev[41], pkey[65];
	int64_t other;
	int r;

	if ((r = item_of(a, conn, cur, &it, &other)) != 0)
		return r;
	if (other != 0) {
		if (a->skipped++ == 0)
			a->other = other;
		return 0;
	}
	if (a->c->keys != NULL &&
	    !rf_knote_item_ok(it.tenant, it.name, it.old_key))
		return 0; /* a row no ringfence command writes */
	if (a->c->keys != NULL &&
	    (a->cand.n == 0 ||
		bsearch(&it, a->cand.v, a->cand.n, sizeof(it), cand_cmp) ==
		    NULL))
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s got a new credential while the incident "
		    "opened: run 'ringfence incident open' again",
		    it.tenant, it.name);
	/* The keys contain takes out of service: the credential's, and a
	 * still-valid previous credential's. */
	if ((r = rf_store_item_add(a->c->st, &it)) != 0 ||
	    (r = keep_key(a, it.old_key)) != 0 ||
	    (r = rf_incident_previous_in_scope(
		 a->c, a->scope, &it, prev, pkey)) != 0 ||
	    (pkey[0] != '\0' && (r = keep_key(a, pkey)) != 0))
		return r;
	a->n++;
	if (strcmp(it.state, "waived") == 0)
		a->retired++;
	return 0;
}

/*
 * A scope has one incident until it closes (and a closed one is not
 * reopened): say what the one there is, and what to do next.
 */
static int
scope_taken(const struct rf_incident_ctx *c, int64_t other, const char *scope)
{
	struct rf_incident_rec o;
	int r;

	if ((r = rf_incident_load(c, other, &o)) != 0)
		return r;
	if (strcmp(o.state, "contained") == 0)
		return rf_err_set(RF_ERR_EXISTS,
		    "incident %lld on scope %s is contained, not closed, and "
		    "a scope has one incident until it closes: close it first "
		    "('ringfence incident confirm %lld --all', or with "
		    "--waive, then 'ringfence incident close %lld'), then "
		    "open the new one (a closed incident cannot be reopened)",
		    (long long)other, scope, (long long)other,
		    (long long)other);
	return rf_err_set(RF_ERR_EXISTS,
	    "incident %lld is already open on scope %s: contain it "
	    "('ringfence incident contain %lld'); a new one on this scope "
	    "can be opened once it is closed",
	    (long long)other, scope, (long long)other);
}

/* 1 if s is well-formed UTF-8 (no overlong form, no surrogate). */
static int
utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long cp;
	int n, k;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			n = 1, cp = *p & 0x1f;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 2, cp = *p & 0x0f;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 3, cp = *p & 0x07;
		else
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += n + 1;
	}
	return 1;
}

int
rf_incident_reason_check(const char *reason)
{
	size_t i;

	if (reason == NULL || *reason == '\0')
		return rf_err_set(
		    RF_ERR_ARG, "an incident needs --reason TEXT");
	/* status, list and the report print it as it is: one line of
	 * text, or it could forge their lines (and a terminal's). */
	for (i = 0; reason[i] != '\0'; i++)
		if ((unsigned char)reason[i] < 0x20 ||
		    (unsigned char)reason[i] == 0x7f ||
		    /* C1 controls, U+0080 to U+009F in UTF-8 (CSI ...) */
		    ((unsigned char)reason[i] == 0xc2 &&
			(unsigned char)reason[i + 1] >= 0x80 &&
			(unsigned char)reason[i + 1] <= 0x9f))
			return rf_err_set(RF_ERR_ARG,
			    "--reason is one line of text: no newline, tab or "
			    "other control character (character %zu is 0x%02x)",
			    i + 1, (unsigned char)reason[i]);
	if (!utf8_ok(reason))
		return rf_err_set(RF_ERR_ARG,
		    "--reason is not UTF-8 text: write it in UTF-8");
	if (i >= sizeof(((struct rf_incident_rec *)NULL)->reason))
		return rf_err_set(RF_ERR_ARG,
		    "--reason is at most %zu bytes, not %zu",
		    sizeof(((struct rf_incident_rec *)NULL)->reason) - 1, i);
	return 0;
}

int
rf_incident_open(const struct rf_incident_ctx *c, const char *scope_text,
    const char *reason, int64_t since, int64_t *id)
{
	struct rf_incident_rec inc;
	struct open_acc acc;
	struct scope s;
	int r = RF_ERR_INTERNAL, in_tx = 0, noted = 0;

	*id = 0;
	if ((r = rf_incident_reason_check(reason)) != 0 ||
	    (r = scope_parse(c, scope_text, &s)) != 0)
		return r;
	memset(&inc, 0, sizeof(inc));
	snprintf(inc.scope, sizeof(inc.scope), "%s", scope_text);
	snprintf(inc.reason, sizeof(inc.reason), "%s", reason);
	snprintf(inc.state, sizeof(inc.state), "open");
	inc.opened = rf_now();
	inc.since = since;
	memset(&acc, 0, sizeof(acc));
	acc.c = c;
	acc.since = since;
	acc.scope = scope_text;

	/* keyd's ledger first: from here keyd signs nothing for them. */
	if (c->keys != NULL) {
		if ((r = rf_store_conn_foreach(
			 c->st, &s.f, open_candidate, &acc)) != 0)
			goto out;
		if (acc.cand.n > 1)
			qsort(acc.cand.v, acc.cand.n, sizeof(*acc.cand.v),
			    cand_cmp);
		if ((acc.moved = calloc(acc.cand.n + 1, 1)) == NULL) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		/* Undone on failure, all of them if the note itself failed
		 * (some may have been kept unanswered). */
		noted = 2;
		if ((r = rf_incident_note_items(c, 1, acc.cand.v, acc.cand.n,
			 "affected", NULL, acc.moved)) != 0)
			goto out;
		noted = 1;
		/* Tests: keyd refuses them, the store does not say so yet. */
		rf_test_pause("incident-ledger-noted");
	}
	if ((r = rf_store_begin(c->st)) != 0)
		goto out;
	in_tx = 1;
	if ((r = rf_store_incident_add(c->st, &inc)) != 0) {
		if (r == RF_ERR_EXISTS)
			r = scope_taken(c, inc.id, scope_text);
		goto out;
	}
	acc.id = inc.id;
	if ((r = rf_store_conn_foreach(c->st, &s.f, open_item, &acc)) != 0)
		goto out;
	if (acc.n == 0 && acc.skipped > 0) {
		r = rf_err_set(RF_ERR_STATE,
		    "every connection of scope %s is already in incident "
		    "%lld, which has not contained it yet: run 'ringfence "
		    "incident contain %lld' first, then open this one to build "
		    "on its result",
		    scope_text, (long long)acc.other, (long long)acc.other);
		goto out;
	}
	if (acc.n == 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "scope %s matches no connection with a credential",
		    scope_text);
		goto out;
	}
	/*
	 * Blast radius in the record: the signatures of the key in scope
	 * (issuer scope: the issuing key; key scope: that key; otherwise
	 * the connection keys in scope, found by tenant).
	 */
	if (strcmp(s.kind, "issuer") == 0) {
		struct rf_ca_rec ca;

		memset(&ca, 0, sizeof(ca));
		if ((r = rf_store_ca_get(c->st, s.value, &ca)) != 0)
			goto out;
		r = rf_store_leaf_search(
		    c->st, ca.key_id, NULL, since, 0, 0, count_leaf, &acc);
		rf_ca_rec_clear(&ca);
	} else if (strcmp(s.kind, "key") == 0) {
		r = rf_store_leaf_search(
		    c->st, s.value, NULL, since, 0, 0, count_leaf, &acc);
	} else {
		qsort(acc.keys, acc.nkeys, sizeof(acc.keys[0]), key_cmp);
		acc.only_keys = 1;
		r = rf_store_leaf_search(
		    c->st, NULL, s.f.tenant, since, 0, 0, count_leaf, &acc);
	}
	if (r != 0)
		goto out;
	inc.id = acc.id;
	inc.signatures = acc.signatures;
	if ((r = rf_store_incident_update(c->st, &inc)) != 0 ||
	    (r = rf_incident_event(c, inc.id, "open",
		 "scope %s: %zu connections (%zu of them with a credential "
		 "retired before the incident: waived, their keys taken out "
		 "of service, not replaced), %llu signatures in the record%s; "
		 "reason: %s",
		 scope_text, acc.n, acc.retired,
		 (unsigned long long)acc.signatures,
		 acc.skipped > 0 ? " (others left to an incident that has not "
				   "contained them yet)"
				 : "",
		 reason)) != 0 ||
	    (r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	noted = 0;
	*id = inc.id;
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(c->st);
	/* Not opened: the ledger need not refuse them (best effort; refused
	 * rather than trusted if this fails too). The open's error stays. */
	if (noted) {
		struct rf_err_held held;

		rf_err_keep(&held, r);
		if (rf_incident_note_items(c, 0, acc.cand.v, acc.cand.n, NULL,
			noted == 1 ? acc.moved : NULL, NULL) != 0)
			rf_err_clear();
		r = rf_err_kept(&held);
	}
	free(acc.cand.v);
	free(acc.moved);
	free(acc.keys);
	return r;
}

/* ---- Load ---- */

static int
collect_item(void *arg, const struct rf_item_rec *it)
{
	struct item_vec *iv = arg;
	struct rf_item_rec *nv;
	size_t cap;

	if (iv->n == iv->cap) {
		cap = iv->cap ? iv->cap * 2 : 64;
		if ((nv = reallocarray(iv->v, cap, sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		iv->v = nv;
		iv->cap = cap;
	}
	iv->v[iv->n++] = *it;
	return 0;
}

int
rf_incident_load_items(const struct rf_incident_ctx *c, int64_t id,
    const char *tenant, const char *state, struct item_vec *iv)
{
	memset(iv, 0, sizeof(*iv));
	return rf_store_item_foreach(
	    c->st, id, tenant, state, collect_item, iv);
}

int
rf_incident_load(
    const struct rf_incident_ctx *c, int64_t id, struct rf_incident_rec *inc)
{
	int r;

	if ((r = rf_store_incident_get(c->st, id, inc)) == RF_ERR_NOT_FOUND)
		return rf_err_set(r,
		    "no incident %lld: see 'ringfence incident list'",
		    (long long)id);
	return r;
}
