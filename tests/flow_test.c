/*
 * flow_test.c - tests of the flow checker (src/flow.c): every rule of
 * include/rre/flow.h on hand-written streams, clean and violating (the
 * JSON-lines files under tests/data/flows/ and events built in code), the
 * JSON-lines reader, the report, and the memory bounds.
 */
#include "testutil.h"

#include "flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOWS_DIR RRE_TEST_SOURCE_DIR "/tests/data/flows/"

/* An issue a stream must produce: its rule, flow and line (0: any line). */
struct expect {
    rre_flow_rule rule;
    const char *flow;
    uint64_t line;
};

/* Feeds a file of tests/data/flows/ to a new checker, finishes it at the
 * latest event's time and returns it. */
static rre_flow_checker *check_file(const char *name, const rre_flow_options *opt, int64_t since)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", FLOWS_DIR, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    rre_flow_checker *c = NULL;
    assert_int_equal(rre_flow_checker_create(&c, opt), RRE_OK);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t line_no = 0;
    while ((n = getline(&line, &cap, f)) >= 0)
        rre_flow_feed_json_line(c, line, (size_t)n, ++line_no, since);
    free(line);
    fclose(f);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    return c;
}

static void print_issues(const rre_flow_checker *c)
{
    for (size_t i = 0; i < rre_flow_issue_count(c); i++) {
        const rre_flow_issue *is = rre_flow_issue_get(c, i);
        print_message("  issue %zu: %s/%s %s line %llu: %s\n", i, rre_flow_rule_name(is->rule),
                      is->flow, is->key, (unsigned long long)is->line, is->message);
    }
}

/* Asserts the report holds exactly the expected issues, in order. */
static void assert_issues(const rre_flow_checker *c, const struct expect *exp, size_t n)
{
    if (rre_flow_issue_count(c) != n)
        print_issues(c);
    assert_int_equal(rre_flow_issue_count(c), n);
    for (size_t i = 0; i < n; i++) {
        const rre_flow_issue *is = rre_flow_issue_get(c, i);
        if (is->rule != exp[i].rule || strcmp(is->flow, exp[i].flow) != 0 ||
            (exp[i].line != 0 && is->line != exp[i].line))
            print_issues(c);
        assert_string_equal(rre_flow_rule_name(is->rule), rre_flow_rule_name(exp[i].rule));
        assert_string_equal(is->flow, exp[i].flow);
        if (exp[i].line != 0)
            assert_int_equal(is->line, exp[i].line);
        assert_true(is->message[0] != '\0');
    }
    assert_int_equal(rre_flow_clean(c), n == 0);
}

