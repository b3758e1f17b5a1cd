/* data.c: file contents as 64 KiB blocks in the run's data HashDB (read, write, truncate, append). */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BS KV_BLOCK_SIZE

/* Invariant: no block stores bytes at or beyond its file's size, so growing
 * a file never exposes old data.  Ordering keeps it across crashes: blocks
 * are written (data commit) before the metadata that makes them part of a
 * file (meta commit), and removed only after the metadata that drops them
 * is committed.  A crash between the two commits leaves only unreachable
 * garbage, which kv_data_gc removes on the next writable open. */

size_t kv_key_block(unsigned char *k, kv_ino ino, uint64_t blk)
{
    kv_put64(k, ino);
    kv_put64(k + 8, blk);
    return 16;
}

static void account(kv_run *r, struct kv_inode *in, size_t oldlen, size_t newlen)
{
    in->used = in->used - oldlen + newlen;
    r->data_bytes = r->data_bytes - oldlen + newlen;
}

/* Stored length of a block, 0 if absent. */
static size_t block_len(kv_run *r, kv_ino ino, uint64_t blk)
{
    unsigned char k[16];
    int32_t n = kcdbcheck(r->data, (char *)k, kv_key_block(k, ino, blk));
    return n > 0 ? (size_t)n : 0;
}

/* Stored bytes of ino in blocks [from, to), probing upward only until want
 * bytes were found (UINT64_MAX: the whole range).  *hi (may be NULL) = 1 +
 * the last block found, or from.  The HashDB has no order, so blocks are
 * found by number; the early stop makes the cost follow the data present,
 * not the file's size (a 1 TiB file holding 3 bytes: one probe). */
static uint64_t probe_range(kv_run *r, kv_ino ino, uint64_t from, uint64_t to,
                            uint64_t want, uint64_t *hi)
{
    uint64_t found = 0, last = from;
    for (uint64_t b = from; b < to && found < want; b++) {
        size_t n = block_len(r, ino, b);
        if (n) {
            found += n;
            last = b + 1;
        }
    }
    if (hi)
        *hi = last;
    return found;
}

int kv_data_truncate(kv_run *r, kv_ino ino, struct kv_inode *in, uint64_t size)
{
    if (size >= in->size) {
        in->size = size;
        return 0;
    }
    struct kv_drop d = { .ino = ino, .from = (size + BS - 1) / BS,
                         .to = (in->size + BS - 1) / BS, .bytes_known = true };
    if (d.from == 0) {
        /* Everything goes: the bytes are known without a probe. */
        d.bytes = in->used;
    } else {
        /* The bytes past the cut are `used` less those before it: counted
         * first when that is the shorter walk, then the walk up stops once
         * they are all found. */
        uint64_t above = UINT64_MAX;
        if (d.from <= d.to - d.from) {
            uint64_t below = probe_range(r, ino, 0, d.from, UINT64_MAX, NULL);
            above = in->used > below ? in->used - below : 0;
        }
        d.bytes = probe_range(r, ino, d.from, d.to, above, &d.to);
    }
    account(r, in, d.bytes, 0);
    if (size % BS) {
        size_t have = block_len(r, ino, size / BS);
        if (have > size % BS) {
            d.trim_blk = size / BS;
            d.trim_len = size % BS;
            account(r, in, have, d.trim_len);
        }
    }
    in->size = size;
    return kv_drop_push(r, &d);
}

int kv_data_free_all(kv_run *r, kv_ino ino, struct kv_inode *in)
{
    uint64_t size = in->size;
    int err = kv_data_truncate(r, ino, in, 0);
    if (!err && size && r->ndrops && !r->staged)
        r->drops[r->ndrops - 1].gone = true;
    return err;
}

int kv_drop_push(kv_run *r, const struct kv_drop *d)
{
    if (r->ndrops == r->capdrops) {
        size_t cap = r->capdrops ? 2 * r->capdrops : 4;
        struct kv_drop *nd = realloc(r->drops, cap * sizeof *nd);
        if (!nd)
            return ENOMEM;
        r->drops = nd;
        r->capdrops = cap;
    }
    r->drops[r->ndrops++] = *d;
    return 0;
}

/* Remove block blk of ino if stored, taking its length off *left. */
static int remove_block(kv_run *r, kv_ino ino, uint64_t blk, uint64_t *left)
{
    unsigned char k[16];
    size_t klen = kv_key_block(k, ino, blk);
    int32_t n = kcdbcheck(r->data, (char *)k, klen);
    if (n < 0)
        return kcdbecode(r->data) == KCENOREC ? 0 : EIO;
    if (!kcdbremove(r->data, (char *)k, klen))
        return EIO;
    *left -= (uint64_t)n < *left ? (uint64_t)n : *left;
    return 0;
}

