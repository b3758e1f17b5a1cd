/* ingest_internal.h: the member placement core of kvstore/ingest.c, shared
 * by the two ways a run is built: streaming its tarball (kv_ingest, in
 * ingest.c) and from its index (kv_ingest_index, in ingest_index.c).  Both
 * describe each member as a struct ingest_member and hand it to
 * ingest_place, so placement (top-directory stripping, refusal of absolute
 * and ".." paths, hard links, duplicates, inode numbers) exists once.
 * Nobody outside kvstore/ingest*.c may use it. */
#ifndef TARNFS_INGEST_INTERNAL_H
#define TARNFS_INGEST_INTERNAL_H

#include "kvstore/kvfs.h"

#include <stdbool.h>
#include <stdint.h>
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

struct ingest;

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

#endif
