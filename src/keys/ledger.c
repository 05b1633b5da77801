/*
 * ledger.c: keyd's own memory of revocations and of the keys it took out
 * of service (ledger.h).
 *
 * The file is text, one record a line, appended and fsync'd:
 *   r SERIAL ISSUER NOTAFTER   a certificate seen revoked
 *   k KEYID                    a key disabled or destroyed through keyd
 *   b CONNECTOR TENANT CONN    a binding an administrator made through keyd
 *   c CONNECTOR                a connector an administrator revoked
 *   l KEYID                    a key keyd made for serve's TLS
 *   m KEYID ROLE               a CA key keyd made (or found at first use)
 *                              as root, issuing, ocsp or audit
 *   a TENANT CONN KEYID        a connection an incident opened on, whose
 *                              credential's key KEYID it replaces
 *   x TENANT CONN KEYID        ... no longer affected (contained, waived)
 *   s 2                        the store's bindings and revoked connectors
 *                              were taken (at first use, or on upgrade)
 *   s 3                        ... and the store's CA keys ('m')
 *   t KEYID SIZE ROOT          a tree head keyd signed with KEYID (the last
 *                              such line is the one kept)
 *   p INDEX                    the record's leaves before INDEX are read
 * A torn last line (a kill -9 during the append) is ignored when loading;
 * its leaves are read again. In memory: the entries in an array and an
 * open-addressing index on the kind and the serial or key id.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "common/config.h"
#include "keys/ledger.h"
#include "store/store_connector.h"
#include "store/store_incident.h"

struct ledger_ent {
	char kind;  /* 'r': a revoked certificate, 'k': a key, 'b': a binding,
		       'c': a revoked connector, 'l': serve's TLS key, 'm':
		       a CA key (its role in issuer), 'a' /
		       'x': an incident's item affected / no longer, 'n': in
		       memory only, a connection's items affected now */
	char *name; /* serial, key id, "C T N", C, "T C I" (malloc'd) */
	char issuer[64]; /* 'r' */
	int64_t not_after;
};

struct sth_head {
	char key[65];
	uint64_t size;
	uint8_t root[RF_HASH_LEN];
};

struct rf_ledger {
	pthread_mutex_t mu;
	int fd;
	char path[RF_PATH_MAX];
	struct ledger_ent *v;
	size_t n, cap;
	uint32_t *slot; /* index + 1 into v; 0: empty */
	size_t nslot;	/* a power of two, at least 2 * n */
	size_t saved;	/* v[0..saved) are in the file */
	uint64_t pos;	/* leaves before pos are read */
	int fresh;	/* created now: seeded from the store first */
	int seeded;	/* the store's bindings and revoked connectors taken */
	int seed_saved; /* and "s 2" is in the file */
	int cas_seeded; /* the store's CA keys taken */
	int cas_saved;	/* and "s 3" is in the file */
	/* The largest tree head keyd signed with each key. */
	struct sth_head *heads;
	size_t nheads;
};

