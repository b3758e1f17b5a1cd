/* test_kvfs.c: unit tests of every kvstore operation and its main error
 * cases, against real Kyoto Cabinet databases in a temporary cache. */
#include "kvstore/kvfs.h"

#include <check.h>
#include <kclangc.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- fixture: a fresh cache with one published run "run1" ------------- */

static char cache_dir[64];
static kv_cache *cache;
static kv_run *run;
static kv_ino root;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_cache(void)
{
    strcpy(cache_dir, "/tmp/kvtest-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cache_dir));
    ck_assert_int_eq(kv_cache_open(cache_dir, true, &cache), 0);
}

static void setup_published(void)
{
    open_cache();
    ck_assert_int_eq(kv_run_stage(cache, "run1", 0, &run), 0);
    ck_assert_int_eq(kv_run_publish(run, "v1"), 0);
    root = kv_run_root(run);
}

static void setup_staged(void)
{
    open_cache();
    ck_assert_int_eq(kv_run_stage(cache, "run1", 0, &run), 0);
    root = kv_run_root(run);
}

static void teardown(void)
{
    if (run)
        kv_run_close(run);
    run = NULL;
    if (cache)
        kv_cache_close(cache);
    cache = NULL;
    rm_rf(cache_dir);
}

static kv_ino make(kv_ino dir, const char *name, uint32_t mode)
{
    struct kv_newnode n = { .mode = mode, .uid = 1000, .gid = 100 };
    struct kv_attr a;
    if (S_ISLNK(mode))
        n.symlink_target = "target";
    ck_assert_int_eq(kv_mknode(run, dir, name, &n, &a), 0);
    return a.ino;
}

static void write_str(kv_ino ino, uint64_t off, const char *s)
{
    ck_assert_int_eq(kv_write(run, ino, off, s, strlen(s), NULL), 0);
}

static uint64_t size_of(kv_ino ino)
{
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, ino, &a), 0);
    return a.size;
}

static uint32_t nlink_of(kv_ino ino)
{
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, ino, &a), 0);
    return a.nlink;
}

/* Fill buf with a position-dependent pattern. */
static void pattern(unsigned char *buf, size_t len, uint64_t base)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)((base + i) * 2654435761u >> 13);
}

/* (One assertion per byte would make Check log millions of locations.) */
static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static bool run_dir_exists(const char *enc)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/runs/%s", cache_dir, enc);
    return stat(p, &st) == 0;
}

static int count_entries(const char *sub)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", cache_dir, sub);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- cache ------------------------------------------------------------ */

START_TEST(cache_open_missing_without_create_is_enoent)
{
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open("/tmp/kvtest-does-not-exist", false, &c), ENOENT);
}
END_TEST

START_TEST(cache_open_refuses_directory_with_foreign_tmp)
{
    char dir[] = "/tmp/kvtest-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char f[64];
    snprintf(f, sizeof f, "%s/tmp", dir);
    ck_assert_int_eq(mkdir(f, 0755), 0);
    snprintf(f, sizeof f, "%s/tmp/precious", dir);
    FILE *fp = fopen(f, "w");
    fclose(fp);
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open(dir, true, &c), EINVAL);
    ck_assert_int_eq(kv_cache_open(dir, false, &c), EINVAL);
    ck_assert_int_eq(access(f, F_OK), 0);   /* never swept */
    rm_rf(dir);
}
END_TEST

START_TEST(cache_open_adopts_directory_holding_other_files)
{
    char dir[] = "/tmp/kvtest-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char f[64];
    snprintf(f, sizeof f, "%s/handle.key", dir);
    FILE *fp = fopen(f, "w");
    fclose(fp);
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open(dir, false, &c), EINVAL);  /* not a cache yet */
    ck_assert_int_eq(kv_cache_open(dir, true, &c), 0);
    kv_cache_close(c);
    ck_assert_int_eq(kv_cache_open(dir, false, &c), 0);
    kv_cache_close(c);
    ck_assert_int_eq(access(f, F_OK), 0);
    rm_rf(dir);
}
END_TEST

START_TEST(cache_open_creates_and_reopens)
{
    open_cache();
    ck_assert_str_eq(kv_cache_path(cache), cache_dir);
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
}
END_TEST

static int collect_names(void *arg, const struct kv_runinfo *ri)
{
    char *out = arg;
    strcat(out, ri->name);
    strcat(out, ";");
    return 0;
}

START_TEST(cache_list_gives_runs_in_name_order_with_slashes_and_dots)
{
    open_cache();
    const char *names[] = { "b", "2024/run1", ".hidden", "a%b", "a" };
    for (size_t i = 0; i < 5; i++) {
        kv_run *r;
        ck_assert_int_eq(kv_run_stage(cache, names[i], 0, &r), 0);
        ck_assert_int_eq(kv_run_publish(r, "etag"), 0);
        kv_run_close(r);
    }
    char out[256] = "";
    ck_assert_int_eq(kv_cache_list(cache, collect_names, out), 0);
    ck_assert_str_eq(out, ".hidden;2024/run1;a;a%b;b;");
    ck_assert(run_dir_exists("2024%2Frun1"));
    ck_assert(run_dir_exists("%2Ehidden"));
    ck_assert(run_dir_exists("a%25b"));
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "2024/run1", &r), 0);
    ck_assert_str_eq(kv_run_name(r), "2024/run1");
    kv_run_close(r);
}
END_TEST

START_TEST(bad_run_names_are_einval)
{
    open_cache();
    kv_run *r;
    ck_assert_int_eq(kv_run_stage(cache, "", 0, &r), EINVAL);
    ck_assert_int_eq(kv_run_stage(cache, "a//b", 0, &r), EINVAL);
    ck_assert_int_eq(kv_run_stage(cache, "a/../b", 0, &r), EINVAL);
    ck_assert_int_eq(kv_run_stage(cache, "/abs", 0, &r), EINVAL);
    ck_assert_int_eq(kv_run_stage(cache, "trail/", 0, &r), EINVAL);
    ck_assert_int_eq(kv_run_open(cache, "..", &r), EINVAL);
    ck_assert_int_eq(kv_run_open(cache, "missing", &r), ENOENT);
}
END_TEST

/* ---- staging, publish, evict ------------------------------------------ */

START_TEST(stage_gives_root_directory_with_hint)
{
    open_cache();
    ck_assert_int_eq(kv_run_stage(cache, "run1", 4242, &run), 0);
    ck_assert_uint_eq(kv_run_root(run), 4242);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, 4242, &a), 0);
    ck_assert(S_ISDIR(a.mode));
    ck_assert_uint_eq(a.nlink, 2);
    kv_ino p;
    ck_assert_int_eq(kv_parent(run, 4242, &p), 0);
    ck_assert_uint_eq(p, 4242);
    kv_run_close(run);
    run = NULL;
    ck_assert_int_eq(kv_run_stage(cache, "run2", 0, &run), 0);
    ck_assert_uint_eq(kv_run_root(run), kv_ino_for("run2", ""));
}
END_TEST

START_TEST(staged_run_is_invisible_until_published)
{
    setup_staged();
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), ENOENT);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "run1", &ri), ENOENT);
    make(root, "f", S_IFREG | 0644);
    ck_assert_int_eq(kv_run_publish(run, "etag-1"), 0);
    ck_assert_int_eq(kv_cache_runinfo(cache, "run1", &ri), 0);
    ck_assert_str_eq(ri.source_version, "etag-1");
    ck_assert_uint_eq(ri.files, 2);
    ck_assert_uint_gt(ri.bytes, 0);
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), 0);
    ck_assert_ptr_eq(r, run);  /* shared with the publishing handle */
    kv_run_close(r);
    ck_assert_int_eq(kv_run_publish(run, "again"), EINVAL);
}
END_TEST

START_TEST(stage_abort_leaves_nothing)
{
    setup_staged();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "data");
    kv_run_abort(run);
    run = NULL;
    ck_assert_int_eq(count_entries("tmp"), 0);
    ck_assert_int_eq(count_entries("runs"), 0);
    struct kv_statfs st;
    ck_assert_int_eq(kv_cache_statfs(cache, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 0);
}
END_TEST

START_TEST(publish_replaces_existing_run_atomically)
{
    setup_published();
    kv_ino f = make(root, "old", S_IFREG | 0644);
    write_str(f, 0, "old contents");
    kv_run *nr;
    ck_assert_int_eq(kv_run_stage(cache, "run1", 0, &nr), 0);
    struct kv_newnode nn = { .mode = S_IFREG | 0644 };
    ck_assert_int_eq(kv_mknode(nr, kv_run_root(nr), "new", &nn, NULL), 0);
    /* Until publish, openers see the old run. */
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), 0);
    ck_assert_ptr_eq(r, run);
    kv_run_close(r);
    ck_assert_int_eq(kv_run_publish(nr, "v2"), 0);
    /* The old handle still reads the old data but can no longer write. */
    char buf[32];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 12);
    ck_assert(kv_run_stale(run));
    ck_assert_int_eq(kv_write(run, f, 0, "x", 1, NULL), ESTALE);
    /* A new open gets the new run. */
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), 0);
    ck_assert_ptr_eq(r, nr);
    kv_ino ino;
    ck_assert_int_eq(kv_lookup(r, kv_run_root(r), "new", &ino), 0);
    ck_assert_int_eq(kv_lookup(r, kv_run_root(r), "old", &ino), ENOENT);
    kv_run_close(r);
    kv_run_close(nr);
    kv_run_close(run);
    run = NULL;
    /* The replaced run's files are gone once its last handle closed. */
    ck_assert_int_eq(count_entries("tmp"), 0);
    ck_assert_int_eq(count_entries("runs"), 1);
    struct kv_runinfo ri;
    ck_assert_int_eq(kv_cache_runinfo(cache, "run1", &ri), 0);
    ck_assert_str_eq(ri.source_version, "v2");
}
END_TEST

START_TEST(evict_removes_run_but_open_handle_keeps_reading)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "still here");
    ck_assert_int_eq(kv_cache_evict(cache, "run1"), 0);
    ck_assert(!run_dir_exists("run1"));
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), ENOENT);
    char buf[32];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 10);
    ck_assert(memcmp(buf, "still here", 10) == 0);
    ck_assert_int_eq(kv_mknode(run, root, "g", &(struct kv_newnode){ .mode = S_IFREG }, NULL),
                     ESTALE);
    ck_assert_int_eq(count_entries("tmp"), 1);
    kv_run_close(run);
    run = NULL;
    ck_assert_int_eq(count_entries("tmp"), 0);
    ck_assert_int_eq(kv_cache_evict(cache, "run1"), ENOENT);
    ck_assert_int_eq(kv_cache_evict(cache, "a/../b"), EINVAL);
}
END_TEST

START_TEST(reopen_after_close_persists_data)
{
    setup_published();
    kv_ino d = make(root, "dir", S_IFDIR | 0755);
    kv_ino f = make(d, "file", S_IFREG | 0600);
    write_str(f, 5, "persisted");
    ck_assert_int_eq(kv_run_setmeta(run, "dirty", "1", 1), 0);
    kv_run_close(run);
    run = NULL;
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    ck_assert_uint_eq(kv_run_root(run), root);
    kv_ino ino;
    ck_assert_int_eq(kv_lookup(run, root, "dir", &ino), 0);
    ck_assert_uint_eq(ino, d);
    ck_assert_int_eq(kv_lookup(run, d, "file", &ino), 0);
    ck_assert_uint_eq(ino, f);
    char buf[32];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 14);
    ck_assert(memcmp(buf, "\0\0\0\0\0persisted", 14) == 0);
    char m[4];
    size_t mlen;
    ck_assert_int_eq(kv_run_getmeta(run, "dirty", m, sizeof m, &mlen), 0);
    ck_assert_uint_eq(mlen, 1);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 3);
}
END_TEST

