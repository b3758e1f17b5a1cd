/* cmd_ingest.c: "tarnfs ingest": stream a tarball file or stdin into the cache as one published run. */
#include "tool/cli.h"
#include "tool/commands.h"
#include "vfs/vfs.h"
#include "util/tarsuffix.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "tarnfs ingest"
/* How long a tarnfsd serving the cache may take to hold the run. */
#define INGEST_SERVER_TIMEOUT_S 30

static const char ingest_usage[] =
    "usage: tarnfs ingest --cache DIR [options] FILE.tar|- [NAME]\n"
    "\n"
    "Stream a tar archive (ustar, pax or GNU; plain, gzip, bzip2, xz or zstd)\n"
    "into the cache as the run NAME, atomically: the run appears only once\n"
    "the whole archive is in, replacing an earlier run of that name.  If every\n"
    "member lies under one directory called NAME, that directory becomes the\n"
    "run's root (as tar -xf in the parent would make it).  '-' reads stdin.\n"
    "\n"
    "NAME defaults to FILE's base name without .tar, .tar.gz, .tgz, .tar.zst,\n"
    ".tar.bz2 or .tar.xz; it is required when reading stdin.\n"
    "\n"
    "options:\n"
    "  -c, --cache DIR          the cache directory (created if missing)\n"
    "  -s, --source-version S   text stored with the run (default: the file's\n"
    "                           size and mtime)\n"
    "  -q, --quiet              print nothing on success\n"
    "  -h, --help               this help\n";

/* Base name of path without its tar suffix, or NULL if nothing is left. */
static char *default_run_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    if (!name)
        return NULL;
    size_t stem;
    if (tar_suffix_match(name, strlen(name), false, &stem) >= 0)
        name[stem] = '\0';
    if (!*name) {
        free(name);
        return NULL;
    }
    return name;
}

/* vfs_read_fn over a file descriptor. */
static ssize_t read_fd(void *arg, void *buf, size_t cap)
{
    int fd = *(int *)arg;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cmd_ingest(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "source-version", required_argument, NULL, 's' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL, *source_version = NULL;
    bool quiet = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 's': source_version = optarg; break;
        case 'q': quiet = true; break;
        case 'h': fputs(ingest_usage, stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2) {
        fprintf(stderr, "%s: expected FILE.tar|- [NAME]\nTry '%s --help'.\n",
                PROG, PROG);
        return CLI_USAGE;
    }
    const char *file = argv[optind];
    bool from_stdin = strcmp(file, "-") == 0;
    char *name = npos == 2 ? strdup(argv[optind + 1])
                           : (from_stdin ? NULL : default_run_name(file));
    if (!name) {
        fprintf(stderr, "%s: %s\n", PROG, from_stdin
                ? "NAME is required when reading stdin"
                : "cannot derive a run name from the file name; give NAME");
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir) {
        free(name);
        return CLI_USAGE;
    }

    int fd = STDIN_FILENO;
    char version[128] = "";
    if (!from_stdin) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            fprintf(stderr, "%s: cannot open '%s': %s\n", PROG, file,
                    strerror(errno));
            if (fd >= 0)
                close(fd);
            free(name);
            return CLI_FAIL;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: '%s' is a directory, not a tarball\n", PROG,
                    file);
            close(fd);
            free(name);
            return CLI_FAIL;
        }
        snprintf(version, sizeof version, "size=%lld mtime=%lld.%09ld",
                 (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_nsec);
#ifdef POSIX_FADV_SEQUENTIAL
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    }
    if (source_version)
        snprintf(version, sizeof version, "%s", source_version);

    struct vfs_ingest_result res;
    char why[2048];
    double t0 = now_seconds();
    int err = vfs_cache_ingest(dir, name, read_fd, &fd, version,
                               INGEST_SERVER_TIMEOUT_S, &res, why,
                               sizeof why);
    double secs = now_seconds() - t0;
    if (!from_stdin)
        close(fd);
    if (err) {
        /* A refusal (the run has changes not yet written back) or the
         * archive's fault, naming the member. */
        if (err == EBUSY || err == EINVAL || err == ETIMEDOUT ||
            err == ENOENT || err == ENOTDIR || err == EACCES)
            fprintf(stderr, "%s: %s\n", PROG, why);
        else
            fprintf(stderr, "%s: %s: %s\n", PROG,
                    from_stdin ? "stdin" : file, why);
        free(name);
        return CLI_FAIL;
    }
    if (!quiet)
        printf("ingested /%s: %llu files, %llu dirs, %llu symlinks, "
               "%llu hard links, %llu other, %llu bytes in %.2f s%s\n",
               name, (unsigned long long)res.files,
               (unsigned long long)res.dirs,
               (unsigned long long)res.symlinks,
               (unsigned long long)res.hardlinks,
               (unsigned long long)res.others,
               (unsigned long long)res.bytes, secs,
               res.stripped_top ? " (top directory became the run root)" : "");
    free(name);
    return CLI_OK;
}