int kv_data_take_gone(kv_run *r, struct kv_drop **out, size_t *n)
{
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < r->ndrops; i++)
        cnt += r->drops[i].gone && !r->drops[i].on_failure;
    if (!cnt)
        return 0;
    struct kv_drop *g = malloc(cnt * sizeof *g);
    if (!g)
        return ENOMEM;          /* they simply run under the lock */
    size_t j = 0, keep = 0;
    for (size_t i = 0; i < r->ndrops; i++) {
        if (r->drops[i].gone && !r->drops[i].on_failure)
            g[j++] = r->drops[i];
        else
            r->drops[keep++] = r->drops[i];
    }
    r->ndrops = keep;
    *out = g;
    *n = cnt;
    return 0;
}

int kv_data_drop_gone(kv_run *r, const struct kv_drop *ds, size_t n)
{
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        const struct kv_drop *d = &ds[i];
        uint64_t left = d->bytes_known ? d->bytes : UINT64_MAX;
        uint64_t b = d->from;
        while (b < d->to && left && !err) {
            pthread_rwlock_wrlock(&r->lock);
            if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE)) {
                /* Evicted or replaced: its files go as a whole. */
                pthread_rwlock_unlock(&r->lock);
                return 0;
            }
            err = kv_data_begin(r);
            for (unsigned step = 0; step < KV_DROP_STEP && b < d->to && left &&
                 !err; step++, b++)
                err = remove_block(r, d->ino, b, &left);
            err = kv_data_end(r, err);
            if (err)
                r->keep_unclean = true;
            pthread_rwlock_unlock(&r->lock);
        }
    }
    return err;
}

int kv_data_run_drops(kv_run *r, bool committed)
{
    bool any = false;
    for (size_t i = 0; i < r->ndrops; i++)
        any |= r->drops[i].on_failure != committed;
    if (!any) {
        r->ndrops = 0;
        return 0;
    }
    int err = kv_data_begin(r);
    unsigned char k[16];
    for (size_t i = 0; i < r->ndrops && !err; i++) {
        struct kv_drop *d = &r->drops[i];
        if (d->on_failure == committed)
            continue;
        uint64_t left = d->bytes_known ? d->bytes : UINT64_MAX;
        for (uint64_t b = d->from; b < d->to && left && !err; b++)
            err = remove_block(r, d->ino, b, &left);
        if (d->trim_len && !err) {
            size_t vsiz, klen = kv_key_block(k, d->ino, d->trim_blk);
            char *v = kcdbget(r->data, (char *)k, klen, &vsiz);
            if (v && vsiz > d->trim_len && !kcdbset(r->data, (char *)k, klen, v, d->trim_len))
                err = EIO;
            kcfree(v);
        }
    }
    r->ndrops = 0;
    return kv_data_end(r, err);
}

/* ---- garbage after a crash -------------------------------------------- */

struct gc_state {
    kv_run *r;
    kv_ino last_ino;
    bool last_exists;
    uint64_t last_size;
    char *trimmed;
    uint64_t removed, trims;
};

static const char *gc_visitor(const char *kbuf, size_t ksiz, const char *vbuf,
                              size_t vsiz, size_t *sp, void *opq)
{
    struct gc_state *g = opq;
    if (ksiz != 16) {
        g->removed++;
        return KCVISREMOVE;
    }
    kv_ino ino = kv_get64((const unsigned char *)kbuf);
    uint64_t blk = kv_get64((const unsigned char *)kbuf + 8);
    if (ino != g->last_ino) {
        struct kv_inode in;
        g->last_ino = ino;
        g->last_exists = kv_inode_load(g->r, ino, &in) == 0 && S_ISREG(in.mode);
        g->last_size = in.size;
        kv_inode_free(&in);
    }
    uint64_t start = blk * BS;
    /* Past the end, of no file, or of a chunk of an index file marked
     * absent (a fill or a drop a crash cut short): garbage. */
    if (!g->last_exists || start >= g->last_size ||
        kv_block_absent(g->r, ino, blk)) {
        g->removed++;
        return KCVISREMOVE;
    }
    if (start + vsiz > g->last_size) {
        size_t keep = (size_t)(g->last_size - start);
        free(g->trimmed);
        g->trimmed = malloc(keep ? keep : 1);
        if (!g->trimmed)
            return KCVISNOP;
        memcpy(g->trimmed, vbuf, keep);
        *sp = keep;
        g->trims++;
        return g->trimmed;
    }
    return KCVISNOP;
}

