/*
 * sthverify.c: the signed bytes of a tree head and their verification.
 * Needs only the public key: no token, so verification works offline.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"

/* docs/audit-format.md, "Signed tree heads". */
static const char sth_context[17] = "ringfence-sth-v1"; /* with its NUL */

static void
put_u64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/*
 *   opaque context[17] = "ringfence-sth-v1" 0x00;
 *   uint64 tree_size;
 *   int64  timestamp;      (seconds since the epoch, two's complement)
 *   opaque root_hash[32];
 */
void
rf_audit_sth_tbs(uint64_t size, int64_t time, const uint8_t root[RF_HASH_LEN],
    uint8_t out[RF_STH_TBS_LEN])
{
	memcpy(out, sth_context, sizeof(sth_context));
	put_u64(out + 17, size);
	put_u64(out + 25, (uint64_t)time);
	memcpy(out + 33, root, RF_HASH_LEN);
}

int
rf_audit_sth_tbs_parse(const uint8_t *tbs, size_t len, uint64_t *size,
    int64_t *time, uint8_t root[RF_HASH_LEN])
{
	uint64_t t = 0;
	int i;

	if (len != RF_STH_TBS_LEN ||
	    memcmp(tbs, sth_context, sizeof(sth_context)) != 0)
		return RF_ERR_MALFORMED;
	*size = 0;
	for (i = 0; i < 8; i++) {
		*size = *size << 8 | tbs[17 + i];
		t = t << 8 | tbs[25 + i];
	}
	*time = (int64_t)t;
	memcpy(root, tbs + 33, RF_HASH_LEN);
	return 0;
}

static void
sth_from_rec(const struct rf_sth_rec *s, struct rf_audit_sth_head *h)
{
	memset(h, 0, sizeof(*h));
	h->size = s->size;
	h->time = s->time;
	memcpy(h->root, s->root, RF_HASH_LEN);
	snprintf(h->key_id, sizeof(h->key_id), "%s", s->key_id);
	h->siglen = s->siglen <= RF_STH_SIG_MAX ? s->siglen : 0;
	if (s->sig != NULL && h->siglen > 0)
		memcpy(h->sig, s->sig, h->siglen);
}

struct latest {
	struct rf_audit_sth_head *h;
	int found;
};

static int
latest_fn(void *arg, const struct rf_sth_rec *s)
{
	struct latest *l = arg;

	/* The largest size, then the latest time. */
	sth_from_rec(s, l->h);
	l->found = 1;
	return 0;
}

static int
sth_latest_unlocked(struct rf_audit *a, struct rf_audit_sth_head *out)
{
	struct latest l = {out, 0};
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = rf_store_sth_latest(rf_audit_store(a), latest_fn, &l)) < 0)
		return r;
	if (!l.found)
		return rf_err_set(RF_ERR_NOT_FOUND,
		    "no signed tree head yet: run 'ringfence audit sth'");
	return 0;
}

/*
 * The signature scheme is the keys module's RF_SIG_DEFAULT: ECDSA with
 * SHA-256 (P-256) or SHA-384 (P-384), RSA PKCS#1 v1.5 with SHA-256.
 */
int
rf_audit_sth_verify(
    const struct rf_audit_sth_head *h, const uint8_t *spki, size_t spkilen)
{
	const unsigned char *p = spki;
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *ctx = NULL;
	const EVP_MD *md = EVP_sha256();
	uint8_t tbs[RF_STH_TBS_LEN], dig[32];
	unsigned int diglen = 0;
	char id[65];
	int r = RF_ERR_INTERNAL, v;

	if (spki == NULL || spkilen == 0 || spkilen > 4096)
		return rf_err_set(RF_ERR_MALFORMED, "no audit public key");
	if ((pub = d2i_PUBKEY(NULL, &p, (long)spkilen)) == NULL ||
	    p != spki + spkilen) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "audit public key is not a SubjectPublicKeyInfo");
		goto out;
	}
	if (EVP_Digest(spki, spkilen, dig, &diglen, EVP_sha256(), NULL) != 1 ||
	    diglen != sizeof(dig))
		goto out;
	rf_hex(dig, sizeof(dig), id);
	if (strcmp(id, h->key_id) != 0) {
		r = rf_err_set(RF_ERR_SIGNATURE_INVALID,
		    "tree head key %s does not match its public key",
		    h->key_id);
		goto out;
	}
	if (EVP_PKEY_is_a(pub, "EC") && EVP_PKEY_get_bits(pub) == 384)
		md = EVP_sha384();
	rf_audit_sth_tbs(h->size, h->time, h->root, tbs);
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) != 1)
		goto out;
	/* 1: valid; 0: invalid; negative: malformed signature or error,
	 * which for an untrusted signature also means invalid. */
	v = EVP_DigestVerify(ctx, h->sig, h->siglen, tbs, sizeof(tbs));
	if (v != 1) {
		ERR_clear_error();
		r = rf_err_set(RF_ERR_SIGNATURE_INVALID,
		    "tree head at size %" PRIu64 " has an invalid signature",
		    h->size);
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	return r;
}

int
rf_audit_key_id_of(const uint8_t *spki, size_t spkilen, char id[65])
{
	uint8_t dig[32];
	unsigned int diglen = 0;

	id[0] = '\0';
	if (EVP_Digest(spki, spkilen, dig, &diglen, EVP_sha256(), NULL) != 1 ||
	    diglen != sizeof(dig))
		return rf_err_set(RF_ERR_INTERNAL, "SHA-256 failed");
	rf_hex(dig, sizeof(dig), id);
	return 0;
}

int
rf_audit_sth_latest(struct rf_audit *a, struct rf_audit_sth_head *out)
{
	int r;

	rf_audit_lock(a);
	r = sth_latest_unlocked(a, out);
	rf_audit_unlock(a);
	return r;
}
