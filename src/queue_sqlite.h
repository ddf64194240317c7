/*
 * queue_sqlite.h - what the source files of the SQLite queue share: the
 * queue object, connection set-up, error mapping, retried transactions, the
 * cross-process wake-up and the retention pass. Library-internal.
 */
#ifndef RRE_QUEUE_SQLITE_H
#define RRE_QUEUE_SQLITE_H

#include "dedup.h"
#include "internal.h"

#include <pthread.h>
#include <sys/types.h>
#include <stdatomic.h>
#include <sqlite3.h>

/* Rows deleted per retention transaction. */
#define RRE__QUEUE_PURGE_BATCH 1000
/* Publishes committed in one transaction at most. */
#define RRE__QUEUE_GROUP_MAX 4096
/* The fallback re-read interval of a waiting subscriber, in milliseconds. */
#define RRE__QUEUE_FALLBACK_MS 250

/* Hashes a writer holds in memory past the indexed ones before it merges
 * some into rre_dedup, and the slices of the hash space merged one at a
 * time (see queue_dedup.c). */
#define RRE__QUEUE_DEDUP_MEM_MAX 16384
#define RRE__QUEUE_DEDUP_SLICES 64

struct rre__pub_req;
struct rre__async_req;

/* Pipelined publishes waiting at most; failed groups remembered for
 * rre_queue_flush(). */
#define RRE__QUEUE_ASYNC_MAX 65536
#define RRE__QUEUE_ASYNC_FAILURES 256

struct rre__async_failure {
    uint64_t lo, hi; /* the sequence numbers of the group's events */
    rre_status status;
    char error[200];
};

/* The content dedup of one writer connection (queue_dedup.c). Used by one
 * thread at a time, inside that connection's write transactions. */
typedef struct rre__qdedup {
    /* Per slice (the first byte of the hash / 4): the hashes of rre_hashes
     * past that slice's indexed_upto, in event id order. */
    struct rre__dedup mem[RRE__QUEUE_DEDUP_SLICES];
    int64_t indexed_upto[RRE__QUEUE_DEDUP_SLICES]; /* as last read */
    int64_t generation;  /* rre_meta 'dedup_merges' as last read; -1: read all again */
    int64_t loaded_upto; /* the last rre_hashes event id looked at */
    bool in_txn;         /* a transaction added to mem and is not concluded */
    size_t mem_max;
    double window_s; /* <= 0: no dedup; nothing is prepared */
    uint64_t merges; /* slices merged by this writer */
    sqlite3_stmt *st_gen_get, *st_slices_get, *st_catchup, *st_put, *st_old_get, *st_index_put,
        *st_slice_put, *st_gen_put;
} rre__qdedup;

/* Prepares the statements on `db` (whose schema exists). mem_max 0: the
 * default. */
rre_status rre__qdedup_open(rre__qdedup *d, sqlite3 *db, double window_s, size_t mem_max);
void rre__qdedup_close(rre__qdedup *d);
/* In a write transaction, first: reads what other writers stored since. */
int rre__qdedup_begin(rre__qdedup *d);
/* Whether `hash` was stored within the window before `now`, and as which event. */
int rre__qdedup_find(rre__qdedup *d, const uint8_t hash[RRE_HASH_SIZE], double now, bool *found,
                     int64_t *event_id);
/* Records the hash of an event just inserted. */
int rre__qdedup_add(rre__qdedup *d, int64_t event_id, const uint8_t hash[RRE_HASH_SIZE],
                    double now);
/* In the transaction, last: merges slices into rre_dedup while memory holds
 * too many. */
int rre__qdedup_end(rre__qdedup *d, sqlite3 *db);
/* After the transaction, whether it committed. */
void rre__qdedup_after(rre__qdedup *d, bool committed);

/*
 * The queue.
 *
 * DESIGN: publishes use a leader/follower group commit. A publishing thread
 * prepares its row (JSON text, hash) without any lock, appends a request to
 * the pending list under `mu`, and waits on `cv` until the request is done.
 * If no leader is active it becomes the leader: it takes the whole pending
 * list, releases `mu`, writes the list in one transaction on the writer
 * connection `wdb`, then marks the requests done under `mu` and broadcasts.
 * Whoever still has a request pending becomes the next leader. So while one
 * transaction commits, the next batch gathers. The requests of one call
 * (rre_queue_publish_batch() makes several) are always taken together, so
 * a call is one transaction. The maintenance thread and
 * each subscriber have connections of their own.
 */
