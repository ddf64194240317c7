/*
 * queue_hostile_test.c - the rules about text that is not UTF-8: the
 * library never stores it in any column (publishes, host names, sources and
 * subscriber names that are not UTF-8 are refused and nothing is stored),
 * and rows another writer filled with it are delivered anyway, the bad
 * bytes replaced by U+FFFD, by every reader and output format, and counted
 * by the statistics; delivery goes on after them.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAD "\xff\xfe"
#define REPLACED "\xef\xbf\xbd\xef\xbf\xbd" /* two U+FFFD */

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

static rre_queue *open_queue(struct fixture *f)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "c-host";
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &o);
    if (st != RRE_OK)
        fail_msg("open: %s: %s", rre_strerror(st), rre_last_error());
    return q;
}

static long long count_rows(struct fixture *f, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A row as another writer might store it, with raw bytes in the text
 * columns. */
static void raw_insert(struct fixture *f, const char *type, const char *source, const char *host)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO events (event_type, payload, source, hostname,"
                                        " created_at) VALUES (?, '{\"y\": 1}', ?, ?,"
                                        " strftime('%s','now'))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, host, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_a_source_that_is_not_utf8_is_refused_and_nothing_stored(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    json_t *p = json_pack("{s:i}", "y", 1);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, BAD, NULL, NULL, NULL),
                     RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "UTF-8"));
    rre_event ev = {.type = RRE_EV_ELO_UPDATED, .payload = p, .source = "ok"};
    rre_event evs[2] = {ev, ev};
    evs[1].source = BAD;
    assert_int_equal(rre_queue_publish_batch(q, evs, 2, NULL), RRE_EINVAL);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM events"), 0);
    json_decref(p);
    rre_queue_destroy(q);
}

static void test_a_router_source_that_is_not_utf8_is_refused(void **state)
{
    (void)state;
    rre_router_options *o = NULL;
    assert_int_equal(rre_router_options_create(&o), RRE_OK);
    assert_int_equal(rre_router_options_set_source(o, BAD), RRE_EINVAL);
    rre_router *r = NULL;
    assert_int_equal(rre_router_create(&r, o), RRE_OK);
    rre_router_options_destroy(o);
    json_t *p = json_pack("{s:i}", "y", 1);
    rre_publish_options po = {.source = "a" BAD};
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", p, &po, NULL), RRE_EINVAL);
    po.source = "fine";
    assert_int_equal(rre_router_publish(r, "ELO_UPDATED", p, &po, NULL), RRE_OK);
    json_decref(p);
    rre_router_destroy(r);
}

static void test_host_names_default_sources_and_subscriber_names_must_be_utf8(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "host" BAD;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_EINVAL);
    assert_null(q);
    o.hostname = "c-host";
    o.default_source = BAD;
    assert_int_equal(rre_queue_create(&q, &o), RRE_EINVAL);
    q = open_queue(f);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.name = "reader" BAD;
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, q, &so), RRE_EINVAL);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM rre_cursors"), 0);
    rre_queue_destroy(q);
}

struct seen {
    int n;
    char source[4][64];
    char host[4][64];
};

static rre_status keep(const rre_event *ev, void *ud)
{
    struct seen *s = ud;
    if (s->n < 4) {
        snprintf(s->source[s->n], 64, "%s", ev->source);
        snprintf(s->host[s->n], 64, "%s", ev->hostname);
    }
    s->n++;
    return RRE_OK;
}

static void test_rows_of_other_writers_with_bad_bytes_are_delivered_repaired(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f); /* makes the schema */
    raw_insert(f, "elo_updated", BAD, "py-host");
    raw_insert(f, "elo_updated", "ok", "h" BAD);
    json_t *p = json_pack("{s:i}", "y", 3);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "after", NULL, NULL, NULL),
                     RRE_OK);
    json_decref(p);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.name = "reader";
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, q, &so), RRE_OK);
    struct seen seen = {0};
    size_t n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep, &seen, &n), RRE_OK);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.source[0], REPLACED);
    assert_string_equal(seen.host[1], "h" REPLACED);
    assert_string_equal(seen.source[2], "after");
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
}

static void test_every_tail_format_goes_past_rows_with_bad_bytes(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(open_queue(f));
    raw_insert(f, "elo_updated", BAD, "py-host");
    raw_insert(f, "elo_updated", "ok", "py-host");
    const char *formats[] = {"json", "text", "cloudevents"};
    for (size_t i = 0; i < 3; i++) {
        tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--format", formats[i], NULL);
        assert_int_equal(r.status, 0);
        /* cloudevents percent-encodes the source (U+FFFD is EF BF BD) */
        assert_non_null(
            strstr(r.out, i == 2 ? "/ringrift/py-host/%EF%BF%BD%EF%BF%BD\"" : REPLACED));
        assert_non_null(strstr(r.out, "ok"));
        tu_result_free(&r);
    }
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--subscriber", "x", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"event_id\":2"));
    tu_result_free(&r);
}

