/* house.c: the housekeeping thread, which decides when: LRU eviction
 * between the watermarks (picking victims; runstate.c evicts them),
 * persisting last-reference times, closing idle or externally evicted run
 * handles, and rewriting the CACHE/stats counters file. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Idle handles beyond this many are closed, least recently used first. */
/* Last-reference markers are rewritten at most this often per run. */
#define VFS_MARKER_PERIOD_MS   2000
#define VFS_TICK_MS            1000
/* vfs_housekeep gives up waiting for a pass after this long. */
#define VFS_HOUSEKEEP_WAIT_S   60
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
    ms -= tclock_offset_ms();   /* on disk: real time, whatever a test did */
    char path[PATH_MAX];
    vfs_marker_path(v->meta_dir, run, path, sizeof path);
    struct timespec ts[2] = {
        { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
        { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
    };
    if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) == 0)
        return;
    /* First reference: the marker holds the run name (for operators). */
    int err = safe_write_file(path, run, strlen(run), 0644, false);
    if (!err && utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0)
        err = errno;
    if (err)
        log_warn("vfs: cannot write %s: %s", path, strerror(err));
}

/* ---- last-reference persistence -------------------------------------- */

struct pending_marker { const char *name; int64_t ms; struct vfs_run *r; };

static void persist_markers(vfs *v, bool all)
{
    int64_t now = tclock_wall_ms();
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
 * open_runs (tarnfs.conf), least recently used first. */
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
    size_t keep = v->cfg.open_runs ? v->cfg.open_runs : VFS_DEFAULT_OPEN_RUNS;
    size_t excess = n > keep ? n - keep : 0;
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
        if (stale || i < excess) {
            struct vfs_handle *idle = vfs_run_close_idle_locked(v, r, h, gone);
            if (idle)
                close_me = idle;
        }
        pthread_mutex_unlock(&v->lock);
        vfs_handle_close(close_me);
    }
    free(ih);
}

/* ---- eviction -------------------------------------------------------- */

/* The least recently referenced run other than except that may lose data
 * now (lock held): cached, not pinned, loading, evicting, dropping, dirty
 * or written back, no handle in use, not referenced within the grace
 * (unless EV_NO_GRACE); with EV_DATA_ONLY not known to hold no data. */
/* evict_step flags. */
enum {
    EV_DATA_ONLY = 1,   /* only drop file data; never evict a run whole */
    EV_NO_GRACE = 2,    /* runs referenced within the grace too */
};

static struct vfs_run *pick_victim_locked(vfs *v, struct vfs_run *except,
                                          unsigned flags)
{
    int64_t now = tclock_wall_ms();
    struct vfs_run *victim = NULL;
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (r == except || !r->cached || r->pins || r->loading ||
                r->evicting || r->dropping || r->dirty || r->writing_back ||
                (r->h && r->h->users))
                continue;
            if ((flags & EV_DATA_ONLY) && r->no_data)
                continue;
            if (!(flags & EV_NO_GRACE) &&
                now - r->last_ref_ms < (int64_t)v->evict_grace_ms)
                continue;
            if (!victim || r->last_ref_ms < victim->last_ref_ms)
                victim = r;
        }
    return victim;
}

/* One step of eviction (lock not held): the least recently used run that
 * may go (pick_victim_locked) loses its file data if it is an index-first
 * run holding some (all of it: kv_data_drop, its data file emptied, so the
 * disk space really goes back; names, attributes and handles stay), else
 * it is evicted whole (not with EV_DATA_ONLY: then it is only marked as
 * holding no data).  *freed gets the bytes the cache shrank by.
 * Errors: ENOENT (no run may go now), EAGAIN (that one could not: try the
 * next), others logged. */
static int evict_step(vfs *v, struct vfs_run *except, unsigned flags,
                      const char *why, uint64_t *freed)
{
    *freed = 0;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *victim = pick_victim_locked(v, except, flags);
    if (!victim) {
        pthread_mutex_unlock(&v->lock);
        return ENOENT;
    }
    return vfs_run_evict_locked(v, victim, (flags & EV_DATA_ONLY) != 0, why,
                                freed);
}

/* What the cache filesystem keeps free: 5 % of it, at most 1 GiB. */
static uint64_t disk_reserve(uint64_t size)
{
    uint64_t r = size / 20;
    return r < ((uint64_t)1 << 30) ? r : (uint64_t)1 << 30;
}

uint64_t vfs_cache_bound(vfs *v)
{
    uint64_t limit = v->cfg.cache_limit_bytes;
    uint64_t avail, size;
    if (!v->backend || kv_cache_disk(v->cache, &avail, &size) != 0)
        return limit;
    /* What the cache holds plus what it may still take of the disk: as the
     * cache grows both move together, and when something else fills the
     * filesystem the bound falls with it. */
    uint64_t reserve = disk_reserve(size);
    uint64_t disk = vfs_cached_bytes(v, NULL) + (avail > reserve ? avail - reserve : 0);
    if (!disk)
        disk = 1;
    return limit && limit < disk ? limit : disk;
}