/* A connection's requests for checkpoints (rre__queue_hook_checkpoints()). */
struct rre__ckpt_asker {
    struct rre_queue *q;
    int asked_at; /* WAL frames when this connection last asked; 0: not yet */
};

struct rre_queue {
    /* Immutable after rre_queue_create(). */
    char *path;
    char *dir;       /* directory of the database */
    char *file_name; /* last path component */
    char *hostname;
    char *default_source;
    rre_queue_sync sync;
    int busy_timeout_ms;
    double dedup_window_s; /* <= 0: no dedup */
    double retention_s;
    double subscriber_timeout_s;
    int maintenance_interval_ms; /* < 0: no thread */
    int64_t max_page_count;
    bool read_only;
    long long start_time; /* this process's start time (clock ticks since boot) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rre__pub_req *head, *tail; /* pending publishes; mu */
    int pending;                      /* calls in the list; mu */
    bool leader_active;               /* mu */
    _Atomic int in_publish;           /* threads inside rre_queue_publish() */
    bool closed;                      /* mu */

    /* The writer connection and its statements; only the active leader uses
     * them (leader_active is the lock). Opened by the first leader. */
    sqlite3 *wdb;
    sqlite3_stmt *st_insert;
    rre__qdedup wdedup;
    size_t dedup_mem_max; /* 0: RRE__QUEUE_DEDUP_MEM_MAX; tests set it lower */
    /* The writer connection's requests for checkpoints; leader role. */
    struct rre__ckpt_asker wckpt;
    /* Set by the maintenance thread after its checkpoint: the next leader
     * copies the few frames committed meanwhile, so the WAL can restart. */
    _Atomic bool ckpt_catch_up;
    /* Checkpoints the maintenance thread ran because a commit asked. */
    _Atomic uint64_t ckpt_background;

    /* Pipelined publishes (rre_queue_publish_async()): accepted requests
     * wait in a list that the writer thread submits in groups. */
    pthread_mutex_t async_mu;
    pthread_cond_t async_cv;                        /* the writer: work or stop */
    pthread_cond_t async_room_cv;                   /* accepters and flushers: progress */
    struct rre__async_req *async_head, *async_tail; /* async_mu */
    size_t async_waiting;                           /* in the list; async_mu */
    uint64_t async_accepted, async_completed;       /* async_mu */
    /* Groups that failed, by the sequence numbers of their events (the
     * n-th accepted event is number n), newest last; at most
     * RRE__QUEUE_ASYNC_FAILURES, the oldest forgotten first. async_mu. */
    struct rre__async_failure *async_failures;
    size_t async_nfailures;
    uint64_t async_id;  /* unique per queue: keys the flush cursors of threads */
    pid_t async_pid;    /* the process the writer runs in */
    bool async_started; /* a writer thread was made (and not joined); async_mu */
    bool async_stop;    /* no more accepting; the writer leaves once drained; async_mu */
    bool async_joining; /* a closer joins the writer; others wait for async_exited */
    bool async_exited;  /* joined; async_mu */
    struct rre__async_req *async_spare; /* completed requests to reuse; async_mu */
    size_t async_spares;                /* async_mu */
    pthread_t async_thread;

    /* Ids this process appended that a linked router's receiver has not
     * seen yet, increasing; only kept while own_tracking is set. */
    pthread_mutex_t own_mu;
    bool own_tracking;           /* own_mu */
    struct rre__own_id *own_ids; /* own_mu */
    size_t own_len, own_cap;     /* own_mu */

    /* The maintenance thread. */
    pthread_mutex_t maint_mu;
    pthread_cond_t maint_cv;
    bool maint_stop;     /* maint_mu */
    bool checkpoint_due; /* maint_mu */
    bool maint_started;  /* maint_mu */
    pthread_t maint_thread;

    /* Connection used by stats and purge calls; serialised by admin_mu. */
    pthread_mutex_t admin_mu;
    sqlite3 *adb; /* admin_mu */
};

/* Lock wrappers that abort on failure. */
void rre__queue_lock(pthread_mutex_t *m);
void rre__queue_unlock(pthread_mutex_t *m);

