/*
 * canonical.c - canonical JSON (RFC 8785, the JSON Canonicalization Scheme)
 * of jansson values: object keys sorted by UTF-16 code units, no
 * insignificant whitespace, strings with only the escapes JSON requires,
 * numbers in the ECMAScript Number-to-String form. Integers (json_integer)
 * are printed exactly, also beyond 2^53.
 *
 * This is on the publish path, so the writer appends into a caller-provided
 * buffer that starts on the stack, sorts keys in a small stack array, and
 * allocates nothing per key or per value.
 */
#include "canonical.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Buffer                                                                    */
/* ------------------------------------------------------------------------ */

void rre__buf_init(struct rre__buf *buf, char *initial, size_t cap)
{
    buf->data = initial;
    buf->len = 0;
    buf->cap = initial != NULL ? cap : 0;
    buf->on_heap = false;
}

void rre__buf_reset(struct rre__buf *buf)
{
    buf->len = 0;
}

void rre__buf_free(struct rre__buf *buf)
{
    if (buf->on_heap)
        free(buf->data);
    rre__buf_init(buf, NULL, 0);
}

static rre_status buf_grow(struct rre__buf *buf, size_t extra)
{
    if (extra > SIZE_MAX / 2 - buf->len)
        return rre__error(RRE_ENOMEM, "canonical JSON: text too large");
    size_t need = buf->len + extra;
    size_t cap = buf->cap < 256 ? 256 : buf->cap;
    while (cap < need)
        cap *= 2;
    char *data;
    if (buf->on_heap) {
        data = realloc(buf->data, cap);
    } else {
        data = malloc(cap);
        if (data != NULL && buf->len > 0)
            memcpy(data, buf->data, buf->len);
    }
    if (data == NULL)
        return rre__error(RRE_ENOMEM, "canonical JSON: out of memory for %zu bytes", cap);
    buf->data = data;
    buf->cap = cap;
    buf->on_heap = true;
    return RRE_OK;
}

rre_status rre__buf_reserve(struct rre__buf *buf, size_t extra)
{
    if (buf->cap - buf->len >= extra)
        return RRE_OK;
    return buf_grow(buf, extra);
}

rre_status rre__buf_append(struct rre__buf *buf, const void *bytes, size_t len)
{
    if (buf->cap - buf->len < len) {
        rre_status st = buf_grow(buf, len);
        if (st != RRE_OK)
            return st;
    }
    if (len > 0)
        memcpy(buf->data + buf->len, bytes, len);
    buf->len += len;
    return RRE_OK;
}

static inline rre_status put_char(struct rre__buf *buf, char c)
{
    if (buf->cap == buf->len) {
        rre_status st = buf_grow(buf, 1);
        if (st != RRE_OK)
            return st;
    }
    buf->data[buf->len++] = c;
    return RRE_OK;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                   */
/* ------------------------------------------------------------------------ */

/* Longest number text: a sign, 17 digits, a point and "e-324"; or a sign
 * and 21 integer digits; or "-0.00000" and 17 digits. */
#define NUMBER_MAX 40

/* Writes the decimal digits of `u` ending just before `end`; returns the
 * first digit. */
static char *u64_digits(uint64_t u, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    return p;
}

/* Copies the few bytes [from, end) to `out`; returns how many. A loop is
 * cheaper than a call to memcpy() for a number's handful of digits. */
static inline size_t copy_small(char *out, const char *from, const char *end)
{
    size_t n = (size_t)(end - from);
    for (size_t i = 0; i < n; i++)
        out[i] = from[i];
    return n;
}

static size_t format_integer(json_int_t v, char *out)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = u64_digits(u, end);
    if (v < 0)
        *--p = '-';
    return copy_small(out, p, end);
}

/* Lays out a number given as significant digits d1..dk (no trailing zero,
 * d1 not zero) and the position n of the decimal point (value =
 * 0.d1..dk * 10^n), following ECMAScript's Number::toString for radix 10. */
