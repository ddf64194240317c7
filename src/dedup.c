/*
 * dedup.c - the dedup window (see dedup.h for the layout).
 */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

void rre__dedup_init(struct rre__dedup *d, size_t max_entries, int64_t window)
{
    memset(d, 0, sizeof *d);
    d->max_entries = max_entries > 0 ? max_entries : 1;
    d->window = window > 0 ? window : 1;
}

void rre__dedup_free(struct rre__dedup *d)
{
    free(d->ring);
    free(d->index);
    d->ring = NULL;
    d->index = NULL;
    d->ring_cap = d->index_cap = d->head = d->count = 0;
}

void rre__dedup_clear(struct rre__dedup *d)
{
    if (d->index != NULL)
        memset(d->index, 0, d->index_cap * sizeof *d->index);
    d->head = d->count = 0;
}

/* 32 bits of a hash: SHA-256 output is uniform, so its first bytes serve as
 * the table hash directly. The index capacity stays below 2^32, so the home
 * slot is a function of these bits alone. */
static uint32_t tag_of(const uint8_t *hash)
{
    uint32_t t;
    memcpy(&t, hash, sizeof t);
    return t;
}

static size_t home_of_tag(const struct rre__dedup *d, uint32_t tag)
{
    return (size_t)tag & (d->index_cap - 1);
}

static uint64_t slot_value(uint32_t tag, size_t pos)
{
    return (uint64_t)tag << 32 | (uint64_t)(pos + 1);
}

static size_t slot_pos(uint64_t v)
{
    return (size_t)(uint32_t)v - 1;
}

static uint32_t slot_tag(uint64_t v)
{
    return (uint32_t)(v >> 32);
}

static size_t ring_pos(const struct rre__dedup *d, size_t i)
{
    size_t p = d->head + i;
    return p >= d->ring_cap ? p - d->ring_cap : p;
}

/* The index slot holding `hash`, or SIZE_MAX. */
static size_t find_slot(const struct rre__dedup *d, const uint8_t *hash)
{
    if (d->index_cap == 0)
        return SIZE_MAX;
    size_t mask = d->index_cap - 1;
    uint32_t tag = tag_of(hash);
    for (size_t i = home_of_tag(d, tag);; i = (i + 1) & mask) {
        uint64_t v = d->index[i];
        if (v == 0)
            return SIZE_MAX;
        if (slot_tag(v) == tag && memcmp(d->ring[slot_pos(v)].hash, hash, RRE_HASH_SIZE) == 0)
            return i;
    }
}

static void index_insert(struct rre__dedup *d, size_t pos)
{
    size_t mask = d->index_cap - 1;
    uint32_t tag = tag_of(d->ring[pos].hash);
    size_t i = home_of_tag(d, tag);
    while (d->index[i] != 0)
        i = (i + 1) & mask;
    d->index[i] = slot_value(tag, pos);
}

/* Removes index slot `i` and shifts the probe chain after it back. */
static void index_delete(struct rre__dedup *d, size_t i)
{
    size_t mask = d->index_cap - 1;
    d->index[i] = 0;
    for (size_t j = (i + 1) & mask; d->index[j] != 0; j = (j + 1) & mask) {
        size_t k = home_of_tag(d, slot_tag(d->index[j]));
        /* Entry j may move to the hole at i when its home is not in (i, j]. */
        bool between = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!between) {
            d->index[i] = d->index[j];
            d->index[j] = 0;
            i = j;
        }
    }
}

static void drop_oldest(struct rre__dedup *d)
{
    if (d->ring[d->head].id != RRE__DEDUP_DEAD) {
        size_t slot = find_slot(d, d->ring[d->head].hash);
        if (slot == SIZE_MAX)
            rre__panic("dedup: ring entry missing from the index");
        index_delete(d, slot);
    }
    d->head = d->head + 1 == d->ring_cap ? 0 : d->head + 1;
    d->count--;
    if (d->count == 0)
        d->head = 0;
}

void rre__dedup_expire(struct rre__dedup *d, int64_t now)
{
    while (d->count > 0 && now - d->ring[d->head].time >= d->window)
        drop_oldest(d);
}

/* Doubles the ring (up to max_entries) and rebuilds the index. False when
 * memory runs out (nothing changes). */
static bool grow(struct rre__dedup *d)
{
    size_t cap = d->ring_cap == 0 ? 16 : d->ring_cap * 2;
    if (cap > d->max_entries)
        cap = d->max_entries;
    size_t icap = 32;
    while (icap < cap * 2)
        icap *= 2;
    struct rre__dedup_entry *ring = malloc(cap * sizeof *ring);
    uint64_t *index = calloc(icap, sizeof *index);
    if (ring == NULL || index == NULL) {
        free(ring);
        free(index);
        return false;
    }
    for (size_t i = 0; i < d->count; i++)
        ring[i] = d->ring[ring_pos(d, i)];
    free(d->ring);
    free(d->index);
    d->ring = ring;
    d->index = index;
    d->ring_cap = cap;
    d->index_cap = icap;
    d->head = 0;
    for (size_t i = 0; i < d->count; i++)
        if (d->ring[i].id != RRE__DEDUP_DEAD)
            index_insert(d, i);
    return true;
}

/* Appends an entry for a hash not held, forgetting the oldest when
 * max_entries are held; when memory runs out, too, unless `keep` (then
 * false, with nothing changed). False when there is no room at all. */
static bool append(struct rre__dedup *d, const uint8_t *hash, int64_t time, int64_t id, bool keep)
{
    if (d->count == d->ring_cap) {
        bool full = d->ring_cap >= d->max_entries;
        if (!full && grow(d)) {
            /* room made */
        } else if (d->count > 0 && (full || !keep)) {
            drop_oldest(d);
        } else {
            return false;
        }
    }
    size_t pos = ring_pos(d, d->count);
    memcpy(d->ring[pos].hash, hash, RRE_HASH_SIZE);
    d->ring[pos].time = time;
    d->ring[pos].id = id;
    d->count++;
    index_insert(d, pos);
    return true;
}

bool rre__dedup_check(struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE], int64_t now)
{
    rre__dedup_expire(d, now);
    if (find_slot(d, hash) != SIZE_MAX)
        return true;
    append(d, hash, now, 0, false);
    return false;
}

bool rre__dedup_put(struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE], int64_t time,
                    int64_t id)
{
    size_t slot = find_slot(d, hash);
    if (slot != SIZE_MAX) {
        size_t pos = slot_pos(d->index[slot]);
        index_delete(d, slot);
        d->ring[pos].id = RRE__DEDUP_DEAD;
    }
    return append(d, hash, time, id, true);
}

const struct rre__dedup_entry *rre__dedup_find(const struct rre__dedup *d,
                                               const uint8_t hash[RRE_HASH_SIZE])
{
    size_t slot = find_slot(d, hash);
    return slot == SIZE_MAX ? NULL : &d->ring[slot_pos(d->index[slot])];
}

void rre__dedup_drop_upto(struct rre__dedup *d, int64_t id)
{
    while (d->count > 0 && (d->ring[d->head].id == RRE__DEDUP_DEAD || d->ring[d->head].id <= id))
        drop_oldest(d);
}

bool rre__dedup_contains(const struct rre__dedup *d, const uint8_t hash[RRE_HASH_SIZE])
{
    return find_slot(d, hash) != SIZE_MAX;
}

size_t rre__dedup_memory(const struct rre__dedup *d)
{
    return d->ring_cap * sizeof *d->ring + d->index_cap * sizeof *d->index;
}
