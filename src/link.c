/*
 * link.c - a router attached to the durable queue (see include/rre/link.h).
 *
 * DESIGN. The link is two one-way paths. Outbound, a router sink for LOCAL
 * events appends each accepted event to the queue; the queue records the
 * new id of every row it inserts for this handle inside the transaction,
 * before the commit (queue_own.c), so no reader can see the row before the
 * id is known. Inbound, a reader thread polls a queue subscriber (waking on
 * commits by any process) and injects each event it reads into the router
 * with origin PROCESS, unless the queue says the id is its own: those are
 * this process's events coming back, already delivered. After each poll the
 * ids the reader has passed (filtered out, or gone) are forgotten, so the
 * list holds only events between a commit and the reader.
 *
 * Locks: `mu` guards the sink's counters and pairs with `progress` for
 * rre_link_sync(); the reader's counters are atomics. No user callback runs
 * with `mu` held.
 */
#include "internal.h"
#include "queue_sqlite.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rre_link {
    rre_router *router;
    rre_queue *queue;
    rre_subscriber *reader; /* NULL with RRE_LINK_NO_READER */
    rre_subscription_id sink_id;
    unsigned flags;
    pthread_t thread;
    bool thread_started;
    bool tracking; /* the queue records our ids for us */

    pthread_mutex_t mu;
    pthread_cond_t progress;                            /* signalled when last_read_id moves */
    uint64_t appended, append_failed, queue_duplicates; /* guarded by mu */
    rre_status reader_status; /* guarded by mu: why the reader stopped, RRE_OK while it runs */
    char reader_error[256];   /* guarded by mu: its message */

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

static rre_status link_sink(rre_event *ev, void *user_data)
{
    rre_link *link = user_data;
    bool duplicate = false;
    rre_status st = rre_queue_publish_event(link->queue, ev, &duplicate);
    lock(&link->mu);
    if (st != RRE_OK)
        link->append_failed++;
    else if (duplicate)
        link->queue_duplicates++; /* another process stored it first; our
                                     router's dedup drops that row's copy */
    else
        link->appended++;
    unlock(&link->mu);
    return st;
}

static rre_status reader_handler(const rre_event *ev, void *user_data)
{
    rre_link *link = user_data;
    atomic_fetch_add(&link->read, 1);
    if (rre__queue_own_take(link->queue, ev->event_id, ev->hash)) {
        atomic_fetch_add(&link->own_skipped, 1);
        return RRE_OK;
    }
    rre_publish_options po = {0};
    if (link->flags & RRE_LINK_ASYNC)
        po.flags |= RRE_PUBLISH_ASYNC;
    rre_status st = rre_router_inject(link->router, ev, &po, NULL);
    if (st == RRE_ECLOSED)
        return RRE_ECLOSED; /* not acknowledged: delivered again next time */
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
    rre__queue_own_drop_upto(link->queue, c.cursor);
    lock(&link->mu);
    atomic_store(&link->last_read_id, c.cursor);
    pthread_cond_broadcast(&link->progress);
    unlock(&link->mu);
}

/* The reader ends for good: record why, wake rre_link_sync(), and stop
 * recording our ids (nobody will take them off the list any more). */
static void reader_stopped(rre_link *link, rre_status st)
{
    if (link->tracking)
        rre__queue_own_set_tracking(link->queue, false);
    lock(&link->mu);
    link->reader_status = st;
    snprintf(link->reader_error, sizeof link->reader_error, "%s", rre_last_error());
    pthread_cond_broadcast(&link->progress);
    unlock(&link->mu);
}

static void *reader_main(void *arg)
{
    rre_link *link = arg;
    while (!atomic_load(&link->stopping)) {
        rre_status st = rre_subscriber_poll(link->reader, 250, 0, reader_handler, link, NULL);
        note_progress(link);
        if (st == RRE_ECLOSED) {
            reader_stopped(link, st);
            break;
        }
        if (st != RRE_OK) {
            rre__log(RRE_LOG_ERROR, "link", "reading the queue failed: %s: %s", rre_strerror(st),
                     rre_last_error());
            if (st == RRE_EHELD) {
                reader_stopped(link, st);
                break;
            }
            struct timespec pause = {0, 50 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
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
        rre__queue_own_set_tracking(queue, true);
        link->tracking = true;
        rre_subscriber_options so;
        rre_subscriber_options_init(&so);
        so.name = opts->subscriber_name;
        so.types = opts->types;
        so.type_count = opts->types ? opts->type_count : 0;
        if (opts->subscriber_name != NULL || (opts->flags & RRE_LINK_SINCE_ID))
            so.since_id = opts->since_id;
        else
            st = rre__queue_last_event_id(queue, &so.since_id);
        atomic_store(&link->last_read_id, so.since_id);
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
        char detail[512];
        snprintf(detail, sizeof detail, "%s", rre_last_error());
        rre_link_destroy(link);
        return rre__error(st, "%s", detail);
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
    int64_t target;
    rre_status st = rre__queue_last_event_id(link->queue, &target);
    if (st != RRE_OK)
        return st;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int ms = timeout_ms > 0 ? timeout_ms : 0;
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    lock(&link->mu);
    while (atomic_load(&link->last_read_id) < target) {
        if (link->reader_status != RRE_OK) {
            rre_status stopped = link->reader_status;
            char why[256];
            snprintf(why, sizeof why, "%s", link->reader_error);
            unlock(&link->mu);
            return rre__error(stopped, "link: the reader stopped at event %lld: %s",
                              (long long)atomic_load(&link->last_read_id), why);
        }
        int rc = timeout_ms < 0 ? pthread_cond_wait(&link->progress, &link->mu)
                                : pthread_cond_timedwait(&link->progress, &link->mu, &deadline);
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
    if (link->tracking)
        rre__queue_own_set_tracking(link->queue, false);
    pthread_cond_destroy(&link->progress);
    pthread_mutex_destroy(&link->mu);
    free(link);
}
