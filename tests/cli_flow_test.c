/*
 * cli_flow_test.c - black-box tests of `rre flow check`: its sources (a
 * JSON-lines file, standard input, the durable queue), its output formats
 * and its exit statuses (0 clean, 1 issues or unreadable input, 2 usage).
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOWS_DIR RRE_TEST_SOURCE_DIR "/tests/data/flows/"

static char *read_flow_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", FLOWS_DIR, name);
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    if (text == NULL)
        fail_msg("cannot read %s", path);
    return text;
}

static json_t *parse_json(const char *s)
{
    json_error_t err;
    json_t *v = json_loads(s, 0, &err);
    if (v == NULL)
        fail_msg("output is not one JSON object: %s (%s)", s, err.text);
    return v;
}

static void test_flow_help_exits_zero(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--stall-after"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "flow", "check", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--file"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--help", NULL);
    assert_non_null(strstr(r.out, "flow"));
    tu_result_free(&r);
}

static void test_clean_file_exits_zero(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "clean_pipeline.jsonl", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "46 events"));
    assert_non_null(strstr(r.out, "clean"));
    assert_null(strstr(r.out, "NOT CLEAN"));
    tu_result_free(&r);
}

static void test_violations_exit_one_and_are_listed(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "training_two_terminals.jsonl", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "violation training job_id=train-hex8-2p-1"));
    assert_non_null(strstr(r.out, "TRAINING_FAILED"));
    assert_non_null(strstr(r.out, "line 9"));
    assert_non_null(strstr(r.out, "1 violations"));
    assert_non_null(strstr(r.out, "NOT CLEAN"));
    tu_result_free(&r);
}

static void test_json_format_is_one_object_with_the_issues(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "check", "--format", "json", "--file",
                             FLOWS_DIR "work_started_before_claimed.jsonl", NULL);
    assert_int_equal(r.status, 1);
    const char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl, "\n"); /* one line */
    json_t *rep = parse_json(r.out);
    assert_false(json_is_true(json_object_get(rep, "clean")));
    json_t *issues = json_object_get(rep, "issues");
    assert_int_equal(json_array_size(issues), 1);
    json_t *is = json_array_get(issues, 0);
    assert_string_equal(json_string_value(json_object_get(is, "rule")), "out_of_order");
    assert_string_equal(json_string_value(json_object_get(is, "flow")), "work");
    assert_string_equal(json_string_value(json_object_get(is, "key")), "eval-sq19-2p-5");
    assert_int_equal(json_integer_value(json_object_get(is, "event_id")), 101);
    assert_int_equal(json_integer_value(json_object_get(is, "line")), 2);
    json_decref(rep);
    tu_result_free(&r);

    r = tu_run_cli(NULL, "flow", "check", "--format", "json", "--file",
                   FLOWS_DIR "clean_pipeline.jsonl", NULL);
    assert_int_equal(r.status, 0);
    rep = parse_json(r.out);
    assert_true(json_is_true(json_object_get(rep, "clean")));
    assert_int_equal(json_integer_value(json_object_get(rep, "events")), 46);
    json_decref(rep);
    tu_result_free(&r);
}

static void test_dash_reads_standard_input(void **state)
{
    (void)state;
    char *text = read_flow_file("training_failed_without_started.jsonl");
    tu_result r = tu_run_cli(text, "flow", "check", "--file", "-", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "TRAINING_FAILED without TRAINING_STARTED"));
    tu_result_free(&r);
    free(text);

    text = read_flow_file("concurrent_jobs.jsonl");
    r = tu_run_cli(text, "flow", "check", "--file", "-", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    free(text);
}

static void test_bad_lines_are_listed_with_line_numbers(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "bad_lines.jsonl", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "line 2: malformed JSON"));
    assert_non_null(strstr(r.out, "line 3: unknown event type"));
    assert_non_null(strstr(r.out, "line 4: not a JSON object"));
    assert_non_null(strstr(r.out, "line 5: payload is not a JSON object"));
    /* Checking went on after the bad lines. */
    assert_non_null(strstr(r.out, "RECOVERY_COMPLETED"));
    assert_non_null(strstr(r.out, "4 bad lines"));
    tu_result_free(&r);
}

