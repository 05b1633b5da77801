/*
 * object.c: objects in a token, for the rest of src/keys. The kept
 * handles of key pairs this process made or found (the made set, one per
 * loaded module: keys_made_*), finding objects by class and CKA_ID
 * (keys_object_is, keys_find_*), reading attributes (keys_get_*) and
 * rebuilding a public key from its object (keys_read_public*). The
 * module and its tokens are token.c's, the sessions these run in
 * session.c's.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <p11-kit/pkcs11.h>

#include "keys/keys.h"
#include "keys/token_int.h"

/*
 * Key pairs made here (struct made_set): an open-addressing set keyed by
 * the random CKA_ID, whose first bytes are the hash.
 */
#define MADE_MIN 1024
#define MADE_MAX ((size_t)1 << 18) /* 12 MB at most */

static size_t
made_hash(const uint8_t *tid)
{
	uint64_t h;

	memcpy(&h, tid, sizeof(h));
	return (size_t)h;
}

/* The slot of tid, or the free slot where it would go. */
static struct made_obj *
made_slot(struct made_obj *v, size_t cap, const uint8_t *tid)
{
	size_t i = made_hash(tid) & (cap - 1);

	while (v[i].use != -1 && memcmp(v[i].tid, tid, TID_LEN) != 0)
		i = (i + 1) & (cap - 1);
	return &v[i];
}

/* Forget every entry (a new module generation); the memory stays. */
void
keys_made_clear(struct made_set *m)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->cap; i++) {
		EVP_PKEY_free(m->v[i].pk);
		m->v[i].pk = NULL;
		m->v[i].use = -1;
	}
	m->used = 0;
	pthread_mutex_unlock(&m->lock);
}

/* The slot of token sh of keys (0 when sh is not one of its tokens). */
static CK_SLOT_ID
made_token_slot(struct rf_keys *keys, int sh)
{
	CK_SLOT_ID slot = 0;

	pthread_mutex_lock(&keys->lock);
	if (sh >= 0 && sh < keys->nsh)
		slot = keys->sh[sh].slot;
	pthread_mutex_unlock(&keys->lock);
	return slot;
}

