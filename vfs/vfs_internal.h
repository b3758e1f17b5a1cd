/* vfs_internal.h: what the vfs/ source files share and nobody else may use:
 * the node id codec, the per-run state table (single-flight loading, open
 * handle cache), namespace listings, and the background housekeeping.
 * See doc/design.md (vfs).
 *
 * Locking: one mutex (vfs.lock) guards the run table, the listing slots and
 * the counters.  It is never held across I/O (kvstore, fetch, files): a
 * thread that must do I/O for shared state marks it busy (run->loading,
 * slot->refreshing), drops the lock, does the I/O, retakes the lock and
 * broadcasts the state's condition variable.
 */
#ifndef TARNFS_VFS_INTERNAL_H
#define TARNFS_VFS_INTERNAL_H

#include "vfs/vfs.h"
#include "kvstore/kvfs.h"
#include "fetch/fetch.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>
#include <stdatomic.h>

/* ---- node ids --------------------------------------------------------- */

/* First byte of every vfs_id.  Values are never reused for another layout. */
enum vfs_id_kind {
    VFS_KIND_ROOT        = 'R',  /* [R]                                  */
    VFS_KIND_NSDIR       = 'D',  /* [D][name]          name <= 43 bytes  */
    VFS_KIND_NSDIR_HASH  = 'd',  /* [d][hash:8]        name in catalog   */
    VFS_KIND_NODE        = 'F',  /* [F][ino:8][run]    run <= 35 bytes   */
    VFS_KIND_NODE_HASH   = 'f',  /* [f][ino:8][hash:8] run in catalog    */
};
#define VFS_NODE_INLINE_MAX  (VFS_ID_MAX - 9)
#define VFS_NSDIR_INLINE_MAX (VFS_ID_MAX - 1)
/* ino 0 in a node id means "the run's root directory", whatever inode
 * number kvstore gave it, so the run root has exactly one id. */
#define VFS_RUN_ROOT_INO     0
#define VFS_ROOT_FILEID      1
/* The cookie verifier handed out for every directory: cookies are stable
 * by themselves (hash of the name, or kvstore's sequence numbers), so the
 * verifier never needs to change. */
#define VFS_COOKIE_VERF      UINT64_C(0x7461726e66730001)

/* A decoded id.  name points into a caller buffer (NUL-terminated). */
struct vfs_node {
    enum vfs_id_kind kind;      /* normalised: ROOT, NSDIR or NODE */
    kv_ino ino;                 /* NODE: inode or VFS_RUN_ROOT_INO */
    char name[KV_RUNNAME_MAX + 1];  /* NSDIR: prefix without '/'; NODE: run */
};

/* 64-bit hash of bytes (FNV-1a with a final avalanche mix). */
uint64_t vfs_hash(const void *p, size_t n);
uint64_t vfs_hash_str(const char *s);

/* ---- the vfs object --------------------------------------------------- */

/* One open kv_run, shared by the requests using it.  A handle retired from
 * its run (evicted, replaced) closes when its last user lets go. */
struct vfs_handle {
    kv_run *kr;
    kv_ino root;
    int users;
    _Atomic bool retired;         /* written under v->lock; read without it
                                     on the change path */
    uint64_t opened_created_ns;   /* runinfo.created when opened */
    int64_t last_used_ms;         /* monotonic, for closing idle handles */
    int64_t stale_checked_ms;     /* monotonic, last kv_run_stale check */
    struct vfs_stream *stream;    /* served while its tarball streams in
                                     (stream.c); freed with the handle */
};

/* A parked call waiting for a load, check or listing (park.c). */
struct vfs_waiter {
    struct vfs_waiter *next;
    vfs_resume_fn fn;
    void *arg;
};

/* A transfer in progress, known to vfs_cancel (park.c); on the stack of
 * the thread doing it. */
struct vfs_xfer {
    fetch_stream *s;
    struct vfs_xfer *next, *prev;
};

/* A job for the fetch threads (park.c). */
struct vfs_job {
    struct vfs_job *next;
    void (*fn)(vfs *v, void *arg);
    void *arg;
};

/* Everything vfs knows about one run (published or wanted).  Never freed
 * before vfs_close, so pointers to it stay valid without a reference. */
