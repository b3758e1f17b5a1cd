/* writeback.c: writes changed runs back to the backend as new tarballs (kv_export pushed into an upload with a version precondition), with conflicts; run create, delete and rename. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/crashpt.h"
#include "util/log.h"
#include "util/tarsuffix.h"
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

/* ---- the tar stream: kv_export pushed straight into the upload ------- */

struct push_state {
    fetch_upload *u;
    kv_run *kr;
    uint64_t bytes;
    int err;                    /* the upload's own error, if it failed */
};

/* The "wb-pending" metadata: "SHA256HEX SIZE" of the last tarball whose
 * upload to the run's own key got as far as its last byte.  Recorded (and
 * synced) before the backend makes the object visible, so after a crash
 * between that and recording the new version, the next write-back can tell
 * its own object (same SHA-256) from someone else's (a real conflict). */
#define WB_PENDING "wb-pending"

static int record_pending(struct push_state *ps)
{
    char hex[65], val[96];
    int err = fetch_upload_sha256(ps->u, hex);   /* fetch's hash: no second pass */
    if (err)
        return err;
    int n = snprintf(val, sizeof val, "%s %llu", hex, (unsigned long long)ps->bytes);
    err = kv_run_setmeta(ps->kr, WB_PENDING, val, (size_t)n);
    if (!err)
        err = kv_run_sync(ps->kr);
    return err;
}

static int push_tar(void *arg, const void *buf, size_t len)
{
    struct push_state *ps = arg;
    ps->bytes += len;
    return ps->err = fetch_upload_write(ps->u, buf, len);
}

/* Upload run kr as key; with pending, record the body as WB_PENDING before
 * the backend publishes it.  Errors: the upload's (ECANCELED:
 * precondition), kv_export's, ENOMEM. */
