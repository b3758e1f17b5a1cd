/* lazy.c: index-first runs on the vfs side: load a run from its tarball's index sidecar, and fill absent member chunks by range fetch (verified, single flight, with read-ahead), and with prefetch = auto the rest of a run in the background. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "kvstore/tarindex.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An index bigger than this is not fetched (a hostile or broken sidecar
 * must not make the server allocate without bound).  1M members with
 * their paths take well under 64 MiB. */
#define VFS_INDEX_MAX ((size_t)256 << 20)

/* Read-ahead for sequential readers: absent chunks fetched beyond the one
 * a READ needs, when the chunk before it is present (or it is the first). */
#define VFS_READAHEAD_CHUNKS 4
/* At most this many chunks in one range GET. */
#define VFS_FILL_MAX_CHUNKS 8
/* A reader of a chunk this far ahead of the stream of a run being
 * prefetched waits for the stream (parked) rather than fetch it itself:
 * the stream gets there soon (about 30 ms on a local NAS, 0.3 s at
 * 100 MB/s), and a range GET of its own costs a request, a commit pair
 * and the run's write lock while the stream is storing (a pass over a run
 * of 8 KiB files made hundreds).  Further ahead, or behind the stream, it
 * fetches the chunk itself. */
#define VFS_PREFETCH_WAIT_AHEAD ((uint64_t)32 << 20)

/* ---- index-first load ------------------------------------------------ */

/* GET key's sidecar into a malloc'd buffer.  Errors: ENOENT (no sidecar),
 * EFBIG (over VFS_INDEX_MAX), EIO, ENOMEM. */
