/*
 * check.c: the checks issue.c makes of a batch of requests before any key
 * is made or anything signed: arguments, profile, tenant and DNS name, and
 * each CSR (csr.c), on two threads when there are many; the proofs of
 * possession of a large batch are then verified on a thread of their own
 * while the token signs.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/keyident.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "store/store.h"

#define CSR_THREADS 2 /* threads checking the CSRs of a large batch */
#define CSR_THREAD_MIN 32

/* Key id: hex SHA-256 of the SPKI DER, as keys names keys. */
void
ca_spki_id(const struct blob *spki, char id[65])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(spki->p, spki->len, md);
	rf_hex(md, sizeof(md), id);
}

/* Pass 1: arguments, tenant, CSR. Nothing is created here. */
int
ca_issue_check(
    struct rf_ca *ca, struct issue_item *it, const struct issue_item *prev)
{
	const char *prev_tenant = prev != NULL ? prev->req->tenant : NULL;
	const struct rf_issue_req *q = it->req;
	struct rf_tenant t;
	int r;

	if (q->profile != RF_PROFILE_CLIENT &&
	    q->profile != RF_PROFILE_SERVER &&
	    q->profile != RF_PROFILE_ASSERTION &&
	    q->profile != RF_PROFILE_CONNECTOR)
		return rf_err_set(RF_ERR_ARG,
		    "unknown profile: use client, "
		    "server or assertion");
	/* A connector's certificate is short-lived (connector_days). */
	if (q->profile == RF_PROFILE_CONNECTOR &&
	    q->days > ca->cfg.connector_days)
		return rf_err_set(RF_ERR_ARG,
		    "a connector certificate is valid at most connector_days "
		    "(%d), not %d days",
		    ca->cfg.connector_days, q->days);
	if ((r = rf_ca_tenant_name_check(q->tenant)) != 0)
		return r;
	/* A batch is usually for one tenant: look it up once. */
	if (prev_tenant == NULL || strcmp(prev_tenant, q->tenant) != 0) {
		if ((r = rf_store_tenant_get(ca->st, q->tenant, &t)) != 0) {
			if (r == RF_ERR_NOT_FOUND)
				r = rf_err_set(RF_ERR_NOT_FOUND,
				    "unknown tenant %s: add it with "
				    "'ringfence tenant add %s'",
				    q->tenant, q->tenant);
			return r;
		}
	}
	if (q->profile == RF_PROFILE_SERVER) {
		if (q->dns == NULL)
			return rf_err_set(RF_ERR_ARG,
			    "the server profile needs "
			    "a DNS name (--dns)");
		if ((r = ca_dns_name_check(q->dns)) != 0)
			return r;
	} else if (q->dns != NULL)
		return rf_err_set(RF_ERR_ARG,
		    "a DNS name applies to the server "
		    "profile only");
	if (q->days < 0 || q->days > 3650)
		return rf_err_set(
		    RF_ERR_ARG, "validity of %d days: use 1-3650", q->days);
	if (q->key != NULL) {
		if (q->csr != NULL || q->keygen != RF_KEY_NONE)
			return rf_err_set(RF_ERR_ARG,
			    "give one of a CSR, a key algorithm to generate "
			    "or a key");
		return 0;
	}
	if ((q->csr == NULL) == (q->keygen == RF_KEY_NONE))
		return rf_err_set(RF_ERR_ARG,
		    "give either a CSR or a key "
		    "algorithm to generate");
	if (q->csr == NULL) {
		if (q->keygen < RF_KEY_EC_P256 || q->keygen >= RF_KEY_ALGS)
			return rf_err_set(RF_ERR_ARG, "unknown key algorithm");
		return 0;
	}
	/* The same CSR as the previous request (and profile): checked. */
	if (it->same_csr && prev != NULL) {
		if ((it->spki.p = malloc(prev->spki.len)) == NULL)
			return RF_ERR_ALLOC;
		memcpy(it->spki.p, prev->spki.p, prev->spki.len);
		it->spki.len = prev->spki.len;
		it->spki_malloc = 1;
		it->rsa = prev->rsa;
		memcpy(it->ski, prev->ski, sizeof(it->ski));
		memcpy(it->key_id, prev->key_id, sizeof(it->key_id));
		memcpy(it->ident, prev->ident, sizeof(it->ident));
		return 0;
	}
	/* Checked by ca_issue_csrs(); its error is reported in request
	 * order. */
	if (it->csr_r != 0)
		return rf_err_set(it->csr_r, "%s", it->csr_msg);
	if (it->spki.p == NULL)
		return rf_err_set(RF_ERR_INTERNAL, "CSR was not checked");
	return 0;
}

