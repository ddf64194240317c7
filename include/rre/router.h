/**
 * @file
 * router.h - part of the public interface; included by <rre/rre.h>, never alone.
 *
 * The router is the single entry point of the event system inside a process.
 * A publish goes through these steps, in order:
 *
 *   1. resolve the type (any spelling, stage-event names included);
 *   2. rename the catalog's field aliases in the payload (rre_payload_normalize);
 *   3. validate by the router's mode: off, warn (the default: problems are
 *      counted per type, logged, and the event goes on) or strict (the
 *      publish fails with RRE_EINVALID_PAYLOAD and the list of problems);
 *   4. fill the envelope: source, hostname, timestamp, trace_id;
 *   5. compute the content hash (rre_content_hash);
 *   6. apply the dedup window: a duplicate is counted, not delivered and
 *      not stored, and the publish still returns RRE_OK with
 *      rre_publish_result.duplicate set;
 *   7. hand the event to the sinks (the durable queue, the bridge);
 *   8. record it in the bounded history and the statistics;
 *   9. dispatch it to the subscribers, synchronously on the caller's thread
 *      or asynchronously on the router's worker threads.
 *
 * OWNERSHIP. A publish borrows the payload: the router takes its own
 * references (json_incref) for what it keeps (history, queued asynchronous
 * deliveries) and never copies it. Because of that sharing, a payload must
 * not be modified by anyone once it has been published; build a new object
 * (or json_deep_copy) for the next event. Step 2 may rename alias fields of
 * the payload in place, before it is shared. Everything a handler or sink
 * receives is borrowed until it returns.
 *
 * THREADS. Every function here may be called from any thread at any time,
 * including from inside a handler (a handler may publish, subscribe and
 * unsubscribe), except rre_router_destroy(), which must not be called from a
 * handler or sink of the router it destroys. The router never calls a
 * handler, a sink, the clock or the logger with one of its locks held.
 *
 * ERRORS. Functions return an rre_status; the detail message of a failure is
 * available from rre_last_error() on the calling thread.
 *
 * TIME. All times come from the router's clock (rre_router_options_set_clock;
 * by default CLOCK_REALTIME), in microseconds since the Unix epoch: envelope
 * timestamps, the dedup window and handler timeouts. Tests inject a clock so
 * that they never sleep. The watchdog thread wakes at a real-time interval to
 * look at that clock.
 *
 * DECISIONS where the catalog is silent:
 *  - A duplicate is not an error: the publish returns RRE_OK and the result
 *    says duplicate.
 *  - The dedup window starts when an event is first accepted; duplicates
 *    inside the window do not extend it. After the window, the same content
 *    is accepted (and delivered) again and opens a new window. When the
 *    table holds dedup_max_entries hashes, the oldest one is forgotten first.
 *  - Envelope fields given in the payload (a string "source", "timestamp"
 *    or "trace_id" at the top level) are used for the envelope when the
 *    publish options do not give them; the payload itself is not changed. A
 *    timestamp that cannot be read as ISO 8601 is ignored (the clock's time
 *    is used) when it comes from the payload and is an error (RRE_EINVAL)
 *    when it comes from the options. Envelope timestamps are always written
 *    "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, microseconds).
 *  - trace_id is a W3C traceparent "00-<32 hex trace id>-<16 hex parent
 *    id>-<2 hex flags>". A given one is kept as it is; a bare 32-hex trace
 *    id is completed with a new parent id and flags 01. When none is given
 *    and the publish happens inside a handler, the trace id of the event
 *    being handled is propagated with a new parent id (event chaining stays
 *    in one trace). Otherwise a new random one is made.
 *  - Failures are reported as HANDLER_FAILED events with payload
 *    {handler_name, event_type, error, coordinator, timestamp} and timeouts
 *    as HANDLER_TIMEOUT events with {handler_name, event_type,
 *    timeout_seconds, coordinator, timestamp}; both are published
 *    asynchronously through the router itself (so they are deduplicated like
 *    any event: the same handler failing the same way on the same type is
 *    reported once per window, while the statistics count every failure). A
 *    failure or timeout of a handler that was handling one of these two
 *    types is counted and logged but not reported again, so reports cannot
 *    loop. `coordinator` is the router's default source.
 *  - A handler timeout is reported once per call. A timed-out call on a
 *    worker thread keeps that thread; the router starts a replacement worker
 *    so the other subscribers are not held up, and the extra thread ends
 *    when the stuck call returns. Synchronous publish runs handlers one
 *    after another on the caller's thread, so there a stuck handler delays
 *    the handlers after it for that event (it is still reported); use
 *    asynchronous publish to isolate subscribers from each other.
 *  - Order: a subscriber's asynchronous deliveries form one FIFO, served by
 *    one worker at a time, so each subscriber sees the events of every
 *    producer thread in the order that thread published them (and all
 *    asynchronous events in one global order). Synchronous and asynchronous
 *    deliveries are not ordered relative to each other.
 *  - rre_router_close() cancels queued asynchronous deliveries that have not
 *    started (counted in rre_router_stats.async_cancelled) and waits for
 *    running handlers to return, on the workers and in synchronous
 *    publishes on other threads alike; call rre_router_flush() first to
 *    drain instead. A synchronous publish in progress when close begins
 *    finishes the handler call it is in and calls no further handler, so
 *    once close returns no handler of the router runs anywhere. Publishes
 *    after close fail with RRE_ECLOSED.
 */
