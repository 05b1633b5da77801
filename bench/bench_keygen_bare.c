/*
 * bench_keygen_bare ALG N: the token's own key-generation floor, for the
 * pool refill benchmark (bench/pool.sh). A bare PKCS#11 loop on one
 * session of the store's first token: N x C_GenerateKeyPair of token key
 * pairs with the attributes ringfence gives every key (sensitive, not
 * extractable, private, sign only, neither modifiable nor copyable, a
 * random CKA_ID of 16 bytes, a label), and nothing
 * else: no public key read back, no id rename, no audit leaf, no store
 * record. Prints key pairs per second. The keys stay in the token (the
 * benchmark's state folder is thrown away after).
 *
 * bench_keygen_bare ALG N destroy [TOKENS]: the token's own destruction
 * floor, for the containment benchmark (bench/contain.sh). N key pairs
 * are made over the store's first TOKENS tokens (default 32) in turn, as
 * ringfence spreads connection keys, then destroyed (C_DestroyObject of
 * both objects, by the handles kept from generation: no search at all).
 * Run after contain, the tokens then hold its N new keys besides, as they
 * did when contain destroyed the N old ones. Prints key pairs destroyed
 * per second.
 *
 * Benchmark only: ringfence itself reaches PKCS#11 through src/keys alone.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "common/config.h"
#include "keys/keys.h"

static const uint8_t oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

static void
die(const char *what, unsigned long rv)
{
	fprintf(stderr, "bench_keygen_bare: %s failed (0x%lx)\n", what, rv);
	exit(1);
}

/* The slot whose token label (space padded) is label. */
static CK_SLOT_ID
find_slot(CK_FUNCTION_LIST_PTR f, const char *label)
{
	CK_SLOT_ID slots[256];
	CK_ULONG n = 256, i;
	CK_TOKEN_INFO ti;
	char want[32];
	size_t l = strlen(label);
	CK_RV rv;

	memset(want, ' ', sizeof(want));
	memcpy(want, label, l < sizeof(want) ? l : sizeof(want));
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		die("C_GetSlotList", rv);
	for (i = 0; i < n; i++)
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, want, sizeof(want)) == 0)
			return slots[i];
	die("finding the token", 0);
	return 0;
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A logged-in session with the token of label; the PIN is not kept. */
static CK_SESSION_HANDLE
session_for(
    CK_FUNCTION_LIST_PTR f, const char *label, const char *pin, int login)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;

	if ((rv = f->C_OpenSession(find_slot(f, label),
		 CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)) !=
	    CKR_OK)
		die("C_OpenSession", rv);
	if (login &&
	    (rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))) !=
		CKR_OK &&
	    rv != CKR_USER_ALREADY_LOGGED_IN)
		die("C_Login", rv);
	return s;
}

