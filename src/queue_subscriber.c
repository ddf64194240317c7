/*
 * queue_subscriber.c - durable subscribers of the SQLite queue: the lease
 * that keeps a name with one live process, the cursor, reading and decoding
 * rows (including rows the Python side wrote), delivery, acknowledgement,
 * poison rows, and waiting for commits.
 *
 * DESIGN: a subscriber has its own connection and is used by one thread at
 * a time (the one calling rre_subscriber_poll()); only `closed` and the wake
 * eventfd are touched by other threads. A poll reads one batch of rows after
 * the cursor into memory and ends the read transaction before any handler
 * runs, so a slow handler never holds back WAL checkpoints. After the
 * handlers it records acks, poison rows and the cursor in one transaction,
 * which also checks that the lease is still ours and refreshes its
 * heartbeat.
 *
 * Retries: a durable subscriber that records progress keeps the events its
 * handler failed on in rre_retries (a copy of each, with its attempt count
 * and due time) and the ones it gave up on in rre_dead_letters, both
 * written in that same transaction. Each poll first reads the due retries
 * of its subscriber; only when there are none does it read new rows (and
 * with strict_order, only when no retry is pending at all).
 */
#include "envelope.h"
#include "queue_sqlite.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* What a delivery decided for its row (recorded by the ack transaction). */
enum outcome {
    OUT_NONE = 0, /* not handed over (the poll stopped first) */
    OUT_DONE,     /* handled, or a failure passed without retries: acknowledge */
    OUT_RETRY,    /* deliver again at due_at */
    OUT_DEAD,     /* move to the dead letters */
};

enum row_kind {
    ROW_DELIVER = 0, /* decoded; goes to the handler */
    ROW_SKIP,        /* filtered out, or older than the retention window */
    ROW_ACKED,       /* a Python consumer of this id acked it already */
    ROW_POISON,      /* cannot be decoded */
    ROW_NOMEM,       /* could not be decoded for want of memory: read again later */
};

struct row {
    int64_t id;
    enum row_kind kind;
    bool handled;
    double created_at;
    char *text; /* held or lazy reading: the payload text (as stored, or made JSON) */
    size_t text_len;
    rre_event ev;
    char *strings; /* source and hostname, one allocation */
    char reason[128];
    /* Retries */
    bool from_retry;        /* read from rre_retries, not from events */
    int attempts;           /* failures counted before this delivery */
    double first_failed_at; /* of a retry row */
    enum outcome outcome;
    int next_attempts; /* failures counted after it */
    double due_at;     /* OUT_RETRY: when to deliver again */
    char *error;       /* the handler's error (OUT_RETRY, OUT_DEAD) */
};

struct rre_subscriber {
    rre_queue *q;
    sqlite3 *db;
    char *id;
    char *name; /* NULL for a transient reader */
    bool durable;
    bool ack;
    int64_t token;
    bool filter;
    bool type_mask[RRE_EVENT_TYPE_COUNT];
    bool category_mask[RRE_CATEGORY_COUNT];
    char *subscribed_types; /* JSON list of queue spellings */
    unsigned batch;
    int64_t cursor;
    /* Held reading (rre__subscriber_read): the position read up to, which
     * runs ahead of the recorded cursor until rre__subscriber_commit(). */
    bool held;
    bool lazy;        /* lazy_payload: rows with a stored hash are not parsed */
    bool python_acks; /* acknowledged events get an acks row (not cursor_only, or
                         the id is found to be Python's) */
    /* The spelling of the type of the last row decoded, and its type: rows
     * of one type often come in runs. */
    char last_type_text[64];
    size_t last_type_len; /* 0: none yet (no type is spelled with no letter) */
    rre_event_type last_type;
    int64_t read_pos;
    char *held_host; /* held reading: only rows of this host are decoded and delivered */
    int64_t last_heartbeat_ms;
    int64_t heartbeat_interval_ms;
    rre__wake wake;
    struct rre__ckpt_asker ckpt; /* its commits' checkpoints */
    atomic_bool closed;
    rre_subscriber_counters counters;
    sqlite3_stmt *st_read;
    struct row *rows;
    size_t rows_cap;
    /* Retries (durable subscribers that record progress) */
    bool retries;
    int max_attempts;
    double retry_delay_s;
    double retry_delay_max_s;
    bool strict_order;
    sqlite3_stmt *st_retry;
    bool retry_pending; /* a retry row exists (as of the last look) */
    double next_due;    /* the earliest due time among those not yet due */
};

static int64_t random_token(void)
{
    int64_t t = 0;
    if (getrandom(&t, sizeof t, 0) != (ssize_t)sizeof t)
        t = (int64_t)getpid() * 1000003 + rre__queue_mono_ms();
    return t;
}

void rre_subscriber_options_init(rre_subscriber_options *opts)
{
    if (opts != NULL)
        memset(opts, 0, sizeof *opts);
}

const char *rre_subscriber_id(const rre_subscriber *s)
{
    return s != NULL ? s->id : NULL;
}

void rre_subscriber_get_counters(const rre_subscriber *s, rre_subscriber_counters *out)
{
    if (s == NULL || out == NULL)
        return;
    *out = s->counters;
    out->cursor = s->cursor;
}

/* ------------------------------------------------------------------------ */
/* The lease                                                                 */
/* ------------------------------------------------------------------------ */

struct lease_ctx {
    rre_subscriber *s;
    double now;
    int64_t cursor;
    bool have_cursor;
};

static bool holder_alive(const rre_subscriber *s, const char *host, long pid, long long start_time,
                         double heartbeat, double now)
{
    if (now - heartbeat > s->q->subscriber_timeout_s)
        return false;
    if (strcmp(host, s->q->hostname) == 0) {
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            return false;
        long long actual = rre__process_start_time(pid);
        if (start_time > 0 && actual > 0 && actual != start_time)
            return false; /* the pid was reused by a later process */
    }
    return true;
}

/* Binds arguments described by `fmt` (t text, i int64, d double) and steps
 * once; returns the step's result code. The statement is finalized. */
