/*
 * router_test.c - the in-process router: publish pipeline, dedup window,
 * history, dispatch (sync and async), error isolation, unsubscribe
 * guarantees, sinks and injection, statistics and flow validation.
 *
 * Time is an injected clock: no test sleeps to make something expire. The
 * few waits for other threads use condition variables or rre_router_flush.
 */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rre/rre.h>

#include "router_int.h" /* the watchdog's view of the clock */

/* ---- helpers -------------------------------------------------------------------- */

static atomic_llong fake_now;

static int64_t fake_clock(void *user_data)
{
    (void)user_data;
    return atomic_load(&fake_now);
}

static void advance(double seconds)
{
    atomic_fetch_add(&fake_now, (long long)(seconds * 1e6));
}

static rre_router_options *options(void)
{
    rre_router_options *o = NULL;
    assert_int_equal(rre_router_options_create(&o), RRE_OK);
    atomic_store(&fake_now, 1767225600LL * 1000000); /* 2026-01-01T00:00:00Z */
    assert_int_equal(rre_router_options_set_clock(o, fake_clock, NULL), RRE_OK);
    assert_int_equal(rre_router_options_set_source(o, "router-test"), RRE_OK);
    return o;
}

static rre_router *router_with(rre_router_options *o)
{
    rre_router *r = NULL;
    assert_int_equal(rre_router_create(&r, o), RRE_OK);
    rre_router_options_destroy(o);
    return r;
}

static rre_router *new_router(void)
{
    return router_with(options());
}

static json_t *training_completed(int n)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:i, s:f, s:i, s:s, s:f, s:b, s:i}", "config_key",
                     "hex8_2p", "board_type", "hex8", "num_players", 2, "model_path",
                     "/models/hex8_2p.pth", "epochs", 50, "final_loss", 0.0423, "samples_trained",
                     85000, "job_id", "train_hex8_2p", "duration_seconds", 1832.5, "early_stopped",
                     1, "sequence", n);
}

static rre_status publish_n(rre_router *r, int n, unsigned flags)
{
    json_t *p = training_completed(n);
    rre_publish_options po = {.flags = flags};
    rre_status st = rre_router_publish_type(r, RRE_EV_TRAINING_COMPLETED, p, &po, NULL);
    rre_payload_release(p); /* workers may still hold it */
    return st;
}

/* A recording handler. */
struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
    int fail;                 /* return this */
    rre_event_type types[64]; /* the first ones seen */
    char names[64][8];        /* tags of the order test */
    const char *tag;
    rre_event *last;        /* copy of the last event */
    struct recorder *order; /* shared order log */
};

static void recorder_init(struct recorder *rec)
{
    memset(rec, 0, sizeof *rec);
    pthread_mutex_init(&rec->mu, NULL);
    pthread_cond_init(&rec->cv, NULL);
}

static void recorder_free(struct recorder *rec)
{
    rre_event_free(rec->last);
    pthread_mutex_destroy(&rec->mu);
    pthread_cond_destroy(&rec->cv);
}

static int record(const rre_event *ev, void *user_data)
{
    struct recorder *rec = user_data;
    pthread_mutex_lock(&rec->mu);
    if (rec->count < 64)
        rec->types[rec->count] = ev->type;
    rec->count++;
    rre_event_free(rec->last);
    rec->last = NULL;
    assert_int_equal(rre_event_copy(ev, &rec->last), RRE_OK);
    pthread_cond_broadcast(&rec->cv);
    pthread_mutex_unlock(&rec->mu);
    if (rec->order != NULL) {
        struct recorder *o = rec->order;
        pthread_mutex_lock(&o->mu);
        if (o->count < 64)
            snprintf(o->names[o->count], sizeof o->names[0], "%s", rec->tag);
        o->count++;
        pthread_mutex_unlock(&o->mu);
    }
    return rec->fail;
}

static int recorder_count(struct recorder *rec)
{
    pthread_mutex_lock(&rec->mu);
    int n = rec->count;
    pthread_mutex_unlock(&rec->mu);
    return n;
}

/* Waits (real time, at most 10 s) until rec has seen `n` events. */
static void wait_count(struct recorder *rec, int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&rec->mu);
    while (rec->count < n)
        if (pthread_cond_timedwait(&rec->cv, &rec->mu, &deadline) != 0)
            break;
    int got = rec->count;
    pthread_mutex_unlock(&rec->mu);
    assert_int_equal(got, n);
}

/* ---- publish pipeline ------------------------------------------------------------- */

static void test_publish_delivers_to_a_type_subscriber_with_a_full_envelope(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    assert_int_equal(rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "rec", record, &rec, NULL),
                     RRE_OK);
    json_t *p = training_completed(1);
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    assert_int_equal(res.delivered, 1);
    assert_int_equal(res.type, RRE_EV_TRAINING_COMPLETED);
    assert_int_equal(rec.count, 1);
    const rre_event *ev = rec.last;
    assert_int_equal(ev->type, RRE_EV_TRAINING_COMPLETED);
    assert_ptr_equal(ev->payload, p); /* shared, not copied */
    assert_string_equal(ev->source, "router-test");
    assert_string_equal(ev->timestamp, "2026-01-01T00:00:00.000000Z");
    assert_int_equal(strlen(ev->trace_id), 55);
    assert_memory_equal(ev->trace_id, "00-", 3);
    uint8_t hash[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, p, hash), RRE_OK);
    assert_memory_equal(ev->hash, hash, RRE_HASH_SIZE);
    assert_memory_equal(res.hash, hash, RRE_HASH_SIZE);
    assert_int_equal(ev->origin, RRE_ORIGIN_LOCAL);
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_publish_resolves_any_spelling_including_stage_names(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    assert_int_equal(rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "rec", record, &rec, NULL),
                     RRE_OK);
    const char *spellings[] = {"TRAINING_COMPLETED", "training_completed", "Training_Completed",
                               "TRAINING_COMPLETE"};
    for (int i = 0; i < 4; i++) {
        json_t *p = training_completed(100 + i);
        assert_int_equal(rre_router_publish(r, spellings[i], p, NULL, NULL), RRE_OK);
        json_decref(p);
    }
    assert_int_equal(rec.count, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rec.types[i], RRE_EV_TRAINING_COMPLETED);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_bad_type_or_payload_gets_a_clear_error_and_changes_nothing(void **state)
{
    (void)state;
    rre_router *r = new_router();
    json_t *p = training_completed(1);
    assert_int_equal(rre_router_publish(r, "NO_SUCH_EVENT", p, NULL, NULL), RRE_EUNKNOWN_TYPE);
    assert_non_null(strstr(rre_last_error(), "NO_SUCH_EVENT"));
    assert_int_equal(rre_router_publish(r, NULL, p, NULL, NULL), RRE_EUNKNOWN_TYPE);
    json_t *arr = json_array();
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", arr, NULL, NULL), RRE_ENOT_OBJECT);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", NULL, NULL, NULL),
                     RRE_ENOT_OBJECT);
    rre_publish_options bad_trace = {.trace_id = "not-a-trace"};
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, &bad_trace, NULL), RRE_EINVAL);
    rre_publish_options bad_time = {.timestamp = "yesterday"};
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, &bad_time, NULL), RRE_EINVAL);
    json_t *deep = json_object();
    json_t *at = deep;
    for (int i = 0; i < 300; i++) {
        json_t *inner = json_object();
        json_object_set_new(at, "x", inner);
        at = inner;
    }
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", deep, NULL, NULL), RRE_ELIMIT);
    rre_router_stats *st = malloc(sizeof *st);
    assert_int_equal(rre_router_get_stats(r, st), RRE_OK);
    assert_int_equal(st->events_published, 0);
    assert_int_equal(st->history_size, 0);
    assert_int_equal(st->dedup_entries, 0);
    free(st);
    /* The good payload still goes through afterwards. */
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, NULL), RRE_OK);
    json_decref(deep);
    json_decref(arr);
    json_decref(p);
    rre_router_destroy(r);
}

