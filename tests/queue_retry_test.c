/*
 * queue_retry_test.c - retries and dead letters of durable subscribers: a
 * failing handler's event comes back after its delay, in pass-through or
 * strict order, goes to the dead letters after its attempts (or at once when
 * rejected), survives restarts and the retention of its event, and an
 * operator lists, shows, replays (to its own subscriber only) and drops it.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    snprintf(f->path, sizeof f->path, "%s/events.db", f->dir);
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

static int64_t publish(rre_queue *q, int i)
{
    char text[64];
    snprintf(text, sizeof text, "{\"i\":%d}", i);
    json_t *p = json_loads(text, 0, NULL);
    rre_queue_publish_result res;
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "tester", NULL, NULL, &res),
                     RRE_OK);
    json_decref(p);
    return res.event_id;
}

/* A handler that answers from a script: per value of the payload's "i",
 * the statuses of its successive deliveries (then RRE_OK). */
#define MAX_SEEN 256
struct script {
    int i;
    rre_status answers[8];
    int n_answers;
    int calls;
};
struct sink {
    struct script scripts[8];
    int n_scripts;
    int seen[MAX_SEEN]; /* the "i" of each delivery, in order */
    int n;
};

static rre_status scripted(const rre_event *ev, void *ud)
{
    struct sink *k = ud;
    int i = (int)json_integer_value(json_object_get(ev->payload, "i"));
    if (k->n < MAX_SEEN)
        k->seen[k->n++] = i;
    for (int s = 0; s < k->n_scripts; s++) {
        struct script *sc = &k->scripts[s];
        if (sc->i == i) {
            int c = sc->calls++;
            if (c < sc->n_answers) {
                char msg[64];
                snprintf(msg, sizeof msg, "scripted failure %d of event %d", c + 1, i);
                return rre_fail(sc->answers[c], msg);
            }
        }
    }
    return RRE_OK;
}

/* A durable subscriber retrying after `delay` seconds (at most 4 × delay). */
static rre_subscriber *durable_delay(rre_queue *q, const char *name, int max_attempts, bool strict,
                                     double delay)
{
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    o.max_attempts = max_attempts;
    o.retry_delay_s = delay;
    o.retry_delay_max_s = 4 * delay;
    o.strict_order = strict;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    return s;
}

/* Retries after 50 ms: for tests that only wait for them. A test that
 * checks that a retry is not delivered early uses a delay of a second, far
 * longer than the time between two calls on the busiest machine. */
static rre_subscriber *durable(rre_queue *q, const char *name, int max_attempts, bool strict)
{
    return durable_delay(q, name, max_attempts, strict, 0.05);
}

/* Polls until `want` deliveries were seen in total or 10 s pass. */
static void poll_until(rre_subscriber *s, struct sink *k, int want)
{
    for (int round = 0; round < 1000 && k->n < want; round++) {
        size_t got;
        assert_int_equal(rre_subscriber_poll(s, 10, 0, scripted, k, &got), RRE_OK);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t dlq_count(rre_queue *q, const char *sub)
{
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(q, sub, &list), RRE_OK);
    int64_t n = (int64_t)json_array_size(list);
    json_decref(list);
    return n;
}

static void test_failed_event_is_delivered_again_after_the_retry_delay(void **state)
{
    struct fixture *f = *state;
    int64_t id = publish(f->q, 1);
    rre_subscriber *s = durable_delay(f->q, "again", 5, false, 1.0);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    double t0 = now_s();
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 1);
    /* Not due yet: a poll that does not wait gets nothing. */
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    /* A waiting poll wakes for the retry by itself (no commit wakes it). */
    assert_int_equal(rre_subscriber_poll(s, 5000, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 1);
    assert_true(now_s() - t0 >= 0.95);
    assert_int_equal(k.n, 2);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.handler_failed, 1);
    assert_int_equal(c.retried, 1);
    assert_int_equal(c.dead_lettered, 0);
    /* Handled now: acknowledged, nothing comes again. */
    assert_int_equal(rre_subscriber_poll(s, 300, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(f->q, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "retrying")), 0);
    json_decref(stats);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM acks WHERE subscriber_id ="
                                        " 'testhost:stable:again' AND event_id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rre_subscriber_destroy(s);
}

static void test_retrying_event_lets_later_events_pass_by_default(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 3; i++)
        publish(f->q, i);
    rre_subscriber *s = durable(f->q, "pass", 5, false);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    poll_until(s, &k, 4);
    assert_int_equal(k.n, 4);
    int want[] = {1, 2, 3, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(k.seen[i], want[i]);
    rre_subscriber_destroy(s);
}

