/*
 * keyd_int.h: inside src/keys only, the files of the custody process
 * (keyd.h): keyd.c starts it and runs its poll loop, keyd_handlers.c
 * answers requests, keyd_aside.c runs the slow ones on a thread of their
 * own, keyd_key.c keeps keys loaded, keyd_pipe.c records and signs
 * signing requests, keyd_conn.c reads and writes the callers'
 * connections. Their state, and the functions one of them has for the
 * others.
 */
#ifndef RF_KEYS_KEYD_INT_H
#define RF_KEYS_KEYD_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit/audit.h"
#include "common/config.h"
#include "common/rf.h"
#include "keys/keyd.h"
#include "keys/keys.h"
#include "keys/proto.h"

struct rf_audit;
struct rf_kpolicy;
struct rf_store;

#define CONN_MAX 128  /* callers at once */
#define KEY_CACHE 512 /* keys kept loaded: an assertion's is one of many */

/* A caller's connection (keyd_conn.c). */
struct conn {
	int fd;
	uint64_t id; /* names it in the group, whose answers come later */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int cred_cls; /* what its credentials allow */
	int cls;      /* granted at hello: never above cred_cls */
	int hello;
	int busy; /* its signing request is in the pipeline: not read */
	int dead; /* to close once it is not busy */
	uint8_t hdr[4];
	size_t hgot;
	uint8_t *frame;
	size_t need, got;
	uint8_t *obuf; /* answers the socket did not take yet (keyd_conn_out) */
	size_t olen, ooff;
	int64_t ostall; /* closed if none of it goes by then (ms) */
};

/* The custody process: rf_keyd_run's (keyd.c). */
struct keyd {
	struct rf_config cfg;
	const struct rf_keyd_opts *o;
	int token_gone; /* a token folder went away: exit, start anew */
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_keys *keys;
	struct rf_kpolicy *policy;
	int lfd;
	struct conn conns[CONN_MAX];
	int nconns;
	uid_t server_uid;
	int have_server_uid;
	gid_t admin_gid;
	int have_admin_gid;
	uint64_t requests, refused;
	struct rf_leaf_quota refusals; /* leaves a minute, then a count */
	char token[64];
	uint32_t tokens;
	uint64_t next_id;
	struct pipeline *pl;
	struct bgwork *bg; /* NULL without background work */
	struct rf_key *kcache[KEY_CACHE];
	size_t knext;
};

#define SIGNERS 2 /* signer threads, each with a crew of its own */

struct signer {
	struct pipeline *pl;
	pthread_t tid;
	int started;
	struct rf_crew *crew; /* its signing threads */
};

/* The signing pipeline (keyd_pipe.c). */
struct pipeline {
	struct signer signer[SIGNERS];
	int evfd; /* the signer wakes the loop */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *head, *tail;	   /* recorded, for the signer (mu) */
	struct pending *done;		   /* back from the signer (mu) */
	int stop;			   /* (mu) */
	int signing;			   /* signers holding a batch (mu) */
	struct pending *wait, **wait_tail; /* to record (loop) */
	size_t inflight; /* accepted and not yet back (loop) */
	size_t beside;	 /* key generations running beside (loop) */
};

/* who from a request, as the caller names itself for the record. */
struct who_buf {
	char actor[RF_KPROTO_STR_MAX];
	char source[RF_KPROTO_STR_MAX];
	struct rf_actor who;
};

/* A SIGN request, decoded: strings in one block, messages in the frame. */
struct sign_in {
	char id[RF_KPROTO_STR_MAX];
	int digest;
	int recorded; /* say RECORDED (RF_KSIGN_RECORDED) */
	struct who_buf w;
	uint32_t n;
	struct rf_sign_req *reqs;
	char (*str)[4][RF_KPROTO_STR_MAX]; /* what, tenant, conn, on_behalf */
	/* The refs (up to RF_KPROTO_REF_MAX each), NUL-terminated one after
	 * the other: at most the frame's bytes, however many items. */
	char *refs;
};

#define QUEUED 1 /* a handler's answer comes later, from the pipeline */

/* A request answered from a thread of its own (keyd_run_aside). */
typedef int (*aside_fn)(struct keyd *kd, void *arg, struct rf_kbuf *out);

/* A request in the pipeline (keyd_pipe.c), or one run aside
 * (keyd_run_aside, keyd_aside.c). */
