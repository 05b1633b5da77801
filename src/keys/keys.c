/*
 * keys.c: key custody in a PKCS#11 token. The only code that calls
 * PKCS#11: loading the module, finding the token, a pool of logged-in
 * sessions with recovery of lost ones, key generation, lookup, signing
 * bound to the audit record, disable and destroy, token initialisation.
 *
 * PKCS#11 v2.40 base specification section 5.4: C_Initialize may be called
 * once per process; a second call returns CKR_CRYPTOKI_ALREADY_INITIALIZED.
 * Modules therefore live in a process-wide list with a reference count: the
 * first rf_keys_open of a module path initialises it, the last rf_keys_free
 * finalises it. The library stays mapped, so that it can be initialised
 * again (SoftHSM reads SOFTHSM2_CONF at C_Initialize).
 *
 * Object handles are not kept across operations: a lost session or a
 * logout may invalidate them, so each operation finds its objects by
 * CKA_ID in the session it uses.
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

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"
#include "keys/keys_int.h"
#include "store/store.h"

#define LABEL_LEN 32	/* CK_TOKEN_INFO label, space padded */
#define ID_LEN 32	/* a key's id: SHA-256 of the SPKI */
#define TID_LEN 16	/* a new key's CKA_ID: random, set at generation */
#define TID_MAX 32	/* CKA_ID: TID_LEN, or ID_LEN for keys made before */
#define POOL_MAX 4	/* idle sessions kept open */
#define THREAD_MIN 64	/* batches this large are split over threads */
#define SIGN_THREADS 2	/* threads for a large batch */
#define PIPE_FIRST 32	/* a large batch's first chunk of leaves */
#define PIPE_MAX 256	/* and its largest (sign_pipelined) */
#define SIGN_BLOCK 8	/* items a signing thread takes at a time */
#define RAW_SIG_MAX 512 /* RSA-4096 at most; we make 3072 */
#define ATTR_MAX 1024	/* largest public attribute read back */
#define PIN_MAX 256
#define MSG_MAX 256
#define SHARD_MAX 64 /* tokens of one key store: label, label.1, ... */

/* One loaded module, shared by every rf_keys of this process using it. */
struct module {
	struct module *next;
	char path[RF_PATH_MAX];
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	int refs;	   /* open users; finalised when it drops to 0 */
	int initialised;   /* C_Initialize done by us */
	unsigned long gen; /* C_Initialize calls so far */
	/* Tokens whose metadata file was put back before C_Initialize, not
	 * yet in an audit record (rf_keys_open appends them). */
	struct rf_tokmeta_restored restored[RF_TOKMETA_MAX];
	int nrestored;
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module *modules; /* never freed: libraries stay mapped */

/*
 * One owner of the module at a time. Every use of a module in this
 * process (a token call, a session held across calls, a signing batch)
 * holds module_rw for reading; only C_Initialize and C_Finalize (first
 * open, last close, re-initialisation after a device error) hold it for
 * writing. PKCS#11 leaves a call that races C_Finalize undefined, and a
 * re-initialisation ends every session of every handle, so every other
 * handle of the process is paused meanwhile, and afterwards notices the
 * new generation (module.gen) and drops its sessions without closing
 * them: their numbers may already belong to sessions of another handle.
 * Lock order: module_rw, then modules_lock, then a handle's lock.
 * glibc's default rwlock lets a reader in while a writer waits, so a
 * thread may take it for reading twice.
 */
static pthread_rwlock_t module_rw = PTHREAD_RWLOCK_INITIALIZER;

/*
 * One token of the key store. A store may span several tokens of the same
 * module, labelled label, label.1, label.2, ...: a file-backed token such
 * as SoftHSM's rescans its whole folder (a stat per file) on every object
 * it destroys, so destroying n keys in one token costs O(n^2) system calls.
 * Spread over k tokens, the folders are k times smaller. New keys go to the
 * tokens in turn; a key is found by probing them.
 */
struct shard {
	char label[LABEL_LEN + 1];
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE idle[POOL_MAX];
	size_t nidle;
};

struct rf_keys {
	struct rf_config cfg;	/* copy; wiped on free (holds the PIN) */
	struct rf_audit *audit; /* borrowed */
	struct module *mod;
	CK_FUNCTION_LIST_PTR f;
	pthread_mutex_t lock;	    /* slots, idle sessions, next */
	pthread_mutex_t audit_lock; /* one append at a time from here */
	struct shard sh[SHARD_MAX];
	int nsh;
	unsigned int next;     /* token for the next new key */
	int test_drop_at_sign; /* tests: drop sessions after the append */
	unsigned long gen;     /* module generation of slots and sessions */
	struct rf_kc *kc;      /* custody client: every call goes to keyd */
};

struct rf_key {
	char id[65];
	uint8_t idbin[ID_LEN];
	uint8_t tid[TID_MAX]; /* its CKA_ID in the token */
	size_t tidlen;
	enum rf_key_alg alg;
	EVP_PKEY *pub;
	int sh; /* the token holding it */
};

/*
 * Where a key is in the token: its CKA_ID and the token holding it, from
 * the store's record; for keys made before random CKA_IDs (or never
 * recorded) the CKA_ID is the SPKI hash and any token may hold it.
 */
struct where {
	uint8_t tid[TID_MAX];
	size_t tidlen;
	int sh;		/* the recorded token, or -1 */
	int recorded;	/* the store has a row for the key */
	char state[16]; /* its state there */
};

static const char *
ckr_str(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return "CKR_OK";
	case CKR_HOST_MEMORY:
		return "CKR_HOST_MEMORY";
	case CKR_GENERAL_ERROR:
		return "CKR_GENERAL_ERROR";
	case CKR_FUNCTION_FAILED:
		return "CKR_FUNCTION_FAILED";
	case CKR_ARGUMENTS_BAD:
		return "CKR_ARGUMENTS_BAD";
	case CKR_ATTRIBUTE_READ_ONLY:
		return "CKR_ATTRIBUTE_READ_ONLY";
	case CKR_ATTRIBUTE_SENSITIVE:
		return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_ATTRIBUTE_TYPE_INVALID:
		return "CKR_ATTRIBUTE_TYPE_INVALID";
	case CKR_ATTRIBUTE_VALUE_INVALID:
		return "CKR_ATTRIBUTE_VALUE_INVALID";
	case CKR_DEVICE_ERROR:
		return "CKR_DEVICE_ERROR";
	case CKR_DEVICE_MEMORY:
		return "CKR_DEVICE_MEMORY";
	case CKR_DEVICE_REMOVED:
		return "CKR_DEVICE_REMOVED";
	case CKR_KEY_HANDLE_INVALID:
		return "CKR_KEY_HANDLE_INVALID";
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case CKR_MECHANISM_INVALID:
		return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID:
		return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_OBJECT_HANDLE_INVALID:
		return "CKR_OBJECT_HANDLE_INVALID";
	case CKR_OPERATION_ACTIVE:
		return "CKR_OPERATION_ACTIVE";
	case CKR_PIN_INCORRECT:
		return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED:
		return "CKR_PIN_LOCKED";
	case CKR_SESSION_CLOSED:
		return "CKR_SESSION_CLOSED";
	case CKR_SESSION_HANDLE_INVALID:
		return "CKR_SESSION_HANDLE_INVALID";
	case CKR_SESSION_READ_ONLY:
		return "CKR_SESSION_READ_ONLY";
	case CKR_TEMPLATE_INCOMPLETE:
		return "CKR_TEMPLATE_INCOMPLETE";
	case CKR_TEMPLATE_INCONSISTENT:
		return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_TOKEN_NOT_PRESENT:
		return "CKR_TOKEN_NOT_PRESENT";
	case CKR_TOKEN_WRITE_PROTECTED:
		return "CKR_TOKEN_WRITE_PROTECTED";
	case CKR_USER_NOT_LOGGED_IN:
		return "CKR_USER_NOT_LOGGED_IN";
	case CKR_USER_PIN_NOT_INITIALIZED:
		return "CKR_USER_PIN_NOT_INITIALIZED";
	case CKR_BUFFER_TOO_SMALL:
		return "CKR_BUFFER_TOO_SMALL";
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return "CKR_CRYPTOKI_NOT_INITIALIZED";
	case CKR_CRYPTOKI_ALREADY_INITIALIZED:
		return "CKR_CRYPTOKI_ALREADY_INITIALIZED";
	default:
		return "CKR_other";
	}
}

/* An RF_ERR_TOKEN with the PKCS#11 function and return value named. */
static int
token_err(const char *fn, CK_RV rv)
{
	return rf_err_set(RF_ERR_TOKEN, "token call %s failed: %s (0x%lx)", fn,
	    ckr_str(rv), (unsigned long)rv);
}

