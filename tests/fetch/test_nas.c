/* test_nas.c: Check tests of fetch_open's source dispatch, the NAS backend
 * (list, stat, ranged read, atomic conditional put, delete) and the fault hook. */
#include "fetch/fetch.h"
#include "util/hex.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void write_file(const char *rel, const char *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_nas.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    fetch_fault_set_spec("");
    fetch_set_fault(NULL, NULL);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    fetch_fault_set_spec("");
    fetch_set_fault(NULL, NULL);
}

static fetch_backend *open_nas(void)
{
    fetch_backend *b;
    char err[256];
    ck_assert_int_eq(fetch_open(tmpdir, NULL, &b, err, sizeof err), 0);
    return b;
}

struct listing {
    char keys[64][1024];
    bool prefix[64];
    int n;
};

static int collect_cb(void *arg, const struct fetch_objinfo *oi)
{
    struct listing *l = arg;
    ck_assert_int_lt(l->n, 64);
    snprintf(l->keys[l->n], sizeof l->keys[0], "%s", oi->key);
    l->prefix[l->n++] = oi->is_prefix;
    return 0;
}

static void list_into(fetch_backend *b, const char *prefix, const char *delim, struct listing *l)
{
    memset(l, 0, sizeof *l);
    ck_assert_int_eq(fetch_list(b, prefix, delim, collect_cb, l), 0);
}

/* Read a whole stream into a malloc'd buffer; returns length or -errno. */
static ssize_t slurp(fetch_stream *s, char **out)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = fetch_read(s, buf + len, cap - len);
        if (n < 0) {
            free(buf);
            return n;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out = buf;
    return (ssize_t)len;
}

static ssize_t read_object(fetch_backend *b, const char *key, uint64_t off, uint64_t len, char **out)
{
    fetch_stream *s;
    int rc = fetch_get(b, key, off, len, &s);
    if (rc)
        return -rc;
    ssize_t n = slurp(s, out);
    fetch_stream_close(s);
    return n;
}

struct mem_source {
    const char *data;
    size_t len, pos, chunk;
    int fail_after;     /* fail with EIO once pos >= fail_after (if > 0) */
};

static ssize_t mem_pull(void *arg, void *buf, size_t cap)
{
    struct mem_source *m = arg;
    if (m->fail_after > 0 && m->pos >= (size_t)m->fail_after)
        return -EIO;
    size_t n = m->len - m->pos;
    if (n > cap)
        n = cap;
    if (m->chunk && n > m->chunk)
        n = m->chunk;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static int put_string(fetch_backend *b, const char *key, const char *data,
                      const struct fetch_put_opts *o, struct fetch_objinfo *oi)
{
    struct mem_source m = { .data = data, .len = strlen(data) };
    return fetch_put(b, key, mem_pull, &m, o, oi);
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, ".tarnfs-tmp", 11) == 0)
            n++;
    closedir(d);
    return n;
}

START_TEST(source_strings_pick_the_backend_or_explain)
{
    fetch_backend *b;
    char err[256];
    ck_assert_int_eq(fetch_open("relative/dir", NULL, &b, err, sizeof err), EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "relative/dir"));
    ck_assert_int_eq(fetch_open("/nonexistent/tarnfs/dir", NULL, &b, err, sizeof err), ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tarnfs/dir"));
    write_file("plain", "x", 1);
    char file[300];
    snprintf(file, sizeof file, "%s/plain", tmpdir);
    ck_assert_int_eq(fetch_open(file, NULL, &b, err, sizeof err), ENOTDIR);
    b = open_nas();
    ck_assert_str_eq(b->m->name, "nas");
    fetch_close(b);
}
END_TEST

