/*
 * bridge_nats.c - the bridge between a host's durable queue and a NATS
 * JetStream stream (include/rre/bridge.h states what it guarantees;
 * docs/BRIDGE.md is the user's guide).
 *
 * DESIGN: rre_bridge_run() is a state machine on the calling thread:
 * CONNECTING (connect, make or check the stream, make the consumer, take the
 * queue subscriber) -> RUNNING (the outbound loop runs on this thread, the
 * inbound loop on a second one) -> BACKING_OFF on a failure that may pass,
 * FAILED on one that cannot, STOPPING/STOPPED on rre_bridge_stop(). Once
 * connected, the NATS library reconnects by itself; the bridge only reacts
 * to what fails.
 *
 * Outbound: rows are read with held reading (the cursor is recorded only up
 * to what the stream confirmed) and published asynchronously. Each publish
 * takes a slot of a ring, in row order, before it is sent; the PubAck
 * handler (a NATS library thread) marks its slot done. The outbound loop
 * pops done slots from the head and records the cursor up to the first one
 * still waiting. A failure marks the bridge `out_failed`: no more is sent,
 * the loop waits until nothing is in flight, records the confirmed prefix,
 * rewinds the read position to it, backs off, and sends again from there.
 * `mu` guards the ring, `out_failed`, the state and the fatal error; user
 * callbacks do not exist here, and no lock is held while calling into NATS
 * or SQLite, except that the ring slot of a publish is taken under `mu`
 * before the publish (so its PubAck always finds it).
 *
 * Inbound: fetch a batch, check each message, append the good ones and the
 * stream sequence reached in one transaction, then acknowledge. Messages
 * are taken in stream-sequence order only (see bridge.h).
 */
#include "canonical.h"
#include "dynlib.h"
#include "envelope.h"
#include "queue_sqlite.h"

#include <nats/nats.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libnats is opened when the first bridge is made (see dynlib.h), so a
 * process that never bridges maps neither it nor libssl: these are the
 * functions used, each then called through its resolved pointer. */
#define NATS_FUNCTIONS(X)                                                                          \
    X(jsConsumerConfig_Init)                                                                       \
    X(jsConsumerInfo_Destroy)                                                                      \
    X(jsCtx_Destroy)                                                                               \
    X(jsMsgMetaData_Destroy)                                                                       \
    X(jsOptions_Init)                                                                              \
    X(jsPubOptions_Init)                                                                           \
    X(jsStreamConfig_Init)                                                                         \
    X(jsStreamInfo_Destroy)                                                                        \
    X(jsSubOptions_Init)                                                                           \
    X(js_AddConsumer)                                                                              \
    X(js_AddStream)                                                                                \
    X(js_DeleteConsumer)                                                                           \
    X(js_GetConsumerInfo)                                                                          \
    X(js_GetStreamInfo)                                                                            \
    X(js_PublishAsyncGetPendingList)                                                               \
    X(js_PublishMsgAsync)                                                                          \
    X(js_PullSubscribe)                                                                            \
    X(natsConnection_Close)                                                                        \
    X(natsConnection_Connect)                                                                      \
    X(natsConnection_Destroy)                                                                      \
    X(natsConnection_JetStream)                                                                    \
    X(natsMsgHeader_Get)                                                                           \
    X(natsMsgHeader_Keys)                                                                          \
    X(natsMsgHeader_Set)                                                                           \
    X(natsMsgList_Destroy)                                                                         \
    X(natsMsg_Ack)                                                                                 \
    X(natsMsg_Create)                                                                              \
    X(natsMsg_Destroy)                                                                             \
    X(natsMsg_GetData)                                                                             \
    X(natsMsg_GetDataLength)                                                                       \
    X(natsMsg_GetMetaData)                                                                         \
    X(natsMsg_GetSubject)                                                                          \
    X(natsMsg_Term)                                                                                \
    X(natsOptions_Create)                                                                          \
    X(natsOptions_Destroy)                                                                         \
    X(natsOptions_LoadCATrustedCertificates)                                                       \
    X(natsOptions_LoadCertificatesChain)                                                           \
    X(natsOptions_SetAllowReconnect)                                                               \
    X(natsOptions_SetClosedCB)                                                                     \
    X(natsOptions_SetErrorHandler)                                                                 \
    X(natsOptions_SetMaxPingsOut)                                                                  \
    X(natsOptions_SetName)                                                                         \
    X(natsOptions_SetPingInterval)                                                                 \
    X(natsOptions_SetSecure)                                                                       \
    X(natsOptions_SetServers)                                                                      \
    X(natsOptions_SetTimeout)                                                                      \
    X(natsOptions_SetUserCredentialsFromFiles)                                                     \
    X(natsOptions_SetUserInfo)                                                                     \
    X(natsStatus_GetText)                                                                          \
    X(natsSubscription_Destroy)                                                                    \
    X(natsSubscription_Fetch)                                                                      \
    X(natsSubscription_Unsubscribe)                                                                \
    X(nats_GetLastError)

RRE__DYNLIB_DEFINE(nats_lib, NATS_FUNCTIONS, RRE_LIBNATS_SONAME, RRE_ENATS)

#define NATS_CALL(f) RRE__DYNLIB_CALL(nats_lib, f)
#define jsConsumerConfig_Init NATS_CALL(jsConsumerConfig_Init)
#define jsConsumerInfo_Destroy NATS_CALL(jsConsumerInfo_Destroy)
#define jsCtx_Destroy NATS_CALL(jsCtx_Destroy)
#define jsMsgMetaData_Destroy NATS_CALL(jsMsgMetaData_Destroy)
#define jsOptions_Init NATS_CALL(jsOptions_Init)
#define jsPubOptions_Init NATS_CALL(jsPubOptions_Init)
#define jsStreamConfig_Init NATS_CALL(jsStreamConfig_Init)
#define jsStreamInfo_Destroy NATS_CALL(jsStreamInfo_Destroy)
#define jsSubOptions_Init NATS_CALL(jsSubOptions_Init)
#define js_AddConsumer NATS_CALL(js_AddConsumer)
#define js_AddStream NATS_CALL(js_AddStream)
#define js_DeleteConsumer NATS_CALL(js_DeleteConsumer)
#define js_GetConsumerInfo NATS_CALL(js_GetConsumerInfo)
#define js_GetStreamInfo NATS_CALL(js_GetStreamInfo)
#define js_PublishAsyncGetPendingList NATS_CALL(js_PublishAsyncGetPendingList)
#define js_PublishMsgAsync NATS_CALL(js_PublishMsgAsync)
#define js_PullSubscribe NATS_CALL(js_PullSubscribe)
#define natsConnection_Close NATS_CALL(natsConnection_Close)
#define natsConnection_Connect NATS_CALL(natsConnection_Connect)
#define natsConnection_Destroy NATS_CALL(natsConnection_Destroy)
#define natsConnection_JetStream NATS_CALL(natsConnection_JetStream)
#define natsMsgHeader_Get NATS_CALL(natsMsgHeader_Get)
#define natsMsgHeader_Keys NATS_CALL(natsMsgHeader_Keys)
#define natsMsgHeader_Set NATS_CALL(natsMsgHeader_Set)
#define natsMsgList_Destroy NATS_CALL(natsMsgList_Destroy)
#define natsMsg_Ack NATS_CALL(natsMsg_Ack)
#define natsMsg_Create NATS_CALL(natsMsg_Create)
#define natsMsg_Destroy NATS_CALL(natsMsg_Destroy)
#define natsMsg_GetData NATS_CALL(natsMsg_GetData)
#define natsMsg_GetDataLength NATS_CALL(natsMsg_GetDataLength)
#define natsMsg_GetMetaData NATS_CALL(natsMsg_GetMetaData)
#define natsMsg_GetSubject NATS_CALL(natsMsg_GetSubject)
#define natsMsg_Term NATS_CALL(natsMsg_Term)
#define natsOptions_Create NATS_CALL(natsOptions_Create)
#define natsOptions_Destroy NATS_CALL(natsOptions_Destroy)
#define natsOptions_LoadCATrustedCertificates NATS_CALL(natsOptions_LoadCATrustedCertificates)
#define natsOptions_LoadCertificatesChain NATS_CALL(natsOptions_LoadCertificatesChain)
#define natsOptions_SetAllowReconnect NATS_CALL(natsOptions_SetAllowReconnect)
#define natsOptions_SetClosedCB NATS_CALL(natsOptions_SetClosedCB)
#define natsOptions_SetErrorHandler NATS_CALL(natsOptions_SetErrorHandler)
#define natsOptions_SetMaxPingsOut NATS_CALL(natsOptions_SetMaxPingsOut)
#define natsOptions_SetName NATS_CALL(natsOptions_SetName)
#define natsOptions_SetPingInterval NATS_CALL(natsOptions_SetPingInterval)
#define natsOptions_SetSecure NATS_CALL(natsOptions_SetSecure)
#define natsOptions_SetServers NATS_CALL(natsOptions_SetServers)
#define natsOptions_SetTimeout NATS_CALL(natsOptions_SetTimeout)
#define natsOptions_SetUserCredentialsFromFiles NATS_CALL(natsOptions_SetUserCredentialsFromFiles)
#define natsOptions_SetUserInfo NATS_CALL(natsOptions_SetUserInfo)
#define natsStatus_GetText NATS_CALL(natsStatus_GetText)
#define natsSubscription_Destroy NATS_CALL(natsSubscription_Destroy)
#define natsSubscription_Fetch NATS_CALL(natsSubscription_Fetch)
#define natsSubscription_Unsubscribe NATS_CALL(natsSubscription_Unsubscribe)
#define nats_GetLastError NATS_CALL(nats_GetLastError)

#define DEFAULT_MAX_AGE_S (7.0 * 24 * 3600)
#define DEFAULT_IN_FLIGHT 256
/* The longest source an inbound message may carry, in bytes. */
#define SOURCE_MAX 4096
#define DEFAULT_FETCH_BATCH 256
#define DEFAULT_PUBLISH_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define FETCH_WAIT_MS 500
#define ACK_WAIT_S 30
/* The outbound cursor is recorded at most this often while events flow. */
#define CURSOR_COMMIT_MS 20
/* Header names, written exactly so. */
#define H_MSG_ID "Nats-Msg-Id"
#define H_SPECVERSION "ce-specversion"
#define H_ID "ce-id"
#define H_SOURCE "ce-source"
#define H_TYPE "ce-type"
#define H_TIME "ce-time"
#define H_CONTENT_TYPE "ce-datacontenttype"
#define H_TRACEPARENT "ce-traceparent"
#define H_ORIGIN "Rre-Origin-Host"
#define CE_TYPE_PREFIX "ringrift."
#define CE_SOURCE_PREFIX "/ringrift/"

enum slot_state { SLOT_PENDING = 0, SLOT_OK, SLOT_FAILED };

