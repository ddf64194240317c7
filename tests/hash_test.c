/*
 * hash_test.c - tests of the content hash (src/hash.c): which differences
 * in a payload change the hash and which do not, the envelope fields, the
 * type name, argument errors, hex output, reference values computed
 * independently from the canonical bytes, and use from several threads.
 */
#include "testutil.h"

#include "canonical.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (v == NULL)
        fail_msg("test input is not JSON: %s (%s)", text, err.text);
    return v;
}

/* The hex content hash of `text` published as `type`. */
static void hash_text(rre_event_type type, const char *text, char hex[RRE_HASH_HEX_SIZE])
{
    json_t *v = parse(text);
    uint8_t h[RRE_HASH_SIZE];
    rre_status st = rre_content_hash(type, v, h);
    if (st != RRE_OK)
        fail_msg("rre_content_hash(%s): %s (%s)", text, rre_status_name(st), rre_last_error());
    rre_hash_to_hex(h, hex);
    json_decref(v);
}

static void assert_same_hash(rre_event_type type, const char *a, const char *b)
{
    char ha[RRE_HASH_HEX_SIZE], hb[RRE_HASH_HEX_SIZE];
    hash_text(type, a, ha);
    hash_text(type, b, hb);
    if (strcmp(ha, hb) != 0)
        fail_msg("expected the same hash:\n  %s -> %s\n  %s -> %s", a, ha, b, hb);
}

static void assert_different_hash(rre_event_type type, const char *a, const char *b)
{
    char ha[RRE_HASH_HEX_SIZE], hb[RRE_HASH_HEX_SIZE];
    hash_text(type, a, ha);
    hash_text(type, b, hb);
    if (strcmp(ha, hb) == 0)
        fail_msg("expected different hashes:\n  %s\n  %s\n  both %s", a, b, ha);
}

/* The schemas document's TRAINING_COMPLETED example, keys in its order. */
static const char training_example[] =
    "{\"config_key\": \"hex8_2p\", \"board_type\": \"hex8\", \"num_players\": 2,"
    " \"model_path\": \"/models/canonical_hex8_2p.pth\", \"epochs\": 50,"
    " \"final_loss\": 0.0423, \"samples_trained\": 85000,"
    " \"job_id\": \"train_hex8_2p_1704100200\", \"duration_seconds\": 1832.5,"
    " \"early_stopped\": true}";

/* printf 'TRAINING_COMPLETED\n<canonical text of training_example>' | sha256sum */
static const char training_example_hash[] =
    "813d14d6723f87c4b3f1bbf3d4392bb0e982fc792d9c986c51170d7882b0ab2b";

static void test_hash_of_known_payload_matches_reference(void **state)
{
    (void)state;
    char hex[RRE_HASH_HEX_SIZE];
    hash_text(RRE_EV_TRAINING_COMPLETED, training_example, hex);
    assert_string_equal(hex, training_example_hash);
}

/* printf 'EVALUATION_COMPLETED\n{"config_key":"hex8_2p","elo":1650.5,
 * "harness_results":{"gumbel_mcts":{"elo":1650,"games":50},"minimax":
 * {"elo":1580,"games":50}},"note":"caf\xc3\xa9\\n"}' | sha256sum */
static void test_hash_of_nested_payload_matches_reference(void **state)
{
    (void)state;
    char hex[RRE_HASH_HEX_SIZE];
    hash_text(RRE_EV_EVALUATION_COMPLETED,
              "{\"note\":\"caf\\u00e9\\n\",\"harness_results\":{\"minimax\":{\"games\":50,"
              "\"elo\":1580},\"gumbel_mcts\":{\"elo\":1650,\"games\":50}},\"elo\":1650.50,"
              "\"config_key\":\"hex8_2p\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
              hex);
    assert_string_equal(hex, "2f7570391b806c687fcc5e4f5c03fac074c258b665d2487cdd9584b5a192cf90");
}

