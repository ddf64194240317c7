/**
 * @file
 * bridge.h - the bridge between a host's durable queue and a NATS JetStream
 * stream, so events cross hosts. Part of the public interface; included by
 * <rre/rre.h>, never alone. docs/BRIDGE.md is the user's guide.
 *
 * One bridge runs per host. It has two directions:
 *
 *  - OUTBOUND: it reads the host's queue as the durable subscriber
 *    "rre_bridge", in event_id order, and publishes every row whose
 *    `hostname` is this host to the stream, on the subject
 *    `rre.<host token>.<category>.<TYPE>`, with `Nats-Msg-Id` the lowercase hex
 *    content hash, CloudEvents 1.0 binary-mode `ce-*` headers and
 *    `Rre-Origin-Host`; the body is the payload object as stored. Rows of
 *    other hosts (imported ones) are never published: that is the loop
 *    guard. A row is passed (its cursor recorded) only after the stream
 *    confirmed it (a PubAck, duplicate or not). Publishing is pipelined with
 *    a bounded number in flight; a failure (timeout, no responders during a
 *    leader election, a lost connection) makes the bridge wait for what is
 *    in flight, back off, and publish again from the first unconfirmed row,
 *    in order, with the same message ids (the stream drops the copies it
 *    has), one message at a time until the stream confirms one (as at the
 *    start), so that a leader election does not let a later message be
 *    stored before an earlier one that was refused.
 *  - INBOUND: one durable pull consumer per host on `rre.>`. Every message
 *    is checked (size, UTF-8, a JSON object within the payload limits, a
 *    known type, headers consistent with the subject, a message id equal to
 *    the content hash recomputed from type and body); a bad one is counted,
 *    logged (rate-limited), terminated and never stored. Messages of this
 *    host are acknowledged and dropped. Good ones are appended in one
 *    transaction per fetched batch, with `hostname` the origin host,
 *    `source` from `ce-source`, the body as received and `created_at` the
 *    local commit time, through the queue's content dedup; the transaction
 *    also records the stream sequence reached, so a restarted bridge skips
 *    what it stored, and messages are acknowledged after the commit. The
 *    bridge handles messages in stream order only: when a sequence is
 *    missing (a message waiting for redelivery after a lost fetch or a
 *    crash), or after a reconnection once nothing more arrives, it makes its
 *    consumer again at the first sequence not yet stored rather than let
 *    later messages overtake it or wait for the redelivery.
 *
 * SESSIONS. A bridge works in sessions of one NATS connection each. A lost
 * connection ends the session (what it had buffered is dropped with it, so
 * the stream holds a prefix of what was sent); the next session connects
 * anew, makes the consumer again and resends from the first unconfirmed
 * row. The client library's own reconnection is not used: after one it
 * sends what it had buffered, which can land behind a lost earlier message.
 *
 * STATES. A bridge is an explicit state machine (rre_bridge_state): it
 * starts CONNECTING; once the stream and its consumer exist it is RUNNING
 * (rre_bridge_wait_ready() returns); a failure that may pass (no server
 * reachable, a server restarting, a leader election) puts it in BACKING_OFF
 * for a growing, jittered delay (0.1 s doubling up to 5 s) before it tries
 * again; rre_bridge_stop() makes it STOPPING, then STOPPED. A failure that
 * retrying cannot fix (refused credentials, a TLS set-up that fails, an
 * existing stream whose settings conflict with the options, another bridge
 * holding this queue) makes it FAILED and rre_bridge_run() returns it.
 *
 * THREADS. rre_bridge_run() blocks the calling thread (the outbound side)
 * and starts one more thread (the inbound side); the NATS library runs its
 * own threads for the connection. rre_bridge_stop(), rre_bridge_state(),
 * rre_bridge_wait_ready() and rre_bridge_get_counters() may be called from
 * any thread while it runs.
 */
#ifndef RRE_BRIDGE_H
#define RRE_BRIDGE_H

/** A bridge (opaque), made by rre_bridge_create(). */
typedef struct rre_bridge rre_bridge;

#define RRE_BRIDGE_DEFAULT_STREAM "RRE_EVENTS" /**< the default stream */
#define RRE_BRIDGE_SUBJECTS "rre.>"            /**< the subjects every bridge publishes under */
/** The durable queue subscriber name of the outbound side. */
#define RRE_BRIDGE_SUBSCRIBER "rre_bridge"

