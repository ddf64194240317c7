/*
 * flow.c - the flow checker: follows a stream of events through the
 * catalog's lifecycles and pipeline chain and reports violations and stalls
 * (the contract is in include/rre/flow.h).
 *
 * Data layout. At creation the catalog's lifecycles and chain are turned
 * into a table indexed by event type: the (lifecycle, step) pairs a type
 * belongs to and its pipeline stage. A run of a lifecycle holds one slot per
 * key field plus one for the config key; every key value a run has is
 * indexed in one chained hash table keyed by (lifecycle, slot, value), so an
 * event finds its run by any of its key values. Runs sit on one of two lists,
 * active (by start) and ended (by end), which give the eviction order.
 * Pipelines are a fixed array, one per valid config key, each holding the
 * sequence number of the latest occurrence of every stage.
 *
 * A checker is used by one thread at a time and takes no locks.
 */
#include "flow.h"

#include <math.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLOW_KEY_MAX 256   /* key values are cut to this many bytes */
#define FLOW_MEMBERSHIPS 4 /* lifecycles one type may belong to */
#define FLOW_MAX_STEPS 64  /* steps of a lifecycle, stages of the chain */
#define FLOW_PIPES (RRE_BOARD_COUNT * 3)
#define FLOW_LINE_MAX (2u * RRE_PAYLOAD_MAX_BYTES) /* a JSON line, envelope included */
#define FLOW_TIME_MAX 253402300799.0 /* 9999-12-31T23:59:59Z, the last time ISO 8601 can write */

/* ------------------------------------------------------------------------ */
/* Data structures                                                           */
/* ------------------------------------------------------------------------ */

struct membership {
    uint16_t lc;   /* index into checker.lcs */
    uint16_t step; /* index into the lifecycle's steps */
};

struct type_info {
    uint8_t nmember;
    struct membership member[FLOW_MEMBERSHIPS];
    int stage; /* index in the pipeline chain, -1 when none */
};

struct lc_info {
    const rre_lifecycle *lc;
    size_t nslots;     /* key fields plus the config-key fallback */
    uint64_t required; /* steps that are not repeatable */
};

struct run;

/* One key value of a run, as an entry of the index. */
struct slot {
    char *value;         /* NULL when the run has no value for this slot */
    struct slot *next;   /* next entry in the same bucket */
    struct slot **pprev; /* the pointer to this entry in its bucket */
    uint64_t hash;
    struct run *run;
    uint16_t index;
};

struct run {
    struct run *prev, *next; /* on checker.active or checker.ended */
    uint16_t lc;
    int pos; /* the latest step reached */
    bool ended;
    uint64_t seen;    /* steps seen, one bit each */
    uint64_t skipped; /* required steps skipped and already reported */
    uint64_t seq_start, seq_end;
    double started_at; /* 0 when unknown */
    rre_event_type first_type, last_type;
    int64_t first_event_id, last_event_id;
    uint64_t first_line;
    struct slot slots[]; /* lcs[lc].nslots */
};

struct run_list {
    struct run *head, *tail;
};

struct pipe {
    bool seen;
    int last_stage;
    double last_time;
    rre_event_type last_type;
    int64_t last_event_id;
    uint64_t last_line;
    uint64_t *last_seq; /* per stage: sequence number of its latest occurrence, 0 never */
    int64_t *last_id;   /* per stage: event id of its latest occurrence */
};

struct rre_flow_checker {
    double stall_after; /* <= 0: no stall check */
    size_t max_runs, max_issues;
    unsigned flags;
    bool finished;

    struct lc_info *lcs;
    size_t nlc, max_slots;
    struct type_info types[RRE_EVENT_TYPE_COUNT];
    const rre_event_type *chain;
    size_t chain_len;
    struct pipe pipes[FLOW_PIPES];

    struct slot **buckets;
    size_t nbuckets, nentries;
    struct run_list active, ended;
    size_t nruns;

    rre_flow_issue *issues;
    size_t nissues, cap_issues;
    rre_flow_stats stats;

    uint64_t seq;       /* sequence number of the current event */
    double last_time;   /* time of the previous event with a time, 0 if none */
    double latest_time; /* latest event time seen */
    uint64_t cur_line;  /* line of the event being fed, 0 when not from a file */

    /* Key values of the event being checked, one per slot. */
    const char **vals;
    char (*valbuf)[FLOW_KEY_MAX];
};

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/* Reads exactly `n` decimal digits. */
static bool read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool rre__time_parse_iso8601(const char *text, double *out)
{
    if (text == NULL)
        return false;
    const char *p = text;
    int year, mon, day, hour, min, sec;
    if (!read_digits(&p, 4, &year) || *p++ != '-' || !read_digits(&p, 2, &mon) || *p++ != '-' ||
        !read_digits(&p, 2, &day) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!read_digits(&p, 2, &hour) || *p++ != ':' || !read_digits(&p, 2, &min) || *p++ != ':' ||
        !read_digits(&p, 2, &sec))
        return false;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return false;
    double frac = 0.0;
    if (*p == '.' || *p == ',') {
        /* The digits as "0.ddd", so the fraction is the nearest double. */
        char digits[32] = "0.";
        size_t n = 2;
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++)
            if (n + 1 < sizeof digits)
                digits[n++] = *p;
        digits[n] = '\0';
        frac = strtod(digits, NULL);
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (!read_digits(&p, 2, &oh))
            return false;
        if (*p == ':')
            p++;
        if (*p != '\0' && !read_digits(&p, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p != '\0')
        return false;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = (double)t - (double)offset + frac;
    return true;
}

/* A time the checker can hold and write: after the epoch (0 and less mean
 * unknown), before the year 10000; finite. */
static bool time_usable(double t)
{
    return t > 0.0 && t <= FLOW_TIME_MAX;
}

void rre__time_format_iso8601(double t, char buf[RRE_TIMESTAMP_MAX])
{
    if (!(t >= 0.0 && t <= FLOW_TIME_MAX)) { /* no time_t conversion out of range */
        snprintf(buf, RRE_TIMESTAMP_MAX, "%s", "");
        return;
    }
    double whole = floor(t);
    long micros = lround((t - whole) * 1e6);
    if (micros >= 1000000) {
        whole += 1.0;
        micros -= 1000000;
    }
    time_t secs = (time_t)whole;
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, RRE_TIMESTAMP_MAX, "%.6f", t);
        return;
    }
    size_t n = strftime(buf, RRE_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, RRE_TIMESTAMP_MAX - n, ".%06ldZ", micros % 1000000);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

