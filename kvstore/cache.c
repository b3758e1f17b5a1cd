/* cache.c: the cache directory and the life of runs in it (stage, publish, open, evict). */
#include "kvstore/kv_internal.h"
#include "util/crashpt.h"
#include "util/log.h"
#include "util/hex.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <malloc.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Also here: run metadata, statistics, and the lock/transaction
 * discipline every change follows (kv_wbegin/kv_wend).
 *
 * Layout:  CACHE/tarnfs-cache           marker (format version)
 *          CACHE/runs/<encoded name>/   one published run: <id>.kct, <id>.kch, info
 *          CACHE/tmp/<id>/              staging runs and evicted runs
 * Every directory under tmp/ is garbage unless some process holds an flock
 * on it (staging: exclusive; open runs: shared), so a sweep that can take
 * the exclusive lock deletes it.  That makes crash recovery a sweep, and
 * lets several processes (tarnfsd, the tarnfs tool) share one cache. */

#define MARKER_FILE  "tarnfs-cache"
#define MARKER_TEXT  "tarnfs cache 1\n"
#define INFO_FILE    "info"
/* Kyoto Cabinet tuning of a run's metadata, chosen by measurement
 * (doc/design.md (kvstore)); the page cache (pccap) is run_cache, or
 * build_cache while a run is built (staged): inode records go in at random
 * (hashed) keys, so once the tree outgrows the page cache every insert
 * reloads a leaf.  Measured on a 1,020,951-member index (475 MB TreeDB):
 * 64 MiB 77 s, 128 MiB 55 s, 256 MiB 22 s, 1 GiB 19 s.  A cap, not an
 * allocation; released when the run is published. */
#define KC_META_TUNING_CAP "#psiz=16384#pccap=%llu#bnum=131072"
#define KV_BUILD_CACHE_DEFAULT ((uint64_t)256 << 20)
#ifndef KC_DATA_TUNING
#define KC_DATA_TUNING "#bnum=524288#msiz=0"
#endif

/* ---- small helpers ---------------------------------------------------- */

static int fsync_path(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = fsync(fd) ? errno : 0;
    close(fd);
    return err;
}

/* Remove path (file or directory tree) relative to dirfd. */
static int remove_tree(int parent, const char *path)
{
    if (unlinkat(parent, path, 0) == 0)
        return 0;
    if (errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return errno;
    int fd = openat(parent, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return e;
    }
    int err = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        crash_point("tmp-delete");
        int e = remove_tree(dirfd(d), de->d_name);
        if (e && !err)
            err = e;
    }
    closedir(d);
    if (unlinkat(parent, path, AT_REMOVEDIR) && errno != ENOENT && !err)
        err = errno;
    return err;
}

/* Delete every directory under tmp/ that nobody holds a lock on. */
static void sweep_tmp(kv_cache *c)
{
    if (c->readonly)
        return;
    int tfd = openat(c->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tfd < 0)
        return;
    DIR *d = fdopendir(tfd);
    if (!d) {
        close(tfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;               /* in use by a live process */
        }
        int err = remove_tree(dirfd(d), de->d_name);
        if (err)
            log_warn("kvstore: cannot remove %s/tmp/%s: %s", c->path,
                     de->d_name, strerror(err));
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
}

static void unique_id(kv_cache *c, char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&c->lock);
    unsigned long n = ++c->stage_counter;
    pthread_mutex_unlock(&c->lock);
    snprintf(buf, cap, "%ld-%llx%09ld-%lu", (long)getpid(),
             (unsigned long long)ts.tv_sec, ts.tv_nsec, n);
}

/* Run names: 1..KV_RUNNAME_MAX bytes, '/'-separated components that are
 * neither empty nor "." nor "..". */