START_TEST(list_is_sorted_and_hides_temp_and_dot_files)
{
    write_file("b.tar", "b", 1);
    write_file("a.tar.gz", "aa", 2);
    write_file("c.tar.zst", "ccc", 3);
    write_file(".tarnfs-tmp.x.tar.123", "t", 1);
    write_file(".hidden", "h", 1);
    write_file("2024/run1.tar", "r1", 2);
    write_file("2024/sub/run2.tgz", "r2", 2);
    fetch_backend *b = open_nas();
    struct listing l;

    list_into(b, "", "/", &l);
    ck_assert_int_eq(l.n, 4);
    ck_assert_str_eq(l.keys[0], "2024/");
    ck_assert(l.prefix[0]);
    ck_assert_str_eq(l.keys[1], "a.tar.gz");
    ck_assert_str_eq(l.keys[2], "b.tar");
    ck_assert_str_eq(l.keys[3], "c.tar.zst");
    ck_assert(!l.prefix[3]);

    list_into(b, "", NULL, &l);   /* no delimiter: the whole tree */
    ck_assert_int_eq(l.n, 5);
    ck_assert_str_eq(l.keys[0], "2024/run1.tar");
    ck_assert_str_eq(l.keys[1], "2024/sub/run2.tgz");

    list_into(b, "2024/", "/", &l);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.keys[0], "2024/run1.tar");
    ck_assert_str_eq(l.keys[1], "2024/sub/");
    ck_assert(l.prefix[1]);

    list_into(b, "b", "/", &l);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.keys[0], "b.tar");

    list_into(b, "no/such/dir/", "/", &l);
    ck_assert_int_eq(l.n, 0);
    list_into(b, "../", "/", &l);
    ck_assert_int_eq(l.n, 0);
    fetch_close(b);
}
END_TEST

static int stop_after_two(void *arg, const struct fetch_objinfo *oi)
{
    int *n = arg;
    (void)oi;
    return ++*n == 2;
}

START_TEST(list_callback_can_stop_early)
{
    write_file("a.tar", "a", 1);
    write_file("b.tar", "b", 1);
    write_file("c.tar", "c", 1);
    fetch_backend *b = open_nas();
    int n = 0;
    ck_assert_int_eq(fetch_list(b, "", "/", stop_after_two, &n), 0);
    ck_assert_int_eq(n, 2);
    fetch_close(b);
}
END_TEST