START_TEST(crash_while_staging_leaves_no_trace)
{
    open_cache();
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        kv_cache *c;
        kv_run *r;
        if (kv_cache_open(cache_dir, false, &c) || kv_run_stage(c, "crashy", 0, &r))
            _exit(1);
        struct kv_newnode n = { .mode = S_IFREG | 0644 };
        struct kv_attr a;
        static unsigned char block[1 << 16];
        for (int i = 0; ; i++) {
            char name[32];
            snprintf(name, sizeof name, "f%d", i);
            if (kv_mknode(r, kv_run_root(r), name, &n, &a) ||
                kv_write(r, a.ino, 0, block, sizeof block, NULL))
                _exit(1);
            if (i == 50 && write(go[1], "x", 1) != 1)
                _exit(1);
        }
    }
    char ch;
    ck_assert_int_eq(read(go[0], &ch, 1), 1);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status));
    close(go[0]);
    close(go[1]);
    ck_assert_int_eq(count_entries("tmp"), 1);  /* the dead child's staging */
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    ck_assert_int_eq(count_entries("tmp"), 0);
    ck_assert_int_eq(count_entries("runs"), 0);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "crashy", &r), ENOENT);
}
END_TEST

START_TEST(crash_during_publish_of_replacement_keeps_old_run)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "v1");
    kv_run_close(run);
    run = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        kv_cache *c;
        kv_run *r;
        if (kv_cache_open(cache_dir, false, &c) || kv_run_stage(c, "run1", 0, &r))
            _exit(1);
        struct kv_newnode n = { .mode = S_IFREG | 0644 };
        for (int i = 0; i < 200; i++) {
            char name[32];
            snprintf(name, sizeof name, "n%d", i);
            if (kv_mknode(r, kv_run_root(r), name, &n, NULL))
                _exit(1);
        }
        raise(SIGKILL);     /* dies before publish */
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status));
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    kv_ino ino;
    ck_assert_int_eq(kv_lookup(run, root, "f", &ino), 0);
    ck_assert_int_eq(kv_lookup(run, root, "n0", &ino), ENOENT);
    ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST

/* ---- nodes ------------------------------------------------------------ */

START_TEST(mknode_creates_each_type)
{
    setup_published();
    struct { const char *name; uint32_t mode; } t[] = {
        { "reg", S_IFREG | 0644 }, { "dir", S_IFDIR | 0755 },
        { "lnk", S_IFLNK | 0777 }, { "fifo", S_IFIFO | 0600 },
        { "chr", S_IFCHR | 0600 }, { "blk", S_IFBLK | 0600 },
        { "sock", S_IFSOCK | 0600 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct kv_newnode n = { .mode = t[i].mode, .uid = 7, .gid = 8,
                                .rdev = makedev(4, 5), .symlink_target = "../x",
                                .has_times = true,
                                .mtime = { 1000000000, 123456789 },
                                .atime = { 1000000001, 5 } };
        struct kv_attr a, b;
        ck_assert_int_eq(kv_mknode(run, root, t[i].name, &n, &a), 0);
        ck_assert_int_eq(kv_getattr(run, a.ino, &b), 0);
        ck_assert_uint_eq(b.mode, t[i].mode);
        ck_assert_uint_eq(b.uid, 7);
        ck_assert_uint_eq(b.gid, 8);
        ck_assert_uint_eq(b.mtime.tv_sec, 1000000000);
        ck_assert_uint_eq(b.mtime.tv_nsec, 123456789);
        ck_assert_uint_eq(b.atime.tv_nsec, 5);
        ck_assert_uint_eq(b.nlink, S_ISDIR(t[i].mode) ? 2 : 1);
        if (S_ISCHR(t[i].mode) || S_ISBLK(t[i].mode))
            ck_assert_uint_eq(b.rdev, makedev(4, 5));
        if (S_ISLNK(t[i].mode))
            ck_assert_uint_eq(b.size, 4);
        if (S_ISREG(t[i].mode))
            ck_assert_uint_eq(b.size, 0);
        kv_ino got;
        ck_assert_int_eq(kv_lookup(run, root, t[i].name, &got), 0);
        ck_assert_uint_eq(got, a.ino);
    }
    ck_assert_uint_eq(nlink_of(root), 3);   /* 2 + one subdirectory */
}
END_TEST

START_TEST(a_node_made_with_absent_data_has_its_size_reads_enodata_and_counts_as_missing)
{
    setup_published();
    uint32_t crcs[3] = { 1, 2, 3 };
    struct kv_absent_spec spec = { .size = 2 * KV_CHUNK + 10, .member = "RUN/x.bcl",
                                   .data_off = 512, .nchunks = 3, .crcs = crcs };
    struct kv_newnode n = { .mode = S_IFREG | 0644, .absent = &spec, .has_times = true,
                            .mtime = { 1000000000, 7 } };
    struct kv_attr a;
    ck_assert_int_eq(kv_mknode(run, root, "x.bcl", &n, &a), 0);
    ck_assert_uint_eq(a.size, 2 * KV_CHUNK + 10);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_uint_eq(a.mtime.tv_nsec, 7);
    char buf[16];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, a.ino, KV_CHUNK, buf, sizeof buf, &got, &eof), ENODATA);
    uint64_t off, present, total;
    uint32_t len, crc;
    ck_assert_int_eq(kv_chunk_source(run, a.ino, 2, &off, &len, &crc), 0);
    ck_assert_uint_eq(off, 512 + 2 * (uint64_t)KV_CHUNK);
    ck_assert_uint_eq(len, 10);
    ck_assert_uint_eq(crc, 3);
    ck_assert_int_eq(kv_run_presence(run, &present, &total), 0);
    ck_assert_uint_eq(present, 0);
    ck_assert_uint_eq(total, 2 * KV_CHUNK + 10);
    /* a spec that does not fit its size makes nothing */
    spec.nchunks = 2;
    ck_assert_int_eq(kv_mknode(run, root, "y.bcl", &n, NULL), EINVAL);
    spec.nchunks = 3;
    n.mode = S_IFDIR | 0755;
    ck_assert_int_eq(kv_mknode(run, root, "y.bcl", &n, NULL), EINVAL);
    kv_ino none;
    ck_assert_int_eq(kv_lookup(run, root, "y.bcl", &none), ENOENT);
}
END_TEST

START_TEST(mknode_errors)
{
    setup_published();
    struct kv_newnode n = { .mode = S_IFREG | 0644 };
    kv_ino f = make(root, "f", S_IFREG | 0644);
    ck_assert_int_eq(kv_mknode(run, root, "f", &n, NULL), EEXIST);
    ck_assert_int_eq(kv_mknode(run, f, "x", &n, NULL), ENOTDIR);
    ck_assert_int_eq(kv_mknode(run, 999999, "x", &n, NULL), ENOENT);
    ck_assert_int_eq(kv_mknode(run, root, "", &n, NULL), EINVAL);
    ck_assert_int_eq(kv_mknode(run, root, ".", &n, NULL), EINVAL);
    ck_assert_int_eq(kv_mknode(run, root, "..", &n, NULL), EINVAL);
    ck_assert_int_eq(kv_mknode(run, root, "a/b", &n, NULL), EINVAL);
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    ck_assert_int_eq(kv_mknode(run, root, longname, &n, NULL), ENAMETOOLONG);
    longname[255] = '\0';
    ck_assert_int_eq(kv_mknode(run, root, longname, &n, NULL), 0);
    struct kv_newnode bad = { .mode = 0 };
    ck_assert_int_eq(kv_mknode(run, root, "bad", &bad, NULL), EINVAL);
    struct kv_newnode lnk = { .mode = S_IFLNK | 0777 };
    ck_assert_int_eq(kv_mknode(run, root, "nolink", &lnk, NULL), EINVAL);
}
END_TEST

START_TEST(mknode_uses_hint_or_next_free_number_above)
{
    setup_published();
    struct kv_newnode n = { .mode = S_IFREG | 0644, .ino_hint = 5000 };
    struct kv_attr a;
    ck_assert_int_eq(kv_mknode(run, root, "a", &n, &a), 0);
    ck_assert_uint_eq(a.ino, 5000);
    ck_assert_int_eq(kv_mknode(run, root, "b", &n, &a), 0);
    ck_assert_uint_eq(a.ino, 5001);
    n.ino_hint = 0;
    ck_assert_int_eq(kv_mknode(run, root, "c", &n, &a), 0);
    ck_assert_uint_ge(a.ino, 16);
    ck_assert_uint_ne(a.ino, root);
}
END_TEST

START_TEST(ino_for_is_deterministic_63_bit_and_at_least_16)
{
    ck_assert_uint_eq(kv_ino_for("run", "a/b"), kv_ino_for("run", "a/b"));
    ck_assert_uint_ne(kv_ino_for("run", "a/b"), kv_ino_for("run", "a/c"));
    ck_assert_uint_ne(kv_ino_for("ru", "na/b"), kv_ino_for("run", "a/b"));
    for (int i = 0; i < 10000; i++) {
        char p[32];
        snprintf(p, sizeof p, "f%d", i);
        kv_ino ino = kv_ino_for("x", p);
        if (ino < 16 || ino >= UINT64_C(1) << 63)
            ck_abort_msg("kv_ino_for(x, %s) = %llu", p, (unsigned long long)ino);
    }
}
END_TEST

struct prefixes_seen {
    const char *path;
    size_t n;
    size_t end[8];
    kv_ino ino[8];
};

static void note_prefix(void *arg, size_t end, kv_ino ino)
{
    struct prefixes_seen *s = arg;
    ck_assert_uint_lt(s->n, 8);
    s->end[s->n] = end;
    s->ino[s->n] = ino;
    s->n++;
}

START_TEST(ino_for_prefixes_gives_kv_ino_for_of_each_prefix_in_one_pass)
{
    static const char *const paths[] = { "", "a", "a/bc", "dir/sub/file.txt" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct prefixes_seen s = { .path = paths[i] };
        kv_ino_for_prefixes("run", paths[i], note_prefix, &s);
        size_t want = 1;
        for (const char *c = paths[i]; *c; c++)
            want += *c == '/';
        ck_assert_uint_eq(s.n, want);
        for (size_t k = 0; k < s.n; k++) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%.*s", (int)s.end[k], paths[i]);
            ck_assert(paths[i][s.end[k]] == '/' || paths[i][s.end[k]] == '\0');
            ck_assert_uint_eq(s.ino[k], kv_ino_for("run", prefix));
        }
    }
}
END_TEST

START_TEST(lookup_resolves_names_dot_and_dotdot)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    kv_ino f = make(d, "f", S_IFREG | 0644);
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, d, "f", &got), 0);
    ck_assert_uint_eq(got, f);
    ck_assert_int_eq(kv_lookup(run, d, ".", &got), 0);
    ck_assert_uint_eq(got, d);
    ck_assert_int_eq(kv_lookup(run, d, "..", &got), 0);
    ck_assert_uint_eq(got, root);
    ck_assert_int_eq(kv_lookup(run, root, "..", &got), 0);
    ck_assert_uint_eq(got, root);
    ck_assert_int_eq(kv_lookup(run, d, "missing", &got), ENOENT);
    ck_assert_int_eq(kv_lookup(run, f, "x", &got), ENOTDIR);
    ck_assert_int_eq(kv_lookup(run, 424242, "x", &got), ENOENT);
    ck_assert_int_eq(kv_lookup(run, d, "a/b", &got), EINVAL);
    ck_assert_int_eq(kv_parent(run, d, &got), 0);
    ck_assert_uint_eq(got, root);
    ck_assert_int_eq(kv_parent(run, f, &got), ENOTDIR);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, 424242, &a), ENOENT);
}
END_TEST

/* ---- readdir ---------------------------------------------------------- */

struct listing {
    char names[64][32];
    uint64_t cookies[64];
    int n, stop_after;
};

