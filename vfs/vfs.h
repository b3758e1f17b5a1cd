/* vfs.h: the tarball namespace that nfsd serves.  vfs/ turns "one cache of
 * runs" (and, with a source, "one bucket or NAS directory of tarballs") into
 * a single tree: the root lists one directory per run; everything under a
 * run is served from its kvstore database, fetched and ingested on first
 * touch.  vfs/ calls kvstore/ and fetch/; it knows nothing of NFS or RPC.
 *
 * Conventions
 *   - int-returning functions return 0 or a positive errno value.  Besides
 *     the usual ones: ESTALE (the id names something that no longer exists),
 *     EBADMSG (the id is malformed), EROFS (writes on a read-only vfs),
 *     EXDEV (rename/link across runs), EIO (a fetch failed; logged).
 *   - Nodes are named by a vfs_id: opaque bytes, at most VFS_ID_MAX, that
 *     stay valid across restarts, eviction and re-fetch ("self-resolving").
 *     nfsd wraps them into NFS file handles; vfs never sees handles.
 *   - All functions are thread-safe and may block (a fetch); other runs and
 *     cached data keep being served meanwhile.  A caller that must not wait
 *     for the network (nfsd's workers) sets a park slot around the call
 *     (vfs_park_begin): then every function returns EINPROGRESS at once
 *     where it would wait for a fetch, and calls the slot back when the
 *     data is there (doc/design.md, "The parked-request path").
 *   - Permission checks are the caller's (nfsd's) job; vfs applies the
 *     owner given in vfs_cred to new nodes.
 */
#ifndef TARNFS_VFS_H
#define TARNFS_VFS_H

#include "fetch/fetch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define VFS_ID_MAX    44
#define VFS_NAME_MAX  255
#define VFS_PATH_MAX  4096

typedef struct vfs vfs;

struct vfs_id {
    uint8_t len;
    uint8_t b[VFS_ID_MAX];
};

enum vfs_type { VFS_REG = 1, VFS_DIR, VFS_BLK, VFS_CHR, VFS_LNK, VFS_SOCK, VFS_FIFO };

struct vfs_attr {
    enum vfs_type type;
    uint32_t mode;              /* permission bits (07777) only */
    uint32_t nlink, uid, gid;
    uint64_t size, used;
    uint32_t rdev_major, rdev_minor;
    uint64_t fsid, fileid;
    struct timespec atime, mtime, ctime;
};

/* Fields to set (nfsd's sattr3 after guard handling). */
struct vfs_sattr {
    bool set_mode, set_uid, set_gid, set_size, set_atime, set_mtime;
    uint32_t mode, uid, gid;
    uint64_t size;
    struct timespec atime, mtime;   /* already resolved from SET_TO_SERVER_TIME */
};

struct vfs_cred { uint32_t uid, gid; };

struct vfs_statfs {
    uint64_t tbytes, fbytes, abytes, tfiles, ffiles, afiles;
};

