/* ops.c: the vfs operations nfsd calls: resolves ids to the root, a
 * namespace directory or a node inside a run, and maps each operation onto
 * listings (namespace) or kvstore calls (inside runs). */
#include "vfs/vfs_internal.h"
#include "util/log.h"
#include "util/phash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

static uint32_t mode_of_type(enum vfs_type t)
{
    switch (t) {
    case VFS_DIR:  return S_IFDIR;
    case VFS_BLK:  return S_IFBLK;
    case VFS_CHR:  return S_IFCHR;
    case VFS_LNK:  return S_IFLNK;
    case VFS_SOCK: return S_IFSOCK;
    case VFS_FIFO: return S_IFIFO;
    default:       return S_IFREG;
    }
}

static void attr_from_kv(const vfs *v, const struct kv_attr *k,
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
static void attr_namespace(const vfs *v, const char *name,
                           const struct vfs_listing *l, struct vfs_attr *a)
{
    memset(a, 0, sizeof *a);
    a->type = VFS_DIR;
    a->mode = v->cfg.read_only ? 0555 : 0755;
    a->nlink = 2 + (uint32_t)(l ? l->ndirs : 0);
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
static void attr_unfetched_run(const vfs *v, const char *run,
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

static bool is_namespace(const struct vfs_node *n)
{
    return n->kind == VFS_KIND_ROOT || n->kind == VFS_KIND_NSDIR;
}

/* The listing prefix of namespace node n: "" or "a/b/". */
static void namespace_prefix(const struct vfs_node *n, char *buf, size_t cap)
{
    if (n->kind == VFS_KIND_ROOT)
        buf[0] = '\0';
    else
        snprintf(buf, cap, "%s/", n->name);
}

/* Does namespace directory name (non-empty) exist?  Errors: ESTALE, EIO. */
static int nsdir_check(vfs *v, const char *name)
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
static int node_pin(vfs *v, const struct vfs_node *n, struct vfs_ref *ref,
                    kv_ino *ino)
{
    int err = vfs_run_acquire(v, n->name, 0, ref);
    if (err)
        return err == ENOENT || err == EINVAL ? ESTALE : err;
    *ino = n->ino == VFS_RUN_ROOT_INO ? ref->h->root : n->ino;
    return 0;
}

/* The id of inode ino of the run pinned by ref. */
static void node_id(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                    struct vfs_id *id)
{
    vfs_id_make_node(v, ref->run->name,
                     ino == ref->h->root ? VFS_RUN_ROOT_INO : ino, id);
}

/* kvstore's ENOENT for an inode named by an id means the id is stale. */
static int stale_if_enoent(int err)
{
    return err == ENOENT ? ESTALE : err;
}

static int node_getattr(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                        struct vfs_attr *a)
{
    struct kv_attr k;
    int err = kv_getattr(ref->h->kr, ino, &k);
    if (err)
        return err;
    if (a)
        attr_from_kv(v, &k, a);
    return 0;
}

/* node_getattr for a call answering with what kvstore has now (mark:
 * vfs_stream_mark before reading): on a run streaming in, a file whose
 * data is still coming shows its final size, and an inode not there yet
 * is waited for (stream.c).  Errors: node_getattr's, and ERESTART,
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
        attr_from_kv(v, &k, a);
    return err;
}

/* full = prefix + name.  Errors: ENAMETOOLONG (over KV_RUNNAME_MAX). */
static int join_name(const char *prefix, const char *name, char *full,
                     size_t cap)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    if (pl + nl > KV_RUNNAME_MAX || pl + nl >= cap)
        return ENAMETOOLONG;
    memcpy(full, prefix, pl);
    memcpy(full + pl, name, nl + 1);
    return 0;
}

static int check_component(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || strchr(name, '/'))
        return EINVAL;
    if (len > VFS_NAME_MAX)
        return ENAMETOOLONG;
    return 0;
}

/* ---- getattr, lookup, parent ------------------------------------------ */

static int namespace_getattr(vfs *v, const struct vfs_node *n,
                             struct vfs_attr *a)
{
    if (n->kind == VFS_KIND_NSDIR) {
        int err = nsdir_check(v, n->name);
        if (err)
            return err;
    }
    char prefix[KV_RUNNAME_MAX + 2];
    namespace_prefix(n, prefix, sizeof prefix);
    struct vfs_listing *l;
    int err = vfs_listing_get(v, prefix, &l);
    if (err)
        return EIO;
    attr_namespace(v, n->name, l, a);
    vfs_listing_put(v, l);
    return 0;
}

int vfs_getattr(vfs *v, const struct vfs_id *id, struct vfs_attr *a)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (is_namespace(&n))
        return namespace_getattr(v, &n, a);
    struct vfs_ref ref;
    kv_ino ino;
    do {
        if ((err = node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        err = node_getattr_live(v, &ref, ino, a, vfs_stream_mark(&ref));
        vfs_run_release(v, &ref);
    } while (err == ERESTART);
    return stale_if_enoent(err);
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
    if ((err = node_pin(v, &n, &ref, &ino)) != 0)
        return err;
    err = stale_if_enoent(kv_parent(ref.h->kr, ino, &parent));
    if (!err)
        node_id(v, &ref, parent, out);
    vfs_run_release(v, &ref);
    return err;
}

/* Look name up in namespace directory n. */
static int namespace_lookup(vfs *v, const struct vfs_node *n,
                            const char *name, struct vfs_id *out,
                            struct vfs_attr *a)
{
    int err;
    if (n->kind == VFS_KIND_NSDIR && (err = nsdir_check(v, n->name)) != 0)
        return err;
    char prefix[KV_RUNNAME_MAX + 2], full[KV_RUNNAME_MAX + 2];
    namespace_prefix(n, prefix, sizeof prefix);
    if (join_name(prefix, name, full, sizeof full))
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
            return namespace_getattr(v, &child, a);
        }
        return 0;
    }
    struct vfs_ref ref;
    err = vfs_run_acquire(v, full, 0, &ref);
    if (err)
        return err == EINVAL ? ENOENT : err;
    err = node_getattr(v, &ref, ref.h->root, a);
    if (!err)
        node_id(v, &ref, ref.h->root, out);
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
    if ((err = check_component(name)) != 0)
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
    if (is_namespace(&n))
        return namespace_lookup(v, &n, name, out, a);
    struct vfs_ref ref;
    kv_ino ino, child = 0;
    int serr;
    do {
        if ((err = node_pin(v, &n, &ref, &ino)) != 0)
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
            node_id(v, &ref, child, out);
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
    if (is_namespace(&n)) {
        char prefix[KV_RUNNAME_MAX + 2];
        namespace_prefix(&n, prefix, sizeof prefix);
        struct vfs_listing *l;
        if ((err = vfs_listing_get(v, prefix, &l)) != 0)
            return err;
        vfs_listing_put(v, l);
        return 0;
    }
    struct vfs_ref ref;
    kv_ino ino;
    if ((err = node_pin(v, &n, &ref, &ino)) != 0)
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
    if (is_namespace(&n))
        return EINVAL;
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        uint64_t mark = vfs_stream_mark(&ref);
        err = kv_readlink(ref.h->kr, ino, buf, cap, len);
        serr = vfs_stream_check(v, &ref, mark, ino, NULL, NULL,
                                err == ENOENT);
        vfs_run_release(v, &ref);
    } while (serr == ERESTART);
    if (serr)
        return serr;
    err = stale_if_enoent(err);
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
    if (is_namespace(&n))
        return EISDIR;
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = node_pin(v, &n, &ref, &ino)) != 0)
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
    return serr ? serr : stale_if_enoent(err);
}

