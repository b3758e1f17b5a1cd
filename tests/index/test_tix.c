/* test_tix.c: unit tests of the run index codec: round trips, size and speed
 * at 1M members, rejection of every corruption, bounds on hostile input. */
#include "kvstore/tarindex.h"

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct tix_source source(uint64_t size, const char *ver, const char *sha)
{
    struct tix_source s;
    memset(&s, 0, sizeof s);
    s.size = size;
    snprintf(s.version, sizeof s.version, "%s", ver);
    snprintf(s.sha256, sizeof s.sha256, "%s", sha);
    return s;
}

#define SHA_A "a3f1c9d2e4b5a6978812233445566778899aabbccddeeff00112233445566778"
#define SHA_B "b3f1c9d2e4b5a6978812233445566778899aabbccddeeff00112233445566778"

/* ---- a hand encoder of the documented format (independent of the writer) */

struct raw {
    unsigned char *p;
    size_t len, cap;
};

static void raw_put(struct raw *r, const void *d, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 64;
        r->p = realloc(r->p, r->cap);
        ck_assert_ptr_nonnull(r->p);
    }
    memcpy(r->p + r->len, d, n);
    r->len += n;
}

static void raw_uv(struct raw *r, uint64_t v)
{
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        if (v)
            c |= 0x80;
        raw_put(r, &c, 1);
    } while (v);
}

static void raw_le32(struct raw *r, uint32_t v)
{
    unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };
    raw_put(r, b, 4);
}

/* One member record of the body; path given whole (prefix length 0). */
static void raw_member(struct raw *b, const char *path, uint8_t type, uint64_t size,
                       uint64_t off, uint64_t nsums, const char *link)
{
    raw_uv(b, 0);
    raw_uv(b, strlen(path));
    raw_put(b, path, strlen(path));
    raw_put(b, &type, 1);
    raw_uv(b, 0);          /* flags */
    raw_uv(b, 0644);       /* mode */
    raw_uv(b, 1000);       /* uid */
    raw_uv(b, 1000);       /* gid */
    raw_uv(b, size);
    raw_uv(b, 2 * 1700000000ull); /* zigzag mtime */
    raw_uv(b, 5);          /* nsec */
    raw_uv(b, link ? strlen(link) + 1 : 0);
    if (link)
        raw_put(b, link, strlen(link));
    raw_uv(b, 0);          /* rdev */
    raw_uv(b, off);
    raw_uv(b, nsums);
    for (uint64_t i = 0; i < nsums; i++)
        raw_le32(b, 0x12345678u);
}

/* A whole index file: header, deflated body, SHA-256 trailer. */
static void raw_index(struct raw *out, uint32_t version, uint64_t tsize,
                      uint64_t count, const struct raw *body)
{
    raw_put(out, "TARNFSIX", 8);
    raw_le32(out, version);
    raw_uv(out, tsize);
    raw_uv(out, 2);
    raw_put(out, "v1", 2);
    raw_uv(out, 0);
    raw_uv(out, TIX_CHUNK);
    raw_uv(out, count);
    uLongf zl = compressBound(body->len);
    unsigned char *z = malloc(zl);
    ck_assert_int_eq(compress(z, &zl, body->p ? body->p : (const Bytef *)"", body->len), Z_OK);
    raw_put(out, z, zl);
    free(z);
    unsigned char d[32];
    unsigned int dl;
    ck_assert_int_eq(EVP_Digest(out->p, out->len, d, &dl, EVP_sha256(), NULL), 1);
    raw_put(out, d, 32);
}

static int parse_raw(uint32_t version, uint64_t tsize, uint64_t count,
                     const struct raw *body, char *err, size_t errlen)
{
    struct raw f = {0};
    raw_index(&f, version, tsize, count, body);
    tix_index *ix = NULL;
    int rc = tix_parse(f.p, f.len, &ix, err, errlen);
    if (!rc)
        tix_free(ix);
    free(f.p);
    return rc;
}

/* ---- a sample index with every type ------------------------------------ */

static char longpath[TIX_PATH_MAX + 1];
static char longlink[TIX_PATH_MAX + 1];
static uint32_t bigsums[5] = { 1, 2, 3, 4, 0xffffffffu };

static size_t sample(struct tix_member *m)
{
    memset(longpath, 'p', TIX_PATH_MAX);
    memcpy(longpath, "run/deep/", 9);
    memset(longlink, 'l', TIX_PATH_MAX);
    size_t n = 0;
    memset(m, 0, 12 * sizeof *m);
    m[n++] = (struct tix_member){ .path = "run", .type = TIX_DIR, .mode = 0755,
                                  .uid = 1, .gid = 2, .mtime_sec = 1700000000,
                                  .mtime_nsec = 999999999, .data_off = 512 };
    m[n++] = (struct tix_member){ .path = "run/a.txt", .type = TIX_REG, .mode = 04755,
                                  .uid = 4294967295u, .gid = 0, .size = 5 * TIX_CHUNK - 7,
                                  .mtime_sec = -86400 * 365, .mtime_nsec = 1,
                                  .data_off = 1536, .nsums = 5, .sums = bigsums };
    m[n++] = (struct tix_member){ .path = "run/empty", .type = TIX_REG, .mode = 0,
                                  .size = 0, .data_off = 5 * TIX_CHUNK + 2048 };
    m[n++] = (struct tix_member){ .path = "run/sparse.img", .type = TIX_REG,
                                  .flags = TIX_F_SPARSE, .mode = 0600,
                                  .size = (uint64_t)1 << 40, .data_off = 5 * TIX_CHUNK + 2560 };
    m[n++] = (struct tix_member){ .path = "run/ln", .type = TIX_SYMLINK, .mode = 0777,
                                  .link = "a.txt", .data_off = 5 * TIX_CHUNK + 3072 };
    m[n++] = (struct tix_member){ .path = "run/ln-empty", .type = TIX_SYMLINK, .mode = 0777,
                                  .link = "", .data_off = 5 * TIX_CHUNK + 3072 };
    m[n++] = (struct tix_member){ .path = "run/hard", .type = TIX_HARDLINK, .mode = 0644,
                                  .link = "run/a.txt", .data_off = 5 * TIX_CHUNK + 3584 };
    m[n++] = (struct tix_member){ .path = "run/fifo", .type = TIX_FIFO, .mode = 0640,
                                  .data_off = 5 * TIX_CHUNK + 4096 };
    m[n++] = (struct tix_member){ .path = "run/chr", .type = TIX_CHR, .mode = 0660,
                                  .rdev = makedev(4, 64), .data_off = 5 * TIX_CHUNK + 4608 };
    m[n++] = (struct tix_member){ .path = "run/blk", .type = TIX_BLK, .mode = 0660,
                                  .rdev = makedev(259, 1 << 20), .data_off = 5 * TIX_CHUNK + 5120 };
    m[n++] = (struct tix_member){ .path = longpath, .type = TIX_SYMLINK, .mode = 0777,
                                  .link = longlink, .data_off = 5 * TIX_CHUNK + 9000 };
    m[n++] = (struct tix_member){ .path = "run/z", .type = TIX_REG, .mode = 0644, .size = 1,
                                  .data_off = 5 * TIX_CHUNK + 20000, .nsums = 1,
                                  .sums = bigsums + 4 };
    return n;
}

