/*
 * queue_dlq.c - the dead letters of durable subscribers: listing, showing,
 * replaying (back to their own subscriber, through rre_retries) and
 * dropping them. The subscribers write them (queue_subscriber.c); this file
 * is what operators and tools do with them.
 *
 * DESIGN: every call runs on the queue's admin connection under admin_mu,
 * like statistics and purge. A replay moves rows from rre_dead_letters to
 * rre_retries in one write transaction, due at once and with no failure
 * counted, so the subscriber that owns them (and only it) delivers them on
 * its next poll; its inotify watch wakes it for the write.
 */
#include "queue_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The subscriber id a caller means: an id as given ("host:stable:name" or
 * any other id with a colon), else the durable name on this host. NULL
 * stays NULL (every subscriber). Caller frees. */
static rre_status resolve_subscriber(const rre_queue *q, const char *subscriber, char **out)
{
    *out = NULL;
    if (subscriber == NULL)
        return RRE_OK;
    if (subscriber[0] == '\0')
        return rre__error(RRE_EINVAL, "the subscriber must not be empty");
    if (!rre__utf8_valid(subscriber, strlen(subscriber)))
        return rre__error(RRE_EINVAL, "the subscriber is not valid UTF-8");
    size_t len = strlen(q->hostname) + strlen(subscriber) + sizeof ":stable:";
    char *id = malloc(len);
    if (id == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    if (strchr(subscriber, ':') != NULL)
        snprintf(id, len, "%s", subscriber);
    else
        snprintf(id, len, "%s:stable:%s", q->hostname, subscriber);
    *out = id;
    return RRE_OK;
}

static bool have_table(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool yes = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                           " name = 'rre_dead_letters'",
                           -1, &st, NULL) == SQLITE_OK)
        yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

static const char COLUMNS[] = "id, subscriber_id, event_id, event_type, source, hostname,"
                              " created_at, error, attempts, first_failed_at, dead_at, payload";

/* One row of COLUMNS as a JSON object; with the payload when `payload`. */
static json_t *letter_json(sqlite3_stmt *st, bool payload)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "subscriber",
                        rre__json_text_column((const char *)sqlite3_column_text(st, 1)));
    json_object_set_new(o, "event_id", json_integer(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "event_type",
                        rre__json_text_column((const char *)sqlite3_column_text(st, 3)));
    json_object_set_new(o, "source",
                        rre__json_text_column((const char *)sqlite3_column_text(st, 4)));
    json_object_set_new(o, "hostname",
                        rre__json_text_column((const char *)sqlite3_column_text(st, 5)));
    json_object_set_new(o, "created_at", json_real(sqlite3_column_double(st, 6)));
    json_object_set_new(o, "error",
                        rre__json_text_column((const char *)sqlite3_column_text(st, 7)));
    json_object_set_new(o, "attempts", json_integer(sqlite3_column_int64(st, 8)));
    json_object_set_new(o, "first_failed_at", json_real(sqlite3_column_double(st, 9)));
    json_object_set_new(o, "dead_at", json_real(sqlite3_column_double(st, 10)));
    if (payload) {
        const char *text = (const char *)sqlite3_column_text(st, 11);
        json_t *p = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
        json_object_set_new(o, "payload", p != NULL ? p : json_null());
    }
    return o;
}