static int lease_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    struct lease_ctx *c = vctx;
    rre_subscriber *s = c->s;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT hostname, pid, start_time, heartbeat FROM rre_leases"
                                " WHERE subscriber_id = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *host = (const char *)sqlite3_column_text(st, 0);
        long pid = (long)sqlite3_column_int64(st, 1);
        long long start = sqlite3_column_int64(st, 2);
        double hb = sqlite3_column_double(st, 3);
        if (holder_alive(s, host != NULL ? host : "", pid, start, hb, c->now)) {
            *body_status = rre__error(RRE_EHELD,
                                      "durable subscriber '%s' is held by pid %ld on host '%s' "
                                      "(last heartbeat %.1f s ago)",
                                      s->id, pid, host != NULL ? host : "", c->now - hb);
            sqlite3_finalize(st);
            return SQLITE_ABORT;
        }
        rre__log(RRE_LOG_INFO, "queue", "taking over '%s' from dead pid %ld on host '%s'", s->id,
                 pid, host != NULL ? host : "");
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    rc =
        rre__queue_run(db,
                       "INSERT OR REPLACE INTO rre_leases(subscriber_id, hostname, pid, start_time,"
                       " token, heartbeat) VALUES (?, ?, ?, ?, ?, ?)",
                       "ttiiid", s->id, s->q->hostname, (int64_t)getpid(),
                       (int64_t)s->q->start_time, s->token, c->now);
    if (rc != SQLITE_DONE)
        return rc;
    rc = rre__queue_run(
        db,
        "INSERT INTO subscribers(subscriber_id, process_name, hostname, pid,"
        " subscribed_types, last_poll_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(subscriber_id) DO UPDATE SET process_name = excluded.process_name,"
        " hostname = excluded.hostname, pid = excluded.pid,"
        " subscribed_types = excluded.subscribed_types,"
        " last_poll_at = excluded.last_poll_at",
        "tttitdd", s->id, s->name, s->q->hostname, (int64_t)getpid(), s->subscribed_types, c->now,
        c->now);
    if (rc != SQLITE_DONE)
        return rc;
    rc = sqlite3_prepare_v2(db, "SELECT last_event_id FROM rre_cursors WHERE subscriber_id = ?", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    c->have_cursor = rc == SQLITE_ROW;
    c->cursor = c->have_cursor ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    /* cursor_only: an id with acks rows is a Python consumer's (a
     * cursor_only subscriber writes none until it finds that), so it keeps
     * seeing our progress, across restarts too. */
    if (!s->python_acks) {
        rc = sqlite3_prepare_v2(db, "SELECT 1 FROM acks WHERE subscriber_id = ? LIMIT 1", -1, &st,
                                NULL);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW) {
            s->python_acks = true;
            rre__log(RRE_LOG_INFO, "queue",
                     "'%s' has acks rows: a Python consumer uses the id, and acks rows are "
                     "written for it (cursor_only does not apply)",
                     s->id);
        } else if (rc != SQLITE_DONE) {
            return rc;
        }
    }
    /* A since_id past the stored cursor (or a new subscriber's) is recorded
     * now: a subscriber that stops before its first event must resume
     * there, not at the oldest event. */
    if (s->cursor > c->cursor) {
        rc = rre__queue_run(db,
                            "INSERT INTO rre_cursors(subscriber_id, last_event_id, updated_at)"
                            " VALUES (?, ?, ?) ON CONFLICT(subscriber_id) DO UPDATE SET"
                            " last_event_id = excluded.last_event_id,"
                            " updated_at = excluded.updated_at",
                            "tid", s->id, s->cursor, c->now);
        if (rc != SQLITE_DONE)
            return rc;
        c->cursor = s->cursor;
        c->have_cursor = true;
    }
    return SQLITE_OK;
}

/* Checks the lease is still ours and refreshes the heartbeat; part of every
 * write transaction of a durable subscriber. */
static int heartbeat_in_txn(sqlite3 *db, rre_subscriber *s, double now, rre_status *body_status)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE rre_leases SET heartbeat = ? WHERE subscriber_id = ? AND"
                                " token = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_text(st, 2, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->token);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (sqlite3_changes(db) == 0) {
        /* No lease row of ours. When there is none at all, retention removed
         * it after a long silence and nobody took the name since: take it
         * back. Another row means another process holds the name now. */
        int held = 0;
        rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM rre_leases WHERE subscriber_id = ?", -1,
                                &st, NULL);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            held = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW)
            return rc;
        if (held > 0) {
            *body_status = rre__error(RRE_EHELD,
                                      "durable subscriber '%s' was taken over by another process "
                                      "(this one missed its heartbeat for longer than %.0f s)",
                                      s->id, s->q->subscriber_timeout_s);
            return SQLITE_ABORT;
        }
        rre__log(RRE_LOG_INFO, "queue", "subscriber '%s': its lease had expired; taking it back",
                 s->id);
        rc =
            rre__queue_run(db,
                           "INSERT INTO rre_leases(subscriber_id, hostname, pid, start_time, token,"
                           " heartbeat) VALUES (?, ?, ?, ?, ?, ?)",
                           "ttiiid", s->id, s->q->hostname, (int64_t)getpid(),
                           (int64_t)s->q->start_time, s->token, now);
        if (rc != SQLITE_DONE)
            return rc;
    }
    rc = rre__queue_run(db, "UPDATE subscribers SET last_poll_at = ? WHERE subscriber_id = ?", "dt",
                        now, s->id);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int heartbeat_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    rre_subscriber *s = vctx;
    return heartbeat_in_txn(db, s, rre__queue_now(), body_status);
}