struct vfs_run {
    char *name;
    uint64_t hash;
    struct vfs_run *next;         /* hash bucket chain */
    pthread_cond_t cv;            /* loading/evicting finished */
    int pins;                     /* requests using the run now */
    struct vfs_handle *h;         /* open handle, or NULL */
    bool loading, evicting;
    bool dropping;                /* eviction is dropping its file data */
    bool no_data;                 /* known to hold no file data eviction
                                     may drop (cleared by fills, loads) */
    uint64_t free_inside;         /* bytes of its own chunks dropped to make
                                     room, whose space inside its data file
                                     fills reuse (an estimate: the file does
                                     not shrink, so `bytes` keeps them) */
    unsigned load_gen;            /* bumped when a load finishes */
    int load_err;                 /* result of the last finished load */
    bool load_nofetch;            /* that load was not allowed to fetch */
    struct vfs_waiter *waiters;   /* parked calls: called when the load or
                                     version check in flight ends */
    bool cached;                  /* published in kvstore (as last seen) */
    bool version_stale;           /* backend holds a newer version */
    bool checking;                /* a version check is in flight */
    bool dirty;                   /* modified through vfs: never evicted */
    bool dirty_unstored;          /* storing its "dirty" metadata failed:
                                     the next change tries again */
    bool conflicted;              /* write-back met a newer object: held
                                     dirty until `tarnfs cache resolve` */
    bool writing_back;            /* a write-back of it is in progress */
    bool is_new;                  /* created at the root: no object yet */
    _Atomic pid_t held_by;        /* a `tarnfs ingest` replacing it (its
                                     pid): changes answer EAGAIN meanwhile;
                                     written under v->lock, read without */
    pthread_rwlock_t change_lock; /* changes share it; a write-back holds it
                                     exclusively while it streams the run */
    uint64_t change_gen;          /* bumped by every change */
    int64_t dirty_since_ms;       /* wall clock, first change not written */
    int64_t last_change_ms;       /* monotonic, last change */
    unsigned wb_failures;         /* write-backs failed in a row */
    int64_t wb_retry_ms;          /* monotonic: no idle retry before */
    char version[128];            /* source_version of the cached copy */
    char *key;                    /* source mode: object key last used */
    unsigned scan_gen;            /* last cache scan that saw it */
    uint64_t bytes;               /* runinfo.bytes when last seen */
    uint64_t lazy_read_bytes;     /* prefetch.c (auto): bytes readers */
    unsigned lazy_read_fills;     /*   had range-fetched, and how many fills */
    bool prefetching;             /*   the rest of it is being fetched */
    int64_t prefetch_end_ms;      /*   monotonic, when the last one ended */
    bool prefetch_too_big;        /*   the last one found it over half the
                                       cache: not tried again for a while */
    struct vfs_waiter *pf_waiters;/*   readers waiting for it to come near */
    kv_ino pf_lo, pf_hi;          /*   the files (lo, hi] it is going over */
    uint64_t pf_at;               /*   tarball offset of its latest claim */
    int64_t checked_ms;           /* monotonic, last version check */
    int64_t last_ref_ms;          /* wall clock, last reference */
    int64_t last_ref_saved_ms;    /* last_ref_ms as persisted */
};

/* One entry of a namespace listing (a directory of runs). */
struct vfs_entry {
    char *name;                   /* the component shown */
    uint64_t cookie;              /* readdir cookie: hash of the name */
    bool is_dir;                  /* nested namespace dir, else a run */
    char *key;                    /* source mode: object key of the run */
    char *version;                /* ETag / mtime:size, "" if unknown */
    struct timespec mtime;
    uint64_t size;
};

/* An immutable snapshot of one namespace directory, shared by reference. */
struct vfs_listing {
    int refs;                     /* guarded by vfs.lock */
    size_t n;
    struct vfs_entry *ents;       /* sorted by cookie */
    size_t *by_name;              /* indexes into ents, sorted by name */
    uint64_t content_hash;
    struct timespec changed;      /* the directory's mtime */
    int64_t built_ms;             /* monotonic, when listed */
};

/* The cache of one namespace directory's listing. */
struct vfs_slot {
    char *prefix;                 /* "" or "a/b/" */
    struct vfs_slot *next;
    struct vfs_listing *cur;      /* NULL until first listed */
    int64_t fetched_ms;           /* monotonic */
    bool refreshing;
    bool expired;                 /* force a refresh on next use */
    int last_err;
    unsigned gen;
    pthread_cond_t cv;
    struct vfs_waiter *waiters;   /* parked calls: called when it is listed */
};

/* Buckets of the table of chunk fetches in flight (lazy.c, prefetch.c). */
#define VFS_FILL_BUCKETS 256

struct vfs {
    struct vfs_config cfg;        /* strings below are owned copies */
    char *cache_dir, *source;
    char *meta_dir;               /* CACHE/vfs */
    kv_cache *cache;
    fetch_backend *backend;       /* NULL in cache mode */
    uint64_t fsid;
    unsigned list_ttl_ms, evict_grace_ms, high_pct, low_pct;
    unsigned writeback_delay_ms;
    char hostname[64];
    pthread_mutex_t lock;
    /* run table */
    struct vfs_run **buckets;
    size_t nbuckets, nruns;
    size_t open_handles;
    unsigned scan_gen;
    /* listing slots */
    struct vfs_slot *slots;
    /* counters (guarded by lock) */
    struct vfs_stats stats;
    /* housekeeping thread */
    pthread_t thread;
    bool thread_started, stopping;
    pthread_cond_t wake;
    bool evict_wanted;
    /* vfs_housekeep: passes asked for, and the last one asked for that a
     * finished pass had seen begin (guarded by lock) */
    uint64_t house_asked, house_done;
    pthread_cond_t house_passed;
    unsigned bg_jobs;             /* background listing refreshes */
    pthread_cond_t bg_idle;
    int64_t scanned_ms;           /* monotonic, last cache rescan */
    int64_t full_warned_ms;       /* monotonic, last "nothing evictable" */
    /* fetch threads (park.c), guarded by lock */
    unsigned pool_max, pool_threads, pool_idle;
    struct vfs_job *jobs_head, *jobs_tail;
    size_t jobs_n;                /* queued, not yet taken */
    pthread_cond_t pool_cv;       /* a job was queued, or cancel */
    bool cancelled;               /* vfs_cancel: no more fetches */
    struct vfs_xfer *xfers;       /* transfers in progress */
    unsigned stall_timeout_ms;
    /* chunk range fetches in flight (lazy.c, prefetch.c; guarded by
     * lock), hashed by run and inode: a prefetch holds hundreds at once */
    struct vfs_fill *fills[VFS_FILL_BUCKETS];
    /* known-persisted catalog hashes (small open-addressing set) */
    uint64_t *catalog;
    size_t catalog_cap, catalog_n;
    int server_lock_fd;           /* CACHE/vfs.lock, held shared */
    /* the control socket (control.c) */
    int ctl_fd, ctl_dirfd;
    char ctl_name[48];            /* PID-N.sock in CACHE/vfs/ctl */
    pthread_t ctl_thread;
    bool ctl_listening;           /* ctl_fd bound and listening */
    bool ctl_started;             /* and ctl_thread answering it */
    atomic_bool ctl_stopping;
    pthread_mutex_t ctl_lock;     /* ctl_active */
    pthread_cond_t ctl_idle;      /* ctl_active went to 0 */
    unsigned ctl_active;          /* connections being answered */
};

