/*
 * router.c - the in-process router: options, life cycle, the publish
 * pipeline (resolve, normalise, validate, envelope, hash, dedup, sinks,
 * history, dispatch), subscriptions and sinks, history queries, statistics
 * and flow validation. Calling handlers and the worker pool are in
 * dispatch.c; the locks are described in router_int.h.
 */
#include "router_int.h"

#include "canonical.h"

#include "flow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */

struct rre_router_options {
    rre_validation_mode validation;
    bool dedup;
    double dedup_window;
    size_t dedup_max_entries;
    size_t history_size;
    size_t async_workers;
    double handler_timeout;
    double watchdog_interval;
    rre_clock_fn clock;
    void *clock_data;
    char source[RRE_ROUTER_NAME_MAX];
    char hostname[RRE_HOSTNAME_MAX + 1];
};

static const struct rre_router_options default_options = {
    .validation = RRE_VALIDATE_WARN,
    .dedup = true,
    .dedup_window = RRE_ROUTER_DEFAULT_DEDUP_WINDOW,
    .dedup_max_entries = RRE_ROUTER_DEFAULT_DEDUP_MAX_ENTRIES,
    .history_size = RRE_ROUTER_DEFAULT_HISTORY_SIZE,
    .async_workers = RRE_ROUTER_DEFAULT_ASYNC_WORKERS,
    .handler_timeout = RRE_ROUTER_DEFAULT_HANDLER_TIMEOUT,
    .watchdog_interval = 0,
    .clock = NULL,
    .clock_data = NULL,
    .source = "",
    .hostname = "",
};

rre_status rre_router_options_create(rre_router_options **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_options_create: out is NULL");
    *out = malloc(sizeof **out);
    if (*out == NULL)
        return rre__error(RRE_ENOMEM, "rre_router_options_create: out of memory");
    **out = default_options;
    return RRE_OK;
}

void rre_router_options_destroy(rre_router_options *opts)
{
    free(opts);
}

#define CHECK_OPTS(opts)                                                                           \
    do {                                                                                           \
        if ((opts) == NULL)                                                                        \
            return rre__error(RRE_EINVAL, "%s: options are NULL", __func__);                       \
    } while (0)

rre_status rre_router_options_set_validation(rre_router_options *opts, rre_validation_mode mode)
{
    CHECK_OPTS(opts);
    if (mode != RRE_VALIDATE_OFF && mode != RRE_VALIDATE_WARN && mode != RRE_VALIDATE_STRICT)
        return rre__error(RRE_EINVAL, "unknown validation mode %d", (int)mode);
    opts->validation = mode;
    return RRE_OK;
}

rre_status rre_router_options_set_dedup(rre_router_options *opts, bool enabled)
{
    CHECK_OPTS(opts);
    opts->dedup = enabled;
    return RRE_OK;
}

rre_status rre_router_options_set_dedup_window(rre_router_options *opts, double seconds)
{
    CHECK_OPTS(opts);
    if (!(seconds > 0) || !isfinite(seconds) || seconds > 1e9)
        return rre__error(RRE_EINVAL, "dedup window must be a positive number of seconds");
    opts->dedup_window = seconds;
    return RRE_OK;
}

rre_status rre_router_options_set_dedup_max_entries(rre_router_options *opts, size_t entries)
{
    CHECK_OPTS(opts);
    if (entries < 1 || entries > RRE_ROUTER_MAX_DEDUP_ENTRIES)
        return rre__error(RRE_EINVAL, "dedup max entries must be 1..%d",
                          RRE_ROUTER_MAX_DEDUP_ENTRIES);
    opts->dedup_max_entries = entries;
    return RRE_OK;
}

rre_status rre_router_options_set_history_size(rre_router_options *opts, size_t events)
{
    CHECK_OPTS(opts);
    if (events > RRE_ROUTER_MAX_HISTORY_SIZE)
        return rre__error(RRE_EINVAL, "history size must be at most %d",
                          RRE_ROUTER_MAX_HISTORY_SIZE);
    opts->history_size = events;
    return RRE_OK;
}

rre_status rre_router_options_set_async_workers(rre_router_options *opts, size_t workers)
{
    CHECK_OPTS(opts);
    if (workers < 1 || workers > RRE_ROUTER_MAX_ASYNC_WORKERS)
        return rre__error(RRE_EINVAL, "async workers must be 1..%d", RRE_ROUTER_MAX_ASYNC_WORKERS);
    opts->async_workers = workers;
    return RRE_OK;
}

rre_status rre_router_options_set_handler_timeout(rre_router_options *opts, double seconds)
{
    CHECK_OPTS(opts);
    if (!(seconds >= 0) || !isfinite(seconds) || seconds > 1e9)
        return rre__error(RRE_EINVAL, "handler timeout must be 0 or a positive number of seconds");
    opts->handler_timeout = seconds;
    return RRE_OK;
}

rre_status rre_router_options_set_watchdog_interval(rre_router_options *opts, double seconds)
{
    CHECK_OPTS(opts);
    if (!(seconds >= 0) || !isfinite(seconds) || seconds > 3600)
        return rre__error(RRE_EINVAL, "watchdog interval must be 0..3600 seconds");
    opts->watchdog_interval = seconds;
    return RRE_OK;
}

rre_status rre_router_options_set_clock(rre_router_options *opts, rre_clock_fn fn, void *user_data)
{
    CHECK_OPTS(opts);
    opts->clock = fn;
    opts->clock_data = fn != NULL ? user_data : NULL;
    return RRE_OK;
}

rre_status rre_router_options_set_source(rre_router_options *opts, const char *source)
{
    CHECK_OPTS(opts);
    if (source == NULL)
        source = "";
    if (strlen(source) >= sizeof opts->source)
        return rre__error(RRE_EINVAL, "source longer than %d bytes", RRE_ROUTER_NAME_MAX - 1);
    if (!rre__utf8_valid(source, strlen(source)))
        return rre__error(RRE_EINVAL, "the source is not valid UTF-8");
    strcpy(opts->source, source);
    return RRE_OK;
}

rre_status rre_router_options_set_hostname(rre_router_options *opts, const char *hostname)
{
    CHECK_OPTS(opts);
    if (hostname == NULL)
        hostname = "";
    if (strlen(hostname) > RRE_HOSTNAME_MAX)
        return rre__error(RRE_EINVAL, "the host name is longer than %d bytes", RRE_HOSTNAME_MAX);
    if (!rre__utf8_valid(hostname, strlen(hostname)))
        return rre__error(RRE_EINVAL, "the host name is not valid UTF-8");
    strcpy(opts->hostname, hostname);
    return RRE_OK;
}

/* ---- subscription sets ------------------------------------------------------------ */

void rre__sub_ref(struct rre__sub *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void rre__sub_unref(struct rre__sub *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        /* Nothing can be queued any more: unsubscribe or close drained it. */
        free(s->mbox);
        free(s);
    }
}

static void subset_free(struct rre__subset *set)
{
    for (size_t i = 0; i < set->count; i++)
        rre__sub_unref(set->subs[i]);
    for (size_t i = 0; i < set->sink_count; i++)
        rre__sub_unref(set->sinks[i]);
    free(set->subs);
    free(set->sinks);
    free(set->by_type);
    free(set->flat);
    free(set);
}

void rre__subset_unref(struct rre__subset *set)
{
    if (set != NULL && atomic_fetch_sub(&set->refs, 1) == 1)
        subset_free(set);
}

static bool sub_matches(const struct rre__sub *s, rre_event_type t)
{
    switch (s->kind) {
    case SUB_TYPE:
        return s->type == t;
    case SUB_CATEGORY: {
        const rre_event_info *info = rre_event_get(t);
        return info != NULL && info->category == s->category;
    }
    case SUB_ALL:
        return true;
    case SUB_SINK:
        return false;
    }
    return false;
}