#ifndef RRE_ROUTER_H
#define RRE_ROUTER_H

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* Defaults, the catalog's figures where they give one, and limits. */
#define RRE_ROUTER_DEFAULT_DEDUP_WINDOW 3600.0      /**< dedup window, in seconds */
#define RRE_ROUTER_DEFAULT_DEDUP_MAX_ENTRIES 100000 /**< most hashes in the dedup window */
#define RRE_ROUTER_DEFAULT_HISTORY_SIZE 1000        /**< events kept in the history */
#define RRE_ROUTER_DEFAULT_ASYNC_WORKERS 2          /**< worker threads for asynchronous dispatch */
#define RRE_ROUTER_DEFAULT_HANDLER_TIMEOUT 600.0    /**< handler timeout, in seconds */
#define RRE_ROUTER_MAX_ASYNC_WORKERS 256            /**< most worker threads allowed */
#define RRE_ROUTER_MAX_HISTORY_SIZE 10000000        /**< largest history size allowed */
#define RRE_ROUTER_MAX_DEDUP_ENTRIES 100000000      /**< most dedup entries allowed */
#define RRE_ROUTER_NAME_MAX 128 /**< longest source or subscription name, NUL included */

/** The router's clock: microseconds since the Unix epoch (UTC). Called from
 * any thread, with no router lock held; must be thread-safe. */
typedef int64_t (*rre_clock_fn)(void *user_data);

/** Options for rre_router_create(). An options object is not thread-safe;
 * the router copies what it needs, so the object may be destroyed (or reused)
 * as soon as rre_router_create() returns. */
typedef struct rre_router_options rre_router_options;

/** Makes an options object holding the defaults: validation WARN, dedup on,
 * window 3600 s, 100,000 dedup entries, history 1,000, 2 async workers,
 * handler timeout 600 s, the real-time clock, source "" (meaning: the
 * program's name, from the process), the watchdog interval derived from the
 * timeout (a tenth of it, between 1 ms and 1 s). */
RRE_API rre_status rre_router_options_create(rre_router_options **out);
/** Frees an options object; NULL does nothing. */
RRE_API void rre_router_options_destroy(rre_router_options *opts);

/** Validation of published payloads: RRE_VALIDATE_OFF, _WARN (the default:
 * problems are counted and logged, the event goes on) or _STRICT (an invalid
 * payload is refused with RRE_EINVALID_PAYLOAD). */
RRE_API rre_status rre_router_options_set_validation(rre_router_options *opts,
                                                     rre_validation_mode mode);
