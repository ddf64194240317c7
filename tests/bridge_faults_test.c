/*
 * bridge_faults_test.c - the bridge's guarantees under faults, against real
 * nats-server processes (one server, or a three-node JetStream cluster) and,
 * for the crash test, real `rre bridge` processes: a bridge SIGKILLed at
 * random moments, a server SIGKILLed mid-stream and restarted, a server that
 * is not there when the bridge starts, a server gone for several seconds,
 * and a cluster losing its stream leader. After every fault each event of a
 * host reaches the other host exactly once and in its origin's order,
 * nothing echoes back to its origin, the stream stores every event once,
 * and publishing on a host never depends on the bridge.
 *
 * Nothing here is mocked, and nothing depends on how fast the machine is:
 * every wait has a bound and is for an observable condition (rows in a
 * queue file, a consumer with nothing pending, a bridge state); when a wait
 * runs out the test prints the bridge counters, the library's recent log,
 * the bridge processes' logs and the server logs, and fails.
 *
 * The events are {"tag":T,"seq":i,"origin":H} of type ELO_UPDATED, as in
 * bridge_hosts.c; seq 0..n-1 in publishing order lets a receiving host's
 * file show loss, duplicates and order.
 */
#include "bridge_hosts.h"

#include <nats/nats.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long a wait for progress may take before the test fails: long enough
 * for the sanitizer builds on a loaded two-core machine, where a consumer
 * waiting for a redelivery may also sit out its 30 s acknowledgement wait. */
#define WAIT_MS 90000
/* How long a bridge process or an in-process bridge may take to be ready. */
#define READY_MS 60000
/* How long one test, and then its teardown, may each take before the
 * program aborts: the last bound, for waits that cannot have their own
 * (joining a bridge thread that does not return). */
#define TEST_LIMIT_S 180

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The random moments (which bridge is killed, when, for how long a server
 * is away) come from one seed per test, printed with the test's output;
 * BRIDGE_FAULTS_SEED=N makes the same choices again (the moments they land
 * on still depend on the machine). Main thread only. */
static unsigned g_seed;

static int rnd(int below)
{
    return below > 0 ? rand_r(&g_seed) % below : 0;
}

static void seed_test(const char *name)
{
    const char *fixed = getenv("BRIDGE_FAULTS_SEED");
    if (fixed != NULL && fixed[0] != '\0')
        g_seed = (unsigned)strtoul(fixed, NULL, 10);
    else
        g_seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8) ^ (unsigned)now_ms();
    print_message("%s: seed %u\n", name, g_seed);
}

/* ------------------------------------------------------------------------ */
/* The library's recent log, kept for failure reports                        */
/* ------------------------------------------------------------------------ */

#define LOG_LINES 256

static struct {
    pthread_mutex_t mu;
    int64_t t0;
    unsigned next;
    char lines[LOG_LINES][240];
} g_log = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}};

static void keep_log(rre_log_level level, const char *component, const char *message,
                     void *user_data)
{
    (void)user_data;
    pthread_mutex_lock(&g_log.mu);
    snprintf(g_log.lines[g_log.next % LOG_LINES], sizeof g_log.lines[0], "%7.3f %s %s: %s",
             (double)(now_ms() - g_log.t0) / 1000.0, rre_log_level_name(level), component, message);
    g_log.next++;
    pthread_mutex_unlock(&g_log.mu);
}

static void print_log(void)
{
    pthread_mutex_lock(&g_log.mu);
    unsigned first = g_log.next > LOG_LINES ? g_log.next - LOG_LINES : 0;
    fprintf(stderr, "---- the library's last %u log lines ----\n", g_log.next - first);
    for (unsigned i = first; i < g_log.next; i++)
        fprintf(stderr, "%s\n", g_log.lines[i % LOG_LINES]);
    pthread_mutex_unlock(&g_log.mu);
}

static void reset_log(void)
{
    pthread_mutex_lock(&g_log.mu);
    g_log.next = 0;
    g_log.t0 = now_ms();
    pthread_mutex_unlock(&g_log.mu);
}

/* ------------------------------------------------------------------------ */
/* Bridges as `rre bridge` processes                                         */
/* ------------------------------------------------------------------------ */

/* One host's bridge run by the command line, so that it can be SIGKILLed.
 * Its standard error (the ready line and the library's log) is appended to
 * `log`, across restarts. */
typedef struct cli_bridge {
    char name[64];
    char db[600];
    char log[600];
    char servers[512];
    char stream[64];
    char consumer[160]; /* from the ready line */
    pid_t pid;          /* 0 while not running */
    off_t mark;         /* the size of the log when the process was last started */
    int starts, kills;
} cli_bridge;

static void cli_init(cli_bridge *c, const char *root, const char *name, const char *servers,
                     const char *stream)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->db, sizeof c->db, "%s/%s/events.db", root, name);
    snprintf(c->log, sizeof c->log, "%s/%s/bridge.log", root, name);
    snprintf(c->servers, sizeof c->servers, "%s", servers);
    snprintf(c->stream, sizeof c->stream, "%s", stream);
}

/* Starts the bridge process. Everything the child needs is prepared before
 * fork(); the child dies with the thread that started it. */
static void cli_spawn(cli_bridge *c)
{
    assert_int_equal(c->pid, 0);
    struct stat st;
    c->mark = stat(c->log, &st) == 0 ? st.st_size : 0;
    int logfd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    assert_true(logfd >= 0 && nullfd >= 0);
    char *argv[] = {(char *)RRE_TEST_CLI, "--db",    c->db,    "bridge", "--nats",    c->servers,
                    "--stream",           c->stream, "--host", c->name,  "--verbose", NULL};
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (dup2(nullfd, 0) < 0 || dup2(nullfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    assert_true(pid > 0);
    c->pid = pid;
    c->starts++;
}

/* The log of the current process (since its start) or the whole log. */
static char *cli_log_text(const cli_bridge *c, bool all)
{
    size_t len = 0;
    char *text = tu_read_file(c->log, &len);
    if (text == NULL)
        return strdup("");
    if (!all && (size_t)c->mark <= len)
        memmove(text, text + c->mark, len - (size_t)c->mark + 1);
    return text;
}

static void cli_print_log(const cli_bridge *c)
{
    char *text = cli_log_text(c, true);
    size_t len = strlen(text);
    const char *from = len > 16384 ? text + len - 16384 : text;
    fprintf(stderr, "---- the end of the log of bridge process %s (%s) ----\n%s\n", c->name, c->log,
            from);
    free(text);
}

static void diagnose(void);

static void describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "was ended by signal %d", WTERMSIG(status));
    else
        snprintf(buf, cap, "ended with wait status %d", status);
}

/* Waits until the current process printed its ready line; fails when it
 * exits first or takes longer than READY_MS. */