/*
 * One CSR: its allow-list and extensions, then key id and SKI; its
 * signature too unless the batch proves it while the token signs
 * (it->csr is then kept for ca_proofs_start).
 */
static void
issue_csr(struct issue_item *it, int defer)
{
	const struct rf_issue_req *q = it->req;
	int r;

	if ((r = rf_ca_csr_open(q->csr, q->csrlen, q->profile, &it->csr,
		 &it->spki.p, &it->spki.len)) == 0) {
		it->spki_malloc = 1;
		it->rsa = EVP_PKEY_get_base_id(rf_ca_csr_key(it->csr)) ==
		    EVP_PKEY_RSA;
		ca_spki_id(&it->spki, it->key_id);
		if ((r = ca_ski_ext(it->spki.p, it->spki.len, (uint8_t[20]){0},
			 it->ski)) == 0)
			r = rf_key_ident_spki(
			    it->spki.p, it->spki.len, it->ident);
	}
	if (r == 0 && !defer)
		r = rf_ca_csr_prove(it->csr);
	if (r != 0 || !defer) {
		rf_csr_free(it->csr);
		it->csr = NULL;
	}
	if ((it->csr_r = r) != 0)
		snprintf(it->csr_msg, sizeof(it->csr_msg), "%s", rf_err_msg(r));
	rf_err_clear();
}

static void
issue_csr_range(void *arg, size_t from, size_t to)
{
	struct issue_item *items = arg;
	size_t i;

	for (i = from; i < to; i++)
		if (items[i].req->csr != NULL && !items[i].same_csr)
			issue_csr(&items[i], items[i].defer);
}

/*
 * The CSRs of a batch are checked up front, on two threads when there are
 * many. A request repeating the CSR of the one before it (same bytes and
 * profile) is not checked again: ca_issue_check copies the result. The
 * proofs of possession of a large batch (a signature verification each)
 * are left to ca_proofs_start, while the token signs.
 */
void
ca_issue_csrs(struct issue_item *items, size_t n)
{
	const struct rf_issue_req *q, *p;
	size_t i, m = 0;

	for (i = 0; i < n; i++) {
		q = items[i].req;
		p = i > 0 ? items[i - 1].req : NULL;
		if (q->csr != NULL && p != NULL && p->csr != NULL &&
		    p->csrlen == q->csrlen && p->profile == q->profile &&
		    (p->csr == q->csr ||
			memcmp(p->csr, q->csr, q->csrlen) == 0))
			items[i].same_csr = 1;
		else if (q->csr != NULL)
			m++;
	}
	for (i = 0; i < n; i++)
		items[i].defer = m >= CSR_THREAD_MIN;
	rf_parallel(
	    n, m >= CSR_THREAD_MIN ? CSR_THREADS : 1, issue_csr_range, items);
}

/*
 * The proofs of possession left by ca_issue_csrs, checked on a thread of
 * their own while the batch is signed (the token's signatures, through
 * keyd, take the other core): a certificate is released only once its
 * request's proof holds, and a batch with one that fails stores nothing.
 */
static void *
proofs_main(void *arg)
{
	struct proofs *pf = arg;
	struct issue_item *it;
	size_t i;

	for (i = 0; i < pf->n; i++) {
		it = &pf->items[i];
		if (it->csr == NULL)
			continue;
		if ((it->csr_r = rf_ca_csr_prove(it->csr)) != 0)
			snprintf(it->csr_msg, sizeof(it->csr_msg), "%s",
			    rf_err_msg(it->csr_r));
		rf_err_clear();
		rf_csr_free(it->csr);
		it->csr = NULL;
	}
	return NULL;
}

void
ca_proofs_start(struct proofs *pf, struct issue_item *items, size_t n)
{
	size_t i;

	pf->items = items;
	pf->n = n;
	pf->running = 0;
	for (i = 0; i < n && items[i].csr == NULL; i++)
		;
	if (i < n && pthread_create(&pf->tid, NULL, proofs_main, pf) == 0)
		pf->running = 1;
	else if (i < n)
		(void)proofs_main(pf); /* no thread: here, first */
}

void
ca_proofs_wait(struct proofs *pf)
{
	if (pf->running) {
		pthread_join(pf->tid, NULL);
		pf->running = 0;
	}
}

/* Wait for the proofs; the first that failed, in request order. */
int
ca_proofs_finish(struct proofs *pf)
{
	size_t i;

	ca_proofs_wait(pf);
	for (i = 0; pf->items != NULL && i < pf->n; i++)
		if (pf->items[i].csr_r != 0)
			return rf_err_set(pf->items[i].csr_r, "request %zu: %s",
			    i + 1, pf->items[i].csr_msg);
	return 0;
}