/* Bytes (and number, if runs) of the runs in the cache, from the table. */
uint64_t vfs_cached_bytes(vfs *v, uint64_t *runs);

/* ---- time ------------------------------------------------------------ */
/* Decisions (grace, delays, TTLs) read util/clock.h, which a test may
 * advance.  This is the real wall clock in ms, for what is reported or
 * kept as a timestamp ("dirty since", the stats file), never decided on. */
int64_t vfs_wall_ms(void);

/* ---- id.c -------------------------------------------------------------- */
/* Encode; may write the name catalog (errors there are logged, not fatal,
 * because the id still works while this process runs). */
void vfs_id_make_root(struct vfs_id *id);
void vfs_id_make_nsdir(vfs *v, const char *name, struct vfs_id *id);
void vfs_id_make_node(vfs *v, const char *run, kv_ino ino, struct vfs_id *id);
/* Decode (resolving hashed names through the catalog).  Errors: EBADMSG
 * (malformed), ESTALE (hash not in the catalog). */
int vfs_id_decode(vfs *v, const struct vfs_id *id, struct vfs_node *n);
/* 0 if name is a valid run or namespace name ("a", "a/b"), else EINVAL. */
int vfs_check_run_name(const char *name);
/* Path of the last-reference marker of run name (cap >= PATH_MAX). */
void vfs_marker_path(const char *meta_dir, const char *run, char *buf,
                     size_t cap);

/* ---- park.c ------------------------------------------------------------ */
/* This thread's park slot (NULL: the caller blocks), and a way to do a
 * piece of waiting work inline without parking (suspend, then restore). */
struct vfs_park *vfs_park_slot(void);
struct vfs_park *vfs_park_suspend(void);
void vfs_park_restore(struct vfs_park *p);
/* At a wait point of a parkable call (lock held): register its callback on
 * *list.  Returns EINPROGRESS (parked: the caller returns it at once), or
 * EAGAIN (cancelled, or out of memory: nothing registered; try later). */
int vfs_park_locked(vfs *v, struct vfs_waiter **list);
/* Call back and free a list taken off its owner (lock not held). */
void vfs_park_wake(struct vfs_waiter *list, int err);
/* Run fn(v, arg) on a fetch thread (lock held); threads start on demand,
 * at most pool_max.  Errors: ESHUTDOWN (cancelled), ENOMEM. */
int vfs_pool_submit_locked(vfs *v, void (*fn)(vfs *v, void *arg), void *arg);
/* Wait until every fetch thread has exited (lock not held; after cancel). */
void vfs_pool_join(vfs *v);
/* Make stream s cancellable by vfs_cancel until vfs_xfer_end (lock not
 * held; x lives on the caller's stack).  After a cancel, s is cancelled at
 * once.  Never fail. */
void vfs_xfer_begin(vfs *v, struct vfs_xfer *x, fetch_stream *s);
void vfs_xfer_end(vfs *v, struct vfs_xfer *x);

/* ---- runs.c ------------------------------------------------------------ */
enum { VFS_ACQ_NOFETCH = 1 };
/* A pinned run with an open handle, for one request. */
struct vfs_ref {
    struct vfs_run *run;
    struct vfs_handle *h;
    bool changing;                /* holds run->change_lock shared */
};
/* Find or create the state of run name (lock held). */
struct vfs_run *vfs_run_lookup_locked(vfs *v, const char *name, bool create);
/* Let go of ref (from vfs_run_acquire): its change lock, handle and pin. */
void vfs_run_release(vfs *v, struct vfs_ref *ref);
/* Whether run name is known to be in the cache (no I/O). */
bool vfs_run_is_cached(vfs *v, const char *name);
/* Mark the run of ref modified (persisted as run metadata "dirty", whose
 * value is the wall-clock ms of the first change not yet written back).
 * Called with the change lock held (vfs_run_change_begin), after the
 * change.  Errors: those of kv_run_setmeta (the change must then be
 * reported failed: a restart would not write it back). */
