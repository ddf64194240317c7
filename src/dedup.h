/*
 * dedup.h - the dedup window: a bounded set of content hashes, each with the
 * time it was first seen, forgetting the oldest first.
 *
 * Layout: the entries (hash, time and id, 48 bytes) live in a ring in insertion
 * order, so the ones to expire are always at its head; an open-addressing
 * index (linear probing, at most half full, backward-shift deletion) maps a
 * hash to its ring position. An index slot holds the position and 32 bits
 * of the hash, so a probe touches the ring only on a likely match and a
 * lookup of a new hash usually costs one cache line. Both grow by
 * doubling up to the entry limit, so a router that sees few events uses
 * little memory. Not thread-safe: the router's lock guards it.
 */
#ifndef RRE_DEDUP_H
#define RRE_DEDUP_H

#include "internal.h"

struct rre__dedup_entry {
    uint8_t hash[RRE_HASH_SIZE];
    int64_t time; /* microseconds, when first accepted */
    int64_t id;   /* the caller's (the queue's event id); RRE__DEDUP_DEAD: replaced */
};

#define RRE__DEDUP_DEAD INT64_MIN

struct rre__dedup {
    struct rre__dedup_entry *ring; /* ring_cap entries */
    size_t ring_cap;
    size_t head;      /* ring position of the oldest entry */
    size_t count;     /* entries held */
    uint64_t *index;  /* index_cap slots: (hash bits << 32) | (ring position + 1); 0 = empty */
    size_t index_cap; /* a power of two >= 2 * ring_cap */
    size_t max_entries;
    int64_t window; /* microseconds */
};

/* Starts an empty window holding at most `max_entries` (>= 1) hashes for
 * `window` microseconds (> 0). Allocates nothing yet. */
void rre__dedup_init(struct rre__dedup *d, size_t max_entries, int64_t window);

/* Frees the memory; the window is empty afterwards (and may be reused). */
void rre__dedup_free(struct rre__dedup *d);

/* Forgets every hash and keeps the memory for the next ones. */
void rre__dedup_clear(struct rre__dedup *d);

/* Forgets the hashes first seen `window` or more microseconds before `now`. */
void rre__dedup_expire(struct rre__dedup *d, int64_t now);

/* Expires (as above), then looks `hash` up. Returns true when it was seen
 * within the window (a duplicate; nothing changes). Otherwise remembers it
 * with time `now` (forgetting the oldest hash when full) and returns false.
 * When memory runs out the hash is not remembered and false is returned:
 * the event goes through rather than being lost. */
bool rre__dedup_check(struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE], int64_t now);

/* Remembers `hash` with `time` and `id` (an id other than RRE__DEDUP_DEAD),
 * without expiring anything; a hash already held is replaced (its entry
 * stays in the ring, dead, until it reaches the head). Entries should be put
 * in time order; when `max_entries` are held the oldest is forgotten (but
 * never for want of memory). False when memory runs out: the hash is not
 * held then. */
bool rre__dedup_put(struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE], int64_t time,
                    int64_t id);

/* The live entry holding `hash`, or NULL (without expiring anything). */
const struct rre__dedup_entry *rre__dedup_find(const struct rre__dedup *d,
                                               const uint8_t hash[RRE_HASH_SIZE]);

/* Forgets the oldest entries while their id is at most `id` (or they are
 * dead): with ids put in increasing order, every entry up to `id`. */
void rre__dedup_drop_upto(struct rre__dedup *d, int64_t id);

/* The i-th oldest entry held (i < rre__dedup_count()), dead ones included. */
static inline const struct rre__dedup_entry *rre__dedup_at(const struct rre__dedup *d, size_t i)
{
    size_t p = d->head + i;
    return &d->ring[p >= d->ring_cap ? p - d->ring_cap : p];
}

/* The number of entries held, dead ones included. */
static inline size_t rre__dedup_count(const struct rre__dedup *d)
{
    return d->count;
}

/* True when `hash` is held (without expiring anything). */
bool rre__dedup_contains(const struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE]);

/* Bytes of memory allocated. */
size_t rre__dedup_memory(const struct rre__dedup *d);

#endif /* RRE_DEDUP_H */
