/* kv_internal.h: what the kvstore/ source files share and nobody else may
 * use: the run and cache structures, the key schema, the inode record
 * codec, and the lock/transaction discipline.  See doc/design.md (kvstore).
 *
 * Each run has two Kyoto Cabinet databases: <id>.kct, a TreeDB holding
 * all metadata (ordered: readdir is a cursor scan), and <id>.kch, a HashDB
 * holding file data blocks (measured 3-5x faster than big values in the
 * TreeDB).  Integers in keys are big-endian so key order is numeric order.
 *   meta  'I' ino:8            -> inode record (kv_inode_encode)
 *   meta  'E' dir:8 seq:8      -> ino:8 name        (readdir order, cookie = seq)
 *   meta  'N' dir:8 name       -> seq:8 ino:8       (lookup by name)
 *   meta  'S' name             -> run-internal state (counters, root, name,
 *                                 "unclean" while changes may be in flight)
 *   meta  'M' key              -> user metadata (kv_run_setmeta)
 *   meta  'A' ino:8            -> absent data of a file: tar offset:8,
 *                                 chunks:4, chunks present:4 (lazy.c)
 *   meta  'C' ino:8            -> its chunk CRC-32s, 4 bytes each
 *   meta  'P' ino:8 chunk:8    -> "" : that chunk is present
 *   meta  'Q' seq:8            -> ino:8 chunk:4: fill order (lazy.c)
 *   meta  'S' "Slazy"          -> index bytes total:8, present:8
 *   data  ino:8 blockno:8      -> file data block (1..KV_BLOCK_SIZE bytes)
 * The meta database is the truth: a data block beyond its file's size, or
 * of a missing inode, is garbage (only a crash can leave any; see
 * kv_data_gc).
 */
#ifndef TARNFS_KV_INTERNAL_H
#define TARNFS_KV_INTERNAL_H

#include "kvstore/kvfs.h"

#include <dirent.h>
#include <kclangc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Size of one data block, chosen by measurement (doc/design.md (kvstore)). */
#ifndef KV_BLOCK_SIZE
#define KV_BLOCK_SIZE   ((uint64_t)64 * 1024)
#endif
/* First readdir cookie handed out; 1 and 2 stay free for "." and "..". */
#define KV_FIRST_SEQ    3
#define KV_MIN_INO      16
#define KV_MAX_INO      ((UINT64_C(1) << 63) - 1)
#define KV_LINK_MAX     65000
#define KV_META_MAX     (64 * 1024)
#define KV_MAX_FILE     (UINT64_C(1) << 50)
/* Per-inode metadata cost counted in bytes_used (an estimate). */
#define KV_INODE_COST   256
#define KV_KEY_MAX      (1 + 8 + KV_NAME_MAX + 1)

/* A decoded inode record. */
struct kv_inode {
    uint32_t mode, nlink, uid, gid;
    uint64_t size, used, rdev;
    struct timespec atime, mtime, ctime;
    kv_ino parent;          /* directories: parent directory */
    uint64_t next_seq;      /* directories: next entry sequence number */
    char *target;           /* symlinks: malloc'd target (size bytes) */
};

struct kv_cache {
    char *path;
    int dirfd;
    bool readonly;
    uint64_t limit;                 /* 0: unlimited */
    pthread_mutex_t lock;           /* guards runs list, publish, evict */
    pthread_cond_t closed;          /* a closing run left the runs list */
    struct kv_run *runs;            /* open published runs (shared), and
                                       runs whose databases are closing */
    unsigned long stage_counter;
    uint64_t run_cache;             /* page cache of an open run's metadata
                                       (kv_cache_set_run_cache) */
    uint64_t build_cache;           /* page cache of a staged run's metadata
                                       (kv_cache_set_build_cache) */
    /* Directory snapshots of all runs (dirsnap.c), under snap_lock: a
     * hash table by (run, dir), an LRU list, bytes held vs budget. */
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_cv;         /* a build finished */
    struct kv_dirsnap **snap_table;
    struct kv_dirsnap *snap_oldest, *snap_newest;
    uint64_t snap_bytes, snap_budget;
};

