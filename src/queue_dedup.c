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
 *  - `rre_dedup_index` (hash, event_id, first_seen; WITHOUT ROWID, so
 *    ordered by the hash alone): an index of the older hashes. The hash space is cut in 64 slices
 * by the hash's first byte; `rre_dedup_slices` records, per slice, the event id up to which that
 *    slice's hashes are in the index.
 *
 * Each writer connection (the publishing leader's, an importer's) holds in
 * memory, per slice, the hashes of `rre_hashes` past that slice's indexed
 * id. Inside its write transaction, under the database's write lock, it
 * first reads what other writers merged (a counter in rre_meta tells when
 * to read the slices again) and the rows they appended since its last
 * transaction, so a lookup (memory, then the index) sees every hash stored
 * before it, whichever process stored it: the cross-process guarantee
 * holds.
 *
 * When a writer holds more than a bound of hashes, it merges its fullest
 * slice: that slice's hashes go into the index in hash order, the slice's
 * indexed id moves, and the memory of that slice is emptied (the other
 * writers drop theirs at their next transaction). The hashes of one slice
 * fall in one sixty-fourth of the index, so a merge touches few pages,
 * each once, and takes a sixty-fourth of the time a merge of everything
 * would hold the write lock (a whole merge held it for tens of ms, which
 * showed as latency). Memory per writer stays about the bound: 48 bytes
 * per hash plus its index and room to grow, about 2 MiB at the default.
 * A merge runs in a savepoint: when it fails (a full disk) it is put off
 * and the events of the transaction are stored all the same.
 *
 * Nothing leaves memory for its age, and merges copy every hash, expired
 * or not: a clock stepped forward and back again would otherwise lose
 * hashes still inside the window. Retention deletes expired rows.
 *
 * A transaction that fails after adding hashes leaves memory that the
 * database does not match: the memory is then emptied and read again from
 * the tables at the next transaction.
 */
#include "queue_sqlite.h"

#include <stdlib.h>
#include <string.h>

static int64_t to_us(double seconds)
{
    return (int64_t)(seconds * 1e6);
}

static unsigned slice_of(const uint8_t *hash)
{
    return hash[0] / (256 / RRE__QUEUE_DEDUP_SLICES);
}

static void init_slices(rre__qdedup *d)
{
    /* Never forget by count: merges empty them first. */
    int64_t window = d->window_s > 0 ? to_us(d->window_s) : 1;
    for (unsigned i = 0; i < RRE__QUEUE_DEDUP_SLICES; i++)
        rre__dedup_init(&d->mem[i], SIZE_MAX / 2, window);
}

rre_status rre__qdedup_open(rre__qdedup *d, sqlite3 *db, double window_s, size_t mem_max)
{
    memset(d, 0, sizeof *d);
    d->window_s = window_s;
    d->mem_max = mem_max > 0 ? mem_max : RRE__QUEUE_DEDUP_MEM_MAX;
    d->generation = -1;
    init_slices(d);
    if (window_s <= 0)
        return RRE_OK;
    rre_status st = rre__queue_prepare(
        db, "SELECT CAST(value AS INTEGER) FROM rre_meta WHERE key = 'dedup_merges'",
        &d->st_gen_get);
    if (st == RRE_OK)
        st = rre__queue_prepare(db, "SELECT slice, indexed_upto FROM rre_dedup_slices",
                                &d->st_slices_get);
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
        st = rre__queue_prepare(
            db, "SELECT event_id, first_seen FROM rre_dedup_index WHERE hash = ?", &d->st_old_get);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "INSERT OR REPLACE INTO rre_dedup_index(event_id, hash,"
                                " first_seen) VALUES (?, ?, ?)",
                                &d->st_index_put);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "INSERT OR REPLACE INTO rre_dedup_slices(slice, indexed_upto)"
                                " VALUES (?, ?)",
                                &d->st_slice_put);
    if (st == RRE_OK)
        st = rre__queue_prepare(db,
                                "INSERT INTO rre_meta(key, value) VALUES ('dedup_merges', 1)"
                                " ON CONFLICT(key) DO UPDATE SET value ="
                                " CAST(value AS INTEGER) + 1",
                                &d->st_gen_put);
    if (st != RRE_OK)
        rre__qdedup_close(d);
    return st;
}

static void free_slices(rre__qdedup *d)
{
    for (unsigned i = 0; i < RRE__QUEUE_DEDUP_SLICES; i++)
        rre__dedup_free(&d->mem[i]);
}