#define SAMPLE_SIZE (5 * (uint64_t)TIX_CHUNK + 30000)

static void *sample_index(size_t *len, const struct tix_source *src)
{
    struct tix_member m[12];
    size_t n = sample(m);
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(tix_writer_add(w, &m[i]), 0);
    void *buf;
    ck_assert_int_eq(tix_writer_finish(w, src, &buf, len), 0);
    tix_writer_free(w);
    return buf;
}

static void same_member(const struct tix_member *a, const struct tix_member *b)
{
    ck_assert_str_eq(a->path, b->path);
    if (a->link)
        ck_assert_str_eq(a->link, b->link);
    else
        ck_assert_ptr_null(b->link);
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_uint_eq(a->mode, b->mode);
    ck_assert_uint_eq(a->uid, b->uid);
    ck_assert_uint_eq(a->gid, b->gid);
    ck_assert_uint_eq(a->size, b->size);
    ck_assert_int_eq(a->mtime_sec, b->mtime_sec);
    ck_assert_uint_eq(a->mtime_nsec, b->mtime_nsec);
    ck_assert_uint_eq(a->rdev, b->rdev);
    ck_assert_uint_eq(a->data_off, b->data_off);
    ck_assert_uint_eq(a->nsums, b->nsums);
    ck_assert_uint_eq(a->ino, b->ino);
    for (uint32_t k = 0; k < a->nsums; k++)
        ck_assert_uint_eq(a->sums[k], b->sums[k]);
}

START_TEST(round_trip_every_type_and_long_paths)
{
    struct tix_source src = source(SAMPLE_SIZE, "\"etag-1\"", SHA_A);
    size_t len;
    void *buf = sample_index(&len, &src);
    tix_index *ix;
    char err[200] = "";
    ck_assert_int_eq(tix_parse(buf, len, &ix, err, sizeof err), 0);
    struct tix_member m[12];
    size_t n = sample(m);
    ck_assert_uint_eq(tix_count(ix), n);
    for (size_t i = 0; i < n; i++) {
        struct tix_member g;
        ck_assert_int_eq(tix_get(ix, i, &g), 0);
        same_member(&m[i], &g);
    }
    struct tix_member g;
    ck_assert_int_eq(tix_get(ix, n, &g), ERANGE);
    const struct tix_source *s = tix_get_source(ix);
    ck_assert_uint_eq(s->size, SAMPLE_SIZE);
    ck_assert_str_eq(s->version, "\"etag-1\"");
    ck_assert_str_eq(s->sha256, SHA_A);
    tix_free(ix);
    free(buf);
}
END_TEST

START_TEST(empty_index_round_trips)
{
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    struct tix_source src = source(0, "", "");
    void *buf;
    size_t len;
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
    tix_writer_free(w);
    tix_index *ix;
    ck_assert_int_eq(tix_parse(buf, len, &ix, NULL, 0), 0);
    ck_assert_uint_eq(tix_count(ix), 0);
    tix_free(ix);
    free(buf);
}
END_TEST

START_TEST(writer_refuses_what_the_parser_would)
{
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    uint32_t sums[3] = {0};
    struct tix_member ok = { .path = "r/f", .type = TIX_REG, .mode = 0644, .size = 10,
                             .data_off = 512, .nsums = 1, .sums = sums };
    struct tix_member m = ok;
    m.nsums = 2;
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.path = "";
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    char toolong[TIX_PATH_MAX + 2];
    memset(toolong, 'x', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = 0;
    m = ok; m.path = toolong;
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.type = 8;
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.mode = 010644;
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.mtime_nsec = 1000000000;
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.flags = TIX_F_SPARSE;   /* sparse: no sums */
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.type = TIX_SYMLINK; m.size = 0; m.nsums = 0;  /* no target */
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    m = ok; m.type = TIX_DIR;   /* a size on a directory */
    ck_assert_int_eq(tix_writer_add(w, &m), EINVAL);
    ck_assert_int_eq(tix_writer_add(w, &ok), 0);
    /* data beyond the tarball's size */
    struct tix_source src = source(521, "v", "");
    void *buf;
    size_t len;
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), EINVAL);
    tix_writer_free(w);
}
END_TEST

