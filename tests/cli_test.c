/*
 * cli_test.c - black-box tests of the rre command line: the foundation
 * commands (help, version, catalog, validate, config-key) and their exit
 * statuses (0 success, 1 failure, 2 wrong usage).
 */
#include "testutil.h"

#include <rre/rre.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

static json_t *parse_line(const char *s)
{
    json_error_t err;
    json_t *v = json_loads(s, JSON_DISABLE_EOF_CHECK, &err);
    if (v == NULL)
        fail_msg("output is not JSON: %s (%s)", s, err.text);
    return v;
}

static void test_help_lists_commands_and_exits_zero(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "catalog"));
    assert_non_null(strstr(r.out, "validate"));
    assert_non_null(strstr(r.out, "config-key"));
    tu_result_free(&r);
}

static void test_version_prints_library_version(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "--version", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, RRE_VERSION_STRING));
    tu_result_free(&r);
}

static void test_no_command_is_usage_error(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

static void test_unknown_command_is_usage_error_naming_it(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "frobnicate", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "frobnicate"));
    tu_result_free(&r);
}

static void test_unknown_global_option_is_usage_error(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "--bogus", "catalog", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--bogus"));
    tu_result_free(&r);
}

static void test_catalog_lists_every_type(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), RRE_EVENT_TYPE_COUNT);
    assert_non_null(strstr(r.out, "TRAINING_COMPLETED"));
    tu_result_free(&r);
}

static void test_catalog_json_is_one_object_per_line_with_fields(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), RRE_EVENT_TYPE_COUNT);
    size_t seen = 0;
    for (char *line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *obj = parse_line(line);
        assert_true(json_is_object(obj));
        assert_true(json_is_string(json_object_get(obj, "name")));
        assert_true(json_is_string(json_object_get(obj, "value")));
        assert_true(json_is_string(json_object_get(obj, "category")));
        assert_true(json_is_string(json_object_get(obj, "description")));
        assert_true(json_is_string(json_object_get(obj, "queue_spelling")));
        assert_true(json_is_array(json_object_get(obj, "fields")));
        json_decref(obj);
        seen++;
    }
    assert_int_equal(seen, RRE_EVENT_TYPE_COUNT);
    tu_result_free(&r);
}

static void test_catalog_category_filter_keeps_only_that_category(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--category", "work_queue", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    assert_true(count_lines(r.out) > 0);
    for (char *line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *obj = parse_line(line);
        assert_string_equal(json_string_value(json_object_get(obj, "category")), "work_queue");
        json_decref(obj);
    }
    tu_result_free(&r);
}

static void test_catalog_search_finds_types_by_name_and_description(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--search", "ELO", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    assert_true(count_lines(r.out) >= 3);
    for (char *line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *obj = parse_line(line);
        const char *name = json_string_value(json_object_get(obj, "name"));
        const char *desc = json_string_value(json_object_get(obj, "description"));
        assert_true(strcasestr(name, "elo") != NULL || strcasestr(desc, "elo") != NULL);
        json_decref(obj);
    }
    tu_result_free(&r);
    /* By description only: "rebalance" is in no name. */
    r = tu_run_cli(NULL, "catalog", "--search", "rebalance", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ELO_SIGNIFICANT_CHANGE"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "--search", "no-such-word-anywhere", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "ELO_UPDATED", "--search", "elo", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

static void test_catalog_unknown_category_fails(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--category", "nonsense", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "nonsense"));
    tu_result_free(&r);
}

static void test_catalog_type_accepts_any_spelling(void **state)
{
    (void)state;
    const char *spellings[] = {"TRAINING_COMPLETED", "training_completed", "Training_Completed",
                               "TRAINING_COMPLETE"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        tu_result r = tu_run_cli(NULL, "catalog", spellings[i], "--format", "json", NULL);
        assert_int_equal(r.status, 0);
        json_t *obj = parse_line(r.out);
        assert_string_equal(json_string_value(json_object_get(obj, "name")), "TRAINING_COMPLETED");
        json_decref(obj);
        tu_result_free(&r);
    }
}

static void test_catalog_unknown_type_fails_with_exit_one(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "NOT_A_TYPE", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "NOT_A_TYPE"));
    tu_result_free(&r);
}

