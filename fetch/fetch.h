/* fetch.h: the backends that hold tarballs (a NAS directory, an S3 bucket),
 * behind one method table in the style of sqlite3_vfs.  fetch/ knows nothing
 * of kvstore, vfs or NFS: it lists, stats, streams and stores objects.
 *
 * Conventions
 *   - int-returning functions return 0 or a positive errno value: ENOENT (no
 *     such object/bucket), EACCES (credentials refused; the message says
 *     which), EIO (network or server failure after retries), EPROTO (bad
 *     reply), ECANCELED (precondition failed, e.g. If-Match), ENOSPC, EINVAL.
 *   - Every backend call passes through fetch_fault_check() first, so tests
 *     can make any call fail (see the fault hook below).
 *   - Keys are object names relative to the backend's prefix, e.g.
 *     "RUN.tar" or "2024/RUN.tar.gz".  Any byte but NUL is allowed.
 *   - Credentials never appear in logs or error messages.
 */
#ifndef TARNFS_FETCH_H
#define TARNFS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct fetch_backend fetch_backend;
typedef struct fetch_stream fetch_stream;
typedef struct fetch_upload fetch_upload;

struct fetch_objinfo {
    char key[1024];
    uint64_t size;
    struct timespec mtime;
    char version[128];     /* ETag, unquoted (S3), or "mtime-ns:size:inode"
                              (NAS): changes when the object is replaced;
                              opaque to callers */
    bool is_prefix;        /* a common prefix ("dir/") from a delimiter list */
    char sha256[65];       /* stored SHA-256 (hex) from stat/put, "" if none */
};

/* Called once per listed object or common prefix; nonzero stops. */
typedef int (*fetch_list_cb)(void *arg, const struct fetch_objinfo *oi);

/* Pull callback used by put: fill buf with up to cap bytes; return bytes,
 * 0 at end, or -errno. */
typedef ssize_t (*fetch_pull_fn)(void *arg, void *buf, size_t cap);

struct fetch_put_opts {
    const char *if_match;          /* only replace this version (NULL: any) */
    bool if_none_match;            /* only create (fail if exists) */
    const char *sha256_hex;        /* expected SHA-256: the body is checked
                                      against it (EIO on mismatch) */
    size_t part_size;              /* S3 multipart part size (0: default,
                                      8 MiB; bodies up to it go in one PUT) */
    unsigned upload_threads;       /* S3 parts in flight at once (0: 2); each
                                      holds a part_size buffer */
    uint64_t size_hint;            /* the body's expected size, best a
                                      little over (0: unknown): S3 parts
                                      shrink to half of what is left of it
                                      (>= 8 MiB), so the parts sent after
                                      the last write are small; past it,
                                      parts are whole again */
};
/* put always computes the body's SHA-256 while it streams and stores it (S3
 * metadata x-amz-meta-sha256, NAS sidecar KEY.sha256); oi->sha256 gets it. */

struct fetch_methods {
    const char *name;                                  /* "nas", "s3" */
    /* List keys under prefix ("" = all).  With delimiter "/", keys below
     * the next "/" are folded into one is_prefix entry. */
    int (*list)(fetch_backend *b, const char *prefix, const char *delimiter,
                fetch_list_cb cb, void *arg);
    int (*stat)(fetch_backend *b, const char *key, struct fetch_objinfo *oi);
    /* Open a read stream of the whole object (len 0) or a byte range. */
    int (*open)(fetch_backend *b, const char *key, uint64_t off, uint64_t len,
                fetch_stream **out);
    /* Store an object pushed in pieces, atomically: readers see the old or
     * the new object, never a part (contracts: fetch_upload_*). */
    int (*upload_begin)(fetch_backend *b, const char *key,
                        const struct fetch_put_opts *opts, fetch_upload **out);
    int (*upload_write)(fetch_upload *u, const void *buf, size_t len);
    /* hex: the body's SHA-256, computed and checked by fetch.c */
    int (*upload_commit)(fetch_upload *u, const char *hex, struct fetch_objinfo *oi);
    void (*upload_abort)(fetch_upload *u);
    int (*del)(fetch_backend *b, const char *key);
    /* Remove what interrupted puts by dead processes of this host left in
     * key's directory (NULL: the backend leaves nothing, or cleans up
     * otherwise).  *removed gets the count. */
    int (*sweep)(fetch_backend *b, const char *key, unsigned *removed);
    /* Abort the unfinished multipart uploads whose key mine accepts (NULL:
     * the backend has none).  *aborted gets the count. */
    int (*abort_uploads)(fetch_backend *b, bool (*mine)(void *arg, const char *key),
                         void *arg, unsigned *aborted);
    void (*close)(fetch_backend *b);
};

