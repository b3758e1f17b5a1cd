/* convert.h: `tarnfs convert`, which turns the sequencing-run directories of
 * a NAS tree into one tarball each, in S3, in a NAS directory or in place.
 * The pieces (discovery, tree scan, tar writer, targets, verify) are in
 * convert_internal.h; this is the only entry point the tool table needs. */
#ifndef TARNFS_CONVERT_H
#define TARNFS_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conv_target_kind { CONV_TARGET_NONE, CONV_TARGET_IN_PLACE, CONV_TARGET_DIR, CONV_TARGET_S3 };
enum conv_naming { CONV_NAMING_FLAT, CONV_NAMING_PATH };
enum conv_compress { CONV_COMPRESS_NONE = 0, CONV_COMPRESS_GZIP, CONV_COMPRESS_ZSTD };

/* Which directories are runs (convert_discover.c). */
struct conv_discover_opts {
    const char **markers;   /* --marker files (all must exist); NULL: default */
    size_t n_markers;
    const char **excludes;  /* --exclude globs */
    size_t n_excludes;
    int64_t min_age_sec;    /* --min-age; 0 = none */
};

/* What to convert where (tarnfs-convert(1) names each option). */
struct convert_opts {
    enum conv_target_kind kind;
    const char *to;             /* s3://BUCKET[/PREFIX] or a directory */
    const char *s3_endpoint;    /* NULL: AWS_ENDPOINT_URL */
    enum conv_naming naming;
    enum conv_compress comp;
    bool verify, delete_source, force, list;
    unsigned jobs;              /* >= 1 */
    size_t part_size;           /* 0: by the tree's size */
    int progress;               /* -1 auto (a terminal), 0 off, 1 on */
    struct conv_discover_opts disc;
};

/* Find the runs under the n_trees trees and convert each as o says (with
 * o->list, only say what would be done), a line per run and a summary on
 * stdout, problems on stderr.  Returns the exit status: 0 every run
 * converted (or already up to date), 1 some run failed or convert_cancel
 * was called, 2 bad usage (a --to that is not a directory, a tree that
 * is not there, a name collision under --naming flat: found before
 * anything is written). */
int convert_run(const struct convert_opts *o, char **trees, size_t n_trees);

/* Ask a convert_run in progress to stop: runs not started are not, runs
 * in progress are abandoned (nothing half written stays).  Async-signal
 * safe. */
void convert_cancel(void);

/* `tarnfs index` (convert_index.c): build the missing run indexes of a
 * collection. */
struct conv_index_opts {
    const char *s3_endpoint;   /* NULL: AWS_ENDPOINT_URL */
    bool force;                /* rebuild even an index that matches */
    bool progress;             /* live progress line (bytes, rate) on stderr */
    bool quiet;                /* no line for tarballs already indexed */
};

/* For each tarball of source ("/dir" or "s3://bucket[/prefix]"), or only
 * those named (a key, or a key without its tarball suffix): keep a sidecar
 * that parses and matches; else read the tarball once (tix_scan) and store
 * its index: on S3 conditionally (If-None-Match when there was none,
 * If-Match of the stale sidecar's ETag when replacing one), so a newer
 * index is never overwritten; on a NAS directory atomically (temporary +
 * rename).  Compressed tarballs are skipped with a message.  One line per
 * tarball and a summary on stdout.  Returns the exit status: 0 all indexed,
 * up to date or skipped; 1 some tarball failed or a NAME was not found;
 * 2 the source cannot be opened or listed. */
int conv_index_run(const char *source, char **names, size_t n_names,
                   const struct conv_index_opts *o);

#endif
