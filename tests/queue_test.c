/*
 * queue_test.c - the durable SQLite queue within one process: location and
 * file mode, schema, publishing and dedup, group commit, durable
 * subscribers (order, resume, leases, filters, acks, handler failures),
 * wake-up, retention and statistics.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
    char *dir;
    char path[512];
    rre_queue *q;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/sub/dir/events.db", f->dir);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    assert_int_equal(rre_queue_create(&f->q, &o), RRE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(f->q);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static json_t *obj(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

static int64_t publish(rre_queue *q, rre_event_type t, const char *payload, bool *dup)
{
    json_t *p = obj(payload);
    rre_queue_publish_result r;
    rre_status st = rre_queue_publish(q, t, p, "test", NULL, NULL, &r);
    json_decref(p);
    if (st != RRE_OK)
        fail_msg("publish: %s: %s", rre_strerror(st), rre_last_error());
    if (dup != NULL)
        *dup = r.duplicate;
    return r.event_id;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static int64_t sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static char *sql_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* Collects delivered event ids. */
struct sink {
    int64_t ids[4096];
    rre_event_type types[4096];
    size_t n;
    int fail_every; /* handler fails on every n-th event when > 0 */
};

static rre_status collect(const rre_event *ev, void *ud)
{
    struct sink *s = ud;
    if (s->n < 4096) {
        s->types[s->n] = ev->type;
        s->ids[s->n++] = ev->event_id;
    }
    if (s->fail_every > 0 && s->n % (size_t)s->fail_every == 0)
        return RRE_EINTERNAL;
    return RRE_OK;
}

static rre_subscriber *durable(rre_queue *q, const char *name)
{
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    rre_subscriber *s = NULL;
    rre_status st = rre_subscriber_create(&s, q, &o);
    if (st != RRE_OK)
        fail_msg("subscriber: %s: %s", rre_strerror(st), rre_last_error());
    return s;
}

/* ---- location and file ------------------------------------------------ */

static void test_default_path_follows_the_location_rules(void **state)
{
    (void)state;
    char buf[512], want[512];
    char *saved_c =
        getenv("RINGRIFT_COORDINATION_DIR") ? strdup(getenv("RINGRIFT_COORDINATION_DIR")) : NULL;
    char *saved_x = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
    setenv("RINGRIFT_COORDINATION_DIR", "/coord", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    assert_int_equal(rre_queue_default_path(buf, sizeof buf), RRE_OK);
    assert_string_equal(buf, "/coord/events.db");
    unsetenv("RINGRIFT_COORDINATION_DIR");
    assert_int_equal(rre_queue_default_path(buf, sizeof buf), RRE_OK);
    assert_string_equal(buf, "/run/user/7/ringrift_coordination/events.db");
    setenv("XDG_RUNTIME_DIR", "", 1);
    assert_int_equal(rre_queue_default_path(buf, sizeof buf), RRE_OK);
    if (getuid() == 0)
        snprintf(want, sizeof want, "/tmp/ringrift_coordination/events.db");
    else
        snprintf(want, sizeof want, "/tmp/ringrift_coordination_%u/events.db", (unsigned)getuid());
    assert_string_equal(buf, want);
    assert_int_equal(rre_queue_default_path(buf, 8), RRE_ELIMIT);
    if (saved_c)
        setenv("RINGRIFT_COORDINATION_DIR", saved_c, 1);
    if (saved_x)
        setenv("XDG_RUNTIME_DIR", saved_x, 1);
    else
        unsetenv("XDG_RUNTIME_DIR");
    free(saved_c);
    free(saved_x);
}

static void test_create_makes_parent_dirs_and_owner_only_files(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"a\":1}", NULL);
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
}

static void test_schema_is_pythons_with_generated_column_and_indexes(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"a\":1}", NULL);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events WHERE INDEX_event_type = event_type"),
                     1);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN"
                                 " ('idx_events_type','idx_events_created','idx_acks_subscriber',"
                                 "'idx_acks_event')"),
                     4);
    char *mode = sql_text(db, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name"
                                 " IN ('subscribers','acks')"),
                     2);
    sqlite3_close(db);
}

/* ---- publishing ---------------------------------------------------------- */

static void test_publish_returns_increasing_ids_and_writes_queue_spelling(void **state)
{
    struct fixture *f = *state;
    int64_t a = publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"n\":1}", NULL);
    int64_t b = publish(f->q, RRE_EV_ELO_UPDATED, "{\"n\":2}", NULL);
    assert_true(a > 0);
    assert_true(b > a);
    sqlite3 *db = raw_open(f->path);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT event_type FROM events WHERE event_id = %lld", (long long)a);
    char *t = sql_text(db, sql);
    assert_string_equal(t, rre_event_get(RRE_EV_TRAINING_COMPLETED)->queue_spelling);
    free(t);
    snprintf(sql, sizeof sql, "SELECT event_type FROM events WHERE event_id = %lld", (long long)b);
    t = sql_text(db, sql);
    assert_string_equal(t, rre_event_get(RRE_EV_ELO_UPDATED)->queue_spelling);
    free(t);
    assert_int_equal(sql_int(db,
                             "SELECT count(*) FROM events WHERE hostname = 'testhost' AND"
                             " source = 'test' AND abs(created_at - strftime('%s','now')) < 60"),
                     2);
    sqlite3_close(db);
}

