/*
 * tokmeta.c: verified copies of SoftHSM's token metadata files
 * (tokmeta.h). Only files: no PKCS#11 call is made here.
 *
 * The file is SoftHSM's ObjectFile stream (src/lib/object_store/
 * ObjectFile.cpp, File.cpp), every integer 8 bytes big-endian:
 *
 *   generation
 *   { type, kind, value }*   kind 1: 1 byte (boolean)
 *                            kind 2: 8 bytes (unsigned long)
 *                            kind 3: length, bytes (byte string)
 *                            kind 4: length, map entries (attribute map)
 *                            kind 5: count, count x 8 bytes (mechanisms)
 *
 * The token's label is CKA_OS_TOKENLABEL (CKA_VENDOR_DEFINED + 0x5348 + 1,
 * 32 bytes space padded), its serial CKA_OS_TOKENSERIAL (+ 2). SoftHSM
 * writes the file under an fcntl lock on the file itself; we read and
 * replace it under an open-file-description lock, which conflicts with
 * those of other processes and not with SoftHSM's own in this process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/keys.h"
#include "keys/tokmeta.h"

#define META_MAX 65536 /* a token.object is a few hundred bytes */
#define CKA_OS_BASE (0x80000000UL + 0x5348UL)
#define CKA_OS_TOKENLABEL (CKA_OS_BASE + 1)
#define CKA_OS_TOKENSERIAL (CKA_OS_BASE + 2)
#define KIND_BOOL 1
#define KIND_ULONG 2
#define KIND_BYTES 3
#define KIND_MAP 4
#define KIND_MECHS 5

struct rd {
	const uint8_t *p;
	size_t left;
};

static int
rd_u64(struct rd *rd, uint64_t *v)
{
	size_t i;

	if (rd->left < 8)
		return -1;
	for (*v = 0, i = 0; i < 8; i++)
		*v = (*v << 8) | rd->p[i];
	rd->p += 8;
	rd->left -= 8;
	return 0;
}

static int
rd_skip(struct rd *rd, uint64_t n)
{
	if (n > rd->left)
		return -1;
	rd->p += n;
	rd->left -= (size_t)n;
	return 0;
}

/* One value of kind at rd; a byte string's start and length in *s, *slen. */
static int
rd_value(
    struct rd *rd, uint64_t kind, const uint8_t **s, size_t *slen, int depth)
{
	struct rd map;
	uint64_t n, t, k;

	*s = NULL;
	*slen = 0;
	switch (kind) {
	case KIND_BOOL:
		return rd_skip(rd, 1);
	case KIND_ULONG:
		return rd_skip(rd, 8);
	case KIND_BYTES:
		if (rd_u64(rd, &n) != 0 || n > rd->left)
			return -1;
		*s = rd->p;
		*slen = (size_t)n;
		return rd_skip(rd, n);
	case KIND_MECHS:
		if (rd_u64(rd, &n) != 0 || n > rd->left / 8)
			return -1;
		return rd_skip(rd, 8 * n);
	case KIND_MAP:
		/* Its entries must fill exactly the length it announces. */
		if (depth > 0 || rd_u64(rd, &n) != 0 || n > rd->left)
			return -1;
		map.p = rd->p;
		map.left = (size_t)n;
		while (map.left > 0)
			if (rd_u64(&map, &t) != 0 || rd_u64(&map, &k) != 0 ||
			    k == KIND_MAP ||
			    rd_value(&map, k, s, slen, depth + 1) != 0)
				return -1;
		*s = NULL;
		*slen = 0;
		return rd_skip(rd, n);
	default:
		return -1;
	}
}

/* A 32-byte space-padded label or 16-byte serial, as a C string. */
static int
copy_padded(const uint8_t *s, size_t len, size_t want, char *out)
{
	if (s == NULL || len != want)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\0'))
		out[--len] = '\0';
	return 0;
}

