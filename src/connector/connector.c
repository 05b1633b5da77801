/*
 * connector.c: connector names and the Entra registration of a connection.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "connector/connector.h"
#include "store/store.h"
#include "store/store_incident.h"

#define CONNECTOR_TENANT_PREFIX "connector."

int
rf_connector_name_check(const char *name)
{
	/* A name too long is not echoed: cut, it would not be the one
	 * given. */
	if (name != NULL && strlen(name) > 48)
		return rf_err_set(RF_ERR_ARG,
		    "connector name of %zu characters: use 1-48 characters "
		    "of A-Z a-z 0-9 . _ -",
		    strlen(name));
	if (name == NULL || rf_ca_tenant_name_check(name) != 0 ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return rf_err_set(RF_ERR_ARG,
		    "connector name '%s': use 1-48 characters of A-Z a-z "
		    "0-9 . _ -",
		    name != NULL ? name : "");
	return 0;
}

void
rf_connector_tenant(const char *name, char out[128])
{
	snprintf(out, 128, CONNECTOR_TENANT_PREFIX "%s", name);
}

int
rf_connector_conn_alg(struct rf_store *st, const char *tenant, const char *conn,
    enum rf_key_alg *alg)
{
	struct rf_entra_rec e;
	int r;

	*alg = RF_KEY_NONE;
	if ((r = rf_store_entra_get(st, tenant, conn, &e)) == RF_ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return r;
	return rf_key_alg_parse(e.key_alg, alg);
}

int
rf_connector_entra_key(const EVP_PKEY *pub)
{
	return EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bits(pub) >= 2048;
}

/*
 * Entra ID accepts only RSA keys of 2048 bits or more for certificate
 * credentials. The key of certificate serial: its record when the token
 * holds it (the algorithm it was made with), else the certificate's own
 * public key (a credential issued from a CSR). *rsa is 1 for such a key;
 * what names it for a message.
 */
static int
cred_key_rsa(struct rf_store *st, const char *serial, int *rsa, char what[32])
{
	struct rf_cert_rec c;
	struct rf_key_rec kr;
	enum rf_key_alg alg;
	const uint8_t *p;
	EVP_PKEY *pub;
	X509 *x = NULL;
	int r;

	*rsa = 0;
	memset(&c, 0, sizeof(c));
	if ((r = rf_store_cert_get(st, serial, &c)) != 0)
		return r;
	if (rf_store_key_get(st, c.key_id, &kr) == 0 &&
	    rf_key_alg_parse(kr.alg, &alg) == 0) {
		*rsa = rf_key_alg_rsa(alg);
		snprintf(what, 32, "%s", kr.alg);
		r = 0;
		goto out;
	}
	rf_err_clear();
	p = c.der;
	if (c.der == NULL || (x = d2i_X509(NULL, &p, (long)c.derlen)) == NULL ||
	    (pub = X509_get0_pubkey(x)) == NULL) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "stored certificate %s does not parse", serial);
		goto out;
	}
	*rsa = rf_connector_entra_key(pub);
	/* Named as --keygen names them (rf_key_alg_name): "ec-p256",
	 * "rsa-2048"; ringfence's CA issues for P-256 and P-384 only. */
	snprintf(what, 32, "%s%d",
	    EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA	   ? "rsa-"
		: EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC ? "ec-p"
							   : "other-",
	    EVP_PKEY_get_bits(pub));
	r = 0;
out:
	X509_free(x);
	rf_cert_rec_clear(&c);
	return r;
}

/*
 * Inside the registration's transaction: the registration there was and
 * the current credential, which must have an RSA key.
 */
static int
entra_before(const struct rf_config *cfg, struct rf_store *st,
    const char *tenant, const char *conn, struct rf_entra_change *chg)
{
	struct rf_conn_rec cr;
	char what[32];
	int r, rsa;

	if ((r = rf_store_entra_get(st, tenant, conn, &chg->prev)) == 0)
		chg->had = 1;
	else if (r != RF_ERR_NOT_FOUND)
		return r;
	if ((r = rf_store_conn_get(st, tenant, conn, &cr)) ==
	    RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0; /* a new connection: no credential yet */
	}
	if (r != 0)
		return r;
	snprintf(chg->cred, sizeof(chg->cred), "%s", cr.serial);
	if (chg->cred[0] == '\0')
		return 0;
	if ((r = cred_key_rsa(st, chg->cred, &rsa, what)) != 0)
		return r;
	if (!rsa)
		return rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "connection %s/%s: its credential %s has an %s key and "
		    "Entra ID accepts only RSA keys: first issue it an RSA "
		    "credential with 'ringfence issue --tenant %s --connection "
		    "%s --profile assertion --keygen %s', then register it",
		    tenant, conn, chg->cred, what, tenant, conn,
		    cfg->entra_key_alg);
	return 0;
}

