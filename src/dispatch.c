/*
 * dispatch.c - calling handlers: synchronously on the publisher's thread,
 * asynchronously on a pool of worker threads with one FIFO mailbox per
 * subscription, and under the eye of a watchdog that reports calls running
 * past the handler timeout.
 *
 * DESIGN. See router_int.h for the locks. A synchronous dispatch pushes a
 * frame on the thread's frame stack (so a handler that publishes, or
 * unsubscribes itself, is recognised) and, when a timeout is set, links it
 * on the router's watch list for the duration. Workers keep one frame for
 * their lifetime. A worker takes a subscription off the ready list, takes up
 * to BATCH of its queued events, runs them in order with no lock held, then
 * puts the subscription back at the tail of the ready list if more arrived
 * (round robin between subscriptions) or clears `scheduled`.
 *
 * When the watchdog finds a worker inside a timed-out call it counts the
 * worker as stuck and starts a replacement, so the configured number of
 * workers keeps serving the other subscriptions. When the stuck call
 * returns, the surplus worker ends. Finished threads are joined when their
 * slot is reused or at close.
 */
#include "router_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 32
#define FLUSH_MAX_SECONDS 1e9 /* about 31 years */

/* ---- locks ------------------------------------------------------------------ */

void rre__mutex_init(pthread_mutex_t *m)
{
    int rc = pthread_mutex_init(m, NULL);
    if (rc != 0)
        rre__panic("pthread_mutex_init failed: %s", strerror(rc));
}

void rre__lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc != 0)
        rre__panic("pthread_mutex_lock failed: %s", strerror(rc));
}

void rre__unlock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_unlock(m);
    if (rc != 0)
        rre__panic("pthread_mutex_unlock failed: %s", strerror(rc));
}

void rre__cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 || pthread_cond_init(c, &attr) != 0)
        rre__panic("pthread_cond_init failed");
    pthread_condattr_destroy(&attr);
}

static void cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    int rc = pthread_cond_wait(c, m);
    if (rc != 0)
        rre__panic("pthread_cond_wait failed: %s", strerror(rc));
}

static void deadline_after(struct timespec *ts, int64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ns / 1000000000);
    ts->tv_nsec += (long)(ns % 1000000000);
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* False when the deadline passed. */
static bool cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *ts)
{
    int rc = pthread_cond_timedwait(c, m, ts);
    if (rc == ETIMEDOUT)
        return false;
    if (rc != 0)
        rre__panic("pthread_cond_timedwait failed: %s", strerror(rc));
    return true;
}

/* ---- frames ------------------------------------------------------------------ */

static _Thread_local struct rre__frame *tl_frame;

static void frame_init(struct rre__frame *f, struct rre_router *r, bool worker)
{
    memset(f, 0, sizeof *f);
    f->router = r;
    f->is_worker = worker;
    atomic_init(&f->sub, NULL);
    atomic_init(&f->started, 0);
    atomic_init(&f->seq, 0);
    atomic_init(&f->type, RRE_EV_NONE);
    f->outer = tl_frame;
    tl_frame = f;
}

static void frame_pop(struct rre__frame *f)
{
    tl_frame = f->outer;
}

/* Puts f on the watch list of the calling thread's stripe. */
static void watch_add(struct rre_router *r, struct rre__frame *f)
{
    struct rre__stripe *sp = &r->stripes[rre__stripe_index()];
    rre__lock(&sp->watch_mu);
    f->stripe = sp;
    f->wprev = NULL;
    f->wnext = sp->watch_list;
    if (sp->watch_list != NULL)
        sp->watch_list->wprev = f;
    sp->watch_list = f;
    f->watched = true;
    rre__unlock(&sp->watch_mu);
}

static void watch_remove(struct rre_router *r, struct rre__frame *f)
{
    (void)r;
    struct rre__stripe *sp = f->stripe;
    rre__lock(&sp->watch_mu);
    if (f->wprev != NULL)
        f->wprev->wnext = f->wnext;
    else
        sp->watch_list = f->wnext;
    if (f->wnext != NULL)
        f->wnext->wprev = f->wprev;
    f->watched = false;
    rre__unlock(&sp->watch_mu);
}

static void add_delivered(struct rre_router *r, uint64_t calls)
{
    atomic_fetch_add_explicit(&r->stripes[rre__stripe_index()].delivered, calls,
                              memory_order_relaxed);
}