static void test_strict_order_holds_later_events_until_the_retry_is_handled(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 3; i++)
        publish(f->q, i);
    rre_subscriber *s = durable_delay(f->q, "strict", 5, true, 0.5);
    struct sink k = {.scripts = {{.i = 2, .answers = {RRE_EIO, RRE_ETIMEOUT}, .n_answers = 2}},
                     .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    /* 1 handled, 2 failed: the batch ends there, 3 is held back. */
    assert_int_equal(got, 2);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    poll_until(s, &k, 5);
    assert_int_equal(k.n, 5);
    int want[] = {1, 2, 2, 2, 3};
    for (int i = 0; i < 5; i++)
        assert_int_equal(k.seen[i], want[i]);
    rre_subscriber_destroy(s);
}

static void test_strict_order_holds_later_events_across_a_restart(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 2; i++)
        publish(f->q, i);
    rre_subscriber *s = durable_delay(f->q, "strict2", 5, true, 1.0);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 1);
    rre_subscriber_destroy(s);
    s = durable_delay(f->q, "strict2", 5, true, 1.0);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    poll_until(s, &k, 3);
    assert_int_equal(k.seen[1], 1);
    assert_int_equal(k.seen[2], 2);
    rre_subscriber_destroy(s);
}

static void test_event_goes_to_the_dead_letters_after_max_attempts(void **state)
{
    struct fixture *f = *state;
    int64_t id = publish(f->q, 7);
    publish(f->q, 8);
    rre_subscriber *s = durable(f->q, "doomed", 3, false);
    struct sink k = {
        .scripts = {{.i = 7, .answers = {RRE_EIO, RRE_EIO, RRE_EDB, RRE_EIO}, .n_answers = 4}},
        .n_scripts = 1};
    double t0 = now_s();
    poll_until(s, &k, 4);
    /* Three deliveries of 7 (and 8 once); then no more. */
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 500, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(k.scripts[0].calls, 3);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.handler_failed, 3);
    assert_int_equal(c.dead_lettered, 1);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, NULL, &list), RRE_OK);
    assert_int_equal(json_array_size(list), 1);
    json_t *d = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(d, "subscriber")),
                        "testhost:stable:doomed");
    assert_int_equal(json_integer_value(json_object_get(d, "event_id")), id);
    assert_string_equal(json_string_value(json_object_get(d, "event_type")), "ELO_UPDATED");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(d, "error")),
                        "RRE_EDB: scripted failure 3 of event 7");
    double first = json_real_value(json_object_get(d, "first_failed_at"));
    double dead = json_real_value(json_object_get(d, "dead_at"));
    assert_true(first >= t0 - 1 && dead >= first + 0.1 && dead <= now_s() + 1);
    assert_null(json_object_get(d, "payload"));
    int64_t dlq_id = json_integer_value(json_object_get(d, "id"));
    json_decref(list);
    json_t *one = NULL;
    assert_int_equal(rre_queue_dlq_get(f->q, dlq_id, &one), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(one, "payload"), "i")), 7);
    json_decref(one);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(f->q, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "dead_letters")), 1);
    json_t *sub = json_array_get(json_object_get(stats, "subscribers"), 0);
    assert_int_equal(json_integer_value(json_object_get(sub, "dead_letters")), 1);
    assert_int_equal(json_integer_value(json_object_get(sub, "retrying")), 0);
    json_decref(stats);
    rre_subscriber_destroy(s);
}

static void test_retry_later_is_not_counted_as_a_failure(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *s = durable(f->q, "later", 2, false);
    struct sink k = {
        .scripts = {{.i = 1,
                     .answers = {RRE_ERETRY_LATER, RRE_ERETRY_LATER, RRE_ERETRY_LATER, RRE_EIO},
                     .n_answers = 4}},
        .n_scripts = 1};
    poll_until(s, &k, 5);
    assert_int_equal(k.n, 5);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.retry_later, 3);
    assert_int_equal(c.handler_failed, 1);
    assert_int_equal(c.dead_lettered, 0);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    rre_subscriber_destroy(s);
}

