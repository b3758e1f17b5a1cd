/* lazy.c: absent file data of index-first runs: which chunks are present, where an absent one lies in the tarball, storing a fetched chunk and dropping stored ones again, crash-safely. */
#include "kvstore/kv_internal.h"
#include "kvstore/tarindex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * A file with absent data has, in the meta TreeDB:
 *   'A' ino       -> tar offset:8, chunks:4, present:4   (small: rewritten per fill)
 *   'C' ino group -> CRC-32:4 of chunks group*1024 ... (written once; groups
 *                    keep a lookup small for files of any size)
 *   'P' ino chunk -> ""                                 (one per present chunk)
 *   'W' ino       -> the member's archive path            (for messages)
 *   'Q' seq:8     -> ino:8 chunk:4   fill order: the oldest stored chunk
 *                    first, for kv_data_drop (a 'Q' whose 'P' is gone is
 *                    stale and simply skipped)
 * and the run has 'S' "Slazy" -> total:8, present:8 (bytes of index files)
 * [, next fill sequence number:8].
 * The keys of a file stay when all its chunks are present (present ==
 * chunks), so its data can be dropped and fetched again; they go only at
 * kv_absent_settle (the run is about to change: an ordinary run from then
 * on) or kv_absent_drop.
 * Chunk c covers bytes [c * KV_CHUNK, min(size, (c+1) * KV_CHUNK)).
 */

#define BS KV_BLOCK_SIZE
#define A_LEN 16
#define CRC_GROUP 1024u
/* Chunks dropped per hold of the run's write lock (kv_data_drop): 64 MiB,
 * 1024 block deletions, a few ms; readers go on between batches. */
#define DROP_BATCH 64u

static size_t key_a(unsigned char *k, char tag, kv_ino ino)
{
    return kv_key_ino(k, tag, ino);
}

/* Does the run have any absent data?  Cached per open run: one cursor
 * probe the first time (runs never gain absent data after publishing). */
static bool run_has_absent(kv_run *r)
{
    int st = __atomic_load_n(&r->lazy, __ATOMIC_ACQUIRE);
    if (st)
        return st == 1;
    bool some = false;
    KCCUR *cur = kcdbcursor(r->db);
    if (cur) {
        if (kccurjumpkey(cur, "A", 1)) {
            size_t ksiz;
            char *k = kccurgetkey(cur, &ksiz, 0);
            some = k && ksiz == 9 && k[0] == 'A';
            kcfree(k);
        }
        kccurdel(cur);
    }
    __atomic_store_n(&r->lazy, some ? 1 : 2, __ATOMIC_RELEASE);
    return some;
}

struct absent_rec {
    uint64_t tar_off;
    uint32_t chunks, present;
};

static void decode_a(const unsigned char *v, struct absent_rec *a)
{
    a->tar_off = kv_get64(v);
    a->chunks = kv_get32(v + 8);
    a->present = kv_get32(v + 12);
}

/* Load ino's 'A' record: ENOENT if the file has no absent data. */
static int load_a(kv_run *r, kv_ino ino, struct absent_rec *a)
{
    unsigned char k[9], v[A_LEN];
    int32_t n = kcdbgetbuf(r->db, (char *)k, key_a(k, 'A', ino), (char *)v,
                           sizeof v);
    if (n < 0)
        return kcdbecode(r->db) == KCENOREC ? ENOENT : EIO;
    if (n != A_LEN)
        return EIO;
    decode_a(v, a);
    return 0;
}

static int store_a(kv_run *r, kv_ino ino, const struct absent_rec *a)
{
    unsigned char k[9], v[A_LEN];
    kv_put64(v, a->tar_off);
    kv_put32(v + 8, a->chunks);
    kv_put32(v + 12, a->present);
    return kcdbset(r->db, (char *)k, key_a(k, 'A', ino), (char *)v, A_LEN)
               ? 0 : kv_kcerr(r->db);
}

static bool chunk_present(kv_run *r, kv_ino ino, uint64_t c)
{
    unsigned char k[17];
    return kcdbcheck(r->db, (char *)k, kv_key_ino2(k, 'P', ino, c)) >= 0;
}

