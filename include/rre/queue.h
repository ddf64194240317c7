/**
 * @file
 * queue.h - the durable cross-process queue: a SQLite file shared by the
 * processes of one host, C and Python alike. Part of the public interface;
 * included by <rre/rre.h>, never alone.
 *
 * The file, its location, its tables and its value formats are the contract
 * of the Python deployment (see docs/QUEUE.md): the `events`, `subscribers`
 * and `acks` tables are created with IF NOT EXISTS exactly as Python creates
 * them and are never altered. What this library needs beyond them lives in
 * tables of its own, all named `rre_*`, which Python ignores.
 *
 * Decisions the Python contract leaves open, as this library makes them:
 *
 *  - Location: an explicit path wins; else `$RINGRIFT_COORDINATION_DIR/events.db`,
 *    else `$XDG_RUNTIME_DIR/ringrift_coordination/events.db`, else
 *    `/tmp/ringrift_coordination/events.db` for uid 0 and
 *    `/tmp/ringrift_coordination_<uid>/events.db` otherwise. Empty variables
 *    count as unset. Missing parent directories are created (mode 0700); a
 *    database file this library creates, and its -wal and -shm files, are
 *    mode 0600.
 *  - Stored payload: the payload object as canonical JSON (compact, keys
 *    sorted, numbers in their shortest round-trip form), plus the envelope
 *    fields `timestamp` and `trace_id` at its top level when the payload does
 *    not already have them (the Python EventBus adds `timestamp` the same way).
 *    These fields are outside the content hash, so the hash of a stored event
 *    equals the hash of the published one. On reading, the envelope's
 *    timestamp and trace_id come from those fields when present (the
 *    timestamp from `created_at` otherwise); the payload is delivered as stored.
 *  - Python writes NaN and Infinity into payloads (json.dumps allows them).
 *    Such rows are read with those numbers replaced by null. A payload that is
 *    not JSON, or not a JSON object, is a poison row: it is logged once per
 *    database (a row in `rre_poison`), counted by each subscriber that meets
 *    it, acknowledged so that no consumer retries it, and skipped.
 *  - Content dedup across processes: the content hash of every event this
 *    library publishes is kept with its first-seen time (`rre_hashes`, and
 *    an index of them, `rre_dedup_index`) and checked in the same
 *    transaction as the insert. Within the window (1 hour
 *    by default) a second publish of the same content stores nothing and
 *    reports the first event's id with `duplicate` set. Rows Python inserts
 *    are not hashed at publish time and so never count as earlier copies.
 *  - Durable subscribers have the id "<hostname>:stable:<name>"; the name
 *    "event_router" is refused because that id belongs to the Python router.
 *    A name is held by one live process at a time (a lease row with host,
 *    pid and a heartbeat). A holder is dead when it is on this host and its
 *    pid no longer exists (or belongs to a process started later), or when
 *    its heartbeat is older than the subscriber timeout
 *    (RINGRIFT_SUBSCRIBER_TIMEOUT, 300 s); a dead holder's lease is taken
 *    over. A subscriber that finds its lease taken over gets RRE_EHELD.
 *  - Progress: a cursor per durable subscriber (the last event id it passed)
 *    so acknowledged history is never rescanned; each delivered event (and
 *    each poison row) also gets an `acks` row under the subscriber id so a
 *    Python consumer with the same id sees the progress, and ids Python
 *    already acked for that id are skipped. Events filtered out by type or
 *    category are passed by the cursor but not acked. Acks are written once
 *    per delivered batch, after the handlers ran: a process killed between a
 *    handler and that commit gets the rest of that batch again on restart
 *    (at least once); an acked event is never delivered again.
 *  - A new durable subscriber starts at the oldest retained event (or after
 *    `since_id` when given, recorded at once: stopped before its first
 *    event, it resumes there); `since_id` on an existing one moves its
 *    cursor forward, never back.
 *  - Wake-up: each subscriber watches the database's directory with inotify
 *    for writes to the database and its WAL and re-reads on every change,
 *    with a fallback re-read every 250 ms for file systems without inotify.
 *  - Retention runs by itself in a maintenance thread of each queue: every
 *    minute it deletes events older than the retention window
 *    (RINGRIFT_CROSS_PROCESS_RETENTION_HOURS, 24 h), their acks and poison
 *    records, expired dedup entries, `subscribers` rows of non-stable ids
 *    idle longer than the subscriber timeout, and state of stable
 *    subscribers idle longer than the retention window (their pending
 *    retries go to the dead letters, which retention never deletes); at
 *    most 1000 rows per transaction, so publishers never wait long. One
 *    pass per database per interval, whichever process gets there first.
 *  - SQLITE_BUSY never reaches the caller: every transaction is retried with
 *    a short backoff for as long as the busy timeout (60 s) allows; only then
 *    is RRE_ETIMEOUT returned.
 *  - Errors map to RRE_ECORRUPT (not a database, corrupt), RRE_EFULL (disk or
 *    size limit full), RRE_EREADONLY, RRE_EIO (cannot create or open), RRE_EDB
 *    (anything else SQLite reports); rre_last_error() holds SQLite's message.
 */