struct vfs_config {
    const char *cache_dir;        /* required */
    const char *source;           /* NULL: serve the cache's runs only;
                                     "/nas/dir" or "s3://bucket[/prefix]" */
    bool read_only;
    unsigned list_ttl_ms;         /* root listing cache TTL (0 = default) */
    uint64_t cache_limit_bytes;   /* 0 = unlimited */
    unsigned high_watermark_pct, low_watermark_pct;  /* 0 = defaults 90/75 */
    /* The backend's settings: S3 endpoint, region, profile, credentials
     * and addressing (NULL/false: the AWS conventions: environment,
     * profile, ~/.aws), retries, and the stall timeout: a transfer that
     * receives no bytes for fetch.stall_timeout_ms is abandoned with EIO
     * (and logged); the next access tries again (0 = default 60 s). */
    struct fetch_config fetch;
    uint64_t run_cache_bytes;     /* metadata page cache of each open run
                                     (kv_cache_set_run_cache; 0: kvstore's
                                     default, 64 MiB) */
    unsigned open_runs;           /* runs kept open while idle (0:
                                     VFS_DEFAULT_OPEN_RUNS); more are closed,
                                     least recently used first */
    uint64_t build_cache_bytes;   /* metadata page cache of a run being
                                     built (kv_cache_set_build_cache; 0:
                                     its default) */
    unsigned evict_grace_ms;      /* runs referenced this recently are never
                                     evicted (0 = default 5000) */
    /* Writable namespace (doc/design.md (writeback)): a changed run is
     * written back after this many ms without changes (0 = default
     * 30000; UINT_MAX = only on flush, eviction and close). */
    unsigned writeback_delay_ms;
    /* RMDIR of a whole (empty) run deletes its object; RENAME of a run
     * uploads it under the new name, then deletes the old object.  Off:
     * both are refused with EACCES and a log line. */
    bool run_delete_rename;
    /* Largest file size SETATTR and WRITE may make (EFBIG past it); 0 =
     * default VFS_DEFAULT_MAX_FILE (2^44, 16 TiB); at most 2^50. */
    uint64_t max_file_size;
    /* The fetch threads: the only threads that wait for the backend (run
     * loads for parked callers, version checks).  0 = default 8. */
    unsigned fetch_threads;
    /* Fetch a run's whole tarball on first use even when it has a usable
     * index ("prefetch = whole"); false ("none"): index-first, file data
     * fetched by range on read (doc/design.md (vfs): index-first runs). */
    bool prefetch_whole;
    /* "prefetch = auto": index-first as with "none", and once range fetches
     * of a run have stored prefetch_after bytes (0 = default
     * VFS_PREFETCH_AFTER) or VFS_PREFETCH_AFTER_FILLS member ranges, the
     * rest of its absent data is fetched in the background, in tarball
     * order, on a fetch thread (doc/design.md (vfs): index-first runs). */
    bool prefetch_auto;
    uint64_t prefetch_after;
    /* "prefetch = auto": a tarball of at most this many bytes is fetched
     * whole on first use, served while it streams, instead of from its
     * index (one GET of it costs about what the index GET and a few range
     * GETs cost, and a pass over all of it then runs at full speed);
     * 0: never.  nfsd_config_defaults sets VFS_PREFETCH_WHOLE_BELOW. */
    uint64_t prefetch_whole_below;
    /* After a full fetch of an uncompressed tarball without a usable
     * index, store the index made on the way as its sidecar
     * ("index_upload = yes"; default no: the source is not written to). */
    bool index_upload;
    /* Memory kept for snapshots of directories inside runs (names,
     * inode numbers, cookies, attributes: READDIRPLUS answered without
     * Kyoto Cabinet), over all runs.  0 = default VFS_DEFAULT_DIR_CACHE;
     * VFS_DIR_CACHE_OFF: none kept. */
    uint64_t dir_cache_bytes;
};

/* The tarnfs.conf settings that fill a struct vfs_config (util/settings.h;
 * vfs/settings.c): tarnfsd reads them inside its own table, the tarnfs
 * tool on their own.  The strings they set are owned by the struct
 * (settings_free). */
struct setting_table;
extern const struct setting_table vfs_settings;

#define VFS_DEFAULT_DIR_CACHE ((uint64_t)256 << 20)
#define VFS_DEFAULT_OPEN_RUNS 16
#define VFS_DIR_CACHE_OFF     UINT64_MAX

/* Check that cfg->source would open (vfs_open), without opening it or any
 * network traffic: a readable NAS directory, or an s3:// URL that parses
 * with credentials present (cfg, then the AWS conventions).  Errors:
 * EINVAL (why in err, never a secret), ENOENT, EACCES, ENOTDIR. */
int vfs_check_source(const struct vfs_config *cfg, char *err, size_t errlen);

#define VFS_DEFAULT_MAX_FILE (UINT64_C(1) << 44)
#define VFS_PREFETCH_AFTER   (UINT64_C(32) << 20)
#define VFS_PREFETCH_AFTER_FILLS 64
#define VFS_PREFETCH_WHOLE_BELOW (UINT64_C(32) << 20)
#define VFS_MAX_MAX_FILE     (UINT64_C(1) << 50)
/* ---- parking (callers that must not wait for the network) ----------- */