static void test_aliases_are_normalised_before_validation_and_delivery(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_validation(o, RRE_VALIDATE_STRICT);
    rre_router *r = router_with(o);
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "rec", record, &rec, NULL);
    json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:i, s:f, s:i}", "config", "hex8_2p", "board_type",
                          "hex8", "num_players", 2, "checkpoint_path", "/m.pth", "epochs", 3,
                          "loss", 0.5, "samples", 10);
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_int_equal(rec.count, 1);
    assert_string_equal(json_string_value(json_object_get(rec.last->payload, "config_key")),
                        "hex8_2p");
    assert_non_null(json_object_get(rec.last->payload, "model_path"));
    assert_null(json_object_get(rec.last->payload, "config"));
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_strict_validation_rejects_with_the_problems(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_validation(o, RRE_VALIDATE_STRICT);
    rre_router *r = router_with(o);
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    json_t *p = json_pack("{s:s, s:s}", "config_key", "hex8_2p", "epochs", "many");
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res),
                     RRE_EINVALID_PAYLOAD);
    assert_true(res.problems.errors >= 2);
    assert_true(res.problems.count >= 2);
    assert_int_equal(rec.count, 0);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->events_rejected, 1);
    assert_int_equal(st->schema_violations_by_type[RRE_EV_TRAINING_COMPLETED], 1);
    assert_int_equal(st->history_size, 0);
    free(st);
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_warn_validation_counts_the_violation_and_delivers(void **state)
{
    (void)state;
    rre_router *r = new_router(); /* WARN is the default */
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    json_t *p = json_pack("{s:s}", "config_key", "hex8_2p");
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_true(res.problems.errors > 0);
    assert_int_equal(rec.count, 1);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->schema_violations, 1);
    assert_int_equal(st->schema_violations_by_type[RRE_EV_TRAINING_COMPLETED], 1);
    assert_int_equal(st->events_published, 1);
    free(st);
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_validation_off_checks_nothing(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_validation(o, RRE_VALIDATE_OFF);
    rre_router *r = router_with(o);
    json_t *p = json_pack("{s:s}", "epochs", "many");
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_int_equal(res.problems.errors, 0);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->schema_violations, 0);
    free(st);
    json_decref(p);
    rre_router_destroy(r);
}

static void test_envelope_fields_come_from_options_then_payload(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    json_t *p = json_pack("{s:s, s:s, s:s}", "source", "payload-src", "timestamp",
                          "2025-12-30T10:00:00.5+01:00", "trace_id",
                          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_int_equal(rre_router_publish(r, "HOST_ONLINE", p, NULL, NULL), RRE_OK);
    assert_string_equal(rec.last->source, "payload-src");
    assert_string_equal(rec.last->timestamp, "2025-12-30T09:00:00.500000Z");
    assert_string_equal(rec.last->trace_id,
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    json_decref(p);

    p = json_pack("{s:s, s:i}", "source", "payload-src", "n", 2);
    rre_publish_options po = {.source = "opt-src",
                              .timestamp = "2026-02-03T04:05:06Z",
                              .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"};
    assert_int_equal(rre_router_publish(r, "HOST_ONLINE", p, &po, NULL), RRE_OK);
    assert_string_equal(rec.last->source, "opt-src");
    assert_string_equal(rec.last->timestamp, "2026-02-03T04:05:06.000000Z");
    assert_memory_equal(rec.last->trace_id, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
    assert_string_equal(rec.last->trace_id + 52, "-01");
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

/* ---- dedup ----------------------------------------------------------------------------- */

static void test_duplicate_within_window_is_dropped_and_delivered_after_it(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_dedup_window(o, 60);
    rre_router *r = router_with(o);
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    json_t *p = training_completed(1);
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    advance(59);
    /* The same content with other envelope fields is the same event. */
    json_t *q = json_deep_copy(p);
    json_object_set_new(q, "timestamp", json_string("2026-01-01T00:00:59Z"));
    json_object_set_new(q, "source", json_string("elsewhere"));
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", q, NULL, &res), RRE_OK);
    assert_true(res.duplicate);
    assert_int_equal(res.delivered, 0);
    assert_int_equal(rec.count, 1);
    advance(1);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    assert_int_equal(rec.count, 2);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->duplicates_prevented, 1);
    assert_int_equal(st->events_published, 2);
    assert_int_equal(st->history_size, 2); /* the duplicate is not stored */
    free(st);
    json_decref(q);
    json_decref(p);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_dedup_can_be_turned_off_for_the_router_or_one_event(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_dedup(o, false);
    rre_router *r = router_with(o);
    assert_int_equal(publish_n(r, 1, 0), RRE_OK);
    rre_publish_result res;
    json_t *p = training_completed(1);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    rre_router_destroy(r);

    r = new_router();
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    rre_publish_options po = {.flags = RRE_PUBLISH_NO_DEDUP};
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, &po, &res), RRE_OK);
    assert_false(res.duplicate);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_true(res.duplicate);
    json_decref(p);
    rre_router_destroy(r);
}

static void test_memory_stays_bounded_under_a_flood_of_distinct_events(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_dedup_max_entries(o, 500);
    rre_router_options_set_history_size(o, 100);
    rre_router *r = router_with(o);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(publish_n(r, i, 0), RRE_OK);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->events_published, 20000);
    assert_int_equal(st->dedup_entries, 500);
    assert_int_equal(st->history_size, 100);
    free(st);
    /* The oldest hashes were forgotten first: an old event is new again,
     * a recent one is still a duplicate. */
    rre_publish_result res;
    json_t *p = training_completed(0);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    json_decref(p);
    p = training_completed(19999);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_true(res.duplicate);
    json_decref(p);
    rre_router_destroy(r);
}

static void test_publish_text_parses_then_publishes_and_refuses_bad_text(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    assert_int_equal(rre_router_subscribe(r, RRE_EV_ELO_UPDATED, "rec", record, &rec, NULL),
                     RRE_OK);
    /* Not NUL-terminated: only len bytes are read. */
    const char text[] = "{\"model_id\":\"m\",\"elo\":1500.5}garbage";
    rre_publish_result res;
    assert_int_equal(
        rre_router_publish_text(r, "elo_updated", text, sizeof text - 1 - 7, NULL, &res), RRE_OK);
    assert_int_equal(res.delivered, 1);
    assert_int_equal(rec.count, 1);
    json_t *want = json_pack("{s:s,s:f}", "model_id", "m", "elo", 1500.5);
    assert_true(json_equal(rec.last->payload, want));
    json_decref(want);
    /* The same content again is a duplicate, as with an object. */
    assert_int_equal(
        rre_router_publish_text(r, "ELO_UPDATED", text, sizeof text - 1 - 7, NULL, &res), RRE_OK);
    assert_true(res.duplicate);
    static const struct {
        const char *text;
        rre_status want;
    } bad[] = {
        {"{\"model_id\":", RRE_EJSON},
        {"[1,2]", RRE_ENOT_OBJECT},
        {"{\"a\":1,\"a\":2}", RRE_EJSON},
        {"", RRE_EJSON},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res.duplicate = true;
        assert_int_equal(
            rre_router_publish_text(r, "ELO_UPDATED", bad[i].text, strlen(bad[i].text), NULL, &res),
            bad[i].want);
        assert_false(res.duplicate);
        assert_int_equal(res.sink_status, RRE_OK);
    }
    assert_int_equal(rre_router_publish_text(r, "ELO_UPDATED", NULL, 0, NULL, NULL),
                     RRE_ENOT_OBJECT);
    assert_int_equal(rec.count, 1);
    recorder_free(&rec);
    rre_router_destroy(r);
}

/* ---- history and stats ----------------------------------------------------------------- */

static void test_history_is_bounded_and_queried_by_type_and_count_newest_last(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_history_size(o, 10);
    rre_router *r = router_with(o);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(publish_n(r, i, 0), RRE_OK);
        json_t *p = json_pack("{s:s, s:i}", "host", "h", "n", i);
        assert_int_equal(rre_router_publish(r, "HOST_ONLINE", p, NULL, NULL), RRE_OK);
        json_decref(p);
    }
    rre_event_list *all = NULL;
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 0, &all), RRE_OK);
    assert_int_equal(all->count, 10);
    rre_event_list_free(all);

    rre_event_list *list = NULL;
    assert_int_equal(rre_router_history(r, RRE_EV_TRAINING_COMPLETED, 3, &list), RRE_OK);
    assert_int_equal(list->count, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(list->events[i].type, RRE_EV_TRAINING_COMPLETED);
        assert_int_equal(json_integer_value(json_object_get(list->events[i].payload, "sequence")),
                         5 + i);
        assert_string_equal(list->events[i].source, "router-test");
    }
    rre_event_list_free(list);
    /* Only the last 5 TRAINING_COMPLETED are still held (10 = 5 + 5). */
    assert_int_equal(rre_router_history(r, RRE_EV_TRAINING_COMPLETED, 0, &list), RRE_OK);
    assert_int_equal(list->count, 5);
    rre_event_list_free(list);
    rre_router_destroy(r);
}

