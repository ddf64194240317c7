/*
 * canonical_test.c - tests of the canonical JSON writer (src/canonical.c):
 * key order, whitespace, string escapes, the ECMAScript number form, limits
 * and the internal buffer. Expected texts follow RFC 8785; the number forms
 * were checked against an ECMAScript engine's String(x).
 */
#include "testutil.h"

#include "canonical.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The canonical text of `value`; takes ownership of `value`. */
static char *canon_value(json_t *value)
{
    assert_non_null(value);
    char *out = NULL;
    size_t len = 0;
    rre_status st = rre_canonical_json(value, &out, &len);
    if (st != RRE_OK)
        fail_msg("rre_canonical_json: %s (%s)", rre_status_name(st), rre_last_error());
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    json_decref(value);
    return out;
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v == NULL)
        fail_msg("test input is not JSON: %s (%s)", text, err.text);
    return v;
}

static void assert_canonical(const char *input, const char *expected)
{
    char *out = canon_value(parse(input));
    if (strcmp(out, expected) != 0)
        fail_msg("canonical of %s\n  got      %s\n  expected %s", input, out, expected);
    free(out);
}

static double real_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void assert_real(double x, const char *expected)
{
    char *out = canon_value(json_real(x));
    if (strcmp(out, expected) != 0)
        fail_msg("canonical of %.17g\n  got      %s\n  expected %s", x, out, expected);
    free(out);
}

static void test_output_has_no_whitespace(void **state)
{
    (void)state;
    assert_canonical("{ \"b\" : [ 1 , 2 , { \"c\" : null } ] ,\n\t\"a\" : true }",
                     "{\"a\":true,\"b\":[1,2,{\"c\":null}]}");
}

static void test_keys_are_sorted_at_every_level(void **state)
{
    (void)state;
    assert_canonical("{\"z\":{\"y\":1,\"x\":2},\"a\":[{\"q\":1,\"p\":2}],\"m\":false}",
                     "{\"a\":[{\"p\":2,\"q\":1}],\"m\":false,\"z\":{\"x\":2,\"y\":1}}");
}

