/*
 * queue_compat_test.c - the queue against the Python side's contract: a
 * database the Python side created, rows written with plain SQL exactly as
 * the Python side writes them (its JSON formatting, \u escapes, NaN, every
 * spelling of a type), and the Python side's poll and ack queries run over
 * rows this library wrote.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The Python side's connection set-up and schema, as it runs them. */
static const char PYTHON_SETUP[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA busy_timeout=60000;"
    "PRAGMA wal_autocheckpoint=500;"
    "CREATE TABLE IF NOT EXISTS events (\n"
    "    event_id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    event_type TEXT NOT NULL,\n"
    "    payload TEXT NOT NULL DEFAULT '{}',\n"
    "    source TEXT NOT NULL DEFAULT '',\n"
    "    hostname TEXT NOT NULL DEFAULT '',\n"
    "    created_at REAL NOT NULL,\n"
    "    INDEX_event_type TEXT GENERATED ALWAYS AS (event_type) STORED\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS subscribers (\n"
    "    subscriber_id TEXT PRIMARY KEY,\n"
    "    process_name TEXT NOT NULL,\n"
    "    hostname TEXT NOT NULL,\n"
    "    pid INTEGER NOT NULL,\n"
    "    subscribed_types TEXT NOT NULL DEFAULT '[]',\n"
    "    last_poll_at REAL NOT NULL,\n"
    "    created_at REAL NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS acks (\n"
    "    subscriber_id TEXT NOT NULL,\n"
    "    event_id INTEGER NOT NULL,\n"
    "    acked_at REAL NOT NULL,\n"
    "    PRIMARY KEY (subscriber_id, event_id),\n"
    "    FOREIGN KEY (subscriber_id) REFERENCES subscribers(subscriber_id),\n"
    "    FOREIGN KEY (event_id) REFERENCES events(event_id)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS idx_events_type ON events(event_type);\n"
    "CREATE INDEX IF NOT EXISTS idx_events_created ON events(created_at);\n"
    "CREATE INDEX IF NOT EXISTS idx_acks_subscriber ON acks(subscriber_id);\n"
    "CREATE INDEX IF NOT EXISTS idx_acks_event ON acks(event_id);\n";

/* The Python side's poll: events with no ack for the subscriber, within the
 * retention window, after an id, oldest first, limited. */
static const char PYTHON_POLL[] =
    "SELECT e.event_id, e.event_type, e.payload, e.source, e.hostname, e.created_at\n"
    "FROM events e\n"
    "WHERE e.created_at > ?1 AND e.event_id > ?2\n"
    "  AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.subscriber_id = ?3 AND a.event_id = "
    "e.event_id)\n"
    "ORDER BY e.event_id ASC\n"
    "LIMIT 100";

struct fixture {
    char *dir;
    char path[512];
    sqlite3 *py; /* a connection set up like the Python side's */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/events.db", f->dir);
    assert_int_equal(sqlite3_open(f->path, &f->py), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->py, PYTHON_SETUP, NULL, NULL, NULL), SQLITE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sqlite3_close(f->py);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static rre_queue *open_queue(struct fixture *f)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "c-host";
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &o);
    if (st != RRE_OK)
        fail_msg("open: %s: %s", rre_strerror(st), rre_last_error());
    return q;
}

/* Inserts a row the way the Python side does: one INSERT, created_at in
 * seconds. */
static void py_insert(struct fixture *f, const char *type, const char *payload, const char *source)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->py,
                                        "INSERT INTO events (event_type, payload, source, hostname,"
                                        " created_at) VALUES (?, ?, ?, ?, strftime('%s','now'))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, payload, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, "py-host", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

#define MAX_EVENTS 32

struct got {
    size_t n;
    rre_event_type type[MAX_EVENTS];
    json_t *payload[MAX_EVENTS];
    char source[MAX_EVENTS][32];
    char hostname[MAX_EVENTS][32];
    char timestamp[MAX_EVENTS][RRE_TIMESTAMP_MAX];
    int64_t id[MAX_EVENTS];
};

