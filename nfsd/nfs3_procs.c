/* nfs3_procs.c: the NFSv3 procedures (RFC 1813 section 3.3) over vfs, with
 * per-operation permission checks, and the descriptor table of all 22
 * (READDIR and READDIRPLUS are in nfs3_readdir.c).  The dispatcher has
 * already checked the first handle, the export ACL, squashing and ro. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nfsd/nfs3_internal.h"
#include "nfsd/nfs3_status.h"
#include "nfsd/nfs3_xdr_fast.h"
#include "util/log.h"

#define NFSD_DTPREF         65536

/* ---- attributes, handles, names ---- */

static nfstime3 nfstime(struct timespec t)
{
    nfstime3 n = { (uint32_t)t.tv_sec, (uint32_t)t.tv_nsec };
    return n;
}

static void fattr_from(fattr3 *f, const struct vfs_attr *a)
{
    f->type = (ftype3)a->type;
    f->mode = a->mode & 07777;
    f->nlink = a->nlink;
    f->uid = a->uid;
    f->gid = a->gid;
    f->size = a->size;
    f->used = a->used;
    f->rdev.specdata1 = a->rdev_major;
    f->rdev.specdata2 = a->rdev_minor;
    f->fsid = a->fsid;
    f->fileid = a->fileid;
    f->atime = nfstime(a->atime);
    f->mtime = nfstime(a->mtime);
    f->ctime = nfstime(a->ctime);
}

void nfs3_post_attr_set(post_op_attr *p, const struct vfs_attr *a)
{
    if (!a) {
        p->attributes_follow = FALSE;
        return;
    }
    p->attributes_follow = TRUE;
    fattr_from(&p->post_op_attr_u.attributes, a);
}

static void post_attr_get(struct rpc_ctx *c, post_op_attr *p, const struct vfs_id *id)
{
    struct vfs_attr a;
    nfs3_post_attr_set(p, vfs_getattr(c->srv->vfs, id, &a) ? NULL : &a);
}

static void wcc_set(wcc_data *w, const struct vfs_attr *pre, const struct vfs_attr *post)
{
    if (pre) {
        w->before.attributes_follow = TRUE;
        wcc_attr *wa = &w->before.pre_op_attr_u.attributes;
        wa->size = pre->size;
        wa->mtime = nfstime(pre->mtime);
        wa->ctime = nfstime(pre->ctime);
    }
    nfs3_post_attr_set(&w->after, post);
}

/* After a failed change, report what we know: attrs before, and now. */
static void wcc_after_fail(struct rpc_ctx *c, wcc_data *w, const struct vfs_attr *pre,
                           const struct vfs_id *id)
{
    struct vfs_attr now;
    wcc_set(w, pre, vfs_getattr(c->srv->vfs, id, &now) ? NULL : &now);
}

static bool fh_make(struct rpc_ctx *c, nfs_fh3 *fh, const struct vfs_id *id)
{
    uint8_t *buf = arena_alloc(&c->arena, FH_MAX);
    if (!buf)
        return false;
    fh->data.data_len = (u_int)(c->srv->fhc
        ? fh_cache_encode(c->srv->fhc, c->exp->id, id, buf)
        : fh_encode(&c->srv->key, c->exp->id, id, buf));
    fh->data.data_val = (char *)buf;
    return true;
}

void nfs3_post_fh_set(struct rpc_ctx *c, post_op_fh3 *p, const struct vfs_id *id)
{
    p->handle_follows = fh_make(c, &p->post_op_fh3_u.handle, id) ? TRUE : FALSE;
}

/* A second handle in the same call (RENAME target dir, LINK dir). */
static nfsstat3 fh_second(struct rpc_ctx *c, const nfs_fh3 *fh, struct vfs_id *out)
{
    const struct export *exp;
    int err = nfsd_handle_take(c, fh->data.data_val, fh->data.data_len, c->exp, &exp, out);
    return err == EBADMSG ? NFS3ERR_BADHANDLE : err == EXDEV ? NFS3ERR_XDEV
           : err ? NFS3ERR_STALE : NFS3_OK;
}

/* Copy a wire name into a C string, refusing what POSIX names cannot hold. */
static nfsstat3 name_take(const filename3 *n, char out[VFS_NAME_MAX + 1])
{
    if (n->filename3_len == 0)
        return NFS3ERR_NOENT;
    if (n->filename3_len > VFS_NAME_MAX)
        return NFS3ERR_NAMETOOLONG;
    if (memchr(n->filename3_val, 0, n->filename3_len))
        return NFS3ERR_INVAL;
    if (memchr(n->filename3_val, '/', n->filename3_len))
        return NFS3ERR_ACCES;
    memcpy(out, n->filename3_val, n->filename3_len);
    out[n->filename3_len] = 0;
    return NFS3_OK;
}

/* A name that is about to be created or removed: also not "." or "..". */
static nfsstat3 name_take_new(const filename3 *n, char out[VFS_NAME_MAX + 1])
{
    nfsstat3 st = name_take(n, out);
    if (st == NFS3ERR_NOENT)
        return NFS3ERR_INVAL;
    if (st == NFS3_OK && (!strcmp(out, ".") || !strcmp(out, "..")))
        return NFS3ERR_EXIST;
    return st;
}

/* ---- permissions ---- */

static bool cred_in_group(const struct nfs_cred *cr, uint32_t gid)
{
    if (cr->gid == gid)
        return true;
    for (uint32_t i = 0; i < cr->ngids; i++)
        if (cr->gids[i] == gid)
            return true;
    return false;
}

