/* file.c: files written under a directory descriptor (file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/file.h"

#define TMP_TRIES 8

int
rf_file_name_check(const char *name)
{
	size_t len;

	if (name == NULL || (len = strlen(name)) == 0 ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strchr(name, '/') != NULL || len > 200)
		return rf_err_set(RF_ERR_ARG,
		    "invalid file name \"%.80s\": use one name of at most 200 "
		    "characters, without \"/\", not \".\" or \"..\"",
		    name == NULL ? "" : name);
	return 0;
}

int
rf_file_open_dir(const char *path, int *dirfd)
{
	*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return rf_err_set(RF_ERR_IO, "cannot open folder %s: %s", path,
		    strerror(errno));
	return 0;
}

static int
io_err(int err, const char *what, const char *name)
{
	return rf_err_set(
	    err == ENOSPC || err == EDQUOT ? RF_ERR_STORE_FULL : RF_ERR_IO,
	    "cannot %s %s: %s%s", what, name, strerror(err),
	    err == ENOSPC || err == EDQUOT ? ": free disk space" : "");
}

/*
 * The temporary: "<name>.tmp.<pid>" first, then random suffixes, each
 * created exclusively and without following a link; whatever occupies a
 * name (a planted symlink, another writer's temporary) is left alone.
 */
static int
tmp_create(
    int dirfd, const char *name, int mode, char *tmp, size_t tmplen, int *fd)
{
	uint8_t rnd[8];
	char hex[17];
	int i;

	for (i = 0; i < TMP_TRIES; i++) {
		if (i == 0)
			snprintf(hex, sizeof(hex), "%ld", (long)getpid());
		else if (RAND_bytes(rnd, sizeof(rnd)) == 1)
			rf_hex(rnd, sizeof(rnd), hex);
		else
			return rf_err_set(RF_ERR_INTERNAL,
			    "no random bytes for a temporary file name");
		if ((size_t)snprintf(tmp, tmplen, "%s.tmp.%s", name, hex) >=
		    tmplen)
			return rf_err_set(
			    RF_ERR_ARG, "file name too long: %s", name);
		*fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return io_err(errno, "write", name);
	}
	return rf_err_set(RF_ERR_IO,
	    "cannot write %s: %d temporary names next to it are taken", name,
	    TMP_TRIES);
}

int
rf_file_write_at(
    int dirfd, const char *name, const uint8_t *data, size_t len, int mode)
{
	char tmp[256];
	int fd = -1, made = 0, r;
	size_t off = 0;
	ssize_t n;

	if ((r = rf_file_name_check(name)) != 0)
		return r;
	if ((r = tmp_create(dirfd, name, mode, tmp, sizeof(tmp), &fd)) != 0)
		return r;
	made = 1;
	while (off < len) {
		if ((n = write(fd, data + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			r = io_err(errno, "write", name);
			goto out;
		}
		off += (size_t)n;
	}
	/* The content is on disk before the name points at it. */
	if (fsync(fd) != 0) {
		r = io_err(errno, "write", name);
		goto out;
	}
	n = close(fd);
	fd = -1;
	if (n != 0) {
		r = io_err(errno, "write", name);
		goto out;
	}
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		r = io_err(errno, "rename the temporary file to", name);
		goto out;
	}
	made = 0;
	/* The rename is on disk when the folder is. */
	if (fsync(dirfd) != 0) {
		r = io_err(errno, "sync the folder of", name);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (made)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}
