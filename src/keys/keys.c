/*
 * keys.c: key custody in a PKCS#11 token, the pieces shared by the
 * files of src/keys: appending to the audit record, a key's handle and
 * its public half, the custody client's handle, and where a key is and
 * whether the store lets it sign. The module and tokens are in token.c,
 * the sessions in session.c, the objects in a token in object.c, signing
 * in sign.c, loading and listing keys in admin.c, generating them in
 * keygen.c, taking them out of service in retire.c.
 */

#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"
#include "keys/keys_int.h"
#include "keys/ledger.h"
#include "keys/token_int.h"
#include "store/store.h"

/*
 * Append events under the keys' audit lock, durably: RF_ERR_AUDIT on
 * failure. Inside a transaction of the record's store connection the
 * leaves would be durable only at the caller's commit, after the token
 * acted: a caller's bug, refused (RF_ERR_INTERNAL) rather than trusted.
 */
int
keys_audit_append(struct rf_keys *keys, const struct rf_audit_event *evs,
    size_t n, const char *doing)
{
	int r;

	rf_test_pause("keys-append");
	/* The check and the append in one hold of the lock: no other
	 * thread's transaction is open meanwhile, so an open one is the
	 * caller's. */
	keys_store_lock(keys);
	if (rf_store_in_transaction(keys_store(keys))) {
		keys_store_unlock(keys);
		return rf_err_set(RF_ERR_INTERNAL,
		    "refusing to write the audit record inside an open store "
		    "transaction: it would not be durable first; %s",
		    doing);
	}
	r = rf_audit_append(keys->audit, evs, n, NULL);
	keys_store_unlock(keys);
	if (r != 0)
		return rf_err_set(RF_ERR_AUDIT,
		    "audit record could not be appended (%s); %s",
		    rf_err_msg(r), doing);
	return 0;
}

/*
 * Keys
 */

const char *
rf_key_id(const struct rf_key *key)
{
	return key->id;
}

enum rf_key_alg
rf_key_alg(const struct rf_key *key)
{
	return key == NULL ? RF_KEY_NONE : key->alg;
}

EVP_PKEY *
rf_key_public(const struct rf_key *key)
{
	return key->pub;
}

int
rf_key_dup(const struct rf_key *key, struct rf_key **out)
{
	struct rf_key *k;

	*out = NULL;
	if ((k = malloc(sizeof(*k))) == NULL)
		return RF_ERR_ALLOC;
	*k = *key;
	if (EVP_PKEY_up_ref(k->pub) != 1) {
		free(k);
		return rf_err_set(RF_ERR_INTERNAL, "cannot share a public key");
	}
	*out = k; /* the caller's; shares key's public EVP_PKEY */
	return 0;
}

void
rf_key_free(struct rf_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pub);
	free(key);
}

/*
 * An EC key of alg from its SPKI without OpenSSL's decoder search (three
 * times faster; contain reads thousands): 1 if spki has the fixed form,
 * 0 to decode it the general way. The point is checked on the curve.
 */
static int
ec_spki_fast(
    enum rf_key_alg alg, const uint8_t *spki, size_t len, EVP_PKEY **pub)
{
	const uint8_t *pre;
	size_t plen, point;

	if (!rf_keys_ec_spki_form(alg, &pre, &plen, &point) ||
	    len != plen + point || memcmp(spki, pre, plen) != 0)
		return 0;
	/* As d2i_PUBKEY checks it: the point on the curve (keyd ran
	 * EVP_PKEY_public_check on the token's key). */
	if (rf_keys_ec_import(alg, spki + plen, point, pub) != 0) {
		rf_err_clear();
		return 0; /* the general way says what is wrong */
	}
	return 1;
}