int
rf_keys_tokmeta_parse(
    const uint8_t *buf, size_t len, char label[33], char serial[17])
{
	struct rd rd = {buf, len};
	const uint8_t *s;
	size_t slen;
	uint64_t gen, type, kind;
	int have_label = 0, have_serial = 0;

	label[0] = serial[0] = '\0';
	if (buf == NULL || rd_u64(&rd, &gen) != 0)
		return rf_err_set(
		    RF_ERR_MALFORMED, "token metadata: no generation");
	while (rd.left > 0) {
		if (rd_u64(&rd, &type) != 0 || rd_u64(&rd, &kind) != 0 ||
		    rd_value(&rd, kind, &s, &slen, 0) != 0)
			return rf_err_set(RF_ERR_MALFORMED,
			    "token metadata: attribute stream cut short or "
			    "malformed");
		if (type == CKA_OS_TOKENLABEL) {
			if (kind != KIND_BYTES ||
			    copy_padded(s, slen, 32, label) != 0)
				return rf_err_set(RF_ERR_MALFORMED,
				    "token metadata: bad label");
			have_label = 1;
		} else if (type == CKA_OS_TOKENSERIAL) {
			if (kind != KIND_BYTES ||
			    copy_padded(s, slen, 16, serial) != 0)
				return rf_err_set(RF_ERR_MALFORMED,
				    "token metadata: bad serial");
			have_serial = 1;
		}
	}
	if (!have_label || !have_serial)
		return rf_err_set(RF_ERR_MALFORMED,
		    "token metadata: no token label or serial");
	return 0;
}

/* 1 if label is base or base.<n> (a token of this key store). */
static int
ours(const char *label, const char *base)
{
	size_t n = strlen(base);
	const char *p;

	if (strncmp(label, base, n) != 0)
		return 0;
	if (label[n] == '\0')
		return 1;
	if (label[n] != '.' || label[n + 1] == '\0')
		return 0;
	for (p = label + n + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* The token folder named in softhsm2.conf (directories.tokendir). */
static int
token_dir(const struct rf_config *cfg, char *out, size_t cap)
{
	char line[RF_PATH_MAX + 64], *p, *e;
	FILE *f;
	int r = RF_ERR_NOT_FOUND;

	if (cfg->softhsm_conf[0] == '\0' ||
	    (f = fopen(cfg->softhsm_conf, "re")) == NULL)
		return RF_ERR_NOT_FOUND;
	while (fgets(line, sizeof(line), f) != NULL) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (strncmp(p, "directories.tokendir", 20) != 0)
			continue;
		if ((p = strchr(p, '=')) == NULL)
			continue;
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		e = p + strlen(p);
		while (e > p &&
		    (e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t' ||
			e[-1] == '\r'))
			*--e = '\0';
		if (*p != '\0' && (size_t)snprintf(out, cap, "%s", p) < cap)
			r = 0;
	}
	fclose(f);
	return r;
}

/* Lock (F_RDLCK or F_WRLCK) the whole file fd, waiting for a writer. */
static int
ofd_lock(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_OFD_SETLKW, &fl) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* Read the open file fd whole (at most META_MAX bytes). */
static int
read_fd(int fd, uint8_t **out, size_t *len)
{
	uint8_t *buf;
	size_t n = 0;
	ssize_t k;

	*out = NULL;
	*len = 0;
	if ((buf = malloc(META_MAX)) == NULL)
		return RF_ERR_ALLOC;
	if (lseek(fd, 0, SEEK_SET) != 0) {
		free(buf);
		return RF_ERR_IO;
	}
	while (n < META_MAX && (k = read(fd, buf + n, META_MAX - n)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			free(buf);
			return RF_ERR_IO;
		}
		n += (size_t)k;
	}
	*out = buf; /* the caller's */
	*len = n;
	return 0;
}

/* fsync a folder, so that a rename in it is durable. */
static int
sync_dir(const char *dir)
{
	int fd, r = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return rf_err_set(
		    RF_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
	if (fsync(fd) != 0)
		r = rf_err_set(
		    RF_ERR_IO, "cannot sync %s: %s", dir, strerror(errno));
	close(fd);
	return r;
}

/* $RINGFENCE_HOME/token-meta[/<uuid>.object]. */
static int
meta_path(const struct rf_config *cfg, const char *uuid, char *out, size_t cap)
{
	int n;

	if (uuid == NULL)
		n = snprintf(out, cap, "%s/token-meta", cfg->home);
	else
		n = snprintf(
		    out, cap, "%s/token-meta/%s.object", cfg->home, uuid);
	if (n < 0 || (size_t)n >= cap)
		return rf_err_set(RF_ERR_CONFIG, "state folder path too long");
	return 0;
}

/*
 * Check one token folder: put its copy back if token.object is torn and
 * the copy verifies. *restored is 1 when it did, with the copy's label.
 */
static int
restore_one(const struct rf_config *cfg, const char *dir, const char *uuid,
    int *restored, char label[33])
{
	char obj[RF_PATH_MAX + 500], copy[RF_PATH_MAX + 128], serial[17];
	char lab[33];
	uint8_t *cur = NULL, *saved = NULL;
	size_t curlen = 0, savedlen = 0;
	int fd = -1, r;

	*restored = 0;
	snprintf(obj, sizeof(obj), "%s/token.object", dir);
	if ((r = meta_path(cfg, uuid, copy, sizeof(copy))) != 0)
		return r;
	if ((fd = open(obj, O_RDWR | O_CLOEXEC)) < 0)
		return 0; /* not a token folder, or not ours to fix */
	/* Under the write lock no SoftHSM of another process is writing. */
	if (ofd_lock(fd, F_WRLCK) != 0 || (r = read_fd(fd, &cur, &curlen)) != 0)
		goto out;
	if (curlen > 0 &&
	    rf_keys_tokmeta_parse(cur, curlen, lab, serial) == 0) {
		r = 0; /* whole: nothing to do */
		goto out;
	}
	rf_err_clear();
	if (rf_read_file(copy, META_MAX, &saved, &savedlen) != 0 ||
	    rf_keys_tokmeta_parse(saved, savedlen, lab, serial) != 0 ||
	    !ours(lab, cfg->token)) {
		rf_err_clear();
		r = 0; /* no verified copy: SoftHSM will leave it out */
		goto out;
	}
	if ((r = rf_write_file(obj, saved, savedlen, 0600)) != 0 ||
	    (r = sync_dir(dir)) != 0)
		goto out;
	snprintf(label, 33, "%s", lab);
	*restored = 1;
out:
	if (fd >= 0)
		close(fd); /* and its lock */
	free(cur);
	free(saved);
	return r;
}

int
rf_tokmeta_restore(const struct rf_config *cfg, struct rf_tokmeta_restored *out,
    int max, int *n)
{
	char tdir[RF_PATH_MAX + 64], dir[RF_PATH_MAX + 400], label[33];
	struct dirent *e;
	DIR *d;
	int done, r = 0;

	*n = 0;
	if (token_dir(cfg, tdir, sizeof(tdir)) != 0 ||
	    (d = opendir(tdir)) == NULL)
		return 0; /* not an embedded SoftHSM store */
	while ((e = readdir(d)) != NULL && r == 0) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= 64)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", tdir, e->d_name);
		if ((r = restore_one(cfg, dir, e->d_name, &done, label)) != 0 ||
		    !done || *n >= max)
			continue;
		snprintf(
		    out[*n].uuid, sizeof(out[*n].uuid), "%.63s", e->d_name);
		snprintf(out[*n].label, sizeof(out[*n].label), "%s", label);
		(*n)++;
	}
	closedir(d);
	return r;
}

