/* cmd_convert.c: `tarnfs convert`: its options and usage, and Ctrl-C, around convert_run (convert/convert.h). */
#include "convert/convert.h"
#include "tool/commands.h"
#include "util/opt.h"
#include "util/units.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "tarnfs convert"

static void usage(FILE *out)
{
    fprintf(out,
"usage: tarnfs convert SRC_TREE... (--to s3://BUCKET[/PREFIX] | --to DIR | --in-place)\n"
"                      [options]\n"
"       tarnfs convert SRC_TREE... --list [--to ...]\n"
"\n"
"Finds the sequencing-run directories under each SRC_TREE and writes one\n"
"tarball per run: RUN.tar, whose members all start with RUN/ as with\n"
"`tar -cf RUN.tar RUN`.  Deterministic pax: the same tree gives the same bytes.\n"
"\n"
"A run is a directory holding RunInfo.xml and CopyComplete.txt, or\n"
"RTAComplete.txt/.xml when there is no CopyComplete.txt.  Directories inside\n"
"a run belong to it.  Symlinks are never followed.\n"
"\n"
"targets:\n"
"  --to s3://BUCKET[/PREFIX]  multipart upload, streamed (no temporary file)\n"
"  --to DIR                   write DIR/RUN.tar (temporary name, fsync, rename)\n"
"  --in-place                 write RUN.tar beside each run directory\n"
"  --s3-endpoint URL          S3 endpoint (else AWS_ENDPOINT_URL; credentials\n"
"                             from AWS_* variables or ~/.aws/credentials)\n"
"discovery:\n"
"  --marker FILE              a run is a directory holding FILE (repeatable:\n"
"                             all must exist); replaces the default test\n"
"  --min-age DURATION         skip runs changed less than DURATION ago\n"
"                             (e.g. 90s, 30m, 2h, 1d)\n"
"  --exclude GLOB             skip directories whose path, path below the\n"
"                             source or name matches GLOB (repeatable)\n"
"  --list                     print what would be converted and why, then exit\n"
"output:\n"
"  --naming flat|path         object name: RUN.tar (default) or the path below\n"
"                             SRC_TREE, e.g. proj/2024/RUN.tar\n"
"  --compress gzip|zstd|none  compress the tarball (RUN.tar.gz / RUN.tar.zst)\n"
"  --part-size SIZE           S3 multipart part size (default: an eighth of\n"
"                             the run, 8M to 64M; raised for runs too large\n"
"                             for 9,000 parts)\n"
"safety:\n"
"  --verify                   read each result back and check it against the\n"
"                             source: member list, sizes, content hashes\n"
"  --delete-source            delete a run directory once its tarball is\n"
"                             verified (requires --verify)\n"
"  --force                    redo runs whose target is already up to date\n"
"  -j, --jobs N               convert N runs at a time (default 1)\n"
"  --progress / --no-progress live display (default: when stderr is a terminal)\n"
"  -h, --help                 this text\n"
"\n"
"A run whose target exists with the SHA-256 of the tarball it would produce\n"
"now is skipped (up to date).  Exit status: 0 every run done or up to date,\n"
"1 some run failed (or interrupted), 2 bad usage or a name collision.\n"
"See tarnfs-convert(1).\n");
}

/* --min-age: units_duration_ms, in whole seconds. */
static int parse_duration(const char *s, int64_t *out)
{
    uint64_t ms;
    if (units_duration_ms(s, &ms))
        return EINVAL;
    *out = (int64_t)(ms / 1000);
    return 0;
}

/* --part-size: units_size, within size_t. */
static int parse_size(const char *s, size_t *out)
{
    uint64_t v;
    if (units_size(s, &v) || v > SIZE_MAX)
        return EINVAL;
    *out = (size_t)v;
    return 0;
}

enum {
    OPT_TO = 1000, OPT_IN_PLACE, OPT_S3_ENDPOINT, OPT_MARKER, OPT_MIN_AGE, OPT_EXCLUDE,
    OPT_LIST, OPT_NAMING, OPT_COMPRESS, OPT_PART_SIZE, OPT_VERIFY, OPT_DELETE_SOURCE,
    OPT_FORCE, OPT_PROGRESS, OPT_NO_PROGRESS,
};

