/*
 * ca.h: the certificate authority. Builds X.509 structures with OpenSSL and
 * has them signed through keys (never with a key of its own).
 *
 * The hierarchy made by rf_ca_init(): a self-signed root ("root"), an issuing
 * intermediate ("issuing") that signs tenant certificates, a delegated OCSP
 * signer ("ocsp", id-kp-OCSPSigning + id-pkix-ocsp-nocheck) issued by the
 * issuing CA, and the audit key ("audit" purpose) for signed tree heads.
 */
#ifndef RF_CA_CA_H
#define RF_CA_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/config.h"
#include "common/rf.h"
#include "keys/keys.h"

struct rf_ca;
struct rf_store;

enum rf_profile {
	RF_PROFILE_NONE = 0,
	RF_PROFILE_CLIENT,    /* mTLS client: digitalSignature; clientAuth */
	RF_PROFILE_SERVER,    /* TLS server: digitalSignature; serverAuth */
	RF_PROFILE_ASSERTION, /* JWT assertion signing: digitalSignature */
	RF_PROFILE_CONNECTOR, /* a connector's mTLS client: digitalSignature;
				 clientAuth; at most connector_days */
};
int rf_profile_parse(const char *name, enum rf_profile *p) RF_WUR;
const char *rf_profile_name(enum rf_profile p);

/*
 * Create the root, issuing and OCSP-signing keys and certificates and the
 * audit key, in the token and the store. RF_ERR_ALREADY_INITIALISED if the
 * store says so. Keys are generated with cfg->ca_alg.
 */
int rf_ca_init(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who) RF_WUR;

/*
 * rf_ca_init with a hook told the four keys' ids and roles ("root",
 * "issuing", "ocsp", "audit") once they are made, before the store's
 * commit names them: what it records elsewhere (init: keyd's ledger) is
 * then never behind the store, even if the process dies after the
 * commit. A hook's error stops the set-up before the commit.
 */
typedef int (*rf_ca_keys_hook)(
    void *arg, const char *const *ids, const char *const *roles, size_t n);
int rf_ca_init_ex(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, const struct rf_actor *who, rf_ca_keys_hook hook,
    void *arg) RF_WUR;

int rf_ca_open(const struct rf_config *cfg, struct rf_store *st,
    struct rf_keys *keys, struct rf_ca **out) RF_WUR;
void rf_ca_free(struct rf_ca *ca);

/* Tenants; each change is audited. */
int rf_ca_tenant_add(
    struct rf_ca *ca, const char *name, const struct rf_actor *who) RF_WUR;

struct rf_issue_req {
	const char *tenant; /* must exist */
	enum rf_profile profile;
	const uint8_t *csr; /* PEM or DER PKCS#10, or NULL with keygen */
	size_t csrlen;
	enum rf_key_alg keygen; /* RF_KEY_NONE with a CSR */
	const char *dns;	/* server profile: subjectAltName dNSName */
	int days;		/* 0: cfg->cert_days */
	/* The tenant's connection the certificate serves (NULL: none
	 * named). A key serves one tenant connection (issue 13). */
	const char *connection;
	/*
	 * Or (csr NULL, keygen RF_KEY_NONE) a key already in the token and
	 * recorded in the store by the caller before use (state
	 * "reserved"); borrowed. Its record becomes "active" with the
	 * certificate; a failed issuance leaves it to the caller.
	 */
	const struct rf_key *key;
	/* keygen: the standby pool's record of who took the key */
	const char *ref; /* "incident-7", or NULL ("issuance") */
	/* A connector's renewal through serve: its certificate serial and
	 * proof of possession, for keyd (rf_sign_req); NULL otherwise. */
	const char *on_behalf;
	const uint8_t *proof;
	size_t prooflen;
};

struct rf_issued {
	char serial[41];
	char key_id[65];
	char x5t[32];	 /* base64url SHA-1 of the DER */
	char x5t256[48]; /* base64url SHA-256 of the DER */
	uint8_t *der;	 /* the certificate */
	size_t derlen;
	char *chain_pem; /* certificate, issuing CA, root; NUL-terminated */
	int pooled;	 /* keygen: the key came from the standby pool */
};

/*
 * Issue n certificates. Each CSR is checked (signature, key allow-list, no
 * CA:TRUE, no extra EKUs); the subject comes from tenant and profile. All n
 * serials and records commit in one transaction after their signatures;
 * nothing is returned before that commit. On error nothing is stored and
 * out[] is cleared.
 */
int rf_ca_issue(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out) RF_WUR;
/*
 * The checks rf_ca_issue makes of reqs before it makes keys or signs
 * (CSRs, profiles, names, the keys' admission): 0 if issuance would get
 * past them, else its error. Nothing is made or written.
 */
int rf_ca_issue_check(
    struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n) RF_WUR;
/*
 * Called inside the issuance transaction for certificate i of the batch,
 * after its record is added, so that a caller's own records commit with
 * it. A non-zero return rolls the whole batch back and is returned. On a
 * serial collision the transaction is retried and the hook called again.
 */
typedef int (*rf_ca_issue_hook)(
    void *arg, size_t i, const char *serial, const char *key_id);
