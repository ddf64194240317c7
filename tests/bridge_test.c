/*
 * bridge_test.c - the NATS JetStream bridge between simulated hosts on one
 * machine, against real nats-server processes that the tests start: every
 * event reaches every other host once and in its origin's order, nothing
 * echoes back, the same content from two hosts is stored once, what the
 * Python side sees, hostile messages on the stream, stream settings that
 * conflict, where a new host starts, and a restarted bridge resuming.
 *
 * A simulated host is a directory with its own queue file whose queue and
 * bridge are given the host's name. Faults (killed bridges and servers, a
 * cluster losing its stream leader) are in bridge_faults_test.c.
 */
#include "bridge_hosts.h"

#include <nats/nats.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *g_dir;
static tu_nats *g_nats;

/* Every test has a server of its own: streams on one server may not share
 * subjects, and every bridge stream takes rre.>. */
static int server_setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    char d[600];
    snprintf(d, sizeof d, "%s/nats", g_dir);
    g_nats = tu_nats_start(d, NULL);
    return g_nats != NULL ? 0 : -1;
}

static int server_teardown(void **state)
{
    (void)state;
    tu_nats_destroy(g_nats);
    g_nats = NULL;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* Each test uses a stream of its own, so they do not see each other. */
static void stream_name(char *buf, size_t cap, const char *test)
{
    snprintf(buf, cap, "T_%s", test);
}

static void test_three_hosts_receive_every_event_once_in_origin_order_without_echo(void **state)
{
    (void)state;
    enum { N = 300 };
    char stream[64];
    stream_name(stream, sizeof stream, "three");
    bh_host *h[3];
    const char *names[3] = {"alpha.example", "beta.example", "gamma.example"};
    for (int i = 0; i < 3; i++)
        h[i] = bh_start(g_dir, names[i], tu_nats_url(g_nats), stream, NULL);
    /* All three publish at once. */
    bh_publisher *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = bh_publish_async(h[i], N, "three");
    for (int i = 0; i < 3; i++)
        assert_int_equal(bh_publish_join(p[i]), N);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            bh_wait_rows(h[i], names[k], N, 30000);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++)
            bh_assert_origin_sequence(h[i], names[k], "three", N);
        assert_int_equal(bh_count_rows(h[i], NULL), 3 * N);
    }
    /* Nothing was published twice: the stream holds each host's N. */
    assert_int_equal(bh_stream_messages(tu_nats_url(g_nats), stream), 3 * N);
    for (int i = 0; i < 3; i++) {
        /* Each outbound side passes the imported rows (the loop guard) and
         * each inbound side drops its own messages, soon after. */
        rre_bridge_counters c;
        for (int tries = 0; tries < 1000; tries++) {
            rre_bridge_get_counters(h[i]->bridge, &c);
            if (c.out_passed >= 2 * N && c.in_own >= N)
                break;
            usleep(10000);
        }
        assert_int_equal(c.out_published, N);
        assert_int_equal(c.out_passed, 2 * N); /* the imported rows: the loop guard */
        assert_int_equal(c.in_imported, 2 * N);
        assert_int_equal(c.in_own, N);
        assert_int_equal(c.in_refused, 0);
    }
    for (int i = 0; i < 3; i++)
        bh_stop(h[i]);
}

/* The header named `name` of m, or NULL. */
static const char *header(natsMsg *m, const char *name)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, name, &v) == NATS_OK ? v : NULL;
}