/** Turns the dedup window on or off for the whole router. */
RRE_API rre_status rre_router_options_set_dedup(rre_router_options *opts, bool enabled);
/** Window length in seconds (> 0). */
RRE_API rre_status rre_router_options_set_dedup_window(rre_router_options *opts, double seconds);
/** Most hashes remembered at once (1..RRE_ROUTER_MAX_DEDUP_ENTRIES). */
RRE_API rre_status rre_router_options_set_dedup_max_entries(rre_router_options *opts,
                                                            size_t entries);
/** Events kept in the history (0..RRE_ROUTER_MAX_HISTORY_SIZE; 0 keeps none). */
RRE_API rre_status rre_router_options_set_history_size(rre_router_options *opts, size_t events);
/** Worker threads for asynchronous dispatch (1..RRE_ROUTER_MAX_ASYNC_WORKERS).
 * Threads are started when the first asynchronous event is published. */
RRE_API rre_status rre_router_options_set_async_workers(rre_router_options *opts, size_t workers);
/** Seconds a handler call may run before it is reported as HANDLER_TIMEOUT;
 * 0 turns the watchdog off. The report comes within one watchdog interval
 * of the timeout (a call's start is read from the watchdog's last look at
 * the clock, except for the first handler of a dispatch). */
RRE_API rre_status rre_router_options_set_handler_timeout(rre_router_options *opts, double seconds);
/** Real-time interval at which the watchdog looks at the clock, in seconds
 * (> 0); 0 restores the default derived from the timeout. */
RRE_API rre_status rre_router_options_set_watchdog_interval(rre_router_options *opts,
                                                            double seconds);
/** The clock (NULL restores the real-time clock). */
RRE_API rre_status rre_router_options_set_clock(rre_router_options *opts, rre_clock_fn fn,
                                                void *user_data);
/** The default source of events published without one, and the
 * `coordinator` of the reports the router makes. Copied; at most
 * RRE_ROUTER_NAME_MAX - 1 bytes. NULL or "" means the program's name. */
RRE_API rre_status rre_router_options_set_source(rre_router_options *opts, const char *source);

/** The host name local events carry (ev->hostname): NULL or "" means the
 * system's. Give the name the router's queue writes (rre_queue_hostname())
 * when it was opened with another, so an event reads the same in process
 * and in the queue. At most RRE_HOSTNAME_MAX bytes of UTF-8, else
 * RRE_EINVAL. */
RRE_API rre_status rre_router_options_set_hostname(rre_router_options *opts, const char *hostname);

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

/** A router (opaque): the event system of one process, made by
 * rre_router_create(). */
typedef struct rre_router rre_router;

/** Makes a router. `opts` may be NULL (the defaults). No thread is started
 * until one is needed (the watchdog with the first subscription when a
 * timeout is set, workers with the first asynchronous publish). */
RRE_API rre_status rre_router_create(rre_router **out, const rre_router_options *opts);

/** Stops the router: later publishes, injections and subscriptions fail with
 * RRE_ECLOSED; queued asynchronous deliveries that have not started are
 * dropped (counted as cancelled); running handlers and sinks are waited
 * for on every thread (a synchronous publish in progress calls no further
 * handler); worker and watchdog threads are joined. History, statistics and
 * rre_router_validate_flow() stay available. Idempotent. Must not be called
 * from a handler or sink of this router (RRE_EINVAL). NULL does nothing. */
RRE_API rre_status rre_router_close(rre_router *r);

/** Waits until no asynchronous delivery is queued or running, or until
 * `timeout_seconds` of real time have passed (RRE_ETIMEOUT; a negative
 * value, infinity or more than 10^9 seconds waits without limit; NaN is
 * RRE_EINVAL). Handlers that keep publishing asynchronously can
 * keep the router busy; the timeout bounds the wait. Called from a worker
 * thread of this router it returns RRE_EINVAL rather than wait for itself. */
RRE_API rre_status rre_router_flush(rre_router *r, double timeout_seconds);

/** Closes the router if needed and frees it. Subscriptions and sinks go
 * with it. Must not be called while another thread still uses it. Called
 * from a handler or sink of this router it logs an error and does nothing.
 * NULL does nothing. */
