/*
 * testutil.h - helpers shared by the test programs: temporary directories
 * and running the rre command line as a black box.
 */
#ifndef RRE_TESTUTIL_H
#define RRE_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Makes a fresh temporary directory; returns a malloc'ed path. */
char *tu_mkdtemp(void);

/* Removes a directory tree (best effort). */
void tu_rmtree(const char *path);

/* The output of a command run by tu_run(). */
typedef struct tu_result {
    int status; /* exit status, or 128 + signal */
    char *out;  /* standard output, NUL-terminated */
    char *err;  /* standard error, NUL-terminated */
} tu_result;

/* Runs the rre command line with the given arguments (NULL-terminated) and
 * `input` (may be NULL) on standard input. */
tu_result tu_run_cli(const char *input, ...);
tu_result tu_run_cliv(const char *input, char *const argv[]);
void tu_result_free(tu_result *r);
/* Runs the command line (argv[0] included) with its standard output on
 * /dev/full, where every write fails, and standard error on /dev/null;
 * returns the exit status (128 + signal when killed, -1 when it could not
 * be run). */
int tu_run_cli_full_output(char *const argv[]);

/* Reads a whole file; returns malloc'ed text or NULL. */
char *tu_read_file(const char *path, size_t *len);

/* The first column of the first row of `sql` on the SQLite file `path`
 * (-1 when no row), through a connection of its own; fails the test when
 * the statement is wrong. */
int64_t tu_sql_int(const char *path, const char *sql);

/* The first column of the first row of `sql` as text the caller frees
 * (NULL when no row or NULL). */
char *tu_sql_text(const char *path, const char *sql);

/* Runs `sql` on the SQLite file `path`; fails the test on an error. */
void tu_sql_exec(const char *path, const char *sql);

#endif