static int collect(void *arg, const struct kv_dirent *de)
{
    struct listing *l = arg;
    ck_assert_uint_eq(strlen(de->name), de->namelen);
    snprintf(l->names[l->n], 32, "%s", de->name);
    l->cookies[l->n] = de->cookie;
    l->n++;
    return l->stop_after && l->n >= l->stop_after ? 1 : 0;
}

START_TEST(readdir_lists_in_creation_order_with_cookies)
{
    setup_published();
    make(root, "zeta", S_IFREG | 0644);
    make(root, "alpha", S_IFDIR | 0755);
    make(root, "mid", S_IFLNK | 0777);
    struct listing l = {0};
    ck_assert_int_eq(kv_readdir(run, root, 0, collect, &l), 0);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.names[0], "zeta");
    ck_assert_str_eq(l.names[1], "alpha");
    ck_assert_str_eq(l.names[2], "mid");
    ck_assert_uint_gt(l.cookies[0], 2);     /* 1 and 2 stay free for . and .. */
    struct listing m = {0};
    ck_assert_int_eq(kv_readdir(run, root, l.cookies[0], collect, &m), 0);
    ck_assert_int_eq(m.n, 2);
    ck_assert_str_eq(m.names[0], "alpha");
    struct listing s = { .stop_after = 1 };
    ck_assert_int_eq(kv_readdir(run, root, 0, collect, &s), 1);
    ck_assert_int_eq(s.n, 1);
    kv_ino f;
    ck_assert_int_eq(kv_lookup(run, root, "zeta", &f), 0);
    ck_assert_int_eq(kv_readdir(run, f, 0, collect, &s), ENOTDIR);
    ck_assert_int_eq(kv_readdir(run, 777777, 0, collect, &s), ENOENT);
    struct listing e = {0};
    kv_ino alpha;
    ck_assert_int_eq(kv_lookup(run, root, "alpha", &alpha), 0);
    ck_assert_int_eq(kv_readdir(run, alpha, 0, collect, &e), 0);
    ck_assert_int_eq(e.n, 0);
}
END_TEST

START_TEST(readdir_resumes_after_removed_entry)
{
    setup_published();
    make(root, "a", S_IFREG | 0644);
    make(root, "b", S_IFREG | 0644);
    make(root, "c", S_IFREG | 0644);
    struct listing l = { .stop_after = 2 };
    kv_readdir(run, root, 0, collect, &l);
    ck_assert_str_eq(l.names[1], "b");
    ck_assert_int_eq(kv_unlink(run, root, "b"), 0);
    make(root, "d", S_IFREG | 0644);
    struct listing m = {0};
    ck_assert_int_eq(kv_readdir(run, root, l.cookies[1], collect, &m), 0);
    ck_assert_int_eq(m.n, 2);
    ck_assert_str_eq(m.names[0], "c");
    ck_assert_str_eq(m.names[1], "d");
}
END_TEST

struct pager {
    uint64_t cookie;
    int in_page, total;
    unsigned char *seen;
};

static int page_cb(void *arg, const struct kv_dirent *de)
{
    struct pager *p = arg;
    int i = atoi(de->name + 1);
    if (p->seen[i]++)
        ck_abort_msg("%s listed twice", de->name);
    p->cookie = de->cookie;
    p->total++;
    return ++p->in_page == 1000 ? 1 : 0;
}

static int page_plus_cb(void *arg, const struct kv_dirent *de,
                        const struct kv_attr *a)
{
    if (!a || a->ino != de->ino || !S_ISREG(a->mode))
        ck_abort_msg("%s: wrong attributes", de->name);
    return page_cb(arg, de);
}

START_TEST(readdir_pages_through_100000_entries_by_cookie)
{
    setup_staged();
    enum { N = 100000 };
    kv_ino d = make(root, "big", S_IFDIR | 0755);
    struct kv_newnode n = { .mode = S_IFREG | 0644 };
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%06d", i);
        if (kv_mknode(run, d, name, &n, NULL))
            ck_abort_msg("mknode %s failed", name);
    }
    ck_assert_int_eq(kv_run_publish(run, ""), 0);
    struct pager p = { .seen = calloc(N, 1) };
    int pages = 0, ret;
    do {
        p.in_page = 0;
        ret = kv_readdir(run, d, p.cookie, page_cb, &p);
        pages++;
    } while (ret == 1);
    ck_assert_int_eq(ret, 0);
    ck_assert_int_eq(p.total, N);
    ck_assert_int_ge(pages, 100);
    /* The same with attributes, the pages after the first answered from
     * the directory's snapshot. */
    memset(p.seen, 0, N);
    p.cookie = 0;
    p.total = 0;
    do {
        p.in_page = 0;
        ret = kv_readdir_plus(run, d, p.cookie, page_plus_cb, &p);
    } while (ret == 1);
    ck_assert_int_eq(ret, 0);
    ck_assert_int_eq(p.total, N);
    ck_assert_uint_gt(kv_cache_dir_bytes(cache), 0);
    free(p.seen);
}
END_TEST

/* ---- readdir with attributes (kv_readdir_plus, snapshots) ------------- */

struct plisting {
    char names[64][32];
    uint64_t cookies[64];
    struct kv_attr attrs[64];
    int n, stop_after;
};

static int collect_plus(void *arg, const struct kv_dirent *de,
                        const struct kv_attr *a)
{
    struct plisting *l = arg;
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->ino, de->ino);
    ck_assert_uint_eq(strlen(de->name), de->namelen);
    snprintf(l->names[l->n], 32, "%s", de->name);
    l->cookies[l->n] = de->cookie;
    l->attrs[l->n] = *a;
    l->n++;
    return l->stop_after && l->n >= l->stop_after ? 1 : 0;
}

/* Every entry's attributes from the listing equal kv_getattr's now. */
static void assert_attrs_current(const struct plisting *l)
{
    for (int i = 0; i < l->n; i++) {
        struct kv_attr g;
        ck_assert_int_eq(kv_getattr(run, l->attrs[i].ino, &g), 0);
        ck_assert_mem_eq(&g, &l->attrs[i], sizeof g);
    }
}

static void plist(kv_ino dir, uint64_t cookie, struct plisting *l)
{
    memset(l, 0, sizeof *l);
    ck_assert_int_eq(kv_readdir_plus(run, dir, cookie, collect_plus, l), 0);
}

START_TEST(readdir_plus_attributes_equal_getattr_after_every_kind_of_change)
{
    setup_published();
    kv_ino a = make(root, "a", S_IFREG | 0644);
    kv_ino b = make(root, "b", S_IFREG | 0644);
    make(root, "sub", S_IFDIR | 0755);
    struct plisting l;
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 3);
    assert_attrs_current(&l);
    ck_assert_uint_gt(kv_cache_dir_bytes(cache), 0);    /* a snapshot kept */
    plist(root, 0, &l);                                 /* answered from it */
    ck_assert_int_eq(l.n, 3);
    assert_attrs_current(&l);
    /* SETATTR, WRITE, a new entry, a removed one, a rename: each listing
     * after shows the change. */
    struct kv_sattr sa = { .mask = KV_SET_MODE | KV_SET_UID, .mode = 0600, .uid = 7 };
    ck_assert_int_eq(kv_setattr(run, a, &sa, NULL), 0);
    plist(root, 0, &l);
    ck_assert_uint_eq(l.attrs[0].mode & 07777, 0600);
    ck_assert_uint_eq(l.attrs[0].uid, 7);
    assert_attrs_current(&l);
    write_str(b, 100000, "tail");
    plist(root, 0, &l);
    ck_assert_uint_eq(l.attrs[1].size, 100004);
    assert_attrs_current(&l);
    make(root, "c", S_IFLNK | 0777);
    ck_assert_int_eq(kv_unlink(run, root, "a"), 0);
    ck_assert_int_eq(kv_rename(run, root, "b", root, "b2"), 0);
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.names[0], "sub");
    ck_assert_str_eq(l.names[1], "c");
    ck_assert_str_eq(l.names[2], "b2");
    assert_attrs_current(&l);
    /* The same entries and cookies as kv_readdir gives. */
    struct listing k = {0};
    ck_assert_int_eq(kv_readdir(run, root, 0, collect, &k), 0);
    ck_assert_int_eq(k.n, l.n);
    for (int i = 0; i < k.n; i++) {
        ck_assert_str_eq(k.names[i], l.names[i]);
        ck_assert_uint_eq(k.cookies[i], l.cookies[i]);
    }
    kv_ino f;
    ck_assert_int_eq(kv_lookup(run, root, "c", &f), 0);
    ck_assert_int_eq(kv_readdir_plus(run, f, 0, collect_plus, &l), ENOTDIR);
    ck_assert_int_eq(kv_readdir_plus(run, 777777, 0, collect_plus, &l), ENOENT);
}
END_TEST

START_TEST(readdir_plus_pages_by_cookie_across_a_change_of_the_directory)
{
    setup_published();
    const char *names[] = { "a", "b", "c", "d", "e" };
    for (int i = 0; i < 5; i++)
        make(root, names[i], S_IFREG | 0644);
    struct plisting p1 = { .stop_after = 2 };
    ck_assert_int_eq(kv_readdir_plus(run, root, 0, collect_plus, &p1), 1);
    ck_assert_str_eq(p1.names[1], "b");
    /* Between pages: the last entry listed and one not listed yet go, a
     * new one comes, one not listed yet changes. */
    ck_assert_int_eq(kv_unlink(run, root, "b"), 0);
    ck_assert_int_eq(kv_unlink(run, root, "d"), 0);
    make(root, "f", S_IFREG | 0644);
    kv_ino e;
    ck_assert_int_eq(kv_lookup(run, root, "e", &e), 0);
    write_str(e, 0, "grown");
    struct plisting p2;
    plist(root, p1.cookies[1], &p2);
    ck_assert_int_eq(p2.n, 3);
    ck_assert_str_eq(p2.names[0], "c");
    ck_assert_str_eq(p2.names[1], "e");
    ck_assert_uint_eq(p2.attrs[1].size, 5);
    ck_assert_str_eq(p2.names[2], "f");
    assert_attrs_current(&p2);
    /* Resuming from a snapshot gives what a cursor gives. */
    struct plisting p3;
    plist(root, 0, &p3);                    /* builds a snapshot */
    struct plisting p4;
    plist(root, p3.cookies[0], &p4);        /* answered from it */
    ck_assert_int_eq(p4.n, p3.n - 1);
    for (int i = 0; i < p4.n; i++)
        ck_assert_uint_eq(p4.cookies[i], p3.cookies[i + 1]);
    struct plisting p5;
    plist(root, p3.cookies[p3.n - 1], &p5);
    ck_assert_int_eq(p5.n, 0);
}
END_TEST

START_TEST(readdir_plus_on_a_run_being_filled_lists_entries_as_they_come)
{
    setup_staged();
    make(root, "first", S_IFREG | 0644);
    struct plisting l;
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 1);
    kv_ino second = make(root, "second", S_IFREG | 0644);
    write_str(second, 0, "data");
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.names[1], "second");
    ck_assert_uint_eq(l.attrs[1].size, 4);
    assert_attrs_current(&l);
    ck_assert_uint_eq(kv_cache_dir_bytes(cache), 0);  /* no snapshot */
    ck_assert_int_eq(kv_run_publish(run, ""), 0);
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 2);
    ck_assert_uint_gt(kv_cache_dir_bytes(cache), 0);
}
END_TEST

