/* test_ingest.c: Check tests of kv_ingest: formats, compressions, placement under the run root, links, duplicates and hostile or broken archives. */
#include "kvstore/kvfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* ---- archives built in memory with libarchive's writer ---------------- */

struct tbuf {
    unsigned char *p;
    size_t n, cap;
};

static void tbuf_append(struct tbuf *t, const void *data, size_t n)
{
    if (t->n + n > t->cap) {
        size_t cap = t->cap ? t->cap : 65536;
        while (cap < t->n + n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        ck_assert_ptr_nonnull(t->p);
        t->cap = cap;
    }
    memcpy(t->p + t->n, data, n);
    t->n += n;
}

static la_ssize_t tw_write_cb(struct archive *a, void *arg, const void *buf,
                              size_t n)
{
    (void)a;
    tbuf_append(arg, buf, n);
    return (la_ssize_t)n;
}

struct tw {
    struct archive *a;
    struct tbuf out;
    time_t next_mtime;
};

#define T0 1729677731   /* 2024-10-23 10:02:11 UTC */
#define NSEC 123456789

static void tw_begin(struct tw *w, int format, int filter)
{
    memset(w, 0, sizeof *w);
    w->a = archive_write_new();
    ck_assert_int_eq(archive_write_set_format(w->a, format), ARCHIVE_OK);
    if (filter != ARCHIVE_FILTER_NONE)
        ck_assert_int_eq(archive_write_add_filter(w->a, filter), ARCHIVE_OK);
    /* No zero padding after a compressed stream (GNU tar adds none either;
     * libarchive's zstd reader takes it for a broken frame). */
    archive_write_set_bytes_in_last_block(w->a, 1);
    ck_assert_int_eq(archive_write_open(w->a, &w->out, NULL, tw_write_cb, NULL),
                     ARCHIVE_OK);
    w->next_mtime = T0;
}

static struct tbuf tw_end(struct tw *w)
{
    ck_assert_int_eq(archive_write_close(w->a), ARCHIVE_OK);
    archive_write_free(w->a);
    return w->out;
}

struct member {
    const char *path;
    mode_t mode;                /* with type bits */
    const void *data;
    size_t len;
    const char *symlink, *hardlink;
    uid_t uid;
    gid_t gid;
    time_t mtime;               /* 0: next in sequence */
    dev_t rdev;
};

static void tw_add(struct tw *w, const struct member *m)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, m->path);
    archive_entry_set_mode(e, m->mode);
    archive_entry_set_uid(e, m->uid);
    archive_entry_set_gid(e, m->gid);
    archive_entry_set_mtime(e, m->mtime ? m->mtime : w->next_mtime++, NSEC);
    if (m->symlink)
        archive_entry_set_symlink(e, m->symlink);
    if (m->hardlink) {
        archive_entry_set_hardlink(e, m->hardlink);
        archive_entry_set_size(e, 0);
    } else {
        archive_entry_set_size(e, S_ISREG(m->mode) ? (la_int64_t)m->len : 0);
    }
    if (m->rdev)
        archive_entry_set_rdev(e, m->rdev);
    ck_assert_int_eq(archive_write_header(w->a, e), ARCHIVE_OK);
    if (S_ISREG(m->mode) && !m->hardlink && m->len)
        ck_assert_int_eq(archive_write_data(w->a, m->data, m->len),
                         (la_ssize_t)m->len);
    archive_entry_free(e);
}

static void tw_dir(struct tw *w, const char *path, mode_t perm)
{
    tw_add(w, &(struct member){ .path = path, .mode = S_IFDIR | perm });
}

static void tw_file(struct tw *w, const char *path, const char *text)
{
    tw_add(w, &(struct member){ .path = path, .mode = S_IFREG | 0644,
                                .data = text, .len = strlen(text) });
}

static void tw_symlink(struct tw *w, const char *path, const char *target)
{
    tw_add(w, &(struct member){ .path = path, .mode = S_IFLNK | 0777,
                                .symlink = target });
}

static void tw_hardlink(struct tw *w, const char *path, const char *target)
{
    tw_add(w, &(struct member){ .path = path, .mode = S_IFREG | 0644,
                                .hardlink = target });
}

/* A hand-made ustar header, for members libarchive's writer would not
 * produce (absolute paths, lying sizes). */
static void raw_header(struct tbuf *t, const char *name, char type,
                       unsigned long long size, const char *linkname)
{
    unsigned char h[512];
    memset(h, 0, sizeof h);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", size);
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)T0);
    h[156] = (unsigned char)type;
    if (linkname)
        snprintf((char *)h + 157, 100, "%s", linkname);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    tbuf_append(t, h, sizeof h);
}

static void raw_data(struct tbuf *t, const void *data, size_t n)
{
    tbuf_append(t, data, n);
    static const unsigned char zeros[512];
    if (n % 512)
        tbuf_append(t, zeros, 512 - n % 512);
}

static void raw_end(struct tbuf *t)
{
    static const unsigned char zeros[1024];
    tbuf_append(t, zeros, sizeof zeros);
}

/* A pax extended header ('x') carrying the records "key=value" given as
 * alternating key, value strings (NULL-terminated list), for attributes
 * libarchive's writer would never write. */
