/* cmd_ls.c: "tarnfs ls": list the runs of a cache, or directories and files inside a run, like ls [-l] [-R]. */
#include "tool/cli.h"
#include "tool/commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "tarnfs ls"

static const char ls_usage[] =
    "usage: tarnfs ls --cache DIR [-l] [-R] [/RUN/path ...]\n"
    "\n"
    "List a directory of a cached run (its entries), a file (itself), or \"/\"\n"
    "(the runs in the cache).  The default path is \"/\".\n"
    "\n"
    "options:\n"
    "  -c, --cache DIR   the cache directory\n"
    "  -l                long format: mode, links, uid, gid, size, mtime (UTC,\n"
    "                    nanoseconds), name; symlinks show -> target; devices\n"
    "                    show major, minor in place of the size\n"
    "  -R                list subdirectories recursively\n"
    "  -h, --help        this help\n";

struct ls_opts {
    bool longfmt;
    bool recursive;
};

struct ls_entry {
    char *name;
    struct vfs_view_node node;
    struct vfs_view_attr attr;
};

struct entry_list {
    struct ls_entry *v;
    size_t n, cap;
    int err;
};

static int add_entry(struct entry_list *l, const char *name, size_t len,
                     struct vfs_view_node node)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct ls_entry *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy)
        return ENOMEM;
    l->v[l->n].name = copy;
    l->v[l->n].node = node;
    memset(&l->v[l->n].attr, 0, sizeof l->v[l->n].attr);
    l->n++;
    return 0;
}

static void free_entries(struct entry_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

static int collect_dirent(void *arg, const struct vfs_view_dirent *de)
{
    struct entry_list *l = arg;
    l->err = add_entry(l, de->name, de->namelen, de->node);
    return l->err ? 1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct ls_entry *)a)->name,
                  ((const struct ls_entry *)b)->name);
}

