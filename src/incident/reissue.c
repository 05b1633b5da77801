/*
 * reissue.c: step 4 of containment (contain.c), the successors. Every
 * connection still affected gets a new key (the standby pool's, one an
 * earlier run reserved, or one made in the token), recorded before any
 * certificate names it, and a new certificate of the old one's shape,
 * issued in batches; the connection moves with its certificate, in the
 * same transaction. The revocation is published and the old keys are
 * disabled (contain.c) before the first certificate is issued.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "connector/connector.h"
#include "incident/incident.h"
#include "incident/incident_int.h"
#include "pool/pool.h"
#include "store/store.h"
#include "store/store_pool.h"
#include "store/store_incident.h"

/*
 * Certificates a reissue batch commits at once (keyd signs the next batch
 * meanwhile): the store pages a commit writes grow slower than the batch
 * (at 36,000 connections, 200 ms for 500 certificates, 600 for 2,000).
 */
#define CONTAIN_BATCH 2000
/*
 * The first batch and the last ones are smaller (rf_ca_issue_pipelined):
 * nothing overlaps the first one's preparation nor the last one's commit.
 */
#define CONTAIN_BATCH_MIN 250
/*
 * Keys the pool lacks are made in parts of about a second at most, so that
 * progress (and `incident status`) moves while the token works: SoftHSM
 * makes an RSA-2048 key in about 0.2-0.4 s of a core.
 */
#define CONTAIN_GEN_PART_RSA 4

/* What the pool and keyd call an incident's keys: "incident-ID". */
static void
incident_ref(int64_t id, char ref[32])
{
	snprintf(ref, 32, "incident-%lld", (long long)id);
}

static int
aside_add(
    struct aside_vec *av, const struct rf_item_rec *it, const char *serial)
{
	struct aside *nv;
	size_t cap;

	if (av->n == av->cap) {
		cap = av->cap ? av->cap * 2 : 16;
		if ((nv = reallocarray(av->v, cap, sizeof(*nv))) == NULL)
			return RF_ERR_ALLOC;
		av->v = nv;
		av->cap = cap;
	}
	av->v[av->n].it = *it;
	snprintf(
	    av->v[av->n].serial, sizeof(av->v[av->n].serial), "%s", serial);
	av->n++;
	return 0;
}

static int
elsewhere_add(void *arg, const struct rf_item_rec *it, const char *serial)
{
	return aside_add(arg, it, serial);
}

static int
conn_id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Before any key is taken for them: connections whose current credential
 * is not the old one their item recorded got one elsewhere after the
 * incident opened (an older ringfence's issue did not refuse them).
 * Contain replaces only what it revoked; pushing that credential out
 * would leave it valid and named by nothing, so such a connection is left
 * alone, and does not hold up the others (found in one query).
 */
int
rf_incident_set_aside(const struct rf_incident_ctx *c, int64_t id,
    struct item_vec *iv, struct aside_vec *av)
{
	int64_t *ids = NULL;
	struct rf_item_rec *its = NULL;
	size_t i, k, n0 = av->n;
	int r;

	if ((r = rf_store_item_elsewhere(c->st, id, elsewhere_add, av)) != 0 ||
	    av->n == n0)
		return r;
	if ((ids = calloc(av->n - n0, sizeof(*ids))) == NULL ||
	    (its = calloc(av->n - n0, sizeof(*its))) == NULL) {
		free(ids);
		return RF_ERR_ALLOC;
	}
	for (i = n0; i < av->n; i++) {
		ids[i - n0] = av->v[i].it.conn;
		its[i - n0] = av->v[i].it;
	}
	/* Affected in keyd's ledger again: a run killed after it told the
	 * ledger they were not (before issuing) left them signing. */
	r = rf_incident_note_items(c, 1, its, av->n - n0, NULL, NULL, NULL);
	free(its);
	if (r != 0) {
		free(ids);
		return r;
	}
	qsort(ids, av->n - n0, sizeof(*ids), conn_id_cmp);
	for (i = k = 0; i < iv->n; i++)
		if (bsearch(&iv->v[i].conn, ids, av->n - n0, sizeof(*ids),
			conn_id_cmp) == NULL)
			iv->v[k++] = iv->v[i];
	iv->n = k;
	free(ids);
	return 0;
}

static int item_waived(
    const struct rf_incident_ctx *c, const struct rf_item_rec *it, int *waived);

/*
 * Inside the issuance transaction: the connection moves with its cert.
 * Request i is for items[idx[i]].
 */
struct issue_hook {
	const struct rf_incident_ctx *c;
	struct rf_item_rec *items;
	const size_t *idx;
	/* The request whose connection got a credential elsewhere since
	 * rf_incident_set_aside (SIZE_MAX: none), and that credential; the
	 * request whose connection was waived since this run found it
	 * affected (SIZE_MAX: none). */
	size_t elsewhere;
	char serial[41];
	size_t waived;
};

static int
issued_in_tx(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct issue_hook *h = arg;
	struct rf_item_rec *it = &h->items[h->idx[i]];
	struct rf_conn_rec conn;
	int r, waived;

	(void)key_id;
	/*
	 * The connection still has the credential this incident replaces.
	 * One given it elsewhere since the check before the keys were taken
	 * rolls this batch back, and the caller issues it again without
	 * that connection.
	 */
	if ((r = rf_store_conn_get(h->c->st, it->tenant, it->name, &conn)) != 0)
		return r;
	if (strcmp(conn.serial, it->old_serial) != 0) {
		h->elsewhere = i;
		snprintf(h->serial, sizeof(h->serial), "%s", conn.serial);
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s got credential %s elsewhere while "
		    "incident %lld contained it",
		    it->tenant, it->name, conn.serial, (long long)it->incident);
	}
	snprintf(it->new_serial, sizeof(it->new_serial), "%s", serial);
	snprintf(it->state, sizeof(it->state), "contained");
	it->updated = rf_now();
	/*
	 * In the issuing transaction, and only from "affected": if another
	 * contain of the same incident got there first, this batch rolls
	 * back (its keys are destroyed) rather than give the connection a
	 * second credential. Not "affected" any more: waived meanwhile, or
	 * contained by another run (the state is read only then, not for
	 * every certificate).
	 */
	r = rf_store_item_move(h->c->st, it, "affected");
	if (r == RF_ERR_STATE) {
		rf_err_clear();
		if ((r = item_waived(h->c, it, &waived)) != 0)
			return r;
		if (waived) {
			/* Rolled back; issued again without it (the
			 * caller). */
			h->waived = i;
			snprintf(it->state, sizeof(it->state), "waived");
			it->new_serial[0] = '\0';
			return rf_err_set(RF_ERR_STATE,
			    "connection %s/%s of incident %lld was waived "
			    "while contain issued",
			    it->tenant, it->name, (long long)it->incident);
		}
		return rf_err_set(RF_ERR_STATE,
		    "connection %s/%s of incident %lld was contained by "
		    "another run at the same time: run contain again to "
		    "resume",
		    it->tenant, it->name, (long long)it->incident);
	}
	if (r != 0)
		return r;
	return rf_store_conn_set(
	    h->c->st, it->tenant, it->name, NULL, serial, it->updated, NULL);
}

