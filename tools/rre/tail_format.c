/*
 * tail_format.c - one line of `rre tail` output for an event, in each
 * format: json (the envelope and the payload), text (one line for people,
 * no control character passed through) and cloudevents (CloudEvents 1.0
 * structured JSON).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Appends `text` to `out` as one URI path segment: every byte but the
 * unreserved characters (RFC 3986: ALPHA DIGIT - . _ ~) percent-encoded, so
 * a source such as "trainer one", "50% done" or "zürich-node" still makes a
 * valid URI reference. */
static size_t put_segment(char *out, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* The CloudEvents source of an event: /ringrift/<host>[/<source>], each
 * part one percent-encoded path segment; NULL when out of memory. */
static char *ce_source(const char *host, const char *source)
{
    char *out = malloc(16 + 3 * (strlen(host) + strlen(source)));
    if (out == NULL)
        return NULL;
    size_t o = (size_t)sprintf(out, "/ringrift/");
    o += put_segment(out + o, host);
    if (source[0] != '\0') {
        out[o++] = '/';
        put_segment(out + o, source);
    }
    return out;
}

static json_t *event_json(const rre_event *ev, enum cli_tail_format format)
{
    const rre_event_info *info = rre_event_get(ev->type);
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(ev->hash, hex);
    json_t *o;
    if (format == CLI_TAIL_CLOUDEVENTS) {
        char id[32], type[128];
        snprintf(id, sizeof id, "%lld", (long long)ev->event_id);
        char *source = ce_source(ev->hostname, ev->source);
        if (source == NULL)
            return NULL;
        snprintf(type, sizeof type, "ringrift.%s", info->name);
        o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "specversion", "1.0", "id", id, "source",
                      source, "type", type, "time", ev->timestamp, "datacontenttype",
                      "application/json", "data", ev->payload);
        free(source);
        if (o != NULL && ev->trace_id[0] != '\0')
            json_object_set_new(o, "traceparent", json_string(ev->trace_id));
        return o;
    }
    o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "event_id", (json_int_t)ev->event_id, "type",
                  info->name, "category", rre_category_name(info->category), "source", ev->source,
                  "hostname", ev->hostname, "timestamp", ev->timestamp);
    if (o == NULL)
        return NULL;
    if (ev->trace_id[0] != '\0')
        json_object_set_new(o, "trace_id", json_string(ev->trace_id));
    json_object_set_new(o, "hash", json_string(hex));
    json_object_set(o, "payload", ev->payload);
    return o;
}

/* Compact JSON with numbers in their shortest round-trip form (0.0423, not
 * jansson's 0.042299999999999997): the canonical writer, keys sorted. */
static char *json_text(const json_t *v)
{
    char *text = NULL;
    return v != NULL && rre_canonical_json(v, &text, NULL) == RRE_OK ? text : NULL;
}

/* The event's time for people: "YYYY-MM-DD HH:MM:SS.mmmZ" in UTC, or in
 * the local zone with its offset; the stored text (made safe) when it is
 * not an RFC 3339 time. */
static char *show_time(const char *stamp, bool local)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    long ms = 0;
    if (p != NULL && *p == '.') {
        size_t digits = strspn(p + 1, "0123456789");
        char frac[4] = "000";
        memcpy(frac, p + 1, digits < 3 ? digits : 3);
        ms = strtol(frac, NULL, 10);
        p += 1 + digits;
    }
    time_t t =
        p != NULL && (strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0) ? timegm(&tm) : (time_t)-1;
    if (t == (time_t)-1)
        return cli_safe_text(stamp, true);
    struct tm out;
    char buf[64], zone[16] = "Z";
    if (local) {
        localtime_r(&t, &out);
        strftime(zone, sizeof zone, "%z", &out);
    } else {
        gmtime_r(&t, &out);
    }
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &out);
    snprintf(buf + n, sizeof buf - n, ".%03ld%s", ms, zone);
    return strdup(buf);
}

/* Bytes of `s` that fill at most `cols` columns (one per character; the
 * text is UTF-8 without control characters). */
static size_t fit(const char *s, size_t cols)
{
    size_t i = 0, used = 0;
    while (s[i] != '\0' && used < cols) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        used++;
    }
    return i;
}

static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

char *cli_tail_text(const rre_event *ev, const struct cli_tail_style *style)
{
    /* Nothing another writer put in a row reaches the terminal as a control
     * character. */
    char *payload = json_text(ev->payload);
    char *safe_payload = cli_safe_text(payload != NULL ? payload : "{}", false);
    char *source = cli_safe_text(ev->source[0] ? ev->source : "-", true);
    char *host = cli_safe_text(ev->hostname, true);
    char *when = show_time(ev->timestamp, style->local_time);
    char *line = NULL;
    if (safe_payload != NULL && source != NULL && host != NULL && when != NULL) {
        char *who = NULL;
        if (asprintf(&who, "%s@%s", source, host) >= 0) {
            const char *name = rre_event_name(ev->type);
            const rre_event_info *info = rre_event_get(ev->type);
            /* Aligned: id 8, time 28, type 30, source@host 24 (longer ones
             * push); on a terminal too narrow for that and 30 columns of
             * payload, single spaces instead. */
            int tw = 28, nw = 30, ww = 24, gap = 2;
            int head = snprintf(NULL, 0, "%8lld  %-*s  %-*s  %-*s  ", (long long)ev->event_id, tw,
                                when, nw, name, ww, who);
            if (style->width > 0 && head + 30 > style->width) {
                tw = nw = ww = 0;
                gap = 1;
                head =
                    snprintf(NULL, 0, "%8lld %s %s %s ", (long long)ev->event_id, when, name, who);
            }
            size_t room = (size_t)-1;
            if (style->width > 0)
                room = style->width > head + 10 ? (size_t)(style->width - head) : 10;
            size_t keep = strlen(safe_payload);
            bool cut = columns(safe_payload) > room;
            if (cut)
                keep = fit(safe_payload, room - 1);
            static const char *const hue[] = {"34", "35", "36", "32", "33", "31"};
            char on_type[16] = "";
            if (style->color && info != NULL)
                snprintf(on_type, sizeof on_type, "\033[%sm",
                         hue[(unsigned)info->category % (sizeof hue / sizeof *hue)]);
            const char *dim = style->color ? "\033[2m" : "", *off = style->color ? "\033[0m" : "";
            if (asprintf(&line, "%s%8lld%s%*s%-*s%*s%s%-*s%s%*s%-*s%*s%.*s%s", dim,
                         (long long)ev->event_id, off, gap, "", tw, when, gap, "", on_type, nw,
                         name, on_type[0] != '\0' ? off : "", gap, "", ww, who, gap, "", (int)keep,
                         safe_payload, cut ? "\u2026" : "") < 0)
                line = NULL;
            free(who);
        }
    }
    free(payload);
    free(safe_payload);
    free(source);
    free(host);
    free(when);
    return line;
}

char *cli_tail_line(const rre_event *ev, enum cli_tail_format format)
{
    if (format == CLI_TAIL_TEXT) {
        struct cli_tail_style plain = {false, false, 0};
        return cli_tail_text(ev, &plain);
    }
    json_t *o = event_json(ev, format);
    char *text = json_text(o);
    json_decref(o);
    return text;
}
