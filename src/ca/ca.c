/*
 * ca.c: the certificate authority's hierarchy: set-up (rf_ca_init: the
 * root, issuing and OCSP-signing keys and certificates, and the audit
 * key), loading (rf_ca_open: the CA certificates and keys, and what
 * issuance precomputes from the active issuing CA), the CA certificates
 * and keys by name, and the rotation of an issuing CA (rf_ca_rotate).
 *
 * The rest of the module: tbs.c composes a certificate's DER and checks
 * it once signed; tenant.c holds tenants and the names requests carry;
 * check.c checks issuance requests and issue.c issues (keys, signatures,
 * the store's transaction); tls.c keeps serve's TLS certificate; csr.c
 * and der.c read requests and write DER. ca_int.h is what they share.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
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

enum { CA_ROOT, CA_ISSUING, CA_OCSP, CA_AUDIT, CA_NKEYS };
#define CA_NCERTS 3
static const char *const ca_names[CA_NKEYS] = {
    "root", "issuing", "ocsp", "audit"};

/* The digest of a signature AlgorithmIdentifier (ECDSA / RSA PKCS#1). */
static const EVP_MD *
alg_md(const X509_ALGOR *alg)
{
	const ASN1_OBJECT *oid;
	int mdnid = NID_undef, pknid = NID_undef;

	X509_ALGOR_get0(&oid, NULL, NULL, alg);
	if (OBJ_find_sigid_algs(OBJ_obj2nid(oid), &mdnid, &pknid) != 1)
		return NULL;
	return EVP_get_digestbynid(mdnid);
}

/* base_url goes into extension strings: refuse what would break them. */
static int
base_url_check(const char *url)
{
	size_t i;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		goto bad;
	for (i = 0; url[i] != '\0'; i++)
		if (url[i] == ',' || isspace((unsigned char)url[i]) ||
		    !isprint((unsigned char)url[i]))
			goto bad;
	return 0;
bad:
	return rf_err_set(RF_ERR_CONFIG,
	    "base_url \"%.100s\" must be an "
	    "http(s) URL without commas or spaces",
	    url);
}

/* ------------------------------------------------------------------ */
/* rf_ca_init                                                         */

void
ca_init_cert_clear(struct init_cert *c)
{
	ASN1_INTEGER_free(c->serial);
	ca_blob_clear(&c->serial_der);
	ca_blob_clear(&c->name);
	ca_blob_clear(&c->spki);
	ca_blob_clear(&c->alg);
	X509_ALGOR_free(c->sigalg);
	free(c->tbs);
	free(c->der);
	memset(c, 0, sizeof(*c));
}

/* The store record of a key made for the CA, active from now. */
void
ca_key_rec_set(struct rf_key_rec *kr, const struct rf_key *key,
    const char *purpose, int64_t now)
{
	memset(kr, 0, sizeof(*kr));
	snprintf(kr->id, sizeof(kr->id), "%s", rf_key_id(key));
	snprintf(
	    kr->alg, sizeof(kr->alg), "%s", rf_key_alg_name(rf_key_alg(key)));
	snprintf(kr->purpose, sizeof(kr->purpose), "%s", purpose);
	snprintf(kr->state, sizeof(kr->state), "active");
	kr->created = now;
}

/* The store record of a CA certificate made by ca_init_sign (der borrowed). */
void
ca_rec_set(struct rf_ca_rec *cr, const char *name, const struct rf_key *key,
    const char *parent, const struct init_cert *c)
{
	memset(cr, 0, sizeof(*cr));
	snprintf(cr->name, sizeof(cr->name), "%s", name);
	snprintf(cr->key_id, sizeof(cr->key_id), "%s", rf_key_id(key));
	snprintf(cr->parent, sizeof(cr->parent), "%s", parent);
	snprintf(cr->serial, sizeof(cr->serial), "%s", c->hex);
	cr->not_before = c->nb;
	cr->not_after = c->na;
	cr->active = 1;
	cr->der = c->der;
	cr->derlen = c->derlen;
}

