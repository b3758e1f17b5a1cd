/* cli.c: the helpers in cli.h shared by the tarnfs subcommands. */
#include "tool/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Symlinks followed in one resolution, as the kernel's MAXSYMLINKS. */
#define CLI_MAX_SYMLINKS 40

const char *cli_cache_dir(const char *prog, const char *opt)
{
    if (opt && *opt)
        return opt;
    const char *env = getenv("TARNFS_CACHE");
    if (env && *env)
        return env;
    fprintf(stderr, "%s: no cache directory: give --cache DIR (or set "
            "TARNFS_CACHE)\n", prog);
    return NULL;
}

int cli_open_cache(const char *prog, const char *dir, bool create,
                   kv_cache **out)
{
    int err = create ? kv_cache_open(dir, true, out)
                     : kv_cache_open_readonly(dir, out);
    switch (err) {
    case 0:
        break;
    case ENOENT:
        fprintf(stderr, "%s: cache directory '%s' does not exist%s\n", prog,
                dir, create ? " and cannot be created (missing parent?)" : "");
        break;
    case ENOTDIR:
        fprintf(stderr, "%s: cache '%s' is not a directory\n", prog, dir);
        break;
    case EINVAL:
        fprintf(stderr, "%s: '%s' is not a tarnfs cache directory\n", prog,
                dir);
        break;
    default:
        fprintf(stderr, "%s: cannot open cache '%s': %s\n", prog, dir,
                strerror(err));
        break;
    }
    return err;
}

void cli_path_error(const char *prog, const char *path, int err)
{
    const char *why;
    switch (err) {
    case EINVAL:
        why = "not an absolute tarnfs path (expected /RUN/path)";
        break;
    case EXDEV:
        why = "a symlink on the way points outside its run";
        break;
    default:
        why = strerror(err);
        break;
    }
    fprintf(stderr, "%s: %s: %s\n", prog, path, why);
}

void cli_target_close(struct cli_target *t)
{
    if (t->run)
        kv_run_close(t->run);
    t->run = NULL;
}

/* Open the published run whose name is the longest leading part of rel
 * (components separated by '/'); *rest points after it. */
static int open_longest_run(kv_cache *c, const char *rel, struct cli_target *t,
                            const char **rest)
{
    size_t len = strlen(rel);
    if (len > KV_RUNNAME_MAX)
        len = KV_RUNNAME_MAX;
    for (size_t end = len; end > 0; end--) {
        if (end < strlen(rel) && rel[end] != '/')
            continue;
        memcpy(t->run_name, rel, end);
        t->run_name[end] = '\0';
        struct kv_runinfo ri;
        int err = kv_cache_runinfo(c, t->run_name, &ri);
        if (err == ENOENT || err == EINVAL)
            continue;
        if (err)
            return err;
        err = kv_run_open(c, t->run_name, &t->run);
        if (err)
            return err;
        *rest = rel + end;
        return 0;
    }
    return ENOENT;
}

/* Walk path (relative, may be "") from dir inside run r.  Resolution
 * restarts on a symlink with its target spliced in front of what is left,
 * relative to the directory holding the link. */
static int walk(kv_run *r, kv_ino dir, const char *path, bool follow_last,
                kv_ino *out)
{
    char *work = strdup(path);
    if (!work)
        return ENOMEM;
    int links = 0, err = 0;
    kv_ino cur = dir;
    char *p = work;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *e = strchr(p, '/');
        size_t clen = e ? (size_t)(e - p) : strlen(p);
        if (clen > KV_NAME_MAX) {
            err = ENAMETOOLONG;
            break;
        }
        char comp[KV_NAME_MAX + 1];
        memcpy(comp, p, clen);
        comp[clen] = '\0';
        const char *after = p + clen;
        while (*after == '/')
            after++;
        bool last = *after == '\0';

        kv_ino next;
        struct kv_attr a;
        err = kv_lookup(r, cur, comp, &next);
        if (!err)
            err = kv_getattr(r, next, &a);
        if (err)
            break;
        if (S_ISLNK(a.mode) && (!last || follow_last)) {
            if (++links > CLI_MAX_SYMLINKS) {
                err = ELOOP;
                break;
            }
            char target[KV_SYMLINK_MAX + 1];
            size_t tlen;
            err = kv_readlink(r, next, target, sizeof target - 1, &tlen);
            if (err)
                break;
            if (tlen >= sizeof target) {
                err = ENAMETOOLONG;
                break;
            }
            target[tlen] = '\0';
            if (target[0] == '/') {
                err = EXDEV;
                break;
            }
            size_t alen = strlen(after);
            char *nw = malloc(tlen + 1 + alen + 1);
            if (!nw) {
                err = ENOMEM;
                break;
            }
            sprintf(nw, "%s/%s", target, after);
            free(work);
            work = p = nw;
            continue;           /* cur stays: the link's directory */
        }
        if (!last && !S_ISDIR(a.mode)) {
            err = ENOTDIR;
            break;
        }
        cur = next;
        p = (char *)after;
    }
    free(work);
    if (!err)
        *out = cur;
    return err;
}

int cli_resolve(kv_cache *c, const char *path, bool follow_last,
                struct cli_target *t)
{
    memset(t, 0, sizeof *t);
    if (path[0] != '/')
        return EINVAL;
    while (*path == '/')
        path++;
    char *rel = strdup(path);
    if (!rel)
        return ENOMEM;
    /* Drop trailing slashes so "/RUN/" names the run. */
    size_t n = strlen(rel);
    if (n > 0 && rel[n - 1] == '/')
        follow_last = true;     /* "link/" names the directory, as in ls */
    while (n > 0 && rel[n - 1] == '/')
        rel[--n] = '\0';
    if (n == 0) {
        free(rel);
        return 0;               /* "/": the list of runs */
    }
    const char *rest;
    int err = open_longest_run(c, rel, t, &rest);
    if (!err)
        err = walk(t->run, kv_run_root(t->run), rest, follow_last, &t->ino);
    free(rel);
    if (err)
        cli_target_close(t);
    return err;
}

void cli_mode_string(uint32_t mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    switch (mode & S_IFMT) {
    case S_IFDIR:  out[0] = 'd'; break;
    case S_IFLNK:  out[0] = 'l'; break;
    case S_IFCHR:  out[0] = 'c'; break;
    case S_IFBLK:  out[0] = 'b'; break;
    case S_IFIFO:  out[0] = 'p'; break;
    case S_IFSOCK: out[0] = 's'; break;
    default:       out[0] = '-'; break;
    }
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
    if (mode & S_ISUID)
        out[3] = (mode & S_IXUSR) ? 's' : 'S';
    if (mode & S_ISGID)
        out[6] = (mode & S_IXGRP) ? 's' : 'S';
    if (mode & S_ISVTX)
        out[9] = (mode & S_IXOTH) ? 't' : 'T';
    out[10] = '\0';
}

void cli_format_time(struct timespec t, char *out, size_t cap)
{
    struct tm tm;
    time_t sec = t.tv_sec;
    char base[40];
    gmtime_r(&sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, cap, "%s.%09ld +0000", base, (long)t.tv_nsec);
}
