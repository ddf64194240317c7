/*
 * config_key_test.c - tests of src/config_key.c: parsing and making config
 * keys, and the board names.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses `key`, expects RRE_ECONFIG_KEY, and checks that the detail message
 * contains `fragment`. */
static void expect_rejected(const char *key, const char *fragment)
{
    rre_config_key out = {RRE_BOARD_HEX8, 99};
    rre_status st = rre_config_key_parse(key, &out);
    assert_int_equal(st, RRE_ECONFIG_KEY);
    /* A rejected key leaves the output as it was. */
    assert_int_equal(out.num_players, 99);
    const char *msg = rre_last_error();
    if (strstr(msg, fragment) == NULL)
        fail_msg("key '%s': detail message \"%s\" does not mention \"%s\"", key ? key : "(null)",
                 msg, fragment);
}

static void test_config_key_parses_every_board_and_count(void **state)
{
    (void)state;
    static const char *const boards[] = {"hex8", "square8", "square19", "hexagonal"};
    for (int b = 0; b < 4; b++) {
        for (int n = 2; n <= 4; n++) {
            char key[RRE_CONFIG_KEY_MAX];
            snprintf(key, sizeof key, "%s_%dp", boards[b], n);
            rre_config_key out;
            assert_int_equal(rre_config_key_parse(key, &out), RRE_OK);
            assert_int_equal(out.board, b);
            assert_int_equal(out.num_players, n);
            assert_string_equal(rre_board_name(out.board), boards[b]);
        }
    }
}

static void test_config_key_rejects_player_count_out_of_range(void **state)
{
    (void)state;
    expect_rejected("hex8_5p", "outside 2..4");
    expect_rejected("hex8_1p", "outside 2..4");
    expect_rejected("hex8_0p", "outside 2..4");
    expect_rejected("hex8_9p", "outside 2..4");
}

static void test_config_key_rejects_leading_zero(void **state)
{
    (void)state;
    expect_rejected("hex8_02p", "leading zero");
}

static void test_config_key_rejects_more_than_one_digit(void **state)
{
    (void)state;
    expect_rejected("hex8_22p", "one digit");
    expect_rejected("square19_10p", "one digit");
}

static void test_config_key_rejects_sign(void **state)
{
    (void)state;
    expect_rejected("hex8_+2p", "offset 5");
    expect_rejected("hex8_-2p", "offset 5");
}

static void test_config_key_rejects_space(void **state)
{
    (void)state;
    expect_rejected("hex 8_2p", "offset 3");
    expect_rejected(" hex8_2p", "offset 0");
    expect_rejected("hex8_2p ", "offset 7");
}

static void test_config_key_rejects_missing_board(void **state)
{
    (void)state;
    expect_rejected("_2p", "no board");
}

static void test_config_key_rejects_unknown_board(void **state)
{
    (void)state;
    expect_rejected("hex9_2p", "unknown board 'hex9'");
    expect_rejected("square_2p", "unknown board 'square'");
}

static void test_config_key_rejects_missing_player_count(void **state)
{
    (void)state;
    expect_rejected("hex8_", "no player count");
    expect_rejected("hex8_p", "start with a digit");
}

static void test_config_key_rejects_missing_p(void **state)
{
    (void)state;
    expect_rejected("hex8_2", "must end in 'p'");
    expect_rejected("hex8_2x", "expected 'p'");
}

static void test_config_key_rejects_missing_underscore(void **state)
{
    (void)state;
    expect_rejected("hex8", "no '_'");
    expect_rejected("hex82p", "no '_'");
}

static void test_config_key_is_lowercase_only(void **state)
{
    (void)state;
    expect_rejected("hex8_2P", "lowercase");
    expect_rejected("HEX8_2p", "lowercase");
    expect_rejected("Hex8_2p", "lowercase");
}

static void test_config_key_rejects_empty_and_null(void **state)
{
    (void)state;
    expect_rejected("", "empty");
    expect_rejected(NULL, "NULL");
}

static void test_config_key_rejects_trailing_garbage(void **state)
{
    (void)state;
    expect_rejected("hex8_2px", "characters after 'hex8_2p'");
    expect_rejected("hex8_2p_", "characters after 'hex8_2p'");
    expect_rejected("hex8_2p2p", "characters after 'hex8_2p'");
}

static void test_config_key_rejects_very_long_input_and_quotes_it_briefly(void **state)
{
    (void)state;
    size_t len = 100000;
    char *key = malloc(len + 1);
    assert_non_null(key);
    memset(key, 'a', len);
    key[len] = '\0';
    expect_rejected(key, "too long");
    /* The message quotes a prefix, not the whole input. */
    assert_true(strlen(rre_last_error()) < 200);
    assert_non_null(strstr(rre_last_error(), "..."));
    free(key);
    expect_rejected("hexagonal_4p_extra", "too long");
}