static size_t layout_number(char *out, bool negative, const char *digits, int k, int n)
{
    char *p = out;
    if (negative)
        *p++ = '-';
    if (k <= n && n <= 21) {
        memcpy(p, digits, (size_t)k);
        p += k;
        memset(p, '0', (size_t)(n - k));
        p += n - k;
    } else if (0 < n && n <= 21) {
        memcpy(p, digits, (size_t)n);
        p += n;
        *p++ = '.';
        memcpy(p, digits + n, (size_t)(k - n));
        p += k - n;
    } else if (-6 < n && n <= 0) {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)-n);
        p += -n;
        memcpy(p, digits, (size_t)k);
        p += k;
    } else {
        *p++ = digits[0];
        if (k > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)(k - 1));
            p += k - 1;
        }
        int e = n - 1;
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        char tmp[8];
        char *end = tmp + sizeof tmp;
        char *d = u64_digits((uint64_t)(e < 0 ? -e : e), end);
        memcpy(p, d, (size_t)(end - d));
        p += end - d;
    }
    return (size_t)(p - out);
}

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define TWO_POW_50 1125899906842624.0
#define TWO_POW_53 9007199254740992.0

/* Fast path for the common reals: a short decimal fraction such as 0.0423
 * or 1832.5. For k = 1, 2, ... it takes r = round(a * 10^k) and checks that
 * r / 10^k == a. Both r (below 2^50) and 10^k (k <= 22) are exact doubles,
 * so the division is correctly rounded, which is exactly what parsing the
 * decimal r * 10^-k yields: the check proves that text round-trips. The
 * first k that works gives the fewest digits. Below 2^50 the spacing 10^-k
 * is more than four units in the last place of `a`, so at most one k-digit
 * decimal rounds to `a`, and it is the nearest one, as ECMAScript demands.
 * Returns false when no k qualifies (very small, very large or long). */
static bool short_fraction(double a, uint64_t *r_out, int *k_out)
{
    for (int k = 1; k < (int)RRE__ARRAY_LEN(exact_pow10); k++) {
        double m = a * exact_pow10[k];
        if (m >= TWO_POW_50)
            return false;
        double r = (double)(uint64_t)(m + 0.5); /* m + 0.5 is exact and positive */
        if (r / exact_pow10[k] == a) {
            *r_out = (uint64_t)r;
            *k_out = k;
            return true;
        }
    }
    return false;
}

/* Reads the significant digits and the exponent of "%.*e" output
 * ("d<point>ddd...e<sign>xx"; the point follows the locale). Returns the
 * number of digits, trailing zeros removed. */
static int parse_exponent_form(const char *text, char *digits, int *exponent)
{
    int k = 0;
    const char *p = text;
    for (; *p != 'e' && *p != '\0'; p++)
        if (*p >= '0' && *p <= '9')
            digits[k++] = *p;
    *exponent = *p == 'e' ? atoi(p + 1) : 0;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    return k;
}

/* The general case: the fewest significant digits that parse back to `a`,
 * and of those the nearest to `a`.
 *
 * For a normal double, if any decimal of at most 15 digits round-trips, it
 * lies within half a unit of the 15th digit of `a` (a double's rounding
 * interval reaches at most 2^-53 of it either side), so it is the correctly
 * rounded "%.14e", padded with zeros. Failing that, the correctly rounded
 * 16-digit form is tried; it can fail where a 16-digit decimal on the other
 * side of `a` succeeds, when `a` is a power of two (its interval is half as
 * wide below) or the nearest one parses to the neighbouring double, so that
 * other side's neighbour is tried too. Seventeen digits always round-trip.
 * Subnormals carry fewer bits but have symmetric intervals, so for them the
 * correctly rounded form of every length from one digit up is tried. */
static void general_digits(double a, char *digits, int *k_out, int *n_out)
{
    char tmp[NUMBER_MAX];
    int exponent;
    if (a < DBL_MIN) {
        for (int prec = 0;; prec++) {
            snprintf(tmp, sizeof tmp, "%.*e", prec, a);
            if (prec == 16 || strtod(tmp, NULL) == a)
                break;
        }
    } else {
        snprintf(tmp, sizeof tmp, "%.14e", a);
        if (strtod(tmp, NULL) != a) {
            snprintf(tmp, sizeof tmp, "%.15e", a);
            double back = strtod(tmp, NULL);
            if (back != a) {
                /* The 16-digit neighbour on the other side of `a`. */
                char d16[24];
                int k = parse_exponent_form(tmp, d16, &exponent);
                uint64_t d = 0;
                for (int i = 0; i < 16; i++)
                    d = d * 10 + (uint64_t)(i < k ? d16[i] - '0' : 0);
                d = back < a ? d + 1 : d - 1;
                char alt[NUMBER_MAX];
                if (d >= UINT64_C(1000000000000000) && d < UINT64_C(10000000000000000)) {
                    snprintf(alt, sizeof alt, "%" PRIu64 "e%d", d, exponent - 15);
                    if (strtod(alt, NULL) == a) {
                        char *end = digits + 16;
                        u64_digits(d, end);
                        int n = 16;
                        while (n > 1 && digits[n - 1] == '0')
                            n--;
                        *k_out = n;
                        *n_out = exponent + 1;
                        return;
                    }
                }
                snprintf(tmp, sizeof tmp, "%.16e", a);
            }
        }
    }
    *k_out = parse_exponent_form(tmp, digits, &exponent);
    *n_out = exponent + 1;
}