/* Called once, from a fetch thread, when what a parked call waited for has
 * arrived or failed (err: 0, or why; the call is simply run again). */
typedef void (*vfs_resume_fn)(void *arg, int err);

/* A per-call park slot, owned by the caller (on its stack). */
struct vfs_park {
    vfs_resume_fn resume;   /* NULL: never call back (the caller answers
                               "try later" itself); the fetch still starts */
    void *arg;
    int wake_err;           /* in: the err resume was called with when this
                               call ran before (0 on its first run): a
                               failed load is reported, not retried at once */
    bool parked;            /* out: a wait point was reached; the call's
                               result is meaningless and resume (if set)
                               will be called exactly once */
};

/* Make p this thread's park slot until vfs_park_end: vfs functions called
 * meanwhile return EINPROGRESS instead of waiting for a fetch, starting it
 * on a fetch thread if nobody has.  A call parks before any side effect
 * of its own (only reads and lookups wait for fetches).  Never fails. */
void vfs_park_begin(struct vfs_park *p);
/* Clear this thread's park slot. */
void vfs_park_end(void);

/* Make sure the run holding id is loaded (and, on a writable vfs, all its
 * file data present), without other effects: a parkable prelude to a
 * change, so that vfs_write and friends then do not wait.  Errors: as
 * vfs_getattr, ENOSPC, EINPROGRESS (parked), EAGAIN (try later). */
int vfs_prepare(vfs *v, const struct vfs_id *id);

/* Stop fetching (SIGTERM): transfers in progress are cancelled and fail,
 * parked callers are called back, later wait points answer EAGAIN at once.
 * Returns when no fetch thread runs any more; vfs_close still follows. */
void vfs_cancel(vfs *v);

/* Open a namespace as configured.  Errors: EINVAL (bad config, with a
 * message logged), ENOENT (cache dir or NAS source missing), EACCES, EIO. */
int vfs_open(const struct vfs_config *cfg, vfs **out);

/* The largest file size v allows (what FSINFO's maxfilesize says). */
uint64_t vfs_max_file_size(const vfs *v);

/* Close; waits for fetches in progress to finish or abort, and writes
 * back every dirty run first (a failure keeps it dirty, logged). */
void vfs_close(vfs *v);

/* The id of the namespace root. */
void vfs_root(vfs *v, struct vfs_id *out);

/* Where id lies in the namespace, without touching any run: the run (for a
 * node inside a run; *in_run true) or the namespace directory (*in_run
 * false) it names, as a path without the leading '/' ("" for the root),
 * into buf (cap bytes).  nfsd uses it to keep handles inside their export.
 * Errors: EBADMSG, ESTALE (a hashed name no longer in the catalog),
 * ENAMETOOLONG (cap too small). */
int vfs_id_where(vfs *v, const struct vfs_id *id, char *buf, size_t cap,
                 bool *in_run);

/* A stamp of what a listing of directory dir shows (its entries, their
 * attributes and ids, its own attributes and its parent's): equal stamps,
 * equal listings, for as long as the process lives.  Given only for a
 * directory below a run's root, in a run that is cached, whole (not
 * streaming in) and changed by this process alone.  Errors: ENOTSUP (no
 * such promise for dir), EBADMSG, ESTALE. */
int vfs_listing_stamp(vfs *v, const struct vfs_id *dir, uint64_t *stamp);

/* Attributes of id.  Errors: ESTALE, EBADMSG, EIO. */
int vfs_getattr(vfs *v, const struct vfs_id *id, struct vfs_attr *a);

/* Set attributes; pre and post (may be NULL) get the attributes before and
 * after.  Errors: ESTALE, EBADMSG, EROFS, EINVAL, EFBIG, ENOSPC, EIO. */
int vfs_setattr(vfs *v, const struct vfs_id *id, const struct vfs_sattr *s,
                struct vfs_attr *pre, struct vfs_attr *post);

