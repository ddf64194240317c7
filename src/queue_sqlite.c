/*
 * queue_sqlite.c - the durable queue over the shared SQLite file: locating
 * and opening the file, the compatible schema, connection set-up, error
 * mapping, retried transactions, and publishing with group commit.
 *
 * The contract with the Python processes that share the file is in
 * include/rre/queue.h and docs/QUEUE.md. The threading design of publishing
 * is described on struct rre_queue in queue_sqlite.h.
 */
#include "canonical.h"
#include "queue_sqlite.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* This process's id, without a system call per publish (glibc no longer
 * caches getpid(), and a system call is slow on a virtual machine):
 * read once, then again in the child of every fork() (an atfork handler),
 * which is where it changes. */
static atomic_int cached_pid;
static bool cached_pid_ok; /* the atfork handler is registered (written once) */
static pthread_once_t cached_pid_once = PTHREAD_ONCE_INIT;

static void cached_pid_reset(void)
{
    atomic_store(&cached_pid, (int)getpid());
}

static void cached_pid_init(void)
{
    cached_pid_reset();
    cached_pid_ok = pthread_atfork(NULL, NULL, cached_pid_reset) == 0;
}

static pid_t current_pid(void)
{
    pthread_once(&cached_pid_once, cached_pid_init);
    if (!cached_pid_ok) /* no handler to follow a fork: ask each time */
        return getpid();
    return (pid_t)atomic_load_explicit(&cached_pid, memory_order_relaxed);
}

/* The Python side's schema, exactly as it creates it. Never altered. */
static const char PYTHON_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " event_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_type TEXT NOT NULL,"
    " payload TEXT NOT NULL DEFAULT '{}',"
    " source TEXT NOT NULL DEFAULT '',"
    " hostname TEXT NOT NULL DEFAULT '',"
    " created_at REAL NOT NULL,"
    " INDEX_event_type TEXT GENERATED ALWAYS AS (event_type) STORED);"
    "CREATE TABLE IF NOT EXISTS subscribers ("
    " subscriber_id TEXT PRIMARY KEY,"
    " process_name TEXT NOT NULL,"
    " hostname TEXT NOT NULL,"
    " pid INTEGER NOT NULL,"
    " subscribed_types TEXT NOT NULL DEFAULT '[]',"
    " last_poll_at REAL NOT NULL,"
    " created_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS acks ("
    " subscriber_id TEXT NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " acked_at REAL NOT NULL,"
    " PRIMARY KEY (subscriber_id, event_id),"
    " FOREIGN KEY (subscriber_id) REFERENCES subscribers(subscriber_id),"
    " FOREIGN KEY (event_id) REFERENCES events(event_id));"
    "CREATE INDEX IF NOT EXISTS idx_events_type ON events(event_type);"
    "CREATE INDEX IF NOT EXISTS idx_events_created ON events(created_at);"
    "CREATE INDEX IF NOT EXISTS idx_acks_subscriber ON acks(subscriber_id);"
    "CREATE INDEX IF NOT EXISTS idx_acks_event ON acks(event_id);";

/* Tables of our own; Python ignores them. */
static const char RRE_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS rre_meta ("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rre_dedup ("
    " event_id INTEGER PRIMARY KEY,"
    " hash BLOB NOT NULL UNIQUE,"
    " first_seen REAL NOT NULL);"
    /* Every stored hash, appended; rre_dedup indexes those of each slice of
     * the hash space up to the slice's indexed_upto (see queue_dedup.c). A
     * file made before these tables has its hashes in rre_dedup only: all of
     * them count as indexed. */
    "CREATE TABLE IF NOT EXISTS rre_hashes ("
    " event_id INTEGER PRIMARY KEY,"
    " hash BLOB NOT NULL,"
    " first_seen REAL NOT NULL);"
    /* The index of the older hashes, ordered by hash alone (no rowid), so
     * a merge of one slice writes one stretch of it. rre_dedup, its form
     * before, is copied in once and no longer written. */
    "CREATE TABLE IF NOT EXISTS rre_dedup_index ("
    " hash BLOB PRIMARY KEY,"
    " event_id INTEGER NOT NULL,"
    " first_seen REAL NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rre_dedup_slices ("
    " slice INTEGER PRIMARY KEY,"
    " indexed_upto INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO rre_dedup_index(hash, event_id, first_seen)"
    " SELECT hash, event_id, first_seen FROM rre_dedup WHERE length(hash) = 32 AND"
    " NOT EXISTS (SELECT 1 FROM rre_dedup_slices);"
    "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 63)"
    " INSERT OR IGNORE INTO rre_dedup_slices(slice, indexed_upto)"
    " SELECT n, (SELECT ifnull(max(event_id), 0) FROM rre_dedup) FROM s;"
    "CREATE TABLE IF NOT EXISTS rre_cursors ("
    " subscriber_id TEXT PRIMARY KEY,"
    " last_event_id INTEGER NOT NULL,"
    " updated_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rre_leases ("
    " subscriber_id TEXT PRIMARY KEY,"
    " hostname TEXT NOT NULL,"
    " pid INTEGER NOT NULL,"
    " start_time INTEGER NOT NULL,"
    " token INTEGER NOT NULL,"
    " heartbeat REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rre_poison ("
    " event_id INTEGER PRIMARY KEY,"
    " reason TEXT NOT NULL,"
    " first_seen REAL NOT NULL);"
    /* Events a durable subscriber's handler failed on, waiting for their
     * next attempt: a copy of the event, so that retention of `events`
     * never loses one. */
    "CREATE TABLE IF NOT EXISTS rre_retries ("
    " subscriber_id TEXT NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " event_type TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " hostname TEXT NOT NULL,"
    " created_at REAL NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " first_failed_at REAL NOT NULL,"
    " due_at REAL NOT NULL,"
    " error TEXT NOT NULL,"
    " PRIMARY KEY (subscriber_id, event_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS rre_retries_due ON rre_retries(subscriber_id, due_at);"
    /* Events given up on, kept until an operator replays or drops them. */
    "CREATE TABLE IF NOT EXISTS rre_dead_letters ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " subscriber_id TEXT NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " event_type TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " hostname TEXT NOT NULL,"
    " created_at REAL NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " first_failed_at REAL NOT NULL,"
    " dead_at REAL NOT NULL,"
    " error TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS rre_dead_letters_subscriber ON"
    " rre_dead_letters(subscriber_id, id);"
    "INSERT OR IGNORE INTO rre_meta(key, value) VALUES ('schema_version', '2');"
    /* 1: before rre_hashes and the dedup index (opened here, it is brought
     * to 2 by the statements above). */
    "UPDATE rre_meta SET value = '2' WHERE key = 'schema_version' AND"
    " CAST(value AS INTEGER) < 2;";

/* The layout of our tables this library writes; a file of a later one is
 * not written (a later release may keep its dedup hashes elsewhere). */
#define SCHEMA_VERSION 2

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

int rre__queue_run(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    for (int i = 1; fmt[i - 1] != '\0'; i++) {
        switch (fmt[i - 1]) {
        case 't':
            sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
            break;
        case 'i':
            sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        default:
            sqlite3_bind_double(st, i, va_arg(ap, double));
            break;
        }
    }
    va_end(ap);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

void rre__queue_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc != 0)
        rre__panic("queue: pthread_mutex_lock failed: %s", strerror(rc));
}

void rre__queue_unlock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_unlock(m);
    if (rc != 0)
        rre__panic("queue: pthread_mutex_unlock failed: %s", strerror(rc));
}

double rre__queue_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

int64_t rre__queue_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long rre__process_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may contain spaces and parentheses: fields resume
     * after the last ')'. Field 3 (state) follows; start time is field 22. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p++;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL)
        return -1;
    return strtoll(p + 1, NULL, 10);
}

