/* nfs3_readdir.c: the NFSv3 READDIR and READDIRPLUS procedures: the checks, "." and "..", the entries vfs lists packed into the reply within count, dircount and maxcount, cookie verifiers, and pages kept in and answered from the listing cache (nfsd/listcache.h). */
#include <stdlib.h>
#include <string.h>

#include "nfsd/nfs3_internal.h"
#include "nfsd/nfs3_status.h"
#include "nfsd/listcache.h"
#include "nfsd/nfs3_xdr_fast.h"

/* Readdir replies stop after this many entries, whatever the count: the
 * rpcgen list encoder recurses once per entry. */
#define READDIR_MAX_ENTRIES 4096

/* ---- READDIR / READDIRPLUS ---- */

static uint32_t xdr_pad(uint32_t n) { return (n + 3) & ~3u; }

/* The callback's stop value: negative, so never confused with an errno. */
#define DIR_FULL (-1)

struct dir_fill {
    struct rpc_ctx *c;
    bool plus;
    size_t used, limit;             /* whole reply bytes vs count/maxcount */
    size_t dir_used, dir_limit;     /* READDIRPLUS dircount */
    unsigned n;
    bool nomem;
    entry3 *head, **tail;
    entryplus3 *phead, **ptail;
};

static int dir_fill_cb(void *arg, const struct vfs_dirent *de)
{
    struct dir_fill *f = arg;
    uint32_t nl = (uint32_t)strlen(de->name);
    size_t dir_part = 8 + 4 + xdr_pad(nl) + 8;
    size_t need = 4 + dir_part;
    if (f->plus)
        need += 4 + 84 + 4 + 4 + FH_MAX;
    if (f->n >= READDIR_MAX_ENTRIES || f->used + need > f->limit ||
        (f->plus && f->dir_used + dir_part > f->dir_limit))
        return DIR_FULL;
    char *name = arena_alloc(&f->c->arena, nl + 1);
    if (!name) {
        f->nomem = true;
        return DIR_FULL;
    }
    memcpy(name, de->name, nl);
    if (f->plus) {
        entryplus3 *e = arena_alloc(&f->c->arena, sizeof *e);
        if (!e) {
            f->nomem = true;
            return DIR_FULL;
        }
        e->fileid = de->fileid;
        e->name.filename3_len = nl;
        e->name.filename3_val = name;
        e->cookie = de->cookie;
        nfs3_post_attr_set(&e->name_attributes, de->a);
        if (de->id)
            nfs3_post_fh_set(f->c, &e->name_handle, de->id);
        *f->ptail = e;
        f->ptail = &e->nextentry;
    } else {
        entry3 *e = arena_alloc(&f->c->arena, sizeof *e);
        if (!e) {
            f->nomem = true;
            return DIR_FULL;
        }
        e->fileid = de->fileid;
        e->name.filename3_len = nl;
        e->name.filename3_val = name;
        e->cookie = de->cookie;
        *f->tail = e;
        f->tail = &e->nextentry;
    }
    f->used += need;
    f->dir_used += dir_part;
    f->n++;
    return 0;
}

static void verf_put(char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (char)(v & 0xff);
}

static uint64_t verf_get(const char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)in[i];
    return v;
}

/* The checks before a listing: dir attributes (into dir_attr), a
 * directory, readable; clamps f's limit to the transport. */
static nfsstat3 readdir_check(struct rpc_ctx *c, struct dir_fill *f,
                              post_op_attr *dir_attr, struct vfs_attr *da)
{
    int err = vfs_getattr(c->srv->vfs, &c->id, da);
    if (err)
        return nfs3_status_from_errno(err);
    nfs3_post_attr_set(dir_attr, da);
    if (da->type != VFS_DIR)
        return NFS3ERR_NOTDIR;
    if (nfs3_perm_need(c, da, MAY_R))
        return NFS3ERR_ACCES;
    if (f->limit > nfsd_max_io(c))
        f->limit = nfsd_max_io(c);
    if (f->limit > c->max_reply - 256)
        f->limit = c->max_reply - 256;
    return NFS3_OK;
}