static int check_run_name(const char *name)
{
    if (!name)
        return EINVAL;
    size_t n = strnlen(name, KV_RUNNAME_MAX + 1);
    if (n == 0 || n > KV_RUNNAME_MAX)
        return n ? ENAMETOOLONG : EINVAL;
    const char *p = name;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.'))
            return EINVAL;
        if (len > KV_NAME_MAX)
            return ENAMETOOLONG;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

/* One directory name for a run name: '/', '%' and a leading '.' become
 * %2F, %25, %2E.  Errors: ENAMETOOLONG. */
static int encode_run_name(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; name[i]; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '/' || ch == '%' || (i == 0 && ch == '.')) {
            if (o + 3 >= cap)
                return ENAMETOOLONG;
            snprintf(out + o, 4, "%%%02X", ch);
            o += 3;
        } else {
            if (o + 1 >= cap)
                return ENAMETOOLONG;
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return o > NAME_MAX ? ENAMETOOLONG : 0;
}

static int decode_run_name(const char *enc, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; enc[i]; i++) {
        char ch = enc[i];
        if (ch == '%') {
            int hi = hex_digit(enc[i + 1]), lo = hi >= 0 ? hex_digit(enc[i + 2]) : -1;
            if (lo < 0)
                return EINVAL;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return ENAMETOOLONG;
        out[o++] = ch;
    }
    out[o] = '\0';
    return check_run_name(out);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

/* ---- cache ------------------------------------------------------------ */

/* The marker goes first: a directory with tmp/ or runs/ but no marker is
 * never one of ours, so a half-initialised cache is simply initialised
 * again, and nobody else's tmp/ is ever swept. */
static int init_cache_dir(int dfd)
{
    /* Never through a file or symlink someone planted (issue 12, 16). */
    unlinkat(dfd, MARKER_FILE ".new", 0);
    int fd = openat(dfd, MARKER_FILE ".new",
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    ssize_t w = write(fd, MARKER_TEXT, strlen(MARKER_TEXT));
    int err = (w != (ssize_t)strlen(MARKER_TEXT)) ? EIO : (fsync(fd) ? errno : 0);
    close(fd);
    if (!err && renameat(dfd, MARKER_FILE ".new", dfd, MARKER_FILE))
        err = errno;
    if (!err && mkdirat(dfd, "runs", 0755) && errno != EEXIST)
        err = errno;
    if (!err && mkdirat(dfd, "tmp", 0755) && errno != EEXIST)
        err = errno;
    if (!err && fsync(dfd))
        err = errno;
    return err;
}

static int cache_open(const char *dir, bool create, bool readonly, kv_cache **out)
{
    *out = NULL;
    if (!dir || !*dir)
        return EINVAL;
    if (create && !readonly && mkdir(dir, 0755) && errno != EEXIST)
        return errno;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno;
    int err = 0;
    struct stat st;
    if (fstatat(dfd, MARKER_FILE, &st, 0) != 0) {
        if (errno != ENOENT) {
            err = errno;
        } else if (!create || readonly) {
            err = EINVAL;
        } else {
            /* Other modules keep their own files here (handle key,
             * statistics), so any directory may become a cache, unless it
             * has a tmp/ or runs/ that is not ours. */
            struct stat sb;
            if (fstatat(dfd, "tmp", &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
                fstatat(dfd, "runs", &sb, AT_SYMLINK_NOFOLLOW) == 0)
                err = EINVAL;
            else
                err = init_cache_dir(dfd);
        }
    }
    if (!err && !readonly && mkdirat(dfd, "runs", 0755) && errno != EEXIST)
        err = errno;
    if (!err && !readonly && (mkdirat(dfd, "tmp", 0755) && errno != EEXIST))
        err = errno;
    if (err) {
        close(dfd);
        return err;
    }
    kv_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(dir))) {
        free(c);
        close(dfd);
        return ENOMEM;
    }
    c->dirfd = dfd;
    c->readonly = readonly;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->closed, NULL);
    pthread_mutex_init(&c->snap_lock, NULL);
    pthread_cond_init(&c->snap_cv, NULL);
    kv_cache_set_dir_budget(c, KV_DIR_BUDGET_DEFAULT);
    sweep_tmp(c);
    *out = c;
    return 0;
}

int kv_cache_open(const char *dir, bool create, kv_cache **out)
{
    return cache_open(dir, create, false, out);
}

int kv_cache_open_readonly(const char *dir, kv_cache **out)
{
    return cache_open(dir, false, true, out);
}

void kv_cache_set_limit(kv_cache *c, uint64_t bytes)
{
    pthread_mutex_lock(&c->lock);
    c->limit = bytes;
    pthread_mutex_unlock(&c->lock);
}

void kv_cache_close(kv_cache *c)
{
    if (!c)
        return;
    if (c->runs)
        log_warn("kvstore: cache %s closed with runs still open", c->path);
    close(c->dirfd);
    kv_dirsnap_free_all(c);
    pthread_cond_destroy(&c->snap_cv);
    pthread_mutex_destroy(&c->snap_lock);
    pthread_cond_destroy(&c->closed);
    pthread_mutex_destroy(&c->lock);
    free(c->path);
    free(c);
}

const char *kv_cache_path(const kv_cache *c)
{
    return c->path;
}

/* ---- runinfo ---------------------------------------------------------- */

/* Write the run info file at path (relative to dirfd), fsynced. */
static int write_info_file(int dirfd, const char *path, uint64_t files,
                           const struct timespec *created, const char *source)
{
    /* A fresh file, never a planted symlink's target (issue 12, 16). */
    unlinkat(dirfd, path, 0);
    int fd = openat(dirfd, path,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    char src[128];
    snprintf(src, sizeof src, "%s", source ? source : "");
    for (char *p = src; *p; p++)
        if (*p == '\n')
            *p = ' ';
    char buf[256];
    int n = snprintf(buf, sizeof buf, "files %" PRIu64 "\ncreated %lld %ld\nsource %s\n",
                     files, (long long)created->tv_sec, created->tv_nsec, src);
    int err = write(fd, buf, (size_t)n) != n ? EIO : 0;
    if (!err && fsync(fd))
        err = errno;
    close(fd);
    return err;
}

static int write_info(int dirfd, const char *dir, uint64_t files,
                      const struct timespec *created, const char *source)
{
    char *path = join(dir, INFO_FILE);
    if (!path)
        return ENOMEM;
    int err = write_info_file(dirfd, path, files, created, source);
    free(path);
    return err;
}

/* Fill ri from runs/<enc>/ (name already set). */
static int read_run_dir_info(kv_cache *c, const char *enc, struct kv_runinfo *ri)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "runs/%s", enc);
    int fd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? ENOENT : errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return EIO;
    }
    struct dirent *de;
    uint64_t bytes = 0;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            bytes += (uint64_t)st.st_blocks * 512;
    }
    ri->bytes = bytes;
    int ifd = openat(dirfd(d), INFO_FILE, O_RDONLY | O_CLOEXEC);
    closedir(d);
    if (ifd < 0)
        return ENOENT;          /* not (yet) a complete run */
    char buf[512];
    ssize_t n = read(ifd, buf, sizeof buf - 1);
    close(ifd);
    if (n <= 0)
        return EIO;
    buf[n] = '\0';
    unsigned long long files = 0;
    long long sec = 0;
    long nsec = 0;
    char *p = strstr(buf, "files ");
    if (p)
        files = strtoull(p + 6, NULL, 10);
    p = strstr(buf, "created ");
    if (p && sscanf(p + 8, "%lld %ld", &sec, &nsec) != 2)
        sec = nsec = 0;
    ri->files = files;
    ri->created.tv_sec = (time_t)sec;
    ri->created.tv_nsec = nsec;
    ri->source_version[0] = '\0';
    p = strstr(buf, "\nsource ");
    if (p) {
        p += 8;
        size_t len = strcspn(p, "\n");
        if (len >= sizeof ri->source_version)
            len = sizeof ri->source_version - 1;
        memcpy(ri->source_version, p, len);
        ri->source_version[len] = '\0';
    }
    /* A run open here has live counters. */
    pthread_mutex_lock(&c->lock);
    for (kv_run *r = c->runs; r; r = r->next)
        if (!strcmp(r->name, ri->name) && !__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE)) {
            ri->files = r->inodes;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int kv_cache_runinfo(kv_cache *c, const char *name, struct kv_runinfo *ri)
{
    char enc[NAME_MAX + 1];
    int err = check_run_name(name);
    if (!err)
        err = encode_run_name(name, enc, sizeof enc);
    if (err)
        return err == ENAMETOOLONG ? EINVAL : err;
    memset(ri, 0, sizeof *ri);
    snprintf(ri->name, sizeof ri->name, "%s", name);
    return read_run_dir_info(c, enc, ri);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted decoded names of published runs.  Caller frees each and the array. */
static int list_names(kv_cache *c, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    int fd = openat(c->dirfd, "runs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : EIO;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return EIO;
    }
    size_t cap = 0, n = 0;
    char **v = NULL;
    int err = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char name[KV_RUNNAME_MAX + 1];
        if (decode_run_name(de->d_name, name, sizeof name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                err = ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(name))) {
            err = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (err) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return err;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return 0;
}

int kv_cache_list(kv_cache *c, int (*cb)(void *arg, const struct kv_runinfo *ri),
                  void *arg)
{
    char **names;
    size_t n;
    int err = list_names(c, &names, &n);
    if (err)
        return err;
    struct kv_runinfo *ri = malloc(sizeof *ri);
    int ret = ri ? 0 : ENOMEM;
    for (size_t i = 0; i < n && !ret; i++) {
        if (kv_cache_runinfo(c, names[i], ri) == 0)
            ret = cb(arg, ri);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(ri);
    return ret;
}

static void fill_space(kv_cache *c, struct kv_statfs *st)
{
    struct statvfs vfs;
    uint64_t avail = 0;
    if (fstatvfs(c->dirfd, &vfs) == 0)
        avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    pthread_mutex_lock(&c->lock);
    uint64_t limit = c->limit;
    pthread_mutex_unlock(&c->lock);
    if (limit) {
        st->bytes_total = limit;
        uint64_t room = limit > st->bytes_used ? limit - st->bytes_used : 0;
        st->bytes_free = room < avail ? room : avail;
    } else {
        st->bytes_total = st->bytes_used + avail;
        st->bytes_free = avail;
    }
}

int kv_cache_statfs(kv_cache *c, struct kv_statfs *st)
{
    char **names;
    size_t n;
    memset(st, 0, sizeof *st);
    int err = list_names(c, &names, &n);
    if (err)
        return err;
    struct kv_runinfo *ri = malloc(sizeof *ri);
    for (size_t i = 0; i < n; i++) {
        if (ri && kv_cache_runinfo(c, names[i], ri) == 0) {
            st->bytes_used += ri->bytes;
            st->inodes_used += ri->files;
        }
        free(names[i]);
    }
    free(names);
    free(ri);
    fill_space(c, st);
    return 0;
}

/* Take r out of the runs list (if there) and wake opens waiting for a
 * closing r.  Caller holds c->lock. */
static void unlink_locked(kv_cache *c, kv_run *r)
{
    for (kv_run **pp = &c->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    r->next = NULL;
    if (r->closing)
        pthread_cond_broadcast(&c->closed);
}

/* Detach r from the shared table and forbid further writes.  Caller holds
 * c->lock; r's files have been moved away. */
static void retire_locked(kv_cache *c, kv_run *r)
{
    /* No run lock here: a reader holding it may be waiting for c->lock.
     * A change in flight still commits into the moved files, harmlessly. */
    __atomic_store_n(&r->gone, true, __ATOMIC_RELEASE);
    unlink_locked(c, r);
}

static kv_run *find_open_locked(kv_cache *c, const char *name)
{
    for (kv_run *r = c->runs; r; r = r->next)
        if (!strcmp(r->name, name))
            return r;
    return NULL;
}

int kv_cache_evict(kv_cache *c, const char *name)
{
    char enc[NAME_MAX + 1], from[PATH_MAX], to[PATH_MAX], id[96];
    int err = check_run_name(name);
    if (!err)
        err = encode_run_name(name, enc, sizeof enc);
    if (err)
        return EINVAL;
    if (c->readonly)
        return EROFS;
    unique_id(c, id, sizeof id);
    snprintf(from, sizeof from, "runs/%s", enc);
    snprintf(to, sizeof to, "tmp/evict-%s", id);
    pthread_mutex_lock(&c->lock);
    if (renameat(c->dirfd, from, c->dirfd, to) != 0) {
        err = errno == ENOENT ? ENOENT : EIO;
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    kv_run *r = find_open_locked(c, name);
    if (r)
        retire_locked(c, r);
    pthread_mutex_unlock(&c->lock);
    crash_point("evict-renamed");
    if (fsync_path(c->dirfd, "runs"))
        err = EIO;
    sweep_tmp(c);
    return err;
}

/* ---- runs ------------------------------------------------------------- */

static int load_counters(kv_run *r)
{
    unsigned char buf[24];
    int32_t n = kcdbgetbuf(r->db, "Scounters", 9, (char *)buf, sizeof buf);
    if (n != 24)
        return EIO;
    r->data_bytes = kv_get64(buf);
    r->inodes = kv_get64(buf + 8);
    r->next_ino = kv_get64(buf + 16);
    n = kcdbgetbuf(r->db, "Sroot", 5, (char *)buf, 8);
    if (n != 8)
        return EIO;
    r->root = kv_get64(buf);
    return 0;
}

int kv_store_counters(kv_run *r)
{
    unsigned char buf[24];
    kv_put64(buf, r->data_bytes);
    kv_put64(buf + 8, r->inodes);
    kv_put64(buf + 16, r->next_ino);
    return kcdbset(r->db, "Scounters", 9, (char *)buf, 24) ? 0 : kv_kcerr(r->db);
}

/* Close r's databases and lock (each at most once). */
static void run_shut(kv_run *r)
{
    kv_dirsnap_drop_run(r);
    if (r->data) {
        if (!kcdbclose(r->data))
            log_warn("kvstore: closing run %s data: %s", r->name,
                     kcecodename(kcdbecode(r->data)));
        kcdbdel(r->data);
        r->data = NULL;
    }
    if (r->db && r->unclean_marked && !r->keep_unclean && !__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) && !r->staged) {
        /* Data is closed (flushed): nothing can be half-done any more. */
        if (!kcdbbegintran(r->db, 0) || !kcdbremove(r->db, "Sunclean", 8) ||
            !kcdbendtran(r->db, 1))
            log_warn("kvstore: run %s: cannot clear the unclean mark", r->name);
    }
    if (r->db) {
        if (!kcdbclose(r->db))
            log_warn("kvstore: closing run %s: %s", r->name, kcecodename(kcdbecode(r->db)));
        kcdbdel(r->db);
        r->db = NULL;
    }
    if (r->lockfd >= 0)
        close(r->lockfd);
    r->lockfd = -1;
}

static void run_free(kv_run *r)
{
    if (!r)
        return;
    run_shut(r);
    pthread_rwlock_destroy(&r->lock);
    free(r->name);
    free(r->dir);
    free(r->dbfile);
    free(r->drops);
    free(r);
}

uint64_t kv_gen_next(void)
{
    static _Atomic uint64_t clock;      /* process-wide: no two runs share one */
    return atomic_fetch_add(&clock, 1) + 1;
}

uint64_t kv_run_stamp(const kv_run *r)
{
    if (r->staged || r->readonly)
        return 0;
    return __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
}

static kv_run *run_new(kv_cache *c, const char *name)
{
    kv_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->gen = kv_gen_next();
    r->cache = c;
    r->lockfd = -1;
    pthread_rwlock_init(&r->lock, NULL);
    if (!(r->name = strdup(name))) {
        run_free(r);
        return NULL;
    }
    return r;
}

static int open_one(kv_run *r, KCDB **db, const char *ext, const char *tuning,
                    uint32_t mode)
{
    char path[PATH_MAX + 128];
    size_t base = strlen(r->dbfile) - 4;    /* without ".kct" */
    snprintf(path, sizeof path, "%s/%s/%.*s%s%s", r->cache->path, r->dir,
             (int)base, r->dbfile, ext, tuning);
    *db = kcdbnew();
    if (!*db)
        return ENOMEM;
    if (kcdbopen(*db, path, mode))
        return 0;
    int code = kcdbecode(*db);
    kcdbdel(*db);
    *db = NULL;
    return code == KCENOREC ? ENOENT : EIO;
}

/* Open both Kyoto Cabinet databases of r (dir and dbfile set). */
static int run_open_db(kv_run *r, uint32_t mode)
{
    char tuning[160];
    if (mode & KCOCREATE) {             /* staging: a run being built */
        uint64_t cap = r->cache->build_cache ? r->cache->build_cache
                                             : KV_BUILD_CACHE_DEFAULT;
        snprintf(tuning, sizeof tuning, KC_META_TUNING_CAP,
                 (unsigned long long)cap);
    } else {
        /* run_cache bounds both what the tree caches and how much of its
         * file is mapped (KC's default msiz is 64 MiB per database). */
        uint64_t cap = r->cache->run_cache ? r->cache->run_cache : KV_RUN_CACHE_DEFAULT;
        snprintf(tuning, sizeof tuning, KC_META_TUNING_CAP "#msiz=%llu",
                 (unsigned long long)cap, (unsigned long long)cap);
    }
    int err = open_one(r, &r->db, ".kct", tuning, mode);
    if (!err) {
        err = open_one(r, &r->data, ".kch", KC_DATA_TUNING, mode);
        if (err) {
            kcdbclose(r->db);
            kcdbdel(r->db);
            r->db = NULL;
        }
    }
    return err;
}

/* Writable open of a published run: if a process died while changing it,
 * sweep the data garbage it may have left (see data.c). */
static int recover_if_unclean(kv_run *r)
{
    if (r->readonly || kcdbcheck(r->db, "Sunclean", 8) < 0)
        return 0;
    log_info("kvstore: run %s was not closed cleanly; sweeping its data", r->name);
    int err = kv_data_gc(r);
    if (!err && !kcdbsync(r->data, 1, NULL, NULL))
        err = EIO;
    if (!err && (!kcdbbegintran(r->db, 0) || !kcdbremove(r->db, "Sunclean", 8) ||
                 !kcdbendtran(r->db, 1)))
        err = EIO;
    return err;
}

/* Find the one *.kct file in the run directory rel. */
static int find_dbfile(kv_cache *c, const char *rel, char **out)
{
    int fd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? ENOENT : errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return EIO;
    }
    struct dirent *de;
    int err = ENOENT;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && !strcmp(de->d_name + n - 4, ".kct")) {
            *out = strdup(de->d_name);
            err = *out ? 0 : ENOMEM;
            break;
        }
    }
    closedir(d);
    return err;
}

/* Still the run published under its name?  (Another process may have
 * replaced or evicted it.) */
static bool run_is_current(kv_run *r)
{
    char rel[PATH_MAX];
    struct stat st;
    snprintf(rel, sizeof rel, "%s/%s", r->dir, r->dbfile);
    return fstatat(r->cache->dirfd, rel, &st, 0) == 0;
}

bool kv_run_stale(kv_run *r)
{
    return __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) || !run_is_current(r);
}

int kv_run_open(kv_cache *c, const char *name, kv_run **out)
{
    char enc[NAME_MAX + 1], rel[PATH_MAX];
    *out = NULL;
    int err = check_run_name(name);
    if (!err)
        err = encode_run_name(name, enc, sizeof enc);
    if (err)
        return EINVAL;
    snprintf(rel, sizeof rel, "runs/%s", enc);
    pthread_mutex_lock(&c->lock);
    kv_run *r;
    /* A run whose last handle is closing its databases: wait until they
     * are shut before opening the files again. */
    while ((r = find_open_locked(c, name)) && r->closing)
        pthread_cond_wait(&c->closed, &c->lock);
    if (r && !run_is_current(r)) {
        retire_locked(c, r);
        r = NULL;
    }
    if (r) {
        r->refs++;
        pthread_mutex_unlock(&c->lock);
        *out = r;
        return 0;
    }
    r = run_new(c, name);
    if (!r) {
        pthread_mutex_unlock(&c->lock);
        return ENOMEM;
    }
    if (!(r->dir = strdup(rel)))
        err = ENOMEM;
    if (!err)
        err = find_dbfile(c, rel, &r->dbfile);
    if (!err) {
        r->lockfd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->lockfd < 0 || flock(r->lockfd, LOCK_SH | LOCK_NB) != 0)
            err = ENOENT;       /* being swept away */
    }
    if (!err) {
        if (c->readonly) {
            r->readonly = true;
            err = run_open_db(r, KCOREADER | KCONOLOCK);
        } else {
            err = run_open_db(r, KCOWRITER | KCOTRYLOCK);
            if (err == EIO) {
                /* Another process holds the writer lock: serve reads. */
                log_warn("kvstore: run %s is locked for writing elsewhere; "
                         "opened read-only", name);
                r->readonly = true;
                err = run_open_db(r, KCOREADER | KCONOLOCK);
            }
        }
    }
    if (!err)
        err = load_counters(r);
    if (!err)
        err = recover_if_unclean(r);
    if (err) {
        pthread_mutex_unlock(&c->lock);
        run_free(r);
        return err;
    }
    r->refs = 1;
    r->next = c->runs;
    c->runs = r;
    pthread_mutex_unlock(&c->lock);
    *out = r;
    return 0;
}