static void cli_wait_ready(cli_bridge *c)
{
    int64_t deadline = now_ms() + READY_MS;
    for (;;) {
        char *text = cli_log_text(c, false);
        const char *ready = strstr(text, "rre bridge: ready: consumer '");
        if (ready != NULL) {
            ready += strlen("rre bridge: ready: consumer '");
            const char *end = strchr(ready, '\'');
            if (end != NULL && (size_t)(end - ready) < sizeof c->consumer) {
                memcpy(c->consumer, ready, (size_t)(end - ready));
                c->consumer[end - ready] = '\0';
            }
            free(text);
            return;
        }
        free(text);
        int status = 0;
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            char how[64];
            describe_status(status, how, sizeof how);
            diagnose();
            fail_msg("bridge process %s %s before it was ready", c->name, how);
        }
        if (now_ms() > deadline) {
            diagnose();
            fail_msg("bridge process %s is not ready after %d ms", c->name, READY_MS);
        }
        sleep_ms(20);
    }
}

static void cli_kill(cli_bridge *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGKILL);
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    c->pid = 0;
    c->kills++;
}

/* Stops the process as an operator would (SIGTERM) and returns its exit
 * status; fails when it does not exit within 30 s. */
static int cli_stop(cli_bridge *c)
{
    assert_true(c->pid > 0);
    kill(c->pid, SIGTERM);
    int64_t deadline = now_ms() + 30000;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid)
            break;
        if (now_ms() > deadline) {
            cli_kill(c);
            diagnose();
            fail_msg("bridge process %s did not stop within 30 s of SIGTERM", c->name);
        }
        sleep_ms(20);
    }
    c->pid = 0;
    return status;
}

/* A sanitizer report in a bridge process's log (even one from a process
 * that was killed afterwards) fails the test. */
static void cli_assert_clean_log(const cli_bridge *c)
{
    char *text = cli_log_text(c, true);
    const char *bad = strstr(text, "Sanitizer");
    if (bad == NULL)
        bad = strstr(text, "runtime error:");
    if (bad != NULL) {
        cli_print_log(c);
        free(text);
        fail_msg("the log of bridge process %s has a sanitizer report", c->name);
    }
    free(text);
}

/* ------------------------------------------------------------------------ */
/* Publishers                                                                */
/* ------------------------------------------------------------------------ */

/* A thread publishing n events {"tag":tag,"seq":i,"origin":host} to a queue
 * at about `rate` per second, in bursts of `burst` back to back (so that the
 * bridge has many publishes in flight at once), so that the faults land
 * while it runs. Every publish must succeed: a host's publishing never
 * depends on its bridge. */
typedef struct publisher {
    rre_queue *q; /* borrowed */
    char host[64];
    char tag[32];
    int n, rate, burst;
    atomic_int ok, failed;
    atomic_bool abort;
    char error[256];
    pthread_t thread;
} publisher;

static void *publisher_main(void *arg)
{
    publisher *p = arg;
    int64_t start = now_ms();
    for (int i = 0; i < p->n && !atomic_load(&p->abort); i++) {
        if (i % p->burst == 0)
            sleep_ms(start + (int64_t)i * 1000 / p->rate - now_ms());
        json_t *payload = json_pack("{s:s,s:i,s:s}", "tag", p->tag, "seq", i, "origin", p->host);
        rre_status st =
            rre_queue_publish(p->q, RRE_EV_ELO_UPDATED, payload, "faults", NULL, NULL, NULL);
        json_decref(payload);
        if (st == RRE_OK) {
            atomic_fetch_add(&p->ok, 1);
        } else if (atomic_fetch_add(&p->failed, 1) == 0) {
            snprintf(p->error, sizeof p->error, "event %d: %s: %s", i, rre_strerror(st),
                     rre_last_error());
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The watchdog                                                              */
/* ------------------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool armed;
    pthread_t thread;
    const char *phase; /* "the test" or "its teardown" */
} g_dog = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, ""};

/* Aborts the program when the test has not disarmed it in TEST_LIMIT_S:
 * a hang (a bridge that does not stop, a NATS call that does not return)
 * then ends with a message instead of at the test driver's timeout. */
static void *watchdog_main(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += TEST_LIMIT_S;
    pthread_mutex_lock(&g_dog.mu);
    while (g_dog.armed)
        if (pthread_cond_timedwait(&g_dog.cv, &g_dog.mu, &ts) == ETIMEDOUT)
            break;
    bool fire = g_dog.armed;
    pthread_mutex_unlock(&g_dog.mu);
    if (fire) {
        fprintf(stderr,
                "bridge_faults_test: %s has run for %d s: something hangs; the stacks of "
                "its threads, then the library's log:\n",
                g_dog.phase, TEST_LIMIT_S);
        /* gdb, when installed, attaches to this process (allowed by
         * PR_SET_PTRACER for a non-root run) and prints every thread. */
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "command -v gdb >/dev/null 2>&1 && gdb -p %ld -batch -ex 'thread apply all bt' "
                 ">&2 2>&1 </dev/null",
                 (long)getpid());
        if (system(cmd) != 0)
            fprintf(stderr, "(no stacks: gdb is not installed or could not attach)\n");
        /* Only the log: the rest of what diagnose() prints belongs to the
         * thread that hangs. */
        print_log();
        abort();
    }
    return NULL;
}

static void watchdog_arm(const char *phase)
{
    g_dog.phase = phase;
    g_dog.armed = true;
    if (pthread_create(&g_dog.thread, NULL, watchdog_main, NULL) != 0)
        g_dog.armed = false;
}

static void watchdog_disarm(void)
{
    pthread_mutex_lock(&g_dog.mu);
    bool was = g_dog.armed;
    g_dog.armed = false;
    pthread_cond_signal(&g_dog.cv);
    pthread_mutex_unlock(&g_dog.mu);
    if (was)
        pthread_join(g_dog.thread, NULL);
}

/* ------------------------------------------------------------------------ */
/* What a test holds, released by the teardown even when the test failed     */
/* ------------------------------------------------------------------------ */

#define MAX_ITEMS 4

static struct {
    char *dir;
    tu_nats *nats;
    tu_nats_cluster *cluster;
    bh_host *hosts[MAX_ITEMS];
    publisher *pubs[MAX_ITEMS];
    cli_bridge *clis[MAX_ITEMS];
    rre_queue *queues[MAX_ITEMS];
} g;

static int fixture_setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    g.dir = tu_mkdtemp();
    reset_log();
    watchdog_arm("the test");
    return g.dir != NULL ? 0 : -1;
}

static int fixture_teardown(void **state)
{
    (void)state;
    /* The teardown has a bound of its own, and says so when it hangs. */
    watchdog_disarm();
    watchdog_arm("its teardown");
    for (int i = 0; i < MAX_ITEMS; i++) {
        if (g.pubs[i] != NULL) {
            atomic_store(&g.pubs[i]->abort, true);
            pthread_join(g.pubs[i]->thread, NULL);
            free(g.pubs[i]);
        }
    }
    for (int i = 0; i < MAX_ITEMS; i++) {
        if (g.clis[i] != NULL) {
            cli_kill(g.clis[i]);
            free(g.clis[i]);
        }
    }
    for (int i = 0; i < MAX_ITEMS; i++)
        bh_stop(g.hosts[i]);
    for (int i = 0; i < MAX_ITEMS; i++)
        rre_queue_destroy(g.queues[i]);
    tu_nats_destroy(g.nats);
    tu_nats_cluster_destroy(g.cluster);
    tu_rmtree(g.dir);
    free(g.dir);
    memset(&g, 0, sizeof g);
    watchdog_disarm();
    return 0;
}

