/*
 * service_int.h: inside src/connector only, the files of serve's connector
 * API service (connector.h, rf_connector_svc_*): service.c starts and stops
 * it and answers assertions, recorder.c writes their records after the
 * answer on a thread of its own, renew.c renews a connector's own
 * certificate. Their state, and the functions one of them has for the
 * others.
 */
#ifndef RF_CONNECTOR_SERVICE_INT_H
#define RF_CONNECTOR_SERVICE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "connector/connector.h"

#define KCACHE 64
#define QUEUE_MAX 65536
/* Random bytes drawn at once for this many jti (RAND_bytes per assertion
 * was 4 % of serve's CPU). */
#define JTI_BATCH 64
/* Credentials whose first assertion is recorded (conn_reestablished has
 * their row), most recent first: the recorder skips the insert for them. */
#define REEST_N 32

/*
 * What the recorder writes after the answer: an assertion made (its row,
 * the detectors, alerts, re-establishment evidence) or a refusal (its
 * audit leaf naming connection, connector, source and jti; for an
 * incident, an alert). Recording never delays a signature.
 */
struct pending {
	int refusal;
	struct rf_assert_ask ask;
	char serial[41];
	char source[64];
	struct rf_connector_verdict v;
	int64_t now, exp;
};

struct rf_connector_svc {
	const struct rf_config *cfg;
	struct rf_keys *keys; /* borrowed */
	pthread_mutex_t lock;
	struct rf_store *st;
	struct rf_audit *audit;
	struct rf_ca *ca; /* for renewals, opened on first use */
	struct rf_limits *limits;
	struct rf_connector_cache *cache; /* decisions' facts (under lock) */
	/* Connection keys loaded from the token, by id (under lock): a
	 * load reads and checks the public key, which costs more than the
	 * signature for RSA. Only the current key of a connection is asked
	 * for; a key disabled by an incident fails in the token. */
	struct rf_key *kcache[KCACHE];
	size_t knext;
	/* The next jti's random bytes (under lock): rnd[rndoff..) unused,
	 * each taken wiped. */
	uint8_t rnd[16 * JTI_BATCH];
	size_t rndoff;
	/* The recorder: a queue, its thread and store connection. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond, qspace;
	struct pending *q;
	size_t nq;
	int qstop, rec_running;
	pthread_t rec;
	struct rf_store *rst;
	struct rf_audit *raudit;
	struct rf_seen *seen; /* the recorder's baselines, a batch at a time */
	struct rf_leaf_quota refusals; /* the recorder's */
	/* The recorder's: (tenant, conn, serial) known in conn_reestablished,
	 * whose rows nothing deletes; added once their batch commits. */
	struct reest_key {
		char tenant[128], conn[64], serial[41];
	} reest[REEST_N];
	size_t nreest;
	/* Webhook delivery: its own thread and store connection. */
	pthread_t wh;
	int wh_running, wh_stop;
	pthread_mutex_t wh_lock;
	pthread_cond_t wh_cond;
};

/* The recorder's thread (recorder.c): started by rf_connector_svc_new. */
void *svc_recorder_main(void *arg);
/* p queued for the recorder (recorder.c); waits while the queue is full. */
void svc_enqueue(struct rf_connector_svc *svc, const struct pending *p);
/* *a for error r, keyd's refusals as the caller's to fix (service.c). */
void svc_answer_fail(struct rf_api_answer *a, int r);
/* 1 when a is answered: proof required and missing, or off the clock
 * (service.c). */
int svc_proof_missing(const struct rf_connector_svc *svc, const char *proof,
    struct rf_api_answer *a);
/* The bucket of proofs of certificate serial in the service's limits. */
void svc_proof_key(const char *serial, char key[64]);
/* A token of that bucket taken at now (as rf_limits_take), and given
 * back: a request with a proof takes one, and gives it back unless keyd
 * finds its proof bad (svc_bad_proof(r): r is keyd's bad_proof). */
int svc_proof_token(struct rf_connector_svc *svc, const char *serial,
    int64_t now, int *retry_after);
void svc_proof_token_back(struct rf_connector_svc *svc, const char *serial);
int svc_bad_proof(int r);
/* Who asks with cert_serial (a connector known and not revoked), under
 * svc->lock: 0 (v says who), 1 with *a answered, or an error. */
int svc_who_asks(struct rf_connector_svc *svc, const char *cert_serial,
    int64_t now, struct rf_connector_verdict *v, struct rf_api_answer *a);

#endif