/* Look name up in dir; fills *out and *a (a may be NULL).  Errors: ENOENT,
 * ENOTDIR, ENAMETOOLONG, EINVAL, ESTALE, EBADMSG, EIO. */
int vfs_lookup(vfs *v, const struct vfs_id *dir, const char *name,
               struct vfs_id *out, struct vfs_attr *a);

/* Parent of directory dir (the root is its own parent).  Errors: ENOTDIR,
 * ESTALE, EBADMSG, EIO. */
int vfs_parent(vfs *v, const struct vfs_id *dir, struct vfs_id *out);

/* Read a symlink into buf; *len = its length.  Errors: EINVAL (not a
 * symlink), ENAMETOOLONG (cap too small), ESTALE, EBADMSG, EIO. */
int vfs_readlink(vfs *v, const struct vfs_id *id, char *buf, size_t cap,
                 size_t *len);

/* Read up to len bytes at off.  Errors: EISDIR, EINVAL, ESTALE, EBADMSG,
 * EIO. */
int vfs_read(vfs *v, const struct vfs_id *id, uint64_t off, void *buf,
             size_t len, size_t *got, bool *eof);

/* Write len bytes at off; if sync, data and metadata are durable on return.
 * Errors: EROFS, EISDIR, EINVAL, EFBIG, ENOSPC, ESTALE, EBADMSG, EIO. */
int vfs_write(vfs *v, const struct vfs_id *id, uint64_t off,
              const void *buf, size_t len, bool sync,
              struct vfs_attr *pre, struct vfs_attr *post);

/* Make all data written to id durable.  Errors: ESTALE, EBADMSG, EIO. */
int vfs_commit(vfs *v, const struct vfs_id *id);

/* Create a node named name in dir: type VFS_REG, VFS_DIR, VFS_FIFO,
 * VFS_SOCK, VFS_CHR, VFS_BLK (rdev used) or VFS_LNK (target used).  s gives
 * initial attributes (mode, and optionally times/size), cred the owner.
 * dir_pre/dir_post (may be NULL) get dir's attributes around the change.
 * Errors: EEXIST, ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL, EROFS, ENOSPC,
 * ESTALE, EBADMSG, EIO, EACCES (at the root, when creating runs is off). */
int vfs_create(vfs *v, const struct vfs_id *dir, const char *name,
               enum vfs_type type, const struct vfs_sattr *s,
               const struct vfs_cred *cred, uint32_t rdev_major,
               uint32_t rdev_minor, const char *target,
               struct vfs_id *out, struct vfs_attr *a,
               struct vfs_attr *dir_pre, struct vfs_attr *dir_post);

/* Remove a non-directory (is_dir false) or an empty directory (true).
 * Errors: ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EROFS, EACCES, ESTALE,
 * EBADMSG, EIO. */
int vfs_remove(vfs *v, const struct vfs_id *dir, const char *name,
               bool is_dir, struct vfs_attr *dir_pre,
               struct vfs_attr *dir_post);

/* Rename; fills the wcc attributes of both directories (may be NULL).
 * Errors: EXDEV, ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EEXIST, EINVAL, EROFS,
 * EACCES, ESTALE, EBADMSG, EIO. */
int vfs_rename(vfs *v, const struct vfs_id *sdir, const char *sname,
               const struct vfs_id *ddir, const char *dname,
               struct vfs_attr *s_pre, struct vfs_attr *s_post,
               struct vfs_attr *d_pre, struct vfs_attr *d_post);

/* Hard link id as dir/name.  Errors: EXDEV, EEXIST, ENOENT, ENOTDIR,
 * EPERM (directory), EMLINK, EROFS, ESTALE, EBADMSG, EIO. */
int vfs_link(vfs *v, const struct vfs_id *id, const struct vfs_id *dir,
             const char *name, struct vfs_attr *a,
             struct vfs_attr *dir_pre, struct vfs_attr *dir_post);

