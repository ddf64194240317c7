/*
 * queue_compat_test.c - the queue against the Python side's contract: a
 * database the Python side created, rows written with plain SQL exactly as
 * the Python side writes them (its JSON formatting, \u escapes, NaN, every
 * spelling of a type), and the Python side's poll and ack queries run over
 * rows this library wrote.
 */
#include "testutil.h"

#include <rre/rre.h>

#include "queue_sqlite.h"

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

/* The queue on the fixture's file, with a maintenance thread of that
 * interval (negative: none). */
static rre_queue *open_queue_maintained(struct fixture *f, int maintenance_interval_ms)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "c-host";
    o.maintenance_interval_ms = maintenance_interval_ms;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &o);
    if (st != RRE_OK)
        fail_msg("open: %s: %s", rre_strerror(st), rre_last_error());
    return q;
}

static rre_queue *open_queue(struct fixture *f)
{
    return open_queue_maintained(f, -1);
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

/* ---- lazy_payload and cursor_only ---------------------------------------- */

struct lazy_got {
    size_t n;
    bool parsed[MAX_EVENTS];      /* ev->payload was set */
    char text[MAX_EVENTS][128];   /* ev->payload_text */
    json_t *payload[MAX_EVENTS];  /* rre_event_payload() */
    json_t *envelope[MAX_EVENTS]; /* rre_event_to_json_envelope() */
    rre_event *copy[MAX_EVENTS];  /* rre_event_copy() */
};

static rre_status keep_lazy(const rre_event *ev, void *ud)
{
    struct lazy_got *g = ud;
    if (g->n < MAX_EVENTS) {
        g->parsed[g->n] = ev->payload != NULL;
        assert_non_null(ev->payload_text);
        snprintf(g->text[g->n], sizeof g->text[0], "%.*s", (int)ev->payload_len, ev->payload_text);
        assert_int_equal(rre_event_payload(ev, &g->payload[g->n]), RRE_OK);
        assert_int_equal(rre_event_to_json_envelope(ev, &g->envelope[g->n]), RRE_OK);
        assert_int_equal(rre_event_copy(ev, &g->copy[g->n]), RRE_OK);
        g->n++;
    }
    return RRE_OK;
}

static void lazy_got_free(struct lazy_got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        json_decref(g->payload[i]);
        json_decref(g->envelope[i]);
        rre_event_free(g->copy[i]);
    }
    g->n = 0;
}

static size_t drain_with(rre_queue *q, const rre_subscriber_options *o, rre_queue_handler fn,
                         void *ud)
{
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, o), RRE_OK);
    size_t n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, fn, ud, &n), RRE_OK);
    rre_subscriber_destroy(s);
    return n;
}

static void test_lazy_payload_hands_our_rows_as_text_and_parses_other_writers_rows(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    json_t *p = json_pack("{s:s,s:f}", "model_id", "m", "elo", 1.5);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "c", NULL, NULL, NULL), RRE_OK);
    py_insert(f, "elo_updated", "{\"model_id\": \"p\", \"x\": NaN}", "py");
    py_insert(f, "elo_updated", "{\"model_id\": ", "py"); /* poison: never delivered */
    py_insert(f, "elo_updated", "{\"model_id\": \"q\"}", "py");
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "lazy";
    o.lazy_payload = true;
    struct lazy_got g = {0};
    assert_int_equal(drain_with(q, &o, keep_lazy, &g), 3);
    assert_int_equal(g.n, 3);

    /* Ours: not parsed; the text is the stored one; parsed on request. */
    assert_false(g.parsed[0]);
    char *stored = tu_sql_text(f->path, "SELECT payload FROM events WHERE event_id = 1");
    assert_string_equal(g.text[0], stored);
    free(stored);
    assert_true(json_equal(g.payload[0], p));
    assert_true(json_equal(json_object_get(g.envelope[0], "payload"), p));
    /* A copy keeps the text after the handler returned. */
    assert_null(g.copy[0]->payload);
    json_t *again = NULL;
    assert_int_equal(rre_event_payload(g.copy[0], &again), RRE_OK);
    assert_true(json_equal(again, p));
    json_decref(again);

    /* Another writer's rows: parsed and checked; the text is JSON (NaN is
     * null in it, as in the object). */
    assert_true(g.parsed[1]);
    assert_string_equal(g.text[1], "{\"model_id\": \"p\", \"x\": null}");
    assert_true(json_is_null(json_object_get(g.payload[1], "x")));
    assert_true(g.parsed[2]);
    assert_string_equal(json_string_value(json_object_get(g.payload[2], "model_id")), "q");
    json_t *env = g.envelope[2];
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(env, "payload"), "model_id")), "q");
    lazy_got_free(&g);
    json_decref(p);
    rre_queue_destroy(q);
}

