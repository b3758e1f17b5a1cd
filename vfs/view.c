/* view.c: the tarnfs tool's read-only view of a cache (vfs_view_*: runs, paths, nodes), straight from kvstore, taking no lock and writing nothing. */
#include "vfs/vfs.h"
#include "kvstore/kvfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* Symlinks followed in one resolution, as the kernel's MAXSYMLINKS. */
#define VIEW_MAX_SYMLINKS 40

_Static_assert(KV_SYMLINK_MAX <= VFS_PATH_MAX,
               "vfs_view_readlink promises targets of at most VFS_PATH_MAX");

struct vfs_view {
    kv_cache *c;
};

struct vfs_view_run {
    kv_run *r;
    char name[KV_RUNNAME_MAX + 1];
};

int vfs_view_open(const char *cache_dir, vfs_view **out)
{
    vfs_view *vw = calloc(1, sizeof *vw);
    if (!vw)
        return ENOMEM;
    /* Read-only: no Kyoto Cabinet file lock (a tarnfsd writing a run keeps
     * it writable), no sweep of leftovers, changes fail with EROFS. */
    int err = kv_cache_open_readonly(cache_dir, &vw->c);
    if (err) {
        free(vw);
        return err;
    }
    *out = vw;
    return 0;
}

void vfs_view_close(vfs_view *vw)
{
    if (!vw)
        return;
    kv_cache_close(vw->c);
    free(vw);
}

const char *vfs_view_path(const vfs_view *vw)
{
    return kv_cache_path(vw->c);
}

/* ---- runs ------------------------------------------------------------- */

int vfs_view_run_open(vfs_view *vw, const char *run,
                      struct vfs_view_node *root)
{
    if (strlen(run) > KV_RUNNAME_MAX)
        return EINVAL;
    vfs_view_run *vr = malloc(sizeof *vr);
    if (!vr)
        return ENOMEM;
    int err = kv_run_open(vw->c, run, &vr->r);
    if (err) {
        free(vr);
        return err;
    }
    snprintf(vr->name, sizeof vr->name, "%s", run);
    root->run = vr;
    root->ino = kv_run_root(vr->r);
    return 0;
}

void vfs_view_run_close(vfs_view_run *r)
{
    if (!r)
        return;
    kv_run_close(r->r);
    free(r);
}

const char *vfs_view_run_name(const vfs_view_run *r)
{
    return r->name;
}

struct runs_walk {
    vfs_view *vw;
    bool details;
    int (*cb)(void *arg, const struct vfs_view_runinfo *ri);
    void *arg;
};

static int one_run(void *arg, const struct kv_runinfo *ki)
{
    struct runs_walk *w = arg;
    const char *dir = kv_cache_path(w->vw->c);
    struct vfs_view_runinfo ri = {
        .name = ki->name,
        .bytes = ki->bytes,
        .files = ki->files,
        .created = ki->created,
        .source_version = ki->source_version,
        .conflict = "",
    };
    char conflict[1200] = "";
    if (w->details) {
        /* An index-first run: how much of its file data is present. */
        kv_run *r;
        if (kv_run_open(w->vw->c, ki->name, &r) == 0) {
            uint64_t have, total;
            if (kv_run_presence(r, &have, &total) == 0) {
                ri.present = have;
                ri.total = total;
            }
            kv_run_close(r);
        }
        ri.referenced = vfs_last_reference(dir, ki->name,
                                           &ri.last_reference) == 0;
        ri.dirty = vfs_dirty_info(dir, ki->name, &ri.dirty_since, conflict,
                                  sizeof conflict) == 0;
        if (ri.dirty)
            ri.conflict = conflict;
    }
    return w->cb(w->arg, &ri);
}

int vfs_view_runs(vfs_view *vw, bool details,
                  int (*cb)(void *arg, const struct vfs_view_runinfo *ri),
                  void *arg)
{
    struct runs_walk w = { vw, details, cb, arg };
    return kv_cache_list(vw->c, one_run, &w);
}

static int count_run(void *arg, const struct kv_runinfo *ri)
{
    (void)ri;
    (*(uint64_t *)arg)++;
    return 0;
}