/* Return values after which the session is gone and is reopened. */
static int
session_lost(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	    rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED ||
	    rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_USER_NOT_LOGGED_IN ||
	    rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* Return values after which the library itself is re-initialised. */
static int
module_lost(CK_RV rv)
{
	return rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_DEVICE_ERROR ||
	    rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT;
}

/* A copy of a label, space padded to the 32 bytes of CK_TOKEN_INFO. */
static void
pad_label(const char *label, unsigned char out[LABEL_LEN])
{
	size_t n = strlen(label);

	memset(out, ' ', LABEL_LEN);
	memcpy(out, label, n > LABEL_LEN ? LABEL_LEN : n);
}

/*
 * Module list
 */

/* C_Initialize with OS locking; the caller holds modules_lock. */
/*
 * Whether SoftHSM's configuration names a token folder that is missing
 * (a removed token, a folder moved away): then *dir receives it.
 */
static int
softhsm_tokendir_missing(const char *conf, char *dir, size_t len)
{
	char line[1200], *v, *e;
	struct stat sb;
	FILE *f;
	int missing = 0;

	if (conf == NULL || conf[0] == '\0' || (f = fopen(conf, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "directories.tokendir", 20) != 0 ||
		    (v = strchr(line, '=')) == NULL)
			continue;
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		for (e = v + strlen(v);
		     e > v && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ');)
			*--e = '\0';
		if (*v != '\0' && stat(v, &sb) != 0) {
			snprintf(dir, len, "%s", v);
			missing = 1;
		}
		break;
	}
	fclose(f);
	return missing;
}

int
rf_keys_token_gone(const struct rf_config *cfg, int r)
{
	char dir[1024];

	if (r == 0 ||
	    !softhsm_tokendir_missing(cfg->softhsm_conf, dir, sizeof(dir)))
		return r;
	return rf_err_set(RF_ERR_TOKEN_NOT_FOUND,
	    "the token folder %s is missing (directories.tokendir in %s): put "
	    "the token back, then run the same command again",
	    dir, cfg->softhsm_conf);
}

static int
module_initialise(struct module *m, const struct rf_config *cfg)
{
	CK_C_INITIALIZE_ARGS args;
	struct stat sb;
	int n = 0;
	CK_RV rv;

	if (cfg != NULL && cfg->softhsm_conf[0] != '\0' &&
	    stat(cfg->softhsm_conf, &sb) == 0) {
		setenv("SOFTHSM2_CONF", cfg->softhsm_conf, 1);
		/* SoftHSM reads every token's file once, here: a torn one
		 * (a process killed while rewriting it) is put back from its
		 * verified copy first. Best effort: without, SoftHSM leaves
		 * that token out and open says which token is missing. */
		if (rf_tokmeta_restore(cfg, m->restored + m->nrestored,
			RF_TOKMETA_MAX - m->nrestored, &n) != 0)
			rf_err_clear();
		m->nrestored += n;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		int r = rf_err_set(RF_ERR_TOKEN_MODULE,
		    "cannot initialise PKCS#11 module %s: %s: "
		    "check RINGFENCE_MODULE",
		    m->path, ckr_str(rv));

		return cfg != NULL ? rf_keys_token_gone(cfg, r) : r;
	}
	m->initialised = rv == CKR_OK;
	m->gen++;
	return 0;
}

static int
module_get(const struct rf_config *cfg, struct module **out)
{
	CK_RV (*getfl)(CK_FUNCTION_LIST_PTR_PTR);
	struct module *m;
	const char *err;
	void *dl;
	CK_RV rv;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	pthread_rwlock_wrlock(&module_rw);
	pthread_mutex_lock(&modules_lock);
	for (m = modules; m != NULL; m = m->next)
		if (strcmp(m->path, cfg->module) == 0)
			break;
	if (m == NULL) {
		if (cfg->module[0] == '\0') {
			r = rf_err_set(RF_ERR_TOKEN_MODULE,
			    "no PKCS#11 module configured: set "
			    "RINGFENCE_MODULE");
			goto out;
		}
		if ((dl = dlopen(cfg->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
			err = dlerror();
			r = rf_err_set(RF_ERR_TOKEN_MODULE,
			    "cannot load PKCS#11 module %s: %s: "
			    "check RINGFENCE_MODULE",
			    cfg->module, err ? err : "dlopen failed");
			goto out;
		}
		*(void **)(&getfl) = dlsym(dl, "C_GetFunctionList");
		if (getfl == NULL) {
			dlclose(dl);
			r = rf_err_set(RF_ERR_TOKEN_MODULE,
			    "cannot load PKCS#11 module %s: no "
			    "C_GetFunctionList: check "
			    "RINGFENCE_MODULE",
			    cfg->module);
			goto out;
		}
		if ((m = calloc(1, sizeof(*m))) == NULL) {
			dlclose(dl);
			r = RF_ERR_ALLOC;
			goto out;
		}
		snprintf(m->path, sizeof(m->path), "%s", cfg->module);
		m->dl = dl;
		if ((rv = getfl(&m->f)) != CKR_OK || m->f == NULL) {
			dlclose(dl);
			free(m);
			r = rf_err_set(RF_ERR_TOKEN_MODULE,
			    "cannot load PKCS#11 module %s: "
			    "C_GetFunctionList: %s: check "
			    "RINGFENCE_MODULE",
			    cfg->module, ckr_str(rv));
			goto out;
		}
		m->next = modules;
		modules = m;
	}
	if (m->refs == 0 && (r = module_initialise(m, cfg)) != 0)
		goto out;
	m->refs++;
	*out = m;
	r = 0;
out:
	pthread_mutex_unlock(&modules_lock);
	pthread_rwlock_unlock(&module_rw);
	return r;
}

static void
module_put(struct module *m)
{
	if (m == NULL)
		return;
	pthread_rwlock_wrlock(&module_rw);
	pthread_mutex_lock(&modules_lock);
	if (--m->refs == 0 && m->initialised) {
		m->f->C_Finalize(NULL);
		m->initialised = 0;
	}
	pthread_mutex_unlock(&modules_lock);
	pthread_rwlock_unlock(&module_rw);
}

/* 1 if keys' handle is the module's only user in this process. */
static int
module_sole(struct module *m)
{
	int sole;

	pthread_mutex_lock(&modules_lock);
	sole = m->refs == 1;
	pthread_mutex_unlock(&modules_lock);
	return sole;
}

/*
 * After a device error: finalise (if we initialised) and initialise, with
 * every other use of the module in the process paused (module_rw held for
 * writing; the caller holds no read lock). seen is the generation the
 * caller's failure happened in: if another handle re-initialised since,
 * that is enough.
 */
static int
module_reinit(struct module *m, const struct rf_config *cfg, unsigned long seen)
{
	int r = 0;

	pthread_rwlock_wrlock(&module_rw);
	pthread_mutex_lock(&modules_lock);
	if (m->gen == seen) {
		if (m->initialised)
			m->f->C_Finalize(NULL);
		m->initialised = 0;
		r = module_initialise(m, cfg);
	}
	pthread_mutex_unlock(&modules_lock);
	pthread_rwlock_unlock(&module_rw);
	return r;
}

/*
 * The slot holding an initialised token labelled `label`.
 * RF_ERR_TOKEN_NOT_FOUND (no detail) if none.
 */
static int
find_slot(CK_FUNCTION_LIST_PTR f, const char *label, CK_SLOT_ID *slot)
{
	unsigned char want[LABEL_LEN];
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int r = RF_ERR_TOKEN_NOT_FOUND;

	pad_label(label, want);
	if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
		return token_err("C_GetSlotList", rv);
	if (n == 0)
		return RF_ERR_TOKEN_NOT_FOUND;
	if (n > 4096)
		return token_err("C_GetSlotList", CKR_GENERAL_ERROR);
	if ((slots = calloc(n, sizeof(*slots))) == NULL)
		return RF_ERR_ALLOC;
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		r = token_err("C_GetSlotList", rv);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if ((ti.flags & CKF_TOKEN_INITIALIZED) &&
		    memcmp(ti.label, want, LABEL_LEN) == 0) {
			*slot = slots[i];
			r = 0;
			break;
		}
	}
out:
	free(slots);
	return r;
}

/*
 * Sessions
 */

static void
audit_login_failed(struct rf_keys *keys)
{
	struct rf_audit_event ev;
	char detail[RF_PATH_MAX + 128];
	int r;

	if (keys->audit == NULL)
		return;
	snprintf(detail, sizeof(detail), "token %s in module %s",
	    keys->cfg.token, keys->cfg.module);
	memset(&ev, 0, sizeof(ev));
	ev.type = "login-failed";
	ev.actor = keys->cfg.actor[0] ? keys->cfg.actor : NULL;
	ev.detail = detail;
	pthread_mutex_lock(&keys->audit_lock);
	r = rf_audit_append(keys->audit, &ev, 1, NULL);
	pthread_mutex_unlock(&keys->audit_lock);
	(void)r; /* best effort: the PIN error is what the caller sees */
}

/*
 * The pause before try attempt + 1 of a token call that met SoftHSM's
 * torn token.object: 5 ms, 10, 20, 40, 80 (155 ms over five).
 */
static void
backoff(int attempt)
{
	struct timespec pause;

	pause.tv_sec = 0;
	pause.tv_nsec = 5000000L << attempt;
	nanosleep(&pause, NULL);
}

/* Log the user in on s unless the application is already logged in. */
static int
session_login(struct rf_keys *keys, CK_SESSION_HANDLE s)
{
	char pin[PIN_MAX];
	CK_SESSION_INFO si;
	CK_RV rv;
	int r, attempt;

	if (keys->f->C_GetSessionInfo(s, &si) == CKR_OK &&
	    (si.state == CKS_RW_USER_FUNCTIONS ||
		si.state == CKS_RO_USER_FUNCTIONS))
		return 0;
	if ((r = rf_config_pin(&keys->cfg, pin, sizeof(pin))) != 0)
		return r;
	/*
	 * SoftHSM rewrites token.object on every login; a process reading it
	 * at that moment sees a torn file (CKR_GENERAL_ERROR, or a token whose
	 * user PIN looks unset). Such a failure is retried after a pause.
	 */
	for (attempt = 0;; attempt++) {
		rv = keys->f->C_Login(
		    s, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
		if ((rv != CKR_GENERAL_ERROR && rv != CKR_FUNCTION_FAILED &&
			rv != CKR_USER_PIN_NOT_INITIALIZED) ||
		    attempt == 5)
			break;
		backoff(attempt);
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
		return 0;
	if (rv == CKR_PIN_INCORRECT) {
		audit_login_failed(keys);
		return rf_err_set(RF_ERR_TOKEN_PIN,
		    "token PIN rejected (CKR_PIN_INCORRECT): "
		    "check RINGFENCE_PIN");
	}
	if (rv == CKR_PIN_LOCKED)
		return rf_err_set(RF_ERR_TOKEN_PIN,
		    "token PIN locked (CKR_PIN_LOCKED): the "
		    "security officer must reset it");
	return token_err("C_Login", rv);
}

/* A fresh logged-in read/write session. */
static int
session_open(struct rf_keys *keys, CK_SLOT_ID slot, CK_SESSION_HANDLE *out)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;
	int r;

	rv = keys->f->C_OpenSession(
	    slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK)
		return token_err("C_OpenSession", rv);
	if ((r = session_login(keys, s)) != 0) {
		keys->f->C_CloseSession(s);
		return r;
	}
	*out = s;
	return 0;
}

/* The label of token i of a store labelled base: base, base.1, base.2... */
static void
shard_label(const char *base, int i, char out[LABEL_LEN + 1])
{
	size_t n = strnlen(base, LABEL_LEN);

	if (i > 0 && n > LABEL_LEN - 3)
		n = LABEL_LEN - 3; /* room for ".63" */
	memcpy(out, base, n);
	out[n] = '\0';
	if (i > 0)
		snprintf(out + n, LABEL_LEN + 1 - n, ".%d", i % SHARD_MAX);
}

/*
 * Find the store's tokens: the one labelled cfg.token, then label.1,
 * label.2, ... up to the first missing. The caller holds keys->lock or
 * owns keys alone.
 */
static int
find_shards(struct rf_keys *keys)
{
	char label[LABEL_LEN + 1];
	CK_SLOT_ID slot;
	int i, r;

	for (i = 0; i < SHARD_MAX; i++) {
		shard_label(keys->cfg.token, i, label);
		if ((r = find_slot(keys->f, label, &slot)) != 0) {
			if (r == RF_ERR_TOKEN_NOT_FOUND && i > 0)
				break;
			if (r == RF_ERR_TOKEN_NOT_FOUND)
				r = rf_err_set(r,
				    "no token labelled %s in module %s: "
				    "check RINGFENCE_TOKEN or run "
				    "'ringfence init'",
				    label, keys->cfg.module);
			return r;
		}
		if (i >= keys->nsh) {
			memset(&keys->sh[i], 0, sizeof(keys->sh[i]));
			snprintf(keys->sh[i].label, sizeof(keys->sh[i].label),
			    "%s", label);
		}
		keys->sh[i].slot = slot;
	}
	if (keys->nsh != 0 && i < keys->nsh)
		return rf_err_set(RF_ERR_TOKEN_NOT_FOUND,
		    "token '%s.%d' disappeared from module %s", keys->cfg.token,
		    i, keys->cfg.module);
	keys->nsh = i;
	return 0;
}

/*
 * find_shards, at open. SoftHSM reads every token's token.object once, at
 * C_Initialize, and leaves out a token whose file it could not read; it
 * rewrites that file on every login, so a process that initialises while
 * another logs in can lose a token for its whole life. So when the first
 * token is missing, or fewer tokens are found than `ringfence init` made
 * for the embedded store (store setting key_tokens), and this handle is
 * the module's only user, the module is initialised again after a pause
 * (5 ms, 10, ... 80) and the tokens looked for again. After the last try
 * the tokens found are used. A label that is really wrong costs 155 ms
 * more before its error.
 */
static int
find_shards_settled(struct rf_keys *keys)
{
	char made[16];
	int attempt, r, want = 1;

	/* How many tokens init made for the embedded store, if it did. */
	if (rf_store_meta_get(rf_audit_store(keys->audit), "key_tokens", made,
		sizeof(made)) == 0)
		want = atoi(made);
	rf_err_clear();
	for (attempt = 0;; attempt++) {
		pthread_rwlock_rdlock(&module_rw);
		r = find_shards(keys);
		keys->gen = keys->mod->gen;
		pthread_rwlock_unlock(&module_rw);
		if ((r == 0 && keys->nsh >= want) ||
		    (r != 0 && r != RF_ERR_TOKEN_NOT_FOUND) || attempt == 5 ||
		    !module_sole(keys->mod))
			return r;
		backoff(attempt);
		if (module_reinit(keys->mod, &keys->cfg, keys->gen) != 0)
			return r;
		rf_err_clear();
		keys->nsh = 0; /* find every token again */
	}
}

/*
 * The caller holds module_rw for reading: if the module was initialised
 * again since keys last looked (another handle's recovery), forget the
 * idle sessions without closing them (they ended with C_Finalize, and
 * their numbers may be reused) and find the tokens again.
 */
static int
keys_refresh(struct rf_keys *keys)
{
	int i, r = 0;

	pthread_mutex_lock(&keys->lock);
	if (keys->gen != keys->mod->gen) {
		for (i = 0; i < keys->nsh; i++)
			keys->sh[i].nidle = 0;
		if ((r = find_shards(keys)) == 0)
			keys->gen = keys->mod->gen;
	}
	pthread_mutex_unlock(&keys->lock);
	return r;
}

/* Take module_rw for reading, for a use of the module by keys. */
static int
keys_rdlock(struct rf_keys *keys)
{
	int r;

	pthread_rwlock_rdlock(&module_rw);
	if ((r = keys_refresh(keys)) != 0)
		pthread_rwlock_unlock(&module_rw);
	return r;
}

static void
keys_unlock(void)
{
	pthread_rwlock_unlock(&module_rw);
}

/* An idle session with token sh from the pool, or a new one. */
static int
session_get(struct rf_keys *keys, int sh, CK_SESSION_HANDLE *out)
{
	struct shard *t = &keys->sh[sh];
	CK_SLOT_ID slot;

	*out = CK_INVALID_HANDLE;
	pthread_mutex_lock(&keys->lock);
	if (t->nidle > 0) {
		*out = t->idle[--t->nidle];
		pthread_mutex_unlock(&keys->lock);
		return 0;
	}
	slot = t->slot;
	pthread_mutex_unlock(&keys->lock);
	return session_open(keys, slot, out);
}

/* Return a session to the pool (or close it if the pool is full). */
static void
session_put(struct rf_keys *keys, int sh, CK_SESSION_HANDLE s)
{
	struct shard *t = &keys->sh[sh];

	pthread_mutex_lock(&keys->lock);
	if (t->nidle < POOL_MAX) {
		t->idle[t->nidle++] = s;
		s = CK_INVALID_HANDLE;
	}
	pthread_mutex_unlock(&keys->lock);
	if (s != CK_INVALID_HANDLE)
		keys->f->C_CloseSession(s);
}

/* Close every idle session; the caller holds keys->lock. */
static void
drop_idle(struct rf_keys *keys)
{
	struct shard *t;
	int i;

	for (i = 0; i < keys->nsh; i++)
		for (t = &keys->sh[i]; t->nidle > 0;)
			keys->f->C_CloseSession(t->idle[--t->nidle]);
}

/*
 * After rv said the session s is gone (the caller holds module_rw for
 * reading): drop it and every idle session (they died with it); after a
 * device error re-initialise the library, with the read lock let go for
 * that while (taken again before returning, also on error); and find the
 * tokens again (their slots may have changed).
 */
static int
session_recover(struct rf_keys *keys, CK_SESSION_HANDLE s, CK_RV rv)
{
	unsigned long seen;
	int r = 0;

	keys->f->C_CloseSession(s); /* ignored: it is gone */
	pthread_mutex_lock(&keys->lock);
	drop_idle(keys);
	seen = keys->gen;
	pthread_mutex_unlock(&keys->lock);
	if (module_lost(rv)) {
		keys_unlock();
		r = module_reinit(keys->mod, &keys->cfg, seen);
		pthread_rwlock_rdlock(&module_rw);
		if (r != 0)
			return r;
	}
	pthread_mutex_lock(&keys->lock);
	if ((r = find_shards(keys)) == 0)
		keys->gen = keys->mod->gen;
	pthread_mutex_unlock(&keys->lock);
	return r;
}

/*
 * Run op in a session with token sh; if the session turns out to be lost,
 * recover and run it once more. op returns a CK_RV; errors of ours go in
 * its arg. *rvp receives the final CK_RV.
 */
typedef CK_RV (*session_op)(
    struct rf_keys *keys, CK_SESSION_HANDLE s, void *arg);

static int
with_session(struct rf_keys *keys, int sh, session_op op, void *arg, CK_RV *rvp)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_RV rv;
	int attempt, r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	for (attempt = 0;; attempt++) {
		if ((r = session_get(keys, sh, &s)) != 0)
			break;
		rv = op(keys, s, arg);
		if (session_lost(rv) && attempt == 0) {
			if ((r = session_recover(keys, s, rv)) != 0)
				break;
			continue;
		}
		if (session_lost(rv))
			keys->f->C_CloseSession(s);
		else
			session_put(keys, sh, s);
		*rvp = rv;
		break;
	}
	keys_unlock();
	return r;
}

/*
 * Objects
 */

/* The object of class cls with CKA_ID id; *h is CK_INVALID_HANDLE if none. */
static CK_RV
find_object(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    const uint8_t *id, size_t idlen, CK_OBJECT_HANDLE *h)
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

/* Every object of class cls, in a new array *hs of *n handles. */
static CK_RV
find_all(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    CK_OBJECT_HANDLE **hs, size_t *n)
{
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE *h = NULL, *nh;
	CK_ULONG got;
	size_t cap = 0;
	CK_RV rv, rv2;

	*hs = NULL;
	*n = 0;
	if ((rv = f->C_FindObjectsInit(s, &t, 1)) != CKR_OK)
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

/* Read one CK_BBOOL attribute; absent reads as false. */
static CK_RV
get_bool(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
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
static CK_RV
get_bytes(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
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
static const uint8_t oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/*
 * Rebuild the public key of the public key object h: its algorithm and an
 * EVP_PKEY. *r receives our error when the CK_RV is CKR_OK but the key is
 * not usable.
 */
static CK_RV
read_public(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    enum rf_key_alg *alg, EVP_PKEY **pub, int *r)
{
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof(kt)};
	uint8_t b1[ATTR_MAX], b2[ATTR_MAX];
	const uint8_t *point;
	size_t l1, l2, plen;
	CK_RV rv;

	*alg = RF_KEY_NONE;
	*pub = NULL;
	*r = 0;
	if ((rv = f->C_GetAttributeValue(s, h, &a, 1)) != CKR_OK)
		return rv;
	if (kt == CKK_EC) {
		if ((rv = get_bytes(f, s, h, CKA_EC_PARAMS, b1, sizeof(b1),
			 &l1)) != CKR_OK ||
		    (rv = get_bytes(
			 f, s, h, CKA_EC_POINT, b2, sizeof(b2), &l2)) != CKR_OK)
			return rv;
		if (l1 == sizeof(oid_p256) && memcmp(b1, oid_p256, l1) == 0)
			*alg = RF_KEY_EC_P256;
		else if (l1 == sizeof(oid_p384) &&
		    memcmp(b1, oid_p384, l1) == 0)
			*alg = RF_KEY_EC_P384;
		else {
			*r = rf_err_set(RF_ERR_KEY_DISALLOWED,
			    "EC key on a curve other than P-256 "
			    "and P-384");
			return CKR_OK;
		}
		if ((*r = rf_keys_ec_point_decode(
			 *alg, b2, l2, &point, &plen)) != 0 ||
		    (*r = rf_keys_ec_pub(*alg, point, plen, pub)) != 0)
			*alg = RF_KEY_NONE;
		return CKR_OK;
	}
	if (kt == CKK_RSA) {
		if ((rv = get_bytes(f, s, h, CKA_MODULUS, b1, sizeof(b1),
			 &l1)) != CKR_OK ||
		    (rv = get_bytes(f, s, h, CKA_PUBLIC_EXPONENT, b2,
			 sizeof(b2), &l2)) != CKR_OK)
			return rv;
		*r = rf_keys_rsa_pub(b1, l1, b2, l2, alg, pub);
		return CKR_OK;
	}
	*r = rf_err_set(RF_ERR_KEY_DISALLOWED,
	    "key type 0x%lx is neither EC nor RSA", (unsigned long)kt);
	return CKR_OK;
}

/*
 * Open and close
 */

static int audit_append(struct rf_keys *keys, const struct rf_audit_event *evs,
    size_t n, const char *doing);

/* 1 if token label of the store reports serial (tokmeta's check). */
static int
tokmeta_known(void *arg, const char *label, const char *serial)
{
	struct rf_keys *keys = arg;
	CK_TOKEN_INFO ti;
	char have[sizeof(ti.serialNumber) + 1];
	size_t n;
	int i;

	for (i = 0; i < keys->nsh; i++) {
		if (strcmp(keys->sh[i].label, label) != 0)
			continue;
		if (keys->f->C_GetTokenInfo(keys->sh[i].slot, &ti) != CKR_OK)
			return 0;
		memcpy(have, ti.serialNumber, sizeof(ti.serialNumber));
		n = sizeof(ti.serialNumber);
		have[n] = '\0';
		while (n > 0 && have[n - 1] == ' ')
			have[--n] = '\0';
		return strcmp(have, serial) == 0;
	}
	return 0;
}

/*
 * After the login of rf_keys_open: record the tokens whose metadata file
 * was put back from its copy ("token-restored" leaves), then save a copy
 * of each token's file that verifies and changed (tokmeta.h).
 */
static int
tokmeta_after_login(struct rf_keys *keys)
{
	struct rf_tokmeta_restored got[RF_TOKMETA_MAX];
	struct rf_audit_event evs[RF_TOKMETA_MAX];
	char detail[RF_TOKMETA_MAX][256];
	int i, n, r;

	pthread_mutex_lock(&modules_lock);
	n = keys->mod->nrestored;
	memcpy(got, keys->mod->restored, (size_t)n * sizeof(got[0]));
	keys->mod->nrestored = 0;
	pthread_mutex_unlock(&modules_lock);
	memset(evs, 0, sizeof(evs));
	for (i = 0; i < n; i++) {
		snprintf(detail[i], sizeof(detail[i]),
		    "token %s (folder %s): token.object was empty or cut "
		    "short; restored from its verified copy",
		    got[i].label, got[i].uuid);
		evs[i].type = "token-restored";
		evs[i].actor = keys->cfg.actor[0] ? keys->cfg.actor : NULL;
		evs[i].detail = detail[i];
	}
	if (n > 0 &&
	    (r = audit_append(keys, evs, (size_t)n,
		 "token metadata was restored without a record")) != 0) {
		/* Kept for the next open of this process to record. */
		pthread_mutex_lock(&modules_lock);
		for (i = 0; i < n && keys->mod->nrestored < RF_TOKMETA_MAX; i++)
			keys->mod->restored[keys->mod->nrestored++] = got[i];
		pthread_mutex_unlock(&modules_lock);
		return r;
	}
	if ((r = keys_rdlock(keys)) != 0)
		return r;
	r = rf_tokmeta_save(&keys->cfg, tokmeta_known, keys);
	keys_unlock();
	return r;
}

int
rf_keys_open(
    const struct rf_config *cfg, struct rf_audit *audit, struct rf_keys **out)
{
	struct rf_keys *keys = NULL;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (cfg != NULL && rf_kc_enabled())
		return rf_kc_open(cfg, out); /* keyd keeps the record */
	if (cfg == NULL || audit == NULL)
		return rf_err_set(RF_ERR_ARG,
		    "keys need the settings and the audit "
		    "record");
	if ((keys = calloc(1, sizeof(*keys))) == NULL)
		return RF_ERR_ALLOC;
	keys->cfg = *cfg;
	keys->audit = audit; /* borrowed */
	pthread_mutex_init(&keys->lock, NULL);
	pthread_mutex_init(&keys->audit_lock, NULL);
	if ((r = module_get(cfg, &keys->mod)) != 0)
		goto out;
	keys->f = keys->mod->f;
	if ((r = find_shards_settled(keys)) != 0)
		goto out;
	/* Each process starts at a random token, so that processes making
	 * one key each spread them too. */
	if (RAND_bytes((unsigned char *)&keys->next, sizeof(keys->next)) != 1)
		keys->next = (unsigned int)getpid();
	/* Log in now, so that a wrong PIN is reported by open. */
	if ((r = keys_rdlock(keys)) != 0)
		goto out;
	if ((r = session_open(keys, keys->sh[0].slot, &s)) == 0)
		session_put(keys, 0, s);
	keys_unlock();
	if (r != 0 || (r = tokmeta_after_login(keys)) != 0)
		goto out;
	*out = keys; /* owned by the caller */
	keys = NULL;
	r = 0;
out:
	rf_keys_free(keys);
	return r;
}

void
rf_keys_free(struct rf_keys *keys)
{
	if (keys == NULL)
		return;
	rf_kc_free(keys->kc);
	if (keys->f != NULL) {
		/* Sessions of an older generation ended with it: not closed. */
		pthread_rwlock_rdlock(&module_rw);
		if (keys->gen == keys->mod->gen)
			drop_idle(keys);
		pthread_rwlock_unlock(&module_rw);
	}
	module_put(keys->mod);
	pthread_mutex_destroy(&keys->lock);
	pthread_mutex_destroy(&keys->audit_lock);
	OPENSSL_cleanse(keys, sizeof(*keys));
	free(keys);
}

int
rf_keys_test_drop_sessions(struct rf_keys *keys)
{
	CK_RV rv = CKR_OK;
	int i;

	if (keys->kc != NULL)
		return rf_err_set(RF_ERR_STATE, "sessions are keyd's to drop");
	/* The idle handles stay in the pool: the next use must recover. */
	pthread_rwlock_rdlock(&module_rw);
	pthread_mutex_lock(&keys->lock);
	for (i = 0; i < keys->nsh && rv == CKR_OK; i++)
		rv = keys->f->C_CloseAllSessions(keys->sh[i].slot);
	pthread_mutex_unlock(&keys->lock);
	pthread_rwlock_unlock(&module_rw);
	return rv == CKR_OK ? 0 : token_err("C_CloseAllSessions", rv);
}

int
rf_keys_test_device_error(struct rf_keys *keys)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	int r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	if ((r = session_get(keys, 0, &s)) == 0 &&
	    (r = session_recover(keys, s, CKR_DEVICE_ERROR)) == 0 &&
	    (r = session_get(keys, 0, &s)) == 0)
		session_put(keys, 0, s);
	keys_unlock();
	return r;
}

void
rf_keys_test_drop_at_sign(struct rf_keys *keys)
{
	pthread_mutex_lock(&keys->lock);
	keys->test_drop_at_sign = 1;
	pthread_mutex_unlock(&keys->lock);
}

/* Tests only: lose the sessions between the audit append and signing. */
static void
test_drop_if_armed(struct rf_keys *keys)
{
	int armed;

	pthread_mutex_lock(&keys->lock);
	armed = keys->test_drop_at_sign;
	keys->test_drop_at_sign = 0;
	pthread_mutex_unlock(&keys->lock);
	if (armed)
		(void)!rf_keys_test_drop_sessions(keys);
}

/*
 * Append events under the keys' audit lock, durably: RF_ERR_AUDIT on
 * failure. Inside a transaction of the record's store connection the
 * leaves would be durable only at the caller's commit, after the token
 * acted: a caller's bug, refused (RF_ERR_INTERNAL) rather than trusted.
 */
static int
audit_append(struct rf_keys *keys, const struct rf_audit_event *evs, size_t n,
    const char *doing)
{
	int r;

	if (rf_store_in_transaction(rf_audit_store(keys->audit)))
		return rf_err_set(RF_ERR_INTERNAL,
		    "refusing to write the audit record inside an open store "
		    "transaction: it would not be durable first; %s",
		    doing);
	pthread_mutex_lock(&keys->audit_lock);
	r = rf_audit_append(keys->audit, evs, n, NULL);
	pthread_mutex_unlock(&keys->audit_lock);
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

int
rf_key_new_public(
    enum rf_key_alg alg, const uint8_t *spki, size_t len, struct rf_key **out)
{
	const unsigned char *p = spki;
	struct rf_key *key = NULL;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if ((key = calloc(1, sizeof(*key))) == NULL)
		return RF_ERR_ALLOC;
	key->alg = alg;
	key->sh = -1; /* in keyd's tokens, not ours */
	if (len > LONG_MAX ||
	    (key->pub = d2i_PUBKEY(NULL, &p, (long)len)) == NULL ||
	    p != spki + len) {
		r = rf_err_set(RF_ERR_MALFORMED,
		    "custody process sent a public key that does not parse");
		goto out;
	}
	if ((r = rf_keys_pub_id(key->pub, key->id)) != 0)
		goto out;
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
	pthread_mutex_init(&keys->audit_lock, NULL);
	*out = keys; /* the caller's */
	return 0;
}

struct rf_kc *
rf_keys_kc(const struct rf_keys *keys)
{
	return keys == NULL ? NULL : keys->kc;
}

static int
parse_id(const char *id, uint8_t out[ID_LEN])
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
static int
with_key_token(struct rf_keys *keys, session_op op, void *arg, const int *found,
    int first, int *sh, CK_RV *rvp)
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
		if ((r = with_session(keys, i, op, arg, rvp)) != 0)
			return r;
		if (*rvp != CKR_OK || *found) {
			*sh = i;
			break;
		}
	}
	return 0;
}

/* The store of the audit record, used under the audit lock. */
static struct rf_store *
keys_store(struct rf_keys *keys)
{
	return rf_audit_store(keys->audit);
}

/* The index of the token labelled label, or -1. */
static int
shard_index(struct rf_keys *keys, const char *label)
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
static int
key_where(struct rf_keys *keys, const char *id, struct where *w)
{
	uint8_t idbin[ID_LEN];
	struct rf_key_rec kr;
	size_t len = 0;
	int r;

	memset(w, 0, sizeof(*w));
	w->sh = -1;
	if ((r = parse_id(id, idbin)) != 0)
		return r;
	pthread_mutex_lock(&keys->audit_lock);
	r = rf_store_key_get(keys_store(keys), id, &kr);
	pthread_mutex_unlock(&keys->audit_lock);
	if (r != 0 && r != RF_ERR_NOT_FOUND)
		return r;
	if (r == 0) {
		w->recorded = 1;
		snprintf(w->state, sizeof(w->state), "%s", kr.state);
		w->sh = shard_index(keys, kr.token);
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

/* RF_ERR_KEY_DISABLED if the store says key signs nothing. */
static int
key_usable(struct rf_keys *keys, const struct rf_key *key)
{
	struct rf_key_rec kr;
	int r;

	pthread_mutex_lock(&keys->audit_lock);
	r = rf_store_key_get(keys_store(keys), key->id, &kr);
	pthread_mutex_unlock(&keys->audit_lock);
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

static int destroy_quiet(
    struct rf_keys *keys, int sh, const uint8_t *tid, size_t tidlen);

struct gen_arg {
	enum rf_key_alg alg;
	const char *label;
	const uint8_t *tid; /* TID_LEN random bytes: the new CKA_ID */
	struct rf_key *key; /* out */
	int r;
};

static CK_RV
gen_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct gen_arg *g = varg;
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = g->alg == RF_KEY_RSA_3072 ? 3072 : 2048;
	uint8_t e[3] = {0x01, 0x00, 0x01}; /* 65537 */
	const uint8_t *tid = g->tid;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ATTRIBUTE pubt[13], privt[16];
	CK_ULONG npub = 0, npriv = 0;
	struct rf_key *key = NULL;
	CK_RV rv;

	g->r = 0;
	/*
	 * The pair is found by a random CKA_ID, set here once: both objects
	 * are made neither modifiable nor copyable (PKCS#11 v2.40 section
	 * 4.4: CKA_MODIFIABLE and CKA_COPYABLE can only be set at creation),
	 * so that with the PIN nobody can turn CKA_SIGN back on, rename the
	 * key, or copy it to a session object. The key id (SPKI hash) is the
	 * public name; the store maps it to this CKA_ID.
	 */
#define ATTR(t, n, ty, ptr, len)                                               \
	do {                                                                   \
		t[n].type = (ty);                                              \
		t[n].pValue = (void *)(ptr);                                   \
		t[n].ulValueLen = (len);                                       \
		n++;                                                           \
	} while (0)
	ATTR(pubt, npub, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(pubt, npub, CKA_PRIVATE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_VERIFY, &yes, sizeof(yes));
	ATTR(pubt, npub, CKA_ENCRYPT, &no, sizeof(no));
	ATTR(pubt, npub, CKA_WRAP, &no, sizeof(no));
	ATTR(pubt, npub, CKA_VERIFY_RECOVER, &no, sizeof(no));
	ATTR(pubt, npub, CKA_MODIFIABLE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_COPYABLE, &no, sizeof(no));
	ATTR(pubt, npub, CKA_ID, tid, TID_LEN);
	ATTR(pubt, npub, CKA_LABEL, g->label, strlen(g->label));
	switch (g->alg) {
	case RF_KEY_EC_P256:
		ATTR(pubt, npub, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		break;
	case RF_KEY_EC_P384:
		ATTR(pubt, npub, CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
		break;
	default:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		ATTR(pubt, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		break;
	}
	ATTR(privt, npriv, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_SIGN, &yes, sizeof(yes));
	ATTR(privt, npriv, CKA_DECRYPT, &no, sizeof(no));
	ATTR(privt, npriv, CKA_UNWRAP, &no, sizeof(no));
	ATTR(privt, npriv, CKA_DERIVE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_SIGN_RECOVER, &no, sizeof(no));
	ATTR(privt, npriv, CKA_MODIFIABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_COPYABLE, &no, sizeof(no));
	ATTR(privt, npriv, CKA_ID, tid, TID_LEN);
	ATTR(privt, npriv, CKA_LABEL, g->label, strlen(g->label));
	if (mech.mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN)
		ATTR(pubt, npub, CKA_PUBLIC_EXPONENT, e, sizeof(e));
#undef ATTR
	rv = f->C_GenerateKeyPair(
	    s, &mech, pubt, npub, privt, npriv, &hpub, &hpriv);
	if (rv != CKR_OK)
		return rv;
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		g->r = RF_ERR_ALLOC;
		goto fail;
	}
	if ((rv = read_public(f, s, hpub, &key->alg, &key->pub, &g->r)) !=
		CKR_OK ||
	    g->r != 0)
		goto fail;
	if (key->alg != g->alg) {
		g->r = rf_err_set(RF_ERR_TOKEN,
		    "token made a %s key when asked for %s",
		    rf_key_alg_name(key->alg), rf_key_alg_name(g->alg));
		goto fail;
	}
	if ((g->r = rf_keys_pub_id(key->pub, key->id)) != 0 ||
	    (g->r = parse_id(key->id, key->idbin)) != 0)
		goto fail;
	memcpy(key->tid, tid, TID_LEN);
	key->tidlen = TID_LEN;
	g->key = key; /* handed to rf_keys_generate */
	return CKR_OK;
fail:
	/* Leave nothing half made in the token. */
	f->C_DestroyObject(s, hpriv);
	f->C_DestroyObject(s, hpub);
	rf_key_free(key);
	return rv;
}

/*
 * Destroy the keys of out[0..n) made by a batch that failed; free them.
 * kept[i] becomes 1 for a key made that could not be destroyed: its row
 * stays, so that the store still knows of it.
 */
static int
undo_generated(
    struct rf_keys *keys, struct rf_key **out, size_t n, uint8_t *kept)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		kept[i] = 0;
		if (out[i] == NULL)
			continue;
		if (destroy_quiet(
			keys, out[i]->sh, out[i]->tid, out[i]->tidlen) != 0) {
			bad = 1;
			kept[i] = 1;
		} else {
			/* Gone from the token: its row goes too. */
			pthread_mutex_lock(&keys->audit_lock);
			if (rf_store_key_forget(keys_store(keys), out[i]->id) !=
			    0)
				bad = 1;
			pthread_mutex_unlock(&keys->audit_lock);
		}
		rf_key_free(out[i]);
		out[i] = NULL;
	}
	return bad;
}

/*
 * Keys made one at a time (CA, OCSP signer, audit keys: every process loads
 * them) live in the first token, which every process logs in to at open;
 * keys made in batches (connections) are spread over all the tokens. SoftHSM
 * rewrites a token's token.object on every login, and another process
 * reading it at that moment can fail: the fewer tokens a process logs in
 * to, the fewer such moments.
 */
static int
generate(struct rf_keys *keys, const struct rf_keygen *reqs, size_t n,
    int spread, const struct rf_actor *who, struct rf_key **out)
{
	struct gen_arg g;
	struct rf_audit_event *evs = NULL;
	struct rf_key_rec *recs = NULL;
	char(*detail)[96] = NULL, (*pending)[65] = NULL, msg[MSG_MAX];
	uint8_t(*tids)[TID_LEN] = NULL, *kept = NULL;
	int *shs = NULL;
	CK_RV rv = CKR_OK;
	size_t i;
	int noted = 0, audit_failed = 0, r = RF_ERR_INTERNAL;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	for (i = 0; i < n; i++) {
		if (reqs[i].alg != RF_KEY_EC_P256 &&
		    reqs[i].alg != RF_KEY_EC_P384 &&
		    reqs[i].alg != RF_KEY_RSA_2048 &&
		    reqs[i].alg != RF_KEY_RSA_3072)
			return rf_err_set(RF_ERR_ARG,
			    "unknown key algorithm %d", reqs[i].alg);
		if (reqs[i].label == NULL || reqs[i].label[0] == '\0' ||
		    strlen(reqs[i].label) > 64)
			return rf_err_set(RF_ERR_ARG,
			    "a key label of 1 to 64 characters is needed");
	}
	if (n == 0)
		return 0;
	if (rf_store_in_transaction(keys_store(keys)))
		return rf_err_set(RF_ERR_INTERNAL,
		    "refusing to make keys inside an open store transaction");
	if ((evs = calloc(n, sizeof(*evs))) == NULL ||
	    (recs = calloc(n, sizeof(*recs))) == NULL ||
	    (detail = calloc(n, sizeof(*detail))) == NULL ||
	    (pending = calloc(n, sizeof(*pending))) == NULL ||
	    (tids = calloc(n, sizeof(*tids))) == NULL ||
	    (kept = calloc(n, 1)) == NULL ||
	    (shs = calloc(n, sizeof(*shs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	/*
	 * The store learns each key's random CKA_ID before the token makes
	 * it (state "generating", id "pending-<CKA_ID>"), then its id once
	 * made ("generated", until the caller records its purpose with
	 * rf_store_key_add). A process killed in between leaves a key the
	 * store knows of, never one it does not.
	 */
	if (RAND_bytes((unsigned char *)tids, (int)(n * TID_LEN)) != 1) {
		r = rf_err_set(RF_ERR_INTERNAL, "no random bytes");
		goto out;
	}
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&keys->lock);
		shs[i] =
		    spread ? (int)(keys->next++ % (unsigned int)keys->nsh) : 0;
		snprintf(recs[i].token, sizeof(recs[i].token), "%s",
		    keys->sh[shs[i]].label);
		pthread_mutex_unlock(&keys->lock);
		rf_hex(tids[i], TID_LEN, recs[i].token_id);
		snprintf(pending[i], sizeof(pending[i]), "pending-%.32s",
		    recs[i].token_id);
		snprintf(recs[i].id, sizeof(recs[i].id), "%s", pending[i]);
		snprintf(recs[i].alg, sizeof(recs[i].alg), "%s",
		    rf_key_alg_name(reqs[i].alg));
		snprintf(recs[i].purpose, sizeof(recs[i].purpose), "-");
		snprintf(recs[i].tenant, sizeof(recs[i].tenant), "%s",
		    reqs[i].tenant ? reqs[i].tenant : "");
		snprintf(recs[i].state, sizeof(recs[i].state), "generating");
		recs[i].created = rf_now();
	}
	pthread_mutex_lock(&keys->audit_lock);
	r = rf_store_key_note_many(keys_store(keys), recs, n);
	pthread_mutex_unlock(&keys->audit_lock);
	if (r != 0) {
		r = rf_err_set(r,
		    "the store could not record the keys to make (%s); "
		    "nothing was made",
		    rf_err_msg(r));
		goto out;
	}
	noted = 1;
	for (i = 0; i < n; i++) {
		memset(&g, 0, sizeof(g));
		g.alg = reqs[i].alg;
		g.label = reqs[i].label;
		g.tid = tids[i];
		if ((r = with_session(keys, shs[i], gen_op, &g, &rv)) != 0)
			goto out;
		if (rv != CKR_OK) {
			r = token_err("C_GenerateKeyPair", rv);
			goto out;
		}
		if ((r = g.r) != 0)
			goto out;
		out[i] = g.key;
		out[i]->sh = shs[i];
		snprintf(detail[i], sizeof(detail[i]), "%s %s",
		    rf_key_alg_name(reqs[i].alg), reqs[i].label);
		evs[i].type = "keygen";
		evs[i].key_id = out[i]->id;
		evs[i].tenant = reqs[i].tenant;
		evs[i].actor = who ? who->actor : NULL;
		evs[i].source = who ? who->source : NULL;
		evs[i].detail = detail[i];
		snprintf(recs[i].id, sizeof(recs[i].id), "%s", out[i]->id);
		snprintf(recs[i].state, sizeof(recs[i].state), "generated");
	}
	/* Each "generating" row becomes the key's own. */
	pthread_mutex_lock(&keys->audit_lock);
	r = rf_store_key_note_many(keys_store(keys), recs, n);
	pthread_mutex_unlock(&keys->audit_lock);
	if (r != 0) {
		r = rf_err_set(r,
		    "the store could not record the new %s (%s); %s",
		    n == 1 ? "key" : "keys", rf_err_msg(r),
		    n == 1 ? "the new key was destroyed"
			   : "the new keys were destroyed");
		goto out;
	}
	/* A key without its record must not exist. */
	if ((r = audit_append(keys, evs, n,
		 n == 1 ? "the new key was destroyed"
			: "the new keys were destroyed")) != 0) {
		audit_failed = 1;
		goto out;
	}
	r = 0;
out:
	if (r != 0) {
		snprintf(msg, sizeof(msg), "%s", rf_err_msg(r));
		if (kept != NULL && undo_generated(keys, out, n, kept) != 0)
			r = rf_err_set(r,
			    "%s; a new key could not be destroyed: "
			    "see 'ringfence keys list'",
			    audit_failed ? "audit record could not be appended"
					 : msg);
		else
			r = rf_err_set(r, "%s", msg);
		/* Rows of keys never made, or made and destroyed. */
		pthread_mutex_lock(&keys->audit_lock);
		for (i = 0; noted && i < n; i++)
			if (!kept[i] &&
			    rf_store_key_forget(keys_store(keys), pending[i]) !=
				0)
				rf_err_clear();
		pthread_mutex_unlock(&keys->audit_lock);
		if (noted)
			r = rf_err_set(r, "%s", msg);
	}
	free(shs);
	free(kept);
	free(tids);
	free(pending);
	free(detail);
	free(recs);
	free(evs);
	return r;
}

int
rf_keys_generate(struct rf_keys *keys, enum rf_key_alg alg, const char *label,
    const char *tenant, const struct rf_actor *who, struct rf_key **out)
{
	struct rf_keygen req = {alg, label, tenant};

	*out = NULL;
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, &req, 1, who, out);
	return generate(keys, &req, 1, 0, who, out);
}

int
rf_keys_generate_many(struct rf_keys *keys, const struct rf_keygen *reqs,
    size_t n, const struct rf_actor *who, struct rf_key **out)
{
	if (keys->kc != NULL)
		return rf_kc_generate_many(keys->kc, reqs, n, who, out);
	return generate(keys, reqs, n, 1, who, out);
}

struct load_arg {
	const uint8_t *id; /* CKA_ID */
	size_t idlen;
	struct rf_key *key;
	int found;
	int r;
};

static CK_RV
load_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct load_arg *l = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	l->r = 0;
	l->found = 0;
	if ((rv = find_object(keys->f, s, CKO_PRIVATE_KEY, l->id, l->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = find_object(
		 keys->f, s, CKO_PUBLIC_KEY, l->id, l->idlen, &hpub)) != CKR_OK)
		return rv;
	if (hpriv == CK_INVALID_HANDLE || hpub == CK_INVALID_HANDLE)
		return CKR_OK; /* not in this token */
	l->found = 1;
	return read_public(keys->f, s, hpub, &l->key->alg, &l->key->pub, &l->r);
}

int
rf_keys_load(struct rf_keys *keys, const char *id, struct rf_key **out)
{
	struct load_arg l;
	struct rf_key *key = NULL;
	struct where w;
	char got[65];
	CK_RV rv = CKR_OK;
	int r = RF_ERR_INTERNAL;

	*out = NULL;
	if (keys->kc != NULL)
		return rf_kc_load(keys->kc, id, out);
	if ((key = calloc(1, sizeof(*key))) == NULL)
		return RF_ERR_ALLOC;
	if ((r = parse_id(id, key->idbin)) != 0 ||
	    (r = key_where(keys, id, &w)) != 0)
		goto out;
	snprintf(key->id, sizeof(key->id), "%s", id);
	memcpy(key->tid, w.tid, w.tidlen);
	key->tidlen = w.tidlen;
	memset(&l, 0, sizeof(l));
	l.id = key->tid;
	l.idlen = key->tidlen;
	l.key = key;
	if ((r = with_key_token(
		 keys, load_op, &l, &l.found, w.sh, &key->sh, &rv)) != 0)
		goto out;
	if (rv != CKR_OK) {
		r = token_err("C_GetAttributeValue", rv);
		goto out;
	}
	if (!l.found) {
		/* A token taken away under a running process (keyd) is named
		 * as such, not as a missing key. */
		r = rf_keys_token_gone(&keys->cfg,
		    rf_err_set(RF_ERR_KEY_NOT_FOUND,
			"no key pair with id %s in token %s", id,
			keys->cfg.token));
		goto out;
	}
	if ((r = l.r) != 0)
		goto out;
	/* The id names the public key: check that it still does. */
	if ((r = rf_keys_pub_id(key->pub, got)) != 0)
		goto out;
	if (strcasecmp(got, id) != 0) {
		r = rf_err_set(RF_ERR_TOKEN,
		    "key %s in the token has a public key hashing "
		    "to %s",
		    id, got);
		goto out;
	}
	snprintf(key->id, sizeof(key->id), "%s", got); /* lowercase */
	*out = key;				       /* owned by the caller */
	key = NULL;
	r = 0;
out:
	rf_key_free(key);
	return r;
}

struct custody_arg {
	const uint8_t *id; /* CKA_ID */
	size_t idlen;
	int found;
	int v[5]; /* sensitive, extractable, always s., never e., sign */
};

static CK_RV
custody_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	static const CK_ATTRIBUTE_TYPE types[5] = {CKA_SENSITIVE,
	    CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE,
	    CKA_SIGN};
	struct custody_arg *c = varg;
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	size_t i;

	if ((rv = find_object(
		 keys->f, s, CKO_PRIVATE_KEY, c->id, c->idlen, &h)) != CKR_OK)
		return rv;
	if ((c->found = h != CK_INVALID_HANDLE) == 0)
		return CKR_OK;
	for (i = 0; i < 5; i++)
		if ((rv = get_bool(keys->f, s, h, types[i], &c->v[i])) !=
		    CKR_OK)
			return rv;
	return CKR_OK;
}

/*
 * Custody attributes of key id (CKA_ID tid), in token sh or (sh < 0)
 * wherever it is, token hint first.
 */
static int
custody(struct rf_keys *keys, const char *id, const uint8_t *tid, size_t tidlen,
    int sh, int hint, struct custody_arg *c)
{
	CK_RV rv = CKR_OK;
	int r;

	memset(c, 0, sizeof(*c));
	c->id = tid;
	c->idlen = tidlen;
	if (sh < 0)
		r = with_key_token(
		    keys, custody_op, c, &c->found, hint, &sh, &rv);
	else
		r = with_session(keys, sh, custody_op, c, &rv);
	if (r != 0)
		return r;
	c->id = NULL;
	if (rv != CKR_OK)
		return token_err("C_GetAttributeValue", rv);
	if (!c->found)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "no private key with id %s in token %s", id,
		    keys->cfg.token);
	return 0;
}

int
rf_keys_custody(struct rf_keys *keys, const char *id, int *sensitive,
    int *extractable, int *always_sensitive, int *never_extractable)
{
	struct custody_arg c;
	struct where w;
	int r;

	if (keys->kc != NULL) {
		if ((r = rf_kc_custody(keys->kc, id, c.v)) != 0)
			return r;
	} else if ((r = key_where(keys, id, &w)) != 0 ||
	    (r = custody(keys, id, w.tid, w.tidlen, -1, w.sh, &c)) != 0)
		return r;
	*sensitive = c.v[0];
	*extractable = c.v[1];
	*always_sensitive = c.v[2];
	*never_extractable = c.v[3];
	return 0;
}

struct list_arg {
	int (*fn)(void *arg, const struct rf_key_info *ki);
	void *arg;
	int r;
	const char *label; /* of the token being listed */
};

static CK_RV
list_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	static const CK_ATTRIBUTE_TYPE types[5] = {CKA_SIGN, CKA_SENSITIVE,
	    CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE};
	struct list_arg *la = varg;
	CK_FUNCTION_LIST_PTR f = keys->f;
	CK_OBJECT_HANDLE *hs = NULL, hpub;
	struct rf_key_info ki;
	uint8_t buf[ATTR_MAX];
	EVP_PKEY *pub;
	size_t n = 0, i, len, j;
	int *v[5], r;
	CK_RV rv;

	/* Collect handles first: no other call while a search is active. */
	if ((rv = find_all(f, s, CKO_PRIVATE_KEY, &hs, &n)) != CKR_OK)
		return rv;
	for (i = 0; i < n && la->r == 0; i++) {
		memset(&ki, 0, sizeof(ki));
		v[0] = &ki.can_sign;
		v[1] = &ki.sensitive;
		v[2] = &ki.extractable;
		v[3] = &ki.always_sensitive;
		v[4] = &ki.never_extractable;
		for (j = 0; j < 5; j++)
			if ((rv = get_bool(f, s, hs[i], types[j], v[j])) !=
			    CKR_OK)
				goto out;
		if (get_bytes(f, s, hs[i], CKA_LABEL, buf, sizeof(ki.label) - 1,
			&len) == CKR_OK)
			memcpy(ki.label, buf, len);
		snprintf(ki.token, sizeof(ki.token), "%s", la->label);
		if ((rv = get_bytes(f, s, hs[i], CKA_ID, buf, sizeof(buf),
			 &len)) != CKR_OK)
			goto out;
		/* The key id is the hash of the public key found by CKA_ID
		 * (for keys made before random ids, CKA_ID is that hash). */
		if (len > 0 && len <= TID_MAX) {
			rf_hex(buf, len, ki.token_id);
			if ((rv = find_object(f, s, CKO_PUBLIC_KEY, buf, len,
				 &hpub)) != CKR_OK)
				goto out;
			pub = NULL;
			if (hpub != CK_INVALID_HANDLE &&
			    read_public(f, s, hpub, &ki.alg, &pub, &r) ==
				CKR_OK) {
				if (r != 0 || rf_keys_pub_id(pub, ki.id) != 0) {
					ki.alg = RF_KEY_NONE;
					ki.id[0] = '\0';
				}
				EVP_PKEY_free(pub);
				rf_err_clear();
			}
			if (ki.id[0] == '\0' && len == ID_LEN)
				rf_hex(buf, len, ki.id);
		}
		la->r = la->fn(la->arg, &ki);
	}
out:
	free(hs);
	return rv;
}

int
rf_keys_list(struct rf_keys *keys,
    int (*fn)(void *arg, const struct rf_key_info *ki), void *arg)
{
	struct list_arg la = {fn, arg, 0, NULL};
	CK_RV rv = CKR_OK;
	int i, r;

	if (keys->kc != NULL)
		return rf_kc_list(keys->kc, fn, arg);
	for (i = 0; i < keys->nsh && la.r == 0; i++) {
		la.label = keys->sh[i].label;
		if ((r = with_session(keys, i, list_op, &la, &rv)) != 0)
			return r;
		if (rv != CKR_OK)
			return token_err("C_FindObjects", rv);
	}
	return la.r;
}

/*
 * Disable and destroy. A key cannot be changed in the token once made
 * (CKA_MODIFIABLE false), so disabling it is a state of its record, which
 * the signing path checks (key_usable); taking it out of service for good
 * destroys both of its objects, the intent recorded before the act
 * ("destroy-intent") and the result after it ("destroy").
 */

/* Destroy both objects with CKA_ID id; found says whether there were any. */
struct destroy_arg {
	const uint8_t *id;
	size_t idlen;
	int found;
};

static CK_RV
destroy_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_arg *a = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	a->found = 0;
	if ((rv = find_object(keys->f, s, CKO_PRIVATE_KEY, a->id, a->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = find_object(
		 keys->f, s, CKO_PUBLIC_KEY, a->id, a->idlen, &hpub)) != CKR_OK)
		return rv;
	if (hpriv == CK_INVALID_HANDLE && hpub == CK_INVALID_HANDLE)
		return CKR_OK;
	a->found = 1;
	if (hpriv != CK_INVALID_HANDLE &&
	    (rv = keys->f->C_DestroyObject(s, hpriv)) != CKR_OK)
		return rv;
	if (hpub != CK_INVALID_HANDLE &&
	    (rv = keys->f->C_DestroyObject(s, hpub)) != CKR_OK)
		return rv;
	return CKR_OK;
}

/* Whether the token holds an object with CKA_ID id; nothing changes. */
static CK_RV
probe_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_arg *a = varg;
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	a->found = 0;
	if ((rv = find_object(keys->f, s, CKO_PRIVATE_KEY, a->id, a->idlen,
		 &hpriv)) != CKR_OK ||
	    (rv = find_object(
		 keys->f, s, CKO_PUBLIC_KEY, a->id, a->idlen, &hpub)) != CKR_OK)
		return rv;
	a->found = hpriv != CK_INVALID_HANDLE || hpub != CK_INVALID_HANDLE;
	return CKR_OK;
}

static int
destroy_quiet(struct rf_keys *keys, int sh, const uint8_t *tid, size_t tidlen)
{
	struct destroy_arg a = {tid, tidlen, 0};
	CK_RV rv = CKR_OK;
	int r;

	if ((r = with_session(keys, sh, destroy_op, &a, &rv)) != 0)
		return r;
	return rv == CKR_OK ? 0 : token_err("C_DestroyObject", rv);
}

/*
 * Set the store state of the recorded keys among ids[0..n) with want[i]
 * set, in one transaction; a key already destroyed keeps that state, and
 * one being destroyed is not disabled.
 * hit[i] becomes 1 for each row changed.
 */
static int
set_states(struct rf_keys *keys, const char *const *ids, const uint8_t *want,
    size_t n, const char *state, uint8_t *hit)
{
	struct rf_store *st = keys_store(keys);
	struct rf_key_rec kr;
	size_t i;
	int r;

	if (rf_store_in_transaction(st))
		return rf_err_set(RF_ERR_INTERNAL,
		    "refusing to change key states inside an open store "
		    "transaction");
	pthread_mutex_lock(&keys->audit_lock);
	if ((r = rf_store_begin(st)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++) {
		hit[i] = 0;
		if (!want[i])
			continue;
		if ((r = rf_store_key_get(st, ids[i], &kr)) ==
		    RF_ERR_NOT_FOUND) {
			rf_err_clear();
			r = 0;
			continue;
		}
		/* Destroyed stays; a destroy under way is not undone. */
		if (r != 0 || strcmp(kr.state, "destroyed") == 0 ||
		    (strcmp(kr.state, "destroying") == 0 &&
			strcmp(state, "disabled") == 0))
			continue;
		if ((r = rf_store_key_set_state(st, ids[i], state)) == 0)
			hit[i] = 1;
	}
	if (r != 0)
		rf_store_rollback(st);
	else
		r = rf_store_commit(st);
out:
	pthread_mutex_unlock(&keys->audit_lock);
	return r;
}

/* One leaf of type for each ids[i] with pick[i] set, in one append. */
static int
admin_leaves(struct rf_keys *keys, const char *type, const char *const *ids,
    const uint8_t *pick, const char *const *detail, size_t n,
    const struct rf_actor *who, const char *doing)
{
	struct rf_audit_event *evs;
	size_t i, k = 0;
	int r;

	if ((evs = calloc(n ? n : 1, sizeof(*evs))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	for (i = 0; i < n; i++) {
		if (!pick[i])
			continue;
		evs[k].type = type;
		evs[k].key_id = ids[i];
		evs[k].actor = who ? who->actor : NULL;
		evs[k].source = who ? who->source : NULL;
		evs[k].detail = detail ? detail[i] : NULL;
		k++;
	}
	r = k > 0 ? audit_append(keys, evs, k, doing) : 0;
	free(evs);
	return r;
}

/*
 * rf_keys_disable(_many): the recorded keys among ids become "disabled"
 * in the store. single: one key, which must exist; a key the store does
 * not record but the token holds is recorded as disabled.
 */
static int
disable_ids(struct rf_keys *keys, const char *const *ids, size_t n, int single,
    const struct rf_actor *who, size_t *done)
{
	struct rf_key *key = NULL;
	struct rf_key_rec kr;
	struct where w;
	uint8_t *want = NULL, *hit = NULL;
	char msg[128];
	size_t i, k = 0;
	int r = RF_ERR_INTERNAL;

	*done = 0;
	if (n == 0)
		return 0;
	if ((want = calloc(n, 1)) == NULL || (hit = calloc(n, 1)) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = key_where(keys, ids[i], &w)) != 0)
			goto out;
		want[i] = 1;
		if (!single || w.recorded)
			continue;
		/* Not recorded: record it, disabled, if the token holds it. */
		if ((r = rf_keys_load(keys, ids[i], &key)) != 0)
			goto out;
		memset(&kr, 0, sizeof(kr));
		snprintf(kr.id, sizeof(kr.id), "%s", key->id);
		snprintf(
		    kr.alg, sizeof(kr.alg), "%s", rf_key_alg_name(key->alg));
		snprintf(kr.purpose, sizeof(kr.purpose), "-");
		snprintf(kr.state, sizeof(kr.state), "generated");
		kr.created = rf_now();
		rf_hex(key->tid, key->tidlen, kr.token_id);
		pthread_mutex_lock(&keys->audit_lock);
		r = rf_store_key_note_many(keys_store(keys), &kr, 1);
		pthread_mutex_unlock(&keys->audit_lock);
		if (r != 0)
			goto out;
	}
	if ((r = set_states(keys, ids, want, n, "disabled", hit)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		k += hit[i];
	if (single && k == 0) {
		r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "key %s is destroyed already", ids[0]);
		goto out;
	}
	snprintf(msg, sizeof(msg),
	    "%zu keys were disabled in the store, without a leaf", k);
	if ((r = admin_leaves(
		 keys, "key-disable", ids, hit, NULL, n, who, msg)) != 0)
		goto out;
	*done = k;
	r = 0;
out:
	rf_key_free(key);
	free(want);
	free(hit);
	return r;
}

int
rf_keys_disable(
    struct rf_keys *keys, const char *id, const struct rf_actor *who)
{
	size_t done;

	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, &id, 1, 0, who, NULL);
	return disable_ids(keys, &id, 1, 1, who, &done);
}

int
rf_keys_disable_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done)
{
	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, ids, n, 0, who, done);
	return disable_ids(keys, ids, n, 0, who, done);
}

/* A key's CKA_ID as a sort key: length first, then the bytes. */
struct tident {
	uint8_t len;
	uint8_t b[TID_MAX];
	size_t idx; /* in the caller's ids */
};

static int
tident_cmp(const void *a, const void *b)
{
	const struct tident *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->b, y->b, TID_MAX);
}

/*
 * Many keys at once: one pass over each token's objects instead of one
 * C_FindObjects per key. Tokens such as SoftHSM's file store scan every
 * object on each search, so per-key searches cost O(keys x objects).
 */
struct destroy_many_arg {
	struct tident *t; /* sorted */
	size_t n;
	uint8_t *found; /* per caller's id */
};

static CK_RV
destroy_many_class(struct rf_keys *keys, CK_SESSION_HANDLE s,
    struct destroy_many_arg *a, CK_OBJECT_CLASS cls)
{
	CK_OBJECT_HANDLE *hs = NULL;
	struct tident want, *hit, **hits = NULL;
	size_t nhs = 0, i, len;
	CK_RV rv;

	rv = find_all(keys->f, s, cls, &hs, &nhs);
	/*
	 * Read every CKA_ID before changing anything: a file-backed token
	 * rescans its whole store after each change, so reads interleaved
	 * with changes would each pay for a rescan.
	 */
	if (rv == CKR_OK &&
	    (hits = calloc(nhs ? nhs : 1, sizeof(*hits))) == NULL)
		rv = CKR_HOST_MEMORY;
	for (i = 0; rv == CKR_OK && i < nhs; i++) {
		memset(&want, 0, sizeof(want));
		if (get_bytes(keys->f, s, hs[i], CKA_ID, want.b, sizeof(want.b),
			&len) != CKR_OK ||
		    len == 0)
			continue; /* not one of ours */
		want.len = (uint8_t)len;
		if ((hit = bsearch(
			 &want, a->t, a->n, sizeof(*a->t), tident_cmp)) != NULL)
			hits[i] = hit;
	}
	for (i = 0; rv == CKR_OK && i < nhs; i++) {
		if (hits[i] == NULL)
			continue;
		if ((rv = keys->f->C_DestroyObject(s, hs[i])) == CKR_OK)
			a->found[hits[i]->idx] = 1;
	}
	free(hits);
	free(hs);
	return rv;
}

static CK_RV
destroy_many_op(struct rf_keys *keys, CK_SESSION_HANDLE s, void *varg)
{
	struct destroy_many_arg *a = varg;
	CK_RV rv;

	if ((rv = destroy_many_class(keys, s, a, CKO_PRIVATE_KEY)) != CKR_OK)
		return rv;
	return destroy_many_class(keys, s, a, CKO_PUBLIC_KEY);
}

/*
 * rf_keys_destroy(_many). For each key not already destroyed: its record
 * becomes "destroying" and a "destroy-intent" leaf is durable; then its
 * objects are destroyed in the token; then the record becomes "destroyed"
 * and a "destroy" leaf says whether the token held it. A run killed in
 * between is finished by running it again. single: one key, which must
 * be in the token or recorded as live.
 */
static int
destroy_ids(struct rf_keys *keys, const char *const *ids, size_t n, int single,
    const struct rf_actor *who, size_t *done)
{
	struct destroy_many_arg a;
	struct destroy_arg d;
	struct where w;
	uint8_t *want = NULL, *hit = NULL;
	const char **detail = NULL;
	char msg[160];
	CK_RV rv = CKR_OK;
	size_t i, k = 0, nt = 0;
	int sh = -1, hint = -1, r = RF_ERR_INTERNAL;

	*done = 0;
	memset(&a, 0, sizeof(a));
	if (n == 0)
		return 0;
	if ((want = calloc(n, 1)) == NULL || (hit = calloc(n, 1)) == NULL ||
	    (a.found = calloc(n, 1)) == NULL ||
	    (detail = calloc(n, sizeof(*detail))) == NULL ||
	    (a.t = calloc(n, sizeof(*a.t))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	memset(&d, 0, sizeof(d));
	for (i = 0; i < n; i++) {
		if ((r = key_where(keys, ids[i], &w)) != 0)
			goto out;
		if (single) {
			d.id = a.t[0].b;
			memcpy(a.t[0].b, w.tid, w.tidlen);
			d.idlen = w.tidlen;
			hint = w.sh;
			if ((r = with_key_token(keys, probe_op, &d, &d.found,
				 hint, &sh, &rv)) != 0)
				goto out;
			if (rv != CKR_OK) {
				r = token_err("C_FindObjects", rv);
				goto out;
			}
			if (!d.found &&
			    (!w.recorded ||
				strcmp(w.state, "destroyed") == 0)) {
				r = rf_err_set(RF_ERR_KEY_NOT_FOUND,
				    "no key with id %s in token %s", ids[i],
				    keys->cfg.token);
				goto out;
			}
			d.found = 0;
			a.t[0].len = (uint8_t)w.tidlen;
			a.t[0].idx = 0;
			want[0] = 1;
			nt = 1;
			continue;
		}
		if (w.recorded && strcmp(w.state, "destroyed") == 0)
			continue;
		want[i] = 1;
		a.t[nt].len = (uint8_t)w.tidlen;
		memcpy(a.t[nt].b, w.tid, w.tidlen);
		a.t[nt].idx = i;
		nt++;
	}
	if (nt == 0) {
		r = 0;
		goto out;
	}
	/* The intent, durable before the act. */
	snprintf(msg, sizeof(msg), "nothing was destroyed");
	if ((r = set_states(keys, ids, want, n, "destroying", hit)) != 0 ||
	    (r = admin_leaves(
		 keys, "destroy-intent", ids, want, NULL, n, who, msg)) != 0)
		goto out;
	if (single) {
		d.id = a.t[0].b;
		d.idlen = a.t[0].len;
		if ((r = with_key_token(
			 keys, destroy_op, &d, &d.found, hint, &sh, &rv)) != 0)
			goto out;
		a.found[0] = (uint8_t)d.found;
	} else {
		qsort(a.t, nt, sizeof(*a.t), tident_cmp);
		a.n = nt;
		for (i = 0; i < (size_t)keys->nsh && rv == CKR_OK; i++)
			if ((r = with_session(
				 keys, (int)i, destroy_many_op, &a, &rv)) != 0)
				goto out;
	}
	if (rv != CKR_OK) {
		r = token_err("C_DestroyObject", rv);
		goto out;
	}
	for (i = 0; i < n; i++) {
		k += a.found[i];
		detail[i] =
		    a.found[i] ? "destroyed in the token" : "not in the token";
	}
	snprintf(msg, sizeof(msg),
	    "%zu keys were destroyed in the token; run again to record it", k);
	if ((r = set_states(keys, ids, want, n, "destroyed", hit)) != 0 ||
	    (r = admin_leaves(
		 keys, "destroy", ids, want, detail, n, who, msg)) != 0)
		goto out;
	*done = k;
	r = 0;
out:
	free(want);
	free(hit);
	free(a.found);
	free(a.t);
	free(detail);
	return r;
}

int
rf_keys_destroy(
    struct rf_keys *keys, const char *id, const struct rf_actor *who)
{
	size_t done;

	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, &id, 1, 1, who, NULL);
	return destroy_ids(keys, &id, 1, 1, who, &done);
}

int
rf_keys_destroy_many(struct rf_keys *keys, const char *const *ids, size_t n,
    const struct rf_actor *who, size_t *done)
{
	if (keys->kc != NULL)
		return rf_kc_disable_many(keys->kc, ids, n, 1, who, done);
	return destroy_ids(keys, ids, n, 0, who, done);
}

/*
 * Signing
 */

#define DIGEST_MAX 48 /* SHA-384 */

struct sign_feed;

/* One thread's share of a batch. */
struct sign_job {
	struct rf_keys *keys;
	const struct rf_key *key;
	const struct rf_sign_req *reqs; /* NULL when measuring */
	const uint8_t (*dig)[DIGEST_MAX];
	size_t diglen;
	struct rf_sig *sigs;	/* NULL when measuring */
	int prehashed;		/* reqs[i].msg is the digest dig[i] */
	size_t from, to;	/* without a feed */
	struct sign_feed *feed; /* or: blocks claimed from it */
	int r;
	char msg[MSG_MAX];
};

/*
 * Sign item i in session s with the private key h. ECDSA: the token signs
 * the digest made here (SoftHSM has no CKM_ECDSA_SHA256) and returns r || s,
 * encoded here as DER. RSA: the token hashes (CKM_SHA256_RSA_PKCS, or
 * CKM_SHA256_RSA_PKCS_PSS with RFC 4055 parameters). *r gets our errors.
 */
static CK_RV
sign_one(struct sign_job *job, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    size_t i, int *r)
{
	CK_FUNCTION_LIST_PTR f = job->keys->f;
	const struct rf_sign_req *req = job->reqs ? &job->reqs[i] : NULL;
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	uint8_t raw[RAW_SIG_MAX], *in;
	CK_ULONG inlen, len = sizeof(raw);
	struct rf_sig *out = job->sigs ? &job->sigs[i] : NULL;
	CK_RV rv;

	*r = 0;
	if (job->key->alg == RF_KEY_EC_P256 ||
	    job->key->alg == RF_KEY_EC_P384) {
		in = (uint8_t *)job->dig[req ? i : 0];
		inlen = job->diglen;
	} else {
		mech.mechanism = CKM_SHA256_RSA_PKCS;
		if (req != NULL && req->scheme == RF_SIG_RSA_PSS) {
			mech.mechanism = CKM_SHA256_RSA_PKCS_PSS;
			mech.pParameter = &pss;
			mech.ulParameterLen = sizeof(pss);
		}
		in = req ? (uint8_t *)req->msg : (uint8_t *)job->dig[0];
		inlen = req ? req->msglen : job->diglen;
	}
	if (in == NULL)
		in = raw; /* empty message: any valid pointer */
	if ((rv = f->C_SignInit(s, &mech, h)) != CKR_OK)
		return rv;
	if ((rv = f->C_Sign(s, in, inlen, raw, &len)) != CKR_OK)
		return rv;
	if (out == NULL)
		return CKR_OK; /* measuring: discarded */
	if (mech.mechanism == CKM_ECDSA) {
		*r = rf_keys_ecdsa_raw_to_der(raw, len, &out->sig, &out->len);
		return CKR_OK;
	}
	if ((out->sig = malloc(len)) == NULL) {
		*r = RF_ERR_ALLOC;
		return CKR_OK;
	}
	memcpy(out->sig, raw, len);
	out->len = len;
	return CKR_OK;
}

/* Our error for a CK_RV from signing. */
static int
sign_err(const struct rf_key *key, CK_RV rv)
{
	if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
		return rf_err_set(RF_ERR_KEY_DISABLED,
		    "key %s is disabled (CKA_SIGN is false)", key->id);
	if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID)
		return rf_err_set(RF_ERR_KEY_NOT_FOUND,
		    "key %s is no longer in the token", key->id);
	return token_err("C_Sign", rv);
}

/*
 * A pipelined batch's feed (sign_pipelined): the leaves of items
 * [0, durable) are in the record; signing threads claim blocks from next.
 */
struct sign_feed {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next, durable, n;
	int stop; /* a failure somewhere: claim nothing more */
};

/*
 * The next block of items with durable leaves, waiting for the appender
 * while there are none yet; 0 when nothing is left to sign.
 */
static int
feed_claim(struct sign_feed *fd, size_t *from, size_t *to)
{
	int ok;

	pthread_mutex_lock(&fd->mu);
	while (!fd->stop && fd->next == fd->durable && fd->durable < fd->n)
		pthread_cond_wait(&fd->cv, &fd->mu);
	if ((ok = !fd->stop && fd->next < fd->durable)) {
		*from = fd->next;
		*to = fd->durable - *from < SIGN_BLOCK ? fd->durable
						       : *from + SIGN_BLOCK;
		fd->next = *to;
	}
	pthread_mutex_unlock(&fd->mu);
	return ok;
}

/* Items [0, durable) may be signed now; or, with stop, none any more. */
static void
feed_set(struct sign_feed *fd, size_t durable, int stop)
{
	pthread_mutex_lock(&fd->mu);
	if (durable > fd->durable)
		fd->durable = durable;
	fd->stop |= stop;
	pthread_cond_broadcast(&fd->cv);
	pthread_mutex_unlock(&fd->mu);
}

/* A signing thread's session and the key's handle in it. */
struct sign_sess {
	CK_SESSION_HANDLE s; /* CK_INVALID_HANDLE: none (not to be put back) */
	CK_OBJECT_HANDLE h;  /* CK_INVALID_HANDLE: not looked up yet */
	CK_RV rv;	     /* the last token return value */
	int retried;	     /* a lost session was reopened once already */
};

/*
 * Sign items [i, to) in ss's session. A lost session is reopened once per
 * thread and signing resumes from the item that failed.
 */
static int
sign_range(struct sign_job *job, struct sign_sess *ss, size_t i, size_t to)
{
	struct rf_keys *keys = job->keys;
	int r = 0;

	for (;;) {
		ss->rv = CKR_OK;
		if (ss->h == CK_INVALID_HANDLE) {
			ss->rv = find_object(keys->f, ss->s, CKO_PRIVATE_KEY,
			    job->key->tid, job->key->tidlen, &ss->h);
			if (ss->rv == CKR_OK && ss->h == CK_INVALID_HANDLE)
				return sign_err(
				    job->key, CKR_KEY_HANDLE_INVALID);
		}
		while (ss->rv == CKR_OK && r == 0 && i < to)
			if ((ss->rv = sign_one(job, ss->s, ss->h, i, &r)) ==
				CKR_OK &&
			    r == 0)
				i++;
		if (ss->rv == CKR_OK)
			return r;
		if (!session_lost(ss->rv) || ss->retried)
			return sign_err(job->key, ss->rv);
		/* Reopen and retry once, from the item that failed. */
		ss->retried = 1;
		ss->h = CK_INVALID_HANDLE;
		r = session_recover(keys, ss->s, ss->rv);
		ss->s = CK_INVALID_HANDLE;
		if (r != 0 ||
		    (r = session_get(keys, job->key->sh, &ss->s)) != 0) {
			ss->s = CK_INVALID_HANDLE;
			return r;
		}
	}
}

/* Nothing leaves before it verifies with the public key. */
static int
verify_range(const struct sign_job *job, size_t from, size_t to)
{
	size_t i;
	int r;

	for (i = from; i < to; i++) {
		if (job->prehashed)
			r = rf_keys_verify_digest(job->key->pub, job->dig[i],
			    job->diglen, job->sigs[i].sig, job->sigs[i].len);
		else
			r = rf_keys_verify(job->key->pub, job->key->alg,
			    job->reqs[i].scheme, job->reqs[i].msg,
			    job->reqs[i].msglen, job->sigs[i].sig,
			    job->sigs[i].len);
		if (r == RF_ERR_SIGNATURE_INVALID)
			return rf_err_set(r,
			    "token produced an invalid "
			    "signature; nothing was released");
		if (r != 0)
			return rf_err_set(RF_ERR_INTERNAL,
			    "OpenSSL could not verify the token's "
			    "signature; nothing was released");
	}
	return 0;
}

/* Sign and verify [from, to). */
static int
sign_verify(struct sign_job *job, struct sign_sess *ss, size_t from, size_t to)
{
	int r;

	if ((r = sign_range(job, ss, from, to)) != 0 || job->sigs == NULL)
		return r;
	return verify_range(job, from, to);
}

/* One signing thread: the job's range, or blocks claimed from its feed. */
static void *
sign_worker(void *varg)
{
	struct sign_job *job = varg;
	struct sign_sess ss = {CK_INVALID_HANDLE, CK_INVALID_HANDLE, CKR_OK, 0};
	size_t from, to;
	int r;

	/* The module is in use for the whole share (see module_rw). */
	if ((r = keys_rdlock(job->keys)) != 0) {
		job->r = r;
		snprintf(job->msg, sizeof(job->msg), "%s", rf_err_msg(r));
		if (job->feed != NULL)
			feed_set(job->feed, 0, 1);
		return NULL;
	}
	if ((r = session_get(job->keys, job->key->sh, &ss.s)) != 0)
		ss.s = CK_INVALID_HANDLE;
	else if (job->feed == NULL)
		r = sign_verify(job, &ss, job->from, job->to);
	else
		while (r == 0 && feed_claim(job->feed, &from, &to))
			r = sign_verify(job, &ss, from, to);
	if (ss.s != CK_INVALID_HANDLE) {
		if (session_lost(ss.rv))
			job->keys->f->C_CloseSession(ss.s);
		else
			session_put(job->keys, job->key->sh, ss.s);
	}
	keys_unlock();
	job->r = r;
	if (r != 0) {
		snprintf(job->msg, sizeof(job->msg), "%s", rf_err_msg(r));
		if (job->feed != NULL)
			feed_set(job->feed, 0, 1); /* the others stop too */
	}
	return NULL;
}

static void
jobs_range(void *arg, size_t from, size_t to)
{
	struct sign_job *jobs = arg;

	for (; from < to; from++)
		sign_worker(&jobs[from]);
}

/* Run jobs[0..njobs) on as many threads; errors land in the jobs. */
static void
run_jobs(struct sign_job *jobs, int njobs)
{
	rf_parallel((size_t)njobs, njobs, jobs_range, jobs);
}

/* The first error of the jobs, re-attached in this thread. */
static int
jobs_result(const struct sign_job *jobs, int njobs)
{
	int i;

	for (i = 0; i < njobs; i++)
		if (jobs[i].r != 0)
			return rf_err_set(jobs[i].r, "%s", jobs[i].msg);
	return 0;
}

void
rf_sig_clear(struct rf_sig *sig)
{
	if (sig == NULL)
		return;
	free(sig->sig);
	sig->sig = NULL;
	sig->len = 0;
}

/*
 * The end of the chunk of a pipelined batch that starts at from; *size is
 * its planned length, doubled (up to PIPE_MAX) for the next chunk. A
 * remainder shorter than two chunks is taken whole.
 */
static size_t
chunk_end(size_t from, size_t *size, size_t n)
{
	size_t end = n - from < 2 * *size ? n : from + *size;

	if (*size < PIPE_MAX)
		*size *= 2;
	return end;
}

/* A pipelined batch: item 0 of rf_parallel appends, items 1.. sign. */
struct pipe {
	struct rf_keys *keys;
	const struct rf_audit_event *evs;
	struct sign_feed feed;
	size_t size; /* of the next chunk */
	struct sign_job jobs[SIGN_THREADS];
	int r; /* the appender's error, with its message */
	char msg[512];
};

/*
 * Append the chunks in order, each made signable once durable. The test
 * hook acts between the first append and the first signature.
 */
static void
pipe_append(struct pipe *p)
{
	struct sign_feed *fd = &p->feed;
	char doing[128];
	size_t from = 0, to;
	int stop;

	while (from < fd->n) {
		pthread_mutex_lock(&fd->mu);
		stop = fd->stop;
		pthread_mutex_unlock(&fd->mu);
		if (stop)
			return; /* a signing thread failed: the call fails */
		to = chunk_end(from, &p->size, fd->n);
		if (from == 0)
			snprintf(doing, sizeof(doing), "nothing was signed");
		else
			snprintf(doing, sizeof(doing),
			    "nothing was released (requests 0 to %zu have "
			    "leaves; signatures made for them were "
			    "discarded)",
			    from - 1);
		if ((p->r = audit_append(
			 p->keys, p->evs + from, to - from, doing)) != 0) {
			/* Errors are per thread: kept, re-set by the caller. */
			snprintf(
			    p->msg, sizeof(p->msg), "%s", rf_err_msg(p->r));
			feed_set(fd, 0, 1);
			return;
		}
		if (from == 0)
			test_drop_if_armed(p->keys);
		feed_set(fd, to, 0);
		from = to;
	}
}

static void
pipe_range(void *arg, size_t from, size_t to)
{
	struct pipe *p = arg;

	for (; from < to; from++)
		if (from == 0)
			pipe_append(p);
		else
			sign_worker(&p->jobs[from - 1]);
}

/*
 * A large batch, pipelined. The leaves go to the record in chunks of
 * PIPE_FIRST, then twice as many, up to PIPE_MAX, in request order (the
 * chunks of concurrent callers may interleave in the record). The calling
 * thread (item 0 of rf_parallel: the record's connection stays in the
 * caller's thread) appends them one after the other while SIGN_THREADS
 * threads sign, in blocks of SIGN_BLOCK, the items whose leaves are
 * already durable: the signing threads start and take their sessions
 * during the first append, and the record's encoding and fsync overlap
 * the token's work instead of idling a core. No item is signed before its
 * own chunk's append returned 0. Any failure stops the rest and fails the
 * call (an append's error first); leaves appended by then stay, for
 * signatures that are discarded (sign_many clears them all).
 */
static int
sign_pipelined(struct rf_keys *keys, const struct sign_job *proto,
    const struct rf_audit_event *evs, size_t n)
{
	struct pipe *p;
	int i, r = RF_ERR_INTERNAL;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return rf_err_set(RF_ERR_ALLOC, "out of memory");
	if (pthread_mutex_init(&p->feed.mu, NULL) != 0) {
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "cannot make a mutex");
	}
	if (pthread_cond_init(&p->feed.cv, NULL) != 0) {
		pthread_mutex_destroy(&p->feed.mu);
		free(p);
		return rf_err_set(RF_ERR_INTERNAL, "cannot make a condition");
	}
	p->keys = keys;
	p->evs = evs;
	p->size = PIPE_FIRST;
	p->feed.n = n;
	for (i = 0; i < SIGN_THREADS; i++) {
		p->jobs[i] = *proto;
		p->jobs[i].feed = &p->feed;
	}
	rf_parallel(1 + SIGN_THREADS, 1 + SIGN_THREADS, pipe_range, p);
	if (p->r != 0)
		r = rf_err_set(p->r, "%s", p->msg);
	else
		r = jobs_result(p->jobs, SIGN_THREADS);
	pthread_cond_destroy(&p->feed.cv);
	pthread_mutex_destroy(&p->feed.mu);
	free(p);
	return r;
}

