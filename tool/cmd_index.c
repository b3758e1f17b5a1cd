/* cmd_index.c: "tarnfs index": options of the run-index backfill; the work is conv_index_run (convert_index.c). */
#include "tool/cli.h"
#include "tool/commands.h"
#include "convert/convert.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROG "tarnfs index"

static const char index_usage[] =
    "usage: tarnfs index SOURCE [NAME...] [options]\n"
    "\n"
    "Builds the missing run indexes of a collection of tarballs, so tarnfsd\n"
    "can list a run from its index and fetch single members by byte range.\n"
    "SOURCE is a NAS directory or s3://BUCKET[/PREFIX] (none: the source set\n"
    "in $TARNFS_CONFIG or /etc/tarnfs/tarnfs.conf); NAMEs pick tarballs\n"
    "(a key such as 2024/RUN.tar, or RUN without the suffix).  For each plain\n"
    "tarball whose sidecar KEY.tarnfs-index is missing, corrupt or describes\n"
    "another version of it, the tarball is read once and its index stored:\n"
    "on S3 conditionally (never over a newer index), on a NAS atomically.\n"
    "Compressed tarballs are skipped: they allow no random access.\n"
    "\n"
    "options:\n"
    "  --s3-endpoint URL   S3 endpoint (else AWS_ENDPOINT_URL; credentials from\n"
    "                      the usual AWS variables or profile)\n"
    "  --force             rebuild indexes that are up to date too\n"
    "  --progress          live progress line on stderr (default: on a terminal)\n"
    "  -q, --quiet         no line for tarballs already indexed\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 all indexed (or up to date, or skipped), 1 some tarball\n"
    "failed or a NAME was not found, 2 bad usage or an unreadable SOURCE.\n";

int cmd_index(int argc, char **argv)
{
    enum { OPT_S3_ENDPOINT = 256, OPT_FORCE, OPT_PROGRESS };
    static const struct option longopts[] = {
        { "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
        { "force", no_argument, NULL, OPT_FORCE },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct conv_index_opts o = { .progress = isatty(2) };
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_S3_ENDPOINT: o.s3_endpoint = optarg; break;
        case OPT_FORCE: o.force = true; break;
        case OPT_PROGRESS: o.progress = true; break;
        case 'q': o.quiet = true; break;
        case 'h': fputs(index_usage, stdout); return CLI_OK;
        default:
            opt_bad_option(PROG, argv, c);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        /* No SOURCE: the one tarnfsd serves, from the same config file. */
        const struct vfs_config *served;
        const char *conf = cli_config_path();
        if (cli_config(&served, NULL) == 0 && served->source && served->source[0]) {
            if (!o.s3_endpoint)
                o.s3_endpoint = served->fetch.s3_endpoint;
            return conv_index_run(served->source, NULL, 0, &o);
        }
        fprintf(stderr, PROG ": say which SOURCE (a directory or s3://BUCKET[/PREFIX]), "
                "or set source = ... in %s\n%s", conf, index_usage);
        return CLI_USAGE;
    }
    return conv_index_run(argv[optind], argv + optind + 1, (size_t)(argc - optind - 1), &o);
}
