/* convert.h: `tarnfs convert`, which turns the sequencing-run directories of
 * a NAS tree into one tarball each, in S3, in a NAS directory or in place.
 * The pieces (discovery, tree scan, tar writer, targets, verify) are in
 * convert_internal.h; this is the only entry point the tool table needs. */
#ifndef TARNFS_CONVERT_H
#define TARNFS_CONVERT_H

#include <stdbool.h>
#include <stddef.h>

/* Run `tarnfs convert` with argv[0] = "convert".  Returns the exit code:
 * 0 every run converted (or already up to date), 1 some run failed or the
 * command was interrupted, 2 bad usage (including a name collision under
 * --naming flat, found before anything is written). */
int cmd_convert(int argc, char **argv);

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