static int count_digits(uint64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static void size_field(const struct vfs_view_attr *a, char *out, size_t cap)
{
    if (S_ISCHR(a->mode) || S_ISBLK(a->mode))
        snprintf(out, cap, "%u, %u", a->rdev_major, a->rdev_minor);
    else
        snprintf(out, cap, "%llu", (unsigned long long)a->size);
}

/* Print entries (attributes filled) in ls -l style, or names only. */
static void print_entries(const struct entry_list *l,
                          const struct ls_opts *o)
{
    if (!o->longfmt) {
        for (size_t i = 0; i < l->n; i++)
            printf("%s\n", l->v[i].name);
        return;
    }
    int wl = 1, wu = 1, wg = 1, ws = 1;
    char sz[48];
    for (size_t i = 0; i < l->n; i++) {
        const struct vfs_view_attr *a = &l->v[i].attr;
        size_field(a, sz, sizeof sz);
        int w;
        if ((w = count_digits(a->nlink)) > wl) wl = w;
        if ((w = count_digits(a->uid)) > wu) wu = w;
        if ((w = count_digits(a->gid)) > wg) wg = w;
        if ((w = (int)strlen(sz)) > ws) ws = w;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct vfs_view_attr *a = &l->v[i].attr;
        char mode[11], when[64];
        cli_mode_string(a->mode, mode);
        cli_format_time(a->mtime, when, sizeof when);
        size_field(a, sz, sizeof sz);
        printf("%s %*u %*u %*u %*s %s %s", mode, wl, a->nlink, wu, a->uid,
               wg, a->gid, ws, sz, when, l->v[i].name);
        if (S_ISLNK(a->mode) && l->v[i].node.run) {
            char target[VFS_PATH_MAX + 1];
            size_t tlen;
            if (vfs_view_readlink(&l->v[i].node, target, sizeof target - 1,
                                  &tlen) == 0 && tlen < sizeof target)
                printf(" -> %.*s", (int)tlen, target);
        }
        putchar('\n');
    }
}

/* List directory dir, shown as path; recurse if -R.  Returns the first
 * error met (after printing it) but keeps going, as ls does. */
static int list_dir(const struct vfs_view_node *dir, const char *path,
                    const struct ls_opts *o, bool header)
{
    if (header)
        printf("%s:\n", path);
    struct entry_list l = { 0 };
    int err = vfs_view_readdir(dir, collect_dirent, &l);
    if (!err)
        err = l.err;
    for (size_t i = 0; !err && i < l.n; i++)
        err = vfs_view_getattr(&l.v[i].node, &l.v[i].attr);
    if (!err && l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, by_name);  /* ls order, C locale */
    if (err) {
        cli_path_error(PROG, path, err);
        free_entries(&l);
        return err;
    }
    print_entries(&l, o);
    int first_err = 0;
    if (o->recursive) {
        for (size_t i = 0; i < l.n; i++) {
            if (!S_ISDIR(l.v[i].attr.mode))
                continue;
            size_t plen = strlen(path);
            char *sub = malloc(plen + strlen(l.v[i].name) + 2);
            if (!sub) {
                first_err = first_err ? first_err : ENOMEM;
                continue;
            }
            sprintf(sub, "%s%s%s", path,
                    plen && path[plen - 1] == '/' ? "" : "/", l.v[i].name);
            putchar('\n');
            err = list_dir(&l.v[i].node, sub, o, true);
            if (err && !first_err)
                first_err = err;
            free(sub);
        }
    }
    free_entries(&l);
    return first_err;
}

static int collect_run(void *arg, const struct vfs_view_runinfo *ri)
{
    struct entry_list *l = arg;
    l->err = add_entry(l, ri->name, strlen(ri->name),
                       (struct vfs_view_node){ 0 });
    return l->err ? 1 : 0;
}

/* "/": the runs, each shown with its root directory's attributes. */
static int list_runs(vfs_view *vw, const struct ls_opts *o, bool header)
{
    if (header)
        printf("/:\n");
    struct entry_list l = { 0 };
    int err = vfs_view_runs(vw, false, collect_run, &l);
    if (!err)
        err = l.err;
    if (err) {
        cli_path_error(PROG, "/", err);
        free_entries(&l);
        return err;
    }
    int first_err = 0;
    if (o->longfmt) {
        for (size_t i = 0; i < l.n; i++) {
            struct vfs_view_node root;
            err = vfs_view_run_open(vw, l.v[i].name, &root);
            if (!err) {
                err = vfs_view_getattr(&root, &l.v[i].attr);
                vfs_view_run_close(root.run);
            }
            if (err) {
                fprintf(stderr, "%s: /%s: %s\n", PROG, l.v[i].name,
                        strerror(err));
                first_err = first_err ? first_err : err;
                l.v[i].attr.mode = S_IFDIR;
            }
        }
    }
    print_entries(&l, o);
    if (o->recursive) {
        for (size_t i = 0; i < l.n; i++) {
            struct vfs_view_node root;
            char *sub = malloc(strlen(l.v[i].name) + 2);
            err = sub ? vfs_view_run_open(vw, l.v[i].name, &root) : ENOMEM;
            if (!err) {
                sprintf(sub, "/%s", l.v[i].name);
                putchar('\n');
                err = list_dir(&root, sub, o, true);
                vfs_view_run_close(root.run);
            }
            free(sub);
            if (err && !first_err)
                first_err = err;
        }
    }
    free_entries(&l);
    return first_err;
}

/* One path argument. */
static int list_path(vfs_view *vw, const char *path, const struct ls_opts *o,
                     bool header)
{
    struct vfs_view_node t;
    int err = vfs_view_resolve(vw, path, false, &t);
    if (err) {
        cli_path_error(PROG, path, err);
        return err;
    }
    if (!t.run)
        return list_runs(vw, o, header);
    struct ls_entry self = { .name = (char *)path, .node = t };
    err = vfs_view_getattr(&t, &self.attr);
    if (err) {
        cli_path_error(PROG, path, err);
    } else if (S_ISDIR(self.attr.mode)) {
        err = list_dir(&t, path, o, header || o->recursive);
    } else {
        struct entry_list one = { .v = &self, .n = 1, .cap = 1 };
        print_entries(&one, o);
    }
    vfs_view_run_close(t.run);
    return err;
}

int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ls_opts o = { 0 };
    const char *cache_opt = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:lRh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 'l': o.longfmt = true; break;
        case 'R': o.recursive = true; break;
        case 'h': fputs(ls_usage, stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    vfs_view *cache;
    if (cli_open_view(PROG, dir, &cache) != 0)
        return CLI_FAIL;
    static char root[] = "/";
    char *deflt[] = { root };
    char **paths = optind < argc ? argv + optind : deflt;
    int npaths = optind < argc ? argc - optind : 1;
    int failed = 0;
    for (int i = 0; i < npaths; i++) {
        if (i > 0 && npaths > 1)
            putchar('\n');
        if (list_path(cache, paths[i], &o, npaths > 1))
            failed = 1;
    }
    fflush(stdout);
    vfs_view_close(cache);
    return failed ? CLI_FAIL : CLI_OK;
}