/* Slazy: total:8, present:8, and (since fills are ordered) next seq:8. */
struct lazy_totals {
    uint64_t total, present, seq;
};

static int load_totals(kv_run *r, struct lazy_totals *t)
{
    unsigned char v[24];
    memset(t, 0, sizeof *t);
    int32_t n = kcdbgetbuf(r->db, "Slazy", 5, (char *)v, sizeof v);
    if (n < 0)
        return kcdbecode(r->db) == KCENOREC ? 0 : EIO;
    if (n != 16 && n != 24)
        return EIO;
    t->total = kv_get64(v);
    t->present = kv_get64(v + 8);
    t->seq = n == 24 ? kv_get64(v + 16) : 0;
    return 0;
}

static int store_totals(kv_run *r, const struct lazy_totals *t)
{
    unsigned char v[24];
    kv_put64(v, t->total);
    kv_put64(v + 8, t->present);
    kv_put64(v + 16, t->seq);
    return kcdbset(r->db, "Slazy", 5, (char *)v, 24) ? 0 : kv_kcerr(r->db);
}

static int load_lazy_totals(kv_run *r, uint64_t *total, uint64_t *present)
{
    struct lazy_totals t;
    int err = load_totals(r, &t);
    *total = t.total;
    *present = t.present;
    return err;
}

/* Keep the fill sequence number when only the byte totals change. */
static int store_lazy_totals(kv_run *r, uint64_t total, uint64_t present)
{
    struct lazy_totals t;
    int err = load_totals(r, &t);
    if (err)
        return err;
    t.total = total;
    t.present = present;
    return store_totals(r, &t);
}

/* Length of chunk c of a file of size bytes. */
static uint64_t chunk_len(uint64_t size, uint64_t c)
{
    uint64_t start = c * KV_CHUNK;
    if (start >= size)
        return 0;
    return size - start < KV_CHUNK ? size - start : KV_CHUNK;
}

static uint64_t nchunks_for(uint64_t size)
{
    return (size + KV_CHUNK - 1) / KV_CHUNK;
}

bool kv_absent_spec_ok(const struct kv_absent_spec *spec)
{
    return spec->size > 0 && nchunks_for(spec->size) == spec->nchunks &&
           (spec->nchunks == 0 || spec->crcs);
}

int kv_absent_record(kv_run *r, kv_ino ino, const struct kv_absent_spec *spec)
{
    unsigned char k[9];
    struct absent_rec a = { spec->data_off, spec->nchunks, 0 };
    int err = store_a(r, ino, &a);
    const char *member = spec->member;
    size_t mlen = member ? strnlen(member, 4096) : 0;
    if (!err && !kcdbset(r->db, (char *)k, key_a(k, 'W', ino),
                         member ? member : "", mlen))
        err = kv_kcerr(r->db);
    uint32_t nchunks = spec->nchunks;
    for (uint32_t g = 0; !err && (uint64_t)g * CRC_GROUP < nchunks; g++) {
        unsigned char v[CRC_GROUP * 4], kc[17];
        uint32_t n = nchunks - g * CRC_GROUP;
        if (n > CRC_GROUP)
            n = CRC_GROUP;
        for (uint32_t i = 0; i < n; i++)
            kv_put32(v + 4 * (size_t)i, spec->crcs[g * CRC_GROUP + i]);
        if (!kcdbset(r->db, (char *)kc, kv_key_ino2(kc, 'C', ino, g),
                     (char *)v, (size_t)n * 4))
            err = kv_kcerr(r->db);
    }
    struct lazy_totals t;
    if (!err)
        err = load_totals(r, &t);
    if (!err) {
        t.total += spec->size;
        err = store_totals(r, &t);
    }
    if (!err)
        __atomic_store_n(&r->lazy, 1, __ATOMIC_RELEASE);
    return err;
}

int kv_set_absent(kv_run *r, kv_ino ino, const char *member,
                  uint64_t data_off, uint32_t nchunks, const uint32_t *crcs)
{
    int err = kv_wbegin(r);
    if (err)
        return err;
    struct kv_inode in;
    err = kv_inode_load(r, ino, &in);
    if (err)
        return kv_wend(r, err);
    struct kv_absent_spec spec = { in.size, member, data_off, nchunks, crcs };
    if (!S_ISREG(in.mode) || in.used != 0 || !kv_absent_spec_ok(&spec))
        err = EINVAL;
    unsigned char k[9];
    if (!err && kcdbcheck(r->db, (char *)k, key_a(k, 'A', ino)) >= 0)
        err = EINVAL;           /* already marked */
    if (!err)
        err = kv_absent_record(r, ino, &spec);
    kv_inode_free(&in);
    return kv_wend(r, err);
}