static void test_history_keeps_payloads_as_canonical_text_equal_in_content(void **state)
{
    (void)state;
    rre_router *r = new_router();
    /* Keys out of order, nested values, a non-ASCII string, and envelope
     * fields in the payload (outside the hash, kept in the history). */
    json_t *a = json_pack("{s:s, s:f, s:{s:[i,b,n]}, s:s}", "model_id", "m\xc3\xa9", "elo", 1503.25,
                          "extra", "list", 1, 1, "config_key", "hex8_2p");
    json_t *b = json_pack("{s:s, s:f, s:s, s:s}", "model_id", "m2", "elo", 0.0423, "timestamp",
                          "2026-01-02T03:04:05Z", "trace_id",
                          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", a, NULL, NULL), RRE_OK);
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", b, NULL, NULL), RRE_OK);
    rre_event_list *list = NULL;
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 0, &list), RRE_OK);
    assert_int_equal(list->count, 2);
    assert_true(json_equal(list->events[0].payload, a));
    assert_true(json_equal(list->events[1].payload, b));
    for (size_t i = 0; i < 2; i++) {
        char *canon = NULL;
        assert_int_equal(rre_canonical_json(list->events[i].payload, &canon, NULL), RRE_OK);
        assert_int_equal(list->events[i].payload_len, strlen(canon));
        assert_memory_equal(list->events[i].payload_text, canon, strlen(canon));
        free(canon);
    }
    /* Every envelope field the hash leaves out is kept: source and
     * created_at as well. */
    json_t *d = json_pack("{s:s, s:s, s:i}", "model_id", "m4", "source", "abc", "created_at", 5);
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", d, NULL, NULL), RRE_OK);
    rre_event_list_free(list);
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 1, &list), RRE_OK);
    assert_true(json_equal(list->events[0].payload, d));
    json_decref(d);
    /* A payload built in C beyond what the text parser takes from outside
     * (40 levels deep, a NUL in a string) is read back all the same. */
    json_t *deep = json_pack("{s:s}", "model_id", "m5"), *inner = json_object();
    json_object_set_new(deep, "nested", inner);
    for (int i = 0; i < 40; i++) {
        json_t *next = json_object();
        json_object_set_new(inner, "x", next);
        inner = next;
    }
    json_object_set_new(deep, "nul", json_stringn("a\0b", 3));
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", deep, NULL, NULL), RRE_OK);
    rre_event_list_free(list);
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 0, &list), RRE_OK);
    assert_int_equal(list->count, 4);
    assert_true(json_equal(list->events[3].payload, deep));
    json_decref(deep);
    /* A real with an integral value is kept as an integer, as the queue
     * stores it (the content hash does not tell them apart). */
    json_t *c = json_pack("{s:s, s:f}", "model_id", "m3", "elo", 1500.0);
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", c, NULL, NULL), RRE_OK);
    rre_event_list_free(list);
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 1, &list), RRE_OK);
    assert_true(json_is_integer(json_object_get(list->events[0].payload, "elo")));
    assert_int_equal(json_integer_value(json_object_get(list->events[0].payload, "elo")), 1500);
    rre_event_list_free(list);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    rre_router_destroy(r);
}

static void test_stats_json_has_every_figure(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    publish_n(r, 1, 0);
    publish_n(r, 1, 0);
    json_t *j = NULL;
    assert_int_equal(rre_router_stats_json(r, &j), RRE_OK);
    /* Every field of rre_router_stats, and nothing else. */
    const char *keys[] = {"events_published",
                          "events_injected",
                          "events_delivered",
                          "duplicates_prevented",
                          "events_rejected",
                          "schema_violations",
                          "handler_failures",
                          "handler_timeouts",
                          "sink_failures",
                          "async_pending",
                          "async_cancelled",
                          "subscribers",
                          "sinks",
                          "history_size",
                          "dedup_entries",
                          "workers",
                          "routed_by_type",
                          "schema_violations_by_type"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(json_object_get(j, keys[i]));
    assert_int_equal(json_object_size(j), sizeof keys / sizeof keys[0]);
    assert_int_equal(json_integer_value(json_object_get(j, "history_size")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "dedup_entries")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "events_published")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "duplicates_prevented")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "events_delivered")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "subscribers")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "routed_by_type"),
                                                        "TRAINING_COMPLETED")),
                     1);
    json_decref(j);
    rre_router_destroy(r);
    recorder_free(&rec);
}

/* ---- subscriptions and ordering ---------------------------------------------------------- */

static void test_handlers_run_in_subscription_order(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder order, a, b, c, d;
    recorder_init(&order);
    struct recorder *recs[] = {&a, &b, &c, &d};
    const char *tags[] = {"all", "type", "cat", "type2"};
    for (int i = 0; i < 4; i++) {
        recorder_init(recs[i]);
        recs[i]->tag = tags[i];
        recs[i]->order = &order;
    }
    rre_router_subscribe_all(r, "a", record, &a, NULL);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "b", record, &b, NULL);
    rre_router_subscribe_category(r, RRE_CAT_TRAINING_PIPELINE, "c", record, &c, NULL);
    rre_router_subscribe_spelling(r, "training_completed", "d", record, &d, NULL);
    publish_n(r, 1, 0);
    assert_int_equal(order.count, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(order.names[i], tags[i]);
    /* A type of another category reaches only the "all" subscription. */
    json_t *p = json_pack("{s:s}", "host", "x");
    rre_router_publish(r, "HOST_ONLINE", p, NULL, NULL);
    json_decref(p);
    assert_int_equal(a.count, 2);
    assert_int_equal(b.count + c.count + d.count, 3);
    rre_router_destroy(r);
    for (int i = 0; i < 4; i++)
        recorder_free(recs[i]);
    recorder_free(&order);
}

static void test_subscribe_rejects_bad_arguments(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    assert_int_equal(rre_router_subscribe(r, (rre_event_type)100000, "x", record, &rec, NULL),
                     RRE_EUNKNOWN_TYPE);
    assert_int_equal(rre_router_subscribe_category(r, (rre_category)999, "x", record, &rec, NULL),
                     RRE_ECATEGORY);
    assert_int_equal(rre_router_subscribe_all(r, "x", NULL, &rec, NULL), RRE_EINVAL);
    assert_int_equal(rre_router_subscribe_spelling(r, "nonsense", "x", record, &rec, NULL),
                     RRE_EUNKNOWN_TYPE);
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(rre_router_subscribe_all(r, longname, record, &rec, NULL), RRE_EINVAL);
    assert_int_equal(rre_router_unsubscribe(r, 12345), RRE_ENOTFOUND);
    rre_router_destroy(r);
    recorder_free(&rec);
}

/* ---- error isolation ----------------------------------------------------------------------- */