static void test_publish_stores_compact_payload_with_envelope_fields(void **state)
{
    struct fixture *f = *state;
    json_t *p = obj("{\"config_key\":\"hex8_2p\",\"x\":[1, 2]}");
    rre_queue_publish_result r;
    const char *tp = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01";
    assert_int_equal(rre_queue_publish(f->q, RRE_EV_MODEL_PROMOTED, p, NULL,
                                       "2026-01-02T03:04:05.000000Z", tp, &r),
                     RRE_OK);
    uint8_t h[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_MODEL_PROMOTED, p, h), RRE_OK);
    assert_memory_equal(h, r.hash, RRE_HASH_SIZE);
    json_decref(p);
    sqlite3 *db = raw_open(f->path);
    char *text = sql_text(db, "SELECT payload FROM events");
    assert_string_equal(text, "{\"config_key\":\"hex8_2p\",\"x\":[1,2],"
                              "\"timestamp\":\"2026-01-02T03:04:05.000000Z\",\"trace_id\":"
                              "\"00-0123456789abcdef0123456789abcdef-0123456789abcdef-01\"}");
    free(text);
    sqlite3_close(db);
}

static void test_publish_stores_numbers_in_shortest_round_trip_form(void **state)
{
    struct fixture *f = *state;
    json_t *p = obj("{\"final_loss\":0.0423,\"elo\":1650.50,\"epochs\":50}");
    assert_int_equal(rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, p, NULL, NULL, NULL, NULL),
                     RRE_OK);
    json_decref(p);
    sqlite3 *db = raw_open(f->path);
    char *text = sql_text(db, "SELECT payload FROM events");
    assert_string_equal(text, "{\"elo\":1650.5,\"epochs\":50,\"final_loss\":0.0423}");
    free(text);
    sqlite3_close(db);
}

static void test_duplicate_within_window_is_reported_and_not_stored(void **state)
{
    struct fixture *f = *state;
    bool dup = true;
    int64_t a = publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"model\":\"m\",\"epochs\":3}", &dup);
    assert_false(dup);
    /* Key order and envelope fields do not change the content. */
    int64_t b = publish(f->q, RRE_EV_TRAINING_COMPLETED,
                        "{\"epochs\":3,\"model\":\"m\",\"timestamp\":\"x\"}", &dup);
    assert_true(dup);
    assert_int_equal(a, b);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 1);
    sqlite3_close(db);
    /* The same content as another type is not a duplicate. */
    publish(f->q, RRE_EV_TRAINING_STARTED, "{\"model\":\"m\",\"epochs\":3}", &dup);
    assert_false(dup);
}

static void test_duplicate_after_window_is_stored(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    char path[600];
    snprintf(path, sizeof path, "%s/w.db", f->dir);
    o.path = path;
    o.dedup_window_seconds = 0.05;
    o.maintenance_interval_ms = -1;
    rre_queue *q;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    bool dup;
    int64_t a = publish(q, RRE_EV_TRAINING_COMPLETED, "{\"k\":1}", &dup);
    usleep(100 * 1000);
    int64_t b = publish(q, RRE_EV_TRAINING_COMPLETED, "{\"k\":1}", &dup);
    assert_false(dup);
    assert_true(b > a);
    rre_queue_destroy(q);
}

static void test_publish_refuses_non_object_and_closed_queue(void **state)
{
    struct fixture *f = *state;
    json_t *arr = json_array();
    assert_int_equal(
        rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, arr, NULL, NULL, NULL, NULL),
        RRE_ENOT_OBJECT);
    json_decref(arr);
    json_t *p = json_object();
    assert_int_equal(rre_queue_publish(f->q, (rre_event_type)99999, p, NULL, NULL, NULL, NULL),
                     RRE_EUNKNOWN_TYPE);
    rre_queue_close(f->q);
    assert_int_equal(rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, p, NULL, NULL, NULL, NULL),
                     RRE_ECLOSED);
    json_decref(p);
}

/* ---- batches ------------------------------------------------------------- */

static void batch_fill(rre_event *evs, size_t n)
{
    memset(evs, 0, n * sizeof *evs);
    for (size_t i = 0; i < n; i++) {
        evs[i].type = RRE_EV_NEW_GAMES_AVAILABLE;
        evs[i].payload = json_pack("{s:s,s:I}", "config_key", "hex8_2p", "seq", (json_int_t)i);
    }
}

static void batch_free(rre_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i].payload);
}

static void test_batch_stores_every_event_in_order_in_one_call(void **state)
{
    struct fixture *f = *state;
    rre_event evs[3];
    batch_fill(evs, 3);
    evs[1].type = RRE_EV_TRAINING_COMPLETED;
    evs[2].type = RRE_EV_STAGE_SYNC_COMPLETE; /* an alias: stored as its target */
    snprintf(evs[2].timestamp, sizeof evs[2].timestamp, "2026-01-02T03:04:05Z");
    bool dup[3] = {true, true, true};
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 3, dup), RRE_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_false(dup[i]);
        uint8_t h[RRE_HASH_SIZE];
        assert_int_equal(rre_content_hash(evs[i].type, evs[i].payload, h), RRE_OK);
        assert_memory_equal(h, evs[i].hash, RRE_HASH_SIZE);
    }
    assert_true(evs[0].event_id > 0);
    assert_int_equal(evs[1].event_id, evs[0].event_id + 1);
    assert_int_equal(evs[2].event_id, evs[1].event_id + 1);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 3);
    char *t = sql_text(db, "SELECT group_concat(event_type, ',') FROM"
                           " (SELECT event_type FROM events ORDER BY event_id)");
    const rre_event_info *sync = rre_event_get(RRE_EV_DATA_SYNC_COMPLETED);
    char want[256];
    snprintf(want, sizeof want, "%s,%s,%s",
             rre_event_get(RRE_EV_NEW_GAMES_AVAILABLE)->queue_spelling,
             rre_event_get(RRE_EV_TRAINING_COMPLETED)->queue_spelling, sync->queue_spelling);
    assert_string_equal(t, want);
    free(t);
    t = sql_text(db, "SELECT json_extract(payload, '$.timestamp') FROM events"
                     " ORDER BY event_id DESC LIMIT 1");
    assert_string_equal(t, "2026-01-02T03:04:05Z");
    free(t);
    sqlite3_close(db);
    /* An empty batch does nothing. */
    assert_int_equal(rre_queue_publish_batch(f->q, NULL, 0, NULL), RRE_OK);
    batch_free(evs, 3);
}

