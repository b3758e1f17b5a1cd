/* runs.c: the per-run state table: pins runs for requests, shares one open
 * kv_run per run, loads a run on first use (open from the cache, or fetch
 * and ingest from the backend) exactly once however many requests ask, and
 * notices replaced tarballs. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/bug.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How often a request re-checks that its run's database is still the
 * published one. */
#define VFS_STALE_CHECK_MS 250

/* ---- table ---------------------------------------------------------- */

static int table_grow_locked(vfs *v)
{
    size_t nb = v->nbuckets ? v->nbuckets * 2 : 256;
    struct vfs_run **b = calloc(nb, sizeof *b);
    if (!b)
        return ENOMEM;
    for (size_t i = 0; i < v->nbuckets; i++) {
        struct vfs_run *r = v->buckets[i];
        while (r) {
            struct vfs_run *next = r->next;
            size_t j = r->hash & (nb - 1);
            r->next = b[j];
            b[j] = r;
            r = next;
        }
    }
    free(v->buckets);
    v->buckets = b;
    v->nbuckets = nb;
    return 0;
}

struct vfs_run *vfs_run_lookup_locked(vfs *v, const char *name, bool create)
{
    uint64_t h = vfs_hash_str(name);
    if (v->nbuckets) {
        for (struct vfs_run *r = v->buckets[h & (v->nbuckets - 1)]; r;
             r = r->next)
            if (r->hash == h && strcmp(r->name, name) == 0)
                return r;
    }
    if (!create)
        return NULL;
    if (v->nruns + 1 > v->nbuckets && table_grow_locked(v))
        return NULL;
    struct vfs_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->name = strdup(name);
    if (!r->name) {
        free(r);
        return NULL;
    }
    r->hash = h;
    pthread_cond_init(&r->cv, NULL);
    /* Writer preference: a write-back waiting for the changes in flight
     * must not be starved by a steady stream of new ones. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&r->change_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    size_t j = h & (v->nbuckets - 1);
    r->next = v->buckets[j];
    v->buckets[j] = r;
    v->nruns++;
    return r;
}

/* ---- handles -------------------------------------------------------- */

void vfs_handle_close(struct vfs_handle *h)
{
    if (!h)
        return;
    kv_run_close(h->kr);
    vfs_stream_free(h->stream);
    free(h);
}

struct vfs_handle *vfs_handle_put_locked(vfs *v, struct vfs_handle *h)
{
    if (!h || BUG_ON(h->users <= 0))
        return NULL;
    h->users--;
    h->last_used_ms = tclock_mono_ms();
    if (h->retired && h->users == 0) {
        v->open_handles--;
        return h;
    }
    return NULL;
}

struct vfs_handle *vfs_run_retire_locked(vfs *v, struct vfs_run *r)
{
    struct vfs_handle *h = r->h;
    r->h = NULL;
    if (!h)
        return NULL;
    h->retired = true;
    if (h->users == 0) {
        v->open_handles--;
        return h;
    }
    return NULL;
}

/* ---- loading -------------------------------------------------------- */

struct fetch_feed {
    fetch_stream *s;
    uint64_t bytes;
    int err;
    struct vfs_tee *tee;        /* also scanned into an index */
};

static ssize_t feed_read(void *arg, void *buf, size_t cap)
{
    struct fetch_feed *f = arg;
    ssize_t n = fetch_read(f->s, buf, cap);
    if (n > 0) {
        f->bytes += (uint64_t)n;
        if (f->tee)
            vfs_tee_push(f->tee, buf, (size_t)n);
    } else if (n < 0) {
        f->err = (int)-n;
    }
    return n;
}

/* The bytes a run being fetched may take: the cache limit less the runs
 * that cannot be evicted to make room for it now (pinned by a request,
 * being loaded, or changed and not written back); 0 without a limit.  At
 * least 1 with a limit, so a full cache refuses rather than goes unlimited.
 * kv_ingest_limited stops at it as it reads (issue 12, finding 12). */
static uint64_t ingest_headroom(vfs *v, const char *name)
{
    uint64_t limit = v->cfg.cache_limit_bytes;
    if (!limit)
        return 0;
    uint64_t held = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            if (r->cached && strcmp(r->name, name) != 0 &&
                (r->pins > 0 || r->loading || r->dirty))
                held += r->bytes;
    pthread_mutex_unlock(&v->lock);
    return held < limit ? limit - held : 1;
}

/* Stream the object key into a new published run r->name.  With oi (the
 * object as stat'ed) and index_upload set, an uncompressed tarball's index
 * is made on the way and stored as its sidecar.  Errors: ENOENT (the
 * object is gone), EAGAIN (cancelled: shutting down), EIO (anything else, a run
 * bigger than the cache limit allows included; logged). */
static int fetch_and_ingest(vfs *v, struct vfs_run *r, const char *key,
                            const char *version,
                            const struct fetch_objinfo *oi, bool *served)
{
    *served = false;
    /* Served from its first member on (stream.c), unless the whole run is
     * wanted first (prefetch = whole). */
    struct vfs_stream *st = v->cfg.prefetch_whole ? NULL
                                                  : vfs_stream_new(v, r, key, version);
    kv_run *kr = NULL;
    int ret = 0;
    const char *name = r->name;
    pthread_mutex_lock(&v->lock);
    v->stats.fetches++;
    pthread_mutex_unlock(&v->lock);
    int64_t t0 = tclock_mono_ms();
    struct fetch_feed feed = { 0 };
    size_t klen = strlen(key);
    bool make_index = oi && v->cfg.index_upload && klen > 4 && strcmp(key + klen - 4, ".tar") == 0;
    int err = fetch_get(v->backend, key, 0, 0, &feed.s);
    struct kv_ingest_result res;
    memset(&res, 0, sizeof res);
    if (!err) {
        struct vfs_xfer x;          /* vfs_cancel may cancel it now */
        vfs_xfer_begin(v, &x, feed.s);
        if (make_index)
            feed.tee = vfs_tee_start(oi);
        if (st) {
            struct kv_ingest_watch w;
            vfs_stream_watch(st, &w);
            err = kv_ingest_stream(v->cache, name, feed_read, &feed, version,
                                   ingest_headroom(v, name), &w, &kr, &res);
        } else {
            err = kv_ingest_limited(v->cache, name, feed_read, &feed, version,
                                    ingest_headroom(v, name), &res);
        }
        /* The rest of the object (end-of-archive padding) is the scan's
         * too: its SHA-256 and size cover every byte. */
        int terr = err;
        while (!terr && feed.tee) {
            char tail[65536];
            ssize_t n = feed_read(&feed, tail, sizeof tail);
            if (n <= 0) {
                terr = n < 0 ? EIO : 0;
                break;
            }
        }
        vfs_tee_finish(v, feed.tee, terr, key, true);
        vfs_xfer_end(v, &x);
        fetch_stream_close(feed.s);
    }
    pthread_mutex_lock(&v->lock);
    v->stats.bytes_fetched += feed.bytes;
    if (err) {
        v->stats.fetch_failures++;
        v->stats.run_fetch_failures++;
    }
    pthread_mutex_unlock(&v->lock);
    if (err == ENOENT && !feed.bytes) {
        log_warn("vfs: %s disappeared from the backend", key);
        ret = ENOENT;
    } else if (err && feed.err == ECANCELED) {
        log_info("vfs: fetch of run %s cancelled (shutting down)", name);
        ret = EAGAIN;
    } else if (err && feed.err == ETIMEDOUT) {
        log_error("vfs: fetch of run %s from %s abandoned: the backend sent "
                  "no bytes for %u ms (fetch_stall_timeout); the next access "
                  "tries again", name, key, v->stall_timeout_ms);
        ret = EIO;
    } else if (err) {
        log_error("vfs: fetch of run %s from %s failed: %s%s%s%s%s", name,
                  key, strerror(err), res.error[0] ? ": " : "", res.error,
                  feed.err ? "; transfer: " : "",
                  feed.err ? strerror(feed.err) : "");
        ret = EIO;
    } else {
        log_info("vfs: fetched run %s from %s (%s): %llu bytes, %llu files "
                 "in %lld ms%s", name, key, version,
                 (unsigned long long)feed.bytes,
                 (unsigned long long)res.files,
                 (long long)(tclock_mono_ms() - t0),
                 st ? ", served while streaming" : "");
    }
    if (st && vfs_stream_end(v, st, kr, ret, served) && ret)
        log_error("vfs: run %s withdrawn: what was served while it streamed "
                  "is gone, waiting calls get EIO; the next access fetches "
                  "it again", name);
    return ret;
}

/* What a load found, copied back into the run under the lock. */
struct load_result {
    struct vfs_handle *h;
    char version[128];
    char *key;
    bool fetched, dirty, conflicted, is_new;
    bool streamed;              /* r->h was installed while streaming */
    uint64_t created_ns;
    int64_t dirty_since_ms;
    uint64_t bytes;
};

static int open_handle(vfs *v, const char *name, struct load_result *lr)
{
    kv_run *kr;
    int err = kv_run_open(v->cache, name, &kr);
    if (err)
        return err;
    struct vfs_handle *h = calloc(1, sizeof *h);
    if (!h) {
        kv_run_close(kr);
        return ENOMEM;
    }
    h->kr = kr;
    h->root = kv_run_root(kr);
    h->last_used_ms = tclock_mono_ms();
    h->stale_checked_ms = h->last_used_ms;
    struct kv_runinfo ri;
    if (kv_cache_runinfo(v->cache, name, &ri) == 0) {
        h->opened_created_ns = (uint64_t)ri.created.tv_sec * 1000000000u +
                               (uint64_t)ri.created.tv_nsec;
        snprintf(lr->version, sizeof lr->version, "%s", ri.source_version);
        lr->bytes = ri.bytes;
    }
    /* Modified by an earlier, writable server: never evict or replace it
     * before it is written back (issue 8), even when serving read-only. */
    char flag[32];
    size_t flen;
    lr->is_new = kv_run_getmeta(kr, "new", flag, sizeof flag - 1, &flen) == 0;
    lr->dirty = kv_run_getmeta(kr, "dirty", flag, sizeof flag - 1, &flen) == 0;
    if (lr->dirty) {
        flag[flen < sizeof flag - 1 ? flen : sizeof flag - 1] = '\0';
        lr->dirty_since_ms = strtoll(flag, NULL, 10);
        char ck[8];
        lr->conflicted = kv_run_getmeta(kr, "conflict", ck, sizeof ck,
                                        &flen) == 0;
    }
    /* A written-back run's version is the object it uploaded, newer than
     * the one recorded when it was ingested. */
    char ver[128];
    if (kv_run_getmeta(kr, "source-version", ver, sizeof ver - 1, &flen) == 0 &&
        flen < sizeof ver) {
        ver[flen] = '\0';
        snprintf(lr->version, sizeof lr->version, "%s", ver);
    }
    lr->h = h;
    return 0;
}

/* Load run r (the caller owns r->loading; no lock held).  stale: the cached
 * copy is known to be an old version. */
static int run_load(vfs *v, struct vfs_run *r, unsigned flags, bool stale,
                    struct load_result *lr)
{
    char key[1024] = "", version[128] = "";
    bool listed = false;
    if (v->backend) {
        char prefix[KV_RUNNAME_MAX + 1];
        const char *comp = vfs_split_name(r->name, prefix, sizeof prefix);
        struct vfs_listing *l;
        const struct vfs_entry *e;
        int err = vfs_listing_lookup(v, prefix, comp, &l, &e);
        if (err == 0 && e && !e->is_dir && !e->key) {
            /* Created here, not written back yet: only the cache has it. */
            vfs_listing_put(v, l);
            err = open_handle(v, r->name, lr);
            return err == ENOENT ? ENOENT : err ? EIO : 0;
        }
        if (err == 0) {
            if (e && !e->is_dir) {
                snprintf(key, sizeof key, "%s", e->key);
                snprintf(version, sizeof version, "%s", e->version);
                listed = true;
                lr->key = strdup(key);
            }
            vfs_listing_put(v, l);
            if (!listed)
                return ENOENT;
        } else {
            /* The backend cannot be listed: a cached copy is still served. */
            stale = false;
        }
    }
    if (stale) {
        /* A changed run is never replaced by the backend's version: the
         * write-back decides (a conflict, doc/design.md (writeback)). */
        if (open_handle(v, r->name, lr) == 0) {
            if (lr->dirty)
                return 0;
            vfs_handle_close(lr->h);
            lr->h = NULL;
        }
    } else {
        int err = open_handle(v, r->name, lr);
        if (err == 0) {
            if (!listed || !lr->version[0] ||
                strcmp(lr->version, version) == 0 || lr->dirty)
                return 0;
            log_info("vfs: cached run %s is version %s, the backend has %s",
                     r->name, lr->version, version);
            vfs_handle_close(lr->h);
            lr->h = NULL;
        } else if (err != ENOENT) {
            log_error("vfs: cannot open cached run %s: %s", r->name,
                      strerror(err));
            return EIO;
        } else if (!listed) {
            return v->backend ? EIO : ENOENT;
        }
    }
    if (flags & VFS_ACQ_NOFETCH)
        return ENOENT;
    /* The listing may be older than the object (that is often why we are
     * fetching again): record the version the backend has now. */
    struct fetch_objinfo oi;
    int err = fetch_stat(v->backend, key, &oi);
    if (err == ENOENT)
        return ENOENT;
    if (err == 0)
        snprintf(version, sizeof version, "%s", oi.version);
    /* Index-first: one GET of the sidecar makes the whole tree available;
     * file data follows on read.  Without a usable index (or without a
     * stat to check it against), the whole tarball. */
    bool served = false;
    bool small = err == 0 && v->cfg.prefetch_auto && oi.size <= v->cfg.prefetch_whole_below;
    if (small)
        log_info("vfs: run %s: its tarball (%llu bytes) is no larger than "
                 "prefetch_whole_below: fetched whole, served while it streams",
                 r->name, (unsigned long long)oi.size);
    if (err != 0)
        err = fetch_and_ingest(v, r, key, version, NULL, &served);
    else if (v->cfg.prefetch_whole || small ||
             vfs_lazy_load_index(v, r, key, &oi, &served) != 0)
        err = fetch_and_ingest(v, r, key, version, &oi, &served);
    if (err)
        return err;
    lr->fetched = true;
    if (served) {
        /* Already r's handle (stream.c); now published. */
        struct kv_runinfo ri;
        if (kv_cache_runinfo(v->cache, r->name, &ri) == 0) {
            lr->created_ns = (uint64_t)ri.created.tv_sec * 1000000000u +
                             (uint64_t)ri.created.tv_nsec;
            snprintf(lr->version, sizeof lr->version, "%s",
                     ri.source_version);
            lr->bytes = ri.bytes;
        }
        lr->streamed = true;
        vfs_house_kick(v);
        return 0;
    }
    err = open_handle(v, r->name, lr);
    if (err) {
        log_error("vfs: cannot open run %s right after ingest: %s", r->name,
                  strerror(err));
        return EIO;
    }
    vfs_house_kick(v);
    return 0;
}

/* Compare r's cached version with the backend's (r->checking owned by the
 * caller; no lock held).  Returns true if the backend has another one. */
static bool version_changed(vfs *v, const char *name, const char *key,
                            const char *version)
{
    struct fetch_objinfo oi;
    int err = fetch_stat(v->backend, key, &oi);
    if (err == ENOENT) {
        log_info("vfs: %s was removed from the backend", key);
        return true;
    }
    if (err) {
        log_debug("vfs: cannot check version of %s: %s", key, strerror(err));
        return false;
    }
    if (strcmp(oi.version, version) != 0) {
        log_info("vfs: run %s changed in the backend (%s -> %s); fetching it "
                 "again", name, version, oi.version);
        return true;
    }
    return false;
}

/* A load of r ended with err (lock held): record it and wake the blocked
 * callers.  Returns the parked callers to call back once unlocked. */
static struct vfs_waiter *load_finish_locked(vfs *v, struct vfs_run *r,
                                             unsigned flags, int err,
                                             struct load_result *lr)
{
    r->loading = false;
    r->load_gen++;
    r->load_err = err;
    pthread_cond_broadcast(&r->cv);
    struct vfs_waiter *w = r->waiters;
    r->waiters = NULL;
    if (err) {
        free(lr->key);
        if (err == ENOENT && !(flags & VFS_ACQ_NOFETCH))
            r->cached = false;
        return w;
    }
    if (lr->streamed && r->version_stale) {
        /* Served since staging, and dropped meanwhile (a run-level RMDIR
         * or RENAME, a newer version seen): that stands. */
        free(lr->key);
        return w;
    }
    if (lr->streamed) {
        if (r->h)
            r->h->opened_created_ns = lr->created_ns;
    } else {
        r->h = lr->h;
        v->open_handles++;
    }
    r->cached = true;
    r->version_stale = false;
    r->dirty = lr->dirty;
    r->conflicted = lr->dirty && lr->conflicted;
    r->is_new = lr->is_new;
    if (lr->dirty) {
        if (!r->dirty_since_ms)
            r->dirty_since_ms = lr->dirty_since_ms;
    }
    r->bytes = lr->bytes;
    r->no_data = false;         /* unknown: eviction looks */
    r->free_inside = 0;         /* unknown: counted as used */
    snprintf(r->version, sizeof r->version, "%s", lr->version);
    if (lr->key) {
        free(r->key);
        r->key = lr->key;
    }
    r->checked_ms = tclock_mono_ms();
    return w;
}

/* A load of a run on a fetch thread, for parked callers. */
struct load_job {
    struct vfs_run *r;
    unsigned flags;
    bool stale;
};

static void load_job_run(vfs *v, void *arg)
{
    struct load_job *lj = arg;
    struct vfs_run *r = lj->r;
    struct load_result lr;
    memset(&lr, 0, sizeof lr);
    pthread_mutex_lock(&v->lock);
    bool cancelled = v->cancelled;
    pthread_mutex_unlock(&v->lock);
    int err = cancelled ? EAGAIN : run_load(v, r, lj->flags, lj->stale, &lr);
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = load_finish_locked(v, r, lj->flags, err, &lr);
    if (!err && lr.fetched)
        v->stats.misses++;
    r->pins--;
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, err);
    free(lj);
}

