/* lazy.c: absent file data of index-first runs: which chunks are present, where an absent one lies in the tarball, and storing a fetched chunk crash-safely. */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/*
 * A file with absent data has, in the meta TreeDB:
 *   'A' ino       -> tar offset:8, chunks:4, present:4   (small: rewritten per fill)
 *   'C' ino group -> CRC-32:4 of chunks group*1024 ... (written once; groups
 *                    keep a lookup small for files of any size)
 *   'P' ino chunk -> ""                                 (one per present chunk)
 *   'W' ino       -> the member's archive path            (for messages)
 * and the run has 'S' "Slazy" -> total:8, present:8 (bytes of index files).
 * When the last chunk of a file arrives, its A, C and P keys are deleted:
 * it is then an ordinary file, and nothing here costs anything for it.
 * Chunk c covers bytes [c * KV_CHUNK, min(size, (c+1) * KV_CHUNK)).
 */

#define BS KV_BLOCK_SIZE
#define A_LEN 16
#define CRC_GROUP 1024u

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
    a->tar_off = kv_get64(v);
    a->chunks = kv_get32(v + 8);
    a->present = kv_get32(v + 12);
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

static int load_lazy_totals(kv_run *r, uint64_t *total, uint64_t *present)
{
    unsigned char v[16];
    int32_t n = kcdbgetbuf(r->db, "Slazy", 5, (char *)v, sizeof v);
    if (n < 0) {
        *total = *present = 0;
        return kcdbecode(r->db) == KCENOREC ? 0 : EIO;
    }
    if (n != 16)
        return EIO;
    *total = kv_get64(v);
    *present = kv_get64(v + 8);
    return 0;
}

static int store_lazy_totals(kv_run *r, uint64_t total, uint64_t present)
{
    unsigned char v[16];
    kv_put64(v, total);
    kv_put64(v + 8, present);
    return kcdbset(r->db, "Slazy", 5, (char *)v, 16) ? 0 : kv_kcerr(r->db);
}

static uint64_t nchunks_for(uint64_t size)
{
    return (size + KV_CHUNK - 1) / KV_CHUNK;
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
    if (!S_ISREG(in.mode) || in.size == 0 || in.used != 0 ||
        nchunks_for(in.size) != nchunks || (nchunks && !crcs))
        err = EINVAL;
    unsigned char k[9];
    if (!err && kcdbcheck(r->db, (char *)k, key_a(k, 'A', ino)) >= 0)
        err = EINVAL;           /* already marked */
    if (!err) {
        struct absent_rec a = { data_off, nchunks, 0 };
        err = store_a(r, ino, &a);
    }
    size_t mlen = member ? strnlen(member, 4096) : 0;
    if (!err && !kcdbset(r->db, (char *)k, key_a(k, 'W', ino),
                         member ? member : "", mlen))
        err = kv_kcerr(r->db);
    for (uint32_t g = 0; !err && (uint64_t)g * CRC_GROUP < nchunks; g++) {
        unsigned char v[CRC_GROUP * 4], kc[17];
        uint32_t n = nchunks - g * CRC_GROUP;
        if (n > CRC_GROUP)
            n = CRC_GROUP;
        for (uint32_t i = 0; i < n; i++)
            kv_put32(v + 4 * (size_t)i, crcs[g * CRC_GROUP + i]);
        if (!kcdbset(r->db, (char *)kc, kv_key_ino2(kc, 'C', ino, g),
                     (char *)v, (size_t)n * 4))
            err = kv_kcerr(r->db);
    }
    uint64_t total, present;
    if (!err)
        err = load_lazy_totals(r, &total, &present);
    if (!err)
        err = store_lazy_totals(r, total + in.size, present);
    kv_inode_free(&in);
    err = kv_wend(r, err);
    if (!err)
        __atomic_store_n(&r->lazy, 1, __ATOMIC_RELEASE);
    return err;
}

int kv_absent_check(kv_run *r, kv_ino ino, uint64_t off, uint64_t len)
{
    if (len == 0 || !run_has_absent(r))
        return 0;
    struct absent_rec a;
    int err = load_a(r, ino, &a);
    if (err)
        return err == ENOENT ? 0 : err;
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
        if (err == ENOENT) {
            err = 0;
        } else if (!err) {
            uint64_t last = (off + len - 1) / KV_CHUNK;
            bool found = false;
            for (uint64_t c = off / KV_CHUNK; c <= last && c < a.chunks; c++) {
                bool have = chunk_present(r, ino, c);
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

int kv_fill(kv_run *r, kv_ino ino, uint32_t chunk, const void *buf,
            size_t len)
{
    /* Check before taking the lock: a mismatch stores nothing. */
    uint64_t tar_off;
    uint32_t want_len, want_crc;
    int err = kv_chunk_source(r, ino, chunk, &tar_off, &want_len, &want_crc);
    if (err == ENOENT) {
        /* No absent data: already complete (another filler won), or no
         * such file. */
        struct kv_attr at;
        err = kv_getattr(r, ino, &at);
        return err ? err : S_ISREG(at.mode) ? 0 : EINVAL;
    }
    if (err)
        return err;
    if (len != want_len)
        return EINVAL;
    if ((uint32_t)crc32(0L, buf, (uInt)len) != want_crc)
        return EBADMSG;

    if ((err = kv_wbegin(r)) != 0)
        return err;
    struct absent_rec a;
    err = load_a(r, ino, &a);
    if (err == ENOENT) {
        kv_wend(r, 0);
        return 0;               /* completed meanwhile */
    }
    if (!err && chunk_present(r, ino, chunk)) {
        kv_wend(r, 0);
        return 0;               /* a concurrent fill stored it */
    }
    struct kv_inode in = { 0 };
    bool have_in = false;
    if (!err && (err = kv_inode_load(r, ino, &in)) == 0)
        have_in = true;
    /* Data first, committed on its own: until the presence mark below
     * commits, the chunk reads as absent whatever blocks exist. */
    if (!err)
        err = kv_data_begin(r);
    if (!err) {
        uint64_t pos = (uint64_t)chunk * KV_CHUNK;
        size_t done = 0;
        unsigned char k[16];
        while (!err && done < len) {
            size_t n = len - done < BS ? len - done : BS;
            if (!kcdbset(r->data, (char *)k,
                         kv_key_block(k, ino, (pos + done) / BS),
                         (const char *)buf + done, n))
                err = kv_kcerr(r->data);
            done += n;
        }
        err = kv_data_end(r, err);
    }
    uint64_t total = 0, present = 0;
    if (!err)
        err = load_lazy_totals(r, &total, &present);
    if (!err) {
        in.used += len;
        r->data_bytes += len;
        err = kv_inode_store(r, ino, &in);
    }
    if (!err) {
        a.present++;
        if (a.present >= a.chunks) {
            err = forget_absent(r, ino, a.chunks);
        } else {
            unsigned char k[17];
            err = store_a(r, ino, &a);
            if (!err && !kcdbset(r->db, (char *)k,
                                 kv_key_ino2(k, 'P', ino, chunk), "", 0))
                err = kv_kcerr(r->db);
        }
    }
    if (!err)
        err = store_lazy_totals(r, total, present + len);
    if (have_in)
        kv_inode_free(&in);
    return kv_wend(r, err);
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
