/*
 * queue_stats.c - figures about the queue database for `rre stats` and
 * monitoring: events by type, subscribers and how far behind each is, file
 * size. Read-only; runs on the queue's admin connection under admin_mu, in
 * one read transaction so the figures agree with each other.
 */
#include "queue_sqlite.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int64_t count_after(sqlite3 *db, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE event_id > ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* Seconds the oldest event after `id` has waited (its created_at to now),
 * 0 when none waits: how far behind a subscriber at `id` is in time. */
static double seconds_after(sqlite3 *db, int64_t id, double now)
{
    sqlite3_stmt *st = NULL;
    double behind = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT created_at FROM events WHERE event_id > ? AND typeof(created_at)"
                           " IN ('integer', 'real') ORDER BY event_id LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            double t = sqlite3_column_double(st, 0);
            behind = t >= 0 && t < now ? now - t : 0;
        }
    }
    sqlite3_finalize(st);
    return behind;
}

static int64_t file_size(const char *path, const char *suffix)
{
    char buf[4200];
    snprintf(buf, sizeof buf, "%s%s", path, suffix);
    struct stat sb;
    return stat(buf, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static bool lease_alive(const rre_queue *q, const char *host, long pid, long long start,
                        double heartbeat, double now)
{
    if (now - heartbeat > q->subscriber_timeout_s)
        return false;
    if (strcmp(host, q->hostname) == 0) {
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            return false;
        long long actual = rre__process_start_time(pid);
        if (start > 0 && actual > 0 && actual != start)
            return false;
    }
    return true;
}

/* Whether our own tables exist: a database only the Python side has written,
 * opened read-only, has none. */
static bool have_own_tables(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool yes = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                           " ('rre_cursors', 'rre_leases', 'rre_dedup', 'rre_poison')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        yes = sqlite3_column_int(st, 0) == 4;
    sqlite3_finalize(st);
    return yes;
}

/* Retries pending and dead letters, in total and per subscriber listed
 * (a database written before retries existed, opened read-only, has
 * neither table: zeros). */
static rre_status count_retries(sqlite3 *db, json_t *o)
{
    sqlite3_stmt *st = NULL;
    int have = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                           " ('rre_retries', 'rre_dead_letters')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                have == 2 ? "SELECT (SELECT count(*) FROM rre_retries WHERE"
                                            " ?1 IS NULL OR subscriber_id = ?1), (SELECT"
                                            " count(*) FROM rre_dead_letters WHERE ?1 IS NULL"
                                            " OR subscriber_id = ?1)"
                                          : "SELECT 0, 0",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rre__queue_sqlite_error(db, rc, "counting retries and dead letters");
    json_t *subs = json_object_get(o, "subscribers");
    for (size_t i = 0; i <= json_array_size(subs); i++) {
        json_t *target = i < json_array_size(subs) ? json_array_get(subs, i) : o;
        const char *id = target != o ? json_string_value(json_object_get(target, "id")) : NULL;
        sqlite3_reset(st);
        if (id != NULL)
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        json_object_set_new(target, "retrying", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(target, "dead_letters", json_integer(sqlite3_column_int64(st, 1)));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rre__queue_sqlite_error(db, rc, "counting retries and dead letters");
    return RRE_OK;
}

static rre_status collect(rre_queue *q, sqlite3 *db, json_t *o)
{
    bool ours = have_own_tables(db);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*), min(event_id), max(event_id) FROM events", -1,
                                &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object_set_new(o, "events", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "first_event_id", json_integer(sqlite3_column_int64(st, 1)));
        json_object_set_new(o, "last_event_id", json_integer(sqlite3_column_int64(st, 2)));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* The oldest time a row gives (rows whose created_at is not a time are
     * poison rows, left out). */
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "SELECT min(created_at) FROM events WHERE typeof(created_at) IN"
                                " ('integer', 'real') AND created_at >= 0",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object_set_new(o, "oldest_created_at",
                            sqlite3_column_type(st, 0) == SQLITE_NULL
                                ? json_null()
                                : json_real(sqlite3_column_double(st, 0)));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rre__queue_sqlite_error(db, rc, "counting events");

    json_t *by_type = json_object();
    json_object_set_new(o, "by_type", by_type);
    rc = sqlite3_prepare_v2(db, "SELECT event_type, count(*) FROM events GROUP BY event_type", -1,
                            &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *spelling = (const char *)sqlite3_column_text(st, 0);
        rre_event_type t;
        const char *key = spelling != NULL ? spelling : "";
        char *fixed = NULL;
        if (rre_event_lookup(key, &t) == RRE_OK)
            key = rre_event_name(t);
        else if (!rre__utf8_valid(key, strlen(key)) && (fixed = rre__utf8_repair(key)) != NULL)
            key = fixed;
        json_int_t prev = json_integer_value(json_object_get(by_type, key));
        json_object_set_new(by_type, key, json_integer(prev + sqlite3_column_int64(st, 1)));
        free(fixed);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rre__queue_sqlite_error(db, rc, "reading the events by type");

    double now = rre__queue_now();
    json_t *subs = json_array();
    json_object_set_new(o, "subscribers", subs);
    st = NULL;
    rc = !ours ? SQLITE_DONE
               : sqlite3_prepare_v2(
                     db,
                     "SELECT c.subscriber_id, c.last_event_id, c.updated_at, l.hostname,"
                     " l.pid, l.start_time, l.heartbeat FROM rre_cursors c LEFT JOIN"
                     " rre_leases l ON l.subscriber_id = c.subscriber_id"
                     " ORDER BY c.subscriber_id",
                     -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *s = json_object();
        int64_t cursor = sqlite3_column_int64(st, 1);
        json_object_set_new(s, "id",
                            rre__json_text_column((const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(s, "kind", json_string("stable"));
        json_object_set_new(s, "cursor", json_integer(cursor));
        json_object_set_new(s, "behind", json_integer(count_after(db, cursor)));
        json_object_set_new(s, "behind_seconds", json_real(seconds_after(db, cursor, now)));
        json_object_set_new(s, "last_seen", json_real(sqlite3_column_double(st, 2)));
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            const char *host = (const char *)sqlite3_column_text(st, 3);
            long pid = (long)sqlite3_column_int64(st, 4);
            json_object_set_new(s, "holder_host", rre__json_text_column(host));
            json_object_set_new(s, "holder_pid", json_integer(pid));
            json_object_set_new(s, "alive",
                                json_boolean(lease_alive(q, host != NULL ? host : "", pid,
                                                         sqlite3_column_int64(st, 5),
                                                         sqlite3_column_double(st, 6), now)));
        } else {
            json_object_set_new(s, "holder_host", json_null());
            json_object_set_new(s, "holder_pid", json_null());
            json_object_set_new(s, "alive", json_false());
        }
        json_array_append_new(subs, s);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rre__queue_sqlite_error(db, rc, "reading the subscribers");
    /* Subscribers only the Python side knows: how many events follow their
     * last ack. */
    rc = sqlite3_prepare_v2(db,
                            ours ? "SELECT s.subscriber_id, s.hostname, s.pid, s.last_poll_at,"
                                   " (SELECT max(a.event_id) FROM acks a WHERE a.subscriber_id ="
                                   " s.subscriber_id) FROM subscribers s WHERE s.subscriber_id"
                                   " NOT IN (SELECT subscriber_id FROM rre_cursors)"
                                   " ORDER BY s.subscriber_id"
                                 : "SELECT s.subscriber_id, s.hostname, s.pid, s.last_poll_at,"
                                   " (SELECT max(a.event_id) FROM acks a WHERE a.subscriber_id ="
                                   " s.subscriber_id) FROM subscribers s ORDER BY s.subscriber_id",
                            -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *s = json_object();
        int64_t last_ack = sqlite3_column_int64(st, 4);
        double seen = sqlite3_column_double(st, 3);
        json_object_set_new(s, "id",
                            rre__json_text_column((const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(s, "kind", json_string("python"));
        json_object_set_new(s, "cursor", json_integer(last_ack));
        json_object_set_new(s, "behind", json_integer(count_after(db, last_ack)));
        json_object_set_new(s, "behind_seconds", json_real(seconds_after(db, last_ack, now)));
        json_object_set_new(s, "last_seen", json_real(seen));
        json_object_set_new(s, "holder_host",
                            rre__json_text_column((const char *)sqlite3_column_text(st, 1)));
        json_object_set_new(s, "holder_pid", json_integer(sqlite3_column_int64(st, 2)));
        json_object_set_new(s, "alive", json_boolean(now - seen <= q->subscriber_timeout_s));
        json_array_append_new(subs, s);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rre__queue_sqlite_error(db, rc, "reading the Python subscribers");

    /* Stored hashes; a file of an earlier release, opened read-only, has
     * them in rre_dedup only. */
    rc = sqlite3_prepare_v2(db,
                            ours ? "SELECT (SELECT count(*) FROM rre_hashes), (SELECT count(*) FROM"
                                   " rre_poison)"
                                 : "SELECT 0, 0",
                            -1, &st, NULL);
    if (rc != SQLITE_OK && ours)
        rc = sqlite3_prepare_v2(db,
                                "SELECT (SELECT count(*) FROM rre_dedup), (SELECT count(*) FROM"
                                " rre_poison)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object_set_new(o, "dedup_entries", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "poison_rows", json_integer(sqlite3_column_int64(st, 1)));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rre__queue_sqlite_error(db, rc, "counting dedup entries and poison rows");
    return count_retries(db, o);
}

rre_status rre_queue_stats(rre_queue *q, json_t **out)
{
    if (q == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_stats: q and out must not be NULL");
    *out = NULL;
    json_t *o = json_object();
    if (o == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    json_object_set_new(o, "path", json_string(q->path));
    json_object_set_new(o, "file_bytes",
                        json_integer(file_size(q->path, "") + file_size(q->path, "-wal")));
    json_object_set_new(o, "wal_bytes", json_integer(file_size(q->path, "-wal")));
    rre__queue_lock(&q->admin_mu);
    rre_status st = RRE_OK;
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(q->adb, "BEGIN", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            st = collect(q, q->adb, o);
            sqlite3_exec(q->adb, "COMMIT", NULL, NULL, NULL);
            break;
        }
        if (!rre__queue_is_busy(rc) || attempt > 1000) {
            st = rre__queue_sqlite_error(q->adb, rc, "reading queue statistics");
            break;
        }
        rre__queue_backoff(attempt);
    }
    rre__queue_unlock(&q->admin_mu);
    if (st != RRE_OK) {
        json_decref(o);
        return st;
    }
    *out = o;
    return RRE_OK;
}