static void test_outbound_message_has_the_subject_headers_and_body_of_the_stored_row(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "format");
    bh_host *a = bh_start(g_dir, "gpu-07.cluster", tu_nats_url(g_nats), stream, NULL);
    json_t *payload = json_pack("{s:s,s:s,s:f}", "config_key", "hex8_2p", "model_path",
                                "/models/m.pth", "final_loss", 0.0423);
    const char *trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    rre_queue_publish_result res;
    assert_int_equal(rre_queue_publish(a->queue, RRE_EV_TRAINING_COMPLETED, payload, "trainer",
                                       "2026-03-04T05:06:07.123456", trace, &res),
                     RRE_OK);
    json_decref(payload);
    while (bh_stream_messages(tu_nats_url(g_nats), stream) < 1)
        usleep(10000);
    natsConnection *nc = tu_nats_connect(g_nats);
    assert_non_null(nc);
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    natsMsg *m = NULL;
    assert_int_equal(js_GetMsg(&m, js, stream, 1, NULL, NULL), NATS_OK);
    assert_string_equal(natsMsg_GetSubject(m),
                        "rre.gpu-07_cluster.training_pipeline.TRAINING_COMPLETED");
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(res.hash, hex);
    assert_string_equal(header(m, "Nats-Msg-Id"), hex);
    assert_string_equal(header(m, "ce-id"), hex);
    assert_string_equal(header(m, "ce-specversion"), "1.0");
    assert_string_equal(header(m, "ce-source"), "/ringrift/gpu-07.cluster/trainer");
    assert_string_equal(header(m, "ce-type"), "ringrift.TRAINING_COMPLETED");
    assert_string_equal(header(m, "ce-time"), "2026-03-04T05:06:07.123456Z"); /* zone added */
    assert_string_equal(header(m, "ce-datacontenttype"), "application/json");
    assert_string_equal(header(m, "ce-traceparent"), trace);
    assert_string_equal(header(m, "Rre-Origin-Host"), "gpu-07.cluster");
    /* The body is the row's payload text, byte for byte. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(a->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT payload FROM events WHERE event_id = ?", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, res.event_id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *stored = (const char *)sqlite3_column_text(st, 0);
    assert_int_equal(natsMsg_GetDataLength(m), (int)strlen(stored));
    assert_memory_equal(natsMsg_GetData(m), stored, strlen(stored));
    sqlite3_finalize(st);
    sqlite3_close(db);
    natsMsg_Destroy(m);
    /* A long source is carried whole, not cut. */
    char longsrc[2001];
    memset(longsrc, 's', 2000);
    longsrc[2000] = '\0';
    bh_publish_text(a, "ELO_UPDATED", "{\"long_source\":1}", longsrc);
    while (bh_stream_messages(tu_nats_url(g_nats), stream) < 2)
        usleep(10000);
    assert_int_equal(js_GetMsg(&m, js, stream, 2, NULL, NULL), NATS_OK);
    const char *src = header(m, "ce-source");
    assert_non_null(src);
    assert_int_equal(strlen(src), strlen("/ringrift/gpu-07.cluster/") + 2000);
    natsMsg_Destroy(m);
    /* Host and source are percent-encoded path segments: a valid URI
     * reference whatever they hold. */
    bh_publish_text(a, "ELO_UPDATED", "{\"odd_source\":1}", "trainer one/50% z\xc3\xbcrich");
    while (bh_stream_messages(tu_nats_url(g_nats), stream) < 3)
        usleep(10000);
    assert_int_equal(js_GetMsg(&m, js, stream, 3, NULL, NULL), NATS_OK);
    assert_string_equal(header(m, "ce-source"),
                        "/ringrift/gpu-07.cluster/trainer%20one%2F50%25%20z%C3%BCrich");
    natsMsg_Destroy(m);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    bh_stop(a);
}

static void test_same_content_on_two_hosts_is_stored_once_on_every_host(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "same");
    bh_host *a = bh_start(g_dir, "same-a", tu_nats_url(g_nats), stream, NULL);
    bh_host *b = bh_start(g_dir, "same-b", tu_nats_url(g_nats), stream, NULL);
    bh_host *c = bh_start(g_dir, "same-c", tu_nats_url(g_nats), stream, NULL);
    const char *payload = "{\"config_key\":\"hex8_2p\",\"model_id\":\"m1\",\"new_elo\":1500.5}";
    bh_publish_text(a, "ELO_UPDATED", payload, "evaluator");
    bh_publish_text(b, "ELO_UPDATED", payload, "evaluator");
    /* A marker after it from each host shows when each host's stream has
     * been carried through. */
    bh_publish_text(a, "ELO_UPDATED", "{\"marker\":\"a\"}", "test");
    bh_publish_text(b, "ELO_UPDATED", "{\"marker\":\"b\"}", "test");
    bh_host *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        bh_wait_payload(all[i], "{\"marker\":\"a\"}", 20000);
        bh_wait_payload(all[i], "{\"marker\":\"b\"}", 20000);
        assert_int_equal(bh_count_payload(all[i], payload), 1);
    }
    assert_int_equal(bh_stream_messages(tu_nats_url(g_nats), stream), 3);
    bh_stop(a);
    bh_stop(b);
    bh_stop(c);
}

