/*
 * queue_multiprocess_test.c - many processes on one queue at once: several
 * publisher processes and several durable subscriber processes; every
 * subscriber must get every event exactly once, in event_id order and, for
 * each publisher, in publish order, with no error escaping (SQLITE_BUSY
 * included).
 *
 * The default is 4 publishers x 20,000 events and 3 subscribers (4 x 1,000
 * under the sanitizers, which slow SQLite down tenfold);
 * RRE_QUEUE_TEST_EVENTS=N runs 4 x N.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_EVENTS 1000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DEFAULT_EVENTS 1000
#endif
#endif
#ifndef DEFAULT_EVENTS
#define DEFAULT_EVENTS 20000
#endif

enum { PUBLISHERS = 4, SUBSCRIBERS = 3 };

static long events_per_publisher(void)
{
    const char *v = getenv("RRE_QUEUE_TEST_EVENTS");
    long n = v != NULL ? atol(v) : 0;
    return n > 0 ? n : DEFAULT_EVENTS;
}

static rre_queue *open_queue(const char *path)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.busy_timeout_ms = 120000;
    rre_queue *q = NULL;
    if (rre_queue_create(&q, &o) != RRE_OK) {
        fprintf(stderr, "open: %s\n", rre_last_error());
        _exit(10);
    }
    return q;
}

static void publisher_main(const char *path, int id, long n)
{
    rre_queue *q = open_queue(path);
    for (long i = 0; i < n; i++) {
        json_t *p = json_pack("{s:i,s:I}", "pub", id, "seq", (json_int_t)i);
        rre_queue_publish_result r;
        rre_status st = rre_queue_publish(q, RRE_EV_NEW_GAMES_AVAILABLE, p, "mp", NULL, NULL, &r);
        json_decref(p);
        if (st != RRE_OK || r.duplicate) {
            fprintf(stderr, "publisher %d: event %ld: %s: %s\n", id, i, rre_strerror(st),
                    rre_last_error());
            _exit(11);
        }
    }
    rre_queue_destroy(q);
    _exit(0);
}

struct check {
    long next_seq[PUBLISHERS];
    long total;
    int64_t last_id;
    int error;
};

static rre_status check_event(const rre_event *ev, void *ud)
{
    struct check *c = ud;
    json_int_t pub = json_integer_value(json_object_get(ev->payload, "pub"));
    json_int_t seq = json_integer_value(json_object_get(ev->payload, "seq"));
    if (ev->event_id <= c->last_id) {
        fprintf(stderr, "event %lld after %lld: out of order\n", (long long)ev->event_id,
                (long long)c->last_id);
        c->error = 1;
    }
    if (pub < 0 || pub >= PUBLISHERS || seq != c->next_seq[pub]) {
        fprintf(stderr, "publisher %lld: got seq %lld, expected %ld\n", (long long)pub,
                (long long)seq, pub >= 0 && pub < PUBLISHERS ? c->next_seq[pub] : -1L);
        c->error = 1;
    } else {
        c->next_seq[pub]++;
    }
    c->last_id = ev->event_id;
    c->total++;
    return RRE_OK;
}

static void subscriber_main(const char *path, int id, long want, int ready_fd)
{
    rre_queue *q = open_queue(path);
    char name[32];
    snprintf(name, sizeof name, "mp-sub-%d", id);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    rre_subscriber *s;
    if (rre_subscriber_create(&s, q, &o) != RRE_OK) {
        fprintf(stderr, "subscriber %d: %s\n", id, rre_last_error());
        _exit(12);
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        _exit(13);
    close(ready_fd);
    struct check c = {{0}, 0, 0, 0};
    int idle = 0;
    while (c.total < want && !c.error && idle < 600) {
        size_t n = 0;
        rre_status st = rre_subscriber_poll(s, 200, 0, check_event, &c, &n);
        if (st != RRE_OK) {
            fprintf(stderr, "subscriber %d: %s: %s\n", id, rre_strerror(st), rre_last_error());
            _exit(14);
        }
        idle = n == 0 ? idle + 1 : 0;
    }
    /* Nothing more may come. */
    size_t extra = 0;
    rre_subscriber_poll(s, 50, 0, check_event, &c, &extra);
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    if (c.error || c.total != want || extra != 0) {
        fprintf(stderr, "subscriber %d: got %ld of %ld events (%zu extra), error %d\n", id, c.total,
                want, extra, c.error);
        _exit(15);
    }
    _exit(0);
}

static void test_publishers_and_subscribers_in_many_processes_exactly_once_in_order(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/events.db", dir);
    long n = events_per_publisher();
    pid_t pids[PUBLISHERS + SUBSCRIBERS];
    int np = 0;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(ready[0]);
            subscriber_main(path, i, n * PUBLISHERS, ready[1]);
        }
        close(ready[1]);
        char c;
        assert_int_equal(read(ready[0], &c, 1), 1); /* subscribed before anything is published */
        close(ready[0]);
        pids[np++] = pid;
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            publisher_main(path, i, n);
        pids[np++] = pid;
    }
    int failures = 0;
    for (int i = 0; i < np; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s %d ended with status %d\n",
                    i < SUBSCRIBERS ? "subscriber" : "publisher", i, status);
            failures++;
        }
    }
    tu_rmtree(dir);
    free(dir);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publishers_and_subscribers_in_many_processes_exactly_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