static int get_sidecar(vfs *v, const char *key, void **out, size_t *outlen)
{
    char ikey[1100];
    if (snprintf(ikey, sizeof ikey, "%s%s", key, TIX_SUFFIX) >=
        (int)sizeof ikey)
        return ENOENT;
    fetch_stream *s;
    int err = fetch_get(v->backend, ikey, 0, 0, &s);
    if (err)
        return err;
    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        err = ENOMEM;
    while (!err) {
        if (len == cap) {
            if (cap >= VFS_INDEX_MAX) {
                err = EFBIG;
                break;
            }
            size_t ncap = cap * 2 > VFS_INDEX_MAX ? VFS_INDEX_MAX : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                err = ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = fetch_read(s, buf + len, cap - len);
        if (n < 0)
            err = (int)-n;
        else if (n == 0)
            break;
        else
            len += (size_t)n;
    }
    fetch_stream_close(s);
    pthread_mutex_lock(&v->lock);
    v->stats.bytes_fetched += len;
    v->stats.index_fetches++;
    if (err)
        v->stats.index_fetch_failures++;
    pthread_mutex_unlock(&v->lock);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

int vfs_lazy_load_index(vfs *v, struct vfs_run *r, const char *key,
                        const struct fetch_objinfo *oi, bool *served)
{
    *served = false;
    const char *name = r->name;
    int64_t t0 = tclock_mono_ms();
    void *buf = NULL;
    size_t len = 0;
    int err = get_sidecar(v, key, &buf, &len);
    if (err == ENOENT)
        return ENOENT;
    if (err) {
        log_warn("vfs: index of %s could not be read (%s): fetching the "
                 "whole tarball", key, strerror(err));
        return err;
    }
    tix_index *ix = NULL;
    char why[256] = "";
    err = tix_parse(buf, len, &ix, why, sizeof why);
    free(buf);
    if (err) {
        log_warn("vfs: index of %s is corrupt: %s; ignored, fetching the "
                 "whole tarball", key, why[0] ? why : strerror(err));
        return EBADMSG;
    }
    struct tix_source actual;
    memset(&actual, 0, sizeof actual);
    actual.size = oi->size;
    snprintf(actual.version, sizeof actual.version, "%s", oi->version);
    snprintf(actual.sha256, sizeof actual.sha256, "%s", oi->sha256);
    if (!tix_matches(ix, &actual)) {
        log_warn("vfs: index of %s does not match its tarball: ignored, "
                 "fetching the whole tarball", key);
        tix_free(ix);
        return ESTALE;
    }
    /* Served while it is built: a name is there once placed, so the
     * first file of a run of a million waits for its own member, not for
     * the million (a listing waits for the whole tree). */
    struct kv_ingest_result res;
    struct vfs_stream *st = vfs_stream_new(v, r, key, oi->version);
    kv_run *kr = NULL;
    if (st) {
        vfs_stream_index(st);
        struct kv_ingest_watch w;
        vfs_stream_watch(st, &w);
        err = kv_ingest_index_stream(v->cache, name, ix, oi->version, &w,
                                     &kr, &res);
    } else {
        err = kv_ingest_index(v->cache, name, ix, oi->version, &res);
    }
    tix_free(ix);
    if (err)
        log_warn("vfs: run %s cannot be built from its index: %s%s%s; "
                 "fetching the whole tarball", name, strerror(err),
                 res.error[0] ? ": " : "", res.error);
    else
        log_info("vfs: run %s loaded from the index of %s (%s): %zu bytes "
                 "of index, %llu files in %lld ms%s; file data is fetched "
                 "on read", name, key, oi->version, len,
                 (unsigned long long)res.files,
                 (long long)(tclock_mono_ms() - t0),
                 st ? ", served while built" : "");
    if (st)
        vfs_stream_end(v, st, kr, err ? ERESTART : 0, served);
    return err;
}

/* ---- range fetch and fill -------------------------------------------- */

/* One range of chunks of one file being fetched; readers needing any of
 * them wait for it instead of fetching again. */
struct vfs_fill {
    struct vfs_run *run;
    kv_ino ino;
    uint32_t first, count;
    bool done;
    int err;
    int waiters;
    pthread_cond_t cv;
    struct vfs_waiter *parked;  /* parked callers (park.c): woken when done */
    struct vfs_fill *next, **pprev; /* in its bucket of v->fills */
};

static struct vfs_fill **fill_bucket(vfs *v, const struct vfs_run *run,
                                     kv_ino ino)
{
    uint64_t h = ((uint64_t)(uintptr_t)run >> 4) ^ ino;
    h *= UINT64_C(0x9e3779b97f4a7c15);
    return &v->fills[(h >> 32) % VFS_FILL_BUCKETS];
}

static struct vfs_fill *fill_find_locked(vfs *v, struct vfs_run *run,
                                         kv_ino ino, uint32_t chunk)
{
    for (struct vfs_fill *f = *fill_bucket(v, run, ino); f; f = f->next)
        if (f->run == run && f->ino == ino && !f->done &&
            chunk >= f->first && chunk - f->first < f->count)
            return f;
    return NULL;
}

static void fill_link_locked(vfs *v, struct vfs_fill *f)
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

/* A fetch ended (lock held): record it, wake the blocked and take the
 * parked callers; frees f if nobody waits on its cv. */
/* The run's bytes on disk after a fill stored something (no lock held),
 * or 0 if unknown: usage then follows the disk, KC overhead and reused
 * space included, not an estimate. */
static uint64_t disk_bytes_after(vfs *v, const char *run, uint64_t stored)
{
    struct kv_runinfo ri;
    if (!stored || kv_cache_runinfo(v->cache, run, &ri) != 0)
        return 0;
    return ri.bytes;
}

static struct vfs_waiter *fill_done_locked(vfs *v, struct vfs_fill *f,
                                           int err, uint64_t stored,
                                           uint64_t disk)
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

static void auto_note_locked(vfs *v, struct vfs_run *run,
                             struct vfs_handle *h, uint64_t stored);

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
    uint64_t disk = disk_bytes_after(v, run->name, stored);
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = fill_done_locked(v, f, err, stored, disk);
    auto_note_locked(v, run, fj->h, stored);
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
    struct vfs_fill *f = fill_find_locked(v, run, ino, first);
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
    while (n < count && !fill_find_locked(v, run, ino, first + n))
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
    fill_link_locked(v, f);
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
            struct vfs_waiter *w = fill_done_locked(v, f, EAGAIN, 0, 0);
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
    uint64_t disk = disk_bytes_after(v, run->name, stored);

    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = fill_done_locked(v, f, err, stored, disk);
    auto_note_locked(v, run, ref->h, stored);
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, err);
    if (stored)
        vfs_house_kick(v);
    return err;
}

