/*
 * token.c: the PKCS#11 module and its tokens. Loading the module and
 * C_Initialize (SOFTHSM2_CONF), the process-wide lock on it, re-
 * initialisation after a device error, finding the tokens of the key
 * store, opening and closing a handle, and token initialisation. The
 * sessions a handle's calls run in (login, the pool of idle sessions,
 * recovery of lost ones, keys_with_session) are session.c's; the objects
 * in a token (the kept handles of keys made here, finding objects, reading
 * attributes and public keys) are object.c's.
 *
 * PKCS#11 v2.40 base specification section 5.4: C_Initialize may be called
 * once per process; a second call returns CKR_CRYPTOKI_ALREADY_INITIALIZED.
 * Modules therefore live in a process-wide list with a reference count: the
 * first rf_keys_open of a module path initialises it, the last rf_keys_free
 * finalises it. The library stays mapped, so that it can be initialised
 * again (SoftHSM reads SOFTHSM2_CONF at C_Initialize).
 *
 * Object handles are kept only for the key pairs this process made or
 * found (object.c's made set), each checked before use, and cleared when
 * the module is initialised again: a lost session or a logout may
 * invalidate them. Otherwise each operation finds its objects by CKA_ID
 * in the session it uses.
 */

#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/tokmeta.h"
#include "keys/keys_int.h"
#include "keys/token_int.h"
#include "store/store.h"

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module *modules; /* never freed: libraries stay mapped */

/*
 * One owner of the module at a time. Every use of a module in this
 * process (a token call, a session held across calls, a signing batch)
 * holds keys_module_rw for reading; only C_Initialize and C_Finalize (first
 * open, last close, re-initialisation after a device error) hold it for
 * writing. PKCS#11 leaves a call that races C_Finalize undefined, and a
 * re-initialisation ends every session of every handle, so every other
 * handle of the process is paused meanwhile, and afterwards notices the
 * new generation (module.gen) and drops its sessions without closing
 * them: their numbers may already belong to sessions of another handle.
 * Lock order: keys_module_rw, then modules_lock, then a handle's lock.
 * glibc's default rwlock lets a reader in while a writer waits, so a
 * thread may take it for reading twice.
 */
pthread_rwlock_t keys_module_rw = PTHREAD_RWLOCK_INITIALIZER;

/*
 * One token of the key store. A store may span several tokens of the same
 * module, labelled label, label.1, label.2, ...: a file-backed token such
 * as SoftHSM's rescans its whole folder (a stat per file) on every object
 * it destroys, so destroying n keys in one token costs O(n^2) system calls.
 * Spread over k tokens, the folders are k times smaller. New keys go to the
 * tokens in turn; a key is found by probing them.
 */
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
int
keys_token_err(const char *fn, CK_RV rv)
{
	return rf_err_set(RF_ERR_TOKEN, "token call %s failed: %s (0x%lx)", fn,
	    ckr_str(rv), (unsigned long)rv);
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
	keys_made_clear(&m->made); /* handles of an older generation are void */
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
	pthread_rwlock_wrlock(&keys_module_rw);
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
		pthread_mutex_init(&m->made.lock, NULL);
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
	pthread_rwlock_unlock(&keys_module_rw);
	return r;
}

