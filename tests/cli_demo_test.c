/*
 * cli_demo_test.c - runs `rre demo` with small settings as a black box and
 * checks its summary: every fault injected, the storm absorbed, and the
 * flow checker's verdict on the whole run clean.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_demo_runs_pipeline_with_faults_and_clean_flow(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    tu_result r = tu_run_cli(NULL, "demo", "--configs", "hex8_2p,square8_4p", "--iterations", "3",
                             "--db", db, "--storm", "20", "--pace", "0", "--timeout", "120", NULL);
    if (r.status != 0)
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "flow check: clean"));
    assert_non_null(strstr(r.out, "verdict: OK"));
    assert_non_null(strstr(r.out, "TRAINING_FAILED"));
    assert_non_null(strstr(r.out, "REGRESSION_DETECTED"));
    assert_non_null(strstr(r.out, "TRAINING_ROLLBACK_COMPLETED"));
    assert_non_null(strstr(r.out, "CACHE_INVALIDATED"));
    assert_non_null(strstr(r.out, "QUALITY_PENALTY_APPLIED"));
    assert_non_null(strstr(r.out, "SELFPLAY_RATE_CHANGED"));
    assert_non_null(strstr(r.out, "MODEL_DISTRIBUTION_COMPLETE"));
    assert_null(strstr(r.out, "not scheduled"));
    unsigned long dups = 0;
    const char *d = strstr(r.out, "duplicates prevented: ");
    assert_non_null(d);
    dups = strtoul(d + strlen("duplicates prevented: "), NULL, 10);
    assert_true(dups >= 20);
    tu_result_free(&r);

    /* The events stay in the given database: the flow checker agrees. */
    r = tu_run_cli(NULL, "--db", db, "flow", "check", NULL);
    if (r.status != 0)
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_demo_with_one_iteration_reports_unscheduled_faults(void **state)
{
    (void)state;
    tu_result r =
        tu_run_cli(NULL, "demo", "--configs", "hex8_2p", "--iterations", "1", "--quiet", NULL);
    if (r.status != 0)
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "not scheduled"));
    assert_non_null(strstr(r.out, "flow check: clean"));
    tu_result_free(&r);
}

static void test_demo_rejects_bad_config_key(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "demo", "--configs", "hex8_9p", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "hex8_9p"));
    tu_result_free(&r);
}

static void test_demo_rejects_bad_iterations(void **state)
{
    (void)state;
    tu_result r = tu_run_cli(NULL, "demo", "--iterations", "0", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_runs_pipeline_with_faults_and_clean_flow),
        cmocka_unit_test(test_demo_with_one_iteration_reports_unscheduled_faults),
        cmocka_unit_test(test_demo_rejects_bad_config_key),
        cmocka_unit_test(test_demo_rejects_bad_iterations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
