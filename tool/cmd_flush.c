/* cmd_flush.c: "tarnfs flush": asks the tarnfsd serving a cache to write changed runs back to the backend now, and waits for its answer. */
#include "tool/cli.h"
#include "tool/commands.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "tarnfs flush"

static void flush_usage(FILE *out)
{
    fprintf(out,
            "usage: tarnfs flush --cache DIR NAME\n"
            "       tarnfs flush --cache DIR --all\n"
            "\n"
            "Ask the tarnfsd serving the cache DIR (read-write, with --source) to\n"
            "write run NAME, or every changed run, back to its backend now, and\n"
            "wait for the result.  The request goes through the server's control\n"
            "socket in DIR/vfs/ctl/.\n"
            "\n"
            "Exit status: 0 written back (or nothing to write), 1 failed (see the\n"
            "server log), 3 conflict: the backend object changed since it was\n"
            "fetched; this server's version was saved under a conflict key (see\n"
            "tarnfs cache resolve), 4 no server answered.\n"
            "\n"
            "options:\n"
            "  -c, --cache DIR     the cache directory (default $TARNFS_CACHE)\n"
            "  -a, --all           every changed run\n"
            "  -t, --timeout SECS  how long to wait for the server (default 600)\n"
            "  -h, --help          this help\n");
}

int cmd_flush(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "all", no_argument, NULL, 'a' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL;
    bool all = false;
    unsigned timeout = 600;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:at:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 'a': all = true; break;
        case 't':
            if (cli_timeout(PROG, optarg, &timeout))
                return CLI_USAGE;
            break;
        case 'h': flush_usage(stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    if (all == (optind < argc) || argc - optind > 1) {
        fprintf(stderr, "%s: give one run NAME or --all\nTry '%s --help'.\n",
                PROG, PROG);
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    const char *name = all ? NULL : argv[optind];
    while (name && *name == '/')
        name++;
    char msg[4096];
    int err = vfs_request(dir, name, false, timeout, msg, sizeof msg);
    if (err == EINVAL && !msg[0]) {
        fprintf(stderr, "%s: '%s' is not a valid run name\n", PROG, name);
        return CLI_USAGE;
    }
    if (err == 0) {
        printf("%s\n", msg);
        return CLI_OK;
    }
    fprintf(stderr, "%s: %s\n", PROG, msg[0] ? msg : strerror(err));
    return err == ECANCELED ? 3 : err == ETIMEDOUT || err == ESRCH ? 4
                                                                : CLI_FAIL;
}