static void raw_pax(struct tbuf *t, ...)
{
    char body[8192];
    size_t n = 0;
    va_list ap;
    va_start(ap, t);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        size_t rest = strlen(k) + strlen(v) + 3;    /* ' ', '=', '\n' */
        size_t len = rest + 1;
        while (len != rest + (size_t)snprintf(NULL, 0, "%zu", len))
            len++;
        ck_assert_uint_lt(n + len, sizeof body);
        n += (size_t)snprintf(body + n, sizeof body - n, "%zu %s=%s\n", len, k, v);
    }
    va_end(ap);
    raw_header(t, "./PaxHeaders/x", 'x', n, NULL);
    raw_data(t, body, n);
}

/* ---- reading the archive back through kv_read_fn ---------------------- */

struct memsrc {
    const unsigned char *p;
    size_t n, pos;
    size_t max_chunk;           /* 0: all that fits */
    size_t fail_at;             /* return -EIO once pos reaches this */
    unsigned rnd;
};

static ssize_t mem_read(void *arg, void *buf, size_t cap)
{
    struct memsrc *s = arg;
    if (s->pos >= s->fail_at)
        return -EIO;
    size_t left = s->n - s->pos;
    size_t want = cap < left ? cap : left;
    if (s->max_chunk) {
        s->rnd = s->rnd * 1103515245u + 12345u;
        size_t c = 1 + (s->rnd >> 16) % s->max_chunk;
        if (c < want)
            want = c;
    }
    if (s->fail_at != SIZE_MAX && s->pos + want > s->fail_at)
        want = s->fail_at - s->pos;
    if (want)
        memcpy(buf, s->p + s->pos, want);
    s->pos += want;
    return (ssize_t)want;
}

/* ---- fixture: one fresh cache per test ---------------------------------- */

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
    snprintf(cache_dir, sizeof cache_dir, "%s/test_ingest.XXXXXX",
             tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(cache_dir));
    ck_assert_int_eq(kv_cache_open(cache_dir, true, &cache), 0);
}

static void teardown(void)
{
    kv_cache_close(cache);
    nftw(cache_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int ingest_buf(const char *name, const struct tbuf *t,
                      struct kv_ingest_result *res)
{
    struct memsrc s = { .p = t->p, .n = t->n, .fail_at = SIZE_MAX };
    return kv_ingest(cache, name, mem_read, &s, "test", res);
}

static kv_run *open_run(const char *name)
{
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, name, &r), 0);
    return r;
}

/* Inode at path (relative to the run root), or 0 if there is none. */
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

static struct kv_attr attr_of(kv_run *r, const char *path)
{
    struct kv_attr a;
    kv_ino ino = find(r, path);
    ck_assert_msg(ino != 0, "%s is missing", path);
    ck_assert_int_eq(kv_getattr(r, ino, &a), 0);
    return a;
}

static char *content_of(kv_run *r, const char *path, size_t *len)
{
    struct kv_attr a = attr_of(r, path);
    char *buf = malloc(a.size + 1);
    size_t got = 0;
    bool eof = false;
    while (got < a.size) {
        size_t n;
        ck_assert_int_eq(kv_read(r, a.ino, got, buf + got, a.size - got, &n,
                                 &eof), 0);
        ck_assert_uint_gt(n, 0);
        got += n;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static void assert_text(kv_run *r, const char *path, const char *want)
{
    size_t len;
    char *got = content_of(r, path, &len);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(got, want);
    free(got);
}

static int count_run(void *arg, const struct kv_runinfo *ri)
{
    (void)ri;
    (*(int *)arg)++;
    return 0;
}

static void assert_nothing_visible(const char *name)
{
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, name, &ri), ENOENT);
    int n = 0;
    ck_assert_int_eq(kv_cache_list(cache, count_run, &n), 0);
    ck_assert_int_eq(n, 0);
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

/* The standard small run: NAME/ with a text file, a 1 MiB binary in a
 * subdirectory, an empty directory, a symlink. */
static struct tbuf standard_run(const char *top, int format, int filter,
                                unsigned char **big)
{
    struct tw w;
    tw_begin(&w, format, filter);
    char p[512];
    tw_dir(&w, top, 0750);
    snprintf(p, sizeof p, "%s/RunInfo.xml", top);
    tw_file(&w, p, "<RunInfo/>\n");
    snprintf(p, sizeof p, "%s/Data", top);
    tw_dir(&w, p, 0755);
    *big = pattern(1 << 20, 7);
    snprintf(p, sizeof p, "%s/Data/L001.cbcl", top);
    tw_add(&w, &(struct member){ .path = p, .mode = S_IFREG | 0640,
                                 .data = *big, .len = 1 << 20,
                                 .uid = 1001, .gid = 1002 });
    snprintf(p, sizeof p, "%s/Empty", top);
    tw_dir(&w, p, 0700);
    snprintf(p, sizeof p, "%s/latest", top);
    tw_symlink(&w, p, "Data/L001.cbcl");
    return tw_end(&w);
}

static void check_standard_run(kv_run *r, const unsigned char *big,
                               bool nsec_kept)
{
    struct kv_attr root;
    ck_assert_int_eq(kv_getattr(r, kv_run_root(r), &root), 0);
    ck_assert_uint_eq(root.mode, S_IFDIR | 0750);
    ck_assert_int_eq(root.mtime.tv_sec, T0);
    long want_nsec = nsec_kept ? NSEC : 0;
    ck_assert_int_eq(root.mtime.tv_nsec, want_nsec);
    assert_text(r, "RunInfo.xml", "<RunInfo/>\n");
    size_t len;
    char *data = content_of(r, "Data/L001.cbcl", &len);
    ck_assert_uint_eq(len, 1 << 20);
    ck_assert(memcmp(data, big, len) == 0);
    free(data);
    struct kv_attr a = attr_of(r, "Data/L001.cbcl");
    ck_assert_uint_eq(a.mode, S_IFREG | 0640);
    ck_assert_uint_eq(a.uid, 1001);
    ck_assert_uint_eq(a.gid, 1002);
    ck_assert_uint_eq(a.nlink, 1);
    ck_assert_int_eq(a.mtime.tv_sec, T0 + 3);
    ck_assert_int_eq(a.mtime.tv_nsec, want_nsec);
    struct kv_attr d = attr_of(r, "Data");
    ck_assert_int_eq(d.mtime.tv_sec, T0 + 2);   /* survived its child */
    struct kv_attr e = attr_of(r, "Empty");
    ck_assert_uint_eq(e.mode, S_IFDIR | 0700);
    ck_assert_uint_eq(e.nlink, 2);
    struct kv_attr l = attr_of(r, "latest");
    ck_assert(S_ISLNK(l.mode));
    char target[64];
    size_t tl;
    ck_assert_int_eq(kv_readlink(r, l.ino, target, sizeof target, &tl), 0);
    ck_assert_uint_eq(tl, strlen("Data/L001.cbcl"));
    ck_assert(memcmp(target, "Data/L001.cbcl", tl) == 0);
}

/* ---- formats and compressions ------------------------------------------ */

static const struct {
    const char *what;
    int format, filter;
    bool nsec;
} variants[] = {
    { "ustar plain", ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, false },
    { "pax gzip", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_GZIP, true },
    { "pax zstd", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_ZSTD, true },
    { "gnu bzip2", ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_BZIP2, false },
    { "pax xz", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_XZ, true },
    { "gnu plain", ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE, false },
};

START_TEST(every_format_and_compression_keeps_bytes_and_attributes)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", variants[_i].format,
                                 variants[_i].filter, &big);
    struct kv_ingest_result res;
    int err = ingest_buf("run1", &t, &res);
    ck_assert_msg(err == 0, "%s: %s", variants[_i].what, res.error);
    ck_assert(res.stripped_top);
    ck_assert_uint_eq(res.files, 2);
    ck_assert_uint_eq(res.symlinks, 1);
    ck_assert_uint_eq(res.bytes, (1 << 20) + strlen("<RunInfo/>\n"));
    kv_run *r = open_run("run1");
    check_standard_run(r, big, variants[_i].nsec);
    kv_run_close(r);
    free(big);
    free(t.p);
}
END_TEST

