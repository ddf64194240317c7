/*
 * uri.c - one URI path segment (RFC 3986) from any text and back: what the
 * bridge's ce-source header holds for the host and the source.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *rre__uri_segment_encode(const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(text) * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (unreserved(*p)) {
            out[o++] = (char)*p;
            continue;
        }
        out[o++] = '%';
        out[o++] = hex[*p >> 4];
        out[o++] = hex[*p & 15];
    }
    out[o] = '\0';
    return out;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *rre__uri_segment_decode(const char *text, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '%') {
            out[o++] = text[i];
            continue;
        }
        if (i + 2 >= len) { /* a '%' without two digits after it */
            free(out);
            return NULL;
        }
        int a = hex_value(text[i + 1]), b = hex_value(text[i + 2]);
        if (a < 0 || b < 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(a * 16 + b);
        i += 2;
    }
    out[o] = '\0';
    if (out_len != NULL)
        *out_len = o;
    return out;
}
