/* stream.c: serving a run while its tarball streams in: the run's staged database is served from the first member on, calls that need a member not there yet (or still being written) park until it lands or the stream ends. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Everything below about s is guarded by v->lock, except that active, busy
 * and seq are also read without it (atomics) on the fast path. */
struct vfs_stream {
    vfs *v;
    struct vfs_run *r;
    char *key;                    /* the object streamed, and its version: */
    char version[128];            /* r's from staging on */
    struct vfs_handle *h;         /* serving the staged run; NULL until
                                     staged, or if that ran out of memory */
    bool active;                  /* staged and not ended */
    int err;                      /* how it ended */
    kv_ino busy;                  /* regular file whose data is coming */
    uint64_t busy_size;           /* its size, from its tar header */
    uint64_t seq;                 /* bumped at every data_begin and placed */
    uint64_t placed;              /* members complete so far */
    uint64_t want;                /* bloom bits of what parked calls miss */
    bool whole_listings;          /* a run built from its index: READDIR
                                     waits (vfs_stream_listing) ... */
    int level;                    /* ... until this depth is all placed
                                     (-1: none told yet) */
    struct vfs_waiter *busy_waiters, *miss_waiters, *end_waiters,
                      *level_waiters;
    pthread_cond_t cv;            /* blocking callers: seq or end changed */
};

static uint64_t want_bit(uint64_t h)
{
    return UINT64_C(1) << (h & 63);
}

static uint64_t ino_bit(kv_ino ino)
{
    return want_bit(vfs_hash(&ino, sizeof ino));
}

struct vfs_stream *vfs_stream_new(vfs *v, struct vfs_run *r, const char *key,
                                  const char *version)
{
    struct vfs_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if ((s->key = strdup(key)) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->version, sizeof s->version, "%s", version);
    s->v = v;
    s->r = r;
    s->level = -1;
    pthread_cond_init(&s->cv, NULL);
    return s;
}

void vfs_stream_index(struct vfs_stream *s)
{
    s->whole_listings = true;
}

void vfs_stream_free(struct vfs_stream *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->cv);
    free(s->key);
    free(s);
}

/* ---- the ingest's side (its thread, v->lock not held) ------------------ */

static void on_staged(void *arg, kv_run *kr)
{
    struct vfs_stream *s = arg;
    vfs *v = s->v;
    struct vfs_run *r = s->r;
    struct vfs_handle *h = calloc(1, sizeof *h);
    if (!h)
        return;                 /* served when complete, as without streaming */
    h->kr = kr;
    h->root = kv_run_root(kr);
    h->stream = s;
    h->users = 1;               /* the stream's, until it ends */
    h->last_used_ms = h->stale_checked_ms = tclock_mono_ms();
    pthread_mutex_lock(&v->lock);
    s->h = h;
    __atomic_store_n(&s->active, true, __ATOMIC_RELEASE);
    /* The run is there from now on: the load is over as far as callers
     * are concerned (they were parked or blocked on it). */
    struct vfs_handle *old = r->h;
    r->h = h;
    v->open_handles++;
    if (old) {
        old->retired = true;
        if (old->users == 0)
            v->open_handles--;
        else
            old = NULL;
    }
    /* Served, so r is what it serves: a run-level RMDIR or RENAME, a
     * write-back, names its object and version from now on. */
    char *key = strdup(s->key);
    if (key) {
        free(r->key);
        r->key = key;
    }
    snprintf(r->version, sizeof r->version, "%s", s->version);
    r->cached = true;
    r->loading = false;
    r->load_gen++;
    r->load_err = 0;
    r->version_stale = false;
    r->checked_ms = tclock_mono_ms();
    pthread_cond_broadcast(&r->cv);
    struct vfs_waiter *w = r->waiters;
    r->waiters = NULL;
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(old);
    vfs_park_wake(w, 0);
}

static void on_data_begin(void *arg, kv_ino ino, uint64_t size)
{
    struct vfs_stream *s = arg;
    pthread_mutex_lock(&s->v->lock);
    s->busy_size = size;
    __atomic_store_n(&s->busy, ino, __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->v->lock);
}

struct path_bits_acc {
    const char *path;
    size_t start;               /* where the current component begins */
    uint64_t bits;
};

static void add_prefix_bits(void *arg, size_t end, kv_ino prefix_ino)
{
    struct path_bits_acc *a = arg;
    a->bits |= want_bit(vfs_hash(a->path + a->start, end - a->start));
    a->bits |= ino_bit(prefix_ino);
    a->start = end + 1;
}

/* Bloom bits of a member's path: each component's name and each prefix's
 * inode number (what a miss for an implicit parent directory waits for).
 * One pass over the path (called under v->lock for every member placed
 * while misses wait: hashing each prefix from the start made a stream of
 * deep paths crawl, 2,000 levels cost 2,000 x 4 KB of hashing each). */
