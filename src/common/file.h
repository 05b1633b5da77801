/*
 * file.h: writing files without following anyone's links. Every file a
 * command writes (certificates, CRLs, checkpoints, incident packages) is
 * written under a directory descriptor: a temporary created with
 * O_CREAT|O_EXCL|O_NOFOLLOW next to its final name, written, fsync'd,
 * renamed over the name with renameat, and the folder fsync'd, so that a
 * reader sees the old file or the whole new one, and a link planted at
 * the temporary's name or the final name is never written through.
 */
#ifndef RF_COMMON_FILE_H
#define RF_COMMON_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rf.h"

/*
 * Open a folder for rf_file_write_at (O_DIRECTORY; close with close()).
 * RF_ERR_IO naming path when it is not a reachable folder.
 */
int rf_file_open_dir(const char *path, int *dirfd) RF_WUR;

/*
 * Write name (one path component: not empty, ".", "..", no "/") in the
 * folder dirfd, atomically, with mode. RF_ERR_ARG for a bad name,
 * RF_ERR_STORE_FULL on ENOSPC, RF_ERR_IO otherwise; on error nothing is
 * left behind (the final name keeps its old content).
 */
int rf_file_write_at(int dirfd, const char *name, const uint8_t *data,
    size_t len, int mode) RF_WUR;

/* 0 if name is one path component that is not "." or "..". */
int rf_file_name_check(const char *name) RF_WUR;

#endif
