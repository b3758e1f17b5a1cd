/* lazy.c: the absent data of index-first runs: fill absent member chunks by range fetch (verified, single flight, with read-ahead; a parkable caller parks while a fetch thread fetches), and every absent chunk of a run before it changes. */
#include "vfs/vfs_internal.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read-ahead for sequential readers: absent chunks fetched beyond the one
 * a READ needs, when the chunk before it is present (or it is the first). */
#define VFS_READAHEAD_CHUNKS 4
/* A reader of a chunk this far ahead of the stream of a run being
 * prefetched waits for the stream (parked) rather than fetch it itself:
 * the stream gets there soon (about 30 ms on a local NAS, 0.3 s at
 * 100 MB/s), and a range GET of its own costs a request, a commit pair
 * and the run's write lock while the stream is storing (a pass over a run
 * of 8 KiB files made hundreds).  Further ahead, or behind the stream, it
 * fetches the chunk itself. */
#define VFS_PREFETCH_WAIT_AHEAD ((uint64_t)32 << 20)

/* ---- range fetch and fill -------------------------------------------- */

static struct vfs_fill **fill_bucket(vfs *v, const struct vfs_run *run,
                                     kv_ino ino)
{
    uint64_t h = ((uint64_t)(uintptr_t)run >> 4) ^ ino;
    h *= UINT64_C(0x9e3779b97f4a7c15);
    return &v->fills[(h >> 32) % VFS_FILL_BUCKETS];
}

struct vfs_fill *vfs_fill_find_locked(vfs *v, struct vfs_run *run,
                                      kv_ino ino, uint32_t chunk)
{
    for (struct vfs_fill *f = *fill_bucket(v, run, ino); f; f = f->next)
        if (f->run == run && f->ino == ino && !f->done &&
            chunk >= f->first && chunk - f->first < f->count)
            return f;
    return NULL;
}

void vfs_fill_link_locked(vfs *v, struct vfs_fill *f)
{
    struct vfs_fill **b = fill_bucket(v, f->run, f->ino);
    f->next = *b;
    f->pprev = b;
    if (*b)
        (*b)->pprev = &f->next;
    *b = f;
}

static void fill_unlink_locked(struct vfs_fill *f)
{
    *f->pprev = f->next;
    if (f->next)
        f->next->pprev = f->pprev;
    f->next = NULL;
    f->pprev = NULL;
}

