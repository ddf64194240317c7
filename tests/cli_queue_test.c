/*
 * cli_queue_test.c - black-box tests of the queue commands of the rre
 * command line: publish, tail (including --follow in another process and
 * the output formats), stats and purge, with their exit statuses.
 */
#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
    char *dir;
    char db[512];
    pid_t follower; /* a running `rre tail --follow`, killed at teardown */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    snprintf(f->db, sizeof f->db, "%s/q/events.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->follower > 0) {
        kill(f->follower, SIGKILL);
        waitpid(f->follower, NULL, 0);
    }
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static json_t *line_json(const char *s, size_t index)
{
    for (size_t i = 0; i < index && s != NULL; i++) {
        s = strchr(s, '\n');
        if (s != NULL)
            s++;
    }
    if (s == NULL || *s == '\0')
        fail_msg("no line %zu in output", index);
    json_error_t err;
    json_t *v = json_loads(s, JSON_DISABLE_EOF_CHECK, &err);
    if (v == NULL)
        fail_msg("output line is not JSON: %s (%s)", s, err.text);
    return v;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int64_t publish_ok(struct fixture *f, const char *type, const char *payload, bool *dup)
{
    tu_result r = tu_run_cli(NULL, "--db", f->db, "publish", type, "--payload", payload, NULL);
    if (r.status != 0)
        fail_msg("publish exited %d: %s", r.status, r.err);
    json_t *o = line_json(r.out, 0);
    int64_t id = json_integer_value(json_object_get(o, "event_id"));
    if (dup != NULL)
        *dup = json_is_true(json_object_get(o, "duplicate"));
    assert_int_equal(strlen(json_string_value(json_object_get(o, "hash"))), 64);
    json_decref(o);
    tu_result_free(&r);
    return id;
}

static void test_publish_then_tail_prints_the_event(void **state)
{
    struct fixture *f = *state;
    int64_t id =
        publish_ok(f, "training_completed", "{\"config_key\":\"hex8_2p\",\"epochs\":3}", NULL);
    assert_true(id > 0);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 1);
    json_t *o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), id);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "TRAINING_COMPLETED");
    assert_string_equal(json_string_value(json_object_get(o, "source")), "rre");
    json_t *p = json_object_get(o, "payload");
    assert_int_equal(json_integer_value(json_object_get(p, "epochs")), 3);
    json_decref(o);
    tu_result_free(&r);
}

static void test_duplicate_publish_reports_duplicate_and_adds_no_row(void **state)
{
    struct fixture *f = *state;
    bool dup = true;
    int64_t a = publish_ok(f, "ELO_UPDATED", "{\"model_id\":\"m\",\"new_elo\":1500}", &dup);
    assert_false(dup);
    int64_t b = publish_ok(f, "elo_updated", "{\"new_elo\":1500,\"model_id\":\"m\"}", &dup);
    assert_true(dup);
    assert_int_equal(a, b);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 1);
    tu_result_free(&r);
}

/* Where tail starts and stops: --until an id or a time, --new (after the
 * newest), and --start for a subscriber that does not exist yet (new:
 * after the newest; it then resumes where it stopped). */
static void test_tail_until_new_and_start_choose_where_it_starts_and_stops(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        tu_result r =
            tu_run_cli(NULL, "--db", f->db, "publish", "ELO_UPDATED", "--payload", payload, NULL);
        assert_int_equal(r.status, 0);
        tu_result_free(&r);
    }
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--until", "3", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--until", "2000-01-01", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--until", "0s", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 5);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--new", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "fresh", "--start", "new", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "publish", "ELO_UPDATED", "--payload", "{\"n\":5}", NULL);
    tu_result_free(&r);
    /* Exists now: --start new no longer moves it. */
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "fresh", "--start", "new", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 1);
    assert_non_null(strstr(r.out, "\"n\":5"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "all", "--start", "all", NULL);
    assert_int_equal(count_lines(r.out), 6);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--start", "new", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "x", "--start", "soon", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--until", "yesterday", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
}