/* Formats a finite real; returns the length written to `out`. */
static size_t format_real(double x, char *out)
{
    bool negative = x < 0;
    double a = fabs(x);
    if (a == 0) {
        out[0] = '0'; /* -0 too */
        return 1;
    }
    if (a < TWO_POW_53 && a == (double)(uint64_t)a) {
        char tmp[24];
        char *end = tmp + sizeof tmp;
        char *p = u64_digits((uint64_t)a, end);
        if (negative)
            *--p = '-';
        return copy_small(out, p, end);
    }
    char digits[24];
    int k, n;
    uint64_t r;
    int frac;
    if (short_fraction(a, &r, &frac)) {
        char *end = digits + sizeof digits;
        char *p = u64_digits(r, end);
        k = (int)(end - p);
        n = k - frac;
        memmove(digits, p, (size_t)k);
        while (k > 1 && digits[k - 1] == '0')
            k--;
    } else {
        general_digits(a, digits, &k, &n);
    }
    return layout_number(out, negative, digits, k, n);
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */
/* ------------------------------------------------------------------------ */

static const char hex_digits[] = "0123456789abcdef";

/* Whether any of the eight bytes of `w` is a control character, '"' or
 * '\\'. Each test is the classic "has a byte below n" bit trick, exact as a
 * yes/no answer. */
static inline bool word_needs_escape(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t highs = UINT64_C(0x8080808080808080);
    uint64_t quote = w ^ (ones * '"');
    uint64_t backslash = w ^ (ones * '\\');
    uint64_t found =
        ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
    return (found & highs) != 0;
}

/* Writes the escapes of s[from..len) and the closing quote; the opening
 * quote and s[0..from) are already written. */
static rre_status write_string_escaped(struct rre__buf *buf, const char *s, size_t len, size_t from)
{
    rre_status st;
    size_t run = from; /* start of the pending unescaped bytes */
    for (size_t i = from; i < len; i++) {
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (word_needs_escape(w))
                break;
            i += 8;
        }
        if (i == len)
            break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((st = rre__buf_append(buf, s + run, i - run)) != RRE_OK)
            return st;
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex_digits[c >> 4];
            esc[5] = hex_digits[c & 0xf];
            esc_len = 6;
            break;
        }
        if ((st = rre__buf_append(buf, esc, esc_len)) != RRE_OK)
            return st;
    }
    if ((st = rre__buf_append(buf, s + run, len - run)) != RRE_OK)
        return st;
    return put_char(buf, '"');
}

/* The 1..7 bytes of a string's tail as a word, padded with spaces (which
 * need no escape), with fixed-size copies the compiler inlines. */
static inline uint64_t load_tail(const char *s, size_t n)
{
    uint64_t w = UINT64_C(0x2020202020202020);
    unsigned char *d = (unsigned char *)&w;
    size_t o = 0;
    if (n & 4) {
        memcpy(d, s, 4);
        o = 4;
    }
    if (n & 2) {
        memcpy(d + o, s + o, 2);
        o += 2;
    }
    if (n & 1)
        d[o] = (unsigned char)s[o];
    return w;
}

static rre_status write_string(struct rre__buf *buf, const char *s, size_t len)
{
    /* The common case, nothing to escape, is checked and copied eight bytes
     * at a time. The last word may write up to 7 bytes of padding past the
     * string, hence the room reserved beyond its two quotes. */
    rre_status st = rre__buf_reserve(buf, len + 10);
    if (st != RRE_OK)
        return st;
    char *out = buf->data + buf->len + 1;
    out[-1] = '"';
    size_t i = 0;
    bool plain = true;
    uint64_t w;
    for (; i + 8 <= len && plain; i += 8) {
        memcpy(&w, s + i, 8);
        plain = !word_needs_escape(w);
        if (plain)
            memcpy(out + i, &w, 8);
    }
    if (!plain) {
        i -= 8;
    } else if (i < len) {
        w = load_tail(s + i, len - i);
        plain = !word_needs_escape(w);
        if (plain)
            memcpy(out + i, &w, 8);
    }
    if (plain) {
        out[len] = '"';
        buf->len += len + 2;
        return RRE_OK;
    }
    buf->len += i + 1;
    return write_string_escaped(buf, s, len, i);
}

