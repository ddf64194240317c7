/*
 * bridge_hosts.c - simulated hosts for the bridge tests (bridge_hosts.h).
 */
#include "bridge_hosts.h"

#include <nats/nats.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *run_bridge(void *arg)
{
    bh_host *h = arg;
    h->run_status = rre_bridge_run(h->bridge);
    if (h->run_status != RRE_OK)
        fprintf(stderr, "bridge of %s: %s: %s\n", h->name, rre_strerror(h->run_status),
                rre_last_error());
    return NULL;
}

static void fill_options(bh_host *h, const rre_bridge_options *extra, rre_bridge_options *o)
{
    if (extra != NULL)
        *o = *extra;
    else
        rre_bridge_options_init(o);
    o->servers = h->servers;
    o->stream = h->stream;
    o->host = h->name;
}

void bh_start_bridge(bh_host *h, const rre_bridge_options *extra)
{
    rre_bridge_options o;
    fill_options(h, extra, &o);
    assert_int_equal(rre_bridge_create(&h->bridge, h->queue, &o), RRE_OK);
    assert_int_equal(pthread_create(&h->thread, NULL, run_bridge, h), 0);
    rre_status st = rre_bridge_wait_ready(h->bridge, 30000);
    if (st != RRE_OK)
        fail_msg("the bridge of %s is not ready: %s: %s", h->name, rre_strerror(st),
                 rre_last_error());
}

static bh_host *make_host(const char *root, const char *name, const char *servers,
                          const char *stream)
{
    bh_host *h = calloc(1, sizeof *h);
    assert_non_null(h);
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->dir, sizeof h->dir, "%s/%s", root, name);
    mkdir(h->dir, 0700);
    snprintf(h->path, sizeof h->path, "%s/events.db", h->dir);
    snprintf(h->servers, sizeof h->servers, "%s", servers);
    snprintf(h->stream, sizeof h->stream, "%s", stream);
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = h->path;
    qo.hostname = h->name;
    qo.maintenance_interval_ms = -1;
    rre_status st = rre_queue_create(&h->queue, &qo);
    if (st != RRE_OK)
        fail_msg("queue of %s: %s", name, rre_last_error());
    return h;
}

bh_host *bh_start(const char *root, const char *name, const char *servers, const char *stream,
                  const rre_bridge_options *extra)
{
    bh_host *h = make_host(root, name, servers, stream);
    bh_start_bridge(h, extra);
    return h;
}

void bh_stop_bridge(bh_host *h)
{
    if (h->bridge == NULL)
        return;
    rre_bridge_stop(h->bridge);
    pthread_join(h->thread, NULL);
    rre_bridge_destroy(h->bridge);
    h->bridge = NULL;
}

void bh_stop(bh_host *h)
{
    if (h == NULL)
        return;
    bh_stop_bridge(h);
    rre_queue_destroy(h->queue);
    free(h);
}

struct bh_publisher {
    bh_host *h;
    int n;
    char tag[64];
    int ok;
    pthread_t thread;
};

static void *publish_main(void *arg)
{
    bh_publisher *p = arg;
    for (int i = 0; i < p->n; i++) {
        json_t *payload = json_pack("{s:s,s:i,s:s}", "tag", p->tag, "seq", i, "origin", p->h->name);
        if (rre_queue_publish(p->h->queue, RRE_EV_ELO_UPDATED, payload, "bench", NULL, NULL,
                              NULL) == RRE_OK)
            p->ok++;
        json_decref(payload);
    }
    return NULL;
}

bh_publisher *bh_publish_async(bh_host *h, int n, const char *tag)
{
    bh_publisher *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->h = h;
    p->n = n;
    snprintf(p->tag, sizeof p->tag, "%s", tag);
    assert_int_equal(pthread_create(&p->thread, NULL, publish_main, p), 0);
    return p;
}

int bh_publish_join(bh_publisher *p)
{
    pthread_join(p->thread, NULL);
    int ok = p->ok;
    free(p);
    return ok;
}

void bh_publish_text(bh_host *h, const char *type, const char *payload_json, const char *source)
{
    rre_event_type t;
    assert_int_equal(rre_event_lookup(type, &t), RRE_OK);
    json_t *payload = NULL;
    assert_int_equal(rre_payload_parse(payload_json, strlen(payload_json), &payload), RRE_OK);
    rre_status st = rre_queue_publish(h->queue, t, payload, source, BH_TIMESTAMP, NULL, NULL);
    json_decref(payload);
    if (st != RRE_OK)
        fail_msg("publish on %s: %s", h->name, rre_last_error());
}

