/*
 * link_test.c - a router linked to the durable queue: local events are
 * appended and delivered once; events of other processes are injected once;
 * content published by two processes is stored once and delivered once.
 */
#include "queue_sqlite.h" /* own-id tracking */
#include "testutil.h"

#include <rre/rre.h>

#include <sqlite3.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct node {
    rre_router *router;
    rre_queue *queue;
    rre_link *link;
};

struct recorder {
    pthread_mutex_t mu;
    size_t count, local, remote;
    int64_t last_seq; /* the "seq" payload field of the last remote event */
    bool in_order;
};

static char *test_dir;
static char db_path[512];

static int setup(void **state)
{
    (void)state;
    test_dir = tu_mkdtemp();
    snprintf(db_path, sizeof db_path, "%s/events.db", test_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(test_dir);
    free(test_dir);
    return 0;
}

static int record(const rre_event *ev, void *user_data)
{
    struct recorder *rec = user_data;
    pthread_mutex_lock(&rec->mu);
    rec->count++;
    if (ev->origin == RRE_ORIGIN_LOCAL) {
        rec->local++;
    } else {
        rec->remote++;
        json_t *seq = json_object_get(ev->payload, "seq");
        if (seq != NULL) {
            if (json_integer_value(seq) != rec->last_seq + 1)
                rec->in_order = false;
            rec->last_seq = json_integer_value(seq);
        }
    }
    pthread_mutex_unlock(&rec->mu);
    return 0;
}

static void recorder_init(struct recorder *rec)
{
    memset(rec, 0, sizeof *rec);
    pthread_mutex_init(&rec->mu, NULL);
    rec->in_order = true;
}

/* Opens a router, a queue and a link; `rec` (may be NULL) subscribes to
 * everything before the link starts reading, so nothing passes unseen. */
static void node_open(struct node *n, const rre_link_options *lo, struct recorder *rec)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.maintenance_interval_ms = -1;
    assert_int_equal(rre_router_create(&n->router, NULL), RRE_OK);
    assert_int_equal(rre_queue_create(&n->queue, &qo), RRE_OK);
    if (rec != NULL)
        assert_int_equal(rre_router_subscribe_all(n->router, "rec", record, rec, NULL), RRE_OK);
    assert_int_equal(rre_link_create(&n->link, n->router, n->queue, lo), RRE_OK);
}

static void node_close(struct node *n)
{
    rre_link_destroy(n->link);
    rre_router_destroy(n->router);
    rre_queue_destroy(n->queue);
}

static json_t *payload_seq(int seq)
{
    return json_pack("{s:s, s:i, s:i}", "config_key", "hex8_2p", "games_completed", 10, "seq", seq);
}

static int64_t count_rows(struct node *n)
{
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(n->queue, &stats), RRE_OK);
    int64_t events = json_integer_value(json_object_get(stats, "events"));
    json_decref(stats);
    return events;
}

static void publish_seq(struct node *n, int seq)
{
    json_t *p = payload_seq(seq);
    rre_publish_result res;
    assert_int_equal(rre_router_publish_type(n->router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res),
                     RRE_OK);
    assert_false(res.duplicate);
    assert_true(res.event_id > 0);
    json_decref(p);
}

static void test_local_event_is_appended_and_delivered_once(void **state)
{
    (void)state;
    struct node a;
    struct recorder rec;
    recorder_init(&rec);
    node_open(&a, NULL, &rec);
    for (int i = 1; i <= 50; i++)
        publish_seq(&a, i);
    assert_int_equal(rre_link_sync(a.link, 5000), RRE_OK);
    assert_int_equal(rec.count, 50);
    assert_int_equal(rec.local, 50);
    assert_int_equal(count_rows(&a), 50);
    rre_link_counters c;
    rre_link_get_counters(a.link, &c);
    assert_int_equal(c.appended, 50);
    assert_int_equal(c.own_skipped, 50);
    assert_int_equal(c.injected, 0);
    node_close(&a);
}