static void test_config_key_rejects_non_ascii_and_escapes_it(void **state)
{
    (void)state;
    expect_rejected("hex8_\xe2\x82\x82p", "\\xe2\\x82\\x82");
    expect_rejected("h\xc3\xa9x8_2p", "offset 1");
    expect_rejected("hex8\x01_2p", "\\x01");
}

static void test_config_key_parse_needs_output(void **state)
{
    (void)state;
    assert_int_equal(rre_config_key_parse("hex8_2p", NULL), RRE_EINVAL);
}

static void test_config_key_make_round_trips(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX];
    assert_int_equal(rre_config_key_make("hexagonal", 4, buf, sizeof buf), RRE_OK);
    assert_string_equal(buf, "hexagonal_4p");
    rre_config_key key;
    assert_int_equal(rre_config_key_parse(buf, &key), RRE_OK);
    assert_int_equal(key.board, RRE_BOARD_HEXAGONAL);
    assert_int_equal(key.num_players, 4);
}

static void test_config_key_make_rejects_bad_board_and_count(void **state)
{
    (void)state;
    char buf[RRE_CONFIG_KEY_MAX] = "untouched";
    assert_int_equal(rre_config_key_make("hex9", 2, buf, sizeof buf), RRE_ECONFIG_KEY);
    assert_non_null(strstr(rre_last_error(), "unknown board 'hex9'"));
    assert_string_equal(buf, "");
    assert_int_equal(rre_config_key_make("HEX8", 2, buf, sizeof buf), RRE_ECONFIG_KEY);
    assert_int_equal(rre_config_key_make(NULL, 2, buf, sizeof buf), RRE_ECONFIG_KEY);
    assert_int_equal(rre_config_key_make("hex8", 1, buf, sizeof buf), RRE_ECONFIG_KEY);
    assert_non_null(strstr(rre_last_error(), "outside 2..4"));
    assert_int_equal(rre_config_key_make("hex8", 5, buf, sizeof buf), RRE_ECONFIG_KEY);
    assert_int_equal(rre_config_key_make("hex8", -2, buf, sizeof buf), RRE_ECONFIG_KEY);
}

static void test_config_key_make_rejects_small_buffer(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(rre_config_key_make("hexagonal", 2, buf, sizeof buf), RRE_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(rre_config_key_make("hex8", 2, NULL, 16), RRE_EINVAL);
    /* Exactly enough room works. */
    assert_int_equal(rre_config_key_make("hex8", 2, buf, 8), RRE_OK);
    assert_string_equal(buf, "hex8_2p");
}

static void test_board_parse_and_name(void **state)
{
    (void)state;
    rre_board b;
    assert_int_equal(rre_board_parse("square19", &b), RRE_OK);
    assert_int_equal(b, RRE_BOARD_SQUARE19);
    assert_int_equal(rre_board_parse("square1", &b), RRE_ECONFIG_KEY);
    assert_int_equal(rre_board_parse("Square19", &b), RRE_ECONFIG_KEY);
    assert_int_equal(rre_board_parse("", &b), RRE_ECONFIG_KEY);
    assert_int_equal(rre_board_parse(NULL, &b), RRE_EINVAL);
    assert_string_equal(rre_board_name(RRE_BOARD_HEX8), "hex8");
    assert_null(rre_board_name(RRE_BOARD_COUNT));
    assert_null(rre_board_name((rre_board)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_key_parses_every_board_and_count),
        cmocka_unit_test(test_config_key_rejects_player_count_out_of_range),
        cmocka_unit_test(test_config_key_rejects_leading_zero),
        cmocka_unit_test(test_config_key_rejects_more_than_one_digit),
        cmocka_unit_test(test_config_key_rejects_sign),
        cmocka_unit_test(test_config_key_rejects_space),
        cmocka_unit_test(test_config_key_rejects_missing_board),
        cmocka_unit_test(test_config_key_rejects_unknown_board),
        cmocka_unit_test(test_config_key_rejects_missing_player_count),
        cmocka_unit_test(test_config_key_rejects_missing_p),
        cmocka_unit_test(test_config_key_rejects_missing_underscore),
        cmocka_unit_test(test_config_key_is_lowercase_only),
        cmocka_unit_test(test_config_key_rejects_empty_and_null),
        cmocka_unit_test(test_config_key_rejects_trailing_garbage),
        cmocka_unit_test(test_config_key_rejects_very_long_input_and_quotes_it_briefly),
        cmocka_unit_test(test_config_key_rejects_non_ascii_and_escapes_it),
        cmocka_unit_test(test_config_key_parse_needs_output),
        cmocka_unit_test(test_config_key_make_round_trips),
        cmocka_unit_test(test_config_key_make_rejects_bad_board_and_count),
        cmocka_unit_test(test_config_key_make_rejects_small_buffer),
        cmocka_unit_test(test_board_parse_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