static void test_batch_reports_duplicates_within_it_and_of_earlier_events(void **state)
{
    struct fixture *f = *state;
    bool dup;
    int64_t earlier =
        publish(f->q, RRE_EV_NEW_GAMES_AVAILABLE, "{\"config_key\":\"hex8_2p\",\"seq\":1}", &dup);
    rre_event evs[4];
    batch_fill(evs, 4); /* seq 0, 1, 2, 3 */
    json_decref(evs[3].payload);
    evs[3].payload = json_pack("{s:I,s:s}", "seq", (json_int_t)0, "config_key", "hex8_2p");
    bool dups[4];
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 4, dups), RRE_OK);
    assert_false(dups[0]);
    assert_true(dups[1]); /* published before the batch */
    assert_int_equal(evs[1].event_id, earlier);
    assert_false(dups[2]);
    assert_true(dups[3]); /* the same content as evs[0], in other key order */
    assert_int_equal(evs[3].event_id, evs[0].event_id);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 3);
    sqlite3_close(db);
    batch_free(evs, 4);
}

static void test_batch_with_a_bad_event_names_it_and_stores_nothing(void **state)
{
    struct fixture *f = *state;
    rre_event evs[3];
    batch_fill(evs, 3);
    json_decref(evs[1].payload);
    evs[1].payload = json_array();
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 3, NULL), RRE_ENOT_OBJECT);
    assert_non_null(strstr(rre_last_error(), "event 1"));
    json_decref(evs[1].payload);
    evs[1].payload = json_object();
    evs[2].type = (rre_event_type)99999;
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 3, NULL), RRE_EUNKNOWN_TYPE);
    assert_non_null(strstr(rre_last_error(), "event 2"));
    evs[2].type = RRE_EV_NEW_GAMES_AVAILABLE;
    assert_int_equal(rre_queue_publish_batch(NULL, evs, 3, NULL), RRE_EINVAL);
    assert_int_equal(rre_queue_publish_batch(f->q, NULL, 3, NULL), RRE_EINVAL);
    rre_queue_close(f->q);
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 3, NULL), RRE_ECLOSED);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 0);
    sqlite3_close(db);
    batch_free(evs, 3);
}

static void test_batch_that_does_not_fit_stores_nothing(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    char path[600];
    snprintf(path, sizeof path, "%s/small.db", f->dir);
    o.path = path;
    o.max_page_count = 60;
    o.maintenance_interval_ms = -1;
    rre_queue *q;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    enum { N = 2000 };
    rre_event *evs = malloc(N * sizeof *evs);
    batch_fill(evs, N);
    assert_int_equal(rre_queue_publish_batch(q, evs, 10, NULL), RRE_OK);
    assert_int_equal(rre_queue_publish_batch(q, evs + 10, N - 10, NULL), RRE_EFULL);
    rre_queue_destroy(q);
    sqlite3 *db = raw_open(path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 10);
    sqlite3_close(db);
    batch_free(evs, N);
    free(evs);
}

static rre_status keep_timestamp(const rre_event *ev, void *ud)
{
    snprintf(ud, RRE_TIMESTAMP_MAX, "%s", ev->timestamp);
    return RRE_OK;
}

/* A timestamp or trace id that is not UTF-8 cannot be JSON text: the publish
 * is refused and nothing stored, rather than a row no reader can decode. */
static void test_envelope_fields_that_are_not_utf8_are_refused_and_nothing_stored(void **state)
{
    struct fixture *f = *state;
    json_t *p = obj("{\"a\":1}");
    assert_int_equal(
        rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, p, NULL, "2026\xff", NULL, NULL),
        RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "timestamp"));
    assert_int_equal(
        rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, p, NULL, NULL, "t\"\xc3", NULL),
        RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "trace_id"));
    rre_event evs[2];
    batch_fill(evs, 2);
    snprintf(evs[1].trace_id, sizeof evs[1].trace_id, "00-\xfe");
    assert_int_equal(rre_queue_publish_batch(f->q, evs, 2, NULL), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "event 1"));
    batch_free(evs, 2);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 0);
    sqlite3_close(db);
    /* Valid UTF-8 beyond ASCII is stored as given; not being a time, it does
     * not become the envelope time (the row's created_at does). */
    assert_int_equal(rre_queue_publish(f->q, RRE_EV_TRAINING_COMPLETED, p, NULL,
                                       "2026-01-02T03:04:05Z \xc3\xa9", NULL, NULL),
                     RRE_OK);
    json_decref(p);
    rre_subscriber *s = durable(f->q, "utf8");
    char ts[RRE_TIMESTAMP_MAX] = "";
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep_timestamp, ts, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(ts), 27);
    assert_int_equal(ts[26], 'Z');
    assert_int_equal(sql_int(db = raw_open(f->path),
                             "SELECT count(*) FROM events WHERE payload LIKE"
                             " '%\"timestamp\":\"2026-01-02T03:04:05Z \xc3\xa9\"%'"),
                     1);
    sqlite3_close(db);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.poison, 0);
    rre_subscriber_destroy(s);
}

