/*
 * queue_faults_test.c - the queue on bad ground: a file that is not a
 * database, a truncated database, a read-only database, a directory that
 * cannot be created, a full database, a write lock held by another process,
 * a poison row, and a shared /tmp location another user got to first. Each gives a clear error and
 * loses nothing already stored.
 */
#include "queue_sqlite.h" /* the /tmp location check */
#include "testutil.h"

#include <rre/rre.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
    chmod(f->dir, 0700);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static rre_status open_queue(const char *path, bool read_only, int64_t max_pages, rre_queue **q)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.read_only = read_only;
    o.max_page_count = max_pages;
    o.maintenance_interval_ms = -1;
    return rre_queue_create(q, &o);
}

static rre_status publish_i(rre_queue *q, int i)
{
    json_t *p = json_pack("{s:i,s:s}", "i", i, "pad",
                          "padding padding padding padding padding padding padding padding");
    rre_status st = rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, NULL, NULL, NULL, NULL);
    json_decref(p);
    return st;
}

static void fill(const char *path, int n)
{
    rre_queue *q;
    assert_int_equal(open_queue(path, false, 0, &q), RRE_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(publish_i(q, i), RRE_OK);
    rre_queue_destroy(q);
}

static rre_status counter(const rre_event *ev, void *ud)
{
    (void)ev;
    (*(size_t *)ud)++;
    return RRE_OK;
}

/* Reads every event with a transient reader; returns the status. */
static rre_status read_all(rre_queue *q, size_t *count)
{
    rre_subscriber *s;
    *count = 0;
    rre_status st = rre_subscriber_create(&s, q, NULL);
    if (st != RRE_OK)
        return st;
    size_t n;
    do {
        st = rre_subscriber_poll(s, 0, 0, counter, count, &n);
    } while (st == RRE_OK && n > 0);
    rre_subscriber_destroy(s);
    return st;
}

static void test_file_that_is_not_a_database_is_ecorrupt_and_untouched(void **state)
{
    struct fixture *f = *state;
    const char text[] = "Not a database. Just notes that happen to sit where the queue goes, "
                        "long enough to cover a SQLite header and then some more text.\n";
    FILE *fp = fopen(f->path, "w");
    fputs(text, fp);
    fclose(fp);
    rre_queue *q = NULL;
    assert_int_equal(open_queue(f->path, false, 0, &q), RRE_ECORRUPT);
    assert_null(q);
    assert_non_null(strstr(rre_last_error(), "not a database"));
    size_t len;
    char *after = tu_read_file(f->path, &len);
    assert_string_equal(after, text);
    free(after);
}

static void test_truncated_database_gives_ecorrupt_not_a_crash(void **state)
{
    struct fixture *f = *state;
    fill(f->path, 2000);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(truncate(f->path, sb.st_size / 2), 0);
    rre_queue *q = NULL;
    rre_status st = open_queue(f->path, false, 0, &q);
    if (st == RRE_OK) {
        size_t n;
        st = read_all(q, &n);
        rre_queue_destroy(q);
    }
    assert_int_equal(st, RRE_ECORRUPT);
}

static void test_read_only_database_is_ereadonly_and_still_readable(void **state)
{
    struct fixture *f = *state;
    fill(f->path, 10);
    /* As root, permissions do not stop writes: drop to another user in a
     * child process. */
    assert_int_equal(chmod(f->path, 0444), 0);
    assert_int_equal(chmod(f->dir, 0555), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && setuid(65534) != 0)
            _exit(50);
        rre_queue *q = NULL;
        rre_status st = open_queue(f->path, false, 0, &q);
        if (st != RRE_EREADONLY) {
            fprintf(stderr, "writable open gave %s: %s\n", rre_status_name(st), rre_last_error());
            _exit(51);
        }
        st = open_queue(f->path, true, 0, &q);
        if (st != RRE_OK) {
            fprintf(stderr, "read-only open gave %s: %s\n", rre_status_name(st), rre_last_error());
            _exit(52);
        }
        size_t n;
        st = read_all(q, &n);
        if (st != RRE_OK || n != 10) {
            fprintf(stderr, "read-only read gave %s, %zu events: %s\n", rre_status_name(st), n,
                    rre_last_error());
            _exit(53);
        }
        if (publish_i(q, 99) != RRE_EREADONLY)
            _exit(54);
        rre_queue_destroy(q);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_directory_that_cannot_be_created_is_eio_naming_it(void **state)
{
    struct fixture *f = *state;
    char file[600], path[700];
    snprintf(file, sizeof file, "%s/plainfile", f->dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    snprintf(path, sizeof path, "%s/sub/events.db", file);
    rre_queue *q = NULL;
    assert_int_equal(open_queue(path, false, 0, &q), RRE_EIO);
    assert_null(q);
    assert_non_null(strstr(rre_last_error(), "plainfile"));
}

static void test_full_database_is_efull_and_keeps_what_was_stored(void **state)
{
    struct fixture *f = *state;
    rre_queue *q;
    assert_int_equal(open_queue(f->path, false, 60, &q), RRE_OK);
    int stored = 0;
    rre_status st = RRE_OK;
    for (int i = 0; i < 100000 && st == RRE_OK; i++) {
        st = publish_i(q, i);
        if (st == RRE_OK)
            stored++;
    }
    assert_int_equal(st, RRE_EFULL);
    assert_true(stored > 0);
    /* Still full, still a clear error. */
    assert_int_equal(publish_i(q, -1), RRE_EFULL);
    rre_queue_destroy(q);
    /* Everything reported stored is there, readable. */
    assert_int_equal(open_queue(f->path, false, 0, &q), RRE_OK);
    size_t n;
    assert_int_equal(read_all(q, &n), RRE_OK);
    assert_int_equal(n, (size_t)stored);
    rre_queue_destroy(q);
}

static void test_publish_waits_out_a_write_lock_held_by_another_process(void **state)
{
    struct fixture *f = *state;
    fill(f->path, 1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db;
        if (sqlite3_open(f->path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            _exit(1);
        char c = 1;
        if (write(p[1], &c, 1) != 1)
            _exit(2);
        usleep(300 * 1000);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(0);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    rre_queue *q;
    assert_int_equal(open_queue(f->path, false, 0, &q), RRE_OK);
    assert_int_equal(publish_i(q, 1), RRE_OK); /* not SQLITE_BUSY */
    rre_queue_destroy(q);
    waitpid(pid, NULL, 0);
}

static void test_poison_rows_never_stop_delivery(void **state)
{
    struct fixture *f = *state;
    fill(f->path, 3);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO events(event_type, payload, created_at) VALUES"
                                  " ('elo_updated', '', strftime('%s','now')),"
                                  " ('elo_updated', 'null', strftime('%s','now')),"
                                  " ('elo_updated', '\"text\"', strftime('%s','now')),"
                                  " ('elo_updated', '{\"a\": 1', strftime('%s','now')),"
                                  " ('no_such_type_at_all', '{}', strftime('%s','now')),"
                                  " ('elo_updated', X'7B22223A22FF227D', strftime('%s','now'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    fill(f->path, 2);
    rre_queue *q;
    assert_int_equal(open_queue(f->path, false, 0, &q), RRE_OK);
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "robust";
    rre_subscriber *s;
    assert_int_equal(rre_subscriber_create(&s, q, &o), RRE_OK);
    size_t count = 0, n;
    do {
        assert_int_equal(rre_subscriber_poll(s, 0, 0, counter, &count, &n), RRE_OK);
    } while (n > 0);
    /* fill() published the same payloads twice, so the last two were
     * duplicates: 3 events plus 6 poison rows. */
    assert_int_equal(count, 3);
    rre_subscriber_counters c;
    rre_subscriber_get_counters(s, &c);
    assert_int_equal(c.poison, 6);
    rre_subscriber_destroy(s);
    json_t *stats;
    assert_int_equal(rre_queue_stats(q, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "poison_rows")), 6);
    json_decref(stats);
    rre_queue_destroy(q);
}

static void test_tmp_location_must_be_a_directory_of_this_user(void **state)
{
    struct fixture *f = *state;
    char own[600], other[600], link[600], file[600];
    snprintf(own, sizeof own, "%s/own", f->dir);
    snprintf(other, sizeof other, "%s/other", f->dir);
    snprintf(link, sizeof link, "%s/link", f->dir);
    snprintf(file, sizeof file, "%s/file", f->dir);
    assert_int_equal(mkdir(own, 0700), 0);
    assert_int_equal(rre__queue_check_private_dir(own), RRE_OK);
    assert_int_equal(symlink(own, link), 0);
    assert_int_equal(rre__queue_check_private_dir(link), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "symbolic link"));
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rre__queue_check_private_dir(file), RRE_EIO);
    assert_int_equal(rre__queue_check_private_dir(f->path), RRE_EIO); /* missing */
    /* Others or the group can write it: refused, saying how to fix it. */
    char shared[600];
    snprintf(shared, sizeof shared, "%s/shared", f->dir);
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chmod(shared, 01777), 0);
    assert_int_equal(rre__queue_check_private_dir(shared), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "can be written by every user"));
    assert_non_null(strstr(rre_last_error(), "chmod go-w"));
    assert_int_equal(chmod(shared, 0770), 0);
    assert_int_equal(rre__queue_check_private_dir(shared), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "by its group"));
    /* The files: this user's own, or missing. */
    char db[700], wal[700];
    snprintf(db, sizeof db, "%s/events.db", own);
    snprintf(wal, sizeof wal, "%s/events.db-wal", own);
    assert_int_equal(rre__queue_check_private_files(db), RRE_OK);
    assert_int_equal(symlink(file, wal), 0);
    assert_int_equal(rre__queue_check_private_files(db), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "events.db-wal' is a symbolic link"));
    unlink(wal);
    if (geteuid() != 0)
        skip(); /* giving a file or a directory to another user needs root */
    fd = open(db, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rre__queue_check_private_files(db), RRE_OK);
    assert_int_equal(chown(db, 4242, 4242), 0);
    assert_int_equal(rre__queue_check_private_files(db), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "events.db' belongs to uid 4242"));
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(chown(other, 4242, 4242), 0);
    assert_int_equal(rre__queue_check_private_dir(other), RRE_EIO);
    assert_non_null(strstr(rre_last_error(), "belongs to uid 4242"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tmp_location_must_be_a_directory_of_this_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_that_is_not_a_database_is_ecorrupt_and_untouched,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_database_gives_ecorrupt_not_a_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_only_database_is_ereadonly_and_still_readable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_that_cannot_be_created_is_eio_naming_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_database_is_efull_and_keeps_what_was_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_waits_out_a_write_lock_held_by_another_process,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_rows_never_stop_delivery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