static void test_publish_reads_payload_from_stdin_and_takes_source(void **state)
{
    struct fixture *f = *state;
    tu_result r = tu_run_cli("{\"x\":1}", "--db", f->db, "publish", "NEW_GAMES_AVAILABLE",
                             "--source", "selfplay-7", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--format", "text", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "NEW_GAMES_AVAILABLE"));
    assert_non_null(strstr(r.out, " selfplay-7@"));
    tu_result_free(&r);
}

/* The text format for people: aligned columns (id, time, type,
 * source@host, payload) whatever the widths of the values, times in UTC or
 * in the local zone with --local-time, no colour into a pipe. */
static void test_tail_text_is_aligned_columns_with_utc_or_local_times(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 12; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        tu_result r = tu_run_cli(NULL, "--db", f->db, "publish",
                                 i % 2 ? "NEW_GAMES_AVAILABLE" : "ELO_UPDATED", "--payload",
                                 payload, "--source", i % 3 ? "a" : "a-much-longer-source", NULL);
        assert_int_equal(r.status, 0);
        tu_result_free(&r);
    }
    setenv("TZ", "Asia/Kolkata", 1);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--format", "text", NULL);
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.out, '\033'));
    /* Every line's payload starts in the same column; times end in Z. */
    long column = -1;
    int lines = 0;
    for (char *line = r.out; *line != '\0';) {
        char *end = strchr(line, '\n');
        char *brace = strchr(line, '{');
        assert_non_null(brace);
        if (column < 0)
            column = brace - line;
        assert_int_equal(brace - line, column);
        assert_non_null(memchr(line, 'Z', (size_t)(brace - line))); /* a UTC time */
        lines++;
        if (end == NULL)
            break;
        line = end + 1;
    }
    assert_int_equal(lines, 12);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--format", "text", "--local-time", "-n", "1",
                   NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "+0530"));
    tu_result_free(&r);
    unsetenv("TZ");
}

static void test_publish_failures_exit_1_and_store_nothing(void **state)
{
    struct fixture *f = *state;
    tu_result r =
        tu_run_cli(NULL, "--db", f->db, "publish", "NO_SUCH_TYPE", "--payload", "{}", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "publish", "ELO_UPDATED", "--payload", "[1]", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "publish", "ELO_UPDATED", "--payload", "{\"a\":", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "publish", "TRAINING_COMPLETED", "--strict", "--payload",
                   "{\"epochs\":\"three\"}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "epochs"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
}

static void test_wrong_usage_exits_2(void **state)
{
    struct fixture *f = *state;
    const char *cases[][4] = {
        {"publish", NULL, NULL, NULL},      {"publish", "ELO_UPDATED", "--bogus", NULL},
        {"tail", "--limit", "x", NULL},     {"tail", "--format", "yaml", NULL},
        {"stats", "--format", "xml", NULL}, {"purge", "--older-than", "soon", NULL},
        {"tail", "--since", NULL, NULL},    {"tail", "--subscriber", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[8] = {RRE_TEST_CLI, "--db", f->db};
        int n = 3;
        for (int k = 0; k < 4 && cases[i][k] != NULL; k++)
            argv[n++] = (char *)cases[i][k];
        argv[n] = NULL;
        tu_result r = tu_run_cliv(NULL, argv);
        if (r.status != 2)
            fail_msg("case %zu (%s %s) exited %d", i, cases[i][0], cases[i][1] ? cases[i][1] : "",
                     r.status);
        tu_result_free(&r);
    }
}

static void test_publish_reports_notes_and_warnings_each_with_one_prefix(void **state)
{
    struct fixture *f = *state;
    tu_result r = tu_run_cli(NULL, "--db", f->db, "publish", "TRAINING_STARTED", "--payload",
                             "{\"config_key\":7,\"zzz\":1}", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "note: unknown field 'zzz'"));
    assert_null(strstr(r.err, "warning: note:"));
    assert_non_null(strstr(r.err, "warning: field 'config_key'"));
    tu_result_free(&r);
    /* More problems than are kept: the count of the rest, as validate says. */
    char many[512] = "{";
    for (int i = 0; i < 20; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"x%d\":1", i ? "," : "", i);
    strcat(many, "}");
    r = tu_run_cli(NULL, "--db", f->db, "publish", "TRAINING_STARTED", "--payload", many, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "... and 4 more problems"));
    tu_result_free(&r);
}