START_TEST(every_single_byte_flip_is_rejected)
{
    struct tix_source src = source(SAMPLE_SIZE, "etag", SHA_A);
    size_t len;
    unsigned char *buf = sample_index(&len, &src);
    static const unsigned char masks[] = { 0x01, 0x80, 0xff };
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof masks; k++) {
            buf[i] ^= masks[k];
            tix_index *ix = NULL;
            char err[200] = "";
            int rc = tix_parse(buf, len, &ix, err, sizeof err);
            if (rc == 0)
                ck_abort_msg("flip of byte %zu (mask %#x) accepted", i, masks[k]);
            ck_assert(rc == EBADMSG || rc == ENOTSUP);
            ck_assert_ptr_null(ix);
            ck_assert(err[0]);
            buf[i] ^= masks[k];
        }
    }
    printf("tix: %zu bytes, each flipped 3 ways: all rejected\n", len);
    free(buf);
}
END_TEST

START_TEST(truncation_at_every_length_is_rejected)
{
    struct tix_source src = source(SAMPLE_SIZE, "etag", SHA_A);
    size_t len;
    unsigned char *buf = sample_index(&len, &src);
    for (size_t l = 0; l < len; l++) {
        unsigned char *t = malloc(l ? l : 1);  /* exact size: ASan sees overreads */
        memcpy(t, buf, l);
        tix_index *ix = NULL;
        ck_assert_int_eq(tix_parse(t, l, &ix, NULL, 0), EBADMSG);
        ck_assert_ptr_null(ix);
        free(t);
    }
    /* and a byte appended */
    unsigned char *t = malloc(len + 1);
    memcpy(t, buf, len);
    t[len] = 0;
    tix_index *ix = NULL;
    ck_assert_int_eq(tix_parse(t, len + 1, &ix, NULL, 0), EBADMSG);
    free(t);
    free(buf);
}
END_TEST

START_TEST(newer_version_is_enotsup)
{
    struct raw body = {0};
    raw_member(&body, "r", TIX_DIR, 0, 0, 0, NULL);
    char err[200] = "";
    ck_assert_int_eq(parse_raw(3, 1024, 1, &body, err, sizeof err), ENOTSUP);
    ck_assert_ptr_nonnull(strstr(err, "version 3"));
    /* version 2 (inode numbers) reads members without one too */
    ck_assert_int_eq(parse_raw(2, 1024, 1, &body, err, sizeof err), 0);
    ck_assert_int_eq(parse_raw(0, 1024, 1, &body, err, sizeof err), EBADMSG);
    /* the hand encoder agrees with the parser on version 1 */
    ck_assert_int_eq(parse_raw(1, 1024, 1, &body, err, sizeof err), 0);
    free(body.p);
}
END_TEST

/* Issue 12 finding 10: a member's inode number (kept by write-back) goes
 * through the index; only an index that carries one is version 2, so an
 * older tarnfs still reads every other index. */
START_TEST(an_inode_number_round_trips_and_only_it_makes_version_2)
{
    struct tix_member m[12];
    size_t n = sample(m);
    m[0].ino = 16;
    m[1].ino = (UINT64_C(1) << 63) - 1;
    m[4].ino = 123456789;
    struct tix_source src = source(SAMPLE_SIZE, "v", "");
    for (int with = 0; with < 2; with++) {
        tix_writer *w;
        ck_assert_int_eq(tix_writer_new(&w), 0);
        for (size_t i = 0; i < n; i++) {
            struct tix_member t = m[i];
            if (!with)
                t.ino = 0;
            ck_assert_int_eq(tix_writer_add(w, &t), 0);
        }
        unsigned char *buf;
        size_t len;
        ck_assert_int_eq(tix_writer_finish(w, &src, (void **)&buf, &len), 0);
        tix_writer_free(w);
        ck_assert_uint_eq(buf[8], with ? 2 : 1);
        tix_index *ix;
        char err[200] = "";
        ck_assert_int_eq(tix_parse(buf, len, &ix, err, sizeof err), 0);
        for (size_t i = 0; i < n; i++) {
            struct tix_member g;
            ck_assert_int_eq(tix_get(ix, i, &g), 0);
            ck_assert_uint_eq(g.ino, with ? m[i].ino : 0);
        }
        tix_free(ix);
        free(buf);
    }
}
END_TEST

START_TEST(an_inode_number_on_a_hard_link_or_in_a_version_1_index_is_refused)
{
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    struct tix_member h = { .path = "r/h", .type = TIX_HARDLINK, .mode = 0644,
                            .link = "r/f", .data_off = 512, .ino = 99 };
    ck_assert_int_eq(tix_writer_add(w, &h), EINVAL);
    tix_writer_free(w);
    /* the wire flag (bit 31 of flags) and a number, by hand */
    for (uint32_t ver = 1; ver <= 2; ver++) {
        struct raw body = {0};
        raw_uv(&body, 0);
        raw_uv(&body, 1);
        raw_put(&body, "r", 1);
        unsigned char type = TIX_DIR;
        raw_put(&body, &type, 1);
        raw_uv(&body, UINT32_C(0x80000000));
        for (int k = 0; k < 10; k++)        /* mode .. nsums, all 0 */
            raw_uv(&body, 0);
        raw_uv(&body, 4242);                /* the inode number */
        char err[200] = "";
        ck_assert_int_eq(parse_raw(ver, 1024, 1, &body, err, sizeof err),
                         ver == 1 ? EBADMSG : 0);
        free(body.p);
    }
}
END_TEST