struct kv_run {
    kv_cache *cache;
    char *name;
    char *dir;              /* directory holding the database */
    char *dbfile;           /* database file name inside dir */
    KCDB *db;               /* metadata TreeDB */
    KCDB *data;             /* data block HashDB */
    pthread_rwlock_t lock;  /* readers shared; every change exclusive */
    int refs;               /* guarded by cache->lock */
    bool closing;           /* last ref gone, databases being closed: an
                             * open of the same run waits (cache->closed),
                             * as two handles on one file corrupt it */
    bool staged;            /* invisible; no transactions needed */
    bool readonly;          /* opened without the writer lock */
    bool gone;              /* evicted or replaced: no more writes (atomic) */
    kv_ino root;
    uint64_t next_ino;      /* persisted, unused: nodes without a hint get
                               random numbers (node.c, alloc_ino) */
    uint64_t data_bytes;    /* sum of stored block lengths */
    uint64_t data_empty;    /* size of the data file right after it was
                               last emptied (0: not yet this open) */
    uint64_t inodes;
    uint64_t saved_next_ino, saved_data_bytes, saved_inodes; /* rollback */
    int lockfd;             /* flock on dir: shared while open, see cache.c */
    bool unclean_marked;    /* "Sunclean" is durable in meta */
    bool keep_unclean;      /* garbage left: let the next open sweep it */
    int lazy;               /* absent data: 0 unknown, 1 some, 2 none
                             * (atomic; lazy.c) */
    uint64_t gen;           /* change generation: renewed (atomic, from
                             * kv_gen_next) by every holder of the exclusive
                             * lock, so a directory snapshot tagged with it
                             * is known current; no two runs share one */
    uint64_t synced_gen;    /* gen at the last kv_run_sync that flushed
                             * (atomic): equal to gen, nothing to flush */
    struct kv_drop *drops;  /* data to delete once meta commits */
    size_t ndrops, capdrops;
    struct kv_run *next;    /* cache->runs list */
};

/* ---- codec.c ---- */
void kv_put64(unsigned char *p, uint64_t v);
uint64_t kv_get64(const unsigned char *p);
void kv_put32(unsigned char *p, uint32_t v);
uint32_t kv_get32(const unsigned char *p);
size_t kv_key_ino(unsigned char *k, char tag, kv_ino ino);
size_t kv_key_ino2(unsigned char *k, char tag, kv_ino ino, uint64_t n);
size_t kv_key_name(unsigned char *k, kv_ino dir, const char *name, size_t len);
/* Encode into a malloc'd buffer; NULL on ENOMEM. */
char *kv_inode_encode(const struct kv_inode *in, size_t *len);
/* Decode; returns 0 or EIO (corrupt), ENOMEM. */
int kv_inode_decode(const char *buf, size_t len, struct kv_inode *in);
void kv_inode_free(struct kv_inode *in);
/* Map the last KC error of db to an errno value (call it right after the
 * failed KC call: a system error is ENOSPC when the disk was full). */
int kv_kcerr(KCDB *db);
/* The errno of a failed transaction step of db: ENOSPC (disk full) or EIO. */
int kv_kcfail(KCDB *db);
/* End db's transaction: commit if err is 0, else abort; a failed commit is
 * aborted too.  Returns err, or the commit's error (kv_kcfail). */
int kv_kcend(KCDB *db, int err);
/* Set key to val (remove it if val is NULL; absent is fine) in a
 * transaction of its own.  Errors: kv_kcfail's, nothing changed. */
int kv_kcflag(KCDB *db, const char *key, const char *val);
/* 0 if name is a valid single component, else EINVAL or ENAMETOOLONG. */
int kv_check_name(const char *name, size_t *len);
void kv_now(struct timespec *ts);
void kv_attr_from(kv_ino ino, const struct kv_inode *in, struct kv_attr *a);

/* ---- ingest_path.c (shared with tarscan.c) ---- */
/* Normalise a tar member path in place: "./", empty components and
 * trailing slashes dropped; "" is the archive root.  EBADMSG for an
 * absolute path or a ".." component (refused, never rewritten). */
int kv_member_path_normalise(char *p);

