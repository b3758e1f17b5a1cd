/* kvfs.h: the public interface of kvstore/, a POSIX-like filesystem kept in
 * Kyoto Cabinet.  kvstore/ owns the cache directory and everything in it; it
 * knows nothing of NFS, of the tarball namespace or of backends.
 *
 * Shape
 *   A *cache* is a directory holding many *runs*.  Each run is one
 *   independent filesystem tree (one tarball's worth) kept in its own Kyoto
 *   Cabinet database under CACHE/runs/.  A run is created by staging it
 *   under CACHE/tmp/ and publishing it with one atomic rename, so a crash
 *   during ingest leaves nothing visible, and evicting a run is deleting its
 *   files: cost proportional to that run only.
 *
 * Conventions
 *   - Every int-returning function returns 0 on success or a positive errno
 *     value (never -1/errno).  Each contract lists the errors it can give.
 *   - Functions are thread-safe: many threads may use one kv_run at once.
 *     Readers never wait for one another; a change excludes readers of that
 *     run only while it runs.
 *   - Every changing call on a run also fails with EROFS (run opened
 *     read-only, see kv_run_open) or ESTALE (the run was evicted or
 *     replaced since it was opened).
 *   - Names are single path components: 1..KV_NAME_MAX bytes, no '/', no NUL,
 *     not "." or "..".  Run names may contain '/' (nested namespace names
 *     such as "2024/run1") but no empty, "." or ".." components.
 *   - Inode numbers are 64-bit and never 0.  Each run's root directory has
 *     inode number kv_run_root(run).  Callers may suggest an inode number
 *     (ino_hint) when creating a node; kvstore uses it if free, otherwise the
 *     next free number above it, so hints computed deterministically (e.g. a
 *     hash of run name and path) give the same numbers on every re-ingest.
 *     Without a hint a node gets a random free 63-bit number, so a number
 *     is not handed out again to another node after the run is replaced.
 */
#ifndef TARNFS_KVFS_H
#define TARNFS_KVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/tarsuffix.h"

#define KV_NAME_MAX     255
#define KV_RUNNAME_MAX  1024
#define KV_SYMLINK_MAX  4096

typedef uint64_t kv_ino;
typedef struct kv_cache kv_cache;
typedef struct kv_run kv_run;

/* Attributes of one inode.  mode includes the S_IFMT type bits. */
struct kv_attr {
    kv_ino   ino;
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid, gid;
    uint64_t size;          /* bytes; symlink: target length */
    uint64_t used;          /* bytes of data actually stored (sparse files) */
    uint64_t rdev;          /* makedev() value for block/char devices */
    struct timespec atime, mtime, ctime;
};

/* Which fields of a kv_sattr to apply. */
enum {
    KV_SET_MODE  = 1 << 0,  /* permission bits only; type bits ignored */
    KV_SET_UID   = 1 << 1,
    KV_SET_GID   = 1 << 2,
    KV_SET_SIZE  = 1 << 3,  /* truncate or extend (sparse) a regular file */
    KV_SET_ATIME = 1 << 4,
    KV_SET_MTIME = 1 << 5,
    KV_SET_CTIME = 1 << 6,  /* only for ingest: restore ctime verbatim */
};

struct kv_sattr {
    unsigned mask;          /* KV_SET_* */
    uint32_t mode, uid, gid;
    uint64_t size;
    struct timespec atime, mtime, ctime;
};

/* A new node for kv_mknode().  mode carries the type: S_IFREG, S_IFDIR,
 * S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK. */
/* A regular file created with its size and all its data absent, as
 * kv_set_absent records it (same fields, same rules), in the same step. */
struct kv_absent_spec {
    uint64_t size;                  /* > 0 */
    const char *member;             /* archive path, for messages */
    uint64_t data_off;
    uint32_t nchunks;               /* ceil(size / KV_CHUNK) */
    const uint32_t *crcs;
};

struct kv_newnode {
    uint32_t mode, uid, gid;
    uint64_t rdev;                  /* devices */
    const char *symlink_target;     /* S_IFLNK: 1..KV_SYMLINK_MAX bytes */
    kv_ino ino_hint;                /* 0: kvstore picks */
    bool has_times;                 /* use atime/mtime below, else now */
    struct timespec atime, mtime;
    const struct kv_absent_spec *absent;   /* S_IFREG only; NULL: empty */
};