START_TEST(inode_numbers_come_from_run_name_and_path)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_USTAR,
                                 ARCHIVE_FILTER_NONE, &big);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run1", &t, &res), 0);
    kv_run *r = open_run("run1");
    ck_assert_uint_eq(kv_run_root(r), kv_ino_for("run1", ""));
    ck_assert_uint_eq(find(r, "Data/L001.cbcl"),
                      kv_ino_for("run1", "Data/L001.cbcl"));
    kv_run_close(r);
    free(big);
    free(t.p);
}
END_TEST

START_TEST(pax_and_gnu_long_names_survive)
{
    static const int formats[] = { ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                                   ARCHIVE_FORMAT_TAR_GNUTAR };
    char comp[201], path[700], link[300];
    memset(comp, 'x', 200);
    comp[200] = '\0';
    snprintf(path, sizeof path, "run/%s/%s/file.txt", comp, comp);
    snprintf(link, sizeof link, "../%s/target", comp);
    for (size_t i = 0; i < 2; i++) {
        struct tw w;
        tw_begin(&w, formats[i], ARCHIVE_FILTER_NONE);
        tw_file(&w, path, "long\n");
        tw_symlink(&w, "run/longlink", link);
        struct tbuf t = tw_end(&w);
        struct kv_ingest_result res;
        ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
        kv_run *r = open_run("run");
        assert_text(r, path + 4, "long\n");
        char got[400];
        size_t gl;
        ck_assert_int_eq(kv_readlink(r, find(r, "longlink"), got, sizeof got,
                                     &gl), 0);
        ck_assert_uint_eq(gl, strlen(link));
        ck_assert(memcmp(got, link, gl) == 0);
        kv_run_close(r);
        free(t.p);
    }
}
END_TEST

/* ---- where the members go ----------------------------------------------- */