static uint64_t path_bits(const char *run, const char *relpath, kv_ino ino)
{
    struct path_bits_acc a = { .path = relpath, .start = 0, .bits = ino_bit(ino) };
    kv_ino_for_prefixes(run, relpath, add_prefix_bits, &a);
    return a.bits;
}

static void on_placed(void *arg, const char *relpath, kv_ino ino)
{
    struct vfs_stream *s = arg;
    vfs *v = s->v;
    pthread_mutex_lock(&v->lock);
    s->placed++;
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&s->cv);
    struct vfs_waiter *wb = s->busy_waiters, *wm = NULL;
    s->busy_waiters = NULL;
    if (s->miss_waiters && (s->want & path_bits(s->r->name, relpath, ino))) {
        wm = s->miss_waiters;
        s->miss_waiters = NULL;
        s->want = 0;
    }
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(wb, 0);
    vfs_park_wake(wm, 0);
}

static void on_level(void *arg, unsigned depth)
{
    struct vfs_stream *s = arg;
    vfs *v = s->v;
    pthread_mutex_lock(&v->lock);
    s->level = depth > INT32_MAX ? INT32_MAX : (int)depth;
    pthread_cond_broadcast(&s->cv);
    struct vfs_waiter *w = s->level_waiters;
    s->level_waiters = NULL;
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, 0);
}

void vfs_stream_watch(struct vfs_stream *s, struct kv_ingest_watch *w)
{
    memset(w, 0, sizeof *w);
    w->arg = s;
    w->staged = on_staged;
    w->data_begin = on_data_begin;
    w->placed = on_placed;
    if (s->whole_listings)
        w->level = on_level;
}

bool vfs_stream_end(vfs *v, struct vfs_stream *s, kv_run *kr, int err,
                    bool *served)
{
    *served = false;
    if (!s->h) {
        /* Never served while streaming: the caller goes on as for a whole
         * ingest (the published run is opened again by name). */
        kv_run_close(kr);
        vfs_stream_free(s);
        return false;
    }
    struct vfs_handle *h = s->h, *close = NULL;
    struct vfs_run *r = s->r;
    pthread_mutex_lock(&v->lock);
    /* seq first: a call that sees the stream inactive sees it moved. */
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&s->active, false, __ATOMIC_RELEASE);
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
    s->err = err;
    pthread_cond_broadcast(&s->cv);
    struct vfs_waiter *w[4] = { s->busy_waiters, s->miss_waiters,
                                s->end_waiters, s->level_waiters };
    s->busy_waiters = s->miss_waiters = s->end_waiters = NULL;
    s->level_waiters = NULL;
    s->want = 0;
    if (err) {
        /* Nothing half-visible stays: the staged run goes when its last
         * reader lets go (kv_run_close of a staged run discards it), and
         * the next call loads the run again. */
        if (r->h == h) {
            r->h = NULL;
            r->cached = false;
        }
        /* The load is the job's again until it finishes (runstate.c,
         * load_finish_locked): nobody starts another meanwhile. */
        r->loading = true;
        h->retired = true;
    }
    close = vfs_handle_put_locked(v, h);    /* the stream's user */
    pthread_mutex_unlock(&v->lock);
    /* ERESTART: another load follows; the parked calls try again. */
    int wake = !err || err == ERESTART ? 0 : err == EAGAIN ? ECANCELED : EIO;
    for (int i = 0; i < 4; i++)
        vfs_park_wake(w[i], wake);
    vfs_handle_close(close);
    *served = true;
    return true;
}

/* ---- the callers' side ---------------------------------------------- */

/* dir's depth below the run root (the root: 0), or -1 when it is not
 * there (yet) or not a directory. */
static int dir_depth(const struct vfs_ref *ref, kv_ino dir)
{
    int depth = 0;
    for (kv_ino cur = dir;; depth++) {
        kv_ino up;
        if (kv_parent(ref->h->kr, cur, &up) != 0 || depth > 4096)
            return -1;
        if (up == cur)
            return depth;
        cur = up;
    }
}

static struct vfs_stream *active_stream(const struct vfs_ref *ref)
{
    struct vfs_stream *s = ref->h ? ref->h->stream : NULL;
    if (!s || !__atomic_load_n(&s->active, __ATOMIC_ACQUIRE))
        return NULL;
    return s;
}

bool vfs_stream_active(const struct vfs_ref *ref)
{
    return active_stream(ref) != NULL;
}

uint64_t vfs_stream_mark(const struct vfs_ref *ref)
{
    struct vfs_stream *s = ref->h ? ref->h->stream : NULL;
    return s ? __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) : 0;
}

/* A file whose data is still coming: show its final size (lock held). */
static void patch_busy_locked(struct vfs_stream *s, kv_ino ino,
                              struct kv_attr *k)
{
    if (k && s->busy == ino && S_ISREG(k->mode))
        k->size = s->busy_size;
}