int
main(int argc, char **argv)
{
	struct rf_config cfg;
	CK_C_GetFunctionList getfl;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 2048;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE hpub, hpriv;
	uint8_t id[16], e[3] = {1, 0, 1}; /* CKA_ID: 16 random bytes, as ours */
	const char *label = "bench-bare";
	char pin[128];
	enum rf_key_alg alg;
	struct timespec t0, t1;
	CK_SESSION_HANDLE ss[64];
	CK_OBJECT_HANDLE(*hs)[2] = NULL;
	char tlabel[sizeof(cfg.token) + 8];
	size_t n, i, k, made, ntok = 32;
	int destroy;
	void *dl;
	CK_RV rv;

	if ((argc < 3 || argc > 5) || rf_key_alg_parse(argv[1], &alg) != 0 ||
	    (n = strtoul(argv[2], NULL, 10)) == 0 ||
	    (argc >= 4 && strcmp(argv[3], "destroy") != 0) ||
	    (argc == 5 &&
		((ntok = strtoul(argv[4], NULL, 10)) == 0 || ntok > 64))) {
		fprintf(stderr,
		    "usage: bench_keygen_bare ALG N [destroy "
		    "[TOKENS]]\n");
		return 2;
	}
	destroy = argc >= 4;
	if (!destroy)
		ntok = 1;
	if ((hs = calloc(n, sizeof(*hs))) == NULL)
		die("calloc", 0);
	if (rf_config_load(&cfg) != 0 || rf_config_pin(&cfg, pin, sizeof(pin)))
		die("loading the settings", 0);
	if (cfg.softhsm_conf[0] != '\0')
		setenv("SOFTHSM2_CONF", cfg.softhsm_conf, 1);
	if ((dl = dlopen(cfg.module, RTLD_NOW | RTLD_LOCAL)) == NULL)
		die("dlopen", 0);
	*(void **)(&getfl) = dlsym(dl, "C_GetFunctionList");
	if (getfl == NULL || getfl(&f) != CKR_OK)
		die("C_GetFunctionList", 0);
	if ((rv = f->C_Initialize(NULL)) != CKR_OK)
		die("C_Initialize", rv);
	/* The store's tokens are label, label.1, label.2, ... */
	for (k = 0; k < ntok; k++) {
		if (k == 0)
			snprintf(tlabel, sizeof(tlabel), "%s", cfg.token);
		else
			snprintf(
			    tlabel, sizeof(tlabel), "%s.%zu", cfg.token, k);
		ss[k] = session_for(f, tlabel, pin, 1);
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	made = n;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < made; i++) {
		s = ss[i % ntok];
		CK_ATTRIBUTE pubt[13], privt[16];
		CK_ULONG np = 0, nv = 0;

		if (RAND_bytes(id, sizeof(id)) != 1)
			die("RAND_bytes", 0);
#define A(t, k, ty, p, l)                                                      \
	do {                                                                   \
		t[k].type = (ty);                                              \
		t[k].pValue = (void *)(p);                                     \
		t[k].ulValueLen = (l);                                         \
		k++;                                                           \
	} while (0)
		A(pubt, np, CKA_TOKEN, &yes, 1);
		A(pubt, np, CKA_PRIVATE, &no, 1);
		A(pubt, np, CKA_VERIFY, &yes, 1);
		A(pubt, np, CKA_ENCRYPT, &no, 1);
		A(pubt, np, CKA_WRAP, &no, 1);
		A(pubt, np, CKA_VERIFY_RECOVER, &no, 1);
		A(pubt, np, CKA_MODIFIABLE, &no, 1);
		A(pubt, np, CKA_COPYABLE, &no, 1);
		A(pubt, np, CKA_ID, id, sizeof(id));
		A(pubt, np, CKA_LABEL, label, strlen(label));
		if (alg == RF_KEY_EC_P256) {
			A(pubt, np, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		} else if (alg == RF_KEY_EC_P384) {
			A(pubt, np, CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
		} else {
			mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
			bits = alg == RF_KEY_RSA_3072 ? 3072 : 2048;
			A(pubt, np, CKA_MODULUS_BITS, &bits, sizeof(bits));
			A(pubt, np, CKA_PUBLIC_EXPONENT, e, sizeof(e));
		}
		A(privt, nv, CKA_TOKEN, &yes, 1);
		A(privt, nv, CKA_PRIVATE, &yes, 1);
		A(privt, nv, CKA_SENSITIVE, &yes, 1);
		A(privt, nv, CKA_EXTRACTABLE, &no, 1);
		A(privt, nv, CKA_SIGN, &yes, 1);
		A(privt, nv, CKA_DECRYPT, &no, 1);
		A(privt, nv, CKA_UNWRAP, &no, 1);
		A(privt, nv, CKA_DERIVE, &no, 1);
		A(privt, nv, CKA_SIGN_RECOVER, &no, 1);
		A(privt, nv, CKA_MODIFIABLE, &no, 1);
		A(privt, nv, CKA_COPYABLE, &no, 1);
		A(privt, nv, CKA_ID, id, sizeof(id));
		A(privt, nv, CKA_LABEL, label, strlen(label));
#undef A
		if ((rv = f->C_GenerateKeyPair(s, &mech, pubt, np, privt, nv,
			 &hpub, &hpriv)) != CKR_OK)
			die("C_GenerateKeyPair", rv);
		hs[i][0] = hpriv; /* destroyed below */
		hs[i][1] = hpub;
	}
	if (!destroy) {
		printf("%.1f\n", (double)n / seconds_since(&t0));
	} else {
		fprintf(stderr,
		    "bench_keygen_bare: made %zu key pairs over %zu tokens "
		    "in %.1f s\n",
		    made, ntok, seconds_since(&t0));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		for (i = 0; i < n; i++) {
			if ((rv = f->C_DestroyObject(ss[i % ntok], hs[i][0])) !=
				CKR_OK ||
			    (rv = f->C_DestroyObject(ss[i % ntok], hs[i][1])) !=
				CKR_OK)
				die("C_DestroyObject", rv);
		}
		printf("%.1f\n", (double)n / seconds_since(&t1));
	}
	for (k = 0; k < ntok; k++) {
		f->C_Logout(ss[k]);
		f->C_CloseSession(ss[k]);
	}
	f->C_Finalize(NULL);
	free(hs);
	return 0;
}