START_TEST(bad_nsums_and_offsets_are_ebadmsg)
{
    char err[200];
    struct raw b = {0};
    /* 3 MiB + 1 needs 4 sums */
    raw_member(&b, "r/f", TIX_REG, 3 * (uint64_t)TIX_CHUNK + 1, 512, 4, NULL);
    ck_assert_int_eq(parse_raw(1, 8 * (uint64_t)TIX_CHUNK, 1, &b, err, sizeof err), 0);
    b.len = 0;
    raw_member(&b, "r/f", TIX_REG, 3 * (uint64_t)TIX_CHUNK + 1, 512, 3, NULL);
    ck_assert_int_eq(parse_raw(1, 8 * (uint64_t)TIX_CHUNK, 1, &b, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "checksum count"));
    b.len = 0;
    raw_member(&b, "r/f", TIX_REG, 3 * (uint64_t)TIX_CHUNK + 1, 512, 5, NULL);
    ck_assert_int_eq(parse_raw(1, 8 * (uint64_t)TIX_CHUNK, 1, &b, err, sizeof err), EBADMSG);
    /* nsums far beyond the stream: refused before any allocation */
    b.len = 0;
    raw_member(&b, "r/f", TIX_REG, (uint64_t)1 << 50, 512, 0, NULL);
    b.len -= 1;
    raw_uv(&b, (uint64_t)1 << 30);
    ck_assert_int_eq(parse_raw(1, (uint64_t)1 << 51, 1, &b, err, sizeof err), EBADMSG);
    /* data past the tarball's end, and an offset wrapping around */
    b.len = 0;
    raw_member(&b, "r/f", TIX_REG, 1000, 512, 1, NULL);
    ck_assert_int_eq(parse_raw(1, 1512, 1, &b, err, sizeof err), 0);
    ck_assert_int_eq(parse_raw(1, 1511, 1, &b, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "beyond the tarball"));
    b.len = 0;
    raw_member(&b, "r/f", TIX_REG, 1000, UINT64_MAX - 10, 1, NULL);
    ck_assert_int_eq(parse_raw(1, UINT64_MAX, 1, &b, err, sizeof err), EBADMSG);
    b.len = 0;
    raw_member(&b, "r", TIX_DIR, 0, 5000, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    /* member count: more than present, fewer than present, beyond the cap */
    b.len = 0;
    raw_member(&b, "r", TIX_DIR, 0, 0, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, 2, &b, err, sizeof err), EBADMSG);
    raw_member(&b, "r/x", TIX_DIR, 0, 0, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    ck_assert_int_eq(parse_raw(1, 4096, TIX_MAX_MEMBERS + 1, &b, err, sizeof err), EBADMSG);
    ck_assert_int_eq(parse_raw(1, 4096, TIX_MAX_MEMBERS, &b, err, sizeof err), EBADMSG);
    /* a shared prefix longer than the previous path */
    b.len = 0;
    raw_member(&b, "r", TIX_DIR, 0, 0, 0, NULL);
    raw_uv(&b, 5);
    raw_uv(&b, 1);
    raw_put(&b, "x", 1);
    ck_assert_int_eq(parse_raw(1, 4096, 2, &b, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "prefix"));
    /* a NUL in a path, a symlink without target, an unknown type */
    b.len = 0;
    raw_member(&b, "r", TIX_DIR, 0, 0, 0, NULL);
    b.p[2] = 0;
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    b.len = 0;
    raw_member(&b, "r/l", TIX_SYMLINK, 0, 0, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    b.len = 0;
    raw_member(&b, "r/l", 9, 0, 0, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    free(b.p);
}
END_TEST

START_TEST(hostile_input_is_bounded)
{
    char err[200];
    /* a deflate bomb: 64 MiB of zeros compress to ~64 KiB */
    struct raw b = {0};
    size_t big = (size_t)64 << 20;
    b.p = calloc(1, big);
    b.len = b.cap = big;
    double t0 = now();
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "inflates beyond"));
    printf("tix: a 64 MiB deflate bomb refused in %.2f s (%s)\n", now() - t0, err);
    free(b.p);
    /* 2^28 members announced, a few present: refused at the first missing */
    memset(&b, 0, sizeof b);
    for (int i = 0; i < 100; i++)
        raw_member(&b, "r", TIX_DIR, 0, 0, 0, NULL);
    ck_assert_int_eq(parse_raw(1, 4096, TIX_MAX_MEMBERS, &b, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "member 100"));
    /* 10-byte varints with the 64th bit overflowing */
    b.len = 0;
    unsigned char over[11] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f, 0 };
    raw_put(&b, over, sizeof over);
    ck_assert_int_eq(parse_raw(1, 4096, 1, &b, err, sizeof err), EBADMSG);
    free(b.p);
}
END_TEST

START_TEST(million_members_size_and_parse_time)
{
    const size_t n = 1000000;
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    char path[256];
    uint32_t sums[2] = { 0xdeadbeef, 0x01020304 };
    uint64_t off = 512;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        /* a NovaSeq-like tree: lanes, cycles, tiles */
        snprintf(path, sizeof path,
                 "241023_A01295_0432_BHK3NFDRX5/Data/Intensities/BaseCalls/L%03zu/C%zu.1/s_%zu_%zu.cbcl",
                 i / 250000 + 1, (i / 1000) % 250 + 1, i / 250000 + 1, 1101 + i % 1000);
        uint64_t size = 1000 + (i * 7919) % 3000000;
        struct tix_member m = { .path = path, .type = TIX_REG, .mode = 0644,
                                .uid = 1000, .gid = 1000, .size = size,
                                .mtime_sec = 1729700000 + (int64_t)(i / 100),
                                .mtime_nsec = (uint32_t)(i * 1000003 % 1000000000),
                                .data_off = off, .nsums = size > TIX_CHUNK ? 2 : 1,
                                .sums = sums };
        if (size > 2 * (uint64_t)TIX_CHUNK)
            m.size = 2 * (uint64_t)TIX_CHUNK;
        sums[0] = (uint32_t)(i * 2654435761u);
        ck_assert_int_eq(tix_writer_add(w, &m), 0);
        off += 512 + (m.size + 511) / 512 * 512;
    }
    struct tix_source src = source(off, "", SHA_A);
    void *buf;
    size_t len;
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
    tix_writer_free(w);
    double t1 = now();
    tix_index *ix;
    ck_assert_int_eq(tix_parse(buf, len, &ix, NULL, 0), 0);
    double t2 = now();
    ck_assert_uint_eq(tix_count(ix), n);
    struct tix_member g;
    ck_assert_int_eq(tix_get(ix, n - 1, &g), 0);
    ck_assert_str_eq(g.path, path);
    printf("tix: 1,000,000 members: index %zu bytes (%.1f bytes/member), write %.2f s, "
           "parse %.2f s\n", len, (double)len / n, t1 - t0, t2 - t1);
    tix_free(ix);
    free(buf);
}
END_TEST

