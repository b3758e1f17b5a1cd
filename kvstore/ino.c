/* ino.c: deterministic inode numbers, stable across re-ingest (NFS handles survive). */
#include "kvstore/kv_internal.h"
#include "util/phash.h"

#include <string.h>

/* The persisted hash (util/phash.h) over name, a NUL separator and path.
 * Folded to 63 bits (NFS clients and some tools treat fileids as signed)
 * and lifted above the reserved range. */
kv_ino kv_ino_for(const char *name, const char *path)
{
    uint64_t h = phash_update(PHASH_INIT, name, strlen(name));
    h = phash_update(h, "", 1);
    h = phash_update(h, path, strlen(path));
    h = phash_final(h) & KV_MAX_INO;
    if (h < KV_MIN_INO)
        h += KV_MIN_INO;
    return h;
}
