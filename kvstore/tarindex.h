/* tarindex.h: the run index ("tix"): a compact, versioned description of
 * every member of an uncompressed tarball (attributes, link targets, the
 * byte offset of each member's data and a CRC-32 per 1 MiB chunk of it), so
 * a run can be served from its metadata alone and each member fetched by
 * byte range and verified.  Format: doc/design.md "The run index".
 *
 * The index names the tarball it describes (size, backend version, SHA-256
 * when known); tix_matches() decides whether an index may be trusted for a
 * given object.  Nothing here does I/O except tix_scan's read callback.
 * Errors are positive errno values. */
#ifndef TARNFS_TARINDEX_H
#define TARNFS_TARINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sidecar name: the index of tarball KEY is stored as KEY TIX_SUFFIX,
 * beside it (S3 object or NAS file): "run1.tar" -> "run1.tar.tarnfs-index".
 * It is not a tarball suffix, so it never shows in the namespace. */
#define TIX_SUFFIX ".tarnfs-index"

/* Checksum granularity: one CRC-32 (zlib's crc32; computed by ISA-L's
 * crc32_gzip_refl, the same function) per TIX_CHUNK bytes of a member's
 * data (the last chunk may be shorter).  A range fetch of a member is
 * verified chunk by chunk. */
#define TIX_CHUNK ((uint32_t)1 << 20)

/* Bounds a parser enforces (a hostile index is refused, never trusted). */
#define TIX_PATH_MAX 4096
#define TIX_MAX_MEMBERS ((uint64_t)1 << 28)

enum tix_type {
    TIX_REG = 1,      /* regular file; data at data_off (unless sparse) */
    TIX_DIR = 2,
    TIX_SYMLINK = 3,  /* link = target */
    TIX_HARDLINK = 4, /* link = path of the earlier member it links to */
    TIX_FIFO = 5,
    TIX_CHR = 6,
    TIX_BLK = 7,
};

/* Member flags. */
#define TIX_F_SPARSE 1u /* data is not one contiguous range: no range fetch */

/* One member, in tar order.  path and link are as in the archive after
 * normalisation (no leading "./" or "/", no trailing '/', no "." parts); the
 * consumer applies the same placement rules as kv_ingest (top directory
 * stripping, refusal of ".." and absolute paths).  A directory member naming
 * the archive root itself ("./") has path ".". */
struct tix_member {
    const char *path;
    const char *link;       /* symlink target / hard-link target path, or NULL */
    uint8_t type;           /* enum tix_type */
    uint32_t flags;         /* TIX_F_* */
    uint32_t mode;          /* permission bits incl. setuid/setgid/sticky (07777) */
    uint32_t uid, gid;
    uint64_t size;          /* file size (0 for non-regular) */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint64_t rdev;          /* devices: makedev(major, minor) */
    uint64_t data_off;      /* offset of the data's first byte in the tarball */
    uint32_t nsums;         /* number of chunk CRCs: ceil(size / TIX_CHUNK), 0 if sparse */
    const uint32_t *sums;   /* nsums CRC-32 values, chunk 0 first */
    uint64_t ino;           /* the inode number the member asks for (the
                             * tarball's TIX_INO_XATTR), 0 if none; never on
                             * a hard link.  An index carrying one is format
                             * version 2, otherwise 1. */
};

/* The pax extended attribute (SCHILY.xattr.<name>, decimal) in which a
 * tarball written back by tarnfsd keeps the inode number of a member that
 * was created, or renamed, over NFS: loaded again, the member keeps its
 * number, so an old handle of whatever held that path before goes stale
 * instead of naming it. */
#define TIX_INO_XATTR "user.tarnfs.ino"

struct archive_entry;

/* The inode number tarball member e asks for in its TIX_INO_XATTR: a
 * decimal from 1 to 2^63-1; 0 if it has none or it is malformed. */
uint64_t tix_entry_ino(struct archive_entry *e);

/* The tarball an index describes. */
struct tix_source {
    uint64_t size;          /* bytes of the tarball object */
    char version[128];      /* backend version (S3 ETag unquoted; NAS
                             * "mtime-ns:size:inode"), "" if unknown */
    char sha256[65];        /* lowercase hex SHA-256 of the object, "" if unknown */
};