static void check_file_expect(const char *name, const rre_flow_options *opt, int64_t since,
                              const struct expect *exp, size_t n)
{
    rre_flow_checker *c = check_file(name, opt, since);
    assert_issues(c, exp, n);
    rre_flow_checker_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* Events built in code                                                      */
/* ------------------------------------------------------------------------ */

static rre_event make_event(rre_event_type type, const char *payload, int64_t id,
                            const char *timestamp)
{
    rre_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    json_error_t err;
    ev.payload = json_loads(payload, 0, &err);
    if (ev.payload == NULL)
        fail_msg("bad test payload %s: %s", payload, err.text);
    ev.source = "";
    ev.hostname = "";
    ev.event_id = id;
    if (timestamp != NULL)
        snprintf(ev.timestamp, sizeof ev.timestamp, "%s", timestamp);
    return ev;
}

/* Feeds one event built from its parts and releases it. */
static void feed(rre_flow_checker *c, rre_event_type type, const char *payload, int64_t id,
                 const char *timestamp)
{
    rre_event ev = make_event(type, payload, id, timestamp);
    assert_int_equal(rre_flow_feed(c, &ev), RRE_OK);
    json_decref(ev.payload);
}

static rre_flow_checker *new_checker(unsigned flags)
{
    rre_flow_options opt = {.flags = flags};
    rre_flow_checker *c = NULL;
    assert_int_equal(rre_flow_checker_create(&c, &opt), RRE_OK);
    return c;
}

/* The lifecycle whose step > 0 names `type`, and the first type of that
 * lifecycle, or RRE_EV_NONE. */
static rre_event_type start_of(rre_event_type type)
{
    for (size_t i = 0; i < rre_lifecycle_count(); i++) {
        const rre_lifecycle *lc = rre_lifecycle_get(i);
        for (size_t s = 1; s < lc->step_count; s++)
            for (size_t k = 0; k < lc->steps[s].type_count; k++)
                if (lc->steps[s].types[k] == type)
                    return lc->steps[0].types[0];
    }
    return RRE_EV_NONE;
}

/* Feeds the whole pipeline chain for `cfg`, each stage preceded by the
 * first step of the lifecycle it ends, if any. Stage `keyless` (or none when
 * out of range) is fed without a config key. */
static void feed_chain(rre_flow_checker *c, const char *cfg, size_t keyless, int64_t *id)
{
    size_t n = 0;
    const rre_event_type *chain = rre_pipeline_chain(&n);
    assert_true(n >= 2);
    char with_key[128], payload[128];
    snprintf(with_key, sizeof with_key, "{\"config_key\":\"%s\",\"job_id\":\"%s-job\"}", cfg, cfg);
    for (size_t i = 0; i < n; i++) {
        snprintf(payload, sizeof payload, "%s",
                 i == keyless ? "{\"source\":\"cluster\"}" : with_key);
        rre_event_type first = start_of(chain[i]);
        if (first != RRE_EV_NONE && first != chain[i - (i > 0)])
            feed(c, first, payload, ++*id, NULL);
        feed(c, chain[i], payload, ++*id, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Lifecycle rules                                                           */
/* ------------------------------------------------------------------------ */

static void test_clean_pipeline_has_no_issues(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("clean_pipeline.jsonl", NULL, 0);
    assert_issues(c, NULL, 0);
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.events, 46);
    assert_int_equal(s.bad_input, 0);
    rre_flow_checker_destroy(c);
}

static void test_completed_without_started_is_a_violation(void **state)
{
    (void)state;
    const struct expect exp[] = {
        {RRE_FLOW_RULE_MISSING_START, "training", 7},
        {RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 7},
    };
    check_file_expect("training_completed_without_started.jsonl", NULL, 0, exp, 2);
}

static void test_failed_without_started_is_a_violation(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("training_failed_without_started.jsonl", NULL, 0);
    const struct expect exp[] = {{RRE_FLOW_RULE_MISSING_START, "training", 1}};
    assert_issues(c, exp, 1);
    const rre_flow_issue *is = rre_flow_issue_get(c, 0);
    assert_int_equal(is->kind, RRE_FLOW_VIOLATION);
    assert_int_equal(is->event_type, RRE_EV_TRAINING_FAILED);
    assert_int_equal(is->event_id, 40);
    assert_non_null(strstr(is->message, "TRAINING_STARTED"));
    rre_flow_checker_destroy(c);
}

static void test_second_terminal_event_is_a_violation(void **state)
{
    (void)state;
    const struct expect exp[] = {{RRE_FLOW_RULE_DUPLICATE_TERMINAL, "training", 9}};
    check_file_expect("training_two_terminals.jsonl", NULL, 0, exp, 1);
}

static void test_progress_after_end_is_a_violation(void **state)
{
    (void)state;
    const struct expect exp[] = {{RRE_FLOW_RULE_AFTER_END, "training", 10}};
    check_file_expect("training_progress_after_end.jsonl", NULL, 0, exp, 1);
}

static void test_work_started_before_claimed_is_reported_once(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("work_started_before_claimed.jsonl", NULL, 0);
    const struct expect exp[] = {{RRE_FLOW_RULE_OUT_OF_ORDER, "work", 2}};
    assert_issues(c, exp, 1);
    const rre_flow_issue *is = rre_flow_issue_get(c, 0);
    assert_string_equal(is->key, "eval-sq19-2p-5");
    assert_non_null(strstr(is->message, "WORK_STARTED before WORK_CLAIMED"));
    rre_flow_checker_destroy(c);
}

static void test_repeated_step_is_out_of_order(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    const char *p = "{\"work_id\":\"w1\",\"work_type\":\"selfplay\"}";
    feed(c, RRE_EV_WORK_QUEUED, p, 1, NULL);
    feed(c, RRE_EV_WORK_CLAIMED, p, 2, NULL);
    feed(c, RRE_EV_WORK_CLAIMED, p, 3, NULL);
    feed(c, RRE_EV_WORK_STARTED, p, 4, NULL);
    feed(c, RRE_EV_WORK_COMPLETED, p, 5, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_OUT_OF_ORDER, "work", 0}};
    assert_issues(c, exp, 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, 3);
    rre_flow_checker_destroy(c);
}

static void test_step_after_a_later_step_is_out_of_order(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    const char *p = "{\"work_id\":\"w2\",\"work_type\":\"training\"}";
    feed(c, RRE_EV_WORK_QUEUED, p, 1, NULL);
    feed(c, RRE_EV_WORK_CLAIMED, p, 2, NULL);
    feed(c, RRE_EV_WORK_STARTED, p, 3, NULL);
    feed(c, RRE_EV_WORK_CLAIMED, p, 4, NULL);
    feed(c, RRE_EV_WORK_FAILED, p, 5, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_OUT_OF_ORDER, "work", 0}};
    assert_issues(c, exp, 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, 4);
    assert_non_null(strstr(rre_flow_issue_get(c, 0)->message, "after WORK_STARTED"));
    rre_flow_checker_destroy(c);
}

static void test_concurrent_jobs_of_one_config_are_told_apart_by_job_id(void **state)
{
    (void)state;
    check_file_expect("concurrent_jobs.jsonl", NULL, 0, NULL, 0);
}

static void test_second_start_without_job_id_is_a_restart(void **state)
{
    (void)state;
    const struct expect exp[] = {{RRE_FLOW_RULE_RESTARTED, "training", 8}};
    check_file_expect("restarted_without_job_id.jsonl", NULL, 0, exp, 1);
}

static void test_run_is_matched_by_config_key_when_job_id_is_missing(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(RRE_FLOW_PARTIAL_HISTORY);
    feed(c, RRE_EV_TRAINING_STARTED, "{\"config_key\":\"hex8_2p\",\"job_id\":\"j1\"}", 1, NULL);
    feed(c, RRE_EV_TRAINING_PROGRESS, "{\"config_key\":\"hex8_2p\"}", 2, NULL);
    feed(c, RRE_EV_TRAINING_COMPLETED, "{\"board_type\":\"hex8\",\"num_players\":2}", 3, NULL);
    /* Now ended: a late failure for the same job is a second terminal event. */
    feed(c, RRE_EV_TRAINING_FAILED, "{\"job_id\":\"j1\"}", 4, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_DUPLICATE_TERMINAL, "training", 0}};
    assert_issues(c, exp, 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, 4);
    rre_flow_checker_destroy(c);
}

