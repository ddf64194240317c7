/*
 * queue_dedup.c - content dedup across processes without a random page
 * write per event.
 *
 * DESIGN: a unique index on a uniformly random key (the content hash) makes
 * every insert dirty a random page of the index, and a commit writes each
 * dirty page to the WAL: with batches, about one 4 KiB page per event, six
 * to ten times the cost of the event row itself. So the hashes are kept in
 * two levels:
 *
 *  - `rre_hashes` (event_id, hash, first_seen): every hash this library
 *    stores, appended in event id order; no index on the hash, so an
 *    insert touches only the last page. Subscribers read the stored hash
 *    from it too.
 *  - `rre_dedup` (the same columns, hash UNIQUE): an index of the hashes of
 *    events up to the event id recorded in rre_meta as
 *    `dedup_indexed_upto` (W).
 *
 * Each writer connection (the publishing leader's, an importer's) holds the
 * hashes of `rre_hashes` past W in memory. Inside its write transaction,
 * under the database's write lock, it first reads W and the rows other
 * processes appended since its last transaction, so a lookup in memory and
 * then in `rre_dedup` sees every hash stored before it, whichever process
 * stored it: the cross-process guarantee holds. When more than a bound of
 * hashes are past W, the writer copies them into `rre_dedup` in one sorted
 * statement (each index page touched once per merge rather than once per
 * event), moves W, and empties its memory; the other writers drop theirs at
 * their next transaction. Memory per writer stays under the bound (48 bytes
 * per hash plus the index, about 1 MiB at the default).
 *
 * A transaction that fails after adding hashes leaves memory that the
 * database does not match: the memory is then emptied and reloaded from the
 * table at the next transaction.
 */
#include "queue_sqlite.h"

#include <stdlib.h>
#include <string.h>

static int64_t to_us(double seconds)
{
    return (int64_t)(seconds * 1e6);
}

rre_status rre__qdedup_open(rre__qdedup *d, sqlite3 *db, double window_s, size_t mem_max)
{
    memset(d, 0, sizeof *d);
    d->window_s = window_s;
    d->mem_max = mem_max > 0 ? mem_max : RRE__QUEUE_DEDUP_MEM_MAX;
    /* Never forgets by count: a merge empties it first. */
    rre__dedup_init(&d->mem, SIZE_MAX / 2, window_s > 0 ? to_us(window_s) : 1);
    if (window_s <= 0)
        return RRE_OK;
    rre_status st = rre__queue_prepare(
        db, "SELECT CAST(value AS INTEGER) FROM rre_meta WHERE key = 'dedup_indexed_upto'",
        &d->st_w_get);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "SELECT event_id, hash, first_seen FROM rre_hashes WHERE"
                                " event_id > ? ORDER BY event_id",
                                &d->st_catchup);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "INSERT OR REPLACE INTO rre_hashes(event_id, hash, first_seen)"
                                " VALUES (?, ?, ?)",
                                &d->st_put);
    if (st == RRE_OK)
        st = rre__queue_prepare(db, "SELECT event_id, first_seen FROM rre_dedup WHERE hash = ?",
                                &d->st_old_get);
    if (st == RRE_OK)
        /* Sorted by hash, the index pages are visited once each; a hash
         * stored twice (after its window) keeps its latest event. */
        st = rre__queue_prepare(db,
                                "INSERT OR REPLACE INTO rre_dedup(event_id, hash, first_seen)"
                                " SELECT event_id, hash, first_seen FROM rre_hashes WHERE"
                                " event_id > ?1 AND event_id <= ?2 AND first_seen >= ?3"
                                " AND length(hash) = 32 ORDER BY hash, event_id",
                                &d->st_merge);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "INSERT INTO rre_meta(key, value) VALUES"
                                " ('dedup_indexed_upto', ?) ON CONFLICT(key) DO UPDATE SET"
                                " value = excluded.value",
                                &d->st_w_put);
    if (st != RRE_OK)
        rre__qdedup_close(d);
    return st;
}

void rre__qdedup_close(rre__qdedup *d)
{
    sqlite3_finalize(d->st_w_get);
    sqlite3_finalize(d->st_catchup);
    sqlite3_finalize(d->st_put);
    sqlite3_finalize(d->st_old_get);
    sqlite3_finalize(d->st_merge);
    sqlite3_finalize(d->st_w_put);
    rre__dedup_free(&d->mem);
    memset(d, 0, sizeof *d);
}

static void forget(rre__qdedup *d)
{
    rre__dedup_free(&d->mem);
    d->loaded_upto = 0;
}