void kv_run_close(kv_run *r)
{
    if (!r)
        return;
    if (r->staged) {
        kv_run_abort(r);
        return;
    }
    kv_cache *c = r->cache;
    pthread_mutex_lock(&c->lock);
    if (--r->refs > 0) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    /* Stay listed while the databases close, so that an open of this run
     * waits for them instead of opening the same files a second time. */
    r->closing = true;
    pthread_mutex_unlock(&c->lock);
    run_shut(r);
    pthread_mutex_lock(&c->lock);
    unlink_locked(c, r);
    bool gone = __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&c->lock);
    run_free(r);
    if (gone)
        sweep_tmp(c);
}

int kv_run_stage(kv_cache *c, const char *name, kv_ino root_hint, kv_run **out)
{
    char enc[NAME_MAX + 1], id[96], rel[PATH_MAX];
    *out = NULL;
    int err = check_run_name(name);
    if (!err)
        err = encode_run_name(name, enc, sizeof enc);
    if (err)
        return EINVAL;
    if (c->readonly)
        return EROFS;
    unique_id(c, id, sizeof id);
    snprintf(rel, sizeof rel, "tmp/%s", id);
    if (mkdirat(c->dirfd, rel, 0755) != 0)
        return errno == ENOSPC ? ENOSPC : EIO;
    kv_run *r = run_new(c, name);
    if (!r) {
        unlinkat(c->dirfd, rel, AT_REMOVEDIR);
        return ENOMEM;
    }
    r->staged = true;
    r->lockfd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->lockfd < 0 || flock(r->lockfd, LOCK_EX | LOCK_NB) != 0)
        err = EIO;
    if (!err && (!(r->dir = strdup(rel)) || asprintf(&r->dbfile, "%s.kct", id) < 0)) {
        r->dbfile = NULL;
        err = ENOMEM;
    }
    if (!err)
        err = run_open_db(r, KCOWRITER | KCOCREATE | KCOTRUNCATE);
    if (!err) {
        struct kv_inode root = {0};
        r->root = root_hint ? root_hint : kv_ino_for(name, "");
        root.mode = S_IFDIR | 0755;
        root.nlink = 2;
        root.uid = (uint32_t)getuid();
        root.gid = (uint32_t)getgid();
        root.size = 4096;
        kv_now(&root.mtime);
        root.atime = root.ctime = root.mtime;
        root.parent = r->root;
        root.next_seq = KV_FIRST_SEQ;
        r->inodes = 1;
        r->next_ino = KV_MIN_INO;
        unsigned char buf[8];
        kv_put64(buf, r->root);
        err = kv_inode_store(r, r->root, &root);
        if (!err && !kcdbset(r->db, "Sroot", 5, (char *)buf, 8))
            err = EIO;
        if (!err && !kcdbset(r->db, "Sname", 5, name, strlen(name)))
            err = EIO;
        if (!err)
            err = kv_store_counters(r);
    }
    if (err) {
        kv_run_abort(r);
        return err;
    }
    *out = r;
    return 0;
}

