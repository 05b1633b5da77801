/*
 * keyconn.c: the connection a key was made for. contain generates a
 * connection's key for its incident (made_for "incident-ID" on the key's
 * store record, rf_keygen) labelled rf_keys_tenant_label(tenant, name):
 * past 64 characters the label is shortened ("~" and a hash), so the
 * label alone does not name the connection. The incident's items do, by
 * their tenant and the label of their pair, as a rerun after a kill finds
 * the keys (reissue.c, taken_find).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "incident/incident.h"
#include "keys/keys.h"
#include "store/store.h"
#include "store/store_incident.h"

/* One connection of an incident, by its tenant and its key's label. */
struct keyconn {
	int64_t incident;
	char tenant[128];
	char label[RF_KEY_LABEL_MAX + 1];
	char by[200]; /* "tenant/name" */
};

struct rf_incident_keyconn {
	struct rf_store *st; /* borrowed */
	struct keyconn *v;   /* sorted by incident, tenant, label */
	size_t n, cap;
	int64_t *read; /* the incidents whose items are in v */
	size_t nread, capread;
};

int
rf_incident_keyconn_new(struct rf_store *st, struct rf_incident_keyconn **out)
{
	struct rf_incident_keyconn *kc;

	*out = NULL;
	if ((kc = calloc(1, sizeof(*kc))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	kc->st = st;
	*out = kc; /* now the caller's */
	return 0;
}

void
rf_incident_keyconn_free(struct rf_incident_keyconn *kc)
{
	if (kc == NULL)
		return;
	free(kc->v);
	free(kc->read);
	free(kc);
}

static int
keyconn_cmp(const void *a, const void *b)
{
	const struct keyconn *x = a, *y = b;
	int c;

	if (x->incident != y->incident)
		return x->incident < y->incident ? -1 : 1;
	if ((c = strcmp(x->tenant, y->tenant)) != 0)
		return c;
	return strcmp(x->label, y->label);
}

/* The incident of made_for "incident-ID" (reissue.c incident_ref); -1
 * when made_for names none. */
static int
made_for_incident(const char *made_for, int64_t *id)
{
	static const char pre[] = "incident-";
	const char *digits = made_for + sizeof(pre) - 1;
	char *end;
	long long v;

	if (strncmp(made_for, pre, sizeof(pre) - 1) != 0)
		return -1;
	errno = 0;
	v = strtoll(digits, &end, 10);
	if (end == digits || *end != '\0' || v <= 0 || errno == ERANGE)
		return -1;
	*id = v;
	return 0;
}

static int
item_add(void *arg, const struct rf_item_rec *it)
{
	struct rf_incident_keyconn *kc = arg;
	struct keyconn *e;
	int r;

	if (kc->n == kc->cap) {
		size_t cap = kc->cap ? 2 * kc->cap : 64;

		if ((e = reallocarray(kc->v, cap, sizeof(*e))) == NULL)
			return rf_err_set(RF_ERR_ALLOC, "out of memory");
		kc->v = e;
		kc->cap = cap;
	}
	e = &kc->v[kc->n];
	memset(e, 0, sizeof(*e));
	if ((r = rf_keys_tenant_label(it->tenant, it->name, e->label)) != 0)
		return r;
	e->incident = it->incident;
	snprintf(e->tenant, sizeof(e->tenant), "%s", it->tenant);
	snprintf(e->by, sizeof(e->by), "%s/%s", it->tenant, it->name);
	kc->n++;
	return 0;
}

/* Read incident id's items into kc->v, once. */
static int
incident_read(struct rf_incident_keyconn *kc, int64_t id)
{
	int64_t *nr;
	size_t i;
	int r;

	for (i = 0; i < kc->nread; i++)
		if (kc->read[i] == id)
			return 0;
	if (kc->nread == kc->capread) {
		size_t cap = kc->capread ? 2 * kc->capread : 8;

		if ((nr = reallocarray(kc->read, cap, sizeof(*nr))) == NULL)
			return rf_err_set(RF_ERR_ALLOC, "out of memory");
		kc->read = nr;
		kc->capread = cap;
	}
	if ((r = rf_store_item_foreach(kc->st, id, NULL, NULL, item_add, kc)) !=
	    0)
		return r;
	kc->read[kc->nread++] = id;
	if (kc->n > 1)
		qsort(kc->v, kc->n, sizeof(*kc->v), keyconn_cmp);
	return 0;
}

int
rf_incident_keyconn_find(
    struct rf_incident_keyconn *kc, const struct rf_key_rec *k, char by[200])
{
	struct keyconn want;
	const struct keyconn *e;
	int r;

	by[0] = '\0';
	memset(&want, 0, sizeof(want));
	/* Only a tenant's key is a connection's. */
	if (k->tenant[0] == '\0' ||
	    made_for_incident(k->made_for, &want.incident) != 0)
		return RF_ERR_NOT_FOUND;
	if ((r = incident_read(kc, want.incident)) != 0)
		return r;
	snprintf(want.tenant, sizeof(want.tenant), "%s", k->tenant);
	snprintf(want.label, sizeof(want.label), "%s", k->label);
	if (kc->n == 0 ||
	    (e = bsearch(&want, kc->v, kc->n, sizeof(*kc->v), keyconn_cmp)) ==
		NULL)
		return RF_ERR_NOT_FOUND;
	snprintf(by, 200, "%s", e->by);
	return 0;
}