/* Whether a tar member's owner id (uid or gid, as libarchive gives it)
 * fits 32 bits without wrapping: 0 to 2^32 - 2 ((uid_t)-1 means "no
 * owner" to chown).  Out of range, the member is refused, not wrapped
 * (uid 2^32 + 1 would become uid 1). */
static inline bool kv_member_id_ok(int64_t id)
{
    return id >= 0 && id < (int64_t)UINT32_MAX;
}

/* ---- node.c ---- */
/* Load inode ino into *in (ENOENT if missing). */
int kv_inode_load(kv_run *r, kv_ino ino, struct kv_inode *in);
int kv_inode_store(kv_run *r, kv_ino ino, const struct kv_inode *in);

/* ---- cache.c: the cache directory ---- */
/* Name of the info file in a run directory (files, created, source). */
#define KV_INFO_FILE    "info"
/* fsync the directory path (relative to dirfd).  Returns 0 or errno. */
int kv_fsync_path(int dirfd, const char *path);
/* Remove path (a file or directory tree) relative to parent: 0 or errno. */
int kv_remove_tree(int parent, const char *path);
/* Open the directory rel (relative to the cache) for reading into *out.
 * Errors: ENOENT (missing or not a directory), EIO, others from openat. */
int kv_opendir_at(kv_cache *c, const char *rel, DIR **out);
/* Delete every directory under tmp/ that no process holds an flock on. */
void kv_sweep_tmp(kv_cache *c);
/* A directory name for tmp/ unique across processes and calls, into buf. */
void kv_unique_id(kv_cache *c, char *buf, size_t cap);
/* 0 if name is a valid run name, else EINVAL or ENAMETOOLONG. */
int kv_check_run_name(const char *name);
/* The directory name under runs/ of run name.  Errors: ENAMETOOLONG. */
int kv_encode_run_name(const char *name, char *out, size_t cap);
/* Both: a valid run name's directory name under runs/ into out; EINVAL
 * for any bad or too long name. */
int kv_run_dirname(const char *name, char *out, size_t cap);
/* Set st's bytes_total and bytes_free from c's limit, free space, bytes_used. */
void kv_cache_fill_space(kv_cache *c, struct kv_statfs *st);

/* ---- run.c: the life of a run ---- */
/* The listed (open or closing) run called name, or NULL.  Holds c->lock. */
kv_run *kv_find_open_locked(kv_cache *c, const char *name);
/* Unlist r and forbid its writes (files moved away).  Holds c->lock. */
void kv_retire_locked(kv_cache *c, kv_run *r);
/* Whether r's files are still the run published under its name. */
bool kv_run_is_current(kv_run *r);
/* Save the counters in the current transaction (published runs). */
int kv_store_counters(kv_run *r);
/* A generation never handed out before, to any run. */
uint64_t kv_gen_next(void);

/* ---- txn.c: the write discipline ---- */
/* The errno the test fault hook injects for op, or 0. */
int kv_fault(const char *op);
/* Take the exclusive lock and open a transaction (published runs).
 * Errors: EROFS (read-only or evicted), EIO. */
int kv_wbegin(kv_run *r);
/* Commit (err == 0) or roll back, persist counters, unlock; returns err or
 * the commit error. */
int kv_wend(kv_run *r, int err);
void kv_rbegin(kv_run *r);
void kv_rend(kv_run *r);

/* Begin / end a transaction on the data database (published runs only;
 * a no-op on staged runs).  kv_data_end commits when err == 0 and returns
 * err or the commit error. */
int kv_data_begin(kv_run *r);
int kv_data_end(kv_run *r, int err);

/* Mark r as changing (exclusive lock held): its snapshots go out of date. */
static inline void kv_gen_bump(kv_run *r)
{
    __atomic_store_n(&r->gen, kv_gen_next(), __ATOMIC_RELEASE);
}

/* ---- dirsnap.c ---- */
/* Default byte budget of a cache's directory snapshots. */
#define KV_DIR_BUDGET_DEFAULT   ((uint64_t)64 << 20)
/* Forget r's snapshots (r is being freed). */
void kv_dirsnap_drop_run(kv_run *r);
/* Free every snapshot of c (closing, or the budget set to 0). */
void kv_dirsnap_free_all(kv_cache *c);