/* The high and low watermarks in bytes of limit. */
static void watermarks(vfs *v, uint64_t limit, uint64_t *high, uint64_t *low)
{
    *high = limit / 100 * v->high_pct + limit % 100 * v->high_pct / 100;
    *low = limit / 100 * v->low_pct + limit % 100 * v->low_pct / 100;
}

int vfs_room_for_fill(vfs *v, const char *run, kv_run *kr, uint64_t need)
{
    uint64_t limit = vfs_cache_bound(v);
    if (!limit || !v->backend)
        return 0;
    uint64_t high, low;
    watermarks(v, limit, &high, &low);
    uint64_t top = high;
    /* Aim halfway between the watermarks: KC's own growth (bucket pages,
     * metadata) then stays under the high one, where the housekeeper would
     * start evicting runs whole. */
    high = low + (high - low) / 2;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *self = vfs_run_lookup_locked(v, run, false);
    pthread_mutex_unlock(&v->lock);
    /* In this order: the file data of other runs (least recently used
     * first), this run's own oldest chunks, the data of other runs in use
     * a moment ago (the grace), other runs whole.  Each step frees
     * something or moves on; the bound is a guard. */
    for (int steps = 0; steps < 10000; steps++) {
        /* The run grows by what the fill cannot put into the space of its
         * own chunks dropped before. */
        uint64_t usage = vfs_cached_bytes(v, NULL), growth = need;
        pthread_mutex_lock(&v->lock);
        if (self)
            growth = need > self->free_inside ? need - self->free_inside : 0;
        pthread_mutex_unlock(&v->lock);
        if (usage + growth <= high)
            return 0;
        /* It fits into the space of the run's own dropped chunks: the
         * cache does not grow.  Its data file never shrinks, so with fills
         * in parallel it may stay above the aim with nothing left to
         * drop; under the high watermark that is no reason to refuse. */
        if (growth == 0 && usage <= top)
            return 0;
        uint64_t freed;
        int err = evict_step(v, self, EV_DATA_ONLY, "room for a range fetch",
                             &freed);
        if (err == 0 || err == EAGAIN)
            continue;
        uint64_t dropped = 0;
        err = vfs_run_drop_oldest(v, self, run, kr, usage + growth - high,
                                  &dropped);
        if (dropped) {
            log_debug("vfs: dropped %llu bytes of the oldest data of run %s "
                      "to make room for %llu", (unsigned long long)dropped,
                      run, (unsigned long long)need);
            continue;
        }
        if (err)
            log_error("vfs: cannot drop data of run %s: %s", run,
                      strerror(err));
        /* Nothing of its own to drop: another fill may have just dropped
         * it (and emptied the data file); look again before the rest. */
        if (!err && vfs_cached_bytes(v, NULL) < usage)
            continue;
        err = evict_step(v, self, EV_DATA_ONLY | EV_NO_GRACE,
                         "room for a range fetch", &freed);
        if (err == 0 || err == EAGAIN)
            continue;
        err = evict_step(v, self, 0, "room for a range fetch", &freed);
        if (err == 0 || err == EAGAIN)
            continue;
        return ENOSPC;
    }
    return ENOSPC;
}

void vfs_room_for_run(vfs *v, struct vfs_run *self, uint64_t need)
{
    for (int steps = 0; steps < 10000; steps++) {
        uint64_t limit = vfs_cache_bound(v);
        if (!limit || !v->backend)
            return;
        uint64_t high, low;
        watermarks(v, limit, &high, &low);
        if (need > high || vfs_cached_bytes(v, NULL) + need <= high)
            return;     /* it fits, or never will: the fetch says so */
        uint64_t freed;
        int err = evict_step(v, self, EV_DATA_ONLY, "room for a run fetched whole", &freed);
        if (err == 0 || err == EAGAIN)
            continue;
        err = evict_step(v, self, 0, "room for a run fetched whole", &freed);
        if (err != 0 && err != EAGAIN)
            return;
    }
}

static void evict_if_needed(vfs *v)
{
    if (!v->backend)
        return;
    /* Usage is summed from the run table (kept current by fetches and
     * evictions); a periodic rescan picks up changes made by other
     * processes without making every check cost O(cached runs) I/O. */
    int64_t mono = tclock_mono_ms();
    if (mono - v->scanned_ms >= VFS_RESCAN_MS) {
        vfs_runs_scan_cache(v);
        v->scanned_ms = mono;
    }
    uint64_t limit = vfs_cache_bound(v);
    if (!limit)
        return;
    uint64_t high, low;
    watermarks(v, limit, &high, &low);
    uint64_t usage = vfs_cached_bytes(v, NULL);
    if (usage <= high)
        return;
    while (usage > low) {
        uint64_t freed;
        int err = evict_step(v, NULL, 0, "least recently used", &freed);
        if (err == EAGAIN) {
            usage = vfs_cached_bytes(v, NULL);
            continue;
        }
        if (err == ENOENT) {
            /* Changed runs leave only once written back: write the least
             * recently used one now, and evict it next time round. */
            if (vfs_writeback_for_eviction(v)) {
                usage = vfs_cached_bytes(v, NULL);
                continue;
            }
            /* Said once a minute at most: it holds every second until the
             * runs in use are released or age past their grace. */
            int64_t now = tclock_mono_ms();
            if (v->full_warned_ms && now - v->full_warned_ms < 60000)
                break;
            v->full_warned_ms = now;
            log_warn("vfs: cache holds %llu bytes, over its low watermark "
                     "%llu, but every run is in use or recently used",
                     (unsigned long long)usage, (unsigned long long)low);
            break;
        }
        if (err)
            break;
        usage = vfs_cached_bytes(v, NULL);
    }
}

