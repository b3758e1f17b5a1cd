/* test_vfs_source.c: Check tests of the tarball namespace on a real NAS
 * directory of GNU-tar tarballs: listing, nested prefixes, fetch on first
 * touch shared by concurrent requests, LRU eviction, ids that survive
 * eviction and restart, corrupt tarballs, injected faults, replaced
 * tarballs, and paging a 100,000-run root. */
#include "vfs_test_util.h"
#include "util/clock.h"
#include "fetch/fetch.h"

#include <dirent.h>
#include <pthread.h>
#include <time.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_TTL_MS 200

/* These tests show whole-run fetch semantics (a run appears complete or
 * not at all: counters, eviction, failures at first touch), so they ask
 * for it (prefetch = whole).  Runs served while they stream in, the
 * default, are shown by e2e-stream.sh through the real tarnfsd. */

static vfs *open_source_vfs_grace(uint64_t limit, unsigned grace_ms)
{
    char cache[512], nas[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    snprintf(nas, sizeof nas, "%s/nas", scratch);
    struct vfs_config cfg = {
        .cache_dir = cache, .source = nas, .read_only = true,
        .list_ttl_ms = TEST_TTL_MS, .cache_limit_bytes = limit,
        .evict_grace_ms = grace_ms, .prefetch_whole = true,
    };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    return v;
}

static vfs *open_source_vfs_limit(uint64_t limit)
{
    char cache[512], nas[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    snprintf(nas, sizeof nas, "%s/nas", scratch);
    struct vfs_config cfg = {
        .cache_dir = cache, .source = nas, .read_only = true,
        .list_ttl_ms = TEST_TTL_MS, .cache_limit_bytes = limit,
        .evict_grace_ms = 1, .prefetch_whole = true,
    };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    return v;
}

static vfs *open_source_vfs(void)
{
    return open_source_vfs_limit(0);
}

static struct vfs_stats stats_of(vfs *v)
{
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    return st;
}

/* Is run published in the cache (asked of kvstore directly)? */
static bool in_cache(const char *run)
{
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open_readonly(cache, &c), 0);
    struct kv_runinfo ri;
    int err = kv_cache_runinfo(c, run, &ri);
    kv_cache_close(c);
    return err == 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static int fault_hook_fn(void *arg, const char *op, const char *key)
{
    const char **spec = arg;        /* { op, key substring } */
    if (spec[0] && strcmp(op, spec[0]) == 0 && strstr(key, spec[1]))
        return EIO;
    return 0;
}

static void source_setup(void)
{
    scratch_setup();
    fetch_fault_set_spec("");
    fetch_set_fault(NULL, NULL);
}

static void source_teardown(void)
{
    fetch_set_fault(NULL, NULL);
    scratch_teardown();
}

START_TEST(root_lists_one_directory_per_tarball_without_fetching)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball("runB", ".tar.gz", "b");
    make_run_tarball("2024/runC", ".tar", "c");
    make_run_tarball("proj/2023/runD", ".tar", "d");
    sh("echo not a run > %s/nas/README.txt", scratch);
    vfs *v = open_source_vfs();
    char names[4096];
    /* A nested directory's attributes come from its own listing, which
     * listing its parent never fetches: none until it was listed (a
     * client asks GETATTR), then the same as GETATTR's. */
    list_sorted(v, "/", names, sizeof names);
    ck_assert_str_eq(names, "2024,proj,runA/,runB/");
    list_sorted(v, "/proj", names, sizeof names);
    ck_assert_str_eq(names, "2023");
    list_sorted(v, "/proj/2023", names, sizeof names);
    ck_assert_str_eq(names, "runD/");
    list_sorted(v, "/proj", names, sizeof names);
    ck_assert_str_eq(names, "2023/");
    list_sorted(v, "/", names, sizeof names);
    ck_assert_str_eq(names, "2024,proj/,runA/,runB/");
    ck_assert_uint_eq(stats_of(v).fetches, 0);
    ck_assert(!in_cache("runA"));
    vfs_close(v);
}
END_TEST

START_TEST(first_touch_fetches_the_run_and_files_read_back_exactly)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball("runB", ".tar.gz", "b");
    make_run_tarball("proj/2023/runD", ".tar", "d");
    vfs *v = open_source_vfs();
    assert_deep_file(v, "runA", "runA");
    struct vfs_stats st = stats_of(v);
    ck_assert_uint_eq(st.fetches, 1);
    ck_assert_uint_ge(st.misses, 1);
    ck_assert_uint_gt(st.bytes_fetched, DEEP_SIZE);
    ck_assert(in_cache("runA"));
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, "runB", "runB");
    assert_deep_file(v, "proj/2023/runD", "proj/2023/runD");
    st = stats_of(v);
    ck_assert_uint_eq(st.fetches, 3);
    ck_assert_uint_eq(st.fetch_failures, 0);
    ck_assert_uint_gt(st.hits, 0);
    char names[4096];
    list_sorted(v, "/proj/2023/runD", names, sizeof names);
    ck_assert_str_eq(names, "Data/,InterOp/,RunInfo.xml,empty/,link");
    vfs_close(v);
}
END_TEST