/* ---- prefetch = auto: the rest of a run in the background -------------- */

/* Present bytes between two absent chunks that the background stream reads
 * and drops rather than open another range GET (tar headers, members
 * readers fetched already). */
#define VFS_PREFETCH_GAP ((uint64_t)256 << 10)
/* No prefetch of a run starts within this long of the end of the last. */
#define VFS_PREFETCH_QUIET_MS 10000
/* Absent files taken at a time, put in tarball order, then fetched. */
#define VFS_PREFETCH_BATCH 65536

/* The background fetch of one run: a fetch-thread job holding a pin and a
 * handle user of the run until done. */
struct prefetch_job {
    struct vfs_run *run;
    struct vfs_handle *h;
    char *key;
};

/* Absent files found per hold of the run's read lock. */
#define VFS_PREFETCH_SCAN 4096

/* The stream is read in pieces of this size into the job's buffer, not
 * member by member: a run of 8 KiB members cost two backend reads (a
 * pread each on a NAS) per member, for its header and its data. */
#define VFS_PREFETCH_READ ((size_t)256 << 10)

/* Its range GET, open from pos to the end of the tarball. */
struct pf_stream {
    fetch_stream *s;
    struct vfs_xfer x;
    uint64_t pos;               /* tarball offset of its next byte */
    uint64_t got;               /* bytes taken in all, dropped ones too */
    unsigned gets;              /* range GETs opened */
    char *buf;                  /* VFS_PREFETCH_READ: read, not yet taken */
    size_t at, have;            /* buf[at, have) holds the bytes from pos */
};

static void pf_close(vfs *v, struct pf_stream *ps)
{
    if (!ps->s)
        return;
    vfs_xfer_end(v, &ps->x);
    fetch_stream_close(ps->s);
    ps->s = NULL;
    ps->at = ps->have = 0;
}

/* Take up to n bytes from the stream into dst (NULL: drop them), reading
 * a piece when the buffer is empty.  Returns how many (> 0), or an error
 * of fetch_read as a negative errno (a clean end is EIO: the index said
 * the bytes were there). */
static ssize_t pf_take(struct pf_stream *ps, char *dst, size_t n)
{
    if (ps->at == ps->have) {
        ssize_t r = fetch_read(ps->s, ps->buf, VFS_PREFETCH_READ);
        if (r <= 0)
            return r < 0 ? r : -EIO;
        ps->at = 0;
        ps->have = (size_t)r;
    }
    size_t m = ps->have - ps->at < n ? ps->have - ps->at : n;
    if (dst)
        memcpy(dst, ps->buf + ps->at, m);
    ps->at += m;
    ps->pos += m;
    ps->got += m;               /* what the stream used, as before it read
                                   ahead: a piece read past the last chunk
                                   or dropped at a reopen is not counted */
    return (ssize_t)m;
}

/* Read the n bytes (n <= KV_CHUNK) at tarball offset off into buf: from the
 * open stream when off is at most VFS_PREFETCH_GAP ahead of it (the bytes
 * between are dropped), else from a new range GET from off to the end.
 * Errors: those of fetch_get/fetch_read (ECANCELED at shutdown), EIO. */
static int pf_read(vfs *v, struct pf_stream *ps, const char *key,
                   uint64_t off, char *buf, size_t n)
{
    if (ps->s && (off < ps->pos || off - ps->pos > VFS_PREFETCH_GAP))
        pf_close(v, ps);
    if (!ps->s) {
        int err = fetch_get(v->backend, key, off, 0, &ps->s);
        if (err) {
            ps->s = NULL;
            return err;
        }
        vfs_xfer_begin(v, &ps->x, ps->s);
        ps->pos = off;
        ps->gets++;
    }
    while (ps->pos < off) {     /* first the bytes up to off, dropped */
        uint64_t gap = off - ps->pos;
        ssize_t r = pf_take(ps, NULL, gap < SIZE_MAX ? (size_t)gap : SIZE_MAX);
        if (r < 0)
            return (int)-r;
    }
    for (size_t have = 0; have < n;) {
        ssize_t r = pf_take(ps, buf + have, n - have);
        if (r < 0)
            return (int)-r;
        have += (size_t)r;
    }
    return 0;
}