/* One entry given to a vfs_readdir callback.  id/a are filled only when
 * the listing was asked with want_attrs, and even then are NULL for an
 * entry removed between listing and reading its attributes.  A run not in
 * the cache is listed with synthesised directory attributes (it is not
 * fetched just to be listed); GETATTR of its id fetches it. */
struct vfs_dirent {
    const char *name;
    uint64_t fileid;
    uint64_t cookie;            /* resume after this entry */
    const struct vfs_id *id;
    const struct vfs_attr *a;
};

/* List dir after cookie (0 = start; "." and ".." are not listed).  Cookies
 * are stable for the life of the entry, across restarts.  *verf receives
 * the directory's cookie verifier (constant: cookies never go invalid, so
 * a caller may ignore the verifier a client sends back).  cb returns
 * nonzero to stop; that value is returned.  Errors: ENOTDIR, ESTALE,
 * EBADMSG, EIO. */
int vfs_readdir(vfs *v, const struct vfs_id *dir, uint64_t cookie,
                bool want_attrs, uint64_t *verf,
                int (*cb)(void *arg, const struct vfs_dirent *de), void *arg);

/* Filesystem statistics.  Errors: ESTALE, EBADMSG, EIO. */
int vfs_statfs(vfs *v, const struct vfs_id *id, struct vfs_statfs *st);

/* Counters for `tarnfs stats`. */
struct vfs_stats {
    uint64_t hits, misses, fetches, fetch_failures, bytes_fetched,
             evictions, runs_cached, bytes_cached;
    /* index-first runs: sidecar GETs, member range GETs and their bytes
     * (both also counted in bytes_fetched) */
    uint64_t index_fetches, range_fetches, range_bytes;
    /* runs whose file data eviction dropped (names kept), and the bytes
     * dropped (those and a run's own oldest chunks, to make room) */
    uint64_t data_evictions, bytes_dropped;
    /* fetch_failures split: whole-run fetches (fetches) and range fetches
     * (range_fetches) that failed; and index fetches that failed (not in
     * fetch_failures: a run without a usable index is fetched whole) */
    uint64_t run_fetch_failures, range_fetch_failures, index_fetch_failures;
    /* write-backs: uploaded, failed (stays dirty, retried), met a newer
     * object (saved under a conflict key) */
    uint64_t uploads, upload_failures, upload_conflicts;
    /* Now, from the run table: dirty runs (conflicted ones included),
     * conflicted runs, and the wall clock (ms since the epoch) of the
     * oldest dirty run's first change not written back (0: none). */
    uint64_t dirty_runs, conflicted_runs;
    int64_t oldest_dirty_ms;
    uint64_t runs_open;           /* runs with an open handle (open_runs) */
    uint64_t cache_limit_bytes;   /* 0: unlimited */
    const char *backend;          /* "s3", "nas", or "" (no source) */
};
/* A snapshot of the counters (takes the vfs lock and walks the run
 * table: for a scrape or `tarnfs stats`, not for every request). */
void vfs_get_stats(vfs *v, struct vfs_stats *st);

/* Where a running vfs publishes its counters: CACHE/stats, "key=value"
 * lines (hits, misses, fetches, fetch_failures, bytes_fetched, evictions,
 * runs_cached, bytes_cached, index_fetches, range_fetches, range_bytes,
 * data_evictions, bytes_dropped, pid, updated), rewritten atomically about once
 * a second.  Fills path (cap bytes). */
void vfs_stats_path(const char *cache_dir, char *path, size_t cap);

/* When run was last referenced through a vfs on cache_dir (persisted every
 * few seconds while it runs), for `tarnfs cache ls`.  Errors: ENOENT (never
 * referenced, or evicted), EINVAL. */
int vfs_last_reference(const char *cache_dir, const char *run,
                       struct timespec *out);