static void test_other_process_events_are_injected_once_in_order(void **state)
{
    (void)state;
    struct node a, b;
    struct recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    node_open(&a, NULL, &ra);
    node_open(&b, NULL, &rb);
    for (int i = 1; i <= 100; i++)
        publish_seq(&a, i);
    assert_int_equal(rre_link_sync(b.link, 5000), RRE_OK);
    assert_int_equal(rre_link_sync(a.link, 5000), RRE_OK);
    assert_int_equal(ra.count, 100);
    assert_int_equal(ra.remote, 0);
    assert_int_equal(rb.count, 100);
    assert_int_equal(rb.remote, 100);
    assert_true(rb.in_order);
    node_close(&a);
    node_close(&b);
}

static void test_same_content_from_two_processes_is_stored_and_delivered_once(void **state)
{
    (void)state;
    struct node a, b;
    struct recorder rb;
    recorder_init(&rb);
    node_open(&a, NULL, NULL);
    node_open(&b, NULL, &rb);
    publish_seq(&a, 7);
    assert_int_equal(rre_link_sync(b.link, 5000), RRE_OK);
    /* b already saw it from the queue: its own publish is a duplicate. */
    json_t *p = payload_seq(7);
    rre_publish_result res;
    assert_int_equal(rre_router_publish_type(b.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res),
                     RRE_OK);
    assert_true(res.duplicate);
    json_decref(p);
    assert_int_equal(count_rows(&a), 1);
    assert_int_equal(rb.count, 1);
    node_close(&a);
    node_close(&b);
}

static void test_concurrent_same_content_is_stored_once(void **state)
{
    (void)state;
    /* Neither router has seen the content when it publishes, unless b's
     * reader has already brought a's row in: either the queue's dedup refuses
     * b's copy or b's router does. The content is stored once and each router
     * delivers it once. */
    struct node a, b;
    struct recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    node_open(&a, NULL, &ra);
    node_open(&b, NULL, &rb);
    json_t *p = payload_seq(1);
    assert_int_equal(rre_router_publish_type(a.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, NULL),
                     RRE_OK);
    json_decref(p);
    p = payload_seq(1);
    rre_publish_result res;
    assert_int_equal(rre_router_publish_type(b.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res),
                     RRE_OK);
    json_decref(p);
    assert_int_equal(rre_link_sync(a.link, 5000), RRE_OK);
    assert_int_equal(rre_link_sync(b.link, 5000), RRE_OK);
    assert_int_equal(count_rows(&a), 1);
    assert_int_equal(ra.count, 1);
    assert_int_equal(rb.count, 1);
    rre_link_counters c;
    rre_link_get_counters(b.link, &c);
    assert_int_equal(c.queue_duplicates + (res.duplicate ? 1 : 0), 1);
    node_close(&a);
    node_close(&b);
}

static void test_content_another_process_stored_is_counted_as_queue_duplicate(void **state)
{
    (void)state;
    /* b reads nothing, so its router has not seen a's row: b delivers its own
     * copy locally and the queue's dedup refuses to store it a second time. */
    struct node a, b;
    struct recorder rb;
    recorder_init(&rb);
    rre_link_options lo = {0};
    lo.flags = RRE_LINK_NO_READER;
    node_open(&a, NULL, NULL);
    node_open(&b, &lo, &rb);
    publish_seq(&a, 3);
    json_t *p = payload_seq(3);
    rre_publish_result res;
    assert_int_equal(rre_router_publish_type(b.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res),
                     RRE_OK);
    json_decref(p);
    assert_false(res.duplicate);
    assert_int_equal(count_rows(&a), 1);
    assert_int_equal(rb.count, 1);
    rre_link_counters c;
    rre_link_get_counters(b.link, &c);
    assert_int_equal(c.queue_duplicates, 1);
    assert_int_equal(c.appended, 0);
    node_close(&a);
    node_close(&b);
}

