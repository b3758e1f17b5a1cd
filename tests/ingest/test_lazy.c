/* test_lazy.c: Check tests of index-first runs in kvstore: kv_ingest_index places members exactly as kv_ingest does, absent data reads as ENODATA (never zeros), kv_fill and kv_fill_batch store verified chunks (a batch killed or failing at a commit leaves none present), hostile indexes are refused. */
#include "kvstore/kvfs.h"
#include "kvstore/tarindex.h"

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <errno.h>
#include <zlib.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a tarball and its index, built together ---------------------------- */

struct mem {
    unsigned char *p;
    size_t n, cap;
};

static la_ssize_t mem_write(struct archive *a, void *arg, const void *buf,
                            size_t n)
{
    (void)a;
    struct mem *m = arg;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        ck_assert_ptr_nonnull(m->p);
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    return (la_ssize_t)n;
}

struct mb {
    const char *path;
    uint8_t type;               /* TIX_* */
    uint32_t perm;
    const unsigned char *data;
    size_t len;
    const char *link;
};

struct built {
    struct mem tar;
    void *ix;
    size_t ixlen;
};

/* Write members as a pax tarball (unblocked, so the bytes written after a
 * header are exactly the member's data offset) and their index. */
static struct built build(const struct mb *ms, size_t n)
{
    struct built b = { 0 };
    struct archive *a = archive_write_new();
    archive_write_set_format_pax(a);
    archive_write_set_bytes_per_block(a, 0);
    ck_assert_int_eq(archive_write_open(a, &b.tar, NULL, mem_write, NULL),
                     ARCHIVE_OK);
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    for (size_t i = 0; i < n; i++) {
        const struct mb *m = &ms[i];
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m->path);
        static const mode_t types[] = { 0, S_IFREG, S_IFDIR, S_IFLNK,
                                        S_IFREG, S_IFIFO, S_IFCHR, S_IFBLK };
        archive_entry_set_mode(e, types[m->type] | m->perm);
        archive_entry_set_uid(e, 1000 + (uid_t)i);
        archive_entry_set_gid(e, 2000);
        archive_entry_set_mtime(e, 1729677731 + (time_t)i, 123456789);
        if (m->type == TIX_SYMLINK)
            archive_entry_set_symlink(e, m->link);
        if (m->type == TIX_HARDLINK)
            archive_entry_set_hardlink(e, m->link);
        archive_entry_set_size(e, m->type == TIX_REG ? (la_int64_t)m->len : 0);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        uint64_t off = b.tar.n;
        if (m->type == TIX_REG && m->len)
            ck_assert_int_eq(archive_write_data(a, m->data, m->len),
                             (la_ssize_t)m->len);
        archive_entry_free(e);

        struct tix_sums s = { 0 };
        uint32_t nsums = 0;
        const uint32_t *sums = NULL;
        if (m->type == TIX_REG) {
            ck_assert_int_eq(tix_sums_add(&s, m->data, m->len), 0);
            sums = tix_sums_finish(&s, &nsums);
        }
        struct tix_member t = {
            .path = m->path, .link = m->link, .type = m->type,
            .mode = m->perm, .uid = 1000 + (uint32_t)i, .gid = 2000,
            .size = m->type == TIX_REG ? m->len : 0,
            .mtime_sec = 1729677731 + (int64_t)i, .mtime_nsec = 123456789,
            .data_off = m->type == TIX_REG ? off : 0,
            .nsums = nsums, .sums = sums,
        };
        ck_assert_int_eq(tix_writer_add(w, &t), 0);
        tix_sums_free(&s);
    }
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    struct tix_source src = { .size = b.tar.n };
    snprintf(src.version, sizeof src.version, "v1");
    ck_assert_int_eq(tix_writer_finish(w, &src, &b.ix, &b.ixlen), 0);
    tix_writer_free(w);
    return b;
}

static void built_free(struct built *b)
{
    free(b->tar.p);
    free(b->ix);
}

/* ---- fixture ------------------------------------------------------------ */

static char cache_dir[PATH_MAX];
static kv_cache *cache;

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(cache_dir, sizeof cache_dir, "%s/test_lazy.XXXXXX",
             tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(cache_dir));
    ck_assert_int_eq(kv_cache_open(cache_dir, true, &cache), 0);
}