int kv_run_publish(kv_run *r, const char *source_version)
{
    kv_cache *c = r->cache;
    char enc[NAME_MAX + 1], dest[PATH_MAX];
    if (!r->staged)
        return EINVAL;
    if (encode_run_name(r->name, enc, sizeof enc))
        return EINVAL;
    snprintf(dest, sizeof dest, "runs/%s", enc);
    pthread_rwlock_wrlock(&r->lock);
    kv_gen_bump(r);
    struct timespec now;
    kv_now(&now);
    unsigned char ts[12];
    kv_put64(ts, (uint64_t)now.tv_sec);
    kv_put32(ts + 8, (uint32_t)now.tv_nsec);
    const char *src = source_version ? source_version : "";
    int err = kv_store_counters(r);
    if (!err && (!kcdbset(r->db, "Screated", 8, (char *)ts, 12) ||
                 !kcdbset(r->db, "Ssource", 7, src, strlen(src))))
        err = kv_kcerr(r->db);
    if (!err && (!kcdbsync(r->data, 1, NULL, NULL) || !kcdbsync(r->db, 1, NULL, NULL)))
        err = EIO;
    if (!err && (!kcdbclose(r->data) || !kcdbclose(r->db)))
        err = EIO;
    if (!err) {
        kcdbdel(r->data);
        kcdbdel(r->db);
        r->data = r->db = NULL;
        /* The build's page cache (up to build_cache) was freed: give it
         * back to the system, not just to malloc. */
        malloc_trim(0);
        err = write_info(c->dirfd, r->dir, r->inodes, &now, src);
    }
    if (!err)
        err = fsync_path(c->dirfd, r->dir);
    if (err) {
        pthread_rwlock_unlock(&r->lock);
        return err == ENOSPC ? ENOSPC : EIO;
    }
    crash_point("publish-synced");
    pthread_mutex_lock(&c->lock);
    bool replaced = false;
    if (renameat2(c->dirfd, r->dir, c->dirfd, dest, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST &&
            renameat2(c->dirfd, r->dir, c->dirfd, dest, RENAME_EXCHANGE) == 0)
            replaced = true;
        else
            err = errno == ENOSPC ? ENOSPC : EIO;
    }
    if (!err) {
        kv_run *old = find_open_locked(c, r->name);
        if (old)
            retire_locked(c, old);
        crash_point("publish-renamed");
        if (fsync_path(c->dirfd, "runs"))
            err = EIO;
        char *olddir = r->dir;
        r->dir = strdup(dest);
        if (!r->dir) {
            r->dir = olddir;    /* keeps pointing at tmp: harmless, reads fail */
            err = ENOMEM;
        } else {
            free(olddir);
        }
        /* The lock now protects the published directory: shared. */
        flock(r->lockfd, LOCK_SH);
        r->staged = false;
        if (!err)
            err = run_open_db(r, KCOWRITER);
        r->refs = 1;
        r->next = c->runs;
        c->runs = r;
    }
    pthread_mutex_unlock(&c->lock);
    pthread_rwlock_unlock(&r->lock);
    if (replaced)
        sweep_tmp(c);
    return err;
}