START_TEST(stat_reports_size_mtime_version_and_refuses_escapes)
{
    write_file("run.tar", "hello", 5);
    write_file("dir/x.tar", "x", 1);
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi;
    struct stat st;
    char path[300], expect[128];

    ck_assert_int_eq(fetch_stat(b, "run.tar", &oi), 0);
    snprintf(path, sizeof path, "%s/run.tar", tmpdir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(oi.size, 5);
    ck_assert_int_eq(oi.mtime.tv_sec, st.st_mtim.tv_sec);
    ck_assert_int_eq(oi.mtime.tv_nsec, st.st_mtim.tv_nsec);
    snprintf(expect, sizeof expect, "%lld:5:%llu",
             (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
    ck_assert_str_eq(oi.version, expect);
    ck_assert_str_eq(oi.sha256, "");

    ck_assert_int_eq(fetch_stat(b, "missing.tar", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "dir", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "dir/../run.tar", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "/etc/passwd", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "run.tar/x", &oi), ENOENT);
    fetch_close(b);
}
END_TEST

/* Issue 12 finding 15: symlinks that leave the NAS directory are never
 * followed (listing, stat, read, put, delete); one that stays inside works. */
START_TEST(symlinks_out_of_the_nas_directory_are_refused)
{
    char out[300], cmd[4096];
    snprintf(out, sizeof out, "%s-outside", tmpdir);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s/d' && printf SECRET > '%s/secret.tar' && "
             "printf X > '%s/d/x.tar' && printf real > '%s/real.tar' && "
             "ln -s real.tar '%s/alias.tar' && ln -s '%s/secret.tar' '%s/evil.tar' && "
             "ln -s '../%s/secret.tar' '%s/rel.tar' && ln -s '%s/d' '%s/dirlink'",
             out, out, out, out, tmpdir, tmpdir, out, tmpdir,
             strrchr(out, '/') + 1, tmpdir, out, tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    fetch_backend *b = open_nas();
    struct listing l;
    list_into(b, "", NULL, &l);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.keys[0], "alias.tar");
    ck_assert_str_eq(l.keys[1], "real.tar");
    list_into(b, "", "/", &l);
    ck_assert_int_eq(l.n, 2);
    struct fetch_objinfo oi;
    ck_assert_int_eq(fetch_stat(b, "alias.tar", &oi), 0);
    ck_assert_int_eq(fetch_stat(b, "evil.tar", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "rel.tar", &oi), ENOENT);
    ck_assert_int_eq(fetch_stat(b, "dirlink/x.tar", &oi), ENOENT);
    char *got = NULL;
    ck_assert_int_eq(read_object(b, "alias.tar", 0, 0, &got), 4);
    free(got);
    got = NULL;
    ck_assert_int_lt(read_object(b, "evil.tar", 0, 0, &got), 0);
    free(got);
    ck_assert_int_ne(put_string(b, "dirlink/new.tar", "body", NULL, NULL), 0);
    ck_assert_int_ne(put_string(b, "dirlink/sub/new.tar", "body", NULL, NULL), 0);
    ck_assert_int_eq(fetch_delete(b, "dirlink/x.tar"), ENOENT);
    fetch_close(b);
    snprintf(cmd, sizeof cmd, "test -f '%s/d/x.tar' && test ! -e '%s/d/new.tar' && "
             "test ! -e '%s/d/sub' && test -z \"$(ls -A '%s/d' | grep -v '^x.tar$')\" "
             "&& rm -rf '%s'", out, out, out, out, out);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(ranged_read_returns_exactly_the_range)
{
    char data[10000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + 3);
    write_file("r.tar", data, sizeof data);
    fetch_backend *b = open_nas();
    char *got;

    ck_assert_int_eq(read_object(b, "r.tar", 0, 0, &got), (ssize_t)sizeof data);
    ck_assert_mem_eq(got, data, sizeof data);
    free(got);
    ck_assert_int_eq(read_object(b, "r.tar", 1234, 4000, &got), 4000);
    ck_assert_mem_eq(got, data + 1234, 4000);
    free(got);
    ck_assert_int_eq(read_object(b, "r.tar", 9000, 5000, &got), 1000);   /* clipped at end */
    ck_assert_mem_eq(got, data + 9000, 1000);
    free(got);
    ck_assert_int_eq(read_object(b, "r.tar", 10000, 0, &got), 0);
    free(got);
    ck_assert_int_eq(read_object(b, "r.tar", 10001, 0, &got), -EINVAL);
    ck_assert_int_eq(read_object(b, "nope.tar", 0, 0, &got), -ENOENT);
    fetch_close(b);
}
END_TEST

START_TEST(a_file_that_shrinks_while_read_is_an_error_not_an_end)
{
    char data[8192];
    memset(data, 'z', sizeof data);
    write_file("s.tar", data, sizeof data);
    fetch_backend *b = open_nas();
    fetch_stream *s;
    char buf[1000];
    ck_assert_int_eq(fetch_get(b, "s.tar", 0, 0, &s), 0);
    ck_assert_int_eq(fetch_read(s, buf, sizeof buf), 1000);
    char path[300];
    snprintf(path, sizeof path, "%s/s.tar", tmpdir);
    ck_assert_int_eq(truncate(path, 2000), 0);
    ck_assert_int_eq(fetch_read(s, buf, sizeof buf), 1000);
    ck_assert_int_eq(fetch_read(s, buf, sizeof buf), -EIO);
    fetch_stream_close(s);
    fetch_close(b);
}
END_TEST

START_TEST(put_stores_body_and_checksum_sidecar)
{
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi, st;
    const char *body = "tarball bytes";
    unsigned char d[32];
    char hex[65];
    SHA256((const unsigned char *)body, strlen(body), d);
    hex_encode(d, sizeof d, hex);

    ck_assert_int_eq(put_string(b, "new/deep/run.tar", body, NULL, &oi), 0);
    ck_assert_str_eq(oi.sha256, hex);
    ck_assert_uint_eq(oi.size, strlen(body));
    ck_assert_int_eq(fetch_stat(b, "new/deep/run.tar", &st), 0);
    ck_assert_str_eq(st.version, oi.version);
    ck_assert_str_eq(st.sha256, hex);
    char *got;
    ck_assert_int_eq(read_object(b, "new/deep/run.tar", 0, 0, &got), (ssize_t)strlen(body));
    ck_assert_mem_eq(got, body, strlen(body));
    free(got);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "cd '%s/new/deep' && sha256sum -c --status run.tar.sha256", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/new/deep", tmpdir);
    ck_assert_int_eq(count_temp_files(dir), 0);

    struct fetch_put_opts o = { .sha256_hex = hex };
    ck_assert_int_eq(put_string(b, "checked.tar", body, &o, NULL), 0);
    ck_assert_int_eq(put_string(b, "bad/../x.tar", body, NULL, NULL), EINVAL);
    fetch_close(b);
}
END_TEST

START_TEST(put_with_wrong_expected_checksum_stores_nothing)
{
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi;
    struct fetch_put_opts o = { .sha256_hex =
        "0000000000000000000000000000000000000000000000000000000000000000" };
    ck_assert_int_eq(put_string(b, "run.tar", "body", &o, NULL), EIO);
    ck_assert_int_eq(fetch_stat(b, "run.tar", &oi), ENOENT);
    ck_assert_int_eq(count_temp_files(tmpdir), 0);
    fetch_close(b);
}
END_TEST

START_TEST(if_none_match_only_creates)
{
    fetch_backend *b = open_nas();
    struct fetch_put_opts o = { .if_none_match = true };
    char *got;
    ck_assert_int_eq(put_string(b, "run.tar", "first", &o, NULL), 0);
    ck_assert_int_eq(put_string(b, "run.tar", "second", &o, NULL), ECANCELED);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 5);
    ck_assert_mem_eq(got, "first", 5);
    free(got);
    ck_assert_int_eq(count_temp_files(tmpdir), 0);
    fetch_close(b);
}
END_TEST

START_TEST(if_match_replaces_only_the_version_it_names)
{
    fetch_backend *b = open_nas();
    struct fetch_objinfo v1, v2;
    char *got;
    ck_assert_int_eq(put_string(b, "run.tar", "one", NULL, &v1), 0);
    struct fetch_put_opts o = { .if_match = v1.version };
    ck_assert_int_eq(put_string(b, "run.tar", "two!", &o, &v2), 0);
    ck_assert_str_ne(v1.version, v2.version);
    /* v1 is stale now: a writer still holding it must not overwrite */
    ck_assert_int_eq(put_string(b, "run.tar", "three", &o, NULL), ECANCELED);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 4);
    ck_assert_mem_eq(got, "two!", 4);
    free(got);
    struct fetch_put_opts missing = { .if_match = v2.version };
    ck_assert_int_eq(put_string(b, "absent.tar", "x", &missing, NULL), ECANCELED);
    fetch_close(b);
}
END_TEST

START_TEST(a_failing_source_leaves_the_old_object_and_no_temp_file)
{
    fetch_backend *b = open_nas();
    char *got;
    ck_assert_int_eq(put_string(b, "run.tar", "old", NULL, NULL), 0);
    static char big[3 << 20];
    memset(big, 'n', sizeof big);
    struct mem_source m = { .data = big, .len = sizeof big, .chunk = 65536, .fail_after = 2 << 20 };
    ck_assert_int_eq(fetch_put(b, "run.tar", mem_pull, &m, NULL, NULL), EIO);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 3);
    ck_assert_mem_eq(got, "old", 3);
    free(got);
    ck_assert_int_eq(count_temp_files(tmpdir), 0);
    fetch_close(b);
}
END_TEST

