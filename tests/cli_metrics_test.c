/*
 * cli_metrics_test.c - `rre stats --format prometheus`: the figures of a
 * queue file in the Prometheus text exposition format, checked by
 * Prometheus's own `promtool check metrics`.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

struct fixture {
    char *dir;
    char path[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/events.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Runs `promtool check metrics` over `text`; returns its exit status and
 * what it printed in *report. */
static int promtool_check(const struct fixture *f, const char *text, char **report)
{
    char in[600], out[600], cmd[1400];
    snprintf(in, sizeof in, "%s/metrics.prom", f->dir);
    snprintf(out, sizeof out, "%s/promtool.out", f->dir);
    FILE *fp = fopen(in, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", in, out);
    int rc = system(cmd);
    *report = tu_read_file(out, NULL);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void test_stats_in_prometheus_format_pass_promtool_and_hold_the_figures(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "metrics-host";
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    for (int i = 0; i < 3; i++) {
        json_t *p = json_pack("{s:s,s:i}", "config_key", "hex8_2p", "i", i);
        assert_int_equal(rre_queue_publish(q,
                                           i < 2 ? RRE_EV_ELO_UPDATED : RRE_EV_TRAINING_COMPLETED,
                                           p, "t", NULL, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    rre_queue_destroy(q);
    /* A durable subscriber that has read everything, and one only the
     * Python side knows, whose name needs escaping in a label. */
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--subscriber", "reader", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO subscribers VALUES ('py \"quoted\" \\ name', 'p',"
                                  " 'metrics-host', 1, '[]', 0, 0);"
                                  "INSERT INTO events (event_type, payload, source, hostname,"
                                  " created_at) VALUES ('mystery', '{}', 's', 'h',"
                                  " strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    r = tu_run_cli(NULL, "--db", f->path, "stats", "--format", "prometheus", NULL);
    assert_int_equal(r.status, 0);
    char *report = NULL;
    int rc = promtool_check(f, r.out, &report);
    if (rc != 0)
        fail_msg("promtool check metrics (status %d):\n%s\non:\n%s", rc, report, r.out);
    free(report);
    assert_non_null(strstr(r.out, "# TYPE rre_queue_events gauge\nrre_queue_events 4\n"));
    assert_non_null(
        strstr(r.out, "rre_queue_stored_events{type=\"ELO_UPDATED\",category=\"evaluation\"} 2\n"));
    assert_non_null(strstr(
        r.out,
        "rre_queue_stored_events{type=\"TRAINING_COMPLETED\",category=\"training_pipeline\"} 1\n"));
    assert_non_null(
        strstr(r.out, "rre_queue_stored_events{type=\"mystery\",category=\"unknown\"} 1\n"));
    /* the reader's id is "<this host>:stable:reader"; one event came after it */
    assert_non_null(strstr(r.out, ":stable:reader\",kind=\"stable\"} 1\n"));
    assert_non_null(strstr(
        r.out,
        "rre_subscriber_position{subscriber=\"py \\\"quoted\\\" \\\\ name\",kind=\"python\"} 0\n"));
    assert_non_null(strstr(r.out, "rre_queue_poison_rows 0\n"));
    assert_non_null(strstr(r.out, "rre_subscriber_lag_seconds{subscriber=\"py \\\"quoted"));
    assert_non_null(strstr(r.out, "rre_queue_file_size_bytes{file=\"wal\"}"));
    assert_non_null(strstr(r.out, "rre_queue_oldest_event_age_seconds "));
    tu_result_free(&r);
}

static void test_stats_refuses_an_unknown_format(void **state)
{
    struct fixture *f = *state;
    tu_result r = tu_run_cli(NULL, "--db", f->path, "stats", "--format", "openmetrics", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "text, json or prometheus"));
    tu_result_free(&r);
}

static void test_serve_metrics_usage_errors_and_a_missing_queue(void **state)
{
    struct fixture *f = *state;
    tu_result r = tu_run_cli(NULL, "--db", f->path, "serve-metrics", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--metrics-listen ADDR:PORT is required"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->path, "serve-metrics", "--metrics-listen", "9465", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "takes ADDR:PORT"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->path, "serve-metrics", "--metrics-listen", ":1",
                   "--metrics-listen", ":2", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    /* No queue file there: nothing is created, the reason is said. */
    r = tu_run_cli(NULL, "--db", f->path, "serve-metrics", "--metrics-listen", "127.0.0.1:1", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no queue database"));
    tu_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_stats_in_prometheus_format_pass_promtool_and_hold_the_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_refuses_an_unknown_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_metrics_usage_errors_and_a_missing_queue, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
