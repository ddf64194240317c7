/*
 * lazy_libraries_test.c - libcrypto and libnats are opened on first use: a
 * process that only consumes rows this library wrote (their hashes are
 * stored) maps neither them nor libssl; the first hash maps libcrypto, the
 * first bridge libnats; and when the library found under that name is not
 * one that has the functions, the call that needed it fails with a
 * message naming it.
 *
 * Each check runs in a fresh program (this one, started again with
 * --child), since a forked child would inherit what the test has mapped.
 * This program links neither library itself.
 */
#include "testutil.h"

#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EVENTS 200

/* The first line of /proc/self/maps that names `what`, or NULL. */
static char *mapped(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return NULL;
    static char line[1024];
    char *found = NULL;
    while (found == NULL && fgets(line, sizeof line, f) != NULL)
        if (strstr(line, what) != NULL)
            found = line;
    fclose(f);
    return found;
}

static int fail_child(const char *why, const char *detail)
{
    fprintf(stderr, "child: %s%s%s\n", why, detail != NULL ? ": " : "", detail ? detail : "");
    return 3;
}

static rre_status count(const rre_event *ev, void *user_data)
{
    (void)ev;
    (*(int *)user_data)++;
    return RRE_OK;
}

static rre_queue *open_queue(const char *db)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = db;
    qo.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    return rre_queue_create(&q, &qo) == RRE_OK ? q : NULL;
}

static rre_status hash_one(void)
{
    uint8_t hash[RRE_HASH_SIZE];
    json_t *p = json_pack("{s:i}", "n", 1);
    rre_status st = rre_content_hash(RRE_EV_ELO_UPDATED, p, hash);
    json_decref(p);
    return st;
}

/* Makes (and destroys) a bridge on `q`, never connected: it is not run. */
static rre_status make_bridge(rre_queue *q, bool *nats_mapped)
{
    rre_bridge_options bo;
    rre_bridge_options_init(&bo);
    bo.servers = "nats://127.0.0.1:1";
    bo.host = "lazyhost";
    rre_bridge *b = NULL;
    rre_status st = rre_bridge_create(&b, q, &bo);
    *nats_mapped = mapped("libnats") != NULL;
    if (st == RRE_OK)
        rre_bridge_destroy(b);
    return st;
}

/* --child DB hash-missing|bridge-missing: run with the stand-ins first on
 * LD_LIBRARY_PATH, the call that needs the library fails with its status
 * and a message naming it; nothing crashes. */
static int child_missing(rre_queue *q, const char *what)
{
    rre_status st, want;
    const char *soname;
    if (strcmp(what, "hash-missing") == 0) {
        st = hash_one();
        /* Every later hash says the same, and so does a publish. */
        if (hash_one() != st)
            return fail_child("a second hash fails otherwise", rre_last_error());
        json_t *p = json_pack("{s:i}", "n", 1);
        if (st != RRE_OK)
            st = rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "t", NULL, NULL, NULL);
        json_decref(p);
        soname = RRE_TEST_LIBCRYPTO_SONAME;
        want = RRE_ECRYPTO;
    } else {
        bool nats_mapped;
        st = make_bridge(q, &nats_mapped);
        soname = RRE_TEST_LIBNATS_SONAME;
        want = RRE_ENATS;
    }
    if (st != want)
        return fail_child("not the status expected", rre_status_name(st));
    if (strstr(rre_last_error(), soname) == NULL)
        return fail_child("the message does not name the library", rre_last_error());
    return 0;
}

