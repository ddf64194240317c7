/*
 * queue_own.c - the ids of the events this queue handle appended, recorded
 * inside the publishing transaction before its commit, so a reader of the
 * same process (the router link, src/link.c) can recognise its own events
 * when they come back from the file without ever seeing a row first.
 *
 * The list is kept in increasing id order under own_mu; it is only kept
 * while tracking is on (a link is attached). Each id carries the first
 * bytes of the event's content hash: between a rollback and the removal of
 * its ids another process may commit rows under the same ids, and those
 * are not ours.
 */
#include "queue_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- own ids ------------------------------------------------------------ */

void rre__queue_own_set_tracking(rre_queue *q, bool on)
{
    rre__queue_lock(&q->own_mu);
    q->own_tracking = on;
    if (!on)
        q->own_len = 0;
    rre__queue_unlock(&q->own_mu);
}

void rre__queue_own_add(rre_queue *q, int64_t id, const uint8_t hash[RRE_HASH_SIZE])
{
    rre__queue_lock(&q->own_mu);
    if (q->own_tracking) {
        if (q->own_len == q->own_cap) {
            size_t cap = q->own_cap ? q->own_cap * 2 : 256;
            struct rre__own_id *n = realloc(q->own_ids, cap * sizeof *n);
            if (n == NULL) {
                /* Without memory the id is forgotten: the router's dedup
                 * window still catches the echo by its hash. */
                rre__queue_unlock(&q->own_mu);
                return;
            }
            q->own_ids = n;
            q->own_cap = cap;
        }
        struct rre__own_id *e = &q->own_ids[q->own_len++];
        e->id = id;
        memcpy(e->hash, hash, sizeof e->hash);
    }
    rre__queue_unlock(&q->own_mu);
}

void rre__queue_own_remove(rre_queue *q, int64_t id)
{
    rre__queue_lock(&q->own_mu);
    for (size_t i = q->own_len; i-- > 0;) {
        if (q->own_ids[i].id == id) {
            memmove(q->own_ids + i, q->own_ids + i + 1, (q->own_len - i - 1) * sizeof *q->own_ids);
            q->own_len--;
            break;
        }
    }
    rre__queue_unlock(&q->own_mu);
}

void rre__queue_own_drop_upto(rre_queue *q, int64_t cursor)
{
    rre__queue_lock(&q->own_mu);
    size_t drop = 0;
    while (drop < q->own_len && q->own_ids[drop].id <= cursor)
        drop++;
    if (drop > 0) {
        memmove(q->own_ids, q->own_ids + drop, (q->own_len - drop) * sizeof *q->own_ids);
        q->own_len -= drop;
    }
    rre__queue_unlock(&q->own_mu);
}

bool rre__queue_own_take(rre_queue *q, int64_t id, const uint8_t hash[RRE_HASH_SIZE])
{
    rre__queue_lock(&q->own_mu);
    /* Ids are committed in increasing order and read in increasing order:
     * anything smaller than `id` still listed will never be read (deleted by
     * retention before the receiver got there). An entry for `id` is used
     * up either way: the row with that id has now been read. */
    size_t drop = 0;
    while (drop < q->own_len && q->own_ids[drop].id < id)
        drop++;
    bool listed = drop < q->own_len && q->own_ids[drop].id == id;
    bool mine = listed && memcmp(q->own_ids[drop].hash, hash, sizeof q->own_ids[drop].hash) == 0;
    if (listed)
        drop++;
    if (drop > 0) {
        memmove(q->own_ids, q->own_ids + drop, (q->own_len - drop) * sizeof *q->own_ids);
        q->own_len -= drop;
    }
    rre__queue_unlock(&q->own_mu);
    return mine;
}

/* The id of the newest event, so a transient receiver starts after it. */
rre_status rre__queue_last_event_id(rre_queue *q, int64_t *out)
{
    *out = 0;
    rre__queue_lock(&q->admin_mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->adb, "SELECT max(event_id) FROM events", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    rre_status status = rc == SQLITE_OK
                            ? RRE_OK
                            : rre__queue_sqlite_error(q->adb, rc, "reading the newest event id");
    sqlite3_finalize(st);
    rre__queue_unlock(&q->admin_mu);
    return status;
}

rre_status rre_queue_position_at(rre_queue *q, double unix_time, int64_t *since_id)
{
    if (since_id != NULL)
        *since_id = 0;
    if (q == NULL || since_id == NULL || !(unix_time == unix_time))
        return rre__error(RRE_EINVAL, "rre_queue_position_at: q, since_id and a time are needed");
    /* The first event created at or after the time (rows whose created_at
     * is not a number are poison rows and do not count); when there is
     * none, the end of the queue. */
    rre__queue_lock(&q->admin_mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->adb,
                                "SELECT (SELECT min(event_id) FROM events WHERE created_at >= ?1"
                                " AND typeof(created_at) IN ('integer', 'real')),"
                                " (SELECT max(event_id) FROM events)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_double(st, 1, unix_time);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *since_id = sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) - 1
                                                                  : sqlite3_column_int64(st, 1);
            rc = SQLITE_OK;
        }
    }
    rre_status status = rc == SQLITE_OK
                            ? RRE_OK
                            : rre__queue_sqlite_error(q->adb, rc, "finding a position by time");
    sqlite3_finalize(st);
    rre__queue_unlock(&q->admin_mu);
    return status;
}
