/*
 * dynlib.h - libraries loaded on first use (internal).
 *
 * libcrypto (SHA-256) and libnats (the bridge) are opened with dlopen() the
 * first time they are needed, not linked: a process that never hashes (a
 * consumer of rows this library wrote, whose hashes are stored) or never
 * bridges does not map them, nor libssl and what libnats pulls in, which
 * was most of a consumer's resident memory. Their headers still give every
 * type and prototype; the X-macro lists below name the functions used, and
 * each is reached through a pointer of exactly the prototype's type
 * (__typeof__), so a mismatch cannot compile.
 */
#ifndef RRE_DYNLIB_H
#define RRE_DYNLIB_H

#include "internal.h"

#include <pthread.h>

/* One library: its soname, the names of the functions to resolve, and
 * where to put them. Filled once, under `once`, by rre__dynlib_load(). */
struct rre__dynlib {
    const char *soname;
    const char *const *names;
    void **slots;
    size_t count;
    pthread_once_t once;
    rre_status status; /* of the load: RRE_OK, or why it failed in `why` */
    char why[256];
};

/* The body of the pthread_once function of `lib`: opens it and resolves
 * every name; on failure records `fail_status` (RRE_ECRYPTO, RRE_ENATS) and
 * the dlopen/dlsym message (the library is missing, or is a version without
 * one of the functions). */
void rre__dynlib_open(struct rre__dynlib *lib, rre_status fail_status);

/* Runs `once_fn` (which calls rre__dynlib_open) the first time; RRE_OK once
 * the library is loaded, else its failure as the calling thread's error. */
rre_status rre__dynlib_load(struct rre__dynlib *lib, void (*once_fn)(void));

/* Defines, in one source file, the library `lib` (a struct rre__dynlib
 * opening `soname`, failing with `fail_status`), a pointer for each
 * function that LIST(X) names, and `lib##_open`, its pthread_once function:
 * rre__dynlib_load(&lib, lib##_open) loads it. Then RRE__DYNLIB_CALL(lib,
 * f) is f's resolved pointer, typed as f's prototype (the source then
 * redirects each name to it with a #define of its own). */
#define RRE__DYNLIB_INDEX(f) RRE__FN_##f,
#define RRE__DYNLIB_NAME(f) #f,
#define RRE__DYNLIB_DEFINE(lib, LIST, soname, fail_status)                                         \
    enum { LIST(RRE__DYNLIB_INDEX) RRE__FN_COUNT_##lib };                                          \
    static const char *const lib##_names[] = {LIST(RRE__DYNLIB_NAME)};                             \
    static void *lib##_fn[RRE__FN_COUNT_##lib];                                                    \
    static struct rre__dynlib lib = {                                                              \
        (soname), lib##_names, lib##_fn, RRE__FN_COUNT_##lib, PTHREAD_ONCE_INIT, RRE_OK, ""};      \
    static void lib##_open(void)                                                                   \
    {                                                                                              \
        rre__dynlib_open(&lib, (fail_status));                                                     \
    }
#define RRE__DYNLIB_CALL(lib, f) ((__typeof__(f) *)lib##_fn[RRE__FN_##f])

#endif
