/*
 * bench_queue.c - figures of the durable SQLite queue: publish events/s
 * from one thread (one event per call) and from 4 threads (group commit),
 * with synchronous=NORMAL and FULL; delivery events/s to a subscriber in
 * another process; publish-to-handler latency across processes at 1,000
 * events/s (p50, p99); resident memory of a consumer process. Two figures
 * put the publish rates in proportion: batches of 100 events per call
 * (rre_queue_publish_batch), and SQLite alone committing the same rows into
 * the Python schema with Python's pragmas, one commit per row and no dedup,
 * the floor under any one-commit-per-call publish on this machine.
 * Pipelined publishing (rre_queue_publish_async(), one event per call from
 * one thread, timed until rre_queue_flush() returns; and the same through a
 * router linked with RRE_LINK_PIPELINED) is put beside SQLite alone
 * committing the same rows 1,000 per transaction.
 *
 * Usage: bench_queue [EVENTS]   (default 200000; the database lives in a
 * fresh directory under $TMPDIR or /tmp and is removed afterwards).
 */
#include <rre/rre.h>

#include "resident.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, rre_status st)
{
    fprintf(stderr, "bench_queue: %s: %s: %s\n", what, rre_strerror(st), rre_last_error());
    exit(1);
}

/* An 11-field TRAINING_COMPLETED payload, unique per (thread, seq). */
static json_t *payload(int thread, long seq)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:i,s:f,s:i,s:s,s:f,s:b,s:I}", "config_key", "hex8_2p",
                     "board_type", "hex8", "num_players", 2, "model_path",
                     "/models/hex8_2p/latest.pth", "epochs", 20, "final_loss", 0.0423,
                     "samples_trained", 250000, "job_id", "job-42", "duration_seconds", 311.5,
                     "early_stopped", 0, "seq", (json_int_t)(thread * 100000000L + seq));
}

static rre_queue *open_queue(const char *name, rre_queue_sync sync)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.sync = sync;
    rre_queue *q;
    rre_status st = rre_queue_create(&q, &o);
    if (st != RRE_OK)
        die("open", st);
    return q;
}

struct pub_arg {
    rre_queue *q;
    int thread;
    long n;
    json_t **payloads;
};

static void *pub_main(void *arg)
{
    struct pub_arg *a = arg;
    for (long i = 0; i < a->n; i++) {
        rre_status st = rre_queue_publish(a->q, RRE_EV_TRAINING_COMPLETED, a->payloads[i], "bench",
                                          NULL, NULL, NULL);
        if (st != RRE_OK)
            die("publish", st);
    }
    return NULL;
}

static double bench_publish(const char *name, rre_queue_sync sync, int threads, long total)
{
    rre_queue *q = open_queue(name, sync);
    long per = total / threads;
    pthread_t th[16];
    struct pub_arg args[16];
    for (int t = 0; t < threads; t++) {
        args[t] = (struct pub_arg){q, t, per, malloc(sizeof(json_t *) * (size_t)per)};
        for (long i = 0; i < per; i++)
            args[t].payloads[i] = payload(t, i);
    }
    double t0 = now_s();
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, pub_main, &args[t]);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double el = now_s() - t0;
    for (int t = 0; t < threads; t++) {
        for (long i = 0; i < per; i++)
            json_decref(args[t].payloads[i]);
        free(args[t].payloads);
    }
    rre_queue_destroy(q);
    return (double)(per * threads) / el;
}

/* One thread, `batch` events per rre_queue_publish_batch() call. */
static double bench_publish_batches(const char *name, size_t batch, long total)
{
    rre_queue *q = open_queue(name, RRE_QUEUE_SYNC_NORMAL);
    rre_event *evs = calloc((size_t)total, sizeof *evs);
    for (long i = 0; i < total; i++) {
        evs[i].type = RRE_EV_TRAINING_COMPLETED;
        evs[i].payload = payload(0, i);
        evs[i].source = "bench";
    }
    double t0 = now_s();
    for (long i = 0; i < total; i += (long)batch) {
        size_t k = (size_t)(total - i) < batch ? (size_t)(total - i) : batch;
        rre_status st = rre_queue_publish_batch(q, evs + i, k, NULL);
        if (st != RRE_OK)
            die("publish batch", st);
    }
    double el = now_s() - t0;
    for (long i = 0; i < total; i++)
        json_decref(evs[i].payload);
    free(evs);
    rre_queue_destroy(q);
    return (double)total / el;
}