static void test_python_side_sees_other_hosts_events_and_its_own_rows_are_carried(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "python");
    bh_host *a = bh_start(g_dir, "py-a", tu_nats_url(g_nats), stream, NULL);
    bh_host *b = bh_start(g_dir, "py-b", tu_nats_url(g_nats), stream, NULL);
    /* A row the Python side of host A writes, with its plain INSERT. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(a->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO events(event_type, payload, source, hostname, created_at)"
                     " VALUES ('training_completed', '{\"config_key\": \"sq8_4p\", \"epochs\": 3,"
                     " \"final_loss\": NaN}', 'python_trainer', 'py-a',"
                     " CAST(strftime('%s', 'now') AS REAL))",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    /* An event of host B, read on A the way the Python poller reads. */
    bh_publish_text(b, "MODEL_PROMOTED", "{\"config_key\":\"hex8_2p\",\"model_id\":\"m7\"}",
                    "promoter");
    bh_wait_rows(a, "py-b", 1, 20000);
    bh_wait_rows(b, "py-a", 1, 20000);
    assert_int_equal(sqlite3_open(a->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT event_type, payload, source, hostname, created_at"
                                        " FROM events WHERE hostname = 'py-b'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "MODEL_PROMOTED");
    const char *payload = (const char *)sqlite3_column_text(st, 1);
    assert_non_null(strstr(payload, "\"model_id\":\"m7\""));
    assert_non_null(strstr(payload, "\"timestamp\":\"" BH_TIMESTAMP "\"")); /* the origin's */
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "promoter");
    assert_true(sqlite3_column_double(st, 4) > 1.7e9); /* the local commit time */
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* Host A's Python row reached B, NaN read as null as every reader does. */
    assert_int_equal(sqlite3_open(b->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT event_type, payload, source FROM events"
                                        " WHERE hostname = 'py-a'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "TRAINING_COMPLETED");
    assert_non_null(strstr((const char *)sqlite3_column_text(st, 1), "\"final_loss\":null"));
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "python_trainer");
    sqlite3_finalize(st);
    sqlite3_close(db);
    bh_stop(a);
    bh_stop(b);
}

struct seen {
    pthread_mutex_t mu;
    int count;
    rre_origin origin;
    char hostname[64];
    char source[64];
};

static int on_promoted(const rre_event *ev, void *user_data)
{
    struct seen *s = user_data;
    pthread_mutex_lock(&s->mu);
    s->count++;
    s->origin = ev->origin;
    snprintf(s->hostname, sizeof s->hostname, "%s", ev->hostname);
    snprintf(s->source, sizeof s->source, "%s", ev->source);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void test_linked_router_receives_other_hosts_events_with_origin_host(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "router");
    bh_host *a = bh_start(g_dir, "router-a", tu_nats_url(g_nats), stream, NULL);
    bh_host *b = bh_start(g_dir, "router-b", tu_nats_url(g_nats), stream, NULL);
    /* A daemon of host B: a router linked to B's queue. */
    rre_router *router;
    assert_int_equal(rre_router_create(&router, NULL), RRE_OK);
    struct seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, RRE_ORIGIN_LOCAL, "", ""};
    assert_int_equal(rre_router_subscribe(router, RRE_EV_MODEL_PROMOTED, "promotion watcher",
                                          on_promoted, &seen, NULL),
                     RRE_OK);
    rre_link *link;
    assert_int_equal(rre_link_create(&link, router, b->queue, NULL), RRE_OK);
    bh_publish_text(a, "MODEL_PROMOTED", "{\"config_key\":\"hex8_2p\",\"model_id\":\"m9\"}",
                    "promoter");
    bh_wait_rows(b, "router-a", 1, 20000);
    assert_int_equal(rre_link_sync(link, 10000), RRE_OK);
    pthread_mutex_lock(&seen.mu);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.origin, RRE_ORIGIN_HOST);
    assert_string_equal(seen.hostname, "router-a");
    assert_string_equal(seen.source, "promoter");
    pthread_mutex_unlock(&seen.mu);
    rre_link_destroy(link);
    rre_router_destroy(router);
    bh_stop(a);
    bh_stop(b);
}