static rre_status heartbeat_if_due(rre_subscriber *s)
{
    if (!s->ack)
        return RRE_OK;
    int64_t now = rre__queue_mono_ms();
    if (now - s->last_heartbeat_ms < s->heartbeat_interval_ms)
        return RRE_OK;
    rre_status st =
        rre__queue_write_txn(s->q, s->db, "refreshing the subscriber lease", heartbeat_body, s);
    if (st == RRE_OK)
        s->last_heartbeat_ms = now;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Creating and destroying                                                   */
/* ------------------------------------------------------------------------ */

static rre_status set_filters(rre_subscriber *s, const rre_subscriber_options *o)
{
    json_t *list = json_array();
    if (list == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->type_count; i++) {
        const rre_event_info *info = rre_event_get(o->types[i]);
        if (info == NULL) {
            json_decref(list);
            return rre__error(RRE_EUNKNOWN_TYPE, "subscriber filter: unknown event type %d",
                              (int)o->types[i]);
        }
        rre_event_type t = info->alias_of != RRE_EV_NONE ? info->alias_of : info->type;
        s->type_mask[t] = true;
        s->filter = true;
        json_array_append_new(list, json_string(rre_event_get(t)->queue_spelling));
    }
    for (size_t i = 0; i < o->category_count; i++) {
        if ((int)o->categories[i] < 0 || o->categories[i] >= RRE_CATEGORY_COUNT) {
            json_decref(list);
            return rre__error(RRE_ECATEGORY, "subscriber filter: unknown category %d",
                              (int)o->categories[i]);
        }
        s->category_mask[o->categories[i]] = true;
        s->filter = true;
    }
    s->subscribed_types = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (s->subscribed_types == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    return RRE_OK;
}

/* The read of new rows. An event a Python consumer of the same id
 * acknowledged is passed; the acks are looked up only for events up to the
 * highest id acknowledged under this id (a subquery SQLite evaluates once per
 * read; a CASE, since SQLite evaluates both sides of an AND in a result
 * column), so a subscriber whose acks are all its own, behind its cursor, pays
 * no lookup per row. The content hash stored with rows this library
 * wrote saves recomputing it (rows of other writers have none); a file
 * opened read-only that lacks the table of hashes (written only by the
 * Python side, or by an earlier release) is read without them. */
static rre_status prepare_read(rre_subscriber *s)
{
    static const char *const sql[2][2] = {
        {"SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at,"
         " CASE WHEN e.event_id <= (SELECT max(m.event_id) FROM acks m WHERE m.subscriber_id ="
         " ?1) THEN EXISTS (SELECT 1 FROM acks a WHERE a.subscriber_id = ?1 AND a.event_id ="
         " e.event_id) ELSE 0 END, d.hash FROM events e LEFT JOIN rre_hashes d ON d.event_id = "
         "e.event_id"
         " WHERE e.event_id > ?2 ORDER BY e.event_id LIMIT ?3",
         "SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at,"
         " CASE WHEN e.event_id <= (SELECT max(m.event_id) FROM acks m WHERE m.subscriber_id ="
         " ?1) THEN EXISTS (SELECT 1 FROM acks a WHERE a.subscriber_id = ?1 AND a.event_id ="
         " e.event_id) ELSE 0 END, NULL FROM events e WHERE e.event_id > ?2 ORDER BY e.event_id "
         "LIMIT ?3"},
        {"SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at, 0,"
         " d.hash FROM events e LEFT JOIN rre_hashes d ON d.event_id = e.event_id"
         " WHERE e.event_id > ?2 ORDER BY e.event_id LIMIT ?3",
         "SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at, 0,"
         " NULL FROM events e WHERE e.event_id > ?2 ORDER BY e.event_id LIMIT ?3"}};
    int kind = s->durable ? 0 : 1;
    bool hashes = true;
    if (s->q->read_only) {
        sqlite3_stmt *t = NULL;
        hashes = sqlite3_prepare_v2(s->db, "SELECT 1 FROM rre_hashes LIMIT 0", -1, &t, NULL) ==
                 SQLITE_OK;
        sqlite3_finalize(t);
    }
    return rre__queue_prepare(s->db, sql[kind][hashes ? 0 : 1], &s->st_read);
}

rre_status rre_subscriber_create(rre_subscriber **out, rre_queue *q,
                                 const rre_subscriber_options *opts)
{
    if (out == NULL || q == NULL)
        return rre__error(RRE_EINVAL, "rre_subscriber_create: out and q must not be NULL");
    *out = NULL;
    rre_subscriber_options defaults;
    rre_subscriber_options_init(&defaults);
    if (opts == NULL)
        opts = &defaults;
    if (!(opts->retry_delay_s >= 0 && opts->retry_delay_s <= 1e9) ||
        !(opts->retry_delay_max_s >= 0 && opts->retry_delay_max_s <= 1e9))
        return rre__error(RRE_EINVAL, "retry delays must be between 0 and 1e9 seconds");
    if (opts->name != NULL) {
        if (opts->name[0] == '\0')
            return rre__error(RRE_EINVAL, "a durable subscriber name must not be empty");
        if (!rre__utf8_valid(opts->name, strlen(opts->name)))
            return rre__error(RRE_EINVAL, "the subscriber name is not valid UTF-8");
        if (strchr(opts->name, '/') != NULL)
            return rre__error(RRE_EINVAL,
                              "the subscriber name '%s' contains '/': ids with a '/' name the "
                              "handlers of a linked router ('<link id>/<handler>')",
                              opts->name);
        if (strcmp(opts->name, RRE_QUEUE_RESERVED_NAME) == 0)
            return rre__error(RRE_EINVAL,
                              "the subscriber name '%s' is reserved: '<host>:stable:%s' is the "
                              "Python router's id, and sharing it would split its events",
                              RRE_QUEUE_RESERVED_NAME, RRE_QUEUE_RESERVED_NAME);
        if (q->read_only && !opts->no_ack)
            return rre__error(RRE_EREADONLY, "a durable subscriber that acknowledges needs a "
                                             "writable queue (use no_ack on a read-only one)");
    }
    rre_subscriber *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    s->q = q;
    s->wake.inotify_fd = s->wake.event_fd = -1;
    atomic_init(&s->closed, false);
    s->durable = opts->name != NULL;
    s->ack = s->durable && !opts->no_ack;
    s->lazy = opts->lazy_payload;
    s->python_acks = !opts->cursor_only;
    s->token = random_token();
    s->batch = opts->batch > 0 ? opts->batch : opts->lazy_payload ? 1024 : 256;
    s->retries = s->ack && opts->max_attempts >= 0;
    s->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
    s->retry_delay_s = opts->retry_delay_s > 0 ? opts->retry_delay_s : 2.0;
    s->retry_delay_max_s = opts->retry_delay_max_s > 0 ? opts->retry_delay_max_s : 300.0;
    if (s->retry_delay_max_s < s->retry_delay_s)
        s->retry_delay_max_s = s->retry_delay_s;
    s->strict_order = opts->strict_order;
    s->cursor = opts->since_id > 0 ? opts->since_id : 0;
    double hb = s->q->subscriber_timeout_s * 1000.0 / 5.0;
    s->heartbeat_interval_ms = hb < 200 ? 200 : hb > 30000 ? 30000 : (int64_t)hb;
    char idbuf[512];
    if (s->durable)
        snprintf(idbuf, sizeof idbuf, "%s:stable:%s", q->hostname, opts->name);
    else
        snprintf(idbuf, sizeof idbuf, "%s:%ld:reader", q->hostname, (long)getpid());
    s->id = strdup(idbuf);
    s->name = s->durable ? strdup(opts->name) : NULL;
    rre_status st = RRE_OK;
    if (s->id == NULL || (s->durable && s->name == NULL))
        st = rre__error(RRE_ENOMEM, "out of memory");
    if (st == RRE_OK)
        st = set_filters(s, opts);
    if (st == RRE_OK)
        st = rre__wake_init(&s->wake, q->dir, q->file_name);
    if (st == RRE_OK)
        st = rre__queue_connect(q, &s->db, 256);
    if (st == RRE_OK)
        rre__queue_hook_checkpoints(s->db, &s->ckpt, q);
    if (st == RRE_OK)
        st = prepare_read(s);
    /* Due retries: earliest due first; in strict order, lowest event id
     * first (the read stops at the first one not due, so none passes it).
     * Rows another program stored with an event id that is not an integer
     * could never be cleared, and are left alone. */
    if (st == RRE_OK && s->retries)
        st = rre__queue_prepare(s->db,
                                s->strict_order
                                    ? "SELECT event_id, event_type, payload, source, hostname,"
                                      " created_at, 0, attempts, first_failed_at, due_at FROM"
                                      " rre_retries WHERE subscriber_id = ?1 AND typeof(event_id)"
                                      " = 'integer' ORDER BY event_id LIMIT ?2"
                                    : "SELECT event_id, event_type, payload, source, hostname,"
                                      " created_at, 0, attempts, first_failed_at, due_at FROM"
                                      " rre_retries WHERE subscriber_id = ?1 AND typeof(event_id)"
                                      " = 'integer' ORDER BY due_at, event_id LIMIT ?2",
                                &s->st_retry);
    if (st == RRE_OK && s->ack) {
        struct lease_ctx c = {s, rre__queue_now(), 0, false};
        st = rre__queue_write_txn(q, s->db, "taking the subscriber lease", lease_body, &c);
        if (st == RRE_OK) {
            if (c.cursor > s->cursor)
                s->cursor = c.cursor;
            s->last_heartbeat_ms = rre__queue_mono_ms();
        }
    } else if (st == RRE_OK && s->durable) {
        /* no_ack: start from the stored cursor without taking the lease. */
        sqlite3_stmt *cs = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "SELECT last_event_id FROM rre_cursors WHERE subscriber_id = ?", -1,
                               &cs, NULL) == SQLITE_OK) {
            sqlite3_bind_text(cs, 1, s->id, -1, SQLITE_STATIC);
            if (sqlite3_step(cs) == SQLITE_ROW && sqlite3_column_int64(cs, 0) > s->cursor)
                s->cursor = sqlite3_column_int64(cs, 0);
        }
        sqlite3_finalize(cs);
    }
    if (st != RRE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rre_last_error());
        s->ack = false; /* no lease to release */
        rre_subscriber_destroy(s);
        return rre__error(st, "%s", msg);
    }
    *out = s;
    return RRE_OK;
}

static int release_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    rre_subscriber *s = vctx;
    int rc = rre__queue_run(db, "DELETE FROM rre_leases WHERE subscriber_id = ? AND token = ?",
                            "ti", s->id, s->token);
    if (rc != SQLITE_DONE)
        return rc;
    rc = rre__queue_run(db, "UPDATE subscribers SET last_poll_at = ? WHERE subscriber_id = ?", "dt",
                        rre__queue_now(), s->id);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void rre_subscriber_close(rre_subscriber *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->closed, true);
    if (s->wake.event_fd >= 0)
        rre__wake_signal(&s->wake);
}

static void free_rows(rre_subscriber *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(s->rows[i].ev.payload);
        s->rows[i].ev.payload = NULL;
        free(s->rows[i].strings);
        s->rows[i].strings = NULL;
        free(s->rows[i].text);
        s->rows[i].text = NULL;
        free(s->rows[i].error);
        s->rows[i].error = NULL;
    }
}