int vfs_view_statfs(vfs_view *vw, struct vfs_view_statfs *st)
{
    struct kv_statfs k;
    uint64_t runs = 0;
    int err = kv_cache_statfs(vw->c, &k);
    if (!err)
        err = kv_cache_list(vw->c, count_run, &runs);
    if (err)
        return err;
    st->runs = runs;
    st->bytes_used = k.bytes_used;
    st->inodes_used = k.inodes_used;
    st->bytes_total = k.bytes_total;
    st->bytes_free = k.bytes_free;
    return 0;
}

/* ---- paths ------------------------------------------------------------ */

/* Open the cached run whose name is the longest leading part of rel
 * (components separated by '/'); *rest points after it. */
static int open_longest_run(vfs_view *vw, const char *rel,
                            struct vfs_view_node *out, const char **rest)
{
    size_t full = strlen(rel), len = full;
    if (len > KV_RUNNAME_MAX)
        len = KV_RUNNAME_MAX;
    char name[KV_RUNNAME_MAX + 1];
    for (size_t end = len; end > 0; end--) {
        if (end < full && rel[end] != '/')
            continue;
        memcpy(name, rel, end);
        name[end] = '\0';
        struct kv_runinfo ri;
        int err = kv_cache_runinfo(vw->c, name, &ri);
        if (err == ENOENT || err == EINVAL)
            continue;
        if (err)
            return err;
        err = vfs_view_run_open(vw, name, out);
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
            if (++links > VIEW_MAX_SYMLINKS) {
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

int vfs_view_resolve(vfs_view *vw, const char *path, bool follow_last,
                     struct vfs_view_node *out)
{
    memset(out, 0, sizeof *out);
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
    struct vfs_view_node node = { 0 };
    int err = open_longest_run(vw, rel, &node, &rest);
    if (!err)
        err = walk(node.run->r, node.ino, rest, follow_last, &node.ino);
    free(rel);
    if (err) {
        vfs_view_run_close(node.run);
        return err;
    }
    *out = node;
    return 0;
}

/* ---- nodes ------------------------------------------------------------ */

int vfs_view_getattr(const struct vfs_view_node *n, struct vfs_view_attr *a)
{
    if (!n->run)
        return EINVAL;
    struct kv_attr k;
    int err = kv_getattr(n->run->r, n->ino, &k);
    if (err)
        return err;
    memset(a, 0, sizeof *a);
    a->mode = k.mode;
    a->nlink = k.nlink;
    a->uid = k.uid;
    a->gid = k.gid;
    a->size = k.size;
    a->used = k.used;
    a->rdev_major = major(k.rdev);
    a->rdev_minor = minor(k.rdev);
    a->fileid = k.ino;
    a->atime = k.atime;
    a->mtime = k.mtime;
    a->ctime = k.ctime;
    return 0;
}

int vfs_view_readlink(const struct vfs_view_node *n, char *buf, size_t cap,
                      size_t *len)
{
    if (!n->run)
        return EINVAL;
    return kv_readlink(n->run->r, n->ino, buf, cap, len);
}

int vfs_view_read(const struct vfs_view_node *n, uint64_t off, void *buf,
                  size_t len, size_t *got, bool *eof)
{
    if (!n->run)
        return EINVAL;
    return kv_read(n->run->r, n->ino, off, buf, len, got, eof);
}

struct dir_walk {
    vfs_view_run *run;
    int (*cb)(void *arg, const struct vfs_view_dirent *de);
    void *arg;
};

static int one_entry(void *arg, const struct kv_dirent *kd)
{
    struct dir_walk *w = arg;
    struct vfs_view_dirent de = {
        .name = kd->name,
        .namelen = kd->namelen,
        .node = { .run = w->run, .ino = kd->ino },
    };
    return w->cb(w->arg, &de);
}

int vfs_view_readdir(const struct vfs_view_node *dir,
                     int (*cb)(void *arg, const struct vfs_view_dirent *de),
                     void *arg)
{
    if (!dir->run)
        return EINVAL;
    struct dir_walk w = { dir->run, cb, arg };
    return kv_readdir(dir->run->r, dir->ino, 0, one_entry, &w);
}