static void test_new_host_starts_with_new_events_and_replay_all_imports_history(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "join");
    bh_host *a = bh_start(g_dir, "join-a", tu_nats_url(g_nats), stream, NULL);
    bh_publish_text(a, "ELO_UPDATED", "{\"before\":1}", "t");
    bh_publish_text(a, "ELO_UPDATED", "{\"before\":2}", "t");
    while (bh_stream_messages(tu_nats_url(g_nats), stream) < 2)
        usleep(10000);
    bh_host *late = bh_start(g_dir, "join-late", tu_nats_url(g_nats), stream, NULL);
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.start = RRE_BRIDGE_START_ALL;
    bh_host *replay = bh_start(g_dir, "join-replay", tu_nats_url(g_nats), stream, &o);
    bh_publish_text(a, "ELO_UPDATED", "{\"after\":1}", "t");
    bh_wait_payload(late, "{\"after\":1}", 20000);
    bh_wait_payload(replay, "{\"after\":1}", 20000);
    assert_int_equal(bh_count_rows(late, "join-a"), 1);
    assert_int_equal(bh_count_rows(replay, "join-a"), 3);
    bh_assert_payload_order(replay, "join-a", "before", "after");
    bh_stop(a);
    bh_stop(late);
    bh_stop(replay);
}

static void test_restarted_bridge_imports_what_was_published_while_it_was_down(void **state)
{
    (void)state;
    enum { N = 200 };
    char stream[64];
    stream_name(stream, sizeof stream, "restart");
    bh_host *a = bh_start(g_dir, "restart-a", tu_nats_url(g_nats), stream, NULL);
    bh_host *b = bh_start(g_dir, "restart-b", tu_nats_url(g_nats), stream, NULL);
    bh_publisher *p = bh_publish_async(a, N, "first");
    assert_int_equal(bh_publish_join(p), N);
    bh_wait_rows(b, "restart-a", N, 20000);
    bh_stop_bridge(b);
    /* While B's bridge is down, A goes on, and B's processes go on too. */
    p = bh_publish_async(a, N, "second");
    assert_int_equal(bh_publish_join(p), N);
    p = bh_publish_async(b, 10, "local");
    assert_int_equal(bh_publish_join(p), 10);
    bh_start_bridge(b, NULL);
    bh_wait_rows(b, "restart-a", 2 * N, 20000);
    bh_wait_rows(a, "restart-b", 10, 20000);
    bh_assert_origin_sequence(b, "restart-a", "first", N);
    bh_assert_origin_sequence(b, "restart-a", "second", N);
    bh_assert_origin_sequence(a, "restart-b", "local", 10);
    assert_int_equal(bh_count_rows(b, "restart-a"), 2 * N);
    bh_stop(a);
    bh_stop(b);
}

/* A thread that publishes one event on a host after a pause. */
struct late_publish {
    bh_host *h;
    const char *payload;
    int delay_ms;
};

static void *publish_late(void *arg)
{
    struct late_publish *lp = arg;
    usleep((useconds_t)lp->delay_ms * 1000);
    bh_publish_text(lp->h, "ELO_UPDATED", lp->payload, "stalltest");
    return NULL;
}

/* The server delivers a message to a fetch that never handles it (as when
 * the connection or the consumer's leader is lost on its way) and does not
 * send it again: here another client takes it from the bridge's consumer
 * and asks for it again only in ten minutes. The bridge sees the server
 * past its position with nothing arriving and makes its consumer again at
 * the first sequence it has not stored, well before that. */