static publisher *publish_async(rre_queue *q, const char *host, const char *tag, int n, int rate,
                                int burst)
{
    int slot = 0;
    while (slot < MAX_ITEMS && g.pubs[slot] != NULL)
        slot++;
    assert_true(slot < MAX_ITEMS);
    publisher *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->q = q;
    snprintf(p->host, sizeof p->host, "%s", host);
    snprintf(p->tag, sizeof p->tag, "%s", tag);
    p->n = n;
    p->rate = rate;
    p->burst = burst > 0 ? burst : 1;
    assert_int_equal(pthread_create(&p->thread, NULL, publisher_main, p), 0);
    g.pubs[slot] = p;
    return p;
}

/* Waits for the publisher and checks that every publish succeeded. */
static void publish_join(publisher *p)
{
    pthread_join(p->thread, NULL);
    for (int i = 0; i < MAX_ITEMS; i++)
        if (g.pubs[i] == p)
            g.pubs[i] = NULL;
    int ok = atomic_load(&p->ok), failed = atomic_load(&p->failed);
    char error[256];
    snprintf(error, sizeof error, "%s", p->error);
    int n = p->n;
    free(p);
    if (ok != n)
        fail_msg("%d of %d local publishes succeeded (%d failed; first: %s)", ok, n, failed, error);
}

static rre_queue *open_queue(const char *path, const char *host)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = path;
    qo.hostname = host;
    qo.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    if (rre_queue_create(&q, &qo) != RRE_OK)
        fail_msg("opening %s: %s", path, rre_last_error());
    for (int i = 0; i < MAX_ITEMS; i++) {
        if (g.queues[i] == NULL) {
            g.queues[i] = q;
            return q;
        }
    }
    rre_queue_destroy(q);
    fail_msg("too many queues");
    return NULL;
}

static bh_host *keep_host(bh_host *h)
{
    for (int i = 0; i < MAX_ITEMS; i++) {
        if (g.hosts[i] == NULL) {
            g.hosts[i] = h;
            return h;
        }
    }
    fail_msg("too many hosts");
    return NULL;
}

static cli_bridge *new_cli(const char *name, const char *servers, const char *stream)
{
    for (int i = 0; i < MAX_ITEMS; i++) {
        if (g.clis[i] == NULL) {
            g.clis[i] = calloc(1, sizeof *g.clis[i]);
            assert_non_null(g.clis[i]);
            cli_init(g.clis[i], g.dir, name, servers, stream);
            return g.clis[i];
        }
    }
    fail_msg("too many bridge processes");
    return NULL;
}

static void print_counters(const bh_host *h)
{
    if (h->bridge == NULL) {
        fprintf(stderr, "host %s: no bridge running\n", h->name);
        return;
    }
    rre_bridge_counters c;
    rre_bridge_get_counters(h->bridge, &c);
    fprintf(stderr,
            "host %s: bridge %s, connected %d; out published %llu dup %llu failures %llu passed "
            "%llu cursor %lld; in messages %llu imported %llu dup %llu own %llu refused %llu "
            "redelivered %llu resets %llu seq %llu; backoffs %llu reconnects %llu\n",
            h->name, rre_bridge_state_name(c.state), (int)c.connected,
            (unsigned long long)c.out_published, (unsigned long long)c.out_duplicates,
            (unsigned long long)c.out_failures, (unsigned long long)c.out_passed,
            (long long)c.out_cursor, (unsigned long long)c.in_messages,
            (unsigned long long)c.in_imported, (unsigned long long)c.in_duplicates,
            (unsigned long long)c.in_own, (unsigned long long)c.in_refused,
            (unsigned long long)c.in_redelivered, (unsigned long long)c.in_consumer_resets,
            (unsigned long long)c.in_stream_seq, (unsigned long long)c.backoffs,
            (unsigned long long)c.reconnects);
}

/* Prints everything that helps to understand a failure: the in-process
 * bridges' counters and recent log, the bridge processes' logs, the server
 * logs. */
static void diagnose(void)
{
    for (int i = 0; i < MAX_ITEMS; i++)
        if (g.hosts[i] != NULL)
            print_counters(g.hosts[i]);
    print_log();
    for (int i = 0; i < MAX_ITEMS; i++)
        if (g.clis[i] != NULL)
            cli_print_log(g.clis[i]);
    if (g.nats != NULL)
        tu_nats_dump_log(g.nats);
    if (g.cluster != NULL)
        tu_nats_cluster_dump_logs(g.cluster);
}

/* ------------------------------------------------------------------------ */
/* What a host's queue file holds                                            */
/* ------------------------------------------------------------------------ */

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        fail_msg("open %s: %s", path, why);
    }
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* Rows of origin `hostname` in the queue file (all rows for NULL). */
static int rows_of(const char *path, const char *hostname)
{
    return bh_count_rows_at(path, hostname);
}

/* Waits until the file holds at least n rows of origin `hostname`. */
static void wait_rows(const char *path, const char *hostname, int n)
{
    int64_t deadline = now_ms() + WAIT_MS;
    int have;
    while ((have = rows_of(path, hostname)) < n) {
        if (now_ms() > deadline) {
            diagnose();
            fail_msg("%s holds %d of the %d events of %s after %d ms", path, have, n, hostname,
                     WAIT_MS);
        }
        sleep_ms(25);
    }
}

/* How the events of one origin and tag lie in a file, in event_id order. */
typedef struct seq_report {
    int rows;         /* rows of the origin and tag */
    int missing;      /* seq values of 0..n-1 not there */
    int duplicates;   /* rows whose seq came before (or lies outside 0..n-1) */
    int out_of_order; /* rows stored after a row with a higher seq */
    int first_bad;    /* the position (0-based) of the first row out of order, or -1 */
    char around[256]; /* the seq values around it */
} seq_report;

