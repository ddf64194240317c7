/*
 * config_key.c - config keys ("hex8_2p"): the board type and player count
 * that identify one training configuration, and the board names.
 *
 * The grammar is strict so that every accepted key has exactly one spelling:
 * a lowercase board name, '_', one digit 2..4, 'p', end of string. Anything
 * else is rejected with a message naming the first thing that is wrong.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const board_names[RRE_BOARD_COUNT] = {
    [RRE_BOARD_HEX8] = "hex8",
    [RRE_BOARD_SQUARE8] = "square8",
    [RRE_BOARD_SQUARE19] = "square19",
    [RRE_BOARD_HEXAGONAL] = "hexagonal",
};

#define BOARD_LIST "hex8, square8, square19, hexagonal"
#define KEY_FORM "<board>_<n>p, e.g. hex8_2p"

/* How many bytes of a rejected key are quoted back in a detail message. */
#define QUOTE_MAX 40

/* Longer inputs are not scanned further: no valid key comes near this. */
#define SCAN_MAX 64

/* Writes `s` (at most `len` bytes) into `buf` for a message: printable ASCII
 * as is, every other byte as \xNN, cut after QUOTE_MAX bytes with "...". */
static const char *quote(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 5 >= cap)
            break;
        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (len > QUOTE_MAX && o + 4 <= cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

const char *rre_board_name(rre_board board)
{
    if ((unsigned)board >= RRE_BOARD_COUNT)
        return NULL;
    return board_names[board];
}

/* Looks up exactly `len` bytes of `name`; -1 when no board has that name. */
static int board_lookup(const char *name, size_t len)
{
    for (int b = 0; b < RRE_BOARD_COUNT; b++) {
        if (strlen(board_names[b]) == len && memcmp(board_names[b], name, len) == 0)
            return b;
    }
    return -1;
}

rre_status rre_board_parse(const char *name, rre_board *out)
{
    if (name == NULL || out == NULL)
        return rre__error(RRE_EINVAL, "rre_board_parse: NULL argument");
    size_t len = strnlen(name, SCAN_MAX);
    int b = board_lookup(name, len);
    if (b < 0) {
        char q[QUOTE_MAX * 4 + 8];
        return rre__error(RRE_ECONFIG_KEY, "unknown board '%s' (boards: " BOARD_LIST ")",
                          quote(name, len, q, sizeof q));
    }
    *out = (rre_board)b;
    return RRE_OK;
}

rre_status rre_config_key_parse(const char *key, rre_config_key *out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_config_key_parse: out is NULL");
    if (key == NULL)
        return rre__error(RRE_ECONFIG_KEY, "config key is NULL");
    size_t len = strnlen(key, SCAN_MAX);
    char q[QUOTE_MAX * 4 + 8];
    if (len == 0)
        return rre__error(RRE_ECONFIG_KEY, "config key is empty (expected " KEY_FORM ")");
    if (len >= RRE_CONFIG_KEY_MAX)
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s' is too long (a valid key has at most %d characters)",
                          quote(key, len, q, sizeof q), RRE_CONFIG_KEY_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c >= 'A' && c <= 'Z')
            return rre__error(RRE_ECONFIG_KEY, "config key '%s' must be lowercase",
                              quote(key, len, q, sizeof q));
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return rre__error(RRE_ECONFIG_KEY,
                              "config key '%s' contains a character other than a-z, 0-9 and '_' "
                              "at offset %zu",
                              quote(key, len, q, sizeof q), i);
    }
    const char *sep = memchr(key, '_', len);
    if (sep == NULL)
        return rre__error(RRE_ECONFIG_KEY, "config key '%s' has no '_' (expected " KEY_FORM ")",
                          quote(key, len, q, sizeof q));
    size_t board_len = (size_t)(sep - key);
    if (board_len == 0)
        return rre__error(RRE_ECONFIG_KEY, "config key '%s' has no board before '_'",
                          quote(key, len, q, sizeof q));
    int board = board_lookup(key, board_len);
    if (board < 0) {
        char qb[QUOTE_MAX * 4 + 8];
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s' has unknown board '%s' (boards: " BOARD_LIST ")",
                          quote(key, len, q, sizeof q), quote(key, board_len, qb, sizeof qb));
    }
    const char *n = sep + 1;
    size_t n_len = len - board_len - 1;
    if (n_len == 0)
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s' has no player count after '_' (expected " KEY_FORM ")",
                          quote(key, len, q, sizeof q));
    if (n[0] < '0' || n[0] > '9')
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s': the player count must start with a digit 2..4",
                          quote(key, len, q, sizeof q));
    if (n[0] == '0' && n_len > 1 && n[1] >= '0' && n[1] <= '9')
        return rre__error(RRE_ECONFIG_KEY, "config key '%s': the player count has a leading zero",
                          quote(key, len, q, sizeof q));
    if (n_len > 1 && n[1] >= '0' && n[1] <= '9')
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s': the player count must be one digit 2..4",
                          quote(key, len, q, sizeof q));
    if (n_len == 1)
        return rre__error(
            RRE_ECONFIG_KEY,
            "config key '%s' must end in 'p' after the player count (expected " KEY_FORM ")",
            quote(key, len, q, sizeof q));
    if (n[1] != 'p')
        return rre__error(RRE_ECONFIG_KEY,
                          "config key '%s': expected 'p' after the player count, found '%c'",
                          quote(key, len, q, sizeof q), n[1]);
    if (n_len > 2)
        return rre__error(RRE_ECONFIG_KEY, "config key '%s' has characters after '%.*s'",
                          quote(key, len, q, sizeof q), (int)(board_len + 3), key);
    int players = n[0] - '0';
    if (players < 2 || players > 4)
        return rre__error(RRE_ECONFIG_KEY, "config key '%s': the player count %d is outside 2..4",
                          quote(key, len, q, sizeof q), players);
    out->board = (rre_board)board;
    out->num_players = players;
    return RRE_OK;
}

rre_status rre_config_key_make(const char *board, int num_players, char *buf, size_t cap)
{
    if (buf == NULL)
        return rre__error(RRE_EINVAL, "rre_config_key_make: buf is NULL");
    if (cap > 0)
        buf[0] = '\0';
    if (board == NULL)
        return rre__error(RRE_ECONFIG_KEY, "board is NULL");
    rre_board b;
    rre_status st = rre_board_parse(board, &b);
    if (st != RRE_OK)
        return st;
    if (num_players < 2 || num_players > 4)
        return rre__error(RRE_ECONFIG_KEY, "number of players %d is outside 2..4", num_players);
    int n = snprintf(buf, cap, "%s_%dp", board_names[b], num_players);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return rre__error(RRE_EINVAL, "config key buffer too small (%zu bytes, need %d)", cap,
                          n + 1);
    }
    return RRE_OK;
}
