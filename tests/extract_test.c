/*
 * extract_test.c - tests of src/extract.c: the config key and model path
 * with their fallbacks, and the typed views of TRAINING_COMPLETED and
 * EVALUATION_COMPLETED payloads.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <string.h>

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (v == NULL)
        fail_msg("test JSON does not parse: %s", err.text);
    return v;
}

static const char *config_key_of(const char *text, char buf[RRE_CONFIG_KEY_MAX])
{
    json_t *p = load(text);
    const char *key = rre_extract_config_key(p, buf, RRE_CONFIG_KEY_MAX);
    json_decref(p);
    return key;
}

static void test_config_key_prefers_config_key_field(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    const char *key = config_key_of(
        "{\"config_key\":\"hex8_2p\",\"config\":\"square8_3p\",\"board_type\":\"square19\","
        "\"num_players\":4}",
        buf);
    assert_ptr_equal(key, buf);
    assert_string_equal(key, "hex8_2p");
}

static void test_config_key_falls_back_to_config(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    assert_string_equal(config_key_of("{\"config\":\"square8_3p\"}", buf), "square8_3p");
}

static void test_config_key_falls_back_to_board_and_players(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    assert_string_equal(config_key_of("{\"board_type\":\"hexagonal\",\"num_players\":4}", buf),
                        "hexagonal_4p");
}

static void test_config_key_skips_invalid_candidates(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    assert_string_equal(config_key_of("{\"config_key\":\"bogus\",\"config\":\"hex8_2p\"}", buf),
                        "hex8_2p");
    assert_string_equal(
        config_key_of("{\"config_key\":7,\"board_type\":\"hex8\",\"num_players\":3}", buf),
        "hex8_3p");
}

static void test_config_key_is_null_when_nothing_valid(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    assert_null(config_key_of("{}", buf));
    assert_string_equal(buf, "");
    assert_null(config_key_of("{\"config_key\":\"HEX8_2p\"}", buf));
    assert_null(config_key_of("{\"config_key\":\"hex8_5p\"}", buf));
    assert_null(config_key_of("{\"board_type\":\"hex8\",\"num_players\":5}", buf));
    assert_null(config_key_of("{\"board_type\":\"hex8\",\"num_players\":2.0}", buf));
    assert_null(config_key_of("{\"board_type\":\"hex8\",\"num_players\":\"2\"}", buf));
    assert_null(config_key_of("{\"board_type\":\"hex8\"}", buf));
    assert_null(config_key_of("{\"board_type\":\"hex8_\",\"num_players\":2}", buf));
    assert_null(
        config_key_of("{\"board_type\":\"hexagonal_extra_long_name\",\"num_players\":2}", buf));
}

static void test_config_key_leaves_last_error_alone(void **state)
{
    (void)state;
    rre_config_key k;
    assert_int_equal(rre_config_key_parse("hex8_9p", &k), RRE_ECONFIG_KEY);
    char before[256];
    snprintf(before, sizeof before, "%s", rre_last_error());
    char buf[RRE_CONFIG_KEY_MAX];
    assert_null(
        config_key_of("{\"config_key\":\"nope\",\"board_type\":\"hex9\",\"num_players\":2}", buf));
    assert_string_equal(rre_last_error(), before);
}

static void test_config_key_rejects_bad_arguments(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    json_t *p = load("{\"config_key\":\"hex8_2p\"}");
    assert_null(rre_extract_config_key(NULL, buf, sizeof buf));
    assert_null(rre_extract_config_key(p, NULL, sizeof buf));
    /* A buffer too small for the key gives NULL, not a truncated key. */
    char small[4] = "xyz";
    assert_null(rre_extract_config_key(p, small, sizeof small));
    assert_string_equal(small, "");
    json_t *a = json_array();
    assert_null(rre_extract_config_key(a, buf, sizeof buf));
    json_decref(a);
    json_decref(p);
}

static void test_model_path_fallbacks_in_order(void **state)
{
    (void)state;
    json_t *p = load("{\"path\":\"/p\",\"checkpoint_path\":\"/c\",\"model_path\":\"/m\"}");
    assert_string_equal(rre_extract_model_path(p), "/m");
    json_object_del(p, "model_path");
    assert_string_equal(rre_extract_model_path(p), "/c");
    json_object_del(p, "checkpoint_path");
    assert_string_equal(rre_extract_model_path(p), "/p");
    json_object_del(p, "path");
    assert_null(rre_extract_model_path(p));
    json_decref(p);
}

