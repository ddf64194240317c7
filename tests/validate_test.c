/*
 * validate_test.c - tests of src/validate.c: checking payloads against the
 * catalog's schemas and formatting the problems.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The documented TRAINING_COMPLETED example plus the envelope timestamp:
 * eleven fields, all valid. */
static const char *const training_example =
    "{\"config_key\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
    "\"model_path\":\"/models/canonical_hex8_2p.pth\",\"epochs\":50,\"final_loss\":0.0423,"
    "\"samples_trained\":85000,\"job_id\":\"train_hex8_2p_1704100200\","
    "\"duration_seconds\":1832.5,\"early_stopped\":true,\"timestamp\":\"2026-01-02T03:04:05Z\"}";

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (v == NULL)
        fail_msg("test JSON does not parse: %s", err.text);
    return v;
}

/* The stored problem about `field`, or NULL. */
static const rre_problem *find_problem(const rre_problems *pr, const char *field)
{
    for (size_t i = 0; i < pr->count; i++) {
        if (strcmp(pr->items[i].field, field) == 0)
            return &pr->items[i];
    }
    return NULL;
}

static void expect_format(const rre_problem *p, const char *want)
{
    char line[256];
    int n = rre_problem_format(p, line, sizeof line);
    assert_string_equal(line, want);
    assert_int_equal(n, (int)strlen(want));
}

/* Validates TRAINING_COMPLETED's example with `field` replaced by `value`
 * (JSON text) and returns the status; the problems land in *pr. */
static rre_status validate_training_with(const char *field, const char *value, rre_problems *pr)
{
    json_t *p = load(training_example);
    json_error_t err;
    json_t *v = json_loads(value, JSON_DECODE_ANY, &err);
    assert_non_null(v);
    json_object_set_new(p, field, v);
    rre_status st = rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, pr);
    json_decref(p);
    return st;
}

static void test_validate_accepts_documented_training_example(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
    assert_int_equal(pr.errors, 0);
    assert_int_equal(pr.notes, 0);
    assert_int_equal(pr.count, 0);
    json_decref(p);
}

static void test_validate_strict_lists_each_missing_field(void **state)
{
    (void)state;
    const rre_event_info *info = rre_event_get(RRE_EV_TRAINING_COMPLETED);
    assert_non_null(info);
    json_t *p = json_object();
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, 0, &pr), RRE_EINVALID_PAYLOAD);
    size_t required = 0;
    for (size_t i = 0; i < info->field_count; i++) {
        const rre_field_info *f = &info->fields[i];
        if (!(f->flags & RRE_FIELD_REQUIRED))
            continue;
        required++;
        const rre_problem *prob = find_problem(&pr, f->name);
        if (prob == NULL)
            fail_msg("no problem reported for missing required field '%s'", f->name);
        assert_int_equal(prob->kind, RRE_PROBLEM_MISSING);
        assert_int_equal(prob->expected, f->type);
    }
    /* The seven required fields of the payload-schemas document. */
    assert_int_equal(required, 7);
    assert_int_equal(pr.errors, required);
    assert_int_equal(pr.count, required);
    const rre_problem *epochs = find_problem(&pr, "epochs");
    assert_non_null(epochs);
    expect_format(epochs, "missing required field 'epochs' (int)");
    json_decref(p);
}

static void test_validate_reports_wrong_type(void **state)
{
    (void)state;
    rre_problems pr;
    assert_int_equal(validate_training_with("epochs", "\"50\"", &pr), RRE_EINVALID_PAYLOAD);
    assert_int_equal(pr.errors, 1);
    assert_int_equal(pr.count, 1);
    assert_int_equal(pr.items[0].kind, RRE_PROBLEM_WRONG_TYPE);
    assert_string_equal(pr.items[0].field, "epochs");
    assert_int_equal(pr.items[0].expected, RRE_FT_INT);
    assert_string_equal(pr.items[0].found, "string");
    expect_format(&pr.items[0], "field 'epochs': expected int, found string");
}

static void test_int_accepted_where_float_expected(void **state)
{
    (void)state;
    rre_problems pr;
    assert_int_equal(validate_training_with("final_loss", "1", &pr), RRE_OK);
    assert_int_equal(pr.errors, 0);
}

static void test_float_rejected_where_int_expected(void **state)
{
    (void)state;
    rre_problems pr;
    assert_int_equal(validate_training_with("epochs", "50.0", &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].found, "float");
}

