/* test_evict.c: Check tests of dropping file data of index-first runs in kvstore (kv_data_drop, kv_absent_settle): names and inode numbers stay, the oldest chunks go first, disk usage follows present bytes, and a kill -9 in the middle leaves every chunk whole or absent. */
#include "kvstore/kvfs.h"
#include "kvstore/tarindex.h"

#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a tarball of a few multi-chunk files and its index ------------------ */

#define NFILES 4
static const size_t sizes[NFILES] = {
    3 * 1024 * 1024 + 777,      /* four chunks, the last short */
    1024 * 1024,                /* exactly one */
    5000,
    2 * 1024 * 1024 + 1,
};
static char paths[NFILES][32];
static unsigned char *data[NFILES];

struct mem {
    unsigned char *p;
    size_t n, cap;
};
static struct mem tar;
static void *ixbuf;
static size_t ixlen;

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

static void build(void)
{
    memset(&tar, 0, sizeof tar);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax(a);
    archive_write_set_bytes_per_block(a, 0);
    ck_assert_int_eq(archive_write_open(a, &tar, NULL, mem_write, NULL),
                     ARCHIVE_OK);
    tix_writer *w;
    ck_assert_int_eq(tix_writer_new(&w), 0);
    unsigned seed = 11;
    for (int i = 0; i < NFILES; i++) {
        snprintf(paths[i], sizeof paths[i], "RUN/f%d.bin", i);
        data[i] = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++) {
            seed = seed * 1664525u + 1013904223u;
            data[i][j] = (unsigned char)(seed >> 24);
        }
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, paths[i]);
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_mtime(e, 1729677731, 0);
        archive_entry_set_size(e, (la_int64_t)sizes[i]);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        uint64_t off = tar.n;
        ck_assert_int_eq(archive_write_data(a, data[i], sizes[i]),
                         (la_ssize_t)sizes[i]);
        archive_entry_free(e);
        struct tix_sums s = { 0 };
        uint32_t nsums = 0;
        ck_assert_int_eq(tix_sums_add(&s, data[i], sizes[i]), 0);
        const uint32_t *sums = tix_sums_finish(&s, &nsums);
        struct tix_member t = {
            .path = paths[i], .type = TIX_REG, .mode = 0644,
            .size = sizes[i], .mtime_sec = 1729677731, .data_off = off,
            .nsums = nsums, .sums = sums,
        };
        ck_assert_int_eq(tix_writer_add(w, &t), 0);
        tix_sums_free(&s);
    }
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    struct tix_source src = { .size = tar.n };
    snprintf(src.version, sizeof src.version, "v1");
    ck_assert_int_eq(tix_writer_finish(w, &src, &ixbuf, &ixlen), 0);
    tix_writer_free(w);
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
    snprintf(cache_dir, sizeof cache_dir, "%s/test_evict.XXXXXX",
             tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(cache_dir));
    ck_assert_int_eq(kv_cache_open(cache_dir, true, &cache), 0);
    build();
    tix_index *ix;
    char why[256];
    ck_assert_int_eq(tix_parse(ixbuf, ixlen, &ix, why, sizeof why), 0);
    struct kv_ingest_result res;
    ck_assert_msg(kv_ingest_index(cache, "RUN", ix, "v1", &res) == 0, "%s",
                  res.error);
    tix_free(ix);
}

static void teardown(void)
{
    if (cache)
        kv_cache_close(cache);
    cache = NULL;
    nftw(cache_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(tar.p);
    free(ixbuf);
    for (int i = 0; i < NFILES; i++)
        free(data[i]);
}

static kv_ino find(kv_run *r, int i)
{
    kv_ino ino;
    ck_assert_int_eq(kv_lookup(r, kv_run_root(r), paths[i] + 4, &ino), 0);
    return ino;
}

static uint32_t nchunks(int i)
{
    return (uint32_t)((sizes[i] + KV_CHUNK - 1) / KV_CHUNK);
}

static size_t clen(int i, uint32_t c)
{
    size_t start = (size_t)c * KV_CHUNK;
    return sizes[i] - start < KV_CHUNK ? sizes[i] - start : KV_CHUNK;
}

/* Store chunk c of file i from the tarball, as a range fetch would. */
static int fill(kv_run *r, int i, uint32_t c)
{
    kv_ino ino = find(r, i);
    uint64_t off;
    uint32_t len, crc;
    int err = kv_chunk_source(r, ino, c, &off, &len, &crc);
    if (err)
        return err;
    return kv_fill(r, ino, c, tar.p + off, len);
}

static void fill_everything(kv_run *r)
{
    for (int i = 0; i < NFILES; i++)
        for (uint32_t c = 0; c < nchunks(i); c++)
            ck_assert_int_eq(fill(r, i, c), 0);
}

static bool chunk_present(kv_run *r, int i, uint32_t c)
{
    uint32_t first, count;
    ck_assert_int_eq(kv_missing(r, find(r, i), (uint64_t)c * KV_CHUNK, 1, 1,
                                &first, &count), 0);
    return count == 0;
}

/* Bytes the run's files take on disk (what the cache limit bounds). */
static uint64_t disk_bytes(void)
{
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "RUN", &ri), 0);
    return ri.bytes;
}