void kv_run_abort(kv_run *r)
{
    if (!r)
        return;
    if (!r->staged) {
        /* Published after all (publish failed only when reopening): too
         * late to discard, so this is a close. */
        kv_run_close(r);
        return;
    }
    kv_cache *c = r->cache;
    char *dir = r->dir;
    r->dir = NULL;
    bool staged = r->staged;
    run_free(r);
    if (dir && staged) {
        int err = remove_tree(c->dirfd, dir);
        if (err)
            log_warn("kvstore: cannot remove %s/%s: %s", c->path, dir, strerror(err));
    }
    free(dir);
}

const char *kv_run_name(const kv_run *r)
{
    return r->name;
}

kv_ino kv_run_root(const kv_run *r)
{
    return r->root;
}

int kv_run_sync(kv_run *r)
{
    pthread_rwlock_wrlock(&r->lock);
    int err = 0;
    if (r->staged)
        err = kv_store_counters(r);
    if (!err && !r->readonly &&
        (!kcdbsync(r->data, 1, NULL, NULL) || !kcdbsync(r->db, 1, NULL, NULL)))
        err = EIO;
    pthread_rwlock_unlock(&r->lock);
    return err;
}

int kv_run_statfs(kv_run *r, struct kv_statfs *st)
{
    memset(st, 0, sizeof *st);
    pthread_rwlock_rdlock(&r->lock);
    st->bytes_used = r->data_bytes + r->inodes * KV_INODE_COST;
    st->inodes_used = r->inodes;
    pthread_rwlock_unlock(&r->lock);
    fill_space(r->cache, st);
    return 0;
}

