/*
 * session.c: the logged-in sessions a handle's token calls run in, for the
 * rest of src/keys. Which return values mean a session or the module is
 * lost, logging in (retried while SoftHSM's token.object is torn; a
 * rejected PIN leaves a login-failed leaf), a pool of idle sessions per
 * token (keys_session_get, keys_session_put), recovery after a lost
 * session or a device error (keys_session_recover) and running an
 * operation in a session, once more after recovering (keys_with_session).
 * The module, its lock and its re-initialisation, and finding the tokens
 * of the store, are token.c's.
 */

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <p11-kit/pkcs11.h>

#include "audit/audit.h"
#include "keys/keys.h"
#include "keys/token_int.h"

/* Return values after which the session is gone and is reopened. */
int
keys_session_lost(CK_RV rv)
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
	r = rf_audit_append(keys->audit, &ev, 1, NULL);
	(void)r; /* best effort: the PIN error is what the caller sees */
}

/*
 * The pause before try attempt + 1 of a token call that met SoftHSM's
 * torn token.object: 5 ms, 10, 20, 40, 80, 160 (315 ms over six: under
 * load, the process rewriting it may wait that long for a core).
 */
void
keys_backoff(int attempt)
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
	 * user PIN looks unset). Such a failure is retried after a pause, for
	 * 1.3 s in all (eight pauses from 5 ms, doubling): under load the
	 * process writing it may wait that long for a core
	 * (integration/keys_custody failed twice in one day on a loaded 2-core
	 * machine with 0.3 s).
	 */
	for (attempt = 0;; attempt++) {
		rv = keys->f->C_Login(
		    s, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
		if ((rv != CKR_GENERAL_ERROR && rv != CKR_FUNCTION_FAILED &&
			rv != CKR_USER_PIN_NOT_INITIALIZED) ||
		    attempt == 8)
			break;
		keys_backoff(attempt);
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
	return keys_token_err("C_Login", rv);
}

/* A fresh logged-in read/write session. */
int
keys_session_open(struct rf_keys *keys, CK_SLOT_ID slot, CK_SESSION_HANDLE *out)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;
	int r;

	rv = keys->f->C_OpenSession(
	    slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK)
		return keys_token_err("C_OpenSession", rv);
	if ((r = session_login(keys, s)) != 0) {
		keys->f->C_CloseSession(s);
		return r;
	}
	*out = s;
	return 0;
}

/* An idle session with token sh from the pool, or a new one. */
int
keys_session_get(struct rf_keys *keys, int sh, CK_SESSION_HANDLE *out)
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
	return keys_session_open(keys, slot, out);
}

/* Return a session to the pool (or close it if the pool is full). */
void
keys_session_put(struct rf_keys *keys, int sh, CK_SESSION_HANDLE s)
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
void
keys_drop_idle(struct rf_keys *keys)
{
	struct shard *t;
	int i;

	for (i = 0; i < keys->nsh; i++)
		for (t = &keys->sh[i]; t->nidle > 0;)
			keys->f->C_CloseSession(t->idle[--t->nidle]);
}

/*
 * After rv said the session s is gone (the caller holds keys_module_rw for
 * reading): drop it and every idle session (they died with it); after a
 * device error re-initialise the library, with the read lock let go for
 * that while (taken again before returning, also on error); and find the
 * tokens again (their slots may have changed).
 */
int
keys_session_recover(struct rf_keys *keys, CK_SESSION_HANDLE s, CK_RV rv)
{
	unsigned long seen;
	int r = 0;

	keys->f->C_CloseSession(s); /* ignored: it is gone */
	pthread_mutex_lock(&keys->lock);
	keys_drop_idle(keys);
	seen = keys->gen;
	pthread_mutex_unlock(&keys->lock);
	if (module_lost(rv)) {
		keys_unlock();
		r = keys_module_reinit(keys->mod, &keys->cfg, seen);
		pthread_rwlock_rdlock(&keys_module_rw);
		if (r != 0)
			return r;
	}
	pthread_mutex_lock(&keys->lock);
	if ((r = keys_find_shards(keys)) == 0)
		keys->gen = keys->mod->gen;
	pthread_mutex_unlock(&keys->lock);
	return r;
}

/*
 * Run op in a session with token sh; if the session turns out to be lost,
 * recover and run it once more. op returns a CK_RV; errors of ours go in
 * its arg. *rvp receives the final CK_RV.
 */
int
keys_with_session(
    struct rf_keys *keys, int sh, session_op op, void *arg, CK_RV *rvp)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_RV rv;
	int attempt, r;

	if ((r = keys_rdlock(keys)) != 0)
		return r;
	for (attempt = 0;; attempt++) {
		if ((r = keys_session_get(keys, sh, &s)) != 0)
			break;
		rv = op(keys, s, arg);
		if (keys_session_lost(rv) && attempt == 0) {
			if ((r = keys_session_recover(keys, s, rv)) != 0)
				break;
			continue;
		}
		if (keys_session_lost(rv))
			keys->f->C_CloseSession(s);
		else
			keys_session_put(keys, sh, s);
		*rvp = rv;
		break;
	}
	keys_unlock();
	return r;
}