int kv_absent_check(kv_run *r, kv_ino ino, uint64_t off, uint64_t len)
{
    if (len == 0 || !run_has_absent(r))
        return 0;
    struct absent_rec a;
    int err = load_a(r, ino, &a);
    if (err)
        return err == ENOENT ? 0 : err;
    if (a.present >= a.chunks)
        return 0;               /* all present */
    if (a.present == 0)
        return off / KV_CHUNK < a.chunks ? ENODATA : 0;     /* none */
    uint64_t last = (off + len - 1) / KV_CHUNK;
    for (uint64_t c = off / KV_CHUNK; c <= last && c < a.chunks; c++)
        if (!chunk_present(r, ino, c))
            return ENODATA;
    return 0;
}

/* Inode checks shared by the readers below (read lock held). */
static int check_reg(kv_run *r, kv_ino ino, uint64_t *size)
{
    struct kv_inode in;
    int err = kv_inode_load(r, ino, &in);
    if (err)
        return err;
    if (S_ISDIR(in.mode))
        err = EISDIR;
    else if (!S_ISREG(in.mode))
        err = EINVAL;
    *size = in.size;
    kv_inode_free(&in);
    return err;
}

int kv_missing(kv_run *r, kv_ino ino, uint64_t off, uint64_t len,
               uint32_t max_count, uint32_t *first, uint32_t *count)
{
    *first = 0;
    *count = 0;
    uint64_t size;
    kv_rbegin(r);
    int err = check_reg(r, ino, &size);
    struct absent_rec a;
    if (!err && run_has_absent(r) && off < size && len > 0) {
        if (len > size - off)
            len = size - off;
        err = load_a(r, ino, &a);
        if (err == ENOENT || (!err && a.present >= a.chunks)) {
            err = 0;
        } else if (!err) {
            uint64_t last = (off + len - 1) / KV_CHUNK;
            bool found = false;
            for (uint64_t c = off / KV_CHUNK; c <= last && c < a.chunks; c++) {
                /* none present: no lookup per chunk */
                bool have = a.present && chunk_present(r, ino, c);
                if (!found && !have) {
                    found = true;
                    *first = (uint32_t)c;
                }
                if (found) {
                    if (have || *count >= max_count)
                        break;
                    (*count)++;
                }
            }
        }
    }
    kv_rend(r);
    return err;
}

int kv_chunk_source(kv_run *r, kv_ino ino, uint32_t chunk, uint64_t *tar_off,
                    uint32_t *len, uint32_t *crc)
{
    uint64_t size;
    kv_rbegin(r);
    int err = check_reg(r, ino, &size);
    if (err == EISDIR || err == EINVAL)
        err = ENOENT;
    struct absent_rec a;
    if (!err)
        err = load_a(r, ino, &a);
    if (!err && chunk >= a.chunks)
        err = ERANGE;
    if (!err) {
        unsigned char k[17], v[CRC_GROUP * 4];
        uint32_t i = chunk % CRC_GROUP;
        int32_t n = kcdbgetbuf(r->db, (char *)k,
                               kv_key_ino2(k, 'C', ino, chunk / CRC_GROUP),
                               (char *)v, sizeof v);
        if (n < 0 || (size_t)n < 4 * ((size_t)i + 1))
            err = EIO;
        else
            *crc = kv_get32(v + 4 * (size_t)i);
    }
    if (!err) {
        uint64_t start = (uint64_t)chunk * KV_CHUNK;
        uint64_t n = size - start < KV_CHUNK ? size - start : KV_CHUNK;
        *tar_off = a.tar_off + start;
        *len = (uint32_t)n;
    }
    kv_rend(r);
    return err;
}

