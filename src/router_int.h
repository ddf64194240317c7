/*
 * router_int.h - the router's internal structures, shared by router.c (the
 * publish pipeline, subscriptions, history, statistics) and dispatch.c
 * (calling handlers, the worker pool, the watchdog).
 *
 * DESIGN. One mutex per concern, never held while user code runs, and none
 * that every publish takes for long:
 *  - r->mu guards subscribe and unsubscribe (the next id, unique names) and
 *    the closed flag's writers. Publishes do not take it.
 *  - Each dedup shard's mutex guards its part of the window (by hash); the
 *    history has its own mutex, held to copy one entry in.
 *  - Counters are atomics in the calling thread's stripe (RRE__STRIPES), so
 *    threads do not write the same cache lines; readers add the stripes up.
 *  - The subscription set is immutable and reference-counted. Subscribing
 *    and unsubscribing build a new set under r->mu and swap it in under
 *    r->subs_lock (write-locked); a publish read-locks it to take a
 *    reference to the current set and dispatches from it without a lock, so
 *    handlers run in subscription order with no lock held.
 *  - Each subscription counts the calls running now (in_flight) and has a
 *    removed flag. A caller increments in_flight and then checks removed;
 *    unsubscribe sets removed and then waits (r->unsub_mu, r->unsub_cv) until
 *    in_flight has dropped to the number of calls of that subscription on
 *    its own thread's stack. Both sides use sequentially consistent atomics,
 *    so either the caller sees removed or unsubscribe sees the call. Close
 *    works the same way with r->closed for every subscription: a handler
 *    call checks closed too, and close waits for in_flight to reach 0, so
 *    no handler runs on any thread once close has returned.
 *  - r->pool.mu guards the worker pool: the per-subscription mailboxes (FIFO
 *    rings of queued events), the ready list of subscriptions with queued
 *    events, and the thread bookkeeping. A subscription is on the ready list
 *    or being served by exactly one worker while `scheduled` is set, which
 *    gives each subscriber one FIFO order.
 *  - Each stripe's watch_mu guards its list of dispatch frames (one per
 *    thread running handlers of this router) that the watchdog inspects for
 *    calls running past the timeout; r->watch_mu guards the watchdog's own
 *    state. Lock order: a stripe's watch_mu before r->pool.mu; r->mu is
 *    never held together with either.
 */
#ifndef RRE_ROUTER_INT_H
#define RRE_ROUTER_INT_H

#include "dedup.h"
#include "history.h"

#include <pthread.h>
#include <stdatomic.h>

enum rre__sub_kind { SUB_TYPE, SUB_CATEGORY, SUB_ALL, SUB_SINK };

/* A subscription or a sink. Reference-counted: the subscription sets that
 * list it, a worker serving it and the ready list each hold a reference. */
struct rre__sub {
    atomic_size_t refs;
    rre_subscription_id id;
    enum rre__sub_kind kind;
    rre_event_type type;   /* SUB_TYPE */
    rre_category category; /* SUB_CATEGORY */
    unsigned origins;      /* SUB_SINK */
    rre_handler_fn fn;
    rre_sink_fn sink_fn;
    void *user_data;
    char name[RRE_ROUTER_NAME_MAX];
    atomic_bool removed;
    atomic_size_t in_flight;
    /* Statistics of its calls (atomics, no lock). */
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t failures;
    atomic_uint_fast64_t timeouts;
    atomic_uint_fast32_t consecutive_failures;
    /* Guarded by pool.mu: the mailbox ring and its scheduling. */
    struct rre__evrec **mbox;
    size_t mbox_head, mbox_count, mbox_cap;
    bool scheduled;
    struct rre__sub *ready_next;
};

/* An immutable set of subscriptions and sinks, in subscription order, with
 * an index from event type to the handlers that receive it. */
struct rre__subset {
    atomic_size_t refs;
    size_t count; /* handlers */
    struct rre__sub **subs;
    size_t sink_count;
    struct rre__sub **sinks;
    unsigned sink_origins;  /* the union of the sinks' origin masks */
    uint32_t (*by_type)[2]; /* [type] = {offset into flat, count} */
    struct rre__sub **flat;
};

/* An event queued for asynchronous delivery: a copy of the envelope that
 * owns its strings and a payload reference, shared by the mailboxes. */
struct rre__evrec {
    atomic_size_t refs;
    rre_event ev;
    char strings[]; /* source, NUL, hostname, NUL */
};

/* One thread running handlers of a router: a sync publish (on the
 * publisher's stack, for the duration of the dispatch) or a worker (for its
 * lifetime). Frames on one thread form a stack through `outer` (a handler
 * may publish). */
struct rre__stripe;