/* Shared READDIR/READDIRPLUS body after readdir_check; returns the status,
 * fills eof/verf. */
static nfsstat3 readdir_list(struct rpc_ctx *c, uint64_t cookie, const char *verf_in,
                             struct dir_fill *f, const struct vfs_attr *da,
                             char verf_out[8], bool_t *eof)
{
    uint64_t verf = 0;
    f->tail = &f->head;
    f->ptail = &f->phead;
    /* "." and ".." come first, with the cookies 1 and 2 that vfs never
     * gives to an entry; vfs lists the rest. */
    int err = 0;
    if (cookie == 0) {
        struct vfs_dirent dot = { ".", da->fileid, 1, &c->id, da };
        err = dir_fill_cb(f, &dot);
    }
    if (!err && cookie <= 1) {
        struct vfs_id pid;
        struct vfs_attr pa;
        int perr = nfsd_export_parent(c->srv, c->exp, &c->id, &pid);
        if (!perr)
            perr = vfs_getattr(c->srv->vfs, &pid, &pa);
        if (perr)
            return nfs3_status_from_errno(perr);
        struct vfs_dirent dotdot = { "..", pa.fileid, 2, &pid, &pa };
        err = dir_fill_cb(f, &dotdot);
    }
    /* A reply full before vfs is asked carries verifier 0, which any
     * later cookie is accepted with. */
    if (!err)
        err = vfs_readdir(c->srv->vfs, &c->id, cookie <= 2 ? 0 : cookie, f->plus, &verf,
                          dir_fill_cb, f);
    if (err > 0)
        return nfs3_status_from_errno(err);
    if (f->nomem)
        return NFS3ERR_SERVERFAULT;
    uint64_t asked = verf_get(verf_in);
    if (cookie != 0 && asked != 0 && asked != verf)
        return NFS3ERR_BAD_COOKIE;
    if (err == DIR_FULL && f->n == 0)
        return NFS3ERR_TOOSMALL;
    *eof = err == 0 ? TRUE : FALSE;
    verf_put(verf_out, verf);
    return NFS3_OK;
}

/* ---- the listing cache (nfsd/listcache.h) ----------------------------- */

/* The reply as an already encoded result: res is then not encoded. */
static void reply_encoded(struct rpc_ctx *c, uint8_t *buf, size_t len)
{
    c->reply_tail = buf;
    c->reply_tail_len = len;
    c->reply_head_proc = NULL;      /* nothing before it */
    c->reply_size_hint = 4;
}

/* Whether this listing may come from, or go to, the cache: k filled then,
 * its stamp read before anything of the listing is. */
static bool listing_key(struct rpc_ctx *c, bool plus, uint64_t cookie,
                        const char *verf_in, struct listcache_key *k)
{
    if (!c->srv->listcache)
        return false;
    memset(k, 0, sizeof *k);
    if (vfs_listing_stamp(c->srv->vfs, &c->id, &k->stamp) != 0)
        return false;
    k->dir = c->id;
    k->cookie = cookie;
    k->verf = verf_get(verf_in);
    k->exports = c->exports->serial;
    k->export_id = c->exp->id;
    k->plus = plus;
    return true;
}

/* Answer from the cache (limits now known); true if it did. */
static bool listing_cached(struct rpc_ctx *c, struct listcache_key *k,
                           const struct dir_fill *f)
{
    k->limit = (uint32_t)f->limit;
    k->dir_limit = f->dir_limit > UINT32_MAX ? UINT32_MAX : (uint32_t)f->dir_limit;
    uint8_t *buf;
    size_t len;
    if (listcache_get(c->srv->listcache, k, &buf, &len) != 0)
        return false;
    reply_encoded(c, buf, len);
    return true;
}