/* Room for one more (tombstones dropped): 0, or -1 when full. */
static int
made_room(struct made_set *m)
{
	struct made_obj *v;
	size_t live = 0, cap, i;

	if (m->v != NULL && (m->used + 1) * 4 <= m->cap * 3)
		return 0;
	for (i = 0; i < m->cap; i++)
		live += m->v[i].use == 1;
	cap = m->cap ? m->cap : MADE_MIN;
	while ((live + 1) * 2 > cap)
		cap *= 2;
	if (cap > MADE_MAX)
		return -1;
	if ((v = malloc(cap * sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < cap; i++) {
		v[i].use = -1;
		v[i].pk = NULL;
	}
	for (i = 0; i < m->cap; i++)
		if (m->v[i].use == 1)
			*made_slot(v, cap, m->v[i].tid) = m->v[i];
	free(m->v);
	m->v = v;
	m->cap = cap;
	m->used = live;
	return 0;
}

void
keys_made_put(struct rf_keys *keys, int sh, const uint8_t *tid,
    CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv, unsigned long gen,
    EVP_PKEY *pk, enum rf_key_alg alg)
{
	struct made_set *m = &keys->mod->made;
	CK_SLOT_ID slot = made_token_slot(keys, sh);
	struct made_obj *o;

	pthread_mutex_lock(&m->lock);
	if (made_room(m) == 0) {
		o = made_slot(m->v, m->cap, tid);
		if (o->use == -1)
			m->used++;
		memcpy(o->tid, tid, TID_LEN);
		o->use = 1;
		o->slot = slot;
		o->pub = pub;
		o->priv = priv;
		o->gen = gen;
		EVP_PKEY_free(o->pk);
		o->pk = NULL;
		if (pk != NULL && EVP_PKEY_up_ref(pk) == 1)
			o->pk = pk;
		o->alg = alg;
	}
	pthread_mutex_unlock(&m->lock);
}

int
keys_made_get(struct rf_keys *keys, int sh, const uint8_t *tid, size_t tidlen,
    unsigned long gen, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv,
    EVP_PKEY **pk, enum rf_key_alg *alg)
{
	struct made_set *m = &keys->mod->made;
	CK_SLOT_ID slot;
	struct made_obj *o;
	int hit = 0;

	if (pk != NULL)
		*pk = NULL;
	if (tidlen != TID_LEN)
		return 0;
	slot = made_token_slot(keys, sh);
	pthread_mutex_lock(&m->lock);
	if (m->v != NULL) {
		o = made_slot(m->v, m->cap, tid);
		if (o->use == 1 && o->slot == slot && o->gen == gen) {
			*pub = o->pub;
			*priv = o->priv;
			if (pk != NULL && o->pk != NULL &&
			    EVP_PKEY_up_ref(o->pk) == 1) {
				*pk = o->pk;
				*alg = o->alg;
			}
			hit = 1;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return hit;
}

void
keys_made_drop(struct rf_keys *keys, const uint8_t *tid, size_t tidlen)
{
	struct made_set *m = &keys->mod->made;
	struct made_obj *o;

	if (tidlen != TID_LEN)
		return;
	pthread_mutex_lock(&m->lock);
	if (m->v != NULL) {
		o = made_slot(m->v, m->cap, tid);
		if (o->use == 1) {
			o->use = -2; /* a tombstone keeps the probe chains */
			EVP_PKEY_free(o->pk);
			o->pk = NULL;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

int
keys_object_is(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    CK_OBJECT_CLASS cls, const uint8_t *tid, size_t tidlen)
{
	CK_OBJECT_CLASS got = (CK_OBJECT_CLASS)-1;
	uint8_t id[TID_MAX];
	CK_ATTRIBUTE t[2] = {
	    {CKA_CLASS, &got, sizeof(got)},
	    {CKA_ID, id, sizeof(id)},
	};

	return h != CK_INVALID_HANDLE &&
	    f->C_GetAttributeValue(s, h, t, 2) == CKR_OK && got == cls &&
	    t[1].ulValueLen == tidlen && memcmp(id, tid, tidlen) == 0;
}

/*
 * Objects
 */

/* The object of class cls with CKA_ID id; *h is CK_INVALID_HANDLE if none. */
CK_RV
keys_find_object(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_CLASS cls, const uint8_t *id, size_t idlen, CK_OBJECT_HANDLE *h)
{
	CK_ATTRIBUTE t[2] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, (void *)id, idlen},
	};
	CK_ULONG n = 0;
	CK_RV rv, rv2;

	*h = CK_INVALID_HANDLE;
	if ((rv = f->C_FindObjectsInit(s, t, 2)) != CKR_OK)
		return rv;
	rv = f->C_FindObjects(s, h, 1, &n);
	rv2 = f->C_FindObjectsFinal(s);
	if (rv == CKR_OK && n == 0)
		*h = CK_INVALID_HANDLE;
	return rv != CKR_OK ? rv : rv2;
}

/* Every object matching t[0..nt) (nt 0: every object), in a new array *hs
 * of *n handles. */
CK_RV
keys_find_matching(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_ATTRIBUTE *t,
    CK_ULONG nt, CK_OBJECT_HANDLE **hs, size_t *n)
{
	CK_OBJECT_HANDLE *h = NULL, *nh;
	CK_ULONG got;
	size_t cap = 0;
	CK_RV rv, rv2;

	*hs = NULL;
	*n = 0;
	if ((rv = f->C_FindObjectsInit(s, t, nt)) != CKR_OK)
		return rv;
	for (;;) {
		if (*n + 256 > cap) {
			cap = cap ? cap * 2 : 1024;
			if ((nh = reallocarray(h, cap, sizeof(*h))) == NULL) {
				rv = CKR_HOST_MEMORY;
				break;
			}
			h = nh;
		}
		if ((rv = f->C_FindObjects(s, h + *n, 256, &got)) != CKR_OK ||
		    got == 0)
			break;
		*n += got;
	}
	rv2 = f->C_FindObjectsFinal(s);
	if (rv == CKR_OK)
		rv = rv2;
	if (rv != CKR_OK) {
		free(h);
		*n = 0;
		return rv;
	}
	*hs = h;
	return CKR_OK;
}

/* Every object of class cls, in a new array *hs of *n handles. */
CK_RV
keys_find_all(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    CK_OBJECT_HANDLE **hs, size_t *n)
{
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};

	return keys_find_matching(f, s, &t, 1, hs, n);
}

/* Read one CK_BBOOL attribute; absent reads as false. */
CK_RV
keys_get_bool(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_TYPE type, int *v)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};
	CK_RV rv;

	rv = f->C_GetAttributeValue(s, h, &a, 1);
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
		*v = 0;
		return CKR_OK;
	}
	*v = rv == CKR_OK && b == CK_TRUE;
	return rv;
}

/* Read a variable-length attribute into buf (at most cap bytes). */
CK_RV
keys_get_bytes(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_TYPE type, uint8_t *buf, size_t cap, size_t *len)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	CK_RV rv;

	*len = 0;
	if ((rv = f->C_GetAttributeValue(s, h, &a, 1)) != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	a.pValue = buf;
	if ((rv = f->C_GetAttributeValue(s, h, &a, 1)) != CKR_OK)
		return rv;
	*len = a.ulValueLen;
	return CKR_OK;
}

/* DER OIDs of the curves (RFC 5480 section 2.1.1.1), CKA_EC_PARAMS. */
const uint8_t keys_oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const uint8_t keys_oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/*
 * Rebuild the public key of the public key object h: its algorithm and an
 * EVP_PKEY. *r receives our error when the CK_RV is CKR_OK but the key is
 * not usable.
 */
/* An EC public key from its CKA_EC_PARAMS and CKA_EC_POINT. */
static void
ec_public(const uint8_t *params, size_t plen_, const uint8_t *ecpoint,
    size_t elen, int full, enum rf_key_alg *alg, EVP_PKEY **pub, int *r)
{
	const uint8_t *point;
	size_t plen;

	if (plen_ == sizeof(keys_oid_p256) &&
	    memcmp(params, keys_oid_p256, plen_) == 0)
		*alg = RF_KEY_EC_P256;
	else if (plen_ == sizeof(keys_oid_p384) &&
	    memcmp(params, keys_oid_p384, plen_) == 0)
		*alg = RF_KEY_EC_P384;
	else {
		*r = rf_err_set(RF_ERR_KEY_DISALLOWED,
		    "EC key on a curve other than P-256 and P-384");
		return;
	}
	if ((*r = rf_keys_ec_point_decode(
		 *alg, ecpoint, elen, &point, &plen)) != 0 ||
	    (*r = full ? rf_keys_ec_pub(*alg, point, plen, pub)
		       : rf_keys_ec_pub_known(*alg, point, plen, pub)) != 0)
		*alg = RF_KEY_NONE;
}

/* Reads of a public key object (rf_keys_pub_reads). */
static atomic_ulong pub_reads;

static CK_RV read_public(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, int full, enum rf_key_alg *alg, EVP_PKEY **pub, int *r);

unsigned long
rf_keys_pub_reads(void)
{
	return atomic_load(&pub_reads);
}

CK_RV
keys_read_public_of(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, const uint8_t *tid, size_t tidlen, int *is,
    enum rf_key_alg *alg, EVP_PKEY **pub, int *r)
{
	CK_OBJECT_CLASS cls = (CK_OBJECT_CLASS)-1;
	CK_KEY_TYPE kt = 0;
	uint8_t id[TID_MAX], b1[ATTR_MAX], b2[ATTR_MAX];
	CK_ATTRIBUTE t[5] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, id, sizeof(id)},
	    {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_EC_PARAMS, b1, sizeof(b1)},
	    {CKA_EC_POINT, b2, sizeof(b2)},
	};
	CK_RV rv;

	*is = 0;
	*alg = RF_KEY_NONE;
	*pub = NULL;
	*r = 0;
	if (h == CK_INVALID_HANDLE)
		return CKR_OK;
	atomic_fetch_add(&pub_reads, 1);
	/* An RSA key has no EC attributes: CKR_ATTRIBUTE_TYPE_INVALID, the
	 * others read (PKCS#11 v2.40 section 5.7, C_GetAttributeValue). */
	rv = f->C_GetAttributeValue(s, h, t, 5);
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID)
		return CKR_OK; /* not this object (as keys_object_is) */
	if (t[0].ulValueLen != sizeof(cls) || cls != CKO_PUBLIC_KEY ||
	    t[1].ulValueLen != tidlen || memcmp(id, tid, tidlen) != 0 ||
	    t[2].ulValueLen != sizeof(kt))
		return CKR_OK;
	*is = 1;
	if (kt == CKK_EC && rv == CKR_OK) {
		ec_public(
		    b1, t[3].ulValueLen, b2, t[4].ulValueLen, 0, alg, pub, r);
		return CKR_OK;
	}
	return read_public(f, s, h, 0, alg, pub, r);
}

