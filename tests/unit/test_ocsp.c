/*
 * test_ocsp.c: pre-signed OCSP responses, end to end on a real SoftHSM
 * token and SQLite store. A self-signed issuer and a delegated OCSP signer
 * certificate are made here, both keys in the token and both certificates
 * signed through rf_keys_sign. Responses are checked with OpenSSL's
 * OCSP_basic_verify and with the `openssl ocsp` command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "ocsp/ocsp.h"
#include "store/store.h"
#include "testutil.h"

#define VALIDITY 3600 /* cfg->ocsp_validity in these tests */

struct fix {
	char *home;
	struct rf_config cfg;
	struct rf_store *st, *st2; /* two connections to one database */
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_key *ikey, *okey;
	X509 *issuer, *signer, *other;
	struct rf_ocsp_signer *s;
	struct rf_ocsp_responder *r;
	struct rf_actor who;
};

/* ---- Certificates made through rf_keys ---- */

/*
 * Fill the certificate's signature fields (tbs and outer) with alg, sign
 * the TBSCertificate through rf_keys_sign and set the signature. OpenSSL
 * offers no setter without a private key, so the const accessors are
 * written through: this is test scaffolding, not library code.
 */
static void
sign_cert(struct rf_keys *keys, struct rf_key *key, X509 *x, const char *ref)
{
	X509_ALGOR *alg = NULL, *tbsalg, *outalg;
	const ASN1_BIT_STRING *cpsig;
	const X509_ALGOR *cpalg;
	unsigned char *tbs = NULL, *p;
	struct rf_sign_req req = {0};
	struct rf_sig sig = {0};
	struct rf_actor who = {"test", "unit"};
	int len;

	assert_int_equal(rf_key_sigalg(key, RF_SIG_DEFAULT, &alg), 0);
	tbsalg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
	assert_int_equal(X509_ALGOR_copy(tbsalg, alg), 1);
	assert_true((len = i2d_re_X509_tbs(x, NULL)) > 0);
	assert_non_null(tbs = malloc((size_t)len));
	p = tbs;
	assert_int_equal(i2d_re_X509_tbs(x, &p), len);
	req.msg = tbs;
	req.msglen = (size_t)len;
	req.what = "cert";
	req.ref = ref;
	assert_int_equal(rf_keys_sign(keys, key, &req, 1, &who, &sig), 0);
	X509_get0_signature(&cpsig, &cpalg, x);
	outalg = (X509_ALGOR *)cpalg;
	assert_int_equal(X509_ALGOR_copy(outalg, alg), 1);
	assert_int_equal(ASN1_BIT_STRING_set(
			     (ASN1_BIT_STRING *)cpsig, sig.sig, (int)sig.len),
	    1);
	/* No unused bits: else OpenSSL derives them from trailing zeros. */
	((ASN1_BIT_STRING *)cpsig)->flags &= ~0x07L;
	((ASN1_BIT_STRING *)cpsig)->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	rf_sig_clear(&sig);
	free(tbs);
	X509_ALGOR_free(alg);
}

static void
add_ext(X509 *x, X509 *iss, int nid, const char *val)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, iss, x, NULL, NULL, 0);
	assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, val));
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for subject key sk, signed by ik (self-signed: iss NULL). */
static X509 *
make_cert(struct rf_keys *keys, struct rf_key *ik, X509 *iss, struct rf_key *sk,
    const char *cn, long serial, int ocsp)
{
	X509 *x;
	X509_NAME *name;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_non_null(name = X509_NAME_new());
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
			     (const unsigned char *)cn, -1, -1, 0),
	    1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(
	    X509_set_issuer_name(x, iss ? X509_get_subject_name(iss) : name),
	    1);
	X509_NAME_free(name);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30));
	assert_int_equal(X509_set_pubkey(x, rf_key_public(sk)), 1);
	add_ext(x, iss ? iss : x, NID_subject_key_identifier, "hash");
	if (ocsp) {
		add_ext(x, iss, NID_authority_key_identifier, "keyid");
		add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, iss, NID_key_usage, "critical,digitalSignature");
		add_ext(x, iss, NID_ext_key_usage, "OCSPSigning");
		add_ext(x, iss, NID_id_pkix_OCSP_noCheck, "ignored");
	} else {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	sign_cert(keys, ik, x, cn);
	return x;
}

static void
write_pem(const char *home, const char *name, X509 *x)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", home, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static void
write_der(const char *home, const char *name, const uint8_t *d, size_t len)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", home, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(d, 1, len, f), len);
	fclose(f);
}