/* Filesystem statistics for one run or for the whole cache. */
struct kv_statfs {
    uint64_t bytes_used;    /* bytes of file data and metadata stored */
    uint64_t inodes_used;
    uint64_t bytes_total;   /* cache limit, or free disk + used if unlimited */
    uint64_t bytes_free;
};

/* Summary of one published run, as kept in its database. */
struct kv_runinfo {
    char name[KV_RUNNAME_MAX + 1];
    uint64_t bytes;         /* bytes_used of the run */
    uint64_t files;         /* inodes in the run */
    struct timespec created;   /* when it was published */
    char source_version[128];  /* free text set at publish (ETag, mtime...) */
};

/* ---- cache ------------------------------------------------------------ */

/* Open (creating if create is true) the cache directory dir, and remove
 * leftovers of interrupted ingests.  kvstore owns dir/tarnfs-cache,
 * dir/runs/ and dir/tmp/ only; other files in dir are left alone.  With
 * create, an existing directory becomes a cache unless it already has a
 * tmp/ or runs/ of its own.  Errors: ENOENT (missing and !create), ENOTDIR,
 * EACCES, EINVAL (not a tarnfs cache), EIO, ENOMEM. */
int kv_cache_open(const char *dir, bool create, kv_cache **out);

/* Open an existing cache for reading only (tools that must not disturb a
 * running tarnfsd): runs open without Kyoto Cabinet's file lock, changes
 * fail with EROFS, leftovers are not swept.  Errors as kv_cache_open. */
int kv_cache_open_readonly(const char *dir, kv_cache **out);

/* Set the cache's byte limit reported as bytes_total by statfs (0 =
 * unlimited: free disk + used).  kvstore does not enforce it. */
void kv_cache_set_limit(kv_cache *c, uint64_t bytes);

/* The filesystem holding the cache: *avail bytes free to us, *size bytes in
 * all.  Errors: those of fstatvfs. */
int kv_cache_disk(kv_cache *c, uint64_t *avail, uint64_t *size);

/* Close the cache.  All runs opened from it must have been closed. */
void kv_cache_close(kv_cache *c);

/* The cache's directory path (valid until kv_cache_close). */
const char *kv_cache_path(const kv_cache *c);

/* Call cb for every published run, in name order; cb returns nonzero to
 * stop, and that value is returned.  Errors: EIO, ENOMEM. */
int kv_cache_list(kv_cache *c,
                  int (*cb)(void *arg, const struct kv_runinfo *ri), void *arg);

/* Fill *ri for the published run name.  Errors: ENOENT, EINVAL (bad name),
 * EIO. */
int kv_cache_runinfo(kv_cache *c, const char *name, struct kv_runinfo *ri);

/* Totals over all published runs.  Errors: EIO. */
int kv_cache_statfs(kv_cache *c, struct kv_statfs *st);

/* Delete a published run.  Open kv_run handles to it stay usable until
 * closed (the files go when the last one closes).  Cost is proportional to
 * the run's size.  Errors: ENOENT, EINVAL, EIO. */
int kv_cache_evict(kv_cache *c, const char *name);

/* ---- runs ------------------------------------------------------------- */

/* Open the published run name for reading and writing.  Repeated opens of
 * the same name share one database (each open needs its own close).  If
 * another process holds the run open for writing, it opens read-only.
 * Errors: ENOENT, EINVAL, EIO, ENOMEM. */
int kv_run_open(kv_cache *c, const char *name, kv_run **out);

/* Release a run opened with kv_run_open or kv_run_stage. */
void kv_run_close(kv_run *r);

/* Start a new, invisible run to be filled (ingest).  It contains only its
 * root directory, whose inode number is root_hint if nonzero.
 * Errors: EINVAL, ENOSPC, EIO, ENOMEM. */
int kv_run_stage(kv_cache *c, const char *name, kv_ino root_hint,
                 kv_run **out);

/* Make a staged run durable and visible under its name, replacing any
 * published run of that name atomically.  source_version is stored in its
 * runinfo.  The handle stays open and usable (now on the published run).
 * On failure release r with kv_run_abort (which discards it if it was not
 * published yet) and use nothing else of it.
 * Errors: EINVAL (not staged), ENOSPC, EIO. */
int kv_run_publish(kv_run *r, const char *source_version);

