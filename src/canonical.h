/*
 * canonical.h - library-internal entry points of the canonical JSON writer
 * and the content hash, for callers on the publish path that want to reuse
 * a buffer instead of allocating the canonical text.
 */
#ifndef RRE_CANONICAL_H
#define RRE_CANONICAL_H

#include "internal.h"

/* Values nested deeper than this (arrays and objects) are refused with
 * RRE_ELIMIT, so a value built in memory cannot exhaust the stack. */
#define RRE__CANONICAL_MAX_DEPTH 256

/* The stack buffer size rre_content_hash() uses before spilling to the heap. */
#define RRE__CANONICAL_STACK_BUF 4096

/* A growable byte buffer. It starts on memory the caller provides (usually
 * a stack array) and moves to the heap when that is too small. The contents
 * are not NUL-terminated unless the writer says so. */
struct rre__buf {
    char *data;   /* the bytes; the caller's array or a heap block */
    size_t len;   /* bytes written */
    size_t cap;   /* bytes available at data */
    bool on_heap; /* data was allocated by the buffer and is freed by rre__buf_free() */
};

/* Starts an empty buffer on `initial` (`cap` bytes, may be NULL with cap 0). */
void rre__buf_init(struct rre__buf *buf, char *initial, size_t cap);

/* Empties the buffer, keeping whatever memory it has. */
void rre__buf_reset(struct rre__buf *buf);

/* Frees the heap block, if any, and leaves the buffer empty with no memory. */
void rre__buf_free(struct rre__buf *buf);

/* Makes room for `extra` more bytes. RRE_ENOMEM (and the buffer unchanged)
 * when the heap cannot provide them. */
rre_status rre__buf_reserve(struct rre__buf *buf, size_t extra);

/* Appends bytes. RRE_ENOMEM when the buffer cannot grow. */
rre_status rre__buf_append(struct rre__buf *buf, const void *bytes, size_t len);

/* Appends the canonical JSON of `value` (see rre_canonical_json()) to `buf`,
 * without a terminating NUL. On failure the buffer holds a partial text and
 * the thread's detail message says why: RRE_EINVAL for a non-finite real or
 * a NULL value, RRE_ELIMIT for nesting deeper than RRE__CANONICAL_MAX_DEPTH,
 * RRE_ENOMEM. */
rre_status rre__canonical_write(const json_t *value, struct rre__buf *buf);

/* Like rre__canonical_write() for an object, leaving out its top-level
 * envelope fields (timestamp, created_at, source, trace_id). Nested objects
 * keep them. A value that is not an object is RRE_ENOT_OBJECT. */
rre_status rre__canonical_write_payload(const json_t *payload, struct rre__buf *buf);

/* True when the payload has a top-level envelope field (source, trace_id,
 * timestamp, created_at), which rre__canonical_write_payload() leaves out. */
bool rre__has_envelope_field(const json_t *payload);

/* rre_content_hash() writing the hashed text into `buf` (which is reset
 * first and keeps its memory afterwards, so a caller can reuse it). The text
 * is the canonical NAME, a newline and the canonical payload. */
rre_status rre__content_hash_with_buf(rre_event_type type, const json_t *payload,
                                      struct rre__buf *buf, uint8_t out[RRE_HASH_SIZE]);

/* SHA-256 of `len` bytes with the library's fetched digest. RRE_ECRYPTO when
 * libcrypto fails. */
rre_status rre__sha256(const void *data, size_t len, uint8_t out[RRE_HASH_SIZE]);

#endif /* RRE_CANONICAL_H */