static void test_stats_show_subscribers_and_types_with_bad_bytes(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    raw_insert(f, "odd" BAD, "s", "h");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO subscribers VALUES (CAST(X'FFFE41' AS TEXT), 'p',"
                                  " CAST(X'C3' AS TEXT), 1, '[]', 0, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(q, &stats), RRE_OK);
    json_t *subs = json_object_get(stats, "subscribers");
    assert_int_equal(json_array_size(subs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(subs, 0), "id")),
                        REPLACED "A");
    assert_string_equal(json_string_value(json_object_get(json_array_get(subs, 0), "holder_host")),
                        "\xef\xbf\xbd");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(stats, "by_type"), "odd" REPLACED)), 1);
    json_decref(stats);
    rre_queue_destroy(q);
}

static void test_cloudevents_sources_are_percent_encoded_uri_references(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(open_queue(f));
    raw_insert(f, "elo_updated", "trainer one", "z\xc3\xbcrich-node");
    raw_insert(f, "elo_updated", "50% done/x", "h");
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--format", "cloudevents", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"source\":\"/ringrift/z%C3%BCrich-node/trainer%20one\""));
    assert_non_null(strstr(r.out, "\"source\":\"/ringrift/h/50%25%20done%2Fx\""));
    tu_result_free(&r);
}

static void test_a_payload_over_the_limit_once_stored_is_refused_at_publish(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    /* Under the limit as given; over it with the timestamp and trace id the
     * queue adds, which every reader would refuse. */
    size_t n = RRE_PAYLOAD_MAX_BYTES - 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *p = json_pack("{s:s}", "y", big);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "s", "2026-01-02T03:04:05Z",
                                       "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
                                       NULL),
                     RRE_ELIMIT);
    assert_non_null(strstr(rre_last_error(), "nothing was stored"));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM events"), 0);
    json_decref(p);
    free(big);
    rre_queue_destroy(q);
}

static void test_rows_whose_created_at_is_not_a_time_are_set_aside_as_poison(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    const char *values[] = {"1e300",
                            "9e999",
                            "'not a time'",
                            "X'00'",
                            "-5",
                            "CAST(strftime('%s','now') AS TEXT)",
                            "strftime('%s','now')"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO events (event_type, payload, source, hostname, created_at)"
                 " VALUES ('elo_updated', '{\"i\": %zu}', 's', 'h', %s)",
                 i, values[i]);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.name = "reader";
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, q, &so), RRE_OK);
    struct seen seen = {0};
    size_t n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep, &seen, &n), RRE_OK);
    assert_int_equal(seen.n, 2); /* the numeric text and the number */
    rre_subscriber_destroy(s);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM rre_poison"), 5);
    rre_queue_destroy(q);
}