static void test_failing_handler_does_not_stop_the_others_and_is_reported(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder bad, good, reports;
    recorder_init(&bad);
    recorder_init(&good);
    recorder_init(&reports);
    bad.fail = 7;
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "bad-handler", record, &bad, NULL);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "good-handler", record, &good, NULL);
    rre_router_subscribe(r, RRE_EV_HANDLER_FAILED, "reports", record, &reports, NULL);
    json_t *p = training_completed(1);
    rre_publish_result res;
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    json_decref(p);
    assert_int_equal(res.delivered, 2);
    assert_int_equal(res.failed, 1);
    assert_int_equal(good.count, 1);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    wait_count(&reports, 1);
    const json_t *rp = reports.last->payload;
    assert_string_equal(json_string_value(json_object_get(rp, "handler_name")), "bad-handler");
    assert_string_equal(json_string_value(json_object_get(rp, "event_type")), "TRAINING_COMPLETED");
    assert_non_null(strstr(json_string_value(json_object_get(rp, "error")), "7"));
    assert_string_equal(json_string_value(json_object_get(rp, "coordinator")), "router-test");
    assert_non_null(json_string_value(json_object_get(rp, "timestamp")));
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->handler_failures, 1);
    free(st);
    /* The report continues the trace of the event that failed. */
    assert_memory_equal(reports.last->trace_id, res.trace_id, 35);
    rre_router_destroy(r);
    recorder_free(&bad);
    recorder_free(&good);
    recorder_free(&reports);
}

static void test_failure_of_a_report_handler_is_not_reported_again(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder bad, reports;
    recorder_init(&bad);
    recorder_init(&reports);
    bad.fail = 1;
    reports.fail = 1; /* fails on the reports it gets */
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "bad", record, &bad, NULL);
    rre_router_subscribe(r, RRE_EV_HANDLER_FAILED, "reports", record, &reports, NULL);
    publish_n(r, 1, 0);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    assert_int_equal(reports.count, 1);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->handler_failures, 2);
    assert_int_equal(st->routed_by_type[RRE_EV_HANDLER_FAILED], 1);
    free(st);
    rre_router_destroy(r);
    recorder_free(&bad);
    recorder_free(&reports);
}

/* A handler that blocks until released. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int entered;
    int left;
};

static void gate_init(struct gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void gate_free(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static int gate_handler(const rre_event *ev, void *user_data)
{
    (void)ev;
    struct gate *g = user_data;
    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    g->left++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static void gate_wait_entered(struct gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->entered < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Waits (real time, at most 10 s) until the watchdog has read the current
 * fake time. It stores that time before it scans, so seeing it means the
 * scans at earlier times have finished. */
static void wait_watchdog_read(rre_router *r)
{
    for (int i = 0; i < 10000; i++) {
        if (atomic_load(&r->coarse_now) == atomic_load(&fake_now))
            return;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    fail_msg("the watchdog did not read the clock");
}

/* Waits until the watchdog has scanned at least once at the current time. */
static void wait_watchdog_scanned(rre_router *r)
{
    wait_watchdog_read(r);
    atomic_fetch_add(&fake_now, 1); /* one microsecond later */
    wait_watchdog_read(r);
}

static void test_hanging_handler_is_reported_once_and_others_keep_receiving(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_handler_timeout(o, 600);
    rre_router_options_set_watchdog_interval(o, 0.001);
    rre_router_options_set_async_workers(o, 1);
    rre_router *r = router_with(o);
    struct gate g;
    gate_init(&g);
    struct recorder other, reports;
    recorder_init(&other);
    recorder_init(&reports);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "hangs", gate_handler, &g, NULL);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "other", record, &other, NULL);
    rre_router_subscribe(r, RRE_EV_HANDLER_TIMEOUT, "reports", record, &reports, NULL);
    assert_int_equal(publish_n(r, 1, RRE_PUBLISH_ASYNC), RRE_OK);
    gate_wait_entered(&g, 1);
    /* With one worker stuck in "hangs", "other" still gets its events once
     * the timeout has passed and a replacement worker runs. */
    advance(601);
    wait_count(&reports, 1);
    for (int i = 2; i <= 20; i++)
        assert_int_equal(publish_n(r, i, RRE_PUBLISH_ASYNC), RRE_OK);
    wait_count(&other, 20);
    assert_string_equal(json_string_value(json_object_get(reports.last->payload, "handler_name")),
                        "hangs");
    assert_true(json_real_value(json_object_get(reports.last->payload, "timeout_seconds")) ==
                600.0);
    /* validate_flow sees it stuck. */
    rre_router_health h;
    assert_int_equal(rre_router_validate_flow(r, &h), RRE_OK);
    assert_false(h.healthy);
    bool stuck = false;
    for (size_t i = 0; i < h.issue_count; i++)
        if (h.issues[i].kind == RRE_ROUTER_ISSUE_HANDLER_STUCK &&
            strstr(h.issues[i].message, "hangs") != NULL)
            stuck = true;
    assert_true(stuck);
    rre_router_health_free(&h);
    /* More clock time does not report the same call again. Any other call
     * still running when the clock jumps would rightly look 601 s old, so
     * first wait until only "hangs" is left: its running call and its 19
     * queued events. */
    for (int i = 0;; i++) {
        rre_router_stats *ps = malloc(sizeof *ps);
        rre_router_get_stats(r, ps);
        uint64_t pending = ps->async_pending;
        free(ps);
        if (pending == 20)
            break;
        assert_true(i < 10000);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    advance(601);
    wait_watchdog_scanned(r);
    assert_int_equal(rre_router_flush(r, 0), RRE_ETIMEOUT); /* "hangs" still holds its queue */
    assert_int_equal(recorder_count(&reports), 1);
    gate_release(&g);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->handler_timeouts, 1);
    free(st);
    assert_int_equal(recorder_count(&reports), 1);
    assert_int_equal(g.left, 20);
    rre_router_destroy(r);
    gate_free(&g);
    recorder_free(&other);
    recorder_free(&reports);
}

/* ---- async ordering -------------------------------------------------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 1500

struct order_check {
    pthread_mutex_t mu;
    int last[PRODUCERS];
    int received;
    int out_of_order;
};

static int order_handler(const rre_event *ev, void *user_data)
{
    struct order_check *oc = user_data;
    int producer = (int)json_integer_value(json_object_get(ev->payload, "producer"));
    int seq = (int)json_integer_value(json_object_get(ev->payload, "seq"));
    pthread_mutex_lock(&oc->mu);
    if (seq <= oc->last[producer])
        oc->out_of_order++;
    oc->last[producer] = seq;
    oc->received++;
    pthread_mutex_unlock(&oc->mu);
    return 0;
}

struct producer_arg {
    rre_router *r;
    int id;
};

static void *producer_main(void *arg)
{
    struct producer_arg *pa = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        json_t *p = json_pack("{s:i, s:i}", "producer", pa->id, "seq", i);
        rre_publish_options po = {.flags = RRE_PUBLISH_ASYNC};
        rre_status st = rre_router_publish(pa->r, "TRAINING_PROGRESS", p, &po, NULL);
        rre_payload_release(p); /* workers may still hold it */
        if (st != RRE_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_async_dispatch_keeps_each_producers_order_per_subscriber(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_async_workers(o, 3);
    rre_router_options_set_validation(o, RRE_VALIDATE_OFF);
    rre_router *r = router_with(o);
    struct order_check oc[3];
    for (int s = 0; s < 3; s++) {
        memset(&oc[s], 0, sizeof oc[s]);
        pthread_mutex_init(&oc[s].mu, NULL);
        for (int p = 0; p < PRODUCERS; p++)
            oc[s].last[p] = -1;
        rre_router_subscribe(r, RRE_EV_TRAINING_PROGRESS, NULL, order_handler, &oc[s], NULL);
    }
    pthread_t threads[PRODUCERS];
    struct producer_arg args[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        args[p] = (struct producer_arg){r, p};
        pthread_create(&threads[p], NULL, producer_main, &args[p]);
    }
    for (int p = 0; p < PRODUCERS; p++) {
        void *ret;
        pthread_join(threads[p], &ret);
        assert_null(ret);
    }
    assert_int_equal(rre_router_flush(r, 30), RRE_OK);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(oc[s].received, PRODUCERS * PER_PRODUCER);
        assert_int_equal(oc[s].out_of_order, 0);
        for (int p = 0; p < PRODUCERS; p++)
            assert_int_equal(oc[s].last[p], PER_PRODUCER - 1);
    }
    rre_router_destroy(r);
    for (int s = 0; s < 3; s++)
        pthread_mutex_destroy(&oc[s].mu);
}