/* Chunks the stream has read wait here and are stored together, one
 * kv_fill_batch (two commits) for up to this many bytes or chunks, instead
 * of two commits per chunk: a run of 8 KiB files cost a commit pair per
 * file.  Their claims (fills) are held until then, so a reader of one of
 * them waits for at most one batch. */
#ifndef VFS_STORE_BATCH_BYTES
#define VFS_STORE_BATCH_BYTES ((size_t)4 << 20)
#endif
#ifndef VFS_STORE_BATCH_CHUNKS
#define VFS_STORE_BATCH_CHUNKS 512u
#endif

/* A claim with chunks in the store batch; closed: all its chunks are in. */
struct pf_claim {
    struct vfs_fill *f;
    bool closed;
    uint64_t stored;
    int err;
};

struct pf_store {
    char *buf;                  /* VFS_STORE_BATCH_BYTES */
    size_t used;
    struct kv_fill_chunk cs[VFS_STORE_BATCH_CHUNKS];
    size_t nc;
    struct pf_claim fills[VFS_STORE_BATCH_CHUNKS];  /* the last may be open */
    size_t nf;
    uint64_t stored;            /* bytes stored by all batches */
};

/* Store the batch (kv_fill_batch) and complete its closed claims, waking
 * their readers; an open claim stays (its chunks stored so far are).
 * Errors: EIO (checksum mismatch, logged, or a store failure), ENOSPC. */
static int pf_flush(vfs *v, struct pf_store *st, struct vfs_run *run,
                    kv_run *kr, const char *key)
{
    int err = 0;
    if (st->nc) {
        err = kv_fill_batch(kr, st->cs, st->nc);
        if (err)
            log_error("vfs: run %s: storing %zu prefetched chunk(s) failed: "
                      "%s", run->name, st->nc, strerror(err));
    }
    size_t at = 0;
    for (size_t i = 0; i < st->nc; i++) {
        struct kv_fill_chunk *c = &st->cs[i];
        int cerr = c->err;
        if (cerr == EBADMSG) {
            char member[512];
            if (kv_absent_member(kr, c->ino, member, sizeof member) != 0)
                snprintf(member, sizeof member, "inode %llu",
                         (unsigned long long)c->ino);
            log_error("vfs: run %s member '%s' chunk %u: checksum mismatch "
                      "(the tarball %s does not hold what its index says): "
                      "not served", run->name, member, c->chunk, key);
        }
        if (cerr)
            cerr = cerr == ENOSPC ? ENOSPC : EIO;
        if (!err)
            err = cerr;
        /* The claim holding this chunk: claims and chunks are both in
         * stream order, so one forward walk finds them all. */
        while (at < st->nf &&
               !(st->fills[at].f->ino == c->ino &&
                 c->chunk >= st->fills[at].f->first &&
                 c->chunk - st->fills[at].f->first < st->fills[at].f->count))
            at++;
        if (at < st->nf) {
            if (cerr && !st->fills[at].err)
                st->fills[at].err = cerr;
            else if (!cerr)
                st->fills[at].stored += c->len;
        }
        if (!cerr)
            st->stored += c->len;
    }
    st->nc = 0;
    st->used = 0;
    uint64_t stored = 0;
    for (size_t j = 0; j < st->nf; j++)
        stored += st->fills[j].stored;
    /* The run's size on disk, when known, is set by the last claim
     * completed; the ones before it add what they stored. */
    uint64_t disk = disk_bytes_after(v, run->name, stored);
    size_t last = st->nf;
    for (size_t j = 0; j < st->nf; j++)
        if (st->fills[j].closed)
            last = j;
    size_t keep = 0;
    for (size_t j = 0; j < st->nf; j++) {
        if (!st->fills[j].closed) {
            st->fills[keep++] = st->fills[j];
            continue;
        }
        pthread_mutex_lock(&v->lock);
        struct vfs_waiter *w = fill_done_locked(v, st->fills[j].f,
                                                st->fills[j].err,
                                                st->fills[j].stored,
                                                j == last ? disk : 0);
        pthread_mutex_unlock(&v->lock);
        vfs_park_wake(w, st->fills[j].err);
    }
    st->nf = keep;
    for (size_t j = 0; j < keep; j++)
        st->fills[j].stored = 0;
    /* Readers waiting for the stream to come near look again. */
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *pw = run->pf_waiters;
    run->pf_waiters = NULL;
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(pw, 0);
    if (stored)
        vfs_house_kick(v);
    return err;
}