static void test_rejected_event_goes_to_the_dead_letters_at_once(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    publish(f->q, 2);
    rre_subscriber *s = durable(f->q, "picky", 5, true);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EREJECTED}, .n_answers = 1}},
                     .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    /* Rejected is not retried, so even strict order goes on at once. */
    assert_int_equal(got, 2);
    assert_int_equal(dlq_count(f->q, "picky"), 1);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, "picky", &list), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "attempts")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "error")),
                        "RRE_EREJECTED: scripted failure 1 of event 1");
    json_decref(list);
    rre_subscriber_destroy(s);
}

static void test_retry_survives_a_restart_and_the_retention_of_its_event(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *s = durable(f->q, "keeper", 5, false);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    rre_subscriber_destroy(s);
    /* Every event is deleted; the retry keeps its copy. */
    rre_queue_purge_result pr;
    assert_int_equal(rre_queue_purge(f->q, 0, &pr), RRE_OK);
    assert_int_equal(pr.events, 1);
    s = durable(f->q, "keeper", 5, false);
    poll_until(s, &k, 2);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.seen[1], 1);
    rre_subscriber_destroy(s);
}

static void test_replay_sends_a_dead_letter_to_its_own_subscriber_only(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *a = durable(f->q, "a", 1, false);
    rre_subscriber *b = durable(f->q, "b", 1, false);
    struct sink ka = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    struct sink kb = {0};
    size_t got;
    assert_int_equal(rre_subscriber_poll(a, 0, 0, scripted, &ka, &got), RRE_OK);
    assert_int_equal(rre_subscriber_poll(b, 0, 0, scripted, &kb, &got), RRE_OK);
    assert_int_equal(dlq_count(f->q, "a"), 1);
    assert_int_equal(dlq_count(f->q, "b"), 0);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, "testhost:stable:a", &list), RRE_OK);
    int64_t id = json_integer_value(json_object_get(json_array_get(list, 0), "id"));
    json_decref(list);
    /* Named for the wrong subscriber: refused, nothing moves. */
    uint64_t n = 9;
    assert_int_equal(rre_queue_dlq_replay(f->q, id, "b", &n), RRE_ENOTFOUND);
    assert_int_equal(n, 0);
    assert_int_equal(rre_queue_dlq_replay(f->q, id, "a", &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    assert_int_equal(rre_subscriber_poll(a, 1000, 0, scripted, &ka, &got), RRE_OK);
    assert_int_equal(got, 1);
    assert_int_equal(ka.n, 2);
    assert_int_equal(rre_subscriber_poll(b, 100, 0, scripted, &kb, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(kb.n, 1);
    assert_int_equal(rre_queue_dlq_replay(f->q, id, NULL, &n), RRE_ENOTFOUND);
    rre_subscriber_destroy(a);
    rre_subscriber_destroy(b);
}

static void test_replay_all_and_drop_by_id_and_by_age(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 4; i++)
        publish(f->q, i);
    rre_subscriber *a = durable(f->q, "many", 1, false);
    struct sink k = {0};
    for (int i = 0; i < 4; i++) {
        k.scripts[i].i = i + 1;
        k.scripts[i].answers[0] = RRE_EIO;
        k.scripts[i].n_answers = 1;
    }
    k.n_scripts = 4;
    size_t got;
    assert_int_equal(rre_subscriber_poll(a, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(dlq_count(f->q, NULL), 4);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, NULL, &list), RRE_OK);
    int64_t first = json_integer_value(json_object_get(json_array_get(list, 0), "id"));
    json_decref(list);
    uint64_t n;
    assert_int_equal(rre_queue_dlq_drop(f->q, first, 0, NULL, &n), RRE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rre_queue_dlq_drop(f->q, first, 0, NULL, &n), RRE_ENOTFOUND);
    /* None is an hour old. */
    assert_int_equal(rre_queue_dlq_drop(f->q, 0, 3600, NULL, &n), RRE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rre_queue_dlq_drop(f->q, 0, NAN, NULL, &n), RRE_EINVAL);
    assert_int_equal(rre_queue_dlq_drop(f->q, 0, -1, NULL, &n), RRE_EINVAL);
    assert_int_equal(rre_queue_dlq_replay(f->q, 0, "many", &n), RRE_OK);
    assert_int_equal(n, 3);
    poll_until(a, &k, 7);
    assert_int_equal(k.n, 7);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    rre_subscriber_destroy(a);
}

static void test_negative_max_attempts_passes_failures_without_keeping_them(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *s = durable(f->q, "forgetful", -1, false);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(rre_subscriber_poll(s, 300, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    rre_subscriber_destroy(s);
}

static void test_transient_reader_failure_is_passed(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, NULL), RRE_OK);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 1);
    assert_int_equal(rre_subscriber_poll(s, 200, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    rre_subscriber_destroy(s);
}

static void test_bad_retry_settings_and_dlq_arguments_are_refused(void **state)
{
    struct fixture *f = *state;
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "bad";
    o.retry_delay_s = -1;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    o.retry_delay_s = NAN;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    o.retry_delay_s = 1;
    o.retry_delay_max_s = INFINITY;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    assert_null(s);
    json_t *out = NULL;
    assert_int_equal(rre_queue_dlq_get(f->q, 0, &out), RRE_ENOTFOUND);
    assert_int_equal(rre_queue_dlq_get(f->q, 12345, &out), RRE_ENOTFOUND);
    assert_null(out);
    assert_int_equal(rre_queue_dlq_list(f->q, "", &out), RRE_EINVAL);
    assert_int_equal(rre_queue_dlq_list(f->q, "\xff\xfe", &out), RRE_EINVAL);
    assert_int_equal(rre_queue_dlq_replay(f->q, -1, NULL, NULL), RRE_EINVAL);
    assert_int_equal(rre_queue_dlq_drop(f->q, 12345, 0, NULL, NULL), RRE_ENOTFOUND);
    assert_int_equal(rre_queue_dlq_list(NULL, NULL, &out), RRE_EINVAL);
}

static void test_retries_of_a_forgotten_subscriber_go_to_the_dead_letters(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(f->q);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    o.retention_hours = 0.5 / 3600; /* half a second */
    assert_int_equal(rre_queue_create(&f->q, &o), RRE_OK);
    publish(f->q, 1);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.name = "idle";
    so.retry_delay_s = 3600;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &so), RRE_OK);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    rre_subscriber_destroy(s);
    usleep(700 * 1000);
    assert_int_equal(rre_queue_purge(f->q, -1, NULL), RRE_OK);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, "idle", &list), RRE_OK);
    assert_int_equal(json_array_size(list), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(list, 0), "error")),
                           "idle past the retention window"));
    json_decref(list);
}