static uint32_t
name_hash(char kind, const char *s)
{
	uint32_t h = (2166136261u ^ (uint8_t)kind) * 16777619u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct ledger_ent *
find(struct rf_ledger *l, char kind, const char *name)
{
	struct ledger_ent *e;
	size_t i;

	if (l->nslot == 0)
		return NULL;
	for (i = name_hash(kind, name) & (l->nslot - 1); l->slot[i] != 0;
	     i = (i + 1) & (l->nslot - 1)) {
		e = &l->v[l->slot[i] - 1];
		if (e->kind == kind && strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

static int
rehash(struct rf_ledger *l, size_t nslot)
{
	uint32_t *slot;
	size_t i, k;

	if ((slot = calloc(nslot, sizeof(*slot))) == NULL)
		return RF_ERR_ALLOC;
	for (k = 0; k < l->n; k++) {
		for (i = name_hash(l->v[k].kind, l->v[k].name) & (nslot - 1);
		     slot[i] != 0; i = (i + 1) & (nslot - 1))
			;
		slot[i] = (uint32_t)(k + 1);
	}
	free(l->slot);
	l->slot = slot;
	l->nslot = nslot;
	return 0;
}

/* Keep an entry in memory (not in the file); 1 if it was new. */
static int
keep(struct rf_ledger *l, char kind, const char *name, const char *issuer,
    int64_t not_after, int *added)
{
	struct ledger_ent *e;
	size_t cap;
	int r;

	*added = 0;
	if (find(l, kind, name) != NULL)
		return 0;
	if (l->n == l->cap) {
		cap = l->cap ? 2 * l->cap : 256;
		if (cap > UINT32_MAX - 1 ||
		    (e = realloc(l->v, cap * sizeof(*e))) == NULL)
			return RF_ERR_ALLOC;
		l->v = e;
		l->cap = cap;
	}
	e = &l->v[l->n];
	if ((e->name = strdup(name)) == NULL)
		return RF_ERR_ALLOC;
	l->n++;
	e->kind = kind;
	snprintf(e->issuer, sizeof(e->issuer), "%s", issuer);
	e->not_after = not_after;
	if (2 * l->n > l->nslot) {
		if ((r = rehash(l, l->nslot ? 2 * l->nslot : 1024)) != 0) {
			free(l->v[--l->n].name);
			return r;
		}
	} else {
		size_t i;

		for (i = name_hash(kind, name) & (l->nslot - 1);
		     l->slot[i] != 0; i = (i + 1) & (l->nslot - 1))
			;
		l->slot[i] = (uint32_t)l->n;
	}
	*added = 1;
	return 0;
}

static int
serial_ok(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n > 0 && n <= 40 && s[n] == '\0';
}

static int
key_id_ok(const char *s)
{
	return strspn(s, "0123456789abcdef") == 64 && s[64] == '\0';
}

int
rf_ledger_key_id_ok(const char *s)
{
	return key_id_ok(s);
}

const char *
rf_ledger_role(const char *s)
{
	static const char *const roles[] = {"root", "issuing", "ocsp", "audit"};
	size_t i;

	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(s, roles[i]) == 0)
			return roles[i];
	return NULL;
}

int
rf_ledger_kept_purpose(const char *s)
{
	return rf_ledger_role(s) != NULL || strcmp(s, "tls") == 0;
}

static int
role_ok(const char *s)
{
	return rf_ledger_role(s) != NULL;
}

/* A name part of a binding or a connector: printable, no space. */
static int
part_ok(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
			return 0;
	return 1;
}

/* A connection's name in the ledger, "TENANT CONN" (the key of its 'n'
 * entry). */
static void
conn_name(const char *tenant, const char *conn, char out[RF_LEDGER_NAME_MAX])
{
	snprintf(out, RF_LEDGER_NAME_MAX, "%.127s %.63s", tenant, conn);
}

/* An incident item's parts. */
static int
item_ok(const char *tenant, const char *conn, const char *key)
{
	return part_ok(tenant, 128) && part_ok(conn, 64) && key_id_ok(key);
}

/* A binding's key, "CONNECTOR TENANT CONN"; RF_ERR_ARG if a part is bad. */
static int
bind_name(const char *connector, const char *tenant, const char *conn,
    char out[RF_LEDGER_NAME_MAX])
{
	if (!part_ok(connector, 64) || !part_ok(tenant, 128) ||
	    !part_ok(conn, 64))
		return RF_ERR_ARG;
	snprintf(out, RF_LEDGER_NAME_MAX, "%s %s %s", connector, tenant, conn);
	return 0;
}

/*
 * An incident's item, named by the connection and the key of the
 * credential it replaces (keys are never reused): an 'i' entry whose
 * not_after is 1 while affected, 0 once no longer (the last word wins: a
 * waived credential may be affected by a later incident), and the count
 * of a connection's affected items (an 'n' entry) that rf_ledger_affected
 * reads. In the file, 'a' and 'x' lines; neither kind is written by
 * flush except an 'i' entry new since the last one. *changed: 0 if the
 * state stays, 1 for a new entry, 2 for one that was in the file.
 */
static int
set_item(struct rf_ledger *l, int affected, const char *tenant,
    const char *conn, const char *key, int *changed)
{
	char name[RF_LEDGER_NAME_MAX], tc[RF_LEDGER_NAME_MAX];
	struct ledger_ent *e;
	int added, r;

	*changed = 0;
	if (!item_ok(tenant, conn, key))
		return RF_ERR_ARG;
	conn_name(tenant, conn, tc);
	/* Parts below 128, 64 and 65 bytes: it fits whole. */
	snprintf(name, sizeof(name), "%.191s %.64s", tc, key);
	if ((e = find(l, 'i', name)) == NULL) {
		if (!affected)
			return 0; /* never affected: nothing to clear */
		if ((r = keep(l, 'i', name, "", 1, &added)) != 0)
			return r;
		*changed = 1;
	} else if (e->not_after == affected)
		return 0;
	else {
		e->not_after = affected;
		*changed = (size_t)(e - l->v) < l->saved ? 2 : 1;
	}
	if ((e = find(l, 'n', tc)) == NULL) {
		if ((r = keep(l, 'n', tc, "", 0, &added)) != 0)
			return r;
		e = find(l, 'n', tc);
	}
	e->not_after += affected ? 1 : -1;
	return 0;
}

/* The tree head kept for key (NULL: none). A handful of keys at most. */
static struct sth_head *
head_of(struct rf_ledger *l, const char *key)
{
	size_t i;

	for (i = 0; i < l->nheads; i++)
		if (strcmp(l->heads[i].key, key) == 0)
			return &l->heads[i];
	return NULL;
}

/* Keep size and root as key's head (in memory: the caller wrote it). */
static int
set_head(struct rf_ledger *l, const char *key, uint64_t size,
    const uint8_t root[RF_HASH_LEN])
{
	struct sth_head *h;

	if ((h = head_of(l, key)) == NULL) {
		if ((h = realloc(l->heads, (l->nheads + 1) * sizeof(*h))) ==
		    NULL)
			return RF_ERR_ALLOC;
		l->heads = h;
		h = &l->heads[l->nheads++];
		snprintf(h->key, sizeof(h->key), "%s", key);
	}
	h->size = size;
	memcpy(h->root, root, RF_HASH_LEN);
	return 0;
}

/* Load every whole line; *end: the offset after the last one. */
static int
load(struct rf_ledger *l, FILE *f, off_t *end)
{
	char line[2 * RF_LEDGER_NAME_MAX], serial[64], issuer[80];
	char a[RF_LEDGER_NAME_MAX], b[RF_LEDGER_NAME_MAX];
	char c[RF_LEDGER_NAME_MAX], name[RF_LEDGER_NAME_MAX];
	uint8_t root[RF_HASH_LEN];
	size_t rootlen;
	int64_t na;
	uint64_t pos;
	int added, v, r;

	*end = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strchr(line, '\n') == NULL)
			break; /* torn: read those leaves again */
		*end += (off_t)strlen(line);
		if (sscanf(line, "r %63s %79s %" SCNd64, serial, issuer, &na) ==
			3 &&
		    serial_ok(serial) && strlen(issuer) < 64) {
			if ((r = keep(l, 'r', serial, issuer, na, &added)) != 0)
				return r;
		} else if (sscanf(line, "k %79s", issuer) == 1 &&
		    key_id_ok(issuer)) {
			if ((r = keep(l, 'k', issuer, "", 0, &added)) != 0)
				return r;
		} else if (sscanf(line, "l %79s", issuer) == 1 &&
		    key_id_ok(issuer)) {
			if ((r = keep(l, 'l', issuer, "", 0, &added)) != 0)
				return r;
		} else if (sscanf(line, "m %79s %15s", issuer, a) == 2 &&
		    key_id_ok(issuer) && role_ok(a)) {
			if ((r = keep(l, 'm', issuer, a, 0, &added)) != 0)
				return r;
		} else if (sscanf(line, "b %255s %255s %255s", a, b, c) == 3 &&
		    bind_name(a, b, c, name) == 0) {
			if ((r = keep(l, 'b', name, "", 0, &added)) != 0)
				return r;
		} else if ((line[0] == 'a' || line[0] == 'x') &&
		    sscanf(line + 1, " %255s %255s %255s", a, b, c) == 3) {
			if ((r = set_item(l, line[0] == 'a', a, b, c, &v)) !=
				0 &&
			    r != RF_ERR_ARG)
				return r;
		} else if (sscanf(line, "c %255s", a) == 1 &&
		    part_ok(a, RF_LEDGER_PART_MAX)) {
			if ((r = keep(l, 'c', a, "", 0, &added)) != 0)
				return r;
		} else if (sscanf(line, "t %64s %" SCNu64 " %64s", a, &pos,
			       b) == 3 &&
		    key_id_ok(a) &&
		    rf_unhex(b, root, sizeof(root), &rootlen) == 0 &&
		    rootlen == RF_HASH_LEN) {
			if ((r = set_head(l, a, pos, root)) != 0)
				return r;
		} else if (sscanf(line, "s %d", &v) == 1 && v >= 2) {
			l->seeded = l->seed_saved = 1;
			if (v >= 3)
				l->cas_seeded = l->cas_saved = 1;
		} else if (sscanf(line, "p %" SCNu64, &pos) == 1)
			l->pos = pos;
	}
	return 0;
}

int
rf_ledger_open(const char *path, struct rf_ledger **out)
{
	struct rf_ledger *l;
	struct stat sb;
	FILE *f = NULL;
	off_t end;
	int r, fd2;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return RF_ERR_ALLOC;
	pthread_mutex_init(&l->mu, NULL);
	l->fd = -1;
	snprintf(l->path, sizeof(l->path), "%s", path);
	if ((l->fd = open(
		 path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		r = rf_err_set(RF_ERR_IO, "revocation ledger %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (fstat(l->fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (sb.st_mode & 077) != 0) {
		r = rf_err_set(RF_ERR_IO,
		    "revocation ledger %s must be a file of keyd's user "
		    "alone: chmod 600 %s",
		    path, path);
		goto fail;
	}
	l->fresh = sb.st_size == 0;
	if ((fd2 = dup(l->fd)) < 0 || (f = fdopen(fd2, "r")) == NULL) {
		if (fd2 >= 0)
			close(fd2);
		r = rf_err_set(RF_ERR_IO, "revocation ledger %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	rewind(f);
	r = load(l, f, &end);
	fclose(f);
	if (r != 0)
		goto fail;
	/* A torn tail goes, so that the next append starts a line. */
	if (end < sb.st_size && ftruncate(l->fd, end) != 0) {
		r = rf_err_set(RF_ERR_IO, "revocation ledger %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	l->saved = l->n;
	*out = l;
	return 0;
fail:
	rf_ledger_free(l);
	return r;
}

void
rf_ledger_free(struct rf_ledger *l)
{
	size_t i;

	if (l == NULL)
		return;
	if (l->fd >= 0)
		close(l->fd);
	pthread_mutex_destroy(&l->mu);
	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	free(l->slot);
	free(l->heads);
	free(l);
}

/* A follow's context. */
struct follow {
	struct rf_ledger *l;
	struct rf_store *st;
};

/* A certificate the store says revoked now, or a revoke leaf names. */
static int
add_cert(struct follow *fw, const char *serial)
{
	struct rf_cert_rec c;
	int added, r;

	if (!serial_ok(serial) || find(fw->l, 'r', serial) != NULL)
		return 0;
	memset(&c, 0, sizeof(c));
	if ((r = rf_store_cert_get(fw->st, serial, &c)) != 0) {
		rf_err_clear(); /* not a certificate of ours: nothing */
		return 0;
	}
	r = keep(fw->l, 'r', c.serial, c.issuer, c.not_after, &added);
	rf_cert_rec_clear(&c);
	return r;
}

static int
seed_one(void *arg, const struct rf_cert_rec *c)
{
	struct follow *fw = arg;
	int added;

	return keep(fw->l, 'r', c->serial, c->issuer, c->not_after, &added);
}

/* The connectors of the store, for seeding. */
struct names {
	char (*v)[64];
	size_t n, cap;
};

static int
connector_one(void *arg, const struct rf_connector_rec *c)
{
	struct names *ns = arg;
	void *p;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? 2 * ns->cap : 64;
		if ((p = realloc(ns->v, ns->cap * sizeof(*ns->v))) == NULL)
			return RF_ERR_ALLOC;
		ns->v = p;
	}
	snprintf(ns->v[ns->n++], sizeof(*ns->v), "%s", c->name);
	return 0;
}

/* The connector whose bindings seed_bind keeps. */
struct seed_bind_arg {
	struct rf_ledger *l;
	const char *connector;
};

static int
seed_bind(void *arg, const char *tenant, const char *conn)
{
	struct seed_bind_arg *a = arg;
	char name[RF_LEDGER_NAME_MAX];
	int added;

	if (bind_name(a->connector, tenant, conn, name) != 0)
		return 0; /* not a name the CLI makes: never bound for keyd */
	return keep(a->l, 'b', name, "", 0, &added);
}

static int
item_one(void *arg, const struct rf_item_rec *it)
{
	int changed, r;

	r = set_item(arg, 1, it->tenant, it->name, it->old_key, &changed);
	return r == RF_ERR_ARG ? 0 : r; /* a name the CLI does not make */
}

/* The open incidents, for seeding. */
struct ids {
	int64_t *v;
	size_t n, cap;
};

static int
incident_one(void *arg, const struct rf_incident_rec *inc)
{
	struct ids *ids = arg;
	void *p;

	if (strcmp(inc->state, "open") != 0)
		return 0;
	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? 2 * ids->cap : 16;
		if ((p = realloc(ids->v, ids->cap * sizeof(*ids->v))) == NULL)
			return RF_ERR_ALLOC;
		ids->v = p;
	}
	ids->v[ids->n++] = inc->id;
	return 0;
}

/*
 * The store's TLS key, open incidents' affected connections, bindings and
 * revoked connectors, taken once: at first use and on the first start of
 * a keyd that keeps them. From then on only keyd's own key generation adds
 * a TLS key (rf_ledger_tls_key), and only an administrator's request
 * through keyd a binding or an affected connection.
 */
static int
seed_connectors(struct rf_ledger *l, struct rf_store *st)
{
	struct names ns = {0};
	struct ids ids = {0};
	struct rf_connector_rec c;
	struct rf_key_rec kr;
	struct seed_bind_arg a;
	size_t i;
	int added, r;

	if ((r = rf_store_key_by_purpose(st, "tls", &kr)) == 0 &&
	    key_id_ok(kr.id))
		r = keep(l, 'l', kr.id, "", 0, &added);
	else if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		r = 0;
	}
	if (r != 0 ||
	    (r = rf_store_incident_foreach(st, incident_one, &ids)) != 0)
		goto out;
	for (i = 0; i < ids.n && r == 0; i++)
		r = rf_store_item_foreach(
		    st, ids.v[i], NULL, "affected", item_one, l);
	if (r != 0 ||
	    (r = rf_store_connector_foreach(st, connector_one, &ns)) != 0)
		goto out;
	a.l = l;
	for (i = 0; i < ns.n && r == 0; i++) {
		if (!part_ok(ns.v[i], 64))
			continue;
		a.connector = ns.v[i];
		if ((r = rf_store_binding_foreach(
			 st, ns.v[i], seed_bind, &a)) != 0)
			break;
		if ((r = rf_store_connector_get(st, ns.v[i], &c)) == 0 &&
		    strcmp(c.state, "active") != 0)
			r = keep(l, 'c', ns.v[i], "", 0, &added);
		else if (r == RF_ERR_NOT_FOUND) {
			rf_err_clear(); /* gone since it was listed */
			r = 0;
		}
	}
	if (r == 0)
		l->seeded = 1;
out:
	free(ns.v);
	free(ids.v);
	return r;
}

/*
 * The store's CA keys, taken once as the TLS key is (seed_connectors): at
 * first use, or by the first keyd that keeps them. From then on a key is
 * one only when keyd made it so (rf_ledger_ca_key): the store renaming a
 * key's purpose makes no key a CA's, and no CA key another's.
 */
static int
seed_cas(struct rf_ledger *l, struct rf_store *st)
{
	struct rf_key_rec *k = NULL;
	size_t n = 0, i;
	int added, r;

	if ((r = rf_store_key_list(st, &k, &n)) != 0)
		return r;
	for (i = 0; i < n && r == 0; i++)
		if (key_id_ok(k[i].id) && role_ok(k[i].purpose))
			r = keep(l, 'm', k[i].id, k[i].purpose, 0, &added);
	free(k);
	if (r == 0)
		l->cas_seeded = 1;
	return r;
}

static int
leaf_one(void *arg, const struct rf_leaf_rec *lf)
{
	struct follow *fw = arg;
	json_t *o;
	const char *ref;
	int r = 0;

	if (lf->type == NULL || strcmp(lf->type, "revoke") != 0)
		return 0;
	if ((o = json_loadb((const char *)lf->data, lf->len, 0, NULL)) == NULL)
		return 0; /* audit verify reports a malformed leaf */
	if ((ref = json_string_value(json_object_get(o, "ref"))) != NULL)
		r = add_cert(fw, ref);
	json_decref(o);
	return r;
}

/* Append whole lines, durably; a failed write is cut off again, so that
 * the next append starts a line. */
static int
append(struct rf_ledger *l, const char *buf, size_t len)
{
	off_t start = lseek(l->fd, 0, SEEK_END);
	size_t off;
	ssize_t w;
	int r;

	for (off = 0; off < len; off += (size_t)w)
		if ((w = write(l->fd, buf + off, len - off)) < 0) {
			if (errno == EINTR) {
				w = 0;
				continue;
			}
			r = rf_err_set(RF_ERR_IO, "revocation ledger %s: %s",
			    l->path, strerror(errno));
			if (start >= 0 && ftruncate(l->fd, start) != 0)
				rf_err_set(r, "revocation ledger %s: %s",
				    l->path, strerror(errno));
			return r;
		}
	if (fdatasync(l->fd) != 0)
		return rf_err_set(RF_ERR_IO, "revocation ledger %s: %s",
		    l->path, strerror(errno));
	return 0;
}

/*
 * Append extra (whole lines), the entries not yet in the file, and pos,
 * durably. Until it
 * succeeds they stay in memory (and refuse as well), and are written by
 * the next flush.
 */
static int
flush_with(struct rf_ledger *l, uint64_t pos, const char *extra, size_t xlen)
{
	char *buf, *p;
	size_t i;
	int r;

	if ((buf = malloc((l->n - l->saved) * (RF_LEDGER_NAME_MAX + 100) +
		 xlen + 40)) == NULL)
		return RF_ERR_ALLOC;
	if (xlen > 0)
		memcpy(buf, extra, xlen);
	p = buf + xlen;
	for (i = l->saved; i < l->n; i++)
		if (l->v[i].kind == 'n')
			continue; /* memory only */
		else if (l->v[i].kind == 'i')
			p += sprintf(p, "%c %s\n",
			    l->v[i].not_after ? 'a' : 'x', l->v[i].name);
		else if (l->v[i].kind == 'm')
			p += sprintf(
			    p, "m %s %s\n", l->v[i].name, l->v[i].issuer);
		else if (l->v[i].kind == 'r')
			p += sprintf(p, "r %s %s %" PRId64 "\n", l->v[i].name,
			    l->v[i].issuer, l->v[i].not_after);
		else
			p += sprintf(p, "%c %s\n", l->v[i].kind, l->v[i].name);
	if (l->seeded && !l->seed_saved)
		p += sprintf(p, "s 2\n");
	if (l->cas_seeded && !l->cas_saved)
		p += sprintf(p, "s 3\n");
	p += sprintf(p, "p %" PRIu64 "\n", pos);
	r = append(l, buf, (size_t)(p - buf));
	free(buf);
	if (r != 0)
		return r;
	l->saved = l->n;
	l->seed_saved = l->seeded;
	l->cas_saved = l->cas_seeded;
	l->pos = pos;
	return 0;
}

static int
flush(struct rf_ledger *l, uint64_t pos)
{
	return flush_with(l, pos, NULL, 0);
}

int
rf_ledger_follow(struct rf_ledger *l, struct rf_store *st)
{
	struct follow fw;
	struct rf_cert_filter f;
	uint64_t count = 0;
	int r;

	fw.l = l;
	fw.st = st;
	pthread_mutex_lock(&l->mu);
	if ((r = rf_store_leaf_count(st, &count)) != 0)
		goto out;
	/* A record shorter than the one followed is another (a new state
	 * beside this custody folder): its revocations are taken as at first
	 * use. Nothing already kept is forgotten. */
	if (count < l->pos)
		l->fresh = 1;
	if (count <= l->pos && !l->fresh && l->saved == l->n && l->seeded &&
	    l->cas_seeded)
		goto out;
	if (!l->seeded && (r = seed_connectors(l, st)) != 0)
		goto out;
	if (!l->cas_seeded && (r = seed_cas(l, st)) != 0)
		goto out;
	if (l->fresh) {
		/* First use: what the store says now is the start. */
		memset(&f, 0, sizeof(f));
		f.only_revoked = 1;
		if ((r = rf_store_cert_foreach(st, &f, seed_one, &fw)) != 0)
			goto out;
	} else if (count > l->pos &&
	    (r = rf_store_leaf_foreach(st, l->pos, count, leaf_one, &fw)) != 0)
		goto out;
	if ((r = flush(l, count)) == 0)
		l->fresh = 0;
out:
	pthread_mutex_unlock(&l->mu);
	return r;
}

/* 1 if the ledger holds name as kind, under its lock. */
static int
holds(struct rf_ledger *l, char kind, const char *name)
{
	int has;

	pthread_mutex_lock(&l->mu);
	has = find(l, kind, name) != NULL;
	pthread_mutex_unlock(&l->mu);
	return has;
}

int
rf_ledger_has(struct rf_ledger *l, const char *serial)
{
	return holds(l, 'r', serial);
}

int
rf_ledger_foreach(struct rf_ledger *l, const char *issuer, int64_t at,
    int (*fn)(void *arg, const char *serial), void *arg)
{
	size_t i;
	int r = 0;

	pthread_mutex_lock(&l->mu);
	for (i = 0; i < l->n && r == 0; i++)
		if (l->v[i].kind == 'r' && l->v[i].not_after >= at &&
		    strcmp(l->v[i].issuer, issuer) == 0)
			r = fn(arg, l->v[i].name);
	pthread_mutex_unlock(&l->mu);
	return r;
}

int
rf_ledger_retire_keys(
    struct rf_ledger *l, const char *const *ids, const uint8_t *want, size_t n)
{
	size_t i;
	int added, r = 0;

	pthread_mutex_lock(&l->mu);
	for (i = 0; i < n && r == 0; i++)
		if ((want == NULL || want[i]) && key_id_ok(ids[i]))
			r = keep(l, 'k', ids[i], "", 0, &added);
	/* Kept in memory even if the write fails: refused either way. */
	if (r == 0 && l->saved < l->n)
		r = flush(l, l->pos);
	pthread_mutex_unlock(&l->mu);
	return r;
}

int
rf_ledger_key_retired(struct rf_ledger *l, const char *id)
{
	return holds(l, 'k', id);
}

/* Keep one entry, durably. Kept in memory even if the write fails: a
 * revocation then refuses either way, and a binding the caller does not
 * write into the store binds nothing (both must say it). */
static int
note_with(struct rf_ledger *l, char kind, const char *name, const char *issuer)
{
	int added, r;

	pthread_mutex_lock(&l->mu);
	if ((r = keep(l, kind, name, issuer, 0, &added)) == 0 &&
	    l->saved < l->n)
		r = flush(l, l->pos);
	pthread_mutex_unlock(&l->mu);
	return r;
}

static int
note(struct rf_ledger *l, char kind, const char *name)
{
	return note_with(l, kind, name, "");
}

int
rf_ledger_bind(struct rf_ledger *l, const char *connector, const char *tenant,
    const char *conn)
{
	char name[RF_LEDGER_NAME_MAX];

	if (bind_name(connector, tenant, conn, name) != 0)
		return rf_err_set(RF_ERR_ARG,
		    "a binding names a connector, a tenant and a connection, "
		    "each printable without spaces");
	return note(l, 'b', name);
}

int
rf_ledger_bound(struct rf_ledger *l, const char *connector, const char *tenant,
    const char *conn)
{
	char name[RF_LEDGER_NAME_MAX];

	return bind_name(connector, tenant, conn, name) == 0 &&
	    holds(l, 'b', name);
}

int
rf_ledger_revoke_connector(struct rf_ledger *l, const char *connector)
{
	if (!part_ok(connector, 64))
		return rf_err_set(RF_ERR_ARG,
		    "a connector's name is printable without spaces");
	return note(l, 'c', connector);
}

int
rf_ledger_connector_revoked(struct rf_ledger *l, const char *connector)
{
	return holds(l, 'c', connector);
}

int
rf_ledger_sth_last(struct rf_ledger *l, const char *key_id, uint64_t *size,
    uint8_t root[RF_HASH_LEN])
{
	struct sth_head *h;

	pthread_mutex_lock(&l->mu);
	if ((h = head_of(l, key_id)) != NULL) {
		*size = h->size;
		memcpy(root, h->root, RF_HASH_LEN);
	}
	pthread_mutex_unlock(&l->mu);
	return h != NULL;
}

int
rf_ledger_sth_keep(struct rf_ledger *l, const char *key_id, uint64_t size,
    const uint8_t root[RF_HASH_LEN])
{
	char line[200], hex[2 * RF_HASH_LEN + 1];
	struct sth_head *h;
	int n, r = 0;

	if (!key_id_ok(key_id))
		return rf_err_set(RF_ERR_ARG, "a tree head's key id is 64 hex");
	pthread_mutex_lock(&l->mu);
	if ((h = head_of(l, key_id)) == NULL || size > h->size) {
		rf_hex(root, RF_HASH_LEN, hex);
		n = snprintf(line, sizeof(line), "t %s %" PRIu64 " %s\n",
		    key_id, size, hex);
		if ((r = append(l, line, (size_t)n)) == 0)
			r = set_head(l, key_id, size, root);
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

int
rf_ledger_tls_key(struct rf_ledger *l, const char *id)
{
	if (!key_id_ok(id))
		return rf_err_set(RF_ERR_ARG, "a key id is 64 hex");
	return note(l, 'l', id);
}

int
rf_ledger_is_tls_key(struct rf_ledger *l, const char *id)
{
	return holds(l, 'l', id);
}

int
rf_ledger_ca_key(struct rf_ledger *l, const char *id, const char *role)
{
	if (!key_id_ok(id) || !role_ok(role))
		return rf_err_set(RF_ERR_ARG,
		    "a CA key is 64 hex, its role root, issuing, ocsp or "
		    "audit");
	return note_with(l, 'm', id, role);
}

int
rf_ledger_cas_taken(struct rf_ledger *l)
{
	int taken;

	pthread_mutex_lock(&l->mu);
	taken = l->cas_seeded;
	pthread_mutex_unlock(&l->mu);
	return taken;
}

const char *
rf_ledger_key_role(struct rf_ledger *l, const char *id)
{
	const struct ledger_ent *e;
	const char *role = NULL;

	pthread_mutex_lock(&l->mu);
	if ((e = find(l, 'm', id)) != NULL)
		role = rf_ledger_role(e->issuer);
	else if (find(l, 'l', id) != NULL)
		role = "tls";
	pthread_mutex_unlock(&l->mu);
	return role;
}

int
rf_ledger_items(struct rf_ledger *l, int affected,
    const struct rf_knote_item *v, size_t n, uint8_t *changed)
{
	char *extra = NULL, *p;
	size_t i;
	int ch, r = 0;

	for (i = 0; i < n; i++)
		if (!item_ok(v[i].tenant, v[i].conn, v[i].key))
			return rf_err_set(RF_ERR_ARG,
			    "an incident's item names a tenant, a connection "
			    "and the key its incident replaces");
	/* The lines of entries already in the file whose state moves. */
	if ((p = extra = malloc(n * (RF_LEDGER_NAME_MAX + 4) + 1)) == NULL)
		return RF_ERR_ALLOC;
	pthread_mutex_lock(&l->mu);
	for (i = 0; i < n && r == 0; i++) {
		r = set_item(
		    l, affected, v[i].tenant, v[i].conn, v[i].key, &ch);
		if (changed != NULL)
			changed[i] = ch != 0;
		if (ch == 2)
			p += sprintf(p, "%c %s %s %s\n", affected ? 'a' : 'x',
			    v[i].tenant, v[i].conn, v[i].key);
	}
	/* Kept in memory even if the write fails: an affected connection is
	 * refused either way, and a cleared one is still refused by the
	 * store until its caller commits. */
	if (r == 0 && (p > extra || l->saved < l->n))
		r = flush_with(l, l->pos, extra, (size_t)(p - extra));
	pthread_mutex_unlock(&l->mu);
	free(extra);
	return r;
}

int
rf_ledger_affected(struct rf_ledger *l, const char *tenant, const char *conn)
{
	char tc[RF_LEDGER_NAME_MAX];
	struct ledger_ent *e;
	int has;

	conn_name(tenant, conn, tc);
	pthread_mutex_lock(&l->mu);
	has = (e = find(l, 'n', tc)) != NULL && e->not_after > 0;
	pthread_mutex_unlock(&l->mu);
	return has;
}

int
rf_knote_item_ok(const char *tenant, const char *conn, const char *key)
{
	return item_ok(tenant, conn, key);
}
