/*
 * ca_int.h: what the files of the ca module share, not part of its
 * interface (ca.h): the CA handle and its CA certificates (ca.c), the DER
 * pieces and the TBS of a certificate (tbs.c), a CA certificate being
 * made (ca.c, tls.c) and the items of an issuance (check.c, issue.c).
 * Nothing outside src/ca includes it.
 */
#ifndef RF_CA_CA_INT_H
#define RF_CA_CA_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/config.h"
#include "common/keyident.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_audit;
struct rf_ca_rec;
struct rf_key_rec;
struct rf_ocsp_signer;

/* Clock-skew allowance: notBefore is this many seconds before issuance. */
#define CA_BACKDATE 300
#define DAY 86400
#define MAX_EXTS 10

/* A DER blob; p from OpenSSL's i2d (OPENSSL_free) or malloc as noted. */
struct blob {
	uint8_t *p;
	size_t len;
};

/* Profile extensions, in the order they appear after SKI and AKI. */
enum {
	EXT_BC,
	EXT_KU_SIG,
	EXT_KU_SIG_ENC,
	EXT_EKU_CLIENT,
	EXT_EKU_SERVER,
	EXT_CRLDP,
	EXT_AIA,
	EXT_N
};

/* A CA certificate loaded from the store, and its key when held. */
struct ca_entry {
	char name[64];
	char parent[64];
	X509 *x;
	struct rf_key *key; /* NULL if the token no longer holds it */
	int active;
	int64_t not_before;
};

#define CA_MAX 32

struct rf_ca {
	struct rf_config cfg;
	struct rf_store *st;	/* borrowed */
	struct rf_keys *keys;	/* borrowed */
	struct rf_audit *audit; /* borrowed, or own_audit */
	struct rf_audit *own_audit;
	struct ca_entry ent[CA_MAX];
	size_t nent;
	int iss; /* index of the active issuing CA in ent */
	struct rf_key *audit_key;

	/* Precomputed from the active issuing CA (ca_precompute). */
	X509_ALGOR *sigalg; /* of the issuing key */
	struct blob alg;    /* DER of sigalg */
	struct blob issuer; /* DER of the issuing CA's subject */
	uint8_t aki[33];    /* AKI extension DER (issuing SKI) */
	struct blob ext[EXT_N];
	char *chain_tail; /* issuing + root PEM */
	size_t chain_tail_len;
	int64_t issuing_not_after;
	struct rf_ocsp_signer *ocsp_signer; /* for the active issuer */
	int presign_late;		    /* rf_ca_presign_after_commit */
};

/* The pieces of a TBSCertificate (ca_tbs_der). */
struct tbs_in {
	struct blob serial, alg, issuer, subject, spki; /* borrowed */
	int64_t nb, na;
	struct blob exts[MAX_EXTS]; /* borrowed, in order */
	size_t nexts;
};

/* A CA certificate being made (ca_init_sign) and its parts. */
struct init_cert {
	ASN1_INTEGER *serial;
	char hex[41];
	struct blob serial_der, name, spki, alg;
	X509_ALGOR *sigalg; /* of the signing key */
	uint8_t keyid[20], ski[31];
	uint8_t *tbs, *der; /* malloc'd */
	size_t tbslen, derlen;
	int64_t nb, na;
};

/* One request of an issuance and what is made for it (check.c, issue.c). */
struct issue_item {
	const struct rf_issue_req *req;
	struct rf_key *genkey; /* keygen: the new key in the token */
	int given;	       /* genkey is a copy of req->key */
	int pooled;	       /* genkey came from the standby pool */
	int rsa;	       /* the key is RSA (server KU) */
	struct blob spki;      /* canonical SPKI DER (malloc'd if CSR) */
	int spki_malloc;
	uint8_t ski[31];
	char key_id[65];
	char ident[RF_KEY_IDENT_LEN + 1]; /* common/keyident.h */
	char subject[256];
	struct blob name; /* subject DER */
	ASN1_INTEGER *serial;
	struct blob serial_der;
	struct blob san;
	char hex[41];
	int64_t nb, na;
	uint8_t *tbs; /* malloc'd */
	size_t tbslen;
	uint8_t *der; /* malloc'd */
	size_t derlen;
	char x5t[32], x5t256[48]; /* of der, made once by issue_commit */
	int dirty;		  /* needs a (new) serial, TBS and signature */
	int same_csr; /* the CSR (and profile) of the request before */
	int defer; /* its proof of possession is checked while it is signed */
	int csr_r; /* the CSR check, made before the item's own checks */
	char csr_msg[256];
	struct rf_csr *csr; /* checked but for its proof of possession */
};