START_TEST(sums_are_crc32_per_chunk_whatever_the_pieces)
{
    size_t size = 3 * TIX_CHUNK + 12345;
    unsigned char *d = malloc(size);
    for (size_t i = 0; i < size; i++)
        d[i] = (unsigned char)(i * 31 + (i >> 13));
    struct tix_sums s = {0};
    size_t pos = 0, piece = 1;
    while (pos < size) {
        size_t take = piece < size - pos ? piece : size - pos;
        ck_assert_int_eq(tix_sums_add(&s, d + pos, take), 0);
        pos += take;
        piece = piece * 3 + 7;
        if (piece > 700000)
            piece = 1;
    }
    uint32_t n;
    const uint32_t *v = tix_sums_finish(&s, &n);
    ck_assert_uint_eq(n, 4);
    for (uint32_t k = 0; k < 4; k++) {
        size_t cl = k < 3 ? TIX_CHUNK : 12345;
        ck_assert_uint_eq(v[k], tix_crc(d + (size_t)k * TIX_CHUNK, cl));
        ck_assert_uint_eq(v[k], (uint32_t)crc32(0, d + (size_t)k * TIX_CHUNK, (uInt)cl));
    }
    /* short and unaligned pieces take other paths in ISA-L */
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len < 300; len += 1 + len / 16)
            ck_assert_uint_eq(tix_crc(d + off, len), (uint32_t)crc32(0, d + off, (uInt)len));
    v = tix_sums_finish(&s, &n);   /* finishing again adds nothing */
    ck_assert_uint_eq(n, 4);
    tix_sums_reset(&s);
    ck_assert_int_eq(tix_sums_add(&s, d, TIX_CHUNK), 0);  /* exactly one chunk */
    v = tix_sums_finish(&s, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(v[0], tix_crc(d, TIX_CHUNK));
    tix_sums_reset(&s);
    v = tix_sums_finish(&s, &n);   /* empty member */
    ck_assert_uint_eq(n, 0);
    tix_sums_free(&s);
    free(d);
}
END_TEST

static tix_index *parse_with(const struct tix_source *src)
{
    size_t len;
    void *buf = sample_index(&len, src);
    tix_index *ix;
    ck_assert_int_eq(tix_parse(buf, len, &ix, NULL, 0), 0);
    free(buf);
    return ix;
}

START_TEST(matches_size_then_sha_else_version)
{
    struct tix_source both = source(SAMPLE_SIZE, "etag-1", SHA_A);
    tix_index *ix = parse_with(&both);
    struct tix_source a;
    a = source(SAMPLE_SIZE, "etag-1", SHA_A);
    ck_assert(tix_matches(ix, &a));
    a = source(SAMPLE_SIZE + 1, "etag-1", SHA_A);       /* size differs */
    ck_assert(!tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "etag-1", SHA_B);           /* sha wins over version */
    ck_assert(!tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "etag-2", SHA_A);           /* sha equal, version moved */
    ck_assert(tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "etag-1", "");              /* sha unknown: versions */
    ck_assert(tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "etag-2", "");
    ck_assert(!tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "", "");                    /* nothing to compare */
    ck_assert(!tix_matches(ix, &a));
    tix_free(ix);

    struct tix_source nover = source(SAMPLE_SIZE, "", SHA_A);
    ix = parse_with(&nover);
    a = source(SAMPLE_SIZE, "etag-1", "");              /* index has no version */
    ck_assert(!tix_matches(ix, &a));
    tix_free(ix);

    struct tix_source nosha = source(SAMPLE_SIZE, "etag-1", "");
    ix = parse_with(&nosha);
    a = source(SAMPLE_SIZE, "etag-1", SHA_A);
    ck_assert(tix_matches(ix, &a));
    a = source(SAMPLE_SIZE, "", SHA_A);
    ck_assert(!tix_matches(ix, &a));
    tix_free(ix);
}
END_TEST


/* ---- tix_scan over tarballs made by GNU tar ----------------------------- */

static char tmp[64];

static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        ck_abort_msg("command failed (%d): %s", rc, cmd);
}

static void write_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        fputc((int)(x >> 16), f);
    }
    ck_assert_int_eq(fclose(f), 0);
}

static char longdir[140], longname[170], longtarget[260];

/* tmp/run: every kind of member, long names and link targets; tmp/urun: the
 * same without what ustar cannot hold. */