START_TEST(a_name_without_a_tarball_is_enoent)
{
    make_run_tarball("runA", ".tar", "a");
    vfs *v = open_source_vfs();
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "nosuchrun", &id, NULL), ENOENT);
    ck_assert_int_eq(walk(v, "README", &id, NULL), ENOENT);
    ck_assert_int_eq(walk(v, "2024/runA", &id, NULL), ENOENT);
    ck_assert_uint_eq(stats_of(v).fetches, 0);
    vfs_close(v);
}
END_TEST

struct toucher { vfs *v; pthread_barrier_t *bar; int err; };

static void *first_touch(void *arg)
{
    struct toucher *t = arg;
    pthread_barrier_wait(t->bar);
    struct vfs_id id;
    t->err = walk(t->v, "runA/" DEEP_FILE, &id, NULL);
    if (!t->err) {
        char buf[512];
        size_t got;
        bool eof;
        t->err = vfs_read(t->v, &id, 1000, buf, sizeof buf, &got, &eof);
        if (!t->err && got != sizeof buf)
            t->err = EIO;
    }
    return NULL;
}

START_TEST(eight_concurrent_first_touches_share_one_fetch)
{
    make_run_tarball("runA", ".tar", "a");
    vfs *v = open_source_vfs();
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 8);
    pthread_t th[8];
    struct toucher t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct toucher){ v, &bar, -1 };
        pthread_create(&th[i], NULL, first_touch, &t[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].err, 0);
    }
    pthread_barrier_destroy(&bar);
    struct vfs_stats st = stats_of(v);
    ck_assert_uint_eq(st.fetches, 1);
    ck_assert_uint_ge(st.misses, 8);
    vfs_close(v);
}
END_TEST

/* Touch run (fetching it if needed) and wait a little, so that last
 * reference times are ordered. */
static void touch(vfs *v, const char *run)
{
    struct vfs_id id;
    char path[256];
    snprintf(path, sizeof path, "%s/RunInfo.xml", run);
    ck_assert_int_eq(walk(v, path, &id, NULL), 0);
    sleep_ms(30);
}

static void wait_evictions(vfs *v, uint64_t n)
{
    for (int i = 0; i < 400 && stats_of(v).evictions < n; i++)
        sleep_ms(50);
    ck_assert_uint_eq(stats_of(v).evictions, n);
}

