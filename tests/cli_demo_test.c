/*
 * cli_demo_test.c - runs `rre demo` with small settings as a black box and
 * checks its summary: every fault injected, the storm absorbed, and the
 * flow checker's verdict on the whole run clean.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static void test_demo_runs_again_on_a_database_that_holds_an_earlier_run(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    /* The second run's payloads would repeat the first's; dedup must not
     * take them for duplicates. */
    for (int run = 1; run <= 2; run++) {
        tu_result r =
            tu_run_cli(NULL, "demo", "--configs", "hex8_2p", "--iterations", "2", "--db", db,
                       "--storm", "5", "--pace", "0", "--timeout", "60", "--quiet", NULL);
        if (r.status != 0)
            fprintf(stderr, "run %d stdout:\n%s\nstderr:\n%s\n", run, r.out, r.err);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "verdict: OK"));
        tu_result_free(&r);
    }
    tu_result r = tu_run_cli(NULL, "--db", db, "flow", "check", NULL);
    if (r.status != 0)
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    tu_rmtree(dir);
    free(dir);
}

static void test_demo_ignores_events_of_other_producers_of_its_database(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char db[512];
    snprintf(db, sizeof db, "%s/events.db", dir);
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[0]);
        close(out[1]);
        char *argv[] = {"rre", "demo", "--configs", "hex8_2p", "--iterations", "3",  "--pace",
                        "100", "--db", db,          "--quiet", "--timeout",    "60", NULL};
        execv(RRE_TEST_CLI, argv);
        _exit(127);
    }
    close(out[1]);
    /* Once the run is under way, another producer announces the shutdown the
     * demo's driver would send. */
    bool started = false;
    for (int tries = 0; tries < 1000 && !started; tries++) {
        tu_result r = tu_run_cli(NULL, "--db", db, "tail", "--type", "SELFPLAY_COMPLETE", "--limit",
                                 "1", NULL);
        started = r.status == 0 && r.out[0] != '\0';
        tu_result_free(&r);
        if (!started) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(started);
    tu_result r = tu_run_cli(NULL, "--db", db, "publish", "COORDINATOR_SHUTDOWN", "--payload",
                             "{\"coordinator_name\":\"demo\",\"reason\":\"graceful\","
                             "\"remaining_tasks\":0}",
                             NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);

    char text[65536];
    size_t len = 0;
    ssize_t got;
    while ((got = read(out[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)got;
    text[len] = '\0';
    close(out[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "output:\n%s\n", text);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(text, "verdict: OK"));
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

static void test_demo_rejects_empty_and_malformed_numbers(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"--storm", ""},      {"--pace", ""},        {"--storm", " 5"},   {"--iterations", "+2"},
        {"--iterations", ""}, {"--timeout", "0x10"}, {"--timeout", " 5"}, {"--timeout", "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_result r =
            tu_run_cli(NULL, "demo", cases[i][0], cases[i][1], "--configs", "hex8_2p",
                       "--iterations", "1", "--pace", "0", "--timeout", "0.001", "--quiet", NULL);
        /* Each value is checked as it is read, before the option given again
         * after it is refused as given twice. */
        if (r.status != 2 || strstr(r.err, "given twice") != NULL ||
            strstr(r.err, cases[i][0]) == NULL)
            print_message("%s '%s': status %d: %s\n", cases[i][0], cases[i][1], r.status, r.err);
        assert_int_equal(r.status, 2);
        assert_null(strstr(r.err, "given twice"));
        assert_non_null(strstr(r.err, cases[i][0]));
        tu_result_free(&r);
    }
}

/* ------------------------------------------------------------------------ */
/* Running the demo in the background, to interrupt or kill it               */
/* ------------------------------------------------------------------------ */

#define DEMO_COORDINATORS 9

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts `rre demo` slowly paced, with TMPDIR set to `tmpdir` and its
 * standard output written to `out` (NULL: thrown away), and waits until all
 * its coordinators run. The pids of the coordinators go to
 * children[DEMO_COORDINATORS]. */
static pid_t start_slow_demo(const char *tmpdir, const char *out, pid_t children[DEMO_COORDINATORS])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        int fd = out != NULL ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600) : null;
        dup2(fd, 1);
        dup2(null, 2);
        setenv("TMPDIR", tmpdir, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        char *argv[] = {"rre",          "demo", "--configs", "hex8_2p,square8_2p",
                        "--iterations", "50",   "--pace",    "200",
                        "--quiet",      NULL};
        execv(RRE_TEST_CLI, argv);
        _exit(127);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
    for (int tries = 0; tries < 3000; tries++) {
        FILE *f = fopen(path, "r");
        size_t n = 0;
        long child;
        while (f != NULL && n < DEMO_COORDINATORS && fscanf(f, "%ld", &child) == 1)
            children[n++] = (pid_t)child;
        if (f != NULL)
            fclose(f);
        if (n == DEMO_COORDINATORS) {
            sleep_ms(300); /* let the pipeline get going */
            return pid;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    fail_msg("the demo did not start its %d coordinators", DEMO_COORDINATORS);
    return -1;
}

/* Waits up to `ms` for `pid` to end; returns its wait status, or -1 when it
 * is still running. */
static int wait_for(pid_t pid, long ms)
{
    for (long waited = 0; waited <= ms; waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        sleep_ms(10);
    }
    return -1;
}

/* Gives the coordinators up to `ms` in all to end (this process is a
 * subreaper, so orphaned coordinators become its children); kills and reaps
 * the ones still running and returns how many there were. */
static int coordinators_left(const pid_t children[DEMO_COORDINATORS], long ms)
{
    bool ended[DEMO_COORDINATORS] = {false};
    int left = DEMO_COORDINATORS;
    for (long waited = 0; left > 0 && waited <= ms; waited += 10) {
        for (int i = 0; i < DEMO_COORDINATORS; i++) {
            int status;
            if (ended[i])
                continue;
            /* Reaped here as an orphan, or by the driver (then it is gone). */
            if (waitpid(children[i], &status, WNOHANG) == children[i] ||
                (kill(children[i], 0) != 0 && errno == ESRCH)) {
                ended[i] = true;
                left--;
            }
        }
        if (left > 0)
            sleep_ms(10);
    }
    for (int i = 0; i < DEMO_COORDINATORS; i++) {
        if (!ended[i]) {
            int status;
            fprintf(stderr, "coordinator %ld still running\n", (long)children[i]);
            kill(children[i], SIGKILL);
            waitpid(children[i], &status, 0);
        }
    }
    return left;
}

static bool dir_is_empty(const char *path)
{
    DIR *dir = opendir(path);
    assert_non_null(dir);
    bool empty = true;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "left behind: %s/%s\n", path, e->d_name);
            empty = false;
        }
    }
    closedir(dir);
    return empty;
}

static void check_stop_by_signal(int sig)
{
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char *tmp = tu_mkdtemp();
    char *outdir = tu_mkdtemp();
    char out[600];
    snprintf(out, sizeof out, "%s/stdout", outdir);
    pid_t children[DEMO_COORDINATORS];
    pid_t pid = start_slow_demo(tmp, out, children);
    assert_int_equal(kill(pid, sig), 0);
    int status = wait_for(pid, 20000);
    if (status == -1)
        kill(pid, SIGKILL);
    int left = coordinators_left(children, 30000);
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));                   /* it handled the signal, */
    assert_int_equal(WEXITSTATUS(status), 128 + sig); /* said so as a shell does, */
    assert_int_equal(left, 0);                        /* stopped its coordinators, */
    assert_true(dir_is_empty(tmp));                   /* and removed its database */
    /* The summary says the run was interrupted, not that it failed; the
     * faults it lists as injected are those whose events came. */
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    if (strstr(text, "verdict: INTERRUPTED") == NULL)
        fprintf(stderr, "stdout:\n%s\n", text);
    assert_non_null(strstr(text, "summary (interrupted by "));
    assert_non_null(strstr(text, "verdict: INTERRUPTED"));
    assert_null(strstr(text, "verdict: FAILED"));
    tu_rmtree(outdir);
    free(outdir);
    tu_rmtree(tmp);
    free(tmp);
}