#ifndef RRE_QUEUE_H
#define RRE_QUEUE_H

/** The longest host name a queue (and a bridge) takes, in bytes. */
#define RRE_HOSTNAME_MAX 255

/** The name of the database file inside the coordination directory. */
#define RRE_QUEUE_FILE_NAME "events.db"
/** The subscriber name Python's router uses; refused for C subscribers. */
#define RRE_QUEUE_RESERVED_NAME "event_router"

/** An open queue database (opaque), made by rre_queue_create(). */
typedef struct rre_queue rre_queue;
/** A reader of the queue (opaque), made by rre_subscriber_create(). */
typedef struct rre_subscriber rre_subscriber;

/** How durably the queue commits: SQLite's `synchronous` setting. */
typedef enum rre_queue_sync {
    RRE_QUEUE_SYNC_NORMAL = 0, /**< synchronous=NORMAL, as Python uses */
    RRE_QUEUE_SYNC_FULL = 1,   /**< synchronous=FULL: durable across power loss */
} rre_queue_sync;

/** Options of rre_queue_create(). Start from rre_queue_options_init(); zero
 * and NULL fields mean "the default". Strings are copied. */
typedef struct rre_queue_options {
    const char *path;            /**< database file; NULL: the default location */
    const char *hostname;        /**< written to `hostname` (at most RRE_HOSTNAME_MAX bytes,
                                    else RRE_EINVAL); NULL: gethostname() */
    const char *default_source;  /**< source of publishes that give none; NULL: "" */
    rre_queue_sync sync;         /**< default NORMAL */
    int busy_timeout_ms;         /**< 0: 60000 */
    double dedup_window_seconds; /**< 0: 3600; negative: no cross-process dedup */
    double retention_hours;      /**< 0: RINGRIFT_CROSS_PROCESS_RETENTION_HOURS or 24 */
    double subscriber_timeout_s; /**< 0: RINGRIFT_SUBSCRIBER_TIMEOUT or 300 */
    int maintenance_interval_ms; /**< 0: 60000; negative: no maintenance thread */
    int64_t max_page_count;      /**< 0: no limit; else PRAGMA max_page_count (tests) */
    bool read_only;              /**< open an existing file read-only; no publish or ack */
} rre_queue_options;

/** Fills `opts` with the defaults (see each field). */
RRE_API void rre_queue_options_init(rre_queue_options *opts);

/** Writes the default database path (the location rules above, ignoring any
 * option) into buf. RRE_ELIMIT when it does not fit in cap. */
RRE_API rre_status rre_queue_default_path(char *buf, size_t cap);

/** Opens (creating when missing) the queue database. `opts` may be NULL for
 * all defaults. On success *out owns the queue; on failure *out is NULL and
 * rre_last_error() says why: RRE_EIO when the directory or file cannot be
 * created or opened, RRE_ECORRUPT for a file that is not a SQLite database,
 * RRE_EREADONLY when it cannot be written (use read_only to read it anyway). */
RRE_API rre_status rre_queue_create(rre_queue **out, const rre_queue_options *opts);

/** Stops the queue: later publishes return RRE_ECLOSED, subscribers waiting
 * in rre_subscriber_poll() return RRE_ECLOSED within the fallback re-read
 * interval (250 ms; rre_subscriber_close() wakes one at once), the
 * maintenance thread ends. Publishes already queued are still committed.
 * Idempotent; NULL does nothing. */
RRE_API void rre_queue_close(rre_queue *q);