/* Build, sign (one audited signature) and check one CA certificate. */
int
ca_init_sign(struct rf_keys *keys, struct rf_key *signer, struct init_cert *c,
    const struct init_cert *issuer, struct blob *exts, size_t nexts,
    const struct rf_actor *who)
{
	struct tbs_in in;
	struct rf_sign_req req;
	struct rf_sig sig = {NULL, 0};
	uint8_t aki[33];
	size_t i;
	int r;

	memset(&in, 0, sizeof(in));
	in.serial = c->serial_der;
	in.alg = c->alg;
	in.issuer = issuer->name;
	in.subject = c->name;
	in.spki = c->spki;
	in.nb = c->nb;
	in.na = c->na;
	in.exts[in.nexts++] = (struct blob){c->ski, sizeof(c->ski)};
	if (issuer != c) { /* RFC 5280 4.2.1.1: optional when self-signed */
		ca_aki_ext(issuer->keyid, aki);
		in.exts[in.nexts++] = (struct blob){aki, sizeof(aki)};
	}
	for (i = 0; i < nexts; i++)
		in.exts[in.nexts++] = exts[i];
	if ((r = ca_tbs_der(&in, &c->tbs, &c->tbslen)) != 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.msg = c->tbs;
	req.msglen = c->tbslen;
	req.scheme = RF_SIG_DEFAULT;
	req.what = "cert";
	req.ref = c->hex;
	if ((r = rf_keys_sign(keys, signer, &req, 1, who, &sig)) != 0)
		return r;
	r = ca_cert_finish(c->tbs, c->tbslen, c->sigalg, &sig,
	    rf_key_public(signer), 1, &c->der, &c->derlen);
	rf_sig_clear(&sig);
	return r;
}

int
rf_ca_init(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who)
{
	return rf_ca_init_ex(cfg, st, keys, who, NULL, NULL);
}

int
rf_ca_init_ex(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who, rf_ca_keys_hook hook,
    void *arg)
{
	static const char *const labels[CA_NKEYS] = {"ringfence root",
	    "ringfence issuing", "ringfence ocsp", "ringfence audit"};
	static const char *const cns[CA_NCERTS] = {"ringfence root CA",
	    "ringfence issuing CA", "ringfence OCSP signer"};
	/* The signer of each certificate: root, root, issuing. */
	static const int signer[CA_NCERTS] = {CA_ROOT, CA_ROOT, CA_ISSUING};
	struct rf_key *key[CA_NKEYS] = {NULL};
	struct init_cert c[CA_NCERTS];
	struct blob ext[4];
	struct rf_audit *audit = NULL;
	X509_NAME *name = NULL;
	size_t i;
	struct rf_key_rec kr;
	struct rf_ca_rec cr;
	struct rf_audit_event ev;
	enum rf_key_alg alg;
	char val[16], url[512], detail[256];
	int64_t now = rf_now();
	int r = RF_ERR_INTERNAL, in_tx = 0;

	memset(c, 0, sizeof(c));
	memset(ext, 0, sizeof(ext));
	if ((r = rf_store_meta_get(st, "initialised", val, sizeof(val))) == 0)
		return rf_err_set(RF_ERR_ALREADY_INITIALISED,
		    "ringfence is already initialised in %s", cfg->home);
	if (r != RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	if ((r = rf_key_alg_parse(cfg->ca_alg, &alg)) != 0 ||
	    (r = base_url_check(cfg->base_url)) != 0)
		return r;
	if ((r = rf_audit_open(st, &audit)) != 0)
		goto out;
	for (i = 0; i < CA_NKEYS; i++)
		if ((r = rf_keys_generate(
			 keys, alg, labels[i], NULL, who, &key[i])) != 0)
			goto out;
	for (i = 0; i < CA_NCERTS; i++) {
		if ((r = ca_serial_new(&c[i].serial, c[i].hex)) != 0)
			goto out;
		if ((name = ca_name_make("ringfence", NULL, cns[i])) == NULL ||
		    BLOB_I2D(i2d_X509_NAME, name, &c[i].name) != 0 ||
		    BLOB_I2D(i2d_ASN1_INTEGER, c[i].serial, &c[i].serial_der) !=
			0) {
			r = RF_ERR_ALLOC;
			goto out;
		}
		X509_NAME_free(name);
		name = NULL;
		if ((r = ca_key_spki(key[i], &c[i].spki)) != 0 ||
		    (r = ca_ski_ext(c[i].spki.p, c[i].spki.len, c[i].keyid,
			 c[i].ski)) != 0 ||
		    (r = rf_key_sigalg(
			 key[signer[i]], RF_SIG_DEFAULT, &c[i].sigalg)) != 0)
			goto out;
		if (BLOB_I2D(i2d_X509_ALGOR, c[i].sigalg, &c[i].alg) != 0) {
			r = RF_ERR_INTERNAL;
			goto out;
		}
		c[i].nb = now - CA_BACKDATE;
	}
	c[CA_ROOT].na = now + (int64_t)cfg->root_days * DAY;
	c[CA_ISSUING].na = now + (int64_t)cfg->issuing_days * DAY;
	c[CA_OCSP].na = now + (int64_t)cfg->ocsp_signer_days * DAY;
	/* A certificate never outlives its issuer. */
	if (c[CA_ISSUING].na > c[CA_ROOT].na)
		c[CA_ISSUING].na = c[CA_ROOT].na;
	if (c[CA_OCSP].na > c[CA_ISSUING].na)
		c[CA_OCSP].na = c[CA_ISSUING].na;

	/*
	 * Root, self-signed. RFC 5280 4.2.1.9: basicConstraints critical
	 * cA TRUE; 4.2.1.3: keyUsage critical keyCertSign, cRLSign; 4.2.1.2
	 * SKI. The AKI may be omitted in a self-signed certificate (4.2.1.1).
	 */
	if ((r = ca_ext_blob(
		 NID_basic_constraints, "critical,CA:TRUE", &ext[0])) != 0 ||
	    (r = ca_ext_blob(NID_key_usage, "critical,keyCertSign,cRLSign",
		 &ext[1])) != 0 ||
	    (r = ca_init_sign(keys, key[CA_ROOT], &c[CA_ROOT], &c[CA_ROOT], ext,
		 2, who)) != 0)
		goto out;

	/*
	 * Issuing intermediate, signed by the root: cA TRUE with
	 * pathLenConstraint 0 (it issues only end-entity certificates), KU
	 * keyCertSign + cRLSign, SKI, AKI, and the root's CRL DP (4.2.1.13).
	 */
	snprintf(url, sizeof(url), "URI:%s/crl/root.crl", cfg->base_url);
	ca_blob_clear(&ext[0]);
	if ((r = ca_ext_blob(NID_basic_constraints,
		 "critical,CA:TRUE,pathlen:0", &ext[0])) != 0 ||
	    (r = ca_ext_blob(NID_crl_distribution_points, url, &ext[2])) != 0 ||
	    (r = ca_init_sign(keys, key[CA_ROOT], &c[CA_ISSUING], &c[CA_ROOT],
		 ext, 3, who)) != 0)
		goto out;

	/*
	 * Delegated OCSP signer, issued by the issuing CA. RFC 6960 4.2.2.2:
	 * EKU id-kp-OCSPSigning; 4.2.2.2.1: id-pkix-ocsp-nocheck (its own
	 * status is not checked, so keep it short-lived); KU critical
	 * digitalSignature; cA FALSE.
	 */
	for (i = 0; i < 4; i++)
		ca_blob_clear(&ext[i]);
	if ((r = ca_ext_blob(
		 NID_basic_constraints, "critical,CA:FALSE", &ext[0])) != 0 ||
	    (r = ca_ext_blob(
		 NID_key_usage, "critical,digitalSignature", &ext[1])) != 0 ||
	    (r = ca_ext_blob(NID_ext_key_usage, "OCSPSigning", &ext[2])) != 0 ||
	    (r = ca_ext_blob(NID_id_pkix_OCSP_noCheck, "yes", &ext[3])) != 0 ||
	    (r = ca_init_sign(keys, key[CA_ISSUING], &c[CA_OCSP],
		 &c[CA_ISSUING], ext, 4, who)) != 0)
		goto out;

	if (hook != NULL) {
		const char *ids[CA_NKEYS];

		for (i = 0; i < CA_NKEYS; i++)
			ids[i] = rf_key_id(key[i]);
		if ((r = hook(arg, ids, ca_names, CA_NKEYS)) != 0)
			goto out;
	}
	/* Records, the audit event and the "initialised" mark commit as one. */
	if ((r = rf_store_begin(st)) != 0)
		goto out;
	in_tx = 1;
	for (i = 0; i < CA_NKEYS; i++) {
		ca_key_rec_set(&kr, key[i], ca_names[i], now);
		if ((r = rf_store_key_add(st, &kr)) != 0)
			goto out;
	}
	for (i = 0; i < CA_NCERTS; i++) {
		ca_rec_set(&cr, ca_names[i], key[i],
		    i == CA_ROOT ? "" : ca_names[signer[i]], &c[i]);
		if ((r = rf_store_ca_add(st, &cr)) != 0)
			goto out;
	}
	memset(&ev, 0, sizeof(ev));
	snprintf(detail, sizeof(detail), "alg %s root %s issuing %s ocsp %s",
	    rf_key_alg_name(alg), c[CA_ROOT].hex, c[CA_ISSUING].hex,
	    c[CA_OCSP].hex);
	ev.type = "init";
	ev.key_id = rf_key_id(key[CA_ROOT]);
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	ev.detail = detail;
	if ((r = rf_audit_append(audit, &ev, 1, NULL)) != 0 ||
	    (r = rf_store_meta_set(st, "initialised", "1")) != 0)
		goto out;
	r = rf_store_commit(st);
	in_tx = 0;
	if (r == 0)
		rf_test_point("init-ca-committed");
out:
	if (in_tx)
		rf_store_rollback(st);
	X509_NAME_free(name);
	for (i = 0; i < CA_NCERTS; i++)
		ca_init_cert_clear(&c[i]);
	for (i = 0; i < 4; i++)
		ca_blob_clear(&ext[i]);
	for (i = 0; i < CA_NKEYS; i++)
		rf_key_free(key[i]);
	rf_audit_free(audit);
	return r;
}

/* ------------------------------------------------------------------ */
/* rf_ca_open                                                         */

static void
ca_precompute_clear(struct rf_ca *ca)
{
	int i;

	X509_ALGOR_free(ca->sigalg);
	ca->sigalg = NULL;
	ca_blob_clear(&ca->alg);
	ca_blob_clear(&ca->issuer);
	for (i = 0; i < EXT_N; i++)
		ca_blob_clear(&ca->ext[i]);
	free(ca->chain_tail);
	ca->chain_tail = NULL;
	ca->chain_tail_len = 0;
}

struct ca_entry *
ca_find(struct rf_ca *ca, const char *name)
{
	size_t i;

	for (i = 0; ca != NULL && name != NULL && i < ca->nent; i++)
		if (strcmp(ca->ent[i].name, name) == 0)
			return &ca->ent[i];
	return NULL;
}

/* Everything issuance needs from the active issuing CA, computed once. */
static int
ca_precompute(struct rf_ca *ca)
{
	const struct rf_config *cfg = &ca->cfg;
	struct ca_entry *iss = &ca->ent[ca->iss], *root;
	const ASN1_OCTET_STRING *ski;
	X509 *chain[2];
	uint8_t *der = NULL;
	char url[700];
	size_t off = 0;
	struct tm tm;
	int i, l, r = RF_ERR_INTERNAL;

	ca_precompute_clear(ca);
	if ((root = ca_find(ca, iss->parent)) == NULL)
		return rf_err_set(RF_ERR_NOT_FOUND,
		    "issuer \"%s\" of CA %s "
		    "is not in the store",
		    iss->parent, iss->name);
	if (iss->key == NULL)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the key of issuing CA "
		    "%s is not in the token",
		    iss->name);
	if ((r = rf_key_sigalg(iss->key, RF_SIG_DEFAULT, &ca->sigalg)) != 0)
		return r;
	if (alg_md(ca->sigalg) == NULL ||
	    BLOB_I2D(i2d_X509_ALGOR, ca->sigalg, &ca->alg) != 0 ||
	    BLOB_I2D(
		i2d_X509_NAME, X509_get_subject_name(iss->x), &ca->issuer) != 0)
		return rf_err_set(RF_ERR_INTERNAL,
		    "cannot encode the issuing "
		    "CA's name and algorithm");
	if ((ski = X509_get0_subject_key_id(iss->x)) == NULL ||
	    ASN1_STRING_length(ski) != 20)
		return rf_err_set(RF_ERR_MALFORMED,
		    "issuing CA certificate "
		    "has no 20-byte SKI");
	ca_aki_ext(ASN1_STRING_get0_data(ski), ca->aki);
	/* RFC 5280 4.2.1.9, 4.2.1.3, 4.2.1.12, 4.2.1.13, 4.2.2.1. */
	if ((r = ca_ext_blob(NID_basic_constraints, "critical,CA:FALSE",
		 &ca->ext[EXT_BC])) != 0 ||
	    (r = ca_ext_blob(NID_key_usage, "critical,digitalSignature",
		 &ca->ext[EXT_KU_SIG])) != 0 ||
	    (r = ca_ext_blob(NID_key_usage,
		 "critical,digitalSignature,keyEncipherment",
		 &ca->ext[EXT_KU_SIG_ENC])) != 0 ||
	    (r = ca_ext_blob(NID_ext_key_usage, "clientAuth",
		 &ca->ext[EXT_EKU_CLIENT])) != 0 ||
	    (r = ca_ext_blob(NID_ext_key_usage, "serverAuth",
		 &ca->ext[EXT_EKU_SERVER])) != 0)
		return r;
	snprintf(
	    url, sizeof(url), "URI:%s/crl/%s.crl", cfg->base_url, iss->name);
	if ((r = ca_ext_blob(
		 NID_crl_distribution_points, url, &ca->ext[EXT_CRLDP])) != 0)
		return r;
	snprintf(url, sizeof(url),
	    "OCSP;URI:%s/ocsp,caIssuers;URI:%s/ca/%s.der", cfg->base_url,
	    cfg->base_url, iss->name);
	if ((r = ca_ext_blob(NID_info_access, url, &ca->ext[EXT_AIA])) != 0)
		return r;
	/* The chain tail: issuing CA then root, in PEM. */
	chain[0] = iss->x;
	chain[1] = root->x;
	for (i = 0; i < 2; i++) {
		if ((l = i2d_X509(chain[i], NULL)) <= 0)
			return RF_ERR_INTERNAL;
		ca->chain_tail_len += rf_ca_pem_len((size_t)l);
	}
	if ((ca->chain_tail = malloc(ca->chain_tail_len + 1)) == NULL)
		return RF_ERR_ALLOC;
	for (i = 0; i < 2; i++) {
		der = NULL;
		if ((l = i2d_X509(chain[i], &der)) <= 0)
			return RF_ERR_INTERNAL;
		off += rf_ca_pem_write(der, (size_t)l, ca->chain_tail + off);
		OPENSSL_free(der);
	}
	ca->chain_tail_len = off;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(iss->x), &tm) != 1)
		return RF_ERR_INTERNAL;
	ca->issuing_not_after = (int64_t)timegm(&tm);
	return 0;
}

