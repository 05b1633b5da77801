/*
 * tls.c: the TLS server certificate of `ringfence serve`
 * (rf_ca_tls_ensure, rf_ca_tls_renew): the CA record "tls", made like the
 * hierarchy's certificates (ca.c, ca_init_sign) with the server profile
 * and the CRL DP and AIA of the certificates issue.c makes, and recorded
 * as a certificate of its issuing CA so that revoke, the CRL and OCSP
 * know it.
 */
#include <arpa/inet.h>
#include <strings.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "common/rf.h"
#include "keys/keys.h"
#include "ocsp/ocsp.h"
#include "store/store.h"

/* The names of serve's certificate, at most; and its subjectAltName of
 * that many: "DNS:" a name of 253, ",". */
#define TLS_RENEW_NAMES 16
#define TLS_SAN_MAX (TLS_RENEW_NAMES * (4 + 253 + 1) + 1)

static int
is_ip(const char *name)
{
	uint8_t b[16];

	return inet_pton(AF_INET, name, b) == 1 ||
	    inet_pton(AF_INET6, name, b) == 1;
}

/* RFC 5280 4.2.1.6 subjectAltName: "IP:a,DNS:b,..." for names. */
static int
tls_san(const char *const *names, size_t n, char *out, size_t outlen)
{
	size_t off = 0, i;
	int w, r;

	if (n == 0)
		return rf_err_set(RF_ERR_CONFIG,
		    "the TLS certificate needs a name: set tls_names");
	for (i = 0; i < n; i++) {
		if (!is_ip(names[i]) && (r = ca_dns_name_check(names[i])) != 0)
			return r;
		w = snprintf(out + off, outlen - off, "%s%s:%s",
		    i > 0 ? "," : "", is_ip(names[i]) ? "IP" : "DNS", names[i]);
		if (w < 0 || (size_t)w >= outlen - off)
			return rf_err_set(RF_ERR_CONFIG,
			    "too many TLS names: check tls_names");
		off += (size_t)w;
	}
	return 0;
}

static int64_t
x509_time(const ASN1_TIME *t)
{
	int64_t s = rf_ca_asn1_secs(t);

	return s < 0 ? 0 : s;
}

/*
 * 1 when x is revoked, or has no record as a certificate of its CA (made
 * before it was one, with no CRL DP or OCSP URL); else 0.
 */
static int
tls_revoked(struct rf_ca *ca, X509 *x)
{
	struct rf_cert_rec cr;
	char serial[41];
	int revoked;

	if (rf_ca_serial_str(X509_get0_serialNumber(x), serial) != 0 ||
	    rf_store_cert_get(ca->st, serial, &cr) != 0) {
		rf_err_clear();
		return 1;
	}
	revoked = cr.revoked;
	rf_cert_rec_clear(&cr);
	return revoked;
}

/*
 * The stored certificate still serves: issued by the active issuing CA,
 * its key in the token and active, a third of its validity left, and
 * every name in its SAN (RFC 6125 matching, as a client does it).
 */
static int
tls_usable(struct rf_ca *ca, const struct ca_entry *e, const char *const *names,
    size_t n, int64_t now)
{
	struct rf_key_rec kr;
	int64_t nb, na;
	size_t i;

	if (e == NULL || e->key == NULL ||
	    strcmp(e->parent, ca->ent[ca->iss].name) != 0)
		return 0;
	if (rf_store_key_get(ca->st, rf_key_id(e->key), &kr) != 0) {
		rf_err_clear();
		return 0;
	}
	/* Revoked, or made before it was a certificate of its CA (with no
	 * CRL DP or OCSP URL): replaced. */
	if (tls_revoked(ca, e->x) != 0)
		return 0;
	nb = x509_time(X509_get0_notBefore(e->x));
	na = x509_time(X509_get0_notAfter(e->x));
	if (strcmp(kr.state, "active") != 0 || na - now <= (na - nb) / 3)
		return 0;
	for (i = 0; i < n; i++)
		if ((is_ip(names[i])
			    ? X509_check_ip_asc(e->x, names[i], 0)
			    : X509_check_host(e->x, names[i], 0,
				  X509_CHECK_FLAG_NO_WILDCARDS, NULL)) != 1)
			return 0;
	return 1;
}