START_TEST(readdir_plus_keeps_snapshots_within_the_budget)
{
    setup_published();
    kv_ino d[5];
    for (int k = 0; k < 5; k++) {
        char dn[16];
        snprintf(dn, sizeof dn, "d%d", k);
        d[k] = make(root, dn, S_IFDIR | 0755);
        for (int i = 0; i < 40; i++) {
            char name[48];
            snprintf(name, sizeof name, "file-with-a-longer-name-%03d", i);
            make(d[k], name, S_IFREG | 0644);
        }
    }
    /* A budget too small for one directory: listed right, nothing kept
     * but a marker saying so. */
    kv_cache_set_dir_budget(cache, 4096);
    struct plisting l;
    plist(d[0], 0, &l);
    ck_assert_int_eq(l.n, 40);
    assert_attrs_current(&l);
    ck_assert_uint_le(kv_cache_dir_bytes(cache), 256);
    plist(d[0], 0, &l);
    ck_assert_int_eq(l.n, 40);
    /* Room for four: the fifth directory's snapshot pushes the least
     * recently used one out, and everything is still listed right. */
    kv_cache_set_dir_budget(cache, 1 << 20);
    plist(d[0], 0, &l);
    uint64_t one = kv_cache_dir_bytes(cache);
    ck_assert_uint_gt(one, 0);
    kv_cache_set_dir_budget(cache, 0);
    kv_cache_set_dir_budget(cache, 4 * one + one / 2);
    for (int k = 0; k < 5; k++) {
        plist(d[k], 0, &l);
        ck_assert_int_eq(l.n, 40);
        ck_assert_uint_le(kv_cache_dir_bytes(cache), 4 * one + one / 2);
    }
    ck_assert_uint_eq(kv_cache_dir_bytes(cache), 4 * one);
    plist(d[0], 0, &l);
    ck_assert_int_eq(l.n, 40);
    assert_attrs_current(&l);
    ck_assert_uint_eq(kv_cache_dir_bytes(cache), 4 * one);
    /* Budget 0: none kept, all freed. */
    kv_cache_set_dir_budget(cache, 0);
    ck_assert_uint_eq(kv_cache_dir_bytes(cache), 0);
    plist(d[1], 0, &l);
    ck_assert_int_eq(l.n, 40);
    ck_assert_uint_eq(kv_cache_dir_bytes(cache), 0);
}
END_TEST

START_TEST(readdir_plus_of_a_replaced_run_lists_the_new_run)
{
    setup_published();
    make(root, "old", S_IFREG | 0644);
    struct plisting l;
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 1);
    kv_run *nr;
    ck_assert_int_eq(kv_run_stage(cache, "run1", 0, &nr), 0);
    kv_ino nroot = kv_run_root(nr);
    struct kv_newnode n = { .mode = S_IFREG | 0644 };
    ck_assert_int_eq(kv_mknode(nr, nroot, "new", &n, NULL), 0);
    ck_assert_int_eq(kv_run_publish(nr, "v2"), 0);
    /* The old handle still reads the old run (from its snapshot or not). */
    plist(root, 0, &l);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.names[0], "old");
    kv_run_close(run);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    kv_run_close(nr);
    plist(kv_run_root(run), 0, &l);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.names[0], "new");
    /* And after a restart (cache closed and opened again). */
    kv_run_close(run);
    kv_cache_close(cache);
    ck_assert_int_eq(kv_cache_open(cache_dir, false, &cache), 0);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    plist(kv_run_root(run), 0, &l);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.names[0], "new");
    assert_attrs_current(&l);
}
END_TEST

struct plus_race {
    kv_ino dir;
    int stop;                   /* atomic */
    int listings, bad;          /* per thread */
};

static int race_cb(void *arg, const struct kv_dirent *de, const struct kv_attr *a)
{
    uint64_t *last = arg;
    if (!a || a->ino != de->ino || de->cookie <= last[0])
        last[1]++;              /* out of order, or attributes not its own */
    last[0] = de->cookie;
    last[2]++;
    return 0;
}

static void *plus_lister(void *arg)
{
    struct plus_race *pr = arg;
    while (!__atomic_load_n(&pr->stop, __ATOMIC_ACQUIRE) || pr->listings < 3) {
        uint64_t last[3] = { 0, 0, 0 };
        int err = kv_readdir_plus(run, pr->dir, 0, race_cb, last);
        if (err || last[1] || last[2] < 2000 || last[2] > 2100)
            pr->bad++;
        pr->listings++;
    }
    return NULL;
}

START_TEST(readdir_plus_from_many_threads_while_the_directory_changes)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    struct kv_newnode n = { .mode = S_IFREG | 0644 };
    for (int i = 0; i < 2000; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%05d", i);
        ck_assert_int_eq(kv_mknode(run, d, name, &n, NULL), 0);
    }
    enum { T = 6 };
    struct plus_race pr[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        pr[i] = (struct plus_race){ .dir = d };
        ck_assert_int_eq(pthread_create(&t[i], NULL, plus_lister, &pr[i]), 0);
    }
    /* Meanwhile: entries come and go, one file grows. */
    kv_ino f0;
    ck_assert_int_eq(kv_lookup(run, d, "f00000", &f0), 0);
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%05d", i);
        ck_assert_int_eq(kv_mknode(run, d, name, &n, NULL), 0);
        write_str(f0, (uint64_t)i, "x");
        usleep(500);
    }
    for (int i = 0; i < T; i++)
        __atomic_store_n(&pr[i].stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(pr[i].bad, 0);
        ck_assert_int_ge(pr[i].listings, 3);
    }
    /* Afterwards: what a cursor and GETATTR say. */
    uint64_t last[3] = { 0, 0, 0 };
    ck_assert_int_eq(kv_readdir_plus(run, d, 0, race_cb, last), 0);
    ck_assert_uint_eq(last[2], 2100);
    struct plisting l = { .stop_after = 1 };
    ck_assert_int_eq(kv_readdir_plus(run, d, 0, collect_plus, &l), 1);
    ck_assert_uint_eq(l.attrs[0].size, 100);
    assert_attrs_current(&l);
}
END_TEST

/* ---- file data -------------------------------------------------------- */

START_TEST(write_and_read_at_offsets_across_blocks)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    size_t len = 3 * 1024 * 1024 + 12345;
    unsigned char *w = malloc(len), *rb = malloc(len + 100);
    pattern(w, len, 0);
    /* Several unaligned writes that together cover [0, len). */
    size_t cuts[] = { 0, 1, 4095, 70000, 262143, 262145, 1048577, 2000000, len };
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
        ck_assert_int_eq(kv_write(run, f, cuts[i], w + cuts[i], cuts[i + 1] - cuts[i], NULL), 0);
    ck_assert_uint_eq(size_of(f), len);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, rb, len + 100, &got, &eof), 0);
    ck_assert_uint_eq(got, len);
    ck_assert(eof);
    ck_assert(memcmp(w, rb, len) == 0);
    ck_assert_int_eq(kv_read(run, f, 300000, rb, 5000, &got, &eof), 0);
    ck_assert_uint_eq(got, 5000);
    ck_assert(!eof);
    ck_assert(memcmp(w + 300000, rb, 5000) == 0);
    /* Overwrite in the middle. */
    write_str(f, 262140, "OVERWRITE");
    ck_assert_int_eq(kv_read(run, f, 262138, rb, 13, &got, &eof), 0);
    ck_assert(memcmp(rb + 2, "OVERWRITE", 9) == 0);
    ck_assert(rb[0] == w[262138] && rb[12] == w[262138 + 12]);
    ck_assert_uint_eq(size_of(f), len);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), 0);
    ck_assert_uint_eq(a.used, len);
    free(w);
    free(rb);
}
END_TEST

START_TEST(read_at_or_past_end_gives_zero_bytes_and_eof)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    char buf[8];
    size_t got = 99;
    bool eof = false;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 0);
    ck_assert(eof);
    write_str(f, 0, "abc");
    ck_assert_int_eq(kv_read(run, f, 3, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 0);
    ck_assert(eof);
    ck_assert_int_eq(kv_read(run, f, 100, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(kv_read(run, root, 0, buf, sizeof buf, &got, &eof), EISDIR);
    kv_ino l = make(root, "l", S_IFLNK | 0777);
    ck_assert_int_eq(kv_read(run, l, 0, buf, sizeof buf, &got, &eof), EINVAL);
    ck_assert_int_eq(kv_read(run, 99999, 0, buf, sizeof buf, &got, &eof), ENOENT);
    ck_assert_int_eq(kv_write(run, root, 0, "x", 1, NULL), EISDIR);
    ck_assert_int_eq(kv_write(run, l, 0, "x", 1, NULL), EINVAL);
    ck_assert_int_eq(kv_write(run, f, UINT64_C(1) << 62, "x", 1, NULL), EFBIG);
}
END_TEST

START_TEST(a_zero_byte_write_past_the_end_changes_neither_size_nor_times)
{
    setup_published();
    kv_ino f = make(root, "zero", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct kv_attr before, after, out;
    ck_assert_int_eq(kv_getattr(run, f, &before), 0);
    ck_assert_int_eq(kv_write(run, f, 4096, "", 0, &out), 0);
    ck_assert_uint_eq(out.size, 3);
    ck_assert_int_eq(kv_getattr(run, f, &after), 0);
    ck_assert_uint_eq(after.size, 3);
    ck_assert_mem_eq(&after.mtime, &before.mtime, sizeof before.mtime);
    ck_assert_mem_eq(&after.ctime, &before.ctime, sizeof before.ctime);
    ck_assert_int_eq(kv_write(run, root, 0, "", 0, NULL), EISDIR);
}
END_TEST

START_TEST(sparse_file_holes_read_as_zeros)
{
    setup_published();
    kv_ino f = make(root, "sparse", S_IFREG | 0644);
    uint64_t far = UINT64_C(10) * 1024 * 1024 * 1024;   /* 10 GiB */
    write_str(f, far, "end");
    write_str(f, 1000, "mid");
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), 0);
    ck_assert_uint_eq(a.size, far + 3);
    ck_assert_uint_lt(a.used, 1024 * 1024);
    char buf[4096];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, far - 4093, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 4096);
    ck_assert(all_zero(buf, 4093));
    ck_assert(memcmp(buf + 4093, "end", 3) == 0);
    ck_assert_int_eq(kv_read(run, f, 5 * 1024 * 1024, buf, sizeof buf, &got, &eof), 0);
    ck_assert(all_zero(buf, 4096));
    ck_assert_int_eq(kv_read(run, f, 998, buf, 7, &got, &eof), 0);
    ck_assert(memcmp(buf, "\0\0mid\0\0", 7) == 0);
}
END_TEST

START_TEST(truncate_down_frees_blocks_and_regrowth_reads_zeros)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    size_t len = 2 * 1024 * 1024;
    unsigned char *w = malloc(len), *rb = malloc(len);
    pattern(w, len, 7);
    ck_assert_int_eq(kv_write(run, f, 0, w, len, NULL), 0);
    struct kv_statfs before, after;
    ck_assert_int_eq(kv_run_statfs(run, &before), 0);
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = 300001 };
    struct kv_attr a;
    ck_assert_int_eq(kv_setattr(run, f, &s, &a), 0);
    ck_assert_uint_eq(a.size, 300001);
    ck_assert_uint_eq(a.used, 300001);
    ck_assert_int_eq(kv_run_statfs(run, &after), 0);
    ck_assert_uint_eq(before.bytes_used - after.bytes_used, len - 300001);
    /* Grow again: everything past the cut reads as zeros. */
    s.size = len;
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, rb, len, &got, &eof), 0);
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(rb, w, 300001) == 0);
    ck_assert(all_zero(rb + 300001, len - 300001));
    s.size = 0;
    ck_assert_int_eq(kv_setattr(run, f, &s, &a), 0);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_int_eq(kv_read(run, f, 0, rb, len, &got, &eof), 0);
    ck_assert_uint_eq(got, 0);
    free(w);
    free(rb);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Issue 12 finding 9: SETATTR size=2^40 then REMOVE probed every 64 KiB
 * block number of the size (hours at 2^50).  The cost must follow the
 * data present: a few bytes in a 1 TiB file truncate and remove at once. */