/* A version check on a fetch thread, for a caller that must not wait. */
struct check_job {
    struct vfs_run *r;
    char *key;
    char version[128];
};

static void check_job_run(vfs *v, void *arg)
{
    struct check_job *cj = arg;
    struct vfs_run *r = cj->r;
    pthread_mutex_lock(&v->lock);
    bool cancelled = v->cancelled;
    pthread_mutex_unlock(&v->lock);
    bool changed = !cancelled &&
                   version_changed(v, r->name, cj->key, cj->version);
    pthread_mutex_lock(&v->lock);
    r->checking = false;
    r->checked_ms = tclock_mono_ms();
    if (changed && strcmp(cj->version, r->version) == 0)
        r->version_stale = true;
    struct vfs_waiter *w = r->waiters;
    r->waiters = NULL;
    r->pins--;
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, 0);
    free(cj->key);
    free(cj);
}

int vfs_run_acquire(vfs *v, const char *name, unsigned flags,
                    struct vfs_ref *ref)
{
    struct vfs_park *park = vfs_park_slot();
    if (vfs_check_run_name(name))
        return EINVAL;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
    if (!r) {
        pthread_mutex_unlock(&v->lock);
        return ENOMEM;
    }
    r->pins++;
    bool missed = false;
    int err = 0;
    for (;;) {
        if (r->loading && park && (flags & VFS_ACQ_NOFETCH)) {
            /* Only asking for what is cached (a root listing's attributes):
             * a run still loading is not, and nobody waits for it. */
            err = ENOENT;
            break;
        }
        if (r->loading && park) {
            /* Called back when the load ends; the call is run again. */
            err = vfs_park_locked(v, &r->waiters);
            break;
        }
        if (r->loading || r->evicting) {
            unsigned gen = r->load_gen;
            bool was_loading = r->loading;
            while (r->loading || r->evicting)
                pthread_cond_wait(&r->cv, &v->lock);
            if (was_loading && r->load_gen != gen) {
                if (r->load_err && !r->load_nofetch) {
                    /* Share the failure of the load we waited for; the next
                     * request tries again. */
                    err = r->load_err;
                    break;
                }
                missed = true;
            }
            continue;
        }
        if (r->h && !r->version_stale) {
            int64_t now = tclock_mono_ms();
            /* A run without a recorded version (ingested by hand) is
             * taken as current, as run_load does. */
            struct vfs_ref probe = { .run = r, .h = r->h };
            bool streaming = vfs_stream_active(&probe);
            if (v->backend && r->key && r->version[0] && !r->checking &&
                !streaming &&
                now - r->checked_ms >= (int64_t)v->list_ttl_ms &&
                !r->dirty && !(flags & VFS_ACQ_NOFETCH)) {
                r->checking = true;
                if (park) {
                    /* The HEAD request goes to a fetch thread, and this
                     * call is served from the cached copy meanwhile (as
                     * listings are): a cached run never waits behind the
                     * backend, however slow.  A replaced tarball is seen
                     * by the calls after the check. */
                    struct check_job *cj = calloc(1, sizeof *cj);
                    if (cj && (cj->key = strdup(r->key)) != NULL) {
                        cj->r = r;
                        snprintf(cj->version, sizeof cj->version, "%s",
                                 r->version);
                        if (vfs_pool_submit_locked(v, check_job_run, cj) == 0) {
                            r->pins++;
                            continue;
                        }
                        free(cj->key);
                    }
                    free(cj);
                    /* No check now (cancelled, out of memory). */
                    r->checking = false;
                    r->checked_ms = now;
                    continue;
                }
                char *key = strdup(r->key);
                char version[128];
                snprintf(version, sizeof version, "%s", r->version);
                pthread_mutex_unlock(&v->lock);
                bool changed = key && version_changed(v, name, key, version);
                free(key);
                pthread_mutex_lock(&v->lock);
                r->checking = false;
                r->checked_ms = tclock_mono_ms();
                if (changed && strcmp(version, r->version) == 0)
                    r->version_stale = true;
                continue;
            }
            struct vfs_handle *h = r->h;
            h->users++;
            if (!streaming && now - h->stale_checked_ms >= VFS_STALE_CHECK_MS) {
                /* Evicted or replaced by another process (`tarnfs cache
                 * evict`, `tarnfs ingest`)?  One fstat, a few times a
                 * second at most, so the next request after that sees it. */
                h->stale_checked_ms = now;
                pthread_mutex_unlock(&v->lock);
                bool gone = kv_run_stale(h->kr);
                pthread_mutex_lock(&v->lock);
                if (gone) {
                    struct vfs_handle *old = vfs_handle_put_locked(v, h);
                    if (r->h == h && !r->loading && !r->evicting) {
                        log_info("vfs: run %s was evicted or replaced "
                                 "outside this server; opening it again",
                                 name);
                        struct vfs_handle *o2 = vfs_run_retire_locked(v, r);
                        if (o2)
                            old = o2;
                    }
                    pthread_mutex_unlock(&v->lock);
                    vfs_handle_close(old);
                    pthread_mutex_lock(&v->lock);
                    continue;
                }
                if (r->h != h) {        /* replaced meanwhile: take the new */
                    struct vfs_handle *old = vfs_handle_put_locked(v, h);
                    pthread_mutex_unlock(&v->lock);
                    vfs_handle_close(old);
                    pthread_mutex_lock(&v->lock);
                    continue;
                }
            }
            ref->run = r;
            ref->h = h;
            ref->changing = false;
            r->last_ref_ms = tclock_wall_ms();
            if (!(flags & VFS_ACQ_NOFETCH)) {
                if (missed)
                    v->stats.misses++;
                else
                    v->stats.hits++;
            }
            pthread_mutex_unlock(&v->lock);
            return 0;
        }
        if (park && park->wake_err && !park->parked) {
            /* The load this call was parked on failed: report that once
             * (as the callers blocked on it see it); the next call tries
             * again. */
            err = park->wake_err == ECANCELED ? EAGAIN : park->wake_err;
            park->wake_err = 0;
            break;
        }
        /* Load it: this thread does the I/O (a parked caller's load runs
         * on a fetch thread), the others wait on r->cv or park. */
        r->loading = true;
        r->load_nofetch = (flags & VFS_ACQ_NOFETCH) != 0;
        bool stale = r->version_stale;
        struct vfs_handle *old = vfs_run_retire_locked(v, r);
        if (!(flags & VFS_ACQ_NOFETCH)) {
            /* On a fetch thread, also for a caller that blocks: a run
             * served while it streams in is there long before its load
             * job ends (stream.c), and a blocked caller must not be the
             * one ingesting it. */
            struct load_job *lj = malloc(sizeof *lj);
            int serr = lj ? 0 : ENOMEM;
            if (lj) {
                *lj = (struct load_job){ .r = r, .flags = flags,
                                         .stale = stale };
                serr = vfs_pool_submit_locked(v, load_job_run, lj);
            }
            if (serr) {
                free(lj);
                struct load_result none;
                memset(&none, 0, sizeof none);
                struct vfs_waiter *w = load_finish_locked(v, r, flags,
                                                          EAGAIN, &none);
                pthread_mutex_unlock(&v->lock);
                vfs_handle_close(old);
                vfs_park_wake(w, EAGAIN);
                pthread_mutex_lock(&v->lock);
                err = EAGAIN;
                break;
            }
            r->pins++;                  /* the job's */
            if (park)
                err = vfs_park_locked(v, &r->waiters);
            /* The job's load is the one after gen: read before the lock is
             * let go, since a load that fails at once may end before it is
             * taken again (read after, its failure went unseen and the
             * load was started again, in a loop). */
            unsigned gen = r->load_gen;
            pthread_mutex_unlock(&v->lock);
            vfs_handle_close(old);
            pthread_mutex_lock(&v->lock);
            if (park)
                break;
            /* Blocked: wait on r->cv above, as for another's load. */
            while (r->loading && r->load_gen == gen)
                pthread_cond_wait(&r->cv, &v->lock);
            if (r->load_gen != gen) {
                if (r->load_err) {
                    err = r->load_err;
                    break;
                }
                missed = true;
            }
            continue;
        }
        pthread_mutex_unlock(&v->lock);
        vfs_handle_close(old);
        struct load_result lr;
        memset(&lr, 0, sizeof lr);
        /* A load from the cache alone (NOFETCH) is local I/O: done here,
         * even for a parkable call. */
        struct vfs_park *held = vfs_park_suspend();
        err = run_load(v, r, flags, stale, &lr);
        vfs_park_restore(held);
        pthread_mutex_lock(&v->lock);
        struct vfs_waiter *w = load_finish_locked(v, r, flags, err, &lr);
        if (w) {
            pthread_mutex_unlock(&v->lock);
            vfs_park_wake(w, err);
            pthread_mutex_lock(&v->lock);
        }
        if (err)
            break;
        if (lr.fetched)
            missed = true;
    }
    r->pins--;
    pthread_mutex_unlock(&v->lock);
    return err;
}