/* The rwx bits cr has on a node with attributes a. */
static unsigned perm_bits(const struct nfs_cred *cr, const struct vfs_attr *a)
{
    if (cr->uid == 0) {
        unsigned any_x = (a->mode & 0111) || a->type == VFS_DIR ? MAY_X : 0;
        return MAY_R | MAY_W | any_x;
    }
    if (cr->uid == a->uid)
        return (a->mode >> 6) & 7;
    if (cred_in_group(cr, a->gid))
        return (a->mode >> 3) & 7;
    return a->mode & 7;
}

int nfs3_perm_need(struct rpc_ctx *c, const struct vfs_attr *a, unsigned want)
{
    return (perm_bits(&c->cred, a) & want) == want ? 0 : EACCES;
}

/* Data access on a file: the owner may always read and write (like knfsd,
 * so that a file created 0444 can still be filled), and read is allowed with
 * execute (a client needs it to run a program). */
static int perm_data(struct rpc_ctx *c, const struct vfs_attr *a, unsigned want)
{
    if (c->cred.uid == a->uid)
        return 0;
    unsigned have = perm_bits(&c->cred, a);
    if (want == MAY_R && (have & (MAY_R | MAY_X)))
        return 0;
    return (have & want) == want ? 0 : EACCES;
}

/* Attributes of a directory the caller wants to change. */
static nfsstat3 dir_for_change(struct rpc_ctx *c, const struct vfs_id *dir, struct vfs_attr *a)
{
    int err = vfs_getattr(c->srv->vfs, dir, a);
    if (err)
        return nfs3_status_from_errno(err);
    if (a->type != VFS_DIR)
        return NFS3ERR_NOTDIR;
    if (nfs3_perm_need(c, a, MAY_W | MAY_X))
        return NFS3ERR_ACCES;
    return NFS3_OK;
}

/* Sticky directories: only the owner of the entry or of the directory (or
 * root) may remove it, rename it, or rename something onto it; others get
 * NFS3ERR_PERM, as from knfsd (EPERM, like a local sticky /tmp).  With
 * may_be_absent, a missing entry is no obstacle (a RENAME target). */
static nfsstat3 sticky_check(struct rpc_ctx *c, const struct vfs_id *dir,
                             const struct vfs_attr *da, const char *name,
                             bool may_be_absent)
{
    if (!(da->mode & S_ISVTX) || c->cred.uid == 0 || c->cred.uid == da->uid)
        return NFS3_OK;
    struct vfs_id child;
    struct vfs_attr ca;
    int err = vfs_lookup(c->srv->vfs, dir, name, &child, &ca);
    if (err == ENOENT && may_be_absent)
        return NFS3_OK;
    if (err)
        return nfs3_status_from_errno(err);
    return ca.uid == c->cred.uid ? NFS3_OK : NFS3ERR_PERM;
}

/* The wire attributes as vfs takes them; NFS3ERR_INVAL for a client time
 * of a billion nanoseconds or more (no time at all: utimensat(2) refuses
 * it with EINVAL too, and it would come back out of GETATTR as is). */
static nfsstat3 sattr_from(const sattr3 *in, struct vfs_sattr *out)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    memset(out, 0, sizeof *out);
    if (in->mode.set_it) {
        out->set_mode = true;
        out->mode = in->mode.set_mode3_u.mode & 07777;
    }
    if (in->uid.set_it) {
        out->set_uid = true;
        out->uid = in->uid.set_uid3_u.uid;
    }
    if (in->gid.set_it) {
        out->set_gid = true;
        out->gid = in->gid.set_gid3_u.gid;
    }
    if (in->size.set_it) {
        out->set_size = true;
        out->size = in->size.set_size3_u.size;
    }
    if (in->atime.set_it == SET_TO_SERVER_TIME) {
        out->set_atime = true;
        out->atime = now;
    } else if (in->atime.set_it == SET_TO_CLIENT_TIME) {
        out->set_atime = true;
        out->atime.tv_sec = in->atime.set_atime_u.atime.seconds;
        out->atime.tv_nsec = in->atime.set_atime_u.atime.nseconds;
    }
    if (in->mtime.set_it == SET_TO_SERVER_TIME) {
        out->set_mtime = true;
        out->mtime = now;
    } else if (in->mtime.set_it == SET_TO_CLIENT_TIME) {
        out->set_mtime = true;
        out->mtime.tv_sec = in->mtime.set_mtime_u.mtime.seconds;
        out->mtime.tv_nsec = in->mtime.set_mtime_u.mtime.nseconds;
    }
    if ((in->atime.set_it == SET_TO_CLIENT_TIME &&
         in->atime.set_atime_u.atime.nseconds >= 1000000000u) ||
        (in->mtime.set_it == SET_TO_CLIENT_TIME &&
         in->mtime.set_mtime_u.mtime.nseconds >= 1000000000u))
        return NFS3ERR_INVAL;
    return NFS3_OK;
}

/* Who may change what (POSIX chown/chmod/utimes/truncate rules). */
static nfsstat3 setattr_allowed(struct rpc_ctx *c, const struct vfs_attr *a,
                                const sattr3 *in, const struct vfs_sattr *s)
{
    bool root = c->cred.uid == 0, owner = c->cred.uid == a->uid;
    if (s->set_uid && s->uid != a->uid && !root)
        return NFS3ERR_PERM;
    if (s->set_gid && s->gid != a->gid && !root &&
        !(owner && cred_in_group(&c->cred, s->gid)))
        return NFS3ERR_PERM;
    if (s->set_mode && !owner && !root)
        return NFS3ERR_PERM;
    if (s->set_size && perm_data(c, a, MAY_W))
        return NFS3ERR_ACCES;
    bool client_time = in->atime.set_it == SET_TO_CLIENT_TIME ||
                       in->mtime.set_it == SET_TO_CLIENT_TIME;
    if (client_time && !owner && !root)
        return NFS3ERR_PERM;
    if ((s->set_atime || s->set_mtime) && !owner && !root && nfs3_perm_need(c, a, MAY_W))
        return NFS3ERR_ACCES;
    return NFS3_OK;
}