/* The proofs of possession a batch checks while it is signed (check.c). */
struct proofs {
	struct issue_item *items;
	size_t n;
	pthread_t tid;
	int running;
};

/* tbs.c */

/* X.501 name O=o, OU=ou, CN=cn (a NULL part left out); NULL if it fails. */
X509_NAME *ca_name_make(const char *o, const char *ou, const char *cn);
/* A new serial (RFC 5280 4.1.2.2): time in ms, then random bits; hex is
 * its canonical string. */
int ca_serial_new(ASN1_INTEGER **out, char hex[41]) RF_WUR;
/* Free a blob's DER and empty it. */
void ca_blob_clear(struct blob *b);
/* The result of an i2d into a blob (whose p was NULL): 0 or an error. */
int ca_blob_set(struct blob *b, int len) RF_WUR;
#define BLOB_I2D(fn, obj, b) ca_blob_set((b), fn((obj), &(b)->p))
/* The DER of an extension given as OpenSSL's config text ("critical,..."). */
int ca_ext_blob(int nid, const char *value, struct blob *b) RF_WUR;
/* The SKI extension DER and key id of an SPKI (RFC 5280 4.2.1.2). */
int ca_ski_ext(
    const uint8_t *spki, size_t len, uint8_t keyid[20], uint8_t ext[31]) RF_WUR;
/* The AKI extension DER naming the issuer's key id (RFC 5280 4.2.1.1). */
void ca_aki_ext(const uint8_t keyid[20], uint8_t ext[33]);
/* The TBSCertificate DER of in (RFC 5280 4.1); *tbs is malloc'd. */
int ca_tbs_der(const struct tbs_in *in, uint8_t **tbs, size_t *tbslen) RF_WUR;
/* The certificate of a TBS and its signature; with full, also parsed and
 * verified with issuer_pub as a relying party would. */
int ca_cert_finish(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    const struct rf_sig *sig, EVP_PKEY *issuer_pub, int full, uint8_t **der,
    size_t *derlen) RF_WUR;
/* SPKI DER of a key held in the token (via its public half). */
int ca_key_spki(struct rf_key *key, struct blob *b) RF_WUR;

/* tenant.c */

/* 0 if dns is a dNSName (RFC 1035 2.3.1, a leading "*." allowed), else
 * RF_ERR_ARG. */
int ca_dns_name_check(const char *dns) RF_WUR;

/* ca.c */

/* The CA certificate loaded under name, or NULL. */
struct ca_entry *ca_find(struct rf_ca *ca, const char *name);
/* Free what c holds and zero it. */
void ca_init_cert_clear(struct init_cert *c);
/* The store record of a key made for the CA, active from now. */
void ca_key_rec_set(struct rf_key_rec *kr, const struct rf_key *key,
    const char *purpose, int64_t now);
/* The store record of a CA certificate made by ca_init_sign (der
 * borrowed). */
void ca_rec_set(struct rf_ca_rec *cr, const char *name,
    const struct rf_key *key, const char *parent, const struct init_cert *c);
/* Build, sign (one audited signature) and check one CA certificate. */
int ca_init_sign(struct rf_keys *keys, struct rf_key *signer,
    struct init_cert *c, const struct init_cert *issuer, struct blob *exts,
    size_t nexts, const struct rf_actor *who) RF_WUR;

/* check.c */

/* Key id: hex SHA-256 of the SPKI DER, as keys names keys. */
void ca_spki_id(const struct blob *spki, char id[65]);
/* The checks of one request (prev: the one before it, or NULL); nothing
 * is made. */
int ca_issue_check(struct rf_ca *ca, struct issue_item *it,
    const struct issue_item *prev) RF_WUR;
/* The CSRs of a batch, checked up front (the proofs of a large one left
 * to ca_proofs_start). */
void ca_issue_csrs(struct issue_item *items, size_t n);
/* Verify the proofs ca_issue_csrs left, on a thread of their own. */
void ca_proofs_start(struct proofs *pf, struct issue_item *items, size_t n);
/* Wait for that thread. */
void ca_proofs_wait(struct proofs *pf);
/* Wait for the proofs; the first that failed, in request order. */
int ca_proofs_finish(struct proofs *pf) RF_WUR;

/* issue.c */

/* The OCSP signer of the active issuing CA, made when first needed (and
 * after a rotation); NULL when there is none. */
struct rf_ocsp_signer *ca_ocsp_signer(struct rf_ca *ca);

#endif
