/**
 * @file
 * link.h - attaching a router to the durable queue. Part of the public
 * interface; included by <rre/rre.h>, never alone.
 *
 * A link makes a router and a queue one system:
 *
 *  - every event published on the router (origin LOCAL) is appended to the
 *    queue by a sink, before it is recorded and dispatched locally, and its
 *    durable event_id is set on the envelope; a publish with
 *    RRE_PUBLISH_LOCAL_ONLY stays in the process;
 *  - a reader thread follows the queue and injects the events other
 *    processes (C or Python) appended into the router, with origin PROCESS,
 *    so local subscribers receive them through the router's dedup;
 *  - the events appended through this queue handle (by the link, or by
 *    rre_queue_publish() on the same handle) are recognised by their
 *    event_id, recorded before their commit, and are not delivered a second
 *    time when the reader meets them; one link per queue handle;
 *  - content published in two processes within the dedup window is stored
 *    once (the queue's dedup) and delivered once to each process (the
 *    router's dedup drops the copy that comes back from the file).
 *
 * ORDER. Subscribe on the router before making the link: the reader starts
 * at once, and an event it injects before a subscription exists does not
 * reach that subscription (with a durable name, the cursor has passed it).
 *
 * THREADS. rre_link_create() starts one reader thread; handlers of events
 * from other processes run on it (synchronous dispatch) or on the router's
 * workers (RRE_LINK_ASYNC). Destroy the link before the router and the
 * queue. The functions may be called from any thread but not from a handler
 * of the linked router.
 */
#ifndef RRE_LINK_H
#define RRE_LINK_H

/** A link between a router and a queue (opaque), made by rre_link_create(). */
typedef struct rre_link rre_link;

/* Link flags, for rre_link_options.flags. */
#define RRE_LINK_ASYNC 0x1u           /**< dispatch events from the queue on the router's workers */
#define RRE_LINK_NO_READER 0x2u       /**< only append; do not read other processes' events */
#define RRE_LINK_SINCE_ID 0x4u        /**< a transient reader starts after since_id, not the end */
#define RRE_LINK_HANDLER_RETRIES 0x8u /**< retry failed handlers; dead letters (needs a name) */
#define RRE_LINK_PIPELINED 0x10u      /**< append with rre_queue_publish_async(): see PIPELINED */

/** Options of rre_link_create(); all zero (or a NULL pointer) means the
 * defaults. */
typedef struct rre_link_options {
    unsigned flags; /**< RRE_LINK_* */
    /** A durable subscriber name for the reader: it resumes after a restart
     * where it stopped (see rre_subscriber_options.name). NULL: a transient
     * reader that starts with the events appended after the link was made. */
    const char *subscriber_name;
    int64_t since_id;            /**< with a durable name or RRE_LINK_SINCE_ID: start after it */
    const rre_event_type *types; /**< read only these types (NULL: all) */
    size_t type_count;           /**< number of entries in `types` */
    /* With RRE_LINK_HANDLER_RETRIES, as in rre_subscriber_options: */
    int max_attempts;         /**< a handler's failures before the dead letters; 0 or less: 5 */
    double retry_delay_s;     /**< 0: 2 s, doubled per failure */
    double retry_delay_max_s; /**< 0: 300 s */
} rre_link_options;

/* PIPELINED. With RRE_LINK_PIPELINED the sink appends each local event with
 * rre_queue_publish_async(): a publish on the router returns once the event
 * is accepted, and the queue's writer commits events together, so one
 * thread publishing one event per call reaches batch rates. The envelope's
 * event_id then stays 0 (the id is known only at the commit), and an event
 * the router reported published is lost if the process dies before the
 * commit: call rre_link_flush() where that matters (before telling another
 * system the event exists, before exiting). Off by default for that reason.
 * rre_link_destroy() flushes. It cannot be combined with
 * RRE_LINK_HANDLER_RETRIES (RRE_EINVAL), which needs each local event's id
 * when it is dispatched. */

