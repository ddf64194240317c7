/*
 * link_retry_test.c - handler retries of a linked router
 * (RRE_LINK_HANDLER_RETRIES): a failing handler, and only it, gets the event
 * again after the delay, whether the event was published in this process or
 * read from the queue; after its attempts the event is a dead letter under
 * the handler's own subscriber id, and a replay reaches that handler alone.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* A handler that fails its first `fail` calls with `status`. "scorer"
 * and "archiver" both receive ELO_UPDATED. */
struct counted {
    atomic_int calls;
    atomic_int fail;
    int status;
};

static int counted_handler(const rre_event *ev, void *ud)
{
    (void)ev;
    struct counted *c = ud;
    int n = atomic_fetch_add(&c->calls, 1);
    if (n < atomic_load(&c->fail))
        return rre_fail((rre_status)c->status, "scripted handler failure");
    return 0;
}

struct node {
    rre_router *router;
    rre_queue *queue;
    rre_link *link;
};

static void node_open(struct node *n, int max_attempts, struct counted *a, struct counted *b)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.hostname = "h1";
    qo.maintenance_interval_ms = -1;
    assert_int_equal(rre_router_create(&n->router, NULL), RRE_OK);
    assert_int_equal(rre_queue_create(&n->queue, &qo), RRE_OK);
    if (a != NULL)
        assert_int_equal(
            rre_router_subscribe(n->router, RRE_EV_ELO_UPDATED, "scorer", counted_handler, a, NULL),
            RRE_OK);
    if (b != NULL)
        assert_int_equal(rre_router_subscribe(n->router, RRE_EV_ELO_UPDATED, "archiver",
                                              counted_handler, b, NULL),
                         RRE_OK);
    rre_link_options lo = {0};
    lo.flags = RRE_LINK_HANDLER_RETRIES;
    lo.subscriber_name = "daemon";
    lo.max_attempts = max_attempts;
    lo.retry_delay_s = 0.05;
    lo.retry_delay_max_s = 0.2;
    assert_int_equal(rre_link_create(&n->link, n->router, n->queue, &lo), RRE_OK);
}

static void node_close(struct node *n)
{
    rre_link_destroy(n->link);
    rre_router_destroy(n->router);
    rre_queue_destroy(n->queue);
}

static void publish_local(struct node *n, int i, unsigned flags)
{
    json_t *p = json_pack("{s:i}", "i", i);
    rre_publish_options po = {.flags = flags};
    assert_int_equal(rre_router_publish_type(n->router, RRE_EV_ELO_UPDATED, p, &po, NULL), RRE_OK);
    json_decref(p);
}

/* Waits up to 10 s for *v to reach `want`. */
static void wait_calls(atomic_int *v, int want)
{
    for (int i = 0; i < 1000 && atomic_load(v) < want; i++)
        usleep(10000);
    assert_int_equal(atomic_load(v), want);
}

static size_t dead_letters(struct node *n, const char *sub)
{
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(n->queue, sub, &list), RRE_OK);
    size_t k = json_array_size(list);
    json_decref(list);
    return k;
}

static void test_failing_handler_alone_is_called_again(void **state)
{
    (void)state;
    struct counted a = {.fail = 1, .status = RRE_EIO}, b = {0};
    struct node n;
    node_open(&n, 5, &a, &b);
    publish_local(&n, 1, 0);
    wait_calls(&a.calls, 2);
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&a.calls), 2);
    assert_int_equal(atomic_load(&b.calls), 1);
    rre_link_counters c;
    rre_link_get_counters(n.link, &c);
    assert_int_equal(c.handler_retries, 1);
    assert_int_equal(c.handler_dead, 0);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(n.queue, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "retrying")), 0);
    json_decref(stats);
    node_close(&n);
}