struct slot {
    int64_t id;    /* the queue row */
    natsMsg *msg;  /* identifies the publish while it is pending */
    uint8_t state; /* enum slot_state */
};

struct rre_bridge {
    /* Immutable after rre_bridge_create(). */
    rre_queue *q;
    char **servers;
    int server_count;
    char *stream;
    int replicas;
    double max_age_s, dedup_window_s;
    bool replicas_given, max_age_given, dedup_given;
    char *host;
    char token[128];
    char consumer[160];
    char pos_name[320]; /* the name of the inbound position in the queue */
    char *user, *password, *creds, *tls_ca, *tls_cert, *tls_key;
    rre_bridge_start start;
    double start_time;
    int max_in_flight, fetch_batch, publish_timeout_ms;

    /* Set while running; NATS objects are thread-safe. */
    natsConnection *nc;
    jsCtx *js;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    rre_bridge_state state; /* mu */
    bool ran;               /* mu: rre_bridge_run() was called */
    bool ready;             /* mu: RUNNING was reached once */
    bool finished;          /* mu: rre_bridge_run() returned */
    rre_status fatal;       /* mu */
    char fatal_msg[512];    /* mu */
    atomic_bool stop;
    /* The connection of this session was lost (set by the NATS library's
     * closed callback, or by rre_bridge_run() ending a session). */
    atomic_bool session_over;
    bool closed_seen;                /* mu: the closed callback of this session's connection ran */
    struct session_closure *closure; /* this session's, while connected */

    /* The outbound ring; mu. */
    struct slot *ring;
    size_t ring_cap, ring_head, ring_len;
    size_t ack_hint; /* ring index after the slot the last PubAck matched */
    size_t in_flight;
    size_t wake_at; /* the acknowledgement handler wakes the outbound side when
                       in_flight drops to this (SIZE_MAX: at every one) */
    bool published; /* an async publish was made on this session's context (the
                       library's pending list exists only then) */
    bool out_failed;
    char out_error[256];

    /* Counters. */
    atomic_bool connected;
    _Atomic uint64_t out_published, out_duplicates, out_failures, out_passed;
    _Atomic int64_t out_cursor;
    _Atomic uint64_t in_messages, in_imported, in_duplicates, in_own, in_refused, in_redelivered,
        in_consumer_resets, in_stream_seq, reconnects, backoffs;
    /* Cross-host latency: events per bucket (not cumulative), count, sum. */
    _Atomic uint64_t lat_bucket[RRE_BRIDGE_LATENCY_BUCKETS], lat_count;
    _Atomic int64_t lat_sum_us;
    /* Rate limit of the refused-message log (inbound thread only). */
    int64_t refuse_log_ms;
    uint64_t refuse_unlogged;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static void lock(rre_bridge *b)
{
    rre__queue_lock(&b->mu);
}

static void unlock(rre_bridge *b)
{
    rre__queue_unlock(&b->mu);
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

const char *rre_bridge_state_name(rre_bridge_state state)
{
    switch (state) {
    case RRE_BRIDGE_CONNECTING:
        return "connecting";
    case RRE_BRIDGE_RUNNING:
        return "running";
    case RRE_BRIDGE_BACKING_OFF:
        return "backing_off";
    case RRE_BRIDGE_STOPPING:
        return "stopping";
    case RRE_BRIDGE_STOPPED:
        return "stopped";
    case RRE_BRIDGE_FAILED:
        return "failed";
    }
    return "unknown";
}

static void set_state(rre_bridge *b, rre_bridge_state s)
{
    lock(b);
    bool changed = b->state != s;
    /* A stop wins over the states of work in progress. */
    if (b->state == RRE_BRIDGE_STOPPING && s != RRE_BRIDGE_STOPPED && s != RRE_BRIDGE_FAILED)
        changed = false;
    else
        b->state = s;
    if (s == RRE_BRIDGE_RUNNING)
        b->ready = true;
    pthread_cond_broadcast(&b->cv);
    unlock(b);
    if (changed)
        rre__log(RRE_LOG_INFO, "bridge", "state: %s", rre_bridge_state_name(s));
}

static bool stopping(rre_bridge *b)
{
    return atomic_load(&b->stop);
}

/* Waits up to ms milliseconds, or less when the bridge is stopped. */
static void sleep_ms(rre_bridge *b, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    lock(b);
    while (!stopping(b) && !atomic_load(&b->session_over)) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
            break;
    }
    unlock(b);
}

/* The delay before retry number `attempt` (0, 1, ...): doubling from
 * BACKOFF_MIN_MS up to BACKOFF_MAX_MS, with up to a quarter of jitter. */
static int64_t backoff_ms(int attempt)
{
    int64_t d = BACKOFF_MIN_MS;
    for (int i = 0; i < attempt && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    unsigned seed = (unsigned)rre__queue_mono_ms() ^ (unsigned)(uintptr_t)&d;
    return d - d / 4 + (int64_t)(rand_r(&seed) % (int)(d / 2 + 1));
}

static void back_off(rre_bridge *b, int attempt, const char *why)
{
    int64_t ms = backoff_ms(attempt);
    atomic_fetch_add(&b->backoffs, 1);
    rre__log(RRE_LOG_WARN, "bridge", "%s; retrying in %.1f s", why, (double)ms / 1000.0);
    set_state(b, RRE_BRIDGE_BACKING_OFF);
    sleep_ms(b, ms);
}

/* An RRE_ENATS error with NATS's own description of what failed. */
static rre_status nats_error(natsStatus s, jsErrCode jerr, const char *what)
{
    const char *detail = nats_GetLastError(NULL);
    /* The library's message starts with its source location: not for users. */
    if (detail != NULL && detail[0] == '(') {
        const char *end = strstr(detail, "): ");
        if (end != NULL && end - detail < 64)
            detail += end - detail + 3;
    }
    if (jerr != 0)
        return rre__error(RRE_ENATS, "%s: %s (JetStream error %d)", what,
                          detail != NULL && detail[0] ? detail : natsStatus_GetText(s), (int)jerr);
    return rre__error(RRE_ENATS, "%s: %s", what,
                      detail != NULL && detail[0] ? detail : natsStatus_GetText(s));
}

/* True when s[0..len) is UTF-8 without NUL characters. */
static bool valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i], cp;
        size_t n;
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

rre_status rre_bridge_host_token(const char *host, char *buf, size_t cap)
{
    if (host == NULL || host[0] == '\0')
        return rre__error(RRE_EINVAL, "a host name must not be empty");
    size_t len = strnlen(host, RRE_BRIDGE_TOKEN_MAX);
    if (len + 1 > cap)
        return rre__error(RRE_ELIMIT, "the host token needs %zu bytes", len + 1);
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        buf[i] = ok ? c : '_';
    }
    buf[len] = '\0';
    return RRE_OK;
}

static void host_token(const char *host, char out[128]);

/* ------------------------------------------------------------------------ */
/* Creating and destroying                                                   */
/* ------------------------------------------------------------------------ */

void rre_bridge_options_init(rre_bridge_options *opts)
{
    if (opts != NULL)
        memset(opts, 0, sizeof *opts);
}

static void free_strings(rre_bridge *b)
{
    if (b->servers != NULL)
        for (int i = 0; i < b->server_count; i++)
            free(b->servers[i]);
    free(b->servers);
    free(b->stream);
    free(b->host);
    free(b->user);
    free(b->password);
    free(b->creds);
    free(b->tls_ca);
    free(b->tls_cert);
    free(b->tls_key);
}

/* Splits "a,b,c" into b->servers; empty items are refused. */
static rre_status split_servers(rre_bridge *b, const char *text)
{
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    b->servers = calloc(n, sizeof *b->servers);
    if (b->servers == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    const char *start = text;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
        while (len > 0 && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
            len--;
        if (len == 0)
            return rre__error(RRE_EINVAL, "the server list '%s' has an empty entry", text);
        b->servers[i] = strndup(start, len);
        if (b->servers[i] == NULL)
            return rre__error(RRE_ENOMEM, "out of memory");
        b->server_count = (int)i + 1;
        start = end != NULL ? end + 1 : start + len;
    }
    return RRE_OK;
}

/* An empty entry in a comma-separated server list. */
static bool empty_server(const char *list)
{
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t blanks = strspn(p, " \t");
        if (blanks >= len)
            return true;
        if (end == NULL)
            return false;
        p = end + 1;
    }
}

rre_status rre_bridge_options_check(const rre_bridge_options *opts)
{
    if (opts == NULL)
        return rre__error(RRE_EINVAL, "rre_bridge_options_check: opts is NULL");
    if (opts->servers == NULL || opts->servers[0] == '\0')
        return rre__error(RRE_EINVAL, "the bridge needs at least one NATS server URL");
    if (opts->replicas < 0 || opts->replicas > 5)
        return rre__error(RRE_EINVAL, "replicas must be between 1 and 5, not %d", opts->replicas);
    if (!(opts->max_age_s >= 0) || opts->max_age_s > 1e9)
        return rre__error(RRE_EINVAL, "the stream's maximum age must be positive and at most "
                                      "1e9 s (about 31 years)");
    if (!(opts->dedup_window_s >= 0) || opts->dedup_window_s > 1e9)
        return rre__error(RRE_EINVAL, "the duplicate window must be positive and at most 1e9 s");
    if (opts->max_in_flight < 0 || opts->max_in_flight > 1000000 || opts->fetch_batch < 0 ||
        opts->fetch_batch > 100000 || opts->publish_timeout_ms < 0)
        return rre__error(RRE_EINVAL, "max_in_flight, fetch_batch and publish_timeout_ms must "
                                      "be positive (or 0 for the default)");
    if ((opts->tls_cert == NULL) != (opts->tls_key == NULL))
        return rre__error(RRE_EINVAL, "a client certificate needs its key, and a key its "
                                      "certificate");
    if ((opts->user == NULL) != (opts->password == NULL))
        return rre__error(RRE_EINVAL, "a user needs a password, and a password a user");
    if ((opts->user != NULL && strpbrk(opts->user, "\"\\") != NULL) ||
        (opts->password != NULL && strpbrk(opts->password, "\"\\") != NULL))
        return rre__error(RRE_EINVAL, "a user or password with '\"' or '\\' cannot be sent: the "
                                      "NATS client library does not escape them");
    if (opts->user != NULL && opts->creds_file != NULL)
        return rre__error(RRE_EINVAL, "give either a user and password or a credentials file");
    if (opts->start == RRE_BRIDGE_START_TIME && !(opts->start_time > 0))
        return rre__error(RRE_EINVAL, "a start time must be a positive Unix time");
    if ((int)opts->start < 0 || opts->start > RRE_BRIDGE_START_TIME)
        return rre__error(RRE_EINVAL, "unknown start policy %d", (int)opts->start);
    if (opts->stream != NULL) {
        if (opts->stream[0] == '\0' || strpbrk(opts->stream, ". *>/\\\t\r\n") != NULL)
            return rre__error(RRE_EINVAL,
                              "the stream name '%s' is not valid (no spaces, '.', '*', '>', "
                              "'/' or '\\')",
                              opts->stream);
    }
    if (empty_server(opts->servers))
        return rre__error(RRE_EINVAL, "the server list '%s' has an empty entry", opts->servers);
    if (opts->host != NULL) {
        if (opts->host[0] == '\0')
            return rre__error(RRE_EINVAL, "the host name must not be empty");
        if (strlen(opts->host) > RRE_HOSTNAME_MAX)
            return rre__error(RRE_EINVAL, "the host name is longer than %d bytes",
                              RRE_HOSTNAME_MAX);
        if (!valid_utf8(opts->host, strlen(opts->host)))
            return rre__error(RRE_EINVAL, "the host name is not valid UTF-8");
    }
    return RRE_OK;
}

