/*
 * payload_test.c - tests of src/payload.c: parsing JSON text into a payload
 * within the limits, checking built values, and normalising aliases.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses `len` bytes, expects `want`, and on failure checks that no value
 * was returned and that the detail message contains `fragment` (if any). */
static void expect_parse(const char *text, size_t len, rre_status want, const char *fragment)
{
    json_t *out = (json_t *)0x1;
    rre_status st = rre_payload_parse(text, len, &out);
    if (st != want)
        fail_msg("parse returned %s (%s), want %s", rre_status_name(st), rre_last_error(),
                 rre_status_name(want));
    if (st == RRE_OK) {
        assert_true(json_is_object(out));
        json_decref(out);
        return;
    }
    assert_null(out);
    if (fragment != NULL && strstr(rre_last_error(), fragment) == NULL)
        fail_msg("detail message \"%s\" does not mention \"%s\"", rre_last_error(), fragment);
}

static void expect_parse_str(const char *text, rre_status want, const char *fragment)
{
    expect_parse(text, strlen(text), want, fragment);
}

/* "{"a":" + depth-1 nested arrays + "}": an object nested `depth` deep. */
static char *nested_text(size_t depth)
{
    size_t arrays = depth - 1;
    char *text = malloc(arrays * 2 + 8);
    assert_non_null(text);
    size_t o = 0;
    memcpy(text + o, "{\"a\":", 5);
    o += 5;
    memset(text + o, '[', arrays);
    o += arrays;
    if (arrays == 0)
        text[o++] = '0';
    memset(text + o, ']', arrays);
    o += arrays;
    text[o++] = '}';
    text[o] = '\0';
    return text;
}

static void test_parse_accepts_an_object(void **state)
{
    (void)state;
    json_t *out = NULL;
    const char *text = "{\"config_key\":\"hex8_2p\",\"epochs\":50,\"ok\":true,\"l\":[1,\"x\"]}";
    assert_int_equal(rre_payload_parse(text, strlen(text), &out), RRE_OK);
    assert_int_equal(json_object_size(out), 4);
    assert_string_equal(json_string_value(json_object_get(out, "config_key")), "hex8_2p");
    json_decref(out);
}

static void test_parse_uses_len_not_nul_terminator(void **state)
{
    (void)state;
    const char text[] = "{\"a\":1}garbage";
    expect_parse(text, 7, RRE_OK, NULL);
}

static void test_parse_rejects_invalid_utf8(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":\"\xff\"}", RRE_EJSON, "line 1");
    expect_parse_str("{\"a\":\"\xc3\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"\xfe\":1}", RRE_EJSON, NULL);
    /* UTF-8 encodings of surrogates and of values past U+10FFFF. */
    expect_parse_str("{\"a\":\"\xed\xa0\x80\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":\"\xf4\x90\x80\x80\"}", RRE_EJSON, NULL);
}

static void test_parse_rejects_overlong_utf8(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":\"\xc0\xaf\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":\"\xe0\x80\xaf\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":\"\xf0\x80\x80\xaf\"}", RRE_EJSON, NULL);
}

static void test_parse_accepts_valid_multibyte_utf8(void **state)
{
    (void)state;
    expect_parse_str("{\"h\xc3\xa9x\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}", RRE_OK, NULL);
    expect_parse_str("{\"a\":\"\\ud83d\\ude00\"}", RRE_OK, NULL);
}

static void test_parse_rejects_lone_surrogate_escape(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":\"\\ud800\"}", RRE_EJSON, "line 1");
    expect_parse_str("{\"a\":\"\\udc00\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":\"\\ud800x\"}", RRE_EJSON, NULL);
}

static void test_parse_rejects_nul_escape(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":\"x\\u0000y\"}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\\u0000\":1}", RRE_EJSON, NULL);
}

static void test_parse_rejects_raw_nul_byte(void **state)
{
    (void)state;
    const char text[] = "{\"a\":\"x\0y\"}";
    expect_parse(text, sizeof text - 1, RRE_EJSON, NULL);
    const char after[] = "{\"a\":1}\0";
    expect_parse(after, sizeof after - 1, RRE_EJSON, NULL);
}

