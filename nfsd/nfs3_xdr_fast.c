/* nfs3_xdr_fast.c: READDIRPLUS replies encoded one entry per xdr_inline window: the bytes of rpcgen's xdr_READDIRPLUS3res without a library call per field. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "nfsd/nfs3_prot.h"
#include "nfsd/nfs3_xdr_fast.h"

/* Why: rpcgen's encoder makes about 30 calls per entry (xdr_pointer
 * recursion, xdr_u_int / xdr_u_int64_t through the stream's function
 * pointers): 1,640 instructions of a READDIRPLUS entry, as much as all the
 * rest once directories are answered from snapshots (doc/performance.md).
 * xdr_inline is libtirpc's own fast path for this: it hands out a window
 * of the buffer when the stream is an aligned memory stream with room, and
 * the entry is written there word by word.  When it gives none (another
 * stream kind, unaligned, or no room) the entry goes through rpcgen's
 * per-field functions, so the result is always rpcgen's. */

static inline void put32(int32_t **p, uint32_t v)
{
    *(*p)++ = (int32_t)htonl(v);
}

static inline void put64(int32_t **p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p, (uint32_t)v);
}

/* Opaque bytes with their length and zero padding to a 4-byte unit. */
static inline void put_opaque(int32_t **p, const char *b, u_int n)
{
    put32(p, n);
    if (n) {
        (*p)[(n - 1) / 4] = 0;
        memcpy(*p, b, n);
        *p += (n + 3) / 4;
    }
}

static void put_fattr(int32_t **p, const fattr3 *a)
{
    put32(p, (uint32_t)a->type);
    put32(p, a->mode);
    put32(p, a->nlink);
    put32(p, a->uid);
    put32(p, a->gid);
    put64(p, a->size);
    put64(p, a->used);
    put32(p, a->rdev.specdata1);
    put32(p, a->rdev.specdata2);
    put64(p, a->fsid);
    put64(p, a->fileid);
    put32(p, a->atime.seconds);
    put32(p, a->atime.nseconds);
    put32(p, a->mtime.seconds);
    put32(p, a->mtime.nseconds);
    put32(p, a->ctime.seconds);
    put32(p, a->ctime.nseconds);
}

static bool_t entry_slow(XDR *x, entryplus3 *e)
{
    bool_t more = TRUE;
    return xdr_bool(x, &more) && xdr_fileid3(x, &e->fileid) &&
           xdr_filename3(x, &e->name) && xdr_cookie3(x, &e->cookie) &&
           xdr_post_op_attr(x, &e->name_attributes) &&
           xdr_post_op_fh3(x, &e->name_handle);
}

bool_t nfsd_xdr_READDIRPLUS3res(XDR *x, READDIRPLUS3res *r)
{
    if (x->x_op != XDR_ENCODE || r->status != NFS3_OK)
        return xdr_READDIRPLUS3res(x, r);
    READDIRPLUS3resok *ok = &r->READDIRPLUS3res_u.resok;
    if (!xdr_nfsstat3(x, &r->status) ||
        !xdr_post_op_attr(x, &ok->dir_attributes) ||
        !xdr_cookieverf3(x, ok->cookieverf))
        return FALSE;
    for (entryplus3 *e = ok->reply.entries; e; e = e->nextentry) {
        u_int nl = e->name.filename3_len;
        bool attrs = e->name_attributes.attributes_follow;
        bool fh = e->name_handle.handle_follows;
        u_int fhl = fh ? e->name_handle.post_op_fh3_u.handle.data.data_len : 0;
        if (nl > NFS3_NAMEBOUND || fhl > NFS3_FHSIZE)
            return FALSE;           /* as rpcgen's bounds check */
        u_int len = 4 + 8 + 4 + ((nl + 3) & ~3u) + 8 + 4 + (attrs ? 84 : 0) +
                    4 + (fh ? 4 + ((fhl + 3) & ~3u) : 0);
        int32_t *p = xdr_inline(x, len);
        if (!p) {
            if (!entry_slow(x, e))
                return FALSE;
            continue;
        }
        put32(&p, 1);                               /* an entry follows */
        put64(&p, e->fileid);
        put_opaque(&p, e->name.filename3_val, nl);
        put64(&p, e->cookie);
        put32(&p, attrs);
        if (attrs)
            put_fattr(&p, &e->name_attributes.post_op_attr_u.attributes);
        put32(&p, fh);
        if (fh)
            put_opaque(&p, e->name_handle.post_op_fh3_u.handle.data.data_val, fhl);
    }
    bool_t more = FALSE;
    return xdr_bool(x, &more) && xdr_bool(x, &ok->reply.eof);
}