/* Save the copy of one token folder's file if it verifies and changed. */
static int
save_one(const struct rf_config *cfg, const char *dir, const char *uuid,
    int (*known)(void *arg, const char *label, const char *serial), void *arg)
{
	char obj[RF_PATH_MAX + 500], copy[RF_PATH_MAX + 128], mdir[RF_PATH_MAX];
	char label[33], serial[17];
	uint8_t *cur = NULL, *saved = NULL;
	size_t curlen = 0, savedlen = 0;
	int fd = -1, r = 0;

	snprintf(obj, sizeof(obj), "%s/token.object", dir);
	if ((fd = open(obj, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if (ofd_lock(fd, F_RDLCK) != 0 || read_fd(fd, &cur, &curlen) != 0)
		goto out;
	close(fd); /* the lock too: the copy is ours alone */
	fd = -1;
	if (rf_keys_tokmeta_parse(cur, curlen, label, serial) != 0 ||
	    !ours(label, cfg->token) || !known(arg, label, serial)) {
		rf_err_clear();
		goto out; /* torn now, or not a token of this store */
	}
	if ((r = meta_path(cfg, uuid, copy, sizeof(copy))) != 0)
		goto out;
	/* Only when it differs, the generation counter (8 bytes) aside. */
	if (rf_read_file(copy, META_MAX, &saved, &savedlen) == 0 &&
	    savedlen == curlen && curlen >= 8 &&
	    memcmp(saved + 8, cur + 8, curlen - 8) == 0)
		goto out;
	rf_err_clear();
	if ((r = meta_path(cfg, NULL, mdir, sizeof(mdir))) != 0)
		goto out;
	if (mkdir(mdir, 0700) != 0 && errno != EEXIST) {
		r = rf_err_set(
		    RF_ERR_IO, "cannot create %s: %s", mdir, strerror(errno));
		goto out;
	}
	if ((r = rf_write_file(copy, cur, curlen, 0600)) == 0)
		r = sync_dir(mdir);
out:
	if (fd >= 0)
		close(fd);
	free(cur);
	free(saved);
	return r;
}

int
rf_tokmeta_save(const struct rf_config *cfg,
    int (*known)(void *arg, const char *label, const char *serial), void *arg)
{
	char tdir[RF_PATH_MAX + 64], dir[RF_PATH_MAX + 400];
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (token_dir(cfg, tdir, sizeof(tdir)) != 0 ||
	    (d = opendir(tdir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && r == 0) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= 64)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", tdir, e->d_name);
		r = save_one(cfg, dir, e->d_name, known, arg);
	}
	closedir(d);
	return r;
}

/* The label of the token whose folder is dir, if its token.object reads. */
static int
folder_label(const char *dir, char label[33])
{
	char obj[RF_PATH_MAX + 500], serial[17];
	uint8_t *cur = NULL;
	size_t len = 0;
	int fd, r = -1;

	label[0] = '\0';
	snprintf(obj, sizeof(obj), "%s/token.object", dir);
	if ((fd = open(obj, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	/* Under the read lock no SoftHSM is halfway through rewriting it. */
	if (ofd_lock(fd, F_RDLCK) == 0 && read_fd(fd, &cur, &len) == 0 &&
	    rf_keys_tokmeta_parse(cur, len, label, serial) == 0)
		r = 0;
	rf_err_clear();
	close(fd);
	free(cur);
	return r;
}

int
rf_tokmeta_missing(const struct rf_config *cfg, char *tdir, size_t cap,
    struct rf_tokmeta_folder *out, int max, int *n)
{
	char mdir[RF_PATH_MAX], dir[RF_PATH_MAX + 400], label[33], serial[17];
	char copy[RF_PATH_MAX + 128];
	uint8_t *saved = NULL;
	struct dirent *e;
	size_t len, ulen;
	DIR *d;
	int i;

	*n = 0;
	if (token_dir(cfg, tdir, cap) != 0 ||
	    meta_path(cfg, NULL, mdir, sizeof(mdir)) != 0 ||
	    (d = opendir(mdir)) == NULL) {
		rf_err_clear();
		return 0; /* not an embedded SoftHSM store, or no copy yet */
	}
	/* The tokens whose own folder does not read as theirs. */
	while ((e = readdir(d)) != NULL && *n < max) {
		struct rf_tokmeta_folder *t = &out[*n];

		ulen = strlen(e->d_name);
		if (e->d_name[0] == '.' || ulen <= 7 || ulen - 7 >= 64 ||
		    strcmp(e->d_name + ulen - 7, ".object") != 0)
			continue;
		snprintf(t->uuid, sizeof(t->uuid), "%.*s", (int)(ulen - 7),
		    e->d_name);
		if (meta_path(cfg, t->uuid, copy, sizeof(copy)) != 0 ||
		    rf_read_file(copy, META_MAX, &saved, &len) != 0 ||
		    rf_keys_tokmeta_parse(saved, len, t->label, serial) != 0 ||
		    !ours(t->label, cfg->token)) {
			rf_err_clear();
			free(saved);
			saved = NULL;
			continue;
		}
		free(saved);
		saved = NULL;
		snprintf(dir, sizeof(dir), "%s/%s", tdir, t->uuid);
		if (folder_label(dir, label) != 0 ||
		    strcmp(label, t->label) != 0)
			(*n)++;
	}
	closedir(d);
	if (*n == 0)
		return 0;
	/* A token found in another folder is not missing. */
	if ((d = opendir(tdir)) == NULL)
		return 0; /* nor is any other folder there */
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= 64)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", tdir, e->d_name);
		if (folder_label(dir, label) != 0)
			continue;
		for (i = 0; i < *n; i++)
			if (strcmp(out[i].label, label) == 0) {
				out[i] = out[--(*n)];
				break;
			}
	}
	closedir(d);
	return 0;
}
