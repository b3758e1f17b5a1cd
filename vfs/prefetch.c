/* prefetch.c: prefetch = auto: past a threshold of range-fetched bytes, the rest of an index-first run fetched in the background by one stream in tarball order, its chunks stored in batches and claimed as fills (single flight with the readers, who may park on the stream). */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- prefetch = auto: the rest of a run in the background -------------- */

/* Present bytes between two absent chunks that the background stream reads
 * and drops rather than open another range GET (tar headers, members
 * readers fetched already). */
#define VFS_PREFETCH_GAP ((uint64_t)256 << 10)
/* No prefetch of a run starts within this long of the end of the last. */
#define VFS_PREFETCH_QUIET_MS 10000
/* ... and within this long when the last found the run over half of what
 * the cache may hold (a 100 GB run read through a 4 GiB cache logged that,
 * and started a job, every prefetch_after bytes). */
#define VFS_PREFETCH_TOO_BIG_MS 600000
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
    uint64_t disk = vfs_run_disk_bytes(v, run->name, stored);
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
        struct vfs_waiter *w = vfs_fill_done_locked(v, st->fills[j].f,
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
        if (vfs_fill_find_locked(v, run, ino, first)) {
            pthread_mutex_unlock(&v->lock);
            c = first + 1;
            continue;
        }
        uint32_t n = 1;
        while (n < count && !vfs_fill_find_locked(v, run, ino, first + n))
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
        vfs_fill_link_locked(v, f);
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
    uint64_t bound = err ? 0 : vfs_cache_bound(v);
    if (bound && total > bound / 2) {
        log_info("vfs: run %s (%llu bytes) is over half of what the cache may "
                 "hold (%llu bytes: cache_limit or its filesystem): not "
                 "prefetched, its files are fetched as they are read",
                 run->name, (unsigned long long)total,
                 (unsigned long long)bound);
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
    run->prefetch_too_big = err == EFBIG;
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
void vfs_prefetch_note_locked(vfs *v, struct vfs_run *run,
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
    /* Too big for the cache a moment ago: read file by file, without a
     * job (and its log line, and readers waiting for its first batch)
     * every prefetch_after bytes; looked at again after a while, in case
     * the cache grew. */
    if (run->prefetch_too_big &&
        tclock_mono_ms() - run->prefetch_end_ms < VFS_PREFETCH_TOO_BIG_MS)
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
