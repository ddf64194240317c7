/*
 * bridge_hosts.h - simulated hosts for the bridge tests: each has its own
 * directory, queue file and host name, and a bridge running on a thread.
 * The assertions here fail the calling cmocka test with what they saw.
 */
#ifndef RRE_BRIDGE_HOSTS_H
#define RRE_BRIDGE_HOSTS_H

#include "natsutil.h"
#include "testutil.h"

#include <rre/rre.h>

#include <pthread.h>

typedef struct bh_host {
    char name[64];
    char dir[512];
    char path[600]; /* the queue file */
    char servers[512];
    char stream[64];
    rre_queue *queue;
    rre_bridge *bridge; /* NULL while stopped */
    pthread_t thread;
    rre_status run_status;
} bh_host;

/* Makes host `name` under `root` (its queue at root/<name>/events.db) and
 * starts its bridge on `servers` and `stream`; `extra` (may be NULL) gives
 * further bridge options. Fails the test unless the bridge is ready within
 * 30 s. */
bh_host *bh_start(const char *root, const char *name, const char *servers, const char *stream,
                  const rre_bridge_options *extra);
/* Stops the bridge (the queue stays open) / starts it again. */
void bh_stop_bridge(bh_host *h);
void bh_start_bridge(bh_host *h, const rre_bridge_options *extra);
/* Stops the bridge, closes the queue, frees the host (the files stay). */
void bh_stop(bh_host *h);

/* A thread that publishes n events {"tag":tag,"seq":i,"origin":<host>} of
 * type ELO_UPDATED to the host's queue, one call each. Join returns how many
 * publishes succeeded. */
typedef struct bh_publisher bh_publisher;
bh_publisher *bh_publish_async(bh_host *h, int n, const char *tag);
int bh_publish_join(bh_publisher *p);

/* Publishes one event to the host's queue, with the timestamp
 * BH_TIMESTAMP; fails the test on an error. */
#define BH_TIMESTAMP "2026-01-02T03:04:05.678901Z"
void bh_publish_text(bh_host *h, const char *type, const char *payload_json, const char *source);

/* Rows of the host's queue, all or those whose hostname is `hostname`. */
int bh_count_rows(bh_host *h, const char *hostname);
/* The same for the queue file at `path`. */
int bh_count_rows_at(const char *path, const char *hostname);
/* Waits until at least n rows of `hostname` are in the host's queue; fails
 * the test, with the bridge's counters, after timeout_ms. */
void bh_wait_rows(bh_host *h, const char *hostname, int n, int timeout_ms);
/* Rows with the tag `tag` of origin `hostname` carry seq 0..n-1, each once,
 * in event_id order. */
void bh_assert_origin_sequence(bh_host *h, const char *hostname, const char *tag, int n);
/* Rows whose payload, without timestamp and trace_id, equals payload_json. */
int bh_count_payload(bh_host *h, const char *payload_json);
void bh_wait_payload(bh_host *h, const char *payload_json, int timeout_ms);
/* Every row of `hostname` whose payload has key first_key comes before every
 * one that has second_key. */
void bh_assert_payload_order(bh_host *h, const char *hostname, const char *first_key,
                             const char *second_key);

/* The number of messages the stream holds (-1 when it cannot be read). */
int bh_stream_messages(const char *servers, const char *stream);

/* Makes a host and runs its bridge on this thread until it returns (a
 * watchdog stops it after 30 s); returns what rre_bridge_run() returned,
 * and its message in why. */
rre_status bh_run_until_fatal(const char *root, const char *name, const char *servers,
                              const char *stream, const rre_bridge_options *extra, char *why,
                              size_t cap);

#endif