static seq_report check_sequence(const char *path, const char *origin, const char *tag, int n)
{
    seq_report r = {0, 0, 0, 0, -1, ""};
    int *seen = calloc((size_t)n, sizeof *seen);
    int cap = 1024, count = 0;
    int *order = malloc((size_t)cap * sizeof *order);
    assert_true(seen != NULL && order != NULL);
    sqlite3 *db = open_db(path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT json_extract(payload, '$.seq') FROM events"
                                        " WHERE hostname = ? AND json_extract(payload, '$.tag')"
                                        " = ? ORDER BY event_id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
    int highest = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int seq = sqlite3_column_int(st, 0);
        if (count == cap) {
            cap *= 2;
            order = realloc(order, (size_t)cap * sizeof *order);
            assert_non_null(order);
        }
        order[count++] = seq;
        if (seq < 0 || seq >= n || seen[seq]++ > 0) {
            r.duplicates++;
            continue;
        }
        if (seq < highest) {
            r.out_of_order++;
            if (r.first_bad < 0)
                r.first_bad = count - 1;
        }
        if (seq > highest)
            highest = seq;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    r.rows = count;
    for (int i = 0; i < n; i++)
        r.missing += seen[i] == 0;
    if (r.first_bad >= 0) {
        size_t used = 0;
        int from = r.first_bad > 6 ? r.first_bad - 6 : 0;
        for (int i = from; i < count && i < r.first_bad + 6 && used < sizeof r.around - 16; i++)
            used += (size_t)snprintf(r.around + used, sizeof r.around - used, "%s%d%s",
                                     i == r.first_bad ? "[" : "", order[i],
                                     i == r.first_bad ? "] " : " ");
    }
    free(seen);
    free(order);
    return r;
}

static bool sequence_ok(const seq_report *r, int n)
{
    return r->rows == n && r->missing == 0 && r->duplicates == 0 && r->out_of_order == 0;
}

static void describe_sequence(const seq_report *r, int n, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "%d rows for %d events: %d missing, %d duplicates, %d out of order (first at "
             "position %d: %s)",
             r->rows, n, r->missing, r->duplicates, r->out_of_order, r->first_bad, r->around);
}

/* Every event of origin tagged `first` is stored before every event of
 * origin tagged `second`. */
static void assert_tag_before(const char *path, const char *origin, const char *first,
                              const char *second)
{
    sqlite3 *db = open_db(path);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT (SELECT max(event_id) FROM events WHERE hostname = ?1"
                           " AND json_extract(payload, '$.tag') = ?2),"
                           " (SELECT min(event_id) FROM events WHERE hostname = ?1"
                           " AND json_extract(payload, '$.tag') = ?3)",
                           -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, first, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, second, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t last_first = sqlite3_column_int64(st, 0), first_second = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (!(last_first < first_second)) {
        diagnose();
        fail_msg("%s: the last event of %s tagged %s (event_id %lld) is not before the first "
                 "tagged %s (event_id %lld)",
                 path, origin, first, (long long)last_first, second, (long long)first_second);
    }
}

/* ------------------------------------------------------------------------ */
/* What the stream holds                                                     */
/* ------------------------------------------------------------------------ */

/* Connects to any of the comma-separated servers (natsOptions_SetURL()
 * takes one URL only). */
static natsConnection *connect_to(const char *servers)
{
    char list[512];
    snprintf(list, sizeof list, "%s", servers);
    const char *urls[8];
    int count = 0;
    char *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u != NULL && count < 8;
         u = strtok_r(NULL, ",", &save))
        urls[count++] = u;
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    if (natsOptions_Create(&o) != NATS_OK)
        return NULL;
    natsOptions_SetServers(o, urls, count);
    natsOptions_SetTimeout(o, 2000);
    natsOptions_SetAllowReconnect(o, false);
    if (natsConnection_Connect(&nc, o) != NATS_OK)
        nc = NULL;
    natsOptions_Destroy(o);
    return nc;
}

/* Whether the consumer has nothing left to deliver and nothing delivered
 * unacknowledged: then the host stored all it will ever import (the bridge
 * acknowledges only after its import transaction committed, and makes its
 * consumer again only at the first sequence not yet stored). */