static void test_event_payload_of_an_event_without_one_is_einval(void **state)
{
    (void)state;
    rre_event ev;
    memset(&ev, 0, sizeof ev);
    json_t *out = (json_t *)&ev; /* must be reset */
    assert_int_equal(rre_event_payload(&ev, &out), RRE_EINVAL);
    assert_null(out);
    assert_int_equal(rre_event_payload(NULL, &out), RRE_EINVAL);
    ev.payload = json_object();
    assert_int_equal(rre_event_payload(&ev, &out), RRE_OK);
    assert_ptr_equal(out, ev.payload);
    json_decref(out);
    json_decref(ev.payload);
    ev.payload = NULL;
    ev.payload_text = "[1]";
    ev.payload_len = 3;
    assert_int_equal(rre_event_payload(&ev, &out), RRE_ENOT_OBJECT);
    assert_null(out);
}

static int64_t acks_of(struct fixture *f, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM acks WHERE subscriber_id = '%s'", id);
    return tu_sql_int(f->path, sql);
}

static rre_status count_events(const rre_event *ev, void *ud)
{
    (void)ev;
    (*(size_t *)ud)++;
    return RRE_OK;
}

static void publish_elo(rre_queue *q, int i)
{
    json_t *p = json_pack("{s:s,s:i}", "model_id", "m", "i", i);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "c", NULL, NULL, NULL), RRE_OK);
    json_decref(p);
}

static void test_cursor_only_writes_no_acks_rows_and_resumes_from_its_cursor(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    for (int i = 0; i < 3; i++)
        publish_elo(q, i);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "fast";
    o.cursor_only = true;
    size_t seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 3);
    assert_int_equal(acks_of(f, "c-host:stable:fast"), 0);
    assert_int_equal(
        tu_sql_int(
            f->path,
            "SELECT last_event_id FROM rre_cursors WHERE subscriber_id = 'c-host:stable:fast'"),
        3);
    publish_elo(q, 3);
    seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 1);
    assert_int_equal(acks_of(f, "c-host:stable:fast"), 0);
    /* The default writes them. */
    o.name = "compatible";
    o.cursor_only = false;
    seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 4);
    assert_int_equal(acks_of(f, "c-host:stable:compatible"), 4);
    rre_queue_destroy(q);
}

static void test_cursor_only_writes_acks_for_an_id_python_used_before(void **state)
{
    struct fixture *f = *state;
    py_insert(f, "elo_updated", "{\"i\": 1}", "py");
    py_insert(f, "elo_updated", "{\"i\": 2}", "py");
    tu_sql_exec(f->path, "INSERT INTO acks VALUES ('c-host:stable:was-python', 1, 1.0)");
    rre_queue *q = open_queue(f);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "was-python";
    o.cursor_only = true;
    size_t seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 1);
    assert_int_equal(acks_of(f, "c-host:stable:was-python"), 2);
    rre_queue_destroy(q);
}

static void test_cursor_only_writes_acks_once_another_consumer_of_the_id_acks(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    publish_elo(q, 0);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "shared";
    o.cursor_only = true;
    size_t seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 1);
    assert_int_equal(acks_of(f, "c-host:stable:shared"), 0);
    /* A Python consumer of the same id takes event 2; we get event 3 and
     * from then on write acks, so it sees our progress. */
    publish_elo(q, 1);
    publish_elo(q, 2);
    tu_sql_exec(f->path, "INSERT INTO acks VALUES ('c-host:stable:shared', 2, 1.0)");
    seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 1);
    assert_int_equal(acks_of(f, "c-host:stable:shared"), 2);
    /* After a restart it still knows: the id has acks rows. */
    publish_elo(q, 3);
    seen = 0;
    assert_int_equal(drain_with(q, &o, count_events, &seen), 1);
    assert_int_equal(acks_of(f, "c-host:stable:shared"), 3);
    rre_queue_destroy(q);
}