/* One thread, one event per call, pipelined (rre_queue_publish_async()),
 * until rre_queue_flush() says all are stored; or the same through a router
 * linked with RRE_LINK_PIPELINED when `linked`. */
static double bench_publish_pipelined(const char *name, long total, bool linked)
{
    rre_queue *q = open_queue(name, RRE_QUEUE_SYNC_NORMAL);
    rre_router *r = NULL;
    rre_link *l = NULL;
    if (linked) {
        rre_router_options *ro = NULL;
        rre_status st = rre_router_options_create(&ro);
        if (st == RRE_OK)
            st = rre_router_options_set_history_size(ro, 0);
        if (st == RRE_OK)
            st = rre_router_create(&r, ro);
        rre_router_options_destroy(ro);
        rre_link_options lo = {.flags = RRE_LINK_PIPELINED | RRE_LINK_NO_READER};
        if (st == RRE_OK)
            st = rre_link_create(&l, r, q, &lo);
        if (st != RRE_OK)
            die("router and link", st);
    }
    json_t **ps = malloc(sizeof *ps * (size_t)total);
    for (long i = 0; i < total; i++)
        ps[i] = payload(0, i);
    double t0 = now_s();
    for (long i = 0; i < total; i++) {
        rre_status st =
            linked ? rre_router_publish_type(r, RRE_EV_TRAINING_COMPLETED, ps[i], NULL, NULL)
                   : rre_queue_publish_async(q, RRE_EV_TRAINING_COMPLETED, ps[i], "bench", NULL,
                                             NULL, NULL, NULL);
        if (st != RRE_OK)
            die("publish pipelined", st);
    }
    rre_status st = linked ? rre_link_flush(l, -1) : rre_queue_flush(q, -1);
    if (st != RRE_OK)
        die("flush", st);
    double el = now_s() - t0;
    for (long i = 0; i < total; i++)
        json_decref(ps[i]);
    free(ps);
    rre_link_destroy(l);
    rre_router_destroy(r);
    rre_queue_destroy(q);
    return (double)total / el;
}

/* SQLite by itself: the rows publish writes (same text), inserted into the
 * schema the queue creates, with the Python side's pragmas, `batch` rows per
 * transaction, no dedup and no JSON or hashing work. */
static double bench_sqlite_alone(const char *name, long total, long batch)
{
    rre_queue_destroy(open_queue(name, RRE_QUEUE_SYNC_NORMAL)); /* creates the schema */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *db;
    sqlite3_stmt *ins;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA busy_timeout=60000; PRAGMA wal_autocheckpoint=500;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO events(event_type, payload, source, hostname, created_at)"
                           " VALUES ('training_completed', ?, 'bench', 'host', ?)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_queue: sqlite: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    char **texts = malloc(sizeof(char *) * (size_t)total);
    for (long i = 0; i < total; i++) {
        json_t *p = payload(0, i);
        if (rre_canonical_json(p, &texts[i], NULL) != RRE_OK)
            die("canonical", RRE_EINTERNAL);
        json_decref(p);
    }
    double t0 = now_s();
    for (long i = 0; i < total; i += batch) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        double t = now_s();
        for (long k = i; k < i + batch && k < total; k++) {
            sqlite3_bind_text(ins, 1, texts[k], -1, SQLITE_STATIC);
            sqlite3_bind_double(ins, 2, t);
            if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_reset(ins) != SQLITE_OK) {
                fprintf(stderr, "bench_queue: sqlite: %s\n", sqlite3_errmsg(db));
                exit(1);
            }
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "bench_queue: sqlite: %s\n", sqlite3_errmsg(db));
            exit(1);
        }
    }
    double el = now_s() - t0;
    for (long i = 0; i < total; i++)
        free(texts[i]);
    free(texts);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return (double)total / el;
}

struct consume_state {
    long want, got, looked;
    int64_t *lat; /* latency per event, ns, when measuring latency */
};