static rre_status keep(const rre_event *ev, void *ud)
{
    struct got *g = ud;
    if (g->n < MAX_EVENTS) {
        g->type[g->n] = ev->type;
        g->payload[g->n] = json_deep_copy(ev->payload);
        snprintf(g->source[g->n], 32, "%s", ev->source);
        snprintf(g->hostname[g->n], 32, "%s", ev->hostname);
        snprintf(g->timestamp[g->n], RRE_TIMESTAMP_MAX, "%s", ev->timestamp);
        g->id[g->n] = ev->event_id;
        g->n++;
    }
    return RRE_OK;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        json_decref(g->payload[i]);
    g->n = 0;
}

static void drain(rre_queue *q, const char *name, struct got *g)
{
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    size_t n;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep, g, &n), RRE_OK);
    rre_subscriber_destroy(s);
}

static void test_database_created_by_python_is_used_as_is(void **state)
{
    struct fixture *f = *state;
    py_insert(f, "TRAINING_COMPLETED", "{\"epochs\": 3}", "trainer");
    rre_queue *q = open_queue(f);
    /* Our tables were added; theirs were left alone. */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->py,
                                        "SELECT sql FROM sqlite_master WHERE name = 'events'", -1,
                                        &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_non_null(strstr((const char *)sqlite3_column_text(st, 0), "    event_id INTEGER"));
    sqlite3_finalize(st);
    struct got g = {0};
    drain(q, "reader", &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.type[0], RRE_EV_TRAINING_COMPLETED);
    got_free(&g);
    rre_queue_destroy(q);
}

static void test_stats_of_a_python_only_database_opened_read_only(void **state)
{
    struct fixture *f = *state;
    py_insert(f, "elo_updated", "{\"elo\": 1500}", "elo");
    py_insert(f, "elo_updated", "{\"elo\": 1510}", "elo");
    assert_int_equal(sqlite3_exec(f->py,
                                  "INSERT INTO subscribers VALUES ('py-host:1:router', 'router',"
                                  " 'py-host', 1, '[]', strftime('%s','now'),"
                                  " strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.read_only = true; /* so none of our tables gets created */
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    json_t *st = NULL;
    assert_int_equal(rre_queue_stats(q, &st), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(st, "events")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "by_type"), "ELO_UPDATED")), 2);
    json_t *subs = json_object_get(st, "subscribers");
    assert_int_equal(json_array_size(subs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(subs, 0), "kind")),
                        "python");
    assert_int_equal(json_integer_value(json_object_get(st, "dedup_entries")), 0);
    json_decref(st);
    rre_queue_destroy(q);
    sqlite3_stmt *t;
    assert_int_equal(sqlite3_prepare_v2(f->py,
                                        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rre%'",
                                        -1, &t, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(t), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(t, 0), 0);
    sqlite3_finalize(t);
}