RRE_API void rre_router_destroy(rre_router *r);

/* ------------------------------------------------------------------------ */
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/* Publish flags, for rre_publish_options.flags. */
#define RRE_PUBLISH_ASYNC 0x1u      /**< dispatch on the worker threads, return at once */
#define RRE_PUBLISH_NO_DEDUP 0x2u   /**< skip the dedup window for this event (still hashed) */
#define RRE_PUBLISH_LOCAL_ONLY 0x4u /**< stays in this process: no sink (queue, bridge) sees it */

/** Per-publish options. All-zero (or a NULL pointer) means: synchronous,
 * envelope fields from the payload or made by the router. The strings are
 * borrowed for the duration of the call. */
typedef struct rre_publish_options {
    unsigned flags;        /**< RRE_PUBLISH_* */
    const char *source;    /**< publishing component; NULL: payload's or router's default */
    const char *timestamp; /**< ISO 8601; NULL: payload's or now */
    const char *trace_id;  /**< W3C traceparent or a 32-hex trace id; NULL: see above */
} rre_publish_options;

/** What happened to a publish. Filled on RRE_OK and on
 * RRE_EINVALID_PAYLOAD (problems); otherwise its contents are unspecified. */
typedef struct rre_publish_result {
    rre_event_type type;               /**< the resolved canonical type */
    bool duplicate;                    /**< dropped by the dedup window */
    uint8_t hash[RRE_HASH_SIZE];       /**< content hash */
    char timestamp[RRE_TIMESTAMP_MAX]; /**< envelope timestamp */
    char trace_id[RRE_TRACE_ID_MAX];   /**< envelope traceparent */
    int64_t event_id;                  /**< set by a sink that persisted it, else 0 */
    size_t delivered;                  /**< sync: handlers called; async: subscribers queued */
    size_t failed;                     /**< sync: handlers that returned non-zero */
    rre_status sink_status;            /**< first failure of a sink, RRE_OK when none */
    rre_problems problems;             /**< validation (empty when validation is off) */
} rre_publish_result;

/** Publishes `payload` (a JSON object, borrowed; see OWNERSHIP) as an event of
 * the type spelled `type` (NAME, value, queue spelling or stage event, any
 * case). `opts` and `out` may be NULL. Errors: RRE_EUNKNOWN_TYPE,
 * RRE_ENOT_OBJECT (payload NULL or not an object), RRE_ELIMIT (nesting too
 * deep), RRE_EINVAL (a non-finite number, a bad option), RRE_EINVALID_PAYLOAD
 * (strict validation; the problems are in out->problems), RRE_ECLOSED,
 * RRE_ENOMEM. A duplicate returns RRE_OK with out->duplicate set. When a
 * sink fails, the event is still recorded and dispatched, the publish
 * returns the sink's status and out->sink_status says so. */
RRE_API rre_status rre_router_publish(rre_router *r, const char *type, json_t *payload,
                                      const rre_publish_options *opts, rre_publish_result *out);

/** The same with the type given directly (an alias type is resolved to the
 * type it maps to). */
RRE_API rre_status rre_router_publish_type(rre_router *r, rre_event_type type, json_t *payload,
                                           const rre_publish_options *opts,
                                           rre_publish_result *out);

/** The same with the payload given as JSON text (`len` bytes, need not be
 * NUL-terminated), parsed as rre_payload_parse() does (its errors: RRE_EJSON,
 * RRE_ENOT_OBJECT, RRE_ELIMIT); the parsed object is released when the
 * publish returns (handlers that keep it take their own reference). One call
 * where a binding would otherwise make three (parse, publish, release). */
RRE_API rre_status rre_router_publish_text(rre_router *r, const char *type, const char *text,
                                           size_t len, const rre_publish_options *opts,
                                           rre_publish_result *out);

/* ------------------------------------------------------------------------ */
/* Subscribing                                                               */
/* ------------------------------------------------------------------------ */