static void teardown(void)
{
    kv_cache_close(cache);
    nftw(cache_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct src {
    const unsigned char *p;
    size_t n, pos;
};

static ssize_t src_read(void *arg, void *buf, size_t cap)
{
    struct src *s = arg;
    size_t k = s->n - s->pos < cap ? s->n - s->pos : cap;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (ssize_t)k;
}

static int ingest_tar(const char *name, const struct built *b)
{
    struct src s = { b->tar.p, b->tar.n, 0 };
    struct kv_ingest_result res;
    int err = kv_ingest(cache, name, src_read, &s, "v1", &res);
    if (err)
        fprintf(stderr, "kv_ingest: %s\n", res.error);
    return err;
}

static int ingest_ix(const char *name, const struct built *b, char *why,
                     size_t cap)
{
    tix_index *ix;
    char perr[256];
    int err = tix_parse(b->ix, b->ixlen, &ix, perr, sizeof perr);
    if (err) {
        snprintf(why, cap, "parse: %s", perr);
        return err;
    }
    struct kv_ingest_result res;
    err = kv_ingest_index(cache, name, ix, "v1", &res);
    snprintf(why, cap, "%s", res.error);
    tix_free(ix);
    return err;
}

static kv_ino find(kv_run *r, const char *path)
{
    kv_ino cur = kv_run_root(r);
    char *copy = strdup(path), *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
        if (kv_lookup(r, cur, c, &cur) != 0) {
            free(copy);
            return 0;
        }
    free(copy);
    return cur;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (unsigned char)(seed >> 24);
    }
    return p;
}

static int count_run(void *arg, const struct kv_runinfo *ri)
{
    (void)ri;
    (*(int *)arg)++;
    return 0;
}

/* Fill every absent chunk of ino from the tarball bytes. */
static void fill_all(kv_run *r, kv_ino ino, const struct built *b)
{
    for (;;) {
        uint32_t first, count;
        ck_assert_int_eq(kv_missing(r, ino, 0, UINT64_MAX, 100, &first,
                                    &count), 0);
        if (count == 0)
            return;
        uint64_t off;
        uint32_t len, crc;
        ck_assert_int_eq(kv_chunk_source(r, ino, first, &off, &len, &crc), 0);
        ck_assert_uint_le(off + len, b->tar.n);
        ck_assert_uint_eq(tix_crc(b->tar.p + off, len), crc);
        ck_assert_int_eq(kv_fill(r, ino, first, b->tar.p + off, len), 0);
    }
}

/* ---- the tree ------------------------------------------------------------ */

#define BIG (2 * 1024 * 1024 + 12345)   /* three chunks, the last short */

static unsigned char *big;

static size_t standard(struct mb *ms)
{
    static const unsigned char hello[] = "hello, world\n";
    big = pattern(BIG, 7);
    size_t n = 0;
    ms[n++] = (struct mb){ "RUN", TIX_DIR, 0750, NULL, 0, NULL };
    ms[n++] = (struct mb){ "RUN/RunInfo.xml", TIX_REG, 0644, hello,
                           sizeof hello - 1, NULL };
    ms[n++] = (struct mb){ "RUN/Data", TIX_DIR, 0755, NULL, 0, NULL };
    ms[n++] = (struct mb){ "RUN/Data/L001/big.cbcl", TIX_REG, 0640, big, BIG,
                           NULL };
    ms[n++] = (struct mb){ "RUN/empty", TIX_REG, 0600, NULL, 0, NULL };
    ms[n++] = (struct mb){ "RUN/link", TIX_SYMLINK, 0777, NULL, 0,
                           "Data/L001/big.cbcl" };
    ms[n++] = (struct mb){ "RUN/hard", TIX_HARDLINK, 0640, NULL, 0,
                           "RUN/Data/L001/big.cbcl" };
    ms[n++] = (struct mb){ "RUN/fifo", TIX_FIFO, 0644, NULL, 0, NULL };
    ms[n++] = (struct mb){ "RUN/RunInfo.xml", TIX_REG, 0600, hello, 5, NULL };
    return n;
}

static const char *const paths[] = {
    "", "RunInfo.xml", "Data", "Data/L001", "Data/L001/big.cbcl", "empty",
    "link", "hard", "fifo",
};

START_TEST(an_index_run_has_the_tree_and_inode_numbers_of_a_full_ingest)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    enum { NP = sizeof paths / sizeof *paths };
    kv_ino fino[NP];
    struct kv_attr fat[NP];
    /* The full ingest first, then the index run replacing it. */
    ck_assert_int_eq(ingest_tar("2024/RUN", &b), 0);
    kv_run *full;
    ck_assert_int_eq(kv_run_open(cache, "2024/RUN", &full), 0);
    for (size_t i = 0; i < NP; i++) {
        fino[i] = find(full, paths[i]);
        ck_assert_msg(fino[i] != 0, "%s missing from the full run", paths[i]);
        ck_assert_int_eq(kv_getattr(full, fino[i], &fat[i]), 0);
    }
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(full, &present, &total), 0);
    ck_assert_uint_eq(total, 0);
    kv_run_close(full);
    ck_assert_msg(ingest_ix("2024/RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *lazy;
    ck_assert_int_eq(kv_run_open(cache, "2024/RUN", &lazy), 0);
    for (size_t i = 0; i < NP; i++) {
        kv_ino li = find(lazy, paths[i]);
        ck_assert_msg(li == fino[i], "%s: inode %llu, full ingest %llu",
                      paths[i], (unsigned long long)li,
                      (unsigned long long)fino[i]);
        struct kv_attr la, *fa = &fat[i];
        ck_assert_int_eq(kv_getattr(lazy, li, &la), 0);
        ck_assert_msg(la.mode == fa->mode, "%s: mode %o vs %o", paths[i],
                      la.mode, fa->mode);
        ck_assert_uint_eq(la.nlink, fa->nlink);
        ck_assert_uint_eq(la.uid, fa->uid);
        ck_assert_uint_eq(la.gid, fa->gid);
        ck_assert_uint_eq(la.size, fa->size);
        ck_assert_uint_eq(la.rdev, fa->rdev);
        /* Data/L001 has no member: made "now" by both. */
        ck_assert_msg(strcmp(paths[i], "Data/L001") == 0 ||
                      (la.mtime.tv_sec == fa->mtime.tv_sec &&
                       la.mtime.tv_nsec == fa->mtime.tv_nsec),
                      "%s: mtime %lld.%09ld vs %lld.%09ld", paths[i],
                      (long long)la.mtime.tv_sec, la.mtime.tv_nsec,
                      (long long)fa->mtime.tv_sec, fa->mtime.tv_nsec);
    }
    /* The duplicate RunInfo.xml: the last one won in both. */
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(lazy, find(lazy, "RunInfo.xml"), &a), 0);
    ck_assert_uint_eq(a.size, 5);
    ck_assert_uint_eq(a.mode & 07777, 0600);
    char t[64];
    size_t tl;
    ck_assert_int_eq(kv_readlink(lazy, find(lazy, "link"), t, sizeof t, &tl), 0);
    ck_assert_uint_eq(tl, strlen("Data/L001/big.cbcl"));
    ck_assert_uint_eq(find(lazy, "hard"), find(lazy, "Data/L001/big.cbcl"));
    ck_assert_int_eq(kv_run_presence(lazy, &present, &total), 0);
    ck_assert_uint_eq(present, 0);
    ck_assert_uint_eq(total, BIG + 5);
    kv_run_close(lazy);
    built_free(&b);
    free(big);
}
END_TEST

/* What a build served while it runs tells its watcher. */
struct seen {
    char path[32][64];
    unsigned placed_depth[32];
    size_t np;
    int level[16];
    size_t placed_at_level[16];   /* members placed when each level came */
    size_t nl;
    bool staged;
};

