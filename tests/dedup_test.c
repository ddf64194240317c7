/*
 * dedup_test.c - the dedup window: duplicates inside the window, expiry,
 * the entry bound, and the index staying consistent under churn.
 */
#include "testutil.h"

#include "dedup.h"

#include <string.h>

static void make_hash(uint64_t n, uint8_t out[RRE_HASH_SIZE])
{
    /* Spread n over the hash so that the index's home slots vary. */
    uint64_t x = n * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < RRE_HASH_SIZE; i += 8) {
        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ull;
        memcpy(out + i, &x, 8);
    }
}

static void test_new_hash_is_not_a_duplicate(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 100, 1000);
    uint8_t h[RRE_HASH_SIZE];
    make_hash(1, h);
    assert_false(rre__dedup_check(&d, h, 0));
    assert_int_equal(d.count, 1);
    rre__dedup_free(&d);
}

static void test_same_hash_within_window_is_a_duplicate(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 100, 1000);
    uint8_t h[RRE_HASH_SIZE];
    make_hash(7, h);
    assert_false(rre__dedup_check(&d, h, 0));
    assert_true(rre__dedup_check(&d, h, 999));
    assert_int_equal(d.count, 1);
    rre__dedup_free(&d);
}

static void test_hash_is_accepted_again_after_the_window(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 100, 1000);
    uint8_t h[RRE_HASH_SIZE];
    make_hash(7, h);
    assert_false(rre__dedup_check(&d, h, 0));
    assert_false(rre__dedup_check(&d, h, 1000));
    assert_true(rre__dedup_check(&d, h, 1500));
    assert_false(rre__dedup_check(&d, h, 2000));
    rre__dedup_free(&d);
}

static void test_duplicates_do_not_extend_the_window(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 100, 1000);
    uint8_t h[RRE_HASH_SIZE];
    make_hash(3, h);
    assert_false(rre__dedup_check(&d, h, 0));
    assert_true(rre__dedup_check(&d, h, 900));
    assert_false(rre__dedup_check(&d, h, 1000));
    rre__dedup_free(&d);
}

static void test_oldest_hash_is_forgotten_first_when_full(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 3, 1000000);
    uint8_t h[4][RRE_HASH_SIZE];
    for (int i = 0; i < 4; i++)
        make_hash((uint64_t)i, h[i]);
    for (int i = 0; i < 3; i++)
        assert_false(rre__dedup_check(&d, h[i], i));
    assert_false(rre__dedup_check(&d, h[3], 3)); /* pushes h[0] out */
    assert_int_equal(d.count, 3);
    assert_false(rre__dedup_contains(&d, h[0]));
    assert_true(rre__dedup_contains(&d, h[1]));
    assert_true(rre__dedup_contains(&d, h[2]));
    assert_true(rre__dedup_contains(&d, h[3]));
    rre__dedup_free(&d);
}

static void test_memory_stays_bounded_under_a_flood_of_distinct_hashes(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 1000, INT64_MAX / 4);
    uint8_t h[RRE_HASH_SIZE];
    size_t peak = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        make_hash(i, h);
        assert_false(rre__dedup_check(&d, h, (int64_t)i));
        size_t m = rre__dedup_memory(&d);
        if (m > peak)
            peak = m;
    }
    assert_int_equal(d.count, 1000);
    /* 1000 entries of 40 bytes plus an index of 2048 slots of 8 bytes. */
    assert_true(peak <= 1000 * sizeof(struct rre__dedup_entry) + 2048 * sizeof(uint64_t));
    /* The last 1000 are all still known, the one before is not. */
    for (uint64_t i = 199000; i < 200000; i++) {
        make_hash(i, h);
        assert_true(rre__dedup_contains(&d, h));
    }
    make_hash(198999, h);
    assert_false(rre__dedup_contains(&d, h));
    rre__dedup_free(&d);
}

static void test_index_stays_consistent_under_expiry_churn(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 5000, 100);
    uint8_t h[RRE_HASH_SIZE];
    /* One insertion per time unit with a window of 100: exactly the last
     * 100 are held at any time. */
    for (int64_t t = 0; t < 20000; t++) {
        make_hash((uint64_t)t, h);
        assert_false(rre__dedup_check(&d, h, t));
        if (t % 997 == 0) {
            for (int64_t k = t - 120; k <= t; k++) {
                if (k < 0)
                    continue;
                make_hash((uint64_t)k, h);
                assert_int_equal(rre__dedup_contains(&d, h), k > t - 100);
            }
        }
    }
    assert_int_equal(d.count, 100);
    rre__dedup_free(&d);
}

static void test_free_leaves_an_empty_reusable_window(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 10, 1000);
    uint8_t h[RRE_HASH_SIZE];
    make_hash(1, h);
    assert_false(rre__dedup_check(&d, h, 0));
    rre__dedup_free(&d);
    assert_int_equal(d.count, 0);
    assert_false(rre__dedup_contains(&d, h));
    assert_false(rre__dedup_check(&d, h, 1));
    assert_true(rre__dedup_check(&d, h, 2));
    rre__dedup_free(&d);
}

static void test_put_replaces_a_held_hash_and_drop_upto_forgets_by_id(void **state)
{
    (void)state;
    struct rre__dedup d;
    rre__dedup_init(&d, 1000, 1000000);
    uint8_t h[RRE_HASH_SIZE];
    for (int i = 1; i <= 100; i++) {
        make_hash((uint64_t)(i % 40), h); /* hashes 0..39, most put more than once */
        assert_true(rre__dedup_put(&d, h, i, i));
    }
    /* Each hash is found once, as its latest put. */
    for (int k = 0; k < 40; k++) {
        make_hash((uint64_t)k, h);
        const struct rre__dedup_entry *e = rre__dedup_find(&d, h);
        assert_non_null(e);
        int latest = k == 0 ? 80 : k + 80 <= 100 ? k + 80 : k + 40;
        assert_int_equal(e->id, latest);
        assert_int_equal(e->time, latest);
    }
    /* Forgetting up to id 70 leaves the hashes put later only. */
    rre__dedup_drop_upto(&d, 70);
    for (int k = 0; k < 40; k++) {
        make_hash((uint64_t)k, h);
        const struct rre__dedup_entry *e = rre__dedup_find(&d, h);
        int latest = k == 0 ? 80 : k + 80 <= 100 ? k + 80 : k + 40;
        if (latest > 70) {
            assert_non_null(e);
            assert_int_equal(e->id, latest);
        } else {
            assert_null(e);
        }
    }
    rre__dedup_drop_upto(&d, 100);
    assert_int_equal(rre__dedup_count(&d), 0);
    make_hash(3, h);
    assert_null(rre__dedup_find(&d, h));
    rre__dedup_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_hash_is_not_a_duplicate),
        cmocka_unit_test(test_same_hash_within_window_is_a_duplicate),
        cmocka_unit_test(test_hash_is_accepted_again_after_the_window),
        cmocka_unit_test(test_duplicates_do_not_extend_the_window),
        cmocka_unit_test(test_oldest_hash_is_forgotten_first_when_full),
        cmocka_unit_test(test_memory_stays_bounded_under_a_flood_of_distinct_hashes),
        cmocka_unit_test(test_index_stays_consistent_under_expiry_churn),
        cmocka_unit_test(test_free_leaves_an_empty_reusable_window),
        cmocka_unit_test(test_put_replaces_a_held_hash_and_drop_upto_forgets_by_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