START_TEST(least_recently_used_runs_are_evicted_under_a_small_limit)
{
    const char *runs[] = { "runA", "runB", "runC", "runD" };
    for (int i = 0; i < 4; i++)
        make_run_tarball(runs[i], ".tar", runs[i]);
    /* Measure one run's size in the cache, then allow about three. */
    vfs *v = open_source_vfs();
    touch(v, "runA");
    uint64_t one = stats_of(v).bytes_cached;
    ck_assert_uint_gt(one, 0);
    vfs_close(v);
    sh("rm -rf %s/cache && mkdir %s/cache", scratch, scratch);

    v = open_source_vfs_limit(one * 32 / 10);  /* high 2.88, low 2.4 runs */
    struct vfs_id deep_a;
    ck_assert_int_eq(walk(v, "runA/" DEEP_FILE, &deep_a, NULL), 0);
    sleep_ms(30);
    touch(v, "runB");
    touch(v, "runC");           /* three runs: over high; A is the oldest */
    wait_evictions(v, 1);
    ck_assert(!in_cache("runA"));
    ck_assert(in_cache("runB") && in_cache("runC"));
    touch(v, "runB");           /* now C is the least recently used */
    touch(v, "runD");
    wait_evictions(v, 2);
    ck_assert(!in_cache("runC"));
    ck_assert(in_cache("runB") && in_cache("runD"));

    /* The id taken before A was evicted still works: A is fetched again. */
    uint64_t fetches = stats_of(v).fetches;
    size_t len;
    unsigned char *got = read_all(v, &deep_a, &len);
    unsigned char *want = malloc(DEEP_SIZE);
    fill_content("runA", DEEP_FILE, want, DEEP_SIZE);
    ck_assert_uint_eq(len, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    free(want);
    ck_assert_uint_eq(stats_of(v).fetches, fetches + 1);
    vfs_close(v);
}
END_TEST

/* The cache size of one test run (they are all alike). */
static uint64_t one_run_bytes(void)
{
    vfs *v = open_source_vfs();
    touch(v, "runA");
    uint64_t one = stats_of(v).bytes_cached;
    ck_assert_uint_gt(one, 0);
    vfs_close(v);
    sh("rm -rf %s/cache && mkdir %s/cache", scratch, scratch);
    return one;
}

START_TEST(recently_referenced_runs_are_not_evicted_until_their_grace_ends)
{
    const char *runs[] = { "runA", "runB", "runC" };
    for (int i = 0; i < 3; i++)
        make_run_tarball(runs[i], ".tar", runs[i]);
    uint64_t one = one_run_bytes();
    /* A minute of grace, passed on the test clock, not waited for. */
    vfs *v = open_source_vfs_grace(one * 28 / 10, 60000);  /* high 2.52 runs */
    touch(v, "runA");
    touch(v, "runB");
    touch(v, "runC");           /* over high, but all touched just now */
    ck_assert_int_eq(vfs_housekeep(v), 0);
    ck_assert_uint_eq(stats_of(v).evictions, 0);
    ck_assert(in_cache("runA"));
    tclock_enable_advance(true);
    ck_assert_int_eq(tclock_advance(59000), 0);
    ck_assert_int_eq(vfs_housekeep(v), 0);
    ck_assert_uint_eq(stats_of(v).evictions, 0);   /* a second to go */
    ck_assert_int_eq(tclock_advance(1000), 0);
    ck_assert_int_eq(vfs_housekeep(v), 0);
    tclock_enable_advance(false);
    ck_assert_uint_eq(stats_of(v).evictions, 1);   /* A's grace is over */
    ck_assert(!in_cache("runA"));
    ck_assert(in_cache("runB") && in_cache("runC"));
    vfs_close(v);
}
END_TEST

START_TEST(lru_order_survives_a_restart)
{
    const char *runs[] = { "runA", "runB", "runC" };
    for (int i = 0; i < 3; i++)
        make_run_tarball(runs[i], ".tar", runs[i]);
    uint64_t one = one_run_bytes();
    vfs *v = open_source_vfs();
    touch(v, "runA");           /* fetched first ... */
    touch(v, "runB");
    touch(v, "runA");           /* ... but referenced last */
    vfs_close(v);               /* persists last-reference times */
    struct timespec ta, tb;
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    ck_assert_int_eq(vfs_last_reference(cache, "runA", &ta), 0);
    ck_assert_int_eq(vfs_last_reference(cache, "runB", &tb), 0);
    ck_assert(ta.tv_sec > tb.tv_sec ||
              (ta.tv_sec == tb.tv_sec && ta.tv_nsec > tb.tv_nsec));

    v = open_source_vfs_limit(one * 28 / 10);
    touch(v, "runC");           /* over high: B is the least recently used */
    wait_evictions(v, 1);
    ck_assert(!in_cache("runB"));
    ck_assert(in_cache("runA") && in_cache("runC"));
    vfs_close(v);
}
END_TEST

START_TEST(an_id_survives_restart_and_eviction_behind_the_servers_back)
{
    const char *longname =
        "241023_A01295_0432_BHK3NFDRX5_with_a_much_longer_suffix_than_fits";
    make_run_tarball(longname, ".tar", "l");
    make_run_tarball("2024/runC", ".tar", "c");
    vfs *v = open_source_vfs();
    struct vfs_id deep_long, deep_c, dir_c;
    char path[1024];
    snprintf(path, sizeof path, "%s/" DEEP_FILE, longname);
    ck_assert_int_eq(walk(v, path, &deep_long, NULL), 0);
    ck_assert_int_eq(walk(v, "2024/runC/" DEEP_FILE, &deep_c, NULL), 0);
    ck_assert_int_eq(walk(v, "2024/runC/Data", &dir_c, NULL), 0);
    vfs_close(v);

    /* Restart with the runs cached: no fetch needed. */
    v = open_source_vfs();
    struct vfs_attr a;
    ck_assert_int_eq(vfs_getattr(v, &deep_long, &a), 0);
    ck_assert_uint_eq(a.size, DEEP_SIZE);
    ck_assert_uint_eq(stats_of(v).fetches, 0);
    vfs_close(v);

    /* Evict both with kvstore directly (as `tarnfs cache evict` does),
     * then restart: the old ids fetch their runs again. */
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open(cache, false, &c), 0);
    ck_assert_int_eq(kv_cache_evict(c, longname), 0);
    ck_assert_int_eq(kv_cache_evict(c, "2024/runC"), 0);
    kv_cache_close(c);
    v = open_source_vfs();
    size_t len;
    unsigned char *got = read_all(v, &deep_long, &len);
    unsigned char *want = malloc(DEEP_SIZE);
    fill_content(longname, DEEP_FILE, want, DEEP_SIZE);
    ck_assert_uint_eq(len, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    struct vfs_id found;
    ck_assert_int_eq(vfs_lookup(v, &dir_c, "Intensities", &found, &a), 0);
    ck_assert_int_eq(a.type, VFS_DIR);
    got = read_all(v, &deep_c, &len);
    fill_content("2024/runC", DEEP_FILE, want, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    free(want);
    ck_assert_uint_eq(stats_of(v).fetches, 2);
    vfs_close(v);
}
END_TEST

START_TEST(a_run_evicted_by_another_process_is_fetched_again_on_next_use)
{
    make_run_tarball("runA", ".tar", "a");
    vfs *v = open_source_vfs();
    struct vfs_id deep;
    ck_assert_int_eq(walk(v, "runA/" DEEP_FILE, &deep, NULL), 0);
    ck_assert_uint_eq(stats_of(v).fetches, 1);
    /* `tarnfs cache evict` does this, in its own process, while we run. */
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    kv_cache *c;
    ck_assert_int_eq(kv_cache_open(cache, false, &c), 0);
    ck_assert_int_eq(kv_cache_evict(c, "runA"), 0);
    kv_cache_close(c);
    ck_assert(!in_cache("runA"));
    sleep_ms(300);
    size_t len;
    unsigned char *got = read_all(v, &deep, &len);
    unsigned char *want = malloc(DEEP_SIZE);
    fill_content("runA", DEEP_FILE, want, DEEP_SIZE);
    ck_assert_uint_eq(len, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    free(want);
    ck_assert_uint_eq(stats_of(v).fetches, 2);
    ck_assert(in_cache("runA"));
    vfs_close(v);
}
END_TEST

static bool cache_tmp_is_empty(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cache/tmp", scratch);
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n == 0;
}

START_TEST(a_corrupt_tarball_gives_eio_leaves_nothing_and_a_fix_is_picked_up)
{
    make_run_tarball("runA", ".tar", "a");
    /* runX: a real tarball cut in the middle of the big file. */
    make_run_tarball("runX", ".tar", "x");
    sh("truncate -s 100000 %s/nas/runX.tar", scratch);
    vfs *v = open_source_vfs();
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "runX", &id, NULL), EIO);
    ck_assert(!in_cache("runX"));
    ck_assert(cache_tmp_is_empty());
    struct vfs_stats st = stats_of(v);
    ck_assert_uint_eq(st.fetches, 1);
    ck_assert_uint_eq(st.fetch_failures, 1);
    /* Other runs are unaffected. */
    assert_deep_file(v, "runA", "runA");
    /* Garbage that is no tar at all. */
    sh("head -c 50000 /dev/urandom > %s/nas/runX.tar", scratch);
    sleep_ms(TEST_TTL_MS + 50);
    ck_assert_int_eq(walk(v, "runX", &id, NULL), EIO);
    ck_assert(!in_cache("runX"));
    /* The operator puts a good tarball in place: the next access works. */
    make_run_tarball("runX", ".tar", "x");
    sleep_ms(TEST_TTL_MS + 50);
    assert_deep_file(v, "runX", "runX");
    ck_assert(in_cache("runX"));
    ck_assert_uint_eq(stats_of(v).fetch_failures, 2);
    vfs_close(v);
}
END_TEST

/* Issue 12 finding 12: a 64 MiB file of zeros compresses to a few KB of
 * .tar.zst; with a cache limit of 8 MiB the fetch must stop at the limit
 * as it ingests (EIO, nothing left), not fill the disk and evict later. */
START_TEST(a_decompression_bomb_stops_at_the_cache_limit_and_leaves_nothing)
{
    make_run_tarball("runA", ".tar", "a");
    sh("mkdir -p %s/src/bomb/bomb && head -c 64M /dev/zero > "
       "%s/src/bomb/bomb/zeros && tar -C %s/src/bomb --zstd -cf "
       "%s/nas/bomb.tar.zst bomb", scratch, scratch, scratch, scratch);
    vfs *v = open_source_vfs_limit(8u << 20);
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "bomb", &id, NULL), EIO);
    ck_assert(!in_cache("bomb"));
    ck_assert(cache_tmp_is_empty());
    ck_assert_uint_eq(stats_of(v).fetch_failures, 1);
    /* A run that fits is served as before. */
    assert_deep_file(v, "runA", "runA");
    vfs_close(v);
}
END_TEST