START_TEST(a_pushed_upload_is_invisible_until_commit_and_an_abort_leaves_nothing)
{
    fetch_backend *b = open_nas();
    char *got;
    struct fetch_objinfo oi;
    ck_assert_int_eq(put_string(b, "run.tar", "old", NULL, NULL), 0);
    fetch_upload *u;
    ck_assert_int_eq(fetch_upload_begin(b, "run.tar", NULL, &u), 0);
    ck_assert_int_eq(fetch_upload_write(u, "new ", 4), 0);
    ck_assert_int_eq(fetch_upload_write(u, "body", 4), 0);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 3);    /* still the old one */
    free(got);
    ck_assert_int_eq(count_temp_files(tmpdir), 1);
    ck_assert_int_eq(fetch_upload_commit(u, &oi), 0);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 8);
    ck_assert_mem_eq(got, "new body", 8);
    free(got);
    /* sha256("new body") */
    ck_assert_str_eq(oi.sha256, "ae907ab9a383483e5c37beee966723544b9e6f12148a7dcd56ceea7ad44c5a7b");
    ck_assert_int_eq(count_temp_files(tmpdir), 0);
    ck_assert_int_eq(fetch_upload_begin(b, "run.tar", NULL, &u), 0);
    ck_assert_int_eq(fetch_upload_write(u, "dropped", 7), 0);
    fetch_upload_abort(u);
    ck_assert_int_eq(read_object(b, "run.tar", 0, 0, &got), 8);
    ck_assert_mem_eq(got, "new body", 8);
    free(got);
    ck_assert_int_eq(count_temp_files(tmpdir), 0);
    fetch_close(b);
}
END_TEST