/* Without --keep the temporary queue is not named (it is about to go);
 * with it, it stays, and the printed commands work on it. */
static void test_demo_keep_keeps_the_queue_and_says_how_to_look_at_it(void **state)
{
    (void)state;
    char *tmp = tu_mkdtemp();
    setenv("TMPDIR", tmp, 1);
    tu_result r =
        tu_run_cli(NULL, "demo", "--configs", "hex8_2p", "--iterations", "1", "--pace", "0", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "a temporary queue (--keep keeps it)"));
    assert_null(strstr(r.out, tmp));
    tu_result_free(&r);
    assert_true(dir_is_empty(tmp));
    r = tu_run_cli(NULL, "demo", "--configs", "hex8_2p", "--iterations", "1", "--pace", "0",
                   "--keep", NULL);
    unsetenv("TMPDIR");
    assert_int_equal(r.status, 0);
    const char *cmd = strstr(r.out, "  rre --db ");
    assert_non_null(cmd);
    char db[600];
    assert_int_equal(sscanf(cmd, "  rre --db %599s", db), 1);
    assert_int_equal(strncmp(db, tmp, strlen(tmp)), 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "flow", "check", NULL);
    assert_int_equal(r.status, 0);
    tu_result_free(&r);
    r = tu_run_cli(NULL, "--db", db, "stats", "--format", "json", NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "\"events\":0,"));
    tu_result_free(&r);
    tu_rmtree(tmp);
    free(tmp);
}

