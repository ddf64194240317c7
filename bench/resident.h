/*
 * resident.h - the resident memory of the calling process, for the
 * benchmarks: the total (VmRSS) and its two parts, file-backed pages (the
 * code and data of the program and its shared libraries, shared with every
 * other process that maps the same files) and anonymous pages (heap, stacks:
 * this process's own).
 */
#ifndef RRE_BENCH_RESIDENT_H
#define RRE_BENCH_RESIDENT_H

#include <stdio.h>

typedef struct resident {
    long total_kib, file_kib, anon_kib; /* -1 when unknown */
} resident;

static inline resident resident_now(void)
{
    resident r = {-1, -1, -1};
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return r;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        long v;
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            r.total_kib = v;
        else if (sscanf(line, "RssAnon: %ld kB", &v) == 1)
            r.anon_kib = v;
        else if (sscanf(line, "RssFile: %ld kB", &v) == 1)
            r.file_kib = v;
    }
    fclose(f);
    return r;
}

#endif