/** Closes (if needed) and frees the queue. Its subscribers and links must
 * have been destroyed first, and no publish may be running. NULL does
 * nothing. */
RRE_API void rre_queue_destroy(rre_queue *q);

/** The path of the open database file (owned by the queue). */
RRE_API const char *rre_queue_path(const rre_queue *q);

/** The host name the queue writes and uses in subscriber ids. */
RRE_API const char *rre_queue_hostname(const rre_queue *q);

/* ------------------------------------------------------------------------ */
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/** What rre_queue_publish() did with an event. */
typedef struct rre_queue_publish_result {
    int64_t event_id;            /**< the new row, or the earlier one when duplicate */
    bool duplicate;              /**< true: nothing was stored */
    uint8_t hash[RRE_HASH_SIZE]; /**< content hash of the event */
} rre_queue_publish_result;

/** Appends one event. `payload` (a JSON object, borrowed) is written as is:
 * normalising and validating it is the caller's (the router's) business.
 * `source` may be NULL (the queue's default source). `timestamp` and
 * `trace_id` may be NULL or ""; when given they are added to the stored
 * payload unless it has those fields (see above). `out` may be NULL.
 *
 * Thread-safe: publishes from several threads are committed together in one
 * transaction (group commit); the call returns once its row is committed, or
 * with an error, in which case nothing of this event was stored. */
RRE_API rre_status rre_queue_publish(rre_queue *q, rre_event_type type, const json_t *payload,
                                     const char *source, const char *timestamp,
                                     const char *trace_id, rre_queue_publish_result *out);

/** The same for an envelope: type, payload, source, timestamp and trace_id are
 * taken from `ev`. On success ev->event_id is set (to the earlier event's id
 * for a duplicate) and ev->hash filled. */
RRE_API rre_status rre_queue_publish_event(rre_queue *q, rre_event *ev, bool *duplicate);

/** Appends the `n` events of `evs` (type, payload, source, timestamp and
 * trace_id of each, as for rre_queue_publish_event()) in one transaction:
 * either all of them are stored or none is. On success evs[i].event_id and
 * evs[i].hash are set, and duplicates[i] (when `duplicates` is not NULL) is
 * true for an event whose content was already stored within the dedup
 * window, by another publish or earlier in the same batch; ids of the stored
 * events increase in the order of `evs`.
 *
 * Every event is checked before anything is written: a payload that is not
 * an object (RRE_ENOT_OBJECT) or an unknown type (RRE_EUNKNOWN_TYPE) fails
 * the call, naming the index, and stores nothing. n == 0 does nothing.
 *
 * One call costs one commit however many events it carries, so a producer
 * with events at hand (a burst of results, a backlog) publishes many times
 * faster this way than with one call per event. Thread-safe; batches and
 * single publishes of other threads may share the transaction. */
RRE_API rre_status rre_queue_publish_batch(rre_queue *q, rre_event *evs, size_t n,
                                           bool *duplicates);

/* Pipelined publishing: the call returns once the event is accepted, and a
 * writer thread of the queue commits accepted events together. */

/** The completion of one pipelined publish, called on the queue's writer
 * thread. `status` is RRE_OK with the stored `event_id` (or, when
 * `duplicate`, the earlier event's id: nothing was stored), or the error
 * that kept the event out (a full disk, a closed queue); `hash` is the
 * content hash. Keep it short: the next commit waits for it. It may publish
 * (pipelined or not); it must not flush (RRE_EINVAL), nor close or destroy
 * the queue (that aborts the program: it would wait for the thread it runs
 * on). */
typedef void (*rre_queue_stored_fn)(rre_status status, int64_t event_id, bool duplicate,
                                    const uint8_t hash[RRE_HASH_SIZE], void *user_data);