void rre__qdedup_close(rre__qdedup *d)
{
    sqlite3_finalize(d->st_gen_get);
    sqlite3_finalize(d->st_slices_get);
    sqlite3_finalize(d->st_catchup);
    sqlite3_finalize(d->st_put);
    sqlite3_finalize(d->st_old_get);
    sqlite3_finalize(d->st_index_put);
    sqlite3_finalize(d->st_slice_put);
    sqlite3_finalize(d->st_gen_put);
    free_slices(d);
    memset(d, 0, sizeof *d);
}

/* Empties the memory; everything is read again at the next transaction. */
static void forget(rre__qdedup *d)
{
    free_slices(d);
    memset(d->indexed_upto, 0, sizeof d->indexed_upto);
    d->loaded_upto = 0;
    d->generation = -1;
}

/* Reads every slice's indexed id (after a merge by anyone). */
static int read_slices(rre__qdedup *d)
{
    int64_t w[RRE__QUEUE_DEDUP_SLICES] = {0};
    int rc;
    while ((rc = sqlite3_step(d->st_slices_get)) == SQLITE_ROW) {
        int64_t slice = sqlite3_column_int64(d->st_slices_get, 0);
        if (slice >= 0 && slice < RRE__QUEUE_DEDUP_SLICES)
            w[slice] = sqlite3_column_int64(d->st_slices_get, 1);
    }
    sqlite3_reset(d->st_slices_get);
    if (rc != SQLITE_DONE)
        return rc;
    for (unsigned i = 0; i < RRE__QUEUE_DEDUP_SLICES; i++) {
        if (w[i] < d->indexed_upto[i]) {
            /* Made anew under us: start over. */
            forget(d);
            return read_slices(d);
        }
        if (w[i] > d->indexed_upto[i]) {
            rre__dedup_drop_upto(&d->mem[i], w[i]);
            d->indexed_upto[i] = w[i];
        }
    }
    /* The catch-up starts after the lowest indexed id at least. */
    int64_t low = w[0];
    for (unsigned i = 1; i < RRE__QUEUE_DEDUP_SLICES; i++)
        if (w[i] < low)
            low = w[i];
    if (d->loaded_upto < low)
        d->loaded_upto = low;
    return SQLITE_OK;
}