rre_status rre_bridge_create(rre_bridge **out, rre_queue *queue, const rre_bridge_options *opts)
{
    if (out == NULL || queue == NULL || opts == NULL)
        return rre__error(RRE_EINVAL, "rre_bridge_create: out, queue and opts must not be NULL");
    *out = NULL;
    rre_status checked = rre_bridge_options_check(opts);
    if (checked != RRE_OK)
        return checked;
    checked = rre__dynlib_load(&nats_lib, nats_lib_open);
    if (checked != RRE_OK)
        return checked;
    const char *host = opts->host != NULL ? opts->host : rre_queue_hostname(queue);
    if (host == NULL || host[0] == '\0' || !valid_utf8(host, strlen(host)))
        return rre__error(RRE_EINVAL, "the queue's host name is empty or not valid UTF-8");

    rre_bridge *b = calloc(1, sizeof *b);
    if (b == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->q = queue;
    bool oom = false;
    b->stream = dup_or_null(opts->stream != NULL ? opts->stream : RRE_BRIDGE_DEFAULT_STREAM, &oom);
    b->host = dup_or_null(host, &oom);
    b->user = dup_or_null(opts->user, &oom);
    b->password = dup_or_null(opts->password, &oom);
    b->creds = dup_or_null(opts->creds_file, &oom);
    b->tls_ca = dup_or_null(opts->tls_ca, &oom);
    b->tls_cert = dup_or_null(opts->tls_cert, &oom);
    b->tls_key = dup_or_null(opts->tls_key, &oom);
    rre_status st = oom ? rre__error(RRE_ENOMEM, "out of memory") : RRE_OK;
    if (st == RRE_OK)
        st = split_servers(b, opts->servers);
    if (st == RRE_OK)
        host_token(host, b->token);
    if (st == RRE_OK) {
        uint8_t md[RRE_HASH_SIZE];
        st = rre__sha256(host, strlen(host), md);
        if (st == RRE_OK)
            snprintf(b->consumer, sizeof b->consumer, "rre_%s_%02x%02x%02x%02x", b->token, md[0],
                     md[1], md[2], md[3]);
        snprintf(b->pos_name, sizeof b->pos_name, "inbound:%s:%s", b->stream, b->consumer);
    }
    if (st != RRE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", rre_last_error());
        free_strings(b);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return rre__error(st, "%s", msg);
    }
    b->replicas = opts->replicas > 0 ? opts->replicas : 1;
    b->replicas_given = opts->replicas > 0;
    b->max_age_s = opts->max_age_s > 0 ? opts->max_age_s : DEFAULT_MAX_AGE_S;
    b->max_age_given = opts->max_age_s > 0;
    b->dedup_window_s = opts->dedup_window_s > 0    ? opts->dedup_window_s
                        : queue->dedup_window_s > 0 ? queue->dedup_window_s
                                                    : 3600.0;
    b->dedup_given = opts->dedup_window_s > 0;
    b->start = opts->start;
    b->start_time = opts->start_time;
    b->max_in_flight = opts->max_in_flight > 0 ? opts->max_in_flight : DEFAULT_IN_FLIGHT;
    b->fetch_batch = opts->fetch_batch > 0 ? opts->fetch_batch : DEFAULT_FETCH_BATCH;
    b->publish_timeout_ms =
        opts->publish_timeout_ms > 0 ? opts->publish_timeout_ms : DEFAULT_PUBLISH_TIMEOUT_MS;
    b->state = RRE_BRIDGE_CONNECTING;
    atomic_init(&b->stop, false);
    atomic_init(&b->session_over, false);
    atomic_init(&b->connected, false);
    *out = b;
    return RRE_OK;
}

void rre_bridge_destroy(rre_bridge *b)
{
    if (b == NULL)
        return;
    free(b->ring);
    free_strings(b);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

const char *rre_bridge_consumer_name(const rre_bridge *b)
{
    return b != NULL ? b->consumer : NULL;
}

void rre_bridge_stop(rre_bridge *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->stop, true);
    lock(b);
    if (b->state != RRE_BRIDGE_STOPPED && b->state != RRE_BRIDGE_FAILED)
        b->state = RRE_BRIDGE_STOPPING;
    pthread_cond_broadcast(&b->cv);
    unlock(b);
}

rre_bridge_state rre_bridge_get_state(const rre_bridge *b)
{
    rre_bridge *m = (rre_bridge *)b;
    lock(m);
    rre_bridge_state s = m->state;
    unlock(m);
    return s;
}

rre_status rre_bridge_wait_ready(rre_bridge *b, int timeout_ms)
{
    if (b == NULL)
        return rre__error(RRE_EINVAL, "rre_bridge_wait_ready: bridge is NULL");
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rre__queue_mono_ms() + timeout_ms;
    lock(b);
    rre_status st = RRE_OK;
    while (!b->ready) {
        if (b->state == RRE_BRIDGE_FAILED) {
            st = rre__error(b->fatal, "%s", b->fatal_msg);
            break;
        }
        if (b->state == RRE_BRIDGE_STOPPED || b->state == RRE_BRIDGE_STOPPING) {
            st = rre__error(RRE_ECLOSED, "the bridge stopped before it was ready");
            break;
        }
        int64_t left = deadline - rre__queue_mono_ms();
        if (left <= 0) {
            st = rre__error(RRE_ETIMEOUT, "the bridge is not ready yet (state %s)",
                            rre_bridge_state_name(b->state));
            break;
        }
        if (left > 100)
            left = 100;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)left * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    unlock(b);
    return st;
}

void rre_bridge_get_counters(const rre_bridge *b, rre_bridge_counters *out)
{
    if (b == NULL || out == NULL)
        return;
    rre_bridge *m = (rre_bridge *)b;
    memset(out, 0, sizeof *out);
    out->state = rre_bridge_get_state(b);
    out->connected = atomic_load(&m->connected);
    out->out_published = atomic_load(&m->out_published);
    out->out_duplicates = atomic_load(&m->out_duplicates);
    out->out_failures = atomic_load(&m->out_failures);
    out->out_passed = atomic_load(&m->out_passed);
    out->out_cursor = atomic_load(&m->out_cursor);
    out->in_messages = atomic_load(&m->in_messages);
    out->in_imported = atomic_load(&m->in_imported);
    out->in_duplicates = atomic_load(&m->in_duplicates);
    out->in_own = atomic_load(&m->in_own);
    out->in_refused = atomic_load(&m->in_refused);
    out->in_redelivered = atomic_load(&m->in_redelivered);
    out->in_consumer_resets = atomic_load(&m->in_consumer_resets);
    out->in_stream_seq = atomic_load(&m->in_stream_seq);
    out->reconnects = atomic_load(&m->reconnects);
    out->backoffs = atomic_load(&m->backoffs);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

/* What the closed callback of one session's connection is given. The
 * library calls it on a thread of its own, maybe late (after the session
 * stopped waiting for it, after a later session began, after the bridge
 * was destroyed): so it holds a reference of its own, and the session lets
 * go of the bridge in it before moving on. */
struct session_closure {
    pthread_mutex_t mu;
    int refs;      /* mu: the session's, and the library's once connected */
    rre_bridge *b; /* mu: NULL once the session let go */
};

static struct session_closure *closure_new(rre_bridge *b)
{
    struct session_closure *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->refs = 1;
    c->b = b;
    return c;
}

/* Drops a reference; the last one frees it. `detach`: the session lets go
 * of the bridge, so a late callback touches nothing. */
static void closure_release(struct session_closure *c, bool detach)
{
    pthread_mutex_lock(&c->mu);
    if (detach)
        c->b = NULL;
    int refs = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (refs == 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
    }
}

/* The connection is gone (the library does not reconnect it: see
 * make_options()). Ends the session; rre_bridge_run() connects anew. */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    struct session_closure *c = closure;
    pthread_mutex_lock(&c->mu);
    rre_bridge *b = c->b;
    if (b != NULL) {
        atomic_store(&b->connected, false);
        atomic_store(&b->session_over, true);
        /* end_session() waits for this before the connection goes away. */
        lock(b);
        b->closed_seen = true;
        pthread_cond_broadcast(&b->cv);
        unlock(b);
    }
    pthread_mutex_unlock(&c->mu);
    closure_release(c, false); /* the library's reference */
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    rre__log(RRE_LOG_WARN, "bridge", "NATS reports: %s", natsStatus_GetText(err));
}

/* Whether a failure to connect is one that retrying cannot fix. */
static bool connect_failure_is_fatal(const rre_bridge *b, natsStatus s)
{
    /* With TLS 1.3 a server that wants a client certificate checks it after
     * the handshake and closes the connection: the client sees the protocol
     * cut short. Retrying cannot fix that either. */
    bool tls = b->tls_ca != NULL || b->tls_cert != NULL;
    return s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED || s == NATS_SSL_ERROR ||
           s == NATS_SECURE_CONNECTION_WANTED || s == NATS_SECURE_CONNECTION_REQUIRED ||
           s == NATS_ADDRESS_MISSING || s == NATS_INVALID_ARG || (tls && s == NATS_PROTOCOL_ERROR);
}

static rre_status make_options(rre_bridge *b, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    char name[300];
    snprintf(name, sizeof name, "rre bridge %s", b->host);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)b->servers, b->server_count);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    /* No reconnection by the library: after one it sends what it had
     * buffered, which may come after a lost earlier message whose resend
     * then lands behind it. A lost connection ends the session instead; its
     * buffers go with it, so the stream holds a prefix of what was sent, and
     * the bridge connects anew and resends from the first unconfirmed row. */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, 3);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_async_error, b);
    if (s == NATS_OK && b->user != NULL)
        s = natsOptions_SetUserInfo(o, b->user, b->password);
    if (s == NATS_OK && b->creds != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(o, b->creds, NULL);
    if (s == NATS_OK && (b->tls_ca != NULL || b->tls_cert != NULL))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && b->tls_ca != NULL)
        s = natsOptions_LoadCATrustedCertificates(o, b->tls_ca);
    if (s == NATS_OK && b->tls_cert != NULL)
        s = natsOptions_LoadCertificatesChain(o, b->tls_cert, b->tls_key);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return nats_error(s, 0, "setting up the NATS connection");
    }
    *out = o;
    return RRE_OK;
}