static int
setup(void **state)
{
	struct fix *f;
	struct rf_key *xkey = NULL;

	assert_non_null(f = calloc(1, sizeof(*f)));
	f->home = tu_home();
	tu_token(f->home, &f->cfg);
	f->cfg.ocsp_validity = VALIDITY;
	f->who.actor = "test";
	f->who.source = "unit";
	rf_clock_set(0);
	assert_int_equal(rf_store_open(f->cfg.db_path, 1, &f->st), 0);
	assert_int_equal(rf_store_open(f->cfg.db_path, 0, &f->st2), 0);
	assert_int_equal(rf_audit_open(f->st, &f->audit), 0);
	assert_int_equal(rf_keys_open(&f->cfg, f->audit, &f->keys), 0);
	assert_int_equal(rf_keys_generate(f->keys, RF_KEY_EC_P256, "issuing",
			     NULL, &f->who, &f->ikey),
	    0);
	assert_int_equal(rf_keys_generate(f->keys, RF_KEY_EC_P256, "ocsp", NULL,
			     &f->who, &f->okey),
	    0);
	assert_int_equal(rf_keys_generate(f->keys, RF_KEY_EC_P256, "other",
			     NULL, &f->who, &xkey),
	    0);
	f->issuer =
	    make_cert(f->keys, f->ikey, NULL, f->ikey, "test issuing CA", 1, 0);
	f->signer = make_cert(
	    f->keys, f->ikey, f->issuer, f->okey, "test OCSP signer", 2, 1);
	/* Another CA nobody serves. */
	f->other = make_cert(f->keys, xkey, NULL, xkey, "other CA", 3, 0);
	rf_key_free(xkey);
	write_pem(f->home, "issuer.pem", f->issuer);
	write_pem(f->home, "signer.pem", f->signer);
	assert_int_equal(rf_ocsp_signer_new(&f->cfg, f->st, f->keys, f->okey,
			     f->signer, f->issuer, "issuing", &f->s),
	    0);
	assert_int_equal(rf_ocsp_responder_new(f->st2, &f->r), 0);
	assert_int_equal(
	    rf_ocsp_responder_add_issuer(f->r, "issuing", f->issuer), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	rf_clock_set(0);
	rf_ocsp_responder_free(f->r);
	rf_ocsp_signer_free(f->s);
	X509_free(f->issuer);
	X509_free(f->signer);
	X509_free(f->other);
	rf_key_free(f->ikey);
	rf_key_free(f->okey);
	rf_keys_free(f->keys);
	rf_audit_free(f->audit);
	rf_store_free(f->st2);
	rf_store_free(f->st);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

/* ---- Requests and responses through OpenSSL ---- */

static OCSP_CERTID *
cid_new(X509 *issuer, const EVP_MD *md, const char *serial_hex)
{
	ASN1_INTEGER *ai;
	BIGNUM *bn = NULL;
	OCSP_CERTID *cid;

	assert_true(BN_hex2bn(&bn, serial_hex) > 0);
	assert_non_null(ai = BN_to_ASN1_INTEGER(bn, NULL));
	assert_non_null(
	    cid = OCSP_cert_id_new(md, X509_get_subject_name(issuer),
		X509_get0_pubkey_bitstr(issuer), ai));
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return cid;
}

/* A DER request for serials[0..n) (NULL-terminated list). */
static uint8_t *
make_req(X509 *issuer, const EVP_MD *md, const char *const *serials, int nonce,
    size_t *len)
{
	OCSP_REQUEST *req;
	uint8_t *der = NULL;
	int l;

	assert_non_null(req = OCSP_REQUEST_new());
	for (; *serials != NULL; serials++)
		assert_non_null(
		    OCSP_request_add0_id(req, cid_new(issuer, md, *serials)));
	if (nonce)
		assert_int_equal(OCSP_request_add1_nonce(req, NULL, 16), 1);
	assert_true((l = i2d_OCSP_REQUEST(req, &der)) > 0);
	OCSP_REQUEST_free(req);
	*len = (size_t)l;
	return der;
}

static void
respond(struct fix *f, X509 *issuer, const EVP_MD *md,
    const char *const *serials, int nonce, int64_t now,
    struct rf_ocsp_answer *ans)
{
	uint8_t *der;
	size_t len;

	der = make_req(issuer, md, serials, nonce, &len);
	assert_int_equal(rf_ocsp_respond(f->r, der, len, now, ans), 0);
	assert_int_equal(ans->http_status, 200);
	OPENSSL_free(der);
}

static void
assert_error_answer(const struct rf_ocsp_answer *ans, int status)
{
	const uint8_t want[] = {0x30, 0x03, 0x0a, 0x01, (uint8_t)status};

	assert_int_equal(ans->status, status);
	assert_int_equal(ans->len, sizeof(want));
	assert_memory_equal(ans->der, want, sizeof(want));
	assert_int_equal(ans->this_update, 0);
	assert_string_equal(ans->etag, "");
}

/*
 * Verify a successful answer with OCSP_basic_verify against the issuer
 * and return the BasicOCSPResponse (caller frees).
 */
static OCSP_BASICRESP *
verified_basic(struct fix *f, const struct rf_ocsp_answer *ans)
{
	const unsigned char *p = ans->der;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs;
	X509_STORE *xs;
	const ASN1_OCTET_STRING *rid = NULL;
	const X509_NAME *rname = NULL;
	uint8_t kh[20];
	unsigned int khl = 0;

	assert_int_equal(ans->status, RF_OCSP_SUCCESSFUL);
	assert_non_null(resp = d2i_OCSP_RESPONSE(NULL, &p, (long)ans->len));
	assert_ptr_equal(p, ans->der + ans->len);
	assert_int_equal(
	    OCSP_response_status(resp), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	assert_non_null(bs = OCSP_response_get1_basic(resp));
	OCSP_RESPONSE_free(resp);
	assert_non_null(xs = X509_STORE_new());
	assert_int_equal(X509_STORE_add_cert(xs, f->issuer), 1);
	if (OCSP_basic_verify(bs, NULL, xs, 0) != 1) {
		ERR_print_errors_fp(stderr);
		fail_msg("OCSP_basic_verify failed");
	}
	X509_STORE_free(xs);
	/* ResponderID byKey: SHA-1 of the signer's public key bits. */
	assert_int_equal(OCSP_resp_get0_id(bs, &rid, &rname), 1);
	assert_non_null(rid);
	assert_null(rname);
	assert_int_equal(
	    X509_pubkey_digest(f->signer, EVP_sha1(), kh, &khl), 1);
	assert_int_equal(ASN1_STRING_length(rid), 20);
	assert_memory_equal(ASN1_STRING_get0_data(rid), kh, 20);
	/* certs = [the delegated signer]; no nonce. */
	assert_int_equal(sk_X509_num(OCSP_resp_get0_certs(bs)), 1);
	assert_int_equal(
	    X509_cmp(sk_X509_value(OCSP_resp_get0_certs(bs), 0), f->signer), 0);
	assert_true(
	    OCSP_BASICRESP_get_ext_by_NID(bs, NID_id_pkix_OCSP_Nonce, -1) < 0);
	return bs;
}

static int64_t
gt(const ASN1_GENERALIZEDTIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

/* The status of serial in bs (CertID with md). */
static int
find_status(X509 *issuer, OCSP_BASICRESP *bs, const EVP_MD *md,
    const char *serial, int *reason, int64_t *rev, int64_t *tu, int64_t *nu)
{
	OCSP_CERTID *cid = cid_new(issuer, md, serial);
	ASN1_GENERALIZEDTIME *rt = NULL, *t1 = NULL, *t2 = NULL;
	int status = -1;

	*reason = -2;
	assert_int_equal(
	    OCSP_resp_find_status(bs, cid, &status, reason, &rt, &t1, &t2), 1);
	OCSP_CERTID_free(cid);
	*rev = rt ? gt(rt) : 0;
	*tu = gt(t1);
	*nu = t2 ? gt(t2) : 0;
	return status;
}

static void
presign(struct fix *f, const char *serial, int revoked, int64_t at, int reason)
{
	struct rf_ocsp_status s = {serial, revoked, at, reason};

	assert_int_equal(rf_ocsp_presign(f->s, &s, 1, &f->who), 0);
}

static void
reload(struct fix *f)
{
	assert_int_equal(rf_ocsp_responder_reload(f->r), 0);
}

/* ---- Tests ---- */

static void openssl_cli_checks(struct fix *f);

/* Good, revoked with a reason, revoked without one; nonce ignored. */
static void
test_presigned(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans, ans2;
	const char *good[] = {"1a2b", NULL}, *rev[] = {"abc123", NULL},
		   *rev2[] = {"ff", NULL};
	struct rf_ocsp_status sts[3] = {
	    {"1a2b", 0, 0, -1}, {"abc123", 1, 0, 1}, {"ff", 1, 0, -1}};
	OCSP_BASICRESP *bs;
	int64_t now = rf_now(), rt, tu, nu;
	int reason;

	sts[1].revoked_at = now - 1000;
	sts[2].revoked_at = now - 2000;
	assert_int_equal(rf_ocsp_presign(f->s, sts, 3, &f->who), 0);
	reload(f);
	assert_int_equal(rf_ocsp_responder_count(f->r), 3);

	respond(f, f->issuer, EVP_sha1(), good, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "1a2b", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	assert_true(tu >= now && tu <= now + 5);
	assert_int_equal(nu, tu + VALIDITY);
	assert_int_equal(ans.this_update, tu);
	assert_int_equal(ans.next_update, nu);
	assert_int_equal(strlen(ans.etag), 32);
	assert_int_equal(OCSP_resp_count(bs), 1);
	OCSP_BASICRESP_free(bs);
	write_der(f->home, "good.der", ans.der, ans.len);

	/* A nonce changes nothing: the same pre-signed bytes. */
	respond(f, f->issuer, EVP_sha1(), good, 1, now, &ans2);
	assert_int_equal(ans2.len, ans.len);
	assert_memory_equal(ans2.der, ans.der, ans.len);
	assert_string_equal(ans2.etag, ans.etag);

	respond(f, f->issuer, EVP_sha1(), rev, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "abc123",
			     &reason, &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, 1); /* keyCompromise */
	assert_int_equal(rt, now - 1000);
	OCSP_BASICRESP_free(bs);
	assert_string_not_equal(ans.etag, ans2.etag);
	write_der(f->home, "revoked.der", ans.der, ans.len);

	respond(f, f->issuer, EVP_sha1(), rev2, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "ff", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_NOSTATUS);
	assert_int_equal(rt, now - 2000);
	OCSP_BASICRESP_free(bs);

	/* Expired pre-signed response: not served. */
	respond(f, f->issuer, EVP_sha1(), good, 0, now + VALIDITY + 10, &ans);
	assert_error_answer(&ans, RF_OCSP_TRY_LATER);

	openssl_cli_checks(f);
}

/* The openssl command as an independent consumer (test_presigned). */
static void
openssl_cli_checks(struct fix *f)
{
	const char *h = f->home;

	assert_int_equal(tu_sh("cd '%s' && openssl ocsp -respin good.der "
			       "-issuer issuer.pem -serial 0x1a2b -CAfile "
			       "issuer.pem >out.txt 2>&1 && grep -q "
			       "'^0x1a2b: good' out.txt && grep -q 'Response "
			       "verify OK' out.txt",
			     h),
	    0);
	assert_int_equal(tu_sh("cd '%s' && openssl ocsp -respin revoked.der "
			       "-issuer issuer.pem -serial 0xabc123 -VAfile "
			       "signer.pem >out.txt 2>&1 && grep -q "
			       "'^0xabc123: revoked' out.txt && grep -q "
			       "'Reason: keyCompromise' out.txt && grep -q "
			       "'Response verify OK' out.txt",
			     h),
	    0);
	/* GnuTLS ocsptool as a second consumer. */
	assert_int_equal(tu_sh("cd '%s' && ocsptool -e --load-trust issuer.pem "
			       "--infile good.der >out.txt 2>&1 && grep -q "
			       "'Verifying OCSP Response: Success' out.txt && "
			       "grep -q 'Certificate Status: good' out.txt && "
			       "grep -q 'Responder Key ID' out.txt",
			     h),
	    0);
	assert_int_equal(tu_sh("cd '%s' && ocsptool -e --load-trust issuer.pem "
			       "--infile revoked.der >out.txt 2>&1 && grep -q "
			       "'Verifying OCSP Response: Success' out.txt && "
			       "grep -q 'Certificate Status: revoked' out.txt",
			     h),
	    0);
	/* The response for 1a2b does not answer for 1a2c. */
	assert_int_not_equal(tu_sh("cd '%s' && openssl ocsp -respin good.der "
				   "-issuer issuer.pem -serial 0x1a2c "
				   "-CAfile issuer.pem 2>&1 | grep -q "
				   "'0x1a2c: good'",
				 h),
	    0);
	/* A flipped signature byte fails verification. */
	assert_int_equal(tu_sh("cd '%s' && python3 -c \"import sys; "
			       "d=bytearray(open('good.der','rb').read()); "
			       "d[-(len(d)//3)]^=1; "
			       "open('bad.der','wb').write(d)\" && ! openssl "
			       "ocsp -respin bad.der -issuer issuer.pem "
			       "-serial 0x1a2b -CAfile issuer.pem >/dev/null "
			       "2>&1",
			     h),
	    0);
}

static void
test_unknown(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans;
	const char *never[] = {"77777777", NULL}, *good[] = {"1a2b", NULL};
	int64_t now = rf_now();

	presign(f, "1a2b", 0, 0, -1);
	reload(f);
	respond(f, f->issuer, EVP_sha1(), never, 0, now, &ans);
	assert_error_answer(&ans, RF_OCSP_UNAUTHORIZED);
	/* A known serial under an issuer we do not serve. */
	respond(f, f->other, EVP_sha1(), good, 0, now, &ans);
	assert_error_answer(&ans, RF_OCSP_UNAUTHORIZED);
	/* Nor with a signer: never signs "good" for a serial not issued. */
	rf_ocsp_responder_set_signer(f->r, f->s);
	respond(f, f->issuer, EVP_sha256(), never, 0, now, &ans);
	assert_error_answer(&ans, RF_OCSP_UNAUTHORIZED);
	rf_ocsp_responder_set_signer(f->r, NULL);
}

static void
test_malformed(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans;
	const char *good[] = {"1a2b", NULL};
	static const uint8_t garbage[] = "not an OCSP request";
	uint8_t *der, *longer;
	size_t len;
	int64_t now = rf_now();

	presign(f, "1a2b", 0, 0, -1);
	reload(f);
	der = make_req(f->issuer, EVP_sha1(), good, 0, &len);
	assert_int_equal(rf_ocsp_respond(f->r, der, len, now, &ans), 0);
	assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
	/* Trailing bytes. */
	assert_non_null(longer = malloc(len + 1));
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_int_equal(rf_ocsp_respond(f->r, longer, len + 1, now, &ans), 0);
	assert_error_answer(&ans, RF_OCSP_MALFORMED_REQUEST);
	/* Truncated. */
	assert_int_equal(rf_ocsp_respond(f->r, der, len - 1, now, &ans), 0);
	assert_error_answer(&ans, RF_OCSP_MALFORMED_REQUEST);
	assert_int_equal(
	    rf_ocsp_respond(f->r, garbage, sizeof(garbage), now, &ans), 0);
	assert_error_answer(&ans, RF_OCSP_MALFORMED_REQUEST);
	assert_int_equal(rf_ocsp_respond(f->r, NULL, 0, now, &ans), 0);
	assert_error_answer(&ans, RF_OCSP_MALFORMED_REQUEST);
	free(longer);
	OPENSSL_free(der);
}

/* The data of the leaf read, as a string. */
struct last_leaf {
	char data[2048];
};

static int
last_leaf_fn(void *arg, const struct rf_leaf_rec *l)
{
	struct last_leaf *last = arg;

	assert_true(l->len < sizeof(last->data));
	memcpy(last->data, l->data, l->len);
	last->data[l->len] = '\0';
	return 0;
}

/* Several certificates, and SHA-256 CertIDs: signed on demand. */
static void
test_on_demand(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans;
	const char *three[] = {"a1", "a2", "a3", NULL}, *one[] = {"a2", NULL};
	struct rf_ocsp_status sts[3] = {
	    {"a1", 0, 0, -1}, {"a2", 1, 0, 4}, {"a3", 0, 0, -1}};
	OCSP_BASICRESP *bs;
	int64_t now = rf_now(), rt, tu, nu;
	int reason, i, ok = 0, later = 0;

	sts[1].revoked_at = now - 50;
	assert_int_equal(rf_ocsp_presign(f->s, sts, 3, &f->who), 0);
	reload(f);
	/* No signer: tryLater. */
	respond(f, f->issuer, EVP_sha1(), three, 0, now, &ans);
	assert_error_answer(&ans, RF_OCSP_TRY_LATER);
	respond(f, f->issuer, EVP_sha256(), one, 0, now, &ans);
	assert_error_answer(&ans, RF_OCSP_TRY_LATER);

	rf_ocsp_responder_set_signer(f->r, f->s);
	respond(f, f->issuer, EVP_sha1(), three, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(OCSP_resp_count(bs), 3);
	/* Not for caching. */
	assert_int_equal(ans.next_update, 0);
	assert_string_equal(ans.etag, "");
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "a1", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	assert_int_equal(tu, now);
	assert_int_equal(nu, now + VALIDITY);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "a2", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, 4); /* superseded */
	assert_int_equal(rt, now - 50);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "a3", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);

	/* A SHA-256 CertID is answered with a SHA-256 CertID. */
	respond(f, f->issuer, EVP_sha256(), one, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha256(), "a2", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	OCSP_BASICRESP_free(bs);

	/* The most CertIDs a request may name: every one answered, and the
	 * signature's leaf names every serial, in the request's order. */
	{
		static char names[RF_OCSP_MAX_IDS][8];
		const char *all[RF_OCSP_MAX_IDS + 1] = {NULL};
		struct rf_ocsp_status many[RF_OCSP_MAX_IDS];
		char want[RF_OCSP_REF_MAX] = "\"ref\":\"on-demand";
		struct last_leaf last = {0};
		uint64_t n = 0;

		for (i = 0; i < RF_OCSP_MAX_IDS; i++) {
			snprintf(names[i], sizeof(names[i]), "c%02x", i);
			all[i] = names[i];
			many[i] = (struct rf_ocsp_status){names[i], 0, 0, -1};
			strcat(want, i == 0 ? " " : ",");
			strcat(want, names[i]);
		}
		strcat(want, "\"");
		assert_int_equal(
		    rf_ocsp_presign(f->s, many, RF_OCSP_MAX_IDS, &f->who), 0);
		reload(f);
		respond(f, f->issuer, EVP_sha1(), all, 0, now, &ans);
		bs = verified_basic(f, &ans);
		assert_int_equal(OCSP_resp_count(bs), RF_OCSP_MAX_IDS);
		for (i = 0; i < RF_OCSP_MAX_IDS; i++)
			assert_int_equal(find_status(f->issuer, bs, EVP_sha1(),
					     names[i], &reason, &rt, &tu, &nu),
			    V_OCSP_CERTSTATUS_GOOD);
		OCSP_BASICRESP_free(bs);
		assert_int_equal(rf_store_leaf_count(f->st, &n), 0);
		assert_int_equal(
		    rf_store_leaf_foreach(f->st, n - 1, n, last_leaf_fn, &last),
		    0);
		assert_non_null(strstr(last.data, want));
	}

	/* One unknown serial among several: unauthorized, nothing signed. */
	{
		const char *mixed[] = {"a1", "dead", NULL};

		respond(f, f->issuer, EVP_sha1(), mixed, 0, now, &ans);
		assert_error_answer(&ans, RF_OCSP_UNAUTHORIZED);
	}

	/* The rate limit: at most RF_OCSP_ONDEMAND_RATE in a second. */
	for (i = 0; i < RF_OCSP_ONDEMAND_RATE + 2; i++) {
		respond(f, f->issuer, EVP_sha256(), one, 0, now + 100, &ans);
		if (ans.status == RF_OCSP_SUCCESSFUL)
			ok++;
		else {
			assert_error_answer(&ans, RF_OCSP_TRY_LATER);
			later++;
		}
	}
	assert_int_equal(ok, RF_OCSP_ONDEMAND_RATE);
	assert_int_equal(later, 2);
	respond(f, f->issuer, EVP_sha256(), one, 0, now + 101, &ans);
	assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
	rf_ocsp_responder_set_signer(f->r, NULL);
}

/* serve's budget gate (rf_ocsp_respond_gated): asked only before signing. */
static int gate_calls, gate_allow;

static int
gate(void *arg, const struct rf_ocsp_request *q)
{
	(void)arg;
	assert_true(q->n >= 1);
	gate_calls++;
	return gate_allow;
}

static void
respond_gated(struct fix *f, const EVP_MD *md, const char *const *serials,
    int64_t now, struct rf_ocsp_answer *ans)
{
	uint8_t *der;
	size_t len;

	der = make_req(f->issuer, md, serials, 0, &len);
	assert_int_equal(
	    rf_ocsp_respond_gated(f->r, der, len, now, gate, NULL, ans), 0);
	OPENSSL_free(der);
}

static void
test_gated(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans, pre;
	const char *two[] = {"b1", "b2", NULL}, *one[] = {"b2", NULL};
	struct rf_ocsp_status sts[2] = {{"b1", 0, 0, -1}, {"b2", 0, 0, -1}};
	int64_t now = rf_now();

	assert_int_equal(rf_ocsp_presign(f->s, sts, 2, &f->who), 0);
	reload(f);
	rf_ocsp_responder_set_signer(f->r, f->s);
	respond(f, f->issuer, EVP_sha1(), one, 0, now, &pre);
	assert_int_equal(pre.status, RF_OCSP_SUCCESSFUL);
	/* The pre-signed path never asks the gate. */
	gate_calls = 0;
	gate_allow = 0;
	respond_gated(f, EVP_sha1(), one, now, &ans);
	assert_int_equal(gate_calls, 0);
	assert_int_equal(ans.len, pre.len);
	assert_memory_equal(ans.der, pre.der, pre.len);
	/* Refused: one certificate gets its pre-signed answer, unsigned now. */
	respond_gated(f, EVP_sha256(), one, now, &ans);
	assert_int_equal(gate_calls, 1);
	assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
	assert_int_equal(ans.len, pre.len);
	assert_memory_equal(ans.der, pre.der, pre.len);
	assert_string_equal(ans.etag, pre.etag);
	/* Several: tryLater. */
	respond_gated(f, EVP_sha1(), two, now, &ans);
	assert_int_equal(gate_calls, 2);
	assert_error_answer(&ans, RF_OCSP_TRY_LATER);
	/* Unknown serials are unauthorized before the gate is asked. */
	{
		const char *never[] = {"dead", NULL};

		respond_gated(f, EVP_sha256(), never, now, &ans);
		assert_int_equal(gate_calls, 2);
		assert_error_answer(&ans, RF_OCSP_UNAUTHORIZED);
	}
	/* Allowed: signed on demand, not the pre-signed bytes. */
	gate_allow = 1;
	respond_gated(f, EVP_sha256(), one, now, &ans);
	assert_int_equal(gate_calls, 3);
	assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
	assert_string_equal(ans.etag, "");
	assert_int_equal(ans.deferred, 0);

	/* RF_OCSP_DEFER (serve's workers): past the gate nothing is signed,
	 * the answer says so; refused by the gate, answered as before. */
	{
		uint8_t *der;
		size_t len;

		der = make_req(f->issuer, EVP_sha256(), one, 0, &len);
		assert_int_equal(rf_ocsp_respond_ex(f->r, der, len, now, gate,
				     NULL, RF_OCSP_DEFER, &ans),
		    0);
		assert_int_equal(gate_calls, 4);
		assert_int_equal(ans.deferred, 1);
		assert_int_equal(ans.len, 0);
		/* The pre-signed path is never deferred. */
		OPENSSL_free(der);
		der = make_req(f->issuer, EVP_sha1(), one, 0, &len);
		assert_int_equal(rf_ocsp_respond_ex(f->r, der, len, now, gate,
				     NULL, RF_OCSP_DEFER, &ans),
		    0);
		assert_int_equal(ans.deferred, 0);
		assert_memory_equal(ans.der, pre.der, pre.len);
		OPENSSL_free(der);
		gate_allow = 0;
		der = make_req(f->issuer, EVP_sha256(), one, 0, &len);
		assert_int_equal(rf_ocsp_respond_ex(f->r, der, len, now, gate,
				     NULL, RF_OCSP_DEFER, &ans),
		    0);
		assert_int_equal(gate_calls, 5);
		assert_int_equal(ans.deferred, 0);
		assert_memory_equal(ans.der, pre.der, pre.len);
		/* Asked again without the gate (its budget was taken): signed.
		 */
		assert_int_equal(rf_ocsp_respond_ex(
				     f->r, der, len, now, NULL, NULL, 0, &ans),
		    0);
		assert_int_equal(gate_calls, 5);
		assert_int_equal(ans.deferred, 0);
		assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
		assert_string_equal(ans.etag, "");
		assert_true(ans.len != pre.len ||
		    memcmp(ans.der, pre.der, pre.len) != 0);
		OPENSSL_free(der);
	}
	rf_ocsp_responder_set_signer(f->r, NULL);
}

struct seen {
	const char *serial;
	int64_t this_update;
	int found;
};

static int
seen_fn(void *arg, const struct rf_ocsp_rec *o)
{
	struct seen *s = arg;

	if (strcmp(o->serial, s->serial) == 0) {
		s->this_update = o->this_update;
		s->found = 1;
	}
	return 0;
}

static int64_t
stored_this_update(struct fix *f, const char *serial)
{
	struct seen s = {serial, 0, 0};

	assert_int_equal(rf_store_ocsp_foreach(f->st, 0, seen_fn, &s), 0);
	assert_true(s.found);
	return s.this_update;
}

static void
add_cert_rec(struct fix *f, const char *serial, int64_t not_after)
{
	struct rf_cert_rec c;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.issuer, sizeof(c.issuer), "issuing");
	snprintf(c.tenant, sizeof(c.tenant), "acme");
	snprintf(c.profile, sizeof(c.profile), "client");
	snprintf(c.key_id, sizeof(c.key_id), "%064x", 0);
	c.key_id[0] = serial[0];
	snprintf(c.subject, sizeof(c.subject), "CN=%s", serial);
	c.not_before = 0;
	c.not_after = not_after;
	c.reason = -1;
	assert_int_equal(rf_store_cert_add(f->st, &c), 0);
}

/* refresh_due signs the missing and the stale, leaves the fresh. */
static void
test_refresh(void **state)
{
	struct fix *f = *state;
	const int64_t t0 = 1900000000;
	static struct rf_ocsp_answer ans;
	const char *c1[] = {"c1", NULL};
	OCSP_BASICRESP *bs;
	int64_t rt, tu, nu;
	size_t n = 99;
	int reason, changed = 0;

	assert_int_equal(rf_store_tenant_add(f->st, "acme", t0), 0);
	add_cert_rec(f, "c1", t0 + 86400 * 365);
	add_cert_rec(f, "c2", t0 + 86400 * 365);
	add_cert_rec(f, "c3", t0 + 86400 * 365);
	add_cert_rec(f, "c4", t0 - 1); /* expired: never signed */
	rf_clock_set(t0);
	presign(f, "c1", 0, 0, -1);
	presign(f, "c2", 0, 0, -1);
	/* c3 has no response yet. */
	assert_int_equal(rf_ocsp_refresh_due(f->s, t0 + 100, &f->who, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stored_this_update(f, "c3"), t0 + 100);
	assert_int_equal(stored_this_update(f, "c1"), t0);
	/* Nothing due a moment later. */
	assert_int_equal(rf_ocsp_refresh_due(f->s, t0 + 200, &f->who, &n), 0);
	assert_int_equal(n, 0);
	/* c1 was revoked meanwhile (its response is re-signed from the
	 * certificate record). */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "c1", t0 + 300, 1, &changed), 0);
	/* Half the validity after t0: c1 and c2 are due, c3 is not. */
	assert_int_equal(
	    rf_ocsp_refresh_due(f->s, t0 + VALIDITY / 2, &f->who, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(stored_this_update(f, "c1"), t0 + VALIDITY / 2);
	assert_int_equal(stored_this_update(f, "c2"), t0 + VALIDITY / 2);
	assert_int_equal(stored_this_update(f, "c3"), t0 + 100);
	reload(f);
	respond(f, f->issuer, EVP_sha1(), c1, 0, t0 + VALIDITY / 2 + 1, &ans);
	assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
	assert_int_equal(ans.this_update, t0 + VALIDITY / 2);
	{
		const unsigned char *p = ans.der;
		OCSP_RESPONSE *resp;

		assert_non_null(
		    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)ans.len));
		assert_non_null(bs = OCSP_response_get1_basic(resp));
		OCSP_RESPONSE_free(resp);
	}
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "c1", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(rt, t0 + 300);
	assert_int_equal(reason, 1);
	OCSP_BASICRESP_free(bs);
	rf_clock_set(0);
}

/* A revocation committed through another connection reaches the
 * responder on its next reload. */
/*
 * A status read before signing that changed before publishing (a refresh
 * racing a revocation) is not published over the newer response.
 */
static void
test_stale_status(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans;
	const char *c[] = {"d1", NULL};
	struct rf_ocsp_status good = {"d1", 0, 0, -1}, rev = {"d1", 1, 0, 1};
	OCSP_BASICRESP *bs;
	int64_t now = rf_now(), rt, tu, nu;
	int changed = 0, reason;

	add_cert_rec(f, "d1", now + 86400);
	assert_int_equal(rf_ocsp_presign(f->s, &good, 1, &f->who), 0);
	/* The revocation commits, then publishes its response. */
	assert_int_equal(
	    rf_store_cert_revoke(f->st, "d1", now - 5, 1, &changed), 0);
	assert_int_equal(changed, 1);
	rev.revoked_at = now - 5;
	assert_int_equal(rf_ocsp_presign(f->s, &rev, 1, &f->who), 0);
	/* The refresh that read "good" earlier publishes late: ignored. */
	assert_int_equal(rf_ocsp_presign(f->s, &good, 1, &f->who), 0);
	reload(f);
	respond(f, f->issuer, EVP_sha1(), c, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "d1", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, 1);
	OCSP_BASICRESP_free(bs);
}

static void
test_reload(void **state)
{
	struct fix *f = *state;
	static struct rf_ocsp_answer ans;
	const char *s[] = {"beef", NULL};
	OCSP_BASICRESP *bs;
	int64_t now = rf_now(), rt, tu, nu;
	int reason;

	presign(f, "beef", 0, 0, -1);
	reload(f);
	respond(f, f->issuer, EVP_sha1(), s, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "beef", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);
	/* Nothing changed: still the same. */
	reload(f);
	assert_int_equal(rf_ocsp_responder_count(f->r), 1);

	presign(f, "beef", 1, now - 5, 1);
	/* Not reloaded yet: the old answer. */
	respond(f, f->issuer, EVP_sha1(), s, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "beef", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);
	reload(f);
	assert_int_equal(rf_ocsp_responder_count(f->r), 1);
	respond(f, f->issuer, EVP_sha1(), s, 0, now, &ans);
	bs = verified_basic(f, &ans);
	assert_int_equal(find_status(f->issuer, bs, EVP_sha1(), "beef", &reason,
			     &rt, &tu, &nu),
	    V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(rt, now - 5);
	OCSP_BASICRESP_free(bs);
}

/* Readers in threads while the main thread re-signs and reloads. */
struct reader {
	struct rf_ocsp_responder *r;
	uint8_t *req;
	size_t len;
	int64_t now;
	int bad, done;
};

static void *
reader_run(void *arg)
{
	struct reader *rd = arg;
	struct rf_ocsp_answer *ans;
	int i;

	if ((ans = malloc(sizeof(*ans))) == NULL) {
		rd->bad++;
		return NULL;
	}
	for (i = 0; i < 3000; i++) {
		const unsigned char *p = ans->der;
		OCSP_RESPONSE *resp;

		if (rf_ocsp_respond(rd->r, rd->req, rd->len, rd->now, ans) !=
			0 ||
		    ans->status != RF_OCSP_SUCCESSFUL) {
			rd->bad++;
			continue;
		}
		if ((resp = d2i_OCSP_RESPONSE(NULL, &p, (long)ans->len)) ==
			NULL ||
		    p != ans->der + ans->len)
			rd->bad++;
		OCSP_RESPONSE_free(resp);
		rd->done++;
	}
	free(ans);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fix *f = *state;
	const char *s[] = {"c0ffee", NULL};
	struct reader rd[3];
	pthread_t th[3];
	char serials[40][16];
	struct rf_ocsp_status sts[40];
	uint8_t *req;
	size_t len;
	int i;

	presign(f, "c0ffee", 0, 0, -1);
	for (i = 0; i < 40; i++) {
		snprintf(serials[i], sizeof(serials[i]), "%x", 0x1000 + i);
		sts[i] = (struct rf_ocsp_status){serials[i], 0, 0, -1};
	}
	assert_int_equal(rf_ocsp_presign(f->s, sts, 40, &f->who), 0);
	reload(f);
	req = make_req(f->issuer, EVP_sha1(), s, 0, &len);
	for (i = 0; i < 3; i++) {
		rd[i] = (struct reader){f->r, req, len, rf_now(), 0, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, reader_run, &rd[i]), 0);
	}
	/* Replace the entry readers hit, and grow the table meanwhile. */
	for (i = 0; i < 6; i++) {
		presign(f, "c0ffee", i % 2, rf_now() - 10, i % 2 ? 1 : -1);
		reload(f);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rd[i].bad, 0);
		assert_int_equal(rd[i].done, 3000);
	}
	assert_int_equal(rf_ocsp_responder_count(f->r), 41);
	OPENSSL_free(req);
}

/* Bad arguments to the signer. */
static void
test_signer_args(void **state)
{
	struct fix *f = *state;
	struct rf_ocsp_signer *s = NULL;
	struct rf_ocsp_status bad[] = {{"0ab", 0, 0, -1}, {"AB", 0, 0, -1},
	    {"", 0, 0, -1},
	    {"12345678901234567890123456789012345678901", 0, 0, -1},
	    {"ab", 1, 0, 7}, {"ab", 1, 0, 8}, {"ab", 1, 0, 11}};
	size_t i;

	/* The signer certificate's key must be the signer key's. */
	assert_int_equal(rf_ocsp_signer_new(&f->cfg, f->st, f->keys, f->ikey,
			     f->signer, f->issuer, "issuing", &s),
	    RF_ERR_ARG);
	assert_null(s);
	/* The signer must be issued by the issuer. */
	assert_int_equal(rf_ocsp_signer_new(&f->cfg, f->st, f->keys, f->okey,
			     f->signer, f->other, "issuing", &s),
	    RF_ERR_ARG);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    rf_ocsp_presign(f->s, &bad[i], 1, &f->who), RF_ERR_ARG);
}

/* GET: percent-decoding, then base64 in all its forms. */
static void
test_get_decode(void **state)
{
	struct fix *f = *state;
	const char *srcdir = getenv("RF_SOURCE_DIR");
	static const char *const same[] = {
	    "valid-double-slash.txt", "valid-double-slash-pct.txt"};
	static const char *const same2[] = {"valid-plus-pad.txt",
	    "valid-plus-pad-pct.txt", "valid-nopad-stripped.txt",
	    "valid-space-for-plus.txt", "valid-base64url.txt"};
	char path[1200];
	uint8_t *buf, *der, *der0 = NULL, *big;
	size_t len, dl, dl0 = 0, i;
	struct rf_ocsp_request q;
	const char *s[] = {"1a2b", NULL};
	static struct rf_ocsp_answer ans;

	(void)f;
	assert_non_null(srcdir);
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/fuzz/corpus/ocsp_get/%s",
		    srcdir, same[i]);
		assert_int_equal(rf_read_file(path, 65536, &buf, &len), 0);
		assert_int_equal(
		    rf_ocsp_get_decode((char *)buf, len, &der, &dl), 0);
		assert_int_equal(rf_ocsp_request_parse(der, dl, &q), 0);
		assert_int_equal(q.n, 1);
		assert_int_equal(q.ids[0].hash, RF_OCSP_HASH_SHA1);
		assert_string_equal(q.ids[0].serial, "1dafff5");
		if (i == 0) {
			assert_non_null(memmem(buf, len, "//", 2));
			der0 = der;
			dl0 = dl;
		} else {
			assert_int_equal(dl, dl0);
			assert_memory_equal(der, der0, dl);
			free(der);
		}
		free(buf);
	}
	free(der0);
	der0 = NULL;
	for (i = 0; i < sizeof(same2) / sizeof(same2[0]); i++) {
		snprintf(path, sizeof(path), "%s/fuzz/corpus/ocsp_get/%s",
		    srcdir, same2[i]);
		assert_int_equal(rf_read_file(path, 65536, &buf, &len), 0);
		assert_int_equal(
		    rf_ocsp_get_decode((char *)buf, len, &der, &dl), 0);
		assert_int_equal(rf_ocsp_request_parse(der, dl, &q), 0);
		assert_string_equal(q.ids[0].serial, "197efd");
		if (der0 == NULL) {
			der0 = der;
			dl0 = dl;
		} else {
			assert_int_equal(dl, dl0);
			assert_memory_equal(der, der0, dl);
			free(der);
		}
		free(buf);
	}
	free(der0);

	/* A request encoded here round-trips into the responder. */
	presign(f, "1a2b", 0, 0, -1);
	reload(f);
	{
		uint8_t *req = make_req(f->issuer, EVP_sha1(), s, 0, &len);
		char b64[512];
		int bl;

		assert_true((bl = EVP_EncodeBlock(
				 (unsigned char *)b64, req, (int)len)) > 0);
		assert_int_equal(
		    rf_ocsp_get_decode(b64, (size_t)bl, &der, &dl), 0);
		assert_int_equal(dl, len);
		assert_memory_equal(der, req, len);
		assert_int_equal(
		    rf_ocsp_respond(f->r, der, dl, rf_now(), &ans), 0);
		assert_int_equal(ans.status, RF_OCSP_SUCCESSFUL);
		free(der);
		OPENSSL_free(req);
	}

	/* Refused. */
	assert_int_equal(
	    rf_ocsp_get_decode("", 0, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_ocsp_get_decode("MEM%2", 6, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_ocsp_get_decode("MEM%zz", 6, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_ocsp_get_decode("QUJDR", 5, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_ocsp_get_decode("QU==JDRA", 8, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(
	    rf_ocsp_get_decode("QUJ*", 4, &der, &dl), RF_ERR_MALFORMED);
	assert_int_equal(rf_ocsp_get_decode("QR==", 4, &der, &dl),
	    RF_ERR_MALFORMED); /* non-zero pad bits */
	assert_null(der);
	assert_int_equal(rf_ocsp_get_decode("QQ==", 4, &der, &dl), 0);
	assert_int_equal(dl, 1);
	assert_int_equal(der[0], 'A');
	free(der);
	assert_non_null(big = malloc(RF_OCSP_MAX_REQUEST + 4));
	memset(big, 'A', RF_OCSP_MAX_REQUEST + 4);
	assert_int_equal(
	    rf_ocsp_get_decode((char *)big, RF_OCSP_MAX_REQUEST + 4, &der, &dl),
	    RF_ERR_TOO_LARGE);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_presigned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_demand, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signer_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_decode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