START_TEST(injected_backend_faults_give_eio_and_the_next_access_retries)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball("runB", ".tar", "b");
    vfs *v = open_source_vfs();
    struct vfs_id id;
    const char *fail_read[] = { "read", "runA" };
    fetch_set_fault(fault_hook_fn, fail_read);
    ck_assert_int_eq(walk(v, "runA", &id, NULL), EIO);
    ck_assert(!in_cache("runA"));
    assert_deep_file(v, "runB", "runB");     /* other runs keep working */
    const char *fail_open[] = { "open", "runA" };
    fetch_set_fault(fault_hook_fn, fail_open);
    ck_assert_int_eq(walk(v, "runA", &id, NULL), EIO);
    fetch_set_fault(NULL, NULL);
    assert_deep_file(v, "runA", "runA");
    ck_assert_uint_eq(stats_of(v).fetch_failures, 2);
    vfs_close(v);

    /* A listing failure before anything was listed is EIO, not a crash;
     * once it clears, the root lists again. */
    const char *fail_list[] = { "list", "" };
    fetch_set_fault(fault_hook_fn, fail_list);
    v = open_source_vfs();
    struct vfs_id root;
    vfs_root(v, &root);
    struct names_acc *acc = calloc(1, sizeof *acc);
    uint64_t verf;
    ck_assert_int_eq(vfs_readdir(v, &root, 0, false, &verf, names_cb, acc),
                     EIO);
    fetch_set_fault(NULL, NULL);
    ck_assert_int_eq(vfs_readdir(v, &root, 0, false, &verf, names_cb, acc), 0);
    ck_assert_uint_eq(acc->n, 2);
    free(acc);
    vfs_close(v);
}
END_TEST