/* Discard a staged run and free *r.  Nothing of it remains.  (Closing a
 * staged run with kv_run_close does the same.)  A staged run is built
 * without a write-ahead log: after a failed call on it, abort it. */
void kv_run_abort(kv_run *r);

/* True if r no longer is the published run of its name (evicted, or
 * replaced by a newer publish, possibly by another process): callers
 * should close it and open the name again. */
bool kv_run_stale(kv_run *r);

/* Name of the run (valid while r is open). */
const char *kv_run_name(const kv_run *r);

/* Inode number of the run's root directory. */
kv_ino kv_run_root(const kv_run *r);

/* Flush everything written so far to stable storage.  Errors: EIO, ENOSPC. */
int kv_run_sync(kv_run *r);

/* Statistics of this run.  Errors: EIO. */
int kv_run_statfs(kv_run *r, struct kv_statfs *st);

/* Replace the source_version recorded for published run r (e.g. after its
 * changes were uploaded as a new object), atomically and durably.
 * Errors: EINVAL (staged), EROFS, ESTALE, ENOSPC, EIO. */
int kv_run_set_source_version(kv_run *r, const char *source_version);

/* Store / fetch a small named metadata value on the run (e.g. "dirty",
 * "source-etag").  kv_run_getmeta copies at most cap bytes and sets *len to
 * the full length.  Errors: ENOENT (getmeta, absent), E2BIG (> 64 KiB),
 * EIO. */
int kv_run_setmeta(kv_run *r, const char *key, const void *val, size_t len);
int kv_run_getmeta(kv_run *r, const char *key, void *buf, size_t cap,
                   size_t *len);
int kv_run_delmeta(kv_run *r, const char *key);

/* ---- inodes and names ------------------------------------------------- */

/* Attributes of ino.  Errors: ENOENT (no such inode), EIO. */
int kv_getattr(kv_run *r, kv_ino ino, struct kv_attr *a);

/* Apply the fields in s->mask atomically; ctime becomes now unless
 * KV_SET_CTIME.  *out (may be NULL) receives the new attributes.  Errors:
 * ENOENT, EISDIR/EINVAL (size on a non-regular file), EFBIG, ENOSPC, EIO. */
int kv_setattr(kv_run *r, kv_ino ino, const struct kv_sattr *s,
               struct kv_attr *out);

/* Find name in directory dir.  Errors: ENOENT, ENOTDIR, ENAMETOOLONG,
 * EINVAL (bad name), EIO.  "." and ".." are resolved too (".." of the root
 * is the root). */
int kv_lookup(kv_run *r, kv_ino dir, const char *name, kv_ino *out);

/* Parent directory of directory ino (the root is its own parent).
 * Errors: ENOENT, ENOTDIR, EIO. */
int kv_parent(kv_run *r, kv_ino dir, kv_ino *out);

/* Create name in dir as described by n; fails if name exists.  *out (may be
 * NULL) receives the new attributes.  Updates dir's mtime/ctime (and nlink
 * for a new directory) in the same transaction.  Errors: EEXIST, ENOENT
 * (dir), ENOTDIR, ENAMETOOLONG, EINVAL, ENOSPC, EIO. */
int kv_mknode(kv_run *r, kv_ino dir, const char *name,
              const struct kv_newnode *n, struct kv_attr *out);

/* Read a symlink's target into buf (cap bytes, not NUL-terminated unless
 * room), *len = full length.  Errors: ENOENT, EINVAL (not a symlink), EIO. */
int kv_readlink(kv_run *r, kv_ino ino, char *buf, size_t cap, size_t *len);

/* Add a hard link newname in newdir to existing non-directory ino.
 * Errors: EEXIST, ENOENT, ENOTDIR, EPERM (ino is a directory), EMLINK,
 * ENAMETOOLONG, EINVAL, ENOSPC, EIO. */
int kv_link(kv_run *r, kv_ino ino, kv_ino newdir, const char *newname);

/* Remove non-directory name from dir; the inode and its data go when nlink
 * reaches 0.  Errors: ENOENT, ENOTDIR, EISDIR, EINVAL, EIO. */
int kv_unlink(kv_run *r, kv_ino dir, const char *name);

/* Remove empty directory name from dir.  Errors: ENOENT, ENOTDIR,
 * ENOTEMPTY, EINVAL, EBUSY (the root), EIO. */