void rre_subscriber_destroy(rre_subscriber *s)
{
    if (s == NULL)
        return;
    if (s->ack && s->db != NULL) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", rre_last_error());
        if (rre__queue_write_txn(s->q, s->db, "releasing the subscriber lease", release_body, s) !=
            RRE_OK)
            rre__log(RRE_LOG_WARN, "queue", "could not release the lease of '%s': %s", s->id,
                     rre_last_error());
        rre__error(RRE_OK, "%s", saved);
    }
    sqlite3_finalize(s->st_read);
    sqlite3_finalize(s->st_retry);
    sqlite3_close(s->db);
    rre__wake_fini(&s->wake);
    free(s->rows);
    free(s->subscribed_types);
    free(s->held_host);
    free(s->id);
    free(s->name);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Decoding rows                                                             */
/* ------------------------------------------------------------------------ */

/* Python's json.dumps writes NaN, Infinity and -Infinity, which are not
 * JSON. Returns a copy of `text` with those tokens (outside strings) turned
 * into null, or NULL when there is none (or no memory). */
static char *replace_non_finite(const char *text, size_t len, size_t *out_len)
{
    /* "NaN" (3 bytes) becomes "null" (4): the text grows by at most a third. */
    char *out = malloc(len + len / 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    bool in_string = false, changed = false;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len) {
                out[o++] = text[i + 1];
                i += 2;
                continue;
            }
            if (c == '"')
                in_string = false;
            i++;
            continue;
        }
        if (c == '"') {
            in_string = true;
            out[o++] = c;
            i++;
            continue;
        }
        static const char *const tokens[] = {"-Infinity", "Infinity", "NaN"};
        bool replaced = false;
        for (size_t k = 0; k < 3; k++) {
            size_t tl = strlen(tokens[k]);
            if (len - i >= tl && memcmp(text + i, tokens[k], tl) == 0) {
                memcpy(out + o, "null", 4);
                o += 4;
                i += tl;
                replaced = changed = true;
                break;
            }
        }
        if (!replaced)
            out[o++] = text[i++];
    }
    if (!changed) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* 10000-01-01T00:00:00Z: created_at must be below it. */
#define CREATED_AT_MAX 253402300800.0

static void format_created_at(double created_at, char out[RRE_TIMESTAMP_MAX])
{
    if (!(created_at >= 0 && created_at < CREATED_AT_MAX))
        created_at = 0; /* rows are checked before; never convert out of range */
    int64_t secs = (int64_t)created_at;
    int64_t micros = (int64_t)((created_at - (double)secs) * 1e6 + 0.5);
    rre__timestamp_format(secs * 1000000 + micros, out);
}

/* Sets the envelope time and trace of a delivered event from the payload's
 * "timestamp" and "trace_id" (NULL when absent). A timestamp is taken only
 * when it is an ISO 8601 date-time, and given in the one RFC 3339 form
 * ("2026-01-02T03:04:05.000000Z"); otherwise the row's created_at stands
 * in. A trace id is taken only when it is a W3C traceparent (lower-cased);
 * otherwise there is none. So what readers, `rre tail` and the bridge pass
 * on is always well-formed, whatever a writer stored. */
static void set_envelope(rre_event *ev, const char *ts, const char *tr, double created_at)
{
    int64_t us;
    if (ts != NULL && rre__timestamp_parse(ts, &us) && us >= 0 &&
        us < (int64_t)CREATED_AT_MAX * 1000000)
        rre__timestamp_format(us, ev->timestamp);
    else
        format_created_at(created_at, ev->timestamp);
    struct rre__trace trace;
    if (tr != NULL && strlen(tr) == RRE_TRACE_ID_MAX - 1 && rre__trace_parse(tr, &trace))
        rre__trace_format(&trace, ev->trace_id);
    else
        ev->trace_id[0] = '\0';
}

/* Finds the top-level string members "timestamp" and "trace_id" of the JSON
 * object text p[0..len) without parsing the rest: the text is known to be
 * valid JSON. A value with escapes, or too long, is not taken. */
static void scan_envelope(const char *p, size_t len, char ts[RRE_TIMESTAMP_MAX],
                          char tr[RRE_TRACE_ID_MAX])
{
    const char *end = p + len, *key = NULL;
    size_t key_len = 0;
    int depth = 0;
    bool expect_key = false;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            const char *start = ++p;
            bool escaped = false;
            while (p < end && *p != '"') {
                if (*p == '\\') {
                    escaped = true;
                    p++;
                }
                p++;
            }
            size_t n = (size_t)(p - start);
            p++;
            if (depth != 1)
                continue;
            if (expect_key) {
                key = start;
                key_len = n;
                expect_key = false;
            } else if (key != NULL && !escaped) {
                if (key_len == 9 && memcmp(key, "timestamp", 9) == 0 && n < RRE_TIMESTAMP_MAX) {
                    memcpy(ts, start, n);
                    ts[n] = '\0';
                } else if (key_len == 8 && memcmp(key, "trace_id", 8) == 0 &&
                           n < RRE_TRACE_ID_MAX) {
                    memcpy(tr, start, n);
                    tr[n] = '\0';
                }
                key = NULL;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            if (depth == 1)
                expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = true;
            key = NULL;
        }
        p++;
    }
}

/* Copies source and hostname of the current row into r->strings and points
 * the event at them. False when out of memory. */
static bool row_strings(sqlite3_stmt *st, struct row *r)
{
    const char *src = (const char *)sqlite3_column_text(st, 3);
    const char *host = (const char *)sqlite3_column_text(st, 4);
    src = src != NULL ? src : "";
    host = host != NULL ? host : "";
    /* Another writer may have stored bytes that are not UTF-8 (this library
     * never does): such a row is delivered with each bad byte replaced by
     * U+FFFD, so no output format and no reader has to refuse it. */
    char *fixed_src = NULL, *fixed_host = NULL;
    if (!rre__utf8_valid(src, strlen(src))) {
        if ((fixed_src = rre__utf8_repair(src)) == NULL)
            return false;
        src = fixed_src;
    }
    if (!rre__utf8_valid(host, strlen(host))) {
        if ((fixed_host = rre__utf8_repair(host)) == NULL) {
            free(fixed_src);
            return false;
        }
        host = fixed_host;
    }
    size_t ls = strlen(src), lh = strlen(host);
    r->strings = malloc(ls + lh + 2);
    if (r->strings != NULL) {
        memcpy(r->strings, src, ls + 1);
        memcpy(r->strings + ls + 1, host, lh + 1);
        r->ev.source = r->strings;
        r->ev.hostname = r->strings + ls + 1;
    }
    free(fixed_src);
    free(fixed_host);
    return r->strings != NULL;
}

/* Held or lazy reading of a row whose content hash is stored (one this
 * library wrote or imported, so its payload was checked then): the text is
 * kept as it is, not parsed; the envelope fields are found by a scan. False
 * when out of memory. */
static bool decode_known_unparsed(rre_subscriber *s, sqlite3_stmt *st, struct row *r,
                                  rre_event_type type, const char *text, size_t len)
{
    r->text = malloc(len + 1);
    if (r->text == NULL || !row_strings(st, r)) {
        free(r->text);
        r->text = NULL;
        return false;
    }
    memcpy(r->text, text, len);
    r->text[len] = '\0';
    r->text_len = len;
    rre_event *ev = &r->ev;
    ev->type = type;
    ev->payload = NULL;
    ev->payload_text = s->lazy || s->held ? r->text : NULL;
    ev->payload_len = s->lazy || s->held ? len : 0;
    ev->event_id = r->id;
    ev->origin = strcmp(ev->hostname, s->q->hostname) != 0 && ev->hostname[0] != '\0'
                     ? RRE_ORIGIN_HOST
                     : RRE_ORIGIN_PROCESS;
    memcpy(ev->hash, sqlite3_column_blob(st, 7), RRE_HASH_SIZE);
    char ts[RRE_TIMESTAMP_MAX] = "", tr[RRE_TRACE_ID_MAX] = "";
    scan_envelope(text, len, ts, tr);
    set_envelope(ev, ts[0] != '\0' ? ts : NULL, tr[0] != '\0' ? tr : NULL, r->created_at);
    return true;
}