int rf_ca_issue_ex(struct rf_ca *ca, const struct rf_issue_req *reqs, size_t n,
    const struct rf_actor *who, struct rf_issued *out, rf_ca_issue_hook hook,
    void *arg) RF_WUR;
/*
 * rf_ca_issue_ex over n requests in batches of at most per, each committed
 * in its own transaction, in order, with the signatures of a batch made (on
 * a thread of their own) while the batch before it commits and the one
 * after it is prepared. Nothing overlaps the first batch's preparation nor
 * the last one's commit: with min < per, the first batch has min requests
 * and the last ones halve down to min (min == per: every batch has per but
 * the last). hook's i counts from reqs[0]; done(done_arg, from, k) follows
 * the commit of requests [from, from + k). On error the batches committed
 * before it stay committed (done said which); the failed one and later
 * ones store nothing.
 */
typedef void (*rf_ca_batch_done)(void *arg, size_t from, size_t k);
int rf_ca_issue_pipelined(struct rf_ca *ca, const struct rf_issue_req *reqs,
    size_t n, size_t per, size_t min, const struct rf_actor *who,
    rf_ca_issue_hook hook, void *arg, rf_ca_batch_done done,
    void *done_arg) RF_WUR;
void rf_issued_clear(struct rf_issued *is);

/*
 * The CA certificate by name ("root", "issuing", "ocsp", or a rotated
 * issuing CA); borrowed.
 */
X509 *rf_ca_cert(struct rf_ca *ca, const char *name);
/* The key of a CA by name; borrowed. */
struct rf_key *rf_ca_key(struct rf_ca *ca, const char *name);

/*
 * Assemble a signed structure in DER: SEQUENCE { tbs, alg, BIT STRING sig }.
 * Certificates and CRLs have this shape (RFC 5280 4.1, 5.1).
 */
int rf_ca_assemble(const uint8_t *tbs, size_t tbslen, const X509_ALGOR *alg,
    const uint8_t *sig, size_t siglen, uint8_t **der, size_t *derlen) RF_WUR;

/* --- Added by the ca module. --- */

/*
 * Replace issuing CA `old` by a new one named newname: a new key in the
 * token, a certificate signed by the root, recorded active while `old` is
 * made inactive, with a "rotate" audit event, in one transaction. Issuance
 * uses the new CA from then on (and after rf_ca_open, which picks the
 * active CA issued by the root with the latest notBefore). RF_ERR_EXISTS
 * if newname exists; RF_ERR_NOT_FOUND if old is not an issuing CA.
 */
int rf_ca_rotate(struct rf_ca *ca, const char *old, const char *newname,
    const struct rf_actor *who) RF_WUR;
/*
 * The name of the delegated OCSP signer certificate of an issuing CA:
 * "ocsp" for "issuing", "ocsp-<issuer>" for a rotated one.
 */
void rf_ca_ocsp_name(const char *issuer, char out[64]);
/* The name of the issuing CA that signs new certificates ("issuing"). */
const char *rf_ca_issuer_name(struct rf_ca *ca);

/*
 * Among a store's CA records (rf_store_ca_list): the issuing CA in use,
 * active, issued by "root", with the latest notBefore (a rotation makes a
 * newer one), else the one named "issuing". Its index, or -1.
 */
struct rf_ca_rec;
int rf_ca_rec_issuer(const struct rf_ca_rec *recs, size_t n);
/*
 * A CA record by the name people use for it (docs/ca.md, "Names"):
 * "issuing" is the issuing CA in use and "ocsp" its OCSP signer, a
 * rotation's successor once there is one; any other name, or with exact
 * any name, the record of that name. Its index, or -1.
 */
int rf_ca_rec_find(
    const struct rf_ca_rec *recs, size_t n, const char *name, int exact);

/*
 * The TLS server certificate of `ringfence serve` (docs/serve.md): the CA
 * record "tls" (rf_ca_cert / rf_ca_key "tls" afterwards), issued by the
 * active issuing CA with the server profile, subjectAltName the given
 * names (IP addresses or DNS names), its EC P-256 key generated in the
 * first token (key purpose "tls"). The stored one is kept while it is
 * issued by the active issuing CA, its key is in the token and active, a
 * third of its validity is left and it names every name; otherwise a new
 * key and certificate replace it (the old key is disabled) and *made is 1.
 */
int rf_ca_tls_ensure(struct rf_ca *ca, const char *const *names, size_t n,
    const struct rf_actor *who, int *made) RF_WUR;
/*
 * The same for the names the stored certificate has (an incident's
 * contain, after a new issuing CA: a running serve takes the new one
 * within a second). Nothing when there is none: serve makes one.
 */
int rf_ca_tls_renew(
    struct rf_ca *ca, const struct rf_actor *who, int *made) RF_WUR;

struct rf_audit;

/*
 * Use this audit record for the CA's own events (tenant, issue) instead of
 * the one rf_ca_open() opened on the store; borrowed, must outlive ca.
 */