static void test_text_outputs_never_pass_control_characters_through(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(open_queue(f));
    raw_insert(f, "elo_updated", "\x1b[2Jsrc", "h\x07\xc2\x9b");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO subscribers VALUES ('sub' || char(27) || 'x', 'p',"
                                  " 'h' || char(13), 1, '[]', 0, 0);"
                                  "UPDATE events SET payload = '{\"y\": \"a' || char(155) ||"
                                  " 'b\\nc\"}'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--format", "text", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\\x1b[2Jsrc@h\\x07\\u009b "));
    assert_non_null(strstr(r.out, "\"y\":\"a\\u009bb\\nc\""));
    tu_result s = tu_run_cli(NULL, "--db", f->path, "stats", NULL);
    assert_int_equal(s.status, 0);
    assert_non_null(strstr(s.out, "sub\\x1bx"));
    assert_non_null(strstr(s.out, "on h\\x0d)"));
    for (const char *p = r.out; *p; p++)
        assert_true(*p == '\n' || ((unsigned char)*p >= 0x20 && *p != 0x7f));
    for (const char *p = s.out; *p; p++)
        assert_true(*p == '\n' || ((unsigned char)*p >= 0x20 && *p != 0x7f));
    tu_result_free(&r);
    tu_result_free(&s);
}

static void test_the_cli_reports_a_skipped_poison_row_once(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(open_queue(f));
    raw_insert(f, "no_such_type", "s", "h");
    raw_insert(f, "elo_updated", "s", "h");
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--subscriber", "x", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "rre: warning: queue: event 1 of"));
    assert_non_null(strstr(r.err, "unknown event type 'no_such_type'"));
    assert_non_null(strstr(r.out, "\"event_id\":2"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->path, "tail", "--subscriber", "y", NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.err, "no_such_type")); /* said once */
    tu_result_free(&r);
}

/* Runs `rre --db PATH ARGS` as a user who cannot write PATH's directory
 * (nobody, when this test runs as root), capturing standard output into
 * *out. Returns the exit status, or -1 when it cannot be arranged. */
static int run_as_reader(const char *dir, const char *path, const char *args, char **out)
{
    char outfile[600], cmd[2048];
    snprintf(outfile, sizeof outfile, "%s.out", dir);
    const char *as = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    snprintf(cmd, sizeof cmd, "%s'%s' --db '%s' %s > '%s' 2>&1", as, RRE_TEST_CLI, path, args,
             outfile);
    int rc = system(cmd);
    *out = tu_read_file(outfile, NULL);
    unlink(outfile);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void test_looking_commands_work_on_a_queue_they_cannot_write(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f);
    json_t *p = json_pack("{s:i}", "y", 1);
    assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "s", NULL, NULL, NULL), RRE_OK);
    json_decref(p);
    rre_queue_destroy(q);
    /* Only the file, checkpointed, in a directory no one but root writes. */
    char ro[600], ro_db[700];
    snprintf(ro, sizeof ro, "%s/ro", f->dir);
    snprintf(ro_db, sizeof ro_db, "%s/events.db", ro);
    assert_int_equal(mkdir(ro, 0755), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    size_t len = 0;
    char *bytes = tu_read_file(f->path, &len);
    FILE *fp = fopen(ro_db, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    fclose(fp);
    free(bytes);
    assert_int_equal(chmod(ro_db, 0444), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    char *out = NULL;
    int rc = run_as_reader(f->dir, ro_db, "stats", &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "events: 1"));
    free(out);
    rc = run_as_reader(f->dir, ro_db, "tail --format text", &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ELO_UPDATED"));
    assert_non_null(strstr(out, " s@c-host "));
    free(out);
    chmod(ro, 0755);
}

static void raw_insert_payload(struct fixture *f, const char *payload)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO events (event_type, payload, source, hostname,"
                                        " created_at) VALUES ('elo_updated', ?, 's', 'h',"
                                        " 1767323045.5)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, payload, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_envelope_times_and_traces_are_well_formed_whatever_was_stored(void **state)
{
    struct fixture *f = *state;
    rre_queue_destroy(open_queue(f));
    raw_insert_payload(f, "{\"timestamp\": \"not a time\", \"trace_id\": \"zz\"}");
    raw_insert_payload(f, "{\"timestamp\": \"2026-01-02 03:04:05+01:00\", \"trace_id\":"
                          " \"00-0123456789ABCDEF0123456789ABCDEF-0123456789ABCDEF-01\"}");
    raw_insert_payload(f, "{\"timestamp\": \"99999-01-01T00:00:00Z\", \"trace_id\":"
                          " \"0123456789abcdef0123456789abcdef\"}");
    /* The rows are dated 2026-01-02: keep them within the retention. */
    setenv("RINGRIFT_CROSS_PROCESS_RETENTION_HOURS", "1000000", 1);
    tu_result r = tu_run_cli(NULL, "--db", f->path, "tail", "--format", "cloudevents", NULL);
    unsetenv("RINGRIFT_CROSS_PROCESS_RETENTION_HOURS");
    assert_int_equal(r.status, 0);
    char *line2 = strchr(r.out, '\n');
    assert_non_null(line2);
    char *line3 = strchr(++line2, '\n');
    assert_non_null(line3);
    line3++;
    /* not a time: the row's created_at; no trace */
    assert_non_null(strstr(r.out, "\"time\":\"2026-01-02T03:04:05.500000Z\""));
    assert_true(strstr(r.out, "traceparent") == NULL || strstr(r.out, "traceparent") > line2);
    /* a time with an offset, in UTC; the traceparent lower-cased */
    assert_non_null(strstr(line2, "\"time\":\"2026-01-02T02:04:05.000000Z\""));
    assert_non_null(strstr(
        line2, "\"traceparent\":\"00-0123456789abcdef0123456789abcdef-0123456789abcdef-01\""));
    /* out of range, and a bare trace id: not taken */
    assert_non_null(strstr(line3, "\"time\":\"2026-01-02T03:04:05.500000Z\""));
    assert_null(strstr(line3, "traceparent"));
    tu_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_source_that_is_not_utf8_is_refused_and_nothing_stored, setup, teardown),
        cmocka_unit_test(test_a_router_source_that_is_not_utf8_is_refused),
        cmocka_unit_test_setup_teardown(
            test_host_names_default_sources_and_subscriber_names_must_be_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_rows_of_other_writers_with_bad_bytes_are_delivered_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_tail_format_goes_past_rows_with_bad_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_show_subscribers_and_types_with_bad_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cloudevents_sources_are_percent_encoded_uri_references,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_payload_over_the_limit_once_stored_is_refused_at_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_rows_whose_created_at_is_not_a_time_are_set_aside_as_poison, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_outputs_never_pass_control_characters_through,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_cli_reports_a_skipped_poison_row_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_looking_commands_work_on_a_queue_they_cannot_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_envelope_times_and_traces_are_well_formed_whatever_was_stored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
