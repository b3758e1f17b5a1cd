/* cmd_test_clock.c: "tarnfs test-clock" (hidden, for tests): advance the decision clock of the tarnfsd serving a cache, which must run with TARNFS_TEST_CLOCK=1, instead of sleeping through a grace period. */
#include "tool/cli.h"
#include "tool/commands.h"
#include "util/units.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "tarnfs test-clock"

static void test_clock_usage(FILE *out)
{
    fprintf(out,
            "usage: tarnfs test-clock --cache DIR DURATION\n"
            "\n"
            "For tests only.  Advance the clock that the tarnfsd serving the cache\n"
            "DIR decides grace periods, delays and timeouts by (eviction grace,\n"
            "write-back delay, listing TTL, NLM grace, park timeout) by DURATION\n"
            "(\"6s\", \"1500ms\"; a bare number is seconds), then wait until its\n"
            "housekeeping has run once with the new time.  That tarnfsd must have\n"
            "been started with TARNFS_TEST_CLOCK=1; any other refuses.  File\n"
            "timestamps and the logs keep the real time.\n"
            "\n"
            "Exit status: 0 advanced, 1 refused or failed, 4 no server answered.\n"
            "\n"
            "options:\n"
            "  -c, --cache DIR     the cache directory (default $TARNFS_CACHE)\n"
            "  -t, --timeout SECS  how long to wait for the server (default 60)\n"
            "  -h, --help          this help\n");
}

int cmd_test_clock(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL;
    unsigned timeout = 60;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 't':
            if (cli_timeout(PROG, optarg, &timeout))
                return CLI_USAGE;
            break;
        case 'h': test_clock_usage(stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "%s: give one DURATION\nTry '%s --help'.\n", PROG,
                PROG);
        return CLI_USAGE;
    }
    uint64_t ms;
    if (units_duration_ms(argv[optind], &ms) != 0 || ms == 0 ||
        ms > INT64_MAX) {
        fprintf(stderr, "%s: '%s' is not a duration (\"6s\", \"1500ms\")\n",
                PROG, argv[optind]);
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    char msg[4096];
    int err = vfs_request_clock_advance(dir, (long long)ms, timeout, msg,
                                        sizeof msg);
    if (err == 0) {
        printf("%s\n", msg);
        return CLI_OK;
    }
    fprintf(stderr, "%s: %s\n", PROG, msg[0] ? msg : strerror(err));
    return err == ETIMEDOUT || err == ESRCH ? 4 : CLI_FAIL;
}