const rre_event *rre__current_event(void)
{
    for (const struct rre__frame *f = tl_frame; f != NULL; f = f->outer)
        if (f->ev != NULL)
            return f->ev;
    return NULL;
}

bool rre__inside(const struct rre_router *r, bool *worker)
{
    bool inside = false;
    *worker = false;
    for (const struct rre__frame *f = tl_frame; f != NULL; f = f->outer) {
        if (f->router == r) {
            inside = true;
            if (f->is_worker)
                *worker = true;
        }
    }
    return inside;
}

/* ---- calling one handler ---------------------------------------------------------- */

static void in_flight_release(struct rre_router *r, struct rre__sub *s)
{
    atomic_fetch_sub(&s->in_flight, 1);
    if (atomic_load(&s->removed) || atomic_load(&r->closed)) {
        rre__lock(&r->unsub_mu);
        pthread_cond_broadcast(&r->unsub_cv);
        rre__unlock(&r->unsub_mu);
    }
}

/* Calls s for ev through frame f unless s was removed or the router closed.
 * Returns true when it was called, with its result in *rc. `start` is the
 * clock time now, used only when the frame is watched. */
static bool call_handler(struct rre_router *r, struct rre__frame *f, struct rre__sub *s,
                         const rre_event *ev, int64_t start, int *rc)
{
    atomic_fetch_add(&s->in_flight, 1);
    /* Either close sees this call in in_flight and waits for it, or this
     * call sees closed and is not made (sequentially consistent atomics). */
    if (atomic_load(&s->removed) || atomic_load(&r->closed)) {
        in_flight_release(r, s);
        return false;
    }
    if (f->watched) {
        uint64_t q = atomic_load_explicit(&f->seq, memory_order_relaxed);
        atomic_store_explicit(&f->seq, q + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        atomic_store_explicit(&f->started, start, memory_order_relaxed);
        atomic_store_explicit(&f->type, (int)ev->type, memory_order_relaxed);
        atomic_store_explicit(&f->sub, s, memory_order_relaxed);
        atomic_store_explicit(&f->seq, q + 2, memory_order_release);
    }
    f->ev = ev;
    f->current = s;
    rre__clear_error(); /* what the handler leaves is its failure's message */
    *rc = s->fn(ev, s->user_data);
    f->current = NULL;
    if (f->watched)
        atomic_store_explicit(&f->sub, NULL, memory_order_release);
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    if (*rc != 0) {
        atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->consecutive_failures, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->failures, 1, memory_order_relaxed);
    } else if (atomic_load_explicit(&s->consecutive_failures, memory_order_relaxed) != 0) {
        atomic_store_explicit(&s->consecutive_failures, 0, memory_order_relaxed);
    }
    in_flight_release(r, s);
    return true;
}

size_t rre__dispatch_sync(struct rre_router *r, struct rre__subset *set, const rre_event *ev,
                          int64_t now, size_t *failed)
{
    uint32_t off = set->by_type[ev->type][0], n = set->by_type[ev->type][1];
    *failed = 0;
    if (n == 0)
        return 0;
    struct rre__frame f;
    frame_init(&f, r, false);
    f.ev = ev;
    if (r->handler_timeout > 0)
        watch_add(r, &f);
    size_t calls = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct rre__sub *s = set->flat[off + i];
        int64_t start = i == 0 ? now : atomic_load_explicit(&r->coarse_now, memory_order_relaxed);
        int rc;
        if (!call_handler(r, &f, s, ev, start, &rc))
            continue;
        calls++;
        if (rc != 0) {
            (*failed)++;
            rre__router_handler_failed(r, s->name, ev, rc);
            rre__router_report(r, s->name, ev->type, rc, -1.0);
        }
    }
    if (f.watched)
        watch_remove(r, &f);
    frame_pop(&f);
    add_delivered(r, calls);
    return calls;
}

rre_status rre__router_call_named(struct rre_router *r, const char *name, const rre_event *ev,
                                  int *rc)
{
    rre__lock(&r->mu);
    struct rre__subset *set = r->subs;
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    rre__unlock(&r->mu);
    struct rre__sub *found = NULL;
    uint32_t off = set->by_type[ev->type][0], n = set->by_type[ev->type][1];
    for (uint32_t i = 0; i < n && found == NULL; i++)
        if (strcmp(set->flat[off + i]->name, name) == 0)
            found = set->flat[off + i];
    bool called = false;
    if (found != NULL) {
        struct rre__frame f;
        frame_init(&f, r, false);
        f.ev = ev;
        called = call_handler(r, &f, found, ev, r->clock(r->clock_data), rc);
        frame_pop(&f);
        if (called)
            add_delivered(r, 1);
    }
    rre__subset_unref(set);
    return called ? RRE_OK : RRE_ENOTFOUND;
}