/* Checks an existing stream against the options, or creates it. Sets
 * *fatal for a conflict retrying cannot fix. */
static rre_status ensure_stream(rre_bridge *b, bool *fatal)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamConfig *c = si->Config;
        bool covers = false;
        for (int i = 0; i < c->SubjectsLen; i++)
            if (strcmp(c->Subjects[i], RRE_BRIDGE_SUBJECTS) == 0 ||
                strcmp(c->Subjects[i], ">") == 0)
                covers = true;
        char why[400] = "";
        int64_t age_ns = (int64_t)(b->max_age_s * 1e9);
        int64_t dup_ns = (int64_t)(b->dedup_window_s * 1e9);
        if (!covers)
            snprintf(why, sizeof why, "it does not take the subjects '%s'", RRE_BRIDGE_SUBJECTS);
        else if (b->replicas_given && c->Replicas != b->replicas)
            snprintf(why, sizeof why, "it has %lld replicas, not %d", (long long)c->Replicas,
                     b->replicas);
        else if (b->max_age_given && llabs(c->MaxAge - age_ns) > 1000000)
            snprintf(why, sizeof why, "its maximum age is %.0f s, not %.0f s",
                     (double)c->MaxAge / 1e9, b->max_age_s);
        else if (b->dedup_given && llabs(c->Duplicates - dup_ns) > 1000000)
            snprintf(why, sizeof why, "its duplicate window is %.0f s, not %.0f s",
                     (double)c->Duplicates / 1e9, b->dedup_window_s);
        jsStreamInfo_Destroy(si);
        if (why[0] != '\0') {
            *fatal = true;
            return rre__error(RRE_ENATS,
                              "the stream '%s' exists and conflicts with the options: %s "
                              "(change the stream, or leave the option out to use it as it is)",
                              b->stream, why);
        }
        return RRE_OK;
    }
    if (jerr == JSNotEnabledErr) {
        *fatal = true;
        return rre__error(RRE_ENATS, "the NATS server does not have JetStream enabled");
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return nats_error(s, jerr, "looking up the stream");

    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {RRE_BRIDGE_SUBJECTS};
    cfg.Name = b->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.MaxAge = (int64_t)(b->max_age_s * 1e9);
    cfg.Duplicates = (int64_t)(b->dedup_window_s * 1e9);
    cfg.Replicas = b->replicas;
    jerr = 0;
    s = js_AddStream(&si, b->js, &cfg, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        rre__log(RRE_LOG_INFO, "bridge",
                 "created the stream '%s' (%d replicas, max age %.0f s, duplicate window %.0f s)",
                 b->stream, b->replicas, b->max_age_s, b->dedup_window_s);
        return RRE_OK;
    }
    /* Another bridge made it meanwhile: nats-server 2.9 answers the loser
     * with "name in use" or "subjects overlap". Retrying finds it. */
    jsStreamInfo *again = NULL;
    if (jerr == JSStreamNameExistErr ||
        js_GetStreamInfo(&again, b->js, b->stream, NULL, NULL) == NATS_OK) {
        jsStreamInfo_Destroy(again);
        return nats_error(s, jerr, "creating the stream (another bridge made it meanwhile)");
    }
    /* A refusal of the settings (a duplicate window longer than the maximum
     * age, overlapping subjects, too many replicas for the cluster) is the
     * server's answer to this configuration, not a passing failure. */
    if (jerr != 0)
        *fatal = true;
    return nats_error(s, jerr, "creating the stream");
}

/* ------------------------------------------------------------------------ */
/* Outbound                                                                  */
/* ------------------------------------------------------------------------ */

/* Marks the slot of `msg` done. The PubAck handler, on a NATS thread. */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    rre_bridge *b = closure;
    lock(b);
    /* Acknowledgements come in publishing order, so the search starts after
     * the slot the previous one matched. */
    size_t start = (b->ack_hint + b->ring_cap - b->ring_head) % b->ring_cap;
    if (start >= b->ring_len)
        start = 0;
    for (size_t k = 0; k < b->ring_len; k++) {
        size_t idx = (b->ring_head + (start + k) % b->ring_len) % b->ring_cap;
        struct slot *sl = &b->ring[idx];
        if (sl->state != SLOT_PENDING || sl->msg != msg)
            continue;
        b->ack_hint = (idx + 1) % b->ring_cap;
        sl->msg = NULL;
        if (pa != NULL) {
            sl->state = SLOT_OK;
            atomic_fetch_add(pa->Duplicate ? &b->out_duplicates : &b->out_published, 1);
        } else {
            sl->state = SLOT_FAILED;
            atomic_fetch_add(&b->out_failures, 1);
            if (!b->out_failed)
                snprintf(b->out_error, sizeof b->out_error, "publishing event %lld: %s%s%s",
                         (long long)sl->id, natsStatus_GetText(pae != NULL ? pae->Err : NATS_ERR),
                         pae != NULL && pae->ErrText != NULL ? ": " : "",
                         pae != NULL && pae->ErrText != NULL ? pae->ErrText : "");
            b->out_failed = true;
        }
        b->in_flight--;
        break;
    }
    /* Waking the outbound side at every acknowledgement costs a context
     * switch per event; it waits for a quarter of its slots to free. */
    if (pa == NULL || b->in_flight <= b->wake_at)
        pthread_cond_broadcast(&b->cv);
    unlock(b);
    natsMsg_Destroy(msg);
}

/* Copies an RFC 3339 form of the timestamp `ts` to out: as it is when it is
 * one, with "Z" added when it lacks a zone, else false. */
static bool rfc3339(const char *ts, char *out, size_t cap)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM|-HH:MM] */
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++) {
        char c = ts[i];
        if (shape[i] == 'd'
                ? !(c >= '0' && c <= '9')
                : (shape[i] == 'T' ? (c != 'T' && c != 't' && c != ' ') : c != shape[i]))
            return false;
    }
    if (ts[i] == '.') {
        i++;
        size_t digits = 0;
        while (ts[i] >= '0' && ts[i] <= '9') {
            i++;
            digits++;
        }
        if (digits == 0)
            return false;
    }
    bool zone = false;
    if (ts[i] == 'Z' || ts[i] == 'z') {
        i++;
        zone = true;
    } else if (ts[i] == '+' || ts[i] == '-') {
        const char *z = ts + i + 1;
        if (!(z[0] >= '0' && z[0] <= '9' && z[1] >= '0' && z[1] <= '9' && z[2] == ':' &&
              z[3] >= '0' && z[3] <= '9' && z[4] >= '0' && z[4] <= '9'))
            return false;
        i += 6;
        zone = true;
    }
    if (ts[i] != '\0' || i + 2 > cap)
        return false;
    memcpy(out, ts, i);
    out[10] = 'T';
    if (!zone)
        out[i++] = 'Z';
    out[i] = '\0';
    return true;
}

static void format_time(double t, char *out, size_t cap)
{
    if (!(t > 0) || t > 253402300799.0)
        t = (double)time(NULL);
    time_t secs = (time_t)t;
    long micros = (long)((t - (double)secs) * 1e6);
    if (micros < 0 || micros > 999999)
        micros = 0;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%06ldZ", micros);
}

/* Builds the message of one row: the body is the stored text, or for a row
 * whose text needed repair (Python's NaN) the canonical form of what was
 * read. */
static rre_status build_message(rre_bridge *b, const rre__held_row *row, natsMsg **out)
{
    const rre_event *ev = row->ev;
    const rre_event_info *info = rre_event_get(ev->type);
    char subject[256];
    snprintf(subject, sizeof subject, "rre.%s.%s.%s", b->token, rre_category_name(info->category),
             info->name);
    char *body = NULL;
    size_t len = row->text_len;
    if (row->text == NULL) {
        rre_status st = rre_canonical_json(ev->payload, &body, &len);
        if (st != RRE_OK)
            return st;
    }
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, body != NULL ? body : row->text, (int)len);
    free(body);
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(ev->hash, hex);
    char type[160], when[64];
    snprintf(type, sizeof type, CE_TYPE_PREFIX "%s", info->name);
    /* /ringrift/<host>/<source>, each part one percent-encoded path segment
     * (a valid URI reference whatever the names hold), whole however long. */
    char *host_seg = rre__uri_segment_encode(b->host);
    char *source_seg = rre__uri_segment_encode(ev->source);
    char *source = NULL;
    if (host_seg != NULL && source_seg != NULL) {
        size_t source_len =
            strlen(CE_SOURCE_PREFIX) + strlen(host_seg) + 1 + strlen(source_seg) + 1;
        source = malloc(source_len);
        if (source != NULL)
            snprintf(source, source_len, CE_SOURCE_PREFIX "%s/%s", host_seg, source_seg);
    }
    free(host_seg);
    free(source_seg);
    if (source == NULL) {
        natsMsg_Destroy(m);
        return rre__error(RRE_ENOMEM, "out of memory");
    }
    if (!rfc3339(ev->timestamp, when, sizeof when))
        format_time(row->created_at, when, sizeof when);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_MSG_ID, hex);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_SPECVERSION, "1.0");
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_ID, hex);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_SOURCE, source);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_TYPE, type);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_TIME, when);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_CONTENT_TYPE, "application/json");
    if (s == NATS_OK && ev->trace_id[0] != '\0')
        s = natsMsgHeader_Set(m, H_TRACEPARENT, ev->trace_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_ORIGIN, b->host);
    free(source);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return nats_error(s, 0, "building a message");
    }
    *out = m;
    return RRE_OK;
}

struct out_ctx {
    rre_bridge *b;
    int64_t last_read; /* the last row read (of any host) */
    bool probing;      /* one publish in flight at most (see outbound_loop) */
};

/* Returned by on_row when a probe is in flight: the row is read again. */
#define OUT_WAIT RRE_ETIMEOUT

/* The handler of held reading: publishes a row of this host (the reader
 * passes the other hosts' rows). */
