/*
 * bridge_cli_test.c - the `rre bridge` command as a black box, run as a
 * separate process against real nats-server processes: wrong usage exits 2
 * naming the problem (and creates nothing); a running bridge prints its
 * ready line, carries events both ways with a bridge of another host, and
 * exits 0 with a summary line on SIGTERM or SIGINT (also while no server
 * answers); a stream whose settings conflict with the options, and refused
 * credentials, exit 1 with the reason; the TLS and user/password options
 * reach the connection.
 *
 * Every run of the command is bounded: a process that does not exit in
 * time is killed and the test fails.
 */
#include "bridge_hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define AUTH_USER "cli-user"
#define AUTH_PASSWORD "cli pass:word"
/* A port where nothing listens: a command that got past its usage checks
 * would keep trying to reach it until the test killed it. */
#define NOWHERE "nats://127.0.0.1:9"

static char *g_dir;
static tu_nats *g_nats;
static pid_t g_child; /* a bridge process still to reap, or 0 */
static int g_runs;    /* numbers the output files */
/* Texts read from the output files; freed by the teardown, so that a
 * failing assertion leaks nothing. */
static char *g_texts[1024];
static int g_ntexts;

static int teardown(void **state);

/* A set-up that failed undoes what it did (cmocka runs no teardown then). */
static int setup_failed(void)
{
    teardown(NULL);
    return -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Set-up: a directory, and a server when the test needs one                 */
/* ------------------------------------------------------------------------ */

static int dir_setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    return g_dir != NULL ? 0 : -1;
}

static int start_server(const tu_nats_options *opts)
{
    if (dir_setup(NULL) != 0)
        return setup_failed();
    char d[600];
    snprintf(d, sizeof d, "%s/nats", g_dir);
    g_nats = tu_nats_start(d, opts);
    return g_nats != NULL ? 0 : setup_failed();
}

static int server_setup(void **state)
{
    (void)state;
    return start_server(NULL);
}

static int auth_server_setup(void **state)
{
    (void)state;
    tu_nats_options o = {0};
    o.user = AUTH_USER;
    o.password = AUTH_PASSWORD;
    return start_server(&o);
}

static int tls_server_setup(void **state)
{
    (void)state;
    if (dir_setup(NULL) != 0)
        return setup_failed();
    g_nats = tu_nats_start_tls(g_dir);
    return g_nats != NULL ? 0 : setup_failed();
}