const char *rre_flow_issue_kind_name(rre_flow_issue_kind kind)
{
    switch (kind) {
    case RRE_FLOW_VIOLATION:
        return "violation";
    case RRE_FLOW_STALL:
        return "stall";
    case RRE_FLOW_BAD_INPUT:
        return "bad_input";
    }
    return "unknown";
}

const char *rre_flow_rule_name(rre_flow_rule rule)
{
    switch (rule) {
    case RRE_FLOW_RULE_MISSING_START:
        return "missing_start";
    case RRE_FLOW_RULE_DUPLICATE_TERMINAL:
        return "duplicate_terminal";
    case RRE_FLOW_RULE_AFTER_END:
        return "after_end";
    case RRE_FLOW_RULE_OUT_OF_ORDER:
        return "out_of_order";
    case RRE_FLOW_RULE_RESTARTED:
        return "restarted";
    case RRE_FLOW_RULE_PIPELINE_ORDER:
        return "pipeline_order";
    case RRE_FLOW_RULE_RUN_STALLED:
        return "run_stalled";
    case RRE_FLOW_RULE_PIPELINE_STALLED:
        return "pipeline_stalled";
    case RRE_FLOW_RULE_BAD_LINE:
        return "bad_line";
    }
    return "unknown";
}

/* The alternatives of a step, "A" or "A or B", into buf. */
static const char *step_names(const rre_lifecycle_step *step, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < step->type_count && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? " or " : "",
                         rre_event_name(step->types[i]));
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The report                                                                */
/* ------------------------------------------------------------------------ */

/* Makes text safe to print and to put in JSON, in place: bytes that are not
 * part of valid UTF-8, and control characters, become '?'. Messages quote
 * input (keys, type spellings, the parser's view of a bad line), which may
 * hold anything. */