/* After each committed batch of the reissue: the count and progress, and
 * which items are done (request i is for item idx[i]). */
struct issue_done {
	const struct rf_incident_ctx *c;
	struct rf_contain_report *rep;
	const size_t *idx;
	uint8_t *committed;
};

static void
issue_done(void *arg, size_t from, size_t k)
{
	struct issue_done *d = arg;
	size_t j;

	for (j = from; j < from + k; j++)
		d->committed[d->idx[j]] = 1;
	d->rep->issued += k;
	if (d->c->progress != NULL)
		rf_progress_add(d->c->progress, k);
}

/*
 * What the replacement of the old credential keeps: its profile, its key
 * algorithm and size (read from the certificate, so that a connector's own
 * RSA-2048 key from a CSR is replaced by an RSA-2048 key: Entra ID takes
 * RSA only; required_alg then applies what the connection requires), and
 * its subjectAltName DNS name.
 */
struct shape {
	enum rf_profile profile;
	enum rf_key_alg alg;
	char dns[256]; /* "" none */
};

static int
credential_shape(
    const struct rf_incident_ctx *c, const char *serial, struct shape *sh)
{
	struct rf_cert_rec old;
	struct rf_key_rec kr;
	GENERAL_NAMES *gens = NULL;
	const uint8_t *p;
	X509 *x = NULL;
	EVP_PKEY *pub;
	int r, i;

	memset(sh, 0, sizeof(*sh));
	memset(&old, 0, sizeof(old));
	if ((r = rf_store_cert_get(c->st, serial, &old)) != 0)
		return r;
	if (rf_profile_parse(old.profile, &sh->profile) != 0) {
		rf_err_clear();
		sh->profile = RF_PROFILE_CLIENT;
	}
	/*
	 * A key made in the token has a record naming its algorithm, under
	 * the SHA-256 of the SPKI the certificate holds: no need to decode
	 * the certificate (OpenSSL decodes its public key too, 0.2 ms) unless
	 * a server certificate's name is wanted, or the key is not ours.
	 */
	memset(&kr, 0, sizeof(kr));
	if (sh->profile != RF_PROFILE_SERVER &&
	    rf_store_key_get(c->st, old.key_id, &kr) == 0 &&
	    rf_key_alg_parse(kr.alg, &sh->alg) == 0) {
		r = 0;
		goto out;
	}
	rf_err_clear();
	p = old.der;
	if (old.der == NULL ||
	    (x = d2i_X509(NULL, &p, (long)old.derlen)) == NULL ||
	    (pub = X509_get0_pubkey(x)) == NULL) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "stored certificate %s does not parse", serial);
		goto out;
	}
	sh->alg = rf_key_alg_of_pub(pub);
	if (sh->profile == RF_PROFILE_SERVER &&
	    (gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) !=
		NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
			const ASN1_STRING *d;

			if (g->type != GEN_DNS)
				continue;
			d = g->d.dNSName;
			if ((size_t)ASN1_STRING_length(d) < sizeof(sh->dns)) {
				memcpy(sh->dns, ASN1_STRING_get0_data(d),
				    (size_t)ASN1_STRING_length(d));
				sh->dns[ASN1_STRING_length(d)] = '\0';
			}
			break;
		}
	}
	r = 0;
out:
	GENERAL_NAMES_free(gens);
	X509_free(x);
	rf_cert_rec_clear(&old);
	return r;
}

/*
 * A connection that requires a key algorithm (an entra connection: RSA;
 * rf_connector_conn_alg, which issue asks too) gets a key of it even when
 * the credential it replaces has another (an EC key that issue --csr-dir
 * let through before it asked): Entra ID takes RSA keys only.
 */
static int
required_alg(const struct rf_incident_ctx *c, const struct rf_item_rec *it,
    struct shape *sh)
{
	enum rf_key_alg need;
	int r;

	if ((r = rf_connector_conn_alg(c->st, it->tenant, it->name, &need)) !=
	    0)
		return r;
	sh->alg = rf_pool_conn_alg(sh->alg, need);
	return 0;
}

/* Every item's shape, in one read of the store rather than one each. */
static int
credential_shapes(const struct rf_incident_ctx *c, const struct item_vec *iv,
    struct shape *shapes)
{
	size_t i;
	int r, own;

	if ((r = rf_store_read_begin(c->st, &own)) != 0)
		return r;
	for (i = 0; i < iv->n && r == 0; i++)
		if ((r = credential_shape(
			 c, iv->v[i].old_serial, &shapes[i])) == 0)
			r = required_alg(c, &iv->v[i], &shapes[i]);
	rf_store_read_end(c->st, own);
	return r;
}

/*
 * How long the keys left to make take, summed over their algorithms: an
 * RSA key costs SoftHSM a few hundred times an EC key's time, so one rate
 * for a mix of them says nothing. Per algorithm, the seconds a key took
 * so far in this run, or, before one is made, the pool's estimate
 * (rf_pool_gen_rate: the last refill's rate, or a typical one).
 */
struct gen_eta {
	size_t left[RF_KEY_ALGS], made[RF_KEY_ALGS];
	double spent[RF_KEY_ALGS], per_key[RF_KEY_ALGS];
};