static int count_handler(const rre_event *ev, void *user_data)
{
    (void)ev;
    atomic_fetch_add((atomic_int *)user_data, 1);
    return 0;
}

/* Several threads publish the same events at once: each is accepted once
 * (the dedup window is split into shards with a lock each), and the
 * counters, which each thread keeps in a stripe of its own, add up. */
enum { SAME_THREADS = 4, SAME_EVENTS = 3000 };

static void *same_events_main(void *arg)
{
    rre_router *r = arg;
    for (int i = 0; i < SAME_EVENTS; i++) {
        json_t *p = json_pack("{s:s, s:i}", "config_key", "hex8_2p", "seq", i);
        rre_status st = rre_router_publish(r, "TRAINING_PROGRESS", p, NULL, NULL);
        json_decref(p);
        if (st != RRE_OK)
            return (void *)1;
    }
    return NULL;
}

static void
test_threads_publishing_the_same_events_store_each_once_and_counters_add_up(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_validation(o, RRE_VALIDATE_OFF);
    rre_router_options_set_history_size(o, 1000);
    rre_router *r = router_with(o);
    atomic_int calls = 0;
    assert_int_equal(
        rre_router_subscribe(r, RRE_EV_TRAINING_PROGRESS, "count", count_handler, &calls, NULL),
        RRE_OK);
    pthread_t t[SAME_THREADS];
    for (int i = 0; i < SAME_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, same_events_main, r), 0);
    for (int i = 0; i < SAME_THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(atomic_load(&calls), SAME_EVENTS);
    rre_router_stats *st = malloc(sizeof *st);
    assert_non_null(st);
    assert_int_equal(rre_router_get_stats(r, st), RRE_OK);
    assert_int_equal(st->events_published, SAME_EVENTS);
    assert_int_equal(st->duplicates_prevented, (SAME_THREADS - 1) * SAME_EVENTS);
    assert_int_equal(st->routed_by_type[RRE_EV_TRAINING_PROGRESS], SAME_EVENTS);
    assert_int_equal(st->events_delivered, SAME_EVENTS);
    assert_int_equal(st->dedup_entries, SAME_EVENTS);
    assert_int_equal(st->history_size, 1000);
    free(st);
    /* The history holds the last 1000 accepted, each once. */
    rre_event_list *list = NULL;
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 0, &list), RRE_OK);
    assert_int_equal(list->count, 1000);
    char *seen = calloc(SAME_EVENTS, 1);
    for (size_t i = 0; i < list->count; i++) {
        int seq = (int)json_integer_value(json_object_get(list->events[i].payload, "seq"));
        assert_in_range(seq, 0, SAME_EVENTS - 1);
        assert_int_equal(seen[seq], 0);
        seen[seq] = 1;
    }
    free(seen);
    rre_event_list_free(list);
    rre_router_destroy(r);
}

/* ---- unsubscribe ------------------------------------------------------------------------------
 */

struct unsub_arg {
    rre_router *r;
    rre_subscription_id id;
    struct gate *g;
    atomic_bool returned;
    int left_at_return;
};

static void *unsubscriber_main(void *arg)
{
    struct unsub_arg *ua = arg;
    assert_int_equal(rre_router_unsubscribe(ua->r, ua->id), RRE_OK);
    pthread_mutex_lock(&ua->g->mu);
    ua->left_at_return = ua->g->left;
    pthread_mutex_unlock(&ua->g->mu);
    atomic_store(&ua->returned, true);
    return NULL;
}

static void *publisher_main(void *arg)
{
    rre_router *r = arg;
    publish_n(r, 1, 0);
    return NULL;
}

static void test_unsubscribe_from_another_thread_waits_for_the_running_call(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct gate g;
    gate_init(&g);
    struct unsub_arg ua = {.r = r, .g = &g};
    atomic_init(&ua.returned, false);
    assert_int_equal(rre_router_subscribe_all(r, "gate", gate_handler, &g, &ua.id), RRE_OK);
    pthread_t pub, unsub;
    pthread_create(&pub, NULL, publisher_main, r);
    gate_wait_entered(&g, 1);
    pthread_create(&unsub, NULL, unsubscriber_main, &ua);
    /* Unsubscribe cannot return while the handler runs. Give it a moment
     * to (wrongly) return, then open the gate. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_false(atomic_load(&ua.returned));
    gate_release(&g);
    pthread_join(unsub, NULL);
    pthread_join(pub, NULL);
    assert_int_equal(ua.left_at_return, 1); /* the call had finished */
    /* Never called again. */
    publish_n(r, 2, 0);
    publish_n(r, 3, RRE_PUBLISH_ASYNC);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    assert_int_equal(g.entered, 1);
    rre_router_destroy(r);
    gate_free(&g);
}

struct self_unsub {
    rre_router *r;
    rre_subscription_id id;
    int calls;
    rre_status st;
};

static int self_unsub_handler(const rre_event *ev, void *user_data)
{
    (void)ev;
    struct self_unsub *su = user_data;
    su->calls++;
    su->st = rre_router_unsubscribe(su->r, su->id);
    return 0;
}

static void test_unsubscribe_from_inside_the_handler_returns_at_once(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct self_unsub su = {.r = r};
    assert_int_equal(rre_router_subscribe_all(r, "self", self_unsub_handler, &su, &su.id), RRE_OK);
    publish_n(r, 1, 0);
    assert_int_equal(su.calls, 1);
    assert_int_equal(su.st, RRE_OK);
    publish_n(r, 2, 0);
    publish_n(r, 3, RRE_PUBLISH_ASYNC);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    assert_int_equal(su.calls, 1);
    rre_router_destroy(r);

    /* The same from a worker thread. */
    r = new_router();
    su = (struct self_unsub){.r = r};
    assert_int_equal(rre_router_subscribe_all(r, "self", self_unsub_handler, &su, &su.id), RRE_OK);
    for (int i = 0; i < 5; i++)
        publish_n(r, i, RRE_PUBLISH_ASYNC);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    assert_int_equal(su.calls, 1);
    assert_int_equal(su.st, RRE_OK);
    rre_router_destroy(r);
}

/* ---- chaining ------------------------------------------------------------------------------- */

struct chain {
    rre_router *r;
    unsigned flags;
    int trainings;
    rre_status st;
};

static int chain_handler(const rre_event *ev, void *user_data)
{
    struct chain *c = user_data;
    c->trainings++;
    json_t *p = json_pack("{s:s, s:s, s:s, s:i, s:f, s:i, s:f}", "config_key", "hex8_2p",
                          "board_type", "hex8", "model_path",
                          json_string_value(json_object_get(ev->payload, "model_path")),
                          "num_players", 2, "elo", 1650.0, "games_played", 100, "win_rate", 0.7);
    rre_publish_options po = {.flags = c->flags};
    c->st = rre_router_publish(c->r, "EVALUATION_COMPLETED", p, &po, NULL);
    rre_payload_release(p);
    return 0;
}

