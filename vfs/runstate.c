/* runstate.c: every change of a run's state: load (open, fetch, ingest, version checks), eviction (whole or data only), forget, create, delete, rename, and what a write-back found. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often a request re-checks that its run's database is still the
 * published one. */
#define VFS_STALE_CHECK_MS 250

/* ---- loading -------------------------------------------------------- */

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
    /* A small tarball (prefetch = auto) is fetched whole, and appears once
     * whole, as with prefetch = whole: its index may not even be looked
     * at, and a run served while it streams lists partial directories. */
    bool small = err == 0 && v->cfg.prefetch_auto && oi.size <= v->cfg.prefetch_whole_below;
    bool serve = !v->cfg.prefetch_whole && !small;
    if (small)
        log_info("vfs: run %s: its tarball (%llu bytes) is no larger than "
                 "prefetch_whole_below: fetched whole before it is served",
                 r->name, (unsigned long long)oi.size);
    if (err != 0)
        err = vfs_download_run(v, r, key, version, NULL, serve, &served);
    else if (v->cfg.prefetch_whole || small ||
             vfs_lazy_load_index(v, r, key, &oi, &served) != 0)
        err = vfs_download_run(v, r, key, version, &oi, serve, &served);
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

/* Check r's cached version against the backend now (lock held, r->h set,
 * no check in flight; now: tclock_mono_ms()): with park on a fetch thread
 * (r pinned by the job until it ends; the caller is served from the copy
 * meanwhile), else inline, dropping the lock; sets r->version_stale if the
 * backend has another version. */
static void check_locked(vfs *v, struct vfs_run *r, struct vfs_park *park,
                         int64_t now)
{
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
                return;
            }
            free(cj->key);
        }
        free(cj);
        /* No check now (cancelled, out of memory). */
        r->checking = false;
        r->checked_ms = now;
        return;
    }
    char *key = strdup(r->key);
    char version[128];
    snprintf(version, sizeof version, "%s", r->version);
    pthread_mutex_unlock(&v->lock);
    bool changed = key && version_changed(v, r->name, key, version);
    free(key);
    pthread_mutex_lock(&v->lock);
    r->checking = false;
    r->checked_ms = tclock_mono_ms();
    if (changed && strcmp(version, r->version) == 0)
        r->version_stale = true;
}

/* Load r for vfs_run_acquire (lock held, r pinned, not loading nor
 * evicting): retire its handle and load it again, on a fetch thread
 * (parked or waited for) or inline (VFS_ACQ_NOFETCH).  Returns 0 (look at
 * r again; *missed set if a load fetched it), or the error to give the
 * caller: EINPROGRESS (parked), EAGAIN, the load's error. */
static int load_locked(vfs *v, struct vfs_run *r, unsigned flags,
                       struct vfs_park *park, bool *missed)
{
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
            return EAGAIN;
        }
        r->pins++;                  /* the job's */
        int err = 0;
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
            return err;
        /* Blocked: wait on r->cv, as vfs_run_acquire does for another's
         * load. */
        while (r->loading && r->load_gen == gen)
            pthread_cond_wait(&r->cv, &v->lock);
        if (r->load_gen != gen) {
            if (r->load_err)
                return r->load_err;
            *missed = true;
        }
        return 0;
    }
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(old);
    struct load_result lr;
    memset(&lr, 0, sizeof lr);
    /* A load from the cache alone (NOFETCH) is local I/O: done here,
     * even for a parkable call. */
    struct vfs_park *held = vfs_park_suspend();
    int err = run_load(v, r, flags, stale, &lr);
    vfs_park_restore(held);
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = load_finish_locked(v, r, flags, err, &lr);
    if (w) {
        pthread_mutex_unlock(&v->lock);
        vfs_park_wake(w, err);
        pthread_mutex_lock(&v->lock);
    }
    if (err)
        return err;
    if (lr.fetched)
        *missed = true;
    return 0;
}

/* ---- pinning: a run for a request, loaded on first use ---------------- */

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
                check_locked(v, r, park, now);
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
        err = load_locked(v, r, flags, park, &missed);
        if (err)
            break;
    }
    r->pins--;
    pthread_mutex_unlock(&v->lock);
    return err;
}

/* ---- eviction ---------------------------------------------------------- */

/* The last-reference marker (house.c writes it) goes with the run. */
static void marker_remove(vfs *v, const char *run)
{
    char path[PATH_MAX];
    vfs_marker_path(v->meta_dir, run, path, sizeof path);
    unlink(path);
}

/* Evict victim, which the caller found evictable and marked evicting under
 * v->lock (held on entry, released on return).  Errors: kv_cache_evict's
 * (ENOENT: it was gone already, which counts as evicted). */
