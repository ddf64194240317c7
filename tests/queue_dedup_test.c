/*
 * queue_dedup_test.c - content dedup across queue handles and processes, as
 * kept in two levels (the stored hashes, appended, each writer holding the
 * recent ones in memory; the index they are merged into). The bound on what
 * a writer holds is set low here, so that merges happen every few events.
 */
#include "queue_sqlite.h"
#include "testutil.h"

#include <rre/rre.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* A handle on the fixture's file whose writers merge past `mem_max` hashes. */
static rre_queue *open_queue(const char *path, size_t mem_max, bool read_only)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    o.read_only = read_only;
    rre_queue *q = NULL;
    if (rre_queue_create(&q, &o) != RRE_OK)
        fail_msg("open %s: %s", path, rre_last_error());
    q->dedup_mem_max = mem_max;
    return q;
}

static int64_t publish_seq(rre_queue *q, const char *tag, int seq, bool *dup)
{
    json_t *p = json_pack("{s:s,s:i}", "tag", tag, "seq", seq);
    rre_queue_publish_result r;
    rre_status st = rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "test", NULL, NULL, &r);
    json_decref(p);
    if (st != RRE_OK)
        fail_msg("publish: %s: %s", rre_strerror(st), rre_last_error());
    *dup = r.duplicate;
    return r.event_id;
}

/* The hashes a writer holds in memory. */
static size_t held(const rre__qdedup *d)
{
    size_t n = 0;
    for (unsigned i = 0; i < RRE__QUEUE_DEDUP_SLICES; i++)
        n += rre__dedup_count(&d->mem[i]);
    return n;
}

static void test_same_content_from_two_handles_is_stored_once_across_merges(void **state)
{
    struct fixture *f = *state;
    rre_queue *a = open_queue(f->path, 8, false);
    rre_queue *b = open_queue(f->path, 8, false);
    bool dup;
    int64_t x = publish_seq(a, "x", 0, &dup);
    assert_false(dup);
    /* Still in A's memory, and read by B from the stored hashes. */
    assert_int_equal(publish_seq(b, "x", 0, &dup), x);
    assert_true(dup);
    /* B stores enough to merge: x is now in the index. */
    for (int i = 0; i < 20; i++) {
        publish_seq(b, "b", i, &dup);
        assert_false(dup);
    }
    assert_true(b->wdedup.merges >= 1);
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") >= 1);
    assert_int_equal(publish_seq(a, "x", 0, &dup), x);
    assert_true(dup);
    assert_int_equal(publish_seq(b, "x", 0, &dup), x);
    assert_true(dup);
    /* Every one of B's, from A, whichever level holds it. */
    for (int i = 0; i < 20; i++) {
        publish_seq(a, "b", i, &dup);
        assert_true(dup);
    }
    /* A writer never holds much more than its bound. */
    assert_true(held(&a->wdedup) <= 8);
    assert_true(held(&b->wdedup) <= 8);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), 21);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_hashes"), 21);
    rre_queue_destroy(a);
    rre_queue_destroy(b);
}

static void test_batch_with_repeats_across_a_merge_reports_the_first_ids(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f->path, 4, false);
    enum { N = 30 };
    rre_event evs[2 * N];
    for (int i = 0; i < 2 * N; i++) {
        memset(&evs[i], 0, sizeof evs[i]);
        evs[i].type = RRE_EV_ELO_UPDATED;
        evs[i].payload = json_pack("{s:s,s:i}", "tag", "batch", "seq", i % N);
    }
    bool dups[2 * N];
    assert_int_equal(rre_queue_publish_batch(q, evs, N, dups), RRE_OK);
    assert_int_equal(rre_queue_publish_batch(q, evs + N, N, dups + N), RRE_OK);
    for (int i = 0; i < N; i++) {
        assert_false(dups[i]);
        assert_true(dups[N + i]);
        assert_int_equal(evs[N + i].event_id, evs[i].event_id);
    }
    for (int i = 0; i < 2 * N; i++)
        json_decref(evs[i].payload);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), N);
    rre_queue_destroy(q);
}

/* A transaction that fails after some of its hashes were taken in leaves
 * nothing behind: the same content is stored when published again. */