/* ---- metadata --------------------------------------------------------- */

static int meta_key(const char *key, unsigned char *k, size_t *klen)
{
    size_t n = key ? strnlen(key, KV_NAME_MAX + 1) : 0;
    if (n == 0 || n > KV_NAME_MAX)
        return EINVAL;
    k[0] = 'M';
    memcpy(k + 1, key, n);
    *klen = n + 1;
    return 0;
}

int kv_run_set_source_version(kv_run *r, const char *source_version)
{
    if (r->staged || !r->dir)
        return EINVAL;
    if (r->readonly)
        return EROFS;
    if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
        return ESTALE;
    struct kv_runinfo ri;
    int err = kv_cache_runinfo(r->cache, r->name, &ri);
    if (err)
        return err == ENOENT ? ESTALE : err;
    char *tmp = join(r->dir, INFO_FILE ".tmp"), *dst = join(r->dir, INFO_FILE);
    if (!tmp || !dst)
        err = ENOMEM;
    /* Written beside and renamed over: readers see the old or the new
     * info, never a torn one. */
    pthread_rwlock_wrlock(&r->lock);
    if (!err)
        err = write_info_file(r->cache->dirfd, tmp, ri.files, &ri.created,
                              source_version);
    if (!err && renameat(r->cache->dirfd, tmp, r->cache->dirfd, dst) != 0)
        err = errno;
    pthread_rwlock_unlock(&r->lock);
    if (err && tmp)
        unlinkat(r->cache->dirfd, tmp, 0);
    free(tmp);
    free(dst);
    if (!err)
        err = fsync_path(r->cache->dirfd, r->dir);
    return err == ENOSPC || err == ENOMEM ? err : err ? EIO : 0;
}