static void
module_put(struct module *m)
{
	if (m == NULL)
		return;
	pthread_rwlock_wrlock(&keys_module_rw);
	pthread_mutex_lock(&modules_lock);
	if (--m->refs == 0 && m->initialised) {
		m->f->C_Finalize(NULL);
		m->initialised = 0;
	}
	pthread_mutex_unlock(&modules_lock);
	pthread_rwlock_unlock(&keys_module_rw);
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
 * every other use of the module in the process paused (keys_module_rw held for
 * writing; the caller holds no read lock). seen is the generation the
 * caller's failure happened in: if another handle re-initialised since,
 * that is enough.
 */
int
keys_module_reinit(
    struct module *m, const struct rf_config *cfg, unsigned long seen)
{
	int r = 0;

	pthread_rwlock_wrlock(&keys_module_rw);
	pthread_mutex_lock(&modules_lock);
	if (m->gen == seen) {
		if (m->initialised)
			m->f->C_Finalize(NULL);
		m->initialised = 0;
		r = module_initialise(m, cfg);
	}
	pthread_mutex_unlock(&modules_lock);
	pthread_rwlock_unlock(&keys_module_rw);
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
		return keys_token_err("C_GetSlotList", rv);
	if (n == 0)
		return RF_ERR_TOKEN_NOT_FOUND;
	if (n > 4096)
		return keys_token_err("C_GetSlotList", CKR_GENERAL_ERROR);
	if ((slots = calloc(n, sizeof(*slots))) == NULL)
		return RF_ERR_ALLOC;
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		r = keys_token_err("C_GetSlotList", rv);
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
int
keys_find_shards(struct rf_keys *keys)
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

int
keys_token_answers(struct rf_keys *keys, int sh, const char *why)
{
	char label[LABEL_LEN + 1];
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	CK_RV rv;
	int r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	pthread_mutex_lock(&keys->lock);
	if (sh < 0 || sh >= keys->nsh) {
		pthread_mutex_unlock(&keys->lock);
		keys_unlock();
		return rf_err_set(RF_ERR_INTERNAL, "no token %d", sh);
	}
	slot = keys->sh[sh].slot;
	snprintf(label, sizeof(label), "%s", keys->sh[sh].label);
	pthread_mutex_unlock(&keys->lock);
	rv = keys->f->C_GetTokenInfo(slot, &ti);
	keys_unlock();
	if (rv == CKR_OK)
		return 0;
	return rf_err_set(RF_ERR_TOKEN_NOT_FOUND,
	    "token %s does not answer (C_GetTokenInfo: %s, as SoftHSM does "
	    "once its folder went away while it was open): run the same "
	    "command again (%s)",
	    label, ckr_str(rv), why);
}

/*
 * keys_find_shards, at open. SoftHSM reads every token's token.object once, at
 * C_Initialize, and leaves out a token whose file it could not read; it
 * rewrites that file on every login, so a process that initialises while
 * another logs in can lose a token for its whole life. So when the first
 * token is missing, or fewer tokens are found than `ringfence init` made
 * for the embedded store (store setting key_tokens), and this handle is
 * the module's only user, the module is initialised again after a pause
 * (5 ms, 10, ... 160: a process started while another logs in may itself
 * wait that long for a core) and the tokens looked for again. After the
 * last try the tokens found are used. A label that is really wrong costs
 * 315 ms more before its error.
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
		pthread_rwlock_rdlock(&keys_module_rw);
		r = keys_find_shards(keys);
		keys->gen = keys->mod->gen;
		pthread_rwlock_unlock(&keys_module_rw);
		if ((r == 0 && keys->nsh >= want) ||
		    (r != 0 && r != RF_ERR_TOKEN_NOT_FOUND) || attempt == 6 ||
		    !module_sole(keys->mod))
			return r;
		keys_backoff(attempt);
		if (keys_module_reinit(keys->mod, &keys->cfg, keys->gen) != 0)
			return r;
		rf_err_clear();
		keys->nsh = 0; /* find every token again */
	}
}

/*
 * The caller holds keys_module_rw for reading: if the module was initialised
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
		if ((r = keys_find_shards(keys)) == 0)
			keys->gen = keys->mod->gen;
	}
	pthread_mutex_unlock(&keys->lock);
	return r;
}

/* Take keys_module_rw for reading, for a use of the module by keys. */
int
keys_rdlock(struct rf_keys *keys)
{
	int r;

	pthread_rwlock_rdlock(&keys_module_rw);
	if ((r = keys_refresh(keys)) != 0)
		pthread_rwlock_unlock(&keys_module_rw);
	return r;
}

unsigned long
keys_module_gen(const struct rf_keys *keys)
{
	return keys->mod->gen;
}

void
keys_unlock(void)
{
	pthread_rwlock_unlock(&keys_module_rw);
}