static void test_bool_and_string_types_are_checked(void **state)
{
    (void)state;
    rre_problems pr;
    assert_int_equal(validate_training_with("early_stopped", "1", &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].field, "early_stopped");
    assert_string_equal(pr.items[0].found, "integer");
    assert_int_equal(validate_training_with("model_path", "[\"/m\"]", &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].found, "array");
    assert_int_equal(validate_training_with("board_type", "{}", &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].found, "object");
}

static void test_null_is_a_wrong_type_for_non_nullable_field(void **state)
{
    (void)state;
    rre_problems pr;
    /* Present but null is not missing. */
    assert_int_equal(validate_training_with("epochs", "null", &pr), RRE_EINVALID_PAYLOAD);
    assert_int_equal(pr.items[0].kind, RRE_PROBLEM_WRONG_TYPE);
    assert_string_equal(pr.items[0].found, "null");
    assert_int_equal(validate_training_with("job_id", "null", &pr), RRE_EINVALID_PAYLOAD);
}

static void test_null_accepted_for_nullable_field(void **state)
{
    (void)state;
    /* Find some field the documents mark "| None". */
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        for (size_t i = 0; i < info->field_count; i++) {
            const rre_field_info *f = &info->fields[i];
            if (!(f->flags & RRE_FIELD_NULLABLE))
                continue;
            json_t *p = json_object();
            json_object_set_new(p, f->name, json_null());
            rre_problems pr;
            rre_validate((rre_event_type)t, p, RRE_VALIDATE_NOTES, &pr);
            if (find_problem(&pr, f->name) != NULL)
                fail_msg("null rejected for nullable field %s.%s", info->name, f->name);
            json_decref(p);
            return;
        }
    }
    fail_msg("the catalog has no nullable field");
}

static void test_list_str_requires_string_elements(void **state)
{
    (void)state;
    const rre_field_info *f =
        rre_event_field(RRE_EV_EVALUATION_COMPLETED, "composite_participant_ids");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_LIST_STR);
    json_t *p = json_object();
    rre_problems pr;

    json_object_set_new(p, "composite_participant_ids", json_pack("[s, i]", "a", 1));
    rre_validate(RRE_EV_EVALUATION_COMPLETED, p, 0, &pr);
    const rre_problem *prob = find_problem(&pr, "composite_participant_ids");
    assert_non_null(prob);
    assert_int_equal(prob->kind, RRE_PROBLEM_WRONG_TYPE);
    expect_format(prob, "field 'composite_participant_ids': expected list[str], found array with a "
                        "non-string element");

    json_object_set_new(p, "composite_participant_ids", json_pack("[s, s]", "a", "b"));
    rre_validate(RRE_EV_EVALUATION_COMPLETED, p, 0, &pr);
    assert_null(find_problem(&pr, "composite_participant_ids"));
    json_object_set_new(p, "composite_participant_ids", json_array());
    rre_validate(RRE_EV_EVALUATION_COMPLETED, p, 0, &pr);
    assert_null(find_problem(&pr, "composite_participant_ids"));
    json_object_set_new(p, "composite_participant_ids", json_string("a"));
    rre_validate(RRE_EV_EVALUATION_COMPLETED, p, 0, &pr);
    assert_non_null(find_problem(&pr, "composite_participant_ids"));
    json_decref(p);
}

static void test_dict_str_float_requires_number_values(void **state)
{
    (void)state;
    const rre_field_info *f = rre_event_field(RRE_EV_CURRICULUM_REBALANCED, "weights");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_DICT_STR_FLOAT);
    rre_problems pr;
    json_t *p = json_pack("{s:{s:f, s:i}}", "weights", "hex8_2p", 0.5, "square8_2p", 1);
    assert_int_equal(rre_validate(RRE_EV_CURRICULUM_REBALANCED, p, 0, &pr), RRE_OK);
    json_object_set_new(p, "weights", json_pack("{s:f, s:s}", "hex8_2p", 0.5, "x", "high"));
    assert_int_equal(rre_validate(RRE_EV_CURRICULUM_REBALANCED, p, 0, &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].found, "object with a non-number value");
    json_object_set_new(p, "weights", json_pack("[f]", 0.5));
    assert_int_equal(rre_validate(RRE_EV_CURRICULUM_REBALANCED, p, 0, &pr), RRE_EINVALID_PAYLOAD);
    assert_string_equal(pr.items[0].found, "array");
    json_decref(p);
}

static void test_unknown_fields_are_notes_only_when_asked(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    json_object_set_new(p, "foo", json_integer(1));
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, 0, &pr), RRE_OK);
    assert_int_equal(pr.notes, 0);
    assert_int_equal(pr.count, 0);
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
    assert_int_equal(pr.errors, 0);
    assert_int_equal(pr.notes, 1);
    assert_int_equal(pr.count, 1);
    assert_int_equal(pr.items[0].kind, RRE_PROBLEM_UNKNOWN_FIELD);
    expect_format(&pr.items[0], "note: unknown field 'foo'");
    json_decref(p);
}