bool vfs_run_is_cached(vfs *v, const char *name)
{
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
    bool cached = r && (r->cached || r->h);
    pthread_mutex_unlock(&v->lock);
    return cached;
}

void vfs_run_release(vfs *v, struct vfs_ref *ref)
{
    if (!ref->run)
        return;
    if (ref->changing) {
        pthread_rwlock_unlock(&ref->run->change_lock);
        ref->changing = false;
    }
    pthread_mutex_lock(&v->lock);
    struct vfs_handle *h = vfs_handle_put_locked(v, ref->h);
    if (!BUG_ON(ref->run->pins <= 0))
        ref->run->pins--;
    ref->run->last_ref_ms = tclock_wall_ms();
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(h);
    ref->run = NULL;
    ref->h = NULL;
}

int vfs_run_change_begin(vfs *v, struct vfs_ref *ref)
{
    (void)v;
    /* A write-back streams the run under the exclusive lock; a change
     * that would wait long ties up a server thread, so the client is told
     * to retry instead (EAGAIN is NFS3ERR_JUKEBOX). */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);   /* a clock step changes nothing */
    until.tv_sec += VFS_CHANGE_WAIT_S;
    int err = pthread_rwlock_clockrdlock(&ref->run->change_lock, CLOCK_MONOTONIC, &until);
    if (err) {
        vfs_run_release(v, ref);
        return err == ETIMEDOUT ? EAGAIN : err;
    }
    ref->changing = true;
    /* A `tarnfs ingest` is replacing the run: a change now would be lost
     * when it publishes.  The client retries; a holder that died without
     * letting go (kill -9) no longer counts. */
    pid_t holder = ref->run->held_by;             /* atomic reads */
    bool retired = ref->h && ref->h->retired;
    if (holder && !(kill(holder, 0) == 0 || errno == EPERM)) {
        pthread_mutex_lock(&v->lock);
        if (ref->run->held_by == holder)
            ref->run->held_by = 0;
        pthread_mutex_unlock(&v->lock);
        log_warn("vfs: the tarnfs ingest (pid %ld) that held run %s ended "
                 "without letting it go", (long)holder, ref->run->name);
        holder = 0;
    }
    if (holder || retired) {    /* retired: replaced; reopen and retry */
        vfs_run_release(v, ref);
        return EAGAIN;
    }
    /* A run still streaming in is whole only at its end (vfs_prepare
     * waits for that where the caller may park). */
    if (vfs_stream_active(ref)) {
        vfs_run_release(v, ref);
        return EAGAIN;
    }
    /* A run built from its index is made whole before its first change,
     * so a change and its write-back always see every byte. */
    if ((err = vfs_lazy_fill_run(v, ref)) != 0) {
        vfs_run_release(v, ref);
        return err;
    }
    return 0;
}