/* Decodes the current row of st_read into r. */
static void decode_row(rre_subscriber *s, sqlite3_stmt *st, struct row *r, double oldest)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->kind = ROW_DELIVER;
    if (sqlite3_column_int(st, 6) != 0) {
        r->kind = ROW_ACKED;
        if (!s->python_acks && s->ack) {
            s->python_acks = true;
            rre__log(RRE_LOG_WARN, "queue",
                     "another consumer of '%s' acknowledged event %lld: a Python consumer shares "
                     "the id, and acks rows are written from now on (cursor_only does not apply)",
                     s->id, (long long)r->id);
        }
        return;
    }
    /* created_at as another writer may have stored it: numeric text is read
     * as its number; anything else that is not a real time (a word, a blob,
     * NULL, NaN, infinities, years past 9999 or before 1970) sets the row
     * aside as a poison row, reported, instead of printing an impossible
     * date or passing it as expired without a word. */
    int ctype = sqlite3_column_type(st, 5);
    double created_at = sqlite3_column_double(st, 5);
    if (ctype == SQLITE_TEXT) {
        const char *t = (const char *)sqlite3_column_text(st, 5);
        char *end = NULL;
        created_at = t != NULL ? strtod(t, &end) : 0;
        if (t == NULL || end == t || *end != '\0')
            ctype = SQLITE_NULL;
    }
    r->created_at = created_at;
    if ((ctype != SQLITE_INTEGER && ctype != SQLITE_FLOAT && ctype != SQLITE_TEXT) ||
        !(created_at >= 0 && created_at < CREATED_AT_MAX)) {
        r->kind = ROW_POISON;
        snprintf(r->reason, sizeof r->reason, "created_at is not a time in seconds since 1970");
        return;
    }
    if (created_at < oldest) {
        r->kind = ROW_SKIP;
        return;
    }
    if (s->held_host != NULL) {
        /* Rows of other hosts are passed without being decoded. */
        const char *h = (const char *)sqlite3_column_text(st, 4);
        if (h == NULL || strcmp(h, s->held_host) != 0) {
            r->kind = ROW_SKIP;
            return;
        }
    }
    const char *type_text = (const char *)sqlite3_column_text(st, 1);
    int type_len = sqlite3_column_bytes(st, 1);
    rre_event_type type = s->last_type;
    if (type_text != NULL && type_len > 0 && (size_t)type_len == s->last_type_len &&
        memcmp(type_text, s->last_type_text, (size_t)type_len) == 0) {
        /* the type of the row before */
    } else if (type_text == NULL ||
               rre_event_lookup_n(type_text, (size_t)type_len, &type) != RRE_OK) {
        r->kind = ROW_POISON;
        snprintf(r->reason, sizeof r->reason, "unknown event type '%.60s'",
                 type_text != NULL ? type_text : "");
        return;
    } else if ((size_t)type_len <= sizeof s->last_type_text) {
        memcpy(s->last_type_text, type_text, (size_t)type_len);
        s->last_type_len = (size_t)type_len;
        s->last_type = type;
    }
    if (s->filter && !s->type_mask[type] && !s->category_mask[rre_event_get(type)->category]) {
        r->kind = ROW_SKIP;
        return;
    }
    const char *text = (const char *)sqlite3_column_text(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    /* A row this library stored (its hash is stored with it) is kept as
     * text: a lazy or held reader hands the text over, and the others parse
     * it when they deliver it, so a batch holds texts, not parsed
     * payloads, and a consumer's memory one payload at a time. */
    if (text != NULL && sqlite3_column_type(st, 7) == SQLITE_BLOB &&
        sqlite3_column_bytes(st, 7) == RRE_HASH_SIZE) {
        if (!decode_known_unparsed(s, st, r, type, text, len))
            r->kind = ROW_NOMEM;
        return;
    }
    json_t *payload = NULL;
    rre_status pst = rre_payload_parse(text != NULL ? text : "", text != NULL ? len : 0, &payload);
    if (pst == RRE_OK && (s->held || s->lazy) && text != NULL) {
        r->text = malloc(len + 1);
        if (r->text == NULL) {
            json_decref(payload);
            r->kind = ROW_NOMEM;
            return;
        }
        memcpy(r->text, text, len);
        r->text[len] = '\0';
        r->text_len = len;
    }
    if (pst == RRE_EJSON && text != NULL) {
        size_t fixed_len;
        char *fixed = replace_non_finite(text, len, &fixed_len);
        if (fixed != NULL) {
            pst = rre_payload_parse(fixed, fixed_len, &payload);
            if (pst == RRE_OK && s->lazy) { /* the text handed over is JSON */
                r->text = fixed;
                r->text_len = fixed_len;
            } else {
                free(fixed);
            }
        }
    }
    if (pst == RRE_ENOMEM) {
        r->kind = ROW_NOMEM; /* a shortage is not a property of the row */
        return;
    }
    if (pst != RRE_OK) {
        r->kind = ROW_POISON;
        snprintf(r->reason, sizeof r->reason, "%s: %.100s", rre_strerror(pst), rre_last_error());
        return;
    }
    if (!row_strings(st, r)) {
        json_decref(payload);
        free(r->text);
        r->text = NULL;
        r->kind = ROW_NOMEM;
        return;
    }
    const char *host = r->ev.hostname;
    rre_event *ev = &r->ev;
    ev->type = type;
    ev->payload = payload;
    ev->payload_text = s->lazy ? r->text : NULL;
    ev->payload_len = s->lazy ? r->text_len : 0;
    ev->event_id = r->id;
    /* A row written under another host's name came through the bridge. */
    ev->origin =
        host[0] != '\0' && strcmp(host, s->q->hostname) != 0 ? RRE_ORIGIN_HOST : RRE_ORIGIN_PROCESS;
    set_envelope(ev, json_string_value(json_object_get(payload, "timestamp")),
                 json_string_value(json_object_get(payload, "trace_id")), created_at);
    if (sqlite3_column_type(st, 7) == SQLITE_BLOB && sqlite3_column_bytes(st, 7) == RRE_HASH_SIZE)
        memcpy(ev->hash, sqlite3_column_blob(st, 7), RRE_HASH_SIZE);
    else if (rre_content_hash(type, payload, ev->hash) != RRE_OK)
        memset(ev->hash, 0, sizeof ev->hash);
}

/* Room for `limit` rows in s->rows; false when out of memory. */
static bool rows_for(rre_subscriber *s, size_t limit)
{
    if (s->rows_cap >= limit)
        return true;
    struct row *nr = realloc(s->rows, limit * sizeof *nr);
    if (nr == NULL)
        return false;
    s->rows = nr;
    s->rows_cap = limit;
    return true;
}

/* Reads up to `limit` rows after the cursor. */
static rre_status read_rows(rre_subscriber *s, size_t limit, size_t *n_out)
{
    *n_out = 0;
    if (!rows_for(s, limit))
        return rre__error(RRE_ENOMEM, "out of memory");
    double oldest = rre__queue_now() - s->q->retention_s;
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = s->st_read;
        if (s->durable)
            sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, s->held ? s->read_pos : s->cursor);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        size_t n = 0;
        int rc;
        bool nomem = false;
        while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            decode_row(s, st, &s->rows[n], oldest);
            if (s->rows[n].kind == ROW_NOMEM) {
                /* Deliver what came before; this row is read again by
                 * the next poll, nothing is skipped or acknowledged. */
                nomem = true;
                rc = SQLITE_DONE;
                break;
            }
            n++;
        }
        if (n == limit)
            rc = SQLITE_DONE;
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            *n_out = n;
            if (nomem && n == 0)
                return rre__error(RRE_ENOMEM,
                                  "out of memory decoding an event of the queue; it is read "
                                  "again by the next poll");
            return RRE_OK;
        }
        free_rows(s, n);
        if (!rre__queue_is_busy(rc) || attempt > 20000)
            return rre__queue_sqlite_error(s->db, rc, "reading the queue");
        rre__queue_backoff(attempt);
    }
}