int
rf_key_new_public(
    enum rf_key_alg alg, const uint8_t *spki, size_t len, struct rf_key **out)
{
	const unsigned char *p = spki;
	uint8_t md[SHA256_DIGEST_LENGTH];
	struct rf_key *key = NULL;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if ((key = calloc(1, sizeof(*key))) == NULL)
		return RF_ERR_ALLOC;
	key->alg = alg;
	key->sh = -1; /* in keyd's tokens, not ours */
	if (!ec_spki_fast(alg, spki, len, &key->pub) &&
	    (len > LONG_MAX ||
		(key->pub = d2i_PUBKEY(NULL, &p, (long)len)) == NULL ||
		p != spki + len)) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "custody process sent a public key that does not parse");
		goto out;
	}
	/*
	 * The id is the SHA-256 of the SPKI as keyd encoded it (i2d_PUBKEY,
	 * as rf_keys_pub_id): hashed as received rather than encoded again.
	 * Bytes other than that encoding hash to another id than keyd's,
	 * which rf_kc_load(_many) refuse (they check the id they asked for).
	 */
	SHA256(spki, len, md);
	rf_hex(md, sizeof(md), key->id);
	*out = key; /* the caller's */
	key = NULL;
	r = 0;
out:
	rf_key_free(key);
	return r;
}

int
rf_keys_new_client(
    const struct rf_config *cfg, struct rf_kc *kc, struct rf_keys **out)
{
	struct rf_keys *keys;

	*out = NULL;
	if ((keys = calloc(1, sizeof(*keys))) == NULL) {
		rf_kc_free(kc);
		return RF_ERR_ALLOC;
	}
	keys->cfg = *cfg;
	keys->cfg.pin[0] = '\0'; /* a client never logs in */
	keys->kc = kc;		 /* owned by keys from here */
	pthread_mutex_init(&keys->lock, NULL);
	*out = keys; /* the caller's */
	return 0;
}

struct rf_kc *
rf_keys_kc(const struct rf_keys *keys)
{
	return keys == NULL ? NULL : keys->kc;
}

int
rf_keys_remote(const struct rf_keys *keys)
{
	return keys != NULL && rf_keys_kc(keys) != NULL;
}

int
keys_parse_id(const char *id, uint8_t out[ID_LEN])
{
	size_t len = 0;

	if (id == NULL || strlen(id) != 2 * ID_LEN ||
	    rf_unhex(id, out, ID_LEN, &len) != 0 || len != ID_LEN)
		return rf_err_set(RF_ERR_ARG,
		    "key id must be 64 hex digits, not '%s'",
		    id == NULL ? "" : id);
	return 0;
}

/*
 * Run op on token first (the one the store records for the key; -1 for
 * none), then on each other token of the store in turn, until it reports,
 * through *found, that the key it looks for is there; *sh receives that
 * token. Stops at the first CK_RV other than CKR_OK (in *rvp). *found
 * stays 0 when no token holds the key.
 */
int
keys_with_key_token(struct rf_keys *keys, session_op op, void *arg,
    const int *found, int first, int *sh, CK_RV *rvp)
{
	int i, k, n, r;

	pthread_mutex_lock(&keys->lock);
	n = keys->nsh;
	pthread_mutex_unlock(&keys->lock);
	if (first >= n)
		first = -1;
	*rvp = CKR_OK;
	for (k = first < 0 ? 0 : -1; k < n; k++) {
		i = k < 0 ? first : k;
		if (k >= 0 && i == first)
			continue; /* probed first */
		if ((r = keys_with_session(keys, i, op, arg, rvp)) != 0)
			return r;
		if (*rvp != CKR_OK || *found) {
			*sh = i;
			break;
		}
	}
	return 0;
}

/* The store of the audit record, used under the audit lock. */
struct rf_store *
keys_store(struct rf_keys *keys)
{
	return rf_audit_store(keys->audit);
}

/*
 * The record's store connection is opened without SQLite's own mutex and
 * shared by every user of the audit handle (tree heads, the pool, signing
 * threads): keys uses it under the audit's lock, as they do, never a lock
 * of its own. The lock is recursive, so appending under it is fine.
 */
void
keys_store_lock(struct rf_keys *keys)
{
	if (keys->audit != NULL)
		rf_audit_lock(keys->audit);
}

void
keys_store_unlock(struct rf_keys *keys)
{
	if (keys->audit != NULL)
		rf_audit_unlock(keys->audit);
}