static bool consumer_settled(const char *servers, const char *stream, const char *consumer,
                             char *why, size_t cap)
{
    natsConnection *nc = connect_to(servers);
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsConsumerInfo *ci = NULL;
    bool settled = false;
    natsStatus s = NATS_CONNECTION_CLOSED;
    if (nc != NULL)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_GetStreamInfo(&si, js, stream, NULL, NULL);
    if (s == NATS_OK)
        s = js_GetConsumerInfo(&ci, js, stream, consumer, NULL, NULL);
    snprintf(why, cap, "no answer: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
    if (s == NATS_OK) {
        uint64_t last = si->State.LastSeq;
        /* A consumer made again at the first sequence not yet stored has
         * nothing pending either once it delivered everything after it. */
        settled = ci->NumPending == 0 && ci->NumAckPending == 0;
        snprintf(why, cap,
                 "stream last %llu; consumer %s: pending %llu, ack pending %lld, ack floor %llu, "
                 "redelivered %lld",
                 (unsigned long long)last, consumer, (unsigned long long)ci->NumPending,
                 (long long)ci->NumAckPending, (unsigned long long)ci->AckFloor.Stream,
                 (long long)ci->NumRedelivered);
    }
    jsConsumerInfo_Destroy(ci);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return settled;
}

static void wait_settled(const char *servers, const char *stream, const char *consumer)
{
    int64_t deadline = now_ms() + WAIT_MS;
    char why[512];
    while (!consumer_settled(servers, stream, consumer, why, sizeof why)) {
        if (now_ms() > deadline) {
            diagnose();
            fail_msg("consumer %s has not caught up after %d ms: %s", consumer, WAIT_MS, why);
        }
        sleep_ms(50);
    }
}

/* Reads the stream message by message and reports how the events of
 * origin/tag lie in it (as check_sequence() does for a file): tells a
 * stream that stored them out of order from a host that imported them so. */
static seq_report stream_sequence(const char *servers, const char *stream, const char *origin,
                                  const char *tag, int n)
{
    seq_report r = {0, 0, 0, 0, -1, ""};
    natsConnection *nc = connect_to(servers);
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    int *seen = calloc((size_t)n, sizeof *seen);
    assert_non_null(seen);
    if (nc == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_GetStreamInfo(&si, js, stream, NULL, NULL) != NATS_OK) {
        snprintf(r.around, sizeof r.around, "the stream could not be read");
        r.rows = -1;
    } else {
        int highest = -1;
        size_t used = 0;
        for (uint64_t seq = si->State.FirstSeq; seq <= si->State.LastSeq; seq++) {
            natsMsg *m = NULL;
            if (js_GetMsg(&m, js, stream, seq, NULL, NULL) != NATS_OK)
                continue;
            json_t *body =
                json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
            const char *o = json_string_value(json_object_get(body, "origin"));
            const char *t = json_string_value(json_object_get(body, "tag"));
            if (o != NULL && t != NULL && strcmp(o, origin) == 0 && strcmp(t, tag) == 0) {
                int s = (int)json_integer_value(json_object_get(body, "seq"));
                r.rows++;
                if (s < 0 || s >= n || seen[s]++ > 0) {
                    r.duplicates++;
                } else {
                    if (s < highest) {
                        r.out_of_order++;
                        if (r.first_bad < 0)
                            r.first_bad = r.rows - 1;
                        if (used < sizeof r.around - 48)
                            used += (size_t)snprintf(r.around + used, sizeof r.around - used,
                                                     "seq %d at stream %llu after %d; ", s,
                                                     (unsigned long long)seq, highest);
                    }
                    if (s > highest)
                        highest = s;
                }
            }
            json_decref(body);
            natsMsg_Destroy(m);
        }
        for (int i = 0; i < n; i++)
            r.missing += seen[i] == 0;
    }
    free(seen);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return r;
}

/* The stream holds exactly `n` messages: nothing was stored twice. (Not
 * bh_stream_messages(): it takes a single server URL.) */
static void assert_stream_messages(const char *servers, const char *stream, int n)
{
    natsConnection *nc = connect_to(servers);
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    long long have = -1;
    if (nc != NULL && natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK)
        have = (long long)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (have != n) {
        diagnose();
        fail_msg("the stream %s holds %lld messages, not %d", stream, have, n);
    }
}

/* Every event of origin/tag is in the file once: none missing, none twice. */
static void assert_exactly_once(const char *path, const char *origin, const char *tag, int n)
{
    seq_report r = check_sequence(path, origin, tag, n);
    if (r.rows != n || r.missing != 0 || r.duplicates != 0) {
        char what[512];
        describe_sequence(&r, n, what, sizeof what);
        diagnose();
        fail_msg("%s, events of %s tagged %s: %s", path, origin, tag, what);
    }
}

/* The events of origin/tag are in the file in the origin's order. When they
 * are not, the message also says how they lie in the stream, which tells a
 * publishing side that stored them out of order from an importing side
 * that reordered them. */
static void assert_in_order(const char *path, const char *origin, const char *tag, int n,
                            const char *servers, const char *stream)
{
    seq_report r = check_sequence(path, origin, tag, n);
    if (sequence_ok(&r, n))
        return;
    char what[512], in_stream[512];
    describe_sequence(&r, n, what, sizeof what);
    seq_report x = stream_sequence(servers, stream, origin, tag, n);
    describe_sequence(&x, n, in_stream, sizeof in_stream);
    diagnose();
    fail_msg("%s, events of %s tagged %s: %s. In the stream %s: %s", path, origin, tag, what,
             stream, in_stream);
}

/* ------------------------------------------------------------------------ */
/* In-process hosts                                                          */
/* ------------------------------------------------------------------------ */

static void *run_bridge(void *arg)
{
    bh_host *h = arg;
    h->run_status = rre_bridge_run(h->bridge);
    return NULL;
}

/* A host whose bridge is started on a thread without waiting for it to be
 * ready (bh_start() waits): the bridge of a host whose server is not there
 * yet. bh_stop() releases it as any other. */
static bh_host *start_host_unready(const char *name, const char *servers, const char *stream,
                                   const rre_bridge_options *extra)
{
    bh_host *h = calloc(1, sizeof *h);
    assert_non_null(h);
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->dir, sizeof h->dir, "%s/%s", g.dir, name);
    mkdir(h->dir, 0700);
    snprintf(h->path, sizeof h->path, "%s/events.db", h->dir);
    snprintf(h->servers, sizeof h->servers, "%s", servers);
    snprintf(h->stream, sizeof h->stream, "%s", stream);
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = h->path;
    qo.hostname = h->name;
    qo.maintenance_interval_ms = -1;
    if (rre_queue_create(&h->queue, &qo) != RRE_OK) {
        free(h);
        fail_msg("queue of %s: %s", name, rre_last_error());
    }
    keep_host(h);
    rre_bridge_options o;
    if (extra != NULL)
        o = *extra;
    else
        rre_bridge_options_init(&o);
    o.servers = h->servers;
    o.stream = h->stream;
    o.host = h->name;
    rre_bridge *b = NULL;
    assert_int_equal(rre_bridge_create(&b, h->queue, &o), RRE_OK);
    h->bridge = b;
    if (pthread_create(&h->thread, NULL, run_bridge, h) != 0) {
        h->bridge = NULL;
        rre_bridge_destroy(b);
        fail_msg("cannot start a thread");
    }
    return h;
}

static void wait_host_ready(bh_host *h)
{
    rre_status st = rre_bridge_wait_ready(h->bridge, READY_MS);
    if (st != RRE_OK) {
        diagnose();
        fail_msg("the bridge of %s is not ready: %s: %s", h->name, rre_strerror(st),
                 rre_last_error());
    }
}

static void wait_host_settled(bh_host *h)
{
    wait_settled(h->servers, h->stream, rre_bridge_consumer_name(h->bridge));
}

static rre_bridge_counters counters_of(const bh_host *h)
{
    rre_bridge_counters c;
    rre_bridge_get_counters(h->bridge, &c);
    return c;
}

/* Waits until `pred` holds for the counters of h, or fails. */
static void wait_counters(const bh_host *h, bool (*pred)(const rre_bridge_counters *, uint64_t),
                          uint64_t arg, const char *what)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        rre_bridge_counters c = counters_of(h);
        if (pred(&c, arg))
            return;
        if (now_ms() > deadline) {
            diagnose();
            fail_msg("host %s: %s did not happen within %d ms", h->name, what, WAIT_MS);
        }
        sleep_ms(10);
    }
}

static bool backed_off_since(const rre_bridge_counters *c, uint64_t before)
{
    return c->backoffs > before;
}

static bool not_connected(const rre_bridge_counters *c, uint64_t unused)
{
    (void)unused;
    return !c->connected;
}

/* ------------------------------------------------------------------------ */
/* The tests                                                                 */
/* ------------------------------------------------------------------------ */

/* Bridges run as `rre bridge` processes and are SIGKILLed at random moments
 * (while publishing, importing, committing, starting up), one or both at a
 * time, and started again, while host A publishes a few thousand events and
 * host B a few hundred. Proves that a bridge crash loses no event (rows are
 * passed only after the stream confirmed them, and imports record the
 * stream sequence in the same transaction as the rows), stores none twice
 * (on the receiving host and in the stream: the same message ids are
 * republished and dropped by the stream), keeps each origin's order, and
 * never echoes a host's events back to it. */