/** A handler. `ev` and everything it points to are borrowed until it
 * returns; the payload must not be modified (see rre_event_copy). Returns 0
 * on success, anything else is a failure (counted and reported as
 * HANDLER_FAILED; the other handlers run regardless). */
typedef int (*rre_handler_fn)(const rre_event *ev, void *user_data);

/** Identifies a subscription or a sink; never 0, never reused by a router. */
typedef uint64_t rre_subscription_id;

/** Subscribes `fn` to one type (an alias type is resolved); the functions
 * below subscribe it to every type of a category, or to every event. `name` (copied, at most
 * RRE_ROUTER_NAME_MAX - 1 bytes; NULL or "" makes "handler-<id>") appears
 * in reports and statistics. Handlers of an event run in the order they
 * subscribed. `out` may be NULL. Errors: RRE_EUNKNOWN_TYPE,
 * RRE_ECATEGORY, RRE_EINVAL (fn NULL, name too long), RRE_ECLOSED,
 * RRE_ENOMEM. A subscription made during a dispatch does not receive the
 * event being dispatched. */
RRE_API rre_status rre_router_subscribe(rre_router *r, rre_event_type type, const char *name,
                                        rre_handler_fn fn, void *user_data,
                                        rre_subscription_id *out);
/** Subscribes `fn` to every type of `category`, as rre_router_subscribe()
 * does to one type. */
RRE_API rre_status rre_router_subscribe_category(rre_router *r, rre_category category,
                                                 const char *name, rre_handler_fn fn,
                                                 void *user_data, rre_subscription_id *out);
/** Subscribes `fn` to every event, as rre_router_subscribe() does to one
 * type. */
RRE_API rre_status rre_router_subscribe_all(rre_router *r, const char *name, rre_handler_fn fn,
                                            void *user_data, rre_subscription_id *out);
/** By spelling: any spelling of a type, a category name, or "*" for all. */
RRE_API rre_status rre_router_subscribe_spelling(rre_router *r, const char *spelling,
                                                 const char *name, rre_handler_fn fn,
                                                 void *user_data, rre_subscription_id *out);

/** Removes a subscription. When it returns, the handler is not running on
 * any other thread and will never be called again; its queued asynchronous
 * deliveries are dropped. Called from inside the handler itself, it returns
 * at once and that current call simply finishes. Called from a handler for
 * another subscription, it waits for that subscription's calls on other
 * threads: two handlers that unsubscribe each other at the same time
 * deadlock, as would a wait for a handler that never returns.
 * RRE_ENOTFOUND when the id is unknown or already removed. */
RRE_API rre_status rre_router_unsubscribe(rre_router *r, rre_subscription_id id);

/* ------------------------------------------------------------------------ */
/* Sinks and injection: the seams for the durable queue and the bridge       */
/* ------------------------------------------------------------------------ */

/** Origin masks for sinks: the bit of one origin (an rre_origin). */
#define RRE_ORIGIN_BIT(origin) (1u << (unsigned)(origin))
/** The origin mask of every origin: LOCAL, PROCESS and HOST. */
#define RRE_ORIGIN_ALL 0x7u

/** A sink receives each accepted (non-duplicate) event whose origin is in its
 * mask, on the thread that published or injected it, before history and
 * dispatch. It may set ev->event_id (the durable id), which history and
 * handlers then see; it must not change anything else. A non-OK return is
 * passed to the publisher (rre_publish_result.sink_status) and the event is
 * still dispatched locally. A sink must never send an event back to where
 * it came from: the origin says where that is. */
typedef rre_status (*rre_sink_fn)(rre_event *ev, void *user_data);

/** Adds a sink for the events whose origin bit is in `origins`. Sinks run in
 * the order they were added. */
RRE_API rre_status rre_router_add_sink(rre_router *r, unsigned origins, rre_sink_fn fn,
                                       void *user_data, rre_subscription_id *out);
/** Removes a sink with the guarantees of rre_router_unsubscribe(). */
RRE_API rre_status rre_router_remove_sink(rre_router *r, rre_subscription_id id);