static void test_catalog_type_json_schema_lists_required_fields(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "catalog", "TRAINING_COMPLETED", "--format", "json-schema", NULL);
    assert_int_equal(r.status, 0);
    json_t *obj = parse_line(r.out);
    json_t *required = json_object_get(obj, "required");
    assert_true(json_is_array(required));
    assert_int_equal(json_array_size(required), 7);
    assert_string_equal(json_string_value(json_object_get(obj, "type")), "object");
    json_decref(obj);
    tu_result_free(&r);
}

static void test_catalog_unknown_format_is_usage_error(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--format", "yaml", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "yaml"));
    tu_result_free(&r);
}

static void test_catalog_markdown_mentions_every_category(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "catalog", "--format", "markdown", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "work_queue"));
    assert_non_null(strstr(r.out, "MODEL_DISTRIBUTION_COMPLETE"));
    tu_result_free(&r);
}

static const char *valid_training =
    "{\"config_key\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
    "\"model_path\":\"/models/m.pth\",\"epochs\":50,\"final_loss\":0.04,"
    "\"samples_trained\":85000}";

static void test_validate_accepts_valid_payload(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload", valid_training, NULL);
    assert_int_equal(r.status, 0);
    json_t *obj = parse_line(r.out);
    assert_true(json_is_true(json_object_get(obj, "valid")));
    json_decref(obj);
    tu_result_free(&r);
}

static void test_validate_reads_payload_from_stdin(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(valid_training, "validate", "training_completed", "--payload", "-", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
}

static void test_validate_reports_each_problem_on_its_own_line(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload",
                             "{\"config_key\":\"hex8_2p\",\"epochs\":\"many\"}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "epochs"));
    assert_non_null(strstr(r.err, "model_path"));
    assert_non_null(strstr(r.err, "final_loss"));
    /* board_type, num_players, model_path, final_loss, samples_trained missing; epochs wrong */
    assert_true(count_lines(r.err) >= 6);
    tu_result_free(&r);
}

static void test_validate_normalises_aliases_first(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload",
                             "{\"config\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
                             "\"checkpoint_path\":\"/m.pth\",\"epochs\":5,\"loss\":0.1,"
                             "\"samples\":10}",
                             NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
}

static void test_validate_strict_fails_on_unknown_fields(void **state)
{
    (void)state;
    char payload[1024];
    snprintf(payload, sizeof payload, "%.*s,\"surprise\":1}", (int)strlen(valid_training) - 1,
             valid_training);
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload", payload, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "surprise"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload", payload, "--strict", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
}

static void test_validate_rejects_malformed_json_clearly(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload", "{\"a\":", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "malformed JSON"));
    tu_result_free(&r);
}

static void test_validate_rejects_non_object_payload(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETED", "--payload", "[1,2]", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "not a JSON object"));
    tu_result_free(&r);
}

static void test_validate_rejects_invalid_utf8(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli("{\"config_key\":\"\xff\xfe\"}", "validate", "TRAINING_COMPLETED", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
}

static void test_validate_unknown_type_fails(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "NOPE", "--payload", "{}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown event type"));
    tu_result_free(&r);
}

static void test_validate_without_type_is_usage_error(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

static void test_config_key_parse_prints_json(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "config-key", "parse", "hex8_2p", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"board_type\":\"hex8\",\"num_players\":2}\n");
    tu_result_free(&r);
}

static void test_config_key_make_prints_key(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "config-key", "make", "square19", "4", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "square19_4p\n");
    tu_result_free(&r);
}