static rre_status on_row(const rre__held_row *row, void *user_data)
{
    struct out_ctx *c = user_data;
    rre_bridge *b = c->b;
    const rre_event *ev = row->ev;
    if (strcmp(ev->hostname, b->host) != 0) {
        c->last_read = ev->event_id;
        return RRE_OK;
    }
    if (c->probing) {
        lock(b);
        size_t pending = b->ring_len;
        unlock(b);
        if (pending > 0)
            return OUT_WAIT;
    }
    natsMsg *m = NULL;
    rre_status st = build_message(b, row, &m);
    if (st != RRE_OK) {
        /* Only an unwritable payload gets here (the reader decoded it). It
         * cannot be sent, now or later: pass it, loudly. */
        rre__log(RRE_LOG_ERROR, "bridge", "event %lld cannot be sent and is passed over: %s",
                 (long long)ev->event_id, rre_last_error());
        c->last_read = ev->event_id;
        return RRE_OK;
    }
    lock(b);
    if (b->out_failed) {
        unlock(b);
        natsMsg_Destroy(m);
        return RRE_ENATS;
    }
    size_t idx = (b->ring_head + b->ring_len) % b->ring_cap;
    b->ring[idx] = (struct slot){ev->event_id, m, SLOT_PENDING};
    b->ring_len++;
    b->in_flight++;
    b->published = true;
    unlock(b);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(ev->hash, hex);
    po.MsgId = hex;
    po.MaxWait = b->publish_timeout_ms;
    natsMsg *sent = m;
    natsStatus s = js_PublishMsgAsync(b->js, &sent, &po);
    if (s != NATS_OK) {
        /* Not taken: the PubAck handler never sees it. */
        lock(b);
        struct slot *sl = &b->ring[idx];
        if (sl->state == SLOT_PENDING && sl->msg == m) {
            sl->state = SLOT_FAILED;
            sl->msg = NULL;
            b->in_flight--;
        }
        atomic_fetch_add(&b->out_failures, 1);
        if (!b->out_failed)
            snprintf(b->out_error, sizeof b->out_error, "publishing event %lld: %s",
                     (long long)ev->event_id, natsStatus_GetText(s));
        b->out_failed = true;
        unlock(b);
        natsMsg_Destroy(sent);
        c->last_read = ev->event_id;
        return RRE_ENATS;
    }
    c->last_read = ev->event_id;
    return RRE_OK;
}

/* Records a fatal error (the calling thread's last error) and stops. */
static rre_status fail_fatal(rre_bridge *b, rre_status st)
{
    lock(b);
    if (b->fatal == RRE_OK) {
        b->fatal = st;
        snprintf(b->fatal_msg, sizeof b->fatal_msg, "%s", rre_last_error());
    }
    pthread_cond_broadcast(&b->cv);
    unlock(b);
    atomic_store(&b->stop, true);
    rre__log(RRE_LOG_ERROR, "bridge", "%s", rre_last_error());
    return st;
}

/* Pops the confirmed slots at the head of the ring and returns the id up
 * to which every row read is confirmed. mu held. */
static int64_t confirmed_upto(rre_bridge *b, int64_t last_read)
{
    while (b->ring_len > 0 && b->ring[b->ring_head].state == SLOT_OK) {
        b->ring_head = (b->ring_head + 1) % b->ring_cap;
        b->ring_len--;
    }
    if (b->ring_len == 0)
        return last_read;
    return b->ring[b->ring_head].id - 1;
}

/* Gives up on publishes still pending after their time is up, so no
 * PubAck handler runs for them later. */
static void reclaim_pending(rre_bridge *b)
{
    natsMsgList pending = {0};
    lock(b);
    bool published = b->published;
    unlock(b);
    /* The library's list exists only after a first async publish. */
    if (!published || js_PublishAsyncGetPendingList(&pending, b->js) != NATS_OK)
        return;
    lock(b);
    for (int i = 0; i < pending.Count; i++) {
        for (size_t k = 0; k < b->ring_len; k++) {
            struct slot *sl = &b->ring[(b->ring_head + k) % b->ring_cap];
            if (sl->state == SLOT_PENDING && sl->msg == pending.Msgs[i]) {
                sl->state = SLOT_FAILED;
                sl->msg = NULL;
                b->in_flight--;
                break;
            }
        }
    }
    unlock(b);
    natsMsgList_Destroy(&pending);
}

/* Waits until nothing is in flight (bounded: what stays pending past the
 * publish timeout is reclaimed). */
static void drain_in_flight(rre_bridge *b)
{
    /* Stopping, no confirmation can come any more (the connection is
     * closed): take the publishes back at once. */
    int64_t deadline = rre__queue_mono_ms() + (stopping(b) ? 0 : b->publish_timeout_ms + 2000);
    for (;;) {
        lock(b);
        size_t left = b->in_flight;
        if (left > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            left = b->in_flight;
        }
        unlock(b);
        if (left == 0)
            return;
        if (rre__queue_mono_ms() > deadline) {
            reclaim_pending(b);
            deadline = rre__queue_mono_ms() + 1000;
        }
    }
}

/* After a failed publish: wait for what is in flight, record the confirmed
 * prefix, rewind to it, back off. */
static rre_status recover_outbound(rre_bridge *b, rre_subscriber *sub, struct out_ctx *c,
                                   int *attempt)
{
    drain_in_flight(b);
    lock(b);
    int64_t upto = confirmed_upto(b, c->last_read);
    char why[256];
    snprintf(why, sizeof why, "%s", b->out_error);
    b->ring_len = 0;
    b->out_failed = false;
    b->out_error[0] = '\0';
    unlock(b);
    rre_status st = rre__subscriber_commit(sub, upto);
    if (st == RRE_EHELD || st == RRE_ECLOSED)
        return st;
    atomic_store(&b->out_cursor, rre__subscriber_cursor(sub));
    rre__subscriber_rewind(sub);
    c->last_read = rre__subscriber_cursor(sub);
    if (attempt != NULL)
        back_off(b, (*attempt)++, why);
    return RRE_OK;
}

/* The outbound side, on the thread of rre_bridge_run(). */
static rre_status outbound_loop(rre_bridge *b, rre_subscriber *sub)
{
    struct out_ctx c = {b, rre__subscriber_cursor(sub), true};
    rre_status hst = rre__subscriber_hold(sub, b->host);
    if (hst != RRE_OK)
        return hst;
    int64_t last_commit_ms = 0;
    int attempt = 0, db_attempt = 0;
    /* Probing: one message at a time until the stream has confirmed one, at
     * the start and after every failure. Pipelined messages that meet a
     * leader election could otherwise be stored out of order: the first
     * refused ("no responders"), a later one accepted by the new leader. */
    bool probing = true;
    uint64_t confirmed_before = 0;
    atomic_store(&b->out_cursor, c.last_read);
    while (!stopping(b) && !atomic_load(&b->session_over)) {
        lock(b);
        bool failed = b->out_failed;
        int64_t upto = confirmed_upto(b, c.last_read);
        size_t ring_len = b->ring_len;
        unlock(b);
        uint64_t confirmed = atomic_load(&b->out_published) + atomic_load(&b->out_duplicates);
        if (probing && !failed && confirmed > confirmed_before)
            probing = false;
        c.probing = probing;
        /* Rows to read: up to the free slots (other hosts' rows use none,
         * but bound the batch all the same). */
        size_t room = probing && ring_len > 0 ? 0 : (size_t)b->max_in_flight - ring_len;
        /* Reading a few rows at a time costs a query each: with most slots
         * busy, wait for a quarter of them to free first. */
        if (ring_len > 0 && room < (size_t)b->max_in_flight / 4)
            room = 0;
        bool idle = ring_len == 0;
        if (failed) {
            if (atomic_load(&b->session_over))
                break; /* the end of the session does the recovery */
            rre_status st = recover_outbound(b, sub, &c, &attempt);
            if (st != RRE_OK)
                return st;
            probing = true;
            confirmed_before = atomic_load(&b->out_published) + atomic_load(&b->out_duplicates);
            continue;
        }
        int64_t now = rre__queue_mono_ms();
        if (upto > rre__subscriber_cursor(sub) && now - last_commit_ms >= CURSOR_COMMIT_MS) {
            rre_status st = rre__subscriber_commit(sub, upto);
            if (st == RRE_EHELD || st == RRE_ECLOSED)
                return st;
            if (st != RRE_OK) {
                back_off(b, db_attempt++, rre_last_error());
                continue;
            }
            last_commit_ms = now;
            atomic_store(&b->out_cursor, upto);
            attempt = 0;
            set_state(b, RRE_BRIDGE_RUNNING);
        }
        if (room == 0) {
            lock(b);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += CURSOR_COMMIT_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            /* Until enough acknowledgements came (confirmed slots at the
             * head are popped at the top of the loop): a quarter of the
             * slots, or the head's when acknowledgements come out of order. */
            if (!b->out_failed && b->ring_len > 0 && b->ring[b->ring_head].state == SLOT_PENDING &&
                b->in_flight > 0) {
                size_t quarter = (size_t)b->max_in_flight * 3 / 4;
                b->wake_at = probing || b->in_flight <= quarter ? b->in_flight - 1 : quarter;
                pthread_cond_timedwait(&b->cv, &b->mu, &ts);
                b->wake_at = SIZE_MAX;
            }
            unlock(b);
            continue;
        }
        size_t n = 0;
        bool settled = idle && upto <= rre__subscriber_cursor(sub);
        rre_status st =
            rre__subscriber_read(sub, settled ? 250 : CURSOR_COMMIT_MS, room, on_row, &c, &n);
        /* Rows passed over (other hosts') count as read. */
        int64_t pos = rre__subscriber_read_pos(sub);
        if (pos > c.last_read)
            c.last_read = pos;
        rre_subscriber_counters sc;
        rre_subscriber_get_counters(sub, &sc);
        atomic_store(&b->out_passed, sc.filtered);
        if (st == RRE_OK || st == RRE_ENATS || st == OUT_WAIT) {
            db_attempt = 0;
            continue; /* a failed publish is handled at the top */
        }
        if (st == RRE_EHELD || st == RRE_ECLOSED)
            return st;
        back_off(b, db_attempt++, rre_last_error());
    }
    /* The end of the session (a stop, or a lost connection): what is in
     * flight is in doubt. Record what the stream confirmed and read again
     * from there in the next session (the stream drops the copies). */
    reclaim_pending(b);
    rre_status st = recover_outbound(b, sub, &c, NULL);
    return st == RRE_EHELD || st == RRE_ECLOSED ? st : RRE_OK;
}

/* ------------------------------------------------------------------------ */
/* Inbound                                                                   */
/* ------------------------------------------------------------------------ */

struct headers {
    const char *msg_id, *spec, *id, *source, *type, *time, *content_type, *trace, *origin;
};

static void read_headers(natsMsg *m, struct headers *h)
{
    memset(h, 0, sizeof *h);
    const char **keys = NULL;
    int count = 0;
    if (natsMsgHeader_Keys(m, &keys, &count) != NATS_OK)
        return;
    static const struct {
        const char *name;
        size_t offset;
    } known[] = {
        {H_MSG_ID, offsetof(struct headers, msg_id)},
        {H_SPECVERSION, offsetof(struct headers, spec)},
        {H_ID, offsetof(struct headers, id)},
        {H_SOURCE, offsetof(struct headers, source)},
        {H_TYPE, offsetof(struct headers, type)},
        {H_TIME, offsetof(struct headers, time)},
        {H_CONTENT_TYPE, offsetof(struct headers, content_type)},
        {H_TRACEPARENT, offsetof(struct headers, trace)},
        {H_ORIGIN, offsetof(struct headers, origin)},
    };
    for (int i = 0; i < count; i++) {
        for (size_t k = 0; k < RRE__ARRAY_LEN(known); k++) {
            /* Nats-Msg-Id counts only as written: the server reads it so,
             * and under another spelling it deduplicated nothing. */
            if (k == 0 ? strcmp(keys[i], known[k].name) != 0
                       : strcasecmp(keys[i], known[k].name) != 0)
                continue;
            const char **slot = (const char **)((char *)h + known[k].offset);
            const char *v = NULL;
            if (*slot == NULL && natsMsgHeader_Get(m, keys[i], &v) == NATS_OK)
                *slot = v;
            break;
        }
    }
    free((void *)keys);
}

