/*
 * queue_import.c - appending events that come from other hosts (the bridge's
 * inbound side): each row keeps the origin host in `hostname` and the
 * payload text exactly as received, goes through the same content dedup as
 * local publishes, and is committed in one transaction per batch together
 * with the position the importer reached, so a restarted importer knows
 * exactly what it stored.
 *
 * DESIGN: an importer has a connection of its own and is used by one thread.
 * Its transactions take the database's write lock like any publisher's
 * (BEGIN IMMEDIATE), so the dedup check and the insert are atomic with
 * respect to every other process. Rows it appends are not recorded as
 * "own" events of the queue handle: a router linked to the same handle
 * receives them like the events of any other process.
 */
#include "queue_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rre__importer {
    rre_queue *q;
    sqlite3 *db;
    sqlite3_stmt *st_insert, *st_pos_get, *st_pos_put;
    rre__qdedup dedup;
    struct rre__ckpt_asker ckpt; /* its commits' checkpoints */
};

static const char IMPORT_SCHEMA[] = "CREATE TABLE IF NOT EXISTS rre_bridge_positions ("
                                    " name TEXT PRIMARY KEY,"
                                    " position INTEGER NOT NULL,"
                                    " updated_at REAL NOT NULL)";

static int schema_body(sqlite3 *db, void *ctx, rre_status *body_status)
{
    (void)ctx;
    (void)body_status;
    return sqlite3_exec(db, IMPORT_SCHEMA, NULL, NULL, NULL);
}

void rre__importer_close(rre__importer *im)
{
    if (im == NULL)
        return;
    sqlite3_finalize(im->st_insert);
    rre__qdedup_close(&im->dedup);
    sqlite3_finalize(im->st_pos_get);
    sqlite3_finalize(im->st_pos_put);
    sqlite3_close(im->db);
    free(im);
}

rre_status rre__importer_open(rre_queue *q, rre__importer **out)
{
    *out = NULL;
    if (q->read_only)
        return rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    rre__importer *im = calloc(1, sizeof *im);
    if (im == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    im->q = q;
    rre_status st = rre__queue_connect(q, &im->db, 1024);
    if (st == RRE_OK)
        rre__queue_hook_checkpoints(im->db, &im->ckpt, q);
    if (st == RRE_OK)
        st = rre__queue_write_txn(q, im->db, "creating the bridge's table", schema_body, NULL);
    if (st == RRE_OK)
        st = rre__queue_prepare(im->db,
                                "INSERT INTO events(event_type, payload, source, hostname,"
                                " created_at) VALUES (?, ?, ?, ?, ?)",
                                &im->st_insert);
    if (st == RRE_OK)
        st = rre__qdedup_open(&im->dedup, im->db, q->dedup_window_s, q->dedup_mem_max);
    if (st == RRE_OK)
        st = rre__queue_prepare(im->db, "SELECT position FROM rre_bridge_positions WHERE name = ?",
                                &im->st_pos_get);
    if (st == RRE_OK)
        st = rre__queue_prepare(im->db,
                                "INSERT INTO rre_bridge_positions(name, position, updated_at)"
                                " VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                                " position = excluded.position, updated_at = excluded.updated_at",
                                &im->st_pos_put);
    if (st != RRE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rre_last_error());
        rre__importer_close(im);
        return rre__error(st, "%s", msg);
    }
    *out = im;
    return RRE_OK;
}

rre_status rre__importer_position(rre__importer *im, const char *name, int64_t *out, bool *found)
{
    *out = 0;
    *found = false;
    for (int attempt = 0;; attempt++) {
        sqlite3_bind_text(im->st_pos_get, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(im->st_pos_get);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(im->st_pos_get, 0);
            *found = true;
        }
        sqlite3_reset(im->st_pos_get);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            return RRE_OK;
        if (!rre__queue_is_busy(rc) || attempt > 20000)
            return rre__queue_sqlite_error(im->db, rc, "reading the bridge's position");
        rre__queue_backoff(attempt);
    }
}

struct import_ctx {
    rre__importer *im;
    rre__import_row *rows;
    size_t n;
    const char *pos_name;
    int64_t pos;
    double now;
};

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int import_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct import_ctx *c = vctx;
    rre__importer *im = c->im;
    /* A position alone needs no dedup: an importer that only passes
     * messages (this host's own) holds no hashes. */
    int rc = c->n > 0 ? rre__qdedup_begin(&im->dedup) : SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        rre__import_row *r = &c->rows[i];
        r->duplicate = false;
        r->event_id = 0;
        rc = rre__qdedup_find(&im->dedup, r->hash, c->now, &r->duplicate, &r->event_id);
        if (rc != SQLITE_OK)
            return rc;
        if (r->duplicate)
            continue;
        sqlite3_bind_text(im->st_insert, 1, r->spelling, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->st_insert, 2, r->payload_text, (int)r->payload_len, SQLITE_STATIC);
        sqlite3_bind_text(im->st_insert, 3, r->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->st_insert, 4, r->hostname, -1, SQLITE_STATIC);
        sqlite3_bind_double(im->st_insert, 5, c->now);
        rc = step_reset(im->st_insert);
        if (rc != SQLITE_DONE)
            return rc;
        r->event_id = sqlite3_last_insert_rowid(db);
        rc = rre__qdedup_add(&im->dedup, r->event_id, r->hash, c->now);
        if (rc != SQLITE_OK)
            return rc;
    }
    rc = c->n > 0 ? rre__qdedup_end(&im->dedup, db) : SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    if (c->pos_name != NULL) {
        sqlite3_bind_text(im->st_pos_put, 1, c->pos_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(im->st_pos_put, 2, c->pos);
        sqlite3_bind_double(im->st_pos_put, 3, c->now);
        rc = step_reset(im->st_pos_put);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_OK;
}

rre_status rre__importer_append(rre__importer *im, rre__import_row *rows, size_t n,
                                const char *pos_name, int64_t pos)
{
    if (n == 0 && pos_name == NULL)
        return RRE_OK;
    rre__queue_lock(&im->q->mu);
    bool closed = im->q->closed;
    rre__queue_unlock(&im->q->mu);
    if (closed)
        return rre__error(RRE_ECLOSED, "the queue is closed");
    struct import_ctx c = {im, rows, n, pos_name, pos, rre__queue_now()};
    rre_status st =
        rre__queue_write_txn(im->q, im->db, "importing events from other hosts", import_body, &c);
    rre__qdedup_after(&im->dedup, st == RRE_OK);
    return st;
}