bool rre__queue_is_busy(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

void rre__queue_backoff(int attempt)
{
    /* 20 us doubling to 2 ms: short enough to keep latency low when the
     * lock is held briefly, long enough not to burn a core. */
    long us = 20L << (attempt < 7 ? attempt : 7);
    if (us > 2000)
        us = 2000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

rre_status rre__queue_sqlite_error(sqlite3 *db, int rc, const char *what)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    rre_status st;
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        st = RRE_ECORRUPT;
        break;
    case SQLITE_FULL:
        st = RRE_EFULL;
        break;
    case SQLITE_READONLY:
        st = RRE_EREADONLY;
        break;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PERM:
        st = RRE_EIO;
        break;
    case SQLITE_NOMEM:
        st = RRE_ENOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        st = RRE_ETIMEOUT;
        break;
    default:
        st = RRE_EDB;
        break;
    }
    return rre__error(st, "%s: %s (SQLite code %d)", what, msg, rc);
}

/* The busy handler: the handler SQLite calls while another connection holds
 * a lock. It sleeps in short steps so a lock held for microseconds costs
 * microseconds, and gives up after the busy timeout, which `arg` carries. */
static int busy_handler(void *arg, int count)
{
    long timeout_ms = (long)(intptr_t)arg;
    /* The first 100 waits are 50 us each (5 ms), later ones 1 ms. */
    long waited_ms = count < 100 ? count / 20 : 5 + (count - 100);
    if (waited_ms >= timeout_ms)
        return 0;
    struct timespec ts = {0, (count < 100 ? 50L : 1000L) * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

rre_status rre__queue_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
        if (rc == SQLITE_OK)
            return RRE_OK;
        if (!rre__queue_is_busy(rc) || attempt > 20000)
            return rre__queue_sqlite_error(db, rc, "preparing a statement");
        rre__queue_backoff(attempt);
    }
}

static int exec_simple(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

rre_status rre__queue_write_txn(const rre_queue *q, sqlite3 *db, const char *what,
                                int (*body)(sqlite3 *db, void *ctx, rre_status *body_status),
                                void *ctx)
{
    int64_t deadline = rre__queue_mono_ms() + q->busy_timeout_ms;
    for (int attempt = 0;; attempt++) {
        int rc = exec_simple(db, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK) {
            rre_status body_status = RRE_OK;
            rc = body(db, ctx, &body_status);
            if (rc == SQLITE_OK || rc == SQLITE_DONE)
                rc = exec_simple(db, "COMMIT");
            if (rc == SQLITE_OK)
                return RRE_OK;
            rre_status st = RRE_OK;
            if (rc == SQLITE_ABORT && body_status != RRE_OK)
                st = body_status; /* the body's own error; message already set */
            else if (!rre__queue_is_busy(rc))
                st = rre__queue_sqlite_error(db, rc, what);
            if (sqlite3_get_autocommit(db) == 0)
                exec_simple(db, "ROLLBACK");
            if (st != RRE_OK)
                return st;
        } else if (!rre__queue_is_busy(rc)) {
            return rre__queue_sqlite_error(db, rc, what);
        }
        if (rre__queue_mono_ms() > deadline)
            return rre__error(RRE_ETIMEOUT, "%s: the database stayed locked for %d ms", what,
                              q->busy_timeout_ms);
        rre__queue_backoff(attempt);
    }
}

/* ------------------------------------------------------------------------ */
/* Locating and opening the file                                             */
/* ------------------------------------------------------------------------ */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

rre_status rre_queue_default_path(char *buf, size_t cap)
{
    if (buf == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_default_path: buf is NULL");
    const char *dir;
    int n;
    if ((dir = env_nonempty("RINGRIFT_COORDINATION_DIR")) != NULL)
        n = snprintf(buf, cap, "%s/%s", dir, RRE_QUEUE_FILE_NAME);
    else if ((dir = env_nonempty("XDG_RUNTIME_DIR")) != NULL)
        n = snprintf(buf, cap, "%s/ringrift_coordination/%s", dir, RRE_QUEUE_FILE_NAME);
    else if (getuid() == 0)
        n = snprintf(buf, cap, "/tmp/ringrift_coordination/%s", RRE_QUEUE_FILE_NAME);
    else
        n = snprintf(buf, cap, "/tmp/ringrift_coordination_%lu/%s", (unsigned long)getuid(),
                     RRE_QUEUE_FILE_NAME);
    if (n < 0 || (size_t)n >= cap)
        return rre__error(RRE_ELIMIT, "the default queue path does not fit in %zu bytes", cap);
    return RRE_OK;
}

/* Creates every missing directory of `dir` (mode 0700). */
static rre_status make_dirs(const char *dir)
{
    char *tmp = strdup(dir);
    if (tmp == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    size_t len = strlen(tmp);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            rre_status st =
                rre__error(RRE_EIO, "cannot create directory '%s': %s", tmp, strerror(errno));
            free(tmp);
            return st;
        }
        tmp[i] = saved;
    }
    free(tmp);
    return RRE_OK;
}

rre_status rre__queue_check_private_dir(const char *dir)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0)
        return rre__error(RRE_EIO, "cannot use directory '%s': %s", dir, strerror(errno));
    if (S_ISLNK(sb.st_mode))
        return rre__error(RRE_EIO,
                          "'%s' is a symbolic link: the shared location under /tmp must be a "
                          "directory of this user's (set RINGRIFT_COORDINATION_DIR to choose "
                          "another)",
                          dir);
    if (!S_ISDIR(sb.st_mode))
        return rre__error(RRE_EIO, "'%s' is not a directory", dir);
    if (sb.st_uid != geteuid())
        return rre__error(RRE_EIO,
                          "'%s' belongs to uid %lu, not to this user (uid %lu): refusing to keep "
                          "the queue in a directory another user controls (set "
                          "RINGRIFT_COORDINATION_DIR to choose another)",
                          dir, (unsigned long)sb.st_uid, (unsigned long)geteuid());
    if (sb.st_mode & (S_IWGRP | S_IWOTH))
        return rre__error(RRE_EIO,
                          "'%s' can be written by %s (mode %03o): another user could replace the "
                          "queue's files; make it private (chmod go-w '%s') or set "
                          "RINGRIFT_COORDINATION_DIR to choose another directory",
                          dir, (sb.st_mode & S_IWOTH) ? "every user" : "its group",
                          (unsigned)(sb.st_mode & 0777), dir);
    return RRE_OK;
}

rre_status rre__queue_check_private_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char name[4200];
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        struct stat sb;
        if (lstat(name, &sb) != 0)
            continue; /* not there yet: made by this process, with its owner */
        if (S_ISLNK(sb.st_mode))
            return rre__error(RRE_EIO,
                              "'%s' is a symbolic link: the queue's files in the shared location "
                              "under /tmp must be this user's own (remove it, or set "
                              "RINGRIFT_COORDINATION_DIR to choose another directory)",
                              name);
        if (sb.st_uid != geteuid())
            return rre__error(RRE_EIO,
                              "'%s' belongs to uid %lu, not to this user (uid %lu): refusing a "
                              "queue file another user controls (remove it, or set "
                              "RINGRIFT_COORDINATION_DIR to choose another directory)",
                              name, (unsigned long)sb.st_uid, (unsigned long)geteuid());
    }
    return RRE_OK;
}

/* Creates the database file with mode 0600 when it does not exist, so SQLite
 * (which gives the -wal and -shm files the database's mode) never creates it
 * with the umask's. */
static rre_status create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return RRE_OK;
    }
    if (errno == EEXIST)
        return RRE_OK;
    if (errno == EACCES || errno == EROFS)
        return rre__error(RRE_EREADONLY, "cannot create '%s': %s", path, strerror(errno));
    return rre__error(RRE_EIO, "cannot create '%s': %s", path, strerror(errno));
}

/* Opens `name` and applies the pragmas; returns a SQLite code and leaves a
 * failed connection in *out for its error message. */
static int open_connection(const rre_queue *q, const char *name, int flags, int cache_kib,
                           sqlite3 **out)
{
    int rc = sqlite3_open_v2(name, out, flags, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3 *db = *out;
    sqlite3_busy_handler(db, busy_handler, (void *)(intptr_t)q->busy_timeout_ms);
    char sql[256];
    snprintf(sql, sizeof sql,
             "PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=500; PRAGMA cache_size=-%d;"
             " PRAGMA temp_store=MEMORY;",
             q->sync == RRE_QUEUE_SYNC_FULL ? "FULL" : "NORMAL", cache_kib);
    rc = exec_simple(db, sql);
    if (rc == SQLITE_OK && q->max_page_count > 0) {
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)q->max_page_count);
        rc = exec_simple(db, sql);
    }
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_READONLY))
        rc = exec_simple(db, "SELECT count(*) FROM sqlite_master");
    return rc;
}

