/* Helpers shared by the cmocka unit tests. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

#define TU_PIN "1234"
#define TU_SO_PIN "12345678"

char *
tu_home(void)
{
	const char *tmp = getenv("TMPDIR");
	char *home;

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	assert_true(asprintf(&home, "%s/rf-test-XXXXXX", tmp) > 0);
	assert_non_null(mkdtemp(home));
	setenv("RINGFENCE_HOME", home, 1);
	unsetenv("RINGFENCE_PIN");
	unsetenv("RINGFENCE_MODULE");
	unsetenv("RINGFENCE_TOKEN");
	unsetenv("RINGFENCE_NOW");
	return home;
}

void
tu_home_remove(char *home)
{
	if (home == NULL)
		return;
	if (getenv("RF_KEEP_TEST_HOME") == NULL)
		tu_sh("rm -rf '%s' '%s-custody'", home, home);
	free(home);
}

int
tu_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int st;

	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	st = system(cmd);
	free(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void
tu_token(const char *home, struct rf_config *cfg)
{
	char path[1100];
	FILE *f;

	assert_int_equal(tu_sh("mkdir -p '%s/tokens'", home), 0);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", home);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
	    "directories.tokendir = %s/tokens\n"
	    "objectstore.backend = file\nlog.level = ERROR\n"
	    "slots.removable = false\n",
	    home);
	fclose(f);
	assert_int_equal(tu_sh("SOFTHSM2_CONF='%s' softhsm2-util --init-token "
			       "--free --label ringfence --so-pin %s --pin %s "
			       ">/dev/null",
			     path, TU_SO_PIN, TU_PIN),
	    0);
	/* The PIN file lives in the custody folder beside home. */
	assert_int_equal(rf_config_load(cfg), 0);
	assert_int_equal(tu_sh("mkdir -p -m 700 '%s'", cfg->custody_dir), 0);
	assert_non_null(f = fopen(cfg->pin_file, "w"));
	fprintf(f, "%s\n", TU_PIN);
	fclose(f);
}

int
tu_handshake(SSL *c, SSL *s)
{
	BIO *cb, *sb;
	int i, cr = 0, sr = 0;

	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 20 && (cr != 1 || sr != 1); i++) {
		if (cr != 1) {
			cr = SSL_do_handshake(c);
			if (cr != 1 &&
			    SSL_get_error(c, cr) != SSL_ERROR_WANT_READ)
				break;
		}
		if (sr != 1) {
			sr = SSL_do_handshake(s);
			if (sr != 1 &&
			    SSL_get_error(s, sr) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	return cr == 1 && sr == 1;
}

X509 *
tu_self_signed(EVP_PKEY *pk, const char *cn)
{
	X509 *x;
	X509_NAME *nm;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	nm = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
			     (const unsigned char *)cn, -1, -1, 0),
	    1);
	assert_int_equal(X509_set_issuer_name(x, nm), 1);
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	return x;
}

struct sockaddr_storage
tu_addr(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(a, ':') != NULL) {
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, a, &s6->sin6_addr), 1);
	} else {
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, a, &s4->sin_addr), 1);
	}
	return ss;
}