static void test_events_from_child_processes_arrive_exactly_once(void **state)
{
    (void)state;
    enum { CHILDREN = 3, EACH = 300 };
    /* Fork before this process starts any thread (a child of a threaded
     * process may inherit a lock held by another thread). The reader starts
     * after id 0, so it meets every event whenever the children run. */
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            rre_queue_options qo;
            rre_queue_options_init(&qo);
            qo.path = db_path;
            qo.maintenance_interval_ms = -1;
            rre_router *r = NULL;
            rre_queue *q = NULL;
            rre_link *l = NULL;
            rre_link_options lo = {0};
            lo.flags = RRE_LINK_NO_READER;
            if (rre_router_create(&r, NULL) != RRE_OK || rre_queue_create(&q, &qo) != RRE_OK ||
                rre_link_create(&l, r, q, &lo) != RRE_OK)
                _exit(3);
            int rc = 0;
            for (int i = 0; i < EACH; i++) {
                json_t *p = json_pack("{s:s, s:i, s:i}", "config_key", "hex8_2p", "games_completed",
                                      i, "child", c);
                rre_publish_result res;
                if (rre_router_publish_type(r, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res) != RRE_OK ||
                    res.duplicate)
                    rc = 4;
                json_decref(p);
            }
            rre_link_destroy(l);
            rre_router_destroy(r);
            rre_queue_destroy(q);
            _exit(rc);
        }
    }
    struct node a;
    struct recorder ra;
    recorder_init(&ra);
    rre_link_options lo = {0};
    lo.flags = RRE_LINK_SINCE_ID;
    node_open(&a, &lo, &ra);
    for (int c = 0; c < CHILDREN; c++) {
        int status;
        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(rre_link_sync(a.link, 10000), RRE_OK);
    assert_int_equal(ra.remote, CHILDREN * EACH);
    assert_int_equal(ra.count, CHILDREN * EACH);
    node_close(&a);
}

static void test_durable_link_resumes_after_restart(void **state)
{
    (void)state;
    struct node pub;
    node_open(&pub, NULL, NULL);
    rre_link_options lo = {0};
    lo.subscriber_name = "link-test";
    struct node sub;
    struct recorder r1;
    recorder_init(&r1);
    node_open(&sub, &lo, &r1);
    for (int i = 1; i <= 10; i++)
        publish_seq(&pub, i);
    assert_int_equal(rre_link_sync(sub.link, 5000), RRE_OK);
    assert_int_equal(r1.remote, 10);
    node_close(&sub);

    for (int i = 11; i <= 15; i++)
        publish_seq(&pub, i);
    struct recorder r2;
    recorder_init(&r2);
    r2.last_seq = 10;
    node_open(&sub, &lo, &r2);
    assert_int_equal(rre_link_sync(sub.link, 5000), RRE_OK);
    assert_int_equal(r2.remote, 5);
    assert_true(r2.in_order);
    node_close(&sub);
    node_close(&pub);
}

static void test_sync_with_zero_negative_and_no_reader_timeouts(void **state)
{
    (void)state;
    struct node a, b, c;
    struct recorder rb;
    recorder_init(&rb);
    rre_link_options lo = {0};
    lo.flags = RRE_LINK_NO_READER;
    node_open(&a, &lo, NULL);
    node_open(&b, NULL, &rb);
    node_open(&c, &lo, NULL);
    publish_seq(&a, 1);
    /* A negative timeout waits as long as it takes. */
    assert_int_equal(rre_link_sync(b.link, -1), RRE_OK);
    assert_int_equal(rb.count, 1);
    /* Nothing new: 0 only checks, and the reader is already there. */
    assert_int_equal(rre_link_sync(b.link, 0), RRE_OK);
    /* Without a reader there is nothing to wait for. */
    assert_int_equal(rre_link_sync(c.link, 0), RRE_OK);
    assert_int_equal(rre_link_sync(NULL, 0), RRE_EINVAL);
    node_close(&c);
    node_close(&b);
    node_close(&a);
}

static void test_sync_reports_a_reader_whose_name_was_taken_over(void **state)
{
    (void)state;
    struct node a, b;
    rre_link_options lo = {0};
    lo.subscriber_name = "taken";
    node_open(&a, NULL, NULL);
    node_open(&b, &lo, NULL);
    /* Another process takes the lease: its token is no longer ours. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, "UPDATE rre_leases SET token = token + 1", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    publish_seq(&a, 1); /* the reader wakes, acks, and finds the lease gone */
    assert_int_equal(rre_link_sync(b.link, -1), RRE_EHELD);
    assert_non_null(strstr(rre_last_error(), "reader stopped"));
    node_close(&b);
    node_close(&a);
}

static void test_sync_reports_a_reader_stopped_by_closing_the_queue(void **state)
{
    (void)state;
    struct node a, b;
    node_open(&a, NULL, NULL);
    node_open(&b, NULL, NULL);
    rre_queue_close(b.queue);
    publish_seq(&a, 1);
    assert_int_equal(rre_link_sync(b.link, -1), RRE_ECLOSED);
    node_close(&b);
    node_close(&a);
}