/* ---- modifying ------------------------------------------------------ */

/* Refuse a change of the namespace itself (creating, removing or renaming
 * runs), which the writable namespace issue will define. */
static int namespace_refuse(const char *op, const struct vfs_node *n,
                            const char *name)
{
    log_info("vfs: refusing %s of '%s%s%s' at the namespace level: runs "
             "are created and removed in the backend, not through NFS",
             op, n->kind == VFS_KIND_NSDIR ? n->name : "",
             n->kind == VFS_KIND_NSDIR ? "/" : "/", name ? name : "");
    return EACCES;
}

/* Decode a directory or node id of a modifying call and pin its run.
 * Errors: EBADMSG, EROFS, ESTALE, EIO; *ns is set for namespace ids (no
 * pin taken). */
static int modify_begin(vfs *v, const struct vfs_id *id, struct vfs_node *n,
                        struct vfs_ref *ref, kv_ino *ino, bool *ns)
{
    int err = vfs_id_decode(v, id, n);
    if (err)
        return err;
    if (v->cfg.read_only)
        return EROFS;
    *ns = is_namespace(n);
    if (*ns)
        return 0;
    err = node_pin(v, n, ref, ino);
    if (!err)
        err = vfs_run_change_begin(v, ref);
    return err;
}

int vfs_setattr(vfs *v, const struct vfs_id *id, const struct vfs_sattr *s,
                struct vfs_attr *pre, struct vfs_attr *post)
{
    struct vfs_node n;
    struct vfs_ref ref;
    kv_ino ino;
    bool ns;
    int err = modify_begin(v, id, &n, &ref, &ino, &ns);
    if (err)
        return err;
    if (ns)
        return namespace_refuse("setattr", &n, NULL);
    if (s->set_size && s->size > v->cfg.max_file_size) {
        vfs_run_release(v, &ref);
        return EFBIG;
    }
    struct kv_sattr ks;
    memset(&ks, 0, sizeof ks);
    if (s->set_mode) { ks.mask |= KV_SET_MODE; ks.mode = s->mode & 07777; }
    if (s->set_uid)  { ks.mask |= KV_SET_UID;  ks.uid = s->uid; }
    if (s->set_gid)  { ks.mask |= KV_SET_GID;  ks.gid = s->gid; }
    if (s->set_size) { ks.mask |= KV_SET_SIZE; ks.size = s->size; }
    if (s->set_atime) { ks.mask |= KV_SET_ATIME; ks.atime = s->atime; }
    if (s->set_mtime) { ks.mask |= KV_SET_MTIME; ks.mtime = s->mtime; }
    err = stale_if_enoent(node_getattr(v, &ref, ino, pre));
    struct kv_attr k;
    if (!err)
        err = stale_if_enoent(kv_setattr(ref.h->kr, ino, &ks, &k));
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (post)
            attr_from_kv(v, &k, post);
    }
    vfs_run_release(v, &ref);
    return err;
}