/*
 * Whether this thread left a transaction of the record's store open (a
 * caller's bug: what keys writes would be durable only at its commit).
 * Asked under the lock, so that another thread's transaction, which holds
 * the lock while open, is never mistaken for this thread's.
 */
int
keys_in_transaction(struct rf_keys *keys)
{
	int in;

	if (keys->audit == NULL)
		return 0;
	keys_store_lock(keys);
	in = rf_store_in_transaction(keys_store(keys));
	keys_store_unlock(keys);
	return in;
}

int
keys_shard_index(struct rf_keys *keys, const char *label)
{
	int i, sh = -1;

	pthread_mutex_lock(&keys->lock);
	for (i = 0; i < keys->nsh && label[0] != '\0'; i++)
		if (strcmp(keys->sh[i].label, label) == 0) {
			sh = i;
			break;
		}
	pthread_mutex_unlock(&keys->lock);
	return sh;
}

/*
 * Where key id is: its CKA_ID and token as the store records them (an
 * indexed lookup, so that finding a key never needs a pass over every
 * object); for a key made before random CKA_IDs, or not recorded, the
 * SPKI hash.
 */
int
keys_key_where(struct rf_keys *keys, const char *id, struct where *w)
{
	uint8_t idbin[ID_LEN];
	struct rf_key_rec kr;
	size_t len = 0;
	int r;

	memset(w, 0, sizeof(*w));
	w->sh = -1;
	if ((r = keys_parse_id(id, idbin)) != 0)
		return r;
	keys_store_lock(keys);
	r = rf_store_key_get(keys_store(keys), id, &kr);
	keys_store_unlock(keys);
	if (r != 0 && r != RF_ERR_NOT_FOUND)
		return r;
	if (r == 0) {
		w->recorded = 1;
		snprintf(w->state, sizeof(w->state), "%s", kr.state);
		snprintf(w->token, sizeof(w->token), "%s", kr.token);
		w->sh = keys_shard_index(keys, kr.token);
	} else {
		rf_err_clear();
	}
	if (r == 0 && kr.token_id[0] != '\0') {
		if (strlen(kr.token_id) > 2 * TID_MAX ||
		    rf_unhex(kr.token_id, w->tid, sizeof(w->tid), &len) != 0 ||
		    len == 0)
			return rf_err_set(RF_ERR_STORE,
			    "the store's token id of key %s is not hex: %s", id,
			    kr.token_id);
		w->tidlen = len;
	} else {
		memcpy(w->tid, idbin, ID_LEN);
		w->tidlen = ID_LEN;
	}
	return 0;
}

/*
 * Store states in which a key signs nothing. Keys cannot be changed in the
 * token once made (CKA_MODIFIABLE false), so disabling a key is a state of
 * its record, checked before every signature; taking a key out of service
 * for good destroys it.
 */
static int
state_refuses(const char *state)
{
	static const char *const refused[] = {
	    "disabled", "retired", "destroying", "destroyed", "compromised"};
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcmp(state, refused[i]) == 0)
			return 1;
	return 0;
}

/* RF_ERR_KEY_DISABLED if keyd's ledger or the store says key signs
 * nothing. */
int
keys_key_usable(struct rf_keys *keys, const struct rf_key *key)
{
	struct rf_key_rec kr;
	int r;

	/* Taken out of service through keyd: whatever the store says now
	 * (serve's user can write it). */
	if (keys->ledger != NULL &&
	    rf_ledger_key_retired(keys->ledger, key->id))
		return rf_err_set(RF_ERR_KEY_DISABLED,
		    "key %s was taken out of service (keyd's ledger): it "
		    "signs nothing",
		    key->id);

	keys_store_lock(keys);
	r = rf_store_key_get(keys_store(keys), key->id, &kr);
	keys_store_unlock(keys);
	if (r == RF_ERR_NOT_FOUND) {
		rf_err_clear();
		return 0; /* not recorded: the token decides */
	}
	if (r != 0)
		return r;
	if (state_refuses(kr.state))
		return rf_err_set(RF_ERR_KEY_DISABLED,
		    "key %s is %s in the store: it signs nothing", key->id,
		    kr.state);
	return 0;
}