START_TEST(a_replaced_tarball_is_fetched_again_and_gone_members_go_stale)
{
    make_run_tarball("runA", ".tar", "v1");
    sh("echo only in v1 > %s/src/v1/runA/only_v1.txt && "
       "tar -C %s/src/v1 -cf %s/nas/runA.tar runA", scratch, scratch, scratch);
    vfs *v = open_source_vfs();
    struct vfs_id info, only, deep;
    ck_assert_int_eq(walk(v, "runA/RunInfo.xml", &info, NULL), 0);
    ck_assert_int_eq(walk(v, "runA/only_v1.txt", &only, NULL), 0);
    ck_assert_int_eq(walk(v, "runA/" DEEP_FILE, &deep, NULL), 0);
    size_t len;
    unsigned char *got = read_all(v, &info, &len);
    ck_assert(memmem(got, len, "tag=\"v1\"", 8) != NULL);
    free(got);

    sleep_ms(20);
    make_run_tarball("runA", ".tar", "v2");       /* replaced in place */
    sleep_ms(TEST_TTL_MS + 50);
    got = read_all(v, &info, &len);                /* same id, new bytes */
    ck_assert(memmem(got, len, "tag=\"v2\"", 8) != NULL);
    free(got);
    ck_assert_uint_eq(stats_of(v).fetches, 2);
    struct vfs_attr a;
    ck_assert_int_eq(vfs_getattr(v, &only, &a), ESTALE);
    ck_assert_int_eq(vfs_getattr(v, &deep, &a), 0);
    ck_assert_uint_eq(a.size, DEEP_SIZE);
    vfs_close(v);
}
END_TEST