START_TEST(sweep_removes_only_temp_files_of_dead_writers_of_this_host)
{
    char host[256], host40[48], name[512];
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    snprintf(host40, sizeof host40, "%.40s", host);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    ck_assert_int_gt(dead, 0);
    waitpid(dead, NULL, 0);
    snprintf(name, sizeof name, "2024/.tarnfs-tmp.run.tar.1a.%ld@%s", (long)dead, host40);
    write_file(name, "x", 1);
    snprintf(name, sizeof name, "2024/.tarnfs-tmp.run.tar.2b.%ld@%s", (long)getpid(), host40);
    write_file(name, "x", 1);
    snprintf(name, sizeof name, "2024/.tarnfs-tmp.run.tar.3c.%ld@not-%s", (long)dead, host40);
    write_file(name, "x", 1);
    write_file("2024/.tarnfs-tmp.run.tar.4d", "x", 1);     /* no owner */
    fetch_backend *b = open_nas();
    unsigned removed = 9;
    ck_assert_int_eq(fetch_sweep_temps(b, "2024/run.tar", &removed), 0);
    ck_assert_uint_eq(removed, 1);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/2024", tmpdir);
    ck_assert_int_eq(count_temp_files(dir), 3);
    ck_assert_int_eq(fetch_sweep_temps(b, "no/such/dir/run.tar", &removed), 0);
    ck_assert_uint_eq(removed, 0);
    ck_assert_int_eq(fetch_sweep_temps(b, "../escape.tar", &removed), EINVAL);
    fetch_close(b);
}
END_TEST

struct race {
    fetch_backend *b;
    int stop;
    int bad_reads, good_reads;
};

static char body_a[1 << 20], body_b[2 << 20];

static void *reader(void *arg)
{
    struct race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        char *got;
        ssize_t n = read_object(r->b, "hot.tar", 0, 0, &got);
        if (n < 0)
            continue;
        bool ok = (n == sizeof body_a && !memcmp(got, body_a, sizeof body_a)) ||
                  (n == sizeof body_b && !memcmp(got, body_b, sizeof body_b));
        if (ok)
            r->good_reads++;
        else
            r->bad_reads++;
        free(got);
    }
    return NULL;
}

