/*
 * tickets.c: TLS session tickets with rotating keys (RFC 5077 4, RFC 8446
 * 4.6.1), so that a returning client resumes without the server signing.
 *
 * Keys are random, never leave this process, and are wiped when replaced:
 * the current key seals new tickets; the previous one still opens tickets
 * it sealed (answered with a fresh ticket), so a ticket lives at most two
 * rotation periods. A ticket under an unknown name is a full handshake
 * (and a signature within the budget). Encryption AES-256-CBC with
 * HMAC-SHA256 over it, as OpenSSL's own ticket format does.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "http/http_int.h"

struct ticket_key {
	uint8_t name[16];
	uint8_t aes[32];
	uint8_t hmac[32];
	int set;
};

struct rf_http_tickets {
	pthread_mutex_t lock;
	struct ticket_key cur, prev; /* under lock */
	uint64_t made_ms;	     /* when cur was made */
	uint64_t rotate_ms;
};

static int tickets_idx = -1;
static pthread_once_t tickets_once = PTHREAD_ONCE_INIT;

static void
tickets_init(void)
{
	tickets_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int
key_make(struct ticket_key *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return -1;
	k->set = 1;
	return 0;
}

static int
mac_init(EVP_MAC_CTX *hctx, const uint8_t key[32])
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	return EVP_MAC_init(hctx, key, 32, params) == 1 ? 0 : -1;
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb: seal (enc 1) or open (enc 0) a
 * ticket. Open returns 1 (current key), 2 (previous: issue a new ticket)
 * or 0 (unknown: full handshake); -1 on failure.
 */
static int
ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct rf_http_tickets *t =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), tickets_idx);
	struct ticket_key k;
	int r = -1;

	if (t == NULL)
		return enc ? -1 : 0;
	pthread_mutex_lock(&t->lock);
	if (enc) {
		k = t->cur;
		r = 1;
	} else if (t->cur.set && memcmp(name, t->cur.name, 16) == 0) {
		k = t->cur;
		r = 1;
	} else if (t->prev.set && memcmp(name, t->prev.name, 16) == 0) {
		k = t->prev;
		r = 2;
	} else
		r = 0;
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		return 0;
	if (enc) {
		memcpy(name, k.name, 16);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
		    EVP_EncryptInit_ex(
			cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    mac_init(hctx, k.hmac) != 0)
			r = -1;
	} else if (EVP_DecryptInit_ex(
		       cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
	    mac_init(hctx, k.hmac) != 0)
		r = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

int
rf_http_tickets_new(SSL_CTX *ctx, int rotate_s, struct rf_http_tickets **out)
{
	struct rf_http_tickets *t = NULL;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	pthread_once(&tickets_once, tickets_init);
	if (tickets_idx < 0)
		return rf_err_set(RF_ERR_INTERNAL, "TLS tickets: no ex_data");
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return RF_ERR_ALLOC;
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return rf_err_set(RF_ERR_INTERNAL, "TLS tickets: mutex");
	}
	t->rotate_ms = (uint64_t)(rotate_s > 0 ? rotate_s : 3600) * 1000u;
	t->made_ms = rf_http_mono_ms();
	if (key_make(&t->cur) != 0) {
		r = rf_err_set(RF_ERR_INTERNAL, "TLS tickets: no random bytes");
		goto out;
	}
	if (SSL_CTX_set_ex_data(ctx, tickets_idx, t) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "TLS tickets: OpenSSL refused");
		goto out;
	}
	*out = t; /* the caller's; ctx must go first */
	t = NULL;
	r = 0;
out:
	rf_http_tickets_free(t);
	return r;
}

void
rf_http_tickets_free(struct rf_http_tickets *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

void
rf_http_tickets_rotate(struct rf_http_tickets *t, uint64_t now_ms)
{
	struct ticket_key k;

	if (t == NULL || now_ms - t->made_ms < t->rotate_ms)
		return;
	if (key_make(&k) != 0)
		return; /* the current key serves a while longer */
	pthread_mutex_lock(&t->lock);
	t->prev = t->cur;
	t->cur = k;
	pthread_mutex_unlock(&t->lock);
	OPENSSL_cleanse(&k, sizeof(k));
	t->made_ms = now_ms;
}