int kv_run_setmeta(kv_run *r, const char *key, const void *val, size_t len)
{
    unsigned char k[KV_KEY_MAX];
    size_t klen;
    int err = meta_key(key, k, &klen);
    if (err)
        return err;
    if (len > KV_META_MAX)
        return E2BIG;
    if ((err = kv_wbegin(r)))
        return err;
    if (!kcdbset(r->db, (char *)k, klen, val ? val : "", len))
        err = kv_kcerr(r->db);
    return kv_wend(r, err);
}

int kv_run_getmeta(kv_run *r, const char *key, void *buf, size_t cap, size_t *len)
{
    unsigned char k[KV_KEY_MAX];
    size_t klen;
    int err = meta_key(key, k, &klen);
    if (err)
        return err;
    kv_rbegin(r);
    size_t vsiz;
    char *v = kcdbget(r->db, (char *)k, klen, &vsiz);
    if (!v)
        err = kv_kcerr(r->db);
    kv_rend(r);
    if (err)
        return err;
    memcpy(buf, v, vsiz < cap ? vsiz : cap);
    if (len)
        *len = vsiz;
    kcfree(v);
    return 0;
}

int kv_run_delmeta(kv_run *r, const char *key)
{
    unsigned char k[KV_KEY_MAX];
    size_t klen;
    int err = meta_key(key, k, &klen);
    if (err)
        return err;
    if ((err = kv_wbegin(r)))
        return err;
    if (!kcdbremove(r->db, (char *)k, klen))
        err = kv_kcerr(r->db);
    return kv_wend(r, err);
}