int rre__qdedup_begin(rre__qdedup *d, double now)
{
    if (d->window_s <= 0)
        return SQLITE_OK;
    if (d->in_txn)
        forget(d); /* an earlier attempt of this transaction was rolled back */
    d->in_txn = true;
    int rc = sqlite3_step(d->st_w_get);
    int64_t w = rc == SQLITE_ROW ? sqlite3_column_int64(d->st_w_get, 0) : 0;
    sqlite3_reset(d->st_w_get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (w != d->indexed_upto) {
        /* Another writer merged (or the table was made anew: w lower). */
        if (w < d->indexed_upto)
            forget(d);
        else
            rre__dedup_drop_upto(&d->mem, w);
        d->indexed_upto = w;
    }
    if (d->loaded_upto < w)
        d->loaded_upto = w;
    rre__dedup_expire(&d->mem, to_us(now));
    sqlite3_bind_int64(d->st_catchup, 1, d->loaded_upto);
    while ((rc = sqlite3_step(d->st_catchup)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(d->st_catchup, 0);
        d->loaded_upto = id;
        /* A row another program wrote with a hash of another size is not one
         * of ours: it cannot match. */
        if (sqlite3_column_type(d->st_catchup, 1) != SQLITE_BLOB ||
            sqlite3_column_bytes(d->st_catchup, 1) != RRE_HASH_SIZE)
            continue;
        double seen = sqlite3_column_double(d->st_catchup, 2);
        if (!(seen >= now - d->window_s))
            continue; /* expired already */
        if (!rre__dedup_put(&d->mem, sqlite3_column_blob(d->st_catchup, 1), to_us(seen), id)) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_reset(d->st_catchup);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rre__qdedup_find(rre__qdedup *d, const uint8_t hash[RRE_HASH_SIZE], double now, bool *found,
                     int64_t *event_id)
{
    *found = false;
    if (d->window_s <= 0)
        return SQLITE_OK;
    double cutoff = now - d->window_s;
    const struct rre__dedup_entry *e = rre__dedup_find(&d->mem, hash);
    if (e != NULL) {
        /* The latest storing of this content; an older one in rre_dedup is
         * older still. */
        if (e->time >= to_us(cutoff)) {
            *found = true;
            *event_id = e->id;
        }
        return SQLITE_OK;
    }
    sqlite3_bind_blob(d->st_old_get, 1, hash, RRE_HASH_SIZE, SQLITE_STATIC);
    int rc = sqlite3_step(d->st_old_get);
    if (rc == SQLITE_ROW && sqlite3_column_double(d->st_old_get, 1) >= cutoff) {
        *found = true;
        *event_id = sqlite3_column_int64(d->st_old_get, 0);
    }
    sqlite3_reset(d->st_old_get);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rre__qdedup_add(rre__qdedup *d, int64_t event_id, const uint8_t hash[RRE_HASH_SIZE],
                    double now)
{
    if (d->window_s <= 0)
        return SQLITE_OK;
    sqlite3_bind_int64(d->st_put, 1, event_id);
    sqlite3_bind_blob(d->st_put, 2, hash, RRE_HASH_SIZE, SQLITE_STATIC);
    sqlite3_bind_double(d->st_put, 3, now);
    int rc = sqlite3_step(d->st_put);
    sqlite3_reset(d->st_put);
    if (rc != SQLITE_DONE)
        return rc;
    if (!rre__dedup_put(&d->mem, hash, to_us(now), event_id))
        return SQLITE_NOMEM;
    d->loaded_upto = event_id;
    return SQLITE_OK;
}

int rre__qdedup_end(rre__qdedup *d, double now)
{
    if (d->window_s <= 0 || rre__dedup_count(&d->mem) <= d->mem_max)
        return SQLITE_OK;
    sqlite3_bind_int64(d->st_merge, 1, d->indexed_upto);
    sqlite3_bind_int64(d->st_merge, 2, d->loaded_upto);
    sqlite3_bind_double(d->st_merge, 3, now - d->window_s);
    int rc = sqlite3_step(d->st_merge);
    sqlite3_reset(d->st_merge);
    if (rc != SQLITE_DONE)
        return rc;
    sqlite3_bind_int64(d->st_w_put, 1, d->loaded_upto);
    rc = sqlite3_step(d->st_w_put);
    sqlite3_reset(d->st_w_put);
    if (rc != SQLITE_DONE)
        return rc;
    d->merges++;
    /* Committed below by the caller; if that fails, rre__qdedup_after()
     * forgets everything anyway. */
    d->indexed_upto = d->loaded_upto;
    int64_t upto = d->loaded_upto;
    forget(d);
    d->loaded_upto = upto;
    return SQLITE_OK;
}

void rre__qdedup_after(rre__qdedup *d, bool committed)
{
    if (d->window_s <= 0)
        return;
    d->in_txn = false;
    if (!committed) {
        forget(d);
        d->indexed_upto = 0; /* read again */
    }
}
