/* ops.c: the vfs operations nfsd calls that look and read (getattr, lookup,
 * parent, prepare, readlink, read, statfs), and what every operation shares:
 * resolving ids to the root, a namespace directory or a node inside a run,
 * and attributes from listings (namespace) or kvstore (inside runs).
 * Changes are in ops_modify.c, listings in ops_readdir.c. */
#include "vfs/vfs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* Namespace directories get fileids with the top bit set: kvstore inode
 * numbers are 63-bit, so the two never collide. */
#define VFS_NSDIR_FILEID_BIT (UINT64_C(1) << 63)

/* ---- attributes ------------------------------------------------------ */

static enum vfs_type type_of_mode(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR:  return VFS_DIR;
    case S_IFBLK:  return VFS_BLK;
    case S_IFCHR:  return VFS_CHR;
    case S_IFLNK:  return VFS_LNK;
    case S_IFSOCK: return VFS_SOCK;
    case S_IFIFO:  return VFS_FIFO;
    default:       return VFS_REG;
    }
}

void vfs_attr_from_kv(const vfs *v, const struct kv_attr *k,
                      struct vfs_attr *a)
{
    memset(a, 0, sizeof *a);
    a->type = type_of_mode(k->mode);
    a->mode = k->mode & 07777;
    a->nlink = k->nlink;
    a->uid = k->uid;
    a->gid = k->gid;
    a->size = k->size;
    a->used = k->used;
    a->rdev_major = major(k->rdev);
    a->rdev_minor = minor(k->rdev);
    a->fsid = v->fsid;
    a->fileid = k->ino;
    a->atime = k->atime;
    a->mtime = k->mtime;
    a->ctime = k->ctime;
}

/* A namespace directory (the root when name is ""), whose listing is l. */
void vfs_attr_namespace(const vfs *v, const char *name,
                        const struct vfs_listing *l, struct vfs_attr *a)
{
    memset(a, 0, sizeof *a);
    a->type = VFS_DIR;
    a->mode = v->cfg.read_only ? 0555 : 0755;
    /* 2 + its subdirectories: every entry of a namespace listing is one
     * (a run, or a nested namespace directory) */
    a->nlink = 2 + (uint32_t)(l ? l->n : 0);
    a->size = 4096;
    a->used = 4096;
    a->fsid = v->fsid;
    a->fileid = name[0] ? VFS_NSDIR_FILEID_BIT | (vfs_hash_str(name) >> 1)
                        : VFS_ROOT_FILEID;
    if (l)
        a->atime = a->mtime = a->ctime = l->changed;
}

/* A run not (yet) in the cache, as listed: a directory, so that listing
 * the root never fetches every run just to show its attributes. */
void vfs_attr_unfetched_run(const vfs *v, const char *run,
                            const struct vfs_entry *e, struct vfs_attr *a)
{
    memset(a, 0, sizeof *a);
    a->type = VFS_DIR;
    a->mode = 0555;
    a->nlink = 2;
    a->size = 4096;
    a->fsid = v->fsid;
    a->fileid = kv_ino_for(run, "");
    a->atime = a->mtime = a->ctime = e->mtime;
}

/* ---- resolving ids ------------------------------------------------------ */

bool vfs_node_is_namespace(const struct vfs_node *n)
{
    return n->kind == VFS_KIND_ROOT || n->kind == VFS_KIND_NSDIR;
}

/* The listing prefix of namespace node n: "" or "a/b/". */
void vfs_namespace_prefix(const struct vfs_node *n, char *buf, size_t cap)
{
    if (n->kind == VFS_KIND_ROOT)
        buf[0] = '\0';
    else
        snprintf(buf, cap, "%s/", n->name);
}

/* Does namespace directory name (non-empty) exist?  Errors: ESTALE, EIO. */
int vfs_nsdir_check(vfs *v, const char *name)
{
    char prefix[KV_RUNNAME_MAX + 1];
    const char *comp = vfs_split_name(name, prefix, sizeof prefix);
    struct vfs_listing *l;
    const struct vfs_entry *e;
    int err = vfs_listing_lookup(v, prefix, comp, &l, &e);
    if (err)
        return EIO;
    err = e && e->is_dir ? 0 : ESTALE;
    vfs_listing_put(v, l);
    return err;
}