/** Injects an event that came from elsewhere (ev->origin PROCESS or HOST,
 * ev->event_id as stored there). It is deduplicated (by ev->hash, or the
 * computed hash when ev->hash is all zero), recorded and dispatched locally
 * like a publish (ASYNC in opts->flags dispatches on the workers), passed
 * to the sinks whose mask has its origin, and is neither normalised nor
 * validated: it was on the way in. Empty source, timestamp or trace_id are
 * filled in as for a publish. `ev` is borrowed (the payload is referenced,
 * not copied). ev->origin LOCAL is RRE_EINVAL. */
RRE_API rre_status rre_router_inject(rre_router *r, const rre_event *ev,
                                     const rre_publish_options *opts, rre_publish_result *out);

/* ------------------------------------------------------------------------ */
/* History                                                                   */
/* ------------------------------------------------------------------------ */

/** A list of events owned by the caller (payloads referenced, strings owned
 * by the list). Free with rre_event_list_free(). */
typedef struct rre_event_list {
    size_t count;      /**< number of events */
    rre_event *events; /**< oldest first, newest last */
} rre_event_list;

/** The last `max_count` events of the history (0: all it holds), of type
 * `type` only unless it is RRE_EV_NONE, newest last. The list is a snapshot.
 * The history keeps each payload as its canonical JSON text (compact, keys
 * sorted, a real with an integral value written as an integer, as in the
 * queue): each event's `payload_text` is that text and its `payload` an
 * object parsed from it, equal in content to the published one. */
RRE_API rre_status rre_router_history(rre_router *r, rre_event_type type, size_t max_count,
                                      rre_event_list **out);
/** Frees a list made by rre_router_history(); NULL does nothing. */
RRE_API void rre_event_list_free(rre_event_list *list);

/** Copies an envelope (to keep an event after its handler returned): the
 * payload is referenced (json_incref), the strings copied. Free the copy with
 * rre_event_free(). */
RRE_API rre_status rre_event_copy(const rre_event *ev, rre_event **out);
/** Frees a copy made by rre_event_copy(), dropping its payload reference;
 * NULL does nothing. */
RRE_API void rre_event_free(rre_event *ev);
/** The payload of an event as a new reference (*out, the caller decrefs it):
 * `ev->payload` when it is set, else the object parsed from
 * `ev->payload_text` (an event a subscriber with `lazy_payload` delivered),
 * with the limits and errors of rre_payload_parse(). Each call on a lazy
 * event parses again: keep the result if it is needed twice. RRE_EINVAL when
 * the event has neither. */
RRE_API rre_status rre_event_payload(const rre_event *ev, json_t **out);

/** The event as a JSON object: {type, payload, source, hostname, timestamp,
 * trace_id, hash, event_id, origin}. Caller owns the result. */
RRE_API rre_status rre_event_to_json_envelope(const rre_event *ev, json_t **out);

/* ------------------------------------------------------------------------ */
/* Statistics and flow validation                                            */
/* ------------------------------------------------------------------------ */

/** The router's statistics: counts since it was made, and sizes now. */
typedef struct rre_router_stats {
    uint64_t events_published;     /**< accepted local events (not duplicates, not rejected) */
    uint64_t events_injected;      /**< accepted events from other processes or hosts */
    uint64_t events_delivered;     /**< handler calls made */
    uint64_t duplicates_prevented; /**< dropped by the dedup window */
    uint64_t events_rejected;      /**< strict validation failures */
    uint64_t schema_violations;    /**< events with at least one validation error */
    uint64_t handler_failures;     /**< handler calls that returned non-zero */
    uint64_t handler_timeouts;     /**< handler calls that ran past the timeout */
    uint64_t sink_failures;        /**< sink calls that returned non-OK */
    uint64_t async_pending;        /**< asynchronous deliveries queued or running now */
    uint64_t async_cancelled;      /**< queued deliveries dropped by close or unsubscribe */
    size_t subscribers;            /**< live subscriptions */
    size_t sinks;                  /**< live sinks */
    size_t history_size;           /**< events in the history now */
    size_t dedup_entries;          /**< hashes in the dedup window now */
    size_t workers;                /**< worker threads running now */
    uint64_t routed_by_type[RRE_EVENT_TYPE_COUNT];            /**< accepted, per type */
    uint64_t schema_violations_by_type[RRE_EVENT_TYPE_COUNT]; /**< per type */
} rre_router_stats;