/* Every chunk is either present and reads exactly the source's bytes, or
 * absent and reads as ENODATA; the counts agree with what is present. */
static uint64_t check_consistent(kv_run *r)
{
    uint64_t sum = 0;
    unsigned char *buf = malloc(KV_CHUNK);
    for (int i = 0; i < NFILES; i++) {
        kv_ino ino = find(r, i);
        uint64_t used = 0;
        for (uint32_t c = 0; c < nchunks(i); c++) {
            size_t got;
            bool eof;
            int err = kv_read(r, ino, (uint64_t)c * KV_CHUNK, buf, clen(i, c),
                              &got, &eof);
            if (chunk_present(r, i, c)) {
                ck_assert_int_eq(err, 0);
                ck_assert_uint_eq(got, clen(i, c));
                ck_assert_msg(memcmp(buf, data[i] + (size_t)c * KV_CHUNK,
                                     got) == 0,
                              "file %d chunk %u: wrong bytes", i, c);
                used += got;
            } else {
                ck_assert_int_eq(err, ENODATA);
            }
        }
        struct kv_attr a;
        ck_assert_int_eq(kv_getattr(r, ino, &a), 0);
        ck_assert_uint_eq(a.size, sizes[i]);
        ck_assert_uint_eq(a.used, used);
        sum += used;
    }
    uint64_t present, total;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(present, sum);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(r, &st), 0);
    ck_assert_uint_eq(st.bytes_used - st.inodes_used * 256, sum);
    free(buf);
    return sum;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(dropped_data_keeps_names_and_inode_numbers_and_is_fetched_again)
{
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    kv_ino before[NFILES];
    for (int i = 0; i < NFILES; i++)
        before[i] = find(r, i);
    fill_everything(r);
    uint64_t all = 0;
    for (int i = 0; i < NFILES; i++)
        all += sizes[i];
    ck_assert_uint_eq(check_consistent(r), all);
    uint64_t dropped;
    ck_assert_int_eq(kv_data_drop(r, UINT64_MAX, &dropped), 0);
    ck_assert_uint_eq(dropped, all);
    ck_assert_uint_eq(check_consistent(r), 0);
    for (int i = 0; i < NFILES; i++) {
        ck_assert_uint_eq(find(r, i), before[i]);
        ck_assert_uint_eq(before[i], kv_ino_for("RUN", paths[i] + 4));
    }
    /* After a restart too. */
    kv_run_close(r);
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    for (int i = 0; i < NFILES; i++)
        ck_assert_uint_eq(find(r, i), before[i]);
    ck_assert_uint_eq(check_consistent(r), 0);
    fill_everything(r);
    ck_assert_uint_eq(check_consistent(r), all);
    kv_run_close(r);
}
END_TEST

START_TEST(the_oldest_filled_chunks_are_dropped_first)
{
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    /* Fill order: file 3 chunk 1, file 0 chunks 0..3, file 3 chunk 0. */
    ck_assert_int_eq(fill(r, 3, 1), 0);
    for (uint32_t c = 0; c < 4; c++)
        ck_assert_int_eq(fill(r, 0, c), 0);
    ck_assert_int_eq(fill(r, 3, 0), 0);
    uint64_t dropped;
    /* A little more than two chunks: three go (whole chunks only). */
    ck_assert_int_eq(kv_data_drop(r, 2 * KV_CHUNK - 1 + 2, &dropped), 0);
    ck_assert_uint_eq(dropped, clen(3, 1) + 2 * (uint64_t)KV_CHUNK);
    ck_assert(!chunk_present(r, 3, 1));
    ck_assert(!chunk_present(r, 0, 0));
    ck_assert(!chunk_present(r, 0, 1));
    ck_assert(chunk_present(r, 0, 2));
    ck_assert(chunk_present(r, 0, 3));
    ck_assert(chunk_present(r, 3, 0));
    check_consistent(r);
    /* A chunk filled again is the newest. */
    ck_assert_int_eq(fill(r, 0, 0), 0);
    ck_assert_int_eq(kv_data_drop(r, 1, &dropped), 0);
    ck_assert_uint_eq(dropped, KV_CHUNK);
    ck_assert(!chunk_present(r, 0, 2));
    ck_assert(chunk_present(r, 0, 0));
    check_consistent(r);
    kv_run_close(r);
}
END_TEST

