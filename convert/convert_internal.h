/* convert_internal.h: the parts of `tarnfs convert`, in pipeline order:
 *   discovery (convert_discover.c)  finds run directories under a source tree;
 *   tree scan (convert_tree.c)      lists one run, sorted, with hard links found;
 *   tar writer (convert_tar.c)      turns a scanned run into pax bytes + SHA-256;
 *   targets (convert_target.c)      file (temp+fsync+rename) and S3 (multipart);
 *   verify (convert_verify.c)       reads a result back and checks it against
 *                                   the source tree;
 *   driver (convert_run.c)          -j workers, progress, summary.
 * Every int function returns 0 or a positive errno and, where it takes
 * err/errlen, writes a one-line human message there on failure. */
#ifndef TARNFS_CONVERT_INTERNAL_H
#define TARNFS_CONVERT_INTERNAL_H

#include "convert/convert.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fetch/fetch.h"
#include "kvstore/tarindex.h"

/* ---- discovery --------------------------------------------------------- */

struct conv_run {
    char *path;        /* the run directory as given + found ("src/a/RUN") */
    char *rel;         /* path below its source tree ("a/RUN"), or the base
                          name when the source tree itself is the run */
    char *name;        /* last component: the tar's top directory */
    char reason[160];  /* why it counts as a run (for --list) */
};

struct conv_skip {     /* a directory looked at and not taken (for --list) */
    char *path;
    char reason[160];
};


struct conv_found {
    struct conv_run *runs;
    size_t n_runs, cap_runs;
    struct conv_skip *skips;
    size_t n_skips, cap_skips;
};

/* Walk src (never following symlinks) and append the runs it holds to f.
 * Errors: ENOTDIR (src is not a directory), ENOENT, EACCES, ENOMEM. */
int conv_discover(const char *src, const struct conv_discover_opts *o,
                  struct conv_found *f, char *err, size_t errlen);

/* Free everything conv_discover appended. */
void conv_found_free(struct conv_found *f);

/* ---- tree scan --------------------------------------------------------- */

struct conv_entry {
    char *rel;              /* "" for the run directory itself, else "a/b" */
    struct stat st;         /* lstat at scan time */
    char *link_target;      /* symlinks only */
    long hardlink_of;       /* index of the first entry sharing the inode,
                               or -1: that first one carries the data */
};

struct conv_tree {
    struct conv_entry *v;   /* pre-order, siblings sorted bytewise */
    size_t n, cap;
    uint64_t data_bytes;    /* bytes of regular-file data to archive */
    uint64_t files;         /* entries that are not directories */
};

/* Scan the run directory at path into t (sorted pre-order).  Sockets and
 * unreadable directories fail the scan.  Errors: ENOTDIR, ENOENT, EACCES,
 * EINVAL (a socket: the message names it), ENOMEM, EIO. */
int conv_tree_scan(const char *path, struct conv_tree *t,
                   char *err, size_t errlen);

/* Free a scanned tree. */
void conv_tree_free(struct conv_tree *t);

/* ---- tar writer -------------------------------------------------------- */


/* The suffix for a compression: ".tar", ".tar.gz" or ".tar.zst". */
const char *conv_tar_suffix(enum conv_compress c);

/* Receives the tar bytes in order; returns 0 or a positive errno. */
typedef int (*conv_sink_fn)(void *arg, const void *buf, size_t len);

struct conv_counters {      /* shared with the progress display */
    _Atomic uint64_t bytes; /* source data bytes archived */
    _Atomic uint64_t files; /* entries archived */
};

struct conv_tar_result {
    unsigned char sha256[32];
    char sha256_hex[65];
    uint64_t tar_bytes;     /* bytes produced (after compression) */
    tix_writer *tix;        /* the run index (plain tarball, when asked),
                               unfinished: the caller finishes it with the
                               stored object's version and frees it */
    char index_skipped[256];/* why a plain tarball has no index, or "" */
};

/* Write the tarball of the scanned run t (rooted at run_path, members
 * named "top/...") into sink, hashing it with SHA-256 into res if hash (a
 * sink that hashes by itself, as fetch_put does, saves a pass; res then
 * gets only tar_bytes).  With index and no compression, res->tix gets the
 * run index (data offsets counted from the bytes libarchive hands out,
 * chunk CRCs of the data read); NULL with res->index_skipped set if a member
 * cannot be indexed.  Fails when a file
 * changes while it is read (size, mtime or ctime differ, or it is not the
 * scanned inode), when a read fails, when the sink fails, or when *cancel
 * becomes true (ECANCELED).  Errors: EAGAIN-free: EBUSY (a file changed),
 * EACCES, EIO, ENOSPC (from the sink), ECANCELED, ENOMEM. */
int conv_tar_write(const char *run_path, const char *top,
                   const struct conv_tree *t, enum conv_compress comp,
                   conv_sink_fn sink, void *sink_arg, bool hash, bool index,
                   struct conv_counters *ctr, const atomic_bool *cancel,
                   struct conv_tar_result *res, char *err, size_t errlen);

/* ---- targets ----------------------------------------------------------- */

struct conv_job {           /* one run being converted */
    const char *run_path;
    const char *top;        /* member prefix: the run's own name */
    const struct conv_tree *tree;
    enum conv_compress comp;
    struct conv_counters *ctr;
    const atomic_bool *cancel;
    size_t part_size;       /* S3 multipart part size (0: fetch's default) */
    uint64_t size_hint;     /* the tarball's size, estimated a little over
                               (0: unknown, e.g. compressed) */
    bool index;             /* also write the run index (plain tarballs) */
};

