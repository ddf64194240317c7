/*
 * queue_wake.c - how a waiting subscriber learns that another process
 * committed to the queue, without polling on a timer.
 *
 * Every commit in WAL mode writes frames to the database's -wal file (and a
 * checkpoint writes the database file), so an inotify watch on the
 * database's directory, filtered to those two names, fires on every commit
 * by any process, C or Python. Watching the directory rather than the -wal
 * file itself survives the file being deleted and recreated when the last
 * connection closes. Measured on a 2-core machine, a waiting subscriber sees
 * a commit in another process within tens of microseconds, and idles at no
 * CPU cost.
 *
 * One subtlety: the frames reach the -wal file a moment before the writer
 * publishes them in the shared WAL index, so a reader woken by the write
 * may not see the commit yet. The caller handles that with short follow-up
 * waits after a wake-up that found nothing (see the subscriber's poll).
 * When inotify is unavailable the waits simply time out, and the caller
 * re-reads at its fallback interval.
 *
 * An eventfd lets another thread (or a signal handler) end a wait at once.
 */
#include "queue_sqlite.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

rre_status rre__wake_init(rre__wake *w, const char *dir, const char *file_name)
{
    w->inotify_fd = -1;
    w->event_fd = -1;
    w->db_name = strdup(file_name);
    size_t n = strlen(file_name) + 5;
    w->wal_name = malloc(n);
    if (w->db_name == NULL || w->wal_name == NULL) {
        rre__wake_fini(w);
        return rre__error(RRE_ENOMEM, "out of memory");
    }
    snprintf(w->wal_name, n, "%s-wal", file_name);
    w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->event_fd < 0) {
        rre_status st = rre__error(RRE_EIO, "eventfd: %s", strerror(errno));
        rre__wake_fini(w);
        return st;
    }
    w->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (w->inotify_fd >= 0 &&
        inotify_add_watch(w->inotify_fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
        close(w->inotify_fd);
        w->inotify_fd = -1;
    }
    if (w->inotify_fd < 0)
        rre__log(RRE_LOG_WARN, "queue",
                 "inotify is unavailable for '%s' (%s); subscribers re-read every %d ms", dir,
                 strerror(errno), RRE__QUEUE_FALLBACK_MS);
    return RRE_OK;
}

void rre__wake_fini(rre__wake *w)
{
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    if (w->event_fd >= 0)
        close(w->event_fd);
    free(w->db_name);
    free(w->wal_name);
    w->inotify_fd = w->event_fd = -1;
    w->db_name = w->wal_name = NULL;
}

/* Reads all pending inotify events; returns true when one concerns the
 * database or its WAL. */
static bool read_events(rre__wake *w)
{
    bool relevant = false;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->inotify_fd, buf, sizeof buf);
        if (n <= 0)
            return relevant;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if (ev->len > 0 &&
                (strcmp(ev->name, w->wal_name) == 0 || strcmp(ev->name, w->db_name) == 0))
                relevant = true;
            if (ev->mask & IN_Q_OVERFLOW)
                relevant = true;
            p += sizeof *ev + ev->len;
        }
    }
}

void rre__wake_drain(rre__wake *w)
{
    if (w->inotify_fd >= 0)
        (void)read_events(w);
}

int rre__wake_wait(rre__wake *w, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rre__queue_mono_ms() + timeout_ms;
    for (;;) {
        struct pollfd p[2] = {{w->event_fd, POLLIN, 0}, {w->inotify_fd, POLLIN, 0}};
        int64_t left = -1;
        if (deadline != INT64_MAX) {
            left = deadline - rre__queue_mono_ms();
            if (left < 0)
                left = 0;
        }
        int rc = poll(p, w->inotify_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno != EINTR)
            return 0;
        if (rc > 0 && (p[0].revents & POLLIN))
            return -1;
        if (rc > 0 && (p[1].revents & POLLIN) && read_events(w))
            return 1;
        if (deadline != INT64_MAX && rre__queue_mono_ms() >= deadline)
            return 0;
    }
}

void rre__wake_signal(rre__wake *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->event_fd, &one, sizeof one);
    (void)n;
}
