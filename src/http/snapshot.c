/*
 * snapshot.c: CA certificates and CRLs served from memory.
 *
 * The maintenance thread builds a new immutable snapshot from the store
 * and swaps it in under snap_lock; a request takes a reference under the
 * lock and holds it until its bytes are written (conn.c releases it with
 * the response). The last reference frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "http/http_int.h"
#include "store/store.h"

static void
etag_of(const uint8_t *d, size_t len, char out[40])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (EVP_Digest(d, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 16) {
		snprintf(out, 40, "len-%zu", len);
		return;
	}
	rf_hex(md, 16, out);
}

static void
snapshot_free(struct rf_http_snapshot *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		free(s->b[i].data);
	free(s);
}

void
rf_http_snapshot_unref(struct rf_http_snapshot *s)
{
	if (s != NULL &&
	    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snapshot_free(s);
}

struct rf_http_snapshot *
rf_http_snapshot_get(struct rf_http *h)
{
	struct rf_http_snapshot *s;

	pthread_mutex_lock(&h->snap_lock);
	if ((s = h->snap) != NULL)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->snap_lock);
	return s;
}

/* Takes ownership of data. */
static int
add_blob(struct rf_http_snapshot *s, size_t cap, const char *path,
    const char *ctype, uint8_t *data, size_t len, int64_t lm, int64_t exp)
{
	struct rf_http_blob *b;

	if (s->n >= cap || strlen(path) >= sizeof(b->path)) {
		free(data);
		return RF_ERR_TOO_LARGE;
	}
	b = &s->b[s->n++];
	snprintf(b->path, sizeof(b->path), "%s", path);
	b->ctype = ctype;
	b->data = data;
	b->len = len;
	b->last_modified = lm;
	b->expires = exp;
	etag_of(data, len, b->etag);
	return 0;
}

static int
is_ca_cert(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;
	int ca;

	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL)
		return 0;
	ca = X509_check_ca(x) > 0;
	X509_free(x);
	return ca;
}

int
rf_http_snapshot_reload(struct rf_http *h)
{
	struct rf_http_snapshot *s = NULL, *old;
	struct rf_ca_rec *cas = NULL;
	size_t i, n = 0, cap, pl;
	char path[96], *pem;
	uint8_t *d, *crl;
	size_t crllen;
	uint64_t num;
	int64_t tu, nu;
	int r = RF_ERR_INTERNAL;

	if ((r = rf_store_ca_list(h->st, &cas, &n)) != 0)
		goto out;
	cap = 3 * n;
	r = RF_ERR_ALLOC;
	if ((s = calloc(1, sizeof(*s) + cap * sizeof(s->b[0]))) == NULL)
		goto out;
	atomic_init(&s->refs, 1);
	h->ncrl_issuers = 0;
	for (i = 0; i < n; i++) {
		const struct rf_ca_rec *as;
		int k;

		/* RFC 5280 4.2.2.1: caIssuers serves the DER certificate; it
		 * names the CA that issued the certificate holding it, so
		 * /ca/NAME.der is always the CA of that name. */
		r = RF_ERR_ALLOC;
		if ((d = malloc(cas[i].derlen)) == NULL)
			goto out;
		memcpy(d, cas[i].der, cas[i].derlen);
		snprintf(path, sizeof(path), "/ca/%s.der", cas[i].name);
		if ((r = add_blob(s, cap, path, "application/pkix-cert", d,
			 cas[i].derlen, cas[i].not_before, 0)) != 0)
			goto out;
		/* The PEM, for people, is the CA they call so: "issuing" and
		 * "ocsp" are the ones in use after a rotation (docs/ca.md). */
		k = rf_ca_rec_find(cas, n, cas[i].name, 0);
		as = &cas[k >= 0 ? (size_t)k : i];
		pl = rf_ca_pem_len(as->derlen);
		r = RF_ERR_ALLOC;
		if ((pem = malloc(pl + 1)) == NULL)
			goto out;
		pl = rf_ca_pem_write(as->der, as->derlen, pem);
		snprintf(path, sizeof(path), "/ca/%s.pem", cas[i].name);
		if ((r = add_blob(s, cap, path, "application/x-pem-file",
			 (uint8_t *)pem, pl, as->not_before, 0)) != 0)
			goto out;
		if (!is_ca_cert(cas[i].der, cas[i].derlen) ||
		    rf_ca_cert(h->ca, cas[i].name) == NULL)
			continue;
		if (h->ncrl_issuers < RF_HTTP_MAX_ISSUERS)
			snprintf(h->crl_issuers[h->ncrl_issuers++],
			    sizeof(h->crl_issuers[0]), "%s", cas[i].name);
		crl = NULL;
		r = rf_store_crl_get(
		    h->st, cas[i].name, &num, &tu, &nu, &crl, &crllen);
		if (r == RF_ERR_NOT_FOUND)
			continue;
		if (r != 0)
			goto out;
		snprintf(path, sizeof(path), "/crl/%s.crl", cas[i].name);
		if ((r = add_blob(s, cap, path, "application/pkix-crl", crl,
			 crllen, tu, nu)) != 0)
			goto out;
	}
	pthread_mutex_lock(&h->snap_lock);
	old = h->snap;
	h->snap = s; /* now h's */
	pthread_mutex_unlock(&h->snap_lock);
	s = NULL;
	rf_http_snapshot_unref(old);
	r = 0;
out:
	snapshot_free(s);
	rf_ca_rec_free_all(cas, n);
	return r;
}
