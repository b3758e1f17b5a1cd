/* test_s3.c: Check tests of the S3 backend against a real Ceph RGW (started
 * by tests/s3/rgw-start.sh; its env file gives endpoint, keys and bucket). */
#include "fetch/fetch.h"
#include "fetch/fetch_s3.h"
#include "util/hex.h"

#include <check.h>
#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *bucket;
static char source[300];
static fetch_backend *b;
static char run_id[32];     /* keeps keys of repeated runs apart */

static struct fetch_config fast_config(void)
{
    struct fetch_config c = { .retry_base_ms = 5, .max_retries = 4 };
    return c;
}

static void setup(void)
{
    char err[512];
    struct fetch_config c = fast_config();
    fetch_fault_set_spec("");
    fetch_set_fault(NULL, NULL);
    ck_assert_msg(fetch_open(source, &c, &b, err, sizeof err) == 0, "open %s: %s", source, err);
}

static void teardown(void)
{
    fetch_fault_set_spec("");
    fetch_close(b);
    b = NULL;
}

/* A key unique to this run and test. */
static const char *k(const char *name)
{
    static char buf[8][600];
    static int i;
    char *out = buf[i++ % 8];
    snprintf(out, 600, "t%s/%s", run_id, name);
    return out;
}

static char *pattern(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)x;
    }
    return p;
}

static void hex_sha256(const char *data, size_t n, char out[65])
{
    unsigned char d[32];
    SHA256((const unsigned char *)data, n, d);
    hex_encode(d, sizeof d, out);
}

struct mem_source {
    const char *data;
    size_t len, pos, fail_at;   /* fail_at: -EIO once pos reaches it (0: never) */
};