int vfs_run_mark_dirty(vfs *v, struct vfs_ref *ref);
/* Take ref's run change lock shared (released by vfs_run_release): a
 * write-back in progress makes the change wait until its upload ends, at
 * most VFS_CHANGE_WAIT_S seconds.  Errors: EAGAIN (still busy: ref has
 * been released; the client retries). */
#define VFS_CHANGE_WAIT_S 2
int vfs_run_change_begin(vfs *v, struct vfs_ref *ref);
/* ---- stream.c: serving a run while its tarball streams in ------------- */
struct vfs_stream;
/* State for streaming run r into the cache from object key at version
 * (NULL: out of memory; then the caller ingests the whole run before
 * serving it). */
struct vfs_stream *vfs_stream_new(vfs *v, struct vfs_run *r, const char *key,
                                  const char *version);
void vfs_stream_free(struct vfs_stream *s);
/* s streams a run built from its index: each name is there the moment it
 * is placed, and READDIR waits until the directory is whole
 * (vfs_stream_listing), so a listing is never partial. */
void vfs_stream_index(struct vfs_stream *s);
/* The kv_ingest_watch that makes r served from its first member: at
 * staging r gets a handle on the staged run and its load is over for
 * callers (the load job goes on ingesting). */
void vfs_stream_watch(struct vfs_stream *s, struct kv_ingest_watch *w);
/* The ingest returned err (vfs's view: 0, ENOENT, EIO, EAGAIN for a
 * cancel, ERESTART when another load of the run follows) with run kr (kv_ingest_stream's *out, may be NULL).  If the run
 * was served while streaming (*served, and true returned), its handle
 * stays r's on success; on failure it is withdrawn (the staged run is
 * discarded when its last reader lets go, r is not cached) and every call
 * parked on the stream is called back with EIO (ECANCELED when
 * cancelled, 0 with ERESTART: they try again).  Otherwise kr is closed and the caller goes on as for a
 * whole ingest.  s is owned by the handle or freed here. */
bool vfs_stream_end(vfs *v, struct vfs_stream *s, kv_run *kr, int err,
                    bool *served);
/* True while ref's run is streaming in. */
bool vfs_stream_active(const struct vfs_ref *ref);
/* A listing of directory dir (0: the run's root) found it empty while
 * ref's run streams in without an index: wait for an entry below it or
 * the stream's end, so a run is never shown empty because its first
 * members have not come yet.  Returns 0 (empty it is: answer), ERESTART
 * (list again), EINPROGRESS (parked), EAGAIN, EIO, as vfs_stream_check. */
int vfs_stream_wait_entries(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                            kv_ino dir);
/* Take before reading the run for a call; pass to vfs_stream_check. */
uint64_t vfs_stream_mark(const struct vfs_ref *ref);
/* After reading: the answer is final unless ref's run is streaming and
 * either ino (nonzero) is the file whose data is still coming and the call
 * needs its data (k NULL; with k, ino's attributes as read, they get its
 * final size instead), or members landed since mark, or the call missed
 * missing_name (a LOOKUP) or inode ino (missing_ino: an id, a directory
 * not there yet).  Returns 0 (answer
 * with what was read), ERESTART (read again now; never leaves vfs),
 * EINPROGRESS (parked until the member lands, a possible match arrives,
 * or the stream ends), EAGAIN (cannot park: cancelled), EIO (blocking
 * caller: the stream failed). */
int vfs_stream_check(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                     kv_ino ino, struct kv_attr *k, const char *missing_name,
                     bool missing_ino);
/* No park, no wait: whether ino's attributes k, read since mark, may be
 * out of date (READDIRPLUS then leaves them out); a file whose data is
 * still coming gets its final size in k. */
bool vfs_stream_unsettled(vfs *v, const struct vfs_ref *ref, uint64_t mark,
                          kv_ino ino, struct kv_attr *k);
/* Wait for (park on) the end of ref's stream, if any.  Errors:
 * EINPROGRESS, EAGAIN (cancelled), EIO (blocking caller: it failed). */
int vfs_stream_wait_end(vfs *v, const struct vfs_ref *ref);
/* Before listing directory dir of ref's run: if the run is being built
 * from its index (vfs_stream_index), wait for (park on) every member one
 * level below dir being placed (two levels with want_attrs: then each
 * entry's attributes are final), or the end; else 0.  Errors:
 * EINPROGRESS, EAGAIN (cancelled), EIO (blocking caller: it failed). */
int vfs_stream_listing(vfs *v, const struct vfs_ref *ref, kv_ino dir,
                       bool want_attrs);
/* The depth to which ref's run, being built from its index, is placed
 * whole now (-1: none yet, or no such build).  Cheap: one lock. */
int vfs_stream_level(vfs *v, const struct vfs_ref *ref);
/* Was directory dir whole at level (from vfs_stream_level): every member
 * one level below it placed?  Then a name missing from it in a lookup
 * made after level was taken is missing for good. */
bool vfs_stream_dir_whole(const struct vfs_ref *ref, kv_ino dir, int level);

/* ---- lazy_index.c, lazy.c, prefetch.c: index-first runs --------------- */
/* At most this many chunks in one range GET. */
#define VFS_FILL_MAX_CHUNKS 8

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