struct batch_thread {
    rre_queue *q;
    int id;
    int failures, gaps;
};

/* Publishes 20 batches of 25 events, each followed by one single publish;
 * counts the batches whose ids are not consecutive. */
static void *batch_publisher(void *arg)
{
    struct batch_thread *t = arg;
    for (int b = 0; b < 20; b++) {
        rre_event evs[25];
        memset(evs, 0, sizeof evs);
        for (int i = 0; i < 25; i++) {
            evs[i].type = RRE_EV_NEW_GAMES_AVAILABLE;
            evs[i].payload = json_pack("{s:i,s:i,s:i}", "thread", t->id, "batch", b, "seq", i);
        }
        if (rre_queue_publish_batch(t->q, evs, 25, NULL) != RRE_OK)
            t->failures++;
        for (int i = 0; i < 25; i++) {
            if (i > 0 && evs[i].event_id != evs[i - 1].event_id + 1)
                t->gaps++;
            json_decref(evs[i].payload);
        }
        json_t *p = json_pack("{s:i,s:i}", "thread", t->id, "single", b);
        if (rre_queue_publish(t->q, RRE_EV_NEW_GAMES_AVAILABLE, p, NULL, NULL, NULL, NULL) !=
            RRE_OK)
            t->failures++;
        json_decref(p);
    }
    return NULL;
}

static void test_batches_and_single_publishes_from_threads_store_every_event(void **state)
{
    struct fixture *f = *state;
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    struct batch_thread t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct batch_thread){f->q, i, 0, 0};
        pthread_create(&th[i], NULL, batch_publisher, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
        assert_int_equal(t[i].gaps, 0); /* one call, one transaction: ids in a run */
    }
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), THREADS * 20 * 26);
    sqlite3_close(db);
}

struct pub_thread {
    rre_queue *q;
    int id, n;
    int failures;
};

static void *publisher(void *arg)
{
    struct pub_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        json_t *p = json_pack("{s:i,s:i}", "thread", t->id, "seq", i);
        if (rre_queue_publish(t->q, RRE_EV_NEW_GAMES_AVAILABLE, p, NULL, NULL, NULL, NULL) !=
            RRE_OK)
            t->failures++;
        json_decref(p);
    }
    return NULL;
}

static void test_group_commit_from_threads_stores_every_event(void **state)
{
    struct fixture *f = *state;
    enum { THREADS = 4, N = 500 };
    pthread_t th[THREADS];
    struct pub_thread t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct pub_thread){f->q, i, N, 0};
        pthread_create(&th[i], NULL, publisher, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), THREADS * N);
    /* Per thread, rows are in publish order. */
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events a JOIN events b ON"
                                 " json_extract(a.payload,'$.thread') ="
                                 " json_extract(b.payload,'$.thread') AND"
                                 " json_extract(a.payload,'$.seq') + 1 ="
                                 " json_extract(b.payload,'$.seq') WHERE b.event_id < a.event_id"),
                     0);
    sqlite3_close(db);
}

static void *publish_one(void *arg)
{
    rre_queue *q = arg;
    json_t *p = json_pack("{s:i}", "n", 1);
    rre_status st = rre_queue_publish(q, RRE_EV_TRAINING_COMPLETED, p, NULL, NULL, NULL, NULL);
    json_decref(p);
    return (void *)(intptr_t)st;
}

/* rre_queue_close() while the first publish (which opens the writer
 * connection) is under way: the publish is committed or refused as closed. */
static void test_close_during_the_first_publish(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 20; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/close%d.db", f->dir, i);
        rre_queue_options o;
        rre_queue_options_init(&o);
        o.path = path;
        o.maintenance_interval_ms = 60000;
        rre_queue *q;
        assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, publish_one, q), 0);
        rre_queue_close(q);
        void *ret;
        pthread_join(th, &ret);
        rre_status st = (rre_status)(intptr_t)ret;
        assert_true(st == RRE_OK || st == RRE_ECLOSED);
        rre_queue_destroy(q);
    }
}

/* ---- subscribers ---------------------------------------------------------- */

static void test_subscriber_gets_events_in_order_and_resumes_after_restart(void **state)
{
    struct fixture *f = *state;
    int64_t ids[6];
    for (int i = 0; i < 3; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"i\":%d}", i);
        ids[i] = publish(f->q, RRE_EV_ELO_UPDATED, p, NULL);
    }
    rre_subscriber *s = durable(f->q, "worker");
    assert_string_equal(rre_subscriber_id(s), "testhost:stable:worker");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.ids[i], ids[i]);
    rre_subscriber_destroy(s);
    for (int i = 3; i < 6; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"i\":%d}", i);
        ids[i] = publish(f->q, RRE_EV_ELO_UPDATED, p, NULL);
    }
    s = durable(f->q, "worker");
    k.n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.ids[i], ids[3 + i]);
    rre_subscriber_destroy(s);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM acks WHERE subscriber_id ="
                                 " 'testhost:stable:worker'"),
                     6);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM subscribers WHERE subscriber_id ="
                                 " 'testhost:stable:worker' AND process_name = 'worker'"),
                     1);
    sqlite3_close(db);
}