static void test_event_from_another_process_is_retried_for_its_handler(void **state)
{
    (void)state;
    struct counted a = {.fail = 2, .status = RRE_ETIMEOUT}, b = {0};
    struct node n;
    node_open(&n, 5, &a, &b);
    /* Another process: a queue handle of its own. */
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.hostname = "h1";
    qo.maintenance_interval_ms = -1;
    rre_queue *other = NULL;
    assert_int_equal(rre_queue_create(&other, &qo), RRE_OK);
    json_t *p = json_pack("{s:i}", "i", 7);
    assert_int_equal(rre_queue_publish(other, RRE_EV_ELO_UPDATED, p, "elsewhere", NULL, NULL, NULL),
                     RRE_OK);
    json_decref(p);
    wait_calls(&a.calls, 3);
    assert_int_equal(atomic_load(&b.calls), 1);
    rre_queue_destroy(other);
    node_close(&n);
}

static void test_exhausted_handler_gets_a_dead_letter_under_its_own_id(void **state)
{
    (void)state;
    struct counted a = {.fail = 100, .status = RRE_EIO}, b = {0};
    struct node n;
    node_open(&n, 2, &a, &b);
    publish_local(&n, 1, 0);
    wait_calls(&a.calls, 2);
    for (int i = 0; i < 500 && dead_letters(&n, NULL) == 0; i++)
        usleep(10000);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(n.queue, "h1:stable:daemon/scorer", &list), RRE_OK);
    assert_int_equal(json_array_size(list), 1);
    json_t *d = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 2);
    assert_string_equal(json_string_value(json_object_get(d, "error")),
                        "RRE_EIO: scripted handler failure");
    int64_t id = json_integer_value(json_object_get(d, "id"));
    json_decref(list);
    assert_int_equal(dead_letters(&n, "h1:stable:daemon/archiver"), 0);
    /* Replayed, it reaches that handler alone, which now succeeds. */
    atomic_store(&a.fail, 0);
    atomic_store(&a.calls, 0);
    uint64_t k;
    assert_int_equal(rre_queue_dlq_replay(n.queue, id, NULL, &k), RRE_OK);
    assert_int_equal(k, 1);
    wait_calls(&a.calls, 1);
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&b.calls), 1);
    assert_int_equal(dead_letters(&n, NULL), 0);
    node_close(&n);
}

static void test_rejected_and_retry_later_mean_what_they_say(void **state)
{
    (void)state;
    struct counted a = {.fail = 1, .status = RRE_EREJECTED};
    struct counted b = {.fail = 3, .status = RRE_ERETRY_LATER};
    struct node n;
    node_open(&n, 1, &a, &b);
    publish_local(&n, 1, 0);
    wait_calls(&b.calls, 4); /* asked again three times, max_attempts 1 notwithstanding */
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&a.calls), 1);
    assert_int_equal(dead_letters(&n, "h1:stable:daemon/scorer"), 1);
    assert_int_equal(dead_letters(&n, "h1:stable:daemon/archiver"), 0);
    node_close(&n);
}

static void test_retry_of_a_handler_not_subscribed_waits_for_it(void **state)
{
    (void)state;
    /* Fails twice: even if its first retry ran before the close, the
     * event still waits in the retries. */
    struct counted a = {.fail = 2, .status = RRE_EIO};
    struct node n;
    node_open(&n, 5, &a, NULL);
    publish_local(&n, 1, 0);
    node_close(&n);
    /* A restarted process without that handler: the retry is put off,
     * not lost and not counted. */
    struct counted none = {0};
    node_open(&n, 5, NULL, &none);
    usleep(400 * 1000);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(n.queue, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "retrying")), 1);
    json_decref(stats);
    node_close(&n);
    /* With the handler back, the retry reaches it. */
    atomic_store(&a.fail, 0);
    atomic_store(&a.calls, 0);
    node_open(&n, 5, &a, NULL);
    wait_calls(&a.calls, 1);
    node_close(&n);
}