/* A new set holding `subs` and `sinks` (each gets a reference), or NULL. */
static struct rre__subset *subset_build(struct rre__sub *const *subs, size_t n,
                                        struct rre__sub *const *sinks, size_t ns)
{
    struct rre__subset *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    atomic_init(&set->refs, 1);
    set->subs = n > 0 ? malloc(n * sizeof *set->subs) : NULL;
    set->sinks = ns > 0 ? malloc(ns * sizeof *set->sinks) : NULL;
    set->by_type = calloc(RRE_EVENT_TYPE_COUNT, sizeof *set->by_type);
    size_t flat = 0;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++)
        for (size_t i = 0; i < n; i++)
            flat += sub_matches(subs[i], (rre_event_type)t);
    set->flat = flat > 0 ? malloc(flat * sizeof *set->flat) : NULL;
    if ((n > 0 && set->subs == NULL) || (ns > 0 && set->sinks == NULL) || set->by_type == NULL ||
        (flat > 0 && set->flat == NULL)) {
        free(set->subs);
        free(set->sinks);
        free(set->by_type);
        free(set->flat);
        free(set);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        set->subs[i] = subs[i];
        rre__sub_ref(subs[i]);
    }
    for (size_t i = 0; i < ns; i++) {
        set->sinks[i] = sinks[i];
        set->sink_origins |= sinks[i]->origins;
        rre__sub_ref(sinks[i]);
    }
    set->count = n;
    set->sink_count = ns;
    uint32_t k = 0;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        set->by_type[t][0] = k;
        for (size_t i = 0; i < n; i++)
            if (sub_matches(subs[i], (rre_event_type)t))
                set->flat[k++] = subs[i];
        set->by_type[t][1] = k - set->by_type[t][0];
    }
    return set;
}

/* ---- life cycle ---------------------------------------------------------------------- */

rre_status rre_router_create(rre_router **out, const rre_router_options *opts)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_create: out is NULL");
    *out = NULL;
    if (opts == NULL)
        opts = &default_options;
    /* Aligned, so that each stripe and dedup shard has cache lines of its own. */
    size_t size = (sizeof(rre_router) + 63) & ~(size_t)63;
    rre_router *r = aligned_alloc(64, size);
    if (r == NULL)
        return rre__error(RRE_ENOMEM, "rre_router_create: out of memory");
    memset(r, 0, size);
    r->validation = opts->validation;
    r->dedup_enabled = opts->dedup;
    r->handler_timeout = (int64_t)(opts->handler_timeout * 1e6);
    double interval = opts->watchdog_interval;
    if (interval <= 0) {
        interval = opts->handler_timeout / 10;
        interval = interval < 0.001 ? 0.001 : interval > 1.0 ? 1.0 : interval;
    }
    r->watchdog_interval = (int64_t)(interval * 1e9);
    r->clock = opts->clock != NULL ? opts->clock : rre__clock_realtime;
    r->clock_data = opts->clock_data;
    snprintf(r->source, sizeof r->source, "%s",
             opts->source[0] != '\0' ? opts->source : rre__program_name());
    if (opts->hostname[0] != '\0')
        snprintf(r->hostname, sizeof r->hostname, "%s", opts->hostname);
    else if (gethostname(r->hostname, sizeof r->hostname) != 0)
        r->hostname[0] = '\0';
    r->hostname[sizeof r->hostname - 1] = '\0';

    size_t entries = opts->dedup_max_entries;
    r->dedup_shards =
        entries >= (size_t)RRE__DEDUP_SHARDS * RRE__DEDUP_SHARD_MIN_ENTRIES ? RRE__DEDUP_SHARDS : 1;
    for (unsigned i = 0; i < r->dedup_shards; i++) {
        size_t mine = entries / r->dedup_shards + (i < entries % r->dedup_shards ? 1 : 0);
        rre__dedup_init(&r->dedup[i].d, mine, (int64_t)(opts->dedup_window * 1e6));
        rre__mutex_init(&r->dedup[i].mu);
    }
    rre__history_init(&r->history, opts->history_size);
    rre__mutex_init(&r->history_mu);
    for (unsigned i = 0; i < RRE__STRIPES; i++)
        rre__mutex_init(&r->stripes[i].watch_mu);
    if (pthread_rwlock_init(&r->subs_lock, NULL) != 0)
        rre__panic("router: pthread_rwlock_init failed");
    r->subs = subset_build(NULL, 0, NULL, 0);
    if (r->subs == NULL) {
        free(r);
        return rre__error(RRE_ENOMEM, "rre_router_create: out of memory");
    }
    atomic_init(&r->closed, false);
    atomic_init(&r->coarse_now, r->clock(r->clock_data));
    atomic_init(&r->failures, 0);
    atomic_init(&r->timeouts, 0);
    atomic_init(&r->sink_failures, 0);
    rre__mutex_init(&r->mu);
    if (pthread_rwlock_init(&r->hook_lock, NULL) != 0)
        rre__panic("router: pthread_rwlock_init failed");
    rre__mutex_init(&r->unsub_mu);
    rre__cond_init(&r->unsub_cv);
    rre__mutex_init(&r->watch_mu);
    rre__cond_init(&r->watch_cv);
    rre__pool_init(&r->pool, opts->async_workers);
    *out = r;
    return RRE_OK;
}

rre_status rre_router_close(rre_router *r)
{
    if (r == NULL)
        return RRE_OK;
    bool worker;
    if (rre__inside(r, &worker))
        return rre__error(RRE_EINVAL, "rre_router_close: called from a handler of this router");
    rre__lock(&r->mu);
    bool was_closed = atomic_load(&r->closed);
    atomic_store(&r->closed, true);
    rre__unlock(&r->mu);
    if (was_closed)
        return RRE_OK;
    rre__pool_close(r);
    rre__close_wait(r);
    rre__watchdog_stop(r);
    return RRE_OK;
}

rre_status rre_router_flush(rre_router *r, double timeout_seconds)
{
    if (r == NULL)
        return rre__error(RRE_EINVAL, "rre_router_flush: router is NULL");
    return rre__pool_flush(r, timeout_seconds);
}

void rre_router_destroy(rre_router *r)
{
    if (r == NULL)
        return;
    bool worker;
    if (rre__inside(r, &worker)) {
        /* Freeing the router under a running handler would pull the ground
         * from under it; leaking it is the lesser harm of a misuse. */
        rre__log(RRE_LOG_ERROR, "router", "rre_router_destroy called from a handler: ignored");
        return;
    }
    rre_router_close(r);
    /* Subscriptions still queued on the ready list hold references. */
    for (struct rre__sub *s = r->pool.ready_head, *next; s != NULL; s = next) {
        next = s->ready_next;
        s->scheduled = false;
        rre__sub_unref(s);
    }
    rre__subset_unref(r->subs);
    rre__history_free(&r->history);
    pthread_mutex_destroy(&r->history_mu);
    for (unsigned i = 0; i < r->dedup_shards; i++) {
        rre__dedup_free(&r->dedup[i].d);
        pthread_mutex_destroy(&r->dedup[i].mu);
    }
    for (unsigned i = 0; i < RRE__STRIPES; i++)
        pthread_mutex_destroy(&r->stripes[i].watch_mu);
    pthread_rwlock_destroy(&r->subs_lock);
    rre__pool_free(&r->pool);
    pthread_mutex_destroy(&r->mu);
    pthread_rwlock_destroy(&r->hook_lock);
    pthread_mutex_destroy(&r->unsub_mu);
    pthread_cond_destroy(&r->unsub_cv);
    pthread_mutex_destroy(&r->watch_mu);
    pthread_cond_destroy(&r->watch_cv);
    free(r);
}

