/* tarindex.c: the run index codec (writer, validating parser, chunk CRCs, trust check). */
#include "kvstore/tarindex.h"
#include "util/hex.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Layout (doc/design.md "The run index"):
 *   "TARNFSIX" | u32 LE version | varint header | zlib stream | SHA-256 */
#define TIX_MAGIC "TARNFSIX"
#define TIX_MAGIC_LEN 8
#define TIX_VERSION 1u             /* members without an inode number */
#define TIX_VERSION_INO 2u         /* some member carries one (TIX_W_INO) */
/* Wire flag (not in tix_member.flags): an inode number follows the sums. */
#define TIX_W_INO 0x80000000u
#define TIX_TRAILER 32
#define TIX_VERSION_MAX 127       /* bytes of the backend version string */
#define TIX_NSEC 1000000000u

/* Memory bound of a parse: the inflated member stream, and separately the
 * parsed members (structs + strings + CRCs), are each at most
 * TIX_MEM_FLOOR + TIX_MEM_RATIO * input bytes. */
#define TIX_MEM_FLOOR ((size_t)1 << 20)
#define TIX_MEM_RATIO 64

/* ---- small helpers ----------------------------------------------------- */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A growable byte buffer. */
struct buf {
    unsigned char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
    if (more <= b->cap - b->len)
        return 0;
    if (more > SIZE_MAX / 2 - b->len)
        return ENOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(struct buf *b, const void *d, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static int buf_uv(struct buf *b, uint64_t v)
{
    unsigned char t[10];
    size_t n = 0;
    do {
        t[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    return buf_put(b, t, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A bounded reader over bytes. */
struct rd {
    const unsigned char *p, *end;
};

/* Unsigned LEB128, at most 10 bytes; 0 or EBADMSG. */
static int rd_uv(struct rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return EBADMSG;
        unsigned char c = *r->p++;
        if (shift == 63 && (c & 0x7e))
            return EBADMSG; /* beyond 64 bits */
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return EBADMSG;
}

static int rd_bytes(struct rd *r, size_t n, const unsigned char **out)
{
    if ((size_t)(r->end - r->p) < n)
        return EBADMSG;
    *out = r->p;
    r->p += n;
    return 0;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static int sha256(const void *d, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_Digest(d, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return ENOMEM;
    return 0;
}

static uint64_t nchunks(uint64_t size)
{
    return size / TIX_CHUNK + (size % TIX_CHUNK != 0);
}

/* A SHA-256 as the index stores it: 64 lowercase hex digits. */
static bool is_hex64(const char *s, size_t n)
{
    return n == 64 && hex_is(s, n, true);
}

/* The per-member rules shared by writer and parser (everything but the
 * data range, which needs the tarball's size).  NULL if fine, else why. */
static const char *member_problem(const struct tix_member *m, size_t pathlen,
                                  size_t linklen)
{
    if (pathlen == 0)
        return "empty path";
    if (pathlen > TIX_PATH_MAX)
        return "path too long";
    if (m->type < TIX_REG || m->type > TIX_BLK)
        return "bad type";
    if (m->flags & ~TIX_F_SPARSE)
        return "unknown flags";
    if ((m->flags & TIX_F_SPARSE) && m->type != TIX_REG)
        return "sparse flag on a non-regular member";
    if (m->mode & ~07777u)
        return "bad mode";
    if (m->mtime_nsec >= TIX_NSEC)
        return "bad mtime nanoseconds";
    bool haslink = m->type == TIX_SYMLINK || m->type == TIX_HARDLINK;
    if (haslink != (m->link != NULL))
        return haslink ? "link target missing" : "link target on a member without one";
    if (m->link && linklen > TIX_PATH_MAX)
        return "link target too long";
    if (m->type == TIX_HARDLINK && linklen == 0)
        return "empty hard-link target";
    if (m->type == TIX_HARDLINK && m->ino)
        return "inode number on a hard link";
    if (m->type != TIX_CHR && m->type != TIX_BLK && m->rdev != 0)
        return "device number on a non-device";
    if (m->type != TIX_REG && m->size != 0)
        return "size on a non-regular member";
    uint64_t want = (m->type == TIX_REG && !(m->flags & TIX_F_SPARSE)) ? nchunks(m->size) : 0;
    if (m->nsums != want)
        return "checksum count does not match the size";
    if (m->nsums && !m->sums)
        return "checksums missing";
    return NULL;
}

/* Data range of m inside a tarball of tsize bytes?  NULL if so. */
static const char *range_problem(const struct tix_member *m, uint64_t tsize)
{
    if (m->data_off > tsize)
        return "data offset beyond the tarball";
    if (m->type == TIX_REG && !(m->flags & TIX_F_SPARSE) && m->size > tsize - m->data_off)
        return "data range beyond the tarball";
    return NULL;
}

/* ---- chunk checksums --------------------------------------------------- */

/* ISA-L's crc32_gzip_refl is zlib's CRC-32 (same polynomial, reflection
 * and chaining: the index format is unchanged) folded with carry-less
 * multiplies: ~30 GB/s here against zlib 1.2.13's ~3 GB/s, which was 15 %
 * of tarnfs convert's CPU (doc/performance.md). */
uint32_t tix_crc(const void *buf, size_t len)
{
    return crc32_gzip_refl(0, buf, len);
}

static int sums_push(struct tix_sums *s, uint32_t crc)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (cap < s->cap)
            return ENOMEM;
        uint32_t *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = crc;
    return 0;
}

int tix_sums_add(struct tix_sums *s, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        uint64_t off = s->pos % TIX_CHUNK;
        size_t take = len;
        if (take > TIX_CHUNK - off)
            take = (size_t)(TIX_CHUNK - off);
        s->crc = crc32_gzip_refl(s->crc, p, take);
        s->pos += take;
        p += take;
        len -= take;
        if (s->pos % TIX_CHUNK == 0) {
            int rc = sums_push(s, s->crc);
            if (rc)
                return rc;
            s->crc = 0;
        }
    }
    return 0;
}

const uint32_t *tix_sums_finish(struct tix_sums *s, uint32_t *n)
{
    /* The partial last chunk, once (finish may be called again). */
    if (s->pos % TIX_CHUNK != 0 && s->n < nchunks(s->pos)) {
        if (sums_push(s, s->crc)) {
            *n = 0;
            return NULL;
        }
    }
    *n = s->n;
    return s->v;
}

void tix_sums_reset(struct tix_sums *s)
{
    s->pos = 0;
    s->crc = 0;
    s->n = 0;
}

void tix_sums_free(struct tix_sums *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- writing ----------------------------------------------------------- */

struct tix_writer {
    z_stream z;
    bool zinit;
    bool finished;
    struct buf raw;   /* encoded members not yet deflated */
    struct buf out;   /* deflated bytes */
    char prev[TIX_PATH_MAX + 1];
    size_t prevlen;
    uint64_t count;
    uint64_t maxend;  /* largest data_off (+ size for contiguous files) */
    bool any_ino;     /* a member carries an inode number: version 2 */
};

int tix_writer_new(tix_writer **out)
{
    tix_writer *w = calloc(1, sizeof *w);
    if (!w)
        return ENOMEM;
    if (deflateInit(&w->z, Z_DEFAULT_COMPRESSION) != Z_OK) {
        free(w);
        return ENOMEM;
    }
    w->zinit = true;
    *out = w;
    return 0;
}

/* Deflate the pending raw bytes (flush = Z_NO_FLUSH or Z_FINISH). */
static int writer_deflate(tix_writer *w, int flush)
{
    w->z.next_in = w->raw.p;
    w->z.avail_in = (uInt)w->raw.len;
    for (;;) {
        int rc = buf_reserve(&w->out, 65536);
        if (rc)
            return rc;
        w->z.next_out = w->out.p + w->out.len;
        w->z.avail_out = (uInt)(w->out.cap - w->out.len);
        int zr = deflate(&w->z, flush);
        w->out.len = w->out.cap - w->z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return ENOMEM;
        if (flush == Z_NO_FLUSH && w->z.avail_in == 0)
            break;
    }
    w->raw.len = 0;
    return 0;
}

int tix_writer_add(tix_writer *w, const struct tix_member *m)
{
    if (!w || w->finished || !m || !m->path)
        return EINVAL;
    size_t pathlen = strlen(m->path);
    size_t linklen = m->link ? strlen(m->link) : 0;
    if (member_problem(m, pathlen, linklen) || w->count >= TIX_MAX_MEMBERS)
        return EINVAL;

    size_t pre = 0;
    while (pre < pathlen && pre < w->prevlen && m->path[pre] == w->prev[pre])
        pre++;
    struct buf *b = &w->raw;
    unsigned char type = m->type;
    int rc = buf_uv(b, pre);
    if (!rc) rc = buf_uv(b, pathlen - pre);
    if (!rc) rc = buf_put(b, m->path + pre, pathlen - pre);
    if (!rc) rc = buf_put(b, &type, 1);
    if (!rc) rc = buf_uv(b, m->flags | (m->ino ? TIX_W_INO : 0));
    if (!rc) rc = buf_uv(b, m->mode);
    if (!rc) rc = buf_uv(b, m->uid);
    if (!rc) rc = buf_uv(b, m->gid);
    if (!rc) rc = buf_uv(b, m->size);
    if (!rc) rc = buf_uv(b, zigzag(m->mtime_sec));
    if (!rc) rc = buf_uv(b, m->mtime_nsec);
    if (!rc) rc = buf_uv(b, m->link ? (uint64_t)linklen + 1 : 0);
    if (!rc && m->link) rc = buf_put(b, m->link, linklen);
    if (!rc) rc = buf_uv(b, m->rdev);
    if (!rc) rc = buf_uv(b, m->data_off);
    if (!rc) rc = buf_uv(b, m->nsums);
    if (!rc) rc = buf_reserve(b, (size_t)m->nsums * 4);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < m->nsums; i++) {
        put_le32(b->p + b->len, m->sums[i]);
        b->len += 4;
    }
    if (m->ino) {
        if ((rc = buf_uv(b, m->ino)) != 0)
            return rc;
        w->any_ino = true;
    }
    memcpy(w->prev, m->path, pathlen);
    w->prevlen = pathlen;
    w->count++;
    uint64_t end = m->data_off;
    if (m->type == TIX_REG && !(m->flags & TIX_F_SPARSE))
        end = m->data_off + m->size < m->data_off ? UINT64_MAX : m->data_off + m->size;
    if (end > w->maxend)
        w->maxend = end;
    if (w->raw.len >= 65536)
        return writer_deflate(w, Z_NO_FLUSH);
    return 0;
}

int tix_writer_finish(tix_writer *w, const struct tix_source *src,
                      void **bufp, size_t *lenp)
{
    if (!w || w->finished || !src)
        return EINVAL;
    size_t vlen = strnlen(src->version, sizeof src->version);
    size_t slen = strnlen(src->sha256, sizeof src->sha256);
    if (vlen > TIX_VERSION_MAX || (slen && !is_hex64(src->sha256, slen)) ||
        w->maxend > src->size)
        return EINVAL;
    w->finished = true;
    int rc = writer_deflate(w, Z_FINISH);
    if (rc)
        return rc;

    struct buf b = {0};
    unsigned char ver[4];
    put_le32(ver, w->any_ino ? TIX_VERSION_INO : TIX_VERSION);
    rc = buf_put(&b, TIX_MAGIC, TIX_MAGIC_LEN);
    if (!rc) rc = buf_put(&b, ver, 4);
    if (!rc) rc = buf_uv(&b, src->size);
    if (!rc) rc = buf_uv(&b, vlen);
    if (!rc) rc = buf_put(&b, src->version, vlen);
    if (!rc) rc = buf_uv(&b, slen);
    if (!rc) rc = buf_put(&b, src->sha256, slen);
    if (!rc) rc = buf_uv(&b, TIX_CHUNK);
    if (!rc) rc = buf_uv(&b, w->count);
    if (!rc) rc = buf_put(&b, w->out.p, w->out.len);
    if (!rc) rc = buf_reserve(&b, TIX_TRAILER);
    if (!rc) rc = sha256(b.p, b.len, b.p + b.len);
    if (rc) {
        free(b.p);
        return rc;
    }
    b.len += TIX_TRAILER;
    *bufp = b.p;
    *lenp = b.len;
    return 0;
}

void tix_writer_free(tix_writer *w)
{
    if (!w)
        return;
    if (w->zinit)
        deflateEnd(&w->z);
    free(w->raw.p);
    free(w->out.p);
    free(w);
}

/* ---- reading ----------------------------------------------------------- */

struct tix_index {
    struct tix_source src;
    size_t n;
    struct tix_member *m;
    char *strings;
    uint32_t *sums;
};

/* Inflate the zlib stream in [p, p+n) into *out, at most limit bytes; the
 * stream must end exactly at the end of the input. */
static int inflate_all(const unsigned char *p, size_t n, size_t limit,
                       struct buf *out, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return ENOMEM;
    int rc = 0;
    z.next_in = (unsigned char *)p;
    size_t left = n;
    for (;;) {
        if (z.avail_in == 0 && left) {
            z.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
            left -= z.avail_in;
        }
        if (out->len == out->cap) {
            if (out->cap >= limit) {
                seterr(err, errlen, "member stream inflates beyond %zu bytes", limit);
                rc = EBADMSG;
                break;
            }
            size_t cap = out->cap ? out->cap * 2 : 65536;
            if (cap > limit)
                cap = limit;
            unsigned char *np = realloc(out->p, cap);
            if (!np) {
                rc = ENOMEM;
                break;
            }
            out->p = np;
            out->cap = cap;
        }
        size_t room = out->cap - out->len;
        if (room > (1u << 30))
            room = 1u << 30;
        z.next_out = out->p + out->len;
        z.avail_out = (uInt)room;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in || left) {
                seterr(err, errlen, "bytes after the member stream");
                rc = EBADMSG;
            }
            break;
        }
        if (zr == Z_MEM_ERROR) {
            rc = ENOMEM;
            break;
        }
        if (zr == Z_OK || (zr == Z_BUF_ERROR && z.avail_out == 0))
            continue;
        seterr(err, errlen, "member stream corrupt or truncated");
        rc = EBADMSG;
        break;
    }
    inflateEnd(&z);
    return rc;
}

/* Decode one member from r.  prev/prevlen hold the previous path (updated).
 * m gets pointers into prev (path) and r (link, raw sums); linklen set. */
static const char *decode_member(struct rd *r, uint32_t ver, char *prev,
                                 size_t *prevlen, struct tix_member *m,
                                 size_t *linklen, const unsigned char **rawsums)
{
    uint64_t pre, suf, type, flags, mode, uid, gid, mt, nsec, lk, nsums;
    const unsigned char *s;
    if (rd_uv(r, &pre) || rd_uv(r, &suf))
        return "truncated member";
    if (pre > *prevlen)
        return "shared path prefix longer than the previous path";
    if (suf > TIX_PATH_MAX || pre + suf > TIX_PATH_MAX)
        return "path too long";
    if (rd_bytes(r, (size_t)suf, &s))
        return "truncated path";
    if (memchr(s, 0, (size_t)suf))
        return "NUL byte in a path";
    memcpy(prev + pre, s, (size_t)suf);
    *prevlen = (size_t)(pre + suf);
    prev[*prevlen] = '\0';
    memset(m, 0, sizeof *m);
    m->path = prev;
    if (rd_bytes(r, 1, &s))
        return "truncated member";
    type = *s;
    if (rd_uv(r, &flags) || rd_uv(r, &mode) || rd_uv(r, &uid) || rd_uv(r, &gid) ||
        rd_uv(r, &m->size) || rd_uv(r, &mt) || rd_uv(r, &nsec) || rd_uv(r, &lk))
        return "truncated member";
    if (flags > UINT32_MAX || mode > UINT32_MAX || uid > UINT32_MAX ||
        gid > UINT32_MAX || nsec > UINT32_MAX)
        return "attribute out of range";
    bool has_ino = flags & TIX_W_INO;
    if (has_ino && ver < TIX_VERSION_INO)
        return "inode number in a version 1 index";
    m->type = (uint8_t)type;
    m->flags = (uint32_t)flags & ~TIX_W_INO;
    m->mode = (uint32_t)mode;
    m->uid = (uint32_t)uid;
    m->gid = (uint32_t)gid;
    m->mtime_sec = unzigzag(mt);
    m->mtime_nsec = (uint32_t)nsec;
    *linklen = 0;
    if (lk) {
        if (lk - 1 > TIX_PATH_MAX)
            return "link target too long";
        if (rd_bytes(r, (size_t)(lk - 1), &s))
            return "truncated link target";
        if (memchr(s, 0, (size_t)(lk - 1)))
            return "NUL byte in a link target";
        m->link = (const char *)s; /* not terminated; length in linklen */
        *linklen = (size_t)(lk - 1);
    }
    if (rd_uv(r, &m->rdev) || rd_uv(r, &m->data_off) || rd_uv(r, &nsums))
        return "truncated member";
    if (nsums > UINT32_MAX || nsums > (uint64_t)(r->end - r->p) / 4)
        return "checksum count beyond the stream";
    m->nsums = (uint32_t)nsums;
    if (rd_bytes(r, (size_t)nsums * 4, rawsums))
        return "truncated checksums";
    static const uint32_t present; /* sums are raw LE bytes: a non-NULL marker */
    m->sums = nsums ? &present : NULL;
    if (has_ino && rd_uv(r, &m->ino))
        return "truncated member";
    if (has_ino && m->ino == 0)
        return "inode number 0";
    return NULL;
}

int tix_parse(const void *data, size_t len, tix_index **out, char *err, size_t errlen)
{
    const unsigned char *p = data;
    *out = NULL;
    if (len < TIX_MAGIC_LEN + 4 + TIX_TRAILER || memcmp(p, TIX_MAGIC, TIX_MAGIC_LEN)) {
        seterr(err, errlen, "not a tarnfs index (bad magic or too short)");
        return EBADMSG;
    }
    uint32_t ver = get_le32(p + TIX_MAGIC_LEN);
    if (ver > TIX_VERSION_INO) {
        seterr(err, errlen, "index format version %u is newer than this tarnfs (%u)",
               ver, TIX_VERSION_INO);
        return ENOTSUP;
    }
    if (ver != TIX_VERSION && ver != TIX_VERSION_INO) {
        seterr(err, errlen, "bad index format version %u", ver);
        return EBADMSG;
    }
    unsigned char d[32];
    if (sha256(p, len - TIX_TRAILER, d))
        return ENOMEM;
    if (memcmp(d, p + len - TIX_TRAILER, TIX_TRAILER)) {
        seterr(err, errlen, "SHA-256 trailer mismatch (corrupt or truncated)");
        return EBADMSG;
    }

    struct rd r = { p + TIX_MAGIC_LEN + 4, p + len - TIX_TRAILER };
    struct tix_source src;
    memset(&src, 0, sizeof src);
    uint64_t vlen, slen, chunk, count;
    const unsigned char *s;
    if (rd_uv(&r, &src.size) || rd_uv(&r, &vlen) || vlen > TIX_VERSION_MAX ||
        rd_bytes(&r, (size_t)vlen, &s) || memchr(s, 0, (size_t)vlen)) {
        seterr(err, errlen, "bad header (tarball size or version)");
        return EBADMSG;
    }
    memcpy(src.version, s, (size_t)vlen);
    if (rd_uv(&r, &slen) || (slen != 0 && slen != 64) || rd_bytes(&r, (size_t)slen, &s) ||
        (slen && !is_hex64((const char *)s, 64))) {
        seterr(err, errlen, "bad header (sha256)");
        return EBADMSG;
    }
    memcpy(src.sha256, s, (size_t)slen);
    if (rd_uv(&r, &chunk) || chunk != TIX_CHUNK) {
        seterr(err, errlen, "bad header (chunk size)");
        return EBADMSG;
    }
    if (rd_uv(&r, &count) || count > TIX_MAX_MEMBERS) {
        seterr(err, errlen, "bad header (member count)");
        return EBADMSG;
    }

    size_t limit = TIX_MEM_FLOOR +
                   (len > (SIZE_MAX - TIX_MEM_FLOOR) / TIX_MEM_RATIO
                        ? SIZE_MAX - TIX_MEM_FLOOR : len * TIX_MEM_RATIO);
    struct buf body = {0};
    int rc = inflate_all(r.p, (size_t)(r.end - r.p), limit, &body, err, errlen);
    if (rc) {
        free(body.p);
        return rc;
    }

    /* Pass 1: decode and validate everything, sizing the parsed form. */
    char *prev = malloc(TIX_PATH_MAX + 1);
    if (!prev) {
        free(body.p);
        return ENOMEM;
    }
    size_t prevlen = 0, strbytes = 0, nsumtot = 0;
    struct rd b = { body.p, body.p + body.len };
    struct tix_member m;
    size_t linklen;
    const unsigned char *raws;
    const char *why = NULL;
    uint64_t i;
    for (i = 0; i < count && !why; i++) {
        why = decode_member(&b, ver, prev, &prevlen, &m, &linklen, &raws);
        if (!why)
            why = member_problem(&m, prevlen, linklen);
        if (!why)
            why = range_problem(&m, src.size);
        if (!why) {
            strbytes += prevlen + 1 + (m.link ? linklen + 1 : 0);
            nsumtot += m.nsums;
        }
    }
    if (!why && b.p != b.end)
        why = "bytes after the last member";
    if (why) {
        if (i)
            seterr(err, errlen, "member %llu: %s", (unsigned long long)(i - 1), why);
        else
            seterr(err, errlen, "%s", why);
        free(prev);
        free(body.p);
        return EBADMSG;
    }
    /* count <= body bytes (every member takes >= 14), so these cannot overflow */
    size_t need = (size_t)count * sizeof(struct tix_member) + strbytes + nsumtot * 4;
    if (need > limit) {
        seterr(err, errlen, "index needs %zu bytes of memory, more than its bound %zu",
               need, limit);
        free(prev);
        free(body.p);
        return EBADMSG;
    }

    /* Pass 2: fill (the stream is known good). */
    tix_index *ix = calloc(1, sizeof *ix);
    if (ix) {
        ix->m = malloc(count ? (size_t)count * sizeof *ix->m : 1);
        ix->strings = malloc(strbytes ? strbytes : 1);
        ix->sums = malloc(nsumtot ? nsumtot * 4 : 1);
    }
    if (!ix || !ix->m || !ix->strings || !ix->sums) {
        tix_free(ix);
        free(prev);
        free(body.p);
        return ENOMEM;
    }
    ix->src = src;
    ix->n = (size_t)count;
    b.p = body.p;
    prevlen = 0;
    char *sp = ix->strings;
    uint32_t *up = ix->sums;
    for (i = 0; i < count; i++) {
        struct tix_member *o = &ix->m[i];
        decode_member(&b, ver, prev, &prevlen, o, &linklen, &raws);
        memcpy(sp, prev, prevlen + 1);
        o->path = sp;
        sp += prevlen + 1;
        if (o->link) {
            memcpy(sp, o->link, linklen);
            sp[linklen] = '\0';
            o->link = sp;
            sp += linklen + 1;
        }
        for (uint32_t k = 0; k < o->nsums; k++)
            up[k] = get_le32(raws + 4 * (size_t)k);
        o->sums = o->nsums ? up : NULL;
        up += o->nsums;
    }
    free(prev);
    free(body.p);
    *out = ix;
    return 0;
}

const struct tix_source *tix_get_source(const tix_index *ix)
{
    return &ix->src;
}

size_t tix_count(const tix_index *ix)
{
    return ix->n;
}

int tix_get(const tix_index *ix, size_t i, struct tix_member *m)
{
    if (i >= ix->n)
        return ERANGE;
    *m = ix->m[i];
    return 0;
}

void tix_free(tix_index *ix)
{
    if (!ix)
        return;
    free(ix->m);
    free(ix->strings);
    free(ix->sums);
    free(ix);
}

bool tix_matches(const tix_index *ix, const struct tix_source *actual)
{
    if (!ix || !actual || ix->src.size != actual->size)
        return false;
    if (ix->src.sha256[0] && actual->sha256[0])
        return strcmp(ix->src.sha256, actual->sha256) == 0;
    if (ix->src.version[0] && actual->version[0])
        return strcmp(ix->src.version, actual->version) == 0;
    return false;
}