int kv_data_gc(kv_run *r)
{
    struct gc_state g = { .r = r };
    int ok = kcdbiterate(r->data, gc_visitor, &g, 1);
    free(g.trimmed);
    return ok ? 0 : EIO;
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
    /* Data of an index-first run may be absent: never zeros for it. */
    if (n && (err = kv_absent_check(r, ino, off, n)) != 0) {
        kv_rend(r);
        return err;
    }
    unsigned char k[16];
    size_t done = 0;
    while (done < n) {
        uint64_t pos = off + done;
        struct slice s = { (char *)buf + done, pos % BS, BS - pos % BS };
        if (s.len > n - done)
            s.len = n - done;
        if (!kcdbaccept(r->data, (char *)k, kv_key_block(k, ino, pos / BS),
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

int kv_extents(kv_run *r, kv_ino ino,
               int (*cb)(void *arg, uint64_t off, uint64_t len), void *arg)
{
    struct kv_inode in;
    kv_rbegin(r);
    int err = kv_inode_load(r, ino, &in);
    kv_rend(r);
    if (err)
        return err;
    kv_inode_free(&in);
    if (S_ISDIR(in.mode))
        return EISDIR;
    if (!S_ISREG(in.mode))
        return EINVAL;
    uint64_t nblk = (in.size + BS - 1) / BS, found = 0;
    uint64_t start = 0, len = 0;        /* the stretch being built */
    for (uint64_t b = 0; b < nblk && found < in.used && !err;) {
        kv_rbegin(r);
        for (unsigned step = 0; step < KV_DROP_STEP && b < nblk &&
             found < in.used; step++, b++) {
            size_t n = block_len(r, ino, b);
            if (!n)
                continue;
            found += n;
            if (len && start + len == b * BS) {
                len += n;
                continue;
            }
            if (len && (err = cb(arg, start, len)) != 0)
                break;
            start = b * BS;
            len = n;
        }
        kv_rend(r);
    }
    if (!err && len)
        err = cb(arg, start, len);
    return err;
}

/* ---- writing ---------------------------------------------------------- */

/* Store bytes [o, o+n) of block blk, merging with what is stored. */
static int write_block(kv_run *r, kv_ino ino, struct kv_inode *in, uint64_t blk,
                       size_t o, const char *src, size_t n)
{
    unsigned char k[16];
    size_t klen = kv_key_block(k, ino, blk);
    size_t oldlen = 0, newlen;
    int ok;
    if (o == 0 && n == BS) {
        oldlen = block_len(r, ino, blk);
        newlen = BS;
        ok = kcdbset(r->data, (char *)k, klen, src, n);
    } else {
        char *old = kcdbget(r->data, (char *)k, klen, &oldlen);
        if (!old) {
            if (kcdbecode(r->data) != KCENOREC)
                return EIO;
            oldlen = 0;
        }
        newlen = o + n > oldlen ? o + n : oldlen;
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
        ok = kcdbset(r->data, (char *)k, klen, nb, newlen);
        free(nb);
        kcfree(old);
    }
    if (!ok)
        return kv_kcerr(r->data);
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
    uint64_t old_size = in.size;
    if (!err && len) {
        /* Data first: until the inode below commits, new blocks past the
         * old size are unreachable. */
        err = kv_data_begin(r);
        size_t done = 0;
        while (!err && done < len) {
            uint64_t pos = off + done;
            size_t o = pos % BS, n = BS - o;
            if (n > len - done)
                n = len - done;
            err = write_block(r, ino, &in, pos / BS, o, (const char *)buf + done, n);
            done += n;
        }
        err = kv_data_end(r, err);
        if (!err && off + len > old_size) {
            /* Should the metadata not commit, these blocks would lie past
             * the end: take them back. */
            struct kv_drop undo = {
                .ino = ino, .from = (old_size + BS - 1) / BS,
                .to = (off + len + BS - 1) / BS, .trim_blk = old_size / BS,
                .trim_len = old_size % BS, .on_failure = true,
            };
            err = kv_drop_push(r, &undo);
        }
    }
    /* Zero bytes change nothing, not even at an offset past the end (as
     * write(2): no size, no times). */
    if (!err && len) {
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

/* Store block blk (len bytes at src).  Only the data database changes;
 * the inode (size, used, counters) follows in kv_append_end, so a crash in
 * between leaves unreachable blocks only. */
static int store_block(kv_appender *ap, uint64_t blk, const char *src, size_t len)
{
    kv_run *r = ap->r;
    unsigned char k[16];
    int err = kv_wbegin(r);
    if (err)
        return err;
    if (!(err = kv_data_begin(r))) {
        if (!kcdbset(r->data, (char *)k, kv_key_block(k, ap->ino, blk), src, len))
            err = kv_kcerr(r->data);
        err = kv_data_end(r, err);
    }
    err = kv_wend(r, err);
    if (!err)
        ap->used += len;
    return err;
}

static int flush_block(kv_appender *ap, uint64_t blk, size_t len)
{
    ap->dirty = false;
    return store_block(ap, blk, ap->buf, len);
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
        if (fill == 0 && len >= BS) {
            /* Whole blocks go straight from the caller's buffer. */
            int err = store_block(ap, ap->pos / BS, p, BS);
            if (err)
                return ap->err = err;
            ap->pos += BS;
            p += BS;
            len -= BS;
            continue;
        }
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
            r->data_bytes += ap->used;
            err = kv_inode_store(r, ap->ino, &in);
            kv_inode_free(&in);
        }
        err = kv_wend(r, err);
    }
    if (err && ap->pos && !r->staged && kv_wbegin(r) == 0) {
        /* The file stays empty: its stored blocks must go now, before a
         * later write could grow the file over them. */
        struct kv_drop d = { .ino = ap->ino, .to = (ap->pos + BS - 1) / BS };
        kv_wend(r, kv_drop_push(r, &d));
    }
    free(ap->buf);
    free(ap);
    return err;
}
