/*
 * history_test.c - the bounded history ring and its string pool.
 */
#include "testutil.h"

#include "history.h"

#include <string.h>

static rre_event make_event(int n, const char *source)
{
    rre_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RRE_EV_TRAINING_STARTED;
    ev.source = source;
    ev.hostname = "host-a";
    ev.hash[0] = (uint8_t)n;
    ev.hash[1] = (uint8_t)(n >> 8);
    return ev;
}

/* The payload text of event n. */
static const char *text_of(int n, char buf[32])
{
    snprintf(buf, 32, "{\"n\":%d}", n);
    return buf;
}

static int entry_n(const struct rre__history_entry *e)
{
    int n = -1;
    assert_int_equal(sscanf(e->text, "{\"n\":%d}", &n), 1);
    char again[32];
    assert_int_equal(e->text_len, strlen(text_of(n, again)));
    return n;
}

/* Pushes event n; returns the text handed back (NULL when none). */
static char *push_evicting(struct rre__history *h, int n, const char *source)
{
    rre_event ev = make_event(n, source);
    struct rre__trace trace;
    rre__trace_new(&trace);
    char *evicted = NULL, buf[32];
    const char *text = text_of(n, buf);
    assert_int_equal(rre__history_push(h, &ev, text, strlen(text), n, &trace, &evicted), RRE_OK);
    return evicted;
}

static void push(struct rre__history *h, int n, const char *source)
{
    free(push_evicting(h, n, source));
}

static void test_entries_are_kept_oldest_first_newest_last(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 10);
    for (int i = 0; i < 5; i++)
        push(&h, i, "src");
    assert_int_equal(h.count, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(entry_n(rre__history_at(&h, i)), (int)i);
    rre__history_free(&h);
}

static void test_full_ring_drops_the_oldest_and_reuses_its_buffer(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 3);
    for (int i = 0; i < 3; i++)
        push(&h, i, "src");
    const char *oldest = rre__history_at(&h, 0)->text;
    char *evicted = push_evicting(&h, 3, "src");
    /* The new text, as long as the oldest, went into its buffer. */
    assert_null(evicted);
    assert_ptr_equal(rre__history_at(&h, 2)->text, oldest);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.dropped, 1);
    assert_int_equal(entry_n(rre__history_at(&h, 0)), 1);
    assert_int_equal(entry_n(rre__history_at(&h, 2)), 3);
    rre__history_free(&h);
}

static void test_full_ring_hands_back_a_buffer_too_small_for_the_new_text(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 2);
    push(&h, 1, "src");
    push(&h, 2, "src");
    char *evicted = push_evicting(&h, 123456, "src");
    assert_non_null(evicted);
    assert_string_equal(evicted, "{\"n\":1}");
    free(evicted);
    assert_int_equal(entry_n(rre__history_at(&h, 0)), 2);
    assert_int_equal(entry_n(rre__history_at(&h, 1)), 123456);
    /* A short text after a long one fits in its buffer. */
    push(&h, 7, "src");
    assert_int_equal(entry_n(rre__history_at(&h, 1)), 7);
    rre__history_free(&h);
}

static void test_size_zero_keeps_nothing(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 0);
    push(&h, 1, "src");
    assert_int_equal(h.count, 0);
    assert_int_equal(rre__history_memory(&h), 0);
    rre__history_free(&h);
}

static void test_strings_are_interned_once_and_freed_with_their_last_entry(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 4);
    char name[32];
    for (int i = 0; i < 4; i++)
        push(&h, i, "same-source");
    /* One source and one hostname. */
    assert_int_equal(h.string_count, 2);
    assert_ptr_equal(rre__history_at(&h, 0)->source, rre__history_at(&h, 3)->source);
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "source-%d", i);
        push(&h, 10 + i, name);
    }
    /* The first source left with its last entry. */
    assert_int_equal(h.string_count, 5);
    assert_string_equal(rre__pooled_str_get(rre__history_at(&h, 2)->source), "source-2");
    rre__history_free(&h);
    assert_int_equal(h.string_count, 0);
}

static void test_set_event_id_marks_the_newest_entry_with_that_hash(void **state)
{
    (void)state;
    struct rre__history h;
    rre__history_init(&h, 8);
    push(&h, 1, "src");
    push(&h, 2, "src");
    rre_event ev = make_event(2, "src");
    rre__history_set_event_id(&h, ev.hash, 42);
    assert_int_equal(rre__history_at(&h, 1)->event_id, 42);
    assert_int_equal(rre__history_at(&h, 0)->event_id, 0);
    rre__history_free(&h);
}

static void test_memory_per_entry_is_small(void **state)
{
    (void)state;
    assert_true(sizeof(struct rre__history_entry) <= 112);
    struct rre__history h;
    rre__history_init(&h, 1000);
    for (int i = 0; i < 1000; i++)
        push(&h, i, "src");
    /* The entries, the texts ({"n":999} and a NUL: 10 bytes at most), the pool. */
    assert_true(rre__history_memory(&h) <= 1000 * (sizeof(struct rre__history_entry) + 10) + 1024);
    rre__history_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_are_kept_oldest_first_newest_last),
        cmocka_unit_test(test_full_ring_drops_the_oldest_and_reuses_its_buffer),
        cmocka_unit_test(test_full_ring_hands_back_a_buffer_too_small_for_the_new_text),
        cmocka_unit_test(test_size_zero_keeps_nothing),
        cmocka_unit_test(test_strings_are_interned_once_and_freed_with_their_last_entry),
        cmocka_unit_test(test_set_event_id_marks_the_newest_entry_with_that_hash),
        cmocka_unit_test(test_memory_per_entry_is_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