static void test_since_checks_only_later_events(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "tail_format.jsonl", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "2 violations"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "flow", "check", "--since", "502", "--file", FLOWS_DIR "tail_format.jsonl",
                   NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "2 events, 1 violations"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "flow", "check", "--since", "504", "--file", FLOWS_DIR "tail_format.jsonl",
                   NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "0 events"));
    tu_result_free(&r);
}

static void test_partial_accepts_runs_under_way(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "check", "--partial", "--file",
                             FLOWS_DIR "training_failed_without_started.jsonl", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
}

static void test_stall_after_takes_a_duration(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "stalled_training.jsonl", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "stall training job_id=train-hex8-2p-1"));
    assert_non_null(strstr(r.out, "stall pipeline config_key=hex8_2p"));
    tu_result_free(&r);
    const char *quiet[] = {"3h", "1d", "7200s", "150m", "0"};
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        r = tu_run_cli(NULL, "flow", "check", "--stall-after", quiet[i], "--file",
                       FLOWS_DIR "stalled_training.jsonl", NULL);
        assert_int_equal(r.status, 0);
        tu_result_free(&r);
    }
    r = tu_run_cli(NULL, "flow", "check", "--stall-after", "30s", "--file",
                   FLOWS_DIR "stalled_training.jsonl", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
}

static void test_usage_errors_exit_two(void **state)
{
    (void)state;
    const char *file = FLOWS_DIR "clean_pipeline.jsonl";
    const char *cases[][6] = {
        {"flow", NULL},
        {"flow", "verify", NULL},
        {"flow", "check", "--stall-after", "5x", "--file", file},
        {"flow", "check", "--stall-after", "-1m", "--file", file},
        {"flow", "check", "--format", "xml", "--file", file},
        {"flow", "check", "--since", "abc", "--file", file},
        {"flow", "check", "--db", "x.db", "--file", file},
        {"flow", "check", "--file", file, "--bogus", NULL},
        {"flow", "check", "--file", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[8] = {(char *)"rre"};
        for (size_t k = 0; k < 6 && cases[i][k] != NULL; k++)
            argv[k + 1] = (char *)cases[i][k];
        tu_result r = tu_run_cliv(NULL, argv);
        if (r.status != 2)
            print_message("case %zu: status %d, stderr %s\n", i, r.status, r.err);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "rre: "));
        tu_result_free(&r);
    }
}

static void test_missing_file_exits_one(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "flow", "check", "--file", FLOWS_DIR "no_such_file.jsonl", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no_such_file.jsonl"));
    tu_result_free(&r);
}

/* Publishes each event of a flows file into the queue at `path`. */
static void publish_file(const char *path, const char *name)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.maintenance_interval_ms = -1;
    o.dedup_window_seconds = -1.0; /* the files repeat some payloads on purpose */
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    char *text = read_flow_file(name);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *obj = json_loads(line, 0, NULL);
        assert_non_null(obj);
        rre_event_type type;
        assert_int_equal(
            rre_event_lookup(json_string_value(json_object_get(obj, "event_type")), &type), RRE_OK);
        rre_queue_publish_result res;
        assert_int_equal(rre_queue_publish(q, type, json_object_get(obj, "payload"), "test",
                                           json_string_value(json_object_get(obj, "timestamp")),
                                           NULL, &res),
                         RRE_OK);
        assert_false(res.duplicate);
        json_decref(obj);
    }
    free(text);
    rre_queue_destroy(q);
}