static unsigned rel_depth(const char *p)
{
    if (!*p)
        return 0;
    unsigned d = 1;
    for (; *p; p++)
        d += *p == '/';
    return d;
}

static void w_staged(void *arg, kv_run *r)
{
    (void)r;
    ((struct seen *)arg)->staged = true;
}

static void w_placed(void *arg, const char *relpath, kv_ino ino)
{
    (void)ino;
    struct seen *s = arg;
    ck_assert(s->staged);
    ck_assert_uint_lt(s->np, 32);
    snprintf(s->path[s->np], sizeof s->path[0], "%s", relpath);
    s->placed_depth[s->np++] = rel_depth(relpath);
}

static void w_level(void *arg, unsigned depth)
{
    struct seen *s = arg;
    ck_assert_uint_lt(s->nl, 16);
    s->level[s->nl] = (int)depth;
    s->placed_at_level[s->nl++] = s->np;
}

/* Build the index run "RUN" through kv_ingest_index_stream. */
static void ingest_ix_watched(const struct built *b, struct seen *s)
{
    tix_index *ix;
    char perr[256];
    ck_assert_int_eq(tix_parse(b->ix, b->ixlen, &ix, perr, sizeof perr), 0);
    memset(s, 0, sizeof *s);
    struct kv_ingest_watch w = { .arg = s, .staged = w_staged,
                                 .placed = w_placed, .level = w_level };
    struct kv_ingest_result res;
    kv_run *kr = NULL;
    ck_assert_int_eq(kv_ingest_index_stream(cache, "RUN", ix, "v1", 0, &w, &kr,
                                            &res), 0);
    ck_assert_ptr_nonnull(kr);
    kv_run_close(kr);
    tix_free(ix);
}

START_TEST(a_run_served_while_built_gets_its_shallow_members_first_and_each_level_whole)
{
    static const unsigned char one[] = "1", two[] = "22";
    struct mb ms[] = {
        { "RUN", TIX_DIR, 0755, NULL, 0, NULL },
        { "RUN/Data", TIX_DIR, 0755, NULL, 0, NULL },
        { "RUN/Data/L001", TIX_DIR, 0750, NULL, 0, NULL },
        { "RUN/Data/L001/a.bcl", TIX_REG, 0644, one, 1, NULL },
        { "RUN/Data/L001/b.bcl", TIX_REG, 0600, two, 2, NULL },
        { "RUN/Data/x.txt", TIX_REG, 0644, one, 1, NULL },
        { "RUN/Logs", TIX_DIR, 0755, NULL, 0, NULL },
        { "RUN/Logs/log", TIX_SYMLINK, 0777, NULL, 0, "../Data/x.txt" },
        { "RUN/RunInfo.xml", TIX_REG, 0644, two, 2, NULL },
    };
    size_t n = sizeof ms / sizeof *ms;
    struct built b = build(ms, n);
    /* The same index built the plain way, for comparison. */
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    static const char *const rel[] = { "Data", "Data/L001", "Data/L001/a.bcl",
        "Data/L001/b.bcl", "Data/x.txt", "Logs", "Logs/log", "RunInfo.xml" };
    enum { NR = sizeof rel / sizeof *rel };
    kv_ino want[NR];
    struct kv_attr wa[NR];
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    for (size_t i = 0; i < NR; i++) {
        want[i] = find(r, rel[i]);
        ck_assert_uint_ne(want[i], 0);
        ck_assert_int_eq(kv_getattr(r, want[i], &wa[i]), 0);
    }
    kv_run_close(r);
    struct seen s;
    ingest_ix_watched(&b, &s);
    /* Depth 1 (Data, Logs, RunInfo.xml: the last member) before depth 2,
     * and so on, index order within a depth. */
    ck_assert_uint_eq(s.np, n);
    for (size_t i = 1; i < s.np; i++)
        ck_assert_msg(s.placed_depth[i - 1] <= s.placed_depth[i],
                      "%s (depth %u) placed after %s", s.path[i],
                      s.placed_depth[i], s.path[i - 1]);
    ck_assert_str_eq(s.path[1], "Data");
    ck_assert_str_eq(s.path[2], "Logs");
    ck_assert_str_eq(s.path[3], "RunInfo.xml");
    /* A level is told once every member of it is placed, none deeper. */
    ck_assert_uint_eq(s.nl, 4);
    for (size_t l = 0; l < s.nl; l++) {
        ck_assert_int_eq(s.level[l], (int)l);
        for (size_t i = 0; i < s.np; i++)
            ck_assert_msg((i < s.placed_at_level[l]) ==
                          (s.placed_depth[i] <= (unsigned)l),
                          "level %zu told with %s placed=%d", l, s.path[i],
                          i < s.placed_at_level[l]);
    }
    /* The very run the index order gives: inode numbers and attributes. */
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    for (size_t i = 0; i < NR; i++) {
        kv_ino got = find(r, rel[i]);
        ck_assert_msg(got == want[i], "%s: inode %llu, not %llu", rel[i],
                      (unsigned long long)got, (unsigned long long)want[i]);
        struct kv_attr a;
        ck_assert_int_eq(kv_getattr(r, got, &a), 0);
        ck_assert_uint_eq(a.mode, wa[i].mode);
        ck_assert_uint_eq(a.size, wa[i].size);
        ck_assert_uint_eq(a.nlink, wa[i].nlink);
        ck_assert_int_eq(a.mtime.tv_sec, wa[i].mtime.tv_sec);
    }
    kv_run_close(r);
    built_free(&b);
}
END_TEST

