/*
 * queue_crash_test.c - processes killed with SIGKILL at random moments: a
 * publisher loses nothing whose publish had returned success and leaves no
 * partial row; a consumer resumes without loss and without redelivering
 * what it had acknowledged.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static rre_queue *open_queue(const char *path)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    if (rre_queue_create(&q, &o) != RRE_OK) {
        fprintf(stderr, "open: %s\n", rre_last_error());
        _exit(10);
    }
    return q;
}

/* Marks, on the pipe, that the queue is open and its schema exists. */
#define READY_MARK ((int32_t)-1)

/* Opens the queue and writes READY_MARK to fd, then publishes
 * {"round":r,"seq":i} forever; after each successful publish writes i to fd. */
static void publisher_main(const char *path, int round, int fd)
{
    rre_queue *q = open_queue(path);
    int32_t ready = READY_MARK;
    if (write(fd, &ready, sizeof ready) != (ssize_t)sizeof ready)
        _exit(12);
    for (int32_t i = 0;; i++) {
        json_t *p = json_pack("{s:i,s:i,s:s}", "round", round, "seq", i, "pad",
                              "some text to make rows span a little more of a page");
        rre_status st =
            rre_queue_publish(q, RRE_EV_NEW_GAMES_AVAILABLE, p, "crash", NULL, NULL, NULL);
        json_decref(p);
        if (st != RRE_OK)
            _exit(11);
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
            _exit(12);
    }
}

static void test_publisher_killed_at_random_loses_nothing_it_reported(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/events.db", dir);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int round = 0; round < 5; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            publisher_main(path, round, p[1]);
        }
        close(p[1]);
        /* The kill lands at a random moment of publishing, not before the
         * child has made the schema: how long opening takes depends on the
         * machine's load and the sanitizers, and a child killed while
         * creating the file leaves nothing to check. */
        int32_t seq, last = -1;
        assert_int_equal(read(p[0], &seq, sizeof seq), (ssize_t)sizeof seq);
        assert_int_equal(seq, READY_MARK);
        usleep((useconds_t)(20000 + rand() % 150000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        while (read(p[0], &seq, sizeof seq) == (ssize_t)sizeof seq)
            last = seq;
        close(p[0]);

        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        /* Every reported event is there, once. */
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*), count(DISTINCT json_extract(payload,"
                                            " '$.seq')), max(json_extract(payload, '$.seq'))"
                                            " FROM events WHERE json_extract(payload, '$.round')"
                                            " = ?",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_int(st, 1, round);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int64_t count = sqlite3_column_int64(st, 0), distinct = sqlite3_column_int64(st, 1);
        int64_t max = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
        sqlite3_finalize(st);
        assert_int_equal(count, distinct);
        assert_true(max >= last);         /* nothing reported is missing... */
        assert_true(max <= last + 1);     /* ...at most the one in flight is extra */
        assert_int_equal(count, max + 1); /* and there are no gaps */
        /* No partial rows: every payload is a whole JSON object. */
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM events WHERE json_valid(payload)"
                                            " = 0 OR json_type(payload) != 'object'",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), 0);
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    tu_rmtree(dir);
    free(dir);
}

struct to_fd {
    int fd;
};

static rre_status report_id(const rre_event *ev, void *ud)
{
    struct to_fd *t = ud;
    int64_t id = ev->event_id;
    if (write(t->fd, &id, sizeof id) != (ssize_t)sizeof id)
        _exit(20);
    return RRE_OK;
}

static void consumer_main(const char *path, int fd)
{
    rre_queue *q = open_queue(path);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "crashy";
    o.batch = 64;
    rre_subscriber *s;
    if (rre_subscriber_create(&s, q, &o) != RRE_OK)
        _exit(21);
    struct to_fd t = {fd};
    for (;;) {
        if (rre_subscriber_poll(s, 100, 0, report_id, &t, NULL) != RRE_OK)
            _exit(22);
    }
}

struct collect_ids {
    int64_t *ids;
    size_t n;
};

static rre_status collect_id(const rre_event *ev, void *ud)
{
    struct collect_ids *c = ud;
    c->ids[c->n++] = ev->event_id;
    return RRE_OK;
}

static void test_consumer_killed_mid_stream_resumes_without_loss_or_redelivery(void **state)
{
    (void)state;
    enum { N = 3000 };
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/events.db", dir);
    rre_queue *q = open_queue(path);
    for (int i = 0; i < N; i++) {
        json_t *p = json_pack("{s:i}", "i", i);
        assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, NULL, NULL, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    rre_queue_destroy(q);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        consumer_main(path, p[1]);
    }
    close(p[1]);
    /* Let it handle somewhere between 500 and 1500 events, then kill it. */
    static bool seen[N + 1];
    memset(seen, 0, sizeof seen);
    size_t got = 0, stop_at = 500 + (size_t)(rand() % 1000);
    int64_t id;
    while (got < stop_at && read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        assert_true(id >= 1 && id <= N);
        assert_false(seen[id]);
        seen[id] = true;
        got++;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        assert_false(seen[id]);
        seen[id] = true;
    }
    close(p[0]);

    /* What it acknowledged, it had handled. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT event_id FROM acks WHERE subscriber_id LIKE"
                                        " '%:stable:crashy'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    static bool acked[N + 1];
    memset(acked, 0, sizeof acked);
    size_t nacked = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t a = sqlite3_column_int64(st, 0);
        assert_true(seen[a]);
        acked[a] = true;
        nacked++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(nacked > 0);

    /* The restarted consumer takes over the dead one's name and gets the
     * rest: nothing acknowledged again, nothing lost. */
    q = open_queue(path);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "crashy";
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    struct collect_ids c = {calloc(N, sizeof(int64_t)), 0};
    size_t n;
    do {
        assert_int_equal(rre_subscriber_poll(s, 0, 0, collect_id, &c, &n), RRE_OK);
    } while (n > 0);
    for (size_t i = 0; i < c.n; i++) {
        assert_false(acked[c.ids[i]]);
        if (i > 0)
            assert_true(c.ids[i] > c.ids[i - 1]);
        seen[c.ids[i]] = true;
    }
    for (int i = 1; i <= N; i++)
        if (!seen[i])
            fail_msg("event %d was never delivered", i);
    free(c.ids);
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher_killed_at_random_loses_nothing_it_reported),
        cmocka_unit_test(test_consumer_killed_mid_stream_resumes_without_loss_or_redelivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