static void test_max_limits_one_poll_and_the_rest_comes_next(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"i\":%d}", i);
        publish(f->q, RRE_EV_ELO_UPDATED, p, NULL);
    }
    rre_subscriber *s = durable(f->q, "limited");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 2, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(k.n, 5);
    rre_subscriber_destroy(s);
}

static void test_second_holder_gets_eheld_naming_host_and_pid(void **state)
{
    struct fixture *f = *state;
    rre_subscriber *s = durable(f->q, "exclusive");
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "exclusive";
    rre_subscriber *t = NULL;
    assert_int_equal(rre_subscriber_create(&t, f->q, &o), RRE_EHELD);
    assert_null(t);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(rre_last_error(), pid));
    assert_non_null(strstr(rre_last_error(), "testhost"));
    rre_subscriber_destroy(s);
    /* Released: now it can be taken. */
    t = durable(f->q, "exclusive");
    rre_subscriber_destroy(t);
}

static void test_expired_lease_nobody_took_is_taken_back(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    rre_subscriber *s = durable(f->q, "sleepy");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 1);
    /* Retention removed the lease after a long silence; nobody took it. */
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM rre_leases", NULL, NULL, NULL), SQLITE_OK);
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 1);
    char want[64];
    snprintf(want, sizeof want, "%ld", (long)getpid());
    char *pid =
        sql_text(db, "SELECT pid FROM rre_leases WHERE subscriber_id LIKE '%:stable:sleepy'");
    assert_non_null(pid);
    assert_string_equal(pid, want);
    free(pid);
    /* Another holder's row is respected: EHELD. */
    assert_int_equal(sqlite3_exec(db, "UPDATE rre_leases SET token = token + 1", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":3}", NULL);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_EHELD);
    rre_subscriber_destroy(s);
}

static void test_dead_holder_is_taken_over(void **state)
{
    struct fixture *f = *state;
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    rre_subscriber *s = durable(f->q, "x"); /* makes the tables and a cursor */
    rre_subscriber_destroy(s);
    sqlite3 *db = raw_open(f->path);
    char sql[300];
    snprintf(sql, sizeof sql,
             "INSERT INTO rre_leases VALUES ('testhost:stable:orphan','testhost',%d,0,1,"
             "strftime('%%s','now'))",
             (int)child);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    /* A holder on another host whose heartbeat is fresh is alive. */
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO rre_leases VALUES ('testhost:stable:remote',"
                                  "'otherhost',1,0,1,strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    /* ... and one whose heartbeat is older than the timeout is dead. */
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO rre_leases VALUES ('testhost:stable:stale',"
                                  "'otherhost',1,0,1,strftime('%s','now') - 3600)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    s = durable(f->q, "orphan");
    rre_subscriber_destroy(s);
    s = durable(f->q, "stale");
    rre_subscriber_destroy(s);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "remote";
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EHELD);
    assert_non_null(strstr(rre_last_error(), "otherhost"));
}

static void test_reserved_and_empty_names_are_refused(void **state)
{
    struct fixture *f = *state;
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "event_router";
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "event_router"));
    o.name = "";
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    assert_null(s);
}

static void test_filter_by_type_or_category(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"i\":1}", NULL);
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    publish(f->q, RRE_EV_DATA_SYNC_COMPLETED, "{\"i\":3}", NULL);
    rre_event_type types[] = {RRE_EV_ELO_UPDATED};
    rre_category cats[] = {rre_event_get(RRE_EV_DATA_SYNC_COMPLETED)->category};
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "filtered";
    o.types = types;
    o.type_count = 1;
    o.categories = cats;
    o.category_count = 1;
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_OK);
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k.types[0], RRE_EV_ELO_UPDATED);
    assert_int_equal(k.types[1], RRE_EV_DATA_SYNC_COMPLETED);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.filtered, 1);
    rre_subscriber_destroy(s);
}

static void test_since_id_skips_earlier_events(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    int64_t b = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    int64_t c = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":3}", NULL);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.since_id = b;
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_OK);
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(k.ids[0], c);
    rre_subscriber_destroy(s);
}

static void test_handler_failure_does_not_block_later_events(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"i\":%d}", i);
        publish(f->q, RRE_EV_ELO_UPDATED, p, NULL);
    }
    rre_subscriber *s = durable(f->q, "flaky");
    struct sink k = {.fail_every = 1};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 4);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.handler_failed, 4);
    /* They wait in the retries (queue_retry_test): nothing comes again
     * before the retry delay. */
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 0);
    rre_subscriber_destroy(s);
}

static rre_status stop_at_second(const rre_event *ev, void *ud)
{
    struct sink *k = ud;
    if (k->n == 1)
        return RRE_ECLOSED;
    return collect(ev, ud);
}

static void test_handler_returning_eclosed_stops_without_acking(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    int64_t b = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    rre_subscriber *s = durable(f->q, "stopper");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, stop_at_second, &k, &n), RRE_ECLOSED);
    assert_int_equal(n, 1);
    rre_subscriber_destroy(s);
    s = durable(f->q, "stopper");
    k.n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(k.ids[0], b);
    rre_subscriber_destroy(s);
}

