/* vfs.c: opening and closing a namespace (cache, backend, housekeeping
 * thread) and its counters. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VFS_DEFAULT_TTL_MS    5000
#define VFS_DEFAULT_GRACE_MS  5000
#define VFS_DEFAULT_HIGH_PCT  90
#define VFS_DEFAULT_LOW_PCT   75
#define VFS_DEFAULT_FETCH_THREADS 8
#define VFS_DEFAULT_STALL_MS  60000

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    int err = errno;
    log_error("vfs: cannot create %s: %s", path, strerror(err));
    return err;
}

static void vfs_free(vfs *v)
{
    /* Background listing refreshes use the run table and the backend. */
    pthread_mutex_lock(&v->lock);
    v->stopping = true;
    while (v->bg_jobs)
        pthread_cond_wait(&v->bg_idle, &v->lock);
    pthread_mutex_unlock(&v->lock);
    vfs_pool_join(v);
    vfs_runs_free(v);
    vfs_listings_free(v);
    if (v->backend)
        fetch_close(v->backend);
    if (v->cache)
        kv_cache_close(v->cache);
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->wake);
    pthread_cond_destroy(&v->house_passed);
    pthread_cond_destroy(&v->bg_idle);
    pthread_cond_destroy(&v->pool_cv);
    free(v->catalog);
    free(v->cache_dir);
    free(v->source);
    free(v->meta_dir);
    vfs_control_stop(v);                /* the socket, if only listening */
    if (v->server_lock_fd >= 0)
        close(v->server_lock_fd);       /* lets the lock go */
    free(v);
}

int vfs_check_source(const struct vfs_config *cfg, char *err, size_t errlen)
{
    return fetch_check_source(cfg->source, &cfg->fetch, err, errlen);
}

int vfs_open(const struct vfs_config *cfg, vfs **out)
{
    *out = NULL;
    if (!cfg || !cfg->cache_dir || !cfg->cache_dir[0]) {
        log_error("vfs: no cache directory given");
        return EINVAL;
    }
    unsigned high = cfg->high_watermark_pct ? cfg->high_watermark_pct
                                            : VFS_DEFAULT_HIGH_PCT;
    unsigned low = cfg->low_watermark_pct ? cfg->low_watermark_pct
                                          : VFS_DEFAULT_LOW_PCT;
    if (high > 100 || low >= high) {
        log_error("vfs: watermarks must satisfy low < high <= 100 (got "
                  "low %u%%, high %u%%)", low, high);
        return EINVAL;
    }
    vfs *v = calloc(1, sizeof *v);
    if (!v)
        return ENOMEM;
    v->server_lock_fd = -1;
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->wake, NULL);
    pthread_cond_init(&v->house_passed, NULL);
    pthread_cond_init(&v->bg_idle, NULL);
    pthread_cond_init(&v->pool_cv, NULL);
    v->cfg = *cfg;
    if (!v->cfg.max_file_size || v->cfg.max_file_size > VFS_MAX_MAX_FILE)
        v->cfg.max_file_size = cfg->max_file_size ? VFS_MAX_MAX_FILE
                                                  : VFS_DEFAULT_MAX_FILE;
    v->pool_max = cfg->fetch_threads ? cfg->fetch_threads
                                     : VFS_DEFAULT_FETCH_THREADS;
    v->stall_timeout_ms = cfg->fetch.stall_timeout_ms
                              ? cfg->fetch.stall_timeout_ms
                              : VFS_DEFAULT_STALL_MS;
    v->high_pct = high;
    v->low_pct = low;
    v->list_ttl_ms = cfg->list_ttl_ms ? cfg->list_ttl_ms : VFS_DEFAULT_TTL_MS;
    v->evict_grace_ms = cfg->evict_grace_ms ? cfg->evict_grace_ms
                                            : VFS_DEFAULT_GRACE_MS;
    v->writeback_delay_ms = cfg->writeback_delay_ms ? cfg->writeback_delay_ms : 30000;
    if (gethostname(v->hostname, sizeof v->hostname) != 0)
        snprintf(v->hostname, sizeof v->hostname, "host");
    v->hostname[sizeof v->hostname - 1] = '\0';
    v->cache_dir = strdup(cfg->cache_dir);
    v->source = cfg->source ? strdup(cfg->source) : NULL;
    size_t mlen = strlen(cfg->cache_dir) + 8;
    v->meta_dir = malloc(mlen);
    if (!v->cache_dir || (cfg->source && !v->source) || !v->meta_dir) {
        vfs_free(v);
        return ENOMEM;
    }
    snprintf(v->meta_dir, mlen, "%s/vfs", cfg->cache_dir);
    v->cfg.cache_dir = v->cache_dir;
    v->cfg.source = v->source;

    int err = kv_cache_open(v->cache_dir, v->source != NULL, &v->cache);
    if (err) {
        char msg[PATH_MAX + 256];
        vfs_cache_open_message(v->cache_dir, v->source != NULL, err, msg,
                               sizeof msg);
        /* Without a source nothing makes the directory a cache. */
        log_error("vfs: %s%s", msg, err == EINVAL && !v->source
                  ? " and no source is set: set 'source' in tarnfs.conf (a "
                    "NAS directory or s3://BUCKET/PREFIX), or put runs in it "
                    "with 'tarnfs ingest --cache DIR TARBALL'" : "");
        vfs_free(v);
        return err;
    }
    char sub[PATH_MAX];
    if ((err = make_dir(v->meta_dir)) != 0 ||
        (snprintf(sub, sizeof sub, "%s/names", v->meta_dir),
         (err = make_dir(sub)) != 0) ||
        (snprintf(sub, sizeof sub, "%s/lastref", v->meta_dir),
         (err = make_dir(sub)) != 0) ||
        (snprintf(sub, sizeof sub, "%s/dirty", v->meta_dir),
         (err = make_dir(sub)) != 0) ||
        (err = vfs_server_lock(v)) != 0) {
        vfs_free(v);
        return err;
    }
    /* At once after the lock: a tool that finds the lock held and no
     * socket then knows this server has no control channel (its log says
     * why), and one that connects waits for the answer. */
    vfs_control_listen(v);
    if (v->source) {
        struct fetch_config fc = cfg->fetch;
        fc.stall_timeout_ms = v->stall_timeout_ms;
        char msg[512] = "";
        err = fetch_open(v->source, &fc, &v->backend, msg, sizeof msg);
        if (err) {
            log_error("vfs: cannot open source %s: %s%s%s", v->source,
                      strerror(err), msg[0] ? ": " : "", msg);
            v->backend = NULL;
            vfs_free(v);
            return err;
        }
    }
    char real[PATH_MAX];
    const char *fsid_of = v->source;
    if (!fsid_of)
        fsid_of = realpath(v->cache_dir, real) ? real : v->cache_dir;
    v->fsid = vfs_hash_str(fsid_of);

    if (cfg->cache_limit_bytes)
        kv_cache_set_limit(v->cache, cfg->cache_limit_bytes);
    kv_cache_set_build_cache(v->cache, cfg->build_cache_bytes);
    kv_cache_set_run_cache(v->cache, cfg->run_cache_bytes);
    kv_cache_set_dir_budget(v->cache,
        cfg->dir_cache_bytes == VFS_DIR_CACHE_OFF ? 0
        : cfg->dir_cache_bytes ? cfg->dir_cache_bytes : VFS_DEFAULT_DIR_CACHE);
    err = vfs_runs_scan_cache(v);
    v->scanned_ms = tclock_mono_ms();
    if (err)
        log_warn("vfs: cannot list the runs in %s: %s", v->cache_dir,
                 strerror(err));
    vfs_writeback_scan(v);
    vfs_writeback_abort_orphans(v);
    err = vfs_house_start(v);
    if (err) {
        vfs_free(v);
        return err;
    }
    /* Without it the server still serves; `tarnfs flush` says it got no
     * answer, and the log says why. */
    vfs_control_start(v);
    log_info("vfs: serving %s%s%s (cache %s%s)",
             v->source ? "tarballs from " : "the cached runs",
             v->source ? v->source : "", "", v->cache_dir,
             cfg->read_only ? ", read-only" : "");
    uint64_t avail, size;
    if (v->backend && kv_cache_disk(v->cache, &avail, &size) == 0)
        log_info("vfs: the cache may hold %llu bytes now (cache_limit %llu, "
                 "0 = none; its filesystem: %llu bytes free of %llu, 5%% "
                 "up to 1 GiB kept free)",
                 (unsigned long long)vfs_cache_bound(v),
                 (unsigned long long)cfg->cache_limit_bytes,
                 (unsigned long long)avail, (unsigned long long)size);
    *out = v;
    return 0;
}

