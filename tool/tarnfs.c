/* tarnfs.c: main() of the tarnfs operator tool: dispatches to the subcommand named by argv[1]. */
#include "tool/commands.h"
#include "util/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* One line per subcommand; each is implemented in tool/cmd_<name>.c.
 * Hidden ones (for tests) are left out of the usage. */
struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    bool hidden;
};

static const struct subcommand subcommands[] = {
    { "ingest", cmd_ingest, "stream a tarball (file or stdin) into the cache as one run", false },
    { "ls",     cmd_ls,     "list runs, directories and files in the cache", false },
    { "cat",    cmd_cat,    "write a cached file's bytes to stdout", false },
    { "cache",  cmd_cache,  "cached runs: ls, evict, stats, resolve", false },
    { "convert", cmd_convert, "turn run directories into tarballs (S3, NAS dir, in place)", false },
    { "index",  cmd_index,  "build the missing run indexes of a collection of tarballs", false },
    { "stats",  cmd_stats,  "print the counters of the tarnfsd serving a cache", false },
    { "flush",  cmd_flush,  "make the tarnfsd serving a cache write changed runs back now", false },
    { "test-clock", cmd_test_clock, "advance a test tarnfsd's clock", true },
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tarnfs <command> [options] [args]\n"
            "       tarnfs <command> --help\n"
            "       tarnfs --help\n"
            "\n"
            "tarnfs is the operator tool of tarnfs, which serves tarballs as an\n"
            "NFSv3 filesystem.  Commands that take --cache DIR work directly on\n"
            "the cache and need no running tarnfsd.  TARNFS_CACHE may stand in\n"
            "for --cache.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!subcommands[i].hidden)
            fprintf(out, "  %-8s %s\n", subcommands[i].name,
                    subcommands[i].summary);
    fprintf(out, "\nSee tarnfs(1).\n");
}

int main(int argc, char **argv)
{
    log_setup("tarnfs", 0, LOG_LVL_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            /* "tarnfs help ls" is "tarnfs ls --help". */
            char *helpargv[] = { argv[2], (char *)"--help", NULL };
            for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
                if (strcmp(argv[2], subcommands[i].name) == 0)
                    return subcommands[i].run(2, helpargv);
            fprintf(stderr, "tarnfs: unknown command '%s'\n", argv[2]);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(cmd, subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tarnfs: unknown command '%s' (try tarnfs --help)\n", cmd);
    return 2;
}