/*
 * rf_keys_sign and rf_keys_sign_digest: with prehashed, reqs[i].msg is the
 * digest itself (EC keys only), audited, signed and verified as such.
 */
static int
sign_many(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, int prehashed,
    const struct rf_actor *who, struct rf_sig *sigs)
{
	struct sign_job job;
	struct rf_audit_event *evs = NULL;
	uint8_t(*dig)[DIGEST_MAX] = NULL;
	char(*hex)[2 * DIGEST_MAX + 1] = NULL;
	const EVP_MD *md;
	struct custody_arg c;
	unsigned int dlen = 0;
	int r = RF_ERR_INTERNAL;
	size_t i;

	for (i = 0; i < n; i++)
		sigs[i].sig = NULL, sigs[i].len = 0;
	if (n == 0)
		return 0;
	if (keys == NULL || key == NULL || reqs == NULL || n > 1000000)
		return rf_err_set(RF_ERR_ARG, "bad signing request");
	for (i = 0; i < n; i++) {
		if (reqs[i].msg == NULL && reqs[i].msglen != 0)
			return rf_err_set(RF_ERR_ARG, "no message to sign");
		if (reqs[i].scheme == RF_SIG_RSA_PSS &&
		    key->alg != RF_KEY_RSA_2048 && key->alg != RF_KEY_RSA_3072)
			return rf_err_set(RF_ERR_ARG,
			    "RSA-PSS asked of %s key %s",
			    rf_key_alg_name(key->alg), key->id);
		if (reqs[i].scheme != RF_SIG_DEFAULT &&
		    reqs[i].scheme != RF_SIG_RSA_PSS)
			return rf_err_set(RF_ERR_ARG,
			    "unknown signature "
			    "scheme");
		if (prehashed &&
		    ((key->alg != RF_KEY_EC_P256 &&
			 key->alg != RF_KEY_EC_P384) ||
			reqs[i].msglen !=
			    (size_t)EVP_MD_get_size(rf_key_alg_md(key->alg))))
			return rf_err_set(RF_ERR_ARG,
			    "a digest to sign must be the %s of an EC key, "
			    "not %zu bytes for %s key %s",
			    EVP_MD_get0_name(rf_key_alg_md(key->alg)),
			    reqs[i].msglen, rf_key_alg_name(key->alg), key->id);
	}
	/* A disabled or missing key produces no audit leaves. */
	if ((r = key_usable(keys, key)) != 0 ||
	    (r = custody(
		 keys, key->id, key->tid, key->tidlen, key->sh, -1, &c)) != 0)
		goto out;
	if (!c.v[4]) {
		r = sign_err(key, CKR_KEY_FUNCTION_NOT_PERMITTED);
		goto out;
	}
	md = rf_key_alg_md(key->alg);
	if ((dig = calloc(n, sizeof(*dig))) == NULL ||
	    (hex = calloc(n, sizeof(*hex))) == NULL ||
	    (evs = calloc(n, sizeof(*evs))) == NULL) {
		r = RF_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (prehashed) {
			dlen = (unsigned int)reqs[i].msglen;
			memcpy(dig[i], reqs[i].msg, dlen);
		} else if (EVP_Digest(
			       reqs[i].msg ? reqs[i].msg : (const uint8_t *)"",
			       reqs[i].msglen, dig[i], &dlen, md, NULL) != 1) {
			r = rf_err_set(RF_ERR_INTERNAL, "cannot hash");
			goto out;
		}
		rf_hex(dig[i], dlen, hex[i]);
		evs[i].type = "sign";
		evs[i].key_id = key->id;
		evs[i].tenant = reqs[i].tenant;
		evs[i].what = reqs[i].what;
		evs[i].ref = reqs[i].ref;
		evs[i].digest = hex[i];
		evs[i].actor = who ? who->actor : NULL;
		evs[i].source = who ? who->source : NULL;
	}
	memset(&job, 0, sizeof(job));
	job.keys = keys;
	job.key = key;
	job.reqs = reqs;
	job.dig = dig;
	job.diglen = dlen;
	job.sigs = sigs;
	job.prehashed = prehashed;
	if (n >= THREAD_MIN) {
		r = sign_pipelined(keys, &job, evs, n);
		goto out;
	}
	/* The record first: one durable group commit, or nothing is signed. */
	if ((r = audit_append(keys, evs, n, "nothing was signed")) != 0)
		goto out;
	test_drop_if_armed(keys);
	job.from = 0;
	job.to = n;
	run_jobs(&job, 1);
	r = jobs_result(&job, 1);
out:
	if (r != 0)
		for (i = 0; i < n; i++)
			rf_sig_clear(&sigs[i]);
	free(evs);
	free(hex);
	free(dig);
	return r;
}