/* The mode without the privilege bits a change of owner or a write takes away:
 * setuid always, setgid only with group execute (without it, it marks mandatory
 * locking and stays), as Linux's notify_change and file_remove_privs do. */
static uint32_t mode_without_privs(uint32_t mode)
{
    mode &= ~(uint32_t)S_ISUID;
    if (mode & S_IXGRP)
        mode &= ~(uint32_t)S_ISGID;
    return mode;
}

/* What knfsd's trip through notify_change adds to a SETATTR: a chown of a
 * non-directory clears setuid/setgid (even by root; the Linux client leaves
 * this to the server and sends no mode with a chown), and a chmod by someone
 * neither root nor in the file's group cannot set setgid. */
static void setattr_sanitize(struct rpc_ctx *c, const struct vfs_attr *a,
                             struct vfs_sattr *s)
{
    if (a->type != VFS_DIR && (s->set_uid || s->set_gid)) {
        uint32_t from = s->set_mode ? s->mode : a->mode & 07777;
        uint32_t to = mode_without_privs(from);
        if (to != from || s->set_mode) {
            s->set_mode = true;
            s->mode = to;
        }
    }
    if (s->set_mode && c->cred.uid != 0 &&
        !cred_in_group(&c->cred, s->set_gid ? s->gid : a->gid))
        s->mode &= ~(uint32_t)S_ISGID;
}

/* ---- procedures ---- */

static void nfs3_null(struct rpc_ctx *c, void *args, void *res)
{
}

static void nfs3_getattr(struct rpc_ctx *c, void *args, void *res)
{
    GETATTR3res *r = res;
    struct vfs_attr a;
    int err = vfs_getattr(c->srv->vfs, &c->id, &a);
    r->status = nfs3_status_from_errno(err);
    if (!err)
        fattr_from(&r->GETATTR3res_u.resok.obj_attributes, &a);
}

static void nfs3_setattr(struct rpc_ctx *c, void *args, void *res)
{
    SETATTR3args *a = args;
    SETATTR3res *r = res;
    wcc_data *w = &r->SETATTR3res_u.resfail.obj_wcc;   /* same place in both arms */
    struct vfs_attr pre, post;
    int err = vfs_getattr(c->srv->vfs, &c->id, &pre);
    if (err) {
        r->status = nfs3_status_from_errno(err);
        return;
    }
    if (a->guard.check) {
        nfstime3 want = a->guard.sattrguard3_u.obj_ctime, have = nfstime(pre.ctime);
        if (want.seconds != have.seconds || want.nseconds != have.nseconds) {
            r->status = NFS3ERR_NOT_SYNC;
            wcc_set(w, &pre, &pre);
            return;
        }
    }
    struct vfs_sattr s;
    r->status = sattr_from(&a->new_attributes, &s);
    /* A symlink's mode means nothing (Linux has no lchmod): knfsd drops
     * mode changes of one, and so do we, before any permission check. */
    if (pre.type == VFS_LNK)
        s.set_mode = false;
    if (r->status == NFS3_OK)
        r->status = setattr_allowed(c, &pre, &a->new_attributes, &s);
    if (r->status == NFS3_OK && s.set_size && pre.type != VFS_REG)
        r->status = pre.type == VFS_DIR ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
    if (r->status != NFS3_OK) {
        wcc_set(w, &pre, &pre);
        return;
    }
    setattr_sanitize(c, &pre, &s);
    if (!s.set_mode && !s.set_uid && !s.set_gid && !s.set_size && !s.set_atime &&
        !s.set_mtime) {
        /* Nothing to change (an empty sattr3, or only a symlink's mode):
         * no new ctime, and no write-back of the run for it (knfsd
         * returns at once too). */
        wcc_set(w, &pre, &pre);
        return;
    }
    err = vfs_setattr(c->srv->vfs, &c->id, &s, NULL, &post);
    r->status = nfs3_status_from_errno(err);
    if (err)
        wcc_after_fail(c, w, &pre, &c->id);
    else
        wcc_set(w, &pre, &post);
}

static void nfs3_lookup(struct rpc_ctx *c, void *args, void *res)
{
    LOOKUP3args *a = args;
    LOOKUP3res *r = res;
    struct vfs_attr da, oa;
    char name[VFS_NAME_MAX + 1];
    int err = vfs_getattr(c->srv->vfs, &c->id, &da);
    if (err) {
        r->status = nfs3_status_from_errno(err);
        return;
    }
    nfs3_post_attr_set(&r->LOOKUP3res_u.resfail.dir_attributes, &da);
    if (da.type != VFS_DIR) {
        r->status = NFS3ERR_NOTDIR;
        return;
    }
    if ((r->status = name_take(&a->what.name, name)) != NFS3_OK)
        return;
    if (nfs3_perm_need(c, &da, MAY_X)) {
        r->status = NFS3ERR_ACCES;
        return;
    }
    struct vfs_id out;
    if (!strcmp(name, ".")) {
        out = c->id;
        oa = da;
    } else if (!strcmp(name, "..")) {
        err = nfsd_export_parent(c->srv, c->exp, &c->id, &out);
        if (!err)
            err = vfs_getattr(c->srv->vfs, &out, &oa);
    } else {
        err = vfs_lookup(c->srv->vfs, &c->id, name, &out, &oa);
    }
    if (err) {
        r->status = nfs3_status_from_errno(err);
        return;
    }
    LOOKUP3resok *ok = &r->LOOKUP3res_u.resok;
    if (!fh_make(c, &ok->object, &out)) {
        r->status = NFS3ERR_SERVERFAULT;
        return;
    }
    nfs3_post_attr_set(&ok->obj_attributes, &oa);
    nfs3_post_attr_set(&ok->dir_attributes, &da);
}