static sqlite3 *open_path(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("open %s: %s", path, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    return db;
}

int bh_count_rows(bh_host *h, const char *hostname)
{
    return bh_count_rows_at(h->path, hostname);
}

int bh_count_rows_at(const char *path, const char *hostname)
{
    sqlite3 *db = open_path(path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        hostname != NULL
                                            ? "SELECT count(*) FROM events WHERE hostname = ?"
                                            : "SELECT count(*) FROM events",
                                        -1, &st, NULL),
                     SQLITE_OK);
    if (hostname != NULL)
        sqlite3_bind_text(st, 1, hostname, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void fail_with_counters(bh_host *h, const char *what)
{
    rre_bridge_counters c = {0};
    if (h->bridge != NULL)
        rre_bridge_get_counters(h->bridge, &c);
    fail_msg("%s on host %s; bridge %s: out published %llu dup %llu failures %llu passed %llu "
             "cursor %lld; in messages %llu imported %llu dup %llu own %llu refused %llu "
             "redelivered %llu resets %llu seq %llu; backoffs %llu reconnects %llu",
             what, h->name, rre_bridge_state_name(c.state), (unsigned long long)c.out_published,
             (unsigned long long)c.out_duplicates, (unsigned long long)c.out_failures,
             (unsigned long long)c.out_passed, (long long)c.out_cursor,
             (unsigned long long)c.in_messages, (unsigned long long)c.in_imported,
             (unsigned long long)c.in_duplicates, (unsigned long long)c.in_own,
             (unsigned long long)c.in_refused, (unsigned long long)c.in_redelivered,
             (unsigned long long)c.in_consumer_resets, (unsigned long long)c.in_stream_seq,
             (unsigned long long)c.backoffs, (unsigned long long)c.reconnects);
}

void bh_wait_rows(bh_host *h, const char *hostname, int n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int have = 0;
    while ((have = bh_count_rows(h, hostname)) < n) {
        if (now_ms() > deadline) {
            char what[256];
            snprintf(what, sizeof what, "%d of %d rows of %s", have, n, hostname);
            fail_with_counters(h, what);
        }
        usleep(20000);
    }
}

void bh_assert_origin_sequence(bh_host *h, const char *hostname, const char *tag, int n)
{
    sqlite3 *db = open_path(h->path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT json_extract(payload, '$.seq') FROM events"
                                        " WHERE hostname = ? AND json_extract(payload, '$.tag')"
                                        " = ? ORDER BY event_id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, hostname, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
    int expect = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int seq = sqlite3_column_int(st, 0);
        if (seq != expect) {
            sqlite3_finalize(st);
            sqlite3_close(db);
            char what[256];
            snprintf(what, sizeof what, "events of %s tagged %s: seq %d where %d was expected",
                     hostname, tag, seq, expect);
            fail_with_counters(h, what);
        }
        expect++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (expect != n) {
        char what[256];
        snprintf(what, sizeof what, "events of %s tagged %s: %d, not %d", hostname, tag, expect, n);
        fail_with_counters(h, what);
    }
}

int bh_count_payload(bh_host *h, const char *payload_json)
{
    json_t *want = json_loads(payload_json, 0, NULL);
    assert_non_null(want);
    sqlite3 *db = open_path(h->path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT payload FROM events", -1, &st, NULL),
                     SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *got = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (got == NULL)
            continue;
        json_object_del(got, "timestamp");
        json_object_del(got, "trace_id");
        if (json_equal(got, want))
            n++;
        json_decref(got);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    json_decref(want);
    return n;
}

void bh_wait_payload(bh_host *h, const char *payload_json, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (bh_count_payload(h, payload_json) == 0) {
        if (now_ms() > deadline) {
            char what[256];
            snprintf(what, sizeof what, "no event %s", payload_json);
            fail_with_counters(h, what);
        }
        usleep(20000);
    }
}

void bh_assert_payload_order(bh_host *h, const char *hostname, const char *first_key,
                             const char *second_key)
{
    sqlite3 *db = open_path(h->path);
    sqlite3_stmt *st;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT max(event_id) FROM events WHERE hostname = ?1 AND"
             " json_extract(payload, '$.%s') IS NOT NULL),"
             " (SELECT min(event_id) FROM events WHERE hostname = ?1 AND"
             " json_extract(payload, '$.%s') IS NOT NULL)",
             first_key, second_key);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, hostname, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t last_first = sqlite3_column_int64(st, 0), first_second = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(last_first < first_second);
}

int bh_stream_messages(const char *servers, const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    int n = -1;
    natsOptions *o = NULL;
    if (natsOptions_Create(&o) != NATS_OK)
        return -1;
    natsOptions_SetURL(o, servers);
    if (natsConnection_Connect(&nc, o) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) {
        n = (int)si->State.Msgs;
        jsStreamInfo_Destroy(si);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return n;
}

struct watchdog {
    rre_bridge *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    bool fire = !w->done;
    pthread_mutex_unlock(&w->mu);
    if (fire)
        rre_bridge_stop(w->b);
    return NULL;
}

rre_status bh_run_until_fatal(const char *root, const char *name, const char *servers,
                              const char *stream, const rre_bridge_options *extra, char *why,
                              size_t cap)
{
    bh_host *h = make_host(root, name, servers, stream);
    rre_bridge_options o;
    fill_options(h, extra, &o);
    assert_int_equal(rre_bridge_create(&h->bridge, h->queue, &o), RRE_OK);
    struct watchdog w = {h->bridge, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, watchdog_main, &w), 0);
    rre_status st = rre_bridge_run(h->bridge);
    snprintf(why, cap, "%s", rre_last_error());
    pthread_mutex_lock(&w.mu);
    w.done = true;
    pthread_cond_signal(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(t, NULL);
    rre_bridge_destroy(h->bridge);
    h->bridge = NULL;
    bh_stop(h);
    return st;
}