/* Wall-clock Unix seconds with microseconds. */
double rre__queue_now(void);

/* Monotonic milliseconds. */
int64_t rre__queue_mono_ms(void);

/* Start time of process `pid` in clock ticks since boot (field 22 of
 * /proc/<pid>/stat), or -1 when unknown. */
long long rre__process_start_time(long pid);

/* The page cache of the writer connection, in KiB. Each stored event
 * inserts its hash into the dedup index, at a random place: with the index's
 * pages cached the insert reads nothing from the file. Pages are taken as
 * they are used, so a process that publishes little uses little of it.
 * 1 MiB -> 8 MiB: pipelined publish 88,000-98,000 -> 115,000-134,000
 * events/s in one sitting. The bridge's importer keeps 1 MiB: its rate is
 * bound elsewhere, and 8 MiB took the bridge process over 20 MiB. */
#define RRE__STORE_CACHE_KIB 8192

/* Opens a connection to the queue's file with the queue's pragmas and busy
 * handler. `cache_kib` bounds its page cache. */
rre_status rre__queue_connect(const rre_queue *q, sqlite3 **out, int cache_kib);

/* Maps a SQLite result code to a status and records a detail message
 * "<what>: <sqlite message>". */
rre_status rre__queue_sqlite_error(sqlite3 *db, int rc, const char *what);

/* The first column of the first row of `sql` as an integer; `fallback`
 * when the statement fails, returns no row or a NULL. */
int64_t rre__queue_query_int(sqlite3 *db, const char *sql, int64_t fallback);

/* True for SQLITE_BUSY and SQLITE_LOCKED in any extended form. */
bool rre__queue_is_busy(int rc);

/* Sleeps a little before retry number `attempt` of a busy transaction. */
void rre__queue_backoff(int attempt);

/* Runs `body` inside BEGIN IMMEDIATE ... COMMIT, retrying the whole
 * transaction while SQLite reports busy, up to the busy timeout. `body`
 * returns a SQLite result code; anything other than SQLITE_OK or SQLITE_DONE
 * rolls back. A body that wants to fail with a status of its own sets
 * *body_status (initialised to RRE_OK) and returns SQLITE_ABORT. */
rre_status rre__queue_write_txn(const rre_queue *q, sqlite3 *db, const char *what,
                                int (*body)(sqlite3 *db, void *ctx, rre_status *body_status),
                                void *ctx);

/* Prepares `sql` (persistent when `persistent`) with busy retries. */
rre_status rre__queue_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* Prepares `sql`, binds ?1, ?2, ... from the arguments as `fmt` says (one
 * character each: 't' text, NULL binds NULL; 'i' int64_t; 'd' double),
 * steps it once and finalizes it. Returns the step's result code
 * (SQLITE_DONE for a statement without rows) or the prepare's error. */
int rre__queue_run(sqlite3 *db, const char *sql, const char *fmt, ...);

/* The wait before the delivery that follows failure number `failures`
 * (1, 2, ...): `first`, doubled per further failure, at most `max`. */
double rre__retry_delay(double first, double max, int failures);

/* Retries and dead letters of a linked router's handlers (queue_retry.c),
 * each handler its own pseudo-subscriber id. */
typedef struct rre__retry_item {
    char *subscriber_id;
    rre_event ev; /* owns its payload; source and hostname point into strings */
    char *strings;
    int attempts;       /* failures counted so far */
    bool undeliverable; /* the copy cannot be decoded: `why` */
    char why[160];
} rre__retry_item;

/* Records a failure of handler pseudo-subscriber `sub` on `ev` (which needs
 * a queue event id): a retry due at `due_at` with `attempts` failures
 * counted, or with due_at < 0 a dead letter (and the end of its retry). */
rre_status rre__retry_fail(rre_queue *q, const char *sub, const rre_event *ev, int attempts,
                           double due_at, const char *error);

/* Up to `max` due retries of the pseudo-subscribers whose ids start with
 * `prefix`, earliest due first. Free with rre__retry_items_free(). */
rre_status rre__retry_due(rre_queue *q, const char *prefix, size_t max, rre__retry_item **out,
                          size_t *n);
void rre__retry_items_free(rre__retry_item *items, size_t n);

