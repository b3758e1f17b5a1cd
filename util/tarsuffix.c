/* tarsuffix.c: the table of tarball suffixes declared in tarsuffix.h. */
#include "util/tarsuffix.h"

#include <string.h>

const struct tar_suffix tar_suffixes[] = {
    { ".tar",      TAR_FILTER_NONE,  true },
    { ".tar.zst",  TAR_FILTER_ZSTD,  true },
    { ".tar.gz",   TAR_FILTER_GZIP,  true },
    { ".tgz",      TAR_FILTER_GZIP,  true },
    { ".tar.zstd", TAR_FILTER_ZSTD,  false },
    { ".tzst",     TAR_FILTER_ZSTD,  false },
    { ".tar.bz2",  TAR_FILTER_BZIP2, false },
    { ".tbz2",     TAR_FILTER_BZIP2, false },
    { ".tar.xz",   TAR_FILTER_XZ,    false },
    { ".txz",      TAR_FILTER_XZ,    false },
};
const size_t tar_nsuffixes = sizeof tar_suffixes / sizeof tar_suffixes[0];

int tar_suffix_match(const char *name, size_t len, bool served_only,
                     size_t *stem)
{
    for (size_t i = 0; i < tar_nsuffixes; i++) {
        if (served_only && !tar_suffixes[i].served)
            continue;
        size_t sl = strlen(tar_suffixes[i].suffix);
        if (len > sl && memcmp(name + len - sl, tar_suffixes[i].suffix,
                               sl) == 0) {
            if (stem)
                *stem = len - sl;
            return (int)i;
        }
    }
    return -1;
}

const char *tar_suffix_for(enum tar_filter f)
{
    switch (f) {
    case TAR_FILTER_GZIP:  return ".tar.gz";
    case TAR_FILTER_ZSTD:  return ".tar.zst";
    case TAR_FILTER_BZIP2: return ".tar.bz2";
    case TAR_FILTER_XZ:    return ".tar.xz";
    default:               return ".tar";
    }
}