/* Write the job's tarball to the file dir/name: a temporary
 * ".name.tmp.<pid>" in dir, fsync, rename over name, fsync dir, then the
 * "name.sha256" sidecar the same way.  Never leaves a partial file under
 * name; removes the temporary on every failure.  Errors as conv_tar_write,
 * plus those of open/write/fsync/rename (ENOSPC, EACCES, EROFS, ...). */
int conv_target_file(const struct conv_job *job, const char *dir,
                     const char *name, struct conv_tar_result *res,
                     char *err, size_t errlen);

/* Stream the job's tarball into backend key as a multipart upload (the
 * archive writer runs in a producer thread; fetch_put pulls); fetch stores
 * the SHA-256 as object metadata, checked against ours.  Any failure
 * aborts the upload (fetch_put's contract).
 * Errors as conv_tar_write plus fetch's (EIO, EACCES, ENOENT...). */
int conv_target_s3(const struct conv_job *job, fetch_backend *b,
                   const char *key, struct conv_tar_result *res,
                   char *err, size_t errlen);

/* Produce the job's tarball only to learn its SHA-256 and size (for the
 * resume check).  Errors as conv_tar_write. */
int conv_target_hash(const struct conv_job *job, struct conv_tar_result *res,
                     char *err, size_t errlen);

/* Read the SHA-256 recorded for a target: the sidecar file dir/name.sha256
 * (b == NULL) or object name's metadata (fetch_stat).  hex gets 64 hex digits.
 * Errors: ENOENT (none recorded), EPROTO (malformed), fetch's errors. */
int conv_recorded_sha256(fetch_backend *b, const char *dir, const char *name,
                         char hex[65], char *err, size_t errlen);

/* ---- run index sidecars (convert_index.c) -------------------------------- */

/* An index sidecar larger than this is refused when read. */
#define CONV_INDEX_MAX ((size_t)256 << 20)

/* The sidecar name of tarball name: name TIX_SUFFIX (malloc'd; NULL: ENOMEM). */
char *conv_index_name(const char *name);

/* fetch's view (size, version, sha256) of the NAS file dir/name: what
 * tarnfsd will compare an index with.  Errors: fetch_open's and fetch_stat's. */
int conv_nas_info(const char *dir, const char *name, struct fetch_objinfo *oi,
                  char *err, size_t errlen);

/* Store buf as the index sidecar of tarball name: object name TIX_SUFFIX of
 * b with the preconditions of po (NULL: none), or, with b NULL, the file
 * dir/name TIX_SUFFIX (temporary, fsync, rename, fsync dir).  Errors:
 * ECANCELED (a precondition failed), fetch's and file errors. */
int conv_index_put(fetch_backend *b, const char *dir, const char *name,
                   const void *buf, size_t len, const struct fetch_put_opts *po,
                   char *err, size_t errlen);

/* Finish w for tarball src and store it with conv_index_put.
 * Errors: EINVAL (w does not fit src), conv_index_put's. */
int conv_index_store(fetch_backend *b, const char *dir, const char *name,
                     tix_writer *w, const struct tix_source *src,
                     const struct fetch_put_opts *po, char *err, size_t errlen);

/* Read the index sidecar of name (object of b, or file under dir) whole into
 * a malloc'd buffer; oi (may be NULL) gets the sidecar's own info (its
 * version, for If-Match).  Errors: ENOENT (none, no message), EFBIG (over
 * CONV_INDEX_MAX), ENOMEM, fetch's and read errors. */
int conv_index_load(fetch_backend *b, const char *dir, const char *name,
                    void **buf, size_t *len, struct fetch_objinfo *oi,
                    char *err, size_t errlen);

/* Check the stored index of tarball name: it parses, tix_matches actual,
 * and equals, member by member, a fresh tix_scan of the tarball (read once
 * more).  Errors: ENOENT (no index), EBADMSG (a difference: the message
 * says which), ECANCELED, read errors. */
int conv_index_verify(fetch_backend *b, const char *dir, const char *name,
                      const struct tix_source *actual, const atomic_bool *cancel,
                      char *err, size_t errlen);

/* ---- verify ------------------------------------------------------------ */

/* Re-read the tarball (file dir/name when b == NULL, else object key of b)
 * with libarchive and check it against the source run directory as it is
 * now: the whole-file SHA-256 equals want_sha_hex, member list, types,
 * modes, owners, mtimes, sizes, link targets and per-file SHA-256 of the
 * contents.  Errors: EBADMSG (a difference: the message names it),
 * ECANCELED, and I/O errors from reading either side. */
int conv_verify(fetch_backend *b, const char *dir, const char *name,
                const char *run_path, const char *top,
                const char *want_sha_hex, const atomic_bool *cancel,
                char *err, size_t errlen);

/* The names in open directory d ("." and ".." left out; with dirs_only,
 * only entries that are directories themselves, symlinks not followed), in
 * strcmp order, so walks and tarballs are deterministic.  On success the
 * caller frees them with conv_names_free.  Errors: errno of readdir,
 * ENOMEM. */
int conv_list_names(DIR *d, bool dirs_only, char ***names,
                    size_t *n);

/* Free a list from conv_list_names. */
void conv_names_free(char **names, size_t n);

/* Delete the run directory's entries listed in t (deepest first), never
 * following symlinks; a directory that gained entries since the scan is
 * kept.  Errors: ENOTEMPTY (something new appeared: kept), errno of
 * unlink/rmdir. */
int conv_delete_tree(const char *run_path, const struct conv_tree *t,
                     char *err, size_t errlen);

#endif
