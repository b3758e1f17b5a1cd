/* writeback.c: writes changed runs back to the backend as new tarballs (vfs_upload_run with a version precondition), with conflicts. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/crashpt.h"
#include "util/log.h"
#include "util/hex.h"

#include <openssl/evp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WB_CHUNK (256u * 1024u)
/* Longest wait between idle retries of a failing write-back. */
#define VFS_WB_BACKOFF_MAX_MS (3600 * 1000)

/* ---- write-back ------------------------------------------------------ */

static int set_meta_str(kv_run *kr, const char *k, const char *s)
{
    return kv_run_setmeta(kr, k, s, strlen(s));
}

/* SHA-256 (hex) of the whole object key, read from the backend, for an
 * object stored without one.  Errors: fetch_get's and fetch_read's, EIO. */
static int hash_object(vfs *v, const char *key, char hex[65])
{
    fetch_stream *st;
    int err = fetch_get(v->backend, key, 0, 0, &st);
    if (err)
        return err;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(WB_CHUNK);
    err = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? 0 : ENOMEM;
    ssize_t n;
    while (!err && (n = fetch_read(st, buf, WB_CHUNK)) != 0) {
        if (n < 0)
            err = (int)-n;
        else if (!EVP_DigestUpdate(md, buf, (size_t)n))
            err = EIO;
    }
    unsigned char d[32];
    if (!err && !EVP_DigestFinal_ex(md, d, NULL))
        err = EIO;
    if (!err)
        hex_encode(d, sizeof d, hex);
    free(buf);
    EVP_MD_CTX_free(md);
    fetch_stream_close(st);
    return err;
}

/* After a precondition failure on key: is the object there the tarball
 * this server uploaded just before a crash (WB_PENDING: same size and
 * SHA-256)?  If so, record its version as the run's source, put it in
 * version (cap bytes) and return true: the run is that tarball plus later
 * changes, so the write-back goes on from it instead of a false conflict. */
static bool adopt_own_upload(vfs *v, kv_run *kr, const char *name,
                             const char *key, char *version, size_t cap)
{
    char val[96], want[65] = "", got[65] = "";
    size_t len = 0;
    unsigned long long size = 0;
    if (kv_run_getmeta(kr, WB_PENDING, val, sizeof val - 1, &len) != 0 ||
        len >= sizeof val)
        return false;
    val[len] = '\0';
    if (sscanf(val, "%64s %llu", want, &size) != 2 || strlen(want) != 64)
        return false;
    struct fetch_objinfo cur;
    if (fetch_stat(v->backend, key, &cur) != 0 || cur.size != size)
        return false;
    if (cur.sha256[0])
        snprintf(got, sizeof got, "%s", cur.sha256);
    else if (hash_object(v, key, got) != 0)
        return false;
    if (strcasecmp(got, want) != 0)
        return false;
    if (set_meta_str(kr, "source-version", cur.version) ||
        kv_run_set_source_version(kr, cur.version) || kv_run_sync(kr))
        return false;
    log_warn("vfs: run %s: %s (version %s) is this server's own write-back "
             "from before a crash (sha256 %s); writing back from it", name,
             key, cur.version, want);
    snprintf(version, cap, "%s", cur.version);
    return true;
}

/* How long an idle retry waits after the n-th failure in a row: the
 * write-back delay doubled n times, at most VFS_WB_BACKOFF_MAX_MS. */
static int64_t backoff_ms(const vfs *v, unsigned n)
{
    int64_t base = v->writeback_delay_ms == UINT_MAX ? VFS_WB_BACKOFF_MAX_MS
                                                     : v->writeback_delay_ms;
    int64_t wait = base;
    for (unsigned i = 0; i < n && wait < VFS_WB_BACKOFF_MAX_MS; i++)
        wait *= 2;
    return wait < VFS_WB_BACKOFF_MAX_MS ? wait : VFS_WB_BACKOFF_MAX_MS;
}