START_TEST(a_run_whose_index_order_matters_is_built_in_that_order)
{
    /* The standard tree: a name twice (the last wins), a hard link, a
     * directory with no member of its own. */
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    struct seen s;
    ingest_ix_watched(&b, &s);
    ck_assert_uint_eq(s.nl, 0);
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_str_eq(s.path[i], i == 0 ? "" : ms[i].path + 4);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(r, find(r, "RunInfo.xml"), &a), 0);
    ck_assert_uint_eq(a.size, 5);
    ck_assert_uint_eq(find(r, "hard"), find(r, "Data/L001/big.cbcl"));
    kv_run_close(r);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(absent_data_reads_as_enodata_until_filled_then_as_the_bytes)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    kv_ino ino = find(r, "Data/L001/big.cbcl");
    char *buf = malloc(BIG);
    size_t got = 99;
    bool eof;
    /* Never zeros for absent data. */
    ck_assert_int_eq(kv_read(r, ino, 0, buf, 4096, &got, &eof), ENODATA);
    ck_assert_int_eq(kv_read(r, ino, BIG - 10, buf, 10, &got, &eof), ENODATA);
    uint32_t first, count;
    ck_assert_int_eq(kv_missing(r, ino, KV_CHUNK + 5, 2 * KV_CHUNK, 10,
                                &first, &count), 0);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(count, 2);
    /* Fill the middle chunk only: reads inside it work, across it do not. */
    uint64_t off;
    uint32_t len, crc;
    ck_assert_int_eq(kv_chunk_source(r, ino, 1, &off, &len, &crc), 0);
    ck_assert_uint_eq(len, KV_CHUNK);
    ck_assert_int_eq(memcmp(b.tar.p + off, big + KV_CHUNK, KV_CHUNK), 0);
    ck_assert_int_eq(kv_fill(r, ino, 1, b.tar.p + off, len), 0);
    ck_assert_int_eq(kv_fill(r, ino, 1, b.tar.p + off, len), 0); /* again: no-op */
    ck_assert_int_eq(kv_read(r, ino, KV_CHUNK + 100, buf, 5000, &got, &eof), 0);
    ck_assert_uint_eq(got, 5000);
    ck_assert_int_eq(memcmp(buf, big + KV_CHUNK + 100, 5000), 0);
    ck_assert_int_eq(kv_read(r, ino, KV_CHUNK - 1, buf, 2, &got, &eof), ENODATA);
    ck_assert_int_eq(kv_missing(r, ino, 0, BIG, 10, &first, &count), 0);
    ck_assert_uint_eq(first, 0);
    ck_assert_uint_eq(count, 1);
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, KV_CHUNK);
    /* Survives closing and reopening. */
    kv_run_close(r);
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    ck_assert_int_eq(kv_read(r, ino, KV_CHUNK, buf, 10, &got, &eof), 0);
    ck_assert_int_eq(kv_read(r, ino, 0, buf, 10, &got, &eof), ENODATA);
    /* Everything: the file reads whole and is an ordinary file again. */
    fill_all(r, ino, &b);
    fill_all(r, find(r, "RunInfo.xml"), &b);
    ck_assert_int_eq(kv_read(r, ino, 0, buf, BIG, &got, &eof), 0);
    ck_assert_uint_eq(got, BIG);
    ck_assert(eof);
    ck_assert_int_eq(memcmp(buf, big, BIG), 0);
    ck_assert_int_eq(kv_read(r, find(r, "RunInfo.xml"), 0, buf, 100, &got,
                             &eof), 0);
    ck_assert_uint_eq(got, 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    /* Whole, it still knows where its data came from (so the data may be
     * dropped and fetched again) until the run is settled for a change. */
    ck_assert_int_eq(kv_chunk_source(r, ino, 0, &off, &len, &crc), 0);
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, total);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(r, ino, &a), 0);
    ck_assert_uint_eq(a.used, BIG);
    kv_ino next;
    ck_assert_int_eq(kv_absent_next(r, 0, &next), 0);
    ck_assert_int_eq(kv_absent_settle(r), 0);
    ck_assert_int_eq(kv_chunk_source(r, ino, 0, &off, &len, &crc), ENOENT);
    ck_assert_int_eq(kv_absent_next(r, 0, &next), ENOENT);
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(total, 0);
    ck_assert_int_eq(kv_read(r, ino, 0, buf, BIG, &got, &eof), 0);
    ck_assert_int_eq(memcmp(buf, big, BIG), 0);
    /* Filling is not a change: mtime as in the archive. */
    ck_assert_int_eq(a.mtime.tv_nsec, 123456789);
    kv_run_close(r);
    free(buf);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(a_chunk_with_wrong_bytes_is_refused_and_stays_absent)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    kv_ino ino = find(r, "Data/L001/big.cbcl");
    uint64_t off;
    uint32_t len, crc;
    ck_assert_int_eq(kv_chunk_source(r, ino, 0, &off, &len, &crc), 0);
    unsigned char *bad = malloc(len);
    memcpy(bad, b.tar.p + off, len);
    bad[len / 2] ^= 1;
    ck_assert_int_eq(kv_fill(r, ino, 0, bad, len), EBADMSG);
    ck_assert_int_eq(kv_fill(r, ino, 0, b.tar.p + off, len - 1), EINVAL);
    ck_assert_int_eq(kv_fill(r, ino, 7, b.tar.p + off, len), ERANGE);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, ino, 0, bad, 100, &got, &eof), ENODATA);
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, 0);
    kv_run_close(r);
    free(bad);
    built_free(&b);
    free(big);
}
END_TEST

static const char *fail_op;
static int fail_once(void *arg, const char *op)
{
    (void)arg;
    if (fail_op && strcmp(op, fail_op) == 0) {
        fail_op = NULL;
        return EIO;
    }
    return 0;
}

START_TEST(a_fill_whose_commit_fails_leaves_the_chunk_absent_and_can_be_redone)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    kv_ino ino = find(r, "Data/L001/big.cbcl");
    uint64_t off;
    uint32_t len, crc;
    ck_assert_int_eq(kv_chunk_source(r, ino, 0, &off, &len, &crc), 0);
    kv_set_fault(fail_once, NULL);
    const char *ops[] = { "data-commit", "meta-commit" };
    char *buf = malloc(len);
    size_t got;
    bool eof;
    for (int i = 0; i < 2; i++) {
        fail_op = ops[i];
        ck_assert_int_eq(kv_fill(r, ino, 0, b.tar.p + off, len), EIO);
        ck_assert_int_eq(kv_read(r, ino, 0, buf, 10, &got, &eof), ENODATA);
        uint64_t present, total;
        ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
        ck_assert_uint_eq(present, 0);
        struct kv_attr a;
        ck_assert_int_eq(kv_getattr(r, ino, &a), 0);
        ck_assert_uint_eq(a.used, 0);
    }
    kv_set_fault(NULL, NULL);
    ck_assert_int_eq(kv_fill(r, ino, 0, b.tar.p + off, len), 0);
    ck_assert_int_eq(kv_read(r, ino, 0, buf, len, &got, &eof), 0);
    ck_assert_int_eq(memcmp(buf, big, len), 0);
    kv_run_close(r);
    free(buf);
    built_free(&b);
    free(big);
}
END_TEST

