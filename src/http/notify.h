/*
 * notify.h: a change is visible when the command returns (docs/serve.md,
 * "Visibility").
 *
 * A running `serve` listens on a UNIX datagram socket, serve.sock in the
 * state folder. A command that committed a change (issue, revoke, contain,
 * ...) sends one datagram there before it exits and waits, at most
 * timeout_ms, for serve's answer, which comes once serve has reloaded its
 * OCSP responder and snapshot from the store: the first answer after the
 * command returns includes the change. No server (no socket, nobody
 * listening): no wait.
 */
#ifndef RF_HTTP_NOTIFY_H
#define RF_HTTP_NOTIFY_H

#include "common/config.h"
#include "common/rf.h"

struct rf_http;

#define RF_NOTIFY_SOCK "serve.sock"
#define RF_NOTIFY_TIMEOUT_MS 1000

/*
 * Client: tell the server of cfg->home that the store changed. *acked
 * (may be NULL) is 1 when it answered in time. Never fails the command:
 * 0, or RF_ERR_TIMEOUT-like RF_ERR_IO when a server exists but did not
 * answer within timeout_ms (the change is then visible within its poll).
 */
int rf_http_notify_send(
    const struct rf_config *cfg, int timeout_ms, int *acked) RF_WUR;

/* Server: bind serve.sock and watch it from the maintenance loop. */
int rf_http_notify_start(struct rf_http *h) RF_WUR;
void rf_http_notify_stop(struct rf_http *h);
/* Its descriptor for the maintenance loop's poll (-1: none), and what to
 * do when it is readable: reload once, then answer every waiting command. */
int rf_http_notify_fd(const struct rf_http *h);
void rf_http_notify_handle(struct rf_http *h);

/* server.c: reload what the workers answer from, now (maintenance thread). */
void rf_http_refresh_now(struct rf_http *h);

#endif