/* Read chunks [first, first+n) of ino (claimed by the caller as f; src:
 * where each lies, from kv_absent_chunks) through the stream into the
 * store batch, storing the batch whenever it is full; *at_end: the file's
 * last chunk was among them.  Errors: EIO (fetch or checksum, logged),
 * ENOSPC, ECANCELED. */
static int pf_fill(vfs *v, struct pf_stream *ps, struct pf_store *st,
                   struct vfs_run *run, kv_run *kr, const char *key,
                   struct vfs_fill *f, const struct kv_chunk_src *src,
                   bool *at_end)
{
    st->fills[st->nf++] = (struct pf_claim){ .f = f };
    *at_end = false;
    int err = 0;
    for (uint32_t i = 0; !err && i < f->count; i++) {
        uint32_t c = src[i].chunk, len = src[i].len, crc = src[i].crc;
        uint64_t off = src[i].tar_off;
        if (st->used + len > VFS_STORE_BATCH_BYTES ||
            st->nc == VFS_STORE_BATCH_CHUNKS) {
            if ((err = pf_flush(v, st, run, kr, key)) != 0)
                break;
        }
        char *buf = st->buf + st->used;
        err = pf_read(v, ps, key, off, buf, len);
        if (err == ECANCELED)
            break;
        if (err) {
            log_error("vfs: prefetch of run %s from %s failed at offset "
                      "%llu: %s", run->name, key, (unsigned long long)off,
                      strerror(err));
            pf_close(v, ps);
            err = EIO;
            break;
        }
        st->cs[st->nc++] = (struct kv_fill_chunk){
            .ino = f->ino, .chunk = c, .buf = buf, .len = len, .crc = crc,
            .have_crc = true };
        st->used += len;
        *at_end = len < KV_CHUNK;   /* a short chunk is the file's last */
    }
    /* All its chunks are in the batch (or it failed): it completes with
     * the batch.  It is the last claim in fills: the ones before it were
     * closed by their own pf_fill, and a flush keeps only open claims. */
    if (st->nf && st->fills[st->nf - 1].f == f) {
        struct pf_claim *cl = &st->fills[st->nf - 1];
        cl->closed = true;
        if (err && !cl->err)
            cl->err = err;
    }
    if (!err && st->nf == VFS_STORE_BATCH_CHUNKS)
        err = pf_flush(v, st, run, kr, key);
    return err;
}

/* Fetch the absent chunks of ino that nobody is fetching, through the
 * stream, claiming them as fills (single flight with the readers: a
 * reader of a claimed chunk parks on the fill, and is answered when the
 * batch holding it is stored).  Errors: those of pf_fill, ENOMEM, EIO. */
static int pf_file(vfs *v, struct pf_stream *ps, struct pf_store *st,
                   struct prefetch_job *pj, kv_run *kr, kv_ino ino)
{
    struct vfs_run *run = pj->run;
    struct kv_chunk_src src[VFS_FILL_MAX_CHUNKS];
    int err = 0;
    uint32_t c = 0;
    while (!err) {
        pthread_mutex_lock(&v->lock);
        bool cancelled = v->cancelled;
        pthread_mutex_unlock(&v->lock);
        if (cancelled) {
            err = ECANCELED;
            break;
        }
        uint32_t count;
        err = kv_absent_chunks(kr, ino, c, VFS_FILL_MAX_CHUNKS, src, &count);
        if (err || count == 0)
            break;
        uint32_t first = src[0].chunk;
        /* Claim the chunks nobody fetches (single flight with the
         * readers: a reader of a claimed chunk parks on this fill). */
        pthread_mutex_lock(&v->lock);
        if (fill_find_locked(v, run, ino, first)) {
            pthread_mutex_unlock(&v->lock);
            c = first + 1;
            continue;
        }
        uint32_t n = 1;
        while (n < count && !fill_find_locked(v, run, ino, first + n))
            n++;
        struct vfs_fill *f = calloc(1, sizeof *f);
        if (!f) {
            pthread_mutex_unlock(&v->lock);
            err = ENOMEM;
            break;
        }
        f->run = run;
        f->ino = ino;
        f->first = first;
        f->count = n;
        pthread_cond_init(&f->cv, NULL);
        fill_link_locked(v, f);
        run->pf_at = src[0].tar_off;
        pthread_mutex_unlock(&v->lock);

        bool at_end;
        err = pf_fill(v, ps, st, run, kr, pj->key, f, src, &at_end);
        if (at_end)
            break;              /* nothing of the file after its last chunk */
        c = first + n;
    }
    return err;
}

