/*
 * queue_router.c - linking a router to the durable queue: a sink appends
 * the router's local events to the queue, and a receiving thread injects
 * the events of other processes into the router, skipping the ones this
 * process appended (recognised by id, recorded before their commit).
 *
 * DESIGN: the link owns one subscriber and one thread. The thread loops on
 * rre_subscriber_poll() with no timeout; rre_queue_link_destroy() closes the
 * subscriber (which wakes the poll) and joins the thread. The sink runs on
 * the publishing thread and only calls rre_queue_publish_event(), which is
 * thread-safe. The own-id list lives in the queue under own_mu.
 */
#include "queue_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- own ids ------------------------------------------------------------ */

void rre__queue_own_set_tracking(rre_queue *q, bool on)
{
    rre__queue_lock(&q->own_mu);
    q->own_tracking = on;
    if (!on)
        q->own_len = 0;
    rre__queue_unlock(&q->own_mu);
}

void rre__queue_own_add(rre_queue *q, int64_t id)
{
    rre__queue_lock(&q->own_mu);
    if (q->own_tracking) {
        if (q->own_len == q->own_cap) {
            size_t cap = q->own_cap ? q->own_cap * 2 : 256;
            int64_t *n = realloc(q->own_ids, cap * sizeof *n);
            if (n == NULL) {
                /* Without memory the id is forgotten: the router's dedup
                 * window still catches the echo by its hash. */
                rre__queue_unlock(&q->own_mu);
                return;
            }
            q->own_ids = n;
            q->own_cap = cap;
        }
        q->own_ids[q->own_len++] = id;
    }
    rre__queue_unlock(&q->own_mu);
}

void rre__queue_own_remove(rre_queue *q, int64_t id)
{
    rre__queue_lock(&q->own_mu);
    for (size_t i = q->own_len; i-- > 0;) {
        if (q->own_ids[i] == id) {
            memmove(q->own_ids + i, q->own_ids + i + 1, (q->own_len - i - 1) * sizeof(int64_t));
            q->own_len--;
            break;
        }
    }
    rre__queue_unlock(&q->own_mu);
}

bool rre__queue_own_take(rre_queue *q, int64_t id)
{
    rre__queue_lock(&q->own_mu);
    /* Ids are committed in increasing order and read in increasing order:
     * anything smaller than `id` still listed will never be read (deleted by
     * retention before the receiver got there). */
    size_t drop = 0;
    while (drop < q->own_len && q->own_ids[drop] < id)
        drop++;
    bool mine = drop < q->own_len && q->own_ids[drop] == id;
    if (mine)
        drop++;
    if (drop > 0) {
        memmove(q->own_ids, q->own_ids + drop, (q->own_len - drop) * sizeof(int64_t));
        q->own_len -= drop;
    }
    rre__queue_unlock(&q->own_mu);
    return mine;
}

/* ---- the link ------------------------------------------------------------- */

struct rre_queue_link {
    rre_queue *q;
    rre_router *r;
    rre_subscriber *sub;
    rre_subscription_id sink;
    bool has_sink;
    bool async;
    pthread_t thread;
    bool thread_started;
};

static rre_status sink_fn(rre_event *ev, void *user_data)
{
    rre_queue_link *l = user_data;
    bool dup = false;
    return rre_queue_publish_event(l->q, ev, &dup);
}

static rre_status inject_fn(const rre_event *ev, void *user_data)
{
    rre_queue_link *l = user_data;
    if (rre__queue_own_take(l->q, ev->event_id))
        return RRE_OK; /* our own event coming back: already delivered here */
    rre_publish_options po;
    memset(&po, 0, sizeof po);
    po.flags = l->async ? RRE_PUBLISH_ASYNC : 0;
    rre_status st = rre_router_inject(l->r, ev, &po, NULL);
    if (st == RRE_ECLOSED)
        return RRE_ECLOSED; /* not acknowledged: delivered again next time */
    return st;
}

static void *receive_main(void *arg)
{
    rre_queue_link *l = arg;
    for (;;) {
        rre_status st = rre_subscriber_poll(l->sub, -1, 0, inject_fn, l, NULL);
        if (st == RRE_ECLOSED)
            break;
        if (st != RRE_OK) {
            rre__log(RRE_LOG_ERROR, "queue", "receiving from '%s' for the router: %s: %s",
                     l->q->path, rre_strerror(st), rre_last_error());
            if (st == RRE_EHELD)
                break;
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* The id of the newest event, so a transient receiver starts after it. */
static int64_t last_event_id(rre_queue *q)
{
    int64_t id = 0;
    rre__queue_lock(&q->admin_mu);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->adb, "SELECT max(event_id) FROM events", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rre__queue_unlock(&q->admin_mu);
    return id;
}

rre_status rre_queue_link_create(rre_queue_link **out, rre_queue *q, rre_router *r,
                                 const rre_queue_link_options *opts)
{
    if (out == NULL || q == NULL || r == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_link_create: out, q and r must not be NULL");
    *out = NULL;
    rre_queue_link_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (opts == NULL)
        opts = &defaults;
    rre_queue_link *l = calloc(1, sizeof *l);
    if (l == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    l->q = q;
    l->r = r;
    l->async = opts->async_dispatch;
    rre_status st = RRE_OK;
    if (!opts->send_only) {
        rre__queue_own_set_tracking(q, true);
        rre_subscriber_options so;
        rre_subscriber_options_init(&so);
        so.name = opts->subscriber_name;
        if (so.name == NULL)
            so.since_id = last_event_id(q);
        st = rre_subscriber_create(&l->sub, q, &so);
    }
    if (st == RRE_OK && !opts->receive_only) {
        st = rre_router_add_sink(r, RRE_ORIGIN_BIT(RRE_ORIGIN_LOCAL), sink_fn, l, &l->sink);
        l->has_sink = st == RRE_OK;
    }
    if (st == RRE_OK && l->sub != NULL) {
        int rc = pthread_create(&l->thread, NULL, receive_main, l);
        if (rc != 0)
            st = rre__error(RRE_EINTERNAL, "cannot start the receiving thread: %s", strerror(rc));
        l->thread_started = rc == 0;
    }
    if (st != RRE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rre_last_error());
        rre_queue_link_destroy(l);
        return rre__error(st, "%s", msg);
    }
    *out = l;
    return RRE_OK;
}

void rre_queue_link_destroy(rre_queue_link *l)
{
    if (l == NULL)
        return;
    if (l->has_sink)
        rre_router_remove_sink(l->r, l->sink);
    if (l->sub != NULL) {
        rre_subscriber_close(l->sub);
        if (l->thread_started)
            pthread_join(l->thread, NULL);
        rre_subscriber_destroy(l->sub);
        rre__queue_own_set_tracking(l->q, false);
    }
    free(l);
}