static rre_status fail_then_die(const rre_event *ev, void *ud)
{
    (void)ev;
    int *calls = ud;
    if ((*calls)++ == 0)
        return rre_fail(RRE_EIO, "first delivery fails");
    raise(SIGKILL); /* killed in the retry's handler, before its commit */
    return RRE_OK;
}

static void test_process_killed_during_a_retry_gets_it_again_with_its_count(void **state)
{
    struct fixture *f = *state;
    int64_t id = publish(f->q, 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rre_queue_options o;
        rre_queue_options_init(&o);
        o.path = f->path;
        o.hostname = "testhost";
        o.maintenance_interval_ms = -1;
        rre_queue *q = NULL;
        rre_subscriber_options so;
        rre_subscriber_options_init(&so);
        so.name = "mortal";
        so.retry_delay_s = 0.05;
        rre_subscriber *s = NULL;
        if (rre_queue_create(&q, &o) != RRE_OK || rre_subscriber_create(&s, q, &so) != RRE_OK)
            _exit(3);
        int calls = 0;
        for (int i = 0; i < 400; i++)
            rre_subscriber_poll(s, 50, 0, fail_then_die, &calls, NULL);
        _exit(4); /* never reached: the retry kills it */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The retry is still there, one failure counted, and this process (the
     * holder is dead) delivers it. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT attempts FROM rre_retries WHERE subscriber_id ="
                                        " 'testhost:stable:mortal' AND event_id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rre_subscriber *s = durable(f->q, "mortal", 5, false);
    struct sink k = {0};
    poll_until(s, &k, 1);
    assert_int_equal(k.n, 1);
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 200, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(dlq_count(f->q, NULL), 0);
    rre_subscriber_destroy(s);
}

static void test_strict_order_keeps_replayed_events_in_order(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    publish(f->q, 2);
    /* Both die at once, then come back together by replay. */
    rre_subscriber *s = durable_delay(f->q, "ordered", 1, true, 1.0);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EREJECTED, RRE_EIO}, .n_answers = 2},
                                 {.i = 2, .answers = {RRE_EREJECTED}, .n_answers = 1}},
                     .n_scripts = 2};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(dlq_count(f->q, "ordered"), 2);
    rre_subscriber_destroy(s);
    s = durable_delay(f->q, "ordered", 5, true, 1.0);
    uint64_t n;
    assert_int_equal(rre_queue_dlq_replay(f->q, 0, "ordered", &n), RRE_OK);
    assert_int_equal(n, 2);
    /* 1 fails again: 2, replayed too, must wait behind it. */
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 1);
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    poll_until(s, &k, 6);
    int want[] = {1, 2, 1, 1, 2};
    assert_int_equal(k.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(k.seen[i], want[i]);
    rre_subscriber_destroy(s);
}