/*
 * Open and close
 */
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
	    (r = keys_audit_append(keys, evs, (size_t)n,
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
	if ((r = keys_session_open(keys, keys->sh[0].slot, &s)) == 0)
		keys_session_put(keys, 0, s);
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
rf_keys_set_ledger(struct rf_keys *keys, struct rf_ledger *ledger)
{
	keys->ledger = ledger;
}

int
rf_keys_login_all(struct rf_keys *keys)
{
	CK_SESSION_HANDLE s;
	int i, r = 0;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	for (i = 0; i < keys->nsh && r == 0; i++)
		if ((r = keys_session_get(keys, i, &s)) == 0)
			keys_session_put(keys, i, s);
	keys_unlock();
	return r != 0 ? r : tokmeta_after_login(keys);
}

void
rf_keys_forget_pin(struct rf_keys *keys)
{
	if (keys != NULL)
		OPENSSL_cleanse(keys->cfg.pin, sizeof(keys->cfg.pin));
}

void
rf_keys_free(struct rf_keys *keys)
{
	if (keys == NULL)
		return;
	rf_kc_free(keys->kc);
	if (keys->f != NULL) {
		/* Sessions of an older generation ended with it: not closed. */
		pthread_rwlock_rdlock(&keys_module_rw);
		if (keys->gen == keys->mod->gen)
			keys_drop_idle(keys);
		pthread_rwlock_unlock(&keys_module_rw);
	}
	module_put(keys->mod);
	pthread_mutex_destroy(&keys->lock);
	OPENSSL_cleanse(keys, sizeof(*keys));
	free(keys);
}

#ifdef RF_TEST_HOOKS
int
rf_keys_test_drop_sessions(struct rf_keys *keys)
{
	CK_RV rv = CKR_OK;
	int i;

	if (keys->kc != NULL)
		return rf_err_set(RF_ERR_STATE, "sessions are keyd's to drop");
	/* The idle handles stay in the pool: the next use must recover. */
	pthread_rwlock_rdlock(&keys_module_rw);
	pthread_mutex_lock(&keys->lock);
	for (i = 0; i < keys->nsh && rv == CKR_OK; i++)
		rv = keys->f->C_CloseAllSessions(keys->sh[i].slot);
	pthread_mutex_unlock(&keys->lock);
	pthread_rwlock_unlock(&keys_module_rw);
	return rv == CKR_OK ? 0 : keys_token_err("C_CloseAllSessions", rv);
}

int
rf_keys_test_device_error(struct rf_keys *keys)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	int r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	if ((r = keys_session_get(keys, 0, &s)) == 0 &&
	    (r = keys_session_recover(keys, s, CKR_DEVICE_ERROR)) == 0 &&
	    (r = keys_session_get(keys, 0, &s)) == 0)
		keys_session_put(keys, 0, s);
	keys_unlock();
	return r;
}
#endif

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
		return keys_token_err("C_GetSlotList", rv);
	if (n > 4096)
		return keys_token_err("C_GetSlotList", CKR_GENERAL_ERROR);
	if ((slots = calloc(n + 1, sizeof(*slots))) == NULL)
		return RF_ERR_ALLOC;
	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		r = keys_token_err("C_GetSlotList", rv);
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
		return keys_token_err("C_InitToken", rv);
	/* SoftHSM moves an initialised token to a new slot: find it again. */
	if (find_slot(f, label, &slot) != 0)
		return rf_err_set(RF_ERR_TOKEN,
		    "token %s not found after initialising it", label);
	if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
		 NULL, NULL, &s)) != CKR_OK)
		return keys_token_err("C_OpenSession", rv);
	if ((rv = f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin,
		 (CK_ULONG)strlen(so_pin))) != CKR_OK) {
		r = keys_token_err("C_Login (security officer)", rv);
		goto out;
	}
	rv = f->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
	f->C_Logout(s);
	if (rv != CKR_OK) {
		r = keys_token_err("C_InitPIN", rv);
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
	pthread_rwlock_rdlock(&keys_module_rw);
	for (i = 0, r = 0; i < ntokens && r == 0; i++) {
		shard_label(cfg->token, i, label);
		r = init_one(mod->f, cfg, label, so_pin, pin);
	}
	pthread_rwlock_unlock(&keys_module_rw);
out:
	module_put(mod);
	return r;
}