static void nfs3_access(struct rpc_ctx *c, void *args, void *res)
{
    ACCESS3args *a = args;
    ACCESS3res *r = res;
    struct vfs_attr at;
    int err = vfs_getattr(c->srv->vfs, &c->id, &at);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    /* The mode bits only: the owner's override of perm_data applies inside
     * READ and WRITE (as in knfsd), never here, or a client would let the
     * owner open a 0400 file for writing. */
    unsigned have = perm_bits(&c->cred, &at);
    uint32_t ok = 0;
    if (have & MAY_R)
        ok |= ACCESS3_READ;
    if (at.type == VFS_DIR) {
        if (have & MAY_X) ok |= ACCESS3_LOOKUP;
        if ((have & (MAY_W | MAY_X)) == (MAY_W | MAY_X))
            ok |= ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    } else {
        if (have & MAY_X) ok |= ACCESS3_EXECUTE;
        if (have & MAY_W)
            ok |= ACCESS3_MODIFY | ACCESS3_EXTEND;
    }
    if (!c->opts->rw || c->srv->vfs_read_only)
        ok &= ~(uint32_t)(ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE);
    r->ACCESS3res_u.resok.access = a->access & ok;
    nfs3_post_attr_set(&r->ACCESS3res_u.resok.obj_attributes, &at);
}

static void nfs3_readlink(struct rpc_ctx *c, void *args, void *res)
{
    READLINK3res *r = res;
    char *buf = arena_alloc(&c->arena, VFS_PATH_MAX);
    size_t len = 0;
    if (!buf) {
        r->status = NFS3ERR_SERVERFAULT;
        return;
    }
    int err = vfs_readlink(c->srv->vfs, &c->id, buf, VFS_PATH_MAX, &len);
    r->status = nfs3_status_from_errno(err);
    post_attr_get(c, &r->READLINK3res_u.resfail.symlink_attributes, &c->id);
    if (err)
        return;
    r->READLINK3res_u.resok.data.nfspath3_len = (u_int)len;
    r->READLINK3res_u.resok.data.nfspath3_val = buf;
}

/* READ3res up to and including the data length: the data itself and its
 * padding follow as the reply's tail (see nfs3_read). */
static bool_t xdr_read3res_head(XDR *x, READ3res *r)
{
    if (!xdr_nfsstat3(x, &r->status))
        return FALSE;
    if (r->status != NFS3_OK)
        return xdr_READ3resfail(x, &r->READ3res_u.resfail);
    READ3resok *ok = &r->READ3res_u.resok;
    return xdr_post_op_attr(x, &ok->file_attributes) && xdr_count3(x, &ok->count) &&
           xdr_bool(x, &ok->eof) && xdr_u_int(x, &ok->data.data_len);
}

static void nfs3_read(struct rpc_ctx *c, void *args, void *res)
{
    READ3args *a = args;
    READ3res *r = res;
    struct vfs_attr at;
    int err = vfs_getattr(c->srv->vfs, &c->id, &at);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    nfs3_post_attr_set(&r->READ3res_u.resfail.file_attributes, &at);
    if (at.type != VFS_REG) {
        r->status = at.type == VFS_DIR ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
        return;
    }
    if (perm_data(c, &at, MAY_R)) {
        r->status = NFS3ERR_ACCES;
        return;
    }
    size_t count = a->count;
    if (count > nfsd_max_io(c))
        count = nfsd_max_io(c);
    if (count > c->max_reply - 512)
        count = c->max_reply - 512;
    READ3resok *ok = &r->READ3res_u.resok;
    /* Not zeroed: only the got bytes vfs_read fills are sent, and zeroing
     * up to 1 MiB per READ was a full extra pass over the data.  malloc'd,
     * not from the arena: the transport sends the data from here after the
     * encoded head (no copy into the reply) and frees it. */
    char *buf = malloc(count + 3);
    if (!buf) {
        r->status = NFS3ERR_SERVERFAULT;
        return;
    }
    size_t got = 0;
    bool eof = false;
    if (a->offset < at.size && count)
        err = vfs_read(c->srv->vfs, &c->id, a->offset, buf, count, &got, &eof);
    if (err) {
        free(buf);
        r->status = nfs3_status_from_errno(err);
        return;
    }
    if (a->offset + got >= at.size)
        eof = true;
    ok->count = (count3)got;
    ok->eof = eof ? TRUE : FALSE;
    ok->data.data_len = (u_int)got;
    ok->data.data_val = buf;
    size_t padded = (got + 3) & ~(size_t)3;
    memset(buf + got, 0, padded - got);     /* XDR padding */
    c->reply_tail = (uint8_t *)buf;
    c->reply_tail_len = padded;
    c->reply_head_proc = (xdrproc_t)xdr_read3res_head;
    /* status, attributes, count, eof, data length */
    c->reply_size_hint = 4 + 4 + 84 + 4 + 4 + 4;
}