static void test_parse_rejects_trailing_garbage(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":1} x", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":1}{}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":1},", RRE_EJSON, NULL);
    /* Trailing whitespace is not garbage. */
    expect_parse_str("{\"a\":1} \n\t", RRE_OK, NULL);
}

static void test_parse_rejects_empty_input(void **state)
{
    (void)state;
    expect_parse("", 0, RRE_EJSON, "empty");
    expect_parse_str("   \n", RRE_EJSON, NULL);
}

static void test_parse_rejects_malformed_json_with_position(void **state)
{
    (void)state;
    expect_parse_str("{\n  \"a\": tru\n}", RRE_EJSON, "line 2");
    expect_parse_str("{\"a\":1,}", RRE_EJSON, "column");
    expect_parse_str("{'a':1}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":01}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":NaN}", RRE_EJSON, NULL);
    expect_parse_str("{\"a\":\"unterminated}", RRE_EJSON, NULL);
}

static void test_parse_rejects_duplicate_keys(void **state)
{
    (void)state;
    expect_parse_str("{\"a\":1,\"a\":2}", RRE_EJSON, "duplicate");
    /* Duplicates are rejected in nested objects too. */
    expect_parse_str("{\"o\":{\"b\":1,\"b\":1}}", RRE_EJSON, "duplicate");
}

static void test_parse_rejects_non_object(void **state)
{
    (void)state;
    expect_parse_str("[1,2]", RRE_ENOT_OBJECT, "array");
    expect_parse_str("\"text\"", RRE_ENOT_OBJECT, "string");
    expect_parse_str("42", RRE_ENOT_OBJECT, "number");
    expect_parse_str("true", RRE_ENOT_OBJECT, "boolean");
    expect_parse_str("null", RRE_ENOT_OBJECT, "null");
}

static void test_parse_accepts_text_of_exactly_the_size_limit(void **state)
{
    (void)state;
    size_t len = RRE_PAYLOAD_MAX_BYTES;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, ' ', len);
    memcpy(text, "{\"a\":1}", 7);
    expect_parse(text, len, RRE_OK, NULL);
    free(text);
}

static void test_parse_rejects_text_over_the_size_limit(void **state)
{
    (void)state;
    size_t len = RRE_PAYLOAD_MAX_BYTES + 1;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, ' ', len);
    memcpy(text, "{\"a\":1}", 7);
    expect_parse(text, len, RRE_ELIMIT, "1048577 bytes");
    free(text);
}

static void test_parse_accepts_depth_32(void **state)
{
    (void)state;
    char *text = nested_text(RRE_PAYLOAD_MAX_DEPTH);
    expect_parse_str(text, RRE_OK, NULL);
    free(text);
    char *flat = nested_text(1);
    expect_parse_str(flat, RRE_OK, NULL);
    free(flat);
}

static void test_parse_rejects_depth_33(void **state)
{
    (void)state;
    char *text = nested_text(RRE_PAYLOAD_MAX_DEPTH + 1);
    expect_parse_str(text, RRE_ELIMIT, "deeper than 32");
    free(text);
}

static void test_parse_rejects_nesting_beyond_the_parser_stack_as_a_limit(void **state)
{
    (void)state;
    char *text = nested_text(100000);
    expect_parse_str(text, RRE_ELIMIT, NULL);
    free(text);
}

static void test_parse_rejects_huge_numbers(void **state)
{
    (void)state;
    expect_parse_str("{\"n\":123456789012345678901234567890}", RRE_ELIMIT, "too big");
    expect_parse_str("{\"n\":-99999999999999999999}", RRE_ELIMIT, NULL);
    expect_parse_str("{\"n\":1e400}", RRE_ELIMIT, NULL);
    /* The extremes of int64 and of double are fine. */
    json_t *out = NULL;
    const char *text = "{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"r\":1.7e308}";
    assert_int_equal(rre_payload_parse(text, strlen(text), &out), RRE_OK);
    assert_true(json_integer_value(json_object_get(out, "max")) == INT64_MAX);
    assert_true(json_integer_value(json_object_get(out, "min")) == INT64_MIN);
    json_decref(out);
}