int vfs_write(vfs *v, const struct vfs_id *id, uint64_t off,
              const void *buf, size_t len, bool sync,
              struct vfs_attr *pre, struct vfs_attr *post)
{
    struct vfs_node n;
    struct vfs_ref ref;
    kv_ino ino;
    bool ns;
    int err = modify_begin(v, id, &n, &ref, &ino, &ns);
    if (err)
        return err;
    if (ns)
        return EISDIR;
    if (off > v->cfg.max_file_size || len > v->cfg.max_file_size - off) {
        vfs_run_release(v, &ref);
        return EFBIG;
    }
    err = stale_if_enoent(node_getattr(v, &ref, ino, pre));
    struct kv_attr k;
    if (!err)
        err = stale_if_enoent(kv_write(ref.h->kr, ino, off, buf, len, &k));
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (sync)
            err = kv_run_sync(ref.h->kr);
        if (!err && post)
            attr_from_kv(v, &k, post);
    }
    vfs_run_release(v, &ref);
    return err;
}

int vfs_commit(vfs *v, const struct vfs_id *id)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    if (is_namespace(&n))
        return 0;
    struct vfs_ref ref;
    kv_ino ino;
    if ((err = node_pin(v, &n, &ref, &ino)) != 0)
        return err;
    err = kv_run_sync(ref.h->kr);
    vfs_run_release(v, &ref);
    return err;
}