static int evict_marked_locked(vfs *v, struct vfs_run *victim)
{
    struct vfs_handle *h = victim->h;
    if (h) {
        victim->h = NULL;
        v->open_handles--;
    }
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(h);
    int err = kv_cache_evict(v->cache, victim->name);
    if (err == 0 || err == ENOENT)
        marker_remove(v, victim->name);
    pthread_mutex_lock(&v->lock);
    victim->evicting = false;
    pthread_cond_broadcast(&victim->cv);
    if (err == 0 || err == ENOENT) {
        victim->cached = false;
        victim->version[0] = '\0';
        victim->last_ref_saved_ms = 0;
        if (err == 0)
            v->stats.evictions++;
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_evict_now(vfs *v, const char *name, const char *reason, char *msg,
                  size_t cap)
{
    if (vfs_check_run_name(name)) {
        snprintf(msg, cap, "'%s' is not a valid run name", name);
        return EINVAL;
    }
    int64_t deadline = tclock_mono_ms() + VFS_EVICT_WAIT_MS;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
    if (!r) {
        pthread_mutex_unlock(&v->lock);
        snprintf(msg, cap, "out of memory");
        return ENOMEM;
    }
    /* Requests in flight hold pins for a moment: wait for them. */
    while (!r->dirty && (r->pins || r->loading || r->evicting ||
                         r->writing_back || (r->h && r->h->users))) {
        if (tclock_mono_ms() >= deadline) {
            pthread_mutex_unlock(&v->lock);
            snprintf(msg, cap, "run %s is in use (being fetched, written "
                     "back or read); try again", name);
            return EBUSY;
        }
        pthread_mutex_unlock(&v->lock);
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&v->lock);
    }
    if (r->dirty) {
        struct timespec since = { .tv_sec = r->dirty_since_ms / 1000 };
        bool conflicted = r->conflicted;
        pthread_mutex_unlock(&v->lock);
        char ck[1200] = "";
        struct timespec s2;
        if (vfs_dirty_info(v->cache_dir, name, &s2, ck, sizeof ck) == 0 &&
            !since.tv_sec)
            since = s2;
        vfs_dirty_message("evict", name, since, conflicted && ck[0] ? ck :
                          conflicted ? "(unknown)" : "", msg, cap);
        return EBUSY;
    }
    /* From here no request can pin it (acquire waits for evicting), so
     * nothing can change it: the mark file is the last word. */
    r->evicting = true;
    pthread_mutex_unlock(&v->lock);
    struct timespec since;
    char ck[1200] = "";
    if (vfs_dirty_info(v->cache_dir, name, &since, ck, sizeof ck) == 0) {
        pthread_mutex_lock(&v->lock);
        r->evicting = false;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&v->lock);
        vfs_dirty_message("evict", name, since, ck, msg, cap);
        return EBUSY;
    }
    pthread_mutex_lock(&v->lock);
    uint64_t bytes = r->bytes;
    int err = evict_marked_locked(v, r);
    if (err == ENOENT) {
        snprintf(msg, cap, "no run '%s' in the cache", name);
        return ENOENT;
    }
    if (err) {
        log_error("vfs: cannot evict run %s: %s", name, strerror(err));
        snprintf(msg, cap, "cannot evict run %s: %s", name, strerror(err));
        return err;
    }
    if (!v->backend)
        vfs_listings_expire(v);     /* cache mode: the root lists it */
    log_info("vfs: evicted run %s (%llu bytes, %s)", name,
             (unsigned long long)bytes, reason);
    snprintf(msg, cap, "evicted /%s", name);
    return 0;
}

