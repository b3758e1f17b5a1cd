/* cache.c: the cache directory: opening and creating it, the list and info of its runs, space, eviction, and sweeping tmp/. */
#include "kvstore/kv_internal.h"
#include "util/crashpt.h"
#include "util/log.h"
#include "util/hex.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Layout:  CACHE/tarnfs-cache           marker (format version)
 *          CACHE/runs/<encoded name>/   one published run: <id>.kct, <id>.kch, info
 *          CACHE/tmp/<id>/              staging runs and evicted runs
 * Every directory under tmp/ is garbage unless some process holds an flock
 * on it (staging: exclusive; open runs: shared), so a sweep that can take
 * the exclusive lock deletes it.  That makes crash recovery a sweep, and
 * lets several processes (tarnfsd, the tarnfs tool) share one cache. */

#define MARKER_FILE  "tarnfs-cache"
#define MARKER_TEXT  "tarnfs cache 1\n"

/* ---- small helpers ---------------------------------------------------- */

int kv_fsync_path(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = fsync(fd) ? errno : 0;
    close(fd);
    return err;
}

/* Remove path (file or directory tree) relative to dirfd. */
int kv_remove_tree(int parent, const char *path)
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
        int e = kv_remove_tree(dirfd(d), de->d_name);
        if (e && !err)
            err = e;
    }
    closedir(d);
    if (unlinkat(parent, path, AT_REMOVEDIR) && errno != ENOENT && !err)
        err = errno;
    return err;
}

/* Delete every directory under tmp/ that nobody holds a lock on. */
void kv_sweep_tmp(kv_cache *c)
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
        int err = kv_remove_tree(dirfd(d), de->d_name);
        if (err)
            log_warn("kvstore: cannot remove %s/tmp/%s: %s", c->path,
                     de->d_name, strerror(err));
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
}

void kv_unique_id(kv_cache *c, char *buf, size_t cap)
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
int kv_check_run_name(const char *name)
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
int kv_encode_run_name(const char *name, char *out, size_t cap)
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

int kv_run_dirname(const char *name, char *out, size_t cap)
{
    return kv_check_run_name(name) || kv_encode_run_name(name, out, cap) ? EINVAL : 0;
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
    return kv_check_run_name(out);
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
    kv_sweep_tmp(c);
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

int kv_opendir_at(kv_cache *c, const char *rel, DIR **out)
{
    int fd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? ENOENT : errno;
    if (!(*out = fdopendir(fd))) {
        close(fd);
        return EIO;
    }
    return 0;
}

/* ---- runinfo ---------------------------------------------------------- */

/* Fill ri from runs/<enc>/ (name already set). */
static int read_run_dir_info(kv_cache *c, const char *enc, struct kv_runinfo *ri)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "runs/%s", enc);
    DIR *d;
    int err = kv_opendir_at(c, rel, &d);
    if (err)
        return err;
    struct dirent *de;
    uint64_t bytes = 0;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            bytes += (uint64_t)st.st_blocks * 512;
    }
    ri->bytes = bytes;
    int ifd = openat(dirfd(d), KV_INFO_FILE, O_RDONLY | O_CLOEXEC);
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
    int err = kv_run_dirname(name, enc, sizeof enc);
    if (err)
        return err;
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

int kv_cache_disk(kv_cache *c, uint64_t *avail, uint64_t *size)
{
    struct statvfs sv;
    if (fstatvfs(c->dirfd, &sv) != 0)
        return errno;
    *avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    *size = (uint64_t)sv.f_blocks * sv.f_frsize;
    return 0;
}

void kv_cache_fill_space(kv_cache *c, struct kv_statfs *st)
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
    kv_cache_fill_space(c, st);
    return 0;
}

int kv_cache_evict(kv_cache *c, const char *name)
{
    char enc[NAME_MAX + 1], from[PATH_MAX], to[PATH_MAX], id[96];
    int err = kv_run_dirname(name, enc, sizeof enc);
    if (err)
        return err;
    if (c->readonly)
        return EROFS;
    kv_unique_id(c, id, sizeof id);
    snprintf(from, sizeof from, "runs/%s", enc);
    snprintf(to, sizeof to, "tmp/evict-%s", id);
    pthread_mutex_lock(&c->lock);
    if (renameat(c->dirfd, from, c->dirfd, to) != 0) {
        err = errno == ENOENT ? ENOENT : EIO;
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    kv_run *r = kv_find_open_locked(c, name);
    if (r)
        kv_retire_locked(c, r);
    pthread_mutex_unlock(&c->lock);
    crash_point("evict-renamed");
    if (kv_fsync_path(c->dirfd, "runs"))
        err = EIO;
    kv_sweep_tmp(c);
    return err;
}

void kv_cache_set_run_cache(kv_cache *c, uint64_t bytes)
{
    c->run_cache = bytes;
}

void kv_cache_set_build_cache(kv_cache *c, uint64_t bytes)
{
    c->build_cache = bytes;
}
