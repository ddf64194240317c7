/*
 * internal.h - declarations shared by the library's source files (the rre__
 * tier). Nothing here is part of the public interface.
 */
#ifndef RRE_INTERNAL_H
#define RRE_INTERNAL_H

#include <rre/rre.h>

#include <stdarg.h>

#if defined(__GNUC__)
#define RRE__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RRE__PRINTF(fmt, args)
#endif

#define RRE__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Records `status` and a formatted detail message as this thread's last
 * error, and returns `status` so callers can write `return rre__error(...)`. */
rre_status rre__error(rre_status status, const char *fmt, ...) RRE__PRINTF(2, 3);

/* Clears this thread's last error. */
void rre__clear_error(void);

/* Logs through the process-wide sink, if one is set and `level` passes. */
void rre__log(rre_log_level level, const char *component, const char *fmt, ...) RRE__PRINTF(3, 4);

/* True when a message at `level` would reach the sink (to skip formatting). */
bool rre__log_enabled(rre_log_level level);

/* Aborts with a message: for broken invariants and failed lock operations. */
/* Whether s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * values past U+10FFFF). */
bool rre__utf8_valid(const char *s, size_t len);
/* A copy of the NUL-terminated `s` with every byte that is not part of a
 * well-formed UTF-8 sequence replaced by U+FFFD; NULL when out of memory.
 * Release it with free(). */
char *rre__utf8_repair(const char *s);

/* A JSON string of a text column that another writer may have filled:
 * NULL gives "", bytes that are not UTF-8 become U+FFFD. NULL only when out
 * of memory. */
json_t *rre__json_text_column(const char *s);

/* `text` as one URI path segment: every byte but the unreserved characters
 * (ALPHA DIGIT - . _ ~) percent-encoded. NULL when out of memory; free(). */
char *rre__uri_segment_encode(const char *text);
/* The bytes a percent-encoded text[0..len) stands for, NUL-terminated
 * (*out_len, which may be NULL, without the NUL); NULL when a '%' is not
 * followed by two hex digits, or out of memory. free(). */
char *rre__uri_segment_decode(const char *text, size_t len, size_t *out_len);

_Noreturn void rre__panic(const char *fmt, ...) RRE__PRINTF(1, 2);

#endif /* RRE_INTERNAL_H */