static void test_local_only_failures_are_not_kept(void **state)
{
    (void)state;
    struct counted a = {.fail = 1, .status = RRE_EIO};
    struct node n;
    node_open(&n, 5, &a, NULL);
    publish_local(&n, 1, RRE_PUBLISH_LOCAL_ONLY);
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&a.calls), 1);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(n.queue, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "retrying")), 0);
    json_decref(stats);
    node_close(&n);
}

/* A router and a queue on db_path without its maintenance thread, not
 * linked yet. */
static void open_router_and_queue(rre_router **r, rre_queue **q)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db_path;
    qo.maintenance_interval_ms = -1;
    assert_int_equal(rre_router_create(r, NULL), RRE_OK);
    assert_int_equal(rre_queue_create(q, &qo), RRE_OK);
}

static void test_handler_retries_need_a_durable_name(void **state)
{
    (void)state;
    rre_router *r = NULL;
    rre_queue *q = NULL;
    open_router_and_queue(&r, &q);
    rre_link_options lo = {.flags = RRE_LINK_HANDLER_RETRIES};
    rre_link *l = NULL;
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_EINVAL);
    lo.subscriber_name = "x";
    lo.retry_delay_s = -1;
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_EINVAL);
    lo.retry_delay_s = 0;
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_OK);
    /* One link with handler retries per router. */
    rre_link *l2 = NULL;
    lo.subscriber_name = "y";
    assert_int_equal(rre_link_create(&l2, r, q, &lo), RRE_EINVAL);
    assert_null(l2);
    rre_link_destroy(l);
    rre_router_destroy(r);
    rre_queue_destroy(q);
}

static int noop(const rre_event *ev, void *user_data)
{
    (void)ev;
    (void)user_data;
    return 0;
}

/* A retry finds its handler by name: with handler retries, two handlers
 * that receive some of the same events cannot share a name (refused when
 * the link is made, and when one subscribes); names of handlers that share
 * no event may repeat, and the rule goes with the link. */
static void test_handlers_sharing_events_need_distinct_names_with_retries(void **state)
{
    (void)state;
    rre_router *r = NULL;
    rre_queue *q = NULL;
    open_router_and_queue(&r, &q);
    rre_subscription_id a, b;
    assert_int_equal(rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "h", noop, NULL, &a),
                     RRE_OK);
    assert_int_equal(
        rre_router_subscribe_category(r, rre_event_get(RRE_EV_TRAINING_COMPLETED)->category, "h",
                                      noop, NULL, &b),
        RRE_OK);
    rre_link_options lo = {.flags = RRE_LINK_HANDLER_RETRIES, .subscriber_name = "names"};
    rre_link *l = NULL;
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "two handlers named 'h'"));
    assert_null(l);
    assert_int_equal(rre_router_unsubscribe(r, b), RRE_OK);
    assert_int_equal(rre_link_create(&l, r, q, &lo), RRE_OK);
    /* Shares events with the first 'h': refused. */
    assert_int_equal(rre_router_subscribe_all(r, "h", noop, NULL, NULL), RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "another handler named 'h'"));
    /* Shares none: allowed. */
    assert_int_equal(rre_router_subscribe(r, RRE_EV_MODEL_PROMOTED, "h", noop, NULL, NULL), RRE_OK);
    rre_link_destroy(l);
    /* Without the link, names may repeat again. */
    assert_int_equal(rre_router_subscribe_all(r, "h", noop, NULL, NULL), RRE_OK);
    rre_router_destroy(r);
    rre_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_failing_handler_alone_is_called_again),
        T(test_event_from_another_process_is_retried_for_its_handler),
        T(test_exhausted_handler_gets_a_dead_letter_under_its_own_id),
        T(test_rejected_and_retry_later_mean_what_they_say),
        T(test_retry_of_a_handler_not_subscribed_waits_for_it),
        T(test_local_only_failures_are_not_kept),
        T(test_handler_retries_need_a_durable_name),
        T(test_handlers_sharing_events_need_distinct_names_with_retries),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