static void test_acks_written_by_python_for_the_same_id_are_honoured(void **state)
{
    struct fixture *f = *state;
    int64_t a = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    int64_t b = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    sqlite3 *db = raw_open(f->path);
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO acks VALUES ('testhost:stable:shared', %lld, 1.0)",
             (long long)a);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rre_subscriber *s = durable(f->q, "shared");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(k.ids[0], b);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.skipped_acked, 1);
    rre_subscriber_destroy(s);
}

struct log_capture {
    int warnings;
    char last[512];
};

/* The library's log sink is set once (replacing it leaks the old record on
 * purpose); tests point it at a capture of their own. */
static pthread_mutex_t capture_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_capture *active_capture;

static void capture_log(rre_log_level level, const char *component, const char *message, void *ud)
{
    (void)component;
    (void)ud;
    pthread_mutex_lock(&capture_mu);
    struct log_capture *c = active_capture;
    if (c != NULL && level >= RRE_LOG_WARN && strstr(message, "cannot be decoded") != NULL) {
        c->warnings++;
        snprintf(c->last, sizeof c->last, "%s", message);
    }
    pthread_mutex_unlock(&capture_mu);
}

static void set_capture(struct log_capture *c)
{
    pthread_mutex_lock(&capture_mu);
    active_capture = c;
    pthread_mutex_unlock(&capture_mu);
}

static bool alloc_fails;

static void *failing_malloc(size_t n)
{
    return alloc_fails ? NULL : malloc(n);
}

static void test_a_row_that_cannot_be_decoded_for_want_of_memory_is_read_again(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"seq\":%d}", i);
        publish(f->q, RRE_EV_ELO_UPDATED, text, NULL);
    }
    rre_subscriber *s = durable(f->q, "lean");
    struct sink got = {0};
    size_t n = 99;
    json_set_alloc_funcs(failing_malloc, free);
    alloc_fails = true; /* every payload parse runs out of memory */
    rre_status st = rre_subscriber_poll(s, 0, 0, collect, &got, &n);
    alloc_fails = false;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(st, RRE_ENOMEM);
    assert_int_equal(n, 0);
    assert_int_equal(got.n, 0);
    /* Nothing was skipped, marked poison or acknowledged: all three come. */
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &got, &n), RRE_OK);
    assert_int_equal(n, 3);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.poison, 0);
    rre_subscriber_destroy(s);
}

static rre_status keep_hashes(const rre_event *ev, void *ud)
{
    uint8_t(*hashes)[RRE_HASH_SIZE] = ud;
    memcpy(hashes[ev->event_id % 8], ev->hash, RRE_HASH_SIZE);
    return RRE_OK;
}

/* A new durable subscriber told to start after an id records that start at
 * once: stopped before its first event, it resumes there, not at the
 * oldest event. */
static void test_new_durable_subscriber_keeps_its_since_id_without_any_event(void **state)
{
    struct fixture *f = *state;
    bool dup;
    for (int i = 0; i < 3; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"k\":%d}", i);
        publish(f->q, RRE_EV_ELO_UPDATED, p, &dup);
    }
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "late";
    o.since_id = 3;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_OK);
    rre_subscriber_destroy(s);
    int64_t later = publish(f->q, RRE_EV_ELO_UPDATED, "{\"k\":3}", &dup);
    s = durable(f->q, "late");
    struct sink sk = {0};
    size_t n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &sk, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sk.ids[0], later);
    rre_subscriber_destroy(s);
}

static void test_delivered_hash_is_the_content_hash_for_our_rows_and_python_rows(void **state)
{
    struct fixture *f = *state;
    /* Ours (the hash stored at publish is delivered) and, with the same
     * content, a row the Python side wrote (the hash is computed). */
    json_t *p = obj("{\"model_id\":\"m\",\"elo\":1500.5}");
    rre_queue_publish_result r;
    assert_int_equal(
        rre_queue_publish(f->q, RRE_EV_ELO_UPDATED, p, "me", "2026-01-01T00:00:00Z", NULL, &r),
        RRE_OK);
    uint8_t want[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_ELO_UPDATED, p, want), RRE_OK);
    json_decref(p);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO events(event_type, payload, created_at) VALUES"
                                  " ('elo_updated', '{\"elo\": 1500.5, \"model_id\": \"m\","
                                  " \"timestamp\": \"2026-01-01T00:00:01\"}',"
                                  " strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    uint8_t got[8][RRE_HASH_SIZE];
    memset(got, 0, sizeof got);
    rre_subscriber *s = durable(f->q, "hashes");
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep_hashes, got, &n), RRE_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(got[r.event_id % 8], want, RRE_HASH_SIZE);
    assert_memory_equal(got[(r.event_id + 1) % 8], want, RRE_HASH_SIZE);
    rre_subscriber_destroy(s);
}

static void test_poison_row_is_reported_once_and_skipped(void **state)
{
    struct fixture *f = *state;
    struct log_capture cap = {0};
    set_capture(&cap);
    int64_t a = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO events(event_type, payload, created_at) VALUES"
                                  " ('elo_updated', '{not json', strftime('%s','now'));"
                                  "INSERT INTO events(event_type, payload, created_at) VALUES"
                                  " ('elo_updated', '[1, 2]', strftime('%s','now'));",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    int64_t d = publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":4}", NULL);
    rre_subscriber *s = durable(f->q, "p1");
    rre_subscriber *t = durable(f->q, "p2");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k.ids[0], a);
    assert_int_equal(k.ids[1], d);
    k.n = 0;
    assert_int_equal(rre_subscriber_poll(t, 0, 0, collect, &k, &n), RRE_OK);
    assert_int_equal(n, 2);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(t, &c);
    assert_int_equal(c.poison, 2);
    set_capture(NULL);
    assert_int_equal(cap.warnings, 2); /* once per row, not once per subscriber */
    rre_subscriber_destroy(s);
    rre_subscriber_destroy(t);
}