int kv_rmdir(kv_run *r, kv_ino dir, const char *name);

/* Rename sdir/sname to ddir/dname, atomically replacing a compatible
 * existing target (file over file, empty dir over dir).  Errors: ENOENT,
 * ENOTDIR, EISDIR, ENOTEMPTY, EEXIST, EINVAL (dir into its own subtree,
 * bad name), EIO. */
int kv_rename(kv_run *r, kv_ino sdir, const char *sname,
              kv_ino ddir, const char *dname);

/* One directory entry as given to a kv_readdir callback. */
struct kv_dirent {
    const char *name;
    size_t namelen;
    kv_ino ino;
    uint64_t cookie;        /* pass back to resume *after* this entry */
};

/* List directory dir starting after cookie (0 = from the start; "." and
 * ".." are not listed).  Cookies are stable: an entry keeps its cookie
 * while it exists, and a listing resumed from a cookie continues exactly
 * after that entry even if it was since removed.  Entries come in creation
 * order; cookies are >= 3 (1 and 2 are free for "." and "..").  cb returns
 * nonzero to stop early; that value is returned.  cb runs under the run's
 * read lock: it may call reading functions on r, never changing ones.
 * Errors: ENOENT, ENOTDIR, EIO. */
int kv_readdir(kv_run *r, kv_ino dir, uint64_t cookie,
               int (*cb)(void *arg, const struct kv_dirent *de), void *arg);

/* kv_readdir, with each entry's attributes (a is NULL for an entry whose
 * inode is missing, which only a damaged run has).  The listing of a
 * published run's directory from its start (cookie 0) keeps a snapshot of
 * the whole directory in memory (names, inode numbers, cookies,
 * attributes), within the cache's budget (kv_cache_set_dir_budget); later
 * calls on that directory are answered from it, without Kyoto Cabinet,
 * until any change to the run makes it out of date.  Runs being ingested
 * or streamed, and runs opened read-only, are always read with one cursor
 * pass.  cb runs under the run's read lock, or with no lock held when
 * answered from a snapshot: either way it may call reading functions on r,
 * never changing ones.  Errors: ENOENT, ENOTDIR, ENOMEM, EIO, or cb's
 * nonzero return. */
int kv_readdir_plus(kv_run *r, kv_ino dir, uint64_t cookie,
                    int (*cb)(void *arg, const struct kv_dirent *de,
                              const struct kv_attr *a),
                    void *arg);

/* A stamp of r's contents for caches above: it changes whenever r
 * changes, and no other run (nor r at another time) ever had it; 0 when r
 * cannot promise that (staged, or opened read-only, so that another
 * process may change it). */
uint64_t kv_run_stamp(const kv_run *r);

/* Memory directory snapshots of all runs of c may hold together (default
 * 64 MiB; 0: none are kept).  One directory gets at most a quarter of it;
 * a bigger one is always read from Kyoto Cabinet. */
void kv_cache_set_dir_budget(kv_cache *c, uint64_t bytes);

/* Bytes directory snapshots of c hold now. */
uint64_t kv_cache_dir_bytes(kv_cache *c);

/* ---- file data -------------------------------------------------------- */

/* Read up to len bytes at off.  *got = bytes read; *eof = true when the read
 * reached end of file.  Holes read as zeros.  Errors: ENOENT, EISDIR,
 * EINVAL (not a regular file), EIO. */
int kv_read(kv_run *r, kv_ino ino, uint64_t off, void *buf, size_t len,
            size_t *got, bool *eof);

/* Write len bytes at off, extending the file as needed; updates
 * size/mtime/ctime.  *out (may be NULL) receives the new attributes.
 * Errors: ENOENT, EISDIR, EINVAL, EFBIG, ENOSPC, EIO. */
int kv_write(kv_run *r, kv_ino ino, uint64_t off, const void *buf,
             size_t len, struct kv_attr *out);

/* Call cb(arg, off, len) for each stretch of stored data of regular file
 * ino, in offset order; everything else in its size reads as zeros (holes).
 * Stops probing once the file's `used` bytes were found, so the cost
 * follows the data present, not the size; the run's read lock is taken per
 * step of blocks, so the result is exact only if the file does not change
 * meanwhile.  Errors: ENOENT, EISDIR, EINVAL (not a regular file), EIO, or
 * cb's nonzero return. */