int
rf_keys_sign(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs)
{
	if (keys != NULL && keys->kc != NULL)
		return rf_kc_sign(keys->kc, key, reqs, n, 0, who, sigs);
	return sign_many(keys, key, reqs, n, 0, who, sigs);
}

int
rf_keys_sign_digest(struct rf_keys *keys, struct rf_key *key,
    const struct rf_sign_req *reqs, size_t n, const struct rf_actor *who,
    struct rf_sig *sigs)
{
	if (keys != NULL && keys->kc != NULL)
		return rf_kc_sign(keys->kc, key, reqs, n, 1, who, sigs);
	return sign_many(keys, key, reqs, n, 1, who, sigs);
}

int
rf_keys_measure_rate(struct rf_keys *keys, struct rf_key *key, size_t n,
    int threads, double *per_sec)
{
	struct sign_job jobs[16];
	struct rf_audit_event ev;
	uint8_t dig[1][DIGEST_MAX];
	char detail[96];
	struct timespec t0, t1;
	double secs;
	int i, r;

	*per_sec = 0;
	if (keys->kc != NULL)
		return rf_kc_measure_rate(keys->kc, key, n, threads, per_sec);
	if (n == 0 || threads < 1 || threads > 16)
		return rf_err_set(RF_ERR_ARG,
		    "measure 1 or more signatures "
		    "on 1 to 16 threads");
	memset(dig, 0x5a, sizeof(dig));
	/* Even discarded signatures are key uses: one leaf says how many. */
	snprintf(detail, sizeof(detail),
	    "%zu signatures of a fixed digest on %d threads, discarded", n,
	    threads);
	memset(&ev, 0, sizeof(ev));
	ev.type = "measure";
	ev.key_id = key->id;
	ev.actor = keys->cfg.actor[0] ? keys->cfg.actor : NULL;
	ev.detail = detail;
	if ((r = audit_append(keys, &ev, 1, "nothing was signed")) != 0)
		return r;
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < threads; i++) {
		jobs[i].keys = keys;
		jobs[i].key = key;
		jobs[i].dig = (const uint8_t(*)[DIGEST_MAX])dig;
		jobs[i].diglen = EVP_MD_get_size(rf_key_alg_md(key->alg));
		jobs[i].from = n * (size_t)i / (size_t)threads;
		jobs[i].to = n * (size_t)(i + 1) / (size_t)threads;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_jobs(jobs, threads);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if ((r = jobs_result(jobs, threads)) != 0)
		return r;
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	*per_sec = secs > 0 ? (double)n / secs : 0;
	return 0;
}