static void test_key_order_and_whitespace_do_not_change_hash(void **state)
{
    (void)state;
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, training_example,
                     "{\"early_stopped\":true,\"duration_seconds\":1832.5,\"job_id\":"
                     "\"train_hex8_2p_1704100200\",\"samples_trained\":85000,\"final_loss\":"
                     "0.0423,\"epochs\":50,\"model_path\":\"/models/canonical_hex8_2p.pth\","
                     "\"num_players\":2,\"board_type\":\"hex8\",\"config_key\":\"hex8_2p\"}");
}

static void test_number_spellings_hash_alike(void **state)
{
    (void)state;
    const char *spellings[] = {"{\"x\":1}",   "{\"x\":1.0}",   "{\"x\":1.00}",
                               "{\"x\":1e0}", "{\"x\":10e-1}", "{\"x\":0.1e1}"};
    for (size_t i = 1; i < sizeof spellings / sizeof spellings[0]; i++)
        assert_same_hash(RRE_EV_TRAINING_COMPLETED, spellings[0], spellings[i]);
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":0.0423}", "{\"x\":4.23e-2}");
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":-0.0}", "{\"x\":0}");
}

static void test_escaped_and_raw_unicode_hash_alike(void **state)
{
    (void)state;
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"s\":\"\\u00e9\\u2028\\ud83d\\ude00\"}",
                     "{\"s\":\"\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\"}");
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"s\":\"a\\/b\"}", "{\"s\":\"a/b\"}");
}

static void test_envelope_fields_are_ignored_at_top_level(void **state)
{
    (void)state;
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"epochs\":5}",
                     "{\"epochs\":5,\"timestamp\":\"2026-01-01T00:00:00Z\",\"created_at\":"
                     "1704100200.5,\"source\":\"trainer\",\"trace_id\":"
                     "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}");
    assert_same_hash(RRE_EV_TRAINING_COMPLETED, "{\"epochs\":5,\"source\":\"a\"}",
                     "{\"epochs\":5,\"source\":\"b\"}");
}

static void test_envelope_fields_are_hashed_when_nested(void **state)
{
    (void)state;
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"meta\":{\"source\":\"a\"}}",
                          "{\"meta\":{\"source\":\"b\"}}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"meta\":{}}",
                          "{\"meta\":{\"timestamp\":\"2026-01-01T00:00:00Z\"}}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"list\":[{\"trace_id\":\"x\"}]}",
                          "{\"list\":[{\"trace_id\":\"y\"}]}");
}

static void test_near_envelope_names_are_hashed(void **state)
{
    (void)state;
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"sources\":1}", "{\"sources\":2}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"Source\":1}", "{\"Source\":2}");
}

static void test_content_differences_change_hash(void **state)
{
    (void)state;
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":1}", "{\"x\":\"1\"}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":1}", "{\"x\":1.5}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":null}", "{}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"x\":[1,2]}", "{\"x\":[2,1]}");
    assert_different_hash(RRE_EV_TRAINING_COMPLETED, "{\"a\":\"b\",\"c\":\"d\"}",
                          "{\"a\":\"b\\\",\\\"c\\\":\\\"d\"}");
}

static int compare_hashes(const void *a, const void *b)
{
    return memcmp(a, b, RRE_HASH_SIZE);
}

static void test_distinct_payloads_do_not_collide(void **state)
{
    (void)state;
    enum { N = 4000 };
    uint8_t(*hashes)[RRE_HASH_SIZE] = malloc(N * sizeof *hashes);
    assert_non_null(hashes);
    for (int i = 0; i < N; i++) {
        json_t *v;
        switch (i % 4) {
        case 0:
            v = json_pack("{s:i}", "epochs", i);
            break;
        case 1:
            v = json_pack("{s:f}", "epochs", i + 0.5);
            break;
        case 2:
            v = json_pack("{s:s+}", "job_id", "job", i % 2 ? "x" : "y");
            json_object_set_new(v, "n", json_integer(i));
            break;
        default:
            v = json_pack("{s:[i,i]}", "pair", i, N - i);
            break;
        }
        assert_non_null(v);
        assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, hashes[i]), RRE_OK);
        json_decref(v);
    }
    qsort(hashes, N, sizeof hashes[0], compare_hashes);
    for (int i = 1; i < N; i++)
        if (memcmp(hashes[i - 1], hashes[i], RRE_HASH_SIZE) == 0)
            fail_msg("two distinct payloads share a hash");
    free(hashes);
}

