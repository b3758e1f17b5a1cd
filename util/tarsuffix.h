/* tarsuffix.h: the one table of tarball file-name suffixes and the
 * compression each means, used by the namespace listing (which objects
 * are runs), write-back (which filter to write), `tarnfs ingest` (the
 * default run name) and `tarnfs convert` (the key it writes). */
#ifndef TARNFS_TARSUFFIX_H
#define TARNFS_TARSUFFIX_H

#include <stdbool.h>
#include <stddef.h>

enum tar_filter { TAR_FILTER_NONE, TAR_FILTER_GZIP, TAR_FILTER_ZSTD,
                  TAR_FILTER_BZIP2, TAR_FILTER_XZ };

struct tar_suffix {
    const char *suffix;         /* ".tar.gz" */
    enum tar_filter filter;
    bool served;                /* a backend object with it is a run */
};

/* The table: the served suffixes first, in order of preference when one
 * name has several (.tar, .tar.zst, .tar.gz, .tgz), then those only
 * `tarnfs ingest` recognises. */
extern const struct tar_suffix tar_suffixes[];
extern const size_t tar_nsuffixes;

/* If the len bytes of name end in a suffix of the table (served ones only
 * if served_only) with at least one byte before it, return its index and
 * set *stem (may be NULL) to the length without it; else -1. */
int tar_suffix_match(const char *name, size_t len, bool served_only,
                     size_t *stem);

/* The suffix written for filter f: ".tar", ".tar.gz", ".tar.zst",
 * ".tar.bz2", ".tar.xz". */
const char *tar_suffix_for(enum tar_filter f);

#endif