/* Build run r from the index sidecar of object key (oi: the object as
 * stat'ed now), after checking that the index matches it, serving r while
 * it is built (stream.c, vfs_stream_index): *served as vfs_stream_end
 * sets it.  Errors: ENOENT (no sidecar), anything else: the index is
 * unusable (logged: corrupt, mismatched, unreadable, refused while built:
 * then calls parked on it try again); either way the caller fetches the
 * tarball. */
int vfs_lazy_load_index(vfs *v, struct vfs_run *r, const char *key,
                        const struct fetch_objinfo *oi, bool *served);
/* Fetch absent chunks [first, first+count) (at most 8) of ino of run kr
 * (run name, object key) in one range GET, verify and store each
 * (kv_fill); *stored gets the bytes stored.  No lock held, no vfs state
 * touched but counters and, to make room first, eviction
 * (vfs_room_for_fill): the unit a fetch thread pool can run.  Errors: EIO
 * (fetch failed or a chunk's checksum mismatched: logged, nothing wrong
 * stored), EAGAIN (no room can be made now), ENOSPC. */
int vfs_lazy_fetch(vfs *v, kv_run *kr, const char *run, const char *key,
                   kv_ino ino, uint32_t first, uint32_t count,
                   uint64_t *stored);
/* kv_read for a request, fetching absent chunks first (single flight per
 * chunk, read-ahead for sequential readers).  Errors: kv_read's, EIO. */
int vfs_lazy_read(vfs *v, struct vfs_ref *ref, kv_ino ino, uint64_t off,
                  void *buf, size_t len, size_t *got, bool *eof);
/* Fetch every absent chunk of ref's run (before it is changed).  Errors:
 * EIO, ENOSPC. */
int vfs_lazy_fill_run(vfs *v, struct vfs_ref *ref);
/* The fill of run's ino claiming chunk, not done yet, or NULL (lock
 * held). */
struct vfs_fill *vfs_fill_find_locked(vfs *v, struct vfs_run *run,
                                      kv_ino ino, uint32_t chunk);
/* Enter f (run, ino, first, count set) in v->fills: a claim (lock held). */
void vfs_fill_link_locked(vfs *v, struct vfs_fill *f);
/* A fill ended (lock held): account stored (and disk, if not 0) to its
 * run, wake the blocked, take f off v->fills and return its parked callers
 * (wake them unlocked); frees f if nobody waits on its cv. */
struct vfs_waiter *vfs_fill_done_locked(vfs *v, struct vfs_fill *f, int err,
                                        uint64_t stored, uint64_t disk);
/* Run's bytes on disk after a fill stored `stored` bytes (no lock held),
 * or 0 if nothing was stored or it is unknown. */
uint64_t vfs_run_disk_bytes(vfs *v, const char *run, uint64_t stored);
/* prefetch = auto (prefetch.c, lock held): count what a reader
 * range-fetched from run (h: a handle the caller holds); past the
 * threshold a fetch thread fetches the rest of the run.  Never fails. */
void vfs_prefetch_note_locked(vfs *v, struct vfs_run *run,
                              struct vfs_handle *h, uint64_t stored);
/* An index made from the bytes of a full fetch: start a scan thread for
 * object oi (NULL if it cannot start: then no index), push every byte of
 * the object in order, then finish: joins the scan and, if fetch_err is 0
 * and upload, stores the index as key's sidecar (never over a newer one;
 * failures logged).  Frees t. */
struct vfs_tee;
struct vfs_tee *vfs_tee_start(const struct fetch_objinfo *oi);
void vfs_tee_push(struct vfs_tee *t, const void *data, size_t n);
void vfs_tee_finish(vfs *v, struct vfs_tee *t, int fetch_err,
                    const char *key, bool upload);

/* Record what kv_cache_list says about published runs (lock not held). */
int vfs_runs_scan_cache(vfs *v);
/* Close every handle; at vfs_close. */
void vfs_runs_free(vfs *v);
/* Drop a handle reference (lock held); closes a retired, unused handle
 * by returning it: the caller closes h->kr after unlocking. */
struct vfs_handle *vfs_handle_put_locked(vfs *v, struct vfs_handle *h);
void vfs_handle_close(struct vfs_handle *h);
/* Detach r's handle (v->lock held), so the next use opens the run again;
 * returns it if it can be closed now (vfs_handle_close, unlocked). */
struct vfs_handle *vfs_run_retire_locked(vfs *v, struct vfs_run *r);

/* ---- runstate.c -------------------------------------------------------- */
/* Pin run name and give it an open handle, loading (opening, fetching,
 * re-fetching a replaced version) as needed; concurrent callers share one
 * load.  Errors: ENOENT (no such run), EIO (fetch failed), EINVAL. */
int vfs_run_acquire(vfs *v, const char *name, unsigned flags,
                    struct vfs_ref *ref);
/* `tarnfs cache evict` served by this server: evict run name now unless it
 * is dirty or conflicted (refused, msg names the command that helps);
 * waits up to VFS_EVICT_WAIT_MS for requests using it; reason is for the
 * log.  msg (cap bytes) gets the answer for the tool.  Errors: EINVAL,
 * ENOENT (not cached), EBUSY (dirty, conflicted, still in use), ENOMEM,
 * EIO. */