/* Also reaps a bridge process that a failed test left running. */
static int teardown(void **state)
{
    (void)state;
    if (g_child > 0) {
        kill(g_child, SIGKILL);
        waitpid(g_child, NULL, 0);
        g_child = 0;
    }
    for (int i = 0; i < g_ntexts; i++)
        free(g_texts[i]);
    g_ntexts = 0;
    tu_nats_destroy(g_nats);
    g_nats = NULL;
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running the command                                                       */
/* ------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid;
    char out_path[700], err_path[700];
} proc;

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

extern char **environ;

/* The environment of the rre processes. Under ThreadSanitizer their
 * TSAN_OPTIONS name a suppressions file made in g_dir: the one this
 * program was given, plus OpenSSL frames. libnats 3.4.1 calls SSL_read()
 * and SSL_write() on one connection from two threads without a lock
 * between them (fixed in nats.c by "SSL: Protect SSL_read/SSL_write with
 * mutex", nats-io/nats.c#913), which ThreadSanitizer reports now and then
 * on a TLS connection of the bridge; that race is the client library's.
 * Returns a malloc'ed array (and string) for free_env(). */
static char **child_env(void)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    assert_non_null(env);
    size_t k = 0;
#ifdef UNDER_TSAN
    const char *opts = getenv("TSAN_OPTIONS");
    if (opts == NULL)
        opts = "";
    char path[700];
    snprintf(path, sizeof path, "%s/rre-tsan.supp", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* The suppressions= option (not print_suppressions=). */
    const char *s = opts;
    while ((s = strstr(s, "suppressions=")) != NULL && s != opts && s[-1] != ':' && s[-1] != ' ')
        s++;
    size_t before = s != NULL ? (size_t)(s - opts) : strlen(opts);
    const char *after = "";
    if (s != NULL) {
        const char *v = s + strlen("suppressions=");
        size_t vlen = strcspn(v, ": ");
        char given[600];
        snprintf(given, sizeof given, "%.*s", (int)vlen, v);
        char *text = tu_read_file(given, NULL);
        if (text != NULL)
            fprintf(f, "%s\n", text);
        free(text);
        after = v + vlen;
    }
    fputs("race:libssl.so\nrace:libcrypto.so\n", f);
    assert_int_equal(fclose(f), 0);
    char *value = NULL;
    assert_true(asprintf(&value, "TSAN_OPTIONS=%.*s%ssuppressions=%s%s", (int)before, opts,
                         before > 0 && opts[before - 1] != ':' ? ":" : "", path, after) >= 0);
    env[k++] = value;
#endif
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TSAN_OPTIONS=", 13) != 0)
            env[k++] = environ[i];
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
#ifdef UNDER_TSAN
    free(env[0]);
#endif
    free(env);
}

/* Starts `rre ARGS...` (args NULL-terminated, without argv[0]) with
 * standard input from /dev/null and its output in files of g_dir. */
static proc spawn_rre(const char *const *args)
{
    proc p;
    int n = ++g_runs;
    snprintf(p.out_path, sizeof p.out_path, "%s/run%d.out", g_dir, n);
    snprintf(p.err_path, sizeof p.err_path, "%s/run%d.err", g_dir, n);
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"rre";
    for (int i = 0; args[i] != NULL && argc < 63; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    char **env = child_env();
    fflush(NULL);
    p.pid = fork();
    if (p.pid < 0)
        free_env(env);
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        int in = open("/dev/null", O_RDONLY);
        int out = open(p.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        close(in);
        close(out);
        close(err);
        execve(RRE_TEST_CLI, argv, env);
        _exit(127);
    }
    free_env(env);
    return p;
}

/* Waits up to timeout_ms for the process to exit; its exit status (128 +
 * signal when killed), or -1 when it is still running. */
static int wait_proc(proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (now_ms() > deadline)
            return -1;
        usleep(10000);
    }
}

static char *keep(char *s)
{
    if (s == NULL) {
        s = malloc(1);
        assert_non_null(s);
        s[0] = '\0';
    }
    if (g_ntexts == (int)(sizeof g_texts / sizeof g_texts[0])) {
        free(s);
        fail_msg("too many texts kept");
    }
    g_texts[g_ntexts++] = s;
    return s;
}

/* The contents of a file (empty when it cannot be read), kept until the
 * teardown. */
static char *read_text(const char *path)
{
    return keep(tu_read_file(path, NULL));
}

typedef struct run {
    int status;
    char *out, *err;
} run;

/* Runs `rre ARGS...` to its end; a run that takes longer than timeout_ms
 * is killed and fails the test. */
static run run_rre(int timeout_ms, const char *const *args)
{
    proc p = spawn_rre(args);
    g_child = p.pid;
    int status = wait_proc(&p, timeout_ms);
    if (status < 0) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, NULL, 0);
        g_child = 0;
        char *err = read_text(p.err_path);
        fail_msg("rre %s %s ... did not exit within %d ms; its standard error:\n%s", args[0],
                 args[1] != NULL ? args[1] : "", timeout_ms, err);
    }
    g_child = 0;
    run r = {status, read_text(p.out_path), read_text(p.err_path)};
    return r;
}

/* A running bridge process. */
static proc start_bridge(const char *const *args)
{
    proc p = spawn_rre(args);
    g_child = p.pid;
    return p;
}

/* Waits until the bridge process prints its ready line; fails the test
 * with its standard error when it exits first or takes over 30 s. */
