/* ops_modify.c: the vfs operations that change a run (setattr, write, commit, create, remove, rename, link): a change of the namespace itself is refused, one inside a run goes to kvstore and marks the run dirty. */
#include "vfs/vfs_internal.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* ---- modifying ------------------------------------------------------ */

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
    *ns = vfs_node_is_namespace(n);
    if (*ns)
        return 0;
    err = vfs_node_pin(v, n, ref, ino);
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
    err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, ino, pre));
    struct kv_attr k;
    if (!err)
        err = vfs_stale_if_enoent(kv_setattr(ref.h->kr, ino, &ks, &k));
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (post)
            vfs_attr_from_kv(v, &k, post);
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
    err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, ino, pre));
    struct kv_attr k;
    if (!err)
        err = vfs_stale_if_enoent(kv_write(ref.h->kr, ino, off, buf, len, &k));
    if (!err && len)            /* zero bytes change nothing to write back */
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (sync)
            err = kv_run_sync(ref.h->kr);
        if (!err && post)
            vfs_attr_from_kv(v, &k, post);
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
    if (vfs_node_is_namespace(&n))
        return 0;
    struct vfs_ref ref;
    kv_ino ino;
    if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
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
    if (dir_pre && vfs_namespace_getattr(v, n, dir_pre) != 0)
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
        err = vfs_node_getattr(v, &ref, ref.h->root, a);
    vfs_run_release(v, &ref);
    if (dir_post && vfs_namespace_getattr(v, n, dir_post) != 0)
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
    int err = vfs_check_component(name);
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
        err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, dino, dir_pre));
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
        vfs_node_id(v, &ref, k.ino, out);
        if (a)
            vfs_attr_from_kv(v, &k, a);
        if (dir_post)
            vfs_node_getattr(v, &ref, dino, dir_post);
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
    int err = vfs_check_component(name);
    if (err)
        return err;
    if ((err = modify_begin(v, dir, &n, &ref, &dino, &ns)) != 0)
        return err;
    char run[KV_RUNNAME_MAX + 1];
    if (ns && is_dir &&
        snprintf(run, sizeof run, "%s%s%s",
                 n.kind == VFS_KIND_ROOT ? "" : n.name,
                 n.kind == VFS_KIND_ROOT ? "" : "/", name) >= (int)sizeof run)
        return ENAMETOOLONG;
    /* RMDIR of an empty run deletes it.  Without run_delete_rename only
     * a run in the cache: a test suite's directory made by MKDIR at the
     * top goes as it came, and nothing is fetched for a refusal (a run is
     * emptied only by removing its members, which any writer may do). */
    if (ns && is_dir && v->backend &&
        (v->cfg.run_delete_rename || vfs_run_is_cached(v, run))) {
        if (dir_pre && vfs_namespace_getattr(v, &n, dir_pre) != 0)
            memset(dir_pre, 0, sizeof *dir_pre);
        err = vfs_run_delete(v, run);
        if (dir_post && vfs_namespace_getattr(v, &n, dir_post) != 0)
            memset(dir_post, 0, sizeof *dir_post);
        return err;
    }
    if (ns)
        return namespace_refuse(is_dir ? "rmdir" : "remove", &n, name);
    err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, dino, dir_pre));
    if (!err)
        err = is_dir ? kv_rmdir(ref.h->kr, dino, name)
                     : kv_unlink(ref.h->kr, dino, name);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (dir_post)
            vfs_node_getattr(v, &ref, dino, dir_post);
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
    if ((err = vfs_check_component(sname)) != 0 ||
        (err = vfs_check_component(dname)) != 0)
        return err;
    if (v->cfg.read_only)
        return EROFS;
    if (vfs_node_is_namespace(&sn) && vfs_node_is_namespace(&dn) &&
        v->backend && v->cfg.run_delete_rename) {
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
        if (s_pre && vfs_namespace_getattr(v, &sn, s_pre) != 0)
            memset(s_pre, 0, sizeof *s_pre);
        if (d_pre && vfs_namespace_getattr(v, &dn, d_pre) != 0)
            memset(d_pre, 0, sizeof *d_pre);
        err = vfs_run_rename(v, from, to);
        if (s_post && vfs_namespace_getattr(v, &sn, s_post) != 0)
            memset(s_post, 0, sizeof *s_post);
        if (d_post && vfs_namespace_getattr(v, &dn, d_post) != 0)
            memset(d_post, 0, sizeof *d_post);
        return err;
    }
    if (vfs_node_is_namespace(&sn))
        return namespace_refuse("rename", &sn, sname);
    if (vfs_node_is_namespace(&dn))
        return namespace_refuse("rename into", &dn, dname);
    if (strcmp(sn.name, dn.name) != 0)
        return EXDEV;
    struct vfs_ref ref;
    kv_ino sino, dino;
    if ((err = vfs_node_pin(v, &sn, &ref, &sino)) != 0)
        return err;
    if ((err = vfs_run_change_begin(v, &ref)) != 0)
        return err;
    dino = dn.ino == VFS_RUN_ROOT_INO ? ref.h->root : dn.ino;
    err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, sino, s_pre));
    if (!err)
        err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, dino, d_pre));
    if (!err)
        err = kv_rename(ref.h->kr, sino, sname, dino, dname);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (s_post)
            vfs_node_getattr(v, &ref, sino, s_post);
        if (d_post)
            vfs_node_getattr(v, &ref, dino, d_post);
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
    if ((err = vfs_check_component(name)) != 0)
        return err;
    if (v->cfg.read_only)
        return EROFS;
    if (vfs_node_is_namespace(&dn))
        return namespace_refuse("link", &dn, name);
    if (vfs_node_is_namespace(&tn) || tn.ino == VFS_RUN_ROOT_INO)
        return EPERM;
    if (strcmp(tn.name, dn.name) != 0)
        return EXDEV;
    struct vfs_ref ref;
    kv_ino dino;
    if ((err = vfs_node_pin(v, &dn, &ref, &dino)) != 0)
        return err;
    if ((err = vfs_run_change_begin(v, &ref)) != 0)
        return err;
    err = vfs_stale_if_enoent(vfs_node_getattr(v, &ref, dino, dir_pre));
    if (!err)
        err = kv_link(ref.h->kr, tn.ino, dino, name);
    if (!err)
        err = vfs_run_mark_dirty(v, &ref);
    if (!err) {
        if (a)
            vfs_node_getattr(v, &ref, tn.ino, a);
        if (dir_post)
            vfs_node_getattr(v, &ref, dino, dir_post);
    }
    vfs_run_release(v, &ref);
    return err == ENOENT ? ESTALE : err;
}