int kv_extents(kv_run *r, kv_ino ino,
               int (*cb)(void *arg, uint64_t off, uint64_t len), void *arg);

/* Streaming writer for ingest: append data to a new regular file without a
 * read-modify-write per call.  Begin on a file of size 0, append any number
 * of chunks, then end (which sets the final size).  Errors as kv_write. */
typedef struct kv_appender kv_appender;
int kv_append_begin(kv_run *r, kv_ino ino, kv_appender **out);
int kv_append(kv_appender *ap, const void *buf, size_t len);
/* Skip len bytes (a hole).  Errors: EFBIG. */
int kv_append_hole(kv_appender *ap, uint64_t len);
/* Finish; frees ap whatever the result.  Errors: ENOSPC, EIO. */
int kv_append_end(kv_appender *ap);

/* ---- absent data (index-first runs) ---------------------------------- */

/* A run built from a tarball's index (kv_ingest_index) has the attributes
 * of every member but not the data of its regular files: that data is
 * "absent", in chunks of KV_CHUNK bytes (the index's TIX_CHUNK), each
 * fetched from the tarball by range and stored with kv_fill, and possibly
 * dropped again (kv_data_drop) to make room.  Reading a range that touches
 * an absent chunk never returns zeros for it: it fails with ENODATA.  A run
 * becomes an ordinary one before its first change (kv_absent_settle).  See
 * doc/design.md (kvstore): "Absent data". */
#define KV_CHUNK ((uint32_t)1 << 20)

/* Mark regular file ino, of its final size and with no data stored, as
 * having all its data absent: its bytes are at data_off in the tarball, and
 * crcs holds one CRC-32 (zlib) per KV_CHUNK, nchunks = ceil(size /
 * KV_CHUNK); member is its archive path (for messages).  For ingest.
 * Errors: ENOENT, EINVAL (not a regular file, no data, nchunks wrong, data
 * stored), ENOSPC, EIO, EROFS, ESTALE. */
int kv_set_absent(kv_run *r, kv_ino ino, const char *member,
                  uint64_t data_off, uint32_t nchunks, const uint32_t *crcs);

/* The archive path recorded by kv_set_absent for ino, while some of its
 * data is absent (copied into buf, cap bytes, NUL-terminated, truncated
 * if need be).  Errors: ENOENT (not absent any more), EIO. */
int kv_absent_member(kv_run *r, kv_ino ino, char *buf, size_t cap);

/* Which chunks of [off, off+len) of ino are absent: *first gets the first
 * absent chunk number and *count how many absent chunks follow it
 * contiguously (at most max_count, within the range); *count == 0 when the
 * whole range is present.  Errors: ENOENT, EISDIR, EINVAL, EIO. */
int kv_missing(kv_run *r, kv_ino ino, uint64_t off, uint64_t len,
               uint32_t max_count, uint32_t *first, uint32_t *count);

/* Where chunk `chunk` of index file ino lies in the tarball (present or
 * not): *tar_off, its length *len (KV_CHUNK except for the last) and its
 * CRC-32 *crc.  Errors: ENOENT (no such inode, or the file's data did not
 * come from an index or was settled: kv_absent_settle), ERANGE (chunk past
 * the end), EIO. */
int kv_chunk_source(kv_run *r, kv_ino ino, uint32_t chunk, uint64_t *tar_off,
                    uint32_t *len, uint32_t *crc);

/* Where an absent chunk lies in the tarball (kv_absent_chunks). */
struct kv_chunk_src {
    uint32_t chunk, len, crc;   /* len: KV_CHUNK except for the last */
    uint64_t tar_off;
};

/* The first absent chunks of index file ino from chunk `from` on, up to
 * max of them and up to the next present one, each with its tarball
 * offset, length and CRC-32 into src (room for max): kv_missing and then
 * kv_chunk_source per chunk in one read-locked pass.  *count 0: nothing
 * absent from there on (or the file's data is not from an index).
 * Errors: ENOENT (no such inode), EISDIR, EINVAL, EIO. */
int kv_absent_chunks(kv_run *r, kv_ino ino, uint32_t from, uint32_t max,
                     struct kv_chunk_src *src, uint32_t *count);