static void test_demo_interrupted_stops_coordinators_and_removes_its_files(void **state)
{
    (void)state;
    check_stop_by_signal(SIGINT);
}

static void test_demo_terminated_stops_coordinators_and_removes_its_files(void **state)
{
    (void)state;
    check_stop_by_signal(SIGTERM);
}

static void test_demo_coordinators_exit_when_the_driver_is_killed(void **state)
{
    (void)state;
    /* As a subreaper this process adopts the orphans, as a service manager
     * or container init would: their parent is then not process 1. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char *tmp = tu_mkdtemp();
    pid_t children[DEMO_COORDINATORS];
    pid_t pid = start_slow_demo(tmp, NULL, children);
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* Bounds, not expectations: a killed process still waits for the disk
     * writes it is in the middle of, which can take seconds on a machine
     * that other tests keep writing to. */
    int status = wait_for(pid, 60000);
    assert_int_not_equal(status, -1);
    assert_int_equal(coordinators_left(children, 30000), 0);
    tu_rmtree(tmp);
    free(tmp);
}

static void test_demo_empty_db_path_is_usage_error_not_the_default_database(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    setenv("RINGRIFT_COORDINATION_DIR", dir, 1);
    tu_result r = tu_run_cli(NULL, "demo", "--db", "", "--iterations", "1", "--pace", "0",
                             "--timeout", "30", "--quiet", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--db"));
    tu_result_free(&r);
    unsetenv("RINGRIFT_COORDINATION_DIR");
    assert_true(dir_is_empty(dir));
    tu_rmtree(dir);
    free(dir);
}

/* Across hosts: a private nats-server, a queue and a bridge per simulated
 * host; the pipeline runs clean, events cross in every direction, and the
 * run leaves no file and no server behind. */
static void test_demo_across_hosts_runs_clean_and_carries_events_every_way(void **state)
{
    (void)state;
    char *tmp = tu_mkdtemp();
    setenv("TMPDIR", tmp, 1);
    tu_result r =
        tu_run_cli(NULL, "demo", "--hosts", "3", "--configs", "hex8_2p,square8_4p", "--iterations",
                   "2", "--pace", "0", "--timeout", "120", "--quiet", NULL);
    unsetenv("TMPDIR");
    if (r.status != 0)
        fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "verdict: OK"));
    assert_non_null(strstr(r.out, "flow check: clean"));
    assert_non_null(strstr(r.out, "cross-host latency: p50 "));
    assert_non_null(strstr(r.out, "a private nats-server"));
    /* Every direction carried something: each line ends in a count > 0. */
    const char *dirs = strstr(r.out, "events carried per direction");
    assert_non_null(dirs);
    int lines = 0;
    for (const char *p = strstr(dirs, "\n    ");
         p != NULL && strstr(p, " -> ") != NULL && strstr(p, " -> ") < strchr(p + 1, '\n');
         p = strstr(p + 1, "\n    ")) {
        const char *eol = strchr(p + 1, '\n');
        const char *num = eol - 1;
        while (num > p && *num >= '0' && *num <= '9')
            num--;
        assert_true(strtol(num + 1, NULL, 10) > 0);
        lines++;
    }
    assert_int_equal(lines, 6);
    tu_result_free(&r);
    assert_true(dir_is_empty(tmp));
    tu_rmtree(tmp);
    free(tmp);
}