int vfs_run_evict_locked(vfs *v, struct vfs_run *victim, bool data_only,
                         const char *why, uint64_t *freed)
{
    *freed = 0;
    victim->dropping = true;
    uint64_t before = victim->bytes;
    pthread_mutex_unlock(&v->lock);

    kv_run *kr = NULL;
    uint64_t present = 0, total = 0, dropped = 0;
    int err = kv_run_open(v->cache, victim->name, &kr);
    if (!err)
        err = kv_run_presence(kr, &present, &total);
    if (!err && total && present) {
        int64_t t0 = tclock_mono_ms();
        err = kv_data_drop(kr, UINT64_MAX, &dropped);
        kv_run_close(kr);
        struct kv_runinfo ri;
        bool have_ri = kv_cache_runinfo(v->cache, victim->name, &ri) == 0;
        pthread_mutex_lock(&v->lock);
        victim->dropping = false;
        victim->no_data = !err;
        if (have_ri)
            victim->bytes = ri.bytes;
        else
            victim->bytes -= dropped < victim->bytes ? dropped : victim->bytes;
        if (!err)
            victim->free_inside = 0;    /* its data file was emptied */
        if (dropped) {
            v->stats.data_evictions++;
            v->stats.bytes_dropped += dropped;
        }
        *freed = before > victim->bytes ? before - victim->bytes : 0;
        pthread_mutex_unlock(&v->lock);
        if (err) {
            log_error("vfs: cannot drop the data of run %s: %s", victim->name,
                      strerror(err));
            return err;
        }
        log_info("vfs: dropped the file data of run %s (%llu bytes, %s) in "
                 "%lld ms; its names stay, data is fetched again on read",
                 victim->name, (unsigned long long)dropped, why,
                 (long long)(tclock_mono_ms() - t0));
        return 0;
    }
    if (kr)
        kv_run_close(kr);
    /* Nothing to drop (an ingested run, or only metadata left): the whole
     * run, if nobody took it meanwhile. */
    pthread_mutex_lock(&v->lock);
    victim->dropping = false;
    if (data_only) {
        victim->no_data = true;
        pthread_mutex_unlock(&v->lock);
        return EAGAIN;
    }
    if (victim->pins || victim->loading || victim->evicting ||
        victim->dirty || victim->writing_back ||
        (victim->h && victim->h->users) || !victim->cached) {
        pthread_mutex_unlock(&v->lock);
        return EAGAIN;
    }
    victim->evicting = true;
    err = evict_marked_locked(v, victim);
    if (err && err != ENOENT) {
        log_error("vfs: cannot evict run %s: %s", victim->name,
                  strerror(err));
        return err;
    }
    *freed = before;
    log_info("vfs: evicted run %s (%llu bytes, %s)", victim->name,
             (unsigned long long)before, why);
    return 0;
}


int vfs_run_drop_oldest(vfs *v, struct vfs_run *self, const char *run,
                        kv_run *kr, uint64_t want, uint64_t *dropped)
{
    *dropped = 0;
    int err = kv_data_drop(kr, want, dropped);
    /* Nothing to drop may still have emptied a data file left holding no
     * data (parallel fills): its size then counts again. */
    if (*dropped || !err) {
        /* The data file keeps its size; the next fills reuse that
         * space (a HashDB reuses the space of deleted records of the
         * same size), so the run stops growing instead. */
        /* All of it gone: kv_data_drop emptied the file. */
        uint64_t present = 1, total;
        struct kv_runinfo ri;
        bool emptied = kv_run_presence(kr, &present, &total) == 0 &&
                       present == 0 &&
                       kv_cache_runinfo(v->cache, run, &ri) == 0;
        pthread_mutex_lock(&v->lock);
        if (self && emptied) {
            self->free_inside = 0;
            self->bytes = ri.bytes;
        } else if (self) {
            self->free_inside += *dropped;
        }
        v->stats.bytes_dropped += *dropped;
        pthread_mutex_unlock(&v->lock);
    }
    return err;
}

struct vfs_handle *vfs_run_close_idle_locked(vfs *v, struct vfs_run *r,
                                             struct vfs_handle *h, bool gone)
{
    if (r->h != h || h->users != 0 || r->loading || r->evicting)
        return NULL;
    r->h = NULL;
    v->open_handles--;
    if (gone) {
        r->cached = false;
        log_info("vfs: run %s was evicted from the cache outside "
                 "this server", r->name);
    }
    return h;
}

/* ---- creating runs ----------------------------------------------------- */

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
        log_warn("vfs: run %s deleted through NFS (RMDIR of the emptied "
                 "run; object %s removed)", name, key ? key : "-");
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
    err = vfs_upload_run(v, ref.h->kr, to_comp, new_key, &opts, false, &oi,
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

/* ---- what a write-back found ------------------------------------------ */

void vfs_run_forget_mark(vfs *v, const char *name)
{
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

void vfs_run_conflicted(vfs *v, struct vfs_run *r, const char *conflict_key)
{
    pthread_mutex_lock(&v->lock);
    r->conflicted = true;
    int64_t since = r->dirty_since_ms;
    bool was_new = r->is_new;
    pthread_mutex_unlock(&v->lock);
    vfs_dirty_mark_write(v, r->name, since, conflict_key, was_new);
}

void vfs_run_written(vfs *v, struct vfs_run *r, const char *version,
                     const char *new_key, bool clean)
{
    pthread_mutex_lock(&v->lock);
    snprintf(r->version, sizeof r->version, "%s", version);
    if (new_key) {
        free(r->key);
        r->key = strdup(new_key);
    }
    r->is_new = false;
    if (clean) {
        r->dirty = false;
        r->dirty_since_ms = 0;
    }
    pthread_mutex_unlock(&v->lock);
    if (clean)
        vfs_dirty_mark_remove(v, r->name);
}