static void test_stats_and_purge_of_a_missing_database_create_nothing(void **state)
{
    struct fixture *f = *state;
    char parent[700], missing[800];
    snprintf(parent, sizeof parent, "%s/typo", f->dir);
    snprintf(missing, sizeof missing, "%s/events.db", parent);
    const char *cmds[] = {"stats", "purge"};
    for (size_t i = 0; i < 2; i++) {
        tu_result r = tu_run_cli(NULL, "--db", missing, cmds[i], NULL);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "no queue database at"));
        tu_result_free(&r);
    }
    struct stat sb;
    assert_int_equal(stat(parent, &sb), -1);
}

static void test_tail_subscriber_acks_and_resumes(void **state)
{
    struct fixture *f = *state;
    publish_ok(f, "ELO_UPDATED", "{\"i\":1}", NULL);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "ops", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 1);
    tu_result_free(&r);
    int64_t id = publish_ok(f, "ELO_UPDATED", "{\"i\":2}", NULL);
    /* --no-ack shows it without moving the subscriber on. */
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "ops", "--no-ack", NULL);
    assert_int_equal(count_lines(r.out), 1);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "ops", NULL);
    assert_int_equal(count_lines(r.out), 1);
    json_t *o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), id);
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "ops", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "event_router", NULL);
    assert_int_equal(r.status, 1);
    tu_result_free(&r);
}

static void test_tail_filters_since_and_limit(void **state)
{
    struct fixture *f = *state;
    int64_t a = publish_ok(f, "ELO_UPDATED", "{\"i\":1}", NULL);
    publish_ok(f, "TRAINING_STARTED", "{\"i\":2}", NULL);
    int64_t c = publish_ok(f, "DATA_SYNC_COMPLETED", "{\"i\":3}", NULL);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--type", "elo_updated", "--category",
                             "sync", NULL);
    assert_int_equal(count_lines(r.out), 2);
    json_t *o = line_json(r.out, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), c);
    json_decref(o);
    tu_result_free(&r);
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)a);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", since, "--limit", "1", NULL);
    assert_int_equal(count_lines(r.out), 1);
    o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), a + 1);
    json_decref(o);
    tu_result_free(&r);
}

static void test_tail_since_a_duration_or_a_time_starts_there(void **state)
{
    struct fixture *f = *state;
    /* Two events of two hours ago (written as the Python side would),
     * then two of now. */
    tu_result r =
        tu_run_cli(NULL, "--db", f->db, "publish", "ELO_UPDATED", "--payload", "{\"i\":0}", NULL);
    tu_result_free(&r);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DELETE FROM events;"
                                  "INSERT INTO events(event_type, payload, created_at) VALUES"
                                  " ('elo_updated', '{\"i\":1}', strftime('%s','now') - 7200),"
                                  " ('elo_updated', '{\"i\":2}', strftime('%s','now') - 7100);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    int64_t c = publish_ok(f, "ELO_UPDATED", "{\"i\":3}", NULL);
    publish_ok(f, "ELO_UPDATED", "{\"i\":4}", NULL);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", "1h", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 2);
    json_t *o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), c);
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", "3h", NULL);
    assert_int_equal(count_lines(r.out), 4);
    tu_result_free(&r);
    /* A UTC time: long ago is everything, far ahead is nothing yet. */
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", "2020-01-01T00:00:00Z", NULL);
    assert_int_equal(count_lines(r.out), 4);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", "2999-01-01", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 0);
    tu_result_free(&r);
    const char *bad[] = {"yesterday", "1x", "2026-13-01", "2026-01-01T25:00", "-5", "1h30m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = tu_run_cli(NULL, "--db", f->db, "tail", "--since", bad[i], NULL);
        if (r.status != 2 || strstr(r.err, "--since takes") == NULL)
            fail_msg("--since %s exited %d: %s", bad[i], r.status, r.err);
        tu_result_free(&r);
    }
}