START_TEST(disk_usage_follows_the_present_bytes)
{
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    uint64_t empty = disk_bytes();
    fill_everything(r);
    kv_run_sync(r);
    uint64_t all = 0;
    for (int i = 0; i < NFILES; i++)
        all += sizes[i];
    uint64_t full = disk_bytes();
    ck_assert_msg(full >= empty + all, "full %llu, empty %llu",
                  (unsigned long long)full, (unsigned long long)empty);
    uint64_t dropped;
    ck_assert_int_eq(kv_data_drop(r, UINT64_MAX, &dropped), 0);
    kv_run_sync(r);
    uint64_t after = disk_bytes();
    ck_assert_msg(after < empty + all / 8, "after dropping all: %llu "
                  "(empty %llu, data %llu)", (unsigned long long)after,
                  (unsigned long long)empty, (unsigned long long)all);
    /* Dropping some and filling as much again reuses the space. */
    fill_everything(r);
    kv_run_sync(r);
    full = disk_bytes();
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(kv_data_drop(r, 3 * KV_CHUNK, &dropped), 0);
        fill_everything(r);
    }
    kv_run_sync(r);
    ck_assert_msg(disk_bytes() <= full + full / 10, "churn grew the run "
                  "from %llu to %llu bytes", (unsigned long long)full,
                  (unsigned long long)disk_bytes());
    kv_run_close(r);
}
END_TEST

START_TEST(a_settled_run_is_ordinary_and_its_data_never_dropped)
{
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    ck_assert_int_eq(fill(r, 2, 0), 0);
    ck_assert_int_eq(kv_absent_settle(r), EAGAIN);   /* data still absent */
    fill_everything(r);
    ck_assert_int_eq(kv_absent_settle(r), 0);
    uint64_t present, total, dropped;
    ck_assert_int_eq(kv_run_presence(r, &present, &total), 0);
    ck_assert_uint_eq(total, 0);
    ck_assert_int_eq(kv_data_drop(r, UINT64_MAX, &dropped), 0);
    ck_assert_uint_eq(dropped, 0);
    /* An ordinary file now: it can be written. */
    ck_assert_int_eq(kv_write(r, find(r, 2), 0, "xy", 2, NULL), 0);
    kv_run_close(r);
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    char buf[4];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, find(r, 0), 0, buf, 4, &got, &eof), 0);
    ck_assert_int_eq(memcmp(buf, data[0], 4), 0);
    ck_assert_int_eq(kv_data_drop(r, UINT64_MAX, &dropped), 0);
    ck_assert_uint_eq(dropped, 0);
    kv_run_close(r);
}
END_TEST

/* The child fills and drops without end until it is killed. */
static void churn(unsigned seed)
{
    kv_cache *c;
    kv_run *r;
    if (kv_cache_open(cache_dir, false, &c) || kv_run_open(c, "RUN", &r))
        _exit(2);
    for (;;) {
        for (int i = 0; i < NFILES; i++)
            for (uint32_t k = 0; k < nchunks(i); k++) {
                seed = seed * 1103515245u + 12345u;
                if (seed >> 30)
                    continue;
                kv_ino ino;
                uint64_t off;
                uint32_t len, crc;
                if (kv_lookup(r, kv_run_root(r), paths[i] + 4, &ino) ||
                    kv_chunk_source(r, ino, k, &off, &len, &crc) ||
                    kv_fill(r, ino, k, tar.p + off, len))
                    _exit(3);
            }
        seed = seed * 1103515245u + 12345u;
        uint64_t dropped;
        if (kv_data_drop(r, (seed >> 8) % (6 * KV_CHUNK), &dropped))
            _exit(4);
    }
}

START_TEST(a_kill_during_drops_leaves_every_chunk_whole_or_absent)
{
    kv_cache_close(cache);
    cache = NULL;
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            churn((unsigned)round * 7919u + 1);
        struct timespec ts = { 0, (50 + (long)round * 37) * 1000000L };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "the churning child exited (%d)",
                      WEXITSTATUS(status));
        /* Reopened after the crash: garbage swept, every chunk consistent. */
        ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
        kv_run *r;
        ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
        check_consistent(r);
        kv_run_close(r);
        kv_cache_close(cache);
        cache = NULL;
    }
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "RUN", &r), 0);
    fill_everything(r);
    check_consistent(r);
    kv_run_close(r);
}
END_TEST

static Suite *evict_suite(void)
{
    Suite *s = suite_create("evict");
    TCase *t = tcase_create("drop");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dropped_data_keeps_names_and_inode_numbers_and_is_fetched_again);
    tcase_add_test(t, the_oldest_filled_chunks_are_dropped_first);
    tcase_add_test(t, disk_usage_follows_the_present_bytes);
    tcase_add_test(t, a_settled_run_is_ordinary_and_its_data_never_dropped);
    tcase_add_test(t, a_kill_during_drops_leaves_every_chunk_whole_or_absent);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(evict_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