static void sanitize_text(char *text)
{
    unsigned char *p = (unsigned char *)text;
    while (*p) {
        unsigned char ch = *p;
        size_t len = ch < 0x80           ? 1
                     : (ch >> 5) == 0x6  ? 2
                     : (ch >> 4) == 0xe  ? 3
                     : (ch >> 3) == 0x1e ? 4
                                         : 0;
        bool ok = len > 0;
        for (size_t i = 1; ok && i < len; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (ok && len == 2)
            ok = ch >= 0xc2; /* no overlong forms */
        if (ok && len == 3) {
            unsigned cp = ((ch & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && len == 4) {
            unsigned cp = ((ch & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) | ((p[2] & 0x3fu) << 6) |
                          (p[3] & 0x3fu);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok || (len == 1 && (ch < 0x20 || ch == 0x7f))) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
}

struct issue_ctx {
    rre_flow_issue_kind kind;
    rre_flow_rule rule;
    const char *flow, *key_field, *key;
    rre_event_type type;
    int64_t event_id;
    uint64_t line;
    double time;
};

static rre_status add_issue(rre_flow_checker *c, const struct issue_ctx *x, const char *fmt, ...)
    RRE__PRINTF(3, 4);

static rre_status add_issue(rre_flow_checker *c, const struct issue_ctx *x, const char *fmt, ...)
{
    switch (x->kind) {
    case RRE_FLOW_VIOLATION:
        c->stats.violations++;
        break;
    case RRE_FLOW_STALL:
        c->stats.stalls++;
        break;
    case RRE_FLOW_BAD_INPUT:
        c->stats.bad_input++;
        break;
    }
    if (c->nissues >= c->max_issues) {
        c->stats.issues_dropped++;
        return RRE_OK;
    }
    if (c->nissues == c->cap_issues) {
        size_t cap = c->cap_issues ? c->cap_issues * 2 : 16;
        if (cap > c->max_issues)
            cap = c->max_issues;
        rre_flow_issue *grown = realloc(c->issues, cap * sizeof *grown);
        if (grown == NULL)
            return rre__error(RRE_ENOMEM, "flow: out of memory for the report");
        c->issues = grown;
        c->cap_issues = cap;
    }
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *key = x->key ? x->key : "";
    size_t klen = strlen(key), mlen = strlen(message);
    /* The key and the message share one allocation, the key first. */
    char *mem = malloc(klen + mlen + 2);
    if (mem == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory for the report");
    memcpy(mem, key, klen + 1);
    memcpy(mem + klen + 1, message, mlen + 1);
    sanitize_text(mem);
    sanitize_text(mem + klen + 1);
    rre_flow_issue *is = &c->issues[c->nissues++];
    is->kind = x->kind;
    is->rule = x->rule;
    is->flow = x->flow;
    is->key_field = x->key_field ? x->key_field : "";
    is->key = mem;
    is->event_type = x->type;
    is->event_id = x->event_id;
    is->line = x->line;
    is->time = x->time;
    is->message = mem + klen + 1;
    return RRE_OK;
}

size_t rre_flow_issue_count(const rre_flow_checker *c)
{
    return c ? c->nissues : 0;
}

const rre_flow_issue *rre_flow_issue_get(const rre_flow_checker *c, size_t index)
{
    if (c == NULL || index >= c->nissues)
        return NULL;
    return &c->issues[index];
}

bool rre_flow_clean(const rre_flow_checker *c)
{
    return c != NULL && c->stats.violations == 0 && c->stats.stalls == 0 && c->stats.bad_input == 0;
}

void rre_flow_get_stats(const rre_flow_checker *c, rre_flow_stats *out)
{
    if (out == NULL)
        return;
    if (c == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = c->stats;
    out->runs_tracked = c->nruns;
}

/* ------------------------------------------------------------------------ */
/* The run index                                                             */
/* ------------------------------------------------------------------------ */

static uint64_t slot_hash(uint16_t lc, uint16_t slot, const char *value)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    h = (h ^ lc) * 1099511628211ull;
    h = (h ^ slot) * 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static rre_status index_grow(rre_flow_checker *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    struct slot **b = calloc(n, sizeof *b);
    if (b == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory for the run index");
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct slot *s = c->buckets[i];
        while (s != NULL) {
            struct slot *next = s->next;
            size_t at = (size_t)(s->hash & (n - 1));
            s->next = b[at];
            if (s->next != NULL)
                s->next->pprev = &s->next;
            s->pprev = &b[at];
            b[at] = s;
            s = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return RRE_OK;
}

/* Gives run r the value of slot i and indexes it. */
static rre_status slot_set(rre_flow_checker *c, struct run *r, uint16_t i, const char *value)
{
    if (c->nentries + 1 > c->nbuckets) {
        rre_status st = index_grow(c);
        if (st != RRE_OK)
            return st;
    }
    struct slot *s = &r->slots[i];
    s->value = strdup(value);
    if (s->value == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory for a key");
    s->hash = slot_hash(r->lc, i, value);
    s->run = r;
    s->index = i;
    size_t at = (size_t)(s->hash & (c->nbuckets - 1));
    s->next = c->buckets[at];
    if (s->next != NULL)
        s->next->pprev = &s->next;
    s->pprev = &c->buckets[at];
    c->buckets[at] = s;
    c->nentries++;
    return RRE_OK;
}

static void slot_clear(rre_flow_checker *c, struct slot *s)
{
    if (s->value == NULL)
        return;
    *s->pprev = s->next;
    if (s->next != NULL)
        s->next->pprev = s->pprev;
    free(s->value);
    s->value = NULL;
    s->next = NULL;
    s->pprev = NULL;
    c->nentries--;
}

static void list_push(struct run_list *l, struct run *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(struct run_list *l, struct run *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static void run_free(rre_flow_checker *c, struct run *r)
{
    list_remove(r->ended ? &c->ended : &c->active, r);
    for (size_t i = 0; i < c->lcs[r->lc].nslots; i++)
        slot_clear(c, &r->slots[i]);
    free(r);
    c->nruns--;
}

/* Whether run r may be the run of an event with key values c->vals: no slot
 * where both have a value differs. */
static bool run_compatible(const rre_flow_checker *c, const struct run *r)
{
    for (size_t i = 0; i < c->lcs[r->lc].nslots; i++) {
        const char *v = c->vals[i];
        if (v != NULL && r->slots[i].value != NULL && strcmp(v, r->slots[i].value) != 0)
            return false;
    }
    return true;
}

/* The slot a run is identified by: its most specific key value. */
static int run_first_slot(const rre_flow_checker *c, const struct run *r)
{
    for (size_t i = 0; i < c->lcs[r->lc].nslots; i++)
        if (r->slots[i].value != NULL)
            return (int)i;
    return -1;
}

static bool run_better(const struct run *a, const struct run *b)
{
    if (b == NULL)
        return true;
    if (a->ended != b->ended)
        return !a->ended;
    return a->ended ? a->seq_end > b->seq_end : a->seq_start < b->seq_start;
}

/* The run of lifecycle lc an event with key values c->vals belongs to (see
 * RUNS in flow.h), or NULL. With `start`, only an active run identified by
 * the event's most specific key value. */
static struct run *run_find(rre_flow_checker *c, uint16_t lc, bool start)
{
    if (c->nbuckets == 0)
        return NULL;
    for (uint16_t i = 0; i < c->lcs[lc].nslots; i++) {
        const char *v = c->vals[i];
        if (v == NULL)
            continue;
        uint64_t h = slot_hash(lc, i, v);
        struct run *best = NULL;
        for (struct slot *s = c->buckets[h & (c->nbuckets - 1)]; s != NULL; s = s->next) {
            struct run *r = s->run;
            if (s->hash != h || s->index != i || r->lc != lc || strcmp(s->value, v) != 0)
                continue;
            if (!run_compatible(c, r))
                continue;
            if (start && (r->ended || run_first_slot(c, r) != i))
                continue;
            if (run_better(r, best))
                best = r;
        }
        if (best != NULL || start)
            return best;
    }
    return NULL;
}

/* Forgets the ended runs of lifecycle lc identified by the value v of slot
 * i: a new run with that key supersedes them, and an event they could still
 * match would match the new run first. Keeps chains of the index short. */
static void run_drop_superseded(rre_flow_checker *c, uint16_t lc, uint16_t i, const char *v)
{
    if (c->nbuckets == 0)
        return;
    uint64_t h = slot_hash(lc, i, v);
    struct slot **head = &c->buckets[h & (c->nbuckets - 1)];
    struct slot *s = *head;
    while (s != NULL) {
        struct run *r = s->run;
        if (s->hash == h && s->index == i && r->lc == lc && r->ended && run_first_slot(c, r) == i &&
            strcmp(s->value, v) == 0) {
            /* Freeing the run removes its entries, maybe the next one too. */
            run_free(c, r);
            s = *head;
            continue;
        }
        s = s->next;
    }
}

/* Adds the event's key values that run r does not have yet. */
static rre_status run_learn(rre_flow_checker *c, struct run *r)
{
    for (uint16_t i = 0; i < c->lcs[r->lc].nslots; i++) {
        if (c->vals[i] != NULL && r->slots[i].value == NULL) {
            rre_status st = slot_set(c, r, i, c->vals[i]);
            if (st != RRE_OK)
                return st;
        }
    }
    return RRE_OK;
}

static void run_end(rre_flow_checker *c, struct run *r)
{
    if (r->ended)
        return;
    list_remove(&c->active, r);
    r->ended = true;
    r->seq_end = c->seq;
    list_push(&c->ended, r);
}

/* A new active run of lifecycle lc, with the event's key values. Makes room
 * first when max_runs runs are held. */
static rre_status run_new(rre_flow_checker *c, uint16_t lc, struct run **out)
{
    while (c->nruns >= c->max_runs) {
        struct run *victim = c->ended.head;
        if (victim == NULL) {
            victim = c->active.head;
            c->stats.evicted_active++;
        }
        run_free(c, victim);
    }
    size_t nslots = c->lcs[lc].nslots;
    struct run *r = calloc(1, sizeof *r + nslots * sizeof r->slots[0]);
    if (r == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory for a run");
    r->lc = lc;
    r->seq_start = c->seq;
    list_push(&c->active, r);
    c->nruns++;
    rre_status st = run_learn(c, r);
    if (st != RRE_OK) {
        run_free(c, r);
        return st;
    }
    *out = r;
    return RRE_OK;
}

/* ------------------------------------------------------------------------ */
/* Lifecycles                                                                */
/* ------------------------------------------------------------------------ */

/* A key value as text: strings as they are, integers in decimal. */
static const char *key_text(const json_t *v, char *buf)
{
    if (json_is_string(v) && json_string_length(v) > 0) {
        snprintf(buf, FLOW_KEY_MAX, "%s", json_string_value(v));
        return buf;
    }
    if (json_is_integer(v)) {
        snprintf(buf, FLOW_KEY_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* Fills c->vals for lifecycle lc from a payload; returns the first slot with
 * a value, or -1 when there is none. */
static int event_keys(rre_flow_checker *c, uint16_t lc, const json_t *payload)
{
    const struct lc_info *li = &c->lcs[lc];
    int first = -1;
    for (size_t i = 0; i < li->nslots; i++) {
        const char *v;
        if (i < li->lc->key_field_count)
            v = key_text(json_object_get(payload, li->lc->key_fields[i]), c->valbuf[i]);
        else
            v = rre_extract_config_key(payload, c->valbuf[i], FLOW_KEY_MAX);
        c->vals[i] = v;
        if (v != NULL && first < 0)
            first = (int)i;
    }
    return first;
}

static const char *slot_name(const struct lc_info *li, int slot)
{
    if (slot < 0)
        return "";
    if ((size_t)slot < li->lc->key_field_count)
        return li->lc->key_fields[slot];
    return "config_key";
}

/* Describes the event that started or ended a run: "TRAINING_STARTED
 * (event 12)" or "TRAINING_STARTED". */
static const char *event_ref(rre_event_type type, int64_t id, char *buf, size_t cap)
{
    if (id > 0)
        snprintf(buf, cap, "%s (event %lld)", rre_event_name(type), (long long)id);
    else
        snprintf(buf, cap, "%s", rre_event_name(type));
    return buf;
}

static rre_status lifecycle_event(rre_flow_checker *c, uint16_t lc, uint16_t stepi,
                                  const rre_event *ev, double t)
{
    const struct lc_info *li = &c->lcs[lc];
    const rre_lifecycle_step *step = &li->lc->steps[stepi];
    int first = event_keys(c, lc, ev->payload);
    if (first < 0) {
        c->stats.unattributed++;
        return RRE_OK;
    }
    struct issue_ctx x = {
        .kind = RRE_FLOW_VIOLATION,
        .flow = li->lc->name,
        .key_field = slot_name(li, first),
        .key = c->vals[first],
        .type = ev->type,
        .event_id = ev->event_id,
        .line = c->cur_line,
        .time = t,
    };
    const char *name = rre_event_name(ev->type);
    bool terminal = (step->flags & RRE_STEP_TERMINAL) != 0;
    bool repeatable = (step->flags & RRE_STEP_REPEATABLE) != 0;
    char names[256], ref[128];
    rre_status st = RRE_OK;
    struct run *r;

    if (stepi == 0) {
        r = run_find(c, lc, true);
        if (r != NULL) {
            x.rule = RRE_FLOW_RULE_RESTARTED;
            st = add_issue(c, &x, "%s again for %s %s while the run begun by %s has not ended",
                           name, x.key_field, x.key,
                           event_ref(r->first_type, r->first_event_id, ref, sizeof ref));
            run_free(c, r);
            if (st != RRE_OK)
                return st;
        }
        run_drop_superseded(c, lc, (uint16_t)first, c->vals[first]);
        st = run_new(c, lc, &r);
        if (st != RRE_OK)
            return st;
        r->pos = 0;
        r->seen = 1;
        r->started_at = t;
        r->first_type = r->last_type = ev->type;
        r->first_event_id = r->last_event_id = ev->event_id;
        r->first_line = c->cur_line;
        if (terminal)
            run_end(c, r);
        return RRE_OK;
    }

    uint64_t bit = 1ull << stepi;
    r = run_find(c, lc, false);
    if (r == NULL) {
        if (!(c->flags & RRE_FLOW_PARTIAL_HISTORY)) {
            x.rule = RRE_FLOW_RULE_MISSING_START;
            st = add_issue(c, &x, "%s without %s for %s %s", name,
                           step_names(&li->lc->steps[0], names, sizeof names), x.key_field, x.key);
            if (st != RRE_OK)
                return st;
        }
        st = run_new(c, lc, &r);
        if (st != RRE_OK)
            return st;
        r->pos = stepi;
        r->seen = bit;
        r->started_at = t;
        r->first_type = r->last_type = ev->type;
        r->first_event_id = r->last_event_id = ev->event_id;
        r->first_line = c->cur_line;
        if (terminal)
            run_end(c, r);
        return RRE_OK;
    }

    st = run_learn(c, r);
    if (st != RRE_OK)
        return st;
    if (r->ended) {
        x.rule = terminal ? RRE_FLOW_RULE_DUPLICATE_TERMINAL : RRE_FLOW_RULE_AFTER_END;
        return add_issue(c, &x, "%s%s for %s %s after the run already ended with %s",
                         terminal ? "second terminal event " : "", name, x.key_field, x.key,
                         event_ref(r->last_type, r->last_event_id, ref, sizeof ref));
    }
    if ((int)stepi > r->pos) {
        /* Required steps between the run's position and this one. */
        uint64_t between = 0;
        for (int s = r->pos + 1; s < (int)stepi; s++)
            between |= 1ull << s;
        uint64_t missing = between & li->required & ~r->seen;
        if (missing != 0) {
            int m = 0;
            while (!(missing & (1ull << m)))
                m++;
            x.rule = RRE_FLOW_RULE_OUT_OF_ORDER;
            st = add_issue(c, &x, "%s before %s for %s %s", name,
                           step_names(&li->lc->steps[m], names, sizeof names), x.key_field, x.key);
            r->skipped |= missing;
        }
        r->pos = (int)stepi;
    } else if ((int)stepi == r->pos) {
        if (!repeatable) {
            x.rule = RRE_FLOW_RULE_OUT_OF_ORDER;
            st = add_issue(c, &x, "%s repeated for %s %s (first: %s)", name, x.key_field, x.key,
                           event_ref(r->last_type, r->last_event_id, ref, sizeof ref));
        }
    } else if ((r->skipped & bit) && !(r->seen & bit)) {
        /* A skipped step arriving late: its skip was already reported. */
    } else {
        x.rule = RRE_FLOW_RULE_OUT_OF_ORDER;
        st = add_issue(c, &x, "%s after %s for %s %s", name,
                       event_ref(r->last_type, r->last_event_id, ref, sizeof ref), x.key_field,
                       x.key);
    }
    r->seen |= bit;
    r->last_type = ev->type;
    r->last_event_id = ev->event_id;
    if (terminal)
        run_end(c, r);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The pipeline chain                                                        */
/* ------------------------------------------------------------------------ */

static int pipe_index(const char *config_key)
{
    for (int b = 0; b < RRE_BOARD_COUNT; b++) {
        const char *name = rre_board_name((rre_board)b);
        size_t n = strlen(name);
        if (strncmp(config_key, name, n) == 0 && config_key[n] == '_' && config_key[n + 1] >= '2' &&
            config_key[n + 1] <= '4')
            return b * 3 + (config_key[n + 1] - '2');
    }
    return -1;
}

static void pipe_advance(rre_flow_checker *c, struct pipe *p, int stage, const rre_event *ev,
                         double t)
{
    p->seen = true;
    p->last_seq[stage] = c->seq;
    p->last_id[stage] = ev->event_id;
    p->last_stage = stage;
    p->last_time = t;
    p->last_type = ev->type;
    p->last_event_id = ev->event_id;
    p->last_line = c->cur_line;
}

/* The occurrence of stage `stage` must follow an occurrence of its
 * predecessor later than this sequence number (see RULES in flow.h): the
 * latest occurrence of the next stage, or for the last stage its own. */
static uint64_t pipe_bar(const rre_flow_checker *c, const struct pipe *p, int stage)
{
    return (size_t)stage + 1 < c->chain_len ? p->last_seq[stage + 1] : p->last_seq[stage];
}

static rre_status pipeline_event(rre_flow_checker *c, int stage, const rre_event *ev, double t)
{
    char cfg[RRE_CONFIG_KEY_MAX];
    int idx = -1;
    if (rre_extract_config_key(ev->payload, cfg, sizeof cfg) != NULL)
        idx = pipe_index(cfg);
    if (idx < 0) {
        /* Not attributable: advances every config waiting for this stage. */
        if (stage == 0)
            return RRE_OK;
        for (int i = 0; i < FLOW_PIPES; i++) {
            struct pipe *p = &c->pipes[i];
            if (p->seen && p->last_seq[stage - 1] > pipe_bar(c, p, stage))
                pipe_advance(c, p, stage, ev, t);
        }
        return RRE_OK;
    }
    struct pipe *p = &c->pipes[idx];
    rre_status st = RRE_OK;
    uint64_t bar = stage > 0 ? pipe_bar(c, p, stage) : 0;
    bool accept = stage == 0 || p->last_seq[stage - 1] > bar ||
                  (!p->seen && (c->flags & RRE_FLOW_PARTIAL_HISTORY));
    if (!accept) {
        struct issue_ctx x = {
            .kind = RRE_FLOW_VIOLATION,
            .rule = RRE_FLOW_RULE_PIPELINE_ORDER,
            .flow = "pipeline",
            .key_field = "config_key",
            .key = cfg,
            .type = ev->type,
            .event_id = ev->event_id,
            .line = c->cur_line,
            .time = t,
        };
        const char *name = rre_event_name(ev->type);
        const char *prev = rre_event_name(c->chain[stage - 1]);
        if (p->last_seq[stage - 1] == 0) {
            st = add_issue(c, &x, "%s for %s without a preceding %s", name, cfg, prev);
        } else {
            int after = (size_t)stage + 1 < c->chain_len ? stage + 1 : stage;
            char ref[128];
            st = add_issue(c, &x, "%s for %s without a new %s since %s", name, cfg, prev,
                           event_ref(c->chain[after], p->last_id[after], ref, sizeof ref));
        }
    }
    pipe_advance(c, p, stage, ev, t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The checker                                                               */
/* ------------------------------------------------------------------------ */

static rre_status add_membership(rre_flow_checker *c, rre_event_type type, uint16_t lc,
                                 uint16_t step)
{
    if (type < 0 || type >= RRE_EVENT_TYPE_COUNT)
        return RRE_OK;
    struct type_info *ti = &c->types[type];
    for (uint8_t i = 0; i < ti->nmember; i++)
        if (ti->member[i].lc == lc)
            return RRE_OK; /* the first step naming a type wins */
    if (ti->nmember == FLOW_MEMBERSHIPS)
        return rre__error(RRE_EINTERNAL, "flow: %s belongs to more than %d lifecycles",
                          rre_event_name(type), FLOW_MEMBERSHIPS);
    ti->member[ti->nmember].lc = lc;
    ti->member[ti->nmember].step = step;
    ti->nmember++;
    return RRE_OK;
}

static rre_status load_catalog(rre_flow_checker *c)
{
    for (size_t t = 0; t < RRE_EVENT_TYPE_COUNT; t++)
        c->types[t].stage = -1;
    c->nlc = rre_lifecycle_count();
    c->lcs = calloc(c->nlc ? c->nlc : 1, sizeof *c->lcs);
    if (c->lcs == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory");
    c->max_slots = 1;
    for (size_t i = 0; i < c->nlc; i++) {
        const rre_lifecycle *lc = rre_lifecycle_get(i);
        if (lc == NULL || lc->step_count == 0 || lc->step_count > FLOW_MAX_STEPS || i > UINT16_MAX)
            return rre__error(RRE_EINTERNAL, "flow: lifecycle %zu cannot be checked", i);
        c->lcs[i].lc = lc;
        c->lcs[i].nslots = lc->key_field_count + 1;
        if (c->lcs[i].nslots > c->max_slots)
            c->max_slots = c->lcs[i].nslots;
        for (size_t s = 0; s < lc->step_count; s++) {
            if (!(lc->steps[s].flags & RRE_STEP_REPEATABLE))
                c->lcs[i].required |= 1ull << s;
            for (size_t k = 0; k < lc->steps[s].type_count; k++) {
                rre_status st = add_membership(c, lc->steps[s].types[k], (uint16_t)i, (uint16_t)s);
                if (st != RRE_OK)
                    return st;
            }
        }
    }
    c->chain = rre_pipeline_chain(&c->chain_len);
    if (c->chain == NULL)
        c->chain_len = 0;
    if (c->chain_len > FLOW_MAX_STEPS)
        return rre__error(RRE_EINTERNAL, "flow: the pipeline chain has more than %d stages",
                          FLOW_MAX_STEPS);
    for (size_t s = 0; s < c->chain_len; s++) {
        rre_event_type t = c->chain[s];
        if (t >= 0 && t < RRE_EVENT_TYPE_COUNT && c->types[t].stage < 0)
            c->types[t].stage = (int)s;
    }
    size_t n = c->chain_len ? c->chain_len : 1;
    for (int i = 0; i < FLOW_PIPES; i++) {
        c->pipes[i].last_seq = calloc(n, sizeof *c->pipes[i].last_seq);
        c->pipes[i].last_id = calloc(n, sizeof *c->pipes[i].last_id);
        if (c->pipes[i].last_seq == NULL || c->pipes[i].last_id == NULL)
            return rre__error(RRE_ENOMEM, "flow: out of memory");
    }
    c->vals = calloc(c->max_slots, sizeof *c->vals);
    c->valbuf = calloc(c->max_slots, sizeof *c->valbuf);
    if (c->vals == NULL || c->valbuf == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory");
    return RRE_OK;
}

rre_status rre_flow_checker_create(rre_flow_checker **out, const rre_flow_options *options)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "flow: NULL output pointer");
    *out = NULL;
    rre_flow_checker *c = calloc(1, sizeof *c);
    if (c == NULL)
        return rre__error(RRE_ENOMEM, "flow: out of memory");
    rre_flow_options o = {0};
    if (options != NULL)
        o = *options;
    c->stall_after = o.stall_after == 0.0 ? RRE_FLOW_DEFAULT_STALL_AFTER : o.stall_after;
    c->max_runs = o.max_runs ? o.max_runs : RRE_FLOW_DEFAULT_MAX_RUNS;
    c->max_issues = o.max_issues ? o.max_issues : RRE_FLOW_DEFAULT_MAX_ISSUES;
    c->flags = o.flags;
    rre_status st = load_catalog(c);
    if (st != RRE_OK) {
        rre_flow_checker_destroy(c);
        return st;
    }
    *out = c;
    return RRE_OK;
}

void rre_flow_checker_destroy(rre_flow_checker *c)
{
    if (c == NULL)
        return;
    while (c->active.head != NULL)
        run_free(c, c->active.head);
    while (c->ended.head != NULL)
        run_free(c, c->ended.head);
    free(c->buckets);
    for (size_t i = 0; i < c->nissues; i++)
        free((char *)c->issues[i].key);
    free(c->issues);
    for (int i = 0; i < FLOW_PIPES; i++) {
        free(c->pipes[i].last_seq);
        free(c->pipes[i].last_id);
    }
    free(c->vals);
    free(c->valbuf);
    free(c->lcs);
    free(c);
}

rre_status rre_flow_feed_at(rre_flow_checker *c, const rre_event *ev, double time)
{
    if (c == NULL || ev == NULL)
        return rre__error(RRE_EINVAL, "flow: NULL checker or event");
    if (c->finished)
        return rre__error(RRE_ECLOSED, "flow: the checker is finished");
    if (!json_is_object(ev->payload))
        return rre__error(RRE_EINVAL, "flow: event without a payload object");
    if (ev->type < 0 || ev->type >= RRE_EVENT_TYPE_COUNT)
        return rre__error(RRE_EUNKNOWN_TYPE, "flow: event type %d out of range", (int)ev->type);
    double t = time;
    if (!time_usable(t) && (!rre__time_parse_iso8601(ev->timestamp, &t) || !time_usable(t)))
        t = c->last_time;
    if (t > 0.0) {
        c->last_time = t;
        if (t > c->latest_time)
            c->latest_time = t;
    }
    c->seq++;
    c->stats.events++;
    const struct type_info *ti = &c->types[ev->type];
    rre_status result = RRE_OK;
    for (uint8_t i = 0; i < ti->nmember; i++) {
        rre_status st = lifecycle_event(c, ti->member[i].lc, ti->member[i].step, ev, t);
        if (st != RRE_OK && result == RRE_OK)
            result = st;
    }
    if (ti->stage >= 0) {
        rre_status st = pipeline_event(c, ti->stage, ev, t);
        if (st != RRE_OK && result == RRE_OK)
            result = st;
    }
    return result;
}

rre_status rre_flow_feed(rre_flow_checker *c, const rre_event *ev)
{
    return rre_flow_feed_at(c, ev, 0.0);
}

rre_status rre_flow_finish(rre_flow_checker *c, double now)
{
    if (c == NULL)
        return rre__error(RRE_EINVAL, "flow: NULL checker");
    if (c->finished)
        return rre__error(RRE_ECLOSED, "flow: the checker is already finished");
    c->finished = true;
    if (now <= 0.0)
        now = c->latest_time;
    if (c->stall_after <= 0.0 || now <= 0.0)
        return RRE_OK;
    rre_status result = RRE_OK;
    char when[RRE_TIMESTAMP_MAX], ref[128];
    for (struct run *r = c->active.head; r != NULL; r = r->next) {
        if (r->started_at <= 0.0 || now - r->started_at <= c->stall_after)
            continue;
        const struct lc_info *li = &c->lcs[r->lc];
        int first = run_first_slot(c, r);
        struct issue_ctx x = {
            .kind = RRE_FLOW_STALL,
            .rule = RRE_FLOW_RULE_RUN_STALLED,
            .flow = li->lc->name,
            .key_field = slot_name(li, first),
            .key = first >= 0 ? r->slots[first].value : "",
            .type = r->first_type,
            .event_id = r->first_event_id,
            .line = r->first_line,
            .time = r->started_at,
        };
        rre__time_format_iso8601(r->started_at, when);
        rre_status st = add_issue(
            c, &x,
            "%s run of %s %s begun by %s at %s has not ended after %.0f s (threshold %.0f s)",
            li->lc->name, x.key_field, x.key,
            event_ref(r->first_type, r->first_event_id, ref, sizeof ref), when, now - r->started_at,
            c->stall_after);
        if (st != RRE_OK && result == RRE_OK)
            result = st;
    }
    for (int i = 0; i < FLOW_PIPES && c->chain_len > 0; i++) {
        struct pipe *p = &c->pipes[i];
        if (!p->seen || p->last_stage == (int)c->chain_len - 1 || p->last_time <= 0.0 ||
            now - p->last_time <= c->stall_after)
            continue;
        char cfg[RRE_CONFIG_KEY_MAX];
        snprintf(cfg, sizeof cfg, "%s_%dp", rre_board_name((rre_board)(i / 3)), i % 3 + 2);
        struct issue_ctx x = {
            .kind = RRE_FLOW_STALL,
            .rule = RRE_FLOW_RULE_PIPELINE_STALLED,
            .flow = "pipeline",
            .key_field = "config_key",
            .key = cfg,
            .type = p->last_type,
            .event_id = p->last_event_id,
            .line = p->last_line,
            .time = p->last_time,
        };
        rre__time_format_iso8601(p->last_time, when);
        rre_status st = add_issue(
            c, &x, "pipeline of %s has not advanced for %.0f s since %s at %s (threshold %.0f s)",
            cfg, now - p->last_time, event_ref(p->last_type, p->last_event_id, ref, sizeof ref),
            when, c->stall_after);
        if (st != RRE_OK && result == RRE_OK)
            result = st;
    }
    return result;
}

/* ------------------------------------------------------------------------ */
/* JSON-lines input                                                          */
/* ------------------------------------------------------------------------ */

static rre_status bad_line(rre_flow_checker *c, uint64_t line_no, rre_status status,
                           const char *fmt, ...) RRE__PRINTF(4, 5);

static rre_status bad_line(rre_flow_checker *c, uint64_t line_no, rre_status status,
                           const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    sanitize_text(reason);
    struct issue_ctx x = {
        .kind = RRE_FLOW_BAD_INPUT,
        .rule = RRE_FLOW_RULE_BAD_LINE,
        .flow = "input",
        .key_field = "",
        .key = "",
        .type = RRE_EV_NONE,
        .line = line_no,
    };
    rre_status st = add_issue(c, &x, "line %llu: %s", (unsigned long long)line_no, reason);
    if (st != RRE_OK)
        return st;
    return rre__error(status, "line %llu: %s", (unsigned long long)line_no, reason);
}

/* A time member: Unix seconds as a number, or an ISO 8601 string; a time
 * before the epoch or after the year 9999 is not one. */
static bool member_time(const json_t *v, double *out)
{
    double t = 0.0;
    if (json_is_number(v))
        t = json_number_value(v);
    else if (!json_is_string(v) || !rre__time_parse_iso8601(json_string_value(v), &t))
        return false;
    if (!time_usable(t))
        return false;
    *out = t;
    return true;
}

static bool member_id(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (*s < '0' || *s > '9')
            return false;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (*end != '\0' || errno == ERANGE)
            return false; /* not an id this checker can hold: unknown */
        *out = n;
        return true;
    }
    return false;
}

rre_status rre_flow_feed_json_line(rre_flow_checker *c, const char *line, size_t len,
                                   uint64_t line_no, int64_t since_id)
{
    if (c == NULL || (line == NULL && len > 0))
        return rre__error(RRE_EINVAL, "flow: NULL checker or line");
    if (c->finished)
        return rre__error(RRE_ECLOSED, "flow: the checker is finished");
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
        len--;
    size_t skip = 0;
    while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
        skip++;
    if (skip == len)
        return RRE_OK;
    if (len > FLOW_LINE_MAX)
        return bad_line(c, line_no, RRE_ELIMIT, "longer than %u bytes", FLOW_LINE_MAX);

    json_error_t err;
    json_t *obj = json_loadb(line + skip, len - skip, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL)
        return bad_line(c, line_no, RRE_EJSON, "malformed JSON at column %d: %s", err.column,
                        err.text);
    rre_status st = RRE_OK;
    json_t *payload = NULL;
    if (!json_is_object(obj)) {
        st = bad_line(c, line_no, RRE_ENOT_OBJECT, "not a JSON object");
        goto out;
    }
    const json_t *tv = json_object_get(obj, "event_type");
    if (!json_is_string(tv))
        tv = json_object_get(obj, "type");
    if (!json_is_string(tv)) {
        st = bad_line(c, line_no, RRE_EUNKNOWN_TYPE, "no \"event_type\" or \"type\" string");
        goto out;
    }
    rre_event ev;
    memset(&ev, 0, sizeof ev);
    const char *spelling = json_string_value(tv);
    if (strncmp(spelling, "ringrift.", 9) == 0) /* a CloudEvents type */
        spelling += 9;
    if (rre_event_lookup(spelling, &ev.type) != RRE_OK) {
        st = bad_line(c, line_no, RRE_EUNKNOWN_TYPE, "unknown event type '%.100s'",
                      json_string_value(tv));
        goto out;
    }
    json_t *pv = json_object_get(obj, "payload");
    if (pv == NULL)
        pv = json_object_get(obj, "data");
    if (pv == NULL || json_is_null(pv)) {
        payload = json_object();
    } else if (json_is_object(pv)) {
        payload = json_incref(pv);
    } else if (json_is_string(pv)) {
        st = rre_payload_parse(json_string_value(pv), json_string_length(pv), &payload);
        if (st != RRE_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", rre_last_error());
            st = bad_line(c, line_no, st, "payload string: %s", why);
            goto out;
        }
    } else {
        st = bad_line(c, line_no, RRE_ENOT_OBJECT, "payload is not a JSON object");
        goto out;
    }
    if (payload == NULL) {
        st = rre__error(RRE_ENOMEM, "flow: out of memory");
        goto out;
    }
    st = rre_payload_check(payload);
    if (st != RRE_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", rre_last_error());
        st = bad_line(c, line_no, st, "payload: %s", why);
        goto out;
    }
    rre_payload_normalize(payload);

    if (!member_id(json_object_get(obj, "event_id"), &ev.event_id))
        member_id(json_object_get(obj, "id"), &ev.event_id);
    if (since_id > 0 && ev.event_id > 0 && ev.event_id <= since_id)
        goto out;
    double t = 0.0;
    if (!member_time(json_object_get(obj, "timestamp"), &t) &&
        !member_time(json_object_get(obj, "created_at"), &t) &&
        !member_time(json_object_get(obj, "time"), &t))
        member_time(json_object_get(payload, "timestamp"), &t);
    ev.payload = payload;
    ev.source = "";
    ev.hostname = "";
    c->cur_line = line_no;
    st = rre_flow_feed_at(c, &ev, t);
    c->cur_line = 0;
out:
    json_decref(payload);
    json_decref(obj);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The report as JSON, and the router's entry point                          */
/* ------------------------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *value)
{
    return value == NULL ? -1 : json_object_set_new(obj, key, value);
}

rre_status rre_flow_report_json(const rre_flow_checker *c, json_t **out)
{
    if (c == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "flow: NULL checker or output pointer");
    *out = NULL;
    json_t *r = json_object(), *list = json_array();
    int bad = r == NULL || list == NULL;
    bad |= set_new(r, "clean", json_boolean(rre_flow_clean(c)));
    bad |= set_new(r, "events", json_integer((json_int_t)c->stats.events));
    bad |= set_new(r, "unattributed", json_integer((json_int_t)c->stats.unattributed));
    bad |= set_new(r, "violations", json_integer((json_int_t)c->stats.violations));
    bad |= set_new(r, "stalls", json_integer((json_int_t)c->stats.stalls));
    bad |= set_new(r, "bad_input", json_integer((json_int_t)c->stats.bad_input));
    bad |= set_new(r, "issues_dropped", json_integer((json_int_t)c->stats.issues_dropped));
    bad |= set_new(r, "evicted_active", json_integer((json_int_t)c->stats.evicted_active));
    for (size_t i = 0; i < c->nissues && !bad; i++) {
        const rre_flow_issue *is = &c->issues[i];
        json_t *o = json_object();
        bad |= o == NULL;
        bad |= set_new(o, "kind", json_string(rre_flow_issue_kind_name(is->kind)));
        bad |= set_new(o, "rule", json_string(rre_flow_rule_name(is->rule)));
        bad |= set_new(o, "flow", json_string(is->flow));
        bad |= set_new(o, "key_field", json_string(is->key_field));
        bad |= set_new(o, "key", json_string(is->key));
        bad |= set_new(o, "event_type",
                       is->event_type == RRE_EV_NONE ? json_null()
                                                     : json_string(rre_event_name(is->event_type)));
        bad |= set_new(o, "event_id", json_integer((json_int_t)is->event_id));
        bad |= set_new(o, "line", json_integer((json_int_t)is->line));
        if (is->time > 0.0) {
            char when[RRE_TIMESTAMP_MAX];
            rre__time_format_iso8601(is->time, when);
            bad |= set_new(o, "time", json_string(when));
        }
        bad |= set_new(o, "message", json_string(is->message));
        bad |= o == NULL || json_array_append_new(list, o);
    }
    if (!bad) {
        bad |= json_object_set_new(r, "issues", list);
        list = NULL;
    }
    if (bad) {
        json_decref(list);
        json_decref(r);
        return rre__error(RRE_ENOMEM, "flow: out of memory for the JSON report");
    }
    *out = r;
    return RRE_OK;
}

rre_status rre__flow_check_events(const rre_event *const *evs, size_t n,
                                  const rre_flow_options *options, double now,
                                  rre_flow_checker **out)
{
    if (out == NULL || (evs == NULL && n > 0))
        return rre__error(RRE_EINVAL, "flow: NULL events or output pointer");
    *out = NULL;
    rre_flow_checker *c;
    rre_status st = rre_flow_checker_create(&c, options);
    if (st != RRE_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (evs[i] == NULL)
            continue;
        st = rre_flow_feed(c, evs[i]);
        if (st == RRE_ENOMEM)
            break;
        st = RRE_OK; /* an event that cannot be checked does not stop the others */
    }
    if (st == RRE_OK)
        st = rre_flow_finish(c, now);
    if (st != RRE_OK) {
        rre_flow_checker_destroy(c);
        return st;
    }
    *out = c;
    return RRE_OK;
}