int vfs_lazy_fetch(vfs *v, kv_run *kr, const char *run, const char *key,
                   kv_ino ino, uint32_t first, uint32_t count,
                   uint64_t *stored)
{
    *stored = 0;
    uint64_t off0 = 0, total = 0;
    uint32_t lens[VFS_FILL_MAX_CHUNKS], crcs[VFS_FILL_MAX_CHUNKS];
    if (count > VFS_FILL_MAX_CHUNKS)
        count = VFS_FILL_MAX_CHUNKS;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t off;
        int err = kv_chunk_source(kr, ino, first + i, &off, &lens[i],
                                  &crcs[i]);
        if (err == ENOENT && i == 0)
            return 0;           /* complete meanwhile */
        if (err)
            return err == ENOENT ? 0 : err;
        if (i == 0)
            off0 = off;
        total += lens[i];
    }
    char member[512];
    if (kv_absent_member(kr, ino, member, sizeof member) != 0)
        snprintf(member, sizeof member, "inode %llu", (unsigned long long)ino);
    /* Room first (other runs' data, then this run's oldest), whatever the
     * run's total size: a run bigger than the cache is read file by file.
     * Short of room for the read-ahead, the chunk asked for alone. */
    int err = vfs_room_for_fill(v, run, kr, total);
    if (err && count > 1) {
        count = 1;
        total = lens[0];
        err = vfs_room_for_fill(v, run, kr, total);
    }
    if (err) {
        log_warn("vfs: no room in the cache for run %s member '%s' chunk %u "
                 "(%u bytes): every other run is in use, recently used or "
                 "changed; the client is told to retry", run, member, first,
                 lens[0]);
        return EAGAIN;
    }
    fetch_stream *s;
    err = fetch_get(v->backend, key, off0, total, &s);
    if (err) {
        log_error("vfs: range fetch of run %s member '%s' (chunks %u-%u) "
                  "from %s failed: %s", run, member, first, first + count - 1,
                  key, strerror(err));
        return EIO;
    }
    struct vfs_xfer x;              /* vfs_cancel may cancel it now */
    vfs_xfer_begin(v, &x, s);
    char *buf = malloc(KV_CHUNK);
    uint64_t got = 0;
    if (!buf)
        err = ENOMEM;
    for (uint32_t i = 0; i < count && !err; i++) {
        size_t have = 0;
        while (have < lens[i]) {
            ssize_t n = fetch_read(s, buf + have, lens[i] - have);
            if (n <= 0) {
                err = n < 0 ? (int)-n : EIO;
                break;
            }
            have += (size_t)n;
        }
        got += have;
        if (err) {
            log_error("vfs: range fetch of run %s member '%s' chunk %u "
                      "from %s failed: %s", run, member, first + i, key,
                      strerror(err));
            err = EIO;
            break;
        }
        err = kv_fill(kr, ino, first + i, buf, lens[i]);
        if (!err)
            *stored += lens[i];
        if (err == EBADMSG) {
            log_error("vfs: run %s member '%s' chunk %u: checksum mismatch "
                      "(the tarball %s does not hold what its index says): "
                      "not served", run, member, first + i, key);
            err = EIO;
        } else if (err) {
            log_error("vfs: run %s member '%s' chunk %u: storing failed: %s",
                      run, member, first + i, strerror(err));
            err = err == ENOSPC ? ENOSPC : EIO;
        }
    }
    vfs_xfer_end(v, &x);
    fetch_stream_close(s);
    free(buf);
    pthread_mutex_lock(&v->lock);
    v->stats.range_fetches++;
    v->stats.range_bytes += got;
    v->stats.bytes_fetched += got;
    if (err) {
        v->stats.fetch_failures++;
        v->stats.range_fetch_failures++;
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

/* The run's bytes on disk after a fill stored something (no lock held),
 * or 0 if unknown: usage then follows the disk, KC overhead and reused
 * space included, not an estimate. */
uint64_t vfs_run_disk_bytes(vfs *v, const char *run, uint64_t stored)
{
    struct kv_runinfo ri;
    if (!stored || kv_cache_runinfo(v->cache, run, &ri) != 0)
        return 0;
    return ri.bytes;
}

/* A fetch ended (lock held): record it, wake the blocked and take the
 * parked callers; frees f if nobody waits on its cv. */
struct vfs_waiter *vfs_fill_done_locked(vfs *v, struct vfs_fill *f, int err,
                                        uint64_t stored, uint64_t disk)
{
    /* Eviction sees the run grow: by what it stored, less the space of
     * its own dropped chunks the fill reused (vfs_room_for_fill); then the
     * size on disk, when known, is the truth. */
    uint64_t reuse = stored < f->run->free_inside ? stored
                                                  : f->run->free_inside;
    f->run->free_inside -= reuse;
    if (disk)
        f->run->bytes = disk;
    else
        f->run->bytes += stored - reuse;
    if (stored)
        f->run->no_data = false;
    f->done = true;
    f->err = err;
    fill_unlink_locked(f);
    pthread_cond_broadcast(&f->cv);
    struct vfs_waiter *w = f->parked;
    f->parked = NULL;
    if (f->waiters == 0) {
        pthread_cond_destroy(&f->cv);
        free(f);
    }
    return w;
}

/* A range fetch on a fetch thread, for parked readers: it holds a pin and
 * a handle user of the run until done. */
struct fill_job {
    struct vfs_fill *f;
    struct vfs_handle *h;
    char *key;
};

static void fill_job_run(vfs *v, void *arg)
{
    struct fill_job *fj = arg;
    struct vfs_fill *f = fj->f;
    struct vfs_run *run = f->run;
    pthread_mutex_lock(&v->lock);
    bool cancelled = v->cancelled;
    pthread_mutex_unlock(&v->lock);
    uint64_t stored = 0;
    int err = cancelled ? EAGAIN
                        : vfs_lazy_fetch(v, fj->h->kr, run->name, fj->key,
                                         f->ino, f->first, f->count, &stored);
    uint64_t disk = vfs_run_disk_bytes(v, run->name, stored);
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = vfs_fill_done_locked(v, f, err, stored, disk);
    vfs_prefetch_note_locked(v, run, fj->h, stored);
    struct vfs_handle *old = vfs_handle_put_locked(v, fj->h);
    run->pins--;
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(old);
    vfs_park_wake(w, err);
    if (stored)
        vfs_house_kick(v);
    free(fj->key);
    free(fj);
}

/* Make the absent chunks [first, first+count) of ino present: fetch the
 * ones nobody is fetching (claimed in one range), or wait for whoever is.
 * A parkable caller (park.c) waits for neither: the fetch goes to a fetch
 * thread and EINPROGRESS comes back at once.  Errors: EIO (fetch or
 * checksum failure, logged), ENOSPC, EINPROGRESS, EAGAIN (cancelled). */
static int fill_chunks(vfs *v, struct vfs_ref *ref, kv_ino ino,
                       uint32_t first, uint32_t count)
{
    struct vfs_run *run = ref->run;
    struct vfs_park *park = vfs_park_slot();
    /* Where the chunk lies, for a parkable caller: the stream of a run
     * being prefetched may be about to bring it. */
    uint64_t tar_off = UINT64_MAX;
    uint32_t clen, ccrc;
    if (park && kv_chunk_source(ref->h->kr, ino, first, &tar_off, &clen,
                                &ccrc) != 0)
        tar_off = UINT64_MAX;
    pthread_mutex_lock(&v->lock);
    struct vfs_fill *f = vfs_fill_find_locked(v, run, ino, first);
    if (f && park) {
        int err = vfs_park_locked(v, &f->parked);
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    if (!f && park && park->wake_err && !park->parked) {
        /* The fetch this call was parked on failed: report it once; the
         * next READ tries again. */
        int err = park->wake_err == ECANCELED ? EAGAIN : park->wake_err;
        park->wake_err = 0;
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    if (!f && park && run->prefetching && ino > run->pf_lo &&
        ino <= run->pf_hi && tar_off != UINT64_MAX && tar_off >= run->pf_at &&
        tar_off - run->pf_at <= VFS_PREFETCH_WAIT_AHEAD) {
        /* Called again when the stream has stored its next batch: then
         * its chunk is there, claimed (it waits for that), still ahead
         * (it waits on), or passed by (it fetches it itself). */
        int err = vfs_park_locked(v, &run->pf_waiters);
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    if (f) {
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&f->cv, &v->lock);
        int err = f->err;
        if (--f->waiters == 0) {
            pthread_cond_destroy(&f->cv);
            free(f);
        }
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    /* Claim first.. up to the first chunk someone else is fetching. */
    uint32_t n = 1;
    while (n < count && !vfs_fill_find_locked(v, run, ino, first + n))
        n++;
    f = calloc(1, sizeof *f);
    char *key = run->key ? strdup(run->key) : NULL;
    if (!f || !key) {
        pthread_mutex_unlock(&v->lock);
        free(f);
        free(key);
        return run->key ? ENOMEM : EIO;
    }
    f->run = run;
    f->ino = ino;
    f->first = first;
    f->count = n;
    pthread_cond_init(&f->cv, NULL);
    vfs_fill_link_locked(v, f);
    if (park) {
        struct fill_job *fj = malloc(sizeof *fj);
        int err = fj ? 0 : ENOMEM;
        if (fj) {
            *fj = (struct fill_job){ .f = f, .h = ref->h, .key = key };
            err = vfs_pool_submit_locked(v, fill_job_run, fj);
        }
        if (err) {
            free(fj);
            free(key);
            struct vfs_waiter *w = vfs_fill_done_locked(v, f, EAGAIN, 0, 0);
            pthread_mutex_unlock(&v->lock);
            vfs_park_wake(w, EAGAIN);
            return EAGAIN;
        }
        ref->h->users++;        /* the job's */
        run->pins++;
        err = vfs_park_locked(v, &f->parked);
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    pthread_mutex_unlock(&v->lock);

    uint64_t stored = 0;
    int err = vfs_lazy_fetch(v, ref->h->kr, run->name, key, ino, first, n,
                             &stored);
    free(key);
    uint64_t disk = vfs_run_disk_bytes(v, run->name, stored);

    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = vfs_fill_done_locked(v, f, err, stored, disk);
    vfs_prefetch_note_locked(v, run, ref->h, stored);
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, err);
    if (stored)
        vfs_house_kick(v);
    return err;
}

int vfs_lazy_read(vfs *v, struct vfs_ref *ref, kv_ino ino, uint64_t off,
                  void *buf, size_t len, size_t *got, bool *eof)
{
    kv_run *kr = ref->h->kr;
    for (int tries = 0;; tries++) {
        int err = kv_read(kr, ino, off, buf, len, got, eof);
        if (err != ENODATA)
            return err;
        if (!v->backend || tries >= 64)
            return EIO;
        /* Sequential reader (the chunk before is present, or this is the
         * start): fetch a few chunks ahead too. */
        uint32_t c = (uint32_t)(off / KV_CHUNK), first, count;
        uint64_t want = len;
        uint32_t before = 0, bc = 0;
        bool seq = c == 0 ||
                   (kv_missing(kr, ino, (uint64_t)(c - 1) * KV_CHUNK, 1, 1,
                               &before, &bc) == 0 && bc == 0);
        if (seq)
            want += (uint64_t)VFS_READAHEAD_CHUNKS * KV_CHUNK;
        err = kv_missing(kr, ino, off, want, VFS_FILL_MAX_CHUNKS, &first,
                         &count);
        if (err)
            return err;
        if (count == 0)
            continue;           /* filled meanwhile */
        err = fill_chunks(v, ref, ino, first, count);
        if (err)
            return err;
    }
}

int vfs_lazy_fill_run(vfs *v, struct vfs_ref *ref)
{
    kv_run *kr = ref->h->kr;
    uint64_t present, total;
    int err = kv_run_presence(kr, &present, &total);
    if (err || total == 0)
        return err;             /* an ordinary run (or settled already) */
    /* Eviction may drop chunks while this fills others: fill, then settle
     * (which refuses while anything is absent), a few times at most. */
    for (int round = 0; round < 4; round++) {
        if (present < total) {
            if (!v->backend)
                return EIO;
            log_info("vfs: run %s is about to change: fetching its absent "
                     "data first (%llu of %llu bytes present)",
                     ref->run->name, (unsigned long long)present,
                     (unsigned long long)total);
        }
        kv_ino ino = 0;
        while (present < total && (err = kv_absent_next(kr, ino, &ino)) == 0) {
            for (;;) {
                uint32_t first, count;
                err = kv_missing(kr, ino, 0, UINT64_MAX, VFS_FILL_MAX_CHUNKS,
                                 &first, &count);
                if (err || count == 0)
                    break;
                if ((err = fill_chunks(v, ref, ino, first, count)) != 0)
                    return err;
            }
            if (err)
                return err;
        }
        if (err && err != ENOENT)
            return err;
        /* Whole: from now on an ordinary run, whose data no eviction
         * drops (a change and its write-back see every byte). */
        err = kv_absent_settle(kr);
        if (err != EAGAIN)
            return err;
        if ((err = kv_run_presence(kr, &present, &total)) != 0)
            return err;
    }
    return EAGAIN;
}