void rf_ca_set_audit(struct rf_ca *ca, struct rf_audit *audit);
/*
 * Sign each issued certificate's OCSP response once the certificate is
 * committed, not with its signature: for a caller whose custody policy
 * signs OCSP only for certificates the store holds (serve, class server:
 * a connector's renewal), which refuses the response signed before.
 */
void rf_ca_presign_after_commit(struct rf_ca *ca);

/* 0 if name is 1-64 characters of [A-Za-z0-9._-] not starting with a
 * dot (so never "." or ".."), else RF_ERR_ARG. */
int rf_ca_tenant_name_check(const char *name) RF_WUR;
/* The same rule for a connection's name, which is at most
 * RF_CONN_NAME_MAX characters (the store's and the API's). */
#define RF_CONN_NAME_MAX 63
int rf_ca_conn_name_check(const char *name) RF_WUR;

/*
 * Check an untrusted PKCS#10 request (PEM or DER, at most RF_CSR_MAX
 * bytes) for a profile: DER with no trailing bytes, a valid self-signature,
 * an allowed key (EC P-256/P-384, RSA 2048-4096 with e=65537), a
 * proof of possession signed with SHA-256 or stronger, no CA:TRUE and no EKU
 * other than the profile's. On success *pub (if not NULL) receives the
 * public key (caller frees). Errors: RF_ERR_TOO_LARGE, RF_ERR_CSR_MALFORMED,
 * RF_ERR_CSR_SIGNATURE, RF_ERR_KEY_DISALLOWED, RF_ERR_CSR_REQUEST.
 */
#define RF_CSR_MAX (64 * 1024)
int rf_ca_csr_check(const uint8_t *csr, size_t len, enum rf_profile profile,
    EVP_PKEY **pub) RF_WUR;

/*
 * rf_ca_csr_check() that also returns (when spki is not NULL) the
 * canonical SubjectPublicKeyInfo DER of the CSR's key, malloc'd: EC with
 * its namedCurve and uncompressed point (compressed points are refused),
 * RSA as rsaEncryption with NULL parameters.
 */
int rf_ca_csr_parse(const uint8_t *csr, size_t len, enum rf_profile profile,
    EVP_PKEY **pub, uint8_t **spki, size_t *spkilen) RF_WUR;

/*
 * rf_ca_csr_parse() in two steps, so that a batch's proofs of possession
 * can be checked while the token signs: rf_ca_csr_open() makes every check
 * but the CSR's signature and returns the parsed request (free with
 * rf_csr_free()); rf_ca_csr_prove() verifies its signature (RFC 2986
 * section 3), RF_ERR_CSR_SIGNATURE when it does not. Nothing made from a
 * request whose proof fails may be released.
 */
struct rf_csr;
int rf_ca_csr_open(const uint8_t *csr, size_t len, enum rf_profile profile,
    struct rf_csr **out, uint8_t **spki, size_t *spkilen) RF_WUR;
int rf_ca_csr_prove(const struct rf_csr *c) RF_WUR;
const EVP_PKEY *rf_ca_csr_key(const struct rf_csr *c); /* the request's */
void rf_csr_free(struct rf_csr *c);

/*
 * Canonical serial string: lowercase hex of the INTEGER value without
 * leading zeros ("0" for zero; a negative value is refused).
 */
int rf_ca_serial_str(const ASN1_INTEGER *serial, char out[41]) RF_WUR;
/* An ASN.1 time in Unix seconds; -1 when t is NULL or not a time. */
int64_t rf_ca_asn1_secs(const ASN1_TIME *t);

/*
 * Copy a TBSCertificate or TBSCertList DER with its `signature`
 * AlgorithmIdentifier replaced by alg (RFC 5280 4.1.2.3, 5.1.2.2), so that
 * it matches the outer signatureAlgorithm given to rf_ca_assemble().
 */
int rf_ca_tbs_set_sigalg(const uint8_t *tbs, size_t tbslen,
    const X509_ALGOR *alg, uint8_t **out, size_t *outlen) RF_WUR;

/*
 * PEM armour for a certificate (RFC 7468): rf_ca_pem_len() bytes plus a NUL
 * are enough for rf_ca_pem_write(), which returns the length written
 * (without the NUL).
 */
size_t rf_ca_pem_len(size_t derlen);
size_t rf_ca_pem_write(const uint8_t *der, size_t derlen, char *out);

/* x5t and x5t#S256 of a certificate: base64url SHA-1 and SHA-256 of its
 * DER (RFC 7515 4.1.7, 4.1.8). */
void rf_ca_thumbprints(
    const uint8_t *der, size_t len, char x5t[32], char x5t256[48]);

/*
 * DER tag-length headers (X.690): read one (single-byte tag, definite
 * minimal length, content within len; RF_ERR_MALFORMED otherwise), the
 * size of one for clen content bytes, and write one (returns the end).
 */
int rf_ca_der_hdr(const uint8_t *p, size_t len, uint8_t *tag, size_t *hdrlen,
    size_t *clen) RF_WUR;
size_t rf_ca_der_hdr_len(size_t clen);
uint8_t *rf_ca_der_put_hdr(uint8_t *p, uint8_t tag, size_t clen);

#endif