#define VFS_EVICT_WAIT_MS 5000
int vfs_evict_now(vfs *v, const char *name, const char *reason, char *msg,
                  size_t cap);
/* Evict victim, picked by the housekeeper (lock held on entry, released on
 * return): an index-first run holding file data loses all of it (its data
 * file emptied; names, attributes and handles stay), else it is evicted
 * whole if nobody took it meanwhile (with data_only: only marked as holding
 * no data).  *freed gets the bytes the cache shrank by.  Errors: EAGAIN
 * (it could not go: try the next), others (logged). */
int vfs_run_evict_locked(vfs *v, struct vfs_run *victim, bool data_only,
                         const char *why, uint64_t *freed);
/* Drop up to want bytes of the oldest chunks of run (kr: its handle; self:
 * its state, may be NULL) to make room for its own fill (lock not held);
 * *dropped gets the bytes dropped, counted in self's free_inside (or self's
 * size, when its data file was emptied).  Errors: kv_data_drop's. */
int vfs_run_drop_oldest(vfs *v, struct vfs_run *self, const char *run,
                        kv_run *kr, uint64_t want, uint64_t *dropped);
/* Detach r's idle handle h (lock held) if h is still r's, unused, and r is
 * neither loading nor evicting; gone: r was evicted outside this server
 * (marked not cached, logged).  Returns h if detached (the caller closes it
 * unlocked), else NULL. */
struct vfs_handle *vfs_run_close_idle_locked(vfs *v, struct vfs_run *r,
                                             struct vfs_handle *h, bool gone);
/* Create run name (a MKDIR in a namespace directory): an empty run,
 * published in the cache and marked new and dirty, so that its first
 * write-back creates the object (If-None-Match).  mode/uid/gid are its
 * root's.  Errors: EEXIST, EINVAL, ENOSPC, EIO, EROFS. */
int vfs_run_create_new(vfs *v, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid);
/* RMDIR of run name at the namespace level (run_delete_rename): the run
 * must be empty; deletes its object and drops it from the cache.
 * Errors: ENOTEMPTY, ENOENT, EACCES (conflicted), EIO. */
int vfs_run_delete(vfs *v, const char *name);
/* RENAME of run from to to (run_delete_rename): uploads the run under the
 * new name (If-None-Match), deletes the old object, drops the old run from
 * the cache.  Errors: EEXIST, ENOENT, EACCES (conflicted), EINVAL, EIO. */
int vfs_run_rename(vfs *v, const char *from, const char *to);
/* A write-back found run name no longer in the cache: it is not dirty any
 * more (unless a handle is open), its mark goes (logged if it was dirty). */
void vfs_run_forget_mark(vfs *v, const char *name);
/* A write-back of r met a newer object and saved r as conflict_key: r is
 * held dirty (its mark records the key) until `tarnfs cache resolve`. */
void vfs_run_conflicted(vfs *v, struct vfs_run *r, const char *conflict_key);
/* A write-back of r uploaded version (new_key: r's first object, else
 * NULL): r's source is that object; clean (no change since, recorded): r is
 * not dirty any more and its mark goes. */
void vfs_run_written(vfs *v, struct vfs_run *r, const char *version,
                     const char *new_key, bool clean);

/* ---- upload.c ---------------------------------------------------------- */
/* The "wb-pending" metadata: "SHA256HEX SIZE" of the last tarball whose
 * upload to the run's own key got as far as its last byte.  Recorded (and
 * synced) before the backend makes the object visible, so after a crash
 * between that and recording the new version, the next write-back can tell
 * its own object (same SHA-256) from someone else's (a real conflict). */
#define WB_PENDING "wb-pending"
/* Upload run kr (top: the name of its root inside the tarball) as key,
 * compressed as key's suffix says; with pending, record the body as
 * WB_PENDING before the backend publishes it; *oi gets the object, *files
 * the members.  Errors: the upload's (ECANCELED: precondition),
 * kv_export's, ENOMEM. */
int vfs_upload_run(vfs *v, kv_run *kr, const char *top, const char *key,
                   const struct fetch_put_opts *opts, bool pending,
                   struct fetch_objinfo *oi, uint64_t *files);

/* ---- download.c -------------------------------------------------------- */
/* The bytes run name may take as it is built (from its tarball or its
 * index): the cache bound less the runs that cannot be evicted now; 0 with
 * no bound, at least 1 with one. */
uint64_t vfs_ingest_headroom(vfs *v, const char *name);
/* Stream the object key into a new published run r->name, served from its
 * first member on if serve (else it appears once whole).  With oi (the
 * object as stat'ed) and index_upload set, an uncompressed tarball's index
 * is made on the way and stored as its sidecar.  Errors: ENOENT (the
 * object is gone), EAGAIN (cancelled: shutting down), EIO (anything else, a run
 * bigger than the cache limit allows included; logged).  *served: r was
 * served while it streamed in (stream.c, vfs_stream_end). */
int vfs_download_run(vfs *v, struct vfs_run *r, const char *key,
                     const char *version, const struct fetch_objinfo *oi,
                     bool serve, bool *served);

/* ---- listing.c --------------------------------------------------------- */
/* Get the current listing of namespace dir prefix ("" or "a/b/"),
 * refreshing it if older than the TTL.  *out holds a reference.
 * Errors: ENOENT (the directory is not there), EIO. */