/* ---- the publish pipeline ------------------------------------------------------------- */

static void fill_result(rre_publish_result *out, const rre_event *ev, bool duplicate)
{
    if (out == NULL)
        return;
    out->type = ev->type;
    out->duplicate = duplicate;
    memcpy(out->hash, ev->hash, RRE_HASH_SIZE);
    memcpy(out->timestamp, ev->timestamp, RRE_TIMESTAMP_MAX);
    memcpy(out->trace_id, ev->trace_id, RRE_TRACE_ID_MAX);
    out->event_id = ev->event_id;
    out->delivered = 0;
    out->failed = 0;
    out->sink_status = RRE_OK;
}

/* Replaces the subscriber set (mu held). */
static void set_subs(rre_router *r, struct rre__subset *set)
{
    if (pthread_rwlock_wrlock(&r->subs_lock) != 0)
        rre__panic("router: pthread_rwlock_wrlock failed");
    r->subs = set;
    pthread_rwlock_unlock(&r->subs_lock);
}

struct rre__subset *rre__subset_get(struct rre_router *r)
{
    if (pthread_rwlock_rdlock(&r->subs_lock) != 0)
        rre__panic("router: pthread_rwlock_rdlock failed");
    struct rre__subset *set = r->subs;
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&r->subs_lock);
    return set;
}

/* Adds an accepted event to the history; a text that left the ring is
 * freed after the lock is released. */
static rre_status record(rre_router *r, const rre_event *ev, const char *canon, size_t canon_len,
                         int64_t time, const struct rre__trace *trace)
{
    if (r->history.size == 0)
        return RRE_OK;
    char *evicted = NULL;
    rre__lock(&r->history_mu);
    rre_status st = rre__history_push(&r->history, ev, canon, canon_len, time, trace, &evicted);
    rre__unlock(&r->history_mu);
    free(evicted);
    return st;
}

/* Steps 6-9 for an event whose envelope is complete; canon[0..canon_len) is
 * the canonical JSON of its payload, for the history. */
static rre_status accept_event(rre_router *r, rre_event *ev, const char *canon, size_t canon_len,
                               int64_t time, const struct rre__trace *trace, int64_t now,
                               unsigned flags, bool violation, rre_publish_result *out)
{
    if (atomic_load(&r->closed))
        return rre__error(RRE_ECLOSED, "router is closed");
    struct rre__stripe *sp = &r->stripes[rre__stripe_index()];
    if (r->dedup_enabled && (flags & RRE_PUBLISH_NO_DEDUP) == 0) {
        struct rre__dedup_shard *sh =
            &r->dedup[r->dedup_shards > 1 ? ev->hash[RRE_HASH_SIZE - 1] % r->dedup_shards : 0];
        rre__lock(&sh->mu);
        bool seen = rre__dedup_check(&sh->d, ev->hash, now);
        rre__unlock(&sh->mu);
        if (seen) {
            atomic_fetch_add_explicit(&sp->duplicates, 1, memory_order_relaxed);
            fill_result(out, ev, true);
            return RRE_OK;
        }
    }
    atomic_fetch_add_explicit(ev->origin == RRE_ORIGIN_LOCAL ? &sp->published : &sp->injected, 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&sp->routed_by_type[ev->type], 1, memory_order_relaxed);
    if (violation) {
        atomic_fetch_add_explicit(&sp->violations, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&sp->violations_by_type[ev->type], 1, memory_order_relaxed);
    }
    struct rre__subset *set = rre__subset_get(r);
    /* Recorded before the sinks run only when no sink wants this origin. */
    bool sinks = (set->sink_origins & RRE_ORIGIN_BIT(ev->origin)) != 0 &&
                 (flags & RRE_PUBLISH_LOCAL_ONLY) == 0;
    rre_status hs = RRE_OK;
    if (!sinks)
        hs = record(r, ev, canon, canon_len, time, trace);

    fill_result(out, ev, false);
    rre_status result = RRE_OK;
    if (sinks) {
        rre_status ss = rre__run_sinks(r, set, ev);
        if (ss != RRE_OK) {
            result = ss;
            if (out != NULL)
                out->sink_status = ss;
        }
        if (out != NULL)
            out->event_id = ev->event_id;
        hs = record(r, ev, canon, canon_len, time, trace);
    }
    if (hs != RRE_OK)
        rre__log(RRE_LOG_WARN, "router", "%s not recorded in the history: out of memory",
                 rre_event_name(ev->type));

    if (flags & RRE_PUBLISH_ASYNC) {
        rre_status ds;
        size_t queued = rre__dispatch_async(r, set, ev, &ds);
        if (out != NULL)
            out->delivered = queued;
        if (ds != RRE_OK && result == RRE_OK)
            result = ds;
    } else {
        size_t failed;
        size_t calls = rre__dispatch_sync(r, set, ev, now, &failed);
        if (out != NULL) {
            out->delivered = calls;
            out->failed = failed;
        }
    }
    rre__subset_unref(set);
    if (result != RRE_OK && ev->origin == RRE_ORIGIN_LOCAL && result != RRE_ECLOSED)
        return rre__error(result, "%s: accepted, but a sink failed: %s", rre_event_name(ev->type),
                          rre_strerror(result));
    return result;
}

