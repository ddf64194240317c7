/*
 * error.c - status codes, the per-thread detail message, the log sink and
 * the version calls.
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_MESSAGE_MAX 512

static _Thread_local char last_error[ERROR_MESSAGE_MAX];

const char *rre_version(void)
{
    return RRE_VERSION_STRING;
}

int rre_version_number(void)
{
    return RRE_VERSION_NUMBER;
}

const char *rre_strerror(rre_status status)
{
    switch (status) {
#define STATUS_TEXT(name, value, text)                                                             \
    case RRE_##name:                                                                               \
        return text;
        RRE_STATUS_MAP(STATUS_TEXT)
#undef STATUS_TEXT
    }
    return "unknown status";
}

const char *rre_status_name(rre_status status)
{
    switch (status) {
#define STATUS_NAME(name, value, text)                                                             \
    case RRE_##name:                                                                               \
        return "RRE_" #name;
        RRE_STATUS_MAP(STATUS_NAME)
#undef STATUS_NAME
    }
    return "RRE_UNKNOWN";
}

const char *rre_last_error(void)
{
    return last_error;
}

rre_status rre__error(rre_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

rre_status rre_fail(rre_status status, const char *message)
{
    return rre__error(status, "%s", message != NULL ? message : rre_strerror(status));
}

void rre__clear_error(void)
{
    last_error[0] = '\0';
}

/* The sink is published as one pointer to an immutable record so readers
 * never see a function from one call and user data from another. Replaced
 * records are leaked on purpose (a handful per process at most): a logging
 * thread may still be reading the old one. */
struct log_sink {
    rre_log_fn fn;
    void *user_data;
    rre_log_level min_level;
};

static _Atomic(struct log_sink *) current_sink;

void rre_set_logger(rre_log_fn fn, void *user_data, rre_log_level min_level)
{
    struct log_sink *sink = NULL;
    if (fn != NULL) {
        sink = malloc(sizeof *sink);
        if (sink == NULL)
            return;
        sink->fn = fn;
        sink->user_data = user_data;
        sink->min_level = min_level;
    }
    atomic_store(&current_sink, sink);
}

const char *rre_log_level_name(rre_log_level level)
{
    switch (level) {
    case RRE_LOG_DEBUG:
        return "debug";
    case RRE_LOG_INFO:
        return "info";
    case RRE_LOG_WARN:
        return "warn";
    case RRE_LOG_ERROR:
        return "error";
    }
    return "unknown";
}

bool rre__log_enabled(rre_log_level level)
{
    struct log_sink *sink = atomic_load_explicit(&current_sink, memory_order_acquire);
    return sink != NULL && level >= sink->min_level;
}

void rre__log(rre_log_level level, const char *component, const char *fmt, ...)
{
    struct log_sink *sink = atomic_load_explicit(&current_sink, memory_order_acquire);
    if (sink == NULL || level < sink->min_level)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    sink->fn(level, component, message, sink->user_data);
}

void rre__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("librre: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