START_TEST(a_huge_sparse_file_is_truncated_and_removed_at_the_cost_of_its_data)
{
    setup_published();
    kv_ino f = make(root, "huge", S_IFREG | 0644);
    write_str(f, 0, "abc");
    write_str(f, UINT64_C(1) << 20, "mid");
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = UINT64_C(1) << 40 };
    double t0 = now_s();
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    s.size = (UINT64_C(1) << 20) + 1;
    struct kv_attr a;
    ck_assert_int_eq(kv_setattr(run, f, &s, &a), 0);
    ck_assert_uint_eq(a.size, (UINT64_C(1) << 20) + 1);
    ck_assert_uint_eq(a.used, 4);
    char buf[4];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, UINT64_C(1) << 20, buf, sizeof buf,
                             &got, &eof), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(buf[0], 'm');
    s.size = UINT64_C(1) << 40;
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    ck_assert_int_eq(kv_unlink(run, root, "huge"), 0);
    double took = now_s() - t0;
    ck_assert_msg(took < 1.0, "truncate and remove of a 1 TiB sparse file "
                  "took %.2f s", took);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 1);
    ck_assert_uint_eq(st.bytes_used, 256);  /* the root's cost only */
}
END_TEST

struct unlink_job {
    const char *name;
    int err;
    volatile bool done;
};

static void *unlink_thread(void *arg)
{
    struct unlink_job *j = arg;
    j->err = kv_unlink(run, root, j->name);
    __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Issue 12 finding 9: a delete that must walk far (data 32 GiB into a
 * sparse file: half a million block numbers) goes in bounded steps, so other
 * requests on the run are answered meanwhile. */
START_TEST(a_long_delete_does_not_hold_the_run_lock)
{
    setup_published();
    kv_ino f = make(root, "far", S_IFREG | 0644);
    kv_ino g = make(root, "other", S_IFREG | 0644);
    write_str(f, 0, "a");
    write_str(f, UINT64_C(1) << 35, "z");
    write_str(g, 0, "readable");
    struct unlink_job j = { .name = "far" };
    pthread_t t;
    double start = now_s(), worst = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, unlink_thread, &j), 0);
    unsigned reads = 0;
    while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE)) {
        double t0 = now_s();
        char buf[8];
        size_t got;
        bool eof;
        ck_assert_int_eq(kv_read(run, g, 0, buf, sizeof buf, &got, &eof), 0);
        double d = now_s() - t0;
        if (d > worst)
            worst = d;
        reads++;
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(j.err, 0);
    fprintf(stderr, "long delete: %.2f s, worst read wait %.3f s, %u reads\n",
            now_s() - start, worst, reads);
    ck_assert_msg(worst < 1.0, "a read waited %.2f s during a %.2f s delete "
                  "(%u reads)", worst, now_s() - start, reads);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), ENOENT);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.bytes_used, 2 * 256 + 8);
}
END_TEST

struct extents { uint64_t off[8], len[8]; int n; };

static int extent_cb(void *arg, uint64_t off, uint64_t len)
{
    struct extents *e = arg;
    ck_assert_int_lt(e->n, 8);
    e->off[e->n] = off;
    e->len[e->n++] = len;
    return 0;
}

/* What write-back needs to write holes as holes (issue 12, finding 9):
 * the stretches of stored data of a sparse file, found at the cost of the
 * data (a 1 TiB file), adjacent blocks merged. */
START_TEST(extents_list_the_stored_data_of_a_sparse_file)
{
    setup_published();
    kv_ino f = make(root, "sparse", S_IFREG | 0644);
    static unsigned char big[2 * 65536 + 10];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(kv_write(run, f, 0, big, sizeof big, NULL), 0);
    write_str(f, UINT64_C(1) << 30, "tail");
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = UINT64_C(1) << 40 };
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    struct extents e = { .n = 0 };
    ck_assert_int_eq(kv_extents(run, f, extent_cb, &e), 0);
    ck_assert_int_eq(e.n, 2);
    ck_assert_uint_eq(e.off[0], 0);
    ck_assert_uint_eq(e.len[0], sizeof big);
    ck_assert_uint_eq(e.off[1], UINT64_C(1) << 30);
    ck_assert_uint_eq(e.len[1], 4);
    kv_ino g = make(root, "empty", S_IFREG | 0644);
    e.n = 0;
    ck_assert_int_eq(kv_extents(run, g, extent_cb, &e), 0);
    ck_assert_int_eq(e.n, 0);
    ck_assert_int_eq(kv_extents(run, root, extent_cb, &e), EISDIR);
}
END_TEST

START_TEST(truncate_up_makes_sparse_tail_and_rejects_non_files)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = 1000000 };
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    char buf[10];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 999995, buf, 10, &got, &eof), 0);
    ck_assert_uint_eq(got, 5);
    ck_assert(eof);
    ck_assert_int_eq(kv_setattr(run, root, &s, NULL), EISDIR);
    kv_ino l = make(root, "l", S_IFLNK | 0777);
    ck_assert_int_eq(kv_setattr(run, l, &s, NULL), EINVAL);
    s.size = UINT64_C(1) << 62;
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), EFBIG);
    ck_assert_int_eq(kv_setattr(run, 123456, &s, NULL), ENOENT);
}
END_TEST

START_TEST(setattr_changes_mode_owner_and_times)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    struct kv_sattr s = {
        .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID | KV_SET_ATIME |
                KV_SET_MTIME | KV_SET_CTIME,
        .mode = S_IFDIR | 04711, .uid = 55, .gid = 66,
        .atime = { 10, 1 }, .mtime = { 20, 2 }, .ctime = { 30, 3 },
    };
    struct kv_attr a;
    ck_assert_int_eq(kv_setattr(run, f, &s, &a), 0);
    ck_assert_uint_eq(a.mode, S_IFREG | 04711);   /* type bits ignored */
    ck_assert_uint_eq(a.uid, 55);
    ck_assert_uint_eq(a.gid, 66);
    ck_assert_int_eq(kv_getattr(run, f, &a), 0);
    ck_assert_int_eq(a.atime.tv_sec, 10);
    ck_assert_int_eq(a.mtime.tv_nsec, 2);
    ck_assert_int_eq(a.ctime.tv_sec, 30);
    s.mask = KV_SET_UID;
    s.uid = 1;
    ck_assert_int_eq(kv_setattr(run, f, &s, &a), 0);
    ck_assert_int_gt(a.ctime.tv_sec, 1000000000);   /* now, not restored */
}
END_TEST

START_TEST(append_streams_data_and_holes)
{
    setup_staged();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    size_t len = 1024 * 1024 + 333;
    unsigned char *w = malloc(len), *rb = malloc(4 * len);
    pattern(w, len, 3);
    kv_appender *ap;
    ck_assert_int_eq(kv_append_begin(run, f, &ap), 0);
    ck_assert_int_eq(kv_append(ap, w, 1000), 0);
    ck_assert_int_eq(kv_append_hole(ap, 100), 0);          /* small hole */
    ck_assert_int_eq(kv_append(ap, w + 1000, len - 1000), 0);
    ck_assert_int_eq(kv_append_hole(ap, 2 * len), 0);      /* big hole */
    ck_assert_int_eq(kv_append(ap, "tail", 4), 0);
    ck_assert_int_eq(kv_append_end(ap), 0);
    uint64_t total = 1000 + 100 + (len - 1000) + 2 * len + 4;
    ck_assert_uint_eq(size_of(f), total);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, rb, 4 * len, &got, &eof), 0);
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(rb, w, 1000) == 0);
    ck_assert(all_zero(rb + 1000, 100));
    ck_assert(memcmp(rb + 1100, w + 1000, len - 1000) == 0);
    ck_assert(all_zero(rb + len + 100, 2 * len));
    ck_assert(memcmp(rb + total - 4, "tail", 4) == 0);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), 0);
    ck_assert_uint_lt(a.used, total);
    /* Appending needs an empty regular file. */
    ck_assert_int_eq(kv_append_begin(run, f, &ap), EINVAL);
    ck_assert_int_eq(kv_append_begin(run, root, &ap), EISDIR);
    ck_assert_int_eq(kv_run_publish(run, ""), 0);
    kv_ino g = make(root, "g", S_IFREG | 0644);
    ck_assert_int_eq(kv_append_begin(run, g, &ap), 0);
    ck_assert_int_eq(kv_append(ap, w, len), 0);
    ck_assert_int_eq(kv_append_end(ap), 0);
    ck_assert_int_eq(kv_read(run, g, 0, rb, len, &got, &eof), 0);
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(rb, w, len) == 0);
    free(w);
    free(rb);
}
END_TEST

/* ---- links, remove, rename -------------------------------------------- */

START_TEST(symlink_target_reads_back)
{
    setup_published();
    struct kv_newnode n = { .mode = S_IFLNK | 0777, .symlink_target = "some/where/else" };
    struct kv_attr a;
    ck_assert_int_eq(kv_mknode(run, root, "l", &n, &a), 0);
    char buf[64];
    size_t len;
    ck_assert_int_eq(kv_readlink(run, a.ino, buf, sizeof buf, &len), 0);
    ck_assert_uint_eq(len, 15);
    ck_assert_str_eq(buf, "some/where/else");
    ck_assert_int_eq(kv_readlink(run, a.ino, buf, 4, &len), 0);
    ck_assert_uint_eq(len, 15);
    ck_assert(memcmp(buf, "some", 4) == 0);
    ck_assert_int_eq(kv_readlink(run, root, buf, sizeof buf, &len), EINVAL);
    ck_assert_int_eq(kv_readlink(run, 31337, buf, sizeof buf, &len), ENOENT);
    char *huge = malloc(KV_SYMLINK_MAX + 2);
    memset(huge, 'a', KV_SYMLINK_MAX + 1);
    huge[KV_SYMLINK_MAX + 1] = '\0';
    n.symlink_target = huge;
    ck_assert_int_eq(kv_mknode(run, root, "h", &n, NULL), ENAMETOOLONG);
    huge[KV_SYMLINK_MAX] = '\0';
    ck_assert_int_eq(kv_mknode(run, root, "h", &n, &a), 0);
    ck_assert_uint_eq(a.size, KV_SYMLINK_MAX);
    free(huge);
}
END_TEST

START_TEST(hard_links_share_data_and_count_nlink)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "shared");
    ck_assert_int_eq(kv_link(run, f, d, "g"), 0);
    ck_assert_int_eq(kv_link(run, f, root, "h"), 0);
    ck_assert_uint_eq(nlink_of(f), 3);
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, d, "g", &got), 0);
    ck_assert_uint_eq(got, f);
    ck_assert_int_eq(kv_link(run, f, d, "g"), EEXIST);
    ck_assert_int_eq(kv_link(run, d, root, "dl"), EPERM);
    ck_assert_int_eq(kv_link(run, 4444, root, "x"), ENOENT);
    ck_assert_int_eq(kv_link(run, f, f, "x"), ENOTDIR);
    ck_assert_int_eq(kv_unlink(run, root, "f"), 0);
    ck_assert_uint_eq(nlink_of(f), 2);
    char buf[8];
    size_t n;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &n, &eof), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(kv_unlink(run, d, "g"), 0);
    ck_assert_int_eq(kv_unlink(run, root, "h"), 0);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), ENOENT);
}
END_TEST