static void
test_bridge_killed_at_random_moments_loses_nothing_and_stores_nothing_twice(void **state)
{
    (void)state;
    enum { N_A = 3000, N_B = 300, ROUNDS = 9 };
    seed_test("kill");
    const char *stream = "F_KILL";
    char d[700];
    snprintf(d, sizeof d, "%s/nats", g.dir);
    g.nats = tu_nats_start(d, NULL);
    assert_non_null(g.nats);
    const char *url = tu_nats_url(g.nats);
    cli_bridge *a = new_cli("A", url, stream), *b = new_cli("B", url, stream);
    snprintf(d, sizeof d, "%s/A", g.dir);
    assert_int_equal(mkdir(d, 0700), 0);
    snprintf(d, sizeof d, "%s/B", g.dir);
    assert_int_equal(mkdir(d, 0700), 0);
    /* The test's own processes of hosts A and B: they publish while the
     * bridges come and go. */
    rre_queue *qa = open_queue(a->db, "A"), *qb = open_queue(b->db, "B");
    /* One after the other: A makes the stream, B finds it. (Two bridges
     * that make a new stream at the same moment are not what this test is
     * about.) */
    cli_spawn(a);
    cli_wait_ready(a);
    cli_spawn(b);
    cli_wait_ready(b);
    /* Both consumers exist and their positions are recorded: from here on
     * every event of the other host is theirs to import. */
    publisher *pa = publish_async(qa, "A", "kill", N_A, 500, 20);
    publisher *pb = publish_async(qb, "B", "kill", N_B, 50, 1);
    /* Which bridges each round kills: A, B or both, each at least thrice. */
    int targets[ROUNDS] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    for (int i = ROUNDS - 1; i > 0; i--) {
        int k = rnd(i + 1), t = targets[i];
        targets[i] = targets[k];
        targets[k] = t;
    }
    for (int round = 0; round < ROUNDS; round++) {
        sleep_ms(100 + rnd(700));
        int on_b = rows_of(b->db, "A");
        if (targets[round] & 1)
            cli_kill(a);
        if (targets[round] & 2)
            cli_kill(b);
        print_message("round %d: killed %s%s (B held %d rows of A; A has published %d)\n", round,
                      targets[round] & 1 ? "A " : "", targets[round] & 2 ? "B" : "", on_b,
                      atomic_load(&pa->ok));
        sleep_ms(rnd(300));
        if (a->pid == 0)
            cli_spawn(a);
        if (b->pid == 0)
            cli_spawn(b);
        /* Half the time the next kill may come before the new process is
         * ready, so that starting up is interrupted too. */
        if (rnd(2) == 0) {
            cli_wait_ready(a);
            cli_wait_ready(b);
        }
    }
    cli_wait_ready(a);
    cli_wait_ready(b);
    publish_join(pa);
    publish_join(pb);
    wait_rows(b->db, "A", N_A);
    wait_rows(a->db, "B", N_B);
    wait_settled(url, stream, b->consumer);
    wait_settled(url, stream, a->consumer);
    /* Every event of A is on B once, and every event of B on A. */
    assert_exactly_once(b->db, "A", "kill", N_A);
    assert_exactly_once(a->db, "B", "kill", N_B);
    /* Nothing came back to its origin, and each file holds exactly both
     * hosts' events. */
    assert_int_equal(rows_of(a->db, "A"), N_A);
    assert_int_equal(rows_of(b->db, "B"), N_B);
    assert_int_equal(rows_of(a->db, NULL), N_A + N_B);
    assert_int_equal(rows_of(b->db, NULL), N_A + N_B);
    /* The stream stored every event once: republished copies were dropped,
     * and no host published another host's rows. */
    assert_stream_messages(url, stream, N_A + N_B);
    /* Each origin's order held. */
    assert_in_order(b->db, "A", "kill", N_A, url, stream);
    assert_in_order(a->db, "B", "kill", N_B, url, stream);
    /* Both processes stop cleanly when asked (under the sanitizers this
     * includes their leak check), and none of them, killed or not, reported
     * a sanitizer error. */
    int sa = cli_stop(a), sb = cli_stop(b);
    cli_assert_clean_log(a);
    cli_assert_clean_log(b);
    if (!(WIFEXITED(sa) && WEXITSTATUS(sa) == 0 && WIFEXITED(sb) && WEXITSTATUS(sb) == 0)) {
        char da[64], db[64];
        describe_status(sa, da, sizeof da);
        describe_status(sb, db, sizeof db);
        diagnose();
        fail_msg("after SIGTERM, bridge process A %s and B %s", da, db);
    }
    print_message("A's bridge was started %d times and killed %d times, B's %d and %d\n", a->starts,
                  a->kills, b->starts, b->kills);
}

/* A single server is SIGKILLed twice while both hosts publish and their
 * bridges carry events, and each time started again with the same port and
 * store. Proves that the bridges recover by themselves (the test never
 * restarts them): the NATS library reconnects, publishes that were lost
 * with the server are sent again from the first unconfirmed row, and the
 * inbound side resumes at the first stream sequence not yet stored, so
 * every event arrives once and in order. */
static void
test_server_restart_mid_stream_loses_nothing_and_the_bridge_recovers_by_itself(void **state)
{
    (void)state;
    enum { N_A = 2000, N_B = 400 };
    seed_test("restart");
    const char *stream = "F_RESTART";
    char d[700];
    snprintf(d, sizeof d, "%s/nats", g.dir);
    g.nats = tu_nats_start(d, NULL);
    assert_non_null(g.nats);
    bh_host *a = keep_host(bh_start(g.dir, "A", tu_nats_url(g.nats), stream, NULL));
    bh_host *b = keep_host(bh_start(g.dir, "B", tu_nats_url(g.nats), stream, NULL));
    rre_bridge *bridge_a = a->bridge, *bridge_b = b->bridge;
    publisher *pa = publish_async(a->queue, "A", "restart", N_A, 400, 20);
    publisher *pb = publish_async(b->queue, "B", "restart", N_B, 80, 1);
    int thresholds[2] = {N_A / 8, N_A / 2};
    for (int round = 0; round < 2; round++) {
        wait_rows(b->path, "A", thresholds[round]);
        sleep_ms(rnd(300));
        tu_nats_kill(g.nats, SIGKILL);
        int down = 200 + rnd(1500);
        print_message("round %d: server killed with %d rows of A on B; down for %d ms\n", round,
                      rows_of(b->path, "A"), down);
        sleep_ms(down);
        if (!tu_nats_restart(g.nats)) {
            diagnose();
            fail_msg("the server did not start again");
        }
    }
    publish_join(pa);
    publish_join(pb);
    wait_rows(b->path, "A", N_A);
    wait_rows(a->path, "B", N_B);
    wait_host_settled(a);
    wait_host_settled(b);
    assert_exactly_once(b->path, "A", "restart", N_A);
    assert_exactly_once(a->path, "B", "restart", N_B);
    assert_int_equal(rows_of(a->path, "A"), N_A);
    assert_int_equal(rows_of(b->path, "B"), N_B);
    assert_stream_messages(tu_nats_url(g.nats), stream, N_A + N_B);
    /* The same bridges ran throughout, saw the connection go, and are
     * running again. */
    assert_ptr_equal(a->bridge, bridge_a);
    assert_ptr_equal(b->bridge, bridge_b);
    /* A bridge whose events were all carried may still be in one of its
     * pauses before it connects again: give it the longest one. */
    rre_bridge_counters ca = counters_of(a), cb = counters_of(b);
    for (int tries = 0;
         tries < 300 && (ca.state != RRE_BRIDGE_RUNNING || cb.state != RRE_BRIDGE_RUNNING ||
                         !ca.connected || !cb.connected);
         tries++) {
        sleep_ms(50);
        ca = counters_of(a);
        cb = counters_of(b);
    }
    if (ca.reconnects < 1 || cb.reconnects < 1 || ca.state != RRE_BRIDGE_RUNNING ||
        cb.state != RRE_BRIDGE_RUNNING) {
        diagnose();
        fail_msg("the bridges did not reconnect by themselves or are not running");
    }
    print_message("A: %llu reconnects, %llu publish failures, %llu duplicates; B: %llu "
                  "reconnects, %llu consumer resets\n",
                  (unsigned long long)ca.reconnects, (unsigned long long)ca.out_failures,
                  (unsigned long long)ca.out_duplicates, (unsigned long long)cb.reconnects,
                  (unsigned long long)cb.in_consumer_resets);
    assert_in_order(b->path, "A", "restart", N_A, tu_nats_url(g.nats), stream);
    assert_in_order(a->path, "B", "restart", N_B, tu_nats_url(g.nats), stream);
}