/* Pin the run of node n.  Errors: ESTALE (the run is gone), EIO. */
int vfs_node_pin(vfs *v, const struct vfs_node *n, struct vfs_ref *ref,
                 kv_ino *ino)
{
    int err = vfs_run_acquire(v, n->name, 0, ref);
    if (err)
        return err == ENOENT || err == EINVAL ? ESTALE : err;
    *ino = n->ino == VFS_RUN_ROOT_INO ? ref->h->root : n->ino;
    return 0;
}

/* The id of inode ino of the run pinned by ref. */
void vfs_node_id(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                 struct vfs_id *id)
{
    vfs_id_make_node(v, ref->run->name,
                     ino == ref->h->root ? VFS_RUN_ROOT_INO : ino, id);
}

/* kvstore's ENOENT for an inode named by an id means the id is stale. */
int vfs_stale_if_enoent(int err)
{
    return err == ENOENT ? ESTALE : err;
}

int vfs_node_getattr(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                     struct vfs_attr *a)
{
    struct kv_attr k;
    int err = kv_getattr(ref->h->kr, ino, &k);
    if (err)
        return err;
    if (a)
        vfs_attr_from_kv(v, &k, a);
    return 0;
}

/* vfs_node_getattr for a call answering with what kvstore has now (mark:
 * vfs_stream_mark before reading): on a run streaming in, a file whose
 * data is still coming shows its final size, and an inode not there yet
 * is waited for (stream.c).  Errors: vfs_node_getattr's, and ERESTART,
 * EINPROGRESS, EAGAIN, EIO as vfs_stream_check. */
static int node_getattr_live(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                             struct vfs_attr *a, uint64_t mark)
{
    struct kv_attr k;
    int err = kv_getattr(ref->h->kr, ino, &k);
    int serr = vfs_stream_check(v, ref, mark, ino, err ? NULL : &k, NULL,
                                err == ENOENT);
    if (serr)
        return serr;
    if (!err && a)
        vfs_attr_from_kv(v, &k, a);
    return err;
}

/* full = prefix + name.  Errors: ENAMETOOLONG (over KV_RUNNAME_MAX). */
int vfs_join_name(const char *prefix, const char *name, char *full,
                  size_t cap)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    if (pl + nl > KV_RUNNAME_MAX || pl + nl >= cap)
        return ENAMETOOLONG;
    memcpy(full, prefix, pl);
    memcpy(full + pl, name, nl + 1);
    return 0;
}

int vfs_check_component(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || strchr(name, '/'))
        return EINVAL;
    if (len > VFS_NAME_MAX)
        return ENAMETOOLONG;
    return 0;
}

/* ---- getattr, lookup, parent ------------------------------------------ */

int vfs_namespace_getattr(vfs *v, const struct vfs_node *n,
                          struct vfs_attr *a)
{
    if (n->kind == VFS_KIND_NSDIR) {
        int err = vfs_nsdir_check(v, n->name);
        if (err)
            return err;
    }
    char prefix[KV_RUNNAME_MAX + 2];
    vfs_namespace_prefix(n, prefix, sizeof prefix);
    struct vfs_listing *l;
    int err = vfs_listing_get(v, prefix, &l);
    if (err)
        return EIO;
    vfs_attr_namespace(v, n->name, l, a);
    vfs_listing_put(v, l);
    return 0;
}

int vfs_getattr(vfs *v, const struct vfs_id *id, struct vfs_attr *a)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (vfs_node_is_namespace(&n))
        return vfs_namespace_getattr(v, &n, a);
    struct vfs_ref ref;
    kv_ino ino;
    do {
        if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        err = node_getattr_live(v, &ref, ino, a, vfs_stream_mark(&ref));
        vfs_run_release(v, &ref);
    } while (err == ERESTART);
    return vfs_stale_if_enoent(err);
}

/* The id of the namespace directory holding run or nsdir name. */
static void namespace_parent_id(vfs *v, const char *name, struct vfs_id *out)
{
    char prefix[KV_RUNNAME_MAX + 1];
    vfs_split_name(name, prefix, sizeof prefix);
    size_t len = strlen(prefix);
    if (len == 0) {
        vfs_id_make_root(out);
        return;
    }
    prefix[len - 1] = '\0';
    vfs_id_make_nsdir(v, prefix, out);
}