CK_RV
keys_read_public(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE h, int full, enum rf_key_alg *alg, EVP_PKEY **pub, int *r)
{
	atomic_fetch_add(&pub_reads, 1);
	return read_public(f, s, h, full, alg, pub, r);
}

static CK_RV
read_public(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    int full, enum rf_key_alg *alg, EVP_PKEY **pub, int *r)
{
	CK_KEY_TYPE kt = 0;
	uint8_t b1[ATTR_MAX], b2[ATTR_MAX];
	CK_ATTRIBUTE a[3] = {
	    {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_EC_PARAMS, b1, sizeof(b1)},
	    {CKA_EC_POINT, b2, sizeof(b2)},
	};
	size_t l1, l2;
	CK_RV rv;

	*alg = RF_KEY_NONE;
	*pub = NULL;
	*r = 0;
	/* An EC key in one read (a file-backed token pays per read); an RSA
	 * key has no EC attributes: CKR_ATTRIBUTE_TYPE_INVALID, its type
	 * read (PKCS#11 v2.40 section 5.7). */
	rv = f->C_GetAttributeValue(s, h, a, 3);
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID)
		return rv;
	if (a[0].ulValueLen != sizeof(kt))
		return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
	if (kt == CKK_EC) {
		if (rv != CKR_OK)
			return rv;
		ec_public(b1, a[1].ulValueLen, b2, a[2].ulValueLen, full, alg,
		    pub, r);
		return CKR_OK;
	}
	if (kt == CKK_RSA) {
		if ((rv = keys_get_bytes(f, s, h, CKA_MODULUS, b1, sizeof(b1),
			 &l1)) != CKR_OK ||
		    (rv = keys_get_bytes(f, s, h, CKA_PUBLIC_EXPONENT, b2,
			 sizeof(b2), &l2)) != CKR_OK)
			return rv;
		*r = full ? rf_keys_rsa_pub(b1, l1, b2, l2, alg, pub)
			  : rf_keys_rsa_pub_known(b1, l1, b2, l2, alg, pub);
		return CKR_OK;
	}
	*r = rf_err_set(RF_ERR_KEY_DISALLOWED,
	    "key type 0x%lx is neither EC nor RSA", (unsigned long)kt);
	return CKR_OK;
}