bool vfs_stream_unsettled(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                          kv_ino ino, struct kv_attr *k)
{
    struct vfs_stream *s = active_stream(ref);
    if (!s)
        return false;
    if (s->whole_listings && k) {
        /* A run built from its index is listed only where its members
         * are placed shallow first (vfs_stream_listing): a file is as it
         * will stay; a directory once every member below it is placed. */
        return S_ISDIR(k->mode) &&
               !vfs_stream_dir_whole(ref, ino, vfs_stream_level(v, ref));
    }
    pthread_mutex_lock(&v->lock);
    patch_busy_locked(s, ino, k);
    bool moved = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != mark;
    pthread_mutex_unlock(&v->lock);
    return moved;
}

/* Wait (lock held) on *list: park, or block on s->cv until seq moves. */
static int wait_locked(vfs *v, struct vfs_stream *s, struct vfs_waiter **list,
                       uint64_t mark)
{
    if (vfs_park_slot())
        return vfs_park_locked(v, list);    /* EINPROGRESS, or EAGAIN */
    while (s->active && __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == mark)
        pthread_cond_wait(&s->cv, &v->lock);
    if (!s->active && s->err)
        return EIO;
    return ERESTART;
}

int vfs_stream_check(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                     kv_ino ino, struct kv_attr *k, const char *missing_name,
                     bool missing_ino)
{
    /* Not active_stream(): a stream that ended after the caller read (a
     * miss from before the end, say) must still be told apart. */
    struct vfs_stream *s = ref->h ? ref->h->stream : NULL;
    if (!s)
        return 0;
    if (!__atomic_load_n(&s->active, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != mark ? ERESTART : 0;
    pthread_mutex_lock(&v->lock);
    int err = 0;
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (!s->active) {
        /* Ended during the call: what it saw may predate the end. */
        err = seq != mark ? ERESTART : 0;
    } else if (ino && s->busy == ino && !k) {
        err = wait_locked(v, s, &s->busy_waiters, seq);
    } else if (seq != mark) {
        err = ERESTART;
    } else if (ino && k) {
        patch_busy_locked(s, ino, k);
    } else if (missing_name || missing_ino) {
        if (missing_name)
            s->want |= want_bit(vfs_hash_str(missing_name));
        if (missing_ino)
            s->want |= ino_bit(ino);
        err = wait_locked(v, s, &s->miss_waiters, seq);
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_stream_wait_entries(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                            kv_ino dir)
{
    struct vfs_stream *s = ref->h ? ref->h->stream : NULL;
    if (!s || s->whole_listings)
        return 0;
    pthread_mutex_lock(&v->lock);
    int err = 0;
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (seq != mark) {
        err = ERESTART;             /* moved meanwhile: list again */
    } else if (s->active) {
        /* Woken by a member placed below dir (its path's prefixes' inode
         * numbers are in the bits), or by any member for the root. */
        s->want |= dir ? ino_bit(dir) : ~UINT64_C(0);
        err = wait_locked(v, s, &s->miss_waiters, seq);
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_stream_level(vfs *v, const struct vfs_ref *ref)
{
    struct vfs_stream *s = active_stream(ref);
    if (!s || !s->whole_listings)
        return -1;
    pthread_mutex_lock(&v->lock);
    int level = s->level;
    pthread_mutex_unlock(&v->lock);
    return level;
}

bool vfs_stream_dir_whole(const struct vfs_ref *ref, kv_ino dir, int level)
{
    if (level < 0)
        return false;
    int depth = dir_depth(ref, dir);
    return depth >= 0 && level > depth;
}

int vfs_stream_listing(vfs *v, const struct vfs_ref *ref, kv_ino dir,
                       bool want_attrs)
{
    struct vfs_stream *s = active_stream(ref);
    if (!s || !s->whole_listings)
        return 0;
    /* A directory not there yet is left to the caller's read (ESTALE,
     * then vfs_stream_check waits for it). */
    int depth = dir_depth(ref, dir);
    if (depth < 0)
        return 0;
    /* With attributes, the subdirectories' too must be whole (theirs are
     * final then): one level more. */
    if (want_attrs)
        depth++;
    pthread_mutex_lock(&v->lock);
    int err = 0;
    if (vfs_park_slot()) {
        if (s->active && s->level <= depth)
            err = vfs_park_locked(v, &s->level_waiters);
    } else {
        while (s->active && s->level <= depth)
            pthread_cond_wait(&s->cv, &v->lock);
        err = !s->active && s->err ? EIO : 0;
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_stream_wait_end(vfs *v, const struct vfs_ref *ref)
{
    struct vfs_stream *s = active_stream(ref);
    if (!s)
        return 0;
    pthread_mutex_lock(&v->lock);
    int err = 0;
    if (vfs_park_slot()) {
        if (s->active)
            err = vfs_park_locked(v, &s->end_waiters);
    } else {
        while (s->active)
            pthread_cond_wait(&s->cv, &v->lock);
        err = s->err ? EIO : 0;
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}
