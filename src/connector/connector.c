/*
 * connector.c: connector names and the Entra registration of a connection.
 */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "connector/connector.h"
#include "store/store.h"
#include "store/store_incident.h"

#define CONNECTOR_TENANT_PREFIX "connector."

int
rf_connector_name_check(const char *name)
{
	if (name == NULL || strlen(name) > 48 ||
	    rf_ca_tenant_name_check(name) != 0 || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return rf_err_set(RF_ERR_ARG,
		    "connector name '%.64s': use 1-48 characters of A-Z a-z "
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
rf_connector_entra_register(const struct rf_config *cfg, struct rf_store *st,
    struct rf_audit *audit, const char *tenant, const char *conn,
    const char *tenant_id, const char *client_id, const struct rf_actor *who)
{
	struct rf_audit_event ev;
	struct rf_entra_rec e;
	struct rf_tenant t;
	enum rf_key_alg alg;
	enum rf_sig_scheme sch;
	char detail[200];
	int r;

	memset(&e, 0, sizeof(e));
	if ((r = rf_connector_guid(tenant_id, "tenant id", e.tenant_id)) != 0 ||
	    (r = rf_connector_guid(client_id, "client id", e.client_id)) != 0)
		return r;
	if (rf_key_alg_parse(cfg->entra_key_alg, &alg) != 0 ||
	    (alg != RF_KEY_RSA_2048 && alg != RF_KEY_RSA_3072))
		return rf_err_set(RF_ERR_CONFIG,
		    "entra_key_alg '%s': Entra ID accepts only RSA keys; use "
		    "rsa-2048 or rsa-3072",
		    cfg->entra_key_alg);
	if (rf_jwt_scheme(cfg->entra_jwt_alg, &sch) != 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "entra_jwt_alg '%s': use PS256 or RS256",
		    cfg->entra_jwt_alg);
	if ((r = rf_ca_tenant_name_check(conn)) != 0)
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
	if ((r = rf_store_conn_set(
		 st, tenant, conn, "pinned", NULL, e.created, NULL)) != 0 ||
	    (r = rf_store_entra_put(st, &e)) != 0 ||
	    (r = rf_audit_append(audit, &ev, 1, NULL)) != 0) {
		rf_store_rollback(st);
		return r;
	}
	return rf_store_commit(st);
}