START_TEST(readers_see_the_old_or_the_new_object_never_a_mix)
{
    memset(body_a, 'a', sizeof body_a);
    memset(body_b, 'b', sizeof body_b);
    struct race r = { .b = open_nas() };
    struct mem_source m = { .data = body_a, .len = sizeof body_a };
    ck_assert_int_eq(fetch_put(r.b, "hot.tar", mem_pull, &m, NULL, NULL), 0);
    pthread_t t;
    pthread_create(&t, NULL, reader, &r);
    for (int i = 0; i < 20; i++) {
        struct mem_source s = { .data = i % 2 ? body_a : body_b,
                                .len = i % 2 ? sizeof body_a : sizeof body_b, .chunk = 100000 };
        ck_assert_int_eq(fetch_put(r.b, "hot.tar", mem_pull, &s, NULL, NULL), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.bad_reads, 0);
    ck_assert_int_gt(r.good_reads, 0);
    fetch_close(r.b);
}
END_TEST

struct creator {
    fetch_backend *b;
    const char *body;
    int rc;
};

static void *create_once(void *arg)
{
    struct creator *c = arg;
    struct fetch_put_opts o = { .if_none_match = true };
    c->rc = put_string(c->b, "once.tar", c->body, &o, NULL);
    return NULL;
}

START_TEST(concurrent_creators_exactly_one_wins)
{
    fetch_backend *b = open_nas();
    for (int round = 0; round < 20; round++) {
        struct creator c[4];
        pthread_t t[4];
        const char *bodies[4] = { "w0", "w1", "w2", "w3" };
        for (int i = 0; i < 4; i++) {
            c[i] = (struct creator){ .b = b, .body = bodies[i] };
            pthread_create(&t[i], NULL, create_once, &c[i]);
        }
        int won = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            if (c[i].rc == 0)
                won++;
            else
                ck_assert_int_eq(c[i].rc, ECANCELED);
        }
        ck_assert_int_eq(won, 1);
        ck_assert_int_eq(fetch_delete(b, "once.tar"), 0);
    }
    fetch_close(b);
}
END_TEST

START_TEST(delete_removes_object_and_sidecar)
{
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi;
    char path[300];
    ck_assert_int_eq(put_string(b, "d/run.tar", "x", NULL, NULL), 0);
    ck_assert_int_eq(fetch_delete(b, "d/run.tar"), 0);
    ck_assert_int_eq(fetch_stat(b, "d/run.tar", &oi), ENOENT);
    snprintf(path, sizeof path, "%s/d/run.tar.sha256", tmpdir);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(fetch_delete(b, "d/run.tar"), ENOENT);
    ck_assert_int_eq(fetch_delete(b, "d"), ENOENT);
    fetch_close(b);
}
END_TEST

struct hook_state {
    const char *fail_op;
    int calls;
};

static int failing_hook(void *arg, const char *op, const char *key)
{
    struct hook_state *h = arg;
    (void)key;
    h->calls++;
    return strcmp(op, h->fail_op) == 0 ? ENOSPC : 0;
}

START_TEST(fault_hook_fails_the_chosen_operation)
{
    write_file("run.tar", "abc", 3);
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi;
    struct listing l;
    struct hook_state h = { .fail_op = "stat" };
    fetch_set_fault(failing_hook, &h);
    ck_assert_int_eq(fetch_stat(b, "run.tar", &oi), ENOSPC);
    list_into(b, "", "/", &l);
    ck_assert_int_eq(l.n, 1);
    h.fail_op = "put";
    ck_assert_int_eq(put_string(b, "x.tar", "x", NULL, NULL), ENOSPC);
    ck_assert_int_eq(fetch_stat(b, "x.tar", &oi), ENOENT);
    h.fail_op = "del";
    ck_assert_int_eq(fetch_delete(b, "run.tar"), ENOSPC);
    h.fail_op = "open";
    fetch_stream *s;
    ck_assert_int_eq(fetch_get(b, "run.tar", 0, 0, &s), ENOSPC);
    h.fail_op = "list";
    ck_assert_int_eq(fetch_list(b, "", "/", collect_cb, &l), ENOSPC);
    ck_assert_int_ge(h.calls, 6);
    fetch_set_fault(NULL, NULL);
    ck_assert_int_eq(fetch_stat(b, "run.tar", &oi), 0);
    fetch_close(b);
}
END_TEST

