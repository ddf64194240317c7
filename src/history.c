/*
 * history.c - the bounded history and its string pool (see history.h).
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

struct rre__pooled_str {
    struct rre__pooled_str *next; /* in its bucket */
    size_t refs;                  /* history entries naming it */
    uint32_t hash;
    size_t len;
    char text[];
};

void rre__history_init(struct rre__history *h, size_t size)
{
    memset(h, 0, sizeof *h);
    h->size = size;
}

const char *rre__pooled_str_get(const struct rre__pooled_str *s)
{
    return s != NULL ? s->text : "";
}

/* FNV-1a; the strings are short names. */
static uint32_t str_hash(const char *s, size_t len)
{
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        x ^= (unsigned char)s[i];
        x *= 16777619u;
    }
    return x;
}

static bool pool_rehash(struct rre__history *h, size_t count)
{
    struct rre__pooled_str **b = calloc(count, sizeof *b);
    if (b == NULL)
        return false;
    for (size_t i = 0; i < h->bucket_count; i++) {
        struct rre__pooled_str *s = h->buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            size_t k = s->hash & (count - 1);
            s->next = b[k];
            b[k] = s;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->bucket_count = count;
    return true;
}

/* A new reference to the interned copy of `text`, or NULL without memory.
 * `kind` picks the fast-path slot (0: source, 1: hostname). */
static struct rre__pooled_str *pool_get(struct rre__history *h, const char *text, int kind)
{
    if (text == NULL)
        text = "";
    struct rre__pooled_str *last = h->last[kind];
    if (last != NULL && strcmp(last->text, text) == 0) {
        last->refs++;
        return last;
    }
    size_t len = strlen(text);
    uint32_t hash = str_hash(text, len);
    if (h->bucket_count > 0) {
        for (struct rre__pooled_str *s = h->buckets[hash & (h->bucket_count - 1)]; s != NULL;
             s = s->next) {
            if (s->hash == hash && s->len == len && memcmp(s->text, text, len) == 0) {
                s->refs++;
                h->last[kind] = s;
                return s;
            }
        }
    }
    if (h->string_count >= h->bucket_count &&
        !pool_rehash(h, h->bucket_count == 0 ? 16 : h->bucket_count * 2) && h->bucket_count == 0)
        return NULL;
    struct rre__pooled_str *s = malloc(sizeof *s + len + 1);
    if (s == NULL)
        return NULL;
    s->refs = 1;
    s->hash = hash;
    s->len = len;
    memcpy(s->text, text, len + 1);
    size_t k = hash & (h->bucket_count - 1);
    s->next = h->buckets[k];
    h->buckets[k] = s;
    h->string_count++;
    h->last[kind] = s;
    return s;
}

static void pool_put(struct rre__history *h, struct rre__pooled_str *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    struct rre__pooled_str **pp = &h->buckets[s->hash & (h->bucket_count - 1)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    for (int k = 0; k < 2; k++)
        if (h->last[k] == s)
            h->last[k] = NULL;
    h->string_count--;
    free(s);
}

static size_t pos(const struct rre__history *h, size_t i)
{
    size_t p = h->head + i;
    return p >= h->cap ? p - h->cap : p;
}

const struct rre__history_entry *rre__history_at(const struct rre__history *h, size_t i)
{
    return &h->ring[pos(h, i)];
}

void rre__history_free(struct rre__history *h)
{
    for (size_t i = 0; i < h->count; i++) {
        struct rre__history_entry *e = &h->ring[pos(h, i)];
        free(e->text);
        pool_put(h, e->source);
        pool_put(h, e->hostname);
    }
    free(h->ring);
    free(h->buckets);
    size_t size = h->size;
    memset(h, 0, sizeof *h);
    h->size = size;
}

static bool grow(struct rre__history *h)
{
    size_t cap = h->cap == 0 ? 16 : h->cap * 2;
    if (cap > h->size)
        cap = h->size;
    struct rre__history_entry *ring = malloc(cap * sizeof *ring);
    if (ring == NULL)
        return false;
    for (size_t i = 0; i < h->count; i++)
        ring[i] = h->ring[pos(h, i)];
    free(h->ring);
    h->ring = ring;
    h->cap = cap;
    h->head = 0;
    return true;
}

rre_status rre__history_push(struct rre__history *h, const rre_event *ev, const char *text,
                             size_t len, int64_t time, const struct rre__trace *trace,
                             char **evicted)
{
    *evicted = NULL;
    if (h->size == 0)
        return RRE_OK;
    if (len >= UINT32_MAX)
        return rre__error(RRE_ELIMIT, "history: payload text too long");
    if (h->count == h->cap && h->cap < h->size && !grow(h) && h->cap == 0)
        return rre__error(RRE_ENOMEM, "history: out of memory");
    /* When the ring is full the oldest entry's buffer takes the new text if
     * it is large enough and not much larger: in a steady stream a publish
     * then neither allocates nor frees (and never frees memory another
     * thread allocated, which costs that thread's malloc arena lock). */
    struct rre__history_entry *old = h->count == h->cap ? &h->ring[h->head] : NULL;
    char *buf = NULL;
    uint32_t cap = 0;
    if (old != NULL && old->text_cap >= len + 1 && old->text_cap / 4 <= len + 1) {
        buf = old->text;
        cap = old->text_cap;
    } else {
        buf = malloc(len + 1);
        cap = (uint32_t)len + 1;
    }
    struct rre__pooled_str *source = buf != NULL ? pool_get(h, ev->source, 0) : NULL;
    struct rre__pooled_str *host = source != NULL ? pool_get(h, ev->hostname, 1) : NULL;
    if (host == NULL) {
        pool_put(h, source);
        if (old == NULL || buf != old->text)
            free(buf);
        return rre__error(RRE_ENOMEM, "history: out of memory");
    }
    if (old != NULL) {
        if (buf != old->text)
            *evicted = old->text;
        pool_put(h, old->source);
        pool_put(h, old->hostname);
        h->head = h->head + 1 == h->cap ? 0 : h->head + 1;
        h->count--;
        h->dropped++;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct rre__history_entry *e = &h->ring[pos(h, h->count)];
    e->text = buf;
    e->text_len = (uint32_t)len;
    e->text_cap = cap;
    e->source = source;
    e->hostname = host;
    e->event_id = ev->event_id;
    e->time = time;
    memcpy(e->hash, ev->hash, RRE_HASH_SIZE);
    e->trace = *trace;
    e->type = (int16_t)ev->type;
    e->origin = (uint8_t)ev->origin;
    h->count++;
    return RRE_OK;
}

void rre__history_set_event_id(struct rre__history *h, const uint8_t hash[RRE_HASH_SIZE],
                               int64_t event_id)
{
    for (size_t i = h->count; i-- > 0;) {
        struct rre__history_entry *e = &h->ring[pos(h, i)];
        if (memcmp(e->hash, hash, RRE_HASH_SIZE) == 0) {
            e->event_id = event_id;
            return;
        }
    }
}

size_t rre__history_memory(const struct rre__history *h)
{
    size_t bytes = h->cap * sizeof *h->ring + h->bucket_count * sizeof *h->buckets;
    for (size_t i = 0; i < h->bucket_count; i++)
        for (const struct rre__pooled_str *s = h->buckets[i]; s != NULL; s = s->next)
            bytes += sizeof *s + s->len + 1;
    for (size_t i = 0; i < h->count; i++)
        bytes += h->ring[pos(h, i)].text_cap;
    return bytes;
}