/* CPU time of the calling thread in ms (the log of a prefetch gives it:
 * on a busy host its wall time says little). */
static long long thread_cpu_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pf_cmp(const void *a, const void *b)
{
    const struct kv_absent_at *x = a, *y = b;
    return x->tar_off < y->tar_off ? -1 : x->tar_off > y->tar_off;
}

static void prefetch_job_run(vfs *v, void *arg)
{
    struct prefetch_job *pj = arg;
    struct vfs_run *run = pj->run;
    kv_run *kr = pj->h->kr;
    int64_t t0 = tclock_mono_ms();
    long long cpu0 = thread_cpu_ms();
    struct pf_stream ps;
    memset(&ps, 0, sizeof ps);
    uint64_t present = 0, total = 0;
    struct pf_store *st = calloc(1, sizeof *st);
    if (st)
        st->buf = malloc(VFS_STORE_BATCH_BYTES);
    ps.buf = malloc(VFS_PREFETCH_READ);
    int err = st && st->buf && ps.buf ? kv_run_presence(kr, &present, &total)
                                      : ENOMEM;
    if (!err && v->cfg.cache_limit_bytes && total > v->cfg.cache_limit_bytes / 2) {
        log_info("vfs: run %s (%llu bytes) is over half the cache limit: "
                 "not prefetched, its files are fetched as they are read",
                 run->name, (unsigned long long)total);
        err = EFBIG;
    }
    if (!err)
        log_info("vfs: run %s: %llu bytes read by range (prefetch = auto): "
                 "fetching the rest (%llu of %llu bytes absent) in the "
                 "background", run->name,
                 (unsigned long long)run->lazy_read_bytes,
                 (unsigned long long)(total - present),
                 (unsigned long long)total);
    /* Absent files in batches, each put in tarball order: one sequential
     * stream, reopened only past gaps of present data. */
    struct kv_absent_at *batch = err ? NULL
                                : malloc(VFS_PREFETCH_BATCH * sizeof *batch);
    if (!err && !batch)
        err = ENOMEM;
    kv_ino ino = 0;
    while (!err) {
        /* The run's read lock is held per scan step, not for the batch. */
        size_t nb = 0;
        bool last = false;
        kv_ino lo = ino;        /* the batch: files after lo, up to ino */
        while (nb < VFS_PREFETCH_BATCH && !last && !err) {
            size_t step = VFS_PREFETCH_BATCH - nb < VFS_PREFETCH_SCAN
                              ? VFS_PREFETCH_BATCH - nb : VFS_PREFETCH_SCAN, got;
            err = kv_absent_scan(kr, ino, batch + nb, step, &got);
            if (got)
                ino = batch[nb + got - 1].ino;
            nb += got;
            last = got < step;
        }
        if (err)
            break;
        qsort(batch, nb, sizeof *batch, pf_cmp);
        /* Readers of these files may wait for the stream (fill_chunks). */
        pthread_mutex_lock(&v->lock);
        run->pf_lo = lo;
        run->pf_hi = last ? UINT64_MAX : ino;
        run->pf_at = 0;
        pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < nb && !err; i++)
            err = pf_file(v, &ps, st, pj, kr, batch[i].ino);
        if (last)
            break;
    }
    free(batch);
    if (err == ENOENT)
        err = 0;                /* no absent file left */
    pf_close(v, &ps);
    free(ps.buf);
    /* What was read is stored (a failed stream too: its chunks are
     * verified); every claim completes, so no reader stays parked. */
    uint64_t stored_all = 0;
    if (st) {
        int ferr = pf_flush(v, st, run, kr, pj->key);
        if (!err)
            err = ferr;
        stored_all = st->stored;
        free(st->buf);
        free(st);
    }
    pthread_mutex_lock(&v->lock);
    v->stats.range_fetches += ps.gets;
    v->stats.range_bytes += ps.got;
    v->stats.bytes_fetched += ps.got;
    if (err && err != ECANCELED && err != EFBIG) {
        v->stats.fetch_failures++;
        v->stats.range_fetch_failures++;
    }
    run->prefetching = false;
    struct vfs_waiter *pw = run->pf_waiters;
    run->pf_waiters = NULL;
    run->pf_lo = run->pf_hi = 0;
    run->prefetch_end_ms = tclock_mono_ms();
    run->lazy_read_bytes = 0;   /* data evicted later counts afresh */
    run->lazy_read_fills = 0;
    struct vfs_handle *old = vfs_handle_put_locked(v, pj->h);
    run->pins--;
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(old);
    vfs_park_wake(pw, 0);       /* they fetch what is still absent */
    if (!err)
        log_info("vfs: run %s prefetched: %llu bytes stored, %llu read in "
                 "%u range GET(s), %lld ms (%lld ms CPU)", run->name,
                 (unsigned long long)stored_all, (unsigned long long)ps.got,
                 ps.gets, (long long)(tclock_mono_ms() - t0),
                 thread_cpu_ms() - cpu0);
    else if (err != EFBIG)
        log_warn("vfs: prefetch of run %s stopped: %s (%llu bytes stored); "
                 "its files are still fetched as they are read", run->name,
                 strerror(err), (unsigned long long)stored_all);
    free(pj->key);
    free(pj);
}

