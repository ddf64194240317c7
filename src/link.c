/*
 * link.c - a router attached to the durable queue (see include/rre/link.h).
 *
 * DESIGN. The link is two one-way paths. Outbound, a router sink for LOCAL
 * events appends each accepted event to the queue and remembers its new
 * event_id in `own`, a small hash set. Inbound, a reader thread polls a
 * queue subscriber (waking on commits by any process) and injects each
 * event it reads into the router with origin PROCESS, unless its id is in
 * `own`: those are this process's own events coming back, already
 * delivered. The reader removes ids from `own` as it passes them, and drops
 * ids it can no longer meet (at or below its cursor), so the set holds only
 * events in flight between a commit and the reader.
 *
 * A row becomes visible to the reader when its transaction commits, which
 * is a moment before the sink learns its id. So when the reader meets an id
 * that is not in `own`, it waits for the sink calls that started before it
 * looked (tickets below `next_ticket`) to finish, then checks again. Calls
 * that start later cannot have written a row the reader already sees.
 *
 * Locks: `mu` guards `own` and the counters the sink updates; the reader's
 * own counters are atomics. No user callback runs with `mu` held.
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct id_set {
    int64_t *slots; /* 0 = empty, -1 = deleted */
    size_t cap;     /* power of two */
    size_t used;    /* live + deleted */
    size_t live;
};

/* A sink call in progress; lives on the calling thread's stack. */
struct append_call {
    uint64_t ticket;
    struct append_call *prev, *next;
};

struct rre_link {
    rre_router *router;
    rre_queue *queue;
    rre_subscriber *reader; /* NULL with RRE_LINK_NO_READER */
    rre_subscription_id sink_id;
    unsigned flags;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;
    pthread_cond_t progress;   /* signalled when last_read_id moves or a sink call ends */
    struct id_set own;         /* guarded by mu */
    struct append_call *calls; /* sink calls in progress; guarded by mu */
    uint64_t next_ticket;      /* guarded by mu */
    uint64_t appended, append_failed, queue_duplicates; /* guarded by mu */

    _Atomic uint64_t read, own_skipped, injected;
    _Atomic int64_t last_read_id;
    _Atomic bool stopping;
};

static void lock(pthread_mutex_t *m)
{
    if (pthread_mutex_lock(m) != 0)
        rre__panic("link: mutex lock failed");
}

static void unlock(pthread_mutex_t *m)
{
    if (pthread_mutex_unlock(m) != 0)
        rre__panic("link: mutex unlock failed");
}

static size_t id_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 17) & (cap - 1);
}