static void nfs3_write(struct rpc_ctx *c, void *args, void *res)
{
    WRITE3args *a = args;
    WRITE3res *r = res;
    wcc_data *w = &r->WRITE3res_u.resfail.file_wcc;
    struct vfs_attr pre, post;
    int err = vfs_getattr(c->srv->vfs, &c->id, &pre);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    if (pre.type != VFS_REG)
        r->status = pre.type == VFS_DIR ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
    else if (perm_data(c, &pre, MAY_W))
        r->status = NFS3ERR_ACCES;
    else if (a->count != a->data.data_len)
        /* count and the data's length must agree: knfsd refuses either
         * mismatch whole (GARBAGE_ARGS), never writes a part of it. */
        r->status = NFS3ERR_INVAL;
    if (r->status != NFS3_OK) {
        wcc_set(w, &pre, &pre);
        return;
    }
    /* A write by anyone but root takes the privilege bits away, as on Linux
     * (file_remove_privs: the writer lacks CAP_FSETID). */
    if (c->cred.uid != 0 && mode_without_privs(pre.mode & 07777) != (pre.mode & 07777)) {
        struct vfs_sattr kill = { .set_mode = true, .mode = mode_without_privs(pre.mode & 07777) };
        if ((err = vfs_setattr(c->srv->vfs, &c->id, &kill, NULL, NULL)) != 0) {
            r->status = nfs3_status_from_errno(err);
            wcc_after_fail(c, w, &pre, &c->id);
            return;
        }
    }
    bool sync = a->stable != UNSTABLE;
    err = vfs_write(c->srv->vfs, &c->id, a->offset, a->data.data_val, a->count, sync,
                    NULL, &post);
    r->status = nfs3_status_from_errno(err);
    if (err) {
        wcc_after_fail(c, w, &pre, &c->id);
        return;
    }
    WRITE3resok *ok = &r->WRITE3res_u.resok;
    wcc_set(&ok->file_wcc, &pre, &post);
    ok->count = a->count;
    ok->committed = sync ? FILE_SYNC : UNSTABLE;
    memcpy(ok->verf, c->srv->write_verf, NFS3_WRITEVERFSIZE);
}

/* The shared tail of CREATE, MKDIR, SYMLINK and MKNOD. */
struct made {
    post_op_fh3 *obj;
    post_op_attr *obj_attributes;
    wcc_data *ok_wcc;           /* resok.dir_wcc */
    wcc_data *fail_wcc;         /* resfail.dir_wcc: another place in the union */
};

static nfsstat3 make_node(struct rpc_ctx *c, const char *name, enum vfs_type type,
                          struct vfs_sattr *s, uint32_t major, uint32_t minor,
                          const char *target, const struct made *m)
{
    struct vfs_attr dpre, dpost, oa;
    nfsstat3 st = dir_for_change(c, &c->id, &dpre);
    if (st != NFS3_OK) {
        wcc_set(m->fail_wcc, NULL, st == NFS3ERR_ACCES || st == NFS3ERR_NOTDIR ? &dpre : NULL);
        return st;
    }
    /* New nodes belong to the caller; only root may give them away. */
    bool chown_after = c->cred.uid == 0 && (s->set_uid || s->set_gid);
    struct vfs_sattr owner = { .set_uid = s->set_uid, .set_gid = s->set_gid,
                               .uid = s->uid, .gid = s->gid };
    s->set_uid = s->set_gid = false;
    struct vfs_cred cred = { c->cred.uid, c->cred.gid };
    /* setgid directories pass their group on, as in POSIX, and to a new
     * directory their setgid bit too (as Linux file systems and knfsd do:
     * the client's MKDIR mode never carries it). */
    if (dpre.mode & S_ISGID) {
        cred.gid = dpre.gid;
        if (type == VFS_DIR && s->set_mode)
            s->mode |= S_ISGID;
    }
    struct vfs_id out;
    int err = vfs_create(c->srv->vfs, &c->id, name, type, s, &cred, major, minor,
                         target, &out, &oa, NULL, &dpost);
    if (err) {
        wcc_after_fail(c, m->fail_wcc, &dpre, &c->id);
        return nfs3_status_from_errno(err);
    }
    if (chown_after)
        vfs_setattr(c->srv->vfs, &out, &owner, NULL, &oa);
    wcc_set(m->ok_wcc, &dpre, &dpost);
    nfs3_post_fh_set(c, m->obj, &out);
    nfs3_post_attr_set(m->obj_attributes, &oa);
    return NFS3_OK;
}