/* Add a CA record to ca->ent: its certificate and (if held) its key. */
static int
ca_entry_add(struct rf_ca *ca, const struct rf_ca_rec *rec)
{
	struct ca_entry *e;
	const uint8_t *p = rec->der;
	int r;

	if (ca->nent >= CA_MAX)
		return rf_err_set(
		    RF_ERR_STATE, "more than %d CA certificates", CA_MAX);
	e = &ca->ent[ca->nent];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", rec->name);
	snprintf(e->parent, sizeof(e->parent), "%s", rec->parent);
	e->active = rec->active;
	e->not_before = rec->not_before;
	if ((e->x = d2i_X509(NULL, &p, (long)rec->derlen)) == NULL ||
	    p != rec->der + rec->derlen) {
		X509_free(e->x);
		e->x = NULL;
		return rf_err_set(RF_ERR_MALFORMED,
		    "stored CA certificate "
		    "\"%s\" does not parse",
		    rec->name);
	}
	/* A rotated-out CA may have had its key destroyed: keep its cert. */
	if ((r = rf_keys_load(ca->keys, rec->key_id, &e->key)) != 0) {
		if (r != RF_ERR_KEY_NOT_FOUND) {
			X509_free(e->x);
			e->x = NULL;
			return r;
		}
		rf_err_clear();
		e->key = NULL;
	}
	ca->nent++;
	return 0;
}