static void test_tail_cloudevents_format(void **state)
{
    struct fixture *f = *state;
    int64_t id = publish_ok(f, "MODEL_PROMOTED", "{\"model_id\":\"m1\"}", NULL);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--format", "cloudevents", NULL);
    assert_int_equal(r.status, 0);
    json_t *o = line_json(r.out, 0);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    assert_string_equal(json_string_value(json_object_get(o, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(o, "id")), idtext);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "ringrift.MODEL_PROMOTED");
    assert_string_equal(json_string_value(json_object_get(o, "datacontenttype")),
                        "application/json");
    assert_non_null(json_string_value(json_object_get(o, "source")));
    assert_non_null(json_string_value(json_object_get(o, "time")));
    assert_int_equal(strlen(json_string_value(json_object_get(o, "traceparent"))), 55);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "model_id")),
                        "m1");
    json_decref(o);
    tu_result_free(&r);
}

/* Starts `rre tail --follow` with its standard output on a pipe. */
static pid_t start_follow(struct fixture *f, int *out_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(RRE_TEST_CLI, RRE_TEST_CLI, "--db", f->db, "tail", "--subscriber", "follower",
              "--follow", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    f->follower = pid;
    return pid;
}

/* Reads from fd until `lines` newlines arrived or 10 s passed. */
static size_t read_lines(int fd, char *buf, size_t cap, size_t lines)
{
    size_t len = strlen(buf);
    time_t end = time(NULL) + 10;
    while (count_lines(buf) < lines && time(NULL) < end && len + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return count_lines(buf);
}

static void test_follow_sees_later_events_and_holds_the_name(void **state)
{
    struct fixture *f = *state;
    publish_ok(f, "ELO_UPDATED", "{\"i\":0}", NULL);
    int fd;
    pid_t pid = start_follow(f, &fd);
    char buf[8192] = "";
    assert_int_equal(read_lines(fd, buf, sizeof buf, 1), 1);
    /* While it runs, nobody else can hold the name. */
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "follower", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "held by pid"));
    tu_result_free(&r);
    int64_t id = publish_ok(f, "ELO_UPDATED", "{\"i\":1}", NULL);
    assert_int_equal(read_lines(fd, buf, sizeof buf, 2), 2);
    json_t *o = line_json(buf, 1);
    assert_int_equal(json_integer_value(json_object_get(o, "event_id")), id);
    json_decref(o);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    f->follower = 0;
    close(fd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Released on exit. */
    r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "follower", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
}

static void test_follow_ends_soon_after_its_reader_goes_away(void **state)
{
    struct fixture *f = *state;
    publish_ok(f, "ELO_UPDATED", "{\"i\":0}", NULL);
    int fd;
    pid_t pid = start_follow(f, &fd);
    char buf[8192] = "";
    assert_int_equal(read_lines(fd, buf, sizeof buf, 1), 1);
    /* As `rre tail --follow | head -1`: the reader leaves, no event comes. */
    close(fd);
    int status = 0;
    pid_t done = 0;
    for (int waited = 0; waited < 5000 && done == 0; waited += 10) {
        done = waitpid(pid, &status, WNOHANG);
        if (done == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(done, pid);
    f->follower = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    /* The name was released, and the printed event acknowledged. */
    tu_result r = tu_run_cli(NULL, "--db", f->db, "tail", "--subscriber", "follower", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    tu_result_free(&r);
}

static void test_stats_and_purge(void **state)
{
    struct fixture *f = *state;
    publish_ok(f, "ELO_UPDATED", "{\"i\":1}", NULL);
    publish_ok(f, "ELO_UPDATED", "{\"i\":2}", NULL);
    tu_result r = tu_run_cli(NULL, "--db", f->db, "stats", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 1);
    json_t *o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "events")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "by_type"), "ELO_UPDATED")), 2);
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "events: 2"));
    /* Sizes for people, with the exact figure beside. */
    assert_non_null(strstr(r.out, " KiB ("));
    assert_non_null(strstr(r.out, "retrying: 0, dead letters: 0"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "purge", NULL);
    assert_int_equal(r.status, 0);
    o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "events")), 0);
    json_decref(o);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "purge", "--older-than", "0.001s", NULL);
    assert_int_equal(r.status, 0);
    o = line_json(r.out, 0);
    assert_int_equal(json_integer_value(json_object_get(o, "events")), 2);
    json_decref(o);
    tu_result_free(&r);
}