/* One READDIR(PLUS)-sized page: marks names seen, stops after limit. */
struct pager {
    unsigned char *seen;
    size_t n, limit, dups, bad, fetched_attrs;
    uint64_t last;
};

static int page_cb(void *arg, const struct vfs_dirent *de)
{
    struct pager *pg = arg;
    if (pg->n == pg->limit)
        return 1;
    int i = atoi(de->name);
    if (i < 0 || i >= 100000 || strlen(de->name) != 28)
        pg->bad++;
    else if (pg->seen[i]++)
        pg->dups++;
    if (de->a && de->a->type != VFS_DIR)
        pg->bad++;
    pg->n++;
    pg->last = de->cookie;
    return 0;
}

START_TEST(a_root_of_100000_runs_pages_completely_by_cookie)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nas", scratch);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    for (int i = 0; i < 100000; i++) {
        char name[64];
        snprintf(name, sizeof name, "%06d_A01295_%04d_BHK3NFDRX.tar", i,
                 i % 9999);
        int fd = openat(dfd, name, O_WRONLY | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
    }
    close(dfd);
    vfs *v = open_source_vfs();
    struct vfs_id root;
    vfs_root(v, &root);
    struct pager pg = { .seen = calloc(100000, 1) };
    uint64_t cookie = 0, verf, verf0 = 0;
    size_t total = 0;
    int pages = 0;
    for (;; pages++) {
        if (pages == 50) {          /* a restart in the middle */
            vfs_close(v);
            v = open_source_vfs();
        }
        pg.n = 0;
        pg.limit = 997;
        int rc = vfs_readdir(v, &root, cookie, pages % 3 == 0, &verf,
                             page_cb, &pg);
        ck_assert_int_ge(rc, 0);
        if (pages == 0)
            verf0 = verf;
        ck_assert_uint_eq(verf, verf0);
        total += pg.n;
        cookie = pg.last;
        if (rc == 0)
            break;
    }
    ck_assert_uint_eq(pg.bad, 0);
    ck_assert_uint_eq(pg.dups, 0);
    ck_assert_uint_eq(total, 100000);
    ck_assert_int_eq(pages, 100000 / 997);
    for (int i = 0; i < 100000; i++)
        ck_assert_int_eq(pg.seen[i], 1);
    ck_assert_uint_eq(stats_of(v).fetches, 0);
    free(pg.seen);
    vfs_close(v);
}
END_TEST