int vfs_parent(vfs *v, const struct vfs_id *dir, struct vfs_id *out)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, dir, &n);
    if (err)
        return err;
    if (n.kind == VFS_KIND_ROOT) {
        vfs_id_make_root(out);
        return 0;
    }
    if (n.kind == VFS_KIND_NSDIR) {
        namespace_parent_id(v, n.name, out);
        return 0;
    }
    if (n.ino == VFS_RUN_ROOT_INO) {
        namespace_parent_id(v, n.name, out);
        return 0;
    }
    struct vfs_ref ref;
    kv_ino ino, parent;
    if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
        return err;
    err = vfs_stale_if_enoent(kv_parent(ref.h->kr, ino, &parent));
    if (!err)
        vfs_node_id(v, &ref, parent, out);
    vfs_run_release(v, &ref);
    return err;
}

/* Look name up in namespace directory n. */
static int namespace_lookup(vfs *v, const struct vfs_node *n,
                            const char *name, struct vfs_id *out,
                            struct vfs_attr *a)
{
    int err;
    if (n->kind == VFS_KIND_NSDIR && (err = vfs_nsdir_check(v, n->name)) != 0)
        return err;
    char prefix[KV_RUNNAME_MAX + 2], full[KV_RUNNAME_MAX + 2];
    vfs_namespace_prefix(n, prefix, sizeof prefix);
    if (vfs_join_name(prefix, name, full, sizeof full))
        return ENOENT;          /* too long to be a run */
    struct vfs_listing *l;
    const struct vfs_entry *e;
    if ((err = vfs_listing_lookup(v, prefix, name, &l, &e)) != 0)
        return EIO;
    bool is_dir = e && e->is_dir, found = e != NULL;
    vfs_listing_put(v, l);
    if (!found && !v->backend) {
        /* A run ingested since the last listing: show it now. */
        struct kv_runinfo ri;
        if (kv_cache_runinfo(v->cache, full, &ri) == 0) {
            found = true;
            vfs_listings_expire(v);
        }
    }
    if (!found)
        return ENOENT;
    if (is_dir) {
        vfs_id_make_nsdir(v, full, out);
        if (a) {
            struct vfs_node child = { .kind = VFS_KIND_NSDIR };
            memcpy(child.name, full, strlen(full) + 1);  /* length checked */
            return vfs_namespace_getattr(v, &child, a);
        }
        return 0;
    }
    struct vfs_ref ref;
    err = vfs_run_acquire(v, full, 0, &ref);
    if (err)
        return err == EINVAL ? ENOENT : err;
    err = vfs_node_getattr(v, &ref, ref.h->root, a);
    if (!err)
        vfs_node_id(v, &ref, ref.h->root, out);
    vfs_run_release(v, &ref);
    return err == ENOENT ? EIO : err;
}

int vfs_lookup(vfs *v, const struct vfs_id *dir, const char *name,
               struct vfs_id *out, struct vfs_attr *a)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, dir, &n);
    if (err)
        return err;
    if ((err = vfs_check_component(name)) != 0)
        return err;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        struct vfs_attr da;
        if ((err = vfs_getattr(v, dir, &da)) != 0)
            return err;
        if (da.type != VFS_DIR)
            return ENOTDIR;
        if (name[1] == '\0') {
            *out = *dir;
            if (a)
                *a = da;
            return 0;
        }
        if ((err = vfs_parent(v, dir, out)) != 0)
            return err;
        return a ? vfs_getattr(v, out, a) : 0;
    }
    if (vfs_node_is_namespace(&n))
        return namespace_lookup(v, &n, name, out, a);
    struct vfs_ref ref;
    kv_ino ino, child = 0;
    int serr;
    do {
        if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        uint64_t mark = vfs_stream_mark(&ref);
        /* The level before the lookup: a directory whole then that lacks
         * the name lacks it for good (taken after, a miss could predate
         * it).  Its depth is read only on a miss. */
        int level = vfs_stream_level(v, &ref);
        err = kv_lookup(ref.h->kr, ino, name, &child);
        serr = 0;
        if (err == ENOENT) {
            /* The directory itself may be what is missing. */
            struct kv_attr k;
            if (kv_getattr(ref.h->kr, ino, &k) == ENOENT) {
                err = ESTALE;
                serr = vfs_stream_check(v, &ref, mark, ino, NULL, NULL, true);
            } else {
                /* Streaming in: a name not seen yet waits for it or for
                 * the end (then ENOENT), or, in a run built from its
                 * index, until its directory is whole. */
                serr = vfs_stream_dir_whole(&ref, ino, level)
                           ? 0
                           : vfs_stream_check(v, &ref, mark, 0, NULL, name, false);
            }
        } else if (!err) {
            err = node_getattr_live(v, &ref, child, a, mark);
            if (err == ERESTART || err == EINPROGRESS || err == EAGAIN) {
                serr = err;
                err = 0;
            }
        }
        if (!err && !serr)
            vfs_node_id(v, &ref, child, out);
        vfs_run_release(v, &ref);
    } while (serr == ERESTART);
    return serr ? serr : err;
}