static void test_parse_accepts_100k_keys_under_the_limit(void **state)
{
    (void)state;
    size_t cap = RRE_PAYLOAD_MAX_BYTES;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t o = 0;
    text[o++] = '{';
    for (int i = 0; i < 100000; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s\"%d\":0", i ? "," : "", i);
    text[o++] = '}';
    assert_true(o <= cap);
    json_t *out = NULL;
    assert_int_equal(rre_payload_parse(text, o, &out), RRE_OK);
    assert_int_equal(json_object_size(out), 100000);
    json_decref(out);
    free(text);
}

static void test_parse_rejects_null_arguments(void **state)
{
    (void)state;
    json_t *out = NULL;
    assert_int_equal(rre_payload_parse(NULL, 0, &out), RRE_EINVAL);
    assert_null(out);
    assert_int_equal(rre_payload_parse("{}", 2, NULL), RRE_EINVAL);
}

static void test_check_accepts_built_object(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:s, s:[i, {s:b}]}", "a", "x", "l", 1, "o", 1);
    assert_int_equal(rre_payload_check(p), RRE_OK);
    json_decref(p);
}

static void test_check_rejects_non_object(void **state)
{
    (void)state;
    json_t *a = json_array();
    assert_int_equal(rre_payload_check(a), RRE_ENOT_OBJECT);
    json_decref(a);
    assert_int_equal(rre_payload_check(NULL), RRE_ENOT_OBJECT);
}

static void test_check_applies_depth_limit_to_built_value(void **state)
{
    (void)state;
    json_t *root = json_object();
    json_t *cur = root;
    for (int i = 1; i < RRE_PAYLOAD_MAX_DEPTH; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "n", next);
        cur = next;
    }
    assert_int_equal(rre_payload_check(root), RRE_OK);
    json_object_set_new(cur, "n", json_array());
    assert_int_equal(rre_payload_check(root), RRE_ELIMIT);
    json_decref(root);
}

static void test_check_rejects_value_that_contains_itself(void **state)
{
    (void)state;
    json_t *root = json_object();
    json_t *inner = json_array();
    json_object_set_new(root, "inner", inner);
    json_array_append(inner, root);
    assert_int_equal(rre_payload_check(root), RRE_ELIMIT);
    /* Break the cycle so both are freed. */
    json_array_clear(inner);
    json_decref(root);
}

static void test_normalize_renames_each_alias(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:s, s:s, s:f, s:i, s:i, s:i}", "config", "hex8_2p", "checkpoint_path",
                          "/m.pth", "loss", 0.5, "samples", 100, "games", 10, "epochs", 3);
    assert_int_equal(rre_payload_normalize(p), 5);
    assert_string_equal(json_string_value(json_object_get(p, "config_key")), "hex8_2p");
    assert_string_equal(json_string_value(json_object_get(p, "model_path")), "/m.pth");
    assert_true(json_real_value(json_object_get(p, "final_loss")) == 0.5);
    assert_int_equal(json_integer_value(json_object_get(p, "samples_trained")), 100);
    assert_int_equal(json_integer_value(json_object_get(p, "games_played")), 10);
    assert_int_equal(json_integer_value(json_object_get(p, "epochs")), 3);
    assert_null(json_object_get(p, "config"));
    assert_null(json_object_get(p, "checkpoint_path"));
    assert_null(json_object_get(p, "loss"));
    assert_null(json_object_get(p, "samples"));
    assert_null(json_object_get(p, "games"));
    assert_int_equal(json_object_size(p), 6);
    json_decref(p);
}

static void test_normalize_renames_path_when_alone(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:s}", "path", "/p.pth");
    assert_int_equal(rre_payload_normalize(p), 1);
    assert_string_equal(json_string_value(json_object_get(p, "model_path")), "/p.pth");
    assert_null(json_object_get(p, "path"));
    json_decref(p);
}