static ssize_t mem_pull(void *arg, void *buf, size_t cap)
{
    struct mem_source *m = arg;
    if (m->fail_at && m->pos >= m->fail_at)
        return -EIO;
    size_t n = m->len - m->pos;
    if (n > cap)
        n = cap;
    if (n > 50000)
        n = 50000;      /* a source that hands out odd-sized pieces */
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static int put_mem(const char *key, const char *data, size_t len, const struct fetch_put_opts *o,
                   struct fetch_objinfo *oi)
{
    struct mem_source m = { data, len, 0, 0 };
    return fetch_put(b, key, mem_pull, &m, o, oi);
}

/* Read a stream fully with reads of `chunk` bytes; returns length or -errno,
 * *got gets how many bytes came before an error. */
static ssize_t read_all(const char *key, uint64_t off, uint64_t len, size_t chunk, char **out, size_t *got)
{
    fetch_stream *s;
    int rc = fetch_get(b, key, off, len, &s);
    *got = 0;
    *out = NULL;
    if (rc)
        return -rc;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - n < chunk)
            buf = realloc(buf, cap *= 2);
        ssize_t r = fetch_read(s, buf + n, chunk);
        if (r < 0) {
            *got = n;
            free(buf);
            fetch_stream_close(s);
            return r;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    fetch_stream_close(s);
    *out = buf;
    *got = n;
    return (ssize_t)n;
}

static void assert_object_is(const char *key, const char *data, size_t len)
{
    char *got;
    size_t n;
    ck_assert_int_eq(read_all(key, 0, 0, 65536, &got, &n), (ssize_t)len);
    ck_assert(memcmp(got, data, len) == 0);
    free(got);
}

static int count_uploads_cb(void *arg, const char *key, const char *id)
{
    (void)key;
    (void)id;
    ++*(int *)arg;
    return 0;
}

static int uploads_left(void)
{
    int n = 0;
    ck_assert_int_eq(fetch_s3_list_uploads(b, count_uploads_cb, &n), 0);
    return n;
}

/* ---- credentials and buckets ------------------------------------------- */

START_TEST(a_wrong_secret_is_eacces_with_a_clear_message)
{
    fetch_backend *x;
    char err[512];
    struct fetch_config c = fast_config();
    c.access_key = getenv("AWS_ACCESS_KEY_ID");
    c.secret_key = "not-the-secret-at-all";
    ck_assert_int_eq(fetch_open(source, &c, &x, err, sizeof err), EACCES);
    char want[300];
    snprintf(want, sizeof want, "S3 rejected the secret key for access key id %s (SignatureDoesNotMatch)",
             c.access_key);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(strstr(err, "not-the-secret"));
}
END_TEST

START_TEST(an_unknown_access_key_is_eacces)
{
    fetch_backend *x;
    char err[512];
    struct fetch_config c = fast_config();
    c.access_key = "AKIANOSUCHKEY0000000";
    c.secret_key = "whatever";
    ck_assert_int_eq(fetch_open(source, &c, &x, err, sizeof err), EACCES);
    ck_assert_ptr_nonnull(strstr(err, "AKIANOSUCHKEY0000000"));
    ck_assert_ptr_nonnull(strstr(err, "InvalidAccessKeyId"));
}
END_TEST

START_TEST(a_missing_bucket_is_enoent)
{
    fetch_backend *x;
    char err[512];
    struct fetch_config c = fast_config();
    ck_assert_int_eq(fetch_open("s3://no-such-bucket-tarnfs", &c, &x, err, sizeof err), ENOENT);
    ck_assert_str_eq(err, "bucket no-such-bucket-tarnfs does not exist");
    ck_assert_int_eq(fetch_open("s3://Bad_Bucket!", &c, &x, err, sizeof err), EINVAL);
}
END_TEST

START_TEST(credentials_come_from_an_aws_profile)
{
    char dir[] = "/tmp/test_s3_home.XXXXXX", path[300], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/credentials", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"
               "[tarnfs]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
            getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"));
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    struct fetch_config c = fast_config();
    c.profile = "tarnfs";       /* a named profile wins over AWS_ACCESS_KEY_ID */
    fetch_backend *x;
    int rc = fetch_open(source, &c, &x, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    fetch_close(x);
    c.profile = "default";
    ck_assert_int_eq(fetch_open(source, &c, &x, err, sizeof err), EACCES);
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unlink(path);
    rmdir(dir);
}
END_TEST

/* ---- objects ------------------------------------------------------------- */

START_TEST(put_stat_get_and_range_get)
{
    size_t len = 300000;
    char *data = pattern(len, 1), hex[65], *got;
    size_t n;
    struct fetch_objinfo oi, st;
    hex_sha256(data, len, hex);
    ck_assert_int_eq(put_mem(k("one.tar"), data, len, NULL, &oi), 0);
    ck_assert_uint_eq(oi.size, len);
    ck_assert_str_eq(oi.sha256, hex);
    ck_assert_int_eq(fetch_stat(b, k("one.tar"), &st), 0);
    ck_assert_uint_eq(st.size, len);
    ck_assert_str_eq(st.version, oi.version);
    ck_assert_str_eq(st.sha256, hex);
    ck_assert_int_gt(st.mtime.tv_sec, 1500000000);
    assert_object_is(k("one.tar"), data, len);
    ck_assert_int_eq(read_all(k("one.tar"), 12345, 100000, 4096, &got, &n), 100000);
    ck_assert(memcmp(got, data + 12345, 100000) == 0);
    free(got);
    ck_assert_int_eq(read_all(k("one.tar"), 299000, 0, 4096, &got, &n), 1000);  /* to the end */
    ck_assert(memcmp(got, data + 299000, 1000) == 0);
    free(got);
    ck_assert_int_eq(read_all(k("one.tar"), len, 0, 4096, &got, &n), 0);        /* empty tail */
    free(got);
    ck_assert_int_eq(read_all(k("one.tar"), len + 1, 0, 4096, &got, &n), -EINVAL);
    ck_assert_int_eq(read_all(k("missing.tar"), 0, 0, 4096, &got, &n), -ENOENT);
    ck_assert_int_eq(fetch_stat(b, k("missing.tar"), &st), ENOENT);
    free(data);
}
END_TEST

struct collected {
    char keys[64][1024];
    bool prefix[64];
    int n;
};

static int collect(void *arg, const struct fetch_objinfo *oi)
{
    struct collected *c = arg;
    ck_assert_int_lt(c->n, 64);
    snprintf(c->keys[c->n], sizeof c->keys[0], "%s", oi->key);
    c->prefix[c->n++] = oi->is_prefix;
    return 0;
}

START_TEST(keys_with_spaces_plus_equals_parens_and_utf8_work)
{
    const char *names[] = {
        "run 1.tar", "a+b=c.tar", "(paren) x.tar", "caf\xc3\xa9/\xc3\xbc\xe2\x82\xac.tar",
        "dir/sub dir/x (1)+y=z.tar.gz", "odd!*'~&$,;:@.tar",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char body[64];
        struct fetch_objinfo st;
        int len = snprintf(body, sizeof body, "body of %zu", i);
        char name[300];
        snprintf(name, sizeof name, "keys/%s", names[i]);
        names[i] = strdup(name);
        ck_assert_msg(put_mem(k(names[i]), body, (size_t)len, NULL, NULL) == 0, "put %s", names[i]);
        ck_assert_msg(fetch_stat(b, k(names[i]), &st) == 0, "stat %s", names[i]);
        ck_assert_uint_eq(st.size, (uint64_t)len);
        assert_object_is(k(names[i]), body, (size_t)len);
    }
    /* and the listing gives the same names back */
    struct collected seen = { 0 };
    ck_assert_int_eq(fetch_list(b, k("keys/"), NULL, collect, &seen), 0);
    ck_assert_int_eq(seen.n, 6);
    for (size_t i = 0; i < 6; i++) {
        bool found = false;
        for (int j = 0; j < seen.n; j++)
            found |= strcmp(seen.keys[j], k(names[i])) == 0;
        ck_assert_msg(found, "%s not listed", names[i]);
    }
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(fetch_delete(b, k(names[i])), 0);
        free((void *)names[i]);
    }
}
END_TEST

START_TEST(listing_pages_through_continuation_tokens)
{
    fetch_backend *small;
    char err[512];
    struct fetch_config c = fast_config();
    c.list_page_size = 7;
    ck_assert_int_eq(fetch_open(source, &c, &small, err, sizeof err), 0);
    for (int i = 0; i < 40; i++) {
        char name[64];
        /* names whose tokens need encoding: spaces, '+', '=' */
        snprintf(name, sizeof name, "page/r %02d+x=y.tar", i);
        ck_assert_int_eq(put_mem(k(name), "x", 1, NULL, NULL), 0);
    }
    ck_assert_int_eq(put_mem(k("page/sub/a.tar"), "x", 1, NULL, NULL), 0);
    ck_assert_int_eq(put_mem(k("page/sub/b.tar"), "x", 1, NULL, NULL), 0);
    struct collected got = { 0 };
    ck_assert_int_eq(fetch_list(small, k("page/"), "/", collect, &got), 0);
    ck_assert_int_eq(got.n, 41);
    for (int i = 0; i < 40; i++) {
        char name[64];
        snprintf(name, sizeof name, "page/r %02d+x=y.tar", i);
        ck_assert_str_eq(got.keys[i], k(name));
        ck_assert(!got.prefix[i]);
    }
    ck_assert_str_eq(got.keys[40], k("page/sub/"));
    ck_assert(got.prefix[40]);
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(fetch_list(small, k("page/sub/"), NULL, collect, &got), 0);
    ck_assert_int_eq(got.n, 2);
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(fetch_list(small, k("nothing-here/"), "/", collect, &got), 0);
    ck_assert_int_eq(got.n, 0);
    fetch_close(small);
}
END_TEST

/* RGW writes a listing's headers and body apart, with Nagle on: a client
 * that leaves its ACK of the headers to the kernel's delayed ACK (40 ms)
 * gets the body 40 ms late on every kept-alive request. */
START_TEST(replies_with_a_body_wait_for_no_delayed_ack)
{
    ck_assert_int_eq(put_mem(k("ack/a.tar"), "x", 1, NULL, NULL), 0);
    int slow = 0;
    for (int i = 0; i < 12; i++) {
        struct collected got = { 0 };
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(fetch_list(b, k("ack/"), "/", collect, &got), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_eq(got.n, 1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        slow += ms >= 38.0;
    }
    /* without the early ACK: 12 of 12 on RGW 16 */
    ck_assert_msg(slow <= 4, "%d of 12 listings took 38 ms or more", slow);
}
END_TEST

START_TEST(a_prefix_source_sees_relative_keys)
{
    fetch_backend *p;
    char err[512], src[400];
    struct fetch_config c = fast_config();
    ck_assert_int_eq(put_mem(k("pfx/inner.tar"), "inner", 5, NULL, NULL), 0);
    snprintf(src, sizeof src, "%s/%s", source, k("pfx"));
    ck_assert_int_eq(fetch_open(src, &c, &p, err, sizeof err), 0);
    struct collected got = { 0 };
    ck_assert_int_eq(fetch_list(p, "", "/", collect, &got), 0);
    ck_assert_int_eq(got.n, 1);
    ck_assert_str_eq(got.keys[0], "inner.tar");
    struct fetch_objinfo st;
    ck_assert_int_eq(fetch_stat(p, "inner.tar", &st), 0);
    ck_assert_uint_eq(st.size, 5);
    fetch_close(p);
}
END_TEST

START_TEST(multipart_put_reads_back_equal)
{
    size_t len = (1 << 20) + 12345;
    char *data = pattern(len, 2), hex[65];
    struct fetch_objinfo oi, st;
    struct fetch_put_opts o = { .part_size = 128 << 10 };
    hex_sha256(data, len, hex);
    ck_assert_int_eq(put_mem(k("multi.tar"), data, len, &o, &oi), 0);
    ck_assert_uint_eq(oi.size, len);
    ck_assert_str_eq(oi.sha256, hex);
    ck_assert_ptr_nonnull(strchr(oi.version, '-'));     /* a multipart ETag */
    ck_assert_int_eq(fetch_stat(b, k("multi.tar"), &st), 0);
    ck_assert_str_eq(st.sha256, hex);                  /* stored as x-amz-meta-sha256 */
    assert_object_is(k("multi.tar"), data, len);
    char *got;
    size_t n;
    /* tiny reads make the stream pause and resume curl many times */
    ck_assert_int_eq(read_all(k("multi.tar"), 0, 0, 777, &got, &n), (ssize_t)len);
    ck_assert(memcmp(got, data, len) == 0);
    free(got);
    struct fetch_put_opts wide = { .part_size = 100 << 10, .upload_threads = 5 };
    ck_assert_int_eq(put_mem(k("multi3.tar"), data, len, &wide, &oi), 0);
    ck_assert_ptr_nonnull(strstr(oi.version, "-11"));   /* 11 parts, in order: */
    assert_object_is(k("multi3.tar"), data, len);
    struct fetch_put_opts known = { .part_size = 128 << 10, .sha256_hex = hex };
    ck_assert_int_eq(put_mem(k("multi2.tar"), data, len, &known, &oi), 0);
    ck_assert_str_eq(oi.sha256, hex);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(a_pushed_upload_in_odd_pieces_is_stored_whole_with_its_sha256)
{
    size_t len = 700001;
    char *data = pattern(len, 5), hex[65];
    struct fetch_objinfo oi, st;
    struct fetch_put_opts o = { .part_size = 128 << 10 };
    hex_sha256(data, len, hex);
    fetch_upload *u;
    ck_assert_int_eq(fetch_upload_begin(b, k("pushed.tar"), &o, &u), 0);
    size_t off = 0, step = 1;
    while (off < len) {     /* 1, 3, 9 ... bytes: pieces across part edges */
        size_t n = len - off < step ? len - off : step;
        ck_assert_int_eq(fetch_upload_write(u, data + off, n), 0);
        off += n;
        step = step * 3 % 200003 + 1;
    }
    ck_assert_int_eq(fetch_stat(b, k("pushed.tar"), &st), ENOENT);  /* nothing before commit */
    ck_assert_int_eq(fetch_upload_commit(u, &oi), 0);
    ck_assert_uint_eq(oi.size, len);
    ck_assert_str_eq(oi.sha256, hex);
    ck_assert_ptr_nonnull(strstr(oi.version, "-6"));    /* 128 KiB parts */
    assert_object_is(k("pushed.tar"), data, len);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(an_aborted_upload_leaves_no_object_and_no_parts)
{
    size_t len = 500000;
    char *data = pattern(len, 6);
    struct fetch_put_opts o = { .part_size = 128 << 10 };
    fetch_upload *u;
    ck_assert_int_eq(fetch_upload_begin(b, k("dropped.tar"), &o, &u), 0);
    ck_assert_int_eq(fetch_upload_write(u, data, len), 0);   /* parts went out */
    fetch_upload_abort(u);
    struct fetch_objinfo st;
    ck_assert_int_eq(fetch_stat(b, k("dropped.tar"), &st), ENOENT);
    ck_assert_int_eq(uploads_left(), 0);
    /* and one aborted before any part */
    ck_assert_int_eq(fetch_upload_begin(b, k("dropped.tar"), &o, &u), 0);
    ck_assert_int_eq(fetch_upload_write(u, data, 1000), 0);
    fetch_upload_abort(u);
    ck_assert_int_eq(fetch_stat(b, k("dropped.tar"), &st), ENOENT);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(a_large_part_size_starts_with_an_8_mib_part)
{
    /* With 16 MiB parts, 12 MiB goes as 8 + 4 MiB: the first PUT starts
     * after 8 MiB, not after a whole part. */
    size_t len = 12u << 20;
    char *data = pattern(len, 7);
    struct fetch_objinfo oi;
    struct fetch_put_opts o = { .part_size = 16u << 20 };
    ck_assert_int_eq(put_mem(k("ramp.tar"), data, len, &o, &oi), 0);
    ck_assert_ptr_nonnull(strstr(oi.version, "-2"));
    assert_object_is(k("ramp.tar"), data, len);
    /* up to 8 MiB stays one signed PUT */
    ck_assert_int_eq(put_mem(k("ramp1.tar"), data, 8u << 20, &o, &oi), 0);
    ck_assert_ptr_null(strchr(oi.version, '-'));
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(a_size_hint_makes_the_last_parts_small)
{
    /* 40 MiB with 16 MiB parts goes as 8 + 16 + 16; told it is about 40
     * MiB, the parts after the ramp shrink to half of what is left (at
     * least 8 MiB): 8 + 16 + 8 + 8, so less is sent after the body ends. */
    size_t len = 40u << 20;
    char *data = pattern(len, 11);
    struct fetch_objinfo oi;
    struct fetch_put_opts o = { .part_size = 16u << 20 };
    ck_assert_int_eq(put_mem(k("tail0.tar"), data, len, &o, &oi), 0);
    ck_assert_msg(strstr(oi.version, "-3"), "%s", oi.version);
    o.size_hint = len;
    ck_assert_int_eq(put_mem(k("tail.tar"), data, len, &o, &oi), 0);
    ck_assert_msg(strstr(oi.version, "-4"), "%s", oi.version);
    assert_object_is(k("tail.tar"), data, len);
    /* past a hint that was too low, parts are whole again: 8 + 16 + 16 */
    o.size_hint = 1;
    ck_assert_int_eq(put_mem(k("tail1.tar"), data, len, &o, &oi), 0);
    ck_assert_msg(strstr(oi.version, "-3"), "%s", oi.version);
    assert_object_is(k("tail1.tar"), data, len);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(if_match_conflicts_are_ecanceled)
{
    struct fetch_objinfo v1, v2, st;
    ck_assert_int_eq(put_mem(k("cond.tar"), "one", 3, NULL, &v1), 0);
    struct fetch_put_opts o = { .if_match = v1.version };
    ck_assert_int_eq(put_mem(k("cond.tar"), "two!", 4, &o, &v2), 0);
    ck_assert_str_ne(v1.version, v2.version);
    ck_assert_int_eq(put_mem(k("cond.tar"), "three", 5, &o, NULL), ECANCELED);   /* v1 is stale */
    assert_object_is(k("cond.tar"), "two!", 4);
    struct fetch_put_opts create = { .if_none_match = true };
    ck_assert_int_eq(put_mem(k("cond.tar"), "new", 3, &create, NULL), ECANCELED);
    ck_assert_int_eq(put_mem(k("fresh.tar"), "new", 3, &create, NULL), 0);
    /* the same rules hold for multipart uploads, which leave nothing behind */
    size_t len = 400000;
    char *data = pattern(len, 3);
    struct fetch_put_opts mp = { .if_match = v1.version, .part_size = 128 << 10 };
    ck_assert_int_eq(put_mem(k("cond.tar"), data, len, &mp, NULL), ECANCELED);
    struct fetch_put_opts mpc = { .if_none_match = true, .part_size = 128 << 10 };
    ck_assert_int_eq(put_mem(k("cond.tar"), data, len, &mpc, NULL), ECANCELED);
    ck_assert_int_eq(fetch_stat(b, k("cond.tar"), &st), 0);
    ck_assert_str_eq(st.version, v2.version);
    mp.if_match = v2.version;
    ck_assert_int_eq(put_mem(k("cond.tar"), data, len, &mp, NULL), 0);
    assert_object_is(k("cond.tar"), data, len);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(delete_then_enoent)
{
    struct fetch_objinfo st;
    ck_assert_int_eq(put_mem(k("gone.tar"), "x", 1, NULL, NULL), 0);
    ck_assert_int_eq(fetch_delete(b, k("gone.tar")), 0);
    ck_assert_int_eq(fetch_stat(b, k("gone.tar"), &st), ENOENT);
    ck_assert_int_eq(fetch_delete(b, k("gone.tar")), ENOENT);
}
END_TEST

/* ---- faults ---------------------------------------------------------------- */

static char *big;
static size_t big_len = (1 << 20) + 4321;

static void put_big(const char *key)
{
    big = pattern(big_len, 4);
    ck_assert_int_eq(put_mem(key, big, big_len, NULL, NULL), 0);
}

START_TEST(an_injected_500_is_retried)
{
    put_big(k("f500.tar"));
    struct fetch_objinfo st;
    ck_assert_int_eq(fetch_fault_set_spec("http500:2"), 0);
    ck_assert_int_eq(fetch_stat(b, k("f500.tar"), &st), 0);       /* 2 failures, then fine */
    ck_assert_int_eq(fetch_fault_set_spec("http500:1"), 0);
    assert_object_is(k("f500.tar"), big, big_len);
    ck_assert_int_eq(fetch_fault_set_spec("http500:1"), 0);
    ck_assert_int_eq(put_mem(k("f500b.tar"), "abc", 3, NULL, NULL), 0);
    assert_object_is(k("f500b.tar"), "abc", 3);
    free(big);
}
END_TEST

START_TEST(a_reset_mid_body_resumes_with_a_range)
{
    put_big(k("reset.tar"));
    ck_assert_int_eq(fetch_fault_set_spec("reset:2"), 0);
    assert_object_is(k("reset.tar"), big, big_len);
    ck_assert_int_eq(fetch_fault_check("reset", "x"), 0);          /* both resets were used */
    ck_assert_int_eq(fetch_fault_set_spec("reset:1"), 0);           /* during a ranged read too */
    char *got;
    size_t n;
    ck_assert_int_eq(read_all(k("reset.tar"), 1000, 500000, 4096, &got, &n), 500000);
    ck_assert(memcmp(got, big + 1000, 500000) == 0);
    free(got);
    free(big);
}
END_TEST

START_TEST(a_truncated_body_is_retried_never_taken_as_complete)
{
    put_big(k("trunc.tar"));
    ck_assert_int_eq(fetch_fault_set_spec("truncate:1"), 0);
    assert_object_is(k("trunc.tar"), big, big_len);
    /* when every attempt is cut short the reader gets EIO, never a clean end */
    ck_assert_int_eq(fetch_fault_set_spec("truncate"), 0);
    char *got;
    size_t n;
    fetch_stream *s;
    ck_assert_int_eq(fetch_get(b, k("trunc.tar"), 0, 0, &s), 0);
    char buf[65536];
    ssize_t r;
    size_t total = 0;
    while ((r = fetch_read(s, buf, sizeof buf)) > 0) {
        ck_assert(memcmp(buf, big + total, (size_t)r) == 0);   /* what comes is right */
        total += (size_t)r;
    }
    ck_assert_int_eq(r, -EIO);
    ck_assert_uint_lt(total, big_len);
    fetch_stream_close(s);
    ck_assert_int_eq(read_all(k("trunc.tar"), 0, 0, 4096, &got, &n), -EIO);
    fetch_fault_set_spec("");
    free(big);
}
END_TEST

START_TEST(an_object_replaced_during_a_resumed_read_is_eio_not_a_mix)
{
    put_big(k("swap.tar"));
    ck_assert_int_eq(fetch_fault_set_spec("reset:1"), 0);   /* the first transfer dies early */
    fetch_stream *s;
    ck_assert_int_eq(fetch_get(b, k("swap.tar"), 0, 0, &s), 0);
    char *other = pattern(big_len, 99);
    ck_assert_int_eq(put_mem(k("swap.tar"), other, big_len, NULL, NULL), 0);
    char buf[65536];
    ssize_t r;
    size_t total = 0;
    while ((r = fetch_read(s, buf, sizeof buf)) > 0) {
        ck_assert(memcmp(buf, big + total, (size_t)r) == 0);   /* only old bytes */
        total += (size_t)r;
    }
    ck_assert_int_eq(r, -EIO);
    ck_assert_uint_lt(total, big_len);
    fetch_stream_close(s);
    free(other);
    free(big);
}
END_TEST

START_TEST(persistent_faults_end_in_eio)
{
    struct fetch_objinfo st;
    ck_assert_int_eq(put_mem(k("p.tar"), "abc", 3, NULL, NULL), 0);
    ck_assert_int_eq(fetch_fault_set_spec("http500"), 0);
    ck_assert_int_eq(fetch_stat(b, k("p.tar"), &st), EIO);
    char *got;
    size_t n;
    ck_assert_int_eq(read_all(k("p.tar"), 0, 0, 4096, &got, &n), -EIO);
    ck_assert_int_eq(fetch_fault_set_spec("reset"), 0);
    ck_assert_int_eq(read_all(k("p.tar"), 0, 0, 4096, &got, &n), -EIO);
    fetch_fault_set_spec("");
}
END_TEST

START_TEST(a_reset_during_a_part_upload_is_retried)
{
    size_t len = 600000;
    char *data = pattern(len, 5);
    struct fetch_put_opts o = { .part_size = 128 << 10 };
    ck_assert_int_eq(fetch_fault_set_spec("reset:2"), 0);
    ck_assert_int_eq(put_mem(k("upreset.tar"), data, len, &o, NULL), 0);
    fetch_fault_set_spec("");
    assert_object_is(k("upreset.tar"), data, len);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

START_TEST(a_failed_multipart_upload_leaves_nothing_behind)
{
    size_t len = 700000;
    char *data = pattern(len, 6);
    struct fetch_objinfo st;
    struct fetch_put_opts o = { .part_size = 128 << 10 };
    /* the source fails after some parts were uploaded */
    struct mem_source m = { data, len, 0, 400000 };
    ck_assert_int_eq(fetch_put(b, k("failed.tar"), mem_pull, &m, &o, NULL), EIO);
    ck_assert_int_eq(fetch_stat(b, k("failed.tar"), &st), ENOENT);
    ck_assert_int_eq(uploads_left(), 0);
    /* the server keeps failing a part */
    ck_assert_int_eq(fetch_fault_set_spec("http500::failed2"), 0);
    ck_assert_int_eq(put_mem(k("failed2.tar"), data, len, &o, NULL), EIO);
    fetch_fault_set_spec("");
    ck_assert_int_eq(fetch_stat(b, k("failed2.tar"), &st), ENOENT);
    ck_assert_int_eq(uploads_left(), 0);
    /* the body does not match the checksum the caller promised */
    struct fetch_put_opts bad = { .part_size = 128 << 10, .sha256_hex =
        "0000000000000000000000000000000000000000000000000000000000000000" };
    ck_assert_int_eq(put_mem(k("failed3.tar"), data, len, &bad, NULL), EIO);
    ck_assert_int_eq(fetch_stat(b, k("failed3.tar"), &st), ENOENT);
    ck_assert_int_eq(uploads_left(), 0);
    free(data);
}
END_TEST

struct reader_arg {
    const char *key;
    const char *data;
    size_t len;
    int ok;
};

static void *reader(void *arg)
{
    struct reader_arg *r = arg;
    for (int i = 0; i < 5; i++) {
        char *got;
        size_t n;
        struct fetch_objinfo st;
        if (fetch_stat(b, r->key, &st) != 0 || st.size != r->len)
            continue;
        if (read_all(r->key, (uint64_t)i * 1000, 0, 8192, &got, &n) == (ssize_t)(r->len - (size_t)i * 1000) &&
            memcmp(got, r->data + i * 1000, n) == 0)
            r->ok++;
        free(got);
    }
    return NULL;
}

START_TEST(one_backend_serves_many_threads)
{
    size_t len = 200000;
    char *data = pattern(len, 7);
    ck_assert_int_eq(put_mem(k("shared.tar"), data, len, NULL, NULL), 0);
    pthread_t t[6];
    struct reader_arg a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (struct reader_arg){ k("shared.tar"), data, len, 0 };
        a[i].key = strdup(a[i].key);
        pthread_create(&t[i], NULL, reader, &a[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].ok, 5);
        free((void *)a[i].key);
    }
    free(data);
}
END_TEST

START_TEST(virtual_hosted_addressing_works)
{
    /* curl resolves *.localhost to loopback itself; RGW's dns name is localhost */
    char endpoint[200], err[512];
    snprintf(endpoint, sizeof endpoint, "http://localhost:%s", getenv("RGW_PORT"));
    struct fetch_config c = fast_config();
    c.s3_endpoint = endpoint;
    c.virtual_hosted = true;
    fetch_backend *v;
    ck_assert_msg(fetch_open(source, &c, &v, err, sizeof err) == 0, "%s", err);
    struct fetch_objinfo st;
    ck_assert_int_eq(put_mem(k("vhost x.tar"), "vhost", 5, NULL, NULL), 0);
    ck_assert_int_eq(fetch_stat(v, k("vhost x.tar"), &st), 0);
    ck_assert_uint_eq(st.size, 5);
    fetch_close(v);
}
END_TEST

int main(void)
{
    bucket = getenv("TARNFS_S3_BUCKET");
    if (!bucket || !getenv("AWS_ENDPOINT_URL")) {
        fprintf(stderr, "test_s3: source the env file of tests/s3/rgw-start.sh first\n");
        return 2;
    }
    snprintf(source, sizeof source, "s3://%s", bucket);
    snprintf(run_id, sizeof run_id, "%ld-%d", (long)time(NULL), (int)getpid());
    Suite *s = suite_create("fetch-s3 (Ceph RGW)");
    TCase *tc = tcase_create("s3");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_wrong_secret_is_eacces_with_a_clear_message);
    tcase_add_test(tc, an_unknown_access_key_is_eacces);
    tcase_add_test(tc, a_missing_bucket_is_enoent);
    tcase_add_test(tc, credentials_come_from_an_aws_profile);
    tcase_add_test(tc, put_stat_get_and_range_get);
    tcase_add_test(tc, keys_with_spaces_plus_equals_parens_and_utf8_work);
    tcase_add_test(tc, listing_pages_through_continuation_tokens);
    tcase_add_test(tc, replies_with_a_body_wait_for_no_delayed_ack);
    tcase_add_test(tc, a_prefix_source_sees_relative_keys);
    tcase_add_test(tc, multipart_put_reads_back_equal);
    tcase_add_test(tc, a_pushed_upload_in_odd_pieces_is_stored_whole_with_its_sha256);
    tcase_add_test(tc, an_aborted_upload_leaves_no_object_and_no_parts);
    tcase_add_test(tc, a_large_part_size_starts_with_an_8_mib_part);
    tcase_add_test(tc, a_size_hint_makes_the_last_parts_small);
    tcase_add_test(tc, if_match_conflicts_are_ecanceled);
    tcase_add_test(tc, delete_then_enoent);
    tcase_add_test(tc, an_injected_500_is_retried);
    tcase_add_test(tc, a_reset_mid_body_resumes_with_a_range);
    tcase_add_test(tc, a_truncated_body_is_retried_never_taken_as_complete);
    tcase_add_test(tc, an_object_replaced_during_a_resumed_read_is_eio_not_a_mix);
    tcase_add_test(tc, persistent_faults_end_in_eio);
    tcase_add_test(tc, a_reset_during_a_part_upload_is_retried);
    tcase_add_test(tc, a_failed_multipart_upload_leaves_nothing_behind);
    tcase_add_test(tc, one_backend_serves_many_threads);
    tcase_add_test(tc, virtual_hosted_addressing_works);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