static void test_a_reused_id_of_another_process_is_not_taken_for_our_own(void **state)
{
    (void)state;
    /* Our transaction recorded id 7 and rolled back; before its id was
     * forgotten another process committed its own row 7. */
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.maintenance_interval_ms = -1;
    rre_queue *q;
    assert_int_equal(rre_queue_create(&q, &qo), RRE_OK);
    uint8_t ours[RRE_HASH_SIZE], theirs[RRE_HASH_SIZE];
    memset(ours, 0xab, sizeof ours);
    memset(theirs, 0xcd, sizeof theirs);
    rre__queue_own_set_tracking(q, true);
    rre__queue_own_add(q, 7, ours);
    rre__queue_own_add(q, 8, ours);
    assert_false(rre__queue_own_take(q, 7, theirs)); /* theirs: delivered */
    assert_false(rre__queue_own_take(q, 7, ours));   /* the entry is used up */
    assert_true(rre__queue_own_take(q, 8, ours));    /* ours: skipped */
    assert_false(rre__queue_own_take(q, 8, ours));
    rre__queue_own_set_tracking(q, false);
    rre_queue_destroy(q);
}

/* A pipelined link: publishes return before the commit, the event id is
 * not known then; after a flush every event is stored, in order, seen once
 * by each router; destroying the link stores what is still waiting. */