/* HANDLER RETRIES. With RRE_LINK_HANDLER_RETRIES (and a durable
 * subscriber_name, else RRE_EINVAL) the router's handlers get what durable
 * subscribers get (see rre_queue_handler in <rre/queue.h>): when a handler
 * returns non-zero on an event that is in the queue (every event published
 * through the link or read from it; not RRE_PUBLISH_LOCAL_ONLY ones, nor
 * HANDLER_FAILED and HANDLER_TIMEOUT reports), that handler, and only it,
 * is called with the event again after the retry delay, and after
 * max_attempts failures the event goes to the dead letters. RRE_ERETRY_LATER
 * and RRE_EREJECTED mean what they mean there. Each handler is its own
 * subscriber in the retries and dead letters, with the id
 * "<host>:stable:<subscriber_name>/<handler name>" (durable subscriber
 * names cannot contain '/', so the two never meet): give handlers names
 * that stay the same across restarts, so a restarted process resumes their
 * retries (`rre dlq replay` sends a dead letter back to that handler), and
 * that differ among handlers that receive some of the same events: while
 * the link exists, the router refuses such a name (RRE_EINVAL), and making
 * the link fails when two handlers share one already. The
 * retries are run by the link's reader thread, synchronously, checked at
 * least four times a second; one whose handler is not subscribed is put
 * off. The failure is still reported as HANDLER_FAILED. */

/** Links `router` to `queue` (both borrowed; they must outlive the link).
 * `opts` may be NULL. Errors: those of rre_router_add_sink() and
 * rre_subscriber_create() (RRE_EHELD for a durable name held elsewhere). */
RRE_API rre_status rre_link_create(rre_link **out, rre_router *router, rre_queue *queue,
                                   const rre_link_options *opts);

/** Waits until the reader has passed every event committed before this call
 * (so a test or a shutdown sees what other processes published), or until
 * `timeout_ms` passes (RRE_ETIMEOUT). 0 only checks; a negative timeout
 * waits without limit. With RRE_LINK_NO_READER there is nothing to wait
 * for: RRE_OK at once. When the reader has stopped for good, that is
 * returned at once with the reason: RRE_EHELD when another process took its
 * durable name over, RRE_ECLOSED when the queue was closed. A reader that
 * stopped no longer delivers events from other processes. */
RRE_API rre_status rre_link_sync(rre_link *link, int timeout_ms);

/** With RRE_LINK_PIPELINED: waits until every event accepted for a pipelined
 * publish on the link's queue before the call is committed (see
 * rre_queue_flush() for `timeout_ms`), then returns RRE_OK, or the status of
 * the link's own events that were not stored since the previous
 * rre_link_flush() (its message says how many). Without the flag, events are
 * committed before the publish returns: RRE_OK at once. */
RRE_API rre_status rre_link_flush(rre_link *link, int timeout_ms);

/** Counters of a link since it was made, and its reader's position. */
typedef struct rre_link_counters {
    uint64_t appended;         /**< local events appended to the queue */
    uint64_t append_failed;    /**< ... that the queue refused */
    uint64_t queue_duplicates; /**< ... that another process had already stored */
    uint64_t read;             /**< events read from the queue */
    uint64_t own_skipped;      /**< ... that this link had appended itself */
    uint64_t injected;         /**< ... injected into the router */
    int64_t last_read_id;      /**< the last event id the reader passed */
    uint64_t handler_retries;  /**< handler calls that were retries */
    uint64_t handler_dead;     /**< events moved to the dead letters for a handler */
} rre_link_counters;

/** A snapshot of the counters (all zero for a NULL link). */
RRE_API void rre_link_get_counters(rre_link *link, rre_link_counters *out);

/** Stops the reader thread and removes the sink; the router and the queue go
 * on. NULL does nothing. */
RRE_API void rre_link_destroy(rre_link *link);

#endif
