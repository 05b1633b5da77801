/* Error strings and the per-thread error detail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/rf.h"

static _Thread_local char detail[512];
static _Thread_local int detail_code;

const char *
rf_err_str(int r)
{
	switch (r) {
	case RF_OK:
		return "success";
	case RF_ERR_INTERNAL:
		return "internal error";
	case RF_ERR_ALLOC:
		return "out of memory";
	case RF_ERR_ARG:
		return "invalid argument";
	case RF_ERR_CONFIG:
		return "invalid configuration: check ringfence.conf";
	case RF_ERR_IO:
		return "file system error";
	case RF_ERR_NOT_FOUND:
		return "not found";
	case RF_ERR_EXISTS:
		return "already exists";
	case RF_ERR_NOT_INITIALISED:
		return "state is not initialised: run 'ringfence init'";
	case RF_ERR_ALREADY_INITIALISED:
		return "state is already initialised";
	case RF_ERR_TOKEN_MODULE:
		return "PKCS#11 module cannot be loaded: check "
		       "RINGFENCE_MODULE";
	case RF_ERR_TOKEN_NOT_FOUND:
		return "no token with that label: check RINGFENCE_TOKEN";
	case RF_ERR_TOKEN_PIN:
		return "token PIN rejected: check RINGFENCE_PIN";
	case RF_ERR_TOKEN:
		return "token error";
	case RF_ERR_KEY_NOT_FOUND:
		return "key not found in the token";
	case RF_ERR_KEY_DISABLED:
		return "key is disabled";
	case RF_ERR_SIGNATURE_INVALID:
		return "signature does not verify";
	case RF_ERR_STORE:
		return "database error";
	case RF_ERR_STORE_READONLY:
		return "database is read-only: check permissions of the state "
		       "folder";
	case RF_ERR_STORE_FULL:
		return "disk or database is full: free space in the state "
		       "folder";
	case RF_ERR_STORE_BUSY:
		return "database is locked by another process";
	case RF_ERR_AUDIT:
		return "audit record could not be appended; nothing was signed";
	case RF_ERR_AUDIT_TAMPERED:
		return "audit record does not verify";
	case RF_ERR_CSR_MALFORMED:
		return "CSR is malformed: supply a PEM or DER PKCS#10 request";
	case RF_ERR_CSR_SIGNATURE:
		return "CSR signature does not verify";
	case RF_ERR_KEY_DISALLOWED:
		return "key type not allowed: use EC P-256/P-384 or RSA "
		       "2048/3072/4096";
	case RF_ERR_CSR_REQUEST:
		return "CSR requests something the profile does not allow";
	case RF_ERR_KEY_REUSED:
		return "public key already serves another tenant";
	case RF_ERR_MALFORMED:
		return "malformed input";
	case RF_ERR_TOO_LARGE:
		return "input too large";
	case RF_ERR_STATE:
		return "operation not allowed in the current state";
	case RF_ERR_PROOF:
		return "proof does not verify";
	case RF_ERR_CUSTODY:
		return "custody process ended before answering (killed?): "
		       "nothing was signed without its record; run the "
		       "command again";
	case RF_ERR_REFUSED:
		return "the custody process refused the request for this "
		       "caller's class";
	}
	return "unknown error";
}

int
rf_err_set(int r, const char *fmt, ...)
{
	char buf[sizeof(detail)];
	va_list ap;

	/*
	 * Format into a local buffer first: callers may pass rf_err_msg(),
	 * which points into detail itself.
	 */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(detail, buf, sizeof(detail));
	detail_code = r;
	return r;
}

const char *
rf_err_msg(int r)
{
	if (detail_code == r && detail[0] != '\0')
		return detail;
	return rf_err_str(r);
}

void
rf_err_clear(void)
{
	detail[0] = '\0';
	detail_code = 0;
}

void
rf_err_keep(struct rf_err_held *h, int r)
{
	h->r = r;
	snprintf(h->msg, sizeof(h->msg), "%s", r != 0 ? rf_err_msg(r) : "");
	rf_err_clear();
}

int
rf_err_kept(const struct rf_err_held *h)
{
	if (h->r == 0)
		return 0;
	return rf_err_set(h->r, "%s", h->msg);
}