static void test_unusable_database_exits_1(void **state)
{
    struct fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("this is not a database, it is a text file long enough to look like a header...\n", fp);
    fclose(fp);
    tu_result r = tu_run_cli(NULL, "--db", path, "publish", "ELO_UPDATED", "--payload", "{}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "corrupt"));
    tu_result_free(&r);
}

static void test_empty_db_path_is_usage_error_not_the_default_database(void **state)
{
    struct fixture *f = *state;
    /* The default location, here under the fixture's directory: an empty
     * --db (a script's unset variable) must not reach it. */
    char dir[600], default_db[700];
    snprintf(dir, sizeof dir, "%s/default", f->dir);
    snprintf(default_db, sizeof default_db, "%s/events.db", dir);
    setenv("RINGRIFT_COORDINATION_DIR", dir, 1);
    tu_result r = tu_run_cli(NULL, "--db", "", "publish", "HOST_ONLINE", "--payload",
                             "{\"host\":\"a\"}", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--db"));
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db=", "purge", "--older-than", "0", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", f->db, "--db", NULL);
    assert_int_equal(r.status, 2);
    tu_result_free(&r);
    unsetenv("RINGRIFT_COORDINATION_DIR");
    assert_int_not_equal(access(default_db, F_OK), 0);
}

static void test_publish_and_stats_with_unwritable_output_exit_one(void **state)
{
    struct fixture *f = *state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    /* The event is stored, but the caller never learns its id: not a success. */
    char *publish[] = {
        "rre", "--db", f->db, "publish", "HOST_ONLINE", "--payload", "{\"host\":\"a\"}", NULL};
    assert_int_equal(tu_run_cli_full_output(publish), 1);
    char *stats[] = {"rre", "--db", f->db, "stats", "--format", "json", NULL};
    assert_int_equal(tu_run_cli_full_output(stats), 1);
    char *purge[] = {"rre", "--db", f->db, "purge", NULL};
    assert_int_equal(tu_run_cli_full_output(purge), 1);
}

static void test_purge_duration_must_be_a_plain_decimal_number(void **state)
{
    struct fixture *f = *state;
    publish_ok(f, "ELO_UPDATED", "{\"i\":1}", NULL);
    /* Forms strtod would take but a duration is not: hexadecimal, a blank, a
     * sign, an exponent, infinity, a lone point. */
    const char *bad[] = {"0x10", " 5", "+5", "1e3", "inf", ".", "1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_result r = tu_run_cli(NULL, "--db", f->db, "purge", "--older-than", bad[i], NULL);
        if (r.status != 2)
            print_message("'%s': status %d\n", bad[i], r.status);
        assert_int_equal(r.status, 2);
        tu_result_free(&r);
    }
    const char *good[] = {"90", "1.5d", ".5m", "24h"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tu_result r = tu_run_cli(NULL, "--db", f->db, "purge", "--older-than", good[i], NULL);
        assert_int_equal(r.status, 0);
        tu_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_then_tail_prints_the_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_publish_reports_duplicate_and_adds_no_row,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_text_is_aligned_columns_with_utc_or_local_times,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_tail_until_new_and_start_choose_where_it_starts_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_reads_payload_from_stdin_and_takes_source,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_failures_exit_1_and_store_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_usage_exits_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_purge_of_a_missing_database_create_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_publish_reports_notes_and_warnings_each_with_one_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_subscriber_acks_and_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_filters_since_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_since_a_duration_or_a_time_starts_there, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tail_cloudevents_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_and_stats_with_unwritable_output_exit_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_db_path_is_usage_error_not_the_default_database,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_sees_later_events_and_holds_the_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_follow_ends_soon_after_its_reader_goes_away, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_duration_must_be_a_plain_decimal_number, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unusable_database_exits_1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