static void test_event_without_any_key_is_counted_as_unattributed(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    feed(c, RRE_EV_TRAINING_FAILED, "{\"error\":\"no idea which run\"}", 1, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_issues(c, NULL, 0);
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.unattributed, 1);
    assert_int_equal(s.events, 1);
    rre_flow_checker_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* Pipeline rules                                                            */
/* ------------------------------------------------------------------------ */

static void test_whole_chain_in_order_is_clean(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    int64_t id = 0;
    feed_chain(c, "hex8_2p", (size_t)-1, &id);
    feed_chain(c, "hex8_2p", (size_t)-1, &id); /* a second cycle */
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_issues(c, NULL, 0);
    rre_flow_checker_destroy(c);
}

static void test_chain_event_without_config_key_advances_waiting_configs(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    int64_t id = 0;
    feed_chain(c, "square8_2p", 2, &id);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_issues(c, NULL, 0);
    rre_flow_checker_destroy(c);
}

static void test_pipeline_stage_without_predecessor_is_a_violation(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("pipeline_stage_skipped.jsonl", NULL, 0);
    const struct expect exp[] = {{RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 3}};
    assert_issues(c, exp, 1);
    const rre_flow_issue *is = rre_flow_issue_get(c, 0);
    assert_string_equal(is->key_field, "config_key");
    assert_string_equal(is->key, "square8_2p");
    assert_int_equal(is->event_type, RRE_EV_MODEL_PROMOTED);
    rre_flow_checker_destroy(c);
}

static void test_pipeline_stage_after_completed_cycle_is_a_violation(void **state)
{
    (void)state;
    const struct expect exp[] = {{RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 14}};
    check_file_expect("pipeline_after_cycle_end.jsonl", NULL, 0, exp, 1);
}

static void test_last_stage_twice_is_a_violation(void **state)
{
    (void)state;
    size_t n = 0;
    const rre_event_type *chain = rre_pipeline_chain(&n);
    rre_flow_checker *c = new_checker(0);
    int64_t id = 0;
    feed_chain(c, "hex8_3p", (size_t)-1, &id);
    feed(c, chain[n - 1], "{\"config_key\":\"hex8_3p\"}", ++id, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 0}};
    assert_issues(c, exp, 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, id);
    rre_flow_checker_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* Stalls                                                                    */
/* ------------------------------------------------------------------------ */

static void test_run_not_ended_within_stall_after_is_a_stall(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("stalled_training.jsonl", NULL, 0);
    const struct expect exp[] = {
        {RRE_FLOW_RULE_RUN_STALLED, "training", 7},
        {RRE_FLOW_RULE_PIPELINE_STALLED, "pipeline", 7},
    };
    assert_issues(c, exp, 2);
    assert_int_equal(rre_flow_issue_get(c, 0)->kind, RRE_FLOW_STALL);
    assert_string_equal(rre_flow_issue_get(c, 1)->key, "hex8_2p");
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.stalls, 2);
    assert_int_equal(s.violations, 0);
    rre_flow_checker_destroy(c);
}