/* Reads up to `limit` due retries of the subscriber into s->rows, and
 * notes whether others are pending and when the first of them is due. */
static rre_status read_retries(rre_subscriber *s, size_t limit, size_t *n_out)
{
    *n_out = 0;
    if (!rows_for(s, limit))
        return rre__error(RRE_ENOMEM, "out of memory");
    double now = rre__queue_now();
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = s->st_retry;
        sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
        size_t n = 0;
        int rc;
        bool pending = false, nomem = false;
        double next_due = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            pending = true;
            double due = sqlite3_column_double(st, 9);
            if (due > now || n == limit) {
                next_due = due;
                rc = SQLITE_DONE;
                break;
            }
            struct row *r = &s->rows[n];
            /* A retry is delivered whatever its age: retention is for
             * events, and this is a copy. */
            decode_row(s, st, r, -1.0);
            if (r->kind == ROW_NOMEM) {
                nomem = true;
                rc = SQLITE_DONE;
                break;
            }
            r->from_retry = true;
            /* A count another program stored may be anything. */
            int64_t attempts = sqlite3_column_int64(st, 7);
            r->attempts = attempts < 0                 ? 0
                          : attempts > s->max_attempts ? s->max_attempts
                                                       : (int)attempts;
            r->first_failed_at = sqlite3_column_double(st, 8);
            n++;
        }
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            *n_out = n;
            s->retry_pending = pending;
            s->next_due = n > 0 ? now : next_due;
            if (nomem && n == 0)
                return rre__error(RRE_ENOMEM, "out of memory decoding a retry; it is read again "
                                              "by the next poll");
            return RRE_OK;
        }
        free_rows(s, n);
        if (!rre__queue_is_busy(rc) || attempt > 20000)
            return rre__queue_sqlite_error(s->db, rc, "reading the retries");
        rre__queue_backoff(attempt);
    }
}

/* ------------------------------------------------------------------------ */
/* Acknowledging                                                             */
/* ------------------------------------------------------------------------ */

struct ack_ctx {
    rre_subscriber *s;
    size_t n;
    int64_t cursor;
    bool *poison_new; /* per row: the poison record is new (log it) */
};

/* Moves the subscriber's recorded cursor forward to `cursor` (never back),
 * inside a write transaction. */
