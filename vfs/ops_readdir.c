/* ops_readdir.c: the vfs listing operations (readdir, readdirplus, and the listing stamp): a namespace directory from its listing, a directory inside a run from kvstore in batches, waiting on a run streaming in. */
#include "vfs/vfs_internal.h"
#include "util/phash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- readdir ------------------------------------------------------------ */

typedef int (*vfs_readdir_cb)(void *arg, const struct vfs_dirent *de);

static int namespace_readdir(vfs *v, const struct vfs_node *n,
                             uint64_t cookie, bool want_attrs,
                             vfs_readdir_cb cb, void *arg)
{
    int err;
    if (n->kind == VFS_KIND_NSDIR && (err = vfs_nsdir_check(v, n->name)) != 0)
        return err;
    char prefix[KV_RUNNAME_MAX + 2], full[KV_RUNNAME_MAX + 2];
    vfs_namespace_prefix(n, prefix, sizeof prefix);
    struct vfs_listing *l;
    if ((err = vfs_listing_get(v, prefix, &l)) != 0)
        return EIO;
    int rc = 0;
    for (size_t i = vfs_listing_after(l, cookie); i < l->n && !rc; i++) {
        const struct vfs_entry *e = &l->ents[i];
        struct vfs_id id;
        struct vfs_attr a;
        struct vfs_dirent de = { .name = e->name, .cookie = e->cookie };
        vfs_join_name(prefix, e->name, full, sizeof full);  /* fits: listed */
        if (e->is_dir) {
            vfs_attr_namespace(v, full, NULL, &a);
            de.fileid = a.fileid;
            if (want_attrs) {
                vfs_id_make_nsdir(v, full, &id);
                de.id = &id;
                /* Its own attributes, as GETATTR gives them (nlink and
                 * times come from its own listing, not this one): built
                 * here when that is local, else only if held already,
                 * never fetched from the backend for a listing. */
                char sub[KV_RUNNAME_MAX + 3];
                snprintf(sub, sizeof sub, "%s/", full);
                struct vfs_listing *cl = NULL;
                if ((v->backend ? vfs_listing_peek(v, sub, &cl)
                                : vfs_listing_get(v, sub, &cl)) == 0) {
                    vfs_attr_namespace(v, full, cl, &a);
                    vfs_listing_put(v, cl);
                    de.a = &a;
                }
            }
        } else {
            de.fileid = kv_ino_for(full, "");
            if (want_attrs) {
                /* Real attributes for a cached run; never fetch here. */
                struct vfs_ref ref;
                if (vfs_run_is_cached(v, full) &&
                    vfs_run_acquire(v, full, VFS_ACQ_NOFETCH, &ref) == 0) {
                    if (vfs_node_getattr(v, &ref, ref.h->root, &a) != 0)
                        vfs_attr_unfetched_run(v, full, e, &a);
                    vfs_run_release(v, &ref);
                } else {
                    vfs_attr_unfetched_run(v, full, e, &a);
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
            rc = vfs_stale_if_enoent(err);
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
                vfs_attr_from_kv(v, &b->e[i].k, &a);
                vfs_node_id(v, ref, b->e[i].ino, &id);
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
    if (vfs_node_is_namespace(&n))
        return namespace_readdir(v, &n, cookie, want_attrs, cb, arg);
    struct vfs_ref ref;
    kv_ino ino;
    int serr;
    do {
        if ((err = vfs_node_pin(v, &n, &ref, &ino)) != 0)
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
    if (vfs_node_is_namespace(&n))
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
         * (vfs_attr_namespace: its subdirectory count and change time):
         * they go into the stamp too. */
        char prefix[KV_RUNNAME_MAX + 1];
        vfs_split_name(n.name, prefix, sizeof prefix);
        struct vfs_listing *l;
        if (vfs_listing_get(v, prefix, &l) != 0)
            return ENOTSUP;
        uint64_t parts[4] = { s, (uint64_t)l->n, (uint64_t)l->changed.tv_sec,
                              (uint64_t)l->changed.tv_nsec };
        vfs_listing_put(v, l);
        s = phash(parts, sizeof parts);
        if (!s)
            s = 1;
    }
    *stamp = s;
    return 0;
}
