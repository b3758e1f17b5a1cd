/* ino.c: deterministic inode numbers, stable across re-ingest (NFS handles survive). */
#include "kvstore/kv_internal.h"
#include "util/phash.h"

#include <string.h>

/* Folded to 63 bits (NFS clients and some tools treat fileids as signed)
 * and lifted above the reserved range. */
static kv_ino ino_of_state(uint64_t h)
{
    h = phash_final(h) & KV_MAX_INO;
    if (h < KV_MIN_INO)
        h += KV_MIN_INO;
    return h;
}

/* The persisted hash (util/phash.h) over name, a NUL separator and path. */
kv_ino kv_ino_for(const char *name, const char *path)
{
    uint64_t h = phash_update(PHASH_INIT, name, strlen(name));
    h = phash_update(h, "", 1);
    return ino_of_state(phash_update(h, path, strlen(path)));
}

void kv_ino_for_prefixes(const char *name, const char *path,
                         void (*fn)(void *arg, size_t end, kv_ino ino),
                         void *arg)
{
    /* FNV-1a runs byte by byte: the state after a prefix is the state
     * the whole path's hash passes through, so one pass gives them all. */
    uint64_t h = phash_update(PHASH_INIT, name, strlen(name));
    h = phash_update(h, "", 1);
    for (size_t i = 0;; i++) {
        if (path[i] == '/' || path[i] == '\0')
            fn(arg, i, ino_of_state(h));
        if (path[i] == '\0')
            break;
        h = phash_update(h, path + i, 1);
    }
}