static void test_hostile_retry_rows_do_not_stop_a_subscriber(void **state)
{
    struct fixture *f = *state;
    rre_subscriber *s = durable(f->q, "target", 3, true);
    rre_subscriber_destroy(s);
    int64_t id = publish(f->q, 1);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char sql[1024];
    /* An event id that is not an integer (it could never be cleared), and
     * a real one with an absurd attempt count and a due time in text. */
    snprintf(sql, sizeof sql,
             "INSERT INTO rre_retries VALUES ('testhost:stable:target', 5.5, 'ELO_UPDATED',"
             " '{\"i\":9}', 's', 'h', 0, 1, 0, 0, 'x');"
             "INSERT INTO rre_retries VALUES ('testhost:stable:target', %lld, 'ELO_UPDATED',"
             " '{\"i\":1}', 's', 'h', 1e300, 2147483647, 0, 'soon', 'x');",
             (long long)id + 1000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s = durable(f->q, "target", 3, true);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    poll_until(s, &k, 2);
    /* The real row fails (its count capped at the maximum: dead at once),
     * then the published event is delivered; nothing loops. */
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 200, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(got, 0);
    assert_int_equal(k.n, 2);
    assert_int_equal(dlq_count(f->q, "target"), 1);
    rre_subscriber_destroy(s);
}

static void test_retry_of_a_type_no_longer_subscribed_becomes_a_dead_letter(void **state)
{
    struct fixture *f = *state;
    publish(f->q, 1);
    rre_subscriber *s = durable_delay(f->q, "narrowing", 5, false, 0.05);
    struct sink k = {.scripts = {{.i = 1, .answers = {RRE_EIO}, .n_answers = 1}}, .n_scripts = 1};
    size_t got;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, scripted, &k, &got), RRE_OK);
    rre_subscriber_destroy(s);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "narrowing";
    rre_event_type only = RRE_EV_TRAINING_COMPLETED;
    o.types = &only;
    o.type_count = 1;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_OK);
    for (int i = 0; i < 100 && dlq_count(f->q, "narrowing") == 0; i++)
        assert_int_equal(rre_subscriber_poll(s, 20, 0, scripted, &k, &got), RRE_OK);
    assert_int_equal(k.n, 1);
    json_t *list = NULL;
    assert_int_equal(rre_queue_dlq_list(f->q, "narrowing", &list), RRE_OK);
    assert_int_equal(json_array_size(list), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(list, 0), "error")),
                           "no longer takes"));
    json_decref(list);
    rre_subscriber_destroy(s);
}

static void test_a_durable_name_with_a_slash_is_refused(void **state)
{
    struct fixture *f = *state;
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "daemon/scorer"; /* the id of a linked router's handler */
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_EINVAL);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_failed_event_is_delivered_again_after_the_retry_delay),
        T(test_retrying_event_lets_later_events_pass_by_default),
        T(test_strict_order_holds_later_events_until_the_retry_is_handled),
        T(test_strict_order_holds_later_events_across_a_restart),
        T(test_event_goes_to_the_dead_letters_after_max_attempts),
        T(test_retry_later_is_not_counted_as_a_failure),
        T(test_rejected_event_goes_to_the_dead_letters_at_once),
        T(test_retry_survives_a_restart_and_the_retention_of_its_event),
        T(test_replay_sends_a_dead_letter_to_its_own_subscriber_only),
        T(test_replay_all_and_drop_by_id_and_by_age),
        T(test_negative_max_attempts_passes_failures_without_keeping_them),
        T(test_transient_reader_failure_is_passed),
        T(test_bad_retry_settings_and_dlq_arguments_are_refused),
        T(test_retries_of_a_forgotten_subscriber_go_to_the_dead_letters),
        T(test_process_killed_during_a_retry_gets_it_again_with_its_count),
        T(test_strict_order_keeps_replayed_events_in_order),
        T(test_hostile_retry_rows_do_not_stop_a_subscriber),
        T(test_retry_of_a_type_no_longer_subscribed_becomes_a_dead_letter),
        T(test_a_durable_name_with_a_slash_is_refused),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