static bool is_hash_hex(const char *s)
{
    if (s == NULL || strlen(s) != RRE_HASH_HEX_SIZE - 1)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* The subject token of `host`. */
static void host_token(const char *host, char out[128])
{
    if (rre_bridge_host_token(host, out, 128) != RRE_OK)
        out[0] = '\0';
}

enum verdict { V_GOOD, V_OWN, V_BAD };

/* Checks one message. V_GOOD fills `row` (pointing into the message);
 * V_BAD writes the reason to why. */
static enum verdict check_message(rre_bridge *b, natsMsg *m, rre__import_row *row, char *why,
                                  size_t cap)
{
    const char *subject = natsMsg_GetSubject(m);
    char tok[4][160];
    int ntok = 0;
    const char *p = subject;
    while (ntok < 4) {
        const char *dot = strchr(p, '.');
        size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (len >= sizeof tok[0])
            break;
        memcpy(tok[ntok], p, len);
        tok[ntok][len] = '\0';
        ntok++;
        if (dot == NULL) {
            p = NULL;
            break;
        }
        p = dot + 1;
    }
    if (ntok != 4 || p != NULL || strcmp(tok[0], "rre") != 0) {
        snprintf(why, cap, "the subject '%.100s' is not rre.<host>.<category>.<TYPE>", subject);
        return V_BAD;
    }
    /* This host's own messages, the most common kind on a busy host, are
     * recognised by their subject and one header. */
    const char *origin = NULL;
    if (strcmp(tok[1], b->token) == 0 && natsMsgHeader_Get(m, H_ORIGIN, &origin) == NATS_OK &&
        strcmp(origin, b->host) == 0)
        return V_OWN;
    struct headers h;
    read_headers(m, &h);
    if (h.origin == NULL || h.origin[0] == '\0' || strlen(h.origin) > 255 ||
        !valid_utf8(h.origin, strlen(h.origin))) {
        snprintf(why, cap, "no valid " H_ORIGIN " header");
        return V_BAD;
    }
    char expect[128];
    host_token(h.origin, expect);
    if (strcmp(expect, tok[1]) != 0) {
        snprintf(why, cap, "the subject names host '%.64s' but " H_ORIGIN " is '%.64s'", tok[1],
                 h.origin);
        return V_BAD;
    }
    if (strcmp(h.origin, b->host) == 0)
        return V_OWN;
    rre_event_type type;
    const rre_event_info *info = NULL;
    if (rre_event_lookup(tok[3], &type) == RRE_OK)
        info = rre_event_get(type);
    if (info == NULL || info->alias_of != RRE_EV_NONE || strcmp(info->name, tok[3]) != 0) {
        snprintf(why, cap, "unknown event type '%.64s' (subjects carry the canonical name)",
                 tok[3]);
        return V_BAD;
    }
    if (strcmp(rre_category_name(info->category), tok[2]) != 0) {
        snprintf(why, cap, "%s is in category '%s', not '%.40s'", info->name,
                 rre_category_name(info->category), tok[2]);
        return V_BAD;
    }
    if (!is_hash_hex(h.msg_id)) {
        snprintf(why, cap, "no " H_MSG_ID " header of 64 lowercase hex digits");
        return V_BAD;
    }
    if (h.spec == NULL || strcmp(h.spec, "1.0") != 0 || h.id == NULL ||
        strcmp(h.id, h.msg_id) != 0 || h.type == NULL ||
        strncmp(h.type, CE_TYPE_PREFIX, strlen(CE_TYPE_PREFIX)) != 0 ||
        strcmp(h.type + strlen(CE_TYPE_PREFIX), info->name) != 0) {
        snprintf(why, cap,
                 "the CloudEvents headers (specversion 1.0, id = " H_MSG_ID
                 ", type ringrift.<TYPE>) do not match the message");
        return V_BAD;
    }
    /* ce-source: /ringrift/<host>/<source>, each part percent-encoded. */
    size_t plen = strlen(CE_SOURCE_PREFIX);
    const char *slash = h.source != NULL && strncmp(h.source, CE_SOURCE_PREFIX, plen) == 0
                            ? strchr(h.source + plen, '/')
                            : NULL;
    char *src_host =
        slash != NULL
            ? rre__uri_segment_decode(h.source + plen, (size_t)(slash - h.source) - plen, NULL)
            : NULL;
    bool host_ok = src_host != NULL && strcmp(src_host, h.origin) == 0;
    free(src_host);
    if (!host_ok) {
        snprintf(why, cap,
                 "ce-source is not " CE_SOURCE_PREFIX "<origin host>/<source> (percent-encoded)");
        return V_BAD;
    }
    size_t source_len = 0;
    char *source = rre__uri_segment_decode(slash + 1, strlen(slash + 1), &source_len);
    if (source == NULL || source_len != strlen(source) || source_len > SOURCE_MAX ||
        !valid_utf8(source, source_len)) {
        free(source);
        snprintf(why, cap, "the source is longer than %d bytes, not UTF-8 or badly encoded",
                 SOURCE_MAX);
        return V_BAD;
    }
    row->owned = source; /* freed by the caller, whatever the verdict */
    const char *body = natsMsg_GetData(m);
    int blen = natsMsg_GetDataLength(m);
    if (body == NULL || blen <= 0) {
        snprintf(why, cap, "the body is empty");
        return V_BAD;
    }
    if ((size_t)blen > RRE_PAYLOAD_MAX_BYTES) {
        snprintf(why, cap, "the body is %d bytes, over the %u-byte payload limit", blen,
                 RRE_PAYLOAD_MAX_BYTES);
        return V_BAD;
    }
    json_t *payload = NULL;
    rre_status st = rre_payload_parse(body, (size_t)blen, &payload);
    if (st != RRE_OK) {
        snprintf(why, cap, "the body is not a valid payload: %s: %.100s", rre_strerror(st),
                 rre_last_error());
        return V_BAD;
    }
    uint8_t hash[RRE_HASH_SIZE];
    st = rre_content_hash(info->type, payload, hash);
    json_decref(payload);
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(hash, hex);
    if (st != RRE_OK || strcmp(hex, h.msg_id) != 0) {
        snprintf(why, cap, H_MSG_ID " %.16s... is not the content hash of the body (%.16s...)",
                 h.msg_id, hex);
        return V_BAD;
    }
    row->spelling = info->queue_spelling;
    row->payload_text = body;
    row->payload_len = (size_t)blen;
    row->source = source;
    row->hostname = h.origin;
    memcpy(row->hash, hash, RRE_HASH_SIZE);
    return V_GOOD;
}

static void report_refused(rre_bridge *b, natsMsg *m, uint64_t seq, const char *why)
{
    atomic_fetch_add(&b->in_refused, 1);
    int64_t now = rre__queue_mono_ms();
    if (now - b->refuse_log_ms < 1000) {
        b->refuse_unlogged++;
        return;
    }
    rre__log(RRE_LOG_WARN, "bridge",
             "refused stream message %llu on '%.120s': %s (%llu more refused since the last "
             "report)",
             (unsigned long long)seq, natsMsg_GetSubject(m), why,
             (unsigned long long)b->refuse_unlogged);
    b->refuse_log_ms = now;
    b->refuse_unlogged = 0;
}

#define RETIRED_MAX 64

struct inbound {
    rre_bridge *b;
    rre__importer *im;
    natsSubscription *sub;
    /* Subscriptions given up while the connection was open, unsubscribed
     * but not destroyed yet (see drop_consumer()). */
    natsSubscription *retired[RETIRED_MAX];
    int nretired;
    uint64_t done;         /* last stream sequence stored or passed (committed) */
    uint64_t pos;          /* last stream sequence handled: done, or beyond it when the
                              messages since were only passed (own or refused ones) */
    int64_t pos_commit_ms; /* when a position alone was last recorded */
    bool accept_any;       /* the next message starts a new consumer: no gap check */
    uint64_t reconnects;   /* b->reconnects when the consumer was made */
    int64_t checked_ms;    /* when the consumer was last seen to exist */
    uint64_t stalled_at;   /* pos when the server last said it delivered past it, or
                              UINT64_MAX */
    rre__import_row *rows;
    int64_t *origin_us; /* per row: the event's own time (ce-time), or -1 */
    natsMsg **terms;
    pthread_t thread;
};

static const double latency_bounds[RRE_BRIDGE_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};

const double *rre_bridge_latency_bounds(void)
{
    return latency_bounds;
}

void rre_bridge_get_latency(const rre_bridge *b, rre_bridge_latency *out)
{
    memset(out, 0, sizeof *out);
    if (b == NULL)
        return;
    rre_bridge *m = (rre_bridge *)b;
    uint64_t running = 0;
    for (int i = 0; i < RRE_BRIDGE_LATENCY_BUCKETS; i++) {
        running += atomic_load(&m->lat_bucket[i]);
        out->buckets[i] = running;
    }
    out->count = atomic_load(&m->lat_count);
    if (out->count < running) /* read while an event was being added */
        out->count = running;
    out->sum_seconds = (double)atomic_load(&m->lat_sum_us) / 1e6;
}

/* Adds the latency of an event imported now whose own time was `origin_us`. */
static void record_latency(rre_bridge *b, int64_t origin_us, int64_t now_us)
{
    int64_t us = now_us - origin_us;
    if (us < 0)
        us = 0;
    double s = (double)us / 1e6;
    for (int i = 0; i < RRE_BRIDGE_LATENCY_BUCKETS; i++)
        if (s <= latency_bounds[i]) {
            atomic_fetch_add(&b->lat_bucket[i], 1);
            break;
        }
    atomic_fetch_add(&b->lat_sum_us, us);
    atomic_fetch_add(&b->lat_count, 1);
}

/* Gives up the consumer's subscription: unsubscribed now, destroyed by
 * destroy_retired() once the connection is closed and its last callback
 * was delivered. libnats 3.4 may still be handling a message or an
 * asynchronous error of a subscription on one of its own threads after
 * Unsubscribe() returns (a late fetch response, a status message), and
 * destroying the subscription then can crash that thread (fixed in later
 * libnats versions). The oldest retired one is destroyed when more than
 * RETIRED_MAX pile up in one session: what concerned it was handled long
 * before. */
static void drop_consumer(struct inbound *in)
{
    if (in->sub == NULL)
        return;
    natsSubscription_Unsubscribe(in->sub);
    if (in->nretired == RETIRED_MAX) {
        natsSubscription_Destroy(in->retired[0]);
        memmove(in->retired, in->retired + 1, (RETIRED_MAX - 1) * sizeof in->retired[0]);
        in->nretired--;
    }
    in->retired[in->nretired++] = in->sub;
    in->sub = NULL;
}

static void destroy_retired(struct inbound *in)
{
    for (int i = 0; i < in->nretired; i++)
        natsSubscription_Destroy(in->retired[i]);
    in->nretired = 0;
}

/* Makes the consumer anew, at the first sequence not yet stored (or by the
 * start policy on a first start), and binds a pull subscription to it. */
static rre_status setup_consumer(struct inbound *in, bool *fatal)
{
    rre_bridge *b = in->b;
    int64_t pos = 0;
    bool found = false;
    rre_status st = rre__importer_position(in->im, b->pos_name, &pos, &found);
    if (st != RRE_OK)
        return st;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        /* Deleted while the bridge ran: make it again, as at the start. */
        st = ensure_stream(b, fatal);
        if (st != RRE_OK)
            return st;
        jerr = 0;
        s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
    }
    if (s != NATS_OK)
        return nats_error(s, jerr, "looking up the stream");
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);

    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = b->consumer;
    cc.Description = "rre bridge: imports other hosts' events into this host's queue";
    cc.FilterSubject = RRE_BRIDGE_SUBJECTS;
    /* Messages are handled in stream order and acknowledged after their
     * commit, so one acknowledgement per batch, for the last, does. */
    cc.AckPolicy = js_AckAll;
    cc.AckWait = (int64_t)ACK_WAIT_S * 1000000000LL;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = b->fetch_batch * 4 > 1000 ? b->fetch_batch * 4 : 1000;
    bool record_now = false;
    if (found && (uint64_t)pos > last) {
        rre__log(RRE_LOG_WARN, "bridge",
                 "the stream '%s' ends at sequence %llu, before the %lld this host reached: "
                 "it was made anew; importing all of it",
                 b->stream, (unsigned long long)last, (long long)pos);
        pos = 0;
        record_now = true;
    }
    if (found || record_now) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = (uint64_t)pos + 1;
    } else if (b->start == RRE_BRIDGE_START_ALL) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        pos = first > 0 ? (int64_t)first - 1 : 0;
        cc.OptStartSeq = (uint64_t)pos + 1;
        record_now = true;
    } else if (b->start == RRE_BRIDGE_START_TIME) {
        cc.DeliverPolicy = js_DeliverByStartTime;
        cc.OptStartTime = (int64_t)(b->start_time * 1e9);
    } else {
        /* New events only: from the sequence after the stream's last. */
        pos = (int64_t)last;
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = last + 1;
        record_now = true;
    }
    jerr = 0;
    s = js_DeleteConsumer(b->js, b->stream, b->consumer, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr)
        return nats_error(s, jerr, "removing the previous consumer");
    jsConsumerInfo *ci = NULL;
    jerr = 0;
    s = js_AddConsumer(&ci, b->js, b->stream, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        /* 10013 (name in use): the delete has not taken effect yet, as
         * during a leader change; it passes. */
        if (jerr != 0 && jerr != JSStreamNotFoundErr && jerr != 10013)
            *fatal = true;
        return nats_error(s, jerr, "creating the consumer");
    }
    jsConsumerInfo_Destroy(ci);
    if (record_now) {
        st = rre__importer_append(in->im, NULL, 0, b->pos_name, pos);
        if (st != RRE_OK)
            return st;
    }
    in->done = in->pos = (uint64_t)pos;
    atomic_store(&b->in_stream_seq, in->done);
    in->accept_any = true;
    in->reconnects = atomic_load(&b->reconnects);
    in->checked_ms = rre__queue_mono_ms();
    in->stalled_at = UINT64_MAX;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = b->stream;
    so.Consumer = b->consumer;
    jerr = 0;
    s = js_PullSubscribe(&in->sub, b->js, RRE_BRIDGE_SUBJECTS, b->consumer, NULL, &so, &jerr);
    if (s != NATS_OK)
        return nats_error(s, jerr, "subscribing to the consumer");
    return RRE_OK;
}

