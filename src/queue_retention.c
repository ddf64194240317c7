/*
 * queue_retention.c - retention of the SQLite queue: deleting old events,
 * their acks and poison records, expired dedup entries and dead
 * subscribers, in small transactions; and the maintenance thread that runs
 * it by itself.
 *
 * DESIGN: each queue that can write starts one maintenance thread with its
 * own connection (opened on its first pass). It sleeps on maint_cv (guarded
 * by maint_mu, which also guards maint_stop) for the maintenance interval,
 * then claims the pass for the whole database by updating
 * rre_meta.retention_at in a short transaction, so that of many processes
 * sharing the file only one runs it per interval. Every delete touches at
 * most RRE__QUEUE_PURGE_BATCH rows and commits, so a publisher waits at most
 * for one such batch.
 */
#include "queue_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One statement with up to three bound values, run in a retried write
 * transaction; `changes` is what it deleted. */
struct exec_ctx {
    const char *sql;
    const char *binds; /* per parameter: d (d1), i (i1), t (t1), D (d2), I (i2) */
    double d1, d2;
    int64_t i1, i2;
    const char *t1;
    int64_t changes;
};

static int exec_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct exec_ctx *c = vctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, c->sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    for (int i = 0; c->binds[i] != '\0'; i++) {
        switch (c->binds[i]) {
        case 'd':
            sqlite3_bind_double(st, i + 1, c->d1);
            break;
        case 'D':
            sqlite3_bind_double(st, i + 1, c->d2);
            break;
        case 'i':
            sqlite3_bind_int64(st, i + 1, c->i1);
            break;
        case 'I':
            sqlite3_bind_int64(st, i + 1, c->i2);
            break;
        default:
            sqlite3_bind_text(st, i + 1, c->t1, -1, SQLITE_STATIC);
            break;
        }
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    c->changes = sqlite3_changes(db);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs a batched DELETE until it deletes fewer rows than a batch; adds the
 * total to *total. */
static rre_status delete_batches(rre_queue *q, sqlite3 *db, struct exec_ctx *c, const char *what,
                                 uint64_t *total)
{
    for (;;) {
        rre_status st = rre__queue_write_txn(q, db, what, exec_body, c);
        if (st != RRE_OK)
            return st;
        *total += (uint64_t)c->changes;
        if (c->changes < RRE__QUEUE_PURGE_BATCH)
            return RRE_OK;
    }
}

/* Collects up to `cap` subscriber ids matching `sql` (one double bound). */
static size_t collect_ids(sqlite3 *db, const char *sql, double bound, char **ids, size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_double(st, 1, bound);
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (id != NULL && (ids[n] = strdup(id)) != NULL)
            n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* The retries of a subscriber that is forgotten go to the dead letters, so
 * that an operator can still see and replay them. */
static int retries_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    const char *id = vctx;
    int rc = rre__queue_run(
        db,
        "INSERT INTO rre_dead_letters(subscriber_id, event_id, event_type, payload, source,"
        " hostname, created_at, attempts, first_failed_at, dead_at, error) SELECT subscriber_id,"
        " event_id, event_type, payload, source, hostname, created_at, attempts, first_failed_at,"
        " ?2, error || ' (then the subscriber was idle past the retention window)'"
        " FROM rre_retries WHERE subscriber_id = ?1",
        "td", id, rre__queue_now());
    if (rc == SQLITE_DONE)
        rc = rre__queue_run(db, "DELETE FROM rre_retries WHERE subscriber_id = ?1", "t", id);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static rre_status forget_subscriber(rre_queue *q, sqlite3 *db, const char *id, uint64_t *acks)
{
    struct exec_ctx c = {.sql = "DELETE FROM acks WHERE rowid IN (SELECT rowid FROM acks WHERE"
                                " subscriber_id = ? LIMIT ?)",
                         .binds = "ti",
                         .t1 = id,
                         .i1 = RRE__QUEUE_PURGE_BATCH};
    rre_status st = delete_batches(q, db, &c, "deleting acks of a dead subscriber", acks);
    static const char *const tables[] = {
        "DELETE FROM subscribers WHERE subscriber_id = ?",
        "DELETE FROM rre_cursors WHERE subscriber_id = ?",
        "DELETE FROM rre_leases WHERE subscriber_id = ?",
    };
    for (size_t i = 0; st == RRE_OK && i < RRE__ARRAY_LEN(tables); i++) {
        struct exec_ctx d = {.sql = tables[i], .binds = "t", .t1 = id};
        st = rre__queue_write_txn(q, db, "deleting a dead subscriber", exec_body, &d);
    }
    if (st == RRE_OK)
        st = rre__queue_write_txn(q, db, "moving a dead subscriber's retries", retries_body,
                                  (void *)id);
    return st;
}

rre_status rre__queue_purge_on(rre_queue *q, sqlite3 *db, double older_than_s,
                               rre_queue_purge_result *out)
{
    rre_queue_purge_result res;
    memset(&res, 0, sizeof res);
    double now = rre__queue_now();
    double cutoff = now - (older_than_s >= 0 ? older_than_s : q->retention_s);

    struct exec_ctx ev = {.sql = "DELETE FROM events WHERE event_id IN (SELECT event_id FROM"
                                 " events WHERE created_at < ? ORDER BY created_at LIMIT ?)",
                          .binds = "di",
                          .d1 = cutoff,
                          .i1 = RRE__QUEUE_PURGE_BATCH};
    rre_status st = delete_batches(q, db, &ev, "deleting old events", &res.events);

    /* Acks and poison records below the oldest remaining event belong to
     * deleted events. */
    int64_t min_live = rre__queue_query_int(db, "SELECT min(event_id) FROM events", -1);
    if (min_live < 0)
        min_live = rre__queue_query_int(
            db, "SELECT seq + 1 FROM sqlite_sequence WHERE name = 'events'", 0);
    if (st == RRE_OK && min_live > 0) {
        struct exec_ctx ac = {.sql = "DELETE FROM acks WHERE rowid IN (SELECT rowid FROM acks"
                                     " WHERE event_id < ? LIMIT ?)",
                              .binds = "iI",
                              .i1 = min_live,
                              .i2 = RRE__QUEUE_PURGE_BATCH};
        st = delete_batches(q, db, &ac, "deleting acks of deleted events", &res.acks);
        if (st == RRE_OK) {
            struct exec_ctx pc = {.sql = "DELETE FROM rre_poison WHERE event_id IN (SELECT"
                                         " event_id FROM rre_poison WHERE event_id < ? LIMIT ?)",
                                  .binds = "iI",
                                  .i1 = min_live,
                                  .i2 = RRE__QUEUE_PURGE_BATCH};
            st = delete_batches(q, db, &pc, "deleting poison records", &res.poison);
        }
    }
    if (st == RRE_OK) {
        /* Dedup entries in event_id order, which is first-seen order: look at
         * one batch of the oldest and delete the expired ones among them. */
        double window = q->dedup_window_s > 0 ? q->dedup_window_s : 0;
        struct exec_ctx dc = {.sql = "DELETE FROM rre_dedup WHERE event_id IN (SELECT event_id"
                                     " FROM (SELECT event_id, first_seen FROM rre_dedup ORDER BY"
                                     " event_id LIMIT ?) WHERE first_seen < ?)",
                              .binds = "id",
                              .i1 = RRE__QUEUE_PURGE_BATCH,
                              .d1 = now - window};
        uint64_t indexed = 0;
        st = delete_batches(q, db, &dc, "deleting expired dedup entries", &indexed);
        (void)indexed; /* the same hashes as below, or of an earlier release */
    }
    /* The index of older hashes, ordered by hash: one slice of the hash
     * space per transaction (a stretch of the table), so the write lock is
     * held for a sixty-fourth of a whole scan at a time. */
    for (unsigned sl = 0; st == RRE_OK && sl < RRE__QUEUE_DEDUP_SLICES; sl++) {
        unsigned width = 256 / RRE__QUEUE_DEDUP_SLICES, lo = sl * width, hi = lo + width;
        char sql[256], upper[80];
        if (hi < 256)
            snprintf(upper, sizeof upper, "hash < X'%02x' AND ", hi);
        else
            upper[0] = '\0';
        snprintf(sql, sizeof sql,
                 "DELETE FROM rre_dedup_index WHERE hash >= X'%02x' AND %sfirst_seen < ?", lo,
                 upper);
        double window = q->dedup_window_s > 0 ? q->dedup_window_s : 0;
        struct exec_ctx xc = {.sql = sql, .binds = "d", .d1 = now - window};
        uint64_t indexed = 0;
        st = delete_batches(q, db, &xc, "deleting expired dedup index entries", &indexed);
    }
    if (st == RRE_OK) {
        /* The stored hashes, the same way: these are the ones counted. */
        double window = q->dedup_window_s > 0 ? q->dedup_window_s : 0;
        struct exec_ctx hc = {.sql = "DELETE FROM rre_hashes WHERE event_id IN (SELECT event_id"
                                     " FROM (SELECT event_id, first_seen FROM rre_hashes ORDER BY"
                                     " event_id LIMIT ?) WHERE first_seen < ?)",
                              .binds = "id",
                              .i1 = RRE__QUEUE_PURGE_BATCH,
                              .d1 = now - window};
        st = delete_batches(q, db, &hc, "deleting expired stored hashes", &res.dedup);
    }
    if (st == RRE_OK) {
        /* Dead subscribers: transient ids idle past the subscriber timeout;
         * stable ids (ours and Python's) idle past the retention window,
         * whose cursors then point before every retained event anyway. */
        enum { MAX_IDS = 256 };
        char *ids[MAX_IDS];
        size_t n = collect_ids(db,
                               "SELECT subscriber_id FROM subscribers WHERE last_poll_at < ?"
                               " AND subscriber_id NOT LIKE '%:stable:%'",
                               now - q->subscriber_timeout_s, ids, MAX_IDS);
        n += collect_ids(db,
                         "SELECT subscriber_id FROM subscribers WHERE last_poll_at < ?1 AND"
                         " subscriber_id LIKE '%:stable:%' UNION SELECT subscriber_id FROM"
                         " rre_cursors WHERE updated_at < ?1 AND subscriber_id NOT IN (SELECT"
                         " subscriber_id FROM subscribers)",
                         now - q->retention_s, ids + n, MAX_IDS - n);
        for (size_t i = 0; i < n; i++) {
            if (st == RRE_OK) {
                st = forget_subscriber(q, db, ids[i], &res.acks);
                if (st == RRE_OK)
                    res.subscribers++;
            }
            free(ids[i]);
        }
        if (st == RRE_OK) {
            struct exec_ctx lc = {.sql = "DELETE FROM rre_leases WHERE heartbeat < ?",
                                  .binds = "d",
                                  .d1 = now - q->subscriber_timeout_s};
            st = rre__queue_write_txn(q, db, "deleting stale leases", exec_body, &lc);
        }
    }
    if (out != NULL)
        *out = res;
    return st;
}

rre_status rre_queue_purge(rre_queue *q, double older_than_s, rre_queue_purge_result *out)
{
    if (q == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_purge: queue is NULL");
    if (q->read_only)
        return rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    rre__queue_lock(&q->admin_mu);
    rre_status st = rre__queue_purge_on(q, q->adb, older_than_s, out);
    rre__queue_unlock(&q->admin_mu);
    return st;
}

/* A count of the tables that may be missing (a file the Python side
 * alone wrote, opened read-only, has none of ours): 0 then. */
static int64_t count_or_zero(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i] != '\0'; i++) {
        if (fmt[i] == 'd')
            sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        else
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return n;
}

/* What a purge would delete now, counted in one read transaction: the same
 * selections as rre__queue_purge_on(), without deleting. */
static rre_status preview_on(rre_queue *q, sqlite3 *db, double older_than_s,
                             rre_queue_purge_result *res)
{
    double now = rre__queue_now();
    double cutoff = now - (older_than_s >= 0 ? older_than_s : q->retention_s);
    double window = q->dedup_window_s > 0 ? q->dedup_window_s : 0;
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rre__queue_sqlite_error(db, rc, "counting what a purge would delete");
    res->events = (uint64_t)count_or_zero(db, "SELECT count(*) FROM events WHERE created_at < ?",
                                          "d", cutoff);
    /* The oldest event that would remain; what is below it goes. */
    int64_t min_live = count_or_zero(
        db, "SELECT ifnull(min(event_id), 0) FROM events WHERE created_at >= ?", "d", cutoff);
    if (min_live == 0)
        min_live = count_or_zero(db, "SELECT ifnull(max(event_id), 0) + 1 FROM events", "");
    /* Dead subscribers, as the purge finds them. */
    const char *dead = "SELECT subscriber_id FROM subscribers WHERE last_poll_at < ?1 AND"
                       " subscriber_id NOT LIKE '%:stable:%' UNION SELECT subscriber_id FROM"
                       " subscribers WHERE last_poll_at < ?2 AND subscriber_id LIKE '%:stable:%'"
                       " UNION SELECT subscriber_id FROM rre_cursors WHERE updated_at < ?2 AND"
                       " subscriber_id NOT IN (SELECT subscriber_id FROM subscribers)";
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s)", dead);
    double idle = now - q->subscriber_timeout_s, gone = now - q->retention_s;
    res->subscribers = (uint64_t)count_or_zero(db, sql, "dd", idle, gone);
    if (res->subscribers == 0)
        res->subscribers = (uint64_t)count_or_zero(
            db,
            "SELECT count(*) FROM (SELECT subscriber_id FROM subscribers WHERE last_poll_at < ?1"
            " AND subscriber_id NOT LIKE '%:stable:%' UNION SELECT subscriber_id FROM subscribers"
            " WHERE last_poll_at < ?2 AND subscriber_id LIKE '%:stable:%')",
            "dd", idle, gone); /* without our tables */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM acks WHERE event_id < ?3 OR subscriber_id IN (%s)", dead);
    res->acks = (uint64_t)count_or_zero(db, sql, "ddi", idle, gone, min_live);
    res->poison = (uint64_t)count_or_zero(db, "SELECT count(*) FROM rre_poison WHERE event_id < ?",
                                          "i", min_live);
    res->dedup = (uint64_t)count_or_zero(db, "SELECT count(*) FROM rre_hashes WHERE first_seen < ?",
                                         "d", now - window);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return RRE_OK;
}

rre_status rre_queue_purge_preview(rre_queue *q, double older_than_s, rre_queue_purge_result *out)
{
    if (q == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_purge_preview: q and out must not be NULL");
    memset(out, 0, sizeof *out);
    rre__queue_lock(&q->admin_mu);
    rre_status st = preview_on(q, q->adb, older_than_s, out);
    rre__queue_unlock(&q->admin_mu);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The maintenance thread                                                    */
/* ------------------------------------------------------------------------ */

struct claim_ctx {
    double now;
    double interval_s;
    bool claimed;
};

static int claim_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct claim_ctx *c = vctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM rre_meta WHERE key = 'retention_at'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    double last = rc == SQLITE_ROW ? sqlite3_column_double(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    c->claimed = c->now - last >= 0.9 * c->interval_s || last > c->now;
    if (!c->claimed)
        return SQLITE_OK;
    rc = sqlite3_prepare_v2(db,
                            "INSERT OR REPLACE INTO rre_meta(key, value) VALUES"
                            " ('retention_at', ?)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    char buf[64];
    snprintf(buf, sizeof buf, "%.6f", c->now);
    sqlite3_bind_text(st, 1, buf, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void maintenance_pass(rre_queue *q, sqlite3 **db)
{
    if (*db == NULL && rre__queue_connect(q, db, 256) != RRE_OK) {
        rre__log(RRE_LOG_WARN, "queue", "retention: cannot open '%s': %s", q->path,
                 rre_last_error());
        return;
    }
    struct claim_ctx c = {rre__queue_now(), q->maintenance_interval_ms / 1000.0, false};
    if (rre__queue_write_txn(q, *db, "claiming the retention pass", claim_body, &c) != RRE_OK) {
        rre__log(RRE_LOG_WARN, "queue", "retention: %s", rre_last_error());
        return;
    }
    if (!c.claimed)
        return;
    rre_queue_purge_result r;
    if (rre__queue_purge_on(q, *db, -1, &r) != RRE_OK) {
        rre__log(RRE_LOG_WARN, "queue", "retention: %s", rre_last_error());
        return;
    }
    if (r.events + r.acks + r.dedup + r.subscribers + r.poison > 0)
        rre__log(RRE_LOG_INFO, "queue",
                 "retention: deleted %llu events, %llu acks, %llu dedup entries, %llu "
                 "subscribers, %llu poison records",
                 (unsigned long long)r.events, (unsigned long long)r.acks,
                 (unsigned long long)r.dedup, (unsigned long long)r.subscribers,
                 (unsigned long long)r.poison);
}

/*
 * Checkpoints. DESIGN: a checkpoint copies WAL frames into the database
 * file and fsyncs both files; the WAL only starts again from its beginning
 * when a writer begins while every frame is copied. A checkpoint running
 * beside a publisher that commits every few microseconds never finds that
 * moment, so on its own the WAL would grow without bound (gigabytes after a
 * hundred thousand events), and every later read and checkpoint would be
 * slower. So a checkpoint has two parts:
 *
 *  1. The writer's WAL hook (on the leader, after a commit) asks the
 *     maintenance thread for one once the WAL holds
 *     RRE__QUEUE_CHECKPOINT_FRAMES frames. That thread copies them and pays
 *     for the fsyncs, off the publishing path, while publishing goes on, in
 *     rounds until it has nearly caught up.
 *  2. It then sets ckpt_catch_up; the next leader, after its commit and
 *     while it still holds the writer role (so no publish of this process
 *     commits meanwhile), runs a passive checkpoint on the writer connection.
 *     It copies only the frames committed during part 1, so it is short, and
 *     leaves the WAL fully copied: the next transaction restarts it.
 *
 * When the WAL cannot restart (another process keeps writing, or a reader
 * holds an old snapshot), the hook asks again only after another
 * RRE__QUEUE_CHECKPOINT_FRAMES frames, so checkpoints never run back to back.
 * Subscribers' and the importer's connections ask the same way (part 1
 * only). Each connection's asker belongs to the thread using it;
 * ckpt_catch_up is atomic.
 */
static int asker_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)name;
    struct rre__ckpt_asker *a = arg;
    if (frames < a->asked_at)
        a->asked_at = 0; /* the WAL restarted */
    if (frames >= RRE__QUEUE_CHECKPOINT_FRAMES &&
        (a->asked_at == 0 || frames >= a->asked_at + RRE__QUEUE_CHECKPOINT_FRAMES)) {
        a->asked_at = frames;
        rre_queue *q = a->q;
        rre__queue_lock(&q->maint_mu);
        bool started = q->maint_started;
        if (started && !q->checkpoint_due) {
            q->checkpoint_due = true;
            pthread_cond_signal(&q->maint_cv);
        }
        rre__queue_unlock(&q->maint_mu);
        /* The thread stopped (the queue was closed while this connection
         * still commits): checkpoint here, as SQLite's automatic checkpoint
         * would, rather than let the WAL grow. */
        if (!started)
            sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    return SQLITE_OK;
}

void rre__queue_hook_checkpoints(sqlite3 *db, struct rre__ckpt_asker *asker, rre_queue *q)
{
    asker->q = q;
    asker->asked_at = 0;
    rre__queue_lock(&q->maint_mu);
    bool maintained = q->maint_started;
    rre__queue_unlock(&q->maint_mu);
    if (maintained)
        sqlite3_wal_hook(db, asker_wal_hook, asker);
}

/* Part 1 of a checkpoint, on the maintenance thread. A round copies what
 * the WAL held when it began; while its fsyncs run, publishers append more.
 * Further rounds copy that, each shorter than the one before, until a round
 * found fewer than CATCH_UP_FRAMES new frames, so what is left to the
 * writer's catch-up is about one fsync's worth of commits. */
enum { CATCH_UP_FRAMES = 256, MAX_ROUNDS = 4 };

static void background_checkpoint(sqlite3 *db)
{
    int done = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int log = 0, ckpt = 0;
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
        /* Stop when busy, when a reader keeps frames from being copied, and
         * when this round had little to do. */
        if (rc != SQLITE_OK || ckpt < log || log - done < CATCH_UP_FRAMES)
            return;
        done = ckpt;
    }
}

void rre__queue_checkpoint_catch_up(rre_queue *q)
{
    if (q->wdb == NULL || !atomic_exchange(&q->ckpt_catch_up, false))
        return;
    /* Busy (another process checkpointing) is harmless: the WAL then
     * restarts later. */
    sqlite3_wal_checkpoint_v2(q->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void *maintenance_main(void *arg)
{
    rre_queue *q = arg;
    sqlite3 *db = NULL;
    int first_ms = q->maintenance_interval_ms < 2000 ? q->maintenance_interval_ms : 2000;
    int64_t next = rre__queue_mono_ms() + first_ms;
    for (;;) {
        rre__queue_lock(&q->maint_mu);
        while (!q->maint_stop && !q->checkpoint_due) {
            int64_t left = next - rre__queue_mono_ms();
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(left / 1000);
            ts.tv_nsec += (long)(left % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&q->maint_cv, &q->maint_mu, &ts);
        }
        bool stop = q->maint_stop, checkpoint = q->checkpoint_due;
        q->checkpoint_due = false;
        rre__queue_unlock(&q->maint_mu);
        if (stop)
            break;
        if (checkpoint) {
            if (db == NULL && rre__queue_connect(q, &db, 256) != RRE_OK)
                continue;
            background_checkpoint(db);
            atomic_fetch_add(&q->ckpt_background, 1);
            atomic_store(&q->ckpt_catch_up, true);
            if (rre__queue_mono_ms() < next)
                continue;
        }
        maintenance_pass(q, &db);
        next = rre__queue_mono_ms() + q->maintenance_interval_ms;
    }
    sqlite3_close(db);
    return NULL;
}

rre_status rre__queue_maintenance_start(rre_queue *q)
{
    rre__queue_lock(&q->maint_mu);
    int rc = pthread_create(&q->maint_thread, NULL, maintenance_main, q);
    q->maint_started = rc == 0;
    rre__queue_unlock(&q->maint_mu);
    if (rc != 0)
        return rre__error(RRE_EINTERNAL, "cannot start the retention thread: %s", strerror(rc));
    return RRE_OK;
}

void rre__queue_maintenance_stop(rre_queue *q)
{
    rre__queue_lock(&q->maint_mu);
    bool started = q->maint_started;
    q->maint_started = false;
    q->maint_stop = true;
    pthread_cond_broadcast(&q->maint_cv);
    rre__queue_unlock(&q->maint_mu);
    if (started)
        pthread_join(q->maint_thread, NULL);
}