static void test_stall_threshold_is_configurable(void **state)
{
    (void)state;
    rre_flow_options longer = {.stall_after = 3 * 3600.0};
    check_file_expect("stalled_training.jsonl", &longer, 0, NULL, 0);
    rre_flow_options off = {.stall_after = -1.0};
    check_file_expect("stalled_training.jsonl", &off, 0, NULL, 0);
}

static void test_stalls_are_measured_against_the_given_now(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(RRE_FLOW_PARTIAL_HISTORY);
    feed(c, RRE_EV_RECOVERY_INITIATED,
         "{\"recovery_type\":\"node\",\"target\":\"gpu-9\",\"config_key\":\"hex8_2p\"}", 1,
         "2026-01-05T10:00:00Z");
    double started;
    assert_true(rre__time_parse_iso8601("2026-01-05T10:00:00Z", &started));
    assert_int_equal(rre_flow_finish(c, started + 7200.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_RUN_STALLED, "recovery", 0}};
    assert_issues(c, exp, 1);
    assert_true(rre_flow_issue_get(c, 0)->time == started);
    rre_flow_checker_destroy(c);

    /* The same run checked one minute after it began is not stalled. */
    c = new_checker(RRE_FLOW_PARTIAL_HISTORY);
    feed(c, RRE_EV_RECOVERY_INITIATED,
         "{\"recovery_type\":\"node\",\"target\":\"gpu-9\",\"config_key\":\"hex8_2p\"}", 1,
         "2026-01-05T10:00:00Z");
    assert_int_equal(rre_flow_finish(c, started + 60.0), RRE_OK);
    assert_issues(c, NULL, 0);
    rre_flow_checker_destroy(c);
}

static void test_explicit_time_overrides_the_timestamp(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    rre_event ev = make_event(RRE_EV_WORK_QUEUED, "{\"work_id\":\"w9\",\"work_type\":\"x\"}", 1,
                              "2026-01-05T10:00:00Z");
    assert_int_equal(rre_flow_feed_at(c, &ev, 1000.0), RRE_OK);
    json_decref(ev.payload);
    assert_int_equal(rre_flow_finish(c, 1000.0 + 2 * RRE_FLOW_DEFAULT_STALL_AFTER), RRE_OK);
    assert_int_equal(rre_flow_issue_count(c), 1);
    assert_true(rre_flow_issue_get(c, 0)->time == 1000.0);
    rre_flow_checker_destroy(c);
}

static void test_time_beyond_the_year_9999_is_not_a_time(void **state)
{
    (void)state;
    /* A numeric timestamp far out of range is unreadable: the next member
     * gives the time, and the report writes it as ISO 8601. */
    rre_flow_checker *c = new_checker(0);
    const char *line = "{\"type\":\"TRAINING_COMPLETED\",\"payload\":{\"job_id\":\"j1\"},"
                       "\"timestamp\":1e300,\"created_at\":\"2026-01-05T11:00:00Z\"}";
    assert_int_equal(rre_flow_feed_json_line(c, line, strlen(line), 1, 0), RRE_OK);
    /* Given by the caller, such a time falls back to the event's timestamp. */
    rre_event ev =
        make_event(RRE_EV_TRAINING_FAILED, "{\"job_id\":\"j2\"}", 2, "2026-01-05T12:00:00Z");
    assert_int_equal(rre_flow_feed_at(c, &ev, 1e300), RRE_OK);
    json_decref(ev.payload);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_int_equal(rre_flow_issue_count(c), 2);
    assert_true(rre_flow_issue_get(c, 0)->time == 1767610800.0);
    assert_true(rre_flow_issue_get(c, 1)->time == 1767614400.0);
    json_t *r = NULL;
    assert_int_equal(rre_flow_report_json(c, &r), RRE_OK);
    json_t *is = json_array_get(json_object_get(r, "issues"), 0);
    assert_string_equal(json_string_value(json_object_get(is, "time")),
                        "2026-01-05T11:00:00.000000Z");
    json_decref(r);
    rre_flow_checker_destroy(c);
}