void vfs_close(vfs *v)
{
    if (!v)
        return;
    vfs_control_stop(v);
    vfs_house_stop(v);
    if (v->backend && !v->cfg.read_only)
        vfs_writeback_all(v, "shutdown");
    /* Let loads in progress finish: a fetch runs to its end or failure. */
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            while (r->loading || r->evicting)
                pthread_cond_wait(&r->cv, &v->lock);
    pthread_mutex_unlock(&v->lock);
    vfs_free(v);
}

void vfs_root(vfs *v, struct vfs_id *out)
{
    (void)v;
    vfs_id_make_root(out);
}

uint64_t vfs_max_file_size(const vfs *v)
{
    return v->cfg.max_file_size;
}

uint64_t vfs_cached_bytes(vfs *v, uint64_t *runs)
{
    uint64_t bytes = 0, n = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            if (r->cached) {
                n++;
                bytes += r->bytes;
            }
    pthread_mutex_unlock(&v->lock);
    if (runs)
        *runs = n;
    return bytes;
}

void vfs_get_stats(vfs *v, struct vfs_stats *st)
{
    pthread_mutex_lock(&v->lock);
    *st = v->stats;
    st->runs_open = v->open_handles;
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->dirty)
                continue;
            st->dirty_runs++;
            st->conflicted_runs += r->conflicted;
            if (r->dirty_since_ms &&
                (!st->oldest_dirty_ms || r->dirty_since_ms < st->oldest_dirty_ms))
                st->oldest_dirty_ms = r->dirty_since_ms;
        }
    pthread_mutex_unlock(&v->lock);
    st->bytes_cached = vfs_cached_bytes(v, &st->runs_cached);
    st->cache_limit_bytes = v->cfg.cache_limit_bytes;
    st->backend = !v->source ? "" : !strncmp(v->source, "s3://", 5) ? "s3" : "nas";
}