/** The states of a bridge (see STATES at the top of bridge.h). */
typedef enum rre_bridge_state {
    RRE_BRIDGE_CONNECTING = 0,  /**< reaching a server; making the stream and consumer */
    RRE_BRIDGE_RUNNING = 1,     /**< carrying events both ways */
    RRE_BRIDGE_BACKING_OFF = 2, /**< after a failure that may pass: waiting to retry */
    RRE_BRIDGE_STOPPING = 3,    /**< rre_bridge_stop() was called */
    RRE_BRIDGE_STOPPED = 4,     /**< rre_bridge_run() returned after a stop */
    RRE_BRIDGE_FAILED = 5,      /**< rre_bridge_run() returned a fatal error */
} rre_bridge_state;

/** The name of a state: "connecting", "running", "backing_off", "stopping", "stopped", "failed";
 * "unknown" out of range. */
RRE_API const char *rre_bridge_state_name(rre_bridge_state state);

/** Where a host that has never imported from the stream starts. */
typedef enum rre_bridge_start {
    RRE_BRIDGE_START_NEW = 0,  /**< with events published from now on (the default) */
    RRE_BRIDGE_START_ALL = 1,  /**< with every event the stream still holds */
    RRE_BRIDGE_START_TIME = 2, /**< with events the stream received at start_time or later */
} rre_bridge_start;

/** Options of rre_bridge_create(). Start from rre_bridge_options_init();
 * zero and NULL fields mean "the default". Strings are copied. */
typedef struct rre_bridge_options {
    const char *servers; /**< required: "nats://h1:4222,nats://h2:4222" (tls:// for TLS) */
    const char *stream;  /**< NULL: RRE_BRIDGE_DEFAULT_STREAM */
    /* Settings of the stream when the bridge creates it. An existing stream
     * is used as it is, but one whose setting differs from an option given
     * here (not zero) is a conflict: rre_bridge_run() fails and says which. */
    int replicas;          /**< 0: 1 */
    double max_age_s;      /**< 0: 7 days */
    double dedup_window_s; /**< 0: the queue's dedup window (1 hour by default) */
    /** This host's name: rows whose `hostname` equals it are published, and
     * messages from it are dropped. NULL: rre_queue_hostname() of the queue,
     * which is what the queue writes; give the queue the same name. */
    const char *host;
    /** User and password authentication: the user, with `password`. */
    const char *user, *password; /**< the password of `user` */
    const char *creds_file;      /**< a NATS credentials file (JWT and NKey seed) */
    const char *tls_ca;          /**< CA certificates to verify the server (PEM); implies TLS */
    /** A client certificate (PEM), with its key `tls_key`; implies TLS. */
    const char *tls_cert, *tls_key; /**< the key of the client certificate (PEM) */
    rre_bridge_start start;         /**< first start only; later starts resume */
    double start_time;              /**< Unix seconds, for RRE_BRIDGE_START_TIME */
    int max_in_flight;              /**< publishes awaiting confirmation; 0: 256 */
    int fetch_batch;                /**< messages per fetch and per import transaction; 0: 256 */
    int publish_timeout_ms;         /**< wait for one confirmation; 0: 5000 */
} rre_bridge_options;

/** Fills `opts` with the defaults. */
RRE_API void rre_bridge_options_init(rre_bridge_options *opts);

/** Checks options without a queue. RRE_EINVAL names the bad one: no
 * servers or an empty entry in the list, a negative or too large setting, a
 * stream name with `.`, `*`, `>`, `/`, `\` or blanks, a client certificate
 * without its key, a user without a password (or the reverse), a user or
 * password with `"` or `\`, both a user and a credentials file, an empty,
 * too long or non-UTF-8 host. */
RRE_API rre_status rre_bridge_options_check(const rre_bridge_options *opts);

/** Makes a bridge for `queue` (borrowed: it must outlive the bridge). Checks
 * the options as rre_bridge_options_check() does and copies them; does not
 * connect. */
RRE_API rre_status rre_bridge_create(rre_bridge **out, rre_queue *queue,
                                     const rre_bridge_options *opts);

/** Runs the bridge until rre_bridge_stop() (returns RRE_OK) or a fatal
 * error (returns it, with rre_last_error() saying why: RRE_ENATS for
 * refused credentials, a failed TLS set-up or a conflicting stream;
 * RRE_EHELD when another bridge holds this queue). Unreachable servers are
 * not fatal: it keeps trying. Once per bridge. */
RRE_API rre_status rre_bridge_run(rre_bridge *b);