static void test_an_event_id_too_large_to_hold_is_reported_as_none(void **state)
{
    (void)state;
    /* An id that does not fit in 64 bits is no id: the issue says 0 (none),
     * not a made-up largest value, and --since does not skip the event. */
    rre_flow_checker *c = new_checker(0);
    const char *line = "{\"type\":\"TRAINING_COMPLETED\",\"payload\":{\"job_id\":\"j1\"},"
                       "\"id\":\"99999999999999999999999\"}";
    assert_int_equal(rre_flow_feed_json_line(c, line, strlen(line), 1, 5), RRE_OK);
    assert_int_equal(rre_flow_issue_count(c), 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, 0);
    rre_flow_checker_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* History, input, report, limits                                            */
/* ------------------------------------------------------------------------ */

static void test_partial_history_accepts_runs_under_way(void **state)
{
    (void)state;
    rre_flow_options partial = {.flags = RRE_FLOW_PARTIAL_HISTORY};
    check_file_expect("training_failed_without_started.jsonl", &partial, 0, NULL, 0);
    check_file_expect("pipeline_stage_skipped.jsonl", &partial, 0,
                      (const struct expect[]){{RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 3}}, 1);
    /* Once a run is known, its later errors are still reported. */
    const struct expect exp[] = {{RRE_FLOW_RULE_DUPLICATE_TERMINAL, "training", 4}};
    check_file_expect("tail_format.jsonl", &partial, 0, exp, 1);
}

static void test_bad_lines_are_reported_with_line_numbers_and_checking_goes_on(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("bad_lines.jsonl", NULL, 0);
    const struct expect exp[] = {
        {RRE_FLOW_RULE_BAD_LINE, "input", 2},
        {RRE_FLOW_RULE_BAD_LINE, "input", 3},
        {RRE_FLOW_RULE_BAD_LINE, "input", 4},
        {RRE_FLOW_RULE_BAD_LINE, "input", 5},
        {RRE_FLOW_RULE_DUPLICATE_TERMINAL, "recovery", 8},
    };
    assert_issues(c, exp, 5);
    assert_int_equal(rre_flow_issue_get(c, 0)->kind, RRE_FLOW_BAD_INPUT);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_type, RRE_EV_NONE);
    assert_non_null(strstr(rre_flow_issue_get(c, 0)->message, "line 2"));
    assert_non_null(strstr(rre_flow_issue_get(c, 1)->message, "RECOVERY_EXPLODED"));
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.bad_input, 4);
    assert_int_equal(s.events, 3);
    rre_flow_checker_destroy(c);
}

static void test_bad_line_returns_its_status(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    const char *lines[] = {"{\"event_type\":", "{\"event_type\":\"NOPE\",\"payload\":{}}", "[1]",
                           "{\"event_type\":\"WORK_QUEUED\",\"payload\":[]}", "{\"payload\":{}}"};
    const rre_status want[] = {RRE_EJSON, RRE_EUNKNOWN_TYPE, RRE_ENOT_OBJECT, RRE_ENOT_OBJECT,
                               RRE_EUNKNOWN_TYPE};
    for (size_t i = 0; i < 5; i++) {
        rre_status st = rre_flow_feed_json_line(c, lines[i], strlen(lines[i]), i + 1, 0);
        assert_string_equal(rre_status_name(st), rre_status_name(want[i]));
        assert_non_null(strstr(rre_last_error(), "line"));
    }
    assert_int_equal(rre_flow_feed_json_line(c, "   \r\n", 5, 6, 0), RRE_OK);
    assert_int_equal(rre_flow_issue_count(c), 5);
    rre_flow_checker_destroy(c);
}

static void test_deeply_nested_payload_is_a_bad_line(void **state)
{
    (void)state;
    char line[512];
    int n = snprintf(line, sizeof line, "{\"event_type\":\"WORK_QUEUED\",\"payload\":{\"a\":");
    for (int i = 0; i < RRE_PAYLOAD_MAX_DEPTH + 4; i++)
        line[n++] = '[';
    for (int i = 0; i < RRE_PAYLOAD_MAX_DEPTH + 4; i++)
        line[n++] = ']';
    n += snprintf(line + n, sizeof line - (size_t)n, "}}");
    rre_flow_checker *c = new_checker(0);
    assert_int_equal(rre_flow_feed_json_line(c, line, (size_t)n, 1, 0), RRE_ELIMIT);
    assert_int_equal(rre_flow_issue_get(c, 0)->rule, RRE_FLOW_RULE_BAD_LINE);
    rre_flow_checker_destroy(c);
}

static void test_hostile_bytes_are_made_safe_in_the_report(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    /* Invalid UTF-8 in a bad line (quoted by the parser's message) and an
     * escape sequence in a key value. */
    const char bad[] = "{\"event_type\":\"\xd7\x8d\xff\"\"}";
    rre_flow_feed_json_line(c, bad, sizeof bad - 1, 1, 0);
    const char *esc =
        "{\"event_type\":\"WORK_FAILED\",\"payload\":{\"work_id\":\"\\u001b[31mred\"}}";
    assert_int_equal(rre_flow_feed_json_line(c, esc, strlen(esc), 2, 0), RRE_OK);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_int_equal(rre_flow_issue_count(c), 2);
    assert_string_equal(rre_flow_issue_get(c, 1)->key, "?[31mred");
    assert_null(strchr(rre_flow_issue_get(c, 1)->message, 0x1b));
    json_t *r = NULL;
    assert_int_equal(rre_flow_report_json(c, &r), RRE_OK);
    char *text = json_dumps(r, JSON_COMPACT);
    assert_non_null(text);
    free(text);
    json_decref(r);
    rre_flow_checker_destroy(c);
}