START_TEST(members_under_a_directory_named_like_the_run_become_its_root)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run7/a.txt", "a\n");
    tw_file(&w, "run7/run7/b.txt", "b\n");   /* a run7 inside run7 */
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run7", &t, &res), 0);
    ck_assert(res.stripped_top);
    kv_run *r = open_run("run7");
    assert_text(r, "a.txt", "a\n");
    assert_text(r, "run7/b.txt", "b\n");
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(nested_run_names_strip_their_last_component)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_dir(&w, "run1", 0755);
    tw_file(&w, "run1/a.txt", "a\n");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("2024/run1", &t, &res) == 0, "%s", res.error);
    ck_assert(res.stripped_top);
    kv_run *r = open_run("2024/run1");
    assert_text(r, "a.txt", "a\n");
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(members_not_under_the_run_name_stay_as_they_are)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_dir(&w, "other", 0755);
    tw_file(&w, "other/a.txt", "a\n");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run1", &t, &res), 0);
    ck_assert(!res.stripped_top);
    kv_run *r = open_run("run1");
    assert_text(r, "other/a.txt", "a\n");
    kv_run_close(r);
    free(t.p);

    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_file(&w, "./a.txt", "a\n");          /* tar -C dir . style */
    tw_file(&w, "./sub/b.txt", "b\n");
    t = tw_end(&w);
    ck_assert_int_eq(ingest_buf("run2", &t, &res), 0);
    ck_assert(!res.stripped_top);
    r = open_run("run2");
    assert_text(r, "a.txt", "a\n");
    assert_text(r, "sub/b.txt", "b\n");
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(a_late_member_outside_the_top_directory_moves_earlier_ones_back)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_dir(&w, "run1", 0700);
    tw_file(&w, "run1/a.txt", "a\n");
    tw_file(&w, "run1/run1/deep.txt", "deep\n");
    tw_hardlink(&w, "run1/a.link", "run1/a.txt");
    tw_file(&w, "README", "outside\n");
    tw_hardlink(&w, "run1/a.link2", "run1/a.txt");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run1", &t, &res) == 0, "%s", res.error);
    ck_assert(!res.stripped_top);
    kv_run *r = open_run("run1");
    assert_text(r, "README", "outside\n");
    assert_text(r, "run1/a.txt", "a\n");
    assert_text(r, "run1/run1/deep.txt", "deep\n");
    struct kv_attr top = attr_of(r, "run1");
    ck_assert_uint_eq(top.mode, S_IFDIR | 0700);    /* its own attributes */
    ck_assert_int_eq(top.mtime.tv_sec, T0);
    struct kv_attr a = attr_of(r, "run1/a.txt");
    ck_assert_uint_eq(a.nlink, 3);
    ck_assert_uint_eq(attr_of(r, "run1/a.link2").ino, a.ino);
    struct kv_attr root;
    ck_assert_int_eq(kv_getattr(r, kv_run_root(r), &root), 0);
    ck_assert_uint_eq(root.mode, S_IFDIR | 0755);
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(a_directory_member_after_its_children_gets_its_attributes)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/sub/deeper/f.txt", "f\n");
    tw_add(&w, &(struct member){ .path = "run/sub", .mode = S_IFDIR | 0711,
                                 .uid = 5, .gid = 6, .mtime = T0 - 1000 });
    tw_file(&w, "run/sub/g.txt", "g\n");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), 0);
    kv_run *r = open_run("run");
    struct kv_attr s = attr_of(r, "sub");
    ck_assert_uint_eq(s.mode, S_IFDIR | 0711);
    ck_assert_uint_eq(s.uid, 5);
    ck_assert_uint_eq(s.gid, 6);
    ck_assert_int_eq(s.mtime.tv_sec, T0 - 1000);
    ck_assert_uint_eq(s.nlink, 3);
    ck_assert(S_ISDIR(attr_of(r, "sub/deeper").mode));
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(access_and_change_times_from_pax_are_kept)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "run/timed.txt");
    archive_entry_set_mode(e, S_IFREG | 0644);
    archive_entry_set_size(e, 3);
    archive_entry_set_mtime(e, T0, 111);
    archive_entry_set_atime(e, T0 + 50, 222);
    archive_entry_set_ctime(e, T0 + 70, 333);
    ck_assert_int_eq(archive_write_header(w.a, e), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_data(w.a, "hi\n", 3), 3);
    archive_entry_free(e);
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
    kv_run *r = open_run("run");
    struct kv_attr a = attr_of(r, "timed.txt");
    ck_assert_int_eq(a.mtime.tv_sec, T0);
    ck_assert_int_eq(a.mtime.tv_nsec, 111);
    ck_assert_int_eq(a.atime.tv_sec, T0 + 50);
    ck_assert_int_eq(a.atime.tv_nsec, 222);
    ck_assert_int_eq(a.ctime.tv_sec, T0 + 70);
    ck_assert_int_eq(a.ctime.tv_nsec, 333);
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(fifos_and_devices_are_kept)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_add(&w, &(struct member){ .path = "run/pipe", .mode = S_IFIFO | 0620 });
    tw_add(&w, &(struct member){ .path = "run/null", .mode = S_IFCHR | 0666,
                                 .rdev = makedev(1, 3) });
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
    ck_assert_uint_eq(res.others, 2);
    kv_run *r = open_run("run");
    ck_assert_uint_eq(attr_of(r, "pipe").mode, S_IFIFO | 0620);
    struct kv_attr n = attr_of(r, "null");
    ck_assert_uint_eq(n.mode, S_IFCHR | 0666);
    ck_assert_uint_eq(n.rdev, makedev(1, 3));
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(sparse_members_read_back_with_zeros_in_the_holes)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "run/sparse.bin");
    archive_entry_set_mode(e, S_IFREG | 0644);
    archive_entry_set_size(e, 3 << 20);
    archive_entry_sparse_add_entry(e, 1 << 20, 4096);
    archive_entry_set_mtime(e, T0, 0);
    ck_assert_int_eq(archive_write_header(w.a, e), ARCHIVE_OK);
    /* libarchive's writer takes the whole logical file and drops the
     * bytes that fall in holes. */
    unsigned char *blk = pattern(4096, 3);
    unsigned char *whole = calloc(1, 3 << 20);
    memcpy(whole + (1 << 20), blk, 4096);
    ck_assert_int_eq(archive_write_data(w.a, whole, 3 << 20), 3 << 20);
    free(whole);
    archive_entry_free(e);
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
    kv_run *r = open_run("run");
    size_t len;
    unsigned char *got = (unsigned char *)content_of(r, "sparse.bin", &len);
    ck_assert_uint_eq(len, 3 << 20);
    for (size_t i = 0; i < (1 << 20); i += 4093)
        ck_assert_uint_eq(got[i], 0);
    ck_assert(memcmp(got + (1 << 20), blk, 4096) == 0);
    ck_assert_uint_eq(got[len - 1], 0);
    free(got);
    free(blk);
    kv_run_close(r);
    free(t.p);
}
END_TEST

