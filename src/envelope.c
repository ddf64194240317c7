/*
 * envelope.c - timestamps, trace ids and the envelope helpers of the public
 * API (rre_event_copy, rre_event_free, rre_event_to_json_envelope).
 *
 * Everything here is on the publish path, so the common cases avoid
 * allocation and system calls: a timestamp within the same second as the
 * previous one on the thread only rewrites the fraction, and trace ids come
 * from a per-thread xoshiro256** generator seeded once from getrandom().
 */
#include "envelope.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t rre__clock_realtime(void *user_data)
{
    (void)user_data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- timestamps ----------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes `v` as exactly `n` decimal digits. */
static void put_digits(char *out, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static _Thread_local int64_t tl_cached_second = INT64_MIN;
static _Thread_local char tl_cached_prefix[20]; /* "YYYY-MM-DDTHH:MM:SS" */

void rre__timestamp_format(int64_t us, char out[RRE_TIMESTAMP_MAX])
{
    int64_t sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - sec * 1000000;
    if (sec != tl_cached_second) {
        int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
        int64_t rem = sec - days * 86400;
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (y < 0 || y > 9999)
            y = y < 0 ? 0 : 9999;
        put_digits(tl_cached_prefix, (unsigned)y, 4);
        tl_cached_prefix[4] = '-';
        put_digits(tl_cached_prefix + 5, m, 2);
        tl_cached_prefix[7] = '-';
        put_digits(tl_cached_prefix + 8, d, 2);
        tl_cached_prefix[10] = 'T';
        put_digits(tl_cached_prefix + 11, (unsigned)(rem / 3600), 2);
        tl_cached_prefix[13] = ':';
        put_digits(tl_cached_prefix + 14, (unsigned)(rem / 60 % 60), 2);
        tl_cached_prefix[16] = ':';
        put_digits(tl_cached_prefix + 17, (unsigned)(rem % 60), 2);
        tl_cached_prefix[19] = '\0';
        tl_cached_second = sec;
    }
    memcpy(out, tl_cached_prefix, 19);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
}

/* Reads exactly `n` digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool rre__timestamp_parse(const char *text, int64_t *us)
{
    if (text == NULL)
        return false;
    const char *p = text;
    int y, mo, d, h, mi, s = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return false;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
        return false;
    int64_t frac_us = 0;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &s))
            return false;
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0;
            int64_t scale = 100000;
            while (*p >= '0' && *p <= '9') {
                if (n < 6)
                    frac_us += (*p - '0') * scale;
                scale /= 10;
                n++;
                p++;
            }
            if (n == 0)
                return false;
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh, om = 0;
        if (!digits(&p, 2, &oh))
            return false;
        if (*p == ':')
            p++;
        if (*p != '\0' && !digits(&p, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return false;
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return false;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t sec = days * 86400 + h * 3600 + mi * 60 + s - (int64_t)offset_min * 60;
    *us = sec * 1000000 + frac_us;
    return true;
}

/* ---- random ids ------------------------------------------------------------ */

static _Thread_local uint64_t tl_rng[4];
static _Thread_local bool tl_rng_seeded;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(void)
{
    uint64_t seed[4] = {0, 0, 0, 0};
    ssize_t got = getrandom(seed, sizeof seed, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof seed) {
        /* Without entropy (very early boot): mix the time and the address
         * of this thread's state, which differs between threads. */
        uint64_t x = (uint64_t)rre__clock_realtime(NULL) ^ (uint64_t)(uintptr_t)&tl_rng;
        for (int i = 0; i < 4; i++)
            seed[i] = splitmix64(&x);
    }
    uint64_t x = seed[0] ^ seed[1] ^ seed[2] ^ seed[3];
    for (int i = 0; i < 4; i++)
        tl_rng[i] = seed[i] ^ splitmix64(&x);
    if ((tl_rng[0] | tl_rng[1] | tl_rng[2] | tl_rng[3]) == 0)
        tl_rng[0] = 1;
    tl_rng_seeded = true;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rre__random64(void)
{
    if (!tl_rng_seeded)
        rng_seed();
    uint64_t *s = tl_rng;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void random_bytes(uint8_t *out, size_t n)
{
    while (n > 0) {
        uint64_t r = rre__random64();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &r, k);
        out += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static void new_parent_id(uint8_t out[8])
{
    do {
        random_bytes(out, 8);
    } while (all_zero(out, 8));
}

void rre__trace_new(struct rre__trace *out)
{
    do {
        random_bytes(out->trace_id, 16);
    } while (all_zero(out->trace_id, 16));
    new_parent_id(out->parent_id);
    out->flags = 0x01;
}

void rre__trace_child(const struct rre__trace *parent, struct rre__trace *out)
{
    memcpy(out->trace_id, parent->trace_id, 16);
    out->flags = parent->flags;
    new_parent_id(out->parent_id);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool hex_decode(const char *text, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool rre__trace_parse(const char *text, struct rre__trace *out)
{
    if (text == NULL)
        return false;
    size_t len = strlen(text);
    struct rre__trace t;
    if (len == 32) {
        if (!hex_decode(text, t.trace_id, 16) || all_zero(t.trace_id, 16))
            return false;
        new_parent_id(t.parent_id);
        t.flags = 0x01;
        *out = t;
        return true;
    }
    uint8_t version;
    if (len != 55 || text[2] != '-' || text[35] != '-' || text[52] != '-')
        return false;
    if (!hex_decode(text, &version, 1) || version != 0 || !hex_decode(text + 3, t.trace_id, 16) ||
        !hex_decode(text + 36, t.parent_id, 8) || !hex_decode(text + 53, &t.flags, 1))
        return false;
    if (all_zero(t.trace_id, 16) || all_zero(t.parent_id, 8))
        return false;
    *out = t;
    return true;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
}

void rre__trace_format(const struct rre__trace *trace, char out[RRE_TRACE_ID_MAX])
{
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    hex_encode(trace->trace_id, 16, out + 3);
    out[35] = '-';
    hex_encode(trace->parent_id, 8, out + 36);
    out[52] = '-';
    hex_encode(&trace->flags, 1, out + 53);
    out[55] = '\0';
}

void rre_payload_release(json_t *payload)
{
    if (payload == NULL)
        return;
    volatile size_t *count = &payload->refcount;
    /* Acquire loads: reading 1 means every other holder's release
     * decrement is ordered before this point, and so before the free. */
    size_t c = __atomic_load_n(count, __ATOMIC_ACQUIRE);
    for (;;) {
        if (c == (size_t)-1)
            return; /* a static value (true, false, null) */
        if (c == 1) {
            json_decref(payload); /* the only holder: frees it */
            return;
        }
        if (__atomic_compare_exchange_n(count, &c, c - 1, false, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE))
            return;
    }
}

const char *rre__program_name(void)
{
    return program_invocation_short_name != NULL ? program_invocation_short_name : "";
}

/* ---- public envelope helpers ------------------------------------------------ */

rre_status rre_event_copy(const rre_event *ev, rre_event **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_event_copy: out is NULL");
    *out = NULL;
    if (ev == NULL)
        return rre__error(RRE_EINVAL, "rre_event_copy: event is NULL");
    const char *source = ev->source != NULL ? ev->source : "";
    const char *host = ev->hostname != NULL ? ev->hostname : "";
    size_t ls = strlen(source) + 1, lh = strlen(host) + 1;
    rre_event *copy = malloc(sizeof *copy + ls + lh);
    if (copy == NULL)
        return rre__error(RRE_ENOMEM, "rre_event_copy: out of memory");
    *copy = *ev;
    char *strings = (char *)(copy + 1);
    memcpy(strings, source, ls);
    memcpy(strings + ls, host, lh);
    copy->source = strings;
    copy->hostname = strings + ls;
    copy->payload_text = NULL;
    copy->payload_len = 0;
    if (ev->payload_text != NULL) {
        char *text = malloc(ev->payload_len + 1);
        if (text == NULL) {
            free(copy);
            return rre__error(RRE_ENOMEM, "rre_event_copy: out of memory");
        }
        memcpy(text, ev->payload_text, ev->payload_len);
        text[ev->payload_len] = '\0';
        copy->payload_text = text;
        copy->payload_len = ev->payload_len;
    }
    copy->payload = json_incref(ev->payload);
    *out = copy;
    return RRE_OK;
}

rre_status rre_event_payload(const rre_event *ev, json_t **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_event_payload: out is NULL");
    *out = NULL;
    if (ev == NULL)
        return rre__error(RRE_EINVAL, "rre_event_payload: event is NULL");
    if (ev->payload != NULL) {
        *out = json_incref(ev->payload);
        return RRE_OK;
    }
    if (ev->payload_text == NULL)
        return rre__error(RRE_EINVAL, "rre_event_payload: the event has no payload");
    return rre_payload_parse(ev->payload_text, ev->payload_len, out);
}

void rre_event_free(rre_event *ev)
{
    if (ev == NULL)
        return;
    json_decref(ev->payload);
    free((char *)ev->payload_text);
    free(ev);
}

static const char *origin_name(rre_origin origin)
{
    switch (origin) {
    case RRE_ORIGIN_LOCAL:
        return "local";
    case RRE_ORIGIN_PROCESS:
        return "process";
    case RRE_ORIGIN_HOST:
        return "host";
    }
    return "unknown";
}

rre_status rre_event_to_json_envelope(const rre_event *ev, json_t **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_event_to_json_envelope: out is NULL");
    *out = NULL;
    if (ev == NULL)
        return rre__error(RRE_EINVAL, "rre_event_to_json_envelope: event is NULL");
    json_t *payload = json_null();
    if (ev->payload != NULL || ev->payload_text != NULL) {
        rre_status st = rre_event_payload(ev, &payload);
        if (st != RRE_OK)
            return st;
    }
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(ev->hash, hex);
    json_t *obj =
        json_pack("{s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "type", rre_event_name(ev->type),
                  "payload", payload, "source", ev->source != NULL ? ev->source : "", "hostname",
                  ev->hostname != NULL ? ev->hostname : "", "timestamp", ev->timestamp, "trace_id",
                  ev->trace_id, "hash", hex, "event_id", (json_int_t)ev->event_id, "origin",
                  origin_name(ev->origin));
    if (obj == NULL)
        return rre__error(RRE_ENOMEM, "rre_event_to_json_envelope: cannot build the object");
    *out = obj;
    return RRE_OK;
}
