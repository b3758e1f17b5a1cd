/* download.c: a run's tarball streamed from the backend into the cache (kv_ingest, served while it streams, its index made on the way), for loading. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
uint64_t vfs_ingest_headroom(vfs *v, const char *name)
{
    uint64_t limit = vfs_cache_bound(v);
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

int vfs_download_run(vfs *v, struct vfs_run *r, const char *key,
                     const char *version, const struct fetch_objinfo *oi,
                     bool serve, bool *served)
{
    *served = false;
    /* Served from its first member on (stream.c), unless the whole run is
     * wanted first. */
    struct vfs_stream *st = serve ? vfs_stream_new(v, r, key, version) : NULL;
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
    if (oi)
        vfs_room_for_run(v, r, oi->size);
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
                                   vfs_ingest_headroom(v, name), &w, &kr, &res);
        } else {
            err = kv_ingest_limited(v->cache, name, feed_read, &feed, version,
                                    vfs_ingest_headroom(v, name), &res);
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