/* Store chunk `chunk` of ino (len bytes, exactly the chunk's length) on a
 * published (or staged) run, after checking its CRC-32: data blocks are
 * committed first, then the presence mark, so a crash leaves the chunk
 * absent, never half present.  A chunk already present is left alone (0).
 * This is not a change of the file: no mtime, no dirty mark.  Errors:
 * EBADMSG (CRC mismatch: nothing stored), EINVAL (wrong length), ERANGE,
 * ENOENT, ENOSPC, EIO, EROFS, ESTALE. */
int kv_fill(kv_run *r, kv_ino ino, uint32_t chunk, const void *buf,
            size_t len);

/* One chunk for kv_fill_batch: what kv_fill takes, and its result. */
struct kv_fill_chunk {
    kv_ino ino;
    uint32_t chunk;
    const void *buf;
    size_t len;
    /* The chunk's CRC-32 as kv_chunk_source gave it to the caller for
     * this len (have_crc set): the check then costs no lookup (the
     * length is still checked against the file, under the lock).  Sound
     * because a file's source never changes while it has absent data. */
    uint32_t crc;
    bool have_crc;
    int err;                    /* out: what kv_fill would return */
};

/* kv_fill of n chunks (of any files of r) in one data transaction and one
 * meta transaction: the data blocks of all commit first, then all their
 * presence marks, so a crash leaves each chunk absent, never present
 * without its data.  Each chunk is checked first (its err: EBADMSG,
 * EINVAL, ERANGE, ENOENT, and nothing of it stored) and the others are
 * stored; a chunk already present is left alone (err 0).  Returns 0 when
 * the batch committed (see each err), else the commit's error (ENOSPC,
 * EIO, EROFS, ESTALE), which every chunk to be stored gets too: then none
 * of them is present. */
int kv_fill_batch(kv_run *r, struct kv_fill_chunk *cs, size_t n);

/* Forget the absent data of ino (before its last link is removed: a file
 * made later with the same inode number must not inherit it).  No-op if
 * ino has none.  Errors: EIO, EROFS, ESTALE. */
int kv_absent_drop(kv_run *r, kv_ino ino);

/* File data of the run: *total bytes of regular files' sizes that came
 * from an index, *present how many of those are stored (both 0 for a run
 * ingested from the tarball: all its data is present).  Errors: EIO. */
int kv_run_presence(kv_run *r, uint64_t *present, uint64_t *total);

/* Next regular file of r whose data came from an index (some of it may be
 * absent) after inode number `after` (0: the first), in inode order.
 * Errors: ENOENT (no more), EIO. */
int kv_absent_next(kv_run *r, kv_ino after, kv_ino *ino);

/* A file with absent data, and where its first absent chunk lies. */
struct kv_absent_at {
    kv_ino ino;
    uint64_t tar_off;
};

/* Up to max files of r with absent data after inode `after`, in inode
 * order, with the tarball offset of each one's first absent chunk (one
 * cursor walk: what kv_absent_next, kv_missing and kv_chunk_source give
 * per file).  *n gets how many; *n < max: no more after them.  Errors:
 * EIO. */
int kv_absent_scan(kv_run *r, kv_ino after, struct kv_absent_at *out,
                   size_t max, size_t *n);

/* Drop stored data of r's index files again, the oldest filled chunks
 * first, until at least want bytes went (UINT64_MAX: all) or none is left;
 * *dropped gets the bytes.  Names, attributes and inode numbers stay; the
 * chunks read as absent (ENODATA) and are fetched again by range.  Each
 * batch (64 chunks) commits the presence marks first and deletes the blocks
 * after, under the run's write lock once, so a crash leaves every chunk
 * present and whole or absent (its leftover blocks are swept at the next
 * open).  When no data is left (none dropped now included), the data file
 * is emptied (its space goes back to the filesystem).  Data not from an index (ingested runs, settled
 * runs) is never touched.  Errors: EROFS, ESTALE, EIO, ENOMEM. */
int kv_data_drop(kv_run *r, uint64_t want, uint64_t *dropped);

/* Before r changes: if every chunk of every index file is present, forget
 * the index records (r becomes an ordinary run: kv_run_presence 0/0, no
 * more drops), in one transaction.  No-op on a run without them.
 * Errors: EAGAIN (some data is absent: fetch it and try again), EROFS,
 * ESTALE, EIO, ENOMEM. */
int kv_absent_settle(kv_run *r);

/* ---- fault injection (tests) ------------------------------------------ */