int vfs_writeback_run(vfs *v, const char *name, const char *reason)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    /* A write-back is no reference: LRU order and the eviction grace
     * must not see it. */
    pthread_mutex_lock(&v->lock);
    struct vfs_run *known = vfs_run_lookup_locked(v, name, false);
    int64_t last_ref = known ? known->last_ref_ms : 0;
    pthread_mutex_unlock(&v->lock);
    struct vfs_ref ref;
    int err = vfs_run_acquire(v, name, VFS_ACQ_NOFETCH, &ref);
    if (err) {
        /* A mark for a run no longer in the cache means nothing. */
        if (err == ENOENT)
            vfs_run_forget_mark(v, name);
        return err;
    }
    struct vfs_run *r = ref.run;
    pthread_mutex_lock(&v->lock);
    if (!known)
        last_ref = r->last_ref_ms;
    /* Another write-back of it in progress (the housekeeper's after a
     * restart, another flush): wait for it, then write back what it left,
     * so a flush that returns 0 covers every change made before it. */
    while (r->writing_back && !r->conflicted && !v->cancelled)
        pthread_cond_wait(&r->cv, &v->lock);
    bool dirty = r->dirty, conflicted = r->conflicted, busy = r->writing_back;
    if (dirty && !conflicted && !busy)
        r->writing_back = true;
    pthread_mutex_unlock(&v->lock);
    if (!dirty) {
        vfs_dirty_mark_remove(v, name);
        vfs_run_release(v, &ref);
        return 0;
    }
    if (conflicted || busy) {
        vfs_run_release(v, &ref);
        return conflicted ? EBUSY : EAGAIN;
    }
    /* Changes wait while the run streams, so the tarball is exactly the
     * run at one moment; later changes go into the next write-back. */
    pthread_rwlock_wrlock(&r->change_lock);
    pthread_mutex_lock(&v->lock);
    uint64_t gen = r->change_gen;
    char key[1100], version[128];
    bool is_new = !r->key;
    if (r->key)
        snprintf(key, sizeof key, "%s", r->key);
    else
        snprintf(key, sizeof key, "%s.tar", name);
    snprintf(version, sizeof version, "%s", r->version);
    pthread_mutex_unlock(&v->lock);

    char prefix[KV_RUNNAME_MAX + 1];
    const char *top = vfs_split_name(name, prefix, sizeof prefix);
    struct fetch_put_opts opts;
    memset(&opts, 0, sizeof opts);
    if (is_new || !version[0])
        opts.if_none_match = true;
    else
        opts.if_match = version;
    struct fetch_objinfo oi;
    memset(&oi, 0, sizeof oi);
    uint64_t files = 0;
    int64_t t0 = tclock_mono_ms();
    kv_run *kr = ref.h->kr;
    err = vfs_upload_run(v, kr, top, key, &opts, true, &oi, &files);
    if (err == ECANCELED &&
        adopt_own_upload(v, kr, name, key, version, sizeof version)) {
        memset(&opts, 0, sizeof opts);
        opts.if_match = version;
        err = vfs_upload_run(v, kr, top, key, &opts, true, &oi, &files);
    }
    char conflict_key[1200] = "";
    if (err == ECANCELED) {
        /* Someone else replaced (or created) the object since we fetched
         * it: never overwrite it; keep both versions. */
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(conflict_key, sizeof conflict_key, "%s.conflict-%s-%s.tar",
                 name, v->hostname, stamp);
        struct fetch_put_opts co;
        memset(&co, 0, sizeof co);
        co.if_none_match = true;
        struct fetch_objinfo coi;
        int cerr = vfs_upload_run(v, kr, top, conflict_key, &co, false,
                                  &coi, &files);
        if (cerr) {
            log_error("vfs: CONFLICT on run %s: %s changed in the backend "
                      "since it was fetched, and saving this server's "
                      "version as %s failed (%s); the run stays dirty and "
                      "is tried again", name, key, conflict_key,
                      strerror(cerr));
            err = EIO;
        } else {
            log_error("vfs: CONFLICT on run %s: %s changed in the backend "
                      "since it was fetched (expected version %s); NOT "
                      "overwritten.  This server's version was uploaded as "
                      "%s.  The run stays dirty until an operator runs "
                      "`tarnfs cache resolve %s`", name, key,
                      version[0] ? version : "(none: new run)", conflict_key,
                      name);
            if (kv_run_setmeta(kr, "conflict", conflict_key,
                               strlen(conflict_key)) == 0)
                kv_run_sync(kr);
            vfs_run_conflicted(v, r, conflict_key);
        }
    } else if (err) {
        log_error("vfs: write-back of run %s to %s (%s) failed: %s; it stays "
                  "dirty and is tried again", name, key, reason,
                  strerror(err));
    } else {
        /* Record the new version first: a crash after it leaves a dirty
         * run whose next write-back matches the object it just wrote. */
        crash_point("wb-uploaded");
        int merr = set_meta_str(kr, "source-version", oi.version);
        if (!merr)
            merr = kv_run_set_source_version(kr, oi.version);
        crash_point("wb-version-recorded");
        if (!merr && is_new) {
            merr = kv_run_delmeta(kr, "new");
            if (merr == ENOENT)
                merr = 0;
        }
        pthread_mutex_lock(&v->lock);
        bool unchanged = r->change_gen == gen;
        pthread_mutex_unlock(&v->lock);
        if (!merr) {
            merr = kv_run_delmeta(kr, WB_PENDING);
            if (merr == ENOENT)
                merr = 0;
        }
        if (!merr && unchanged)
            merr = kv_run_delmeta(kr, "dirty");
        if (!merr)
            merr = kv_run_sync(kr);
        crash_point("wb-dirty-cleared");
        if (merr)
            log_error("vfs: run %s was written back but recording that "
                      "failed: %s", name, strerror(merr));
        vfs_run_written(v, r, oi.version, is_new ? key : NULL,
                        !merr && unchanged);
        log_info("vfs: wrote back run %s as %s (%s): %llu members, %llu "
                 "bytes, version %s, sha256 %s, %lld ms", name, key, reason,
                 (unsigned long long)files, (unsigned long long)oi.size,
                 oi.version, oi.sha256,
                 (long long)(tclock_mono_ms() - t0));
        vfs_listings_expire(v);
    }
    pthread_rwlock_unlock(&r->change_lock);
    pthread_mutex_lock(&v->lock);
    r->writing_back = false;
    pthread_cond_broadcast(&r->cv);
    if (!err)
        v->stats.uploads++;
    else if (err == ECANCELED)
        v->stats.upload_conflicts++;
    else
        v->stats.upload_failures++;
    if (err) {
        /* Retried when idle, after a delay that doubles with every failure
         * in a row: a write-back that keeps failing is not a busy loop. */
        int64_t wait = backoff_ms(v, ++r->wb_failures);
        r->wb_retry_ms = tclock_mono_ms() + wait;
        if (err != ECANCELED)
            log_warn("vfs: write-back of run %s failed %u time(s) in a row; "
                     "next attempt in %lld s", name, r->wb_failures,
                     (long long)(wait / 1000));
    } else {
        r->wb_failures = 0;
        r->wb_retry_ms = 0;
    }
    pthread_mutex_unlock(&v->lock);
    vfs_run_release(v, &ref);
    pthread_mutex_lock(&v->lock);
    r->last_ref_ms = last_ref;
    pthread_mutex_unlock(&v->lock);
    return err;
}

void vfs_writeback_all(vfs *v, const char *reason)
{
    size_t n;
    char **names = vfs_dirty_runs(v, false, &n);
    for (size_t i = 0; i < n; i++)
        vfs_writeback_run(v, names[i], reason);
    vfs_free_names(names, n);
}

bool vfs_writeback_for_eviction(vfs *v)
{
    if (!v->backend || v->cfg.read_only)
        return false;
    char *name = NULL;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *best = NULL;
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            if (r->cached && r->dirty && !r->conflicted && !r->writing_back &&
                !r->pins && (!best || r->last_ref_ms < best->last_ref_ms))
                best = r;
    if (best)
        name = strdup(best->name);
    pthread_mutex_unlock(&v->lock);
    if (!name)
        return false;
    int err = vfs_writeback_run(v, name, "chosen for eviction");
    free(name);
    return err == 0;
}

void vfs_writeback_tick(vfs *v)
{
    size_t n;
    char **names = vfs_dirty_runs(v, true, &n);
    for (size_t i = 0; i < n; i++)
        vfs_writeback_run(v, names[i], "idle");
    vfs_free_names(names, n);
}
