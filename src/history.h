/*
 * history.h - the router's bounded history: a ring of the last N accepted
 * events, each a fixed-size envelope plus its payload as canonical JSON text.
 *
 * Memory per event is the entry (about 100 bytes) and the payload's text
 * (about 250 bytes for an 11-field payload), not the payload object, which
 * for jansson is about 1.7 KB and about 30 allocations: holding the object
 * would keep that much heap per event alive, and the router would pay for
 * freeing the oldest one on every publish. The text is what the content
 * hash is computed over (the publish writes it anyway), so keeping it costs
 * one copy; the rare reader of the history parses it back.
 * Sources and hostnames are interned in a reference-counted string pool, so
 * a string is stored once however many entries name it and is freed when the
 * last of them leaves the ring. The ring grows by doubling up to its size.
 * Not thread-safe: the router's lock guards it.
 */
#ifndef RRE_HISTORY_H
#define RRE_HISTORY_H

#include "envelope.h"

struct rre__pooled_str; /* an interned string */

struct rre__history_entry {
    char *text; /* the payload's canonical JSON, NUL-terminated */
    uint32_t text_len;
    uint32_t text_cap;                /* bytes allocated for text */
    struct rre__pooled_str *source;   /* one reference */
    struct rre__pooled_str *hostname; /* one reference */
    int64_t event_id;
    int64_t time; /* envelope timestamp, microseconds */
    uint8_t hash[RRE_HASH_SIZE];
    struct rre__trace trace;
    int16_t type;
    uint8_t origin;
};

struct rre__history {
    struct rre__history_entry *ring;
    size_t cap;       /* allocated entries */
    size_t size;      /* the most entries kept */
    size_t head;      /* position of the oldest */
    size_t count;     /* entries held */
    uint64_t dropped; /* entries that left the ring since creation */
    /* The string pool: chained hash set of interned strings. */
    struct rre__pooled_str **buckets;
    size_t bucket_count; /* a power of two, or 0 */
    size_t string_count;
    /* A fast path: the source ([0]) and the hostname ([1]) interned last,
     * which the next event usually names again. */
    struct rre__pooled_str *last[2];
};

/* Starts an empty history keeping at most `size` events (0: none). */
void rre__history_init(struct rre__history *h, size_t size);

/* Releases every entry and the pool. */
void rre__history_free(struct rre__history *h);

/* Appends an event whose payload's canonical JSON is text[0..len) (the
 * envelope's strings are interned, the text copied). When the ring is full
 * the oldest entry leaves it, and the new text goes into its buffer when it
 * fits (and the buffer is not over four times the size needed); otherwise
 * the oldest text is handed to the caller in *evicted (NULL when none) to
 * be freed once the lock is released. On RRE_ENOMEM nothing changes. */
rre_status rre__history_push(struct rre__history *h, const rre_event *ev, const char *text,
                             size_t len, int64_t time, const struct rre__trace *trace,
                             char **evicted);

/* Sets the event_id of the newest entry with this hash, if it is still held
 * (a sink may persist an event after it was recorded). */
void rre__history_set_event_id(struct rre__history *h, const uint8_t hash[RRE_HASH_SIZE],
                               int64_t event_id);

/* The i-th entry, oldest first (i < count). */
const struct rre__history_entry *rre__history_at(const struct rre__history *h, size_t i);

const char *rre__pooled_str_get(const struct rre__pooled_str *s);

/* Bytes allocated for entries, pooled strings and payload texts. */
size_t rre__history_memory(const struct rre__history *h);

#endif /* RRE_HISTORY_H */