static void test_pipelined_link_stores_everything_by_flush_and_destroy(void **state)
{
    (void)state;
    struct node a, b;
    struct recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    rre_link_options lo = {.flags = RRE_LINK_PIPELINED};
    node_open(&a, &lo, &ra);
    node_open(&b, NULL, &rb);
    for (int i = 1; i <= 500; i++) {
        json_t *p = payload_seq(i);
        rre_publish_result res;
        assert_int_equal(rre_router_publish_type(a.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, &res),
                         RRE_OK);
        assert_false(res.duplicate);
        assert_int_equal(res.event_id, 0);
        json_decref(p);
    }
    assert_int_equal(rre_link_flush(a.link, -1), RRE_OK);
    assert_int_equal(count_rows(&a), 500);
    assert_int_equal(rre_link_sync(a.link, 10000), RRE_OK);
    assert_int_equal(rre_link_sync(b.link, 10000), RRE_OK);
    assert_int_equal(ra.count, 500);
    assert_int_equal(ra.remote, 0);
    assert_int_equal(rb.remote, 500);
    assert_true(rb.in_order);
    rre_link_counters c;
    rre_link_get_counters(a.link, &c);
    assert_int_equal(c.appended, 500);
    assert_int_equal(c.own_skipped, 500);
    /* Without the flag, flushing has nothing to wait for. */
    assert_int_equal(rre_link_flush(b.link, 0), RRE_OK);
    assert_int_equal(rre_link_flush(NULL, 0), RRE_EINVAL);
    for (int i = 501; i <= 600; i++) {
        json_t *p = payload_seq(i);
        assert_int_equal(rre_router_publish_type(a.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    node_close(&a);
    assert_int_equal(count_rows(&b), 600);
    assert_int_equal(rre_link_sync(b.link, 10000), RRE_OK);
    assert_int_equal(rb.remote, 600);
    assert_true(rb.in_order);
    node_close(&b);
}

/* A linked router's events are stored under the content hash the router
 * computed (the link does not compute it again): the same content published
 * on the queue directly, which computes it, is a duplicate of each. */
static void check_stored_under_content_hash(unsigned flags)
{
    struct node a;
    rre_link_options lo = {.flags = flags};
    node_open(&a, &lo, NULL);
    const char *texts[] = {
        "{\"config_key\":\"hex8_2p\",\"games_completed\":10,\"seq\":1}",
        /* envelope fields, left out of the hash */
        "{\"config_key\":\"hex8_2p\",\"games_completed\":11,\"source\":\"elsewhere\","
        "\"timestamp\":\"2026-01-01T00:00:00Z\",\"trace_id\":\"x\"}",
        /* keys out of order, a real with an integral value, nesting */
        "{\"seq\":3,\"games_completed\":12.0,\"config_key\":\"sq8_4p\",\"extra\":{\"b\":[1,2],"
        "\"a\":\"\\u00e9\"}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *p = NULL;
        assert_int_equal(rre_payload_parse(texts[i], strlen(texts[i]), &p), RRE_OK);
        assert_int_equal(rre_router_publish_type(a.router, RRE_EV_SELFPLAY_COMPLETE, p, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    assert_int_equal(rre_link_flush(a.link, -1), RRE_OK);
    assert_int_equal(count_rows(&a), 3);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *p = NULL;
        assert_int_equal(rre_payload_parse(texts[i], strlen(texts[i]), &p), RRE_OK);
        rre_queue_publish_result res;
        assert_int_equal(
            rre_queue_publish(a.queue, RRE_EV_SELFPLAY_COMPLETE, p, "direct", NULL, NULL, &res),
            RRE_OK);
        if (!res.duplicate)
            fail_msg("payload %zu was stored under another hash than its content hash", i);
        uint8_t want[RRE_HASH_SIZE];
        assert_int_equal(rre_content_hash(RRE_EV_SELFPLAY_COMPLETE, p, want), RRE_OK);
        assert_memory_equal(res.hash, want, RRE_HASH_SIZE);
        json_decref(p);
    }
    assert_int_equal(count_rows(&a), 3);
    node_close(&a);
}

static void test_linked_events_are_stored_under_their_content_hash(void **state)
{
    (void)state;
    check_stored_under_content_hash(0);
}

static void test_pipelined_linked_events_are_stored_under_their_content_hash(void **state)
{
    (void)state;
    check_stored_under_content_hash(RRE_LINK_PIPELINED);
}

/* Handler retries need each local event's id when it is dispatched, which a
 * pipelined link does not have: the two are refused together. A pipelined
 * link's flush reports the link's own events that were not stored. */
static void test_pipelined_link_refuses_handler_retries_and_reports_its_failures(void **state)
{
    (void)state;
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.maintenance_interval_ms = -1;
    rre_router *r = NULL;
    rre_queue *q = NULL;
    assert_int_equal(rre_router_create(&r, NULL), RRE_OK);
    assert_int_equal(rre_queue_create(&q, &qo), RRE_OK);
    rre_link *l = NULL;
    rre_link_options both = {.flags = RRE_LINK_PIPELINED | RRE_LINK_HANDLER_RETRIES,
                             .subscriber_name = "both"};
    assert_int_equal(rre_link_create(&l, r, q, &both), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "RRE_LINK_PIPELINED"));
    rre_link_options lo = {.flags = RRE_LINK_PIPELINED | RRE_LINK_NO_READER};
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_OK);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN"
                                  " SELECT RAISE(ABORT, 'refused by the test'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 7; i++) {
        json_t *p = payload_seq(i);
        assert_int_equal(rre_router_publish_type(r, RRE_EV_SELFPLAY_COMPLETE, p, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    assert_int_not_equal(rre_link_flush(l, -1), RRE_OK);
    assert_non_null(strstr(rre_last_error(), "7 events published on the router were not stored"));
    rre_link_counters c;
    rre_link_get_counters(l, &c);
    assert_int_equal(c.append_failed, 7);
    assert_int_equal(rre_link_flush(l, -1), RRE_OK); /* reported once */
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rre_link_destroy(l);
    rre_router_destroy(r);
    rre_queue_destroy(q);
}

static void test_link_requires_router_and_queue(void **state)
{
    (void)state;
    rre_link *l = (rre_link *)1;
    assert_int_equal(rre_link_create(&l, NULL, NULL, NULL), RRE_EINVAL);
    assert_null(l);
    rre_link_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_event_is_appended_and_delivered_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_process_events_are_injected_once_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_same_content_from_two_processes_is_stored_and_delivered_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_content_another_process_stored_is_counted_as_queue_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_content_is_stored_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_from_child_processes_arrive_exactly_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_durable_link_resumes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_with_zero_negative_and_no_reader_timeouts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_reports_a_reader_whose_name_was_taken_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_reports_a_reader_stopped_by_closing_the_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_reused_id_of_another_process_is_not_taken_for_our_own, setup, teardown),
        cmocka_unit_test(test_link_requires_router_and_queue),
        cmocka_unit_test_setup_teardown(test_linked_events_are_stored_under_their_content_hash,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelined_linked_events_are_stored_under_their_content_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_link_stores_everything_by_flush_and_destroy,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelined_link_refuses_handler_retries_and_reports_its_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