static void test_python_rows_in_every_spelling_and_format_are_delivered(void **state)
{
    struct fixture *f = *state;
    py_insert(f, "TRAINING_COMPLETED",
              "{\"config_key\": \"hex8_2p\", \"epochs\": 20, \"final_loss\": 0.0423, "
              "\"timestamp\": \"2026-01-02T03:04:05.123456\"}",
              "trainer");
    py_insert(f, "training_completed", "{\"model_path\": \"/m/\\u00e9l\\u00e8ve.pth\"}", "t2");
    py_insert(f, "Training_Completed", "{}", "");
    py_insert(f, "new_games", "{\"count\": 5, \"nested\": {\"a\": [1, 2.5, null, true]}}", "sp");
    py_insert(f, "elo_updated",
              "{\"new_elo\": NaN, \"delta\": Infinity, \"low\": -Infinity, \"note\": \"NaN\"}",
              "elo");
    rre_queue *q = open_queue(f);
    struct got g = {0};
    drain(q, "reader", &g);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.type[0], RRE_EV_TRAINING_COMPLETED);
    assert_int_equal(g.type[1], RRE_EV_TRAINING_COMPLETED);
    assert_int_equal(g.type[2], RRE_EV_TRAINING_COMPLETED);
    assert_int_equal(g.type[3], RRE_EV_NEW_GAMES_AVAILABLE);
    assert_int_equal(g.type[4], RRE_EV_ELO_UPDATED);
    assert_int_equal(json_integer_value(json_object_get(g.payload[0], "epochs")), 20);
    assert_true(json_real_value(json_object_get(g.payload[0], "final_loss")) == 0.0423);
    /* The Python side's naive ISO time, read as UTC in the one RFC 3339 form. */
    assert_string_equal(g.timestamp[0], "2026-01-02T03:04:05.123456Z");
    assert_string_equal(g.source[0], "trainer");
    assert_string_equal(g.hostname[0], "py-host");
    assert_string_equal(json_string_value(json_object_get(g.payload[1], "model_path")),
                        "/m/\xc3\xa9l\xc3\xa8ve.pth");
    /* Without a timestamp field, the envelope's comes from created_at. */
    assert_int_equal(strlen(g.timestamp[2]), 27);
    assert_int_equal(g.timestamp[2][26], 'Z');
    json_t *nested = json_object_get(json_object_get(g.payload[3], "nested"), "a");
    assert_int_equal(json_array_size(nested), 4);
    /* NaN and the infinities read as null; a string "NaN" stays a string. */
    assert_true(json_is_null(json_object_get(g.payload[4], "new_elo")));
    assert_true(json_is_null(json_object_get(g.payload[4], "delta")));
    assert_true(json_is_null(json_object_get(g.payload[4], "low")));
    assert_string_equal(json_string_value(json_object_get(g.payload[4], "note")), "NaN");
    for (size_t i = 1; i < g.n; i++)
        assert_true(g.id[i] > g.id[i - 1]);
    got_free(&g);
    rre_queue_destroy(q);
}

/* "NaN" becomes the longer "null": a row of many of them (and no infinity to
 * make room) is read without writing past the text. */
static void test_a_row_of_many_nans_reads_as_nulls(void **state)
{
    struct fixture *f = *state;
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"v\": [");
    for (int i = 0; i < 600; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sNaN", i > 0 ? "," : "");
    snprintf(text + n, sizeof text - n, "], \"x\":NaN}");
    py_insert(f, "elo_updated", text, "elo");
    py_insert(f, "elo_updated", "{\"x\":NaN}", "elo");
    rre_queue *q = open_queue(f);
    struct got g = {0};
    drain(q, "reader", &g);
    assert_int_equal(g.n, 2);
    json_t *v = json_object_get(g.payload[0], "v");
    assert_int_equal(json_array_size(v), 600);
    for (size_t i = 0; i < 600; i++)
        assert_true(json_is_null(json_array_get(v, i)));
    assert_true(json_is_null(json_object_get(g.payload[0], "x")));
    assert_true(json_is_null(json_object_get(g.payload[1], "x")));
    got_free(&g);
    rre_queue_destroy(q);
}