static void test_message_delivered_to_a_lost_fetch_reaches_the_host_anyway(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "stall");
    bh_host *a = bh_start(g_dir, "stall-a", tu_nats_url(g_nats), stream, NULL);
    bh_host *b = bh_start(g_dir, "stall-b", tu_nats_url(g_nats), stream, NULL);
    bh_publish_text(a, "ELO_UPDATED", "{\"tag\":\"stall\",\"seq\":-1}", "stalltest");
    bh_wait_rows(b, "stall-a", 1, 20000);

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *thief = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, tu_nats_url(g_nats)), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = rre_bridge_consumer_name(b->bridge);
    assert_int_equal(js_PullSubscribe(&thief, js, "rre.>", so.Consumer, NULL, &so, NULL), NATS_OK);
    /* The bridge's own fetches wait 0.5 s each: a longer one from the
     * thief comes first in the server's queue of waiting requests after at
     * most that long, and takes the next message. Tried a few times, since
     * the bridge may still win. */
    int stolen = 0, published = 1;
    char payloads[8][64];
    for (int attempt = 0; attempt < 8 && stolen == 0; attempt++) {
        snprintf(payloads[attempt], sizeof payloads[attempt], "{\"tag\":\"stall\",\"seq\":%d}",
                 attempt);
        struct late_publish lp = {a, payloads[attempt], 1500};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, publish_late, &lp), 0);
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, thief, 1, 5000, NULL);
        pthread_join(t, NULL);
        published++;
        if (s == NATS_OK && list.Count > 0) {
            stolen = list.Count;
            for (int i = 0; i < list.Count; i++)
                assert_int_equal(natsMsg_NakWithDelay(list.Msgs[i], 600000, NULL), NATS_OK);
        }
        natsMsgList_Destroy(&list);
    }
    print_message("another client took %d message(s); %d published\n", stolen, published - 1);
    if (stolen > 0) {
        bh_wait_rows(b, "stall-a", published, 40000);
        for (int i = 0; i < published - 1; i++)
            assert_int_equal(bh_count_payload(b, payloads[i]), 1);
        rre_bridge_counters c;
        rre_bridge_get_counters(b->bridge, &c);
        assert_true(c.in_consumer_resets >= 1);
    }
    /* The connection is closed (its reading thread joined) before the
     * subscription is destroyed: see drop_consumer() in the bridge. */
    natsSubscription_Unsubscribe(thief);
    natsConnection_Close(nc);
    natsSubscription_Destroy(thief);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    bh_stop(a);
    bh_stop(b);
    if (stolen == 0)
        skip(); /* the bridge won every time: nothing was lost */
}

static void test_existing_stream_with_conflicting_settings_is_a_fatal_error(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "conflict");
    bh_host *a = bh_start(g_dir, "conflict-a", tu_nats_url(g_nats), stream, NULL);
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.dedup_window_s = 7200; /* the stream has the queue's 3600 s */
    char why[1024];
    rre_status st =
        bh_run_until_fatal(g_dir, "conflict-b", tu_nats_url(g_nats), stream, &o, why, sizeof why);
    assert_int_equal(st, RRE_ENATS);
    if (strstr(why, "duplicate window") == NULL)
        fail_msg("the reason does not name the setting: %s", why);
    /* A window longer than the maximum age: the server refuses the stream. */
    stream_name(stream, sizeof stream, "conflict_new");
    rre_bridge_options_init(&o);
    o.dedup_window_s = 7200;
    o.max_age_s = 60;
    st = bh_run_until_fatal(g_dir, "conflict-c", tu_nats_url(g_nats), stream, &o, why, sizeof why);
    assert_int_equal(st, RRE_ENATS);
    if (strstr(why, "creating the stream") == NULL)
        fail_msg("the reason does not say what failed: %s", why);
    bh_stop(a);
}

static void test_second_bridge_on_one_queue_is_refused_naming_the_first(void **state)
{
    (void)state;
    char stream[64];
    stream_name(stream, sizeof stream, "second");
    bh_host *a = bh_start(g_dir, "second-a", tu_nats_url(g_nats), stream, NULL);
    rre_bridge *b2;
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.servers = tu_nats_url(g_nats);
    o.stream = stream;
    assert_int_equal(rre_bridge_create(&b2, a->queue, &o), RRE_OK);
    assert_int_equal(rre_bridge_run(b2), RRE_EHELD);
    assert_non_null(strstr(rre_last_error(), "another bridge"));
    assert_int_equal(rre_bridge_get_state(b2), RRE_BRIDGE_FAILED);
    rre_bridge_destroy(b2);
    bh_stop(a);
}