static void test_normalize_keeps_canonical_when_both_present(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:s, s:s, s:n, s:f}", "config", "square8_3p", "config_key", "hex8_2p",
                          "final_loss", "loss", 0.25);
    assert_int_equal(rre_payload_normalize(p), 0);
    assert_string_equal(json_string_value(json_object_get(p, "config_key")), "hex8_2p");
    assert_string_equal(json_string_value(json_object_get(p, "config")), "square8_3p");
    /* A canonical field that is present but null still counts as present. */
    assert_true(json_is_null(json_object_get(p, "final_loss")));
    assert_true(json_real_value(json_object_get(p, "loss")) == 0.25);
    json_decref(p);
}

static void test_normalize_prefers_checkpoint_path_over_path(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:s, s:s}", "path", "/p.pth", "checkpoint_path", "/c.pth");
    assert_int_equal(rre_payload_normalize(p), 1);
    assert_string_equal(json_string_value(json_object_get(p, "model_path")), "/c.pth");
    assert_string_equal(json_string_value(json_object_get(p, "path")), "/p.pth");
    assert_null(json_object_get(p, "checkpoint_path"));
    json_decref(p);
}

static void test_normalize_is_top_level_only(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:{s:s}}", "nested", "config", "hex8_2p");
    assert_int_equal(rre_payload_normalize(p), 0);
    json_t *nested = json_object_get(p, "nested");
    assert_non_null(json_object_get(nested, "config"));
    assert_null(json_object_get(nested, "config_key"));
    json_decref(p);
}

static void test_normalize_moves_values_of_any_type(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:{s:i}}", "config", "x", 1);
    json_t *value = json_object_get(p, "config");
    assert_int_equal(rre_payload_normalize(p), 1);
    assert_ptr_equal(json_object_get(p, "config_key"), value);
    json_decref(p);
}

static void test_normalize_ignores_non_objects(void **state)
{
    (void)state;
    assert_int_equal(rre_payload_normalize(NULL), 0);
    json_t *a = json_pack("[s]", "config");
    assert_int_equal(rre_payload_normalize(a), 0);
    json_decref(a);
}

static bool parse_alloc_fails;

static void *parse_malloc(size_t n)
{
    return parse_alloc_fails ? NULL : malloc(n);
}

static void test_parse_without_memory_is_enomem_not_bad_json(void **state)
{
    (void)state;
    json_t *p = NULL;
    json_set_alloc_funcs(parse_malloc, free);
    parse_alloc_fails = true;
    rre_status st = rre_payload_parse("{\"k\":1}", 7, &p);
    parse_alloc_fails = false;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(st, RRE_ENOMEM);
    assert_null(p);
    assert_non_null(strstr(rre_last_error(), "out of memory"));
}

/* ---- release ------------------------------------------------------------ */

static void test_release_drops_one_reference_and_ignores_null_and_statics(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:i}", "k", 1);
    json_incref(p);
    rre_payload_release(p); /* one holder left */
    assert_int_equal(p->refcount, 1);
    assert_int_equal(json_integer_value(json_object_get(p, "k")), 1);
    rre_payload_release(p); /* freed: the leak checker sees no leak */
    rre_payload_release(NULL);
    rre_payload_release(json_true());
    rre_payload_release(json_null());
    assert_true(json_is_true(json_true()));
}

struct holder {
    json_t *payload;
    long sum;
};

static void *read_then_release(void *arg)
{
    struct holder *h = arg;
    for (int i = 0; i < 100; i++)
        h->sum += json_integer_value(json_object_get(h->payload, "k"));
    rre_payload_release(h->payload);
    return NULL;
}

static void test_release_from_many_threads_frees_once_after_every_read(void **state)
{
    (void)state;
    enum { THREADS = 8, ROUNDS = 200 };
    for (int round = 0; round < ROUNDS; round++) {
        json_t *p = json_pack("{s:i}", "k", 2);
        pthread_t th[THREADS];
        struct holder h[THREADS];
        for (int t = 0; t < THREADS; t++) {
            h[t] = (struct holder){json_incref(p), 0};
            pthread_create(&th[t], NULL, read_then_release, &h[t]);
        }
        rre_payload_release(p); /* the creator's reference, maybe not the last */
        for (int t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            assert_int_equal(h[t].sum, 200);
        }
    }
}