/* The file URI of `path` with `immutable=1`, for reading a WAL database in
 * a directory where the -shm file cannot be created. */
static char *immutable_uri(const char *path)
{
    size_t len = strlen(path);
    char *uri = malloc(len * 3 + 32);
    if (uri == NULL)
        return NULL;
    char *o = uri + sprintf(uri, "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            o += sprintf(o, "%%%02X", (unsigned char)*p);
        else
            *o++ = *p;
    }
    strcpy(o, "?immutable=1");
    return uri;
}

rre_status rre__queue_connect(const rre_queue *q, sqlite3 **out, int cache_kib)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int flags = (q->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = open_connection(q, q->path, flags, cache_kib, &db);
    int primary = rc & 0xff;
    if (q->read_only && (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN)) {
        /* A WAL database whose directory we cannot write: read a snapshot. */
        char *uri = immutable_uri(q->path);
        if (uri != NULL) {
            sqlite3_close(db);
            db = NULL;
            rc = open_connection(q, uri, flags | SQLITE_OPEN_URI, cache_kib, &db);
            free(uri);
            if (rc == SQLITE_OK)
                rre__log(RRE_LOG_WARN, "queue",
                         "'%s' is in a directory this process cannot write: reading it as it "
                         "is now, without seeing later changes",
                         q->path);
        }
    }
    if (rc != SQLITE_OK) {
        rre_status st = rre__queue_sqlite_error(db, rc, "opening the queue database");
        sqlite3_close(db);
        return st;
    }
    *out = db;
    return RRE_OK;
}

/* Switches the file to WAL (needs a write lock when the file is new) and
 * checks it stayed WAL. */
static rre_status set_wal(rre_queue *q, sqlite3 *db)
{
    int64_t deadline = rre__queue_mono_ms() + q->busy_timeout_ms;
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            bool wal = mode != NULL && strcmp(mode, "wal") == 0;
            sqlite3_finalize(st);
            if (!wal && !q->read_only)
                return rre__error(RRE_EDB,
                                  "the queue database stays in journal mode '%s', "
                                  "not WAL",
                                  mode != NULL ? mode : "?");
            return RRE_OK;
        }
        sqlite3_finalize(st);
        if (!rre__queue_is_busy(rc))
            return rre__queue_sqlite_error(db, rc, "switching the queue database to WAL");
        if (rre__queue_mono_ms() > deadline)
            return rre__error(RRE_ETIMEOUT, "switching to WAL: the database stayed locked");
        rre__queue_backoff(attempt);
    }
}

static int schema_body(sqlite3 *db, void *ctx, rre_status *body_status)
{
    (void)ctx;
    (void)body_status;
    int rc = exec_simple(db, PYTHON_SCHEMA);
    if (rc == SQLITE_OK)
        rc = exec_simple(db, RRE_SCHEMA);
    return rc;
}

/* True when all tables exist already, so opening takes no write lock. */
static bool schema_present(sqlite3 *db, bool *ok)
{
    sqlite3_stmt *st = NULL;
    *ok = true;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN"
                                " ('events','subscribers','acks','rre_meta','rre_dedup',"
                                "'rre_hashes','rre_dedup_index','rre_dedup_slices','rre_cursors',"
                                "'rre_leases','rre_poison','rre_retries','rre_dead_letters')",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    bool present = rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 13;
    if (rc != SQLITE_ROW) {
        *ok = false;
        rre__queue_sqlite_error(db, rc, "reading the queue schema");
    }
    sqlite3_finalize(st);
    return present;
}

int64_t rre__queue_query_int(sqlite3 *db, const char *sql, int64_t fallback)
{
    sqlite3_stmt *st = NULL;
    int64_t v = fallback;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Refuses to write a file whose layout of our tables is later than this
 * library's: its processes would not see each other's dedup hashes. */
static rre_status check_version(rre_queue *q, sqlite3 *db)
{
    int64_t version = rre__queue_query_int(
        db, "SELECT CAST(value AS INTEGER) FROM rre_meta WHERE key = 'schema_version'", 0);
    if (version <= SCHEMA_VERSION)
        return RRE_OK;
    if (q->read_only) {
        rre__log(RRE_LOG_WARN, "queue",
                 "'%s' has the layout of a later release (%lld; this library writes %d): "
                 "reading its events only",
                 q->path, (long long)version, SCHEMA_VERSION);
        return RRE_OK;
    }
    return rre__error(RRE_EDB,
                      "'%s' was written by a later release of this library (layout %lld; this "
                      "one knows up to %d): use that release, since processes of different "
                      "releases would not see each other's dedup records",
                      q->path, (long long)version, SCHEMA_VERSION);
}

static rre_status init_schema(rre_queue *q, sqlite3 *db)
{
    bool ok;
    rre_status st;
    int64_t deadline = rre__queue_mono_ms() + q->busy_timeout_ms;
    for (int attempt = 0;; attempt++) {
        bool present = schema_present(db, &ok);
        if (ok) {
            if (present)
                return check_version(q, db);
            break;
        }
        int rc = sqlite3_extended_errcode(db);
        if (!rre__queue_is_busy(rc))
            return rre__queue_sqlite_error(db, rc, "reading the queue schema");
        if (rre__queue_mono_ms() > deadline)
            return rre__error(RRE_ETIMEOUT, "reading the queue schema: the database stayed "
                                            "locked");
        rre__queue_backoff(attempt);
    }
    if (q->read_only) {
        /* A read-only queue can read a file that has at least Python's tables. */
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM events LIMIT 1", -1, &s, NULL);
        sqlite3_finalize(s);
        if (rc != SQLITE_OK)
            return rre__error(RRE_ENOTFOUND, "'%s' has no events table", q->path);
        return RRE_OK;
    }
    st = rre__queue_write_txn(q, db, "creating the queue tables", schema_body, NULL);
    if (st == RRE_OK)
        st = check_version(q, db);
    return st;
}

static char *xstrdup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static double env_double(const char *name, double fallback)
{
    const char *v = env_nonempty(name);
    if (v == NULL)
        return fallback;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d > 0)) {
        rre__log(RRE_LOG_WARN, "queue", "ignoring %s='%s': not a positive number", name, v);
        return fallback;
    }
    return d;
}

void rre_queue_options_init(rre_queue_options *opts)
{
    if (opts != NULL)
        memset(opts, 0, sizeof *opts);
}

const char *rre_queue_path(const rre_queue *q)
{
    return q != NULL ? q->path : NULL;
}

const char *rre_queue_hostname(const rre_queue *q)
{
    return q != NULL ? q->hostname : NULL;
}