rre_status rre__run_sinks(struct rre_router *r, struct rre__subset *set, rre_event *ev)
{
    rre_status first = RRE_OK;
    struct rre__frame f;
    frame_init(&f, r, false);
    for (size_t i = 0; i < set->sink_count; i++) {
        struct rre__sub *s = set->sinks[i];
        if ((s->origins & RRE_ORIGIN_BIT(ev->origin)) == 0)
            continue;
        atomic_fetch_add(&s->in_flight, 1);
        if (atomic_load(&s->removed)) {
            in_flight_release(r, s);
            continue;
        }
        f.current = s;
        rre_status st = s->sink_fn(ev, s->user_data);
        f.current = NULL;
        atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
        if (st != RRE_OK) {
            atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&r->sink_failures, 1, memory_order_relaxed);
            rre__log(RRE_LOG_WARN, "router", "sink '%s' failed on %s: %s", s->name,
                     rre_event_name(ev->type), rre_status_name(st));
            if (first == RRE_OK)
                first = st;
        }
        in_flight_release(r, s);
    }
    frame_pop(&f);
    return first;
}

/* ---- queued events ------------------------------------------------------------------ */

static struct rre__evrec *evrec_new(const rre_event *ev)
{
    const char *source = ev->source != NULL ? ev->source : "";
    const char *host = ev->hostname != NULL ? ev->hostname : "";
    size_t ls = strlen(source) + 1, lh = strlen(host) + 1;
    struct rre__evrec *e = malloc(sizeof *e + ls + lh);
    if (e == NULL)
        return NULL;
    atomic_init(&e->refs, 1);
    e->ev = *ev;
    memcpy(e->strings, source, ls);
    memcpy(e->strings + ls, host, lh);
    e->ev.source = e->strings;
    e->ev.hostname = e->strings + ls;
    e->ev.payload = json_incref(ev->payload);
    return e;
}

static void evrec_unref(struct rre__evrec *e)
{
    if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1) {
        rre_payload_release(e->ev.payload);
        free(e);
    }
}

static bool mbox_push(struct rre__sub *s, struct rre__evrec *e)
{
    if (s->mbox_count == s->mbox_cap) {
        size_t cap = s->mbox_cap == 0 ? 8 : s->mbox_cap * 2;
        struct rre__evrec **ring = malloc(cap * sizeof *ring);
        if (ring == NULL)
            return false;
        for (size_t i = 0; i < s->mbox_count; i++)
            ring[i] = s->mbox[(s->mbox_head + i) % s->mbox_cap];
        free(s->mbox);
        s->mbox = ring;
        s->mbox_cap = cap;
        s->mbox_head = 0;
    }
    s->mbox[(s->mbox_head + s->mbox_count) % s->mbox_cap] = e;
    s->mbox_count++;
    return true;
}

static struct rre__evrec *mbox_pop(struct rre__sub *s)
{
    struct rre__evrec *e = s->mbox[s->mbox_head];
    s->mbox_head = (s->mbox_head + 1) % s->mbox_cap;
    s->mbox_count--;
    return e;
}

/* Moves every queued event of s to `out` (which the caller releases after
 * unlocking) and counts them as cancelled. Requires pool.mu. Returns how
 * many, at most `cap`; call again while it returns cap. */
static size_t mbox_drain(struct rre__pool *p, struct rre__sub *s, struct rre__evrec **out,
                         size_t cap)
{
    size_t n = 0;
    while (n < cap && s->mbox_count > 0)
        out[n++] = mbox_pop(s);
    p->pending -= n;
    p->cancelled += n;
    if (p->pending == 0)
        pthread_cond_broadcast(&p->idle_cv);
    return n;
}

static void ready_append(struct rre__pool *p, struct rre__sub *s)
{
    s->ready_next = NULL;
    if (p->ready_tail != NULL)
        p->ready_tail->ready_next = s;
    else
        p->ready_head = s;
    p->ready_tail = s;
}

