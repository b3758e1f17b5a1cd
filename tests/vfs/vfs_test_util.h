/* vfs_test_util.h: helpers shared by the vfs Check tests: scratch
 * directories, run trees tarred with GNU tar, ingest into a cache, and
 * small wrappers that walk the namespace by path. */
#ifndef TARNFS_VFS_TEST_UTIL_H
#define TARNFS_VFS_TEST_UTIL_H

#include "vfs/vfs.h"
#include "kvstore/kvfs.h"

#include <check.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[256];          /* per test: /tmp/test_vfs.XXXXXX */

static inline void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static inline void scratch_setup(void)
{
    snprintf(scratch, sizeof scratch, "/tmp/test_vfs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
    sh("mkdir -p %s/src %s/nas %s/cache", scratch, scratch, scratch);
}

static inline void scratch_teardown(void)
{
    sh("rm -rf '%s'", scratch);
}

/* Deterministic content for file rel of run name, len bytes. */
static inline void fill_content(const char *run, const char *rel, unsigned char *buf,
                         size_t len)
{
    unsigned long long x = 1469598103934665603ULL;
    for (const char *p = run; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ULL;
    for (const char *p = rel; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

#define DEEP_FILE "Data/Intensities/BaseCalls/L001/C1.1/s_1_1101.bcl"
#define DEEP_SIZE (300 * 1024 + 17)

/* Write a small run folder called base (last component of run) under
 * scratch/src/<tag>/ and tar it with GNU tar as nas/<run><suffix>. */
static inline void make_run_tarball(const char *run, const char *suffix,
                             const char *tag)
{
    const char *base = strrchr(run, '/') ? strrchr(run, '/') + 1 : run;
    char root[1024];
    snprintf(root, sizeof root, "%s/src/%s/%s", scratch, tag, base);
    sh("rm -rf '%s' && mkdir -p '%s/Data/Intensities/BaseCalls/L001/C1.1' "
       "'%s/empty' '%s/InterOp'", root, root, root, root);
    char path[1200];
    snprintf(path, sizeof path, "%s/RunInfo.xml", root);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "<RunInfo run=\"%s\" tag=\"%s\"/>\n", run, tag);
    fclose(f);
    unsigned char *buf = malloc(DEEP_SIZE);
    fill_content(run, DEEP_FILE, buf, DEEP_SIZE);
    snprintf(path, sizeof path, "%s/%s", root, DEEP_FILE);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, DEEP_SIZE, f), DEEP_SIZE);
    fclose(f);
    free(buf);
    sh("ln -s RunInfo.xml '%s/link'", root);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/nas/%s", scratch, run);
    *strrchr(dir, '/') = '\0';
    const char *z = strstr(suffix, "gz") ? "z" : "";
    sh("mkdir -p '%s' && tar -C '%s/src/%s' -c%sf '%s/nas/%s%s.tmp' '%s' && "
       "mv '%s/nas/%s%s.tmp' '%s/nas/%s%s'", dir, scratch, tag, z, scratch,
       run, suffix, base, scratch, run, suffix, scratch, run, suffix);
}

static inline ssize_t fd_read(void *arg, void *buf, size_t cap)
{
    ssize_t n = read(*(int *)arg, buf, cap);
    return n < 0 ? -errno : n;
}

/* Ingest nas/<run>.tar into scratch/cache as run. */
static inline void ingest_run(const char *run)
{
    kv_cache *c;
    char path[1024];
    snprintf(path, sizeof path, "%s/cache", scratch);
    ck_assert_int_eq(kv_cache_open(path, true, &c), 0);
    snprintf(path, sizeof path, "%s/nas/%s.tar", scratch, run);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct kv_ingest_result res;
    int err = kv_ingest(c, run, fd_read, &fd, "test-version", &res);
    ck_assert_msg(err == 0, "ingest %s: %s: %s", run, strerror(err),
                  res.error);
    close(fd);
    kv_cache_close(c);
}

/* Resolve a '/'-separated path from the root; returns the errno. */
static inline int walk(vfs *v, const char *path, struct vfs_id *out,
                struct vfs_attr *a)
{
    struct vfs_id cur;
    vfs_root(v, &cur);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        struct vfs_id next;
        int err = vfs_lookup(v, &cur, c, &next, a);
        if (err)
            return err;
        cur = next;
    }
    *out = cur;
    if (a && !path[strspn(path, "/")])
        return vfs_getattr(v, out, a);
    return 0;
}

/* Read a whole file through the vfs into a malloc'd buffer. */
static inline unsigned char *read_all(vfs *v, const struct vfs_id *id, size_t *len)
{
    struct vfs_attr a;
    ck_assert_int_eq(vfs_getattr(v, id, &a), 0);
    unsigned char *buf = malloc(a.size + 1);
    size_t off = 0;
    for (;;) {
        size_t got = 0;
        bool eof = false;
        ck_assert_int_eq(vfs_read(v, id, off, buf + off, a.size + 1 - off,
                                  &got, &eof), 0);
        off += got;
        if (eof || got == 0)
            break;
    }
    *len = off;
    return buf;
}

/* Check the deep file of run (reached by path) has the expected bytes. */
static inline void assert_deep_file(vfs *v, const char *path, const char *run)
{
    struct vfs_id id;
    char full[1024];
    snprintf(full, sizeof full, "%s/" DEEP_FILE, path);
    int err = walk(v, full, &id, NULL);
    ck_assert_msg(err == 0, "walk %s: %s", full, strerror(err));
    size_t len;
    unsigned char *got = read_all(v, &id, &len);
    unsigned char *want = malloc(DEEP_SIZE);
    fill_content(run, DEEP_FILE, want, DEEP_SIZE);
    ck_assert_uint_eq(len, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    free(want);
}

/* Names listed in a directory (all pages), joined with ',' in the order
 * given, with a 'd' suffix for directories when the attrs say so. */
struct names_acc {
    char buf[1 << 16];
    size_t n;
    int stop_after;                 /* 0: never stop */
    uint64_t last_cookie;
    bool with_attrs;
};

static inline int names_cb(void *arg, const struct vfs_dirent *de)
{
    struct names_acc *acc = arg;
    if (acc->stop_after && acc->n == (size_t)acc->stop_after)
        return 1;
    size_t used = strlen(acc->buf);
    snprintf(acc->buf + used, sizeof acc->buf - used, "%s%s%s",
             used ? "," : "", de->name,
             acc->with_attrs && de->a && de->a->type == VFS_DIR ? "/" : "");
    acc->n++;
    acc->last_cookie = de->cookie;
    return 0;
}

static inline int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort a comma list in place (for order-independent comparisons). */
static inline void sort_list(char *list)
{
    char *items[4096];
    size_t n = 0;
    char copy[1 << 16];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *c = strtok_r(copy, ",", &save); c && n < 4096;
         c = strtok_r(NULL, ",", &save))
        items[n++] = c;
    qsort(items, n, sizeof *items, cmp_cstr);
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(list, i ? "," : "");
        strcat(list, items[i]);
    }
}

static inline void list_sorted(vfs *v, const char *path, char *out, size_t cap)
{
    struct vfs_id id;
    ck_assert_int_eq(walk(v, path, &id, NULL), 0);
    struct names_acc *acc = calloc(1, sizeof *acc);
    acc->with_attrs = true;
    uint64_t verf;
    ck_assert_int_eq(vfs_readdir(v, &id, 0, true, &verf, names_cb, acc), 0);
    sort_list(acc->buf);
    size_t len = strlen(acc->buf);
    ck_assert_uint_lt(len, cap);
    memcpy(out, acc->buf, len + 1);
    free(acc);
}

#endif