static const char *payload_string(const json_t *payload, const char *key)
{
    const json_t *v = json_object_get(payload, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The source of an event that was not given one: the payload's, else the
 * router's default. */
static const char *default_source(const rre_router *r, const json_t *payload)
{
    const char *source = payload_string(payload, "source");
    return source != NULL ? source : r->source;
}

/* The envelope time from a payload's "timestamp": an ISO 8601 string or a
 * number of Unix seconds. */
static bool payload_time(const json_t *payload, int64_t *us)
{
    const json_t *v = json_object_get(payload, "timestamp");
    if (json_is_string(v))
        return rre__timestamp_parse(json_string_value(v), us);
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (isfinite(s) && s > 0 && s < 253402300800.0) {
            *us = (int64_t)llround(s * 1e6);
            return true;
        }
    }
    return false;
}

/* The trace of a new event: given, else the payload's, else the handled
 * event's continued, else new. */
static rre_status make_trace(const char *given, const json_t *payload, struct rre__trace *trace)
{
    if (given != NULL) {
        if (!rre__trace_parse(given, trace))
            return rre__error(RRE_EINVAL, "trace_id '%.64s' is not a W3C traceparent", given);
        return RRE_OK;
    }
    const char *in_payload = payload != NULL ? payload_string(payload, "trace_id") : NULL;
    if (in_payload != NULL && rre__trace_parse(in_payload, trace))
        return RRE_OK;
    const rre_event *current = rre__current_event();
    struct rre__trace parent;
    if (current != NULL && rre__trace_parse(current->trace_id, &parent)) {
        rre__trace_child(&parent, trace);
        return RRE_OK;
    }
    rre__trace_new(trace);
    return RRE_OK;
}

static void log_problems(rre_event_type type, const rre_problems *pr, bool rejected)
{
    if (!rre__log_enabled(RRE_LOG_WARN))
        return;
    char line[160];
    for (size_t i = 0; i < pr->count; i++) {
        if (pr->items[i].kind == RRE_PROBLEM_UNKNOWN_FIELD)
            continue;
        rre_problem_format(&pr->items[i], line, sizeof line);
        rre__log(RRE_LOG_WARN, "router", "%s %s: %s", rre_event_name(type),
                 rejected ? "rejected" : "schema violation", line);
    }
}

static rre_status publish_hashed(rre_router *r, rre_event *ev, const char *canon, size_t canon_len,
                                 const rre_publish_options *opts, bool violation,
                                 rre_publish_result *out);

rre_status rre_router_publish_type(rre_router *r, rre_event_type type, json_t *payload,
                                   const rre_publish_options *opts, rre_publish_result *out)
{
    if (r == NULL)
        return rre__error(RRE_EINVAL, "rre_router_publish: router is NULL");
    const rre_event_info *info = rre_event_get(type);
    if (info == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type %d", (int)type);
    if (info->alias_of != RRE_EV_NONE)
        type = info->alias_of;
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "%s: payload is %s", rre_event_name(type),
                          payload == NULL ? "NULL" : "not a JSON object");
    if (atomic_load_explicit(&r->closed, memory_order_relaxed))
        return rre__error(RRE_ECLOSED, "router is closed");
    static const rre_publish_options no_opts = {0};
    if (opts == NULL)
        opts = &no_opts;

    /* 2, 3: normalise and validate. */
    rre_payload_normalize(payload);
    rre_problems local;
    rre_problems *pr = out != NULL ? &out->problems : &local;
    bool violation = false;
    if (r->validation != RRE_VALIDATE_OFF) {
        rre_status vs = rre_validate(type, payload, 0, pr);
        if (vs == RRE_EINVALID_PAYLOAD) {
            violation = true;
            if (r->validation == RRE_VALIDATE_STRICT) {
                struct rre__stripe *sp = &r->stripes[rre__stripe_index()];
                atomic_fetch_add_explicit(&sp->rejected, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&sp->violations, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&sp->violations_by_type[type], 1, memory_order_relaxed);
                log_problems(type, pr, true);
                char first[160] = "";
                if (pr->count > 0)
                    rre_problem_format(&pr->items[0], first, sizeof first);
                if (out != NULL)
                    out->type = type;
                return rre__error(RRE_EINVALID_PAYLOAD, "%s: %zu problem(s), first: %s",
                                  rre_event_name(type), pr->errors, first);
            }
            log_problems(type, pr, false);
        } else if (vs != RRE_OK) {
            return vs;
        }
    } else {
        pr->count = pr->errors = pr->notes = 0;
    }

    /* 4, 5: envelope and hash. */
    rre_event ev;
    ev.type = type;
    ev.payload = payload;
    ev.payload_text = NULL;
    ev.payload_len = 0;
    ev.event_id = 0;
    ev.origin = RRE_ORIGIN_LOCAL;
    /* The hash is computed over "NAME\n" and the canonical payload without
     * its envelope fields (source, trace_id, timestamp, created_at); that
     * text is the history's copy too, unless the payload has envelope
     * fields, which the history keeps. */
    char stack[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, stack, sizeof stack);
    rre_status st = rre__content_hash_with_buf(type, payload, &buf, ev.hash);
    size_t skip = strlen(rre_event_name(type)) + 1;
    if (st == RRE_OK && r->history.size > 0 && rre__has_envelope_field(payload)) {
        rre__buf_reset(&buf);
        st = rre__canonical_write(payload, &buf);
        skip = 0;
    }
    if (st != RRE_OK) {
        rre__buf_free(&buf);
        return st;
    }
    st = publish_hashed(r, &ev, buf.data + skip, buf.len - skip, opts, violation, out);
    rre__buf_free(&buf);
    return st;
}

/* Steps 4 (the envelope's time, trace and source) to 9 of a publish whose
 * content hash is computed. */
static rre_status publish_hashed(rre_router *r, rre_event *ev, const char *canon, size_t canon_len,
                                 const rre_publish_options *opts, bool violation,
                                 rre_publish_result *out)
{
    int64_t now = r->clock(r->clock_data);
    int64_t time = now;
    if (opts->timestamp != NULL) {
        if (!rre__timestamp_parse(opts->timestamp, &time))
            return rre__error(RRE_EINVAL, "timestamp '%.64s' is not ISO 8601", opts->timestamp);
    } else if (!payload_time(ev->payload, &time)) {
        time = now;
    }
    rre__timestamp_format(time, ev->timestamp);
    struct rre__trace trace;
    rre_status st = make_trace(opts->trace_id, ev->payload, &trace);
    if (st != RRE_OK)
        return st;
    rre__trace_format(&trace, ev->trace_id);
    if (opts->source != NULL && !rre__utf8_valid(opts->source, strlen(opts->source)))
        return rre__error(RRE_EINVAL, "the source is not valid UTF-8");
    ev->source = opts->source != NULL ? opts->source : default_source(r, ev->payload);
    ev->hostname = r->hostname;

    return accept_event(r, ev, canon, canon_len, time, &trace, now, opts->flags, violation, out);
}

rre_status rre_router_publish(rre_router *r, const char *type, json_t *payload,
                              const rre_publish_options *opts, rre_publish_result *out)
{
    rre_event_type t;
    rre_status st = rre_event_lookup(type, &t);
    if (st != RRE_OK)
        return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type '%.64s'",
                          type != NULL ? type : "(null)");
    return rre_router_publish_type(r, t, payload, opts, out);
}

rre_status rre_router_publish_text(rre_router *r, const char *type, const char *text, size_t len,
                                   const rre_publish_options *opts, rre_publish_result *out)
{
    if (out != NULL) {
        out->problems.count = out->problems.errors = out->problems.notes = 0;
        out->sink_status = RRE_OK;
        out->duplicate = false;
    }
    if (text == NULL)
        return rre__error(RRE_ENOT_OBJECT, "rre_router_publish_text: the text is NULL");
    json_t *payload = NULL;
    rre_status st = rre_payload_parse(text, len, &payload);
    if (st != RRE_OK)
        return st;
    st = rre_router_publish(r, type, payload, opts, out);
    rre_payload_release(payload);
    return st;
}