static void test_bad_options_are_refused_by_name(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[600];
    snprintf(path, sizeof path, "%s/events.db", dir);
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = path;
    qo.maintenance_interval_ms = -1;
    rre_queue *q;
    assert_int_equal(rre_queue_create(&q, &qo), RRE_OK);
    rre_bridge *b = NULL;
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "server"));
    o.servers = "nats://127.0.0.1:4222,,nats://x:1";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    o.servers = "nats://127.0.0.1:4222";
    o.tls_cert = "cert.pem";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "key"));
    o.tls_cert = NULL;
    o.stream = "a.b";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    o.stream = NULL;
    o.replicas = 7;
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    o.replicas = 0;
    o.host = "";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    o.host = "\xff\xfe";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    char too_long[RRE_HOSTNAME_MAX + 2];
    memset(too_long, 'h', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    o.host = too_long;
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_EINVAL);
    assert_int_equal(rre_bridge_options_check(&o), RRE_EINVAL);
    assert_null(b);
    o.host = "gpu-07.cluster.example";
    assert_int_equal(rre_bridge_create(&b, q, &o), RRE_OK);
    const char *consumer = rre_bridge_consumer_name(b);
    assert_int_equal(strncmp(consumer, "rre_gpu-07_cluster_example_", 27), 0);
    assert_int_equal(strlen(consumer), 27 + 8);
    rre_bridge_destroy(b);
    rre_queue_destroy(q);
    tu_rmtree(dir);
    free(dir);
}

static void test_host_token_keeps_letters_digits_dash_and_underscore(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(rre_bridge_host_token("gpu-07.cluster_a.example", buf, sizeof buf), RRE_OK);
    assert_string_equal(buf, "gpu-07_cluster_a_example");
    assert_int_equal(rre_bridge_host_token("h\xc3\xa9te *>", buf, sizeof buf), RRE_OK);
    assert_string_equal(buf, "h__te___");
    assert_int_equal(rre_bridge_host_token("", buf, sizeof buf), RRE_EINVAL);
    assert_int_equal(rre_bridge_host_token("abcdef", buf, 4), RRE_ELIMIT);
    /* A long name gives its first RRE_BRIDGE_TOKEN_MAX bytes. */
    char longname[101], token[128];
    memset(longname, 'h', 100);
    longname[100] = '\0';
    assert_int_equal(rre_bridge_host_token(longname, token, sizeof token), RRE_OK);
    assert_int_equal(strlen(token), RRE_BRIDGE_TOKEN_MAX);
}

int main(void)
{
    /* Line by line, so that what a test printed survives a crash. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* BRIDGE_TEST_FILTER=test_existing* runs only the tests that match. */
    const char *filter = getenv("BRIDGE_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_token_keeps_letters_digits_dash_and_underscore),
        cmocka_unit_test(test_bad_options_are_refused_by_name),
        cmocka_unit_test_setup_teardown(
            test_three_hosts_receive_every_event_once_in_origin_order_without_echo, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_outbound_message_has_the_subject_headers_and_body_of_the_stored_row, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(test_same_content_on_two_hosts_is_stored_once_on_every_host,
                                        server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(
            test_python_side_sees_other_hosts_events_and_its_own_rows_are_carried, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_linked_router_receives_other_hosts_events_with_origin_host, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_new_host_starts_with_new_events_and_replay_all_imports_history, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_restarted_bridge_imports_what_was_published_while_it_was_down, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_message_delivered_to_a_lost_fetch_reaches_the_host_anyway, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(
            test_existing_stream_with_conflicting_settings_is_a_fatal_error, server_setup,
            server_teardown),
        cmocka_unit_test_setup_teardown(test_second_bridge_on_one_queue_is_refused_naming_the_first,
                                        server_setup, server_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