START_TEST(unlink_and_rmdir_remove_and_check_types)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    kv_ino f = make(d, "f", S_IFREG | 0644);
    write_str(f, 0, "bytes");
    ck_assert_uint_eq(nlink_of(root), 3);
    ck_assert_int_eq(kv_unlink(run, root, "d"), EISDIR);
    ck_assert_int_eq(kv_rmdir(run, root, "d"), ENOTEMPTY);
    ck_assert_int_eq(kv_rmdir(run, d, "f"), ENOTDIR);
    ck_assert_int_eq(kv_unlink(run, d, "nope"), ENOENT);
    ck_assert_int_eq(kv_unlink(run, f, "x"), ENOTDIR);
    ck_assert_int_eq(kv_unlink(run, d, "f"), 0);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), ENOENT);
    ck_assert_int_eq(kv_rmdir(run, root, "d"), 0);
    ck_assert_int_eq(kv_getattr(run, d, &a), ENOENT);
    ck_assert_uint_eq(nlink_of(root), 2);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 1);
    ck_assert_uint_eq(st.bytes_used, 256);   /* only the root's record */
}
END_TEST

START_TEST(rename_over_existing_file_replaces_it)
{
    setup_published();
    kv_ino a = make(root, "a", S_IFREG | 0644);
    kv_ino b = make(root, "b", S_IFREG | 0644);
    write_str(a, 0, "AAA");
    write_str(b, 0, "BBBBB");
    ck_assert_int_eq(kv_rename(run, root, "a", root, "b"), 0);
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, root, "b", &got), 0);
    ck_assert_uint_eq(got, a);
    ck_assert_int_eq(kv_lookup(run, root, "a", &got), ENOENT);
    struct kv_attr at;
    ck_assert_int_eq(kv_getattr(run, b, &at), ENOENT);
    struct listing l = {0};
    kv_readdir(run, root, 0, collect, &l);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(kv_rename(run, root, "missing", root, "x"), ENOENT);
    /* Renaming onto a hard link of itself changes nothing. */
    ck_assert_int_eq(kv_link(run, a, root, "c"), 0);
    ck_assert_int_eq(kv_rename(run, root, "b", root, "c"), 0);
    ck_assert_int_eq(kv_lookup(run, root, "b", &got), 0);
    ck_assert_uint_eq(nlink_of(a), 2);
}
END_TEST

START_TEST(rename_directories_keeps_nlink_and_parent_right)
{
    setup_published();
    kv_ino d1 = make(root, "d1", S_IFDIR | 0755);
    kv_ino d2 = make(root, "d2", S_IFDIR | 0755);
    kv_ino sub = make(d1, "sub", S_IFDIR | 0755);
    make(sub, "file", S_IFREG | 0644);
    ck_assert_uint_eq(nlink_of(d1), 3);
    ck_assert_int_eq(kv_rename(run, d1, "sub", d2, "moved"), 0);
    ck_assert_uint_eq(nlink_of(d1), 2);
    ck_assert_uint_eq(nlink_of(d2), 3);
    kv_ino p;
    ck_assert_int_eq(kv_lookup(run, sub, "..", &p), 0);
    ck_assert_uint_eq(p, d2);
    /* Over an empty directory: allowed, the target disappears. */
    kv_ino empty = make(root, "empty", S_IFDIR | 0755);
    ck_assert_int_eq(kv_rename(run, root, "d1", root, "empty"), 0);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, empty, &a), ENOENT);
    ck_assert_uint_eq(nlink_of(root), 4);   /* d2, empty(=old d1) */
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, root, "empty", &got), 0);
    ck_assert_uint_eq(got, d1);
}
END_TEST

START_TEST(rename_errors)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    kv_ino sub = make(d, "sub", S_IFDIR | 0755);
    make(d, "f", S_IFREG | 0644);
    make(root, "full", S_IFDIR | 0755);
    kv_ino full;
    ck_assert_int_eq(kv_lookup(run, root, "full", &full), 0);
    make(full, "x", S_IFREG | 0644);
    make(root, "file", S_IFREG | 0644);
    ck_assert_int_eq(kv_rename(run, root, "d", sub, "inside"), EINVAL);
    ck_assert_int_eq(kv_rename(run, root, "d", d, "self"), EINVAL);
    ck_assert_int_eq(kv_rename(run, root, "d", root, "full"), ENOTEMPTY);
    ck_assert_int_eq(kv_rename(run, root, "d", root, "file"), ENOTDIR);
    ck_assert_int_eq(kv_rename(run, root, "file", root, "d"), EISDIR);
    ck_assert_int_eq(kv_rename(run, root, "file", root, "a/b"), EINVAL);
    ck_assert_int_eq(kv_rename(run, root, "file", 98765, "x"), ENOENT);
    /* Nothing moved. */
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, root, "d", &got), 0);
    ck_assert_int_eq(kv_lookup(run, d, "sub", &got), 0);
    ck_assert_int_eq(kv_lookup(run, root, "file", &got), 0);
}
END_TEST

/* ---- statfs, metadata -------------------------------------------------- */

START_TEST(statfs_counts_bytes_and_inodes_per_run_and_cache)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    make(root, "d", S_IFDIR | 0755);
    static char data[100000];
    ck_assert_int_eq(kv_write(run, f, 0, data, sizeof data, NULL), 0);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 3);
    ck_assert_uint_eq(st.bytes_used, 100000 + 3 * 256);
    ck_assert_uint_gt(st.bytes_total, st.bytes_used);
    ck_assert_uint_gt(st.bytes_free, 0);
    kv_run *r2;
    ck_assert_int_eq(kv_run_stage(cache, "run2", 0, &r2), 0);
    ck_assert_int_eq(kv_run_publish(r2, ""), 0);
    kv_run_close(r2);
    struct kv_statfs cs;
    ck_assert_int_eq(kv_cache_statfs(cache, &cs), 0);
    ck_assert_uint_eq(cs.inodes_used, 4);
    ck_assert_uint_ge(cs.bytes_used, 100000);
    kv_cache_set_limit(cache, 1000000000);
    ck_assert_int_eq(kv_cache_statfs(cache, &cs), 0);
    ck_assert_uint_eq(cs.bytes_total, 1000000000);
    ck_assert_uint_le(cs.bytes_free, 1000000000 - cs.bytes_used);
}
END_TEST

START_TEST(run_metadata_set_get_delete)
{
    setup_published();
    char buf[16];
    size_t len;
    ck_assert_int_eq(kv_run_getmeta(run, "etag", buf, sizeof buf, &len), ENOENT);
    ck_assert_int_eq(kv_run_setmeta(run, "etag", "abcdef", 6), 0);
    ck_assert_int_eq(kv_run_getmeta(run, "etag", buf, 3, &len), 0);
    ck_assert_uint_eq(len, 6);
    ck_assert(memcmp(buf, "abc", 3) == 0);
    ck_assert_int_eq(kv_run_setmeta(run, "etag", "xy", 2), 0);
    ck_assert_int_eq(kv_run_getmeta(run, "etag", buf, sizeof buf, &len), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(kv_run_delmeta(run, "etag"), 0);
    ck_assert_int_eq(kv_run_getmeta(run, "etag", buf, sizeof buf, &len), ENOENT);
    ck_assert_int_eq(kv_run_delmeta(run, "etag"), ENOENT);
    static char big[64 * 1024 + 1];
    ck_assert_int_eq(kv_run_setmeta(run, "big", big, sizeof big), E2BIG);
    ck_assert_int_eq(kv_run_setmeta(run, "big", big, sizeof big - 1), 0);
    ck_assert_int_eq(kv_run_setmeta(run, "", "x", 1), EINVAL);
}
END_TEST

START_TEST(readonly_cache_reads_but_refuses_changes)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "ro");
    kv_run_close(run);
    run = NULL;
    kv_cache *ro;
    ck_assert_int_eq(kv_cache_open_readonly(cache_dir, &ro), 0);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(ro, "run1", &r), 0);
    char buf[4];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(r, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 2);
    ck_assert_int_eq(kv_write(r, f, 0, "x", 1, NULL), EROFS);
    ck_assert_int_eq(kv_unlink(r, root, "f"), EROFS);
    kv_run *s;
    ck_assert_int_eq(kv_run_stage(ro, "new", 0, &s), EROFS);
    ck_assert_int_eq(kv_cache_evict(ro, "run1"), EROFS);
    kv_run_close(r);
    kv_cache_close(ro);
    ck_assert_int_eq(kv_cache_open_readonly("/tmp/kvtest-missing-dir", &ro), ENOENT);
}
END_TEST

/* ---- threads ---------------------------------------------------------- */

struct reader_arg {
    kv_ino dir, file;
    size_t len;
    const unsigned char *expect;
    int errors;
};

static int count_cb(void *arg, const struct kv_dirent *de)
{
    (*(int *)arg)++;
    return 0;
}

static void *reader(void *p)
{
    struct reader_arg *a = p;
    unsigned char *buf = malloc(a->len);
    for (int iter = 0; iter < 30; iter++) {
        size_t got;
        bool eof;
        if (kv_read(run, a->file, 0, buf, a->len, &got, &eof) || got != a->len ||
            memcmp(buf, a->expect, a->len))
            a->errors++;
        int n = 0;
        if (kv_readdir(run, a->dir, 0, count_cb, &n) || n < 200)
            a->errors++;
        kv_ino ino;
        if (kv_lookup(run, a->dir, "e0100", &ino))
            a->errors++;
    }
    free(buf);
    return NULL;
}

START_TEST(concurrent_readers_and_a_writer_see_consistent_data)
{
    setup_published();
    kv_ino d = make(root, "d", S_IFDIR | 0755);
    struct kv_newnode n = { .mode = S_IFREG | 0644 };
    for (int i = 0; i < 200; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%04d", i);
        ck_assert_int_eq(kv_mknode(run, d, name, &n, NULL), 0);
    }
    kv_ino f = make(root, "f", S_IFREG | 0644);
    size_t len = 1024 * 1024;
    unsigned char *w = malloc(len);
    pattern(w, len, 11);
    ck_assert_int_eq(kv_write(run, f, 0, w, len, NULL), 0);
    enum { T = 4 };
    pthread_t th[T];
    struct reader_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct reader_arg){ d, f, len, w, 0 };
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    /* A writer adding entries at the same time. */
    for (int i = 200; i < 300; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%04d", i);
        ck_assert_int_eq(kv_mknode(run, d, name, &n, NULL), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].errors, 0);
    }
    free(w);
}
END_TEST


struct overlap {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool other_done;
    kv_ino file;
    int other_err;
};

static void *other_reader(void *p)
{
    struct overlap *o = p;
    char buf[16];
    size_t got;
    bool eof;
    struct kv_attr a;
    int err = kv_read(run, o->file, 0, buf, sizeof buf, &got, &eof);
    if (!err)
        err = kv_getattr(run, o->file, &a);
    pthread_mutex_lock(&o->mu);
    o->other_err = err;
    o->other_done = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Inside a listing (which holds the run's read lock) wait for another
 * thread's read: if readers excluded each other this would time out. */
static int wait_for_other(void *arg, const struct kv_dirent *de)
{
    struct overlap *o = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&o->mu);
    while (!o->other_done)
        if (pthread_cond_timedwait(&o->cv, &o->mu, &until))
            break;
    bool done = o->other_done;
    pthread_mutex_unlock(&o->mu);
    return done ? 1 : 2;
}

START_TEST(readers_never_wait_for_each_other)
{
    setup_published();
    struct overlap o = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, -1 };
    o.file = make(root, "f", S_IFREG | 0644);
    write_str(o.file, 0, "concurrent");
    pthread_t th;
    pthread_create(&th, NULL, other_reader, &o);
    ck_assert_int_eq(kv_readdir(run, root, 0, wait_for_other, &o), 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(o.other_err, 0);
}
END_TEST

START_TEST(opening_a_run_twice_shares_one_database)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    kv_run *a, *b;
    ck_assert_int_eq(kv_run_open(cache, "run1", &a), 0);
    ck_assert_int_eq(kv_run_open(cache, "run1", &b), 0);
    ck_assert_ptr_eq(a, b);
    write_str(f, 0, "via run");
    kv_run_close(a);
    char buf[8];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(b, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 7);
    kv_run_close(b);
    ck_assert(!kv_run_stale(run));
}
END_TEST