struct pending {
	struct pending *next;
	struct keyd *kd; /* an aside request's (aside_main) */
	int type;	 /* RF_KMSG_SIGN, or that of an aside request */
	aside_fn aside;	 /* an aside request's work, and its argument */
	int beside;	 /* counted in beside, not inflight (keyd_run_beside) */
	void *arg;
	void (*arg_free)(void *arg);
	uint64_t conn;
	int fd;		/* the caller's: open while it is busy */
	uint8_t *frame; /* the request, owned: s's messages point into it */
	size_t framelen;
	struct sign_in s;
	struct rf_key *key;
	struct rf_sig *sigs;	     /* s.n of them */
	size_t recorded;	     /* messages in batches so far (loop) */
	size_t settled;		     /* messages signed or failed (signer) */
	int r;			     /* the first failure, and its message */
	char msg[RF_KPROTO_STR_MAX]; /* whole, as an answer carries it */
	/* The signer answered (1), in part (2) or could not (-1); -1 also
	 * when RECORDED did not go out whole (say_recorded). */
	int sent;
	struct rf_kbuf out; /* its answer, when the socket took part of it */
	size_t outoff;
};

/* keyd.c */
/* A line to the log of the options (none without o->log). */
void keyd_logf(struct keyd *kd, const char *fmt, ...) RF_PRINTF(2, 3);
/* Record one refusal: a leaf, or a count past the minute's budget. */
void keyd_refusal(
    struct keyd *kd, const struct conn *c, int type, const char *why);
/* Hold the background work: its current step ends first. */
void keyd_bg_pause(struct keyd *kd);
/* Let the background work go on (one keyd_bg_pause undone). */
void keyd_bg_resume(struct keyd *kd);

/* keyd_handlers.c */
/* Free p and all it owns; NULL is nothing. */
void keyd_pending_free(struct pending *p);
/* One whole frame from c: 0 to keep the connection, -1 to close it. */
int keyd_conn_request(struct keyd *kd, struct conn *c);

/* keyd_key.c */
/* A copy of key id (rf_key_free it), loaded once and then kept. */
int keyd_key_get(struct keyd *kd, const char *id, struct rf_key **out) RF_WUR;
/* rf_audit_key_source's getter: tree heads sign with a kept audit key. */
int keyd_key_get_audit(void *arg, const char *id, struct rf_key **out);
/* Keys ids[0..n) were disabled or destroyed: loaded again if asked for. */
void keyd_key_forget(struct keyd *kd, const char *const *ids, size_t n);
/* Free every key kept loaded (keyd_key_get). */
void keyd_key_flush(struct keyd *kd);

/* keyd_aside.c */
/* Answer c's request of type by fn(kd, arg) on a thread of its own
 * (QUEUED), or on the loop if none can be started; arg_free frees arg. */
int keyd_run_aside(struct keyd *kd, struct conn *c, int type, aside_fn fn,
    void *arg, void (*arg_free)(void *), struct rf_kbuf *out) RF_WUR;

/* The same for a key generation, which no key change waits for: counted
 * apart (pipeline.beside), waited for only as keyd stops. */
int keyd_run_beside(struct keyd *kd, struct conn *c, int type, aside_fn fn,
    void *arg, void (*arg_free)(void *), struct rf_kbuf *out) RF_WUR;

/* keyd_pipe.c */
/* p waits for the loop to record it, then for a signer. */
void keyd_pipe_wait(struct keyd *kd, struct pending *p);
/* Wake the loop (the pipeline's eventfd). */
void keyd_pipe_wake(struct pipeline *pl);
/* What the signer handed back, answered; then the next batch recorded. */
void keyd_pipe_done(struct keyd *kd);
/* Every signature in flight made and answered (before a key changes). */
void keyd_pipe_drain(struct keyd *kd);
/* Start the signer threads (kd->pl). */
int keyd_pipe_start(struct keyd *kd);
/* Answer what is in flight, then stop the signer. */
void keyd_pipe_stop(struct keyd *kd);

/* keyd_conn.c */
/* Close connection i; the last one takes its place. */
void keyd_conn_close(struct keyd *kd, int i);
/* 1 when none of c's answers waits to go out. */
int keyd_out_empty(const struct conn *c);
/* Send what the socket takes now, without waiting: bytes sent or -1. */
ssize_t keyd_send_now(int fd, const uint8_t *d, size_t len);
/* Answer len bytes on c without waiting; the rest is queued. */
int keyd_conn_out(struct conn *c, const uint8_t *d, size_t len);
/* c is writable: send what waits. 0 keep c, -1 close it. */
int keyd_conn_flush(struct conn *c);
/* Answer error r (its message) on c. */
int keyd_send_err(struct conn *c, int r);
/* Answer request type with out (r 0) or error r: 0 keep c, -1 close it. */
int keyd_answer(
    struct keyd *kd, struct conn *c, int type, int r, struct rf_kbuf *out);
/* The connection named id, or -1 when it has gone. */
int keyd_conn_find(struct keyd *kd, uint64_t id);
/* Close the callers marked dead or not reading (WRITE_TIMEOUT_MS). */
void keyd_conn_sweep(struct keyd *kd);
/* Read what c has sent; run each whole frame. 0 keep, -1 close. */
int keyd_conn_read(struct keyd *kd, struct conn *c);
/* A new caller, classed by its credentials (SO_PEERCRED). */
void keyd_conn_accept(struct keyd *kd);

#endif