/** Accepts one event for a pipelined publish: checks and prepares it as
 * rre_queue_publish() does (a payload that is not an object, an unknown type,
 * a read-only or closed queue are refused here, with nothing queued), queues
 * it and returns without waiting for the commit. `done` (may be NULL) is then
 * called once with the outcome. Events accepted from one thread are stored in
 * the order they were accepted (a group that fails leaves a gap: later groups
 * are still stored); the writer commits whatever is waiting in one
 * transaction (up to 4,096 events), so one thread reaches batch rates while
 * publishing one event per call. A synchronous rre_queue_publish() made
 * after pipelined ones may be stored before them.
 *
 * An accepted event is not yet stored: a crash before its completion loses
 * it. Wait for `done`, or call rre_queue_flush(), before telling anyone it
 * is stored. At most 65,536 events wait at once: past that the call blocks
 * until the writer catches up (not on the writer thread itself). A queue
 * handle made before fork() cannot publish pipelined in the child once its
 * writer started in the parent (RRE_ECLOSED): open it again there.
 * rre_queue_close() commits what was accepted before it returns, which takes
 * as long as those commits take. */
RRE_API rre_status rre_queue_publish_async(rre_queue *q, rre_event_type type, const json_t *payload,
                                           const char *source, const char *timestamp,
                                           const char *trace_id, rre_queue_stored_fn done,
                                           void *user_data);

/** Waits until every event accepted by rre_queue_publish_async() before the
 * call (from any thread) has been committed or has failed, and its
 * completion has run. timeout_ms < 0 waits as long as it takes. Returns
 * RRE_OK when none of them failed that this thread has not heard of from an
 * earlier flush; else the status of the latest failure (its message says how
 * many failed). Every thread hears of each failure once, from its own next
 * flush (the 256 latest separate failures are remembered). RRE_ETIMEOUT when
 * time ran out (nothing is reported then); RRE_EINVAL on the writer thread
 * (from a completion). */