/* Runs a read-only query of dead letters in one read transaction. */
static rre_status read_letters(rre_queue *q, const char *sql, const char *sub, int64_t id,
                               bool payload, json_t *into)
{
    sqlite3 *db = q->adb;
    rre_status st = RRE_OK;
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_stmt *s = NULL;
            rc = have_table(db) ? sqlite3_prepare_v2(db, sql, -1, &s, NULL) : SQLITE_DONE;
            if (s != NULL) {
                if (sub != NULL)
                    sqlite3_bind_text(s, 1, sub, -1, SQLITE_STATIC);
                if (id > 0)
                    sqlite3_bind_int64(s, 2, id);
                while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                    json_t *o = letter_json(s, payload);
                    if (o == NULL || json_array_append_new(into, o) != 0) {
                        rc = SQLITE_NOMEM;
                        break;
                    }
                }
            }
            if (rc != SQLITE_DONE)
                st = rre__queue_sqlite_error(db, rc, "reading the dead letters");
            sqlite3_finalize(s);
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            if (st != RRE_OK && rre__queue_is_busy(rc) && attempt < 1000) {
                json_array_clear(into);
                st = RRE_OK;
                rre__queue_backoff(attempt);
                continue;
            }
            return st;
        }
        if (!rre__queue_is_busy(rc) || attempt > 1000)
            return rre__queue_sqlite_error(db, rc, "reading the dead letters");
        rre__queue_backoff(attempt);
    }
}

rre_status rre_queue_dlq_list(rre_queue *q, const char *subscriber, json_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (q == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_dlq_list: q and out must not be NULL");
    char *sub = NULL;
    rre_status st = resolve_subscriber(q, subscriber, &sub);
    if (st != RRE_OK)
        return st;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM rre_dead_letters%s ORDER BY id", COLUMNS,
             sub != NULL ? " WHERE subscriber_id = ?1" : "");
    json_t *list = json_array();
    if (list == NULL) {
        free(sub);
        return rre__error(RRE_ENOMEM, "out of memory");
    }
    rre__queue_lock(&q->admin_mu);
    st = read_letters(q, sql, sub, 0, false, list);
    rre__queue_unlock(&q->admin_mu);
    free(sub);
    if (st != RRE_OK) {
        json_decref(list);
        return st;
    }
    *out = list;
    return RRE_OK;
}