struct rre__frame {
    struct rre__frame *outer; /* the thread's enclosing frame */
    struct rre_router *router;
    const rre_event *ev;      /* event being dispatched (sync frames) */
    struct rre__sub *current; /* handler or sink running now (owning thread only) */
    /* Read by the watchdog: a seqlock (seq odd while a call's record is
     * being written) over sub, started and type. */
    _Atomic(struct rre__sub *) sub; /* handler running now, NULL between calls */
    atomic_int_fast64_t started;    /* clock time the running call started */
    atomic_uint_fast64_t seq;       /* calls started through this frame */
    atomic_int type;                /* event type of the running call */
    bool is_worker;
    bool watched;               /* on the watch list of `stripe` */
    struct rre__stripe *stripe; /* the watch list it is on */
    /* Guarded by stripe->watch_mu. */
    struct rre__frame *wprev, *wnext;
    uint64_t reported_seq; /* the call last reported as timed out */
    /* Guarded by router->pool.mu (worker frames). */
    bool timed_out; /* counted in pool.stuck */
};

struct rre__worker {
    pthread_t thread;
    bool joinable; /* guarded by pool.mu: a thread was started and not joined */
    bool done;     /* guarded by pool.mu: the thread has left its loop (or none runs) */
};

struct rre__pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* work queued, or stopping */
    pthread_cond_t idle_cv; /* pending reached 0 */
    struct rre__sub *ready_head, *ready_tail;
    uint64_t pending;   /* deliveries queued or running */
    uint64_t cancelled; /* deliveries dropped */
    size_t configured;  /* workers wanted */
    size_t live;        /* workers running */
    size_t stuck;       /* workers inside a timed-out call */
    struct rre__worker *workers;
    size_t worker_count, worker_cap;
    bool stopping;
    atomic_bool closing; /* stopping, readable without the lock */
};

/* A hook told of each failed handler call: the event, the handler's name,
 * what it returned and the error message it left (or ""). Runs on the
 * thread that called the handler, with no router lock held. */
typedef void (*rre__failure_hook)(const rre_event *ev, const char *handler, int rc,
                                  const char *error, void *data);

/* Threads are spread over stripes, by the order in which they first
 * publish or dispatch, so that publishes from several threads do not write
 * the same memory: each stripe has its own counters and its own list of
 * watched frames (the calls the watchdog times). Readers sum the stripes. */
#define RRE__STRIPES 8

struct rre__stripe {
    _Alignas(64) pthread_mutex_t watch_mu; /* guards watch_list */
    struct rre__frame *watch_list;
    atomic_uint_fast64_t published, injected, duplicates, rejected, violations, delivered;
    atomic_uint_fast64_t routed_by_type[RRE_EVENT_TYPE_COUNT];
    atomic_uint_fast64_t violations_by_type[RRE_EVENT_TYPE_COUNT];
};

/* The calling thread's stripe (fixed for the thread's life). */
unsigned rre__stripe_index(void);

/* The counters of every stripe added up. */
struct rre__totals {
    uint64_t published, injected, duplicates, rejected, violations, delivered;
};
void rre__router_totals(const struct rre_router *r, struct rre__totals *t);

/* The dedup window is split by the last byte of the hash into shards with
 * a lock each, when it is large enough for each to hold a useful part;
 * a small window stays one shard, so its limit is exact. */
#define RRE__DEDUP_SHARDS 8
#define RRE__DEDUP_SHARD_MIN_ENTRIES 4096

struct rre__dedup_shard {
    _Alignas(64) pthread_mutex_t mu; /* guards d */
    struct rre__dedup d;
};

struct rre_router {
    /* Set at creation, read-only afterwards. */
    rre_validation_mode validation;
    bool dedup_enabled;
    int64_t handler_timeout;   /* microseconds; 0: no watchdog */
    int64_t watchdog_interval; /* nanoseconds of real time */
    rre_clock_fn clock;
    void *clock_data;
    char source[RRE_ROUTER_NAME_MAX];
    char hostname[RRE_HOSTNAME_MAX + 1];

    pthread_mutex_t mu;
    /* Guarded by mu. */
    atomic_bool closed; /* written under mu, read without it */
    /* Written under mu and subs_lock (write-locked); read under either
     * (publishes read-lock subs_lock, so they do not wait for each other). */
    struct rre__subset *subs;
    pthread_rwlock_t subs_lock;
    bool unique_names; /* handlers that share events must have distinct names */
    uint64_t next_id;

    struct rre__dedup_shard dedup[RRE__DEDUP_SHARDS];
    unsigned dedup_shards; /* in use: 1 or RRE__DEDUP_SHARDS */

    pthread_mutex_t history_mu;
    struct rre__history history; /* history_mu (history.size: set at creation) */

    struct rre__stripe stripes[RRE__STRIPES];

    /* Counters of rarer events. */
    atomic_uint_fast64_t failures;
    atomic_uint_fast64_t timeouts;
    atomic_uint_fast64_t sink_failures;

    pthread_mutex_t unsub_mu;
    pthread_cond_t unsub_cv;

    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    /* The clock as last read by the watchdog (or at creation): the start
     * time of handler calls after the first of a dispatch, so calls do not
     * each read the clock. Early by at most one watchdog interval. */
    atomic_int_fast64_t coarse_now;
    /* Guarded by watch_mu. */
    bool watchdog_started;
    bool watchdog_stop;
    pthread_t watchdog;

