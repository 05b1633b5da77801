/*
 * tenant.c: tenants (rf_ca_tenant_add, audited) and the names a caller
 * gives the CA: profile names, tenant and connection names (which become
 * file and folder names) and DNS names, checked before they reach a
 * certificate or a record. ca_dns_name_check serves check.c and tls.c.
 */
#include <ctype.h>
#include <string.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/rf.h"
#include "store/store.h"

/* ------------------------------------------------------------------ */
/* Profiles and names                                                 */

int
rf_profile_parse(const char *name, enum rf_profile *p)
{
	*p = RF_PROFILE_NONE;
	if (name == NULL)
		return rf_err_set(RF_ERR_ARG, "missing profile");
	if (strcmp(name, "client") == 0)
		*p = RF_PROFILE_CLIENT;
	else if (strcmp(name, "server") == 0)
		*p = RF_PROFILE_SERVER;
	else if (strcmp(name, "assertion") == 0)
		*p = RF_PROFILE_ASSERTION;
	else
		return rf_err_set(RF_ERR_ARG,
		    "unknown profile \"%.32s\": use "
		    "client, server or assertion",
		    name);
	return 0;
}

const char *
rf_profile_name(enum rf_profile p)
{
	switch (p) {
	case RF_PROFILE_CLIENT:
		return "client";
	case RF_PROFILE_SERVER:
		return "server";
	case RF_PROFILE_ASSERTION:
		return "assertion";
	case RF_PROFILE_CONNECTOR:
		return "connector";
	default:
		return "none";
	}
}

/*
 * Tenant and connection names become file and folder names (incident
 * packages, reports): no "/", NUL or control character, and no leading
 * dot, so that no name is "." or "..", or hidden.
 */
int
rf_ca_conn_name_check(const char *name)
{
	if (name != NULL && strlen(name) > RF_CONN_NAME_MAX)
		return rf_err_set(RF_ERR_ARG,
		    "connection name of %zu characters: a connection name is "
		    "1-%d characters of A-Z a-z 0-9 . _ -",
		    strlen(name), RF_CONN_NAME_MAX);
	return rf_ca_tenant_name_check(name);
}

int
rf_ca_tenant_name_check(const char *name)
{
	size_t i, len;

	/* Not hidden, not "." or "..": names become folder names. */
	if (name == NULL || (len = strlen(name)) == 0 || len > 64 ||
	    name[0] == '.')
		goto bad;
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_' && name[i] != '-')
			goto bad;
	}
	if (name[0] == '.')
		return rf_err_set(RF_ERR_ARG,
		    "invalid name \"%s\": a tenant or connection name may "
		    "not start with a dot; use 1-64 characters of A-Z a-z 0-9 "
		    ". _ - starting with a letter, digit, _ or -",
		    name);
	return 0;
bad:
	/* Only a name of printable characters is quoted back. */
	for (i = 0; name != NULL && name[i] != '\0' && i < 80; i++)
		if (!isprint((unsigned char)name[i]))
			break;
	return rf_err_set(RF_ERR_ARG,
	    "invalid name \"%.*s%s\": a tenant or connection name is 1-64 "
	    "characters of A-Z a-z 0-9 . _ -, not starting with a dot",
	    (int)i, name == NULL ? "" : name,
	    name != NULL && name[i] != '\0' ? "..." : "");
}

/*
 * RFC 1035 2.3.1 / RFC 5280 4.2.1.6: a dNSName is a preferred-syntax name;
 * a leading "*." wildcard label is accepted (RFC 6125 6.4.3).
 */
int
ca_dns_name_check(const char *dns)
{
	size_t len, lab = 0, i;
	const char *p;

	if (dns == NULL || (len = strlen(dns)) == 0 || len > 253)
		goto bad;
	p = dns;
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	if (*p == '\0')
		goto bad;
	for (i = 0; p[i] != '\0'; i++) {
		if (p[i] == '.') {
			if (lab == 0 || p[i - 1] == '-')
				goto bad;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)p[i]) && p[i] != '-')
			goto bad;
		if (lab == 0 && p[i] == '-')
			goto bad;
		if (++lab > 63)
			goto bad;
	}
	if (lab == 0 || p[i - 1] == '-')
		goto bad;
	return 0;
bad:
	return rf_err_set(RF_ERR_ARG,
	    "invalid DNS name \"%.80s\": use "
	    "letters, digits, '-' and '.' labels",
	    dns == NULL ? "" : dns);
}

/* ------------------------------------------------------------------ */
/* Tenants                                                            */

int
rf_ca_tenant_add(struct rf_ca *ca, const char *name, const struct rf_actor *who)
{
	struct rf_audit_event ev;
	int r, in_tx = 0;

	if ((r = rf_ca_tenant_name_check(name)) != 0)
		return r;
	if ((r = rf_store_begin(ca->st)) != 0)
		return r;
	in_tx = 1;
	if ((r = rf_store_tenant_add(ca->st, name, rf_now())) != 0) {
		if (r == RF_ERR_EXISTS)
			r = rf_err_set(
			    RF_ERR_EXISTS, "tenant %s already exists", name);
		goto out;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = "tenant";
	ev.tenant = name;
	ev.detail = "add";
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	if ((r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	return r;
}