/* Base of every backend ("subclasses" put this first). */
struct fetch_backend {
    const struct fetch_methods *m;
    unsigned stall_timeout_ms;     /* fetch_config's, defaulted by fetch_open */
};

struct fetch_config {
    const char *s3_endpoint;       /* overrides AWS_ENDPOINT_URL */
    const char *region, *access_key, *secret_key, *session_token, *profile;
    bool virtual_hosted;           /* S3 addressing style */
    unsigned max_retries;          /* 0: default (5) */
    unsigned retry_base_ms;        /* first backoff delay (0: default 100) */
    unsigned list_page_size;       /* S3 max-keys per list request (0: 1000) */
    unsigned stall_timeout_ms;     /* a transfer that receives no bytes this
                                      long fails with ETIMEDOUT, not retried
                                      (0: default, 60 s) */
};

/* Open the backend named by source: "/path/to/dir" (NAS) or
 * "s3://bucket[/prefix]".  Credentials not in cfg follow the AWS
 * conventions.  Errors: EINVAL (bad source, message in err), ENOENT,
 * EACCES, EIO. */
int fetch_open(const char *source, const struct fetch_config *cfg,
               fetch_backend **out, char *err, size_t errlen);

/* Check, without opening it, that source would open: a NAS directory that
 * exists and is readable, or an s3:// URL that parses, with an endpoint
 * that parses and credentials present in cfg or by the AWS conventions.
 * No network traffic.  Errors: EINVAL (why in err; never a secret),
 * ENOENT, EACCES, ENOTDIR. */
int fetch_check_source(const char *source, const struct fetch_config *cfg,
                       char *err, size_t errlen);

/* Remove the temp files that puts interrupted by a crash of a process of
 * this host left next to key (NAS; a no-op elsewhere); *removed gets how
 * many.  Temp files of live writers and of other hosts are left alone.
 * Errors: EINVAL (bad key), EACCES, EIO. */
int fetch_sweep_temps(fetch_backend *b, const char *key, unsigned *removed);

/* Abort the unfinished uploads (S3 multipart uploads that a crashed
 * writer left; a no-op on backends without them) whose key, relative to
 * the source, mine(arg, key) accepts; each abort and failure is logged;
 * *aborted gets how many.  Errors: EACCES, EIO (listing failed). */
int fetch_abort_uploads(fetch_backend *b, bool (*mine)(void *arg, const char *key),
                        void *arg, unsigned *aborted);

/* Read up to cap bytes from a stream: returns bytes, 0 at the (verified
 * complete) end, or -errno.  A body shorter than announced is -EIO, never
 * a clean end. */
ssize_t fetch_read(fetch_stream *s, void *buf, size_t cap);

/* Cancel a stream from any thread: a read waiting in it, and every later
 * one, returns -ECANCELED promptly (within about a second).  The owner
 * still closes it.  Never fails. */
void fetch_stream_cancel(fetch_stream *s);

/* Close a stream (aborting the transfer if unfinished). */
void fetch_stream_close(fetch_stream *s);

/* ---- storing an object, pushed ---------------------------------------- */

/* Start storing key; the body follows through fetch_upload_write, and
 * nothing is visible before fetch_upload_commit.  o (NULL: defaults) and
 * the strings in it must stay valid until commit or abort.  Errors: the
 * "put" fault hook's, EINVAL/ENAMETOOLONG (bad key), EACCES, ENOMEM, EIO. */