START_TEST(fault_spec_counts_and_filters_by_key)
{
    write_file("a.tar", "aaaa", 4);
    write_file("b.tar", "bbbb", 4);
    fetch_backend *b = open_nas();
    struct fetch_objinfo oi;
    char *got;

    ck_assert_int_eq(fetch_fault_set_spec("read:5:1"), 0);
    ck_assert_int_eq(read_object(b, "a.tar", 0, 0, &got), -EIO);
    ck_assert_int_eq(read_object(b, "a.tar", 0, 0, &got), 4);    /* count used up */
    free(got);

    ck_assert_int_eq(fetch_fault_set_spec("stat:13::b.tar"), 0); /* every time, b only */
    ck_assert_int_eq(fetch_stat(b, "a.tar", &oi), 0);
    ck_assert_int_eq(fetch_stat(b, "b.tar", &oi), EACCES);
    ck_assert_int_eq(fetch_stat(b, "b.tar", &oi), EACCES);

    ck_assert_int_eq(fetch_fault_check("reset", "k"), 0);
    ck_assert_int_eq(fetch_fault_set_spec("reset:2,truncate"), 0);
    ck_assert_int_eq(fetch_fault_check("reset", "k"), 1);
    ck_assert_int_eq(fetch_fault_check("reset", "k"), 1);
    ck_assert_int_eq(fetch_fault_check("reset", "k"), 0);
    ck_assert_int_eq(fetch_fault_check("truncate", "k"), 1);

    ck_assert_int_eq(fetch_fault_set_spec("bogus"), EINVAL);
    ck_assert_int_eq(fetch_fault_set_spec("read:x"), EINVAL);
    ck_assert_int_eq(fetch_stat(b, "b.tar", &oi), 0);            /* bad spec: no rules */

    setenv("TARNFS_FAULT", "open:28:1", 1);
    ck_assert_int_eq(fetch_fault_set_spec(NULL), 0);
    ck_assert_int_eq(read_object(b, "a.tar", 0, 0, &got), -ENOSPC);
    unsetenv("TARNFS_FAULT");
    fetch_close(b);
}
END_TEST

static Suite *nas_suite(void)
{
    Suite *s = suite_create("fetch-nas");
    TCase *tc = tcase_create("nas");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, source_strings_pick_the_backend_or_explain);
    tcase_add_test(tc, list_is_sorted_and_hides_temp_and_dot_files);
    tcase_add_test(tc, list_callback_can_stop_early);
    tcase_add_test(tc, stat_reports_size_mtime_version_and_refuses_escapes);
    tcase_add_test(tc, symlinks_out_of_the_nas_directory_are_refused);
    tcase_add_test(tc, ranged_read_returns_exactly_the_range);
    tcase_add_test(tc, a_file_that_shrinks_while_read_is_an_error_not_an_end);
    tcase_add_test(tc, put_stores_body_and_checksum_sidecar);
    tcase_add_test(tc, put_with_wrong_expected_checksum_stores_nothing);
    tcase_add_test(tc, if_none_match_only_creates);
    tcase_add_test(tc, if_match_replaces_only_the_version_it_names);
    tcase_add_test(tc, a_failing_source_leaves_the_old_object_and_no_temp_file);
    tcase_add_test(tc, a_pushed_upload_is_invisible_until_commit_and_an_abort_leaves_nothing);
    tcase_add_test(tc, sweep_removes_only_temp_files_of_dead_writers_of_this_host);
    tcase_add_test(tc, readers_see_the_old_or_the_new_object_never_a_mix);
    tcase_add_test(tc, concurrent_creators_exactly_one_wins);
    tcase_add_test(tc, delete_removes_object_and_sidecar);
    tcase_add_test(tc, fault_hook_fails_the_chosen_operation);
    tcase_add_test(tc, fault_spec_counts_and_filters_by_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nas_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