int vfs_run_mark_dirty(vfs *v, struct vfs_ref *ref)
{
    struct vfs_run *r = ref->run;
    pthread_mutex_lock(&v->lock);
    bool first = !r->dirty;
    r->dirty = true;
    r->change_gen++;
    r->last_change_ms = tclock_mono_ms();
    if (first)
        r->dirty_since_ms = vfs_wall_ms();
    int64_t since = r->dirty_since_ms;
    bool is_new = r->is_new;
    bool store = first || r->dirty_unstored;
    pthread_mutex_unlock(&v->lock);
    if (!store)
        return 0;
    /* The mark file first (so `tarnfs cache ls` and a restart find it),
     * then the metadata, which is the truth: a crash in between leaves a
     * mark without metadata, which the next open drops. */
    if (first)
        vfs_dirty_mark_write(v, r->name, since, NULL, is_new);
    char val[32];
    int n = snprintf(val, sizeof val, "%lld", (long long)since);
    int err = kv_run_setmeta(ref->h->kr, "dirty", val, (size_t)n);
    pthread_mutex_lock(&v->lock);
    r->dirty_unstored = err != 0;
    pthread_mutex_unlock(&v->lock);
    if (err)
        log_error("vfs: cannot mark run %s modified: %s; the change is "
                  "reported failed (a restart would not write it back)",
                  r->name, strerror(err));
    return err;
}