/* prefetch = auto (lock held): count what a reader range-fetched from run
 * (h: a handle of it the caller holds), and past the threshold hand the
 * rest of the run to a fetch thread.  Never fails: without memory or a
 * fetch thread the run is simply not prefetched now. */
static void auto_note_locked(vfs *v, struct vfs_run *run,
                             struct vfs_handle *h, uint64_t stored)
{
    if (!v->cfg.prefetch_auto || !stored || run->prefetching ||
        v->cancelled || !run->key)
        return;
    /* Not while the run is still being built: the files placed later
     * would be missed. */
    struct vfs_ref probe = { .run = run, .h = h };
    if (vfs_stream_active(&probe))
        return;
    /* Fills readers had claimed before the last prefetch got there end
     * after it: they do not start another. */
    if (run->prefetch_end_ms &&
        tclock_mono_ms() - run->prefetch_end_ms < VFS_PREFETCH_QUIET_MS)
        return;
    run->lazy_read_bytes += stored;
    run->lazy_read_fills++;
    uint64_t after = v->cfg.prefetch_after ? v->cfg.prefetch_after
                                           : VFS_PREFETCH_AFTER;
    if (run->lazy_read_bytes < after &&
        run->lazy_read_fills < VFS_PREFETCH_AFTER_FILLS)
        return;
    struct prefetch_job *pj = malloc(sizeof *pj);
    char *key = strdup(run->key);
    int err = pj && key ? 0 : ENOMEM;
    if (!err) {
        *pj = (struct prefetch_job){ .run = run, .h = h, .key = key };
        err = vfs_pool_submit_locked(v, prefetch_job_run, pj);
    }
    if (err) {
        free(pj);
        free(key);
        return;
    }
    run->prefetching = true;
    /* Until its first scan it may bring any file: readers wait for its
     * first batch to be stored, then look again. */
    run->pf_lo = 0;
    run->pf_hi = UINT64_MAX;
    run->pf_at = 0;
    h->users++;                 /* the job's */
    run->pins++;
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

/* ---- an index as a by-product of a full fetch ------------------------- */

/* The bytes of a full fetch are handed to tix_scan, running on its own
 * thread, through a bounded buffer: the fetch never waits on more than
 * VFS_TEE_BUF bytes of it, and once the scan has stopped (done, or
 * refused: a compressed tarball) bytes are simply not copied any more. */
#define VFS_TEE_BUF ((size_t)4 << 20)

struct vfs_tee {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t head, len;           /* ring: len bytes from head */
    bool eof, detached;
    int perr;                   /* the fetch failed: the scan reads -EIO */
    pthread_t th;
    struct tix_source src;
    int rc;
    void *ix;
    size_t ixlen;
    char why[256];
};

static ssize_t tee_read(void *arg, void *out, size_t cap)
{
    struct vfs_tee *t = arg;
    pthread_mutex_lock(&t->mu);
    while (t->len == 0 && !t->eof)
        pthread_cond_wait(&t->cv, &t->mu);
    ssize_t n;
    if (t->len == 0) {
        n = t->perr ? -EIO : 0;
    } else {
        size_t k = t->len < cap ? t->len : cap;
        size_t first = VFS_TEE_BUF - t->head < k ? VFS_TEE_BUF - t->head : k;
        memcpy(out, t->buf + t->head, first);
        memcpy((char *)out + first, t->buf, k - first);
        t->head = (t->head + k) % VFS_TEE_BUF;
        t->len -= k;
        n = (ssize_t)k;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void *tee_main(void *arg)
{
    struct vfs_tee *t = arg;
    t->rc = tix_scan(tee_read, t, &t->src, NULL, NULL, &t->ix, &t->ixlen,
                     t->why, sizeof t->why);
    pthread_mutex_lock(&t->mu);
    t->detached = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct vfs_tee *vfs_tee_start(const struct fetch_objinfo *oi)
{
    struct vfs_tee *t = calloc(1, sizeof *t);
    if (!t || !(t->buf = malloc(VFS_TEE_BUF))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->src.size = oi->size;
    snprintf(t->src.version, sizeof t->src.version, "%s", oi->version);
    snprintf(t->src.sha256, sizeof t->src.sha256, "%s", oi->sha256);
    if (pthread_create(&t->th, NULL, tee_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t->buf);
        free(t);
        return NULL;
    }
    return t;
}

void vfs_tee_push(struct vfs_tee *t, const void *data, size_t n)
{
    const char *p = data;
    pthread_mutex_lock(&t->mu);
    while (n > 0 && !t->detached) {
        while (t->len == VFS_TEE_BUF && !t->detached)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->detached)
            break;
        size_t tail = (t->head + t->len) % VFS_TEE_BUF;
        size_t room = VFS_TEE_BUF - t->len;
        size_t k = n < room ? n : room;
        size_t first = VFS_TEE_BUF - tail < k ? VFS_TEE_BUF - tail : k;
        memcpy(t->buf + tail, p, first);
        memcpy(t->buf, p + first, k - first);
        t->len += k;
        p += k;
        n -= k;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

struct pull_mem {
    const char *p;
    size_t n, pos;
};

static ssize_t pull_mem(void *arg, void *buf, size_t cap)
{
    struct pull_mem *m = arg;
    size_t k = m->n - m->pos < cap ? m->n - m->pos : cap;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

void vfs_tee_finish(vfs *v, struct vfs_tee *t, int fetch_err, const char *key,
                    bool upload)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->eof = true;
    t->perr = fetch_err;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    if (fetch_err || !upload) {
        /* nothing to store */
    } else if (t->rc == ENOTSUP) {
        log_debug("vfs: %s is compressed: no index (no random access)", key);
    } else if (t->rc) {
        log_warn("vfs: no index made for %s: %s", key,
                 t->why[0] ? t->why : strerror(t->rc));
    } else {
        /* Never over a newer index: create it, or replace exactly the
         * stale or corrupt one found at load. */
        char ikey[1100];
        struct fetch_objinfo old;
        struct fetch_put_opts o = { .if_none_match = true };
        snprintf(ikey, sizeof ikey, "%s%s", key, TIX_SUFFIX);
        if (fetch_stat(v->backend, ikey, &old) == 0) {
            o.if_none_match = false;
            o.if_match = old.version;
        }
        struct pull_mem m = { t->ix, t->ixlen, 0 };
        int err = fetch_put(v->backend, ikey, pull_mem, &m, &o, NULL);
        if (err)
            log_warn("vfs: storing the index %s failed: %s", ikey,
                     err == ECANCELED ? "it changed meanwhile" : strerror(err));
        else
            log_info("vfs: stored the index %s (%zu bytes), made while "
                     "fetching its tarball", ikey, t->ixlen);
    }
    free(t->ix);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->buf);
    free(t);
}