/* ---- lock and transaction discipline ---------------------------------- */

/* Test hook (kv_set_fault): set once by a test, read on every commit. */
static struct {
    kv_fault_fn fn;
    void *arg;
} fault_hook;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

void kv_set_fault(kv_fault_fn fn, void *arg)
{
    pthread_mutex_lock(&fault_lock);
    fault_hook.fn = fn;
    fault_hook.arg = arg;
    pthread_mutex_unlock(&fault_lock);
}

int kv_fault(const char *op)
{
    pthread_mutex_lock(&fault_lock);
    kv_fault_fn fn = fault_hook.fn;
    void *arg = fault_hook.arg;
    pthread_mutex_unlock(&fault_lock);
    return fn ? fn(arg, op) : 0;
}

int kv_wbegin(kv_run *r)
{
    if (r->readonly)
        return EROFS;
    pthread_rwlock_wrlock(&r->lock);
    kv_gen_bump(r);
    if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE)) {
        pthread_rwlock_unlock(&r->lock);
        return ESTALE;
    }
    r->saved_next_ino = r->next_ino;
    r->saved_data_bytes = r->data_bytes;
    r->saved_inodes = r->inodes;
    r->ndrops = 0;
    /* A staged run is invisible until published and deleted if anything
     * fails, so it skips the write-ahead logs entirely. */
    if (r->staged)
        return 0;
    /* Another process may have evicted or replaced the run: its files now
     * sit in tmp/, and a transaction would put a write-ahead log under the
     * old path. */
    if (!run_is_current(r)) {
        __atomic_store_n(&r->gone, true, __ATOMIC_RELEASE);
        pthread_rwlock_unlock(&r->lock);
        return ESTALE;
    }
    /* Before the first data change, make "changes may be in flight"
     * durable, so a crash is followed by a garbage sweep. */
    if (!r->unclean_marked) {
        if (!kcdbbegintran(r->db, 0) || !kcdbset(r->db, "Sunclean", 8, "1", 1) ||
            !kcdbendtran(r->db, 1)) {
            pthread_rwlock_unlock(&r->lock);
            return EIO;
        }
        r->unclean_marked = true;
    }
    if (!kcdbbegintran(r->db, 0)) {
        pthread_rwlock_unlock(&r->lock);
        return EIO;
    }
    return 0;
}

int kv_data_begin(kv_run *r)
{
    if (r->staged)
        return 0;
    return kcdbbegintran(r->data, 0) ? 0 : EIO;
}

int kv_data_end(kv_run *r, int err)
{
    if (r->staged)
        return err;
    if (!err)
        err = kv_fault("data-commit");
    if (!kcdbendtran(r->data, err == 0) && !err)
        err = EIO;
    return err;
}

int kv_wend(kv_run *r, int err)
{
    if (!r->staged) {
        if (!err)
            err = kv_store_counters(r);
        if (!err)
            err = kv_fault("meta-commit");
        if (!kcdbendtran(r->db, err == 0) && !err)
            err = EIO;
    }
    if (err) {
        r->next_ino = r->saved_next_ino;
        r->data_bytes = r->saved_data_bytes;
        r->inodes = r->saved_inodes;
    }
    /* Committed: free what the change dropped.  Failed: take back blocks
     * a write committed past the old end.  If that fails, the run is
     * swept at its next open (and the blocks stay unreachable until then
     * unless the file grows over them: hence the warning). */
    struct kv_drop *later = NULL;
    size_t nlater = 0;
    if (!r->staged && err == 0)
        kv_data_take_gone(r, &later, &nlater);
    if ((!r->staged || err == 0) && kv_data_run_drops(r, err == 0)) {
        log_warn("kvstore: run %s: deleting data blocks failed", r->name);
        r->keep_unclean = true;
    }
    r->ndrops = 0;
    pthread_rwlock_unlock(&r->lock);
    /* Blocks of deleted inodes are unreachable once the change committed:
     * they go now in bounded steps, so a huge file's delete does not hold
     * the run's lock for long. */
    if (nlater && kv_data_drop_gone(r, later, nlater))
        log_warn("kvstore: run %s: deleting data blocks failed", r->name);
    free(later);
    return err;
}

void kv_rbegin(kv_run *r)
{
    pthread_rwlock_rdlock(&r->lock);
}

void kv_rend(kv_run *r)
{
    pthread_rwlock_unlock(&r->lock);
}

void kv_cache_set_run_cache(kv_cache *c, uint64_t bytes)
{
    c->run_cache = bytes;
}

void kv_cache_set_build_cache(kv_cache *c, uint64_t bytes)
{
    c->build_cache = bytes;
}
