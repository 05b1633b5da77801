/*
 * keyd.h: the custody process. `ringfence keyd` is the only process that
 * loads the PKCS#11 module, reads the PIN and opens the token; every
 * other process reaches keys through the same rf_keys_* API (keys.h),
 * which then forwards each call over keyd's UNIX-domain socket
 * (proto.h, client.c). keyd identifies each caller by SO_PEERCRED, puts
 * it in a class, and signs only what that class may have signed
 * (policy.c). docs/keys.md, "Process split".
 */
#ifndef RF_KEYS_KEYD_H
#define RF_KEYS_KEYD_H

#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/rf.h"

struct rf_keys;
struct rf_sign_req;
struct rf_store;

/* Caller classes, from the least to the most trusted. */
enum rf_kclass {
	RF_KCLASS_NONE = 0,   /* refused everything */
	RF_KCLASS_SERVER = 1, /* serve: OCSP, CRLs, tree heads, TLS */
	RF_KCLASS_ADMIN = 2,  /* root, keyd's own user, admin_group */
};
/* "admin", "server", "none". */
const char *rf_kclass_name(int cls);

/*
 * Process-wide, before any rf_keys_open: from now on rf_keys_open returns
 * a client of the keyd listening at cfg's keyd socket. The hello claims
 * class `claim`; keyd grants the lower of it and the caller's
 * credentials. When no keyd answers, start(arg, cfg) is called once to
 * start one (NULL: fail with RF_ERR_CUSTODY).
 */
struct rf_custody {
	int claim;
	int (*start)(void *arg, const struct rf_config *cfg);
	void *arg;
};
void rf_keys_custody_use(const struct rf_custody *c);
/* Back to tokens opened in this process (the library default). */
void rf_keys_custody_off(void);
/*
 * Lower the class of an open client handle to cls (say hello again): serve
 * makes its TLS certificate with an admin handle, then keeps it only as
 * server. A class is never raised; a lowered handle never starts a keyd
 * (it reconnects once one runs); a local handle is left as it is.
 */
int rf_keys_custody_lower(struct rf_keys *keys, int cls) RF_WUR;

/*
 * Whether a custody process listens on keyd.sock now (1) or not (0): one
 * non-blocking connect, closed unanswered, so it never waits on a busy keyd.
 * 1 too when this process opens its tokens itself.
 */
int rf_keyd_listening(const struct rf_config *cfg);

/* keyd's files in the state folder. */
/* In the state folder while keyd is stopped on purpose ('ringfence keyd
 * stop'): serve and make run's keeper do not start it again; a keyd that
 * starts removes it. */
#define RF_KEYD_STOPPED "keyd.stopped"
int rf_keyd_path(const struct rf_config *cfg, const char *name, char *out,
    size_t outlen) RF_WUR; /* "keyd.sock" honours keyd_socket */

struct rf_keyd_status {
	pid_t pid;
	uid_t uid;
	int cls;	  /* the class keyd granted the asker */
	char token[64];	  /* label of the key store's first token */
	uint32_t tokens;  /* tokens of the key store */
	uint32_t clients; /* connected callers */
	uint32_t queue;	  /* signing requests in flight */
	uint64_t requests, refused;
};
/* Ask the running keyd (never starts one): RF_ERR_CUSTODY if none. */
int rf_keyd_status_get(
    const struct rf_config *cfg, struct rf_keyd_status *st) RF_WUR;

struct rf_ledger;

struct rf_keyd_opts {
	int idle; /* exit after this many seconds without callers; 0: never */
	/* One line per event (start, user split, refusals, stop). */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	/* Decides class server's client assertions (policy.h); NULL: every
	 * assertion is refused. gen: the store's connector generation read
	 * before anything of this request (-1: unknown); ledger: keyd's own
	 * (ledger.h), for what the store alone must not decide. */
	int (*assertion)(void *arg, struct rf_store *st,
	    struct rf_ledger *ledger, int64_t gen, const char *key_id,
	    const struct rf_sign_req *req);
	void *assertion_arg;
	/* Decides class server's certificates (a connector's renewal,
	 * policy.h), same shape; NULL: every certificate is refused. */
	int (*cert)(void *arg, struct rf_store *st, struct rf_ledger *ledger,
	    int64_t gen, const char *key_id, const struct rf_sign_req *req);
	/* Opens a connector's proof session (class server's RF_KMSG_SESSION,
	 * connector.h: rf_proof_session_open) for certificate serial, its
	 * X25519 key pub and signed proof; fills sid, kpub and confirm
	 * (RF_KPROTO_STR_MAX each) and *end. A refusal is RF_ERR_REFUSED
	 * with ": bad_proof: " and why. NULL: every session is refused. */
	int (*session)(void *arg, struct rf_store *st, struct rf_ledger *ledger,
	    const char *serial, const char *pub, const uint8_t *proof,
	    size_t prooflen, char *sid, char *kpub, char *confirm,
	    int64_t *end);
	/* Called once the socket listens (e.g. to detach from a parent). */
	void (*ready)(void *arg);
	void *ready_arg;
	/* Background work (the standby pool's refill, pool.h), called on a
	 * thread of its own at the lowest priority, with a store and a keys
	 * handle of its own, so that no request waits behind it; requests
	 * that change keys pause it between steps. It does one small step
	 * and returns 1 to be called again at once, 0 to wait a second.
	 * NULL: none. */
	int (*background)(void *arg, struct rf_keys *keys, struct rf_store *st);
	void *background_arg;
};
/*
 * Run keyd until SIGTERM/SIGINT or the idle time: take keyd.lock (one
 * keyd per state folder), harden the process, bind keyd.sock, drop to
 * custody_user when started as root, open the store, the audit record and
 * the token (logging in once), then answer callers. The PIN comes from
 * RINGFENCE_PIN (removed from the environment at once) or pin_file.
 */
int rf_keyd_run(
    const struct rf_config *cfg, const struct rf_keyd_opts *o) RF_WUR;

/* Harden a process that must not leave its memory anywhere: not
 * dumpable (no ptrace by its user, no core), RLIMIT_CORE 0. */
void rf_keyd_harden(void);

#endif