/** Asks a running bridge to stop; rre_bridge_run() returns within about a
 * second. Any thread; idempotent; NULL does nothing. */
RRE_API void rre_bridge_stop(rre_bridge *b);

/** Waits until the bridge is RUNNING for the first time (its consumer
 * exists, so events other hosts publish from now on reach this host), up
 * to timeout_ms (negative: no limit). RRE_OK when it is; RRE_ETIMEOUT; the
 * fatal status when rre_bridge_run() failed; RRE_ECLOSED when it stopped
 * before. */
RRE_API rre_status rre_bridge_wait_ready(rre_bridge *b, int timeout_ms);

/** The current state. */
RRE_API rre_bridge_state rre_bridge_get_state(const rre_bridge *b);

/** Counters of a bridge since it was made, with its state and positions. */
typedef struct rre_bridge_counters {
    rre_bridge_state state;      /**< the current state */
    bool connected;              /**< the NATS connection is up */
    uint64_t out_published;      /**< rows of this host the stream confirmed as new */
    uint64_t out_duplicates;     /**< ... confirmed as copies it already had */
    uint64_t out_failures;       /**< publishes that failed or timed out (then retried) */
    uint64_t out_passed;         /**< rows of other hosts passed over (the loop guard) */
    int64_t out_cursor;          /**< the last queue event_id passed with everything confirmed */
    uint64_t in_messages;        /**< messages received from the stream */
    uint64_t in_imported;        /**< stored in the queue */
    uint64_t in_duplicates;      /**< content the queue already held within its dedup window */
    uint64_t in_own;             /**< messages of this host, dropped */
    uint64_t in_refused;         /**< bad messages: terminated, never stored */
    uint64_t in_redelivered;     /**< messages already stored, skipped by stream sequence */
    uint64_t in_consumer_resets; /**< times the consumer was made again to keep stream order */
    uint64_t in_stream_seq;      /**< the last stream sequence stored or passed */
    uint64_t reconnects;         /**< NATS reconnections */
    uint64_t backoffs;           /**< times the bridge backed off after a failure */
} rre_bridge_counters;

/** A snapshot of the counters. Any thread. */
RRE_API void rre_bridge_get_counters(const rre_bridge *b, rre_bridge_counters *out);

/** The number of latency buckets with a finite upper bound. */
#define RRE_BRIDGE_LATENCY_BUCKETS 12
/** The upper bounds of the latency buckets in seconds, ascending:
 * RRE_BRIDGE_LATENCY_BUCKETS values. */
RRE_API const double *rre_bridge_latency_bounds(void);

/** Cross-host latency of the events this bridge imported: from the event's
 * own time (its ce-time, the origin's publish time) to its commit in this
 * host's queue, in buckets with the upper bounds of
 * rre_bridge_latency_bounds() (the last bucket, +Inf, is `count`). Clocks
 * of two hosts differ: a negative difference counts as 0. Events whose time
 * cannot be read are not counted. */
typedef struct rre_bridge_latency {
    uint64_t buckets[RRE_BRIDGE_LATENCY_BUCKETS]; /**< cumulative: events at or under each bound */
    uint64_t count;                               /**< every event measured */
    double sum_seconds;                           /**< their latencies added up */
} rre_bridge_latency;

/** A snapshot of the latency histogram. Any thread. */
RRE_API void rre_bridge_get_latency(const rre_bridge *b, rre_bridge_latency *out);

/** The name of this host's durable consumer on the stream ("rre_<host
 * token>_<8 hex digits>": the token is the host reduced to [A-Za-z0-9_-],
 * the digits tell apart hosts whose tokens are equal). */
RRE_API const char *rre_bridge_consumer_name(const rre_bridge *b);

/** The longest host token, in bytes (without the NUL). */
#define RRE_BRIDGE_TOKEN_MAX 63

/** The host token of a host name, as it appears in subjects: its first
 * RRE_BRIDGE_TOKEN_MAX bytes, every byte outside [A-Za-z0-9_-] made '_'.
 * Writes the token and a NUL; RRE_ELIMIT when cap is too small for them,
 * RRE_EINVAL for an empty name. */
RRE_API rre_status rre_bridge_host_token(const char *host, char *buf, size_t cap);

/** Frees a bridge that is not running (rre_bridge_run() returned, or was
 * never called). NULL does nothing. */
RRE_API void rre_bridge_destroy(rre_bridge *b);

#endif