static void test_failed_batch_leaves_no_hash_behind(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f->path, 1000, false);
    bool dup;
    publish_seq(q, "before", 0, &dup);
    tu_sql_exec(f->path, "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.payload LIKE"
                         " '%boom%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    rre_event evs[3];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 3; i++)
        evs[i].type = RRE_EV_ELO_UPDATED;
    evs[0].payload = json_pack("{s:s}", "tag", "one");
    evs[1].payload = json_pack("{s:s}", "tag", "two");
    evs[2].payload = json_pack("{s:s}", "tag", "boom");
    assert_int_not_equal(rre_queue_publish_batch(q, evs, 3, NULL), RRE_OK);
    tu_sql_exec(f->path, "DROP TRIGGER refuse");
    bool dups[2];
    assert_int_equal(rre_queue_publish_batch(q, evs, 2, dups), RRE_OK);
    assert_false(dups[0]);
    assert_false(dups[1]);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), 3);
    /* And the memory was reloaded: what was stored before is still known. */
    assert_true(publish_seq(q, "before", 0, &dup) > 0);
    assert_true(dup);
    for (int i = 0; i < 3; i++)
        json_decref(evs[i].payload);
    rre_queue_destroy(q);
}

static rre_status keep_hash(const rre_event *ev, void *ud)
{
    memcpy(ud, ev->hash, RRE_HASH_SIZE);
    return RRE_OK;
}

/* A file written before the stored hashes had a table of their own keeps
 * its hashes in the index only: they still count, and it stays readable
 * read-only. */
static void test_file_of_an_earlier_release_keeps_its_dedup_entries(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f->path, 1000, false);
    bool dup;
    int64_t x = publish_seq(q, "old", 1, &dup);
    rre_queue_destroy(q);
    tu_sql_exec(f->path,
                "INSERT OR REPLACE INTO rre_dedup SELECT * FROM rre_hashes;"
                " DROP TABLE rre_hashes; DROP TABLE rre_dedup_slices; DROP TABLE rre_dedup_index;"
                " DELETE FROM rre_meta WHERE key = 'dedup_merges'");
    /* Read-only first: the table of hashes is missing; hashes are computed. */
    rre_queue *ro = open_queue(f->path, 1000, true);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    rre_subscriber *s = NULL;
    assert_int_equal(rre_subscriber_create(&s, ro, &so), RRE_OK);
    uint8_t got[RRE_HASH_SIZE] = {0};
    size_t n = 0;
    assert_int_equal(rre_subscriber_poll(s, 0, 0, keep_hash, got, &n), RRE_OK);
    assert_int_equal(n, 1);
    json_t *p = json_pack("{s:s,s:i}", "tag", "old", "seq", 1);
    uint8_t want[RRE_HASH_SIZE];
    assert_int_equal(rre_content_hash(RRE_EV_ELO_UPDATED, p, want), RRE_OK);
    json_decref(p);
    assert_memory_equal(got, want, RRE_HASH_SIZE);
    rre_subscriber_destroy(s);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(ro, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "dedup_entries")), 1);
    json_decref(stats);
    rre_queue_destroy(ro);
    q = open_queue(f->path, 1000, false);
    assert_int_equal(publish_seq(q, "old", 1, &dup), x);
    assert_true(dup);
    publish_seq(q, "new", 1, &dup);
    assert_false(dup);
    assert_int_equal(tu_sql_int(f->path, "SELECT min(indexed_upto) FROM rre_dedup_slices"), x);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_slices"),
                     RRE__QUEUE_DEDUP_SLICES);
    assert_int_equal(tu_sql_int(f->path, "SELECT CAST(value AS INTEGER) FROM rre_meta WHERE key ="
                                         " 'schema_version'"),
                     2);
    rre_queue_destroy(q);
}

/* Several processes publish the same contents at once, in batches of
 * varying size, merging every few events: each content is stored once. */