static void make_trees(void)
{
    strcpy(tmp, "/tmp/tixscan-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    memset(longdir, 'd', 120);
    memset(longname, 'n', 150);
    memcpy(longname + 146, ".txt", 5);
    memset(longtarget, 't', 200);
    for (int t = 0; t < 2; t++) {
        const char *r = t ? "urun" : "run";
        char p[1024];
        sh("mkdir -p %s/%s/sub/deeper", tmp, r);
        snprintf(p, sizeof p, "%s/%s/small.txt", tmp, r);
        write_file(p, 13, 1);
        snprintf(p, sizeof p, "%s/%s/big.bin", tmp, r);
        write_file(p, 3 * TIX_CHUNK + 777, 2);
        snprintf(p, sizeof p, "%s/%s/exact.bin", tmp, r);
        write_file(p, TIX_CHUNK, 3);
        snprintf(p, sizeof p, "%s/%s/sub/deeper/odd.dat", tmp, r);
        write_file(p, 511, 4);
        sh("touch %s/%s/empty && ln %s/%s/big.bin %s/%s/hard && mkfifo %s/%s/fifo",
           tmp, r, tmp, r, tmp, r, tmp, r);
        sh("ln -s small.txt %s/%s/link", tmp, r);
        if (!t) {
            sh("mkdir -p %s/run/%s", tmp, longdir);
            snprintf(p, sizeof p, "%s/run/%s/%s", tmp, longdir, longname);
            write_file(p, 70000, 5);
            sh("ln -s %s %s/run/longlink", longtarget, tmp);
        }
    }
}

static ssize_t fd_read(void *arg, void *buf, size_t cap)
{
    ssize_t n = read(*(int *)arg, buf, cap);
    return n < 0 ? -errno : n;
}

static int scan_file(const char *tarball, struct tix_source *src, tix_index **ix,
                     char *err, size_t errlen)
{
    int fd = open(tarball, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    void *buf = NULL;
    size_t len = 0;
    int rc = tix_scan(fd_read, &fd, src, NULL, NULL, &buf, &len, err, errlen);
    close(fd);
    if (rc)
        return rc;
    ck_assert_int_eq(tix_parse(buf, len, ix, err, errlen), 0);
    free(buf);
    return 0;
}

/* Every regular member's bytes at data_off..+size in the tarball equal
 * the source file's, and the CRCs match; returns the number checked. */
static int check_ranges(const char *tarball, tix_index *ix, const char *root)
{
    FILE *t = fopen(tarball, "rb");
    ck_assert_ptr_nonnull(t);
    int checked = 0;
    for (size_t i = 0; i < tix_count(ix); i++) {
        struct tix_member m;
        ck_assert_int_eq(tix_get(ix, i, &m), 0);
        if (m.type != TIX_REG || (m.flags & TIX_F_SPARSE))
            continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", root, m.path);
        FILE *f = fopen(p, "rb");
        ck_assert_msg(f != NULL, "%s", p);
        unsigned char *a = malloc(m.size + 1), *b = malloc(m.size + 1);
        ck_assert_uint_eq(fread(a, 1, m.size + 1, f), m.size);
        fclose(f);
        ck_assert_int_eq(fseeko(t, (off_t)m.data_off, SEEK_SET), 0);
        ck_assert_uint_eq(fread(b, 1, m.size, t), m.size);
        ck_assert_msg(memcmp(a, b, m.size) == 0, "bytes of %s at %llu differ", m.path,
                      (unsigned long long)m.data_off);
        ck_assert_uint_eq(m.nsums, (m.size + TIX_CHUNK - 1) / TIX_CHUNK);
        for (uint32_t k = 0; k < m.nsums; k++) {
            uint64_t o = (uint64_t)k * TIX_CHUNK;
            size_t cl = m.size - o < TIX_CHUNK ? (size_t)(m.size - o) : TIX_CHUNK;
            ck_assert_uint_eq(m.sums[k], tix_crc(b + o, cl));
        }
        free(a);
        free(b);
        checked++;
    }
    fclose(t);
    return checked;
}

static const struct tix_member *find(tix_index *ix, const char *path, struct tix_member *m)
{
    for (size_t i = 0; i < tix_count(ix); i++) {
        ck_assert_int_eq(tix_get(ix, i, m), 0);
        if (strcmp(m->path, path) == 0)
            return m;
    }
    return NULL;
}

static void scan_format(const char *format, const char *tree, int want_regular)
{
    make_trees();
    char tarball[128], err[300] = "";
    snprintf(tarball, sizeof tarball, "%s/%s.tar", tmp, format);
    sh("tar -C %s --sort=name --format=%s -cf %s %s", tmp, format, tarball, tree);
    struct tix_source src;
    memset(&src, 0, sizeof src);
    snprintf(src.version, sizeof src.version, "%s", "nas-version");
    tix_index *ix;
    ck_assert_msg(scan_file(tarball, &src, &ix, err, sizeof err) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(tarball, &st), 0);
    const struct tix_source *s = tix_get_source(ix);
    ck_assert_uint_eq(s->size, (uint64_t)st.st_size);
    ck_assert_str_eq(s->version, "nas-version");
    char cmd[256], want[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum %s", tarball);
    FILE *p = popen(cmd, "r");
    ck_assert_int_eq(fscanf(p, "%64s", want), 1);
    pclose(p);
    ck_assert_str_eq(s->sha256, want);
    ck_assert_int_eq(check_ranges(tarball, ix, tmp), want_regular);

    struct tix_member m;
    char path[512];
    snprintf(path, sizeof path, "%s/hard", tree);
    ck_assert_ptr_nonnull(find(ix, path, &m));
    /* GNU tar archives the first name it meets as the file, the other as a link */
    ck_assert_uint_eq(m.type, TIX_HARDLINK);
    snprintf(path, sizeof path, "%s/big.bin", tree);
    ck_assert_str_eq(m.link, path);
    snprintf(path, sizeof path, "%s/link", tree);
    ck_assert_ptr_nonnull(find(ix, path, &m));
    ck_assert_uint_eq(m.type, TIX_SYMLINK);
    ck_assert_str_eq(m.link, "small.txt");
    snprintf(path, sizeof path, "%s/fifo", tree);
    ck_assert_ptr_nonnull(find(ix, path, &m));
    ck_assert_uint_eq(m.type, TIX_FIFO);
    snprintf(path, sizeof path, "%s/sub/deeper", tree);
    ck_assert_ptr_nonnull(find(ix, path, &m));
    ck_assert_uint_eq(m.type, TIX_DIR);
    ck_assert_ptr_nonnull(find(ix, tree, &m));
    ck_assert_uint_eq(m.type, TIX_DIR);
    snprintf(path, sizeof path, "%s/%s/small.txt", tmp, tree);
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/small.txt", tree);
    ck_assert_ptr_nonnull(find(ix, path, &m));
    ck_assert_uint_eq(m.mode, st.st_mode & 07777);
    ck_assert_uint_eq(m.uid, st.st_uid);
    ck_assert_int_eq(m.mtime_sec, st.st_mtim.tv_sec);
    if (strcmp(tree, "run") == 0) {
        ck_assert_ptr_nonnull(find(ix, "run/longlink", &m));
        ck_assert_str_eq(m.link, longtarget);
        snprintf(path, sizeof path, "run/%s/%s", longdir, longname);
        ck_assert_ptr_nonnull(find(ix, path, &m));
        ck_assert_uint_eq(m.size, 70000);
    }
    printf("tix_scan %s: %zu members, %d regular files' ranges and CRCs match\n",
           format, tix_count(ix), want_regular);
    tix_free(ix);
    sh("rm -rf %s", tmp);
}

START_TEST(scan_gnu_offsets_are_the_member_bytes)
{
    scan_format("gnu", "run", 6);
}
END_TEST

START_TEST(scan_pax_offsets_are_the_member_bytes)
{
    scan_format("pax", "run", 6);
}
END_TEST

START_TEST(scan_ustar_offsets_are_the_member_bytes)
{
    scan_format("ustar", "urun", 5);
}
END_TEST

START_TEST(scan_sparse_members_are_flagged_without_sums)
{
    make_trees();
    sh("mkdir %s/sp && truncate -s 5M %s/sp/holes.img && "
       "printf data | dd of=%s/sp/holes.img bs=1 seek=3000000 conv=notrunc status=none && "
       "echo plain > %s/sp/plain.txt", tmp, tmp, tmp, tmp);
    const char *fmts[] = { "gnu", "pax" };
    for (int i = 0; i < 2; i++) {
        char tarball[128], err[300] = "";
        snprintf(tarball, sizeof tarball, "%s/sparse-%s.tar", tmp, fmts[i]);
        sh("tar -C %s --sparse --format=%s -cf %s sp", tmp, fmts[i], tarball);
        struct tix_source src;
        memset(&src, 0, sizeof src);
        tix_index *ix;
        ck_assert_msg(scan_file(tarball, &src, &ix, err, sizeof err) == 0, "%s", err);
        struct tix_member m;
        ck_assert_ptr_nonnull(find(ix, "sp/holes.img", &m));
        ck_assert_uint_eq(m.type, TIX_REG);
        ck_assert_uint_eq(m.flags & TIX_F_SPARSE, TIX_F_SPARSE);
        ck_assert_uint_eq(m.size, 5 << 20);
        ck_assert_uint_eq(m.nsums, 0);
        ck_assert_int_eq(check_ranges(tarball, ix, tmp), 1);  /* plain.txt */
        tix_free(ix);
    }
    sh("rm -rf %s", tmp);
}
END_TEST

START_TEST(scan_refuses_compressed_truncated_and_garbage)
{
    make_trees();
    char err[300], t[160];
    struct tix_source src;
    memset(&src, 0, sizeof src);
    tix_index *ix;
    sh("tar -C %s -czf %s/r.tar.gz urun && tar -C %s --zstd -cf %s/r.tar.zst urun",
       tmp, tmp, tmp, tmp);
    snprintf(t, sizeof t, "%s/r.tar.gz", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), ENOTSUP);
    ck_assert_ptr_nonnull(strstr(err, "gzip"));
    snprintf(t, sizeof t, "%s/r.tar.zst", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), ENOTSUP);
    ck_assert_ptr_nonnull(strstr(err, "zstd"));
    /* cut in the middle of big.bin */
    sh("tar -C %s -cf %s/r.tar urun && head -c 2000000 %s/r.tar > %s/cut.tar",
       tmp, tmp, tmp, tmp);
    snprintf(t, sizeof t, "%s/cut.tar", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EIO);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    sh("head -c 100000 /dev/urandom > %s/junk", tmp);
    snprintf(t, sizeof t, "%s/junk", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EBADMSG);
    sh(": > %s/nothing", tmp);
    snprintf(t, sizeof t, "%s/nothing", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EBADMSG);
    /* the object is not what the caller says it is */
    snprintf(t, sizeof t, "%s/r.tar", tmp);
    src.size = 12345;
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EIO);
    src.size = 0;
    snprintf(src.sha256, sizeof src.sha256, "%s", SHA_A);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EIO);
    sh("rm -rf %s", tmp);
}
END_TEST

