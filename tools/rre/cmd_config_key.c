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
    /* No options but -h/--help, before the sub-command; its words are all
     * operands, a negative N included (refused as out of range). */
    struct cli_getopt p;
    cli_getopt_init(&p, "config-key", NULL, 0);
    cli_getopt_stop_at_operand(&p);
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_config_key_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        }
    }
    char **args = argv + p.first_operand;
    int nargs = argc - p.first_operand;
    if (nargs < 1)
        return cli_usage_error("config-key: missing sub-command (parse KEY or make BOARD N)");
    if (strcmp(args[0], "parse") == 0) {
        if (nargs != 2)
            return cli_usage_error("config-key parse takes exactly one KEY");
        rre_config_key key;
        rre_status st = rre_config_key_parse(args[1], &key);
        if (st != RRE_OK)
            return cli_fail_status("config-key", st);
        printf("{\"board_type\":\"%s\",\"num_players\":%d}\n", rre_board_name(key.board),
               key.num_players);
        return CLI_OK;
    }
    if (strcmp(args[0], "make") == 0) {
        if (nargs != 3)
            return cli_usage_error("config-key make takes BOARD and N");
        /* A plain decimal integer: no blanks, no '+', no other base. */
        const char *digits = args[2][0] == '-' ? args[2] + 1 : args[2];
        bool plain = digits[0] != '\0';
        for (const char *c = digits; *c != '\0'; c++)
            plain = plain && *c >= '0' && *c <= '9';
        if (!plain)
            return cli_fail("config-key: number of players '%s' is not an integer", args[2]);
        char *end = NULL;
        errno = 0;
        long n = strtol(args[2], &end, 10);
        if (errno != 0 || n < INT_MIN || n > INT_MAX)
            return cli_fail("config-key: number of players '%s' is out of range (2 to 4)", args[2]);
        char buf[RRE_CONFIG_KEY_MAX];
        rre_status st = rre_config_key_make(args[1], (int)n, buf, sizeof buf);
        if (st != RRE_OK)
            return cli_fail_status("config-key", st);
        puts(buf);
        return CLI_OK;
    }
    return cli_usage_error("config-key: unknown sub-command '%s' (parse or make)", args[0]);
}