/* --child DB consume|hash|bridge: consumes the stored rows first. */
static int child_consume(rre_queue *q, const char *what)
{
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.name = "lazy";
    rre_subscriber *s = NULL;
    if (rre_subscriber_create(&s, q, &so) != RRE_OK)
        return fail_child("subscribing", rre_last_error());
    int got = 0;
    for (int i = 0; i < 100 && got < EVENTS; i++)
        if (rre_subscriber_poll(s, 1000, 0, count, &got, NULL) != RRE_OK)
            return fail_child("polling", rre_last_error());
    rre_subscriber_destroy(s);
    if (got != EVENTS)
        return fail_child("not every event came", NULL);
    /* Consuming stored rows needs neither library. */
    const char *names[] = {"libcrypto", "libssl", "libnats"};
    for (size_t i = 0; i < 3; i++)
        if (mapped(names[i]) != NULL)
            return fail_child("mapped while only consuming", mapped(names[i]));
    if (strcmp(what, "hash") == 0) {
        if (hash_one() != RRE_OK)
            return fail_child("hashing", rre_last_error());
        if (mapped("libcrypto") == NULL)
            return fail_child("libcrypto is not mapped after a hash", NULL);
        if (mapped("libnats") != NULL)
            return fail_child("libnats is mapped after a hash", NULL);
    } else if (strcmp(what, "bridge") == 0) {
        bool nats_mapped;
        if (make_bridge(q, &nats_mapped) != RRE_OK)
            return fail_child("making a bridge", rre_last_error());
        if (!nats_mapped)
            return fail_child("libnats is not mapped after making a bridge", NULL);
    }
    return 0;
}

static int child(const char *db, const char *what)
{
    rre_queue *q = open_queue(db);
    if (q == NULL)
        return fail_child("opening the queue", rre_last_error());
    int rc = strstr(what, "-missing") != NULL ? child_missing(q, what) : child_consume(q, what);
    rre_queue_destroy(q);
    return rc;
}

static int run_child(const char *db, const char *what)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (strstr(what, "-missing") != NULL)
            setenv("LD_LIBRARY_PATH", RRE_TEST_FAKE_LIBS, 1);
        execl("/proc/self/exe", "lazy_libraries_test", "--child", db, what, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *filled_queue(char **dir)
{
    *dir = tu_mkdtemp();
    char *db = malloc(600);
    assert_non_null(db);
    snprintf(db, 600, "%s/events.db", *dir);
    rre_queue *q = open_queue(db);
    assert_non_null(q);
    for (int i = 0; i < EVENTS; i++) {
        json_t *p = json_pack("{s:s, s:i}", "config_key", "hex8_2p", "n", i);
        assert_int_equal(rre_queue_publish(q, RRE_EV_ELO_UPDATED, p, "test", NULL, NULL, NULL),
                         RRE_OK);
        json_decref(p);
    }
    rre_queue_destroy(q);
    return db;
}

/* Runs the child check `what` against a queue of stored rows. */
static void check_in_child(const char *what)
{
    char *dir;
    char *db = filled_queue(&dir);
    assert_int_equal(run_child(db, what), 0);
    free(db);
    tu_rmtree(dir);
    free(dir);
}

static void test_a_consumer_of_stored_rows_maps_no_crypto_nor_nats(void **state)
{
    (void)state;
    check_in_child("consume");
}

static void test_the_first_hash_maps_libcrypto_and_not_libnats(void **state)
{
    (void)state;
    check_in_child("hash");
}

static void test_the_first_bridge_maps_libnats(void **state)
{
    (void)state;
    check_in_child("bridge");
}

static void test_a_hash_without_a_usable_libcrypto_fails_naming_it(void **state)
{
    (void)state;
    check_in_child("hash-missing");
}

static void test_a_bridge_without_a_usable_libnats_fails_naming_it(void **state)
{
    (void)state;
    check_in_child("bridge-missing");
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_consumer_of_stored_rows_maps_no_crypto_nor_nats),
        cmocka_unit_test(test_the_first_hash_maps_libcrypto_and_not_libnats),
        cmocka_unit_test(test_the_first_bridge_maps_libnats),
        cmocka_unit_test(test_a_hash_without_a_usable_libcrypto_fails_naming_it),
        cmocka_unit_test(test_a_bridge_without_a_usable_libnats_fails_naming_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