static void ack_upto(natsMsg **last, uint64_t *last_seq, natsMsg *m, uint64_t seq)
{
    if (seq >= *last_seq) {
        *last = m;
        *last_seq = seq;
    }
}

/* Handles one fetched batch. Returns false when the consumer must be made
 * again (a gap in the sequence, or a failed commit); *closed when the queue
 * was closed. */
static bool handle_batch(struct inbound *in, natsMsgList *list, bool *closed)
{
    rre_bridge *b = in->b;
    size_t nrows = 0, nterms = 0;
    natsMsg *ack_last = NULL; /* the message with the highest sequence to acknowledge */
    uint64_t ack_last_seq = 0;
    uint64_t pos = in->pos;
    bool gap = false;
    char why[256];
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
            /* Not a JetStream delivery: nothing to acknowledge either. */
            continue;
        }
        uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        atomic_fetch_add(&b->in_messages, 1);
        if (seq <= pos) {
            atomic_fetch_add(&b->in_redelivered, 1);
            ack_upto(&ack_last, &ack_last_seq, m, seq);
            continue;
        }
        if (!in->accept_any && seq != pos + 1) {
            gap = true;
            break;
        }
        in->accept_any = false;
        pos = seq;
        rre__import_row *row = &in->rows[nrows];
        memset(row, 0, sizeof *row);
        enum verdict v = check_message(b, m, row, why, sizeof why);
        if (v == V_GOOD) {
            const char *t = NULL;
            int64_t us = -1;
            if (natsMsgHeader_Get(m, H_TIME, &t) != NATS_OK || t == NULL ||
                !rre__timestamp_parse(t, &us))
                us = -1;
            in->origin_us[nrows] = us;
        }
        switch (v) {
        case V_GOOD:
            nrows++;
            ack_upto(&ack_last, &ack_last_seq, m, seq);
            break;
        case V_OWN:
            free(row->owned);
            atomic_fetch_add(&b->in_own, 1);
            ack_upto(&ack_last, &ack_last_seq, m, seq);
            break;
        case V_BAD:
            free(row->owned);
            report_refused(b, m, seq, why);
            in->terms[nterms++] = m;
            break;
        }
    }
    /* Messages are stored with the position in one transaction. A batch of
     * passed messages only (this host's own, refused ones) needs no
     * transaction of its own: recording its position once a second is
     * enough, since passing them again after a crash changes nothing. */
    int64_t now = rre__queue_mono_ms();
    if (nrows > 0 || (pos > in->done && now - in->pos_commit_ms >= 1000)) {
        rre_status st = rre__importer_append(in->im, in->rows, nrows, b->pos_name, (int64_t)pos);
        for (size_t i = 0; i < nrows; i++) {
            free(in->rows[i].owned);
            in->rows[i].owned = NULL;
        }
        if (st != RRE_OK) {
            *closed = st == RRE_ECLOSED;
            rre__log(RRE_LOG_WARN, "bridge", "storing %zu events from the stream failed: %s", nrows,
                     rre_last_error());
            return false; /* nothing acknowledged; the consumer starts again at done + 1 */
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        for (size_t i = 0; i < nrows; i++) {
            atomic_fetch_add(in->rows[i].duplicate ? &b->in_duplicates : &b->in_imported, 1);
            if (!in->rows[i].duplicate && in->origin_us[i] >= 0)
                record_latency(b, in->origin_us[i], now_us);
        }
        in->done = pos;
        in->pos_commit_ms = now;
    }
    in->pos = pos;
    atomic_store(&b->in_stream_seq, pos);
    for (size_t i = 0; i < nterms; i++)
        natsMsg_Term(in->terms[i], NULL);
    if (ack_last != NULL)
        natsMsg_Ack(ack_last, NULL); /* AckAll: and every message before it */
    if (gap) {
        atomic_fetch_add(&b->in_consumer_resets, 1);
        rre__log(RRE_LOG_INFO, "bridge",
                 "a message before stream sequence %llu is still to come (redelivery); "
                 "making the consumer again there so nothing overtakes it",
                 (unsigned long long)(in->done + 1));
        return false;
    }
    return true;
}

/* Checked while fetches come back empty, at most every 5 s: whether the
 * consumer must be made again. "deleted" when the server no longer has it.
 * "stalled" when, at two checks in a row with nothing handled between them,
 * the server says it delivered messages past the last one handled here:
 * those went to a fetch that was lost (a connection or a consumer leader
 * gone), and a server that lost its pending state with its leader does not
 * send them again (seen with nats-server 2.9.10 after a leader was killed).
 * One check is not enough: a fetch that timed out as messages were on their
 * way leaves them for the next fetch. NULL when all is well. */
static const char *consumer_lost(struct inbound *in)
{
    int64_t now = rre__queue_mono_ms();
    if (now - in->checked_ms < 5000)
        return NULL;
    in->checked_ms = now;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, in->b->js, in->b->stream, in->b->consumer, NULL, &jerr);
    const char *why = NULL;
    if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr) {
        why = "deleted";
    } else if (s == NATS_OK && ci != NULL && ci->Delivered.Stream > in->pos) {
        if (in->stalled_at == in->pos)
            why = "stalled";
        else
            in->stalled_at = in->pos;
    } else if (s == NATS_OK) {
        in->stalled_at = UINT64_MAX;
    }
    jsConsumerInfo_Destroy(ci);
    return why;
}