static rre_status count_handler(const rre_event *ev, void *ud)
{
    struct consume_state *c = ud;
    if (c->lat != NULL) {
        c->looked++;
        json_int_t sent = json_integer_value(json_object_get(ev->payload, "sent_ns"));
        if (c->got < c->want)
            c->lat[c->got] = now_ns() - sent;
    } else if (ev->payload != NULL ? json_object_get(ev->payload, "model_path") != NULL
                                   : ev->type == RRE_EV_TRAINING_COMPLETED) {
        /* A handler looks at the event: a field of the payload when it was
         * parsed, the type otherwise. */
        c->looked++;
    }
    c->got++;
    return RRE_OK;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Child: consumes `want` events as durable subscriber `name`, writes its
 * figures to fd. */
_Noreturn static void consumer_child(const char *dbname, const char *name, long want, bool latency,
                                     char mode, int fd, int ready_fd)
{
    rre_queue *q = open_queue(dbname, RRE_QUEUE_SYNC_NORMAL);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = name;
    o.lazy_payload = mode != 'p';
    o.cursor_only = mode == 'c';
    rre_subscriber *s;
    rre_status st = rre_subscriber_create(&s, q, &o);
    if (st != RRE_OK)
        die("subscribe", st);
    struct consume_state c = {want, 0, 0, latency ? calloc((size_t)want, sizeof(int64_t)) : NULL};
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        exit(1);
    double t0 = now_s();
    while (c.got < want) {
        st = rre_subscriber_poll(s, 5000, 0, count_handler, &c, NULL);
        if (st != RRE_OK)
            die("poll", st);
    }
    double el = now_s() - t0;
    if (c.looked != c.got) {
        fprintf(stderr, "bench_queue: %ld of %ld events were not what was published\n",
                c.got - c.looked, c.got);
        exit(1);
    }
    resident res = resident_now();
    double figs[6] = {(double)c.got / el,  0, 0, (double)res.total_kib, (double)res.file_kib,
                      (double)res.anon_kib};
    if (latency) {
        qsort(c.lat, (size_t)want, sizeof(int64_t), cmp64);
        figs[1] = (double)c.lat[want / 2] / 1e3;
        figs[2] = (double)c.lat[(want * 99) / 100] / 1e3;
    }
    if (write(fd, figs, sizeof figs) != (ssize_t)sizeof figs)
        exit(1);
    free(c.lat);
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    exit(0);
}

/* Starts a consumer as a fresh program (so its memory figure is its own,
 * not what it would inherit from this process through fork). */
static void run_child(const char *dbname, const char *name, long want, bool latency, char mode,
                      int out[2], pid_t *pid)
{
    int ready[2];
    if (pipe(out) != 0 || pipe(ready) != 0)
        exit(1);
    fflush(stdout);
    *pid = fork();
    if (*pid == 0) {
        close(out[0]);
        close(ready[0]);
        char want_s[32], out_s[16], ready_s[16], mode_s[2] = {mode, '\0'};
        snprintf(want_s, sizeof want_s, "%ld", want);
        snprintf(out_s, sizeof out_s, "%d", out[1]);
        snprintf(ready_s, sizeof ready_s, "%d", ready[1]);
        execl("/proc/self/exe", "bench_queue", "--consumer", dir, dbname, name, want_s,
              latency ? "1" : "0", mode_s, out_s, ready_s, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        exit(1);
    close(ready[0]);
}

int main(int argc, char **argv)
{
    if (argc == 10 && strcmp(argv[1], "--consumer") == 0) {
        snprintf(dir, sizeof dir, "%s", argv[2]);
        consumer_child(argv[3], argv[4], atol(argv[5]), argv[6][0] == '1', argv[7][0],
                       atoi(argv[8]), atoi(argv[9]));
    }
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rre-bench-queue-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    double one = bench_publish("p1n.db", RRE_QUEUE_SYNC_NORMAL, 1, n);
    printf("queue publish, 1 thread, one event per call, synchronous=NORMAL: %.0f events/s\n", one);
    printf("queue publish, 4 threads, group commit, synchronous=NORMAL: %.0f events/s\n",
           bench_publish("p4n.db", RRE_QUEUE_SYNC_NORMAL, 4, n));
    double batched = bench_publish_batches("pbn.db", 100, n);
    printf("queue publish, 1 thread, batches of 100 events per call, synchronous=NORMAL: "
           "%.0f events/s (%.1fx one per call)\n",
           batched, batched / one);
    double alone = bench_sqlite_alone("raw.db", n, 1);
    printf("SQLite alone, the same rows, one commit per row, no dedup, Python's pragmas: "
           "%.0f rows/s (publish one per call: %.2fx of it)\n",
           alone, one / alone);
    double piped = bench_publish_pipelined("ppn.db", n, false);
    double piped_linked = bench_publish_pipelined("pln.db", n, true);
    double alone_batched = bench_sqlite_alone("rawb.db", n, 1000);
    printf("queue publish, 1 thread, one event per call, pipelined (rre_queue_publish_async, "
           "until flushed): %.0f events/s\n",
           piped);
    printf("router publish through a link with RRE_LINK_PIPELINED, 1 thread, one event per call, "
           "until flushed: %.0f events/s (goal: at least 100000)\n",
           piped_linked);
    printf("SQLite alone, the same rows, 1000 rows per commit, no dedup, Python's pragmas: %.0f "
           "rows/s (pipelined queue publish: %.2fx of it, through the link: %.2fx; goal: at "
           "least 0.6x)\n",
           alone_batched, piped / alone_batched, piped_linked / alone_batched);
    printf("queue publish, 1 thread, one event per call, synchronous=FULL: %.0f events/s\n",
           bench_publish("p1f.db", RRE_QUEUE_SYNC_FULL, 1, n / 10));
    printf("queue publish, 4 threads, group commit, synchronous=FULL: %.0f events/s\n",
           bench_publish("p4f.db", RRE_QUEUE_SYNC_FULL, 4, n / 4));
    /* Delivery: a backlog in the file, drained by a subscriber in another
     * process. */
    {
        rre_queue *q = open_queue("deliver.db", RRE_QUEUE_SYNC_NORMAL);
        for (long i = 0; i < n; i++) {
            json_t *p = payload(0, i);
            rre_queue_publish(q, RRE_EV_TRAINING_COMPLETED, p, "bench", NULL, NULL, NULL);
            json_decref(p);
        }
        int out[2];
        pid_t pid;
        double lazy[6], cursor_only[6];
        run_child("deliver.db", "drain-lazy", n, false, 'l', out, &pid);
        if (read(out[0], lazy, sizeof lazy) != (ssize_t)sizeof lazy)
            return 1;
        waitpid(pid, NULL, 0);
        close(out[0]);
        run_child("deliver.db", "drain-cursor", n, false, 'c', out, &pid);
        if (read(out[0], cursor_only, sizeof cursor_only) != (ssize_t)sizeof cursor_only)
            return 1;
        waitpid(pid, NULL, 0);
        close(out[0]);
        run_child("deliver.db", "drain", n, false, 'p', out, &pid);
        double figs[6];
        if (read(out[0], figs, sizeof figs) != (ssize_t)sizeof figs)
            return 1;
        waitpid(pid, NULL, 0);
        close(out[0]);
        printf("queue delivery to a subscriber in another process (with Python-compatible acks), "
               "payloads parsed: %.0f events/s\n",
               figs[0]);
        printf("queue delivery to a subscriber in another process (with Python-compatible acks), "
               "lazy_payload (parsed when the handler asks; this one reads the envelope): %.0f "
               "events/s\n",
               lazy[0]);
        printf("queue delivery to a subscriber in another process, lazy_payload and cursor_only "
               "(progress in the cursor only, no Python acks rows): %.0f events/s (goal: at least "
               "300000)\n",
               cursor_only[0]);
        printf("queue consumer resident memory after %ld events: %.0f KiB (%.0f KiB file-backed:"
               " program and shared libraries; %.0f KiB anonymous: heap and stacks)\n",
               n, figs[3], figs[4], figs[5]);
        rre_queue_destroy(q);
    }

    /* Latency at 1,000 events/s. */
    {
        long m = 3000;
        rre_queue *q = open_queue("latency.db", RRE_QUEUE_SYNC_NORMAL);
        int out[2];
        pid_t pid;
        run_child("latency.db", "lat", m, true, 'p', out, &pid);
        usleep(100000);
        int64_t start = now_ns();
        for (long i = 0; i < m; i++) {
            int64_t due = start + i * 1000000;
            while (now_ns() < due) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
            json_t *p = json_pack("{s:I,s:I}", "sent_ns", (json_int_t)now_ns(), "i", (json_int_t)i);
            rre_queue_publish(q, RRE_EV_TRAINING_COMPLETED, p, "bench", NULL, NULL, NULL);
            json_decref(p);
        }
        double figs[6];
        if (read(out[0], figs, sizeof figs) != (ssize_t)sizeof figs)
            return 1;
        waitpid(pid, NULL, 0);
        close(out[0]);
        printf("queue latency publish -> handler in another process at 1000 events/s: "
               "p50 %.0f us, p99 %.0f us\n",
               figs[1], figs[2]);
        rre_queue_destroy(q);
    }

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_queue: could not remove %s\n", dir);
    return 0;
}