int kv_absent_chunks(kv_run *r, kv_ino ino, uint32_t from, uint32_t max,
                     struct kv_chunk_src *src, uint32_t *count)
{
    *count = 0;
    uint64_t size;
    kv_rbegin(r);
    int err = check_reg(r, ino, &size);
    struct absent_rec a;
    bool none = !err && !run_has_absent(r);
    if (!err && !none && (err = load_a(r, ino, &a)) == ENOENT) {
        err = 0;                /* ordinary (or settled) file */
        none = true;
    }
    if (err || none || a.present >= a.chunks) {
        kv_rend(r);
        return err;
    }
    uint32_t c = from;
    /* none present: no lookup per chunk */
    while (!err && c < a.chunks && a.present && chunk_present(r, ino, c))
        c++;
    unsigned char v[CRC_GROUP * 4];
    uint32_t group = UINT32_MAX;
    int32_t vn = 0;
    for (; !err && c < a.chunks && *count < max; c++) {
        if (*count > 0 && a.present && chunk_present(r, ino, c))
            break;
        if (c / CRC_GROUP != group) {
            unsigned char k[17];
            group = c / CRC_GROUP;
            vn = kcdbgetbuf(r->db, (char *)k, kv_key_ino2(k, 'C', ino, group),
                            (char *)v, sizeof v);
        }
        uint32_t i = c % CRC_GROUP;
        if (vn < 0 || (size_t)vn < 4 * ((size_t)i + 1)) {
            err = EIO;
            break;
        }
        struct kv_chunk_src *o = &src[(*count)++];
        o->chunk = c;
        o->tar_off = a.tar_off + (uint64_t)c * KV_CHUNK;
        o->len = (uint32_t)chunk_len(size, c);
        o->crc = kv_get32(v + 4 * (size_t)i);
    }
    kv_rend(r);
    if (err)
        *count = 0;
    return err;
}

/* The last chunk arrived: the file becomes ordinary. */
static int forget_absent(kv_run *r, kv_ino ino, uint32_t chunks)
{
    unsigned char k[17];
    if (!kcdbremove(r->db, (char *)k, key_a(k, 'A', ino)))
        return kv_kcerr(r->db);
    if (!kcdbremove(r->db, (char *)k, key_a(k, 'W', ino)) &&
        kcdbecode(r->db) != KCENOREC)
        return EIO;
    for (uint32_t g = 0; (uint64_t)g * CRC_GROUP < chunks; g++)
        if (!kcdbremove(r->db, (char *)k, kv_key_ino2(k, 'C', ino, g)))
            return kv_kcerr(r->db);
    for (uint32_t c = 0; c < chunks; c++)
        if (!kcdbremove(r->db, (char *)k, kv_key_ino2(k, 'P', ino, c)) &&
            kcdbecode(r->db) != KCENOREC)
            return EIO;
    return 0;
}

int kv_absent_drop(kv_run *r, kv_ino ino)
{
    int err = kv_wbegin(r);
    if (err)
        return err;
    struct absent_rec a;
    err = load_a(r, ino, &a);
    if (err == ENOENT)
        return kv_wend(r, 0);
    struct kv_inode in = { 0 };
    bool have_in = false;
    if (!err && (err = kv_inode_load(r, ino, &in)) == 0)
        have_in = true;
    uint64_t gone_present = 0;
    for (uint32_t c = 0; !err && c < a.chunks; c++)
        if (chunk_present(r, ino, c)) {
            uint64_t start = (uint64_t)c * KV_CHUNK;
            gone_present += in.size - start < KV_CHUNK ? in.size - start
                                                       : KV_CHUNK;
        }
    if (!err)
        err = forget_absent(r, ino, a.chunks);
    uint64_t total = 0, present = 0;
    if (!err)
        err = load_lazy_totals(r, &total, &present);
    if (!err)
        err = store_lazy_totals(r, total - (total < in.size ? total : in.size),
                                present - (present < gone_present
                                           ? present : gone_present));
    if (have_in)
        kv_inode_free(&in);
    return kv_wend(r, err);
}

/* Check one chunk of a batch against its index entry (read lock taken and
 * released inside): its err says what kv_fill would return without
 * storing, -1 if it is to be stored. */