/* The chunks of big.cbcl and RunInfo.xml, straight from the tarball. */
static size_t batch_of(kv_run *r, const struct built *b,
                       struct kv_fill_chunk *cs)
{
    kv_ino big_ino = find(r, "Data/L001/big.cbcl");
    kv_ino info = find(r, "RunInfo.xml");
    ck_assert_uint_ne(big_ino, 0);
    ck_assert_uint_ne(info, 0);
    size_t n = 0;
    for (uint32_t c = 0; c < 4; c++) {
        kv_ino ino = c < 3 ? big_ino : info;
        uint32_t chunk = c < 3 ? c : 0;
        uint64_t off;
        uint32_t len, crc;
        ck_assert_int_eq(kv_chunk_source(r, ino, chunk, &off, &len, &crc), 0);
        cs[n++] = (struct kv_fill_chunk){ .ino = ino, .chunk = chunk,
                                          .buf = b->tar.p + off, .len = len };
    }
    return n;
}

/* Every chunk of the batch absent: reads ENODATA, nothing counted. */
static void assert_batch_absent(kv_run *r, const struct kv_fill_chunk *cs,
                                size_t n)
{
    char buf[16];
    size_t got;
    bool eof;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(kv_read(r, cs[i].ino, (uint64_t)cs[i].chunk * KV_CHUNK,
                                 buf, 1, &got, &eof), ENODATA);
        struct kv_attr a;
        ck_assert_int_eq(kv_getattr(r, cs[i].ino, &a), 0);
        ck_assert_uint_eq(a.used, 0);
    }
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, 0);
}

/* Every chunk of the batch present: reads the bytes. */
static void assert_batch_present(kv_run *r, const struct kv_fill_chunk *cs,
                                 size_t n)
{
    char *buf = malloc(KV_CHUNK);
    for (size_t i = 0; i < n; i++) {
        size_t got;
        bool eof;
        ck_assert_int_eq(kv_read(r, cs[i].ino, (uint64_t)cs[i].chunk * KV_CHUNK,
                                 buf, cs[i].len, &got, &eof), 0);
        ck_assert_uint_eq(got, cs[i].len);
        ck_assert_int_eq(memcmp(buf, cs[i].buf, cs[i].len), 0);
    }
    free(buf);
}

/* The standard tree's index built as run "RUN", and the run opened. */
static kv_run *standard_ix_run(struct built *b)
{
    struct mb ms[16];
    size_t n = standard(ms);
    *b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    return r;
}

/* A copy of chunk c with one byte wrong (*copy: its bytes, to free). */
static struct kv_fill_chunk one_byte_wrong(const struct kv_fill_chunk *c,
                                           unsigned char **copy)
{
    *copy = malloc(c->len);
    memcpy(*copy, c->buf, c->len);
    (*copy)[100] ^= 1;
    struct kv_fill_chunk w = *c;
    w.buf = *copy;
    return w;
}

/* After a batch of n whose first chunk (chunk 0 of its file) had wrong
 * bytes: that one alone refused and still absent, the others stored, and
 * the run's present bytes as want. */
static void assert_first_refused(kv_run *r, const struct kv_fill_chunk *all,
                                 size_t n, uint64_t want_present)
{
    ck_assert_int_eq(all[0].err, EBADMSG);
    for (size_t i = 1; i < n; i++)
        ck_assert_int_eq(all[i].err, 0);
    char c;
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, all[0].ino, 0, &c, 1, &got, &eof), ENODATA);
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, want_present);
}

START_TEST(a_batch_of_fills_stores_every_verified_chunk_and_refuses_only_bad_ones)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    struct kv_fill_chunk cs[8];
    size_t nc = batch_of(r, &b, cs);
    /* Chunk 1 twice (stored once), and a copy of chunk 0 with one byte
     * wrong, which alone is refused. */
    cs[nc++] = cs[1];
    unsigned char *bad;
    kv_ino info = cs[3].ino;
    struct kv_fill_chunk all[8] = { one_byte_wrong(&cs[0], &bad), cs[1],
                                    cs[2], cs[3], cs[4] };
    ck_assert_int_eq(kv_fill_batch(r, all, 5), 0);
    assert_first_refused(r, all, 5, BIG - KV_CHUNK + 5);
    assert_batch_present(r, cs + 1, 3);
    uint64_t present, total;
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(r, info, &a), 0);
    ck_assert_uint_eq(a.used, 5);
    /* The right bytes now, with the present ones again: all there. */
    ck_assert_int_eq(kv_fill_batch(r, cs, 4), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(cs[i].err, 0);
    assert_batch_present(r, cs, 4);
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, BIG + 5);
    ck_assert_uint_eq(total, BIG + 5);
    kv_run_close(r);
    free(bad);
    built_free(&b);
    free(big);
}
END_TEST

/* The prefetch stream's batches: each chunk with the CRC the caller got
 * from kv_chunk_source, chunks of one file apart from each other. */