/* ------------------------------------------------------------------------ */
/* Key order                                                                 */
/* ------------------------------------------------------------------------ */

/* Orders UTF-8 lead bytes as their characters order in UTF-16. UTF-8 byte
 * order is code point order, which UTF-16 code unit order matches except
 * that characters above U+FFFF (lead bytes F0..F4, surrogates D800..DFFF in
 * UTF-16) sort before U+E000..U+FFFF (lead bytes EE and EF). Two valid
 * strings with an equal prefix first differ at the same kind of byte, so
 * remapping just those lead bytes is enough; every other byte keeps its
 * value. The map is a permutation of the byte values. */
static inline unsigned char utf16_rank(unsigned char c)
{
    if (c < 0xEE || c > 0xF4)
        return c; /* F5..FF never occur in valid UTF-8 */
    if (c < 0xF0)
        return (unsigned char)(c + 5); /* EE, EF after F0..F4 */
    return (unsigned char)(c - 2);     /* F0..F4 right after ED */
}

struct member {
    uint64_t prefix; /* the first 8 ranked key bytes, big-endian, zero-padded */
    const char *key;
    size_t key_len;
    const json_t *value;
};

/* The sort prefix of a key: comparing two prefixes as integers orders the
 * keys as their first eight bytes do; equal prefixes need the full compare. */
