/* ingest_internal.h: the member placement core (kvstore/ingest_place.c,
 * with member paths in ingest_path.c), shared by the two ways a run is
 * built: streaming its tarball (kv_ingest, in ingest.c) and from its index
 * (kv_ingest_index, in ingest_index.c).  Both describe each member as a
 * struct ingest_member and hand it to ingest_place, so placement
 * (top-directory stripping, refusal of absolute and ".." paths, hard
 * links, duplicates, inode numbers) exists once.  Nobody outside
 * kvstore/ingest*.c may use it. */
#ifndef TARNFS_INGEST_INTERNAL_H
#define TARNFS_INGEST_INTERNAL_H

#include "kvstore/kvfs.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* One member, whichever source described it. */
struct ingest_member {
    const char *path;           /* as in the archive (not yet normalised) */
    const char *hardlink;       /* hard link: the target's archive path */
    const char *symlink;        /* symlink target */
    uint32_t mode;              /* type and permission bits */
    uint32_t uid, gid;
    uint64_t rdev;
    int64_t size;               /* regular files */
    struct timespec atime, mtime;
    bool has_ctime;
    struct timespec ctime;
    /* Index members: the data is absent, at data_off in the tarball, with
     * nsums chunk CRCs (kv_set_absent).  Tar members: the data follows in
     * the archive stream. */
    bool absent;
    uint64_t data_off;
    uint32_t nsums;
    const uint32_t *sums;
    uint64_t ino;               /* the number the member asks for (its
                                   TIX_INO_XATTR), 0: kv_ino_for's */
};

struct archive;

/* A directory whose own member was seen: its times are applied at the end,
 * because creating its children would bump its mtime again. */
struct dir_times {
    kv_ino ino;
    struct timespec atime, mtime;
};

/* The state of one run being built, shared by the ingest*.c files. */
struct ingest {
    kv_cache *cache;
    const char *name;           /* run name */
    const char *top;            /* last component of name: the strip candidate */
    size_t toplen;
    kv_run *run;
    struct archive *ar;
    struct kv_ingest_result *res;

    kv_read_fn read_fn;
    void *read_arg;
    unsigned char *readbuf;
    int read_errno;             /* read_fn failed with this */
    bool input_eof;             /* read_fn returned 0 */
    uint64_t input_bytes;

    /* Strip state: true while every member so far lies under top/ (or is
     * top itself); their paths are then stored relative to top. */
    bool strip;
    uint64_t members;
    bool root_from_top;         /* the root carries top/'s own attributes */

    /* Cached chain of the last parent directory resolved: path (relative
     * to the run root) and the inode of each of its prefixes. */
    char *pc_path;
    size_t pc_len, pc_cap;
    kv_ino *pc_ino;             /* pc_ino[i] = inode after component i */
    size_t *pc_end;             /* pc_end[i] = end offset of component i */
    size_t pc_n, pc_ncap;

    struct dir_times *dt;       /* one per directory, its last header's times */
    size_t dt_n, dt_cap;
    size_t *dt_slot;            /* dt by inode: open addressing, index + 1
                                   (0: free), at most half full; NULL: to
                                   be built (dt_index_drop) */
    size_t dt_slots;

    uid_t default_uid;
    gid_t default_gid;

    uint64_t budget;            /* bytes the run may take; 0: no limit */
    uint64_t meta_bytes;        /* symlink targets and absent-data records
                                   stored (charged as data) */

    /* Streaming (kv_ingest_stream): told about each member as it lands;
     * the run is handed to the caller at the end instead of being closed
     * or discarded here, since other threads read it meanwhile. */
    const struct kv_ingest_watch *watch;
    kv_run **keep;
    kv_ino last_ino;            /* the node the last member made or named */
    bool announced;             /* watch->staged was called */
};

/* Stage a new run name for placing members.  Errors: EINVAL (bad name;
 * res->error says so), ENOSPC, EIO, ENOMEM. */
int ingest_start(kv_cache *c, const char *name, struct kv_ingest_result *res,
                 struct ingest **out);

/* Place one member (and, for a tar member, copy its data).  Errors as
 * kv_ingest; res->error names the member. */
int ingest_place(struct ingest *in, const struct ingest_member *m);

/* Tell w about the run from now on (w->staged at once, w->placed after
 * each member) and hand the run to *keep at ingest_end instead of closing
 * or discarding it (kv_ingest_stream's contract). */
void ingest_watch(struct ingest *in, const struct kv_ingest_watch *w,
                  kv_run **keep);

/* Finish: with err == 0 apply directory times and publish with
 * source_version; otherwise (or if that fails) discard the run.  Frees in.
 * Returns err or the publish error. */
int ingest_end(struct ingest *in, int err, const char *source_version);

/* Record an error in res->error (the first one only) and return err. */
int ingest_error(struct ingest *in, int err, const char *member,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The name ingest.c, ingest_path.c and ingest_place.c use for ingest_error. */
#define ingest_fail ingest_error

/* ---- ingest.c: the tar stream ---- */
/* What one node costs against the byte budget: what kvstore counts for an
 * inode in bytes_used (KV_INODE_COST). */
#define INGEST_NODE_COST 256
/* What one hard link (a directory entry, no node) costs against it:
 * above what one takes in the run's file (about 80 bytes). */
#define INGEST_LINK_COST 128
/* ENOSPC (res->error says so, naming member) if storing more bytes of
 * data, with the nodes and hard links made so far, would take the run past
 * in->budget;
 * 0 with no budget. */
int ingest_charge(struct ingest *in, uint64_t more, const char *member);

/* Copy member e's data from the archive (holes for sparse ones) into ino. */
int ingest_data(struct ingest *in, const struct ingest_member *e, kv_ino ino,
                const char *member);

/* ---- ingest_path.c: where a member goes ---- */
/* (kv_member_path_normalise, in kv_internal.h, normalises member paths.) */
/* Where normalised archive path p goes, relative to the run root. */
const char *ingest_run_relative(const struct ingest *in, const char *p);
/* Whether normalised path p is top or lies under top/. */
bool ingest_under_top(const struct ingest *in, const char *p);
/* Forget the cached parent chain (after a change that may void it). */
void ingest_path_cache_reset(struct ingest *in);
/* Update the strip decision for a new member, un-stripping if needed. */
int ingest_decide_strip(struct ingest *in, const char *path, bool is_dir,
                        const char *member);
/* Grow array *p of *cap elements of elem bytes to hold need.  ENOMEM. */
int ingest_grow(void **p, size_t *cap, size_t need, size_t elem);
/* Forget dt's index (after dt's inode numbers changed); rebuilt when next
 * needed. */
void ingest_dt_index_drop(struct ingest *in);
/* The inode number member e at relpath asks for (a hint to kv_mknode). */
kv_ino ingest_member_ino(const struct ingest *in, const struct ingest_member *e,
                         const char *relpath);
/* Split relpath into its resolved (made if missing) parent and its leaf. */
int ingest_resolve_parent(struct ingest *in, char *relpath, kv_ino *parent,
                          const char **leaf, const char *member);
/* Look relpath (relative to the run root) up without making anything. */
int ingest_lookup_path(struct ingest *in, const char *relpath, kv_ino *out);

#endif