static void test_publish_from_inside_a_handler_chains_without_deadlock(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        rre_router *r = new_router();
        struct chain c = {.r = r, .flags = mode ? RRE_PUBLISH_ASYNC : 0};
        struct recorder evals;
        recorder_init(&evals);
        rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "coordinator", chain_handler, &c, NULL);
        rre_router_subscribe(r, RRE_EV_EVALUATION_COMPLETED, "evals", record, &evals, NULL);
        rre_publish_result res;
        json_t *p = training_completed(1);
        rre_publish_options po = {.flags = mode ? RRE_PUBLISH_ASYNC : 0};
        assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, &po, &res), RRE_OK);
        rre_payload_release(p);
        assert_int_equal(rre_router_flush(r, 10), RRE_OK);
        assert_int_equal(c.trainings, 1);
        assert_int_equal(c.st, RRE_OK);
        wait_count(&evals, 1);
        /* The chained event continues the trace with a new parent id. */
        assert_memory_equal(evals.last->trace_id, res.trace_id, 35);
        assert_string_not_equal(evals.last->trace_id, res.trace_id);
        rre_router_destroy(r);
        recorder_free(&evals);
    }
}

/* ---- many threads ------------------------------------------------------------------------------
 */

struct churn_arg {
    rre_router *r;
    int id;
    atomic_int *calls;
};

static void *churn_publisher(void *arg)
{
    struct churn_arg *ca = arg;
    for (int i = 0; i < 400; i++) {
        json_t *p = json_pack("{s:i, s:i}", "producer", ca->id, "seq", i);
        rre_publish_options po = {.flags = (i % 2) ? RRE_PUBLISH_ASYNC : 0};
        rre_router_publish(ca->r, "TRAINING_PROGRESS", p, &po, NULL);
        rre_payload_release(p);
        if (i % 50 == 0) {
            json_t *j = NULL;
            rre_router_stats_json(ca->r, &j);
            json_decref(j);
            rre_event_list *l = NULL;
            rre_router_history(ca->r, RRE_EV_NONE, 10, &l);
            rre_event_list_free(l);
        }
    }
    return NULL;
}