int vfs_listing_get(vfs *v, const char *prefix, struct vfs_listing **out);
/* The listing of prefix held now, fresh or not, never built or fetched
 * (put it after): ENOENT when none is held. */
int vfs_listing_peek(vfs *v, const char *prefix, struct vfs_listing **out);
void vfs_listing_put(vfs *v, struct vfs_listing *l);
/* Get the listing of prefix and find name in it (*e NULL if absent); a
 * miss in a listing older than the TTL waits for a fresh listing, so new
 * runs are found at once.  Errors as vfs_listing_get. */
int vfs_listing_lookup(vfs *v, const char *prefix, const char *name,
                       struct vfs_listing **out, const struct vfs_entry **e);
/* Find a name in a listing, or NULL. */
const struct vfs_entry *vfs_listing_find(const struct vfs_listing *l,
                                         const char *name);
/* First index whose cookie is > cookie. */
size_t vfs_listing_after(const struct vfs_listing *l, uint64_t cookie);
/* Force every listing to refresh at next use. */
void vfs_listings_expire(vfs *v);
/* Rebuild the listing of prefix now (after a run was created). */
void vfs_listing_refresh_now(vfs *v, const char *prefix);
void vfs_listings_free(vfs *v);
/* Split a run or nsdir name into its parent prefix ("" or "a/") and last
 * component; returns a pointer to the component inside name. */
const char *vfs_split_name(const char *name, char *prefix, size_t cap);

/* ---- ops.c: what ops.c, ops_modify.c and ops_readdir.c share ---------- */
/* *a from kvstore attributes k. */
void vfs_attr_from_kv(const vfs *v, const struct kv_attr *k,
                      struct vfs_attr *a);
/* *a of namespace directory name (the root when ""), whose listing is l
 * (NULL: unknown). */
void vfs_attr_namespace(const vfs *v, const char *name,
                        const struct vfs_listing *l, struct vfs_attr *a);
/* *a of a run not (yet) in the cache, as listed (e): a directory. */
void vfs_attr_unfetched_run(const vfs *v, const char *run,
                            const struct vfs_entry *e, struct vfs_attr *a);
/* Is n the root or a namespace directory (not a node inside a run)? */
bool vfs_node_is_namespace(const struct vfs_node *n);
/* The listing prefix of namespace node n: "" or "a/b/". */
void vfs_namespace_prefix(const struct vfs_node *n, char *buf, size_t cap);
/* Does namespace directory name (non-empty) exist?  Errors: ESTALE, EIO. */
int vfs_nsdir_check(vfs *v, const char *name);
/* Pin the run of node n and give its inode (*ino).  Errors: ESTALE (the
 * run is gone), EIO. */
int vfs_node_pin(vfs *v, const struct vfs_node *n, struct vfs_ref *ref,
                 kv_ino *ino);
/* The id of inode ino of the run pinned by ref. */
void vfs_node_id(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                 struct vfs_id *id);
/* kvstore's ENOENT for an inode named by an id means the id is stale:
 * err, with ENOENT turned into ESTALE. */
int vfs_stale_if_enoent(int err);
/* kv_getattr of ino of ref's run into *a (a may be NULL).  Errors:
 * kv_getattr's. */
int vfs_node_getattr(vfs *v, const struct vfs_ref *ref, kv_ino ino,
                     struct vfs_attr *a);
/* full = prefix + name.  Errors: ENAMETOOLONG (over KV_RUNNAME_MAX). */
int vfs_join_name(const char *prefix, const char *name, char *full,
                  size_t cap);
/* Is name one path component?  Errors: EINVAL (empty, or holds '/'),
 * ENAMETOOLONG (over VFS_NAME_MAX). */
int vfs_check_component(const char *name);
/* The attributes of namespace node n.  Errors: ESTALE, EIO. */
int vfs_namespace_getattr(vfs *v, const struct vfs_node *n,
                          struct vfs_attr *a);

/* ---- house.c ---------------------------------------------------------- */
int vfs_house_start(vfs *v);
void vfs_house_stop(vfs *v);
/* Ask the housekeeper to check the cache size now (after an ingest). */
void vfs_house_kick(vfs *v);
/* The bytes the cache may hold now, 0 for no bound: cache_limit, and with a
 * backend (runs can be fetched again) at most what the cache holds plus the
 * free space of its filesystem less a reserve (5 %, at most 1 GiB). */
uint64_t vfs_cache_bound(vfs *v);
/* Before run self is fetched whole (need: its tarball's size; no lock
 * held): other runs lose their data or go, least recently used first, until
 * it fits under the high watermark, unless it never could. */
void vfs_room_for_run(vfs *v, struct vfs_run *self, uint64_t need);
/* Before a range fetch stores need bytes into run (kr: its handle), on a
 * fetch thread or a blocking caller (no lock held): while the cache would
 * go over its high watermark, other runs lose their data or go (least
 * recently used first, as the housekeeper evicts), then run's own oldest
 * chunks are dropped.  Errors: ENOSPC (nothing left that may go). */
