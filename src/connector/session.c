/*
 * session.c: a connector opens a proof session through the API (POST
 * /v1/connector/session; proof.c has the protocol): serve checks who asks
 * and the proof bucket, and relays the signed proof and the connector's
 * X25519 key to keyd, which checks the proof and opens the session.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "connector/connector.h"
#include "connector/service_int.h"
#include "keys/keys.h"

/* Who asks (a connector known and not revoked) and the certificate's
 * proof bucket, as an assertion's proof takes it. 1 when *a is answered. */
static int
session_admit(struct rf_connector_svc *svc, const char *cert_serial,
    int64_t now, struct rf_api_answer *a)
{
	struct rf_connector_verdict v;
	int retry = 1, r;

	pthread_mutex_lock(&svc->lock);
	if ((r = svc_who_asks(svc, cert_serial, now, &v, a)) == 0) {
		if (svc_proof_token(svc, cert_serial, now, &retry) != 0) {
			rf_err_clear();
			rf_api_answer_error(a, 429, "rate_limited",
			    "this certificate asked for too many proof "
			    "sessions and proofs: wait, then open one and keep "
			    "it");
			a->retry_after = retry > 0 ? retry : 1;
			r = 1;
		}
	}
	pthread_mutex_unlock(&svc->lock);
	if (r != 0 && r != 1) /* an error, not an answer */
		svc_answer_fail(a, r);
	return r != 0;
}

void
rf_connector_svc_session(struct rf_connector_svc *svc, const char *cert_serial,
    const char *source, const uint8_t *body, size_t len,
    struct rf_api_answer *a)
{
	struct rf_keys_session ks;
	char key[RF_PROOF_B64_32 + 1], proof[RF_PROOF_MAX + 1];
	json_t *j;
	int r;

	(void)source;
	memset(a, 0, sizeof(*a));
	rf_err_clear();
	if (cert_serial == NULL || *cert_serial == '\0') {
		rf_api_answer_error(a, 401, "client_certificate_required",
		    "present a connector's TLS client certificate");
		return;
	}
	if ((r = rf_connector_parse_session(body, len, key, proof)) != 0) {
		rf_api_answer_error(a, r == RF_ERR_TOO_LARGE ? 413 : 400,
		    "bad_request", rf_err_msg(r));
		return;
	}
	if (svc_proof_missing(svc, proof, a) ||
	    session_admit(svc, cert_serial, rf_now(), a))
		return;
	/* keyd checks the proof (this certificate's key, for this X25519
	 * key, once) and opens the session. */
	if ((r = rf_keys_proof_session(svc->keys, cert_serial, key,
		 (const uint8_t *)proof, strlen(proof), &ks)) != 0) {
		svc_answer_fail(a, r);
		return;
	}
	j = json_pack("{s:s,s:s,s:s,s:I}", "session", ks.sid, "key", ks.pub,
	    "confirm", ks.confirm, "expires", (json_int_t)ks.expires);
	a->status = 200;
	a->body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (a->body == NULL)
		svc_answer_fail(a, RF_ERR_ALLOC);
	OPENSSL_cleanse(&ks, sizeof(ks));
}