/* Host A's bridge starts while its server is not running (it ran once, to
 * have an address, and was killed). Proves that local publishing does not
 * depend on the bridge (all publishes succeed meanwhile), that the bridge
 * keeps trying (CONNECTING or BACKING_OFF, not ready, not failed) instead of
 * giving up, and that once the server is there it makes the stream and
 * carries everything published meanwhile to the other host, in order. Host
 * B joins once the server is up and replays the whole stream (a new host
 * normally starts with new events only, and A may well publish before B's
 * consumer exists). */
static void
test_nats_unreachable_at_start_local_publishing_goes_on_and_the_bridge_catches_up(void **state)
{
    (void)state;
    enum { N_EARLY = 400, N_LATE = 300, N_B = 150 };
    seed_test("unreachable at start");
    const char *stream = "F_LATE";
    char d[700];
    snprintf(d, sizeof d, "%s/nats", g.dir);
    g.nats = tu_nats_start(d, NULL);
    assert_non_null(g.nats);
    tu_nats_kill(g.nats, SIGKILL);
    bh_host *a = start_host_unready("A", tu_nats_url(g.nats), stream, NULL);
    publisher *pa = publish_async(a->queue, "A", "early", N_EARLY, 400, 1);
    /* The bridge found no server and is waiting to try again. */
    wait_counters(a, backed_off_since, 0, "a first back-off");
    rre_bridge_counters c = counters_of(a);
    assert_false(c.connected);
    assert_true(c.state == RRE_BRIDGE_CONNECTING || c.state == RRE_BRIDGE_BACKING_OFF);
    assert_int_equal(rre_bridge_wait_ready(a->bridge, 200), RRE_ETIMEOUT);
    publish_join(pa);
    assert_int_equal(rows_of(a->path, "A"), N_EARLY);
    c = counters_of(a);
    assert_true(c.state == RRE_BRIDGE_CONNECTING || c.state == RRE_BRIDGE_BACKING_OFF);
    assert_int_equal(c.out_published, 0);
    print_message("before the server: state %s, %llu back-offs\n", rre_bridge_state_name(c.state),
                  (unsigned long long)c.backoffs);
    if (!tu_nats_restart(g.nats)) {
        diagnose();
        fail_msg("the server did not start");
    }
    wait_host_ready(a);
    rre_bridge_options all;
    rre_bridge_options_init(&all);
    all.start = RRE_BRIDGE_START_ALL;
    bh_host *b = keep_host(bh_start(g.dir, "B", tu_nats_url(g.nats), stream, &all));
    /* Both run now: A goes on publishing, and B publishes too (A's consumer
     * exists since A was ready, so all of B's events are A's to import). */
    pa = publish_async(a->queue, "A", "late", N_LATE, 400, 20);
    publisher *pb = publish_async(b->queue, "B", "late", N_B, 150, 1);
    publish_join(pa);
    publish_join(pb);
    wait_rows(b->path, "A", N_EARLY + N_LATE);
    wait_rows(a->path, "B", N_B);
    wait_host_settled(a);
    wait_host_settled(b);
    assert_exactly_once(b->path, "A", "early", N_EARLY);
    assert_exactly_once(b->path, "A", "late", N_LATE);
    assert_exactly_once(a->path, "B", "late", N_B);
    assert_int_equal(rows_of(b->path, "A"), N_EARLY + N_LATE);
    assert_int_equal(rows_of(a->path, "A"), N_EARLY + N_LATE);
    assert_int_equal(rows_of(b->path, "B"), N_B);
    assert_stream_messages(tu_nats_url(g.nats), stream, N_EARLY + N_LATE + N_B);
    assert_in_order(b->path, "A", "early", N_EARLY, tu_nats_url(g.nats), stream);
    assert_in_order(b->path, "A", "late", N_LATE, tu_nats_url(g.nats), stream);
    assert_in_order(a->path, "B", "late", N_B, tu_nats_url(g.nats), stream);
    /* What A published while the server was away came before what it
     * published later. */
    assert_tag_before(b->path, "A", "early", "late");
}

/* The server is SIGKILLed while both hosts publish and stays away until
 * both bridges have noticed that publishing fails and backed off (with a
 * publish timeout of one second instead of five, to keep the test short),
 * then a little longer, and starts again. Proves that the bridge's own
 * recovery path (wait for what is in flight, rewind to the first
 * unconfirmed row, back off, publish again with the same message ids)
 * loses nothing, duplicates nothing and keeps order, and that the bridges
 * come back to RUNNING by themselves. */
static void test_nats_unreachable_for_a_while_bridge_backs_off_and_catches_up(void **state)
{
    (void)state;
    enum { N_A = 1500, N_B = 400 };
    seed_test("unreachable for a while");
    const char *stream = "F_AWAY";
    char d[700];
    snprintf(d, sizeof d, "%s/nats", g.dir);
    g.nats = tu_nats_start(d, NULL);
    assert_non_null(g.nats);
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.publish_timeout_ms = 1000;
    bh_host *a = keep_host(bh_start(g.dir, "A", tu_nats_url(g.nats), stream, &o));
    bh_host *b = keep_host(bh_start(g.dir, "B", tu_nats_url(g.nats), stream, &o));
    publisher *pa = publish_async(a->queue, "A", "away", N_A, 250, 20);
    publisher *pb = publish_async(b->queue, "B", "away", N_B, 70, 1);
    wait_rows(b->path, "A", N_A / 10);
    uint64_t before_a = counters_of(a).backoffs, before_b = counters_of(b).backoffs;
    tu_nats_kill(g.nats, SIGKILL);
    int64_t killed = now_ms();
    wait_counters(a, not_connected, 0, "noticing the lost connection");
    wait_counters(b, not_connected, 0, "noticing the lost connection");
    /* Both hosts go on publishing; their bridges' publishes time out and
     * they back off. */
    wait_counters(a, backed_off_since, before_a, "backing off");
    wait_counters(b, backed_off_since, before_b, "backing off");
    sleep_ms(500 + rnd(1500));
    print_message("the server was away for %lld ms; A had published %d events by then\n",
                  (long long)(now_ms() - killed), atomic_load(&pa->ok));
    if (!tu_nats_restart(g.nats)) {
        diagnose();
        fail_msg("the server did not start again");
    }
    publish_join(pa);
    publish_join(pb);
    wait_rows(b->path, "A", N_A);
    wait_rows(a->path, "B", N_B);
    wait_host_settled(a);
    wait_host_settled(b);
    assert_exactly_once(b->path, "A", "away", N_A);
    assert_exactly_once(a->path, "B", "away", N_B);
    assert_int_equal(rows_of(a->path, "A"), N_A);
    assert_int_equal(rows_of(b->path, "B"), N_B);
    assert_stream_messages(tu_nats_url(g.nats), stream, N_A + N_B);
    rre_bridge_counters ca = counters_of(a), cb = counters_of(b);
    if (ca.state != RRE_BRIDGE_RUNNING || cb.state != RRE_BRIDGE_RUNNING) {
        diagnose();
        fail_msg("the bridges are not running again");
    }
    print_message("A: %llu back-offs, %llu publish failures, %llu duplicates; B: %llu back-offs, "
                  "%llu publish failures\n",
                  (unsigned long long)ca.backoffs, (unsigned long long)ca.out_failures,
                  (unsigned long long)ca.out_duplicates, (unsigned long long)cb.backoffs,
                  (unsigned long long)cb.out_failures);
    assert_in_order(b->path, "A", "away", N_A, tu_nats_url(g.nats), stream);
    assert_in_order(a->path, "B", "away", N_B, tu_nats_url(g.nats), stream);
}

