/* run.c: the life of a run in the cache: stage, publish, open and close (shared handles, closing waits), abort, evict of an open run, counters, run metadata. */
#include "kvstore/kv_internal.h"
#include "util/crashpt.h"
#include "util/log.h"

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
#include <unistd.h>

/* Kyoto Cabinet tuning of a run's metadata, chosen by measurement
 * (doc/design.md (kvstore)); the page cache (pccap) is run_cache, or
 * build_cache while a run is built (staged): inode records go in at random
 * (hashed) keys, so once the tree outgrows the page cache every insert
 * reloads a leaf.  Measured on a 1,020,951-member index (475 MB TreeDB):
 * 64 MiB 77 s, 128 MiB 55 s, 256 MiB 22 s, 1 GiB 19 s.  A cap, not an
 * allocation; released when the run is published. */
#define KC_META_TUNING_CAP "#psiz=16384#pccap=%llu#bnum=131072#msiz=0"
#define KV_BUILD_CACHE_DEFAULT ((uint64_t)256 << 20)
#ifndef KC_DATA_TUNING
#define KC_DATA_TUNING "#bnum=524288#msiz=0"
#endif
/* Neither database is memory-mapped (msiz=0): Kyoto Cabinet writes a mapped
 * file with memcpy, and a page it grew the file by that the filesystem then
 * cannot allocate (a full disk) kills the process with SIGBUS; through
 * pwrite the same failure is an error (ENOSPC) the caller handles. */

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
    char *path = join(dir, KV_INFO_FILE);
    if (!path)
        return ENOMEM;
    int err = write_info_file(dirfd, path, files, created, source);
    free(path);
    return err;
}

/* ---- the open runs table -------------------------------------------- */

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
void kv_retire_locked(kv_cache *c, kv_run *r)
{
    /* No run lock here: a reader holding it may be waiting for c->lock.
     * A change in flight still commits into the moved files, harmlessly. */
    __atomic_store_n(&r->gone, true, __ATOMIC_RELEASE);
    unlink_locked(c, r);
}

kv_run *kv_find_open_locked(kv_cache *c, const char *name)
{
    for (kv_run *r = c->runs; r; r = r->next)
        if (!strcmp(r->name, name))
            return r;
    return NULL;
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
            log_warn("kvstore: closing run %s data: %s (%s)", r->name,
                     kcecodename(kcdbecode(r->data)), kcdbemsg(r->data));
        kcdbdel(r->data);
        r->data = NULL;
    }
    if (r->db && r->unclean_marked && !r->keep_unclean && !__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) && !r->staged) {
        /* Data is closed (flushed): nothing can be half-done any more. */
        int err = kv_kcflag(r->db, "Sunclean", NULL);
        if (err)
            log_warn("kvstore: run %s: cannot clear the unclean mark: %s", r->name,
                     strerror(err));
    }
    if (r->db) {
        if (!kcdbclose(r->db))
            log_warn("kvstore: closing run %s: %s (%s)", r->name,
                     kcecodename(kcdbecode(r->db)), kcdbemsg(r->db));
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
        /* run_cache bounds what the tree caches. */
        uint64_t cap = r->cache->run_cache ? r->cache->run_cache : KV_RUN_CACHE_DEFAULT;
        snprintf(tuning, sizeof tuning, KC_META_TUNING_CAP,
                 (unsigned long long)cap);
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
    if (!err)
        err = kv_kcflag(r->db, "Sunclean", NULL);
    return err;
}

/* Find the one *.kct file in the run directory rel. */
static int find_dbfile(kv_cache *c, const char *rel, char **out)
{
    DIR *d;
    int err = kv_opendir_at(c, rel, &d);
    if (err)
        return err;
    struct dirent *de;
    err = ENOENT;
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
bool kv_run_is_current(kv_run *r)
{
    char rel[PATH_MAX];
    struct stat st;
    snprintf(rel, sizeof rel, "%s/%s", r->dir, r->dbfile);
    return fstatat(r->cache->dirfd, rel, &st, 0) == 0;
}

bool kv_run_stale(kv_run *r)
{
    return __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) || !kv_run_is_current(r);
}

int kv_run_open(kv_cache *c, const char *name, kv_run **out)
{
    char enc[NAME_MAX + 1], rel[PATH_MAX];
    *out = NULL;
    int err = kv_run_dirname(name, enc, sizeof enc);
    if (err)
        return err;
    snprintf(rel, sizeof rel, "runs/%s", enc);
    pthread_mutex_lock(&c->lock);
    kv_run *r;
    /* A run whose last handle is closing its databases: wait until they
     * are shut before opening the files again. */
    while ((r = kv_find_open_locked(c, name)) && r->closing)
        pthread_cond_wait(&c->closed, &c->lock);
    if (r && !kv_run_is_current(r)) {
        kv_retire_locked(c, r);
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
        kv_sweep_tmp(c);
}

int kv_run_stage(kv_cache *c, const char *name, kv_ino root_hint, kv_run **out)
{
    char enc[NAME_MAX + 1], id[96], rel[PATH_MAX];
    *out = NULL;
    int err = kv_run_dirname(name, enc, sizeof enc);
    if (err)
        return err;
    if (c->readonly)
        return EROFS;
    kv_unique_id(c, id, sizeof id);
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
            err = kv_kcfail(r->db);
        if (!err && !kcdbset(r->db, "Sname", 5, name, strlen(name)))
            err = kv_kcfail(r->db);
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
    if (kv_encode_run_name(r->name, enc, sizeof enc))
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
        err = kv_fsync_path(c->dirfd, r->dir);
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
        kv_run *old = kv_find_open_locked(c, r->name);
        if (old)
            kv_retire_locked(c, old);
        crash_point("publish-renamed");
        if (kv_fsync_path(c->dirfd, "runs"))
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
        kv_sweep_tmp(c);
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
        int err = kv_remove_tree(c->dirfd, dir);
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
    /* Nothing changed since the last flush: nothing to make durable, and a
     * client repeating COMMIT costs no disk flush and holds no reader up.
     * A change in progress has renewed gen already, so it is waited for. */
    if (__atomic_load_n(&r->synced_gen, __ATOMIC_ACQUIRE) ==
        __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE))
        return 0;
    pthread_rwlock_wrlock(&r->lock);
    uint64_t gen = r->gen;
    int err = 0;
    if (r->staged)
        err = kv_store_counters(r);
    if (!err && !r->readonly) {
        err = kv_fault("sync");
        if (!err && (!kcdbsync(r->data, 1, NULL, NULL) ||
                     !kcdbsync(r->db, 1, NULL, NULL)))
            err = EIO;
    }
    if (!err)
        __atomic_store_n(&r->synced_gen, gen, __ATOMIC_RELEASE);
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
    kv_cache_fill_space(r->cache, st);
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
    char *tmp = join(r->dir, KV_INFO_FILE ".tmp"), *dst = join(r->dir, KV_INFO_FILE);
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
        err = kv_fsync_path(r->cache->dirfd, r->dir);
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
