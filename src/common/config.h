/*
 * config.h: ringfence settings.
 *
 * Sources, later ones winning: built-in defaults,
 * $RINGFENCE_HOME/ringfence.conf (lines of `key = value`, `#` comments; see
 * docs/config.md), then the environment (RINGFENCE_<KEY> with the key
 * upper-cased, e.g. RINGFENCE_PIN).
 */
#ifndef RF_COMMON_CONFIG_H
#define RF_COMMON_CONFIG_H

#include <stdint.h>

#include "common/rf.h"

#define RF_PATH_MAX 1024
/* The largest ocsp_validity and crl_validity (s): keyd signs no answer or
 * CRL of serve's that lasts longer (keys/policy.c). */
#define RF_VALIDITY_MAX (30 * 86400)

struct rf_config {
	char home[RF_PATH_MAX];	   /* state folder (RINGFENCE_HOME) */
	char db_path[RF_PATH_MAX]; /* SQLite database: $home/ringfence.db */
	char module[RF_PATH_MAX];  /* PKCS#11 module path */
	char token[64];		   /* token label */
	int tokens;    /* tokens ringfence init makes for the embedded store */
	char pin[128]; /* user PIN; see pin_file */
	char pin_file[RF_PATH_MAX]; /* read when pin is empty */
	char
	    softhsm_conf[RF_PATH_MAX]; /* set as SOFTHSM2_CONF when non-empty */
	char listen[64];	       /* serve address, default 127.0.0.1 */
	int port;		       /* serve port, default 8440 */
	int tls_port;		       /* serve HTTPS port; 0: no TLS */
	char tls_names[256];	       /* SAN names of serve's TLS cert */
	char base_url[256];   /* put in CRL DP and AIA, no trailing / */
	char ca_alg[32];      /* root/issuing/OCSP key algorithm */
	char actor[128];      /* who acts, for the audit record */
	int root_days;	      /* validity of the root */
	int issuing_days;     /* validity of issuing CAs */
	int ocsp_signer_days; /* validity of the OCSP signer */
	int cert_days;	      /* validity of connection certificates */
	int ocsp_validity;    /* seconds an OCSP response is valid */
	int crl_validity;     /* seconds from thisUpdate to nextUpdate */
	int max_request;      /* largest HTTP request body, bytes */
	int sth_interval;     /* seconds between signed tree heads */
	int sth_leaves;	      /* leaves between signed tree heads */
	/* Connectors and client assertions (docs/connectors.md). */
	int connector_days;	  /* validity of connector certificates */
	char entra_key_alg[16];	  /* rsa-2048, rsa-3072 or rsa-4096 */
	char entra_jwt_alg[8];	  /* PS256 or RS256 */
	int assertion_lifetime;	  /* s from nbf to exp, at most 600 */
	int conn_rate;		  /* assertions per hour per connection */
	int conn_burst;		  /* and its bucket's capacity */
	int connector_rate;	  /* assertions per hour per connector */
	int connector_burst;	  /* and its bucket's capacity */
	int connector_renewals;	  /* API renewals a day per connector */
	char connector_proof[12]; /* optional or required (proof.c) */
	int detectors;		  /* 1: anomaly detectors on */
	int surge_per_minute;	  /* global assertions a minute before alert */
	char alert_webhook[256];  /* http://HOST:PORT/PATH, or "" */
	/* serve: budgets of anonymous peers (docs/serve.md "Budgets"). */
	int conns_per_source;	       /* connections held of one source */
	int tls_handshake_rate;	       /* signed handshakes/s, all peers */
	int tls_handshake_source_rate; /* signed handshakes/s, one source */
	int ocsp_ondemand_rate;	       /* on-demand OCSP signatures/s, all */
	int ocsp_ondemand_source_rate; /* on-demand OCSP signatures/s, one */
	int anon_audit_bytes_day;      /* audit leaf bytes/day they may add */
	int tls_ticket_rotate;	       /* s between session ticket keys */
	int audit_threads;	       /* serve: threads answering /audit */
	int audit_max_concurrent;      /* /audit requests at once; 503 past */
	/* custody process (keyd, docs/keys.md "Process split"): */
	char keyd_socket[RF_PATH_MAX]; /* default $home/keyd.sock */
	int keyd_idle;		       /* on-demand keyd exits when idle, s */
	int keyd_restart; /* serve starts a gone keyd, at most s apart; 0 no */
	char custody_user[64];	       /* keyd's user when started as root */
	char server_user[64];	       /* serve's user when started as root */
	char admin_group[64];	       /* members are keyd admins */
	char custody_dir[RF_PATH_MAX]; /* PIN folder, default $home-custody */
	int keyd_tls_rate;	       /* TLS signatures/s for serve's class */
	/* standby key pool (src/pool): target free keys per algorithm, -1
	 * for the default (connections of that algorithm plus pool_margin
	 * percent) */
	int pool_ec_p256, pool_ec_p384, pool_rsa_2048, pool_rsa_3072,
	    pool_rsa_4096;
	int pool_margin; /* percent over the connections, default 10 */
	int pool_refill; /* 1: keyd refills the pool when idle; 0: only
			    `keys pool fill` */
	/* serve: threads answering what waits on keyd's signatures, and
	 * such requests at once (503 or tryLater past it) */
	int sign_threads, sign_max_concurrent;
};

/*
 * Fill cfg: defaults, then the config file if present, then the
 * environment. An unknown key or a bad value is RF_ERR_CONFIG naming it.
 */
int rf_config_load(struct rf_config *cfg) RF_WUR;

/* The PIN to log in with: cfg->pin, else the contents of cfg->pin_file. */
int rf_config_pin(const struct rf_config *cfg, char *pin, size_t pinlen) RF_WUR;

#endif