static void wait_ready_line(proc *p)
{
    int64_t deadline = now_ms() + 30000;
    for (;;) {
        char *err = tu_read_file(p->err_path, NULL);
        if (err != NULL && strstr(err, "rre bridge: ready") != NULL) {
            free(err);
            return;
        }
        int status = wait_proc(p, 0);
        if (status >= 0) {
            g_child = 0;
            fail_msg("the bridge exited with status %d before it was ready:\n%s", status,
                     keep(err));
        }
        if (now_ms() > deadline)
            fail_msg("the bridge printed no ready line within 30 s:\n%s", keep(err));
        free(err);
        usleep(20000);
    }
}

/* The stacks of every thread of `pid` (gdb, when installed), kept until the
 * teardown: what a process that does not exit is doing. */
static char *thread_stacks(pid_t pid)
{
    char path[800], cmd[2000];
    snprintf(path, sizeof path, "%s/stacks-%ld.txt", g_dir, (long)pid);
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null 2>&1 && gdb -p %ld -batch -ex 'thread apply all bt' "
             ">'%s' 2>&1 || echo '(gdb is not installed)' >'%s'",
             (long)pid, path, path);
    if (system(cmd) != 0)
        return keep(strdup("(could not run gdb)"));
    return read_text(path);
}

/* Sends `sig` to the bridge process and returns its exit status; fails
 * the test when it does not exit within 60 s (a bound, not an expectation:
 * it exits within a second or two, but closing the queue waits for the
 * disk, which other tests may keep busy), with the stacks of its threads.
 * Returns its standard error in *err (kept until the teardown). */
static int stop_bridge(proc *p, int sig, char **err)
{
    assert_int_equal(kill(p->pid, sig), 0);
    int status = wait_proc(p, 60000);
    *err = read_text(p->err_path);
    if (status < 0) {
        char *stacks = thread_stacks(p->pid);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        g_child = 0;
        fail_msg("the bridge did not exit within 60 s of signal %d:\n%s\nits threads:\n%s", sig,
                 *err, stacks);
    }
    g_child = 0;
    return status;
}

/* Stops the bridge process with SIGTERM; it must exit 0. */
static void expect_clean_stop(proc *p)
{
    char *err = NULL;
    int status = stop_bridge(p, SIGTERM, &err);
    if (status != 0 || strstr(err, "rre bridge: stopped: ") == NULL)
        fail_msg("after SIGTERM: exit %d (0 expected); standard error:\n%s", status, err);
}

/* Rows of the queue at `path` whose hostname is `hostname`. */
static int count_rows(const char *path, const char *hostname)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE hostname = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, hostname, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------ */
/* Usage                                                                     */
/* ------------------------------------------------------------------------ */