static struct rre__sub *ready_pop(struct rre__pool *p)
{
    struct rre__sub *s = p->ready_head;
    p->ready_head = s->ready_next;
    if (p->ready_head == NULL)
        p->ready_tail = NULL;
    s->ready_next = NULL;
    return s;
}

/* ---- workers ------------------------------------------------------------------------ */

struct worker_start {
    struct rre_router *r;
    size_t slot;
};

static void *worker_main(void *arg);

/* Starts one worker. Requires pool.mu. */
static rre_status start_worker(struct rre_router *r)
{
    struct rre__pool *p = &r->pool;
    size_t slot = SIZE_MAX;
    for (size_t i = 0; i < p->worker_count; i++) {
        if (p->workers[i].done) {
            /* The thread has left its loop and takes no lock any more. */
            if (p->workers[i].joinable)
                pthread_join(p->workers[i].thread, NULL);
            p->workers[i].joinable = false;
            slot = i;
            break;
        }
    }
    if (slot == SIZE_MAX) {
        if (p->worker_count == p->worker_cap) {
            size_t cap = p->worker_cap == 0 ? 4 : p->worker_cap * 2;
            struct rre__worker *w = realloc(p->workers, cap * sizeof *w);
            if (w == NULL)
                return rre__error(RRE_ENOMEM, "router: out of memory for a worker");
            p->workers = w;
            p->worker_cap = cap;
        }
        slot = p->worker_count++;
    }
    struct worker_start *ws = malloc(sizeof *ws);
    if (ws == NULL) {
        p->workers[slot].done = true;
        return rre__error(RRE_ENOMEM, "router: out of memory for a worker");
    }
    ws->r = r;
    ws->slot = slot;
    p->workers[slot].done = false;
    p->workers[slot].joinable = false;
    int rc = pthread_create(&p->workers[slot].thread, NULL, worker_main, ws);
    if (rc != 0) {
        free(ws);
        p->workers[slot].done = true; /* a free slot with nothing to join */
        return rre__error(RRE_EINTERNAL, "router: cannot start a worker thread: %s", strerror(rc));
    }
    p->workers[slot].joinable = true;
    p->live++;
    return RRE_OK;
}

static void *worker_main(void *arg)
{
    struct worker_start ws = *(struct worker_start *)arg;
    free(arg);
    struct rre_router *r = ws.r;
    struct rre__pool *p = &r->pool;
    struct rre__frame f;
    frame_init(&f, r, true);
    if (r->handler_timeout > 0)
        watch_add(r, &f);
    struct rre__evrec *batch[BATCH];

    rre__lock(&p->mu);
    for (;;) {
        if (f.timed_out) { /* flagged just as its call returned */
            f.timed_out = false;
            p->stuck--;
        }
        if (p->live - p->stuck > p->configured)
            break; /* a replacement for a stuck call is no longer needed */
        if (p->ready_head == NULL) {
            if (p->stopping)
                break;
            cond_wait(&p->work_cv, &p->mu);
            continue;
        }
        struct rre__sub *s = ready_pop(p);
        size_t n = 0;
        while (n < BATCH && s->mbox_count > 0)
            batch[n++] = mbox_pop(s);
        rre__unlock(&p->mu);

        size_t calls = 0, skipped = 0;
        for (size_t i = 0; i < n; i++) {
            const rre_event *ev = &batch[i]->ev;
            if (atomic_load_explicit(&p->closing, memory_order_relaxed)) {
                skipped++; /* close cancels what has not started */
                continue;
            }
            int64_t start = atomic_load_explicit(&r->coarse_now, memory_order_relaxed);
            int rc;
            if (!call_handler(r, &f, s, ev, start, &rc)) {
                skipped++;
                continue;
            }
            calls++;
            if (rc != 0) {
                rre__router_handler_failed(r, s->name, ev, rc);
                rre__router_report(r, s->name, ev->type, rc, -1.0);
            }
        }
        f.ev = NULL;
        if (f.watched) {
            /* After this the watchdog no longer reads s through this frame. */
            rre__lock(&f.stripe->watch_mu);
            rre__unlock(&f.stripe->watch_mu);
        }
        for (size_t i = 0; i < n; i++)
            evrec_unref(batch[i]);
        add_delivered(r, calls);

        rre__lock(&p->mu);
        p->pending -= n;
        p->cancelled += skipped;
        if (f.timed_out) {
            f.timed_out = false;
            p->stuck--;
        }
        if (p->stopping) {
            while (s->mbox_count > 0) {
                size_t k = mbox_drain(p, s, batch, BATCH);
                rre__unlock(&p->mu);
                for (size_t i = 0; i < k; i++)
                    evrec_unref(batch[i]);
                rre__lock(&p->mu);
            }
        }
        if (p->pending == 0)
            pthread_cond_broadcast(&p->idle_cv);
        if (s->mbox_count > 0) {
            ready_append(p, s);
            pthread_cond_signal(&p->work_cv); /* in case this worker leaves now */
        } else {
            s->scheduled = false;
            rre__sub_unref(s);
        }
    }
    p->live--;
    if (p->ready_head != NULL)
        pthread_cond_signal(&p->work_cv); /* hand the queued work over */
    rre__unlock(&p->mu);

    if (f.watched)
        watch_remove(r, &f);
    frame_pop(&f);
    rre__lock(&p->mu);
    p->workers[ws.slot].done = true;
    rre__unlock(&p->mu);
    return NULL;
}