/*
 * Token initialisation
 */

static int
write_softhsm_conf(const struct rf_config *cfg)
{
	char tokens[RF_PATH_MAX + 16], conf[RF_PATH_MAX + 128];
	struct stat sb;
	int n;

	if (cfg->softhsm_conf[0] == '\0' || stat(cfg->softhsm_conf, &sb) == 0)
		return 0;
	snprintf(tokens, sizeof(tokens), "%s/tokens", cfg->home);
	if (mkdir(tokens, 0700) != 0 && errno != EEXIST)
		return rf_err_set(RF_ERR_IO,
		    "cannot create token folder %s: %s", tokens,
		    strerror(errno));
	n = snprintf(conf, sizeof(conf),
	    "# SoftHSM2 token of ringfence (written by ringfence "
	    "init)\n"
	    "directories.tokendir = %s\n"
	    "objectstore.backend = file\n"
	    "log.level = ERROR\n"
	    "slots.removable = false\n",
	    tokens);
	if (n < 0 || (size_t)n >= sizeof(conf))
		return rf_err_set(RF_ERR_CONFIG, "state folder path too long");
	return rf_write_file(
	    cfg->softhsm_conf, (const uint8_t *)conf, (size_t)n, 0600);
}

/* The first slot whose token is not initialised; RF_ERR_EXISTS if one is
 * labelled label. */