/* Ends a retry: deleted, or moved to the dead letters with error `bury`. */
rre_status rre__retry_done(rre_queue *q, const char *sub, int64_t event_id, const char *bury);

/* Retention: the steps listed in queue.h, each in batched transactions on
 * connection `db`. */
rre_status rre__queue_purge_on(rre_queue *q, sqlite3 *db, double older_than_s,
                               rre_queue_purge_result *out);

/* WAL frames after which the writer asks for a checkpoint (16 MiB of WAL
 * with 4 KiB pages). Python's connections use SQLite's 500; ours is larger
 * because each checkpoint ends with a short catch-up of about three fsyncs
 * on the publishing path, which 4,000 frames (about 600 single-event
 * transactions) make a few microseconds per transaction. */
#define RRE__QUEUE_CHECKPOINT_FRAMES 4000

/* Checkpoints for a connection of this process that writes (the writer's,
 * a subscriber's acknowledgements, the bridge's imports): with the queue's
 * maintenance thread running, its commits ask that thread for a checkpoint
 * once the WAL holds RRE__QUEUE_CHECKPOINT_FRAMES frames (and again only
 * after as many more when the WAL did not restart meanwhile), instead of
 * checkpointing inline as SQLite's automatic checkpoint does, fsyncs
 * included, which held publishes and a consumer's next delivery back by
 * milliseconds. Without the thread the connection keeps SQLite's automatic
 * checkpoint. `asker` must live as long as the connection. */
void rre__queue_hook_checkpoints(sqlite3 *db, struct rre__ckpt_asker *asker, rre_queue *q);

/* Called by the leader after its transaction: when the maintenance thread
 * finished a checkpoint since, copies the frames committed during it (see
 * the checkpoint DESIGN in queue_retention.c). */
void rre__queue_checkpoint_catch_up(rre_queue *q);

/* RRE_OK when `dir` is a directory (not a symbolic link) owned by this
 * user; checked for the default location under /tmp, which another user
 * could have created first. */
rre_status rre__queue_check_private_dir(const char *dir);
/* The database file at `path` and its -wal and -shm, where they exist, must
 * be regular files of this user (the same location rules). */
rre_status rre__queue_check_private_files(const char *path);

/* Own-event tracking for a linked router (queue_own.c, used by link.c):
 * while tracking is on, every id this handle inserts is recorded with the
 * event's content hash before its transaction commits (and removed again
 * when it rolls back). */
struct rre__own_id {
    int64_t id;
    uint8_t hash[8]; /* the first bytes of the content hash */
};
/* rre_queue_publish_event() and rre_queue_publish_async() for an event a
 * router accepted: ev->hash is the content hash the router computed of
 * ev->type and ev->payload, and is stored as it is instead of being computed
 * again (the link's sink). The public functions never trust a caller's hash. */
rre_status rre__queue_publish_routed(rre_queue *q, rre_event *ev, bool *duplicate);
rre_status rre__queue_publish_routed_async(rre_queue *q, const rre_event *ev,
                                           rre_queue_stored_fn done, void *user_data);

void rre__queue_own_set_tracking(rre_queue *q, bool on);
void rre__queue_own_add(rre_queue *q, int64_t id, const uint8_t hash[RRE_HASH_SIZE]);
void rre__queue_own_remove(rre_queue *q, int64_t id);
/* True (and forgets it) when the row `id` with content hash `hash` was
 * appended through this handle. An id listed with another hash is a row of
 * another process that reused the id of one of ours rolled back (SQLite
 * hands out the ids of a rolled-back transaction again): not ours. Ids are
 * asked in increasing order; smaller ones still listed are dropped. */
bool rre__queue_own_take(rre_queue *q, int64_t id, const uint8_t hash[RRE_HASH_SIZE]);
/* Forgets the ids at or below `cursor`: a reader has passed them (filtered
 * out, or deleted by retention). */
void rre__queue_own_drop_upto(rre_queue *q, int64_t cursor);
/* The id of the newest event in *out (0 when none). */
rre_status rre__queue_last_event_id(rre_queue *q, int64_t *out);