static void test_tail_output_is_read(void **state)
{
    (void)state;
    /* Without --since the stream starts mid-pipeline: the training start has
     * no predecessor stage. Stage names, queue spellings, field aliases,
     * numeric created_at and string event ids are all understood. */
    rre_flow_checker *c = check_file("tail_format.jsonl", NULL, 0);
    const struct expect exp[] = {
        {RRE_FLOW_RULE_PIPELINE_ORDER, "pipeline", 1},
        {RRE_FLOW_RULE_DUPLICATE_TERMINAL, "training", 4},
    };
    assert_issues(c, exp, 2);
    const rre_flow_issue *is = rre_flow_issue_get(c, 1);
    assert_int_equal(is->event_id, 504);
    assert_true(is->time == 1767607380.0);
    assert_string_equal(is->key, "train-sq19-3p-1");
    is = rre_flow_issue_get(c, 0);
    assert_true(is->time == 1767607200.25);
    rre_flow_checker_destroy(c);
}

static void test_since_skips_earlier_events(void **state)
{
    (void)state;
    /* Events 503 and 504 only: the completion is accepted as a run under
     * way, the late failure is still a second terminal event. */
    rre_flow_options partial = {.flags = RRE_FLOW_PARTIAL_HISTORY};
    rre_flow_checker *c = check_file("tail_format.jsonl", &partial, 502);
    const struct expect exp[] = {{RRE_FLOW_RULE_DUPLICATE_TERMINAL, "training", 4}};
    assert_issues(c, exp, 1);
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.events, 2);
    rre_flow_checker_destroy(c);
}

static void test_report_json_lists_issues(void **state)
{
    (void)state;
    rre_flow_checker *c = check_file("training_failed_without_started.jsonl", NULL, 0);
    json_t *r = NULL;
    assert_int_equal(rre_flow_report_json(c, &r), RRE_OK);
    assert_false(json_is_true(json_object_get(r, "clean")));
    assert_int_equal(json_integer_value(json_object_get(r, "events")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "violations")), 1);
    json_t *issues = json_object_get(r, "issues");
    assert_int_equal(json_array_size(issues), 1);
    json_t *is = json_array_get(issues, 0);
    assert_string_equal(json_string_value(json_object_get(is, "kind")), "violation");
    assert_string_equal(json_string_value(json_object_get(is, "rule")), "missing_start");
    assert_string_equal(json_string_value(json_object_get(is, "flow")), "training");
    assert_string_equal(json_string_value(json_object_get(is, "event_type")), "TRAINING_FAILED");
    assert_int_equal(json_integer_value(json_object_get(is, "event_id")), 40);
    assert_int_equal(json_integer_value(json_object_get(is, "line")), 1);
    assert_string_equal(json_string_value(json_object_get(is, "time")),
                        "2026-01-05T11:00:00.000000Z");
    assert_non_null(json_string_value(json_object_get(is, "message")));
    json_decref(r);
    rre_flow_checker_destroy(c);

    c = check_file("clean_pipeline.jsonl", NULL, 0);
    assert_int_equal(rre_flow_report_json(c, &r), RRE_OK);
    assert_true(json_is_true(json_object_get(r, "clean")));
    assert_int_equal(json_array_size(json_object_get(r, "issues")), 0);
    json_decref(r);
    rre_flow_checker_destroy(c);
}

static void test_tracked_runs_are_bounded_by_max_runs(void **state)
{
    (void)state;
    rre_flow_options opt = {.max_runs = 8};
    rre_flow_checker *c = NULL;
    assert_int_equal(rre_flow_checker_create(&c, &opt), RRE_OK);
    char p[96];
    for (int i = 0; i < 1000; i++) {
        snprintf(p, sizeof p, "{\"work_id\":\"w%d\",\"work_type\":\"selfplay\"}", i);
        feed(c, RRE_EV_WORK_QUEUED, p, 0, NULL);
        feed(c, RRE_EV_WORK_CLAIMED, p, 0, NULL);
        feed(c, RRE_EV_WORK_STARTED, p, 0, NULL);
        feed(c, RRE_EV_WORK_COMPLETED, p, 0, NULL);
        rre_flow_stats s;
        rre_flow_get_stats(c, &s);
        assert_true(s.runs_tracked <= 8);
    }
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.evicted_active, 0);
    assert_issues(c, NULL, 0);
    /* Runs that never end push out the oldest active one. */
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof p, "{\"work_id\":\"open%d\",\"work_type\":\"selfplay\"}", i);
        feed(c, RRE_EV_WORK_QUEUED, p, 0, NULL);
    }
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.runs_tracked, 8);
    assert_int_equal(s.evicted_active, 12);
    rre_flow_checker_destroy(c);
}