static void fill_check(kv_run *r, struct kv_fill_chunk *c)
{
    if (c->have_crc) {
        c->err = tix_crc(c->buf, c->len) != c->crc
                     ? EBADMSG : -1;
        return;
    }
    uint64_t tar_off;
    uint32_t want_len, want_crc;
    int err = kv_chunk_source(r, c->ino, c->chunk, &tar_off, &want_len,
                              &want_crc);
    if (err == ENOENT) {
        /* No absent data: already complete (another filler won), or no
         * such file. */
        struct kv_attr at;
        err = kv_getattr(r, c->ino, &at);
        c->err = err ? err : S_ISREG(at.mode) ? 0 : EINVAL;
        return;
    }
    if (!err && c->len != want_len)
        err = EINVAL;
    if (!err && tix_crc(c->buf, c->len) != want_crc)
        err = EBADMSG;
    c->err = err ? err : -1;
}

/* Store the updated 'A' record and inode of a file after the chunks of it
 * in a batch were marked (meta transaction open). */
static int fill_file_store(kv_run *r, kv_ino ino, const struct absent_rec *a,
                           const struct kv_inode *in)
{
    int err = kv_inode_store(r, ino, in);
    return err ? err : store_a(r, ino, a);
}

int kv_fill_batch(kv_run *r, struct kv_fill_chunk *cs, size_t n)
{
    /* Check before taking the lock: a mismatch stores nothing. */
    size_t todo = 0;
    for (size_t i = 0; i < n; i++) {
        fill_check(r, &cs[i]);
        if (cs[i].err < 0)
            todo++;
    }
    if (todo == 0)
        return 0;
    int err = kv_wbegin(r);
    if (err) {
        for (size_t i = 0; i < n; i++)
            if (cs[i].err < 0)
                cs[i].err = err;
        return err;
    }
    /* Data first, all of it in one transaction committed on its own:
     * until the presence marks below commit, every chunk of the batch
     * reads as absent whatever blocks exist.  A chunk is stored unless its
     * file completed or it became present meanwhile (the chunks of a file
     * come one after another: its record is read once). */
    bool data_open = false;
    struct absent_rec a;
    kv_ino a_ino = 0;
    int a_err = ENOENT;         /* of the record of a_ino: none read yet */
    for (size_t i = 0; !err && i < n; i++) {
        if (cs[i].err >= 0)
            continue;
        if (a_err == ENOENT || a_ino != cs[i].ino) {
            a_ino = cs[i].ino;
            a_err = load_a(r, a_ino, &a);
            if (a_err && a_err != ENOENT) {
                err = a_err;
                break;
            }
        }
        if (a_err == ENOENT || cs[i].chunk >= a.chunks ||
            (a.present && chunk_present(r, cs[i].ino, cs[i].chunk))) {
            cs[i].err = 0;      /* completed meanwhile, or stored already */
            continue;
        }
        if (!data_open) {
            if ((err = kv_data_begin(r)) != 0)
                break;
            data_open = true;
        }
        uint64_t pos = (uint64_t)cs[i].chunk * KV_CHUNK;
        size_t done = 0;
        unsigned char k[16];
        while (!err && done < cs[i].len) {
            size_t m = cs[i].len - done < BS ? cs[i].len - done : BS;
            if (!kcdbset(r->data, (char *)k,
                         kv_key_block(k, cs[i].ino, (pos + done) / BS),
                         (const char *)cs[i].buf + done, m))
                err = kv_kcerr(r->data);
            done += m;
        }
    }
    if (data_open)
        err = kv_data_end(r, err);
    /* Then the presence marks, counts and fill order of every chunk, in
     * the run's one meta transaction; each file's record and inode are
     * read and written once for all its chunks in the batch. */
    struct lazy_totals t;
    if (!err)
        err = load_totals(r, &t);
    struct kv_inode in;
    bool have = false;          /* a, in: the file a_ino's, as updated */
    for (size_t i = 0; !err && i < n; i++) {
        if (cs[i].err >= 0)
            continue;
        struct kv_fill_chunk *c = &cs[i];
        if (!have || a_ino != c->ino) {
            if (have) {
                err = fill_file_store(r, a_ino, &a, &in);
                kv_inode_free(&in);
                have = false;
                if (err)
                    break;
            }
            /* read again: a transaction reads its own writes, so a file
             * seen before in the batch loads as updated */
            if ((err = load_a(r, c->ino, &a)) != 0)
                break;
            if ((err = kv_inode_load(r, c->ino, &in)) != 0)
                break;
            a_ino = c->ino;
            have = true;
        }
        /* A chunk twice in the batch: the second is already marked. */
        if (a.present && chunk_present(r, c->ino, c->chunk)) {
            c->err = 0;
            continue;
        }
        /* A caller's CRC (have_crc) vouches for bytes, not for their
         * length: a chunk of the wrong length is refused here.  Its
         * blocks, stored above, are never marked present: it reads as
         * absent and the next fill of it writes them again. */
        if (c->len != chunk_len(in.size, c->chunk)) {
            c->err = EINVAL;
            continue;
        }
        in.used += c->len;
        r->data_bytes += c->len;
        /* Present, and the newest in fill order.  A file whose chunks are
         * all present keeps its keys: its data may be dropped again. */
        unsigned char k[17], q[9], qv[12];
        a.present++;
        if (!kcdbset(r->db, (char *)k,
                     kv_key_ino2(k, 'P', c->ino, c->chunk), "", 0))
            err = kv_kcerr(r->db);
        kv_put64(qv, c->ino);
        kv_put32(qv + 8, c->chunk);
        if (!err && !kcdbset(r->db, (char *)q, kv_key_ino(q, 'Q', t.seq),
                             (char *)qv, sizeof qv))
            err = kv_kcerr(r->db);
        if (!err) {
            t.present += c->len;
            t.seq++;
            c->err = -2;        /* stored once this commits */
        }
    }
    if (have) {
        if (!err)
            err = fill_file_store(r, a_ino, &a, &in);
        kv_inode_free(&in);
    }
    if (!err)
        err = store_totals(r, &t);
    err = kv_wend(r, err);
    /* Committed: all stored.  Failed: nothing of the batch is present,
     * and the chunks it was to store fail with the transaction's error. */
    for (size_t i = 0; i < n; i++)
        if (cs[i].err < 0)
            cs[i].err = err;
    return err;
}