/** A consistent snapshot of the statistics. */
RRE_API rre_status rre_router_get_stats(rre_router *r, rre_router_stats *out);

/** The statistics as a JSON object with the field names above; the by-type
 * maps are objects keyed by canonical NAME holding only non-zero counts.
 * Caller owns the result. */
RRE_API rre_status rre_router_stats_json(rre_router *r, json_t **out);

/** What rre_router_validate_flow() can find. */
typedef enum rre_router_issue_kind {
    RRE_ROUTER_ISSUE_DUPLICATE_RATE = 0, /**< suggests an amplification loop */
    RRE_ROUTER_ISSUE_HANDLER_FAILING,    /**< a handler's latest calls failed */
    RRE_ROUTER_ISSUE_HANDLER_STUCK,      /**< a handler is running past its timeout */
    RRE_ROUTER_ISSUE_LIFECYCLE,          /**< a lifecycle violation in the history */
} rre_router_issue_kind;

/** Thresholds of the duplicate-rate rule: more than
 * RRE_ROUTER_LOOP_DUPLICATES duplicates in all (the catalog's figure), or at
 * least RRE_ROUTER_LOOP_MIN_EVENTS publishes of which more than half were
 * duplicates. */
#define RRE_ROUTER_LOOP_DUPLICATES 1000
#define RRE_ROUTER_LOOP_MIN_EVENTS 100 /**< see RRE_ROUTER_LOOP_DUPLICATES */
/** A handler is failing when its last RRE_ROUTER_FAILING_CALLS calls (or
 * all of them, if fewer) failed. */
#define RRE_ROUTER_FAILING_CALLS 3

/** The size of rre_router_issue.message, NUL included; a longer message is
 * cut. */
#define RRE_ROUTER_ISSUE_MAX 256

/** One issue found by rre_router_validate_flow(). */
typedef struct rre_router_issue {
    rre_router_issue_kind kind;         /**< what kind of issue */
    char message[RRE_ROUTER_ISSUE_MAX]; /**< one sentence */
} rre_router_issue;

/** The report of rre_router_validate_flow(). */
typedef struct rre_router_health {
    bool healthy;             /**< no issue */
    size_t issue_count;       /**< number of entries in `issues` */
    rre_router_issue *issues; /**< owned; free with rre_router_health_free() */
} rre_router_health;

/** Checks the router's state now: the duplicate rate, failing and stuck
 * handlers, and lifecycle violations in the history found by the flow
 * checker (<rre/flow.h>): a later step without the first step of its run
 * (TRAINING_COMPLETED without TRAINING_STARTED for the same job), steps out
 * of order, after the end, twice terminal or restarted. When the history has
 * already dropped events, a run seen first in the middle is accepted (its
 * first step may have been dropped). The pipeline chain and stalls are not
 * checked here, since one process usually sees only part of the pipeline;
 * use the flow checker on the durable queue for that. Works at any time,
 * also after close. */
RRE_API rre_status rre_router_validate_flow(rre_router *r, rre_router_health *out);
/** Frees the issues of a report filled by rre_router_validate_flow() (not the
 * struct itself); NULL does nothing. */
RRE_API void rre_router_health_free(rre_router_health *health);
/** The same as {"healthy": bool, "issues": [{"kind": "...", "message": "..."}]}. */
RRE_API rre_status rre_router_validate_flow_json(rre_router *r, json_t **out);
/** The name of an issue kind as in the JSON report ("unknown" out of range). */
RRE_API const char *rre_router_issue_kind_name(rre_router_issue_kind kind);

/* The typed emitters, one per documented event (generated). */
#include <rre/emitters.h>

#endif
