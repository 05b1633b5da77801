/*
 * The fixture of the store's unit tests: a fresh state folder with a store
 * at home/state.db, opened for writing. Included by test_store*.c.
 */
#ifndef RF_STORE_FX_H
#define RF_STORE_FX_H

#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "testutil.h"

#include "store/store.h"

struct fx {
	char *home;
	char path[1024];
	struct rf_store *st;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->home = tu_home();
	snprintf(f->path, sizeof(f->path), "%s/state.db", f->home);
	assert_int_equal(rf_store_open(f->path, 1, &f->st), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rf_store_free(f->st);
	tu_home_remove(f->home);
	free(f);
	return 0;
}

/* Run one SQL statement on the file, outside the store (independent). */
static inline void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Read one integer from the file, outside the store (independent). */
static inline int64_t
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

#endif
