/* house.c: the housekeeping thread: LRU eviction between the watermarks,
 * persisting last-reference times, closing idle or externally evicted run
 * handles, and rewriting the CACHE/stats counters file. */
#include "vfs/vfs_internal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Idle handles beyond this many are closed, least recently used first. */
#define VFS_IDLE_HANDLES_MAX   64
/* Last-reference markers are rewritten at most this often per run. */
#define VFS_MARKER_PERIOD_MS   2000
#define VFS_TICK_MS            1000
/* The run table is re-synchronised with the cache directory this often. */
#define VFS_RESCAN_MS          60000

void vfs_stats_path(const char *cache_dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/stats", cache_dir);
}

int vfs_last_reference(const char *cache_dir, const char *run,
                       struct timespec *out)
{
    if (!cache_dir || !run || vfs_check_run_name(run))
        return EINVAL;
    char meta[PATH_MAX], path[PATH_MAX];
    snprintf(meta, sizeof meta, "%s/vfs", cache_dir);
    vfs_marker_path(meta, run, path, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? ENOENT : errno;
    *out = st.st_mtim;
    return 0;
}

void vfs_marker_write(vfs *v, const char *run, int64_t ms)
{
    char path[PATH_MAX];
    vfs_marker_path(v->meta_dir, run, path, sizeof path);
    struct timespec ts[2] = {
        { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
        { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
    };
    if (utimensat(AT_FDCWD, path, ts, 0) == 0)
        return;
    /* First reference: the marker holds the run name (for operators). */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_warn("vfs: cannot write %s: %s", path, strerror(errno));
        return;
    }
    size_t len = strlen(run);
    if (write(fd, run, len) != (ssize_t)len)
        log_warn("vfs: cannot write %s: %s", path, strerror(errno));
    futimens(fd, ts);
    close(fd);
}

static void marker_remove(vfs *v, const char *run)
{
    char path[PATH_MAX];
    vfs_marker_path(v->meta_dir, run, path, sizeof path);
    unlink(path);
}

/* ---- last-reference persistence -------------------------------------- */

struct pending_marker { const char *name; int64_t ms; struct vfs_run *r; };

static void persist_markers(vfs *v, bool all)
{
    int64_t now = vfs_wall_ms();
    size_t n = 0, cap = 0;
    struct pending_marker *pm = NULL;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++) {
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->cached || r->last_ref_ms <= r->last_ref_saved_ms)
                continue;
            if (!all && now - r->last_ref_saved_ms < VFS_MARKER_PERIOD_MS)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct pending_marker *np = realloc(pm, nc * sizeof *np);
                if (!np)
                    goto out;
                pm = np;
                cap = nc;
            }
            /* Run structs live until vfs_close, so the name stays valid. */
            pm[n++] = (struct pending_marker){ r->name, r->last_ref_ms, r };
        }
    }
out:
    pthread_mutex_unlock(&v->lock);
    for (size_t i = 0; i < n; i++)
        vfs_marker_write(v, pm[i].name, pm[i].ms);
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < n; i++)
        if (pm[i].r->last_ref_saved_ms < pm[i].ms)
            pm[i].r->last_ref_saved_ms = pm[i].ms;
    pthread_mutex_unlock(&v->lock);
    free(pm);
}

/* ---- open handles ------------------------------------------------------ */

/* An idle handle, held (users + 1) while it is checked without the lock. */
struct idle_handle {
    struct vfs_run *r;
    struct vfs_handle *h;
    int64_t last_used_ms;
};

static int by_last_used(const void *pa, const void *pb)
{
    const struct idle_handle *a = pa, *b = pb;
    if (a->last_used_ms != b->last_used_ms)
        return a->last_used_ms < b->last_used_ms ? -1 : 1;
    return 0;
}

/* Close handles whose run was evicted or replaced behind our back (e.g. by
 * `tarnfs cache evict` or `tarnfs ingest`), and idle handles beyond
 * VFS_IDLE_HANDLES_MAX, least recently used first. */
static void tend_handles(vfs *v)
{
    size_t n = 0;
    struct idle_handle *ih = NULL;
    pthread_mutex_lock(&v->lock);
    if (v->open_handles)
        ih = malloc(v->open_handles * sizeof *ih);
    if (ih) {
        for (size_t i = 0; i < v->nbuckets && n < v->open_handles; i++)
            for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
                if (r->h && r->h->users == 0 && !r->loading &&
                    !r->evicting && n < v->open_handles) {
                    ih[n++] = (struct idle_handle){ r, r->h,
                                                    r->h->last_used_ms };
                    r->h->users++;
                }
    }
    pthread_mutex_unlock(&v->lock);
    if (!n) {
        free(ih);
        return;
    }
    qsort(ih, n, sizeof *ih, by_last_used);
    size_t excess = n > VFS_IDLE_HANDLES_MAX ? n - VFS_IDLE_HANDLES_MAX : 0;
    for (size_t i = 0; i < n; i++) {
        struct vfs_run *r = ih[i].r;
        struct vfs_handle *h = ih[i].h;
        bool stale = kv_run_stale(h->kr);
        bool gone = false;
        if (stale) {
            struct kv_runinfo ri;
            gone = kv_cache_runinfo(v->cache, r->name, &ri) == ENOENT;
        }
        pthread_mutex_lock(&v->lock);
        struct vfs_handle *close_me = vfs_handle_put_locked(v, h);
        if ((stale || i < excess) && r->h == h && h->users == 0 &&
            !r->loading && !r->evicting) {
            r->h = NULL;
            v->open_handles--;
            close_me = h;
            if (gone) {
                r->cached = false;
                log_info("vfs: run %s was evicted from the cache outside "
                         "this server", r->name);
            }
        }
        pthread_mutex_unlock(&v->lock);
        vfs_handle_close(close_me);
    }
    free(ih);
}

