/* cmd_cat.c: "tarnfs cat": write the bytes of files in the cache to stdout. */
#include "tool/cli.h"
#include "tool/commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "tarnfs cat"
#define CAT_CHUNK (1024 * 1024)

static const char cat_usage[] =
    "usage: tarnfs cat --cache DIR /RUN/path/to/file ...\n"
    "\n"
    "Write the contents of each file to stdout.  Symlinks are followed within\n"
    "their run.\n"
    "\n"
    "options:\n"
    "  -c, --cache DIR   the cache directory\n"
    "  -h, --help        this help\n";

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cat_one(vfs_view *vw, const char *path, char *buf)
{
    struct vfs_view_node t;
    int err = vfs_view_resolve(vw, path, true, &t);
    if (err) {
        cli_path_error(PROG, path, err);
        return err;
    }
    if (!t.run) {
        cli_path_error(PROG, path, EISDIR);
        return EISDIR;
    }
    struct vfs_view_attr a;
    err = vfs_view_getattr(&t, &a);
    if (!err && S_ISDIR(a.mode))
        err = EISDIR;
    else if (!err && !S_ISREG(a.mode))
        err = EINVAL;
    uint64_t off = 0;
    bool eof = false;
    while (!err && !eof) {
        size_t got;
        err = vfs_view_read(&t, off, buf, CAT_CHUNK, &got, &eof);
        if (!err && got == 0)
            break;
        if (!err)
            err = write_all(STDOUT_FILENO, buf, got);
        off += got;
    }
    if (err == EINVAL)
        fprintf(stderr, "%s: %s: not a regular file\n", PROG, path);
    else if (err)
        cli_path_error(PROG, path, err);
    vfs_view_run_close(t.run);
    return err;
}

int cmd_cat(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 'h': fputs(cat_usage, stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: expected /RUN/path/to/file\nTry '%s --help'.\n",
                PROG, PROG);
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    vfs_view *cache;
    if (cli_open_view(PROG, dir, &cache) != 0)
        return CLI_FAIL;
    char *buf = malloc(CAT_CHUNK);
    int failed = 0;
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        failed = 1;
    }
    for (int i = optind; buf && i < argc; i++)
        if (cat_one(cache, argv[i], buf))
            failed = 1;
    free(buf);
    vfs_view_close(cache);
    return failed ? CLI_FAIL : CLI_OK;
}