/* Ask the tarnfsd serving cache_dir to write back run (NULL: every dirty
 * run) or, with resolve, to drop a conflicted run's local copy (see
 * doc/design.md (writeback)); waits up to timeout_s for the answer, which
 * goes into msg.  The request goes through the server's control socket
 * (CACHE/vfs/ctl/).  Errors: ENOENT (cache_dir has no vfs/: no tarnfsd
 * ever served it), ESRCH (no tarnfsd serves the cache, or it stopped
 * before taking the request), ETIMEDOUT (a server took it but did not
 * answer in time), ECANCELED (conflict), EIO or another errno from the
 * server, EINVAL. */
int vfs_request(const char *cache_dir, const char *run, bool resolve,
                unsigned timeout_s, char *msg, size_t cap);

/* Ask the tarnfsd serving cache_dir for its counters as they are now: msg
 * (cap bytes) gets one line of "key=value" pairs separated by spaces, the
 * keys of the stats file (vfs_stats_path).  Errors: as vfs_request. */
int vfs_request_stats(const char *cache_dir, unsigned timeout_s, char *msg,
                      size_t cap);

/* For tests: advance the decision clock (util/clock.h) of the tarnfsd
 * serving cache_dir by ms, then wait for a housekeeping pass that sees the
 * new time (vfs_housekeep); msg gets the outcome.  Errors: EPERM (that
 * server was not started with TARNFS_TEST_CLOCK=1), EINVAL (ms not in
 * 1..TCLOCK_ADVANCE_MAX_MS), and those of vfs_request. */
int vfs_request_clock_advance(const char *cache_dir, long long ms,
                              unsigned timeout_s, char *msg, size_t cap);

/* Wait for one housekeeping pass (eviction, last-reference markers,
 * write-back of idle runs, idle handles, the stats file) that began after
 * this call.  0 at once if v has no housekeeper or it is stopping.
 * Errors: ETIMEDOUT (none finished within a minute). */
int vfs_housekeep(vfs *v);

/* `tarnfs cache evict`: remove run from the cache at cache_dir without
 * ever losing a change.  A run with changes not yet written back, or in
 * conflict, is refused (msg names `tarnfs flush` or `tarnfs cache
 * resolve`).  If a tarnfsd serves the cache (it holds CACHE/vfs.lock)
 * the request goes to it (a request file, as vfs_request), and it evicts
 * the run itself once no request uses it; otherwise the run is evicted
 * here, holding that lock so no server starts meanwhile.  Waits up to
 * timeout_s for a server's answer.  msg (cap bytes) gets the outcome.
 * Errors: EINVAL (bad name), ENOENT (not cached, or no cache_dir), EBUSY
 * (dirty, conflicted, or in use), ETIMEDOUT (the server did not answer),
 * EACCES, EIO. */
int vfs_cache_evict(const char *cache_dir, const char *run,
                    unsigned timeout_s, char *msg, size_t cap);

/* Whether the tool may drop run's cached copy (what: "replace", for the
 * message): EBUSY, with msg (cap bytes) saying why and naming `tarnfs
 * flush` or `tarnfs cache resolve`, if it has changes not yet written
 * back or is in conflict; else 0.  Reads the dirty mark only: a server
 * changing the run at that moment is not excluded (vfs_cache_evict is). */
int vfs_cache_may_drop(const char *cache_dir, const char *run,
                       const char *what, char *msg, size_t cap);

/* Pull callback of vfs_cache_ingest: fill buf with up to cap bytes;
 * return the bytes read, 0 at the end of the input, or -errno. */
typedef ssize_t (*vfs_read_fn)(void *arg, void *buf, size_t cap);

/* What vfs_cache_ingest stored. */
struct vfs_ingest_result {
    uint64_t files, dirs, symlinks, hardlinks, others;
    uint64_t bytes;               /* file data bytes stored */
    bool stripped_top;            /* the top directory became the root */
};

