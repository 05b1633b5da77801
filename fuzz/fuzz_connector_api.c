/*
 * fuzz_connector_api.c: the connector API's request parsers
 * (rf_connector_parse_assert, rf_connector_parse_renew,
 * rf_connector_parse_session), a connector's proof (rf_proof_parse, a
 * signed one or a session's) and the JWT
 * signing-input check (rf_jwt_check) on arbitrary bytes. Invariants: an
 * accepted assertion request names a connection whose parts are valid
 * names without traversal; the JWT check accepts only the exact text
 * rf_jwt_build makes. The corpus in fuzz/corpus/connector_api is replayed
 * by ctest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "connector/connector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_assert_ask ask;
	struct rf_entra_rec reg;
	char *csr = NULL, jti[40], proof[RF_PROOF_MAX + 1];
	char key[RF_PROOF_B64_32 + 1];
	struct rf_proof pf;
	size_t csrlen;

	if (rf_connector_parse_assert(data, size, &ask) == 0) {
		if (rf_ca_tenant_name_check(ask.tenant) != 0 ||
		    rf_ca_tenant_name_check(ask.conn) != 0 ||
		    strcmp(ask.conn, "..") == 0 ||
		    strcmp(ask.tenant, "..") == 0)
			abort();
	}
	if (rf_connector_parse_renew(data, size, &csr, &csrlen, proof) == 0 &&
	    (csr == NULL || strlen(csr) != csrlen ||
		strlen(proof) > RF_PROOF_MAX))
		abort();
	free(csr);
	if (rf_connector_parse_session(data, size, key, proof) == 0 &&
	    (strlen(key) != RF_PROOF_B64_32 || proof[0] == '\0' ||
		strlen(proof) > RF_PROOF_MAX))
		abort();
	/* A connector's proof as keyd reads it from serve's request. */
	if (rf_proof_parse((const char *)data, size, &pf) == 0 &&
	    (pf.siglen == 0 || pf.siglen > sizeof(pf.sig) ||
		strlen(pf.nonce) < 16 || strlen(pf.nonce) > 64 ||
		(pf.sid[0] != '\0' &&
		    (pf.siglen != 32 || pf.count == 0 ||
			strlen(pf.sid) != RF_PROOF_SID_LEN))))
		abort();

	memset(&reg, 0, sizeof(reg));
	strcpy(reg.tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47");
	strcpy(reg.client_id, "00000003-0000-4000-8000-0000000000aa");
	strcpy(reg.jwt_alg, "PS256");
	if (rf_jwt_check(&reg, "x5t", data, size, 1700000000, 600, jti) == 0) {
		char *msg = NULL;

		/* Accepted: it must be exactly what the builder makes. */
		if (rf_jwt_build(&reg, "x5t", jti, 1700000000, 600, &msg) != 0)
			abort();
		free(msg);
	}
	rf_err_clear();
	return 0;
}