int kv_fill(kv_run *r, kv_ino ino, uint32_t chunk, const void *buf,
            size_t len)
{
    struct kv_fill_chunk c = { .ino = ino, .chunk = chunk, .buf = buf,
                               .len = len };
    int err = kv_fill_batch(r, &c, 1);
    return err ? err : c.err;
}

/* Drop the oldest stored chunks (lock and transaction held), at most
 * DROP_BATCH and until *got reaches want: presence marks, counts and the
 * inodes' `used` change here, the blocks are queued for kv_wend (deleted
 * once this commits, so a crash leaves blocks of an absent chunk, never a
 * present chunk without its blocks).  *more: there may be others left. */
static int drop_batch(kv_run *r, uint64_t want, uint64_t *got, bool *more)
{
    *more = false;
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur)
        return EIO;
    int err = 0;
    unsigned n = 0;
    uint64_t freed = 0;
    bool at = kccurjumpkey(cur, "Q", 1);
    while (!err && at && n < DROP_BATCH && *got + freed < want) {
        size_t ksiz, vsiz;
        const char *vbuf;
        char *key = kccurget(cur, &ksiz, &vbuf, &vsiz, 0);
        if (!key) {
            at = false;
            break;
        }
        if (ksiz != 9 || key[0] != 'Q' || vsiz != 12) {
            kcfree(key);
            at = false;
            break;
        }
        kv_ino ino = kv_get64((const unsigned char *)vbuf);
        uint32_t chunk = kv_get32((const unsigned char *)vbuf + 8);
        kcfree(key);
        /* Removing through the cursor steps it to the next one. */
        if (!kccurremove(cur)) {
            err = kv_kcerr(r->db);
            break;
        }
        at = true;
        unsigned char k[17];
        size_t klen = kv_key_ino2(k, 'P', ino, chunk);
        struct absent_rec a;
        if (kcdbcheck(r->db, (char *)k, klen) < 0 ||
            load_a(r, ino, &a) != 0 || chunk >= a.chunks)
            continue;           /* stale: dropped or forgotten already */
        struct kv_inode in;
        if ((err = kv_inode_load(r, ino, &in)) != 0)
            break;
        uint64_t len = chunk_len(in.size, chunk);
        if (!kcdbremove(r->db, (char *)k, klen))
            err = kv_kcerr(r->db);
        if (!err) {
            a.present = a.present ? a.present - 1 : 0;
            err = store_a(r, ino, &a);
        }
        if (!err) {
            uint64_t u = len < in.used ? len : in.used;
            in.used -= u;
            r->data_bytes -= u < r->data_bytes ? u : r->data_bytes;
            err = kv_inode_store(r, ino, &in);
        }
        kv_inode_free(&in);
        if (!err) {
            uint64_t b0 = (uint64_t)chunk * KV_CHUNK / BS;
            struct kv_drop d = { .ino = ino, .from = b0,
                                 .to = b0 + (len + BS - 1) / BS,
                                 .bytes = len, .bytes_known = true };
            err = kv_drop_push(r, &d);
        }
        freed += len;
        n++;
    }
    kccurdel(cur);
    if (!err && freed) {
        struct lazy_totals t;
        err = load_totals(r, &t);
        if (!err) {
            t.present -= freed < t.present ? freed : t.present;
            err = store_totals(r, &t);
        }
    }
    if (!err) {
        *got += freed;
        *more = at;
    }
    return err;
}