static int
gen_eta_init(const struct rf_incident_ctx *c, const struct rf_keygen *kg,
    size_t m, struct gen_eta *e)
{
	double rate;
	size_t i;
	int a, measured, r;

	memset(e, 0, sizeof(*e));
	for (i = 0; i < m; i++)
		if (kg[i].alg > RF_KEY_NONE && kg[i].alg < RF_KEY_ALGS)
			e->left[kg[i].alg]++;
	for (a = RF_KEY_EC_P256; a < RF_KEY_ALGS; a++) {
		if (e->left[a] == 0)
			continue;
		if ((r = rf_pool_gen_rate(
			 c->st, (enum rf_key_alg)a, &rate, &measured)) != 0)
			return r;
		e->per_key[a] = 1 / rate;
	}
	return 0;
}

/* b keys of alg made in s seconds; the seconds left. */
static double
gen_eta_made(struct gen_eta *e, enum rf_key_alg alg, size_t b, double s)
{
	double left = 0;
	int a;

	if (alg > RF_KEY_NONE && alg < RF_KEY_ALGS) {
		e->left[alg] -= b < e->left[alg] ? b : e->left[alg];
		e->made[alg] += b;
		e->spent[alg] += s;
	}
	for (a = RF_KEY_EC_P256; a < RF_KEY_ALGS; a++)
		left += (double)e->left[a] *
		    (e->made[a] > 0 ? e->spent[a] / (double)e->made[a]
				    : e->per_key[a]);
	return left;
}

/*
 * The n keys removed from the token: made or taken for connections and
 * never used (some adopted by the store's word, so tenant keys only: keyd
 * refuses the lot if one is a CA's or TLS key).
 */
