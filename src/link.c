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
#include "router_int.h"

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

    /* Handler retries (RRE_LINK_HANDLER_RETRIES): set at creation. */
    char *retry_prefix; /* "<reader id>/"; NULL without them */
    bool hooked;
    bool unique_names; /* this link made the router refuse shared handler names */
    int max_attempts;
    double retry_delay_s, retry_delay_max_s;
    _Atomic uint64_t handler_retries, handler_dead;

    /* RRE_LINK_PIPELINED: appends that failed since the last rre_link_flush(). */
    uint64_t unflushed_failures; /* guarded by mu */
    rre_status unflushed_status; /* guarded by mu: of the first of them */
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

static void count_append(rre_link *link, rre_status st, bool duplicate)
{
    lock(&link->mu);
    if (st != RRE_OK)
        link->append_failed++;
    else if (duplicate)
        link->queue_duplicates++; /* another process stored it first; our
                                     router's dedup drops that row's copy */
    else
        link->appended++;
    unlock(&link->mu);
}

/* The completion of a pipelined append (on the queue's writer thread). */
static void link_stored(rre_status status, int64_t event_id, bool duplicate,
                        const uint8_t hash[RRE_HASH_SIZE], void *user_data)
{
    (void)hash;
    (void)event_id;
    rre_link *link = user_data;
    if (status != RRE_OK) {
        lock(&link->mu);
        bool first = link->unflushed_failures++ == 0;
        if (first)
            link->unflushed_status = status;
        unlock(&link->mu);
        if (first) /* once until the next flush, not once per event */
            rre__log(RRE_LOG_WARN, "link", "pipelined events were not stored: %s",
                     rre_strerror(status));
    }
    count_append(link, status, duplicate);
}