int kv_data_drop(kv_run *r, uint64_t want, uint64_t *dropped)
{
    *dropped = 0;
    if (!run_has_absent(r))
        return 0;
    int err = 0;
    bool more = true;
    while (!err && more && *dropped < want) {
        uint64_t got = 0;
        if ((err = kv_wbegin(r)) != 0)
            break;
        err = drop_batch(r, want - *dropped, &got, &more);
        err = kv_wend(r, err);
        if (!err)
            *dropped += got;
        if (!got)
            break;
    }
    if (err)
        return err;
    /* Nothing stored any more: give the data file's space back to the
     * filesystem at once (a HashDB never shrinks by deleting records; it
     * only reuses their space, not all of it).  Also when this call found
     * nothing to drop: fills and drops in parallel can leave a data file
     * that holds no data at all its old size. */
    pthread_rwlock_wrlock(&r->lock);
    if (!__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) && r->data_bytes == 0 &&
        (*dropped || r->data_empty == 0 ||
         (uint64_t)kcdbsize(r->data) > r->data_empty)) {
        if (!kcdbclear(r->data))
            err = kv_kcerr(r->data);
        else
            r->data_empty = (uint64_t)kcdbsize(r->data);
    }
    pthread_rwlock_unlock(&r->lock);
    return err;
}

int kv_absent_settle(kv_run *r)
{
    if (!run_has_absent(r))
        return 0;
    int err = kv_wbegin(r);
    if (err)
        return err;
    size_t n = 0, cap = 0;
    struct { kv_ino ino; uint32_t chunks; } *fs = NULL;
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur)
        err = EIO;
    bool at = cur && kccurjumpkey(cur, "A", 1);
    while (!err && at) {
        size_t ksiz, vsiz;
        const char *vbuf;
        char *key = kccurget(cur, &ksiz, &vbuf, &vsiz, 1);
        if (!key)
            break;
        bool is_a = ksiz == 9 && key[0] == 'A' && vsiz == A_LEN;
        kv_ino ino = is_a ? kv_get64((const unsigned char *)key + 1) : 0;
        uint32_t chunks = is_a ? kv_get32((const unsigned char *)vbuf + 8) : 0;
        uint32_t present = is_a ? kv_get32((const unsigned char *)vbuf + 12)
                                : 0;
        kcfree(key);
        if (!is_a)
            break;
        if (present < chunks) {
            err = EAGAIN;       /* some data is absent (dropped meanwhile) */
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            void *np = realloc(fs, nc * sizeof *fs);
            if (!np) {
                err = ENOMEM;
                break;
            }
            fs = np;
            cap = nc;
        }
        fs[n].ino = ino;
        fs[n].chunks = chunks;
        n++;
    }
    for (size_t i = 0; !err && i < n; i++)
        err = forget_absent(r, fs[i].ino, fs[i].chunks);
    free(fs);
    /* The fill order goes too, and the run's presence totals. */
    at = !err && cur && kccurjumpkey(cur, "Q", 1);
    while (!err && at) {
        size_t ksiz;
        char *key = kccurgetkey(cur, &ksiz, 0);
        if (!key)
            break;
        bool is_q = ksiz == 9 && key[0] == 'Q';
        kcfree(key);
        if (!is_q)
            break;
        if (!kccurremove(cur))
            err = kv_kcerr(r->db);
    }
    if (cur)
        kccurdel(cur);
    if (!err && !kcdbremove(r->db, "Slazy", 5) &&
        kcdbecode(r->db) != KCENOREC)
        err = kv_kcerr(r->db);
    err = kv_wend(r, err);
    if (!err)
        __atomic_store_n(&r->lazy, 2, __ATOMIC_RELEASE);
    return err;
}