size_t rre__dispatch_async(struct rre_router *r, struct rre__subset *set, const rre_event *ev,
                           rre_status *st)
{
    uint32_t off = set->by_type[ev->type][0], n = set->by_type[ev->type][1];
    *st = RRE_OK;
    if (n == 0)
        return 0;
    struct rre__evrec *e = evrec_new(ev);
    if (e == NULL) {
        *st = rre__error(RRE_ENOMEM, "router: out of memory queueing an event");
        return 0;
    }
    struct rre__pool *p = &r->pool;
    size_t queued = 0;
    rre__lock(&p->mu);
    if (p->stopping) {
        rre__unlock(&p->mu);
        evrec_unref(e);
        *st = rre__error(RRE_ECLOSED, "router is closed");
        return 0;
    }
    while (p->live - p->stuck < p->configured) {
        rre_status ws = start_worker(r);
        if (ws != RRE_OK) {
            if (p->live == 0) {
                rre__unlock(&p->mu);
                evrec_unref(e);
                *st = ws;
                return 0;
            }
            break;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        struct rre__sub *s = set->flat[off + i];
        if (atomic_load(&s->removed))
            continue;
        if (!mbox_push(s, e)) {
            rre__log(RRE_LOG_ERROR, "router", "out of memory queueing %s for '%s'",
                     rre_event_name(ev->type), s->name);
            continue;
        }
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        p->pending++;
        queued++;
        if (!s->scheduled) {
            s->scheduled = true;
            rre__sub_ref(s);
            ready_append(p, s);
            pthread_cond_signal(&p->work_cv);
        }
    }
    rre__unlock(&p->mu);
    evrec_unref(e);
    return queued;
}

/* Waits until s has no call running on another thread than this one. */
static void wait_calls(struct rre_router *r, struct rre__sub *s)
{
    size_t self = 0;
    for (const struct rre__frame *f = tl_frame; f != NULL; f = f->outer)
        if (f->current == s)
            self++;
    rre__lock(&r->unsub_mu);
    while (atomic_load(&s->in_flight) > self)
        cond_wait(&r->unsub_cv, &r->unsub_mu);
    rre__unlock(&r->unsub_mu);
}

void rre__close_wait(struct rre_router *r)
{
    rre__lock(&r->mu);
    struct rre__subset *set = r->subs;
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    rre__unlock(&r->mu);
    for (size_t i = 0; i < set->count; i++)
        wait_calls(r, set->subs[i]);
    for (size_t i = 0; i < set->sink_count; i++)
        wait_calls(r, set->sinks[i]);
    rre__subset_unref(set);
}

void rre__unsubscribe_wait(struct rre_router *r, struct rre__sub *s)
{
    struct rre__pool *p = &r->pool;
    struct rre__evrec *drained[BATCH];
    size_t n;
    do {
        rre__lock(&p->mu);
        n = mbox_drain(p, s, drained, BATCH);
        rre__unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            evrec_unref(drained[i]);
    } while (n == BATCH);
    wait_calls(r, s);
}

void rre__pool_init(struct rre__pool *p, size_t workers)
{
    memset(p, 0, sizeof *p);
    rre__mutex_init(&p->mu);
    rre__cond_init(&p->work_cv);
    rre__cond_init(&p->idle_cv);
    p->configured = workers;
    atomic_init(&p->closing, false);
}

void rre__pool_close(struct rre_router *r)
{
    struct rre__pool *p = &r->pool;
    struct rre__evrec *drained[BATCH];
    rre__lock(&p->mu);
    p->stopping = true;
    atomic_store(&p->closing, true);
    for (struct rre__sub *s = p->ready_head; s != NULL; s = s->ready_next) {
        while (s->mbox_count > 0) {
            size_t k = mbox_drain(p, s, drained, BATCH);
            /* Unreferencing only frees memory (the payload's destructor is
             * jansson's), so it is safe under the pool lock. */
            for (size_t i = 0; i < k; i++)
                evrec_unref(drained[i]);
        }
    }
    pthread_cond_broadcast(&p->work_cv);
    pthread_cond_broadcast(&p->idle_cv);
    /* Join every thread. New ones cannot start once stopping is set. */
    for (;;) {
        pthread_t t;
        bool found = false;
        for (size_t i = 0; i < p->worker_count; i++) {
            if (p->workers[i].joinable) {
                t = p->workers[i].thread;
                p->workers[i].joinable = false;
                found = true;
                break;
            }
        }
        if (!found)
            break;
        rre__unlock(&p->mu);
        pthread_join(t, NULL);
        rre__lock(&p->mu);
    }
    p->worker_count = 0;
    rre__unlock(&p->mu);
}

void rre__pool_free(struct rre__pool *p)
{
    free(p->workers);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->idle_cv);
    pthread_mutex_destroy(&p->mu);
}