/* `tarnfs ingest`: stream a tar archive from read_fn into the cache at
 * cache_dir (created if missing) as run, published atomically with
 * source_version, without ever losing a change.  A cached run with changes
 * not yet written back, or in conflict, is not replaced (EBUSY, msg names
 * `tarnfs flush` or `tarnfs cache resolve`).  If a tarnfsd serves the
 * cache, it is asked to hold the run first: it checks the run is clean,
 * and refuses changes to it (EAGAIN: the client retries) until the ingest
 * ends; with no server the cache lock is held exclusively throughout (a
 * tarnfsd starting meanwhile waits).  msg (cap bytes) says why on failure.
 * Errors: EINVAL (bad name), ENOENT, ENOTDIR, EACCES, EBUSY, ETIMEDOUT
 * (the server did not answer), EBADMSG (corrupt or hostile archive), EIO,
 * ENOSPC, ENOMEM. */
int vfs_cache_ingest(const char *cache_dir, const char *run,
                     vfs_read_fn read_fn, void *arg,
                     const char *source_version, unsigned timeout_s,
                     struct vfs_ingest_result *res, char *msg, size_t cap);

/* Whether run is dirty in the cache at cache_dir: since when (wall clock,
 * the first change not yet written back) and, if a write-back met a newer
 * object, the conflict key its version went to (conflict gets "" if none;
 * cap bytes).  Read from CACHE/vfs/dirty/, no database is opened.
 * Errors: ENOENT (clean or not cached), EINVAL. */
int vfs_dirty_info(const char *cache_dir, const char *run,
                   struct timespec *since, char *conflict, size_t cap);

/* ---- the tarnfs tool's read-only view of a cache ---- */

/* A cache opened by the tarnfs tool's reading commands (ls, cat, cache ls,
 * cache stats) without a vfs: runs are read straight from the cache as they
 * are, nothing is fetched, no lock a running tarnfsd needs is taken (runs
 * open without Kyoto Cabinet's file lock, so a served run never turns
 * read-only) and nothing is written to the cache directory.  A view and
 * its runs are used by one thread. */
typedef struct vfs_view vfs_view;
typedef struct vfs_view_run vfs_view_run;

/* A node of a view: the open run holding it and its number there (stable
 * while the run is open).  run is NULL for "/", the list of runs. */
struct vfs_view_node {
    vfs_view_run *run;
    uint64_t ino;
};

/* Attributes of a view node, as ls -l shows them. */
struct vfs_view_attr {
    uint32_t mode;              /* type (S_IFMT bits) and permission bits */
    uint32_t nlink, uid, gid;
    uint64_t size;              /* bytes; symlink: target length */
    uint64_t used;              /* bytes of data stored */
    uint32_t rdev_major, rdev_minor;   /* devices */
    uint64_t fileid;
    struct timespec atime, mtime, ctime;
};

/* One entry given to a vfs_view_readdir callback; node shares the run of
 * the directory listed. */
struct vfs_view_dirent {
    const char *name;           /* namelen bytes, not NUL-terminated */
    size_t namelen;
    struct vfs_view_node node;
};

/* One cached run given to a vfs_view_runs callback (strings valid during
 * the call only). */
struct vfs_view_runinfo {
    const char *name;
    uint64_t bytes;             /* data and metadata stored (bytes on disk) */
    uint64_t files;             /* inodes */
    struct timespec created;    /* when it was ingested */
    const char *source_version; /* recorded at ingest; "" if none */
    /* Filled only when vfs_view_runs is asked for details: */
    uint64_t present, total;    /* file data bytes that came from an index:
                                   present of total (0/0: all present, or
                                   unreadable) */
    bool referenced;            /* last_reference is set (vfs_last_reference) */
    struct timespec last_reference;
    bool dirty;                 /* changes not yet written back (vfs_dirty_info) */
    struct timespec dirty_since;
    const char *conflict;       /* dirty: the conflict key, "" if none */
};

/* Totals of a view's cache for `tarnfs cache stats`. */
struct vfs_view_statfs {
    uint64_t runs, bytes_used, inodes_used, bytes_total, bytes_free;
};

/* Write into msg (cap bytes) what err from opening the cache at cache_dir
 * means to a user (create: it was to be created if missing). */
/* Is cache_dir a tarnfs cache (changes nothing)?  0 yes; EINVAL: a
 * directory, but not a cache (tarnfsd without a source cannot serve it);
 * ENOENT, ENOTDIR, EACCES, EIO. */