/* ---- cache scan ----------------------------------------------------- */

struct scan_ctx {
    vfs *v;
    unsigned gen;
};

static int scan_cb(void *arg, const struct kv_runinfo *ri)
{
    struct scan_ctx *sc = arg;
    vfs *v = sc->v;
    char marker[PATH_MAX];
    struct stat st;
    int64_t persisted = 0;
    vfs_marker_path(v->meta_dir, ri->name, marker, sizeof marker);
    if (stat(marker, &st) == 0)
        persisted = (int64_t)st.st_mtim.tv_sec * 1000 +
                    st.st_mtim.tv_nsec / 1000000;
    else
        persisted = (int64_t)ri->created.tv_sec * 1000 +
                    ri->created.tv_nsec / 1000000;
    /* Real time, as stored.  Not moved by the test clock's offset: that
     * would make a run just fetched look referenced in the future (its
     * grace starting again), while leaving it out only ever makes a
     * reference look older than it was by the advances made before it,
     * and the time of a reference this process made is kept in memory. */
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, ri->name, true);
    if (r) {
        r->scan_gen = sc->gen;
        r->cached = true;
        r->bytes = ri->bytes;
        if (!r->h)
            snprintf(r->version, sizeof r->version, "%s", ri->source_version);
        if (r->last_ref_ms < persisted) {
            r->last_ref_ms = persisted;
            r->last_ref_saved_ms = persisted;
        }
    }
    pthread_mutex_unlock(&v->lock);
    return 0;
}

int vfs_runs_scan_cache(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    struct scan_ctx sc = { .v = v, .gen = ++v->scan_gen };
    pthread_mutex_unlock(&v->lock);
    int err = kv_cache_list(v->cache, scan_cb, &sc);
    if (err)
        return err;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            if (r->scan_gen != sc.gen && !r->loading && !r->h)
                r->cached = false;
    pthread_mutex_unlock(&v->lock);
    return 0;
}

void vfs_runs_free(vfs *v)
{
    for (size_t i = 0; i < v->nbuckets; i++) {
        struct vfs_run *r = v->buckets[i];
        while (r) {
            struct vfs_run *next = r->next;
            if (r->h) {
                kv_run_close(r->h->kr);
                vfs_stream_free(r->h->stream);
                free(r->h);
            }
            pthread_cond_destroy(&r->cv);
            pthread_rwlock_destroy(&r->change_lock);
            free(r->name);
            free(r->key);
            free(r);
            r = next;
        }
    }
    free(v->buckets);
    v->buckets = NULL;
    v->nbuckets = v->nruns = 0;
}
