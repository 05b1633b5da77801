/*
 * fuzz_fx.h: a store of a fuzz target's own, made once in a temporary
 * folder that goes when the process exits (the replay in make test, or a
 * libFuzzer run). Header-only: each target is one file (CMakeLists.txt).
 */
#ifndef RF_FUZZ_FX_H
#define RF_FUZZ_FX_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static char fuzz_fx_dir[64];
static struct rf_store *fuzz_fx_st;

static int
fuzz_fx_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
fuzz_fx_done(void)
{
	rf_store_free(fuzz_fx_st);
	fuzz_fx_st = NULL;
	if (fuzz_fx_dir[0] != '\0')
		(void)nftw(fuzz_fx_dir, fuzz_fx_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* The store (aborts when it cannot be made); its folder in fuzz_fx_dir.
 * done, if not NULL, runs at exit before the store is closed. */
static struct rf_store *
fuzz_fx_store(const char *name, void (*done)(void))
{
	char path[128];

	snprintf(
	    fuzz_fx_dir, sizeof(fuzz_fx_dir), "/tmp/rf-fuzz-%s.XXXXXX", name);
	if (mkdtemp(fuzz_fx_dir) == NULL)
		abort();
	atexit(fuzz_fx_done);
	if (done != NULL)
		atexit(done); /* runs first */
	snprintf(path, sizeof(path), "%s/ringfence.db", fuzz_fx_dir);
	if (rf_store_open(path, 1, &fuzz_fx_st) != 0)
		abort();
	return fuzz_fx_st;
}

#endif