RRE_API rre_status rre_queue_flush(rre_queue *q, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Subscribing                                                               */
/* ------------------------------------------------------------------------ */

/** Options of rre_subscriber_create(). Zero / NULL fields mean "the default".
 * The arrays are copied. */
typedef struct rre_subscriber_options {
    const char *name;               /**< durable name; NULL: a transient reader (no ack,
                                       no cursor, no lease), starting after since_id */
    const rre_event_type *types;    /**< deliver only these types (canonical or alias) */
    size_t type_count;              /**< number of entries in `types` */
    const rre_category *categories; /**< ... or these categories (either matches) */
    size_t category_count;          /**< number of entries in `categories` */
    int64_t since_id;               /**< deliver only events with a larger id */
    bool no_ack;                    /**< durable name, but do not record progress */
    unsigned batch;                 /**< rows read per query; 0: 256, or 1024 with lazy_payload */
    /* Retries and dead letters (durable subscribers that record progress;
     * see the handler below). */
    int max_attempts;         /**< failed deliveries before the dead letters; 0: 5;
                                 negative: none (a failure is logged, the event acknowledged) */
    double retry_delay_s;     /**< wait before the first retry; 0: 2 s; doubled per failure */
    double retry_delay_max_s; /**< longest wait between retries; 0: 300 s */
    bool strict_order;        /**< a retrying event holds back the later ones (default:
                                 they pass while it waits) */
    /** Hand over payloads as text, parsed only when the handler asks: a row
     * whose content hash this library stored with it (its payload was checked
     * when it was published or imported) is delivered with `payload` NULL and
     * `payload_text` set; call rre_event_payload() for the object. Rows of
     * other writers are parsed and checked as usual, and carry both. An
     * event delivered with `payload` NULL must be given its payload (from
     * rre_event_payload()) before it is passed back to the library
     * (rre_router_inject(), the batch publish, the flow checker), which
     * reads `payload`. */
    bool lazy_payload;
    /** Record progress only in this library's cursor, without Python's
     * `acks` rows (one row per event, which is most of what delivery costs).
     * For a daemon no Python consumer will ever run as: a Python consumer
     * that later takes this id sees every retained event as new. Acks rows
     * are still written when the id is found to be Python's: it has acks
     * rows when the subscriber starts (Python's, or this library's from
     * before: the id keeps getting them until retention has removed them
     * all), or an event arrives that another consumer of the id
     * acknowledged (then a warning is logged once). Events Python
     * acknowledged are skipped either way. */
    bool cursor_only;
} rre_subscriber_options;

/** Fills `opts` with the defaults: a transient reader of every type. */
RRE_API void rre_subscriber_options_init(rre_subscriber_options *opts);

/** The handler of rre_subscriber_poll(). `ev` and everything it points to are
 * borrowed until it returns (ev->origin is RRE_ORIGIN_HOST for a row whose
 * hostname is another host's, imported by the bridge, else
 * RRE_ORIGIN_PROCESS; ev->event_id is the row). What it returns decides
 * what becomes of the event:
 *
 *  - RRE_OK: handled; acknowledged.
 *  - RRE_ECLOSED: stops the poll at this event without acknowledging it: it
 *    is delivered again next time.
 *  - RRE_ERETRY_LATER: delivered again after the retry delay, without
 *    counting as a failure.
 *  - RRE_EREJECTED: the event can never be handled (poison for this
 *    handler): it goes to the dead letters at once.
 *  - any other status is a failure: logged and counted; the event is
 *    delivered again after retry_delay_s, doubled after each failure up to
 *    retry_delay_max_s, and after max_attempts failures it goes to the dead
 *    letters (the table rre_dead_letters, with the subscriber id, the
 *    handler's error, the attempt count and times; see rre_queue_dlq_list()).
 *
 * The handler's error is the thread's last error message when it returns
 * (set it with rre_fail()), else the status's text. Retries are kept in the
 * database (rre_retries, with a copy of the event), so they survive a
 * restart and the retention of the event itself. By default the events after
 * a retrying one are delivered while it waits (a failing handler does not
 * block other events); with strict_order the subscriber delivers nothing
 * else until the retrying event is handled or dead. Due retries are
 * delivered before new events. Transient readers and no_ack subscribers
 * record nothing: for them every failure is logged and the event passed. */
typedef rre_status (*rre_queue_handler)(const rre_event *ev, void *user_data);

/** Creates a subscriber on its own connection. For a durable name it takes
 * the name's lease (RRE_EHELD, with a message naming the holder's host and
 * pid, when a live process holds it; RRE_EINVAL for the reserved name, an
 * empty one, one that is not UTF-8 or one with a '/', which names the
 * handlers of a linked router) and restores the cursor. */
RRE_API rre_status rre_subscriber_create(rre_subscriber **out, rre_queue *q,
                                         const rre_subscriber_options *opts);

/** Delivers up to `max` events (0: no limit other than one batch) in event_id
 * order to `fn`, then acknowledges them. When none is available it waits up
 * to `timeout_ms` (0: do not wait; negative: wait until one arrives or the
 * subscriber or queue is closed) for a commit by any process.
 * *delivered (may be NULL) is the number of events handed to `fn`.
 * Returns RRE_OK (also when the wait ran out with nothing), RRE_ECLOSED,
 * RRE_EHELD when the lease was taken over, or a database error; events
 * delivered before an error are acknowledged when possible.
 * One thread at a time per subscriber; `fn` runs on the calling thread with
 * no library lock held and may publish to the same queue. */
RRE_API rre_status rre_subscriber_poll(rre_subscriber *s, int timeout_ms, size_t max,
                                       rre_queue_handler fn, void *user_data, size_t *delivered);

/** Wakes a poll that is waiting and makes every later poll return RRE_ECLOSED.
 * Any thread; idempotent; NULL does nothing. */
RRE_API void rre_subscriber_close(rre_subscriber *s);

/** Releases the lease (the cursor stays) and frees the subscriber. Not while
 * another thread is inside rre_subscriber_poll(). NULL does nothing. */
RRE_API void rre_subscriber_destroy(rre_subscriber *s);

/** The subscriber id ("<host>:stable:<name>", or "<host>:<pid>:reader"). */
RRE_API const char *rre_subscriber_id(const rre_subscriber *s);

/** Counters of a subscriber since it was made, and its cursor. */
typedef struct rre_subscriber_counters {
    uint64_t delivered;      /**< events handed to the handler */
    uint64_t handler_failed; /**< ... whose handler reported failure */
    uint64_t filtered;       /**< rows passed by the filter */
    uint64_t skipped_acked;  /**< rows already acked by a Python consumer of this id */
    uint64_t poison;         /**< rows that could not be decoded */
    int64_t cursor;          /**< the last event id passed */
    uint64_t retried;        /**< deliveries that were retries */
    uint64_t retry_later;    /**< ... handlers that answered RRE_ERETRY_LATER */
    uint64_t dead_lettered;  /**< events moved to the dead letters */
} rre_subscriber_counters;

/** A snapshot of the subscriber's counters; call it from the polling thread
 * or while no poll runs. */
RRE_API void rre_subscriber_get_counters(const rre_subscriber *s, rre_subscriber_counters *out);

/* ------------------------------------------------------------------------ */
/* Statistics and retention                                                  */
/* ------------------------------------------------------------------------ */

/** Figures about the database as one JSON object (caller owns it):
 * path, file_bytes (database + WAL), events, first_event_id, last_event_id,
 * by_type {NAME: count} (unknown spellings under their stored text),
 * subscribers [{id, kind ("stable" or "python"), cursor, behind,
 * behind_seconds, holder_host, holder_pid, alive, last_seen, retrying,
 * dead_letters}], dedup_entries, poison_rows, retrying (events waiting for
 * a retry) and dead_letters (of every subscriber). */
RRE_API rre_status rre_queue_stats(rre_queue *q, json_t **out);

/** What retention deleted (rre_queue_purge()) or would delete
 * (rre_queue_purge_preview()). */
typedef struct rre_queue_purge_result {
    uint64_t events;      /**< events deleted */
    uint64_t acks;        /**< acks of deleted events */
    uint64_t dedup;       /**< expired dedup entries */
    uint64_t subscribers; /**< dead subscriber rows, leases and cursors */
    uint64_t poison;      /**< poison records of deleted events */
} rre_queue_purge_result;

/** Runs retention now, in batches: events older than `older_than_s` seconds
 * (negative: the retention window) and everything listed above. `out` may be
 * NULL. */
RRE_API rre_status rre_queue_purge(rre_queue *q, double older_than_s, rre_queue_purge_result *out);

/** What rre_queue_purge() with the same `older_than_s` would delete now,
 * counted in one read transaction without deleting anything (`rre purge
 * --dry-run`); works on a read-only queue. Another process may change the
 * figures before a purge runs. */
RRE_API rre_status rre_queue_purge_preview(rre_queue *q, double older_than_s,
                                           rre_queue_purge_result *out);

/** The position of a time in the queue, for since_id: events created at or
 * after `unix_time` (seconds since 1970) have larger ids than *since_id
 * (the id before the first of them; the newest id when there is none).
 * Ids follow commit order and created_at the writers' clocks, so with
 * several writers a few events around the time may fall on either side. */
RRE_API rre_status rre_queue_position_at(rre_queue *q, double unix_time, int64_t *since_id);

/* ------------------------------------------------------------------------ */
/* Dead letters                                                              */
/* ------------------------------------------------------------------------ */

/* `subscriber` arguments below take a subscriber id ("host:stable:name") or
 * a durable name (the subscriber of that name on this queue's host); NULL
 * means every subscriber. Dead letters are kept until dropped: retention
 * does not delete them. */

/** The dead letters, oldest first, as a JSON array (caller owns it) of
 * {id, subscriber, event_id, event_type, source, hostname, created_at,
 * error, attempts, first_failed_at, dead_at}. */
RRE_API rre_status rre_queue_dlq_list(rre_queue *q, const char *subscriber, json_t **out);

/** One dead letter with its event, as a JSON object: the fields of the list
 * plus `payload` (the stored payload; null when it is not JSON).
 * RRE_ENOTFOUND when there is none with that id. */
RRE_API rre_status rre_queue_dlq_get(rre_queue *q, int64_t id, json_t **out);

/** Replays dead letters: each goes back to its own subscriber only (not to
 * every reader of the queue), due at once, with its attempts counted from
 * zero; the dead letter is removed in the same transaction. `id` > 0 replays
 * that one (RRE_ENOTFOUND when missing, or when it is not `subscriber`'s);
 * id 0 replays all of `subscriber`'s (all of them for NULL). *count (may
 * be NULL) is how many were replayed. */
RRE_API rre_status rre_queue_dlq_replay(rre_queue *q, int64_t id, const char *subscriber,
                                        uint64_t *count);

/** Deletes dead letters: the one with `id` (> 0; RRE_ENOTFOUND when
 * missing), or with id 0 those that died more than `older_than_s` seconds
 * ago (>= 0) of `subscriber` (NULL: all). *count may be NULL. */
RRE_API rre_status rre_queue_dlq_drop(rre_queue *q, int64_t id, double older_than_s,
                                      const char *subscriber, uint64_t *count);

/* Attaching a router to the queue (appending its events, receiving the
 * events of other processes) is <rre/link.h>. */

#endif