/* MKDIR in a namespace directory: a new run, which becomes a new tarball
 * at its first write-back (doc/design.md (writeback)). */
static int create_run(vfs *v, const struct vfs_node *n, const char *name,
                      const struct vfs_sattr *s, const struct vfs_cred *cred,
                      struct vfs_id *out, struct vfs_attr *a,
                      struct vfs_attr *dir_pre, struct vfs_attr *dir_post)
{
    if (dir_pre && namespace_getattr(v, n, dir_pre) != 0)
        memset(dir_pre, 0, sizeof *dir_pre);
    char run[KV_RUNNAME_MAX + 1];
    if (snprintf(run, sizeof run, "%s%s%s", n->kind == VFS_KIND_ROOT ? "" :
                 n->name, n->kind == VFS_KIND_ROOT ? "" : "/", name) >=
        (int)sizeof run)
        return ENAMETOOLONG;
    uint32_t mode = s && s->set_mode ? s->mode & 07777 : 0755;
    uint32_t uid = s && s->set_uid ? s->uid : cred ? cred->uid : 0;
    uint32_t gid = s && s->set_gid ? s->gid : cred ? cred->gid : 0;
    int err = vfs_run_create_new(v, run, mode, uid, gid);
    if (err)
        return err;
    struct vfs_ref ref;
    if ((err = vfs_run_acquire(v, run, 0, &ref)) != 0)
        return err == ENOENT ? EIO : err;
    if ((err = vfs_run_change_begin(v, &ref)) != 0)
        return err;
    err = vfs_run_mark_dirty(v, &ref);
    vfs_id_make_node(v, run, VFS_RUN_ROOT_INO, out);
    if (a && !err)
        err = node_getattr(v, &ref, ref.h->root, a);
    vfs_run_release(v, &ref);
    if (dir_post && namespace_getattr(v, n, dir_post) != 0)
        memset(dir_post, 0, sizeof *dir_post);
    return err;
}

int vfs_create(vfs *v, const struct vfs_id *dir, const char *name,
               enum vfs_type type, const struct vfs_sattr *s,
               const struct vfs_cred *cred, uint32_t rdev_major,
               uint32_t rdev_minor, const char *target,
               struct vfs_id *out, struct vfs_attr *a,
               struct vfs_attr *dir_pre, struct vfs_attr *dir_post)
{
    struct vfs_node n;
    struct vfs_ref ref;
    kv_ino dino;
    bool ns;
    int err = check_component(name);
    if (err)
        return err;
    if (s && s->set_size && type == VFS_REG && s->size > v->cfg.max_file_size)
        return EFBIG;
    if ((err = modify_begin(v, dir, &n, &ref, &dino, &ns)) != 0)
        return err;
    if (ns && type == VFS_DIR && v->backend)
        return create_run(v, &n, name, s, cred, out, a, dir_pre, dir_post);
    if (ns)
        return namespace_refuse("create", &n, name);
    struct kv_newnode nn;
    memset(&nn, 0, sizeof nn);
    uint32_t perm = type == VFS_DIR ? 0755 : type == VFS_LNK ? 0777 : 0644;
    if (s && s->set_mode)
        perm = s->mode & 07777;
    nn.mode = mode_of_type(type) | perm;
    nn.uid = cred ? cred->uid : 0;
    nn.gid = cred ? cred->gid : 0;
    if (s && s->set_uid)
        nn.uid = s->uid;
    if (s && s->set_gid)
        nn.gid = s->gid;
    nn.rdev = makedev(rdev_major, rdev_minor);
    nn.symlink_target = type == VFS_LNK ? target : NULL;
    if (type == VFS_LNK && (!target || !target[0]))
        err = EINVAL;
    if (s && (s->set_atime || s->set_mtime)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        nn.has_times = true;
        nn.atime = s->set_atime ? s->atime : now;
        nn.mtime = s->set_mtime ? s->mtime : now;
    }
    if (!err)
        err = stale_if_enoent(node_getattr(v, &ref, dino, dir_pre));
    struct kv_attr k;
    if (!err)
        err = kv_mknode(ref.h->kr, dino, name, &nn, &k);
    if (!err && s && s->set_size && type == VFS_REG && s->size != 0) {
        struct kv_sattr ks = { .mask = KV_SET_SIZE, .size = s->size };
        err = kv_setattr(ref.h->kr, k.ino, &ks, &k);
    }
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        node_id(v, &ref, k.ino, out);
        if (a)
            attr_from_kv(v, &k, a);
        if (dir_post)
            node_getattr(v, &ref, dino, dir_post);
    }
    vfs_run_release(v, &ref);
    return err;
}