rre_status rre__pool_flush(struct rre_router *r, double timeout_seconds)
{
    bool worker;
    if (rre__inside(r, &worker) && worker)
        return rre__error(RRE_EINVAL, "rre_router_flush: called from a worker of this router");
    if (isnan(timeout_seconds))
        return rre__error(RRE_EINVAL, "rre_router_flush: the timeout is not a number");
    /* Beyond FLUSH_MAX_SECONDS (and at infinity) the deadline would not fit
     * a timespec: wait without limit, as for a negative value. */
    bool unlimited = timeout_seconds < 0 || timeout_seconds > FLUSH_MAX_SECONDS;
    struct rre__pool *p = &r->pool;
    struct timespec deadline;
    if (!unlimited)
        deadline_after(&deadline, (int64_t)(timeout_seconds * 1e9));
    rre__lock(&p->mu);
    while (p->pending > 0) {
        if (unlimited) {
            cond_wait(&p->idle_cv, &p->mu);
        } else if (!cond_timedwait(&p->idle_cv, &p->mu, &deadline) && p->pending > 0) {
            uint64_t pending = p->pending;
            rre__unlock(&p->mu);
            return rre__error(RRE_ETIMEOUT, "rre_router_flush: %llu deliveries still pending",
                              (unsigned long long)pending);
        }
    }
    rre__unlock(&p->mu);
    return RRE_OK;
}

void rre__pool_stats(struct rre_router *r, uint64_t *pending, uint64_t *cancelled, size_t *workers)
{
    rre__lock(&r->pool.mu);
    *pending = r->pool.pending;
    *cancelled = r->pool.cancelled;
    *workers = r->pool.live;
    rre__unlock(&r->pool.mu);
}

/* ---- the watchdog ------------------------------------------------------------------- */

struct timeout_report {
    char name[RRE_ROUTER_NAME_MAX];
    rre_event_type type;
};

/* Reads a frame's running call consistently. False when none or when it
 * changed while being read. Requires the watch_mu of its stripe. */