struct delayed {
    rre_queue *q;
    int delay_ms;
};

static void *publish_later(void *arg)
{
    struct delayed *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    json_t *p = json_pack("{s:s}", "late", "yes");
    rre_queue_publish(d->q, RRE_EV_ELO_UPDATED, p, NULL, NULL, NULL, NULL);
    json_decref(p);
    return NULL;
}

static void test_waiting_poll_wakes_on_commit(void **state)
{
    struct fixture *f = *state;
    rre_subscriber *s = durable(f->q, "waiter");
    struct delayed d = {f->q, 50};
    pthread_t th;
    pthread_create(&th, NULL, publish_later, &d);
    struct sink k = {0};
    size_t n;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rre_subscriber_poll(s, 10000, 0, collect, &k, &n), RRE_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(th, NULL);
    assert_int_equal(n, 1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(waited < 5.0); /* woken by the commit, not by the 10 s timeout */
    rre_subscriber_destroy(s);
}

static void *close_later(void *arg)
{
    usleep(30 * 1000);
    rre_subscriber_close(arg);
    return NULL;
}

static void test_close_wakes_a_waiting_poll(void **state)
{
    struct fixture *f = *state;
    rre_subscriber *s = durable(f->q, "closer");
    pthread_t th;
    pthread_create(&th, NULL, close_later, s);
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, -1, 0, collect, &(struct sink){0}, &n), RRE_ECLOSED);
    pthread_join(th, NULL);
    rre_subscriber_destroy(s);
}

/* ---- retention and statistics ------------------------------------------- */

static void test_purge_deletes_old_events_their_acks_and_dead_subscribers(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    rre_subscriber *s = durable(f->q, "old");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, collect, &k, &n), RRE_OK);
    rre_subscriber_destroy(s);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE events SET created_at = created_at - 2 * 86400"
                                  " WHERE json_extract(payload, '$.i') = 1;"
                                  "INSERT INTO subscribers VALUES ('h:123:gone', 'gone', 'h', 123,"
                                  " '[]', 1.0, 1.0);"
                                  "INSERT INTO acks VALUES ('h:123:gone', 2, 1.0);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    /* The preview counts what the purge then deletes, and deletes nothing. */
    rre_queue_purge_result p;
    assert_int_equal(rre_queue_purge_preview(f->q, -1, &p), RRE_OK);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 2);
    rre_queue_purge_result r;
    assert_int_equal(rre_queue_purge(f->q, -1, &r), RRE_OK);
    assert_int_equal(p.events, r.events);
    assert_int_equal(p.acks, r.acks);
    assert_int_equal(p.subscribers, r.subscribers);
    assert_int_equal(p.poison, r.poison);
    assert_int_equal(p.dedup, r.dedup);
    assert_int_equal(rre_queue_purge_preview(NULL, -1, &p), RRE_EINVAL);
    assert_int_equal(r.events, 1);
    assert_true(r.acks >= 2); /* the old event's ack and the dead subscriber's */
    assert_int_equal(r.subscribers, 1);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM events"), 1);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM acks"), 1);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM subscribers WHERE subscriber_id ="
                                 " 'h:123:gone'"),
                     0);
    /* The durable subscriber keeps its place. */
    assert_int_equal(sql_int(db, "SELECT count(*) FROM rre_cursors"), 1);
    sqlite3_close(db);
    /* Everything older than 0 s. */
    assert_int_equal(rre_queue_purge(f->q, 0, &r), RRE_OK);
    assert_int_equal(r.events, 1);
}

static void test_retention_runs_by_itself(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    char path[600];
    snprintf(path, sizeof path, "%s/r.db", f->dir);
    o.path = path;
    o.retention_hours = 0.1 / 3600.0; /* 100 ms */
    o.maintenance_interval_ms = 50;
    rre_queue *q;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    publish(q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    sqlite3 *db = raw_open(path);
    int64_t left = 1;
    for (int i = 0; i < 100 && left > 0; i++) {
        usleep(50 * 1000);
        left = sql_int(db, "SELECT count(*) FROM events");
    }
    assert_int_equal(left, 0);
    sqlite3_close(db);
    rre_queue_destroy(q);
}

static void test_stats_report_events_types_and_subscribers(void **state)
{
    struct fixture *f = *state;
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":1}", NULL);
    publish(f->q, RRE_EV_ELO_UPDATED, "{\"i\":2}", NULL);
    publish(f->q, RRE_EV_TRAINING_COMPLETED, "{\"i\":3}", NULL);
    rre_subscriber *s = durable(f->q, "st");
    struct sink k = {0};
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 2, collect, &k, &n), RRE_OK);
    json_t *st;
    assert_int_equal(rre_queue_stats(f->q, &st), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(st, "events")), 3);
    json_t *by = json_object_get(st, "by_type");
    assert_int_equal(json_integer_value(json_object_get(by, "ELO_UPDATED")), 2);
    assert_int_equal(json_integer_value(json_object_get(by, "TRAINING_COMPLETED")), 1);
    json_t *subs = json_object_get(st, "subscribers");
    assert_int_equal(json_array_size(subs), 1);
    json_t *sub = json_array_get(subs, 0);
    assert_string_equal(json_string_value(json_object_get(sub, "id")), "testhost:stable:st");
    assert_int_equal(json_integer_value(json_object_get(sub, "behind")), 1);
    assert_true(json_is_true(json_object_get(sub, "alive")));
    assert_true(json_integer_value(json_object_get(st, "file_bytes")) > 0);
    json_decref(st);
    rre_subscriber_destroy(s);
}