static void test_ended_run_is_forgotten_when_its_key_starts_again(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    const char *p = "{\"source\":\"gpu-1\",\"sync_type\":\"data\"}";
    for (int i = 0; i < 100; i++) {
        feed(c, RRE_EV_DATA_SYNC_STARTED, p, 0, NULL);
        feed(c, RRE_EV_DATA_SYNC_COMPLETED, p, 0, NULL);
    }
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(s.runs_tracked, 1);
    /* The last run is still known: a second completion is reported. */
    feed(c, RRE_EV_DATA_SYNC_FAILED, p, 0, NULL);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_DUPLICATE_TERMINAL, "sync", 0}};
    assert_issues(c, exp, 1);
    rre_flow_checker_destroy(c);
}

static void test_issues_beyond_max_issues_are_counted_not_kept(void **state)
{
    (void)state;
    rre_flow_options opt = {.max_issues = 3};
    rre_flow_checker *c = NULL;
    assert_int_equal(rre_flow_checker_create(&c, &opt), RRE_OK);
    char p[96];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "{\"work_id\":\"w%d\",\"work_type\":\"selfplay\"}", i);
        feed(c, RRE_EV_WORK_FAILED, p, i + 1, NULL);
    }
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    assert_int_equal(rre_flow_issue_count(c), 3);
    assert_int_equal(s.violations, 10);
    assert_int_equal(s.issues_dropped, 7);
    assert_false(rre_flow_clean(c));
    rre_flow_checker_destroy(c);
}

static void test_finished_checker_is_closed(void **state)
{
    (void)state;
    rre_flow_checker *c = new_checker(0);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_OK);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_ECLOSED);
    rre_event ev = make_event(RRE_EV_WORK_QUEUED, "{\"work_id\":\"w\"}", 1, NULL);
    assert_int_equal(rre_flow_feed(c, &ev), RRE_ECLOSED);
    json_decref(ev.payload);
    assert_int_equal(rre_flow_feed_json_line(c, "{}", 2, 1, 0), RRE_ECLOSED);
    assert_true(rre_flow_clean(c));
    rre_flow_checker_destroy(c);
}

static void test_null_arguments_are_rejected(void **state)
{
    (void)state;
    assert_int_equal(rre_flow_checker_create(NULL, NULL), RRE_EINVAL);
    rre_flow_checker *c = new_checker(0);
    assert_int_equal(rre_flow_feed(c, NULL), RRE_EINVAL);
    rre_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RRE_EV_WORK_QUEUED;
    assert_int_equal(rre_flow_feed(c, &ev), RRE_EINVAL); /* no payload */
    assert_int_equal(rre_flow_feed(NULL, &ev), RRE_EINVAL);
    assert_int_equal(rre_flow_finish(NULL, 0.0), RRE_EINVAL);
    assert_int_equal(rre_flow_report_json(c, NULL), RRE_EINVAL);
    assert_int_equal(rre_flow_issue_count(NULL), 0);
    assert_null(rre_flow_issue_get(c, 0));
    assert_false(rre_flow_clean(NULL));
    rre_flow_checker_destroy(c);
    rre_flow_checker_destroy(NULL);
}

static void test_check_events_runs_a_whole_history(void **state)
{
    (void)state;
    rre_event a =
        make_event(RRE_EV_TRAINING_STARTED, "{\"config_key\":\"hex8_2p\",\"job_id\":\"j\"}", 1,
                   "2026-01-05T10:00:00Z");
    rre_event b =
        make_event(RRE_EV_TRAINING_PROGRESS, "{\"job_id\":\"j\"}", 2, "2026-01-05T10:01:00Z");
    rre_event d =
        make_event(RRE_EV_TRAINING_FAILED, "{\"job_id\":\"j\"}", 3, "2026-01-05T10:02:00Z");
    const rre_event *evs[] = {&a, NULL, &d, &b};
    rre_flow_options partial = {.flags = RRE_FLOW_PARTIAL_HISTORY};
    rre_flow_checker *c = NULL;
    assert_int_equal(rre__flow_check_events(evs, 4, &partial, 0.0, &c), RRE_OK);
    const struct expect exp[] = {{RRE_FLOW_RULE_AFTER_END, "training", 0}};
    assert_issues(c, exp, 1);
    assert_int_equal(rre_flow_issue_get(c, 0)->event_id, 2);
    assert_int_equal(rre_flow_finish(c, 0.0), RRE_ECLOSED);
    rre_flow_checker_destroy(c);
    json_decref(a.payload);
    json_decref(b.payload);
    json_decref(d.payload);
}