/* A member with an empty name (a hostile tarball) is the archive root: a
 * file there is refused with a clear error (its path was normalised to
 * "." in a copy one byte too short: a heap overflow under ASan). */
START_TEST(scan_refuses_a_file_with_an_empty_name)
{
    make_trees();
    char err[300], t[160];
    struct tix_source src;
    memset(&src, 0, sizeof src);
    tix_index *ix;
    sh("python3 -c 'import io, sys, tarfile\n"
       "with tarfile.open(sys.argv[1], \"w\", format=tarfile.USTAR_FORMAT) as t:\n"
       "    i = tarfile.TarInfo(\"\"); i.size = 1; t.addfile(i, io.BytesIO(b\"x\"))' "
       "%s/empty.tar", tmp);
    snprintf(t, sizeof t, "%s/empty.tar", tmp);
    ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "archive root"));
    sh("rm -rf %s", tmp);
}
END_TEST

/* A pax uid or gid past 32 bits (or negative) fails the scan, as kv_ingest
 * refuses it: cast to 32 bits, uid 2^32 + 1 was indexed as uid 1. */
START_TEST(scan_refuses_owner_ids_beyond_32_bits)
{
    strcpy(tmp, "/tmp/tixscan-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    static const char *const ids[] = { "uid=4294967297", "gid=4294967296", "uid=-1" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char err[300], t[160];
        struct tix_source src;
        memset(&src, 0, sizeof src);
        tix_index *ix;
        sh("python3 -c 'import io, sys, tarfile\n"
           "k, v = sys.argv[2].split(\"=\")\n"
           "with tarfile.open(sys.argv[1], \"w\", format=tarfile.PAX_FORMAT) as t:\n"
           "    i = tarfile.TarInfo(\"run/owned\"); i.size = 1\n"
           "    i.pax_headers = {k: v}; t.addfile(i, io.BytesIO(b\"x\"))' "
           "%s/ids.tar %s", tmp, ids[i]);
        snprintf(t, sizeof t, "%s/ids.tar", tmp);
        ck_assert_int_eq(scan_file(t, &src, &ix, err, sizeof err), EBADMSG);
        ck_assert_msg(strstr(err, "run/owned") && strstr(err, "out of range"), "%s", err);
    }
    sh("rm -rf %s", tmp);
}
END_TEST