    struct rre__pool pool;

    /* Called when a handler fails (a link that keeps handler retries):
     * read-locked around each call, write-locked to change it. */
    pthread_rwlock_t hook_lock;
    rre__failure_hook hook; /* hook_lock */
    void *hook_data;        /* hook_lock */
};

/* ---- locks (abort on failure) ---- */
void rre__mutex_init(pthread_mutex_t *m);
void rre__lock(pthread_mutex_t *m);
void rre__unlock(pthread_mutex_t *m);
void rre__cond_init(pthread_cond_t *c); /* CLOCK_MONOTONIC for timed waits */

/* ---- subscriptions (router.c) ---- */
void rre__sub_ref(struct rre__sub *s);
void rre__sub_unref(struct rre__sub *s);
void rre__subset_unref(struct rre__subset *set);

/* The current subscriber set, with a reference for the caller. */
struct rre__subset *rre__subset_get(struct rre_router *r);

/* Publishes a HANDLER_FAILED (timeout_seconds < 0) or HANDLER_TIMEOUT
 * report for a call of handler `name` on an event of `type`, asynchronously.
 * Does nothing for calls that were handling a report. */
void rre__router_report(struct rre_router *r, const char *name, rre_event_type type, int rc,
                        double timeout_seconds);

/* Sets (or with NULL removes) the failure hook; when it returns, no call of
 * the previous hook is running. False, changing nothing, when a hook is set
 * already and `fn` is not NULL. */
bool rre__router_set_failure_hook(struct rre_router *r, rre__failure_hook fn, void *data);

/* With `on`, checks that no two handlers that receive some of the same
 * events share a name, and refuses such a subscription from then on
 * (handler retries find a handler by its name); RRE_EINVAL naming the two
 * when they already do. Without `on`, lifts the rule. */
rre_status rre__router_unique_names(struct rre_router *r, bool on);

/* Tells the hook (when set) that handler `name` returned `rc` on `ev`. */
void rre__router_handler_failed(struct rre_router *r, const char *name, const rre_event *ev,
                                int rc);

/* Calls the handler named `name` that receives events of ev->type, alone,
 * on this thread (a retry). RRE_ENOTFOUND when no such handler is
 * subscribed (or it was removed meanwhile); else RRE_OK with its result in
 * *rc. */
rre_status rre__router_call_named(struct rre_router *r, const char *name, const rre_event *ev,
                                  int *rc);

/* ---- dispatch (dispatch.c) ---- */
void rre__pool_init(struct rre__pool *p, size_t workers);
/* Cancels queued deliveries, stops and joins the workers. */
void rre__pool_close(struct rre_router *r);
void rre__pool_free(struct rre__pool *p);

/* Runs the handlers of `set` for ev->type on this thread, in order. `now`
 * is the clock time at the start (saves a clock read for the first call).
 * Returns the calls made; *failed counts the non-zero returns. */
size_t rre__dispatch_sync(struct rre_router *r, struct rre__subset *set, const rre_event *ev,
                          int64_t now, size_t *failed);

/* Queues ev for the handlers of `set` on the workers. Returns the number of
 * subscriptions it was queued for, or 0 with *st set on failure. */
size_t rre__dispatch_async(struct rre_router *r, struct rre__subset *set, const rre_event *ev,
                           rre_status *st);

/* Runs the sinks of `set` whose mask has ev->origin. Returns the first
 * failure, RRE_OK when none. */
rre_status rre__run_sinks(struct rre_router *r, struct rre__subset *set, rre_event *ev);

/* Drops s's queued deliveries and waits until no other thread is running
 * it (s->removed is already set). */
void rre__unsubscribe_wait(struct rre_router *r, struct rre__sub *s);

/* Waits until no handler or sink of the current set runs on any thread
 * (r->closed is already set, so no new call starts). */
void rre__close_wait(struct rre_router *r);

/* The innermost event being handled on this thread (by any router), or
 * NULL: a publish from a handler continues its trace. */
const rre_event *rre__current_event(void);

/* True when this thread is inside a handler or sink of `r`; *worker says
 * whether it is one of r's worker threads. */
bool rre__inside(const struct rre_router *r, bool *worker);

/* Starts the watchdog thread if the timeout is set and it is not running. */
rre_status rre__watchdog_start(struct rre_router *r);
void rre__watchdog_stop(struct rre_router *r);

/* Waits until pending is 0 or the real-time timeout passes. */
rre_status rre__pool_flush(struct rre_router *r, double timeout_seconds);

/* Appends to `names` (cap entries of RRE_ROUTER_NAME_MAX) the handlers
 * running past the timeout now, with how long they have run. Returns the
 * count written. */
size_t rre__stuck_handlers(struct rre_router *r, char (*names)[RRE_ROUTER_NAME_MAX],
                           double *seconds, rre_event_type *types, size_t cap);

/* Queued or running deliveries, cancelled ones, live workers. */
void rre__pool_stats(struct rre_router *r, uint64_t *pending, uint64_t *cancelled, size_t *workers);

#endif /* RRE_ROUTER_INT_H */