static void test_a_subscribers_commits_leave_checkpoints_to_the_maintenance_thread(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5000; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "{\"i\": %d}", i);
        if (i % 500 == 0)
            assert_int_equal(
                sqlite3_exec(f->py, i == 0 ? "BEGIN" : "COMMIT; BEGIN", NULL, NULL, NULL),
                SQLITE_OK);
        py_insert(f, "elo_updated", payload, "py");
    }
    assert_int_equal(sqlite3_exec(f->py, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    rre_queue *q = open_queue_maintained(f, 60000);
    /* Small batches: over a thousand commits of acknowledgements, which
     * alone grow the WAL past the checkpoint threshold. */
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "drain";
    o.batch = 4;
    size_t seen = 0;
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    while (seen < 5000) {
        size_t n = 0;
        assert_int_equal(rre_subscriber_poll(s, 1000, 0, count_events, &seen, &n), RRE_OK);
    }
    /* Those commits asked the queue's maintenance thread for the checkpoint
     * (rather than running it, fsyncs included, before the next poll). */
    for (int i = 0; i < 200 && atomic_load(&q->ckpt_background) == 0; i++) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&q->ckpt_background) > 0);
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
}

static int wal_frames_seen;

static int note_frames(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)ud;
    (void)db;
    (void)name;
    wal_frames_seen = frames;
    return SQLITE_OK;
}

/* Frames in the WAL after one small commit of a connection that never
 * checkpoints: small once the WAL was all copied and restarted. */
static int wal_frames_after_a_commit(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_wal_hook(db, note_frames, NULL); /* and so no automatic checkpoint */
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE IF NOT EXISTS test_scratch(x);"
                                  " INSERT INTO test_scratch VALUES (1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    return wal_frames_seen;
}

static void test_a_subscriber_checkpoints_itself_once_its_queue_is_closed(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue_maintained(f, 60000);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "late";
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    /* A WAL past the threshold, from a writer that never checkpoints. */
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "PRAGMA wal_autocheckpoint=0; BEGIN;"
                                  " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                                  " WHERE i < 25000) INSERT INTO events (event_type, payload,"
                                  " source, hostname, created_at) SELECT 'elo_updated',"
                                  " '{\"i\": ' || i || ', \"pad\": \"' || hex(randomblob(400)) ||"
                                  " '\"}', 'py', 'py-host', strftime('%s','now') FROM n; COMMIT;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_true(wal_frames_after_a_commit(f->path) > 4000);
    /* The queue closes (its maintenance thread stops); the subscriber's
     * last commit, releasing its lease, checkpoints itself. */
    rre_queue_close(q);
    rre_subscriber_destroy(s);
    assert_in_range(wal_frames_after_a_commit(f->path), 1, 100);
    rre_queue_destroy(q);
}

static void test_a_row_of_ours_changed_into_bad_json_is_set_aside_at_delivery(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    publish_elo(q, 1);
    publish_elo(q, 2);
    publish_elo(q, 3);
    /* Another writer breaks the stored text of event 2 (its stored hash
     * says this library checked it). */
    tu_sql_exec(f->path, "UPDATE events SET payload = '{\"i\": ' WHERE event_id = 2");
    struct got g = {0};
    drain(q, "reader", &g);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.id[0], 1);
    assert_int_equal(g.id[1], 3);
    assert_int_equal(json_integer_value(json_object_get(g.payload[1], "i")), 3);
    got_free(&g);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_poison WHERE event_id = 2"), 1);
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
        cmocka_unit_test_setup_teardown(
            test_lazy_payload_hands_our_rows_as_text_and_parses_other_writers_rows, setup,
            teardown),
        cmocka_unit_test(test_event_payload_of_an_event_without_one_is_einval),
        cmocka_unit_test_setup_teardown(
            test_cursor_only_writes_no_acks_rows_and_resumes_from_its_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_only_writes_acks_for_an_id_python_used_before,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_cursor_only_writes_acks_once_another_consumer_of_the_id_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_subscribers_commits_leave_checkpoints_to_the_maintenance_thread, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_subscriber_checkpoints_itself_once_its_queue_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_row_of_ours_changed_into_bad_json_is_set_aside_at_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_python_subscriber_row_is_left_alone_while_alive,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