int vfs_remove(vfs *v, const struct vfs_id *dir, const char *name,
               bool is_dir, struct vfs_attr *dir_pre,
               struct vfs_attr *dir_post)
{
    struct vfs_node n;
    struct vfs_ref ref;
    kv_ino dino;
    bool ns;
    int err = check_component(name);
    if (err)
        return err;
    if ((err = modify_begin(v, dir, &n, &ref, &dino, &ns)) != 0)
        return err;
    if (ns && is_dir && v->backend && v->cfg.run_delete_rename) {
        char run[KV_RUNNAME_MAX + 1];
        if (snprintf(run, sizeof run, "%s%s%s",
                     n.kind == VFS_KIND_ROOT ? "" : n.name,
                     n.kind == VFS_KIND_ROOT ? "" : "/", name) >=
            (int)sizeof run)
            return ENAMETOOLONG;
        if (dir_pre && namespace_getattr(v, &n, dir_pre) != 0)
            memset(dir_pre, 0, sizeof *dir_pre);
        err = vfs_run_delete(v, run);
        if (dir_post && namespace_getattr(v, &n, dir_post) != 0)
            memset(dir_post, 0, sizeof *dir_post);
        return err;
    }
    if (ns)
        return namespace_refuse(is_dir ? "rmdir" : "remove", &n, name);
    err = stale_if_enoent(node_getattr(v, &ref, dino, dir_pre));
    if (!err)
        err = is_dir ? kv_rmdir(ref.h->kr, dino, name)
                     : kv_unlink(ref.h->kr, dino, name);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (dir_post)
            node_getattr(v, &ref, dino, dir_post);
    }
    vfs_run_release(v, &ref);
    return err;
}