/* ---- stats file -------------------------------------------------------- */

int vfs_format_stats(vfs *v, char sep, char *buf, size_t cap, size_t *len)
{
    struct vfs_stats s;
    vfs_get_stats(v, &s);
    /* "updated" is when, for people: the real clock, whatever a test did. */
    int n = snprintf(buf, cap,
            "hits=%llu%cmisses=%llu%cfetches=%llu%cfetch_failures=%llu%c"
            "bytes_fetched=%llu%cevictions=%llu%cruns_cached=%llu%c"
            "bytes_cached=%llu%cindex_fetches=%llu%crange_fetches=%llu%c"
            "range_bytes=%llu%cdata_evictions=%llu%cbytes_dropped=%llu%c"
            "runs_open=%llu%cpid=%ld%cupdated=%lld%c",
            (unsigned long long)s.hits, sep, (unsigned long long)s.misses, sep,
            (unsigned long long)s.fetches, sep,
            (unsigned long long)s.fetch_failures, sep,
            (unsigned long long)s.bytes_fetched, sep,
            (unsigned long long)s.evictions, sep,
            (unsigned long long)s.runs_cached, sep,
            (unsigned long long)s.bytes_cached, sep,
            (unsigned long long)s.index_fetches, sep,
            (unsigned long long)s.range_fetches, sep,
            (unsigned long long)s.range_bytes, sep,
            (unsigned long long)s.data_evictions, sep,
            (unsigned long long)s.bytes_dropped, sep,
            (unsigned long long)s.runs_open, sep, (long)getpid(), sep,
            (long long)(vfs_wall_ms() / 1000), sep);
    if (n < 0 || (size_t)n >= cap)
        return ENOSPC;
    if (sep != '\n')
        buf[--n] = '\0';        /* one line: no separator at its end */
    *len = (size_t)n;
    return 0;
}

void vfs_write_stats_file(vfs *v)
{
    char path[PATH_MAX], buf[1024];
    vfs_stats_path(v->cache_dir, path, sizeof path);
    size_t n;
    if (vfs_format_stats(v, '\n', buf, sizeof buf, &n) == 0)
        safe_write_file(path, buf, n, 0644, false);
}

/* ---- the thread ------------------------------------------------------ */

static void *house_main(void *arg)
{
    vfs *v = arg;
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        /* A real deadline: the decision clock only moves faster, and an
         * advance wakes this wait (clock_advanced). */
        if (!v->evict_wanted && v->house_asked == v->house_done) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += VFS_TICK_MS / 1000;
            pthread_cond_clockwait(&v->wake, &v->lock, CLOCK_MONOTONIC, &until);
        }
        if (v->stopping)
            break;
        v->evict_wanted = false;
        uint64_t serving = v->house_asked;    /* asked before this began */
        pthread_mutex_unlock(&v->lock);
        evict_if_needed(v);
        persist_markers(v, false);
        if (v->backend && !v->cfg.read_only)
            vfs_writeback_tick(v);
        tend_handles(v);
        vfs_write_stats_file(v);
        pthread_mutex_lock(&v->lock);
        v->house_done = serving;
        pthread_cond_broadcast(&v->house_passed);
    }
    /* Nobody waits for a pass that will not come. */
    pthread_cond_broadcast(&v->house_passed);
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

/* The decision clock moved (a test): grace periods and delays may have
 * passed, so look again now rather than at the next tick. */
static void clock_advanced(void *arg)
{
    vfs_house_kick(arg);
}

int vfs_housekeep(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    if (!v->thread_started || v->stopping) {
        pthread_mutex_unlock(&v->lock);
        return 0;
    }
    uint64_t mine = ++v->house_asked;
    pthread_cond_broadcast(&v->wake);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += VFS_HOUSEKEEP_WAIT_S;
    int err = 0;
    while (v->house_done < mine && !v->stopping && err != ETIMEDOUT)
        err = pthread_cond_clockwait(&v->house_passed, &v->lock,
                                     CLOCK_MONOTONIC, &until);
    err = v->house_done >= mine || v->stopping ? 0 : ETIMEDOUT;
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_house_start(vfs *v)
{
    int err = pthread_create(&v->thread, NULL, house_main, v);
    if (err)
        return err;
    v->thread_started = true;
    if (tclock_listen(clock_advanced, v) != 0)
        log_warn("vfs: too many listeners of the test clock; this vfs "
                 "notices an advance at its next tick");
    return 0;
}

void vfs_house_stop(vfs *v)
{
    if (!v->thread_started)
        return;
    tclock_unlisten(clock_advanced, v);
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