/* Fault hook: called where a change would commit ("meta-commit",
 * "data-commit") on a published run; a nonzero errno return makes that
 * commit fail with it (the transaction is rolled back).  Also called as
 * "sync" before each disk flush of kv_run_sync (not when it skips one);
 * an errno return makes that kv_run_sync fail with it, unflushed.  NULL
 * removes it.  Process-wide; for tests of the failure paths. */
typedef int (*kv_fault_fn)(void *arg, const char *op);
void kv_set_fault(kv_fault_fn fn, void *arg);

/* ---- ingest ----------------------------------------------------------- */

/* Pull callback: fill buf with up to cap bytes; return bytes read, 0 at end
 * of input, or -errno on error. */
typedef ssize_t (*kv_read_fn)(void *arg, void *buf, size_t cap);

struct kv_ingest_result {
    uint64_t files, dirs, symlinks, hardlinks, others;
    uint64_t bytes;              /* file data bytes stored */
    bool stripped_top;           /* members sat under NAME/, which became the root */
    char error[512];             /* on failure: what went wrong, naming the member */
};

/* The page cache a run's metadata may use while it is built (staged: an
 * ingest, an index load), in bytes; 0: the default, 256 MiB.  A cap, used
 * only as a run grows (about 250 bytes per member), released when the run
 * is published; below the working set a build slows several times over
 * (its inode records land at random keys).  No errors. */
void kv_cache_set_build_cache(kv_cache *c, uint64_t bytes);
/* Each published run's metadata page cache (a cap), and as much of its
 * file mapped, when a run is opened from now on (0: the default).  128 MiB
 * holds the tree of a 1,000,000-file run: with 64 MiB a walk of one ran 5x
 * slower (doc/performance.md). */
#define KV_RUN_CACHE_DEFAULT ((uint64_t)128 << 20)
void kv_cache_set_run_cache(kv_cache *c, uint64_t bytes);

/* Stream a tar archive (ustar, pax, GNU; plain, gzip, bzip2, xz or zstd)
 * from read_fn into a new run called name, published atomically with
 * source_version when complete.  If every member lies under one top
 * directory called exactly name (or name's last component), that directory
 * becomes the run's root; otherwise members go under the root as they are.
 * Absolute paths and ".." components are rejected (the whole ingest fails).
 * Inode numbers are kv_ino_for(name, path), or the member's kept number
 * (TIX_INO_XATTR, written by kv_export).  On any error nothing is left
 * behind and res->error says why.  Errors: EINVAL (bad name), EBADMSG
 * (corrupt or hostile archive), EIO (read_fn failed or truncated input),
 * ENOSPC, ENOMEM. */
int kv_ingest(kv_cache *c, const char *name, kv_read_fn read_fn, void *arg,
              const char *source_version, struct kv_ingest_result *res);

/* Sink of kv_export: take len bytes; 0, or an errno that stops the export. */
typedef int (*kv_write_fn)(void *arg, const void *buf, size_t len);

/* What kv_export wrote, and why it stopped. */
struct kv_export_result {
    uint64_t files;             /* members written */
    char error[512];            /* on failure: what, and which member */
};

/* Write run r to write_fn as one pax tarball, the pair of kv_ingest: every
 * node under top/ (top = the tarball's top directory), depth first,
 * siblings in bytewise order; hard links as links; holes of a file as pax
 * sparse entries; a node whose inode number is not kv_ino_for(run, path)
 * with that number in its TIX_INO_XATTR; compressed per filter (none, gzip
 * without a timestamp, zstd; other filters: none).  Errors: write_fn's,
 * the store's (EIO...), ENOMEM; res->error says where. */
int kv_export(kv_run *r, const char *top, enum tar_filter filter,
              kv_write_fn write_fn, void *arg, struct kv_export_result *res);

/* kv_ingest, stopping with ENOSPC (nothing left behind, res->error says so)
 * as soon as the run would take more than max_bytes (file data plus 256
 * bytes per node, as kv_run_statfs counts it; 0: no limit).  Checked while
 * reading, so a small compressed archive that expands without bound (a
 * decompression bomb) never fills the disk.  Errors as kv_ingest. */
int kv_ingest_limited(kv_cache *c, const char *name, kv_read_fn read_fn,
                      void *arg, const char *source_version,
                      uint64_t max_bytes, struct kv_ingest_result *res);
