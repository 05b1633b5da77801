/*
 * A test's own handle on the PKCS#11 module, logged in to the fixture's
 * token with its PIN, straight against the module (not through
 * src/keys): what an attacker with the PIN, or a torn write, can do.
 * Included after keys_fx.h.
 */
#ifndef RF_P11_FX_H
#define RF_P11_FX_H

#include <dlfcn.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

/* The handle on the module and a logged-in session. */
struct p11 {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
};

static void
p11_open(const struct rf_config *cfg, struct p11 *p)
{
	CK_RV (*getfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS args;
	CK_SLOT_ID slots[128];
	CK_ULONG n = 128, i;
	CK_TOKEN_INFO ti;
	unsigned char want[32];
	char pin[256];
	CK_RV rv;

	memset(p, 0, sizeof(*p));
	p->dl = dlopen(cfg->module, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(p->dl);
	*(void **)(&getfl) = dlsym(p->dl, "C_GetFunctionList");
	assert_non_null(getfl);
	assert_int_equal(getfl(&p->f), CKR_OK);
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = p->f->C_Initialize(&args);
	assert_true(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
	assert_int_equal(p->f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	memset(want, ' ', sizeof(want));
	memcpy(want, cfg->token, strlen(cfg->token));
	for (i = 0; i < n; i++)
		if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, want, sizeof(want)) == 0)
			break;
	assert_true(i < n);
	assert_int_equal(
	    p->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION,
		NULL, NULL, &p->s),
	    CKR_OK);
	assert_int_equal(rf_config_pin(cfg, pin, sizeof(pin)), 0);
	rv = p->f->C_Login(
	    p->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
	assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

static void
p11_close(struct p11 *p)
{
	p->f->C_CloseSession(p->s);
	/* The module stays initialised: the fixture's keys still use it. */
	dlclose(p->dl);
}

/* Objects of class cls with CKA_ID id. */
static CK_ULONG
p11_find(struct p11 *p, CK_OBJECT_CLASS cls, const uint8_t *id, size_t len,
    CK_OBJECT_HANDLE *h)
{
	CK_ATTRIBUTE t[2] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, (void *)id, len},
	};
	CK_ULONG n = 0;

	*h = CK_INVALID_HANDLE;
	assert_int_equal(p->f->C_FindObjectsInit(p->s, t, 2), CKR_OK);
	assert_int_equal(p->f->C_FindObjects(p->s, h, 1, &n), CKR_OK);
	assert_int_equal(p->f->C_FindObjectsFinal(p->s), CKR_OK);
	return n;
}

#endif