enum { CHURN_FILES = 3000, CHURN_ROUNDS = 8 };

struct churn {
    const kv_ino *f;
    atomic_bool done;
    int err, opener_err;
    unsigned opens;
};

/* Open the run, dirty thousands of tree pages (so that its close takes
 * a while), close it; a few times. */
static void *dirty_then_close(void *p)
{
    struct churn *ch = p;
    for (int i = 0; i < CHURN_ROUNDS && !ch->err; i++) {
        kv_run *r;
        int err = kv_run_open(cache, "run1", &r);
        for (int k = 0; k < CHURN_FILES && !err; k++) {
            char byte = (char)('a' + i);
            err = kv_write(r, ch->f[k], (uint64_t)i, &byte, 1, NULL);
        }
        if (!err || r)
            kv_run_close(r);
        ch->err = err;
    }
    atomic_store(&ch->done, true);
    return NULL;
}

/* Open and close the run as fast as possible until told to stop. */
static void *open_close(void *p)
{
    struct churn *ch = p;
    while (!atomic_load(&ch->done) && !ch->opener_err) {
        kv_run *r;
        ch->opener_err = kv_run_open(cache, "run1", &r);
        if (!ch->opener_err)
            kv_run_close(r);
        ch->opens++;
    }
    return NULL;
}

/* The last close of a run and the next open of it race: the closing
 * handle's databases must be shut before new ones open the same files
 * (a second writer handle in one process passes Kyoto Cabinet's lock,
 * finds the file marked open and "repairs" it under the first: SIGBUS). */
START_TEST(a_run_reopened_while_its_last_handle_closes_is_never_open_twice)
{
    setup_published();
    static kv_ino f[CHURN_FILES];
    for (int k = 0; k < CHURN_FILES; k++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", k);
        f[k] = make(root, name, S_IFREG | 0644);
    }
    kv_run_close(run);
    run = NULL;
    struct churn ch = { .f = f };
    pthread_t writer, opener;
    ck_assert_int_eq(pthread_create(&writer, NULL, dirty_then_close, &ch), 0);
    ck_assert_int_eq(pthread_create(&opener, NULL, open_close, &ch), 0);
    pthread_join(writer, NULL);
    pthread_join(opener, NULL);
    ck_assert_msg(ch.err == 0, "writer: %s", strerror(ch.err));
    ck_assert_msg(ch.opener_err == 0, "opener: %s", strerror(ch.opener_err));
    ck_assert_uint_gt(ch.opens, 0);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/runs/run1", cache_dir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)))
        ck_assert_msg(!strstr(de->d_name, ".tmpk"),
                      "Kyoto Cabinet repaired a live run: %s", de->d_name);
    closedir(d);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    for (int k = 0; k < CHURN_FILES; k += 97)
        ck_assert_uint_eq(size_of(f[k]), CHURN_ROUNDS);
}
END_TEST

/* Path of the run's database file with extension ext ("kct" or "kch"). */
static void db_path(const char *enc, const char *ext, char *out, size_t cap)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/runs/%s", cache_dir, enc);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    out[0] = '\0';
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && !strcmp(de->d_name + n - 3, ext))
            snprintf(out, cap, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    ck_assert(out[0]);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

START_TEST(reopen_after_crash_sweeps_unreachable_data_blocks)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "short");
    kv_run_close(run);
    run = NULL;
    /* Leave what a crash between the data and the metadata commits can
     * leave: blocks past a file's end, blocks of a missing inode, and the
     * mark saying changes were in flight. */
    char path[512];
    db_path("run1", "kch", path, sizeof path);
    KCDB *db = kcdbnew();
    ck_assert(kcdbopen(db, path, KCOWRITER));
    static char junk[4096];
    memset(junk, 'J', sizeof junk);
    memcpy(junk, "short", 5);
    unsigned char k[16];
    put_be64(k, f);
    put_be64(k + 8, 0);
    ck_assert(kcdbset(db, (char *)k, 16, junk, sizeof junk));  /* tail past size */
    put_be64(k + 8, 3);
    ck_assert(kcdbset(db, (char *)k, 16, junk, sizeof junk));  /* block past size */
    put_be64(k, 987654321);
    put_be64(k + 8, 0);
    ck_assert(kcdbset(db, (char *)k, 16, junk, sizeof junk));  /* no such inode */
    ck_assert(kcdbclose(db));
    kcdbdel(db);
    db_path("run1", "kct", path, sizeof path);
    db = kcdbnew();
    ck_assert(kcdbopen(db, path, KCOWRITER));
    ck_assert(kcdbset(db, "Sunclean", 8, "1", 1));
    ck_assert(kcdbclose(db));
    kcdbdel(db);

    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = 2 * 1024 * 1024 };
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    char *buf = malloc(s.size);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, s.size, &got, &eof), 0);
    ck_assert_uint_eq(got, s.size);
    ck_assert(memcmp(buf, "short", 5) == 0);
    ck_assert(all_zero(buf + 5, s.size - 5));
    free(buf);
    kv_run_close(run);
    run = NULL;
    db_path("run1", "kch", path, sizeof path);
    db = kcdbnew();
    ck_assert(kcdbopen(db, path, KCOREADER));
    ck_assert_int_eq(kcdbcount(db), 1);     /* only f's real block */
    kcdbclose(db);
    kcdbdel(db);
}
END_TEST

START_TEST(crash_while_changing_published_run_leaves_it_consistent)
{
    setup_published();
    kv_run_close(run);
    run = NULL;
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        kv_cache *c;
        kv_run *r;
        if (kv_cache_open(cache_dir, false, &c) || kv_run_open(c, "run1", &r))
            _exit(1);
        static unsigned char data[600 * 1024];
        memset(data, 'D', sizeof data);
        struct kv_newnode n = { .mode = S_IFREG | 0644 };
        for (int i = 0; ; i++) {
            char name[32];
            struct kv_attr a;
            snprintf(name, sizeof name, "f%d", i);
            if (kv_mknode(r, kv_run_root(r), name, &n, &a) ||
                kv_write(r, a.ino, 0, data, sizeof data, NULL))
                _exit(1);
            struct kv_sattr s = { .mask = KV_SET_SIZE, .size = 1000 };
            if (kv_setattr(r, a.ino, &s, NULL) ||
                kv_write(r, a.ino, 5000000, data, 300000, NULL))
                _exit(1);
            if (i > 0) {
                snprintf(name, sizeof name, "f%d", i - 1);
                if (kv_unlink(r, kv_run_root(r), name))
                    _exit(1);
            }
            if (i == 5 && write(go[1], "x", 1) != 1)
                _exit(1);
        }
    }
    char ch;
    ck_assert_int_eq(read(go[0], &ch, 1), 1);
    usleep(20000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status));
    close(go[0]);
    close(go[1]);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    /* Every listed file resolves and reads; inode count and data bytes
     * agree with what is reachable; regrown files show no stale bytes. */
    struct listing l = {0};
    ck_assert_int_eq(kv_readdir(run, root, 0, collect, &l), 0);
    ck_assert_int_ge(l.n, 1);
    ck_assert_int_le(l.n, 2);
    uint64_t used = 0;
    unsigned char *buf = malloc(6 * 1024 * 1024);
    for (int i = 0; i < l.n; i++) {
        kv_ino ino;
        ck_assert_int_eq(kv_lookup(run, root, l.names[i], &ino), 0);
        struct kv_attr a;
        ck_assert_int_eq(kv_getattr(run, ino, &a), 0);
        used += a.used;
        size_t got;
        bool eof;
        ck_assert_int_eq(kv_read(run, ino, 0, buf, 6 * 1024 * 1024, &got, &eof), 0);
        ck_assert_uint_eq(got, a.size);
        if (a.size <= 1000) {
            struct kv_sattr s = { .mask = KV_SET_SIZE, .size = 6 * 1024 * 1024 };
            ck_assert_int_eq(kv_setattr(run, ino, &s, NULL), 0);
            ck_assert_int_eq(kv_read(run, ino, 0, buf, 6 * 1024 * 1024, &got, &eof), 0);
            ck_assert(all_zero(buf + a.size, got - a.size));
        }
    }
    free(buf);
    struct kv_statfs st;
    ck_assert_int_eq(kv_run_statfs(run, &st), 0);
    ck_assert_uint_eq(st.inodes_used, 1 + (uint64_t)l.n);
}
END_TEST

START_TEST(run_held_by_another_process_opens_read_only)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "shared");
    kv_run_close(run);
    run = NULL;
    int ready[2], done[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid_t pid = fork();
    if (pid == 0) {
        kv_cache *c;
        kv_run *r;
        char ch;
        if (kv_cache_open(cache_dir, false, &c) || kv_run_open(c, "run1", &r))
            _exit(1);
        if (write(ready[1], "x", 1) != 1 || read(done[0], &ch, 1) != 1)
            _exit(1);
        kv_run_close(r);
        kv_cache_close(c);
        _exit(0);
    }
    char ch;
    ck_assert_int_eq(read(ready[0], &ch, 1), 1);
    ck_assert_int_eq(kv_run_open(cache, "run1", &run), 0);
    char buf[8];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 6);
    ck_assert_int_eq(kv_write(run, f, 0, "x", 1, NULL), EROFS);
    ck_assert_int_eq(write(done[1], "x", 1), 1);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(publish_by_another_process_makes_open_handle_stale)
{
    setup_published();
    make(root, "old", S_IFREG | 0644);
    ck_assert(!kv_run_stale(run));
    pid_t pid = fork();
    if (pid == 0) {
        kv_cache *c;
        kv_run *r;
        struct kv_newnode n = { .mode = S_IFREG | 0644 };
        if (kv_cache_open(cache_dir, false, &c) || kv_run_stage(c, "run1", 0, &r) ||
            kv_mknode(r, kv_run_root(r), "new", &n, NULL) || kv_run_publish(r, "v2"))
            _exit(1);
        kv_run_close(r);
        kv_cache_close(c);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(kv_run_stale(run));
    kv_ino ino;
    ck_assert_int_eq(kv_lookup(run, root, "old", &ino), 0);    /* still readable */
    ck_assert_int_eq(kv_mknode(run, root, "late", &(struct kv_newnode){ .mode = S_IFREG },
                               NULL), ESTALE);
    kv_run *r;
    ck_assert_int_eq(kv_run_open(cache, "run1", &r), 0);
    ck_assert_ptr_ne(r, run);
    ck_assert_int_eq(kv_lookup(r, kv_run_root(r), "new", &ino), 0);
    kv_run_close(r);
    kv_run_close(run);
    run = NULL;
    ck_assert_int_eq(count_entries("tmp"), 0);
}
END_TEST


/* ---- failure paths (fault hook) ---------------------------------------- */

struct fault_plan {
    const char *op;
    int skip;       /* let this many matching commits through first */
    int fired;
};

static int fail_once(void *arg, const char *op)
{
    struct fault_plan *p = arg;
    if (strcmp(op, p->op) || p->fired)
        return 0;
    if (p->skip-- > 0)
        return 0;
    p->fired = 1;
    return EIO;
}

/* Grow f to size and check every byte from 'from' on reads as zero. */
static void assert_zeros_after_growing(kv_ino f, uint64_t from, uint64_t size)
{
    struct kv_sattr s = { .mask = KV_SET_SIZE, .size = size };
    ck_assert_int_eq(kv_setattr(run, f, &s, NULL), 0);
    char *buf = malloc(size);
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, size, &got, &eof), 0);
    ck_assert_uint_eq(got, size);
    ck_assert(all_zero(buf + from, size - from));
    free(buf);
}