static void test_db_source_reads_the_queue(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    publish_file(db, "training_two_terminals.jsonl");

    tu_result r = tu_run_cli(NULL, "flow", "check", "--db", db, "--stall-after", "0", "--format",
                             "json", NULL);
    assert_int_equal(r.status, 1);
    json_t *rep = parse_json(r.out);
    assert_int_equal(json_integer_value(json_object_get(rep, "events")), 9);
    json_t *is = json_array_get(json_object_get(rep, "issues"), 0);
    assert_string_equal(json_string_value(json_object_get(is, "rule")), "duplicate_terminal");
    assert_int_equal(json_integer_value(json_object_get(is, "event_id")), 9);
    json_decref(rep);
    tu_result_free(&r);

    /* The global --db works too; --since leaves out the earlier events. */
    r = tu_run_cli(NULL, "--db", db, "flow", "check", "--since", "8", "--stall-after", "0", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "1 events"));
    tu_result_free(&r);

    /* Checked against the current time, the unfinished pipeline stalls. */
    r = tu_run_cli(NULL, "flow", "check", "--db", db, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "stall pipeline config_key=hex8_2p"));
    tu_result_free(&r);

    tu_rmtree(dir);
    free(dir);
}

static void test_tail_output_can_be_checked(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    publish_file(db, "clean_pipeline.jsonl");
    publish_file(db, "training_failed_without_started.jsonl");

    const char *formats[] = {"json", "cloudevents"};
    for (size_t i = 0; i < 2; i++) {
        tu_result tail = tu_run_cli(NULL, "--db", db, "tail", "--format", formats[i], NULL);
        assert_int_equal(tail.status, 0);
        tu_result r =
            tu_run_cli(tail.out, "flow", "check", "--file", "-", "--format", "json", NULL);
        assert_int_equal(r.status, 1);
        json_t *rep = parse_json(r.out);
        assert_int_equal(json_integer_value(json_object_get(rep, "events")), 47);
        assert_int_equal(json_integer_value(json_object_get(rep, "bad_input")), 0);
        json_t *issues = json_object_get(rep, "issues");
        assert_int_equal(json_array_size(issues), 1);
        json_t *is = json_array_get(issues, 0);
        assert_string_equal(json_string_value(json_object_get(is, "rule")), "missing_start");
        assert_int_equal(json_integer_value(json_object_get(is, "event_id")), 47);
        assert_int_equal(json_integer_value(json_object_get(is, "line")), 47);
        json_decref(rep);
        tu_result_free(&r);
        tu_result_free(&tail);
    }
    tu_rmtree(dir);
    free(dir);
}

static void test_missing_db_exits_one(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/absent.db", dir);
    tu_result r = tu_run_cli(NULL, "flow", "check", "--db", db, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "absent.db"));
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_empty_db_path_is_usage_error_not_the_default_database(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    setenv("RINGRIFT_COORDINATION_DIR", dir, 1);
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = db;
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK); /* the default database exists */
    rre_queue_destroy(q);
    tu_result r = tu_run_cli(NULL, "flow", "check", "--db", "", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--db"));
    tu_result_free(&r);
    unsetenv("RINGRIFT_COORDINATION_DIR");
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_help_exits_zero),
        cmocka_unit_test(test_clean_file_exits_zero),
        cmocka_unit_test(test_violations_exit_one_and_are_listed),
        cmocka_unit_test(test_json_format_is_one_object_with_the_issues),
        cmocka_unit_test(test_dash_reads_standard_input),
        cmocka_unit_test(test_bad_lines_are_listed_with_line_numbers),
        cmocka_unit_test(test_since_checks_only_later_events),
        cmocka_unit_test(test_partial_accepts_runs_under_way),
        cmocka_unit_test(test_stall_after_takes_a_duration),
        cmocka_unit_test(test_usage_errors_exit_two),
        cmocka_unit_test(test_missing_file_exits_one),
        cmocka_unit_test(test_db_source_reads_the_queue),
        cmocka_unit_test(test_tail_output_can_be_checked),
        cmocka_unit_test(test_missing_db_exits_one),
        cmocka_unit_test(test_empty_db_path_is_usage_error_not_the_default_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