static int record_cursor(sqlite3 *db, rre_subscriber *s, int64_t cursor, double now)
{
    int rc = rre__queue_run(db,
                            "INSERT INTO rre_cursors(subscriber_id, last_event_id, updated_at)"
                            " VALUES (?, ?, ?) ON CONFLICT(subscriber_id) DO UPDATE SET"
                            " last_event_id = max(last_event_id, excluded.last_event_id),"
                            " updated_at = excluded.updated_at",
                            "tid", s->id, cursor, now);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Records what became of one row that failed or was retried. */
static int record_retry_outcome(sqlite3 *db, rre_subscriber *s, struct row *r, double now)
{
    const char *err = r->error != NULL ? r->error : r->reason;
    int rc = SQLITE_DONE;
    if (!r->from_retry) {
        /* A new row: the copy comes from what was decoded, so nothing but
         * valid UTF-8 is stored whatever the row held (a row delivered
         * unparsed is one this library checked when it stored it). */
        char *payload = r->ev.payload != NULL ? json_dumps(r->ev.payload, JSON_COMPACT)
                                              : strndup(r->text, r->text_len);
        if (payload == NULL)
            return SQLITE_NOMEM;
        if (r->outcome == OUT_RETRY)
            rc = rre__queue_run(
                db,
                "INSERT INTO rre_retries(subscriber_id, event_id, event_type, payload,"
                " source, hostname, created_at, attempts, first_failed_at, due_at,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                " (subscriber_id, event_id) DO UPDATE SET attempts ="
                " max(attempts, excluded.attempts), due_at = excluded.due_at,"
                " error = excluded.error",
                "tittttdiddt", s->id, r->id, rre_event_name(r->ev.type), payload, r->ev.source,
                r->ev.hostname, r->created_at, (int64_t)r->next_attempts, now, r->due_at, err);
        else
            rc = rre__queue_run(db,
                                "INSERT INTO rre_dead_letters(subscriber_id, event_id, event_type,"
                                " payload, source, hostname, created_at, attempts, first_failed_at,"
                                " dead_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                "tittttdiddt", s->id, r->id, rre_event_name(r->ev.type), payload,
                                r->ev.source, r->ev.hostname, r->created_at,
                                (int64_t)r->next_attempts, now, now, err);
        free(payload);
        return rc;
    }
    switch (r->outcome) {
    case OUT_RETRY:
        return rre__queue_run(db,
                              "UPDATE rre_retries SET attempts = ?, due_at = ?, error = ?"
                              " WHERE subscriber_id = ? AND event_id = ?",
                              "idtti", (int64_t)r->next_attempts, r->due_at, err, s->id, r->id);
    case OUT_DEAD:
        rc = rre__queue_run(
            db,
            "INSERT INTO rre_dead_letters(subscriber_id, event_id, event_type, payload,"
            " source, hostname, created_at, attempts, first_failed_at, dead_at, error)"
            " SELECT subscriber_id, event_id, event_type, payload, source, hostname,"
            " created_at, ?, first_failed_at, ?, ? FROM rre_retries"
            " WHERE subscriber_id = ? AND event_id = ?",
            "idtti", (int64_t)r->next_attempts, now, err, s->id, r->id);
        if (rc != SQLITE_DONE)
            return rc;
        return rre__queue_run(db,
                              "DELETE FROM rre_retries WHERE subscriber_id = ? AND event_id = ?",
                              "ti", s->id, r->id);
    default: /* done: the retry is over */
        return rre__queue_run(db,
                              "DELETE FROM rre_retries WHERE subscriber_id = ? AND event_id = ?",
                              "ti", s->id, r->id);
    }
}

static int ack_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    struct ack_ctx *c = vctx;
    rre_subscriber *s = c->s;
    double now = rre__queue_now();
    int rc = heartbeat_in_txn(db, s, now, body_status);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *ack = NULL, *poison = NULL;
    rc = sqlite3_prepare_v3(db,
                            "INSERT OR IGNORE INTO acks(subscriber_id, event_id, acked_at)"
                            " VALUES (?, ?, ?)",
                            -1, SQLITE_PREPARE_PERSISTENT, &ack, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT OR IGNORE INTO rre_poison(event_id, reason, first_seen)"
                                " VALUES (?, ?, ?)",
                                -1, &poison, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < c->n; i++) {
        struct row *r = &s->rows[i];
        if (r->from_retry) {
            /* A retry row: its event is past the cursor already. */
            if (r->kind == ROW_POISON) {
                r->outcome = OUT_DEAD;
                r->next_attempts = r->attempts;
            } else if (r->kind == ROW_SKIP) {
                /* The subscriber no longer takes this type: kept where an
                 * operator sees it, not dropped. */
                r->outcome = OUT_DEAD;
                r->next_attempts = r->attempts;
                snprintf(r->reason, sizeof r->reason,
                         "the subscriber's filter no longer takes this type");
            }
            if (r->outcome == OUT_NONE)
                continue;
            if (r->outcome != OUT_RETRY && s->python_acks) {
                sqlite3_bind_text(ack, 1, s->id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ack, 2, r->id);
                sqlite3_bind_double(ack, 3, now);
                rc = sqlite3_step(ack);
                sqlite3_reset(ack);
                if (rc != SQLITE_DONE)
                    break;
            }
            rc = record_retry_outcome(db, s, r, now);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
            continue;
        }
        if (r->id > c->cursor)
            break;
        if (r->kind == ROW_POISON) {
            sqlite3_bind_int64(poison, 1, r->id);
            sqlite3_bind_text(poison, 2, r->reason, -1, SQLITE_STATIC);
            sqlite3_bind_double(poison, 3, now);
            rc = sqlite3_step(poison);
            sqlite3_reset(poison);
            if (rc != SQLITE_DONE)
                break;
            rc = SQLITE_OK;
            c->poison_new[i] = sqlite3_changes(db) > 0;
        }
        if (r->kind == ROW_DELIVER && (r->outcome == OUT_RETRY || r->outcome == OUT_DEAD)) {
            rc = record_retry_outcome(db, s, r, now);
            if (rc != SQLITE_DONE)
                break;
            rc = SQLITE_OK;
        }
        if (s->python_acks && ((r->kind == ROW_DELIVER && r->handled && r->outcome != OUT_RETRY) ||
                               r->kind == ROW_POISON)) {
            sqlite3_bind_text(ack, 1, s->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ack, 2, r->id);
            sqlite3_bind_double(ack, 3, now);
            rc = sqlite3_step(ack);
            sqlite3_reset(ack);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
    }
    sqlite3_finalize(ack);
    sqlite3_finalize(poison);
    if (rc != SQLITE_OK)
        return rc;
    return record_cursor(db, s, c->cursor, now);
}

/* Whether a transient reader should report a poison row (not yet recorded
 * by a writer that reported it). */
static bool poison_known(rre_subscriber *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    bool known = false;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM rre_poison WHERE event_id = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        known = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return known;
}

/* ------------------------------------------------------------------------ */
/* Polling                                                                   */
/* ------------------------------------------------------------------------ */

static bool is_closed(rre_subscriber *s)
{
    if (atomic_load(&s->closed))
        return true;
    rre__queue_lock(&s->q->mu);
    bool closed = s->q->closed;
    rre__queue_unlock(&s->q->mu);
    return closed;
}

/* Decides what becomes of a delivered row from its handler's status. */
static void judge(rre_subscriber *s, struct row *r, rre_status hst)
{
    r->outcome = OUT_DONE;
    if (hst == RRE_OK)
        return;
    const char *detail = rre_last_error()[0] != '\0' ? rre_last_error() : rre_strerror(hst);
    const char *name = rre_event_name(r->ev.type);
    if (hst != RRE_ERETRY_LATER)
        s->counters.handler_failed++;
    if (!s->retries) {
        rre__log(RRE_LOG_WARN, "queue",
                 "subscriber '%s': the handler failed on event %lld (%s): %s", s->id,
                 (long long)r->id, name, detail);
        return;
    }
    size_t len = strlen(rre_status_name(hst)) + strlen(detail) + 3;
    r->error = malloc(len);
    if (r->error != NULL)
        snprintf(r->error, len, "%s: %s", rre_status_name(hst), detail);
    double now = rre__queue_now();
    if (hst == RRE_ERETRY_LATER) {
        /* Not a failure: the count stays, the wait is the first one. */
        s->counters.retry_later++;
        r->outcome = OUT_RETRY;
        r->next_attempts = r->attempts;
        r->due_at = now + s->retry_delay_s;
        rre__log(RRE_LOG_INFO, "queue",
                 "subscriber '%s': the handler asks for event %lld (%s) again in %.3g s", s->id,
                 (long long)r->id, name, s->retry_delay_s);
        return;
    }
    r->next_attempts = r->attempts + 1;
    if (hst == RRE_EREJECTED || r->next_attempts >= s->max_attempts) {
        r->outcome = OUT_DEAD;
        s->counters.dead_lettered++;
        rre__log(RRE_LOG_WARN, "queue",
                 "subscriber '%s': the handler failed on event %lld (%s), attempt %d of %d: %s;"
                 " moved to the dead letters",
                 s->id, (long long)r->id, name, r->next_attempts,
                 hst == RRE_EREJECTED ? r->next_attempts : s->max_attempts, detail);
        return;
    }
    double d = rre__retry_delay(s->retry_delay_s, s->retry_delay_max_s, r->next_attempts);
    r->outcome = OUT_RETRY;
    r->due_at = now + d;
    rre__log(RRE_LOG_WARN, "queue",
             "subscriber '%s': the handler failed on event %lld (%s), attempt %d of %d: %s;"
             " retried in %.3g s",
             s->id, (long long)r->id, name, r->next_attempts, s->max_attempts, detail, d);
}

/* Hands the rows read to the handler and records the progress. */
static rre_status deliver(rre_subscriber *s, size_t n, rre_queue_handler fn, void *user_data,
                          size_t *delivered, bool from_retries)
{
    int64_t cursor = s->cursor;
    size_t handled = 0;
    bool stopped = false, handler_closed = false, parse_nomem = false;
    for (size_t i = 0; i < n; i++) {
        struct row *r = &s->rows[i];
        /* A row kept as text (see decode_row) is parsed now, for its
         * handler only, and released as soon as the handler returned. */
        bool late = r->kind == ROW_DELIVER && r->ev.payload == NULL && !s->lazy;
        if (late) {
            rre_status pst = rre_payload_parse(r->text, r->text_len, &r->ev.payload);
            if (pst == RRE_ENOMEM) {
                /* Not a property of the row: it is read again next time. */
                stopped = parse_nomem = true;
                break;
            }
            if (pst != RRE_OK) {
                /* Changed by another writer since this library stored it. */
                r->kind = ROW_POISON;
                snprintf(r->reason, sizeof r->reason, "%s: %.100s", rre_strerror(pst),
                         rre_last_error());
            }
        }
        switch (r->kind) {
        case ROW_DELIVER: {
            rre__clear_error();
            rre_status hst = fn != NULL ? fn(&r->ev, user_data) : RRE_OK;
            if (late) {
                json_decref(r->ev.payload);
                r->ev.payload = NULL;
            }
            if (hst == RRE_ECLOSED) {
                stopped = handler_closed = true;
                break;
            }
            r->handled = true;
            handled++;
            s->counters.delivered++;
            if (r->from_retry)
                s->counters.retried++;
            judge(s, r, hst);
            /* In strict order nothing passes a retrying event: the batch
             * ends with it (the cursor passes it; it waits in the retries). */
            if (s->strict_order && r->outcome == OUT_RETRY) {
                if (!r->from_retry)
                    cursor = r->id;
                stopped = true;
            }
            break;
        }
        case ROW_SKIP:
            s->counters.filtered++;
            break;
        case ROW_ACKED:
            s->counters.skipped_acked++;
            break;
        case ROW_POISON:
            s->counters.poison++;
            break;
        case ROW_NOMEM: /* never stored in the rows handed over */
            break;
        }
        if (stopped)
            break;
        if (!r->from_retry)
            cursor = r->id;
    }
    *delivered += handled;

    rre_status st = RRE_OK;
    bool *poison_new = calloc(n, sizeof *poison_new);
    if (poison_new == NULL) {
        free_rows(s, n);
        return rre__error(RRE_ENOMEM, "out of memory");
    }
    if (s->ack && (cursor > s->cursor || from_retries)) {
        struct ack_ctx c = {s, n, cursor, poison_new};
        st = rre__queue_write_txn(s->q, s->db, "acknowledging events", ack_body, &c);
        if (st == RRE_OK)
            s->last_heartbeat_ms = rre__queue_mono_ms();
    } else {
        for (size_t i = 0; i < n && s->rows[i].id <= cursor; i++)
            if (s->rows[i].kind == ROW_POISON)
                poison_new[i] = !poison_known(s, s->rows[i].id);
    }
    if (st == RRE_OK) {
        for (size_t i = 0; i < n && s->rows[i].id <= cursor; i++)
            if (s->rows[i].kind == ROW_POISON && poison_new[i])
                rre__log(RRE_LOG_WARN, "queue",
                         "event %lld of '%s' cannot be decoded and is "
                         "skipped: %s",
                         (long long)s->rows[i].id, s->q->path, s->rows[i].reason);
        s->cursor = cursor;
    }
    free(poison_new);
    free_rows(s, n);
    if (st == RRE_OK && handler_closed)
        return rre__error(RRE_ECLOSED, "the handler stopped the poll");
    if (st == RRE_OK && parse_nomem)
        return rre__error(RRE_ENOMEM, "out of memory parsing an event of the queue; it is read "
                                      "again by the next poll");
    return st;
}

/* Hands the rows read to a held reader's handler (rre__subscriber_read):
 * nothing is recorded, the read position moves past the rows passed. */
static rre_status deliver_held(rre_subscriber *s, size_t n, rre__row_handler fn, void *user_data,
                               size_t *delivered)
{
    rre_status st = RRE_OK;
    int64_t pos = s->read_pos;
    for (size_t i = 0; i < n; i++) {
        struct row *r = &s->rows[i];
        if (r->kind == ROW_DELIVER) {
            rre__held_row hr = {&r->ev, r->created_at, r->text, r->text_len};
            st = fn(&hr, user_data);
            if (st != RRE_OK)
                break;
            (*delivered)++;
            s->counters.delivered++;
        } else if (r->kind == ROW_POISON) {
            s->counters.poison++;
        } else {
            s->counters.filtered++;
        }
        pos = r->id;
    }
    s->read_pos = pos;
    free_rows(s, n);
    return st;
}

/* The poll loop of both kinds of reading: exactly one of fn and held_fn is
 * set. */
static rre_status poll_loop(rre_subscriber *s, int timeout_ms, size_t max, rre_queue_handler fn,
                            rre__row_handler held_fn, void *user_data, size_t *delivered)
{
    size_t count = 0;
    if (delivered != NULL)
        *delivered = 0;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rre__queue_mono_ms() + timeout_ms;
    int quick = 4; /* follow-up waits of 1, 2, 4, 8 ms after a wake-up found nothing */
    rre_status st = RRE_OK;
    for (;;) {
        if (is_closed(s)) {
            st = rre__error(RRE_ECLOSED, "the subscriber or its queue is closed");
            break;
        }
        st = heartbeat_if_due(s);
        if (st != RRE_OK)
            break;
        rre__wake_drain(&s->wake);
        size_t limit = s->batch;
        if (max > 0 && max - count < limit)
            limit = max - count;
        size_t n = 0;
        bool from_retries = false;
        if (s->retries) {
            st = read_retries(s, limit, &n);
            if (st != RRE_OK)
                break;
            from_retries = n > 0;
        }
        if (n == 0 && !(s->strict_order && s->retry_pending)) {
            st = read_rows(s, limit, &n);
            if (st != RRE_OK)
                break;
        }
        if (n > 0) {
            st = held_fn != NULL ? deliver_held(s, n, held_fn, user_data, &count)
                                 : deliver(s, n, fn, user_data, &count, from_retries);
            if (st != RRE_OK || count > 0)
                break;
            continue; /* only filtered rows: read on */
        }
        int64_t now = rre__queue_mono_ms();
        if (timeout_ms == 0 || now >= deadline)
            break;
        int64_t wait = quick < 4 ? (1 << quick++) : RRE__QUEUE_FALLBACK_MS;
        if (s->ack) {
            int64_t hb_left = s->last_heartbeat_ms + s->heartbeat_interval_ms - now;
            if (hb_left < wait)
                wait = hb_left > 0 ? hb_left : 0;
        }
        if (s->retries && s->retry_pending) {
            /* Wake for the first retry that falls due. */
            double due_ms = (s->next_due - rre__queue_now()) * 1000.0 + 1;
            if (due_ms < (double)wait)
                wait = due_ms > 0 ? (int64_t)due_ms : 0;
        }
        if (deadline - now < wait)
            wait = deadline - now;
        int woke = rre__wake_wait(&s->wake, (int)wait);
        if (woke < 0) {
            st = rre__error(RRE_ECLOSED, "the subscriber was closed");
            break;
        }
        if (woke > 0)
            quick = 0;
    }
    if (delivered != NULL)
        *delivered = count;
    return st;
}

rre_status rre_subscriber_poll(rre_subscriber *s, int timeout_ms, size_t max, rre_queue_handler fn,
                               void *user_data, size_t *delivered)
{
    if (s == NULL) {
        if (delivered != NULL)
            *delivered = 0;
        return rre__error(RRE_EINVAL, "rre_subscriber_poll: subscriber is NULL");
    }
    if (s->held)
        return rre__error(RRE_EINVAL, "rre_subscriber_poll: the subscriber is read with "
                                      "rre__subscriber_read()");
    return poll_loop(s, timeout_ms, max, fn, NULL, user_data, delivered);
}

/* ------------------------------------------------------------------------ */
/* Held reading (the bridge)                                                 */
/* ------------------------------------------------------------------------ */

rre_status rre__subscriber_hold(rre_subscriber *s, const char *host)
{
    if (!s->ack)
        return rre__error(RRE_EINVAL, "held reading needs a durable subscriber that records");
    free(s->held_host);
    s->held_host = NULL;
    if (host != NULL && (s->held_host = strdup(host)) == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    /* The held reader also reads the stored content hash of each row. */
    sqlite3_stmt *held = NULL;
    rre_status st = rre__queue_prepare(
        s->db,
        "SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at, 0,"
        " d.hash FROM events e LEFT JOIN rre_hashes d ON d.event_id = e.event_id"
        " WHERE e.event_id > ?2 ORDER BY e.event_id LIMIT ?3",
        &held);
    if (st != RRE_OK)
        return st;
    sqlite3_finalize(s->st_read);
    s->st_read = held;
    s->held = true;
    s->retries = false; /* nothing is handled here: the bridge keeps its own account */
    s->read_pos = s->cursor;
    return RRE_OK;
}

rre_status rre__subscriber_read(rre_subscriber *s, int timeout_ms, size_t max, rre__row_handler fn,
                                void *user_data, size_t *delivered)
{
    if (!s->held) {
        rre_status st = rre__subscriber_hold(s, NULL);
        if (st != RRE_OK)
            return st;
    }
    return poll_loop(s, timeout_ms, max, NULL, fn, user_data, delivered);
}

int64_t rre__subscriber_read_pos(const rre_subscriber *s)
{
    return s->held ? s->read_pos : s->cursor;
}

struct commit_ctx {
    rre_subscriber *s;
    int64_t upto;
};

static int commit_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    struct commit_ctx *c = vctx;
    double now = rre__queue_now();
    int rc = heartbeat_in_txn(db, c->s, now, body_status);
    if (rc != SQLITE_OK)
        return rc;
    return record_cursor(db, c->s, c->upto, now);
}

rre_status rre__subscriber_commit(rre_subscriber *s, int64_t upto)
{
    if (upto <= s->cursor)
        return heartbeat_if_due(s);
    struct commit_ctx c = {s, upto};
    rre_status st =
        rre__queue_write_txn(s->q, s->db, "recording the read position", commit_body, &c);
    if (st == RRE_OK) {
        s->cursor = upto;
        s->last_heartbeat_ms = rre__queue_mono_ms();
    }
    return st;
}

void rre__subscriber_rewind(rre_subscriber *s)
{
    s->read_pos = s->cursor;
}

int64_t rre__subscriber_cursor(const rre_subscriber *s)
{
    return s->cursor;
}