rre_status rre_queue_create(rre_queue **out, const rre_queue_options *opts)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_create: out is NULL");
    *out = NULL;
    rre_queue_options defaults;
    rre_queue_options_init(&defaults);
    if (opts == NULL)
        opts = &defaults;

    /* A name the queue would have to cut would no longer be the host's:
     * rows written under it would not match it (the bridge's own rows). */
    if (opts->hostname != NULL && strlen(opts->hostname) > RRE_HOSTNAME_MAX)
        return rre__error(RRE_EINVAL, "the host name is longer than %d bytes", RRE_HOSTNAME_MAX);
    /* Nothing that is not UTF-8 is ever written to a column. */
    if (opts->hostname != NULL && !rre__utf8_valid(opts->hostname, strlen(opts->hostname)))
        return rre__error(RRE_EINVAL, "the host name is not valid UTF-8");
    if (opts->default_source != NULL &&
        !rre__utf8_valid(opts->default_source, strlen(opts->default_source)))
        return rre__error(RRE_EINVAL, "the default source is not valid UTF-8");
    rre_queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    char pathbuf[4096];
    rre_status st = RRE_OK;
    /* The last fallback of the location rules is a directory under /tmp,
     * where anyone may have created it first. */
    bool under_tmp = (opts->path == NULL || opts->path[0] == '\0') &&
                     env_nonempty("RINGRIFT_COORDINATION_DIR") == NULL &&
                     env_nonempty("XDG_RUNTIME_DIR") == NULL;
    if (opts->path != NULL && opts->path[0] != '\0') {
        q->path = strdup(opts->path);
    } else {
        st = rre_queue_default_path(pathbuf, sizeof pathbuf);
        q->path = st == RRE_OK ? strdup(pathbuf) : NULL;
    }
    char host[RRE_HOSTNAME_MAX + 1] = "";
    if (opts->hostname != NULL)
        snprintf(host, sizeof host, "%s", opts->hostname);
    else if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    q->hostname = strdup(host);
    q->default_source = xstrdup(opts->default_source);
    if (st == RRE_OK && (q->path == NULL || q->hostname == NULL || q->default_source == NULL))
        st = rre__error(RRE_ENOMEM, "out of memory");
    if (st != RRE_OK) {
        free(q->path);
        free(q->hostname);
        free(q->default_source);
        free(q);
        return st;
    }
    const char *slash = strrchr(q->path, '/');
    if (slash == NULL) {
        q->dir = strdup(".");
        q->file_name = strdup(q->path);
    } else {
        q->dir = slash == q->path ? strdup("/") : strndup(q->path, (size_t)(slash - q->path));
        q->file_name = strdup(slash + 1);
    }
    q->sync = opts->sync;
    q->busy_timeout_ms = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 60000;
    q->dedup_window_s = opts->dedup_window_seconds == 0 ? 3600.0 : opts->dedup_window_seconds;
    q->retention_s = 3600.0 * (opts->retention_hours > 0
                                   ? opts->retention_hours
                                   : env_double("RINGRIFT_CROSS_PROCESS_RETENTION_HOURS", 24.0));
    q->subscriber_timeout_s = opts->subscriber_timeout_s > 0
                                  ? opts->subscriber_timeout_s
                                  : env_double("RINGRIFT_SUBSCRIBER_TIMEOUT", 300.0);
    q->maintenance_interval_ms =
        opts->maintenance_interval_ms != 0 ? opts->maintenance_interval_ms : 60000;
    q->max_page_count = opts->max_page_count;
    q->read_only = opts->read_only;
    q->start_time = rre__process_start_time((long)getpid());
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    pthread_mutex_init(&q->maint_mu, NULL);
    pthread_cond_init(&q->maint_cv, NULL);
    pthread_mutex_init(&q->admin_mu, NULL);
    pthread_mutex_init(&q->own_mu, NULL);
    pthread_mutex_init(&q->async_mu, NULL);
    pthread_cond_init(&q->async_cv, NULL);
    pthread_cond_init(&q->async_room_cv, NULL);
    if (q->dir == NULL || q->file_name == NULL) {
        rre_queue_destroy(q);
        return rre__error(RRE_ENOMEM, "out of memory");
    }

    if (!q->read_only) {
        st = make_dirs(q->dir);
        if (st == RRE_OK && under_tmp)
            st = rre__queue_check_private_dir(q->dir);
        if (st == RRE_OK && under_tmp)
            st = rre__queue_check_private_files(q->path);
        if (st == RRE_OK)
            st = create_file(q->path);
    } else if (access(q->path, F_OK) != 0) {
        st = rre__error(RRE_EIO, "cannot open '%s': %s", q->path, strerror(errno));
    } else if (under_tmp) {
        st = rre__queue_check_private_dir(q->dir);
        if (st == RRE_OK)
            st = rre__queue_check_private_files(q->path);
    }
    sqlite3 *db = NULL;
    if (st == RRE_OK)
        st = rre__queue_connect(q, &db, 512);
    if (st == RRE_OK)
        st = set_wal(q, db);
    if (st == RRE_OK)
        st = init_schema(q, db);
    if (st != RRE_OK) {
        /* Keep the detail message of the failure across the clean-up. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rre_last_error());
        sqlite3_close(db);
        rre_queue_destroy(q);
        return rre__error(st, "%s", msg);
    }
    q->adb = db;
    if (!q->read_only && q->maintenance_interval_ms > 0) {
        st = rre__queue_maintenance_start(q);
        if (st != RRE_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rre_last_error());
            rre_queue_destroy(q);
            return rre__error(st, "%s", msg);
        }
    }
    *out = q;
    return RRE_OK;
}

static void async_stop(rre_queue *q);
static void async_free_spares(rre_queue *q);
static bool on_async_thread(const rre_queue *q);

void rre_queue_close(rre_queue *q)
{
    if (q == NULL)
        return;
    if (on_async_thread(q))
        rre__panic("rre_queue_close() called from a completion of a pipelined publish: it "
                   "would wait for the thread it runs on");
    /* Pipelined events accepted before are committed first. */
    async_stop(q);
    rre__queue_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->cv);
    rre__queue_unlock(&q->mu);
    rre__queue_maintenance_stop(q);
}

void rre_queue_destroy(rre_queue *q)
{
    if (q == NULL)
        return;
    rre_queue_close(q);
    /* No leader can be active: every publish returned before destroy. */
    sqlite3_finalize(q->st_insert);
    rre__qdedup_close(&q->wdedup);
    sqlite3_close(q->wdb);
    sqlite3_close(q->adb);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->maint_mu);
    pthread_cond_destroy(&q->maint_cv);
    pthread_mutex_destroy(&q->admin_mu);
    pthread_mutex_destroy(&q->own_mu);
    /* In a child of fork() the writer's condition variables may have
     * waiters of the parent, which destroying them would wait for. */
    if (!q->async_started || q->async_pid == current_pid()) {
        pthread_mutex_destroy(&q->async_mu);
        pthread_cond_destroy(&q->async_cv);
        pthread_cond_destroy(&q->async_room_cv);
    }
    async_free_spares(q);
    free(q->async_failures);
    free(q->own_ids);
    free(q->path);
    free(q->dir);
    free(q->file_name);
    free(q->hostname);
    free(q->default_source);
    free(q);
}

/* ------------------------------------------------------------------------ */
/* Publishing                                                                */
/* ------------------------------------------------------------------------ */

/* One pending publish. Lives on the publisher's stack; the fields below
 * `next` are written by the leader and read by the publisher after `done`
 * is set (both under q->mu). */
struct rre__pub_req {
    size_t unit; /* on the first request of a call: how many requests the
                    call made (they are committed in one transaction) */
    const char *spelling;
    char *payload_text;
    const char *source;
    uint8_t hash[RRE_HASH_SIZE];
    struct rre__pub_req *next;
    bool done;
    rre_status status;
    int64_t event_id;
    bool duplicate;
    char *error; /* on the first request of a call: where the transaction's
                    error message goes (PUB_ERROR_CAP bytes); NULL on others */
};

#define PUB_ERROR_CAP 512