START_TEST(write_whose_metadata_commit_fails_leaves_nothing_past_the_end)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct kv_statfs before, after;
    ck_assert_int_eq(kv_run_statfs(run, &before), 0);
    static char data[200000];
    memset(data, 'X', sizeof data);
    struct fault_plan p = { "meta-commit", 0, 0 };
    kv_set_fault(fail_once, &p);
    ck_assert_int_eq(kv_write(run, f, 1, data, sizeof data, NULL), EIO);
    kv_set_fault(NULL, NULL);
    ck_assert(p.fired);
    ck_assert_uint_eq(size_of(f), 3);
    ck_assert_int_eq(kv_run_statfs(run, &after), 0);
    ck_assert_uint_eq(after.bytes_used, before.bytes_used);
    assert_zeros_after_growing(f, 3, 400000);
}
END_TEST

START_TEST(write_whose_data_commit_fails_changes_nothing)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct fault_plan p = { "data-commit", 0, 0 };
    kv_set_fault(fail_once, &p);
    ck_assert_int_eq(kv_write(run, f, 0, "XYZW", 4, NULL), EIO);
    kv_set_fault(NULL, NULL);
    char buf[8];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 3);
    ck_assert(memcmp(buf, "abc", 3) == 0);
}
END_TEST

START_TEST(append_whose_end_fails_leaves_an_empty_file_without_blocks)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    static char data[300000];
    memset(data, 'Y', sizeof data);
    kv_appender *ap;
    ck_assert_int_eq(kv_append_begin(run, f, &ap), 0);
    ck_assert_int_eq(kv_append(ap, data, sizeof data), 0);
    struct fault_plan p = { "meta-commit", 0, 0 };
    kv_set_fault(fail_once, &p);
    ck_assert_int_eq(kv_append_end(ap), EIO);
    kv_set_fault(NULL, NULL);
    struct kv_attr a;
    ck_assert_int_eq(kv_getattr(run, f, &a), 0);
    ck_assert_uint_eq(a.size, 0);
    ck_assert_uint_eq(a.used, 0);
    assert_zeros_after_growing(f, 0, 400000);
}
END_TEST

START_TEST(unlink_whose_commit_fails_keeps_the_file_whole)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    static char data[150000];
    memset(data, 'Z', sizeof data);
    ck_assert_int_eq(kv_write(run, f, 0, data, sizeof data, NULL), 0);
    struct fault_plan p = { "meta-commit", 0, 0 };
    kv_set_fault(fail_once, &p);
    ck_assert_int_eq(kv_unlink(run, root, "f"), EIO);
    kv_set_fault(NULL, NULL);
    kv_ino got;
    ck_assert_int_eq(kv_lookup(run, root, "f", &got), 0);
    static char back[150000];
    size_t n;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, back, sizeof back, &n, &eof), 0);
    ck_assert_uint_eq(n, sizeof data);
    ck_assert(memcmp(back, data, sizeof data) == 0);
}
END_TEST

/* Counts the disk flushes of kv_run_sync (fault hook op "sync") and
 * fails each with fail (0: none fails). */
struct flush_count {
    int n;
    int fail;
};

static int count_flushes(void *arg, const char *op)
{
    struct flush_count *c = arg;
    if (strcmp(op, "sync") != 0)
        return 0;
    c->n++;
    return c->fail;
}

/* A client looping COMMIT must cost no disk flush: kv_run_sync flushes a
 * run only when it changed since its last flush. */
START_TEST(sync_of_an_unchanged_run_does_not_flush_again)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct flush_count c = { 0, 0 };
    kv_set_fault(count_flushes, &c);
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 1);
    char buf[8];
    size_t got;
    bool eof;
    ck_assert_int_eq(kv_read(run, f, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 1);
    write_str(f, 3, "def");
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 2);
    kv_set_fault(NULL, NULL);
}
END_TEST

/* A flush that failed made nothing durable: the next kv_run_sync of the
 * unchanged run flushes again instead of skipping. */
START_TEST(sync_after_a_failed_flush_flushes_again)
{
    setup_published();
    kv_ino f = make(root, "f", S_IFREG | 0644);
    write_str(f, 0, "abc");
    struct flush_count c = { 0, EIO };
    kv_set_fault(count_flushes, &c);
    ck_assert_int_eq(kv_run_sync(run), EIO);
    ck_assert_int_eq(c.n, 1);
    c.fail = 0;
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(kv_run_sync(run), 0);
    ck_assert_int_eq(c.n, 2);
    kv_set_fault(NULL, NULL);
}
END_TEST

static Suite *kvfs_suite(void)
{
    Suite *s = suite_create("kvfs");
    TCase *tc_cache = tcase_create("cache");
    tcase_add_checked_fixture(tc_cache, NULL, teardown);
    tcase_set_timeout(tc_cache, 300);
    tcase_add_test(tc_cache, cache_open_missing_without_create_is_enoent);
    tcase_add_test(tc_cache, cache_open_refuses_directory_with_foreign_tmp);
    tcase_add_test(tc_cache, cache_open_adopts_directory_holding_other_files);
    tcase_add_test(tc_cache, cache_open_creates_and_reopens);
    tcase_add_test(tc_cache, cache_list_gives_runs_in_name_order_with_slashes_and_dots);
    tcase_add_test(tc_cache, bad_run_names_are_einval);
    tcase_add_test(tc_cache, stage_gives_root_directory_with_hint);
    tcase_add_test(tc_cache, staged_run_is_invisible_until_published);
    tcase_add_test(tc_cache, stage_abort_leaves_nothing);
    tcase_add_test(tc_cache, publish_replaces_existing_run_atomically);
    tcase_add_test(tc_cache, evict_removes_run_but_open_handle_keeps_reading);
    tcase_add_test(tc_cache, reopen_after_close_persists_data);
    tcase_add_test(tc_cache, readonly_cache_reads_but_refuses_changes);
    tcase_add_test(tc_cache, opening_a_run_twice_shares_one_database);
    tcase_add_test(tc_cache, a_run_reopened_while_its_last_handle_closes_is_never_open_twice);
    suite_add_tcase(s, tc_cache);
    TCase *tc_crash = tcase_create("crash");
    tcase_add_checked_fixture(tc_crash, NULL, teardown);
    tcase_set_timeout(tc_crash, 300);
    tcase_add_test(tc_crash, crash_while_staging_leaves_no_trace);
    tcase_add_test(tc_crash, crash_during_publish_of_replacement_keeps_old_run);
    tcase_add_test(tc_crash, write_whose_metadata_commit_fails_leaves_nothing_past_the_end);
    tcase_add_test(tc_crash, write_whose_data_commit_fails_changes_nothing);
    tcase_add_test(tc_crash, append_whose_end_fails_leaves_an_empty_file_without_blocks);
    tcase_add_test(tc_crash, unlink_whose_commit_fails_keeps_the_file_whole);
    tcase_add_test(tc_crash, sync_of_an_unchanged_run_does_not_flush_again);
    tcase_add_test(tc_crash, sync_after_a_failed_flush_flushes_again);
    tcase_add_test(tc_crash, reopen_after_crash_sweeps_unreachable_data_blocks);
    tcase_add_test(tc_crash, crash_while_changing_published_run_leaves_it_consistent);
    tcase_add_test(tc_crash, run_held_by_another_process_opens_read_only);
    tcase_add_test(tc_crash, publish_by_another_process_makes_open_handle_stale);
    suite_add_tcase(s, tc_crash);
    TCase *tc_nodes = tcase_create("nodes");
    tcase_add_checked_fixture(tc_nodes, NULL, teardown);
    tcase_set_timeout(tc_nodes, 300);
    tcase_add_test(tc_nodes, ino_for_is_deterministic_63_bit_and_at_least_16);
    tcase_add_test(tc_nodes, ino_for_prefixes_gives_kv_ino_for_of_each_prefix_in_one_pass);
    tcase_add_test(tc_nodes, mknode_creates_each_type);
    tcase_add_test(tc_nodes, a_node_made_with_absent_data_has_its_size_reads_enodata_and_counts_as_missing);
    tcase_add_test(tc_nodes, mknode_errors);
    tcase_add_test(tc_nodes, mknode_uses_hint_or_next_free_number_above);
    tcase_add_test(tc_nodes, lookup_resolves_names_dot_and_dotdot);
    tcase_add_test(tc_nodes, setattr_changes_mode_owner_and_times);
    tcase_add_test(tc_nodes, symlink_target_reads_back);
    tcase_add_test(tc_nodes, hard_links_share_data_and_count_nlink);
    tcase_add_test(tc_nodes, unlink_and_rmdir_remove_and_check_types);
    tcase_add_test(tc_nodes, rename_over_existing_file_replaces_it);
    tcase_add_test(tc_nodes, rename_directories_keeps_nlink_and_parent_right);
    tcase_add_test(tc_nodes, rename_errors);
    tcase_add_test(tc_nodes, statfs_counts_bytes_and_inodes_per_run_and_cache);
    tcase_add_test(tc_nodes, run_metadata_set_get_delete);
    suite_add_tcase(s, tc_nodes);
    TCase *tc_readdir = tcase_create("readdir");
    tcase_add_checked_fixture(tc_readdir, NULL, teardown);
    tcase_set_timeout(tc_readdir, 300);
    tcase_add_test(tc_readdir, readdir_lists_in_creation_order_with_cookies);
    tcase_add_test(tc_readdir, readdir_resumes_after_removed_entry);
    tcase_add_test(tc_readdir, readdir_plus_attributes_equal_getattr_after_every_kind_of_change);
    tcase_add_test(tc_readdir, readdir_plus_pages_by_cookie_across_a_change_of_the_directory);
    tcase_add_test(tc_readdir, readdir_plus_on_a_run_being_filled_lists_entries_as_they_come);
    tcase_add_test(tc_readdir, readdir_plus_keeps_snapshots_within_the_budget);
    tcase_add_test(tc_readdir, readdir_plus_of_a_replaced_run_lists_the_new_run);
    tcase_add_test(tc_readdir, readdir_plus_from_many_threads_while_the_directory_changes);
    suite_add_tcase(s, tc_readdir);
    TCase *tc_big_directory = tcase_create("big_directory");
    tcase_add_checked_fixture(tc_big_directory, NULL, teardown);
    tcase_set_timeout(tc_big_directory, 300);
    tcase_add_test(tc_big_directory, readdir_pages_through_100000_entries_by_cookie);
    suite_add_tcase(s, tc_big_directory);
    TCase *tc_data = tcase_create("data");
    tcase_add_checked_fixture(tc_data, NULL, teardown);
    tcase_set_timeout(tc_data, 300);
    tcase_add_test(tc_data, write_and_read_at_offsets_across_blocks);
    tcase_add_test(tc_data, read_at_or_past_end_gives_zero_bytes_and_eof);
    tcase_add_test(tc_data, a_zero_byte_write_past_the_end_changes_neither_size_nor_times);
    tcase_add_test(tc_data, sparse_file_holes_read_as_zeros);
    tcase_add_test(tc_data, truncate_down_frees_blocks_and_regrowth_reads_zeros);
    tcase_add_test(tc_data, truncate_up_makes_sparse_tail_and_rejects_non_files);
    tcase_add_test(tc_data, a_huge_sparse_file_is_truncated_and_removed_at_the_cost_of_its_data);
    tcase_add_test(tc_data, a_long_delete_does_not_hold_the_run_lock);
    tcase_add_test(tc_data, extents_list_the_stored_data_of_a_sparse_file);
    tcase_add_test(tc_data, append_streams_data_and_holes);
    suite_add_tcase(s, tc_data);
    TCase *tc_threads = tcase_create("threads");
    tcase_add_checked_fixture(tc_threads, NULL, teardown);
    tcase_set_timeout(tc_threads, 300);
    tcase_add_test(tc_threads, concurrent_readers_and_a_writer_see_consistent_data);
    tcase_add_test(tc_threads, readers_never_wait_for_each_other);
    suite_add_tcase(s, tc_threads);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kvfs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
