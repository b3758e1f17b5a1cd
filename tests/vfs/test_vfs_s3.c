/* test_vfs_s3.c: Check tests of the tarball namespace on a real Ceph RGW
 * (started by tests/s3/rgw-start.sh, whose env file the caller sources):
 * listing, reading deep files, special-character keys, one fetch for 8
 * concurrent first touches, injected S3 faults, a wrong secret key. */
#include "vfs_test_util.h"
#include "fetch/fetch.h"

#include <pthread.h>

static const char *bucket;
static char source[512];          /* s3://bucket/vfs-<pid>, per test */

static struct fetch_config fast_config(void)
{
    struct fetch_config c = { .retry_base_ms = 5, .max_retries = 3 };
    return c;
}

static ssize_t file_pull(void *arg, void *buf, size_t cap)
{
    ssize_t n = read(*(int *)arg, buf, cap);
    return n < 0 ? -errno : n;
}

/* Upload scratch/nas/<run><suffix> as key <run><suffix> under source. */
static void upload(const char *run, const char *suffix)
{
    fetch_backend *b;
    char err[512], path[1024], key[1024];
    struct fetch_config c = fast_config();
    ck_assert_msg(fetch_open(source, &c, &b, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/nas/%s%s", scratch, run, suffix);
    snprintf(key, sizeof key, "%s%s", run, suffix);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fetch_put(b, key, file_pull, &fd, NULL, NULL), 0);
    close(fd);
    fetch_close(b);
}

static void s3_setup(void)
{
    scratch_setup();
    fetch_fault_set_spec("");
    fetch_set_fault(NULL, NULL);
    snprintf(source, sizeof source, "s3://%s/vfs-%ld", bucket, (long)getpid());
}

static void s3_teardown(void)
{
    fetch_fault_set_spec("");
    scratch_teardown();
}

static vfs *open_s3_vfs(const struct fetch_config *fc)
{
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    struct vfs_config cfg = { .cache_dir = cache, .source = source,
                              .read_only = true, .list_ttl_ms = 200,
                              .fetch = *fc };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    return v;
}

#define SPECIAL "run with space+plus=eq(1)_\xc3\xa9t\xc3\xa9"

START_TEST(an_s3_bucket_lists_and_reads_like_a_nas_directory)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball(SPECIAL, ".tar", "s");
    make_run_tarball("2024/runC", ".tar.gz", "c");
    upload("runA", ".tar");
    upload(SPECIAL, ".tar");
    upload("2024/runC", ".tar.gz");
    struct fetch_config fc = fast_config();
    vfs *v = open_s3_vfs(&fc);
    char names[4096];
    /* 2024/ not listed yet: no attributes, never a LIST for them */
    list_sorted(v, "/", names, sizeof names);
    ck_assert_str_eq(names, "2024," SPECIAL "/,runA/");
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    ck_assert_uint_eq(st.fetches, 0);
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, SPECIAL, SPECIAL);
    assert_deep_file(v, "2024/runC", "2024/runC");
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "nosuchrun", &id, NULL), ENOENT);
    vfs_get_stats(v, &st);
    ck_assert_uint_eq(st.fetches, 3);
    ck_assert_uint_eq(st.fetch_failures, 0);
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
    return NULL;
}

START_TEST(eight_concurrent_first_touches_share_one_s3_fetch)
{
    make_run_tarball("runA", ".tar", "a");
    upload("runA", ".tar");
    struct fetch_config fc = fast_config();
    vfs *v = open_s3_vfs(&fc);
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
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    ck_assert_uint_eq(st.fetches, 1);
    assert_deep_file(v, "runA", "runA");
    vfs_close(v);
}
END_TEST

START_TEST(s3_faults_are_retried_or_give_eio_and_leave_nothing)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball("runB", ".tar", "b");
    make_run_tarball("runC", ".tar", "c");
    upload("runA", ".tar");
    upload("runB", ".tar");
    upload("runC", ".tar");
    struct fetch_config fc = fast_config();
    vfs *v = open_s3_vfs(&fc);
    char names[4096];
    list_sorted(v, "/", names, sizeof names);
    ck_assert_str_eq(names, "runA/,runB/,runC/");
    /* One 500 and one reset: the backend retries, the fetch succeeds. */
    ck_assert_int_eq(fetch_fault_set_spec("http500:1:runA.tar,reset:1:runC.tar"), 0);
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, "runC", "runC");
    /* Bodies truncated on every try: EIO, and nothing half-ingested. */
    ck_assert_int_eq(fetch_fault_set_spec("truncate:100:runB.tar"), 0);
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "runB/RunInfo.xml", &id, NULL), EIO);
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    ck_assert_uint_eq(st.fetch_failures, 1);
    ck_assert_uint_eq(st.runs_cached, 2);
    /* The fault clears: the next access fetches it. */
    ck_assert_int_eq(fetch_fault_set_spec(""), 0);
    assert_deep_file(v, "runB", "runB");
    vfs_close(v);
}
END_TEST

START_TEST(a_wrong_secret_key_fails_clearly_without_crashing)
{
    struct fetch_config fc = fast_config();
    fc.access_key = getenv("AWS_ACCESS_KEY_ID");
    fc.secret_key = "definitely-not-the-secret-key";
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    struct vfs_config cfg = { .cache_dir = cache, .source = source,
                              .read_only = true, .fetch = fc };
    vfs *v = NULL;
    int err = vfs_open(&cfg, &v);
    if (err == 0) {
        /* Backends that check credentials lazily: the listing fails. */
        struct vfs_id root;
        vfs_root(v, &root);
        struct vfs_attr a;
        ck_assert_int_eq(vfs_getattr(v, &root, &a), EIO);
        vfs_close(v);
    } else {
        ck_assert_int_eq(err, EACCES);
        ck_assert_ptr_null(v);
    }
}
END_TEST

int main(void)
{
    bucket = getenv("TARNFS_S3_BUCKET");
    if (!bucket || !getenv("AWS_ENDPOINT_URL")) {
        fprintf(stderr, "test_vfs_s3: source the env file of "
                "tests/s3/rgw-start.sh first\n");
        return 2;
    }
    Suite *s = suite_create("vfs-tarball-namespace-s3 (Ceph RGW)");
    TCase *tc = tcase_create("s3");
    tcase_add_checked_fixture(tc, s3_setup, s3_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, an_s3_bucket_lists_and_reads_like_a_nas_directory);
    tcase_add_test(tc, eight_concurrent_first_touches_share_one_s3_fetch);
    tcase_add_test(tc, s3_faults_are_retried_or_give_eio_and_leave_nothing);
    tcase_add_test(tc, a_wrong_secret_key_fails_clearly_without_crashing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