static void test_model_path_skips_non_strings_and_empty_strings(void **state)
{
    (void)state;
    json_t *p = load("{\"model_path\":null,\"checkpoint_path\":\"\",\"path\":\"/p\"}");
    assert_string_equal(rre_extract_model_path(p), "/p");
    json_decref(p);
    p = load("{\"model_path\":5}");
    assert_null(rre_extract_model_path(p));
    json_decref(p);
    assert_null(rre_extract_model_path(NULL));
}

static void test_training_data_reads_the_documented_example(void **state)
{
    (void)state;
    json_t *p = load("{\"config_key\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
                     "\"model_path\":\"/models/canonical_hex8_2p.pth\",\"epochs\":50,"
                     "\"final_loss\":0.0423,\"samples_trained\":85000,"
                     "\"job_id\":\"train_hex8_2p_1704100200\",\"duration_seconds\":1832.5,"
                     "\"early_stopped\":true}");
    rre_training_data d;
    assert_int_equal(rre_extract_training_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_string_equal(d.config_key, "hex8_2p");
    assert_ptr_equal(d.config_key, d.config_key_buf);
    assert_string_equal(d.board_type, "hex8");
    assert_int_equal(d.num_players, 2);
    assert_string_equal(d.model_path, "/models/canonical_hex8_2p.pth");
    assert_int_equal(d.epochs, 50);
    assert_true(d.final_loss == 0.0423);
    assert_int_equal(d.samples_trained, 85000);
    assert_string_equal(d.job_id, "train_hex8_2p_1704100200");
    assert_true(d.duration_seconds == 1832.5);
    assert_true(d.early_stopped);
    json_decref(p);
}

static void test_training_data_honours_aliases(void **state)
{
    (void)state;
    json_t *p = load("{\"config\":\"square19_3p\",\"checkpoint_path\":\"/c.pth\",\"epochs\":5,"
                     "\"loss\":1,\"samples\":10}");
    rre_training_data d;
    assert_int_equal(rre_extract_training_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_string_equal(d.config_key, "square19_3p");
    assert_string_equal(d.model_path, "/c.pth");
    assert_true(d.final_loss == 1.0);
    assert_int_equal(d.samples_trained, 10);
    json_decref(p);
}

static void test_training_data_derives_board_and_players_from_config_key(void **state)
{
    (void)state;
    json_t *p = load("{\"config_key\":\"square8_4p\",\"model_path\":\"/m\",\"epochs\":1,"
                     "\"final_loss\":0.5,\"samples_trained\":2}");
    rre_training_data d;
    assert_int_equal(rre_extract_training_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_string_equal(d.board_type, "square8");
    assert_int_equal(d.num_players, 4);
    assert_null(d.job_id);
    assert_false(d.early_stopped);
    assert_true(d.duration_seconds == 0.0);
    json_decref(p);
}

static void test_training_data_is_invalid_when_a_required_field_is_missing(void **state)
{
    (void)state;
    static const char *const required[] = {"epochs", "final_loss", "samples_trained", "model_path",
                                           "config_key"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
        json_t *p = load("{\"config_key\":\"hex8_2p\",\"model_path\":\"/m\",\"epochs\":1,"
                         "\"final_loss\":0.5,\"samples_trained\":2}");
        json_object_del(p, required[i]);
        rre_training_data d;
        assert_int_equal(rre_extract_training_data(p, &d), RRE_OK);
        if (d.valid)
            fail_msg("valid without '%s'", required[i]);
        json_decref(p);
    }
}

static void test_training_data_is_invalid_when_a_field_has_the_wrong_type(void **state)
{
    (void)state;
    static const char *const cases[] = {"\"epochs\":1.5", "\"final_loss\":\"low\"",
                                        "\"samples_trained\":null", "\"num_players\":\"2\"",
                                        "\"board_type\":8"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"config_key\":\"hex8_2p\",\"model_path\":\"/m\",\"epochs\":1,"
                 "\"final_loss\":0.5,\"samples_trained\":2,%s}",
                 cases[i]);
        /* The later member replaces the earlier one in jansson's loader. */
        json_t *p = load(text);
        rre_training_data d;
        assert_int_equal(rre_extract_training_data(p, &d), RRE_OK);
        if (d.valid)
            fail_msg("valid with %s", cases[i]);
        json_decref(p);
    }
}

static void test_int_accepted_where_float_expected_in_extraction(void **state)
{
    (void)state;
    json_t *p = load("{\"config_key\":\"hex8_2p\",\"model_path\":\"/m\",\"elo\":1500,"
                     "\"games_played\":10,\"win_rate\":1}");
    rre_evaluation_data d;
    assert_int_equal(rre_extract_evaluation_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_true(d.elo == 1500.0);
    assert_true(d.win_rate == 1.0);
    json_decref(p);
}

static void test_evaluation_data_reads_the_documented_example(void **state)
{
    (void)state;
    json_t *p = load("{\"config_key\":\"hex8_2p\",\"board_type\":\"hex8\",\"num_players\":2,"
                     "\"model_path\":\"/models/canonical_hex8_2p.pth\",\"elo\":1650.5,"
                     "\"games_played\":100,\"win_rate\":0.72,\"is_multi_harness\":true,"
                     "\"harness_results\":{\"gumbel_mcts\":{\"elo\":1650,\"games\":50}},"
                     "\"best_harness\":\"gumbel_mcts\","
                     "\"composite_participant_ids\":[\"a\",\"b\"]}");
    rre_evaluation_data d;
    assert_int_equal(rre_extract_evaluation_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_string_equal(d.config_key, "hex8_2p");
    assert_string_equal(d.board_type, "hex8");
    assert_int_equal(d.num_players, 2);
    assert_true(d.elo == 1650.5);
    assert_int_equal(d.games_played, 100);
    assert_true(d.win_rate == 0.72);
    assert_true(d.is_multi_harness);
    assert_ptr_equal(d.harness_results, json_object_get(p, "harness_results"));
    assert_string_equal(d.best_harness, "gumbel_mcts");
    assert_int_equal(json_array_size(d.composite_participant_ids), 2);
    json_decref(p);
}

static void test_evaluation_data_honours_games_alias(void **state)
{
    (void)state;
    json_t *p = load("{\"board_type\":\"hex8\",\"num_players\":3,\"path\":\"/p\",\"elo\":1.5,"
                     "\"games\":7,\"win_rate\":0.5}");
    rre_evaluation_data d;
    assert_int_equal(rre_extract_evaluation_data(p, &d), RRE_OK);
    assert_true(d.valid);
    assert_string_equal(d.config_key, "hex8_3p");
    assert_int_equal(d.games_played, 7);
    assert_string_equal(d.model_path, "/p");
    assert_null(d.harness_results);
    assert_null(d.best_harness);
    assert_null(d.composite_participant_ids);
    json_decref(p);
}

static void test_evaluation_data_is_invalid_without_elo(void **state)
{
    (void)state;
    json_t *p = load("{\"config_key\":\"hex8_2p\",\"model_path\":\"/m\",\"games_played\":10,"
                     "\"win_rate\":0.5}");
    rre_evaluation_data d;
    assert_int_equal(rre_extract_evaluation_data(p, &d), RRE_OK);
    assert_false(d.valid);
    json_decref(p);
}

static void test_extraction_rejects_non_objects(void **state)
{
    (void)state;
    json_t *a = json_array();
    rre_training_data t;
    rre_evaluation_data e;
    assert_int_equal(rre_extract_training_data(a, &t), RRE_ENOT_OBJECT);
    assert_false(t.valid);
    assert_null(t.config_key);
    assert_int_equal(rre_extract_evaluation_data(a, &e), RRE_ENOT_OBJECT);
    assert_false(e.valid);
    assert_int_equal(rre_extract_training_data(NULL, &t), RRE_ENOT_OBJECT);
    assert_int_equal(rre_extract_training_data(a, NULL), RRE_EINVAL);
    assert_int_equal(rre_extract_evaluation_data(a, NULL), RRE_EINVAL);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_key_prefers_config_key_field),
        cmocka_unit_test(test_config_key_falls_back_to_config),
        cmocka_unit_test(test_config_key_falls_back_to_board_and_players),
        cmocka_unit_test(test_config_key_skips_invalid_candidates),
        cmocka_unit_test(test_config_key_is_null_when_nothing_valid),
        cmocka_unit_test(test_config_key_leaves_last_error_alone),
        cmocka_unit_test(test_config_key_rejects_bad_arguments),
        cmocka_unit_test(test_model_path_fallbacks_in_order),
        cmocka_unit_test(test_model_path_skips_non_strings_and_empty_strings),
        cmocka_unit_test(test_training_data_reads_the_documented_example),
        cmocka_unit_test(test_training_data_honours_aliases),
        cmocka_unit_test(test_training_data_derives_board_and_players_from_config_key),
        cmocka_unit_test(test_training_data_is_invalid_when_a_required_field_is_missing),
        cmocka_unit_test(test_training_data_is_invalid_when_a_field_has_the_wrong_type),
        cmocka_unit_test(test_int_accepted_where_float_expected_in_extraction),
        cmocka_unit_test(test_evaluation_data_reads_the_documented_example),
        cmocka_unit_test(test_evaluation_data_honours_games_alias),
        cmocka_unit_test(test_evaluation_data_is_invalid_without_elo),
        cmocka_unit_test(test_extraction_rejects_non_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