int vfs_cache_probe(const char *cache_dir);
void vfs_cache_open_message(const char *cache_dir, bool create, int err,
                            char *msg, size_t cap);

/* Open the existing cache at cache_dir read-only as described above.
 * Errors: ENOENT (missing), ENOTDIR, EACCES, EINVAL (not a tarnfs cache),
 * EIO, ENOMEM. */
int vfs_view_open(const char *cache_dir, vfs_view **out);

/* Close a view; every run opened from it must have been closed. */
void vfs_view_close(vfs_view *vw);

/* The view's cache directory (valid until vfs_view_close). */
const char *vfs_view_path(const vfs_view *vw);

/* Call cb for every cached run, in name order; with details, also fill the
 * presence, last reference and dirty fields (opens each run).  cb returns
 * nonzero to stop, and that value is returned.  Errors: EIO, ENOMEM. */
int vfs_view_runs(vfs_view *vw, bool details,
                  int (*cb)(void *arg, const struct vfs_view_runinfo *ri),
                  void *arg);

/* Totals over the cached runs.  Errors: EIO, ENOMEM. */
int vfs_view_statfs(vfs_view *vw, struct vfs_view_statfs *st);

/* Open the cached run named run; *root gets its root directory (close
 * root->run with vfs_view_run_close).  Errors: ENOENT, EINVAL (bad name),
 * EIO, ENOMEM. */
int vfs_view_run_open(vfs_view *vw, const char *run,
                      struct vfs_view_node *root);

/* Close a run opened by vfs_view_run_open or vfs_view_resolve (NULL: no-op);
 * nodes of it become invalid. */
void vfs_view_run_close(vfs_view_run *r);

/* The name of an open run. */
const char *vfs_view_run_name(const vfs_view_run *r);

/* Resolve an absolute tarnfs path ("/" or "/RUN[/path]"): the longest
 * leading part naming a cached run is the run, the rest is walked inside
 * it, following symlinks in the middle of the path and, if follow_last, at
 * its end ("link/" always follows).  Symlinks are followed only within the
 * run (an absolute target gives EXDEV).  *out gets the node, its run open
 * (close it with vfs_view_run_close), or run NULL for "/".  Errors: EINVAL
 * (not absolute), ENOENT, ENOTDIR, ELOOP, EXDEV, ENAMETOOLONG, EIO,
 * ENOMEM. */
int vfs_view_resolve(vfs_view *vw, const char *path, bool follow_last,
                     struct vfs_view_node *out);

/* Attributes of n.  Errors: ENOENT, EINVAL ("/"), EIO. */
int vfs_view_getattr(const struct vfs_view_node *n, struct vfs_view_attr *a);

/* Read the symlink n into buf (cap bytes, not NUL-terminated); *len = the
 * target's full length (at most VFS_PATH_MAX).  Errors: ENOENT, EINVAL (not
 * a symlink, or "/"), EIO. */
int vfs_view_readlink(const struct vfs_view_node *n, char *buf, size_t cap,
                      size_t *len);

/* Read up to len bytes of file n at off; *got = bytes read, *eof = true at
 * the end.  Nothing is fetched: a range touching file data of an
 * index-first run that is not in the cache gives ENODATA.  Errors: ENOENT,
 * EISDIR, EINVAL (not a regular file, or "/"), ENODATA, EIO. */
int vfs_view_read(const struct vfs_view_node *n, uint64_t off, void *buf,
                  size_t len, size_t *got, bool *eof);

/* Call cb for each entry of directory dir (not "." and ".."), in creation
 * order; cb may read (getattr, readlink) but not close the run, and returns
 * nonzero to stop: that value is returned.  Errors: ENOENT, ENOTDIR,
 * EINVAL ("/": use vfs_view_runs), EIO. */
int vfs_view_readdir(const struct vfs_view_node *dir,
                     int (*cb)(void *arg, const struct vfs_view_dirent *de),
                     void *arg);

#endif