rre_status rre_router_inject(rre_router *r, const rre_event *in, const rre_publish_options *opts,
                             rre_publish_result *out)
{
    if (r == NULL || in == NULL)
        return rre__error(RRE_EINVAL, "rre_router_inject: router or event is NULL");
    if (in->origin != RRE_ORIGIN_PROCESS && in->origin != RRE_ORIGIN_HOST)
        return rre__error(RRE_EINVAL, "rre_router_inject: origin must be PROCESS or HOST");
    const rre_event_info *info = rre_event_get(in->type);
    if (info == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type %d", (int)in->type);
    if (!json_is_object(in->payload))
        return rre__error(RRE_ENOT_OBJECT, "rre_router_inject: payload is not a JSON object");
    if (atomic_load_explicit(&r->closed, memory_order_relaxed))
        return rre__error(RRE_ECLOSED, "router is closed");
    static const rre_publish_options no_opts = {0};
    if (opts == NULL)
        opts = &no_opts;
    if (out != NULL)
        out->problems.count = out->problems.errors = out->problems.notes = 0;

    rre_event ev = *in;
    ev.payload_text = NULL; /* the caller's; handlers get the parsed payload */
    ev.payload_len = 0;
    if (info->alias_of != RRE_EV_NONE)
        ev.type = info->alias_of;
    static const uint8_t zero[RRE_HASH_SIZE] = {0};
    if (memcmp(ev.hash, zero, RRE_HASH_SIZE) == 0) {
        rre_status st = rre_content_hash(ev.type, ev.payload, ev.hash);
        if (st != RRE_OK)
            return st;
    }
    int64_t now = r->clock(r->clock_data);
    int64_t time;
    if (!rre__timestamp_parse(in->timestamp, &time) && !payload_time(ev.payload, &time))
        time = now;
    rre__timestamp_format(time, ev.timestamp);
    struct rre__trace trace;
    if (!rre__trace_parse(in->trace_id, &trace))
        (void)make_trace(NULL, ev.payload, &trace); /* cannot fail without a given id */
    rre__trace_format(&trace, ev.trace_id);
    if (ev.source == NULL || ev.source[0] == '\0')
        ev.source = default_source(r, ev.payload);
    if (ev.hostname == NULL)
        ev.hostname = "";
    /* The history keeps the payload's canonical text. */
    char stack[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, stack, sizeof stack);
    rre_status st = RRE_OK;
    if (r->history.size > 0)
        st = rre__canonical_write(ev.payload, &buf);
    if (st == RRE_OK)
        st = accept_event(r, &ev, buf.data, buf.len, time, &trace, now, opts->flags, false, out);
    rre__buf_free(&buf);
    return st;
}

bool rre__router_set_failure_hook(struct rre_router *r, rre__failure_hook fn, void *data)
{
    if (pthread_rwlock_wrlock(&r->hook_lock) != 0)
        rre__panic("router: pthread_rwlock_wrlock failed");
    bool ok = fn == NULL || r->hook == NULL;
    if (ok) {
        r->hook = fn;
        r->hook_data = data;
    }
    pthread_rwlock_unlock(&r->hook_lock);
    return ok;
}

void rre__router_handler_failed(struct rre_router *r, const char *name, const rre_event *ev, int rc)
{
    /* The message the handler left, read before anything else runs on
     * this thread. */
    char error[256];
    snprintf(error, sizeof error, "%s", rre_last_error());
    if (pthread_rwlock_rdlock(&r->hook_lock) != 0)
        rre__panic("router: pthread_rwlock_rdlock failed");
    if (r->hook != NULL)
        r->hook(ev, name, rc, error, r->hook_data);
    pthread_rwlock_unlock(&r->hook_lock);
}

void rre__router_report(struct rre_router *r, const char *name, rre_event_type type, int rc,
                        double timeout_seconds)
{
    bool timeout = timeout_seconds >= 0;
    if (type == RRE_EV_HANDLER_FAILED || type == RRE_EV_HANDLER_TIMEOUT) {
        rre__log(RRE_LOG_WARN, "router", "handler '%s' %s on a %s report (not reported again)",
                 name, timeout ? "timed out" : "failed", rre_event_name(type));
        return;
    }
    if (!timeout)
        rre__log(RRE_LOG_WARN, "router", "handler '%s' failed on %s (returned %d)", name,
                 rre_event_name(type), rc);
    if (atomic_load_explicit(&r->closed, memory_order_relaxed))
        return;
    char ts[RRE_TIMESTAMP_MAX];
    rre__timestamp_format(r->clock(r->clock_data), ts);
    json_t *payload;
    if (timeout) {
        payload = json_pack("{s:s, s:s, s:f, s:s, s:s}", "handler_name", name, "event_type",
                            rre_event_name(type), "timeout_seconds", timeout_seconds, "coordinator",
                            r->source, "timestamp", ts);
    } else {
        char error[64];
        snprintf(error, sizeof error, "handler returned %d", rc);
        payload = json_pack("{s:s, s:s, s:s, s:s, s:s}", "handler_name", name, "event_type",
                            rre_event_name(type), "error", error, "coordinator", r->source,
                            "timestamp", ts);
    }
    if (payload == NULL) {
        rre__log(RRE_LOG_ERROR, "router", "cannot build a handler report: out of memory");
        return;
    }
    rre_publish_options po = {.flags = RRE_PUBLISH_ASYNC, .source = r->source};
    rre_status st = rre_router_publish_type(
        r, timeout ? RRE_EV_HANDLER_TIMEOUT : RRE_EV_HANDLER_FAILED, payload, &po, NULL);
    if (st != RRE_OK && st != RRE_ECLOSED)
        rre__log(RRE_LOG_ERROR, "router", "cannot publish a handler report: %s", rre_last_error());
    json_decref(payload);
}

/* ---- subscriptions and sinks ------------------------------------------------------------ */

/* The category of a type, or -1. */
static int category_of(rre_event_type type)
{
    const rre_event_info *info = rre_event_get(type);
    return info != NULL ? (int)info->category : -1;
}

/* Whether two handlers receive some of the same events. */
static bool overlap(const struct rre__sub *a, const struct rre__sub *b)
{
    if (a->kind == SUB_SINK || b->kind == SUB_SINK)
        return false;
    if (a->kind == SUB_ALL || b->kind == SUB_ALL)
        return true;
    if (a->kind == SUB_TYPE && b->kind == SUB_TYPE)
        return a->type == b->type;
    if (a->kind == SUB_CATEGORY && b->kind == SUB_CATEGORY)
        return a->category == b->category;
    const struct rre__sub *t = a->kind == SUB_TYPE ? a : b, *c = a->kind == SUB_TYPE ? b : a;
    return category_of(t->type) == (int)c->category;
}

/* A live handler of `set` named as `s` that shares events with it, or NULL. */
static const struct rre__sub *name_taken(const struct rre__subset *set, const struct rre__sub *s)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct rre__sub *o = set->subs[i];
        if (o != s && !atomic_load(&o->removed) && strcmp(o->name, s->name) == 0 && overlap(o, s))
            return o;
    }
    return NULL;
}

rre_status rre__router_unique_names(struct rre_router *r, bool on)
{
    rre__lock(&r->mu);
    if (on) {
        for (size_t i = 0; i < r->subs->count; i++) {
            const struct rre__sub *s = r->subs->subs[i];
            if (!atomic_load(&s->removed) && name_taken(r->subs, s) != NULL) {
                rre__unlock(&r->mu);
                return rre__error(RRE_EINVAL,
                                  "two handlers named '%s' receive some of the same events; "
                                  "handler retries find a handler by its name: give them "
                                  "distinct names",
                                  s->name);
            }
        }
    }
    r->unique_names = on;
    rre__unlock(&r->mu);
    return RRE_OK;
}

static rre_status add_sub(rre_router *r, struct rre__sub *s, rre_subscription_id *out)
{
    rre__lock(&r->mu);
    if (atomic_load(&r->closed)) {
        rre__unlock(&r->mu);
        free(s);
        return rre__error(RRE_ECLOSED, "router is closed");
    }
    if (r->unique_names && s->name[0] != '\0' && name_taken(r->subs, s) != NULL) {
        rre__unlock(&r->mu);
        rre_status st = rre__error(RRE_EINVAL,
                                   "another handler named '%s' receives some of the same events; "
                                   "with handler retries (a link with RRE_LINK_HANDLER_RETRIES) "
                                   "handlers that share events need distinct names",
                                   s->name);
        free(s);
        return st;
    }
    struct rre__subset *old = r->subs;
    struct rre__sub **subs = malloc((old->count + 1) * sizeof *subs);
    struct rre__sub **sinks = malloc((old->sink_count + 1) * sizeof *sinks);
    struct rre__subset *set = NULL;
    if (subs != NULL && sinks != NULL) {
        if (old->count > 0)
            memcpy(subs, old->subs, old->count * sizeof *subs);
        if (old->sink_count > 0)
            memcpy(sinks, old->sinks, old->sink_count * sizeof *sinks);
        s->id = ++r->next_id;
        if (s->name[0] == '\0')
            snprintf(s->name, sizeof s->name, "%s-%llu", s->kind == SUB_SINK ? "sink" : "handler",
                     (unsigned long long)s->id);
        if (s->kind == SUB_SINK)
            sinks[old->sink_count] = s;
        else
            subs[old->count] = s;
        set = subset_build(subs, old->count + (s->kind != SUB_SINK), sinks,
                           old->sink_count + (s->kind == SUB_SINK));
    }
    free(subs);
    free(sinks);
    if (set == NULL) {
        rre__unlock(&r->mu);
        free(s);
        return rre__error(RRE_ENOMEM, "subscribe: out of memory");
    }
    set_subs(r, set);
    rre_subscription_id id = s->id;
    bool is_sink = s->kind == SUB_SINK;
    rre__unlock(&r->mu);
    rre__sub_unref(s); /* the set holds it now */
    rre__subset_unref(old);
    if (out != NULL)
        *out = id;
    if (!is_sink) {
        rre_status st = rre__watchdog_start(r);
        if (st != RRE_OK)
            rre__log(RRE_LOG_ERROR, "router", "%s", rre_last_error());
    }
    return RRE_OK;
}