/* ---- data.c ---- */
/* Blocks of one file to delete when the metadata transaction ends: after
 * it commits (space freed by truncate/unlink), or, for on_failure drops,
 * if it fails (blocks a write already committed past the old end). */
struct kv_drop {
    kv_ino ino;
    uint64_t from, to;      /* block numbers [from, to) */
    uint64_t bytes;         /* stored in [from, to), if bytes_known: the
                               deletion stops once that many are gone */
    uint64_t trim_blk;      /* block cut to trim_len bytes, if trim_len */
    size_t trim_len;
    bool on_failure;
    bool bytes_known;
    bool gone;              /* the inode is deleted: the blocks are
                               unreachable, so they may go after the change
                               in bounded steps (kv_data_drop_gone) */
};
/* Blocks probed per step of a deferred deletion (one lock hold, about
 * 1-2 ms in a release build, ~16 ms under ASan). */
#define KV_DROP_STEP 1024
/* Queue a drop for kv_wend.  Errors: ENOMEM. */
int kv_drop_push(kv_run *r, const struct kv_drop *d);
/* Shrink ino (record *in) to size: accounts the freed bytes now and queues
 * the block deletions for kv_wend, so data never disappears before the
 * metadata saying so is committed.  Caller is inside kv_wbegin. */
int kv_data_truncate(kv_run *r, kv_ino ino, struct kv_inode *in, uint64_t size);
/* kv_data_truncate to 0 for an inode being deleted (in the same
 * transaction): its blocks go after the commit, in bounded steps. */
int kv_data_free_all(kv_run *r, kv_ino ino, struct kv_inode *in);
/* Move the queued drops of deleted inodes (committed case) out of r's
 * queue into a malloc'd array.  Errors: ENOMEM (they stay queued). */
int kv_data_take_gone(kv_run *r, struct kv_drop **out, size_t *n);
/* Carry out such drops without holding the run's lock for long: each step
 * of KV_DROP_STEP blocks takes and releases it.  Errors: EIO (the run is
 * then swept at its next open). */
int kv_data_drop_gone(kv_run *r, const struct kv_drop *ds, size_t n);
/* Carry out the queued drops that apply (committed: the normal ones;
 * otherwise the on_failure ones) and empty the queue.  Errors: EIO. */
int kv_data_run_drops(kv_run *r, bool committed);
/* Remove garbage blocks a crash may have left (run opened for writing with
 * "Sunclean" set).  Errors: EIO. */
int kv_data_gc(kv_run *r);
size_t kv_key_block(unsigned char *k, kv_ino ino, uint64_t blk);

/* ---- lazy.c ---- */
/* Under the read lock: ENODATA if [off, off+len) of regular file ino has
 * an absent chunk, else 0 (or EIO). */
int kv_absent_check(kv_run *r, kv_ino ino, uint64_t off, uint64_t len);
/* True if spec is valid for a file of its size (nchunks matches, CRCs
 * given).  */
bool kv_absent_spec_ok(const struct kv_absent_spec *spec);
/* Inside a write: record the absent data of new file ino per spec (the
 * records kv_set_absent makes, and the run's lazy totals).  The caller
 * has checked spec and that ino has no data.  Errors: ENOSPC, EIO. */
int kv_absent_record(kv_run *r, kv_ino ino, const struct kv_absent_spec *spec);
/* Whether data block blk of ino lies in an absent chunk of an index file
 * (such a block is garbage a crash left: kv_data_gc removes it). */
bool kv_block_absent(kv_run *r, kv_ino ino, uint64_t blk);

/* Decode the directory entry record (key, value) that a cursor over the
 * entries keyed prefix (kv_key_ino2 'E' dir, first 9 bytes) returned, its
 * name into name.  Errors: ENOENT (a record past the directory: the walk
 * ends), EIO (a corrupt record). */
int kv_dirent_decode(const char *key, size_t ksiz, const char *vbuf, size_t vsiz,
                     const unsigned char prefix[9], char name[KV_NAME_MAX + 1],
                     struct kv_dirent *de);

#endif