int vfs_prepare(vfs *v, const struct vfs_id *id)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (vfs_node_is_namespace(&n)) {
        char prefix[KV_RUNNAME_MAX + 2];
        vfs_namespace_prefix(&n, prefix, sizeof prefix);
        struct vfs_listing *l;
        if ((err = vfs_listing_get(v, prefix, &l)) != 0)
            return err;
        vfs_listing_put(v, l);
        return 0;
    }
    struct vfs_ref ref;
    kv_ino ino;
    if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
        return err;
    /* A change first makes the whole run present (vfs_run_change_begin):
     * a run streaming in is waited for, what is absent fetched, here,
     * where the caller may park. */
    if (!v->cfg.read_only)
        err = vfs_stream_wait_end(v, &ref);
    if (!v->cfg.read_only && !err)
        err = vfs_lazy_fill_run(v, &ref);
    vfs_run_release(v, &ref);
    return err;
}

/* ---- reading ------------------------------------------------------------ */

int vfs_readlink(vfs *v, const struct vfs_id *id, char *buf, size_t cap,
                 size_t *len)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (vfs_node_is_namespace(&n))
        return EINVAL;
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        uint64_t mark = vfs_stream_mark(&ref);
        err = kv_readlink(ref.h->kr, ino, buf, cap, len);
        serr = vfs_stream_check(v, &ref, mark, ino, NULL, NULL,
                                err == ENOENT);
        vfs_run_release(v, &ref);
    } while (serr == ERESTART);
    if (serr)
        return serr;
    err = vfs_stale_if_enoent(err);
    if (!err && *len > cap)
        err = ENAMETOOLONG;
    return err;
}

int vfs_read(vfs *v, const struct vfs_id *id, uint64_t off, void *buf,
             size_t len, size_t *got, bool *eof)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (vfs_node_is_namespace(&n))
        return EISDIR;
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        uint64_t mark = vfs_stream_mark(&ref);
        err = vfs_lazy_read(v, &ref, ino, off, buf, len, got, eof);
        /* Streaming in: the data of a file still being written (or not
         * there yet) is waited for. */
        serr = err == EINPROGRESS ? 0
             : vfs_stream_check(v, &ref, mark, ino, NULL, NULL,
                                err == ENOENT);
        vfs_run_release(v, &ref);
    } while (serr == ERESTART);
    return serr ? serr : vfs_stale_if_enoent(err);
}

/* ---- statfs ------------------------------------------------------------ */

int vfs_statfs(vfs *v, const struct vfs_id *id, struct vfs_statfs *st)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    struct kv_statfs ks;
    if ((err = kv_cache_statfs(v->cache, &ks)) != 0)
        return EIO;
    memset(st, 0, sizeof *st);
    st->tbytes = ks.bytes_total;
    st->fbytes = ks.bytes_free;
    st->abytes = v->cfg.read_only ? 0 : ks.bytes_free;
    /* kvstore has no inode limit; advertise a large, honest-looking pool. */
    st->ffiles = UINT64_C(1) << 32;
    st->afiles = v->cfg.read_only ? 0 : st->ffiles;
    st->tfiles = ks.inodes_used + st->ffiles;
    return 0;
}
