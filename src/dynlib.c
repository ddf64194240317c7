/*
 * dynlib.c - libraries loaded on first use (see dynlib.h).
 */
#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

void rre__dynlib_open(struct rre__dynlib *lib, rre_status fail_status)
{
    /* RTLD_LOCAL: its symbols stay out of the global namespace. The handle
     * is never closed: the pointers are used for the life of the process. */
    void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *err = dlerror();
        snprintf(lib->why, sizeof lib->why, "%s could not be loaded: %s", lib->soname,
                 err != NULL ? err : "no detail");
        lib->status = fail_status;
        return;
    }
    for (size_t i = 0; i < lib->count; i++) {
        dlerror();
        void *fn = dlsym(handle, lib->names[i]);
        if (fn == NULL) {
            snprintf(lib->why, sizeof lib->why, "%s has no function %s: another version?",
                     lib->soname, lib->names[i]);
            lib->status = fail_status;
            return;
        }
        lib->slots[i] = fn;
    }
    lib->status = RRE_OK;
}

rre_status rre__dynlib_load(struct rre__dynlib *lib, void (*once_fn)(void))
{
    pthread_once(&lib->once, once_fn);
    if (lib->status != RRE_OK)
        return rre__error(lib->status, "%s", lib->why);
    return RRE_OK;
}