static void *churn_subscriber(void *arg)
{
    struct churn_arg *ca = arg;
    for (int i = 0; i < 60; i++) {
        rre_subscription_id id;
        rre_status st =
            (i % 3 == 0)   ? rre_router_subscribe_all(ca->r, NULL, count_handler, ca->calls, &id)
            : (i % 3 == 1) ? rre_router_subscribe(ca->r, RRE_EV_TRAINING_PROGRESS, "t",
                                                  count_handler, ca->calls, &id)
                           : rre_router_subscribe_category(ca->r, RRE_CAT_TRAINING_PIPELINE, "c",
                                                           count_handler, ca->calls, &id);
        if (st != RRE_OK)
            return (void *)1;
        if (rre_router_unsubscribe(ca->r, id) != RRE_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_many_threads_publish_and_subscribe_at_once(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_validation(o, RRE_VALIDATE_OFF);
    rre_router_options_set_history_size(o, 64);
    rre_router *r = router_with(o);
    atomic_int calls;
    atomic_init(&calls, 0);
    atomic_int steady;
    atomic_init(&steady, 0);
    rre_router_subscribe(r, RRE_EV_TRAINING_PROGRESS, "steady", count_handler, &steady, NULL);
    enum { N = 4 };
    pthread_t pubs[N], subs[N];
    struct churn_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct churn_arg){r, i, &calls};
        pthread_create(&pubs[i], NULL, churn_publisher, &args[i]);
        pthread_create(&subs[i], NULL, churn_subscriber, &args[i]);
    }
    for (int i = 0; i < N; i++) {
        void *ret;
        pthread_join(pubs[i], NULL);
        pthread_join(subs[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(rre_router_flush(r, 30), RRE_OK);
    assert_int_equal(atomic_load(&steady), N * 400);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->events_published, N * 400);
    assert_int_equal(st->subscribers, 1);
    assert_int_equal(st->events_delivered, (uint64_t)(N * 400 + atomic_load(&calls)));
    free(st);
    rre_router_destroy(r);
}

/* ---- close and destroy
 * --------------------------------------------------------------------------- */

struct closer {
    rre_router *r;
    atomic_bool returned;
};

static void *close_main(void *arg)
{
    struct closer *c = arg;
    rre_router_close(c->r);
    atomic_store(&c->returned, true);
    return NULL;
}

static void test_close_cancels_queued_events_and_waits_for_running_ones(void **state)
{
    (void)state;
    rre_router_options *o = options();
    rre_router_options_set_async_workers(o, 1);
    rre_router *r = router_with(o);
    struct gate g;
    gate_init(&g);
    rre_router_subscribe_all(r, "gate", gate_handler, &g, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(publish_n(r, i, RRE_PUBLISH_ASYNC), RRE_OK);
    gate_wait_entered(&g, 1);
    struct closer c = {.r = r};
    atomic_init(&c.returned, false);
    pthread_t t;
    pthread_create(&t, NULL, close_main, &c);
    /* Once close has begun, publishes fail; then let the running call end. */
    atomic_int late;
    atomic_init(&late, 0);
    rre_status st;
    do {
        rre_subscription_id id;
        st = rre_router_subscribe(r, RRE_EV_HOST_ONLINE, "probe", count_handler, &late, &id);
        if (st == RRE_OK)
            assert_int_equal(rre_router_unsubscribe(r, id), RRE_OK);
        sched_yield();
    } while (st == RRE_OK);
    assert_int_equal(st, RRE_ECLOSED);
    assert_int_equal(publish_n(r, 1000, 0), RRE_ECLOSED);
    /* Close cannot return while the worker's call runs. */
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    assert_false(atomic_load(&c.returned));
    gate_release(&g);
    pthread_join(t, NULL);
    assert_int_equal(g.left, 1);
    rre_router_stats *s = malloc(sizeof *s);
    rre_router_get_stats(r, s);
    assert_int_equal(s->async_pending, 0);
    assert_int_equal(s->events_delivered + s->async_cancelled, 50);
    assert_true(s->async_cancelled > 0);
    assert_int_equal(s->workers, 0);
    free(s);
    /* History and validation still answer after close. */
    rre_event_list *l = NULL;
    assert_int_equal(rre_router_history(r, RRE_EV_NONE, 0, &l), RRE_OK);
    assert_true(l->count > 0);
    rre_event_list_free(l);
    rre_router_health h;
    assert_int_equal(rre_router_validate_flow(r, &h), RRE_OK);
    rre_router_health_free(&h);
    rre_router_destroy(r);
    gate_free(&g);
}

static void test_close_waits_for_a_synchronous_handler_running_on_another_thread(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct gate g;
    gate_init(&g);
    struct recorder after;
    recorder_init(&after);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "gate", gate_handler, &g, NULL);
    rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "after", record, &after, NULL);
    pthread_t pub, closer;
    pthread_create(&pub, NULL, publisher_main, r);
    gate_wait_entered(&g, 1);
    struct closer c = {.r = r};
    atomic_init(&c.returned, false);
    pthread_create(&closer, NULL, close_main, &c);
    /* Wait until close has begun (subscribing fails), give it a moment to
     * (wrongly) return, then let the running call end. */
    atomic_int probe;
    atomic_init(&probe, 0);
    rre_status st;
    do {
        rre_subscription_id id;
        st = rre_router_subscribe(r, RRE_EV_HOST_ONLINE, "probe", count_handler, &probe, &id);
        if (st == RRE_OK)
            assert_int_equal(rre_router_unsubscribe(r, id), RRE_OK);
        sched_yield();
    } while (st == RRE_OK);
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    assert_false(atomic_load(&c.returned));
    gate_release(&g);
    pthread_join(closer, NULL);
    pthread_join(pub, NULL);
    assert_int_equal(g.left, 1);
    /* The handler after it had not started when close began: not called. */
    assert_int_equal(recorder_count(&after), 0);
    rre_router_destroy(r);
    gate_free(&g);
    recorder_free(&after);
}

static void *release_later_main(void *arg)
{
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    gate_release(arg);
    return NULL;
}

static void test_flush_with_an_infinite_or_huge_timeout_waits_without_limit(void **state)
{
    (void)state;
    const double timeouts[] = {__builtin_inf(), 1e30};
    for (int i = 0; i < 2; i++) {
        rre_router_options *o = options();
        rre_router_options_set_async_workers(o, 1);
        rre_router *r = router_with(o);
        struct gate g;
        gate_init(&g);
        rre_router_subscribe_all(r, "gate", gate_handler, &g, NULL);
        assert_int_equal(publish_n(r, 1, RRE_PUBLISH_ASYNC), RRE_OK);
        gate_wait_entered(&g, 1);
        pthread_t t;
        pthread_create(&t, NULL, release_later_main, &g);
        assert_int_equal(rre_router_flush(r, timeouts[i]), RRE_OK);
        assert_int_equal(g.left, 1);
        pthread_join(t, NULL);
        assert_int_equal(rre_router_flush(r, __builtin_nan("")), RRE_EINVAL);
        rre_router_destroy(r);
        gate_free(&g);
    }
}

static void test_destroy_with_events_in_flight_leaks_nothing(void **state)
{
    (void)state;
    rre_router *r = new_router();
    atomic_int calls;
    atomic_init(&calls, 0);
    rre_router_subscribe_all(r, "count", count_handler, &calls, NULL);
    rre_router_subscribe_all(r, "count2", count_handler, &calls, NULL);
    for (int i = 0; i < 500; i++)
        publish_n(r, i, RRE_PUBLISH_ASYNC);
    rre_router_destroy(r); /* ASan's leak check is the assertion */
    rre_router_destroy(NULL);
}

/* ---- sinks and injection
 * ------------------------------------------------------------------------- */

struct sink_log {
    int local, remote;
    int64_t next_id;
};

static rre_status sink_fn(rre_event *ev, void *user_data)
{
    struct sink_log *sl = user_data;
    if (ev->origin == RRE_ORIGIN_LOCAL) {
        sl->local++;
        ev->event_id = ++sl->next_id;
    } else {
        sl->remote++;
    }
    return RRE_OK;
}

static rre_status failing_sink(rre_event *ev, void *user_data)
{
    (void)ev;
    (void)user_data;
    return RRE_EFULL;
}

static void test_sink_sees_accepted_local_events_and_can_set_their_id(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct sink_log sl = {0};
    struct recorder rec;
    recorder_init(&rec);
    rre_subscription_id sid;
    assert_int_equal(rre_router_add_sink(r, RRE_ORIGIN_BIT(RRE_ORIGIN_LOCAL), sink_fn, &sl, &sid),
                     RRE_OK);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    rre_publish_result res;
    json_t *p = training_completed(1);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_OK);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, NULL), RRE_OK); /* dup */
    json_decref(p);
    assert_int_equal(sl.local, 1);
    assert_int_equal(res.event_id, 1);
    assert_int_equal(rec.last->event_id, 1);
    rre_event_list *l = NULL;
    rre_router_history(r, RRE_EV_NONE, 0, &l);
    assert_int_equal(l->events[0].event_id, 1);
    rre_event_list_free(l);

    /* An injected event reaches handlers but not a LOCAL-only sink. */
    rre_event in;
    memset(&in, 0, sizeof in);
    in.type = RRE_EV_HOST_ONLINE;
    in.payload = json_pack("{s:s}", "host", "gpu-7");
    in.source = "other-process";
    in.event_id = 77;
    in.origin = RRE_ORIGIN_PROCESS;
    assert_int_equal(rre_router_inject(r, &in, NULL, &res), RRE_OK);
    assert_false(res.duplicate);
    assert_int_equal(sl.remote, 0);
    assert_int_equal(rec.last->origin, RRE_ORIGIN_PROCESS);
    assert_int_equal(rec.last->event_id, 77);
    assert_string_equal(rec.last->source, "other-process");
    assert_int_equal(strlen(rec.last->timestamp), 27);
    /* Injected again (say, through two paths): a duplicate. */
    assert_int_equal(rre_router_inject(r, &in, NULL, &res), RRE_OK);
    assert_true(res.duplicate);
    in.origin = RRE_ORIGIN_LOCAL;
    assert_int_equal(rre_router_inject(r, &in, NULL, NULL), RRE_EINVAL);
    json_decref(in.payload);

    assert_int_equal(rre_router_remove_sink(r, sid), RRE_OK);
    assert_int_equal(rre_router_remove_sink(r, sid), RRE_ENOTFOUND);
    assert_int_equal(rre_router_add_sink(r, RRE_ORIGIN_ALL, failing_sink, NULL, NULL), RRE_OK);
    p = training_completed(2);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, &res), RRE_EFULL);
    assert_int_equal(res.sink_status, RRE_EFULL);
    assert_int_equal(res.delivered, 1); /* still dispatched locally */
    json_decref(p);
    rre_router_stats *st = malloc(sizeof *st);
    rre_router_get_stats(r, st);
    assert_int_equal(st->sink_failures, 1);
    assert_int_equal(st->events_injected, 1);
    free(st);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_inject_fills_empty_envelope_fields_as_a_publish_does(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    rre_event in;
    memset(&in, 0, sizeof in);
    in.type = RRE_EV_HOST_ONLINE;
    in.origin = RRE_ORIGIN_HOST;
    /* Empty fields with the payload's: those are used. */
    in.payload = json_pack("{s:s, s:s, s:s}", "host", "gpu-1", "source", "payload-src", "trace_id",
                           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    in.source = "";
    assert_int_equal(rre_router_inject(r, &in, NULL, NULL), RRE_OK);
    assert_string_equal(rec.last->source, "payload-src");
    assert_string_equal(rec.last->trace_id,
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    json_decref(in.payload);
    /* Nothing in the payload either: the router's default source. */
    in.payload = json_pack("{s:s}", "host", "gpu-2");
    in.source = NULL;
    assert_int_equal(rre_router_inject(r, &in, NULL, NULL), RRE_OK);
    assert_string_equal(rec.last->source, "router-test");
    assert_int_equal(strlen(rec.last->trace_id), 55);
    json_decref(in.payload);
    /* Given ones are kept. */
    in.payload = json_pack("{s:s, s:s}", "host", "gpu-3", "source", "payload-src");
    in.source = "remote-src";
    assert_int_equal(rre_router_inject(r, &in, NULL, NULL), RRE_OK);
    assert_string_equal(rec.last->source, "remote-src");
    json_decref(in.payload);
    assert_int_equal(rec.count, 3);
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_payload_release_drops_one_reference_and_frees_with_the_last(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:i}", "n", 1);
    json_incref(p);
    rre_payload_release(p);
    assert_int_equal(p->refcount, 1);
    rre_payload_release(p); /* freed: ASan reports a leak otherwise */
    rre_payload_release(json_true());
    assert_int_equal(json_true()->refcount, (size_t)-1);
    rre_payload_release(NULL);
}

/* ---- flow validation
 * ------------------------------------------------------------------------------ */

static bool has_issue(const rre_router_health *h, rre_router_issue_kind kind, const char *text)
{
    for (size_t i = 0; i < h->issue_count; i++)
        if (h->issues[i].kind == kind && (text == NULL || strstr(h->issues[i].message, text)))
            return true;
    return false;
}

static void test_validate_flow_is_healthy_for_a_complete_lifecycle(void **state)
{
    (void)state;
    rre_router *r = new_router();
    json_t *p = json_pack("{s:s, s:s, s:s, s:i}", "job_id", "j1", "config_key", "hex8_2p",
                          "board_type", "hex8", "num_players", 2);
    assert_int_equal(rre_router_publish(r, "TRAINING_STARTED", p, NULL, NULL), RRE_OK);
    json_decref(p);
    publish_n(r, 1, 0); /* TRAINING_COMPLETED with job_id train_hex8_2p */
    rre_router_health h;
    assert_int_equal(rre_router_validate_flow(r, &h), RRE_OK);
    /* train_hex8_2p never started: the only issue. */
    assert_false(h.healthy);
    assert_true(has_issue(&h, RRE_ROUTER_ISSUE_LIFECYCLE, "TRAINING_STARTED"));
    rre_router_health_free(&h);
    rre_router_destroy(r);

    r = new_router();
    p = json_pack("{s:s, s:s, s:s, s:i}", "job_id", "train_hex8_2p", "config_key", "hex8_2p",
                  "board_type", "hex8", "num_players", 2);
    rre_router_publish(r, "TRAINING_STARTED", p, NULL, NULL);
    json_decref(p);
    publish_n(r, 1, 0);
    assert_int_equal(rre_router_validate_flow(r, &h), RRE_OK);
    assert_true(h.healthy);
    assert_int_equal(h.issue_count, 0);
    rre_router_health_free(&h);
    json_t *j = NULL;
    assert_int_equal(rre_router_validate_flow_json(r, &j), RRE_OK);
    assert_true(json_is_true(json_object_get(j, "healthy")));
    assert_int_equal(json_array_size(json_object_get(j, "issues")), 0);
    json_decref(j);
    rre_router_destroy(r);
}

static void test_validate_flow_reports_a_duplicate_storm_and_failing_handlers(void **state)
{
    (void)state;
    rre_router *r = new_router();
    struct recorder bad;
    recorder_init(&bad);
    bad.fail = 1;
    rre_router_subscribe(r, RRE_EV_HOST_ONLINE, "flaky", record, &bad, NULL);
    json_t *p = json_pack("{s:s}", "host", "h");
    for (int i = 0; i < 200; i++)
        rre_router_publish(r, "HOST_ONLINE", p, NULL, NULL);
    json_decref(p);
    assert_int_equal(rre_router_flush(r, 10), RRE_OK);
    rre_router_health h;
    assert_int_equal(rre_router_validate_flow(r, &h), RRE_OK);
    assert_false(h.healthy);
    assert_true(has_issue(&h, RRE_ROUTER_ISSUE_DUPLICATE_RATE, "199"));
    assert_true(has_issue(&h, RRE_ROUTER_ISSUE_HANDLER_FAILING, "flaky"));
    rre_router_health_free(&h);
    rre_router_destroy(r);
    recorder_free(&bad);
}

/* ---- options
 * ----------------------------------------------------------------------------------------- */

static void test_options_reject_out_of_range_values(void **state)
{
    (void)state;
    rre_router_options *o = NULL;
    assert_int_equal(rre_router_options_create(&o), RRE_OK);
    assert_int_equal(rre_router_options_set_dedup_window(o, 0), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_dedup_window(o, -1), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_dedup_max_entries(o, 0), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_async_workers(o, 0), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_handler_timeout(o, -5), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_validation(o, (rre_validation_mode)9), RRE_EINVAL);
    char longname[300];
    memset(longname, 's', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(rre_router_options_set_source(o, longname), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_history_size(o, 0), RRE_OK);
    assert_int_equal(rre_router_options_set_validation(NULL, RRE_VALIDATE_OFF), RRE_EINVAL);
    rre_router_options_destroy(o);
    rre_router_options_destroy(NULL);
    /* NULL options: the defaults, with the program's name as source. */
    rre_router *r = NULL;
    assert_int_equal(rre_router_create(&r, NULL), RRE_OK);
    struct recorder rec;
    recorder_init(&rec);
    rre_router_subscribe_all(r, "rec", record, &rec, NULL);
    publish_n(r, 1, 0);
    assert_string_equal(rec.last->source, "router_test");
    rre_router_destroy(r);
    recorder_free(&rec);
}

static void test_local_events_carry_the_host_name_given_to_the_router(void **state)
{
    (void)state;
    rre_router_options *o = options();
    char longname[RRE_HOSTNAME_MAX + 2];
    memset(longname, 'h', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(rre_router_options_set_hostname(o, longname), RRE_EINVAL);
    assert_int_equal(rre_router_options_set_hostname(o, "bad\xff"), RRE_EINVAL);
    longname[RRE_HOSTNAME_MAX] = '\0'; /* the longest a queue writes */
    assert_int_equal(rre_router_options_set_hostname(o, longname), RRE_OK);
    rre_router *r = router_with(o);
    struct recorder rec;
    recorder_init(&rec);
    assert_int_equal(rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "rec", record, &rec, NULL),
                     RRE_OK);
    json_t *p = training_completed(1);
    assert_int_equal(rre_router_publish(r, "TRAINING_COMPLETED", p, NULL, NULL), RRE_OK);
    json_decref(p);
    assert_string_equal(rec.last->hostname, longname);
    recorder_free(&rec);
    rre_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_delivers_to_a_type_subscriber_with_a_full_envelope),
        cmocka_unit_test(test_publish_resolves_any_spelling_including_stage_names),
        cmocka_unit_test(test_bad_type_or_payload_gets_a_clear_error_and_changes_nothing),
        cmocka_unit_test(test_aliases_are_normalised_before_validation_and_delivery),
        cmocka_unit_test(test_strict_validation_rejects_with_the_problems),
        cmocka_unit_test(test_warn_validation_counts_the_violation_and_delivers),
        cmocka_unit_test(test_validation_off_checks_nothing),
        cmocka_unit_test(test_envelope_fields_come_from_options_then_payload),
        cmocka_unit_test(test_duplicate_within_window_is_dropped_and_delivered_after_it),
        cmocka_unit_test(test_dedup_can_be_turned_off_for_the_router_or_one_event),
        cmocka_unit_test(test_memory_stays_bounded_under_a_flood_of_distinct_events),
        cmocka_unit_test(test_history_is_bounded_and_queried_by_type_and_count_newest_last),
        cmocka_unit_test(test_publish_text_parses_then_publishes_and_refuses_bad_text),
        cmocka_unit_test(test_history_keeps_payloads_as_canonical_text_equal_in_content),
        cmocka_unit_test(test_stats_json_has_every_figure),
        cmocka_unit_test(test_handlers_run_in_subscription_order),
        cmocka_unit_test(test_subscribe_rejects_bad_arguments),
        cmocka_unit_test(test_failing_handler_does_not_stop_the_others_and_is_reported),
        cmocka_unit_test(test_failure_of_a_report_handler_is_not_reported_again),
        cmocka_unit_test(test_hanging_handler_is_reported_once_and_others_keep_receiving),
        cmocka_unit_test(test_async_dispatch_keeps_each_producers_order_per_subscriber),
        cmocka_unit_test(
            test_threads_publishing_the_same_events_store_each_once_and_counters_add_up),
        cmocka_unit_test(test_unsubscribe_from_another_thread_waits_for_the_running_call),
        cmocka_unit_test(test_unsubscribe_from_inside_the_handler_returns_at_once),
        cmocka_unit_test(test_publish_from_inside_a_handler_chains_without_deadlock),
        cmocka_unit_test(test_many_threads_publish_and_subscribe_at_once),
        cmocka_unit_test(test_close_cancels_queued_events_and_waits_for_running_ones),
        cmocka_unit_test(test_close_waits_for_a_synchronous_handler_running_on_another_thread),
        cmocka_unit_test(test_flush_with_an_infinite_or_huge_timeout_waits_without_limit),
        cmocka_unit_test(test_destroy_with_events_in_flight_leaks_nothing),
        cmocka_unit_test(test_sink_sees_accepted_local_events_and_can_set_their_id),
        cmocka_unit_test(test_inject_fills_empty_envelope_fields_as_a_publish_does),
        cmocka_unit_test(test_payload_release_drops_one_reference_and_frees_with_the_last),
        cmocka_unit_test(test_validate_flow_is_healthy_for_a_complete_lifecycle),
        cmocka_unit_test(test_validate_flow_reports_a_duplicate_storm_and_failing_handlers),
        cmocka_unit_test(test_options_reject_out_of_range_values),
        cmocka_unit_test(test_local_events_carry_the_host_name_given_to_the_router),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