static void test_our_rows_answer_the_python_poll_and_decode_as_it_expects(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    json_t *p = json_pack("{s:s,s:i,s:f,s:s}", "config_key", "hex8_2p", "epochs", 20, "final_loss",
                          0.5, "who", "\xc3\xa9");
    assert_int_equal(
        rre_queue_publish(q, RRE_EV_TRAINING_COMPLETED, p, "c-trainer", NULL, NULL, NULL), RRE_OK);
    json_decref(p);
    p = json_pack("{s:s}", "model_id", "m");
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, NULL, NULL, NULL, NULL), RRE_OK);
    json_decref(p);

    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->py, PYTHON_POLL, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_double(st, 1, (double)time(NULL) - 24 * 3600.0);
    sqlite3_bind_int64(st, 2, 0);
    sqlite3_bind_text(st, 3, "py-host:stable:event_router", -1, SQLITE_STATIC);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 1);
        const char *payload = (const char *)sqlite3_column_text(st, 2);
        json_error_t err;
        json_t *v = json_loads(payload, 0, &err);
        assert_non_null(v);
        assert_true(json_is_object(v));
        assert_int_equal(sqlite3_column_type(st, 5), SQLITE_FLOAT);
        assert_true(fabs(sqlite3_column_double(st, 5) - (double)time(NULL)) < 60);
        assert_string_equal((const char *)sqlite3_column_text(st, 4), "c-host");
        if (rows == 0) {
            assert_string_equal(type, "TRAINING_COMPLETED");
            assert_string_equal((const char *)sqlite3_column_text(st, 3), "c-trainer");
            assert_string_equal(json_string_value(json_object_get(v, "who")), "\xc3\xa9");
        } else {
            assert_string_equal(type, "elo_updated");
        }
        json_decref(v);
        rows++;
    }
    sqlite3_finalize(st);
    assert_int_equal(rows, 2);
    rre_queue_destroy(q);
}

static void test_our_acks_are_seen_by_the_python_poll_for_the_same_id(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    py_insert(f, "elo_updated", "{\"i\": 1}", "py");
    py_insert(f, "elo_updated", "{\"i\": 2}", "py");
    struct got g = {0};
    drain(q, "shared", &g);
    assert_int_equal(g.n, 2);
    got_free(&g);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->py, PYTHON_POLL, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_double(st, 1, 0);
    sqlite3_bind_int64(st, 2, 0);
    sqlite3_bind_text(st, 3, "c-host:stable:shared", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    /* The Python side's ack of a later event, for the same id, is honoured. */
    py_insert(f, "elo_updated", "{\"i\": 3}", "py");
    py_insert(f, "elo_updated", "{\"i\": 4}", "py");
    assert_int_equal(sqlite3_exec(f->py,
                                  "INSERT OR IGNORE INTO acks (subscriber_id, event_id, acked_at)"
                                  " SELECT 'c-host:stable:shared', max(event_id) - 1,"
                                  " strftime('%s','now') FROM events",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    drain(q, "shared", &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(json_integer_value(json_object_get(g.payload[0], "i")), 4);
    got_free(&g);
    rre_queue_destroy(q);
}

static void test_a_python_subscriber_row_is_left_alone_while_alive(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sqlite3_exec(f->py,
                                  "INSERT INTO subscribers VALUES ('py-host:4242:trainer',"
                                  " 'trainer', 'py-host', 4242, '[\"TRAINING_COMPLETED\"]',"
                                  " strftime('%s','now'), strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    rre_queue *q = open_queue(f);
    rre_queue_purge_result r;
    assert_int_equal(rre_queue_purge(q, -1, &r), RRE_OK);
    assert_int_equal(r.subscribers, 0);
    json_t *stats;
    assert_int_equal(rre_queue_stats(q, &stats), RRE_OK);
    json_t *sub = json_array_get(json_object_get(stats, "subscribers"), 0);
    assert_string_equal(json_string_value(json_object_get(sub, "id")), "py-host:4242:trainer");
    assert_string_equal(json_string_value(json_object_get(sub, "kind")), "python");
    json_decref(stats);
    rre_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_database_created_by_python_is_used_as_is, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_of_a_python_only_database_opened_read_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_python_rows_in_every_spelling_and_format_are_delivered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_row_of_many_nans_reads_as_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_our_rows_answer_the_python_poll_and_decode_as_it_expects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_our_acks_are_seen_by_the_python_poll_for_the_same_id,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_python_subscriber_row_is_left_alone_while_alive,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