static void test_envelope_fields_are_always_known(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    json_object_set_new(p, "source", json_string("trainer"));
    json_object_set_new(p, "trace_id", json_string("t"));
    json_object_set_new(p, "created_at", json_real(1.5));
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
    assert_int_equal(pr.notes, 0);
    json_decref(p);
}

static void test_catalog_only_fields_are_known(void **state)
{
    (void)state;
    const rre_event_info *info = rre_event_get(RRE_EV_TRAINING_COMPLETED);
    json_t *p = load(training_example);
    for (size_t i = 0; i < info->field_count; i++) {
        const rre_field_info *f = &info->fields[i];
        if ((f->flags & RRE_FIELD_IN_CATALOG) && !(f->flags & RRE_FIELD_IN_SCHEMAS) &&
            f->type == RRE_FT_STR)
            json_object_set_new(p, f->name, json_string("x"));
    }
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
    assert_int_equal(pr.notes, 0);
    json_decref(p);
}

static void test_counts_include_problems_beyond_the_limit(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra_%d", i);
        json_object_set_new(p, name, json_true());
    }
    json_object_set_new(p, "epochs", json_string("many"));
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr),
                     RRE_EINVALID_PAYLOAD);
    assert_int_equal(pr.errors, 1);
    assert_int_equal(pr.notes, 40);
    assert_int_equal(pr.count, RRE_PROBLEMS_MAX);
    /* Errors come before notes. */
    assert_int_equal(pr.items[0].kind, RRE_PROBLEM_WRONG_TYPE);
    json_decref(p);
}

static void test_long_field_name_is_truncated_with_ellipsis(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    json_t *p = load(training_example);
    json_object_set_new(p, name, json_true());
    rre_problems pr;
    rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr);
    assert_int_equal(pr.count, 1);
    size_t len = strlen(pr.items[0].field);
    assert_true(len < RRE_PROBLEM_FIELD_MAX);
    assert_true(len >= RRE_PROBLEM_FIELD_MAX - 4);
    assert_string_equal(pr.items[0].field + len - 3, "...");
    /* A name that fits exactly is not cut. */
    name[RRE_PROBLEM_FIELD_MAX - 1] = '\0';
    json_object_clear(p);
    json_object_set_new(p, "config_key", json_string("hex8_2p"));
    json_object_set_new(p, name, json_true());
    rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr);
    assert_non_null(find_problem(&pr, name));
    json_decref(p);
}

static void test_truncation_never_splits_a_utf8_character(void **state)
{
    (void)state;
    /* 100 copies of U+00E9 (2 bytes) and of U+20AC (3 bytes). */
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        char name[500] = "";
        for (int i = 0; i < 100; i++)
            strcat(name, chars[c]);
        json_t *p = json_object();
        json_object_set_new(p, "config_key", json_string("hex8_2p"));
        json_object_set_new(p, name, json_true());
        rre_problems pr;
        rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr);
        const rre_problem *note = NULL;
        for (size_t i = 0; i < pr.count; i++) {
            if (pr.items[i].kind == RRE_PROBLEM_UNKNOWN_FIELD)
                note = &pr.items[i];
        }
        assert_non_null(note);
        /* jansson accepts only valid UTF-8 in json_string. */
        json_t *check = json_string(note->field);
        if (check == NULL)
            fail_msg("truncated name is not valid UTF-8: %s", note->field);
        json_decref(check);
        assert_non_null(strstr(note->field, "..."));
        json_decref(p);
    }
}

static void test_field_name_with_unsafe_bytes_is_escaped(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    json_object_set_new(p,
                        "a\x01"
                        "b\x7f",
                        json_true());
    json_object_set_new(p, "c\xc2\x85", json_true()); /* U+0085, a C1 control */
    /* A key that skipped jansson's UTF-8 check. */
    json_object_set_new_nocheck(p, "d\xff\xc3", json_true());
    rre_problems pr;
    rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr);
    assert_int_equal(pr.notes, 3);
    assert_non_null(find_problem(&pr, "a\\x01b\\x7f"));
    assert_non_null(find_problem(&pr, "c\\u0085"));
    assert_non_null(find_problem(&pr, "d\\xff\\xc3"));
    json_decref(p);
}