/* Fail the nth commit of run metadata ("meta-commit") with EIO. */
static int fail_nth_meta_commit(void *arg, const char *op)
{
    int *left = arg;
    if (strcmp(op, "meta-commit") != 0)
        return 0;
    return --*left == 0 ? EIO : 0;
}

/* Issue 12: a change whose "dirty" mark could not be stored was reported
 * done, so after a crash the restarted server did not write it back and
 * the acknowledged change never reached the tarball.  For each commit the
 * first change of a run makes, that commit fails once; the process then
 * dies without closing (a crash).  Whenever vfs_create and vfs_write
 * reported success, a restart and clean close must put the file in the
 * tarball. */
START_TEST(a_change_reported_done_reaches_the_tarball_even_if_marking_it_dirty_failed)
{
    char cache[512], nas[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    snprintf(nas, sizeof nas, "%s/nas", scratch);
    for (int nth = 1; nth <= 5; nth++) {
        char run[32];
        snprintf(run, sizeof run, "run%d", nth);
        make_run_tarball(run, ".tar", run);
        struct vfs_config cfg = {
            .cache_dir = cache, .source = nas, .read_only = false,
            .list_ttl_ms = TEST_TTL_MS, .prefetch_whole = true,
            .writeback_delay_ms = UINT_MAX,
        };
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            vfs *v = NULL;
            if (vfs_open(&cfg, &v) != 0)
                _exit(3);
            struct vfs_id dir, f;
            if (walk(v, run, &dir, NULL) != 0)
                _exit(4);
            int left = nth;
            kv_set_fault(fail_nth_meta_commit, &left);
            struct vfs_sattr sa = { .set_mode = true, .mode = 0644 };
            struct vfs_cred cred = { 0, 0 };
            int err = vfs_create(v, &dir, "acked.txt", VFS_REG, &sa, &cred,
                                 0, 0, NULL, &f, NULL, NULL, NULL);
            if (!err)
                err = vfs_write(v, &f, 0, "saved\n", 6, true, NULL, NULL);
            _exit(err ? 1 : 0);     /* 0: the client was told it is safe */
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_le(WEXITSTATUS(status), 1);
        if (WEXITSTATUS(status) != 0)
            continue;
        vfs *v = NULL;
        ck_assert_int_eq(vfs_open(&cfg, &v), 0);
        vfs_close(v);                   /* writes back what is dirty */
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "tar -xOf '%s/%s.tar' %s/acked.txt 2>/dev/null"
                 " | grep -q saved", nas, run, run);
        ck_assert_msg(system(cmd) == 0, "commit %d failed, the change was "
                      "acknowledged, and it is not in %s.tar", nth, run);
    }
}
END_TEST

/* Issue 12 finding 10: uid 1000 holds the handle of member RunInfo.xml;
 * it is removed and uid 2000 creates a private file of the same name.
 * After write-back, eviction and re-fetch, the old handle must not name the
 * new file (a member's number came from its path alone, so it did), and
 * the new file's own handle must still name it: by a full fetch and by its
 * index (index-first) alike. */
static void reopen_after_writeback(const char *cache, const char *nas,
                                   bool index_first,
                                   const struct vfs_id *old,
                                   const struct vfs_id *made)
{
    sh("rm -rf '%s'", cache);       /* evicted: fetched again */
    struct vfs_config cfg = {
        .cache_dir = cache, .source = nas, .read_only = true,
        .list_ttl_ms = TEST_TTL_MS, .prefetch_whole = !index_first,
    };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    struct vfs_id id;
    struct vfs_attr a;
    ck_assert_int_eq(walk(v, "runG/RunInfo.xml", &id, &a), 0);
    ck_assert_uint_eq(a.uid, 2000);
    ck_assert_int_eq(vfs_getattr(v, old, &a), ESTALE);
    ck_assert_int_eq(vfs_getattr(v, made, &a), 0);
    ck_assert_uint_eq(a.uid, 2000);
    ck_assert_uint_eq(a.size, 6);
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    if (index_first) {              /* from the index, no tarball data */
        char tar[600];
        struct stat tst;
        snprintf(tar, sizeof tar, "%s/runG.tar", nas);
        ck_assert_int_eq(stat(tar, &tst), 0);
        ck_assert_uint_eq(st.index_fetches, 1);
        ck_assert_uint_lt(st.bytes_fetched, (uint64_t)tst.st_size / 4);
    }
    vfs_close(v);
}