static void test_bridge_usage_errors_exit_2_naming_the_problem(void **state)
{
    (void)state;
    char db[700];
    snprintf(db, sizeof db, "%s/events.db", g_dir);
    struct {
        const char *args[12];
        const char *says;
    } cases[] = {
        {{"bridge", NULL}, "--nats URL is required"},
        {{"bridge", "--host", "h1", "--stream", "S", NULL}, "--nats URL is required"},
        {{"bridge", "--nats", NULL}, "--nats needs a value"},
        {{"bridge", "--nats", NOWHERE, "--replicas", "0", NULL}, "--replicas"},
        {{"bridge", "--nats", NOWHERE, "--metrics-listen", "nowhere", NULL}, "--metrics-listen"},
        {{"bridge", "--nats", NOWHERE, "--metrics-listen", "1.2.3.4:0", NULL}, "--metrics-listen"},
        {{"bridge", "--nats", NOWHERE, "--replicas", "x", NULL}, "--replicas"},
        {{"bridge", "--nats", NOWHERE, "--replicas=6", NULL}, "--replicas"},
        {{"bridge", "--nats", NOWHERE, "--replicas", "2x", NULL}, "--replicas"},
        {{"bridge", "--nats", NOWHERE, "--max-age", "junk", NULL}, "--max-age"},
        {{"bridge", "--nats", NOWHERE, "--max-age", "0", NULL}, "--max-age"},
        {{"bridge", "--nats", NOWHERE, "--max-age", "-5m", NULL}, "--max-age"},
        {{"bridge", "--nats", NOWHERE, "--dedup-window", "soon", NULL}, "--dedup-window"},
        {{"bridge", "--nats", NOWHERE, "--tls-cert", "client-cert.pem", NULL},
         "--tls-cert and --tls-key"},
        {{"bridge", "--nats", NOWHERE, "--tls-key", "client-key.pem", NULL},
         "--tls-cert and --tls-key"},
        {{"bridge", "--nats", NOWHERE, "--user", "u", NULL}, "--user and --password"},
        {{"bridge", "--nats", NOWHERE, "--password", "p", NULL}, "--user and --password"},
        {{"bridge", "--nats", NOWHERE, "--user", "u", "--password", "p", "--creds", "x.creds",
          NULL},
         "--creds"},
        {{"bridge", "--nats", NOWHERE, "--stream", "A", "--stream", "B", NULL},
         "--stream is given twice"},
        {{"bridge", "--nats", NOWHERE, "--nats=" NOWHERE, NULL}, "--nats is given twice"},
        {{"bridge", "--nats", NOWHERE, "--host", "h1", "--host=h2", NULL}, "--host is given twice"},
        {{"bridge", "--nats", NOWHERE, "--bogus", NULL}, "'--bogus'"},
        {{"bridge", "--nats", NOWHERE, "--natsx", NOWHERE, NULL}, "'--natsx'"},
        {{"bridge", "--nats", NOWHERE, "extra", NULL}, "'extra'"},
        {{"bridge", "--nats", NOWHERE, "--host=", NULL}, "--host needs a non-empty value"},
        {{"bridge", "--nats", NOWHERE, "--replay-from", "yesterday", NULL}, "--replay-from"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"--db", db};
        int n = 2;
        for (int k = 0; cases[i].args[k] != NULL; k++)
            args[n++] = cases[i].args[k];
        args[n] = NULL;
        run r = run_rre(10000, args);
        char line[256] = "";
        for (int k = 0; args[k] != NULL; k++)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s", args[k]);
        if (r.status != 2 || strstr(r.err, cases[i].says) == NULL || r.out[0] != '\0')
            fail_msg("rre%s: exit %d (2 expected), stderr '%s' (should name '%s'), stdout '%s'",
                     line, r.status, r.err, cases[i].says, r.out);
        if (strncmp(r.err, "rre: ", 5) != 0)
            fail_msg("rre%s: the message does not start with 'rre: ': %s", line, r.err);
        /* Wrong usage creates nothing. */
        if (file_exists(db))
            fail_msg("rre%s created the queue database", line);
    }
    /* --help is not an error. */
    const char *help[] = {"--db", db, "bridge", "--help", NULL};
    run r = run_rre(10000, help);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: rre [--db PATH] bridge --nats"));
}

/* Values that pass the command's own checks but that rre_bridge_create()
 * refuses are wrong usage as well: exit 2, the reason, and no queue
 * database made for a command that never ran. */
static void test_bridge_option_values_the_library_refuses_exit_2_and_create_nothing(void **state)
{
    (void)state;
    char db[700];
    snprintf(db, sizeof db, "%s/events.db", g_dir);
    struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{"--nats", NOWHERE, "--stream", "a.b", NULL}, "stream name 'a.b'"},
        {{"--nats", NOWHERE, "--user", "us\"er", "--password", "p", NULL}, "'\"'"},
        {{"--nats", NOWHERE ",," NOWHERE, NULL}, "empty entry"},
        {{"--nats", NOWHERE, "--max-age", "20000d", NULL}, "maximum age"},
    };
    char problems[4096] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"--db", db, "bridge"};
        int n = 3;
        for (int k = 0; cases[i].args[k] != NULL; k++)
            args[n++] = cases[i].args[k];
        args[n] = NULL;
        unlink(db);
        run r = run_rre(10000, args);
        char line[256] = "";
        for (int k = 2; args[k] != NULL; k++)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s", args[k]);
        bool made = file_exists(db);
        if (r.status != 2 || strstr(r.err, cases[i].says) == NULL || made) {
            size_t len = strlen(problems);
            snprintf(problems + len, sizeof problems - len,
                     "rre%s: exit %d (2 expected)%s; stderr: %s", line, r.status,
                     made ? ", the queue database was created" : "", r.err);
        }
    }
    if (problems[0] != '\0')
        fail_msg("option values refused by the library:\n%s", problems);
}

