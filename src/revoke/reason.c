/* Reason codes and serial numbers as people type them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "revoke/revoke.h"

/*
 * RFC 5280 5.3.1:
 *   CRLReason ::= ENUMERATED {
 *        unspecified             (0),
 *        keyCompromise           (1),
 *        cACompromise            (2),
 *        affiliationChanged      (3),
 *        superseded             (4),
 *        cessationOfOperation    (5),
 *        certificateHold         (6),
 *             -- value 7 is not used
 *        removeFromCRL           (8),
 *        privilegeWithdrawn      (9),
 *        aACompromise           (10) }
 */
static const char *const reason_names[] = {
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    NULL,
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
};
#define REASON_MAX 10

const char *
rf_crl_reason_name(int reason)
{
	if (reason == RF_CRL_REASON_NONE)
		return "none";
	if (reason < 0 || reason > REASON_MAX)
		return NULL;
	return reason_names[reason];
}

int
rf_crl_reason_parse(const char *name, int *reason)
{
	char *end, shown[41];
	long v;
	size_t k;
	int i;

	*reason = RF_CRL_REASON_NONE;
	if (name == NULL || *name == '\0')
		return rf_err_set(RF_ERR_ARG, "empty revocation reason");
	for (i = 0; i <= REASON_MAX; i++) {
		if (reason_names[i] != NULL &&
		    strcasecmp(name, reason_names[i]) == 0) {
			*reason = i;
			return 0;
		}
	}
	if (isdigit((unsigned char)name[0])) {
		v = strtol(name, &end, 10);
		if (*end == '\0' && v >= 0 && v <= REASON_MAX && v != 7) {
			*reason = (int)v;
			return 0;
		}
	}
	/* The name as the message shows it, on one line: at most 40 bytes,
	 * each but printable ASCII (every reason's name is) as '?': a
	 * newline would make the error two, an escape would reach the
	 * terminal. */
	for (k = 0; k < sizeof(shown) - 1 && name[k] != '\0'; k++)
		shown[k] = name[k] >= 0x20 && name[k] < 0x7f ? name[k] : '?';
	shown[k] = '\0';
	return rf_err_set(RF_ERR_ARG,
	    "unknown revocation reason '%s%s': use one of "
	    "unspecified, keyCompromise, cACompromise, "
	    "affiliationChanged, superseded, "
	    "cessationOfOperation, certificateHold, "
	    "privilegeWithdrawn, aACompromise",
	    shown, name[k] != '\0' ? "..." : "");
}

int
rf_revoke_serial_norm(const char *in, char out[41])
{
	size_t n = 0, digits = 0;
	const char *p;

	out[0] = '\0';
	if (in == NULL)
		return rf_err_set(RF_ERR_ARG, "missing serial number");
	p = in;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	for (; *p != '\0'; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p))
			return rf_err_set(
			    RF_ERR_ARG, "serial '%s' is not hexadecimal", in);
		digits++;
		if (n == 0 && *p == '0')
			continue; /* leading zero */
		if (n == 40)
			return rf_err_set(RF_ERR_ARG,
			    "serial '%s' is longer than 20 "
			    "octets",
			    in);
		out[n++] = (char)tolower((unsigned char)*p);
	}
	if (digits == 0)
		return rf_err_set(RF_ERR_ARG, "empty serial number");
	if (n == 0)
		out[n++] = '0'; /* only zeros: the value zero */
	out[n] = '\0';
	return 0;
}