int fetch_upload_begin(fetch_backend *b, const char *key,
                       const struct fetch_put_opts *o, fetch_upload **out);

/* Append len bytes to the body.  Blocks while the backend is behind; the
 * memory held is bounded (S3: upload_threads parts).  The first error is
 * sticky: later writes and the commit return it.  Errors: EIO, ENOSPC,
 * EACCES, ETIMEDOUT, ENOMEM. */
int fetch_upload_write(fetch_upload *u, const void *buf, size_t len);

/* The SHA-256 (lowercase hex) of what was written so far: the body's, once
 * the last write is done (write-back records it before committing),
 * without hashing the body again.  Errors: EIO. */
int fetch_upload_sha256(fetch_upload *u, char hex[65]);

/* Publish the body, atomically, with its SHA-256 stored (S3 metadata
 * x-amz-meta-sha256, NAS sidecar KEY.sha256), and free u; *oi (may be
 * NULL) gets the new version and oi->sha256.  On error nothing new is
 * visible.  Errors: the first write error, ECANCELED (a precondition of o
 * failed), EIO (body differs from o->sha256_hex, or the store failed),
 * ENOSPC, EACCES. */
int fetch_upload_commit(fetch_upload *u, struct fetch_objinfo *oi);

/* Drop an upload: nothing of it becomes visible, and what it stored so far
 * (temp file, S3 parts) is removed; frees u.  NULL is a no-op. */
void fetch_upload_abort(fetch_upload *u);

/* Convenience wrappers over b->m. */
int fetch_list(fetch_backend *b, const char *prefix, const char *delim,
               fetch_list_cb cb, void *arg);
int fetch_stat(fetch_backend *b, const char *key, struct fetch_objinfo *oi);
int fetch_get(fetch_backend *b, const char *key, uint64_t off, uint64_t len,
              fetch_stream **out);
/* Store key from pull (fetch_upload_* over a 1 MiB buffer): the pull's
 * -errno, or fetch_upload_commit's errors. */
int fetch_put(fetch_backend *b, const char *key, fetch_pull_fn pull,
              void *arg, const struct fetch_put_opts *o,
              struct fetch_objinfo *oi);
int fetch_delete(fetch_backend *b, const char *key);
void fetch_close(fetch_backend *b);

/* ---- fault injection (tests) ----------------------------------------- */

/* Fault hook: called before each backend operation (op is "list", "stat",
 * "open", "read", "put", "del", and "meta": S3 adding the SHA-256 to an
 * object stored in parts); a nonzero errno return makes that call
 * fail with it.  Also settable from the environment: TARNFS_FAULT=
 * "op:errno[:count]" (e.g. "read:5:1", "http500:1", "reset:1",
 * "truncate:1" for S3 transport faults), and "stall:MS[:count[:key]]": the
 * first read of a stream receives nothing for MS ms (a backend that
 * hangs), ending early with ETIMEDOUT at the stall timeout or ECANCELED
 * when the stream is cancelled; "stallmid:MS[:count[:key]]" the same for
 * the second read (a backend that stalls after its first bytes). */
typedef int (*fetch_fault_fn)(void *arg, const char *op, const char *key);
void fetch_set_fault(fetch_fault_fn fn, void *arg);
/* Returns the errno the hook or TARNFS_FAULT injects for (op, key), or 0.
 * Transport faults (op "http500", "reset", "truncate") return 1 to fire;
 * "stall" returns its milliseconds. */
int fetch_fault_check(const char *op, const char *key);
/* Replace the TARNFS_FAULT rules with spec (NULL: re-read the environment).
 * spec: comma-separated "op:errno[:count[:key-substring]]", or for S3
 * transport faults "http500|reset|truncate[:count[:key-substring]]"; a
 * missing count means every time.  Errors: EINVAL (bad spec, none set). */
int fetch_fault_set_spec(const char *spec);

#endif