static void test_insertion_order_does_not_change_output(void **state)
{
    (void)state;
    char *a = canon_value(parse("{\"epochs\":50,\"board_type\":\"hex8\",\"num_players\":2}"));
    char *b = canon_value(parse("{\"num_players\":2,\"epochs\":50,\"board_type\":\"hex8\"}"));
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_prefix_key_sorts_first(void **state)
{
    (void)state;
    assert_canonical("{\"ab\":1,\"a\":2,\"\":3}", "{\"\":3,\"a\":2,\"ab\":1}");
}

/* The sorting example of RFC 8785, section 3.2.3. */
static void test_keys_sort_by_utf16_code_units_as_in_rfc_example(void **state)
{
    (void)state;
    assert_canonical("{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\","
                     "\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\","
                     "\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
                     "\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}",
                     "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                     "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
                     "\"\xe2\x82\xac\":\"Euro Sign\","
                     "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
                     "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* U+10000 is D800 DC00 in UTF-16, below U+E000, although its UTF-8 bytes
 * (F0 ...) sort above EE ... */
static void test_supplementary_key_sorts_before_private_use_area(void **state)
{
    (void)state;
    assert_canonical("{\"\\ue000\":1,\"\\uffff\":2,\"\\ud800\\udc00\":3,\"\\ud7ff\":4}",
                     "{\"\xed\x9f\xbf\":4,\"\xf0\x90\x80\x80\":3,\"\xee\x80\x80\":1,"
                     "\"\xef\xbf\xbf\":2}");
}

static int qsort_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_large_object_is_sorted(void **state)
{
    (void)state;
    enum { N = 300 };
    json_t *obj = json_object();
    char *names[N];
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", (i * 7919) % 100003);
        names[i] = strdup(key);
        json_object_set_new(obj, key, json_integer(i));
    }
    qsort(names, N, sizeof names[0], qsort_strcmp);
    char *out = canon_value(obj);
    const char *p = out;
    for (int i = 0; i < N; i++) {
        char want[24];
        snprintf(want, sizeof want, "\"%s\":", names[i]);
        const char *at = strstr(p, want);
        if (at == NULL)
            fail_msg("key %s missing or out of order", names[i]);
        p = at + strlen(want);
        free(names[i]);
    }
    free(out);
}

static void test_strings_use_only_required_escapes(void **state)
{
    (void)state;
    assert_canonical("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0001\\u001f \\u007f\"",
                     "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f \x7f\"");
}

static void test_non_ascii_is_written_raw(void **state)
{
    (void)state;
    assert_canonical("\"\\u2028 \\u20ac \\ud83d\\ude00\"",
                     "\"\xe2\x80\xa8 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

static void test_escaped_and_raw_unicode_give_same_text(void **state)
{
    (void)state;
    char *a = canon_value(parse("{\"name\":\"caf\\u00e9\"}"));
    char *b = canon_value(parse("{\"name\":\"caf\xc3\xa9\"}"));
    assert_string_equal(a, b);
    assert_string_equal(a, "{\"name\":\"caf\xc3\xa9\"}");
    free(a);
    free(b);
}

static void test_nul_in_string_is_escaped(void **state)
{
    (void)state;
    char *out = canon_value(json_stringn("a\0b", 3));
    assert_string_equal(out, "\"a\\u0000b\"");
    free(out);
}

static void test_integers_are_exact(void **state)
{
    (void)state;
    assert_canonical("[0,-1,42,9007199254740993,9223372036854775807,-9223372036854775808]",
                     "[0,-1,42,9007199254740993,9223372036854775807,-9223372036854775808]");
}

static void test_integral_reals_have_no_fraction(void **state)
{
    (void)state;
    assert_canonical("[1.0,1.00,1e0,10e-1,-2.0,100.0,4503599627370496.0]",
                     "[1,1,1,1,-2,100,4503599627370496]");
}

static void test_reals_use_ecmascript_form(void **state)
{
    (void)state;
    assert_real(1e21, "1e+21");
    assert_real(1e20, "100000000000000000000");
    assert_real(1e-7, "1e-7");
    assert_real(1.5e-7, "1.5e-7");
    assert_real(0.000001, "0.000001");
    assert_real(0.000025, "0.000025");
    assert_real(123456789012345680000.0, "123456789012345680000");
    assert_real(-0.0, "0");
    assert_real(5e-324, "5e-324");
    assert_real(-5e-324, "-5e-324");
    assert_real(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_real(1e300, "1e+300");
    assert_real(0.1 + 0.2, "0.30000000000000004");
    assert_real(0.0423, "0.0423");
    assert_real(1832.5, "1832.5");
    assert_real(-1.5, "-1.5");
    assert_real(0.002, "0.002");
}

/* The number examples of RFC 8785, appendix B, given as IEEE 754 bits. */
static void test_reals_match_rfc_8785_examples(void **state)
{
    (void)state;
    static const struct {
        uint64_t bits;
        const char *text;
    } cases[] = {
        {0x0000000000000001, "5e-324"},
        {0x8000000000000000, "0"},
        {0x7fefffffffffffff, "1.7976931348623157e+308"},
        {0x44b52d02c7e14af6, "1e+23"},
        {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
        {0x3eb0c6f7a0b5ed8d, "0.000001"},
        {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8e, "0.0000010000000000000002"},
        {0x41b3de4355555553, "333333333.3333332"},
        {0x41b3de4355555554, "333333333.33333325"},
        {0x41b3de4355555555, "333333333.3333333"},
        {0x41b3de4355555556, "333333333.3333334"},
        {0x41b3de4355555557, "333333333.33333343"},
        {0xbecbf647612f3696, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959, "1424953923781206.2"},
        {0x444b1ae4d6e2ef4f, "999999999999999900000"},
        {0x444b1ae4d6e2ef50, "1e+21"},
        {0x444b1ae4d6e2ef4e, "999999999999999700000"},
        {0x4340000000000000, "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_real(real_from_bits(cases[i].bits), cases[i].text);
}

/* Powers of two have a rounding interval half as wide below them, and
 * subnormals carry fewer digits; both need more than the obvious method. */
static void test_reals_at_binary_boundaries_are_shortest(void **state)
{
    (void)state;
    assert_real(real_from_bits(0x3e70000000000000), "5.960464477539063e-8"); /* 2^-24 */
    assert_real(real_from_bits(0x0010000000000000), "2.2250738585072014e-308");
    assert_real(real_from_bits(0x000fffffffffffff), "2.225073858507201e-308");
}

/* jansson refuses to build a non-finite real, so this reaches into its
 * private layout (a json_t header followed by the double) to make one, as
 * a corrupted or foreign value would. */
static void test_non_finite_real_is_einval(void **state)
{
    (void)state;
    assert_null(json_real(INFINITY));
    struct mirror_real {
        json_t json;
        double value;
    };
    const double bad[] = {INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *arr = json_array();
        json_t *r = json_real(1.5);
        ((struct mirror_real *)r)->value = bad[i];
        json_array_append_new(arr, r);
        char *out = (char *)"untouched";
        size_t len = 99;
        assert_int_equal(rre_canonical_json(arr, &out, &len), RRE_EINVAL);
        assert_null(out);
        assert_int_equal(len, 0);
        assert_non_null(strstr(rre_last_error(), "non-finite"));
        json_decref(arr);
    }
}

static void test_null_arguments_are_einval(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(rre_canonical_json(NULL, &out, NULL), RRE_EINVAL);
    assert_null(out);
    json_t *v = json_true();
    assert_int_equal(rre_canonical_json(v, NULL, NULL), RRE_EINVAL);
    assert_int_equal(rre_canonical_json(v, &out, NULL), RRE_OK);
    assert_string_equal(out, "true");
    free(out);
}

static json_t *nested_arrays(int depth)
{
    json_t *v = json_integer(7);
    for (int i = 0; i < depth; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    return v;
}

static void test_nesting_at_limit_is_accepted(void **state)
{
    (void)state;
    json_t *v = nested_arrays(RRE__CANONICAL_MAX_DEPTH);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(rre_canonical_json(v, &out, &len), RRE_OK);
    assert_int_equal(len, 2 * RRE__CANONICAL_MAX_DEPTH + 1);
    free(out);
    json_decref(v);
}

static void test_nesting_beyond_limit_is_elimit(void **state)
{
    (void)state;
    json_t *v = nested_arrays(RRE__CANONICAL_MAX_DEPTH + 1);
    char *out = NULL;
    assert_int_equal(rre_canonical_json(v, &out, NULL), RRE_ELIMIT);
    assert_null(out);
    json_decref(v);
}

static void test_large_text_spills_to_heap(void **state)
{
    (void)state;
    size_t n = 3 * RRE__CANONICAL_STACK_BUF;
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    s[10] = '\n';
    json_t *obj = json_pack("{s:s}", "big", s);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(rre_canonical_json(obj, &out, &len), RRE_OK);
    assert_int_equal(len, n + 1 + strlen("{\"big\":\"\"}"));
    assert_memory_equal(out, "{\"big\":\"xxxxxxxxxx\\nxxx", 23);
    assert_int_equal(out[len - 1], '}');
    free(out);
    json_decref(obj);
    free(s);
}

static void test_output_is_a_fixed_point(void **state)
{
    (void)state;
    const char *input = "{\"f\":[0.1,1e-9,1e30,-0.0,3],\"s\":\"\\u00e9\\t\\\"\","
                        "\"\\ud83d\\ude00\":{\"\\ue000\":null}}";
    char *once = canon_value(parse(input));
    char *twice = canon_value(parse(once));
    assert_string_equal(once, twice);
    free(once);
    free(twice);
}

static void test_buffer_starts_on_caller_memory_and_grows(void **state)
{
    (void)state;
    char small[8];
    struct rre__buf buf;
    rre__buf_init(&buf, small, sizeof small);
    json_t *v = parse("{\"key\":[1,2,3]}");
    assert_int_equal(rre__canonical_write(v, &buf), RRE_OK);
    assert_true(buf.on_heap);
    assert_int_equal(buf.len, strlen("{\"key\":[1,2,3]}"));
    assert_memory_equal(buf.data, "{\"key\":[1,2,3]}", buf.len);
    rre__buf_reset(&buf);
    assert_int_equal(rre__canonical_write(v, &buf), RRE_OK);
    assert_int_equal(buf.len, strlen("{\"key\":[1,2,3]}"));
    rre__buf_free(&buf);
    assert_null(buf.data);
    json_decref(v);

    char room[64];
    rre__buf_init(&buf, room, sizeof room);
    v = json_string("short");
    assert_int_equal(rre__canonical_write(v, &buf), RRE_OK);
    assert_false(buf.on_heap);
    assert_ptr_equal(buf.data, room);
    rre__buf_free(&buf);
    json_decref(v);
}

static void test_payload_writer_skips_envelope_fields_at_top_level_only(void **state)
{
    (void)state;
    json_t *v = parse("{\"timestamp\":\"t\",\"created_at\":1,\"source\":\"s\",\"trace_id\":\"x\","
                      "\"sources\":2,\"inner\":{\"timestamp\":\"t\",\"source\":\"s\"}}");
    char room[256];
    struct rre__buf buf;
    rre__buf_init(&buf, room, sizeof room);
    assert_int_equal(rre__canonical_write_payload(v, &buf), RRE_OK);
    const char *want = "{\"inner\":{\"source\":\"s\",\"timestamp\":\"t\"},\"sources\":2}";
    assert_int_equal(buf.len, strlen(want));
    assert_memory_equal(buf.data, want, buf.len);
    rre__buf_free(&buf);
    json_decref(v);
}

static void test_payload_writer_rejects_non_object(void **state)
{
    (void)state;
    json_t *v = parse("[1]");
    struct rre__buf buf;
    rre__buf_init(&buf, NULL, 0);
    assert_int_equal(rre__canonical_write_payload(v, &buf), RRE_ENOT_OBJECT);
    assert_int_equal(rre__canonical_write_payload(NULL, &buf), RRE_ENOT_OBJECT);
    rre__buf_free(&buf);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_has_no_whitespace),
        cmocka_unit_test(test_keys_are_sorted_at_every_level),
        cmocka_unit_test(test_insertion_order_does_not_change_output),
        cmocka_unit_test(test_prefix_key_sorts_first),
        cmocka_unit_test(test_keys_sort_by_utf16_code_units_as_in_rfc_example),
        cmocka_unit_test(test_supplementary_key_sorts_before_private_use_area),
        cmocka_unit_test(test_large_object_is_sorted),
        cmocka_unit_test(test_strings_use_only_required_escapes),
        cmocka_unit_test(test_non_ascii_is_written_raw),
        cmocka_unit_test(test_escaped_and_raw_unicode_give_same_text),
        cmocka_unit_test(test_nul_in_string_is_escaped),
        cmocka_unit_test(test_integers_are_exact),
        cmocka_unit_test(test_integral_reals_have_no_fraction),
        cmocka_unit_test(test_reals_use_ecmascript_form),
        cmocka_unit_test(test_reals_match_rfc_8785_examples),
        cmocka_unit_test(test_reals_at_binary_boundaries_are_shortest),
        cmocka_unit_test(test_non_finite_real_is_einval),
        cmocka_unit_test(test_null_arguments_are_einval),
        cmocka_unit_test(test_nesting_at_limit_is_accepted),
        cmocka_unit_test(test_nesting_beyond_limit_is_elimit),
        cmocka_unit_test(test_large_text_spills_to_heap),
        cmocka_unit_test(test_output_is_a_fixed_point),
        cmocka_unit_test(test_buffer_starts_on_caller_memory_and_grows),
        cmocka_unit_test(test_payload_writer_skips_envelope_fields_at_top_level_only),
        cmocka_unit_test(test_payload_writer_rejects_non_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