START_TEST(a_batch_checked_against_the_callers_checksums_stores_the_same_and_refuses_wrong_bytes)
{
    struct built b;
    kv_run *r = standard_ix_run(&b);
    struct kv_fill_chunk cs[8];
    size_t nc = batch_of(r, &b, cs);
    ck_assert_uint_eq(nc, 4);
    for (size_t i = 0; i < nc; i++) {
        uint64_t off;
        uint32_t len;
        ck_assert_int_eq(kv_chunk_source(r, cs[i].ino, cs[i].chunk, &off, &len,
                                         &cs[i].crc), 0);
        cs[i].have_crc = true;
    }
    /* big chunk 0 with one byte wrong, then RunInfo.xml, then big chunks
     * 1 and 2, then chunk 1 again: big.cbcl's record is updated twice,
     * with another file between. */
    unsigned char *bad;
    struct kv_fill_chunk all[8] = { one_byte_wrong(&cs[0], &bad), cs[3],
                                    cs[1], cs[2], cs[1] };
    ck_assert_int_eq(kv_fill_batch(r, all, 5), 0);
    assert_first_refused(r, all, 5, BIG - KV_CHUNK + 5);
    assert_batch_present(r, cs + 1, 3);
    uint64_t present, total;
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(r, cs[0].ino, &a), 0);
    ck_assert_uint_eq(a.used, BIG - KV_CHUNK);
    /* The last chunk with the right bytes: the file is whole, counted
     * once per chunk. */
    ck_assert_int_eq(kv_fill_batch(r, cs, 1), 0);
    ck_assert_int_eq(cs[0].err, 0);
    assert_batch_present(r, cs, 4);
    ck_assert_int_eq(kv_getattr(r, cs[0].ino, &a), 0);
    ck_assert_uint_eq(a.used, BIG);
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, BIG + 5);
    kv_run_close(r);
    free(bad);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(a_chunk_one_byte_short_is_refused_even_with_a_checksum_of_its_bytes)
{
    struct built b;
    kv_run *r = standard_ix_run(&b);
    struct kv_fill_chunk cs[8];
    size_t nc = batch_of(r, &b, cs);
    ck_assert_uint_eq(nc, 4);
    /* RunInfo.xml's bytes one short, with a CRC of those: a checksum the
     * caller brings cannot vouch for the length.  Refused (EINVAL), still
     * absent; the big file's chunk beside it is stored. */
    struct kv_fill_chunk two[2] = { cs[3], cs[1] };
    two[0].len--;
    two[0].crc = (uint32_t)crc32(0L, two[0].buf, (uInt)two[0].len);
    two[0].have_crc = true;
    uint64_t off;
    uint32_t len;
    ck_assert_int_eq(kv_chunk_source(r, two[1].ino, two[1].chunk, &off, &len,
                                     &two[1].crc), 0);
    two[1].have_crc = true;
    ck_assert_int_eq(kv_fill_batch(r, two, 2), 0);
    ck_assert_int_eq(two[0].err, EINVAL);
    ck_assert_int_eq(two[1].err, 0);
    char c;
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, cs[3].ino, 0, &c, 1, &got, &eof), ENODATA);
    assert_batch_present(r, cs + 1, 1);
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, KV_CHUNK);
    /* The whole chunk then goes in. */
    ck_assert_int_eq(kv_fill(r, cs[3].ino, 0, cs[3].buf, cs[3].len), 0);
    assert_batch_present(r, cs + 3, 1);
    kv_run_close(r);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(a_scan_lists_the_files_with_absent_data_and_where_their_first_absent_chunk_is)
{
    struct built b;
    kv_run *r = standard_ix_run(&b);
    kv_ino big_ino = find(r, "Data/L001/big.cbcl");
    kv_ino info = find(r, "RunInfo.xml");
    uint64_t big0, info0, off1;
    uint32_t len, crc;
    ck_assert_int_eq(kv_chunk_source(r, big_ino, 0, &big0, &len, &crc), 0);
    ck_assert_int_eq(kv_chunk_source(r, info, 0, &info0, &len, &crc), 0);
    ck_assert_int_eq(kv_chunk_source(r, big_ino, 1, &off1, &len, &crc), 0);
    /* Both files, in inode order, each from its start (the empty file
     * has no data to fetch). */
    struct kv_absent_at at[4];
    size_t got;
    ck_assert_int_eq(kv_absent_scan(r, 0, at, 4, &got), 0);
    ck_assert_uint_eq(got, 2);
    ck_assert_uint_lt(at[0].ino, at[1].ino);
    int bi = at[0].ino == big_ino ? 0 : 1;
    ck_assert_uint_eq(at[bi].ino, big_ino);
    ck_assert_uint_eq(at[bi].tar_off, big0);
    ck_assert_uint_eq(at[1 - bi].ino, info);
    ck_assert_uint_eq(at[1 - bi].tar_off, info0);
    /* One at a time, continuing after the last one seen. */
    ck_assert_int_eq(kv_absent_scan(r, 0, at, 1, &got), 0);
    ck_assert_uint_eq(got, 1);
    kv_ino first = at[0].ino;
    ck_assert_int_eq(kv_absent_scan(r, first, at, 1, &got), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_gt(at[0].ino, first);
    ck_assert_int_eq(kv_absent_scan(r, at[0].ino, at, 1, &got), 0);
    ck_assert_uint_eq(got, 0);
    /* big.cbcl's first chunk stored: it starts at its second; RunInfo.xml
     * whole: not listed. */
    ck_assert_int_eq(kv_fill(r, big_ino, 0, b.tar.p + big0, KV_CHUNK), 0);
    fill_all(r, info, &b);
    ck_assert_int_eq(kv_absent_scan(r, 0, at, 4, &got), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(at[0].ino, big_ino);
    ck_assert_uint_eq(at[0].tar_off, off1);
    fill_all(r, big_ino, &b);
    ck_assert_int_eq(kv_absent_scan(r, 0, at, 4, &got), 0);
    ck_assert_uint_eq(got, 0);
    kv_run_close(r);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(a_batch_whose_commit_fails_leaves_every_chunk_of_it_absent)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    struct kv_fill_chunk cs[8];
    size_t nc = batch_of(r, &b, cs);
    kv_set_fault(fail_once, NULL);
    const char *ops[] = { "data-commit", "meta-commit" };
    for (int i = 0; i < 2; i++) {
        fail_op = ops[i];
        ck_assert_int_eq(kv_fill_batch(r, cs, nc), EIO);
        for (size_t j = 0; j < nc; j++)
            ck_assert_int_eq(cs[j].err, EIO);
        assert_batch_absent(r, cs, nc);
    }
    kv_set_fault(NULL, NULL);
    ck_assert_int_eq(kv_fill_batch(r, cs, nc), 0);
    assert_batch_present(r, cs, nc);
    kv_run_close(r);
    built_free(&b);
    free(big);
}
END_TEST

/* The process dies at this commit, as a crash would stop it there. */
static const char *die_at;
static int die_at_op(void *arg, const char *op)
{
    (void)arg;
    if (die_at && strcmp(op, die_at) == 0)
        _exit(0);
    return 0;
}

START_TEST(a_batch_killed_before_its_marks_commit_leaves_no_chunk_present_without_its_data)
{
    struct mb ms[16];
    size_t n = standard(ms);
    struct built b = build(ms, n);
    char why[512];
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    /* Killed before the data commits, and after it but before the
     * presence marks do. */
    const char *ops[] = { "data-commit", "meta-commit" };
    for (int i = 0; i < 2; i++) {
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            kv_run *r;
            if (kv_run_open(cache, "RUN", &r) != 0)
                _exit(3);
            struct kv_fill_chunk cs[8];
            size_t nc = batch_of(r, &b, cs);
            die_at = ops[i];
            kv_set_fault(die_at_op, NULL);
            kv_fill_batch(r, cs, nc);
            _exit(4);           /* not reached */
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        /* Opened again as after a restart: every chunk reads as absent. */
        kv_run *r;
        ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
        struct kv_fill_chunk cs[8];
        size_t nc = batch_of(r, &b, cs);
        assert_batch_absent(r, cs, nc);
        kv_run_close(r);
    }
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    struct kv_fill_chunk cs[8];
    size_t nc = batch_of(r, &b, cs);
    ck_assert_int_eq(kv_fill_batch(r, cs, nc), 0);
    assert_batch_present(r, cs, nc);
    kv_run_close(r);
    built_free(&b);
    free(big);
}
END_TEST

START_TEST(hostile_index_paths_are_refused_like_kv_ingest_refuses_them)
{
    static const unsigned char x[] = "x";
    const struct mb cases[][2] = {
        { { "RUN/../../etc/passwd", TIX_REG, 0644, x, 1, NULL },
          { "RUN/ok", TIX_REG, 0644, x, 1, NULL } },
        { { "/etc/passwd", TIX_REG, 0644, x, 1, NULL },
          { "RUN/ok", TIX_REG, 0644, x, 1, NULL } },
        { { "RUN/ok", TIX_REG, 0644, x, 1, NULL },
          { "RUN/h", TIX_HARDLINK, 0644, NULL, 0, "../outside" } },
        { { "RUN/ok", TIX_REG, 0644, x, 1, NULL },
          { "RUN/h", TIX_HARDLINK, 0644, NULL, 0, "RUN/missing" } },
        { { "RUN/evil", TIX_SYMLINK, 0777, NULL, 0, "/etc" },
          { "RUN/evil/passwd", TIX_REG, 0644, x, 1, NULL } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tix_writer *w;
        ck_assert_int_eq(tix_writer_new(&w), 0);
        bool refused = false;
        for (size_t j = 0; j < 2; j++) {
            const struct mb *m = &cases[i][j];
            uint32_t sum = tix_crc(x, 1);
            struct tix_member t = {
                .path = m->path, .link = m->link, .type = m->type,
                .mode = m->perm, .size = m->type == TIX_REG ? 1 : 0,
                .data_off = 512, .nsums = m->type == TIX_REG ? 1 : 0,
                .sums = m->type == TIX_REG ? &sum : NULL,
            };
            if (tix_writer_add(w, &t) != 0)
                refused = true;
        }
        void *buf = NULL;
        size_t len = 0;
        struct tix_source src = { .size = 4096 };
        snprintf(src.version, sizeof src.version, "v1");
        ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
        tix_writer_free(w);
        tix_index *ix = NULL;
        char perr[256];
        if (!refused && tix_parse(buf, len, &ix, perr, sizeof perr) != 0)
            refused = true;     /* the parser already refuses it */
        if (!refused) {
            struct kv_ingest_result res;
            int err = kv_ingest_index(cache, "RUN", ix, "v1", &res);
            ck_assert_msg(err == EBADMSG, "case %zu: %d (%s)", i, err,
                          res.error);
            ck_assert_msg(strstr(res.error, "member '") != NULL,
                          "case %zu: message does not name the member: %s",
                          i, res.error);
        }
        tix_free(ix);
        free(buf);
        struct kv_runinfo ri;
        ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), ENOENT);
        int nr = 0;
        ck_assert_int_eq(kv_cache_list(cache, count_run, &nr), 0);
        ck_assert_int_eq(nr, 0);
    }
}
END_TEST

START_TEST(an_index_with_a_sparse_member_is_not_used)
{
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    struct tix_member t = {
        .path = "RUN/sparse", .type = TIX_REG, .flags = TIX_F_SPARSE,
        .mode = 0644, .size = 1 << 20, .data_off = 1536,
    };
    ck_assert_int_eq(tix_writer_add(w, &t), 0);
    void *buf;
    size_t len;
    struct tix_source src = { .size = 8192 };
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
    tix_writer_free(w);
    tix_index *ix;
    char perr[256];
    ck_assert_int_eq(tix_parse(buf, len, &ix, perr, sizeof perr), 0);
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_index(cache, "RUN", ix, "v1", &res), ENOTSUP);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), ENOENT);
    tix_free(ix);
    free(buf);
}
END_TEST