static int upload_run(vfs *v, kv_run *kr, const char *top, const char *key,
                      const struct fetch_put_opts *opts, bool pending,
                      struct fetch_objinfo *oi, uint64_t *files)
{
    struct push_state ps = { .kr = kr };
    int err = fetch_upload_begin(v->backend, key, opts, &ps.u);
    if (err)
        return err;
    int sx = tar_suffix_match(key, strlen(key), true, NULL);
    struct kv_export_result res;
    memset(&res, 0, sizeof res);
    err = kv_export(kr, top, sx >= 0 ? tar_suffixes[sx].filter : TAR_FILTER_NONE,
                    push_tar, &ps, &res);
    *files = res.files;
    if (err && !ps.err)
        log_error("vfs: writing run %s as a tarball failed: %s",
                  kv_run_name(kr), res.error);
    if (!err && pending)
        err = record_pending(&ps);
    if (err) {
        fetch_upload_abort(ps.u);
        return err;
    }
    return fetch_upload_commit(ps.u, oi);
}

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
        if (err == ENOENT) {
            pthread_mutex_lock(&v->lock);
            struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
            bool dirty = r && r->dirty;
            if (r && !r->h)
                r->dirty = false;
            pthread_mutex_unlock(&v->lock);
            if (dirty)
                log_error("vfs: run %s was marked changed but is not in the "
                          "cache any more", name);
            vfs_dirty_mark_remove(v, name);
        }
        return err;
    }
    struct vfs_run *r = ref.run;
    pthread_mutex_lock(&v->lock);
    if (!known)
        last_ref = r->last_ref_ms;
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
    err = upload_run(v, kr, top, key, &opts, true, &oi, &files);
    if (err == ECANCELED &&
        adopt_own_upload(v, kr, name, key, version, sizeof version)) {
        memset(&opts, 0, sizeof opts);
        opts.if_match = version;
        err = upload_run(v, kr, top, key, &opts, true, &oi, &files);
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
        int cerr = upload_run(v, kr, top, conflict_key, &co, false, &coi,
                              &files);
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
            pthread_mutex_lock(&v->lock);
            r->conflicted = true;
            int64_t since = r->dirty_since_ms;
            bool was_new = r->is_new;
            pthread_mutex_unlock(&v->lock);
            vfs_dirty_mark_write(v, name, since, conflict_key, was_new);
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
        pthread_mutex_lock(&v->lock);
        snprintf(r->version, sizeof r->version, "%s", oi.version);
        if (is_new) {
            free(r->key);
            r->key = strdup(key);
        }
        r->is_new = false;
        if (!merr && unchanged) {
            r->dirty = false;
            r->dirty_since_ms = 0;
        }
        pthread_mutex_unlock(&v->lock);
        if (!merr && unchanged)
            vfs_dirty_mark_remove(v, name);
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

int vfs_run_create_new(vfs *v, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    if (vfs_check_run_name(name))
        return EINVAL;
    char prefix[KV_RUNNAME_MAX + 1];
    const char *comp = vfs_split_name(name, prefix, sizeof prefix);
    struct vfs_listing *l;
    const struct vfs_entry *e;
    int err = vfs_listing_lookup(v, prefix, comp, &l, &e);
    if (err)
        return EIO;
    bool exists = e != NULL;
    vfs_listing_put(v, l);
    struct kv_runinfo ri;
    if (exists || kv_cache_runinfo(v->cache, name, &ri) == 0)
        return EEXIST;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
    if (r && (r->is_new || r->loading || r->cached || r->h))
        err = EEXIST;
    else if (!r)
        err = ENOMEM;
    else
        r->loading = true;              /* keeps loads out meanwhile */
    pthread_mutex_unlock(&v->lock);
    if (err)
        return err;
    kv_run *kr;
    err = kv_run_stage(v->cache, name, kv_ino_for(name, ""), &kr);
    if (!err) {
        struct kv_sattr s = { .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID,
                              .mode = mode & 07777, .uid = uid, .gid = gid };
        err = kv_setattr(kr, kv_run_root(kr), &s, NULL);
        if (!err)
            err = kv_run_setmeta(kr, "new", "1", 1);
        if (!err)
            err = kv_run_publish(kr, "");
        if (err)
            kv_run_abort(kr);
        else
            kv_run_close(kr);
    }
    pthread_mutex_lock(&v->lock);
    r->loading = false;
    r->load_gen++;
    r->load_err = err ? EIO : 0;
    if (!err) {
        r->is_new = true;
        r->cached = true;
        free(r->key);
        r->key = NULL;
        r->version[0] = '\0';
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&v->lock);
    if (err) {
        log_error("vfs: cannot create run %s: %s", name, strerror(err));
        return err == ENOSPC ? ENOSPC : EIO;
    }
    log_info("vfs: created run %s; it becomes an object at its first "
             "write-back", name);
    vfs_listing_refresh_now(v, prefix);
    return 0;
}

/* ---- deleting and renaming whole runs (run_delete_rename) ------------- */

/* Drop the run of ref from the cache after its object went away (the
 * caller holds its change lock exclusively). */
static void forget_run(vfs *v, struct vfs_ref *ref)
{
    struct vfs_run *r = ref->run;
    kv_run_delmeta(ref->h->kr, "dirty");
    vfs_dirty_mark_remove(v, r->name);
    int err = kv_cache_evict(v->cache, r->name);
    if (err && err != ENOENT)
        log_error("vfs: cannot drop run %s from the cache: %s", r->name,
                  strerror(err));
    pthread_mutex_lock(&v->lock);
    r->dirty = r->conflicted = r->is_new = false;
    r->dirty_since_ms = 0;
    r->cached = false;
    r->version_stale = true;        /* the next use loads it again: gone */
    r->version[0] = '\0';
    pthread_mutex_unlock(&v->lock);
}

static int any_entry(void *arg, const struct kv_dirent *de)
{
    (void)arg;
    (void)de;
    return 1;
}

/* Pin run name (fetching it if needed), make it whole (a run streaming in
 * is waited for; with with_data, the absent data of an index-first run is
 * fetched) and lock it against changes; refuses a conflicted run.  Runs
 * in the NFS handler, which cannot park: this waits, as the upload that
 * follows does.  Errors: ENOENT, EACCES, EIO, ENOSPC. */
static int lock_whole_run(vfs *v, const char *name, const char *op,
                          bool with_data, struct vfs_ref *ref)
{
    int err = vfs_run_acquire(v, name, 0, ref);
    if (err)
        return err == EINVAL ? ENOENT : err;
    /* Until its stream ends a run's tree is partial: an RMDIR would find
     * it empty, a RENAME would upload part of it. */
    err = vfs_stream_wait_end(v, ref);
    if (!err && with_data)
        err = vfs_lazy_fill_run(v, ref);
    if (err) {
        vfs_run_release(v, ref);
        return err == EINPROGRESS || err == EAGAIN ? EIO : err;
    }
    pthread_rwlock_wrlock(&ref->run->change_lock);
    pthread_mutex_lock(&v->lock);
    bool conflicted = ref->run->conflicted;
    pthread_mutex_unlock(&v->lock);
    if (conflicted) {
        log_warn("vfs: refusing %s of run %s: it is in conflict (see "
                 "`tarnfs cache resolve`)", op, name);
        pthread_rwlock_unlock(&ref->run->change_lock);
        vfs_run_release(v, ref);
        return EACCES;
    }
    return 0;
}

static void unlock_whole_run(vfs *v, struct vfs_ref *ref)
{
    pthread_rwlock_unlock(&ref->run->change_lock);
    vfs_run_release(v, ref);
}

int vfs_run_delete(vfs *v, const char *name)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    struct vfs_ref ref;
    int err = lock_whole_run(v, name, "rmdir", false, &ref);
    if (err)
        return err;
    if (kv_readdir(ref.h->kr, ref.h->root, 0, any_entry, NULL) == 1) {
        unlock_whole_run(v, &ref);
        return ENOTEMPTY;
    }
    pthread_mutex_lock(&v->lock);
    char *key = ref.run->key ? strdup(ref.run->key) : NULL;
    pthread_mutex_unlock(&v->lock);
    if (key) {
        err = fetch_delete(v->backend, key);
        if (err == ENOENT)
            err = 0;
        if (err)
            log_error("vfs: RMDIR of run %s: cannot delete %s: %s", name, key,
                      strerror(err));
    }
    if (!err) {
        forget_run(v, &ref);
        log_warn("vfs: run %s deleted through NFS (RMDIR; object %s removed "
                 "because run_delete_rename is on)", name, key ? key : "-");
    }
    free(key);
    unlock_whole_run(v, &ref);
    char prefix[KV_RUNNAME_MAX + 1];
    vfs_split_name(name, prefix, sizeof prefix);
    vfs_listing_refresh_now(v, prefix);
    return err ? EIO : 0;
}