int vfs_rename(vfs *v, const struct vfs_id *sdir, const char *sname,
               const struct vfs_id *ddir, const char *dname,
               struct vfs_attr *s_pre, struct vfs_attr *s_post,
               struct vfs_attr *d_pre, struct vfs_attr *d_post)
{
    struct vfs_node sn, dn;
    int err = vfs_id_decode(v, sdir, &sn);
    if (!err)
        err = vfs_id_decode(v, ddir, &dn);
    if (err)
        return err;
    if ((err = check_component(sname)) != 0 ||
        (err = check_component(dname)) != 0)
        return err;
    if (v->cfg.read_only)
        return EROFS;
    if (is_namespace(&sn) && is_namespace(&dn) && v->backend &&
        v->cfg.run_delete_rename) {
        char from[KV_RUNNAME_MAX + 1], to[KV_RUNNAME_MAX + 1];
        if (snprintf(from, sizeof from, "%s%s%s",
                     sn.kind == VFS_KIND_ROOT ? "" : sn.name,
                     sn.kind == VFS_KIND_ROOT ? "" : "/", sname) >=
                (int)sizeof from ||
            snprintf(to, sizeof to, "%s%s%s",
                     dn.kind == VFS_KIND_ROOT ? "" : dn.name,
                     dn.kind == VFS_KIND_ROOT ? "" : "/", dname) >=
                (int)sizeof to)
            return ENAMETOOLONG;
        if (s_pre && namespace_getattr(v, &sn, s_pre) != 0)
            memset(s_pre, 0, sizeof *s_pre);
        if (d_pre && namespace_getattr(v, &dn, d_pre) != 0)
            memset(d_pre, 0, sizeof *d_pre);
        err = vfs_run_rename(v, from, to);
        if (s_post && namespace_getattr(v, &sn, s_post) != 0)
            memset(s_post, 0, sizeof *s_post);
        if (d_post && namespace_getattr(v, &dn, d_post) != 0)
            memset(d_post, 0, sizeof *d_post);
        return err;
    }
    if (is_namespace(&sn))
        return namespace_refuse("rename", &sn, sname);
    if (is_namespace(&dn))
        return namespace_refuse("rename into", &dn, dname);
    if (strcmp(sn.name, dn.name) != 0)
        return EXDEV;
    struct vfs_ref ref;
    kv_ino sino, dino;
    if ((err = node_pin(v, &sn, &ref, &sino)) != 0)
        return err;
    if ((err = vfs_run_change_begin(v, &ref)) != 0)
        return err;
    dino = dn.ino == VFS_RUN_ROOT_INO ? ref.h->root : dn.ino;
    err = stale_if_enoent(node_getattr(v, &ref, sino, s_pre));
    if (!err)
        err = stale_if_enoent(node_getattr(v, &ref, dino, d_pre));
    if (!err)
        err = kv_rename(ref.h->kr, sino, sname, dino, dname);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (s_post)
            node_getattr(v, &ref, sino, s_post);
        if (d_post)
            node_getattr(v, &ref, dino, d_post);
    }
    vfs_run_release(v, &ref);
    return err;
}

int vfs_link(vfs *v, const struct vfs_id *id, const struct vfs_id *dir,
             const char *name, struct vfs_attr *a,
             struct vfs_attr *dir_pre, struct vfs_attr *dir_post)
{
    struct vfs_node tn, dn;
    int err = vfs_id_decode(v, id, &tn);
    if (!err)
        err = vfs_id_decode(v, dir, &dn);
    if (err)
        return err;
    if ((err = check_component(name)) != 0)
        return err;
    if (v->cfg.read_only)
        return EROFS;
    if (is_namespace(&dn))
        return namespace_refuse("link", &dn, name);
    if (is_namespace(&tn) || tn.ino == VFS_RUN_ROOT_INO)
        return EPERM;
    if (strcmp(tn.name, dn.name) != 0)
        return EXDEV;
    struct vfs_ref ref;
    kv_ino dino;
    if ((err = node_pin(v, &dn, &ref, &dino)) != 0)
        return err;
    if ((err = vfs_run_change_begin(v, &ref)) != 0)
        return err;
    err = stale_if_enoent(node_getattr(v, &ref, dino, dir_pre));
    if (!err)
        err = kv_link(ref.h->kr, tn.ino, dino, name);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (a)
            node_getattr(v, &ref, tn.ino, a);
        if (dir_post)
            node_getattr(v, &ref, dino, dir_post);
    }
    vfs_run_release(v, &ref);
    return err == ENOENT ? ESTALE : err;
}

/* ---- readdir ------------------------------------------------------------ */

typedef int (*vfs_readdir_cb)(void *arg, const struct vfs_dirent *de);