int vfs_room_for_fill(vfs *v, const char *run, kv_run *kr, uint64_t need);
/* Write the last-reference marker of run name with time ms (tclock_wall_ms;
 * stored as real time). */
void vfs_marker_write(vfs *v, const char *run, int64_t ms);
void vfs_write_stats_file(vfs *v);
/* The counters as "key=value" pairs into buf (*len bytes, NUL-terminated),
 * each ended by sep if it is '\n' (the stats file), else separated by it
 * (one line).  Errors: ENOSPC (cap too small). */
int vfs_format_stats(vfs *v, char sep, char *buf, size_t cap, size_t *len);

/* ---- control.c and control_tool.c: what both sides share -------------- */
/* The sockets' directory in CACHE/vfs, a request line's limit, the answer
 * of a server that does not serve the request's kind, and how long (100 ms
 * polls) the tool waits for a socket while the server lock is held. */
#define CTL_DIR "ctl"
#define CTL_LINE_MAX (KV_RUNNAME_MAX + 64)
#define VFS_CTL_NOT_HERE (-1)
#define CTL_NO_SOCKET_TICKS 30
/* Open (creating if needed) CACHE/vfs.lock read-only into *fd.  Errors:
 * ENAMETOOLONG, errno of open. */
int vfs_ctl_lock_open(const char *cache_dir, int *fd);
/* Open meta_dir/ctl (made 0700 if create), refusing one that is not
 * private to root or this user (EPERM, logged).  Errors: errno. */
int vfs_ctl_dir_open(const char *meta_dir, bool create, int *out);
/* The address of socket name in the directory dirfd (through
 * /proc/self/fd, so long paths work).  Errors: ENAMETOOLONG. */
int vfs_ctl_addr(int dirfd, const char *name, struct sockaddr_un *sa);
/* Read one line, without its newline, within the socket's receive
 * timeout.  Errors: ETIMEDOUT, EPROTO (too long, or closed first), errno. */
int vfs_ctl_read_line(int fd, char *buf, size_t cap);
/* Send all of buf (errors ignored: the peer sees a short answer). */
void vfs_ctl_send_all(int fd, const char *buf, size_t len);

/* ---- control.c -------------------------------------------------------- */
/* Take the server lock (CACHE/vfs.lock, shared, for the life of v;
 * closed by vfs_close), so the tool knows a server owns the cache's runs.
 * Waits while a tool holds it exclusively.  Errors: EACCES, EIO (logged). */
int vfs_server_lock(vfs *v);
/* Listen on CACHE/vfs/ctl/PID-N.sock, right after taking the server lock:
 * a tool's request made while the server starts waits in the backlog for
 * vfs_control_start.  Errors: EPERM (the directory is not private to this
 * user), EACCES, ENAMETOOLONG (logged). */
int vfs_control_listen(vfs *v);
/* Answer the tool's requests on the listening socket, on a thread of their
 * own (flush and resolve only on a server that writes back; evict, hold
 * and release on any).  Errors: EINVAL (not listening), EAGAIN (logged;
 * the socket is removed). */
int vfs_control_start(vfs *v);
/* Stop answering and remove the socket.  A no-op if not listening. */
void vfs_control_stop(vfs *v);
/* The message refusing to `what` ("evict") a dirty run (conflict: "" if
 * none), naming the command that helps. */
void vfs_dirty_message(const char *what, const char *run,
                       struct timespec since, const char *conflict,
                       char *msg, size_t cap);

/* ---- writeback.c ------------------------------------------------------ */
/* Write run name back to the backend now if it is dirty (reason is for the
 * log), first waiting for a write-back of it already in progress.  Errors:
 * ECANCELED (conflict: uploaded under a conflict key, run kept dirty),
 * EBUSY (conflicted, waiting for resolve), EAGAIN (shutting down while
 * one was in progress), EIO, ENOENT. */
int vfs_writeback_run(vfs *v, const char *name, const char *reason);
/* House duty: write back runs idle past the delay. */
void vfs_writeback_tick(vfs *v);
/* Names of dirty runs, not conflicted nor being written back (idle_only:
 * only those idle past the delay); free with vfs_free_names.  NULL (and
 * *n 0) when there are none or memory ran out. */
char **vfs_dirty_runs(vfs *v, bool idle_only, size_t *n);
void vfs_free_names(char **names, size_t n);
/* Persist / remove the dirty mark file CACHE/vfs/dirty/<hash> of run
 * (written before the run's "dirty" metadata, removed after it). */
int vfs_dirty_mark_write(vfs *v, const char *run, int64_t since_ms,
                         const char *conflict, bool is_new);
void vfs_dirty_mark_remove(vfs *v, const char *run);
/* Write back every dirty run (clean shutdown). */
void vfs_writeback_all(vfs *v, const char *reason);
/* Record dirty runs of the cache (persisted marks) in the run table. */
void vfs_writeback_scan(vfs *v);
/* Clean up after write-backs a crash interrupted, for the dirty runs: S3:
 * abort unfinished multipart uploads to their keys; NAS: remove temp files
 * of this host's dead writers next to them.  Logged; not fatal. */
void vfs_writeback_abort_orphans(vfs *v);
/* Write back the least recently used dirty run that eviction wants gone;
 * returns true if one was written. */
bool vfs_writeback_for_eviction(vfs *v);

#endif