/* ---- a router linked to the queue ---------------------------------------- */

struct router_sink {
    pthread_mutex_t mu;
    int count;
    int from_process;
    int64_t last_id;
};

static int count_routed(const rre_event *ev, void *ud)
{
    struct router_sink *k = ud;
    pthread_mutex_lock(&k->mu);
    k->count++;
    if (ev->origin == RRE_ORIGIN_PROCESS)
        k->from_process++;
    k->last_id = ev->event_id;
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static int routed_count(struct router_sink *k, int want)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&k->mu);
        int n = k->count;
        pthread_mutex_unlock(&k->mu);
        if (n >= want)
            break;
        usleep(10 * 1000);
    }
    usleep(50 * 1000); /* and nothing more arrives */
    pthread_mutex_lock(&k->mu);
    int n = k->count;
    pthread_mutex_unlock(&k->mu);
    return n;
}

static void test_linked_routers_deliver_each_event_once_across_queues(void **state)
{
    struct fixture *f = *state;
    /* A second queue object on the same file stands for another process. */
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    rre_queue *q2;
    assert_int_equal(rre_queue_create(&q2, &o), RRE_OK);
    rre_router *a, *b;
    assert_int_equal(rre_router_create(&a, NULL), RRE_OK);
    assert_int_equal(rre_router_create(&b, NULL), RRE_OK);
    struct router_sink ka = {.mu = PTHREAD_MUTEX_INITIALIZER},
                       kb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(rre_router_subscribe_all(a, "a", count_routed, &ka, NULL), RRE_OK);
    assert_int_equal(rre_router_subscribe_all(b, "b", count_routed, &kb, NULL), RRE_OK);
    rre_link *la, *lb;
    assert_int_equal(rre_link_create(&la, a, f->q, NULL), RRE_OK);
    rre_link_options lo = {.subscriber_name = "router-b"};
    assert_int_equal(rre_link_create(&lb, b, q2, &lo), RRE_OK);

    json_t *p = json_pack("{s:s,s:f}", "model_id", "m", "new_elo", 1500.0);
    rre_publish_result res;
    assert_int_equal(rre_router_publish(a, "ELO_UPDATED", p, NULL, &res), RRE_OK);
    json_decref(p);
    assert_true(res.event_id > 0);
    assert_int_equal(routed_count(&kb, 1), 1);
    assert_int_equal(kb.from_process, 1);
    assert_int_equal(kb.last_id, res.event_id);
    assert_int_equal(routed_count(&ka, 1), 1); /* not again from the file */

    /* A local-only publish stays in its process. */
    p = json_pack("{s:s}", "model_id", "local");
    rre_publish_options po = {.flags = RRE_PUBLISH_LOCAL_ONLY};
    assert_int_equal(rre_router_publish(b, "ELO_UPDATED", p, &po, &res), RRE_OK);
    json_decref(p);
    assert_int_equal(res.event_id, 0);
    assert_int_equal(routed_count(&kb, 2), 2);
    assert_int_equal(routed_count(&ka, 1), 1);

    rre_link_destroy(la);
    rre_link_destroy(lb);
    rre_router_destroy(a);
    rre_router_destroy(b);
    rre_queue_destroy(q2);
}

int main(void)
{
    rre_set_logger(capture_log, NULL, RRE_LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path_follows_the_location_rules),
        cmocka_unit_test_setup_teardown(test_create_makes_parent_dirs_and_owner_only_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_schema_is_pythons_with_generated_column_and_indexes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_publish_returns_increasing_ids_and_writes_queue_spelling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_stores_compact_payload_with_envelope_fields,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_stores_numbers_in_shortest_round_trip_form,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_within_window_is_reported_and_not_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_after_window_is_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_envelope_fields_that_are_not_utf8_are_refused_and_nothing_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_refuses_non_object_and_closed_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_stores_every_event_in_order_in_one_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_batch_reports_duplicates_within_it_and_of_earlier_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_with_a_bad_event_names_it_and_stores_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_that_does_not_fit_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_batches_and_single_publishes_from_threads_store_every_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_from_threads_stores_every_event, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_during_the_first_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subscriber_gets_events_in_order_and_resumes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_limits_one_poll_and_the_rest_comes_next, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_second_holder_gets_eheld_naming_host_and_pid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dead_holder_is_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_lease_nobody_took_is_taken_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reserved_and_empty_names_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_by_type_or_category, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_id_skips_earlier_events, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_delivered_hash_is_the_content_hash_for_our_rows_and_python_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_new_durable_subscriber_keeps_its_since_id_without_any_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_failure_does_not_block_later_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handler_returning_eclosed_stops_without_acking, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_acks_written_by_python_for_the_same_id_are_honoured,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_row_that_cannot_be_decoded_for_want_of_memory_is_read_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_row_is_reported_once_and_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_waiting_poll_wakes_on_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_wakes_a_waiting_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_purge_deletes_old_events_their_acks_and_dead_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_runs_by_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_report_events_types_and_subscribers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_linked_routers_deliver_each_event_once_across_queues,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
