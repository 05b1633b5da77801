/*
 * rf.h: what every ringfence module shares: the error enum, the error
 * detail buffer, a settable clock and small encoding helpers.
 *
 * Error convention (after OpenSSH ssherr.h): every fallible function returns
 * 0 on success or a negative RF_ERR_* code. A function that detects an error
 * may attach a one-line, actionable detail with rf_err_set(); the CLI prints
 * rf_err_msg(r). The library never prints.
 */
#ifndef RF_COMMON_RF_H
#define RF_COMMON_RF_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define RF_WUR __attribute__((warn_unused_result))
#define RF_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum rf_err {
	RF_OK = 0,
	RF_ERR_INTERNAL = -1,
	RF_ERR_ALLOC = -2,
	RF_ERR_ARG = -3,    /* caller passed something invalid */
	RF_ERR_CONFIG = -4, /* a setting is missing or invalid */
	RF_ERR_IO = -5,	    /* file system */
	RF_ERR_NOT_FOUND = -6,
	RF_ERR_EXISTS = -7,
	RF_ERR_NOT_INITIALISED = -8,
	RF_ERR_ALREADY_INITIALISED = -9,
	RF_ERR_TOKEN_MODULE = -10,    /* PKCS#11 module cannot be loaded */
	RF_ERR_TOKEN_NOT_FOUND = -11, /* no token with that label */
	RF_ERR_TOKEN_PIN = -12,	      /* PIN rejected */
	RF_ERR_TOKEN = -13,	      /* other token failure */
	RF_ERR_KEY_NOT_FOUND = -14,
	RF_ERR_KEY_DISABLED = -15,
	RF_ERR_SIGNATURE_INVALID = -16, /* a signature failed verification */
	RF_ERR_STORE = -17,		/* database failure */
	RF_ERR_STORE_READONLY = -18,
	RF_ERR_STORE_FULL = -19,
	RF_ERR_STORE_BUSY = -20,
	RF_ERR_AUDIT = -21,	     /* audit record could not be appended */
	RF_ERR_AUDIT_TAMPERED = -22, /* verification found a modification */
	RF_ERR_CSR_MALFORMED = -23,
	RF_ERR_CSR_SIGNATURE = -24,
	RF_ERR_KEY_DISALLOWED = -25, /* key type or size not allowed */
	RF_ERR_CSR_REQUEST = -26,    /* CSR asks for something not allowed */
	RF_ERR_KEY_REUSED = -27,     /* public key serves another tenant */
	RF_ERR_MALFORMED = -28,	     /* other untrusted input is malformed */
	RF_ERR_TOO_LARGE = -29,
	RF_ERR_STATE = -30, /* operation not allowed in this state */
	RF_ERR_PROOF = -31, /* Merkle proof does not verify */
	/* custody process (keyd): */
	RF_ERR_CUSTODY = -32, /* ended before answering, or unreachable */
	RF_ERR_REFUSED = -33, /* refused by its policy for the caller */
};

/* A fixed string for the code; never NULL. */
const char *rf_err_str(int r);

/*
 * Attach a detail to the error about to be returned (thread-local; the
 * latest call wins). Returns r so that `return rf_err_set(r, "...")` reads.
 */
int rf_err_set(int r, const char *fmt, ...) RF_PRINTF(2, 3);
/* The detail if one was set for r since rf_err_clear(), else rf_err_str(r). */
const char *rf_err_msg(int r);
void rf_err_clear(void);

/*
 * A result reached on another thread, with its detail (which is thread-
 * local): rf_err_keep on the worker keeps r and its message and clears the
 * worker's; rf_err_kept on the thread that waited sets them again there
 * and returns r.
 */
struct rf_err_held {
	int r;
	char msg[512];
};
void rf_err_keep(struct rf_err_held *h, int r);
int rf_err_kept(const struct rf_err_held *h);

/*
 * Clock: seconds since the epoch. Tests and verifiers set it; 0 restores the
 * wall clock. In test builds only (CMake RF_TEST_CLOCK), RINGFENCE_NOW
 * (seconds) in the environment also sets it, as it was at the first call.
 */
int64_t rf_now(void);
/* t as UTC ISO 8601 ("2026-12-07T06:45:00Z"; digits if it cannot be). */
void rf_iso_time(int64_t t, char out[32]);

