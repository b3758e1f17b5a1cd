/* runs.c: the per-run state table: lookup, shared handles, releasing pins,
 * taking changes (change_begin, mark_dirty), and the cache scan; pins are
 * taken, and runs loaded, by vfs_run_acquire (runstate.c). */
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