static int cancel_after_1m(void *arg, uint64_t bytes)
{
    *(uint64_t *)arg = bytes;
    return bytes >= ((uint64_t)1 << 20);
}

START_TEST(scan_progress_reports_and_cancels)
{
    make_trees();
    char t[160], err[300];
    sh("tar -C %s -cf %s/r.tar urun", tmp, tmp);
    snprintf(t, sizeof t, "%s/r.tar", tmp);
    int fd = open(t, O_RDONLY);
    uint64_t seen = 0;
    void *buf = NULL;
    size_t len;
    struct tix_source src;
    memset(&src, 0, sizeof src);
    ck_assert_int_eq(tix_scan(fd_read, &fd, &src, cancel_after_1m, &seen, &buf, &len,
                              err, sizeof err), ECANCELED);
    ck_assert_ptr_null(buf);
    ck_assert_uint_ge(seen, (uint64_t)1 << 20);
    close(fd);
    sh("rm -rf %s", tmp);
}
END_TEST

/* A pax member that asks for an inode number (as tarnfsd's write-back
 * writes it, SCHILY.xattr only) is indexed with it; a malformed or
 * out-of-range number is ignored; GNU tar reads the tarball silently. */
START_TEST(scan_reads_the_inode_number_a_member_keeps)
{
    strcpy(tmp, "/tmp/tixscan-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    char tarball[128];
    snprintf(tarball, sizeof tarball, "%s/ino.tar", tmp);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax(a);
    ck_assert_int_eq(archive_write_set_format_option(a, "pax", "xattrheader",
                                                     "SCHILY"), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_open_filename(a, tarball), ARCHIVE_OK);
    static const struct { const char *path, *ino; uint64_t want; } mem[] = {
        { "r/kept", "987654321", 987654321 },
        { "r/max", "9223372036854775807", (UINT64_C(1) << 63) - 1 },
        { "r/over", "9223372036854775808", 0 },
        { "r/junk", "12x", 0 },
        { "r/empty", "", 0 },
        { "r/none", NULL, 0 },
    };
    struct archive_entry *e = archive_entry_new();
    for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++) {
        archive_entry_clear(e);
        archive_entry_copy_pathname(e, mem[i].path);
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_size(e, 3);
        if (mem[i].ino)
            archive_entry_xattr_add_entry(e, TIX_INO_XATTR, mem[i].ino,
                                          strlen(mem[i].ino));
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_data(a, "abc", 3), 3);
    }
    archive_entry_free(e);
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);

    struct tix_source src;
    memset(&src, 0, sizeof src);
    tix_index *ix;
    char err[300] = "";
    ck_assert_msg(scan_file(tarball, &src, &ix, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++) {
        struct tix_member m;
        ck_assert_ptr_nonnull(find(ix, mem[i].path, &m));
        ck_assert_uint_eq(m.ino, mem[i].want);
    }
    tix_free(ix);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tar -tf %s 2>&1 >/dev/null | grep -q .", tarball);
    ck_assert_msg(system(cmd) != 0, "GNU tar warned about %s", tarball);
    sh("rm -rf %s", tmp);
}
END_TEST

Suite *tix_suite(void);
Suite *tix_suite(void)
{
    Suite *s = suite_create("tarindex");
    TCase *c = tcase_create("codec");
    tcase_set_timeout(c, 600);
    tcase_add_test(c, round_trip_every_type_and_long_paths);
    tcase_add_test(c, empty_index_round_trips);
    tcase_add_test(c, writer_refuses_what_the_parser_would);
    tcase_add_test(c, every_single_byte_flip_is_rejected);
    tcase_add_test(c, truncation_at_every_length_is_rejected);
    tcase_add_test(c, newer_version_is_enotsup);
    tcase_add_test(c, an_inode_number_round_trips_and_only_it_makes_version_2);
    tcase_add_test(c, an_inode_number_on_a_hard_link_or_in_a_version_1_index_is_refused);
    tcase_add_test(c, bad_nsums_and_offsets_are_ebadmsg);
    tcase_add_test(c, hostile_input_is_bounded);
    tcase_add_test(c, million_members_size_and_parse_time);
    tcase_add_test(c, sums_are_crc32_per_chunk_whatever_the_pieces);
    tcase_add_test(c, matches_size_then_sha_else_version);
    suite_add_tcase(s, c);
    TCase *sc = tcase_create("scan");
    tcase_set_timeout(sc, 300);
    tcase_add_test(sc, scan_gnu_offsets_are_the_member_bytes);
    tcase_add_test(sc, scan_pax_offsets_are_the_member_bytes);
    tcase_add_test(sc, scan_ustar_offsets_are_the_member_bytes);
    tcase_add_test(sc, scan_sparse_members_are_flagged_without_sums);
    tcase_add_test(sc, scan_refuses_compressed_truncated_and_garbage);
    tcase_add_test(sc, scan_refuses_a_file_with_an_empty_name);
    tcase_add_test(sc, scan_refuses_owner_ids_beyond_32_bits);
    tcase_add_test(sc, scan_progress_reports_and_cancels);
    tcase_add_test(sc, scan_reads_the_inode_number_a_member_keeps);
    suite_add_tcase(s, sc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tix_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