static const struct option long_opts[] = {
    { "to", required_argument, NULL, OPT_TO },
    { "in-place", no_argument, NULL, OPT_IN_PLACE },
    { "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
    { "marker", required_argument, NULL, OPT_MARKER },
    { "min-age", required_argument, NULL, OPT_MIN_AGE },
    { "exclude", required_argument, NULL, OPT_EXCLUDE },
    { "list", no_argument, NULL, OPT_LIST },
    { "naming", required_argument, NULL, OPT_NAMING },
    { "compress", required_argument, NULL, OPT_COMPRESS },
    { "part-size", required_argument, NULL, OPT_PART_SIZE },
    { "verify", no_argument, NULL, OPT_VERIFY },
    { "delete-source", no_argument, NULL, OPT_DELETE_SOURCE },
    { "force", no_argument, NULL, OPT_FORCE },
    { "jobs", required_argument, NULL, 'j' },
    { "progress", no_argument, NULL, OPT_PROGRESS },
    { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int bad_usage(const char *msg)
{
    fprintf(stderr, PROG ": %s (see tarnfs convert --help)\n", msg);
    return CLI_USAGE;
}

static int parse_args(int argc, char **argv, struct convert_opts *o,
                      const char ***markers, const char ***excludes)
{
    size_t nm = 0, ne = 0;
    *markers = calloc((size_t)argc, sizeof **markers);
    *excludes = calloc((size_t)argc, sizeof **excludes);
    if (!*markers || !*excludes)
        return bad_usage("out of memory");
    o->jobs = 1;
    o->progress = -1;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":j:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case OPT_TO:
            if (o->kind != CONV_TARGET_NONE)
                return bad_usage("give one target: --to or --in-place");
            o->to = optarg;
            o->kind = !strncmp(optarg, "s3://", 5) ? CONV_TARGET_S3 : CONV_TARGET_DIR;
            break;
        case OPT_IN_PLACE:
            if (o->kind != CONV_TARGET_NONE)
                return bad_usage("give one target: --to or --in-place");
            o->kind = CONV_TARGET_IN_PLACE;
            break;
        case OPT_S3_ENDPOINT: o->s3_endpoint = optarg; break;
        case OPT_MARKER:
            if (!optarg[0] || strchr(optarg, '/'))
                return bad_usage("--marker takes a file name, without '/'");
            (*markers)[nm++] = optarg;
            break;
        case OPT_MIN_AGE:
            if (parse_duration(optarg, &o->disc.min_age_sec))
                return bad_usage("--min-age takes a duration such as 90s, 30m, 2h or 1d");
            break;
        case OPT_EXCLUDE: (*excludes)[ne++] = optarg; break;
        case OPT_LIST: o->list = true; break;
        case OPT_NAMING:
            if (!strcmp(optarg, "flat")) o->naming = CONV_NAMING_FLAT;
            else if (!strcmp(optarg, "path")) o->naming = CONV_NAMING_PATH;
            else return bad_usage("--naming takes flat or path");
            break;
        case OPT_COMPRESS:
            if (!strcmp(optarg, "gzip")) o->comp = CONV_COMPRESS_GZIP;
            else if (!strcmp(optarg, "zstd")) o->comp = CONV_COMPRESS_ZSTD;
            else if (!strcmp(optarg, "none")) o->comp = CONV_COMPRESS_NONE;
            else return bad_usage("--compress takes gzip, zstd or none");
            break;
        case OPT_PART_SIZE:
            if (parse_size(optarg, &o->part_size) || o->part_size < (1u << 20))
                return bad_usage("--part-size takes a size of at least 1M, e.g. 16M");
            break;
        case OPT_VERIFY: o->verify = true; break;
        case OPT_DELETE_SOURCE: o->delete_source = true; break;
        case OPT_FORCE: o->force = true; break;
        case 'j': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 256)
                return bad_usage("-j takes a number from 1 to 256");
            o->jobs = (unsigned)v;
            break;
        }
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_NO_PROGRESS: o->progress = 0; break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            opt_bad_option(PROG, argv, ch);
            return CLI_USAGE;
        }
    }
    o->disc.markers = *markers;
    o->disc.n_markers = nm;
    o->disc.excludes = *excludes;
    o->disc.n_excludes = ne;
    if (optind >= argc)
        return bad_usage("name at least one SRC_TREE");
    if (o->kind == CONV_TARGET_NONE && !o->list)
        return bad_usage("say where the tarballs go: --to s3://BUCKET, --to DIR or --in-place");
    if (o->delete_source && !o->verify)
        return bad_usage("--delete-source is refused without --verify: a source is only deleted once its tarball is verified");
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    convert_cancel();
}

int cmd_convert(int argc, char **argv)
{
    struct convert_opts o;
    memset(&o, 0, sizeof o);
    const char **markers = NULL, **excludes = NULL;
    int ret = parse_args(argc, argv, &o, &markers, &excludes);
    if (ret) {
        ret = ret < 0 ? CLI_OK : ret;
        goto out;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;  /* a second Ctrl-C kills */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ret = convert_run(&o, argv + optind, (size_t)(argc - optind));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out:
    free(markers);
    free(excludes);
    return ret;
}