static void *inbound_main(void *arg)
{
    struct inbound *in = arg;
    rre_bridge *b = in->b;
    int attempt = 0;
    while (!stopping(b) && !atomic_load(&b->session_over)) {
        if (in->sub == NULL) {
            bool fatal = false;
            rre_status st = setup_consumer(in, &fatal);
            if (st != RRE_OK) {
                if (fatal || st == RRE_ECLOSED) {
                    fail_fatal(b, st);
                    break;
                }
                drop_consumer(in);
                back_off(b, attempt++, rre_last_error());
                continue;
            }
            if (rre_bridge_get_state(b) == RRE_BRIDGE_BACKING_OFF)
                set_state(b, RRE_BRIDGE_RUNNING);
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s =
            natsSubscription_Fetch(&list, in->sub, in->b->fetch_batch, FETCH_WAIT_MS, &jerr);
        if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
            natsMsgList_Destroy(&list);
            /* A reconnection may have lost a fetch's messages on their way:
             * the server redelivers them only after the acknowledgement
             * wait, and if nothing follows them no gap shows. Make the
             * consumer again at the first sequence not stored. */
            if (atomic_load(&b->reconnects) != in->reconnects) {
                atomic_fetch_add(&b->in_consumer_resets, 1);
                drop_consumer(in);
            } else {
                /* A fetch on a consumer deleted on the server, or whose
                 * deliveries were lost, only times out. */
                const char *why = consumer_lost(in);
                if (why != NULL) {
                    rre__log(RRE_LOG_WARN, "bridge",
                             "the consumer '%s' was %s; making it again at stream sequence %llu",
                             b->consumer, why, (unsigned long long)(in->done + 1));
                    atomic_fetch_add(&b->in_consumer_resets, 1);
                    drop_consumer(in);
                }
            }
            continue;
        }
        if (s != NATS_OK) {
            natsMsgList_Destroy(&list);
            nats_error(s, jerr, "fetching from the stream");
            drop_consumer(in);
            back_off(b, attempt++, rre_last_error());
            continue;
        }
        if (rre_bridge_get_state(b) == RRE_BRIDGE_BACKING_OFF)
            set_state(b, RRE_BRIDGE_RUNNING);
        bool closed = false;
        bool ok = handle_batch(in, &list, &closed);
        natsMsgList_Destroy(&list);
        if (closed) {
            fail_fatal(b, rre__error(RRE_ECLOSED, "the queue was closed under the bridge"));
            break;
        }
        if (!ok) {
            drop_consumer(in);
            continue;
        }
        attempt = 0;
    }
    drop_consumer(in);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

static rre_status connect_nats(rre_bridge *b, natsOptions *no)
{
    for (int attempt = 0; !stopping(b); attempt++) {
        set_state(b, RRE_BRIDGE_CONNECTING);
        lock(b);
        b->closed_seen = false;
        unlock(b);
        /* A closure of this session's own for the closed callback (the
         * connection takes a copy of the options as they are now). */
        struct session_closure *c = closure_new(b);
        natsStatus s = c != NULL ? natsOptions_SetClosedCB(no, on_closed, c) : NATS_NO_MEMORY;
        natsConnection *nc = NULL;
        if (s == NATS_OK) {
            c->refs++; /* the connection's, given back by on_closed() */
            s = natsConnection_Connect(&nc, no);
            if (s != NATS_OK)
                c->refs--; /* a connection that failed never calls it */
        }
        if (s == NATS_OK) {
            b->nc = nc;
            b->closure = c;
            atomic_store(&b->connected, true);
            return RRE_OK;
        }
        if (c != NULL)
            closure_release(c, true);
        rre_status st = nats_error(s, 0, "connecting to NATS");
        if (s == NATS_PROTOCOL_ERROR && connect_failure_is_fatal(b, s))
            st = rre__error(RRE_ENATS,
                            "connecting to NATS: the server closed the connection after the TLS "
                            "handshake: it may require a client certificate (--tls-cert and "
                            "--tls-key) or refuse the one given (%s)",
                            rre_last_error());
        if (connect_failure_is_fatal(b, s))
            return fail_fatal(b, st);
        back_off(b, attempt, rre_last_error());
    }
    return RRE_ECLOSED;
}

/* Ends a session: the inbound thread, the consumer subscription, the
 * publishes in doubt, the connection. */
static void end_session(rre_bridge *b, struct inbound *in, bool inbound_started)
{
    atomic_store(&b->session_over, true);
    lock(b);
    pthread_cond_broadcast(&b->cv);
    unlock(b);
    /* A bridge that stops closes the connection first: a JetStream request
     * of the inbound thread (setting up its consumer after a reconnect, up
     * to 5 s each) then returns at once instead of running out. What was
     * published and not yet confirmed is sent again by the next run. */
    if (stopping(b) && b->nc != NULL)
        natsConnection_Close(b->nc);
    if (inbound_started)
        pthread_join(in->thread, NULL);
    drop_consumer(in);
    if (b->js != NULL) {
        reclaim_pending(b);
        drain_in_flight(b);
    }
    if (b->nc != NULL) {
        natsConnection_Close(b->nc);
        /* The closed callback runs on a thread of the library, later: wait
         * for it (bounded), so that it never runs on a freed bridge. */
        int64_t deadline = rre__queue_mono_ms() + 10000;
        lock(b);
        while (!b->closed_seen && rre__queue_mono_ms() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        }
        bool seen = b->closed_seen;
        unlock(b);
        if (!seen) {
            rre__log(RRE_LOG_WARN, "bridge",
                     "the NATS library did not report the connection closed within 10 s; "
                     "going on without it (and leaving %d old subscription(s) undestroyed)",
                     in->nretired);
            in->nretired = 0; /* its threads may still touch them */
        }
    }
    /* The connection is closed and its closed callback, the last one the
     * library delivers for it, has run: nothing handles its subscriptions
     * any more. */
    destroy_retired(in);
    if (b->closure != NULL) {
        /* From here on a late closed callback of this connection touches
         * nothing of the bridge. */
        closure_release(b->closure, true);
        b->closure = NULL;
    }
    jsCtx_Destroy(b->js);
    b->js = NULL;
    natsConnection_Destroy(b->nc);
    b->nc = NULL;
    atomic_store(&b->connected, false);
}

/* One session: connect, make sure of the stream and the consumer, carry
 * events both ways until the connection is lost or the bridge stops.
 * Returns RRE_OK in both cases, or a fatal status (recorded). */
static rre_status run_session(rre_bridge *b, natsOptions *no, rre_subscriber *sub,
                              struct inbound *in)
{
    bool inbound_started = false;
    rre_status st = connect_nats(b, no);
    if (st == RRE_ECLOSED) {
        end_session(b, in, false);
        return RRE_OK; /* stopped while connecting */
    }
    if (st == RRE_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        jo.PublishAsync.MaxPending = b->max_in_flight + 64;
        jo.PublishAsync.AckHandler = on_pub_ack;
        jo.PublishAsync.AckHandlerClosure = b;
        natsStatus s = natsConnection_JetStream(&b->js, b->nc, &jo);
        if (s != NATS_OK)
            st = fail_fatal(b, nats_error(s, 0, "opening JetStream"));
        lock(b);
        b->published = false; /* of this context (see reclaim_pending()) */
        unlock(b);
    }
    /* The stream, then the consumer: retried until they exist, unless the
     * server's answer says retrying cannot help. */
    for (int attempt = 0; st == RRE_OK && !stopping(b) && !atomic_load(&b->session_over);
         attempt++) {
        bool fatal = false;
        rre_status step = ensure_stream(b, &fatal);
        if (step == RRE_OK)
            step = setup_consumer(in, &fatal);
        if (step == RRE_OK)
            break;
        if (fatal || step == RRE_ECLOSED) {
            st = fail_fatal(b, step);
            break;
        }
        drop_consumer(in);
        back_off(b, attempt, rre_last_error());
    }
    if (st == RRE_OK && !stopping(b) && !atomic_load(&b->session_over)) {
        if (pthread_create(&in->thread, NULL, inbound_main, in) != 0)
            st = fail_fatal(b, rre__error(RRE_EINTERNAL, "cannot start the inbound thread"));
        else
            inbound_started = true;
    }
    if (st == RRE_OK && !stopping(b) && !atomic_load(&b->session_over)) {
        rre__log(RRE_LOG_INFO, "bridge", "running: host '%s', stream '%s', consumer '%s'", b->host,
                 b->stream, b->consumer);
        set_state(b, RRE_BRIDGE_RUNNING);
        st = outbound_loop(b, sub);
        if (st != RRE_OK)
            fail_fatal(b, st);
    }
    end_session(b, in, inbound_started);
    return st;
}

rre_status rre_bridge_run(rre_bridge *b)
{
    if (b == NULL)
        return rre__error(RRE_EINVAL, "rre_bridge_run: bridge is NULL");
    lock(b);
    bool again = b->ran;
    b->ran = true;
    unlock(b);
    if (again)
        return rre__error(RRE_EINVAL, "rre_bridge_run: a bridge runs once");

    rre_subscriber *sub = NULL;
    natsOptions *no = NULL;
    struct inbound in = {.b = b};
    rre_status st = RRE_OK;

    b->ring_cap = (size_t)b->max_in_flight;
    b->wake_at = SIZE_MAX;
    b->ring = calloc(b->ring_cap, sizeof *b->ring);
    in.rows = calloc((size_t)b->fetch_batch, sizeof *in.rows);
    in.origin_us = calloc((size_t)b->fetch_batch, sizeof *in.origin_us);
    in.terms = calloc((size_t)b->fetch_batch, sizeof *in.terms);
    if (b->ring == NULL || in.rows == NULL || in.origin_us == NULL || in.terms == NULL)
        st = fail_fatal(b, rre__error(RRE_ENOMEM, "out of memory"));

    if (st == RRE_OK) {
        rre_subscriber_options so;
        rre_subscriber_options_init(&so);
        so.name = RRE_BRIDGE_SUBSCRIBER;
        so.batch = b->max_in_flight < 512 ? (unsigned)b->max_in_flight : 512;
        st = rre_subscriber_create(&sub, b->q, &so);
        if (st == RRE_EHELD)
            st = rre__error(st, "another bridge runs for this queue: %s", rre_last_error());
        if (st != RRE_OK)
            fail_fatal(b, st);
    }
    if (st == RRE_OK) {
        st = rre__importer_open(b->q, &in.im);
        if (st != RRE_OK)
            fail_fatal(b, st);
    }
    if (st == RRE_OK) {
        st = make_options(b, &no);
        if (st != RRE_OK)
            fail_fatal(b, st);
    }
    /* Sessions: one connection each. A lost connection ends a session;
     * the next one connects anew after a short, growing pause. */
    for (int lost = 0; st == RRE_OK && !stopping(b);) {
        atomic_store(&b->session_over, false);
        int64_t started = rre__queue_mono_ms();
        st = run_session(b, no, sub, &in);
        if (st != RRE_OK || stopping(b))
            break;
        if (rre__queue_mono_ms() - started > 10000)
            lost = 0; /* it ran well: start the pauses small again */
        atomic_store(&b->session_over, false);
        atomic_fetch_add(&b->reconnects, 1);
        back_off(b, lost++, "the connection to NATS was lost");
    }
    atomic_store(&b->stop, true);
    lock(b);
    pthread_cond_broadcast(&b->cv);
    unlock(b);
    natsOptions_Destroy(no);
    rre__importer_close(in.im);
    rre_subscriber_destroy(sub);
    free(in.rows);
    free(in.origin_us);
    free(in.terms);

    lock(b);
    rre_status fatal = b->fatal;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", b->fatal_msg);
    b->state = fatal != RRE_OK ? RRE_BRIDGE_FAILED : RRE_BRIDGE_STOPPED;
    b->finished = true;
    pthread_cond_broadcast(&b->cv);
    unlock(b);
    atomic_store(&b->connected, false);
    if (fatal != RRE_OK)
        return rre__error(fatal, "%s", msg);
    rre__log(RRE_LOG_INFO, "bridge", "stopped");
    return RRE_OK;
}