static void test_iso8601_times_are_parsed(void **state)
{
    (void)state;
    double t = 0;
    assert_true(rre__time_parse_iso8601("1970-01-01T00:00:10Z", &t));
    assert_true(t == 10.0);
    assert_true(rre__time_parse_iso8601("1970-01-01 00:00:10.5", &t));
    assert_true(t == 10.5);
    assert_true(rre__time_parse_iso8601("1970-01-01T01:00:10+01:00", &t));
    assert_true(t == 10.0);
    assert_true(rre__time_parse_iso8601("1970-01-01T00:00:10-0030", &t));
    assert_true(t == 1810.0);
    assert_false(rre__time_parse_iso8601("1970-01-01", &t));
    assert_false(rre__time_parse_iso8601("1970-13-01T00:00:00Z", &t));
    assert_false(rre__time_parse_iso8601("1970-01-01T00:00:00Zjunk", &t));
    assert_false(rre__time_parse_iso8601("", &t));
    char buf[RRE_TIMESTAMP_MAX];
    rre__time_format_iso8601(1767607200.25, buf);
    assert_string_equal(buf, "2026-01-05T10:00:00.250000Z");
}

static void test_names_cover_every_value(void **state)
{
    (void)state;
    assert_string_equal(rre_flow_issue_kind_name(RRE_FLOW_STALL), "stall");
    assert_string_equal(rre_flow_issue_kind_name((rre_flow_issue_kind)99), "unknown");
    assert_string_equal(rre_flow_rule_name(RRE_FLOW_RULE_PIPELINE_STALLED), "pipeline_stalled");
    assert_string_equal(rre_flow_rule_name((rre_flow_rule)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_pipeline_has_no_issues),
        cmocka_unit_test(test_completed_without_started_is_a_violation),
        cmocka_unit_test(test_failed_without_started_is_a_violation),
        cmocka_unit_test(test_second_terminal_event_is_a_violation),
        cmocka_unit_test(test_progress_after_end_is_a_violation),
        cmocka_unit_test(test_work_started_before_claimed_is_reported_once),
        cmocka_unit_test(test_repeated_step_is_out_of_order),
        cmocka_unit_test(test_step_after_a_later_step_is_out_of_order),
        cmocka_unit_test(test_concurrent_jobs_of_one_config_are_told_apart_by_job_id),
        cmocka_unit_test(test_second_start_without_job_id_is_a_restart),
        cmocka_unit_test(test_run_is_matched_by_config_key_when_job_id_is_missing),
        cmocka_unit_test(test_event_without_any_key_is_counted_as_unattributed),
        cmocka_unit_test(test_whole_chain_in_order_is_clean),
        cmocka_unit_test(test_chain_event_without_config_key_advances_waiting_configs),
        cmocka_unit_test(test_pipeline_stage_without_predecessor_is_a_violation),
        cmocka_unit_test(test_pipeline_stage_after_completed_cycle_is_a_violation),
        cmocka_unit_test(test_last_stage_twice_is_a_violation),
        cmocka_unit_test(test_run_not_ended_within_stall_after_is_a_stall),
        cmocka_unit_test(test_stall_threshold_is_configurable),
        cmocka_unit_test(test_stalls_are_measured_against_the_given_now),
        cmocka_unit_test(test_explicit_time_overrides_the_timestamp),
        cmocka_unit_test(test_time_beyond_the_year_9999_is_not_a_time),
        cmocka_unit_test(test_an_event_id_too_large_to_hold_is_reported_as_none),
        cmocka_unit_test(test_partial_history_accepts_runs_under_way),
        cmocka_unit_test(test_bad_lines_are_reported_with_line_numbers_and_checking_goes_on),
        cmocka_unit_test(test_bad_line_returns_its_status),
        cmocka_unit_test(test_deeply_nested_payload_is_a_bad_line),
        cmocka_unit_test(test_hostile_bytes_are_made_safe_in_the_report),
        cmocka_unit_test(test_tail_output_is_read),
        cmocka_unit_test(test_since_skips_earlier_events),
        cmocka_unit_test(test_report_json_lists_issues),
        cmocka_unit_test(test_tracked_runs_are_bounded_by_max_runs),
        cmocka_unit_test(test_ended_run_is_forgotten_when_its_key_starts_again),
        cmocka_unit_test(test_issues_beyond_max_issues_are_counted_not_kept),
        cmocka_unit_test(test_finished_checker_is_closed),
        cmocka_unit_test(test_null_arguments_are_rejected),
        cmocka_unit_test(test_check_events_runs_a_whole_history),
        cmocka_unit_test(test_iso8601_times_are_parsed),
        cmocka_unit_test(test_names_cover_every_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
