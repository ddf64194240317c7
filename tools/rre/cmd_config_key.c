/*
 * cmd_config_key.c - `rre config-key parse KEY` and `rre config-key make BOARD N`.
 *
 *   parse hex8_2p   prints {"board_type":"hex8","num_players":2}
 *   make hex8 2     prints hex8_2p
 *
 * An invalid key, board or player count is a failure (exit 1) with the reason
 * on stderr; a missing or extra argument is a usage error (exit 2).
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void cmd_config_key_help(FILE *out)
{
    fputs("usage: rre config-key parse KEY\n"
          "       rre config-key make BOARD N\n"
          "\n"
          "A config key is <board>_<n>p: board one of hex8, square8, square19,\n"
          "hexagonal, and n from 2 to 4 (e.g. hex8_2p).\n",
          out);
}

int cmd_config_key(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cmd_config_key_help(stdout);
        return CLI_OK;
    }
    if (argc < 2)
        return cli_usage_error("config-key: missing sub-command (parse KEY or make BOARD N)");
    if (strcmp(argv[1], "parse") == 0) {
        if (argc != 3)
            return cli_usage_error("config-key parse takes exactly one KEY");
        rre_config_key key;
        rre_status st = rre_config_key_parse(argv[2], &key);
        if (st != RRE_OK)
            return cli_fail_status("config-key", st);
        printf("{\"board_type\":\"%s\",\"num_players\":%d}\n", rre_board_name(key.board),
               key.num_players);
        return CLI_OK;
    }
    if (strcmp(argv[1], "make") == 0) {
        if (argc != 4)
            return cli_usage_error("config-key make takes BOARD and N");
        /* A plain decimal integer: no blanks, no '+', no other base. */
        const char *digits = argv[3][0] == '-' ? argv[3] + 1 : argv[3];
        bool plain = digits[0] != '\0';
        for (const char *c = digits; *c != '\0'; c++)
            plain = plain && *c >= '0' && *c <= '9';
        if (!plain)
            return cli_fail("config-key: number of players '%s' is not an integer", argv[3]);
        char *end = NULL;
        errno = 0;
        long n = strtol(argv[3], &end, 10);
        if (errno != 0 || n < INT_MIN || n > INT_MAX)
            return cli_fail("config-key: number of players '%s' is out of range (2 to 4)", argv[3]);
        char buf[RRE_CONFIG_KEY_MAX];
        rre_status st = rre_config_key_make(argv[2], (int)n, buf, sizeof buf);
        if (st != RRE_OK)
            return cli_fail_status("config-key", st);
        puts(buf);
        return CLI_OK;
    }
    return cli_usage_error("config-key: unknown sub-command '%s' (parse or make)", argv[1]);
}