static void test_type_without_documented_fields_has_no_notes(void **state)
{
    (void)state;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (info->field_count != 0 || info->alias_of != RRE_EV_NONE)
            continue;
        json_t *p = json_pack("{s:i}", "anything", 1);
        rre_problems pr;
        assert_int_equal(rre_validate((rre_event_type)t, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
        assert_int_equal(pr.notes, 0);
        json_decref(p);
        return;
    }
    skip();
}

static void test_normalized_aliases_validate(void **state)
{
    (void)state;
    json_t *p = load("{\"config\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
                     "\"checkpoint_path\":\"/m\",\"epochs\":1,\"loss\":0.5,\"samples\":9}");
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, 0, &pr), RRE_EINVALID_PAYLOAD);
    assert_int_equal(pr.errors, 4);
    assert_int_equal(rre_payload_normalize(p), 4);
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, &pr), RRE_OK);
    assert_int_equal(pr.notes, 0);
    json_decref(p);
}

static void test_validate_without_output_gives_the_verdict(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, RRE_VALIDATE_NOTES, NULL), RRE_OK);
    json_object_del(p, "epochs");
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, 0, NULL), RRE_EINVALID_PAYLOAD);
    json_decref(p);
}

static void test_validate_failure_sets_detail_message(void **state)
{
    (void)state;
    json_t *p = load(training_example);
    json_object_set_new(p, "epochs", json_string("x"));
    rre_problems pr;
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, p, 0, &pr), RRE_EINVALID_PAYLOAD);
    assert_non_null(strstr(rre_last_error(), "TRAINING_COMPLETED"));
    assert_non_null(strstr(rre_last_error(), "field 'epochs': expected int, found string"));
    json_decref(p);
}

static void test_validate_rejects_bad_arguments(void **state)
{
    (void)state;
    rre_problems pr;
    json_t *a = json_array();
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, a, 0, &pr), RRE_ENOT_OBJECT);
    assert_int_equal(pr.count, 0);
    assert_int_equal(rre_validate(RRE_EV_TRAINING_COMPLETED, NULL, 0, &pr), RRE_ENOT_OBJECT);
    json_t *p = json_object();
    assert_int_equal(rre_validate(RRE_EV_NONE, p, 0, &pr), RRE_EUNKNOWN_TYPE);
    assert_int_equal(rre_validate(RRE_EVENT_TYPE_COUNT, p, 0, &pr), RRE_EUNKNOWN_TYPE);
    json_decref(p);
    json_decref(a);
}

static void test_problem_format_truncates_and_reports_full_length(void **state)
{
    (void)state;
    rre_problem p = {.kind = RRE_PROBLEM_WRONG_TYPE,
                     .field = "epochs",
                     .expected = RRE_FT_INT,
                     .found = "string"};
    const char *full = "field 'epochs': expected int, found string";
    char small[10];
    int n = rre_problem_format(&p, small, sizeof small);
    assert_int_equal(n, (int)strlen(full));
    assert_string_equal(small, "field 'ep");
    assert_int_equal(rre_problem_format(&p, NULL, 0), (int)strlen(full));
    assert_int_equal(rre_problem_format(NULL, small, sizeof small), 0);
    assert_string_equal(small, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts_documented_training_example),
        cmocka_unit_test(test_validate_strict_lists_each_missing_field),
        cmocka_unit_test(test_validate_reports_wrong_type),
        cmocka_unit_test(test_int_accepted_where_float_expected),
        cmocka_unit_test(test_float_rejected_where_int_expected),
        cmocka_unit_test(test_bool_and_string_types_are_checked),
        cmocka_unit_test(test_null_is_a_wrong_type_for_non_nullable_field),
        cmocka_unit_test(test_null_accepted_for_nullable_field),
        cmocka_unit_test(test_list_str_requires_string_elements),
        cmocka_unit_test(test_dict_str_float_requires_number_values),
        cmocka_unit_test(test_unknown_fields_are_notes_only_when_asked),
        cmocka_unit_test(test_envelope_fields_are_always_known),
        cmocka_unit_test(test_catalog_only_fields_are_known),
        cmocka_unit_test(test_counts_include_problems_beyond_the_limit),
        cmocka_unit_test(test_long_field_name_is_truncated_with_ellipsis),
        cmocka_unit_test(test_truncation_never_splits_a_utf8_character),
        cmocka_unit_test(test_field_name_with_unsafe_bytes_is_escaped),
        cmocka_unit_test(test_type_without_documented_fields_has_no_notes),
        cmocka_unit_test(test_normalized_aliases_validate),
        cmocka_unit_test(test_validate_without_output_gives_the_verdict),
        cmocka_unit_test(test_validate_failure_sets_detail_message),
        cmocka_unit_test(test_validate_rejects_bad_arguments),
        cmocka_unit_test(test_problem_format_truncates_and_reports_full_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