rre_status rre_queue_dlq_get(rre_queue *q, int64_t id, json_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (q == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_dlq_get: q and out must not be NULL");
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM rre_dead_letters WHERE id = ?2", COLUMNS);
    json_t *list = json_array();
    if (list == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    rre__queue_lock(&q->admin_mu);
    rre_status st = read_letters(q, sql, NULL, id > 0 ? id : -1, true, list);
    rre__queue_unlock(&q->admin_mu);
    if (st == RRE_OK && json_array_size(list) == 0)
        st = rre__error(RRE_ENOTFOUND, "no dead letter has the id %lld", (long long)id);
    if (st == RRE_OK)
        *out = json_incref(json_array_get(list, 0));
    json_decref(list);
    return st;
}

/* A write on the dead letters: `sql` (and `sql2` after it, when given) with
 * the subscriber as ?1, the id as ?2 and a time as ?3; the changes of the
 * last statement are the count. */
struct dlq_write {
    const char *sql;
    const char *sql2;
    const char *sub;
    int64_t id;
    double t;
    int64_t changes;
};

static int run_bound(sqlite3 *db, const char *sql, const struct dlq_write *w)
{
    int rc = rre__queue_run(db, sql, "tid", w->sub, w->id, w->t);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int dlq_write_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct dlq_write *w = vctx;
    int rc = run_bound(db, w->sql, w);
    if (rc == SQLITE_OK && w->sql2 != NULL)
        rc = run_bound(db, w->sql2, w);
    w->changes = sqlite3_changes(db);
    return rc;
}

static rre_status dlq_write(rre_queue *q, struct dlq_write *w, const char *what)
{
    if (q->read_only)
        return rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    rre__queue_lock(&q->admin_mu);
    rre_status st =
        have_table(q->adb) ? rre__queue_write_txn(q, q->adb, what, dlq_write_body, w) : RRE_OK;
    rre__queue_unlock(&q->admin_mu);
    return st;
}

/* The condition selecting the dead letters of one call: one id (?2 > 0),
 * or all (of subscriber ?1 when given). */
#define DLQ_WHERE_ID "id = ?2"
#define DLQ_WHERE_SUB "(?1 IS NULL OR subscriber_id = ?1)"

rre_status rre_queue_dlq_replay(rre_queue *q, int64_t id, const char *subscriber, uint64_t *count)
{
    if (count != NULL)
        *count = 0;
    if (q == NULL || id < 0)
        return rre__error(RRE_EINVAL, "rre_queue_dlq_replay: q must not be NULL, id not negative");
    char *sub = NULL;
    rre_status st = resolve_subscriber(q, subscriber, &sub);
    if (st != RRE_OK)
        return st;
    /* A retry already pending for the same event and subscriber (it was
     * delivered again after a crash and failed again) keeps its place. */
    struct dlq_write w = {
        .sql = id > 0 ? "INSERT OR IGNORE INTO rre_retries(subscriber_id, event_id, event_type,"
                        " payload, source, hostname, created_at, attempts, first_failed_at,"
                        " due_at, error) SELECT subscriber_id, event_id, event_type, payload,"
                        " source, hostname, created_at, 0, first_failed_at, ?3, error FROM"
                        " rre_dead_letters WHERE " DLQ_WHERE_ID " AND " DLQ_WHERE_SUB
                      : "INSERT OR IGNORE INTO rre_retries(subscriber_id, event_id, event_type,"
                        " payload, source, hostname, created_at, attempts, first_failed_at,"
                        " due_at, error) SELECT subscriber_id, event_id, event_type, payload,"
                        " source, hostname, created_at, 0, first_failed_at, ?3, error FROM"
                        " rre_dead_letters WHERE ?2 = 0 AND " DLQ_WHERE_SUB " ORDER BY id",
        .sql2 = id > 0 ? "DELETE FROM rre_dead_letters WHERE " DLQ_WHERE_ID " AND " DLQ_WHERE_SUB
                       : "DELETE FROM rre_dead_letters WHERE ?2 = 0 AND " DLQ_WHERE_SUB,
        .sub = sub,
        .id = id,
        .t = rre__queue_now(),
    };
    st = dlq_write(q, &w, "replaying dead letters");
    free(sub);
    if (st != RRE_OK)
        return st;
    if (id > 0 && w.changes == 0) {
        /* No such letter, or it is another subscriber's. */
        json_t *o = NULL;
        if (rre_queue_dlq_get(q, id, &o) == RRE_OK) {
            json_decref(o);
            return rre__error(RRE_ENOTFOUND, "dead letter %lld is not %s's", (long long)id,
                              subscriber);
        }
        return rre__error(RRE_ENOTFOUND, "no dead letter has the id %lld", (long long)id);
    }
    if (count != NULL)
        *count = (uint64_t)w.changes;
    return RRE_OK;
}

rre_status rre_queue_dlq_drop(rre_queue *q, int64_t id, double older_than_s, const char *subscriber,
                              uint64_t *count)
{
    if (count != NULL)
        *count = 0;
    if (q == NULL || id < 0 || (id == 0 && !(older_than_s >= 0 && older_than_s <= 1e12)))
        return rre__error(RRE_EINVAL, "rre_queue_dlq_drop: give an id, or an age of at least 0 s");
    char *sub = NULL;
    rre_status st = resolve_subscriber(q, subscriber, &sub);
    if (st != RRE_OK)
        return st;
    struct dlq_write w = {
        .sql = id > 0 ? "DELETE FROM rre_dead_letters WHERE " DLQ_WHERE_ID " AND " DLQ_WHERE_SUB
                      : "DELETE FROM rre_dead_letters WHERE ?2 = 0 AND " DLQ_WHERE_SUB
                        " AND dead_at < ?3",
        .sub = sub,
        .id = id,
        .t = rre__queue_now() - older_than_s,
    };
    st = dlq_write(q, &w, "dropping dead letters");
    free(sub);
    if (st != RRE_OK)
        return st;
    if (id > 0 && w.changes == 0)
        return rre__error(RRE_ENOTFOUND, "no dead letter%s%s has the id %lld",
                          subscriber != NULL ? " of " : "", subscriber != NULL ? subscriber : "",
                          (long long)id);
    if (count != NULL)
        *count = (uint64_t)w.changes;
    return RRE_OK;
}