/*
 * A new key (EC P-256, first token) and its certificate, from the active
 * issuing CA: the server profile (cA FALSE, KU digitalSignature, EKU
 * serverAuth, SAN) with the CRL DP and AIA (OCSP, caIssuers) of every
 * certificate of that CA, so that it can be revoked like any other.
 */
static int
tls_make(struct rf_ca *ca, const char *san, const struct rf_actor *who,
    struct rf_key **keyp, struct init_cert *c)
{
	struct ca_entry *iss = &ca->ent[ca->iss];
	struct init_cert ic;
	struct blob own[1], ext[6];
	X509_NAME *name = NULL;
	int64_t now = rf_now();
	int r;

	memset(own, 0, sizeof(own));
	if ((r = rf_keys_generate(ca->keys, RF_KEY_EC_P256, RF_KEY_LABEL_TLS,
		 NULL, who, keyp)) != 0)
		return r;
	if ((r = ca_serial_new(&c->serial, c->hex)) != 0)
		goto out;
	if ((name = ca_name_make("ringfence", "server", "ringfence serve")) ==
		NULL ||
	    BLOB_I2D(i2d_X509_NAME, name, &c->name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, c->serial, &c->serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = ca_key_spki(*keyp, &c->spki)) != 0 ||
	    (r = ca_ski_ext(c->spki.p, c->spki.len, c->keyid, c->ski)) != 0 ||
	    (r = rf_key_sigalg(iss->key, RF_SIG_DEFAULT, &c->sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, c->sigalg, &c->alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	c->nb = now - CA_BACKDATE;
	c->na = now + (int64_t)ca->cfg.cert_days * DAY;
	if (c->na > ca->issuing_not_after)
		c->na = ca->issuing_not_after;
	if ((r = ca_ext_blob(NID_subject_alt_name, san, &own[0])) != 0)
		goto out;
	ext[0] = ca->ext[EXT_BC]; /* borrowed */
	ext[1] = ca->ext[EXT_KU_SIG];
	ext[2] = ca->ext[EXT_EKU_SERVER];
	ext[3] = own[0];
	ext[4] = ca->ext[EXT_CRLDP];
	ext[5] = ca->ext[EXT_AIA];
	/* The issuer, as ca_init_sign reads it: its name and key id. */
	memset(&ic, 0, sizeof(ic));
	ic.name = ca->issuer; /* borrowed, never cleared */
	memcpy(ic.keyid, ca->aki + sizeof(ca->aki) - 20, 20);
	r = ca_init_sign(ca->keys, iss->key, c, &ic, ext, 6, who);
out:
	X509_NAME_free(name);
	ca_blob_clear(&own[0]);
	return r;
}

/*
 * Record the new key and certificate with an audit event: as the service
 * certificate "tls" that serve loads, and as a certificate of its issuing
 * CA (no tenant, profile "server"), which revoke, the CRL and OCSP know.
 */
static int
tls_commit(struct rf_ca *ca, struct rf_key *key, const struct init_cert *c,
    const char *san, const struct rf_actor *who)
{
	struct rf_key_rec kr;
	struct rf_ca_rec cr;
	struct rf_cert_rec cert;
	struct rf_audit_event ev;
	char detail[TLS_SAN_MAX + 8];
	int r, in_tx = 0;

	if ((r = rf_store_begin(ca->st)) != 0)
		return r;
	in_tx = 1;
	ca_key_rec_set(&kr, key, "tls", rf_now());
	ca_rec_set(&cr, "tls", key, ca->ent[ca->iss].name, c);
	memset(&ev, 0, sizeof(ev));
	ev.type = "issue";
	ev.key_id = rf_key_id(key);
	ev.ref = c->hex;
	snprintf(detail, sizeof(detail), "tls %s", san);
	ev.detail = detail;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	memset(&cert, 0, sizeof(cert));
	snprintf(cert.serial, sizeof(cert.serial), "%s", c->hex);
	snprintf(cert.issuer, sizeof(cert.issuer), "%s", ca->ent[ca->iss].name);
	snprintf(cert.profile, sizeof(cert.profile), "server");
	snprintf(cert.key_id, sizeof(cert.key_id), "%s", rf_key_id(key));
	snprintf(cert.subject, sizeof(cert.subject),
	    "CN=ringfence serve,OU=server,O=ringfence");
	rf_ca_thumbprints(c->der, c->derlen, cert.x5t, cert.x5t256);
	cert.not_before = c->nb;
	cert.not_after = c->na;
	cert.issued = rf_now();
	cert.reason = -1;
	cert.der = c->der; /* borrowed */
	cert.derlen = c->derlen;
	if ((r = rf_store_key_add(ca->st, &kr)) != 0 ||
	    (r = rf_store_ca_put(ca->st, &cr)) != 0 ||
	    (r = rf_store_cert_add(ca->st, &cert)) != 0 ||
	    (r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	r = rf_store_commit(ca->st);
	in_tx = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	return r;
}

/* The names of a TLS certificate's subjectAltName, as tls_san takes them. */

static int
tls_names_of(X509 *x, char names[][256], size_t *n)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *g;
	int i, len;

	*n = 0;
	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) ==
	    NULL)
		return rf_err_set(
		    RF_ERR_STATE, "serve's HTTPS certificate names nothing");
	for (i = 0; i < sk_GENERAL_NAME_num(gens) && *n < TLS_RENEW_NAMES;
	     i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		len = g->type == GEN_DNS || g->type == GEN_IPADD
		    ? ASN1_STRING_length(g->d.ia5)
		    : -1;
		if (g->type == GEN_DNS && len > 0 && len < 256) {
			memcpy(names[*n], ASN1_STRING_get0_data(g->d.ia5),
			    (size_t)len);
			names[(*n)++][len] = '\0';
		} else if (g->type == GEN_IPADD && (len == 4 || len == 16) &&
		    inet_ntop(len == 4 ? AF_INET : AF_INET6,
			ASN1_STRING_get0_data(g->d.ip), names[*n],
			256) != NULL) {
			(*n)++;
		}
	}
	GENERAL_NAMES_free(gens);
	return *n > 0 ? 0
		      : rf_err_set(RF_ERR_STATE,
			    "serve's HTTPS certificate names nothing");
}

/* The same name: DNS names without regard to case, addresses by value. */
static int
tls_same_name(const char *a, const char *b)
{
	uint8_t x[16], y[16];

	if (inet_pton(AF_INET, a, x) == 1)
		return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1)
		return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
	return strcasecmp(a, b) == 0;
}

/*
 * The names a new certificate is made for: names, then those of the one
 * it replaces that names lacks. Another serve on this state folder (its
 * own listen address or tls_names) may use the old one, and takes the new
 * one within a pass (server.c, tls_refresh): without its names there, its
 * clients would no longer match it. A revoked certificate's names are not
 * kept, nor any when there would be more than TLS_RENEW_NAMES. Returns the
 * count in all (pointing into names and kept).
 */
static size_t
tls_union(struct rf_ca *ca, const struct ca_entry *e, const char *const *names,
    size_t n, char kept[][256], const char **all)
{
	size_t nk = 0, na, i, j;

	for (na = 0; na < n && na < TLS_RENEW_NAMES; na++)
		all[na] = names[na];
	if (n > TLS_RENEW_NAMES || e == NULL || e->x == NULL ||
	    tls_revoked(ca, e->x) || tls_names_of(e->x, kept, &nk) != 0) {
		rf_err_clear();
		return na;
	}
	for (i = 0; i < nk; i++) {
		for (j = 0; j < na && !tls_same_name(kept[i], all[j]); j++)
			;
		if (j < na)
			continue;
		if (na == TLS_RENEW_NAMES)
			return n; /* too many: names alone */
		all[na++] = kept[i];
	}
	return na;
}

int
rf_ca_tls_ensure(struct rf_ca *ca, const char *const *names, size_t n,
    const struct rf_actor *who, int *made)
{
	struct ca_entry *e = ca_find(ca, "tls");
	struct init_cert c;
	struct rf_key *key = NULL;
	const uint8_t *p;
	char san[TLS_SAN_MAX], old[65] = "", kept[TLS_RENEW_NAMES][256];
	const char *all[TLS_RENEW_NAMES];
	size_t nall;
	X509 *x = NULL;
	int r;

	*made = 0;
	if ((r = tls_san(names, n, san, sizeof(san))) != 0)
		return r;
	if (tls_usable(ca, e, names, n, rf_now()))
		return 0;
	/* With the names the replaced one served, when they fit. */
	if ((nall = tls_union(ca, e, names, n, kept, all)) > n &&
	    tls_san(all, nall, san, sizeof(san)) != 0) {
		rf_err_clear();
		(void)tls_san(names, n, san, sizeof(san));
	}
	if (e == NULL && ca->nent >= CA_MAX)
		return rf_err_set(
		    RF_ERR_STATE, "more than %d CA certificates", CA_MAX);
	memset(&c, 0, sizeof(c));
	if ((r = tls_make(ca, san, who, &key, &c)) != 0 ||
	    (r = tls_commit(ca, key, &c, san, who)) != 0)
		goto out;
	/* Its OCSP response, as after any issuance (best effort: the
	 * server's refresh signs what is missing). */
	if (ca_ocsp_signer(ca) != NULL) {
		struct rf_ocsp_status st;

		memset(&st, 0, sizeof(st));
		st.serial = c.hex;
		st.reason = -1;
		if (rf_ocsp_presign(ca->ocsp_signer, &st, 1, who) != 0)
			rf_err_clear();
	}
	p = c.der;
	if ((x = d2i_X509(NULL, &p, (long)c.derlen)) == NULL) {
		r = rf_err_set(
		    RF_ERR_INTERNAL, "TLS certificate does not parse");
		goto out;
	}
	if (e == NULL) {
		e = &ca->ent[ca->nent++];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "tls");
	} else if (e->key != NULL) {
		snprintf(old, sizeof(old), "%s", rf_key_id(e->key));
	}
	X509_free(e->x);
	rf_key_free(e->key);
	e->x = x; /* both now the entry's */
	e->key = key;
	x = NULL;
	key = NULL;
	snprintf(e->parent, sizeof(e->parent), "%s", ca->ent[ca->iss].name);
	e->active = 1;
	e->not_before = c.nb;
	/* The replaced key signs nothing more (best effort: it is unused). */
	if (old[0] != '\0' &&
	    (rf_keys_disable(ca->keys, old, who) != 0 ||
		rf_store_key_set_state(ca->st, old, "disabled") != 0))
		rf_err_clear();
	*made = 1;
	r = 0;
out:
	if (key != NULL) /* made but not recorded: remove it */
		(void)!rf_keys_destroy(ca->keys, rf_key_id(key), who);
	rf_key_free(key);
	X509_free(x);
	ca_init_cert_clear(&c);
	return r;
}

int
rf_ca_tls_renew(struct rf_ca *ca, const struct rf_actor *who, int *made)
{
	struct ca_entry *e = ca_find(ca, "tls");
	char names[TLS_RENEW_NAMES][256];
	const char *ptr[TLS_RENEW_NAMES];
	size_t n = 0, i;
	int r;

	*made = 0;
	if (e == NULL || e->x == NULL)
		return 0; /* serve never ran: it makes one when it starts */
	if ((r = tls_names_of(e->x, names, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		ptr[i] = names[i];
	return rf_ca_tls_ensure(ca, ptr, n, who, made);
}