/* A three-node cluster holds the stream with three replicas; the node that
 * leads the stream is SIGKILLed while both hosts publish, the others elect
 * a new leader, and the killed node is started again and rejoins. Proves
 * that the loss of the stream leader loses and duplicates nothing (what the
 * old leader had not confirmed is published again, what it had stored is
 * dropped as a copy) and that each origin's order survives the failover. */
static void test_cluster_stream_leader_killed_mid_stream_loses_nothing(void **state)
{
    (void)state;
    enum { N_A = 2500, N_B = 500 };
    seed_test("leader");
    const char *stream = "F_LEADER";
    char d[700];
    snprintf(d, sizeof d, "%s/cluster", g.dir);
    g.cluster = tu_nats_cluster_start(d, 3);
    assert_non_null(g.cluster);
    const char *urls = tu_nats_cluster_urls(g.cluster);
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.replicas = 3;
    bh_host *a = keep_host(bh_start(g.dir, "A", urls, stream, &o));
    bh_host *b = keep_host(bh_start(g.dir, "B", urls, stream, &o));
    int leader = tu_nats_cluster_wait_stream_leader(g.cluster, stream, -1, 30000);
    if (leader < 0) {
        diagnose();
        fail_msg("the stream has no leader");
    }
    publisher *pa = publish_async(a->queue, "A", "leader", N_A, 250, 50);
    publisher *pb = publish_async(b->queue, "B", "leader", N_B, 50, 5);
    wait_rows(b->path, "A", N_A / 10);
    sleep_ms(rnd(500));
    leader = tu_nats_cluster_stream_leader(g.cluster, stream);
    if (leader < 0) {
        diagnose();
        fail_msg("the stream has no leader");
    }
    tu_nats *node = tu_nats_cluster_node(g.cluster, leader);
    int64_t killed = now_ms();
    tu_nats_kill(node, SIGKILL);
    int on_b = rows_of(b->path, "A");
    int next = tu_nats_cluster_wait_stream_leader(g.cluster, stream, leader, 60000);
    if (next < 0) {
        diagnose();
        fail_msg("no new stream leader after node %d was killed", leader);
    }
    print_message("killed the stream leader (node %d) with %d rows of A on B; node %d leads "
                  "after %lld ms\n",
                  leader, on_b, next, (long long)(now_ms() - killed));
    /* The old leader comes back while events still flow and rejoins as a
     * follower. The test does not wait for its /healthz: nats-server 2.9.10
     * can report one of its consumers "not current" for a minute or more
     * after such a restart, which says nothing about the bridge. */
    sleep_ms(rnd(1000));
    if (!tu_nats_spawn(node)) {
        diagnose();
        fail_msg("node %d did not start again", leader);
    }
    publish_join(pa);
    publish_join(pb);
    wait_rows(b->path, "A", N_A);
    wait_rows(a->path, "B", N_B);
    wait_host_settled(a);
    wait_host_settled(b);
    /* Exactly once first: the files, and the stream. */
    assert_exactly_once(b->path, "A", "leader", N_A);
    assert_exactly_once(a->path, "B", "leader", N_B);
    assert_int_equal(rows_of(a->path, "A"), N_A);
    assert_int_equal(rows_of(b->path, "B"), N_B);
    assert_stream_messages(urls, stream, N_A + N_B);
    rre_bridge_counters ca = counters_of(a), cb = counters_of(b);
    print_message("A: %llu publish failures, %llu duplicates, %llu back-offs; B: %llu publish "
                  "failures, %llu duplicates, %llu back-offs\n",
                  (unsigned long long)ca.out_failures, (unsigned long long)ca.out_duplicates,
                  (unsigned long long)ca.backoffs, (unsigned long long)cb.out_failures,
                  (unsigned long long)cb.out_duplicates, (unsigned long long)cb.backoffs);
    /* Then each origin's order, on both hosts; when it is broken, say how
     * the events lie in the stream too. */
    seq_report ra = check_sequence(b->path, "A", "leader", N_A);
    seq_report rb = check_sequence(a->path, "B", "leader", N_B);
    if (!sequence_ok(&ra, N_A) || !sequence_ok(&rb, N_B)) {
        char wa[512], wb[512], sa[512], sb[512];
        describe_sequence(&ra, N_A, wa, sizeof wa);
        describe_sequence(&rb, N_B, wb, sizeof wb);
        seq_report xa = stream_sequence(urls, stream, "A", "leader", N_A);
        seq_report xb = stream_sequence(urls, stream, "B", "leader", N_B);
        describe_sequence(&xa, N_A, sa, sizeof sa);
        describe_sequence(&xb, N_B, sb, sizeof sb);
        diagnose();
        fail_msg("after the failover: A's events on B: %s; in the stream: %s. B's events on A: "
                 "%s; in the stream: %s",
                 wa, sa, wb, sb);
    }
}

int main(void)
{
    /* Line by line, so that what a test printed survives a crash. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    rre_set_logger(keep_log, NULL, RRE_LOG_INFO);
    /* BRIDGE_FAULTS_FILTER=test_cluster* runs only the tests that match. */
    const char *filter = getenv("BRIDGE_FAULTS_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_bridge_killed_at_random_moments_loses_nothing_and_stores_nothing_twice,
            fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_server_restart_mid_stream_loses_nothing_and_the_bridge_recovers_by_itself,
            fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_nats_unreachable_at_start_local_publishing_goes_on_and_the_bridge_catches_up,
            fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_nats_unreachable_for_a_while_bridge_backs_off_and_catches_up, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cluster_stream_leader_killed_mid_stream_loses_nothing,
                                        fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
