/* data.c: file contents as fixed-size blocks ('B' ino blockno): read and
 * write at any offset, sparse holes, truncate, and the streaming appender
 * ingest uses.  Invariant: no block stores bytes at or beyond the file's
 * size, so growing a file never exposes old data. */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BS KV_BLOCK_SIZE

struct removed {
    size_t vsiz;
};

static const char *remove_visitor(const char *kbuf, size_t ksiz, const char *vbuf,
                                  size_t vsiz, size_t *sp, void *opq)
{
    ((struct removed *)opq)->vsiz = vsiz;
    return KCVISREMOVE;
}

static const char *nop_empty(const char *kbuf, size_t ksiz, size_t *sp, void *opq)
{
    return KCVISNOP;
}

/* Smallest stored block number >= from for ino; false if none. */
static bool next_block(kv_run *r, kv_ino ino, uint64_t from, uint64_t *blk)
{
    unsigned char k[17];
    bool found = false;
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur)
        return false;
    kv_key_ino2(k, 'B', ino, from);
    if (kccurjumpkey(cur, (char *)k, 17)) {
        size_t ksiz;
        char *key = kccurgetkey(cur, &ksiz, 0);
        if (key) {
            if (ksiz == 17 && memcmp(key, k, 9) == 0) {
                *blk = kv_get64((unsigned char *)key + 9);
                found = true;
            }
            kcfree(key);
        }
    }
    kccurdel(cur);
    return found;
}

static void account(kv_run *r, struct kv_inode *in, size_t oldlen, size_t newlen)
{
    in->used = in->used - oldlen + newlen;
    r->data_bytes = r->data_bytes - oldlen + newlen;
}