/* What a streaming ingest tells its caller as it goes (any callback may be
 * NULL; they run on the ingesting thread, between kvstore calls, and must
 * not call changing functions on the run).
 *   staged(r): the first member's header was read (not called for an
 *     archive without members); other threads may read r from now on
 *     (never change or close it) while the ingest writes it.
 *   data_begin(ino, size): a regular file of size bytes whose data
 *     follows in the stream is about to be created with inode number ino
 *     (called before its name
 *     exists, and once more with the real number if kvstore had to pick
 *     another); until the next placed() it is incomplete.
 *   placed(relpath, ino): a member is complete at relpath (relative to the
 *     run root, "" = the root), with inode ino.  Also called with the top
 *     directory when earlier members were moved under it (un-strip). */
struct kv_ingest_watch {
    void *arg;
    void (*staged)(void *arg, kv_run *r);
    void (*data_begin)(void *arg, kv_ino ino, uint64_t size);
    void (*placed)(void *arg, const char *relpath, kv_ino ino);
    /* Index builds only (kv_ingest_index_stream), when they place members
     * shallow first: every member at `depth` or less (the run root is
     * depth 0) is placed, so each directory above `depth` lists whole.
     * Never called when the build keeps index order. */
    void (*level)(void *arg, unsigned depth);
};
/* kv_ingest_limited, telling w about the run as it fills (w may be NULL).
 * *out always receives the run (NULL only if staging failed): published
 * on success; on failure still staged, and the caller discards it with
 * kv_run_close (or kv_run_abort) once no other thread reads it.  On
 * success the caller closes it too.  Errors as kv_ingest_limited. */
int kv_ingest_stream(kv_cache *c, const char *name, kv_read_fn read_fn,
                     void *arg, const char *source_version,
                     uint64_t max_bytes, const struct kv_ingest_watch *w,
                     kv_run **out, struct kv_ingest_result *res);
/* Build a new run called name from a parsed tarball index (kvstore/
 * tarindex.h), published atomically with source_version: every member is
 * placed exactly as kv_ingest places it (same top-directory stripping,
 * same refusals, same duplicates and hard-link rules, same inode numbers
 * kv_ino_for(name, path)); regular files get their size and attributes and
 * absent data (kv_set_absent).  Differences: atime = mtime, and ctime is
 * the time of this ingest (the index keeps neither).  On any error nothing
 * is left behind and res->error says why.  Errors: EINVAL (bad name),
 * EBADMSG (hostile member), ENOTSUP (a sparse member: its data cannot be
 * fetched by range), ENOSPC, EIO, ENOMEM. */
struct tix_index;
int kv_ingest_index(kv_cache *c, const char *name, const struct tix_index *ix,
                    const char *source_version, struct kv_ingest_result *res);
/* kv_ingest_index, stopping with ENOSPC (nothing published) once the run's
 * nodes would cost more than max_bytes (as kv_ingest_limited counts them;
 * 0: no limit). */
int kv_ingest_index_limited(kv_cache *c, const char *name,
                            const struct tix_index *ix,
                            const char *source_version, uint64_t max_bytes,
                            struct kv_ingest_result *res);
/* kv_ingest_index_limited, telling w about the run as it is built
 * (w->staged before the first member, w->placed after each), and handing
 * the run to the caller in *out as kv_ingest_stream does (published on
 * success, still staged on failure; the caller closes it).  Errors as
 * kv_ingest_index. */
int kv_ingest_index_stream(kv_cache *c, const char *name,
                           const struct tix_index *ix,
                           const char *source_version, uint64_t max_bytes,
                           const struct kv_ingest_watch *w, kv_run **out,
                           struct kv_ingest_result *res);

/* The deterministic inode number for path (relative to the run root, no
 * leading '/', "" for the root) in run name: a 63-bit hash, never below 16. */
kv_ino kv_ino_for(const char *name, const char *path);
/* fn(arg, end, kv_ino_for(name, prefix)) for each prefix path[0..end) that
 * ends a component (at each '/' and at the end; "" gives the root's), in
 * order, in one pass over path: linear where calling kv_ino_for per
 * prefix is quadratic in the depth. */
void kv_ino_for_prefixes(const char *name, const char *path,
                         void (*fn)(void *arg, size_t end, kv_ino ino),
                         void *arg);

#endif