static void test_config_key_invalid_fails_with_reason(void **state)
{
    (void)state;
    const char *bad[] = {"hex8_5p", "hex8_02p", "hex8_+2p", "hex 8_2p", "_2p", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_result r = tu_run_cli(NULL, "config-key", "parse", bad[i], NULL);
        assert_int_equal(r.status, 1);
        assert_true(strlen(r.err) > 0);
        tu_result_free(&r);
    }
    const char *counts[] = {"x", " 2", "+2", "0x2", "2 ", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        tu_result c = tu_run_cli(NULL, "config-key", "make", "hex8", counts[i], NULL);
        if (c.status != 1)
            fail_msg("player count '%s' exited %d", counts[i], c.status);
        assert_non_null(strstr(c.err, "number of players"));
        tu_result_free(&c);
    }
    tu_result r = tu_run_cli(NULL, "config-key", "make", "octagon", "2", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
}

static void test_config_key_wrong_arguments_is_usage_error(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "config-key", "parse", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "config-key", "explode", "x", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

static void test_output_that_cannot_be_written_exits_one(void **state)
{
    (void)state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    char *cases[][6] = {
        {"rre", "--version", NULL},
        {"rre", "--help", NULL},
        {"rre", "catalog", NULL},
        {"rre", "catalog", "TRAINING_COMPLETED", "--format", "json", NULL},
        {"rre", "config-key", "parse", "hex8_2p", NULL},
        {"rre", "validate", "HOST_ONLINE", "--payload", "{}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = tu_run_cli_full_output(cases[i]);
        if (status != 1)
            print_message("rre %s: status %d\n", cases[i][1], status);
        assert_int_equal(status, 1);
    }
}

static void
test_validate_unreadable_standard_input_is_a_read_error_not_an_empty_payload(void **state)
{
    (void)state;
    /* Standard input is a directory: reading it fails (EISDIR). */
    int err[2];
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int dir = open("/", O_RDONLY | O_DIRECTORY);
        if (dir < 0)
            _exit(99);
        dup2(dir, 0);
        dup2(err[1], 2);
        close(err[0]);
        execl(RRE_TEST_CLI, "rre", "validate", "HOST_ONLINE", (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    char text[4096];
    size_t len = 0;
    ssize_t got;
    while (len + 1 < sizeof text && (got = read(err[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)got;
    text[len] = '\0';
    close(err[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(text, "cannot read the payload from standard input"));
    assert_null(strstr(text, "empty"));
}

static void test_validate_payload_larger_than_the_limit_says_so(void **state)
{
    (void)state;
    size_t n = RRE_PAYLOAD_MAX_BYTES + 16;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    tu_result r = tu_run_cli(big, "validate", "HOST_ONLINE", NULL);
    free(big);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "larger than"));
    tu_result_free(&r);
}

static void test_db_option_works_after_the_command_in_both_forms(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600], eq[700];
    snprintf(db, sizeof db, "%s/events.db", dir);
    snprintf(eq, sizeof eq, "--db=%s", db);
    tu_result r =
        tu_run_cli(NULL, "publish", "ELO_UPDATED", "--db", db, "--payload", "{\"a\":1}", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "tail", "--format", "text", eq, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ELO_UPDATED"));
    tu_result_free(&r);
    /* Given twice, wherever: wrong usage. */
    r = tu_run_cli(NULL, "--db", db, "tail", "--db", db, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--db is given twice"));
    tu_result_free(&r);
    /* After "--" it is not an option. */
    r = tu_run_cli(NULL, "--db", db, "stats", "--", "--db", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unexpected argument"));
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_rre_db_names_the_queue_when_no_db_option_is_given(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600], other[600];
    snprintf(db, sizeof db, "%s/env.db", dir);
    snprintf(other, sizeof other, "%s/other.db", dir);
    setenv("RRE_DB", db, 1);
    tu_result r = tu_run_cli(NULL, "publish", "ELO_UPDATED", "--payload", "{\"env\":1}", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "env.db"));
    tu_result_free(&r);
    /* --db wins over it. */
    r = tu_run_cli(NULL, "publish", "ELO_UPDATED", "--db", other, "--payload", "{\"o\":1}", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    unsetenv("RRE_DB");
    r = tu_run_cli(NULL, "--db", db, "stats", "--format", "json", NULL);
    assert_non_null(strstr(r.out, "\"events\":1,"));
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_help_command_and_short_version(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "help", "tail", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: rre [--db PATH] tail"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "commands:"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "help", "tial", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown command 'tial'"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "-V", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "rre "));
    tu_result_free(&r);
}

static void test_unknown_commands_and_categories_get_a_suggestion(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "tial", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown command 'tial' (did you mean tail?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "help", "dql", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "(did you mean dlq?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "frobnicate", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown command 'frobnicate' (see rre --help)"));
    tu_result_free(&r);
    /* Control characters in what was typed are not echoed raw. */
    r = tu_run_cli(NULL, "x\x1b[2J", NULL);
    assert_int_equal(r.status, 2);
    assert_null(strchr(r.err, '\x1b'));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "--category", "sycn", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown event category 'sycn' (did you mean sync?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "--category", "training", NULL);
    assert_non_null(strstr(r.err, "(did you mean training_pipeline?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "--category", "zzzzzzzz", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "(categories: sync, "));
    tu_result_free(&r);
}

static void test_options_take_equals_short_forms_and_tail_starting_points(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600];
    snprintf(db, sizeof db, "%s/events.db", dir);
    for (int i = 1; i <= 3; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        tu_result r =
            tu_run_cli(NULL, "--db", db, "publish", "ELO_UPDATED", "--payload", payload, NULL);
        assert_int_equal(r.status, 0);
        tu_result_free(&r);
    }
    /* --name=value everywhere, -n for --limit */
    tu_result r = tu_run_cli(NULL, "--db", db, "tail", "--format=text", "-n", "1", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"n\":1,"));
    assert_null(strstr(r.out, "{\"n\":2,"));
    tu_result_free(&r);
    /* the last 2, and the end (nothing until new events come) */
    r = tu_run_cli(NULL, "--db", db, "tail", "--last=2", "--format", "text", NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "{\"n\":1,"));
    assert_non_null(strstr(r.out, "{\"n\":2,"));
    assert_non_null(strstr(r.out, "{\"n\":3,"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--from-end", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--from-end", "--subscriber", "x", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--last", "1", "--since", "1", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    /* purge --older-than 0 would delete everything: refused, nothing deleted */
    r = tu_run_cli(NULL, "--db", db, "purge", "--older-than=0", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "would delete every event"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format=json", NULL);
    assert_non_null(strstr(r.out, "\"events\":3,"));
    tu_result_free(&r);
    /* --dry-run says what would go and deletes nothing; --force means it. */
    r = tu_run_cli(NULL, "--db", db, "purge", "--older-than=0", "--dry-run", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"dry_run\":true,\"events\":3,"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format=json", NULL);
    assert_non_null(strstr(r.out, "\"events\":3,"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "purge", "--older-than=0", "--force", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"events\":3,"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format=json", NULL);
    assert_non_null(strstr(r.out, "\"events\":0,"));
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

/* Every command parses its options with the same getopt_long rules. */
static void test_options_parse_alike_in_every_command(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600];
    snprintf(db, sizeof db, "%s/events.db", dir);
    tu_result r =
        tu_run_cli(NULL, "--db", db, "publish", "ELO_UPDATED", "--payload", "{\"n\":1}", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    /* A single-valued option given twice is wrong usage, in any form. */
    const char *twice[][6] = {
        {"tail", "--limit", "1", "--limit=2", NULL},
        {"stats", "--format", "json", "--format", "text", NULL},
        {"purge", "--older-than", "1h", "--older-than", "2h", NULL},
        {"publish", "ELO_UPDATED", "--source", "a", "--source=b", NULL},
        {"catalog", "--format", "json", "--format=text", NULL},
        {"bridge", "--nats", "nats://x", "--nats", "nats://y", NULL},
        {"top", "--interval", "1", "--interval", "2", NULL},
        {"dlq", "list", "--format", "json", "--format=text", NULL},
    };
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        r = tu_run_cli(NULL, "--db", db, twice[i][0], twice[i][1], twice[i][2], twice[i][3],
                       twice[i][4], twice[i][5], NULL);
        if (r.status != 2 || strstr(r.err, "given twice") == NULL)
            fail_msg("rre %s: status %d, stderr '%s'", twice[i][0], r.status, r.err);
        tu_result_free(&r);
    }
    /* Unknown options are named, with the closest known one. */
    r = tu_run_cli(NULL, "--db", db, "tail", "--folow", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown option '--folow' (did you mean --follow?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--fromat=json", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "did you mean --format?"));
    tu_result_free(&r);
    /* A flag takes no value; a valued option needs one. */
    r = tu_run_cli(NULL, "--db", db, "tail", "--no-ack=yes", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--no-ack takes no value"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--format", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--format needs a value"));
    tu_result_free(&r);
    /* A unique prefix stands for the option; an ambiguous one is refused. */
    r = tu_run_cli(NULL, "--db", db, "tail", "--form", "text", "--lim=1", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ELO_UPDATED"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--l", "1", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "ambiguous"));
    tu_result_free(&r);
    /* Short options take their value attached, and combine. */
    r = tu_run_cli(NULL, "--db", db, "tail", "-n1", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"n\":1"));
    tu_result_free(&r);
    /* Options may follow operands; "--" ends the options. */
    r = tu_run_cli(NULL, "validate", "ELO_UPDATED", "--payload", "{}", "--strict", NULL);
    assert_int_equal(r.status, 1); /* parsed: the payload lacks required fields */
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--", "--limit", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unexpected argument '--limit'"));
    tu_result_free(&r);
    /* ... also with POSIXLY_CORRECT set, which would stop glibc at the
     * first operand. */
    setenv("POSIXLY_CORRECT", "1", 1);
    r = tu_run_cli(NULL, "validate", "ELO_UPDATED", "--payload", "{}", "--strict", NULL);
    unsetenv("POSIXLY_CORRECT");
    assert_int_equal(r.status, 1);
    assert_null(strstr(r.err, "unexpected argument"));
    tu_result_free(&r);
    /* An ambiguous prefix with a value is called ambiguous; a short option
     * unknown inside a group is named itself. */
    r = tu_run_cli(NULL, "--db", db, "tail", "--f=1", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "ambiguous"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "tail", "--follow", "-xf", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown option '-x'"));
    tu_result_free(&r);
    /* config-key's words are operands, a negative number too. */
    r = tu_run_cli(NULL, "config-key", "make", "hex8", "-1", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "outside 2..4"));
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_a_misspelt_type_gets_a_suggestion(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "validate", "TRAINING_COMPLETD", "--payload", "{}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown event type 'TRAINING_COMPLETD' (did you mean "
                                  "TRAINING_COMPLETED?)"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "model_promotd", NULL);
    assert_non_null(strstr(r.err, "did you mean MODEL_PROMOTED?"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "catalog", "XYZZY", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown event type 'XYZZY' (rre catalog lists them)"));
    tu_result_free(&r);
}

static void test_publish_lines_stores_good_lines_and_reports_bad_ones_in_place(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600];
    snprintf(db, sizeof db, "%s/events.db", dir);
    tu_result r = tu_run_cli("{\"type\":\"ELO_UPDATED\",\"payload\":{\"a\":1}}\n"
                             "\n"
                             "{\"type\":\"training_started\",\"payload\":{\"config_key\":"
                             "\"hex8_2p\"},\"source\":\"s2\"}\r\n"
                             "{\"type\":\"ELO_UPDATED\",\"payload\":{\"a\":1}}\n",
                             "--db", db, "publish", "--lines", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"event_id\":1,\"duplicate\":false,"));
    assert_non_null(strstr(r.out, "{\"event_id\":2,\"duplicate\":false,"));
    assert_non_null(strstr(r.out, "{\"event_id\":1,\"duplicate\":true,"));
    assert_non_null(strstr(r.out, "\"line\":4}"));
    tu_result_free(&r);
    /* A bad line (not JSON, no payload, an unknown type) is left out and
     * reported in its place; the lines around it are stored. */
    r = tu_run_cli("{\"type\":\"ELO_UPDATED\",\"payload\":{\"a\":7}}\n"
                   "not json\n"
                   "{\"type\":\"ELO_UPDATED\"}\n"
                   "{\"type\":\"ELO_UPDATDE\",\"payload\":{}}\n"
                   "{\"type\":\"ELO_UPDATED\",\"payload\":{\"a\":8}}\n",
                   "--db", db, "publish", "--lines", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "line 2: malformed JSON"));
    assert_non_null(strstr(r.err, "line 3: expected"));
    assert_non_null(strstr(r.err, "line 4: unknown event type 'ELO_UPDATDE' (did you mean"));
    const char *l1 = strstr(r.out, "\"line\":1}");
    const char *l2 = strstr(r.out, "{\"line\":2,\"error\":\"malformed JSON");
    const char *l3 = strstr(r.out, "{\"line\":3,\"error\":");
    const char *l4 = strstr(r.out, "{\"line\":4,\"error\":");
    const char *l5 = strstr(r.out, "\"line\":5}");
    assert_true(l1 != NULL && l2 != NULL && l3 != NULL && l4 != NULL && l5 != NULL);
    assert_true(l1 < l2 && l2 < l3 && l3 < l4 && l4 < l5); /* input order */
    tu_result_free(&r);
    /* --strict refuses a payload with problems, alone. */
    r = tu_run_cli("{\"type\":\"ELO_UPDATED\",\"payload\":{\"a\":9}}\n", "--db", db, "publish",
                   "--lines", "--strict", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "{\"line\":1,\"error\":\"does not match the schema"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format", "json", NULL);
    assert_non_null(strstr(r.out, "\"events\":4,"));
    tu_result_free(&r);
    /* With a TYPE, each line is a payload; batches of 2 store all 5. */
    r = tu_run_cli("{\"b\":1}\n{\"b\":2}\n{\"b\":3}\n[4]\n{\"b\":5}\n{\"b\":6}\n", "--db", db,
                   "publish", "ELO_UPDATED", "--lines", "--batch", "2", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "{\"line\":4,\"error\":\"payload is not a JSON object"));
    assert_non_null(strstr(r.out, "\"line\":6}"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format", "json", NULL);
    assert_non_null(strstr(r.out, "\"events\":9,"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "publish", "--lines", "--payload", "{}", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "publish", "ELO_UPDATED", "--batch", "5", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "publish", "--lines", "--batch", "0", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

/* Reads one line from `fd` within `ms`; false on timeout or end. */
static bool read_line_within(int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) != 1)
            return false;
        ssize_t got = read(fd, buf + n, 1);
        if (got <= 0)
            return false;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return true;
}

/* A producer that writes a line now and then: each event is stored and its
 * result printed while standard input stays open. */
static void test_publish_lines_stores_each_line_of_a_slow_producer_at_once(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[600];
    snprintf(db, sizeof db, "%s/events.db", dir);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        char *argv[] = {"rre", "--db", db, "publish", "ELO_UPDATED", "--lines", NULL};
        execv(RRE_TEST_CLI, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[512];
    for (int i = 1; i <= 3; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "{\"slow\":%d}\n", i);
        assert_int_equal(write(in[1], payload, (size_t)len), len);
        /* The result comes although the input is still open. */
        assert_true(read_line_within(out[0], line, sizeof line, 20000));
        char want[32];
        snprintf(want, sizeof want, "\"line\":%d}", i);
        assert_non_null(strstr(line, want));
        assert_non_null(strstr(line, "\"duplicate\":false"));
    }
    close(in[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(out[0]);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_commands_and_exits_zero),
        cmocka_unit_test(test_db_option_works_after_the_command_in_both_forms),
        cmocka_unit_test(test_rre_db_names_the_queue_when_no_db_option_is_given),
        cmocka_unit_test(test_help_command_and_short_version),
        cmocka_unit_test(test_unknown_commands_and_categories_get_a_suggestion),
        cmocka_unit_test(test_options_take_equals_short_forms_and_tail_starting_points),
        cmocka_unit_test(test_options_parse_alike_in_every_command),
        cmocka_unit_test(test_a_misspelt_type_gets_a_suggestion),
        cmocka_unit_test(test_publish_lines_stores_good_lines_and_reports_bad_ones_in_place),
        cmocka_unit_test(test_publish_lines_stores_each_line_of_a_slow_producer_at_once),
        cmocka_unit_test(test_version_prints_library_version),
        cmocka_unit_test(test_no_command_is_usage_error),
        cmocka_unit_test(test_unknown_command_is_usage_error_naming_it),
        cmocka_unit_test(test_unknown_global_option_is_usage_error),
        cmocka_unit_test(test_output_that_cannot_be_written_exits_one),
        cmocka_unit_test(
            test_validate_unreadable_standard_input_is_a_read_error_not_an_empty_payload),
        cmocka_unit_test(test_validate_payload_larger_than_the_limit_says_so),
        cmocka_unit_test(test_catalog_lists_every_type),
        cmocka_unit_test(test_catalog_json_is_one_object_per_line_with_fields),
        cmocka_unit_test(test_catalog_category_filter_keeps_only_that_category),
        cmocka_unit_test(test_catalog_search_finds_types_by_name_and_description),
        cmocka_unit_test(test_catalog_unknown_category_fails),
        cmocka_unit_test(test_catalog_type_accepts_any_spelling),
        cmocka_unit_test(test_catalog_unknown_type_fails_with_exit_one),
        cmocka_unit_test(test_catalog_type_json_schema_lists_required_fields),
        cmocka_unit_test(test_catalog_unknown_format_is_usage_error),
        cmocka_unit_test(test_catalog_markdown_mentions_every_category),
        cmocka_unit_test(test_validate_accepts_valid_payload),
        cmocka_unit_test(test_validate_reads_payload_from_stdin),
        cmocka_unit_test(test_validate_reports_each_problem_on_its_own_line),
        cmocka_unit_test(test_validate_normalises_aliases_first),
        cmocka_unit_test(test_validate_strict_fails_on_unknown_fields),
        cmocka_unit_test(test_validate_rejects_malformed_json_clearly),
        cmocka_unit_test(test_validate_rejects_non_object_payload),
        cmocka_unit_test(test_validate_rejects_invalid_utf8),
        cmocka_unit_test(test_validate_unknown_type_fails),
        cmocka_unit_test(test_validate_without_type_is_usage_error),
        cmocka_unit_test(test_config_key_parse_prints_json),
        cmocka_unit_test(test_config_key_make_prints_key),
        cmocka_unit_test(test_config_key_invalid_fails_with_reason),
        cmocka_unit_test(test_config_key_wrong_arguments_is_usage_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