struct batch_ctx {
    rre_queue *q;
    struct rre__pub_req *first;
    double now;
};

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int batch_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct batch_ctx *c = vctx;
    rre_queue *q = c->q;
    int rc = rre__qdedup_begin(&q->wdedup);
    if (rc != SQLITE_OK)
        return rc;
    for (struct rre__pub_req *r = c->first; r != NULL; r = r->next) {
        if (r->event_id != 0 && !r->duplicate)
            rre__queue_own_remove(q, r->event_id); /* from an attempt rolled back */
        r->duplicate = false;
        r->event_id = 0;
        rc = rre__qdedup_find(&q->wdedup, r->hash, c->now, &r->duplicate, &r->event_id);
        if (rc != SQLITE_OK)
            return rc;
        if (r->duplicate)
            continue;
        sqlite3_bind_text(q->st_insert, 1, r->spelling, -1, SQLITE_STATIC);
        sqlite3_bind_text(q->st_insert, 2, r->payload_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(q->st_insert, 3, r->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(q->st_insert, 4, q->hostname, -1, SQLITE_STATIC);
        sqlite3_bind_double(q->st_insert, 5, c->now);
        rc = step_reset(q->st_insert);
        if (rc != SQLITE_DONE)
            return rc;
        r->event_id = sqlite3_last_insert_rowid(db);
        /* Recorded before the commit, so a receiver never sees the row first. */
        rre__queue_own_add(q, r->event_id, r->hash);
        rc = rre__qdedup_add(&q->wdedup, r->event_id, r->hash, c->now);
        if (rc != SQLITE_OK)
            return rc;
    }
    return rre__qdedup_end(&q->wdedup, db);
}

static rre_status open_writer(rre_queue *q)
{
    if (q->wdb != NULL)
        return RRE_OK;
    sqlite3 *db;
    rre_status st = rre__queue_connect(q, &db, RRE__STORE_CACHE_KIB);
    if (st != RRE_OK)
        return st;
    st = rre__queue_prepare(db,
                            "INSERT INTO events(event_type, payload, source, hostname,"
                            " created_at) VALUES (?, ?, ?, ?, ?)",
                            &q->st_insert);
    if (st == RRE_OK)
        st = rre__qdedup_open(&q->wdedup, db, q->dedup_window_s, q->dedup_mem_max);
    if (st != RRE_OK) {
        sqlite3_finalize(q->st_insert);
        q->st_insert = NULL;
        sqlite3_close(db);
        return st;
    }
    /* With a maintenance thread, checkpoints (which fsync) run there
     * instead of on the publishing thread. */
    rre__queue_hook_checkpoints(db, &q->wckpt, q);
    q->wdb = db;
    return RRE_OK;
}

/* Writes one batch as the leader, with no lock held. */
static void run_batch(rre_queue *q, struct rre__pub_req *first)
{
    rre_status st = open_writer(q);
    if (st == RRE_OK) {
        struct batch_ctx c = {q, first, rre__queue_now()};
        st = rre__queue_write_txn(q, q->wdb, "publishing to the queue", batch_body, &c);
        rre__qdedup_after(&q->wdedup, st == RRE_OK);
    }
    for (struct rre__pub_req *r = first; r != NULL; r = r->next) {
        r->status = st;
        if (st != RRE_OK) {
            if (r->error != NULL)
                snprintf(r->error, PUB_ERROR_CAP, "%s", rre_last_error());
            if (r->event_id != 0 && !r->duplicate)
                rre__queue_own_remove(q, r->event_id);
        }
    }
}

/* True when the strings can be spliced into JSON text without escaping:
 * printable ASCII other than '"' and '\\'. Anything else goes through the
 * JSON writer, which also refuses text that is not UTF-8. */
static bool plain_json_string(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Adds `key`: `value` to `obj`. A value that is not UTF-8 cannot be JSON
 * text: stored as it is, the row would be unreadable (a poison row). */
static rre_status add_envelope_field(json_t *obj, const char *key, const char *value)
{
    json_t *v = json_string(value);
    if (v == NULL) {
        /* NULL is refused UTF-8 or no memory: tell which. */
        json_t *probe = json_stringn_nocheck(value, strlen(value));
        if (probe == NULL)
            return rre__error(RRE_ENOMEM, "out of memory");
        json_decref(probe);
        return rre__error(RRE_EINVAL, "the %s is not valid UTF-8", key);
    }
    if (json_object_set_new(obj, key, v) != 0)
        return rre__error(RRE_ENOMEM, "out of memory");
    return RRE_OK;
}

/* A payload as stored: the canonical JSON writer's text (compact, keys
 * sorted, numbers in their shortest round-trip form such as 0.0423 rather
 * than 0.042299999999999997, which Python's json module also reads),
 * appended to `buf`. */
static rre_status write_json(const json_t *payload, struct rre__buf *buf)
{
    rre_status st = rre__canonical_write(payload, buf);
    if (st != RRE_OK)
        return rre__error(st, "the payload cannot be written as JSON: %s", rre_last_error());
    return RRE_OK;
}

/* The stored text of a payload, NUL-terminated, in `buf` (emptied first):
 * compact JSON, with timestamp and trace_id added at the top level when
 * given and absent. */
static rre_status payload_text_buf(const json_t *payload, const char *timestamp,
                                   const char *trace_id, struct rre__buf *buf)
{
    rre__buf_reset(buf);
    bool add_ts =
        timestamp != NULL && timestamp[0] != '\0' && json_object_get(payload, "timestamp") == NULL;
    bool add_tr =
        trace_id != NULL && trace_id[0] != '\0' && json_object_get(payload, "trace_id") == NULL;
    rre_status st;
    if ((add_ts || add_tr) && !(plain_json_string(add_ts ? timestamp : "") &&
                                plain_json_string(add_tr ? trace_id : ""))) {
        json_t *copy = json_copy((json_t *)payload);
        if (copy == NULL)
            return rre__error(RRE_ENOMEM, "out of memory");
        st = RRE_OK;
        if (add_ts)
            st = add_envelope_field(copy, "timestamp", timestamp);
        if (st == RRE_OK && add_tr)
            st = add_envelope_field(copy, "trace_id", trace_id);
        if (st == RRE_OK)
            st = write_json(copy, buf);
        json_decref(copy);
    } else {
        st = write_json(payload, buf);
        if (st == RRE_OK && (add_ts || add_tr)) {
            /* The text is "{...}": drop the closing brace, append the
             * fields (plain strings: no escaping needed). */
            bool empty = buf->len == 2;
            buf->len--;
            const char *fields[2][2] = {{"timestamp", add_ts ? timestamp : NULL},
                                        {"trace_id", add_tr ? trace_id : NULL}};
            for (int i = 0; i < 2 && st == RRE_OK; i++) {
                if (fields[i][1] == NULL)
                    continue;
                if (!empty)
                    st = rre__buf_append(buf, ",", 1);
                empty = false;
                if (st == RRE_OK)
                    st = rre__buf_append(buf, "\"", 1);
                if (st == RRE_OK)
                    st = rre__buf_append(buf, fields[i][0], strlen(fields[i][0]));
                if (st == RRE_OK)
                    st = rre__buf_append(buf, "\":\"", 3);
                if (st == RRE_OK)
                    st = rre__buf_append(buf, fields[i][1], strlen(fields[i][1]));
                if (st == RRE_OK)
                    st = rre__buf_append(buf, "\"", 1);
            }
            if (st == RRE_OK)
                st = rre__buf_append(buf, "}", 1);
            if (st != RRE_OK)
                st = rre__error(RRE_ENOMEM, "out of memory");
        }
    }
    if (st != RRE_OK)
        return st;
    /* Readers refuse a stored text over the payload limit: refuse it here,
     * where the publisher hears of it, rather than store what no one can
     * read. */
    if (buf->len > RRE_PAYLOAD_MAX_BYTES)
        return rre__error(RRE_ELIMIT,
                          "the payload as stored (with its timestamp and trace_id) is %zu bytes; "
                          "the limit is %u bytes; nothing was stored",
                          buf->len, RRE_PAYLOAD_MAX_BYTES);
    if (rre__buf_append(buf, "", 1) != RRE_OK)
        return rre__error(RRE_ENOMEM, "out of memory");
    buf->len--;
    return RRE_OK;
}

/* The same in a block of its own (the caller frees *out). */
static rre_status payload_text(const json_t *payload, const char *timestamp, const char *trace_id,
                               char **out)
{
    struct rre__buf buf;
    rre__buf_init(&buf, NULL, 0);
    rre_status st = payload_text_buf(payload, timestamp, trace_id, &buf);
    if (st == RRE_OK && !buf.on_heap)
        st = rre__buf_reserve(&buf, 1) == RRE_OK ? RRE_OK : rre__error(RRE_ENOMEM, "out of memory");
    if (st != RRE_OK) {
        rre__buf_free(&buf);
        return st;
    }
    *out = buf.data;
    return RRE_OK;
}

static const rre_event_info *queue_event(rre_event_type type, const char *what)
{
    const rre_event_info *info = rre_event_get(type);
    if (info == NULL) {
        rre__error(RRE_EUNKNOWN_TYPE, "%s: unknown event type %d", what, (int)type);
        return NULL;
    }
    if (info->alias_of != RRE_EV_NONE)
        info = rre_event_get(info->alias_of);
    return info;
}

/* Fills a request: the row's text and the content hash. */
/* `hash`: the content hash of info->type and payload when the caller has
 * it (a router computed it), else NULL to compute it here. */
static rre_status prepare_req(rre_queue *q, const rre_event_info *info, const json_t *payload,
                              const char *source, const char *timestamp, const char *trace_id,
                              const uint8_t *hash, struct rre__pub_req *req, struct rre__buf *text)
{
    memset(req, 0, sizeof *req);
    req->spelling = info->queue_spelling;
    req->source = source != NULL ? source : q->default_source;
    if (!rre__utf8_valid(req->source, strlen(req->source)))
        return rre__error(RRE_EINVAL, "the source is not valid UTF-8; nothing was stored");
    rre_status st = RRE_OK;
    if (hash != NULL)
        memcpy(req->hash, hash, RRE_HASH_SIZE);
    else
        st = rre_content_hash(info->type, payload, req->hash);
    if (st != RRE_OK)
        return st;
    if (text == NULL)
        return payload_text(payload, timestamp, trace_id, &req->payload_text);
    /* Written into the caller's buffer, which keeps the text. */
    st = payload_text_buf(payload, timestamp, trace_id, text);
    if (st == RRE_OK)
        req->payload_text = text->data;
    return st;
}

/* Queues the `n` requests of one call (n >= 1, linked in order from `reqs`
 * to `mine_last`) and returns
 * once they are committed together, leading the group commit when no other
 * thread does. Returns the transaction's status (its message in reqs->error). */
static rre_status submit(rre_queue *q, struct rre__pub_req *reqs, struct rre__pub_req *mine_last,
                         size_t n)
{
    reqs->unit = n;
    rre__queue_lock(&q->mu);
    if (q->closed) {
        rre__queue_unlock(&q->mu);
        return rre__error(RRE_ECLOSED, "the queue is closed");
    }
    if (q->tail != NULL)
        q->tail->next = reqs;
    else
        q->head = reqs;
    q->tail = mine_last;
    q->pending++;
    while (!mine_last->done) {
        if (q->leader_active) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        /* Become the leader. Publishers still preparing their row are about
         * to join: give them a moment, so one transaction carries them all
         * (a single publishing thread never waits here). */
        q->leader_active = true;
        for (int spin = 0; spin < 8 && q->pending < atomic_load(&q->in_publish); spin++) {
            rre__queue_unlock(&q->mu);
            sched_yield();
            rre__queue_lock(&q->mu);
        }
        /* Take whole calls, up to RRE__QUEUE_GROUP_MAX requests (a larger
         * call goes alone). */
        struct rre__pub_req *first = q->head, *last = first;
        size_t taken = 0;
        int calls = 0;
        for (struct rre__pub_req *u = first; u != NULL;) {
            if (taken > 0 && taken + u->unit > RRE__QUEUE_GROUP_MAX)
                break;
            struct rre__pub_req *u_last = u;
            for (size_t i = 1; i < u->unit; i++)
                u_last = u_last->next;
            taken += u->unit;
            calls++;
            last = u_last;
            u = u_last->next;
        }
        q->pending -= calls;
        q->head = last->next;
        if (q->head == NULL)
            q->tail = NULL;
        last->next = NULL;
        rre__queue_unlock(&q->mu);

        run_batch(q, first);

        rre__queue_lock(&q->mu);
        for (struct rre__pub_req *r = first; r != NULL;) {
            struct rre__pub_req *next = r->next;
            r->done = true; /* r may be freed by its owner once done is seen */
            r = next;
        }
        if (atomic_load(&q->ckpt_catch_up)) {
            /* The rows are committed: release their publishers, then finish
             * the maintenance thread's checkpoint while still holding the
             * writer role (see queue_retention.c). */
            pthread_cond_broadcast(&q->cv);
            rre__queue_unlock(&q->mu);
            rre__queue_checkpoint_catch_up(q);
            rre__queue_lock(&q->mu);
        }
        q->leader_active = false;
        pthread_cond_broadcast(&q->cv);
    }
    rre__queue_unlock(&q->mu);
    if (reqs->status != RRE_OK)
        return rre__error(reqs->status, "%s", reqs->error);
    return RRE_OK;
}

static rre_status publish_one(rre_queue *q, rre_event_type type, const json_t *payload,
                              const char *source, const char *timestamp, const char *trace_id,
                              const uint8_t *hash, rre_queue_publish_result *out);

rre_status rre_queue_publish(rre_queue *q, rre_event_type type, const json_t *payload,
                             const char *source, const char *timestamp, const char *trace_id,
                             rre_queue_publish_result *out)
{
    return publish_one(q, type, payload, source, timestamp, trace_id, NULL, out);
}

rre_status rre__queue_publish_routed(rre_queue *q, rre_event *ev, bool *duplicate)
{
    rre_queue_publish_result res;
    rre_status st = publish_one(q, ev->type, ev->payload, ev->source, ev->timestamp, ev->trace_id,
                                ev->hash, &res);
    if (st != RRE_OK)
        return st;
    ev->event_id = res.event_id;
    if (duplicate != NULL)
        *duplicate = res.duplicate;
    return RRE_OK;
}

static rre_status publish_one(rre_queue *q, rre_event_type type, const json_t *payload,
                              const char *source, const char *timestamp, const char *trace_id,
                              const uint8_t *hash, rre_queue_publish_result *out)
{
    if (q == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_publish: queue is NULL");
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "rre_queue_publish: the payload is not a JSON object");
    const rre_event_info *info = queue_event(type, "rre_queue_publish");
    if (info == NULL)
        return RRE_EUNKNOWN_TYPE;
    if (q->read_only)
        return rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);

    atomic_fetch_add(&q->in_publish, 1);
    struct rre__pub_req req;
    char error[PUB_ERROR_CAP];
    rre_status st = prepare_req(q, info, payload, source, timestamp, trace_id, hash, &req, NULL);
    req.error = error;
    if (st == RRE_OK)
        st = submit(q, &req, &req, 1);
    atomic_fetch_sub(&q->in_publish, 1);
    free(req.payload_text);
    if (st == RRE_OK && out != NULL) {
        out->event_id = req.event_id;
        out->duplicate = req.duplicate;
        memcpy(out->hash, req.hash, RRE_HASH_SIZE);
    }
    return st;
}

rre_status rre_queue_publish_batch(rre_queue *q, rre_event *evs, size_t n, bool *duplicates)
{
    if (q == NULL || (evs == NULL && n > 0))
        return rre__error(RRE_EINVAL, "rre_queue_publish_batch: queue or events is NULL");
    if (n == 0)
        return RRE_OK;
    if (n > SIZE_MAX / sizeof(struct rre__pub_req))
        return rre__error(RRE_ENOMEM, "rre_queue_publish_batch: too many events");
    struct rre__pub_req *reqs = malloc(n * sizeof *reqs);
    if (reqs == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");

    /* Every event is checked and prepared before anything is written. */
    atomic_fetch_add(&q->in_publish, 1);
    rre_status st = RRE_OK;
    size_t prepared = 0;
    for (; prepared < n; prepared++) {
        rre_event *ev = &evs[prepared];
        const rre_event_info *info = queue_event(ev->type, "rre_queue_publish_batch");
        if (!json_is_object(ev->payload)) {
            st = rre__error(RRE_ENOT_OBJECT,
                            "rre_queue_publish_batch: event %zu: the payload is not a JSON object",
                            prepared);
            break;
        }
        if (info == NULL) {
            st = rre__error(RRE_EUNKNOWN_TYPE,
                            "rre_queue_publish_batch: event %zu: unknown event type %d", prepared,
                            (int)ev->type);
            break;
        }
        st = prepare_req(q, info, ev->payload, ev->source, ev->timestamp, ev->trace_id, NULL,
                         &reqs[prepared], NULL);
        if (st != RRE_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", rre_last_error());
            free(reqs[prepared].payload_text);
            st = rre__error(st, "rre_queue_publish_batch: event %zu: %s", prepared, why);
            break;
        }
        if (prepared > 0)
            reqs[prepared - 1].next = &reqs[prepared];
    }
    if (st == RRE_OK && q->read_only)
        st = rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    char error[PUB_ERROR_CAP];
    if (st == RRE_OK) {
        reqs[0].error = error;
        st = submit(q, reqs, &reqs[n - 1], n);
    }
    atomic_fetch_sub(&q->in_publish, 1);
    for (size_t i = 0; i < prepared; i++) {
        free(reqs[i].payload_text);
        if (st == RRE_OK) {
            evs[i].event_id = reqs[i].event_id;
            memcpy(evs[i].hash, reqs[i].hash, RRE_HASH_SIZE);
            if (duplicates != NULL)
                duplicates[i] = reqs[i].duplicate;
        }
    }
    free(reqs);
    return st;
}

rre_status rre_queue_publish_event(rre_queue *q, rre_event *ev, bool *duplicate)
{
    if (ev == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_publish_event: event is NULL");
    rre_queue_publish_result res;
    rre_status st =
        rre_queue_publish(q, ev->type, ev->payload, ev->source, ev->timestamp, ev->trace_id, &res);
    if (st != RRE_OK)
        return st;
    ev->event_id = res.event_id;
    memcpy(ev->hash, res.hash, RRE_HASH_SIZE);
    if (duplicate != NULL)
        *duplicate = res.duplicate;
    return RRE_OK;
}

/* ------------------------------------------------------------------------ */
/* Pipelined publishing                                                      */
/* ------------------------------------------------------------------------ */

/* One accepted event, on the heap until its completion has run; then kept
 * on the queue's list of spare ones (a malloc and a free per event, on two
 * threads, cost more than the rest of accepting it). */
struct rre__async_req {
    struct rre__pub_req req; /* req.source points to source_buf or source,
                                req.payload_text into text */
    struct rre__buf text;    /* kept with the request when it is reused */
    char *source;            /* a source too long for source_buf */
    char source_buf[64];
    rre_queue_stored_fn done;
    void *user_data;
    struct rre__async_req *next;
};

/* Spare requests kept at most, and the text buffer one keeps at most. */
#define ASYNC_SPARE_MAX 4096
#define ASYNC_TEXT_KEEP 16384

/* The queue whose writer runs on this thread (NULL on others). */
static _Thread_local const rre_queue *tls_writer_of;

/* Each thread's flush cursor of the queues it flushed last: failures of
 * events up to it were reported to it already. */
#define FLUSH_CURSORS 8
static _Thread_local struct {
    uint64_t queue_id;
    uint64_t upto;
} tls_flushed[FLUSH_CURSORS];

static _Atomic uint64_t next_queue_id = 1;

static bool on_async_thread(const rre_queue *q)
{
    return tls_writer_of == q;
}

static void async_release(struct rre__async_req *a)
{
    a->req.payload_text = NULL;
    if (a->text.cap > ASYNC_TEXT_KEEP)
        rre__buf_free(&a->text);
    free(a->source);
    a->source = NULL;
}

static void async_free(struct rre__async_req *a)
{
    async_release(a);
    rre__buf_free(&a->text);
    free(a);
}

static void async_free_spares(rre_queue *q)
{
    while (q->async_spare != NULL) {
        struct rre__async_req *next = q->async_spare->next;
        async_free(q->async_spare);
        q->async_spare = next;
    }
    q->async_spares = 0;
}

/* A spare request, or a new one. */
static struct rre__async_req *async_take(rre_queue *q)
{
    rre__queue_lock(&q->async_mu);
    struct rre__async_req *a = q->async_spare;
    if (a != NULL) {
        q->async_spare = a->next;
        q->async_spares--;
    }
    rre__queue_unlock(&q->async_mu);
    if (a == NULL && (a = malloc(sizeof *a)) != NULL) {
        rre__buf_init(&a->text, NULL, 0);
        a->source = NULL;
    }
    return a;
}

/* Gives back the requests of a completed group (async_mu held). */
static void async_give_back(rre_queue *q, struct rre__async_req *first)
{
    while (first != NULL) {
        struct rre__async_req *next = first->next;
        if (q->async_spares < ASYNC_SPARE_MAX) {
            first->next = q->async_spare;
            q->async_spare = first;
            q->async_spares++;
        } else {
            async_free(first);
        }
        first = next;
    }
}

/* Remembers that the events numbered lo..hi failed (async_mu held). */
static void async_record_failure(rre_queue *q, uint64_t lo, uint64_t hi, rre_status st,
                                 const char *why)
{
    if (q->async_failures == NULL) {
        q->async_failures = calloc(RRE__QUEUE_ASYNC_FAILURES, sizeof *q->async_failures);
        if (q->async_failures == NULL)
            return; /* the completions said it; flush cannot */
    }
    struct rre__async_failure *last =
        q->async_nfailures > 0 ? &q->async_failures[q->async_nfailures - 1] : NULL;
    if (last != NULL && last->hi + 1 == lo && last->status == st) {
        last->hi = hi; /* one failure that goes on: one range */
        return;
    }
    if (q->async_nfailures == RRE__QUEUE_ASYNC_FAILURES) {
        memmove(q->async_failures, q->async_failures + 1,
                (RRE__QUEUE_ASYNC_FAILURES - 1) * sizeof *q->async_failures);
        q->async_nfailures--;
    }
    struct rre__async_failure *f = &q->async_failures[q->async_nfailures++];
    f->lo = lo;
    f->hi = hi;
    f->status = st;
    snprintf(f->error, sizeof f->error, "%s", why);
}

/* The writer: submits what waits, in groups, as one call each, and runs the
 * completions. Leaves once stopped and nothing waits. */
static void *async_main(void *arg)
{
    rre_queue *q = arg;
    tls_writer_of = q;
    for (;;) {
        rre__queue_lock(&q->async_mu);
        while (q->async_head == NULL && !q->async_stop)
            pthread_cond_wait(&q->async_cv, &q->async_mu);
        if (q->async_head == NULL) {
            rre__queue_unlock(&q->async_mu);
            tls_writer_of = NULL;
            return NULL;
        }
        struct rre__async_req *first = q->async_head, *last = first;
        size_t n = 1;
        while (last->next != NULL && n < RRE__QUEUE_GROUP_MAX) {
            last->req.next = &last->next->req;
            last = last->next;
            n++;
        }
        q->async_head = last->next;
        if (q->async_head == NULL)
            q->async_tail = NULL;
        last->next = NULL;
        last->req.next = NULL;
        q->async_waiting -= n;
        uint64_t lo = q->async_completed + 1; /* groups complete in accepting order */
        pthread_cond_broadcast(&q->async_room_cv);
        rre__queue_unlock(&q->async_mu);

        char why[PUB_ERROR_CAP] = "";
        first->req.error = why;
        rre_status st = submit(q, &first->req, &last->req, n);
        if (st != RRE_OK && why[0] == '\0')
            snprintf(why, sizeof why, "%s", rre_last_error());
        for (struct rre__async_req *a = first; a != NULL; a = a->next) {
            if (a->done != NULL)
                a->done(st, st == RRE_OK ? a->req.event_id : 0, st == RRE_OK && a->req.duplicate,
                        a->req.hash, a->user_data);
            async_release(a);
        }
        rre__queue_lock(&q->async_mu);
        async_give_back(q, first);
        q->async_completed += n;
        if (st != RRE_OK)
            async_record_failure(q, lo, lo + n - 1, st, why);
        pthread_cond_broadcast(&q->async_room_cv);
        rre__queue_unlock(&q->async_mu);
    }
}

/* Stops accepting, lets the writer commit what waits, and waits until it
 * has left: the first closer joins it, the others wait for that. In a
 * child of fork() the writer (of the parent) is not there: nothing to
 * wait for. */
static void async_stop(rre_queue *q)
{
    rre__queue_lock(&q->async_mu);
    q->async_stop = true;
    if (q->async_started && q->async_pid != current_pid()) {
        /* Not even a broadcast: the condition variables' waiters are
         * threads of the parent, and glibc would wait for them. */
        rre__queue_unlock(&q->async_mu);
        return;
    }
    pthread_cond_broadcast(&q->async_cv);
    pthread_cond_broadcast(&q->async_room_cv);
    if (!q->async_started) {
        rre__queue_unlock(&q->async_mu);
        return;
    }
    if (q->async_joining) {
        while (!q->async_exited)
            pthread_cond_wait(&q->async_room_cv, &q->async_mu);
        rre__queue_unlock(&q->async_mu);
        return;
    }
    q->async_joining = true;
    rre__queue_unlock(&q->async_mu);
    pthread_join(q->async_thread, NULL);
    rre__queue_lock(&q->async_mu);
    q->async_exited = true;
    pthread_cond_broadcast(&q->async_room_cv);
    rre__queue_unlock(&q->async_mu);
}

static rre_status publish_async(rre_queue *q, rre_event_type type, const json_t *payload,
                                const char *source, const char *timestamp, const char *trace_id,
                                const uint8_t *hash, rre_queue_stored_fn done, void *user_data);

rre_status rre_queue_publish_async(rre_queue *q, rre_event_type type, const json_t *payload,
                                   const char *source, const char *timestamp, const char *trace_id,
                                   rre_queue_stored_fn done, void *user_data)
{
    return publish_async(q, type, payload, source, timestamp, trace_id, NULL, done, user_data);
}

rre_status rre__queue_publish_routed_async(rre_queue *q, const rre_event *ev,
                                           rre_queue_stored_fn done, void *user_data)
{
    return publish_async(q, ev->type, ev->payload, ev->source, ev->timestamp, ev->trace_id,
                         ev->hash, done, user_data);
}

static rre_status publish_async(rre_queue *q, rre_event_type type, const json_t *payload,
                                const char *source, const char *timestamp, const char *trace_id,
                                const uint8_t *hash, rre_queue_stored_fn done, void *user_data)
{
    if (q == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_publish_async: queue is NULL");
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT,
                          "rre_queue_publish_async: the payload is not a JSON object");
    const rre_event_info *info = queue_event(type, "rre_queue_publish_async");
    if (info == NULL)
        return RRE_EUNKNOWN_TYPE;
    if (q->read_only)
        return rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    rre__queue_lock(&q->async_mu);
    bool forked = q->async_started && q->async_pid != current_pid();
    rre__queue_unlock(&q->async_mu);
    if (forked)
        return rre__error(RRE_ECLOSED, "this queue handle was opened before fork(): its writer "
                                       "thread is in the parent; open the queue again in the "
                                       "child");
    struct rre__async_req *a = async_take(q);
    if (a == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    rre_status st =
        prepare_req(q, info, payload, source, timestamp, trace_id, hash, &a->req, &a->text);
    if (st == RRE_OK) {
        size_t len = strlen(a->req.source);
        if (len < sizeof a->source_buf) {
            memcpy(a->source_buf, a->req.source, len + 1);
            a->req.source = a->source_buf;
        } else if ((a->source = strdup(a->req.source)) != NULL) {
            a->req.source = a->source;
        } else {
            st = rre__error(RRE_ENOMEM, "out of memory");
        }
    }
    if (st != RRE_OK) {
        async_free(a);
        return st;
    }
    a->next = NULL;
    a->done = done;
    a->user_data = user_data;

    rre__queue_lock(&q->async_mu);
    if (q->async_started && q->async_pid != current_pid()) {
        rre__queue_unlock(&q->async_mu);
        async_free(a);
        return rre__error(RRE_ECLOSED, "this queue handle was opened before fork(): its writer "
                                       "thread is in the parent; open the queue again in the "
                                       "child");
    }
    if (!q->async_started && !q->async_stop) {
        int rc = pthread_create(&q->async_thread, NULL, async_main, q);
        if (rc != 0) {
            rre__queue_unlock(&q->async_mu);
            async_free(a);
            return rre__error(RRE_ENOMEM, "cannot start the queue's writer thread: %s",
                              strerror(rc));
        }
        q->async_started = true;
        q->async_pid = current_pid();
        if (q->async_id == 0)
            q->async_id = atomic_fetch_add(&next_queue_id, 1);
    }
    /* Room, unless this is the writer (a completion publishing): waiting
     * for itself would never end. */
    while (q->async_waiting >= RRE__QUEUE_ASYNC_MAX && !q->async_stop && !on_async_thread(q))
        pthread_cond_wait(&q->async_room_cv, &q->async_mu);
    if (q->async_stop) {
        rre__queue_unlock(&q->async_mu);
        async_free(a);
        return rre__error(RRE_ECLOSED, "the queue is closed");
    }
    if (q->async_tail != NULL)
        q->async_tail->next = a;
    else
        q->async_head = a;
    q->async_tail = a;
    q->async_waiting++;
    q->async_accepted++;
    pthread_cond_signal(&q->async_cv);
    rre__queue_unlock(&q->async_mu);
    return RRE_OK;
}

rre_status rre__queue_flush_from(rre_queue *q, uint64_t from, int timeout_ms, uint64_t *upto)
{
    rre__queue_lock(&q->async_mu);
    if (on_async_thread(q)) {
        rre__queue_unlock(&q->async_mu);
        return rre__error(RRE_EINVAL, "rre_queue_flush: called from a completion, which would "
                                      "wait for itself");
    }
    uint64_t target = q->async_accepted;
    if (upto != NULL)
        *upto = from;
    if (q->async_started && q->async_pid != current_pid() && q->async_completed < target) {
        rre__queue_unlock(&q->async_mu);
        return rre__error(RRE_ECLOSED, "this queue handle was opened before fork(): its writer "
                                       "thread is in the parent");
    }
    int64_t deadline = timeout_ms >= 0 ? rre__queue_mono_ms() + timeout_ms : 0;
    while (q->async_completed < target) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->async_room_cv, &q->async_mu);
            continue;
        }
        int64_t left = deadline - rre__queue_mono_ms();
        if (left <= 0) {
            uint64_t missing = target - q->async_completed;
            rre__queue_unlock(&q->async_mu);
            return rre__error(RRE_ETIMEOUT,
                              "rre_queue_flush: %llu pipelined events still waited after %d ms",
                              (unsigned long long)missing, timeout_ms);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->async_room_cv, &q->async_mu, &ts);
    }
    /* The failures among the events numbered from+1 .. target. */
    uint64_t failed = 0;
    const struct rre__async_failure *newest = NULL;
    for (size_t i = 0; from < target && i < q->async_nfailures; i++) {
        const struct rre__async_failure *f = &q->async_failures[i];
        uint64_t lo = f->lo > from ? f->lo : from + 1, hi = f->hi < target ? f->hi : target;
        if (lo <= hi) {
            failed += hi - lo + 1;
            newest = f;
        }
    }
    rre_status st = RRE_OK;
    if (failed > 0)
        st = rre__error(newest->status, "%llu pipelined event%s not stored; the latest failure: %s",
                        (unsigned long long)failed, failed == 1 ? " was" : "s were", newest->error);
    if (upto != NULL)
        *upto = target;
    rre__queue_unlock(&q->async_mu);
    return st;
}

rre_status rre_queue_flush(rre_queue *q, int timeout_ms)
{
    if (q == NULL)
        return rre__error(RRE_EINVAL, "rre_queue_flush: queue is NULL");
    rre__queue_lock(&q->async_mu);
    uint64_t id = q->async_id;
    rre__queue_unlock(&q->async_mu);
    if (id == 0)
        return RRE_OK; /* nothing was ever accepted */
    /* This thread's cursor for the queue: failures up to it were reported. */
    size_t slot = FLUSH_CURSORS;
    for (size_t i = 0; i < FLUSH_CURSORS; i++)
        if (tls_flushed[i].queue_id == id)
            slot = i;
    uint64_t from = slot < FLUSH_CURSORS ? tls_flushed[slot].upto : 0, upto = from;
    rre_status st = rre__queue_flush_from(q, from, timeout_ms, &upto);
    if (st == RRE_ETIMEOUT || st == RRE_EINVAL)
        return st;
    if (slot == FLUSH_CURSORS) {
        /* A new queue for this thread: take the slot of the oldest. */
        memmove(&tls_flushed[1], &tls_flushed[0], (FLUSH_CURSORS - 1) * sizeof tls_flushed[0]);
        slot = 0;
        tls_flushed[0].queue_id = id;
    }
    tls_flushed[slot].upto = upto;
    return st;
}