static bool id_set_grow(struct id_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    if (s->live * 4 < s->cap)
        cap = s->cap; /* mostly tombstones: rehash at the same size */
    int64_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < s->cap; i++) {
        int64_t id = s->slots[i];
        if (id <= 0)
            continue;
        size_t j = id_hash(id, cap);
        while (slots[j] != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = id;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    s->used = s->live;
    return true;
}

static bool id_set_add(struct id_set *s, int64_t id)
{
    if ((s->used + 1) * 4 > s->cap * 3 && !id_set_grow(s))
        return false;
    size_t j = id_hash(id, s->cap);
    while (s->slots[j] > 0) {
        if (s->slots[j] == id)
            return true;
        j = (j + 1) & (s->cap - 1);
    }
    if (s->slots[j] == 0)
        s->used++;
    s->slots[j] = id;
    s->live++;
    return true;
}

/* Removes `id`; returns whether it was there. */
static bool id_set_take(struct id_set *s, int64_t id)
{
    if (s->live == 0)
        return false;
    size_t j = id_hash(id, s->cap);
    while (s->slots[j] != 0) {
        if (s->slots[j] == id) {
            s->slots[j] = -1;
            s->live--;
            return true;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

/* Drops ids at or below `cursor`: the reader has passed them. */
static void id_set_drop_upto(struct id_set *s, int64_t cursor)
{
    for (size_t i = 0; i < s->cap && s->live > 0; i++) {
        if (s->slots[i] > 0 && s->slots[i] <= cursor) {
            s->slots[i] = -1;
            s->live--;
        }
    }
}

static rre_status link_sink(rre_event *ev, void *user_data)
{
    rre_link *link = user_data;
    struct append_call call = {0};
    lock(&link->mu);
    call.ticket = link->next_ticket++;
    call.next = link->calls;
    if (link->calls != NULL)
        link->calls->prev = &call;
    link->calls = &call;
    unlock(&link->mu);

    bool duplicate = false;
    rre_status st = rre_queue_publish_event(link->queue, ev, &duplicate);
    lock(&link->mu);
    if (call.prev != NULL)
        call.prev->next = call.next;
    else
        link->calls = call.next;
    if (call.next != NULL)
        call.next->prev = call.prev;
    pthread_cond_broadcast(&link->progress);
    if (st != RRE_OK) {
        link->append_failed++;
    } else if (duplicate) {
        /* Another process stored this content first; the reader will meet
         * that row and the router's dedup will drop it. */
        link->queue_duplicates++;
    } else {
        link->appended++;
        if (link->reader != NULL && !id_set_add(&link->own, ev->event_id))
            st =
                rre__error(RRE_ENOMEM, "link: cannot remember event %lld", (long long)ev->event_id);
    }
    unlock(&link->mu);
    return st;
}

/* Whether a sink call with a ticket below `horizon` is still running.
 * Called with mu held. */
static bool started_before(const rre_link *link, uint64_t horizon)
{
    for (const struct append_call *c = link->calls; c != NULL; c = c->next)
        if (c->ticket < horizon)
            return true;
    return false;
}

static rre_status reader_handler(const rre_event *ev, void *user_data)
{
    rre_link *link = user_data;
    atomic_fetch_add(&link->read, 1);
    lock(&link->mu);
    bool own = id_set_take(&link->own, ev->event_id);
    uint64_t horizon = link->next_ticket;
    while (!own && started_before(link, horizon)) {
        pthread_cond_wait(&link->progress, &link->mu);
        own = id_set_take(&link->own, ev->event_id);
    }
    unlock(&link->mu);
    if (own) {
        atomic_fetch_add(&link->own_skipped, 1);
        return RRE_OK;
    }
    rre_publish_options po = {0};
    if (link->flags & RRE_LINK_ASYNC)
        po.flags |= RRE_PUBLISH_ASYNC;
    rre_status st = rre_router_inject(link->router, ev, &po, NULL);
    if (st == RRE_OK)
        atomic_fetch_add(&link->injected, 1);
    else
        rre__log(RRE_LOG_WARN, "link", "event %lld from the queue was not injected: %s",
                 (long long)ev->event_id, rre_strerror(st));
    /* A handler failure is the router's business (HANDLER_FAILED); the
     * queue moves on either way. */
    return RRE_OK;
}

static void note_progress(rre_link *link)
{
    rre_subscriber_counters c;
    rre_subscriber_get_counters(link->reader, &c);
    lock(&link->mu);
    atomic_store(&link->last_read_id, c.cursor);
    id_set_drop_upto(&link->own, c.cursor);
    pthread_cond_broadcast(&link->progress);
    unlock(&link->mu);
}

static void *reader_main(void *arg)
{
    rre_link *link = arg;
    while (!atomic_load(&link->stopping)) {
        size_t delivered = 0;
        rre_status st = rre_subscriber_poll(link->reader, 250, 0, reader_handler, link, &delivered);
        note_progress(link);
        if (st == RRE_ECLOSED)
            break;
        if (st != RRE_OK) {
            rre__log(RRE_LOG_ERROR, "link", "reading the queue failed: %s: %s", rre_strerror(st),
                     rre_last_error());
            if (st == RRE_EHELD)
                break;
            struct timespec pause = {0, 50 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

static rre_status last_event_id(rre_queue *q, int64_t *out)
{
    json_t *stats = NULL;
    rre_status st = rre_queue_stats(q, &stats);
    if (st != RRE_OK)
        return st;
    json_t *last = json_object_get(stats, "last_event_id");
    *out = json_is_integer(last) ? (int64_t)json_integer_value(last) : 0;
    json_decref(stats);
    return RRE_OK;
}

rre_status rre_link_create(rre_link **out, rre_router *router, rre_queue *queue,
                           const rre_link_options *opts)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "link: out is NULL");
    *out = NULL;
    if (router == NULL || queue == NULL)
        return rre__error(RRE_EINVAL, "link: router and queue are required");
    rre_link_options defaults = {0};
    if (opts == NULL)
        opts = &defaults;

    rre_link *link = calloc(1, sizeof *link);
    if (link == NULL)
        return rre__error(RRE_ENOMEM, "link: out of memory");
    link->router = router;
    link->queue = queue;
    link->flags = opts->flags;
    pthread_mutex_init(&link->mu, NULL);
    pthread_cond_init(&link->progress, NULL);

    rre_status st = RRE_OK;
    if (!(opts->flags & RRE_LINK_NO_READER)) {
        rre_subscriber_options so;
        rre_subscriber_options_init(&so);
        so.name = opts->subscriber_name;
        so.types = opts->types;
        so.type_count = opts->types ? opts->type_count : 0;
        if (opts->subscriber_name != NULL || (opts->flags & RRE_LINK_SINCE_ID)) {
            so.since_id = opts->since_id;
            atomic_store(&link->last_read_id, opts->since_id);
        } else {
            int64_t last = 0;
            st = last_event_id(queue, &last);
            so.since_id = last;
            atomic_store(&link->last_read_id, last);
        }
        if (st == RRE_OK)
            st = rre_subscriber_create(&link->reader, queue, &so);
    }
    if (st == RRE_OK)
        st = rre_router_add_sink(router, RRE_ORIGIN_BIT(RRE_ORIGIN_LOCAL), link_sink, link,
                                 &link->sink_id);
    if (st == RRE_OK && link->reader != NULL) {
        if (pthread_create(&link->thread, NULL, reader_main, link) != 0)
            st = rre__error(RRE_ENOMEM, "link: cannot start the reader thread");
        else
            link->thread_started = true;
    }
    if (st != RRE_OK) {
        rre_status keep = st;
        char detail[512];
        snprintf(detail, sizeof detail, "%s", rre_last_error());
        rre_link_destroy(link);
        return rre__error(keep, "%s", detail);
    }
    *out = link;
    return RRE_OK;
}

rre_status rre_link_sync(rre_link *link, int timeout_ms)
{
    if (link == NULL)
        return rre__error(RRE_EINVAL, "link: NULL");
    if (link->reader == NULL)
        return RRE_OK;
    int64_t target = 0;
    rre_status st = last_event_id(link->queue, &target);
    if (st != RRE_OK)
        return st;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    lock(&link->mu);
    while (atomic_load(&link->last_read_id) < target) {
        int rc = pthread_cond_timedwait(&link->progress, &link->mu, &deadline);
        if (rc != 0 && atomic_load(&link->last_read_id) < target) {
            unlock(&link->mu);
            return rre__error(RRE_ETIMEOUT, "link: reader at event %lld, waiting for %lld",
                              (long long)atomic_load(&link->last_read_id), (long long)target);
        }
    }
    unlock(&link->mu);
    return RRE_OK;
}

void rre_link_get_counters(rre_link *link, rre_link_counters *out)
{
    memset(out, 0, sizeof *out);
    if (link == NULL)
        return;
    lock(&link->mu);
    out->appended = link->appended;
    out->append_failed = link->append_failed;
    out->queue_duplicates = link->queue_duplicates;
    unlock(&link->mu);
    out->read = atomic_load(&link->read);
    out->own_skipped = atomic_load(&link->own_skipped);
    out->injected = atomic_load(&link->injected);
    out->last_read_id = atomic_load(&link->last_read_id);
}

void rre_link_destroy(rre_link *link)
{
    if (link == NULL)
        return;
    if (link->sink_id != 0)
        rre_router_remove_sink(link->router, link->sink_id);
    atomic_store(&link->stopping, true);
    if (link->reader != NULL)
        rre_subscriber_close(link->reader);
    if (link->thread_started)
        pthread_join(link->thread, NULL);
    rre_subscriber_destroy(link->reader);
    free(link->own.slots);
    pthread_cond_destroy(&link->progress);
    pthread_mutex_destroy(&link->mu);
    free(link);
}