/* ---- links and duplicates ----------------------------------------------- */

START_TEST(hard_links_share_one_inode_and_count_links)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/a.txt", "shared\n");
    tw_hardlink(&w, "run/b.txt", "run/a.txt");
    tw_hardlink(&w, "run/sub/c.txt", "run/a.txt");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
    ck_assert_uint_eq(res.hardlinks, 2);
    kv_run *r = open_run("run");
    struct kv_attr a = attr_of(r, "a.txt");
    ck_assert_uint_eq(a.nlink, 3);
    ck_assert_uint_eq(attr_of(r, "b.txt").ino, a.ino);
    ck_assert_uint_eq(attr_of(r, "sub/c.txt").ino, a.ino);
    assert_text(r, "sub/c.txt", "shared\n");
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(a_hard_link_to_a_missing_member_fails_and_leaves_nothing)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/a.txt", "a\n");
    tw_hardlink(&w, "run/b.txt", "run/nowhere.txt");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "run/b.txt") != NULL, "%s", res.error);
    ck_assert_msg(strstr(res.error, "nowhere") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

START_TEST(duplicate_members_last_one_wins)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/a.txt", "first version, longer\n");
    tw_file(&w, "run/b", "b was a file\n");
    tw_file(&w, "run/a.txt", "second\n");
    tw_dir(&w, "run/b", 0755);              /* a file replaced by a dir */
    tw_file(&w, "run/b/inside", "x\n");
    tw_dir(&w, "run/c", 0755);
    tw_symlink(&w, "run/c", "a.txt");       /* an empty dir replaced */
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_msg(ingest_buf("run", &t, &res) == 0, "%s", res.error);
    kv_run *r = open_run("run");
    assert_text(r, "a.txt", "second\n");
    ck_assert_uint_eq(attr_of(r, "a.txt").nlink, 1);
    assert_text(r, "b/inside", "x\n");
    ck_assert(S_ISLNK(attr_of(r, "c").mode));
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(reingesting_a_run_replaces_it)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/old.txt", "old\n");
    struct tbuf t1 = tw_end(&w);
    tw_begin(&w, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
    tw_file(&w, "run/new.txt", "new\n");
    struct tbuf t2 = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t1, &res), 0);
    ck_assert_int_eq(ingest_buf("run", &t2, &res), 0);
    kv_run *r = open_run("run");
    ck_assert_uint_eq(find(r, "old.txt"), 0);
    assert_text(r, "new.txt", "new\n");
    kv_run_close(r);
    free(t1.p);
    free(t2.p);
}
END_TEST

/* ---- hostile and broken archives ---------------------------------------- */

/* Issue 12 finding 12: 24 MiB of zeros as a .tar.zst of a few KB, ingested
 * with a budget of 4 MiB, stops with ENOSPC having stored no more than the
 * budget, names the member and leaves nothing; with room it goes in. */
START_TEST(a_decompression_bomb_stops_at_the_byte_budget_and_leaves_nothing)
{
    size_t big = (size_t)24 << 20;
    unsigned char *zeros = calloc(1, big);
    ck_assert_ptr_nonnull(zeros);
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
    tw_dir(&w, "run", 0755);
    tw_add(&w, &(struct member){ .path = "run/zeros", .mode = S_IFREG | 0644,
                                 .data = zeros, .len = big });
    struct tbuf t = tw_end(&w);
    free(zeros);
    ck_assert_uint_lt(t.n, 64 * 1024);
    struct kv_ingest_result res;
    struct memsrc s = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s, "test",
                                       (uint64_t)4 << 20, &res), ENOSPC);
    ck_assert_uint_le(res.bytes, (uint64_t)4 << 20);
    ck_assert_msg(strstr(res.error, "run/zeros") &&
                  strstr(res.error, "cache_limit"), "%s", res.error);
    assert_nothing_visible("run");
    struct memsrc s2 = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s2, "test",
                                       (uint64_t)25 << 20, &res), 0);
    ck_assert_uint_eq(res.bytes, big);
    free(t.p);
}
END_TEST

START_TEST(absolute_paths_are_refused_and_leave_nothing)
{
    struct tbuf t = { 0 };
    raw_header(&t, "run/ok.txt", '0', 3, NULL);
    raw_data(&t, "ok\n", 3);
    raw_header(&t, "/etc/evil", '0', 5, NULL);
    raw_data(&t, "evil\n", 5);
    raw_end(&t);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "/etc/evil") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

START_TEST(dot_dot_components_are_refused_and_leave_nothing)
{
    static const char *const evil[] = { "run/../../escape", "../x", "run/a/..",
                                        "a/../../b" };
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        struct tbuf t = { 0 };
        raw_header(&t, "run/ok.txt", '0', 3, NULL);
        raw_data(&t, "ok\n", 3);
        raw_header(&t, evil[i], '0', 5, NULL);
        raw_data(&t, "evil\n", 5);
        raw_end(&t);
        struct kv_ingest_result res;
        ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
        ck_assert_msg(strstr(res.error, evil[i]) != NULL, "%s", res.error);
        assert_nothing_visible("run");
        free(t.p);
    }
}
END_TEST