int vfs_run_rename(vfs *v, const char *from, const char *to)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    if (vfs_check_run_name(to))
        return EINVAL;
    if (!strcmp(from, to))
        return 0;
    char to_prefix[KV_RUNNAME_MAX + 1], from_prefix[KV_RUNNAME_MAX + 1];
    const char *to_comp = vfs_split_name(to, to_prefix, sizeof to_prefix);
    vfs_split_name(from, from_prefix, sizeof from_prefix);
    struct vfs_listing *l;
    const struct vfs_entry *e;
    if (vfs_listing_lookup(v, to_prefix, to_comp, &l, &e))
        return EIO;
    bool exists = e != NULL;
    vfs_listing_put(v, l);
    struct kv_runinfo ri;
    if (exists || kv_cache_runinfo(v->cache, to, &ri) == 0)
        return EEXIST;
    struct vfs_ref ref;
    int err = lock_whole_run(v, from, "rename", true, &ref);
    if (err)
        return err;
    pthread_mutex_lock(&v->lock);
    char *old_key = ref.run->key ? strdup(ref.run->key) : NULL;
    pthread_mutex_unlock(&v->lock);
    /* Keep the object's compression: NAME.tar.gz stays a .tar.gz. */
    const char *suffix = ".tar";
    if (old_key && strlen(old_key) > strlen(from) &&
        !strncmp(old_key, from, strlen(from)))
        suffix = old_key + strlen(from);
    char new_key[KV_RUNNAME_MAX + 32];
    snprintf(new_key, sizeof new_key, "%s%s", to, suffix);
    struct fetch_put_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.if_none_match = true;
    struct fetch_objinfo oi;
    uint64_t files = 0;
    err = upload_run(v, ref.h->kr, to_comp, new_key, &opts, false, &oi,
                     &files);
    if (err == ECANCELED) {
        err = EEXIST;
    } else if (err) {
        log_error("vfs: RENAME of run %s to %s: upload failed: %s", from, to,
                  strerror(err));
        err = EIO;
    } else {
        int derr = old_key ? fetch_delete(v->backend, old_key) : 0;
        if (derr && derr != ENOENT)
            log_error("vfs: RENAME of run %s to %s: %s was written but %s "
                      "could not be deleted (%s): both exist now", from, to,
                      new_key, old_key, strerror(derr));
        forget_run(v, &ref);
        log_warn("vfs: run %s renamed to %s through NFS (object %s written, "
                 "%s removed, because run_delete_rename is on)", from, to,
                 new_key, old_key ? old_key : "-");
    }
    free(old_key);
    unlock_whole_run(v, &ref);
    vfs_listing_refresh_now(v, from_prefix);
    if (strcmp(from_prefix, to_prefix))
        vfs_listing_refresh_now(v, to_prefix);
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
