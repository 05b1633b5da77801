/*
 * renew.c: a connector's renewal of its own certificate through the API
 * (POST /v1/connector/renew): a few a day, issued under the service's lock
 * with its store connection and CA (service.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca/ca.h"
#include "connector/connector.h"
#include "connector/service_int.h"

struct renew_link {
	struct rf_store *st;
	const char *name;
};

static int
renew_hook(void *arg, size_t i, const char *serial, const char *key_id)
{
	struct renew_link *l = arg;

	(void)i;
	(void)key_id;
	return rf_store_connector_cert_add(l->st, serial, l->name, rf_now());
}

/*
 * Each renewal is a certificate more that the connector's key can use
 * until it expires: a few a day (connector_renewals), not one a request.
 * 1 when a is answered: the day's are used up (429), or the bucket could
 * not be kept. The buckets are serve's memory: a restart refills them.
 */
static int
renewals_used(struct rf_connector_svc *svc, const char *connector, int64_t now,
    struct rf_api_answer *a)
{
	int r, retry;

	if ((r = rf_limits_renewal(
		 svc->limits, svc->cfg, connector, now, &retry)) == 0)
		return 0;
	if (r != RF_ERR_STATE) {
		svc_answer_fail(a, r);
		return 1;
	}
	rf_err_clear();
	rf_api_answer_error(a, 429, "rate_limited",
	    "the connector's renewals a day (connector_renewals) are used up");
	a->retry_after = retry;
	return 1;
}

/* 1 when a is answered: the certificate's proof bucket is empty (429). */
static int
proof_spent(struct rf_connector_svc *svc, const char *cert_serial, int64_t now,
    struct rf_api_answer *a)
{
	int retry = 1;

	if (svc_proof_token(svc, cert_serial, now, &retry) == 0)
		return 0;
	rf_err_clear();
	rf_api_answer_error(a, 429, "rate_limited",
	    "this certificate's requests carried too many proofs that do not "
	    "hold");
	a->retry_after = retry > 0 ? retry : 1;
	return 1;
}

void
rf_connector_svc_renew(struct rf_connector_svc *svc, const char *cert_serial,
    const char *source, const uint8_t *body, size_t len,
    struct rf_api_answer *a)
{
	int64_t now;
	struct rf_connector_verdict v;
	struct rf_issue_req req;
	struct rf_issued is;
	struct renew_link link;
	struct rf_actor who;
	char *csr = NULL, tenant[128], actor[160], proof[RF_PROOF_MAX + 1];
	size_t csrlen;
	json_t *j;
	int r;

	memset(a, 0, sizeof(*a));
	memset(&is, 0, sizeof(is));
	rf_err_clear();
	if (cert_serial == NULL || *cert_serial == '\0') {
		rf_api_answer_error(a, 401, "client_certificate_required",
		    "present a connector's TLS client certificate");
		return;
	}
	if ((r = rf_connector_parse_renew(body, len, &csr, &csrlen, proof)) !=
	    0) {
		rf_api_answer_error(a, r == RF_ERR_TOO_LARGE ? 413 : 400,
		    "bad_request", rf_err_msg(r));
		return;
	}
	if (svc_proof_missing(svc, proof, a)) {
		free(csr);
		return;
	}
	pthread_mutex_lock(&svc->lock);
	now = rf_now();
	if ((r = svc_who_asks(svc, cert_serial, now, &v, a)) == 1)
		goto out;
	if (r != 0)
		goto fail;
	if (svc->ca == NULL) {
		if ((r = rf_ca_open(svc->cfg, svc->st, svc->keys, &svc->ca)) !=
		    0)
			goto fail;
		rf_ca_set_audit(svc->ca, svc->audit);
		/* keyd signs OCSP for serve only of what the store holds. */
		rf_ca_presign_after_commit(svc->ca);
	}
	rf_connector_tenant(v.connector, tenant);
	memset(&req, 0, sizeof(req));
	req.tenant = tenant;
	req.profile = RF_PROFILE_CONNECTOR;
	req.csr = (const uint8_t *)csr;
	req.csrlen = csrlen;
	req.days = svc->cfg->connector_days;
	/* keyd checks the proof: this connector's key, for this new key. */
	req.on_behalf = cert_serial;
	if (proof[0] != '\0') {
		req.proof = (const uint8_t *)proof;
		req.prooflen = strlen(proof);
	}
	link.st = svc->st;
	link.name = v.connector;
	snprintf(actor, sizeof(actor), "connector %s (certificate %s)",
	    v.connector, cert_serial);
	who.actor = actor;
	who.source = source;
	/* A request issuance refuses costs no renewal (its 400 below), nor
	 * does one that signs nothing (keyd refused it, or is gone): only
	 * a certificate spends one. Its proof takes a token of the
	 * certificate's proof bucket, given back unless keyd finds the
	 * proof bad, as an assertion's does. */
	r = rf_ca_issue_check(svc->ca, &req, 1);
	if (r == 0 && proof[0] != '\0' && proof_spent(svc, cert_serial, now, a))
		goto out;
	if (r == 0 && renewals_used(svc, v.connector, now, a)) {
		if (proof[0] != '\0')
			svc_proof_token_back(svc, cert_serial);
		goto out;
	}
	if (r == 0) {
		r = rf_ca_issue_ex(
		    svc->ca, &req, 1, &who, &is, renew_hook, &link);
		if (proof[0] != '\0' && !svc_bad_proof(r))
			svc_proof_token_back(svc, cert_serial);
		if (r != 0)
			rf_limits_renewal_back(
			    svc->limits, svc->cfg, v.connector);
	}
	if (r != 0) {
		int st = r == RF_ERR_CSR_MALFORMED ||
			r == RF_ERR_CSR_SIGNATURE ||
			r == RF_ERR_KEY_DISALLOWED || r == RF_ERR_CSR_REQUEST ||
			r == RF_ERR_TOO_LARGE || r == RF_ERR_KEY_REUSED
		    ? 400
		    : 500;

		if (r == RF_ERR_REFUSED)
			svc_answer_fail(a, r);
		/* Whose key it is, is the operator's to know (the store's
		 * message names them), not another connector's. */
		else if (r == RF_ERR_KEY_REUSED)
			rf_api_answer_error(a, 400, "bad_request",
			    "the CSR's key already serves another certificate: "
			    "make a new key for the renewal");
		else
			rf_api_answer_error(a, st,
			    st == 400 ? "bad_request" : "internal",
			    rf_err_msg(r));
		goto out;
	}
	j = json_pack("{s:s,s:s,s:I}", "serial", is.serial, "pem", is.chain_pem,
	    "days", (json_int_t)svc->cfg->connector_days);
	a->status = 200;
	a->body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	goto out;
fail:
	svc_answer_fail(a, r);
out:
	pthread_mutex_unlock(&svc->lock);
	rf_issued_clear(&is);
	free(csr);
}
