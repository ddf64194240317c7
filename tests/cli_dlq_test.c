/*
 * cli_dlq_test.c - black-box tests of `rre dlq` (list, show, replay, drop)
 * and of the dead-letter figures of `rre stats`, on dead letters made by a
 * durable subscriber of the library whose handler fails.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
    char *dir;
    char db[512];
    rre_queue *q;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    snprintf(f->db, sizeof f->db, "%s/events.db", f->dir);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->db;
    o.maintenance_interval_ms = -1;
    assert_int_equal(rre_queue_create(&f->q, &o), RRE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(f->q);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static rre_status refuse_odd(const rre_event *ev, void *ud)
{
    int *calls = ud;
    (*calls)++;
    if (json_integer_value(json_object_get(ev->payload, "i")) % 2 == 1)
        return rre_fail(RRE_EREJECTED, "odd \x1b[31mnumbers\x1b[0m are refused");
    return RRE_OK;
}

/* Publishes i = 1..n and lets subscriber `name` reject the odd ones (of
 * every event in the queue: a new subscriber starts at the oldest). */
static void make_dead_letters(struct fixture *f, const char *name, int n)
{
    for (int i = 1; i <= n; i++) {
        json_t *p = json_pack("{sisi}", "i", i, "n", (int)strlen(name));
        char src[32];
        snprintf(src, sizeof src, "%s-%d", name, i);
        assert_int_equal(rre_queue_publish(f->q, RRE_EV_ELO_UPDATED, p, src, NULL, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, f->q, &o), RRE_OK);
    int calls = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, refuse_odd, &calls, NULL), RRE_OK);
    rre_subscriber_destroy(s);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_dlq_list_shows_each_letter_with_its_error_escaped(void **state)
{
    struct fixture *f = *state;
    make_dead_letters(f, "scorer", 4);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "dlq", "list", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3); /* header + 2 letters */
    assert_non_null(strstr(r.out, "ELO_UPDATED"));
    assert_non_null(strstr(r.out, ":stable:scorer: RRE_EREJECTED: odd "));
    assert_null(strchr(r.out, '\x1b'));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "list", "--format", "json", "--subscriber", "scorer",
                   NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 2);
    json_t *o = json_loads(r.out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "source")), "scorer-1");
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "list", "--subscriber", "nobody", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
}

static void test_dlq_show_prints_the_letter_with_its_payload(void **state)
{
    struct fixture *f = *state;
    make_dead_letters(f, "scorer", 1);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "dlq", "show", "1", NULL);
    assert_int_equal(r.status, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "payload"), "i")), 1);
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "show", "99", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no dead letter has the id 99"));
    tu_result_free(&r);
}

static void test_dlq_replay_moves_letters_back_to_their_subscriber(void **state)
{
    struct fixture *f = *state;
    make_dead_letters(f, "scorer", 4);
    make_dead_letters(f, "other", 2);
    tu_result r =
        tu_run_cli(NULL, "--db", f->db, "dlq", "replay", "--all", "--subscriber", "scorer", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"replayed\":2}\n");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "stats", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    json_t *s = json_loads(r.out, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(s, "retrying")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "dead_letters")), 3);
    json_decref(s);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "stats", "--format", "prometheus", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "rre_queue_dead_letters 3\n"));
    assert_non_null(strstr(r.out, "rre_queue_retrying 2\n"));
    assert_non_null(strstr(r.out, ":stable:other\",kind=\"stable\"} 3\n"));
    tu_result_free(&r);
    /* The letter of another subscriber cannot be replayed as scorer's. */
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "list", "--format", "json", NULL);
    json_t *o = json_loads(r.out, JSON_DISABLE_EOF_CHECK, NULL);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "replay", id, "--subscriber", "scorer", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "is not scorer's"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "replay", id, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"replayed\":1}\n");
    tu_result_free(&r);
}

static void test_dlq_drop_by_id_and_by_age(void **state)
{
    struct fixture *f = *state;
    make_dead_letters(f, "scorer", 6);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "dlq", "drop", "1", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"dropped\":1}\n");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "drop", "--older-than", "1h", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"dropped\":0}\n");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "dlq", "drop", "--older-than", "0", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"dropped\":2}\n");
    tu_result_free(&r);
}

static void test_dlq_wrong_usage_exits_2(void **state)
{
    struct fixture *f = *state;
    const char *cases[][6] = {
        {"dlq", NULL},
        {"dlq", "frobnicate", NULL},
        {"dlq", "show", NULL},
        {"dlq", "show", "abc", NULL},
        {"dlq", "show", "0", NULL},
        {"dlq", "replay", NULL},
        {"dlq", "replay", "3", "--all", NULL},
        {"dlq", "drop", NULL},
        {"dlq", "drop", "--older-than", "soon", NULL},
        {"dlq", "list", "--format", "xml", NULL},
        {"dlq", "list", "--subscriber", "", NULL},
        {"dlq", "list", "7", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[10] = {"rre", "--db", f->db};
        int n = 3;
        for (int j = 0; cases[i][j] != NULL; j++)
            argv[n++] = (char *)cases[i][j];
        argv[n] = NULL;
        tu_result r = tu_run_cliv(NULL, argv);
        if (r.status != 2)
            fail_msg("case %zu (%s %s) exited %d: %s", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "", r.status, r.err);
        tu_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_dlq_list_shows_each_letter_with_its_error_escaped),
        T(test_dlq_show_prints_the_letter_with_its_payload),
        T(test_dlq_replay_moves_letters_back_to_their_subscriber),
        T(test_dlq_drop_by_id_and_by_age),
        T(test_dlq_wrong_usage_exits_2),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