int kv_data_truncate(kv_run *r, kv_ino ino, struct kv_inode *in, uint64_t size)
{
    unsigned char k[17];
    if (size < in->size) {
        uint64_t first = (size + BS - 1) / BS, blk;
        while (next_block(r, ino, first, &blk)) {
            struct removed rm = {0};
            if (!kcdbaccept(r->db, (char *)k, kv_key_ino2(k, 'B', ino, blk),
                            remove_visitor, nop_empty, &rm, 1))
                return EIO;
            account(r, in, rm.vsiz, 0);
            first = blk + 1;
        }
        uint64_t keep = size % BS;
        if (keep) {
            size_t vsiz;
            size_t klen = kv_key_ino2(k, 'B', ino, size / BS);
            char *v = kcdbget(r->db, (char *)k, klen, &vsiz);
            if (v && vsiz > keep) {
                int ok = kcdbset(r->db, (char *)k, klen, v, keep);
                kcfree(v);
                if (!ok)
                    return kv_kcerr(r->db);
                account(r, in, vsiz, keep);
            } else if (v) {
                kcfree(v);
            }
        }
    }
    in->size = size;
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

struct slice {
    char *dst;
    size_t off, len;        /* wanted part of the block */
};

static const char *copy_visitor(const char *kbuf, size_t ksiz, const char *vbuf,
                                size_t vsiz, size_t *sp, void *opq)
{
    struct slice *s = opq;
    size_t have = vsiz > s->off ? vsiz - s->off : 0;
    if (have > s->len)
        have = s->len;
    memcpy(s->dst, vbuf + s->off, have);
    memset(s->dst + have, 0, s->len - have);
    return KCVISNOP;
}

static const char *zero_visitor(const char *kbuf, size_t ksiz, size_t *sp, void *opq)
{
    struct slice *s = opq;
    memset(s->dst, 0, s->len);
    return KCVISNOP;
}

int kv_read(kv_run *r, kv_ino ino, uint64_t off, void *buf, size_t len,
            size_t *got, bool *eof)
{
    struct kv_inode in;
    *got = 0;
    kv_rbegin(r);
    int err = kv_inode_load(r, ino, &in);
    if (!err) {
        if (S_ISDIR(in.mode))
            err = EISDIR;
        else if (!S_ISREG(in.mode))
            err = EINVAL;
        kv_inode_free(&in);
    }
    if (err) {
        kv_rend(r);
        return err;
    }
    size_t n = 0;
    if (off < in.size)
        n = in.size - off < len ? (size_t)(in.size - off) : len;
    unsigned char k[17];
    size_t done = 0;
    while (done < n) {
        uint64_t pos = off + done;
        struct slice s = { (char *)buf + done, pos % BS, BS - pos % BS };
        if (s.len > n - done)
            s.len = n - done;
        if (!kcdbaccept(r->db, (char *)k, kv_key_ino2(k, 'B', ino, pos / BS),
                        copy_visitor, zero_visitor, &s, 0)) {
            err = EIO;
            break;
        }
        done += s.len;
    }
    kv_rend(r);
    if (err)
        return err;
    *got = n;
    if (eof)
        *eof = off + n >= in.size;
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

/* Store bytes [o, o+n) of block blk, merging with what is stored. */
static int write_block(kv_run *r, kv_ino ino, struct kv_inode *in, uint64_t blk,
                       size_t o, const char *src, size_t n)
{
    unsigned char k[17];
    size_t klen = kv_key_ino2(k, 'B', ino, blk);
    size_t oldlen = 0;
    char *old = NULL;
    if (!(o == 0 && n == BS)) {
        old = kcdbget(r->db, (char *)k, klen, &oldlen);
        if (!old && kcdbecode(r->db) != KCENOREC)
            return EIO;
    } else {
        int32_t l = kcdbcheck(r->db, (char *)k, klen);
        oldlen = l > 0 ? (size_t)l : 0;
    }
    size_t newlen = o + n > oldlen ? o + n : oldlen;
    int ok;
    if (o == 0 && n == BS) {
        ok = kcdbset(r->db, (char *)k, klen, src, n);
    } else {
        char *nb = malloc(newlen);
        if (!nb) {
            kcfree(old);
            return ENOMEM;
        }
        if (old)
            memcpy(nb, old, oldlen);
        if (o > oldlen)
            memset(nb + oldlen, 0, o - oldlen);
        memcpy(nb + o, src, n);
        ok = kcdbset(r->db, (char *)k, klen, nb, newlen);
        free(nb);
    }
    kcfree(old);
    if (!ok)
        return kv_kcerr(r->db);
    account(r, in, oldlen, newlen);
    return 0;
}

int kv_write(kv_run *r, kv_ino ino, uint64_t off, const void *buf, size_t len,
             struct kv_attr *out)
{
    if (off > KV_MAX_FILE || len > KV_MAX_FILE - off)
        return EFBIG;
    int err = kv_wbegin(r);
    if (err)
        return err;
    struct kv_inode in;
    err = kv_inode_load(r, ino, &in);
    if (err)
        return kv_wend(r, err);
    if (S_ISDIR(in.mode))
        err = EISDIR;
    else if (!S_ISREG(in.mode))
        err = EINVAL;
    size_t done = 0;
    while (!err && done < len) {
        uint64_t pos = off + done;
        size_t o = pos % BS, n = BS - o;
        if (n > len - done)
            n = len - done;
        err = write_block(r, ino, &in, pos / BS, o, (const char *)buf + done, n);
        done += n;
    }
    if (!err) {
        if (off + len > in.size)
            in.size = off + len;
        kv_now(&in.mtime);
        in.ctime = in.mtime;
        err = kv_inode_store(r, ino, &in);
    }
    err = kv_wend(r, err);
    if (!err && out)
        kv_attr_from(ino, &in, out);
    kv_inode_free(&in);
    return err;
}

/* ---- streaming appender ----------------------------------------------- */

struct kv_appender {
    kv_run *r;
    kv_ino ino;
    uint64_t pos;           /* file size so far */
    uint64_t used;          /* bytes stored */
    bool dirty;             /* buf holds data of block pos / BS */
    int err;                /* sticky */
    char *buf;              /* block pos / BS, bytes [0, pos % BS) valid */
};

int kv_append_begin(kv_run *r, kv_ino ino, kv_appender **out)
{
    struct kv_inode in;
    *out = NULL;
    kv_rbegin(r);
    int err = kv_inode_load(r, ino, &in);
    kv_rend(r);
    if (err)
        return err;
    if (S_ISDIR(in.mode))
        err = EISDIR;
    else if (!S_ISREG(in.mode) || in.size != 0)
        err = EINVAL;
    kv_inode_free(&in);
    if (err)
        return err;
    if (r->readonly)
        return EROFS;
    kv_appender *ap = calloc(1, sizeof *ap);
    if (!ap || !(ap->buf = malloc(BS))) {
        free(ap);
        return ENOMEM;
    }
    ap->r = r;
    ap->ino = ino;
    *out = ap;
    return 0;
}

/* Store the buffered block blk, len bytes. */
static int flush_block(kv_appender *ap, uint64_t blk, size_t len)
{
    kv_run *r = ap->r;
    unsigned char k[17];
    int err = kv_wbegin(r);
    if (err)
        return err;
    if (!kcdbset(r->db, (char *)k, kv_key_ino2(k, 'B', ap->ino, blk), ap->buf, len))
        err = kv_kcerr(r->db);
    else
        r->data_bytes += len;
    err = kv_wend(r, err);
    if (!err)
        ap->used += len;
    ap->dirty = false;
    return err;
}

int kv_append(kv_appender *ap, const void *buf, size_t len)
{
    if (ap->err)
        return ap->err;
    if (ap->pos > KV_MAX_FILE || len > KV_MAX_FILE - ap->pos)
        return EFBIG;
    const char *p = buf;
    while (len > 0) {
        size_t fill = ap->pos % BS, n = BS - fill;
        if (n > len)
            n = len;
        memcpy(ap->buf + fill, p, n);
        ap->dirty = true;
        ap->pos += n;
        p += n;
        len -= n;
        if (ap->pos % BS == 0) {
            int err = flush_block(ap, (ap->pos - 1) / BS, BS);
            if (err)
                return ap->err = err;
        }
    }
    return 0;
}

int kv_append_hole(kv_appender *ap, uint64_t len)
{
    if (ap->err)
        return ap->err;
    if (ap->pos > KV_MAX_FILE || len > KV_MAX_FILE - ap->pos)
        return EFBIG;
    size_t fill = ap->pos % BS;
    if (len < BS - fill) {
        memset(ap->buf + fill, 0, len);
        ap->pos += len;
        return 0;
    }
    if (ap->dirty && fill) {
        int err = flush_block(ap, ap->pos / BS, fill);
        if (err)
            return ap->err = err;
    }
    ap->dirty = false;
    ap->pos += len;
    memset(ap->buf, 0, ap->pos % BS);
    return 0;
}

int kv_append_end(kv_appender *ap)
{
    kv_run *r = ap->r;
    int err = ap->err;
    size_t fill = ap->pos % BS;
    if (!err && ap->dirty && fill)
        err = flush_block(ap, ap->pos / BS, fill);
    if (!err && !(err = kv_wbegin(r))) {
        struct kv_inode in;
        err = kv_inode_load(r, ap->ino, &in);
        if (!err) {
            in.size = ap->pos;
            in.used += ap->used;
            err = kv_inode_store(r, ap->ino, &in);
            kv_inode_free(&in);
        }
        err = kv_wend(r, err);
    }
    free(ap->buf);
    free(ap);
    return err;
}
