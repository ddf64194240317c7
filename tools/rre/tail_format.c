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

char *cli_tail_line(const rre_event *ev, enum cli_tail_format format)
{
    if (format == CLI_TAIL_TEXT) {
        /* Nothing another writer put in a row reaches the terminal as a
         * control character. */
        char *payload = json_text(ev->payload);
        char *safe_payload = cli_safe_text(payload != NULL ? payload : "{}", false);
        char *source = cli_safe_text(ev->source[0] ? ev->source : "-", true);
        char *host = cli_safe_text(ev->hostname, true);
        char *line = NULL;
        if (safe_payload != NULL && source != NULL && host != NULL &&
            asprintf(&line, "%lld %s %s %s@%s %s", (long long)ev->event_id, ev->timestamp,
                     rre_event_name(ev->type), source, host, safe_payload) < 0)
            line = NULL;
        free(payload);
        free(safe_payload);
        free(source);
        free(host);
        return line;
    }
    json_t *o = event_json(ev, format);
    char *text = json_text(o);
    json_decref(o);
    return text;
}