START_TEST(a_hard_link_escaping_the_run_is_refused)
{
    struct tbuf t = { 0 };
    raw_header(&t, "run/ok.txt", '0', 3, NULL);
    raw_data(&t, "ok\n", 3);
    raw_header(&t, "run/passwd", '1', 0, "../../etc/passwd");
    raw_end(&t);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "run/passwd") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

START_TEST(members_through_a_symlinked_directory_are_refused)
{
    struct tbuf t = { 0 };
    raw_header(&t, "run/escape", '2', 0, "/etc");
    raw_header(&t, "run/escape/passwd", '0', 5, NULL);
    raw_data(&t, "evil\n", 5);
    raw_end(&t);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "run/escape/passwd") != NULL, "%s",
                  res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

START_TEST(a_truncated_archive_fails_naming_the_member)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_USTAR,
                                 ARCHIVE_FILTER_NONE, &big);
    t.n = 512 * 3 + 1000 + 300 * 1024;      /* in the middle of L001.cbcl */
    struct kv_ingest_result res;
    int err = ingest_buf("run1", &t, &res);
    ck_assert_int_eq(err, EIO);
    ck_assert_msg(strstr(res.error, "run1/Data/L001.cbcl") != NULL, "%s",
                  res.error);
    ck_assert_msg(strstr(res.error, "truncated") != NULL, "%s", res.error);
    assert_nothing_visible("run1");
    free(big);
    free(t.p);
}
END_TEST

START_TEST(a_member_claiming_a_huge_size_but_truncated_fails_cleanly)
{
    struct tbuf t = { 0 };
    unsigned char *blk = pattern(65536, 9);
    raw_header(&t, "run/huge.bin", '0', 077777777777ULL, NULL); /* 8 GiB - 1 */
    tbuf_append(&t, blk, 65536);
    struct kv_ingest_result res;
    int err = ingest_buf("run", &t, &res);
    ck_assert_int_eq(err, EIO);
    ck_assert_msg(strstr(res.error, "run/huge.bin") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(blk);
    free(t.p);
}
END_TEST

START_TEST(a_truncated_compressed_archive_fails_cleanly)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                                 ARCHIVE_FILTER_GZIP, &big);
    t.n = t.n * 2 / 3;
    struct kv_ingest_result res;
    int err = ingest_buf("run1", &t, &res);
    ck_assert_msg(err == EIO || err == EBADMSG, "err %d", err);
    ck_assert_msg(strstr(res.error, "run1/Data/L001.cbcl") != NULL, "%s",
                  res.error);
    assert_nothing_visible("run1");
    free(big);
    free(t.p);
}
END_TEST

START_TEST(corrupt_bytes_fail_with_a_clear_error_and_leave_nothing)
{
    unsigned char *big;
    /* Overwrite the header of the member after RunInfo.xml (Data/). */
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_USTAR,
                                 ARCHIVE_FILTER_NONE, &big);
    memset(t.p + 512 * 3, 0x5a, 300);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run1", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "corrupt") != NULL, "%s", res.error);
    ck_assert_msg(strstr(res.error, "after member 2") != NULL, "%s",
                  res.error);
    assert_nothing_visible("run1");
    free(t.p);
    free(big);

    /* Damage inside a compressed stream that carries checksums (xz). */
    t = standard_run("run1", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                     ARCHIVE_FILTER_XZ, &big);
    for (size_t i = t.n / 3; i < t.n / 3 + 64; i++)
        t.p[i] ^= 0xff;
    ck_assert_int_ne(ingest_buf("run1", &t, &res), 0);
    ck_assert_str_ne(res.error, "");
    assert_nothing_visible("run1");
    free(t.p);
    free(big);
}
END_TEST

START_TEST(a_path_longer_than_path_max_is_refused_at_once_and_leaves_nothing)
{
    /* 4097 bytes in short components, and a 200 KB path 100,000 levels
     * deep: placing such a path cost time quadratic in its depth (minutes
     * for a 200 KB tarball) before the 4096-byte bound. */
    static const size_t lens[] = { 4097, 200001 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *path = malloc(lens[i] + 1);
        memcpy(path, "run/", 4);
        for (size_t k = 4; k < lens[i]; k++)
            path[k] = k % 2 ? '/' : 'd';
        path[lens[i] - 1] = 'f';
        path[lens[i]] = '\0';
        struct tw w;
        tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
        tw_file(&w, "run/ok.txt", "ok\n");
        tw_file(&w, path, "deep\n");
        struct tbuf t = tw_end(&w);
        struct kv_ingest_result res;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(ingest_buf("run", &t, &res), ENAMETOOLONG);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_msg(strstr(res.error, "longer than 4096") != NULL, "%s", res.error);
        ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
        assert_nothing_visible("run");
        free(path);
        free(t.p);
    }
}
END_TEST