/* Encode res once, keep a copy if the directory did not change meanwhile,
 * and send the encoded bytes. */
static void listing_keep(struct rpc_ctx *c, const struct listcache_key *k,
                         xdrproc_t proc, void *res, size_t bound)
{
    uint64_t now;
    if (vfs_listing_stamp(c->srv->vfs, &c->id, &now) != 0 || now != k->stamp)
        return;
    uint8_t *buf = malloc(bound);
    if (!buf)
        return;
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)bound, XDR_ENCODE);
    bool ok = proc(&x, res);
    size_t len = xdr_getpos(&x);
    xdr_destroy(&x);
    if (!ok) {
        free(buf);
        return;
    }
    (void)listcache_put(c->srv->listcache, k, buf, len);
    reply_encoded(c, buf, len);
}

/* Shared READDIR/READDIRPLUS body: checks, then the page from the listing
 * cache (*answered: the reply is set) or listed.  *cacheable: k is filled
 * and a listed page may be kept (listing_keep). */
static nfsstat3 readdir_common(struct rpc_ctx *c, struct dir_fill *f, uint64_t cookie,
                               const char *verf_in, post_op_attr *dir_attr,
                               char verf_out[8], bool_t *eof, struct listcache_key *k,
                               bool *cacheable, bool *answered)
{
    *cacheable = listing_key(c, f->plus, cookie, verf_in, k);
    *answered = false;
    struct vfs_attr da;
    nfsstat3 st = readdir_check(c, f, dir_attr, &da);
    if (st == NFS3_OK && *cacheable && listing_cached(c, k, f))
        *answered = true;
    else if (st == NFS3_OK)
        st = readdir_list(c, cookie, verf_in, f, &da, verf_out, eof);
    return st;
}

void nfs3_readdir(struct rpc_ctx *c, void *args, void *res)
{
    READDIR3args *a = args;
    READDIR3res *r = res;
    READDIR3resok *ok = &r->READDIR3res_u.resok;
    struct dir_fill f = { .c = c, .limit = a->count, .dir_limit = SIZE_MAX };
    /* status, dir attributes, verifier, list end and eof */
    f.used = 4 + 4 + 84 + 8 + 4 + 4;
    struct listcache_key k;
    bool cacheable, answered;
    r->status = readdir_common(c, &f, a->cookie, a->cookieverf, &ok->dir_attributes,
                               ok->cookieverf, &ok->reply.eof, &k, &cacheable, &answered);
    if (r->status != NFS3_OK || answered)
        return;
    ok->reply.entries = f.head;
    c->reply_size_hint = f.used;            /* an upper bound, see dir_fill_cb */
    if (cacheable)
        listing_keep(c, &k, (xdrproc_t)xdr_READDIR3res, r, f.used);
}

void nfs3_readdirplus(struct rpc_ctx *c, void *args, void *res)
{
    READDIRPLUS3args *a = args;
    READDIRPLUS3res *r = res;
    READDIRPLUS3resok *ok = &r->READDIRPLUS3res_u.resok;
    size_t maxcount = a->maxcount > NFSD_MAX_IO ? NFSD_MAX_IO : a->maxcount;
    struct dir_fill f = { .c = c, .plus = true, .limit = maxcount,
                          .dir_limit = a->dircount ? a->dircount : maxcount };
    f.used = 4 + 4 + 84 + 8 + 4 + 4;
    struct listcache_key k;
    bool cacheable, answered;
    r->status = readdir_common(c, &f, a->cookie, a->cookieverf, &ok->dir_attributes,
                               ok->cookieverf, &ok->reply.eof, &k, &cacheable, &answered);
    if (r->status != NFS3_OK || answered)
        return;
    ok->reply.entries = f.phead;
    c->reply_size_hint = f.used;
    if (cacheable)
        listing_keep(c, &k, (xdrproc_t)nfsd_xdr_READDIRPLUS3res, r, f.used);
}