static int
free_slot(CK_FUNCTION_LIST_PTR f, const struct rf_config *cfg,
    const char *label, CK_SLOT_ID *slot)
{
	unsigned char want[LABEL_LEN];
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int r = RF_ERR_TOKEN, found = 0;

	pad_label(label, want);
	if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
		return token_err("C_GetSlotList", rv);
	if (n > 4096)
		return token_err("C_GetSlotList", CKR_GENERAL_ERROR);
	if ((slots = calloc(n + 1, sizeof(*slots))) == NULL)
		return RF_ERR_ALLOC;
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		r = token_err("C_GetSlotList", rv);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (ti.flags & CKF_TOKEN_INITIALIZED) {
			if (memcmp(ti.label, want, LABEL_LEN) == 0) {
				r = rf_err_set(RF_ERR_EXISTS,
				    "a token labelled %s exists in "
				    "module %s already",
				    label, cfg->module);
				goto out;
			}
		} else if (!found) {
			*slot = slots[i];
			found = 1;
		}
	}
	if (!found) {
		r = rf_err_set(RF_ERR_TOKEN,
		    "module %s has no free slot for a new token", cfg->module);
		goto out;
	}
	r = 0;
out:
	free(slots);
	return r;
}

/* Initialise one token labelled label in a free slot, with the user PIN. */
static int
init_one(CK_FUNCTION_LIST_PTR f, const struct rf_config *cfg, const char *label,
    const char *so_pin, const char *pin)
{
	unsigned char padded[LABEL_LEN];
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_SLOT_ID slot;
	CK_RV rv;
	int r;

	if ((r = free_slot(f, cfg, label, &slot)) != 0)
		return r;
	pad_label(label, padded);
	if ((rv = f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin,
		 (CK_ULONG)strlen(so_pin), padded)) != CKR_OK)
		return token_err("C_InitToken", rv);
	/* SoftHSM moves an initialised token to a new slot: find it again. */
	if (find_slot(f, label, &slot) != 0)
		return rf_err_set(RF_ERR_TOKEN,
		    "token %s not found after initialising it", label);
	if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
		 NULL, NULL, &s)) != CKR_OK)
		return token_err("C_OpenSession", rv);
	if ((rv = f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin,
		 (CK_ULONG)strlen(so_pin))) != CKR_OK) {
		r = token_err("C_Login (security officer)", rv);
		goto out;
	}
	rv = f->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
	f->C_Logout(s);
	if (rv != CKR_OK) {
		r = token_err("C_InitPIN", rv);
		goto out;
	}
	r = 0;