START_TEST(sparse_data_past_the_members_size_is_refused)
{
    /* A GNU 0.1 sparse map whose one data block lies at 1000 in a member
     * of real size 10: stored as given, the file would be 1005 bytes. */
    struct tbuf t = { 0 };
    raw_header(&t, "run/ok.txt", '0', 3, NULL);
    raw_data(&t, "ok\n", 3);
    raw_pax(&t, "GNU.sparse.major", "0", "GNU.sparse.minor", "1",
            "GNU.sparse.name", "run/sparse", "GNU.sparse.realsize", "10",
            "GNU.sparse.map", "1000,5", (const char *)NULL);
    raw_header(&t, "run/GNUSparseFile/sparse", '0', 5, NULL);
    raw_data(&t, "AAAAA", 5);
    raw_end(&t);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "run/sparse") != NULL, "%s", res.error);
    ck_assert_msg(strstr(res.error, "past its size") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

START_TEST(owner_ids_beyond_32_bits_or_negative_are_refused)
{
    /* Truncated to 32 bits, uid 2^32 + 1 would become uid 1. */
    static const char *const ids[][2] = {
        { "uid", "4294967297" }, { "gid", "4294967296" }, { "uid", "-1" },
        { "gid", "99999999999999999999" },
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct tbuf t = { 0 };
        raw_header(&t, "run/ok.txt", '0', 3, NULL);
        raw_data(&t, "ok\n", 3);
        raw_pax(&t, ids[i][0], ids[i][1], (const char *)NULL);
        raw_header(&t, "run/owned", '0', 2, NULL);
        raw_data(&t, "x\n", 2);
        raw_end(&t);
        struct kv_ingest_result res;
        ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
        ck_assert_msg(strstr(res.error, "run/owned") != NULL &&
                      strstr(res.error, "out of range") != NULL, "%s", res.error);
        assert_nothing_visible("run");
        free(t.p);
    }
}
END_TEST

/* An old GNU sparse member ('S') whose real size (base-256) is -1 and
 * whose one data block of 5 bytes is at 0: libarchive hands it on with
 * that size, and it was stored as an empty file, its data dropped. */
START_TEST(a_member_with_a_negative_size_is_refused)
{
    struct tbuf t = { 0 };
    raw_header(&t, "run/ok.txt", '0', 3, NULL);
    raw_data(&t, "ok\n", 3);
    raw_header(&t, "run/sparse", 'S', 5, NULL);
    unsigned char *h = t.p + t.n - 512;
    memcpy(h + 257, "ustar  ", 8);                 /* GNU magic */
    snprintf((char *)h + 386, 12, "%011o", 0);     /* block 0: offset 0 */
    snprintf((char *)h + 398, 12, "%011o", 5);     /* 5 bytes */
    memset(h + 483, 0xff, 12);                     /* real size -1 */
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    raw_data(&t, "AAAAA", 5);
    raw_end(&t);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "run/sparse") != NULL &&
                  strstr(res.error, "negative size") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

/* Hard links make no node but each is a directory entry: 20,000 links to
 * one file took no budget at all (a run of 5 files and 300,000 links took
 * 23 MB of a 4 MB cache). */
START_TEST(hard_links_count_against_the_byte_budget)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP);
    tw_file(&w, "run/f", "x\n");
    for (int i = 0; i < 20000; i++) {
        char p[32];
        snprintf(p, sizeof p, "run/h%05d", i);
        tw_hardlink(&w, p, "run/f");
    }
    struct tbuf t = tw_end(&w);
    struct memsrc s = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s, "test", 1 << 20, &res),
                     ENOSPC);
    ck_assert_msg(strstr(res.error, "1048576 bytes") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    struct memsrc s2 = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s2, "test", 64 << 20, &res), 0);
    ck_assert_uint_eq(res.hardlinks, 20000);
    free(t.p);
}
END_TEST

/* A symlink's target is stored with it: 20,000 targets of 4,000 bytes
 * took 86 MB of cache while the budget counted 5 MB of nodes. */
START_TEST(symlink_targets_count_against_the_byte_budget)
{
    char *target = malloc(4001);
    memset(target, 't', 4000);
    target[4000] = '\0';
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_GZIP);
    for (int i = 0; i < 2000; i++) {
        char p[32];
        snprintf(p, sizeof p, "run/s%05d", i);
        tw_symlink(&w, p, target);
    }
    struct tbuf t = tw_end(&w);
    struct memsrc s = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s, "test", 2 << 20, &res),
                     ENOSPC);
    ck_assert_msg(strstr(res.error, "2097152 bytes") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    struct memsrc s2 = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s2, "test", 64 << 20, &res), 0);
    ck_assert_uint_eq(res.symlinks, 2000);
    free(target);
    free(t.p);
}
END_TEST

/* A directory's header repeated: each repeat costs as a node, so a small
 * compressed tarball of 100,000 "run/d/" headers (before: no cost at all,
 * and one more remembered entry each) stops at the budget; with room it
 * goes in, as one directory with the last header's times. */
START_TEST(repeated_directory_headers_count_against_the_byte_budget)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP);
    tw_dir(&w, "run/", 0755);
    for (int i = 0; i < 100000; i++)
        tw_add(&w, &(struct member){ .path = "run/d/", .mode = S_IFDIR | 0755,
                                     .mtime = 1000000 + i });
    tw_file(&w, "run/d/f", "x");
    tw_add(&w, &(struct member){ .path = "run/d/", .mode = S_IFDIR | 0750,
                                 .mtime = 2000000 });
    struct tbuf t = tw_end(&w);
    ck_assert_uint_lt(t.n, 2 << 20);        /* small to send */
    struct memsrc s = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s, "test", 4 << 20, &res),
                     ENOSPC);
    ck_assert_msg(strstr(res.error, "4194304 bytes") != NULL, "%s", res.error);
    assert_nothing_visible("run");
    struct memsrc s2 = { .p = t.p, .n = t.n, .fail_at = SIZE_MAX };
    ck_assert_int_eq(kv_ingest_limited(cache, "run", mem_read, &s2, "test", 64 << 20, &res), 0);
    ck_assert_uint_eq(res.dirs, 1);        /* d (run/ is the root) */
    kv_run *r = open_run("run");
    struct kv_attr a = attr_of(r, "d");
    ck_assert_int_eq(a.mtime.tv_sec, 2000000);
    ck_assert_uint_eq(a.mode & 07777, 0750);
    assert_text(r, "d/f", "x");
    kv_run_close(r);
    free(t.p);
}
END_TEST