/* Seconds on the monotonic clock, for durations (never set by tests). */
double rf_mono_s(void);

/*
 * Test builds only (RF_SANITIZE defines RF_TEST_SEAMS): kill the process
 * with SIGKILL at the named point when RINGFENCE_TEST_KILL_AT names it, so
 * that a test can interrupt a command at a chosen moment. In other builds
 * it is nothing at all: no branch on the production path.
 */
#ifdef RF_TEST_SEAMS
void rf_test_point(const char *name);
#else
#define rf_test_point(name) ((void)(name))
#endif
/* Test builds only, likewise: sleep RINGFENCE_TEST_PAUSE_MS (default 2000)
 * at the named point when RINGFENCE_TEST_PAUSE_AT names it, so that a
 * test can hold a long operation open and watch what else goes on; one
 * line on stderr says the pause began. */
#ifdef RF_TEST_SEAMS
void rf_test_pause(const char *name);
#else
#define rf_test_pause(name) ((void)(name))
#endif
void rf_clock_set(int64_t t);

/* Encoding helpers. Output buffers are caller-owned and NUL-terminated. */
void rf_hex(const uint8_t *in, size_t len, char *out); /* out: 2*len+1 */
int rf_unhex(const char *in, uint8_t *out, size_t outlen, size_t *len) RF_WUR;
/* base64url without padding; out: rf_b64url_len(len)+1 bytes. */
size_t rf_b64url_len(size_t len);
void rf_b64url(const uint8_t *in, size_t len, char *out);

/*
 * The IPv4 address an IPv4-mapped IPv6 address carries (::ffff:a.b.c.d,
 * RFC 4291 2.5.5.2): its 4 bytes inside a16, or NULL for any other
 * address. Every comparison of sources treats such an address as its IPv4
 * one: a dual-stack socket reports an IPv4 peer so.
 */
const uint8_t *rf_ip_v4mapped(const uint8_t a16[16]);
/*
 * The network of a peer address, as text: its /24 for IPv4 and for an
 * IPv4-mapped IPv6 address ("10.1.2.0/24"), its /64 for other IPv6
 * ("2001:db8:1:2::/64"). 1 when ip is an address; 0 otherwise, with ip
 * itself in out (60 characters at most): compare the results too, so that
 * such text never matches a network.
 */
int rf_ip_network(const char *ip, char out[64]);

/* Read a whole file, at most max bytes (RF_ERR_TOO_LARGE beyond). */
int rf_read_file(
    const char *path, size_t max, uint8_t **out, size_t *outlen) RF_WUR;
/* Write a file atomically under its folder's descriptor (common/file.h:
 * O_EXCL|O_NOFOLLOW temporary, fsync, renameat, fsync of the folder). */
int rf_write_file(
    const char *path, const uint8_t *data, size_t len, int mode) RF_WUR;

/* Zero then free; accepts NULL. */
void rf_freezero(void *p, size_t len);

/*
 * Run fn(arg, from, to) over [0, n) cut into `threads` (1-16) contiguous
 * ranges, the first in the calling thread; a range whose thread cannot be
 * started runs in the caller. fn must be safe on disjoint ranges at once.
 */
/* Take NAME out of the environment and wipe its entry's bytes, name and
 * value, so that /proc/PID/environ no longer shows either. */
void rf_env_wipe(const char *name);

void rf_parallel(
    size_t n, int threads, void (*fn)(void *, size_t, size_t), void *arg);

/*
 * rf_parallel's threads kept for the next call: threads - 1 (1-16 in all)
 * workers wait for each rf_crew_run, which cuts [0, n) as rf_parallel
 * does and runs the first range itself. For a caller that runs many small
 * rounds (keyd's signer: a few signatures each), where starting and
 * joining a thread per round cost as much as a signature. Runs are one at
 * a time (a second caller waits). A worker that cannot be started leaves
 * its share to the others. name (15 bytes at most) names the workers for
 * top -H and perf.
 */
struct rf_crew;
int rf_crew_new(int threads, const char *name, struct rf_crew **out) RF_WUR;
void rf_crew_run(
    struct rf_crew *c, size_t n, void (*fn)(void *, size_t, size_t), void *arg);
void rf_crew_free(struct rf_crew *c);

#endif