static void test_type_name_is_part_of_hash(void **state)
{
    (void)state;
    char a[RRE_HASH_HEX_SIZE], b[RRE_HASH_HEX_SIZE];
    hash_text(RRE_EV_TRAINING_COMPLETED, training_example, a);
    hash_text(RRE_EV_TRAINING_STARTED, training_example, b);
    assert_string_not_equal(a, b);
}

static void test_alias_type_hashes_as_the_type_it_resolves_to(void **state)
{
    (void)state;
    const rre_event_info *alias = NULL;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT && alias == NULL; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (info != NULL && info->alias_of != RRE_EV_NONE)
            alias = info;
    }
    if (alias == NULL)
        skip();
    char a[RRE_HASH_HEX_SIZE], b[RRE_HASH_HEX_SIZE];
    hash_text(alias->type, "{\"k\":1}", a);
    hash_text(alias->alias_of, "{\"k\":1}", b);
    assert_string_equal(a, b);
}

static void test_unknown_type_is_rejected(void **state)
{
    (void)state;
    json_t *v = parse("{\"epochs\":1}");
    uint8_t h[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_NONE, v, h), RRE_EUNKNOWN_TYPE);
    assert_int_equal(rre_content_hash(RRE_EVENT_TYPE_COUNT, v, h), RRE_EUNKNOWN_TYPE);
    assert_int_equal(rre_content_hash((rre_event_type)100000, v, h), RRE_EUNKNOWN_TYPE);
    json_decref(v);
}

static void test_non_object_payload_is_rejected(void **state)
{
    (void)state;
    uint8_t h[RRE_HASH_SIZE];
    const char *texts[] = {"[1,2]", "\"s\"", "3", "null"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, h), RRE_ENOT_OBJECT);
        json_decref(v);
    }
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, NULL, h), RRE_ENOT_OBJECT);
    assert_non_null(strstr(rre_last_error(), "not a JSON object"));
}

static void test_null_output_is_einval(void **state)
{
    (void)state;
    json_t *v = parse("{}");
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, NULL), RRE_EINVAL);
    json_decref(v);
}

static void test_unhashable_payload_reports_canonical_error(void **state)
{
    (void)state;
    json_t *v = json_object();
    json_t *inner = v;
    for (int i = 0; i < RRE__CANONICAL_MAX_DEPTH + 5; i++) {
        json_t *next = json_object();
        json_object_set_new(inner, "d", next);
        inner = next;
    }
    uint8_t h[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, h), RRE_ELIMIT);
    json_decref(v);
}