static rre_status new_sub(struct rre__sub **out, enum rre__sub_kind kind, const char *name)
{
    *out = NULL;
    if (name == NULL)
        name = "";
    if (strlen(name) >= RRE_ROUTER_NAME_MAX)
        return rre__error(RRE_EINVAL, "subscription name longer than %d bytes",
                          RRE_ROUTER_NAME_MAX - 1);
    struct rre__sub *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rre__error(RRE_ENOMEM, "subscribe: out of memory");
    atomic_init(&s->refs, 1);
    atomic_init(&s->removed, false);
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->calls, 0);
    atomic_init(&s->failures, 0);
    atomic_init(&s->timeouts, 0);
    atomic_init(&s->consecutive_failures, 0);
    s->kind = kind;
    s->type = RRE_EV_NONE;
    strcpy(s->name, name);
    *out = s;
    return RRE_OK;
}

static rre_status subscribe(rre_router *r, enum rre__sub_kind kind, rre_event_type type,
                            rre_category category, const char *name, rre_handler_fn fn,
                            void *user_data, rre_subscription_id *out)
{
    if (r == NULL || fn == NULL)
        return rre__error(RRE_EINVAL, "subscribe: router or handler is NULL");
    struct rre__sub *s;
    rre_status st = new_sub(&s, kind, name);
    if (st != RRE_OK)
        return st;
    s->type = type;
    s->category = category;
    s->fn = fn;
    s->user_data = user_data;
    return add_sub(r, s, out);
}

rre_status rre_router_subscribe(rre_router *r, rre_event_type type, const char *name,
                                rre_handler_fn fn, void *user_data, rre_subscription_id *out)
{
    const rre_event_info *info = rre_event_get(type);
    if (info == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type %d", (int)type);
    if (info->alias_of != RRE_EV_NONE)
        type = info->alias_of;
    return subscribe(r, SUB_TYPE, type, RRE_CAT_OTHER, name, fn, user_data, out);
}

rre_status rre_router_subscribe_category(rre_router *r, rre_category category, const char *name,
                                         rre_handler_fn fn, void *user_data,
                                         rre_subscription_id *out)
{
    if ((int)category < 0 || category >= RRE_CATEGORY_COUNT)
        return rre__error(RRE_ECATEGORY, "unknown category %d", (int)category);
    return subscribe(r, SUB_CATEGORY, RRE_EV_NONE, category, name, fn, user_data, out);
}

rre_status rre_router_subscribe_all(rre_router *r, const char *name, rre_handler_fn fn,
                                    void *user_data, rre_subscription_id *out)
{
    return subscribe(r, SUB_ALL, RRE_EV_NONE, RRE_CAT_OTHER, name, fn, user_data, out);
}

rre_status rre_router_subscribe_spelling(rre_router *r, const char *spelling, const char *name,
                                         rre_handler_fn fn, void *user_data,
                                         rre_subscription_id *out)
{
    if (spelling == NULL)
        return rre__error(RRE_EINVAL, "subscribe: spelling is NULL");
    if (strcmp(spelling, "*") == 0)
        return rre_router_subscribe_all(r, name, fn, user_data, out);
    rre_event_type t;
    if (rre_event_lookup(spelling, &t) == RRE_OK)
        return rre_router_subscribe(r, t, name, fn, user_data, out);
    rre_category c;
    if (rre_category_lookup(spelling, &c) == RRE_OK)
        return rre_router_subscribe_category(r, c, name, fn, user_data, out);
    return rre__error(RRE_EUNKNOWN_TYPE, "'%.64s' is neither an event type nor a category",
                      spelling);
}

static rre_status remove_sub(rre_router *r, rre_subscription_id id, bool sink)
{
    if (r == NULL)
        return rre__error(RRE_EINVAL, "unsubscribe: router is NULL");
    rre__lock(&r->mu);
    struct rre__subset *old = r->subs;
    struct rre__sub *const *list = sink ? old->sinks : old->subs;
    size_t n = sink ? old->sink_count : old->count;
    size_t at = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        if (list[i]->id == id)
            at = i;
    if (at == SIZE_MAX) {
        rre__unlock(&r->mu);
        return rre__error(RRE_ENOTFOUND, "no %s with id %llu", sink ? "sink" : "subscription",
                          (unsigned long long)id);
    }
    struct rre__sub *s = list[at];
    struct rre__sub **rest = malloc((n > 1 ? n - 1 : 1) * sizeof *rest);
    struct rre__subset *set = NULL;
    if (rest != NULL) {
        memcpy(rest, list, at * sizeof *rest);
        memcpy(rest + at, list + at + 1, (n - at - 1) * sizeof *rest);
        set = sink ? subset_build(old->subs, old->count, rest, n - 1)
                   : subset_build(rest, n - 1, old->sinks, old->sink_count);
        free(rest);
    }
    if (set == NULL) {
        rre__unlock(&r->mu);
        return rre__error(RRE_ENOMEM, "unsubscribe: out of memory");
    }
    set_subs(r, set);
    rre__sub_ref(s);
    atomic_store(&s->removed, true);
    rre__unlock(&r->mu);
    rre__subset_unref(old);
    rre__unsubscribe_wait(r, s);
    rre__sub_unref(s);
    return RRE_OK;
}

rre_status rre_router_unsubscribe(rre_router *r, rre_subscription_id id)
{
    return remove_sub(r, id, false);
}

rre_status rre_router_add_sink(rre_router *r, unsigned origins, rre_sink_fn fn, void *user_data,
                               rre_subscription_id *out)
{
    if (r == NULL || fn == NULL)
        return rre__error(RRE_EINVAL, "rre_router_add_sink: router or sink is NULL");
    if ((origins & ~RRE_ORIGIN_ALL) != 0 || origins == 0)
        return rre__error(RRE_EINVAL, "rre_router_add_sink: bad origin mask 0x%x", origins);
    struct rre__sub *s;
    rre_status st = new_sub(&s, SUB_SINK, NULL);
    if (st != RRE_OK)
        return st;
    s->origins = origins;
    s->sink_fn = fn;
    s->user_data = user_data;
    return add_sub(r, s, out);
}

rre_status rre_router_remove_sink(rre_router *r, rre_subscription_id id)
{
    return remove_sub(r, id, true);
}

/* ---- history ------------------------------------------------------------------------------ */

rre_status rre_router_history(rre_router *r, rre_event_type type, size_t max_count,
                              rre_event_list **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_history: out is NULL");
    *out = NULL;
    if (r == NULL)
        return rre__error(RRE_EINVAL, "rre_router_history: router is NULL");
    if (type != RRE_EV_NONE) {
        const rre_event_info *info = rre_event_get(type);
        if (info == NULL)
            return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type %d", (int)type);
        if (info->alias_of != RRE_EV_NONE)
            type = info->alias_of;
    }
    rre__lock(&r->history_mu);
    const struct rre__history *h = &r->history;
    /* Walk back from the newest to find the first entry to return. */
    size_t n = 0, bytes = 0, first = h->count;
    while (first > 0 && (max_count == 0 || n < max_count)) {
        const struct rre__history_entry *e = rre__history_at(h, first - 1);
        first--;
        if (type != RRE_EV_NONE && e->type != (int16_t)type)
            continue;
        n++;
        bytes += strlen(rre__pooled_str_get(e->source)) + strlen(rre__pooled_str_get(e->hostname)) +
                 e->text_len + 3;
    }
    rre_event_list *list = malloc(sizeof *list + n * sizeof(rre_event) + bytes);
    if (list == NULL) {
        rre__unlock(&r->history_mu);
        return rre__error(RRE_ENOMEM, "rre_router_history: out of memory");
    }
    list->count = n;
    list->events = (rre_event *)(list + 1);
    char *strings = (char *)(list->events + n);
    size_t k = 0;
    for (size_t i = first; i < h->count && k < n; i++) {
        const struct rre__history_entry *e = rre__history_at(h, i);
        if (type != RRE_EV_NONE && e->type != (int16_t)type)
            continue;
        rre_event *ev = &list->events[k++];
        ev->type = (rre_event_type)e->type;
        ev->payload = NULL;
        memcpy(strings, e->text, e->text_len + 1u);
        ev->payload_text = strings;
        ev->payload_len = e->text_len;
        strings += e->text_len + 1u;
        const char *src = rre__pooled_str_get(e->source);
        const char *host = rre__pooled_str_get(e->hostname);
        size_t ls = strlen(src) + 1, lh = strlen(host) + 1;
        memcpy(strings, src, ls);
        ev->source = strings;
        strings += ls;
        memcpy(strings, host, lh);
        ev->hostname = strings;
        strings += lh;
        rre__timestamp_format(e->time, ev->timestamp);
        rre__trace_format(&e->trace, ev->trace_id);
        memcpy(ev->hash, e->hash, RRE_HASH_SIZE);
        ev->event_id = e->event_id;
        ev->origin = (rre_origin)e->origin;
    }
    rre__unlock(&r->history_mu);
    /* The payloads are parsed from their texts after the lock is released.
     * The texts were written from jansson objects by the canonical writer,
     * so jansson reads each back (NUL characters in strings included, and
     * nesting as deep as the publisher made it: the payload parser's limits
     * are for text from outside, and a payload built in C never met them);
     * only memory can be short. */
    for (size_t i = 0; i < n; i++) {
        rre_event *ev = &list->events[i];
        json_error_t err;
        ev->payload = json_loadb(ev->payload_text, ev->payload_len, JSON_ALLOW_NUL, &err);
        if (ev->payload == NULL) {
            list->count = i;
            rre_event_list_free(list);
            return rre__error(RRE_ENOMEM, "rre_router_history: reading a kept payload back: %s",
                              err.text);
        }
    }
    *out = list;
    return RRE_OK;
}

void rre_event_list_free(rre_event_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        json_decref(list->events[i].payload);
    free(list);
}

/* ---- statistics ---------------------------------------------------------------------------- */

static _Atomic unsigned next_stripe;
static _Thread_local unsigned tl_stripe; /* 1 + the thread's stripe; 0: none yet */

unsigned rre__stripe_index(void)
{
    if (tl_stripe == 0)
        tl_stripe =
            1 + atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % RRE__STRIPES;
    return tl_stripe - 1;
}

void rre__router_totals(const struct rre_router *r, struct rre__totals *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned k = 0; k < RRE__STRIPES; k++) {
        const struct rre__stripe *sp = &r->stripes[k];
        t->published += atomic_load_explicit(&sp->published, memory_order_relaxed);
        t->injected += atomic_load_explicit(&sp->injected, memory_order_relaxed);
        t->duplicates += atomic_load_explicit(&sp->duplicates, memory_order_relaxed);
        t->rejected += atomic_load_explicit(&sp->rejected, memory_order_relaxed);
        t->violations += atomic_load_explicit(&sp->violations, memory_order_relaxed);
        t->delivered += atomic_load_explicit(&sp->delivered, memory_order_relaxed);
    }
}