/* ------------------------------------------------------------------------ */
/* A running bridge                                                          */
/* ------------------------------------------------------------------------ */

static void test_bridge_command_prints_ready_and_exits_0_on_sigterm(void **state)
{
    (void)state;
    /* `rre publish` writes the system host name: the bridge is given the
     * same, so it exports what rre publish appends. */
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    char db[700];
    snprintf(db, sizeof db, "%s/cli-host/events.db", g_dir);
    char hostdir[700];
    snprintf(hostdir, sizeof hostdir, "%s/cli-host", g_dir);
    assert_true(mkdir(hostdir, 0700) == 0 || errno == EEXIST);
    bh_host *peer =
        bh_start(g_dir, "cli-peer", tu_nats_url(g_nats), RRE_BRIDGE_DEFAULT_STREAM, NULL);

    const char *args[] = {"--db",   db,   "bridge", "--nats", tu_nats_url(g_nats),
                          "--host", host, NULL};
    proc p = start_bridge(args);
    wait_ready_line(&p);
    char *err = read_text(p.err_path);
    char ready[700];
    snprintf(ready, sizeof ready, "' on %s\n", tu_nats_url(g_nats));
    assert_non_null(strstr(err, "rre bridge: ready: consumer 'rre_"));
    assert_non_null(strstr(err, ready));

    /* Out: an event appended by `rre publish` reaches the peer. */
    const char *pub[] = {
        "--db",      db,
        "publish",   "ELO_UPDATED",
        "--payload", "{\"config_key\":\"hex8_2p\",\"model_id\":\"cli-1\",\"new_elo\":1501}",
        "--source",  "cli-test",
        NULL};
    run r = run_rre(20000, pub);
    if (r.status != 0)
        fail_msg("rre publish: exit %d: %s", r.status, r.err);
    bh_wait_payload(peer, "{\"config_key\":\"hex8_2p\",\"model_id\":\"cli-1\",\"new_elo\":1501}",
                    20000);
    assert_int_equal(bh_count_rows(peer, host), 1);
    /* In: an event of the peer reaches the command's queue. */
    bh_publish_text(peer, "MODEL_PROMOTED", "{\"config_key\":\"hex8_2p\",\"model_id\":\"m-peer\"}",
                    "promoter");
    int64_t deadline = now_ms() + 20000;
    while (count_rows(db, "cli-peer") < 1) {
        if (now_ms() > deadline)
            fail_msg("the peer's event did not reach the command's queue within 20 s");
        usleep(20000);
    }

    int status = stop_bridge(&p, SIGTERM, &err);
    if (status != 0 ||
        strstr(err, "rre bridge: stopped: 1 published, 0 duplicates, 1 imported, 0 refused\n") ==
            NULL)
        fail_msg("after SIGTERM: exit %d (0 expected); standard error:\n%s", status, err);
    char *out = read_text(p.out_path);
    assert_string_equal(out, "");

    /* Started again, it resumes (nothing to send again) and SIGINT stops it
     * the same way. */
    p = start_bridge(args);
    wait_ready_line(&p);
    status = stop_bridge(&p, SIGINT, &err);
    if (status != 0 ||
        strstr(err, "rre bridge: stopped: 0 published, 0 duplicates, 0 imported, 0 refused\n") ==
            NULL)
        fail_msg("after SIGINT: exit %d (0 expected); standard error:\n%s", status, err);
    assert_int_equal(count_rows(db, "cli-peer"), 1);
    assert_int_equal(bh_count_rows(peer, host), 1);
    bh_stop(peer);
}

/* A TCP port on the loopback that nothing listens on now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET http://127.0.0.1:port<path>: the whole response (status line,
 * headers, body), or NULL when nothing answers. */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    return keep(buf);
}