/* An index of 10,000 empty files is 30 KB; its run is 2.5 MB of nodes.
 * Built under a budget smaller than that, it stops with ENOSPC and leaves
 * nothing, as kv_ingest_limited does for its tarball (before, the index
 * path had no budget: a member-count bomb filled the cache past its
 * limit). */
START_TEST(an_index_of_many_empty_files_stops_at_the_byte_budget_and_leaves_nothing)
{
    enum { N = 10000 };
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    for (unsigned i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "RUN/f%06u", i);
        struct tix_member t = { .path = p, .type = TIX_REG, .mode = 0644,
                                .data_off = 512 * (uint64_t)(i + 1) };
        ck_assert_int_eq(tix_writer_add(w, &t), 0);
    }
    void *buf;
    size_t len;
    struct tix_source src = { .size = 512 * (uint64_t)(N + 2) };
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
    tix_writer_free(w);
    tix_index *ix;
    char perr[256];
    ck_assert_int_eq(tix_parse(buf, len, &ix, perr, sizeof perr), 0);
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_index_limited(cache, "RUN", ix, "v1", 1 << 20, &res),
                     ENOSPC);
    ck_assert_msg(strstr(res.error, "1048576 bytes") != NULL, "%s", res.error);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), ENOENT);
    kv_run *kr = NULL;
    ck_assert_int_eq(kv_ingest_index_stream(cache, "RUN", ix, "v1", 1 << 20, NULL,
                                            &kr, &res), ENOSPC);
    ck_assert_ptr_nonnull(kr);
    kv_run_abort(kr);
    ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), ENOENT);
    ck_assert_int_eq(kv_ingest_index_limited(cache, "RUN", ix, "v1", 64 << 20, &res),
                     0);
    ck_assert_uint_eq(res.files, N);
    tix_free(ix);
    free(buf);
}
END_TEST