static int
keys_destroy(const struct rf_incident_ctx *c, struct rf_key **keys, size_t n)
{
	const char **ids;
	size_t i, done;
	int r;

	if (n == 0)
		return 0;
	if ((ids = calloc(n, sizeof(*ids))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < n; i++)
		ids[i] = rf_key_id(keys[i]);
	r = rf_keys_destroy_tenant_many(c->keys, ids, n, c->who, &done);
	free(ids);
	return r;
}

/*
 * THE place where contain gets new connection keys: n key pairs made in
 * the token (the standby pool, when there is one, replaces this call),
 * kg[i] for items[idx[i]]. All or nothing; out[] receives them. A pool
 * key is taken by the connection, "tenant/name" (its take leaf names it);
 * a key made is labelled kg[i].label (rf_keys_tenant_label).
 */
static int
contain_keys_make(const struct rf_incident_ctx *c, const struct rf_keygen *kg,
    const struct rf_item_rec *items, const size_t *idx, size_t n,
    struct rf_key **out, int *pooled)
{
	struct rf_pool_want *want = NULL;
	struct rf_keygen *rest = NULL;
	struct rf_key **made = NULL;
	struct gen_eta eta;
	size_t *at = NULL, i, b, m = 0, taken = 0;
	char(*ref)[32] = NULL, (*by)[200] = NULL;
	double t;
	int a, r = RF_ERR_ALLOC;

	if ((want = calloc(n, sizeof(*want))) == NULL ||
	    (rest = calloc(n, sizeof(*rest))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (at = calloc(n, sizeof(*at))) == NULL ||
	    (ref = calloc(n, sizeof(*ref))) == NULL ||
	    (by = calloc(n, sizeof(*by))) == NULL)
		goto out;
	/* The standby pool first: keys made before the incident (pool.h). */
	for (i = 0; i < n; i++) {
		incident_ref(items[idx[i]].incident, ref[i]);
		snprintf(by[i], sizeof(by[i]), "%s/%s", items[idx[i]].tenant,
		    items[idx[i]].name);
		want[i].alg = kg[i].alg;
		want[i].tenant = kg[i].tenant;
		want[i].taken_by = by[i];
		want[i].ref = ref[i];
	}
	if ((r = rf_pool_take(
		 c->keys, c->audit, want, n, c->who, out, &taken)) != 0)
		goto out;
	rf_progress_add(c->progress, taken); /* "take new keys" */
	/* What the pool lacked, by algorithm (EC first), so that a part
	 * holds keys of one. */
	for (i = 0; i < n; i++)
		pooled[i] = out[i] != NULL;
	for (a = RF_KEY_NONE; a <= RF_KEY_ALGS; a++) {
		for (i = 0; i < n; i++) {
			if (out[i] != NULL ||
			    (kg[i].alg < RF_KEY_ALGS ? (int)kg[i].alg
						     : RF_KEY_ALGS) != a)
				continue;
			rest[m] = kg[i];
			/* On its record with it: a rerun after a kill finds
			 * it (killed_run_load). */
			rest[m].made_for = ref[i];
			at[m++] = i;
		}
	}
	/* ... made now, in parts, with progress and an ETA per algorithm. */
	if (m > 0) {
		if ((r = gen_eta_init(c, rest, m, &eta)) != 0)
			goto out;
		rf_progress_phase_eta(c->progress,
		    "generate keys the pool lacks", m,
		    gen_eta_made(&eta, RF_KEY_NONE, 0, 0));
	}
	for (i = 0; i < m; i += b) {
		size_t cap = rf_key_alg_rsa(rest[i].alg) ? CONTAIN_GEN_PART_RSA
							 : CONTAIN_BATCH;

		for (b = 1;
		     b < cap && i + b < m && rest[i + b].alg == rest[i].alg;
		     b++)
			;
		t = rf_mono_s();
		if ((r = rf_keys_generate_many(
			 c->keys, &rest[i], b, c->who, &made[i])) != 0)
			break;
		rf_progress_add_eta(c->progress, b,
		    gen_eta_made(&eta, rest[i].alg, b, rf_mono_s() - t));
	}
	if (r != 0) {
		char msg[512];
		size_t k;

		/* Never recorded for a connection: remove what was made. */
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		(void)!keys_destroy(c, made, i);
		for (k = 0; k < i; k++)
			rf_key_free(made[k]);
		for (k = 0; k < n; k++) {
			rf_key_free(out[k]);
			out[k] = NULL;
		}
		rf_err_set(r, "%s", msg);
		goto out;
	}
	for (i = 0; i < m; i++)
		out[at[i]] = made[i]; /* now the caller's */
	r = 0;
out:
	free(want);
	free(rest);
	free(made);
	free(at);
	free(ref);
	free(by);
	return r;
}

/*
 * keys[i] receives the key an earlier run reserved for items[i] (its record
 * "reserved", the token holding it), else NULL; the token is searched
 * once for all of them (rf_keys_load_many).
 */
static int
reserved_load(const struct rf_incident_ctx *c, struct rf_item_rec *items,
    size_t n, struct rf_key **keys)
{
	struct rf_key_rec kr;
	struct rf_key **got = NULL;
	const char **ids = NULL;
	size_t *at = NULL, i, k = 0;
	int r = RF_ERR_ALLOC;

	for (i = 0; i < n; i++)
		keys[i] = NULL;
	if ((ids = calloc(n ? n : 1, sizeof(*ids))) == NULL ||
	    (at = calloc(n ? n : 1, sizeof(*at))) == NULL ||
	    (got = calloc(n ? n : 1, sizeof(*got))) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		if (items[i].new_key[0] == '\0')
			continue;
		if ((r = rf_store_key_get(c->st, items[i].new_key, &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			continue;
		}
		if (r != 0)
			goto out;
		if (strcmp(kr.state, "reserved") != 0)
			continue;
		ids[k] = items[i].new_key;
		at[k++] = i;
	}
	if ((r = rf_keys_load_many(c->keys, ids, k, got)) != 0)
		goto out;
	for (i = 0; i < k; i++)
		keys[at[i]] = got[i]; /* NULL: gone, a new key is made */
	r = 0;
out:
	free(ids);
	free(at);
	free(got);
	return r;
}

/*
 * A key a killed run took from the pool or made for a connection and did
 * not record: by is the connection, "tenant/name", for a pool key (the
 * pool's taken_by) and the key's label (rf_keys_tenant_label) for a key
 * made, which only a connection of its own tenant takes.
 */
struct taken {
	char id[65], by[200];
	char tenant[128]; /* a made key's; "" for a pool key */
	enum rf_key_alg alg;
	int used;
};

struct taken_vec {
	struct taken *v;
	size_t n, cap;
};

static int
taken_push(struct taken_vec *tv, const char *id, const char *by,
    const char *tenant, const char *alg)
{
	struct taken *t;

	if (tv->n == tv->cap) {
		size_t cap = tv->cap ? 2 * tv->cap : 64;

		if ((t = realloc(tv->v, cap * sizeof(*t))) == NULL)
			return RF_ERR_ALLOC;
		tv->v = t;
		tv->cap = cap;
	}
	t = &tv->v[tv->n];
	memset(t, 0, sizeof(*t));
	if (rf_key_alg_parse(alg, &t->alg) != 0) {
		rf_err_clear(); /* not a connection's algorithm: leave it */
		return 0;
	}
	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->by, sizeof(t->by), "%s", by);
	snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
	tv->n++;
	return 0;
}

/* A pool key (rf_store_pool_taken_unused and the like). */
static int
taken_add(void *arg, const char *id, const char *by, const char *alg)
{
	return taken_push(arg, id, by, "", alg);
}

static int
taken_cmp(const void *a, const void *b)
{
	return strcmp(
	    ((const struct taken *)a)->by, ((const struct taken *)b)->by);
}

/*
 * The first key of tv (sorted by taken_cmp) not used yet that was taken
 * or made for by, a pool key or one of tenant's; NULL if none.
 */
static struct taken *
taken_find(struct taken_vec *tv, const char *by, const char *tenant)
{
	struct taken want, *t;

	if (tv->n == 0)
		return NULL;
	snprintf(want.by, sizeof(want.by), "%s", by);
	if ((t = bsearch(&want, tv->v, tv->n, sizeof(*tv->v), taken_cmp)) ==
	    NULL)
		return NULL;
	/* bsearch finds one of equal keys: from the first. */
	while (t > tv->v && taken_cmp(t - 1, t) == 0)
		t--;
	for (; t < tv->v + tv->n && taken_cmp(t, &want) == 0; t++)
		if (!t->used &&
		    (t->tenant[0] == '\0' || strcmp(t->tenant, tenant) == 0))
			return t;
	return NULL;
}

/*
 * Give items[idx[j]] (j < k, by[j] what tv's keys for it were taken or
 * made for, made[j] still NULL) the key of tv a killed run of this
 * incident left for it, when its algorithm is the one the connection
 * keeps: the keys are loaded in one pass, made[j] gets each the token
 * holds, pooled[j] says whether it is a pool key. A key given and found is
 * marked used; the others stay unused.
 */
static int
taken_adopt(const struct rf_incident_ctx *c, struct taken_vec *tv,
    const struct rf_item_rec *items, const struct shape *shapes,
    const size_t *idx, size_t k, const char (*by)[200], struct rf_key **made,
    int *pooled, int pool)
{
	struct taken *t;
	struct rf_key **got = NULL;
	struct taken **use = NULL;
	const char **ids = NULL;
	size_t *at = NULL, j, m = 0;
	int r = RF_ERR_ALLOC;

	if (tv->n == 0)
		return 0;
	if ((ids = calloc(k, sizeof(*ids))) == NULL ||
	    (at = calloc(k, sizeof(*at))) == NULL ||
	    (use = calloc(k, sizeof(*use))) == NULL ||
	    (got = calloc(k, sizeof(*got))) == NULL)
		goto out;
	qsort(tv->v, tv->n, sizeof(*tv->v), taken_cmp);
	for (j = 0; j < k; j++) {
		if (made[j] != NULL)
			continue;
		if ((t = taken_find(tv, by[j], items[idx[j]].tenant)) == NULL ||
		    t->alg != shapes[idx[j]].alg)
			continue;
		t->used = 1;
		use[m] = t;
		ids[m] = t->id;
		at[m++] = j;
	}
	if ((r = rf_keys_load_many(c->keys, ids, m, got)) != 0)
		goto out;
	for (j = 0; j < m; j++) {
		made[at[j]] = got[j]; /* NULL: gone, one is taken or made */
		pooled[at[j]] = pool && got[j] != NULL;
		use[j]->used = got[j] != NULL;
	}
	r = 0;
out:
	free(ids);
	free(at);
	free(use);
	free(got);
	return r;
}

/*
 * Destroy the keys of tv not marked used, in the token, each with its
 * leaves (the custody destroy the old keys take); *n counts them.
 */
static int
taken_destroy_unused(
    const struct rf_incident_ctx *c, const struct taken_vec *tv, size_t *n)
{
	const char **ids = NULL;
	size_t i, m = 0, done;
	int r;

	*n = 0;
	if (tv->n == 0)
		return 0;
	if ((ids = calloc(tv->n, sizeof(*ids))) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < tv->n; i++)
		if (!tv->v[i].used)
			ids[m++] = tv->v[i].id;
	if (m > 0)
		rf_progress_phase(c->progress, "destroy unused keys", m);
	/* Tenant keys by the store's word, which serve's user can write:
	 * keyd refuses the lot if one is a CA's or TLS key. */
	if ((r = m > 0 ? rf_keys_destroy_tenant_many(
			     c->keys, ids, m, c->who, &done)
		       : 0) == 0) {
		rf_progress_add(c->progress, m);
		*n = m;
	}
	free(ids);
	return r;
}

/* A key made for the incident, as a taken one: its label names the
 * connection, and only within the key's own tenant (taken_find). */
static int
made_add(void *arg, const struct rf_key_rec *k)
{
	return taken_push(arg, k->id, k->tenant[0] != '\0' ? k->label : "",
	    k->tenant, k->alg);
}

/*
 * What the standby pool gives for iv's connections, per algorithm of the
 * keys their replacements get (the old credential's: a connector's own
 * RSA key from a CSR is replaced by an RSA key), plan[0..*np): connections
 * that have a key already (reserved by an earlier run, or taken or made for
 * them by a killed one) need none.
 */
static int
pool_plan(const struct rf_incident_ctx *c, int64_t id,
    const struct item_vec *iv, const struct shape *shapes,
    struct rf_pool_plan plan[RF_POOL_ALGS], size_t *np)
{
	struct taken_vec left = {0};
	struct taken *tk;
	struct rf_key_rec kr;
	char ref[32], by[200], label[RF_KEY_LABEL_MAX + 1];
	int64_t need[RF_KEY_ALGS] = {0};
	size_t i;
	int a, r;

	*np = 0;
	/* What killed runs left, as killed_run_load finds it. */
	incident_ref(id, ref);
	if ((r = rf_store_pool_taken_unused(c->st, ref, taken_add, &left)) !=
		0 ||
	    (r = rf_store_key_made_for(c->st, ref, made_add, &left)) != 0)
		goto out;
	if (left.n > 1)
		qsort(left.v, left.n, sizeof(*left.v), taken_cmp);
	for (i = 0; i < iv->n && r == 0; i++) {
		/* Reserved by an earlier run, as reserved_load finds it. */
		if (iv->v[i].new_key[0] != '\0') {
			if ((r = rf_store_key_get(
				 c->st, iv->v[i].new_key, &kr)) == 0 &&
			    strcmp(kr.state, "reserved") == 0)
				continue;
			if (r == RF_ERR_NOT_FOUND) {
				rf_err_clear();
				r = 0;
			}
			if (r != 0)
				break;
		}
		/* Taken from the pool for it, or made for it. */
		snprintf(
		    by, sizeof(by), "%s/%s", iv->v[i].tenant, iv->v[i].name);
		if ((r = rf_keys_tenant_label(
			 iv->v[i].tenant, iv->v[i].name, label)) != 0)
			break;
		if (((tk = taken_find(&left, by, iv->v[i].tenant)) != NULL &&
			tk->alg == shapes[i].alg) ||
		    ((tk = taken_find(&left, label, iv->v[i].tenant)) != NULL &&
			tk->alg == shapes[i].alg))
			continue;
		if (shapes[i].alg > RF_KEY_NONE && shapes[i].alg < RF_KEY_ALGS)
			need[shapes[i].alg]++;
	}
	for (a = RF_KEY_EC_P256; a < RF_KEY_ALGS && r == 0; a++)
		if (need[a] > 0 &&
		    (r = rf_pool_plan_for(c->cfg, c->st, (enum rf_key_alg)a,
			 need[a], &plan[*np])) == 0)
			(*np)++;
out:
	free(left.v);
	return r;
}

int
rf_incident_pool_plan(const struct rf_incident_ctx *c, int64_t id,
    struct rf_pool_plan *plan, size_t *np)
{
	struct item_vec iv = {0};
	struct aside_vec av = {0};
	struct shape *shapes = NULL;
	int r;

	*np = 0;
	/* What contain will take keys for: not the connections it leaves
	 * alone (rf_incident_set_aside). */
	if ((r = rf_incident_load_items(c, id, NULL, "affected", &iv)) != 0 ||
	    (r = rf_incident_set_aside(c, id, &iv, &av)) != 0)
		goto out;
	if (iv.n > 0 && (shapes = calloc(iv.n, sizeof(*shapes))) == NULL)
		r = RF_ERR_ALLOC;
	else if (iv.n > 0 && (r = credential_shapes(c, &iv, shapes)) == 0)
		r = pool_plan(c, id, &iv, shapes, plan, np);
out:
	free(shapes);
	free(iv.v);
	free(av.v);
	return r;
}

/*
 * Keys a run of this incident killed before it recorded them left for
 * items[idx[j]] (j < k, by[j] its "tenant/name", label[j] the label of its
 * key, rf_keys_tenant_label): made[j] gets its own back once the token is
 * found to hold it and its algorithm is the one the connection keeps, so
 * that a kill costs the rerun no keys; the run lock (rf_incident_run_lock)
 * keeps another run of the incident from taking, making or recording any
 * meanwhile.
 * - Keys the pool gave them (each with its take leaf), by by[j], pooled[j]
 *   set: the pool is not asked again for those.
 * - Keys contain_keys_make generated for the incident (made_for
 *   "incident-N", rf_keygen), by label[j] and their own tenant, still
 *   "generated", in the token, and nobody else's (issue --keygen makes
 *   none for an incident). Those this run
 *   cannot use (another algorithm, gone from the token, for a connection
 *   this run does not contain) are destroyed, each with its leaf;
 *   *destroyed counts them.
 */
static int
killed_run_load(const struct rf_incident_ctx *c,
    const struct rf_item_rec *items, const struct shape *shapes,
    const size_t *idx, size_t k, const char (*by)[200],
    const char (*label)[200], struct rf_key **made, int *pooled,
    size_t *destroyed)
{
	struct taken_vec tv = {0};
	char ref[32];
	int r;

	*destroyed = 0;
	if (k == 0)
		return 0;
	incident_ref(items[idx[0]].incident, ref);
	if ((r = rf_store_pool_taken_unused(c->st, ref, taken_add, &tv)) != 0 ||
	    (r = taken_adopt(
		 c, &tv, items, shapes, idx, k, by, made, pooled, 1)) != 0)
		goto out;
	tv.n = 0;
	if ((r = rf_store_key_made_for(c->st, ref, made_add, &tv)) == 0 &&
	    (r = taken_adopt(
		 c, &tv, items, shapes, idx, k, label, made, pooled, 0)) == 0)
		r = taken_destroy_unused(c, &tv, destroyed);
out:
	free(tv.v);
	return r;
}

/* A key made for the incident, whatever connection it was made for. */
static int
unused_add(void *arg, const struct rf_key_rec *k)
{
	return taken_add(arg, k->id, "", k->alg);
}

/*
 * What a contain killed before it recorded its keys leaves, and no rerun
 * used (its connection waived, say): pool keys taken for the incident
 * (still active, in no certificate), pool keys it rejected and did not
 * destroy (killed before, or the destroy failed), keys generated for it
 * (still "generated"), and keys recorded on its items and never used
 * (still "reserved"). Destroyed in the token, each with its leaves, through the
 * custody path the old keys take; the caller holds the run lock, so no
 * run of the incident takes or makes any meanwhile.
 */
int
rf_incident_unused_keys_destroy(
    const struct rf_incident_ctx *c, int64_t id, size_t *n)
{
	struct taken_vec tv = {0};
	char ref[32];
	int r;

	*n = 0;
	incident_ref(id, ref);
	if ((r = rf_store_pool_taken_unused(c->st, ref, taken_add, &tv)) == 0 &&
	    (r = rf_store_pool_rejected_live(c->st, ref, taken_add, &tv)) ==
		0 &&
	    (r = rf_store_key_made_for(c->st, ref, unused_add, &tv)) == 0 &&
	    (r = rf_store_item_keys_reserved_unused(
		 c->st, id, taken_add, &tv)) == 0)
		r = taken_destroy_unused(c, &tv, n);
	free(tv.v);
	return r;
}

/* Where an item's new key came from (contain_keys), counted once its
 * certificate is committed; KEY_WAIVED: none, the item was waived while
 * this run took its key. */
enum { KEY_GENERATED, KEY_POOLED, KEY_RESERVED, KEY_WAIVED };

/*
 * *waived = 1 when item it, which this run found affected, has been
 * waived since (read in the caller's transaction, before it writes the
 * item: a write that fails would end that transaction).
 */
static int
item_waived(
    const struct rf_incident_ctx *c, const struct rf_item_rec *it, int *waived)
{
	char state[16];
	int r;

	*waived = 0;
	if ((r = rf_store_item_state(c->st, it->incident, it->conn, state)) ==
	    0)
		*waived = strcmp(state, "waived") == 0;
	return r;
}

/*
 * The keys this run took or made, or reserved, for connections waived
 * while it ran: used by nobody, destroyed in the token now, each with its
 * leaves (custody's tenant-only destroy: a pool key's record and a
 * reserved key's are the store's word). A destroy that fails is not the
 * run's result, which goes on with the other connections: what keyd did
 * not destroy, 'ringfence incident close' (keys taken, generated or
 * reserved for the incident) or 'ringfence keys finish' (keys left
 * destroying) destroys later.
 */
static void
waived_keys_destroy(const struct rf_incident_ctx *c, struct rf_key **keys,
    size_t n, struct rf_contain_report *rep)
{
	rep->waived += n;
	if (keys_destroy(c, keys, n) != 0)
		rf_err_clear();
}

/*
 * Keys for a batch, recorded before they are used: an item whose earlier
 * run reserved a key (state "reserved", still in the token) gets it back;
 * the others get new keys, each recorded in the store ("reserved",
 * purpose connection) and on its item in one transaction, before any
 * certificate names it. A run killed after that leaves keys the store
 * knows (the rerun uses them), never `unrecorded` ones.
 */
static int
contain_keys(const struct rf_incident_ctx *c, struct rf_item_rec *items,
    const struct shape *shapes, size_t n, struct rf_key **keys, uint8_t *how,
    struct rf_contain_report *rep)
{
	struct rf_keygen *kg = NULL, *rest = NULL;
	struct rf_key **made = NULL, **rmade = NULL;
	struct rf_key_rec kr;
	size_t *idx = NULL, *ridx = NULL, *at = NULL, i, k = 0, m = 0;
	size_t unusable = 0;
	int *pooled = NULL, *rpooled = NULL;
	uint8_t *waived = NULL;
	size_t nwaived = 0;
	/* Per key: its connection, "tenant/name", and its label. */
	char(*by)[200] = NULL, (*label)[200] = NULL;
	double t = rf_mono_s();
	int r = RF_ERR_INTERNAL, in_tx = 0, w;

	if ((kg = calloc(n, sizeof(*kg))) == NULL ||
	    (made = calloc(n, sizeof(*made))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL ||
	    (by = calloc(n, sizeof(*by))) == NULL ||
	    (label = calloc(n, sizeof(*label))) == NULL ||
	    (pooled = calloc(n, sizeof(*pooled))) == NULL ||
	    (rest = calloc(n, sizeof(*rest))) == NULL ||
	    (rmade = calloc(n, sizeof(*rmade))) == NULL ||
	    (ridx = calloc(n, sizeof(*ridx))) == NULL ||
	    (at = calloc(n, sizeof(*at))) == NULL ||
	    (rpooled = calloc(n, sizeof(*rpooled))) == NULL ||
	    (waived = calloc(n, 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/* Keys reserved by an earlier run: loaded in one pass (pool.h). */
	if ((r = reserved_load(c, items, n, keys)) != 0)
		goto out;
	rf_incident_phase_time(rep, "keys reserved earlier", &t);
	for (i = 0; i < n; i++) {
		struct rf_item_rec *it = &items[i];

		if (keys[i] != NULL) {
			how[i] = KEY_RESERVED; /* by an earlier run */
			continue;
		}
		snprintf(by[k], sizeof(by[k]), "%s/%s", it->tenant, it->name);
		if ((r = rf_keys_tenant_label(
			 it->tenant, it->name, label[k])) != 0)
			goto out;
		kg[k].alg = shapes[i].alg;
		kg[k].label = label[k];
		kg[k].tenant = it->tenant;
		idx[k++] = i;
	}
	/* The phase "take new keys" counts each item's key as it is found:
	 * reserved earlier, adopted from a killed run, taken from the pool
	 * (contain_keys_make; those it lacks, its generation counts). */
	if (n > k)
		rf_progress_add(c->progress, n - k);
	if (k == 0) {
		r = 0;
		goto out;
	}
	/* Keys a killed run took from the pool or generated, then the pool
	 * and the token for the rest (compacted to the front of rest). */
	if ((r = killed_run_load(c, items, shapes, idx, k,
		 (const char(*)[200])by, (const char(*)[200])label, made,
		 pooled, &unusable)) != 0)
		goto out;
	if (unusable > 0) {
		if ((r = rf_incident_event(c, items[0].incident,
			 "destroy-unused",
			 "%zu keys a killed run generated for this incident "
			 "and did not record, which this run cannot use, "
			 "destroyed in the token",
			 unusable)) != 0)
			goto out;
		/* Their destruction was a phase of its own: this one goes
		 * on where it was. */
		rf_progress_phase(c->progress, "take new keys", n);
		rf_progress_add(c->progress, n - k);
	}
	rf_incident_phase_time(rep, "keys taken by a killed run", &t);
	for (i = 0, m = 0; i < k; i++)
		if (made[i] == NULL) {
			rest[m] = kg[i];
			ridx[m] = idx[i];
			at[m++] = i;
		}
	if (k > m)
		rf_progress_add(c->progress, k - m);
	if (m > 0 &&
	    (r = contain_keys_make(c, rest, items, ridx, m, rmade, rpooled)) !=
		0)
		goto out;
	for (i = 0; i < m; i++) {
		made[at[i]] = rmade[i]; /* now made's */
		pooled[at[i]] = rpooled[i];
		rmade[i] = NULL;
	}
	rf_incident_phase_time(rep, "take pool keys (and make missing)", &t);
	rf_test_point("incident-keys-taken"); /* taken, not recorded yet */
	/* Tests: a connection waived while its key is taken or made. */
	rf_test_pause("incident-keys-taken");
	if ((r = rf_store_begin_bulk(c->st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < k; i++) {
		struct rf_item_rec *it = &items[idx[i]];

		memset(&kr, 0, sizeof(kr));
		snprintf(kr.id, sizeof(kr.id), "%s", rf_key_id(made[i]));
		snprintf(
		    kr.alg, sizeof(kr.alg), "%s", rf_key_alg_name(kg[i].alg));
		snprintf(kr.purpose, sizeof(kr.purpose), "connection");
		snprintf(kr.tenant, sizeof(kr.tenant), "%s", it->tenant);
		snprintf(kr.state, sizeof(kr.state), "reserved");
		kr.created = rf_now();
		/*
		 * A connection waived since this run found it affected (its
		 * key taken or made meanwhile) keeps nothing of this run's:
		 * its key is destroyed below, and the others go on.
		 */
		if ((r = item_waived(c, it, &w)) != 0)
			goto out;
		if (w) {
			waived[i] = 1;
			nwaived++;
			continue;
		}
		/* A pool key has its record (now this connection's, pool.c). */
		if ((r = pooled[i]
			    ? rf_store_key_set_state(c->st, kr.id, "reserved")
			    : rf_store_key_add(c->st, &kr)) != 0)
			goto out;
		/* Only over what this run read: another run may be here. */
		if ((r = rf_store_item_reserve_key(c->st, it->incident,
			 it->conn, it->new_key, kr.id)) != 0) {
			if (r == RF_ERR_EXISTS)
				r = rf_err_set(RF_ERR_STATE,
				    "connection %s/%s of incident %lld is "
				    "being contained by another run at the "
				    "same time: run contain again to resume",
				    it->tenant, it->name,
				    (long long)it->incident);
			goto out;
		}
		snprintf(it->new_key, sizeof(it->new_key), "%s", kr.id);
	}
	if ((r = rf_store_commit(c->st)) != 0)
		goto out;
	in_tx = 0;
	for (i = 0, m = 0; i < k; i++) {
		if (waived[i]) {
			how[idx[i]] = KEY_WAIVED;
			made[m++] = made[i]; /* to destroy, at the front */
			continue;
		}
		keys[idx[i]] = made[i]; /* now the caller's */
		how[idx[i]] = pooled[i] ? KEY_POOLED : KEY_GENERATED;
	}
	for (i = m; i < k; i++)
		made[i] = NULL;
	waived_keys_destroy(c, made, nwaived, rep);
	rf_incident_phase_time(rep, "record new keys on items", &t);
	r = 0;
out:
	if (in_tx) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		rf_store_rollback(c->st);
		/* Never recorded, never used: remove them again. */
		(void)!keys_destroy(c, made, k);
		rf_err_set(r, "%s", msg);
	}
	for (i = 0; made != NULL && i < n; i++)
		rf_key_free(made[i]);
	for (i = 0; rmade != NULL && i < n; i++)
		rf_key_free(rmade[i]);
	free(by);
	free(label);
	free(idx);
	free(made);
	free(kg);
	free(pooled);
	free(rest);
	free(rmade);
	free(ridx);
	free(at);
	free(rpooled);
	free(waived);
	return r;
}

/*
 * A connection that got a credential elsewhere while its batch was
 * issued (hook, after the batch rolled back): set aside like those
 * rf_incident_set_aside finds, told to keyd's ledger as affected again
 * (rf_incident_contain_issue told it the opposite before issuing), and
 * the key reserved for it destroyed (a rerun takes another, should the
 * connection ever be contained).
 */
static int
reissue_aside(const struct rf_incident_ctx *c, struct rf_item_rec *it,
    const char *serial, struct rf_key *key, struct aside_vec *av)
{
	int r;

	snprintf(it->state, sizeof(it->state), "affected");
	it->new_serial[0] = '\0';
	if ((r = aside_add(av, it, serial)) != 0 ||
	    (r = rf_incident_note_items(c, 1, it, 1, NULL, NULL, NULL)) != 0)
		return r;
	return key != NULL ? keys_destroy(c, &key, 1) : 0;
}

/*
 * Step 4. Every connection's new key is taken (or reserved, or made) and
 * recorded for all connections at once, so that the token is searched
 * once for the whole incident, not once per key or per batch (a
 * file-backed token such as SoftHSM reads every object of a token on
 * each search); the certificates are then issued in batches.
 */
int
rf_incident_contain_issue(const struct rf_incident_ctx *c, int64_t id,
    const struct item_vec *iv, struct contain_rev *rv,
    struct rf_contain_report *rep, struct aside_vec *av)
{
	struct rf_issue_req *reqs = NULL, *sub = NULL;
	struct rf_key **keys = NULL;
	struct shape *shapes = NULL;
	struct issue_hook hook;
	struct issue_done done;
	struct rf_pool_plan plan[RF_POOL_ALGS];
	uint8_t *committed = NULL, *aside = NULL, *how = NULL;
	size_t *idx = NULL;
	char note[256];
	size_t i, j, m, np;
	double t = rf_mono_s();
	int r = 0, lacking = 0;

	if (iv->n == 0)
		return 0;
	if ((reqs = calloc(iv->n, sizeof(*reqs))) == NULL ||
	    (sub = calloc(iv->n, sizeof(*sub))) == NULL ||
	    (keys = calloc(iv->n, sizeof(*keys))) == NULL ||
	    (shapes = calloc(iv->n, sizeof(*shapes))) == NULL ||
	    (committed = calloc(iv->n, 1)) == NULL ||
	    (aside = calloc(iv->n, 1)) == NULL ||
	    (how = calloc(iv->n, 1)) == NULL ||
	    (idx = calloc(iv->n, sizeof(*idx))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = credential_shapes(c, iv, shapes)) != 0)
		goto out;
	rf_incident_phase_time(rep, "read old credentials' shapes", &t);
	/* New keys come from the standby pool; say what it lacks. */
	if ((r = pool_plan(c, id, iv, shapes, plan, &np)) != 0)
		goto out;
	for (j = 0; j < np; j++) {
		if (plan[j].generate == 0)
			continue;
		lacking = 1;
		rf_pool_plan_text(&plan[j], note, sizeof(note));
		if ((r = rf_incident_event(c, id, "pool", "%s", note)) != 0)
			goto out;
	}
	rf_incident_phase_time(rep, "plan the pool", &t);
	/*
	 * Keys to make: seconds to hours of the token's key generation (an
	 * RSA-2048 pair is 0.4 s in SoftHSM). The revocation is published
	 * and the old keys disabled first, so that OCSP and the CRLs say
	 * revoked meanwhile, and for good if this run is killed. With a
	 * pool that has every key, the OCSP responses are signed while the
	 * keys are taken, and published after.
	 */
	if (lacking) {
		if ((r = rf_incident_contain_publish_disable(c, id, rv, rep)) !=
		    0)
			goto out;
		/* Its phase, "disable old keys", took the place of ours. */
		rf_progress_phase(c->progress, "take new keys", iv->n);
	}
	if ((r = contain_keys(c, iv->v, shapes, iv->n, keys, how, rep)) != 0)
		goto out;
	rf_test_point("incident-keys-recorded");
	/* The revocation published and the old keys out of service before
	 * any successor is issued. */
	if ((r = rf_incident_contain_publish_disable(c, id, rv, rep)) != 0 ||
	    (r = rf_incident_note_items(
		 c, 0, iv->v, iv->n, NULL, NULL, NULL)) != 0)
		goto out;
	/* Tests: a connection changed between the check and the issuance. */
	rf_test_pause("incident-reissue");
	t = rf_mono_s();
	rf_progress_phase(c->progress, "reissue", iv->n);
	for (i = 0; i < iv->n; i++) {
		const struct shape *sh = &shapes[i];

		reqs[i].tenant = iv->v[i].tenant;
		reqs[i].profile = sh->profile;
		reqs[i].key = keys[i];
		reqs[i].dns = sh->profile == RF_PROFILE_SERVER
		    ? (sh->dns[0] != '\0' ? sh->dns : iv->v[i].tenant)
		    : NULL;
	}
	/*
	 * Each batch commits on its own, the next one's signatures made
	 * while it does (rf_ca_issue_pipelined). A batch that meets a
	 * connection given a credential elsewhere meanwhile rolls back:
	 * what is not committed is issued again without that connection,
	 * so that it costs the others nothing but the batch's signatures.
	 */
	/* Waived while this run took their keys: left so. */
	for (i = 0; i < iv->n; i++)
		aside[i] = how[i] == KEY_WAIVED;
	hook.c = c;
	hook.items = iv->v;
	hook.idx = idx;
	done.c = c;
	done.rep = rep;
	done.idx = idx;
	done.committed = committed;
	for (;;) {
		for (i = m = 0; i < iv->n; i++)
			if (!committed[i] && !aside[i]) {
				sub[m] = reqs[i];
				idx[m++] = i;
			}
		if (m == 0)
			break;
		hook.elsewhere = hook.waived = SIZE_MAX;
		r = rf_ca_issue_pipelined(c->ca, sub, m, CONTAIN_BATCH,
		    CONTAIN_BATCH_MIN, c->who, issued_in_tx, &hook, issue_done,
		    &done);
		if (r == 0 ||
		    (hook.elsewhere == SIZE_MAX && hook.waived == SIZE_MAX))
			break;
		rf_err_clear();
		if (hook.waived != SIZE_MAX) {
			/* Its reserved key goes; the others keep theirs. */
			i = idx[hook.waived];
			aside[i] = 1;
			waived_keys_destroy(c, &keys[i], 1, rep);
			continue;
		}
		i = idx[hook.elsewhere];
		aside[i] = 1;
		if ((r = reissue_aside(
			 c, &iv->v[i], hook.serial, keys[i], av)) != 0)
			break;
	}
	rf_incident_phase_time(rep, "issue (rf_ca_issue_ex)", &t);
	for (i = 0; i < iv->n; i++) {
		rep->pooled += committed[i] && how[i] == KEY_POOLED;
		rep->reserved += committed[i] && how[i] == KEY_RESERVED;
	}
	if (r != 0)
		goto out;
	if (rep->waived > 0 &&
	    (r = rf_incident_event(c, id, "waived-meanwhile",
		 "%zu connections waived while contain ran are left waived, "
		 "with the credentials they have; the keys taken, made or "
		 "reserved for them were destroyed",
		 rep->waived)) != 0)
		goto out;
	if (rep->issued > 0)
		r = rf_incident_event(c, id, "reissue",
		    "%zu certificates issued with new keys in the token: %zu "
		    "from the standby pool, %zu generated, %zu reserved by "
		    "an earlier run",
		    rep->issued, rep->pooled,
		    rep->issued - rep->pooled - rep->reserved, rep->reserved);
out:
	for (j = 0; keys != NULL && j < iv->n; j++)
		rf_key_free(keys[j]);
	free(keys);
	free(shapes);
	free(reqs);
	free(sub);
	free(committed);
	free(aside);
	free(how);
	free(idx);
	return r;
}