static void test_hash_to_hex_is_lower_case_and_terminated(void **state)
{
    (void)state;
    uint8_t h[RRE_HASH_SIZE];
    for (int i = 0; i < RRE_HASH_SIZE; i++)
        h[i] = (uint8_t)(i * 8 + 7);
    char hex[RRE_HASH_HEX_SIZE];
    memset(hex, 'Z', sizeof hex);
    rre_hash_to_hex(h, hex);
    assert_string_equal(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
    assert_int_equal(hex[64], '\0');
}

static void test_sha256_of_empty_input_matches_standard_vector(void **state)
{
    (void)state;
    uint8_t h[RRE_HASH_SIZE];
    char hex[RRE_HASH_HEX_SIZE];
    assert_int_equal(rre__sha256("", 0, h), RRE_OK);
    rre_hash_to_hex(h, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hash_with_buf_reuses_buffer_and_matches(void **state)
{
    (void)state;
    char room[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, room, sizeof room);
    json_t *v = parse(training_example);
    uint8_t h[RRE_HASH_SIZE];
    char hex[RRE_HASH_HEX_SIZE];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rre__content_hash_with_buf(RRE_EV_TRAINING_COMPLETED, v, &buf, h), RRE_OK);
        rre_hash_to_hex(h, hex);
        assert_string_equal(hex, training_example_hash);
        assert_false(buf.on_heap);
        const char *start = "TRAINING_COMPLETED\n{\"board_type\"";
        assert_memory_equal(buf.data, start, strlen(start));
    }
    rre__buf_free(&buf);
    json_decref(v);
}

static void test_large_payload_hashes_through_heap(void **state)
{
    (void)state;
    json_t *v = json_object();
    for (int i = 0; i < 500; i++) {
        char key[16];
        snprintf(key, sizeof key, "field_%03d", i);
        json_object_set_new(v, key, json_string("some value that takes room"));
    }
    uint8_t a[RRE_HASH_SIZE], b[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, a), RRE_OK);
    json_object_set_new(v, "field_250", json_string("some value that takes roon"));
    assert_int_equal(rre_content_hash(RRE_EV_TRAINING_COMPLETED, v, b), RRE_OK);
    assert_memory_not_equal(a, b, RRE_HASH_SIZE);
    json_decref(v);
}

struct thread_job {
    json_t *payload;
    int mismatches;
};

static void *hash_in_thread(void *arg)
{
    struct thread_job *job = arg;
    for (int i = 0; i < 500; i++) {
        uint8_t h[RRE_HASH_SIZE];
        char hex[RRE_HASH_HEX_SIZE];
        if (rre_content_hash(RRE_EV_TRAINING_COMPLETED, job->payload, h) != RRE_OK) {
            job->mismatches++;
            continue;
        }
        rre_hash_to_hex(h, hex);
        if (strcmp(hex, training_example_hash) != 0)
            job->mismatches++;
    }
    return NULL;
}

static void test_threads_hash_concurrently_with_same_result(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    json_t *v = parse(training_example);
    pthread_t threads[THREADS];
    struct thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct thread_job){.payload = v, .mismatches = 0};
        assert_int_equal(pthread_create(&threads[i], NULL, hash_in_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(jobs[i].mismatches, 0);
    }
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_of_known_payload_matches_reference),
        cmocka_unit_test(test_hash_of_nested_payload_matches_reference),
        cmocka_unit_test(test_key_order_and_whitespace_do_not_change_hash),
        cmocka_unit_test(test_number_spellings_hash_alike),
        cmocka_unit_test(test_escaped_and_raw_unicode_hash_alike),
        cmocka_unit_test(test_envelope_fields_are_ignored_at_top_level),
        cmocka_unit_test(test_envelope_fields_are_hashed_when_nested),
        cmocka_unit_test(test_near_envelope_names_are_hashed),
        cmocka_unit_test(test_content_differences_change_hash),
        cmocka_unit_test(test_distinct_payloads_do_not_collide),
        cmocka_unit_test(test_type_name_is_part_of_hash),
        cmocka_unit_test(test_alias_type_hashes_as_the_type_it_resolves_to),
        cmocka_unit_test(test_unknown_type_is_rejected),
        cmocka_unit_test(test_non_object_payload_is_rejected),
        cmocka_unit_test(test_null_output_is_einval),
        cmocka_unit_test(test_unhashable_payload_reports_canonical_error),
        cmocka_unit_test(test_hash_to_hex_is_lower_case_and_terminated),
        cmocka_unit_test(test_sha256_of_empty_input_matches_standard_vector),
        cmocka_unit_test(test_hash_with_buf_reuses_buffer_and_matches),
        cmocka_unit_test(test_large_payload_hashes_through_heap),
        cmocka_unit_test(test_threads_hash_concurrently_with_same_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