static void test_processes_publishing_the_same_contents_store_each_once(void **state)
{
    struct fixture *f = *state;
    enum { PROCS = 4, N = 600 };
    rre_queue *q = open_queue(f->path, 16, false); /* makes the schema */
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            rre_queue *c = open_queue(f->path, 16, false);
            int i = (p * 97) % N, left = N;
            unsigned seed = (unsigned)p + 1;
            while (left > 0) {
                int n = 1 + rand_r(&seed) % 20;
                if (n > left)
                    n = left;
                rre_event evs[20];
                memset(evs, 0, sizeof evs);
                for (int k = 0; k < n; k++) {
                    evs[k].type = RRE_EV_ELO_UPDATED;
                    evs[k].payload = json_pack("{s:s,s:i}", "tag", "procs", "seq", (i + k) % N);
                }
                rre_status st = rre_queue_publish_batch(c, evs, (size_t)n, NULL);
                for (int k = 0; k < n; k++)
                    json_decref(evs[k].payload);
                if (st != RRE_OK) {
                    fprintf(stderr, "child %d: %s\n", p, rre_last_error());
                    _exit(1);
                }
                i = (i + n) % N;
                left -= n;
            }
            rre_queue_destroy(c);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), N);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(DISTINCT payload) FROM events"), N);
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") > 0);
    rre_queue_destroy(q);
}

/* A merge that fails (here a trigger refuses every insert into the index;
 * in life a full disk) is put off: the events of the transaction are
 * stored, nothing is reported twice, and once merges work again the
 * hashes reach the index. */
static void test_failed_merge_is_put_off_and_the_events_are_stored(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f->path, 4, false);
    bool dup;
    publish_seq(q, "first", 0, &dup);
    tu_sql_exec(f->path, "CREATE TRIGGER refuse BEFORE INSERT ON rre_dedup_index BEGIN"
                         " SELECT RAISE(ABORT, 'refused by the test'); END");
    int64_t ids[20];
    for (int i = 0; i < 20; i++) {
        ids[i] = publish_seq(q, "refused", i, &dup);
        assert_false(dup);
    }
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index"), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(publish_seq(q, "refused", i, &dup), ids[i]);
        assert_true(dup);
    }
    tu_sql_exec(f->path, "DROP TRIGGER refuse");
    publish_seq(q, "after", 0, &dup);
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") >= 16);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(publish_seq(q, "refused", i, &dup), ids[i]);
        assert_true(dup);
    }
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), 22);
    rre_queue_destroy(q);
}

/* Content whose first copy is past the window, in memory or already in the
 * index, is stored again, and the new copy is the one later duplicates
 * name. */
static void test_content_past_its_window_is_stored_again_from_either_level(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    o.dedup_window_seconds = 0.3;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    q->dedup_mem_max = 4;
    bool dup;
    int64_t first[10];
    for (int i = 0; i < 10; i++)
        first[i] = publish_seq(q, "aged", i, &dup);
    /* Most are in the index now, a few in memory. */
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") >= 6);
    usleep(400 * 1000);
    for (int i = 0; i < 10; i++) {
        int64_t again = publish_seq(q, "aged", i, &dup);
        assert_false(dup);
        assert_true(again > first[i]);
        assert_int_equal(publish_seq(q, "aged", i, &dup), again);
        assert_true(dup);
    }
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), 20);
    rre_queue_destroy(q);
}

static void import_row(rre__import_row *r, const char *tag, int seq, char *text, size_t cap)
{
    memset(r, 0, sizeof *r);
    json_t *p = json_pack("{s:s,s:i}", "tag", tag, "seq", seq);
    char *canon = NULL;
    assert_int_equal(rre_canonical_json(p, &canon, NULL), RRE_OK);
    snprintf(text, cap, "%s", canon);
    free(canon);
    assert_int_equal(rre_content_hash(RRE_EV_ELO_UPDATED, p, r->hash), RRE_OK);
    json_decref(p);
    r->spelling = rre_event_get(RRE_EV_ELO_UPDATED)->queue_spelling;
    r->payload_text = text;
    r->payload_len = strlen(text);
    r->source = "elsewhere";
    r->hostname = "otherhost";
}

/* The bridge's importer and a publisher share the dedup, merges included:
 * what one stored, the other does not store again. */