/* ---- eviction -------------------------------------------------------- */

static void evict_if_needed(vfs *v)
{
    if (!v->cfg.cache_limit_bytes || !v->backend)
        return;
    /* Usage is summed from the run table (kept current by fetches and
     * evictions); a periodic rescan picks up changes made by other
     * processes without making every check cost O(cached runs) I/O. */
    int64_t mono = vfs_mono_ms();
    if (mono - v->scanned_ms >= VFS_RESCAN_MS) {
        vfs_runs_scan_cache(v);
        v->scanned_ms = mono;
    }
    uint64_t limit = v->cfg.cache_limit_bytes;
    uint64_t high = limit / 100 * v->high_pct + limit % 100 * v->high_pct / 100;
    uint64_t low = limit / 100 * v->low_pct + limit % 100 * v->low_pct / 100;
    uint64_t usage = vfs_cached_bytes(v, NULL);
    if (usage <= high)
        return;
    while (usage > low) {
        int64_t now = vfs_wall_ms();
        pthread_mutex_lock(&v->lock);
        struct vfs_run *victim = NULL;
        for (size_t i = 0; i < v->nbuckets; i++)
            for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
                if (!r->cached || r->pins || r->loading || r->evicting ||
                    r->dirty || (r->h && r->h->users))
                    continue;
                if (now - r->last_ref_ms < (int64_t)v->evict_grace_ms)
                    continue;
                if (!victim || r->last_ref_ms < victim->last_ref_ms)
                    victim = r;
            }
        if (!victim) {
            pthread_mutex_unlock(&v->lock);
            /* Changed runs leave only once written back: write the least
             * recently used one now, and evict it next time round. */
            if (vfs_writeback_for_eviction(v)) {
                usage = vfs_cached_bytes(v, NULL);
                continue;
            }
            /* Said once a minute at most: it holds every second until the
             * runs in use are released or age past their grace. */
            int64_t mono = vfs_mono_ms();
            if (v->full_warned_ms && mono - v->full_warned_ms < 60000)
                break;
            v->full_warned_ms = mono;
            log_warn("vfs: cache holds %llu bytes, over its low watermark "
                     "%llu, but every run is in use or recently used",
                     (unsigned long long)usage, (unsigned long long)low);
            break;
        }
        victim->evicting = true;
        struct vfs_handle *h = victim->h;
        if (h) {
            victim->h = NULL;
            v->open_handles--;
        }
        uint64_t bytes = victim->bytes;
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
        if (err && err != ENOENT) {
            log_error("vfs: cannot evict run %s: %s", victim->name,
                      strerror(err));
            break;
        }
        log_info("vfs: evicted run %s (%llu bytes, least recently used)",
                 victim->name, (unsigned long long)bytes);
        usage = vfs_cached_bytes(v, NULL);
    }
}

/* ---- stats file -------------------------------------------------------- */

void vfs_write_stats_file(vfs *v)
{
    struct vfs_stats s;
    vfs_get_stats(v, &s);
    char path[PATH_MAX], tmp[PATH_MAX + 16];
    vfs_stats_path(v->cache_dir, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return;
    fprintf(f,
            "hits=%llu\nmisses=%llu\nfetches=%llu\nfetch_failures=%llu\n"
            "bytes_fetched=%llu\nevictions=%llu\nruns_cached=%llu\n"
            "bytes_cached=%llu\nindex_fetches=%llu\nrange_fetches=%llu\n"
            "range_bytes=%llu\npid=%ld\nupdated=%lld\n",
            (unsigned long long)s.hits, (unsigned long long)s.misses,
            (unsigned long long)s.fetches,
            (unsigned long long)s.fetch_failures,
            (unsigned long long)s.bytes_fetched,
            (unsigned long long)s.evictions,
            (unsigned long long)s.runs_cached,
            (unsigned long long)s.bytes_cached,
            (unsigned long long)s.index_fetches,
            (unsigned long long)s.range_fetches,
            (unsigned long long)s.range_bytes, (long)getpid(),
            (long long)(vfs_wall_ms() / 1000));
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

/* ---- the thread ------------------------------------------------------ */

static void *house_main(void *arg)
{
    vfs *v = arg;
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        if (!v->evict_wanted) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += VFS_TICK_MS / 1000;
            pthread_cond_timedwait(&v->wake, &v->lock, &until);
        }
        if (v->stopping)
            break;
        v->evict_wanted = false;
        pthread_mutex_unlock(&v->lock);
        evict_if_needed(v);
        persist_markers(v, false);
        if (v->backend && !v->cfg.read_only)
            vfs_writeback_tick(v);
        tend_handles(v);
        vfs_write_stats_file(v);
        pthread_mutex_lock(&v->lock);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

int vfs_house_start(vfs *v)
{
    int err = pthread_create(&v->thread, NULL, house_main, v);
    if (err)
        return err;
    v->thread_started = true;
    return 0;
}

void vfs_house_stop(vfs *v)
{
    if (!v->thread_started)
        return;
    pthread_mutex_lock(&v->lock);
    v->stopping = true;
    pthread_cond_broadcast(&v->wake);
    pthread_mutex_unlock(&v->lock);
    pthread_join(v->thread, NULL);
    v->thread_started = false;
    persist_markers(v, true);
    vfs_write_stats_file(v);
}

void vfs_house_kick(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    v->evict_wanted = true;
    pthread_cond_broadcast(&v->wake);
    pthread_mutex_unlock(&v->lock);
}