rre_status rre_router_get_stats(rre_router *r, rre_router_stats *out)
{
    if (r == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_get_stats: router or out is NULL");
    uint64_t pending, cancelled;
    size_t workers;
    rre__pool_stats(r, &pending, &cancelled, &workers);
    struct rre__totals t;
    rre__router_totals(r, &t);
    out->events_published = t.published;
    out->events_injected = t.injected;
    out->duplicates_prevented = t.duplicates;
    out->events_rejected = t.rejected;
    out->schema_violations = t.violations;
    out->events_delivered = t.delivered;
    memset(out->routed_by_type, 0, sizeof out->routed_by_type);
    memset(out->schema_violations_by_type, 0, sizeof out->schema_violations_by_type);
    for (unsigned k = 0; k < RRE__STRIPES; k++) {
        const struct rre__stripe *sp = &r->stripes[k];
        for (int i = 0; i < RRE_EVENT_TYPE_COUNT; i++) {
            out->routed_by_type[i] +=
                atomic_load_explicit(&sp->routed_by_type[i], memory_order_relaxed);
            out->schema_violations_by_type[i] +=
                atomic_load_explicit(&sp->violations_by_type[i], memory_order_relaxed);
        }
    }
    rre__lock(&r->mu);
    out->subscribers = r->subs->count;
    out->sinks = r->subs->sink_count;
    rre__unlock(&r->mu);
    rre__lock(&r->history_mu);
    out->history_size = r->history.count;
    rre__unlock(&r->history_mu);
    out->dedup_entries = 0;
    for (unsigned i = 0; i < r->dedup_shards; i++) {
        rre__lock(&r->dedup[i].mu);
        out->dedup_entries += r->dedup[i].d.count;
        rre__unlock(&r->dedup[i].mu);
    }
    out->handler_failures = atomic_load(&r->failures);
    out->handler_timeouts = atomic_load(&r->timeouts);
    out->sink_failures = atomic_load(&r->sink_failures);
    out->async_pending = pending;
    out->async_cancelled = cancelled;
    out->workers = workers;
    return RRE_OK;
}

static json_t *by_type_json(const uint64_t *counts)
{
    json_t *obj = json_object();
    for (int t = 0; obj != NULL && t < RRE_EVENT_TYPE_COUNT; t++)
        if (counts[t] > 0 && json_object_set_new(obj, rre_event_name((rre_event_type)t),
                                                 json_integer((json_int_t)counts[t])) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    return obj;
}

rre_status rre_router_stats_json(rre_router *r, json_t **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_stats_json: out is NULL");
    *out = NULL;
    rre_router_stats *s = malloc(sizeof *s);
    if (s == NULL)
        return rre__error(RRE_ENOMEM, "rre_router_stats_json: out of memory");
    rre_status st = rre_router_get_stats(r, s);
    if (st != RRE_OK) {
        free(s);
        return st;
    }
    json_t *obj = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
        "s:o}",
        "events_published", (json_int_t)s->events_published, "events_injected",
        (json_int_t)s->events_injected, "events_delivered", (json_int_t)s->events_delivered,
        "duplicates_prevented", (json_int_t)s->duplicates_prevented, "events_rejected",
        (json_int_t)s->events_rejected, "schema_violations", (json_int_t)s->schema_violations,
        "handler_failures", (json_int_t)s->handler_failures, "handler_timeouts",
        (json_int_t)s->handler_timeouts, "sink_failures", (json_int_t)s->sink_failures,
        "async_pending", (json_int_t)s->async_pending, "async_cancelled",
        (json_int_t)s->async_cancelled, "subscribers", (json_int_t)s->subscribers, "sinks",
        (json_int_t)s->sinks, "history_size", (json_int_t)s->history_size, "dedup_entries",
        (json_int_t)s->dedup_entries, "workers", (json_int_t)s->workers, "routed_by_type",
        by_type_json(s->routed_by_type), "schema_violations_by_type",
        by_type_json(s->schema_violations_by_type));
    free(s);
    if (obj == NULL)
        return rre__error(RRE_ENOMEM, "rre_router_stats_json: out of memory");
    *out = obj;
    return RRE_OK;
}

/* ---- flow validation ------------------------------------------------------------------------ */

struct issues {
    rre_router_issue *items;
    size_t count, cap;
    bool oom;
};

static void RRE__PRINTF(3, 4)
    add_issue(struct issues *is, rre_router_issue_kind kind, const char *fmt, ...)
{
    if (is->count == is->cap) {
        size_t cap = is->cap == 0 ? 8 : is->cap * 2;
        rre_router_issue *items = realloc(is->items, cap * sizeof *items);
        if (items == NULL) {
            is->oom = true;
            return;
        }
        is->items = items;
        is->cap = cap;
    }
    rre_router_issue *it = &is->items[is->count++];
    it->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
}

#define LIFECYCLE_ISSUES_MAX 32

/* Lifecycle violations in the history (oldest first), through the flow
 * checker. `partial` (the history has dropped events) accepts a run seen
 * first in the middle, since its first step may be among the dropped ones.
 * Stalls are not checked: a run still going is not an issue of the router. */
static void lifecycle_scan(const rre_event_list *list, bool partial, struct issues *is)
{
    if (list->count == 0)
        return;
    const rre_event **evs = malloc(list->count * sizeof *evs);
    if (evs == NULL) {
        is->oom = true;
        return;
    }
    for (size_t i = 0; i < list->count; i++)
        evs[i] = &list->events[i];
    rre_flow_options fo = {.stall_after = -1,
                           .max_issues = LIFECYCLE_ISSUES_MAX,
                           .flags = partial ? RRE_FLOW_PARTIAL_HISTORY : 0};
    rre_flow_checker *c = NULL;
    rre_status st = rre__flow_check_events(evs, list->count, &fo, 0, &c);
    free(evs);
    if (st != RRE_OK) {
        if (st == RRE_ENOMEM)
            is->oom = true;
        else
            rre__log(RRE_LOG_WARN, "router", "lifecycle check failed: %s", rre_last_error());
        rre_flow_checker_destroy(c);
        return;
    }
    for (size_t i = 0; i < rre_flow_issue_count(c); i++) {
        const rre_flow_issue *fi = rre_flow_issue_get(c, i);
        /* The pipeline chain is left out: one process usually sees only part
         * of the pipeline, so its local view would often look out of order. */
        if (fi->kind != RRE_FLOW_VIOLATION || fi->rule == RRE_FLOW_RULE_PIPELINE_ORDER)
            continue;
        add_issue(is, RRE_ROUTER_ISSUE_LIFECYCLE, "%s lifecycle: %s (%s=%s)", fi->flow, fi->message,
                  fi->key_field, fi->key);
    }
    rre_flow_stats fs;
    rre_flow_get_stats(c, &fs);
    if (fs.issues_dropped > 0)
        add_issue(is, RRE_ROUTER_ISSUE_LIFECYCLE, "%llu more flow violations",
                  (unsigned long long)fs.issues_dropped);
    rre_flow_checker_destroy(c);
}

rre_status rre_router_validate_flow(rre_router *r, rre_router_health *out)
{
    if (r == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_validate_flow: router or out is NULL");
    memset(out, 0, sizeof *out);
    struct issues is = {0};

    /* Duplicate rate, handlers and history, each from one snapshot. */
    struct rre__totals t;
    rre__router_totals(r, &t);
    uint64_t dups = t.duplicates, accepted = t.published + t.injected;
    struct rre__subset *set = rre__subset_get(r);
    rre__lock(&r->history_mu);
    bool partial = r->history.dropped > 0;
    rre__unlock(&r->history_mu);

    uint64_t attempts = dups + accepted;
    if (dups > RRE_ROUTER_LOOP_DUPLICATES ||
        (attempts >= RRE_ROUTER_LOOP_MIN_EVENTS && dups * 2 > attempts))
        add_issue(&is, RRE_ROUTER_ISSUE_DUPLICATE_RATE,
                  "%llu of %llu publishes were duplicates: a handler may be re-publishing what "
                  "it receives (an amplification loop)",
                  (unsigned long long)dups, (unsigned long long)attempts);

    for (size_t i = 0; i < set->count; i++) {
        struct rre__sub *s = set->subs[i];
        uint64_t calls = atomic_load(&s->calls);
        uint64_t cf = atomic_load(&s->consecutive_failures);
        if (cf > 0 && (cf >= RRE_ROUTER_FAILING_CALLS || cf == calls))
            add_issue(&is, RRE_ROUTER_ISSUE_HANDLER_FAILING,
                      "handler '%s' is failing: its last %llu call(s) failed (%llu failures in "
                      "%llu calls)",
                      s->name, (unsigned long long)cf,
                      (unsigned long long)atomic_load(&s->failures), (unsigned long long)calls);
    }
    rre__subset_unref(set);

    enum { STUCK_MAX = 16 };
    char names[STUCK_MAX][RRE_ROUTER_NAME_MAX];
    double seconds[STUCK_MAX];
    rre_event_type types[STUCK_MAX];
    size_t stuck = rre__stuck_handlers(r, names, seconds, types, STUCK_MAX);
    for (size_t i = 0; i < stuck; i++)
        add_issue(&is, RRE_ROUTER_ISSUE_HANDLER_STUCK,
                  "handler '%s' has been running on %s for %.1f s (timeout %.1f s)", names[i],
                  rre_event_name(types[i]), seconds[i], (double)r->handler_timeout / 1e6);

    rre_event_list *list = NULL;
    if (rre_router_history(r, RRE_EV_NONE, 0, &list) == RRE_OK) {
        lifecycle_scan(list, partial, &is);
        rre_event_list_free(list);
    } else {
        is.oom = true;
    }

    if (is.oom) {
        free(is.items);
        return rre__error(RRE_ENOMEM, "rre_router_validate_flow: out of memory");
    }
    out->healthy = is.count == 0;
    out->issue_count = is.count;
    out->issues = is.items;
    return RRE_OK;
}

void rre_router_health_free(rre_router_health *health)
{
    if (health == NULL)
        return;
    free(health->issues);
    health->issues = NULL;
    health->issue_count = 0;
}

const char *rre_router_issue_kind_name(rre_router_issue_kind kind)
{
    switch (kind) {
    case RRE_ROUTER_ISSUE_DUPLICATE_RATE:
        return "duplicate_rate";
    case RRE_ROUTER_ISSUE_HANDLER_FAILING:
        return "handler_failing";
    case RRE_ROUTER_ISSUE_HANDLER_STUCK:
        return "handler_stuck";
    case RRE_ROUTER_ISSUE_LIFECYCLE:
        return "lifecycle";
    }
    return "unknown";
}

rre_status rre_router_validate_flow_json(rre_router *r, json_t **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_router_validate_flow_json: out is NULL");
    *out = NULL;
    rre_router_health h;
    rre_status st = rre_router_validate_flow(r, &h);
    if (st != RRE_OK)
        return st;
    json_t *issues = json_array();
    for (size_t i = 0; issues != NULL && i < h.issue_count; i++) {
        if (json_array_append_new(issues, json_pack("{s:s, s:s}", "kind",
                                                    rre_router_issue_kind_name(h.issues[i].kind),
                                                    "message", h.issues[i].message)) != 0) {
            json_decref(issues);
            issues = NULL;
        }
    }
    json_t *obj =
        issues != NULL ? json_pack("{s:b, s:o}", "healthy", h.healthy, "issues", issues) : NULL;
    rre_router_health_free(&h);
    if (obj == NULL)
        return rre__error(RRE_ENOMEM, "rre_router_validate_flow_json: out of memory");
    *out = obj;
    return RRE_OK;
}