int rre__qdedup_begin(rre__qdedup *d)
{
    if (d->window_s <= 0)
        return SQLITE_OK;
    if (d->in_txn)
        forget(d); /* an earlier attempt of this transaction was rolled back */
    d->in_txn = true;
    int rc = sqlite3_step(d->st_gen_get);
    int64_t gen = rc == SQLITE_ROW ? sqlite3_column_int64(d->st_gen_get, 0) : 0;
    sqlite3_reset(d->st_gen_get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (gen != d->generation) {
        rc = read_slices(d);
        if (rc != SQLITE_OK)
            return rc;
        d->generation = gen;
    }
    /* Nothing is forgotten for its age here (nor left out of a merge): a
     * clock stepped forward and back again would lose hashes still inside
     * the window. Retention deletes expired rows from both tables. */
    sqlite3_bind_int64(d->st_catchup, 1, d->loaded_upto);
    while ((rc = sqlite3_step(d->st_catchup)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(d->st_catchup, 0);
        d->loaded_upto = id;
        /* A row another program wrote with a hash of another size is not one
         * of ours: it cannot match. */
        if (sqlite3_column_type(d->st_catchup, 1) != SQLITE_BLOB ||
            sqlite3_column_bytes(d->st_catchup, 1) != RRE_HASH_SIZE)
            continue;
        const uint8_t *hash = sqlite3_column_blob(d->st_catchup, 1);
        unsigned sl = slice_of(hash);
        double seen = sqlite3_column_double(d->st_catchup, 2);
        if (id <= d->indexed_upto[sl])
            continue; /* in the index already */
        if (!rre__dedup_put(&d->mem[sl], hash, to_us(seen), id)) {
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
    const struct rre__dedup_entry *e = rre__dedup_find(&d->mem[slice_of(hash)], hash);
    if (e != NULL) {
        /* The latest storing of this content; one in the index is older. */
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

int rre__qdedup_add(rre__qdedup *d, int64_t event_id, const uint8_t hash[RRE_HASH_SIZE], double now)
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
    if (!rre__dedup_put(&d->mem[slice_of(hash)], hash, to_us(now), event_id))
        return SQLITE_NOMEM;
    d->loaded_upto = event_id;
    return SQLITE_OK;
}

static int by_hash(const void *a, const void *b)
{
    const struct rre__dedup_entry *x = *(const struct rre__dedup_entry *const *)a;
    const struct rre__dedup_entry *y = *(const struct rre__dedup_entry *const *)b;
    return memcmp(x->hash, y->hash, RRE_HASH_SIZE);
}

/* Moves slice `sl` into the index: its live hashes in hash order, then its
 * indexed id up to everything this writer has looked at. */
static int merge_slice(rre__qdedup *d, unsigned sl)
{
    struct rre__dedup *m = &d->mem[sl];
    size_t n = rre__dedup_count(m);
    const struct rre__dedup_entry **order = malloc((n > 0 ? n : 1) * sizeof *order);
    if (order == NULL)
        return SQLITE_NOMEM;
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rre__dedup_entry *e = rre__dedup_at(m, i);
        if (e->id != RRE__DEDUP_DEAD)
            order[live++] = e;
    }
    qsort(order, live, sizeof *order, by_hash);
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < live && rc == SQLITE_DONE; i++) {
        sqlite3_bind_int64(d->st_index_put, 1, order[i]->id);
        sqlite3_bind_blob(d->st_index_put, 2, order[i]->hash, RRE_HASH_SIZE, SQLITE_STATIC);
        sqlite3_bind_double(d->st_index_put, 3, (double)order[i]->time / 1e6);
        rc = sqlite3_step(d->st_index_put);
        sqlite3_reset(d->st_index_put);
    }
    free(order);
    if (rc != SQLITE_DONE)
        return rc;
    sqlite3_bind_int64(d->st_slice_put, 1, sl);
    sqlite3_bind_int64(d->st_slice_put, 2, d->loaded_upto);
    rc = sqlite3_step(d->st_slice_put);
    sqlite3_reset(d->st_slice_put);
    if (rc == SQLITE_DONE) {
        rc = sqlite3_step(d->st_gen_put);
        sqlite3_reset(d->st_gen_put);
    }
    if (rc != SQLITE_DONE)
        return rc;
    /* If the commit fails, rre__qdedup_after() forgets everything anyway.
     * The slice keeps its memory: it fills again at the same pace. */
    rre__dedup_clear(m);
    d->indexed_upto[sl] = d->loaded_upto;
    d->generation++; /* this writer's own merge: no need to read the slices */
    d->merges++;
    return SQLITE_OK;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int rre__qdedup_end(rre__qdedup *d, sqlite3 *db)
{
    if (d->window_s <= 0)
        return SQLITE_OK;
    bool started = false;
    int rc = SQLITE_OK;
    for (;;) {
        size_t total = 0, most = 0;
        unsigned fullest = 0;
        for (unsigned i = 0; i < RRE__QUEUE_DEDUP_SLICES; i++) {
            size_t c = rre__dedup_count(&d->mem[i]);
            total += c;
            if (c > most) {
                most = c;
                fullest = i;
            }
        }
        if (total <= d->mem_max || most == 0)
            break;
        /* In a savepoint: a merge that fails (a full disk) must not fail
         * the events of the transaction, which fit without it. */
        if (!started) {
            rc = exec(db, "SAVEPOINT rre_dedup_merge");
            if (rc != SQLITE_OK)
                return rc;
            started = true;
        }
        rc = merge_slice(d, fullest);
        if (rc != SQLITE_OK)
            break;
    }
    if (!started)
        return SQLITE_OK;
    if (rc == SQLITE_OK)
        return exec(db, "RELEASE rre_dedup_merge");
    /* Put off: the memory no longer matches the tables (slices merged
     * before the failure were emptied), so it is read again next time. */
    if (sqlite3_get_autocommit(db))
        return rc; /* SQLite rolled the whole transaction back */
    int undo = exec(db, "ROLLBACK TO rre_dedup_merge");
    if (undo == SQLITE_OK)
        undo = exec(db, "RELEASE rre_dedup_merge");
    if (undo != SQLITE_OK)
        return rc;
    rre__log(RRE_LOG_WARN, "queue",
             "merging stored hashes into the dedup index failed (%s); put off", sqlite3_errstr(rc));
    forget(d);
    d->in_txn = true;
    return SQLITE_OK;
}

void rre__qdedup_after(rre__qdedup *d, bool committed)
{
    if (d->window_s <= 0)
        return;
    d->in_txn = false;
    if (!committed)
        forget(d);
}