static void test_bridge_serves_prometheus_metrics_that_promtool_accepts(void **state)
{
    (void)state;
    char db[700], port_text[32];
    snprintf(db, sizeof db, "%s/metrics.db", g_dir);
    int port = free_port();
    snprintf(port_text, sizeof port_text, "127.0.0.1:%d", port);
    /* The system's host name, as `rre publish` writes it. */
    const char *args[] = {"--db",
                          db,
                          "bridge",
                          "--nats",
                          tu_nats_url(g_nats),
                          "--stream",
                          "CLI_METRICS",
                          "--metrics-listen",
                          port_text,
                          NULL};
    proc p = start_bridge(args);
    wait_ready_line(&p);
    const char *pub[] = {"--db", db, "publish", "ELO_UPDATED", "--payload", "{\"m\":1}", NULL};
    run r = run_rre(20000, pub);
    assert_int_equal(r.status, 0);
    /* The event goes out: the counter says so within a few seconds. */
    char *resp = NULL;
    int64_t deadline = now_ms() + 20000;
    for (;;) {
        resp = http_get(port, "/metrics");
        if (resp != NULL &&
            strstr(resp, "\nrre_bridge_messages_out_total{result=\"published\"} 1\n") != NULL)
            break;
        if (now_ms() > deadline)
            fail_msg("no published message in the metrics within 20 s:\n%s", resp);
        usleep(50000);
    }
    /* An event of another host comes in: the latency histogram counts it. */
    bh_host *peer = bh_start(g_dir, "metrics-peer", tu_nats_url(g_nats), "CLI_METRICS", NULL);
    bh_publish_text(peer, "ELO_UPDATED", "{\"from\":\"peer\"}", "peer-src");
    deadline = now_ms() + 20000;
    for (;;) {
        resp = http_get(port, "/metrics");
        if (resp != NULL &&
            strstr(resp, "\nrre_bridge_cross_host_latency_seconds_count 1\n") != NULL &&
            strstr(resp, "\nrre_bridge_messages_in_handled_total{result=\"imported\"} 1\n") != NULL)
            break;
        if (now_ms() > deadline)
            fail_msg("the imported event is not in the latency histogram within 20 s:\n%s", resp);
        usleep(50000);
    }
    bh_stop(peer);
    assert_non_null(
        strstr(resp, "\nrre_bridge_cross_host_latency_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(resp, "\nrre_bridge_connected 1\n"));
    assert_non_null(strstr(resp, "\nrre_bridge_state{state=\"running\"} 1\n"));
    assert_non_null(strstr(resp, "\nrre_queue_stored_events{type=\"ELO_UPDATED\""));
    /* Prometheus's own checker accepts the body. */
    char body_path[800], out_path[800], cmd[1800];
    snprintf(body_path, sizeof body_path, "%s/scrape.prom", g_dir);
    snprintf(out_path, sizeof out_path, "%s/promtool.out", g_dir);
    FILE *fp = fopen(body_path, "w");
    assert_non_null(fp);
    fputs(strstr(resp, "\r\n\r\n") + 4, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", body_path, out_path);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("promtool check metrics failed (%d):\n%s", rc, read_text(out_path));
    /* Other paths and methods are refused. */
    resp = http_get(port, "/");
    assert_non_null(resp);
    assert_non_null(strstr(resp, "HTTP/1.1 404"));
    /* A second bridge cannot take the same port: it says so and exits 1. */
    char db2[700];
    snprintf(db2, sizeof db2, "%s/metrics2.db", g_dir);
    const char *args2[] = {"--db",    db2,        "bridge",   "--nats",      tu_nats_url(g_nats),
                           "--host",  "metrics2", "--stream", "CLI_METRICS", "--metrics-listen",
                           port_text, NULL};
    r = run_rre(20000, args2);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "--metrics-listen: cannot listen"));
    expect_clean_stop(&p);
}

/* No server answers: the command keeps trying (not fatal), and a SIGTERM
 * still ends it promptly with status 0. */
static void test_bridge_command_exits_0_on_sigterm_while_no_server_answers(void **state)
{
    (void)state;
    char db[700];
    snprintf(db, sizeof db, "%s/nowhere.db", g_dir);
    const char *args[] = {"--db", db, "bridge", "--nats", NOWHERE, "--host", "nowhere", NULL};
    proc p = start_bridge(args);
    /* It reports the failed attempts while it keeps trying. */
    int64_t deadline = now_ms() + 30000;
    for (;;) {
        char *err = tu_read_file(p.err_path, NULL);
        bool retrying = err != NULL && strstr(err, "retrying in") != NULL;
        free(err);
        if (retrying)
            break;
        if (wait_proc(&p, 0) >= 0) {
            g_child = 0;
            fail_msg("the bridge exited while no server answered:\n%s", read_text(p.err_path));
        }
        if (now_ms() > deadline)
            fail_msg("the bridge reported no retry within 30 s:\n%s", read_text(p.err_path));
        usleep(20000);
    }
    int64_t start = now_ms();
    char *err = NULL;
    int status = stop_bridge(&p, SIGTERM, &err);
    int64_t ms = now_ms() - start;
    if (status != 0 ||
        strstr(err, "rre bridge: stopped: 0 published, 0 duplicates, 0 imported, 0 refused\n") ==
            NULL)
        fail_msg("after SIGTERM: exit %d (0 expected); standard error:\n%s", status, err);
    if (strstr(err, "rre bridge: ready") != NULL)
        fail_msg("the bridge said it was ready without a server:\n%s", err);
    /* bridge.h: rre_bridge_run() returns within about a second of a stop;
     * a connection attempt may take its 2 s timeout first. */
    if (ms > 5000)
        fail_msg("the bridge took %lld ms to exit after SIGTERM", (long long)ms);
}

/* ------------------------------------------------------------------------ */
/* Fatal errors                                                              */
/* ------------------------------------------------------------------------ */

/* Makes a stream on the test's server. */
static void make_stream(const char *name, const char *subject, double max_age_s, double dedup_s)
{
    natsConnection *nc = tu_nats_connect(g_nats);
    assert_non_null(nc);
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {subject};
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxAge = (int64_t)(max_age_s * 1e9);
    cfg.Duplicates = (int64_t)(dedup_s * 1e9);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("making stream %s: %s (%s; JetStream error %d)", name, natsStatus_GetText(s),
                 nats_GetLastError(NULL), (int)jerr);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* Runs the bridge command with `extra` options (NULL-terminated) and
 * expects it to exit 1 by itself, without a ready line, with every one of
 * the `says` strings (NULL-terminated) on standard error. */
static void expect_exit_1(const char *host, const char *const *extra, const char *const *says)
{
    char db[700];
    snprintf(db, sizeof db, "%s/%s.db", g_dir, host);
    const char *args[32] = {"--db", db, "bridge", "--nats", tu_nats_url(g_nats), "--host", host};
    int n = 7;
    for (int i = 0; extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int64_t start = now_ms();
    run r = run_rre(20000, args);
    int64_t ms = now_ms() - start;
    char line[512] = "";
    for (int k = 2; args[k] != NULL; k++)
        snprintf(line + strlen(line), sizeof line - strlen(line), " %s", args[k]);
    if (r.status != 1)
        fail_msg("rre%s: exit %d (1 expected) after %lld ms; stderr:\n%s", line, r.status,
                 (long long)ms, r.err);
    for (int i = 0; says[i] != NULL; i++)
        if (strstr(r.err, says[i]) == NULL)
            fail_msg("rre%s: standard error does not say '%s':\n%s", line, says[i], r.err);
    if (strstr(r.err, "rre bridge: ready") != NULL)
        fail_msg("rre%s: printed a ready line:\n%s", line, r.err);
    if (ms > 10000)
        fail_msg("rre%s: took %lld ms to give up", line, (long long)ms);
}

static void test_bridge_command_exits_1_with_the_reason_on_a_conflicting_stream(void **state)
{
    (void)state;
    make_stream(RRE_BRIDGE_DEFAULT_STREAM, "rre.>", 7 * 24 * 3600.0, 3600.0);
    const char *dedup[] = {"--dedup-window", "2h", NULL};
    const char *dedup_says[] = {"rre: bridge: ", "duplicate window is 3600 s, not 7200 s", NULL};
    expect_exit_1("conflict-dedup", dedup, dedup_says);
    const char *age[] = {"--max-age", "1d", NULL};
    const char *age_says[] = {"maximum age is 604800 s, not 86400 s", NULL};
    expect_exit_1("conflict-age", age, age_says);
    const char *replicas[] = {"--replicas", "3", NULL};
    const char *replicas_says[] = {"1 replicas, not 3", NULL};
    expect_exit_1("conflict-replicas", replicas, replicas_says);
    make_stream("OTHER", "other.>", 3600.0, 60.0);
    const char *other[] = {"--stream", "OTHER", NULL};
    const char *other_says[] = {"does not take the subjects 'rre.>'", NULL};
    expect_exit_1("conflict-subjects", other, other_says);

    /* Options equal to the stream's settings are no conflict. */
    char db[700];
    snprintf(db, sizeof db, "%s/agree.db", g_dir);
    const char *args[] = {"--db",   db,      "bridge",         "--nats", tu_nats_url(g_nats),
                          "--host", "agree", "--dedup-window", "1h",     "--max-age",
                          "7d",     NULL};
    proc p = start_bridge(args);
    wait_ready_line(&p);
    expect_clean_stop(&p);
}

static void test_bridge_command_exits_1_on_refused_credentials(void **state)
{
    (void)state;
    const char *wrong[] = {"--user", AUTH_USER, "--password", "wrong", NULL};
    const char *says[] = {"rre: bridge: ", "Authorization Violation", NULL};
    expect_exit_1("auth-wrong", wrong, says);
    const char *none[] = {NULL};
    expect_exit_1("auth-none", none, says);
    /* The right ones work. */
    char db[700];
    snprintf(db, sizeof db, "%s/auth-ok.db", g_dir);
    const char *args[] = {"--db",        db,        "bridge", "--nats",  tu_nats_url(g_nats),
                          "--host",      "auth-ok", "--user", AUTH_USER, "--password",
                          AUTH_PASSWORD, NULL};
    proc p = start_bridge(args);
    wait_ready_line(&p);
    expect_clean_stop(&p);
}

static void test_bridge_command_connects_with_its_tls_options(void **state)
{
    (void)state;
    char ca[700], cert[700], key[700], db[700];
    snprintf(ca, sizeof ca, "%s/certs/ca.pem", g_dir);
    snprintf(cert, sizeof cert, "%s/certs/client-cert.pem", g_dir);
    snprintf(key, sizeof key, "%s/certs/client-key.pem", g_dir);
    snprintf(db, sizeof db, "%s/tls.db", g_dir);
    const char *args[] = {"--db",   db,          "bridge",   "--nats", tu_nats_url(g_nats),
                          "--host", "tls",       "--tls-ca", ca,       "--tls-cert",
                          cert,     "--tls-key", key,        NULL};
    proc p = start_bridge(args);
    wait_ready_line(&p);
    expect_clean_stop(&p);
    /* A CA file that cannot be read is a fatal error naming it. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-ca.pem", g_dir);
    const char *bad[] = {"--tls-ca", missing, "--tls-cert", cert, "--tls-key", key, NULL};
    const char *says[] = {"no-such-ca.pem", NULL};
    expect_exit_1("tls-missing-ca", bad, says);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bridge_usage_errors_exit_2_naming_the_problem,
                                        dir_setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bridge_option_values_the_library_refuses_exit_2_and_create_nothing, dir_setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bridge_serves_prometheus_metrics_that_promtool_accepts,
                                        server_setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridge_command_prints_ready_and_exits_0_on_sigterm,
                                        server_setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bridge_command_exits_0_on_sigterm_while_no_server_answers, dir_setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bridge_command_exits_1_with_the_reason_on_a_conflicting_stream, server_setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bridge_command_exits_1_on_refused_credentials,
                                        auth_server_setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridge_command_connects_with_its_tls_options,
                                        tls_server_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