static void test_json_text_round_trips_a_payload_in_key_order(void **state)
{
    (void)state;
    const char *in = "{\"b\":1,\"a\":[true,null,\"\u00e9\"],\"c\":{\"x\":2.5}}";
    json_t *p = NULL;
    assert_int_equal(rre_payload_parse(in, strlen(in), &p), RRE_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(rre_json_text(p, &text, &len), RRE_OK);
    assert_string_equal(text, "{\"b\":1,\"a\":[true,null,\"\xc3\xa9\"],\"c\":{\"x\":2.5}}");
    assert_int_equal(len, strlen(text));
    rre_free(text);
    json_decref(p);
}

static void test_json_text_refuses_null_arguments(void **state)
{
    (void)state;
    char *text = (char *)"untouched";
    assert_int_equal(rre_json_text(NULL, &text, NULL), RRE_EINVAL);
    assert_null(text);
    assert_int_equal(rre_json_text(json_true(), NULL, NULL), RRE_EINVAL);
    rre_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_drops_one_reference_and_ignores_null_and_statics),
        cmocka_unit_test(test_release_from_many_threads_frees_once_after_every_read),
        cmocka_unit_test(test_parse_without_memory_is_enomem_not_bad_json),
        cmocka_unit_test(test_parse_accepts_an_object),
        cmocka_unit_test(test_parse_uses_len_not_nul_terminator),
        cmocka_unit_test(test_parse_rejects_invalid_utf8),
        cmocka_unit_test(test_parse_rejects_overlong_utf8),
        cmocka_unit_test(test_parse_accepts_valid_multibyte_utf8),
        cmocka_unit_test(test_parse_rejects_lone_surrogate_escape),
        cmocka_unit_test(test_parse_rejects_nul_escape),
        cmocka_unit_test(test_parse_rejects_raw_nul_byte),
        cmocka_unit_test(test_parse_rejects_trailing_garbage),
        cmocka_unit_test(test_parse_rejects_empty_input),
        cmocka_unit_test(test_parse_rejects_malformed_json_with_position),
        cmocka_unit_test(test_parse_rejects_duplicate_keys),
        cmocka_unit_test(test_parse_rejects_non_object),
        cmocka_unit_test(test_parse_accepts_text_of_exactly_the_size_limit),
        cmocka_unit_test(test_parse_rejects_text_over_the_size_limit),
        cmocka_unit_test(test_parse_accepts_depth_32),
        cmocka_unit_test(test_parse_rejects_depth_33),
        cmocka_unit_test(test_parse_rejects_nesting_beyond_the_parser_stack_as_a_limit),
        cmocka_unit_test(test_parse_rejects_huge_numbers),
        cmocka_unit_test(test_parse_accepts_100k_keys_under_the_limit),
        cmocka_unit_test(test_parse_rejects_null_arguments),
        cmocka_unit_test(test_check_accepts_built_object),
        cmocka_unit_test(test_check_rejects_non_object),
        cmocka_unit_test(test_check_applies_depth_limit_to_built_value),
        cmocka_unit_test(test_check_rejects_value_that_contains_itself),
        cmocka_unit_test(test_normalize_renames_each_alias),
        cmocka_unit_test(test_normalize_renames_path_when_alone),
        cmocka_unit_test(test_normalize_keeps_canonical_when_both_present),
        cmocka_unit_test(test_normalize_prefers_checkpoint_path_over_path),
        cmocka_unit_test(test_normalize_is_top_level_only),
        cmocka_unit_test(test_normalize_moves_values_of_any_type),
        cmocka_unit_test(test_normalize_ignores_non_objects),
        cmocka_unit_test(test_json_text_round_trips_a_payload_in_key_order),
        cmocka_unit_test(test_json_text_refuses_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