static rre_status link_sink(rre_event *ev, void *user_data)
{
    rre_link *link = user_data;
    if (link->flags & RRE_LINK_PIPELINED) {
        rre_status st = rre__queue_publish_routed_async(link->queue, ev, link_stored, link);
        if (st != RRE_OK)
            count_append(link, st, false);
        return st;
    }
    bool duplicate = false;
    rre_status st = rre__queue_publish_routed(link->queue, ev, &duplicate);
    count_append(link, st, duplicate);
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

/* ---- handler retries ---------------------------------------------------- */

/* "<status>: <message>" for what a handler returned. */
static void failure_text(int rc, const char *error, char *out, size_t cap)
{
    const char *name = rre_status_name((rre_status)rc);
    if (strcmp(name, "RRE_UNKNOWN") == 0)
        snprintf(out, cap, "handler returned %d%s%s", rc, error[0] != '\0' ? ": " : "", error);
    else
        snprintf(out, cap, "%s: %s", name, error[0] != '\0' ? error : rre_strerror((rre_status)rc));
}

/* Records the outcome of a failed call of handler pseudo-subscriber `sub`
 * (attempts: failures counted before this call). */
static void record_failure(rre_link *link, const char *sub, const rre_event *ev, int rc,
                           const char *error, int attempts)
{
    char text[512];
    failure_text(rc, error, text, sizeof text);
    double now = rre__queue_now(), due;
    if (rc == RRE_ERETRY_LATER) {
        due = now + link->retry_delay_s;
    } else {
        attempts++;
        due = rc == RRE_EREJECTED || attempts >= link->max_attempts
                  ? -1
                  : now + rre__retry_delay(link->retry_delay_s, link->retry_delay_max_s, attempts);
    }
    if (due < 0)
        atomic_fetch_add(&link->handler_dead, 1);
    rre_status st = rre__retry_fail(link->queue, sub, ev, attempts, due, text);
    if (st != RRE_OK)
        rre__log(RRE_LOG_ERROR, "link", "cannot keep the failure of '%s' on event %lld: %s", sub,
                 (long long)ev->event_id, rre_last_error());
    else if (due < 0)
        rre__log(RRE_LOG_WARN, "link",
                 "'%s' failed on event %lld (%s), attempt %d: %s; moved to the dead letters", sub,
                 (long long)ev->event_id, rre_event_name(ev->type), attempts, text);
    else
        rre__log(RRE_LOG_WARN, "link",
                 "'%s' failed on event %lld (%s), attempt %d of %d: %s; retried in %.3g s", sub,
                 (long long)ev->event_id, rre_event_name(ev->type), attempts, link->max_attempts,
                 text, due - now);
}

/* The router's failure hook: a handler failed on an event it dispatched. */
static void on_handler_failed(const rre_event *ev, const char *handler, int rc, const char *error,
                              void *data)
{
    rre_link *link = data;
    if (ev->event_id <= 0 || ev->type == RRE_EV_HANDLER_FAILED ||
        ev->type == RRE_EV_HANDLER_TIMEOUT)
        return; /* not in the queue, or a report (never retried) */
    size_t len = strlen(link->retry_prefix) + strlen(handler) + 1;
    char *sub = malloc(len);
    if (sub == NULL) {
        rre__log(RRE_LOG_ERROR, "link", "out of memory recording a handler failure");
        return;
    }
    snprintf(sub, len, "%s%s", link->retry_prefix, handler);
    record_failure(link, sub, ev, rc, error, 0);
    free(sub);
}

/* Runs the handler retries that are due (on the reader thread). */
static void run_handler_retries(rre_link *link)
{
    rre__retry_item *items = NULL;
    size_t n = 0;
    if (rre__retry_due(link->queue, link->retry_prefix, 64, &items, &n) != RRE_OK) {
        rre__log(RRE_LOG_ERROR, "link", "reading the handler retries failed: %s", rre_last_error());
        return;
    }
    size_t plen = strlen(link->retry_prefix);
    for (size_t i = 0; i < n && !atomic_load(&link->stopping); i++) {
        rre__retry_item *it = &items[i];
        const char *name = it->subscriber_id + plen;
        rre_status st;
        if (it->undeliverable) {
            atomic_fetch_add(&link->handler_dead, 1);
            st = rre__retry_done(link->queue, it->subscriber_id, it->ev.event_id, it->why);
        } else {
            int rc = 0;
            st = rre__router_call_named(link->router, name, &it->ev, &rc);
            if (st == RRE_ENOTFOUND) {
                /* Not subscribed (yet, or any more): put off, not counted. */
                char why[300];
                snprintf(why, sizeof why, "no handler named '%s' receives %s", name,
                         rre_event_name(it->ev.type));
                st = rre__retry_fail(link->queue, it->subscriber_id, &it->ev, it->attempts,
                                     rre__queue_now() + link->retry_delay_max_s, why);
            } else {
                atomic_fetch_add(&link->handler_retries, 1);
                if (rc == 0)
                    st = rre__retry_done(link->queue, it->subscriber_id, it->ev.event_id, NULL);
                else
                    record_failure(link, it->subscriber_id, &it->ev, rc, rre_last_error(),
                                   it->attempts);
            }
        }
        if (st != RRE_OK)
            rre__log(RRE_LOG_ERROR, "link", "recording a handler retry failed: %s",
                     rre_last_error());
    }
    rre__retry_items_free(items, n);
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
        if (link->retry_prefix != NULL && st == RRE_OK)
            run_handler_retries(link);
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
    link->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
    link->retry_delay_s = opts->retry_delay_s > 0 ? opts->retry_delay_s : 2.0;
    link->retry_delay_max_s = opts->retry_delay_max_s > 0 ? opts->retry_delay_max_s : 300.0;
    if (link->retry_delay_max_s < link->retry_delay_s)
        link->retry_delay_max_s = link->retry_delay_s;
    pthread_mutex_init(&link->mu, NULL);
    pthread_cond_init(&link->progress, NULL);

    rre_status st = RRE_OK;
    if ((opts->flags & RRE_LINK_HANDLER_RETRIES) && (opts->flags & RRE_LINK_PIPELINED))
        st = rre__error(RRE_EINVAL,
                        "link: RRE_LINK_HANDLER_RETRIES needs the event id of each local event "
                        "when it is dispatched, which RRE_LINK_PIPELINED does not give: use one");
    else if ((opts->flags & RRE_LINK_HANDLER_RETRIES) &&
             (opts->subscriber_name == NULL || (opts->flags & RRE_LINK_NO_READER)))
        st = rre__error(RRE_EINVAL, "link: handler retries need a durable subscriber name and "
                                    "the reader");
    else if ((opts->flags & RRE_LINK_HANDLER_RETRIES) &&
             (!(opts->retry_delay_s >= 0 && opts->retry_delay_s <= 1e9) ||
              !(opts->retry_delay_max_s >= 0 && opts->retry_delay_max_s <= 1e9)))
        st = rre__error(RRE_EINVAL, "link: retry delays must be between 0 and 1e9 seconds");
    if (st == RRE_OK && !(opts->flags & RRE_LINK_NO_READER)) {
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
    if (st == RRE_OK && (opts->flags & RRE_LINK_HANDLER_RETRIES)) {
        const char *id = rre_subscriber_id(link->reader);
        size_t len = strlen(id) + 2;
        if ((link->retry_prefix = malloc(len)) == NULL)
            st = rre__error(RRE_ENOMEM, "link: out of memory");
        else
            snprintf(link->retry_prefix, len, "%s/", id);
        if (st == RRE_OK &&
            !(link->hooked = rre__router_set_failure_hook(router, on_handler_failed, link)))
            st = rre__error(RRE_EINVAL, "link: the router has a link with handler retries already");
        if (st == RRE_OK) {
            st = rre__router_unique_names(router, true);
            link->unique_names = st == RRE_OK;
        }
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
    out->handler_retries = atomic_load(&link->handler_retries);
    out->handler_dead = atomic_load(&link->handler_dead);
}

rre_status rre_link_flush(rre_link *link, int timeout_ms)
{
    if (link == NULL)
        return rre__error(RRE_EINVAL, "link: NULL");
    if (!(link->flags & RRE_LINK_PIPELINED))
        return RRE_OK;
    /* Waits for every pipelined event of the queue handle; the link's own
     * failures are its completions' count, not the queue's. */
    rre_status st = rre__queue_flush_from(link->queue, UINT64_MAX, timeout_ms, NULL);
    if (st != RRE_OK)
        return st;
    lock(&link->mu);
    uint64_t failed = link->unflushed_failures;
    rre_status why = link->unflushed_status;
    link->unflushed_failures = 0;
    unlock(&link->mu);
    if (failed > 0)
        return rre__error(why, "link: %llu event%s published on the router %s not stored: %s",
                          (unsigned long long)failed, failed == 1 ? "" : "s",
                          failed == 1 ? "was" : "were", rre_strerror(why));
    return RRE_OK;
}

void rre_link_destroy(rre_link *link)
{
    if (link == NULL)
        return;
    if (link->sink_id != 0)
        rre_router_remove_sink(link->router, link->sink_id);
    /* No completion may run on the link once it is freed. */
    if (link->flags & RRE_LINK_PIPELINED) {
        rre_status st = rre__queue_flush_from(link->queue, UINT64_MAX, -1, NULL);
        if (st == RRE_EINVAL)
            rre__panic("rre_link_destroy() called from a completion of a pipelined publish");
        if (st == RRE_OK && link->unflushed_failures > 0)
            rre__log(RRE_LOG_WARN, "link",
                     "%llu pipelined events published on the router were not stored",
                     (unsigned long long)link->unflushed_failures);
    }
    atomic_store(&link->stopping, true);
    if (link->reader != NULL)
        rre_subscriber_close(link->reader);
    if (link->thread_started)
        pthread_join(link->thread, NULL);
    /* After the reader: failures of the batch it was delivering are still
     * recorded. */
    if (link->hooked)
        rre__router_set_failure_hook(link->router, NULL, NULL);
    if (link->unique_names)
        (void)rre__router_unique_names(link->router, false);
    rre_subscriber_destroy(link->reader);
    if (link->tracking)
        rre__queue_own_set_tracking(link->queue, false);
    pthread_cond_destroy(&link->progress);
    pthread_mutex_destroy(&link->mu);
    free(link->retry_prefix);
    free(link);
}