int
rf_ca_rec_issuer(const struct rf_ca_rec *recs, size_t n)
{
	size_t i;
	int best = -1;

	for (i = 0; i < n; i++) {
		if (!recs[i].active || strcmp(recs[i].parent, "root") != 0)
			continue;
		if (best < 0 || recs[i].not_before >= recs[best].not_before)
			best = (int)i;
	}
	return best >= 0 ? best : rf_ca_rec_find(recs, n, "issuing", 1);
}

int
rf_ca_rec_find(
    const struct rf_ca_rec *recs, size_t n, const char *name, int exact)
{
	char ocsp[64];
	size_t i;
	int iss;

	if (!exact &&
	    (strcmp(name, "issuing") == 0 || strcmp(name, "ocsp") == 0) &&
	    (iss = rf_ca_rec_issuer(recs, n)) >= 0) {
		if (name[0] == 'i')
			return iss;
		rf_ca_ocsp_name(recs[iss].name, ocsp);
		name = ocsp;
	}
	for (i = 0; i < n; i++)
		if (strcmp(recs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
rf_ca_open(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca **out)
{
	struct rf_ca *ca = NULL;
	struct rf_ca_rec *recs = NULL;
	struct rf_key_rec kr;
	char val[16];
	size_t n = 0, i;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if ((r = rf_store_meta_get(st, "initialised", val, sizeof(val))) != 0) {
		if (r == RF_ERR_NOT_FOUND)
			r = rf_err_set(RF_ERR_NOT_INITIALISED,
			    "ringfence is not initialised in %s: run "
			    "'ringfence init'",
			    cfg->home);
		return r;
	}
	if ((r = base_url_check(cfg->base_url)) != 0)
		return r;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return RF_ERR_ALLOC;
	ca->cfg = *cfg;
	ca->st = st;
	ca->keys = keys;
	if ((r = rf_store_ca_list(st, &recs, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		if ((r = ca_entry_add(ca, &recs[i])) != 0)
			goto out;
	if (ca_find(ca, "root") == NULL) {
		r = rf_err_set(RF_ERR_NOT_FOUND,
		    "CA certificate \"root\" "
		    "missing from the store");
		goto out;
	}
	if ((r = rf_store_key_by_purpose(st, "audit", &kr)) != 0 ||
	    (r = rf_keys_load(keys, kr.id, &ca->audit_key)) != 0)
		goto out;
	/* The entries are the records, in their order. */
	if ((ca->iss = rf_ca_rec_issuer(recs, n)) < 0) {
		r = rf_err_set(RF_ERR_NOT_FOUND, "no issuing CA in the store");
		goto out;
	}
	if ((r = ca_precompute(ca)) != 0 ||
	    (r = rf_audit_open(st, &ca->own_audit)) != 0)
		goto out;
	ca->audit = ca->own_audit;
	*out = ca; /* owned by the caller */
	ca = NULL;
	r = 0;
out:
	ERR_clear_error();
	rf_ca_rec_free_all(recs, n);
	rf_ca_free(ca);
	return r;
}

void
rf_ca_presign_after_commit(struct rf_ca *ca)
{
	ca->presign_late = 1;
}

void
rf_ca_set_audit(struct rf_ca *ca, struct rf_audit *audit)
{
	if (ca == NULL || audit == NULL)
		return;
	ca->audit = audit;
}

void
rf_ca_free(struct rf_ca *ca)
{
	size_t i;

	if (ca == NULL)
		return;
	rf_ocsp_signer_free(ca->ocsp_signer);
	for (i = 0; i < ca->nent; i++) {
		X509_free(ca->ent[i].x);
		rf_key_free(ca->ent[i].key);
	}
	rf_key_free(ca->audit_key);
	ca_precompute_clear(ca);
	rf_audit_free(ca->own_audit);
	rf_freezero(ca, sizeof(*ca)); /* cfg holds the PIN */
}

X509 *
rf_ca_cert(struct rf_ca *ca, const char *name)
{
	struct ca_entry *e = ca_find(ca, name);

	return e != NULL ? e->x : NULL;
}

struct rf_key *
rf_ca_key(struct rf_ca *ca, const char *name)
{
	struct ca_entry *e;

	if (ca != NULL && name != NULL && strcmp(name, "audit") == 0)
		return ca->audit_key;
	e = ca_find(ca, name);
	return e != NULL ? e->key : NULL;
}

const char *
rf_ca_issuer_name(struct rf_ca *ca)
{
	return ca != NULL ? ca->ent[ca->iss].name : NULL;
}

/* A key a killed rotation made: its id, for the rerun to destroy; and
 * whether the token holds it under the label that rotation gave it. */
struct leftover {
	char (*id)[65];
	uint8_t *ok;
	size_t n, cap;
	const char *label;
};

static int
leftover_add(void *arg, const struct rf_key_rec *k)
{
	struct leftover *l = arg;
	char(*v)[65];

	if (l->n == l->cap) {
		if ((v = realloc(l->id, (l->cap + 4) * sizeof(*v))) == NULL)
			return RF_ERR_ALLOC;
		l->id = v;
		l->cap += 4;
	}
	snprintf(l->id[l->n++], sizeof(l->id[0]), "%s", k->id);
	return 0;
}

/* rf_keys_list: a leftover the token labels as its rotation's key, and
 * keyd's ledger (when it says) as an issuing key. */
static int
leftover_seen(void *arg, const struct rf_key_info *ki)
{
	struct leftover *l = arg;
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->id[i], ki->id) == 0 &&
		    strcmp(ki->label, l->label) == 0 &&
		    (!ki->ledger || strcmp(ki->role, "issuing") == 0))
			l->ok[i] = 1;
	return 0;
}

/*
 * The keys an earlier rotation to the same name made and did not commit
 * (killed between the two: still "generated", made for made_for), each
 * destroyed with its leaves. Whatever the killed run had the root sign for
 * one certifies a key that no longer exists.
 */
static int
rotate_leftovers(struct rf_ca *ca, const char *made_for, const char *label,
    const struct rf_actor *who)
{
	struct leftover l = {NULL, NULL, 0, 0, label};
	const char **ids = NULL;
	size_t i, done;
	int r;

	if ((r = rf_store_key_made_for(ca->st, made_for, leftover_add, &l)) ==
		0 &&
	    l.n > 0) {
		/* The store's word alone (serve's user can write it) destroys
		 * nothing: the token must hold each under this rotation's
		 * label, which only keyd writes. */
		if ((ids = calloc(l.n, sizeof(*ids))) == NULL ||
		    (l.ok = calloc(l.n, 1)) == NULL)
			r = RF_ERR_ALLOC;
		else
			r = rf_keys_list(ca->keys, leftover_seen, &l);
		/* No CA loaded holds that label: NEWNAME is no CA yet. */
		for (i = 0; r == 0 && i < l.n; i++) {
			ids[i] = l.id[i];
			if (!l.ok[i])
				r = rf_err_set(RF_ERR_STATE,
				    "key %s is recorded as left by a killed "
				    "rotation to %s, but no token holds it as "
				    "that rotation's key: the store was "
				    "changed "
				    "behind ringfence's back",
				    l.id[i], made_for + 7);
		}
		if (r == 0)
			r = rf_keys_destroy_many(
			    ca->keys, ids, l.n, who, &done);
	}
	free(ids);
	free(l.ok);
	free(l.id);
	return r;
}

/*
 * Replace an issuing CA: a new key in the token and a certificate signed
 * by the root (like the one made by rf_ca_init), recorded active while the
 * old one is marked inactive, in one transaction with a "rotate" audit
 * event. New certificates are issued by the new CA from then on; the old
 * CA stays loaded by name for its CRL. The key is recorded as made for
 * "rotate-NEWNAME" when it is made: a rotation killed before its commit
 * leaves it "generated", and the rerun destroys it before it makes another.
 */
int
rf_ca_rotate(struct rf_ca *ca, const char *old, const char *newname,
    const struct rf_actor *who)
{
	struct rf_ca_rec rec;
	struct rf_key_rec kr;
	struct rf_audit_event ev;
	struct init_cert root, c, o;
	struct rf_ca_rec orec;
	struct ca_entry *oce;
	struct blob ext[3], oext[4];
	X509_NAME *oname = NULL;
	char ocn[96], oname_s[64];
	struct ca_entry *re, *oe;
	struct rf_key *key = NULL;
	X509_NAME *name = NULL;
	const ASN1_OCTET_STRING *rski;
	enum rf_key_alg alg;
	char cn[80], url[600], label[96], detail[200], made_for[64];
	struct rf_keygen kg;
	int64_t now = rf_now();
	size_t i;
	int r, in_tx = 0, prev_iss = ca->iss;

	memset(&rec, 0, sizeof(rec));
	memset(&root, 0, sizeof(root));
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	memset(&orec, 0, sizeof(orec));
	memset(ext, 0, sizeof(ext));
	memset(oext, 0, sizeof(oext));
	for (i = 0; newname[i] != '\0'; i++)
		if (!isalnum((unsigned char)newname[i]) && newname[i] != '-' &&
		    newname[i] != '_')
			break;
	if (i == 0 || i > 48 || newname[i] != '\0')
		return rf_err_set(RF_ERR_ARG,
		    "invalid CA name \"%.60s\": use "
		    "1-48 of A-Z a-z 0-9 - _",
		    newname);
	if (ca_find(ca, newname) != NULL ||
	    (r = rf_store_ca_get(ca->st, newname, &rec)) == 0) {
		rf_ca_rec_clear(&rec);
		return rf_err_set(
		    RF_ERR_EXISTS, "CA %s already exists", newname);
	}
	if (r != RF_ERR_NOT_FOUND)
		return r;
	rf_err_clear();
	if ((oe = ca_find(ca, old)) == NULL || strcmp(oe->parent, "root") != 0)
		return rf_err_set(
		    RF_ERR_NOT_FOUND, "no issuing CA named %.60s", old);
	if ((re = ca_find(ca, "root")) == NULL || re->key == NULL)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the root key is not in "
		    "the token");
	if (ca->nent + 2 > CA_MAX)
		return rf_err_set(RF_ERR_STATE, "too many CA certificates");
	if ((r = rf_key_alg_parse(ca->cfg.ca_alg, &alg)) != 0)
		return r;
	snprintf(label, sizeof(label), RF_KEY_LABEL_CA_PREFIX "%s", newname);
	snprintf(cn, sizeof(cn), "ringfence %s", newname);
	snprintf(made_for, sizeof(made_for), "rotate-%s", newname);
	memset(&kg, 0, sizeof(kg));
	kg.alg = alg;
	kg.label = label;
	kg.made_for = made_for;
	if ((r = rotate_leftovers(ca, made_for, label, who)) != 0 ||
	    (r = rf_keys_generate_many(ca->keys, &kg, 1, who, &key)) != 0)
		goto out;
	/* The issuer side: the root's name and key identifier. */
	if ((rski = X509_get0_subject_key_id(re->x)) == NULL ||
	    ASN1_STRING_length(rski) != 20 ||
	    BLOB_I2D(i2d_X509_NAME, X509_get_subject_name(re->x), &root.name) !=
		0) {
		r = rf_err_set(RF_ERR_MALFORMED, "root certificate unusable");
		goto out;
	}
	memcpy(root.keyid, ASN1_STRING_get0_data(rski), 20);
	if ((r = ca_serial_new(&c.serial, c.hex)) != 0)
		goto out;
	if ((name = ca_name_make("ringfence", NULL, cn)) == NULL ||
	    BLOB_I2D(i2d_X509_NAME, name, &c.name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, c.serial, &c.serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = ca_key_spki(key, &c.spki)) != 0 ||
	    (r = ca_ski_ext(c.spki.p, c.spki.len, c.keyid, c.ski)) != 0 ||
	    (r = rf_key_sigalg(re->key, RF_SIG_DEFAULT, &c.sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, c.sigalg, &c.alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	c.nb = now - CA_BACKDATE;
	c.na = now + (int64_t)ca->cfg.issuing_days * DAY;
	{
		struct tm tm;

		if (ASN1_TIME_to_tm(X509_get0_notAfter(re->x), &tm) == 1 &&
		    (int64_t)timegm(&tm) < c.na)
			c.na = (int64_t)timegm(&tm);
	}
	/* RFC 5280 4.2.1.9, 4.2.1.3, 4.2.1.13: as the first issuing CA. */
	snprintf(url, sizeof(url), "URI:%s/crl/root.crl", ca->cfg.base_url);
	if ((r = ca_ext_blob(NID_basic_constraints,
		 "critical,CA:TRUE,pathlen:0", &ext[0])) != 0 ||
	    (r = ca_ext_blob(NID_key_usage, "critical,keyCertSign,cRLSign",
		 &ext[1])) != 0 ||
	    (r = ca_ext_blob(NID_crl_distribution_points, url, &ext[2])) != 0 ||
	    (r = ca_init_sign(ca->keys, re->key, &c, &root, ext, 3, who)) != 0)
		goto out;
	rf_test_point("ca-rotate-signed"); /* the root signed; nothing kept */

	/*
	 * RFC 6960 4.2.2.2: a delegated responder must be certified by the
	 * CA whose certificates it answers for. The OCSP key was not
	 * compromised with the issuing key, so it gets a new certificate
	 * from the new CA ("ocsp-<new>"), with the extensions of the first.
	 */
	if ((oce = ca_find(ca, "ocsp")) == NULL || oce->key == NULL) {
		r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "the OCSP signing key is not in the token");
		goto out;
	}
	snprintf(ocn, sizeof(ocn), "ringfence OCSP signer %s", newname);
	snprintf(oname_s, sizeof(oname_s), "ocsp-%s", newname);
	if ((r = ca_serial_new(&o.serial, o.hex)) != 0)
		goto out;
	if ((oname = ca_name_make("ringfence", NULL, ocn)) == NULL ||
	    BLOB_I2D(i2d_X509_NAME, oname, &o.name) != 0 ||
	    BLOB_I2D(i2d_ASN1_INTEGER, o.serial, &o.serial_der) != 0) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if ((r = ca_key_spki(oce->key, &o.spki)) != 0 ||
	    (r = ca_ski_ext(o.spki.p, o.spki.len, o.keyid, o.ski)) != 0 ||
	    (r = rf_key_sigalg(key, RF_SIG_DEFAULT, &o.sigalg)) != 0)
		goto out;
	if (BLOB_I2D(i2d_X509_ALGOR, o.sigalg, &o.alg) != 0) {
		r = RF_ERR_INTERNAL;
		goto out;
	}
	o.nb = now - CA_BACKDATE;
	o.na = now + (int64_t)ca->cfg.ocsp_signer_days * DAY;
	if (o.na > c.na)
		o.na = c.na;
	if ((r = ca_ext_blob(
		 NID_basic_constraints, "critical,CA:FALSE", &oext[0])) != 0 ||
	    (r = ca_ext_blob(
		 NID_key_usage, "critical,digitalSignature", &oext[1])) != 0 ||
	    (r = ca_ext_blob(NID_ext_key_usage, "OCSPSigning", &oext[2])) !=
		0 ||
	    (r = ca_ext_blob(NID_id_pkix_OCSP_noCheck, "yes", &oext[3])) != 0 ||
	    (r = ca_init_sign(ca->keys, key, &o, &c, oext, 4, who)) != 0)
		goto out;
	ca_rec_set(&orec, oname_s, oce->key, newname, &o);

	if ((r = rf_store_begin(ca->st)) != 0)
		goto out;
	in_tx = 1;
	ca_key_rec_set(&kr, key, "issuing", now);
	ca_rec_set(&rec, newname, key, "root", &c);
	memset(&ev, 0, sizeof(ev));
	snprintf(
	    detail, sizeof(detail), "issuing CA %s replaces %s", newname, old);
	ev.type = "rotate";
	ev.key_id = rf_key_id(key);
	ev.ref = c.hex;
	ev.actor = who != NULL ? who->actor : NULL;
	ev.source = who != NULL ? who->source : NULL;
	ev.detail = detail;
	if ((r = rf_store_key_add(ca->st, &kr)) != 0 ||
	    (r = rf_store_ca_add(ca->st, &rec)) != 0 ||
	    (r = rf_store_ca_add(ca->st, &orec)) != 0 ||
	    (r = rf_store_ca_set_active(ca->st, old, 0)) != 0 ||
	    (r = rf_audit_append(ca->audit, &ev, 1, NULL)) != 0)
		goto out;
	rec.der = NULL; /* borrowed from c */
	if ((r = rf_store_commit(ca->st)) != 0)
		goto out;
	in_tx = 0;
	/* In memory: the new CA becomes the issuer. */
	rec.der = c.der;
	if ((r = ca_entry_add(ca, &rec)) != 0)
		goto out;
	rec.der = NULL;
	if ((r = ca_entry_add(ca, &orec)) != 0)
		goto out;
	oe = ca_find(ca, old);
	oe->active = 0;
	ca->iss = (int)(ca_find(ca, newname) - ca->ent);
	if ((r = ca_precompute(ca)) != 0) {
		ca->iss = prev_iss; /* stored; the next open picks it up */
		goto out;
	}
	r = 0;
out:
	if (in_tx)
		rf_store_rollback(ca->st);
	rec.der = NULL;
	orec.der = NULL; /* borrowed from o */
	X509_NAME_free(name);
	X509_NAME_free(oname);
	ca_init_cert_clear(&c);
	ca_init_cert_clear(&o);
	ca_init_cert_clear(&root);
	for (i = 0; i < 3; i++)
		ca_blob_clear(&ext[i]);
	for (i = 0; i < 4; i++)
		ca_blob_clear(&oext[i]);
	rf_key_free(key);
	return r;
}