START_TEST(a_removed_members_old_id_never_names_its_successor_after_writeback)
{
    char cache[512], nas[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    snprintf(nas, sizeof nas, "%s/nas", scratch);
    make_run_tarball("runG", ".tar", "g");
    struct vfs_config cfg = {
        .cache_dir = cache, .source = nas, .read_only = false,
        .list_ttl_ms = TEST_TTL_MS, .prefetch_whole = true,
        .writeback_delay_ms = UINT_MAX,
    };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    struct vfs_id run, old, made;
    struct vfs_attr a;
    struct vfs_cred u2 = { 2000, 2000 };
    struct vfs_sattr s600 = { .set_mode = true, .mode = 0600 };
    ck_assert_int_eq(walk(v, "runG", &run, NULL), 0);
    ck_assert_int_eq(walk(v, "runG/RunInfo.xml", &old, NULL), 0);
    ck_assert_int_eq(vfs_remove(v, &run, "RunInfo.xml", false, NULL, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "RunInfo.xml", VFS_REG, &s600, &u2,
                                0, 0, NULL, &made, &a, NULL, NULL), 0);
    ck_assert_int_eq(vfs_write(v, &made, 0, "secret", 6, true, NULL, NULL), 0);
    vfs_close(v);                   /* writes runG back */
    char cmd[1200];                 /* which GNU tar reads without a word */
    snprintf(cmd, sizeof cmd, "tar -tf '%s/runG.tar' 2>&1 >/dev/null | grep .",
             nas);
    ck_assert_msg(system(cmd) != 0, "GNU tar warns about the written-back tarball");

    reopen_after_writeback(cache, nas, false, &old, &made);
    sh("%s/tests/lazy/mkindex '%s' runG.tar >/dev/null",
       getenv("B") ? getenv("B") : "build-san", nas);
    reopen_after_writeback(cache, nas, true, &old, &made);
}
END_TEST

static Suite *vfs_source_suite(void)
{
    Suite *s = suite_create("vfs-tarball-namespace");
    TCase *tc = tcase_create("nas");
    tcase_add_checked_fixture(tc, source_setup, source_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, root_lists_one_directory_per_tarball_without_fetching);
    tcase_add_test(tc, first_touch_fetches_the_run_and_files_read_back_exactly);
    tcase_add_test(tc, a_name_without_a_tarball_is_enoent);
    tcase_add_test(tc, eight_concurrent_first_touches_share_one_fetch);
    tcase_add_test(tc, least_recently_used_runs_are_evicted_under_a_small_limit);
    tcase_add_test(tc, recently_referenced_runs_are_not_evicted_until_their_grace_ends);
    tcase_add_test(tc, lru_order_survives_a_restart);
    tcase_add_test(tc, an_id_survives_restart_and_eviction_behind_the_servers_back);
    tcase_add_test(tc, a_run_evicted_by_another_process_is_fetched_again_on_next_use);
    tcase_add_test(tc, a_corrupt_tarball_gives_eio_leaves_nothing_and_a_fix_is_picked_up);
    tcase_add_test(tc, a_decompression_bomb_stops_at_the_cache_limit_and_leaves_nothing);
    tcase_add_test(tc, injected_backend_faults_give_eio_and_the_next_access_retries);
    tcase_add_test(tc, a_replaced_tarball_is_fetched_again_and_gone_members_go_stale);
    tcase_add_test(tc, a_root_of_100000_runs_pages_completely_by_cookie);
    tcase_add_test(tc, a_change_reported_done_reaches_the_tarball_even_if_marking_it_dirty_failed);
    tcase_add_test(tc, a_removed_members_old_id_never_names_its_successor_after_writeback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vfs_source_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