static void test_demo_across_hosts_without_nats_server_says_what_to_install(void **state)
{
    (void)state;
    char *tmp = tu_mkdtemp();
    setenv("TMPDIR", tmp, 1);
    setenv("RRE_NATS_SERVER", "/nonexistent/nats-server", 1);
    tu_result r = tu_run_cli(NULL, "demo", "--hosts", "2", "--quiet", NULL);
    unsetenv("RRE_NATS_SERVER");
    unsetenv("TMPDIR");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "nats-server"));
    tu_result_free(&r);
    assert_true(dir_is_empty(tmp));
    tu_rmtree(tmp);
    free(tmp);
}

static void test_demo_hosts_options_are_checked(void **state)
{
    (void)state;
    const char *cases[][4] = {
        {"--hosts", "1", NULL, NULL},          {"--hosts", "9", NULL, NULL},
        {"--hosts", "x", NULL, NULL},          {"--nats", "nats://127.0.0.1:1", NULL, NULL},
        {"--hosts", "2", "--db", "/tmp/x.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"rre",
                        "demo",
                        (char *)cases[i][0],
                        (char *)cases[i][1],
                        (char *)cases[i][2],
                        (char *)cases[i][3],
                        NULL};
        tu_result r = tu_run_cliv(NULL, argv);
        if (r.status != 2)
            fail_msg("demo %s %s: status %d, stderr %s", cases[i][0], cases[i][1], r.status, r.err);
        assert_non_null(strstr(r.err, "demo: "));
        tu_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_runs_pipeline_with_faults_and_clean_flow),
        cmocka_unit_test(test_demo_runs_again_on_a_database_that_holds_an_earlier_run),
        cmocka_unit_test(test_demo_ignores_events_of_other_producers_of_its_database),
        cmocka_unit_test(test_demo_with_one_iteration_reports_unscheduled_faults),
        cmocka_unit_test(test_demo_rejects_bad_config_key),
        cmocka_unit_test(test_demo_rejects_bad_iterations),
        cmocka_unit_test(test_demo_rejects_empty_and_malformed_numbers),
        cmocka_unit_test(test_demo_empty_db_path_is_usage_error_not_the_default_database),
        cmocka_unit_test(test_demo_interrupted_stops_coordinators_and_removes_its_files),
        cmocka_unit_test(test_demo_keep_keeps_the_queue_and_says_how_to_look_at_it),
        cmocka_unit_test(test_demo_terminated_stops_coordinators_and_removes_its_files),
        cmocka_unit_test(test_demo_coordinators_exit_when_the_driver_is_killed),
        cmocka_unit_test(test_demo_across_hosts_runs_clean_and_carries_events_every_way),
        cmocka_unit_test(test_demo_across_hosts_without_nats_server_says_what_to_install),
        cmocka_unit_test(test_demo_hosts_options_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