START_TEST(input_that_is_not_a_tarball_is_refused)
{
    struct tbuf t = { 0 };
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    ck_assert_msg(strstr(res.error, "empty") != NULL, "%s", res.error);
    const char *text = "this is not a tar archive, just a line of text\n";
    tbuf_append(&t, text, strlen(text));
    ck_assert_int_eq(ingest_buf("run", &t, &res), EBADMSG);
    assert_nothing_visible("run");
    free(t.p);
}
END_TEST

/* ---- the read callback --------------------------------------------------- */

START_TEST(a_trickling_read_callback_gives_the_same_run)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                                 ARCHIVE_FILTER_GZIP, &big);
    struct memsrc s = { .p = t.p, .n = t.n, .max_chunk = 7,
                        .fail_at = SIZE_MAX, .rnd = 42 };
    struct kv_ingest_result res;
    ck_assert_msg(kv_ingest(cache, "run1", mem_read, &s, "v1", &res) == 0,
                  "%s", res.error);
    kv_run *r = open_run("run1");
    check_standard_run(r, big, true);
    kv_run_close(r);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "run1", &ri), 0);
    ck_assert_str_eq(ri.source_version, "v1");
    free(big);
    free(t.p);
}
END_TEST

START_TEST(a_failing_read_callback_fails_the_ingest_with_eio)
{
    unsigned char *big;
    struct tbuf t = standard_run("run1", ARCHIVE_FORMAT_TAR_USTAR,
                                 ARCHIVE_FILTER_NONE, &big);
    struct memsrc s = { .p = t.p, .n = t.n, .fail_at = 600 * 1024 };
    struct kv_ingest_result res;
    ck_assert_int_eq(kv_ingest(cache, "run1", mem_read, &s, "v1", &res), EIO);
    ck_assert_msg(strstr(res.error, "L001.cbcl") != NULL, "%s", res.error);
    assert_nothing_visible("run1");
    free(big);
    free(t.p);
}
END_TEST

START_TEST(a_bad_run_name_is_refused)
{
    struct tw w;
    tw_begin(&w, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
    tw_file(&w, "a.txt", "a\n");
    struct tbuf t = tw_end(&w);
    struct kv_ingest_result res;
    ck_assert_int_eq(ingest_buf("../up", &t, &res), EINVAL);
    ck_assert_int_eq(ingest_buf("", &t, &res), EINVAL);
    free(t.p);
}
END_TEST

static Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    struct {
        const char *name;
        const TTest *tests[24];
    } groups[] = {
        { "placement", {
            members_under_a_directory_named_like_the_run_become_its_root,
            nested_run_names_strip_their_last_component,
            members_not_under_the_run_name_stay_as_they_are,
            a_late_member_outside_the_top_directory_moves_earlier_ones_back,
            a_directory_member_after_its_children_gets_its_attributes,
            inode_numbers_come_from_run_name_and_path,
            reingesting_a_run_replaces_it, a_bad_run_name_is_refused } },
        { "kinds", {
            pax_and_gnu_long_names_survive, fifos_and_devices_are_kept,
            access_and_change_times_from_pax_are_kept,
            sparse_members_read_back_with_zeros_in_the_holes,
            hard_links_share_one_inode_and_count_links,
            duplicate_members_last_one_wins } },
        { "hostile", {
            a_hard_link_to_a_missing_member_fails_and_leaves_nothing,
            absolute_paths_are_refused_and_leave_nothing,
            dot_dot_components_are_refused_and_leave_nothing,
            a_hard_link_escaping_the_run_is_refused,
            members_through_a_symlinked_directory_are_refused,
            a_truncated_archive_fails_naming_the_member,
            a_member_claiming_a_huge_size_but_truncated_fails_cleanly,
            a_truncated_compressed_archive_fails_cleanly,
            corrupt_bytes_fail_with_a_clear_error_and_leave_nothing,
            input_that_is_not_a_tarball_is_refused,
            a_decompression_bomb_stops_at_the_byte_budget_and_leaves_nothing,
            a_path_longer_than_path_max_is_refused_at_once_and_leaves_nothing,
            sparse_data_past_the_members_size_is_refused,
            owner_ids_beyond_32_bits_or_negative_are_refused,
            a_member_with_a_negative_size_is_refused,
            hard_links_count_against_the_byte_budget,
            symlink_targets_count_against_the_byte_budget,
            repeated_directory_headers_count_against_the_byte_budget } },
        { "input", {
            a_trickling_read_callback_gives_the_same_run,
            a_failing_read_callback_fails_the_ingest_with_eio } },
    };
    TCase *formats = tcase_create("formats");
    tcase_add_checked_fixture(formats, setup, teardown);
    tcase_set_timeout(formats, 60);
    tcase_add_loop_test(formats,
                        every_format_and_compression_keeps_bytes_and_attributes,
                        0, (int)(sizeof variants / sizeof variants[0]));
    suite_add_tcase(s, formats);
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        for (size_t i = 0; groups[g].tests[i]; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ingest_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