/* ---- writing ---------------------------------------------------------- */

typedef struct tix_writer tix_writer;

/* A new, empty index writer.  Errors: ENOMEM. */
int tix_writer_new(tix_writer **out);

/* Append one member (copied; in tar order).  Errors: EINVAL (path empty or
 * too long, bad type, nsums not matching size), ENOMEM. */
int tix_writer_add(tix_writer *w, const struct tix_member *m);

/* Finish: the serialised index for tarball src, in a malloc'd buffer the
 * caller frees.  The writer may then only be freed.  Errors: ENOMEM. */
int tix_writer_finish(tix_writer *w, const struct tix_source *src,
                      void **buf, size_t *len);

/* Free a writer (finished or not).  NULL is a no-op. */
void tix_writer_free(tix_writer *w);

/* Running chunk checksums of one member's data: feed its bytes in order
 * (any piece sizes); tix_sums_take hands out the CRC array.  Zero-init the
 * struct before the first member; tix_sums_reset between members. */
struct tix_sums {
    uint64_t pos;           /* bytes fed so far */
    uint32_t crc;           /* CRC of the current, incomplete chunk */
    uint32_t n, cap;
    uint32_t *v;
};
/* Feed len bytes.  Errors: ENOMEM. */
int tix_sums_add(struct tix_sums *s, const void *buf, size_t len);
/* Close the last partial chunk and return the array (owned by s, valid
 * until the next reset/free) and its length. */
const uint32_t *tix_sums_finish(struct tix_sums *s, uint32_t *n);
void tix_sums_reset(struct tix_sums *s);
void tix_sums_free(struct tix_sums *s);

/* CRC-32 of one chunk's bytes (what tix_sums computes), for verifying a
 * fetched range: compare with sums[chunk]. */
uint32_t tix_crc(const void *buf, size_t len);

/* ---- reading ---------------------------------------------------------- */

typedef struct tix_index tix_index;

/* Parse and fully validate a serialised index (magic, version, trailer
 * SHA-256, every length and bound, nsums == ceil(size/TIX_CHUNK) for
 * non-sparse files, data ranges inside the tarball's size).  On failure
 * err says why.  Errors: EBADMSG (corrupt, truncated, hostile), ENOTSUP
 * (a newer format version), ENOMEM. */
int tix_parse(const void *buf, size_t len, tix_index **out,
              char *err, size_t errlen);

/* The tarball the index describes. */
const struct tix_source *tix_get_source(const tix_index *ix);

/* Number of members. */
size_t tix_count(const tix_index *ix);

/* Member i (0-based, tar order); pointers inside stay valid until
 * tix_free.  Errors: ERANGE. */
int tix_get(const tix_index *ix, size_t i, struct tix_member *m);

/* Free a parsed index.  NULL is a no-op. */
void tix_free(tix_index *ix);

/* May ix be trusted for the object described by actual?  Sizes must be
 * equal; then the SHA-256s if both are known, else the versions (both
 * non-empty).  A mismatch is false. */
bool tix_matches(const tix_index *ix, const struct tix_source *actual);

/* ---- building from a tarball ------------------------------------------ */

/* Pull callback (same shape as kv_read_fn): up to cap bytes, 0 at end,
 * -errno on error. */
typedef ssize_t (*tix_read_fn)(void *arg, void *buf, size_t cap);

/* Progress callback: bytes of the tarball read so far; nonzero return
 * cancels the scan with ECANCELED. */
typedef int (*tix_progress_fn)(void *arg, uint64_t bytes);

/* One streaming pass over an uncompressed tarball from read_fn, producing
 * its index for src (src->size may be 0: the bytes read are used).
 * Errors: ENOTSUP (compressed: no random access), EBADMSG (corrupt or not
 * tar), EIO (read_fn failed or truncated), ECANCELED, ENOMEM; err says
 * why, naming the member. */
int tix_scan(tix_read_fn read_fn, void *arg, const struct tix_source *src,
             tix_progress_fn progress, void *parg,
             void **buf, size_t *len, char *err, size_t errlen);

#endif