static bool frame_read(struct rre__frame *f, struct rre__sub **s, int64_t *started,
                       rre_event_type *type, uint64_t *seq)
{
    uint64_t q1 = atomic_load_explicit(&f->seq, memory_order_acquire);
    if (q1 & 1)
        return false;
    *s = atomic_load_explicit(&f->sub, memory_order_relaxed);
    *started = atomic_load_explicit(&f->started, memory_order_relaxed);
    *type = (rre_event_type)atomic_load_explicit(&f->type, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    uint64_t q2 = atomic_load_explicit(&f->seq, memory_order_relaxed);
    *seq = q1;
    return q1 == q2 && *s != NULL;
}

static void *watchdog_main(void *arg)
{
    struct rre_router *r = arg;
    enum { MAX_REPORTS = 16 };
    struct timeout_report reports[MAX_REPORTS];
    rre__lock(&r->watch_mu);
    while (!r->watchdog_stop) {
        struct timespec deadline;
        deadline_after(&deadline, r->watchdog_interval);
        cond_timedwait(&r->watch_cv, &r->watch_mu, &deadline);
        if (r->watchdog_stop)
            break;
        rre__unlock(&r->watch_mu);
        int64_t now = r->clock(r->clock_data);
        atomic_store_explicit(&r->coarse_now, now, memory_order_relaxed);
        size_t nrep = 0;
        for (unsigned k = 0; k < RRE__STRIPES; k++) {
            struct rre__stripe *sp = &r->stripes[k];
            rre__lock(&sp->watch_mu);
            for (struct rre__frame *f = sp->watch_list; f != NULL; f = f->wnext) {
                struct rre__sub *s;
                int64_t started;
                rre_event_type type;
                uint64_t seq;
                if (!frame_read(f, &s, &started, &type, &seq) || seq == f->reported_seq ||
                    now - started < r->handler_timeout)
                    continue;
                f->reported_seq = seq;
                atomic_fetch_add_explicit(&s->timeouts, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&r->timeouts, 1, memory_order_relaxed);
                if (nrep < MAX_REPORTS) {
                    memcpy(reports[nrep].name, s->name, sizeof reports[nrep].name);
                    reports[nrep].type = type;
                    nrep++;
                }
                rre__log(RRE_LOG_WARN, "router", "handler '%s' on %s running past %.3f s", s->name,
                         rre_event_name(type), (double)r->handler_timeout / 1e6);
                if (f->is_worker) {
                    struct rre__pool *p = &r->pool;
                    rre__lock(&p->mu);
                    if (!f->timed_out) {
                        f->timed_out = true;
                        p->stuck++;
                    }
                    if (!p->stopping && p->live - p->stuck < p->configured &&
                        start_worker(r) != RRE_OK)
                        rre__log(RRE_LOG_ERROR, "router", "cannot start a replacement worker: %s",
                                 rre_last_error());
                    rre__unlock(&p->mu);
                }
            }
            rre__unlock(&sp->watch_mu);
        }
        for (size_t i = 0; i < nrep; i++)
            rre__router_report(r, reports[i].name, reports[i].type, 0,
                               (double)r->handler_timeout / 1e6);
        rre__lock(&r->watch_mu);
    }
    rre__unlock(&r->watch_mu);
    return NULL;
}

rre_status rre__watchdog_start(struct rre_router *r)
{
    if (r->handler_timeout <= 0)
        return RRE_OK;
    rre_status st = RRE_OK;
    rre__lock(&r->watch_mu);
    if (!r->watchdog_started && !r->watchdog_stop) {
        int rc = pthread_create(&r->watchdog, NULL, watchdog_main, r);
        if (rc != 0)
            st = rre__error(RRE_EINTERNAL, "router: cannot start the watchdog: %s", strerror(rc));
        else
            r->watchdog_started = true;
    }
    rre__unlock(&r->watch_mu);
    return st;
}

void rre__watchdog_stop(struct rre_router *r)
{
    rre__lock(&r->watch_mu);
    bool started = r->watchdog_started;
    r->watchdog_stop = true;
    r->watchdog_started = false;
    pthread_cond_broadcast(&r->watch_cv);
    rre__unlock(&r->watch_mu);
    if (started)
        pthread_join(r->watchdog, NULL);
}

size_t rre__stuck_handlers(struct rre_router *r, char (*names)[RRE_ROUTER_NAME_MAX],
                           double *seconds, rre_event_type *types, size_t cap)
{
    if (r->handler_timeout <= 0)
        return 0;
    int64_t now = r->clock(r->clock_data);
    size_t n = 0;
    for (unsigned k = 0; k < RRE__STRIPES; k++) {
        struct rre__stripe *sp = &r->stripes[k];
        rre__lock(&sp->watch_mu);
        for (struct rre__frame *f = sp->watch_list; f != NULL && n < cap; f = f->wnext) {
            struct rre__sub *s;
            int64_t started;
            rre_event_type type;
            uint64_t seq;
            if (!frame_read(f, &s, &started, &type, &seq) || now - started < r->handler_timeout)
                continue;
            memcpy(names[n], s->name, RRE_ROUTER_NAME_MAX);
            seconds[n] = (double)(now - started) / 1e6;
            types[n] = type;
            n++;
        }
        rre__unlock(&sp->watch_mu);
    }
    return n;
}