/* An absent file's record keeps a CRC per MiB chunk: an index of 16
 * members claiming 64 GiB each (a sparse tarball on a NAS costs nothing;
 * the members may overlap) records 4 MiB of CRCs, which the budget did
 * not count. */
START_TEST(the_absent_data_records_of_an_index_count_against_the_byte_budget)
{
    enum { N = 16 };
    const uint64_t size = (uint64_t)64 << 30;
    uint32_t nsums = (uint32_t)(size / TIX_CHUNK);
    uint32_t *sums = calloc(nsums, sizeof *sums);
    uint32_t x = 1;
    for (uint32_t i = 0; i < nsums; i++)    /* what honest CRCs look like: */
        sums[i] = x = x * 1664525u + 1013904223u;   /* incompressible */
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    for (unsigned i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "RUN/huge%02u", i);
        struct tix_member t = { .path = p, .type = TIX_REG, .mode = 0644,
                                .size = size, .data_off = 512,
                                .nsums = nsums, .sums = sums };
        ck_assert_int_eq(tix_writer_add(w, &t), 0);
    }
    void *buf;
    size_t len;
    struct tix_source src = { .size = size + 1024 };
    ck_assert_int_eq(tix_writer_finish(w, &src, &buf, &len), 0);
    tix_writer_free(w);
    tix_index *ix;
    char perr[256];
    ck_assert_int_eq(tix_parse(buf, len, &ix, perr, sizeof perr), 0);
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_index_limited(cache, "RUN", ix, "v1", 1 << 20, &res),
                     ENOSPC);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), ENOENT);
    ck_assert_int_eq(kv_ingest_index_limited(cache, "RUN", ix, "v1", 64 << 20, &res), 0);
    tix_free(ix);
    free(buf);
    free(sums);
}
END_TEST

START_TEST(a_late_member_outside_the_top_directory_is_placed_as_kv_ingest_does)
{
    static const unsigned char x[] = "abc";
    const struct mb ms[] = {
        { "RUN", TIX_DIR, 0700, NULL, 0, NULL },
        { "RUN/a", TIX_REG, 0644, x, 3, NULL },
        { "other/b", TIX_REG, 0644, x, 2, NULL },
    };
    struct built b = build(ms, 3);
    char why[512];
    ck_assert_int_eq(ingest_tar("RUN", &b), 0);
    kv_run *full;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &full), 0);
    kv_ino fa = find(full, "RUN/a"), fb = find(full, "other/b");
    kv_run_close(full);
    ck_assert_msg(ingest_ix("RUN", &b, why, sizeof why) == 0, "%s", why);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    ck_assert_uint_ne(fa, 0);
    ck_assert_uint_eq(find(r, "RUN/a"), fa);
    ck_assert_uint_eq(find(r, "other/b"), fb);
    fill_all(r, fa, &b);
    char buf[8];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, fa, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    kv_run_close(r);
    built_free(&b);
}
END_TEST

static Suite *lazy_suite(void)
{
    Suite *s = suite_create("lazy");
    TCase *tc = tcase_create("index");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, an_index_run_has_the_tree_and_inode_numbers_of_a_full_ingest);
    tcase_add_test(tc, a_run_served_while_built_gets_its_shallow_members_first_and_each_level_whole);
    tcase_add_test(tc, a_run_whose_index_order_matters_is_built_in_that_order);
    tcase_add_test(tc, absent_data_reads_as_enodata_until_filled_then_as_the_bytes);
    tcase_add_test(tc, a_chunk_with_wrong_bytes_is_refused_and_stays_absent);
    tcase_add_test(tc, a_fill_whose_commit_fails_leaves_the_chunk_absent_and_can_be_redone);
    tcase_add_test(tc, a_batch_of_fills_stores_every_verified_chunk_and_refuses_only_bad_ones);
    tcase_add_test(tc, a_batch_checked_against_the_callers_checksums_stores_the_same_and_refuses_wrong_bytes);
    tcase_add_test(tc, a_chunk_one_byte_short_is_refused_even_with_a_checksum_of_its_bytes);
    tcase_add_test(tc, a_scan_lists_the_files_with_absent_data_and_where_their_first_absent_chunk_is);
    tcase_add_test(tc, a_batch_whose_commit_fails_leaves_every_chunk_of_it_absent);
    tcase_add_test(tc, a_batch_killed_before_its_marks_commit_leaves_no_chunk_present_without_its_data);
    tcase_add_test(tc, hostile_index_paths_are_refused_like_kv_ingest_refuses_them);
    tcase_add_test(tc, an_index_with_a_sparse_member_is_not_used);
    tcase_add_test(tc, an_index_of_many_empty_files_stops_at_the_byte_budget_and_leaves_nothing);
    tcase_add_test(tc, the_absent_data_records_of_an_index_count_against_the_byte_budget);
    tcase_add_test(tc, a_late_member_outside_the_top_directory_is_placed_as_kv_ingest_does);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lazy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