bool kv_block_absent(kv_run *r, kv_ino ino, uint64_t blk)
{
    if (!run_has_absent(r))
        return false;
    struct absent_rec a;
    if (load_a(r, ino, &a) != 0 || a.present >= a.chunks)
        return false;
    uint64_t c = blk * BS / KV_CHUNK;
    return c < a.chunks && !chunk_present(r, ino, c);
}

int kv_run_presence(kv_run *r, uint64_t *present, uint64_t *total)
{
    kv_rbegin(r);
    int err = load_lazy_totals(r, total, present);
    kv_rend(r);
    return err;
}

int kv_absent_next(kv_run *r, kv_ino after, kv_ino *ino)
{
    unsigned char k[9];
    size_t klen = key_a(k, 'A', after + 1);
    if (after == UINT64_MAX)
        return ENOENT;
    int err = ENOENT;
    kv_rbegin(r);
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur) {
        err = EIO;
    } else {
        if (kccurjumpkey(cur, (char *)k, klen)) {
            size_t ksiz;
            char *key = kccurgetkey(cur, &ksiz, 0);
            if (key && ksiz == 9 && key[0] == 'A') {
                *ino = kv_get64((const unsigned char *)key + 1);
                err = 0;
            }
            kcfree(key);
        }
        kccurdel(cur);
    }
    kv_rend(r);
    return err;
}

int kv_absent_scan(kv_run *r, kv_ino after, struct kv_absent_at *out,
                   size_t max, size_t *n)
{
    *n = 0;
    if (after == UINT64_MAX || max == 0)
        return 0;
    unsigned char k[9];
    size_t klen = key_a(k, 'A', after + 1);
    int err = 0;
    kv_rbegin(r);
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur) {
        err = EIO;
    } else if (kccurjumpkey(cur, (char *)k, klen)) {
        while (*n < max) {
            size_t ksiz, vsiz;
            const char *v;
            char *key = kccurget(cur, &ksiz, &v, &vsiz, 1);
            if (!key)
                break;          /* the end */
            bool ours = ksiz == 9 && key[0] == 'A';
            if (ours && vsiz != A_LEN)
                err = EIO;
            if (!ours || err) {
                kcfree(key);
                break;
            }
            kv_ino ino = kv_get64((const unsigned char *)key + 1);
            struct absent_rec a;
            decode_a((const unsigned char *)v, &a);
            kcfree(key);
            if (a.present >= a.chunks)
                continue;       /* all present */
            uint32_t c = 0;
            while (a.present && c < a.chunks && chunk_present(r, ino, c))
                c++;
            if (c < a.chunks)
                out[(*n)++] = (struct kv_absent_at){
                    .ino = ino, .tar_off = a.tar_off + (uint64_t)c * KV_CHUNK };
        }
    }
    if (cur)
        kccurdel(cur);
    kv_rend(r);
    return err;
}

int kv_absent_member(kv_run *r, kv_ino ino, char *buf, size_t cap)
{
    if (cap == 0)
        return EINVAL;
    unsigned char k[9];
    kv_rbegin(r);
    int32_t n = kcdbgetbuf(r->db, (char *)k, key_a(k, 'W', ino), buf,
                           cap - 1);
    int err = n >= 0 ? 0 : kcdbecode(r->db) == KCENOREC ? ENOENT : EIO;
    kv_rend(r);
    buf[n >= 0 ? (size_t)n : 0] = '\0';
    return err;
}
