/*
 * fuzz_config_key.c - libFuzzer harness for rre_config_key_parse().
 *
 * Every input is parsed as a NUL-terminated string. A key that parses must
 * be remade by rre_config_key_make() into exactly the same text (the grammar
 * admits one spelling per key); a key that does not parse must leave a
 * detail message. Any violation aborts.
 */
#include <rre/rre.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *key = malloc(size + 1);
    if (key == NULL)
        return 0;
    memcpy(key, data, size);
    key[size] = '\0';

    rre_config_key parsed;
    rre_status st = rre_config_key_parse(key, &parsed);
    if (st == RRE_OK) {
        const char *board = rre_board_name(parsed.board);
        char made[RRE_CONFIG_KEY_MAX];
        if (board == NULL || parsed.num_players < 2 || parsed.num_players > 4 ||
            rre_config_key_make(board, parsed.num_players, made, sizeof made) != RRE_OK ||
            strcmp(made, key) != 0) {
            fprintf(stderr, "config key '%s' does not round-trip\n", key);
            abort();
        }
    } else if (st != RRE_ECONFIG_KEY || rre_last_error()[0] == '\0') {
        fprintf(stderr, "rejected config key without RRE_ECONFIG_KEY and a message\n");
        abort();
    }
    free(key);
    return 0;
}