static void verf_split(const char *verf, uint32_t *hi, uint32_t *lo)
{
    uint8_t b[8];
    memcpy(b, verf, 8);
    *hi = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
    *lo = ((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7];
}

static void nfs3_create(struct rpc_ctx *c, void *args, void *res)
{
    CREATE3args *a = args;
    CREATE3res *r = res;
    CREATE3resok *ok = &r->CREATE3res_u.resok;
    struct made m = { &ok->obj, &ok->obj_attributes, &ok->dir_wcc,
                      &r->CREATE3res_u.resfail.dir_wcc };
    char name[VFS_NAME_MAX + 1];
    if ((r->status = name_take_new(&a->where.name, name)) != NFS3_OK)
        return;
    struct vfs_sattr s;
    uint32_t vhi = 0, vlo = 0;
    createmode3 mode = a->how.mode;
    if (mode == EXCLUSIVE) {
        /* The verifier lives in atime/mtime until the client's SETATTR,
         * so a retransmitted CREATE finds and accepts its own file. */
        verf_split(a->how.createhow3_u.verf, &vhi, &vlo);
        memset(&s, 0, sizeof s);
        s.set_mode = true;
        s.mode = 0600;
        s.set_atime = s.set_mtime = true;
        s.atime.tv_sec = vhi;
        s.mtime.tv_sec = vlo;
    } else {
        if ((r->status = sattr_from(&a->how.createhow3_u.obj_attributes, &s)) != NFS3_OK)
            return;
        if (!s.set_mode) {
            s.set_mode = true;
            s.mode = 0644;
        }
    }
    /* A new file gets every initial attribute given, its size too, as from
     * knfsd (GUARDED dropped it); an existing one, under UNCHECKED, only
     * the size. */
    bool truncate = mode == UNCHECKED && s.set_size;
    uint64_t new_size = s.size;
    r->status = make_node(c, name, VFS_REG, &s, 0, 0, NULL, &m);
    if (r->status != NFS3ERR_EXIST || mode == GUARDED)
        return;
    /* UNCHECKED: the existing file is the result; EXCLUSIVE: only if it
     * carries our verifier. */
    struct vfs_id out;
    struct vfs_attr oa, dpost;
    int err = vfs_lookup(c->srv->vfs, &c->id, name, &out, &oa);
    if (err || oa.type != VFS_REG)
        return;
    if (mode == EXCLUSIVE &&
        ((uint32_t)oa.atime.tv_sec != vhi || (uint32_t)oa.mtime.tv_sec != vlo))
        return;
    if (truncate) {
        if (perm_data(c, &oa, MAY_W)) {
            r->status = NFS3ERR_ACCES;
            return;
        }
        struct vfs_sattr ts = { .set_size = true, .size = new_size };
        if ((err = vfs_setattr(c->srv->vfs, &out, &ts, NULL, &oa))) {
            r->status = nfs3_status_from_errno(err);
            return;
        }
    }
    r->status = NFS3_OK;
    memset(ok, 0, sizeof *ok);
    nfs3_post_fh_set(c, &ok->obj, &out);
    nfs3_post_attr_set(&ok->obj_attributes, &oa);
    nfs3_post_attr_set(&ok->dir_wcc.after, vfs_getattr(c->srv->vfs, &c->id, &dpost) ? NULL : &dpost);
}

static void nfs3_mkdir(struct rpc_ctx *c, void *args, void *res)
{
    MKDIR3args *a = args;
    MKDIR3res *r = res;
    MKDIR3resok *ok = &r->MKDIR3res_u.resok;
    struct made m = { &ok->obj, &ok->obj_attributes, &ok->dir_wcc,
                      &r->MKDIR3res_u.resfail.dir_wcc };
    char name[VFS_NAME_MAX + 1];
    if ((r->status = name_take_new(&a->where.name, name)) != NFS3_OK)
        return;
    struct vfs_sattr s;
    if ((r->status = sattr_from(&a->attributes, &s)) != NFS3_OK)
        return;
    s.set_size = false;
    if (!s.set_mode) {
        s.set_mode = true;
        s.mode = 0755;
    }
    r->status = make_node(c, name, VFS_DIR, &s, 0, 0, NULL, &m);
}

static void nfs3_symlink(struct rpc_ctx *c, void *args, void *res)
{
    SYMLINK3args *a = args;
    SYMLINK3res *r = res;
    SYMLINK3resok *ok = &r->SYMLINK3res_u.resok;
    struct made m = { &ok->obj, &ok->obj_attributes, &ok->dir_wcc,
                      &r->SYMLINK3res_u.resfail.dir_wcc };
    char name[VFS_NAME_MAX + 1];
    if ((r->status = name_take_new(&a->where.name, name)) != NFS3_OK)
        return;
    const nfspath3 *t = &a->symlink.symlink_data;
    if (t->nfspath3_len == 0 || memchr(t->nfspath3_val, 0, t->nfspath3_len)) {
        r->status = NFS3ERR_INVAL;
        return;
    }
    if (t->nfspath3_len >= VFS_PATH_MAX) {
        r->status = NFS3ERR_NAMETOOLONG;
        return;
    }
    char *target = arena_alloc(&c->arena, t->nfspath3_len + 1);
    if (!target) {
        r->status = NFS3ERR_SERVERFAULT;
        return;
    }
    memcpy(target, t->nfspath3_val, t->nfspath3_len);
    struct vfs_sattr s;
    if ((r->status = sattr_from(&a->symlink.symlink_attributes, &s)) != NFS3_OK)
        return;
    s.set_size = false;
    s.set_mode = true;
    s.mode = 0777;
    r->status = make_node(c, name, VFS_LNK, &s, 0, 0, target, &m);
}

static void nfs3_mknod(struct rpc_ctx *c, void *args, void *res)
{
    MKNOD3args *a = args;
    MKNOD3res *r = res;
    MKNOD3resok *ok = &r->MKNOD3res_u.resok;
    struct made m = { &ok->obj, &ok->obj_attributes, &ok->dir_wcc,
                      &r->MKNOD3res_u.resfail.dir_wcc };
    char name[VFS_NAME_MAX + 1];
    if ((r->status = name_take_new(&a->where.name, name)) != NFS3_OK)
        return;
    struct vfs_sattr s;
    uint32_t major = 0, minor = 0;
    enum vfs_type type;
    switch (a->what.type) {
    case NF3CHR:
    case NF3BLK:
        if (c->cred.uid != 0) {     /* device nodes need privilege, as mknod(2) */
            r->status = NFS3ERR_PERM;
            return;
        }
        type = a->what.type == NF3CHR ? VFS_CHR : VFS_BLK;
        r->status = sattr_from(&a->what.mknoddata3_u.device.dev_attributes, &s);
        major = a->what.mknoddata3_u.device.spec.specdata1;
        minor = a->what.mknoddata3_u.device.spec.specdata2;
        break;
    case NF3SOCK:
    case NF3FIFO:
        type = a->what.type == NF3SOCK ? VFS_SOCK : VFS_FIFO;
        r->status = sattr_from(&a->what.mknoddata3_u.pipe_attributes, &s);
        break;
    default:
        r->status = NFS3ERR_BADTYPE;
        return;
    }
    if (r->status != NFS3_OK)
        return;
    s.set_size = false;
    if (!s.set_mode) {
        s.set_mode = true;
        s.mode = 0644;
    }
    r->status = make_node(c, name, type, &s, major, minor, NULL, &m);
}

static void remove_common(struct rpc_ctx *c, const diropargs3 *what, bool is_dir,
                          nfsstat3 *status, wcc_data *w)
{
    char name[VFS_NAME_MAX + 1];
    if ((*status = name_take(&what->name, name)) != NFS3_OK)
        return;
    if (!strcmp(name, ".") || !strcmp(name, "..")) {
        *status = !strcmp(name, ".") ? NFS3ERR_INVAL : NFS3ERR_NOTEMPTY;
        return;
    }
    struct vfs_attr dpre, dpost;
    *status = dir_for_change(c, &c->id, &dpre);
    if (*status == NFS3_OK)
        *status = sticky_check(c, &c->id, &dpre, name, false);
    if (*status != NFS3_OK) {
        wcc_after_fail(c, w, NULL, &c->id);
        return;
    }
    int err = vfs_remove(c->srv->vfs, &c->id, name, is_dir, NULL, &dpost);
    *status = nfs3_status_from_errno(err);
    if (err)
        wcc_after_fail(c, w, &dpre, &c->id);
    else
        wcc_set(w, &dpre, &dpost);
}

static void nfs3_remove(struct rpc_ctx *c, void *args, void *res)
{
    REMOVE3res *r = res;
    remove_common(c, &((REMOVE3args *)args)->object, false, &r->status,
                  &r->REMOVE3res_u.resfail.dir_wcc);
}

static void nfs3_rmdir(struct rpc_ctx *c, void *args, void *res)
{
    RMDIR3res *r = res;
    remove_common(c, &((RMDIR3args *)args)->object, true, &r->status,
                  &r->RMDIR3res_u.resfail.dir_wcc);
}

static void nfs3_rename(struct rpc_ctx *c, void *args, void *res)
{
    RENAME3args *a = args;
    RENAME3res *r = res;
    RENAME3resfail *f = &r->RENAME3res_u.resfail;
    char from[VFS_NAME_MAX + 1], to[VFS_NAME_MAX + 1];
    struct vfs_id todir;
    if ((r->status = fh_second(c, &a->to.dir, &todir)) != NFS3_OK)
        return;
    if ((r->status = name_take_new(&a->from.name, from)) != NFS3_OK ||
        (r->status = name_take_new(&a->to.name, to)) != NFS3_OK) {
        if (r->status == NFS3ERR_EXIST)
            r->status = NFS3ERR_INVAL;
        return;
    }
    struct vfs_attr spre, dpre, spost, dpost;
    if ((r->status = dir_for_change(c, &c->id, &spre)) != NFS3_OK ||
        (r->status = dir_for_change(c, &todir, &dpre)) != NFS3_OK ||
        (r->status = sticky_check(c, &c->id, &spre, from, false)) != NFS3_OK ||
        (r->status = sticky_check(c, &todir, &dpre, to, true)) != NFS3_OK)
        return;
    int err = vfs_rename(c->srv->vfs, &c->id, from, &todir, to, NULL, &spost, NULL, &dpost);
    r->status = nfs3_status_from_errno(err);
    if (err) {
        wcc_after_fail(c, &f->fromdir_wcc, &spre, &c->id);
        wcc_after_fail(c, &f->todir_wcc, &dpre, &todir);
        return;
    }
    wcc_set(&f->fromdir_wcc, &spre, &spost);
    wcc_set(&f->todir_wcc, &dpre, &dpost);
}

static void nfs3_link(struct rpc_ctx *c, void *args, void *res)
{
    LINK3args *a = args;
    LINK3res *r = res;
    LINK3resfail *f = &r->LINK3res_u.resfail;
    char name[VFS_NAME_MAX + 1];
    struct vfs_id dir;
    struct vfs_attr fa, dpre, dpost;
    if ((r->status = fh_second(c, &a->link.dir, &dir)) != NFS3_OK ||
        (r->status = name_take_new(&a->link.name, name)) != NFS3_OK)
        return;
    int err = vfs_getattr(c->srv->vfs, &c->id, &fa);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    if (fa.type == VFS_DIR) {
        r->status = NFS3ERR_ISDIR;
        return;
    }
    if ((r->status = dir_for_change(c, &dir, &dpre)) != NFS3_OK) {
        nfs3_post_attr_set(&f->file_attributes, &fa);
        return;
    }
    err = vfs_link(c->srv->vfs, &c->id, &dir, name, &fa, NULL, &dpost);
    r->status = nfs3_status_from_errno(err);
    if (err) {
        post_attr_get(c, &f->file_attributes, &c->id);
        wcc_after_fail(c, &f->linkdir_wcc, &dpre, &dir);
        return;
    }
    nfs3_post_attr_set(&f->file_attributes, &fa);
    wcc_set(&f->linkdir_wcc, &dpre, &dpost);
}

static void nfs3_fsstat(struct rpc_ctx *c, void *args, void *res)
{
    FSSTAT3res *r = res;
    struct vfs_statfs st;
    int err = vfs_statfs(c->srv->vfs, &c->id, &st);
    r->status = nfs3_status_from_errno(err);
    post_attr_get(c, &r->FSSTAT3res_u.resfail.obj_attributes, &c->id);
    if (err)
        return;
    FSSTAT3resok *ok = &r->FSSTAT3res_u.resok;
    ok->tbytes = st.tbytes;
    ok->fbytes = st.fbytes;
    ok->abytes = st.abytes;
    ok->tfiles = st.tfiles;
    ok->ffiles = st.ffiles;
    ok->afiles = st.afiles;
    ok->invarsec = 0;
}

static void nfs3_fsinfo(struct rpc_ctx *c, void *args, void *res)
{
    FSINFO3res *r = res;
    FSINFO3resok *ok = &r->FSINFO3res_u.resok;
    struct vfs_attr a;
    int err = vfs_getattr(c->srv->vfs, &c->id, &a);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    nfs3_post_attr_set(&ok->obj_attributes, &a);
    uint32_t io = (uint32_t)nfsd_max_io(c);
    ok->rtmax = ok->rtpref = io;
    ok->wtmax = ok->wtpref = io;
    ok->rtmult = ok->wtmult = 4096;
    ok->dtpref = NFSD_DTPREF < io ? NFSD_DTPREF : io;
    ok->maxfilesize = vfs_max_file_size(c->srv->vfs);
    ok->time_delta.seconds = 0;
    ok->time_delta.nseconds = 1;
    ok->properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
}

static void nfs3_pathconf(struct rpc_ctx *c, void *args, void *res)
{
    PATHCONF3res *r = res;
    PATHCONF3resok *ok = &r->PATHCONF3res_u.resok;
    struct vfs_attr a;
    int err = vfs_getattr(c->srv->vfs, &c->id, &a);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    nfs3_post_attr_set(&ok->obj_attributes, &a);
    ok->linkmax = 65000;
    ok->name_max = VFS_NAME_MAX;
    ok->no_trunc = TRUE;
    ok->chown_restricted = TRUE;
    ok->case_insensitive = FALSE;
    ok->case_preserving = TRUE;
}

static void nfs3_commit(struct rpc_ctx *c, void *args, void *res)
{
    COMMIT3res *r = res;
    struct vfs_attr pre, post;
    int err = vfs_getattr(c->srv->vfs, &c->id, &pre);
    if ((r->status = nfs3_status_from_errno(err)) != NFS3_OK)
        return;
    if (pre.type != VFS_REG) {
        r->status = pre.type == VFS_DIR ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
        return;
    }
    /* Nothing was written through a read-only export (as knfsd).  Not
     * PROC_MODIFIES: that would first fetch an index-first run's absent
     * data, which a COMMIT never needs. */
    if (!c->opts->rw || c->srv->vfs_read_only) {
        r->status = NFS3ERR_ROFS;
        wcc_set(&r->COMMIT3res_u.resfail.file_wcc, &pre, &pre);
        return;
    }
    err = vfs_commit(c->srv->vfs, &c->id);
    r->status = nfs3_status_from_errno(err);
    wcc_set(&r->COMMIT3res_u.resfail.file_wcc, &pre,
            vfs_getattr(c->srv->vfs, &c->id, &post) ? NULL : &post);
    if (!err)
        memcpy(r->COMMIT3res_u.resok.verf, c->srv->write_verf, NFS3_WRITEVERFSIZE);
}

#define P(name, T, fn, flags) \
    { name, (xdrproc_t)xdr_##T##3args, sizeof(T##3args), \
      (xdrproc_t)xdr_##T##3res, sizeof(T##3res), fn, flags }

static const struct rpc_proc nfs3_procs[] = {
    { "NULL", (xdrproc_t)nfsd_xdr_void, 0, (xdrproc_t)nfsd_xdr_void, 0, nfs3_null, 0 },
    P("GETATTR", GETATTR, nfs3_getattr, PROC_NEEDS_FH),
    P("SETATTR", SETATTR, nfs3_setattr, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("LOOKUP", LOOKUP, nfs3_lookup, PROC_NEEDS_FH),
    P("ACCESS", ACCESS, nfs3_access, PROC_NEEDS_FH),
    P("READLINK", READLINK, nfs3_readlink, PROC_NEEDS_FH),
    P("READ", READ, nfs3_read, PROC_NEEDS_FH),
    P("WRITE", WRITE, nfs3_write, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("CREATE", CREATE, nfs3_create, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("MKDIR", MKDIR, nfs3_mkdir, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("SYMLINK", SYMLINK, nfs3_symlink, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("MKNOD", MKNOD, nfs3_mknod, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("REMOVE", REMOVE, nfs3_remove, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("RMDIR", RMDIR, nfs3_rmdir, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("RENAME", RENAME, nfs3_rename, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("LINK", LINK, nfs3_link, PROC_NEEDS_FH | PROC_MODIFIES | PROC_DRC),
    P("READDIR", READDIR, nfs3_readdir, PROC_NEEDS_FH),
    /* READDIRPLUS replies: encoded entry by entry (nfs3_xdr_fast.c). */
    { "READDIRPLUS", (xdrproc_t)xdr_READDIRPLUS3args, sizeof(READDIRPLUS3args),
      (xdrproc_t)nfsd_xdr_READDIRPLUS3res, sizeof(READDIRPLUS3res),
      nfs3_readdirplus, PROC_NEEDS_FH },
    P("FSSTAT", FSSTAT, nfs3_fsstat, PROC_NEEDS_FH),
    P("FSINFO", FSINFO, nfs3_fsinfo, PROC_NEEDS_FH),
    P("PATHCONF", PATHCONF, nfs3_pathconf, PROC_NEEDS_FH),
    P("COMMIT", COMMIT, nfs3_commit, PROC_NEEDS_FH),
};

const struct rpc_program nfs3_program = {
    "NFS", NFS_PROG, NFS_VERS, nfs3_procs, sizeof nfs3_procs / sizeof nfs3_procs[0]
};
