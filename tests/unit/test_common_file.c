/*
 * Unit tests for common/file.h: files written under a folder descriptor,
 * never through a planted link (issue 13 item 9).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "testutil.h"

static char *
slurp(const char *path)
{
	uint8_t *b = NULL;
	size_t n = 0;
	char *s;

	assert_int_equal(rf_read_file(path, 1 << 20, &b, &n), 0);
	assert_non_null(s = calloc(1, n + 1));
	memcpy(s, b, n);
	free(b);
	return s;
}

static void
test_write_and_replace(void **state)
{
	char *home = tu_home(), path[1024], *s;
	struct stat sb;
	int dfd;

	(void)state;
	assert_int_equal(rf_file_open_dir(home, &dfd), 0);
	assert_int_equal(
	    rf_file_write_at(dfd, "a.pem", (const uint8_t *)"one", 3, 0600), 0);
	assert_int_equal(
	    rf_file_write_at(dfd, "a.pem", (const uint8_t *)"two", 3, 0644), 0);
	snprintf(path, sizeof(path), "%s/a.pem", home);
	s = slurp(path);
	assert_string_equal(s, "two");
	free(s);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	/* Only the file: no temporary left behind. */
	assert_int_equal(tu_sh("test $(ls -A '%s' | wc -l) -eq 1", home), 0);
	/* Names that are not one component. */
	assert_int_equal(
	    rf_file_write_at(dfd, "..", NULL, 0, 0600), RF_ERR_ARG);
	assert_int_equal(rf_file_write_at(dfd, ".", NULL, 0, 0600), RF_ERR_ARG);
	assert_int_equal(rf_file_write_at(dfd, "", NULL, 0, 0600), RF_ERR_ARG);
	assert_int_equal(
	    rf_file_write_at(dfd, "x/../../y", NULL, 0, 0600), RF_ERR_ARG);
	close(dfd);
	/* The path form goes through the same helper. */
	snprintf(path, sizeof(path), "%s/b.pem", home);
	assert_int_equal(
	    rf_write_file(path, (const uint8_t *)"three", 5, 0644), 0);
	s = slurp(path);
	assert_string_equal(s, "three");
	free(s);
	snprintf(path, sizeof(path), "%s/no/such/b.pem", home);
	assert_int_equal(
	    rf_write_file(path, (const uint8_t *)"x", 1, 0644), RF_ERR_IO);
	assert_non_null(strstr(rf_err_msg(RF_ERR_IO), "cannot open folder"));
	tu_home_remove(home);
}

/*
 * A symlink planted at the temporary's first name and one at the final
 * name: neither is written through; the victim keeps its content.
 */
static void
test_planted_links(void **state)
{
	char *home = tu_home(), victim[1024], link[1024], path[1024], *s;
	struct stat sb;
	int dfd;

	(void)state;
	snprintf(victim, sizeof(victim), "%s/victim", home);
	assert_int_equal(
	    rf_write_file(victim, (const uint8_t *)"keep", 4, 0600), 0);
	snprintf(
	    link, sizeof(link), "%s/out.pem.tmp.%ld", home, (long)getpid());
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(rf_file_open_dir(home, &dfd), 0);
	assert_int_equal(
	    rf_file_write_at(dfd, "out.pem", (const uint8_t *)"new", 3, 0644),
	    0);
	s = slurp(victim);
	assert_string_equal(s, "keep");
	free(s);
	/* The planted link is left as it was; the output is a file. */
	assert_int_equal(lstat(link, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	snprintf(path, sizeof(path), "%s/out.pem", home);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	/* A link at the final name is replaced, not followed. */
	snprintf(path, sizeof(path), "%s/crl.der", home);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(
	    rf_file_write_at(dfd, "crl.der", (const uint8_t *)"crl", 3, 0644),
	    0);
	s = slurp(victim);
	assert_string_equal(s, "keep");
	free(s);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	close(dfd);
	tu_home_remove(home);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_and_replace),
	    cmocka_unit_test(test_planted_links),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