static void test_imported_and_published_copies_are_stored_once(void **state)
{
    struct fixture *f = *state;
    enum { N = 40 };
    rre_queue *q = open_queue(f->path, 4, false);
    rre__importer *im = NULL;
    assert_int_equal(rre__importer_open(q, &im), RRE_OK);
    static char texts[2 * N][128];
    rre__import_row rows[N];
    for (int i = 0; i < N; i++)
        import_row(&rows[i], "imported", i, texts[i], sizeof texts[i]);
    assert_int_equal(rre__importer_append(im, rows, N, "test", 1), RRE_OK);
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        assert_false(rows[i].duplicate);
        ids[i] = rows[i].event_id;
    }
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") >= N - 4);
    bool dup;
    for (int i = 0; i < N; i++) {
        assert_int_equal(publish_seq(q, "imported", i, &dup), ids[i]);
        assert_true(dup);
    }
    /* And the other way round. */
    int64_t pub[N];
    for (int i = 0; i < N; i++)
        pub[i] = publish_seq(q, "published", i, &dup);
    for (int i = 0; i < N; i++)
        import_row(&rows[i], "published", i, texts[N + i], sizeof texts[N + i]);
    assert_int_equal(rre__importer_append(im, rows, N, "test", 2), RRE_OK);
    for (int i = 0; i < N; i++) {
        assert_true(rows[i].duplicate);
        assert_int_equal(rows[i].event_id, pub[i]);
    }
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM events"), 2 * N);
    rre__importer_close(im);
    rre_queue_destroy(q);
}

/* Retention deletes expired hashes from both levels, and counts them once. */
static void test_retention_deletes_expired_hashes_from_both_levels(void **state)
{
    struct fixture *f = *state;
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.hostname = "testhost";
    o.maintenance_interval_ms = -1;
    o.dedup_window_seconds = 0.2;
    rre_queue *q = NULL;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    q->dedup_mem_max = 4;
    bool dup;
    for (int i = 0; i < 300; i++)
        publish_seq(q, "expiring", i, &dup);
    assert_true(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index") >= 296);
    usleep(300 * 1000);
    publish_seq(q, "fresh", 0, &dup);
    rre_queue_purge_result r;
    assert_int_equal(rre_queue_purge(q, 3600, &r), RRE_OK);
    assert_int_equal(r.dedup, 300);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_hashes"), 1);
    assert_int_equal(tu_sql_int(f->path, "SELECT count(*) FROM rre_dedup_index WHERE first_seen <"
                                         " (SELECT first_seen FROM rre_hashes)"),
                     0);
    /* Still found after the purge: the fresh one. */
    publish_seq(q, "fresh", 0, &dup);
    assert_true(dup);
    rre_queue_destroy(q);
}

/* A file whose layout is later than this library's is not written (its
 * writers would keep dedup records this one does not read); it can still
 * be read. */
static void test_file_of_a_later_release_is_refused_for_writing(void **state)
{
    struct fixture *f = *state;
    rre_queue *q = open_queue(f->path, 0, false);
    bool dup;
    publish_seq(q, "later", 0, &dup);
    rre_queue_destroy(q);
    tu_sql_exec(f->path, "UPDATE rre_meta SET value = '7' WHERE key = 'schema_version'");
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = f->path;
    o.maintenance_interval_ms = -1;
    assert_int_equal(rre_queue_create(&q, &o), RRE_EDB);
    assert_non_null(strstr(rre_last_error(), "later release"));
    o.read_only = true;
    assert_int_equal(rre_queue_create(&q, &o), RRE_OK);
    json_t *stats = NULL;
    assert_int_equal(rre_queue_stats(q, &stats), RRE_OK);
    assert_int_equal(json_integer_value(json_object_get(stats, "events")), 1);
    json_decref(stats);
    rre_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_same_content_from_two_handles_is_stored_once_across_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_batch_with_repeats_across_a_merge_reports_the_first_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_leaves_no_hash_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_of_an_earlier_release_keeps_its_dedup_entries,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_publishing_the_same_contents_store_each_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_merge_is_put_off_and_the_events_are_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_content_past_its_window_is_stored_again_from_either_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imported_and_published_copies_are_stored_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retention_deletes_expired_hashes_from_both_levels,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_of_a_later_release_is_refused_for_writing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