static int namespace_readdir(vfs *v, const struct vfs_node *n,
                             uint64_t cookie, bool want_attrs,
                             vfs_readdir_cb cb, void *arg)
{
    int err;
    if (n->kind == VFS_KIND_NSDIR && (err = nsdir_check(v, n->name)) != 0)
        return err;
    char prefix[KV_RUNNAME_MAX + 2], full[KV_RUNNAME_MAX + 2];
    namespace_prefix(n, prefix, sizeof prefix);
    struct vfs_listing *l;
    if ((err = vfs_listing_get(v, prefix, &l)) != 0)
        return EIO;
    int rc = 0;
    for (size_t i = vfs_listing_after(l, cookie); i < l->n && !rc; i++) {
        const struct vfs_entry *e = &l->ents[i];
        struct vfs_id id;
        struct vfs_attr a;
        struct vfs_dirent de = { .name = e->name, .cookie = e->cookie };
        join_name(prefix, e->name, full, sizeof full);  /* fits: listed */
        if (e->is_dir) {
            attr_namespace(v, full, l, &a);
            de.fileid = a.fileid;
            if (want_attrs) {
                vfs_id_make_nsdir(v, full, &id);
                de.id = &id;
                de.a = &a;
            }
        } else {
            de.fileid = kv_ino_for(full, "");
            if (want_attrs) {
                /* Real attributes for a cached run; never fetch here. */
                struct vfs_ref ref;
                if (vfs_run_is_cached(v, full) &&
                    vfs_run_acquire(v, full, VFS_ACQ_NOFETCH, &ref) == 0) {
                    if (node_getattr(v, &ref, ref.h->root, &a) != 0)
                        attr_unfetched_run(v, full, e, &a);
                    vfs_run_release(v, &ref);
                } else {
                    attr_unfetched_run(v, full, e, &a);
                }
                vfs_id_make_node(v, full, VFS_RUN_ROOT_INO, &id);
                de.id = &id;
                de.a = &a;
            }
        }
        rc = cb(arg, &de);
    }
    vfs_listing_put(v, l);
    return rc;
}

/* Entries gathered from kvstore (with their attributes for READDIRPLUS),
 * handed to the caller after kvstore's lock is released. */
#define READDIR_BATCH 128
struct dir_batch {
    size_t n;
    bool more;
    struct {
        char name[KV_NAME_MAX + 1];
        kv_ino ino;
        uint64_t cookie;
        bool has_attr;
        struct kv_attr k;
    } e[READDIR_BATCH];
};

static int batch_plus_cb(void *arg, const struct kv_dirent *de,
                         const struct kv_attr *k)
{
    struct dir_batch *b = arg;
    if (b->n == READDIR_BATCH) {
        b->more = true;
        return 1;
    }
    size_t len = de->namelen < KV_NAME_MAX ? de->namelen : KV_NAME_MAX;
    memcpy(b->e[b->n].name, de->name, len);
    b->e[b->n].name[len] = '\0';
    b->e[b->n].ino = de->ino;
    b->e[b->n].cookie = de->cookie;
    b->e[b->n].has_attr = k != NULL;
    if (k)
        b->e[b->n].k = *k;
    b->n++;
    return 0;
}

static int batch_cb(void *arg, const struct kv_dirent *de)
{
    return batch_plus_cb(arg, de, NULL);
}

static int node_readdir(vfs *v, const struct vfs_ref *ref, kv_ino dir,
                        uint64_t cookie, bool want_attrs,
                        vfs_readdir_cb cb, void *arg)
{
    struct dir_batch *b = malloc(sizeof *b);
    if (!b)
        return ENOMEM;
    int rc = 0;
    for (;;) {
        b->n = 0;
        b->more = false;
        /* Streaming in: the attributes were read after this mark, so an
         * entry is answered with them only if the stream did not move
         * meanwhile (a file still being written is listed, its attributes
         * are left to its GETATTR, which waits). */
        uint64_t mark = vfs_stream_mark(ref);
        int err = want_attrs
            ? kv_readdir_plus(ref->h->kr, dir, cookie, batch_plus_cb, b)
            : kv_readdir(ref->h->kr, dir, cookie, batch_cb, b);
        if (err && !(err == 1 && b->more)) {
            rc = stale_if_enoent(err);
            break;
        }
        for (size_t i = 0; i < b->n && !rc; i++) {
            struct vfs_id id;
            struct vfs_attr a;
            struct vfs_dirent de = { .name = b->e[i].name,
                                     .fileid = b->e[i].ino,
                                     .cookie = b->e[i].cookie };
            if (want_attrs && b->e[i].has_attr &&
                !vfs_stream_unsettled(v, ref, mark, b->e[i].ino, &b->e[i].k)) {
                attr_from_kv(v, &b->e[i].k, &a);
                node_id(v, ref, b->e[i].ino, &id);
                de.id = &id;
                de.a = &a;
            }
            rc = cb(arg, &de);
            cookie = b->e[i].cookie;
        }
        if (rc || !b->more)
            break;
    }
    free(b);
    return rc;
}