int
rf_connector_entra_register(const struct rf_config *cfg, struct rf_store *st,
    struct rf_audit *audit, const char *tenant, const char *conn,
    const char *tenant_id, const char *client_id, const struct rf_actor *who,
    struct rf_entra_change *chg)
{
	struct rf_audit_event ev;
	struct rf_entra_rec e;
	struct rf_tenant t;
	enum rf_key_alg alg;
	enum rf_sig_scheme sch;
	char detail[200];
	int r;

	memset(&e, 0, sizeof(e));
	memset(chg, 0, sizeof(*chg));
	if ((r = rf_connector_guid(tenant_id, "tenant id", e.tenant_id)) != 0 ||
	    (r = rf_connector_guid(client_id, "client id", e.client_id)) != 0)
		return r;
	if (rf_key_alg_parse(cfg->entra_key_alg, &alg) != 0 ||
	    !rf_key_alg_rsa(alg))
		return rf_err_set(RF_ERR_CONFIG,
		    "entra_key_alg '%s': Entra ID accepts only RSA keys; use "
		    "rsa-2048, rsa-3072 or rsa-4096",
		    cfg->entra_key_alg);
	if (rf_jwt_scheme(cfg->entra_jwt_alg, &sch) != 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "entra_jwt_alg '%s': use PS256 or RS256",
		    cfg->entra_jwt_alg);
	if ((r = rf_ca_conn_name_check(conn)) != 0)
		return r;
	if (strncmp(tenant, CONNECTOR_TENANT_PREFIX,
		strlen(CONNECTOR_TENANT_PREFIX)) == 0)
		return rf_err_set(RF_ERR_ARG,
		    "tenant '%s' holds a connector's certificates, not "
		    "connections",
		    tenant);
	if ((r = rf_store_tenant_get(st, tenant, &t)) != 0)
		return r == RF_ERR_NOT_FOUND
		    ? rf_err_set(r,
			  "unknown tenant %s: add it with 'ringfence tenant "
			  "add %s'",
			  tenant, tenant)
		    : r;
	snprintf(e.tenant, sizeof(e.tenant), "%s", tenant);
	snprintf(e.conn, sizeof(e.conn), "%s", conn);
	snprintf(e.key_alg, sizeof(e.key_alg), "%s", rf_key_alg_name(alg));
	snprintf(e.jwt_alg, sizeof(e.jwt_alg), "%s", cfg->entra_jwt_alg);
	e.created = rf_now();
	snprintf(detail, sizeof(detail),
	    "entra connection %s/%s tenant-id %s client-id %s %s %s", tenant,
	    conn, e.tenant_id, e.client_id, e.key_alg, e.jwt_alg);
	memset(&ev, 0, sizeof(ev));
	ev.type = "register";
	ev.tenant = tenant;
	ev.detail = detail;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	if ((r = rf_store_begin(st)) != 0)
		return r;
	if ((r = entra_before(cfg, st, tenant, conn, chg)) != 0)
		goto fail;
	if (chg->had && strcmp(chg->prev.tenant_id, e.tenant_id) == 0 &&
	    strcmp(chg->prev.client_id, e.client_id) == 0 &&
	    strcmp(chg->prev.key_alg, e.key_alg) == 0 &&
	    strcmp(chg->prev.jwt_alg, e.jwt_alg) == 0) {
		rf_store_rollback(st); /* nothing to write */
		chg->cur = chg->prev;
		return 0;
	}
	if ((r = rf_store_conn_set(
		 st, tenant, conn, "pinned", NULL, e.created, NULL)) != 0 ||
	    (r = rf_store_entra_put(st, &e)) != 0 ||
	    (r = rf_audit_append(audit, &ev, 1, NULL)) != 0)
		goto fail;
	if ((r = rf_store_commit(st)) != 0)
		return r;
	chg->cur = e;
	chg->changed = 1;
	return 0;
fail:
	rf_store_rollback(st);
	return r;
}