static inline uint64_t key_prefix(const char *key, size_t len)
{
    uint64_t w = 0;
    size_t n = len < 8 ? len : 8;
    memcpy(&w, key, n);
    /* Bytes 0x80 and above may need ranking: take them one by one. */
    if ((w & UINT64_C(0x8080808080808080)) != 0) {
        uint64_t p = 0;
        for (size_t i = 0; i < 8; i++)
            p = p << 8 | (i < n ? utf16_rank((unsigned char)key[i]) : 0u);
        return p;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(w);
#else
    return w;
#endif
}

static int compare_keys(const struct member *a, const struct member *b)
{
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    for (size_t i = 8; i < n; i++) {
        unsigned char x = (unsigned char)a->key[i], y = (unsigned char)b->key[i];
        if (x != y)
            return utf16_rank(x) < utf16_rank(y) ? -1 : 1;
    }
    return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static int compare_members(const void *a, const void *b)
{
    return compare_keys(a, b);
}

/* Up to this many members are sorted by insertion into a stack array;
 * larger objects are sorted with qsort() in a heap array. */
#define SMALL_OBJECT 16

static void sort_members(struct member *m, size_t n)
{
    if (n > SMALL_OBJECT) {
        qsort(m, n, sizeof *m, compare_members);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct member cur = m[i];
        size_t j = i;
        while (j > 0 && compare_keys(&cur, &m[j - 1]) < 0) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = cur;
    }
}

bool rre__has_envelope_field(const json_t *payload)
{
    static const char *const names[] = {"source", "trace_id", "timestamp", "created_at"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (json_object_get(payload, names[i]) != NULL)
            return true;
    return false;
}

/* The envelope fields left out of the content hash (rre__has_envelope_field
 * names the same four). */
static bool is_envelope_field(const char *key, size_t len)
{
    switch (len) {
    case 6:
        return memcmp(key, "source", 6) == 0;
    case 8:
        return memcmp(key, "trace_id", 8) == 0;
    case 9:
        return memcmp(key, "timestamp", 9) == 0;
    case 10:
        return memcmp(key, "created_at", 10) == 0;
    default:
        return false;
    }
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

static rre_status write_value(const json_t *value, struct rre__buf *buf, int depth);

static rre_status write_object(const json_t *object, struct rre__buf *buf, int depth,
                               bool skip_envelope)
{
    size_t size = json_object_size(object);
    struct member small[SMALL_OBJECT];
    struct member *members = small;
    if (size > SMALL_OBJECT) {
        members = malloc(size * sizeof *members);
        if (members == NULL)
            return rre__error(RRE_ENOMEM, "canonical JSON: out of memory for %zu keys", size);
    }
    /* jansson's iteration does not modify the object; its API is not const. */
    json_t *obj = (json_t *)object;
    size_t n = 0;
    for (void *it = json_object_iter(obj); it != NULL && n < size;
         it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t key_len = json_object_iter_key_len(it);
        if (skip_envelope && is_envelope_field(key, key_len))
            continue;
        members[n].prefix = key_prefix(key, key_len);
        members[n].key = key;
        members[n].key_len = key_len;
        members[n].value = json_object_iter_value(it);
        n++;
    }
    sort_members(members, n);

    rre_status st = put_char(buf, '{');
    for (size_t i = 0; i < n && st == RRE_OK; i++) {
        if (i > 0 && (st = put_char(buf, ',')) != RRE_OK)
            break;
        if ((st = write_string(buf, members[i].key, members[i].key_len)) != RRE_OK)
            break;
        if ((st = put_char(buf, ':')) != RRE_OK)
            break;
        st = write_value(members[i].value, buf, depth);
    }
    if (st == RRE_OK)
        st = put_char(buf, '}');
    if (members != small)
        free(members);
    return st;
}

static rre_status write_array(const json_t *array, struct rre__buf *buf, int depth)
{
    rre_status st = put_char(buf, '[');
    size_t n = json_array_size(array);
    for (size_t i = 0; i < n && st == RRE_OK; i++) {
        if (i > 0 && (st = put_char(buf, ',')) != RRE_OK)
            break;
        st = write_value(json_array_get(array, i), buf, depth);
    }
    if (st == RRE_OK)
        st = put_char(buf, ']');
    return st;
}

static rre_status write_value(const json_t *value, struct rre__buf *buf, int depth)
{
    rre_status st;
    switch (json_typeof(value)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth >= RRE__CANONICAL_MAX_DEPTH)
            return rre__error(RRE_ELIMIT, "canonical JSON: nesting deeper than %d levels",
                              RRE__CANONICAL_MAX_DEPTH);
        return json_is_object(value) ? write_object(value, buf, depth + 1, false)
                                     : write_array(value, buf, depth + 1);
    case JSON_STRING:
        return write_string(buf, json_string_value(value), json_string_length(value));
    case JSON_INTEGER:
        if ((st = rre__buf_reserve(buf, NUMBER_MAX)) == RRE_OK)
            buf->len += format_integer(json_integer_value(value), buf->data + buf->len);
        return st;
    case JSON_REAL: {
        double x = json_real_value(value);
        if (!isfinite(x))
            return rre__error(RRE_EINVAL, "canonical JSON: non-finite number");
        if ((st = rre__buf_reserve(buf, NUMBER_MAX)) == RRE_OK)
            buf->len += format_real(x, buf->data + buf->len);
        return st;
    }
    case JSON_TRUE:
        return rre__buf_append(buf, "true", 4);
    case JSON_FALSE:
        return rre__buf_append(buf, "false", 5);
    case JSON_NULL:
        return rre__buf_append(buf, "null", 4);
    }
    return rre__error(RRE_EINVAL, "canonical JSON: unknown JSON value type");
}

rre_status rre__canonical_write(const json_t *value, struct rre__buf *buf)
{
    if (value == NULL)
        return rre__error(RRE_EINVAL, "canonical JSON: value is NULL");
    return write_value(value, buf, 0);
}

rre_status rre__canonical_write_payload(const json_t *payload, struct rre__buf *buf)
{
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "payload is not a JSON object");
    return write_object(payload, buf, 1, true);
}

rre_status rre_canonical_json(const json_t *value, char **out, size_t *len)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_canonical_json: out is NULL");
    *out = NULL;
    if (len != NULL)
        *len = 0;
    char stack[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, stack, sizeof stack);
    rre_status st = rre__canonical_write(value, &buf);
    if (st == RRE_OK)
        st = put_char(&buf, '\0');
    if (st != RRE_OK) {
        rre__buf_free(&buf);
        return st;
    }
    char *text = buf.data;
    if (!buf.on_heap) {
        text = malloc(buf.len);
        if (text == NULL)
            return rre__error(RRE_ENOMEM, "canonical JSON: out of memory for %zu bytes", buf.len);
        memcpy(text, buf.data, buf.len);
    }
    *out = text;
    if (len != NULL)
        *len = buf.len - 1;
    return RRE_OK;
}