out:
	f->C_CloseSession(s);
	return r;
}

int
rf_keys_init_token(const struct rf_config *cfg, const char *so_pin,
    const char *pin, int ntokens)
{
	char label[LABEL_LEN + 1];
	struct module *mod = NULL;
	int i, r = RF_ERR_INTERNAL;

	if (so_pin == NULL || pin == NULL || *so_pin == '\0' || *pin == '\0')
		return rf_err_set(RF_ERR_ARG, "token PINs must not be empty");
	if (cfg->token[0] == '\0' || strlen(cfg->token) > LABEL_LEN ||
	    (ntokens > 1 && strlen(cfg->token) > LABEL_LEN - 3))
		return rf_err_set(RF_ERR_CONFIG,
		    "token label must be 1 to %d characters: "
		    "check RINGFENCE_TOKEN",
		    ntokens > 1 ? LABEL_LEN - 3 : LABEL_LEN);
	if (ntokens < 1 || ntokens > SHARD_MAX)
		return rf_err_set(RF_ERR_CONFIG,
		    "a key store spans 1 to %d tokens, not %d: check "
		    "RINGFENCE_TOKENS",
		    SHARD_MAX, ntokens);
	if ((r = write_softhsm_conf(cfg)) != 0 ||
	    (r = module_get(cfg, &mod)) != 0)
		goto out;
	pthread_rwlock_rdlock(&module_rw);
	for (i = 0, r = 0; i < ntokens && r == 0; i++) {
		shard_label(cfg->token, i, label);
		r = init_one(mod->f, cfg, label, so_pin, pin);
	}
	pthread_rwlock_unlock(&module_rw);
out:
	module_put(mod);
	return r;
}

/*
 * Many keys: each is one indexed store lookup for its CKA_ID and one search
 * in the token that holds it (rf_keys_load), so no pass over every object;
 * through keyd each is one request.
 */
int
rf_keys_load_many(
    struct rf_keys *keys, const char *const *ids, size_t n, struct rf_key **out)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	for (i = 0; i < n; i++) {
		if ((r = rf_keys_load(keys, ids[i], &out[i])) == 0)
			continue;
		if (r == RF_ERR_KEY_NOT_FOUND) {
			rf_err_clear();
			continue;
		}
		while (i > 0) {
			rf_key_free(out[--i]);
			out[i] = NULL;
		}
		return r;
	}
	return 0;
}