/* Held reading, for the bridge (queue_subscriber.c). A durable subscriber
 * read with rre__subscriber_read() gets its rows like a poll, but nothing is
 * recorded: the read position moves on in memory only. The handler gets the
 * event, its created_at and, when the stored text is JSON as it stands (not
 * a row with Python's NaN), that text; for a row whose content hash is
 * stored (one this library wrote or imported) the text is not parsed at all:
 * ev->payload is NULL, and the hash, timestamp and trace id come from the
 * stored hash and a scan of the text. It returns RRE_OK to go on; any
 * other status stops the read at that row (it is read again) and is
 * returned. rre__subscriber_hold() starts held reading, delivering only the
 * rows whose hostname is `host` (NULL: all; the others are passed without
 * being decoded). rre__subscriber_commit() records the cursor up to `upto`
 * (checking the lease and refreshing its heartbeat; no acks rows: the id is
 * ours alone); rre__subscriber_rewind() moves the read position back to
 * the recorded cursor. Once read this way, a subscriber cannot be polled.
 * One thread at a time, as for a poll. */
typedef struct rre__held_row {
    const rre_event *ev;
    double created_at;
    const char *text; /* NULL when the stored text needed repair */
    size_t text_len;
} rre__held_row;
typedef rre_status (*rre__row_handler)(const rre__held_row *row, void *user_data);
rre_status rre__subscriber_hold(rre_subscriber *s, const char *host);
rre_status rre__subscriber_read(rre_subscriber *s, int timeout_ms, size_t max, rre__row_handler fn,
                                void *user_data, size_t *delivered);
rre_status rre__subscriber_commit(rre_subscriber *s, int64_t upto);
void rre__subscriber_rewind(rre_subscriber *s);
int64_t rre__subscriber_read_pos(const rre_subscriber *s);
int64_t rre__subscriber_cursor(const rre_subscriber *s);

/* Importing events of other hosts (queue_import.c, used by the bridge). An
 * importer has its own connection and serves one thread. Each row keeps
 * the given hostname and source and the payload text as given (the caller
 * checked it is a JSON object within the limits); the content dedup of the
 * queue applies (duplicate set, event_id of the earlier row). A batch and
 * the position `pos` under `pos_name` (NULL: none) are committed in one
 * transaction. */
typedef struct rre__importer rre__importer;
typedef struct rre__import_row {
    const char *spelling; /* queue spelling of the type */
    const char *payload_text;
    size_t payload_len;
    const char *source;
    const char *hostname;
    char *owned; /* the caller's storage behind a field, if any (not touched here) */
    uint8_t hash[RRE_HASH_SIZE];
    int64_t event_id; /* set by the append */
    bool duplicate;   /* set by the append */
} rre__import_row;
rre_status rre__importer_open(rre_queue *q, rre__importer **out);
void rre__importer_close(rre__importer *im);
rre_status rre__importer_append(rre__importer *im, rre__import_row *rows, size_t n,
                                const char *pos_name, int64_t pos);
/* The position recorded under `name`; *found false (and 0) when none. */
rre_status rre__importer_position(rre__importer *im, const char *name, int64_t *out, bool *found);

/* Waits until every pipelined event accepted before the call completed and
 * reports the failures among those numbered after `from` (see
 * rre_queue_flush()); *upto is then the last number it covered. */
rre_status rre__queue_flush_from(rre_queue *q, uint64_t from, int timeout_ms, uint64_t *upto);

/* Starts and stops the maintenance thread. */
rre_status rre__queue_maintenance_start(rre_queue *q);
void rre__queue_maintenance_stop(rre_queue *q);

/* The cross-process wake-up of one subscriber: inotify on the database's
 * directory (writes to the database and its WAL) plus an eventfd to close. */
typedef struct rre__wake {
    int inotify_fd; /* -1 when inotify is unavailable */
    int event_fd;   /* written by rre__wake_signal() */
    char *db_name;
    char *wal_name;
} rre__wake;

rre_status rre__wake_init(rre__wake *w, const char *dir, const char *file_name);
void rre__wake_fini(rre__wake *w);

/* Discards pending change notifications (call before reading). */
void rre__wake_drain(rre__wake *w);

/* Waits up to timeout_ms for a change to the database. Returns 1 on a
 * change, 0 on timeout, -1 when signalled (closed). */
int rre__wake_wait(rre__wake *w, int timeout_ms);

/* Makes every later wait return -1 at once. Async-signal-safe. */
void rre__wake_signal(rre__wake *w);

#endif