/* Passes entries on to the caller's callback, counting them. */
struct counting {
    vfs_readdir_cb cb;
    void *arg;
    size_t n;
};

static int count_cb(void *arg, const struct vfs_dirent *de)
{
    struct counting *cn = arg;
    cn->n++;
    return cn->cb(cn->arg, de);
}

int vfs_readdir(vfs *v, const struct vfs_id *dir, uint64_t cookie,
                bool want_attrs, uint64_t *verf,
                int (*cb)(void *arg, const struct vfs_dirent *de), void *arg)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, dir, &n);
    if (err)
        return err;
    if (verf)
        *verf = VFS_COOKIE_VERF;
    if (is_namespace(&n))
        return namespace_readdir(v, &n, cookie, want_attrs, cb, arg);
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = node_pin(v, &n, &ref, &ino)) != 0)
            return err;
        /* A run built from its index lists whole directories only. */
        if ((err = vfs_stream_listing(v, &ref, ino, want_attrs)) != 0) {
            vfs_run_release(v, &ref);
            return err;
        }
        uint64_t mark = vfs_stream_mark(&ref);
        struct counting cn = { cb, arg, 0 };
        err = node_readdir(v, &ref, ino, cookie, want_attrs, count_cb, &cn);
        /* Streaming in, a directory not there yet is waited for; one that
         * is lists what has arrived (its mtime moves as entries land),
         * but not nothing: an empty one waits for its first entry (or
         * the end), so a run is never listed empty while it starts. */
        serr = err == ESTALE ? vfs_stream_check(v, &ref, mark, ino, NULL,
                                                NULL, true)
             : !err && cookie == 0 && cn.n == 0
                 ? vfs_stream_wait_entries(v, &ref, mark,
                                           ino == ref.h->root ? 0 : ino)
                 : 0;
        vfs_run_release(v, &ref);
    } while (serr == ERESTART);
    return serr ? serr : err;
}

int vfs_listing_stamp(vfs *v, const struct vfs_id *dir, uint64_t *stamp)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, dir, &n);
    if (err)
        return err;
    if (is_namespace(&n))
        return ENOTSUP;
    struct vfs_ref ref;
    if (vfs_run_acquire(v, n.name, VFS_ACQ_NOFETCH, &ref) != 0)
        return ENOTSUP;
    uint64_t s = vfs_stream_active(&ref) ? 0 : kv_run_stamp(ref.h->kr);
    vfs_run_release(v, &ref);
    if (!s)
        return ENOTSUP;
    if (n.ino == VFS_RUN_ROOT_INO) {
        /* A run's root lists ".." with the attributes of the namespace
         * directory holding the run, made from that directory's listing
         * (attr_namespace: its subdirectory count and change time): they
         * go into the stamp too. */
        char prefix[KV_RUNNAME_MAX + 1];
        vfs_split_name(n.name, prefix, sizeof prefix);
        struct vfs_listing *l;
        if (vfs_listing_get(v, prefix, &l) != 0)
            return ENOTSUP;
        uint64_t parts[4] = { s, (uint64_t)l->ndirs, (uint64_t)l->changed.tv_sec,
                              (uint64_t)l->changed.tv_nsec };
        vfs_listing_put(v, l);
        s = phash(parts, sizeof parts);
        if (!s)
            s = 1;
    }
    *stamp = s;
    return 0;
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
